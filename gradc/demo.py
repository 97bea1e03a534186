"""`gradc demo`: train the lectures' digit classifiers compiled (C) and interpreted, and compare.

Also home of the small minibatch-SGD loop (`fit`) that the demo and the examples share.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

import gradc as gc
from gradc.datasets import load_digits, train_test_split

__all__ = ["FitResult", "fit", "fit_torch", "training_step", "minibatches", "Classifier", "MODELS",
           "accuracy", "train_classifier", "run", "report", "main"]

INTERPRETED = "numpy"
TORCH = "torch"                 # PyTorch eager, for comparison (needs torch)
ENGINES = ("c", INTERPRETED, TORCH)


# ---------------------------------------------------------------------------------------------
# Training loop (shared with examples/)

LOSS_WINDOW = 50      # the loss reported (bar and table): the mean over the last steps' minibatches


@dataclass
class FitResult:
    params: object             # the trained parameters, same pytree structure as given
    losses: np.ndarray         # the loss of every step, float64
    step_seconds: np.ndarray   # wall time of each training step (loss, grads, update) but the first
    first_call_seconds: float  # the first call: tracing, optimising, compiling (or a cache hit)

    @property
    def median_step_seconds(self) -> float:
        return float(np.median(self.step_seconds)) if len(self.step_seconds) else float("nan")

    @property
    def final_loss(self) -> float:
        """The mean minibatch loss of the last LOSS_WINDOW steps (what the progress bar ends on)."""
        return recent_loss(self.losses, len(self.losses) - 1)


def recent_loss(losses: np.ndarray, i: int) -> float:
    """Mean of the minibatch losses of steps i - LOSS_WINDOW + 1 .. i."""
    return float(np.mean(losses[max(0, i - LOSS_WINDOW + 1):i + 1])) if i >= 0 else float("nan")


def minibatches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless index arrays of exactly `batch_size` rows, reshuffled every epoch.

    Every batch has the same size (the tail of an epoch is dropped) so the jitted step keeps one
    signature and is compiled once.
    """
    if not 0 < batch_size <= n:
        raise ValueError(f"batch_size must lie in [1, {n}], got {batch_size}")
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def training_step(loss: Callable, optimizer: gc.optim.Optimizer) -> Callable:
    """``step(params, state, *batch) -> (params, state, loss)``: loss, gradients and the
    optimizer's update, as one function for gc.jit to compile into one native call."""
    def step(params, state, *batch):
        value, grads = gc.value_and_grad(loss)(params, *batch)
        params, state = optimizer.update(params, grads, state)
        return params, state, value
    return step


def fit(loss: Callable, params, data: Sequence[np.ndarray], *, steps: int, lr: float,
        momentum: float = 0.9, optimizer: gc.optim.Optimizer | None = None,
        batch_size: int | None = None, backend: str = "c", seed: int = 0,
        desc: str | None = None, progress: bool = False) -> FitResult:
    """Minimise ``loss(params, *batch)`` with ``optimizer`` (default: ``gc.optim.sgd(lr,
    momentum)``).

    ``data`` holds arrays whose first axis indexes examples; each step takes a random minibatch
    of ``batch_size`` rows of all of them (``None``: all rows every step). Each step, loss,
    gradients and update, is one call of ``gc.jit(training_step(loss, optimizer),
    backend=backend)``.
    """
    optimizer = optimizer if optimizer is not None else gc.optim.sgd(lr, momentum=momentum)
    step_fn = gc.jit(training_step(loss, optimizer), backend=backend)
    data = tuple(np.asarray(d) for d in data)
    batches = (minibatches(len(data[0]), batch_size, np.random.default_rng(seed))
               if batch_size is not None else None)
    state = optimizer.init(params)
    losses = np.empty(steps)
    seconds = np.empty(steps)
    bar = _progress_bar(steps, desc) if progress else None
    try:
        for i in range(steps):
            if batches is None:
                batch = data
            else:
                idx = next(batches)
                batch = tuple(d[idx] for d in data)
            t0 = time.perf_counter()
            params, state, value = step_fn(params, state, *batch)
            seconds[i] = time.perf_counter() - t0
            losses[i] = float(value)
            _advance(bar, losses, i, steps)
    finally:  # a failing engine must not leave a half-drawn bar under the next message
        if bar is not None:
            bar.close()
    first = float(seconds[0]) if steps else float("nan")
    return FitResult(params, losses, seconds[1:].copy(), first)


