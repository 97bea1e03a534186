"""XOR (lecture 002): no linear model gets all four points right; a 2-layer ReLU network does.

Run: python examples/xor_mlp.py [--steps 300] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import binary_accuracy, binary_loss, make_parser
from gradc.demo import fit, init_linear, init_mlp, linear_scores, mlp_scores

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
Y = np.array([0, 1, 1, 0], np.float32)


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], steps=300, lr=0.1)
    parser.add_argument("--hidden", type=int, default=8)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    results = {}
    for name, scores, params in [("linear", linear_scores, init_linear(rng, 2, 1)),
                                 ("mlp", mlp_scores, init_mlp(rng, 2, 1, hidden=args.hidden))]:
        loss = binary_loss(scores)
        p = fit(loss, params, (X, Y), steps=args.steps, lr=args.lr, backend=args.backend).params
        acc, final = binary_accuracy(scores, p, X, Y), float(loss(p, X, Y))
        print(f"{name:>6} [{args.backend}]: loss {final:.4f}, {acc * 4:.0f}/4 points right, "
              f"predictions {(np.asarray(scores(p, X))[:, 0] > 0).astype(int)}")
        results[name] = {"loss": final, "accuracy": acc}
    return results


if __name__ == "__main__":
    main()
