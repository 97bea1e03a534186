"""gradc's operations (API.md section 3): NumPy semantics — promotion, broadcasting, axes — on top of
the primitives. Each works on NumPy arrays (computed at once), gc.Tensor (eager, recorded for
backward) and traced values (recorded into the graph), because all of them end in `core.bind`."""
import builtins
import numbers

import numpy as np

from . import core, dtypes
from . import primitives as P
from .errors import ShapeError, user_location
from .registry import export, numpy_reduction
from .symbolic import Dim, SymbolicShapeError, as_shape, prod


def bind(prim, *args, **params):
    return core.bind(prim, *args, **params)


# ---- conversion, promotion, broadcasting ---------------------------------------------------------

def _is_array_like(x):
    return isinstance(x, (np.ndarray, core.Tracer)) or type(x).__name__ == "Tensor"


def _is_python_scalar(x):
    return isinstance(x, (bool, int, float)) and not isinstance(x, np.generic)


def asarray(x):
    """Tracers and tensors as they are; NumPy scalars, lists and Python scalars as NumPy arrays."""
    if _is_array_like(x) and not (isinstance(x, np.ndarray) and x.dtype == object):
        if isinstance(x, np.ndarray) and x.dtype not in dtypes.SUPPORTED:
            return x.astype(dtypes.canonical(x.dtype))
        return x
    array = np.asarray(x)
    if array.dtype == object and array.size and builtins.all(
            isinstance(e, core.Tracer) or _is_python_scalar(e) for e in array.flat):
        # np.array([x, y]) of traced scalars (core.Tracer.__array__): one node again
        return reshape(stack(list(array.flat)), array.shape)
    if array.dtype == object:
        raise TypeError(f"gradc cannot use a value of type {type(x).__name__} as an array")
    return array.astype(dtypes.canonical(array.dtype), copy=False)


def _weak(x):
    return _is_python_scalar(x) or (isinstance(x, core.Tracer) and x.weak)


def _dtype_of(x):
    if _is_python_scalar(x):
        return np.result_type(type(x)) if not isinstance(x, bool) else dtypes.bool_
    return asarray(x).dtype


def _promote(*xs):
    """Converts operands to their common dtype (NEP 50: Python scalars are weakly typed). When
    tracing, constants become nodes first, so broadcasting them stays symbolic (no big literals)."""
    target = dtypes.promote([(_dtype_of(x), _weak(x)) for x in xs])
    trace = core.top_trace(xs)
    if trace is not None:
        xs = [lift_const(trace, x, target) for x in xs]
    out = []
    for x in xs:
        if _is_python_scalar(x):
            out.append(np.asarray(x, dtype=target))
        else:
            x = asarray(x)
            out.append(x if x.dtype == target else bind(P.cast, x, dtype=target))
    return out


def lift_const(trace, x, dtype=None):
    """x as a tracer of trace (constants become const nodes, Python scalars of the given dtype)."""
    if isinstance(x, core.Tracer):
        return x
    value = np.asarray(x, dtype=dtype) if _is_python_scalar(x) else asarray(x)
    return core.Tracer(trace.node_of(value), trace)


def broadcast_shapes(op, *shapes):
    ndim = builtins.max(len(s) for s in shapes)
    result = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            raise ShapeError(f"{op}: shapes {', '.join(str(tuple(s)) for s in shapes)} cannot be "
                             f"broadcast together (at {user_location()})")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


@export("broadcast_to")
def broadcast_to(x, shape):
    """x broadcast to shape, as numpy.broadcast_to; the gradient sums over the copies.

    >>> import numpy as np, gradc as gc
    >>> gc.broadcast_to(np.array([1.0, 2.0]), (2, 2))
    array([[1., 2.],
           [1., 2.]])
    """
    x = asarray(x)
    shape = as_shape(shape)
    return x if x.shape == shape else bind(P.broadcast_to, x, shape=shape)


def _elementwise(prim, *xs):
    weak = builtins.all(_weak(x) for x in xs)
    xs = _promote(*xs)
    shape = broadcast_shapes(prim.name, *[x.shape for x in xs])
    out = bind(prim, *[broadcast_to(x, shape) for x in xs])
    if weak and isinstance(out, core.Tracer):
        out.weak = True
    return out


def _float(x):
    """x promoted to a floating dtype (ints and bools become float64, as in NumPy)."""
    x = asarray(x) if not _is_python_scalar(x) else np.asarray(float(x))
    return x if dtypes.is_float(x.dtype) else bind(P.cast, x, dtype=dtypes.float64)


