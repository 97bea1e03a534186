"""numpy.einsum as a composite: diagonals for repeated labels, sums for labels used once, and one
batched matrix product per pair of operands (left to right), so the work goes to BLAS."""
import numpy as np

from . import ops, shapes
from .errors import ShapeError, user_location
from .registry import export
from .symbolic import prod

_SPARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"     # labels for the axes an ellipsis stands for


def _parse(subscripts, operands):
    text = subscripts.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {len(terms)} operands in {subscripts!r}, {len(operands)} given")
    spare = [c for c in _SPARE if c not in text]
    ell = max((op.ndim - len(t.replace("...", "")) for t, op in zip(terms, operands)
               if "..." in t), default=0)
    ell_labels = "".join(spare[:ell])
    labels = []
    for t, op in zip(terms, operands):
        if "..." in t:
            k = op.ndim - len(t.replace("...", ""))
            t = t.replace("...", ell_labels[ell - k:])
        if len(t) != op.ndim:
            raise ShapeError(f"einsum: {t!r} names {len(t)} axes of an operand of shape "
                             f"{op.shape} (at {user_location()})")
        labels.append(list(t))
    if arrow:
        out = list(output.replace("...", ell_labels))
    else:
        counts = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = list(ell_labels) + sorted(c for c, n in counts.items() if n == 1
                                        and c not in ell_labels)
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscript {''.join(out)!r} repeats a label")
    missing = set(out) - {c for ls in labels for c in ls}
    if missing:
        raise ValueError(f"einsum: output labels {sorted(missing)} appear in no operand")
    return labels, out


def _diagonals(x, labels):
    """Repeated labels within one operand ('ii->i') take the diagonal."""
    while len(set(labels)) != len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i = labels.index(c)
        j = labels.index(c, i + 1)
        x = shapes.diagonal(x, 0, i, j)
        labels = [lab for k, lab in enumerate(labels) if k not in (i, j)] + [c]
    return x, labels


def _sum_out(x, labels, keep):
    axes = [i for i, c in enumerate(labels) if c not in keep]
    if axes:
        x = ops.sum(x, tuple(axes))
        labels = [c for c in labels if c in keep]
    return x, labels


def _contract(a, la, b, lb, keep):
    shared = [c for c in la if c in lb]
    batch = [c for c in shared if c in keep]
    summed = [c for c in shared if c not in keep]
    free_a = [c for c in la if c not in shared]
    free_b = [c for c in lb if c not in shared]
    size = {c: max(a.shape[la.index(c)] if c in la else 1, b.shape[lb.index(c)] if c in lb else 1)
            for c in la + lb}

    def arrange(x, lx, order):
        x = ops.transpose(x, [lx.index(c) for c in order])
        return ops.broadcast_to(x, tuple(size[c] if c in batch else x.shape[i]
                                         for i, c in enumerate(order)))

    a = arrange(a, la, batch + free_a + summed)
    b = arrange(b, lb, batch + summed + free_b)
    nb, k = [prod([size[c] for c in cs]) for cs in (batch, summed)]
    na = prod([size[c] for c in free_a])
    nfb = prod([size[c] for c in free_b])
    out = ops.matmul(ops.reshape(a, (nb, na, k)), ops.reshape(b, (nb, k, nfb)))
    labels = batch + free_a + free_b
    return ops.reshape(out, tuple(size[c] for c in labels)), labels


@export("einsum", example='"ij,jk->ik", np.ones((2, 3)), np.ones((3, 2))')
def einsum(subscripts, *operands, out=None, optimize=False, **kwargs):
    """Einstein summation, as numpy.einsum (any subscripts; ellipses broadcast)."""
    if out is not None or kwargs:
        raise NotImplementedError("gradc does not implement np.einsum with out=, dtype= or order=")
    operands = list(ops._promote(*operands)) if len(operands) > 1 else [ops.asarray(operands[0])]
    labels, output = _parse(subscripts, operands)
    prepared = []
    for k, (x, ls) in enumerate(zip(operands, labels)):
        x, ls = _diagonals(x, ls)
        others = {c for j, lj in enumerate(labels) if j != k for c in lj}
        prepared.append(_sum_out(x, ls, set(output) | others))
    x, lx = prepared[0]
    for k in range(1, len(prepared)):
        later = {c for _, lj in prepared[k + 1:] for c in lj}
        x, lx = _contract(x, lx, *prepared[k], set(output) | later)
    x, lx = _sum_out(x, lx, set(output))
    return ops.transpose(x, [lx.index(c) for c in output])
