"""The C lowering as an ordered list of named passes over a Plan (plan.py), as simplify.PASSES is for
graphs: each pass is a function plan -> plan that decides one thing, and `GRADC_DEBUG=1` prints
the plan after each. Emission (emit.py) then walks the final plan and decides nothing.

  batch_split   rows of a batch independent of each other: lower one block's graph (split.py)
  flat_products a batch of products against one matrix as one product over its rows (flatten.py)
  products      BLAS calls: operands read in place (transposed, offset), sums of products
  fusion        one step per node: a Loop for elementwise ops, views and reductions, else a Call
  loop_merging  loops of one domain merge into the earliest loop after what they read
  storage       which values need memory, which outputs are written in place
  memory        workspace offsets, reused by liveness
  loop_bodies   a loop node's body lowered by these passes, its scratch after the workspace
  schedule      threads and blocking: flat loops, accumulators, per-thread sums, product blocks
  outlining     steps that repeat (an unrolled loop's body) share one C function
"""
import dataclasses
import os

import numpy as np

from . import flatten, loops
from . import plan as P
from . import split as split_module
from .plan import Call, Loop, Plan
from .stack import stacked_sums
from ..symbolic import at_least, hint, prod


def batch_split(plan):
    """A graph independent across the rows of its batch is lowered as one block's graph; the
    driver (emit.split_driver) runs a block per thread."""
    if any(n.prim.c == "scan" for n in plan.graph.nodes):
        return plan      # TODO: split a loop's batch (its body's rows) too
    split = split_module.choose(plan.graph, plan.threads)
    if split is None:
        return plan
    return dataclasses.replace(plan, graph=split.block, split=split, threads=1)


def flat_products(plan):
    """Without a batch split: a batch of products against one matrix (`x @ W` for a stack x) is
    one product over the batch's rows, and the sum of its gradient's products one product too
    (flatten.py). The transformer step: 3.90 -> 3.39 ms (2-core AMD; measured with the same
    rewrite made at trace time, which cost the batch split its graphs)."""
    if plan.split is not None:
        return plan      # the blocks' products are the batch's rows already
    return dataclasses.replace(plan, graph=flatten.flat_products(plan.graph))


def products(plan):
    """Matmul operands read where they are (a stored value, its swap of the last two axes, a
    contiguous slice: folded into the GEMM call), the views that must be computed into memory
    instead, and sums of products (each product adds into the sum's memory, stacked along k
    where the operands follow each other)."""
    nodes, outputs = plan.graph.nodes, {o.id for o in plan.graph.outputs}
    folded, materialized = {}, set()
    # NOTE: MKL's JIT kernel for 16x64x64 with B transposed runs at 105 GFLOP/s vs 179
    # untransposed: a B^T that several small products read is copied once instead of folded
    # (rnn[64]: 293 -> 264 us, its 63 dh @ Wh^T products).
    transposed_b = {}
    for node in nodes:
        if node.prim.c == "matmul" and node.inputs[1].prim.c == "transpose" \
                and P.is_small_product(node):
            transposed_b[node.inputs[1].id] = transposed_b.get(node.inputs[1].id, 0) + 1

    def gemm_reads(inp):
        """Whether a product's GEMM call reads operand `inp` where it is (else it is copied)."""
        return P._matmul_operand(inp) is not None and transposed_b.get(inp.id, 0) < 2
    blocks = _loop_output_blocks(nodes, outputs, gemm_reads)
    for node in nodes:
        if P.is_flat_reshape(node) and P.is_view(node.inputs[0]) and node.id not in blocks:
            materialized.add(node.inputs[0].id)
        if P.is_source(node) or P.is_fusible(node) or P.is_reduction(node) or P.is_view(node) \
                or P.is_flat_reshape(node):
            continue
        for inp in node.inputs:
            operand = P._matmul_operand(inp) if node.prim.c == "matmul" else None
            if operand is not None and operand[0].id in blocks:
                base, offset = blocks[operand[0].id]
                operand = (base, operand[1], operand[2] + offset)
            if node.prim.c == "scan" and inp.id in blocks:
                folded[inp.id] = (blocks[inp.id][0], False, blocks[inp.id][1])
            elif operand is not None and gemm_reads(inp):
                folded[inp.id] = operand
            elif P.is_view(inp):
                materialized.add(inp.id)
    materialized |= {n.id for n in nodes if n.id in outputs and P.is_view(n)}
    # A view that another step needs in memory is read from there by its products too: `folded`
    # is keyed by the view, so every reader of a folded view would read the unviewed memory.
    folded = {k: v for k, v in folded.items() if k not in materialized}
    alias_of = {n.id: n.inputs[0] for n in nodes if n.prim.c == "reshape" and P.is_flat_reshape(n)}

    term_of, absorbed = _product_sums(nodes, outputs)
    terms_of = {}
    for node in nodes:
        if node.id in term_of:
            terms_of.setdefault(term_of[node.id].id, (term_of[node.id], []))[1].append(node)
    # Values a group may place side by side: computed here, with memory of their own.
    special = set(absorbed) | {root.id for root, _ in terms_of.values()} \
        | {P.resolve(o, alias_of).id for o in plan.graph.outputs} | {n.id for n in alias_of.values()}
    stacks, groups = stacked_sums(terms_of, folded, lambda n: not (
        P.is_source(n) or P.is_view(n) or P.is_flat_reshape(n) or n.id in special))
    return dataclasses.replace(plan, folded=folded, materialized=materialized, alias_of=alias_of,
                               term_of=term_of, absorbed=absorbed, stacks=stacks, groups=groups)


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


