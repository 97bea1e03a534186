"""Tests of the C backend itself (gradc/cbackend, csrc): fusion, BLAS lowering, safety of the call
path, the disk cache, threads, compile errors, warning-free C and the native fast path.

The op table (tests/test_ops.py) already checks every op and gradient on both backends; these tests
look at *how* the C backend runs them. Anything that could crash the interpreter (an out-of-range
index read by C code) runs in a subprocess, so a crash fails the test instead of killing pytest.
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import gradc as gc
from gradc.cbackend import blas as cblas
from gradc.cbackend import build as cbuild

REPO = Path(gc.__file__).resolve().parent.parent
RNG_SEED = 1234


pytestmark = [pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None
                                 and shutil.which("gcc") is None,
                                 reason="no C compiler on this machine"),
              pytest.mark.usefixtures("isolated_cache")]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    d.mkdir()
    monkeypatch.setenv("GRADC_CACHE_DIR", str(d))
    return d


# ---- helpers ----------------------------------------------------------------------------------------

def strip_comments(src):
    return re.sub(r"/\*.*?\*/", " ", src, flags=re.S)


def count_for(src):
    """Number of `for (` statements in the C text (comments excluded)."""
    return len(re.findall(r"\bfor\s*\(", strip_comments(src)))


def _match(text, i, open_, close):
    depth = 0
    for j in range(i, len(text)):
        if text[j] == open_:
            depth += 1
        elif text[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise AssertionError(f"unbalanced {open_}{close} in generated C")


_CONTROL = re.compile(r"(for|while|if)\s*\(")


def _skip_statement(text, i):
    while text[i].isspace():
        i += 1
    if text[i] == "{":
        return _match(text, i, "{", "}")
    m = _CONTROL.match(text, i)
    if m:
        return _skip_statement(text, _match(text, m.end() - 1, "(", ")"))
    return text.index(";", i) + 1


def count_loop_nests(src):
    """Number of outermost `for` statements (loop nests) in the C text: each nest counts once,
    however many loops it contains."""
    text = strip_comments(src)
    count, i = 0, 0
    pattern = re.compile(r"\bfor\s*\(")
    while True:
        m = pattern.search(text, i)
        if m is None:
            return count
        count += 1
        i = _skip_statement(text, _match(text, m.end() - 1, "(", ")"))


def input_pointer(src, name):
    """The C pointer variable of the input leaf called `name` (from its declaration comment)."""
    m = re.search(r"const \w+ \*(p_[a-z]+) = \([^)]*\)args\[\d+\];\s*/\* input " + re.escape(name)
                  + r":", src)
    assert m, f"no declaration of input {name!r} in:\n{src}"
    return m.group(1)


def leaves(tree):
    return gc.tree_leaves(tree)


def assert_trees_equal(got, want, what=""):
    g, w = leaves(got), leaves(want)
    assert len(g) == len(w), what
    for i, (a, b) in enumerate(zip(g, w)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape, f"{what} leaf {i}: {a.dtype}{a.shape} " \
                                                          f"!= {b.dtype}{b.shape}"
        assert np.array_equal(a, b, equal_nan=True), f"{what} leaf {i}: {a} != {b}"


def assert_trees_close(got, want, rtol, atol=0.0, what=""):
    g, w = leaves(got), leaves(want)
    assert len(g) == len(w), what
    for i, (a, b) in enumerate(zip(g, w)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                   rtol=rtol, atol=atol, err_msg=f"{what} leaf {i}")


def subprocess_env(cache_dir, **extra):
    env = dict(os.environ)
    env["GRADC_CACHE_DIR"] = str(cache_dir)
    env.pop("GRADC_CACHE_MAX_MB", None)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_python(code, cache_dir, timeout=180, **env):
    """Runs code in a fresh interpreter; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=subprocess_env(cache_dir, **env),
                          cwd=str(REPO))


def last_json(proc):
    assert proc.returncode == 0, (f"subprocess failed (rc={proc.returncode}):\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON result in stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return json.loads(lines[-1])


# ---- 1. fusion --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_value_and_grad_fuses_into_one_pass(dtype):
    rng = np.random.default_rng(RNG_SEED)
    x = rng.standard_normal(257).astype(dtype)
    y = rng.standard_normal(257).astype(dtype)
    fn = gc.jit(gc.value_and_grad(lambda x, y: gc.sum(gc.exp(x) * y + gc.sin(x))))
    lowered = fn.lower(x, y)
    src = lowered.c_source
    assert count_for(src) <= 2, f"{count_for(src)} loops for a fused elementwise chain:\n{src}"
    compiled = lowered.compile()
    assert compiled.stats["kernels"] <= 2, compiled.stats
    value, grad = compiled(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, np.sum(np.exp(x64) * y64 + np.sin(x64)), rtol=rtol,
                               atol=rtol * 10)
    np.testing.assert_allclose(grad, np.exp(x64) * y64 + np.cos(x64), rtol=rtol, atol=rtol)
    assert value.dtype == dtype and grad.dtype == dtype


def test_loop_nest_counter_counts_nests_not_loops():
    src = """int f(void) {
        for (int i = 0; i < 3; i++) { for (int j = 0; j < 2; j++) { x += 1; } }
        /* for (commented) */
        for (int64_t k = 0; k < 4; k++) y[k] = 0;
        for (int64_t o = 0; o < 2; o++) for (int64_t r = 0; r < 3; r++) { if (a) { b; } }
        return 0; }"""
    assert count_for(src) == 5
    assert count_loop_nests(src) == 3


def test_softmax_value_and_vjp_take_few_passes():
    rng = np.random.default_rng(RNG_SEED)
    X = rng.standard_normal((16, 33))
    ct = rng.standard_normal((16, 33))

    def f(X, ct):
        out, vjp = gc.vjp(lambda X: gc.nn.softmax(X, axis=1), X)
        return out, vjp(ct)[0]

    lowered = gc.jit(f).lower(X, ct)
    src = lowered.c_source
    # max, exp + sum, divide + dot(ct, s), final combine: 4 passes over the rows.
    nests = count_loop_nests(src)
    assert nests <= 4, f"softmax value+vjp took {nests} loop nests:\n{src}"
    compiled = lowered.compile()
    assert compiled.stats["kernels"] <= 4, compiled.stats
    out, dX = compiled(X, ct)
    e = np.exp(X - X.max(axis=1, keepdims=True))
    s = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out, s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dX, s * (ct - np.sum(ct * s, axis=1, keepdims=True)), rtol=1e-10,
                               atol=1e-14)


def _inner_loop_pragmas(src):
    """The pragma line (or None) right before each innermost `for` of the kernel."""
    lines = src.splitlines()
    return [lines[i - 1].strip() if "GRADC_" in lines[i - 1] else None
            for i, line in enumerate(lines)
            if line.lstrip().startswith("for (") and "for (" not in lines[i + 1]
            and "{" in line and "= 0.0" not in line]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_sums_carried_through_a_loop_nest_are_vectorised(dtype):
    # sum(tanh(X)^2) and a column sum share one [rows, cols] nest; the total is carried across
    # the inner loop, so only an OpenMP SIMD reduction (not ivdep) lets GCC vectorise it.
    X = np.random.default_rng(RNG_SEED).standard_normal((16, 64)).astype(dtype)
    f = lambda X: (gc.sum(gc.tanh(X) ** 2), gc.sum(gc.tanh(X) * 2.0, axis=0))
    lowered = gc.jit(f).lower(X)
    assert any(p and p.startswith("GRADC_SIMD_SUM(") for p in _inner_loop_pragmas(lowered.c_source)), \
        lowered.c_source
    total, cols = lowered.compile()(X)
    X64 = np.tanh(X.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(total, np.sum(X64 ** 2), rtol=rtol)
    np.testing.assert_allclose(cols, np.sum(2 * X64, axis=0), rtol=rtol, atol=rtol)


def test_sums_into_memory_across_the_inner_loop_are_not_marked_independent():
    # Summing axes 0 and 2 of a [4, 5, 6] nest accumulates into memory across the inner loop:
    # neither ivdep nor a SIMD reduction may be claimed there, and the result must be exact.
    X = np.random.default_rng(RNG_SEED).standard_normal((4, 5, 6))
    f = lambda X: (gc.sum(X * X), gc.sum(gc.exp(X), axis=(0, 2)))
    lowered = gc.jit(f).lower(X)
    total, mid = lowered.compile()(X)
    np.testing.assert_allclose(total, np.sum(X * X), rtol=1e-12)
    np.testing.assert_allclose(mid, np.sum(np.exp(X), axis=(0, 2)), rtol=1e-12)
    nest = lowered.c_source[lowered.c_source.index("loop over [4, 5, 6]"):]
    assert "GRADC_IVDEP" not in nest and "GRADC_SIMD_SUM" not in nest, nest


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_across_the_threads_rows_sum_a_copy_per_thread(dtype, monkeypatch):
    # A column sum and a column max of a [512, 256] nest run on 2 threads: each sums its rows into
    # its own copy, combined in thread order after the loop; a sum over the middle axis of a 3-D
    # nest keeps each thread on its own rows of the output and needs no copies; a column sum too
    # big for copies on the stack leaves its loop on one thread.
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    rng = np.random.default_rng(RNG_SEED)
    X = rng.standard_normal((512, 256)).astype(dtype)
    Y = rng.standard_normal((64, 32, 64)).astype(dtype)
    f = lambda X, Y: (gc.tanh(X), gc.sum(gc.tanh(X), axis=0), gc.max(X * 2.0, axis=0),
                      gc.sum(gc.exp(Y * 0.1), axis=1))
    lowered = gc.jit(f).lower(X, Y)
    src = lowered.c_source
    assert "loop over [512, 256]" in src and "(2 threads)" in src.split("loop over [512, 256]")[1], src
    assert len(re.findall(r"\b\w+ part_\w+\[2\]\[256\];", src)) == 2, src
    assert "loop over [64, 32, 64]: " in src and "part_" not in src.split("loop over [64, 32, 64]")[1] \
        and "(2 threads)" in src.split("loop over [64, 32, 64]")[1].split("\n")[0], src
    compiled = lowered.compile()
    got = compiled(X, Y)
    again = compiled(X, Y)
    for a, b in zip(got, again):                 # no dependence on which thread finishes first
        np.testing.assert_array_equal(a, b)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got[1], np.tanh(X64).sum(axis=0), rtol=rtol, atol=rtol * 30)
    np.testing.assert_array_equal(got[2], (X * 2).max(axis=0))
    np.testing.assert_allclose(got[3], np.exp(Y64 * 0.1).sum(axis=1), rtol=rtol)
    wide = np.ones((64, 8192), dtype)            # 2 copies of 8192 elements: not on the stack
    src = gc.jit(lambda w: (gc.exp(w), gc.sum(gc.exp(w), axis=0))).lower(wide).c_source
    assert "part_" not in src and "(2 threads)" not in src, src
    np.testing.assert_allclose(gc.jit(lambda w: gc.sum(gc.exp(w), axis=0))(wide),
                               np.full(8192, 64 * np.e), rtol=rtol)


def _chain(n):
    def fn(x):
        for i in range(n):
            x = gc.tanh(x) * (1.0 + 0.01 * i) + gc.sin(x) * 0.5
        return gc.sum(x)
    return fn


