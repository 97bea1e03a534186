"""Loop nests and their index maps: the per-dimension indices a fused loop reads its values at, the
schedule of one loop (flat or nested, accumulators, threads), and the signature of a step that
tells repeated steps apart. Shared by the schedule and outlining passes (lower.py) and emission."""
import numpy as np

from . import plan as P
from ..symbolic import Dim, hint, prod


def row_major(shape):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return list(reversed(strides))


class Affine:
    """const + sum(coef * loop variable): one index of one dimension, or a flat offset."""

    def __init__(self, const=0, coefs=None):
        self.const = const
        self.coefs = {k: v for k, v in (coefs or {}).items() if v}

    def scaled(self, k):
        return Affine(self.const * k, {v: c * k for v, c in self.coefs.items()})

    def plus(self, other):
        coefs = dict(self.coefs)
        for v, c in other.coefs.items():
            coefs[v] = coefs.get(v, 0) + c
        return Affine(self.const + other.const, coefs)

    def c(self):
        terms = [(f"{c} * {v}" if c != 1 else v) for v, c in sorted(self.coefs.items())]
        if self.const or not terms:
            terms.append(str(self.const))
        return " + ".join(terms)


def offset_of(index, shape):
    """Flat row-major offset of a per-dimension index into an array of shape."""
    total = Affine()
    for idx, stride in zip(index, row_major(shape)):
        total = total.plus(idx.scaled(stride))
    return total


def view_input_index(view, index):
    """Maps an index into a view's output to an index into its input."""
    x = view.inputs[0]
    kind = view.prim.c
    if kind == "reshape":               # only 1s added or dropped: match the other dimensions
        real = iter([i for i, d in zip(index, view.shape) if d != 1])
        return [Affine() if d == 1 else next(real) for d in x.shape]
    if kind == "broadcast":
        lead = len(view.shape) - len(x.shape)
        return [Affine() if d == 1 else index[lead + i] for i, d in enumerate(x.shape)]
    if kind == "transpose":
        out = [None] * len(x.shape)
        for k, p in enumerate(view.params["perm"]):
            out[p] = index[k]
        return out
    if kind == "slice":
        return [Affine(a).plus(i.scaled(s)) for i, a, s in
                zip(index, view.params["starts"], view.params["steps"])]
    raise AssertionError(kind)


def point_index(node, loop):
    """The per-dimension index of node's own elements at the loop's current point."""
    real = iter(loop.vars)
    return [Affine() if d == 1 else Affine(0, {next(real): 1}) for d in node.shape]


def is_point(index, node, loop):
    real = [idx for idx, d in zip(index, node.shape) if d != 1]
    return (len(real) == len(loop.vars)
            and all(idx.const == 0 and idx.coefs == {v: 1} for idx, v in zip(real, loop.vars)))


def local_ids(loop):
    """Members whose values live in a C local at the loop's point (all but the reductions)."""
    return {m.id for m in loop.members if not P.is_reduction(m)}


def reduced_vars(r, loop):
    x = r.inputs[0]
    real = iter(loop.vars)
    out = []
    for axis, d in enumerate(x.shape):
        if d != 1:
            v = next(real)
            if axis in r.params["axes"]:
                out.append(v)
    return out


def reduced_index(r, loop):
    """Index into a reduction's output at the loop point (reduced axes dropped)."""
    full = point_index(r.inputs[0], loop)
    return [idx for axis, idx in enumerate(full) if axis not in r.params["axes"]]


def member_reads(m, loop):
    """(input, index it is read at) for a loop member at the loop's point."""
    if P.is_reduction(m):
        return [(m.inputs[0], point_index(m.inputs[0], loop))]
    point = point_index(m, loop)
    if P.is_view(m):
        return [(m.inputs[0], view_input_index(m, point))]
    return [(inp, point) for inp in m.inputs]


def _accesses(node, index, loop, local, materialized):
    """Flat offsets of the memory reads that reading node at index performs."""
    if node.id in local and is_point(index, node, loop):
        return []
    if P.uniform_value(node) is not None:
        return []
    if P.is_view(node) and node.id not in materialized:
        return _accesses(node.inputs[0], view_input_index(node, index), loop, local, materialized)
    return [offset_of(index, node.shape)]


def flat_ok(loop, materialized):
    """A single flat loop when every access is at the loop's own point or loop-invariant."""
    if any(P.is_reduction(m) and len(reduced_vars(m, loop)) != len(loop.domain)
           for m in loop.members):
        return False
    identity = row_major(loop.domain)
    local = local_ids(loop)
    for member in loop.members:
        for inp, index in member_reads(member, loop):
            for off in _accesses(inp, index, loop, local, materialized):
                coefs = [off.coefs.get(v, 0) for v in loop.vars]
                if coefs != identity and any(coefs):
                    return False
    return True


def schedule_loop(loop, plan):
    """The loop with its schedule: flat or nested; per reduction the depth of a local accumulator
    (sums over trailing loop dimensions) or None (it accumulates into its zeroed memory);
    threads for big loops whose reductions can be split by rows; sums across the rows the
    threads split go to a copy per thread (partials)."""
    import dataclasses
    domain = loop.domain
    reductions = [m for m in loop.members if P.is_reduction(m)]
    flat = len(domain) > 1 and flat_ok(loop, plan.materialized)
    accum = {}
    for r in reductions:
        reduced = reduced_vars(r, loop)
        depth = len(domain) - len(reduced)
        trailing = reduced == loop.vars[depth:]
        accum[r.id] = depth if (trailing and not flat) or (flat and depth == 0) else None
    threads = _threads_for(loop, reductions, accum, flat, plan.threads)
    chunks = _chunks_for(loop, reductions, accum, flat, threads)
    partials = frozenset(r.id for r in reductions if threads > 1 and accum[r.id] is None
                         and loop.vars[0] in reduced_vars(r, loop))
    simd_sums, ivdep = _vectorising(loop, reductions, accum, flat)
    return dataclasses.replace(loop, flat=flat, accum=accum, threads=threads, chunks=chunks,
                               partials=partials, simd_sums=simd_sums, ivdep=ivdep,
                               named_threads=threads > 1 and isinstance(prod(domain), Dim))


