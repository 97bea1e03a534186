"""lecture_demo: softmax regression whose loss, gradients and predictions run as C that gradc
compiled when this package was built. Needs numpy and cffi, not gradc.

>>> import numpy as np, lecture_demo
>>> W, b = np.zeros((64, 10), np.float32), np.zeros(10, np.float32)
>>> X, y = np.ones((32, 64), np.float32), np.zeros(32, np.int64)
>>> W, b, loss = lecture_demo.sgd_step(W, b, X, y, lr=0.1)
"""
from .digits_kernels import loss_and_grads, predict

__all__ = ["loss_and_grads", "predict", "sgd_step"]


def sgd_step(W, b, X, y, lr=0.5):
    """One gradient-descent step on a batch; returns (W, b, loss before the step)."""
    loss, (grad_W, grad_b) = loss_and_grads(W, b, X, y)
    return W - lr * grad_W, b - lr * grad_b, float(loss)
