"""Runs one fuzzed program every way gradc can and compares: the outcome is "ok", a "skip ..." (the
point turned out unfit for finite differences) or the first failure found.

What is compared, in float64 and float32 (each input cast), for the outputs, the value and the
gradient of L = sum(out * cotangent), the forward-mode tangents J t and, on small programs, the
Hessian-vector product (grad of grad):
- gc.jit(backend="c") against gc.jit(backend="numpy") (the reference) and the un-jitted transforms
  against it too; output dtypes must agree exactly; and the C kernel with every size of at least 2
  named (API.md section 10), where the program allows it;
- the reference gradient against float64 central differences of L along two random directions
  (Richardson-extrapolated; where the two step sizes disagree the point is near a kink: a skip);
- the dot-product test <c, J t> = <grad L, t> (forward against reverse mode) on both backends;
- the Hessian-vector product against central differences of the reference gradient.
All of f64 and f32 for one program compile in one C library (one cc call).

Tolerances: |got - ref| <= rtol |ref| + atol max(1, max |ref|) (+ noise), elementwise, with
float64 rtol = atol = 1e-8; float32 rtol = atol = 1e-4 plus noise = 4 |ref32 - ref64| (the float32
rounding the interpreter itself shows at that element). Finite differences: 1e-6 relative to
sum |g_i d_i| plus the Richardson error estimate; the dot test 1e-7 (1e-3 in float32) times
max(1, sum of the products' magnitudes).
"""
import contextlib
import os
import traceback

import numpy as np

import gradc as gc
from gradc import backends
from gradc.cbackend import backend as c_backend, split as c_split
from gradc.errors import ShapeError
from gradc.jit import Compiled
from gradc.symbolic import SymbolicShapeError
from gradc.tree import tree_flatten, tree_unflatten

from .program import run_eager

TOL = {"float64": (1e-8, 1e-8), "float32": (1e-4, 1e-4)}
FD_STEP = 1e-4
COVERAGE = set()          # primitives seen in compiled graphs (this process)


class Outcome:
    def __init__(self, kind, detail="", where=""):
        self.kind, self.detail, self.where = kind, detail, where

    @property
    def failed(self):
        return self.kind not in ("ok",) and not self.kind.startswith("skip")

    def __repr__(self):
        return f"Outcome({self.kind!r}, {self.detail[:200]!r})"


def _dot(outs, cots):
    total = 0.0
    for o, c in zip(outs, cots):
        total = total + gc.sum(o * c)
    return total


def everything(f, hvp):
    """(outputs, L, grad L, J t[, H t]) of f at (xs, ts, cs): one function so one trace/compile."""
    def run(xs, ts, cs):
        outs = f(*xs)
        value, grads = gc.value_and_grad(lambda xs: _dot(f(*xs), cs))(xs)
        _, jt = gc.jvp(lambda *xs: f(*xs), tuple(xs), tuple(ts))
        result = (tuple(outs), value, grads, tuple(jt))
        if hvp:
            inner = gc.grad(lambda xs: _dot(f(*xs), cs))
            result += (gc.grad(lambda xs: _dot(inner(xs), ts))(xs),)
        return result
    return run


@contextlib.contextmanager
def poisoned(on):
    """GRADC_POISON set (or cleared) while kernels are compiled: see cbackend.backend."""
    old = os.environ.get("GRADC_POISON")
    os.environ["GRADC_POISON"] = "1" if on else ""
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GRADC_POISON", None)
        else:
            os.environ["GRADC_POISON"] = old


@contextlib.contextmanager
def forced_split(on):
    """The batch split with two blocks wherever the graph splits, whatever the work and however
    much of it the blocks replicate (the cost model's choices, not the split's correctness)."""
    if not on:
        yield
        return
    saved = c_backend.default_threads, c_split.SPLIT_MIN_WORK, c_split.choose

    def choose(graph, threads):
        found = c_split.find_split(graph, threads) if threads >= 2 else None
        if found is not None:
            COVERAGE.add("(batch split)")      # counted: the split is not always possible
        return found
    c_backend.default_threads, c_split.SPLIT_MIN_WORK, c_split.choose = (lambda g: 2), 0, choose
    try:
        yield
    finally:
        c_backend.default_threads, c_split.SPLIT_MIN_WORK, c_split.choose = saved


def _as_arrays(tree):
    return [np.asarray(x) for x in gc.tree_leaves(tree)]


def _error(stage, exc):
    tb = traceback.extract_tb(exc.__traceback__)
    last = next((f for f in reversed(tb) if "/gradc/" in f.filename and "/fuzz/" not in f.filename),
                tb[-1] if tb else None)
    place = f"{os.path.basename(last.filename)}:{last.lineno}" if last else "?"
    lines = str(exc).strip().splitlines() or [""]
    # a compiler's message: its first "error:" line says more than the command line
    first = next((ln for ln in lines if "error:" in ln), lines[0]).strip()[:200]
    return Outcome(f"error {type(exc).__name__} ({stage})", f"{first} [at {place}]", stage)


