"""Operators, methods and NumPy dispatch shared by symbolic tensors (Tracer) and eager ones (Tensor)."""
import numpy as np

from . import ops
from .errors import docs_link


class ArrayMethods:
    """Mixin: `+ - * / ** @`, comparisons, indexing, `.T`, `.sum()` ... all route to gradc's ops."""
    __slots__ = ()

    __add__ = lambda self, other: ops.add(self, other)
    __radd__ = lambda self, other: ops.add(other, self)
    __sub__ = lambda self, other: ops.subtract(self, other)
    __rsub__ = lambda self, other: ops.subtract(other, self)
    __mul__ = lambda self, other: ops.multiply(self, other)
    __rmul__ = lambda self, other: ops.multiply(other, self)
    __truediv__ = lambda self, other: ops.divide(self, other)
    __rtruediv__ = lambda self, other: ops.divide(other, self)
    __pow__ = lambda self, other: ops.power(self, other)
    __rpow__ = lambda self, other: ops.power(other, self)
    __matmul__ = lambda self, other: ops.matmul(self, other)
    __rmatmul__ = lambda self, other: ops.matmul(other, self)
    __neg__ = lambda self: ops.negative(self)
    __pos__ = lambda self: self
    __abs__ = lambda self: ops.abs(self)
    __eq__ = lambda self, other: ops.equal(self, other)
    __ne__ = lambda self, other: ops.not_equal(self, other)
    __lt__ = lambda self, other: ops.less(self, other)
    __le__ = lambda self, other: ops.less_equal(self, other)
    __gt__ = lambda self, other: ops.greater(self, other)
    __ge__ = lambda self, other: ops.greater_equal(self, other)
    __and__ = lambda self, other: ops.logical_and(self, other)
    __or__ = lambda self, other: ops.logical_or(self, other)
    __invert__ = lambda self: ops.logical_not(self)
    __getitem__ = lambda self, key: ops.getitem(self, key)
    __hash__ = object.__hash__

    T = property(lambda self: ops.transpose(self))
    mT = property(lambda self: ops.swap_last(self))

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def astype(self, dtype):
        return ops.astype(self, dtype)

    sum = lambda self, axis=None, keepdims=False: ops.sum(self, axis, keepdims)
    mean = lambda self, axis=None, keepdims=False: ops.mean(self, axis, keepdims)
    max = lambda self, axis=None, keepdims=False: ops.max(self, axis, keepdims)
    min = lambda self, axis=None, keepdims=False: ops.min(self, axis, keepdims)
    argmax = lambda self, axis=None, keepdims=False: ops.argmax(self, axis, keepdims)
    argmin = lambda self, axis=None, keepdims=False: ops.argmin(self, axis, keepdims)
    squeeze = lambda self, axis=None: ops.squeeze(self, axis)
    ravel = lambda self: ops.reshape(self, (-1,))
    flatten = ravel
    dot = lambda self, other: ops.dot(self, other)
    exp = lambda self: ops.exp(self)
    log = lambda self: ops.log(self)
    tanh = lambda self: ops.tanh(self)
    relu = lambda self: ops.relu(self)
    sigmoid = lambda self: ops.sigmoid(self)
    clip = lambda self, lo=None, hi=None: ops.clip(self, lo, hi)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _tables()[0].get(ufunc.__name__) if method == "__call__" else None
        if fn is None or kwargs.get("out") is not None:
            what = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
            raise NotImplementedError(f"gradc does not implement {what} on traced or gc.Tensor values")
        kwargs.pop("out", None)
        if kwargs:
            raise NotImplementedError(f"gradc does not implement np.{ufunc.__name__} with "
                                      f"arguments {sorted(kwargs)}")
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        fn = _tables()[1].get(func)
        if fn is None:
            name = getattr(func, "__module__", "numpy").replace("numpy", "np") + "." + func.__name__
            raise NotImplementedError(f"gradc does not implement {name} on traced or gc.Tensor "
                                      f"values; the supported functions: "
                                      f"{docs_link('numpy-functions')}")
        return fn(*args, **kwargs)


_TABLES = []


