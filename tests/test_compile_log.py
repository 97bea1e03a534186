"""The compile log, cache_info and the reprs (API.md section 11)."""
import logging
import subprocess
import sys

import numpy as np

import gradc as gc


def loss(W, X):
    return gc.sum(gc.tanh(X @ W))


W = np.ones((784, 10), np.float32) * 0.01
X = np.ones((32, 784), np.float32)


def test_log_reasons_and_cache_info(backend, caplog):
    f = gc.jit(gc.value_and_grad(loss), backend=backend)
    with caplog.at_level(logging.INFO, logger="gradc"):
        f(W, X)
        f(W, X)
        f(W, X[:17])
        f(W.astype(np.float64), X[:17])
        f(W, X)                       # back to the first signature: a hit, no trace
    traced = [r.getMessage() for r in caplog.records if r.getMessage().startswith("traced")]
    compiled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("compiled")]
    assert len(traced) == 3 and len(compiled) == 3
    assert traced[0].startswith("traced loss(W: f32[784,10], X: f32[32,784]) in ")
    assert ": first call; " in traced[0]
    assert "new shape for argument X: (17, 784) was (32, 784)" in traced[1]
    assert "new dtype for argument W: float64 was float32" in traced[2]
    assert all(" ms" in m for m in traced + compiled)
    assert all(f"backend={backend!r}" in m for m in compiled)
    assert f.cache_info() == (2, 3, 3)
    assert (f.cache_info().hits, f.cache_info().misses, f.cache_info().entries) == (2, 3, 3)


def test_disk_cache_hit_is_logged(isolated_cache, caplog):
    gc.jit(loss)(W, X)                               # built (or found) once
    with caplog.at_level(logging.INFO, logger="gradc"):
        gc.jit(loss)(W, X)                           # a new jitted function: found on disk
    assert any("disk-cache hit" in r.getMessage() for r in caplog.records)


def test_static_argument_reason(caplog):
    g = gc.jit(lambda x, n: x * n, static_argnums=1, backend="numpy")
    with caplog.at_level(logging.INFO, logger="gradc"):
        g(np.ones(2), 2)
        g(np.ones(2), 3)
    assert "new value of static argument 1: 3 was 2" in caplog.records[-2].getMessage()


def test_env_switch_logs_to_stderr():
    code = ("import numpy as np, gradc as gc; f = gc.jit(lambda x: x * 2, backend='numpy'); "
            "f(np.ones(3)); f(np.ones(4))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "GRADC_LOG_COMPILES": "1"}, check=True)
    lines = run.stderr.splitlines()
    assert lines[0].startswith("gradc: traced <lambda>(x: f64[3]) in ") and "first call" in lines[0]
    assert "new shape for argument x: (4,) was (3,)" in lines[2]
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={k: v for k, v in __import__("os").environ.items()
                                if k != "GRADC_LOG_COMPILES"})
    assert quiet.stderr == ""


def test_reprs(backend):
    f = gc.jit(loss, backend=backend)
    assert repr(f) == f"<gc.jit loss, backend={backend!r}, 0 compiled signatures>"
    f(W, X)
    assert repr(f) == (f"<gc.jit loss, backend={backend!r}, 1 compiled signature: "
                       "loss(W: f32[784,10], X: f32[32,784]) -> f32[]>")
    lowered = gc.jit(gc.value_and_grad(loss), backend=backend).lower(W, X)
    assert repr(lowered).startswith("<gc.Lowered loss(W: f32[784,10], X: f32[32,784]) -> "
                                    f"(f32[], f32[784,10]), backend={backend!r}, ")
    assert repr(lowered.compile()).startswith("<gc.Compiled loss(W: f32[784,10], X: f32[32,784])")
    assert repr(gc.tensor([1.0, 2.0], requires_grad=True)) == "tensor([1., 2.], requires_grad=True)"
    assert repr(gc.tensor(np.ones(2, np.float32))) == "tensor([1., 1.], dtype=float32)"


def test_traced_value_repr_says_what_it_is(capsys):
    def fn(x):
        h = gc.tanh(x)
        print(h)
        return h
    gc.jit(fn, backend="numpy")(np.ones(3))
    out = capsys.readouterr().out
    assert out.startswith("Traced<f64[3], tanh at test_compile_log.py:")
    assert "gc.debug_print" in out
