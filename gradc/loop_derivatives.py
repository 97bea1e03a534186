"""The scan primitive's derivative rules, as graph code over its body (loop.py): the JVP is a scan
of the body's JVP; the VJP is a reverse scan of the body's VJP that reads what the forward loop
stored (the carries, the body's outputs) and leaves a weight's per-step products A_t^T B_t to one
product over the stacked steps after the loop. Both are scans again, so derivatives nest."""
import numpy as np

from . import core, interpreter, ops
from .autodiff import backward_pass, forward_pass
from .loop import _float, _lifted, _split, _trace_graph, _zeros, call, output_avals, pack, unpack


def jvp(tangents, *args, body, length, reverse, n_carry, n_xs, select):
    """A scan of the body's JVP: carries (c, dc), xs (x, dx), consts (k, dk); float values only
    carry tangents (zeros where an input has none)."""
    primals = args[:-1]      # args[-1] is the node's value, which the rule does not need
    avals = [(tuple(p.shape), np.dtype(p.dtype)) for p in primals]
    tans = [t if t is not None else _zeros(a) for t, a in zip(tangents, avals)]
    floats = [i for i, a in enumerate(avals) if _float(a)]
    groups = _split(range(len(primals)), n_carry, n_xs)
    order = []       # the jvp body's inputs: each group's primals then its float tangents
    for group in groups:
        order += [("p", i) for i in group] + [("t", i) for i in group if i in floats]
    body_outs = [(o.shape, o.dtype) for o in body.outputs]
    out_order = []   # its outputs: carries then their float tangents, ys then theirs
    for group in (range(n_carry), range(n_carry, len(body_outs))):
        out_order += [("p", j) for j in group] + [("t", j) for j in group if _float(body_outs[j])]

    def jvp_body(index, *values):
        trace = index.trace
        where = dict(zip(order, values))
        outs = _lifted(trace, interpreter.replay(body, [index] + [where[("p", i)]
                                                                 for i in range(len(primals))]))
        seeds = {where[("p", i)].node.id: where[("t", i)] for i in floats}
        touts = forward_pass(trace, outs, seeds)
        result = []
        for kind, j in out_order:
            if kind == "p":
                result.append(outs[j])
            else:
                result.append(touts[j] if touts[j] is not None else ops.zeros_like(outs[j]))
        return result

    step_avals = [(s[1:], d) if n_carry <= i < n_carry + n_xs else (s, d)
                  for i, (s, d) in enumerate(avals)]
    in_avals = [((), np.dtype(np.int64))] + [step_avals[i] for _, i in order]
    graph, captured = _trace_graph(in_avals, jvp_body)
    args = [(primals if kind == "p" else tans)[i] for kind, i in order] + captured
    n_c = sum(1 for kind, i in order if i < n_carry)
    n_x = sum(1 for kind, i in order if n_carry <= i < n_carry + n_xs)
    n_out, n_new = len(body_outs), len(out_order)
    position = {key: j for j, key in enumerate(out_order)}
    wanted = []
    for k in select:
        if k < n_out:
            wanted.append(position[("t", k)])
        else:     # a stacked carry's tangent is the stacked tangent carry
            kind, i = divmod(k - n_out, n_carry)
            wanted.append(n_new + kind * n_c + position[("t", i)])
    return pack(call(args, graph, length, reverse, n_c, n_x, wanted))


