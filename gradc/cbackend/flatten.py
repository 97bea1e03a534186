"""A batch of products against one matrix as one product over the batch's rows (the lowering's
`flat_products` pass, for kernels the batch split leaves whole).

`x @ W` with x of shape (B, T, D) traces as B products of x[b] with copies of W (NumPy's
broadcasting), and W's gradient as the sum over b of x[b]^T @ g[b]. A GEMM over all B*T rows does
the same arithmetic in one call, and the gradient is one product over B*T, not B products summed.
The graph keeps the batched form until here because the batch split (split.py) follows a batch
axis through it, but not through a reshape that merges the batch with other axes."""
from ..ir import Node
from .. import primitives as P
from ..simplify import rewrite, swap_last_two, use_counts
from ..symbolic import prod
from .plan import is_view


def flat_products(graph):
    """graph with each product of a stack against one matrix, and each sum over a batch of
    products of a stack's transpose with another stack, as one product; graph itself where
    nothing changes or where the constants it passes would change order."""
    uses = use_counts(graph)
    changed = []

    def visit(node, original):
        flat = None
        if node.prim is P.matmul and len(node.shape) > 2:
            flat = _stack_times_matrix(node, node.inputs)
        elif node.prim is P.sum and original.inputs[0].prim is P.matmul \
                and uses[original.inputs[0].id] == 1:
            flat = _sum_over_a_batch_of_products(node, node.inputs[0])
        changed.append(flat is not None)
        return node if flat is None else flat
    flat = rewrite(graph, visit, originals=True)
    # NOTE: a kernel's constant arrays are passed in the order of the caller's graph.
    if not any(changed) or [n.id for n in _consts(flat)] != [n.id for n in _consts(graph)]:
        return graph
    return flat


def _consts(graph):
    return [n for n in graph.nodes if n.prim is P.const]


def _like(node, prim, inputs, params, shape):
    return Node(prim, inputs, params, tuple(shape), node.dtype, node.loc, node.phase)


def _one_matrix(x):
    """W where x is copies of a matrix W along a batch, W^T where x is those transposed; else None."""
    swapped = x.prim is P.transpose and x.params["perm"] == swap_last_two(len(x.shape))
    base = x.inputs[0] if swapped else x
    if base.prim is not P.broadcast_to or len(base.inputs[0].shape) != 2 \
            or tuple(base.inputs[0].shape) != tuple(base.shape[-2:]):
        return None
    w = base.inputs[0]
    return _like(w, P.transpose, (w,), {"perm": (1, 0)}, w.shape[::-1]) if swapped else w


def _stack_times_matrix(node, inputs):
    """a (B.., m, k) @ copies of W (k, n): reshape(a, (B..m, k)) @ W, reshaped back."""
    a, b = inputs
    w = _one_matrix(b)
    if w is None or is_view(a):       # a view would be copied to become rows
        return None
    rows = prod(a.shape[:-1])
    flat = _like(a, P.reshape, (a,), {"shape": (rows, a.shape[-1])}, (rows, a.shape[-1]))
    product = _like(node, P.matmul, (flat, w), {}, (rows, w.shape[1]))
    return _like(node, P.reshape, (product,), {"shape": tuple(node.shape)}, node.shape)


def _sum_over_a_batch_of_products(node, product):
    """sum over the batch of x[b]^T @ g[b]: reshape(x, (B..r, m))^T @ reshape(g, (B..r, n))."""
    if product.prim is not P.matmul:      # the product was made one product itself
        return None
    batch = len(product.shape) - 2
    t, g = product.inputs
    if batch < 1 or tuple(node.params["axes"]) != tuple(range(batch)) \
            or tuple(node.shape) != tuple(product.shape[-2:]) \
            or t.prim is not P.transpose or t.params["perm"] != swap_last_two(len(t.shape)):
        return None
    x = t.inputs[0]
    if is_view(x) or is_view(g):
        return None
    rows = prod(x.shape[:-1])
    xs = _like(x, P.reshape, (x,), {"shape": (rows, x.shape[-1])}, (rows, x.shape[-1]))
    xt = _like(x, P.transpose, (xs,), {"perm": (1, 0)}, (x.shape[-1], rows))
    gs = _like(g, P.reshape, (g,), {"shape": (rows, g.shape[-1])}, (rows, g.shape[-1]))
    return _like(node, P.matmul, (xt, gs), {}, node.shape)
