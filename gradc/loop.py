"""Loops that stay loops (API.md section 9): `gc.scan` and `gc.fori_loop` over the `scan` primitive.

A scan node holds its body as a Graph, traced once whatever the length:
    body: [index (int64 scalar), carries..., x slices..., consts...] -> [new carries..., ys...]
Its inputs are the initial carries, the stacked xs ([T, ...]) and the consts (loop-invariant values,
including the outer values the body closes over). A node computes every body output but returns
only the ones in `select`, packed flat when there are several (a node has one dtype, so outputs of
different dtypes are separate nodes; simplify's merge_loops joins nodes that can share one loop).
Output numbers in `select`: 0..n_carry-1 the final carries, then the stacked ys ([T, ...]), then
the stacked carries *before* each step, then *after* each step ([T, ...]: the residuals reverse
mode reads).

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
    return carries + stacked + saved + saved


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
            if n_out <= k < n_out + n_carry:
                stacks[k][t] = carries[k - n_out]
        outs = interpreter.run(body, [np.int64(t)] + carries + [x[t] for x in xs] + consts)
        carries = outs[:n_carry]
        for k in stacks:
            if k < n_out:
                stacks[k][t] = outs[k]
            elif k >= n_out + n_carry:
                stacks[k][t] = carries[k - n_out - n_carry]
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


def _trace_graph(in_avals, fn, replace=None):
    """fn(*input tracers) -> list of values, traced once into a simplified Graph. Returns the graph
    and the outer values it captured (they become inputs after in_avals). `replace` (filled while
    tracing): node id -> an input node holding the same value, read instead."""
    from .simplify import simplify
    with core.Trace() as trace:
        inputs = [trace.new_input(s, d) for s, d in in_avals]
        outs = _lifted(trace, fn(*inputs))
    graph = Graph(trace.inputs + trace.capture_nodes, [o.node for o in outs])
    graph = simplify(_substitute(graph, replace) if replace else graph)
    return _hoist_constants(graph, list(trace.captured))


def _substitute(graph, replace):
    """graph reading replace[id] wherever it read the node of that id."""
    from .ir import Node
    new = {}
    for node in graph.nodes:
        if node.id in replace or not node.inputs:
            new[node.id] = replace.get(node.id, node)
            continue
        inputs = tuple(new[i.id] for i in node.inputs)
        new[node.id] = node if all(a is b for a, b in zip(inputs, node.inputs)) else Node(
            node.prim, inputs, node.params, node.shape, node.dtype, node.loc, node.phase, node.name)
    return Graph(graph.inputs, [new[o.id] for o in graph.outputs])


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
            kind, i = divmod(k - n_out, n_carry)
            wanted.append(n_new + kind * n_c + position[("t", i)])
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
    f_after = [i for i in f_carries if n_out + n_carry + i in cts]
    step_avals = [(s[1:], d) if i in xs else (s, d) for i, (s, d) in enumerate(avals)]
    # The body's computed float outputs are stored too (the carries after each step, the ys): the
    # reverse step reads them instead of computing them again.
    reused = [j for j, o in enumerate(body.outputs)
              if _float(all_avals[j]) and o.prim.kind != "source"]
    stored = [n_out + n_carry + j if j < n_carry else j for j in reused]
    residuals = call(primals, body, length, reverse, n_carry, n_xs,
                     [n_out + i for i in carries] + stored)
    residuals, outputs_stored = residuals[:n_carry], residuals[n_carry:]

    def ct_of(k):
        return cts[k] if k in cts else _zeros(all_avals[k])

    xs_in = ([avals[i] for i in carries] + [(avals[i][0][1:], avals[i][1]) for i in xs]
             + [(all_avals[j][0][1:], all_avals[j][1]) for j in f_ys]
             + [avals[i] for i in f_saved] + [avals[i] for i in f_after]
             + [(all_avals[k][0][1:], all_avals[k][1]) for k in stored])
    const_in = [avals[i] for i in consts]
    xs_args = (residuals + [primals[i] for i in xs] + [ct_of(j) for j in f_ys]
               + [cts[n_out + i] for i in f_saved] + [cts[n_out + n_carry + i] for i in f_after]
               + outputs_stored)

    def make_body(stacked, found, sources, replace):
        """The reverse step. A const's cotangent that is a product A^T @ B of per-step values is
        not summed in a carry when the const is in `stacked`: A and B are stacked instead (an xs
        already, or a new y) and multiplied once after the loop, as one GEMM over all steps."""
        summed = [i for i in f_consts if i not in stacked]
        n_ck = len(f_carries) + len(summed)

        def vjp_body(index, *values):
            trace = index.trace
            values = list(values)
            ct_c, ct_k = values[:len(f_carries)], values[len(f_carries):n_ck]
            rest = values[n_ck:]
            c, x = rest[:n_carry], rest[n_carry:n_carry + len(xs)]
            ct_y = rest[n_carry + len(xs):n_carry + len(xs) + len(f_ys)]
            at = n_carry + len(xs) + len(f_ys)
            ct_s = rest[at:at + len(f_saved)]
            ct_a = dict(zip(f_after, rest[at + len(f_saved):at + len(f_saved) + len(f_after)]))
            values_out = rest[at + len(f_saved) + len(f_after):len(xs_in)]
            k = rest[len(xs_in):]
            outs = _lifted(trace, interpreter.replay(body, [index] + c + x + k))
            for j, v in zip(reused, values_out):
                if outs[j].node.prim.kind != "source":
                    replace[outs[j].node.id] = v.node
            seeds = {i: ops.add(a, ct_a[i]) if i in ct_a else a for i, a in zip(f_carries, ct_c)}
            seeds.update(zip(f_ys, ct_y))
            inputs = c + x + k
            wrt = [inputs[i].node for i in f_carries + f_xs + f_consts]
            grads = backward_pass(trace, [outs[j] for j in seeds], list(seeds.values()), wrt)
            grads = [g if g is not None else _zeros(step_avals[i])
                     for g, i in zip(grads, f_carries + f_xs + f_consts)]
            g_c = grads[:len(f_carries)]
            g_x = grads[len(f_carries):len(f_carries) + len(f_xs)]
            g_k = dict(zip(f_consts, grads[len(f_carries) + len(f_xs):]))
            saved = dict(zip(f_saved, ct_s))
            new_c = [ops.add(g, saved[i]) if i in saved else g for g, i in zip(g_c, f_carries)]
            new_k = [ops.add(a, g_k[i]) for a, i in zip(ct_k, summed)]
            xs_at = {v.node.id: j for j, v in enumerate(rest[:len(xs_in)])}
            extra = []
            for i in f_consts:
                pair = _product_of_steps(g_k[i], trace)
                if pair is not None:
                    found.add(i)
                if i in stacked:
                    sources[i] = [("xs", xs_at[v.node.id]) if v.node.id in xs_at
                                  else ("y", _position(extra, v)) for v in pair]
            return new_c + new_k + g_x + extra
        return vjp_body, summed

    in_const = [((), np.dtype(np.int64))]
    found, sources = set(), {}
    replace = {}
    body_fn, _ = make_body(set(), found, sources, replace)
    carry_in = [avals[i] for i in f_carries] + [avals[i] for i in f_consts]
    graph, captured = _trace_graph(in_const + carry_in + xs_in + const_in, body_fn, replace)
    if found:           # traced again with those consts' products stacked
        replace = {}
        body_fn, summed = make_body(found, set(), sources, replace)
        carry_in = [avals[i] for i in f_carries] + [avals[i] for i in summed]
        graph, captured = _trace_graph(in_const + carry_in + xs_in + const_in, body_fn, replace)
    else:
        summed = f_consts
    args = ([ct_of(i) for i in f_carries] + [_zeros(avals[i]) for i in summed]
            + xs_args + [primals[i] for i in consts] + captured)
    n_c = len(carry_in)
    n_extra = len(graph.outputs) - n_c - len(f_xs)
    wanted = list(range(n_c + len(f_xs) + n_extra))
    results = call(args, graph, length, not reverse, n_c, len(xs_in), wanted)
    grads = dict(zip(f_carries + summed + f_xs, results[:n_c + len(f_xs)]))
    extra = results[n_c + len(f_xs):]
    for i in found:
        a, b = [xs_args[j] if kind == "xs" else extra[j] for kind, j in sources[i]]
        rows = length * a.shape[1]
        grads[i] = ops.matmul(ops.transpose(ops.reshape(a, (rows, a.shape[2]))),
                              ops.reshape(b, (rows, b.shape[2])))
    return [grads.get(i) for i in range(len(primals))]


def _product_of_steps(g, trace):
    """(A, B) as tracers when g is A^T @ B of 2-D values (a weight's cotangent in one step), else
    None."""
    if not isinstance(g, core.Tracer) or g.node.prim is not core.PRIM.matmul or g.ndim != 2:
        return None
    left, right = g.node.inputs
    if left.prim is not core.PRIM.transpose or left.params["perm"] != (1, 0):
        return None
    return core.Tracer(left.inputs[0], trace), core.Tracer(right, trace)


def _position(extra, value):
    """Index of value in the list of extra ys, appended once."""
    for j, v in enumerate(extra):
        if v.node is value.node:
            return j
    extra.append(value)
    return len(extra) - 1


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
        index = core.Tracer(index.node, trace, True)     # weakly typed, as a Python int
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
        carry, ys[t] = f(t, carry, x)
    c_leaves, c_tree = tree_flatten(carry)
    carry = tree_unflatten(c_tree, [c if type(c).__name__ == "Tensor" else np.asarray(c)
                                    for c in c_leaves])
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
    int64 scalar, weakly typed as a Python int is (`c / i` keeps c's dtype). One loop node,
    whatever the number of steps.

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


def _offsets(params):
    """Element offset of each selected output in a scan node's packed value."""
    avals = output_avals(params["body"], params["length"], params["n_carry"])
    offsets, start = {}, 0
    for k in params["select"]:
        offsets[k] = start
        start += int(np.prod(avals[k][0], dtype=np.int64))
    return offsets


def _sizes(params):
    avals = output_avals(params["body"], params["length"], params["n_carry"])
    return {k: int(np.prod(avals[k][0], dtype=np.int64)) for k in params["select"]}


def _scan_node(inputs, params, like):
    from .ir import Node
    shape, dtype = shape_rule(*[(i.shape, i.dtype) for i in inputs], **params)
    return Node(core.PRIM.scan, inputs, params, shape, dtype, like.loc, like.phase)


def _rewire(graph, replace):
    """graph with scan nodes replaced: replace(node, inputs) -> None (kept) or (new node, {output
    number of node: its number in the new node}). A slice reading one output of a replaced node
    reads it from the new node; any other reader gets the old packed value, rebuilt."""
    from .ir import Node
    P = core.PRIM
    new, moved = {}, {}

    parts = {}

    def part(node, whole, k):
        """Output k of old scan node `node` (flat), read from its replacement `whole` (one node
        however many read it)."""
        if (node.id, k) not in parts:
            parts[node.id, k] = _part(node, whole, k)
        return parts[node.id, k]

    def _part(node, whole, k):
        size, renumber = _sizes(node.params)[k], moved[node.id]
        if len(whole.params["select"]) == 1:
            return Node(P.reshape, (whole,), {"shape": (size,)}, (size,), node.dtype, node.loc,
                        node.phase)
        start = _offsets(whole.params)[renumber[k]]
        return Node(P.slice, (whole,), {"starts": (start,), "stops": (start + size,),
                                        "steps": (1,)}, (size,), node.dtype, node.loc, node.phase)

    def packed(node):
        """The old node's value from its replacement (for readers other than slices)."""
        parts = [part(node, new[node.id], k) for k in node.params["select"]]
        if len(parts) == 1:
            return Node(P.reshape, parts, {"shape": node.shape}, node.shape, node.dtype, node.loc,
                        node.phase)
        return Node(P.concatenate, parts, {"axis": 0}, node.shape, node.dtype, node.loc,
                    node.phase)

    for node in graph.nodes:
        if not node.inputs:
            new[node.id] = node
            continue
        inputs = tuple(new[i.id] for i in node.inputs)
        result = replace(node, inputs) if node.prim is P.scan else None
        if result is not None:
            new[node.id], moved[node.id] = result
            continue
        x = node.inputs[0]
        if node.prim is P.slice and x.id in moved and len(x.params["select"]) > 1:
            k = {v: k for k, v in _offsets(x.params).items()}.get(node.params["starts"][0])
            if k is not None and _sizes(x.params)[k] == node.size:
                new[node.id] = part(x, new[x.id], k)
                continue
        inputs = tuple(packed(i) if i.id in moved else new[i.id] for i in node.inputs)
        new[node.id] = node if all(a is b for a, b in zip(inputs, node.inputs)) else Node(
            node.prim, inputs, node.params, node.shape, node.dtype, node.loc, node.phase, node.name)
    outputs = [packed(o) if o.id in moved else new[o.id] for o in graph.outputs]
    return Graph(graph.inputs, outputs)


def merge_loops(graph):
    """Scan nodes that run the same loop on the same inputs (the primal values and the residuals
    reverse mode stores, for one) become one node selecting what all of them need."""
    wanted = {}
    for node in graph.nodes:
        if node.prim is core.PRIM.scan:
            wanted.setdefault(_key(node), set()).update(node.params["select"])
    if all(len(w) == 1 for w in wanted.values()) and len(wanted) == sum(
            1 for n in graph.nodes if n.prim is core.PRIM.scan):
        return graph
    merged = {}

    def replace(node, inputs):
        key = _key(node)
        union = tuple(sorted(wanted.get(key, ())))
        if key not in wanted or union == node.params["select"]:
            return None
        if key not in merged:
            merged[key] = _scan_node(inputs, dict(node.params, select=union), node)
        return merged[key], {k: k for k in node.params["select"]}
    return _rewire(graph, replace)


def _read_outputs(node, users):
    """The output numbers of a packed scan node its users read (each through a slice of exactly
    one output), or None when some user reads it otherwise."""
    by_start = {start: k for k, start in _offsets(node.params).items()}
    sizes = _sizes(node.params)
    used = set()
    for user in users:
        k = by_start.get(user.params["starts"][0]) if user.prim is core.PRIM.slice else None
        if k is None or user.size != sizes[k]:
            return None
        used.add(k)
    return used


def prune_loops(graph):
    """A scan node whose returned outputs are not all read returns only the ones that are, and
    the ys nobody reads leave its body, their computation with them (the cotangents of xs that
    nobody differentiates, for one)."""
    users = graph.users()
    outputs = {o.id for o in graph.outputs}
    plans = {}
    for node in graph.nodes:
        if node.prim is core.PRIM.scan and node.id not in outputs and len(node.params["select"]) > 1:
            used = _read_outputs(node, users[node.id])
            p = node.params
            n_out = len(p["body"].outputs)
            idle_ys = any(p["n_carry"] <= k < n_out and k not in (used or ())
                          for k in range(p["n_carry"], n_out))
            if used is None or (used == set(p["select"]) and not idle_ys):
                used = set(p["select"])
                if not _idle_inputs(p["body"], p["n_carry"]):
                    continue
            plans[node.id] = used

    def replace(node, inputs):
        if node.id not in plans:
            return None
        used, p = plans[node.id], node.params
        body, n_carry = p["body"], p["n_carry"]
        n_out = len(body.outputs)
        kept_ys = [k for k in range(n_carry, n_out) if k in used]
        new_body = Graph(body.inputs, body.outputs[:n_carry] + [body.outputs[k] for k in kept_ys])
        n_new = len(new_body.outputs)
        renumber = {k: k if k < n_carry else
                    (n_carry + kept_ys.index(k) if k < n_out else k - n_out + n_new) for k in used}
        idle = _idle_inputs(new_body, n_carry)      # xs and consts the body no longer reads
        new_body = Graph([x for i, x in enumerate(new_body.inputs) if i not in idle],
                         new_body.outputs)
        inputs = [x for i, x in enumerate(inputs) if i + 1 not in idle]
        n_xs = p["n_xs"] - sum(1 for i in idle if i <= n_carry + p["n_xs"])
        params = dict(p, body=new_body, select=tuple(sorted(renumber.values())), n_xs=n_xs)
        return _scan_node(inputs, params, node), renumber
    return _rewire(graph, replace) if plans else graph


def _idle_inputs(body, n_carry):
    """Positions of the body's xs and const inputs that nothing in it reads."""
    read = {x.id for n in body.nodes for x in n.inputs} | {o.id for o in body.outputs}
    return {i for i, x in enumerate(body.inputs) if i > n_carry and x.id not in read}