def _chain_after_matmul(n):
    def fn(W, X):
        return _chain(n)(X @ W)
    return fn


@pytest.mark.parametrize("case", ["chain", "matmul_then_chain"])
def test_workspace_does_not_grow_with_elementwise_chain_length(case):
    rng = np.random.default_rng(RNG_SEED)
    if case == "chain":
        make, args = _chain, (rng.standard_normal((24, 40)) * 0.5,)
    else:
        make, args = _chain_after_matmul, (rng.standard_normal((30, 40)) * 0.1,
                                           rng.standard_normal((24, 30)))
    stats = {}
    for n in (5, 50):
        compiled = gc.jit(gc.value_and_grad(make(n))).lower(*args).compile()
        stats[n] = compiled.stats
        want = gc.jit(gc.value_and_grad(make(n)), backend="numpy")(*args)
        assert_trees_close(compiled(*args), want, rtol=1e-9, atol=1e-12, what=f"chain {n}")
    assert stats[5]["workspace_bytes"] == stats[50]["workspace_bytes"], \
        (stats[5]["workspace_bytes"], stats[50]["workspace_bytes"])
    assert stats[50]["kernels"] == stats[5]["kernels"], (stats[5], stats[50])
    if case == "matmul_then_chain":
        assert stats[50]["workspace_bytes"] > 0       # the GEMM result lives in the workspace


# ---- 2. matmul through GEMM ----------------------------------------------------------------------------

GEMM = re.compile(r"gradc_gemm_(?:small_)?([fd])\(\s*(?:&\w+\[\d+\],\s*)?(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*(\d+),\s*([^,]+),"
                  r"\s*(\d+),\s*([^,]+),\s*(\d+),\s*([01]),\s*([^,]+),\s*(\d+)\)")


def gemm_calls(src):
    """[(ta, tb, m, n, k, a, lda, b, ldb, c, ldc, beta)] of the gradc_gemm_ calls in src (small
    products name their JIT slot first)."""
    out = []
    for m in GEMM.finditer(strip_comments(src)):
        g = m.groups()
        out.append((int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), g[6].strip(),
                    int(g[7]), g[8].strip(), int(g[9]), g[11].strip(), int(g[12]), int(g[10])))
    return out


def _uses_outside_gemm(src, pointer):
    """Lines other than its declaration and gemm calls that mention an input pointer."""
    lines = strip_comments(src).splitlines()
    return [ln for ln in lines if re.search(rf"\b{pointer}\b", ln)
            and "gradc_gemm_" not in ln and "args[" not in ln]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_grad_is_gemm_with_folded_transpose(dtype):
    rng = np.random.default_rng(RNG_SEED)
    W = rng.standard_normal((7, 5)).astype(dtype)
    X = rng.standard_normal((6, 7)).astype(dtype)
    lowered = gc.jit(gc.grad(lambda W, X: gc.sum(X @ W))).lower(W, X)
    src = lowered.c_source
    calls = gemm_calls(src)
    assert calls, f"no gradc_gemm_ call:\n{src}"
    px = input_pointer(src, "X")
    using_x = [c for c in calls if px in c[5] or px in c[7]]
    assert using_x, f"X ({px}) is not passed to a gemm call:\n{src}"
    # dW = X^T @ ones: X is read in place with its transpose flag set, never copied.
    assert any(c[0] == 1 and c[5].startswith(px) for c in using_x), f"no transposed X:\n{src}"
    assert not _uses_outside_gemm(src, px), f"X is copied/transposed by a loop:\n{src}"
    got = lowered.compile()(W, X)
    want = X.astype(np.float64).T @ np.ones((6, 5))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_mlp_layer_grads_read_inputs_only_through_gemm():
    rng = np.random.default_rng(RNG_SEED)
    W = rng.standard_normal((9, 4))
    X = rng.standard_normal((5, 9))
    fn = gc.value_and_grad(lambda W, X: gc.sum(gc.tanh(X @ W)), argnums=(0, 1))
    lowered = gc.jit(fn).lower(W, X)
    src = lowered.c_source
    calls = gemm_calls(src)
    assert len(calls) == 3, f"expected forward, dW and dX gemms:\n{src}"
    pw, px = input_pointer(src, "W"), input_pointer(src, "X")
    assert any(c[0] == 1 and c[5].startswith(px) for c in calls), src     # X^T @ dH
    assert any(c[1] == 1 and c[7].startswith(pw) for c in calls), src     # dH @ W^T
    for p in (pw, px):
        assert not _uses_outside_gemm(src, p), f"{p} copied by a loop:\n{src}"
    (value, (dW, dX)) = lowered.compile()(W, X)
    H = np.tanh(X @ W)
    np.testing.assert_allclose(value, H.sum(), rtol=1e-12)
    np.testing.assert_allclose(dW, X.T @ (1 - H ** 2), rtol=1e-12)
    np.testing.assert_allclose(dX, (1 - H ** 2) @ W.T, rtol=1e-12)


# ---- 3. safety ---------------------------------------------------------------------------------------

LABEL_SCRIPT = r"""
import json, numpy as np, gradc as gc
rng = np.random.default_rng(0)
logits = rng.standard_normal((4, 10))
checks = {}

def expect_index_error(name, fn, *args):
    try:
        fn(*args)
    except IndexError as e:
        checks[name] = "IndexError"
    except Exception as e:
        checks[name] = f"{type(e).__name__}: {e}"
    else:
        checks[name] = "no error"

for ldtype in (np.int64, np.int32):
    good = np.array([0, 9, 3, 5], ldtype)
    for bad_label in (10, -1, 1000000):
        bad = good.copy(); bad[2] = bad_label
        loss = gc.jit(lambda l, y: gc.nn.cross_entropy(l, y))
        vg = gc.jit(gc.value_and_grad(lambda l, y: gc.nn.cross_entropy(l, y)))
        tag = f"{np.dtype(ldtype).name}:{bad_label}"
        # first call (general path) with a bad label
        expect_index_error(f"loss first {tag}", loss, logits, bad)
        expect_index_error(f"grad first {tag}", vg, logits, bad)
        # after a good call (the fast path is armed)
        want = gc.jit(gc.value_and_grad(lambda l, y: gc.nn.cross_entropy(l, y)),
                      backend="numpy")(logits, good)
        got = vg(logits, good)
        assert np.allclose(got[0], want[0]) and np.allclose(got[1], want[1])
        expect_index_error(f"grad fast {tag}", vg, logits, bad)
        # Compiled
        comp = gc.jit(gc.grad(lambda l, y: gc.nn.cross_entropy(l, y, reduction="sum"))
                      ).lower(logits, good).compile()
        expect_index_error(f"compiled {tag}", comp, logits, bad)
        # the other label-checked ops
        expect_index_error(f"one_hot {tag}", gc.jit(lambda y: gc.nn.one_hot(y, 10)), bad)
        expect_index_error(f"hinge {tag}",
                           gc.jit(gc.grad(lambda s, y: gc.nn.multiclass_hinge(s, y))), logits, bad)
        # still works after errors
        got = vg(logits, good)
        assert np.allclose(got[0], want[0]) and np.allclose(got[1], want[1])
print(json.dumps(checks))
"""


def test_out_of_range_labels_raise_index_error_in_subprocess(fresh_cache):
    checks = last_json(run_python(LABEL_SCRIPT, fresh_cache))
    wrong = {k: v for k, v in checks.items() if v != "IndexError"}
    assert checks and not wrong, f"expected IndexError, got: {wrong}"


GATHER_SCRIPT = r"""
import json, numpy as np, gradc as gc
checks = {}
x = np.arange(10.0) * 1.5
M = np.arange(12.0).reshape(4, 3)

def expect_index_error(name, fn, *args):
    try:
        fn(*args)
    except IndexError:
        checks[name] = "IndexError"
    except Exception as e:
        checks[name] = f"{type(e).__name__}: {e}"
    else:
        checks[name] = "no error"

g = gc.jit(lambda x, i: x[i])
for idx_dtype in (np.int64, np.int32):
    idx = np.array([-1, -10, 3, 0, 9], idx_dtype)
    got = g(x, idx)
    assert np.array_equal(got, x[idx]), (got, x[idx])            # negative indices wrap
    got = g(x, idx)                                               # fast path
    assert np.array_equal(got, x[idx]), (got, x[idx])
    for bad in (10, -11, 2**31 - 1):
        b = idx.copy(); b[1] = bad
        expect_index_error(f"gather {np.dtype(idx_dtype).name} {bad}", g, x, b)
        expect_index_error(f"gather fresh {np.dtype(idx_dtype).name} {bad}",
                           gc.jit(lambda x, i: x[i]), x, b)

# rows-and-columns gather M[rows, cols] and its gradient (scatter_add)
rc = gc.jit(lambda M, r, c: M[r, c])
r, c = np.array([0, -1, 2]), np.array([2, 0, -3])
assert np.array_equal(rc(M, r, c), M[r, c])
expect_index_error("gather2d row", rc, M, np.array([0, 4, 2]), c)
expect_index_error("gather2d col", rc, M, r, np.array([0, 3, 1]))
expect_index_error("gather2d negative col", rc, M, r, np.array([0, -4, 1]))
gr = gc.jit(gc.grad(lambda M, r, c: gc.sum(M[r, c] * np.array([1.0, 2.0, 3.0]))))
want = np.zeros_like(M); np.add.at(want, (r, c), [1.0, 2.0, 3.0])
assert np.array_equal(gr(M, r, c), want)
expect_index_error("scatter_add row", gr, M, np.array([0, 4, 2]), c)
expect_index_error("scatter_add col", gr, M, r, np.array([7, 0, 1]))
# x[np.arange(B), y] with y out of range
B = gc.jit(lambda M, y: gc.sum(M[np.arange(4), y]))
assert B(M, np.array([0, 1, 2, -1])) == M[np.arange(4), [0, 1, 2, -1]].sum()
expect_index_error("arange gather", B, M, np.array([0, 1, 3, 0]))
print(json.dumps(checks))
"""


def test_gather_bounds_and_negative_wrap_in_subprocess(fresh_cache):
    checks = last_json(run_python(GATHER_SCRIPT, fresh_cache))
    wrong = {k: v for k, v in checks.items() if v != "IndexError"}
    assert checks and not wrong, f"expected IndexError, got: {wrong}"


def _unaligned(a):
    """A copy of a whose data starts at an odd byte address."""
    buf = np.zeros(a.nbytes + 16, np.uint8)
    out = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    out[...] = a
    assert not out.flags.aligned
    return out


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _strided(a):
    big = np.zeros(tuple(3 * d for d in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 3) for _ in a.shape)]
    view[...] = a
    assert not view.flags.c_contiguous
    return view


def _reversed(a):
    r = np.ascontiguousarray(a[::-1])[::-1]
    assert r.strides[0] < 0
    return r


LAYOUTS = {
    "strided": _strided,
    "fortran": np.asfortranarray,
    "unaligned": _unaligned,
    "readonly": _readonly,
    "negative_stride": _reversed,
    "broadcast_view": lambda a: np.broadcast_to(a, a.shape),       # read-only view
}


def _mlp_loss(params, X, y):
    h = gc.relu(X @ params["W1"] + params["b1"])
    return gc.nn.cross_entropy(h @ params["W2"], y) + 0.01 * gc.sum(params["W1"] ** 2)


