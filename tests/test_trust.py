"""Regression tests for the wrong answers found from outside (issue 12), one per mechanism, and a
sweep of size-1 dimensions through every reduction form, both backends and both float dtypes."""
import itertools

import numpy as np
import pytest

import gradc as gc
from conftest import FLOAT_DTYPES, assert_close


def both_backends(fn, *args):
    """fn jitted on the C backend and on the interpreter, called on args."""
    return gc.jit(fn)(*args), gc.jit(fn, backend="numpy")(*args)


def assert_backends_agree(fn, *args, dtype=np.float64):
    c, ref = both_backends(fn, *args)
    for got, want in zip(gc.tree_leaves(c), gc.tree_leaves(ref)):
        assert_close(got, want, dtype)
    return c


# ---- 1 and 4: a sum over axes of length 1 only was never stored ----------------------------------

def seven_terms(x):
    """The plain NumPy function of item 1: its gradient un-broadcasts expand_dims(x, 0)."""
    return (np.sum(np.transpose(np.reshape(x, (4, 3))) @ np.ones((4,)))
            + np.sum(np.concatenate([x, x * 2.0])) + np.sum(np.stack([x, x ** 2], axis=-1))
            + np.sum(np.where(x > 0, x, 0.5 * x))
            + np.sum(np.expand_dims(x, 0) + np.squeeze(np.expand_dims(x, -1), -1))
            + np.sum(np.broadcast_to(x[0], (3, 4)) * x) + np.sum(np.clip(x, -0.5, 0.5) * x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradient_of_numpy_terms_matches_interpreter(dtype):
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(dtype)
    assert_backends_agree(gc.grad(seven_terms), x, dtype=dtype)


def test_sum_over_length_one_axis_is_written_every_call():
    f = gc.jit(lambda x: np.sum(x * 2, axis=0))
    np.testing.assert_array_equal(f(np.array([[1., 2., 3., 4.]])), [2., 4., 6., 8.])
    np.testing.assert_array_equal(f(np.array([[5., 6., 7., 8.]])), [10., 12., 14., 16.])


def test_bias_gradient_with_a_batch_of_one_row():
    loss = lambda W, b, X: gc.sum(gc.tanh(X @ W + b) ** 2)   # noqa: E731
    r = np.random.default_rng(1)
    W, b, X = r.normal(size=(3, 2)), r.normal(size=2), r.normal(size=(1, 3))
    gb = assert_backends_agree(gc.grad(loss, argnums=1), W, b, X)
    t = np.tanh(X @ W + b)
    np.testing.assert_allclose(gb, (2 * t * (1 - t * t)).sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
def test_sum_of_all_length_one_axes_compiles(shape):
    assert float(gc.jit(lambda x: np.sum(x))(np.full(shape, 3.0))) == 3.0


def test_cross_entropy_of_one_row_trains():
    logits, y = np.array([[0.5, -1.0, 2.0]]), np.array([2])
    value, g = assert_backends_agree(gc.value_and_grad(gc.nn.cross_entropy), logits, y)
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(value, -np.log(p[0, 2]), rtol=1e-12)
    np.testing.assert_allclose(g, p - np.eye(3)[[2]], rtol=1e-12)


def test_mean_forward_mode_over_length_one_axis():
    x, t = np.array([[1.0, 2.0, 3.0]]), np.array([[0.5, -1.0, 2.0]])
    _, tangent = gc.jit(lambda x, t: gc.jvp(lambda x: gc.mean(x * x, axis=0), (x,), (t,)))(x, t)
    np.testing.assert_allclose(tangent, 2 * x[0] * t[0], rtol=1e-12)


# ---- 2: shapes with 1s one after another in one jitted function -----------------------------------

def test_new_shapes_with_ones_compile():
    f = gc.jit(lambda x, W: gc.tanh(x @ W).sum(axis=0))
    for m, k, n in [(3, 4, 2), (5, 2, 6), (1, 7, 1)]:
        x, W = np.full((m, k), 0.1), np.full((k, n), 0.2)
        np.testing.assert_allclose(f(x, W), np.tanh(x @ W).sum(axis=0), rtol=1e-12)


# ---- the sweep: every reduction form over shapes holding 1s, value and gradient --------------------

SHAPES = [(1,), (1, 1), (1, 4), (4, 1), (1, 3, 1), (2, 1, 3), (1, 1, 5)]
REDUCTIONS = {"sum": gc.sum, "mean": gc.mean, "max": gc.max, "logsumexp": gc.logsumexp}


def _axis_forms(ndim):
    forms = [None] + list(range(ndim)) + [-1]
    forms += [c for r in range(2, ndim + 1) for c in itertools.combinations(range(ndim), r)]
    return forms


SWEEP = [(name, shape, axis, keep) for name in REDUCTIONS for shape in SHAPES
         for axis in _axis_forms(len(shape)) for keep in (False, True)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_reductions_over_length_one_axes(dtype):
    r = np.random.default_rng(2)
    for name, shape, axis, keep in SWEEP:
        x = (r.permutation(int(np.prod(shape))).reshape(shape) * 0.25 - 0.5).astype(dtype)
        reduce = REDUCTIONS[name]

        def loss(x, w):
            return gc.sum(reduce(x * 1.5, axis=axis, keepdims=keep) * w)
        w = r.normal(size=np.shape(np.sum(x, axis=axis, keepdims=keep))).astype(dtype)
        what = f"{name}{shape} axis={axis} keepdims={keep}"
        c, ref = both_backends(gc.value_and_grad(loss, argnums=(0, 1)), x, w)
        for got, want in zip(gc.tree_leaves(c), gc.tree_leaves(ref)):
            assert_close(got, want, dtype, what)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_products_and_broadcasts_with_ones(dtype):
    r = np.random.default_rng(3)
    cases = [((1, 3), (3, 1)), ((1, 1), (1, 4)), ((4, 1), (1, 1)), ((2, 1, 3), (2, 3, 1)),
             ((3,), (3, 1)), ((1, 3), (3,))]
    for sa, sb in cases:
        a, b = r.normal(size=sa).astype(dtype), r.normal(size=sb).astype(dtype)
        fn = gc.value_and_grad(lambda a, b: gc.sum(gc.tanh(a @ b) + (a @ b) ** 2), argnums=(0, 1))
        c, ref = both_backends(fn, a, b)
        for got, want in zip(gc.tree_leaves(c), gc.tree_leaves(ref)):
            assert_close(got, want, dtype, f"{sa} @ {sb}")


# ---- 3 and 6: transforms and gc.jit nest in any order ----------------------------------------------

def tanh_loss(W, b, X):
    return gc.sum(gc.tanh(X @ W + b) ** 2)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_jit_inside_a_transform_inside_jit(backend):
    r = np.random.default_rng(4)
    W, b, X = r.normal(size=(3, 2)), r.normal(size=2), r.normal(size=(4, 3))
    want = gc.value_and_grad(tanh_loss)(W, b, X)
    for fn in (gc.jit(gc.value_and_grad(gc.jit(tanh_loss, backend=backend)), backend=backend),
               gc.value_and_grad(gc.jit(tanh_loss, backend=backend)),
               gc.jit(gc.value_and_grad(tanh_loss), backend=backend)):
        value, grad = fn(W, b, X)
        np.testing.assert_allclose(value, want[0], rtol=1e-12)
        np.testing.assert_allclose(grad, want[1], rtol=1e-12)


def test_jitted_function_keeps_its_own_state_when_wrapped():
    inner = gc.jit(tanh_loss)
    outer = gc.jit(gc.grad(inner))
    assert outer.fn is not inner.fn and outer._cache is not inner._cache


def test_python_float_given_to_an_inner_transform():
    g = gc.grad(lambda x: gc.grad(lambda a, b: a * np.sin(b), argnums=1)(x, 0.5))(0.3)
    np.testing.assert_allclose(g, np.cos(0.5), rtol=1e-12)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_jit_closing_over_an_outer_traced_value(backend):
    g = gc.grad(lambda x: x * gc.jit(lambda y: x * y, backend=backend)(2.0))(1.5)
    np.testing.assert_allclose(g, 6.0, rtol=1e-12)      # d/dx 2 x^2 = 4 x


# ---- 5: rules written with where do not leak the untaken branch's derivative -----------------------

@pytest.mark.parametrize("y, x, want", [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0), (2.0, 0.0, 2.0),
                                        (3.0, 0.0, 0.0), (0.0, 1.5, 0.0), (3.0, 2.0, 12.0)])
def test_second_derivative_of_power(y, x, want):
    assert float(gc.grad(gc.grad(lambda x: np.power(x, y)))(x)) == want
    assert float(gc.jit(gc.grad(gc.grad(lambda x: np.power(x, y))))(x)) == want


def test_second_derivative_of_power_in_the_exponent_at_zero_base():
    assert float(gc.grad(gc.grad(lambda y: np.power(0.0, y)))(2.0)) == 0.0


# ---- 7: a transposed view read by a product and by another step ------------------------------------

def test_transposed_view_read_by_product_and_concatenate():
    x, w = np.arange(4.0).reshape(2, 2), np.arange(4.0, 8.0).reshape(2, 2)
    cat, prod = gc.jit(lambda x, w: (gc.concatenate([x.T, w]), x.T @ w))(x, w)
    np.testing.assert_array_equal(cat, np.concatenate([x.T, w]))
    np.testing.assert_array_equal(prod, x.T @ w)


def test_transposed_view_read_by_product_and_gather():
    x, w, y = np.arange(4.0).reshape(2, 2), np.arange(4.0, 8.0).reshape(2, 2), np.array([1, 0])
    got, prod = gc.jit(lambda x, w: (x.T[np.arange(2), y], x.T @ w))(x, w)
    np.testing.assert_array_equal(got, x.T[np.arange(2), y])
    np.testing.assert_array_equal(prod, x.T @ w)


def test_gradient_of_product_and_column_gather():
    x, v, idx = np.arange(6.0).reshape(2, 3), np.arange(3.0), np.array([2, 0, 2])
    f = lambda x: gc.sum((x @ v) ** 2) + gc.sum(x[:, idx] ** 2)     # noqa: E731
    assert_backends_agree(gc.grad(f), x)


def test_transposed_view_gathered_by_argmax():
    x = np.array([[-1.71, -0.46], [1.29, 1.02]])
    w = np.array([1.04, 1.49])
    f = lambda x: (gc.dot(x.T, w) * x.T[1], x.T[np.arange(2), gc.argmax(x.T, axis=1)])  # noqa: E731
    out = assert_backends_agree(f, x)
    np.testing.assert_array_equal(out[1], [1.29, 1.02])


# ---- 8: where of two Python scalars is a float64 array, as np.where's ------------------------------

@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_where_of_python_scalars_is_strongly_typed(backend):
    x = np.ones(3, np.float32)
    want = (np.where(x > 0, 1.0, 2.0) * x).dtype
    assert gc.jit(lambda x: gc.where(x > 0, 1.0, 2.0) * x, backend=backend)(x).dtype == want
    assert gc.jit(lambda x: gc.where(x > 0, 1.0, 2.0), backend=backend)(x).dtype == want
    assert (gc.where(x > 0, 1.0, 2.0) * x).dtype == want


# ---- 9: the disk cache keys libraries on the headers they include ----------------------------------

def test_library_key_changes_with_a_header(tmp_path, monkeypatch, isolated_cache):
    import shutil
    from gradc.cbackend import build
    csrc = tmp_path / "csrc"
    shutil.copytree(build.CSRC, csrc)
    monkeypatch.setattr(build, "CSRC", csrc)
    build.headers_identity.cache_clear()
    source = '#include "gradc_runtime.h"\nint gradc_test_header_key(void) { return 7; }\n'
    try:
        assert build.compile_shared(source, blas=False)[2] is False
        assert build.compile_shared(source, blas=False)[2] is True
        header = csrc / "gradc_runtime.h"
        header.write_text(header.read_text() + "\n/* changed */\n")
        build.headers_identity.cache_clear()
        assert build.compile_shared(source, blas=False)[2] is False    # rebuilt, not the old one
    finally:
        build.headers_identity.cache_clear()


# ---- 10: constants replayed into another trace keep the line that made them ------------------------

def _scaled_sum(x):
    return gc.sum(x * np.arange(1.0, 4.0))       # the constant is made on this line


def test_replayed_constant_keeps_its_line():
    import inspect
    line = inspect.getsourcelines(_scaled_sum)[1] + 1
    lowered = gc.jit(lambda x: gc.grad(_scaled_sum)(x)).lower(np.ones(3))
    consts = [n for n in lowered.traced_graph.nodes if n.prim.name == "const" and n.size == 3]
    assert consts and all(n.loc.endswith(f"test_trust.py:{line}") for n in consts), \
        [n.loc for n in consts]
    assert f"test_trust.py:{line}" in lowered.c_source


def test_an_error_under_a_transform_leaves_no_trace_open():
    from gradc import core
    with pytest.raises(gc.ShapeError):
        gc.grad(lambda x, y: gc.sum(x @ y))(np.ones((2, 3)), np.ones((2, 3)))
    assert not core.tracing()
    with pytest.raises(gc.ConcretizationError):      # jit traces again, not through
        gc.jit(lambda x: x if x > 0 else -x, backend="numpy")(np.float64(1.0))


def test_compiled_with_a_static_argument_is_called_with_it():
    jitted = gc.jit(lambda x, k: gc.sum(x ** k), static_argnums=(1,))
    compiled = jitted.lower(np.arange(3.0), 3).compile()
    assert float(compiled(np.arange(3.0), 3)) == 9.0
    with pytest.raises(ValueError, match="static argument 1 was 3 when compiled, got 2"):
        compiled(np.arange(3.0), 2)
