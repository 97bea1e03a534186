"""Seeing what happens (API.md section 11) on the lectures' examples: a NaN's origin, the gradient
hazard lint, gc.check, gc.debug_print and the compile log. The README's "When gradients go wrong"
section shows this script's output.
Run: python examples/when_gradients_go_wrong.py [--backend numpy]
"""
from __future__ import annotations

import logging
import sys

import numpy as np

from _common import make_parser
from gradient_check import log_plus_sqrt_log
import gradc as gc


def lecture_softmax_loss(W, b, X, y):
    """Lecture 003's softmax loss as written by hand: -log(exp(s_y) / sum_j exp(s_j))."""
    scores = X @ W + b
    e = np.exp(scores)
    probs = e / np.sum(e, axis=1, keepdims=True)
    return -np.mean(np.log(probs[np.arange(len(y)), y]))


def softmax_loss(W, b, X, y):
    """The same loss, stable: gc.nn.cross_entropy."""
    return gc.nn.cross_entropy(X @ W + b, y)


def train_step(W, b, X, y):
    loss, (gW, gb) = gc.value_and_grad(softmax_loss, (0, 1))(W, b, X, y)
    gc.debug_print("loss {:.4f}  max |dW| {:.4f}", loss, gc.max(gc.abs(gW)))
    return W - 0.5 * gW, b - 0.5 * gb


def main(argv=None):
    args = make_parser(__doc__.splitlines()[0]).parse_args(argv)
    rng = np.random.default_rng(args.seed)
    out = {}

    print("1. debug_nans on the lecture's f(x) = log x + sqrt(log x)")
    df = gc.jit(gc.grad(log_plus_sqrt_log), backend=args.backend, debug_nans=True)
    print(f"   df/dx at x = 2: {float(df(2.0)):.6f}")
    for x in (1.0, 0.5):
        try:
            df(x)
        except gc.NonFiniteError as e:
            print(f"   at x = {x}: NonFiniteError: {e}".replace("\n", "\n   "))
            out[f"nan at {x}"] = (e.op, e.phase, e.loc)

    print("\n2. gc.lint on the lecture's softmax loss written by hand")
    W = (0.1 * rng.standard_normal((64, 10))).astype(np.float32)
    b = np.zeros(10, np.float32)
    X, y = rng.standard_normal((32, 64)).astype(np.float32), rng.integers(0, 10, 32)
    findings = gc.lint(gc.grad(lecture_softmax_loss), W, b, X, y)
    for f in findings:
        print(f"   {f}")
    out["findings"] = [f.rule for f in findings]

    print("\n3. gc.check on the same model with gc.nn.cross_entropy")
    report = gc.check(softmax_loss, W, b, X, y)
    print("   " + repr(report).replace("\n", "\n   "))
    out["check_ok"] = report.ok

    print("\n4. gc.debug_print inside a compiled training step")
    step = gc.jit(train_step, backend=args.backend)
    for _ in range(3):
        W, b = step(W, b, X, y)

    print("\n5. the compile log (GRADC_LOG_COMPILES=1 does this on stderr)")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("   gradc: %(message)s"))
    logger = logging.getLogger("gradc")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        step = gc.jit(gc.value_and_grad(softmax_loss, (0, 1)), backend=args.backend)
        for start in range(0, 80, 32):      # batches of 32, 32 and a short last one of 16
            step(W, b, np.resize(X, (80, 64))[start:start + 32], np.resize(y, 80)[start:start + 32])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    print(f"   cache_info: {step.cache_info()}")
    out["cache_info"] = tuple(step.cache_info())
    return out


if __name__ == "__main__":
    main()
