"""Linear regression by gradient descent (lectures 2.5, 002): l = (w.x + b - y)^2, synthetic data.

Checks that gradc's gradient equals the lecture's hand-derived one, 2 E[(w.x + b - y) x], then fits.
Run: python examples/linear_regression.py [--steps 100] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import make_parser
import gradc as gc
from gradc.demo import fit

TRUE_W = np.array([2.0, -3.0, 0.5], np.float32)
TRUE_B = np.float32(1.0)


def loss(params, X, y):
    """Mean squared error of the linear model over the batch."""
    return gc.nn.mse(X @ params["w"] + params["b"], y)


def lecture_gradient(params, X, y):
    """The lecture's formula: grad_w = 2 E[(w.x + b - y) x], grad_b = 2 E[w.x + b - y]."""
    residual = X @ params["w"] + params["b"] - y
    return {"w": 2 * X.T @ residual / len(y), "b": 2 * residual.mean()}


def main(argv=None):
    args = make_parser(__doc__.splitlines()[0], steps=100, lr=0.1).parse_args(argv)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((256, len(TRUE_W))).astype(np.float32)
    y = (X @ TRUE_W + TRUE_B + 0.01 * rng.standard_normal(len(X))).astype(np.float32)
    params = {"w": np.zeros(len(TRUE_W), np.float32), "b": np.float32(0.0)}

    _, grads = gc.jit(gc.value_and_grad(loss), backend=args.backend)(params, X, y)
    expected = lecture_gradient(params, X, y)
    formula_error = max(float(np.max(np.abs(grads[k] - expected[k]))) for k in expected)
    print(f"gradient vs the lecture's 2(w.x + b - y)x: max abs difference {formula_error:.2e}")

    # Full-batch gradient descent, as the lecture's pseudo code: theta = theta - eps * grad.
    result = fit(loss, params, (X, y), steps=args.steps, lr=args.lr, momentum=0.0,
                 backend=args.backend)
    w, b = result.params["w"], float(result.params["b"])
    final = float(loss(result.params, X, y))
    print(f"after {args.steps} steps [{args.backend}]: loss {final:.5f}, w = {np.round(w, 3)}, "
          f"b = {b:.3f} (true w = {TRUE_W}, b = {TRUE_B})")
    return {"loss": final, "w": w, "b": b, "w_error": float(np.max(np.abs(w - TRUE_W))),
            "grad_formula_error": formula_error}


if __name__ == "__main__":
    main()
