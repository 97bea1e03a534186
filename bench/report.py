"""The report: machine description, bars met / not met, and the markdown, JSON and PNG outputs.

Input is the list of per-(workload, engine) results assembled by run.py. "Best peer" on a
workload is the fastest engine other than gradc's own whose answer passed the check; every
engine's time is also given as a ratio to it. The bars are gradc's targets (gradc-c, the
default backend): a bar without a measurement is "not met", never silently dropped.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from bench.engines import CORES, version_of
from bench.workloads import (SPEEDUP_TARGET, SPEEDUP_WORKLOADS, TARGET_RATIOS, WARM_SETUP_TARGET_S,
                             WORKLOADS)

GRADC = "gradc-c"
BUSY_CORES = 0.25


def machine_info(results=()):
    """The machine and versions; a version a worker reported (e.g. an uninstalled gradc checkout) wins."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor() or "unknown")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        commit = None
    versions = {name: version_of(name) for name in ("numpy", "gradc", "torch", "jax", "jaxlib", "pytensor")}
    versions["gradc"] = versions["gradc"] or next(
        (r["version"] for r in results if r["engine"].startswith("gradc") and r.get("version")), None)
    return {"cpu": cpu, "cores": CORES, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), **versions,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"), "gradc_blas": _gradc_blas(),
            "gradc_commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def _gradc_blas():
    """The BLAS gradc-c links by default here (what GRADC_BLAS would choose)."""
    try:
        from gradc.cbackend import blas
        return blas.kind() or "none (plain C GEMM)"
    except Exception as e:          # an unbuilt checkout or a bad GRADC_BLAS: say so in the report
        return f"unknown ({e})"


def fmt_time(s):
    if s is None:
        return "—"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _median(r):
    return r["timing"]["median_s"] if r and r.get("status") == "ok" else None


def _busy(r):
    """Timed while other processes kept more than BUSY_CORES cores busy."""
    return _median(r) is not None and r["timing"].get("background_cores", 0) > BUSY_CORES


def _valid(r):
    """A result whose time counts: it ran, and its value and gradients passed the check."""
    return _median(r) is not None and r["check"]["ok"]


def annotate(results):
    """Add `vs_best_peer` to every timed result; return {workload: (best peer name, time)}."""
    best = {}
    for r in results:
        if r["peer"] and _valid(r) and (r["workload"] not in best or _median(r) < best[r["workload"]][1]):
            best[r["workload"]] = (r["engine"], _median(r))
    for r in results:
        if _median(r) is not None and r["workload"] in best:
            r["vs_best_peer"] = _median(r) / best[r["workload"]][1]
    return best


def _why_missing(r):
    if r is None:
        return "not measured"
    if r.get("status") != "ok":
        return f"{r.get('status')}: {r.get('error', '')}"[:120]
    return "check failed: " + "; ".join(r["check"]["problems"])[:120]


def target_for(w, by, best):
    """(seconds, text) of gradc-c's bar on workload w: a time, a named peer's time, or the best peer's."""
    target, named = WORKLOADS[w].target_s, by.get((w, WORKLOADS[w].target_peer))
    if target is not None:
        return target, f"<= {fmt_time(target)}"
    if _valid(named):
        return _median(named), f"<= {named['engine']} ({fmt_time(_median(named))})"
    peer = best.get(w)
    if peer:
        return peer[1], f"<= best peer ({peer[0]} {fmt_time(peer[1])})"
    return None, "<= best peer"


