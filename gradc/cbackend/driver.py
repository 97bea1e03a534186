"""The batch split's driver (split.py): a kernel running the block graph's kernel once per block of
the batch's rows, the blocks shared among threads, partial sums added in block order after."""
import numpy as np

from . import plan as P
from . import split as split_module
from .csyntax import ctype, passed_consts
from ..symbolic import prod


def split_driver(split, name, block_name, block_workspace, static=False):
    """`int NAME(void **args, void *work)` running `block_name` (the block graph's kernel) once per
    block of rows, the blocks shared among threads, each with its own part of the workspace.
    Batched inputs and outputs pass a block's rows: a pointer into the array where the rows are one
    run of memory, else a copy. Block 0 writes partial sums and replicated outputs into the outputs,
    the others into their workspace; the partial sums are added after, in block order, so results
    do not depend on the number of threads. Returns (C text, workspace bytes)."""
    g, blk, blocks = split.graph, split.block, split.blocks
    consts = passed_consts(g)
    arg_of = {c.id: len(g.inputs) + j for j, c in enumerate(consts)}
    block_consts = passed_consts(blk)
    offset = P.aligned(block_workspace)
    body, after, partials = [], [], []

    def pass_rows(k, arg, node, axis, what, copy_in):
        """a[k] = block r's rows of a batched array: a pointer into it where they are one run of
        memory, else a copy in the block's workspace (made before the call for an input, copied
        out after it for an output)."""
        nonlocal offset
        inner = prod(node.shape[axis + 1:]) * node.dtype.itemsize
        count, run, whole = prod(node.shape[:axis]), split.rows * inner, \
            split.size * inner
        if count == 1:
            body.append(f"a[{k}] = (char *)args[{arg}] + r * {run};  /* {what}: rows of block r */")
            return
        array, copy = f"(char *)args[{arg}] + o * {whole} + r * {run}", f"bw + {offset} + o * {run}"
        dst, src = (copy, array) if copy_in else (array, copy)
        (body if copy_in else after).append(
            f"for (int64_t o = 0; o < {count}; o++) memcpy({dst}, {src}, {run});  /* {what}: rows "
            f"of block r, copied */")
        body.append(f"a[{k}] = bw + {offset};  /* {what}: in the block's workspace */")
        offset += P.aligned(count * run)

    for i, node in enumerate(g.inputs):
        axis = split.input_axis(i)
        if axis is None:
            body.append(f"a[{i}] = args[{i}];  /* {node.name or i}: replicated */")
        else:
            pass_rows(i, i, node, axis, node.name or i, copy_in=True)
    for j, c in enumerate(block_consts):
        body.append(f"a[{len(blk.inputs) + j}] = args[{arg_of[split.origin.get(c.id, c).id]}];")
    base = len(g.inputs) + len(consts)
    for i, node in enumerate(g.outputs):
        k, label = len(blk.inputs) + len(block_consts) + i, split.output_label(i)
        if label is None or label == split_module.PARTIAL:
            kind = "partial sum" if label else "replicated"
            body.append(f"a[{k}] = r ? (void *)(bw + {offset}) : args[{base + i}];  /* output {i}: "
                        f"{kind} */")
            if label:
                partials.append((node, base + i, offset))
            offset += P.aligned(node.nbytes)
        else:
            pass_rows(k, base + i, node, label, f"output {i}", copy_in=False)
    stride = P.aligned(offset)
    n_args = len(blk.inputs) + len(block_consts) + len(g.outputs)
    lines = [f"/* the batch of {split.size} rows as {blocks} blocks of {split.rows}, one "
             f"{block_name} each, shared among threads */",
             f"{'static ' if static else ''}int {name}(void **args, void *work)", "{",
             "    char *ws = (char *)work;",
             f"    int rc[{blocks}] = {{0}};",
             "    {",
             f"    GRADC_PARALLEL({blocks}, {blocks})",
             f"    GRADC_CHUNKS(r, {blocks}) {{",
             f"        char *bw = ws + r * {stride};",
             f"        void *a[{n_args}];"]
    lines += ["        " + line for line in body]
    lines.append(f"        rc[r] = {block_name}(a, bw);")
    lines += ["        " + line for line in after]
    lines += ["    }", "    GRADC_PARALLEL_END", "    }"]
    if partials:      # block 0's sums + the others', in block order: a range of each per chunk
        lines += ["    {", f"    GRADC_PARALLEL({blocks}, {blocks})",
                  f"    GRADC_CHUNKS(t, {blocks}) {{"]
    for node, arg, off in partials:
        ct = ctype(node.dtype)
        lines += [f"        {{  /* output {arg - base} */",
                  f"            {ct} *out = ({ct} *)args[{arg}];",
                  f"            const int64_t lo = {node.size} * t / {blocks}, "
                  f"hi = {node.size} * (t + 1) / {blocks};",
                  f"            for (int64_t b = 1; b < {blocks}; b++) {{",
                  f"                const {ct} *part = (const {ct} *)(ws + b * {stride} + {off});",
                  "                for (int64_t q = lo; q < hi; q++) out[q] += part[q];",
                  "            }", "        }"]
    if partials:
        lines += ["    }", "    GRADC_PARALLEL_END", "    }"]
    lines += [f"    for (int b = 0; b < {blocks}; b++) if (rc[b]) return rc[b];",
              "    return GRADC_OK;", "}"]
    return "\n".join(lines), blocks * stride
