"""The gradient-hazard lint (API.md section 11): each of the five hazards is found at the user's
line with its fix, the safe forms are not, warnings come once per rule and line per jitted
function, and the project's own models give no finding (a false positive is a bug)."""
import inspect
import os
import sys
import warnings

import numpy as np
import pytest

import gradc as gc
from gradc import demo

from test_lectures import f_log, f_patterns, f_xyz, xor_init, xor_loss

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
X = gc.Spec((4, 3), "float64")


def _line(fn, text):
    lines, start = inspect.getsourcelines(fn)
    return f"test_hazards.py:{start + next(k for k, s in enumerate(lines) if text in s)}"


def where_sqrt(x):
    return gc.sum(gc.where(x > 0, gc.sqrt(x), 0.0))


def where_reciprocal(x):
    inv = 1.0 / x
    return gc.sum(gc.where(x != 0, inv, 0.0))


def log_of_softmax(x):
    return gc.sum(gc.log(gc.nn.softmax(x)))


def cs231n_loss(x):                      # the course notes' numpy softmax loss, unshifted
    e = np.exp(x)
    probs = e / np.sum(e, axis=1, keepdims=True)
    return -np.mean(np.log(probs[np.arange(4), [0, 1, 2, 0]]))


def log_of_sigmoid(x):
    return gc.sum(gc.log(1 - gc.sigmoid(x)))


def norm(x):
    return gc.sqrt(gc.sum(x ** 2))


def norm_mul(x):
    return gc.sum(gc.sqrt(gc.sum(x * x, axis=1)))


HAZARDS = [   # (function, rule, text on the line the finding names)
    (where_sqrt, "where-unsafe-branch", "gc.where"),
    (where_reciprocal, "where-unsafe-branch", "gc.where"),
    (log_of_softmax, "log-softmax", "gc.log"),
    (log_of_sigmoid, "log-sigmoid", "gc.log"),
    (norm, "norm-at-zero", "gc.sqrt"),
    (norm_mul, "norm-at-zero", "gc.sqrt"),
]


@pytest.mark.parametrize("fn, rule, text", HAZARDS, ids=[h[0].__name__ for h in HAZARDS])
@pytest.mark.parametrize("grad", [False, True], ids=["fn", "grad"])
def test_each_hazard_is_found_at_its_line(fn, rule, text, grad):
    findings = gc.lint(gc.grad(fn) if grad else fn, X)
    assert [(f.rule, f.loc) for f in findings] == [(rule, _line(fn, text))]
    assert "Fix: " in str(findings[0]) and str(findings[0]).startswith(_line(fn, text))


def test_softmax_by_hand_two_findings():
    findings = gc.lint(cs231n_loss, X)
    assert [(f.rule, f.loc) for f in findings] == [
        ("softmax-by-hand", _line(cs231n_loss, "probs =")),
        ("log-softmax", _line(cs231n_loss, "np.log"))]
    assert "gc.nn.softmax" in findings[0].fix and "gc.nn.log_softmax" in findings[1].fix


def test_the_hazards_are_real():
    """What the findings claim, checked on the interpreter: NaN gradients, -inf logs, overflow."""
    x = np.array([[-1.0, 0.0, 4.0]])
    assert np.isnan(gc.grad(where_sqrt)(x)).any()
    assert np.isnan(gc.grad(norm)(np.zeros((4, 3)))).all()
    with pytest.warns(gc.GradientHazardWarning):
        assert np.isinf(gc.jit(log_of_sigmoid, backend="numpy")(np.array([800.0])))
        assert np.isnan(gc.jit(cs231n_loss, backend="numpy")(np.full((4, 3), 800.0)))


def safe_forms(x):
    a = gc.sum(gc.where(x > 0, gc.sqrt(gc.where(x > 0, x, 1.0)), 0.0))   # the double where
    b = gc.sqrt(gc.sum(x ** 2) + 1e-12) + gc.sum(gc.nn.log_softmax(x)) + gc.logsumexp(x)
    c = gc.sum(gc.nn.softmax(x)) + gc.sum(gc.relu(x)) + gc.sum(gc.clip(x, -1, 1))
    d = gc.sum(gc.where(x > 0, gc.sqrt(gc.abs(x) + 1.0), 0.0))          # singular nowhere
    d = d + gc.sum(gc.where(x < 2, 1.0 / (x * x + 0.5), gc.log(gc.exp(x) + 1.0)))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    f = gc.sum(e / e.sum(axis=1, keepdims=True)) + gc.sum(gc.where(x > 0, x ** 2, 0.0))
    return a + b + c + d + f + gc.nn.binary_cross_entropy_with_logits(x, np.ones((4, 3)))


def test_safe_forms_give_no_finding():
    assert gc.lint(safe_forms, X) == []
    hessian = gc.hessian(lambda v: safe_forms(v.reshape(4, 3)))
    assert gc.lint(hessian, gc.Spec((12,), "float64")) == []


