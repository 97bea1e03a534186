"""Elementwise composites (API.md section 8): NumPy's ops built from the primitives, each registered
for gc.<name> and NumPy dispatch where it is defined."""
import math

import numpy as np

from . import dtypes, ops
from . import primitives as P
from .registry import export


@export(ufunc="reciprocal", example='np.array([0.5, 4.0])')
def reciprocal(x):
    """1 / x."""
    return ops.divide(1, x)


@export(ufunc="logaddexp", example='np.array([0.5, 800.0]), np.array([1.0, 799.0])')
def logaddexp(x, y):
    """log(exp(x) + exp(y)) without overflow: max(x, y) + softplus(-|x - y|)."""
    x, y = ops._promote_float(x, y)
    # NOTE: x == y (both -inf too) would give inf - inf; there the sum is max + log 2.
    diff = ops.where(ops.equal(x, y), 0, ops.subtract(x, y))
    return ops.add(ops.maximum(x, y), ops.softplus(ops.negative(ops.abs(diff))))


@export(ufunc="logaddexp2", example='np.array([0.5, 3.0]), np.array([1.0, -2.0])')
def logaddexp2(x, y):
    """log2(2**x + 2**y)."""
    x, y = ops._promote_float(x, y)        # before scaling: a Python scalar stays weakly typed
    ln2 = math.log(2)
    return ops.divide(logaddexp(ops.multiply(x, ln2), ops.multiply(y, ln2)), ln2)


def _both_int(x, y):
    kinds = [ops._dtype_of(v).kind for v in (x, y)]
    return all(k in "iub" for k in kinds)


def _int_result(fn, x, y):
    """fn on integers, computed in float64 (exact below 2**53) and cast back, as NumPy's int ops;
    a division by zero gives 0, as NumPy's (which warns), not the cast of a NaN."""
    dtype = np.result_type(*[ops._dtype_of(v) for v in (x, y)])
    x, y = ops._float(x), ops._float(y)
    by_zero = ops.equal(y, 0)
    out = ops.where(by_zero, 0.0, fn(x, ops.where(by_zero, 1.0, y)))
    return ops.astype(out, dtypes.canonical(dtype))


@export(ufunc="fmod", example='np.array([5.5, -5.5]), 2.0')
def fmod(x, y):
    """x - trunc(x / y) * y, with the sign of x, as numpy.fmod (integers stay integers). Its
    gradient is 1 for x and -trunc(x / y) for y."""
    if _both_int(x, y):
        return _int_result(fmod, x, y)
    return ops._elementwise(P.fmod, *ops._promote_float(x, y))


@export(ufunc="remainder", example='np.array([5.5, -5.5]), 2.0')
def remainder(x, y):
    """x - floor(x / y) * y with the sign of y (Python's %), as numpy.mod: fmod, moved by y where
    the signs differ. Its gradient is 1 for x and -floor(x / y) for y."""
    if _both_int(x, y):
        return _int_result(remainder, x, y)
    m = fmod(x, y)
    y = ops.asarray(y) if not ops._is_python_scalar(y) else y
    moved = ops.logical_and(ops.not_equal(m, 0), ops.not_equal(ops.less(y, 0), ops.less(m, 0)))
    return ops.where(moved, ops.add(m, y), m)


export(name="mod")(remainder)


@export(ufunc="floor_divide", example='np.array([5.5, -5.5]), 2.0')
def floor_divide(x, y):
    """floor(x / y) as numpy's // (computed from fmod as NumPy does, so the two agree exactly);
    piecewise constant: zero gradient."""
    if _both_int(x, y):
        return _int_result(floor_divide, x, y)
    m = fmod(x, y)
    div = ops.divide(ops.subtract(x, m), y)
    y = ops.asarray(y) if not ops._is_python_scalar(y) else y
    moved = ops.logical_and(ops.not_equal(m, 0), ops.not_equal(ops.less(y, 0), ops.less(m, 0)))
    div = ops.subtract(div, ops.astype(moved, ops.asarray(div).dtype))
    floor = ops.floor(div)
    out = ops.where(ops.greater(ops.subtract(div, floor), 0.5), ops.add(floor, 1), floor)
    return ops.stop_gradient(out)


@export("round", "around", example='np.array([0.5, 1.5, 2.25]), 1')
def round(x, decimals=0, out=None):
    """Rounds half to even, as numpy.round: rint(x * 10**decimals) / 10**decimals."""
    if out is not None:
        raise NotImplementedError("gradc does not implement np.round with out=")
    rint = ops.rint
    if decimals == 0:
        return rint(x)
    scale = 10.0 ** decimals
    return ops.divide(rint(ops.multiply(x, scale)), scale)
