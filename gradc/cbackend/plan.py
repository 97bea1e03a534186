"""The C backend's plan of a graph and its vocabulary: which nodes fuse into which loop nest, which
values need memory, where each lives in the workspace, how each step runs (threads, blocking). The
passes of lower.py fill it in; emit.py walks it. No C text here.

Vocabulary: elementwise nodes and reductions are *members* of a Loop over an iteration domain;
views (broadcast, transpose, slice, reshapes that only add or drop 1s) are index maps folded into
the reads; a *flat reshape* (one that regroups dimensions) reinterprets a stored, contiguous value;
everything else (matmul, gather, ...) is a Call of its own. In a sum of products of one shape (the
gradient of a weight used at every step of an unrolled loop) each product is a Call that writes
(the first) or adds (GEMM with beta = 1) into the sum's memory; the sums in between get no step."""
from dataclasses import dataclass, field

import numpy as np

from ..ir import _letters, repeated_value
from .. import symbolic
from ..symbolic import Dim, prod

ELEMENTWISE = ("unary", "binary", "ternary", "compare")
VIEWS = ("reshape", "broadcast", "transpose", "slice")     # C forms that only remap indices
REDUCTIONS = ("sum", "max")                                 # C forms fused into loop nests
ALIGN = 64
# Products below either size run single-threaded through a kernel made for their shape (MKL's JIT;
# gradc_blas.h). Measured with MKL on 2 cores: 256x10x784 42 us on one thread vs 69 us on two,
# 16x64x64 0.78 us vs 1.0 us through cblas; 64x256x784 needs both threads (96 vs 159 us).
SMALL_GEMM_OUTPUT = 8192         # elements of the product
SMALL_GEMM_MACS = 1 << 21        # multiply-adds
# NOTE: with OpenBLAS on one thread (2-core AMD), splitting products of 1M-2M multiply-adds by rows
# took softmax[256] 178 -> 102 us (its 256x10x784 and 784x10x256) and the transformer 2.83 -> 2.68 ms.
SPLIT_MACS = 1 << 20             # products at least this big are shared among threads
PARALLEL_MIN = 1 << 16           # loop points below which a second thread costs more than it saves
PARTIALS_MAX_BYTES = 16384       # per-thread copies of a result kept on the stack, at most
# NOTE: big loops and products run as this many chunks a thread (each at least PARALLEL_MIN points
# or MIN_BLOCK_ROWS rows): with one chunk a thread, a thread sharing its core with another process
# (running half the time) made elem[1e7] 1.43x and mlp[1024] 1.70x slower than one thread.
CHUNKS_PER_THREAD = 4
NAMED_BLOCKS = 0                 # Call.blocks of a product whose rows are named: chosen at run time
MIN_BLOCK_COLS = 64              # columns of a block of a product
MIN_BLOCK_ROWS = 128             # rows of a block of a product (98 rows: 8% slower in total)


def domain_of(shape):
    """The iteration space of a shape: its dimensions other than 1 ((5,1) and (5,) loop alike)."""
    return tuple(d for d in shape if d != 1)


def is_flat_reshape(node):
    """A reshape that really regroups dimensions (not just adding or removing 1s)."""
    return node.prim.c == "reshape" and domain_of(node.shape) != domain_of(node.inputs[0].shape)


def is_view(node):
    return node.prim.kind == "shape" and node.prim.c in VIEWS and not is_flat_reshape(node)


def is_fusible(node):
    return node.prim.kind in ELEMENTWISE


def is_reduction(node):
    return node.prim.kind == "reduce" and node.prim.c in REDUCTIONS


def product_shape(node):
    """(m, k, n) of a matmul: op(A) is m x k, op(B) k x n (per batch element)."""
    a, b = node.inputs
    return a.shape[-2], a.shape[-1], b.shape[-1]


def is_small_shape(m, k, n):
    if symbolic.any_symbolic((m, k, n)):
        return False        # a named size may be large: the general GEMM
    return m * n < SMALL_GEMM_OUTPUT or m * n * k < SMALL_GEMM_MACS


def is_small_product(node):
    return is_small_shape(*product_shape(node))


