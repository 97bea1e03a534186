"""AOT builds' small shared pieces: the build error, spec parsing, and the C names of an export."""
import re

from ..dtypes import Spec

# The C functions and arrays of an export beside <module>_<fn> itself (constants add _k0, _k1, ...).
_SUFFIXES = ("work", "work_bytes", "n_in", "n_out", "name_in", "name_out", "kernel", "names_in",
             "names_out")

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


def one_line(exc):
    """`Type: first line of the message`, for one-line error reports."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


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


def _symbol_clash(exports):
    """A message when two exports of a module would define the same C name, else None."""
    owner = {}
    for export in exports:
        for symbol in export.symbols():
            if symbol in owner and owner[symbol] is not export:
                return (f"module {export.module.name!r}: exports {owner[symbol].name!r} and "
                        f"{export.name!r} both define the C symbol {symbol}; rename one")
            owner[symbol] = export
    return None


def _c_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
