"""Optimizers as pure functions over pytrees, in the style of optax.

``opt.init(params)`` makes the state; ``opt.update(params, grads, state)`` returns the new
parameters and state. Both are written with gradc's operations, so they work on NumPy arrays and
trace: a whole training step (loss, gradients, update) compiles into one native call. The updates
are PyTorch's: ``sgd`` is ``torch.optim.SGD`` (dampening 0), ``adam`` is ``torch.optim.Adam`` and,
with ``weight_decay``, ``torch.optim.AdamW`` (decoupled decay).

>>> import numpy as np, gradc as gc
>>> opt = gc.optim.adam(1e-2)
>>> params = {"w": np.zeros(3)}
>>> state = opt.init(params)
>>> grads = gc.grad(lambda p: gc.sum((p["w"] - 1.0) ** 2))(params)
>>> params, state = opt.update(params, grads, state)
>>> params["w"]                  # one step of lr towards the minimum at 1
array([0.01, 0.01, 0.01])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from . import ops
from .tree import tree_leaves, tree_map

__all__ = ["Optimizer", "sgd", "adam"]

# A learning rate: a number, or a function of the step count (an int64 scalar, 0 at the first
# update) returning one, e.g. a schedule written with gradc's operations.
LearningRate = Union[float, Callable[[Any], Any]]


@dataclass(frozen=True)
class Optimizer:
    """A pair of pure functions: ``init(params) -> state`` and
    ``update(params, grads, state) -> (params, state)``.

    >>> import gradc as gc, numpy as np
    >>> opt = gc.optim.sgd(0.1)
    >>> params = {"w": np.array([1.0, 2.0])}
    >>> state = opt.init(params)
    >>> params, state = opt.update(params, {"w": np.array([1.0, -1.0])}, state)
    >>> params["w"]
    array([0.9, 2.1])
    """
    name: str
    init: Callable[[Any], Any]
    update: Callable[[Any, Any, Any], Any]

    def __repr__(self) -> str:
        return f"<gc.optim.{self.name}>"


def sgd(lr: LearningRate, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0) -> Optimizer:
    """Stochastic gradient descent, as ``torch.optim.SGD``: with ``g = grad + weight_decay * p``,
    ``buf = momentum * buf + g``, then ``p -= lr * (g + momentum * buf)`` (Nesterov) or
    ``p -= lr * buf``; without momentum ``p -= lr * g``.

    The state is ``{"count": int64 scalar, "momentum": buffers like params (None without
    momentum)}``.

    >>> import gradc as gc, numpy as np
    >>> opt = gc.optim.sgd(0.5, momentum=0.9)
    >>> p = np.array([1.0]); state = opt.init(p)
    >>> for _ in range(2):
    ...     p, state = opt.update(p, np.array([1.0]), state)
    >>> p          # 1 - 0.5 * 1, then - 0.5 * (0.9 * 1 + 1)
    array([-0.45])
    """
    _check_hyper("sgd", lr=lr, momentum=momentum, weight_decay=weight_decay)
    # Python floats are weakly typed (NEP 50): a float32 model stays float32.
    lr, momentum, weight_decay = _weak(lr), float(momentum), float(weight_decay)
    if nesterov and momentum <= 0:
        raise ValueError("gc.optim.sgd: nesterov=True needs a momentum > 0 (as torch.optim.SGD)")

    def init(params):
        _check_leaves("sgd", params)
        buffers = tree_map(ops.zeros_like, params) if momentum else None
        return {"count": np.zeros((), np.int64), "momentum": buffers}

    def update(params, grads, state):
        count = state["count"]
        rate = _rate(lr, count)

        def decayed(p, g):
            return g + weight_decay * p if weight_decay else g

        grads = tree_map(decayed, params, grads)
        if not momentum:
            new = tree_map(lambda p, g: p - _like(rate, p) * g, params, grads)
            return new, {"count": count + 1, "momentum": None}
        buffers = tree_map(lambda b, g: momentum * b + g, state["momentum"], grads)
        steps = tree_map(lambda g, b: g + momentum * b, grads, buffers) if nesterov else buffers
        new = tree_map(lambda p, s: p - _like(rate, p) * s, params, steps)
        return new, {"count": count + 1, "momentum": buffers}

    return Optimizer("sgd", init, update)


def adam(lr: LearningRate = 1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         weight_decay: float = 0.0) -> Optimizer:
    """Adam, as ``torch.optim.Adam``; with ``weight_decay`` the decay is decoupled, as
    ``torch.optim.AdamW``: ``p *= 1 - lr * weight_decay`` before the Adam step.

    At step t (from 1): ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``. The state is
    ``{"count": int64 scalar, "mu": m like params, "nu": v like params}``.

    >>> import gradc as gc, numpy as np
    >>> opt = gc.optim.adam(0.1)
    >>> p = np.array([1.0, -1.0]); state = opt.init(p)
    >>> p, state = opt.update(p, np.array([3.0, -0.5]), state)
    >>> p          # the first Adam step moves each weight by lr against the gradient's sign
    array([ 0.9, -0.9])
    """
    _check_hyper("adam", lr=lr, eps=eps, weight_decay=weight_decay)
    for name, b in (("b1", b1), ("b2", b2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"gc.optim.adam: {name} must lie in [0, 1), got {b}")
    lr, b1, b2, eps, weight_decay = _weak(lr), float(b1), float(b2), float(eps), float(weight_decay)

    def init(params):
        _check_leaves("adam", params)
        return {"count": np.zeros((), np.int64), "mu": tree_map(ops.zeros_like, params),
                "nu": tree_map(ops.zeros_like, params)}

    def update(params, grads, state):
        count = state["count"]
        rate = _rate(lr, count)
        t = ops.astype(count + 1, np.float64)
        # The bias corrections are computed in float64 (as PyTorch's Python floats), then cast
        # to each leaf's dtype so that a float32 model stays float32.
        correction1 = 1 - ops.power(b1, t)
        root_correction2 = ops.sqrt(1 - ops.power(b2, t))
        mu = tree_map(lambda m, g: b1 * m + (1 - b1) * g, state["mu"], grads)
        nu = tree_map(lambda v, g: b2 * v + (1 - b2) * ops.square(g), state["nu"], grads)

        def step(p, m, v):
            r = _like(rate, p)
            if weight_decay:
                p = p * (1 - r * weight_decay)
            denom = ops.sqrt(v) / _like(root_correction2, p) + eps
            return p - (r / _like(correction1, p)) * (m / denom)

        new = tree_map(step, params, mu, nu)
        return new, {"count": count + 1, "mu": mu, "nu": nu}

    return Optimizer("adam", init, update)


# ---- helpers -------------------------------------------------------------------------------------

def _weak(lr):
    return lr if callable(lr) else float(lr)


def _rate(lr, count):
    return lr(count) if callable(lr) else lr


def _like(scalar, leaf):
    """A scalar in leaf's dtype: Python numbers stay weak; arrays and traced values are cast."""
    if type(scalar) in (int, float):      # not np.float64, a float subclass that is not weak
        return scalar
    return ops.astype(scalar, ops.asarray(leaf).dtype)


def _check_hyper(fn, **values):
    for name, v in values.items():
        if callable(v) and name == "lr":
            continue
        if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) \
                or not np.isfinite(v) or v < 0:
            raise ValueError(f"gc.optim.{fn}: {name} must be a finite number >= 0, got {v!r}")


def _check_leaves(fn, params):
    for leaf in tree_leaves(params):
        dtype = getattr(leaf, "dtype", None) if not isinstance(leaf, float) else np.dtype(float)
        if dtype is None or np.dtype(dtype).kind != "f":
            raise TypeError(f"gc.optim.{fn}: parameters must be float arrays, found "
                            f"{type(leaf).__name__} of dtype {dtype}")
