"""Lowering plan for the C backend: which nodes fuse into which loop nest, which values need memory,
and where each lives in the workspace (reused by liveness). Pure analysis, no C text.

Vocabulary: elementwise nodes and reductions are *members* of a Loop over an iteration domain;
views (broadcast, transpose, slice, reshapes that only add or drop 1s) are index maps folded into
the reads; a *flat reshape* (one that regroups dimensions) reinterprets a stored, contiguous value;
everything else (matmul, gather, ...) is a Call of its own. In a sum of products of one shape (the
gradient of a weight used at every step of an unrolled loop) each product is a Call that writes
(the first) or adds (GEMM with beta = 1) into the sum's memory; the sums in between get no step."""
from dataclasses import dataclass, field

import numpy as np

from ..ir import repeated_value
from .stack import stacked_sums

ELEMENTWISE = ("unary", "binary", "ternary", "compare")
VIEWS = ("reshape", "broadcast", "transpose", "slice")     # C forms that only remap indices
REDUCTIONS = ("sum", "max")                                 # C forms fused into loop nests
ALIGN = 64
# Products below either size run single-threaded through a kernel made for their shape (MKL's JIT;
# gradc_blas.h). Measured with MKL on 2 cores: 256x10x784 42 us on one thread vs 69 us on two,
# 16x64x64 0.78 us vs 1.0 us through cblas; 64x256x784 needs both threads (96 vs 159 us).
SMALL_GEMM_OUTPUT = 8192         # elements of the product
SMALL_GEMM_MACS = 1 << 21        # multiply-adds
PARALLEL_MIN = 1 << 16           # loop points below which a second thread costs more than it saves
PARTIALS_MAX_BYTES = 16384       # per-thread copies of a result kept on the stack, at most


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
    return m * n < SMALL_GEMM_OUTPUT or m * n * k < SMALL_GEMM_MACS


def is_small_product(node):
    return is_small_shape(*product_shape(node))


