"""The transforms of API.md sections 1-2: argnums, has_aux, pytrees, static_argnums and retracing,
kwargs, higher order, jacobian / hessian, vjp / jvp, stop_gradient, tree utilities, check_grad,
lowering text, deep graphs, simplification of the reverse graph, and NEP 50 promotion."""
import numpy as np
import pytest

import gradc as gc
from conftest import assert_close

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def close(got, want, what=""):
    assert_close(np.asarray(got, np.float64), np.asarray(want, np.float64), F64, what)


def cubic_sum(x, y):
    return gc.sum(x ** 3 * y)


# ---- argnums -------------------------------------------------------------------------------------

def test_argnums_int_and_tuple(rng, backend):
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    for where, wrap in [("eager", lambda f: f), (backend, lambda f: gc.jit(f, backend=backend))]:
        g0 = wrap(gc.grad(cubic_sum))(x, y)
        assert not isinstance(g0, tuple), f"{where}: int argnums must give one gradient"
        close(g0, 3 * x ** 2 * y, where)
        g1 = wrap(gc.grad(cubic_sum, argnums=1))(x, y)
        close(g1, x ** 3, where)
        both = wrap(gc.grad(cubic_sum, argnums=(0, 1)))(x, y)
        assert isinstance(both, tuple) and len(both) == 2, where
        close(both[0], 3 * x ** 2 * y, where)
        close(both[1], x ** 3, where)
        single = wrap(gc.grad(cubic_sum, argnums=(1,)))(x, y)
        assert isinstance(single, tuple) and len(single) == 1, where
        close(single[0], x ** 3, where)


def test_grad_as_decorator_factory(rng):
    @gc.grad(argnums=(0, 1))
    def g(x, y):
        return gc.sum(x * y)

    x, y = rng.standard_normal(4), rng.standard_normal(4)
    gx, gy = g(x, y)
    close(gx, y)
    close(gy, x)

    @gc.value_and_grad(argnums=1)
    def vg(x, y):
        return gc.sum(x * y)

    value, gy = vg(x, y)
    close(value, np.sum(x * y))
    close(gy, x)


def test_jit_with_non_array_default_arguments(rng, backend):
    # Defaults the caller does not pass (a string, an int axis, None) are not traced arguments.
    def f(x, reduction="sum", axis=-1, weights=None):
        out = gc.sum(x, axis=axis) if reduction == "sum" else gc.mean(x, axis=axis)
        return out if weights is None else out * weights

    x = rng.standard_normal((2, 3))
    close(gc.jit(f, backend=backend)(x), x.sum(-1))
    close(gc.jit(f, backend=backend, static_argnums=(1, 2))(x, "mean", 0), x.mean(0))
    close(gc.jit(gc.nn.softmax, backend=backend)(x), np.exp(x) / np.exp(x).sum(-1, keepdims=True))
    y = np.array([0, 2])
    close(gc.jit(gc.nn.cross_entropy, backend=backend)(x, y),
          np.mean(np.log(np.exp(x).sum(-1)) - x[np.arange(2), y]))


def test_jit_as_decorator_both_forms(rng):
    @gc.jit
    def f(x):
        return gc.exp(x) * 2.0

    @gc.jit(backend="numpy")
    def g(x):
        return gc.exp(x) * 2.0

    x = rng.standard_normal(3)
    close(g(x), np.exp(x) * 2)
    try:
        close(f(x), np.exp(x) * 2)
    except NotImplementedError:
        pytest.skip("C backend not built yet (default backend is c)")


# ---- has_aux -------------------------------------------------------------------------------------

def test_has_aux(rng, backend):
    x = rng.standard_normal(3)

    def f(x):
        y = x * x
        return gc.sum(y), {"y": y, "mean": gc.mean(x)}

    for where, wrap in [("eager", lambda f: f), (backend, lambda f: gc.jit(f, backend=backend))]:
        grads, aux = wrap(gc.grad(f, has_aux=True))(x)
        close(grads, 2 * x, where)
        assert isinstance(aux, dict) and sorted(aux) == ["mean", "y"], where
        close(aux["y"], x * x, where)
        close(aux["mean"], np.mean(x), where)
        (value, aux), grads = wrap(gc.value_and_grad(f, has_aux=True))(x)
        close(value, np.sum(x * x), where)
        close(grads, 2 * x, where)
        close(aux["y"], x * x, where)


# ---- pytrees -------------------------------------------------------------------------------------

