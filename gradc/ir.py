"""The graph IR: nodes of primitives, graphs, topological schedules, and their text and DOT forms."""
import itertools

import numpy as np

from .dtypes import short_name
from .symbolic import Dim, prod

_ids = itertools.count()


class Phase(str):
    """A node's pass, "fwd" or "rev" (compares equal to the plain string), remembering the
    primitive whose derivative rule made the node (`rule`, None for the traced function's own
    nodes), so a NaN or a hazard found in a gradient can be named "in the gradient of sqrt", and
    whether one of gradc's composites made it (`library`: np.linalg.norm's sqrt, not the user's).
    A str subclass so every copy of a node (simplification, the C backend) keeps it unchanged."""

    def __new__(cls, value, rule=None, library=False):
        phase = super().__new__(cls, value)
        phase.rule = rule
        phase.library = library
        return phase

    def __reduce__(self):
        return Phase, (str(self), self.rule, self.library)


def describe_phase(phase):
    """'the forward pass', 'the gradient of sqrt', 'the forward-mode derivative of exp'."""
    rule = getattr(phase, "rule", None)
    if phase == "rev":
        return f"the gradient of {rule}" if rule else "the gradient pass"
    return f"the forward-mode derivative of {rule}" if rule else "the forward pass"


class Node:
    """One value of a graph: a primitive applied to input nodes, with its static shape and dtype.

    `phase` is "fwd" for values of the traced function and "rev" for values the reverse-mode
    transform adds; `loc` is the user's file:line that created it (for errors and the C comments).
    """
    __slots__ = ("id", "prim", "inputs", "params", "shape", "dtype", "loc", "phase", "name")

    def __init__(self, prim, inputs, params, shape, dtype, loc="?", phase="fwd", name=None):
        self.id = next(_ids)
        self.prim = prim
        self.inputs = tuple(inputs)
        self.params = params
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.loc = loc
        self.phase = phase
        self.name = name

    @property
    def size(self):
        return prod(self.shape)

    @property
    def nbytes(self):
        return self.size * self.dtype.itemsize

    @property
    def type_str(self):
        return f"{short_name(self.dtype)}[{','.join(map(repr, self.shape))}]"

    def __repr__(self):
        return f"Node({self.prim.name}#{self.id}:{self.type_str})"


def repeated_value(array):
    """The one value every element of a non-empty array has (a NumPy scalar), else None."""
    if array.size and (array.size == 1 or bool(np.all(array == array.flat[0]))):
        return array.flat[0]
    return None


