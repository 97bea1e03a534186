"""Loops that stay loops (API.md section 9): `gc.scan` and `gc.fori_loop` over the `scan` primitive.

A scan node holds its body as a Graph, traced once whatever the length:
    body: [index (int64 scalar), carries..., x slices..., consts...] -> [new carries..., ys...]
Its inputs are the initial carries, the stacked xs ([T, ...]) and the consts (loop-invariant values,
including the outer values the body closes over). A node computes every body output but returns
only the ones in `select`, packed flat when there are several (a node has one dtype, so outputs of
different dtypes are separate nodes; simplify's merge_loops joins nodes that can share one loop).
Output numbers in `select`: 0..n_carry-1 the final carries, then the stacked ys ([T, ...]), then
the stacked carries *before* each step ([T, ...]: the residuals reverse mode reads).

The JVP and VJP rules are graph code: the JVP is a scan of the body's JVP; the VJP is a reverse scan
of the body's VJP reading the stacked carries. Both are scans again, so derivatives nest.
"""
import numpy as np

from . import core, interpreter, ops
from .autodiff import backward_pass, forward_pass
from .errors import user_location
from .ir import Graph
from .tree import tree_flatten, tree_unflatten


# ---- the primitive's rules -----------------------------------------------------------------------

def output_avals(body, length, n_carry):
    """(shape, dtype) of every output number a scan node can select (see the module docstring)."""
    outs = [(o.shape, o.dtype) for o in body.outputs]
    carries = outs[:n_carry]
    stacked = [((length,) + s, d) for s, d in outs[n_carry:]]
    saved = [((length,) + s, d) for s, d in carries]
    return carries + stacked + saved


def shape_rule(*avals, body, length, reverse, n_carry, n_xs, select):
    chosen = [output_avals(body, length, n_carry)[k] for k in select]
    if len(chosen) == 1:
        return chosen[0]
    return (sum(int(np.prod(s, dtype=np.int64)) for s, _ in chosen),), chosen[0][1]


def impl(*args, body, length, reverse, n_carry, n_xs, select):
    """The interpreter's loop: runs the body graph once per step."""
    carries = [np.asarray(a) for a in args[:n_carry]]
    xs, consts = args[n_carry:n_carry + n_xs], list(args[n_carry + n_xs:])
    avals = output_avals(body, length, n_carry)
    n_out = len(body.outputs)
    stacks = {k: np.empty(avals[k][0], avals[k][1]) for k in select if k >= n_carry}
    for step in range(length):
        t = length - 1 - step if reverse else step
        for k in stacks:
            if k >= n_out:
                stacks[k][t] = carries[k - n_out]
        outs = interpreter.run(body, [np.int64(t)] + carries + [x[t] for x in xs] + consts)
        carries = outs[:n_carry]
        for k in stacks:
            if k < n_out:
                stacks[k][t] = outs[k]
    values = [carries[k] if k < n_carry else stacks[k] for k in select]
    if len(values) == 1:
        return values[0]
    return np.concatenate([np.ravel(v) for v in values])


def unpack(value, avals):
    """The outputs a packed node holds, as values of their own shapes."""
    if len(avals) == 1:
        return [value]
    out, start = [], 0
    for shape, _ in avals:
        size = int(np.prod(shape, dtype=np.int64))
        out.append(ops.reshape(ops.slice_axis(value, 0, start, start + size), shape))
        start += size
    return out


def pack(values):
    if len(values) == 1:
        return values[0]
    return ops.concatenate([ops.reshape(v, (-1,)) for v in values])


def call(args, body, length, reverse, n_carry, n_xs, wanted):
    """The values of output numbers `wanted` of a scan over args: one node per dtype."""
    avals = output_avals(body, length, n_carry)
    groups = {}
    for k in wanted:
        groups.setdefault(np.dtype(avals[k][1]).str, []).append(k)
    values = {}
    for select in groups.values():
        node = ops.bind(core.PRIM.scan, *args, body=body, length=length, reverse=reverse,
                        n_carry=n_carry, n_xs=n_xs, select=tuple(select))
        values.update(zip(select, unpack(node, [avals[k] for k in select])))
    return [values[k] for k in wanted]


def _float(aval):
    return np.dtype(aval[1]).kind == "f"


def _zeros(aval):
    return np.zeros(aval[0], aval[1])


