"""The runtime of a built module's NumPy wrapper: argument checks, outputs, the call, errors, and
pickling. This file's code below the marker is copied verbatim into every generated `<name>.py`,
so it may use only numpy, cffi's objects and the standard library (no gradc); it is tested here as
code. The wrapper defines `ffi`, `lib` and `_EXTENSION` before it."""
# ---- copied into every wrapper from here ----
import importlib
import numbers
import sys          # noqa: F401 - the wrapper's last line sets its module's class
import threading
import types

import numpy as np


def _flatten_into(leaves, tree, value, where):
    """Appends value's leaves following tree ('*' leaf, None, ('tuple'|'list', children) or
    ('dict', keys, children)); a different structure is a TypeError naming the argument."""
    if tree == "*":
        leaves.append((where, value))
        return
    if tree is None:
        return
    if tree[0] == "dict":
        _, keys, children = tree
        if not isinstance(value, dict) or sorted(value) != list(keys):
            got = (f"keys {sorted(value)}" if isinstance(value, dict) else type(value).__name__)
            raise TypeError(f"{where}: expected a dict with keys {list(keys)}, got {got}")
        items = [(value[k], child, f"{where}[{k!r}]") for k, child in zip(keys, children)]
    else:
        kind, children = tree
        if not isinstance(value, (tuple, list)) or len(value) != len(children):
            got = (f"{len(value)} items" if isinstance(value, (tuple, list))
                   else type(value).__name__)
            raise TypeError(f"{where}: expected a {kind} of {len(children)} items, got {got}")
        items = [(v, child, f"{where}[{i}]") for i, (v, child) in enumerate(zip(value, children))]
    for v, child, w in items:
        _flatten_into(leaves, child, v, w)


def _unflatten(tree, leaves):
    """Rebuilds the output structure from an iterator of arrays."""
    if tree == "*":
        return next(leaves)
    if tree is None:
        return None
    if tree[0] == "dict":
        return {k: _unflatten(child, leaves) for k, child in zip(tree[1], tree[2])}
    children = [_unflatten(child, leaves) for child in tree[1]]
    return tuple(children) if tree[0] == "tuple" else children


def _type_str(shape, dtype):
    short = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}
    return f"{short.get(dtype.name, dtype.name)}[{','.join(map(str, shape))}]"


def _fits(shape, spec, sizes, name):
    """Whether shape is spec's; a named size (a str) takes its first argument's value, and a
    later argument with another value is a ValueError naming both."""
    if len(shape) != len(spec):
        return False
    for axis, (got, want) in enumerate(zip(shape, spec)):
        if isinstance(want, str):
            if want not in sizes:
                sizes[want] = (got, name)
            elif sizes[want][0] != got:
                raise ValueError(f"argument {name}: dimension {want!r} (axis {axis}) is {got}, but "
                                 f"argument {sizes[want][1]} gave {want!r} = {sizes[want][0]}")
        elif got != want:
            return False
    return True


def _shape(shape, sizes):
    """An output shape: named sizes (Python expressions of the names) evaluated."""
    values = {k: v for k, (v, _) in sizes.items()}
    return tuple(eval(d, {"__builtins__": {}}, values) if isinstance(d, str) else d  # noqa: S307
                 for d in shape)