def _promote_float(x, y):
    """x and y at their common dtype, a float one (integers and bools compute as float64, as in
    NumPy). Promoted before the float conversion: a Python scalar stays weakly typed (float32 x
    with 1.5 is float32), which converting it to an array first would lose."""
    x, y = _promote(x, y)
    return (x, y) if dtypes.is_float(x.dtype) else (_float(x), _float(y))


# The NumPy expression each generated function's docstring example compares with, and the
# example's input where [0.5, 1.5] is outside the function's domain.
_NUMPY_FORM = {"sigmoid": "1 / (1 + np.exp(-x))", "softplus": "np.log1p(np.exp(x))",
               "erf": "np.vectorize(__import__('math').erf)(x)"}
_EXAMPLE_X = {"arccosh": "[1.5, 2.5]", "arcsin": "[0.25, 0.5]", "arccos": "[0.25, 0.5]",
              "arctanh": "[0.25, 0.5]"}


def _unary_float(prim, ufunc=True):
    def op(x):
        return bind(prim, _float(x))
    op.__name__ = prim.name
    op.__qualname__ = prim.name      # a module-level name for help() and the API reference
    form = _NUMPY_FORM.get(prim.name, f"np.{prim.name}(x)")
    op.__doc__ = (f"Elementwise {prim.name}, as {form} (integers compute as float64); "
                  f"differentiable (zero gradient where piecewise constant).\n\n"
                  f">>> import numpy as np, gradc as gc\n"
                  f">>> x = np.array({_EXAMPLE_X.get(prim.name, '[0.5, 1.5]')})\n"
                  f">>> bool(np.allclose(gc.{prim.name}(x), {form}))\nTrue\n")
    return export(ufunc=prim.name if ufunc else ())(op)


def _binary_float(prim):
    def op(x, y):
        return _elementwise(prim, *_promote_float(x, y))
    op.__name__ = prim.name
    op.__qualname__ = prim.name
    op.__doc__ = (f"Elementwise np.{prim.name}(x, y) with broadcasting; differentiable.\n\n"
                  f">>> import numpy as np, gradc as gc\n"
                  f">>> x, y = np.array([0.5, 1.5]), np.array([2.0, -0.75])\n"
                  f">>> bool(np.allclose(gc.{prim.name}(x, y), np.{prim.name}(x, y)))\nTrue\n")
    return op


def _from_entries():
    """gc.<name> for every elementwise primitive marked public, and np.<ufunc> dispatch to it: the
    primitive's entry is all there is to write (README: adding an elementwise op)."""
    for prim in P.PRIMITIVES.values():
        if not prim.public or prim.name in globals():
            continue
        op = _unary_float(prim, ufunc=False) if prim.kind == "unary" else _binary_float(prim)
        globals()[prim.name] = export(ufunc=getattr(prim.impl, "__name__", ()) if isinstance(
            prim.impl, np.ufunc) else ())(op)


# ---- elementwise ---------------------------------------------------------------------------------

@export(ufunc="add")
def add(x, y):
    """x + y, elementwise with NumPy broadcasting.

    >>> import numpy as np, gradc as gc
    >>> gc.add(np.ones(3), 2.0)
    array([3., 3., 3.])
    """
    return _elementwise(P.add, x, y)


@export(ufunc="subtract")
def subtract(x, y):
    """x - y, elementwise with NumPy broadcasting.

    >>> import numpy as np, gradc as gc
    >>> gc.subtract(np.array([3.0, 1.0]), 1.0)
    array([2., 0.])
    """
    return _elementwise(P.sub, x, y)


@export(ufunc="multiply")
def multiply(x, y):
    """x * y, elementwise with NumPy broadcasting.

    >>> import numpy as np, gradc as gc
    >>> gc.multiply(np.array([1.0, 2.0]), np.array([[1.0], [3.0]]))
    array([[1., 2.],
           [3., 6.]])
    """
    return _elementwise(P.mul, x, y)


@export(ufunc=("divide", "true_divide"))
def divide(x, y):
    """x / y, true division (integers divide as float64, as numpy.divide).

    >>> import numpy as np, gradc as gc
    >>> gc.divide(np.array([1, 2]), 4)
    array([0.25, 0.5 ])
    """
    return _elementwise(P.div, *_promote_float(x, y))


