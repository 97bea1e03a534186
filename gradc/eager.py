"""The eager engine (API.md section 4): gc.Tensor computes op by op with NumPy and records what it
did, so backward() can apply the primitives' derivative rules in reverse, as PyTorch does."""
import contextlib

import numpy as np

from . import dtypes, numpy_lists
from ._types import ArrayLike
from typing import Any
from .core import compute
from .autodiff import vjp_rule
from .methods import ArrayMethods

_grad_enabled = [True]


@contextlib.contextmanager
def no_grad():
    """Operations inside record nothing for backward().

    >>> import gradc as gc
    >>> x = gc.tensor(2.0, requires_grad=True)
    >>> with gc.no_grad():
    ...     y = x * 3
    >>> y.requires_grad
    False
    """
    saved = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = saved


class Tensor(ArrayMethods):
    """A NumPy array that remembers how it was computed.

    >>> import gradc as gc
    >>> x = gc.tensor(3.0, requires_grad=True); y = x * x; y.backward(); float(x.grad)
    6.0
    """
    __array_priority__ = 1000

    def __init__(self, value, requires_grad=False, _creator=None):
        self.value = value
        self.requires_grad = requires_grad
        self.grad = None
        self._creator = _creator      # (primitive, input values, params) or None for a leaf
        if requires_grad:
            numpy_lists.keep_installed()      # np.array([tensor, ...]) keeps the gradient

    shape = property(lambda self: self.value.shape)
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)
    is_leaf = property(lambda self: self._creator is None)

    def numpy(self):
        return self.value.copy()

    def item(self):
        return self.value.item()

    def detach(self):
        return Tensor(self.value)

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            numpy_lists.grad_tensor_converted()     # np.array([tensor, ...]) keeps the graph
        return self.value if dtype is None else self.value.astype(dtype)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        dtype = "" if self.value.dtype == np.float64 else f", dtype={self.value.dtype}"
        return f"tensor({np.array2string(self.value, separator=', ')}{dtype}{grad})"

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __bool__(self):
        return bool(self.value)

    def __len__(self):
        return len(self.value)

    _version = 0      # item assignments so far (each keeps the old value for backward())

    def _rebind(self, new):
        """self now holds `new` (item assignment, functional underneath, as PyTorch's in place)."""
        if self.is_leaf and self.requires_grad:
            raise RuntimeError("a leaf gc.Tensor that requires grad cannot be assigned into (as "
                               "PyTorch): assign into a copy, x = x.copy(); x[i] = v")
        old = Tensor(self.value, self.requires_grad, self._creator)
        old._version = self._version
        # Operations recorded before see the old value: `_inputs` finds it by the version.
        self._past = {**getattr(self, "_past", {}), self._version: old}
        self.value, self.requires_grad, self._creator = new.value, new.requires_grad, new._creator
        self._version += 1

    def backward(self, gradient=None):
        """Accumulates d self / d leaf into .grad of every leaf with requires_grad (seed 1 if scalar)."""
        if not self.requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (no input of it was "
                               "created with requires_grad=True)")
        if gradient is None:
            if self.value.size != 1:
                raise RuntimeError(f"backward(): grad can be implicitly created only for scalar "
                                   f"outputs; this one has shape {self.shape}: pass gradient=")
            gradient = np.ones_like(self.value)
        gradient = np.asarray(gradient.value if isinstance(gradient, Tensor) else gradient,
                              dtype=self.dtype)
        if gradient.shape != self.shape:
            raise ValueError(f"backward(): gradient of shape {gradient.shape} for a tensor of "
                             f"shape {self.shape}")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # see interpreter.run
            self._backward(gradient)

    def _backward(self, gradient):
        order = _toposort(self)
        cts = {id(self): gradient}
        for t in reversed(order):
            ct = cts.pop(id(t), None)
            if ct is None:
                if t._creator is None and t.grad is None:   # reached, zero derivative (as PyTorch)
                    t.grad = np.zeros_like(t.value)
                continue
            if t._creator is None:
                t.grad = ct.copy() if t.grad is None else t.grad + ct
                continue
            prim, _, params, _ = t._creator
            inputs = _inputs(t)
            values = [i.value if isinstance(i, Tensor) else i for i in inputs]
            for inp, inp_ct in zip(inputs, vjp_rule(prim, values, t.value, ct, params)):
                if inp_ct is None or not (isinstance(inp, Tensor) and inp.requires_grad):
                    continue
                inp_ct = np.asarray(inp_ct, dtype=inp.dtype)
                cts[id(inp)] = inp_ct if id(inp) not in cts else cts[id(inp)] + inp_ct


def _toposort(root):
    order, done, stack = [], set(), [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if id(t) in done:
            continue
        if expanded:
            done.add(id(t))
            order.append(t)
            continue
        stack.append((t, True))
        if t._creator is not None:
            for i in _inputs(t):
                if isinstance(i, Tensor) and i.requires_grad and id(i) not in done:
                    stack.append((i, False))
    return order


def _inputs(t):
    """The inputs t was computed from, as they were then (before later item assignments)."""
    _, inputs, _, versions = t._creator
    return [i if not isinstance(i, Tensor) or i._version == v else i._past[v]
            for i, v in zip(inputs, versions)]


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> "Tensor":
    """A gc.Tensor holding a copy of data (lists and scalars become float64 / int64 as in NumPy).

    >>> import gradc as gc
    >>> x = gc.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    array([2., 4.])
    """
    value = np.array(data.value if isinstance(data, Tensor) else data,
                     dtype=dtypes.canonical(dtype) if dtype is not None else None)
    value = value.astype(dtypes.canonical(value.dtype), copy=False)
    if requires_grad and value.dtype.kind != "f":
        raise TypeError(f"only float tensors can require grad, got dtype {value.dtype}")
    return Tensor(value, requires_grad)


def apply_eager(prim, args, params):
    """Computes a primitive on Tensor/NumPy arguments, recording it when a gradient is wanted."""
    values = [a.value if isinstance(a, Tensor) else a for a in args]
    out = compute(prim, values, params)
    wants_grad = (_grad_enabled[0] and out.dtype.kind == "f"
                  and any(isinstance(a, Tensor) and a.requires_grad for a in args))
    if not wants_grad:
        return Tensor(out)
    versions = tuple(a._version if isinstance(a, Tensor) else 0 for a in args)
    return Tensor(out, True, (prim, args, params, versions))