def thread_blocks(node, threads, k=None, spread=True):
    """How a product is shared among threads: ("rows", threads) for one too big for one thread
    whose blocks of rows are small products, ("k", threads) for one small only by its output whose
    blocks of k are small (each thread adds its part to a copy on the stack), else ("", 1). Each
    block runs MKL's kernel for its shape.

    NOTE: measured inside the mlp[1024] kernel (MKL, 2 cores): 1024x10x256 42 -> 31 us and
    1024x256x10 77 -> 42 us against cblas's own threads; 256x10x1024 68 -> 37 us against one
    thread. A thread's rows are also the rows the loops before and after it handle on that core.
    Blocks of k only if the operands are `spread` over the cores' caches (inputs, or written by
    all threads): rnn[64]'s stacked weight gradients, written step by step on one core, took
    263 -> 303 us split. `k` overrides the product's own (a stacked sum's)."""
    m, k_own, n = product_shape(node)
    k = k or k_own
    if threads < 2:
        return "", 1
    if not is_small_shape(m, k, n) and m % threads == 0 and is_small_shape(m // threads, k, n):
        return "rows", threads
    copies = (threads - 1) * node.size * node.dtype.itemsize
    if spread and m * n * k >= SMALL_GEMM_MACS and k % threads == 0 and copies <= PARTIALS_MAX_BYTES:
        return "k", threads
    return "", 1


def is_source(node):
    return node.prim.kind == "source"


@dataclass
class Loop:
    """One fused loop nest over `domain`: elementwise members computed per point, reductions
    accumulated across it."""
    domain: tuple
    index: int
    members: list = field(default_factory=list)


@dataclass
class Call:
    """A node lowered on its own: matmul (BLAS), gather, scatter_add, concatenate, ...; a matmul
    with `into` is one term of a sum of products, written (beta 0) or added (beta 1) into the
    memory of the sum `into`; with `terms`, the terms of a stacked sum (stack.py) as one GEMM."""
    node: object
    index: int
    into: object = None
    beta: int = 0
    terms: list = None

    def reads(self):
        return [x for term in (self.terms or [self.node]) for x in term.inputs]


@dataclass
class Plan:
    graph: object
    steps: list                 # Loop and Call, in execution order
    step_of: dict               # node id -> index of the step that computes it
    stored: set                 # ids of computed nodes whose values live in memory
    alias_of: dict              # flat reshape id -> the node whose memory it reinterprets
    offsets: dict               # node id -> workspace byte offset (intermediate values)
    workspace_bytes: int
    folded: dict                # matmul operand id -> (stored node, transposed, element offset)
    output_of: dict             # stored node id -> output index it is written to directly
    output_copies: list         # (output index, node) copied after the steps
    materialized: set           # ids of views computed into memory


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
    first = next((d for d, size in enumerate(sizes) if size > 1), len(sizes))
    if first < len(sizes) and p["steps"][first] != 1:
        return None
    for d in range(first + 1, len(sizes)):
        if sizes[d] != x.shape[d] or (x.shape[d] > 1 and (p["starts"][d] != 0 or p["steps"][d] != 1)):
            return None
    strides = [int(np.prod(x.shape[d + 1:], dtype=np.int64)) for d in range(len(x.shape))]
    return sum(start * stride for start, stride in zip(p["starts"], strides))


def build_plan(graph):
    nodes = graph.nodes
    outputs = {o.id for o in graph.outputs}
    alias_of = {n.id: n.inputs[0] for n in nodes if n.prim.c == "reshape" and is_flat_reshape(n)}

    # Views that must be computed into memory: outputs, inputs of calls, inputs of flat reshapes.
    folded, materialize = {}, set()
    # NOTE: MKL's JIT kernel for 16x64x64 with B transposed runs at 105 GFLOP/s vs 179
    # untransposed: a B^T that several small products read is copied once instead of folded
    # (rnn[64]: 293 -> 264 us, its 63 dh @ Wh^T products).
    transposed_b = {}
    for node in nodes:
        if node.prim.c == "matmul" and node.inputs[1].prim.c == "transpose" \
                and is_small_product(node):
            transposed_b[node.inputs[1].id] = transposed_b.get(node.inputs[1].id, 0) + 1
    for node in nodes:
        if is_flat_reshape(node) and is_view(node.inputs[0]):
            materialize.add(node.inputs[0].id)
        if is_source(node) or is_fusible(node) or is_reduction(node) or is_view(node) \
                or is_flat_reshape(node):
            continue
        for inp in node.inputs:
            operand = _matmul_operand(inp) if node.prim.c == "matmul" else None
            if operand is not None and transposed_b.get(inp.id, 0) < 2:
                folded[inp.id] = operand
            elif is_view(inp):
                materialize.add(inp.id)
    materialize |= {n.id for n in nodes if n.id in outputs and is_view(n)}
    # A view that another step needs in memory is read from there by its products too: `folded`
    # is keyed by the view, so every reader of a folded view would read the unviewed memory.
    folded = {k: v for k, v in folded.items() if k not in materialize}

    term_of, absorbed = _product_sums(nodes, outputs)
    terms_of = {}
    for node in nodes:
        if node.id in term_of:
            terms_of.setdefault(term_of[node.id].id, (term_of[node.id], []))[1].append(node)
    # Values a group may place side by side: computed here, with memory of their own.
    special = set(absorbed) | {root.id for root, _ in terms_of.values()} \
        | {resolve(o, alias_of).id for o in graph.outputs} | {n.id for n in alias_of.values()}
    stacks, groups = stacked_sums(terms_of, folded, lambda n: not (
        is_source(n) or is_view(n) or is_flat_reshape(n) or n.id in special))
    position = {n.id: i for i, n in enumerate(nodes)}
    last_term = {s.root.id: max(s.terms, key=lambda t: position[t.id]) for s in stacks.values()}
    steps, step_of, loops_by_domain, first_write = [], {}, {}, {}
    for node in nodes:
        if is_source(node) or is_flat_reshape(node) or (is_view(node) and node.id not in materialize) \
                or node.id in absorbed:
            continue
        if node.id in term_of:          # the sum's value is complete after its last term
            root = term_of[node.id]
            stack = stacks.get(root.id)
            if stack is not None and node in stack.terms:
                if node is not last_term[root.id]:
                    continue            # computed by the stack's one GEMM, once all are ready
                steps.append(Call(stack.terms[0], len(steps), root, int(root.id in first_write),
                                  stack.terms))
            else:
                steps.append(Call(node, len(steps), root, int(root.id in first_write)))
            first_write.setdefault(root.id, len(steps) - 1)
            step_of[root.id] = len(steps) - 1
            continue
        if not (is_fusible(node) or is_reduction(node) or is_view(node)):
            steps.append(Call(node, len(steps)))
            step_of[node.id] = len(steps) - 1
            continue
        domain = domain_of(node.inputs[0].shape if is_reduction(node) else node.shape)
        earliest = 0      # the loop must come after every step whose result it reads from memory
        for base, same_point in dependencies(node, domain, materialize):
            owner = resolve(base, alias_of)
            if owner.id in step_of:
                s = step_of[owner.id]
                earliest = max(earliest, s if same_point and not is_reduction(owner) else s + 1)
        candidates = [s for s in loops_by_domain.get(domain, []) if s >= earliest]
        if candidates:
            loop = steps[candidates[0]]
        else:
            loop = Loop(domain, len(steps))
            steps.append(loop)
            loops_by_domain.setdefault(domain, []).append(loop.index)
        loop.members.append(node)
        step_of[node.id] = loop.index

    # Values that need memory: read by another step or at another point, reductions, outputs.
    stored = set()
    for step in steps:
        if isinstance(step, Call):
            stored.add((step.into or step.node).id)
            for inp in step.reads():
                stored.add(resolve(folded.get(inp.id, (inp,))[0], alias_of).id)
            continue
        for member in step.members:
            if is_reduction(member):
                stored.add(member.id)
            for base, same_point in dependencies(member, step.domain, materialize):
                owner = resolve(base, alias_of)
                if not same_point or step_of.get(owner.id) != step.index:
                    stored.add(owner.id)
    stored |= {resolve(o, alias_of).id for o in graph.outputs}
    stored = {s for s in stored if s in step_of}      # sources are memory already

    output_of, output_copies = {}, []
    for i, out in enumerate(graph.outputs):
        owner = resolve(out, alias_of)
        if is_source(owner) or owner.id in output_of or owner.id not in step_of:
            output_copies.append((i, out))
        else:
            output_of[owner.id] = i

    offsets, workspace = _assign_offsets(graph, steps, step_of, stored, alias_of, output_of, folded,
                                         materialize, first_write, groups)
    return Plan(graph, steps, step_of, stored, alias_of, offsets, workspace, folded, output_of,
                output_copies, materialize)


def _product_sums(nodes, outputs):
    """Trees of adds whose leaves are matmuls of the add's shape and dtype, each value read only
    by the next add of its tree (so none needs memory of its own): {matmul id: the tree's root},
    and the ids of the adds, which get no step."""
    uses = {}
    for node in nodes:
        for inp in node.inputs:
            uses[inp.id] = uses.get(inp.id, 0) + 1
    terms, absorbed = {}, set()

    def private(x, node):
        return uses.get(x.id) == 1 and x.id not in outputs and x.shape == node.shape \
            and x.dtype == node.dtype

    for node in nodes:
        if node.prim.name != "add" or node.dtype not in (np.float32, np.float64):
            continue
        parts = []
        for x in node.inputs:
            if private(x, node) and x.prim.c == "matmul":
                parts.append([x])
            elif private(x, node) and x.id in terms:
                parts.append(terms[x.id])
            else:
                break
        else:
            terms[node.id] = parts[0] + parts[1]
            absorbed.update(x.id for x in node.inputs)
    roots = [n for n in nodes if n.id in terms and n.id not in absorbed]
    return {m.id: root for root in roots for m in terms[root.id]}, set(terms)


def _touched(node, alias_of, folded, materialized):
    """Stored nodes a read of `node` touches, through folded operands, views and aliases."""
    if node.id in folded:
        node = folded[node.id][0]
    out = []
    while True:
        node, _ = read_base(node, materialized)
        out.append(node)
        if node.id not in alias_of:
            return out
        node = alias_of[node.id]


def _assign_offsets(graph, steps, step_of, stored, alias_of, output_of, folded, materialized,
                    first_write, groups):
    """Workspace offsets for intermediate values; memory of dead values is reused (first fit). The
    values of a group (stack.py) share one block, side by side in the group's order, live from
    the first one's write to the last one's last read."""
    last_use = {}
    for step in steps:
        for inp in (step.reads() if isinstance(step, Call) else
                    [x for m in step.members for x in m.inputs]):
            for dep in _touched(inp, alias_of, folded, materialized):
                last_use[dep.id] = max(last_use.get(dep.id, -1), step.index)
    by_id = {n.id: n for n in graph.nodes}
    position = {n.id: i for i, n in enumerate(graph.nodes)}    # ties in schedule order: the
    start = {s: first_write.get(s, step_of[s]) for s in stored}  # same C for the same graph
    end = {s: last_use.get(s, step_of[s]) for s in stored}
    units = {s: [s] for s in stored if s not in output_of}       # first member -> members
    for group in groups:
        for s in group:
            units.pop(s, None)
        units[group[0]] = group
        start[group[0]] = min(start[s] for s in group)
        end[group[0]] = max(end[s] for s in group)
    free, offsets, live, top = [], {}, [], 0
    for unit in sorted(units, key=lambda s: (start[s], position[s])):
        for item in [x for x in live if end[x[0]] < start[unit]]:
            live.remove(item)
            free.append((item[1], item[2]))
        members = units[unit]
        stride = by_id[unit].nbytes
        size = aligned(stride * len(members))
        slot = next((f for f in sorted(free) if f[1] >= size), None)
        if slot is None:
            offset, top = top, top + size
        else:
            free.remove(slot)
            offset = slot[0]
            if slot[1] > size:
                free.append((offset + size, slot[1] - size))
        for i, s in enumerate(members):
            offsets[s] = offset + i * stride
        live.append((unit, offset, size))
    return offsets, top


def aligned(nbytes):
    return max(ALIGN, (nbytes + ALIGN - 1) // ALIGN * ALIGN)


def uniform_value(node):
    """The single value of a constant whose elements are all equal (emitted as a literal), else None."""
    return repeated_value(node.params["value"]) if node.prim.name == "const" else None
