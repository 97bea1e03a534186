"""Shapes that vary (API.md section 10): a kernel with a named batch dim against the fixed-shape
kernel, and a training loop whose last batch is short.

1. Per call: the mlp and softmax workloads (value and gradients, float32) lowered with the batch
   named (`gc.Spec(("n", 784), "float32")`) against the same function compiled for the exact
   shape, at B = 64 and 1024, both on the same inputs (their results must agree first).
2. A training loop: one epoch of batches 32, 32, ..., 32, 17 (the short last batch), then a second
   epoch; and requests of 10 sizes; with `dynamic="auto"` (the default) and with `dynamic=False`:
   compiles and wall time.

    python -m bench.shapes            # ~1 min on 2 cores
    python -m bench.shapes --quick

Writes bench/results/shapes.md (and prints it).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import timing                                 # noqa: E402
from bench.workloads import WORKLOADS, inputs_for       # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "shapes.md"
CASES = [("mlp[64]", "mlp", 64), ("mlp[1024]", "mlp", 1024), ("softmax[256]", "softmax", 256),
         ("softmax[1024]", "softmax", 1024)]


def _named(specs_of):
    """The workload's argument specs with the batch (the rows of X, the labels) named n."""
    import gradc as gc
    out = []
    for a in specs_of:
        a = np.asarray(a)
        shape = ("n",) + a.shape[1:] if a.ndim and a.shape[0] == specs_of[-1].shape[0] else a.shape
        out.append(gc.Spec(shape, a.dtype))
    return out


def _inputs(name, batch):
    from bench import workloads
    if name.startswith("mlp"):
        return workloads._mlp(batch)(np.random.default_rng(0))
    return workloads._softmax_inputs(np.random.default_rng(0), B=batch)


def per_call(quick):
    import gradc as gc
    options = timing.QUICK if quick else timing.FULL
    rows = []
    for label, kind, batch in CASES:
        workload = WORKLOADS[f"{kind}[{64 if kind == 'mlp' else 256}]"]
        fn = gc.value_and_grad(lambda *a, _w=workload: _w.loss(gc, *a), argnums=workload.argnums)
        args = _inputs(kind, batch)
        fixed = gc.jit(fn, dynamic=False)
        named = gc.jit(fn).lower(*_named(args)).compile()
        for got, want in zip(_leaves(named(*args)), _leaves(fixed(*args))):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        t_fixed = timing.measure(lambda: fixed(*args), **options)
        t_named = timing.measure(lambda: named(*args), **options)
        rows.append((label, t_fixed["median_s"], t_named["median_s"],
                     max(t_fixed["background_cores"], t_named["background_cores"])))
    return rows


SCENARIOS = {"training loop, two epochs of 8 batches of 32 and one of 17": ([32] * 8 + [17]) * 2,
             "requests of 10 sizes": [5, 17, 64, 3, 250, 33, 1000, 8, 129, 40]}


def training_loop():
    """Each scenario's batches through gc.jit(value_and_grad(mlp loss)): compiles and seconds
    (compiling included) with dynamic="auto" and dynamic=False."""
    import gradc as gc
    workload = WORKLOADS["mlp[64]"]
    params = inputs_for(workload)[:4]
    rng = np.random.default_rng(1)
    out = {}
    for scenario, sizes in SCENARIOS.items():
        batches = [(rng.uniform(0, 1, (b, params[0].shape[0])).astype(np.float32),
                    rng.integers(0, params[2].shape[1], b)) for b in sizes]
        for mode in ("auto", False):
            step = gc.jit(gc.value_and_grad(lambda *a: workload.loss(gc, *a),
                                            argnums=(0, 1, 2, 3)), dynamic=mode)
            with tempfile.TemporaryDirectory() as cache:      # every compile a cold one
                os.environ["GRADC_CACHE_DIR"] = cache
                t0 = time.perf_counter()
                for X, y in batches:
                    step(*params, X, y)
                out[scenario, mode] = (step.cache_info().misses, time.perf_counter() - t0)
                del os.environ["GRADC_CACHE_DIR"]
    return out


def _leaves(tree):
    if isinstance(tree, (tuple, list)):
        return [x for t in tree for x in _leaves(t)]
    return [tree]


def _fmt(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def report(rows, loops):
    lines = ["# Named batch dim against the fixed-shape kernel", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"load {os.getloadavg()[0]:.2f} at the end; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
             "", "| workload | fixed shape | named batch | ratio | busy cores besides |",
             "|---|---|---|---|---|"]
    for label, fixed, named, busy in rows:
        lines.append(f"| {label} | {_fmt(fixed)} | {_fmt(named)} | {named / fixed:.2f}x | "
                     f"{busy:.2f} |")
    lines += ["", "| scenario | dynamic | compiles | seconds (cold compiles included) |",
              "|---|---|---|---|"]
    for (scenario, mode), (misses, seconds) in loops.items():
        lines.append(f"| {scenario} | {mode!r} | {misses} | {seconds:.2f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    text = report(per_call(args.quick), training_loop())
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
