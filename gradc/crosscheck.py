"""gc.check (API.md section 11): a function's value and gradients through the C backend, the
interpreter and float64 central differences in one call, with a report per argument; when the
backends disagree, a bisection of the schedule names the first node whose values differ.

The report is a plain object (CheckReport) so tools such as the differential fuzzer can read it."""
import contextlib
import inspect
import os
import tempfile
import types
from dataclasses import dataclass, field

import numpy as np

from . import backends, interpreter, ops
from .errors import CheckError
from .interpreter import last_uses
from .ir import Graph, describe_phase
from .jit import jit, leaf_names
from .transforms import value_and_grad
from .tree import tree_flatten, tree_unflatten

# |a - b| <= ATOL * scale + RTOL * |b|, scale = max(1, max |b|): backends per dtype, then the
# gradient against central differences (taken in float64, so float32 is judged by its rounding).
BACKEND_TOL = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-9, 1e-12)}
FD_TOL = {np.dtype(np.float32): (2e-3, 1e-4), np.dtype(np.float64): (1e-5, 1e-7)}


@dataclass
class ArgumentReport:
    """One differentiated argument leaf: how far its gradient is between C and the interpreter, and
    from central differences at `fd_points` sampled entries."""
    name: str
    dtype: str
    c_vs_interpreter: float        # max abs difference of the gradients
    grad_vs_fd: float              # max abs error of the C gradient against central differences
    grad_vs_fd_rel: float
    fd_points: int
    ok: bool


@dataclass
class Divergence:
    """The first node (schedule order) whose C value differs from the interpreter's."""
    op: str
    phase: str                     # "the forward pass", "the gradient of exp", ...
    loc: str                       # the user's file:line
    text: str                      # the node as as_text() prints it
    index: tuple                   # the element where they differ most
    c_value: float
    interpreter_value: float
    max_abs_diff: float

    def __str__(self):
        at = f" at {list(self.index)}" if self.index else ""
        return (f"`{self.op}` in {self.phase} at {self.loc}:\n    {self.text}\n"
                f"    C {self.c_value!r}, interpreter {self.interpreter_value!r}{at} "
                f"(max abs diff {self.max_abs_diff:.2g})")


@dataclass
class CheckReport:
    function: str
    outputs: dict = field(default_factory=dict)      # output name -> max abs diff C vs interpreter
    arguments: list = field(default_factory=list)    # ArgumentReport per differentiated leaf
    backends_agree: bool = True
    gradients_ok: bool = True
    divergence: object = None                        # Divergence when the backends disagree

    @property
    def ok(self):
        return self.backends_agree and self.gradients_ok

    def __repr__(self):
        status = "ok" if self.ok else ("FAILED: the C backend and the interpreter disagree"
                                       if not self.backends_agree else
                                       "FAILED: gradients differ from central differences")
        lines = [f"gc.check({self.function}): {status}"]
        if self.divergence is not None:
            lines.append(f"  first diverging node: {self.divergence}")
        for name, diff in self.outputs.items():
            lines.append(f"  {name:<24} C vs interpreter {diff:.1e}")
        lines.append(f"  {'argument':<24} {'dtype':<8} {'C vs interp':>11} {'vs finite diff':>14}"
                     f" {'rel':>8}  points")
        for a in self.arguments:
            lines.append(f"  {a.name:<24} {a.dtype:<8} {a.c_vs_interpreter:>11.1e} "
                         f"{a.grad_vs_fd:>14.1e} {a.grad_vs_fd_rel:>8.1e}  {a.fd_points}"
                         f"{'' if a.ok else '  <- wrong'}")
        return "\n".join(lines)


def _max_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


def _close(a, b, tol):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    rtol, atol = tol
    scale = max(1.0, float(np.abs(b[np.isfinite(b)]).max(initial=0.0)))
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", over="ignore"):       # inf - inf: `same` covers it
        return bool(np.all(same | (np.abs(a - b) <= atol * scale + rtol * np.abs(b))))


def _tol(table, dtype):
    dtype = np.dtype(dtype)
    return table.get(dtype, (0.0, 0.0)) if dtype.kind == "f" else (0.0, 0.0)


