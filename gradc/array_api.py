"""The Python array API standard's namespace over gradc (what `x.__array_namespace__()` returns for
traced values and gc.Tensor): the standard's names and signatures on gradc's ops, so libraries
written against the standard (array_api_compat, SciPy with SCIPY_ARRAY_API=1) run on gradc values.
Functions gradc lacks are absent, so `hasattr(xp, name)` tells a library what it may use."""
import builtins
import collections
import math
import types

import numpy as np

from . import creation, einsum as _einsum, elementwise as E, linalg as _linalg, ops
from . import reductions as R, shapes as S

__array_api_version__ = "2023.12"

bool = np.bool_
int32, int64 = np.dtype(np.int32), np.dtype(np.int64)
float32, float64 = np.dtype(np.float32), np.dtype(np.float64)
e, inf, nan, pi, newaxis = math.e, math.inf, math.nan, math.pi, None

# ---- creation
asarray = creation.asarray
arange, eye, linspace = creation.arange, creation.eye, creation.linspace
zeros, ones, empty, full = creation.zeros, creation.ones, creation.empty, creation.full


def zeros_like(x, /, *, dtype=None, device=None):
    return ops.zeros_like(x, dtype)


def ones_like(x, /, *, dtype=None, device=None):
    return ops.ones_like(x, dtype)


def empty_like(x, /, *, dtype=None, device=None):
    return ops.zeros_like(x, dtype)


def full_like(x, /, fill_value, *, dtype=None, device=None):
    return creation.full_like(x, fill_value, dtype)


def tril(x, /, *, k=0):
    return S.tril(x, k)


def triu(x, /, *, k=0):
    return S.triu(x, k)


# ---- data types
def astype(x, dtype, /, *, copy=True, device=None):
    return ops.astype(x, dtype)


def result_type(*arrays_and_dtypes):
    return np.result_type(*[a.dtype if hasattr(a, "dtype") and not isinstance(a, np.dtype) else a
                            for a in arrays_and_dtypes])


def can_cast(from_, to, /):
    return np.can_cast(from_.dtype if hasattr(from_, "shape") else from_, to)


finfo, iinfo = np.finfo, np.iinfo


def isdtype(dtype, kind):
    if isinstance(kind, tuple):
        return builtins.any(isdtype(dtype, k) for k in kind)
    if isinstance(kind, str):
        k = np.dtype(dtype).kind
        return {"bool": k == "b", "signed integer": k == "i", "unsigned integer": k == "u",
                "integral": k in "iu", "real floating": k == "f", "complex floating": k == "c",
                "numeric": k in "iufc"}[kind]
    return np.dtype(dtype) == np.dtype(kind)


# ---- elementwise
abs, add, subtract, multiply, divide = ops.abs, ops.add, ops.subtract, ops.multiply, ops.divide
negative, sign, sqrt, square, exp, expm1 = ops.negative, ops.sign, ops.sqrt, ops.square, ops.exp, \
    ops.expm1
log, log1p, sin, cos, tanh = ops.log, ops.log1p, ops.sin, ops.cos, ops.tanh
maximum, minimum = ops.maximum, ops.minimum
equal, not_equal, less, less_equal = ops.equal, ops.not_equal, ops.less, ops.less_equal
greater, greater_equal = ops.greater, ops.greater_equal
logical_and, logical_or, logical_not = ops.logical_and, ops.logical_or, ops.logical_not
acos, acosh, asin, asinh = ops.arccos, ops.arccosh, ops.arcsin, ops.arcsinh
atan, atan2, atanh = ops.arctan, ops.arctan2, ops.arctanh
cosh, sinh, tan = ops.cosh, ops.sinh, ops.tan
log2, log10 = ops.log2, ops.log10


def _keeps_integers(fn):
    """The standard keeps integer dtypes for rounding functions (NumPy's ufuncs give float64)."""
    def rounded(x, /):
        x = ops.asarray(x)
        return x if x.dtype.kind in "iub" else fn(x)
    rounded.__name__ = fn.__name__
    return rounded


