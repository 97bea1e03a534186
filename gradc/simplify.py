"""Graph simplification: one ordered list of pure passes (graph -> graph), run to a fixed point.
Set GRADC_DEBUG=1 to print the graph after each pass."""
import os

import numpy as np

from . import primitives as P
from .ir import Graph, Node, repeated_value
from . import symbolic
from .symbolic import prod

FOLD_LIMIT = 4096      # constants larger than this stay computed at run time (they are data)


def _copy(node, inputs):
    return Node(node.prim, inputs, node.params, node.shape, node.dtype, node.loc, node.phase, node.name)


def _const(value, like):
    value = np.asarray(value, dtype=like.dtype)
    return Node(P.const, (), {"value": value}, value.shape, value.dtype, like.loc, like.phase)


def rewrite(graph, visit, originals=False):
    """Rebuilds graph bottom-up: visit(node) returns the node to use (itself, a new one or an
    existing one); with `originals`, visit(node, original), original being the node of `graph`
    (to look up what was counted on it, such as its uses). Unreachable nodes disappear
    (dead-code elimination comes for free)."""
    new = {}
    for node in graph.nodes:
        if node.prim is P.input:
            new[node.id] = node
            continue
        inputs = tuple(new[i.id] for i in node.inputs)
        same = all(a is b for a, b in zip(inputs, node.inputs))
        rebuilt = node if same else _copy(node, inputs)
        new[node.id] = visit(rebuilt, node) if originals else visit(rebuilt)
    return Graph(graph.inputs, [new[o.id] for o in graph.outputs])


def use_counts(graph):
    """node id -> how many inputs of other nodes and outputs of the graph are that node."""
    uses = {}
    for x in [x for node in graph.nodes for x in node.inputs] + list(graph.outputs):
        uses[x.id] = uses.get(x.id, 0) + 1
    return uses


def swap_last_two(ndim):
    """The permutation that swaps the last two axes of ndim (a matrix transpose of a stack)."""
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)


# ---- constant folding ----------------------------------------------------------------------------

ELEMENTWISE = ("unary", "binary", "ternary", "compare")


def _fold_uniform(node):
    """An elementwise op on repeated constants is a repeated constant: op(c) broadcast."""
    values = [scalar_value(i) for i in node.inputs]
    if any(v is None for v in values):
        return node
    with np.errstate(all="ignore"):
        scalars = [np.asarray(v, dtype=i.dtype) for v, i in zip(values, node.inputs)]
        value = _const(node.prim.impl(*scalars, **node.params), node)
    return Node(P.broadcast_to, (value,), {"shape": node.shape}, node.shape, node.dtype, node.loc,
                node.phase) if node.shape else value


def fold_constants(graph):
    def visit(node):
        if node.prim.kind in ("source", "loop") or not node.inputs:
            return node     # NOTE: a loop on constants still runs when called, not when simplified
        if node.prim.kind in ELEMENTWISE and not all(i.prim is P.const for i in node.inputs):
            return _fold_uniform(node)
        if not all(i.prim is P.const for i in node.inputs) or symbolic.contains(node.shape):
            return node     # a named size is not known until the kernel runs
        largest = max(i.size for i in node.inputs)
        if node.size > FOLD_LIMIT or node.size > max(largest, 1):
            return node     # e.g. a broadcast scalar stays a broadcast, not a big literal array
        try:
            with np.errstate(all="ignore"):
                value = node.prim.impl(*[i.params["value"] for i in node.inputs], **node.params)
        except (IndexError, ValueError):
            return node     # e.g. an out-of-range constant index: reported when run, as usual
        return _const(value, node)
    return rewrite(graph, visit)


# ---- algebraic identities (rules as data) --------------------------------------------------------

def scalar_value(node):
    """The value of a node that is one repeated constant (a const, or a broadcast/reshape of one)."""
    while node.prim in (P.broadcast_to, P.reshape):
        node = node.inputs[0]
    value = repeated_value(node.params["value"]) if node.prim is P.const else None
    return None if value is None else value.item()


def _is(value):
    return lambda node: scalar_value(node) == value and scalar_value(node) is not None


_is_one, _is_zero = _is(1), _is(0)


def _neg(node, x):
    return Node(P.neg, (x,), {}, x.shape, x.dtype, node.loc, node.phase)


def _flat_range(node):
    """(start, stop) of a 1-D unit-step slice or unslice, else None."""
    p = node.params
    if len(p["starts"]) != 1 or p["steps"] != (1,):
        return None
    return p["starts"][0], p["stops"][0]


def _slice_of_unslice(node):
    """A 1-D slice of a 1-D unslice: its input for the same range, zeros for a disjoint one (the
    cotangents of a loop node's packed outputs are built and read this way), else None."""
    inner = node.inputs[0]
    if inner.prim is not P.unslice or len(node.shape) != 1 or len(inner.inputs[0].shape) != 1:
        return None
    outer, placed = _flat_range(node), _flat_range(inner)
    if outer is None or placed is None:
        return None
    if outer == placed:
        return inner.inputs[0]
    if outer[1] <= placed[0] or placed[1] <= outer[0]:
        zero = _const(np.zeros((), node.dtype), node)
        return Node(P.broadcast_to, (zero,), {"shape": node.shape}, node.shape, node.dtype,
                    node.loc, node.phase)
    return None


