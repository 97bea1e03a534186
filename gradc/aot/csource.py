"""The C an AOT build writes: each export's constants, kernel and entry points (csource), given
the module's banner and declarations (Module.header / Module.c_source)."""
import numpy as np

from ..symbolic import Dim, dim_names, render
from .names import _c_string, _wrap


def _c_array(values, dtype):
    """Comma-separated C literals of a flat array, packed into ~96-column lines."""
    from ..cbackend.csyntax import literal
    dtype = np.dtype(dtype)
    items = []
    for v in values:
        # NOTE: -9223372036854775808LL is not a C literal (the minus applies to an overflowing one).
        items.append("INT64_MIN" if dtype == np.int64 and v == np.iinfo(np.int64).min
                     else literal(v, dtype))
    lines, line = [], "   "
    for item in items:
        if len(line) + len(item) + 2 > 96:
            lines.append(line.rstrip())
            line = "   "
        line += f" {item},"
    lines.append(line.rstrip())
    return "\n".join(lines)


def _export_definitions(module, export):
    """Constants, the kernel and the public entry points of one export, as C text."""
    from ..cbackend.csyntax import ctype
    code, s, m = export.code, export.symbol, module.macro
    inputs, outputs = export.io()
    out = [f"/* ---- {s}: {export.name} from {export.where} ---- */", ""]
    const_names = export.const_names()
    for node, name in zip(code.consts, const_names):
        values = np.ascontiguousarray(node.params["value"], dtype=node.dtype).ravel()
        # NOTE: the JIT passes constant arrays as data from Python; here there is no Python, so
        # they are written out. A zero-size array still needs one element to be valid C.
        out.append(f"/* constant {node.type_str} ({node.loc}) */")
        out.append(f"static const {ctype(node.dtype)} {name}[{max(values.size, 1)}] = {{")
        out.append(_c_array(values if values.size else np.zeros(1, node.dtype), node.dtype))
        out.append("};")
    out += ["", code.function, ""]
    params = export.c_params()
    args = ([f"(void *){c}" for _, c, _, _ in inputs] + [f"(void *){c}" for c in const_names]
            + [c for _, c, _, _ in outputs])
    sizes = export.sizes()
    call_args = sizes + [c for _, c, _, _ in inputs + outputs]
    check = []
    if sizes:       # the named sizes go to the kernel after the outputs
        args.append("(void *)dims")
        check = [f"    if ({' || '.join(f'{d} < 1' for d in sizes)}) return {m}_ERR_SIZE;",
                 f"    const int64_t dims[{len(sizes)}] = {{{', '.join(sizes)}}};"]
    work_bytes = code.workspace_bytes
    if isinstance(work_bytes, Dim):       # in the size parameters' names
        param = dict(zip(dim_names(export.lowered.graph), sizes))
        work_bytes = render(work_bytes, lambda name: f"(size_t){param[name]}", parens=True)
    out += [_wrap(f"int {s}_work", params + ["void *work"]), "{", *check,
            _indent(_wrap(f"void *args[{max(len(args), 1)}] = ", args or ["NULL"], ";", "{}", 96)),
            f"    return {s}_kernel(args, work);", "}", "",
            _wrap(f"int {s}", params), "{",
            *check[:1],
            f"    size_t bytes = {s}_work_bytes({', '.join(sizes)});",
            "    void *work = bytes ? malloc(bytes) : NULL;",
            "    int code;",
            f"    if (bytes && work == NULL) return {m}_ERR_ALLOC;",
            _indent(_wrap(f"code = {s}_work", call_args + ["work"], ";", width=96)),
            "    free(work);", "    return code;", "}", "",
            f"size_t {s}_work_bytes({export.work_bytes_params()}) {{ return {work_bytes}; }}",
            f"int {s}_n_in(void) {{ return {len(inputs)}; }}",
            f"int {s}_n_out(void) {{ return {len(outputs)}; }}", ""]
    for kind, rows in (("in", inputs), ("out", outputs)):
        names = [_c_string(readable) for _, _, _, readable in rows] + ["NULL"]
        out.append(_wrap(f"static const char *const {s}_names_{kind}[{len(names)}] = ", names, ";",
                         "{}"))
        out += [f"const char *{s}_name_{kind}(int i)", "{",
                f"    return (i >= 0 && i < {len(rows)}) ? {s}_names_{kind}[i] : NULL;", "}", ""]
    return "\n".join(out) + "\n"


def _indent(text, prefix="    "):
    return prefix + text.replace("\n", "\n" + prefix)