def _close(got, ref, rtol, atol, noise=0.0):
    got, ref = np.asarray(got), np.asarray(ref)
    if got.shape != ref.shape:
        return f"shape {got.shape} != {ref.shape}"
    if ref.dtype.kind not in "fc":
        return None if np.array_equal(got, ref) else "integer values differ"
    g, r = got.astype(np.float64), ref.astype(np.float64)
    scale = max(1.0, float(np.max(np.abs(r)))) if r.size else 1.0
    allowed = rtol * np.abs(r) + atol * scale + noise
    # NaN where the reference has NaN agrees (std of equal values in float32: sqrt's derivative
    # at 0, in both backends), as do equal infinities
    bad = ~((np.abs(g - r) <= allowed) | (g == r) | (np.isnan(g) & np.isnan(r)))
    if not bad.any():
        return None
    i = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.ndim else ()
    return (f"{int(bad.sum())} of {bad.size} elements differ, e.g. at {tuple(int(j) for j in i)}: "
            f"got {g[i]!r}, expected {r[i]!r}")


PARTS = ("output", "value", "grad", "jvp", "hvp")      # by position in everything()'s result


def _compare(label, got, ref, dtype, noise=None):
    """The first disagreement between two everything() results, as an Outcome, or None. `noise`
    (the float64 reference, for float32) widens each element's tolerance by 4 |ref - noise|."""
    rtol, atol = TOL[dtype]
    for i, (part, g_tree, r_tree) in enumerate(zip(PARTS, got, ref)):
        n_leaves = _as_arrays(noise[i]) if noise is not None else None
        for k, (g, r) in enumerate(zip(_as_arrays(g_tree), _as_arrays(r_tree))):
            if g.dtype != r.dtype:
                return Outcome(f"dtype differs ({label})",
                               f"{part} {k}: {g.dtype}, the reference {r.dtype}")
            extra = 0.0
            if n_leaves is not None and r.dtype.kind == "f":
                extra = 4 * np.abs(r.astype(np.float64) - n_leaves[k].astype(np.float64))
            why = _close(g, r, rtol, atol, extra)
            if why:
                return Outcome(f"wrong {part} ({label} {dtype})", f"{part} {k}: {why}")
    return None


def _directional_fd(loss, xs, d):
    def at(t):
        return float(loss([x + t * dx for x, dx in zip(xs, d)]))
    fd = {h: (at(h) - at(-h)) / (2 * h) for h in (FD_STEP, 2 * FD_STEP)}
    return (4 * fd[FD_STEP] - fd[2 * FD_STEP]) / 3, abs(fd[FD_STEP] - fd[2 * FD_STEP])


DTYPES = ("float64", "float32")


class Prepared:
    """A program ready to run: its function, arguments per dtype (inputs, tangents, cotangents)."""

    def __init__(self, program, f, xs64, outs, dtypes):
        self.program, self.f, self.xs64 = program, f, xs64
        self.rng = np.random.default_rng(program.seed)
        self.cs64 = [self.rng.uniform(-1, 1, o.shape) for o in outs]
        ts64 = [self.rng.uniform(-1, 1, x.shape) for x in xs64]
        self.dtypes = ("float64",) + tuple(d for d in dtypes if d != "float64")
        self.args = {d: tuple([a.astype(d) for a in part] for part in (xs64, ts64, self.cs64))
                     for d in self.dtypes}
        self.before = {d: [[a.copy() for a in part] for part in parts]
                       for d, parts in self.args.items()}
        self.run = everything(f, program.hvp)

    def each_dtype(self, *per_dtype):
        return tuple(self.run(*a) for a in per_dtype)


def prepare(program, dtypes=DTYPES):
    """A Prepared program, or the Outcome that ends it before any compiling."""
    try:
        f = program.function()
        xs64 = [np.array(v, np.float64) for _, v in program.inputs]
        outs = run_eager(program, xs64)
    except Exception as e:     # noqa: BLE001 - the generator keeps only programs that run
        return Outcome("invalid program", f"{type(e).__name__}: {e}"[:300])
    if not all(np.all(np.isfinite(o)) for o in outs):
        return Outcome("skip nonfinite", "the program's float64 outputs are not finite")
    return Prepared(program, f, xs64, outs, dtypes)


class StageError(Exception):
    def __init__(self, stage, error):
        super().__init__(stage)
        self.stage, self.error = stage, error


