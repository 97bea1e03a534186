"""`python -m gradc.fuzz`: programs checked in worker processes (a kernel that crashes takes only
its worker down: the crash is counted and shrunk like any failure), a summary at the end.

    python -m gradc.fuzz --minutes 10 --seed 1 [--programs N] [--workers W] [--dtype f32|f64|both]
"""
import argparse
import collections
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import wait
from pathlib import Path

from . import catalog, repro
from .shrink import shrink

TIMEOUT = 300          # seconds one program may take (compiles on a loaded machine are slow)


def program_seed(run_seed, index):
    return run_seed * 1_000_000 + index


def _worker_main(conn, options, log_path):
    # NOTE: the worker's stderr goes to a file: a crashing kernel's last words (ASan's report,
    # glibc's "free(): invalid pointer") are the crash's detail.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    from .check import COVERAGE, check_batch
    from .generate import generate
    seen = set()
    while True:
        job = conn.recv()
        if job is None:
            return
        what, payload = job
        programs = ([generate(s, options["max_stmts"]) for s in payload] if what == "seeds"
                    else [payload])
        outcomes = check_batch(programs, poison=options["poison"], dtypes=options["dtypes"],
                               combined=options.get("combined", True))
        new = COVERAGE - seen
        seen |= new
        conn.send(([(o.kind, o.detail, p if o.failed else None, p.size()[0])
                    for o, p in zip(outcomes, programs)], sorted(new)))


class Worker:
    def __init__(self, ctx, options):
        self.log = tempfile.NamedTemporaryFile(prefix="gradc-fuzz-", suffix=".log", delete=False)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, options, self.log.name),
                                daemon=True)
        self.proc.start()
        child.close()
        self.job, self.started = None, 0.0

    def submit(self, job):
        self.conn.send(job)
        self.job, self.started = job, time.monotonic()

    def receive(self):
        """The worker's answer ([(kind, detail, failed program or None, statements)] per program,
        new primitives), or ([crash outcome], []) if it died."""
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            return [("crash", self._last_words(), None, 0)], []

    def _last_words(self):
        code = self.proc.exitcode
        try:
            tail = Path(self.log.name).read_text(errors="replace").strip().splitlines()[-3:]
        except OSError:
            tail = []
        what = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"the worker died ({what}): " + " | ".join(tail)[-400:]

    def kill(self):
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        try:
            os.unlink(self.log.name)
        except OSError:
            pass

    def stop(self):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(10)
        self.kill()


class Pool:
    def __init__(self, workers, options):
        self.ctx = multiprocessing.get_context("spawn")
        self.options = options
        self.workers = [Worker(self.ctx, options) for _ in range(workers)]

    def replace(self, worker):
        worker.kill()
        fresh = Worker(self.ctx, self.options)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def run_one(self, job, timeout=TIMEOUT):
        """Runs one job on the first worker and waits (the shrinker's check)."""
        worker = self.workers[0]
        worker.submit(job)
        if not worker.conn.poll(timeout):
            self.replace(worker)
            return ("timeout", f"no answer in {timeout} s", None, 0)
        (answer,), _ = worker.receive()
        if answer[0] == "crash":
            self.replace(worker)
        return answer

    def stop(self):
        for w in self.workers:
            w.stop()