def bars(results, best):
    by = {(r["workload"], r["engine"]): r for r in results}
    names = [w for w in WORKLOADS if any(r["workload"] == w for r in results)]
    rows = []
    for w in names:
        g = by.get((w, GRADC))
        target, target_text = target_for(w, by, best)
        if not _valid(g):
            rows.append({"bar": w, "target": target_text, "measured": _why_missing(g), "met": False})
        elif target is None:
            rows.append({"bar": w, "target": target_text, "measured": fmt_time(_median(g)),
                         "met": False, "note": "no peer measured"})
        else:
            rows.append({"bar": w, "target": target_text, "measured": fmt_time(_median(g)),
                         "met": _median(g) <= target})

    def setup_bar(label, target_text, key, limit_of):
        row = {"bar": label, "target": target_text, "met": False}
        got = {w: (by.get((w, GRADC)) or {}).get(key) for w in names}
        missing = [w for w in names if got[w] is None]
        if missing:
            return {**row, "measured": f"no gradc-c {key.replace('_setup_s', ' setup')} for {', '.join(missing)}"}
        pairs = [(w, got[w], limit_of(w)) for w in names if limit_of(w) is not None]
        if not pairs:
            return {**row, "measured": f"{fmt_time(max(got.values()))} (no jax.jit result to compare with)"}
        w, s, lim = max(pairs, key=lambda p: p[1] / p[2])
        n_met = sum(s <= lim for _, s, lim in pairs)
        return {**row, "met": n_met == len(pairs),
                "measured": f"worst {w}: {fmt_time(s)} vs {fmt_time(lim)} ({n_met}/{len(pairs)} workloads met)"}

    for w in names:
        ratio, g, peer = TARGET_RATIOS.get(w), by.get((w, GRADC)), best.get(w)
        if ratio is None:
            continue
        row = {"bar": f"{w} vs best peer", "target": f"<= {ratio:.2f}x best peer"}
        if _valid(g) and peer:
            got = _median(g) / peer[1]
            row.update(measured=f"{got:.2f}x {peer[0]}", met=got <= ratio)
        else:
            row.update(measured=_why_missing(g) if not _valid(g) else "no peer measured", met=False)
        rows.append(row)
    rows.append(setup_bar("cold setup", "<= jax.jit's cold setup, each workload", "cold_setup_s",
                          lambda w: (by.get((w, "jax.jit")) or {}).get("cold_setup_s")))
    rows.append(setup_bar("warm setup", f"<= {fmt_time(WARM_SETUP_TARGET_S)}, each workload",
                          "warm_setup_s", lambda w: WARM_SETUP_TARGET_S))
    for w in SPEEDUP_WORKLOADS:
        if w not in names:
            continue
        c, n = by.get((w, GRADC)), by.get((w, "gradc-numpy"))
        row = {"bar": f"gradc-c vs gradc-numpy, {w}", "target": f">= {SPEEDUP_TARGET:g}x faster"}
        if _valid(c) and _valid(n):
            speedup = _median(n) / _median(c)
            row.update(measured=f"{speedup:.1f}x", met=speedup >= SPEEDUP_TARGET)
        else:
            row.update(measured="gradc-c " + _why_missing(c) if not _valid(c) else "gradc-numpy " + _why_missing(n),
                       met=False)
        rows.append(row)
    return rows


def _cell(r):
    if r is None:
        return "—"
    if r["status"] == "unavailable":
        return "n/a"
    if r["status"] != "ok":
        return "failed"
    text = fmt_time(_median(r)) + ("*" if _busy(r) else "")
    if "vs_best_peer" in r:
        text += f" ({r['vs_best_peer']:.3g}x)"
    return text if r["check"]["ok"] else text + " **wrong**"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _details_row(r):
    t = r["timing"]
    check = r["check"]
    return [r["workload"], r["engine"], fmt_time(t["median_s"]), fmt_time(t["min_s"]),
            f"{100 * t['spread']:.1f}%", f"{t.get('background_cores', float('nan')):.2f}" + ("*" if _busy(r) else ""),
            f"{r['vs_best_peer']:.2f}x" if "vs_best_peer" in r else "—", f"{t['batches']} x {t['batch_size']}",
            fmt_time(r.get("cold_setup_s")),
            fmt_time(r["warm_setup_s"]) if r.get("warm_setup_s") else r.get("warm_note", "failed"),
            f"ok ({check['max_err']:.1e})" if check["ok"] else "**FAIL**: " + "; ".join(check["problems"])]


def _notes(results):
    """One line per (engine, problem): engines not installed, failures (with their message)."""
    grouped = {}
    for r in results:
        if r["status"] != "ok" or r.get("warm_error"):
            what = {"unavailable": "not installed, skipped", "ok": "warm setup failed"}.get(r["status"], r["status"])
            grouped.setdefault((r["engine"], what, r.get("error") or r.get("warm_error")), []).append(r["workload"])
    return [f"- {e} {what} on {', '.join(ws)}: `{err}`" for (e, what, err), ws in grouped.items()]


METHOD_NOTES = [
    "- Method: each measurement runs in a new process. Per-call time is the median over batches after "
    "warm-up, garbage collector off, batch size chosen so a batch lasts ~20 ms; spread is the interquartile "
    "range over the median; busy cores besides = CPU used by other processes during the timing (from "
    "/proc/stat). Inputs are pre-converted to each engine's array type; JAX results are waited for "
    "(block_until_ready). Threads: all available cores for every engine.",
    "- Cold setup: trace + compile + first call with an empty on-disk cache (fresh GRADC_CACHE_DIR, "
    "TORCHINDUCTOR_CACHE_DIR, PyTensor compiledir), after importing the framework; the median of 3 fresh "
    "processes (of 1 where a setup takes over 2 s). Warm setup: the same in "
    "a new process with that cache filled; engines without a disk cache (hand NumPy, torch eager, jax.jit "
    "by default) have none.",
    "- Check: value and gradients against the hand-written NumPy forward/backward evaluated in float64 on "
    "the same inputs; error = max |got - ref| / max |ref| per array, tolerance 2e-4 for float32 and 1e-10 "
    "for float64. MLP inputs keep every ReLU pre-activation at least 1e-2 away from 0.",
    "- Peers: hand NumPy, torch eager (loss.backward()), torch.compile(torch.func.grad_and_value), "
    "jax.jit(jax.value_and_grad), pytensor.function (default mode). gradc-numpy is gradc's interpreted "
    "engine (gc.jit(..., backend=\"numpy\")).",
]