def _loop_output_blocks(nodes, outputs, gemm_reads):
    """{flat reshape id: (loop node, element offset)} for the outputs of a loop node (gc.scan packs
    them into one value) that are read where they are, by products (possibly through a transpose
    their GEMM calls read in place: `gemm_reads(node)`) and loops only: a contiguous block of the
    loop node's memory, not a copy."""
    users = {}
    for node in nodes:
        for inp in node.inputs:
            users.setdefault(inp.id, []).append(node)

    def read_in_place(node):
        if node.prim.c in ("matmul", "scan"):
            return True
        # NOTE: a transpose the products do not fold (not a swap of the last two axes, or a B^T
        # copied once) is copied by a loop, which cannot read a block: the reshape's pointer was
        # never declared (KeyError in emit; found by the fuzzer).
        return node.prim.c == "transpose" and node.id not in outputs and gemm_reads(node) \
            and all(u.prim.c == "matmul" for u in users.get(node.id, ()))

    blocks = {}
    for node in nodes:
        if not P.is_flat_reshape(node) or node.id in outputs:
            continue
        view = node.inputs[0]
        if view.prim.c != "slice" or view.inputs[0].prim.c != "scan" or view.id in outputs:
            continue
        offset = P.contiguous_slice_offset(view)
        if offset is not None and all(read_in_place(u) for u in users.get(node.id, ())) \
                and all(u is node for u in users.get(view.id, ())):
            blocks[node.id] = (view.inputs[0], offset)
    return blocks


def fusion(plan):
    """One step per computed node: a Loop over its domain for elementwise ops, materialized views
    and reductions; a Call for the rest. A term of a sum of products is a Call into the sum's
    memory (beta 1 after the first); a stacked sum is one Call at its last term."""
    steps, step_of, first_write = [], {}, {}
    position = {n.id: i for i, n in enumerate(plan.graph.nodes)}
    last_term = {s.root.id: max(s.terms, key=lambda t: position[t.id]) for s in plan.stacks.values()}
    for node in plan.graph.nodes:
        if P.is_source(node) or P.is_flat_reshape(node) or node.id in plan.absorbed \
                or (P.is_view(node) and node.id not in plan.materialized):
            continue
        if node.id in plan.term_of:          # the sum's value is complete after its last term
            root = plan.term_of[node.id]
            stack = plan.stacks.get(root.id)
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
        if P.is_fusible(node) or P.is_reduction(node) or P.is_view(node):
            domain = P.domain_of(node.inputs[0].shape if P.is_reduction(node) else node.shape)
            steps.append(Loop(domain, len(steps), [node]))
        else:
            steps.append(Call(node, len(steps)))
        step_of[node.id] = len(steps) - 1
    return dataclasses.replace(plan, steps=steps, step_of=step_of, first_write=first_write)


