"""C emission for a Plan: one function `int NAME(void **args, void *work)` whose args are the input
leaves, then the constant arrays, then the outputs. Temporaries are named after the graph's nodes
(as in `as_text()`), and every statement carries a comment with the node and the user's file:line."""
import math
import re

import numpy as np

from . import plan as P
from . import split as split_module

CTYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
          "bool": "uint8_t"}
EXPR_CTYPES = dict(CTYPES, bool="_Bool")


def passed_consts(graph):
    """The constants a kernel takes as data, in argument order: arrays (single values are literals)."""
    return [n for n in graph.nodes if n.prim.name == "const" and n.size != 1]


def ctype(dtype):
    return CTYPES[np.dtype(dtype).name]


def literal(value, dtype):
    """A C literal of dtype for a NumPy scalar."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = float(value)
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "(-INFINITY)"
        text = repr(v)
        text = text if ("." in text or "e" in text) else text + ".0"
        text = f"{text}f" if dtype == np.float32 else text
        return f"({text})" if v < 0 else text
    if dtype.kind == "b":
        return "1" if value else "0"
    text = f"{int(value)}LL" if dtype.itemsize == 8 else str(int(value))
    return f"({text})" if int(value) < 0 else text


def row_major(shape):
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return list(reversed(strides))


class Affine:
    """const + sum(coef * loop variable): one index of one dimension, or a flat offset."""

    def __init__(self, const=0, coefs=None):
        self.const = const
        self.coefs = {k: v for k, v in (coefs or {}).items() if v}

    def scaled(self, k):
        return Affine(self.const * k, {v: c * k for v, c in self.coefs.items()})

    def plus(self, other):
        coefs = dict(self.coefs)
        for v, c in other.coefs.items():
            coefs[v] = coefs.get(v, 0) + c
        return Affine(self.const + other.const, coefs)

    def c(self):
        terms = [(f"{c} * {v}" if c != 1 else v) for v, c in sorted(self.coefs.items())]
        if self.const or not terms:
            terms.append(str(self.const))
        return " + ".join(terms)


def offset_of(index, shape):
    """Flat row-major offset of a per-dimension index into an array of shape."""
    total = Affine()
    for idx, stride in zip(index, row_major(shape)):
        total = total.plus(idx.scaled(stride))
    return total


def view_input_index(view, index):
    """Maps an index into a view's output to an index into its input."""
    x = view.inputs[0]
    kind = view.prim.c
    if kind == "reshape":               # only 1s added or dropped: match the other dimensions
        real = iter([i for i, d in zip(index, view.shape) if d != 1])
        return [Affine() if d == 1 else next(real) for d in x.shape]
    if kind == "broadcast":
        lead = len(view.shape) - len(x.shape)
        return [Affine() if d == 1 else index[lead + i] for i, d in enumerate(x.shape)]
    if kind == "transpose":
        out = [None] * len(x.shape)
        for k, p in enumerate(view.params["perm"]):
            out[p] = index[k]
        return out
    if kind == "slice":
        return [Affine(a).plus(i.scaled(s)) for i, a, s in
                zip(index, view.params["starts"], view.params["steps"])]
    raise AssertionError(kind)


