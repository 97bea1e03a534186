"""The backprop lecture's (003) RNN cell, next_h = tanh(W_h h + W_x x), unrolled over a sequence.

Tracing unrolls the Python loop into one graph; the example checks its reverse-mode gradient
against finite differences (gc.check_grad) and then fits the final state to a target.
Run: python examples/rnn_cell.py [--seq-len 5] [--hidden 20] [--steps 100] [--backend numpy]
"""
from __future__ import annotations

import numpy as np

from _common import make_parser
import gradc as gc
from gradc.demo import fit


def unroll(W_h, W_x, h0, xs):
    """The final state after feeding the rows of xs one by one (the loop unrolls while tracing)."""
    h = h0
    for t in range(xs.shape[0]):
        h = gc.tanh(W_h @ h + W_x @ xs[t])
    return h


def lecture_objective(W_h, W_x, h0, xs):
    """The lecture seeds next_h.backward(torch.ones(...)): the gradient of sum(next_h)."""
    return gc.sum(unroll(W_h, W_x, h0, xs))


def fit_loss(params, h0, xs, target):
    return gc.nn.mse(unroll(params["W_h"], params["W_x"], h0, xs), target)


def main(argv=None):
    parser = make_parser(__doc__.splitlines()[0], steps=100, lr=0.1)
    parser.add_argument("--seq-len", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=20)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    H, T = args.hidden, args.seq_len
    scale = 1.0 / np.sqrt(H)  # keeps tanh away from saturation so the gradients stay informative
    W_h, W_x = (scale * rng.standard_normal((H, H)) for _ in range(2))
    h0, xs = rng.standard_normal(H), rng.standard_normal((T, H))

    # Finite differences need float64; check_grad compares them with the compiled gradient.
    objective = gc.jit(lecture_objective, backend=args.backend)
    report = gc.check_grad(objective, W_h, W_x, h0, xs, argnums=(0, 1))
    print(f"gradient check of sum(h_{T}) w.r.t. W_h (argnum 0), W_x (1), H={H}, T={T}:\n{report}")

    target = np.tanh(rng.standard_normal(H)).astype(np.float32)
    params = {"W_h": W_h.astype(np.float32), "W_x": W_x.astype(np.float32)}
    data = (h0.astype(np.float32), xs.astype(np.float32), target)  # one sequence: full batch
    r = fit(fit_loss, params, data, steps=args.steps, lr=args.lr, backend=args.backend)
    print(f"fitting h_{T} to a target [{args.backend}]: loss {r.losses[0]:.4f} -> "
          f"{r.losses[-1]:.4f} in {args.steps} steps")
    return {"report": report, "loss_start": float(r.losses[0]), "loss_end": float(r.losses[-1])}


if __name__ == "__main__":
    main()
