"""Binary logistic regression (lecture 2.5): p(y=1 | x) = sigmoid(w.x + b), trained on two blobs.

The loss is the lecture's negative log-likelihood -[y log s + (1-y) log(1-s)], computed stably by
gc.nn.binary_cross_entropy_with_logits; the example checks that both forms agree.
Run: python examples/logistic_regression.py [--steps 200] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import binary_accuracy, binary_loss, make_parser
import gradc as gc
from gradc.demo import fit, linear_scores

loss = binary_loss(linear_scores)


def lecture_loss(params, X, y):
    """The textbook form through the sigmoid (loses precision for large |w.x + b|)."""
    s = gc.sigmoid(linear_scores(params, X)[:, 0])
    return -gc.mean(y * gc.log(s) + (1 - y) * gc.log(1 - s))


def two_blobs(rng, n=200):
    """Two Gaussian clouds in the plane around (-1, -1) (label 0) and (1, 1) (label 1)."""
    y = (np.arange(n) % 2).astype(np.float32)
    X = 0.7 * rng.standard_normal((n, 2)) + (2 * y[:, None] - 1)
    return X.astype(np.float32), y


def main(argv=None):
    args = make_parser(__doc__.splitlines()[0], steps=200, lr=0.5).parse_args(argv)
    X, y = two_blobs(np.random.default_rng(args.seed))
    params = {"W": np.zeros((2, 1), np.float32), "b": np.zeros(1, np.float32)}
    p = fit(loss, params, (X, y), steps=args.steps, lr=args.lr, momentum=0.0,
            backend=args.backend).params
    final = float(loss(p, X, y))
    gap = abs(final - float(lecture_loss(p, X, y)))
    acc = binary_accuracy(linear_scores, p, X, y)
    print(f"after {args.steps} steps [{args.backend}]: loss {final:.4f} (the sigmoid form differs "
          f"by {gap:.1e}), accuracy {100 * acc:.1f}%, w = {np.round(p['W'][:, 0], 3)}, "
          f"b = {float(p['b'][0]):.3f}")
    return {"loss": final, "accuracy": acc, "loss_form_gap": gap, "params": p}


if __name__ == "__main__":
    main()
