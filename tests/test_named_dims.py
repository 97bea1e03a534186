"""Shapes that vary (API.md section 10): named dims in specs, one kernel for every size on both
backends, dynamic="auto" in gc.jit, and what cannot be named (a clear fallback or error)."""
import logging

import numpy as np
import pytest

import gradc as gc
from gradc.symbolic import Dim, SymbolicShapeError

SIZES = (1, 7, 64, 300)
D, H, C = 12, 8, 5


def mlp_loss(W1, b1, W2, b2, X, y):
    return gc.nn.cross_entropy(gc.relu(X @ W1 + b1) @ W2 + b2, y)


def softmax_loss(W, b, X, y):
    return gc.nn.cross_entropy(X @ W.T + b, y)


def norm_loss(g, X):
    """layer norm over the last axis, statistics over the named batch axis, reshapes."""
    mu = X.mean(axis=-1, keepdims=True)
    h = (X - mu) / gc.sqrt(((X - mu) ** 2).mean(axis=-1, keepdims=True) + 1e-5) * g
    flat = h.reshape(-1, 3, 4).transpose(0, 2, 1).reshape(h.shape[0], -1)
    col = gc.concatenate([flat[:, 1:5], gc.exp(flat[:, :2])], axis=1)
    return gc.mean(col) + gc.sum(gc.var(X, axis=0) * g) + gc.mean(gc.logsumexp(X, axis=1))


def diff_loss(X):
    """slices one off either end of the named axis, and its last row."""
    return gc.sum((X[1:] - X[:-1]) ** 2) + gc.sum(X[-1] * X[0]) + gc.sum(gc.tanh(X[-1:, 2:]))


def rnn_loss(W, xs):
    """gc.scan over 6 steps of a named batch (the body's kernel gets the sizes too)."""
    def step(h, x):
        return gc.tanh(h @ W + x), h
    h, hs = gc.scan(step, xs[0] * 0, xs)
    return gc.sum(hs ** 2) + gc.mean(h)


def linalg_loss(A, b):
    """batched solve and inv over a named batch (LAPACK per matrix)."""
    A = A + 3 * np.eye(3, dtype=A.dtype)
    return gc.sum(np.linalg.solve(A, b)) + gc.sum(np.linalg.inv(A) ** 2)


def _params(rng, dtype):
    return [rng.standard_normal((D, H)).astype(dtype), (0.1 * rng.standard_normal(H)).astype(dtype),
            rng.standard_normal((H, C)).astype(dtype), (0.1 * rng.standard_normal(C)).astype(dtype)]


CASES = {
    "mlp": (gc.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3, 4)),
            lambda dt: [gc.Spec((D, H), dt), gc.Spec((H,), dt), gc.Spec((H, C), dt),
                        gc.Spec((C,), dt), gc.Spec(("n", D), dt), gc.Spec(("n",), "int64")],
            lambda rng, dt, n: _params(rng, dt) + [rng.standard_normal((n, D)).astype(dt),
                                                   rng.integers(0, C, n)]),
    "softmax": (gc.value_and_grad(softmax_loss, argnums=(0, 1)),
                lambda dt: [gc.Spec((C, D), dt), gc.Spec((C,), dt), gc.Spec(("batch", D), dt),
                            gc.Spec(("batch",), "int32")],
                lambda rng, dt, n: [rng.standard_normal((C, D)).astype(dt),
                                    rng.standard_normal(C).astype(dt),
                                    rng.standard_normal((n, D)).astype(dt),
                                    rng.integers(0, C, n).astype(np.int32)]),
    "norm": (gc.value_and_grad(norm_loss, argnums=(0, 1)),
             lambda dt: [gc.Spec((D,), dt), gc.Spec(("n", D), dt)],
             lambda rng, dt, n: [rng.uniform(0.5, 1.5, D).astype(dt),
                                 rng.standard_normal((n, D)).astype(dt)]),
    "rnn": (gc.value_and_grad(rnn_loss, argnums=(0, 1)),
            lambda dt: [gc.Spec((4, 4), dt), gc.Spec((6, "batch", 4), dt)],
            lambda rng, dt, n: [(0.5 * rng.standard_normal((4, 4))).astype(dt),
                                rng.standard_normal((6, n, 4)).astype(dt)]),
    "rnn_length": (gc.value_and_grad(rnn_loss, argnums=(0, 1)),   # the loop's length named too
                   lambda dt: [gc.Spec((4, 4), dt), gc.Spec(("T", "batch", 4), dt)],
                   lambda rng, dt, n: [(0.5 * rng.standard_normal((4, 4))).astype(dt),
                                       rng.standard_normal((n % 9 + 1, n, 4)).astype(dt)]),
    "linalg": (gc.value_and_grad(linalg_loss, argnums=(0, 1)),
               lambda dt: [gc.Spec(("n", 3, 3), dt), gc.Spec(("n", 3, 1), dt)],
               lambda rng, dt, n: [(0.3 * rng.standard_normal((n, 3, 3))).astype(dt),
                                   rng.standard_normal((n, 3, 1)).astype(dt)]),
    "diff": (gc.value_and_grad(diff_loss), lambda dt: [gc.Spec(("n", 4), dt)],
             lambda rng, dt, n: [rng.standard_normal((n, 4)).astype(dt)]),
}


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _leaves(t)]
    return [tree]


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_one_kernel_serves_every_size(case, dtype, backend):
    """The kernel lowered with named dims against per-shape kernels at 1, 7, 64 and 300 rows."""
    fn, specs, make = CASES[case]
    compiled = gc.jit(fn, backend=backend).lower(*specs(dtype)).compile()
    per_shape = gc.jit(fn, backend=backend, dynamic=False)
    rng = np.random.default_rng(0)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for n in SIZES + SIZES[::-1]:       # the workspace grows and shrinks with the size
        args = make(rng, dtype, n)
        got, want = _leaves(compiled(*args)), _leaves(per_shape(*args))
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{case} n={n}")
    assert per_shape.cache_info().misses == len(SIZES)
    if backend == "c":            # every call took the native path, sizes read in C
        assert compiled.executable.entry is not None
        assert compiled.executable.entry.calls == 2 * len(SIZES)


