"""Loops that stay loops (issue 14): gc.scan / gc.fori_loop against the unrolled gradc kernel, JAX
(jax.jit of lax.scan) and PyTorch eager where installed, and a hand-written NumPy loop.

    python -m bench.loops [--quick] [--engines gradc,unrolled,jax,torch,numpy]

rnn_scan[T]: h = tanh(x_t Wx + h Wh + b) over T steps (H=64, batch 16, 32 inputs); loss = sum of
h_t^2 over all steps / T (a loss at every step, so the cotangents stay normal floats: a loss on the
last step alone makes them decay to denormals over a long sequence, which measures the FPU's
denormal path, not the loop); value and gradients w.r.t. Wx, Wh, b.
ode_rk4: 1,000 RK4 steps of a Lotka-Volterra system; gradient of a final-state loss w.r.t. its four
parameters.
Per call: the best of interleaved batches (the machine is shared: minimums are the stable figure).
Cold setup: trace + compile + first call, each in a fresh process with an empty gradc cache (the
first call runs all T steps, so it grows with T); trace + compile: without that first call.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

IN, H, B = 32, 64, 16
RNN_T = (16, 64, 1024, 4096, 16384)
UNROLLED_T = (16, 64)            # unrolling longer sequences takes minutes to trace and compile
ODE_STEPS, ODE_DT = 1000, 0.01


def rnn_inputs(T, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return ((rng.standard_normal((IN, H)) / np.sqrt(IN)).astype(f32),
            (0.5 * rng.standard_normal((H, H)) / np.sqrt(H)).astype(f32),
            (0.1 * rng.standard_normal(H)).astype(f32),
            rng.standard_normal((T, B, IN)).astype(f32), np.zeros((B, H), f32))


def ode_inputs():
    return np.array([1.1, 0.4, 0.1, 0.4]), np.array([10.0, 5.0]), np.array([2.0, 3.0])


def best_per_call(fn, args, budget_s=1.0, batches=7):
    fn(*args)
    t = time.perf_counter()
    fn(*args)
    once = max(time.perf_counter() - t, 1e-7)
    n = max(1, int(budget_s / batches / once))
    best = float("inf")
    for _ in range(batches):
        t = time.perf_counter()
        for _ in range(n):
            fn(*args)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def rk4_step(f, y):
    """One classical Runge-Kutta step of dy/dt = f(y) (any array namespace)."""
    k1 = f(y)
    k2 = f(y + ODE_DT / 2 * k1)
    k3 = f(y + ODE_DT / 2 * k2)
    k4 = f(y + ODE_DT * k3)
    return y + ODE_DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


# ---- gradc ---------------------------------------------------------------------------------------

def gradc_rnn(T, unrolled=False):
    import gradc as gc

    def loss(Wx, Wh, b, xs, h0):
        if unrolled:
            h, total = h0, 0.0
            for t in range(xs.shape[0]):
                h = gc.tanh(xs[t] @ Wx + h @ Wh + b)
                total = total + gc.sum(h * h)
            return total / xs.shape[0]

        def step(h, x):
            h = gc.tanh(x @ Wx + h @ Wh + b)
            return h, gc.sum(h * h)
        _, sq = gc.scan(step, h0, xs)
        return gc.sum(sq) / xs.shape[0]
    return gc.jit(gc.value_and_grad(loss, argnums=(0, 1, 2)))


def gradc_ode():
    import gradc as gc

    def rk4(p, y0, target):
        def f(y):
            a, b, c, d = p[0], p[1], p[2], p[3]
            return gc.stack([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])

        y = gc.fori_loop(0, ODE_STEPS, lambda i, y: rk4_step(f, y), y0)
        return gc.sum((y - target) ** 2)
    return gc.jit(gc.value_and_grad(rk4))


# ---- hand-written NumPy --------------------------------------------------------------------------

def numpy_ode(p, y0, target):
    """RK4 forward, storing each step's stages, and its adjoint by hand."""
    a, b, c, d = p
    h = ODE_DT

    def f(y):
        return np.array([a * y[0] - b * y[0] * y[1], c * y[0] * y[1] - d * y[1]])

    def jac_y(y):
        return np.array([[a - b * y[1], -b * y[0]], [c * y[1], c * y[0] - d]])

    def jac_p(y):
        return np.array([[y[0], -y[0] * y[1], 0, 0], [0, 0, y[0] * y[1], -y[1]]])

    y, tape = y0.astype(float), []
    for _ in range(ODE_STEPS):
        s1 = y
        k1 = f(s1)
        s2 = y + h / 2 * k1
        k2 = f(s2)
        s3 = y + h / 2 * k2
        k3 = f(s3)
        s4 = y + h * k3
        k4 = f(s4)
        tape.append((s1, s2, s3, s4))
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    value = np.sum((y - target) ** 2)
    gy, gp = 2 * (y - target), np.zeros(4)
    for s1, s2, s3, s4 in reversed(tape):
        gk4 = h / 6 * gy
        gs4 = jac_y(s4).T @ gk4
        gp += jac_p(s4).T @ gk4
        gk3 = h / 3 * gy + h * gs4
        gs3 = jac_y(s3).T @ gk3
        gp += jac_p(s3).T @ gk3
        gk2 = h / 3 * gy + h / 2 * gs3
        gs2 = jac_y(s2).T @ gk2
        gp += jac_p(s2).T @ gk2
        gk1 = h / 6 * gy + h / 2 * gs2
        gs1 = jac_y(s1).T @ gk1
        gp += jac_p(s1).T @ gk1
        gy = gy + gs1 + gs2 + gs3 + gs4
    return value, gp


