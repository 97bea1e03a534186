"""gc.jit: trace once per signature, simplify, hand the graph to a backend, cache the result.
Also Lowered / Compiled (API.md section 1) and the argument checks of the call path."""
import copy
import functools
import inspect
import numbers
import time

import numpy as np

from . import (backends, compile_log, core, dtypes, dynamic, hazards, nans, ops, pickling,
               printing, symbolic)
from .dtypes import Spec
from .ir import Graph
from .simplify import simplify
from .transforms import lift
from .tree import TreeDef, tree_flatten, tree_unflatten


def leaf_names(prefix, treedef):
    """Readable names of a pytree's leaves: W, params['w1'], xs[0]."""
    if treedef.kind == "leaf":
        return [prefix]
    if treedef.kind == "none":
        return []
    keys = treedef.keys if treedef.kind == "dict" else range(len(treedef.children))
    names = []
    for key, child in zip(keys, treedef.children):
        names += leaf_names(f"{prefix}[{key!r}]", child)
    return names


def _is_static_leaf(leaf):
    return not (isinstance(leaf, (np.ndarray, np.generic, numbers.Number, core.Tracer, Spec))
                or type(leaf).__name__ == "Tensor")


def _signature_of(leaf):
    """(shape, dtype, weak) of a call argument leaf, as a cache key part."""
    if isinstance(leaf, Spec):
        return leaf.shape, leaf.dtype, False
    if ops._is_python_scalar(leaf):
        return (), ops._dtype_of(leaf), True
    array = ops.asarray(leaf)
    return array.shape, array.dtype, False


class Lowered:
    """One traced and simplified signature of a jitted function, before compilation.

    >>> import numpy as np, gradc as gc
    >>> lowered = gc.jit(lambda x: gc.sum(x * x)).lower(gc.Spec((3,), "float64"))
    >>> "mul" in lowered.as_text(), "double" in lowered.c_source
    (True, True)
    """

    def __init__(self, fn, graph, in_tree, out_tree, in_names, backend, traced_graph):
        self.fn = fn
        self.graph = graph                  # the simplified graph that runs
        self.traced_graph = traced_graph    # as traced, before simplification
        self.in_tree = in_tree
        self.out_tree = out_tree
        self.in_names = in_names
        self.out_names = leaf_names("output", out_tree)
        self.backend = backend
        self.fixed_leaves = set()          # leaves that were static values (e.g. a string option)
        self.statics = ()                  # (position, value) of static_argnums arguments
        self.bind = None                   # maps a call's (args, kwargs) as the jitted function did
        self.jitted = None                 # the Jitted that traced it, and the call as Specs:
        self.abstract_call = None          # what pickling a Compiled sends (gradc/pickling.py)
        self.debug_nans = False            # Compiled replays a call whose outputs are not finite
        self.prints = []                   # gc.debug_print calls: their values are the last outputs
        self._compiled = None

    @property
    def in_specs(self):
        return [Spec(n.shape, n.dtype) for n in self.graph.inputs]

    def as_text(self):
        """The graph, one node a line in schedule order (forward, then reverse nodes)."""
        return self.graph.as_text()

    def to_dot(self, out_names=None):
        """Graphviz DOT of the graph; outputs named out_names (default: output[0], ...)."""
        return self.graph.to_dot(getattr(self.fn, "__name__", "gradc"), out_names or self.out_names)

    @property
    def c_source(self):
        """The generated C for this signature."""
        return backends.get("c").generate(self).source

    def without_prints(self):
        """This signature without its gc.debug_print outputs (what AOT builds export)."""
        if not self.prints:
            return self
        lowered = copy.copy(self)
        main = len(self.graph.outputs) - sum(p.count for p in self.prints)
        lowered.graph = Graph(self.graph.inputs, self.graph.outputs[:main])
        lowered.prints, lowered._compiled = [], None
        return lowered

    def compile(self):
        """A Compiled callable fixed to this signature."""
        if self._compiled is None:
            start = time.perf_counter()
            self._compiled = Compiled(self, backends.get(self.backend).compile(self))
            compile_log.compiled(_name(self.fn), self.backend, time.perf_counter() - start,
                                 self._compiled.stats)
        return self._compiled

    def signature(self):
        """'loss(W: f32[3,4], x: f64[]) -> (f64[], f32[3,4])'."""
        ins = ", ".join(f"{n}: {s.type_str}" for n, s in zip(self.in_names, self.graph.inputs))
        outs = [n.type_str for n in self.graph.outputs[:len(self.out_names)]]
        out = outs[0] if self.out_tree.kind == "leaf" else "(" + ", ".join(outs) + ")"
        return f"{_name(self.fn)}({ins}) -> {out}"

    def __repr__(self):
        return (f"<gc.Lowered {self.signature()}, backend={self.backend!r}, "
                f"{len(self.graph.nodes)} nodes>")


