/* gradc._fastcall: the hot path of a compiled function, in C.
 *
 * An Entry knows one compiled signature: the kernel's address, the exact dtype and shape of every
 * input, the constant arrays, the outputs and the workspace size. Entry.call(args) checks the
 * arguments against it, allocates fresh outputs, releases the GIL and calls the kernel. Anything it
 * does not accept as is (another shape, a list, a non-contiguous array...) returns NotImplemented,
 * and the Python side takes the general path (conversion, copies, clear errors).
 *
 * Named sizes (API.md section 10): a dimension -(k + 1) in a spec is named size k, taken from the
 * first argument that has it (at least min_size, 1 or 2: gc.jit's dynamic="auto" gives size 1 a
 * kernel of its own; another argument must agree, else NotImplemented and the
 * Python side names the mismatch). The kernel gets the sizes after its outputs, and the workspace
 * is a polynomial in them: terms (coefficient, power of size 0, power of size 1, ...). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stddef.h>
#include <stdint.h>
#include <structmember.h>
#include <stdlib.h>

#define MAX_DIMS 32
#define MAX_SIZES 8
enum { KIND_ARRAY = 0, KIND_FLOAT = 1, KIND_INT = 2, KIND_BOOL = 3 };

typedef int (*kernel_fn)(void **args, void *work);

typedef struct {
    int kind, typenum, ndim;
    npy_intp dims[MAX_DIMS];
} Spec;

typedef struct {
    PyObject_HEAD
    kernel_fn fn;
    Py_ssize_t n_in, n_const, n_out;
    Spec *in, *out;
    void **const_ptrs;
    PyObject *keep;           /* the constant arrays and the library, kept alive */
    size_t work_bytes;        /* the workspace, or its capacity when it depends on named sizes */
    Py_ssize_t n_sizes, n_terms, min_size;
    int64_t *terms;           /* n_terms x (1 + n_sizes): the workspace polynomial */
    void *work;               /* reused when free; a busy entry (another thread) mallocs its own */
    int work_busy;
    unsigned long long calls;  /* kernel runs through this entry (Jitted.cache_info's hits) */
} Entry;

static int parse_spec(PyObject *item, Spec *spec, int with_kind) {
    PyObject *shape;
    if (with_kind) {
        if (!PyArg_ParseTuple(item, "iiO", &spec->kind, &spec->typenum, &shape)) return -1;
    } else {
        spec->kind = KIND_ARRAY;
        if (!PyArg_ParseTuple(item, "iO", &spec->typenum, &shape)) return -1;
    }
    if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) > MAX_DIMS) {
        PyErr_SetString(PyExc_ValueError, "shape must be a tuple of at most 32 dimensions");
        return -1;
    }
    spec->ndim = (int)PyTuple_GET_SIZE(shape);
    for (int d = 0; d < spec->ndim; d++) {
        spec->dims[d] = PyLong_AsSsize_t(PyTuple_GET_ITEM(shape, d));
        if (spec->dims[d] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static void Entry_dealloc(Entry *self) {
    PyMem_Free(self->in);
    PyMem_Free(self->out);
    PyMem_Free(self->const_ptrs);
    PyMem_Free(self->terms);
    free(self->work);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Entry(kernel_address, in_specs, out_specs, const_arrays, work_bytes, keep_alive
 *       [, n_sizes, work_terms, min_size]) */
static int Entry_init(Entry *self, PyObject *args, PyObject *kwds) {
    unsigned long long address;
    PyObject *ins, *outs, *consts, *keep, *terms = NULL;
    Py_ssize_t work_bytes, n_sizes = 0, min_size = 1;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "KO!O!O!nO|nO!n", &address, &PyTuple_Type, &ins, &PyTuple_Type,
                          &outs, &PyTuple_Type, &consts, &work_bytes, &keep, &n_sizes,
                          &PyTuple_Type, &terms, &min_size))
        return -1;
    self->min_size = min_size < 1 ? 1 : min_size;
    if (n_sizes < 0 || n_sizes > MAX_SIZES) {
        PyErr_SetString(PyExc_ValueError, "at most 8 named sizes");
        return -1;
    }
    self->n_sizes = n_sizes;
    self->n_terms = terms ? PyTuple_GET_SIZE(terms) : 0;
    self->terms = PyMem_Calloc(self->n_terms * (1 + n_sizes) + 1, sizeof(int64_t));
    if (!self->terms) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t t = 0; t < self->n_terms; t++) {
        PyObject *term = PyTuple_GET_ITEM(terms, t);
        if (!PyTuple_Check(term) || PyTuple_GET_SIZE(term) != 1 + n_sizes) {
            PyErr_SetString(PyExc_ValueError, "a workspace term is (coefficient, powers...)");
            return -1;
        }
        for (Py_ssize_t k = 0; k <= n_sizes; k++) {
            self->terms[t * (1 + n_sizes) + k] = PyLong_AsLongLong(PyTuple_GET_ITEM(term, k));
            if (PyErr_Occurred()) return -1;
        }
    }
    self->fn = (kernel_fn)(uintptr_t)address;
    self->n_in = PyTuple_GET_SIZE(ins);
    self->n_out = PyTuple_GET_SIZE(outs);
    self->n_const = PyTuple_GET_SIZE(consts);
    self->in = PyMem_Calloc(self->n_in + 1, sizeof(Spec));
    self->out = PyMem_Calloc(self->n_out + 1, sizeof(Spec));
    self->const_ptrs = PyMem_Calloc(self->n_const + 1, sizeof(void *));
    if (!self->in || !self->out || !self->const_ptrs) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < self->n_in; i++)
        if (parse_spec(PyTuple_GET_ITEM(ins, i), &self->in[i], 1) < 0) return -1;
    for (Py_ssize_t i = 0; i < self->n_out; i++)
        if (parse_spec(PyTuple_GET_ITEM(outs, i), &self->out[i], 0) < 0) return -1;
    for (Py_ssize_t i = 0; i < self->n_const; i++) {
        PyObject *c = PyTuple_GET_ITEM(consts, i);
        if (!PyArray_Check(c) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)c)) {
            PyErr_SetString(PyExc_TypeError, "constants must be C-contiguous arrays");
            return -1;
        }
        self->const_ptrs[i] = PyArray_DATA((PyArrayObject *)c);
    }
    self->keep = Py_BuildValue("(OO)", consts, keep);
    self->work_bytes = (size_t)work_bytes;
    return self->keep ? 0 : -1;
}

