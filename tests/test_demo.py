"""`gradc demo` (gradc.demo): a short run on the interpreted engine trains sensible models."""
from __future__ import annotations

import io

import numpy as np
import pytest

from gradc import demo
from gradc.datasets import load_digits, train_test_split


def test_load_digits():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert 0.0 == X.min() and X.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_train_test_split_is_deterministic_and_disjoint():
    X, y = load_digits()
    a = train_test_split(X, y, test_frac=0.25, seed=3)
    b = train_test_split(X, y, test_frac=0.25, seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    X_train, X_test, y_train, y_test = a
    assert len(X_test) == 449 and len(X_train) == 1348 and len(y_train) == 1348
    c = train_test_split(X, y, test_frac=0.25, seed=4)
    assert not np.array_equal(a[1], c[1])


def test_demo_short_run_on_the_interpreted_engine():
    lines = []
    results = demo.run(engines=("numpy",), steps=120, progress=False, log=lines.append)
    assert lines == []                                   # nothing went wrong worth a note
    softmax = results["models"]["softmax_regression"]["engines"]["numpy"]
    mlp = results["models"]["mlp"]["engines"]["numpy"]
    assert softmax["test_accuracy"] > 0.8
    assert mlp["test_accuracy"] > 0.8
    assert softmax["train_loss"] < 1.0 and np.isfinite(mlp["train_loss"])
    assert softmax["step_ms"] > 0
    assert results["models"]["mlp"]["speedup"] is None   # no compiled engine in this run
    out = io.StringIO()
    demo.report(results, file=out)
    assert "softmax regression" in out.getvalue() and "%" in out.getvalue()


def test_demo_reports_an_unavailable_engine_and_still_runs_the_interpreted_one():
    lines = []
    results = demo.run(engines=("no-such-backend", "numpy"), steps=20, progress=False,
                       models=("softmax_regression",), log=lines.append)
    engines = results["models"]["softmax_regression"]["engines"]
    assert "error" in engines["no-such-backend"]
    assert "test_accuracy" in engines["numpy"]
    assert len(lines) == 1 and "no-such-backend" in lines[0]



def test_progress_bar_and_table_report_the_same_loss(capsys):
    X, y = load_digits()
    split = train_test_split(X, y, test_frac=0.25, seed=0)
    r = demo.train_classifier(demo.MODELS["softmax_regression"], split, backend="numpy",
                              steps=70, progress=True)
    assert r["loss"] == np.mean(r["losses"][-demo.LOSS_WINDOW:])
    bar = capsys.readouterr().err
    assert f"loss={r['loss']:.4f}" in bar.rsplit("\r", 1)[-1]        # the bar's last state
    results = {"dataset": {"name": "digits", "n_train": 1, "n_test": 1, "n_features": 64,
                           "n_classes": 10},
               "models": {"m": {"title": "softmax regression", "engines": {"numpy": r},
                                "speedup": None}}}
    out = io.StringIO()
    demo.report(results, file=out)
    assert f"{r['loss']:.4f}" in out.getvalue()


def test_training_step_is_one_compiled_function_with_sgd_momentum():
    """fit's step (loss, gradients, gc.optim update) equals SGD with momentum written out."""
    r = np.random.default_rng(0)
    X, y = r.standard_normal((16, 3)), r.integers(0, 2, 16)
    params = {"W": np.zeros((3, 2)), "b": np.zeros(2)}
    result = demo.fit(lambda p, X, y: demo.gc.nn.cross_entropy(X @ p["W"] + p["b"], y), params,
                      (X, y), steps=3, lr=0.1, momentum=0.9, backend="numpy")
    W, b, vW, vb = params["W"], params["b"], 0.0, 0.0
    for _ in range(3):
        def loss(W, b):
            return demo.gc.nn.cross_entropy(X @ W + b, y)
        gW, gb = demo.gc.grad(loss, argnums=(0, 1))(W, b)
        vW, vb = 0.9 * vW + gW, 0.9 * vb + gb
        W, b = W - 0.1 * vW, b - 0.1 * vb
    np.testing.assert_allclose(result.params["W"], W, rtol=1e-12)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-12)


def test_torch_engine_trains_the_same_model():
    pytest.importorskip("torch")
    X, y = load_digits()
    split = train_test_split(X, y, test_frac=0.25, seed=0)
    model = demo.MODELS["mlp"]
    ours = demo.train_classifier(model, split, backend="numpy", steps=20)
    theirs = demo.train_classifier(model, split, backend="torch", steps=20)
    np.testing.assert_allclose(theirs["losses"], ours["losses"], rtol=1e-4)