def toposort(outputs):
    """Nodes reachable from `outputs`, each after its inputs. Iterative: deep graphs are fine."""
    order, done = [], set()
    stack = [(node, False) for node in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if node.id in done:
            continue
        if expanded:
            done.add(node.id)
            order.append(node)
            continue
        stack.append((node, True))
        for inp in reversed(node.inputs):
            if inp.id not in done:
                stack.append((inp, False))
    return order


class Graph:
    """A function as a DAG: input nodes (in argument order), output nodes, and the schedule between."""

    def __init__(self, inputs, outputs):
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.nodes = toposort(self.outputs + self.inputs)
        # Inputs first, in argument order, even when unused; then the rest in dependency order.
        input_ids = {n.id for n in self.inputs}
        self.nodes = self.inputs + [n for n in self.nodes if n.id not in input_ids]

    def users(self):
        """Maps node id -> list of nodes that consume it."""
        users = {n.id: [] for n in self.nodes}
        for node in self.nodes:
            for inp in node.inputs:
                users[inp.id].append(node)
        return users

    def _names(self):
        names = {}
        for i, node in enumerate(self.nodes):
            names[node.id] = _letters(i)
        return names

    def as_text(self):
        """One node a line in schedule order, jaxpr-like: `c:f32[3] = mul a b   # model.py:14`."""
        names = self._names()
        lines = ["{ lambda " + " ".join(f"{names[n.id]}:{n.type_str}" for n in self.inputs) + ". let"]
        phase = "fwd"
        for node in self.nodes:
            if node.prim.name == "input":
                continue
            if node.phase != phase and node.prim.name != "const":
                phase = node.phase
                lines.append("    # ---- reverse pass ----" if phase == "rev" else "    # ----")
            rhs = node.prim.name + _format_params(node)
            args = " ".join(names[i.id] for i in node.inputs)
            stmt = f"    {names[node.id]}:{node.type_str} = {rhs}{' ' + args if args else ''}"
            lines.append(f"{stmt:<56} # {node.loc}")
            for param in node.params.values():     # a loop's body, printed once inside it
                if isinstance(param, Graph):
                    lines += ["        " + line for line in param.as_text().splitlines()]
        lines.append("  in (" + ", ".join(names[n.id] for n in self.outputs) + ") }")
        return "\n".join(lines)

    def to_dot(self, title="gradc", out_names=None, var_names=None):
        """Graphviz DOT: op, shape, dtype and the user's line per node; the reverse pass drawn in
        its own colour (a legend says which); one box per output, named by out_names; var_names
        ({node id: the user's variable}) replace the generated names where known."""
        names = {**self._names(), **(var_names or {})}
        colours = {"input": "#cfe2ff", "const": "#eeeeee", "fwd": "#d1f0d1", "rev": "#ffd8b1"}
        out = [f'digraph "{_dot_escape(title)}" {{', '  rankdir=LR;',
               '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
        for node in self.nodes:
            label = f"{names[node.id]} = {node.prim.name}{_format_params(node)}\\n{node.type_str}"
            if node.name:
                label = f"{node.name}\\n{node.type_str}"
            elif node.loc not in ("?", "arg", "captured"):
                label += f"\\n{node.loc}"
            colour = colours.get(node.prim.name) or colours["rev" if node.phase == "rev" else "fwd"]
            shape = ', shape=ellipse' if node.prim.name in ("input", "const") else ""
            out.append(f'  n{node.id} [label="{_dot_escape(label)}", fillcolor="{colour}"{shape}];')
            for inp in node.inputs:
                style = ' [color="#d2691e"]' if node.phase == "rev" else ""
                out.append(f"  n{inp.id} -> n{node.id}{style};")
        for i, node in enumerate(self.outputs):     # two outputs may be one node: both drawn
            name = out_names[i] if out_names and i < len(out_names) else f"out{i}"
            out.append(f'  out{i} [label="{_dot_escape(name)}", shape=plaintext];')
            out.append(f"  n{node.id} -> out{i};")
        out += ['  subgraph cluster_legend {', '    label="legend"; fontname="Helvetica"; '
                'fontsize=10; color="#bbbbbb";']
        for key, text in (("input", "input"), ("const", "constant"), ("fwd", "forward pass"),
                          ("rev", "gradient pass")):
            out.append(f'    legend_{key} [label="{text}", fillcolor="{colours[key]}"];')
        out += ["    legend_input -> legend_const -> legend_fwd -> legend_rev [style=invis];", "  }",
                "}"]
        return "\n".join(out)

    def __repr__(self):
        return self.as_text()


def _dot_escape(text):
    return text.replace('"', '\\"')


def _letters(i):
    """0 -> a, 25 -> z, 26 -> ba ... (jaxpr's naming)."""
    chars = ""
    while True:
        chars = chr(ord("a") + i % 26) + chars
        i //= 26
        if i == 0:
            return chars


def _format_params(node):
    shown = {k: ("{...}" if isinstance(v, Graph) else v) for k, v in node.params.items()
             if k not in ("index",)}
    if node.prim.name == "const":
        value = node.params["value"]
        return f"[{value.item()!r}]" if value.size == 1 else f"[array {value.shape}]"
    if not shown:
        return ""
    return "[" + ", ".join(f"{k}={v!r}" if isinstance(v, Dim) else f"{k}={v}"
                           for k, v in shown.items()) + "]"
