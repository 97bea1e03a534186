"""debug_nans: when a call's outputs hold a NaN or Inf, replay its graph on the interpreter with the
same inputs and name the first node that made a non-finite value from finite ones.

Nothing here runs unless asked (`gc.jit(fn, debug_nans=True)` or GRADC_DEBUG_NANS=1): the check
is a step of the general call path, which such a function always takes."""
import os

import numpy as np

from .errors import NonFiniteError
from .interpreter import evaluate
from .ir import describe_phase

ELEMENTWISE = ("unary", "binary", "ternary", "compare")


def enabled_by_env():
    return os.environ.get("GRADC_DEBUG_NANS", "") not in ("", "0")


def _finite(value):
    value = np.asarray(value)
    return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())


def check(lowered, leaves, outs):
    """Raises NonFiniteError if an output holds a NaN or Inf made inside the graph."""
    if all(_finite(o) for o in outs):
        return
    origin = find_origin(lowered.graph, leaves)
    fn_name = getattr(lowered.fn, "__name__", "function")
    bad = [i for i, o in enumerate(outs) if not _finite(o)]
    names = [lowered.out_names[i] if i < len(lowered.out_names) else f"out{i}" for i in bad]
    what = f"{fn_name} returned {_kinds(outs[bad[0]])} in {', '.join(names)}"
    if origin is None:
        if all(_finite(v) for v in leaves):
            raise NonFiniteError(f"{what}, but the interpreter (backend='numpy') computes finite "
                                 "values from the same inputs: the backends disagree; "
                                 "gc.check(fn, *args) names the node where they part.")
        return      # the non-finite values came in with the inputs
    raise NonFiniteError(f"{what}; {origin.args[0]}", op=origin.op, phase=origin.phase,
                         loc=origin.loc, node=origin.node)


def find_origin(graph, inputs):
    """The NonFiniteError for the first node (schedule order) that made a non-finite value from
    finite inputs and whose non-finite values reach a non-finite output; None if there is none."""
    names = graph._names()
    bad, candidates = set(), {}
    for node, args, value in evaluate(graph, inputs):
        if _finite(value):
            continue
        bad.add(node.id)
        if node.prim.name != "input" and not any(inp.id in bad for inp in node.inputs):
            candidates[node.id] = _error(node, names, args, value)
    # Only non-finite values that reach the outputs count: a where may mask an inf it never picks.
    reach, stack = set(), [o for o in graph.outputs if o.id in bad]
    while stack:
        node = stack.pop()
        if node.id in reach:
            continue
        reach.add(node.id)
        stack += [inp for inp in node.inputs if inp.id in bad]
    for node in graph.nodes:
        if node.id in reach and node.id in candidates:
            return candidates[node.id]
    return None


def _error(node, names, inputs, value):
    op = node.prim.name
    phase = describe_phase(node.phase)
    args = " ".join(names[i.id] for i in node.inputs)
    line = f"{names[node.id]}:{node.type_str} = {op} {args}".rstrip()
    message = (f"the first {_kinds(value)} was made by `{op}` in {phase} at {node.loc}, from finite "
               f"values:\n    {line}\n    {_excerpt(node, inputs, value)}")
    return NonFiniteError(message, op=op, phase=phase, loc=node.loc, node=node)


def _kinds(value):
    value = np.asarray(value)
    kinds = [k for k, test in (("nan", np.isnan), ("inf", np.isinf)) if test(value).any()]
    return " and ".join(kinds) or "a non-finite value"


def _show(x):
    return np.array2string(np.asarray(x), precision=6, threshold=6, edgeitems=3)


def _excerpt(node, inputs, value):
    """`log(0.0) = -inf at [2] (1 of 3 elements)` for elementwise ops, else value summaries."""
    flat = np.asarray(value).reshape(-1)
    where = np.flatnonzero(~np.isfinite(flat))
    count = f"{len(where)} of {flat.size} element{'s' if flat.size != 1 else ''}"
    if node.prim.kind in ELEMENTWISE and all(np.shape(x) == np.shape(value) for x in inputs):
        k = int(where[0])
        index = np.unravel_index(k, np.shape(value)) if np.ndim(value) else ()
        args = ", ".join(repr(np.asarray(x).reshape(-1)[k].item()) for x in inputs)
        at = f" at {list(map(int, index))}" if index else ""
        return f"{node.prim.name}({args}) = {flat[k].item()!r}{at} ({count})"
    parts = [f"input {j}: {_show(x)}" for j, x in enumerate(inputs)]
    return f"output: {_show(value)} ({count}); " + "; ".join(parts)