/* The scalar value of a weakly typed Python argument, stored where the kernel reads it. */
typedef union { double f; int64_t i; uint8_t b; } Scalar;

static int accept(const Spec *spec, PyObject *arg, Scalar *scalar, void **ptr, int64_t *sizes,
                  Py_ssize_t min_size) {
    switch (spec->kind) {
    case KIND_FLOAT:
        if (!PyFloat_CheckExact(arg)) return 0;
        scalar->f = PyFloat_AS_DOUBLE(arg);
        *ptr = &scalar->f;
        return 1;
    case KIND_INT:
        if (!PyLong_CheckExact(arg)) return 0;
        scalar->i = PyLong_AsLongLong(arg);
        if (scalar->i == -1 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
        *ptr = &scalar->i;
        return 1;
    case KIND_BOOL:
        if (!PyBool_Check(arg)) return 0;
        scalar->b = (uint8_t)(arg == Py_True);
        *ptr = &scalar->b;
        return 1;
    default: {
        if (spec->ndim == 0 && PyArray_IsScalar(arg, Generic)) {   /* np.float64(2.0) and such */
            PyArray_Descr *descr = PyArray_DescrFromScalar(arg);
            int same = descr && descr->type_num == spec->typenum && PyArray_ISNBO(descr->byteorder);
            Py_XDECREF(descr);
            if (!same) return 0;
            PyArray_ScalarAsCtype(arg, scalar);
            *ptr = scalar;
            return 1;
        }
        if (!PyArray_CheckExact(arg)) return 0;
        PyArrayObject *a = (PyArrayObject *)arg;
        if (PyArray_TYPE(a) != spec->typenum || PyArray_NDIM(a) != spec->ndim) return 0;
        if (!PyArray_IS_C_CONTIGUOUS(a) || !PyArray_ISALIGNED(a) || !PyArray_ISNOTSWAPPED(a))
            return 0;
        npy_intp *dims = PyArray_DIMS(a);
        for (int d = 0; d < spec->ndim; d++) {
            if (spec->dims[d] >= 0) {
                if (dims[d] != spec->dims[d]) return 0;
                continue;
            }
            int64_t *size = &sizes[-spec->dims[d] - 1];       /* a named size */
            if (*size == 0) {
                if (dims[d] < min_size) return 0;
                *size = dims[d];
            } else if (*size != dims[d]) {
                return 0;
            }
        }
        *ptr = PyArray_DATA(a);
        return 1;
    }
    }
}

#define SMALL 16

static PyObject *Entry_call(Entry *self, PyObject *args) {
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != self->n_in) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = self->n_in + self->n_const + self->n_out + 1;
    int64_t sizes[MAX_SIZES] = {0};
    void *small_ptrs[SMALL * 3];
    Scalar small_scalars[SMALL];
    void **ptrs = n <= SMALL * 3 ? small_ptrs : PyMem_Malloc(n * sizeof(void *));
    Scalar *scalars = self->n_in <= SMALL ? small_scalars : PyMem_Malloc(self->n_in * sizeof(Scalar));
    PyObject *result = NULL;
    if (!ptrs || !scalars) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < self->n_in; i++) {
        if (!accept(&self->in[i], PyTuple_GET_ITEM(args, i), &scalars[i], &ptrs[i], sizes,
                    self->min_size)) {
            result = Py_NewRef(Py_NotImplemented);
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < self->n_const; i++) ptrs[self->n_in + i] = self->const_ptrs[i];
    result = PyTuple_New(self->n_out);
    if (!result) goto done;
    for (Py_ssize_t i = 0; i < self->n_out; i++) {
        Spec *s = &self->out[i];
        npy_intp dims[MAX_DIMS];
        for (int d = 0; d < s->ndim; d++)
            dims[d] = s->dims[d] >= 0 ? s->dims[d] : (npy_intp)sizes[-s->dims[d] - 1];
        PyObject *o = PyArray_EMPTY(s->ndim, dims, s->typenum, 0);
        if (!o) { Py_CLEAR(result); goto done; }
        PyTuple_SET_ITEM(result, i, o);
        ptrs[self->n_in + self->n_const + i] = PyArray_DATA((PyArrayObject *)o);
    }
    ptrs[self->n_in + self->n_const + self->n_out] = sizes;
    size_t work_bytes = self->work_bytes;
    if (self->n_sizes) {                  /* the workspace for these sizes */
        int64_t total = 0;
        for (Py_ssize_t t = 0; t < self->n_terms; t++) {
            const int64_t *term = &self->terms[t * (1 + self->n_sizes)];
            int64_t v = term[0];
            for (Py_ssize_t k = 0; k < self->n_sizes; k++)
                for (int64_t p = 0; p < term[1 + k]; p++) v *= sizes[k];
            total += v;
        }
        work_bytes = (size_t)total;
    }
    void *work = NULL;
    int own_work = 0;
    if (work_bytes) {
        if (!self->work_busy) {
            if (work_bytes > self->work_bytes || !self->work) {
                free(self->work);
                self->work_bytes = work_bytes > self->work_bytes ? work_bytes : self->work_bytes;
                if (!(self->work = malloc(self->work_bytes))) {
                    self->work_bytes = 0;
                    PyErr_NoMemory(); Py_CLEAR(result); goto done;
                }
            }
            work = self->work;
            self->work_busy = 1;          /* set with the GIL held: no other thread races us */
        } else {
            if (!(work = malloc(work_bytes))) { PyErr_NoMemory(); Py_CLEAR(result); goto done; }
            own_work = 1;
        }
    }
    int code;
    Py_BEGIN_ALLOW_THREADS
    code = self->fn(ptrs, work);
    Py_END_ALLOW_THREADS
    self->calls++;
    if (own_work) free(work);
    else if (work) self->work_busy = 0;
    if (code != 0) {
        Py_CLEAR(result);
        if (code == 1)
            PyErr_SetString(PyExc_IndexError, "index out of range in a gather or label lookup (the "
                            "C kernel checked it): labels must lie in [0, number of classes)");
        else    /* the general path runs the (pure) kernel again and names the op that failed */
            result = Py_NewRef(Py_NotImplemented);
    }
done:
    if (ptrs && ptrs != small_ptrs) PyMem_Free(ptrs);
    if (scalars && scalars != small_scalars) PyMem_Free(scalars);
    return result;
}

