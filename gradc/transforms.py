"""The composable transforms of API.md section 2: grad, value_and_grad, vjp, jvp, jacobian, hessian,
check_grad. Each traces the function into a graph, applies autodiff.py to it and then either runs
the result (concrete inputs) or splices it into the enclosing trace (inside gc.jit / another
transform), which is what makes them compose."""
import functools

import numpy as np

from . import core, interpreter, ops, printing
from .autodiff import backward_pass, forward_pass
from .errors import GradientCheckError
from .ir import Graph
from .simplify import simplify
from .tree import tree_flatten, tree_unflatten
from ._types import ArgNums, ArrayLike, PyTree
from typing import Callable, Optional, Sequence, Tuple
from .symbolic import prod


# ---- tracing helpers -----------------------------------------------------------------------------

def abstract(leaf):
    """(shape, dtype, weak) of an argument leaf."""
    if isinstance(leaf, core.Tracer):
        return leaf.shape, leaf.dtype, leaf.weak
    weak = ops._is_python_scalar(leaf)
    value = ops.asarray(leaf) if not weak else np.asarray(leaf)
    return value.shape, (ops._dtype_of(leaf) if weak else value.dtype), weak


def lift(trace, value):
    """A tracer of `trace` for any value the traced function returned."""
    if isinstance(value, core.Tracer) and value.trace is trace:
        return value
    if isinstance(value, core.Tracer):
        return core.Tracer(trace.capture(value), trace)
    return core.Tracer(trace.const(ops.asarray(value)), trace)


def call_graph(graph, values):
    """Runs graph on values: spliced into the enclosing trace if any value is traced (or onto the
    eager tape for gc.Tensor values), else simplified and interpreted with NumPy."""
    if any(isinstance(v, core.Tracer) or type(v).__name__ == "Tensor" for v in values):
        results = interpreter.replay(graph, values)
    else:
        arrays = [np.asarray(v, dtype=node.dtype) for v, node in zip(values, graph.inputs)]
        results = interpreter.run(simplify(graph), arrays)
    prints = getattr(graph, "prints", None)
    if not prints:
        return results
    main = len(results) - sum(p.count for p in prints)    # gc.debug_print values come last
    printing.hand_on(prints, results[main:])
    return results[:main]


class _Traced:
    """fn traced on fresh inputs standing for `args` (and keyword arguments), inside an open trace."""

    def __init__(self, fn, args, kwargs):
        self.leaves, self.in_tree = tree_flatten((tuple(args), dict(kwargs)))
        self.trace = core.Trace()
        self.trace.__enter__()
        try:
            self.inputs = [self.trace.new_input(*abstract(leaf)) for leaf in self.leaves]
            # fn gets its own tracers of the input nodes: item assignment into an argument
            # (x[0] = v) rebinds fn's tracer, never the inputs this trace differentiates.
            a, kw = tree_unflatten(self.in_tree, [core.Tracer(i.node, i.trace, i.weak)
                                                  for i in self.inputs])
            self.out = fn(*a, **kw)
        except BaseException:
            self.abort()     # an error in fn must not leave this trace open for later calls
            raise

    def close(self, outputs, extra_inputs=()):
        """Ends tracing; returns the graph from (inputs, extra_inputs, captured) to outputs."""
        self.trace.__exit__()
        nodes = [i.node for i in self.inputs] + [e.node for e in extra_inputs] + self.trace.capture_nodes
        prints, print_values = printing.pending(self.trace)
        graph = Graph(nodes, [o.node for o in outputs] + [p.node for p in print_values])
        graph.prints = prints        # call_graph prints them or hands them to the enclosing trace
        return graph

    def abort(self):
        if self.trace.active:
            self.trace.__exit__()

    def arg_leaf_range(self, argnum):
        """Flat-leaf indices of positional argument argnum."""
        start = sum(len(tree_flatten(a)[0]) for a in self.in_tree_args()[:argnum])
        return range(start, start + len(tree_flatten(self.in_tree_args()[argnum])[0]))

    def in_tree_args(self):
        return tree_unflatten(self.in_tree, self.leaves)[0]


def _traced(fn, args, kwargs):
    return _Traced(fn, args, kwargs)


def _normalize_argnums(argnums, nargs, what):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -nargs <= n < nargs:
            raise TypeError(f"{what}: argnums {argnums} out of range for {nargs} positional arguments")
    return tuple(n % nargs for n in nums)


# ---- grad / value_and_grad -----------------------------------------------------------------------

def _holds_tensor(arg):
    from .eager import Tensor
    return any(isinstance(leaf, Tensor) for leaf in tree_flatten(arg)[0])


