"""A linear multiclass SVM on the shipped 8x8 digits (lecture 003): the hinge loss
L = 1/N sum_i sum_{j != y_i} max(0, s_j - s_yi + 1) + lambda * sum(W^2), s = W x + b.

Run: python examples/svm_hinge.py [--steps 300] [--lam 1e-3] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import make_parser
import gradc as gc
from gradc.datasets import load_digits, train_test_split
from gradc.demo import accuracy, fit, init_linear, linear_scores


def make_loss(lam: float):
    """Data loss (multiclass hinge) plus L2 regularisation of the weights (not the bias)."""
    def loss(params, X, y):
        return gc.nn.multiclass_hinge(linear_scores(params, X), y) + lam * gc.sum(params["W"] ** 2)
    return loss


def main(argv=None):
    parser = make_parser("linear multiclass SVM (hinge loss) on the digits", steps=300, lr=0.02)
    parser.add_argument("--lam", type=float, default=1e-3, help="regularisation strength")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_frac=0.25, seed=args.seed)
    loss = make_loss(args.lam)
    params = init_linear(np.random.default_rng(args.seed), X.shape[1], 10)
    r = fit(loss, params, (X_train, y_train), steps=args.steps, lr=args.lr,
            batch_size=args.batch_size, backend=args.backend, seed=args.seed)
    test_acc = accuracy(linear_scores, r.params, X_test, y_test)
    train_loss = float(loss(r.params, X_train, y_train))
    print(f"SVM, {args.steps} steps [{args.backend}]: test accuracy {100 * test_acc:.1f}%, "
          f"train loss {train_loss:.4f}")
    return {"test_accuracy": test_acc, "train_loss": train_loss, "losses": r.losses}


if __name__ == "__main__":
    main()
