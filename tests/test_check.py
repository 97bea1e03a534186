"""gc.check (API.md section 11): C, interpreter and float64 central differences in one call; a
planted bug in one C form is named by its node, op, pass and line (bisection of the schedule)."""
import inspect

import numpy as np
import pytest

import gradc as gc
from gradc import primitives
from gradc.crosscheck import _break_c_form
from conftest import _c_backend_skip_reason

pytestmark = pytest.mark.skipif(_c_backend_skip_reason() is not None, reason="needs the C backend")


def _line(fn, text):
    lines, start = inspect.getsourcelines(fn)
    return f"test_check.py:{start + next(k for k, s in enumerate(lines) if text in s)}"


def model(W, b, X, y):
    z = X @ W + b
    h = gc.tanh(z)
    scores = gc.exp(h) * 2.0
    return gc.nn.cross_entropy(scores, y)


def _args(dtype, rng):
    return (rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype),
            rng.standard_normal((5, 3)).astype(dtype), rng.integers(0, 4, 5))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_report_per_argument(dtype, rng):
    report = gc.check(model, *_args(dtype, rng))
    assert report.ok and report.backends_agree and report.gradients_ok
    assert [a.name for a in report.arguments] == ["W", "b", "X"]
    assert [a.fd_points for a in report.arguments] == [12, 4, 15]
    assert all(a.dtype == np.dtype(dtype).name for a in report.arguments)
    assert max(a.grad_vs_fd_rel for a in report.arguments) < (1e-3 if dtype == np.float32 else 1e-6)
    assert "gc.check(model): ok" in repr(report)


def test_pytrees_and_several_outputs(rng):
    fn = lambda p: {"a": gc.sin(p["x"]) * p["w"], "b": gc.sum(p["x"] ** 2)}   # noqa: E731
    report = gc.check(fn, {"w": rng.standard_normal(3), "x": rng.standard_normal(3)})
    assert list(report.outputs) == ["output['a']", "output['b']"]
    assert [a.name for a in report.arguments] == ["p['w']", "p['x']"]


def test_planted_forward_bug_is_named(rng):
    args = _args(np.float64, rng)
    with _break_c_form("exp", "(exp{f}({0}) * 1.01{f})"):
        with pytest.raises(gc.CheckError) as info:
            gc.check(model, *args)
    report = info.value.report
    assert not report.backends_agree and not report.ok
    d = report.divergence
    assert (d.op, d.phase, d.loc) == ("exp", "the forward pass", _line(model, "gc.exp"))
    assert d.c_value == pytest.approx(d.interpreter_value * 1.01)
    assert "first diverging node: `exp` in the forward pass at test_check.py" in str(info.value)
    assert primitives.exp.c == "exp{f}({0})"                   # restored
    assert gc.check(model, *args).ok                           # and the real kernel is back


def layer(W, X):
    h = X @ W
    return gc.sum(gc.tanh(h))


def test_planted_gradient_bug_is_named(rng):
    """tanh's derivative is 1 - out * out: a broken `sub` is only in the gradient of tanh."""
    args = (rng.standard_normal((3, 4)), rng.standard_normal((5, 3)))
    with _break_c_form("sub", "({0} - 1.001 * {1})"):
        report = gc.check(layer, *args, raise_on_failure=False)
    d = report.divergence
    assert (d.op, d.phase, d.loc) == ("sub", "the gradient of tanh", _line(layer, "gc.tanh"))
    assert report.outputs["output"] < 1e-12 and not report.backends_agree   # values agree


def test_wrong_gradient_rule_fails_against_finite_differences(rng, monkeypatch):
    """Both backends run the same wrong rule: they agree, central differences do not."""
    monkeypatch.setattr(primitives.sin, "partials", lambda x, out, **_: [gc.cos(x) * 1.5])
    report = gc.check(lambda x: gc.sum(gc.sin(x)), rng.standard_normal(4), raise_on_failure=False)
    assert report.backends_agree and not report.gradients_ok
    assert not report.arguments[0].ok and report.divergence is None
    with pytest.raises(gc.CheckError, match="gradients differ from central differences"):
        gc.check(lambda x: gc.sum(gc.sin(x)), rng.standard_normal(4))


def test_tolerances_can_be_given(rng, monkeypatch):
    """A tolerance loose enough hides a wrong rule: the report follows the tolerances given."""
    monkeypatch.setattr(primitives.sin, "partials", lambda x, out, **_: [gc.cos(x) * 1.001])
    x = rng.standard_normal(4)
    assert not gc.check(lambda v: gc.sum(gc.sin(v)), x, raise_on_failure=False).ok
    loose = gc.check(lambda v: gc.sum(gc.sin(v)), x, fd_tol={np.float64: (1e-2, 1e-2)})
    assert loose.ok