class Emitter:
    def __init__(self, plan, name, names, threads=1, static=False):
        self.plan = plan
        self.graph = plan.graph
        self.name = name
        self.names = names               # node id -> jaxpr-style letter name
        self.lines = []
        self.kernels = 0
        self.threads = threads           # OpenMP threads for loops of P.PARALLEL_MIN points or more
        self.static = static             # the kernel is file-local (AOT modules)
        self.flat_index = None           # "i" inside a flat loop
        self.ptr_types = {}              # pointer name -> its C type, e.g. "const float *"
        self.pointer = {}                # node id -> C pointer expression
        self.consts = passed_consts(self.graph)
        self.jits = {}                   # "f"/"d" -> {GEMM shape: slot in the kernel's JIT table}
        self.partials = set()            # ids of reductions summed into per-thread copies
        self.spread = set()              # ids of values written by all threads (in all caches)

    # ---- helpers ---------------------------------------------------------------------------------
    def out(self, line, indent=1):
        self.lines.append("    " * indent + line)

    def comment(self, node):
        rhs = node.prim.name + (" " + " ".join(self.names[i.id] for i in node.inputs)
                                if node.inputs else "")
        return f"/* {self.names[node.id]} = {rhs}  ({node.loc}) */"

    def ptr(self, node):
        return self.pointer[P.resolve(node, self.plan.alias_of).id]

    def template(self, node):
        c = node.prim.c
        if isinstance(c, dict):
            kind = node.inputs[0].dtype.kind if node.inputs else node.dtype.kind
            c = c["f" if kind == "f" else "i"]
        return c

    def read(self, node, index, loop):
        """C expression for node's value at per-dimension index, inside loop (or None)."""
        if loop is not None and node.id in loop.local and _is_point(index, node, loop):
            return f"v_{self.names[node.id]}"
        value = P.uniform_value(node)
        if value is not None:
            return literal(value, node.dtype)
        if P.is_view(node) and node.id not in self.plan.materialized:
            return self.read(node.inputs[0], view_input_index(node, index), loop)
        return f"{self.ptr(node)}[{self.subscript(offset_of(index, node.shape))}]"

    def subscript(self, off):
        """An offset as C; in a flat loop an offset that follows the point is `i + const`."""
        if self.flat_index and off.coefs:
            return self.flat_index + (f" + {off.const}" if off.const else "")
        return off.c()

    def jit_slot(self, suffix, shape):
        """The slot of the JIT table entry for a small product of this shape (ta, tb, m, n, k,
        lda, ldb, ldc, beta); equal shapes share one."""
        table = self.jits.setdefault(suffix, {})
        return table.setdefault(shape, len(table))

    def jit_table(self):
        """The static JIT tables and the constructor that fills them when the library loads."""
        if not self.jits:
            return []
        lines = [f"/* MKL's kernels for the small products (gradc_blas.h), made when the library "
                 f"loads */"]
        lines += [f"static gradc_jit_{f} {self.name}_jit_{f}[{len(t)}];" for f, t in self.jits.items()]
        lines += ["#ifdef GRADC_HAVE_MKL", f"GRADC_CONSTRUCTOR static void {self.name}_jit(void)",
                  "{"]
        for f, table in self.jits.items():
            for shape, slot in table.items():
                args = ", ".join(map(str, shape))
                lines.append(f"    gradc_jit_make_{f}(&{self.name}_jit_{f}[{slot}], {args});")
        lines += ["}", "#endif"]
        return ["\n".join(lines)]

    # ---- the function ----------------------------------------------------------------------------
    def declare(self, node, name, ptr_type, init, note):
        self.pointer[node.id] = name
        self.ptr_types[name] = ptr_type
        self.out(f"{ptr_type}{name} = ({ptr_type.strip()}){init};  /* {note} */")

    def emit(self):
        g = self.graph
        n_in = len(g.inputs)
        self.out(f"{'static ' if self.static else ''}int {self.name}(void **args, void *work)", 0)
        self.out("{", 0)
        self.out("char *ws = (char *)work;")
        self.out("int rc = GRADC_OK;")
        self.out("(void)ws; (void)rc;")
        for i, node in enumerate(g.inputs):
            self.declare(node, f"p_{self.names[node.id]}", f"const {ctype(node.dtype)} *", f"args[{i}]",
                         f"input {node.name or i}: {node.type_str}")
        for j, node in enumerate(self.consts):
            self.declare(node, f"p_{self.names[node.id]}", f"const {ctype(node.dtype)} *",
                         f"args[{n_in + j}]", f"constant {node.type_str} ({node.loc})")
            self.out(f"(void)p_{self.names[node.id]};  /* read as a literal where it is uniform */")
        base = n_in + len(self.consts)
        outs = {i: node_id for node_id, i in self.plan.output_of.items()}
        for i, out in enumerate(g.outputs):
            t = f"{ctype(out.dtype)} *"
            self.ptr_types[f"out{i}"] = t
            self.out(f"{t}out{i} = ({t.strip()})args[{base + i}];  /* output {i}: {out.type_str} */")
            if i in outs:
                self.pointer[outs[i]] = f"out{i}"
        by_id = {n.id: n for n in g.nodes}
        for node_id, offset in sorted(self.plan.offsets.items(), key=lambda kv: kv[1]):
            node = by_id[node_id]
            self.declare(node, f"t_{self.names[node_id]}", f"{ctype(node.dtype)} *", f"(ws + {offset})",
                         node.type_str)
        for node in self.graph.nodes:
            if node.prim.name == "const" and node.id not in self.pointer:
                k = f"k_{self.names[node.id]}"
                self.pointer[node.id] = f"(&{k})"
                self.ptr_types[f"(&{k})"] = f"const {ctype(node.dtype)} *"
                self.out(f"const {ctype(node.dtype)} {k} = "
                         f"{literal(node.params['value'].flat[0], node.dtype)};  (void){k};")
        header, self.lines = self.lines, []
        blocks = []
        for step in self.plan.steps:
            self.lines = []
            if isinstance(step, P.Loop):
                self.emit_loop(step)
            elif step.into is not None:
                _matmul(self, step.node, into=step.into, beta=step.beta, terms=step.terms)
            else:
                CALLS[step.node.prim.c](self, step.node)
            self.kernels += 1
            blocks.append(self.lines)
        for i, node in self.plan.output_copies:
            self.lines = []
            self.emit_copy(i, node)
            blocks.append(self.lines)
        functions, body = outline(blocks, self.ptr_types, self.name)
        self.lines = header + body
        self.out("return GRADC_OK;")
        self.out("}", 0)
        return "\n\n".join(self.jit_table() + functions + ["\n".join(self.lines)])

    # ---- fused loops -----------------------------------------------------------------------------
    def emit_loop(self, loop):
        domain = loop.domain
        loop.local = {m.id for m in loop.members if not P.is_reduction(m)}
        loop.vars = [f"i{k}" for k in range(len(domain))]
        reductions = [m for m in loop.members if P.is_reduction(m)]
        flat = len(domain) > 1 and self._flat_ok(loop)
        names = ", ".join(self.names[m.id] for m in loop.members)
        # Reductions over trailing loop dimensions keep a local accumulator; others accumulate
        # into their (zeroed) memory.
        accum = {}
        for r in reductions:
            reduced = self._reduced_vars(r, loop)
            depth = len(domain) - len(reduced)
            trailing = reduced == loop.vars[depth:]
            accum[r.id] = (depth if (trailing and not flat) or (flat and depth == 0) else None)
        threads = self._threads_for(loop, reductions, accum)
        if threads > 1:
            self.spread.update(m.id for m in loop.members if m.id in self.plan.stored)
        # Sums into memory across the rows the threads split go to a copy per thread (partials).
        self.partials = {r.id for r in reductions if threads > 1 and accum[r.id] is None
                         and loop.vars[0] in self._reduced_vars(r, loop)}
        self.out(f"/* loop over {list(domain)}: {names}"
                 + (f" ({threads} threads) */" if threads > 1 else " */"))
        for r in reductions:
            if accum[r.id] is None and r.id not in self.partials:
                self._init_reduction_memory(r)
        self.out("{")
        indent = 2
        for r in reductions:                # in the loop's block: stack space is reused after it
            if r.id in self.partials:
                self._init_partials(r, threads, indent)
        outer_vars = ["i"] if flat else loop.vars
        bounds = [int(np.prod(domain))] if flat else list(domain)
        self._open_accumulators(reductions, accum, 0, indent)
        split = [r for r in reductions if accum[r.id] == 0]
        if threads > 1:
            # NOTE: each thread sums its own contiguous range; the partial sums are added in
            # thread order afterwards, so results do not depend on timing.
            for r in split:
                self.out(f"{self._acc_type(r)} part_{self.names[r.id]}[{threads}] = {{0}};", indent)
            self.out(f"GRADC_PARALLEL({threads})", indent)
            self.out("{", indent)
            indent += 1
            self.out("const int64_t t = gradc_thread(), nt = gradc_threads();", indent)
            self.out(f"const int64_t lo = {bounds[0]} * t / nt, hi = {bounds[0]} * (t + 1) / nt;",
                     indent)
            self._open_accumulators(reductions, accum, 0, indent)
        self.flat_index = "i" if flat else None
        for k, (v, d) in enumerate(zip(outer_vars, bounds)):
            if k > 0:
                self._open_accumulators(reductions, accum, k, indent)
            if k == len(outer_vars) - 1:
                if self._independent(reductions, accum, loop, flat) and \
                        not self._simd_pragma(reductions, accum, 0 if flat else k, indent):
                    self.out("GRADC_IVDEP", indent)
            low, high = ("lo", "hi") if k == 0 and threads > 1 else ("0", d)
            self.out(f"for (int64_t {v} = {low}; {v} < {high}; {v}++) {{", indent)
            indent += 1
        # Sums over axes of length 1 only accumulate one point: opened and stored at the innermost
        # level (with no loop at all, depth 0 is the level below).
        innermost = not flat and len(domain) > 0
        if innermost:
            self._open_accumulators(reductions, accum, len(domain), indent)
        for member in loop.members:
            self.emit_member(member, loop, indent, accum)
        if innermost:
            self._close_accumulators(reductions, accum, len(domain), indent, loop)
        for k in range(len(outer_vars), 0, -1):
            indent -= 1
            self.out("}", indent)
            if k > 1:
                self._close_accumulators(reductions, accum, k - 1, indent, loop)
        if threads > 1:
            for r in split:
                self.out(f"part_{self.names[r.id]}[t] = acc_{self.names[r.id]};", indent)
            indent -= 1
            self.out("}", indent)
            for r in split:
                name = self.names[r.id]
                self.out(f"for (int k = 0; k < {threads}; k++) acc_{name} += part_{name}[k];",
                         indent)
            for r in reductions:
                if r.id in self.partials:
                    self._combine_partials(r, threads, indent)
        self._close_accumulators(reductions, accum, 0, indent, loop)
        self.out("}")
        self.flat_index = None
        self.partials = set()

    def _threads_for(self, loop, reductions, accum):
        """Threads for a loop: only big ones, and only if every reduction can be split by rows."""
        size = int(np.prod(loop.domain)) if loop.domain else 1
        if self.threads < 2 or size < P.PARALLEL_MIN or not loop.domain:
            return 1
        outer = size if (len(loop.domain) > 1 and self._flat_ok(loop)) else loop.domain[0]
        threads = min(self.threads, outer)
        for r in reductions:
            if accum[r.id] == 0 and r.prim.c != "sum":
                return 1
            if accum[r.id] is None and loop.vars[0] in self._reduced_vars(r, loop) \
                    and threads * r.nbytes > P.PARTIALS_MAX_BYTES:
                return 1
        return threads

    def _flat_ok(self, loop):
        """A single flat loop when every access is at the loop's own point or loop-invariant."""
        if any(P.is_reduction(m) and len(self._reduced_vars(m, loop)) != len(loop.domain)
               for m in loop.members):
            return False
        identity = row_major(loop.domain)
        for member in loop.members:
            for inp, index in self._reads(member, loop):
                for off in self._accesses(inp, index, loop):
                    coefs = [off.coefs.get(v, 0) for v in loop.vars]
                    if coefs != identity and any(coefs):
                        return False
        return True

    def _reads(self, m, loop):
        """(input, index it is read at) for a loop member at the loop's point."""
        if P.is_reduction(m):
            return [(m.inputs[0], self.point_index(m.inputs[0], loop))]
        point = self.point_index(m, loop)
        if P.is_view(m):
            return [(m.inputs[0], view_input_index(m, point))]
        return [(inp, point) for inp in m.inputs]

    def _accesses(self, node, index, loop):
        """Flat offsets of the memory reads that reading node at index performs (for _flat_ok)."""
        if node.id in loop.local and _is_point(index, node, loop):
            return []
        if P.uniform_value(node) is not None:
            return []
        if P.is_view(node) and node.id not in self.plan.materialized:
            return self._accesses(node.inputs[0], view_input_index(node, index), loop)
        return [offset_of(index, node.shape)]

    def point_index(self, node, loop):
        """The per-dimension index of node's own elements at the loop's current point."""
        real = iter(loop.vars)
        return [Affine() if d == 1 else Affine(0, {next(real): 1}) for d in node.shape]

    def _reduced_vars(self, r, loop):
        x = r.inputs[0]
        real = iter(loop.vars)
        out = []
        for axis, d in enumerate(x.shape):
            if d != 1:
                v = next(real)
                if axis in r.params["axes"]:
                    out.append(v)
        return out

    def _reduced_index(self, r, loop):
        """Index into a reduction's output at the loop point (reduced axes dropped)."""
        full = self.point_index(r.inputs[0], loop)
        return [idx for axis, idx in enumerate(full) if axis not in r.params["axes"]]

    def _init_value(self, r):
        if r.prim.c == "sum":
            return literal(0, r.dtype)
        return "(-INFINITY)" if r.dtype.kind == "f" else ("INT64_MIN" if r.dtype.itemsize == 8
                                                          else "INT32_MIN")

    def _combine(self, r, acc, value):
        if r.prim.c == "sum":
            return f"{acc} += {value};"
        f = "f" if r.dtype == np.float32 else ""
        fn = f"gradc_max{f}" if r.dtype.kind == "f" else "gradc_maxi"
        return f"{acc} = {fn}({acc}, {value});"

    def _init_reduction_memory(self, r):
        self.out(f"for (int64_t k = 0; k < {r.size}; k++) {self.ptr(r)}[k] = {self._init_value(r)};"
                 f"  {self.comment(r)}")

    def _init_partials(self, r, threads, indent):
        """A copy of r's output per thread, on the stack; copies of threads OpenMP did not start
        keep the initial value, so combining all of them is always right."""
        name = f"part_{self.names[r.id]}"
        self.out(f"{ctype(r.dtype)} {name}[{threads}][{r.size}];  {self.comment(r)}", indent)
        self.out(f"for (int p = 0; p < {threads}; p++) for (int64_t k = 0; k < {r.size}; k++) "
                 f"{name}[p][k] = {self._init_value(r)};", indent)

    def _combine_partials(self, r, threads, indent):
        """r's output from the per-thread copies, combined in thread order (results do not depend
        on timing)."""
        name, out = f"part_{self.names[r.id]}", f"{self.ptr(r)}[k]"
        self.out(f"for (int64_t k = 0; k < {r.size}; k++) {{ {out} = {name}[0][k]; "
                 f"for (int p = 1; p < {threads}; p++) {self._combine(r, out, f'{name}[p][k]')} }}"
                 f"  {self.comment(r)}", indent)

    def _acc_type(self, r):
        # NOTE: float32 sums accumulate in double: a long float32 running sum drifts (NumPy sums
        # pairwise); the conversion costs little next to the memory traffic.
        return "double" if r.prim.c == "sum" and r.dtype == np.float32 else ctype(r.dtype)

    def _open_accumulators(self, reductions, accum, depth, indent):
        for r in reductions:
            if accum[r.id] == depth:
                self.out(f"{self._acc_type(r)} acc_{self.names[r.id]} = {self._init_value(r)};",
                         indent)

    def _simd_pragma(self, reductions, accum, depth, indent):
        """Lets GCC vectorise the innermost loop (at `depth`) when the sums it carries are its only
        dependence: every local accumulator opened at or outside it is updated inside it, so all
        of them are named (only those additions are reordered)."""
        carried = [r for r in reductions if accum[r.id] is not None and accum[r.id] <= depth]
        if carried and all(r.prim.c == "sum" for r in carried):
            self.out(f"GRADC_SIMD_SUM({', '.join('acc_' + self.names[r.id] for r in carried)})",
                     indent)
            return True
        return False

    def _independent(self, reductions, accum, loop, flat):
        """Whether the innermost loop's iterations are independent: no reduction accumulates
        into memory across it (a local accumulator carries those sums instead)."""
        inner = "i" if flat else loop.vars[-1]
        return not any(accum[r.id] is None and (flat or inner in self._reduced_vars(r, loop))
                       for r in reductions)

    def _close_accumulators(self, reductions, accum, depth, indent, loop):
        for r in reductions:
            if accum[r.id] == depth:
                index = self._reduced_index(r, loop)
                self.out(f"{self.ptr(r)}[{offset_of(index, r.shape).c()}] = acc_{self.names[r.id]};"
                         f"  {self.comment(r)}", indent)

    def emit_member(self, m, loop, indent, accum):
        name = self.names[m.id]
        reads = [self.read(inp, index, loop) for inp, index in self._reads(m, loop)]
        if P.is_reduction(m):
            value = reads[0]
            if accum[m.id] is not None:
                self.out(self._combine(m, f"acc_{name}", value) + f"  {self.comment(m)}", indent)
            else:
                off = offset_of(self._reduced_index(m, loop), m.shape)
                target = f"part_{name}[t]" if m.id in self.partials else self.ptr(m)
                self.out(self._combine(m, f"{target}[{off.c()}]", value)
                         + f"  {self.comment(m)}", indent)
            return
        index = self.point_index(m, loop)
        if P.is_view(m):
            expr = reads[0]
        else:
            expr = self.template(m).format(*reads, f="f" if m.dtype == np.float32 else "",
                                           ctype=EXPR_CTYPES[m.dtype.name])
        self.out(f"const {ctype(m.dtype)} v_{name} = {expr};  {self.comment(m)}", indent)
        if m.id in self.plan.stored:
            off = offset_of(index, m.shape)
            self.out(f"{self.ptr(m)}[{self.subscript(off)}] = v_{name};", indent)


    # ---- copies of outputs that are inputs, constants or repeated values ---------------------------
    def emit_copy(self, i, node):
        t = ctype(node.dtype)
        value = P.uniform_value(node)
        self.out(f"/* output {i} is {self.names[node.id]} */")
        if value is not None and P.resolve(node, self.plan.alias_of).id not in self.pointer:
            self.out(f"for (int64_t k = 0; k < {node.size}; k++) out{i}[k] = "
                     f"{literal(value, node.dtype)};")
            return
        self.out(f"memcpy(out{i}, {self.ptr(node)}, {node.size} * sizeof({t}));")