def test_gradients_of_a_named_kernel_match_finite_differences():
    fn, specs, make = CASES["norm"]
    compiled = gc.jit(fn).lower(*specs("float64")).compile()
    rng = np.random.default_rng(1)
    g, X = make(rng, "float64", 7)
    _, (dg, dX) = compiled(g, X)
    loss = lambda g, X: float(gc.jit(norm_loss, backend="numpy")(g, X))  # noqa: E731
    eps = 1e-6
    for (i, j) in [(0, 0), (3, 5), (6, 11)]:
        Xp, Xm = X.copy(), X.copy()
        Xp[i, j] += eps
        Xm[i, j] -= eps
        np.testing.assert_allclose(dX[i, j], (loss(g, Xp) - loss(g, Xm)) / (2 * eps), rtol=1e-6,
                                   atol=1e-8)
    gp, gm = g.copy(), g.copy()
    gp[2] += eps
    gm[2] -= eps
    np.testing.assert_allclose(dg[2], (loss(gp, X) - loss(gm, X)) / (2 * eps), rtol=1e-6)


def test_the_c_kernel_reads_its_sizes_at_run_time():
    lowered = gc.jit(lambda x: gc.mean(x, axis=0)).lower(gc.Spec(("n", 3), "float32"))
    assert "x: f32[n,3]" in lowered.signature()
    src = lowered.c_source
    assert "const int64_t D_n = dims[0];" in src
    assert "D_n" in src.split("D_n = dims[0];")[1]          # a bound or size uses it


def test_specs_name_dims():
    spec = gc.Spec.parse("f32[n,784]")
    assert spec.shape == (Dim.named("n"), 784) and repr(spec) == "f32[n,784]"
    assert gc.Spec(("batch", 3), "float64").shape[0] == Dim.named("batch")
    for bad in ("f32[2n,3]", "f32[n-1]", "f32[n;3]"):
        with pytest.raises(ValueError, match="cannot parse spec"):
            gc.Spec.parse(bad)
    with pytest.raises(ValueError, match="identifier"):
        gc.Spec(("two words", 3))


def test_sizes_that_disagree_are_named_errors():
    compiled = gc.jit(lambda X, y: gc.sum(X, axis=1) * y).lower(
        gc.Spec(("n", 3), "float64"), gc.Spec(("n",), "float64")).compile()
    np.testing.assert_allclose(compiled(np.ones((4, 3)), np.arange(4.0)), 3 * np.arange(4.0))
    with pytest.raises(ValueError, match=r"argument y: dimension 'n' \(axis 0\) is 5, but "
                                         r"argument X gave 'n' = 4"):
        compiled(np.ones((4, 3)), np.ones(5))
    with pytest.raises(ValueError, match="expected f64\\[n,3\\]"):
        compiled(np.ones((4, 2)), np.ones(4))
    with pytest.raises(ValueError, match="a named size is at least 1"):
        compiled(np.ones((0, 3)), np.ones(0))