def fuzz(seed, minutes=None, programs=None, workers=1, dtypes=("float64", "float32"), poison=True,
         max_stmts=12, shrink_failures=True, save=None, out=sys.stdout, shrink_seconds=120,
         shrink_per_kind=3, first_index=0, combined=True, batch=8):
    """Runs the fuzzer; returns the summary dict (also printed to `out`). Programs go to the
    workers `batch` at a time (one kernel for a batch, see check.check_batch); a batch whose
    worker dies is run again one program a job, so a crash is pinned on its program."""
    options = {"poison": poison, "dtypes": tuple(dtypes), "max_stmts": max_stmts,
               "combined": combined}
    pool = Pool(max(1, workers), options)
    start = time.monotonic()
    deadline = start + 60 * minutes if minutes else float("inf")
    limit = programs if programs is not None else (None if minutes else 100)
    counts, first, coverage, statements = collections.Counter(), {}, set(), 0
    next_index, done, busy, retry = first_index, 0, {}, collections.deque()

    def more():
        return bool(retry) or ((limit is None or next_index < first_index + limit)
                               and time.monotonic() < deadline)

    def submit(w):
        nonlocal next_index
        if retry:
            indices = [retry.popleft()]
        else:
            end = next_index + batch if limit is None else min(next_index + batch,
                                                               first_index + limit)
            indices = list(range(next_index, end))
            next_index = end
        w.submit(("seeds", [program_seed(seed, i) for i in indices]))
        busy[w] = indices

    last_report = start
    try:
        for w in pool.workers:
            if more():
                submit(w)
        while busy:
            ready = wait([w.conn for w in busy], timeout=5)
            if time.monotonic() - last_report > 60:
                last_report = time.monotonic()
                failed = sum(n for k, n in counts.items() if k != "ok" and not k.startswith("skip"))
                print(f"... {done} programs, {failed} failed, {last_report - start:.0f} s",
                      file=out, flush=True)
            for w in list(busy):
                timed_out = time.monotonic() - w.started > TIMEOUT
                if w.conn not in ready and not timed_out:
                    continue
                indices = busy.pop(w)
                if w.conn in ready:
                    answers, new = w.receive()
                else:
                    answers, new = [("timeout", f"over {TIMEOUT} s", None, 0)], []
                coverage.update(new)
                if answers[0][0] in ("crash", "timeout"):
                    w = pool.replace(w)
                    if len(indices) > 1:          # pin it on one program: one a job
                        retry.extend(indices)
                        answers = []
                for index, (kind, detail, program, n_stmts) in zip(indices, answers):
                    statements += n_stmts
                    counts[kind] += 1
                    done += 1
                    failed = not (kind == "ok" or kind.startswith("skip"))
                    if failed and len(first.setdefault(kind, [])) < shrink_per_kind:
                        first[kind].append((program_seed(seed, index), detail, program))
                    if failed and len(first[kind]) == 1 and counts[kind] == 1:
                        print(f"[{done}] {kind} (seed {program_seed(seed, index)}): "
                              f"{detail[:200]}", file=out, flush=True)
                if more():
                    submit(w)
        seconds = time.monotonic() - start
        findings, classes = [], {}
        if shrink_failures:      # a few of each kind, grouped by the ops the shrunk program uses
            for kind, samples in first.items():
                for pseed, detail, program in samples if kind != "invalid program" else ():
                    try:
                        found = _shrink_one(pool, kind, pseed, detail, program, max_stmts, out,
                                            shrink_seconds)
                    except Exception as e:     # noqa: BLE001 - report the rest all the same
                        print(f"could not shrink seed {pseed}: {type(e).__name__}: {e}", file=out)
                        continue
                    key = (kind, found["ops"])
                    if key not in classes:
                        classes[key] = found
                        findings.append(found)
                        _save(found, save)
    finally:
        pool.stop()
    summary = {"seed": seed, "programs": done, "seconds": seconds, "statements": statements,
               "per_minute": 60 * done / max(seconds, 1e-9), "counts": dict(counts),
               "failures": {k: counts[k] for k in first}, "findings": findings,
               "examples": {k: f"seed {v[0][0]}: {v[0][1]}" for k, v in first.items()},
               "never_compiled": sorted(set(_primitive_names()) - coverage),
               "batch_split": "(batch split)" in coverage,
               "named_sizes": "(named sizes)" in coverage}
    _print_summary(summary, workers, poison, out)
    return summary


def _primitive_names():
    from ..primitives import PRIMITIVES
    return PRIMITIVES


OP_NAME = re.compile(r"(?:gc\.nn\.|gc\.|np\.|\.)(\w+)\(|(@)|\}(\[)|(\.T)\b|(\*\*)")


def ops_used(program):
    """The ops a program's statements call ("sum", "@", "[" for indexing, ...), sorted."""
    found = set()
    for s in program.stmts:
        for m in OP_NAME.finditer(s.template):
            found.add(next(g for g in m.groups() if g))
    return tuple(sorted(found - {"array", "arange"}))


def _save(found, save):
    if not save:
        return
    Path(save).mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "-" for c in found["kind"]).strip("-")[:40]
    ops = "-".join(o for o in found["ops"] if o.isalnum())[:40]
    path = Path(save) / f"seed{found['seed']}-{slug}-{ops}.py"
    path.write_text(found["script"])
    found["path"] = str(path)