def thread_blocks(node, threads, k=None, spread=True):
    """How a product of SPLIT_MACS multiply-adds or more (its whole batch) is shared among threads:
    where each member is that big, ("cols", blocks) if it has more columns than rows, else
    ("rows", blocks), where they divide among the threads (a few blocks a thread where they keep
    MIN_BLOCK_COLS or MIN_BLOCK_ROWS); else ("batch", blocks) for a batch (a block is a range of
    its members); else ("k", threads) where its blocks of k are small (each thread
    adds its part to a copy on the stack); else ("", 1). A block runs MKL's kernel for its shape
    where it is small; the BLAS itself runs on one thread (OpenBLAS always, MKL inside a region).

    NOTE: measured inside the mlp[1024] kernel (MKL, 2 cores): 1024x10x256 42 -> 31 us and
    1024x256x10 77 -> 42 us against cblas's own threads; 256x10x1024 68 -> 37 us against one
    thread. A thread's rows are also the rows the loops before and after it handle on that core.
    Blocks of k only if the operands are `spread` over the cores' caches (inputs, or written by
    all threads): rnn[64]'s stacked weight gradients, written step by step on one core, took
    263 -> 303 us split. `k` overrides the product's own (a stacked sum's). By the batch: the
    transformer's attention products (8 of 128x64x128 a call) took it 3.39 -> 2.83 ms (2-core
    AMD, OpenBLAS); with 128x64x128 split by rows or by the batch, the same (2.72-2.76 ms). Each
    block packs all of the operand it does not split: by columns, mlp[64]'s 64x256x784 packs W1
    once, not per block (318-325 -> 312-316 us a step)."""
    m, k_own, n = product_shape(node)
    k = k or k_own
    if threads >= 2 and isinstance(m, Dim) and not symbolic.any_symbolic((k, n)):
        return "rows", NAMED_BLOCKS        # how many: gradc_row_blocks, when the kernel runs
    if threads < 2 or isinstance(m, Dim):
        return "", 1
    named = symbolic.any_symbolic((k, n))  # a named k or n: taken to be big (split by rows)
    batch = prod(node.shape[:-2])
    chunks = threads * CHUNKS_PER_THREAD
    by_rows = "rows", chunks if m % chunks == 0 and m // chunks >= MIN_BLOCK_ROWS else threads
    if named:
        return by_rows if m % threads == 0 else ("", 1)
    if isinstance(batch, Dim) or batch * m * n * k < SPLIT_MACS:
        return "", 1
    if m * n * k >= SPLIT_MACS and n > m and n % threads == 0:
        return "cols", chunks if n % chunks == 0 and n // chunks >= MIN_BLOCK_COLS else threads
    if m * n * k >= SPLIT_MACS and m % threads == 0:
        return by_rows
    if batch >= 2:
        return "batch", min(batch, chunks)
    copies = (threads - 1) * node.size * node.dtype.itemsize
    if spread and k % threads == 0 and copies <= PARTIALS_MAX_BYTES:
        return "k", threads
    return "", 1


def is_source(node):
    return node.prim.kind == "source"


@dataclass
class Loop:
    """One fused loop nest over `domain`: elementwise members computed per point, reductions
    accumulated across it. The schedule pass fills in how it runs: `flat` (one loop over all
    points), `threads`, `chunks` (the pieces its threads share: ranges of the outer loop, chunk
    t the same range whichever thread runs it), `accum` (reduction id -> depth of its local
    accumulator, None: it sums into memory), `partials` (reductions summed into a copy per
    chunk), and how the innermost loop may be vectorised: `simd_sums` (the ids of the sums it
    carries, which `omp simd` may reorder) or `ivdep` (its iterations are independent)."""
    domain: tuple
    index: int
    members: list = field(default_factory=list)
    flat: bool = False
    threads: int = 1
    named_threads: bool = False    # threads decided at run time from named sizes, at most `threads`
    chunks: int = 1
    accum: dict = field(default_factory=dict)
    partials: frozenset = frozenset()
    simd_sums: tuple = ()
    ivdep: bool = False

    @property
    def vars(self):
        return [f"i{k}" for k in range(len(self.domain))]


@dataclass
class Call:
    """A node lowered on its own: matmul (BLAS), gather, scatter_add, concatenate, ...; a matmul
    with `into` is one term of a sum of products, written (beta 0) or added (beta 1) into the
    memory of the sum `into`; with `terms`, the terms of a stacked sum (stack.py) as one GEMM.
    The schedule pass sets `blocks` for a product shared among threads (`axis` "rows", "cols",
    "batch" or "k")."""
    node: object
    index: int
    into: object = None
    beta: int = 0
    terms: list = None
    axis: str = ""
    blocks: int = 1

    def reads(self):
        return [x for term in (self.terms or [self.node]) for x in term.inputs]


