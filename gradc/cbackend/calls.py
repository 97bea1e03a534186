"""C for the steps that are not fused loops, one lowering per C form of the primitive table:
matmul (BLAS), gather, scatter_add, unslice, concatenate, argmax, random_bits. Each takes the emitter and the
plan's Call; how a product is shared among threads was decided by the schedule pass."""
import numpy as np

from . import plan as P
from .csyntax import ctype
from .loops import Affine, offset_of
from ..symbolic import c_name, dim_names, prod


def matmul(em, step):
    """C = A @ B, or with `into` and beta = 1, into += A @ B (a term of a sum of products), or with
    `terms` their sum as one product with the terms' operands stacked along k (stack.py; the node
    is the first term, whose operands start the stacked memory). A product shared among threads
    runs one block of rows or of k per thread; blocks of k after the first go to copies on the
    stack, added to C after."""
    node, terms, beta, axis, blocks = step.node, step.terms, step.beta, step.axis, step.blocks
    a, b = node.inputs
    m, k, n = P.product_shape(node)
    if terms:
        k = sum(P.product_shape(t)[1] for t in terms)
    batch = prod(node.shape[:-2])
    f = "f" if node.dtype == np.float32 else "d"
    operands = []
    for x, nrows, cols in ((a, m, k), (b, k, n)):
        base, trans, offset = em.plan.folded.get(x.id, (x, False, 0))
        ld = nrows if trans else cols
        pointer = em.ptr(base) + (f" + {offset}" if offset else "")
        operands.append((pointer, int(trans), ld, nrows * cols))
    (pa, ta, lda, sa), (pb, tb, ldb, sb) = operands
    into = step.into or node
    if axis == "rows" and blocks == P.NAMED_BLOCKS:
        return _named_rows(em, step, operands, m, k, n, batch, f)
    rows = m // blocks if axis == "rows" else m
    depth = k // blocks if axis == "k" else k
    width = n // blocks if axis == "cols" else n
    shared = {"rows": f", {blocks} blocks of {rows} rows", "k": f", {blocks} threads, {depth} of k "
              f"each", "cols": f", {blocks} blocks of {width} columns",
              "batch": f", {blocks} blocks of the batch", "": ""}[axis]
    what = (f"sum of {len(terms)} products stacked along k" if terms else
            f"matmul {em.names[a.id]} {em.names[b.id]}")
    em.note(f"{em.names[into.id]} {'+' if beta else ''}= {what}{shared}  ({node.loc})")
    c = f"{em.ptr(into)} + bi * {m * n}"
    if axis == "rows":      # a block of rows of op(A) starts `rows` columns on if A is transposed
        pa, c = f"{pa} + r * {rows if ta else rows * lda}", f"{c} + r * {rows * n}"
    elif axis == "cols":    # a block of columns of op(B) starts `width` rows on if B is transposed
        pb, c = f"{pb} + r * {width * ldb if tb else width}", f"{c} + r * {width}"
    elif axis == "k":
        pa = f"{pa} + r * {depth * lda if ta else depth}"
        pb = f"{pb} + r * {depth if tb else depth * ldb}"
        part = em.local("part", into)
        em.out("{")
        em.out(f"{ctype(node.dtype)} {part}[{blocks - 1}][{batch * m * n}];", 2)
        c = f"(r ? {part}[r - 1] + bi * {m * n} : {c})"

    # Block r of a batch split runs the members [batch r / blocks, batch (r + 1) / blocks).
    members = (f"bi = {batch} * r / {blocks}; bi < {batch} * (r + 1) / {blocks}" if axis == "batch"
               else f"bi = 0; bi < {batch}")

    def call(beta):
        if P.is_small_shape(rows, depth, width):
            slot = em.jit_slot(f, (ta, tb, rows, width, depth, lda, ldb, n, beta))
            gemm = f"gradc_gemm_small_{f}(&{em.name}_jit_{f}[{slot}], "
        else:
            gemm = f"gradc_gemm_{f}("
        return (f"for (int64_t {members}; bi++) {gemm}{ta}, {tb}, {rows}, {width}, "
                f"{depth}, {pa} + bi * {sa}, {lda}, {pb} + bi * {sb}, {ldb}, {beta}, {c}, {n});")

    if not axis:
        em.out(call(beta))
        return
    # NOTE: chunk r of the region is block r whichever thread runs it (results never depend on
    # the threads); a product by rows gets a block of its own for the region's state.
    if axis in ("rows", "cols", "batch"):
        em.out("{")
    em.out(f"GRADC_PARALLEL({blocks}, {min(blocks, em.plan.threads)})", 2)
    em.out(f"GRADC_CHUNKS(r, {blocks}) {{", 2)
    if axis == "k" and beta:
        em.out(f"if (r) {call(0)}", 3)
        em.out(f"else {call(beta)}", 3)
    else:
        em.out(call(0 if axis == "k" else beta), 3)
    em.out("}", 2)
    em.out("GRADC_PARALLEL_END", 2)
    if axis in ("rows", "cols", "batch"):
        em.out("}")
    if axis == "k":
        em.out(f"for (int64_t q = 0; q < {batch * m * n}; q++) "
               f"for (int p = 0; p < {blocks - 1}; p++) {em.ptr(into)}[q] += {part}[p][q];", 2)
        em.out("}")


