"""Batch split: a graph whose work is independent across the rows of a batch runs as `blocks` copies
of one smaller graph, one per thread, each on its own rows; what sums over the batch (a loss, the
gradient of a weight) comes out of each block as a partial sum, added up in block order after.

Every node gets a *label*: an axis (the node has the batch along that axis, and a block holds a
contiguous range of it), PARTIAL (a sum over the batch; a block holds its rows' share) or None
(replicated: it depends on no batched input, and every block computes it whole). The *block graph*
is the graph with each batched node's batch axis shortened to the block's rows. It is compiled like
any graph; the C backend's driver (emit.split_driver) gives each block its inputs' rows, its own
workspace, and adds up the partial outputs.

NOTE: an unrolled RNN is one long chain of small products on one core; rnn[16]'s kernel takes
~66 us for a batch of 16 rows and ~37 us for 8 (MKL's small-product kernels near the core's
peak), so two blocks of 8 run in about half the time."""
import itertools
from dataclasses import dataclass

import numpy as np

from ..ir import Graph, Node, repeated_value
from .plan import PARALLEL_MIN, is_small_product
from .. import symbolic
from ..symbolic import prod

PARTIAL = "partial"
ELEMENTWISE = ("unary", "binary", "ternary", "compare")
# Ops linear in each one of these inputs when the others are fixed (a partial sum times a
# replicated value is the partial of the product); other linear ops say so in `linear_args`.
BILINEAR = {"mul": (0, 1), "div": (0,), "matmul": (0, 1)}
# Work (see `work`) a kernel would do on one thread, below which a split costs more than it saves.
# NOTE: measured on the unrolled RNN (H=64, 2 cores): threads cost ~5 us a call (their start, and
# the partial sums crossing between cores); at 4e5 (1 step, batch 16) 5.8 us split vs 4.9 us, at
# 2e6 (4 steps) even, at 4e6 (4 steps, batch 32) 24 vs 34 us, at 8.5e6 (rnn[16]) 44 vs 68 us.
SPLIT_MIN_WORK = 3_000_000
MAX_ASSIGNMENTS = 64       # ways of choosing the batched inputs' axes tried before giving up
# NOTE: the smallest block measured to run in proportion to its rows (rnn, H=64: 8 rows 37.5 us,
# 16 rows 66 us); more than two blocks are cut no smaller than this.
MIN_BLOCK_ROWS = 8


class Unsplittable(Exception):
    """The graph mixes the rows of the batch (or its partial sums) in a way blocks cannot."""


@dataclass
class Split:
    graph: object          # the original graph
    block: object          # the block graph: inputs, outputs in the same order as graph's
    blocks: int
    size: int              # rows of the batch
    labels: dict           # original node id -> axis | PARTIAL | None
    origin: dict           # block-graph const id -> the original const that holds its data

    @property
    def rows(self):
        return self.size // self.blocks

    def input_axis(self, i):
        return self.labels[self.graph.inputs[i].id]

    def output_label(self, i):
        return self.labels[self.graph.outputs[i].id]


def find_split(graph, blocks):
    """A Split of graph into `blocks` blocks of its batch, or None. Candidate batches are the input
    dimensions that `blocks` divides; an input takes the batch along one of its axes of that size
    or is replicated. The first assignment that labels every node is used, trying those with the
    fewest batched inputs first."""
    sizes = sorted({d for n in graph.inputs for d in n.shape if d % blocks == 0 and d >= blocks},
                   reverse=True)
    for size in sizes:
        # Fewest batched inputs first: a weight that happens to have the batch's size stays whole.
        choices = [[None] + [a for a, d in enumerate(n.shape) if d == size] for n in graph.inputs]
        for axes in itertools.islice(itertools.product(*choices), MAX_ASSIGNMENTS):
            if all(a is None for a in axes):
                continue
            try:
                return _build(graph, blocks, size, axes)
            except Unsplittable:
                continue
    return None


def _build(graph, blocks, size, input_axes):
    rows = size // blocks
    labels, block, origin = {}, {}, {}
    builder = _Builder(rows, block, origin)
    for node, axis in zip(graph.inputs, input_axes):
        labels[node.id] = axis
        block[node.id] = node if axis is None else builder.node(node, (), axis)
    for node in graph.nodes:
        if node.id in labels:
            continue
        ins = [labels[x.id] for x in node.inputs]
        if node.prim.kind == "source" or all(x is None for x in ins):
            labels[node.id], block[node.id] = None, node       # replicated: the node itself
            continue
        label = _label(node, ins, size)
        labels[node.id] = label
        block[node.id] = builder.build(node, label, ins)
    outputs = [block[o.id] for o in graph.outputs]
    if all(labels[o.id] is None for o in graph.outputs):
        raise Unsplittable("no output depends on the batch")
    return Split(graph, Graph([block[n.id] for n in graph.inputs], outputs), blocks, size, labels,
                 origin)