def _mlp_data(dtype, seed=RNG_SEED, batch=16, din=12, hidden=20, classes=5):
    rng = np.random.default_rng(seed)
    params = {"W1": (rng.standard_normal((din, hidden)) * 0.3).astype(dtype),
              "b1": (rng.standard_normal(hidden) * 0.1).astype(dtype),
              "W2": (rng.standard_normal((hidden, classes)) * 0.3).astype(dtype)}
    X = rng.standard_normal((batch, din)).astype(dtype)
    y = rng.integers(0, classes, batch)
    return params, X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_unusual_layouts_match_contiguous_and_are_not_modified(layout, dtype):
    params, X, y = _mlp_data(dtype)
    fn = gc.value_and_grad(_mlp_loss)
    jitted = gc.jit(fn)
    want = jitted(params, X, y)
    jitted(params, X, y)         # arm the fast path for contiguous arrays
    make = LAYOUTS[layout]
    odd_params = {k: make(v) for k, v in params.items()}
    odd_X, odd_y = make(X), make(y)
    originals = [a.copy() for a in leaves((odd_params, odd_X, odd_y))]
    flags = [(a.flags.writeable, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.aligned,
              a.strides) for a in leaves((odd_params, odd_X, odd_y))]
    compiled = jitted.lower(params, X, y).compile()
    for name, call in (("jit", jitted), ("compiled", compiled)):
        got = call(odd_params, odd_X, odd_y)
        assert_trees_equal(got, want, f"{layout} via {name}")
        # mixed: only one argument unusual
        got = call(params, odd_X, y)
        assert_trees_equal(got, want, f"{layout} X only via {name}")
    after = leaves((odd_params, odd_X, odd_y))
    for i, (a, orig, fl) in enumerate(zip(after, originals, flags)):
        assert np.array_equal(a, orig), f"input leaf {i} was modified ({layout})"
        assert (a.flags.writeable, a.flags.c_contiguous, a.flags.f_contiguous, a.flags.aligned,
                a.strides) == fl, f"flags of input leaf {i} changed ({layout})"


def test_unaligned_inputs_reach_c_aligned(monkeypatch):
    """C may assume a float * is aligned to 4 bytes (vector loads, strict-alignment CPUs): an
    unaligned array must be copied before its address is handed to the kernel. x86 tolerates the
    misaligned pointer, so this checks the addresses the backend passes (white-box)."""
    from gradc.cbackend import backend as cbackend
    handed = []
    real = cbackend._from_buffer

    def recording(obj, *args, **kwargs):
        if isinstance(obj, np.ndarray):
            handed.append((obj.ctypes.data, obj.dtype.itemsize))
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(cbackend, "_from_buffer", recording)
    f = gc.jit(lambda x, w: gc.sum(gc.exp(x) * w))
    for dtype in (np.float32, np.float64):
        x = np.linspace(-1.0, 1.0, 33).astype(dtype)
        want = f(x, x)
        handed.clear()
        got = f(_unaligned(x), _unaligned(x))
        assert_trees_equal(got, want, f"unaligned {np.dtype(dtype).name}")
        assert handed, "the general call path did not pass arrays through _from_buffer"
        bad = [(hex(address), size) for address, size in handed if address % size]
        assert not bad, f"misaligned pointers passed to the C kernel: {bad}"


def test_inputs_are_never_modified_contiguous():
    params, X, y = _mlp_data(np.float64)
    copies = [a.copy() for a in leaves((params, X, y))]
    jitted = gc.jit(gc.value_and_grad(_mlp_loss))
    for _ in range(3):
        jitted(params, X, y)
    for a, b in zip(leaves((params, X, y)), copies):
        assert np.array_equal(a, b)
        assert a.flags.writeable


def test_byte_swapped_input_is_never_misread():
    """A big-endian float32 array has NumPy's float32 type number: it must be converted (or
    rejected with a clear error), never read as native floats."""
    x = np.arange(1.0, 6.0, dtype=np.float32)
    swapped = x.astype(x.dtype.newbyteorder())
    results = {}

    def attempt(name, call):
        try:
            results[name] = call(swapped)
        except (TypeError, ValueError):
            pass                                   # rejecting it clearly is acceptable

    attempt("first call", gc.jit(lambda x: x * 2))
    f = gc.jit(lambda x: x * 2)
    assert np.array_equal(f(x), x * 2)           # arms the fast path for native float32[5]
    attempt("after a native call", f)
    attempt("compiled", f.lower(x).compile())
    for name, got in results.items():
        assert np.array_equal(got, x * 2), f"byte-swapped input misread ({name}): {got}"
    assert np.array_equal(swapped, x) and not swapped.dtype.isnative


def test_outputs_are_fresh_arrays():
    const = np.array([1.0, 2.0, 3.0])

    def fn(x):
        return x, x * 2, const, gc.sum(x)

    f = gc.jit(fn)
    x = np.array([0.5, -1.0, 2.0])
    first = f(x)
    second = f(x)                                 # fast path
    compiled = f.lower(x).compile()
    third = compiled(x)
    for a, b, c in zip(first, second, third):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        assert a is not b and b is not c
        assert not np.shares_memory(a, b) and not np.shares_memory(b, c)
        assert a.flags.writeable and b.flags.writeable
    for out in (first, second, third):
        assert not np.shares_memory(out[0], x), "an output aliases the input"
        assert not np.shares_memory(out[2], const), "an output aliases a captured constant"
    assert first[3].shape == () and isinstance(first[3], np.ndarray)
    # writing into a result changes neither the inputs, constants nor later results
    for out in first:
        out[...] = 99
    assert np.array_equal(x, [0.5, -1.0, 2.0]) and np.array_equal(const, [1.0, 2.0, 3.0])
    again = f(x)
    assert np.array_equal(again[0], x) and np.array_equal(again[1], 2 * x)
    assert np.array_equal(again[2], const) and again[3] == x.sum()


def test_big_outputs_are_fresh_while_any_view_is_alive():
    """Outputs of a megabyte or more may come from reused memory, but never memory the caller can
    still reach (through the array, a view of it, or a memoryview)."""
    x = np.linspace(0.0, 1.0, 300_000)                     # 2.4 MB outputs
    f = gc.jit(lambda x, k: (x * k, gc.sum(x)))
    a, _ = f(x, 2.0)
    b, _ = f(x, 2.0)
    assert not np.shares_memory(a, b)
    compiled = f.lower(x, 2.0).compile()
    c, _ = compiled(x, 2.0)
    assert not np.shares_memory(c, a) and not np.shares_memory(c, b)
    kept = {"slice": a[10:20], "transpose": b.reshape(600, 500).T, "memoryview": memoryview(c)}
    snapshots = {k: np.array(v, copy=True) for k, v in kept.items()}
    del a, b, c
    results = [f(x, float(k))[0] for k in range(3, 8)] + [compiled(x, 9.0)[0]]
    for k, v in kept.items():
        assert np.array_equal(np.asarray(v), snapshots[k]), f"a result reused memory of a live {k}"
        for r in results:
            assert not np.shares_memory(np.asarray(v), r), k
    for i, r in enumerate(results):
        for other in results[i + 1:]:
            assert not np.shares_memory(r, other)
    for k, r in zip(range(3, 8), results):
        np.testing.assert_array_equal(r, x * float(k))
    np.testing.assert_array_equal(results[-1], x * 9.0)
    # dropping every reference allows reuse, and the values are still right
    del kept, results
    for k in range(3):
        np.testing.assert_array_equal(f(x, 1.5)[0], x * 1.5)


def test_python_scalars_and_lists_are_converted():
    f = gc.jit(lambda W, x, s: gc.sum(gc.tanh(W @ x) * s))
    W = np.array([[0.5, -1.0], [2.0, 0.25]], np.float32)
    x = np.array([1.0, 2.0], np.float32)
    want = f(W, x, 0.5)
    assert want.dtype == np.float32                 # a Python float does not upcast (NEP 50)
    np.testing.assert_allclose(want, np.sum(np.tanh(W.astype(np.float64) @ x) * 0.5), rtol=1e-6)
    assert_trees_equal(f(W, x, 0.5), want)           # fast path
    assert_trees_equal(f(W, x, np.float32(0.5)), want)
    assert_trees_equal(f(W, x, 1) * 0.5, want)       # a Python int, weakly typed
    compiled = f.lower(W, x, 0.5).compile()
    assert_trees_equal(compiled(W, x, 0.5), want)
    assert_trees_equal(compiled(W.tolist(), x.tolist(), 0.5), want)     # lists converted
    assert_trees_equal(compiled(W, x, 1), gc.jit(lambda W, x, s: gc.sum(gc.tanh(W @ x) * s))(
        W, x, 1.0))
    # under gc.jit, lists are pytrees: a list of arrays is one argument per leaf
    g = gc.jit(lambda xs, k: xs[0] * k + xs[1])
    a, b = np.arange(3.0), np.ones(3)
    assert_trees_equal(g([a, b], 2), a * 2 + b)
    assert_trees_equal(g((a, b), 2.5), a * 2.5 + b)
    ints = gc.jit(lambda a, k: a * k)
    assert_trees_equal(ints(np.arange(3), 2), np.arange(3) * 2)
    assert ints(np.arange(3), 2).dtype == np.int64
    assert_trees_equal(ints(np.arange(3.0, dtype=np.float32), 2),
                       np.arange(3.0, dtype=np.float32) * 2)
    assert_trees_equal(ints(np.arange(3.0), np.float64(1.5)), np.arange(3.0) * 1.5)
    assert_trees_equal(ints(np.arange(3.0), True), np.arange(3.0))


def test_compiled_rejects_other_shapes_and_dtypes_naming_the_parameter():
    def fn(weights, inputs, params):
        return gc.sum(inputs @ weights) + gc.sum(params["bias"])

    W = np.ones((3, 2))
    X = np.ones((4, 3))
    params = {"bias": np.ones(2)}
    compiled = gc.jit(fn).lower(W, X, params).compile()
    assert compiled(W, X, params) == 26.0
    with pytest.raises(ValueError, match="inputs"):
        compiled(W, np.ones((5, 3)), params)
    with pytest.raises(ValueError, match="inputs"):
        compiled(W, X.astype(np.float32), params)
    with pytest.raises(ValueError, match="weights"):
        compiled(np.ones((3, 2), np.int64), X, params)
    with pytest.raises(ValueError, match="bias"):
        compiled(W, X, {"bias": np.ones(3)})
    with pytest.raises(ValueError, match="inputs"):
        compiled(W, [[1.0, 2.0]], params)              # a list is converted, then checked
    with pytest.raises(TypeError):
        compiled(W, X)
    # the compiled function still works afterwards
    assert compiled(W, X, params) == 26.0


# ---- 4. the disk cache -----------------------------------------------------------------------------

CACHE_SCRIPT = r"""
import json, numpy as np, gradc as gc
x = np.linspace(-1.5, 1.5, 64)
lowered = gc.jit(gc.value_and_grad(lambda x: gc.sum(gc.tanh(x) * x + gc.exp(x)))).lower(x)
compiled = lowered.compile()
value, grad = compiled(x)
t = np.tanh(x)
ok = (np.allclose(value, np.sum(t * x + np.exp(x)), rtol=1e-12)
      and np.allclose(grad, t + x * (1 - t * t) + np.exp(x), rtol=1e-12))
print(json.dumps({"hit": compiled.stats["cache_hit"], "ok": bool(ok),
                  "library": compiled.stats["library"]}))
"""


