"""One full training step of the MLP (784-256-10, float32): loss, gradients and an Adam update.

gradc compiles the whole step, `gc.optim.adam` included, into one native call (`gradc-c`) or
runs it interpreted (`gradc-numpy`); PyTorch does the same step eagerly (`torch`: zero_grad,
forward, backward, `torch.optim.Adam.step`) and with `torch.compile` (the forward and loss
compiled, and `opt.step` compiled as PyTorch's optimizer tutorial does). Every engine starts from
the same weights and batch, and after three steps their weights must agree before any is timed.

    python -m bench.train_step                    # batches 64 and 1024, ~1 min on 2 cores
    python -m bench.train_step --batches 64 --quick

Writes bench/results/train_step.md (and prints it). Engines whose library is missing are skipped.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):                      # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import timing                            # noqa: E402
from bench.workloads import _mlp                    # noqa: E402

LR = 1e-3
CHECK_STEPS = 3
RESULTS = Path(__file__).resolve().parent / "results" / "train_step.md"


def gradc_engine(backend):
    import gradc as gc

    opt = gc.optim.adam(LR)

    def loss(params, X, y):
        hidden = gc.relu(X @ params["W1"] + params["b1"])
        return gc.nn.cross_entropy(hidden @ params["W2"] + params["b2"], y)

    @gc.jit(backend=backend)
    def step(params, state, X, y):
        value, grads = gc.value_and_grad(loss)(params, X, y)
        params, state = opt.update(params, grads, state)
        return params, state, value

    def setup(params, X, y):
        box = [params, opt.init(params)]

        def call():
            box[0], box[1], value = step(box[0], box[1], X, y)
            return value
        return call, lambda: box[0]
    return setup


def torch_engine(compiled):
    import torch

    def setup(params, X, y):
        if os.environ.get("OMP_NUM_THREADS"):
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        opt = torch.optim.Adam(list(tensors.values()), lr=LR)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def loss():
            hidden = torch.relu(Xt @ tensors["W1"] + tensors["b1"])
            return torch.nn.functional.cross_entropy(hidden @ tensors["W2"] + tensors["b2"], yt)

        forward = torch.compile(loss) if compiled else loss
        opt_step = torch.compile(opt.step) if compiled else opt.step

        def call():
            opt.zero_grad(set_to_none=True)
            value = forward()
            value.backward()
            opt_step()
            return value

        def weights():
            return {k: t.detach().numpy() for k, t in tensors.items()}
        return call, weights
    return setup


ENGINES = {"gradc-c": lambda: gradc_engine("c"), "gradc-numpy": lambda: gradc_engine("numpy"),
           "torch": lambda: torch_engine(False), "torch.compile": lambda: torch_engine(True)}


def inputs(batch):
    W1, b1, W2, b2, X, y = _mlp(batch)(np.random.default_rng(0))
    return {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, X, y


def _thread_env(threads):
    """The environment of a worker: every thread pool (gradc's, OpenMP's, the BLAS's, PyTorch's)
    capped at `threads` when given."""
    env = dict(os.environ)
    if threads:
        for var in ("GRADC_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS"):
            env[var] = str(threads)
    return env


def run_engine(name, batch, quick, threads=None):
    """(setup seconds, timing dict, weights after CHECK_STEPS steps) or the reason it is skipped.
    Each engine runs in a fresh process, as bench/run.py does: PyTorch's thread pool and gradc's
    must not spin beside each other."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.npz"
        cmd = [sys.executable, "-m", "bench.train_step", "--worker", name, str(batch), str(out)]
        proc = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent, env=_thread_env(threads))
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{proc.stderr}")
        if not out.exists():
            return proc.stdout.strip()
        data = dict(np.load(out))
    first, median, spread = data.pop("_first"), data.pop("_median"), data.pop("_spread")
    return float(first), {"median_s": float(median), "spread": float(spread)}, data


def worker(name, batch, out, quick):
    try:
        setup = ENGINES[name]()
    except ImportError as exc:
        print(f"skipped ({exc})")
        return
    params, X, y = inputs(batch)
    call, weights = setup({k: v.copy() for k, v in params.items()}, X, y)
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    for _ in range(CHECK_STEPS - 1):
        call()
    checked = {k: np.array(v, copy=True) for k, v in weights().items()}
    stats = timing.measure(call, **(timing.QUICK if quick else timing.FULL))
    np.savez(out, _first=first, _median=stats["median_s"], _spread=stats["spread"], **checked)


def fmt(seconds):
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="64,1024", help="batch sizes (default: 64,1024)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"engines to time (default: {','.join(ENGINES)})")
    parser.add_argument("--quick", action="store_true", help="shorter timing budgets")
    parser.add_argument("--threads", type=int, default=None,
                        help="cap every engine's threads (default: each library's own choice)")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write "
                        f"{RESULTS.relative_to(RESULTS.parent.parent.parent)}")
    parser.add_argument("--worker", nargs=3, metavar=("ENGINE", "BATCH", "OUT"),
                        help="internal: run one engine in this process and save its results")
    args = parser.parse_args(argv)
    if args.worker:
        name, batch, out = args.worker
        worker(name, int(batch), out, args.quick)
        return 0
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        results = {name: run_engine(name, batch, args.quick, args.threads) for name in engines}
        reference = next((r[2] for r in results.values() if not isinstance(r, str)), None)
        for name, r in results.items():
            if isinstance(r, str):
                rows.append(f"| mlp[{batch}] Adam step | {name} | {r} | | | |")
                continue
            first, stats, weights = r
            err = max(float(np.max(np.abs(weights[k] - reference[k]))
                            / np.max(np.abs(reference[k])))
                      for k in reference)
            if err > 1e-3:
                raise AssertionError(f"{name} disagrees with the first engine after "
                                     f"{CHECK_STEPS} steps (relative error {err:.2e})")
            rows.append(f"| mlp[{batch}] Adam step | {name} | {fmt(stats['median_s'])} | "
                        f"{100 * stats['spread']:.1f}% | {fmt(first)} | {err:.1e} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "?"
    lines = [f"# One training step: MLP 784-256-10, loss + gradients + Adam (bench/train_step.py)",
             "", f"Commit {commit}, {time.strftime('%Y-%m-%d')}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"threads {args.threads or 'default'}, load average {os.getloadavg()[0]:.1f} at the "
             f"end; medians of batches after warm-up, each engine in its own process.", "",
             "| workload | engine | median | spread (IQR) | first call | weights vs first engine |",
             "|---|---|---|---|---|---|", *rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