def _named_rows(em, step, operands, m, k, n, batch, f):
    """A product whose m rows are named, shared among threads by blocks of rows chosen when the
    kernel runs (gradc_row_blocks: the fixed-size rule), block r rows [m r / nb, m (r + 1) / nb)."""
    node, beta, into = step.node, step.beta, step.into or step.node
    (pa, ta, lda, sa), (pb, tb, ldb, sb) = operands
    threads = em.plan.threads
    em.note(f"{em.names[into.id]} {'+' if beta else ''}= matmul {em.names[node.inputs[0].id]} "
            f"{em.names[node.inputs[1].id]}, blocks of rows chosen at run time  ({node.loc})")
    em.out("{")
    em.out(f"const int64_t nb = gradc_row_blocks({m}, {k}, {n}, {threads}, {P.CHUNKS_PER_THREAD}, "
           f"{P.MIN_BLOCK_ROWS}, {P.SPLIT_MACS});", 2)
    em.out(f"GRADC_PARALLEL(nb, nb < {threads} ? nb : {threads})", 2)
    em.out("GRADC_CHUNKS(r, nb) {", 2)
    em.out(f"const int64_t lo = {m} * r / nb, hi = {m} * (r + 1) / nb;", 3)
    a_block = f"{pa} + lo{'' if ta else f' * {lda}'}"
    c = f"{em.ptr(into)} + bi * {m * n} + lo * {n}"
    em.out(f"for (int64_t bi = 0; bi < {batch}; bi++) gradc_gemm_{f}({ta}, {tb}, hi - lo, {n}, "
           f"{k}, {a_block} + bi * {sa}, {lda}, {pb} + bi * {sb}, {ldb}, {beta}, {c}, {n});", 3)
    em.out("}", 2)
    em.out("GRADC_PARALLEL_END", 2)
    em.out("}")


def _index_loop(em, node, indices, dims, wrap, body):
    """Loop over the (broadcast) index arrays computing a checked row offset into dims."""
    count = prod(indices[0].shape)
    em.out(f"for (int64_t s = 0; s < {count}; s++) {{", note=em.comment(node))
    em.out("int64_t row = 0;", 2)
    for idx, dim in zip(indices, dims):
        em.out(f"{{ int64_t j = gradc_index((int64_t){em.ptr(idx)}[s], {dim}, {int(wrap)}); "
               f"if (j < 0) return GRADC_ERR_INDEX; row = row * {dim} + j; }}", 2)
    em.out(body, 2)
    em.out("}")


def gather(em, step):
    node = step.node
    x, *indices = node.inputs
    rest = prod(x.shape[len(indices):])
    _index_loop(em, node, indices, x.shape[:len(indices)], node.params["wrap"],
                f"for (int64_t r = 0; r < {rest}; r++) {em.ptr(node)}[s * {rest} + r] = "
                f"{em.ptr(x)}[row * {rest} + r];")


def scatter_add(em, step):
    node = step.node
    g, *indices = node.inputs
    shape = node.params["shape"]
    rest = prod(shape[len(indices):])
    em.out(f"memset({em.ptr(node)}, 0, {node.size} * sizeof({ctype(node.dtype)}));")
    _index_loop(em, node, indices, shape[:len(indices)], node.params["wrap"],
                f"for (int64_t r = 0; r < {rest}; r++) {em.ptr(node)}[row * {rest} + r] += "
                f"{em.ptr(g)}[s * {rest} + r];")