def _slice_through_add(node):
    """slice(a + b) -> slice(a) + slice(b) for 1-D values where a or b is an unslice (so that
    _slice_of_unslice applies to the parts)."""
    add = node.inputs[0]
    parts = [Node(P.slice, (x,), node.params, node.shape, node.dtype, node.loc, node.phase)
             for x in add.inputs]
    return Node(P.add, tuple(parts), {}, node.shape, node.dtype, add.loc, add.phase)


def _leading_block(node):
    """The element offset of a unit-step slice along the first axis that keeps the other axes
    whole (one contiguous block of its input), else None."""
    x, p = node.inputs[0], node.params
    if not x.shape or any(step != 1 for step in p["steps"]) or any(p["starts"][1:]) \
            or node.shape[1:] != x.shape[1:]:
        return None
    return p["starts"][0] * prod(x.shape[1:])


def _slice_of_flat(node):
    """A slice that is one contiguous block of a reshaped 1-D value: one 1-D slice of that value,
    reshaped (slices of slices of a loop node's packed outputs, read in place by the C backend)."""
    inner = node.inputs[0]
    if inner.prim is not P.reshape or len(inner.inputs[0].shape) != 1 or node.size == 0:
        return None
    offset = _leading_block(node)
    if offset is None:
        return None
    flat = inner.inputs[0]
    if flat.prim is P.slice and _flat_range(flat) is not None:    # compose with the 1-D slice
        offset, flat = offset + flat.params["starts"][0], flat.inputs[0]
    part = Node(P.slice, (flat,), {"starts": (offset,), "stops": (offset + node.size,),
                                   "steps": (1,)}, (node.size,), node.dtype, node.loc, node.phase)
    return Node(P.reshape, (part,), {"shape": node.shape}, node.shape, node.dtype, node.loc,
                node.phase)


def _slice_of_slice(node):
    """A 1-D unit-step slice of a 1-D unit-step slice: one slice."""
    inner = node.inputs[0]
    if inner.prim is not P.slice or _flat_range(node) is None or _flat_range(inner) is None:
        return None
    start = node.params["starts"][0] + inner.params["starts"][0]
    return Node(P.slice, inner.inputs, {"starts": (start,), "stops": (start + node.size,),
                                        "steps": (1,)}, node.shape, node.dtype, node.loc,
                node.phase)


def _is_add_of_unslice(node):
    x = node.inputs[0]
    return (x.prim is P.add and len(node.shape) == 1 and _flat_range(node) is not None
            and any(i.prim is P.unslice for i in x.inputs)
            and all(i.shape == x.shape for i in x.inputs))


# (primitive, condition on the node, replacement) — first match wins.
RULES = [
    (P.slice, lambda n: _slice_of_unslice(n) is not None, _slice_of_unslice),
    (P.slice, _is_add_of_unslice, _slice_through_add),
    (P.slice, lambda n: n.inputs[0].prim is P.reshape and _slice_of_flat(n) is not None,
     _slice_of_flat),
    (P.slice, lambda n: _slice_of_slice(n) is not None, _slice_of_slice),
    (P.mul, lambda n: _is_one(n.inputs[1]), lambda n: n.inputs[0]),            # x*1 -> x
    (P.mul, lambda n: _is_one(n.inputs[0]), lambda n: n.inputs[1]),            # 1*x -> x
    (P.mul, lambda n: scalar_value(n.inputs[1]) == -1, lambda n: _neg(n, n.inputs[0])),  # x*-1 -> -x
    (P.div, lambda n: _is_one(n.inputs[1]), lambda n: n.inputs[0]),            # x/1 -> x
    (P.add, lambda n: _is_zero(n.inputs[1]), lambda n: n.inputs[0]),           # x+0 -> x
    (P.add, lambda n: _is_zero(n.inputs[0]), lambda n: n.inputs[1]),           # 0+x -> x
    (P.sub, lambda n: _is_zero(n.inputs[1]), lambda n: n.inputs[0]),           # x-0 -> x
    (P.sub, lambda n: _is_zero(n.inputs[0]), lambda n: _neg(n, n.inputs[1])),  # 0-x -> -x
    (P.add, lambda n: n.inputs[1].prim is P.neg,                               # x+(-y) -> x-y
     lambda n: Node(P.sub, (n.inputs[0], n.inputs[1].inputs[0]), {}, n.shape, n.dtype, n.loc, n.phase)),
    (P.neg, lambda n: n.inputs[0].prim is P.neg, lambda n: n.inputs[0].inputs[0]),   # --x -> x
    (P.stop_gradient, lambda n: True, lambda n: n.inputs[0]),   # no derivatives after this point
    (P.cast, lambda n: n.inputs[0].dtype == n.dtype, lambda n: n.inputs[0]),   # same-dtype cast
    (P.reshape, lambda n: n.inputs[0].shape == n.shape, lambda n: n.inputs[0]),   # no-op reshape
    (P.reshape, lambda n: n.inputs[0].prim is P.reshape,                       # reshape of reshape
     lambda n: _copy(n, (n.inputs[0].inputs[0],))),
    (P.broadcast_to, lambda n: n.inputs[0].shape == n.shape, lambda n: n.inputs[0]),
    (P.broadcast_to, lambda n: n.inputs[0].prim is P.broadcast_to,             # nested broadcasts
     lambda n: _copy(n, (n.inputs[0].inputs[0],))),
    (P.transpose, lambda n: n.params["perm"] == tuple(range(len(n.shape))), lambda n: n.inputs[0]),
    (P.transpose, lambda n: n.inputs[0].prim is P.transpose,                   # compose transposes
     lambda n: _compose_transposes(n)),
    (P.where, lambda n: n.inputs[1] is n.inputs[2], lambda n: n.inputs[1]),    # where(c,x,x) -> x
    (P.where, lambda n: scalar_value(n.inputs[0]) is True, lambda n: n.inputs[1]),   # where(1,x,y)
    (P.where, lambda n: scalar_value(n.inputs[0]) is False, lambda n: n.inputs[2]),  # where(0,x,y)
    (P.pow, lambda n: _is_one(n.inputs[1]), lambda n: n.inputs[0]),            # x**1 -> x
    (P.sum, lambda n: n.params["axes"] == (), lambda n: n.inputs[0]),
]