def _lifted(trace, values):
    from .transforms import lift
    return [lift(trace, v) for v in values]


def _trace_graph(in_avals, fn):
    """fn(*input tracers) -> list of values, traced once into a simplified Graph. Returns the graph
    and the outer values it captured (they become inputs after in_avals)."""
    from .simplify import simplify
    with core.Trace() as trace:
        inputs = [trace.new_input(s, d) for s, d in in_avals]
        outs = _lifted(trace, fn(*inputs))
    graph = simplify(Graph(trace.inputs + trace.capture_nodes, [o.node for o in outs]))
    return _hoist_constants(graph, list(trace.captured))


def _hoist_constants(graph, captured):
    """Constant arrays of the body become loop inputs (loop-invariant data, like the values it
    closes over); single values stay in the body (literals in C)."""
    from .ir import Node
    from .simplify import rewrite
    arrays = [n for n in graph.nodes if n.prim.name == "const" and n.size != 1]
    if not arrays:
        return graph, captured
    inputs = {n.id: Node(core.PRIM.input, (), {"index": -1}, n.shape, n.dtype, loc="captured",
                         name="captured") for n in arrays}
    rebuilt = rewrite(graph, lambda node: inputs.get(node.id, node))
    outputs = [inputs.get(o.id, o) for o in rebuilt.outputs]
    hoisted = Graph(graph.inputs + list(inputs.values()), outputs)
    return hoisted, captured + [n.params["value"] for n in arrays]


def _split(args, n_carry, n_xs):
    return list(args[:n_carry]), list(args[n_carry:n_carry + n_xs]), list(args[n_carry + n_xs:])


def jvp(tangents, *args, body, length, reverse, n_carry, n_xs, select):
    """A scan of the body's JVP: carries (c, dc), xs (x, dx), consts (k, dk); float values only
    carry tangents (zeros where an input has none)."""
    primals = args[:-1]      # args[-1] is the node's value, which the rule does not need
    avals = [(tuple(p.shape), np.dtype(p.dtype)) for p in primals]
    tans = [t if t is not None else _zeros(a) for t, a in zip(tangents, avals)]
    floats = [i for i, a in enumerate(avals) if _float(a)]
    groups = _split(range(len(primals)), n_carry, n_xs)
    order = []       # the jvp body's inputs: each group's primals then its float tangents
    for group in groups:
        order += [("p", i) for i in group] + [("t", i) for i in group if i in floats]
    body_outs = [(o.shape, o.dtype) for o in body.outputs]
    out_order = []   # its outputs: carries then their float tangents, ys then theirs
    for group in (range(n_carry), range(n_carry, len(body_outs))):
        out_order += [("p", j) for j in group] + [("t", j) for j in group if _float(body_outs[j])]

    def jvp_body(index, *values):
        trace = index.trace
        where = dict(zip(order, values))
        outs = _lifted(trace, interpreter.replay(body, [index] + [where[("p", i)]
                                                                 for i in range(len(primals))]))
        seeds = {where[("p", i)].node.id: where[("t", i)] for i in floats}
        touts = forward_pass(trace, outs, seeds)
        result = []
        for kind, j in out_order:
            if kind == "p":
                result.append(outs[j])
            else:
                result.append(touts[j] if touts[j] is not None else ops.zeros_like(outs[j]))
        return result

    step_avals = [(s[1:], d) if n_carry <= i < n_carry + n_xs else (s, d)
                  for i, (s, d) in enumerate(avals)]
    in_avals = [((), np.dtype(np.int64))] + [step_avals[i] for _, i in order]
    graph, captured = _trace_graph(in_avals, jvp_body)
    args = [(primals if kind == "p" else tans)[i] for kind, i in order] + captured
    n_c = sum(1 for kind, i in order if i < n_carry)
    n_x = sum(1 for kind, i in order if n_carry <= i < n_carry + n_xs)
    n_out, n_new = len(body_outs), len(out_order)
    position = {key: j for j, key in enumerate(out_order)}
    wanted = []
    for k in select:
        if k < n_out:
            wanted.append(position[("t", k)])
        else:     # a stacked carry's tangent is the stacked tangent carry
            wanted.append(n_new + position[("t", k - n_out)])
    return pack(call(args, graph, length, reverse, n_c, n_x, wanted))


