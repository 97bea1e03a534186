"""The digits MLP trained with Adam and dropout, every step one compiled call (API.md section 12).

The weights start from gc.random.normal (He initialisation); each step splits its random key,
drops hidden units with gc.random.bernoulli, computes the loss and gradients and applies
gc.optim.adam: all inside one gc.jit, so the random numbers are made in the generated C.

Run: python examples/mlp_adam_dropout.py [--steps 400] [--backend numpy] [--dropout 0.2]
"""
from __future__ import annotations

import numpy as np

from _common import make_parser
import gradc as gc
from gradc.datasets import load_digits, train_test_split
from gradc.demo import accuracy, minibatches, mlp_scores


def init(key, n_in, hidden, n_out):
    k1, k2 = gc.random.split(key)
    return {"W1": gc.random.normal(k1, (n_in, hidden)) * np.float32(np.sqrt(2.0 / n_in)),
            "b1": np.zeros(hidden, np.float32),
            "W2": gc.random.normal(k2, (hidden, n_out)) * np.float32(np.sqrt(1.0 / hidden)),
            "b2": np.zeros(n_out, np.float32)}


def make_step(optimizer, keep):
    def loss(params, key, X, y):
        hidden = gc.relu(X @ params["W1"] + params["b1"])
        mask = gc.random.bernoulli(key, keep, hidden.shape)        # inverted dropout
        hidden = gc.where(mask, hidden / keep, 0.0)
        return gc.nn.cross_entropy(hidden @ params["W2"] + params["b2"], y)

    def step(params, state, key, X, y):
        key, sub = gc.random.split(key)
        value, grads = gc.value_and_grad(loss)(params, sub, X, y)
        params, state = optimizer.update(params, grads, state)
        return params, state, key, value

    return step


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], steps=400, lr=3e-3)
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout rate (0.2)")
    parser.add_argument("--hidden", type=int, default=128, help="hidden units (128)")
    args = parser.parse_args(argv)
    X, y = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_frac=0.25, seed=args.seed)
    key = gc.random.key(args.seed)
    key, init_key = gc.random.split(key)
    params = init(init_key, X.shape[1], args.hidden, 10)
    optimizer = gc.optim.adam(args.lr)
    state = optimizer.init(params)
    step = gc.jit(make_step(optimizer, 1.0 - args.dropout), backend=args.backend)
    batches = minibatches(len(X_train), 64, np.random.default_rng(args.seed))
    losses = []
    for _ in range(args.steps):
        idx = next(batches)
        params, state, key, value = step(params, state, key, X_train[idx], y_train[idx])
        losses.append(float(value))
    test_accuracy = accuracy(mlp_scores, params, X_test, y_test)   # no dropout at test time
    print(f"MLP, Adam, dropout {args.dropout} [{args.backend}]: loss {np.mean(losses[:20]):.3f} "
          f"-> {np.mean(losses[-20:]):.3f}, test accuracy {100 * test_accuracy:.1f}%")
    return {"losses": np.array(losses), "test_accuracy": test_accuracy, "params": params}


if __name__ == "__main__":
    main()