def test_warning_once_per_rule_and_line_per_jitted_function(backend):
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    f = gc.jit(gc.grad(where_sqrt), backend=backend)
    with pytest.warns(gc.GradientHazardWarning) as record:
        f(x)
        f(x[:2])            # a new shape traces again: no second warning
        f(x)
    hazards = [r for r in record if issubclass(r.category, gc.GradientHazardWarning)]
    assert len(hazards) == 1
    line = int(_line(where_sqrt, "gc.where").split(":")[1])
    assert (hazards[0].filename, hazards[0].lineno) == ("test_hazards.py", line)
    assert issubclass(gc.GradientHazardWarning, UserWarning)
    with pytest.warns(gc.GradientHazardWarning):
        gc.jit(where_sqrt, backend=backend)(x)     # another jitted function warns again


def test_lint_runs_nothing():
    def boom(x):
        return gc.sum(gc.log(gc.sigmoid(x)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        findings = gc.lint(boom, gc.Spec((3,), "float32"))
    assert [f.rule for f in findings] == ["log-sigmoid"]


# ---- no false positives on the project's own models ----------------------------------------------

def _examples():
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    import _common
    import gradient_check
    import linear_regression
    import logistic_regression
    import rnn_cell
    return _common, gradient_check, linear_regression, logistic_regression, rnn_cell


def _own_models():
    common, gradient_check, linear_regression, logistic_regression, rnn_cell = _examples()
    rng = np.random.default_rng(0)
    digits = (rng.standard_normal((8, 64)), rng.integers(0, 10, 8))
    cases = []
    for name, model in demo.MODELS.items():
        cases.append((name, model.loss, (model.init(rng, 64, 10),) + digits))
    blobs = (rng.standard_normal((6, 2)), (np.arange(6) % 2).astype(np.float64))
    lin = demo.init_linear(rng, 2, 1)
    cases += [
        ("binary_loss(linear)", common.binary_loss(demo.linear_scores), (lin,) + blobs),
        ("binary_loss(mlp)", common.binary_loss(demo.mlp_scores),
         (demo.init_mlp(rng, 2, 1, 8),) + blobs),
        ("linear_regression", linear_regression.loss,
         ({"w": rng.standard_normal(3), "b": np.float64(0.0)}, rng.standard_normal((5, 3)),
          rng.standard_normal(5))),
        ("log_plus_sqrt_log", gradient_check.log_plus_sqrt_log, (np.float64(2.0),)),
        ("sum_times", gradient_check.sum_times, (1.0, 2.0, 3.0)),
        ("rnn lecture_objective", rnn_cell.lecture_objective,
         (rng.standard_normal((4, 4)), rng.standard_normal((4, 3)), np.zeros(4),
          rng.standard_normal((5, 3)))),
        ("rnn fit_loss", rnn_cell.fit_loss,
         ({"W_h": rng.standard_normal((4, 4)), "W_x": rng.standard_normal((4, 3))}, np.zeros(4),
          rng.standard_normal((5, 3)), np.zeros(4))),
        ("f_xyz", f_xyz, (-2.0, 5.0, -4.0)),
        ("f_log", f_log, (np.float64(3.0),)),
        ("f_patterns", f_patterns, (3.0, -4.0, 2.0, -1.0)),
        ("xor_loss", xor_loss, (xor_init(), np.zeros((4, 2)), np.zeros(4))),
    ]
    return cases


def test_no_finding_on_the_projects_models():
    for name, loss, args in _own_models():
        assert gc.lint(gc.value_and_grad(loss), *args) == [], name


def test_the_textbook_logistic_loss_is_the_one_true_positive():
    """examples/logistic_regression.py keeps the lecture's -[y log s + (1-y) log(1-s)] on purpose,
    to show it differs from the stable form: the lint names it and nothing else."""
    logistic_regression = _examples()[3]
    args = (demo.init_linear(np.random.default_rng(0), 2, 1), np.ones((6, 2)), np.ones(6))
    findings = gc.lint(logistic_regression.lecture_loss, *args)
    assert [f.rule for f in findings] == ["log-sigmoid"]
    assert findings[0].loc.startswith("logistic_regression.py:")


def test_gradc_composites_are_not_the_users_code():
    """A hazard inside one of gradc's composites (here a stand-in compiled as if it were a gradc
    module, as np.linalg.norm is sqrt(sum(x * x))) is not reported at every user's call of it."""
    namespace = {"gc": gc}
    source = "def norm(x):\n    return gc.sqrt(gc.sum(x * x))\n"
    exec(compile(source, os.path.join(os.path.dirname(gc.__file__), "composites_stand_in.py"),
                 "exec"), namespace)
    composite = namespace["norm"]
    assert gc.lint(lambda x: composite(x) + gc.sum(x), X) == []
    assert [f.rule for f in gc.lint(lambda x: gc.sqrt(gc.sum(x * x)), X)] == ["norm-at-zero"]
    assert [f.rule for f in gc.lint(lambda x: gc.log(gc.nn.softmax(x)), X)] == ["log-softmax"]
