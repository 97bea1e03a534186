"""gc.optim (API.md section 12): closed-form updates, eager and under gc.jit on both backends, a
whole training step compiled into one call, and torch.optim step for step where torch is
installed (that part is skipped without it)."""
import numpy as np
import pytest

import gradc as gc
from conftest import FLOAT_DTYPES, assert_close

STEPS = 5


def _params(dtype):
    r = np.random.default_rng(0)
    return {"W": r.standard_normal((3, 4)).astype(dtype), "b": r.standard_normal(4).astype(dtype)}


def _grads(dtype):
    r = np.random.default_rng(1)
    return [{"W": r.standard_normal((3, 4)).astype(dtype), "b": r.standard_normal(4).astype(dtype)}
            for _ in range(STEPS)]


# ---- the updates written out with NumPy, as torch.optim's documentation states them -----------

def sgd_reference(p, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    p, buf = p.astype(np.float64), None
    for g in grads:
        g = g.astype(np.float64) + weight_decay * p
        if momentum:
            buf = g if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adam_reference(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
    p = p.astype(np.float64)
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = g.astype(np.float64)
        p = p * (1 - lr * weight_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


CASES = {
    "sgd": (dict(lr=0.1), sgd_reference, "SGD"),
    "sgd_momentum": (dict(lr=0.1, momentum=0.9), sgd_reference, "SGD"),
    "sgd_nesterov_decay": (dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
                           sgd_reference, "SGD"),
    "adam": (dict(lr=0.01), adam_reference, "Adam"),
    "adamw": (dict(lr=0.01, b1=0.8, b2=0.99, eps=1e-6, weight_decay=0.1), adam_reference,
              "AdamW"),
}


def make(case):
    kwargs, reference, _ = CASES[case]
    factory = gc.optim.adam if reference is adam_reference else gc.optim.sgd
    return factory(**kwargs), kwargs, reference


def run(opt, params, grads, update):
    state = opt.init(params)
    for g in grads:
        params, state = update(params, g, state)
    return params, state


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("where", ["eager", "numpy", "c"])
def test_updates_match_closed_form(case, where, dtype):
    opt, kwargs, reference = make(case)
    params, grads = _params(dtype), _grads(dtype)
    update = opt.update if where == "eager" else gc.jit(opt.update, backend=where)
    got, state = run(opt, params, grads, update)
    assert int(state["count"]) == STEPS
    for name in params:
        assert got[name].dtype == dtype, f"{name} changed dtype to {got[name].dtype}"
        want = reference(params[name], [g[name] for g in grads], **kwargs)
        # float32 rounds at every step: five steps of float32 arithmetic, not one
        tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got[name], want, err_msg=f"{case} {where} {name}", **tol)


def test_inputs_are_not_modified():
    opt = gc.optim.adam(0.1)
    params, grads = _params(np.float64), _grads(np.float64)[0]
    state = opt.init(params)
    copies = [{k: v.copy() for k, v in t.items()} for t in (params, grads)]
    opt.update(params, grads, state)
    for original, copy in zip((params, grads), copies):
        for k in original:
            np.testing.assert_array_equal(original[k], copy[k])


def test_learning_rate_schedule_traces():
    """lr may be a function of the step count, written with gradc ops (here a decay)."""
    opt = gc.optim.sgd(lambda count: 0.5 * gc.power(0.5, gc.astype(count, np.float64)))
    p = np.array([1.0])
    state = opt.init(p)
    update = gc.jit(opt.update, backend="c")
    for _ in range(3):
        p, state = update(p, np.array([1.0]), state)
    np.testing.assert_allclose(p, [1.0 - 0.5 - 0.25 - 0.125])


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_whole_training_step_is_one_compiled_call(backend):
    """Loss, gradients and Adam update in one gc.jit: the loss falls, and the compiled step equals
    the same step run eagerly."""
    r = np.random.default_rng(0)
    X = r.standard_normal((32, 5)).astype(np.float32)
    y = (X @ r.standard_normal(5) > 0).astype(np.int64)
    params = {"W": np.zeros((5, 2), np.float32), "b": np.zeros(2, np.float32)}
    opt = gc.optim.adam(0.05)

    def loss(params, X, y):
        return gc.nn.cross_entropy(X @ params["W"] + params["b"], y)

    def step(params, state, X, y):
        value, grads = gc.value_and_grad(loss)(params, X, y)
        params, state = opt.update(params, grads, state)
        return params, state, value

    compiled = gc.jit(step, backend=backend)
    p_c, s_c = params, opt.init(params)
    p_e, s_e = params, opt.init(params)
    losses = []
    for _ in range(30):
        p_c, s_c, value = compiled(p_c, s_c, X, y)
        p_e, s_e, _ = step(p_e, s_e, X, y)
        losses.append(float(value))
    assert losses[-1] < 0.5 * losses[0], losses
    for k in params:
        assert_close(p_c[k], p_e[k].astype(np.float64), np.float32, k)


@pytest.mark.parametrize("bad, match", [
    (lambda: gc.optim.sgd(-0.1), "lr must be a finite number"),
    (lambda: gc.optim.sgd(0.1, nesterov=True), "nesterov=True needs a momentum"),
    (lambda: gc.optim.adam(b2=1.0), "b2 must lie in"),
    (lambda: gc.optim.adam().init({"n": np.arange(3)}), "parameters must be float arrays"),
])
def test_bad_hyperparameters_raise(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        bad()


# ---- against torch.optim, where torch is installed ------------------------------------------------

@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(case):
    torch = pytest.importorskip("torch")
    opt, kwargs, reference = make(case)
    params, grads = _params(np.float64), _grads(np.float64)
    got, _ = run(opt, params, grads, gc.jit(opt.update, backend="c"))
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    torch_kwargs = dict(kwargs)
    if "b1" in torch_kwargs or reference is adam_reference:
        torch_kwargs["betas"] = (torch_kwargs.pop("b1", 0.9), torch_kwargs.pop("b2", 0.999))
    if CASES[case][2] == "AdamW":
        torch_kwargs.setdefault("weight_decay", 0.0)
    torch_opt = getattr(torch.optim, CASES[case][2])(list(tensors.values()), **torch_kwargs)
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        torch_opt.step()
    for k in params:
        np.testing.assert_allclose(got[k], tensors[k].detach().numpy(), rtol=1e-12, atol=1e-14,
                                   err_msg=f"{case} {k} after {STEPS} steps")