class _Kernel:
    """One exported C function: checks and converts the arguments, allocates fresh outputs, calls
    the C entry point with a per-thread workspace and maps its error codes to exceptions."""

    def __init__(self, ffi, lib, symbol, macro, args, inputs, outputs, out_tree, sizes=()):
        self.ffi = ffi
        self.fn = getattr(lib, symbol + "_work")
        self.sizes = list(sizes)              # named dims: one int64_t argument each, first
        self.args = args                      # [(parameter name, tree)]
        self.inputs = [(name, tuple(shape), np.dtype(dtype), ctype + "[]")
                       for name, shape, dtype, ctype in inputs]
        self.outputs = [(tuple(shape), np.dtype(dtype), ctype + "[]")
                        for shape, dtype, ctype in outputs]
        self.out_tree = out_tree
        self.work_bytes_of = getattr(lib, symbol + "_work_bytes")
        self.work_bytes = 1 if self.sizes else max(self.work_bytes_of(), 1)
        self.err_index = getattr(lib, macro + "_ERR_INDEX")
        self.err_alloc = getattr(lib, macro + "_ERR_ALLOC")
        self.err_size = getattr(lib, macro + "_ERR_SIZE", None)
        self.symbol = symbol
        self.linalg_errors = {    # (a build from before these codes has neither)
            getattr(lib, macro + "_ERR_SINGULAR", -1): ("a matrix is singular (in linalg.inv or "
                                                        "linalg.solve)", "_ERR_SINGULAR"),
            getattr(lib, macro + "_ERR_NOT_PD", -1): ("a matrix is not positive definite (in "
                                                      "linalg.cholesky)", "_ERR_NOT_PD")}
        self.macro = macro
        self.local = threading.local()
        if getattr(lib, symbol + "_n_in")() != len(inputs):
            raise ImportError(f"{symbol}: the compiled extension does not match this wrapper; "
                              "rebuild both with gradc build")

    def _array(self, value, name, shape, dtype, sizes):
        if isinstance(value, (numbers.Number, list)):
            value = np.asarray(value, dtype=dtype)      # Python scalars and lists are converted
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if not _fits(array.shape, shape, sizes, name) or array.dtype != dtype:
            raise ValueError(f"argument {name}: expected {_type_str(shape, dtype)}, got "
                             f"{_type_str(array.shape, array.dtype)}")
        if not (array.flags.c_contiguous and array.flags.aligned):
            array = np.ascontiguousarray(array)     # a copy: the caller's array is never written
        return array

    def _work(self, nbytes):
        work = getattr(self.local, "work", None)
        if work is None or len(work[0]) < nbytes:
            buffer = np.empty(nbytes, np.uint8)
            work = self.local.work = (buffer, self.ffi.from_buffer("char[]", buffer))
        return work[1]

    def __call__(self, *values):
        leaves = []
        for (name, tree), value in zip(self.args, values):
            _flatten_into(leaves, tree, value, name)
        pointers, sizes = [], {}
        for (_, value), (name, shape, dtype, ctype) in zip(leaves, self.inputs):
            array = self._array(value, name, shape, dtype, sizes)
            pointers.append(self.ffi.from_buffer(ctype, array))
        outs = [np.empty(_shape(shape, sizes), dtype) for shape, dtype, _ in self.outputs]
        pointers += [self.ffi.from_buffer(c, o) for o, (_, _, c) in zip(outs, self.outputs)]
        dims = [sizes[d][0] for d in self.sizes]
        nbytes = max(self.work_bytes_of(*dims), 1) if dims else self.work_bytes
        code = self.fn(*dims, *pointers, self._work(nbytes))
        if code == self.err_index:
            raise IndexError("index out of range in a gather or label lookup (the C kernel "
                             "checked it): labels must lie in [0, number of classes)")
        if code == self.err_size:
            raise ValueError(f"a named size below 1: {dict(zip(self.sizes, dims))}")
        if code == self.err_alloc:
            raise MemoryError("the gradc kernel could not allocate its workspace")
        if code in self.linalg_errors:
            what, suffix = self.linalg_errors[code]
            raise np.linalg.LinAlgError(f"{self.symbol}: {what}; the C function returned "
                                        f"{self.macro}{suffix} (NumPy raises LinAlgError too)")
        if code:
            raise RuntimeError(f"gradc kernel failed with error code {code}")
        return _unflatten(self.out_tree, iter(outs))


class _BuiltModule(types.ModuleType):
    """The wrapper module's type: pickles by value (wrapper source and library bytes, loaded by
    gradc.pickling on the other side, which needs no compiler) where gradc is importable, else
    by name (the receiver imports the module itself)."""

    def __reduce__(self):
        try:
            from gradc.pickling import reduce_built_module
        except ImportError:
            return importlib.import_module, (self.__name__,)
        return reduce_built_module(self)