# ---- peers ---------------------------------------------------------------------------------------

def jax_rnn(T):
    import jax
    import jax.numpy as jnp

    def loss(Wx, Wh, b, xs, h0):
        def step(h, x):
            h = jnp.tanh(x @ Wx + h @ Wh + b)
            return h, jnp.sum(h * h)
        _, sq = jax.lax.scan(step, h0, xs)
        return jnp.sum(sq) / xs.shape[0]
    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    return lambda *a: jax.block_until_ready(f(*a))


def jax_ode():
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)

    def rk4(p, y0, target):
        def f(y):
            return jnp.stack([p[0] * y[0] - p[1] * y[0] * y[1], p[2] * y[0] * y[1] - p[3] * y[1]])

        y = jax.lax.fori_loop(0, ODE_STEPS, lambda i, y: rk4_step(f, y), y0)
        return jnp.sum((y - target) ** 2)
    f = jax.jit(jax.value_and_grad(rk4))
    return lambda *a: jax.block_until_ready(f(*a))


def torch_rnn(T):
    import torch
    torch.set_num_threads(int(os.environ.get("GRADC_NUM_THREADS") or len(os.sched_getaffinity(0))))

    def run(Wx, Wh, b, xs, h0):
        Wx, Wh, b = (torch.tensor(v, requires_grad=True) for v in (Wx, Wh, b))
        h, total = torch.from_numpy(h0), 0.0
        for x in torch.from_numpy(xs):
            h = torch.tanh(x @ Wx + h @ Wh + b)
            total = total + (h * h).sum()
        loss = total / len(xs)
        loss.backward()
        return loss.item(), (Wx.grad.numpy(), Wh.grad.numpy(), b.grad.numpy())
    return run


# ---- driver --------------------------------------------------------------------------------------

MAKERS = {"gradc": gradc_rnn, "unrolled": lambda T: gradc_rnn(T, unrolled=True), "jax": jax_rnn,
          "torch": torch_rnn}


