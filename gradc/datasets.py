"""Small data sets shipped inside gradc (no download): the 8x8 handwritten digits, and a split."""
from __future__ import annotations

import gzip
import io
from importlib import resources

import numpy as np

__all__ = ["load_digits", "train_test_split"]

_DIGITS_FILE = "digits.csv.gz"
_DIGITS_SHAPE = (1797, 64)
_PIXEL_MAX = 16.0  # optdigits pixels count the on pixels of a 4x4 block: 0..16


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI optdigits test set as shipped by scikit-learn (see gradc/data/README.txt).

    Returns ``(X, y)``: ``X`` float32 of shape (1797, 64), each row an 8x8 image in row-major
    order scaled to [0, 1]; ``y`` int64 labels 0..9.
    """
    # importlib.resources reads from a source tree, an installed wheel or a zip alike.
    raw = resources.files("gradc.data").joinpath(_DIGITS_FILE).read_bytes()
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.int64)
    if table.shape != (_DIGITS_SHAPE[0], _DIGITS_SHAPE[1] + 1):
        raise ValueError(f"{_DIGITS_FILE}: expected {_DIGITS_SHAPE[0]} rows of 65 integers, "
                         f"got shape {table.shape}")
    X = (table[:, :-1] / _PIXEL_MAX).astype(np.float32)
    y = table[:, -1].copy()
    return X, y


def train_test_split(X, y, test_frac: float = 0.25, seed: int = 0):
    """Shuffle deterministically (``seed``) and split off ``test_frac`` of the rows as a test set.

    Returns ``(X_train, X_test, y_train, y_test)`` (scikit-learn's order). The same inputs and
    seed always give the same split, on every platform.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if not 0.0 < test_frac < 1.0:
        raise ValueError(f"test_frac must lie in (0, 1), got {test_frac}")
    n_test = int(round(len(X) * test_frac))
    if not 0 < n_test < len(X):
        raise ValueError(f"test_frac={test_frac} leaves an empty split of {len(X)} rows")
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]
