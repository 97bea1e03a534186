"""The `gradc` command line (also `python -m gradc`): build, graph, demo, cache (API.md section 6).

A user mistake (a missing file, a spec that does not parse, a function that does not trace) ends
with one line on stderr and exit status 1; argparse's usage errors exit with 2. Set GRADC_DEBUG=1
to get the full traceback instead.
"""
import argparse
import functools
import importlib.util
import inspect
import operator
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

from . import __version__
from .aot import one_line

GRAPHVIZ_FORMATS = ("svg", "png", "pdf")


class UserError(Exception):
    """A mistake in the command or the user's file: reported in one line, without a traceback."""


def main(argv=None):
    """Runs the command line; returns the exit status.

    >>> main(["cache", "info"])
    location  /home/me/.cache/gradc
    ...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:                 # the demo parses its own options
        from .demo import main as demo_main
        return demo_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    from .aot import BuildError
    from .errors import CompileError
    try:
        return args.run(args) or 0
    except (UserError, BuildError, CompileError) as e:
        if os.environ.get("GRADC_DEBUG"):
            raise
        print(f"gradc {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"gradc {args.command}: interrupted", file=sys.stderr)
        return 130


def _parser():
    parser = argparse.ArgumentParser(
        prog="gradc", description="gradc: trace numpy-like Python, differentiate it, compile to C.")
    parser.add_argument("--version", action="version", version=f"gradc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build", help="build every gc.Module of a file ahead of time (C, header, extension)",
        description="Imports FILE, and for every gc.Module in it writes OUTDIR/<module>.c and .h "
        "(standalone C) and an importable extension OUTDIR/<module>.py + _<module>*.so that needs "
        "only numpy and cffi at run time.")
    build.add_argument("file", metavar="FILE.py", help="the Python file defining gc.Module(s)")
    build.add_argument("-o", "--outdir", default=".", help="output directory (default: .)")
    build.add_argument("--c-only", action="store_true",
                       help="write only the .c and .h files (no Python extension, no compiler)")
    build.add_argument("--blas", choices=("none", "openblas"), default="none",
                       help="matrix products in the extension: portable C loops (default) or "
                       "scipy-openblas32")
    build.add_argument("--native", action="store_true",
                       help="compile the extension for this machine's CPU (-march=native)")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    build.set_defaults(run=_build)

    graph = commands.add_parser(
        "graph", help="draw the graph of a function (and with --grad its reverse pass)",
        description="Traces FUNC for the given argument specs and writes its graph as Graphviz "
        "DOT (.dot), or renders it with Graphviz's `dot` program (.svg, .png, .pdf).")
    graph.add_argument("target", metavar="FILE.py:FUNC",
                       help="the function to draw: a file and a function name in it")
    graph.add_argument("--arg", action="append", default=[], metavar="SPEC",
                       help="one per argument, e.g. --arg 'f32[3,4]', or a JSON dict / list "
                       "for a pytree argument: --arg '{\"w\": \"f32[3,4]\", \"b\": \"f32[4]\"}' "
                       "(default: the specs of the gc.Module export of FUNC)")
    graph.add_argument("--grad", action="store_true",
                       help="draw value_and_grad of the sum of the outputs w.r.t. every float "
                       "argument: forward and reverse nodes")
    graph.add_argument("-o", "--output", metavar="OUT.(dot|svg|png|pdf)",
                       help="output file (default: DOT on stdout)")
    graph.set_defaults(run=_graph)

    commands.add_parser("demo", help="train the lectures' models compiled and interpreted "
                        "(gradc demo --help for its options)")

    cache = commands.add_parser("cache", help="the on-disk cache of compiled kernels")
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("info", help="location, entries and size").set_defaults(run=_cache_info)
    actions.add_parser("clear", help="remove every compiled entry").set_defaults(run=_cache_clear)
    return parser


# ---- loading the user's file ---------------------------------------------------------------------

def load_file(path):
    """Imports a Python file by path (its directory first on sys.path, as `python FILE` does);
    any error in it becomes a one-line UserError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else \
        f"_gradc_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise UserError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise UserError(f"{path}:{e.lineno}: SyntaxError: {e.msg}") from e
    except Exception as e:         # the user's code: report where it failed, in one line
        raise UserError(f"{_where(e, path)}: {one_line(e)}") from e
    except SystemExit as e:
        raise UserError(f"{path}: exited while being imported (sys.exit({e.code!r}))") from e
    return module