@export(ufunc="power")
def power(x, y):
    """x ** y elementwise; the gradient of x ** 0 is 0, at x = 0 too.

    >>> import numpy as np, gradc as gc
    >>> gc.power(np.array([2.0, 3.0]), 2)
    array([4., 9.])
    """
    return _elementwise(P.pow, x, y)


@export(ufunc="negative")
def negative(x):
    """-x, elementwise.

    >>> import numpy as np, gradc as gc
    >>> gc.negative(np.array([1.0, -2.0]))
    array([-1.,  2.])
    """
    return bind(P.neg, asarray(x))


@export(ufunc="square")
def square(x):
    """x * x, elementwise.

    >>> import numpy as np, gradc as gc
    >>> gc.square(np.array([-2.0, 3.0]))
    array([4., 9.])
    """
    x = asarray(x)
    return multiply(x, x)


exp = _unary_float(P.exp)
log = _unary_float(P.log)
log1p = _unary_float(P.log1p)
expm1 = _unary_float(P.expm1)
sqrt = _unary_float(P.sqrt)
sin = _unary_float(P.sin)
cos = _unary_float(P.cos)
tanh = _unary_float(P.tanh)
sigmoid = _unary_float(P.sigmoid, ufunc=False)
softplus = _unary_float(P.softplus, ufunc=False)


@export(ufunc=("absolute", "fabs"))
def abs(x):
    """|x|, elementwise; abs'(0) = 0, as PyTorch.

    >>> import numpy as np, gradc as gc
    >>> gc.abs(np.array([-2.0, 0.0, 3.0]))
    array([2., 0., 3.])
    >>> gc.grad(lambda x: gc.sum(gc.abs(x)))(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    """
    return bind(P.abs, asarray(x))


@export(ufunc="sign")
def sign(x):
    """-1, 0 or 1 by the sign of x (NaN stays NaN); its gradient is 0.

    >>> import numpy as np, gradc as gc
    >>> gc.sign(np.array([-2.0, 0.0, 3.0]))
    array([-1.,  0.,  1.])
    """
    return bind(P.sign, asarray(x))


@export()
def relu(x):
    """max(x, 0) with relu'(0) = 0, as PyTorch.

    >>> import numpy as np, gradc as gc
    >>> gc.relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    >>> gc.grad(lambda x: gc.sum(gc.relu(x)))(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 1.])
    """
    return where(greater(x, 0), x, 0)


@export(ufunc="maximum")
def maximum(x, y):
    """The larger of x and y, elementwise (NaN propagates); on ties each gets half the gradient.

    >>> import numpy as np, gradc as gc
    >>> gc.maximum(np.array([1.0, 5.0]), 3.0)
    array([3., 5.])
    """
    return _elementwise(P.maximum, x, y)


@export(ufunc="minimum")
def minimum(x, y):
    """The smaller of x and y, elementwise (NaN propagates); on ties each gets half the gradient.

    >>> import numpy as np, gradc as gc
    >>> gc.minimum(np.array([1.0, 5.0]), 3.0)
    array([1., 3.])
    """
    return _elementwise(P.minimum, x, y)


@export("where")
def where(condition, x, y):
    """x where condition holds, else y (broadcasting all three); the gradient flows to the chosen one.

    Inside gc.jit this is how a value decides between two results (Python's ``if`` cannot).

    >>> import numpy as np, gradc as gc
    >>> x = np.array([-1.0, 2.0])
    >>> gc.where(x > 0, x, 0.1 * x)
    array([-0.1,  2. ])
    """
    condition = asarray(condition)
    trace = core.top_trace((condition, x, y))
    if trace is not None:
        condition = lift_const(trace, condition)
    if condition.dtype != dtypes.bool_:
        condition = not_equal(condition, 0)
    x, y = _promote(x, y)
    shape = broadcast_shapes("where", condition.shape, x.shape, y.shape)
    # NOTE: the result is a strongly typed array even when x and y are Python scalars, as
    # np.where's is (NEP 50): where(c, 1.0, 2.0) * x_f32 is float64.
    return bind(P.where, broadcast_to(condition, shape), broadcast_to(x, shape), broadcast_to(y, shape))


@export("clip", numpy_call=lambda fn: lambda x, a_min=None, a_max=None, out=None, **kw:
        fn(x, kw.get("min", a_min), kw.get("max", a_max)))
