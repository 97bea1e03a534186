"""Busy-core table: each workload's per-call time on one thread and at the default thread count
(GRADC_NUM_THREADS unset: the available cores), with nothing else of ours running and with
processes spinning beside it (a shared machine, a CI runner, a Dask worker's neighbours).

    python -m bench.busy [--workloads mlp[1024],rnn[64]] [--spinners 1] [--seconds 3]

Per workload, a fresh process (its own cache folder) compiles both kernels, then calls them in
alternation for `--seconds`, first alone, then with `--spinners` `while True: pass` processes:
alternating pairs see the same background, which on a machine shared with other users drifts
over seconds. Prints a Markdown table of median times, the ratio default / one thread, and the
cores other processes kept busy meanwhile (from /proc/stat, the spinners included): a "quiet"
figure is only as quiet as that column says.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DEFAULT = ("softmax[256]", "mlp[1024]", "rnn[64]", "elem[1e7]", "transformer[8x128x64]")


def kernels_at(workload, thread_counts):
    """In a worker process: the workload's inputs and its value-and-grad compiled (and called once)
    for each thread count (None: GRADC_NUM_THREADS unset, the available cores)."""
    import gradc as gc
    from bench.workloads import WORKLOADS, inputs_for
    w = WORKLOADS[workload]
    inputs = inputs_for(w)
    calls = {}
    for threads in thread_counts:
        if threads:
            os.environ["GRADC_NUM_THREADS"] = str(threads)
        else:
            os.environ.pop("GRADC_NUM_THREADS", None)
        f = gc.jit(gc.value_and_grad(lambda *a: w.loss(gc, *a), argnums=w.argnums))
        f(*inputs)
        calls[threads] = f
    os.environ.pop("GRADC_NUM_THREADS", None)
    return inputs, calls


def _pairs(workload, spinners, seconds):
    """In the worker process: medians of alternating one-thread / default calls, for 0 and
    `spinners` spinning processes, with the background cores."""
    import numpy as np
    from bench.timing import machine_busy_s
    inputs, kernels = kernels_at(workload, (1, None))
    calls = {"1": kernels[1], "default": kernels[None]}
    out = {}
    for n in (0, spinners):
        procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        try:
            time.sleep(0.3)
            one, default = [], []
            busy0, own0, start = machine_busy_s(), time.process_time(), time.perf_counter()
            while time.perf_counter() < start + seconds:
                t0 = time.perf_counter()
                calls["1"](*inputs)
                t1 = time.perf_counter()
                calls["default"](*inputs)
                default.append(time.perf_counter() - t1)
                one.append(t1 - t0)
            elapsed = time.perf_counter() - start
            others = (machine_busy_s() - busy0 - (time.process_time() - own0)) / elapsed
        finally:
            for p in procs:
                p.kill()
                p.wait()
        out[n] = {"one": float(np.median(one)), "default": float(np.median(default)),
                  "others": max(others, 0.0), "pairs": len(one)}
    print(json.dumps(out))


def fmt(s):
    return f"{s * 1e3:.3f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} us"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.busy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT))
    ap.add_argument("--spinners", type=int, default=1, help="busy processes during the busy runs")
    ap.add_argument("--seconds", type=float, default=3.0, help="alternating calls per condition")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _pairs(args.child, args.spinners, args.seconds)
    s = args.spinners
    print(f"| workload | quiet, 1 thread | quiet, default | busy ({s} spinning), 1 thread | busy, "
          "default | busy: default / 1 thread | other cores busy (quiet / busy) |")
    print("|---|---|---|---|---|---|---|")
    for w in args.workloads.split(","):
        with tempfile.TemporaryDirectory(prefix="gradc-busy-") as cache:
            env = {**os.environ, "GRADC_CACHE_DIR": cache}
            env.pop("GRADC_NUM_THREADS", None)
            proc = subprocess.run([sys.executable, "-m", "bench.busy", "--child", w, "--spinners",
                                   str(s), "--seconds", str(args.seconds)], env=env,
                                  capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{w}: {proc.stderr.strip()[-2000:]}")
        r = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
        print(f"| {w} | {fmt(r[0]['one'])} | {fmt(r[0]['default'])} | {fmt(r[s]['one'])} | "
              f"{fmt(r[s]['default'])} | {r[s]['default'] / r[s]['one']:.2f}x | "
              f"{r[0]['others']:.2f} / {r[s]['others']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