def _compose_transposes(node):
    inner = node.inputs[0]
    perm = tuple(inner.params["perm"][p] for p in node.params["perm"])
    x = inner.inputs[0]
    if perm == tuple(range(len(perm))):
        return x
    return Node(P.transpose, (x,), {"perm": perm}, node.shape, node.dtype, node.loc, node.phase)


def _swap_last_two(x):
    """x with its last two axes swapped, composed with x's own transpose if it is one."""
    n = len(x.shape)
    swap = swap_last_two(n)
    shape = x.shape[:-2] + (x.shape[-1], x.shape[-2])
    if x.prim is P.transpose:
        perm = tuple(x.params["perm"][p] for p in swap)
        if perm == tuple(range(n)):
            return x.inputs[0]
        return Node(P.transpose, x.inputs, {"perm": perm}, shape, x.dtype, x.loc, x.phase)
    return Node(P.transpose, (x,), {"perm": swap}, shape, x.dtype, x.loc, x.phase)


def transposed_products(graph):
    """(a @ b)^T (the last two axes swapped) is b^T @ a^T where the product has no other use: a
    product reads transposed operands in place, but its transposed result is a copy (the gradient
    of k in attention's q @ k^T comes out as one)."""
    uses = use_counts(graph)

    def visit(node, original):
        if node.prim is P.transpose and node.inputs[0].prim is P.matmul \
                and uses[original.inputs[0].id] == 1 \
                and node.params["perm"] == swap_last_two(len(node.shape)):
            a, b = node.inputs[0].inputs
            return Node(P.matmul, (_swap_last_two(b), _swap_last_two(a)), {}, node.shape,
                        node.dtype, node.loc, node.phase, node.name)
        return node
    return rewrite(graph, visit, originals=True)


_RULES_BY_PRIM = {}
for _prim, _cond, _repl in RULES:
    _RULES_BY_PRIM.setdefault(_prim.name, []).append((_cond, _repl))


def algebra(graph):
    def visit(node):
        for _ in range(8):     # a rewrite can enable another rule on the result
            for cond, repl in _RULES_BY_PRIM.get(node.prim.name, ()):
                if cond(node):
                    replacement = repl(node)
                    if replacement.shape != node.shape or replacement.dtype != node.dtype:
                        continue   # e.g. x*1 where x was broadcast by the 1: keep the node
                    node = replacement
                    break
            else:
                return node
        return node
    return rewrite(graph, visit)


# ---- common subexpressions -----------------------------------------------------------------------

def _hashable(value):
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes()) if value.size <= 64 else id(value)
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, np.dtype):
        return value.str
    return value


def cse(graph):
    seen = {}

    def visit(node):
        key = (node.prim.name, tuple(i.id for i in node.inputs), node.shape, node.dtype.str,
               tuple(sorted((k, _hashable(v)) for k, v in node.params.items())))
        return seen.setdefault(key, node)
    return rewrite(graph, visit)


def dce(graph):
    return Graph(graph.inputs, graph.outputs)


from .loop_simplify import merge_loops, prune_loops   # noqa: E402

PASSES = [fold_constants, algebra, cse, transposed_products, merge_loops, prune_loops, dce]


def simplify(graph, max_rounds=6):
    """Runs PASSES in order until the graph stops shrinking."""
    debug = os.environ.get("GRADC_DEBUG") == "1"
    for _ in range(max_rounds):
        before = len(graph.nodes)
        for simplify_pass in PASSES:
            graph = simplify_pass(graph)
            if debug:
                print(f"--- after {simplify_pass.__name__} ({len(graph.nodes)} nodes)\n{graph.as_text()}")
        if len(graph.nodes) == before:
            break
    return graph