def clip(x, lo=None, hi=None):
    """Limits x to [lo, hi]; the gradient passes where lo <= x <= hi.

    >>> import numpy as np, gradc as gc
    >>> gc.clip(np.array([-2.0, 0.5, 3.0]), -1.0, 1.0)
    array([-1. ,  0.5,  1. ])
    """
    if lo is not None:
        x = where(less(x, lo), lo, x)
    if hi is not None:
        x = where(greater(x, hi), hi, x)
    return x


@export()
def stop_gradient(x):
    """The value of x, with no gradient flowing through it.

    >>> import numpy as np, gradc as gc
    >>> gc.grad(lambda x: gc.sum(x * gc.stop_gradient(x)))(np.array([3.0]))
    array([3.])
    """
    return bind(P.stop_gradient, asarray(x))


@export("astype")
def astype(x, dtype):
    """x converted to dtype (float32, float64, int32, int64 or bool), as ndarray.astype.

    >>> import numpy as np, gradc as gc
    >>> gc.astype(np.array([1.7, -1.7]), np.int64)
    array([ 1, -1])
    """
    x = asarray(x)
    dtype = dtypes.canonical(dtype)
    return x if x.dtype == dtype else bind(P.cast, x, dtype=dtype)


def _comparison(prim):
    def op(x, y):
        return _elementwise(prim, x, y)
    op.__name__ = prim.name
    op.__qualname__ = prim.name
    op.__doc__ = (f"numpy.{prim.name}(x, y): a bool array, with broadcasting; no gradient.\n\n"
                  f">>> import numpy as np, gradc as gc\n"
                  f">>> gc.{prim.name}(np.array([1.0, 2.0, 3.0]), 2.0).tolist() == "
                  f"np.{prim.name}([1.0, 2.0, 3.0], 2.0).tolist()\nTrue\n")
    return export(ufunc=prim.name)(op)


equal = _comparison(P.equal)
not_equal = _comparison(P.not_equal)
less = _comparison(P.less)
less_equal = _comparison(P.less_equal)
greater = _comparison(P.greater)
greater_equal = _comparison(P.greater_equal)


@export(ufunc="logical_and", public=False)
def logical_and(x, y):
    return _elementwise(P.logical_and, astype(x, bool), astype(y, bool))


@export(ufunc="logical_or", public=False)
def logical_or(x, y):
    return _elementwise(P.logical_or, astype(x, bool), astype(y, bool))


@export(ufunc="logical_not", public=False)
def logical_not(x):
    return bind(P.logical_not, astype(x, bool))


@export("zeros_like", numpy_call=lambda fn: lambda x, dtype=None, **kw: fn(x, dtype))
def zeros_like(x, dtype=None):
    """Zeros of x's shape and dtype (or ``dtype``).

    >>> import numpy as np, gradc as gc
    >>> gc.zeros_like(np.ones((2, 2), np.float32))
    array([[0., 0.],
           [0., 0.]], dtype=float32)
    """
    x = asarray(x)
    return _traced_like(x, broadcast_to(np.zeros((), dtype or x.dtype), x.shape))


@export("ones_like", numpy_call=lambda fn: lambda x, dtype=None, **kw: fn(x, dtype))
def ones_like(x, dtype=None):
    """Ones of x's shape and dtype (or ``dtype``).

    >>> import numpy as np, gradc as gc
    >>> gc.ones_like(np.zeros(3))
    array([1., 1., 1.])
    """
    x = asarray(x)
    return _traced_like(x, broadcast_to(np.ones((), dtype or x.dtype), x.shape))


def _traced_like(x, value):
    """value as a node of x's trace when x is traced: a buffer made like a traced value can be
    assigned into (`out = np.zeros_like(h); out[i] = ...`)."""
    if isinstance(x, core.Tracer) and not isinstance(value, core.Tracer):
        fill = np.zeros((), value.dtype) + (value.flat[0] if value.size else 0)
        return broadcast_to(lift_const(x.trace, fill), value.shape)
    return value


# ---- reductions ----------------------------------------------------------------------------------

def normalize_axes(op, axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ShapeError(f"{op}: axis {a} is out of range for {ndim}-d input (at {user_location()})")
        out.append(a % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis} (at {user_location()})")
    return tuple(sorted(out))


def _keep(x, reduced, axes, keepdims):
    if not keepdims:
        return reduced
    return reshape(reduced, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))