def vjp(ct, *args, body, length, reverse, n_carry, n_xs, select):
    """A reverse scan of the body's VJP. Its carries: the cotangents of the carries and the sums of
    the consts' cotangents; its xs: the stacked carries (the residuals), the xs, the cotangents of
    the ys and of the stacked carries (where selected); its ys: the cotangents of the xs."""
    primals = args[:-1]
    avals = [(tuple(p.shape), np.dtype(p.dtype)) for p in primals]
    all_avals = output_avals(body, length, n_carry)
    n_out = len(body.outputs)
    cts = dict(zip(select, unpack(ct, [all_avals[k] for k in select])))
    carries, xs, consts = _split(range(len(primals)), n_carry, n_xs)
    f_carries = [i for i in carries if _float(avals[i])]
    f_xs = [i for i in xs if _float(avals[i])]
    f_consts = [i for i in consts if _float(avals[i])]
    f_ys = [j for j in range(n_carry, n_out) if _float(all_avals[j])]
    f_saved = [i for i in f_carries if n_out + i in cts]
    step_avals = [(s[1:], d) if i in xs else (s, d) for i, (s, d) in enumerate(avals)]
    residuals = call(primals, body, length, reverse, n_carry, n_xs,
                     [n_out + i for i in carries])

    def ct_of(k):
        return cts[k] if k in cts else _zeros(all_avals[k])

    # The reverse body's inputs, in order: carries, xs, consts.
    carry_in = [avals[i] for i in f_carries] + [avals[i] for i in f_consts]
    xs_in = ([avals[i] for i in carries] + [(avals[i][0][1:], avals[i][1]) for i in xs]
             + [(all_avals[j][0][1:], all_avals[j][1]) for j in f_ys]
             + [avals[i] for i in f_saved])
    const_in = [avals[i] for i in consts]

    def vjp_body(index, *values):
        trace = index.trace
        values = list(values)
        ct_c = values[:len(f_carries)]
        ct_k = values[len(f_carries):len(carry_in)]
        rest = values[len(carry_in):]
        c = rest[:n_carry]
        x = rest[n_carry:n_carry + len(xs)]
        ct_y = rest[n_carry + len(xs):n_carry + len(xs) + len(f_ys)]
        ct_s = rest[n_carry + len(xs) + len(f_ys):len(xs_in)]
        k = rest[len(xs_in):]
        outs = _lifted(trace, interpreter.replay(body, [index] + c + x + k))
        seeds = dict(zip(f_carries, ct_c))
        seeds.update(zip(f_ys, ct_y))
        inputs = c + x + k
        wrt = [inputs[i].node for i in f_carries + f_xs + f_consts]
        grads = backward_pass(trace, [outs[j] for j in seeds], list(seeds.values()), wrt)
        grads = [g if g is not None else _zeros(step_avals[i])
                 for g, i in zip(grads, f_carries + f_xs + f_consts)]
        g_c = grads[:len(f_carries)]
        g_x = grads[len(f_carries):len(f_carries) + len(f_xs)]
        g_k = grads[len(f_carries) + len(f_xs):]
        saved = dict(zip(f_saved, ct_s))
        new_c = [ops.add(g, saved[i]) if i in saved else g for g, i in zip(g_c, f_carries)]
        new_k = [ops.add(a, g) for a, g in zip(ct_k, g_k)]
        return new_c + new_k + g_x

    in_avals = [((), np.dtype(np.int64))] + carry_in + xs_in + const_in
    graph, captured = _trace_graph(in_avals, vjp_body)
    args = ([ct_of(i) for i in f_carries] + [_zeros(avals[i]) for i in f_consts]
            + residuals + [primals[i] for i in xs] + [ct_of(j) for j in f_ys]
            + [cts[n_out + i] for i in f_saved] + [primals[i] for i in consts] + captured)
    n_c = len(carry_in)
    wanted = list(range(n_c + len(f_xs)))
    results = call(args, graph, length, not reverse, n_c, len(xs_in), wanted)
    grads = dict(zip(f_carries + f_consts + f_xs, results[:len(f_carries)]
                     + results[len(f_carries):n_c] + results[n_c:]))
    return [grads.get(i) for i in range(len(primals))]


# ---- the public functions ------------------------------------------------------------------------

def _leaf_aval(value):
    value = value if isinstance(value, core.Tracer) else ops.asarray(value)
    return tuple(value.shape), np.dtype(value.dtype)


