"""The op table: one record per API function (API.md section 3), checked three ways.

Each record is (name, gradc callable, NumPy reference, input generator, differentiable argnums).
For every record and both float dtypes the tests check
  (a) values against the NumPy reference: eagerly on NumPy inputs, inside gc.jit on each backend,
      and on gc.Tensor inputs;
  (b) gc.jvp against central finite differences of the reference (float64; float32 JVPs are
      compared with the float64 ones);
  (c) gc.vjp by the dot-product test  <v, J u> == <J^T v, u>;
  (d) gc.jacobian in forward mode against reverse mode;
  (e) gc.grad inside gc.jit against gc.grad outside, and Tensor.backward against gc.grad.
A guard test fails when a primitive of gradc.primitives.PRIMITIVES is used by no record.
Gradient conventions (API.md section 2) have closed-form tests at the end.
"""
import sys
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import gradc as gc
from conftest import (FD_ATOL, FD_EPS, FD_RTOL, FLOAT_DTYPES, assert_close, assert_close_scalar,
                      scale_of)

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


# ---- input generators (float64 values; cast per test) -------------------------------------------

def normal(r, *shape):
    return r.standard_normal(shape)


def positive(r, *shape):
    """Domain of log / sqrt / power base."""
    return r.uniform(0.5, 2.0, shape)


def nonzero(r, *shape, gap=0.2):
    """Values at least `gap` away from 0 (the kink of abs / relu / sign, the pole of 1/x)."""
    return r.uniform(gap, 1.5, shape) * r.choice([-1.0, 1.0], shape)


def distinct(r, *shape):
    """Values pairwise at least 0.2 apart: no ties for max / min / argmax / maximum."""
    n = int(np.prod(shape, dtype=np.int64))
    values = (r.permutation(n) - n / 2) * 0.3 + r.uniform(-0.05, 0.05, n)
    return values.reshape(shape)


def distinct_pair(r, shape_a, shape_b):
    """Two arrays whose elements are all pairwise distinct (for maximum / minimum)."""
    na, nb = int(np.prod(shape_a, dtype=np.int64)), int(np.prod(shape_b, dtype=np.int64))
    pool = distinct(r, na + nb)
    return pool[:na].reshape(shape_a), pool[na:].reshape(shape_b)


def away_from(r, shape, points, gap=0.1, low=-1.5, high=1.5):
    """Uniform values in [low, high] at least `gap` from every point in `points` (kinks of clip)."""
    x = r.uniform(low, high, shape)
    for _ in range(1000):
        bad = np.zeros(x.shape, bool)
        for p in points:
            bad |= np.abs(x - p) < gap
        if not bad.any():
            return x
        x[bad] = r.uniform(low, high, int(bad.sum()))
    raise AssertionError("generator failed")


def small_ints(r, *shape):
    """Float values from {-1, 0, 1}, so equality comparisons see both outcomes."""
    return r.integers(-1, 2, shape).astype(np.float64)


def labels(r, n, classes, dtype=np.int64):
    return r.integers(0, classes, n).astype(dtype)


def hinge_inputs(r, batch, classes, margin):
    """Scores whose hinge terms s_j - s_y + margin stay at least 0.05 away from the kink 0."""
    for _ in range(1000):
        s = r.standard_normal((batch, classes))
        y = labels(r, batch, classes)
        terms = s - s[np.arange(batch), y][:, None] + margin
        terms[np.arange(batch), y] = 1.0
        if np.min(np.abs(terms)) > 0.05:
            return s, y
    raise AssertionError("generator failed")


INTS = tuple(range(-3, 4))
HALVES = tuple(k + 0.5 for k in range(-4, 4))


def well_conditioned(r, n, batch=()):
    """Square matrices with eigenvalues near 3 (their inverse and derivatives stay moderate)."""
    return r.standard_normal(batch + (n, n)) * 0.5 + 3 * np.eye(n)


def quotient_pair(r, shape):
    """(x, y) with x / y at least 0.1 from an integer (the jumps of fmod, mod and floor_divide)."""
    y = nonzero(r, *shape, gap=0.5)
    return away_from(r, shape, INTS, low=-3, high=3) * y, y


# ---- NumPy references for the composites -------------------------------------------------------

def np_erf(x):
    import math
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def np_uniform64(key, shape):
    """gc.random.uniform's float64 values: 53 bits of Threefry-2x32 of each element's position
    (gradc.primitives.threefry2x32 is checked against Random123's answers in test_random.py)."""
    from gradc.primitives import threefry2x32
    i = np.arange(int(np.prod(shape)), dtype=np.uint64)
    w0, w1 = threefry2x32(key[0], key[1], i >> np.uint64(32), i & np.uint64(0xFFFFFFFF))
    return (((w0 >> 5) * 67108864.0 + (w1 >> 6)) * 2.0 ** -53).reshape(shape)


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return out.reshape(()) if axis is None else np.squeeze(out, axis=axis)


def np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return x - np_logsumexp(x, axis=axis, keepdims=True)


def np_cross_entropy(logits, y, reduction="mean"):
    losses = -np_log_softmax(logits)[np.arange(len(y)), y]
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](losses)


def np_multiclass_hinge(s, y, margin=1.0):
    rows = np.arange(len(y))
    terms = np.maximum(0, s - s[rows, y][:, None] + margin)
    terms[rows, y] = 0
    return np.mean(np.sum(terms, axis=1))


def np_bce_with_logits(x, t):
    return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---- the table -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable            # the gradc callable
    ref: Callable           # the NumPy reference
    gen: Callable           # rng -> tuple of arguments (float args in float64)
    diff: tuple = (0,)      # differentiable argnums
    check_dtype: bool = True
    on_tensor: bool = True  # False: np.array of a list converts gc.Tensor values that do not
    #                         require grad to NumPy arrays (those that do stay tensors)

    def __repr__(self):
        return self.name


def op(name, fn, ref, gen, diff=(0,), check_dtype=True, on_tensor=True):
    return Op(name, fn, ref, gen, tuple(diff), check_dtype, on_tensor)


M, K = 3, 4      # the default 2-D shape
I2 = np.array([2, 0, 1, 2])          # repeated index: the scatter-add must accumulate
I_NEG = np.array([3, -1, 0])         # negative indices wrap as in NumPy
MASK = np.array([True, False, True, False])          # a captured bool constant
CONST = np.linspace(-1.0, 1.0, 8).reshape(4, 2)   # a captured float64 array constant
ZERO_AT_1 = np.array([1.0, 0.0, 1.0, 1.0])          # a zero factor: prod's gradient stays exact
MASK3 = np.array([True, False, True])                # a captured row mask for 3 rows
MASK3_ROWS = np.array([False, True, True])
MASK_2D = np.arange(M * K).reshape(M, K) % 3 == 1