def test_named_dims_are_decided_for_every_size_or_refused():
    n = Dim.named("n")
    assert n != 1 and n * 784 // 784 == n and (n * 6) % 3 == 0 and n + 1 > n and n >= 1
    assert repr(2 * n * n + 3) == "2*n^2 + 3" and str(2 * n + 3) == "(2*D_n + 3)"
    for undecided in (lambda: n > 5, lambda: int(n), lambda: range(n), lambda: n // 2,
                      lambda: n % 2):
        with pytest.raises(SymbolicShapeError):
            undecided()
    x = gc.Spec(("n", 3))
    for key in (np.s_[:5], np.s_[2:], np.s_[::2], np.s_[3]):
        with pytest.raises(SymbolicShapeError):
            gc.jit(lambda x: x[key]).lower(x)
    # broadcasting a named dim against 1 works; against another constant it is an error
    f = gc.jit(lambda x, y: x + y)
    assert f.lower(gc.Spec(("n", 3)), gc.Spec((1, 3))).graph.outputs[0].shape == (n, 3)
    with pytest.raises(gc.ShapeError, match="cannot be broadcast"):
        f.lower(gc.Spec(("n",)), gc.Spec((7,)))


def test_dynamic_auto_compiles_at_most_twice_in_a_training_loop(caplog):
    """Batches of 32, 32, ..., 17 (a short last batch), then another epoch: two compiles."""
    step = gc.jit(gc.value_and_grad(mlp_loss, argnums=(0, 1, 2, 3)))
    reference = gc.jit(gc.value_and_grad(lambda *a: mlp_loss(*a), argnums=(0, 1, 2, 3)),
                       backend="numpy", dynamic=False)
    rng = np.random.default_rng(2)
    params = _params(rng, np.float32)
    with caplog.at_level(logging.INFO, logger="gradc"):
        for B in [32, 32, 32, 17] * 2 + [5, 64]:
            X, y = rng.standard_normal((B, D)).astype(np.float32), rng.integers(0, C, B)
            for g, w in zip(_leaves(step(*params, X, y)), _leaves(reference(*params, X, y))):
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
    assert step.cache_info().misses == 2
    traces = [r.getMessage() for r in caplog.records if r.getMessage().startswith("traced mlp_loss")]
    assert len(traces) == 2 and "X.shape[0] and y.shape[0] named d0" in traces[1], traces
    assert "f32[d0,12]" in repr(step)


def test_dynamic_auto_gives_size_1_a_kernel_of_its_own():
    """np.squeeze drops an axis of size 1 only: a named size is never 1 while tracing, so a call
    with 1 row must not take the named kernel."""
    f = gc.jit(lambda x: gc.sum(np.squeeze(x) * 2, axis=-1))
    for rows in (4, 6, 9):
        np.testing.assert_allclose(f(np.ones((rows, 3))), np.full(rows, 6.0))
    np.testing.assert_allclose(f(np.ones((1, 3))), 6.0)         # NumPy: squeeze gives (3,)
    assert f(np.ones((1, 3))).shape == ()
    assert f.cache_info().misses == 3


def test_dynamic_false_and_true():
    f = gc.jit(lambda x: gc.sum(gc.exp(x)), dynamic=False)
    for n in (3, 4, 5):
        f(np.ones(n))
    assert f.cache_info().misses == 3
    g = gc.jit(lambda x: gc.sum(gc.exp(x), axis=1), dynamic=True)
    for n in (3, 4, 5):
        np.testing.assert_allclose(g(np.zeros((n, 2))), np.full(n, 2.0))
    assert g.cache_info().misses == 1
    with pytest.raises(ValueError, match="dynamic must be"):
        gc.jit(lambda x: x, dynamic="yes")


def test_a_function_that_needs_a_size_falls_back_per_shape_and_says_so_once(caplog):
    def total(x):
        return sum(x[i] * i for i in range(x.shape[0]))       # the size as a Python value
    f = gc.jit(total)
    with caplog.at_level(logging.INFO, logger="gradc"):
        for n in (3, 4, 5, 6):
            assert float(f(np.ones(n))) == sum(range(n))
    fallbacks = [r.getMessage() for r in caplog.records if "cannot have named sizes" in r.getMessage()]
    assert len(fallbacks) == 1 and "range(), int()" in fallbacks[0]
    assert f.cache_info().misses == 4


def test_sizes_that_change_together_stay_one_dim_and_others_get_their_own_kernel():
    f = gc.jit(lambda a, b: gc.sum(a) + gc.sum(b))
    f(np.ones(4), np.ones(4))
    f(np.ones(6), np.ones(6))        # both named d0
    assert float(f(np.ones(9), np.ones(9))) == 18.0
    assert f.cache_info().misses == 2
    assert float(f(np.ones(3), np.ones(8))) == 11.0      # d0 cannot be both: a kernel of its own
    assert f.cache_info().misses == 3


