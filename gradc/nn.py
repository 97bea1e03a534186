"""gc.nn: the lectures' losses and activations, composed from gradc's operations.

>>> import numpy as np, gradc as gc
>>> logits, labels = np.array([[2.0, 0.0, 0.0]]), np.array([0])
>>> bool(gc.nn.cross_entropy(logits, labels) < gc.nn.cross_entropy(-logits, labels))
True
"""
import numpy as np

from . import ops
from ._types import Array, ArrayLike
from typing import Any
from .errors import ShapeError, user_location

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse", "binary_cross_entropy_with_logits",
           "multiclass_hinge", "one_hot"]


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """exp(x) / sum(exp(x)) along axis, shifted by the maximum for stability.

    >>> import numpy as np, gradc as gc
    >>> gc.nn.softmax(np.array([0.0, np.log(3.0)]))
    array([0.25, 0.75])
    """
    x = ops._float(x)
    shifted = ops.subtract(x, ops.stop_gradient(ops.max(x, axis, keepdims=True)))
    e = ops.exp(shifted)
    return ops.divide(e, ops.sum(e, axis, keepdims=True))


def log_softmax(x: ArrayLike, axis: int = -1) -> Array:
    """x - logsumexp(x): finite for logits of magnitude 1e3.

    >>> import numpy as np, gradc as gc
    >>> gc.nn.log_softmax(np.array([1000.0, 1000.0]))
    array([-0.69314718, -0.69314718])
    """
    x = ops._float(x)
    return ops.subtract(x, ops.logsumexp(x, axis, keepdims=True))


def cross_entropy(logits: ArrayLike, labels: ArrayLike, reduction: str = "mean") -> Array:
    """Mean over the batch of -log softmax(logits)[label]. Labels outside [0, C) raise IndexError.

    >>> gc.nn.cross_entropy(np.zeros((2, 4)), np.array([0, 3]))   # log(4)
    array(1.38629436)
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    logits = ops._float(logits)
    if logits.ndim not in (1, 2):
        raise ShapeError(f"cross_entropy: logits must be (batch, classes) or (classes,), got "
                         f"{logits.shape} (at {user_location()})")
    losses = ops.negative(ops.take_along_rows(log_softmax(logits, -1), labels, "cross_entropy"))
    return _reduce(losses, reduction)


def _reduce(losses, reduction):
    if reduction == "mean":
        return ops.mean(losses)
    return ops.sum(losses) if reduction == "sum" else losses


def mse(pred: ArrayLike, target: ArrayLike) -> Array:
    """Mean squared error over all elements (PyTorch's default).

    >>> import numpy as np, gradc as gc
    >>> gc.nn.mse(np.array([1.0, 3.0]), np.array([0.0, 1.0]))
    array(2.5)
    """
    return ops.mean(ops.square(ops.subtract(pred, target)))


def binary_cross_entropy_with_logits(logits: ArrayLike, targets: ArrayLike) -> Array:
    """Mean over all elements of softplus(x) - x*t, the stable form of -t log s(x) - (1-t) log(1-s(x)).

    >>> import numpy as np, gradc as gc
    >>> float(gc.nn.binary_cross_entropy_with_logits(np.array([0.0]), np.array([1.0])))   # log 2
    0.6931471805599453
    """
    logits = ops._float(logits)
    return ops.mean(ops.subtract(ops.softplus(logits), ops.multiply(logits, targets)))


def multiclass_hinge(scores: ArrayLike, labels: ArrayLike, margin: float = 1.0) -> Array:
    """The SVM loss: mean over the batch of sum_{j != y} max(0, s_j - s_y + margin); gradient 0 at the
    kink. Labels outside [0, C) raise IndexError.

    >>> import numpy as np, gradc as gc
    >>> gc.nn.multiclass_hinge(np.array([[3.2, 5.1, -1.7]]), np.array([0]))   # the lecture's cat
    array(2.9)
    """
    scores = ops._float(scores)
    if scores.ndim != 2:
        raise ShapeError(f"multiclass_hinge: scores must be (batch, classes), got {scores.shape} "
                         f"(at {user_location()})")
    correct = ops.take_along_rows(scores, labels, "multiclass_hinge")
    margins = ops.relu(ops.add(ops.subtract(scores, ops.reshape(correct, (-1, 1))), margin))
    classes = ops.arange_of(scores, scores.shape[1], np.int64)
    is_label = ops.equal(ops.reshape(ops.asarray(labels), (-1, 1)), classes)
    return ops.mean(ops.sum(ops.where(is_label, 0, margins), axis=1))


def one_hot(labels: ArrayLike, n: int, dtype: Any = np.float32) -> Array:
    """one_hot(labels, n)[..., j] = (labels == j). Labels outside [0, n) raise IndexError.

    >>> import numpy as np, gradc as gc
    >>> gc.nn.one_hot(np.array([2, 0]), 3)
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """
    labels = ops.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: labels must be integers, got {labels.dtype}")
    eye = np.eye(n, dtype=dtype)
    return ops.bind(ops.P.gather, eye, labels, wrap=False)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x): finite for logits of magnitude 1e3."""
    return ops.negative(ops.softplus(ops.negative(ops._float(x))))