def _cache_files(d, suffix):
    return sorted(p for p in Path(d).iterdir() if p.name.endswith(suffix))


def _sum_exp(x):
    return gc.sum(gc.exp(x))


def _sum_sin(x):
    return gc.sum(gc.sin(x))


def test_cache_info_and_clear(fresh_cache):
    info = gc.cache_info()
    assert Path(info["location"]) == fresh_cache and info["entries"] == 0 and info["bytes"] == 0
    a = gc.jit(_sum_exp).lower(np.ones(5)).compile()
    b = gc.jit(_sum_sin).lower(np.ones(5)).compile()
    assert not a.stats["cache_hit"] and not b.stats["cache_hit"]
    assert Path(a.stats["library"]).parent == fresh_cache
    info = gc.cache_info()
    assert Path(info["location"]) == fresh_cache
    assert info["entries"] == 2, info
    on_disk = sum(p.stat().st_size for p in fresh_cache.iterdir()
                  if p.suffix in (".so", ".json", ".c"))
    assert info["bytes"] == on_disk > 0, (info, on_disk)
    # the same function again (a new jit object): a cache hit
    again = gc.jit(_sum_exp).lower(np.ones(5)).compile()
    assert again.stats["cache_hit"], again.stats
    assert again.stats["library"] == a.stats["library"]
    assert again(np.zeros(5)) == 5.0
    assert gc.clear_cache() >= 2
    info = gc.cache_info()
    assert info["entries"] == 0 and info["bytes"] == 0, info
    assert not _cache_files(fresh_cache, ".so")
    fresh = gc.jit(_sum_exp).lower(np.ones(5)).compile()
    assert not fresh.stats["cache_hit"]
    assert fresh(np.zeros(5)) == 5.0
    assert a(np.zeros(5)) == 5.0       # an already loaded function survives clear_cache


def _corrupt(kind, d):
    sos = _cache_files(d, ".so")
    assert sos, f"nothing cached in {d}"
    for so in sos:
        if kind == "garbage":
            so.write_bytes(b"\x7fELF this is not a shared library" * 50)
        elif kind == "truncated":
            data = so.read_bytes()
            so.write_bytes(data[: len(data) // 2])
        elif kind == "empty":
            so.write_bytes(b"")
        elif kind == "json":
            so.with_suffix(".json").write_text("{not json")
        elif kind == "same_size":              # flipped bytes, size unchanged
            data = bytearray(so.read_bytes())
            for i in range(len(data) // 3, len(data) // 3 + 64):
                data[i] ^= 0xFF
            so.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["truncated", "same_size", "json"])
def test_corrupted_cache_entry_is_rebuilt(kind, tmp_path):
    d = tmp_path / "cache"
    first = last_json(run_python(CACHE_SCRIPT, d))
    assert first["ok"] and first["hit"] is False, first
    _corrupt(kind, d)
    second = last_json(run_python(CACHE_SCRIPT, d))
    assert second["ok"], second
    assert second["hit"] is False, f"a corrupted ({kind}) entry was trusted: {second}"
    third = last_json(run_python(CACHE_SCRIPT, d))
    assert third["ok"] and third["hit"] is True, third
    assert third["library"] == first["library"]


CONCURRENT_SCRIPT = r"""
import json, os, sys, time, numpy as np, gradc as gc
go = sys.argv[1]
deadline = time.time() + 60
while not os.path.exists(go) and time.time() < deadline:
    time.sleep(0.002)
rng = np.random.default_rng(0)
W = rng.standard_normal((30, 20)); X = rng.standard_normal((10, 30))
f = gc.jit(gc.value_and_grad(lambda W, X: gc.sum(gc.tanh(X @ W) ** 2)))
v, g = f(W, X)
h = np.tanh(X @ W)
ok = np.allclose(v, np.sum(h ** 2), rtol=1e-12) and np.allclose(g, X.T @ (2 * h * (1 - h * h)),
                                                                  rtol=1e-10)
print(json.dumps({"ok": bool(ok)}))
"""


def test_two_processes_compiling_the_same_function_at_once(tmp_path):
    d = tmp_path / "cache"
    go = tmp_path / "go"
    env = subprocess_env(d)
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_SCRIPT, str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=str(REPO)) for _ in range(3)]
    time.sleep(0.5)            # let both import gradc, then release them together
    go.write_text("go")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append(last_json(subprocess.CompletedProcess(p.args, p.returncode, out, err)))
    assert all(r["ok"] for r in results), results
    # the cache is consistent afterwards: a new process hits it
    after = run_python(CONCURRENT_SCRIPT.replace("go = sys.argv[1]", f"go = {str(go)!r}"), d)
    assert last_json(after)["ok"]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")], list(d.iterdir())


def test_cache_size_is_bounded(fresh_cache, monkeypatch):
    first = gc.jit(lambda x: gc.sum(gc.exp(x) * 0.0)).lower(np.ones(3)).compile()
    entry_bytes = gc.cache_info()["bytes"]
    assert entry_bytes > 0
    limit = 2.5 * entry_bytes                          # room for about two entries
    monkeypatch.setenv("GRADC_CACHE_MAX_MB", repr(limit / 2 ** 20))
    last = None
    for k in range(1, 7):
        last = gc.jit(lambda x, k=k: gc.sum(gc.exp(x) * float(k))).lower(np.ones(3)).compile()
        assert not last.stats["cache_hit"]
        assert last(np.zeros(3)) == 3.0 * k
    deadline = time.time() + 20                     # pruning runs in the background
    while gc.cache_info()["bytes"] > limit and time.time() < deadline:
        time.sleep(0.05)
    info = gc.cache_info()
    assert info["bytes"] <= limit, (info, limit)
    assert 1 <= info["entries"] <= 2, info
    assert Path(last.stats["library"]).exists(), "the most recently used entry was pruned"
    assert not Path(first.stats["library"]).exists(), "the least recently used entry was kept"
    time.sleep(0.2)      # let pending pruning threads finish while the variables are still set


def test_tiny_cache_limit_still_works(tmp_path):
    d = tmp_path / "cache"
    code = CACHE_SCRIPT + textwrap.dedent(r"""
        import time
        for k in range(4):
            f = gc.jit(lambda x, k=k: gc.sum(x * float(k)))
            assert f(np.ones(3)) == 3.0 * k
        time.sleep(1.0)
        print(json.dumps(gc.cache_info()))
    """)
    info = last_json(run_python(code, d, GRADC_CACHE_MAX_MB="0.001"))
    # every entry is bigger than the limit: all are pruned, except perhaps the one just built
    # (kept while it is being loaded)
    assert info["entries"] <= 1, info
    assert info["bytes"] <= 0.001 * 2 ** 20 + 2 ** 20, info


def test_compiling_while_another_process_prunes(fresh_cache, monkeypatch):
    """Another process (here a thread running the same pruning) keeps the shared cache under a
    tiny limit while this one compiles: pruning may drop entries, but must never make a compile
    fail (neither the C file being compiled nor the library about to be loaded)."""
    monkeypatch.setenv("GRADC_CACHE_MAX_MB", "0.001")
    stop = threading.Event()

    def pruner():
        while not stop.is_set():
            cbuild.prune()

    thread = threading.Thread(target=pruner, daemon=True)
    thread.start()
    errors = []
    try:
        for k in range(6):
            try:
                f = gc.jit(lambda x, k=k: gc.sum(gc.exp(x) * float(k + 100)))
                assert f(np.zeros(3)) == 3.0 * (k + 100)
            except Exception as e:     # noqa: BLE001 -- CompileError, OSError from dlopen...
                errors.append(f"{type(e).__name__}: {str(e)[-300:]}")
    finally:
        stop.set()
        thread.join()
    assert not errors, f"{len(errors)} of 6 compiles failed while the cache was pruned: {errors[0]}"


# ---- 5. threads --------------------------------------------------------------------------------------

def test_threads_share_one_compiled_function():
    rng = np.random.default_rng(RNG_SEED)
    din, hidden, classes, batch = 40, 64, 10, 32
    params = {"W1": rng.standard_normal((din, hidden)) * 0.2, "b1": rng.standard_normal(hidden) * 0.1,
              "W2": rng.standard_normal((hidden, classes)) * 0.2}
    data = [(rng.standard_normal((batch, din)) * (1 + t), rng.integers(0, classes, batch))
            for t in range(4)]
    jitted = gc.jit(gc.value_and_grad(_mlp_loss))
    compiled = jitted.lower(params, *data[0]).compile()
    assert compiled.stats["workspace_bytes"] > 0
    refs = [jitted(params, X, y) for X, y in data]            # single-threaded references
    for ref, (X, y) in zip(refs, data):
        want = gc.jit(gc.value_and_grad(_mlp_loss), backend="numpy")(params, X, y)
        assert_trees_close(ref, want, rtol=1e-9, atol=1e-12)
    barrier = threading.Barrier(4)
    errors = []

    def work(t):
        X, y = data[t]
        barrier.wait()
        for i in range(150):
            got = jitted(params, X, y) if i % 2 else compiled(params, X, y)
            try:
                assert_trees_equal(got, refs[t], f"thread {t} call {i}")
            except AssertionError as e:
                errors.append(str(e))
                return

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert not errors, errors[:3]


def test_threads_calling_big_threaded_loops(monkeypatch):
    """Loops big enough for the kernel's own threads, called from several Python threads."""
    monkeypatch.setenv("GRADC_NUM_THREADS", "3")
    rng = np.random.default_rng(RNG_SEED)
    fn = gc.value_and_grad(lambda x, y: gc.sum(gc.logsumexp(gc.tanh(x) * y, axis=1))
                           + gc.sum(gc.exp(x) * y), argnums=(0, 1))
    data = [(rng.standard_normal((300, 256)) * (1 + 0.1 * t), rng.standard_normal((300, 256)))
            for t in range(4)]
    jitted = gc.jit(fn)
    refs = [jitted(*d) for d in data]
    for ref, d in zip(refs[:1], data):
        want = gc.jit(fn, backend="numpy")(*d)
        assert_trees_close(ref, want, rtol=1e-9, atol=1e-9)
    barrier = threading.Barrier(4)
    errors = []

    def work(t):
        barrier.wait()
        held = []
        for i in range(12):
            got = jitted(*data[t])
            try:
                assert_trees_equal(got, refs[t], f"thread {t} call {i}")
            except AssertionError as e:
                errors.append(str(e)[:500])
                return
            held.append(got)
        for i, a in enumerate(held):               # results held together never share memory
            for b in held[i + 1:]:
                if np.shares_memory(a[1][0], b[1][0]):
                    errors.append(f"thread {t}: two live results share memory")
                    return

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    assert not errors, errors[:3]


# ---- 6. compile errors --------------------------------------------------------------------------------