class Compiled:
    """A compiled signature. Calls are checked against it: another shape or dtype is a ValueError
    naming the parameter (Python scalars and lists are converted first).

    >>> import numpy as np, gradc as gc
    >>> compiled = gc.jit(lambda x: x + 1).lower(np.zeros(2)).compile()
    >>> compiled(np.array([1.0, 2.0]))
    array([2., 3.])
    >>> sorted(k for k in compiled.stats if k in ("nodes", "kernels", "workspace_bytes"))
    ['kernels', 'nodes', 'workspace_bytes']
    """

    def __init__(self, lowered, executable):
        self.lowered = lowered
        self.executable = executable
        self._specs = [(n.shape, n.dtype) for n in lowered.graph.inputs]
        self._debug_nans = lowered.debug_nans
        self._prints = lowered.prints
        self._fast = None if self._debug_nans else self.fast_path()

    @property
    def stats(self):
        return self.executable.stats

    def __reduce__(self):       # by the function and the signature; the receiver recompiles
        return pickling.reduce_compiled(self)

    def __repr__(self):
        stats = self.stats
        kernels = f", {stats['kernels']} kernels" if stats.get("backend") == "c" else ""
        hit = ", from the disk cache" if stats.get("cache_hit") else ""
        return (f"<gc.Compiled {self.lowered.signature()}, backend={self.lowered.backend!r}"
                f"{kernels}{hit}>")

    def __call__(self, *args, **kwargs):
        if self._fast is not None and not kwargs:    # exactly matching arrays, checked in C
            out = call_fast(self._fast, args)
            if out is not NotImplemented:
                return out
        if self.lowered.bind is not None:
            args, kwargs = self.lowered.bind(args, kwargs)
        if self.lowered.statics:
            args = without_statics(args, self.lowered.statics, self.lowered.fn)
        leaves = flatten_args(self.lowered, args, kwargs)
        if self.lowered.fixed_leaves:
            leaves = [v for i, v in enumerate(leaves) if i not in self.lowered.fixed_leaves]
        return self.call_leaves(check_leaves(leaves, self._specs, self.lowered.in_names))

    def call_leaves(self, leaves):
        outs = self.executable(leaves)
        if self._debug_nans:
            nans.check(self.lowered, leaves, outs)
        if self._prints:
            self._emit_prints(outs)
        return self._build(outs)

    def _emit_prints(self, outs):
        printing.emit(self._prints, outs[len(outs) - sum(p.count for p in self._prints):])

    @functools.cached_property
    def _build(self):
        return output_builder(self.lowered.out_tree)

    def fast_path(self):
        """(native entry, output builder, leaf extractor or None for flat arguments) when the
        backend has a native call path and the signature suits it, else None."""
        entry = getattr(self.executable, "entry", None)
        tree = getattr(self.lowered, "fast_tree", None)
        if entry is None or tree is None:
            return None
        build = self._print_and_build if self._prints else self._build
        return entry, build, None if tree == "flat" else leaf_extractor(tree)

    def _print_and_build(self, outs):
        """The output pytree (which leaves out the printed values), after printing them."""
        self._emit_prints(outs)
        return self._build(outs)


def call_fast(fast, args):
    """A positional call through the native path, or NotImplemented if it does not fit exactly."""
    entry, build, extract = fast
    leaves = args if extract is None else extract(args)
    out = NotImplemented if leaves is None else entry.call(leaves)
    return out if out is NotImplemented else build(out)