def _vectorising(loop, reductions, accum, flat):
    """(simd_sums, ivdep) of the innermost loop. Where its iterations are independent but for the
    sums it carries in local accumulators (every one opened at or outside it is updated inside it),
    `omp simd` may reorder those sums: simd_sums names them; independent without such sums (or
    with sums `omp simd` must not get): ivdep."""
    inner = "i" if flat else (loop.vars[-1] if loop.vars else None)
    independent = not any(accum[r.id] is None and (flat or inner in reduced_vars(r, loop))
                          for r in reductions)
    if not independent:
        return (), False
    depth = 0 if flat else len(loop.domain) - 1
    carried = [r for r in reductions if accum[r.id] is not None and accum[r.id] <= depth]
    # NOTE: only sums of one dtype: GCC 12 with -march=native (AVX2) miscompiled a loop summing
    # float64 and float32 values together under `omp simd` (a fuzzer finding, tests/test_lower.py);
    # without the pragma the same loop is right.
    if carried and all(r.prim.c == "sum" for r in carried) and len({r.dtype for r in carried}) == 1:
        return tuple(r.id for r in carried), False
    return (), True


def _threads_for(loop, reductions, accum, flat, threads):
    """Threads for a loop: only big ones, and only if every reduction can be split by rows."""
    # NOTE: a loop over a named size may get up to all threads here; how many it uses is decided
    # at run time by the same rule (Loop.named_threads, gradc_threads_for in the runtime).
    size = prod(loop.domain)
    named = isinstance(size, Dim)
    if threads < 2 or not loop.domain or (not named and size < P.PARALLEL_MIN):
        return 1
    if not named:
        # As many threads as the work pays for (PARALLEL_MIN is the break-even of two), not the
        # cores.
        outer = size if flat else loop.domain[0]
        threads = min(threads, outer, max(2, 2 * size // P.PARALLEL_MIN))
    for r in reductions:
        if accum[r.id] == 0 and r.prim.c != "sum":
            return 1
        if accum[r.id] is None and loop.vars[0] in reduced_vars(r, loop) \
                and (isinstance(r.nbytes, Dim) or threads * r.nbytes > P.PARTIALS_MAX_BYTES):
            return 1
    return threads


def _chunks_for(loop, reductions, accum, flat, threads):
    """CHUNKS_PER_THREAD chunks a thread where each is still big (PARALLEL_MIN points) and the
    copies of partial sums fit, else one: a thread that falls behind (another process on its core)
    then leaves the chunks it has not claimed to the others. Over a named size: the most it may
    have (gradc_chunks_for decides at run time by the same rule)."""
    size = prod(loop.domain)
    outer = size if flat else (loop.domain[0] if loop.domain else 1)
    chunks = threads * P.CHUNKS_PER_THREAD
    if threads < 2:
        return threads
    if not isinstance(size, Dim) and (outer < chunks or size < chunks * P.PARALLEL_MIN):
        return threads
    for r in reductions:
        if accum[r.id] is None and loop.vars[0] in reduced_vars(r, loop) \
                and chunks * r.nbytes > P.PARTIALS_MAX_BYTES:
            return threads
    return chunks


# ---- signatures: what a step's C does, up to the memory it touches ---------------------------------

def signature(step, plan):
    """A hashable description of the C a step becomes, with the memory it reads and writes named
    by first use (so the same computation on other data has the same signature)."""
    ordinal = {}

    def mem(node):
        node = P.resolve(node, plan.alias_of)
        return ("mem", ordinal.setdefault(node.id, len(ordinal)), node.shape, node.dtype.str)

    if isinstance(step, P.Call):
        node = step.node
        terms = tuple(tuple((x.shape, x.dtype.str, plan.folded.get(x.id, (None, False, 0))[1:],
                             mem(plan.folded.get(x.id, (x,))[0])) for x in t.inputs)
                      for t in (step.terms or [node]))
        return ("call", node.prim.c, _params_key(node.params), node.shape, node.dtype.str,
                step.beta, step.axis, step.blocks, step.into is not None, terms,
                mem(step.into or node))
    position = {m.id: i for i, m in enumerate(step.members)}
    local = local_ids(step)

    def read(node, index):
        if node.id in local and is_point(index, node, step):
            return ("local", position[node.id])
        value = P.uniform_value(node)
        if value is not None:
            return ("literal", repr(value.item()), node.dtype.str)
        if P.is_view(node) and node.id not in plan.materialized:
            return ("view", node.prim.c, _params_key(node.params), node.shape,
                    read(node.inputs[0], view_input_index(node, index)))
        return mem(node) + (offset_of(index, node.shape).c(),)

    members = []
    for m in step.members:
        reads = tuple(read(inp, index) for inp, index in member_reads(m, step))
        writes = mem(m) if m.id in plan.stored else None
        members.append((m.prim.name, _params_key(m.params), m.shape, m.dtype.str, reads, writes,
                        step.accum.get(m.id, "-"), m.id in step.partials))
    return ("loop", step.domain, step.flat, step.threads, step.chunks, len(step.simd_sums),
            step.ivdep, tuple(members))


def _params_key(params):
    return tuple(sorted((k, repr(v)) for k, v in params.items() if k != "value"))
