"""The C backend's design figures: what each way of calling compiled C from Python costs, how long
compiling takes, and a compiled small MLP step against the interpreted one.

    python bench/callpath.py        (prints a markdown table; numbers are medians of one run)
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

import cffi
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gradc as gc  # noqa: E402

KERNEL = "int k(void **a, void *w) { double *x = a[0], *o = a[1]; o[0] = 2 * x[0]; (void)w; return 0; }"


def per_call(fn, number=20000):
    """Median seconds per call over 7 repeats."""
    return statistics.median(timeit.repeat(fn, number=number, repeat=7)) / number


def cffi_options(tmp):
    """(label, seconds) for compiling and calling one tiny kernel the possible ways."""
    rows = []
    src = os.path.join(tmp, "k.c")
    with open(src, "w") as f:
        f.write(KERNEL)
    start = time.perf_counter()
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", src, "-o", os.path.join(tmp, "k.so")], check=True)
    rows.append(("compile: cc -O2 -shared (plain C, what gradc does)", time.perf_counter() - start))
    api = cffi.FFI()
    api.cdef("int k(void **a, void *w);")
    api.set_source("_k_api", KERNEL)
    start = time.perf_counter()
    api.compile(tmpdir=tmp)
    rows.append(("compile: cffi API mode (ffi.compile, a CPython extension)", time.perf_counter() - start))
    sys.path.insert(0, tmp)
    import _k_api
    abi = cffi.FFI()
    abi.cdef("int k(void **a, void *w);")
    lib = abi.dlopen(os.path.join(tmp, "k.so"))
    x, o = np.ones(1), np.empty(1)
    argv = abi.new("void *[]", [abi.from_buffer(x), abi.from_buffer(o)])
    argv_api = _k_api.ffi.new("void *[]", [_k_api.ffi.from_buffer(x), _k_api.ffi.from_buffer(o)])
    rows.append(("call: cffi ABI mode (dlopen)", per_call(lambda: lib.k(argv, abi.NULL))))
    rows.append(("call: cffi API mode", per_call(lambda: _k_api.lib.k(argv_api, _k_api.ffi.NULL))))
    rows.append(("ffi.from_buffer(array), per array", per_call(lambda: abi.from_buffer(x))))
    rows.append(("np.empty(()), per output", per_call(lambda: np.empty(()))))
    return rows


def gradc_rows(tmp):
    os.environ["GRADC_CACHE_DIR"] = os.path.join(tmp, "cache")
    rows = []
    f = gc.jit(gc.value_and_grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2)))
    start = time.perf_counter()
    f(-2.0, 5.0, -4.0)
    rows.append(("gradc: cold setup of (x+y)*z value_and_grad (trace, C, cc, load, call)",
                 time.perf_counter() - start))
    rows.append(("gradc: call of that compiled value_and_grad (3 scalars in, 4 arrays out)",
                 per_call(lambda: f(-2.0, 5.0, -4.0))))
    interp = gc.jit(gc.value_and_grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2)),
                    backend="numpy")
    interp(-2.0, 5.0, -4.0)
    rows.append(("gradc-numpy: the same call, interpreted", per_call(lambda: interp(-2.0, 5.0, -4.0),
                                                                     2000)))
    rng = np.random.default_rng(0)
    W1, b1 = (rng.standard_normal((64, 32)) * 0.1).astype(np.float32), np.zeros(32, np.float32)
    W2, b2 = (rng.standard_normal((32, 10)) * 0.1).astype(np.float32), np.zeros(10, np.float32)
    X, y = rng.standard_normal((64, 64)).astype(np.float32), rng.integers(0, 10, 64)

    def loss(W1, b1, W2, b2, X, y):
        return gc.nn.cross_entropy(gc.relu(X @ W1 + b1) @ W2 + b2, y)
    steps = {b: gc.jit(gc.value_and_grad(loss, argnums=(0, 1, 2, 3)), backend=b)
             for b in ("c", "numpy")}
    start = time.perf_counter()
    steps["c"](W1, b1, W2, b2, X, y)
    rows.append(("gradc: cold setup of a small MLP step (64x64 -> 32 -> 10)", time.perf_counter() - start))
    steps["numpy"](W1, b1, W2, b2, X, y)
    times = {b: per_call(lambda s=s: s(W1, b1, W2, b2, X, y), 500) for b, s in steps.items()}
    rows.append(("gradc: small MLP step, compiled", times["c"]))
    rows.append(("gradc-numpy: small MLP step, interpreted", times["numpy"]))
    rows.append((f"speed-up of the compiled MLP step: {times['numpy'] / times['c']:.1f}x", None))
    return rows


def show(seconds):
    if seconds is None:
        return ""
    return f"{seconds * 1e6:.2f} us" if seconds < 1e-3 else f"{seconds * 1e3:.1f} ms"


def main():
    tmp = tempfile.mkdtemp()
    try:
        rows = cffi_options(tmp) + gradc_rows(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| what | median |\n|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {show(seconds)} |")


if __name__ == "__main__":
    main()