def markdown(results, machine, settings, best, bar_rows):
    engines = list(dict.fromkeys(r["engine"] for r in results))
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    by = {(r["workload"], r["engine"]): r for r in results}
    bar = {b["bar"]: b for b in bar_rows}
    busy = [r for r in results if _busy(r)]
    m = machine
    out = ["# gradc benchmark: value and gradients per call", "",
           f"Machine: {m['cpu']}, {m['cores']} cores available ({m['logical_cpus']} logical CPUs), "
           f"{m['platform']}; OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']}; gradc-c's BLAS: "
           f"{m.get('gradc_blas', 'not recorded')} (gradc-c-openblas: OpenBLAS).  ",
           f"Versions: Python {m['python']}, NumPy {m['numpy']}, gradc {m['gradc']} (commit {m['gradc_commit']}), "
           f"torch {m['torch']}, jax {m['jax']}, pytensor {m['pytensor']}.  ",
           f"Run finished {m['date']}: {settings['mode']} timing ({settings['budget_s']} s per engine and workload, "
           f"at least {settings['min_batches']} batches), total {settings['elapsed_s']:.0f} s.", ""]
    if busy:
        out += [f"**Warning: other processes kept the machine busy while {len(busy)} of the timings ran** "
                f"(marked *: on average more than {BUSY_CORES} core busy besides the benchmark). Multi-threaded "
                "BLAS and OpenMP code (NumPy's OpenBLAS, torch, gradc-c) can slow down many times over when "
                "another process holds a core; re-run those on a quiet machine.", ""]
    out += ["## Time per call (median; in brackets the ratio to the best peer)", "",
            _table(["workload", "gradc-c target", *engines, "best peer", "target met"],
                   [[w, bar[w]["target"], *[_cell(by.get((w, e))) for e in engines],
                     f"{best[w][0]} {fmt_time(best[w][1])}" if w in best else "—",
                     "met" if bar[w]["met"] else "**not met**"] for w in workloads]), "",
            "## Bars (gradc-c)", "",
            _table(["bar", "target", "measured", "met"],
                   [[b["bar"], b["target"], b["measured"], "met" if b["met"] else "**not met**"] for b in bar_rows]),
            "", "## Details", "",
            _table(["workload", "engine", "median", "min", "spread (IQR)", "busy cores besides", "vs best peer",
                    "batches x calls", "cold setup", "warm setup", "check (max rel. error)"],
                   [_details_row(r) for r in results if r["status"] == "ok"]),
            "", "## Notes", "", *_notes(results), *METHOD_NOTES, ""]
    return "\n".join(out)


def plot(results, best, path):
    """Grouped bars (log scale) of time per call; gradc-c's targets as black ticks."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    engines = list(dict.fromkeys(r["engine"] for r in results))
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    by = {(r["workload"], r["engine"]): r for r in results}
    width = 0.8 / len(engines)
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(workloads)), 5))
    for i, e in enumerate(engines):
        xs = [j + (i - (len(engines) - 1) / 2) * width for j in range(len(workloads))]
        rs = [by.get((w, e)) for w in workloads]
        bars = ax.bar(xs, [_median(r) or 0 for r in rs], width, label=e)
        for bar, r in zip(bars, rs):
            if _median(r) is not None and not r["check"]["ok"]:
                bar.set_hatch("xx")
    for j, w in enumerate(workloads):
        target = target_for(w, by, best)[0]
        if target:
            ax.hlines(target, j - 0.45, j + 0.45, colors="black", linewidth=1.5,
                      label="gradc-c target" if j == 0 else None)
    ax.set_yscale("log")
    times = [_median(r) for r in results if _median(r)]
    if times:
        ax.set_ylim(bottom=min(times) / 3)
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("time per call, value + gradients (s)")
    ax.set_title("gradc benchmark (lower is better; hatched: value or gradients wrong; "
                 "missing: failed or not installed)", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def _write(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write(results, machine, settings, out_dir):
    """Write latest.md, latest.json and latest.png into out_dir; return the markdown text."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    best = annotate(results)
    bar_rows = bars(results, best)
    text = markdown(results, machine, settings, best, bar_rows)
    try:
        png = out_dir / "latest.png"
        plot(results, best, png.with_name("latest.png.tmp"))
        png.with_name("latest.png.tmp").replace(png)
    except ImportError as e:
        text += f"\n- Plot skipped: matplotlib is not installed ({e}).\n"
    _write(out_dir / "latest.md", text)
    _write(out_dir / "latest.json", json.dumps(
        {"machine": machine, "settings": settings, "best_peer": best, "bars": bar_rows, "results": results},
        indent=1, default=float))
    return text
