"""gradc.distributed against one process: the full-batch gradient of the 784-256-10 MLP on
60,000 x 784 float32 rows, called directly and through Dask with 1 and 2 worker processes; then
the time per step for 8, 64 and 512 workers simulated on paper from the measured figures.

    python -m bench.distributed_mlp              # ~2 min on 2 cores; writes bench/results/
    python -m bench.distributed_mlp --steps 3    # fewer timed steps

Not a test: it measures. Each direct figure comes from a fresh process with GRADC_NUM_THREADS set;
each Dask figure from a fresh LocalCluster (threads_per_worker=1) whose workers get that variable.
The data is persisted on the workers once (gradc.distributed.DataParallel); a step sends the
parameters to every worker, runs one task per shard and adds the shards' results in a tree.
"""
import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROWS, D, H, C = 60_000, 784, 256, 10
RESULTS = Path(__file__).resolve().parent / "results"
# Assumed, not measured (this machine has no network): a 10 Gb/s link and 0.1 ms a hop.
LINK_BYTES_S = 1.25e9
HOP_S = 1e-4


def make_problem(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    params = {"W1": (rng.standard_normal((D, H)) * np.sqrt(2 / D)).astype(np.float32),
              "b1": np.zeros(H, np.float32),
              "W2": (rng.standard_normal((H, C)) * np.sqrt(1 / H)).astype(np.float32),
              "b2": np.zeros(C, np.float32)}
    X = rng.standard_normal((rows, D)).astype(np.float32)
    return params, X, rng.integers(0, C, rows)


def mlp_loss(p, X, y):
    import gradc as gc
    return gc.nn.cross_entropy(gc.relu(X @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"], y)


def direct(steps):
    """Seconds per direct call of the compiled value_and_grad (median), in this process."""
    import gradc as gc
    params, X, y = make_problem()
    step = gc.jit(gc.value_and_grad(mlp_loss))
    step(params, X, y)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step(params, X, y)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "times_s": times}


def _direct_in_fresh_process(threads, steps):
    env = {**os.environ, "GRADC_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-m", "bench.distributed_mlp", "--direct",
                          "--steps", str(steps)], env=env, capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _task_times(records):
    """Compute seconds of the step's tasks by kind, from Dask's task stream."""
    kinds = {"shard": [], "add": [], "finish": []}
    for record in records:
        name = record["key"][0] if isinstance(record["key"], tuple) else record["key"]
        kind = str(name).split("-")[0].lstrip("_")
        compute = sum(s["stop"] - s["start"] for s in record["startstops"]
                      if s["action"] == "compute")
        if kind in kinds:
            kinds[kind].append(compute)
    return kinds


def through_dask(workers, threads, steps, rows=ROWS, shards=None):
    """Per-step wall time of DataParallel.value_and_grad and its tasks' compute times."""
    import distributed
    import gradc.distributed as gd
    params, X, y = make_problem(rows)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR,
                                  env={"GRADC_NUM_THREADS": str(threads)}) as cluster, \
            distributed.Client(cluster) as client:
        dp = gd.DataParallel(mlp_loss, X, y, client=client, shards=shards)
        distributed.wait(dp.arrays)
        del X
        dp.value_and_grad(params)         # ships the kernel, compiles in every worker
        walls, shard_max, add_sum = [], [], []
        for _ in range(steps):
            with distributed.get_task_stream(client) as stream:
                t0 = time.perf_counter()
                dp.value_and_grad(params)
                walls.append(time.perf_counter() - t0)
            kinds = _task_times(stream.data)
            shard_max.append(max(kinds["shard"]))
            add_sum.append(sum(kinds["add"]) + sum(kinds["finish"]))
        return {"workers": workers, "threads": threads, "shards": len(dp.chunks),
                "median_s": statistics.median(walls), "times_s": walls,
                "shard_compute_s": statistics.median(shard_max),
                "combine_compute_s": statistics.median(add_sum)}


def _noop(i):
    return i


def scheduler_per_task(tasks=2000):
    """Seconds a task costs the scheduler (it is one process: its tasks queue), from a batch of
    no-op tasks on 2 workers, median of 3 batches."""
    import distributed
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        client.gather(client.map(_noop, range(100), pure=False))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            client.gather(client.map(_noop, range(tasks), pure=False))
            times.append((time.perf_counter() - t0) / tasks)
    return statistics.median(times)


def shipping_numpy(steps):
    """The one-call API with NumPy data (sent with every call) on 2 workers."""
    import distributed
    import gradc.distributed as gd
    params, X, y = make_problem()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=logging.ERROR,
                                  env={"GRADC_NUM_THREADS": "1"}) as cluster, \
            distributed.Client(cluster) as client:
        gd.value_and_grad(mlp_loss, params, X, y, client=client)
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            gd.value_and_grad(mlp_loss, params, X, y, client=client)
            times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "times_s": times}


