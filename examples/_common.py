"""Shared by the example scripts: their command-line options and the binary-classifier helpers."""
from __future__ import annotations

import argparse
import os
import sys

# Running an example from a source checkout should not need `pip install -e .` first.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_REPO, "gradc")) and _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402  (after the path set-up above)

import gradc as gc  # noqa: E402


def make_parser(description: str, *, steps: int | None = None,
                lr: float | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser with --backend and --seed, and --steps / --lr when given defaults."""
    parser = argparse.ArgumentParser(description=description)
    if steps is not None:
        parser.add_argument("--steps", type=int, default=steps, help=f"training steps ({steps})")
    if lr is not None:
        parser.add_argument("--lr", type=float, default=lr, help=f"learning rate ({lr})")
    parser.add_argument("--backend", default="c", choices=("c", "numpy"),
                        help="gc.jit backend: compiled C (default) or interpreted NumPy")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def binary_loss(scores):
    """The loss l(params, X, y) of a one-output classifier: -log sigmoid likelihood of y in {0, 1}.

    `scores(params, X)` returns shape (batch, 1); binary_cross_entropy_with_logits is the
    lecture's -[y log s + (1 - y) log(1 - s)] with s = sigmoid(score), computed stably.
    """
    def loss(params, X, y):
        return gc.nn.binary_cross_entropy_with_logits(scores(params, X)[:, 0], y)
    return loss


def binary_accuracy(scores, params, X, y) -> float:
    """Fraction of rows whose score has the sign of the label (score > 0 means class 1)."""
    return float(np.mean((np.asarray(scores(params, X))[:, 0] > 0) == (np.asarray(y) > 0.5)))
