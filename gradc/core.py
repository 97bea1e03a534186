"""Tracing: symbolic tensors (Tracer), the stack of active traces, and `bind`, the one place where a
primitive is applied — recorded into a graph when tracing, computed at once otherwise."""
import contextlib

import numpy as np

from . import dtypes, numpy_lists
from .errors import (SUPPORTED_HINT, ConcretizationError, docs_link, library_caller,
                     made_by_library, user_location)
from .ir import Node, Phase
from .methods import ArrayMethods

_trace_stack = []
_origin = [None]      # (loc, phase) that replayed or derivative nodes inherit instead of the caller's


class Trace:
    """A graph under construction. Values from enclosing traces that it uses become captured inputs."""

    def __init__(self):
        self.level = len(_trace_stack)
        self.inputs = []
        self.captured = []          # outer values, one per captured input node (after self.inputs)
        self.capture_nodes = []
        self._captured_ids = {}
        self._const_ids = {}
        self.made = []              # every node bound in this trace, dead ones too (for gc.lint)
        self.active = False

    def __enter__(self):
        numpy_lists.enter()        # np.array([traced, ...]) and friends, while tracing
        _trace_stack.append(self)
        self.active = True
        return self

    def __exit__(self, *exc):
        _trace_stack.pop()
        self.active = False
        numpy_lists.leave()

    def new_input(self, shape, dtype, weak=False, name=None):
        node = Node(PRIM.input, (), {"index": len(self.inputs)}, shape, dtype, loc="arg", name=name)
        self.inputs.append(node)
        return Tracer(node, self, weak)

    def capture(self, outer):
        """An input node standing for a tracer of an enclosing trace."""
        key = id(outer)
        if key not in self._captured_ids:
            node = Node(PRIM.input, (), {"index": -1}, outer.shape, outer.dtype, loc="captured",
                        name="captured")
            self._captured_ids[key] = node
            self.captured.append(outer)
            self.capture_nodes.append(node)
        return self._captured_ids[key]

    def const(self, value):
        """A constant node for an array the function captured or created (kept as data)."""
        key = id(value)
        if key in self._const_ids and self._const_ids[key][0] is value:
            return self._const_ids[key][1]
        array = np.array(value, dtype=dtypes.canonical(np.asarray(value).dtype))  # snapshot copy
        node = Node(PRIM.const, (), {"value": array}, array.shape, array.dtype, loc=_loc(), phase=_phase())
        self._const_ids[key] = (value, node)
        return node

    def node_of(self, value):
        """The node in this trace that stands for value (a tracer of this or an outer trace, or data)."""
        if isinstance(value, Tracer):
            if value.trace is self:
                return value.node
            return self.capture(value)
        return self.const(value)

    def all_inputs(self):
        return self.inputs + self.capture_nodes


class Tracer(ArrayMethods):
    """A symbolic tensor: a node of the graph being traced. Supports the NumPy-like operators."""
    __slots__ = ("node", "trace", "weak")
    __array_priority__ = 1000

    def __init__(self, node, trace, weak=False):
        self.node = node
        self.trace = trace
        self.weak = weak

    shape = property(lambda self: self.node.shape)
    dtype = property(lambda self: self.node.dtype)
    ndim = property(lambda self: len(self.node.shape))
    size = property(lambda self: self.node.size)

    def _concrete(self, what, hint=""):
        raise ConcretizationError(
            f"{what} of a traced value at {user_location()}: inside gc.jit and the gradient "
            "transforms values are symbolic, so Python control flow cannot depend on them. "
            "Use gc.where(cond, a, b) for a data-dependent choice, or pass the value as a static "
            f"argument (gc.jit(..., static_argnums=...)). See {docs_link('guide/jit')}" + hint)

    def __bool__(self):
        self._concrete("bool()")

    def __int__(self):
        self._concrete("int()")

    def __float__(self):
        if _storing_into_array():
            # NOTE: NumPy replaces any error float() raises in `buf[i] = traced` by its own
            # ValueError ("setting an array element with a sequence"): say what happened first.
            import warnings
            warnings.warn(f"gradc: a traced value is written into a NumPy array at "
                          f"{user_location()}, which cannot hold it." + _BUFFER_HINT,
                          RuntimeWarning, stacklevel=2)
        self._concrete("float()", _BUFFER_HINT)

    def __index__(self):
        self._concrete("use as an index or int")

    def __array__(self, dtype=None, copy=None):
        if not self.shape and (dtype is None or np.dtype(dtype) == object):
            # NOTE: a traced scalar as a 0-d object array, so np.array([x, y]), np.sum([x, y]) and
            # np.mean([a, b]) build object arrays whose arithmetic records gradc operations.
            box = np.empty((), object)
            box[()] = self
            return box
        caller = library_caller()
        if caller is not None:
            raise ConcretizationError(
                f"{caller[0]} (called at {caller[1]}) converts a traced value to a NumPy array: "
                "that library function cannot be traced by gradc. Use gradc's own function where "
                f"it has one ({SUPPORTED_HINT}), or call the library outside gc.jit / gc.grad.")
        self._concrete("conversion to a NumPy array (np.array / np.asarray, or a library "
                       "function that calls them, which cannot be traced)", _BUFFER_HINT
                       + " np.array(list) of traced arrays works through the numpy module (not a"
                       " name bound before tracing, as `from numpy import array`: call np.array"
                       " or gc.array there)."
                       + _dot_hint())

    def __len__(self):
        if not self.shape:
            self._concrete("len() or iteration (e.g. as an axis)")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        # NOTE: print(x) inside gc.jit runs once, at trace time: say so, and what shows values.
        made = "an argument" if self.node.prim.name == "input" else \
            f"{self.node.prim.name} at {self.node.loc}"
        return (f"Traced<{self.node.type_str}, {made}> (a symbolic value while tracing; "
                f"gc.debug_print('{{}}', x) prints its values at run time)")

    def __hash__(self):
        return id(self)