def _tables():
    """(ufunc name -> gradc function, NumPy function -> gradc function), built on first use because
    ops.py is still loading when this module is imported."""
    if not _TABLES:
        _TABLES.extend([_ufuncs(), _functions()])
    return _TABLES


def _ufuncs():
    return {
        "add": ops.add, "subtract": ops.subtract, "multiply": ops.multiply, "divide": ops.divide,
        "true_divide": ops.divide, "negative": ops.negative, "positive": lambda x: x,
        "power": ops.power, "square": ops.square, "sqrt": ops.sqrt, "exp": ops.exp, "log": ops.log,
        "log1p": ops.log1p, "expm1": ops.expm1, "absolute": ops.abs, "fabs": ops.abs,
        "sign": ops.sign, "sin": ops.sin, "cos": ops.cos, "tanh": ops.tanh,
        "maximum": ops.maximum, "minimum": ops.minimum, "equal": ops.equal,
        "not_equal": ops.not_equal, "less": ops.less, "less_equal": ops.less_equal,
        "greater": ops.greater, "greater_equal": ops.greater_equal, "matmul": ops.matmul,
        "logical_and": ops.logical_and, "logical_or": ops.logical_or,
        "logical_not": ops.logical_not, "reciprocal": lambda x: ops.divide(1, x),
        "bitwise_and": _on_bools("bitwise_and", ops.logical_and),
        "bitwise_or": _on_bools("bitwise_or", ops.logical_or),
        "invert": _on_bools("invert", ops.logical_not),
    }


def _on_bools(name, fn):
    """`&`, `|`, `~` on boolean masks are the logical ops; gradc has no integer bit operations."""
    def call(*xs):
        if any(ops.asarray(x).dtype != bool for x in xs if not ops._is_python_scalar(x)):
            raise NotImplementedError(f"gradc implements np.{name} only on boolean masks")
        return fn(*xs)
    return call


def _reduction(fn):
    """Adapts NumPy's reduction signature (x, axis=None, dtype=None, out=None, keepdims=False)."""
    def call(x, axis=None, dtype=None, out=None, keepdims=False, **rest):
        if out is not None or dtype is not None or rest:
            raise NotImplementedError(f"gradc does not implement np.{fn.__name__} with out=, dtype= "
                                      f"or {sorted(rest)} arguments")
        return fn(x, axis, keepdims)
    return call


def _functions():
    return {
        np.sum: _reduction(ops.sum), np.mean: _reduction(ops.mean), np.max: _reduction(ops.max),
        np.min: _reduction(ops.min), np.amax: _reduction(ops.max), np.amin: _reduction(ops.min),
        np.argmax: lambda x, axis=None, out=None, keepdims=False: ops.argmax(x, axis, keepdims),
        np.argmin: lambda x, axis=None, out=None, keepdims=False: ops.argmin(x, axis, keepdims),
        np.reshape: lambda x, shape=None, order="C", **kw: ops.reshape(x, kw.get("newshape", shape)),
        np.transpose: lambda x, axes=None: ops.transpose(x, axes),
        np.expand_dims: ops.expand_dims, np.squeeze: ops.squeeze, np.broadcast_to: ops.broadcast_to,
        np.concatenate: lambda xs, axis=0, **kw: ops.concatenate(xs, axis),
        np.stack: lambda xs, axis=0, **kw: ops.stack(xs, axis),
        np.where: ops.where,
        np.clip: lambda x, a_min=None, a_max=None, **kw: ops.clip(x, kw.get("min", a_min),
                                                                  kw.get("max", a_max)),
        np.dot: ops.dot, np.ravel: lambda x: ops.reshape(x, (-1,)), np.shape: lambda x: x.shape,
        np.ndim: lambda x: len(x.shape), np.size: lambda x: int(np.prod(x.shape)),
        np.zeros_like: lambda x, dtype=None: ops.zeros_like(x, dtype),
        np.ones_like: lambda x, dtype=None: ops.ones_like(x, dtype),
        np.outer: lambda a, b: ops.multiply(ops.reshape(a, (-1, 1)), ops.reshape(b, (1, -1))),
    }