def _run_jitted(preps, combined):
    """{stage: [{dtype: result}] per prepared program} for backend="numpy" and "c". Combined: one
    trace of all the programs and dtypes, run by the interpreter and compiled into ONE kernel;
    else a jit per program, dtype and backend."""
    results = {}
    if combined:
        def everything_at_once(*per_program):
            return tuple(p.each_dtype(*a) for p, a in zip(preps, per_program))
        call_args = [tuple(p.args.values()) for p in preps]
        try:
            lowered = gc.jit(everything_at_once, backend="numpy").lower(*call_args)
            results["numpy"] = lowered.compile()(*call_args)
        except Exception as e:     # noqa: BLE001
            raise StageError("numpy", e) from e
        try:     # the same traced graph (no second trace), compiled by the C backend
            compiled = Compiled(lowered, backends.get("c").compile(lowered))
            results["c"] = compiled(*call_args)
        except Exception as e:     # noqa: BLE001
            raise StageError("c", e) from e
        COVERAGE.update(n.prim.name for n in lowered.graph.nodes)
        named = _named_sizes(preps, call_args)
        if named is not None:
            results[NAMED] = named
    else:
        for stage in ("numpy", "c"):
            try:
                results[stage] = [tuple(gc.jit(p.run, backend=stage)(*a) for a in p.args.values())
                                  for p in preps]
            except Exception as e:     # noqa: BLE001
                raise StageError(stage, e) from e
    return {stage: [None if out is None else dict(zip(p.dtypes, out))
                    for p, out in zip(preps, outs)]
            for stage, outs in results.items()}


NAMED = "c, named sizes"


def _named_specs(args, prefix, leading_only=False):
    """Specs of args with every size of at least 2 named (equal sizes one name, as
    gc.jit(dynamic=True) does), or only the leading axes' (a batch), or None if none is."""
    leaves, tree = tree_flatten(args)
    names = {}
    specs = [gc.Spec(tuple(names.setdefault(d, f"{prefix}d{len(names)}")
                           if d > 1 and (axis == 0 or not leading_only) else d
                           for axis, d in enumerate(np.shape(a))), np.asarray(a).dtype)
             for a in leaves]
    return tree_unflatten(tree, specs) if names else None


def _named_sizes(preps, call_args):
    """Per program (aligned with preps): its results from ONE C kernel of the programs that
    accept named sizes, or None for a program that needs a size as a number (a reshape to fixed
    sizes, ...): that is a refusal, not a failure. Each program is traced alone first (no cc)."""
    accepted = []
    for i, (p, args) in enumerate(zip(preps, call_args)):
        for leading_only in (False, True):
            specs = _named_specs(args, f"p{i}", leading_only)
            if specs is None:
                continue
            try:
                gc.jit(p.each_dtype, backend="numpy").lower(*specs)
            except (SymbolicShapeError, ShapeError):
                continue
            except Exception as e:     # noqa: BLE001
                raise StageError(NAMED, e) from e
            accepted.append((i, specs))
            break
    if not accepted:
        return None

    def accepted_at_once(*per_program):
        return tuple(preps[i].each_dtype(*a) for (i, _), a in zip(accepted, per_program))
    try:
        lowered = gc.jit(accepted_at_once, backend="numpy").lower(*[s for _, s in accepted])
        outs = Compiled(lowered, backends.get("c").compile(lowered))(
            *[call_args[i] for i, _ in accepted])
    except Exception as e:     # noqa: BLE001
        raise StageError(NAMED, e) from e
    COVERAGE.update(n.prim.name for n in lowered.graph.nodes)
    COVERAGE.add("(named sizes)")
    by_index = dict(zip((i for i, _ in accepted), outs))
    return [by_index.get(i) for i in range(len(preps))]


def check(program, poison=True, dtypes=DTYPES, combined=True):
    """The Outcome of one program (float64 is always computed: it is the reference for float32).
    `combined`: every dtype in one kernel (one cc call), else a kernel per dtype."""
    return check_batch([program], poison, dtypes, combined)[0]


def check_batch(programs, poison=True, dtypes=DTYPES, combined=True):
    """Outcomes of several programs; with `combined`, all of them (and both dtypes) compile in one
    kernel (one cc call for the batch). A batch that fails to compile or run is checked again one
    program at a time, and so is a program that fails in a batch (a failure seen only in the batch
    is reported as such)."""
    preps = [prepare(p, dtypes) for p in programs]
    live = [p for p in preps if isinstance(p, Prepared)]
    try:
        with poisoned(poison):
            results = _run_jitted(live, combined) if live else {}
    except StageError as e:
        if len(live) > 1:
            return [check(p, poison, dtypes, combined) for p in programs]
        return [p if isinstance(p, Outcome) else _error(e.stage, e.error) for p in preps]
    outcomes, k = [], 0
    for p in preps:
        if isinstance(p, Outcome):
            outcomes.append(p)
            continue
        outcome = _finish(p, {stage: results[stage][k] for stage in results}, poison)
        k += 1
        if outcome.failed and len(live) > 1:
            alone = check(p.program, poison, dtypes, combined)
            if not alone.failed:
                outcome = Outcome(outcome.kind + " only in a batch", outcome.detail)
        outcomes.append(outcome)
    return outcomes


