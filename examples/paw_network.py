"""Binary paw classification (lecture 002): white and black paws are paws, the gray image is not.

Each image is summarised by its colour intensity x (black 0, gray 1/2, white 1). A linear model
cannot tell the paws from the gray image, as w x_gray + b = ((w x_white + b) + (w x_black + b))/2;
the lecture's 2-layer network can:
    z1 = ReLU([-1, 1]^T x + 1/2 [1, -1]^T),   z2 = [2 2] z1 - 1/2   (paw when z2 > 0).
This example checks both claims, then trains a 2-layer network from random weights.
Run: python examples/paw_network.py [--steps 300] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import binary_accuracy, binary_loss, make_parser
import gradc as gc
from gradc.demo import fit, init_linear, init_mlp, linear_scores, mlp_scores

COLOURS = {"black": 0.0, "gray": 0.5, "white": 1.0}
IS_PAW = {"black": 1.0, "gray": 0.0, "white": 1.0}

# The lecture's weights, written for row vectors: z1 = x @ W1 + b1, z2 = z1 @ W2 + b2.
LECTURE_PARAMS = {"W1": np.array([[-1.0, 1.0]], np.float32),
                  "b1": np.array([0.5, -0.5], np.float32),
                  "W2": np.array([[2.0], [2.0]], np.float32),
                  "b2": np.array([-0.5], np.float32)}


def images(rng, per_colour=20, noise=0.03):
    """Noisy intensities around each colour, and whether each is a paw."""
    xs = np.concatenate([c + noise * rng.standard_normal(per_colour) for c in COLOURS.values()])
    ys = np.repeat(list(IS_PAW.values()), per_colour)
    return xs.astype(np.float32)[:, None], ys.astype(np.float32)


def main(argv=None):
    args = make_parser("2-layer network for the lecture's paw colours", steps=300,
                       lr=0.1).parse_args(argv)
    rng = np.random.default_rng(args.seed)
    X, y = images(rng)
    protos = np.array(list(COLOURS.values()), np.float32)[:, None]
    proto_y = np.array(list(IS_PAW.values()), np.float32)

    def train(scores, params):
        return fit(binary_loss(scores), params, (X, y), steps=args.steps, lr=args.lr,
                   backend=args.backend).params

    linear = train(linear_scores, init_linear(rng, 1, 1))
    s = np.asarray(linear_scores(linear, protos))[:, 0]
    print(f"linear model: scores black {s[0]:+.3f}, gray {s[1]:+.3f} (= their mean "
          f"{(s[0] + s[2]) / 2:+.3f}), white {s[2]:+.3f}; "
          f"{binary_accuracy(linear_scores, linear, protos, proto_y) * 3:.0f}/3 colours right")

    z2 = gc.jit(mlp_scores, backend=args.backend)(LECTURE_PARAMS, protos)[:, 0]
    print("lecture's 2-layer net: z2 = " + ", ".join(
        f"{name} {v:+.2f}" for name, v in zip(COLOURS, z2)) + " (paw when > 0)")

    trained = train(mlp_scores, init_mlp(rng, 1, 1, hidden=8))
    print(f"trained 2-layer net ({args.steps} steps [{args.backend}]): accuracy "
          f"{100 * binary_accuracy(mlp_scores, trained, X, y):.1f}% on {len(X)} noisy images")
    return {
        "linear_accuracy": binary_accuracy(linear_scores, linear, protos, proto_y),
        "lecture_scores": np.asarray(z2),
        "lecture_accuracy": float(np.mean((np.asarray(z2) > 0) == (proto_y > 0.5))),
        "trained_accuracy": binary_accuracy(mlp_scores, trained, X, y),
        "trained_loss": float(binary_loss(mlp_scores)(trained, X, y)),
    }


if __name__ == "__main__":
    main()