def sum_axes(x, axes):
    """Sum over a normalised tuple of axes (used by derivative rules)."""
    return bind(P.sum, x, axes=tuple(axes)) if axes else x


@export("sum", numpy_call=numpy_reduction)
def sum(x, axis=None, keepdims=False):
    """Sum over axis (None: all), as numpy.sum; bools and ints sum as int64.

    >>> import numpy as np, gradc as gc
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> gc.sum(x), gc.sum(x, axis=0), gc.sum(x, axis=1, keepdims=True).shape
    (array(15.), array([3., 5., 7.]), (2, 1))
    """
    x = asarray(x)
    if x.dtype == dtypes.bool_ or (x.dtype == dtypes.int32):
        x = astype(x, dtypes.int64)
    axes = normalize_axes("sum", axis, x.ndim)
    return _keep(x, sum_axes(x, axes), axes, keepdims)


@export("mean", numpy_call=numpy_reduction)
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over axis (None: all), as numpy.mean (integers average as float64).

    >>> import numpy as np, gradc as gc
    >>> gc.mean(np.array([[1.0, 2.0], [3.0, 6.0]]), axis=0)
    array([2., 4.])
    """
    x = _float(x)
    axes = normalize_axes("mean", axis, x.ndim)
    return divide(sum(x, axis, keepdims), count_value(x, axes))


@export("max", "amax", numpy_call=numpy_reduction)
def max(x, axis=None, keepdims=False):
    """Maximum over axis (None: all); the gradient is split equally among tied maxima.

    >>> import numpy as np, gradc as gc
    >>> gc.max(np.array([[1.0, 4.0], [3.0, 2.0]]), axis=1)
    array([4., 3.])
    >>> gc.grad(lambda x: gc.max(x))(np.array([1.0, 5.0, 5.0]))
    array([0. , 0.5, 0.5])
    """
    x = asarray(x)
    axes = normalize_axes("max", axis, x.ndim)
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise ValueError(f"max: zero-size reduction over shape {x.shape} (at {user_location()})")
    return _keep(x, bind(P.max, x, axes=axes) if axes else x, axes, keepdims)


@export("min", "amin", numpy_call=numpy_reduction)
def min(x, axis=None, keepdims=False):
    """Minimum over axis (None: all); the gradient is split equally among tied minima.

    >>> import numpy as np, gradc as gc
    >>> gc.min(np.array([[1.0, 4.0], [3.0, 2.0]]), axis=0)
    array([1., 2.])
    """
    return negative(max(negative(x), axis, keepdims))


@export("argmax", numpy_call=lambda fn: lambda x, axis=None, out=None, keepdims=False:
        fn(x, axis, keepdims))
def argmax(x, axis=None, keepdims=False):
    """Index of the (first) maximum along axis (None: of the flattened array), as int64.

    >>> import numpy as np, gradc as gc
    >>> gc.argmax(np.array([[1.0, 4.0, 2.0], [7.0, 0.0, 7.0]]), axis=1)
    array([1, 0])
    """
    x = asarray(x)
    if axis is None:
        out = bind(P.argmax, reshape(x, (-1,)), axis=0)
        return reshape(out, (1,) * x.ndim) if keepdims else out
    (axis,) = normalize_axes("argmax", axis, x.ndim)
    return _keep(x, bind(P.argmax, x, axis=axis), (axis,), keepdims)


@export("argmin", numpy_call=lambda fn: lambda x, axis=None, out=None, keepdims=False:
        fn(x, axis, keepdims))
def argmin(x, axis=None, keepdims=False):
    """Index of the (first) minimum along axis (None: of the flattened array), as int64.

    >>> import numpy as np, gradc as gc
    >>> gc.argmin(np.array([3.0, -1.0, 2.0]))
    array(1)
    """
    return argmax(negative(x), axis, keepdims)


@export()
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) over axis, computed stably by shifting by the maximum.

    >>> import numpy as np, gradc as gc
    >>> float(gc.logsumexp(np.array([1000.0, 1000.0])))    # exp(1000) alone would overflow
    1000.6931471805599
    """
    x = _float(x)
    axes = normalize_axes("logsumexp", axis, x.ndim)
    shift = stop_gradient(max(x, axes, keepdims=True))
    shift = where(equal(abs(shift), np.inf), 0, shift)     # all -inf (or inf): no shift
    out = add(log(sum(exp(subtract(x, shift)), axes, keepdims=True)), shift)
    return out if keepdims else reshape(out, tuple(d for i, d in enumerate(x.shape) if i not in axes))