def _shrink_one(pool, kind, pseed, detail, program, max_stmts, out, budget):
    from .generate import generate
    program = program or generate(pseed, max_stmts)     # a crash: regenerate the seed's program

    def fails(candidate):
        answer = pool.run_one(("program", candidate))
        if answer[0] == kind:
            last[0] = answer[1]
        return answer[0] == kind

    last = [detail]
    small, tries = shrink(program, fails, budget_seconds=budget)
    detail = last[0]
    for full in (False, True):        # the failing part alone if that shows it, else everything
        text = repro.text(small, kind, detail, full=full)
        verified = reproduces(text)
        if verified:
            break
    note = "the script reproduces it" if verified else "the script does NOT reproduce it alone"
    print(f"\n==== {kind} (seed {pseed}; shrunk from {len(program.stmts)} to {len(small.stmts)} "
          f"statements in {tries} tries; {note})\n{text}", file=out, flush=True)
    return {"kind": kind, "seed": pseed, "statements": len(small.stmts), "script": text,
            "verified": verified, "path": None, "program": small, "ops": ops_used(small)}


def reproduces(script, timeout=TIMEOUT):
    """Whether a repro script, run as a fresh Python process, shows its failure (prints REPRODUCED
    or dies of a signal)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])] + sys.path[1:]))
    try:
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return False
    return "REPRODUCED" in run.stdout or run.returncode < 0 or (
        run.returncode != 0 and "AddressSanitizer" in run.stderr)


def _print_summary(s, workers, poison, out):
    print(f"\ngradc fuzz: seed {s['seed']}: {s['programs']} programs "
          f"({s['statements']} statements) "
          f"in {s['seconds']:.0f} s = {s['per_minute']:.0f} programs/minute on {workers} "
          f"worker(s); poison {'on' if poison else 'off'}", file=out)
    for kind, n in sorted(s["counts"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:7d}  {kind}", file=out)
    if s["failures"]:
        print(f"failure kinds: {len(s['failures'])}", file=out)
        for f in s["findings"]:
            print(f"  class: {f['kind']}; ops {', '.join(f['ops'])}; "
                  f"{f['statements']} statement(s); "
                  f"seed {f['seed']}{'' if f['verified'] else ' (script does not reproduce alone)'}"
                  + (f"; {f['path']}" if f["path"] else ""), file=out)
    else:
        print("no failures", file=out)
    print(f"batch split compiled: {'yes' if s['batch_split'] else 'no'}; named sizes compiled: "
          f"{'yes' if s.get('named_sizes') else 'no'}", file=out)
    if s["never_compiled"]:
        print("primitives no compiled program used: " + ", ".join(s["never_compiled"]), file=out)
    extra = catalog.unclassified()
    if extra:
        print("public ops the fuzzer does not generate: " + ", ".join(extra), file=out)
    out.flush()


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m gradc.fuzz",
        description="Differential fuzzing of gradc: random programs through backend='c', "
                    "backend='numpy', the un-jitted transforms and finite differences.")
    ap.add_argument("--minutes", type=float, default=None, help="run for this long")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--programs", type=int, default=None, help="stop after N programs")
    ap.add_argument("--start", type=int, default=0,
                    help="index of the first program (program seed = seed * 1e6 + index): "
                         "--seed 21 --start 12 --programs 1 replays seed 21000012")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    ap.add_argument("--batch", type=int, default=8,
                    help="programs compiled together in one kernel (a failing batch is re-run "
                         "program by program)")
    ap.add_argument("--dtype", choices=("f32", "f64", "both"), default="both")
    ap.add_argument("--max-stmts", type=int, default=12)
    ap.add_argument("--no-poison", action="store_true", help="do not poison outputs/workspace")
    ap.add_argument("--no-shrink", action="store_true")
    ap.add_argument("--separate-dtypes", action="store_true",
                    help="a kernel per dtype (default: float64 and float32 in one kernel, one "
                         "cc call)")
    ap.add_argument("--shrink-seconds", type=float, default=120)
    ap.add_argument("--save", default=None, help="write each shrunk failure as DIR/*.py")
    ap.add_argument("--sanitize", action="store_true",
                    help="build kernels with ASan+UBSan (GRADC_SANITIZE=1) in preloaded workers")
    a = ap.parse_args(argv)
    if a.sanitize:
        from .sanitize import sanitizer_env
        env = sanitizer_env()
        if env is None:
            ap.error("the C compiler has no AddressSanitizer runtime (libasan)")
        os.environ.update(env)          # the spawned workers start with it
    dtypes = {"f32": ("float32",), "f64": ("float64",), "both": ("float64", "float32")}[a.dtype]
    summary = fuzz(a.seed, a.minutes, a.programs, a.workers, dtypes, not a.no_poison, a.max_stmts,
                   not a.no_shrink, a.save, shrink_seconds=a.shrink_seconds, first_index=a.start,
                   combined=not a.separate_dtypes, batch=max(1, a.batch))
    return 1 if summary["failures"] else 0
