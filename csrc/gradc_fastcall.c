/* gradc._fastcall: the hot path of a compiled function, in C.
 *
 * An Entry knows one compiled signature: the kernel's address, the exact dtype and shape of every
 * input, the constant arrays, the outputs and the workspace size. Entry.call(args) checks the
 * arguments against it, allocates fresh outputs, releases the GIL and calls the kernel. Anything it
 * does not accept as is (another shape, a list, a non-contiguous array...) returns NotImplemented,
 * and the Python side takes the general path (conversion, copies, clear errors). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stddef.h>
#include <stdint.h>
#include <structmember.h>
#include <stdlib.h>

#define MAX_DIMS 32
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
    size_t work_bytes;
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
    free(self->work);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Entry(kernel_address, in_specs, out_specs, const_arrays, work_bytes, keep_alive) */
static int Entry_init(Entry *self, PyObject *args, PyObject *kwds) {
    unsigned long long address;
    PyObject *ins, *outs, *consts, *keep;
    Py_ssize_t work_bytes;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "KO!O!O!nO", &address, &PyTuple_Type, &ins, &PyTuple_Type, &outs,
                          &PyTuple_Type, &consts, &work_bytes, &keep))
        return -1;
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

static int accept(const Spec *spec, PyObject *arg, Scalar *scalar, void **ptr) {
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
        for (int d = 0; d < spec->ndim; d++)
            if (dims[d] != spec->dims[d]) return 0;
        *ptr = PyArray_DATA(a);
        return 1;
    }
    }
}

#define SMALL 16

static PyObject *Entry_call(Entry *self, PyObject *args) {
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != self->n_in) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = self->n_in + self->n_const + self->n_out;
    void *small_ptrs[SMALL * 3];
    Scalar small_scalars[SMALL];
    void **ptrs = n <= SMALL * 3 ? small_ptrs : PyMem_Malloc(n * sizeof(void *));
    Scalar *scalars = self->n_in <= SMALL ? small_scalars : PyMem_Malloc(self->n_in * sizeof(Scalar));
    PyObject *result = NULL;
    if (!ptrs || !scalars) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < self->n_in; i++) {
        if (!accept(&self->in[i], PyTuple_GET_ITEM(args, i), &scalars[i], &ptrs[i])) {
            result = Py_NewRef(Py_NotImplemented);
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < self->n_const; i++) ptrs[self->n_in + i] = self->const_ptrs[i];
    result = PyTuple_New(self->n_out);
    if (!result) goto done;
    for (Py_ssize_t i = 0; i < self->n_out; i++) {
        Spec *s = &self->out[i];
        PyObject *o = PyArray_EMPTY(s->ndim, s->dims, s->typenum, 0);
        if (!o) { Py_CLEAR(result); goto done; }
        PyTuple_SET_ITEM(result, i, o);
        ptrs[self->n_in + self->n_const + i] = PyArray_DATA((PyArrayObject *)o);
    }
    void *work = NULL;
    int own_work = 0;
    if (self->work_bytes) {
        if (!self->work_busy) {
            if (!self->work && !(self->work = malloc(self->work_bytes))) {
                PyErr_NoMemory(); Py_CLEAR(result); goto done;
            }
            work = self->work;
            self->work_busy = 1;          /* set with the GIL held: no other thread races us */
        } else {
            if (!(work = malloc(self->work_bytes))) { PyErr_NoMemory(); Py_CLEAR(result); goto done; }
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
        else
            PyErr_Format(PyExc_RuntimeError, "gradc kernel failed with error code %d", code);
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
    if (PyModule_AddObject(m, "Entry", (PyObject *)&EntryType) < 0) {
        Py_DECREF(&EntryType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