def loop_merging(plan):
    """Each loop joins the first loop of its domain that comes after every step whose result it
    reads from memory (a value read at the loop's own point may come from the same loop)."""
    steps, step_of, by_domain = [], {}, {}
    for step in plan.steps:
        if isinstance(step, Call):
            step = dataclasses.replace(step, index=len(steps))
            steps.append(step)
            for node in ([step.into] if step.into is not None else [step.node]):
                step_of[node.id] = step.index
            continue
        (node,) = step.members
        earliest = 0
        for base, same_point in P.dependencies(node, step.domain, plan.materialized):
            owner = P.resolve(base, plan.alias_of)
            if owner.id in step_of:
                s = step_of[owner.id]
                earliest = max(earliest, s if same_point and not P.is_reduction(owner) else s + 1)
        target = next((s for s in by_domain.get(step.domain, []) if s >= earliest), None)
        if target is None:
            target = len(steps)
            steps.append(Loop(step.domain, target))
            by_domain.setdefault(step.domain, []).append(target)
        steps[target].members.append(node)
        step_of[node.id] = target
    first_write = {}                     # the sums' first terms, renumbered
    for s in steps:
        if isinstance(s, Call) and s.into is not None:
            first_write.setdefault(s.into.id, s.index)
    return dataclasses.replace(plan, steps=steps, step_of=step_of, first_write=first_write)


def storage(plan):
    """Values that need memory (read by another step or at another point, reductions, outputs),
    and the outputs each stored value is written to directly; the rest are copied at the end."""
    stored = set()
    for step in plan.steps:
        if isinstance(step, Call):
            stored.add((step.into or step.node).id)
            for inp in step.reads():
                stored.add(P.resolve(plan.folded.get(inp.id, (inp,))[0], plan.alias_of).id)
            continue
        for member in step.members:
            if P.is_reduction(member):
                stored.add(member.id)
            for base, same_point in P.dependencies(member, step.domain, plan.materialized):
                owner = P.resolve(base, plan.alias_of)
                if not same_point or plan.step_of.get(owner.id) != step.index:
                    stored.add(owner.id)
    stored |= {P.resolve(o, plan.alias_of).id for o in plan.graph.outputs}
    stored = {s for s in stored if s in plan.step_of}      # sources are memory already
    output_of, output_copies = {}, []
    for i, out in enumerate(plan.graph.outputs):
        owner = P.resolve(out, plan.alias_of)
        if P.is_source(owner) or owner.id in output_of or owner.id not in plan.step_of:
            output_copies.append((i, out))
        else:
            output_of[owner.id] = i
    return dataclasses.replace(plan, stored=stored, output_of=output_of, output_copies=output_copies)


def memory(plan):
    """Workspace offsets for intermediate values; memory of dead values is reused (first fit). The
    values of a group (stack.py) share one block, side by side in the group's order, live from
    the first one's write to the last one's last read."""
    last_use = {}
    for step in plan.steps:
        for inp in (step.reads() if isinstance(step, Call) else
                    [x for m in step.members for x in m.inputs]):
            for dep in _touched(inp, plan):
                last_use[dep.id] = max(last_use.get(dep.id, -1), step.index)
    by_id = {n.id: n for n in plan.graph.nodes}
    position = {n.id: i for i, n in enumerate(plan.graph.nodes)}   # ties in schedule order: the
    start = {s: plan.first_write.get(s, plan.step_of[s]) for s in plan.stored}   # same C for the
    end = {s: last_use.get(s, plan.step_of[s]) for s in plan.stored}             # same graph
    units = {s: [s] for s in plan.stored if s not in plan.output_of}   # first member -> members
    for group in plan.groups:
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
        size = P.aligned(stride * len(members))
        # NOTE: with named sizes a dead block is reused only if it is big enough for every size.
        slot = next((f for f in sorted(free, key=_hinted) if at_least(f[1], size)), None)
        if slot is None:
            offset, top = top, top + size
        else:
            free.remove(slot)
            offset = slot[0]
            if slot[1] != size:
                free.append((offset + size, slot[1] - size))
        for i, s in enumerate(members):
            offsets[s] = offset + i * stride
        live.append((unit, offset, size))
    return dataclasses.replace(plan, offsets=offsets, workspace_bytes=top)


def _hinted(block):
    return tuple(hint(x) for x in block)