# ---- shape ---------------------------------------------------------------------------------------

@export("reshape", numpy_call=lambda fn: lambda x, shape=None, order="C", **kw:
        fn(x, kw.get("newshape", shape)))
def reshape(x, shape):
    """x with a new shape of the same size (one dimension may be -1), as numpy.reshape.

    >>> import numpy as np, gradc as gc
    >>> gc.reshape(np.arange(6.0), (2, -1))
    array([[0., 1., 2.],
           [3., 4., 5.]])
    """
    x = asarray(x)
    shape = (shape,) if isinstance(shape, (numbers.Integral, Dim)) else as_shape(shape)
    if shape.count(-1) > 1:
        raise ShapeError(f"reshape: more than one -1 in {shape} (at {user_location()})")
    if -1 in shape:
        known = prod([s for s in shape if s != -1])
        if known == 0 or x.size % known:
            raise ShapeError(f"reshape: cannot reshape {x.shape} into {shape} (at {user_location()})")
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    return x if x.shape == shape else bind(P.reshape, x, shape=shape)


@export("transpose")
def transpose(x, axes=None):
    """x with its axes permuted (reversed when axes is None), as numpy.transpose.

    >>> import numpy as np, gradc as gc
    >>> gc.transpose(np.zeros((2, 3, 4)), (1, 0, 2)).shape
    (3, 2, 4)
    """
    x = asarray(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) % builtins.max(x.ndim, 1)
                                                                     for a in axes)
    if len(perm) != x.ndim or sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {axes} do not permute shape {x.shape} (at {user_location()})")
    return x if perm == tuple(range(x.ndim)) else bind(P.transpose, x, perm=perm)


def swap_last(x):
    """Swaps the last two axes (the matrix transpose of a batch of matrices)."""
    x = asarray(x)
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return bind(P.transpose, x, perm=perm)


@export("expand_dims")
def expand_dims(x, axis):
    """x with a new axis of size 1 at position axis, as numpy.expand_dims.

    >>> import numpy as np, gradc as gc
    >>> gc.expand_dims(np.ones(3), 0).shape
    (1, 3)
    """
    x = asarray(x)
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    ndim = x.ndim + len(axes)
    axes = sorted(a % ndim for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, tuple(shape))


@export("squeeze")
def squeeze(x, axis=None):
    """x without its axes of size 1 (or just those in axis), as numpy.squeeze.

    >>> import numpy as np, gradc as gc
    >>> gc.squeeze(np.ones((1, 3, 1))).shape
    (3,)
    """
    x = asarray(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes("squeeze", axis, x.ndim)
        if builtins.any(x.shape[a] != 1 for a in axes):
            raise ShapeError(f"squeeze: cannot squeeze axis {axis} of shape {x.shape} "
                             f"(at {user_location()})")
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


@export("concatenate", numpy_call=lambda fn: lambda xs, axis=0, **kw: fn(xs, axis))
def concatenate(xs, axis=0):
    """The arrays xs joined along an existing axis, as numpy.concatenate.

    >>> import numpy as np, gradc as gc
    >>> gc.concatenate([np.ones(2), np.zeros(1)])
    array([1., 1., 0.])
    """
    xs = _promote(*xs)
    if axis is None:
        xs, axis = [reshape(x, (-1,)) for x in xs], 0
    ndim = xs[0].ndim
    if ndim == 0:
        raise ShapeError(f"concatenate: zero-dimensional arrays cannot be concatenated "
                         f"(at {user_location()})")
    (axis,) = normalize_axes("concatenate", axis, ndim)
    if builtins.any(x.ndim != ndim for x in xs):
        raise ShapeError("concatenate: inputs have different numbers of dimensions: "
                         + ", ".join(str(x.shape) for x in xs) + f" (at {user_location()})")
    return xs[0] if len(xs) == 1 else bind(P.concatenate, *xs, axis=axis)


@export("stack", numpy_call=lambda fn: lambda xs, axis=0, **kw: fn(xs, axis))
def stack(xs, axis=0):
    """The arrays xs (all of one shape) joined along a new axis, as numpy.stack.

    >>> import numpy as np, gradc as gc
    >>> gc.stack([np.ones(2), np.zeros(2)], axis=1)
    array([[1., 0.],
           [1., 0.]])
    """
    xs = [asarray(x) for x in xs]
    shapes = {x.shape for x in xs}
    if len(shapes) != 1:
        raise ShapeError(f"stack: all inputs must have the same shape, got {sorted(shapes)} "
                         f"(at {user_location()})")
    return concatenate([expand_dims(x, axis) for x in xs], axis % (xs[0].ndim + 1))


def slice_axis(x, axis, start, stop):
    """x[..., start:stop, ...] along one axis (used by derivative rules)."""
    starts = [0] * x.ndim
    stops = list(x.shape)
    starts[axis], stops[axis] = start, stop
    return bind(P.slice, x, starts=tuple(starts), stops=tuple(stops), steps=(1,) * x.ndim)


# ---- indexing ------------------------------------------------------------------------------------

def _is_index_array(k):
    return not isinstance(k, (builtins.slice, type(None), type(Ellipsis))) and not (
        isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)))