_BUFFER_HINT = (" If this writes a traced value into a NumPy array (buf[i] = traced), NumPy "
                "cannot hold it: make the buffer a gradc value (buf = gc.array(buf), or "
                "np.zeros_like(traced)), then buf[i] = v, or write buf = gc.at(buf)[i].set(v) / "
                "x.at[i].set(v).")


def _storing_into_array():
    """Whether the user's line being run is an item assignment (`buf[i] = value`)."""
    import dis
    import sys
    from .errors import _PACKAGE_DIR
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return False
    return any(i.offset == frame.f_lasti and i.opname == "STORE_SUBSCR"
               for i in dis.get_instructions(frame.f_code))


def _dot_hint():
    """ndarray.dot(traced) converts its argument (NumPy's methods do not dispatch): name the fix."""
    import linecache
    import sys
    from .errors import _PACKAGE_DIR
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    text = linecache.getline(frame.f_code.co_filename, frame.f_lineno) if frame else ""
    return (" `array.dot(traced)` converts its argument: write `array @ traced` or "
            "np.dot(array, traced)." if ".dot(" in text else "")


class _PrimitiveNames:
    """Late access to primitives by attribute (core is imported before the table is built)."""

    def __getattr__(self, name):
        from .primitives import PRIMITIVES
        return PRIMITIVES[name]


PRIM = _PrimitiveNames()


def _loc():
    origin = _origin[0]
    return origin[0] if origin is not None else user_location()


_LIBRARY = Phase("fwd", library=True)


def _phase():
    origin = _origin[0]
    if origin is not None:
        return origin[1]
    return _LIBRARY if made_by_library() else "fwd"


@contextlib.contextmanager
def origin(loc, phase):
    """Nodes created inside inherit this location and phase (used when replaying or differentiating)."""
    saved = _origin[0]
    _origin[0] = (loc, phase)
    try:
        yield
    finally:
        _origin[0] = saved


def tracing():
    """Whether a transform is tracing now (gc.jit, gc.grad, ... anywhere up the call stack)."""
    return bool(_trace_stack)


def top_trace(args):
    """The innermost trace among the tracers in args, or None."""
    best = None
    for a in args:
        if isinstance(a, Tracer):
            if not a.trace.active:
                raise ConcretizationError(
                    f"a traced value escaped its transform and was used at {user_location()}: "
                    "values traced inside gc.jit / gc.grad cannot be kept and used outside them.")
            if best is None or a.trace.level > best.level:
                best = a.trace
    return best


def bind(prim, *args, **params):
    """Applies a primitive: records a node when any argument is traced, computes with NumPy otherwise
    (on gc.Tensor arguments it also records the operation for backward())."""
    trace = top_trace(args)
    if trace is not None:
        nodes = [trace.node_of(a) for a in args]
        shape, dtype = prim.shape_rule(*[(n.shape, n.dtype) for n in nodes], **params)
        node = Node(prim, nodes, params, shape, dtype, loc=_loc(), phase=_phase())
        trace.made.append(node)
        return Tracer(node, trace)
    from .eager import Tensor, apply_eager
    if any(isinstance(a, Tensor) for a in args):
        return apply_eager(prim, args, params)
    return compute(prim, args, params)


def bind_sized(like, prim, **params):
    """A primitive without inputs whose params hold a size of `like` (a named size's value, an
    iota): recorded in like's trace, computed at once outside one."""
    return bind_in(top_trace([like]), prim, **params)


def bind_in(trace, prim, **params):
    """A primitive without inputs recorded in `trace` (computed at once when it is None)."""
    if trace is None:
        return compute(prim, [], params)
    shape, dtype = prim.shape_rule(**params)
    node = Node(prim, [], params, shape, dtype, loc=_loc(), phase=_phase())
    trace.made.append(node)
    return Tracer(node, trace)


def compute(prim, values, params):
    """A primitive on NumPy arrays, with the dtype its shape rule promises."""
    shape, dtype = prim.shape_rule(*[(np.shape(v), v.dtype) for v in values], **params)
    out = np.asarray(prim.impl(*values, **params))
    return out if out.dtype == dtype else out.astype(dtype)
