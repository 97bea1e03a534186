"""The matrix products of the workloads, through each BLAS gradc can link.

    python bench/gemm.py

For each product shape of the MLP, softmax and RNN workloads (as the C backend passes them:
transposes folded into the call) it times a compiled `gc.jit` of that one product, in a fresh
process per BLAS choice (GRADC_BLAS=mkl / openblas), and prints the median per call in
microseconds and GFLOP/s. The time includes gradc's call (~0.7 us) and a fresh output array.
"""
import json
import os
import subprocess
import sys
import time

# (m, n, k, A stored transposed, B stored transposed, where it comes from)
SHAPES = [
    (64, 256, 784, False, False, "mlp[64] X @ W1"),
    (784, 256, 64, True, False, "mlp[64] X^T @ dZ1"),
    (1024, 256, 784, False, False, "mlp[1024] X @ W1"),
    (784, 256, 1024, True, False, "mlp[1024] X^T @ dZ1"),
    (1024, 256, 10, False, True, "mlp[1024] dY @ W2^T"),
    (256, 10, 784, False, True, "softmax X @ W^T"),
    (784, 10, 256, True, False, "softmax X^T @ dY"),
    (16, 64, 64, False, False, "rnn h @ Wh"),
    (16, 64, 64, False, True, "rnn dz @ Wh^T"),
    (64, 64, 16, True, False, "rnn h^T @ dz"),
]

WORKER = r"""
import json, sys, time
import numpy as np
import gradc as gc
from gradc.cbackend import blas
m, n, k, ta, tb = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
f = gc.jit(lambda a, b: (a.T if ta else a) @ (b.T if tb else b))
f(a, b)
number = max(3, int(2e7 / (m * n * k)))
times = []
for _ in range(15):
    start = time.perf_counter()
    for _ in range(number):
        f(a, b)
    times.append((time.perf_counter() - start) / number)
print(json.dumps({"median_s": sorted(times)[len(times) // 2], "blas": blas.kind()}))
"""


def measure(shape, choice):
    env = {**os.environ, "GRADC_BLAS": choice}
    proc = subprocess.run([sys.executable, "-c", WORKER, json.dumps(shape)], env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode:
        return None, proc.stderr.strip().splitlines()[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])["median_s"], None


def main():
    choices = ["mkl", "openblas"]
    print(f"| product | shape (m x n x k) | " + " | ".join(choices) + " |")
    print("|---|---|" + "---|" * len(choices))
    for m, n, k, ta, tb, where in SHAPES:
        cells = []
        for choice in choices:
            seconds, error = measure((m, n, k, ta, tb), choice)
            if seconds is None:
                cells.append(f"unavailable ({error})")
            else:
                cells.append(f"{seconds * 1e6:.1f} us ({2 * m * n * k / seconds / 1e9:.0f} GFLOP/s)")
        shape = f"{m}x{n}x{k}" + (" A^T" if ta else "") + (" B^T" if tb else "")
        print(f"| {where} | {shape} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
