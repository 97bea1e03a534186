"""Runs every script in examples/ with small sizes on each backend and checks what it returns."""
from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

import gradc as gc

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _c_backend_skip_reason():
    """Why the default (C) backend cannot run here, or None when it can."""
    try:
        gc.jit(lambda x: x * 2.0)(np.ones(3))
    except NotImplementedError as exc:
        return f"the C backend is not implemented yet: {exc}"
    except gc.CompileError as exc:
        return "no working C compiler: " + (str(exc).splitlines() or [repr(exc)])[0]
    return None


@pytest.fixture(scope="module", params=["numpy", "c"])
def backend(request):
    if request.param == "c":
        reason = _c_backend_skip_reason()
        if reason:
            pytest.skip(reason)
    return request.param


def run_example(name, *argv):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    return importlib.import_module(name).main(list(argv))


def test_linear_regression(backend):
    r = run_example("linear_regression", "--steps", "80", "--backend", backend)
    assert r["grad_formula_error"] < 1e-4   # gradc's gradient is the lecture's formula
    assert r["loss"] < 1e-3                 # noise variance is 1e-4
    assert r["w_error"] < 0.01


def test_logistic_regression(backend):
    r = run_example("logistic_regression", "--steps", "100", "--backend", backend)
    assert r["accuracy"] > 0.9
    assert r["loss"] < 0.3
    assert r["loss_form_gap"] < 1e-4        # stable BCE equals the sigmoid textbook form


def test_softmax_regression(backend):
    r = run_example("softmax_regression", "--steps", "150", "--backend", backend)
    assert r["test_accuracy"] > 0.9
    assert r["train_loss"] < 0.4


def test_svm_hinge(backend):
    r = run_example("svm_hinge", "--steps", "150", "--backend", backend)
    assert r["test_accuracy"] > 0.85
    assert r["losses"][-10:].mean() < r["losses"][:10].mean()


def test_paw_network(backend):
    r = run_example("paw_network", "--steps", "300", "--backend", backend)
    assert r["linear_accuracy"] <= 2 / 3 + 1e-9      # a linear model cannot get all three
    np.testing.assert_allclose(r["lecture_scores"], [0.5, -0.5, 0.5], atol=1e-6)
    assert r["lecture_accuracy"] == 1.0
    assert r["trained_accuracy"] == 1.0


def test_xor_mlp(backend):
    r = run_example("xor_mlp", "--steps", "300", "--backend", backend)
    assert r["linear"]["accuracy"] <= 0.75
    assert r["mlp"]["accuracy"] == 1.0
    assert r["mlp"]["loss"] < 0.1


def test_rnn_cell(backend):
    r = run_example("rnn_cell", "--hidden", "4", "--seq-len", "3", "--steps", "60",
                    "--backend", backend)
    # check_grad raises GradientCheckError on a mismatch; the report still says how close it was
    assert r["report"].ok and len(r["report"]) == 2
    assert max(row["max_abs_err"] for row in r["report"]) < 1e-6
    assert r["loss_end"] < 0.5 * r["loss_start"]


def test_gradient_check(backend):
    r = run_example("gradient_check", "--backend", backend)
    for case in r.values():
        np.testing.assert_allclose(case["grads"], case["expected"], rtol=1e-6)
        assert case["report"].ok and len(case["report"]) == len(case["expected"])
    assert r["(x + y) z"]["grads"] == (-4.0, -4.0, 3.0)


def test_mlp_adam_dropout(backend):
    r = run_example("mlp_adam_dropout", "--steps", "150", "--backend", backend)
    assert r["test_accuracy"] > 0.9
    assert r["losses"][-20:].mean() < 0.3 * r["losses"][:20].mean()


def test_mlp_adam_dropout_same_run_on_both_backends():
    """The random numbers (initialisation, dropout masks) are made in the compiled code: the C
    and interpreted runs see the same masks, so their losses agree step by step."""
    if _c_backend_skip_reason():
        pytest.skip("no C backend")
    c = run_example("mlp_adam_dropout", "--steps", "30", "--backend", "c")
    interpreted = run_example("mlp_adam_dropout", "--steps", "30", "--backend", "numpy")
    np.testing.assert_allclose(c["losses"], interpreted["losses"], rtol=1e-4)


def test_when_gradients_go_wrong(backend, capsys):
    r = run_example("when_gradients_go_wrong", "--backend", backend)
    assert r["nan at 1.0"] == ("div", "the gradient of sqrt", "gradient_check.py:17")
    assert r["nan at 0.5"] == ("sqrt", "the forward pass", "gradient_check.py:17")
    assert r["findings"] == ["softmax-by-hand", "log-softmax"]
    assert r["check_ok"] and r["cache_info"] == (1, 2, 2)
    out = capsys.readouterr().out
    assert sum(line.startswith("loss ") for line in out.splitlines()) == 3
    assert "new shape for argument X: (16, 64) was (32, 64)" in out
