"""Are this machine's cores its own? Once a second, the rate of one-thread float32 products on the
last core, alone and with the same work running on core 0 beside it.

    python -m bench.cores [--seconds 30]

On cores of their own the two rates match (ratio ~1.0). On a VM whose virtual CPUs the host
places on one physical core (SMT siblings) or shares with other guests, the ratio rises towards
2 and threaded code runs at its one-thread speed: on the 2-core AMD development VM it went from
1.00 to 1.4-1.9 for about 20 s at a time, and threaded kernels ran at their one-thread time in
those stretches with both threads at 100% CPU. Run it beside a benchmark to tell such a stretch
from a regression. Linux only (CPU affinity).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

WORK = """
import os, time
os.sched_setaffinity(0, [{core}])
import numpy as np
a = np.random.default_rng(0).random((256, 256), dtype=np.float32)
n, start = 0, time.perf_counter()
while time.perf_counter() - start < {seconds}:
    a @ a
    n += 1
print(n / (time.perf_counter() - start))
"""


ONE_THREAD = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def rate(core, seconds):
    """Products a second on `core`, in a fresh one-thread process."""
    out = subprocess.run([sys.executable, "-c", WORK.format(core=core, seconds=seconds)],
                         env=ONE_THREAD, capture_output=True, text=True, check=True)
    return float(out.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.cores", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("one core: nothing to compare")
    first, last = cores[0], cores[-1]
    end = time.time() + args.seconds
    while time.time() < end:
        alone = rate(last, 0.4)
        companion = subprocess.Popen([sys.executable, "-c", WORK.format(core=first, seconds=0.8)],
                                     env=ONE_THREAD, stdout=subprocess.DEVNULL)
        try:
            together = rate(last, 0.4)
        finally:
            companion.wait()
        print(f"{time.strftime('%H:%M:%S')} core {last}: alone {alone:.0f}/s, with core {first} busy "
              f"{together:.0f}/s, ratio {alone / together:.2f}", flush=True)


if __name__ == "__main__":
    main()