def _check_length(xs_leaves, length):
    lengths = {np.shape(x)[0] if np.ndim(x) else None for x in xs_leaves}
    if None in lengths:
        raise ValueError(f"gc.scan: every leaf of xs needs a leading axis to scan over "
                         f"(at {user_location()})")
    if length is not None:
        lengths.add(int(length))
    if len(lengths) > 1:
        raise ValueError(f"gc.scan: xs leaves and length disagree on the number of steps: "
                         f"{sorted(lengths)} (at {user_location()})")
    if not lengths:
        raise ValueError(f"gc.scan: give xs or length (at {user_location()})")
    return lengths.pop()


def _trace_step(f, init_leaves, init_tree, x_avals, x_tree, carry_avals, weak):
    """Traces f once into the body graph; returns (graph, captured, y_tree, carry avals out)."""
    meta = {}

    def step(index, *values):
        trace = index.trace
        carries = [core.Tracer(v.node, trace, w) for v, w in zip(values[:len(carry_avals)], weak)]
        x = tree_unflatten(x_tree, list(values[len(carry_avals):])) if x_tree else None
        result = f(index, tree_unflatten(init_tree, carries), x)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError(f"gc.scan: the body must return (carry, y), got "
                            f"{type(result).__name__} (at {user_location()})")
        new_carry, y = result
        c_leaves, c_tree = tree_flatten(new_carry)
        if c_tree != init_tree:
            raise TypeError(f"gc.scan: the body returned a carry of structure {c_tree}, but the "
                            f"initial carry has structure {init_tree} (at {user_location()})")
        y_leaves, meta["y_tree"] = tree_flatten(y)
        return list(c_leaves) + list(y_leaves)

    graph, captured = _trace_graph([((), np.dtype(np.int64))] + carry_avals + x_avals, step)
    return graph, captured, meta["y_tree"]


def _scan(f, init, xs, length, reverse):
    init_leaves, init_tree = tree_flatten(init)
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [x if isinstance(x, core.Tracer) else ops.asarray(x) for x in x_leaves]
    length = _check_length(x_leaves, length)
    weak = [ops._is_python_scalar(c) or (isinstance(c, core.Tracer) and c.weak) for c in init_leaves]
    carry_avals = [_leaf_aval(c) for c in init_leaves]
    x_avals = [(tuple(np.shape(x))[1:], np.dtype(x.dtype)) for x in x_leaves]
    x_tree = x_tree if xs is not None else None
    for attempt in range(2):
        graph, captured, y_tree = _trace_step(f, init_leaves, init_tree, x_avals, x_tree,
                                              carry_avals, weak)
        outs = [(o.shape, o.dtype) for o in graph.outputs[:len(carry_avals)]]
        if outs == carry_avals:
            break
        # A weakly typed initial carry (a Python float) takes the dtype the body gives it.
        carry_avals = [o if w and o[0] == a[0] else a for o, a, w in zip(outs, carry_avals, weak)]
        weak = [False] * len(weak)
    if outs != carry_avals:
        bad = [(a, o) for a, o in zip(carry_avals, outs) if a != o][0]
        raise TypeError(f"gc.scan: the body returned a carry of type {_fmt(bad[1])} for a carry "
                        f"of type {_fmt(bad[0])}; a carry must keep its shape and dtype "
                        f"(at {user_location()})")
    init_values = [c if isinstance(c, core.Tracer) else ops.asarray(c) for c in init_leaves]
    init_values = [ops.astype(c, d) if np.dtype(c.dtype) != d else c
                   for c, (_, d) in zip(init_values, carry_avals)]
    n_carry, n_out = len(carry_avals), len(graph.outputs)
    args = init_values + x_leaves + captured
    values = call(args, graph, length, bool(reverse), n_carry, len(x_leaves), list(range(n_out)))
    return (tree_unflatten(init_tree, values[:n_carry]),
            tree_unflatten(y_tree, values[n_carry:]))


def _fmt(aval):
    from .dtypes import short_name
    return f"{short_name(aval[1])}[{','.join(map(str, aval[0]))}]"