floor, ceil, trunc = (_keeps_integers(f) for f in (ops.floor, ops.ceil, ops.trunc))
hypot = ops.hypot
logaddexp, remainder, floor_divide = E.logaddexp, E.remainder, E.floor_divide
reciprocal = E.reciprocal


def pow(x1, x2, /):
    return ops.power(x1, x2)


def positive(x, /):
    return ops.asarray(x)


round = _keeps_integers(E.round)


def clip(x, /, min=None, max=None):
    return ops.clip(x, min, max)


def logical_xor(x1, x2, /):
    return ops.not_equal(ops.astype(x1, np.bool_), ops.astype(x2, np.bool_))


def isnan(x, /):
    return ops.not_equal(x, x)


def isinf(x, /):
    return ops.equal(ops.abs(x), np.inf)


def isfinite(x, /):
    return ops.logical_not(ops.logical_or(isnan(x), isinf(x)))


def signbit(x, /):
    return ops.less(x, 0)


# ---- statistics and searching (axis may be a tuple; `correction` is NumPy's ddof)
def _in_dtype(reduce, x, dtype, *args, **kwargs):
    """A reduction computed and returned in `dtype` when given (NumPy's own sums widen int32)."""
    if dtype is None:
        return reduce(x, *args, **kwargs)
    return ops.astype(reduce(ops.astype(x, dtype), *args, **kwargs), dtype)


def sum(x, /, *, axis=None, dtype=None, keepdims=False):
    return _in_dtype(ops.sum, x, dtype, axis, keepdims)


def prod(x, /, *, axis=None, dtype=None, keepdims=False):
    return _in_dtype(R.prod, x, dtype, axis, keepdims=keepdims)


def mean(x, /, *, axis=None, keepdims=False):
    return ops.mean(x, axis, keepdims)


def max(x, /, *, axis=None, keepdims=False):
    return ops.max(x, axis, keepdims)


def min(x, /, *, axis=None, keepdims=False):
    return ops.min(x, axis, keepdims)


def var(x, /, *, axis=None, correction=0.0, keepdims=False):
    return R.var(x, axis, ddof=correction, keepdims=keepdims)


def std(x, /, *, axis=None, correction=0.0, keepdims=False):
    return R.std(x, axis, ddof=correction, keepdims=keepdims)


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False):
    x = ops.asarray(x)
    if axis is None:
        if x.ndim > 1:
            raise ValueError("cumulative_sum: axis is required for arrays of more than 1 dimension")
        axis = 0
    out = R.cumsum(x if dtype is None else ops.astype(x, dtype), axis)
    if include_initial:
        out = S.pad(out, [(1, 0) if d == axis % x.ndim else (0, 0) for d in range(x.ndim)])
    return out


def argmax(x, /, *, axis=None, keepdims=False):
    return ops.argmax(x, axis, keepdims)


def argmin(x, /, *, axis=None, keepdims=False):
    return ops.argmin(x, axis, keepdims)


def where(condition, x1, x2, /):
    return ops.where(condition, x1, x2)


def all(x, /, *, axis=None, keepdims=False):
    return R.all(x, axis, keepdims=keepdims)


def any(x, /, *, axis=None, keepdims=False):
    return R.any(x, axis, keepdims=keepdims)


def count_nonzero(x, /, *, axis=None, keepdims=False):
    return R.count_nonzero(x, axis, keepdims)


# ---- manipulation
def reshape(x, /, shape, *, copy=None):
    return ops.reshape(x, shape)


def permute_dims(x, /, axes):
    return ops.transpose(x, axes)


def matrix_transpose(x, /):
    return ops.swap_last(x)


def expand_dims(x, /, *, axis=0):
    return ops.expand_dims(x, axis)


def squeeze(x, /, axis):
    return ops.squeeze(x, axis)


def concat(arrays, /, *, axis=0):
    return ops.concatenate(list(arrays), axis)


