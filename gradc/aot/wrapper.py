"""The NumPy wrapper an AOT build writes (`<name>.py`): the runtime (runtime.py), one _Kernel and one
documented function per export."""
import inspect
import pprint
import textwrap
from pathlib import Path

from .. import __version__
from ..symbolic import Dim, dim_names, render
from ..tree import tree_flatten, tree_unflatten
from .files import GENERATED_MARK

_MARKER = "# ---- copied into every wrapper from here ----\n"


def runtime_source():
    """The code of runtime.py that every wrapper carries."""
    text = (Path(__file__).parent / "runtime.py").read_text()
    return text[text.index(_MARKER) + len(_MARKER):]


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


def _shape_literal(shape):
    """A shape as plain data for the runtime: ints, and named sizes as Python expressions of the
    names ('n', '(3*n)')."""
    return tuple(render(d, lambda name: name, parens=True) if isinstance(d, Dim) else d
                 for d in shape)


def _python_wrapper(module, package):
    """Source of the generated `<name>.py`: the runtime, a _Kernel and a def per export."""
    from ..cbackend.csyntax import ctype
    ext = f"._{module.name}" if package else f"_{module.name}"
    lines = [f'"""{module.name}: NumPy functions calling the compiled C of the gradc module '
             f'{module.name!r}.',
             "",
             f"{GENERATED_MARK} {__version__} from {module.source_file}; do not edit (rerun "
             "`gradc build`).",
             "Needs numpy and cffi at run time, not gradc.",
             '"""',
             runtime_source(),
             f"from {ext} import ffi, lib  # noqa: E402", "",
             f"_EXTENSION = {ext!r}     # what gradc.pickling sends with the module", "", ""]
    for export in module.exports:
        low, graph = export.lowered, export.lowered.graph
        params = export.param_names()
        arg_trees = [_tree_literal(t) for t in low.in_tree.children[0].children]
        spec = {"args": list(zip(params, arg_trees)),
                "inputs": [(name, _shape_literal(n.shape), n.dtype.name, ctype(n.dtype))
                           for name, n in zip(low.in_names, graph.inputs)],
                "outputs": [(_shape_literal(n.shape), n.dtype.name, ctype(n.dtype))
                            for n in graph.outputs],
                "out_tree": _tree_literal(low.out_tree),
                "sizes": dim_names(graph)}
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
        lines += [f"def {export.name}({', '.join(params)}):", _docstring(doc),
                  f"    return _kernel_{export.name}({', '.join(params)})", "", ""]
    lines.append(f"__all__ = {[e.name for e in module.exports]!r}")
    lines.append("sys.modules[__name__].__class__ = _BuiltModule")
    return "\n".join(lines) + "\n"


def _docstring(text, indent="    ", width=100):
    """A triple-quoted docstring, wrapped to width (repr() when the text would break the quotes)."""
    if '"""' in text or "\\" in text or text.endswith('"'):
        return indent + repr(text)
    lines = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, width - len(indent)) or [""]
    body = "\n".join((indent + line).rstrip() for line in lines)
    return f'{indent}"""{body[len(indent):]}\n{indent}"""' if len(lines) > 1 else \
        f'{indent}"""{lines[0]}"""'


def _spec_text(spec):
    leaves, tree = tree_flatten(spec)
    return repr(tree_unflatten(tree, [repr(s) for s in leaves])).replace("'", "")


def _tree_text(tree, outputs):
    return repr(tree_unflatten(tree, [n.type_str for n in outputs])).replace("'", "")