def _only(fn, args, kwargs, nums):
    """fn as a function of args[nums] alone: the other arguments (and keyword arguments) stay what
    they are, so a Python int stays an int (`params[i % n]`), as in autograd."""
    def of_differentiated(*values):
        full = list(args)
        for n, value in zip(nums, values):
            full[n] = value
        return fn(*full, **kwargs)
    return of_differentiated


def _value_and_grad(fn, argnums, has_aux, args, kwargs, what):
    requested = _normalize_argnums(argnums, len(args), what)
    differentiated = list(dict.fromkeys(requested))      # each argument traced once
    # gc.Tensor arguments stay inputs too, so the eager engine records the result for backward().
    positions = differentiated + [i for i, a in enumerate(args)
                                  if i not in differentiated and _holds_tensor(a)]
    t = _traced(_only(fn, args, kwargs, positions), [args[n] for n in positions], {})
    nums = range(len(differentiated))
    try:
        out, aux = t.out, None
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"{what}(has_aux=True): the function must return (value, aux)")
            out, aux = out
        value = lift(t.trace, out)
        if value.shape != () or value.dtype.kind != "f":
            raise TypeError(f"{what} needs a function returning a float scalar, got "
                            f"{value.node.type_str}; for other outputs use gc.vjp or gc.jacobian")
        wrt_index = [i for n in nums for i in t.arg_leaf_range(n)]
        for i in wrt_index:
            if t.inputs[i].dtype.kind != "f":
                raise TypeError(f"{what}: argument {positions[_arg_of(t, i)]} has dtype "
                                f"{t.inputs[i].dtype}; "
                                "only float arguments can be differentiated")
        seed = np.ones((), value.dtype)
        grads = backward_pass(t.trace, [value], [seed], [t.inputs[i].node for i in wrt_index])
        grads = [lift(t.trace, g if g is not None else ops.zeros_like(t.inputs[i]))
                 for g, i in zip(grads, wrt_index)]
        aux_leaves, aux_tree = tree_flatten(aux)
        aux_leaves = [lift(t.trace, a) for a in aux_leaves]
        graph = t.close([value] + grads + aux_leaves)
    finally:
        t.abort()
    results = call_graph(graph, t.leaves + t.trace.captured)
    value, grads, aux_values = results[0], results[1:1 + len(grads)], results[1 + len(grads):]
    grads = iter(grads)
    per_arg = []
    for n in nums:
        _, tree = tree_flatten(t.in_tree_args()[n])
        per_arg.append(tree_unflatten(tree, [next(grads) for _ in range(tree.num_leaves)]))
    per_arg = [per_arg[differentiated.index(n)] for n in requested]
    grads_out = per_arg[0] if isinstance(argnums, int) else tuple(per_arg)
    aux_out = tree_unflatten(aux_tree, aux_values) if has_aux else None
    return value, grads_out, aux_out


def _arg_of(t, leaf_index):
    for n in range(len(t.in_tree_args())):
        if leaf_index in t.arg_leaf_range(n):
            return n
    return "?"


def value_and_grad(fn: Optional[Callable] = None, argnums: ArgNums = 0,
                   has_aux: bool = False) -> Callable:
    """Returns f(*args) -> (value, grads); with has_aux, ((value, aux), grads).

    >>> gc.value_and_grad(lambda x: (x ** 2).sum())(np.array([1., 2.]))
    (array(5.), array([2., 4.]))
    """
    if fn is None:
        return functools.partial(value_and_grad, argnums=argnums, has_aux=has_aux)

    @functools.wraps(fn, updated=())
    def wrapped(*args, **kwargs):
        value, grads, aux = _value_and_grad(fn, argnums, has_aux, args, kwargs, "value_and_grad")
        return ((value, aux), grads) if has_aux else (value, grads)
    return wrapped


def grad(fn: Optional[Callable] = None, argnums: ArgNums = 0, has_aux: bool = False) -> Callable:
    """Gradient of a scalar-valued fn w.r.t. argument(s) argnums; with has_aux, (grads, aux).

    >>> gc.grad(lambda x, y: x * y, argnums=(0, 1))(3.0, 4.0)
    (array(4.), array(3.))
    """
    if fn is None:
        return functools.partial(grad, argnums=argnums, has_aux=has_aux)

    @functools.wraps(fn, updated=())
    def wrapped(*args, **kwargs):
        _, grads, aux = _value_and_grad(fn, argnums, has_aux, args, kwargs, "grad")
        return (grads, aux) if has_aux else grads
    return wrapped


# ---- vjp / jvp -----------------------------------------------------------------------------------

