"""gc.debug_print: runtime values printed from traced code, on every call, on both backends.

The values become extra outputs of the graph (after the function's own), so the C kernel computes
them like any output and the Python side prints them after the call, in the order the prints were
traced: no callbacks from C. Transforms (grad, vjp, jvp) carry the prints of the function they
trace into the graph they build and hand them on to the enclosing trace, or print them when they
run the graph themselves. AOT builds drop them (a built module has no Python side to print).

In loops (gc.scan, loop.py): the body's prints become per-step outputs of the loop, stacked along
a new leading axis, and are handed on with one more level of `per_iteration`: one line per
iteration, in the order the iterations ran (nested loops: one per inner iteration)."""
from dataclasses import dataclass

import numpy as np

from . import core
from .errors import user_location


@dataclass
class DebugPrint:
    """One traced print: a format, how many of the values are positional, their keyword names.
    per_iteration: how many leading axes of the values are loop iterations (loops inside loops),
    printed one line per iteration."""
    fmt: str
    keys: tuple          # keyword names of the last len(keys) values
    count: int           # number of values (graph outputs) it takes
    loc: str
    per_iteration: int = 0

    def format(self, values, levels=None):
        """The printed lines for this print's values (NumPy arrays)."""
        levels = int(self.per_iteration) if levels is None else levels
        if not levels:
            return [_format(self.fmt, values, self.keys)]
        steps = len(values[0]) if values else 0
        return [line for i in range(steps)
                for line in self.format([v[i] for v in values], levels - 1)]


def _format(fmt, values, keys):
    values = [v[()] if isinstance(v, np.ndarray) and v.ndim == 0 else v for v in values]
    positional = values[:len(values) - len(keys)]
    return fmt.format(*positional, **dict(zip(keys, values[len(positional):])))


def debug_print(fmt, *args, **kwargs):
    """Prints `fmt.format(*args, **kwargs)` with the runtime values, on every call of a compiled
    function (and at once outside any trace).

    >>> f = gc.jit(lambda x: (gc.debug_print("x = {}", x), x * 2)[1]); f(np.ones(2))
    x = [1. 1.]
    array([2., 2.])
    """
    values = list(args) + list(kwargs.values())
    # Concrete values (or none) inside a trace still print on every call: the innermost trace
    # takes them as constants.
    trace = core.top_trace(values) or (core._trace_stack[-1] if core._trace_stack else None)
    if trace is None:
        arrays = [v.numpy() if hasattr(v, "numpy") else np.asarray(v) for v in values]
        print(_format(fmt, arrays, tuple(kwargs)))
        return
    tracers = [core.Tracer(trace.node_of(v), trace) for v in values]
    record(trace, DebugPrint(fmt, tuple(kwargs), len(tracers), user_location()), tracers)


def record(trace, item, tracers):
    """Adds a print to a trace: its values are outputs of the graph the trace becomes."""
    if not hasattr(trace, "prints"):
        trace.prints = []
    trace.prints.append((item, tracers))


def pending(trace):
    """(prints, their value tracers flattened) of a trace, in the order they were traced."""
    items = getattr(trace, "prints", [])
    return [item for item, _ in items], [t for _, tracers in items for t in tracers]


def emit(prints, values):
    """Prints each print's lines from its slice of the flat values (a call's extra outputs)."""
    start = 0
    for item in prints:
        for line in item.format([np.asarray(v) for v in values[start:start + item.count]]):
            print(line)
        start += item.count


def hand_on(prints, values):
    """The prints of a graph that ran on `values` (its extra outputs): recorded into the
    enclosing trace when they are traced, printed now when they are data."""
    trace = core.top_trace(values)
    if trace is None:
        emit(prints, [v.numpy() if hasattr(v, "numpy") else v for v in values])
        return
    start = 0
    for item in prints:
        tracers = [core.Tracer(trace.node_of(v), trace) for v in values[start:start + item.count]]
        record(trace, item, tracers)
        start += item.count