def _where(exc, path):
    """file:line of the innermost frame of exc's traceback inside path (else the file itself)."""
    target = str(path.resolve())
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if os.path.abspath(f.filename) == target]
    return f"{path}:{frames[-1].lineno}" if frames else str(path)


def _modules_in(module, path):
    from .aot import Module
    found = list({id(v): v for v in vars(module).values() if isinstance(v, Module)}.values())
    if not found:
        raise UserError(f"{path}: no gc.Module found (create one with mod = gc.Module('name') "
                        "and decorate functions with @mod.export('f32[3,4]', ...))")
    names = [m.name for m in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UserError(f"{path}: two gc.Module objects are named {duplicate!r}")
    return found


# ---- gradc build ---------------------------------------------------------------------------------

def _build(args):
    path = Path(args.file)
    modules = _modules_in(load_file(path), path)
    for mod in modules:
        built = mod.build(args.outdir, blas=args.blas, native=args.native, c_only=args.c_only,
                          progress=not args.no_progress)
        timing = f"generated in {built.generate_seconds:.2f} s"
        if not args.c_only:
            timing += f", compiled in {built.compile_seconds:.2f} s"
        exports = len(mod.exports)
        print(f"{mod.name}: {exports} export{'s' * (exports != 1)} ({timing})")
        for f in built.files:
            print(f"  {f}")


# ---- gradc graph ---------------------------------------------------------------------------------

def _graph(args):
    import gradc as gc
    file, _, func = args.target.rpartition(":")
    if not file or not func:
        raise UserError(f"expected FILE.py:FUNC, got {args.target!r}")
    path = Path(file)
    module = load_file(path)
    fn = module
    for part in func.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise UserError(f"{path}: no function {func!r}")
    fn = getattr(fn, "fn", fn) if isinstance(fn, gc.Jitted) else fn
    if not callable(fn):
        raise UserError(f"{path}: {func!r} is not a function")
    specs = _graph_specs(args.arg, fn, module, path, func)
    title, out_names = func, None
    if args.grad:
        out_names = _grad_output_names(fn, specs)
        fn, title = _summed_value_and_grad(fn, specs, func), f"value_and_grad of sum({func})"
    try:
        lowered = gc.jit(fn, backend="numpy").lower(*specs)
    except UserError:
        raise
    except Exception as e:      # the user's function did not trace
        raise UserError(f"{func} failed to trace: {one_line(e)}") from e
    dot = lowered.graph.to_dot(title, out_names or lowered.out_names,
                               _variable_names(lowered.graph, path))
    if not args.output:
        sys.stdout.write(dot + "\n")
        return
    _write_graph(dot, Path(args.output))
    print(f"wrote {args.output} ({len(lowered.graph.nodes)} nodes)")


def _variable_names(graph, path):
    """{node id: name} for the last forward node made on each line of `path` that assigns one
    name (`q = x + y`): the variable the user gave that value."""
    import linecache
    import re
    by_line = {}
    for node in graph.nodes:
        file, _, line = node.loc.rpartition(":")
        if node.phase == "fwd" and node.prim.kind != "source" and file == path.name \
                and line.isdigit():
            by_line[int(line)] = node           # the last one of the line: what it assigns
    names = {}
    for line, node in by_line.items():
        match = re.match(r"\s*([A-Za-z_]\w*)\s*=[^=]", linecache.getline(str(path), line))
        if match:
            names[node.id] = match.group(1)
    return names


def _parse_arg(text):
    """One --arg: 'f32[3,4]', or a JSON dict / list of them for a pytree argument
    ('{"w": "f32[3,4]", "b": "f32[4]"}')."""
    import json
    import gradc as gc
    if not text.lstrip().startswith(("{", "[")):
        return gc.Spec.parse(text)
    try:
        tree = json.loads(text)
    except ValueError as e:
        raise ValueError(f"cannot parse --arg {text!r} as a JSON dict or list of specs: "
                         f"{e}") from None

    def specs(value):
        if isinstance(value, dict):
            return {k: specs(v) for k, v in value.items()}
        if isinstance(value, list):
            return [specs(v) for v in value]
        if isinstance(value, str):
            return gc.Spec.parse(value)
        raise ValueError(f"--arg {text!r}: {value!r} is not a spec such as 'f32[3,4]'")
    return specs(tree)


def _grad_output_names(fn, specs):
    """value, d/dW, d/dparams['b'], ... for the outputs of _summed_value_and_grad."""
    import gradc as gc
    from .jit import leaf_names
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    names = ["value"]
    for i, spec in enumerate(specs):
        if all(s.dtype.kind == "f" for s in gc.tree_leaves(spec)):
            name = params[i] if i < len(params) else f"arg{i}"
            names += [f"d/d{leaf}" for leaf in leaf_names(name, gc.tree_flatten(spec)[1])]
    return names


def _graph_specs(texts, fn, module, path, func):
    if texts:
        try:
            return [_parse_arg(t) for t in texts]
        except ValueError as e:
            raise UserError(str(e)) from None
    from .aot import Module
    for mod in vars(module).values():
        if isinstance(mod, Module):
            for export in mod.exports:
                if export.fn is fn:
                    return export.specs
    raise UserError(f"{path}: give the argument specs of {func}, one --arg 'f32[3,4]' per argument")


def _summed_value_and_grad(fn, specs, func):
    """value_and_grad of sum(float outputs of fn) w.r.t. every all-float argument."""
    import gradc as gc
    argnums = tuple(i for i, spec in enumerate(specs)
                    if all(s.dtype.kind == "f" for s in gc.tree_leaves(spec)))
    if not argnums:
        raise UserError(f"--grad: {func} has no float argument to differentiate")

    def total(*args):
        leaves = [leaf for leaf in gc.tree_leaves(fn(*args)) if leaf.dtype.kind == "f"]
        if not leaves:
            raise UserError(f"--grad: {func} returns no float output")
        return functools.reduce(operator.add, [gc.sum(leaf) for leaf in leaves])

    total.__name__ = f"sum_{getattr(fn, '__name__', 'f')}"
    try:
        total.__signature__ = inspect.signature(fn)      # the graph names inputs after fn's
    except (TypeError, ValueError):
        pass
    return gc.value_and_grad(total, argnums=argnums)


def _write_graph(dot, output):
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in ("dot", "gv") + GRAPHVIZ_FORMATS:
        raise UserError(f"{output}: unknown format {output.suffix!r}: use .dot, "
                        + ", ".join("." + f for f in GRAPHVIZ_FORMATS))
    try:
        if fmt in ("dot", "gv"):
            output.write_text(dot + "\n")
            return
        program = shutil.which("dot")
        if program is None:
            raise UserError(f"rendering .{fmt} needs Graphviz's `dot` program, which is not on "
                            "PATH: install it (apt-get install graphviz, brew install graphviz, "
                            "conda install graphviz; `pip install graphviz` gives only the Python "
                            f"bindings), or write {output.with_suffix('.dot')} instead")
        result = subprocess.run([program, f"-T{fmt}", "-o", str(output)], input=dot, text=True,
                                capture_output=True)
    except OSError as e:
        raise UserError(f"cannot write {output}: {e.strerror or e}") from None
    if result.returncode != 0:
        message = (result.stderr.strip().splitlines() or ["no message"])[0]
        raise UserError(f"dot -T{fmt} failed: {message}")


# ---- gradc cache ---------------------------------------------------------------------------------

def _cache_info(args):
    import gradc as gc
    info = gc.cache_info()
    print(f"location  {info['location']}")
    print(f"entries   {info['entries']}")
    print(f"size      {_human_bytes(info['bytes'])}")


def _cache_clear(args):
    import gradc as gc
    location = gc.cache_info()["location"]
    removed = gc.clear_cache()
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {location}")


def _human_bytes(n):
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


if __name__ == "__main__":
    sys.exit(main())