def vjp(fn: Callable, *primals: PyTree) -> Tuple[PyTree, Callable]:
    """Returns (outputs, vjp_fn); vjp_fn(cotangents) gives one cotangent per primal (a tuple).

    >>> import numpy as np, gradc as gc
    >>> out, vjp_fn = gc.vjp(lambda x: x * x, np.array([1.0, 2.0]))
    >>> vjp_fn(np.ones(2))
    (array([2., 4.]),)
    """
    t = _traced(fn, primals, {})
    try:
        out_leaves, out_tree = tree_flatten(t.out)
        outs = [lift(t.trace, o) for o in out_leaves]
        forward = Graph([i.node for i in t.inputs] + t.trace.capture_nodes, [o.node for o in outs])
        ct_inputs = [t.trace.new_input(o.shape, o.dtype) for o in outs]
        wrt = [i for i in t.inputs if i.dtype.kind == "f"]
        grads = backward_pass(t.trace, outs, ct_inputs, [w.node for w in wrt])
        grads = [lift(t.trace, g if g is not None else ops.zeros_like(w)) for g, w in zip(grads, wrt)]
        backward = t.close(grads, extra_inputs=ct_inputs)
    finally:
        t.abort()
    captured = list(t.trace.captured)
    outputs = tree_unflatten(out_tree, call_graph(forward, t.leaves + captured))

    def vjp_fn(cotangents):
        ct_leaves, ct_tree = tree_flatten(cotangents)
        if ct_tree != out_tree:
            raise TypeError(f"vjp_fn: cotangent structure {ct_tree} does not match the output "
                            f"structure {out_tree}")
        for c, o in zip(ct_leaves, outs):
            if tuple(np.shape(c)) != o.shape:
                raise ValueError(f"vjp_fn: cotangent of shape {np.shape(c)} for an output of shape "
                                 f"{o.shape}")
        results = iter(call_graph(backward, t.leaves + ct_leaves + captured))
        leaves = [next(results) if i.dtype.kind == "f" else None for i in t.inputs]
        return tuple(tree_unflatten(t.in_tree, leaves)[0])
    return outputs, vjp_fn


def jvp(fn: Callable, primals: Sequence[PyTree],
        tangents: Sequence[PyTree]) -> Tuple[PyTree, PyTree]:
    """Forward mode: returns (fn(*primals), the directional derivative along tangents).

    >>> import numpy as np, gradc as gc
    >>> gc.jvp(lambda x: x ** 3, (np.array([2.0]),), (np.array([1.0]),))
    (array([8.]), array([12.]))
    """
    primals, tangents = tuple(primals), tuple(tangents)
    p_leaves, p_tree = tree_flatten(primals)
    t_leaves, t_tree = tree_flatten(tangents)
    if p_tree != t_tree:
        raise TypeError(f"jvp: tangents structure {t_tree} does not match primals {p_tree}")
    for p, tan in zip(p_leaves, t_leaves):
        if np.shape(p) != np.shape(tan):
            raise ValueError(f"jvp: tangent of shape {np.shape(tan)} for a primal of shape {np.shape(p)}")
    t = _traced(fn, primals, {})
    try:
        out_leaves, out_tree = tree_flatten(t.out)
        outs = [lift(t.trace, o) for o in out_leaves]
        tan_inputs = [t.trace.new_input(i.shape, i.dtype) for i in t.inputs]
        seeds = {i.node.id: tan for i, tan in zip(t.inputs, tan_inputs) if i.dtype.kind == "f"}
        out_tans = forward_pass(t.trace, outs, seeds)
        out_tans = [lift(t.trace, tan if tan is not None else ops.zeros_like(o))
                    for tan, o in zip(out_tans, outs)]
        graph = t.close(outs + out_tans, extra_inputs=tan_inputs)
    finally:
        t.abort()
    t_values = [ops.asarray(tan) if not isinstance(tan, core.Tracer) else tan for tan in t_leaves]
    results = call_graph(graph, t.leaves + t_values + t.trace.captured)
    return tree_unflatten(out_tree, results[:len(outs)]), tree_unflatten(out_tree, results[len(outs):])


# ---- jacobian / hessian --------------------------------------------------------------------------