def _strided_copy(em, node, shape, dst, dst_index, src, src_index):
    """Nested loops over shape copying src[src_index] to dst[dst_index] (Affine per dimension)."""
    vars_ = [f"c{k}" for k in range(len(shape))]
    index = [Affine(0, {v: 1}) for v in vars_]
    depth = 1
    for v, d in zip(vars_, shape):
        em.out(f"for (int64_t {v} = 0; {v} < {d}; {v}++)", depth)
        depth += 1
    d_off = offset_of(dst_index(index), node.shape if dst_index else shape)
    s_off = offset_of(src_index(index), src[1])
    em.out(f"{dst}[{d_off.c()}] = {src[0]}[{s_off.c()}];", depth)


def unslice(em, step):
    node = step.node
    x = node.inputs[0]
    p = node.params
    em.out(f"memset({em.ptr(node)}, 0, {node.size} * sizeof({ctype(node.dtype)}));",
           note=em.comment(node))
    _strided_copy(em, node, x.shape, em.ptr(node),
                  lambda idx: [Affine(a).plus(i.scaled(s)) for i, a, s in
                               zip(idx, p["starts"], p["steps"])],
                  (em.ptr(x), x.shape), lambda idx: idx)


def concatenate(em, step):
    node = step.node
    axis = node.params["axis"]
    em.note(em.comment(node))
    start = 0
    for x in node.inputs:
        _strided_copy(em, node, x.shape, em.ptr(node),
                      lambda idx, s=start: [i.plus(Affine(s)) if k == axis else i
                                            for k, i in enumerate(idx)],
                      (em.ptr(x), x.shape), lambda idx: idx)
        start += x.shape[axis]


def argmax(em, step):
    node = step.node
    x = node.inputs[0]
    axis = node.params["axis"]
    outer = prod(x.shape[:axis])
    n = x.shape[axis]
    inner = prod(x.shape[axis + 1:])
    px, po = em.ptr(x), em.ptr(node)
    em.out(f"for (int64_t o = 0; o < {outer}; o++) for (int64_t r = 0; r < {inner}; r++) {{",
           note=em.comment(node))
    em.out(f"int64_t best = 0; {ctype(x.dtype)} top = {px}[o * {n * inner} + r];", 2)
    nan_first = " || (v != v && top == top)" if x.dtype.kind == "f" else ""   # NumPy: first NaN wins
    em.out(f"for (int64_t j = 1; j < {n}; j++) {{ {ctype(x.dtype)} v = {px}[o * {n * inner} + j * "
           f"{inner} + r]; if (v > top{nan_first}) {{ top = v; best = j; }} }}", 2)
    em.out(f"{po}[o * {inner} + r] = best;", 2)
    em.out("}")


def runtime_call(em, step):
    """A primitive whose C form names a runtime function (csrc/gradc_runtime.h), called on whole
    arrays: fn_f32/fn_f64(out, inputs..., the integers of its entry's `call_args`)."""
    node = step.node
    suffix = "f32" if node.dtype == np.float32 else "f64"
    args = [em.ptr(node)] + [em.ptr(i) for i in node.inputs] + [
        str(a) for a in node.prim.extra["call_args"](node)]
    em.out(f"{{ int rc = {node.prim.c}_{suffix}({', '.join(args)}); if (rc) return rc; }}",
           note=em.comment(node))


def random_bits(em, step):
    """Counter-based random numbers (csrc: gradc_random_*), element s from the counter s."""
    node = step.node
    key = em.ptr(node.inputs[0])
    form = {"int64": "bits", "float32": "uniformf", "float64": "uniform"}[node.dtype.name]
    em.out(f"for (int64_t s = 0; s < {node.size}; s++) {em.ptr(node)}[s] = gradc_random_{form}("
           f"(uint32_t){key}[0], (uint32_t){key}[1], s);", note=em.comment(node))


def iota(em, step):
    """0, 1, ..., size - 1 (the rows of a batch whose size is named)."""
    node = step.node
    em.out(f"for (int64_t s = 0; s < {node.size}; s++) {em.ptr(node)}[s] = "
           f"({ctype(node.dtype)})s;", note=em.comment(node))


def _operand(em, x):
    """Where a loop node's input is: its memory, or a block of another value's (plan.folded)."""
    base, _, offset = em.plan.folded.get(x.id, (x, False, 0))
    return em.ptr(base) + (f" + {offset}" if offset else "")


