"""C emission: a plain walk of a lowered Plan (lower.py) into one function
`int NAME(void **args, void *work)` whose args are the input leaves, then the constant arrays, then
the outputs. Temporaries are named after the graph's nodes (as in `as_text()`), and every statement
carries a comment with the node and the user's file:line.

Each step is written as a template whose pointers and locals are numbered by first use; steps the
outlining pass marked as repeats, whose templates are equal, become one static function called
per step (its parameters are the pointers), the others are filled in place."""
import numpy as np

from . import plan as P
from ..symbolic import c_name, dim_names, prod
from .calls import CALLS, runtime_call
from .csyntax import EXPR_CTYPES, ctype, literal, passed_consts
from .loops import (is_point, local_ids, member_reads, offset_of, point_index, reduced_index,
                    view_input_index)

_PTR, _LOCAL, _END = "\x01", "\x03", "\x02"     # template markers: pointer / local number, end


class Emitter:
    def __init__(self, plan, name, names, static=False):
        self.plan = plan
        self.graph = plan.graph
        self.name = name
        self.names = names               # node id -> jaxpr-style letter name
        self.lines = []                  # (indent, code, note)
        self.kernels = 0
        self.static = static             # the kernel is file-local (AOT modules)
        self.flat_index = None           # "i" inside a flat loop
        self.ptr_types = {}              # pointer name -> its C type, e.g. "const float *"
        self.pointer = {}                # node id -> C pointer expression
        self.consts = passed_consts(self.graph)
        self.jits = {}                   # "f"/"d" -> {GEMM shape: slot in the kernel's JIT table}
        self.step = None                 # (pointers, locals) numbered in the step being written
        self.helpers = []                # C functions steps call, written before the kernel

    # ---- lines, pointers and locals --------------------------------------------------------------
    def out(self, code, indent=1, note=""):
        self.lines.append((indent, code, note))

    def note(self, text, indent=1):
        self.out("", indent, text)

    def comment(self, node):
        rhs = node.prim.name + (" " + " ".join(self.names[i.id] for i in node.inputs)
                                if node.inputs else "")
        return f"{self.names[node.id]} = {rhs}  ({node.loc})"

    def ptr(self, node):
        return self._mark(_PTR, 0, self.pointer[P.resolve(node, self.plan.alias_of).id])

    def local(self, prefix, node):
        return self._mark(_LOCAL, 1, f"{prefix}_{self.names[node.id]}")

    def _mark(self, marker, kind, name):
        """name itself outside a step; inside one, its number in the step's template."""
        if self.step is None:
            return name
        names = self.step[kind]
        if name not in names:
            names.append(name)
        return f"{marker}{names.index(name)}{_END}"

    def template(self, node):
        c = node.prim.c
        if isinstance(c, dict):
            kind = node.inputs[0].dtype.kind if node.inputs else node.dtype.kind
            c = c["f" if kind == "f" else "i"]
        return c

    def read(self, node, index, loop):
        """C expression for node's value at per-dimension index, inside loop (or None)."""
        if loop is not None and node.id in loop.local and is_point(index, node, loop):
            return self.local("v", node)
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
        lines = ["/* MKL's kernels for the small products (gradc_blas.h), made when the library "
                 "loads */"]
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
        self.out(f"{ptr_type}{name} = ({ptr_type.strip()}){init};", note=note)

    def emit(self):
        g = self.graph
        n_in = len(g.inputs)
        self.out(f"{'static ' if self.static else ''}int {self.name}(void **args, void *work)", 0)
        self.out("{", 0)
        self.out("char *ws = (char *)work;")
        self.out("int rc = GRADC_OK;")
        self.out("(void)ws; (void)rc;")
        read = {x.id for n in g.nodes for x in n.inputs} | {o.id for o in g.outputs}
        for i, node in enumerate(g.inputs):
            self.declare(node, f"p_{self.names[node.id]}", f"const {ctype(node.dtype)} *", f"args[{i}]",
                         f"input {node.name or i}: {node.type_str}")
            if node.id not in read:
                self.out(f"(void)p_{self.names[node.id]};", note="not read (a loop's index, ...)")
        for j, node in enumerate(self.consts):
            self.declare(node, f"p_{self.names[node.id]}", f"const {ctype(node.dtype)} *",
                         f"args[{n_in + j}]", f"constant {node.type_str} ({node.loc})")
            self.out(f"(void)p_{self.names[node.id]};", note="read as a literal where it is uniform")
        base = n_in + len(self.consts)
        outs = {i: node_id for node_id, i in self.plan.output_of.items()}
        for i, out in enumerate(g.outputs):
            t = f"{ctype(out.dtype)} *"
            self.ptr_types[f"out{i}"] = t
            self.out(f"{t}out{i} = ({t.strip()})args[{base + i}];", note=f"output {i}: {out.type_str}")
            if i in outs:
                self.pointer[outs[i]] = f"out{i}"
        for k, name in enumerate(dim_names(g)):     # named sizes, after the outputs
            if k == 0:
                self.out(f"const int64_t *dims = (const int64_t *)args[{base + len(g.outputs)}];",
                         note="the named sizes")
            self.out(f"const int64_t {c_name(name)} = dims[{k}];  (void){c_name(name)};")
        by_id = {n.id: n for n in g.nodes}
        for node_id, offset in sorted(self.plan.offsets.items(), key=lambda kv: kv[1]):
            node = by_id[node_id]
            self.declare(node, f"t_{self.names[node_id]}", f"{ctype(node.dtype)} *", f"(ws + {offset})",
                         node.type_str)
        for node in self.graph.nodes:
            if node.prim.name == "dim_value":
                k = f"k_{self.names[node.id]}"
                self.pointer[node.id] = f"(&{k})"
                self.ptr_types[f"(&{k})"] = f"const {ctype(node.dtype)} *"
                self.out(f"const {ctype(node.dtype)} {k} = ({ctype(node.dtype)}){node.params['size']};"
                         f"  (void){k};", note=f"the size {node.params['size']!r}")
            if node.prim.name == "const" and node.id not in self.pointer:
                k = f"k_{self.names[node.id]}"
                self.pointer[node.id] = f"(&{k})"
                self.ptr_types[f"(&{k})"] = f"const {ctype(node.dtype)} *"
                self.out(f"const {ctype(node.dtype)} {k} = "
                         f"{literal(node.params['value'].flat[0], node.dtype)};  (void){k};")
        header = [_render(line) for line in self.lines]
        blocks = []
        for step in self.plan.steps:
            blocks.append(self._template(step, self._emit_step))
        for i, node in self.plan.output_copies:
            blocks.append(self._template(None, lambda _, i=i, node=node: self.emit_copy(i, node)))
        functions, body = self._outline(blocks)
        lines = header + body + ["    return GRADC_OK;", "}"]
        return "\n\n".join(self.jit_table() + self.helpers + functions + ["\n".join(lines)])

    def _emit_step(self, step):
        if isinstance(step, P.Loop):
            self.emit_loop(step)
        else:
            CALLS.get(step.node.prim.c, runtime_call)(self, step)
        self.kernels += 1

    def _template(self, step, emit):
        """(step, template lines, pointers, locals) of one step written as a template."""
        self.lines, self.step = [], ([], [])
        emit(step)
        block = (step, self.lines, *self.step)
        self.step = None
        return block

    def _outline(self, blocks):
        """(static functions for steps that repeat, the kernel's body lines). Steps are one function
        when the outlining pass gave them one signature and their templates are equal too."""
        # NOTE: the pointers' element types are part of the key: a copy loop reads the same for
        # float and double arrays (the regex outlining this replaced once shared one function
        # between them, writing doubles into float outputs).
        key_of = [(self.plan.outlined.get(step.index) if step is not None else None,
                   "\n".join(f"{indent}{code}" for indent, code, _ in lines),
                   tuple(self.ptr_types[p].replace("const ", "") for p in pointers))
                  for step, lines, pointers, _ in blocks]
        counts = {}
        for key in key_of:
            counts[key] = counts.get(key, 0) + 1
        const = {}                      # a parameter any call passes read-only is declared const
        for key, (_, _, pointers, _) in zip(key_of, blocks):
            flags = [self.ptr_types[p].startswith("const") for p in pointers]
            const[key] = [a or b for a, b in zip(const.get(key, flags), flags)]
        functions, fn_names, body = [], {}, []
        for key, (step, lines, pointers, locals_) in zip(key_of, blocks):
            body.append("")
            if key[0] is None or counts[key] < 2:
                body.extend(_render(line, pointers, locals_) for line in lines)
                continue
            if key not in fn_names:
                fn_names[key] = f"{self.name}_step{len(fn_names)}"
                params = ", ".join(("" if self.ptr_types[p].startswith("const") or not c
                                    else "const ") + f"{self.ptr_types[p]}a{i}"
                                   for i, (p, c) in enumerate(zip(pointers, const[key])))
                names = [f"a{i}" for i in range(len(pointers))]
                inner = "\n".join("    " + _render(line, names, locals_) for line in lines)
                sizes = dim_names(self.graph)
                if sizes:       # the named sizes too
                    params += ", const int64_t *dims"
                    inner = "\n".join(f"    const int64_t {c_name(d)} = dims[{k}];  "
                                      f"(void){c_name(d)};" for k, d in enumerate(sizes)) + "\n" + inner
                functions.append(f"static GRADC_NOINLINE int {fn_names[key]}({params})\n{{\n"
                                 f"{inner}\n    return GRADC_OK;\n}}")
            args = ", ".join([p[1:-1] if p.startswith("(&") else p for p in pointers]
                             + (["dims"] if dim_names(self.graph) else []))
            note = next((n for _, _, n in lines if n), "")
            body.append(f"    if ((rc = {fn_names[key]}({args}))) return rc;"
                        + (f"  /* {note} */" if note else ""))
        return functions, body

    # ---- fused loops -----------------------------------------------------------------------------
    def emit_loop(self, loop):
        domain, flat, threads, accum = loop.domain, loop.flat, loop.threads, loop.accum
        chunks = loop.chunks
        loop.local = local_ids(loop)
        reductions = [m for m in loop.members if P.is_reduction(m)]
        names = ", ".join(self.names[m.id] for m in loop.members)
        self.note(f"loop over {list(domain)}: {names}" + (f" ({threads} threads)" if threads > 1
                                                          else ""))
        for r in reductions:
            if accum[r.id] is None and r.id not in loop.partials:
                self._init_reduction_memory(r)
        self.out("{")
        indent = 2
        for r in reductions:                # in the loop's block: stack space is reused after it
            if r.id in loop.partials:
                self._init_partials(r, chunks, indent)
        outer_vars = ["i"] if flat else loop.vars
        bounds = [prod(domain)] if flat else list(domain)
        self._open_accumulators(reductions, accum, 0, indent)
        split = [r for r in reductions if accum[r.id] == 0]
        if threads > 1:
            # NOTE: each chunk sums its own contiguous range; the partial sums are added in
            # chunk order afterwards, so results do not depend on timing.
            for r in split:
                self.out(f"{self._acc_type(r)} {self.local('part', r)}[{chunks}] = {{0}};", indent)
            n = chunks
            if loop.named_threads:       # the same rule as for fixed sizes, at run time
                n = "n_chunks"
                self.out(f"const int64_t n_chunks = gradc_chunks_for({prod(domain)}, {bounds[0]}, "
                         f"{threads}, {P.PARALLEL_MIN}, {P.CHUNKS_PER_THREAD}, {chunks});", indent)
            self.out(f"GRADC_PARALLEL({n}, {threads})", indent)
            self.out(f"GRADC_CHUNKS(t, {n}) {{", indent)
            indent += 1
            self.out(f"const int64_t lo = {bounds[0]} * t / {n}, hi = {bounds[0]} * (t + 1) / {n};",
                     indent)
            self._open_accumulators(reductions, accum, 0, indent)
        self.flat_index = "i" if flat else None
        for k, (v, d) in enumerate(zip(outer_vars, bounds)):
            if k > 0:
                self._open_accumulators(reductions, accum, k, indent)
            if k == len(outer_vars) - 1 and loop.simd_sums:
                sums = ", ".join(self.local("acc", r) for r in reductions if r.id in loop.simd_sums)
                self.out(f"GRADC_SIMD_SUM({sums})", indent)
            elif k == len(outer_vars) - 1 and loop.ivdep:
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
            self.emit_member(member, loop, indent)
        if innermost:
            self._close_accumulators(reductions, accum, len(domain), indent, loop)
        for k in range(len(outer_vars), 0, -1):
            indent -= 1
            self.out("}", indent)
            if k > 1:
                self._close_accumulators(reductions, accum, k - 1, indent, loop)
        if threads > 1:
            for r in split:
                self.out(f"{self.local('part', r)}[t] = {self.local('acc', r)};", indent)
            indent -= 1
            self.out("}", indent)
            self.out("GRADC_PARALLEL_END", indent)
            for r in split:
                acc, part = self.local("acc", r), self.local("part", r)
                self.out(f"for (int k = 0; k < {chunks}; k++) {acc} += {part}[k];", indent)
            for r in reductions:
                if r.id in loop.partials:
                    self._combine_partials(r, chunks, indent)
        self._close_accumulators(reductions, accum, 0, indent, loop)
        self.out("}")
        self.flat_index = None

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
        self.out(f"for (int64_t k = 0; k < {r.size}; k++) {self.ptr(r)}[k] = {self._init_value(r)};",
                 note=self.comment(r))

    def _init_partials(self, r, threads, indent):
        """A copy of r's output per chunk, on the stack."""
        name = self.local("part", r)
        self.out(f"{ctype(r.dtype)} {name}[{threads}][{r.size}];", indent, self.comment(r))
        self.out(f"for (int p = 0; p < {threads}; p++) for (int64_t k = 0; k < {r.size}; k++) "
                 f"{name}[p][k] = {self._init_value(r)};", indent)

    def _combine_partials(self, r, threads, indent):
        """r's output from the per-chunk copies, combined in chunk order (results do not depend
        on timing)."""
        name, out = self.local("part", r), f"{self.ptr(r)}[k]"
        self.out(f"for (int64_t k = 0; k < {r.size}; k++) {{ {out} = {name}[0][k]; "
                 f"for (int p = 1; p < {threads}; p++) {self._combine(r, out, f'{name}[p][k]')} }}",
                 indent, self.comment(r))

    def _acc_type(self, r):
        # NOTE: float32 sums accumulate in double: a long float32 running sum drifts (NumPy sums
        # pairwise); the conversion costs little next to the memory traffic.
        return "double" if r.prim.c == "sum" and r.dtype == np.float32 else ctype(r.dtype)

    def _open_accumulators(self, reductions, accum, depth, indent):
        for r in reductions:
            if accum[r.id] == depth:
                self.out(f"{self._acc_type(r)} {self.local('acc', r)} = {self._init_value(r)};",
                         indent)

    def _close_accumulators(self, reductions, accum, depth, indent, loop):
        for r in reductions:
            if accum[r.id] == depth:
                index = reduced_index(r, loop)
                self.out(f"{self.ptr(r)}[{offset_of(index, r.shape).c()}] = {self.local('acc', r)};",
                         indent, self.comment(r))

    def emit_member(self, m, loop, indent):
        reads = [self.read(inp, index, loop) for inp, index in member_reads(m, loop)]
        if P.is_reduction(m):
            value = reads[0]
            if loop.accum[m.id] is not None:
                self.out(self._combine(m, self.local("acc", m), value), indent, self.comment(m))
            else:
                off = offset_of(reduced_index(m, loop), m.shape)
                target = f"{self.local('part', m)}[t]" if m.id in loop.partials else self.ptr(m)
                self.out(self._combine(m, f"{target}[{off.c()}]", value), indent, self.comment(m))
            return
        index = point_index(m, loop)
        if P.is_view(m):
            expr = reads[0]
        else:
            expr = self.template(m).format(*reads, f="f" if m.dtype == np.float32 else "",
                                           ctype=EXPR_CTYPES[m.dtype.name])
        value = self.local("v", m)
        self.out(f"const {ctype(m.dtype)} {value} = {expr};", indent, self.comment(m))
        if m.id in self.plan.stored:
            off = offset_of(index, m.shape)
            self.out(f"{self.ptr(m)}[{self.subscript(off)}] = {value};", indent)

    # ---- copies of outputs that are inputs, constants or repeated values ---------------------------
    def emit_copy(self, i, node):
        t = ctype(node.dtype)
        value = P.uniform_value(node)
        self.note(f"output {i} is {self.names[node.id]}")
        if value is not None and P.resolve(node, self.plan.alias_of).id not in self.pointer:
            self.out(f"for (int64_t k = 0; k < {node.size}; k++) out{i}[k] = "
                     f"{literal(value, node.dtype)};")
            return
        self.out(f"memcpy(out{i}, {self.ptr(node)}, {node.size} * sizeof({t}));")


def _fill(text, pointers, locals_):
    """A template line with its numbered pointers and locals replaced by names."""
    if _PTR not in text and _LOCAL not in text:
        return text
    out, i = [], 0
    while True:
        j = min((k for k in (text.find(_PTR, i), text.find(_LOCAL, i)) if k >= 0), default=-1)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        end = text.index(_END, j)
        names = pointers if text[j] == _PTR else locals_
        out.append(text[i:j] + names[int(text[j + 1:end])])
        i = end + 1


def _render(line, pointers=(), locals_=()):
    indent, code, note = line
    code = _fill(code, pointers, locals_)
    note = f"/* {note} */" if note else ""
    return "    " * indent + (f"{code}  {note}" if code and note else code or note)


def generate(plan, name, names, static=False):
    """The C function for a plan; returns (source text, number of loops and calls)."""
    emitter = Emitter(plan, name, names, static)
    body = emitter.emit()
    return body, emitter.kernels