def _finish(prep, results, poison):
    """The comparisons for one program, given its jitted results {stage: {dtype: result}}."""
    program, f, xs64, cs64, args, rng = (prep.program, prep.f, prep.xs64, prep.cs64, prep.args,
                                         prep.rng)
    dtypes = prep.dtypes
    try:
        results["eager"] = dict(zip(dtypes, prep.each_dtype(*args.values())))
    except Exception as e:     # noqa: BLE001
        return _error("eager", e)
    changed = [f"{d} {name} {k}" for d, parts in args.items()
               for name, part, saved in zip(("input", "tangent", "cotangent"), parts,
                                            prep.before[d])
               for k, (a, b) in enumerate(zip(part, saved)) if not np.array_equal(a, b)]
    if changed:
        return Outcome("input modified", "after the calls: " + ", ".join(changed))
    ref64 = results["numpy"]["float64"]
    if not all(np.all(np.isfinite(a)) for a in _as_arrays(ref64)):
        return Outcome("skip nonfinite", "the reference's float64 results are not finite")
    if program.split:
        # NOTE: a kernel of its own: the split's search gives up on graphs with many inputs, as
        # the combined one (both dtypes, tangents, cotangents) has.
        try:
            with forced_split(True), poisoned(poison):   # noqa: SIM117
                split_vg = gc.jit(lambda xs: gc.value_and_grad(lambda xs: _dot(f(*xs), cs64))(xs))
                got = split_vg(xs64)
        except Exception as e:     # noqa: BLE001
            return _error("c, batch split", e)
        bad = _compare("c, batch split", (None,) + tuple(got), (None,) + tuple(ref64[1:3]),
                       "float64")
        if bad:
            return bad
    for label in ("c", "eager") + ((NAMED,) if results.get(NAMED) is not None else ()):
        for dtype in dtypes:
            bad = _compare(label, results[label][dtype], results["numpy"][dtype], dtype,
                           noise=ref64 if dtype != "float64" else None)
            if bad:
                return bad
    # forward against reverse mode: <c, J t> = <grad L, t>
    for label in ("numpy", "c"):
        for dtype, (xs, ts, cs) in args.items():
            res = results[label][dtype]
            grads, jt = _as_arrays(res[2]), _as_arrays(res[3])
            lhs = [c.astype(np.float64) * j for c, j in zip(cs, jt)]
            rhs = [g.astype(np.float64) * t for g, t in zip(grads, ts)]
            lhs_sum = sum(float(np.sum(a)) for a in lhs)
            rhs_sum = sum(float(np.sum(a)) for a in rhs)
            # the products' magnitudes, not the sums': the sums may cancel to ~0
            scale = max(1.0, sum(float(np.sum(np.abs(a))) for a in lhs + rhs))
            if abs(lhs_sum - rhs_sum) > TOL[dtype][0] * 10 * scale:
                return Outcome(f"dot test ({label} {dtype})",
                               f"<c, J t> = {lhs_sum!r} but <grad, t> = {rhs_sum!r}")
    # the reference gradient against central differences (float64)
    def loss(xs):
        return sum(np.sum(o * c) for o, c in zip(run_eager(program, xs), cs64))
    grads = _as_arrays(ref64[2])
    for _ in range(2):
        d = [rng.uniform(-1, 1, x.shape) for x in xs64]
        gd = [np.sum(g * di) for g, di in zip(grads, d)]
        fd, err = _directional_fd(loss, xs64, d)
        scale = 1 + sum(map(abs, gd))
        if err > 1e-3 * scale:
            return Outcome("skip kink", "finite differences at two step sizes disagree")
        if abs(sum(gd) - fd) > 1e-6 * scale + err:
            return Outcome("wrong grad (finite differences)",
                           f"grad . d = {sum(gd)!r}, central differences {fd!r}")
    if program.hvp:
        ts = args["float64"][1]
        grad_fn = gc.grad(lambda xs: _dot(program.function()(*xs), cs64))
        up = _as_arrays(grad_fn([x + FD_STEP * t for x, t in zip(xs64, ts)]))
        down = _as_arrays(grad_fn([x - FD_STEP * t for x, t in zip(xs64, ts)]))
        for k, (u, dn, h) in enumerate(zip(up, down, _as_arrays(ref64[4]))):
            why = _close(h, (u - dn) / (2 * FD_STEP), 1e-5, 1e-5)
            if why:
                return Outcome("wrong hvp (finite differences)", f"input {k}: {why}")
    return Outcome("ok")
