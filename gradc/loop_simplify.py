"""Simplification of scan nodes (loop.py), passes of simplify.PASSES: merge_loops makes loops that
run the same body on the same inputs one (the primal loop and the residuals reverse mode stores),
prune_loops drops the outputs, ys, xs and consts nobody reads."""
import numpy as np

from . import core
from .ir import Graph
from .loop import output_avals, shape_rule
from .symbolic import at_least, prod


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
        start += prod(avals[k][0])
    return offsets


def _sizes(params):
    avals = output_avals(params["body"], params["length"], params["n_carry"])
    return {k: prod(avals[k][0]) for k in params["select"]}


def _scan_node(inputs, params, like):
    from .ir import Node
    shape, dtype = shape_rule(*[(i.shape, i.dtype) for i in inputs], **params)
    return Node(core.PRIM.scan, inputs, params, shape, dtype, like.loc, like.phase)


def _within(node, reader):
    """The output number of packed scan node `node` that the 1-D unit-step slice `reader` reads
    wholly inside of, and the reader's start within it; None if there is none."""
    p = reader.params
    if reader.prim is not core.PRIM.slice or p["steps"] != (1,) or len(p["starts"]) != 1:
        return None
    start, sizes = p["starts"][0], _sizes(node.params)
    for k, offset in _offsets(node.params).items():
        if at_least(start, offset) and at_least(offset + sizes[k], start + reader.size):
            return k, start - offset
    return None


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
        # NOTE: a scan reading a replaced scan reads the old packed value (rebuilt), as any other
        # reader: given the new packed node, a merged second loop of two chained fori_loops took
        # the first loop's saved steps as its carry (found by the fuzzer).
        result = replace(node, tuple(packed(i) if i.id in moved else new[i.id]
                                     for i in node.inputs)) if node.prim is P.scan else None
        if result is not None:
            new[node.id], moved[node.id] = result
            continue
        x = node.inputs[0]
        found = _within(x, node) if x.id in moved and len(x.params["select"]) > 1 else None
        if found is not None:
            (k, start), whole = found, part(x, new[x.id], found[0])
            if (start, node.size) != (0, whole.size):      # a part of one output
                base = whole
                if whole.prim is P.slice:                  # one slice of the loop node
                    base, start = whole.inputs[0], whole.params["starts"][0] + start
                whole = Node(P.slice, (base,), {"starts": (start,), "stops": (start + node.size,),
                                                "steps": (1,)}, node.shape, node.dtype, node.loc,
                             node.phase)
            new[node.id] = whole
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
    """The output numbers of a packed scan node its users read (each through a slice within one
    output), or None when some user reads it otherwise."""
    used = set()
    for user in users:
        found = _within(node, user)
        if found is None:
            return None
        used.add(found[0])
    return used


def prune_loops(graph):
    """A scan node whose returned outputs are not all read returns only the ones that are, and
    the ys nobody reads leave its body, their computation with them (the cotangents of xs that
    nobody differentiates, for one)."""
    users = graph.users()
    outputs = {o.id for o in graph.outputs}
    plans = {}
    for node in graph.nodes:
        if node.prim is core.PRIM.scan and node.id not in outputs \
                and len(node.params["select"]) > 1:
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
