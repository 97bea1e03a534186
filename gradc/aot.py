"""Ahead-of-time builds (API.md section 5): `gc.Module` collects exported functions and turns them
into standalone C (.c / .h), a cffi extension with a small NumPy wrapper, or a cffi FFI builder for
setuptools. What it builds needs NumPy and cffi at run time; no gradc, tracing or compiler."""
import contextlib
import inspect
import keyword
import os
import pprint
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .dtypes import Spec, short_name
from .errors import CompileError
from .jit import jit, leaf_names
from .tree import tree_flatten, tree_unflatten

# NOTE: portable code by default: no -march=native (AOT output runs on other machines of the same
# architecture); -fno-math-errno as the JIT, which lets libm calls vectorise and changes no result.
AOT_FLAGS = ["-O3", "-fno-math-errno"]
NATIVE_FLAGS = ["-march=native"]
BLAS_CHOICES = ("none", "openblas")

# Names a C parameter may not take: C99 and C++ keywords (the header is usable from C++) and
# the names the generated entry points use themselves.
_C_RESERVED = set("""auto break case char const continue default do double else enum extern float
for goto if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Bool _Complex _Imaginary bool class delete false
friend namespace new operator private protected public template this throw true try typename
using virtual args work bytes code""".split())


class BuildError(Exception):
    """A user mistake found while building (an export that does not trace, an unwritable output
    directory, ...). The message is one line and names the problem."""


def _one_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _as_spec(leaf, where):
    if isinstance(leaf, Spec):
        return leaf
    if isinstance(leaf, str):
        return Spec.parse(leaf)
    raise TypeError(f"{where}: expected a gc.Spec or a string such as 'f32[64,784]', got "
                    f"{type(leaf).__name__}")


def _c_names(names, taken=()):
    """Valid, distinct C identifiers for readable leaf names: params['w'] -> params_w."""
    used = set(taken)
    out = []
    for name in names:
        ident = re.sub(r"_+", "_", re.sub(r"\W", "_", name)).strip("_") or "arg"
        if ident[0].isdigit() or ident in _C_RESERVED:
            ident = f"{ident}_"
        candidate, k = ident, 2
        while candidate in used:
            candidate, k = f"{ident}_{k}", k + 1
        used.add(candidate)
        out.append(candidate)
    return out


def _wrap(head, items, tail="", brackets="()", width=100):
    """`head(a, b, ...)tail`, broken after commas and aligned under the bracket when too long."""
    open_, close = brackets
    line = f"{head}{open_}{', '.join(items) or 'void'}{close}{tail}"
    if len(line) <= width:
        return line
    indent = " " * (len(head) + 1)
    lines, current = [], head + open_
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else close + tail)
        if len(current) + len(piece.rstrip()) > width and current.strip() != (head + open_).strip():
            lines.append(current.rstrip())
            current = indent
        current += piece
    lines.append(current)
    return "\n".join(lines)


def _c_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- one exported function ------------------------------------------------------------------------