COMPILE_ERROR_SCRIPT = r"""
import json, os, numpy as np, gradc as gc
x = np.linspace(0, 1, 5)
fn = lambda x: gc.sum(gc.exp(x) * x)
result = {}
try:
    gc.jit(fn)(x)
except gc.CompileError as e:
    result["error"] = str(e)
    result["is_runtime_error"] = isinstance(e, RuntimeError)
except Exception as e:
    result["error"] = f"WRONG {type(e).__name__}: {e}"
else:
    result["error"] = None
result["numpy"] = float(gc.jit(fn, backend="numpy")(x))
result["numpy_grad"] = gc.jit(gc.grad(fn), backend="numpy")(x).tolist()
result["want"] = float(np.sum(np.exp(x) * x))
print(json.dumps(result))
"""


def test_failing_compiler_gives_compile_error_with_message_and_c_path(tmp_path):
    cc = tmp_path / "fake-cc"
    cc.write_text("#!/bin/sh\necho 'fake-cc: error: SIMULATED_FAILURE_42 (no code today)' >&2\n"
                  "exit 1\n")
    cc.chmod(0o755)
    d = tmp_path / "cache"
    res = last_json(run_python(COMPILE_ERROR_SCRIPT, d, CC=str(cc)))
    err = res["error"]
    assert err and not err.startswith("WRONG"), res
    assert res["is_runtime_error"]
    assert "SIMULATED_FAILURE_42" in err, f"compiler message missing: {err}"
    paths = [p for p in re.findall(r"(/\S+\.c)\b", err) if Path(p).is_file()]
    assert paths, f"no existing generated C path in the message: {err}"
    source = Path(paths[0]).read_text()
    assert "gradc_kernel" in source and "exp" in source
    assert res["numpy"] == pytest.approx(res["want"], rel=1e-12)
    assert not _cache_files(d, ".so"), "a failed compile left a library in the cache"


def test_missing_compiler_gives_compile_error_numpy_backend_still_works(tmp_path):
    res = last_json(run_python(COMPILE_ERROR_SCRIPT, tmp_path / "cache",
                               CC=str(tmp_path / "nonexistent" / "cc")))
    err = res["error"]
    assert err and not err.startswith("WRONG"), res
    assert "nonexistent" in err, err
    assert res["numpy"] == pytest.approx(res["want"], rel=1e-12)
    assert len(res["numpy_grad"]) == 5


# ---- 7. the generated C compiles without warnings -------------------------------------------------------

def _f(shape, dtype, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    return (np.abs(x) + 0.5 if positive else x).astype(dtype)


def _unary_all(x):
    a = gc.abs(x) + 0.5
    return gc.sum(-x + gc.exp(x) + gc.log(a) + gc.log1p(a) + gc.expm1(x) + gc.sqrt(a) + gc.sin(x)
                  + gc.cos(x) + gc.tanh(x) + gc.abs(x) + gc.sign(x) + gc.sigmoid(x) + gc.softplus(x)
                  + gc.square(x) + gc.relu(x) + gc.stop_gradient(x) * x)


def _binary_all(x, y):
    p = gc.abs(x) + 0.5
    return gc.sum(x + y - x * y + x / (gc.abs(y) + 1) + gc.power(p, y) + gc.maximum(x, y)
                  + gc.minimum(x, y) + gc.clip(x, -0.5, 0.5) + x ** 2 + 2.0 ** y
                  + gc.fmod(x, gc.abs(y) + 1))


def _compare_where(x, y):
    m = (x > y) & (x <= 0.5) | ~(x == y) & (x != 0.25) & (x >= -1.0) & (y < 1.0)
    return gc.sum(gc.where(m, x * y, y) + gc.where(gc.greater_equal(x, 0), x, 0.0)
                  + gc.astype(gc.less(x, y), x.dtype))


def _reductions(x):          # x: (3, 4, 5)
    return (gc.sum(x, axis=0), gc.sum(x, axis=1), gc.sum(x, axis=2), gc.sum(x, axis=(0, 2)),
            gc.mean(x, axis=1, keepdims=True), gc.max(x, axis=0), gc.max(x, axis=1),
            gc.max(x, axis=2, keepdims=True), gc.min(x, axis=(1, 2)), gc.max(x),
            gc.logsumexp(x, axis=2), gc.sum(x))


def _reduction_loss(x):
    return sum(gc.sum(gc.sin(r)) for r in _reductions(x))


def _argmax(x):             # x: (3, 4, 5)
    return (gc.argmax(x, axis=0), gc.argmax(x, axis=1), gc.argmax(x, axis=2), gc.argmax(x),
            gc.argmin(x, axis=1), gc.argmax(x, axis=-1, keepdims=True))


def _shapes(x):             # x: (4, 6)
    a = gc.reshape(x, (3, 8)).T @ gc.ones_like(gc.reshape(x, (3, 8)))
    b = gc.broadcast_to(x[:, :1], (4, 6)) * gc.transpose(gc.reshape(x, (6, 4)))
    c = x[::-1, ::2] + x[3:0:-1, -1:0:-2].sum()
    d = gc.concatenate([x, x[:, ::-1] * 2, x[:, :1]], axis=1)
    e = gc.stack([x, x * 3], axis=0)
    f = gc.squeeze(gc.expand_dims(x, 0), 0)[1:3]
    g = gc.concatenate([x[::2], x[1::2]], axis=0)
    return gc.sum(a) + gc.sum(b) + gc.sum(c) + gc.sum(d ** 2) + gc.sum(e) + gc.sum(f) + gc.sum(g)


def _gather(x, idx, rows, cols, labels):       # x: (5, 4)
    return gc.sum(x[idx] ** 2) + gc.sum(x[rows, cols] * 3.0) + gc.sum(x[np.arange(5), labels])


def _ce(logits, labels):
    return (gc.nn.cross_entropy(logits, labels) + gc.nn.multiclass_hinge(logits, labels)
            + gc.sum(gc.nn.log_softmax(logits)) * 0.1
            + gc.sum(gc.nn.one_hot(labels, 4, dtype=logits.dtype) * logits)
            + gc.nn.binary_cross_entropy_with_logits(logits, gc.nn.softmax(logits))
            + gc.nn.mse(logits, logits * 0.5))


def _matmul_all(v, A, B, batch_a, batch_b):
    return (gc.sum(v @ A) + gc.sum(A.T @ v) + gc.sum(A @ B) + gc.dot(v, v)
            + gc.sum(batch_a @ batch_b) + gc.sum((A.T @ A) * 0.5))


def _unrolled_rnn(h, W, xs):            # repeated steps become outlined static functions
    for t in range(xs.shape[0]):
        h = gc.tanh(h @ W + xs[t])
    return gc.sum(h)


def _outlined_const_mix(X, W):          # the same matmul step on an input and on a temporary
    return gc.sum((gc.exp(X) @ W) * (X @ W))


def _int_ops(i, j, x):                  # i, j integer arrays; x float
    k = gc.abs(i) + gc.sign(j) * 2 - gc.maximum(i, j) + gc.minimum(i, j) * i - (-j)
    p = gc.power(gc.abs(i), 2)
    s = gc.sum(k) + gc.max(j) + gc.sum(p, axis=0).sum() + gc.argmax(i)
    m = gc.where(i > j, i, j) + gc.astype(i == j, i.dtype)
    return s, m, gc.astype(k, x.dtype) * x, gc.sum(gc.astype(i, x.dtype) * x), x[j]


def _bool_ops(mask, x):
    return gc.where(mask & (x > 0), x, 0.0), gc.sum(gc.astype(~mask | (x < 0), x.dtype)), ~mask


def _scalar_arg(x, s):
    return gc.sum(x * s + s)


def _hessian(x):
    return gc.hessian(lambda x: gc.sum(gc.tanh(x) * x ** 3))(x)


def _jvp(x, t):
    return gc.jvp(lambda x: gc.sin(x) * gc.sum(x ** 2), (x,), (t,))


def _int_inputs(i_dtype):
    rng = np.random.default_rng(3)
    return (rng.integers(-3, 4, (4, 3)).astype(i_dtype),
            rng.integers(0, 3, (4, 3)).astype(i_dtype))


def _warning_cases():
    cases = []
    for dt in (np.float32, np.float64):
        name = np.dtype(dt).name
        vg = gc.value_and_grad
        cases += [
            (f"unary_{name}", vg(_unary_all), (_f(17, dt),)),
            (f"binary_{name}", vg(_binary_all, argnums=(0, 1)), (_f((3, 5), dt), _f((3, 5), dt, 1))),
            (f"binary_bcast_{name}", vg(_binary_all, argnums=(0, 1)), (_f((3, 1), dt), _f(5, dt, 1))),
            (f"compare_where_{name}", vg(_compare_where, argnums=(0, 1)),
             (_f((2, 7), dt), _f((2, 7), dt, 1))),
            (f"reductions_{name}", _reductions, (_f((3, 4, 5), dt),)),
            (f"reduction_grads_{name}", vg(_reduction_loss), (_f((3, 4, 5), dt),)),
            (f"argmax_{name}", _argmax, (_f((3, 4, 5), dt),)),
            (f"shapes_{name}", vg(_shapes), (_f((4, 6), dt),)),
            (f"gather_{name}", vg(_gather),
             (_f((5, 4), dt), np.array([0, -1, 2, 2]), np.array([[0, 4], [1, -5]]),
              np.array([[3, 0], [1, -1]]), np.array([0, 3, -1, 2, 1]))),
            (f"gather_1d_{name}", vg(lambda x, i: gc.sum(x[i] * x[i[::-1]])),
             (_f(9, dt), np.array([8, 0, -9, 3], np.int32))),
            (f"cross_entropy_i64_{name}", vg(_ce), (_f((6, 4), dt), np.array([0, 3, 1, 2, 2, 0]))),
            (f"cross_entropy_i32_{name}", vg(_ce),
             (_f((6, 4), dt), np.array([0, 3, 1, 2, 2, 0], np.int32))),
            (f"cross_entropy_named_{name}", vg(lambda l, y: gc.nn.cross_entropy(l, y) + gc.mean(l)),
             (gc.Spec(("n", 4), dt), gc.Spec(("n",), np.int64))),        # dim_value, iota
            (f"cross_entropy_1d_{name}", vg(lambda l, y: gc.nn.cross_entropy(l, y)),
             (_f(4, dt), np.int64(2))),
            (f"matmul_{name}", vg(_matmul_all, argnums=(0, 1, 2, 3, 4)),
             (_f(4, dt), _f((4, 3), dt, 1), _f((3, 5), dt, 2), _f((2, 3, 4), dt, 3),
              _f((2, 4, 2), dt, 4))),
            (f"matmul_1d_{name}", vg(lambda a, b: a @ b, argnums=(0, 1)), (_f(6, dt), _f(6, dt, 1))),
            (f"matmul_mv_{name}", vg(lambda A, b: gc.sum(A @ b) + gc.sum(b @ A.T), argnums=(0, 1)),
             (_f((3, 6), dt), _f(6, dt, 1))),
            (f"unrolled_{name}", vg(_unrolled_rnn, argnums=(0, 1, 2)),
             (_f((2, 5), dt), _f((5, 5), dt, 1), _f((4, 2, 5), dt, 2))),
            (f"outlined_const_mix_{name}", vg(_outlined_const_mix, argnums=(0, 1)),
             (_f((4, 4), dt), _f((4, 4), dt, 1))),
            (f"mlp_{name}", vg(_mlp_loss), _mlp_data(dt)),
            (f"scalar_arg_{name}", vg(_scalar_arg, argnums=(0, 1)), (_f(5, dt), 0.5)),
            (f"hessian_{name}", _hessian, (_f(4, dt),)),
            (f"jvp_{name}", _jvp, (_f(4, dt), _f(4, dt, 1))),
            (f"bool_{name}", _bool_ops, (np.array([True, False, True, True]), _f(4, dt))),
            (f"big_rows_{name}", vg(lambda x, y: gc.sum(gc.logsumexp(gc.tanh(x) * y, axis=1))
                                     + gc.sum(gc.max(x, axis=1)), argnums=(0, 1)),
             (gc.Spec((300, 256), dt), gc.Spec((300, 256), dt))),
            (f"big_flat_{name}", vg(lambda x, y: gc.sum(gc.exp(x) * y + gc.sin(x)), argnums=(0, 1)),
             (gc.Spec((70000,), dt), gc.Spec((70000,), dt))),
            (f"big_cols_{name}", lambda x: (gc.sum(x, axis=0), gc.max(x, axis=0), gc.sum(x * x)),
             (gc.Spec((400, 300), dt),)),
            (f"identity_const_{name}", lambda x: (x, np.ones(3, dt), 2.5, x[::-1]), (_f(3, dt),)),
            (f"public_elementwise_{name}", vg(_public_elementwise, argnums=(0, 1)),
             (_f(5, dt), _f(5, dt, 1))),
            (f"linalg_{name}", vg(lambda a, b: gc.sum(np.linalg.solve(a, b)) + np.linalg.det(a)
                                  + gc.sum(np.linalg.cholesky(a @ a.T)), argnums=(0, 1)),
             (_f((3, 3), dt), _f((3, 2), dt, 1))),
            (f"random_{name}", lambda x, key: (gc.random.split(key)[1],
                                               x * gc.random.uniform(key, x.shape, dt)),
             (_f(4, dt), gc.random.key(5))),
            (f"scan_{name}", vg(lambda x, w: gc.sum(gc.scan(lambda h, xt: (gc.tanh(h @ w + xt), h),
                                                            x[0], x)[1]), argnums=(0, 1)),
             (gc.Spec((6, 2, 3), dt), gc.Spec((3, 3), dt))),
        ]
        for idt in (np.int32, np.int64):
            cases.append((f"int_{np.dtype(idt).name}_{name}", _int_ops,
                          _int_inputs(idt) + (_f((4, 3), dt),)))
    return cases


def _public_elementwise(x, y):
    """Every elementwise primitive made from its entry alone (values do not matter: compiled only)."""
    total = 0.0
    for prim in gc.PRIMITIVES.values():
        if prim.public:
            fn = getattr(gc, prim.name)
            total = total + gc.sum(fn(x) if prim.kind == "unary" else fn(x, y))
    return total


WARNING_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-fsyntax-only"]


def _jit_warning_flags(cc):
    """The JIT's own macros and optimisation (OpenMP, SIMD pragmas, OpenBLAS, vector math), compiled
    for real (-c): the optimiser's warnings (-Wmaybe-uninitialized, -Warray-bounds) count too."""
    flags = [f for f in cbuild.JIT_FLAGS if f.startswith(("-D", "-fopenmp", "-std", "-O", "-m"))]
    flags += list(cbuild.vector_math_flags(cc)[0])
    flags += [f for f in cbuild.blas_flags() if f.startswith("-D")]
    return ["-Wall", "-Wextra", "-Werror", *flags, "-c", "-o", os.devnull]


def _syntax_check(args):
    cc, path, flags = args
    proc = subprocess.run([cc, *flags, f"-I{cbuild.CSRC}", str(path)], capture_output=True,
                          text=True, timeout=120)
    return proc.returncode, proc.stderr


def test_generated_c_compiles_without_warnings(tmp_path, monkeypatch):
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    monkeypatch.setenv("GRADC_NUM_THREADS", "4")       # big loops get their threaded form
    jit_flags = _jit_warning_flags(cc)
    seen_lowered, seen_traced, jobs, lowering_errors = set(), set(), [], {}
    for name, fn, args in _warning_cases():
        try:
            lowered = gc.jit(fn).lower(*args)
            src = lowered.c_source
        except Exception as e:       # noqa: BLE001 -- reported below
            lowering_errors[name] = f"{type(e).__name__}: {e}"
            continue
        seen_lowered |= {n.prim.name for n in lowered.graph.nodes}
        seen_traced |= {n.prim.name for n in lowered.traced_graph.nodes}
        path = tmp_path / f"{name}.c"
        path.write_text(src)
        jobs.append((name, (cc, path, WARNING_FLAGS)))
        jobs.append((name + "[jit flags]", (cc, path, jit_flags)))
    with concurrent.futures.ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(_syntax_check, [j[1] for j in jobs]))
    failures = {name: err.strip()[:1500] for (name, _), (rc, err) in zip(jobs, results) if rc != 0}
    assert not lowering_errors, f"cases that failed to lower: {lowering_errors}"

    # coverage: every primitive with a C form appears in some compiled graph
    with_c = {p.name for p in gc.PRIMITIVES.values() if p.c is not None}
    # stop_gradient marks the traced graph only: the simplifier removes it before lowering.
    only_traced = {"stop_gradient"}
    missing = sorted(with_c - seen_lowered - only_traced)
    missing_traced = sorted(only_traced - seen_traced)
    assert not failures, "generated C does not compile cleanly:\n" + "\n\n".join(
        f"== {k}:\n{v}" for k, v in failures.items())
    assert not missing and not missing_traced, \
        f"primitives no warning case compiles: {missing + missing_traced}"