def stack(arrays, /, *, axis=0):
    return ops.stack(list(arrays), axis)


def unstack(x, /, *, axis=0):
    x = ops.asarray(x)
    return tuple(ops.getitem(x, (builtins.slice(None),) * (axis % x.ndim) + (i,))
                 for i in range(x.shape[axis]))


def broadcast_to(x, /, shape):
    return ops.broadcast_to(x, shape)


def broadcast_arrays(*arrays):
    shape = ops.broadcast_shapes("broadcast_arrays", *[ops.asarray(a).shape for a in arrays])
    return [ops.broadcast_to(a, shape) for a in arrays]


def flip(x, /, *, axis=None):
    return S.flip(x, axis)


def roll(x, /, shift, *, axis=None):
    return S.roll(x, shift, axis)


def moveaxis(x, source, destination, /):
    return S.moveaxis(x, source, destination)


def repeat(x, repeats, /, *, axis=None):
    return S.repeat(x, repeats, axis)


def tile(x, repetitions, /):
    return S.tile(x, repetitions)


def take(x, indices, /, *, axis=None):
    return S.take(x, indices, axis)


def take_along_axis(x, indices, /, *, axis=-1):
    return S.take_along_axis(x, indices, axis)


# ---- linear algebra
def matmul(x1, x2, /):
    return ops.matmul(x1, x2)


def tensordot(x1, x2, /, *, axes=2):
    return S.tensordot(x1, x2, axes)


def vecdot(x1, x2, /, *, axis=-1):
    x1, x2 = ops.asarray(x1), ops.asarray(x2)
    n1, n2 = x1.shape[axis] if x1.ndim else None, x2.shape[axis] if x2.ndim else None
    if n1 is None or n1 != n2:
        raise ValueError(f"vecdot: the contracted axis {axis} has sizes {n1} and {n2} (shapes "
                         f"{x1.shape} and {x2.shape})")
    product = ops.multiply(x1, x2)
    return ops.astype(ops.sum(product, axis), product.dtype)   # int32 stays int32


def einsum(subscripts, *operands):
    return _einsum.einsum(subscripts, *operands)


def _vector_norm(x, /, *, axis=None, keepdims=False, ord=2):
    x = ops.asarray(x)
    if axis is None:
        out = R.norm(ops.reshape(x, (-1,)), ord)
        return ops.reshape(out, (1,) * x.ndim) if keepdims else out
    return R.norm(x, ord, axis, keepdims)


SlogdetResult = collections.namedtuple("SlogdetResult", ["sign", "logabsdet"])


def _slogdet(x, /):
    return SlogdetResult(*_linalg.slogdet(x))


linalg = types.SimpleNamespace(
    inv=_linalg.inv, solve=_linalg.solve, det=_linalg.det, cholesky=_linalg.cholesky,
    slogdet=_slogdet, matmul=matmul, tensordot=tensordot, vecdot=vecdot,
    matrix_transpose=matrix_transpose, outer=S.outer, vector_norm=_vector_norm,
    trace=lambda x, /, *, offset=0, dtype=None: S.trace(x, offset, -2, -1),
    diagonal=lambda x, /, *, offset=0: S.diagonal(x, offset, -2, -1),
    matrix_norm=lambda x, /, *, keepdims=False, ord="fro": R.norm(x, ord, (-2, -1), keepdims))


def __array_namespace_info__():
    return _Info()


class _Info:
    def capabilities(self):
        return {"boolean indexing": False, "data-dependent shapes": False}

    def default_device(self):
        return "cpu"

    def devices(self):
        return ["cpu"]

    def default_dtypes(self, *, device=None):
        return {"real floating": float64, "integral": int64, "indexing": int64}

    def dtypes(self, *, device=None, kind=None):
        all_ = {"bool": np.dtype(np.bool_), "int32": int32, "int64": int64, "float32": float32,
                "float64": float64}
        return {k: v for k, v in all_.items() if kind is None or isdtype(v, kind)}