def leaf_extractor(treedef):
    """A function from positional args to their leaves when they have exactly the structure of
    treedef (else None): generated once, since tree_flatten costs microseconds per call."""
    checks, leaves = [], []

    def walk(td, path):
        if td.kind == "leaf":
            leaves.append(path)
        elif td.kind == "none":
            checks.append(f"{path} is None")
        elif td.kind == "dict":
            checks.append(f"type({path}) is dict and len({path}) == {len(td.keys)}")
            for key, child in zip(td.keys, td.children):
                walk(child, f"{path}[{key!r}]")
        else:
            kind = "tuple" if td.kind == "tuple" else "list"
            checks.append(f"type({path}) is {kind} and len({path}) == {len(td.children)}")
            for i, child in enumerate(td.children):
                walk(child, f"{path}[{i}]")
    walk(treedef.children[0], "a")
    source = (f"def extract(a):\n    try:\n        if not ({' and '.join(checks) or 'True'}):\n"
              f"            return None\n        return ({''.join(p + ', ' for p in leaves)})\n"
              f"    except (KeyError, IndexError, TypeError):\n        return None\n")
    namespace = {}
    exec(source, namespace)      # noqa: S102 - generated from a TreeDef, not from input
    return namespace["extract"]


def without_statics(args, statics, fn):
    """A call's positional args less its static ones (static_argnums), which must have the values
    the signature was compiled for: another value is a ValueError naming the argument."""
    args = list(args)
    for i, value in sorted(statics, reverse=True):
        given = args[i] if i < len(args) else None
        try:
            same = i < len(args) and (given is value or bool(given == value))
        except Exception:       # noqa: BLE001 - a value without a plain == is not the same
            same = False
        if not same:
            raise ValueError(f"{_name(fn)}: static argument {i} was {value!r} when compiled, got "
                             f"{given!r}; call the gc.jit function for another value")
        del args[i]
    return tuple(args)


def flatten_args(lowered, args, kwargs):
    """Leaves of (args, kwargs) following the lowered structure: a list where an array is expected
    becomes an array; a different structure is a TypeError."""
    expected = lowered.in_tree
    leaves = []
    stack = [(expected, (tuple(args), dict(kwargs)), "arguments")]
    while stack:
        td, value, where = stack.pop()
        if td.kind == "leaf":
            leaves.append((where, value))
            continue
        if td.kind == "none":
            continue
        if td.kind == "dict":
            if not isinstance(value, dict) or sorted(value) != list(td.keys):
                raise TypeError(f"{where}: expected a dict with keys {list(td.keys)}, got "
                                f"{type(value).__name__}")
            children = [value[k] for k in td.keys]
        else:
            if not isinstance(value, (tuple, list)) or len(value) != len(td.children):
                raise TypeError(f"{where}: expected a {td.kind} of {len(td.children)} items, got "
                                f"{type(value).__name__}"
                                + (f" of {len(value)}" if isinstance(value, (tuple, list)) else ""))
            children = value
        for i, (child_td, child) in reversed(list(enumerate(zip(td.children, children)))):
            stack.append((child_td, child, f"{where}[{i}]"))
    return [v for _, v in leaves]


def check_leaves(leaves, specs, names):
    """Arrays matching specs exactly (shape and dtype), else ValueError naming the parameter."""
    out = []
    for value, (shape, dtype), name in zip(leaves, specs, names):
        array = np.asarray(value, dtype=dtype) if isinstance(value, (numbers.Number, list)) else value
        if not isinstance(array, np.ndarray):
            array = np.asarray(array)
        if not array.dtype.isnative and array.dtype.newbyteorder("=") == dtype:
            array = array.astype(dtype)       # the same dtype in the other byte order
        if not symbolic.fits(array.shape, shape) or array.dtype != dtype:
            raise ValueError(f"argument {name}: expected {dtypes.short_name(dtype)}"
                             f"[{','.join(map(repr, shape))}], got {dtypes.short_name(array.dtype)}"
                             f"[{','.join(map(str, array.shape))}]")
        out.append(array)
    return out


def output_builder(treedef):
    """A function from the flat tuple of outputs to the output pytree (generated once: calls are hot)."""
    counter = iter(range(treedef.num_leaves))

    def expr(td):
        if td.kind == "leaf":
            return f"o[{next(counter)}]"
        if td.kind == "none":
            return "None"
        items = [expr(c) for c in td.children]
        if td.kind == "dict":
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(td.keys, items)) + "}"
        inner = ", ".join(items) + ("," if len(items) == 1 and td.kind == "tuple" else "")
        return f"({inner})" if td.kind == "tuple" else f"[{inner}]"
    return eval(f"lambda o: {expr(treedef)}")     # noqa: S307 - built from a TreeDef, not input