@dataclass
class Plan:
    """The C lowering of one graph, filled in pass by pass (lower.PASSES); emission walks it."""
    graph: object
    threads: int = 1            # OpenMP threads the kernel may use
    split: object = None        # the batch split (split.py); `graph` is then its block graph
    folded: dict = field(default_factory=dict)      # matmul operand id -> (stored node,
    #                                                 transposed, element offset)
    materialized: set = field(default_factory=set)  # ids of views computed into memory
    alias_of: dict = field(default_factory=dict)    # flat reshape id -> node whose memory it is
    term_of: dict = field(default_factory=dict)     # matmul id -> the sum of products it adds to
    absorbed: set = field(default_factory=set)      # adds of sums of products (no step)
    stacks: dict = field(default_factory=dict)      # sum id -> Stack (one GEMM over stacked k)
    groups: list = field(default_factory=list)      # node ids placed side by side (stack.py)
    steps: list = field(default_factory=list)       # Loop and Call, in execution order
    step_of: dict = field(default_factory=dict)     # node id -> index of the step computing it
    first_write: dict = field(default_factory=dict)  # sum id -> first step writing its memory
    stored: set = field(default_factory=set)        # computed nodes whose values live in memory
    output_of: dict = field(default_factory=dict)   # stored node id -> output index it writes
    output_copies: list = field(default_factory=list)   # (output index, node) copied at the end
    offsets: dict = field(default_factory=dict)     # node id -> workspace byte offset
    workspace_bytes: int = 0
    spread: set = field(default_factory=set)        # ids of values written by all threads
    outlined: dict = field(default_factory=dict)    # step index -> its repeated-step signature
    bodies: dict = field(default_factory=dict)      # step index of a loop node -> its LoopBody

    def as_text(self):
        """The plan, one step a line: what runs, on how many threads, where values live."""
        names = {n.id: _letters(i) for i, n in enumerate(self.graph.nodes)}
        lines = [f"plan: {len(self.steps)} steps, {self.workspace_bytes} bytes of workspace, "
                 f"{self.threads} thread{'s' if self.threads > 1 else ''}" + (f", batch split in {self.split.blocks} blocks of "
                                               f"{self.split.rows} rows" if self.split else "")]
        functions = {}
        for step in self.steps:
            if isinstance(step, Loop):
                how = [f"{step.threads} threads, {step.chunks} chunks"] if step.threads > 1 else []
                how += ["flat"] if step.flat else []
                how += ["simd sums " + ",".join(names[i] for i in step.simd_sums)] \
                    if step.simd_sums else (["ivdep"] if step.ivdep else [])
                text = f"loop {list(step.domain)}" + (f" ({', '.join(how)})" if how else "")
                parts = []
                for m in step.members:
                    part = f"{names[m.id]} = {m.prim.name}"
                    if m.id in step.accum:
                        depth = step.accum[m.id]
                        part += (" [into memory]" if depth is None else f" [acc depth {depth}]") \
                            + (" [per thread]" if m.id in step.partials else "")
                    parts.append(part)
                text += ": " + "; ".join(parts)
            else:
                node = step.node
                text = f"call {node.prim.c} {names[node.id]}"
                if step.terms:
                    text += f" (sum of {len(step.terms)} products stacked along k)"
                if step.into is not None:
                    text += f" {'+' if step.beta else ''}= into {names[step.into.id]}"
                if step.blocks > 1:
                    text += f" ({step.blocks} threads by {step.axis})"
                folded = [f"{names[x.id]} as {names[base.id]}" + ("^T" if trans else "")
                          + (f"+{offset}" if offset else "")
                          for x in node.inputs if x.id in self.folded
                          for base, trans, offset in [self.folded[x.id]]
                          if base is not x or trans or offset]
                text += f" [reads {', '.join(folded)}]" if folded else ""
            key = self.outlined.get(step.index)
            if key is not None:
                functions.setdefault(key, len(functions))
                text += f"  -> outlined step{functions[key]}"
            lines.append(f"  {step.index:>3}: {text}")
            if step.index in self.bodies:          # a loop's body: its own plan, run per step
                body = self.bodies[step.index]
                lines.append(f"       body, scratch ws+{body.scratch} ({body.size} bytes):")
                lines += ["       " + line for line in body.plan.as_text().splitlines()]
        where = []
        for node in self.graph.nodes:
            if node.id in self.output_of:
                where.append(f"{names[node.id]}:out{self.output_of[node.id]}")
            elif node.id in self.offsets:
                where.append(f"{names[node.id]}:ws+{self.offsets[node.id]}")
        if where:
            lines.append("  memory: " + " ".join(where))
        return "\n".join(lines)