def scan(em, step):
    """A loop node (gc.scan): one C `for` over the steps around a call of the body's kernel (its
    own plan, lowered by the same passes: lower.loop_bodies), written before this kernel. The
    carries live in scratch, current and next swapped each step; per-step outputs are written by
    the body straight into their [T, ...] place in the node's memory; stacked carries (residuals
    of reverse mode) are copied there before each step."""
    from ..ir import _letters
    from .emit import generate
    node, body = step.node, em.plan.bodies[step.index]
    p = node.params
    graph, T, n_carry, n_xs = p["body"], p["length"], p["n_carry"], p["n_xs"]
    n_out = len(graph.outputs)
    fn = f"{em.name}_loop{step.index}"
    text, kernels = generate(body.plan, fn, {n.id: _letters(i) for i, n in enumerate(graph.nodes)},
                             static=True)
    em.helpers.append(f"/* the body of {em.names[node.id]} = scan ({node.loc}) */\n{text}")
    em.kernels += kernels
    out = em.ptr(node)
    em.note(f"{em.names[node.id]} = scan over {T} steps{' in reverse' if p['reverse'] else ''}, "
            f"the body in {fn}  ({node.loc})")
    em.out("{")
    em.out(f"char *sc = ws + {body.scratch};", 2)
    for i, (inp, (a, b)) in enumerate(zip(node.inputs[:n_carry], body.carries)):
        t = f"{ctype(inp.dtype)} *"
        em.out(f"{t}c{i} = ({t.strip()})(sc + {a}), *n{i} = ({t.strip()})(sc + {b});", 2)
        em.out(f"memcpy(c{i}, {_operand(em, inp)}, {inp.nbytes});", 2)
    n_args = len(graph.inputs) + n_out
    sizes = dim_names(graph)        # the body's named sizes, in its own order, after its outputs
    em.out("int64_t t = 0;", 2)
    em.out(f"void *a[{n_args + bool(sizes)}];", 2)
    if sizes:
        em.out(f"int64_t bd[{len(sizes)}] = {{{', '.join(c_name(d) for d in sizes)}}};", 2)
        em.out(f"a[{n_args}] = bd;", 2)
    em.out("a[0] = &t;", 2)
    for j, inp in enumerate(node.inputs[n_carry + n_xs:]):
        em.out(f"a[{1 + n_carry + n_xs + j}] = (void *)({_operand(em, inp)});", 2)
    em.out(f"for (int64_t s = 0; s < {T}; s++) {{", 2)
    em.out(f"t = {f'{T - 1} - s' if p['reverse'] else 's'};", 3)
    for i in range(n_carry):
        em.out(f"a[{1 + i}] = c{i};", 3)
        if n_out + i in body.placed:
            size = graph.outputs[i].size
            em.out(f"memcpy({out} + {body.placed[n_out + i]} + t * {size}, c{i}, "
                   f"{graph.outputs[i].nbytes});", 3)
    for j, inp in enumerate(node.inputs[n_carry:n_carry + n_xs]):
        size = graph.inputs[1 + n_carry + j].size
        em.out(f"a[{1 + n_carry + j}] = (void *)({_operand(em, inp)} + t * {size});", 3)
    base = len(graph.inputs)
    for i in range(n_carry):
        em.out(f"a[{base + i}] = n{i};", 3)
    for k in range(n_carry, n_out):
        where = (f"sc + {body.dropped[k]}" if k in body.dropped else
                 f"{out} + {body.placed[k]} + t * {graph.outputs[k].size}")
        em.out(f"a[{base + k}] = (void *)({where});", 3)
    em.out(f"if ((rc = {fn}(a, sc + {body.work}))) return rc;", 3)
    for i, inp in enumerate(node.inputs[:n_carry]):
        t = f"{ctype(inp.dtype)} *"
        em.out(f"{{ {t}swap = c{i}; c{i} = n{i}; n{i} = swap; }}", 3)
        if n_out + n_carry + i in body.placed:      # the carries after each step
            size = graph.outputs[i].size
            em.out(f"memcpy({out} + {body.placed[n_out + n_carry + i]} + t * {size}, c{i}, "
                   f"{graph.outputs[i].nbytes});", 3)
    em.out("}", 2)
    for i in range(n_carry):
        if i in body.placed:
            em.out(f"memcpy({out} + {body.placed[i]}, c{i}, {graph.outputs[i].nbytes});", 2)
    em.out("}")


CALLS = {"matmul": matmul, "gather": gather, "scatter_add": scatter_add, "unslice": unslice,
         "concatenate": concatenate, "argmax": argmax, "random_bits": random_bits, "scan": scan,
         "iota": iota}