class Export:
    """One exported function of a Module: its specs and, traced on first use, its graph and C."""

    def __init__(self, module, fn, specs, name):
        self.module = module
        self.fn = fn
        self.name = name
        self.specs = specs                    # one pytree of gc.Spec per positional argument
        self.symbol = f"{module.name}_{name}"
        code = getattr(fn, "__code__", None)
        self.where = (f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code
                      else module.source_file)
        self._lowered = None
        self._code = None

    @property
    def lowered(self):
        """The traced, simplified graph (gc.Lowered); BuildError if the function does not trace."""
        if self._lowered is None:
            try:
                self._lowered = jit(self.fn).lower(*self.specs)
            except Exception as e:     # the user's function: report it, do not crash the build
                raise BuildError(f"{self.where}: export {self.name!r} of module "
                                 f"{self.module.name!r} failed to trace: {_one_line(e)}") from e
        return self._lowered

    @property
    def code(self):
        """The C backend's kernel for this export (a static function named <symbol>_kernel)."""
        if self._code is None:
            from .cbackend.backend import CSource
            self._code = CSource(self.lowered, name=f"{self.symbol}_kernel", static=True)
        return self._code

    def symbols(self):
        """Every C name this export defines (checked for collisions inside its module)."""
        s = self.symbol
        return [s, f"{s}_work", f"{s}_work_bytes", f"{s}_n_in", f"{s}_n_out", f"{s}_name_in",
                f"{s}_name_out", f"{s}_kernel", f"{s}_names_in", f"{s}_names_out", f"{s}_k"]

    def param_names(self):
        """Python parameter names of the export, one per spec (arg<i> where the signature has none)."""
        try:
            params = [p.name for p in inspect.signature(self.fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = []
        return [params[i] if i < len(params) else f"arg{i}" for i in range(len(self.specs))]

    def io(self):
        """(inputs, outputs): lists of (C type, C name, gradc type string, readable name)."""
        from .cbackend.emit import ctype
        graph, low = self.lowered.graph, self.lowered
        out_names = leaf_names("out", low.out_tree)
        out_c = [f"out{i}" for i in range(len(graph.outputs))]
        in_c = _c_names(low.in_names, taken=out_c)
        inputs = [(ctype(n.dtype), c, n.type_str, name)
                  for n, c, name in zip(graph.inputs, in_c, low.in_names)]
        outputs = [(ctype(n.dtype), c, n.type_str, name)
                   for n, c, name in zip(graph.outputs, out_c, out_names)]
        return inputs, outputs

    def c_params(self):
        inputs, outputs = self.io()
        return ([f"const {t} *{c}" for t, c, _, _ in inputs]
                + [f"{t} *{c}" for t, c, _, _ in outputs])

    def prototypes(self):
        """The C declarations of this export's public functions, in header order."""
        s, params = self.symbol, self.c_params()
        return [_wrap(f"int {s}", params, ";"),
                _wrap(f"int {s}_work", params + ["void *work"], ";"),
                f"size_t {s}_work_bytes(void);",
                f"int {s}_n_in(void);",
                f"int {s}_n_out(void);",
                f"const char *{s}_name_in(int i);",
                f"const char *{s}_name_out(int i);"]


# ---- the module -----------------------------------------------------------------------------------

class Module:
    """A named set of exported functions, built ahead of time into C and a Python extension.

    >>> mod = gc.Module("lecture")
    >>> @mod.export("f64[]", "f64[]", "f64[]")
    ... def grad(x, y, z):
    ...     return gc.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(x, y, z)
    >>> "int lecture_grad(const double *x" in mod.header()
    True

    `gradc build kernels.py -o OUT` writes OUT/lecture.c, .h, lecture.py and its compiled cffi
    module; `mod.ffibuilder()` serves setuptools' `cffi_modules`. `package` names the Python
    package the extension lives in when built through setuptools (see `build_py_command`).
    """

    def __init__(self, name, *, package=None):
        if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
            raise ValueError(f"gc.Module name must be a Python and C identifier, got {name!r}")
        self.name = name
        self.package = package
        self.exports = []
        frame = sys._getframe(1)
        self.source_file = os.path.basename(frame.f_code.co_filename)

    def __repr__(self):
        return f"gc.Module({self.name!r}, exports={[e.name for e in self.exports]})"

    @property
    def macro(self):
        """The prefix of the module's C macros: MLP_KERNELS for mlp_kernels."""
        return self.name.upper()

    def export(self, *specs, name=None):
        """Decorator: exports fn for the given argument specs (gc.Spec, 'f32[64,784]', or pytrees of
        them, one per positional argument). Returns fn unchanged.

        >>> @mod.export("f32[3]", name="norm2")
        ... def f(x):
        ...     return gc.sum(x * x)
        """
        parsed = []
        for i, spec in enumerate(specs):
            leaves, tree = tree_flatten(spec)
            parsed.append(tree_unflatten(tree, [_as_spec(leaf, f"export argument {i}")
                                                for leaf in leaves]))

        def decorate(fn):
            export_name = name or getattr(fn, "__name__", "")
            if not export_name.isidentifier() or keyword.iskeyword(export_name):
                raise ValueError(f"cannot export {fn!r} as {export_name!r}: give name='...' (a "
                                 "Python and C identifier)")
            export = Export(self, fn, parsed, export_name)
            taken = {s: e.name for e in self.exports for s in e.symbols()}
            clash = next((s for s in export.symbols() if s in taken), None)
            if clash is not None:
                raise ValueError(f"module {self.name!r}: export {export_name!r} would define the C "
                                 f"symbol {clash}, which export {taken[clash]!r} already uses")
            self.exports.append(export)
            return fn

        return decorate

    # ---- standalone C ----------------------------------------------------------------------------
    def _banner(self, what):
        names = ", ".join(e.name for e in self.exports) or "none"
        return "\n".join([
            f"/* {self.name}{what}: C for the gradc module '{self.name}' (exports: {names}).",
            f" * Generated by gradc {__version__} from {self.source_file}; do not edit: "
            f"rerun `gradc build {self.source_file}`.",
            " *",
            f" * compile: cc -O2 -std=c99 -c {self.name}.c   (portable: no -march flag needed)",
            " * link with: -lm",
            " *   Matrix products use a plain C loop. For OpenBLAS, compile with -DGRADC_HAVE_OPENBLAS",
            " *   and link -lscipy_openblas from the scipy-openblas32 wheel (its lib directory is",
            " *   `python -c \"import scipy_openblas32 as s; print(s.get_lib_dir())\"`).",
            " */"])

    def _error_codes(self):
        """(suffix, value, meaning) of the runtime's error codes, read from csrc/gradc_runtime.h."""
        from .cbackend.build import CSRC
        text = (CSRC / "gradc_runtime.h").read_text()
        return re.findall(r"#define GRADC_(OK|ERR_\w+)\s+(\d+)[ \t]*(?:/\*\s*(.*?)\s*\*/)?", text)

    def _declarations(self, documented):
        lines = []
        for suffix, value, meaning in self._error_codes():
            comment = f"  /* {meaning} */" if documented and meaning else ""
            lines.append(f"#define {self.macro}_{suffix} {value}{comment}")
        for export in self.exports:
            lines.append("")
            if documented:
                lines.append(self._doc_comment(export))
            lines.extend(export.prototypes())
        return lines

    def _doc_comment(self, export):
        inputs, outputs = export.io()
        doc = (inspect.getdoc(export.fn) or "").strip().splitlines()
        lines = [f"/* {export.symbol}: {export.name} from {export.where}"
                 + (f" -- {doc[0]}" if doc else "")]
        width = max([len(c) for _, c, _, _ in inputs + outputs] + [4])
        for title, rows in (("in ", inputs), ("out", outputs)):
            for k, (_, c, type_str, readable) in enumerate(rows):
                label = f" *   {title}  " if k == 0 else " *        "
                note = f"  ({readable})" if readable != c else ""
                lines.append(f"{label}{c:<{width}}  {type_str}{note}")
        lines += [f" * Returns {self.macro}_OK (0), or {self.macro}_ERR_INDEX for an out-of-range "
                  "index or label,",
                  f" * {self.macro}_ERR_ALLOC if malloc fails. _work() takes a caller workspace of "
                  "_work_bytes() bytes",
                  " * (aligned as malloc's) instead. Arrays are dense, C order. Reentrant. */"]
        return "\n".join(lines)

    def header(self):
        """The C header: prototypes, error codes, metadata functions, link line."""
        guard = f"{self.macro}_H"
        return "\n".join([
            self._banner(".h"), f"#ifndef {guard}", f"#define {guard}", "",
            "#include <stddef.h>", "#include <stdint.h>", "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            *self._declarations(documented=True), "",
            "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */", ""])

    def cdef(self):
        """The declarations for cffi's `ffi.cdef` (prototypes and error codes, no comments)."""
        return "\n".join(self._declarations(documented=False)) + "\n"

    def c_source(self):
        """Standalone C99: the header, gradc's runtime inlined, and every export's kernel."""
        from .cbackend.build import CSRC
        parts = [self._banner(".c"), "",
                 "/* ---- the interface (identical to the header) ---- */",
                 self.header().split("*/", 1)[1].lstrip("\n"),
                 "#include <stdlib.h>", "",
                 "/* ---- gradc's runtime (csrc/), inlined so this file stands alone; all static ---- */"]
        for header in ("gradc_runtime.h", "gradc_blas.h"):
            parts.append((CSRC / header).read_text().rstrip() + "\n")
        for export in self.exports:
            parts.append(_export_definitions(self, export))
        return "\n".join(parts)

    # ---- Python ------------------------------------------------------------------------------------
    def python_source(self, package=None):
        """The NumPy wrapper module `<name>.py` around the compiled cffi module `_<name>`."""
        return _python_wrapper(self, package)

    def ffibuilder(self, package=None, *, blas="none", native=False):
        """A cffi.FFI (out-of-line API mode) building `[package.]_<name>` from the generated C.

        For setuptools: `setup(cffi_modules=["kernels.py:ffibuilder"])` with
        `ffibuilder = mod.ffibuilder()` in kernels.py. blas="openblas" links scipy-openblas32
        for matrix products; native=True adds -march=native.
        """
        import cffi
        package = package if package is not None else self.package
        ffi = cffi.FFI()
        ffi.cdef(self.cdef())
        module = f"{package}._{self.name}" if package else f"_{self.name}"
        ffi.set_source(module, self.c_source(), **_compile_options(blas, native))
        return ffi

    def build_py_command(self, package=None):
        """A setuptools `build_py` command that also writes the wrapper `<package>/<name>.py`.

        >>> setup(..., cffi_modules=["kernels.py:ffibuilder"],
        ...       cmdclass={"build_py": mod.build_py_command()})
        """
        from setuptools.command.build_py import build_py
        module, package = self, package if package is not None else self.package

        class build_py_with_gradc_wrapper(build_py):
            def run(self):
                super().run()
                target = Path(self.build_lib, *(package.split(".") if package else []),
                              f"{module.name}.py")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(module.python_source(package=package))

        return build_py_with_gradc_wrapper

    def build(self, outdir, *, blas="none", native=False, c_only=False, progress=False):
        """Writes OUTDIR/<name>.c, .h and (unless c_only) <name>.py plus the compiled `_<name>`
        extension; returns a Built record with the files and the seconds spent.

        >>> mod.build("build").files
        [PosixPath('build/lecture.c'), PosixPath('build/lecture.h'), ...]
        """
        from tqdm.auto import tqdm
        outdir = Path(outdir)
        _make_dir(outdir)
        if not self.exports:
            raise BuildError(f"{self.source_file}: module {self.name!r} exports no function "
                             "(decorate one with @mod.export(...))")
        start = time.perf_counter()
        bar = tqdm(total=len(self.exports) + (0 if c_only else 1), unit="step", leave=False,
                   desc=f"gradc build {self.name}", disable=None if progress else True)
        with bar:
            for export in self.exports:
                bar.set_postfix_str(export.name)
                export.code               # traces and generates; BuildError if it does not trace
                bar.update()
            built = Built(self.name)
            for suffix, text in ((".c", self.c_source()), (".h", self.header())):
                built.files.append(_write(outdir / f"{self.name}{suffix}", text))
            built.generate_seconds = time.perf_counter() - start
            if not c_only:
                bar.set_postfix_str("compiling")
                start = time.perf_counter()
                built.files.append(_write(outdir / f"{self.name}.py", self.python_source()))
                built.files.append(self._compile_extension(outdir, blas, native))
                built.compile_seconds = time.perf_counter() - start
                bar.update()
        return built

    def _compile_extension(self, outdir, blas, native):
        from .cbackend.build import find_compiler
        ffi = self.ffibuilder(package="", blas=blas, native=native)
        cc = find_compiler()        # CompileError when there is none
        with tempfile.TemporaryDirectory(prefix="gradc-aot-") as tmp:
            log = Path(tmp, "compiler.log")
            try:
                with _environ(CC=os.environ.get("CC") or cc), _redirected_output(log):
                    so = Path(ffi.compile(tmpdir=tmp, verbose=False))
            except Exception as e:      # cffi / distutils wrap compiler failures in their own types
                raise CompileError(f"compiling module {self.name!r} failed: {_one_line(e)}\n"
                                   f"{log.read_text().strip()}\n"
                                   f"generated C: {outdir / (self.name + '.c')}") from None
            target = outdir / so.name
            shutil.copyfile(so, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
        return target


@dataclass
class Built:
    """What Module.build wrote and how long it took."""
    module: str
    files: list = field(default_factory=list)
    generate_seconds: float = 0.0
    compile_seconds: float = 0.0


# ---- C definitions of one export --------------------------------------------------------------------

def _c_array(values, dtype):
    """Comma-separated C literals of a flat array, packed into ~96-column lines."""
    from .cbackend.emit import literal
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
    from .cbackend.emit import ctype
    code, s, m = export.code, export.symbol, module.macro
    inputs, outputs = export.io()
    out = [f"/* ---- {s}: {export.name} from {export.where} ---- */", ""]
    const_names = []
    for j, node in enumerate(code.consts):
        values = np.ascontiguousarray(node.params["value"], dtype=node.dtype).ravel()
        name = f"{s}_k{j}"
        const_names.append(name)
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
    call_args = [c for _, c, _, _ in inputs + outputs]
    out += [_wrap(f"int {s}_work", params + ["void *work"]), "{",
            _indent(_wrap(f"void *args[{max(len(args), 1)}] = ", args or ["NULL"], ";", "{}")),
            f"    return {s}_kernel(args, work);", "}", "",
            _wrap(f"int {s}", params), "{",
            f"    size_t bytes = {s}_work_bytes();",
            "    void *work = bytes ? malloc(bytes) : NULL;",
            "    int code;",
            f"    if (bytes && work == NULL) return {m}_ERR_ALLOC;",
            _indent(_wrap(f"code = {s}_work", call_args + ["work"], ";")),
            "    free(work);", "    return code;", "}", "",
            f"size_t {s}_work_bytes(void) {{ return {code.workspace_bytes}; }}",
            f"int {s}_n_in(void) {{ return {len(inputs)}; }}",
            f"int {s}_n_out(void) {{ return {len(outputs)}; }}", ""]
    for kind, rows in (("in", inputs), ("out", outputs)):
        names = [_c_string(readable) for _, _, _, readable in rows] + ["NULL"]
        out.append(_wrap(f"static const char *const {s}_names_{kind}[{len(names)}] = ", names, ";",
                         "{}"))
        out.append(f"const char *{s}_name_{kind}(int i) {{ return (i >= 0 && i < {len(rows)}) ? "
                   f"{s}_names_{kind}[i] : NULL; }}")
    return "\n".join(out) + "\n"


def _indent(text, prefix="    "):
    return prefix + text.replace("\n", "\n" + prefix)


def _compile_options(blas, native):
    """Keyword arguments for cffi's set_source: flags, and OpenBLAS when asked for."""
    if blas not in BLAS_CHOICES:
        raise ValueError(f"blas must be one of {BLAS_CHOICES}, got {blas!r}")
    options = {"extra_compile_args": AOT_FLAGS + (NATIVE_FLAGS if native else []),
               "libraries": ["m"]}
    if blas == "openblas":
        try:
            import scipy_openblas32 as sob
        except ImportError:
            raise ValueError("blas='openblas' needs the scipy-openblas32 wheel "
                             "(pip install scipy-openblas32)") from None
        lib = sob.get_lib_dir()
        options.update(define_macros=[("GRADC_HAVE_OPENBLAS", None)], library_dirs=[lib],
                       runtime_library_dirs=[lib], libraries=[sob.get_library(), "m"])
    return options


# ---- files and processes ------------------------------------------------------------------------------

def _make_dir(path):
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BuildError(f"cannot create the output directory {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK):
        raise BuildError(f"cannot write to the output directory {path}")


def _write(path, text):
    """Writes text to path through a temporary file (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        raise BuildError(f"cannot write {path}: {e.strerror or e}") from None
    return path


@contextlib.contextmanager
def _environ(**values):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _redirected_output(path):
    """Sends file descriptors 1 and 2 (the compiler's output) to path for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "wb") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


# ---- the NumPy wrapper --------------------------------------------------------------------------------
# The functions and the class below are copied verbatim (inspect.getsource) into every generated
# wrapper, so they may use only numpy, threading and the builtins; they are tested here as code.

def _flatten_into(leaves, tree, value, where):
    """Appends value's leaves following tree ('*' leaf, None, ('tuple'|'list', children) or
    ('dict', keys, children)); a different structure is a TypeError naming the argument."""
    if tree == "*":
        leaves.append((where, value))
        return
    if tree is None:
        return
    if tree[0] == "dict":
        _, keys, children = tree
        if not isinstance(value, dict) or sorted(value) != list(keys):
            raise TypeError(f"{where}: expected a dict with keys {list(keys)}, got "
                            f"{type(value).__name__}")
        items = [(value[k], child, f"{where}[{k!r}]") for k, child in zip(keys, children)]
    else:
        kind, children = tree
        if not isinstance(value, (tuple, list)) or len(value) != len(children):
            raise TypeError(f"{where}: expected a {kind} of {len(children)} items, got "
                            f"{type(value).__name__}")
        items = [(v, child, f"{where}[{i}]") for i, (v, child) in enumerate(zip(value, children))]
    for v, child, w in items:
        _flatten_into(leaves, child, v, w)


def _unflatten(tree, leaves):
    """Rebuilds the output structure from an iterator of arrays."""
    if tree == "*":
        return next(leaves)
    if tree is None:
        return None
    if tree[0] == "dict":
        return {k: _unflatten(child, leaves) for k, child in zip(tree[1], tree[2])}
    children = [_unflatten(child, leaves) for child in tree[1]]
    return tuple(children) if tree[0] == "tuple" else children


def _type_str(shape, dtype):
    short = {"float32": "f32", "float64": "f64", "int32": "i32", "int64": "i64", "bool": "bool"}
    return f"{short.get(dtype.name, dtype.name)}[{','.join(map(str, shape))}]"


class _Kernel:
    """One exported C function: checks and converts the arguments, allocates fresh outputs, calls
    the C entry point with a per-thread workspace and maps its error codes to exceptions."""

    def __init__(self, ffi, lib, symbol, macro, args, inputs, outputs, out_tree):
        self.ffi = ffi
        self.fn = getattr(lib, symbol + "_work")
        self.args = args                      # [(parameter name, tree)]
        self.inputs = [(name, tuple(shape), np.dtype(dtype), ctype + "[]")
                       for name, shape, dtype, ctype in inputs]
        self.outputs = [(tuple(shape), np.dtype(dtype), ctype + "[]")
                        for shape, dtype, ctype in outputs]
        self.out_tree = out_tree
        self.work_bytes = max(getattr(lib, symbol + "_work_bytes")(), 1)
        self.err_index = getattr(lib, macro + "_ERR_INDEX")
        self.local = threading.local()
        if getattr(lib, symbol + "_n_in")() != len(inputs):
            raise ImportError(f"{symbol}: the compiled extension does not match this wrapper; "
                              "rebuild both with gradc build")

    def _array(self, value, name, shape, dtype):
        if isinstance(value, (numbers.Number, list)):
            value = np.asarray(value, dtype=dtype)      # Python scalars and lists are converted
        array = value if isinstance(value, np.ndarray) else np.asarray(value)
        if array.shape != shape or array.dtype != dtype:
            raise ValueError(f"argument {name}: expected {_type_str(shape, dtype)}, got "
                             f"{_type_str(array.shape, array.dtype)}")
        if not (array.flags.c_contiguous and array.flags.aligned):
            array = np.ascontiguousarray(array)         # a copy: the caller's array is never written
        return array

    def _work(self):
        work = getattr(self.local, "work", None)
        if work is None:
            buffer = np.empty(self.work_bytes, np.uint8)
            work = self.local.work = (buffer, self.ffi.from_buffer("char[]", buffer))
        return work[1]

    def __call__(self, *values):
        leaves = []
        for (name, tree), value in zip(self.args, values):
            _flatten_into(leaves, tree, value, name)
        pointers = []
        for (_, value), (name, shape, dtype, ctype) in zip(leaves, self.inputs):
            pointers.append(self.ffi.from_buffer(ctype, self._array(value, name, shape, dtype)))
        outs = [np.empty(shape, dtype) for shape, dtype, _ in self.outputs]
        pointers += [self.ffi.from_buffer(c, o) for o, (_, _, c) in zip(outs, self.outputs)]
        code = self.fn(*pointers, self._work())
        if code == self.err_index:
            raise IndexError("index out of range in a gather or label lookup (the C kernel "
                             "checked it): labels must lie in [0, number of classes)")
        if code == 2:
            raise MemoryError("the gradc kernel could not allocate its workspace")
        if code:
            raise RuntimeError(f"gradc kernel failed with error code {code}")
        return _unflatten(self.out_tree, iter(outs))


_RUNTIME = (_flatten_into, _unflatten, _type_str, _Kernel)


def _tree_literal(treedef):
    """A TreeDef as the plain data _flatten_into and _unflatten read."""
    if treedef.kind == "leaf":
        return "*"
    if treedef.kind == "none":
        return None
    children = tuple(_tree_literal(c) for c in treedef.children)
    if treedef.kind == "dict":
        return ("dict", tuple(treedef.keys), children)
    return (treedef.kind, children)


def _python_wrapper(module, package):
    """Source of the generated `<name>.py`: the runtime above, one _Kernel and one def per export."""
    from .cbackend.emit import ctype
    ext = f"._{module.name}" if package else f"_{module.name}"
    lines = [f'"""{module.name}: NumPy functions calling the C that gradc {__version__} generated '
             f'from {module.source_file}.',
             "",
             "Generated; do not edit (rerun `gradc build`). Needs numpy and cffi, not gradc.",
             '"""',
             "import numbers", "import threading", "", "import numpy as np", "",
             f"from {ext} import ffi, lib", "", ""]
    lines += [inspect.getsource(obj) + "\n" for obj in _RUNTIME]
    for export in module.exports:
        low, graph = export.lowered, export.lowered.graph
        params = export.param_names()
        arg_trees = [_tree_literal(t) for t in low.in_tree.children[0].children]
        spec = {"args": list(zip(params, arg_trees)),
                "inputs": [(name, n.shape, n.dtype.name, ctype(n.dtype))
                           for name, n in zip(low.in_names, graph.inputs)],
                "outputs": [(n.shape, n.dtype.name, ctype(n.dtype)) for n in graph.outputs],
                "out_tree": _tree_literal(low.out_tree)}
        body = ",\n".join(f"    {k}={pprint.pformat(v, width=90, compact=True)}".replace(
            "\n", "\n" + " " * (len(k) + 5)) for k, v in spec.items())
        lines.append(f"_kernel_{export.name} = _Kernel(ffi, lib, {export.symbol!r}, "
                     f"{module.macro!r},\n{body})\n\n")
        in_types = ", ".join(f"{p}: {_spec_text(s)}" for p, s in zip(params, export.specs))
        doc = (f"{export.name}({in_types})\n\nCalls the C function {export.symbol}, exported from "
               f"{export.where}. Returns {_tree_text(low.out_tree, graph.outputs)}.")
        user_doc = inspect.getdoc(export.fn)
        if user_doc:
            doc += "\n\n" + user_doc
        lines += [f"def {export.name}({', '.join(params)}):",
                  f"    {doc!r}",
                  f"    return _kernel_{export.name}({', '.join(params)})", "", ""]
    lines.append(f"__all__ = {[e.name for e in module.exports]!r}")
    return "\n".join(lines) + "\n"


def _spec_text(spec):
    leaves, tree = tree_flatten(spec)
    return repr(tree_unflatten(tree, [repr(s) for s in leaves])).replace("'", "")


def _tree_text(tree, outputs):
    return repr(tree_unflatten(tree, [n.type_str for n in outputs])).replace("'", "")


__all__ = ["Module", "Export", "Built", "BuildError"]
