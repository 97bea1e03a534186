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

The JVP and VJP rules (loop_derivatives.py) are graph code: scans of the body's JVP and VJP, so
derivatives nest; loop_simplify.py has the simplify passes for scan nodes.
"""
import dataclasses

import numpy as np

from . import core, interpreter, ops, printing, symbolic
from .errors import user_location
from .ir import Graph
from .tree import tree_flatten, tree_unflatten
from .symbolic import prod


# ---- the primitive's rules -----------------------------------------------------------------------

def output_avals(body, length, n_carry):
    """(shape, dtype) of every output number a scan node can select (see the module docstring)."""
    outs = [(o.shape, o.dtype) for o in body.outputs]
    carries = outs[:n_carry]
    stacked = [((length,) + s, d) for s, d in outs[n_carry:]]
    saved = [((length,) + s, d) for s, d in carries]
    return carries + stacked + saved + saved


def shape_rule(*avals, body, length, reverse, n_carry, n_xs, select):
    # The kernels read each input as the body's type says: one of another dtype (a derivative
    # rule's float64 tangent for a float32 carry, once) would be read as garbage, not converted.
    wants = body.inputs[1:]
    for k, ((_, dtype), want) in enumerate(zip(avals, wants)):
        if np.dtype(dtype) != np.dtype(want.dtype):
            role = "carry" if k < n_carry else "xs" if k < n_carry + n_xs else "closed-over value"
            raise TypeError(f"gradc internal error: a loop's {role} (input {k}) is {np.dtype(dtype)}"
                            f" but its body takes {np.dtype(want.dtype)}")
    chosen = [output_avals(body, length, n_carry)[k] for k in select]
    if len(chosen) == 1:
        return chosen[0]
    return (sum(prod(s) for s, _ in chosen),), chosen[0][1]


def impl(*args, body, length, reverse, n_carry, n_xs, select):
    """The interpreter's loop: runs the body graph once per step."""
    carries = [np.asarray(a) for a in args[:n_carry]]
    xs, consts = args[n_carry:n_carry + n_xs], list(args[n_carry + n_xs:])
    avals = output_avals(body, length, n_carry)
    # named sizes, from this call's arrays, once for every step ({} for none); a step's x is
    # xs[t], of xs's shape less its first axis (which may be 0 long)
    shapes = ([()] + [np.shape(c) for c in carries] + [np.shape(x)[1:] for x in xs]
              + [np.shape(c) for c in consts])
    sizes = interpreter.sizes_of(body, None, shapes) or {}
    if sizes:
        avals = [(symbolic.substitute(s, sizes), d) for s, d in avals]
    n_out = len(body.outputs)
    stacks = {k: np.empty(avals[k][0], avals[k][1]) for k in select if k >= n_carry}
    for step in range(length):
        t = length - 1 - step if reverse else step
        for k in stacks:
            if n_out <= k < n_out + n_carry:
                stacks[k][t] = carries[k - n_out]
        outs = interpreter.run(body, [np.int64(t)] + carries + [x[t] for x in xs] + consts, sizes)
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
        size = prod(shape)
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
        # gc.debug_print in the body: its values are per-step outputs after the ys.
        meta["prints"], print_values = printing.pending(trace)
        return list(c_leaves) + list(y_leaves) + list(print_values)

    graph, captured = _trace_graph([((), np.dtype(np.int64))] + carry_avals + x_avals, step)
    return graph, captured, meta["y_tree"], meta["prints"]


def _scan(f, init, xs, length, reverse):
    init_leaves, init_tree = tree_flatten(init)
    x_leaves, x_tree = tree_flatten(xs)
    x_leaves = [x if isinstance(x, core.Tracer) else ops.asarray(x) for x in x_leaves]
    length = _check_length(x_leaves, length)
    weak = [ops._is_python_scalar(c) or (isinstance(c, core.Tracer) and c.weak)
            for c in init_leaves]
    carry_avals = [_leaf_aval(c) for c in init_leaves]
    x_avals = [(tuple(np.shape(x))[1:], np.dtype(x.dtype)) for x in x_leaves]
    x_tree = x_tree if xs is not None else None
    for attempt in range(2):
        graph, captured, y_tree, prints = _trace_step(f, init_leaves, init_tree, x_avals,
                                                      x_tree, carry_avals, weak)
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
    n_printed = sum(p.count for p in prints)
    if n_printed:
        printed = values[n_out - n_printed:]
        values = values[:n_out - n_printed]
        printed = [v[::-1] for v in printed] if reverse else printed   # in the order they ran
        printing.hand_on([dataclasses.replace(p, per_iteration=int(p.per_iteration) + 1)
                          for p in prints], printed)
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
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool)
               for b in (lower, upper)):
        raise TypeError(f"gc.fori_loop: lower and upper must be Python ints, got "
                        f"{type(lower).__name__} and {type(upper).__name__}; for traced bounds "
                        f"use gc.scan with a fixed length and gc.where")
    lower, upper = int(lower), int(upper)

    def step(i, carry, _):
        return body(i + lower if lower else i, carry), None
    carry, _ = _loop(step, init, None, max(upper - lower, 0), False)
    return carry