def loop_bodies(plan):
    """Each loop node's body lowered by these same passes (nested loops too) into a LoopBody; the
    scratch each needs (its carries, its body's workspace) goes after the workspace, shared by
    all loops (they run one after another)."""
    bodies, top, largest = {}, P.aligned(plan.workspace_bytes), 0
    for step in plan.steps:
        if not (isinstance(step, Call) and step.node.prim.c == "scan"):
            continue
        node, params = step.node, step.node.params
        body = params["body"]
        inner = lower(body, plan.threads, [p for p in PASSES if p is not batch_split])
        n_carry, n_out = params["n_carry"], len(body.outputs)
        offset, carries, dropped = 0, [], {}
        for out in body.outputs[:n_carry]:
            carries.append((offset, offset + P.aligned(out.nbytes)))
            offset += 2 * P.aligned(out.nbytes)
        for k in range(n_carry, n_out):
            if k not in params["select"]:
                dropped[k] = offset
                offset += P.aligned(body.outputs[k].nbytes)
        placed, start = {}, 0
        from ..loop import output_avals
        avals = output_avals(body, params["length"], n_carry)
        for k in params["select"]:
            placed[k] = start
            start += prod(avals[k][0])
        size = offset + P.aligned(inner.workspace_bytes)
        bodies[step.index] = P.LoopBody(inner, top, carries, dropped, offset, placed, size)
        largest = max(largest, size)
    if not bodies:
        return plan
    return dataclasses.replace(plan, bodies=bodies, workspace_bytes=top + largest)


def _touched(node, plan):
    """Stored nodes a read of `node` touches, through folded operands, views and aliases."""
    if node.id in plan.folded:
        node = plan.folded[node.id][0]
    out = []
    while True:
        node, _ = P.read_base(node, plan.materialized)
        out.append(node)
        if node.id not in plan.alias_of:
            return out
        node = plan.alias_of[node.id]


def schedule(plan):
    """How each step runs: loops flat or nested, their reductions' accumulators, threads for big
    loops (each thread a range of the outer loop; sums across it per thread), and products shared
    among threads by blocks of rows or of k (plan.thread_blocks)."""
    steps, spread = [], set()
    for step in plan.steps:
        if isinstance(step, Loop):
            step = loops.schedule_loop(step, plan)
            if step.threads > 1:
                spread.update(m.id for m in step.members if m.id in plan.stored)
        else:
            step = _schedule_call(step, plan, spread)
        steps.append(step)
    return dataclasses.replace(plan, steps=steps, spread=spread)


def _schedule_call(call, plan, spread):
    node = call.node
    if node.prim.c != "matmul":
        return call
    k = sum(P.product_shape(t)[1] for t in call.terms) if call.terms else None
    # The operand read most decides whether its memory is spread over the cores' caches.
    reads = [hint(sum(t.inputs[i].size for t in call.terms or [node])) for i in (0, 1)]
    most = node.inputs[int(reads[1] > reads[0])]
    largest = plan.folded.get(most.id, (most,))[0]
    axis, blocks = P.thread_blocks(node, plan.threads, k,
                                   spread=P.is_source(largest) or largest.id in spread)
    if axis in ("rows", "cols", "batch"):
        spread.add((call.into or node).id)
    return dataclasses.replace(call, axis=axis, blocks=blocks)


def outlining(plan):
    """Steps that repeat (the body of an unrolled loop) get one C function, called per step: the
    signature of each step (loops.signature) says what its C does up to which memory it touches.
    Keeps compile time in proportion to the loop body, not its length."""
    signatures = [loops.signature(step, plan) for step in plan.steps]
    counts = {}
    for sig in signatures:
        counts[sig] = counts.get(sig, 0) + 1
    outlined = {step.index: sig for step, sig in zip(plan.steps, signatures) if counts[sig] > 1}
    return dataclasses.replace(plan, outlined=outlined)


PASSES = [batch_split, flat_products, products, fusion, loop_merging, storage, memory, loop_bodies, schedule,
          outlining]


def lower(graph, threads=1, passes=PASSES):
    """The Plan of graph for a kernel on `threads` threads; GRADC_DEBUG=1 prints it after each pass."""
    debug = os.environ.get("GRADC_DEBUG") == "1"
    plan = Plan(graph, threads)
    for lowering_pass in passes:
        plan = lowering_pass(plan)
        if debug:
            print(f"--- after {lowering_pass.__name__}\n{plan.as_text()}")
    return plan
