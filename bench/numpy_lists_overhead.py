"""The cost of gradc's numpy list wrappers (gradc/numpy_lists.py) on calls without gradc values:
NumPy's functions alone, then with the wrappers installed (as while a trace is active), and the
cost of installing and restoring them, which every trace pays once.
Run: python -m bench.numpy_lists_overhead"""
import timeit

import numpy as np

from gradc import numpy_lists

ARRAY = np.ones(10)
SMALL = [1.0, 2.0, 3.0]
BIG = list(np.random.default_rng(0).random(100_000))
NESTED = [list(row) for row in np.random.default_rng(1).random((300, 300))]
CASES = {"np.asarray(ndarray)": lambda: np.asarray(ARRAY),
         "np.sum(ndarray)": lambda: np.sum(ARRAY),
         "np.array(3 floats)": lambda: np.array(SMALL),
         "np.mean(3 floats)": lambda: np.mean(SMALL),
         "np.array(1e5 floats)": lambda: np.array(BIG),
         "np.array(300x300 nested)": lambda: np.array(NESTED)}


def seconds_per_call():
    out = {}
    for name, fn in CASES.items():
        n = 20 if "e5" in name or "300" in name else 100_000
        out[name] = min(timeit.repeat(fn, number=n, repeat=5)) / n
    return out


def main():
    plain = seconds_per_call()
    numpy_lists.enter()
    try:
        wrapped = seconds_per_call()
    finally:
        numpy_lists.leave()
    for name in CASES:
        print(f"{name:26s} NumPy {plain[name] * 1e6:9.2f} us   wrapped {wrapped[name] * 1e6:9.2f} us")
    cycle = min(timeit.repeat(lambda: (numpy_lists.enter(), numpy_lists.leave()), number=10_000,
                              repeat=5)) / 10_000
    print(f"install + restore (once per trace): {cycle * 1e6:.2f} us")


if __name__ == "__main__":
    main()
