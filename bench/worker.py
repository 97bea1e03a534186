"""One measurement in a fresh process: `python -m bench.worker ENGINE WORKLOAD cold|warm|setup [--quick]`.

The framework is imported first (its import time is reported apart), then the clock runs
around setup and the first call. In "cold" mode the worker also checks the first result
against hand NumPy and times steady-state calls; "warm" and "setup" (another cold setup) modes
stop after the first result.
It prints one line `BENCH-RESULT {json}` on stdout. Running every measurement in its own
process keeps engines from sharing thread pools and caches, and a crash (even a segfault in
generated code) costs one result, not the run.
"""
from __future__ import annotations

import json
import sys
import time
import traceback

import numpy as np

from bench import timing
from bench.engines import ENGINES
from bench.workloads import WORKLOADS, check, inputs_for

MARKER = "BENCH-RESULT "


def _error(e):
    text = f"{type(e).__name__}: {e}".strip()
    return text if len(text) < 600 else text[:600] + " ..."


def measure(engine_name, workload_name, mode, quick=False):
    engine, workload = ENGINES[engine_name], WORKLOADS[workload_name]
    res = {"engine": engine_name, "workload": workload_name, "mode": mode}
    t0 = time.perf_counter()
    try:
        res["version"] = engine.load()
    except ImportError as e:
        return {**res, "status": "unavailable", "error": _error(e)}
    res["import_s"] = time.perf_counter() - t0
    inputs = inputs_for(workload)
    # NOTE: making the inputs runs NumPy products; NumPy's OpenBLAS threads then spin on the other
    # core for ~0.1 s (perf: 31% of a warm mlp[1024] setup in blas_thread_server). No engine
    # should pay for that, so the clock starts after they are asleep.
    time.sleep(0.3)
    stage = "setup"
    try:
        res["setup_s"], call, (value, grads) = timing.time_setup(engine.setup, workload, inputs)
        if mode == "cold":
            stage = "check"
            res["check"] = check(workload, inputs, np.asarray(value), [np.asarray(g) for g in grads])
            stage = "timing"
            res["timing"] = timing.measure(call, **(timing.QUICK if quick else timing.FULL))
    except Exception as e:      # noqa: BLE001 - any engine failure is a result, not a crash
        return {**res, "status": "failed", "stage": stage, "error": _error(e),
                "traceback": traceback.format_exc()[-3000:]}
    return {**res, "status": "ok"}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    engine, workload, mode = argv[:3]
    res = measure(engine, workload, mode, quick="--quick" in argv)
    print(MARKER + json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
