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


# ---- NumPy references for the composites ---------------------------------------------------------

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

    def __repr__(self):
        return self.name


def op(name, fn, ref, gen, diff=(0,), check_dtype=True):
    return Op(name, fn, ref, gen, tuple(diff), check_dtype)


M, K = 3, 4      # the default 2-D shape
I2 = np.array([2, 0, 1, 2])          # repeated index: the scatter-add must accumulate
I_NEG = np.array([3, -1, 0])         # negative indices wrap as in NumPy
MASK = np.array([True, False, True, False])          # a captured bool constant
CONST = np.linspace(-1.0, 1.0, 8).reshape(4, 2)   # a captured float64 array constant

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
]

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
    got = gc.jit(o.fn, backend=backend)(*args)
    assert isinstance(got, np.ndarray), f"jit result is {type(got)}, not an ndarray"
    check_value(o, got, args, dtype, f"{o.name} jit[{backend}]")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("o", OPS, ids=repr)
def test_value_tensor(o, dtype):
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
    inside = gc.jit(gc.grad(loss, argnums=o.diff), backend=backend)(*args)
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


def collect_covered_primitives():
    """Fills COVERED_PRIMITIVES with the primitives used by each record's forward graph and by the
    graph of its gradient, in both dtypes. A record that fails to lower is reported by its own
    tests; here it is only listed in LOWERING_FAILURES."""
    if not COVERED_PRIMITIVES:
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
    return COVERED_PRIMITIVES


def test_every_primitive_has_a_record():
    from gradc.primitives import PRIMITIVES
    assert PRIMITIVES, "the primitive table is empty"
    names = {p.name for p in PRIMITIVES.values()}
    covered = collect_covered_primitives()
    missing = sorted(names - covered)
    assert not missing, (f"primitives used by no op-table record: {missing}"
                         + (f" (records that failed to lower: {sorted(LOWERING_FAILURES)})"
                            if LOWERING_FAILURES else ""))


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
