"""The interpreted engine (backend="numpy"): runs a graph node by node with the primitives' NumPy
implementations. It is the reference the C backend is tested against."""
import numpy as np

from . import core, symbolic


def last_uses(graph):
    """Maps node id -> index in the schedule of its last consumer (outputs live to the end)."""
    last = {}
    for i, node in enumerate(graph.nodes):
        for inp in node.inputs:
            last[inp.id] = i
    for out in graph.outputs:
        last[out.id] = len(graph.nodes)
    return last


def run(graph, inputs, sizes=None):
    """Evaluates graph on NumPy input arrays; returns fresh output arrays. `sizes` gives the
    values of named dimensions ({name: int}, {} for none); None: found from the inputs."""
    # NOTE: gc.where evaluates both branches, so the unused one may divide by zero: no warnings.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _run(graph, inputs, sizes)


def sizes_of(graph, inputs, shapes=None):
    """{name: size} of the graph's named dims from the input arrays, or from their `shapes`
    (None if it has none)."""
    if not symbolic.dim_names(graph):
        return None
    shapes = [np.shape(a) for a in inputs] if shapes is None else shapes
    return symbolic.bind_sizes(shapes, [n.shape for n in graph.inputs],
                               [n.name or f"arg{i}" for i, n in enumerate(graph.inputs)])


def _run(graph, inputs, sizes):
    sizes = sizes if sizes is not None else sizes_of(graph, inputs)
    env = {}
    last = last_uses(graph)
    for node, value in zip(graph.inputs, inputs):
        env[node.id] = value
    try:
        for i, node in enumerate(graph.nodes):
            if node.prim.name == "input":
                continue
            if node.prim.name == "const":
                env[node.id] = node.params["value"]
                continue
            args = [env[inp.id] for inp in node.inputs]
            params = symbolic.substitute(node.params, sizes) if sizes else node.params
            out = np.asarray(node.prim.impl(*args, **params))
            env[node.id] = out if out.dtype == node.dtype else out.astype(node.dtype)
            for inp in node.inputs:   # free values nobody needs any more
                if last.get(inp.id) == i:
                    env.pop(inp.id, None)
    except np.linalg.LinAlgError as e:      # name the op and the user's line, as the C backend
        from .linalg import failed
        raise failed([node], str(e)) from None
    # Fresh, contiguous outputs: never an input, a constant or a view of one.
    return [np.array(env[out.id], copy=True, order="C") for out in graph.outputs]


def evaluate(graph, inputs):
    """Yields (node, its input values, its value) for every node in schedule order, inputs first:
    the interpreter one step at a time, for tools that look at every value (debug_nans, gc.check).
    A value is dropped once no later node needs it, unless the caller keeps it."""
    env = {node.id: np.asarray(value) for node, value in zip(graph.inputs, inputs)}
    last = last_uses(graph)
    sizes = sizes_of(graph, inputs)
    with np.errstate(all="ignore"):
        for i, node in enumerate(graph.nodes):
            args = [env[inp.id] for inp in node.inputs]
            if node.prim.name == "const":
                env[node.id] = node.params["value"]
            elif node.prim.name != "input":
                params = node.params if sizes is None else symbolic.substitute(node.params, sizes)
                out = np.asarray(node.prim.impl(*args, **params))
                env[node.id] = out if out.dtype == node.dtype else out.astype(node.dtype)
            yield node, args, env[node.id]
            for inp in node.inputs:
                if last.get(inp.id) == i:
                    env.pop(inp.id, None)


def replay(graph, inputs):
    """Re-applies graph's nodes through core.bind: records them into the enclosing trace (inside
    gc.jit or another transform) or onto the eager tape (gc.Tensor inputs)."""
    env = {node.id: _as_input(value, node) for node, value in zip(graph.inputs, inputs)}
    trace = core.top_trace(inputs)
    for node in graph.nodes:
        if node.prim.name == "input":
            continue
        with core.origin(node.loc, node.phase):    # replayed nodes keep the line that made them
            if node.prim.name == "const":    # stays a node when tracing, so it is not folded eagerly
                value = node.params["value"]
                env[node.id] = value if trace is None else core.Tracer(trace.node_of(value), trace)
                continue
            if not node.inputs:     # a named size's value, an iota: of the enclosing trace
                env[node.id] = core.bind_in(trace, node.prim, **node.params)
                continue
            env[node.id] = core.bind(node.prim, *[env[i.id] for i in node.inputs], **node.params)
    return [env[out.id] for out in graph.outputs]


def _as_input(value, node):
    """A concrete argument (a Python scalar, a list) as an array of its input node's dtype."""
    if isinstance(value, (core.Tracer, np.ndarray)) or type(value).__name__ == "Tensor":
        return value
    return np.asarray(value, dtype=node.dtype)
