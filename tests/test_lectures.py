"""The lectures' worked examples (/work/shared/lectures), with the numbers the lectures give.

Expected values are either printed in the lectures or closed forms derived there.
"""
import numpy as np
import pytest

import gradc as gc
from conftest import assert_close

F64 = np.dtype(np.float64)


def close(got, want, what=""):
    assert_close(np.asarray(got, np.float64), np.asarray(want, np.float64), F64, what)


# ---- f(x, y, z) = (x + y) z at (-2, 5, -4)  (backpropagation, a simple example) -----------------

def f_xyz(x, y, z):
    q = x + y
    return q * z


def test_simple_example_grad(backend):
    args = (-2.0, 5.0, -4.0)
    close(f_xyz(*args), -12.0)
    for where, fn in [("eager", gc.grad(f_xyz, argnums=(0, 1, 2))),
                      (f"jit[{backend}]", gc.jit(gc.grad(f_xyz, argnums=(0, 1, 2)),
                                                 backend=backend))]:
        grads = fn(*args)
        assert isinstance(grads, tuple) and len(grads) == 3, where
        close(grads, (-4.0, -4.0, 3.0), where)   # df/dx = z, df/dy = z, df/dz = x + y
    value, grads = gc.jit(gc.value_and_grad(f_xyz, argnums=(0, 1, 2)), backend=backend)(*args)
    close(value, -12.0)
    close(grads, (-4.0, -4.0, 3.0))


def test_simple_example_tensor_backward():
    x, y, z = (gc.tensor(v, requires_grad=True) for v in (-2.0, 5.0, -4.0))
    f = f_xyz(x, y, z)
    assert isinstance(f, gc.Tensor)
    assert f.item() == -12.0
    f.backward()
    close(x.grad, -4.0)
    close(y.grad, -4.0)
    close(z.grad, 3.0)


# ---- the PyTorch notebook: Y = X W + b, Y.backward(ones) ----------------------------------------

def test_notebook_matmul_add_backward():
    X = gc.tensor([[2.0, 2.0], [2.0, 2.0]], requires_grad=True)
    W = gc.tensor([[0.5, 0.5], [0.5, 0.5]], requires_grad=True)
    b = gc.tensor([4.0], requires_grad=True)
    Y = X @ W + b
    assert isinstance(Y, gc.Tensor)
    close(Y.numpy(), [[6.0, 6.0], [6.0, 6.0]])
    Y.backward(np.ones((2, 2)))
    close(W.grad, np.full((2, 2), 4.0))
    close(X.grad, np.full((2, 2), 1.0))
    assert np.shape(b.grad) == (1,), f"b.grad has shape {np.shape(b.grad)}, b has shape (1,)"
    close(b.grad, [4.0])


def test_notebook_same_through_vjp(backend):
    X = np.full((2, 2), 2.0)
    W = np.full((2, 2), 0.5)
    b = np.array([4.0])

    def affine(X, W, b):
        return gc.add(gc.matmul(X, W), b)

    Y, vjp_fn = gc.vjp(affine, X, W, b)
    gX, gW, gb = vjp_fn(np.ones((2, 2)))
    close(Y, np.full((2, 2), 6.0))
    close(gW, np.full((2, 2), 4.0))
    close(gX, np.ones((2, 2)))
    close(gb, [4.0])
    # the same through gc.grad of the sum, compiled
    grads = gc.jit(gc.grad(lambda X, W, b: gc.sum(affine(X, W, b)), argnums=(0, 1, 2)),
                   backend=backend)(X, W, b)
    close(grads[0], np.ones((2, 2)))
    close(grads[1], np.full((2, 2), 4.0))
    close(grads[2], [4.0])


# ---- f(x) = log x + sqrt(log x): forward and reverse mode ----------------------------------------

def f_log(x):
    y = gc.log(x)
    return y + gc.sqrt(y)