def test_pytree_dict_params(rng, backend):
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    X = rng.standard_normal((4, 3))

    def loss(params, X):
        return gc.sum((X @ params["W"] + params["b"]) ** 2)

    r = X @ params["W"] + params["b"]
    want = {"W": X.T @ (2 * r), "b": np.sum(2 * r, axis=0)}
    for where, wrap in [("eager", lambda f: f), (backend, lambda f: gc.jit(f, backend=backend))]:
        grads = wrap(gc.grad(loss))(params, X)
        assert isinstance(grads, dict) and sorted(grads) == ["W", "b"], f"{where}: {grads!r}"
        for k in want:
            close(grads[k], want[k], f"{where}: {k}")


def test_pytree_nested_in_and_out(rng, backend):
    a = rng.standard_normal(3)
    b = rng.standard_normal((2, 3))
    c = rng.standard_normal(2)
    tree = {"z": [a, (b, c)], "a": 2.0}

    def f(tree):
        a, (b, c) = tree["z"][0], tree["z"][1]
        return {"sum": a + b, "pair": (c * tree["a"], [gc.sum(b)])}

    out = gc.jit(f, backend=backend)(tree)
    assert isinstance(out, dict) and sorted(out) == ["pair", "sum"]
    assert isinstance(out["pair"], tuple) and isinstance(out["pair"][1], list)
    close(out["sum"], a + b)
    close(out["pair"][0], c * 2.0)
    close(out["pair"][1][0], np.sum(b))
    for leaf in gc.tree_flatten(out)[0]:
        assert isinstance(leaf, np.ndarray), f"output leaf {type(leaf)}"

    grads = gc.jit(gc.grad(lambda t: gc.sum(f(t)["sum"]) + gc.sum(f(t)["pair"][0])),
                   backend=backend)(tree)
    assert isinstance(grads["z"], list) and isinstance(grads["z"][1], tuple)
    close(grads["z"][0], np.full(3, 2.0))
    close(grads["z"][1][0], np.ones((2, 3)))
    close(grads["z"][1][1], np.full(2, 2.0))
    close(grads["a"], np.sum(c))


def test_pytree_list_and_tuple_args(rng, backend):
    xs = [rng.standard_normal(2), rng.standard_normal(2)]
    pair = (rng.standard_normal(2), rng.standard_normal(2))
    f = lambda xs, pair: gc.sum(xs[0] * xs[1]) + gc.sum(pair[0] - pair[1])
    gx, gp = gc.jit(gc.grad(f, argnums=(0, 1)), backend=backend)(xs, pair)
    assert isinstance(gx, list) and isinstance(gp, tuple)
    close(gx[0], xs[1])
    close(gx[1], xs[0])
    close(gp[0], np.ones(2))
    close(gp[1], -np.ones(2))


def test_tree_utilities():
    tree = {"b": [1, (2, 3)], "a": np.arange(2)}
    leaves, treedef = gc.tree_flatten(tree)
    assert leaves[0] is tree["a"], "dicts flatten in sorted-key order"
    assert leaves[1:] == [1, 2, 3]
    rebuilt = gc.tree_unflatten(treedef, [10, 20, 30, 40])
    assert rebuilt == {"a": 10, "b": [20, (30, 40)]}
    mapped = gc.tree_map(lambda p, g: p - 0.5 * g, {"w": 1.0, "v": [2.0]}, {"w": 2.0, "v": [4.0]})
    assert mapped == {"w": 0.0, "v": [0.0]}


# ---- static_argnums, retracing, kwargs ---------------------------------------------------------

def test_static_argnums_and_retracing(rng, backend):
    traces = []

    def f(x, n):
        traces.append(n)
        for _ in range(n):            # Python control flow on a static value unrolls
            x = x * 2.0
        return x

    jf = gc.jit(f, static_argnums=(1,), backend=backend)
    x = rng.standard_normal(3)
    close(jf(x, 2), x * 4)
    close(jf(x + 1, 2), (x + 1) * 4)
    assert len(traces) == 1, "same signature must not retrace"
    close(jf(x, 3), x * 8)
    assert len(traces) == 2, "a new static value must retrace"
    close(jf(x, 2), x * 4)
    assert len(traces) == 2, "the first signature stays cached"


def test_static_argnums_on_decorator(rng):
    @gc.jit(static_argnums=1, backend="numpy")
    def f(x, axis):
        return gc.sum(x, axis=axis)

    x = rng.standard_normal((2, 3))
    close(f(x, 0), x.sum(0))
    close(f(x, 1), x.sum(1))


