"""How time is measured: steady-state per-call time, and setup (trace + compile + first call).

`measure(call)` warms up, picks a batch size so one batch lasts about `batch_s`, then times
batches until the budget is spent (at least `min_batches`), with the garbage collector off.
It reports the median per-call time over batches and the spread (interquartile range over
median). `time_setup` is the clock around an engine's setup and its first call; whether the
cache was empty (cold) or filled (warm) is arranged by run.py, which runs each in a new process.
"""
from __future__ import annotations

import gc
import statistics
import time

FULL = dict(budget_s=1.5, min_batches=5, warmup_s=0.1)
QUICK = dict(budget_s=0.3, min_batches=3, warmup_s=0.02)


def _batch(call, n):
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - t0


def measure(call, budget_s=1.5, min_batches=5, warmup_s=0.1, batch_s=0.02, max_batches=200):
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        warm = 0
        while warm < 2 or time.perf_counter() - start < warmup_s:
            call()
            warm += 1
        n = 1                                   # calibrate: grow n until a batch lasts batch_s / 2
        while (t := _batch(call, n)) < batch_s / 2:
            n = max(2 * n, int(n * batch_s / max(t, 1e-9)))
        times = []
        deadline = start + budget_s
        while len(times) < min_batches or (time.perf_counter() < deadline and len(times) < max_batches):
            times.append(_batch(call, n) / n)
    finally:
        if was_enabled:
            gc.enable()
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"median_s": median, "spread": (q3 - q1) / median, "min_s": min(times), "q1_s": q1,
            "q3_s": q3, "batches": len(times), "batch_size": n, "times_s": times}


def time_setup(setup, *args):
    """Seconds for setup(*args) and the first call of what it returns; also that first result."""
    t0 = time.perf_counter()
    call = setup(*args)
    result = call()
    return time.perf_counter() - t0, call, result
