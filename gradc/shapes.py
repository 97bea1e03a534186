"""Shape functions composed from the primitives (API.md section 8): stacking and splitting, repeat,
tile, pad, roll, flips, axis moves, diagonals and triangles, products of tensors, take."""
import builtins
import numbers

import numpy as np

from . import core, ops
from .errors import ShapeError, user_location
from .registry import export
from .symbolic import prod


def _axis(name, axis, ndim):
    return ops.normalize_axes(name, axis, ndim)[0]


@export("moveaxis", example='np.zeros((2, 3, 4)), 0, -1')
def moveaxis(x, source, destination):
    """Moves axes of x to new positions, as numpy.moveaxis."""
    x = ops.asarray(x)
    src = [s % x.ndim for s in ((source,) if isinstance(source, numbers.Integral) else source)]
    dst = [d % x.ndim for d in ((destination,) if isinstance(destination, numbers.Integral)
                                else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: `source` and `destination` need the same number of elements")
    order = [i for i in range(x.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return ops.transpose(x, order)


ops.moveaxis = moveaxis      # for the other composites


@export("swapaxes", example='np.arange(6.0).reshape(2, 3), 0, 1')
def swapaxes(x, axis1, axis2):
    x = ops.asarray(x)
    perm = list(range(x.ndim))
    a, b = axis1 % x.ndim, axis2 % x.ndim
    perm[a], perm[b] = perm[b], perm[a]
    return ops.transpose(x, perm)


def _atleast(n, arrays):
    out = []
    for x in arrays:
        x = ops.asarray(x)
        if x.ndim < n:
            shape = {1: (1,), 2: (1,) * (2 - x.ndim) + x.shape,
                     3: (1,) + x.shape + (1,) if x.ndim == 1 else (1, 1, 1) if x.ndim == 0
                     else x.shape + (1,)}[n]
            x = ops.reshape(x, shape)
        out.append(x)
    return out[0] if len(out) == 1 else tuple(out)


@export("atleast_1d", example='np.array(2.0)')
def atleast_1d(*arrays):
    return _atleast(1, arrays)


@export("atleast_2d", example='np.array([1.0, 2.0])')
def atleast_2d(*arrays):
    return _atleast(2, arrays)


@export("atleast_3d", example='np.array([1.0, 2.0])')
def atleast_3d(*arrays):
    return _atleast(3, arrays)


@export("ravel", example='np.arange(6.0).reshape(2, 3)')
def ravel(x, order="C"):
    return ops.reshape(x, (-1,))


@export("copy", example='np.array([1.0, 2.0])')
def copy(x, order="K", subok=False):
    """A new value equal to x: item assignment to the copy leaves x as it was."""
    from .eager import Tensor
    if isinstance(x, (core.Tracer, Tensor)):
        # A node of its own (a reshape to its own shape, free in C): assigning into the copy
        # rebinds it, never x; gradients reach x through it.
        return ops.bind(ops.P.reshape, x, shape=x.shape)
    return np.array(ops.asarray(x), copy=True)


@export("hstack", example='[np.ones(2), np.zeros(3)]')
def hstack(tup, dtype=None, casting="same_kind"):
    xs = [atleast_1d(x) for x in tup]
    return ops.concatenate(xs, 0 if xs[0].ndim == 1 else 1)


@export("vstack", "row_stack", example='[np.ones(2), np.zeros(2)]')
def vstack(tup, dtype=None, casting="same_kind"):
    return ops.concatenate([atleast_2d(x) for x in tup], 0)


@export("column_stack", example='[np.ones(2), np.zeros(2)]')
def column_stack(tup):
    xs = [ops.asarray(x) for x in tup]
    return ops.concatenate([ops.reshape(x, (-1, 1)) if x.ndim < 2 else x for x in xs], 1)


@export("dstack", example='[np.ones((2, 2)), np.zeros((2, 2))]')
def dstack(tup):
    return ops.concatenate([atleast_3d(x) for x in tup], 2)


@export("array_split", example='np.arange(6.0), 3')
def array_split(x, indices_or_sections, axis=0):
    """Splits x along axis into pieces (a count: the first ones one longer) or at indices."""
    x = ops.asarray(x)
    axis = _axis("array_split", axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError("array_split: number sections must be larger than 0.")
        sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i) % n if i < 0 else int(i), 0), n)
                        for i in indices_or_sections] + [n]
    return [ops.slice_axis(x, axis, a, builtins.max(a, b)) for a, b in zip(bounds, bounds[1:])]


@export("split", example='np.arange(6.0), [2, 4]')
def split(x, indices_or_sections, axis=0):
    x = ops.asarray(x)
    if isinstance(indices_or_sections, numbers.Integral):
        n = x.shape[_axis("split", axis, x.ndim)]
        if n % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
    return array_split(x, indices_or_sections, axis)


@export("hsplit", example='np.arange(8.0).reshape(2, 4), 2')
def hsplit(x, indices_or_sections):
    x = ops.asarray(x)
    return split(x, indices_or_sections, 1 if x.ndim > 1 else 0)


@export("vsplit", example='np.arange(8.0).reshape(4, 2), 2')
def vsplit(x, indices_or_sections):
    x = ops.asarray(x)
    if x.ndim < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(x, indices_or_sections, 0)


def _gather_axis(x, index, axis):
    """x[..., index, ...] with a concrete or traced integer index array along axis."""
    return ops.getitem(x, (builtins.slice(None),) * axis + (index,))


@export("take", example='np.array([4.0, 5.0, 6.0]), [2, 0]')
def take(a, indices, axis=None, out=None, mode="raise"):
    """Elements of a at indices along axis (of the flattened a when axis is None)."""
    if out is not None or mode != "raise":
        raise NotImplementedError("gradc implements np.take without out= and with mode='raise'")
    a = ops.asarray(a)
    if axis is None:
        return ops.getitem(ravel(a), ops.asarray(indices))
    return _gather_axis(a, ops.asarray(indices), _axis("take", axis, a.ndim))


@export("take_along_axis", example='np.array([[4.0, 5.0], [6.0, 7.0]]), np.array([[1], [0]]), 1')
def take_along_axis(arr, indices, axis):
    """arr's elements at indices along axis, the other axes matched by position (broadcast)."""
    arr, indices = ops.asarray(arr), ops.asarray(indices)
    if axis is None:
        return take_along_axis(ravel(arr), indices, 0)
    axis = _axis("take_along_axis", axis, arr.ndim)
    if indices.ndim != arr.ndim:
        raise ValueError("take_along_axis: indices and arr must have the same number of dimensions")
    key = []
    for d in range(arr.ndim):
        if d == axis:
            key.append(indices)
        else:
            shape = [1] * arr.ndim
            shape[d] = arr.shape[d]
            key.append(np.arange(arr.shape[d]).reshape(shape))
    return ops.getitem(arr, tuple(key))


@export("repeat", example='np.array([1.0, 2.0]), 2')
def repeat(a, repeats, axis=None):
    """Each element repeated `repeats` times along axis (repeats: an int or one per element)."""
    a = ops.asarray(a)
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axis("repeat", axis, a.ndim)
    index = np.repeat(np.arange(a.shape[axis]), np.asarray(repeats))
    return _gather_axis(a, index, axis)


@export("tile", example='np.array([1.0, 2.0]), (2, 2)')
def tile(a, reps):
    """a repeated reps times along each axis, by broadcasting."""
    a = ops.asarray(a)
    reps = (reps,) if isinstance(reps, numbers.Integral) else tuple(reps)
    ndim = builtins.max(a.ndim, len(reps))
    shape = (1,) * (ndim - a.ndim) + a.shape
    reps = (1,) * (ndim - len(reps)) + reps
    a = ops.reshape(a, tuple(s for d in shape for s in (1, d)))
    a = ops.broadcast_to(a, tuple(s for r, d in zip(reps, shape) for s in (r, d)))
    return ops.reshape(a, tuple(r * d for r, d in zip(reps, shape)))


def _pairs(width, ndim, name):
    w = np.asarray(width)
    if w.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, got {width!r}")
    return np.broadcast_to(w, (ndim, 2)).tolist()


@export("pad", example='np.array([1.0, 2.0]), (1, 2), mode="edge"')
def pad(array, pad_width, mode="constant", constant_values=0, **kwargs):
    """Pads with a constant ('constant') or the edge values ('edge'), as numpy.pad."""
    if mode not in ("constant", "edge") or kwargs:
        raise NotImplementedError(f"gradc implements np.pad with mode 'constant' or 'edge', not "
                                  f"{mode!r}" + (f" with {sorted(kwargs)}" if kwargs else ""))
    x = ops.asarray(array)
    widths = _pairs(pad_width, x.ndim, "pad_width")
    values = np.broadcast_to(np.asarray(constant_values), (x.ndim, 2)).tolist()
    for d, ((before, after), (vb, va)) in enumerate(zip(widths, values)):
        if before < 0 or after < 0:
            raise ValueError("pad: index can't contain negative values")
        parts = []
        for count, value, edge in ((before, vb, 0), (after, va, x.shape[d] - 1)):
            shape = x.shape[:d] + (count,) + x.shape[d + 1:]
            if mode == "constant":
                block = ops.broadcast_to(np.asarray(value, x.dtype), shape)
            else:
                block = ops.broadcast_to(ops.slice_axis(x, d, edge, edge + 1), shape)
            parts.append(block if count else None)
        pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
        x = ops.concatenate(pieces, d) if len(pieces) > 1 else x
    return x


@export("roll", example='np.arange(5.0), 2')
def roll(a, shift, axis=None):
    """Elements shifted along axis, those past the end coming back at the start."""
    a = ops.asarray(a)
    if axis is None:
        return ops.reshape(roll(ravel(a), shift, 0), a.shape)
    shifts = np.broadcast_to(shift, np.shape(axis)).tolist() if not isinstance(axis, int) \
        else [shift]
    axes = [axis] if isinstance(axis, int) else list(axis)
    for s, ax in zip(np.atleast_1d(shifts), axes):
        ax = _axis("roll", ax, a.ndim)
        n = a.shape[ax]
        s = int(s) % n if n else 0
        if s:
            a = ops.concatenate([ops.slice_axis(a, ax, n - s, n), ops.slice_axis(a, ax, 0, n - s)],
                                ax)
    return a


@export("flip", example='np.arange(6.0).reshape(2, 3), 1')
def flip(m, axis=None):
    m = ops.asarray(m)
    axes = ops.normalize_axes("flip", axis, m.ndim)
    reverse, whole = builtins.slice(None, None, -1), builtins.slice(None)
    return ops.getitem(m, tuple(reverse if i in axes else whole for i in range(m.ndim)))


@export("fliplr", example='np.arange(6.0).reshape(2, 3)')
def fliplr(m):
    return flip(m, 1)


@export("flipud", example='np.arange(6.0).reshape(2, 3)')
def flipud(m):
    return flip(m, 0)


@export("diagonal", example='np.arange(9.0).reshape(3, 3), 1')
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal at `offset` of the matrices on axes (axis1, axis2), as the last axis."""
    a = moveaxis(a, (axis1, axis2), (-2, -1))
    n, m = a.shape[-2:]
    rows = np.arange(builtins.max(0, -offset), builtins.min(n, m - offset))
    return ops.getitem(a, (Ellipsis, rows, rows + offset))


@export("trace", example='np.arange(9.0).reshape(3, 3)')
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    if dtype is not None or out is not None:
        raise NotImplementedError("gradc does not implement np.trace with dtype= or out=")
    return ops.sum(diagonal(a, offset, axis1, axis2), -1)


@export("diag", example='np.array([1.0, 2.0]), 1')
def diag(v, k=0):
    """The k-th diagonal of a matrix, or a matrix with v on its k-th diagonal."""
    v = ops.asarray(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ValueError("diag: input must be 1- or 2-d")
    n = v.shape[0] + abs(k)
    rows, cols = np.indices((n, n))
    on = cols - rows == k
    index = np.clip(np.minimum(rows, cols), 0, builtins.max(v.shape[0] - 1, 0))
    return ops.where(on, ops.getitem(v, index), 0)


def _triangle(m, keep):
    m = ops.asarray(m)
    return ops.where(keep(np.ones(m.shape[-2:], bool)), m, 0)


@export("triu", example='np.ones((3, 3)), 1')
def triu(m, k=0):
    return _triangle(m, lambda ones: np.triu(ones, k))


@export("tril", example='np.ones((3, 3))')
def tril(m, k=0):
    return _triangle(m, lambda ones: np.tril(ones, k))


@export("outer", example='np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])')
def outer(a, b, out=None):
    return ops.multiply(ops.reshape(a, (-1, 1)), ops.reshape(b, (1, -1)))


@export("tensordot", example='np.ones((2, 3)), np.ones((3, 4)), 1')
def tensordot(a, b, axes=2):
    """Sums products over the given axes of a and b, as one matrix product."""
    a, b = ops.asarray(a), ops.asarray(b)
    if isinstance(axes, numbers.Integral):
        axes_a, axes_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        axes_a, axes_b = [list(np.atleast_1d(ax)) for ax in axes]
    axes_a = [int(i) % a.ndim for i in axes_a]
    axes_b = [int(i) % b.ndim for i in axes_b]
    if [a.shape[i] for i in axes_a] != [b.shape[i] for i in axes_b]:
        raise ShapeError(f"tensordot: shape-mismatch for sum: {a.shape} on axes {axes_a} and "
                         f"{b.shape} on axes {axes_b} (at {user_location()})")
    free_a = [i for i in range(a.ndim) if i not in axes_a]
    free_b = [i for i in range(b.ndim) if i not in axes_b]
    k = prod([a.shape[i] for i in axes_a])
    # NOTE: sizes, not -1: with k = 0 (a zero-size axis summed) -1 would be undetermined
    a2 = ops.reshape(ops.transpose(a, free_a + axes_a), (prod([a.shape[i] for i in free_a]), k))
    b2 = ops.reshape(ops.transpose(b, axes_b + free_b), (k, prod([b.shape[i] for i in free_b])))
    shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b)
    return ops.reshape(ops.matmul(a2, b2), shape)


@export("inner", example='np.array([1.0, 2.0]), np.array([3.0, 4.0])')
def inner(a, b):
    a, b = ops.asarray(a), ops.asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return ops.multiply(a, b)
    return tensordot(a, b, ([-1], [-1]))


@export("vdot", example='np.array([1.0, 2.0]), np.array([3.0, 4.0])')
def vdot(a, b):
    return ops.sum(ops.multiply(ravel(a), ravel(b)))


@export("lib.stride_tricks.sliding_window_view", example='np.arange(5.0), 3')
def sliding_window_view(x, window_shape, axis=None, *, subok=False, writeable=False):
    """Windows of x along the axes, the window dimensions last, as NumPy's (a gather, not a view:
    it is read-only in NumPy too)."""
    x = ops.asarray(x)
    window = (window_shape,) if isinstance(window_shape, numbers.Integral) else tuple(window_shape)
    axes = tuple(range(x.ndim)) if axis is None else (
        (axis,) if isinstance(axis, numbers.Integral) else tuple(axis))
    if len(window) != len(axes):
        raise ValueError("sliding_window_view: window_shape and axis need the same length")
    out = x
    for w, ax in zip(window, axes):
        ax %= x.ndim
        n = out.shape[ax]
        if not 0 <= w <= n:
            raise ValueError("sliding_window_view: window shape cannot be larger than input array "
                             "shape")
        index = np.arange(n - w + 1)[:, None] + np.arange(w)[None, :]
        out = moveaxis(_gather_axis(out, index, ax), ax + 1, -1)
    return out