class Jitted:
    """The callable gc.jit returns. Retraces on a new signature; otherwise reuses the compiled code.

    >>> import numpy as np, gradc as gc
    >>> f = gc.jit(lambda x: 2 * x)
    >>> f(np.ones(2)), f(np.ones(3)).shape      # a new shape: traced and compiled once more
    (array([2., 2.]), (3,))
    """

    def __init__(self, fn, static_argnums=(), backend="c", debug_nans=None, dynamic="auto"):
        if dynamic not in ("auto", True, False):
            raise ValueError(f"gc.jit: dynamic must be 'auto', True or False, got {dynamic!r}")
        self.fn = fn
        self.dynamic = dynamic
        self._symbolic = []        # (symbolic key, Compiled): kernels with named sizes
        self._per_shape = None     # why fn cannot have named sizes, once it has failed
        self.debug_nans = nans.enabled_by_env() if debug_nans is None else bool(debug_nans)
        self.static_argnums = ((static_argnums,) if isinstance(static_argnums, int)
                               else tuple(static_argnums))
        self.backend = backend
        backends.get(backend)     # unknown backend: fail now, not at the first call
        try:
            self._signature = inspect.signature(fn)
        except (TypeError, ValueError):
            self._signature = None
        self._cache = {}
        self._fast = None          # Compiled.fast_path() of the last signature called
        self._hazards_warned = set()   # (rule, line) pairs already reported (None: never warn)
        self._last_key = None      # the signature of the last call on the general path
        self._misses = self._general_hits = 0
        # NOTE: updated=(): fn's __dict__ may be another Jitted's (through a transform's wraps);
        # merging it would replace this one's state with the inner function's.
        functools.update_wrapper(self, fn, updated=())

    def __reduce__(self):       # by the function and the options, never the compiled libraries
        return pickling.reduce_jitted(self)

    def _bind(self, args, kwargs):
        if self._signature is None:
            return tuple(args), dict(kwargs)
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{getattr(self.fn, '__name__', 'function')}(): {e}") from None
        # Defaults the caller did not pass stay Python values (static), like gc.nn.softmax's axis.
        return bound.args, bound.kwargs

    def _split(self, args, kwargs):
        """(dynamic leaves, their tree, static values) for a call. Leaves that are not numbers or
        arrays (a string option, a function) are static too, like static_argnums."""
        nargs = len(args)
        static = tuple(n % nargs for n in self.static_argnums if -nargs <= n < nargs)
        dynamic = tuple(a for i, a in enumerate(args) if i not in static)
        statics = tuple((i, args[i]) for i in static)
        leaves, tree = tree_flatten((dynamic, kwargs))
        if any(_is_static_leaf(leaf) for leaf in leaves):
            fixed = tuple((i, leaf) for i, leaf in enumerate(leaves) if _is_static_leaf(leaf))
            leaves = [leaf for leaf in leaves if not _is_static_leaf(leaf)]
            tree = (tree, fixed)
        return leaves, tree, statics

    def _names(self, args, tree):
        params = list(self._signature.parameters) if self._signature else []
        nargs_dyn = len(tree.children[0].children)
        static = {n % max(len(args), 1) for n in self.static_argnums}
        arg_names = [p for i, p in enumerate(params[:len(args)]) if i not in static]
        arg_names += [f"arg{i}" for i in range(len(arg_names), nargs_dyn)]
        names = []
        for name, child in zip(arg_names, tree.children[0].children):
            names += leaf_names(name, child)
        kw_td = tree.children[1]
        for key, child in zip(kw_td.keys, kw_td.children):
            names += leaf_names(key, child)
        return names

    def _leaf_names(self, args, tree):
        """Names of the dynamic leaves (static leaves left out), as in error messages."""
        tree, fixed = tree if isinstance(tree, tuple) else (tree, ())
        return [n for i, n in enumerate(self._names(args, tree)) if i not in dict(fixed)]

    def lower(self, *args, **kwargs):
        """Traces for the signature of args (arrays or gc.Spec) without running."""
        args, kwargs = self._bind(args, kwargs)
        leaves, tree, statics = self._split(args, kwargs)
        return self._lower(args, leaves, tree, statics, "lower()")

    def _lower(self, args, leaves, tree, statics, why=None, sigs=None):
        start = time.perf_counter()
        sigs = sigs or [_signature_of(leaf) for leaf in leaves]
        names = self._leaf_names(args, tree)
        tree, fixed = tree if isinstance(tree, tuple) else (tree, ())
        with core.Trace() as trace:
            inputs = [trace.new_input(shape, dtype, weak, name=name)
                      for (shape, dtype, weak), name in zip(sigs, names)]
            full, kwargs = _assemble(tree, fixed, statics, inputs)
            out = self.fn(*full, **kwargs)
            out_leaves, out_tree = tree_flatten(out)
            outs = [lift(trace, o) for o in out_leaves]
            prints, print_values = printing.pending(trace)
        traced = Graph(trace.inputs, [o.node for o in outs + print_values])
        if self._hazards_warned is not None:
            hazards.warn(hazards.lint_nodes(trace.made), self._hazards_warned)
        graph = simplify(traced)
        lowered = Lowered(self.fn, graph, tree, out_tree, names, self.backend, traced)
        lowered.fixed_leaves = {i for i, _ in fixed}
        lowered.statics = statics
        lowered.in_weak = [w for _, _, w in sigs]
        lowered.bind = self._bind
        # What pickling a Compiled needs to lower it again: this function and an abstract call.
        lowered.jitted = self
        lowered.abstract_call = _assemble(tree, fixed, statics,
                                          [pickling.abstract_leaf(leaf, sig)
                                           for leaf, sig in zip(leaves, sigs)])
        lowered.traced_nodes = trace.made
        lowered.prints = prints
        lowered.debug_nans = self.debug_nans
        # The native call path takes the leaves of a positional call; a flat one needs no flattening.
        if statics or fixed or tree.children[1].children:
            lowered.fast_tree = None
        elif all(c.kind == "leaf" for c in tree.children[0].children):
            lowered.fast_tree = "flat"
        else:
            lowered.fast_tree = tree
        if why is not None:
            compile_log.traced(_name(self.fn), why, time.perf_counter() - start, lowered)
        return lowered

    def _symbolic_entry(self, key, leaves):
        """A compiled kernel with named sizes that serves this call, or None."""
        for skey, compiled in self._symbolic:
            if dynamic.matches(skey, key):
                try:
                    symbolic.bind_sizes([np.shape(leaf) for leaf in leaves],
                                        [s for s, _, _ in skey[2]], compiled.lowered.in_names)
                except ValueError:
                    continue        # sizes named alike differ here: a kernel of its own
                return compiled
        return None

    def _compile(self, args, leaves, tree, statics, key):
        """Traces and compiles for this call: with the sizes that changed since the last call
        named (dynamic="auto"; every size with dynamic=True), else for its exact shapes."""
        names = self._leaf_names(args, tree)
        why = compile_log.reason(self._last_key, key, names)
        skey = None
        if self.dynamic and self._per_shape is None and self.backend in ("c", "numpy"):
            skey = (dynamic.all_named(key) if self.dynamic is True else
                    self._last_key and dynamic.generalize(self._last_key, key))
        if skey:
            try:
                lowered = self._lower(args, leaves, tree, statics,
                                      f"{why}; {dynamic.describe(skey, names)}: one kernel for "
                                      "every size", sigs=list(skey[2]))
                lowered.min_named_size = 2     # size 1 gets its own kernel (dynamic.matches)
                compiled = lowered.compile()
            except Exception as e:      # noqa: BLE001 - traced again per shape below
                self._per_shape = f"{type(e).__name__}: {e}"
                compile_log.per_shape(_name(self.fn), self._per_shape)
            else:
                self._symbolic.append((skey, compiled))
                return compiled
        return self._lower(args, leaves, tree, statics, why).compile()

    def cache_info(self):
        """CacheInfo(hits, misses, entries): calls that reused a compiled signature, calls that
        traced and compiled one, and the signatures held."""
        compiled = list({id(c): c for c in self._cache.values()}.values())
        native = sum(getattr(getattr(c.executable, "entry", None), "calls", 0) for c in compiled)
        return compile_log.CacheInfo(self._general_hits + native, self._misses, len(compiled))

    def __repr__(self):
        sigs = [c.lowered.signature() for c in {id(c): c for c in self._cache.values()}.values()]
        shown = "; ".join(sigs[:3]) + ("; ..." if len(sigs) > 3 else "")
        return (f"<gc.jit {_name(self.fn)}, backend={self.backend!r}, {len(sigs)} compiled "
                f"signature{'s' if len(sigs) != 1 else ''}{': ' + shown if sigs else ''}>")

    def __call__(self, *args, **kwargs):
        if self._fast is not None and not kwargs:    # the signature of the last call, checked in C
            out = call_fast(self._fast, args)
            if out is not NotImplemented:
                return out
        args, kwargs = self._bind(args, kwargs)
        leaves, tree, statics = self._split(args, kwargs)
        # Inside another transform (or on gc.Tensor values) trace through: fn joins the enclosing
        # graph, which also covers a fn that closes over the enclosing trace's values.
        if core.tracing() or any(type(leaf).__name__ == "Tensor" for leaf in leaves):
            return self.fn(*args, **kwargs)
        key = (tree, statics, tuple(_signature_of(leaf) for leaf in leaves))
        try:
            compiled = self._cache.get(key)
        except TypeError:
            raise TypeError(f"{getattr(self.fn, '__name__', 'function')}: static arguments must be "
                            f"hashable, got {[type(v).__name__ for _, v in statics]}") from None
        if compiled is None:
            compiled = self._symbolic_entry(key, leaves)
            if compiled is None:
                self._misses += 1
                compiled = self._compile(args, leaves, tree, statics, key)
            else:
                self._general_hits += 1
            self._cache[key] = compiled
        else:
            self._general_hits += 1
        self._last_key = key
        self._fast = compiled._fast        # None when the call must take the general path
        arrays = [np.asarray(leaf, dtype=spec[1]) for leaf, spec in zip(leaves, compiled._specs)]
        return compiled.call_leaves(arrays)