# ---- 8. the native fast path ------------------------------------------------------------------------

def test_fast_path_is_built_and_used(monkeypatch):
    try:
        from gradc import _fastcall
    except ImportError as e:
        pytest.skip(f"gradc._fastcall extension not built: {e}")
    assert hasattr(_fastcall, "Entry")
    rng = np.random.default_rng(RNG_SEED)
    W = rng.standard_normal((6, 4))
    X = rng.standard_normal((5, 6))

    def loss(W, X, s):
        return gc.sum(gc.tanh(X @ W) * s)

    fn = gc.value_and_grad(loss, argnums=(0, 1))
    jitted = gc.jit(fn)
    compiled = jitted.lower(W, X, 0.5).compile()
    assert compiled.fast_path() is not None, "the compiled function has no native entry"
    first = jitted(W, X, 0.5)                                   # compiles; general path
    from_lists = compiled(W.tolist(), X.tolist(), 0.5)           # lists: converted, general path
    assert_trees_equal(from_lists, first, "list input")
    as_tree = gc.jit(lambda args, s: fn(*args, s))([W, X], 0.5)  # a list pytree: general path
    assert_trees_equal(as_tree, first, "list pytree input")

    # From now on a call with exactly matching arrays must not reach the Python call path.
    def general_path(*args, **kwargs):
        raise AssertionError("the general (Python) call path was used")

    jitted(W, X, 0.5)
    monkeypatch.setattr(gc.Compiled, "call_leaves", general_path)
    fast = jitted(W, X, 0.5)
    assert_trees_equal(fast, first, "fast path")
    fast2 = jitted(W, X, 0.25)
    assert_trees_equal(fast2[1], gc.tree_map(lambda g: g * 0.5, first[1]), "fast path, scalar")
    assert fast[0] is not first[0] and not np.shares_memory(fast[1][0], first[1][0])
    assert not np.shares_memory(fast[1][0], fast2[1][0])
    with pytest.raises(AssertionError, match="general"):
        jitted(np.asfortranarray(W), X, 0.5)         # not C-contiguous: the general path
    with pytest.raises(AssertionError, match="general"):
        jitted(W, X, s=0.5)                          # keywords: the general path
    monkeypatch.undo()
    assert_trees_equal(jitted(np.asfortranarray(W), X, 0.5), first, "after the fast calls")
    assert_trees_equal(jitted(W, X, s=0.5), first, "keyword call")


# ---- BLAS choice: MKL where installed on Intel CPUs, else OpenBLAS, GRADC_BLAS to choose ---------

@pytest.fixture
def fresh_blas_choice(monkeypatch):
    """blas.kind() recomputed under the test's environment (it is cached per process)."""
    from gradc.cbackend import blas
    blas.kind.cache_clear()
    yield blas, monkeypatch
    blas.kind.cache_clear()


@pytest.mark.parametrize("vendor, mkl, openblas, expected", [
    ("GenuineIntel", "/x/libmkl_rt.so.3", "/y", "mkl"),
    ("AuthenticAMD", "/x/libmkl_rt.so.3", "/y", "openblas"),     # MKL's AMD paths are not its best
    ("GenuineIntel", None, "/y", "openblas"),
    ("GenuineIntel", None, None, None),                            # the plain C GEMM
])
def test_default_blas_choice(fresh_blas_choice, vendor, mkl, openblas, expected):
    blas, monkeypatch = fresh_blas_choice
    monkeypatch.delenv("GRADC_BLAS", raising=False)
    monkeypatch.setattr(blas, "cpu_vendor", lambda: vendor)
    monkeypatch.setattr(blas, "mkl_library", lambda: mkl)
    monkeypatch.setattr(blas, "lib_dir", lambda: openblas)
    assert blas.kind() == expected


@pytest.mark.parametrize("asked, message", [
    ("magma", "GRADC_BLAS='magma': expected one of mkl, openblas, none"),
    ("mkl", "GRADC_BLAS=mkl but MKL is not installed (pip install mkl)"),
])
def test_bad_blas_choice_is_a_clear_error(fresh_blas_choice, asked, message):
    blas, monkeypatch = fresh_blas_choice
    monkeypatch.setenv("GRADC_BLAS", asked)
    monkeypatch.setattr(blas, "mkl_library", lambda: None)
    with pytest.raises(ValueError) as e:
        blas.kind()
    assert str(e.value) == message