def _unrolled(f, init, xs, length, reverse):
    """Outside any trace (NumPy values, gc.Tensor on the eager tape) the loop runs in Python."""
    x_leaves, x_tree = tree_flatten(xs)
    length = _check_length(x_leaves, length)
    carry, ys = init, [None] * length
    for step in range(length):
        t = length - 1 - step if reverse else step
        x = tree_unflatten(x_tree, [leaf[t] for leaf in x_leaves]) if xs is not None else None
        carry, ys[t] = f(np.int64(t), carry, x)
    if not ys:
        return carry, None
    y_leaves = [tree_flatten(y)[0] for y in ys]
    stacked = [ops.stack([leaves[i] for leaves in y_leaves]) for i in range(len(y_leaves[0]))]
    return carry, tree_unflatten(tree_flatten(ys[0])[1], stacked)


def _loop(f, init, xs, length, reverse):
    if core.tracing():
        return _scan(f, init, xs, length, reverse)
    leaves = tree_flatten((init, xs))[0]
    if any(type(v).__name__ == "Tensor" for v in leaves) or _check_length(
            [ops.asarray(x) for x in tree_flatten(xs)[0]], length):
        return _unrolled(f, init, xs, length, reverse)
    return _scan(f, init, xs, length, reverse)     # no steps: the traced route gives ys' shapes


def scan(f, init, xs=None, length=None, reverse=False):
    """Loops f(carry, x) -> (carry, y) over the leading axis of xs, as jax.lax.scan; returns
    (final carry, stacked ys). The body is traced once: the graph holds one loop node.

    >>> gc.scan(lambda c, x: (c + x, c * x), 0.0, np.arange(3.0))
    (array(3.), array([0., 0., 2.]))
    """
    if not callable(f):
        raise TypeError(f"gc.scan: f must be callable, got {type(f).__name__}")
    return _loop(lambda i, c, x: f(c, x), init, xs, length, reverse)


def fori_loop(lower, upper, body, init):
    """carry = body(i, carry) for i in range(lower, upper), with Python-int bounds; `i` is a traced
    int64 scalar. One loop node, whatever the number of steps.

    >>> gc.fori_loop(0, 3, lambda i, c: c * 2.0, 1.0)
    array(8.)
    """
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in (lower, upper)):
        raise TypeError(f"gc.fori_loop: lower and upper must be Python ints, got "
                        f"{type(lower).__name__} and {type(upper).__name__}; for traced bounds "
                        f"use gc.scan with a fixed length and gc.where")
    lower, upper = int(lower), int(upper)

    def step(i, carry, _):
        return body(i + lower if lower else i, carry), None
    carry, _ = _loop(step, init, None, max(upper - lower, 0), False)
    return carry


# ---- simplification ------------------------------------------------------------------------------

def _key(node):
    p = node.params
    return (id(p["body"]), tuple(i.id for i in node.inputs), p["length"], p["reverse"],
            p["n_carry"], p["n_xs"], node.dtype.str)


def merge_loops(graph):
    """Scan nodes that run the same loop on the same inputs (the primal values and the residuals
    reverse mode stores, for one) become one node selecting what all of them need."""
    from .ir import Node
    from .simplify import rewrite
    P = core.PRIM
    wanted = {}
    for node in graph.nodes:
        if node.prim is P.scan:
            wanted.setdefault(_key(node), set()).update(node.params["select"])
    merged = {}

    def visit(node):
        if node.prim is not P.scan or _key(node) not in wanted:
            return node
        key, p = _key(node), node.params
        union = tuple(sorted(wanted[key]))
        if union == p["select"]:
            return node
        if key not in merged:
            params = dict(p, select=union)
            shape, dtype = shape_rule(*[(i.shape, i.dtype) for i in node.inputs], **params)
            merged[key] = Node(P.scan, node.inputs, params, shape, dtype, node.loc, node.phase)
        whole = merged[key]
        avals = output_avals(p["body"], p["length"], p["n_carry"])
        offsets, start = {}, 0
        for k in union:
            offsets[k] = start
            start += int(np.prod(avals[k][0], dtype=np.int64))
        parts = []
        for k in p["select"]:
            size = int(np.prod(avals[k][0], dtype=np.int64))
            part = Node(P.slice, (whole,), {"starts": (offsets[k],), "stops": (offsets[k] + size,),
                                            "steps": (1,)}, (size,), node.dtype, node.loc, node.phase)
            parts.append(part)
        if len(parts) > 1:
            return Node(P.concatenate, parts, {"axis": 0}, node.shape, node.dtype, node.loc,
                        node.phase)
        return Node(P.reshape, parts, {"shape": node.shape}, node.shape, node.dtype, node.loc,
                    node.phase)
    return rewrite(graph, visit)



