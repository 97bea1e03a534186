"""Where a cold call's time goes: per workload, in a fresh process with an empty disk cache, the
seconds of importing gradc, tracing, simplifying, planning (the lowering passes), writing the C,
the C compiler, loading the library, and the first call's own run.

    python -m bench.cold [--workloads scalar,mlp[1024]] [--repeat 3]

Each stage is timed by wrapping the function that does it (gradc.jit.simplify, lower.lower,
emit.generate, the compiler's subprocess.run, cffi's dlopen); "trace" is the tracing step less
its simplification. Prints a Markdown table of medians over the repeats, in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

STAGES = ("import", "trace", "simplify", "plan", "C text", "cc", "load", "rest", "total")
DEFAULT = ("scalar", "elem[1e3]", "elem[1e5]", "elem[1e7]", "softmax[256]", "mlp[64]",
           "mlp[1024]", "rnn[16]", "rnn[64]", "transformer[8x128x64]")


def _child(workload):
    """Runs in the fresh process: one cold setup, its stages on stdout as JSON."""
    t0 = time.perf_counter()
    import gradc as gc
    imported = time.perf_counter() - t0
    from bench.workloads import WORKLOADS, inputs_for
    jit_module = sys.modules["gradc.jit"]
    from gradc.cbackend import backend, build, emit
    spent = dict.fromkeys(STAGES, 0.0)

    def timed(owner, attr, stage):
        fn = getattr(owner, attr)

        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[stage] += time.perf_counter() - start
        setattr(owner, attr, wrapper)

    timed(jit_module, "simplify", "simplify")
    timed(backend, "lower", "plan")
    timed(emit, "generate", "C text")
    timed(build.subprocess, "run", "cc")
    ffi = backend._ffi
    timed(ffi, "dlopen", "load")
    w = WORKLOADS[workload]
    inputs = inputs_for(w)
    time.sleep(0.3)                        # NumPy's BLAS threads asleep (see bench/worker.py)
    lower = jit_module.Jitted._lower
    traced = {"s": 0.0}

    def timed_lower(self, *a, **k):
        start = time.perf_counter()
        try:
            return lower(self, *a, **k)
        finally:
            traced["s"] += time.perf_counter() - start
    jit_module.Jitted._lower = timed_lower
    start = time.perf_counter()
    f = gc.jit(gc.value_and_grad(lambda *a: w.loss(gc, *a), argnums=w.argnums))
    f(*inputs)
    spent["total"] = time.perf_counter() - start
    spent["trace"] = traced["s"] - spent["simplify"]
    spent["rest"] = spent["total"] - sum(spent[s] for s in STAGES[1:-2])
    spent["import"] = imported
    print(json.dumps(spent))


def measure(workload):
    with tempfile.TemporaryDirectory(prefix="gradc-cold-") as cache:
        env = {**os.environ, "GRADC_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-m", "bench.cold", "--child", workload], env=env,
                             capture_output=True, text=True)
    lines = out.stdout.strip().splitlines()
    if not lines:
        sys.exit(f"{workload}: exit code {out.returncode}: {out.stderr.strip()[-2000:]}")
    if out.returncode != 0:      # measured, then died (at exit): reported, not hidden
        print(f"note: {workload}'s process exited with code {out.returncode} after measuring",
              file=sys.stderr)
    return json.loads(lines[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.cold", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(args.child)
    print("| workload | " + " | ".join(STAGES) + " |")
    print("|---" * (len(STAGES) + 1) + "|")
    for w in args.workloads.split(","):
        runs = [measure(w) for _ in range(args.repeat)]
        row = [statistics.median(r[s] for r in runs) * 1e3 for s in STAGES]
        print(f"| {w} | " + " | ".join(f"{v:.0f}" for v in row) + " |", flush=True)


if __name__ == "__main__":
    main()