def _advance(bar, losses, i, steps):
    if bar is None:
        return
    bar.update(1)
    if i % LOSS_WINDOW == 0 or i == steps - 1:  # formatting every step costs more than a step
        bar.set_postfix(loss=f"{recent_loss(losses, i):.4f}", refresh=False)


def _progress_bar(total: int, desc: str | None):
    from tqdm.auto import tqdm  # imported late: only a run that shows progress needs it
    return tqdm(total=total, desc=desc, unit="step", leave=True, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# The lectures' classifiers

def linear_scores(params, X):
    """Multiclass logistic (softmax) regression's scores: s = W x + b, for a batch of rows x."""
    return X @ params["W"] + params["b"]


def mlp_scores(params, X):
    """The 2-layer network: z1 = ReLU(W1 x + b1), scores = W2 z1 + b2."""
    return gc.relu(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def init_linear(rng: np.random.Generator, n_in: int, n_out: int) -> dict:
    # A convex loss: zeros are a fine start and make the run independent of the seed.
    return {"W": np.zeros((n_in, n_out), np.float32), "b": np.zeros(n_out, np.float32)}


def init_mlp(rng: np.random.Generator, n_in: int, n_out: int, hidden: int = 128) -> dict:
    # He initialisation keeps ReLU activations at a steady scale; zeros would never break symmetry.
    def normal(fan_in, shape):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return {"W1": normal(n_in, (n_in, hidden)), "b1": np.zeros(hidden, np.float32),
            "W2": normal(hidden, (hidden, n_out)) / np.float32(np.sqrt(2.0)),
            "b2": np.zeros(n_out, np.float32)}


@dataclass(frozen=True)
class Classifier:
    """A model of the lectures, trained with cross-entropy: l = -log softmax(scores(x))_y."""
    name: str
    title: str
    scores: Callable   # (params, X) -> (batch, classes)
    init: Callable     # (rng, n_in, n_classes) -> params
    steps: int         # default training steps, tuned for the digits
    lr: float

    def loss(self, params, X, y):
        return gc.nn.cross_entropy(self.scores(params, X), y)


MODELS = {
    "softmax_regression": Classifier("softmax_regression", "softmax regression", linear_scores,
                                     init_linear, steps=500, lr=0.1),
    "mlp": Classifier("mlp", "2-layer MLP (ReLU, 128)", mlp_scores, init_mlp, steps=1000,
                      lr=0.05),
}


def accuracy(scores: Callable, params, X, y) -> float:
    """Fraction of rows whose highest score is the label (evaluated eagerly, on NumPy arrays)."""
    return float(np.mean(np.argmax(np.asarray(scores(params, X)), axis=1) == y))


def train_classifier(model: Classifier, split, *, backend: str, steps: int | None = None,
                     batch_size: int = 64, seed: int = 0, progress: bool = False) -> dict:
    """Trains `model` on split = (X_train, X_test, y_train, y_test) with SGD and momentum 0.9;
    returns its measurements. ``backend`` is a gc.jit backend ("c", "numpy") or "torch" (the
    same model, initial weights, minibatches and optimizer in PyTorch eager)."""
    X_train, X_test, y_train, y_test = split
    rng = np.random.default_rng(seed)
    params = model.init(rng, X_train.shape[1], int(y_train.max()) + 1)
    steps = model.steps if steps is None else steps
    train = fit_torch if backend == TORCH else fit
    result = train(model.loss, params, (X_train, y_train), steps=steps, lr=model.lr,
                   batch_size=batch_size, backend=backend, seed=seed,
                   desc=f"{model.title} [{backend}]", progress=progress)
    return {
        "steps": steps,
        "test_accuracy": accuracy(model.scores, result.params, X_test, y_test),
        "loss": result.final_loss,                                          # as the bar shows
        "train_loss": float(model.loss(result.params, X_train, y_train)),  # whole train set
        "step_ms": 1e3 * result.median_step_seconds,
        "first_call_s": result.first_call_seconds,
        "losses": result.losses,
        "params": result.params,
    }


def require_torch():
    """PyTorch, or an ImportError that says how to get it (the torch engine needs it)."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("the 'torch' engine needs PyTorch, which is not installed: "
                          "pip install torch") from exc
    return torch


def fit_torch(loss: Callable, params, data: Sequence[np.ndarray], *, steps: int, lr: float,
              momentum: float = 0.9, batch_size: int | None = None, backend: str = TORCH,
              seed: int = 0, desc: str | None = None, progress: bool = False) -> FitResult:
    """``fit`` in PyTorch eager for the demo's classifiers (the same scores written with torch
    ops, torch.optim.SGD), for comparison; ``loss`` only names which model (by its params)."""
    torch = require_torch()
    tensors = {k: torch.tensor(np.asarray(v), requires_grad=True) for k, v in params.items()}
    opt = torch.optim.SGD(list(tensors.values()), lr=lr, momentum=momentum)
    X, y = (np.asarray(d) for d in data)
    batches = minibatches(len(X), batch_size, np.random.default_rng(seed)) if batch_size else None
    losses, seconds = np.empty(steps), np.empty(steps)
    bar = _progress_bar(steps, desc) if progress else None
    try:
        for i in range(steps):
            idx = next(batches) if batches is not None else slice(None)
            xb, yb = torch.from_numpy(X[idx]), torch.from_numpy(y[idx])
            t0 = time.perf_counter()
            opt.zero_grad()
            if "W1" in tensors:
                hidden = torch.relu(xb @ tensors["W1"] + tensors["b1"])
                scores = hidden @ tensors["W2"] + tensors["b2"]
            else:
                scores = xb @ tensors["W"] + tensors["b"]
            value = torch.nn.functional.cross_entropy(scores, yb)
            value.backward()
            opt.step()
            seconds[i] = time.perf_counter() - t0
            losses[i] = float(value.detach())
            _advance(bar, losses, i, steps)
    finally:
        if bar is not None:
            bar.close()
    trained = {k: t.detach().numpy().copy() for k, t in tensors.items()}
    return FitResult(trained, losses, seconds[1:].copy(), float(seconds[0]) if steps else 0.0)


# ---------------------------------------------------------------------------------------------
# The demo

def run(engines: Sequence[str] = ("c", INTERPRETED), steps: int | None = None,
        models: Sequence[str] = tuple(MODELS), *, batch_size: int = 64, seed: int = 0,
        test_frac: float = 0.25, progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Trains each model with each engine on the shipped digits; returns the measurements.

    Result: ``{"dataset": {...}, "models": {name: {"title", "engines": {engine: {...}},
    "speedup"}}}``; an engine that could not run has ``{"error": message}`` instead (the
    interpreted and torch engines are never skipped: their failures raise). ``speedup`` is the
    interpreted engine's median step time over the compiled one's (None when either is
    missing), ``speedup_torch`` torch's over the compiled one's.
    """
    X, y = load_digits()
    split = train_test_split(X, y, test_frac=test_frac, seed=seed)
    results = {"dataset": {"name": "8x8 handwritten digits (UCI optdigits)",
                           "n_train": len(split[0]), "n_test": len(split[1]),
                           "n_features": X.shape[1], "n_classes": int(y.max()) + 1},
               "models": {}}
    unavailable: dict[str, str] = {}  # engine -> why; a missing compiler stays missing
    for name in models:
        model = MODELS[name]
        per_engine = {}
        for engine in engines:
            if engine in unavailable:
                per_engine[engine] = {"error": unavailable[engine]}
                continue
            try:
                per_engine[engine] = train_classifier(model, split, backend=engine, steps=steps,
                                                      batch_size=batch_size, seed=seed,
                                                      progress=progress)
            except Exception as exc:  # noqa: BLE001 - any failure of a compiled engine is reported
                if engine in (INTERPRETED, TORCH):     # asked for by name: fail loudly
                    raise
                why = f"{type(exc).__name__}: {_first_line(exc)}"
                unavailable[engine] = why
                per_engine[engine] = {"error": why}
                log(f"note: the {engine!r} engine is unavailable ({why}); "
                    f"running the interpreted engine only")
        results["models"][name] = {"title": model.title, "engines": per_engine,
                                   "speedup": _speedup(per_engine, INTERPRETED),
                                   "speedup_torch": _speedup(per_engine, TORCH)}
    return results


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _speedup(per_engine: dict, other: str):
    slow = per_engine.get(other, {}).get("step_ms")
    fast = per_engine.get("c", {}).get("step_ms")
    return slow / fast if slow and fast else None


def report(results: dict, file=None) -> None:
    """Prints the table of `run`'s results: accuracy, loss, step time and speed-up."""
    out = file if file is not None else sys.stdout
    ds = results["dataset"]
    print(f"\ngradc demo: {ds['name']}\n{ds['n_train']} train / {ds['n_test']} test images, "
          f"{ds['n_features']} pixels, {ds['n_classes']} classes\n", file=out)
    header = (f"{'model':<26}{'engine':<8}{'steps':>6}{'test acc':>10}{'loss':>10}"
              f"{'step (median)':>15}{'first call':>12}")
    print(header, file=out)
    print("-" * len(header), file=out)
    for entry in results["models"].values():
        for engine, r in entry["engines"].items():
            if "error" in r:
                print(f"{entry['title']:<26}{engine:<8}  unavailable: {r['error']}", file=out)
                continue
            print(f"{entry['title']:<26}{engine:<8}{r['steps']:>6}{100 * r['test_accuracy']:>9.1f}%"
                  f"{r['loss']:>10.4f}{_fmt_ms(r['step_ms']):>15}"
                  f"{r['first_call_s']:>11.2f}s", file=out)
        if entry["speedup"] is not None:
            print(f"{'':<26}-> compiled is {entry['speedup']:.1f}x faster per step than "
                  f"interpreted", file=out)
        if entry.get("speedup_torch") is not None:
            print(f"{'':<26}-> compiled is {entry['speedup_torch']:.1f}x faster per step than "
                  f"PyTorch eager", file=out)
    print(f"(loss = mean minibatch loss of the last {LOSS_WINDOW} steps, as the progress bar "
          f"shows;\n step = one training step on a minibatch (loss, gradients and SGD update: one "
          f"compiled call for gradc);\n first call = trace + compile, or a cache hit)", file=out)


def _fmt_ms(ms: float) -> str:
    return f"{1e3 * ms:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    """`gradc demo [--steps N] [--engines c,numpy,torch] [--models ...] [--batch-size B] [--seed S]
    [--no-progress]`; returns the exit status (2 for bad options or a missing torch)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    models, engines = _check_options(parser, args)
    t0 = time.perf_counter()
    results = run(engines=engines, steps=args.steps, models=models, batch_size=args.batch_size,
                  seed=args.seed, progress=not args.no_progress)
    report(results)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The demo's options, each with its help text."""
    parser = argparse.ArgumentParser(
        prog="gradc demo", description="Train the lectures' models on the shipped 8x8 digits, "
        "compiled to C and interpreted (and in PyTorch with --engines ...,torch), and print test "
        "accuracy, loss and the speed-up.")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per model (default: per model, 500 and 1000)")
    parser.add_argument("--engines", default=f"c,{INTERPRETED}",
                        help="comma-separated engines to compare: c (compiled), numpy "
                        "(interpreted), torch (PyTorch eager, needs torch) (default: c,numpy)")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated models (default: {','.join(MODELS)})")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="minibatch rows per training step (default: 64)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the train/test split, initial weights and minibatch order "
                        "(default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def _check_options(parser, args):
    """The models and engines asked for; argparse's error (exit 2) for unknown ones or a torch
    engine without torch."""
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        parser.error(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    if TORCH in engines:
        try:
            require_torch()
        except ImportError as exc:
            parser.error(str(exc))
    return models, engines


if __name__ == "__main__":
    sys.exit(main())
