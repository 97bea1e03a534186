"""gc.Module: a named set of exported functions, built ahead of time into standalone C (.c / .h),
a cffi extension with its NumPy wrapper, or a cffi FFI builder for setuptools."""
import inspect
import keyword
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import CompileError
from ..tree import tree_flatten, tree_unflatten
from .csource import _export_definitions
from .export import Export
from .files import GENERATED_MARK, _environ, _make_dir, _redirected_output, _write
from .names import BuildError, _as_spec, _symbol_clash, one_line
from .wrapper import _python_wrapper

# NOTE: portable code by default: no -march=native and no libmvec (AOT output runs on other machines
# of the same architecture). -fno-math-errno and -fopenmp-simd as the JIT: the first changes no
# result, the second lets the kernels' `omp simd` sums vectorise (no OpenMP runtime is linked).
AOT_FLAGS = ["-O3", "-fno-math-errno", "-fopenmp-simd", "-DGRADC_OPENMP_SIMD"]
NATIVE_FLAGS = ["-march=native"]
BLAS_CHOICES = ("none", "openblas")


class Module:
    """A named set of exported functions, built ahead of time into C and a Python extension.

    >>> mod = gc.Module("lecture")
    >>> @mod.export("f64[]", "f64[]", "f64[]")
    ... def grad(x, y, z):
    ...     return gc.grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(x, y, z)
    >>> "int lecture_grad(const double *x" in mod.header()
    True

    `gradc build kernels.py -o OUT` (or `mod.build(OUT)`) writes OUT/lecture.c, .h, lecture.py
    and its compiled cffi module; `mod.ffibuilder()` serves setuptools' `cffi_modules`. `package`
    names the Python package the extension lives in when built through setuptools (see
    `build_py_command`).

    Builds are portable by default: no -march=native, and matrix products as plain C loops, so
    the output needs no BLAS at run time. blas="openblas" (scipy-openblas32, dynamically linked)
    and native=True trade that for speed on the machine that builds.
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
            clash = _symbol_clash(self.exports + [export])
            if clash:
                raise ValueError(clash)
            self.exports.append(export)
            return fn

        return decorate

    # ---- standalone C ----------------------------------------------------------------------------
    def _banner(self, what):
        names = textwrap.wrap("exports: " + (", ".join(e.name for e in self.exports) or "none"),
                              96, subsequent_indent="  ")
        return "\n".join([
            f"/* {self.name}{what}: C for the gradc module '{self.name}'.",
            *(f" * {line}" for line in names),
            f" * {GENERATED_MARK} {__version__} from {self.source_file}; do not edit: "
            f"rerun `gradc build {self.source_file}`.",
            " *",
            f" * compile: cc -O2 -std=c99 -fopenmp-simd -DGRADC_OPENMP_SIMD -c {self.name}.c",
            " *   Portable: no -march flag needed. The two simd flags (GCC, Clang) let the marked",
            " *   sums be vectorised; without them the sums run in order.",
            " * link with: -lm",
            " *   Matrix products use a plain C loop. For OpenBLAS, compile with",
            " *   -DGRADC_HAVE_OPENBLAS and link -lscipy_openblas from the scipy-openblas32 wheel",
            " *   (its lib directory: scipy_openblas32.get_lib_dir()).",
            " */"])

    def _error_codes(self):
        """(suffix, value, meaning) of the runtime's error codes, read from csrc/gradc_runtime.h."""
        from ..cbackend.build import CSRC
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
        type_width = max([len(t) for _, _, t, _ in inputs + outputs] + [1])
        for k, size in enumerate(export.sizes()):
            label = " *   size " if k == 0 else " *        "
            lines.append(f"{label}{size:<{width}}  int64_t, at least 1: the named dim {size!r} of "
                         "the shapes below")
        for title, rows in (("in ", inputs), ("out", outputs)):
            for k, (_, c, type_str, readable) in enumerate(rows):
                label = f" *   {title}  " if k == 0 else " *        "
                note = f"  {readable}" if readable != c else ""
                lines.append(f"{label}{c:<{width}}  {type_str:<{type_width}}{note}".rstrip())
        lines += [f" * Returns {self.macro}_OK (0), or {self.macro}_ERR_INDEX for an out-of-range "
                  "index or label,"]
        if export.sizes():
            lines.append(f" * {self.macro}_ERR_SIZE for a size below 1 (_work_bytes() takes the same "
                         "sizes),")
        lines += [f" * {self.macro}_ERR_SINGULAR for a singular matrix in linalg.inv / "
                  f"linalg.solve, {self.macro}_ERR_NOT_PD",
                  " * for one that is not positive definite in linalg.cholesky,",
                  f" * {self.macro}_ERR_ALLOC if malloc fails. _work() takes a caller workspace of "
                  "_work_bytes() bytes",
                  " * (aligned as malloc's) instead. Arrays are dense, C order. Reentrant. */"]
        return "\n".join(lines)

    def header(self):
        """The C header: prototypes, error codes, metadata functions, link line."""
        return self._banner(".h") + "\n" + self._interface()

    def _interface(self):
        guard = f"{self.macro}_H"
        return "\n".join([
            f"#ifndef {guard}", f"#define {guard}", "",
            "#include <stddef.h>", "#include <stdint.h>", "",
            "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
            *self._declarations(documented=True), "",
            "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */", ""])

    def cdef(self):
        """The declarations for cffi's `ffi.cdef` (prototypes and error codes, no comments)."""
        return "\n".join(self._declarations(documented=False)) + "\n"

    def c_source(self):
        """Standalone C99: the header, gradc's runtime inlined, and every export's kernel."""
        from ..cbackend.build import CSRC
        for export in self.exports:
            export.code                  # generated first, so the symbol check sees constants
        clash = _symbol_clash(self.exports)
        if clash:
            raise BuildError(clash)
        parts = [self._banner(".c"), "",
                 "/* ---- the interface (identical to the header) ---- */",
                 self._interface(),
                 "#include <stdlib.h>", "",
                 "/* ---- gradc's runtime (csrc/), inlined so that this file stands alone ---- */"]
        for header in ("gradc_runtime.h", "gradc_blas.h"):
            parts.append((CSRC / header).read_text().rstrip() + "\n")
        for export in self.exports:
            parts.append(_export_definitions(self, export))
        return "\n".join(parts)

    # ---- Python ----------------------------------------------------------------------------------
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
        # NOTE: sets CC and redirects fds 1 and 2 for the process while cffi compiles (distutils
        # offers no other way to capture the compiler's messages): do not build from two threads.
        from ..cbackend.build import find_compiler
        ffi = self.ffibuilder(package="", blas=blas, native=native)
        cc = find_compiler()        # CompileError when there is none
        with tempfile.TemporaryDirectory(prefix="gradc-aot-") as tmp:
            log = Path(tmp, "compiler.log")
            try:
                with _environ(CC=os.environ.get("CC") or cc), _redirected_output(log):
                    so = Path(ffi.compile(tmpdir=tmp, verbose=False))
            except Exception as e:      # cffi / distutils wrap compiler failures in their own types
                raise CompileError(f"compiling module {self.name!r} failed: {one_line(e)}\n"
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