def test_aot_export_with_a_named_dim(tmp_path):
    """The importable extension takes every size; the C prototypes take n first."""
    import importlib.util
    import sys
    mod = gc.Module("named_mlp")
    fn, specs, make = CASES["mlp"]
    mod.export(*specs("float32"), name="step")(lambda W1, b1, W2, b2, X, y:
                                                  fn(W1, b1, W2, b2, X, y))
    header = mod.header()
    assert "int named_mlp_step(int64_t n, const float *W1," in header
    assert "size_t named_mlp_step_work_bytes(int64_t n);" in header
    assert "size n" in header and "NAMED_MLP_ERR_SIZE" in header
    mod.build(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        built = importlib.import_module("named_mlp")
        per_shape = gc.jit(fn, dynamic=False)
        rng = np.random.default_rng(3)
        for n in SIZES:
            args = make(rng, "float32", n)
            for g, w in zip(_leaves(built.step(*args)), _leaves(per_shape(*args))):
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
        args = make(rng, "float32", 4)
        with pytest.raises(ValueError, match="dimension 'n'"):
            built.step(*args[:5], args[5][:3])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("named_mlp", None)
        sys.modules.pop("_named_mlp", None)


def test_the_disk_cache_index_keeps_a_workspace_that_depends_on_sizes():
    from gradc.symbolic import from_json, to_json
    n, m = Dim.named("n"), Dim.named("m")
    for size in (0, 4096, 64 * n + 128, 3 * n * m + n):
        assert from_json(to_json(size)) == size


def test_named_kernels_match_pytorch():
    """The MLP's value and gradients with a named batch against PyTorch at every size."""
    torch = pytest.importorskip("torch")
    fn, specs, make = CASES["mlp"]
    compiled = gc.jit(fn).lower(*specs("float64")).compile()
    rng = np.random.default_rng(4)
    for n in SIZES:
        args = make(rng, "float64", n)
        value, grads = compiled(*args)
        t = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in args]
        hidden = torch.relu(t[4] @ t[0] + t[1])
        ref = torch.nn.functional.cross_entropy(hidden @ t[2] + t[3], t[5])
        ref.backward()
        np.testing.assert_allclose(value, ref.item(), rtol=1e-12)
        for g, a in zip(grads, t[:5]):
            np.testing.assert_allclose(g, a.grad.numpy(), rtol=1e-10, atol=1e-12)


def _row_norms(x):
    return gc.sum(x * x, axis=1)


def test_a_named_kernel_pickles_with_its_named_dims():
    import pickle
    compiled = gc.jit(_row_norms).lower(gc.Spec(("n", 3), "float64")).compile()
    again = pickle.loads(pickle.dumps(compiled))
    assert "x: f64[n,3]" in repr(again)
    for n in (1, 5):
        np.testing.assert_allclose(again(np.ones((n, 3))), np.full(n, 3.0))
    assert pickle.loads(pickle.dumps(gc.jit(_row_norms, dynamic=False))).dynamic is False


def test_threads_for_a_named_size_follow_the_fixed_rule_at_run_time(monkeypatch):
    """A big loop over a named size picks its threads when it runs, as a fixed kernel of that
    size does at compile time: the same partial sums, so bitwise the same results."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "4")
    f = gc.value_and_grad(lambda x: gc.sum(gc.log(x) + gc.sqrt(gc.log(x))))
    lowered = gc.jit(f).lower(gc.Spec(("n",), "float32"))
    src = lowered.c_source
    assert "const int64_t n_chunks = gradc_chunks_for(D_n, D_n, 4, 65536, 4, 16);" in src, src
    assert "GRADC_PARALLEL(n_chunks, 4)" in src
    named = lowered.compile()
    for n in (1000, 70_000, 300_000, 1_200_000):      # 1, 2, 4 threads; 4 threads of 4 chunks
        x = np.random.default_rng(n).uniform(1.5, 3.0, n).astype(np.float32)
        value, grad = named(x)
        want_value, want_grad = gc.jit(f, dynamic=False)(x)
        assert value == want_value and np.array_equal(grad, want_grad)


def test_products_over_named_rows_split_into_blocks_at_run_time(monkeypatch):
    """X @ W with X's rows named: blocks of rows chosen when the kernel runs (uneven ones too:
    1030 rows on 4 threads), the gradient's X^T @ dZ (a named k) split by W's fixed rows."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "4")
    f = gc.value_and_grad(lambda W, X: gc.sum(gc.tanh(X @ W) ** 2), argnums=(0, 1))
    lowered = gc.jit(f).lower(gc.Spec((64, 256), "float64"), gc.Spec(("n", 64), "float64"))
    assert "gradc_row_blocks(D_n, 64, 256, 4," in lowered.c_source
    named, rng = lowered.compile(), np.random.default_rng(5)
    W = rng.standard_normal((64, 256)) / 8
    for n in (1, 7, 300, 1030):
        X = rng.standard_normal((n, 64))
        for got, want in zip(_leaves(named(W, X)), _leaves(gc.jit(f, dynamic=False)(W, X))):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