def getitem(x, key):
    """NumPy indexing: basic slices (any step), ints, None, Ellipsis, and integer arrays (a gather)."""
    x = asarray(x)
    key = key if isinstance(key, tuple) else (key,)
    from .indexing import expand_masks
    key = expand_masks(key)
    if builtins.sum(k is Ellipsis for k in key) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    consumed = builtins.sum(1 for k in key if k is not None and k is not Ellipsis)
    if consumed > x.ndim:
        raise IndexError(f"too many indices for array: array is {x.ndim}-dimensional, but "
                         f"{consumed} were indexed")
    if Ellipsis in [k for k in key if not _is_index_array(k)]:
        i = [j for j, k in enumerate(key) if k is Ellipsis and not _is_index_array(k)][0]
        key = key[:i] + (builtins.slice(None),) * (x.ndim - consumed) + key[i + 1:]
    key = key + (builtins.slice(None),) * (x.ndim - builtins.sum(1 for k in key if k is not None))

    starts, stops, steps, out_shape = [], [], [], []
    advanced, int_positions, dim = [], [], 0   # advanced: (position in the result, index array)
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        size = x.shape[dim]
        if isinstance(k, builtins.slice):
            start, stop, step = (_named_slice(k, size) if isinstance(size, Dim)
                                 else k.indices(size))
            starts.append(start), stops.append(stop), steps.append(step)
            out_shape.append(stop - start if isinstance(size, Dim) else len(range(start, stop, step)))
        elif _is_index_array(k):
            index = asarray(k)
            if index.dtype == dtypes.bool_:
                raise NotImplementedError("gradc does not implement boolean-mask indexing (its "
                                          "result shape depends on the data); use gc.where")
            if index.dtype.kind not in "iu":
                raise IndexError(f"arrays used as indices must be of integer type, got {index.dtype}")
            starts.append(0), stops.append(size), steps.append(1)
            advanced.append((len(out_shape), index))
            out_shape.append(size)
        else:
            i = int(k)
            if not -size <= i < size:
                raise IndexError(f"index {i} is out of bounds for axis {dim} with size {size}")
            i = i + size if i < 0 else i
            starts.append(i), stops.append(i + 1), steps.append(1)
            int_positions.append(len(out_shape))
            out_shape.append(1)
        dim += 1

    if (tuple(starts), tuple(stops), tuple(steps)) != ((0,) * x.ndim, x.shape, (1,) * x.ndim):
        x = bind(P.slice, x, starts=tuple(starts), stops=tuple(stops), steps=tuple(steps))
    x = reshape(x, tuple(out_shape))
    if advanced:
        x = _gather_advanced(x, advanced, int_positions)
    else:
        x = reshape(x, tuple(d for i, d in enumerate(out_shape) if i not in int_positions))
    return x


def _named_slice(k, size):
    """(start, stop, 1) of a slice of an axis of named size (at least 1): the whole axis, or one
    element off either end (`1:`, `:-1`, `-1:`); other bounds depend on the size (NumPy clips
    them), so they are refused."""
    start = {None: 0, 0: 0, 1: 1, -1: size - 1}.get(k.start, None)
    stop = {None: size, -1: size - 1}.get(k.stop, None)
    if k.step not in (None, 1) or start is None or stop is None or (k.start, k.stop) == (-1, -1):
        raise SymbolicShapeError(f"the slice {k.start}:{k.stop}:{k.step} of an axis of named size "
                                 f"{size!r} depends on that size; name only axes sliced whole or "
                                 "one off an end (x[1:], x[:-1], x[-1:])")
    return start, stop, 1