def simulate(m, workers=(1, 2, 8, 64, 512)):
    """Time per step for P workers on the same 60,000 rows (strong scaling), from the measured:
    per-row compute, the fixed per-step cost, the scheduler's cost per task, the tree's add; and
    assumed: link bandwidth and hop latency. Returns rows of the table and the best P."""
    param_bytes = sum(a.nbytes for a in make_problem(1)[0].values())
    partial_bytes = 2 * param_bytes + 16        # the shards' results are float64
    row_s = m["per_row_s"]
    add_s = m["add_s"]
    rows = []
    for p in workers:
        compute = row_s * ROWS / p
        broadcast = p * param_bytes / LINK_BYTES_S          # scatter(broadcast): p copies out
        scheduler = (2 * p) * m["per_task_s"]               # p shards, p - 1 adds, a finish
        levels = math.ceil(math.log2(p)) if p > 1 else 0
        reduce = levels * (partial_bytes / LINK_BYTES_S + HOP_S + add_s) + partial_bytes / \
            LINK_BYTES_S
        total = m["fixed_s"] + compute + broadcast + scheduler + reduce
        rows.append({"workers": p, "compute_s": compute, "broadcast_s": broadcast,
                     "scheduler_s": scheduler, "reduce_s": reduce, "total_s": total})
    # d/dP [row_s*ROWS/P + P*(param_bytes/B + 2*per_task)] = 0
    best = math.sqrt(row_s * ROWS / (param_bytes / LINK_BYTES_S + 2 * m["per_task_s"]))
    return rows, best, param_bytes, partial_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true",
                        help="rewrite distributed.md from distributed.json, measuring nothing")
    args = parser.parse_args(argv)
    if args.report:
        out = json.loads((RESULTS / "distributed.json").read_text())
        (RESULTS / "distributed.md").write_text(report(out))
        print(report(out))
        return
    if args.direct:
        print(json.dumps(direct(args.steps)))
        return
    out = {"machine": _machine(), "steps": args.steps, "load_before": os.getloadavg()[0]}
    for threads in (1, 2):
        out[f"direct_{threads}t"] = _direct_in_fresh_process(threads, args.steps)
        print(f"direct, {threads} thread(s): {out[f'direct_{threads}t']['median_s'] * 1e3:.1f} ms",
              flush=True)
    for workers, threads in ((1, 1), (1, 2), (2, 1)):
        key = f"dask_{workers}w_{threads}t"
        out[key] = through_dask(workers, threads, args.steps)
        print(f"dask, {workers} worker(s) x {threads} thread(s): "
              f"{out[key]['median_s'] * 1e3:.1f} ms (shard compute "
              f"{out[key]['shard_compute_s'] * 1e3:.1f} ms)", flush=True)
    # The scheduler's cost per task: 64 shards against 2 of a small problem (compute ~0).
    few = through_dask(2, 1, args.steps, rows=2048, shards=2)
    many = through_dask(2, 1, args.steps, rows=2048, shards=64)
    out["small_2_shards"], out["small_64_shards"] = few, many
    per_task = out["scheduler_per_task_s"] = scheduler_per_task()
    out["numpy_each_call_2w"] = shipping_numpy(max(2, args.steps // 2))
    one = out["dask_1w_1t"]
    model = {"per_row_s": one["shard_compute_s"] / ROWS, "per_task_s": per_task,
             "fixed_s": one["median_s"] - one["shard_compute_s"] - one["combine_compute_s"],
             "add_s": out["dask_2w_1t"]["combine_compute_s"]}
    rows, best, param_bytes, partial_bytes = simulate(model)
    out["model"] = {**model, "param_bytes": param_bytes, "partial_bytes": partial_bytes,
                    "link_bytes_s": LINK_BYTES_S, "hop_s": HOP_S, "best_workers": best,
                    "simulated": rows}
    out["load_after"] = os.getloadavg()[0]      # other processes on a shared machine
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "distributed.md").write_text(report(out))
    print(report(out))


def _machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores"


def report(out):
    ms = lambda s: f"{s * 1e3:.1f}"      # noqa: E731
    lines = [f"Machine: {out['machine']}; median of {out['steps']} steps after a warm-up step; "
             f"load average {out['load_before']:.1f} before, {out['load_after']:.1f} after (other "
             "processes: on 2 cores, above ~0.5 the figures are slowed by them).", "",
             "| engine | ms / step | slowest shard's compute ms | step less that compute ms | "
             "step less direct call ms | ratio to direct |", "|---|---|---|---|---|---|"]
    for key, base, label in (("dask_1w_1t", "direct_1t", "Dask, 1 worker x 1 thread"),
                             ("dask_1w_2t", "direct_2t", "Dask, 1 worker x 2 threads"),
                             ("dask_2w_1t", "direct_2t", "Dask, 2 workers x 1 thread")):
        r, d = out[key], out[base]["median_s"]
        lines.append(f"| {label} (vs direct, {base[-2]} thread(s)) | {ms(r['median_s'])} | "
                     f"{ms(r['shard_compute_s'])} | {ms(r['median_s'] - r['shard_compute_s'])} | "
                     f"{ms(r['median_s'] - d)} | {r['median_s'] / d:.2f} |")
    for key, label in (("direct_1t", "direct call, 1 thread"),
                       ("direct_2t", "direct call, 2 threads")):
        lines.append(f"| {label} | {ms(out[key]['median_s'])} | | | | 1 |")
    shipped = out["numpy_each_call_2w"]["median_s"]
    lines.append(f"| one call with NumPy data sent each time, 2 workers | {ms(shipped)} | | | "
                 f"{ms(shipped - out['direct_2t']['median_s'])} | "
                 f"{shipped / out['direct_2t']['median_s']:.2f} |")
    m = out["model"]
    small = out["small_64_shards"]["median_s"] - out["small_2_shards"]["median_s"]
    lines += ["", f"Model inputs: {m['per_row_s'] * 1e9:.0f} ns of compute a row (1 thread), "
              f"{ms(m['fixed_s'])} ms fixed a step, {m['per_task_s'] * 1e3:.2f} ms of scheduler "
              f"a task (no-op tasks; on this machine a step of 64 shards of 32 rows took "
              f"{ms(small)} ms more than one of 2 shards of 1,024, {small / 124 * 1e3:.2f} ms for "
              f"each extra task, its worker's work included), {ms(m['add_s'])} ms to add two "
              f"shards' results; parameters {m['param_bytes'] / 1e6:.2f} MB, a shard's result "
              f"{m['partial_bytes'] / 1e6:.2f} MB (float64); assumed {m['link_bytes_s'] / 1e9:.2f} "
              f"GB/s links, {m['hop_s'] * 1e3:.1f} ms a hop.", "",
              "| workers | compute ms | broadcast ms | scheduler ms | tree reduce ms | total ms | "
              "speed-up |", "|---|---|---|---|---|---|---|"]
    first = m["simulated"][0]["total_s"]
    for r in m["simulated"]:
        lines.append(f"| {r['workers']} | {ms(r['compute_s'])} | {ms(r['broadcast_s'])} | "
                     f"{ms(r['scheduler_s'])} | {ms(r['reduce_s'])} | {ms(r['total_s'])} | "
                     f"{first / r['total_s']:.1f}x |")
    documented = simulate({**m, "per_task_s": 1e-3})
    lines += ["", f"Fastest at about {m['best_workers']:.0f} workers (where the compute saved by "
              "one more worker equals the broadcast and scheduler time it adds); with Dask's "
              "documented ~1 ms a task instead of the figure measured here, at about "
              f"{documented[1]:.0f} workers ({ms(documented[0][2]['total_s'])} ms at 8, "
              f"{ms(documented[0][3]['total_s'])} ms at 64, {ms(documented[0][4]['total_s'])} ms "
              "at 512)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
