"""Counter-based random numbers that trace and compile, as ``jax.random``.

A key is an ``int64`` array of shape ``(2,)`` holding two 32-bit words. Every function here is a
pure function of its key: the same key gives the same numbers, eagerly, under ``gc.jit`` on both
backends and in AOT builds, because all of them come from one primitive (``random_bits``:
Threefry-2x32 of each element's position under the key, written once in NumPy and once in C).
Use a key once; make new ones with `split`.

>>> import numpy as np, gradc as gc
>>> key = gc.random.key(0)
>>> key, sub = gc.random.split(key)
>>> noisy = gc.jit(lambda x, k: x + 0.1 * gc.random.normal(k, x.shape))
>>> noisy(np.zeros(3, np.float32), sub).shape
(3,)
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence, Union

import numpy as np

from . import dtypes, ops
from . import primitives as P

__all__ = ["key", "split", "uniform", "normal", "bernoulli"]

Shape = Union[int, Sequence[int]]
_WORD = 0xFFFFFFFF


def key(seed: int) -> np.ndarray:
    """A key from an integer seed: its 64 bits as two 32-bit words, ``int64[2]``.

    >>> import gradc as gc
    >>> gc.random.key(0)
    array([0, 0])
    >>> gc.random.key(2**32 + 7)
    array([1, 7])
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"gc.random.key: the seed must be a Python or NumPy integer, "
                        f"not {type(seed).__name__}")
    seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    return np.array([seed >> 32, seed & _WORD], dtype=np.int64)


def split(key: Any, num: int = 2) -> Any:
    """``num`` new keys from one, as a ``(num, 2)`` array whose rows are keys.

    >>> import gradc as gc
    >>> k1, k2 = gc.random.split(gc.random.key(0))
    >>> k1.shape, bool((k1 != k2).any())
    ((2,), True)
    """
    num = _count("split", num)
    return ops.bind(P.random_bits, ops.asarray(key), shape=(num, 2), dtype=np.dtype(np.int64))


def uniform(key: Any, shape: Shape = (), dtype: Any = np.float32, minval: Any = 0.0,
            maxval: Any = 1.0) -> Any:
    """Uniform floats in ``[minval, maxval)`` of ``shape`` (float32 by default, as ``jax.random``).

    float32 values carry 24 random bits, float64 values 53.

    >>> import gradc as gc
    >>> u = gc.random.uniform(gc.random.key(0), (2, 3))
    >>> u.shape, u.dtype, bool(((0 <= u) & (u < 1)).all())
    ((2, 3), dtype('float32'), True)
    """
    dtype = _float_dtype("uniform", dtype)
    u = _uniform01(key, _shape("uniform", shape), dtype)
    if isinstance(minval, (int, float)) and isinstance(maxval, (int, float)) \
            and minval == 0 and maxval == 1:
        return u
    return u * (maxval - minval) + minval


def normal(key: Any, shape: Shape = (), dtype: Any = np.float32) -> Any:
    """Standard normal floats of ``shape`` (Box-Muller from two uniforms per value).

    >>> import gradc as gc
    >>> z = gc.random.normal(gc.random.key(1), (10000,), dtype="float64")
    >>> abs(float(z.mean())) < 0.05, abs(float(z.std()) - 1) < 0.05
    (True, True)
    """
    dtype = _float_dtype("normal", dtype)
    shape = _shape("normal", shape)
    u = _uniform01(key, (2,) + shape, dtype)
    # NOTE: log1p(-u) with u in [0, 1) is finite: the radius never becomes inf.
    radius = ops.sqrt(-2.0 * ops.log1p(-u[0]))
    return radius * ops.cos((2 * math.pi) * u[1])


def bernoulli(key: Any, p: Any = 0.5, shape: Shape | None = None) -> Any:
    """Booleans that are True with probability ``p`` (``shape`` defaults to p's shape); the mask
    of dropout.

    >>> import gradc as gc, numpy as np
    >>> x = np.ones(8, np.float32)
    >>> keep = gc.random.bernoulli(gc.random.key(0), 0.75, x.shape)
    >>> y = gc.where(keep, x / 0.75, 0.0)      # inverted dropout
    >>> keep.dtype, y.shape
    (dtype('bool'), (8,))
    """
    p_shape = tuple(np.shape(p)) if not hasattr(p, "shape") else tuple(p.shape)
    shape = p_shape if shape is None else _shape("bernoulli", shape)
    dtype = p.dtype if getattr(p, "dtype", None) is not None and p.dtype.kind == "f" \
        else np.dtype(np.float32)
    return ops.less(_uniform01(key, shape, dtype), p)


# ---- helpers -------------------------------------------------------------------------------------

def _uniform01(key, shape, dtype):
    return ops.bind(P.random_bits, ops.asarray(key), shape=shape, dtype=dtype)


def _shape(fn, shape):
    dims = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0
               for d in dims):
        raise TypeError(f"gc.random.{fn}: shape must be a tuple of non-negative Python ints, "
                        f"got {shape!r}")
    return tuple(int(d) for d in dims)


def _count(fn, num):
    if not isinstance(num, numbers.Integral) or isinstance(num, bool) or num < 1:
        raise TypeError(f"gc.random.{fn}: num must be a positive int, got {num!r}")
    return int(num)


def _float_dtype(fn, dtype):
    dtype = dtypes.canonical(dtype)
    if dtype.kind != "f":
        raise TypeError(f"gc.random.{fn}: dtype must be float32 or float64, not {dtype}")
    return dtype
