"""Creating arrays the gradc way: gc.asarray / gc.array (lists of traced values become one value,
NumPy arrays become values of the function being traced, so item assignment records into it), and
the array API's creation functions (zeros, ones, full, arange, linspace, eye, empty)."""
import numpy as np

from . import core, dtypes, ops
from .numpy_lists import holds_gradc
from .registry import export


@export(example='[1.0, 2.0]', like='asarray')
def asarray(obj, dtype=None, copy=None, device=None):
    """obj as a gradc value: inside a transform a NumPy array (or a list holding traced values)
    becomes a traced value, so `y = gc.asarray(buf); y[i] = traced` works; outside: NumPy's."""
    if isinstance(obj, (list, tuple)) and holds_gradc(obj):
        x = ops.stack([asarray(o) for o in obj])
    else:
        x = ops.asarray(obj)
    if core._trace_stack and not isinstance(x, core.Tracer) and type(x).__name__ != "Tensor":
        x = ops.lift_const(core._trace_stack[-1], x)
    if dtype is not None:
        x = ops.astype(x, dtype)
    if copy and x is obj:
        from .shapes import copy as copy_of
        x = copy_of(x)
    return x


@export(example='[[1.0], [2.0]]', like='array')
def array(obj, dtype=None, copy=True, ndmin=0):
    """gc.asarray, a fresh value (item assignment to it leaves obj as it was)."""
    x = asarray(obj, dtype, copy=copy)
    while x.ndim < ndmin:
        x = ops.expand_dims(x, 0)
    return x


def _dtype(dtype, default=np.float64):
    return dtypes.canonical(dtype if dtype is not None else default)


@export(example='(2, 3)', like='zeros')
def zeros(shape, dtype=None, device=None):
    return np.zeros(shape, _dtype(dtype))


@export(example='(2,)', like='ones')
def ones(shape, dtype=None, device=None):
    return np.ones(shape, _dtype(dtype))


@export()
def empty(shape, dtype=None, device=None):
    """Zeros of shape (gradc never hands out uninitialised memory).

    >>> import gradc as gc
    >>> gc.empty((2,))
    array([0., 0.])
    """
    return np.zeros(shape, _dtype(dtype))


@export(example='(2, 2), 3.0', like='full')
def full(shape, fill_value, dtype=None, device=None):
    if isinstance(fill_value, core.Tracer):
        return ops.broadcast_to(ops.astype(fill_value, dtype) if dtype else fill_value,
                                (shape,) if isinstance(shape, int) else tuple(shape))
    return np.full(shape, fill_value, dtype=None if dtype is None else dtypes.canonical(dtype))


@export(example='4', like='arange')
def arange(start, stop=None, step=1, dtype=None, device=None):
    out = np.arange(start, stop, step) if stop is not None else np.arange(start)
    return out.astype(_dtype(dtype, out.dtype))


@export(example='0.0, 1.0, 5', like='linspace')
def linspace(start, stop, num, dtype=None, device=None, endpoint=True):
    return np.linspace(start, stop, num, endpoint=endpoint).astype(_dtype(dtype))


@export(example='3', like='eye')
def eye(n_rows, n_cols=None, k=0, dtype=None, device=None):
    return np.eye(n_rows, n_cols, k, dtype=_dtype(dtype))


@export("empty_like", example="np.zeros(2)", like="zeros_like",
        numpy_call=lambda fn: lambda x, dtype=None, **kw: fn(x, dtype))
def empty_like(x, dtype=None, device=None):
    return ops.zeros_like(x, dtype)


@export("full_like", example="np.zeros(2), 7.0",
        numpy_call=lambda fn: lambda x, fill_value, dtype=None, **kw:
        fn(x, fill_value, dtype))
def full_like(x, fill_value, dtype=None, device=None):
    return ops.add(ops.zeros_like(x, dtype), fill_value)