def jacobian(fn: Callable, argnums: ArgNums = 0, mode: str = "rev") -> Callable:
    """The Jacobian d fn / d args[argnums], of shape out.shape + arg.shape (a tuple for tuple argnums).
    mode="rev" builds it row by row with vjp, "fwd" column by column with jvp.

    >>> import numpy as np, gradc as gc
    >>> gc.jacobian(lambda x: x * x)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    if mode not in ("rev", "fwd"):
        raise ValueError(f"jacobian: mode must be 'rev' or 'fwd', got {mode!r}")

    @functools.wraps(fn, updated=())
    def jac(*args):
        nums = _normalize_argnums(argnums, len(args), "jacobian")
        results = [_jacobian_one(fn, args, n, mode) for n in nums]
        return results[0] if isinstance(argnums, int) else tuple(results)
    return jac


def _jacobian_one(fn, args, n, mode):
    x = args[n]

    def f_of_x(xn):
        return fn(*args[:n], xn, *args[n + 1:])

    x_shape = tuple(np.shape(x)) if not isinstance(x, core.Tracer) else x.shape
    x_dtype = abstract(x)[1]
    if mode == "rev":
        out, vjp_fn = vjp(f_of_x, x)
        out_shape = tuple(np.shape(out)) if not isinstance(out, core.Tracer) else out.shape
        out_dtype = abstract(out)[1]
        rows = []
        for k in range(prod(out_shape)):
            e = np.zeros(prod(out_shape), out_dtype)
            e[k] = 1
            rows.append(vjp_fn(e.reshape(out_shape))[0])
        return ops.reshape(ops.stack(rows), out_shape + x_shape)
    cols, out_shape = [], None
    for k in range(prod(x_shape)):
        e = np.zeros(prod(x_shape), x_dtype)
        e[k] = 1
        out, tan = jvp(f_of_x, (x,), (e.reshape(x_shape),))
        out_shape = tuple(np.shape(out)) if not isinstance(out, core.Tracer) else out.shape
        cols.append(tan)
    return ops.reshape(ops.stack(cols, axis=-1), out_shape + x_shape)


def hessian(fn: Callable, argnums: ArgNums = 0) -> Callable:
    """Second derivatives: forward mode over reverse mode.

    >>> import numpy as np, gradc as gc
    >>> gc.hessian(lambda x: gc.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacobian(jacobian(fn, argnums, mode="rev"), argnums, mode="fwd")


# ---- gradient check ------------------------------------------------------------------------------

class GradCheckReport:
    """Per checked argument: max abs and rel error between reverse mode and central differences.

    >>> import numpy as np, gradc as gc
    >>> report = gc.check_grad(lambda x, y: gc.sum(x * y), np.ones(2), np.ones(2))
    >>> len(report), report.ok
    (2, True)
    """

    def __init__(self, rows):
        self.rows = rows      # list of dicts: argnum, max_abs_err, max_rel_err, ok

    @property
    def ok(self):
        return all(r["ok"] for r in self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        lines = ["argnum  max_abs_err   max_rel_err   ok"]
        lines += [f"{r['argnum']:>6}  {r['max_abs_err']:.3e}     {r['max_rel_err']:.3e}     {r['ok']}"
                  for r in self.rows]
        return "\n".join(lines)


_DEFAULTS = {np.dtype(np.float32): (3e-3, 2e-2, 2e-2), np.dtype(np.float64): (1e-6, 1e-6, 1e-6)}


def check_grad(fn: Callable, *args: ArrayLike, argnums: Optional[ArgNums] = None,
               eps: Optional[float] = None, rtol: Optional[float] = None,
               atol: Optional[float] = None) -> "GradCheckReport":
    """Compares reverse-mode gradients of scalar fn with central finite differences taken in the
    arguments' dtype (step scaled by max(1, |x|)). Returns a GradCheckReport; raises
    gc.GradientCheckError if any entry differs by more than atol + rtol * |fd|.

    >>> import numpy as np, gradc as gc
    >>> report = gc.check_grad(lambda x: gc.sum(gc.sin(x)), np.array([0.1, 0.2]))
    >>> report.ok
    True
    """
    args = [ops.asarray(a) if not ops._is_python_scalar(a) else np.asarray(float(a)) for a in args]
    if argnums is None:
        argnums = tuple(i for i, a in enumerate(args) if a.dtype.kind == "f")
    nums = _normalize_argnums(argnums, len(args), "check_grad")
    analytic = grad(fn, argnums=nums)(*args)
    rows = []
    for n, g in zip(nums, analytic):
        x = args[n]
        d_eps, d_rtol, d_atol = _DEFAULTS[np.dtype(x.dtype)]
        step = (eps if eps is not None else d_eps) * np.maximum(1.0, np.abs(x))
        fd = np.zeros(x.shape, np.float64)
        for k in np.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[k] += step[k]
            lo[k] -= step[k]
            f_hi = float(fn(*args[:n], hi, *args[n + 1:]))
            f_lo = float(fn(*args[:n], lo, *args[n + 1:]))
            fd[k] = (f_hi - f_lo) / (float(hi[k]) - float(lo[k]))
        err = np.abs(np.asarray(g, np.float64) - fd)
        r, a = (rtol if rtol is not None else d_rtol), (atol if atol is not None else d_atol)
        rows.append({"argnum": n, "max_abs_err": float(err.max(initial=0.0)),
                     "max_rel_err": float((err / np.maximum(np.abs(fd), 1e-12)).max(initial=0.0)),
                     "ok": bool(np.all(err <= a + r * np.abs(fd)))})
    report = GradCheckReport(rows)
    if not report.ok:
        raise GradientCheckError(f"gradient check failed:\n{report!r}")
    return report
