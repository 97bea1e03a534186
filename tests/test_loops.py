"""gc.scan and gc.fori_loop (API.md section 9): values and derivatives equal the same loop unrolled
in Python, on both backends and both float dtypes; the graph holds one loop node whatever the
length."""
import numpy as np
import pytest

import gradc as gc

BACKENDS = ["numpy", "c"]
DTYPES = [np.float64, np.float32]


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def _params(dtype, T=6, B=2, D=3, H=4, seed=0):
    rng = np.random.default_rng(seed)
    return [a.astype(dtype) for a in (rng.normal(size=(D, H)) * 0.5, rng.normal(size=(H, H)) * 0.5,
                                       rng.normal(size=H) * 0.1, rng.normal(size=(T, B, D)),
                                       rng.normal(size=(B, H)) * 0.1)]


def rnn_scan(Wx, Wh, b, xs, h0):
    def step(h, x):
        h = gc.tanh(x @ Wx + h @ Wh + b)
        return h, h
    hT, hs = gc.scan(step, h0, xs)
    return gc.sum(hT * hT) + gc.sum(hs * hs) * 0.5


def rnn_unrolled(Wx, Wh, b, xs, h0):
    h, hs = h0, []
    for t in range(xs.shape[0]):
        h = gc.tanh(xs[t] @ Wx + h @ Wh + b)
        hs.append(h)
    return gc.sum(h * h) + gc.sum(gc.stack(hs) * gc.stack(hs)) * 0.5


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rnn_value_and_grad_equal_unrolled(backend, dtype):
    args = _params(dtype)
    want_v, want_g = gc.jit(gc.value_and_grad(rnn_unrolled, argnums=(0, 1, 2, 3, 4)),
                            backend="numpy")(*args)
    got_v, got_g = gc.jit(gc.value_and_grad(rnn_scan, argnums=(0, 1, 2, 3, 4)),
                          backend=backend)(*args)
    np.testing.assert_allclose(got_v, want_v, **_tol(dtype))
    assert got_v.dtype == dtype
    for g, w in zip(got_g, want_g):
        assert g.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, **_tol(dtype))