static PyMethodDef Entry_methods[] = {
    {"call", (PyCFunction)Entry_call, METH_O,
     "call(args_tuple) -> tuple of fresh outputs, or NotImplemented if args do not match exactly"},
    {NULL, NULL, 0, NULL}};

static PyMemberDef Entry_members[] = {
    {"calls", T_ULONGLONG, offsetof(Entry, calls), READONLY, "kernel runs through this entry"},
    {NULL, 0, 0, 0, NULL}};

static PyTypeObject EntryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gradc._fastcall.Entry",
    .tp_basicsize = sizeof(Entry),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One compiled signature's native call path.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Entry_init,
    .tp_dealloc = (destructor)Entry_dealloc,
    .tp_methods = Entry_methods,
    .tp_members = Entry_members,
};

static struct PyModuleDef fastcall_module = {
    PyModuleDef_HEAD_INIT, "_fastcall", "gradc's native call path.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fastcall(void) {
    import_array();
    if (PyType_Ready(&EntryType) < 0) return NULL;
    PyObject *m = PyModule_Create(&fastcall_module);
    if (!m) return NULL;
    Py_INCREF(&EntryType);
    /* 1: kernel error codes other than GRADC_ERR_INDEX return NotImplemented (see Entry_call) */
    if (PyModule_AddIntConstant(m, "ERRORS_TO_PYTHON", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObject(m, "Entry", (PyObject *)&EntryType) < 0) {
        Py_DECREF(&EntryType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