@pytest.mark.parametrize("x", [2.0, 3.0, np.e, 10.0])
def test_log_sqrt_log_forward_and_reverse(x, backend):
    want_value = np.log(x) + np.sqrt(np.log(x))
    want_grad = 1 / x + 1 / (2 * x * np.sqrt(np.log(x)))
    close(f_log(np.float64(x)), want_value)
    close(gc.grad(f_log)(x), want_grad, "reverse mode")
    value, tangent = gc.jvp(f_log, (np.float64(x),), (np.float64(1.0),))
    close(value, want_value)
    close(tangent, want_grad, "forward mode")
    close(gc.jit(gc.grad(f_log), backend=backend)(x), want_grad, f"jit[{backend}]")
    t = gc.tensor(x, requires_grad=True)
    f_log(t).backward()
    close(t.grad, want_grad, "Tensor.backward")


def test_log_sqrt_log_vectorised(backend):
    x = np.array([1.5, 2.0, 5.0, 20.0])
    want = 1 / x + 1 / (2 * x * np.sqrt(np.log(x)))
    close(gc.jit(gc.grad(lambda x: gc.sum(f_log(x))), backend=backend)(x), want)


# ---- gradients add at fork branches: L = e^x + x^2 and L = e^x * x^2 ----------------------------

@pytest.mark.parametrize("x", [-1.5, 0.0, 0.7, 2.0])
def test_fork_sum_and_product(x, backend):
    L_sum = lambda x: gc.exp(x) + x ** 2
    L_prod = lambda x: gc.exp(x) * x ** 2
    for where, grad in [("eager", gc.grad), (f"jit[{backend}]",
                                              lambda f: gc.jit(gc.grad(f), backend=backend))]:
        close(grad(L_sum)(x), np.exp(x) + 2 * x, f"{where}: d/dx (e^x + x^2)")
        close(grad(L_prod)(x), np.exp(x) * 2 * x + np.exp(x) * x ** 2,
              f"{where}: d/dx (e^x x^2)")
    t = gc.tensor(x, requires_grad=True)
    L_prod(t).backward()
    close(t.grad, np.exp(x) * 2 * x + np.exp(x) * x ** 2, "Tensor.backward")


# ---- patterns in backward flow: f = 2 (x y + max(z, w)) -----------------------------------------

def f_patterns(x, y, z, w):
    return 2 * (x * y + gc.maximum(z, w))


def test_backward_flow_patterns(backend):
    # add distributes, max routes to the larger input, mul switches its inputs
    x, y, z, w = 3.0, -4.0, 2.0, -1.0
    want_value = 2 * (x * y + max(z, w))                    # -20
    want = (2 * y, 2 * x, 2.0, 0.0)                         # (-8, 6, 2, 0)
    close(f_patterns(x, y, z, w), want_value)
    grads = gc.grad(f_patterns, argnums=(0, 1, 2, 3))(x, y, z, w)
    close(grads, want, "eager")
    value, grads = gc.jit(gc.value_and_grad(f_patterns, argnums=(0, 1, 2, 3)),
                          backend=backend)(x, y, z, w)
    close(value, -20.0)
    close(grads, want, f"jit[{backend}]")
    # the max gate routes to whichever input is larger
    grads = gc.grad(f_patterns, argnums=(2, 3))(x, y, -3.0, 1.0)
    close(grads, (0.0, 2.0), "max routes to w")


# ---- linear regression: grad_w (w.x + b - y)^2 = 2 (w.x + b - y) x -------------------------------

def test_linear_regression_gradient(rng, backend):
    x = rng.standard_normal(5)
    w = rng.standard_normal(5)
    b, y = 0.3, -1.2

    def loss(w, b, x, y):
        return (gc.dot(w, x) + b - y) ** 2

    r = w @ x + b - y
    for where, fn in [("eager", gc.grad(loss, argnums=(0, 1))),
                      (f"jit[{backend}]", gc.jit(gc.grad(loss, argnums=(0, 1)), backend=backend))]:
        gw, gb = fn(w, b, x, y)
        close(gw, 2 * r * x, where)
        close(gb, 2 * r, where)

    # the batch version: L = mean over samples; gradient 2 E[(w.x + b - y) x]
    X = rng.standard_normal((8, 5))
    Y = rng.standard_normal(8)
    batch_loss = lambda w, b: gc.mean((X @ w + b - Y) ** 2)
    R = X @ w + b - Y
    gw, gb = gc.jit(gc.grad(batch_loss, argnums=(0, 1)), backend=backend)(w, b)
    close(gw, 2 * np.mean(R[:, None] * X, axis=0))
    close(gb, 2 * np.mean(R))