def measure(engine, workload, T, quick):
    """One (engine, workload) in this process: cold setup, per-call time, check, memory."""
    if workload == "ode_rk4":
        args = ode_inputs()
        make = {"gradc": gradc_ode, "jax": jax_ode, "numpy": lambda: numpy_ode}[engine]
    else:
        args = rnn_inputs(T)
        make = lambda: MAKERS[engine](T)       # noqa: E731
    start = time.perf_counter()
    fn = make()
    value, grads = fn(*args)
    cold = time.perf_counter() - start
    res = {"engine": engine, "workload": workload, "T": T, "cold_s": cold,
           "per_call_s": best_per_call(fn, args, 0.3 if quick else 1.5),
           "value": float(value), "grads": [np.asarray(g).tolist() for g in
                                            (grads if isinstance(grads, tuple) else (grads,))]}
    if engine in ("gradc", "unrolled"):
        compiled = next(iter(fn._cache.values()))
        res["workspace_bytes"] = compiled.stats["workspace_bytes"]
        res["nodes"] = compiled.stats["nodes"]
        res["compile_s"] = compiled.stats["compile_seconds"]       # C generation + cc + load
        start = time.perf_counter()
        lowered = fn.lower(*args)                                  # trace + simplify, again
        res["trace_s"] = time.perf_counter() - start
        res["c_source_chars"] = len(lowered.c_source)
    return res


def run_isolated(engine, workload, T, quick, python):
    """measure() in a fresh process with an empty gradc cache (a cold setup)."""
    with tempfile.TemporaryDirectory(prefix="gradc-loops-") as cache:
        env = dict(os.environ, GRADC_CACHE_DIR=cache)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = [python, "-m", "bench.loops", "--one", json.dumps([engine, workload, T, quick])]
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return {"engine": engine, "workload": workload, "T": T, "error": tail}


def _us(s):
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.0f} us"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--engines", default="gradc,unrolled,jax,torch,numpy")
    ap.add_argument("--lengths", default=",".join(map(str, RNN_T)))
    ap.add_argument("--python", default=sys.executable, help="interpreter for the JAX runs")
    ap.add_argument("--torch-python", default=sys.executable, help="interpreter for the torch runs")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.one:
        engine, workload, T, quick = json.loads(opts.one)
        print("RESULT " + json.dumps(measure(engine, workload, T, quick)), flush=True)
        return
    engines = opts.engines.split(",")
    rows = []
    for T in map(int, opts.lengths.split(",")):
        for engine in ("gradc", "unrolled", "jax", "torch"):
            if engine in engines and (engine != "unrolled" or T in UNROLLED_T):
                python = {"jax": opts.python,
                          "torch": opts.torch_python}.get(engine, sys.executable)
                rows.append(run_isolated(engine, "rnn_scan", T, opts.quick, python))
                print(json.dumps({k: v for k, v in rows[-1].items() if k != "grads"}),
                      file=sys.stderr, flush=True)
    for engine in ("gradc", "jax", "numpy"):
        if engine in engines:
            python = opts.python if engine == "jax" else sys.executable
            rows.append(run_isolated(engine, "ode_rk4", ODE_STEPS, opts.quick, python))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "grads"}),
                  file=sys.stderr, flush=True)
    report(rows)


def report(rows):
    """A markdown table: per call and cold setup, as ratios to gradc's scan in the same run."""
    print("| workload | engine | per call | vs gradc scan | cold setup | vs gradc scan | "
          "trace + compile | workspace | check |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = {(r["workload"], r["T"]): r for r in rows if r["engine"] == "gradc" and "error" not in r}
    for r in rows:
        name = f"{r['workload']}[{r['T']}]"
        if "error" in r:
            print(f"| {name} | {r['engine']} | failed: {r['error'][:60]} | | | | | | |")
            continue
        g = base.get((r["workload"], r["T"]))
        check = "-"
        if g is not None and r is not g:
            ok = all(np.allclose(a, b, rtol=2e-3, atol=1e-5)
                     for a, b in zip(r["grads"], g["grads"]))
            ok = ok and np.isclose(r["value"], g["value"], rtol=1e-4)
            check = "same grads" if ok else "DIFFERS"
        ratio = (lambda k: f"{r[k] / g[k]:.2f}x" if g else "")
        ws = f"{r['workspace_bytes'] / 2**20:.1f} MiB" if "workspace_bytes" in r else ""
        build = f"{r['trace_s'] + r['compile_s']:.2f} s" if "compile_s" in r else ""
        print(f"| {name} | {r['engine']} | {_us(r['per_call_s'])} | {ratio('per_call_s')} | "
              f"{r['cold_s']:.2f} s | {ratio('cold_s')} | {build} | {ws} | {check} |")


if __name__ == "__main__":
    main()
