"""Gradients of the lectures' worked examples, checked against finite differences.

f(x) = log x + sqrt(log x)      (lecture 004: df/dx = 1/x + 1/(2 x sqrt(log x)))
f(x, y, z) = (x + y) z at (-2, 5, -4)   (lecture 003: df/dx = df/dy = z = -4, df/dz = x + y = 3)
Run: python examples/gradient_check.py [--x 2.0] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import make_parser
import gradc as gc


def log_plus_sqrt_log(x):
    y = gc.log(x)
    return y + gc.sqrt(y)  # y is used twice: its gradients add up, as the lecture shows


def sum_times(x, y, z):
    q = x + y
    return q * z


def main(argv=None):
    parser = make_parser("gc.check_grad on the lectures' examples")
    parser.add_argument("--x", type=float, default=2.0, help="where to evaluate f(x) (> 1)")
    args = parser.parse_args(argv)
    x = np.float64(args.x)
    cases = {
        "log x + sqrt(log x)": (log_plus_sqrt_log, (x,),
                                (1 / x + 1 / (2 * x * np.sqrt(np.log(x))),)),
        "(x + y) z": (sum_times, (np.float64(-2), np.float64(5), np.float64(-4)),
                      (-4.0, -4.0, 3.0)),
    }
    results = {}
    for name, (f, args_, expected) in cases.items():
        argnums = tuple(range(len(args_)))
        grads = gc.jit(gc.grad(f, argnums=argnums), backend=args.backend)(*args_)
        report = gc.check_grad(gc.jit(f, backend=args.backend), *args_)
        grads = tuple(float(g) for g in grads)
        print(f"f = {name} at {tuple(float(a) for a in args_)} [{args.backend}]:\n"
              f"  gradc gradient {np.round(grads, 6)}, by hand {np.round(expected, 6)}\n"
              f"  vs central finite differences:\n    " + str(report).replace("\n", "\n    "))
        results[name] = {"grads": grads, "expected": expected, "report": report}
    return results


if __name__ == "__main__":
    main()