def test_small_products_get_one_jit_slot_per_shape(monkeypatch):
    """Small GEMMs name a slot of the kernel's JIT table; equal shapes share one; the constructor
    that fills the table is compiled only with MKL; large products call the GEMM, on 2 threads one
    block of rows each."""
    def f(a, b, w):
        return gc.tanh(a @ w) @ w, gc.tanh(b @ w)
    a, b = np.ones((4, 8), np.float32), np.ones((4, 8), np.float32)
    w = np.ones((8, 8), np.float32)
    src = gc.jit(f).lower(a, b, w).c_source
    assert "gradc_gemm_small_f(&gradc_kernel_jit_f[0], 0, 0, 4, 8, 8," in src, src
    assert "static gradc_jit_f gradc_kernel_jit_f[1];" in src          # 3 products, one shape
    assert src.count("gradc_jit_make_f(") == 1
    assert "#ifdef GRADC_HAVE_MKL\nGRADC_CONSTRUCTOR static void gradc_kernel_jit(void)" in src
    big = np.ones((256, 256), np.float32)
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")
    src = gc.jit(lambda x: x @ x).lower(big).c_source
    assert "gradc_gemm_f(0, 0, 256, 256, 256" in src and "jit" not in strip_comments(src)
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    src = gc.jit(lambda x: x @ x).lower(big).c_source
    assert "GRADC_CHUNKS(r, 2) {" in src and "jit" not in strip_comments(src)
    assert "gradc_gemm_f(0, 0, 128, 256, 256, p_a + r * 32768 + bi * 65536" in src, src


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_of_products_accumulate_in_place(dtype):
    """The gradient of a weight shared by the steps of an unrolled loop is a sum of products: the
    terms whose operands are values the plan places side by side run as one GEMM over the stacked
    k (stack.py); the term reading xs[0] adds into the same memory (beta = 1); no loop adds
    partial products."""
    rng = np.random.default_rng(RNG_SEED)
    W = (0.3 * rng.standard_normal((6, 6))).astype(dtype)
    xs = rng.standard_normal((5, 4, 6)).astype(dtype)

    def loss(W, xs):
        h = xs[0]
        for t in range(1, 5):
            h = gc.tanh(h @ W + xs[t])
        return gc.sum(h * h)

    lowered = gc.jit(gc.grad(loss)).lower(W, xs)
    src = lowered.c_source
    accumulating = [c for c in gemm_calls(src) if c[11] == 1]
    stacked = [c for c in gemm_calls(src) if c[4] == 3 * 4]          # k: 3 steps of 4 rows
    assert "sum of 3 products stacked along k" in src, src
    assert len(accumulating) == 1 and len(stacked) == 1 and accumulating[0][9] == stacked[0][9], src
    for nest in re.findall(r"loop over \[6, 6\].*?\n    \}", src, re.S):     # W^T copied once only
        assert " = add " not in nest, f"partial products added by a loop:\n{src}"
    got = lowered.compile()(W, xs)
    want = gc.jit(gc.grad(loss), backend="numpy")(W.astype(np.float64), xs.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_of_products_stack_along_k(dtype, monkeypatch):
    """sum_t U_t^T @ V_t runs as one GEMM over k stacked, when each side's blocks follow each
    other in memory: slices of one input (in any order in the sum), or values the plan places
    side by side (a group, shared by two sums). A term reading an input among values (h0), and a
    sum whose blocks are also returned (their memory is the caller's), keep products of their own.
    The big one (64x64x2048) is shared by two threads by rows."""
    from gradc.cbackend import backend, split
    monkeypatch.setattr(backend, "default_threads", lambda graph: 2)
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", 1 << 62)      # the sums as they run unsplit
    rng = np.random.default_rng(RNG_SEED)
    Wx, Wh = ((0.3 * rng.standard_normal(s)).astype(dtype) for s in ((5, 6), (6, 6)))
    xs, h0 = rng.standard_normal((4, 3, 5)).astype(dtype), rng.standard_normal((3, 6)).astype(dtype)
    us, vs = rng.standard_normal((8, 256, 64)).astype(dtype), rng.standard_normal((8, 256, 64)).astype(dtype)

    def rnn(Wx, Wh, xs, h0):
        h = h0
        for t in range(4):
            h = gc.tanh(xs[t] @ Wx + h @ Wh)
        return gc.sum(h * h)

    def f(Wx, Wh, xs, h0, us, vs):
        grads = gc.grad(rnn, argnums=(0, 1))(Wx, Wh, xs, h0)
        backwards = us[7].T @ vs[7]
        for t in range(6, -1, -1):
            backwards = backwards + us[t].T @ vs[t]
        hs = [gc.tanh(xs[t] * 2.0) for t in range(3)]
        returned = hs[0].T @ hs[0] + hs[1].T @ hs[1] + hs[2].T @ hs[2]
        return grads, backwards, returned, hs
    args = (Wx, Wh, xs, h0, us, vs)
    lowered = gc.jit(f).lower(*args)
    src = lowered.c_source
    assert "sum of 4 products stacked along k " in src and "sum of 3 products stacked along k " in src, src
    assert "sum of 8 products stacked along k, 2 blocks of 32 rows" in src, src
    assert src.count("stacked along k") == 3, src
    got = lowered.compile()(*args)
    want = gc.jit(f, backend="numpy")(*(a.astype(np.float64) for a in args))
    assert_trees_close(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                       atol=1e-4 if dtype == np.float32 else 1e-10)


def test_a_transposed_b_read_by_several_small_products_is_copied_once():
    """MKL's small kernels run B^T at about 60% of the untransposed rate: a W.T that several small
    products read is copied once; a W.T read once stays folded into the GEMM call."""
    rng = np.random.default_rng(RNG_SEED)
    W, a, b = (rng.standard_normal(s).astype(np.float32) for s in ((8, 8), (4, 8), (4, 8)))
    src = gc.jit(lambda W, a, b: (a @ W.T, b @ W.T)).lower(W, a, b).c_source
    calls = gemm_calls(src)
    assert calls and all(c[1] == 0 for c in calls), src     # (equal products share one function)
    assert src.count("= transpose ") == 1, src
    once = gc.jit(lambda W, a: a @ W.T).lower(W, a).c_source
    assert [c[1] for c in gemm_calls(once)] == [1] and "= transpose " not in once, once
    got = gc.jit(lambda W, a, b: (a @ W.T, b @ W.T))(W, a, b)
    np.testing.assert_allclose(got[0], a @ W.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], b @ W.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_shared_among_threads_by_rows_or_by_k(dtype, monkeypatch):
    """A product too big for one thread runs as blocks of its rows (4 a thread, of 128 rows or
    more; else one a thread) that the threads claim; one whose rows do not divide among the
    threads (127) runs half of k per thread, the second half into a copy added after. Plain, A or B stored transposed, batched, and as terms of sums of
    products (beta = 1); MKL's kernel for the block's shape, any BLAS's GEMM without MKL."""
    from gradc.cbackend import backend
    monkeypatch.setattr(backend, "default_threads", lambda graph: 2)
    rng = np.random.default_rng(RNG_SEED)
    x, w = rng.standard_normal((1024, 256)).astype(dtype), rng.standard_normal((256, 10)).astype(dtype)
    d = rng.standard_normal((1024, 10)).astype(dtype)
    xs = rng.standard_normal((2, 2, 256, 1024)).astype(dtype)
    xk, dk = rng.standard_normal((2048, 127)).astype(dtype), rng.standard_normal((2048, 10)).astype(dtype)

    def f(x, w, d, xs, xk, dk):
        return (x @ w, d @ w.T, xs[0].transpose(0, 2, 1) @ w, (x * 2.0) @ w + gc.tanh(x) @ w,
                xk.T @ dk, (xk * 2.0).T @ dk + gc.tanh(xk).T @ dk)
    args = (x, w, d, xs, xk, dk)
    lowered = gc.jit(f).lower(*args)
    src = lowered.c_source
    assert src.count(", 8 blocks of 128 rows") == 5 and src.count(", 2 threads, 1024 of k each") == 3, src
    # (ta, tb, rows, k, beta) of the block calls; equal calls share one function
    blocks = {(c[0], c[1], c[2], c[4], c[11]) for c in gemm_calls(src) if "r * " in c[5]}
    assert blocks == {(0, 0, 128, 256, 0), (0, 0, 128, 256, 1), (0, 1, 128, 10, 0),
                      (1, 0, 128, 256, 0), (1, 0, 127, 1024, 0), (1, 0, 127, 1024, 1)}, (blocks, src)
    got = lowered.compile()(*args)
    x, w, d, xs, xk, dk = (a.astype(np.float64) for a in args)
    want = (x @ w, d @ w.T, xs[0].transpose(0, 2, 1) @ w, (x * 2) @ w + np.tanh(x) @ w,
            xk.T @ dk, (xk * 2).T @ dk + np.tanh(xk).T @ dk)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * 100)


@pytest.mark.parametrize("choice", [
    pytest.param("mkl", marks=pytest.mark.skipif(cblas.mkl_library() is None,
                                                 reason="MKL is not installed (pip install gradc[mkl])")),
    "openblas", "none"])