def test_retrace_on_new_shape_and_dtype(rng, backend):
    traces = []

    def f(x):
        traces.append(x.shape)
        return gc.tanh(x) + 1.0

    jf = gc.jit(f, backend=backend)
    x = rng.standard_normal(3)
    jf(x)
    jf(rng.standard_normal(3))
    assert len(traces) == 1
    out = jf(rng.standard_normal((2, 3)))
    assert out.shape == (2, 3) and len(traces) == 2, "a new shape retraces"
    out = jf(x.astype(np.float32))
    assert out.dtype == np.float32 and len(traces) == 3, "a new dtype retraces"
    close(out, np.tanh(x.astype(np.float32)) + 1)
    jf(x)
    assert len(traces) == 3


def test_python_scalar_args_retrace_by_type_not_value(backend):
    traces = []

    def f(x, s):
        traces.append(1)
        return x * s

    jf = gc.jit(f, backend=backend)
    x = np.ones(2)
    close(jf(x, 2.0), [2.0, 2.0])
    close(jf(x, 3.0), [3.0, 3.0])
    assert len(traces) == 1, "a Python float is a traced (weak) scalar, not a static value"


def test_kwargs(rng, backend):
    def f(x, y, scale=1.0):
        return (x - y) * scale

    jf = gc.jit(f, backend=backend)
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    close(jf(x, y), x - y)
    close(jf(x, y=y, scale=3.0), (x - y) * 3)
    close(jf(y=y, x=x), x - y)
    g = gc.grad(lambda x, y, scale=1.0: gc.sum(f(x, y, scale) ** 2))
    close(g(x, y, scale=2.0), 2 * (x - y) * 4)


def test_each_call_returns_fresh_arrays(backend):
    jf = gc.jit(lambda x: x + 1.0, backend=backend)
    a = jf(np.zeros(3))
    b = jf(np.zeros(3))
    assert a is not b and not np.shares_memory(a, b)
    a[:] = 100
    close(jf(np.zeros(3)), np.ones(3))
    ident = gc.jit(lambda x: x, backend=backend)
    x = np.arange(3.0)
    y = ident(x)
    assert not np.shares_memory(x, y), "the output must not alias the input"


def test_scalar_outputs_are_0d_arrays(backend):
    out = gc.jit(lambda x: gc.sum(x), backend=backend)(np.ones(3))
    assert isinstance(out, np.ndarray) and out.shape == ()
    out = gc.jit(lambda x: x * 2, backend=backend)(1.5)
    assert isinstance(out, np.ndarray) and out.shape == () and float(out) == 3.0


# ---- higher order ------------------------------------------------------------------------------

def test_grad_of_grad(backend):
    d2 = gc.grad(gc.grad(lambda x: x ** 3))
    for x in [-1.5, 0.5, 2.0]:
        close(d2(x), 6 * x, "d2/dx2 x^3 = 6x")
        close(gc.jit(d2, backend=backend)(x), 6 * x)
    sin2 = gc.grad(gc.grad(gc.sin))
    sin3 = gc.grad(sin2)
    for x in [-1.0, 0.3, 2.5]:
        close(sin2(x), -np.sin(x), "sin'' = -sin")
        close(sin3(x), -np.cos(x), "sin''' = -cos")
        close(gc.jit(sin2, backend=backend)(x), -np.sin(x))


def test_grad_of_grad_inside_and_outside_jit(backend):
    f = lambda x: gc.exp(2.0 * x) * x
    want = lambda x: (4 * x + 4) * np.exp(2 * x)
    x = 0.7
    close(gc.grad(gc.jit(gc.grad(f), backend=backend))(x), want(x), "grad(jit(grad))")
    close(gc.jit(gc.grad(gc.grad(f)), backend=backend)(x), want(x), "jit(grad(grad))")


def test_jacobian_fwd_and_rev(rng, backend):
    A = rng.standard_normal((3, 4))
    x = rng.standard_normal(4)
    f = lambda x: gc.tanh(A @ x)
    want = (1 - np.tanh(A @ x) ** 2)[:, None] * A
    for mode in ("fwd", "rev"):
        close(gc.jacobian(f, mode=mode)(x), want, mode)
        close(gc.jit(gc.jacobian(f, mode=mode), backend=backend)(x), want, f"jit {mode}")
    J = gc.jacobian(lambda a, b: a * b, argnums=1)(x, 2 * x)
    close(J, np.diag(x))


def test_hessian_of_quadratic_form(rng, backend):
    A = rng.standard_normal((4, 4))
    x = rng.standard_normal(4)
    quad = lambda x: x @ A @ x
    close(gc.hessian(quad)(x), A + A.T)
    close(gc.jit(gc.hessian(quad), backend=backend)(x), A + A.T)
    close(gc.grad(quad)(x), (A + A.T) @ x)