def test_rnn_finite_differences():
    gc.check_grad(rnn_scan, *_params(np.float64, T=4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fori_loop_closes_over_traced_values(backend):
    def f(x, k):
        return gc.fori_loop(2, 7, lambda i, c: c * k + gc.sin(x * i), x)

    def unrolled(x, k):
        c = x
        for i in range(2, 7):
            c = c * k + gc.sin(x * i)
        return c
    x, k = np.array([0.3, -0.2, 0.7]), np.array(0.9)
    np.testing.assert_allclose(gc.jit(f, backend=backend)(x, k), unrolled(x, k), rtol=1e-12)
    loss = lambda x, k: gc.sum(f(x, k) ** 2)                                    # noqa: E731
    loss_u = lambda x, k: gc.sum(unrolled(x, k) ** 2)                           # noqa: E731
    for got, want in zip(gc.jit(gc.grad(loss, argnums=(0, 1)), backend=backend)(x, k),
                         gc.grad(loss_u, argnums=(0, 1))(x, k)):
        np.testing.assert_allclose(got, want, rtol=1e-10)
    gc.check_grad(loss, x, k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_a_loop_whose_carry_starts_at_another_loops_result(backend):
    """Reverse mode keeps each loop and its residual-saving twin; merge_loops makes the twins
    one node. The second loop's start was then given the first merged node whole (its carry and
    saved steps): the interpreter raised a broadcast error (found by the fuzzer)."""
    def f(x):
        c = gc.fori_loop(1, 2, lambda i, c: c * 0.9 + gc.tanh(c) * 0.3 * i, x)
        return gc.fori_loop(0, 2, lambda i, c: gc.sin(c * 0.8) + x * 0.5, c)

    def unrolled(x):
        c = x * 0.9 + gc.tanh(x) * 0.3
        for _ in range(2):
            c = gc.sin(c * 0.8) + x * 0.5
        return c
    x, w = np.array([[-0.78, 0.4]]), np.array([[0.92, -0.3]])
    loss = lambda x: gc.sum(f(x) * w)                                            # noqa: E731
    got = gc.jit(gc.value_and_grad(loss), backend=backend)(x)
    want = gc.value_and_grad(lambda x: gc.sum(unrolled(x) * w))(x)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-12)
    gc.check_grad(loss, x)


def test_fori_loop_python_carry_takes_body_dtype():
    x = np.float32(0.5)
    out = gc.jit(lambda x: gc.fori_loop(0, 3, lambda i, c: c * 0.5 + x, 1.0), backend="numpy")(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ((1.0 * 0.5 + 0.5) * 0.5 + 0.5) * 0.5 + 0.5, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reverse_scan_and_pytrees(backend):
    def f(a, xs):
        def step(carry, x):
            s, p = carry["s"], carry["p"]
            return {"s": s + x["u"] * p, "p": p * 0.9}, (s * x["v"], x["u"] - s)
        carry, (y1, y2) = gc.scan(step, {"s": a, "p": gc.ones_like(a)}, xs, reverse=True)
        return gc.sum(carry["s"]) + gc.sum(y1 * y1) + gc.sum(gc.sin(y2))

    def unrolled(a, xs):
        s, p, total = a, gc.ones_like(a), 0.0
        for t in reversed(range(xs["u"].shape[0])):
            total = total + gc.sum((s * xs["v"][t]) ** 2) + gc.sum(gc.sin(xs["u"][t] - s))
            s, p = s + xs["u"][t] * p, p * 0.9
        return gc.sum(s) + total
    rng = np.random.default_rng(1)
    a, xs = rng.normal(size=3), {"u": rng.normal(size=(5, 3)), "v": rng.normal(size=(5, 3))}
    np.testing.assert_allclose(gc.jit(f, backend=backend)(a, xs), unrolled(a, xs), rtol=1e-12)
    got = gc.jit(gc.grad(f, argnums=(0, 1)), backend=backend)(a, xs)
    want = gc.grad(unrolled, argnums=(0, 1))(a, xs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-10)
    for key in ("u", "v"):
        np.testing.assert_allclose(got[1][key], want[1][key], rtol=1e-10, atol=1e-14)


def _poly_loop(x):
    return gc.fori_loop(0, 4, lambda i, c: gc.sin(c) * x + c * c * 0.3, x)


def _poly_unrolled(x):
    c = x
    for _ in range(4):
        c = gc.sin(c) * x + c * c * 0.3
    return c


@pytest.mark.parametrize("backend", BACKENDS)
def test_jvp_jacobian_hessian_through_loops(backend):
    x = np.array([0.3, -0.5, 0.8])
    t = np.array([1.0, 0.5, -2.0])
    out, tan = gc.jit(lambda x, t: gc.jvp(_poly_loop, (x,), (t,)), backend=backend)(x, t)
    want_out, want_tan = gc.jvp(_poly_unrolled, (x,), (t,))
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    np.testing.assert_allclose(tan, want_tan, rtol=1e-10)
    for mode in ("rev", "fwd"):
        got = gc.jit(gc.jacobian(_poly_loop, mode=mode), backend=backend)(x)
        np.testing.assert_allclose(got, gc.jacobian(_poly_unrolled)(x), rtol=1e-10)
    scalar = lambda f: (lambda x: gc.sum(f(x) * f(x)))                          # noqa: E731
    got = gc.jit(gc.hessian(scalar(_poly_loop)), backend=backend)(x)
    np.testing.assert_allclose(got, gc.hessian(scalar(_poly_unrolled))(x), rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_grad_through_loop(backend):
    def f(k):
        return gc.fori_loop(0, 5, lambda i, c: gc.tanh(c * k) + 0.1, k)

    def f_u(k):
        c = k
        for _ in range(5):
            c = gc.tanh(c * k) + 0.1
        return c
    k = np.array(0.7)
    d2 = gc.jit(gc.grad(gc.grad(f)), backend=backend)(k)
    np.testing.assert_allclose(d2, gc.grad(gc.grad(f_u))(k), rtol=1e-10)
    d3 = gc.grad(gc.grad(gc.grad(f)))(k)
    np.testing.assert_allclose(d3, gc.grad(gc.grad(gc.grad(f_u)))(k), rtol=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_nested_loops(backend, dtype):
    def f(W, xs):
        def outer(h, x_row):
            inner = gc.fori_loop(0, 3, lambda j, c: gc.tanh(c @ W + x_row), h)
            return inner, gc.sum(inner)
        h, sums = gc.scan(outer, gc.zeros_like(xs[0]), xs)
        return gc.sum(h) + gc.sum(sums * sums)

    def unrolled(W, xs):
        h, total = gc.zeros_like(xs[0]), 0.0
        for t in range(xs.shape[0]):
            for _ in range(3):
                h = gc.tanh(h @ W + xs[t])
            total = total + gc.sum(h) ** 2
        return gc.sum(h) + total
    rng = np.random.default_rng(2)
    W, xs = (rng.normal(size=(4, 4)) * 0.4).astype(dtype), rng.normal(size=(5, 4)).astype(dtype)
    np.testing.assert_allclose(gc.jit(f, backend=backend)(W, xs), unrolled(W, xs), **_tol(dtype))
    got = gc.jit(gc.grad(f, argnums=(0, 1)), backend=backend)(W, xs)
    want = gc.grad(unrolled, argnums=(0, 1))(W, xs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **_tol(dtype))


def test_graph_does_not_grow_with_length():
    def make(T):
        return gc.jit(gc.grad(rnn_scan, argnums=(0, 1)), backend="numpy").lower(
            *_params(np.float64, T=T))
    short, long = make(4), make(400)
    assert len(short.graph.nodes) == len(long.graph.nodes)
    assert len(short.as_text()) == len(long.as_text()) + len("4") - len("400") \
        or abs(len(short.as_text()) - len(long.as_text())) < 200
    body_lines = [ln for ln in long.as_text().splitlines() if "tanh" in ln]
    assert 1 <= len(body_lines) <= 3          # the step, printed inside its loop nodes only


def test_eager_and_plain_numpy_loops():
    xs = np.arange(4.0)
    carry, ys = gc.scan(lambda c, x: (c + x, c * x), 0.0, xs)
    np.testing.assert_allclose(carry, 6.0)
    np.testing.assert_allclose(ys, [0 * 0, 0 * 1, 1 * 2, 3 * 3])     # carries 0, 0, 1, 3
    w = gc.tensor(np.array(0.5), requires_grad=True)
    out = gc.fori_loop(0, 3, lambda i, c: c * w + 1.0, gc.tensor(np.array(1.0)))
    out.backward()
    # c3 = w^3 + w^2 + w + 1: d/dw = 3w^2 + 2w + 1
    np.testing.assert_allclose(w.grad, 3 * 0.25 + 2 * 0.5 + 1)


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="carry"):
        gc.jit(lambda x: gc.scan(lambda c, x: (c[:1], x), x, x))(np.ones(3))
    with pytest.raises(TypeError, match="Python ints"):
        gc.fori_loop(0.0, 3, lambda i, c: c, 1.0)
    with pytest.raises(ValueError, match="number of steps"):
        gc.jit(lambda x: gc.scan(lambda c, x: (c, x), x[0], x, length=5))(np.ones(3))
    with pytest.raises(TypeError, match=r"\(carry, y\)"):
        gc.jit(lambda x: gc.scan(lambda c, x: c, x[0], x))(np.ones(3))


LOOP_KERNELS = '''
import gradc as gc

mod = gc.Module("loop_kernels")


def rnn_loss(Wx, Wh, b, xs, h0):
    def step(h, x):
        h = gc.tanh(x @ Wx + h @ Wh + b)
        return h, gc.sum(h * h)
    h, sq = gc.scan(step, h0, xs)
    return gc.sum(h) + gc.sum(gc.fori_loop(0, 3, lambda i, s: s * 0.5 + sq, sq))


@mod.export("f32[3,4]", "f32[4,4]", "f32[4]", "f32[6,2,3]", "f32[2,4]")
def rnn_grads(Wx, Wh, b, xs, h0):
    return gc.value_and_grad(rnn_loss, argnums=(0, 1, 2, 3, 4))(Wx, Wh, b, xs, h0)
'''


def test_aot_export_of_a_loop(tmp_path):
    import importlib.util
    import sys
    (tmp_path / "loop_kernels_src.py").write_text(LOOP_KERNELS)
    spec = importlib.util.spec_from_file_location("loop_kernels_src",
                                                  tmp_path / "loop_kernels_src.py")
    src = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(src)
    args = _params(np.float32)
    want = gc.jit(src.rnn_grads, backend="numpy")(*args)
    outdir = tmp_path / "out"
    src.mod.build(outdir)
    sys.path.insert(0, str(outdir))
    try:
        import loop_kernels
        got = loop_kernels.rnn_grads(*args)
    finally:
        sys.path.remove(str(outdir))
        sys.modules.pop("loop_kernels", None)
        sys.modules.pop("_loop_kernels", None)
    for g, w in zip(gc.tree_leaves(got), gc.tree_leaves(want)):
        np.testing.assert_allclose(g, w, **_tol(np.float32))
    assert "for (int64_t s = 0; s < 6; s++)" in src.mod.c_source()


def test_c_source_and_nodes_do_not_grow_with_length():
    from gradc.cbackend import lower as L
    facts = {}
    for T in (4, 512):
        low = gc.jit(gc.grad(rnn_scan, argnums=(0, 1))).lower(*_params(np.float64, T=T))
        stats = low.compile().stats
        plan = L.lower(low.graph)
        facts[T] = (len(low.c_source), stats["nodes"], stats["kernels"], len(plan.as_text()))
    assert facts[4][1:3] == facts[512][1:3]
    assert abs(facts[4][0] - facts[512][0]) < 400         # only numbers (T, offsets) differ
    assert abs(facts[4][3] - facts[512][3]) < 400
    assert "body, scratch" in plan.as_text()               # the body's plan, inside its step


def test_loop_invariant_values_are_computed_once_outside_the_body():
    def f(W, xs):
        return gc.scan(lambda h, x: (gc.tanh(h @ W.T * 2.0 + x), None), xs[0], xs)[0]
    text = gc.jit(f).lower(np.eye(3), np.ones((5, 2, 3))).as_text()
    outer, body = text.split("scan[", 1)
    assert "transpose" in outer and "transpose" not in body.split("in (")[0]


def test_residual_stacks_are_read_in_place():
    """The loop's stacked outputs feed the reverse loop and the weight-gradient products as blocks
    of the loop's memory: the workspace holds the stacks once, not copies of them."""
    args = _params(np.float32, T=64, B=16, D=32, H=64)
    stats = gc.jit(gc.grad(rnn_scan, argnums=(0, 1, 2))).lower(*args).compile().stats
    carry_stack = 64 * 16 * 64 * 4
    assert stats["workspace_bytes"] < 4.5 * carry_stack      # 7.1 stacks when they were copied


@pytest.mark.parametrize("n", [0, 1, 3])
def test_loop_output_read_through_a_transpose_products_cannot_fold(n):
    """A loop's output in place (a block of the loop node's memory) read through a transpose that
    a loop copies (not a swap of the last two axes): the copy had no pointer to read (KeyError
    while emitting C; found by the fuzzer)."""
    def f(x1, x2, x3):
        v = gc.transpose(x1 @ x2, (2, 1, 0))
        return gc.fori_loop(0, n, lambda i, c: np.cos(c * 0.8) + x3 * 0.5, v)
    rng = np.random.default_rng(0)
    args = rng.uniform(-1, 1, (2, 2, 1)), rng.uniform(-1, 1, (1, 1)), rng.uniform(-1, 1, (1, 1, 1))
    w = rng.uniform(-1, 1, (1, 2, 2))
    vg = gc.value_and_grad(lambda *a: gc.sum(f(*a) * w), argnums=(0, 1, 2))
    got, want = gc.jit(vg)(*args), gc.jit(vg, backend="numpy")(*args)
    for g, e in zip(gc.tree_leaves(got), gc.tree_leaves(want)):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-14)
    gc.check_grad(lambda *a: gc.sum(f(*a) * w), *args)


def test_rk4_benchmark_gradient_equals_hand_written_adjoint():
    from bench import loops as B
    args = B.ode_inputs()
    want_v, want_g = B.numpy_ode(*args)
    got_v, got_g = B.gradc_ode()(*args)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-10)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_products_reverse_scans_and_mixed_dtypes(backend):
    """A weight used twice per step (its cotangent a sum of products, kept in a carry), a reverse
    scan (its per-step products stacked in reverse), and carries of two dtypes (two loop nodes)."""
    def f(W, V, xs, s):
        def step(carry, x):
            h, acc = carry
            h = gc.tanh(h @ W + x @ W + (h * s) @ V)
            return (h, acc + gc.astype(gc.sum(h), np.float32)), h
        (h, acc), hs = gc.scan(step, (xs[0] * 0.0, np.float32(0.0)), xs, reverse=True)
        return gc.sum(hs * hs) + gc.sum(h) + gc.astype(acc, np.float64)

    def unrolled(W, V, xs, s):
        h, acc, total = xs[0] * 0.0, np.float32(0.0), 0.0
        for t in reversed(range(xs.shape[0])):
            h = gc.tanh(h @ W + xs[t] @ W + (h * s) @ V)
            acc = acc + gc.astype(gc.sum(h), np.float32)
            total = total + gc.sum(h * h)
        return total + gc.sum(h) + gc.astype(acc, np.float64)
    rng = np.random.default_rng(3)
    args = (rng.normal(size=(4, 4)) * 0.3, rng.normal(size=(4, 4)) * 0.3,
            rng.normal(size=(7, 2, 4)), np.array(0.5))
    np.testing.assert_allclose(gc.jit(f, backend=backend)(*args), unrolled(*args), rtol=1e-6)
    got = gc.jit(gc.grad(f, argnums=(0, 1, 2, 3)), backend=backend)(*args)
    want = gc.grad(unrolled, argnums=(0, 1, 2, 3))(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_slice_folding_rules_keep_values(backend):
    """The simplify rules that let loop outputs be read in place (slices of flat reshapes, of
    slices, of unslices) apply only where they are exact."""
    def f(x):
        r = gc.reshape(x, (4, 6))
        u = gc.concatenate([x[:5] * 2.0, x[5:]])          # its gradient: unslices added
        return r[1:3, ::-1], r[1:3], r[1:3, 2:], x[2:20][3:9], u[4:7]
    x = np.arange(24.0)
    r = x.reshape(4, 6)
    want = (r[1:3, ::-1], r[1:3], r[1:3, 2:], x[5:11], np.concatenate([x[:5] * 2, x[5:]])[4:7])
    for got, w in zip(gc.jit(f, backend=backend)(x), want):
        np.testing.assert_array_equal(got, w)
    g = gc.jit(gc.grad(lambda x: gc.sum(f(x)[4] ** 2)), backend=backend)(x)
    np.testing.assert_allclose(g, np.where(np.arange(24) == 4, 2 * 2 * 8.0, 0)
                               + np.where((np.arange(24) >= 5) & (np.arange(24) < 7),
                                          2 * np.arange(24.0), 0))


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_a_scan_of_length_zero(backend):
    """The interpreter's loop read xs[0] to find named sizes (this session's bug: IndexError)."""
    f = gc.jit(lambda h, xs: gc.scan(lambda c, x: (c + x, c), h, xs), backend=backend)
    carry, ys = f(np.ones(3), np.zeros((0, 3)))
    np.testing.assert_array_equal(carry, np.ones(3))
    assert ys.shape == (0, 3)