def _assemble(tree, fixed, statics, leaves):
    """(positional args, kwargs) of a call from its dynamic leaves and its static parts."""
    all_leaves = list(leaves)
    for i, value in fixed:
        all_leaves.insert(i, value)
    dynamic, kwargs = tree_unflatten(tree, all_leaves)
    full = list(dynamic)
    for i, value in statics:
        full.insert(i, value)
    return full, kwargs


def _name(fn):
    return getattr(fn, "__name__", "function")


def jit(fn=None, *, static_argnums=(), backend="c", debug_nans=None, dynamic="auto"):
    """Compiles fn to native code: traced once per signature (shapes, dtypes, structure, static
    values), then one native call per call. Usable as ``@gc.jit`` and ``@gc.jit(...)``.

    The first call for a signature traces ``fn`` on symbolic values, differentiates and simplifies
    the graph, writes C for it, compiles it with the system compiler and caches it (in memory
    and in ``GRADC_CACHE_DIR``); later calls with the same signature reuse it. Arguments are
    NumPy arrays, scalars and pytrees of them; outputs have the structure ``fn`` returns, each
    leaf a fresh ``numpy.ndarray``. Python control flow on traced values raises
    ``gc.ConcretizationError``: use ``gc.where``.

    Args:
        fn: the function to compile (omit it to get a decorator).
        static_argnums: positions of arguments that are Python values fixed per compilation
            (part of the signature: a new value compiles again).
        backend: ``"c"`` (compiled C) or ``"numpy"`` (the same graph, interpreted op by op).
        debug_nans: check every call's outputs and raise ``gc.NonFiniteError`` naming the node
            that made a NaN or Inf (default: ``GRADC_DEBUG_NANS=1`` when the function is jitted).
        dynamic: ``"auto"``: a call whose shapes differ from the last call's only in some sizes
            compiles once more with those sizes named, and that kernel serves every size;
            ``True``: every size named from the first call; ``False``: a kernel per shape.

    Returns:
        A ``gc.Jitted`` with ``fn``'s signature, and ``.lower(*args_or_specs)`` to inspect
        (``as_text()``, ``c_source``, ``to_dot()``) or ``compile()`` one signature.

    >>> f = gc.jit(lambda x: gc.sum(x * x)); f(np.arange(3.0))
    array(5.)
    >>> step = gc.jit(gc.value_and_grad(lambda w, x: gc.sum((x @ w) ** 2)))
    >>> step(np.ones(2), np.eye(2))
    (array(2.), array([2., 2.]))
    """
    if fn is None:
        return functools.partial(jit, static_argnums=static_argnums, backend=backend,
                                 debug_nans=debug_nans, dynamic=dynamic)
    return Jitted(fn, static_argnums, backend, debug_nans, dynamic)