def test_hessian_argnums(rng):
    A = rng.standard_normal((3, 3))
    f = lambda c, x: c * gc.sum(x * (A @ x))
    close(gc.hessian(f, argnums=1)(2.0, rng.standard_normal(3)), 2.0 * (A + A.T))


def test_vjp_and_jvp_outputs(rng, backend):
    x, y = rng.standard_normal(3), rng.standard_normal(3)
    f = lambda x, y: gc.sin(x) * y
    out, vjp_fn = gc.vjp(f, x, y)
    close(out, np.sin(x) * y)
    ct = rng.standard_normal(3)
    cts = vjp_fn(ct)
    assert isinstance(cts, tuple) and len(cts) == 2
    close(cts[0], ct * np.cos(x) * y)
    close(cts[1], ct * np.sin(x))
    tx, ty = rng.standard_normal(3), rng.standard_normal(3)
    out, tout = gc.jvp(f, (x, y), (tx, ty))
    close(out, np.sin(x) * y)
    close(tout, np.cos(x) * tx * y + np.sin(x) * ty)
    out, tout = gc.jit(lambda x, y, tx, ty: gc.jvp(f, (x, y), (tx, ty)), backend=backend)(
        x, y, tx, ty)
    close(tout, np.cos(x) * tx * y + np.sin(x) * ty)


def test_vjp_with_pytree_output(rng):
    x = rng.standard_normal(3)
    out, vjp_fn = gc.vjp(lambda x: {"a": x * 2, "b": gc.sum(x)}, x)
    (gx,) = vjp_fn({"a": np.ones(3), "b": np.float64(3.0)})
    close(gx, np.full(3, 5.0))


def test_stop_gradient(rng, backend):
    x = rng.standard_normal(3) + 2
    f = lambda x: gc.sum(x * gc.stop_gradient(x))
    close(gc.grad(f)(x), x)
    close(gc.jit(gc.grad(f), backend=backend)(x), x)
    close(gc.jit(f, backend=backend)(x), np.sum(x * x))
    close(gc.stop_gradient(x), x)


# ---- check_grad ----------------------------------------------------------------------------------

def test_check_grad_passes_on_correct_gradients(rng):
    x = rng.standard_normal((3, 2))
    y = rng.uniform(0.5, 2.0, 2)
    report = gc.check_grad(lambda x, y: gc.sum(gc.tanh(x) * gc.log(y)), x, y)
    assert report is not None and len(report) == 2, f"one entry per argument: {report!r}"
    report = gc.check_grad(lambda x, y: gc.sum(gc.tanh(x) * gc.log(y)), x, y, argnums=1)
    assert report is not None and len(report) == 1, f"one entry per checked argument: {report!r}"
    # float32 arguments: the default step and tolerances must suit the dtype
    gc.check_grad(lambda x: gc.sum(gc.sin(x) * x), x.astype(np.float32))


def test_check_grad_raises_on_wrong_gradient(rng):
    # An honest wrong gradient without patching the library: stop_gradient makes reverse mode
    # see d/dx [x * sg(x)] = x, while finite differences of the same function measure 2x.
    x = rng.uniform(1.0, 2.0, 3)
    with pytest.raises(gc.GradientCheckError):
        gc.check_grad(lambda x: gc.sum(x * gc.stop_gradient(x)), x)


# ---- lowering text ------------------------------------------------------------------------------

def test_lowered_text_shows_forward_and_reverse():
    f = lambda x: gc.sum(gc.sin(x) * x)
    lowered = gc.jit(gc.value_and_grad(f), backend="numpy").lower(np.ones(3))
    text = lowered.as_text()
    assert isinstance(text, str)
    assert "sin" in text, "forward node missing"
    assert "cos" in text, "reverse node (d sin = cos) missing"
    graph = lowered.graph
    computed = [n for n in graph.nodes if n.prim.name not in ("input", "const")]
    equation_lines = [line for line in text.splitlines() if " = " in line]
    assert len(equation_lines) >= len(computed), "one node a line"
    for node in computed:
        assert sum(node.prim.name in line for line in equation_lines) >= 1
    lowered.to_dot()


def test_lower_accepts_specs():
    lowered = gc.jit(lambda x, y: x @ y, backend="numpy").lower(
        gc.Spec((2, 3), "float32"), gc.Spec.parse("f32[3,4]"))
    assert "matmul" in lowered.as_text() or "dot" in lowered.as_text()
    spec = gc.Spec.parse("f64[]")
    assert spec.shape == () and spec.dtype == np.dtype(np.float64)