@dataclass
class LoopBody:
    """A loop node's body (gc.scan), lowered by the same passes into its own Plan; its step runs
    the body's kernel once per iteration. Scratch memory, at byte `scratch` of the workspace: the
    carries twice (`carries`: (current, next) offsets, swapped each step), a slot for each per-step
    output the node does not return (`dropped`: output number -> offset; rewritten each step), and
    the body's workspace at `work` (reused each step). `placed`: selected output number -> its
    element offset in the node's (packed) memory."""
    plan: object
    scratch: int
    carries: list
    dropped: dict
    work: int
    placed: dict
    size: int                 # bytes of scratch


def resolve(node, alias_of):
    """The node that owns the memory a (possibly flat-reshaped) value lives in."""
    while node.id in alias_of:
        node = alias_of[node.id]
    return node


def read_base(node, materialized=frozenset()):
    """Follows views down to the value a read actually touches (a stored node, a loop member, a
    source or a flat reshape); `identity` is False once an index map is not the identity."""
    identity = True
    while is_view(node) and node.id not in materialized:
        if node.prim.c != "reshape":
            identity = False
        node = node.inputs[0]
    return node, identity


def dependencies(node, domain, materialized):
    """(base, read at the loop's own point?) for each input of a loop member."""
    out = []
    remaps = is_view(node) and node.prim.c != "reshape"     # a materialized view reads elsewhere
    for inp in node.inputs:
        base, identity = read_base(inp, materialized)
        identity = identity and not remaps
        same_point = (identity and not is_flat_reshape(base)
                      and domain_of(base.shape) == domain)
        out.append((base, same_point))
    return out


def _matmul_operand(node):
    """(stored node, transposed) when a matmul operand needs no copy: a contiguous value, possibly
    reshaped by 1s, or the swap of its last two axes (folded into the GEMM call)."""
    transposed = False
    if node.prim.c == "transpose":
        perm, n = node.params["perm"], len(node.shape)
        if n < 2 or perm != tuple(range(n - 2)) + (n - 1, n - 2):
            return None
        node, transposed = node.inputs[0], True
    while is_view(node) and node.prim.c == "reshape":
        node = node.inputs[0]
    offset = 0
    if node.prim.c == "slice":          # e.g. xs[t]: a contiguous block, passed as base + offset
        offset = contiguous_slice_offset(node)
        if offset is None:
            return None
        node = node.inputs[0]
    return None if is_view(node) else (node, transposed, offset)


def contiguous_slice_offset(node):
    """The element offset of a slice that is one contiguous block of its input, else None: size 1
    on the leading axes, a unit-step range on one axis, whole axes after it."""
    x, p = node.inputs[0], node.params
    sizes = node.shape
    first = next((d for d, size in enumerate(sizes) if size != 1), len(sizes))   # sizes >= 1
    if first < len(sizes) and p["steps"][first] != 1:
        return None
    for d in range(first + 1, len(sizes)):
        if sizes[d] != x.shape[d] or (x.shape[d] != 1 and (p["starts"][d] != 0 or p["steps"][d] != 1)):
            return None
    strides = [prod(x.shape[d + 1:]) for d in range(len(x.shape))]
    return sum(start * stride for start, stride in zip(p["starts"], strides))


def aligned(nbytes):
    if isinstance(nbytes, Dim):     # every coefficient rounded up: a multiple of ALIGN, >= nbytes
        return Dim({m: max(ALIGN, (c + ALIGN - 1) // ALIGN * ALIGN) for m, c in nbytes.terms.items()})
    return max(ALIGN, (nbytes + ALIGN - 1) // ALIGN * ALIGN)


def uniform_value(node):
    """The single value of a constant whose elements are all equal (emitted as a literal), else None."""
    return repeated_value(node.params["value"]) if node.prim.name == "const" else None
