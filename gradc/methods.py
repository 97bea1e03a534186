"""Operators, methods and NumPy dispatch shared by symbolic tensors (Tracer) and eager ones (Tensor)."""
import numpy as np

from . import ops, registry
from .errors import SUPPORTED_HINT, UnsupportedError


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

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        out = ops.astype(self, dtype)
        return _shapes().copy(out) if copy and out is self else out

    __mod__ = lambda self, other: _ew().remainder(self, other)
    __rmod__ = lambda self, other: _ew().remainder(other, self)
    __floordiv__ = lambda self, other: _ew().floor_divide(self, other)
    __rfloordiv__ = lambda self, other: _ew().floor_divide(other, self)
    __round__ = lambda self, ndigits=None: _ew().round(self, ndigits or 0)
    __divmod__ = lambda self, other: (_ew().floor_divide(self, other), _ew().remainder(self, other))

    def __setitem__(self, key, value):
        from .indexing import setitem
        setitem(self, key, value)

    at = property(lambda self: _indexing().IndexUpdates(self))
    copy = lambda self, order="C": _shapes().copy(self)
    var = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: \
        _red().var(self, axis, dtype, out, ddof, keepdims)
    std = lambda self, axis=None, dtype=None, out=None, ddof=0, keepdims=False: \
        _red().std(self, axis, dtype, out, ddof, keepdims)
    prod = lambda self, axis=None, dtype=None, out=None, keepdims=False: \
        _red().prod(self, axis, dtype, out, keepdims)
    cumsum = lambda self, axis=None, dtype=None, out=None: _red().cumsum(self, axis, dtype, out)
    cumprod = lambda self, axis=None, dtype=None, out=None: _red().cumprod(self, axis, dtype, out)
    any = lambda self, axis=None, out=None, keepdims=False: _red().any(self, axis, out, keepdims)
    all = lambda self, axis=None, out=None, keepdims=False: _red().all(self, axis, out, keepdims)
    round = lambda self, decimals=0, out=None: _ew().round(self, decimals, out)
    # NOTE: no .trace() method: a traced value's `trace` is the graph it is in (np.trace works).
    diagonal = lambda self, offset=0, axis1=0, axis2=1: _shapes().diagonal(self, offset, axis1,
                                                                            axis2)
    repeat = lambda self, repeats, axis=None: _shapes().repeat(self, repeats, axis)
    take = lambda self, indices, axis=None: _shapes().take(self, indices, axis)
    swapaxes = lambda self, a, b: _shapes().swapaxes(self, a, b)

    sum = lambda self, axis=None, keepdims=False: ops.sum(self, axis, keepdims)
    mean = lambda self, axis=None, keepdims=False: ops.mean(self, axis, keepdims)
    max = lambda self, axis=None, keepdims=False: ops.max(self, axis, keepdims)
    min = lambda self, axis=None, keepdims=False: ops.min(self, axis, keepdims)
    argmax = lambda self, axis=None, keepdims=False: ops.argmax(self, axis, keepdims)
    argmin = lambda self, axis=None, keepdims=False: ops.argmin(self, axis, keepdims)
    squeeze = lambda self, axis=None: ops.squeeze(self, axis)
    ravel = lambda self, order="C": ops.reshape(self, (-1,))
    flatten = ravel
    dot = lambda self, other: ops.dot(self, other)
    exp = lambda self: ops.exp(self)
    log = lambda self: ops.log(self)
    tanh = lambda self: ops.tanh(self)
    relu = lambda self: ops.relu(self)
    sigmoid = lambda self: ops.sigmoid(self)
    clip = lambda self, lo=None, hi=None, out=None, **kw: ops.clip(self, kw.get("min", lo),
                                                                   kw.get("max", hi))

    def __array_namespace__(self, api_version=None):
        """The array API standard's namespace for gradc values (gradc/array_api.py)."""
        from . import array_api
        return array_api

    device = property(lambda self: "cpu")
    to_device = lambda self, device, stream=None: self

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedError(f"gradc does not implement the attribute or method .{name} of "
                               f"traced values and gc.Tensor; {SUPPORTED_HINT}")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method in ("reduce", "accumulate") and (ufunc.__name__, method) in _UFUNC_METHODS:
            return _ufunc_method(ufunc, method, *inputs, **kwargs)
        fn = _tables()[0].get(ufunc.__name__) if method == "__call__" else None
        if fn is None or kwargs.get("out") is not None:
            what = f"np.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
            raise UnsupportedError(f"gradc does not implement {what} on traced or gc.Tensor "
                                   f"values; {SUPPORTED_HINT}")
        kwargs.pop("out", None)
        if kwargs:
            raise NotImplementedError(f"gradc does not implement np.{ufunc.__name__} with "
                                      f"arguments {sorted(kwargs)}")
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        fn = _tables()[1].get(func)
        if fn is None:
            name = getattr(func, "__module__", "numpy").replace("numpy", "np") + "." + func.__name__
            raise UnsupportedError(f"gradc does not implement {name} on traced or gc.Tensor "
                                   f"values; {SUPPORTED_HINT}")
        return fn(*args, **kwargs)


# np.add.reduce(x, axis) and friends: the reductions and scans they are.
_UFUNC_METHODS = {("add", "reduce"): "sum", ("multiply", "reduce"): "prod",
                  ("maximum", "reduce"): "max", ("minimum", "reduce"): "min",
                  ("logaddexp", "reduce"): "logsumexp", ("add", "accumulate"): "cumsum",
                  ("multiply", "accumulate"): "cumprod"}


def _ufunc_method(ufunc, method, x, axis=0, dtype=None, out=None, keepdims=False, **rest):
    if dtype is not None or out is not None or rest:
        raise UnsupportedError(f"gradc does not implement np.{ufunc.__name__}.{method} with "
                               f"dtype=, out= or {sorted(rest)}; {SUPPORTED_HINT}")
    fn = registry.PUBLIC[_UFUNC_METHODS[ufunc.__name__, method]]
    return fn(x, axis, keepdims=keepdims) if method == "reduce" else fn(x, axis)


def _ew():
    from . import elementwise
    return elementwise


def _red():
    from . import reductions
    return reductions


def _shapes():
    from . import shapes
    return shapes


def _indexing():
    from . import indexing
    return indexing


_TABLES = []


def _tables():
    """(ufunc name -> gradc function, NumPy function -> gradc function), built on first use because
    ops.py is still loading when this module is imported."""
    if not _TABLES:
        _TABLES.extend([_ufuncs(), _functions()])
    return _TABLES


def _ufuncs():
    table = dict(registry.UFUNCS)
    table.update({
        "positive": lambda x: x,
        "bitwise_and": _on_bools("bitwise_and", ops.logical_and),
        "bitwise_or": _on_bools("bitwise_or", ops.logical_or),
        "invert": _on_bools("invert", ops.logical_not),
    })
    return table


def _on_bools(name, fn):
    """`&`, `|`, `~` on boolean masks are the logical ops; gradc has no integer bit operations."""
    def call(*xs):
        if any(ops.asarray(x).dtype != bool for x in xs if not ops._is_python_scalar(x)):
            raise NotImplementedError(f"gradc implements np.{name} only on boolean masks")
        return fn(*xs)
    return call


def _functions():
    """NumPy function object -> gradc function with NumPy's signature, from the export records."""
    table = {}
    for path, fn in registry.FUNCTIONS.items():
        obj = registry.numpy_object(path)
        if obj is not None:
            table[obj] = fn
    table.update({np.shape: lambda x: x.shape, np.ndim: lambda x: len(x.shape),
                  np.size: lambda x: int(np.prod(x.shape))})
    return table