def test_each_blas_gives_numpys_products(choice, tmp_path):
    """Every BLAS choice, in a fresh process, against NumPy: small (JIT) and large (threaded)
    products, transposed operands, both dtypes, a batch, sums of products (beta = 1)."""
    script = textwrap.dedent("""
        import numpy as np, gradc as gc
        from gradc.cbackend import blas
        rng = np.random.default_rng(0)
        for dt in (np.float32, np.float64):
            for m, n, k in ((3, 5, 7), (16, 64, 64), (300, 200, 150)):
                a = rng.standard_normal((k, m)).astype(dt)
                b = rng.standard_normal((n, k)).astype(dt)
                got = gc.jit(lambda a, b: a.T @ b.T)(a, b)
                want = a.T.astype(np.float64) @ b.T.astype(np.float64)
                tol = 1e-4 if dt == np.float32 else 1e-10
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol * k)
            x = rng.standard_normal((4, 6, 5)).astype(dt)
            np.testing.assert_allclose(gc.jit(lambda x: x @ x.transpose(0, 2, 1))(x),
                                       x @ x.transpose(0, 2, 1), rtol=1e-4, atol=1e-4)
            for m, n, k in ((3, 5, 7), (16, 64, 64), (300, 200, 150)):   # sums of products
                a, b = rng.standard_normal((3, k, m)).astype(dt), rng.standard_normal((3, k, n)).astype(dt)
                got = gc.jit(lambda a, b: a[0].T @ b[0] + (a[1].T @ b[1] + a[2].T @ b[2]))(a, b)
                want = np.einsum("tkm,tkn->mn", a.astype(np.float64), b.astype(np.float64))
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol * k)
        print("BLAS", blas.kind())
    """)
    env = {**os.environ, "GRADC_BLAS": choice, "GRADC_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"BLAS {None if choice == 'none' else choice}" in proc.stdout


def test_view_folded_into_a_product_and_read_by_another_call(backend):
    """x.T is folded into the GEMM and also gathered: the gather reads it from memory, which
    must be stored and kept alive (was a KeyError, then a read of overwritten memory)."""
    f = lambda x, i: gc.sum(x.T @ x) + gc.sum(x.T[i])          # noqa: E731
    x, i = np.arange(12.0).reshape(4, 3), np.array([0, 2])
    assert gc.jit(f, backend=backend)(x, i) == np.sum(x.T @ x) + np.sum(x.T[i])


def test_compiler_probes_are_kept_in_the_cache_folder(tmp_path, monkeypatch):
    """The compiler's --version and libmvec probes (a process each) run once per compiler: later
    processes read them from the cache folder; a corrupt record is probed again."""
    from gradc.cbackend import build
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    cc = build.find_compiler()
    build._compiler_facts.cache_clear()
    try:
        first = build._compiler_facts(cc)
        assert (tmp_path / "compilers.json").exists() and first["identity"]
        build._compiler_facts.cache_clear()
        probed = []
        monkeypatch.setattr(build, "_probe_compiler",
                            lambda c: probed.append(c) or {"identity": "other", "libmvec": False})
        assert build._compiler_facts(cc) == first and probed == []
        (tmp_path / "compilers.json").write_text("{")
        build._compiler_facts.cache_clear()
        assert build._compiler_facts(cc) == {"identity": "other", "libmvec": False}
        assert probed == [cc]
    finally:
        build._compiler_facts.cache_clear()


def test_kernels_load_with_a_bounded_openmp_spin(monkeypatch):
    """GNU OpenMP reads GOMP_SPINCOUNT when the first threaded kernel loads it: gradc's bound is
    set around each load and removed after; a user's GOMP_SPINCOUNT or OMP_WAIT_POLICY stays."""
    from gradc.cbackend import backend
    seen = []
    monkeypatch.setattr(backend._ffi, "dlopen", lambda path: seen.append(
        (os.environ.get("GOMP_SPINCOUNT"), os.environ.get("OMP_WAIT_POLICY"))) or path)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert backend._dlopen("lib.so") == "lib.so" and "GOMP_SPINCOUNT" not in os.environ
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")
    backend._dlopen("lib.so")
    monkeypatch.delenv("OMP_WAIT_POLICY")
    monkeypatch.setenv("GOMP_SPINCOUNT", "5")
    backend._dlopen("lib.so")
    assert seen == [(backend.GOMP_SPINCOUNT, None), (None, "passive"), ("5", None)]
    assert os.environ["GOMP_SPINCOUNT"] == "5"


def test_big_kernels_compile_at_O1_with_the_vectoriser(tmp_path, monkeypatch):
    """Sources over LARGE_SOURCE_CHARS of code (comments aside) compile with -O1 -ftree-vectorize,
    the others with -O2; both load and run."""
    from gradc.cbackend import build
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    commands = []
    run = build.subprocess.run
    monkeypatch.setattr(build.subprocess, "run", lambda cmd, **k: commands.append(cmd) or run(cmd, **k))
    small = "int f(void) { return 1; }\n/* " + "x" * build.LARGE_SOURCE_CHARS + " */\n"
    big = small + "".join(f"int g{i}(int x) {{ return x * {i} + 1; }}\n"
                          for i in range(build.LARGE_SOURCE_CHARS // 20))
    for source, level in ((small, "-O2"), (big, "-O1")):
        lib, path, _, hit = build.load_shared(source, ffi_for_f().dlopen, blas=False)
        assert not hit and lib.f() == 1
        cmd = commands[-1]
        assert level in cmd and ("-ftree-vectorize" in cmd) == (level == "-O1"), cmd
        assert ("-O2" in cmd) == (level == "-O2")


def ffi_for_f():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("int f(void);")
    return ffi


def test_threaded_kernels_give_the_same_bits_on_any_number_of_threads(monkeypatch):
    """Threaded loops and products run as fixed chunks (chunk t the same rows and partial sums
    whichever thread claims it, the partials added in chunk order): every call of the threaded
    kernel, and the same C built without OpenMP (one thread running the chunks in order), give
    the same bits."""
    import cffi
    from gradc.cbackend import backend, build
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    rng = np.random.default_rng(RNG_SEED)
    x = rng.standard_normal((1024, 512)).astype(np.float32)
    w = rng.standard_normal((512, 256)).astype(np.float32)

    def f(x, w):
        return gc.sum(gc.exp(x * 0.1)), gc.sum(x * x, axis=0), gc.tanh(x) @ w
    lowered = gc.jit(f).lower(x, w)
    code = backend.CSource(lowered)
    assert "GRADC_CHUNKS(t, 8)" in code.source and "GRADC_CHUNKS(r, 8)" in code.source
    assert not code.consts
    threaded = lowered.compile()
    first = threaded(x, w)
    for _ in range(20):
        for got, want in zip(threaded(x, w), first):
            assert got.tobytes() == want.tobytes()
    ffi = cffi.FFI()
    ffi.cdef("int gradc_kernel(void **args, void *work);")
    lib = build.load_shared(code.source, ffi.dlopen, blas=code.uses_blas)[0]    # no -fopenmp
    outs = [np.empty(o.shape, o.dtype) for o in lowered.graph.outputs]
    work = np.empty(max(code.workspace_bytes, 1), np.uint8)
    argv = ffi.new("void *[]", [ffi.from_buffer(a) for a in (x, w, *outs)])
    assert lib.gradc_kernel(argv, ffi.from_buffer(work)) == 0
    for got, want in zip(outs, first):
        assert got.tobytes() == want.tobytes()
    np.testing.assert_allclose(first[2], np.tanh(x.astype(np.float64)) @ w, rtol=1e-4, atol=1e-3)


def test_a_process_with_threaded_kernels_exits_cleanly(tmp_path, monkeypatch):
    """The OpenMP runtime stays loaded after the kernels that brought it in are unloaded (at exit
    at the latest): with threads that never sleep (OMP_WAIT_POLICY=active) unloading it under them
    crashed every such process at exit."""
    import subprocess
    import sys
    script = ("import numpy as np, gradc as gc\n"
              "x = np.full(1 << 20, 0.5, np.float32)\n"
              "f = gc.jit(lambda x: gc.sum(gc.exp(x)))\n"
              "print(float(f(x)))\n")
    env = {**os.environ, "GRADC_NUM_THREADS": "2", "OMP_WAIT_POLICY": "active",
           "GRADC_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(Path(gc.__file__).parent.parent)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(float(out.stdout) - np.exp(0.5) * (1 << 20)) < 1e-3 * np.exp(0.5) * (1 << 20)
    monkeypatch.setenv("GRADC_NUM_THREADS", "2")
    assert "GRADC_PARALLEL" in gc.jit(lambda x: gc.sum(gc.exp(x))).lower(
        np.full(1 << 20, 0.5, np.float32)).c_source


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_stack_of_matrices_times_a_matrix_is_one_product(dtype):
    """x (B, T, D) @ W (D, F) is one GEMM of B*T rows (not B products against copies of W), and
    W's gradient one GEMM over B*T (not B products summed); a transposed stack stays a batch."""
    rng = np.random.default_rng(RNG_SEED)
    x, W = rng.standard_normal((4, 6, 5)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)

    def loss(W, x):
        return gc.sum(gc.tanh(x @ W) ** 2)
    f = gc.value_and_grad(loss)
    src = gc.jit(f).lower(W, x).c_source
    calls = gemm_calls(src)
    assert len(calls) == 2 and "broadcast_to" not in src, src
    assert sorted((c[2], c[3], c[4]) for c in calls) == [(5, 3, 24), (24, 3, 5)], calls
    value, grad = gc.jit(f)(W, x)
    x64, W64 = x.astype(np.float64), W.astype(np.float64)
    h = np.tanh(x64 @ W64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, np.sum(h ** 2), rtol=tol)
    np.testing.assert_allclose(grad, np.einsum("btd,btf->df", x64, 2 * h * (1 - h ** 2)), rtol=tol,
                               atol=tol)
    stacked = gc.jit(lambda W, x: gc.transpose(x, (0, 2, 1)) @ W).lower(W, x.transpose(0, 2, 1))
    assert [(c[2], c[3], c[4]) for c in gemm_calls(stacked.c_source)] == [(6, 3, 5)]
    np.testing.assert_allclose(stacked.compile()(W, x.transpose(0, 2, 1)), x @ W, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_transposed_product_is_the_product_of_transposes(dtype):
    """(a @ b)^T runs as b^T @ a^T (operands read transposed in place, no copy of the result)
    when nothing else reads a @ b; otherwise the product is computed once and transposed."""
    from gradc.simplify import simplify
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.standard_normal((3, 5, 4)).astype(dtype), rng.standard_normal((3, 4, 6)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    alone = lambda a, b: gc.transpose(a @ b, (0, 2, 1)) * 2.0          # noqa: E731
    shared = lambda a, b: (gc.transpose(a @ b, (0, 2, 1)), a @ b)       # noqa: E731
    graph = simplify(gc.jit(alone).lower(a, b).graph)
    assert [n.prim.name for n in graph.nodes if n.prim.name in ("matmul", "transpose")] == \
        ["transpose", "transpose", "matmul"]
    src = gc.jit(alone).lower(a, b).c_source
    assert len(gemm_calls(src)) == 1 and "= transpose " not in src, src
    for backend in ("c", "numpy"):
        np.testing.assert_allclose(gc.jit(alone, backend=backend)(a, b),
                                   (a @ b).transpose(0, 2, 1) * 2.0, **tol)
        got_t, got = gc.jit(shared, backend=backend)(a, b)
        np.testing.assert_allclose(got_t, (a @ b).transpose(0, 2, 1), **tol)
        np.testing.assert_allclose(got, a @ b, **tol)
    assert len(gemm_calls(gc.jit(shared).lower(a, b).c_source)) == 1


def test_kernels_that_link_openblas_link_with_gold_where_gcc_has_it():
    """ld.bfd reading OpenBLAS's symbols cost ~18 ms of each such kernel's build."""
    import shutil
    flags = cbuild.blas_flags()
    links = any(f.startswith("-l") for f in flags)
    gcc = "clang" not in cbuild.compiler_identity(cbuild.find_compiler()).lower()
    assert ("-fuse-ld=gold" in flags) == (links and gcc and shutil.which("ld.gold") is not None)
    rng = np.random.default_rng(RNG_SEED)
    a, b = rng.standard_normal((64, 32)), rng.standard_normal((32, 16))
    np.testing.assert_allclose(gc.jit(lambda a, b: a @ b)(a, b), a @ b, rtol=1e-12, atol=1e-12)


# ---- light headers: the C library declared, not parsed (csrc/gradc_runtime.h) ---------------------

def test_jit_builds_declare_the_c_library_and_refuse_an_undeclared_function(fresh_cache):
    from gradc.cbackend import build
    assert "-DGRADC_LIGHT_HEADERS" in build.JIT_FLAGS
    ok = ('#include "gradc_runtime.h"\n'
          "float gradc_probe(float x) { return isnan(x) ? NAN : expf(x) + fmaxf(x, INFINITY); }\n")
    build.compile_shared(ok, blas=False)
    # j0f (a Bessel function) is in glibc's libm but not among the declarations: with <math.h>
    # unparsed it must be a compile error, not an implicit int-returning function.
    missing = '#include "gradc_runtime.h"\nfloat gradc_probe(float x) { return j0f(x); }\n'
    with pytest.raises(gc.CompileError, match="j0f"):
        build.compile_shared(missing, blas=False)


def test_light_and_full_headers_compile_a_kernel_to_the_same_code(tmp_path):
    """The declarations change how long the compiler parses, not what it makes of the kernel."""
    from gradc.cbackend import build
    cc = build.find_compiler()
    if "clang" in build.compiler_identity(cc).lower():
        pytest.skip("compared with GCC's assembly")
    f = gc.jit(gc.value_and_grad(lambda x: gc.sum(gc.tanh(x) * gc.exp(-x) + gc.sqrt(gc.abs(x)))))
    f(np.linspace(-2, 2, 1000, dtype=np.float32))
    source = next(build.cache_dir().glob("*.c"))
    asm = {}
    for light in (True, False):
        flags = [fl for fl in build.JIT_FLAGS if fl != "-shared" and (light or "LIGHT" not in fl)]
        out = tmp_path / f"{light}.s"
        subprocess.run([cc, *flags, "-DGRADC_VECTOR_MATH", f"-I{build.CSRC}", "-S", str(source),
                        "-o", str(out)], check=True)
        text = re.sub(r"\.L(FB|FE)\d+", "", out.read_text())    # function ordinals differ
        asm[light] = [ln for ln in text.splitlines() if not ln.strip().startswith((".file", ".ident"))]
    assert asm[True] == asm[False]
