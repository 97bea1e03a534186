"""Multiclass logistic (softmax) regression on the shipped 8x8 digits (lectures 2.5 and 003).

l = -log softmax(W x + b)_y = gc.nn.cross_entropy, minibatch SGD with momentum.
Run: python examples/softmax_regression.py [--steps 500] [--backend numpy]
"""
from __future__ import annotations

from dataclasses import replace

from _common import make_parser
from gradc.datasets import load_digits, train_test_split
from gradc.demo import MODELS, train_classifier

MODEL = MODELS["softmax_regression"]


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], steps=MODEL.steps, lr=MODEL.lr)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    X, y = load_digits()
    split = train_test_split(X, y, test_frac=0.25, seed=args.seed)
    r = train_classifier(replace(MODEL, lr=args.lr), split, backend=args.backend, steps=args.steps,
                         batch_size=args.batch_size, seed=args.seed)
    print(f"softmax regression, {args.steps} steps [{args.backend}]: test accuracy "
          f"{100 * r['test_accuracy']:.1f}%, train loss {r['train_loss']:.4f}, "
          f"{1e3 * r['step_ms']:.0f} us/step")
    return r


if __name__ == "__main__":
    main()
