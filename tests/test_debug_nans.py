"""debug_nans (API.md section 11): a NaN or Inf made inside a compiled call is named by its node,
op, pass and the user's line, on both backends; nothing is checked unless asked."""
import inspect

import numpy as np
import pytest

import gradc as gc


def _line_of(fn, text):
    """file:line of the line of fn's source that contains text."""
    lines, start = inspect.getsourcelines(fn)
    for k, line in enumerate(lines):
        if text in line:
            return f"test_debug_nans.py:{start + k}"
    raise AssertionError(text)


def sqrt_loss(x):
    h = gc.sqrt(x)
    return gc.sum(h * 2.0)


def log_shifted(x):
    y = x - 1.0
    return gc.log(y) * 3.0


def masked_log(x):
    return gc.sum(gc.where(x > 0, gc.log(gc.where(x > 0, x, 1.0)), 0.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_nan_named_with_op_pass_and_line(backend, dtype):
    f = gc.jit(log_shifted, backend=backend, debug_nans=True)
    np.testing.assert_allclose(f(np.array([2.0, 3.0], dtype)), 3 * np.log([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(gc.NonFiniteError) as info:
        f(np.array([3.0, 1.0], dtype))
    e = info.value
    assert isinstance(e, FloatingPointError)
    assert (e.op, e.phase, e.loc) == ("log", "the forward pass", _line_of(log_shifted, "gc.log"))
    text = str(e)
    assert "log_shifted returned inf" in text and "`log` in the forward pass" in text
    assert "log(0.0) = -inf at [1] (1 of 2 elements)" in text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradient_only_nan_names_the_rule(backend, dtype):
    f = gc.jit(gc.value_and_grad(sqrt_loss), backend=backend, debug_nans=True)
    value, grad = f(np.array([1.0, 4.0], dtype))          # finite: no error, right values
    np.testing.assert_allclose(grad, [1.0, 0.5], rtol=1e-6)
    with pytest.raises(gc.NonFiniteError) as info:
        f(np.array([1.0, 0.0, 4.0], dtype))
    e = info.value
    assert e.phase == "the gradient of sqrt"
    assert e.loc == _line_of(sqrt_loss, "gc.sqrt")
    assert e.node.phase == "rev"
    assert "output[1]" in str(e) and "in the gradient of sqrt at" in str(e)


def test_non_finite_inputs_pass_through(backend):
    f = gc.jit(log_shifted, backend=backend, debug_nans=True)
    out = f(np.array([np.nan, 3.0]))
    assert np.isnan(out[0]) and np.isfinite(out[1])


@pytest.mark.filterwarnings("ignore::gradc.GradientHazardWarning")   # the masked log, on purpose
def test_masked_inf_is_not_the_origin(backend):
    """A where that never picks the inf it computed is not blamed; the later real origin is."""
    def fn(x):
        safe = gc.where(x > 0, gc.log(x), 0.0)      # log(0) = -inf, masked
        return safe + 1.0 / (x - 2.0)               # x = 2: the real inf
    f = gc.jit(fn, backend=backend, debug_nans=True)
    assert np.isfinite(f(np.array([0.0, 1.0]))).all()
    with pytest.raises(gc.NonFiniteError) as info:
        f(np.array([0.0, 2.0]))
    assert info.value.op == "div" and info.value.phase == "the forward pass"


def test_off_by_default_and_env_switch(monkeypatch):
    x = np.array([1.0, 0.0])
    monkeypatch.delenv("GRADC_DEBUG_NANS", raising=False)
    plain = gc.jit(gc.grad(sqrt_loss), backend="numpy")
    assert np.isinf(plain(x)).any()
    monkeypatch.setenv("GRADC_DEBUG_NANS", "1")
    with pytest.raises(gc.NonFiniteError, match="gradient of sqrt"):
        gc.jit(gc.grad(sqrt_loss), backend="numpy")(x)
    assert np.isinf(gc.jit(gc.grad(sqrt_loss), backend="numpy", debug_nans=False)(x)).any()


def test_safe_double_where_is_finite(backend):
    f = gc.jit(gc.grad(masked_log), backend=backend, debug_nans=True)
    np.testing.assert_allclose(f(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 0.5])


def test_lowered_compile_keeps_the_setting():
    compiled = gc.jit(log_shifted, debug_nans=True, backend="numpy").lower(np.ones(2)).compile()
    with pytest.raises(gc.NonFiniteError):
        compiled(np.array([1.0, 2.0]))


def test_nan_only_in_c_points_at_gc_check():
    """A C kernel that makes a NaN the interpreter does not: the replay finds no origin and says
    the backends disagree (a planted bug in tanh's C form)."""
    from conftest import _c_backend_skip_reason
    from gradc.crosscheck import _break_c_form
    if _c_backend_skip_reason() is not None:
        pytest.skip("needs the C backend")
    with _break_c_form("tanh", "(tanh{f}({0}) * (0.0{f} / 0.0{f}))"):
        f = gc.jit(lambda x: gc.tanh(x) + 1.0, debug_nans=True)
        with pytest.raises(gc.NonFiniteError, match="the backends disagree; gc.check"):
            f(np.ones(3))


def test_pickled_jit_keeps_debug_nans():
    cloudpickle = pytest.importorskip("cloudpickle")
    f = cloudpickle.loads(cloudpickle.dumps(gc.jit(lambda x: gc.log(x), debug_nans=True,
                                                   backend="numpy")))
    assert f.debug_nans
    with pytest.raises(gc.NonFiniteError):
        f(np.array([0.0]))