def _offsets(params):
    """Element offset of each selected output in a scan node's packed value."""
    avals = output_avals(params["body"], params["length"], params["n_carry"])
    offsets, start = {}, 0
    for k in params["select"]:
        offsets[k] = start
        start += int(np.prod(avals[k][0], dtype=np.int64))
    return offsets


def _read_outputs(node, users):
    """The output numbers of a packed scan node its users read (each through a slice of exactly
    one output), or None when some user reads it otherwise."""
    by_start = {start: k for k, start in _offsets(node.params).items()}
    avals = output_avals(node.params["body"], node.params["length"], node.params["n_carry"])
    used = set()
    for user in users:
        if user.prim is not core.PRIM.slice or user.params["starts"][0] not in by_start:
            return None
        k = by_start[user.params["starts"][0]]
        if user.size != int(np.prod(avals[k][0], dtype=np.int64)):
            return None
        used.add(k)
    return used


def _pruned(node, inputs, used):
    """node without the outputs it need not return and the ys its body need not compute; also
    {old offset: new offset} of the outputs it keeps."""
    from .ir import Node
    p = node.params
    body, n_carry = p["body"], p["n_carry"]
    n_out = len(body.outputs)
    kept_ys = [k for k in range(n_carry, n_out) if k in used]
    new_body = Graph(body.inputs, body.outputs[:n_carry] + [body.outputs[k] for k in kept_ys])
    n_new = len(new_body.outputs)
    renumber = {k: k if k < n_carry else
                (n_carry + kept_ys.index(k) if k < n_out else k - n_out + n_new) for k in used}
    params = dict(p, body=new_body, select=tuple(sorted(renumber.values())))
    shape, dtype = shape_rule(*[(i.shape, i.dtype) for i in inputs], **params)
    new = Node(core.PRIM.scan, inputs, params, shape, dtype, node.loc, node.phase)
    old, moved = _offsets(p), _offsets(params)
    return new, {old[k]: moved[renumber[k]] for k in used}


def prune_loops(graph):
    """A scan node whose returned outputs are not all read returns only the ones that are, and
    the ys nobody reads leave its body, their computation with them (the cotangents of xs that
    nobody differentiates, for one)."""
    from .ir import Node
    P = core.PRIM
    users = graph.users()
    outputs = {o.id for o in graph.outputs}
    plans = {}
    for node in graph.nodes:
        if node.prim is P.scan and node.id not in outputs and len(node.params["select"]) > 1:
            used = _read_outputs(node, users[node.id])
            body = node.params["body"]
            dropped_ys = len(body.outputs) - node.params["n_carry"] - sum(
                1 for k in node.params["select"] if node.params["n_carry"] <= k < len(body.outputs))
            if used is not None and (used != set(node.params["select"]) or dropped_ys):
                plans[node.id] = used
    if not plans:
        return graph
    new, moved = {}, {}
    for node in graph.nodes:
        if node.prim is P.input:
            new[node.id] = node
            continue
        inputs = tuple(new[i.id] for i in node.inputs)
        if node.id in plans:
            new[node.id], moved[node.id] = _pruned(node, inputs, plans[node.id])
        elif node.prim is P.slice and node.inputs[0].id in plans:
            whole = inputs[0]
            if whole.shape != (whole.size,) or len(whole.params["select"]) == 1:
                new[node.id] = Node(P.reshape, (whole,), {"shape": node.shape}, node.shape,
                                    node.dtype, node.loc, node.phase)
            else:
                start = moved[node.inputs[0].id][node.params["starts"][0]]
                new[node.id] = Node(P.slice, (whole,), {"starts": (start,),
                                                        "stops": (start + node.size,),
                                                        "steps": (1,)},
                                    node.shape, node.dtype, node.loc, node.phase)
        elif all(a is b for a, b in zip(inputs, node.inputs)):
            new[node.id] = node
        else:
            new[node.id] = Node(node.prim, inputs, node.params, node.shape, node.dtype, node.loc,
                                node.phase, node.name)
    return Graph(graph.inputs, [new[o.id] for o in graph.outputs])