def vjp(ct, *args, body, length, reverse, n_carry, n_xs, select):
    """A reverse scan of the body's VJP. Its carries: the cotangents of the carries and the sums of
    the consts' cotangents; its xs: the stacked carries (the residuals), the xs, the cotangents of
    the ys and of the stacked carries (where selected); its ys: the cotangents of the xs."""
    primals = args[:-1]
    avals = [(tuple(p.shape), np.dtype(p.dtype)) for p in primals]
    all_avals = output_avals(body, length, n_carry)
    n_out = len(body.outputs)
    cts = dict(zip(select, unpack(ct, [all_avals[k] for k in select])))
    carries, xs, consts = _split(range(len(primals)), n_carry, n_xs)
    f_carries = [i for i in carries if _float(avals[i])]
    f_xs = [i for i in xs if _float(avals[i])]
    f_consts = [i for i in consts if _float(avals[i])]
    f_ys = [j for j in range(n_carry, n_out) if _float(all_avals[j])]
    f_saved = [i for i in f_carries if n_out + i in cts]
    f_after = [i for i in f_carries if n_out + n_carry + i in cts]
    step_avals = [(s[1:], d) if i in xs else (s, d) for i, (s, d) in enumerate(avals)]
    # The body's computed float outputs are stored too (the carries after each step, the ys): the
    # reverse step reads them instead of computing them again.
    reused = [j for j, o in enumerate(body.outputs)
              if _float(all_avals[j]) and o.prim.kind != "source"]
    # A carry that is also a y (`return h, h`) is stored once: its stack of ys.
    same_y = {j: next((k for k in range(n_carry, n_out) if body.outputs[k] is body.outputs[j]),
                      None) for j in reused if j < n_carry}
    stored = [j if j >= n_carry else (same_y[j] if same_y[j] is not None else n_out + n_carry + j)
              for j in reused]
    residuals = call(primals, body, length, reverse, n_carry, n_xs,
                     [n_out + i for i in carries] + stored)
    residuals, outputs_stored = residuals[:n_carry], residuals[n_carry:]

    def ct_of(k):
        return cts[k] if k in cts else _zeros(all_avals[k])

    xs_in = ([avals[i] for i in carries] + [(avals[i][0][1:], avals[i][1]) for i in xs]
             + [(all_avals[j][0][1:], all_avals[j][1]) for j in f_ys]
             + [avals[i] for i in f_saved] + [avals[i] for i in f_after]
             + [(all_avals[k][0][1:], all_avals[k][1]) for k in stored])
    const_in = [avals[i] for i in consts]
    xs_args = (residuals + [primals[i] for i in xs] + [ct_of(j) for j in f_ys]
               + [cts[n_out + i] for i in f_saved] + [cts[n_out + n_carry + i] for i in f_after]
               + outputs_stored)

    def make_body(stacked, found, sources, replace):
        """The reverse step. A const's cotangent that is a product A^T @ B of per-step values is
        not summed in a carry when the const is in `stacked`: A and B are stacked instead (an xs
        already, or a new y) and multiplied once after the loop, as one GEMM over all steps."""
        summed = [i for i in f_consts if i not in stacked]
        n_ck = len(f_carries) + len(summed)

        def vjp_body(index, *values):
            trace = index.trace
            values = list(values)
            ct_c, ct_k = values[:len(f_carries)], values[len(f_carries):n_ck]
            rest = values[n_ck:]
            c, x = rest[:n_carry], rest[n_carry:n_carry + len(xs)]
            ct_y = rest[n_carry + len(xs):n_carry + len(xs) + len(f_ys)]
            at = n_carry + len(xs) + len(f_ys)
            ct_s = rest[at:at + len(f_saved)]
            ct_a = dict(zip(f_after, rest[at + len(f_saved):at + len(f_saved) + len(f_after)]))
            values_out = rest[at + len(f_saved) + len(f_after):len(xs_in)]
            k = rest[len(xs_in):]
            outs = _lifted(trace, interpreter.replay(body, [index] + c + x + k))
            for j, v in zip(reused, values_out):
                if outs[j].node.prim.kind != "source":
                    replace[outs[j].node.id] = v.node
            seeds = {i: ops.add(a, ct_a[i]) if i in ct_a else a for i, a in zip(f_carries, ct_c)}
            seeds.update(zip(f_ys, ct_y))
            inputs = c + x + k
            wrt = [inputs[i].node for i in f_carries + f_xs + f_consts]
            grads = backward_pass(trace, [outs[j] for j in seeds], list(seeds.values()), wrt)
            grads = [g if g is not None else _zeros(step_avals[i])
                     for g, i in zip(grads, f_carries + f_xs + f_consts)]
            g_c = grads[:len(f_carries)]
            g_x = grads[len(f_carries):len(f_carries) + len(f_xs)]
            g_k = dict(zip(f_consts, grads[len(f_carries) + len(f_xs):]))
            saved = dict(zip(f_saved, ct_s))
            new_c = [ops.add(g, saved[i]) if i in saved else g for g, i in zip(g_c, f_carries)]
            new_k = [ops.add(a, g_k[i]) for a, i in zip(ct_k, summed)]
            xs_at = {v.node.id: j for j, v in enumerate(rest[:len(xs_in)])}
            extra = []
            for i in f_consts:
                pair = _product_of_steps(g_k[i], trace)
                if pair is not None:
                    found.add(i)
                if i in stacked:
                    sources[i] = [("xs", xs_at[v.node.id]) if v.node.id in xs_at
                                  else ("y", _position(extra, v)) for v in pair]
            return new_c + new_k + g_x + extra
        return vjp_body, summed

    in_const = [((), np.dtype(np.int64))]
    found, sources = set(), {}
    replace = {}
    body_fn, _ = make_body(set(), found, sources, replace)
    carry_in = [avals[i] for i in f_carries] + [avals[i] for i in f_consts]
    graph, captured = _trace_graph(in_const + carry_in + xs_in + const_in, body_fn, replace)
    if found:           # traced again with those consts' products stacked
        replace = {}
        body_fn, summed = make_body(found, set(), sources, replace)
        carry_in = [avals[i] for i in f_carries] + [avals[i] for i in summed]
        graph, captured = _trace_graph(in_const + carry_in + xs_in + const_in, body_fn, replace)
    else:
        summed = f_consts
    args = ([ct_of(i) for i in f_carries] + [_zeros(avals[i]) for i in summed]
            + xs_args + [primals[i] for i in consts] + captured)
    n_c = len(carry_in)
    n_extra = len(graph.outputs) - n_c - len(f_xs)
    wanted = list(range(n_c + len(f_xs) + n_extra))
    results = call(args, graph, length, not reverse, n_c, len(xs_in), wanted)
    grads = dict(zip(f_carries + summed + f_xs, results[:n_c + len(f_xs)]))
    extra = results[n_c + len(f_xs):]
    after = {j: v for j, v in zip(reused, outputs_stored) if j < n_carry}
    for i in found:
        (kind_a, ja), (kind_b, jb) = sources[i]
        a, b = [xs_args[j] if kind == "xs" else extra[j] for kind, j in sources[i]]
        if kind_a == "xs" and ja in after and not (kind_b == "xs" and jb < n_carry):
            grads[i] = _shifted_product(primals[ja], after[ja], b, reverse)
        else:
            grads[i] = _stacked_product(a, b)
    return [grads.get(i) for i in range(len(primals))]


