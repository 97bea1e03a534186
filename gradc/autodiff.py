"""Forward (JVP) and reverse (VJP) mode as graph transforms: each rule is applied to the nodes of a
trace and records new nodes of the same primitives into it (so derivatives can be differentiated
again, simplified and compiled). The eager engine applies the same rules to NumPy values."""
from . import core, ops
from .ir import Phase, toposort


def _linear_args(prim, n):
    return range(n) if prim.linear_args is None else prim.linear_args


def _same_dtypes(prim, values, derivatives, what):
    """derivatives, checked to have their values' float dtypes: a rule that promotes (a float64
    constant in a float32 rule, once Cholesky's) would change the user's result types, and a
    loop fed such a tangent as its carry read it as garbage in C."""
    for value, d in zip(values, derivatives):
        want = ops._dtype_of(value)
        if d is not None and want.kind == "f" and ops._dtype_of(d) != want:
            raise TypeError(f"gradc internal error: {prim.name}'s {what} rule made a "
                            f"{ops._dtype_of(d)} derivative for a {want} value")
    return derivatives


def vjp_rule(prim, primals, out, ct, params):
    """Cotangents of a primitive's inputs given the cotangent of its output (None: no gradient)."""
    return _same_dtypes(prim, primals, _vjp_rule(prim, primals, out, ct, params), "vjp")


def _vjp_rule(prim, primals, out, ct, params):
    if prim.vjp is not None:
        return prim.vjp(ct, *primals, out, **params)
    if prim.transpose is not None:
        return prim.transpose(ct, *primals, **params)
    if prim.partials is not None:
        return [None if p is None else ops.multiply(ct, p) for p in prim.partials(*primals, out, **params)]
    return [None] * len(primals)


def jvp_rule(prim, primals, out, tangents, params):
    """The output tangent of a primitive given its input tangents (None: zero)."""
    return _same_dtypes(prim, [out], [_jvp_rule(prim, primals, out, tangents, params)], "jvp")[0]


def _jvp_rule(prim, primals, out, tangents, params):
    if prim.jvp is not None:
        return prim.jvp(tangents, *primals, out, **params)
    if prim.transpose is not None:   # linear: apply the op itself to the tangents
        linear = _linear_args(prim, len(primals))
        args = [(t if t is not None else ops.zeros_like(p)) if i in linear else p
                for i, (p, t) in enumerate(zip(primals, tangents))]
        return ops.bind(prim, *args, **params)
    if prim.partials is not None:
        partials = prim.partials(*primals, out, **params)
        terms = [ops.multiply(t, p) for t, p in zip(tangents, partials)
                 if t is not None and p is not None]
        if not terms:
            return None
        total = terms[0]
        for term in terms[1:]:
            total = ops.add(total, term)
        return total
    return None


def _differentiable(node):
    return node.dtype.kind == "f"


def depends_on(schedule, sources):
    """Ids of float nodes in schedule that depend on any source node (the ones needing derivatives)."""
    needed = {n.id for n in sources if _differentiable(n)}
    for node in schedule:
        if node.id not in needed and _differentiable(node) and node.prim.name != "stop_gradient":
            if any(i.id in needed for i in node.inputs):
                needed.add(node.id)
    return needed


def backward_pass(trace, outputs, cotangents, wrt):
    """Reverse accumulation over the nodes of `trace` from outputs (Tracers) seeded with cotangents.
    Returns one cotangent (Tracer, array or None for zero) per node in wrt."""
    out_nodes = [o.node for o in outputs]
    schedule = toposort(out_nodes)
    needed = depends_on(schedule, wrt)
    tracer = _tracer_cache(trace)
    cts = {}

    def accumulate(node, ct):
        cts[node.id] = ct if node.id not in cts else ops.add(cts[node.id], ct)

    for node, ct in zip(out_nodes, cotangents):
        if ct is not None and node.id in needed:
            accumulate(node, ops.lift_const(trace, ct))
    wrt_ids = {n.id for n in wrt}
    for node in reversed(schedule):
        if node.id not in cts or node.id in wrt_ids or not node.inputs:
            continue
        ct = cts.pop(node.id)
        primals = [tracer(i) for i in node.inputs]
        with core.origin(node.loc, Phase("rev", node.prim.name)):
            input_cts = vjp_rule(node.prim, primals, tracer(node), ct, node.params)
            for inp, inp_ct in zip(node.inputs, input_cts):
                if inp_ct is not None and inp.id in needed:
                    accumulate(inp, inp_ct)
    return [cts.get(n.id) for n in wrt]


def forward_pass(trace, outputs, tangents):
    """Tangent propagation over the nodes of `trace` feeding outputs; tangents: {node id: tangent}.
    Returns one tangent (or None for zero) per output."""
    out_nodes = [o.node for o in outputs]
    tracer = _tracer_cache(trace)
    tans = dict(tangents)
    for node in toposort(out_nodes):
        if node.id in tans or not node.inputs or not _differentiable(node):
            continue
        inputs = [tans.get(i.id) for i in node.inputs]
        if all(t is None for t in inputs) or node.prim.name == "stop_gradient":
            continue
        with core.origin(node.loc, Phase("fwd", node.prim.name)):
            tans[node.id] = jvp_rule(node.prim, [tracer(i) for i in node.inputs], tracer(node),
                                     inputs, node.params)
    return [tans.get(n.id) for n in out_nodes]


def _tracer_cache(trace):
    cache = {}

    def tracer(node):
        if node.id not in cache:
            cache[node.id] = core.Tracer(node, trace)
        return cache[node.id]
    return tracer
