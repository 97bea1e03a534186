"""A fuzzed program: float inputs, straight-line statements (Python expressions over earlier
variables) and outputs; it renders to the plain `import numpy as np; import gradc as gc` code a
person can paste, and runs from that same text."""
from dataclasses import dataclass, field, replace

import numpy as np

import gradc as gc


@dataclass(frozen=True)
class Stmt:
    var: str
    template: str        # a Python expression over {0}, {1}, ... (the args)
    args: tuple          # names of earlier variables or inputs

    def expr(self, args=None):
        return self.template.format(*(args or self.args))


@dataclass(frozen=True)
class Program:
    inputs: tuple        # ((name, float64 array), ...): every input is a float, differentiated
    stmts: tuple
    outputs: tuple       # names of float variables
    seed: int = 0        # draws the cotangents and tangents (their shapes follow the outputs)
    split: bool = False  # compile with the batch split forced (two blocks)
    hvp: bool = False    # also check grad of grad (Hessian-vector product)
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def names(self):
        return [n for n, _ in self.inputs]

    def source(self):
        lines = [f"def f({', '.join(self.names)}):"]
        lines += [f"    {s.var} = {s.expr()}" for s in self.stmts]
        lines.append(f"    return ({''.join(o + ', ' for o in self.outputs)})")
        return "\n".join(lines) + "\n"

    def function(self):
        namespace = {"np": np, "gc": gc}
        exec(compile(self.source(), "<fuzzed program>", "exec"), namespace)  # noqa: S102
        return namespace["f"]

    def with_(self, **changes):
        return replace(self, **changes)

    def size(self):
        """What the shrinker minimises: statements, then input elements, then outputs."""
        return (len(self.stmts), sum(v.size for _, v in self.inputs), len(self.outputs))


def array_text(a):
    """A float64 array as a short literal (the repro prints values with enough digits to agree)."""
    a = np.asarray(a, np.float64)
    return f"np.array({a.tolist()!r})" if a.ndim else f"np.float64({float(a)!r})"


def run_eager(program, xs=None):
    """Outputs of the program run as plain NumPy code (gradc's ops on arrays compute at once)."""
    xs = [v for _, v in program.inputs] if xs is None else xs
    with np.errstate(all="ignore"):
        return [np.asarray(o) for o in program.function()(*xs)]