def check(fn, *args, argnums=None, fd_points=16, eps=1e-6, seed=0, raise_on_failure=True,
          backend_tol=None, fd_tol=None):
    """Runs fn's value and the gradients of a random projection of its outputs w.r.t. argnums
    (default: every positional argument whose leaves are all float) through the C backend and the
    interpreter, and compares the C gradients with float64 central differences at `fd_points`
    sampled entries per argument leaf. Returns a CheckReport; raises gc.CheckError when anything
    disagrees (the error's .report holds it), naming the first diverging node and its line.
    backend_tol / fd_tol ({dtype: (rtol, atol)}) replace BACKEND_TOL / FD_TOL for the dtypes given.

    >>> gc.check(lambda W, x: gc.tanh(x @ W), np.ones((3, 2)), np.ones((4, 3))).ok
    True
    """
    name = getattr(fn, "__name__", "function")
    backend_tol = {**BACKEND_TOL, **{np.dtype(k): v for k, v in (backend_tol or {}).items()}}
    fd_tol = {**FD_TOL, **{np.dtype(k): v for k, v in (fd_tol or {}).items()}}
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args)
                        if tree_flatten(a)[0] and all(np.asarray(leaf).dtype.kind == "f"
                                                      for leaf in tree_flatten(a)[0]))
    argnums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    out_leaves = jit(fn, backend="numpy").lower(*args).graph.outputs
    weights = _projection(out_leaves, seed)

    def projected(*a):
        out = fn(*a)
        total = 0.0
        for o, w in zip(tree_flatten(out)[0], weights):
            if w is not None:
                total = ops.add(total, ops.sum(ops.multiply(o, w.astype(o.dtype))))
        return total, out

    joint = value_and_grad(projected, argnums=argnums, has_aux=True)
    report = CheckReport(name)
    c_jit, np_jit = jit(joint, backend="c"), jit(joint, backend="numpy")
    c_out, np_out = c_jit(*args), np_jit(*args)
    c_leaves, np_leaves = tree_flatten(c_out)[0], tree_flatten(np_out)[0]
    n_out = len(out_leaves)
    for label, c, r in zip(leaf_names("output", tree_flatten(np_out[0][1])[1]),
                           c_leaves[1:1 + n_out], np_leaves[1:1 + n_out]):
        report.outputs[label] = _max_diff(c, r)
        report.backends_agree &= _close(c, r, _tol(backend_tol, np.asarray(r).dtype))
    c_grads, np_grads = c_leaves[1 + n_out:], np_leaves[1 + n_out:]
    grad_names = []
    for n in argnums:
        grad_names += leaf_names(_arg_name(fn, n), tree_flatten(args[n])[1])
    for c, r in zip(c_grads, np_grads):
        report.backends_agree &= _close(c, r, _tol(backend_tol, np.asarray(r).dtype))
    if not report.backends_agree:
        lowered = c_jit.lower(*args)
        leaves = [np.asarray(v, dtype=node.dtype)
                  for v, node in zip(tree_flatten((args, {}))[0], lowered.graph.inputs)]
        report.divergence = first_divergence(lowered, leaves, backend_tol)
    _finite_differences(report, projected, args, argnums, grad_names, c_grads, np_grads,
                        fd_points, eps, seed, fd_tol)
    if raise_on_failure and not report.ok:
        raise CheckError(repr(report), report)
    return report


def _arg_name(fn, n):
    try:
        params = list(inspect.signature(fn).parameters)
        return params[n] if n < len(params) else f"arg{n}"
    except (TypeError, ValueError):
        return f"arg{n}"