# ---- a deep graph: no recursion limit -----------------------------------------------------------

def test_ten_thousand_node_chain():
    steps = 3400                       # 3 nodes a step: ~10,000 forward nodes

    def chain(x):
        for _ in range(steps):
            x = gc.sin(x) * 1e-3 + x     # small steps keep the gradient O(1), far from underflow
        return gc.sum(x)

    x0 = np.array([0.1, -0.4])
    value, grad = gc.jit(gc.value_and_grad(chain), backend="numpy")(x0)
    x, d = x0.copy(), np.ones(2)
    for _ in range(steps):
        d = d * (1e-3 * np.cos(x) + 1)
        x = np.sin(x) * 1e-3 + x
    assert_close(value, np.sum(x), F64, "value")
    np.testing.assert_allclose(grad, d, rtol=1e-9)


# ---- simplification of the reverse graph --------------------------------------------------------

def test_reverse_graph_of_sum_of_product_is_the_other_input():
    x, y = np.ones((3, 4)), np.full((3, 4), 2.0)
    graph = gc.jit(gc.grad(lambda x, y: gc.sum(x * y)), backend="numpy").lower(x, y).graph
    for node in graph.nodes:
        if node.prim.name == "const":
            value = np.asarray(node.params["value"])
            assert not np.all(value == 0), f"zero constant left in the graph: {node}"
            assert not np.all(value == 1), f"constant one left in the graph: {node}"
    names = [node.prim.name for node in graph.nodes]
    assert not any(n in ("mul", "multiply") for n in names), f"a multiplication is left: {names}"
    # d/dx sum(x * y) = y: the output is the second input, passed through
    assert len(graph.outputs) == 1
    assert graph.outputs[0] is graph.inputs[1], \
        f"gradient graph is not just `y`:\n{graph.as_text()}"
    assert all(n == "input" for n in names), f"nodes beyond the inputs:\n{graph.as_text()}"


# ---- NEP 50 --------------------------------------------------------------------------------------

def test_nep50_weak_python_scalars(backend):
    out = gc.jit(lambda w, s: w * s, backend=backend)(np.ones(3, np.float32), 0.5)
    assert out.dtype == np.float32
    close(out, np.full(3, 0.5))
    out = gc.jit(lambda a: a + 1.5, backend=backend)(np.arange(3, dtype=np.int32))
    assert out.dtype == np.float64
    close(out, np.arange(3) + 1.5)
    out = gc.jit(lambda a: a + 1, backend=backend)(np.arange(3, dtype=np.int32))
    assert out.dtype == np.int32
    out = gc.jit(lambda w, v: w * v, backend=backend)(np.ones(2, np.float32), np.ones(2))
    assert out.dtype == np.float64, "a float64 array upcasts float32, as NumPy"
    g = gc.grad(lambda w: gc.sum(w * 0.5))(np.ones(3, np.float32))
    assert g.dtype == np.float32


# ---- arguments a transform does not differentiate stay what they are (API.md section 8) ----------

def test_undifferentiated_int_argument_stays_an_int():
    seen = []

    def objective(params, it):
        seen.append(type(it))
        return gc.sum(params[it % 2:] * 3.0) + float(it)
    g = gc.grad(objective)(np.array([1.0, 2.0]), 3)
    np.testing.assert_array_equal(g, [0.0, 3.0])
    assert seen == [int]
    value, g = gc.value_and_grad(objective)(np.array([1.0, 2.0]), 2)
    assert float(value) == 11.0 and g.tolist() == [3.0, 3.0]


def test_static_argnums_reach_inner_transforms():
    inner = gc.grad(lambda p, i: gc.sum(p[i:] ** 2))
    f = gc.jit(lambda p, i: inner(p, i), static_argnums=1)
    p = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(f(p, 1), [0.0, 4.0, 6.0])
    np.testing.assert_array_equal(f(p, 2), [0.0, 0.0, 6.0])


def test_repeated_and_reordered_argnums():
    f = lambda a, b: a * b * b       # noqa: E731
    ga, gb = gc.grad(f, argnums=(1, 0))(2.0, 3.0)
    assert (float(ga), float(gb)) == (12.0, 9.0)
    g1, g2 = gc.grad(f, argnums=(0, 0))(2.0, 3.0)
    assert float(g1) == float(g2) == 9.0


def test_tensor_argument_not_differentiated_stays_on_the_tape():
    t = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    g = gc.grad(lambda x, t: gc.sum(x * t * t))(np.array([3.0, 4.0]), t)
    gc.sum(g).backward()
    np.testing.assert_array_equal(t.grad, 2 * t.numpy())
