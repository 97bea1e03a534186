"""How time is measured: steady-state per-call time, and setup (trace + compile + first call).

`measure(call)` warms up, picks a batch size so one batch lasts about `batch_s` (from the
median warm-up call, so one slow call does not shrink every batch to a single call; picked
again if a batch turns out four times shorter than that), then times
batches until the budget is spent (at least `min_batches`), with the garbage collector off.
It reports the median per-call time over batches and the spread (interquartile range over
median), and how many cores other processes kept busy meanwhile (`background_cores`, from
/proc/stat less this process's CPU time): on a shared machine, a number measured while
something else ran is suspect. `time_setup` is the clock around an engine's setup and its first call; whether the
cache was empty (cold) or filled (warm) is arranged by run.py, which runs each in a new process.
"""
from __future__ import annotations

import gc
import os
import statistics
import time

FULL = dict(budget_s=0.8, min_batches=5, warmup_s=0.1)
QUICK = dict(budget_s=0.3, min_batches=3, warmup_s=0.02)


def machine_busy_s():
    """CPU seconds spent by all processes on the machine so far (user..steal in /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except OSError:
        return float("nan")
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _batch(call, n):
    t0 = time.perf_counter()
    for _ in range(n):
        call()
    return time.perf_counter() - t0


def measure(call, budget_s=0.8, min_batches=5, warmup_s=0.1, batch_s=0.02, max_batches=200):
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        busy0, own0, start = machine_busy_s(), time.process_time(), time.perf_counter()
        warm = []                               # per-call times while warming up
        while len(warm) < 3 or time.perf_counter() - start < warmup_s:
            t0 = time.perf_counter()
            call()
            warm.append(time.perf_counter() - t0)
        n = max(1, round(batch_s / statistics.median(warm[-100:])))   # calls per batch
        times, recalibrated = [], 0
        deadline = start + budget_s
        while len(times) < min_batches or (time.perf_counter() < deadline and len(times) < max_batches):
            times.append(_batch(call, n) / n)
            # NOTE: a warm-up cut short by a few slow first calls (seen once: 3 calls, then
            # batches of 1 call of a 0.2 ms function) picks batches far too short; start over.
            if n * times[-1] < batch_s / 4 and recalibrated < 3:
                n, times, recalibrated = max(1, round(batch_s / times[-1])), [], recalibrated + 1
        elapsed = time.perf_counter() - start
        background = (machine_busy_s() - busy0 - (time.process_time() - own0)) / elapsed
    finally:
        if was_enabled:
            gc.enable()
    q1, median, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"median_s": median, "spread": (q3 - q1) / median, "min_s": min(times), "q1_s": q1,
            "q3_s": q3, "batches": len(times), "batch_size": n, "background_cores": max(background, 0.0),
            "times_s": times}


def time_setup(setup, *args):
    """Seconds for setup(*args) and the first call of what it returns; also that first result."""
    t0 = time.perf_counter()
    call = setup(*args)
    result = call()
    return time.perf_counter() - t0, call, result