def _projection(out_leaves, seed):
    """Fixed random weights per float output leaf (so no gradient entry can hide in a plain sum)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(o.shape) if o.dtype.kind == "f" else None for o in out_leaves]


def _finite_differences(report, projected, args, argnums, names, c_grads, np_grads, points, eps,
                        seed, fd_tol):
    """Central differences in float64 on the interpreter at sampled entries of each leaf."""
    def f64(a):
        leaves, tree = tree_flatten(a)
        return tree_unflatten(tree, [np.asarray(v, np.float64) if np.asarray(v).dtype.kind == "f"
                                     else v for v in leaves])
    base = [f64(a) for a in args]
    scalar = jit(lambda *a: projected(*a)[0], backend="numpy")
    rng = np.random.default_rng(seed)
    leaf_index = 0
    for n in argnums:
        leaves, tree = tree_flatten(base[n])
        for k, leaf in enumerate(leaves):
            c, r = c_grads[leaf_index], np_grads[leaf_index]
            name = names[leaf_index]
            leaf_index += 1
            size = int(np.size(leaf))
            picks = np.arange(size) if size <= points else rng.choice(size, points, replace=False)
            fd = np.empty(len(picks))
            for j, flat in enumerate(picks):
                values = []
                for sign in (1, -1):
                    moved = np.array(leaf, np.float64, copy=True)
                    step = eps * max(1.0, abs(float(moved.reshape(-1)[flat])))
                    moved.reshape(-1)[flat] += sign * step
                    new = list(base)
                    new[n] = tree_unflatten(tree, leaves[:k] + [moved] + leaves[k + 1:])
                    values.append(float(scalar(*new)))
                fd[j] = (values[0] - values[1]) / (2 * step)
            got = np.asarray(c, np.float64).reshape(-1)[picks]
            err = np.abs(got - fd)
            dtype = np.asarray(c).dtype
            ok = _close(got, fd, _tol(fd_tol, dtype))
            report.gradients_ok &= ok
            report.arguments.append(ArgumentReport(
                name, str(dtype), _max_diff(c, r), float(err.max(initial=0.0)),
                float((err / np.maximum(np.abs(fd), 1e-12)).max(initial=0.0)), len(picks), ok))


# ---- bisection -----------------------------------------------------------------------------------

def _cut(graph, k):
    """Nodes among the first k of the schedule that the rest (or the outputs) still need."""
    last = last_uses(graph)
    return [n for n in graph.nodes[:k] if n.prim.kind != "source" and last.get(n.id, -1) >= k]


def first_divergence(lowered, leaves, tol=None):
    """Bisects the schedule of lowered.graph: compiles the prefix of k nodes with the values it
    hands on as outputs and compares them with the interpreter; the smallest diverging k names
    the node. Needs about log2(nodes) C compilations."""
    graph = lowered.graph
    ref = {node.id: value for node, _, value in interpreter.evaluate(graph, leaves)}
    names = graph._names()
    c_backend = backends.get("c")

    def diverging(k):
        cut = _cut(graph, k)
        if not cut:
            return None
        shim = types.SimpleNamespace(graph=Graph(graph.inputs, cut), fn=lowered.fn,
                                     in_weak=getattr(lowered, "in_weak", None)
                                     or [False] * len(graph.inputs))
        outs = c_backend.compile(shim)(leaves)
        for node, value in zip(cut, outs):
            if not _close(value, ref[node.id], _tol(tol or BACKEND_TOL, node.dtype)):
                return node, value
        return None

    lo, hi = 0, len(graph.nodes)          # diverging(lo) is None; diverging(hi) is not, or no node
    found = diverging(hi)
    if found is None:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        hit = diverging(mid)
        if hit is None:
            lo = mid
        else:
            hi, found = mid, hit
    node, value = found
    want = np.asarray(ref[node.id])
    value = np.asarray(value)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(value.astype(np.float64) - want.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    index = np.unravel_index(int(np.argmax(diff)), want.shape) if want.ndim else ()
    args = " ".join(names[i.id] for i in node.inputs)
    return Divergence(node.prim.name, describe_phase(node.phase), node.loc,
                      f"{names[node.id]}:{node.type_str} = {node.prim.name} {args}".rstrip(),
                      tuple(int(i) for i in index), value[index].item(), want[index].item(),
                      _max_diff(value, want))


@contextlib.contextmanager
def _break_c_form(prim_name, template):
    """Private, for tests: compiles `prim_name` with another C template (a planted bug), into a
    temporary cache so no broken kernel outlives the block."""
    from .primitives import PRIMITIVES
    prim = PRIMITIVES[prim_name]
    saved_c, saved_dir = prim.c, os.environ.get("GRADC_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="gradc_broken_") as tmp:
        prim.c = template
        os.environ["GRADC_CACHE_DIR"] = tmp
        try:
            yield
        finally:
            prim.c = saved_c
            if saved_dir is None:
                os.environ.pop("GRADC_CACHE_DIR", None)
            else:
                os.environ["GRADC_CACHE_DIR"] = saved_dir
