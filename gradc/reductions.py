"""Reductions and scans composed from the primitives (API.md section 8): var, std, prod, cumsum,
cumprod, average, linalg.norm, count_nonzero, any, all. Signatures are NumPy's (out= and dtype=
are refused by name)."""

import numpy as np

from . import dtypes, ops
from .registry import export
from . import symbolic


def refuse(name, **args):
    """NotImplementedError naming NumPy arguments gradc does not implement, when they are given."""
    given = sorted(k for k, v in args.items() if v is not None and v is not False)
    if given:
        raise NotImplementedError(f"gradc does not implement {name} with {', '.join(given)}=")


def _count(x, axes):
    return symbolic.prod([x.shape[a] for a in axes])


@export("var", example='np.array([[1.0, 2.0, 4.0]]), axis=1, ddof=1')
def var(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    """Variance over axis with `ddof` delta degrees of freedom, as numpy.var."""
    refuse("var", dtype=dtype, out=out)
    x = ops._float(x)
    axes = ops.normalize_axes("var", axis, x.ndim)
    centered = ops.subtract(x, ops.mean(x, axes, keepdims=True))
    return ops.divide(ops.sum(ops.square(centered), axes, keepdims), ops.count_value(x, axes, ddof))


@export("std", example='np.array([1.0, 2.0, 4.0])')
def std(x, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    """Standard deviation: sqrt(var(x, axis, ddof=ddof))."""
    refuse("std", dtype=dtype, out=out)
    return ops.sqrt(var(x, axis, ddof=ddof, keepdims=keepdims))


def _to_last(x, axes):
    """x with `axes` moved to the end and merged into one: (rest..., n)."""
    rest = [i for i in range(x.ndim) if i not in axes]
    moved = ops.transpose(x, rest + list(axes))
    return ops.reshape(moved, tuple(x.shape[i] for i in rest) + (_count(x, axes),))


@export("prod", example='np.array([[1.0, 2.0], [3.0, 4.0]]), axis=0')
def prod(x, axis=None, dtype=None, out=None, keepdims=False):
    """Product over axis, as a tree of multiplications: gradients stay exact where x has zeros
    (unlike prod / x)."""
    refuse("prod", dtype=dtype, out=out)
    x = ops.asarray(x)
    if x.dtype == dtypes.bool_ or x.dtype == dtypes.int32:
        x = ops.astype(x, dtypes.int64)
    axes = ops.normalize_axes("prod", axis, x.ndim)
    flat = _to_last(x, axes)
    n = flat.shape[-1]
    if n == 0:
        flat, n = ops.ones_like(ops.reshape(ops.sum(flat, -1), flat.shape[:-1] + (1,))), 1
    while n > 1:
        if n % 2:
            one = ops.broadcast_to(np.ones((), flat.dtype), flat.shape[:-1] + (1,))
            flat, n = ops.concatenate([flat, one], -1), n + 1
        flat = ops.multiply(flat[..., 0::2], flat[..., 1::2])
        n //= 2
    return ops._keep(x, ops.reshape(flat, flat.shape[:-1]), axes, keepdims)


def _along_last(x, axis, fn):
    """fn applied along `axis` (None: of the flattened x), moved to the last axis and back."""
    x = ops.asarray(x)
    if axis is None:
        return fn(ops.reshape(x, (-1,)))
    (axis,) = ops.normalize_axes("cumsum", axis, x.ndim)
    return ops.moveaxis(fn(ops.moveaxis(x, axis, -1)), -1, axis)


@export("cumsum", example='np.array([[1.0, 2.0], [3.0, 4.0]]), axis=1')
def cumsum(x, axis=None, dtype=None, out=None):
    """Running sums along axis, as one product with a triangle of ones (a BLAS call)."""
    refuse("cumsum", dtype=dtype, out=out)
    x = ops.asarray(x)
    if x.dtype.kind != "f":
        return ops.astype(cumsum(ops.astype(x, dtypes.float64), axis), dtypes.int64)

    def scan(v):
        n = v.shape[-1]
        return ops.matmul(v, np.triu(np.ones((n, n), v.dtype))) if n else v
    return _along_last(x, axis, scan)


@export("cumprod", example='np.array([1.0, 2.0, 3.0, 4.0])')
def cumprod(x, axis=None, dtype=None, out=None):
    """Running products along axis, a log-depth scan of multiplications (exact gradients at 0)."""
    refuse("cumprod", dtype=dtype, out=out)
    x = ops.asarray(x)
    if x.dtype == dtypes.bool_ or x.dtype == dtypes.int32:
        x = ops.astype(x, dtypes.int64)

    def scan(v):
        n, shift = v.shape[-1], 1
        while shift < n:
            ones = ops.broadcast_to(np.ones((), v.dtype), v.shape[:-1] + (shift,))
            v = ops.multiply(v, ops.concatenate([ones, v[..., :n - shift]], -1))
            shift *= 2
        return v
    return _along_last(x, axis, scan)


@export("average", example='np.array([1.0, 2.0, 4.0]), weights=np.array([1.0, 1.0, 2.0])')
def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """Weighted mean sum(a * w) / sum(w) over axis (1-D weights run along axis), as np.average."""
    a = ops._float(a)
    if weights is None:
        avg = ops.mean(a, axis, keepdims)
        total = ops.broadcast_to(np.asarray(a.size / max(ops.asarray(avg).size, 1), a.dtype),
                                 ops.asarray(avg).shape)
    else:
        w = ops.asarray(weights)
        if w.shape != a.shape:
            if axis is None or w.ndim != 1:
                raise TypeError("average: 1D weights expected when shapes of a and weights differ")
            (ax,) = ops.normalize_axes("average", axis, a.ndim)
            w = ops.reshape(w, tuple(w.shape[0] if i == ax else 1 for i in range(a.ndim)))
        total = ops.sum(ops.broadcast_to(w, a.shape), axis, keepdims)
        avg = ops.divide(ops.sum(ops.multiply(a, w), axis, keepdims), total)
    return (avg, total) if returned else avg


@export("linalg.norm", name="norm", example='np.array([3.0, -4.0]), 1')
def norm(x, ord=None, axis=None, keepdims=False):
    """Vector norms (ord None, 1, 2, inf, -inf, 0 or any p) and the Frobenius, 1 and inf matrix
    norms of 2-D x (axis None or a pair), as numpy.linalg.norm."""
    x = ops._float(x)
    if axis is None and (x.ndim == 1 or ord is None):
        axes = tuple(range(x.ndim))
        matrix = x.ndim == 2 and ord is not None
    else:
        axes = ops.normalize_axes("norm", axis if axis is not None else (0, 1), x.ndim)
        matrix = len(axes) == 2
    if matrix or (ord == "fro"):
        return _matrix_norm(x, ord, axes, keepdims)
    a = ops.abs(x)
    if ord is None or ord == 2:
        return ops.sqrt(ops.sum(ops.square(x), axes, keepdims))
    if ord == np.inf:
        return ops.max(a, axes, keepdims)
    if ord == -np.inf:
        return ops.min(a, axes, keepdims)
    if ord == 0:
        return ops.sum(ops.astype(ops.not_equal(x, 0), x.dtype), axes, keepdims)
    if ord == 1:
        return ops.sum(a, axes, keepdims)
    return ops.power(ops.sum(ops.power(a, ord), axes, keepdims), 1.0 / ord)


def _matrix_norm(x, ord, axes, keepdims):
    if ord in (None, "fro"):
        return ops.sqrt(ops.sum(ops.square(x), axes, keepdims))
    rows, cols = axes
    if ord in (1, -1, np.inf, -np.inf):
        summed, other = (rows, cols) if ord in (1, -1) else (cols, rows)
        sums = ops.sum(ops.abs(x), summed, keepdims=True)
        pick = ops.max if ord in (1, np.inf) else ops.min
        out = pick(sums, other, keepdims=True)
        return out if keepdims else ops.squeeze(out, axes)
    raise NotImplementedError(f"gradc does not implement np.linalg.norm with ord={ord!r} for "
                              "matrices (it implements None, 'fro', 1, -1, inf, -inf)")


@export("count_nonzero", example='np.array([0.0, 2.0, 3.0])')
def count_nonzero(a, axis=None, keepdims=False):
    """The number of non-zero elements (int64)."""
    return ops.sum(ops.astype(ops.not_equal(a, 0), dtypes.int64), axis, keepdims)


@export("any", example='np.array([0.0, 2.0])')
def any(a, axis=None, out=None, keepdims=False):
    """Whether any element along axis is non-zero."""
    refuse("any", out=out)
    return ops.greater(count_nonzero(a, axis, keepdims), 0)


@export("all", example='np.array([0.0, 2.0])')
def all(a, axis=None, out=None, keepdims=False):
    """Whether every element along axis is non-zero."""
    refuse("all", out=out)
    a = ops.asarray(a)
    zeros = ops.sum(ops.astype(ops.equal(a, 0), dtypes.int64), axis, keepdims)
    return ops.equal(zeros, 0)