def _is_point(index, node, loop):
    real = [idx for idx, d in zip(index, node.shape) if d != 1]
    return (len(real) == len(loop.vars)
            and all(idx.const == 0 and idx.coefs == {v: 1} for idx, v in zip(real, loop.vars)))


# ---- calls: one lowering per non-fused C form --------------------------------------------------------

def _matmul(em, node, into=None, beta=0, terms=None):
    """C = A @ B, or with `into` and beta = 1, into += A @ B (a term of a sum of products), or with
    `terms` their sum as one product with the terms' operands stacked along k (stack.py; `node`
    is the first term, whose operands start the stacked memory). A product shared among threads
    runs one block of rows or of k per thread (plan.thread_blocks); blocks of k after the first go
    to copies on the stack, added to C after."""
    a, b = node.inputs
    m, k, n = P.product_shape(node)
    if terms:
        k = sum(P.product_shape(t)[1] for t in terms)
    batch = int(np.prod(node.shape[:-2], dtype=np.int64))
    # The operand read most decides whether its memory is spread over the cores' caches.
    reads = [sum(t.inputs[i].size for t in terms or [node]) for i in (0, 1)]
    most = node.inputs[int(reads[1] > reads[0])]
    largest = em.plan.folded.get(most.id, (most,))[0]
    axis, blocks = P.thread_blocks(node, em.threads, k,
                                   spread=P.is_source(largest) or largest.id in em.spread)
    if axis == "rows":
        em.spread.add(into.id if into is not None else node.id)
    f = "f" if node.dtype == np.float32 else "d"
    operands = []
    for x, nrows, cols in ((a, m, k), (b, k, n)):
        base, trans, offset = em.plan.folded.get(x.id, (x, False, 0))
        ld = nrows if trans else cols
        pointer = em.ptr(base) + (f" + {offset}" if offset else "")
        operands.append((pointer, int(trans), ld, nrows * cols))
    (pa, ta, lda, sa), (pb, tb, ldb, sb) = operands
    into = into or node
    rows, depth = (m // blocks, k) if axis == "rows" else (m, k // blocks)
    shared = {"rows": f", {blocks} threads of {rows} rows", "k": f", {blocks} threads, {depth} of k "
              f"each", "": ""}[axis]
    what = (f"sum of {len(terms)} products stacked along k" if terms else
            f"matmul {em.names[a.id]} {em.names[b.id]}")
    em.out(f"/* {em.names[into.id]} {'+' if beta else ''}= {what}{shared}  ({node.loc}) */")
    c = f"{em.ptr(into)} + bi * {m * n}"
    if axis == "rows":      # a block of rows of op(A) starts `rows` columns on if A is transposed
        pa, c = f"{pa} + r * {rows if ta else rows * lda}", f"{c} + r * {rows * n}"
    elif axis == "k":
        pa = f"{pa} + r * {depth * lda if ta else depth}"
        pb = f"{pb} + r * {depth if tb else depth * ldb}"
        part = f"part_{em.names[into.id]}"
        em.out("{")
        em.out(f"{ctype(node.dtype)} {part}[{blocks - 1}][{batch * m * n}];", 2)
        c = f"(r ? {part}[r - 1] + bi * {m * n} : {c})"

    def call(beta):
        if axis or P.is_small_shape(m, k, n):
            slot = em.jit_slot(f, (ta, tb, rows, n, depth, lda, ldb, n, beta))
            gemm = f"gradc_gemm_small_{f}(&{em.name}_jit_{f}[{slot}], "
        else:
            gemm = f"gradc_gemm_{f}("
        return (f"for (int64_t bi = 0; bi < {batch}; bi++) {gemm}{ta}, {tb}, {rows}, {n}, "
                f"{depth}, {pa} + bi * {sa}, {lda}, {pb} + bi * {sb}, {ldb}, {beta}, {c}, {n});")

    if not axis:
        em.out(call(beta))
        return
    indent = 2 if axis == "k" else 1
    em.out(f"GRADC_PARALLEL({blocks})", indent)
    em.out("{", indent)
    em.out("const int64_t t = gradc_thread(), nt = gradc_threads();", indent + 1)
    em.out(f"for (int64_t r = t; r < {blocks}; r += nt) {{", indent + 1)   # fewer threads: more
    if axis == "k" and beta:                                                 # blocks each
        em.out(f"if (r) {call(0)}", indent + 2)
        em.out(f"else {call(beta)}", indent + 2)
    else:
        em.out(call(0 if axis == "k" else beta), indent + 2)
    em.out("}", indent + 1)
    em.out("}", indent)
    if axis == "k":
        em.out(f"for (int64_t q = 0; q < {batch * m * n}; q++) "
               f"for (int p = 0; p < {blocks - 1}; p++) {em.ptr(into)}[q] += {part}[p][q];", 2)
        em.out("}")


def _index_loop(em, node, indices, dims, wrap, body):
    """Loop over the (broadcast) index arrays computing a checked row offset into dims."""
    count = int(np.prod(indices[0].shape, dtype=np.int64))
    em.out(f"for (int64_t s = 0; s < {count}; s++) {{  {em.comment(node)}")
    em.out("int64_t row = 0;", 2)
    for idx, dim in zip(indices, dims):
        em.out(f"{{ int64_t j = gradc_index((int64_t){em.ptr(idx)}[s], {dim}, {int(wrap)}); "
               f"if (j < 0) return GRADC_ERR_INDEX; row = row * {dim} + j; }}", 2)
    em.out(body, 2)
    em.out("}")


def _gather(em, node):
    x, *indices = node.inputs
    rest = int(np.prod(x.shape[len(indices):], dtype=np.int64))
    _index_loop(em, node, indices, x.shape[:len(indices)], node.params["wrap"],
                f"for (int64_t r = 0; r < {rest}; r++) {em.ptr(node)}[s * {rest} + r] = "
                f"{em.ptr(x)}[row * {rest} + r];")


def _scatter_add(em, node):
    g, *indices = node.inputs
    shape = node.params["shape"]
    rest = int(np.prod(shape[len(indices):], dtype=np.int64))
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


def _unslice(em, node):
    x = node.inputs[0]
    p = node.params
    em.out(f"memset({em.ptr(node)}, 0, {node.size} * sizeof({ctype(node.dtype)}));  "
           f"{em.comment(node)}")
    _strided_copy(em, node, x.shape, em.ptr(node),
                  lambda idx: [Affine(a).plus(i.scaled(s)) for i, a, s in
                               zip(idx, p["starts"], p["steps"])],
                  (em.ptr(x), x.shape), lambda idx: idx)


def _concatenate(em, node):
    axis = node.params["axis"]
    em.out(em.comment(node))
    start = 0
    for x in node.inputs:
        _strided_copy(em, node, x.shape, em.ptr(node),
                      lambda idx, s=start: [i.plus(Affine(s)) if k == axis else i
                                            for k, i in enumerate(idx)],
                      (em.ptr(x), x.shape), lambda idx: idx)
        start += x.shape[axis]


def _argmax(em, node):
    x = node.inputs[0]
    axis = node.params["axis"]
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    n = x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    px, po = em.ptr(x), em.ptr(node)
    em.out(f"for (int64_t o = 0; o < {outer}; o++) for (int64_t r = 0; r < {inner}; r++) {{  "
           f"{em.comment(node)}")
    em.out(f"int64_t best = 0; {ctype(x.dtype)} top = {px}[o * {n * inner} + r];", 2)
    nan_first = " || (v != v && top == top)" if x.dtype.kind == "f" else ""   # NumPy: first NaN wins
    em.out(f"for (int64_t j = 1; j < {n}; j++) {{ {ctype(x.dtype)} v = {px}[o * {n * inner} + j * "
           f"{inner} + r]; if (v > top{nan_first}) {{ top = v; best = j; }} }}", 2)
    em.out(f"{po}[o * {inner} + r] = best;", 2)
    em.out("}")


CALLS = {"matmul": _matmul, "gather": _gather, "scatter_add": _scatter_add, "unslice": _unslice,
         "concatenate": _concatenate, "argmax": _argmax}


# ---- outlining: a step that repeats (an unrolled loop's body) becomes one function ----------------

_POINTER = re.compile(r"\(&k_[a-z]+\)|\b(?:p|t)_[a-z]+\b|\bout[0-9]+\b")
_LOCAL = re.compile(r"\b(?:v|acc|part)_[a-z]+\b")
_NODE_COMMENT = re.compile(r"/\* [a-z]+ = (\S+)[^*]*?(\([^()]*\)) \*/")
_LOOP_COMMENT = re.compile(r"(/\* loop over \[[0-9, ]*\]):[^*]*\*/")


def _canonical(block):
    """A step's text with its pointers and locals renamed by first use and node names dropped from
    comments, and the pointers in that order: equal texts are the same computation on other data."""
    text = "\n".join(block)
    pointers = list(dict.fromkeys(_POINTER.findall(text)))
    names = {p: f"a{i}" for i, p in enumerate(pointers)}
    text = _POINTER.sub(lambda m: names[m.group(0)], text)
    locals_ = {v: f"v{i}" for i, v in enumerate(dict.fromkeys(_LOCAL.findall(text)))}
    text = _LOCAL.sub(lambda m: locals_[m.group(0)], text)
    text = _LOOP_COMMENT.sub(r"\1 */", _NODE_COMMENT.sub(r"/* \1  \2 */", text))
    return text, pointers


def outline(blocks, ptr_types, prefix):
    """(static functions for steps that occur more than once, the kernel's body lines). Keeps the
    compile time of unrolled loops in proportion to the loop body, not its length."""
    canon = [_canonical(b) for b in blocks]
    counts, const = {}, {}
    for text, pointers in canon:
        counts[text] = counts.get(text, 0) + 1
        # A parameter any call passes read-only is read-only in the shared text: declare it const.
        flags = [ptr_types[p].startswith("const") for p in pointers]
        const[text] = [a or b for a, b in zip(const.get(text, flags), flags)]
    functions, fn_names, body = [], {}, []
    for block, (text, pointers) in zip(blocks, canon):
        body.append("")
        if counts[text] < 2:
            body.extend(block)
            continue
        if text not in fn_names:
            fn_names[text] = f"{prefix}_step{len(fn_names)}"
            params = ", ".join(("" if ptr_types[p].startswith("const") or not c else "const ")
                               + f"{ptr_types[p]}a{i}"
                               for i, (p, c) in enumerate(zip(pointers, const[text])))
            inner = "\n".join("    " + line for line in text.splitlines())
            functions.append(f"static GRADC_NOINLINE int {fn_names[text]}({params})\n{{\n{inner}\n"
                             f"    return GRADC_OK;\n}}")
        args = ", ".join(p.replace("(&", "&").rstrip(")") if p.startswith("(&") else p
                         for p in pointers)
        first = block[0].strip()
        note = first[first.index("/*"):] if "/*" in first else ""
        body.append(f"    if ((rc = {fn_names[text]}({args}))) return rc;  {note}")
    return functions, body


# ---- the batch split's driver: blocks of the batch's rows on threads (split.py) -----------------

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
        inner = int(np.prod(node.shape[axis + 1:], dtype=np.int64)) * node.dtype.itemsize
        count, run, whole = int(np.prod(node.shape[:axis], dtype=np.int64)), split.rows * inner, \
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
             f"    GRADC_PARALLEL({blocks})", "    {",
             "        const int64_t t = gradc_thread(), nt = gradc_threads();",
             f"        for (int64_t r = t; r < {blocks}; r += nt) {{",
             f"            char *bw = ws + r * {stride};",
             f"            void *a[{n_args}];"]
    lines += ["            " + line for line in body]
    lines.append(f"            rc[r] = {block_name}(a, bw);")
    lines += ["            " + line for line in after]
    lines.append("        }")
    if partials:
        lines.append("        GRADC_BARRIER")
    for node, arg, off in partials:
        ct = ctype(node.dtype)
        lines += [f"        {{  /* output {arg - base}: block 0's sum + the others', each thread a "
                  f"range */",
                  f"            {ct} *out = ({ct} *)args[{arg}];",
                  f"            const int64_t lo = {node.size} * t / nt, hi = {node.size} * (t + 1) "
                  f"/ nt;",
                  f"            for (int64_t b = 1; b < {blocks}; b++) {{",
                  f"                const {ct} *part = (const {ct} *)(ws + b * {stride} + {off});",
                  "                for (int64_t q = lo; q < hi; q++) out[q] += part[q];",
                  "            }", "        }"]
    lines += ["    }",
              f"    for (int b = 0; b < {blocks}; b++) if (rc[b]) return rc[b];",
              "    return GRADC_OK;", "}"]
    return "\n".join(lines), blocks * stride


def generate(graph, plan, name, names, threads=1, static=False):
    """The C function for graph; returns (source text, number of loops and calls)."""
    emitter = Emitter(plan, name, names, threads, static)
    body = emitter.emit()
    return body, emitter.kernels, emitter.consts