def _stacked_product(a, b):
    """sum over t of a[t]^T @ b[t], as one product over the stacked rows."""
    rows = a.shape[0] * a.shape[1]
    return ops.matmul(ops.transpose(ops.reshape(a, (rows, a.shape[2]))),
                      ops.reshape(b, (rows, b.shape[2])))


def _shifted_product(init, after, b, reverse):
    """sum over t of c_t^T @ b[t] where c_t is the carry before step t: the initial carry at the
    first step, the carry after the step before at the others. Read from the stack of carries after
    each step, so the loop need not store the carries before each step too."""
    T = after.shape[0]
    first = T - 1 if reverse else 0
    total = ops.matmul(ops.transpose(init), ops.reshape(ops.slice_axis(b, 0, first, first + 1),
                                                        b.shape[1:]))
    if T == 1:
        return total
    carries = ops.slice_axis(after, 0, 1, T) if reverse else ops.slice_axis(after, 0, 0, T - 1)
    steps = ops.slice_axis(b, 0, 0, T - 1) if reverse else ops.slice_axis(b, 0, 1, T)
    return ops.add(total, _stacked_product(carries, steps))


def _product_of_steps(g, trace):
    """(A, B) as tracers when g is A^T @ B of 2-D values (a weight's cotangent in one step), else
    None."""
    if not isinstance(g, core.Tracer) or g.node.prim is not core.PRIM.matmul or g.ndim != 2:
        return None
    left, right = g.node.inputs
    if left.prim is not core.PRIM.transpose or left.params["perm"] != (1, 0):
        return None
    return core.Tracer(left.inputs[0], trace), core.Tracer(right, trace)


def _position(extra, value):
    """Index of value in the list of extra ys, appended once."""
    for j, v in enumerate(extra):
        if v.node is value.node:
            return j
    extra.append(value)
    return len(extra) - 1
