"""gc.jit's dynamic="auto" (API.md section 10): after a call whose shapes differ from an earlier
call's only in some sizes, those sizes become named dimensions and one kernel serves every later
size. Like torch.compile's automatic dynamic shapes and JAX's symbolic dims: sizes that changed
are named; two sizes that changed together (32 -> 17 in X and in y) get one name, so X's rows and
y's labels stay the same dim; sizes 0 and 1 are never named (1 broadcasts).
"""
from .dtypes import Spec
from .symbolic import Dim


def generalize(old_key, new_key):
    """The leaf signatures with the sizes that changed named, or None when the calls differ in
    more than sizes (structure, static values, dtypes, ranks) or a changed size is 0 or 1.
    Keys are jit cache keys: (tree, statics, ((shape, dtype, weak), ...))."""
    (old_tree, old_static, old_sigs), (tree, static, sigs) = old_key, new_key
    if old_tree != tree or old_static != static or len(old_sigs) != len(sigs):
        return None
    names, out, changed = {}, [], False
    for (o_shape, o_dtype, o_weak), (shape, dtype, weak) in zip(old_sigs, sigs):
        if (o_dtype, o_weak, len(o_shape)) != (dtype, weak, len(shape)):
            return None
        dims = []
        for o, n in zip(o_shape, shape):
            if isinstance(o, Dim):          # named already (a symbolic entry's key)
                dims.append(o)
            elif o == n:
                dims.append(n)
            elif min(o, n) <= 1:
                return None
            else:
                changed = True
                dims.append(names.setdefault((o, n), Dim.named(f"d{len(names)}")))
        out.append((tuple(dims), dtype, weak))
    return (tree, static, tuple(out)) if changed else None


def all_named(key):
    """dynamic=True: every size of at least 2 named from the first call (equal sizes share a
    name), or None when there is none."""
    tree, static, sigs = key
    names, out = {}, []
    for shape, dtype, weak in sigs:
        out.append((tuple(names.setdefault(d, Dim.named(f"d{len(names)}")) if d > 1 else d
                          for d in shape), dtype, weak))
    return (tree, static, tuple(out)) if names else None


def matches(symbolic_key, key):
    """Whether a call's key fits a symbolic entry's key: equal but where sizes are named (the
    kernel checks that equal names get equal sizes), and none of those is 0 or 1.

    NOTE: a trace takes a named size to differ from 1 (squeeze keeps the axis, broadcasting
    never stretches it): a call of size 1 gets a kernel of its own, so it computes what NumPy
    would (torch.compile specialises 0 and 1 likewise)."""
    (s_tree, s_static, s_sigs), (tree, static, sigs) = symbolic_key, key
    if s_tree != tree or s_static != static or len(s_sigs) != len(sigs):
        return False
    for (s_shape, s_dtype, s_weak), (shape, dtype, weak) in zip(s_sigs, sigs):
        if (s_dtype, s_weak, len(s_shape)) != (dtype, weak, len(shape)):
            return False
        if any(s != n if not isinstance(s, Dim) else n < 2 for s, n in zip(s_shape, shape)):
            return False
    return True


def specs(symbolic_key):
    """The leaves to trace a symbolic key with: a Spec per array leaf, the weak scalars as 0.0 /
    0 (a Python scalar stays weakly typed)."""
    return [Spec(shape, dtype) for shape, dtype, _ in symbolic_key[2]]


def describe(symbolic_key, names):
    """'X.shape[0] and y.shape[0] as d0' for the compile log."""
    where = {}
    for name, (shape, _, _) in zip(names, symbolic_key[2]):
        for axis, d in enumerate(shape):
            if isinstance(d, Dim):
                where.setdefault(repr(d), []).append(f"{name}.shape[{axis}]")
    return "; ".join(f"{' and '.join(places)} named {dim}" for dim, places in where.items())