# ---- softmax regression: grad_W = (softmax(z) - onehot(y)) x^T / B ------------------------------

@pytest.mark.parametrize("formulation", ["cross_entropy", "index_log_softmax"])
def test_softmax_regression_gradient(formulation, rng, backend):
    B, D, C = 6, 4, 3
    X = rng.standard_normal((D, B))          # columns are samples, as in the lecture (W x + b)
    W = rng.standard_normal((C, D))
    b = rng.standard_normal((C, 1))
    y = rng.integers(0, C, B)

    def loss(W, b):
        Z = W @ X + b                        # (C, B)
        if formulation == "cross_entropy":
            return gc.nn.cross_entropy(Z.T, y)
        # the lecture's graph: index(log(softmax(add(matmul(W, x), b))), y)
        return -gc.mean(gc.nn.log_softmax(Z, axis=0)[y, np.arange(B)])

    Z = W @ X + b
    P = np.exp(Z - Z.max(axis=0)) / np.exp(Z - Z.max(axis=0)).sum(axis=0)
    onehot = np.eye(C)[y].T                  # (C, B)
    want_W = (P - onehot) @ X.T / B
    want_b = np.mean(P - onehot, axis=1, keepdims=True)
    for where, fn in [("eager", gc.grad(loss, argnums=(0, 1))),
                      (f"jit[{backend}]", gc.jit(gc.grad(loss, argnums=(0, 1)), backend=backend))]:
        gW, gb = fn(W, b)
        close(gW, want_W, where)
        close(gb, want_b, where)


# ---- an MLP learns XOR (linear models cannot) ----------------------------------------------------

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def xor_init(hidden=4, seed=0):
    r = np.random.default_rng(seed)
    return {"W1": r.standard_normal((2, hidden)), "b1": np.full(hidden, 0.1),
            "W2": r.standard_normal(hidden) / np.sqrt(hidden), "b2": np.float64(0.0)}


def xor_logits(params, X):
    h = gc.relu(X @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def xor_loss(params, X, y):
    return gc.nn.binary_cross_entropy_with_logits(xor_logits(params, X), y)


def xor_manual_grads(p, X, y):
    """Backprop written out by hand, as in the lectures."""
    z = X @ p["W1"] + p["b1"]
    h = np.maximum(z, 0)
    o = h @ p["W2"] + p["b2"]
    d = (1 / (1 + np.exp(-o)) - y) / len(y)
    dh = np.outer(d, p["W2"]) * (z > 0)
    return {"W1": X.T @ dh, "b1": dh.sum(0), "W2": h.T @ d, "b2": d.sum()}


def test_xor_first_step_gradients_match_hand_backprop(backend):
    params = xor_init()
    value, grads = gc.jit(gc.value_and_grad(xor_loss), backend=backend)(params, XOR_X, XOR_Y)
    assert isinstance(grads, dict) and sorted(grads) == ["W1", "W2", "b1", "b2"]
    want = xor_manual_grads(params, XOR_X, XOR_Y)
    for k in want:
        close(grads[k], want[k], f"grad of {k}")


def test_mlp_learns_xor(backend):
    params = xor_init()
    step = gc.jit(gc.value_and_grad(xor_loss, argnums=0), backend=backend)
    lr = 0.5
    for _ in range(400):
        loss, grads = step(params, XOR_X, XOR_Y)
        params = gc.tree_map(lambda p, g: p - lr * g, params, grads)
    final = float(gc.jit(xor_loss, backend=backend)(params, XOR_X, XOR_Y))
    assert final < 0.05, f"XOR loss after training: {final}"
    predictions = gc.jit(xor_logits, backend=backend)(params, XOR_X) > 0
    np.testing.assert_array_equal(predictions, XOR_Y > 0.5)