def _gather_advanced(x, advanced, int_positions):
    """Gathers with integer index arrays at `advanced` positions of x (ints are size-1 axes there)."""
    positions = [p for p, _ in advanced]
    all_adv = sorted(positions + int_positions)
    in_place = all_adv == list(range(all_adv[0], all_adv[-1] + 1))   # NumPy: adjacent -> in place
    indices = _broadcast_indices([i for _, i in advanced])
    rest = [i for i in range(x.ndim) if i not in positions]
    moved = transpose(x, positions + rest)
    gathered = bind(P.gather, moved, *indices, wrap=True)
    # squeeze the integer axes (size 1) that remain among `rest`
    rest_kept = [i for i in rest if i not in int_positions]
    nidx = indices[0].ndim
    shape = indices[0].shape + tuple(x.shape[i] for i in rest_kept)
    gathered = reshape(gathered, shape)
    if in_place:
        before = len([i for i in rest_kept if i < all_adv[0]])
        perm = (list(range(nidx, nidx + before)) + list(range(nidx))
                + list(range(nidx + before, len(shape))))
        gathered = transpose(gathered, perm)
    return gathered


def _broadcast_indices(indices):
    shape = broadcast_shapes("indexing", *[i.shape for i in indices])
    return [broadcast_to(i, shape) for i in indices]


def count_value(x, axes, minus=0):
    """The number of elements over axes of x (less `minus`), a Python int; where a size is named,
    a weakly typed traced scalar of x's dtype computed at run time."""
    count = prod([x.shape[a] for a in axes]) - minus
    if not isinstance(count, Dim):
        return count
    out = core.bind_sized(x, P.dim_value, size=count, dtype=x.dtype)
    out.weak = True
    return out


def arange_of(like, size, dtype):
    """np.arange(size) for a size of `like` that may be named."""
    if isinstance(size, Dim):
        return core.bind_sized(like, P.iota, size=size, dtype=np.dtype(dtype))
    return np.arange(size, dtype=dtype)


def take_along_rows(x, labels, op):
    """x[arange(B), labels] with labels required to lie in [0, C): the losses' label lookup."""
    labels = asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{op}: labels must be integers, got {labels.dtype}")
    if x.ndim == 1:
        return bind(P.gather, x, reshape(labels, (1,)), wrap=False).reshape(())
    rows = arange_of(x, x.shape[0], labels.dtype)
    if labels.shape != (x.shape[0],):
        raise ShapeError(f"{op}: labels of shape {labels.shape} do not fit scores of shape "
                         f"{x.shape} (at {user_location()})")
    return bind(P.gather, x, rows, labels, wrap=False)


# ---- linear algebra ------------------------------------------------------------------------------

@export(ufunc="matmul")
def matmul(a, b):
    """a @ b as numpy.matmul: 1-D vectors, 2-D matrices and broadcast batches of matrices.

    >>> import numpy as np, gradc as gc
    >>> gc.matmul(np.array([[1.0, 2.0]]), np.array([[3.0], [4.0]]))
    array([[11.]])
    """
    a, b = _promote(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: operands must be at least 1-d, got shapes {a.shape} and "
                         f"{b.shape} (at {user_location()})")
    a2 = reshape(a, (1,) + a.shape) if a.ndim == 1 else a
    b2 = reshape(b, b.shape + (1,)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not fit: inner dimensions "
                         f"{a2.shape[-1]!r} and {b2.shape[-2]!r} differ (at {user_location()})")
    batch = broadcast_shapes("matmul", a2.shape[:-2], b2.shape[:-2])
    a2 = broadcast_to(a2, batch + a2.shape[-2:])
    b2 = broadcast_to(b2, batch + b2.shape[-2:])
    out = bind(P.matmul, a2, b2)
    shape = batch + (a2.shape[-2],) * (a.ndim > 1) + (b2.shape[-1],) * (b.ndim > 1)
    return reshape(out, shape)


@export("dot")
def dot(a, b):
    """numpy.dot for scalars, vectors and matrices (and N-d by 1-d / 2-d).

    >>> import numpy as np, gradc as gc
    >>> gc.dot(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    array(11.)
    """
    a, b = asarray(a), asarray(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim > 2:
        raise NotImplementedError("gradc's dot supports b with at most 2 dimensions; use matmul")
    return matmul(a, b)


_from_entries()
