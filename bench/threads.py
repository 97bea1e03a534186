"""Thread-scaling table: each workload's per-call time with GRADC_NUM_THREADS = 1, 2, 4, ... up to
the cores this process may use, and at the default (unset: all of them).

    python -m bench.threads [--workloads mlp[1024],rnn[64]] [--seconds 3]

Per workload, a fresh process (its own cache folder) compiles one kernel per thread count, then
calls them for `--seconds` in 5 rounds, each a stretch of calls of every kernel in turn (a user
calls one kernel again and again; the rounds let every count see the same background), and prints the medians, each count's time over the one-thread time, and the
cores other processes kept busy meanwhile (from /proc/stat): the issue's bar is every count at
most its one-thread time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from bench.busy import fmt, kernels_at

ROUNDS = 5
DEFAULT = ("softmax[256]", "mlp[64]", "mlp[1024]", "rnn[16]", "rnn[64]", "elem[1e5]", "elem[1e7]",
           "transformer[8x128x64]")


def thread_counts():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts, t = [], 1
    while t < cores:
        counts.append(t)
        t *= 2
    return counts + [cores]


def _rounds(workload, seconds):
    """In the worker process: medians of each thread count's calls, taken in turn."""
    import numpy as np
    from bench.timing import machine_busy_s
    counts = thread_counts()
    inputs, calls = kernels_at(workload, counts)
    times = {t: [] for t in counts}
    block = seconds / ROUNDS / len(counts)
    busy0, own0, start = machine_busy_s(), time.process_time(), time.perf_counter()
    for _ in range(ROUNDS):
        for t in counts:
            calls[t](*inputs)                   # its threads awake after the other kernels' turn
            until = time.perf_counter() + block
            while (t0 := time.perf_counter()) < until:
                calls[t](*inputs)
                times[t].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    others = (machine_busy_s() - busy0 - (time.process_time() - own0)) / elapsed
    print(json.dumps({"medians": {t: float(np.median(v)) for t, v in times.items()},
                      "others": max(others, 0.0)}))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default=",".join(DEFAULT))
    ap.add_argument("--seconds", type=float, default=3.0, help="calls per workload, all counts in turn")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _rounds(args.child, args.seconds)
    counts = thread_counts()
    print("| workload | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in counts)
          + " | slowest / 1 thread | other cores busy |")
    print("|---" * (len(counts) + 3) + "|")
    for w in args.workloads.split(","):
        with tempfile.TemporaryDirectory(prefix="gradc-threads-") as cache:
            env = {**os.environ, "GRADC_CACHE_DIR": cache}
            env.pop("GRADC_NUM_THREADS", None)
            proc = subprocess.run([sys.executable, "-m", "bench.threads", "--child", w, "--seconds",
                                   str(args.seconds)], env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{w}: {proc.stderr.strip()[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        med = {int(t): v for t, v in r["medians"].items()}
        cells = [f"{fmt(med[t])}" + ("" if t == 1 else f" ({med[1] / med[t]:.2f}x)") for t in counts]
        print(f"| {w} | " + " | ".join(cells) + f" | {max(med.values()) / med[1]:.2f}x | "
              f"{r['others']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