def _label(node, ins, size):
    """The label of a node with at least one batched or partial input."""
    if PARTIAL in ins:
        return _partial_label(node, ins)
    axes = {a for a in ins if a is not None}
    kind, c = node.prim.kind, node.prim.c
    if kind in ELEMENTWISE:
        if len(axes) > 1:
            raise Unsplittable(f"{node.prim.name}: operands batched along different axes")
        return axes.pop()        # replicated operands are checked (and shortened) by the builder
    if len(axes) > 1 and kind not in ("matmul", "shape", "gather", "scatter"):
        raise Unsplittable(node.prim.name)
    a = ins[0]
    p = node.params
    if kind == "reduce":
        if a is None:
            raise Unsplittable(node.prim.name)
        reduced = p["axes"] if c in ("sum", "max") else \
            (tuple(range(len(node.inputs[0].shape))) if p["axis"] is None else (p["axis"],))
        if a in reduced:
            if c != "sum":
                raise Unsplittable(f"{node.prim.name} across the batch")
            return PARTIAL
        return a - sum(1 for r in reduced if r < a)
    if c == "reshape":
        before = prod(node.inputs[0].shape[:a])
        for b, d in enumerate(node.shape):
            if d == size and prod(node.shape[:b]) == before:
                return b
        raise Unsplittable("reshape that mixes the batch with other dimensions")
    if c == "broadcast":
        return a + len(node.shape) - len(node.inputs[0].shape)
    if c == "transpose":
        return p["perm"].index(a)
    if c in ("slice", "unslice"):
        whole = (p["starts"][a], p["stops"][a], p["steps"][a]) == (0, size, 1)
        if not whole:
            raise Unsplittable("slice of the batch")
        return a
    if c == "concatenate":
        if None in ins or len(axes) > 1 or p["axis"] == a:
            raise Unsplittable("concatenate")
        return a
    if kind == "gather":        # rows of a replicated table looked up by batched indices
        index_axes = set(ins[1:])
        if ins[0] is not None or len(index_axes) > 1 or None in index_axes:
            raise Unsplittable("gather from batched data")
        return index_axes.pop()
    if kind == "scatter":       # batched rows added into a replicated table: each block adds its own
        if len(set(ins)) > 1:
            raise Unsplittable("scatter_add")
        return PARTIAL
    if kind == "matmul":
        n = len(node.shape)
        la, lb = ins
        if la is not None and lb is not None:
            if la == n - 1 and lb == n - 2:
                return PARTIAL               # the batch is the contraction: a partial sum
            if la == lb < n - 2:
                return la
            raise Unsplittable("matmul")
        if la is not None and la == n - 2:
            return la                        # rows of A
        if lb is not None and lb == n - 1:
            return lb                        # columns of B
        raise Unsplittable("matmul over a batched contraction or batch dimension")
    raise Unsplittable(node.prim.name)


def _partial_label(node, ins):
    """Partial sums go through ops linear in them, with the other operands replicated."""
    if any(a is not None and a != PARTIAL for a in ins):
        raise Unsplittable(f"{node.prim.name} of a partial sum and batched rows")
    partial = {i for i, a in enumerate(ins) if a == PARTIAL}
    if node.prim.name in BILINEAR:
        if len(partial) == 1 and partial <= set(BILINEAR[node.prim.name]):
            return PARTIAL
        raise Unsplittable(f"{node.prim.name} of partial sums")
    linear = node.prim.linear_args
    linear = set(range(len(ins))) if linear is None else set(linear)
    exact = node.prim.name != "cast" or node.dtype.kind == "f"      # no rounding to integers
    if node.prim.transpose is not None and exact and partial == linear & set(range(len(ins))):
        return PARTIAL
    raise Unsplittable(f"{node.prim.name} of a partial sum")