OPS = [
    # ---- random numbers: x scaled by float64 uniforms drawn from a key argument (gc.random)
    op("random_uniform_scale", lambda x, key: x * gc.random.uniform(key, x.shape, np.float64),
       lambda x, key: x * np_uniform64(key, x.shape),
       lambda r: (normal(r, M, K), r.integers(0, 2 ** 32, 2))),
    # ---- elementwise, unary
    op("negative", lambda x: gc.negative(x), np.negative, lambda r: (normal(r, M, K),)),
    op("op_neg", lambda x: -x, lambda x: -x, lambda r: (normal(r, M, K),)),
    op("square", lambda x: gc.square(x), np.square, lambda r: (normal(r, M, K),)),
    op("sqrt", lambda x: gc.sqrt(x), np.sqrt, lambda r: (positive(r, M, K),)),
    op("exp", lambda x: gc.exp(x), np.exp, lambda r: (normal(r, M, K),)),
    op("log", lambda x: gc.log(x), np.log, lambda r: (positive(r, M, K),)),
    op("log1p", lambda x: gc.log1p(x), np.log1p, lambda r: (r.uniform(-0.5, 2.0, (M, K)),)),
    op("expm1", lambda x: gc.expm1(x), np.expm1, lambda r: (normal(r, M, K),)),
    op("abs", lambda x: gc.abs(x), np.abs, lambda r: (nonzero(r, M, K),)),
    op("sign", lambda x: gc.sign(x), np.sign, lambda r: (nonzero(r, M, K),)),
    op("sin", lambda x: gc.sin(x), np.sin, lambda r: (normal(r, M, K),)),
    op("cos", lambda x: gc.cos(x), np.cos, lambda r: (normal(r, M, K),)),
    op("tanh", lambda x: gc.tanh(x), np.tanh, lambda r: (normal(r, M, K),)),
    op("sigmoid", lambda x: gc.sigmoid(x), np_sigmoid, lambda r: (2 * normal(r, M, K),)),
    op("relu", lambda x: gc.relu(x), lambda x: np.maximum(x, 0), lambda r: (nonzero(r, M, K),)),
    op("softplus", lambda x: gc.softplus(x), lambda x: np.logaddexp(0, x),
       lambda r: (2 * normal(r, M, K),)),
    # ---- elementwise ops made from their primitive entry (API.md section 8)
    op("tan", lambda x: gc.tan(x), np.tan, lambda r: (r.uniform(-1.2, 1.2, (M, K)),)),
    op("arcsin", lambda x: gc.arcsin(x), np.arcsin, lambda r: (r.uniform(-0.8, 0.8, (M, K)),)),
    op("arccos", lambda x: np.arccos(x), np.arccos, lambda r: (r.uniform(-0.8, 0.8, (M, K)),)),
    op("arctan", lambda x: gc.arctan(x), np.arctan, lambda r: (2 * normal(r, M, K),)),
    op("sinh", lambda x: gc.sinh(x), np.sinh, lambda r: (normal(r, M, K),)),
    op("cosh", lambda x: np.cosh(x), np.cosh, lambda r: (normal(r, M, K),)),
    op("arcsinh", lambda x: gc.arcsinh(x), np.arcsinh, lambda r: (2 * normal(r, M, K),)),
    op("arccosh", lambda x: gc.arccosh(x), np.arccosh, lambda r: (r.uniform(1.2, 3.0, (M, K)),)),
    op("arctanh", lambda x: np.arctanh(x), np.arctanh, lambda r: (r.uniform(-0.8, 0.8, (M, K)),)),
    op("exp2", lambda x: gc.exp2(x), np.exp2, lambda r: (normal(r, M, K),)),
    op("log2", lambda x: np.log2(x), np.log2, lambda r: (positive(r, M, K),)),
    op("log10", lambda x: gc.log10(x), np.log10, lambda r: (positive(r, M, K),)),
    op("cbrt", lambda x: gc.cbrt(x), np.cbrt, lambda r: (nonzero(r, M, K),)),
    op("erf", lambda x: gc.erf(x), np_erf, lambda r: (normal(r, M, K),)),
    op("floor", lambda x: gc.floor(x), np.floor, lambda r: (away_from(r, (M, K), INTS, low=-3, high=3),)),
    op("ceil", lambda x: np.ceil(x), np.ceil, lambda r: (away_from(r, (M, K), INTS, low=-3, high=3),)),
    op("trunc", lambda x: gc.trunc(x), np.trunc, lambda r: (away_from(r, (M, K), INTS, low=-3, high=3),)),
    op("rint", lambda x: np.rint(x), np.rint, lambda r: (away_from(r, (M, K), HALVES, low=-3, high=3),)),
    op("arctan2", lambda y, x: gc.arctan2(y, x), np.arctan2,
       lambda r: (normal(r, M, K), nonzero(r, M, K)), (0, 1)),
    op("np_arctan2_bcast", lambda y, x: np.arctan2(y, x), np.arctan2,
       lambda r: (normal(r, M, K), nonzero(r, K)), (0, 1)),
    op("hypot", lambda x, y: gc.hypot(x, y), np.hypot,
       lambda r: (nonzero(r, M, K), normal(r, M, K)), (0, 1)),
    op("fmod", lambda x, y: gc.fmod(x, y), np.fmod, lambda r: quotient_pair(r, (M, K)), (0, 1)),
    op("np_fmod_scalar", lambda x: np.fmod(x, 0.7), lambda x: np.fmod(x, 0.7),
       lambda r: (0.7 * away_from(r, (M, K), INTS, low=-3, high=3),)),
    # ---- elementwise, binary (with broadcasting and weak Python scalars)
    op("add", lambda x, y: gc.add(x, y), np.add,
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("add_bcast_row", lambda x, y: gc.add(x, y), np.add,
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("add_bcast_outer", lambda x, y: gc.add(x, y), np.add,
       lambda r: (normal(r, M, 1), normal(r, 1, K)), (0, 1)),
    op("add_bcast_0d", lambda x, y: gc.add(x, y), np.add,
       lambda r: (normal(r, M, K), normal(r)), (0, 1)),
    op("op_add", lambda x, y: x + y, lambda x, y: x + y,
       lambda r: (normal(r, 2, M, K), normal(r, M, 1)), (0, 1)),
    op("op_add_scalar", lambda x: x + 2.0, lambda x: x + 2.0, lambda r: (normal(r, M, K),)),
    op("op_radd_scalar", lambda x: 2.0 + x, lambda x: 2.0 + x, lambda r: (normal(r, M, K),)),
    op("subtract", lambda x, y: gc.subtract(x, y), np.subtract,
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("op_sub", lambda x, y: x - y, lambda x, y: x - y,
       lambda r: (normal(r, M, 1), normal(r, M, K)), (0, 1)),
    op("op_rsub_scalar", lambda x: 1.0 - x, lambda x: 1.0 - x, lambda r: (normal(r, M, K),)),
    op("multiply", lambda x, y: gc.multiply(x, y), np.multiply,
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("op_mul_bcast", lambda x, y: x * y, lambda x, y: x * y,
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("op_mul_scalar", lambda x: x * 3.0, lambda x: x * 3.0, lambda r: (normal(r, M, K),)),
    op("op_mul_int_scalar", lambda x: 3 * x, lambda x: 3 * x, lambda r: (normal(r, M, K),)),
    op("divide", lambda x, y: gc.divide(x, y), np.divide,
       lambda r: (normal(r, M, K), nonzero(r, M, K, gap=0.5)), (0, 1)),
    op("op_div_bcast", lambda x, y: x / y, lambda x, y: x / y,
       lambda r: (normal(r, M, K), nonzero(r, M, 1, gap=0.5)), (0, 1)),
    op("op_rdiv_scalar", lambda y: 2.0 / y, lambda y: 2.0 / y,
       lambda r: (nonzero(r, M, K, gap=0.5),)),
    op("power", lambda x, y: gc.power(x, y), np.power,
       lambda r: (positive(r, M, K), normal(r, M, K)), (0, 1)),
    op("op_pow_2", lambda x: x ** 2, lambda x: x ** 2, lambda r: (normal(r, M, K),)),
    op("op_pow_3_negative_base", lambda x: x ** 3, lambda x: x ** 3, lambda r: (normal(r, M, K),)),
    op("op_pow_half", lambda x: x ** 0.5, lambda x: x ** 0.5, lambda r: (positive(r, M, K),)),
    op("op_rpow", lambda x: 2.0 ** x, lambda x: 2.0 ** x, lambda r: (normal(r, M, K),)),
    op("maximum", lambda x, y: gc.maximum(x, y), np.maximum,
       lambda r: distinct_pair(r, (M, K), (M, K)), (0, 1)),
    op("maximum_bcast", lambda x, y: gc.maximum(x, y), np.maximum,
       lambda r: distinct_pair(r, (M, K), (K,)), (0, 1)),
    op("maximum_scalar", lambda x: gc.maximum(x, 0.0), lambda x: np.maximum(x, 0.0),
       lambda r: (nonzero(r, M, K),)),
    op("minimum", lambda x, y: gc.minimum(x, y), np.minimum,
       lambda r: distinct_pair(r, (M, K), (M, K)), (0, 1)),
    op("minimum_bcast", lambda x, y: gc.minimum(x, y), np.minimum,
       lambda r: distinct_pair(r, (M, 1), (M, K)), (0, 1)),
    op("where", lambda c, x, y: gc.where(c, x, y), np.where,
       lambda r: (r.random((M, K)) > 0.5, normal(r, M, K), normal(r, M, K)), (1, 2)),
    op("where_bcast", lambda c, x, y: gc.where(c, x, y), np.where,
       lambda r: (r.random(K) > 0.5, normal(r, M, K), normal(r, M, 1)), (1, 2)),
    op("where_computed_cond", lambda x: gc.where(x > 0, x, 0.1 * x),
       lambda x: np.where(x > 0, x, 0.1 * x), lambda r: (nonzero(r, M, K),)),
    op("clip", lambda x: gc.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
       lambda r: (away_from(r, (M, K), (-0.5, 0.5)),)),
    op("op_and", lambda x, y: (x > 0) & (y > 0), lambda x, y: (x > 0) & (y > 0),
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_or", lambda x, y: (x > 0) | (y < 0), lambda x, y: (x > 0) | (y < 0),
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_invert", lambda x: ~(x > 0), lambda x: ~(x > 0), lambda r: (small_ints(r, M, K),), ()),
    op("op_and_ndarray_lhs", lambda x: MASK & (x > 0), lambda x: MASK & (x > 0),
       lambda r: (small_ints(r, M, K),), ()),
    op("op_or_ndarray_lhs", lambda x: MASK | (x > 0), lambda x: MASK | (x > 0),
       lambda r: (small_ints(r, M, K),), ()),
    op("np_logical_and", lambda x, y: np.logical_and(x > 0, y > 0),
       lambda x, y: np.logical_and(x > 0, y > 0),
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("where_mask_from_logical_ops", lambda x, y: gc.where((x > 0) & ~(y > 0), x, y),
       lambda x, y: np.where((x > 0) & ~(y > 0), x, y),
       lambda r: (nonzero(r, M, K), nonzero(r, M, K)), (0, 1)),
    # stop_gradient's derivative deliberately differs from its reference's (x * x), so the record
    # checks values only; test_transforms.py::test_stop_gradient checks its gradient in closed form.
    op("stop_gradient", lambda x: gc.stop_gradient(x) * x, lambda x: x * x,
       lambda r: (normal(r, M, K),), ()),
    op("astype_bool_mask", lambda x: (x > 0).astype(x.dtype) * x,
       lambda x: (x > 0).astype(x.dtype) * x, lambda r: (nonzero(r, M, K),)),
    op("astype_float64", lambda x: x.astype(np.float64) * 2.0,
       lambda x: x.astype(np.float64) * 2.0, lambda r: (normal(r, M, K),)),
    # ---- comparisons (bool results, not differentiable)
    op("equal", lambda x, y: gc.equal(x, y), np.equal,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("not_equal", lambda x, y: gc.not_equal(x, y), np.not_equal,
       lambda r: (small_ints(r, M, K), small_ints(r, K)), ()),
    op("less", lambda x, y: gc.less(x, y), np.less,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("less_equal", lambda x, y: gc.less_equal(x, y), np.less_equal,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("greater", lambda x, y: gc.greater(x, y), np.greater,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("greater_equal", lambda x, y: gc.greater_equal(x, y), np.greater_equal,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_eq", lambda x, y: x == y, lambda x, y: x == y,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_ne", lambda x, y: x != y, lambda x, y: x != y,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_lt_scalar", lambda x: x < 0.5, lambda x: x < 0.5, lambda r: (small_ints(r, M, K),), ()),
    op("op_le", lambda x, y: x <= y, lambda x, y: x <= y,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_gt", lambda x, y: x > y, lambda x, y: x > y,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    op("op_ge", lambda x, y: x >= y, lambda x, y: x >= y,
       lambda r: (small_ints(r, M, K), small_ints(r, M, K)), ()),
    # ---- reductions
    op("sum_all", lambda x: gc.sum(x), np.sum, lambda r: (normal(r, M, K),)),
    op("sum_axis0", lambda x: gc.sum(x, axis=0), lambda x: np.sum(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("sum_axis1", lambda x: gc.sum(x, axis=1), lambda x: np.sum(x, axis=1),
       lambda r: (normal(r, M, K),)),
    op("sum_axis_neg1_keepdims", lambda x: gc.sum(x, axis=-1, keepdims=True),
       lambda x: np.sum(x, axis=-1, keepdims=True), lambda r: (normal(r, M, K),)),
    op("sum_all_keepdims", lambda x: gc.sum(x, keepdims=True),
       lambda x: np.sum(x, keepdims=True), lambda r: (normal(r, M, K),)),
    op("sum_axes_0_2", lambda x: gc.sum(x, axis=(0, 2)), lambda x: np.sum(x, axis=(0, 2)),
       lambda r: (normal(r, 2, M, K),)),
    op("method_sum", lambda x: x.sum(axis=0), lambda x: x.sum(axis=0),
       lambda r: (normal(r, M, K),)),
    op("mean_all", lambda x: gc.mean(x), np.mean, lambda r: (normal(r, M, K),)),
    op("mean_axis0", lambda x: gc.mean(x, axis=0), lambda x: np.mean(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("mean_axis1_keepdims", lambda x: gc.mean(x, axis=1, keepdims=True),
       lambda x: np.mean(x, axis=1, keepdims=True), lambda r: (normal(r, M, K),)),
    op("mean_axis_neg1", lambda x: gc.mean(x, axis=-1), lambda x: np.mean(x, axis=-1),
       lambda r: (normal(r, 2, M, K),)),
    op("method_mean", lambda x: x.mean(), lambda x: x.mean(), lambda r: (normal(r, M, K),)),
    op("max_all", lambda x: gc.max(x), np.max, lambda r: (distinct(r, M, K),)),
    op("max_axis0", lambda x: gc.max(x, axis=0), lambda x: np.max(x, axis=0),
       lambda r: (distinct(r, M, K),)),
    op("max_axis1", lambda x: gc.max(x, axis=1), lambda x: np.max(x, axis=1),
       lambda r: (distinct(r, M, K),)),
    op("max_axis_neg1_keepdims", lambda x: gc.max(x, axis=-1, keepdims=True),
       lambda x: np.max(x, axis=-1, keepdims=True), lambda r: (distinct(r, 2, M, K),)),
    op("method_max", lambda x: x.max(axis=1), lambda x: x.max(axis=1),
       lambda r: (distinct(r, M, K),)),
    op("min_all", lambda x: gc.min(x), np.min, lambda r: (distinct(r, M, K),)),
    op("min_axis0_keepdims", lambda x: gc.min(x, axis=0, keepdims=True),
       lambda x: np.min(x, axis=0, keepdims=True), lambda r: (distinct(r, M, K),)),
    op("min_axis_neg1", lambda x: gc.min(x, axis=-1), lambda x: np.min(x, axis=-1),
       lambda r: (distinct(r, M, K),)),
    op("argmax_all", lambda x: gc.argmax(x), np.argmax, lambda r: (distinct(r, M, K),), ()),
    op("argmax_axis0", lambda x: gc.argmax(x, axis=0), lambda x: np.argmax(x, axis=0),
       lambda r: (distinct(r, M, K),), ()),
    op("argmax_axis1", lambda x: gc.argmax(x, axis=1), lambda x: np.argmax(x, axis=1),
       lambda r: (distinct(r, M, K),), ()),
    op("argmax_axis_neg1", lambda x: gc.argmax(x, axis=-1), lambda x: np.argmax(x, axis=-1),
       lambda r: (distinct(r, 2, M, K),), ()),
    op("argmin_all", lambda x: gc.argmin(x), np.argmin, lambda r: (distinct(r, M, K),), ()),
    op("argmin_axis1", lambda x: gc.argmin(x, axis=1), lambda x: np.argmin(x, axis=1),
       lambda r: (distinct(r, M, K),), ()),
    op("logsumexp_all", lambda x: gc.logsumexp(x), np_logsumexp, lambda r: (normal(r, M, K),)),
    op("logsumexp_axis0", lambda x: gc.logsumexp(x, axis=0),
       lambda x: np_logsumexp(x, axis=0), lambda r: (normal(r, M, K),)),
    op("logsumexp_axis1", lambda x: gc.logsumexp(x, axis=1),
       lambda x: np_logsumexp(x, axis=1), lambda r: (normal(r, M, K),)),
    op("logsumexp_axis_neg1_keepdims", lambda x: gc.logsumexp(x, axis=-1, keepdims=True),
       lambda x: np_logsumexp(x, axis=-1, keepdims=True), lambda r: (normal(r, 2, M, K),)),
    # ---- shape ops
    op("reshape", lambda x: gc.reshape(x, (2, 6)), lambda x: np.reshape(x, (2, 6)),
       lambda r: (normal(r, M, K),)),
    op("reshape_minus1", lambda x: gc.reshape(x, (4, -1)), lambda x: np.reshape(x, (4, -1)),
       lambda r: (normal(r, M, K),)),
    op("method_reshape", lambda x: x.reshape(2, 2, 3), lambda x: x.reshape(2, 2, 3),
       lambda r: (normal(r, M, K),)),
    op("transpose", lambda x: gc.transpose(x), np.transpose, lambda r: (normal(r, M, K),)),
    op("transpose_axes", lambda x: gc.transpose(x, (1, 0, 2)),
       lambda x: np.transpose(x, (1, 0, 2)), lambda r: (normal(r, 2, M, K),)),
    op("transpose_axes_cycle", lambda x: gc.transpose(x, (2, 0, 1)),
       lambda x: np.transpose(x, (2, 0, 1)), lambda r: (normal(r, 2, M, K),)),
    op("attrs_shape_ndim_dtype", lambda x: gc.reshape(x, (x.shape[0], -1)).astype(x.dtype) * x.ndim,
       lambda x: np.reshape(x, (x.shape[0], -1)).astype(x.dtype) * x.ndim,
       lambda r: (normal(r, 2, M, K),)),
    op("method_T", lambda x: x.T, lambda x: x.T, lambda r: (normal(r, M, K),)),
    op("expand_dims0", lambda x: gc.expand_dims(x, 0), lambda x: np.expand_dims(x, 0),
       lambda r: (normal(r, M, K),)),
    op("expand_dims_neg1", lambda x: gc.expand_dims(x, -1), lambda x: np.expand_dims(x, -1),
       lambda r: (normal(r, M, K),)),
    op("squeeze_axis", lambda x: gc.squeeze(x, axis=1), lambda x: np.squeeze(x, axis=1),
       lambda r: (normal(r, M, 1, K),)),
    op("squeeze_all", lambda x: gc.squeeze(x), np.squeeze, lambda r: (normal(r, 1, M, 1),)),
    op("broadcast_to", lambda x: gc.broadcast_to(x, (M, K)),
       lambda x: np.broadcast_to(x, (M, K)), lambda r: (normal(r, K),)),
    op("broadcast_to_3d", lambda x: gc.broadcast_to(x, (2, M, K)),
       lambda x: np.broadcast_to(x, (2, M, K)), lambda r: (normal(r, M, 1),)),
    op("concatenate_axis0", lambda x, y: gc.concatenate([x, y], axis=0),
       lambda x, y: np.concatenate([x, y], axis=0),
       lambda r: (normal(r, 2, K), normal(r, M, K)), (0, 1)),
    op("concatenate_axis1_three", lambda x, y, z: gc.concatenate([x, y, z], axis=1),
       lambda x, y, z: np.concatenate([x, y, z], axis=1),
       lambda r: (normal(r, M, 2), normal(r, M, K), normal(r, M, 1)), (0, 1, 2)),
    op("concatenate_axis_neg1", lambda x, y: gc.concatenate((x, y), axis=-1),
       lambda x, y: np.concatenate((x, y), axis=-1),
       lambda r: (normal(r, 2, M, 1), normal(r, 2, M, K)), (0, 1)),
    op("stack_axis0", lambda x, y: gc.stack([x, y]), lambda x, y: np.stack([x, y]),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("stack_axis1", lambda x, y: gc.stack([x, y], axis=1),
       lambda x, y: np.stack([x, y], axis=1),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("stack_axis_neg1", lambda x, y: gc.stack([x, y], axis=-1),
       lambda x, y: np.stack([x, y], axis=-1),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    # ---- indexing
    op("index_slice", lambda x: x[1:3], lambda x: x[1:3], lambda r: (normal(r, 5, K),)),
    op("index_reverse", lambda x: x[::-1], lambda x: x[::-1], lambda r: (normal(r, 5, K),)),
    op("index_neg_step_2d", lambda x: x[::-2, 1:], lambda x: x[::-2, 1:],
       lambda r: (normal(r, 5, K),)),
    op("index_strided_mixed", lambda x: x[1:-1:2, ::-1], lambda x: x[1:-1:2, ::-1],
       lambda r: (normal(r, 5, K),)),
    op("index_int", lambda x: x[1], lambda x: x[1], lambda r: (normal(r, 5, K),)),
    op("index_neg_int", lambda x: x[-1], lambda x: x[-1], lambda r: (normal(r, 5, K),)),
    op("index_int_and_slice", lambda x: x[2, 1:3], lambda x: x[2, 1:3],
       lambda r: (normal(r, 5, K),)),
    op("index_none", lambda x: x[None], lambda x: x[None], lambda r: (normal(r, M, K),)),
    op("index_none_middle", lambda x: x[:, None, :], lambda x: x[:, None, :],
       lambda r: (normal(r, M, K),)),
    op("index_ellipsis", lambda x: x[..., 1], lambda x: x[..., 1],
       lambda r: (normal(r, 2, M, K),)),
    op("index_3d_mixed", lambda x: x[:, 1, ::-1], lambda x: x[:, 1, ::-1],
       lambda r: (normal(r, 2, M, K),)),
    op("index_int_array_repeats", lambda x: x[I2], lambda x: x[I2], lambda r: (normal(r, M, K),)),
    op("index_int_array_negative", lambda x: x[:, I_NEG], lambda x: x[:, I_NEG],
       lambda r: (normal(r, M, K),)),
    op("index_gather_rows_labels", lambda x, y: x[np.arange(5), y],
       lambda x, y: x[np.arange(5), y], lambda r: (normal(r, 5, K), labels(r, 5, K))),
    op("index_gather_int32_labels", lambda x, y: x[np.arange(5), y],
       lambda x, y: x[np.arange(5), y],
       lambda r: (normal(r, 5, K), labels(r, 5, K, np.int32))),
    op("index_runtime_int_array", lambda x, i: x[i], lambda x, i: x[i],
       lambda r: (normal(r, 5, K), np.array([3, -1, 0, -5, 3], np.int64))),
    # ---- linear algebra
    op("matmul_1d_1d", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, K), normal(r, K)), (0, 1)),
    op("matmul_2d_1d", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("matmul_1d_2d", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, K), normal(r, K, 5)), (0, 1)),
    op("matmul_2d_2d", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, M, K), normal(r, K, 5)), (0, 1)),
    op("matmul_batched", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, 2, M, K), normal(r, 2, K, 5)), (0, 1)),
    op("matmul_batched_bcast_rhs", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, 2, M, K), normal(r, K, 5)), (0, 1)),
    op("matmul_batched_bcast_lhs", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, M, K), normal(r, 2, K, 5)), (0, 1)),
    op("matmul_batched_1d", lambda x, y: gc.matmul(x, y), np.matmul,
       lambda r: (normal(r, 2, M, K), normal(r, K)), (0, 1)),
    op("op_matmul", lambda x, y: x @ y, lambda x, y: x @ y,
       lambda r: (normal(r, M, K), normal(r, K, 5)), (0, 1)),
    op("op_matmul_const", lambda x: x @ CONST, lambda x: x @ CONST, lambda r: (normal(r, M, K),)),
    op("dot_1d", lambda x, y: gc.dot(x, y), np.dot, lambda r: (normal(r, K), normal(r, K)), (0, 1)),
    op("dot_2d", lambda x, y: gc.dot(x, y), np.dot,
       lambda r: (normal(r, M, K), normal(r, K, 5)), (0, 1)),
    op("dot_2d_1d", lambda x, y: gc.dot(x, y), np.dot,
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    # ---- gc.nn
    op("softmax", lambda x: gc.nn.softmax(x), np_softmax, lambda r: (normal(r, M, K),)),
    op("softmax_axis0", lambda x: gc.nn.softmax(x, axis=0), lambda x: np_softmax(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("log_softmax", lambda x: gc.nn.log_softmax(x), np_log_softmax,
       lambda r: (normal(r, M, K),)),
    op("log_softmax_axis0", lambda x: gc.nn.log_softmax(x, axis=0),
       lambda x: np_log_softmax(x, axis=0), lambda r: (normal(r, M, K),)),
    op("cross_entropy_mean", lambda z, y: gc.nn.cross_entropy(z, y), np_cross_entropy,
       lambda r: (normal(r, 5, M), labels(r, 5, M))),
    op("cross_entropy_sum", lambda z, y: gc.nn.cross_entropy(z, y, reduction="sum"),
       lambda z, y: np_cross_entropy(z, y, "sum"), lambda r: (normal(r, 5, M), labels(r, 5, M))),
    op("cross_entropy_none", lambda z, y: gc.nn.cross_entropy(z, y, reduction="none"),
       lambda z, y: np_cross_entropy(z, y, "none"), lambda r: (normal(r, 5, M), labels(r, 5, M))),
    op("cross_entropy_int32_labels", lambda z, y: gc.nn.cross_entropy(z, y), np_cross_entropy,
       lambda r: (normal(r, 5, M), labels(r, 5, M, np.int32))),
    op("mse", lambda p, t: gc.nn.mse(p, t), lambda p, t: np.mean((p - t) ** 2),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("multiclass_hinge", lambda s, y: gc.nn.multiclass_hinge(s, y), np_multiclass_hinge,
       lambda r: hinge_inputs(r, 6, K, 1.0)),
    op("multiclass_hinge_margin", lambda s, y: gc.nn.multiclass_hinge(s, y, margin=0.5),
       lambda s, y: np_multiclass_hinge(s, y, 0.5), lambda r: hinge_inputs(r, 6, K, 0.5)),
    op("binary_cross_entropy_with_logits",
       lambda x, t: gc.nn.binary_cross_entropy_with_logits(x, t), np_bce_with_logits,
       lambda r: (2 * normal(r, M, K), r.uniform(0, 1, (M, K))), (0, 1)),
    op("one_hot", lambda y: gc.nn.one_hot(y, 5), lambda y: np.eye(5)[y],
       lambda r: (labels(r, 6, 5),), (), check_dtype=False),
    # ---- NumPy functions dispatched through __array_ufunc__ / __array_function__
    op("np_exp", lambda x: np.exp(x), lambda x: np.exp(x), lambda r: (normal(r, M, K),)),
    op("np_log", lambda x: np.log(x), lambda x: np.log(x), lambda r: (positive(r, M, K),)),
    op("np_tanh", lambda x: np.tanh(x), lambda x: np.tanh(x), lambda r: (normal(r, M, K),)),
    op("np_sqrt", lambda x: np.sqrt(x), lambda x: np.sqrt(x), lambda r: (positive(r, M, K),)),
    op("np_maximum", lambda x, y: np.maximum(x, y), lambda x, y: np.maximum(x, y),
       lambda r: distinct_pair(r, (M, K), (M, K)), (0, 1)),
    op("np_sum_axis1", lambda x: np.sum(x, axis=1), lambda x: np.sum(x, axis=1),
       lambda r: (normal(r, M, K),)),
    op("np_mean", lambda x: np.mean(x, axis=0), lambda x: np.mean(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("np_max", lambda x: np.max(x, axis=1), lambda x: np.max(x, axis=1),
       lambda r: (distinct(r, M, K),)),
    op("np_matmul_ones", lambda x: x @ np.ones((K, 2)), lambda x: x @ np.ones((K, 2)),
       lambda r: (normal(r, M, K),)),
    op("np_matmul_func", lambda x, y: np.matmul(x, y), lambda x, y: np.matmul(x, y),
       lambda r: (normal(r, M, K), normal(r, K, 2)), (0, 1)),
    op("np_dot", lambda x, y: np.dot(x, y), lambda x, y: np.dot(x, y),
       lambda r: (normal(r, M, K), normal(r, K, 2)), (0, 1)),
    op("np_transpose", lambda x: np.transpose(x), lambda x: np.transpose(x),
       lambda r: (normal(r, M, K),)),
    op("np_reshape", lambda x: np.reshape(x, (K, M)), lambda x: np.reshape(x, (K, M)),
       lambda r: (normal(r, M, K),)),
    op("np_concatenate", lambda x, y: np.concatenate([x, y], axis=1),
       lambda x, y: np.concatenate([x, y], axis=1),
       lambda r: (normal(r, M, K), normal(r, M, 2)), (0, 1)),
    op("np_where", lambda x, y: np.where(x > 0, x, y), lambda x, y: np.where(x > 0, x, y),
       lambda r: (nonzero(r, M, K), normal(r, M, K)), (0, 1)),
    op("np_clip", lambda x: np.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
       lambda r: (away_from(r, (M, K), (-0.5, 0.5)),)),
    op("np_abs", lambda x: np.abs(x), lambda x: np.abs(x), lambda r: (nonzero(r, M, K),)),
    op("np_square_of_sum", lambda x: np.square(np.sum(x, axis=0, keepdims=True) - x),
       lambda x: np.square(np.sum(x, axis=0, keepdims=True) - x), lambda r: (normal(r, M, K),)),
    op("np_argmax", lambda x: np.argmax(x, axis=1), lambda x: np.argmax(x, axis=1),
       lambda r: (distinct(r, M, K),), ()),
    op("np_argmin", lambda x: np.argmin(x), lambda x: np.argmin(x), lambda r: (distinct(r, M, K),), ()),
    op("np_stack", lambda x, y: np.stack([x, y], axis=1), lambda x, y: np.stack([x, y], axis=1),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("np_zeros_ones_like", lambda x: np.ones_like(x) * x + np.zeros_like(x),
       lambda x: np.ones_like(x) * x + np.zeros_like(x), lambda r: (normal(r, M, K),)),
    op("ones_like", lambda x: gc.ones_like(x) - x, lambda x: np.ones_like(x) - x,
       lambda r: (normal(r, M, K),)),
    # ---- API.md section 8: elementwise composites
    op("reciprocal", lambda x: np.reciprocal(x), np.reciprocal,
       lambda r: (nonzero(r, M, K, gap=0.5),)),
    op("gc_reciprocal", lambda x: gc.reciprocal(x), np.reciprocal,
       lambda r: (nonzero(r, M, K, gap=0.5),)),
    op("logaddexp", lambda x, y: np.logaddexp(x, y), np.logaddexp,
       lambda r: (3 * normal(r, M, K), normal(r, K)), (0, 1)),
    op("gc_logaddexp", lambda x, y: gc.logaddexp(x, y), np.logaddexp,
       lambda r: (3 * normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("logaddexp2", lambda x, y: gc.logaddexp2(x, y), np.logaddexp2,
       lambda r: (3 * normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("np_logaddexp2", lambda x, y: np.logaddexp2(x, y), np.logaddexp2,
       lambda r: (3 * normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("mod", lambda x, y: gc.mod(x, y), np.mod, lambda r: quotient_pair(r, (M, K)), (0, 1)),
    op("remainder", lambda x, y: gc.remainder(x, y), np.remainder,
       lambda r: quotient_pair(r, (M, K)), (0, 1)),
    op("op_mod", lambda x, y: x % y, lambda x, y: x % y, lambda r: quotient_pair(r, (M, K)),
       (0, 1)),
    op("op_rmod_scalar", lambda y: 2.5 % y, lambda y: 2.5 % y,
       lambda r: (2.5 / away_from(r, (M, K), INTS, low=0.6, high=3) * r.choice([-1, 1], (M, K)),)),
    op("np_mod", lambda x: np.mod(x, 0.7), lambda x: np.mod(x, 0.7),
       lambda r: (0.7 * away_from(r, (M, K), INTS, low=-3, high=3),)),
    op("floor_divide", lambda x, y: gc.floor_divide(x, y), np.floor_divide,
       lambda r: quotient_pair(r, (M, K)), (0, 1)),
    op("op_floordiv", lambda x, y: x // y, lambda x, y: x // y,
       lambda r: quotient_pair(r, (M, K)), (0, 1)),
    op("op_rfloordiv", lambda x: 3.0 // x, lambda x: 3.0 // x,
       lambda r: (3.0 / away_from(r, (M, K), INTS, low=0.6, high=4),)),
    op("np_floor_divide", lambda x: np.floor_divide(x, -0.7), lambda x: np.floor_divide(x, -0.7),
       lambda r: (0.7 * away_from(r, (M, K), INTS, low=-3, high=3),)),
    op("int_mod_floordiv", lambda i: (i % 3) * 10 + i // 4, lambda i: (i % 3) * 10 + i // 4,
       lambda r: (r.integers(-9, 9, (M, K)),), ()),
    op("round", lambda x: gc.round(x), np.round, lambda r: (away_from(r, (M, K), HALVES, low=-3,
                                                                         high=3),)),
    op("np_round_decimals", lambda x: np.round(x, 1), lambda x: np.round(x, 1),
       lambda r: (away_from(r, (M, K), tuple(h / 10 for h in HALVES), gap=0.01),)),
    op("np_around", lambda x: np.around(x), np.around,
       lambda r: (away_from(r, (M, K), HALVES, low=-3, high=3),)),
    op("method_round", lambda x: x.round(), lambda x: x.round(),
       lambda r: (away_from(r, (M, K), HALVES, low=-3, high=3),)),
    op("log_sigmoid", lambda x: gc.nn.log_sigmoid(x), lambda x: -np.logaddexp(0, -x),
       lambda r: (3 * normal(r, M, K),)),
    # ---- API.md section 8: reductions
    op("var_all", lambda x: gc.var(x), np.var, lambda r: (normal(r, M, K),)),
    op("np_var_axis_ddof", lambda x: np.var(x, axis=0, ddof=1),
       lambda x: np.var(x, axis=0, ddof=1), lambda r: (normal(r, M, K),)),
    op("method_var_keepdims", lambda x: x.var(axis=1, keepdims=True),
       lambda x: x.var(axis=1, keepdims=True), lambda r: (normal(r, M, K),)),
    op("std", lambda x: gc.std(x, axis=1), lambda x: np.std(x, axis=1), lambda r: (normal(r, M, K),)),
    op("np_std_ddof", lambda x: np.std(x, ddof=1), lambda x: np.std(x, ddof=1),
       lambda r: (normal(r, M, K),)),
    op("method_std", lambda x: x.std(axis=0), lambda x: x.std(axis=0), lambda r: (normal(r, M, K),)),
    op("prod_all", lambda x: gc.prod(x), np.prod, lambda r: (normal(r, M, K),)),
    op("np_prod_axis", lambda x: np.prod(x, axis=1), lambda x: np.prod(x, axis=1),
       lambda r: (normal(r, 2, M, 5),)),
    op("prod_with_zero", lambda x: gc.prod(x * ZERO_AT_1, axis=0, keepdims=True),
       lambda x: np.prod(x * ZERO_AT_1, axis=0, keepdims=True), lambda r: (normal(r, M, K),)),
    op("method_prod", lambda x: x.prod(axis=0), lambda x: x.prod(axis=0),
       lambda r: (normal(r, M, K),)),
    op("cumsum_flat", lambda x: gc.cumsum(x), np.cumsum, lambda r: (normal(r, M, K),)),
    op("np_cumsum_axis", lambda x: np.cumsum(x, axis=0), lambda x: np.cumsum(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("method_cumsum", lambda x: x.cumsum(axis=-1), lambda x: x.cumsum(axis=-1),
       lambda r: (normal(r, 2, M, K),)),
    op("cumprod", lambda x: gc.cumprod(x, axis=1), lambda x: np.cumprod(x, axis=1),
       lambda r: (normal(r, M, 7),)),
    op("np_cumprod_flat_zero", lambda x: np.cumprod(x * ZERO_AT_1),
       lambda x: np.cumprod(x * ZERO_AT_1), lambda r: (normal(r, M, K),)),
    op("method_cumprod", lambda x: x.cumprod(axis=0), lambda x: x.cumprod(axis=0),
       lambda r: (normal(r, M, K),)),
    op("average", lambda x: gc.average(x, axis=0), lambda x: np.average(x, axis=0),
       lambda r: (normal(r, M, K),)),
    op("np_average_weights", lambda x, w: np.average(x, axis=1, weights=w),
       lambda x, w: np.average(x, axis=1, weights=w), lambda r: (normal(r, M, K), positive(r, K)),
       (0, 1)),
    op("norm", lambda x: gc.norm(x), np.linalg.norm, lambda r: (normal(r, M, K),)),
    op("np_norm_vector", lambda x: np.linalg.norm(x), np.linalg.norm, lambda r: (normal(r, 6),)),
    op("np_norm_ord1", lambda x: np.linalg.norm(x, 1), lambda x: np.linalg.norm(x, 1),
       lambda r: (nonzero(r, 6),)),
    op("np_norm_ord2_axis", lambda x: np.linalg.norm(x, 2, axis=1),
       lambda x: np.linalg.norm(x, 2, axis=1), lambda r: (normal(r, M, K),)),
    op("np_norm_inf", lambda x: np.linalg.norm(x, np.inf), lambda x: np.linalg.norm(x, np.inf),
       lambda r: (distinct(r, 6),)),
    op("np_norm_ord3", lambda x: np.linalg.norm(x, 3), lambda x: np.linalg.norm(x, 3),
       lambda r: (nonzero(r, 6),)),
    op("np_norm_fro_keepdims", lambda x: np.linalg.norm(x, "fro", keepdims=True),
       lambda x: np.linalg.norm(x, "fro", keepdims=True), lambda r: (normal(r, M, K),)),
    op("np_norm_matrix_1", lambda x: np.linalg.norm(x, 1), lambda x: np.linalg.norm(x, 1),
       lambda r: (distinct(r, M, K) + 10,)),
    op("count_nonzero", lambda x: gc.count_nonzero(x > 0, axis=0),
       lambda x: np.count_nonzero(x > 0, axis=0), lambda r: (small_ints(r, M, K),), ()),
    op("np_count_nonzero", lambda x: np.count_nonzero(x), lambda x: np.count_nonzero(x),
       lambda r: (small_ints(r, M, K),), (), check_dtype=False),
    op("any_all", lambda x: gc.any(x > 0, axis=1) & gc.all(x > -1, axis=1),
       lambda x: np.any(x > 0, axis=1) & np.all(x > -1, axis=1), lambda r: (small_ints(r, M, K),),
       ()),
    op("np_any_all", lambda x: np.logical_or(np.any(x > 0), np.all(x >= -1)),
       lambda x: np.logical_or(np.any(x > 0), np.all(x >= -1)), lambda r: (small_ints(r, M, K),),
       ()),
    op("method_any_all", lambda x: (x > 0).any(axis=0) | (x < 0).all(axis=0),
       lambda x: (x > 0).any(axis=0) | (x < 0).all(axis=0), lambda r: (small_ints(r, M, K),), ()),
    # ---- API.md section 8: shape functions
    op("hstack", lambda x, y: gc.hstack([x, y]), lambda x, y: np.hstack([x, y]),
       lambda r: (normal(r, M, K), normal(r, M, 2)), (0, 1)),
    op("np_hstack_1d", lambda x, y: np.hstack((x, y)), lambda x, y: np.hstack((x, y)),
       lambda r: (normal(r, K), normal(r, M)), (0, 1)),
    op("vstack", lambda x, y: gc.vstack([x, y]), lambda x, y: np.vstack([x, y]),
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("np_vstack", lambda x, y: np.vstack([x, y]), lambda x, y: np.vstack([x, y]),
       lambda r: (normal(r, 2, K), normal(r, M, K)), (0, 1)),
    op("np_row_stack", lambda x, y: np.vstack([x, y]), lambda x, y: np.vstack([x, y]),
       lambda r: (normal(r, K), normal(r, K)), (0, 1)),
    op("column_stack", lambda x, y: np.column_stack([x, y]), lambda x, y: np.column_stack([x, y]),
       lambda r: (normal(r, K), normal(r, K, 2)), (0, 1)),
    op("gc_column_stack", lambda x, y: gc.column_stack([x, y]),
       lambda x, y: np.column_stack([x, y]), lambda r: (normal(r, K), normal(r, K)), (0, 1)),
    op("dstack", lambda x, y: np.dstack([x, y]), lambda x, y: np.dstack([x, y]),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1)),
    op("split", lambda x: gc.split(x, 2, axis=1)[1] * 2, lambda x: np.split(x, 2, axis=1)[1] * 2,
       lambda r: (normal(r, M, K),)),
    op("np_split_indices", lambda x: np.concatenate(np.split(x, [1, 3])[::-1]),
       lambda x: np.concatenate(np.split(x, [1, 3])[::-1]), lambda r: (normal(r, 5, K),)),
    op("array_split", lambda x: gc.array_split(x, 3, axis=1)[0],
       lambda x: np.array_split(x, 3, axis=1)[0], lambda r: (normal(r, M, K),)),
    op("np_array_split", lambda x: np.array_split(x, 3)[2], lambda x: np.array_split(x, 3)[2],
       lambda r: (normal(r, 7, 2),)),
    op("hsplit", lambda x: np.hsplit(x, 2)[0] - np.hsplit(x, 2)[1],
       lambda x: np.hsplit(x, 2)[0] - np.hsplit(x, 2)[1], lambda r: (normal(r, M, K),)),
    op("gc_hsplit", lambda x: gc.hsplit(x, [1])[1], lambda x: np.hsplit(x, [1])[1],
       lambda r: (normal(r, M, K),)),
    op("vsplit", lambda x: np.vsplit(x, [2])[0], lambda x: np.vsplit(x, [2])[0],
       lambda r: (normal(r, M, K),)),
    op("gc_vsplit", lambda x: gc.vsplit(x, 2)[1], lambda x: np.vsplit(x, 2)[1],
       lambda r: (normal(r, 4, K),)),
    op("repeat", lambda x: gc.repeat(x, 2, axis=0), lambda x: np.repeat(x, 2, axis=0),
       lambda r: (normal(r, M, K),)),
    op("np_repeat_counts", lambda x: np.repeat(x, [1, 0, 3, 2], axis=1),
       lambda x: np.repeat(x, [1, 0, 3, 2], axis=1), lambda r: (normal(r, M, K),)),
    op("method_repeat_flat", lambda x: x.repeat(2), lambda x: x.repeat(2),
       lambda r: (normal(r, M, K),)),
    op("tile", lambda x: gc.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3)),
       lambda r: (normal(r, M, K),)),
    op("np_tile_int", lambda x: np.tile(x, 2), lambda x: np.tile(x, 2), lambda r: (normal(r, K),)),
    op("pad_constant", lambda x: gc.pad(x, ((1, 2), (0, 1))), lambda x: np.pad(x, ((1, 2), (0, 1))),
       lambda r: (normal(r, M, K),)),
    op("np_pad_constant_value", lambda x: np.pad(x, 1, constant_values=0.5),
       lambda x: np.pad(x, 1, constant_values=0.5), lambda r: (normal(r, M, K),)),
    op("np_pad_edge", lambda x: np.pad(x, ((2, 1), (1, 0)), mode="edge"),
       lambda x: np.pad(x, ((2, 1), (1, 0)), mode="edge"), lambda r: (normal(r, M, K),)),
    op("roll", lambda x: gc.roll(x, 1, axis=1), lambda x: np.roll(x, 1, axis=1),
       lambda r: (normal(r, M, K),)),
    op("np_roll_flat", lambda x: np.roll(x, -5), lambda x: np.roll(x, -5),
       lambda r: (normal(r, M, K),)),
    op("np_roll_axes", lambda x: np.roll(x, (1, 2), axis=(0, 1)),
       lambda x: np.roll(x, (1, 2), axis=(0, 1)), lambda r: (normal(r, M, K),)),
    op("flip", lambda x: gc.flip(x), np.flip, lambda r: (normal(r, M, K),)),
    op("np_flip_axis", lambda x: np.flip(x, 1), lambda x: np.flip(x, 1),
       lambda r: (normal(r, 2, M, K),)),
    op("fliplr", lambda x: np.fliplr(x), np.fliplr, lambda r: (normal(r, M, K),)),
    op("flipud", lambda x: gc.flipud(x), np.flipud, lambda r: (normal(r, M, K),)),
    op("gc_fliplr", lambda x: gc.fliplr(x), np.fliplr, lambda r: (normal(r, M, K),)),
    op("np_flipud", lambda x: np.flipud(x), np.flipud, lambda r: (normal(r, M, K),)),
    op("moveaxis", lambda x: gc.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1),
       lambda r: (normal(r, 2, M, K),)),
    op("np_moveaxis_many", lambda x: np.moveaxis(x, [0, 1], [2, 0]),
       lambda x: np.moveaxis(x, [0, 1], [2, 0]), lambda r: (normal(r, 2, M, K),)),
    op("swapaxes", lambda x: gc.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2),
       lambda r: (normal(r, 2, M, K),)),
    op("np_swapaxes", lambda x: np.swapaxes(x, 0, 1), lambda x: np.swapaxes(x, 0, 1),
       lambda r: (normal(r, M, K),)),
    op("method_swapaxes", lambda x: x.swapaxes(1, 2), lambda x: x.swapaxes(1, 2),
       lambda r: (normal(r, 2, M, K),)),
    op("atleast_1d", lambda x: gc.atleast_1d(x), np.atleast_1d, lambda r: (normal(r),)),
    op("np_atleast_2d", lambda x: np.atleast_2d(x), np.atleast_2d, lambda r: (normal(r, K),)),
    op("gc_atleast_2d", lambda x: gc.atleast_2d(x), np.atleast_2d, lambda r: (normal(r, K),)),
    op("np_atleast_1d", lambda x, y: np.atleast_1d(x, y)[0] * np.atleast_1d(x, y)[1],
       lambda x, y: np.atleast_1d(x, y)[0] * np.atleast_1d(x, y)[1],
       lambda r: (normal(r), normal(r, K)), (0, 1)),
    op("atleast_3d", lambda x: np.atleast_3d(x), np.atleast_3d, lambda r: (normal(r, M, K),)),
    op("gc_atleast_3d", lambda x: gc.atleast_3d(x), np.atleast_3d, lambda r: (normal(r, K),)),
    op("ravel", lambda x: gc.ravel(x), np.ravel, lambda r: (normal(r, M, K),)),
    op("np_ravel", lambda x: np.ravel(x), np.ravel, lambda r: (normal(r, M, K),)),
    op("method_ravel_flatten", lambda x: x.ravel() + x.flatten(), lambda x: x.ravel() + x.flatten(),
       lambda r: (normal(r, M, K),)),
    op("diag_of_vector", lambda v: gc.diag(v), np.diag, lambda r: (normal(r, K),)),
    op("np_diag_offset", lambda v: np.diag(v, -1), lambda v: np.diag(v, -1),
       lambda r: (normal(r, M),)),
    op("np_diag_of_matrix", lambda x: np.diag(x, 1), lambda x: np.diag(x, 1),
       lambda r: (normal(r, M, K),)),
    op("diagonal", lambda x: gc.diagonal(x), np.diagonal, lambda r: (normal(r, M, K),)),
    op("np_diagonal_axes", lambda x: np.diagonal(x, 1, 1, 2), lambda x: np.diagonal(x, 1, 1, 2),
       lambda r: (normal(r, 2, M, K),)),
    op("method_diagonal", lambda x: x.diagonal(-1), lambda x: x.diagonal(-1),
       lambda r: (normal(r, M, K),)),
    op("trace", lambda x: gc.trace(x), np.trace, lambda r: (normal(r, M, K),)),
    op("np_trace", lambda x: np.trace(x, 1), lambda x: np.trace(x, 1),
       lambda r: (normal(r, M, K),)),
    op("triu", lambda x: gc.triu(x), np.triu, lambda r: (normal(r, M, K),)),
    op("np_triu_k", lambda x: np.triu(x, 1), lambda x: np.triu(x, 1),
       lambda r: (normal(r, 2, M, K),)),
    op("tril", lambda x: np.tril(x, -1), lambda x: np.tril(x, -1), lambda r: (normal(r, M, K),)),
    op("gc_tril", lambda x: gc.tril(x), np.tril, lambda r: (normal(r, M, K),)),
    op("outer", lambda x, y: gc.outer(x, y), np.outer, lambda r: (normal(r, M), normal(r, K)),
       (0, 1)),
    op("np_outer_2d", lambda x, y: np.outer(x, y), np.outer,
       lambda r: (normal(r, 2, 2), normal(r, K)), (0, 1)),
    op("inner", lambda x, y: gc.inner(x, y), np.inner, lambda r: (normal(r, M, K), normal(r, 2, K)),
       (0, 1)),
    op("np_inner_1d", lambda x, y: np.inner(x, y), np.inner,
       lambda r: (normal(r, K), normal(r, K)), (0, 1)),
    op("vdot", lambda x, y: np.vdot(x, y), np.vdot, lambda r: (normal(r, M, K), normal(r, M, K)),
       (0, 1)),
    op("gc_vdot", lambda x, y: gc.vdot(x, y), np.vdot, lambda r: (normal(r, K), normal(r, K)),
       (0, 1)),
    op("tensordot", lambda x, y: gc.tensordot(x, y), np.tensordot,
       lambda r: (normal(r, 2, M, K), normal(r, M, K, 2)), (0, 1)),
    op("np_tensordot_axes", lambda x, y: np.tensordot(x, y, ([0, 2], [1, 0])),
       lambda x, y: np.tensordot(x, y, ([0, 2], [1, 0])),
       lambda r: (normal(r, 2, M, K), normal(r, K, 2, 5)), (0, 1)),
    op("take", lambda x: gc.take(x, [0, 2, -1], axis=1), lambda x: np.take(x, [0, 2, -1], axis=1),
       lambda r: (normal(r, M, K),)),
    op("np_take_flat", lambda x: np.take(x, I2), lambda x: np.take(x, I2),
       lambda r: (normal(r, M, K),)),
    op("method_take", lambda x, i: x.take(i, axis=0), lambda x, i: x.take(i, axis=0),
       lambda r: (normal(r, M, K), labels(r, 5, M))),
    op("take_along_axis", lambda x, i: gc.take_along_axis(x, i, axis=1),
       lambda x, i: np.take_along_axis(x, i, axis=1),
       lambda r: (normal(r, M, K), r.integers(0, K, (M, 2)))),
    op("np_take_along_axis0", lambda x, i: np.take_along_axis(x, i, axis=0),
       lambda x, i: np.take_along_axis(x, i, axis=0),
       lambda r: (normal(r, M, K), r.integers(0, M, (1, K)))),
    op("sliding_window_view", lambda x: np.lib.stride_tricks.sliding_window_view(x, 3, axis=1),
       lambda x: np.lib.stride_tricks.sliding_window_view(x, 3, axis=1),
       lambda r: (normal(r, M, K + 2),)),
    op("gc_sliding_window_view_2d", lambda x: gc.sliding_window_view(x, (2, 3)),
       lambda x: np.lib.stride_tricks.sliding_window_view(x, (2, 3)),
       lambda r: (normal(r, M, K),)),
    op("copy", lambda x: gc.copy(x) * 2, lambda x: np.copy(x) * 2, lambda r: (normal(r, M, K),)),
    op("np_copy_method_copy", lambda x: np.copy(x) + x.copy(), lambda x: np.copy(x) + x.copy(),
       lambda r: (normal(r, M, K),)),
    op("astype_copy_false", lambda x: x.astype(x.dtype, copy=False) * 2,
       lambda x: x.astype(x.dtype, copy=False) * 2, lambda r: (normal(r, M, K),)),
    op("np_astype", lambda x: np.astype(x, np.float64) * 2, lambda x: np.astype(x, np.float64) * 2,
       lambda r: (normal(r, M, K),)),
    # (ndarray.dot(traced) converts its argument, which NumPy does not let gradc intercept)
    op("method_clip_dot_squeeze", lambda x, y: x.clip(-0.5, 0.5).dot(y).squeeze(),
       lambda x, y: x.clip(-0.5, 0.5).dot(y).squeeze(),
       lambda r: (away_from(r, (1, K), (-0.5, 0.5)), normal(r, K))),
    op("method_max_argmax_axis", lambda x: x.max(axis=0) + x.argmax(axis=0),
       lambda x: x.max(axis=0) + x.argmax(axis=0), lambda r: (distinct(r, M, K),)),
    # ---- einsum
    op("einsum_matmul", lambda x, y: gc.einsum("ij,jk->ik", x, y),
       lambda x, y: np.einsum("ij,jk->ik", x, y), lambda r: (normal(r, M, K), normal(r, K, 2)),
       (0, 1)),
    op("np_einsum_batched", lambda x, y: np.einsum("bij,bjk->bik", x, y),
       lambda x, y: np.einsum("bij,bjk->bik", x, y),
       lambda r: (normal(r, 2, M, K), normal(r, 2, K, 2)), (0, 1)),
    op("np_einsum_implicit_trace", lambda x: np.einsum("ii", x), lambda x: np.einsum("ii", x),
       lambda r: (normal(r, K, K),)),
    op("np_einsum_diag_transpose_sum", lambda x: np.einsum("iij->ji", x),
       lambda x: np.einsum("iij->ji", x), lambda r: (normal(r, M, M, K),)),
    op("np_einsum_ellipsis", lambda x, v: np.einsum("...j,j->...", x, v),
       lambda x, v: np.einsum("...j,j->...", x, v), lambda r: (normal(r, 2, M, K), normal(r, K)),
       (0, 1)),
    op("np_einsum_three", lambda x, y, z: np.einsum("ij,jk,kl->il", x, y, z),
       lambda x, y, z: np.einsum("ij,jk,kl->il", x, y, z),
       lambda r: (normal(r, M, K), normal(r, K, 2), normal(r, 2, 5)), (0, 1, 2)),
    op("np_einsum_outer_sum", lambda x, y: np.einsum("i,j->", x, y),
       lambda x, y: np.einsum("i,j->", x, y), lambda r: (normal(r, M), normal(r, K)), (0, 1)),
    op("np_einsum_attention", lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k),
       lambda q, k: np.einsum("bhqd,bhkd->bhqk", q, k),
       lambda r: (normal(r, 2, 2, M, K), normal(r, 2, 2, 5, K)), (0, 1)),
    # ---- lists of traced values, item assignment, x.at[...], boolean masks
    op("np_array_of_scalars", lambda x: np.sum(np.array([x[0, 0], x[1, 2] * x[0, 1]]) ** 2),
       lambda x: np.sum(np.array([x[0, 0], x[1, 2] * x[0, 1]]) ** 2), lambda r: (normal(r, M, K),),
       on_tensor=False),
    op("np_sum_of_list", lambda x: np.sum([x[0, 0], x[2, 1]]), lambda x: np.sum([x[0, 0], x[2, 1]]),
       lambda r: (normal(r, M, K),), on_tensor=False),
    op("np_asarray_list_into_gc", lambda x: gc.exp(np.asarray([x[0, 0], x[1, 1], 2.0])),
       lambda x: np.exp(np.asarray([x[0, 0], x[1, 1], 2.0])), lambda r: (normal(r, M, K),),
       on_tensor=False),
    op("np_stack_list_of_rows", lambda x: np.stack([x[i] * i for i in range(M)]),
       lambda x: np.stack([x[i] * i for i in range(M)]), lambda r: (normal(r, M, K),)),
    # lists of traced arrays (gradc/numpy_lists.py: np.array and friends while tracing)
    op("np_array_of_arrays", lambda x: np.array([x[0], x[1] * x[2]]) ** 2,
       lambda x: np.array([x[0], x[1] * x[2]]) ** 2, lambda r: (normal(r, M, K),),
       on_tensor=False),
    op("np_asarray_nested_lists", lambda x: np.asarray([[x[0], 2.0 * x[1]], [x[2], x[0] * x[1]]]),
       lambda x: np.asarray([[x[0], 2.0 * x[1]], [x[2], x[0] * x[1]]]),
       lambda r: (normal(r, M, K),), on_tensor=False),
    op("np_mean_of_list", lambda x: np.mean([x, x * x]), lambda x: np.mean([x, x * x]),
       lambda r: (normal(r, M, K),), on_tensor=False),
    op("np_sum_of_list_axis0", lambda x, y: np.sum([x, np.sin(x) * y], axis=0),
       lambda x, y: np.sum([x, np.sin(x) * y], axis=0),
       lambda r: (normal(r, M, K), normal(r, M, K)), (0, 1), on_tensor=False),
    op("np_stack_nested_lists", lambda x: np.stack([[x[0], x[1]], [x[1] * 3.0, x[2]]], axis=1),
       lambda x: np.stack([[x[0], x[1]], [x[1] * 3.0, x[2]]], axis=1),
       lambda r: (normal(r, M, K),), on_tensor=False),
    op("setitem_int", lambda x, v: set_and_return(x, 1, v), lambda x, v: np_set(x, 1, v),
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("setitem_slice_iadd", lambda x, v: iadd_and_return(x, (slice(None), slice(1, 3)), v),
       lambda x, v: np_iadd(x, (slice(None), slice(1, 3)), v),
       lambda r: (normal(r, M, K), normal(r, M, 2)), (0, 1)),
    op("setitem_mask_scalar", lambda x: set_and_return(x, x > 0.5, 0.0),
       lambda x: np_set(x, x > 0.5, 0.0), lambda r: (away_from(r, (M, K), (0.5,)),)),
    op("setitem_const_mask_values", lambda x, v: set_and_return(x, MASK3, v),
       lambda x, v: np_set(x, MASK3, v), lambda r: (normal(r, M, K), normal(r, 2, K)),
       (0, 1)),
    op("setitem_gather_labels", lambda x, y: set_and_return(x, (np.arange(5), y), 0.0) * x,
       lambda x, y: np_set(x, (np.arange(5), y), 0.0) * x,
       lambda r: (normal(r, 5, K), labels(r, 5, K))),
    op("setitem_repeated_keeps_last", lambda x, v: set_and_return(x, I2, v),
       lambda x, v: np_set(x, I2, v), lambda r: (normal(r, M, K), normal(r, 4, K)), (0, 1)),
    op("at_set", lambda x, v: at(x)[1:, 2].set(v), lambda x, v: np_at(x, (slice(1, None), 2), v, "set"),
       lambda r: (normal(r, M, K), normal(r, 2)), (0, 1)),
    op("at_add_repeated", lambda x, v: at(x)[I2].add(v), lambda x, v: np_at(x, I2, v, "add"),
       lambda r: (normal(r, M, K), normal(r, 4, K)), (0, 1)),
    op("at_multiply", lambda x, v: at(x)[:, 0].multiply(v), lambda x, v: np_at(x, (slice(None), 0), v,
                                                                           "multiply"),
       lambda r: (normal(r, M, K), normal(r, M)), (0, 1)),
    op("at_runtime_index", lambda x, i, v: at(x)[i].add(v), lambda x, i, v: np_at(x, i, v, "add"),
       lambda r: (normal(r, 5, K), np.array([3, -1, 0]), normal(r, 3, K)), (0, 2)),
    op("gc_at_numpy_input", lambda x, v: gc.at(x)[0].set(v), lambda x, v: np_at(x, 0, v, "set"),
       lambda r: (normal(r, M, K), normal(r, K)), (0, 1)),
    op("creation", lambda x: x * gc.ones(x.shape) + gc.zeros((M, K), x.dtype) + gc.eye(M, K)
       + gc.full(x.shape, 2.0, x.dtype) + gc.arange(K) + gc.linspace(0, 1, K, dtype=x.dtype)
       + 0 * gc.empty(x.shape, x.dtype),
       lambda x: x * np.ones(x.shape) + np.zeros((M, K), x.dtype) + np.eye(M, K)
       + np.full(x.shape, 2.0, x.dtype) + np.arange(K) + np.linspace(0, 1, K, dtype=x.dtype),
       lambda r: (normal(r, M, K),)),
    op("creation_like", lambda x: np.full_like(x, 2.0) * x + gc.full_like(x, 1.0)
       + 0 * np.empty_like(x) + 0 * gc.empty_like(x), lambda x: np.full_like(x, 2.0) * x + 1.0,
       lambda r: (normal(r, M, K),)),
    # ---- linear algebra (well-conditioned inputs; cholesky of x x^T + 3 I, symmetric)
    op("linalg_inv", lambda a: np.linalg.inv(a), np.linalg.inv, lambda r: (well_conditioned(r, K),)),
    op("linalg_inv_batched", lambda a: gc.linalg.inv(a), np.linalg.inv,
       lambda r: (well_conditioned(r, K, batch=(2,)),)),
    op("linalg_solve_matrix", lambda a, b: np.linalg.solve(a, b), np.linalg.solve,
       lambda r: (well_conditioned(r, M), normal(r, M, 2)), (0, 1)),
    op("linalg_solve_vector", lambda a, b: gc.linalg.solve(a, b), np.linalg.solve,
       lambda r: (well_conditioned(r, K), normal(r, K)), (0, 1)),
    op("linalg_solve_batched", lambda a, b: np.linalg.solve(a, b), np.linalg.solve,
       lambda r: (well_conditioned(r, M, batch=(2,)), normal(r, 2, M, 2)), (0, 1)),
    op("linalg_det", lambda a: np.linalg.det(a), np.linalg.det, lambda r: (well_conditioned(r, K),)),
    op("linalg_det_batched", lambda a: gc.linalg.det(a), np.linalg.det,
       lambda r: (well_conditioned(r, M, batch=(2,)),)),
    op("linalg_slogdet", lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a)[0],
       lambda a: np.linalg.slogdet(a)[1] * np.linalg.slogdet(a)[0],
       lambda r: (well_conditioned(r, K) - 6 * np.eye(K),)),
    op("linalg_cholesky", lambda x: np.linalg.cholesky(x @ x.T + 3 * np.eye(M)),
       lambda x: np.linalg.cholesky(x @ x.T + 3 * np.eye(M)), lambda r: (normal(r, M, M),)),
    op("linalg_cholesky_upper", lambda x: gc.linalg.cholesky(x @ x.mT + 3 * np.eye(M), upper=True),
       lambda x: np.linalg.cholesky(x @ np.swapaxes(x, -1, -2) + 3 * np.eye(M), upper=True),
       lambda r: (normal(r, 2, M, M),)),
    op("const_mask_index", lambda x: x[MASK3_ROWS] * 2, lambda x: x[MASK3_ROWS] * 2,
       lambda r: (normal(r, M, K),)),
    op("const_mask_2d_index", lambda x: x[MASK_2D], lambda x: x[MASK_2D],
       lambda r: (normal(r, M, K),)),
    # ---- loops (gc.scan, gc.fori_loop): one loop node, its body traced once
    op("scan", lambda x, w: gc.scan(lambda h, xt: (gc.tanh(h @ w + xt), h * xt),
                                    gc.zeros_like(x[0]), x)[1],
       lambda x, w: np_scan_ys(x, w), lambda r: (normal(r, 5, K), 0.5 * normal(r, K, K)), (0, 1)),
    op("fori_loop", lambda x: gc.fori_loop(1, 4, lambda i, c: gc.sin(c) * x + c / i, x),
       lambda x: np_fori(x), lambda r: (normal(r, M, K),)),
]


def np_scan_ys(x, w):
    h, ys = np.zeros_like(x[0]), []
    for xt in x:
        ys.append(h * xt)
        h = np.tanh(h @ w + xt)
    return np.stack(ys)


def np_fori(x):
    c = x
    for i in range(1, 4):
        c = np.sin(c) * x + c / i
    return c


def at(x):
    """x.at on gradc values; gc.at(x) on NumPy arrays (which have no .at)."""
    return gc.at(x) if isinstance(x, np.ndarray) else x.at


def np_set(x, key, v):
    x = x.copy()
    x[key] = v
    return x


def np_iadd(x, key, v):
    x = x.copy()
    x[key] += v
    return x


def set_and_return(x, key, v):
    x = gc.array(x)         # a gradc value even when x is NumPy's and v is traced
    x[key] = v
    return x


def iadd_and_return(x, key, v):
    x = gc.array(x)
    x[key] += v
    return x


def np_at(x, key, v, how):
    """NumPy reference of x.at[key].<how>(v): add accumulates repeated indices (np.add.at)."""
    x = x.copy()
    if how == "add":
        np.add.at(x, key, v)
    elif how == "multiply":
        x[key] *= v
    else:
        x[key] = v
    return x

OPS_BY_NAME = {o.name: o for o in OPS}
assert len(OPS_BY_NAME) == len(OPS), "duplicate record names"
DIFF_OPS = [o for o in OPS if o.diff]
DTYPE_IDS = ["f32", "f64"]


# ---- helpers -------------------------------------------------------------------------------------

def is_float(a):
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def base_args(o):
    """The record's arguments (float64), identical across runs and test functions."""
    return o.gen(np.random.default_rng(zlib.crc32(o.name.encode())))


def cast(args, dtype):
    return tuple(a.astype(dtype) if is_float(a) else a for a in args)


def make_args(o, dtype):
    """Arguments in `dtype`; float64 runs use float32-representable values too, so the two dtypes
    see identical inputs and can be compared with each other."""
    return cast(cast(base_args(o), F32), dtype)


def reference(o, args):
    """(value computed in float64, dtype NumPy gives on these exact arguments)."""
    want = np.asarray(o.ref(*cast(args, F64)))
    return want, np.asarray(o.ref(*args)).dtype


def check_value(o, got, args, dtype, what):
    want, want_dtype = reference(o, args)
    got = np.asarray(got)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != NumPy's {want.shape}"
    if o.check_dtype:
        assert got.dtype == want_dtype, f"{what}: dtype {got.dtype} != NumPy's {want_dtype}"
    if want.dtype.kind == "f":
        assert_close(got, want, dtype, what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def restrict(fn, args, argnums):
    """fn as a function of args[argnums] only, the others fixed; and those primal values."""
    argnums = tuple(argnums)

    def g(*diff_args):
        full = list(args)
        for i, a in zip(argnums, diff_args):
            full[i] = a
        return fn(*full)

    return g, tuple(args[i] for i in argnums)


def tangents_for(primals, seed):
    r = np.random.default_rng(seed)
    return tuple(r.standard_normal(p.shape).astype(p.dtype) for p in primals)


def output_weights(o, dtype):
    """Fixed random weights w of the output's shape: the scalar loss sum(f(x) * w)."""
    want, _ = reference(o, make_args(o, F64))
    r = np.random.default_rng(zlib.crc32(o.name.encode()) + 1)
    return r.standard_normal(want.shape).astype(dtype)


def weighted_loss(o, dtype):
    w = output_weights(o, dtype)

    def loss(*args):
        return gc.sum(o.fn(*args) * w)

    return loss


_SHARED_JITS = {}


def jitted_value_and_grad(o, dtype, backend):
    """gc.jit of (o.fn, gc.grad of its weighted loss) for one row, dtype and backend, made once:
    test_value_jit checks its first output, test_grad_jit_equals_eager its second (one C compile
    per row and dtype where there were two: compiling is most of this file's time)."""
    key = (o.name, np.dtype(dtype).str, backend)
    if key not in _SHARED_JITS:
        grad = gc.grad(weighted_loss(o, dtype), argnums=o.diff)
        _SHARED_JITS[key] = gc.jit(lambda *a: (o.fn(*a), grad(*a)), backend=backend)
    return _SHARED_JITS[key]


def as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


# ---- (a) values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", OPS, ids=repr)
def test_value_eager(o, dtype):
    args = make_args(o, dtype)
    got = o.fn(*args)
    assert isinstance(got, (np.ndarray, np.generic)), f"eager result is {type(got)}"
    check_value(o, got, args, dtype, f"{o.name} eager")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", OPS, ids=repr)
def test_value_jit(o, dtype, backend):
    args = make_args(o, dtype)
    if o.diff:      # the compiled function test_grad_jit_equals_eager checks the gradients of
        got = jitted_value_and_grad(o, dtype, backend)(*args)[0]
    else:
        got = gc.jit(o.fn, backend=backend)(*args)
    assert isinstance(got, np.ndarray), f"jit result is {type(got)}, not an ndarray"
    check_value(o, got, args, dtype, f"{o.name} jit[{backend}]")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", OPS, ids=repr)
def test_value_tensor(o, dtype):
    if not o.on_tensor:
        pytest.skip("np.array of a list of gc.Tensor values that do not require grad converts "
                    "them, as of torch tensors (test_tensor_backward_equals_grad runs the op)")
    args = make_args(o, dtype)
    wrap_all = not any(is_float(a) for a in args)
    targs = [gc.tensor(a) if (is_float(a) or wrap_all) else a for a in args]
    out = o.fn(*targs)
    assert isinstance(out, gc.Tensor), f"result on gc.Tensor inputs is {type(out)}"
    check_value(o, out.numpy(), args, dtype, f"{o.name} on gc.Tensor")


# ---- (b) JVP against finite differences ----------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", DIFF_OPS, ids=repr)
def test_jvp(o, dtype):
    args64 = make_args(o, F64)
    g64, p64 = restrict(o.fn, args64, o.diff)
    t64 = tangents_for(p64, 7)
    out64, tout64 = gc.jvp(g64, p64, t64)
    if dtype == F64:
        check_value(o, out64, args64, F64, f"{o.name} jvp primal output")
        gref, _ = restrict(o.ref, args64, o.diff)
        plus = np.asarray(gref(*(p + FD_EPS * t for p, t in zip(p64, t64))))
        minus = np.asarray(gref(*(p - FD_EPS * t for p, t in zip(p64, t64))))
        fd = (plus - minus) / (2 * FD_EPS)
        tout64 = np.asarray(tout64)
        assert tout64.shape == fd.shape, f"tangent shape {tout64.shape} != output {fd.shape}"
        np.testing.assert_allclose(tout64, fd, rtol=FD_RTOL,
                                   atol=FD_ATOL * scale_of(fd, plus),
                                   err_msg=f"{o.name}: jvp != central finite differences")
    else:
        args32 = make_args(o, F32)
        g32, p32 = restrict(o.fn, args32, o.diff)
        t32 = tuple(t.astype(F32) for t in t64)
        out32, tout32 = gc.jvp(g32, p32, t32)
        want_dtype = np.asarray(o.ref(*args32)).dtype
        assert np.asarray(tout32).dtype == want_dtype, "tangent dtype differs from the output's"
        assert_close(out32, out64, F32, f"{o.name}: float32 jvp primal vs float64")
        assert_close(tout32, tout64, F32, f"{o.name}: float32 jvp tangent vs float64")


# ---- (c) VJP: the dot-product test ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", DIFF_OPS, ids=repr)
def test_vjp_dot_product(o, dtype):
    args = make_args(o, dtype)
    g, primals = restrict(o.fn, args, o.diff)
    us = tangents_for(primals, 11)
    out, vjp_fn = gc.vjp(g, *primals)
    out = np.asarray(out)
    v = np.random.default_rng(13).standard_normal(out.shape).astype(out.dtype)
    cts = vjp_fn(v)
    assert isinstance(cts, tuple) and len(cts) == len(primals), \
        f"vjp_fn returned {type(cts)} of length {len(cts)}, want a tuple of {len(primals)}"
    for ct, p in zip(cts, primals):
        ct = np.asarray(ct)
        assert ct.shape == p.shape, f"cotangent shape {ct.shape} != primal shape {p.shape}"
        assert ct.dtype == p.dtype, f"cotangent dtype {ct.dtype} != primal dtype {p.dtype}"
    _, ju = gc.jvp(g, primals, us)
    ju = np.asarray(ju, dtype=np.float64)
    v64 = v.astype(np.float64)
    lhs = np.sum(v64 * ju)
    rhs = sum(np.sum(np.asarray(ct, np.float64) * u.astype(np.float64)) for ct, u in zip(cts, us))
    magnitude = np.sum(np.abs(v64 * ju)) + sum(
        np.sum(np.abs(np.asarray(ct, np.float64) * u)) for ct, u in zip(cts, us))
    assert_close_scalar(lhs, rhs, dtype, magnitude, f"{o.name}: <v, J u> != <J^T v, u>")


# ---- (d) forward-mode and reverse-mode Jacobians agree ------------------------------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", DIFF_OPS, ids=repr)
def test_jacobian_fwd_equals_rev(o, dtype):
    args = make_args(o, dtype)
    g, primals = restrict(o.fn, args, o.diff)
    out_shape = np.asarray(o.ref(*args)).shape
    for k, p in enumerate(primals):
        jf = np.asarray(gc.jacobian(g, argnums=k, mode="fwd")(*primals))
        jr = np.asarray(gc.jacobian(g, argnums=k, mode="rev")(*primals))
        assert jf.shape == out_shape + p.shape, f"fwd jacobian shape {jf.shape}"
        assert jr.shape == out_shape + p.shape, f"rev jacobian shape {jr.shape}"
        assert_close(jf, jr, dtype, f"{o.name}: jacobian fwd vs rev, argument {o.diff[k]}")


# ---- (e) grad inside jit equals grad outside; Tensor.backward equals grad -----------------------

@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", DIFF_OPS, ids=repr)
def test_grad_jit_equals_eager(o, dtype, backend):
    args = make_args(o, dtype)
    loss = weighted_loss(o, dtype)
    outside = gc.grad(loss, argnums=o.diff)(*args)
    inside = jitted_value_and_grad(o, dtype, backend)(*args)[1]
    assert isinstance(inside, tuple) and len(inside) == len(o.diff)
    assert isinstance(outside, tuple) and len(outside) == len(o.diff)
    for i, gi, go in zip(o.diff, inside, outside):
        a = args[i]
        assert isinstance(gi, np.ndarray), f"jit gradient is {type(gi)}"
        assert gi.shape == a.shape and gi.dtype == a.dtype, \
            f"grad of argument {i}: {gi.dtype}{gi.shape}, want {a.dtype}{a.shape}"
        assert_close(gi, go, dtype, f"{o.name}: grad of argument {i}, jit[{backend}] vs eager")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", DIFF_OPS, ids=repr)
def test_tensor_backward_equals_grad(o, dtype):
    args = make_args(o, dtype)
    loss = weighted_loss(o, dtype)
    want = gc.grad(loss, argnums=o.diff)(*args)
    targs = [gc.tensor(a, requires_grad=(i in o.diff)) if is_float(a) else a
             for i, a in enumerate(args)]
    out = loss(*targs)
    assert isinstance(out, gc.Tensor)
    out.backward()
    for i, w in zip(o.diff, want):
        got = targs[i].grad
        assert isinstance(got, np.ndarray), f".grad of argument {i} is {type(got)}"
        assert_close(got, w, dtype, f"{o.name}: Tensor.backward grad of argument {i}")


# ---- guard: every primitive is exercised by some record ------------------------------------------

COVERED_PRIMITIVES = set()


def _prim_names(graph):
    return {node.prim.name for node in graph.nodes}


def _lowered_prim_names(fn, args):
    lowered = gc.jit(fn, backend="numpy").lower(*args)
    names = _prim_names(lowered.graph)
    # Primitives that only mark the traced graph (stop_gradient) are simplified away after
    # differentiation, so the graph as traced counts too when the Lowered keeps it.
    traced = getattr(lowered, "traced_graph", None)
    if traced is not None:
        names |= _prim_names(traced)
    return names


LOWERING_FAILURES = {}


CALLED_CODE = set()      # code objects of the functions the records called while lowering


def _record_call(frame, event, arg):
    if event == "call":
        CALLED_CODE.add(frame.f_code)


def collect_covered_primitives():
    """Fills COVERED_PRIMITIVES with the primitives used by each record's forward graph and by the
    graph of its gradient, in both dtypes (and CALLED_CODE with the functions they ran). A record
    that fails to lower is reported by its own tests; here it is only listed in LOWERING_FAILURES."""
    if not COVERED_PRIMITIVES:
        sys.setprofile(_record_call)
        try:
            _collect()
        finally:
            sys.setprofile(None)
    return COVERED_PRIMITIVES


def _collect():
    for o in OPS:
        for dtype in FLOAT_DTYPES:
            args = make_args(o, dtype)
            try:
                COVERED_PRIMITIVES.update(_lowered_prim_names(o.fn, args))
                if o.diff:
                    grad_fn = gc.grad(weighted_loss(o, dtype), argnums=o.diff)
                    COVERED_PRIMITIVES.update(_lowered_prim_names(grad_fn, args))
            except Exception as e:      # noqa: BLE001 -- reported by the record's own tests
                LOWERING_FAILURES[f"{o.name}[{dtype}]"] = f"{type(e).__name__}: {e}"


def test_every_primitive_has_a_record():
    from gradc.primitives import PRIMITIVES
    assert PRIMITIVES, "the primitive table is empty"
    # dim_value and iota exist only where a size is named: tests/test_named_dims.py runs them.
    names = {p.name for p in PRIMITIVES.values()} - {"dim_value", "iota"}
    covered = collect_covered_primitives()
    missing = sorted(names - covered)
    assert not missing, (f"primitives used by no op-table record: {missing}"
                         + (f" (records that failed to lower: {sorted(LOWERING_FAILURES)})"
                            if LOWERING_FAILURES else ""))


def test_every_public_op_has_a_record():
    """Every gc.<name> and every NumPy function gradc dispatches is run by some record."""
    from gradc.registry import FUNCTIONS, PUBLIC, UFUNCS
    collect_covered_primitives()
    ops = {**{f"gc.{k}": f for k, f in PUBLIC.items()}, **{f"np.{k}": f for k, f in UFUNCS.items()},
           **{f"np.{k}": f for k, f in FUNCTIONS.items()}}
    missing = sorted(k for k, f in ops.items() if getattr(f, "__code__", None) not in CALLED_CODE)
    assert not missing, f"ops run by no op-table record: {missing}"


# ---- gradient conventions (API.md section 2), closed form ----------------------------------------

def grads_everywhere(fn, args, argnums, backend):
    """gc.grad(fn) eagerly, under gc.jit(backend), and through gc.Tensor.backward."""
    results = {"eager": gc.grad(fn, argnums=argnums)(*args),
               f"jit[{backend}]": gc.jit(gc.grad(fn, argnums=argnums), backend=backend)(*args)}
    targs = [gc.tensor(a, requires_grad=True) for a in args]
    fn(*targs).backward()
    tensor = tuple(targs[i].grad for i in as_tuple(argnums))
    results["tensor"] = tensor if isinstance(argnums, tuple) else tensor[0]
    return results


def assert_grads_everywhere(fn, args, argnums, want, backend):
    wants = tuple(want) if isinstance(argnums, tuple) else (want,)
    for where, got in grads_everywhere(fn, args, argnums, backend).items():
        gots = tuple(got) if isinstance(argnums, tuple) else (got,)
        assert len(gots) == len(wants), where
        for g, w in zip(gots, wants):
            assert_close(g, np.asarray(w, np.float64), F64, where)


def test_relu_grad_at_zero_is_zero(backend):
    x = np.array([-1.0, 0.0, 2.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.relu(x)), (x,), 0, [0.0, 0.0, 1.0], backend)


def test_abs_grad_at_zero_is_zero(backend):
    x = np.array([-1.5, 0.0, 2.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.abs(x)), (x,), 0, [-1.0, 0.0, 1.0], backend)


@pytest.mark.parametrize("fn", [gc.maximum, gc.minimum], ids=["maximum", "minimum"])
def test_maximum_minimum_ties_split_half(fn, backend):
    a = np.array([1.0, 2.0, 3.0])
    b = np.array([1.0, 0.0, 5.0])
    want_a = [0.5, 1.0, 0.0] if fn is gc.maximum else [0.5, 0.0, 1.0]
    want_b = [0.5, 0.0, 1.0] if fn is gc.maximum else [0.5, 1.0, 0.0]
    assert_grads_everywhere(lambda a, b: gc.sum(fn(a, b)),
                            (a, b), (0, 1), (want_a, want_b), backend)


def test_maximum_with_scalar_tie(backend):
    x = np.array([0.0, 1.0, -1.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.maximum(x, 0.0)), (x,), 0, [0.5, 1.0, 0.0],
                            backend)


def test_max_reduction_ties_split_equally(backend):
    x = np.array([1.0, 3.0, 3.0, 0.0])
    assert_grads_everywhere(lambda x: gc.max(x), (x,), 0, [0.0, 0.5, 0.5, 0.0], backend)
    x3 = np.array([2.0, 2.0, 2.0, -1.0])
    assert_grads_everywhere(lambda x: gc.max(x), (x3,), 0, [1 / 3, 1 / 3, 1 / 3, 0.0], backend)


def test_max_min_reduction_ties_per_axis(backend):
    x = np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 5.0]])
    assert_grads_everywhere(lambda x: gc.sum(gc.max(x, axis=1)), (x,), 0,
                            [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], backend)
    assert_grads_everywhere(lambda x: gc.sum(gc.min(x, axis=1) * np.array([1.0, 2.0])), (x,), 0,
                            [[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]], backend)
    y = np.array([[4.0, -1.0], [4.0, -1.0], [0.0, 3.0]])
    assert_grads_everywhere(lambda y: gc.sum(gc.min(y, axis=0, keepdims=True)), (y,), 0,
                            [[0.0, 0.5], [0.0, 0.5], [1.0, 0.0]], backend)


def test_clip_passes_gradient_inside_closed_interval(backend):
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.clip(x, -0.5, 0.5)), (x,), 0,
                            [0.0, 1.0, 1.0, 1.0, 0.0], backend)


def test_sign_has_zero_gradient(backend):
    x = np.array([-2.0, 0.0, 3.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.sign(x) * x), (x,), 0, [-1.0, 0.0, 1.0], backend)


@pytest.mark.parametrize("b_shape, want, reduce_x", [
    ((4,), 3.0, lambda x: np.sum(x, axis=0)),
    ((1, 4), 3.0, lambda x: np.sum(x, axis=0, keepdims=True)),
    ((3, 1), 4.0, lambda x: np.sum(x, axis=1, keepdims=True)),
    ((), 12.0, lambda x: np.sum(x)),
], ids=["row", "row_kept", "column", "scalar"])
def test_broadcasting_is_undone_by_summing(b_shape, want, reduce_x, backend):
    x = np.arange(12.0).reshape(3, 4)
    b = np.ones(b_shape)
    got = grads_everywhere(lambda x, b: gc.sum(x + b), (x, b), (0, 1), backend)
    for where, (gx, gb) in got.items():
        assert np.shape(gb) == b_shape, f"{where}: grad of b has shape {np.shape(gb)}"
        assert_close(gb, np.full(b_shape, want), F64, where)
        assert_close(gx, np.ones((3, 4)), F64, where)
    # multiplication too: d/db sum(x * b) sums x over the broadcast axes
    got = grads_everywhere(lambda x, b: gc.sum(x * b), (x, b), 1, backend)
    for where, gb in got.items():
        assert np.shape(gb) == b_shape, f"{where}: grad of b has shape {np.shape(gb)}"
        assert_close(gb, reduce_x(x), F64, where)


def test_fork_gradients_add(backend):
    x = np.array([-1.0, 0.5, 2.0])
    assert_grads_everywhere(lambda x: gc.sum(x * x + x), (x,), 0, 2 * x + 1, backend)
    assert_grads_everywhere(lambda x: gc.sum(gc.exp(x) + x ** 2), (x,), 0,
                            np.exp(x) + 2 * x, backend)


def test_same_argument_passed_twice_adds(backend):
    x = np.array([1.0, -2.0])
    assert_grads_everywhere(lambda x: gc.sum(gc.multiply(x, x)), (x,), 0, 2 * x, backend)


def test_power_with_integer_exponents_at_zero(backend):
    # d/dx x^n = n x^(n-1), finite at x = 0 for n >= 1 and 0 for n = 0 (as PyTorch)
    x = np.array([0.0, -1.5, 2.0])
    for n, want in [(0, np.zeros(3)), (1, np.ones(3)), (2, 2 * x), (3, 3 * x ** 2)]:
        assert_grads_everywhere(lambda x: gc.sum(x ** n), (x,), 0, want, backend)


# ---- result dtypes with Python scalars and integers, as NumPy's (found by the fuzzer) --------------

def _binary_ops():
    from gradc.fuzz import catalog
    cats = catalog.catalogue()
    return cats["binary"] + cats["compare"]


@pytest.mark.parametrize("name", _binary_ops())
def test_binary_op_result_dtype_is_numpys(name):
    """NEP 50: a Python scalar is weakly typed (float32 x with 1.225 stays float32); integers keep
    their dtype where NumPy's op does (fmod). np.logaddexp(x32, 1.225) once gave float64."""
    np_fn = getattr(np, name)
    fns = {"gc": getattr(gc, name), "jit": gc.jit(lambda a, b: np_fn(a, b)),
           "jit numpy": gc.jit(lambda a, b: np_fn(a, b), backend="numpy")}
    x32, ints = np.array([0.5, 1.25], np.float32), np.array([3, 7])
    for a, b in ((x32, 1.225), (1.225, x32), (x32, 2), (ints, 1.5), (ints, np.array([2, 5])),
                 (x32, np.float64(2.0)), (x32, ints)):
        want = np.asarray(np_fn(a, b)).dtype
        for how, fn in fns.items():
            if how != "gc" and not isinstance(a, np.ndarray):
                continue          # a jitted function's arguments are arrays
            assert np.asarray(fn(a, b)).dtype == want, (name, how, a, b)


@pytest.mark.parametrize("name", ["mod", "remainder", "floor_divide", "fmod"])
@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_integer_division_ops_by_zero_give_zero_as_numpy(name, backend):
    a, b = np.array([5, -7, 0, 7, -9]), np.array([0, 3, 0, -2, 4])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = getattr(np, name)(a, b)
    got = gc.jit(lambda a, b: getattr(np, name)(a, b), backend=backend)(a, b)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["inv", "det", "slogdet", "cholesky", "solve"])
@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_linalg_derivatives_keep_float32(name, backend):
    """Forward and reverse derivatives of float32 linalg ops are float32: Cholesky's rules once
    multiplied by a float64 mask, and a float32 loop fed that tangent read it as garbage in C."""
    a = (np.eye(3) * 2 + 0.3 * np.random.default_rng(0).uniform(-1, 1, (3, 3))).astype(np.float32)
    a = a @ a.T
    fn = {"solve": lambda a: gc.linalg.solve(a, a[0]), "slogdet": lambda a: gc.linalg.slogdet(a)[1]
          }.get(name, getattr(gc.linalg, name))
    _, tangent = gc.jit(lambda a, t: gc.jvp(fn, (a,), (t,)), backend=backend)(a, a)
    grad = gc.jit(gc.grad(lambda a: gc.sum(fn(a))), backend=backend)(a)
    assert tangent.dtype == grad.dtype == np.float32


def test_a_derivative_rule_that_changes_the_dtype_is_an_internal_error(monkeypatch):
    """Every jvp/vjp rule's result is checked against its value's dtype (autodiff.py)."""
    from gradc import primitives as P
    monkeypatch.setattr(P, "_phi", lambda x: P.G.multiply(x, np.ones(x.shape[-2:])))  # float64
    a = np.array([[1.3]], np.float32)
    with pytest.raises(TypeError, match="cholesky's jvp rule made a float64 derivative"):
        gc.jvp(gc.linalg.cholesky, (a,), (a,))
    with pytest.raises(TypeError, match="cholesky's vjp rule made a float64 derivative"):
        gc.grad(lambda x: gc.sum(gc.linalg.cholesky(x)))(a)