class _Builder:
    """Makes the block graph's nodes: batched nodes with the batch axis shortened to `rows`."""

    def __init__(self, rows, block, origin):
        self.rows, self.block, self.origin = rows, block, origin

    def node(self, node, inputs, axis, params=None):
        shape = list(node.shape)
        if axis is not None and axis != PARTIAL:
            shape[axis] = self.rows
        return Node(node.prim, inputs, node.params if params is None else params, shape,
                    node.dtype, node.loc, node.phase, node.name)

    def build(self, node, label, ins):
        if label == PARTIAL:
            inputs = [self.block[x.id] for x in node.inputs]
            return self.node(node, inputs, None, self._params(node, label, ins))
        if node.prim.kind in ELEMENTWISE:
            inputs = [self.block[x.id] if a is not None else self.replicated(x, label)
                      for x, a in zip(node.inputs, ins)]
        else:
            inputs = [self.block[x.id] for x in node.inputs]
        return self.node(node, inputs, label, self._params(node, label, ins))

    def _params(self, node, label, ins):
        p = dict(node.params)
        if "shape" in p and label != PARTIAL:          # reshape, broadcast, unslice: the result's
            p["shape"] = tuple(self.rows if i == label else d for i, d in enumerate(p["shape"]))
        if node.prim.c in ("slice", "unslice") and ins[0] not in (None, PARTIAL):
            a = ins[0]
            p["stops"] = tuple(self.rows if i == a else s for i, s in enumerate(p["stops"]))
        return p

    def replicated(self, x, axis):
        """A replicated value read beside batched rows: the same for every row of the batch (a
        broadcast along it, or a constant of one value), shortened to a block's rows."""
        if x.prim.name == "const":
            value = repeated_value(x.params["value"])
            if value is None:
                raise Unsplittable("a constant array beside batched rows")
            shape = tuple(self.rows if i == axis else d for i, d in enumerate(x.shape))
            const = self.node(x, (), axis, {"value": np.full(shape, value, x.dtype)})
            self.origin[const.id] = x
            return const
        if x.prim.c == "broadcast":
            y = x.inputs[0]
            lead = len(x.shape) - len(y.shape)
            if axis >= lead and y.shape[axis - lead] != 1:
                raise Unsplittable("a replicated array beside batched rows")
            return self.node(x, (y,), axis, dict(x.params, shape=tuple(
                self.rows if i == axis else d for i, d in enumerate(x.params["shape"]))))
        if x.prim.kind in ELEMENTWISE:
            return self.node(x, [self.replicated(y, axis) for y in x.inputs], axis)
        if x.prim.c == "transpose":
            y = self.replicated(x.inputs[0], x.params["perm"][axis])
            return self.node(x, (y,), axis)
        raise Unsplittable("a replicated array beside batched rows")


def work(node):
    """A rough cost of computing a node: flops of a product, points of a loop."""
    if node.prim.c == "matmul":
        m, k = node.inputs[0].shape[-2:]
        return 2 * prod(node.shape[:-2]) * m * k * node.shape[-1]
    if node.prim.kind in ELEMENTWISE or node.prim.kind == "reduce":
        return node.inputs[0].size
    return 0


def single_thread_work(node):
    """The work of a node the kernel would do on one thread: small products, small loops."""
    if node.prim.c == "matmul":
        return work(node) if is_small_product(node) else 0
    return work(node) if work(node) < PARALLEL_MIN else 0


def choose(graph, threads):
    """The batch split for a kernel on up to `threads` threads, if the graph splits and pays for
    the threads: at least SPLIT_MIN_WORK of work that would run on one thread, at most a tenth of
    all work done again in every block (the replicated nodes). The most blocks the work pays for,
    not one per core: more than two only with SPLIT_MIN_WORK / 2 of that work and MIN_BLOCK_ROWS
    rows per block (16 blocks of one row made rnn[64] 1.5x slower on 16 cores)."""
    if any(symbolic.any_symbolic(n.shape) for n in graph.inputs):
        return None         # TODO: blocks of a named batch (their rows known at run time)
    serial = sum(single_thread_work(n) for n in graph.nodes)
    if threads < 2 or serial < SPLIT_MIN_WORK:
        return None
    total = sum(work(n) for n in graph.nodes)
    for blocks in range(threads, 1, -1):
        if blocks > 2 and serial < blocks * SPLIT_MIN_WORK / 2:
            continue
        split = find_split(graph, blocks)
        if split is None or (blocks > 2 and split.rows < MIN_BLOCK_ROWS):
            continue
        replicated = sum(work(n) for n in graph.nodes if split.labels[n.id] is None)
        if replicated * 10 <= total:
            return split
    return None
