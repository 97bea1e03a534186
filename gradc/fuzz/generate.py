"""Random programs over the op catalogue, built one statement at a time on concrete float64 values.

Every proposed statement is run at once (gradc's ops compute eagerly on arrays) and kept only if it
is *locally smooth* there: its value and finite differences along two random ±1 directions at two
step sizes are finite, bounded and agree (a kink, a tie of a max, a where or comparison that flips,
an argmax that changes, all within 1e-3 of the point, fail this). Programs therefore stay off
kinks and ties without a rule per op; an op outside its domain (log of a negative) is retried
behind an *adapter* that maps values into a safe range.
"""
import numpy as np

import gradc as gc

from . import catalog
from .program import Program, Stmt

H = 1e-3               # the distance from any kink or tie a statement must keep
BOUND = 1e3            # |values| and |derivatives| allowed (keeps float32 comparisons meaningful)
ADAPTERS = ("(gc.abs({0}) + 0.5)", "(gc.tanh({0}) * 0.9)", "(gc.sigmoid({0}) * 0.8 + 0.1)")
WEIGHTS = {"unary": 3, "binary": 3, "reduction": 2, "axis_op": 0.5, "matmul": 1.5, "reshape": 1,
           "transpose": 1, "slice": 1, "gather": 0.8, "expand_dims": 0.5, "squeeze": 0.5,
           "broadcast_to": 0.5, "concatenate": 0.7, "stack": 0.5, "where": 1, "clip": 0.7,
           "label_loss": 0.4, "pair_loss": 0.4, "rearrange": 1.5, "join": 0.4, "split": 0.4,
           "product": 1, "linalg": 0.8, "loop": 0.6, "random": 0.4}


def random_shape(rng, max_ndim=4):
    ndim = int(rng.choice(5, p=[0.1, 0.25, 0.35, 0.2, 0.1])) if max_ndim >= 4 else int(
        rng.integers(0, max_ndim + 1))
    return tuple(int(rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.25, 0.15])) for _ in range(ndim))


def random_values(rng, shape):
    """Values away from 0 (abs, relu, sign) and, being continuous, distinct (max, argmax)."""
    return rng.uniform(0.3, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.inputs, self.stmts, self.vals = [], [], {}

    # ---- variables ----
    def new_input(self, shape):
        name = f"x{len(self.inputs)}"
        value = random_values(self.rng, shape)
        self.inputs.append((name, value))
        self.vals[name] = value
        return name

    def floats(self):
        return [n for n, v in self.vals.items() if v.dtype.kind == "f"]

    def pick(self, ok=lambda v: True):
        names = [n for n in self.floats() if ok(self.vals[n])]
        if not names:
            return None
        r = self.rng.random()
        if r < 0.3:
            return names[-1]
        if r < 0.7:
            return names[int(self.rng.integers(max(0, len(names) - 3), len(names)))]
        return names[int(self.rng.integers(len(names)))]

    def same_shape(self, shape):
        return [n for n in self.floats() if self.vals[n].shape == tuple(shape)]

    def operand(self, shape, p_var=0.4):
        """A float operand of `shape`: an existing variable of that shape or a new input."""
        same = self.same_shape(shape)
        if same and self.rng.random() < p_var:
            return same[int(self.rng.integers(len(same)))]
        return self.new_input(shape)

    def shape(self, name):
        return self.vals[name].shape

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    # ---- statements ----
    def add(self, template, args):
        """Appends the statement if it runs and is locally smooth; returns its variable or None."""
        expr = template.format(*args)
        code = compile(expr, "<fuzzed statement>", "eval")

        def run(*values):
            with np.errstate(all="ignore"):
                scope = {"np": np, "gc": gc, **dict(zip(args, values))}
                return np.asarray(eval(code, scope))  # noqa: S307 - the generator's own text
        try:
            value = run(*[self.vals[a] for a in args])
            ok = smooth_at(run, [self.vals[a] for a in args], self.rng)
        except Exception:      # noqa: BLE001 - a proposal gradc refuses is not generated
            return None
        if not ok or not gradc_accepts(run, [self.vals[a] for a in args]):
            return None
        var = f"v{len(self.stmts)}"
        self.stmts.append(Stmt(var, template, tuple(args)))
        self.vals[var] = value
        return var

    def propose(self, make):
        """Runs a proposal maker; new inputs it made are dropped again if it is not kept."""
        mark = len(self.inputs)
        made = make()
        var = self.add(*made) if made else None
        if var is None:
            for name, _ in self.inputs[mark:]:
                del self.vals[name]
            del self.inputs[mark:]
        return var


def gradc_accepts(run, values):
    """False where gradc refuses the statement on its own values (a NumPy spelling, or an argument
    of one, that gradc does not implement raises NotImplementedError naming itself; on arrays the
    np.* spellings ran NumPy). Other errors are left for the check to report as failures."""
    try:
        with np.errstate(all="ignore"):
            run(*[gc.tensor(v) for v in values])
    except NotImplementedError:
        return False
    except Exception:      # noqa: BLE001 - reported by the check, with the program
        pass
    return True


def smooth_at(run, values, rng):
    """True where run(*values) is finite, bounded and smooth (or, for an integer or bool result,
    constant) within H of values along two random ±1 directions."""
    y = run(*values)
    if y.size == 0:
        return False
    if y.dtype.kind == "f" and not (np.all(np.isfinite(y)) and np.max(np.abs(y)) <= BOUND):
        return False
    for _ in range(2):
        dirs = [rng.choice([-1.0, 1.0], np.shape(v)) for v in values]
        at = {t: run(*[v + t * d for v, d in zip(values, dirs)]) for t in (H, -H, H / 2, -H / 2)}
        if y.dtype.kind != "f":
            if not all(np.array_equal(a, y) for a in at.values()):
                return False
            continue
        fd1 = (at[H] - at[-H]) / (2 * H)
        fd2 = (at[H / 2] - at[-H / 2]) / H
        if not (np.all(np.isfinite(fd1)) and np.all(np.isfinite(fd2))):
            return False
        if np.max(np.abs(fd2)) > BOUND or np.any(np.abs(fd1 - fd2) > 1e-4 * (1 + np.abs(fd2))):
            return False
    return True


# ---- proposal makers: (template, args) or None ----------------------------------------------

def fill(spelling, items):
    """spelling with its slots filled by ("var", name) or ("lit", text): (template, args)."""
    slots, args = [], []
    for kind, what in items:
        if kind == "var":
            slots.append("{%d}" % len(args))
            args.append(what)
        else:
            slots.append(what)
    return spelling.format(*slots), tuple(args)


def scalar_text(rng):
    return repr(round(float(rng.uniform(0.3, 1.7) * rng.choice([-1, 1])), 3))


def broadcast_partner(b, shape):
    """A shape that broadcasts with `shape`: the same, fewer leading dims, some dims 1, or ()."""
    rng = b.rng
    r = rng.random()
    if r < 0.15:
        return ()
    s = list(shape[int(rng.integers(0, len(shape) + 1)):] if r < 0.45 else shape)
    for i in range(len(s)):
        if rng.random() < 0.3:
            s[i] = 1
    if rng.random() < 0.1:
        s = [1] + s
    return tuple(s)


def make_unary(b, name):
    v = b.pick()
    return v and fill(b.choice(catalog.spellings(name, 1)), [("var", v)])


def make_binary(b, name):
    a = b.pick()
    if a is None:
        return None
    r = b.rng.random()
    if r < 0.2:
        other = ("lit", scalar_text(b.rng))
    else:
        shape = broadcast_partner(b, b.shape(a))
        other = ("var", b.operand(shape))
    items = [("var", a), other]
    if b.rng.random() < 0.3:
        items.reverse()
    return fill(b.choice(catalog.spellings(name, 2)), items)


def _axis_kw(b, ndim, name):
    rng = b.rng
    forms = ["none", "omit"] + (["int", "neg"] if ndim else []) + (
        ["tuple"] if ndim >= 2 and catalog.takes_tuple_axis(name) else [])
    form = b.choice(forms)
    if form == "omit":
        axis = None
    elif form == "none":
        axis = "None"
    elif form == "int":
        axis = repr(int(rng.integers(0, ndim)))
    elif form == "neg":
        axis = repr(-int(rng.integers(1, ndim + 1)))
    else:
        k = int(rng.integers(1, ndim + 1))
        axes = sorted(rng.choice(ndim, k, replace=False).tolist())
        axis = repr(tuple(int(a) - (ndim if rng.random() < 0.3 else 0) for a in axes))
    parts = ([f"axis={axis}"] if axis else []) + (
        ["keepdims=True"] if rng.random() < 0.4 else [])
    return ", ".join(parts)


def make_reduction(b, name):
    v = b.pick()
    if v is None:
        return None
    kw = _axis_kw(b, len(b.shape(v)), name)
    sp = b.choice(catalog.reduction_spellings(name))
    return sp.format(x="{0}", kw=(", " + kw) if kw else "", kw0=kw), (v,)


def make_axis_op(b, name):
    v = b.pick(lambda x: x.ndim >= 1)
    if v is None:
        return None
    nd = len(b.shape(v))
    return f"gc.{name}({{0}}, axis={int(b.rng.integers(-nd, nd))})", (v,)


def make_matmul(b, name):
    rng = b.rng
    a = b.pick(lambda x: x.ndim >= 1)
    if a is None:
        return None
    sa = b.shape(a)
    m = int(rng.choice([1, 2, 3]))
    if len(sa) == 2 and rng.random() < 0.2:       # x.T @ y, x @ x.T
        if rng.random() < 0.5:
            return b.choice(["({0} @ {0}.T)", "({0}.T @ {0})", "gc.matmul({0}.T, {0})"]), (a,)
        other = b.operand((sa[0], m))
        return b.choice(["({0}.T @ {1})", "np.dot({0}.T, {1})"]), (a, other)
    k = sa[-1]
    r = rng.random()
    if r < 0.25:
        sb = (k,)
    elif r < 0.7 or len(sa) < 2:
        sb = (k, m)
    else:
        batch = list(sa[:-2])
        batch = batch[int(rng.integers(0, len(batch) + 1)):]
        batch = [1 if rng.random() < 0.3 else d for d in batch]
        sb = tuple(batch) + (k, m)
        if rng.random() < 0.2:
            sb = (int(rng.choice([1, 2])),) + sb
    other = b.operand(sb)
    forms = ["({0} @ {1})", "gc.matmul({0}, {1})", "np.matmul({0}, {1})"]
    if len(sb) <= 2:
        forms += ["gc.dot({0}, {1})", "np.dot({0}, {1})", "{0}.dot({1})"]
    if rng.random() < 0.2 and len(sa) == 1:        # the vector on the right
        sb = (m, k) if rng.random() < 0.7 else (2, m, k)
        return "({1} @ {0})", (a, b.operand(sb))
    return b.choice(forms), (a, other)


def _factor_shape(rng, size):
    factors, n, p = [], size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    rng.shuffle(factors)
    ndim = int(rng.integers(1, 5))
    dims = [1] * ndim
    for f in factors:
        dims[int(rng.integers(ndim))] *= f
    if rng.random() < 0.3 and ndim:
        dims[int(rng.integers(ndim))] = -1
    return tuple(dims) if size > 1 or rng.random() < 0.7 else ()


def make_reshape(b, name):
    v = b.pick()
    if v is None:
        return None
    target = _factor_shape(b.rng, int(np.prod(b.shape(v), dtype=int)))
    spelling = b.choice(["gc.reshape({0}, %r)", "np.reshape({0}, %r)", "{0}.reshape(%r)"])
    return spelling % (target,), (v,)


def make_transpose(b, name):
    v = b.pick(lambda x: x.ndim >= 2)
    if v is None:
        return None
    perm = tuple(int(p) for p in b.rng.permutation(len(b.shape(v))))
    return b.choice(["gc.transpose({0}, %r)" % (perm,), "np.transpose({0}, %r)" % (perm,),
                     "{0}.transpose(%r)" % (perm,), "{0}.T", "gc.transpose({0})"]), (v,)


def _slice_text(rng, d):
    r = rng.random()
    if r < 0.25:
        return ":"
    if r < 0.4:
        return repr(int(rng.integers(-d, d)))
    step = int(rng.choice([1, 1, 2, -1, -2]))
    for _ in range(10):
        start, stop = (int(x) for x in rng.integers(-d - 1, d + 1, 2))
        text_start = "" if rng.random() < 0.3 else str(start)
        text_stop = "" if rng.random() < 0.3 else str(stop)
        s = slice(int(text_start) if text_start else None, int(text_stop) if text_stop else None,
                  step)
        if len(range(*s.indices(d))):
            return f"{text_start}:{text_stop}" + (f":{step}" if step != 1 else "")
    return "::-1"


def make_slice(b, name):
    rng = b.rng
    v = b.pick(lambda x: x.ndim >= 1)
    if v is None:
        return None
    parts = [_slice_text(rng, d) for d in b.shape(v)]
    parts = parts[:int(rng.integers(1, len(parts) + 1))]
    if rng.random() < 0.15:
        parts.insert(int(rng.integers(0, len(parts) + 1)), "None")
    if rng.random() < 0.15 and len(parts) < len(b.shape(v)):
        parts.insert(0, "...")
    return "{0}[%s]" % ", ".join(parts), (v,)


def _index_text(rng, d, shape):
    return "np.array(%r)" % rng.integers(-d, d, shape).tolist()


def make_gather(b, name):
    rng = b.rng
    v = b.pick(lambda x: x.ndim >= 1)
    if v is None:
        return None
    s = b.shape(v)
    r = rng.random()
    if len(s) >= 2 and r < 0.35:
        rows = "np.arange(%d)" % s[0]
        if rng.random() < 0.5 and catalog.catalogue().get("arg_reduction"):
            arg = b.choice(catalog.catalogue()["arg_reduction"])
            w = b.choice(b.same_shape(s))
            return "{0}[%s, gc.%s({1}, axis=1)]" % (rows, arg), (v, w)
        labels = "np.array(%r)" % rng.integers(0, s[1], s[0]).tolist()
        return "{0}[%s, %s]" % (rows, labels), (v,)
    idx_shape = (int(rng.integers(1, 4)),) if rng.random() < 0.8 else (2, 2)
    if len(s) >= 2 and r < 0.6:
        return "{0}[:, %s]" % _index_text(rng, s[1], idx_shape), (v,)
    return "{0}[%s]" % _index_text(rng, s[0], idx_shape), (v,)


def make_expand_dims(b, name):
    v = b.pick()
    if v is None:
        return None
    nd = len(b.shape(v)) + 1
    ax = int(b.rng.integers(-nd, nd))
    return b.choice(["gc.expand_dims({0}, %d)" % ax, "np.expand_dims({0}, %d)" % ax]), (v,)


def make_squeeze(b, name):
    v = b.pick(lambda x: 1 in x.shape)
    if v is None:
        return None
    ones = [i for i, d in enumerate(b.shape(v)) if d == 1]
    ax = b.choice(ones) - (len(b.shape(v)) if b.rng.random() < 0.3 else 0)
    return b.choice(["gc.squeeze({0}, %d)" % ax, "np.squeeze({0}, axis=%d)" % ax,
                     "{0}.squeeze(%d)" % ax, "gc.squeeze({0})"]), (v,)


def make_broadcast_to(b, name):
    rng = b.rng
    v = b.pick()
    if v is None:
        return None
    target = [int(rng.choice([2, 3])) if d == 1 and rng.random() < 0.7 else d for d in b.shape(v)]
    target = [int(rng.choice([1, 2, 3])) for _ in range(int(rng.integers(0, 3)))] + target
    spelling = b.choice(["gc.broadcast_to({0}, %r)", "np.broadcast_to({0}, %r)"])
    return spelling % (tuple(target),), (v,)


def make_concatenate(b, name):
    rng = b.rng
    v = b.pick(lambda x: x.ndim >= 1)
    if v is None:
        return None
    s = b.shape(v)
    axis = int(rng.integers(-len(s), len(s)))
    args, items = [v], ["{0}"]
    for _ in range(int(rng.integers(1, 3))):
        r = rng.random()
        if r < 0.3:
            items.append("{0}")
        elif r < 0.5:
            items.append("({0} * %s)" % scalar_text(rng))
        else:
            shape = list(s)
            shape[axis] = int(rng.integers(1, 4))
            args.append(b.operand(tuple(shape)))
            items.append("{%d}" % (len(args) - 1))
    rng.shuffle(items)
    fn = b.choice(["gc.concatenate([%s], axis=%d)", "np.concatenate([%s], axis=%d)"])
    return fn % (", ".join(items), axis), tuple(args)


def _same_shape_list(b, v):
    """(the list's items as "{0}, {1}, {0}", its distinct variables): v and 1-2 more of its shape
    (v itself again, or another variable or new input)."""
    args = [v] + [v if b.rng.random() < 0.3 else b.operand(b.shape(v))
                  for _ in range(int(b.rng.integers(1, 3)))]
    names = sorted(set(args), key=args.index)
    return ", ".join("{%d}" % names.index(a) for a in args), tuple(names)


def make_stack(b, name):
    v = b.pick()
    if v is None:
        return None
    items, names = _same_shape_list(b, v)
    nd = len(b.shape(v))
    spelling = b.choice(["gc.stack([%s], axis=%d)", "np.stack([%s], axis=%d)"])
    return spelling % (items, int(b.rng.integers(-nd - 1, nd + 1))), names


def _threshold(b, v):
    values = b.vals[v].ravel()
    return repr(round(float(b.choice(values)) + float(b.rng.uniform(-0.05, 0.05)), 3))


def make_where(b, name):
    rng = b.rng
    a = b.pick()
    if a is None:
        return None
    compare = b.choice(catalog.catalogue().get("compare", ["greater"]))
    rhs = ("lit", _threshold(b, a)) if rng.random() < 0.6 else ("var", b.operand(
        broadcast_partner(b, b.shape(a))))
    cond, cargs = fill(b.choice(catalog.spellings(compare, 2)), [("var", a), rhs])
    if rng.random() < 0.15:    # stop_gradient where it changes no derivative: inside a condition
        cond = cond.replace("{0}", "gc.stop_gradient({0})", 1)
    r = rng.random()
    if r < 0.15:
        cond = f"~({cond})"
    elif r < 0.3:       # two conditions: & and | (logical_and / logical_or on masks)
        cond = f"(({cond}) {b.choice(['&', '|'])} ({{0}} < {_threshold(b, a)}))"
    other = b.choice([("lit", scalar_text(rng)),
                      ("var", b.operand(broadcast_partner(b, b.shape(a))))])
    args = list(cargs)
    if other[0] == "var":
        args.append(other[1])
        other_text = "{%d}" % (len(args) - 1)
    else:
        other_text = other[1]
    branch = b.choice(["{0}", "(%s * {0})" % scalar_text(rng)])
    branches = [branch, other_text] if rng.random() < 0.7 else [other_text, branch]
    fn = b.choice(["gc.where", "np.where"])
    return f"{fn}({cond}, {branches[0]}, {branches[1]})", tuple(args)


def make_clip(b, name):
    v = b.pick()
    if v is None:
        return None
    lo, hi = sorted([float(_threshold(b, v)), float(_threshold(b, v))])
    if hi - lo < 0.01:
        return None
    lo_t, hi_t = (repr(lo), repr(hi))
    r = b.rng.random()
    if r < 0.15:
        lo_t = "None"
    elif r < 0.3:
        hi_t = "None"
    return b.choice(["gc.clip({0}, %s, %s)", "np.clip({0}, %s, %s)", "{0}.clip(%s, %s)"]) % (
        lo_t, hi_t), (v,)


def make_label_loss(b, name):
    rng = b.rng
    v = b.pick(lambda x: x.ndim == 2 or (x.ndim == 1 and name == "nn.cross_entropy"))
    if v is None:
        return None
    s = b.shape(v)
    labels = rng.integers(0, s[-1], s[0] if len(s) == 2 else ())
    kw = ""
    if name == "nn.cross_entropy" and rng.random() < 0.5:
        kw = ", reduction=%r" % b.choice(["mean", "sum", "none"])
    return f"gc.{name}({{0}}, np.array({labels.tolist()!r}){kw})", (v,)


def make_pair_loss(b, name):
    v = b.pick()
    if v is None:
        return None
    return f"gc.{name}({{0}}, {{1}})", (v, b.operand(b.shape(v)))


def _axis(b, ndim):
    return int(b.rng.integers(-ndim, ndim))


def _indices(b, dim, shape, negative=True):
    return "np.array(%r)" % b.rng.integers(-dim if negative else 0, dim, shape).tolist()


def make_rearrange(b, name):
    """Reorderings, repetitions and selections of one array's elements (and round, cumsum)."""
    rng = b.rng
    v = b.pick(lambda x: x.ndim >= (2 if name in ("diagonal", "trace", "tril", "triu",
                                                   "swapaxes", "moveaxis") else 1))
    if v is None:
        return None
    s = b.shape(v)
    nd, ax = len(s), _axis(b, len(s))
    k = int(rng.integers(-1, 2))
    two = [int(a) for a in rng.choice(nd, 2, replace=False)] if nd >= 2 else [0, 0]
    forms = {
        "cumsum": ["gc.cumsum({0}, axis=%d)" % ax, "np.cumsum({0})", "{0}.cumsum(%d)" % ax],
        "cumprod": ["gc.cumprod({0}, axis=%d)" % ax, "np.cumprod({0}, axis=%d)" % ax],
        "flip": ["gc.flip({0}, axis=%d)" % ax, "np.flip({0})", "gc.flip({0}, axis=(%d,))" % ax],
        "roll": ["gc.roll({0}, %d, axis=%d)" % (int(rng.integers(-3, 4)), ax),
                 "np.roll({0}, %d)" % int(rng.integers(-5, 6))],
        "pad": ["gc.pad({0}, %d)" % int(rng.integers(1, 3)),
                "np.pad({0}, %r, mode=%r)" % (tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3)))
                                                     for _ in s), b.choice(["constant", "edge",
                                                                            "reflect", "wrap"])),
                "gc.pad({0}, 1, constant_values=%s)" % scalar_text(rng)],
        "tile": ["gc.tile({0}, %d)" % int(rng.integers(1, 3)),
                 "np.tile({0}, %r)" % (tuple(int(r) for r in rng.integers(1, 3, int(rng.integers(1, 4)))),)],
        "repeat": ["gc.repeat({0}, %d, axis=%d)" % (int(rng.integers(1, 3)), ax),
                   "np.repeat({0}, %r, axis=%d)" % (rng.integers(0, 3, s[ax]).tolist(), ax),
                   "gc.repeat({0}, 2)"],
        "diag": ["gc.diag({0}, k=%d)" % k, "np.diag({0})"],
        "diagonal": ["gc.diagonal({0}, %d, %d, %d)" % (k, *two), "np.diagonal({0})",
                     "{0}.diagonal()"],
        "trace": ["gc.trace({0}, %d, %d, %d)" % (k, *two), "np.trace({0})", "{0}.trace()"],
        "tril": ["gc.tril({0}, k=%d)" % k, "np.tril({0})"],
        "triu": ["gc.triu({0}, k=%d)" % k, "np.triu({0})"],
        "swapaxes": ["gc.swapaxes({0}, %d, %d)" % tuple(two), "np.swapaxes({0}, %d, %d)" % tuple(two),
                     "{0}.swapaxes(%d, %d)" % tuple(two)],
        "moveaxis": ["gc.moveaxis({0}, %d, %d)" % tuple(two), "np.moveaxis({0}, %d, %d)" % tuple(two)],
        "take": ["gc.take({0}, %s, axis=%d)" % (_indices(b, s[ax], int(rng.integers(1, 4))), ax),
                 "np.take({0}, %s)" % _indices(b, int(np.prod(s)), (2, 2))],
        "take_along_axis": ["gc.take_along_axis({0}, %s, axis=%d)" % (
            _indices(b, s[ax], s[:ax % nd] + (int(rng.integers(1, 4)),) + s[ax % nd + 1:],
                     negative=False), ax)],
        "ravel": ["gc.ravel({0})", "np.ravel({0})", "{0}.ravel()", "{0}.flatten()"],
        "copy": ["gc.copy({0})", "np.copy({0})", "{0}.copy()"],
        "atleast_3d": ["gc.atleast_3d({0})"],
        "round": ["gc.round({0}, %d)" % int(rng.integers(0, 3)), "np.round({0}, 1)"],
        "sliding_window_view": ["gc.sliding_window_view({0}, %d, axis=%d)" % (
            int(rng.integers(1, s[ax] + 1)), ax)],
    }
    return b.choice(forms[name]), (v,)


def make_join(b, name):
    v = b.pick()
    if v is None:
        return None
    items, names = _same_shape_list(b, v)
    return b.choice([f"gc.{name}([%s])", f"np.{name}((%s,))"]) % items, names


def make_split(b, name):
    rng = b.rng
    v = b.pick(lambda x: x.ndim >= (2 if name == "vsplit" else 1))
    if v is None:
        return None
    s = b.shape(v)
    ax = {"hsplit": 1 if len(s) > 1 else 0, "vsplit": 0}.get(name, _axis(b, len(s)))
    d = s[ax]
    sections = [n for n in range(1, d + 1) if d % n == 0] if name != "array_split" else \
        list(range(1, d + 2))
    how = (repr(b.choice(sections)) if rng.random() < 0.6
           else repr(sorted(rng.integers(0, d + 1, int(rng.integers(1, 3))).tolist())))
    axis = ", axis=%d" % ax if name in ("split", "array_split") else ""
    return (f"gc.{name}({{0}}, {how}{axis})[0]" if rng.random() < 0.5 else
            f"np.{name}({{0}}, {how}{axis})[-1]"), (v,)


def _letters(rng, count, used=""):
    free = [c for c in "abcdefgh" if c not in used]
    return "".join(free[:count])


def make_product(b, name):
    a = b.pick(lambda x: x.ndim >= 1)
    if a is None:
        return None
    rng, s = b.rng, b.shape(a)
    if name == "outer":
        return b.choice(["gc.outer({0}, {1})", "np.outer({0}, {1})"]), (
            a, b.operand(random_shape(rng, 2)))
    if name == "vdot":
        return b.choice(["gc.vdot({0}, {1})", "np.vdot({0}, {1})"]), (a, b.operand(s))
    if name == "inner":
        other = tuple(int(d) for d in rng.integers(1, 4, int(rng.integers(0, 2)))) + (s[-1],)
        return b.choice(["gc.inner({0}, {1})", "np.inner({0}, {1})"]), (a, b.operand(other))
    if name == "tensordot":
        n = int(rng.integers(0, min(len(s), 2) + 1))
        other = s[len(s) - n:] + tuple(int(d) for d in rng.integers(1, 4, int(rng.integers(0, 2))))
        return "gc.tensordot({0}, {1}, axes=%d)" % n, (a, b.operand(other))
    # einsum: the operands' letters share some sizes; the output keeps a random subset.
    la = _letters(rng, len(s))
    if len(s) >= 2 and s[0] == s[1] and rng.random() < 0.2:      # a diagonal: "ii->i", "ii"
        la = la[0] + la[0] + la[2:]
    sizes = dict(zip(la, s))
    if rng.random() < 0.3:
        inputs, args = [la], [a]
    else:
        shared = [c for c in dict.fromkeys(la) if rng.random() < 0.5]
        lb = "".join(shared) + _letters(rng, int(rng.integers(0, 2)), la)
        lb = "".join(rng.permutation(list(lb))) if lb else lb
        sizes.update({c: int(rng.integers(1, 4)) for c in lb if c not in sizes})
        inputs, args = [la, lb], [a, b.operand(tuple(sizes[c] for c in lb))]
    letters = list(dict.fromkeys("".join(inputs)))
    out = "".join(c for c in rng.permutation(letters) if rng.random() < 0.5)
    spec = ",".join(inputs) + ("" if rng.random() < 0.15 else "->" + out)
    slots = ", ".join("{%d}" % i for i in range(len(args)))
    return b.choice(["gc.einsum(%r, %s)", "np.einsum(%r, %s)"]) % (spec, slots), tuple(args)


def make_linalg(b, name):
    """A linalg op on well-conditioned matrices made from a variable: M = 0.2 tanh(v) + I is
    diagonally dominant (invertible, det in about [0.2, 3]); M M^T is positive definite."""
    rng, name = b.rng, name.split(".")[-1]
    v = b.pick(lambda x: x.ndim >= 2 and x.shape[-1] == x.shape[-2])
    if v is None or rng.random() < 0.3:
        n = int(rng.integers(1, 4))
        v = b.operand(((2,) if rng.random() < 0.3 else ()) + (n, n))
    s = b.shape(v)
    n = s[-1]
    m = "(gc.tanh({0}) * 0.2 + np.eye(%d, dtype=np.float32))" % n     # float32: no promotion
    lib = b.choice(["gc.linalg", "np.linalg"])
    if name == "solve":
        rhs = (n,) if rng.random() < 0.3 else s[:-2] + (n, int(rng.integers(1, 3)))
        return f"{lib}.solve({m}, {{1}})", (v, b.operand(rhs))
    if name == "cholesky":
        spd = f"({m} @ gc.swapaxes({m}, -1, -2))"
        return f"{lib}.cholesky({spd}{', upper=True' if rng.random() < 0.3 else ''})", (v,)
    if name == "slogdet":
        return f"{lib}.slogdet({m})[%d]" % int(rng.integers(0, 2)), (v,)
    return f"{lib}.{name}({m})", (v,)


def make_loop(b, name):
    """gc.fori_loop / gc.scan with a small smooth body: one loop node, whose derivatives are loops
    too; the body may close over another variable."""
    rng = b.rng
    c = b.pick()
    if c is None:
        return None
    s = b.shape(c)
    act = b.choice(["gc.tanh", "gc.sin", "gc.sigmoid", "np.cos"])
    if name == "fori_loop":
        n = int(rng.integers(0, 4))
        if rng.random() < 0.5:
            return ("gc.fori_loop(0, %d, lambda i, c: %s(c * 0.8) + {1} * 0.5, {0})" % (n, act),
                    (c, b.operand(s)))
        return "gc.fori_loop(1, %d, lambda i, c: c * 0.9 + %s(c) * 0.3 * i, {0})" % (n + 1, act), (c,)
    xs = b.operand((int(rng.integers(1, 4)),) + s)
    body = b.choice(["lambda c, x: (c * 0.7 + %s(x), c * x)" % act,
                     "lambda c, x: (%s(c + x), c - x)" % act,
                     "lambda c, x: (c * {2} + x * 0.5, %s(c) * x)" % act])
    args = (c, xs, b.operand(s)) if "{2}" in body else (c, xs)
    reverse = ", reverse=True" if rng.random() < 0.3 else ""
    return "gc.scan(%s, {0}, {1}%s)[%d]" % (body, reverse, int(rng.integers(0, 2))), args


def make_random(b, name):
    """A value times (or masked by) random numbers from a fixed key: the C kernel's Threefry
    against the interpreter's, and gradients through the draws' uses."""
    rng = b.rng
    v = b.pick()
    if v is None:
        return None
    key = "gc.random.key(%d)" % int(rng.integers(0, 1000))
    if rng.random() < 0.3:
        key = "gc.random.split(%s, 3)[%d]" % (key, int(rng.integers(0, 3)))
    shape = b.shape(v)
    if name.endswith("uniform"):
        return "({0} * gc.random.uniform(%s, %r, minval=0.5, maxval=1.5))" % (key, shape), (v,)
    if name.endswith("normal"):
        return "({0} + 0.1 * gc.random.normal(%s, %r))" % (key, shape), (v,)
    return "gc.where(gc.random.bernoulli(%s, 0.7, %r), {0} / 0.7, 0.0)" % (key, shape), (v,)


MAKERS = {"unary": make_unary, "binary": make_binary, "reduction": make_reduction,
          "axis_op": make_axis_op, "matmul": make_matmul, "reshape": make_reshape,
          "transpose": make_transpose, "slice": make_slice, "gather": make_gather,
          "expand_dims": make_expand_dims, "squeeze": make_squeeze,
          "broadcast_to": make_broadcast_to, "concatenate": make_concatenate,
          "stack": make_stack, "where": make_where, "clip": make_clip,
          "label_loss": make_label_loss, "pair_loss": make_pair_loss,
          "rearrange": make_rearrange, "join": make_join, "split": make_split,
          "product": make_product, "linalg": make_linalg, "loop": make_loop,
          "random": make_random}


def categories():
    """(category, op names) pairs to draw from: the catalogue's, plus indexing (no function)."""
    cats = dict(catalog.catalogue())
    cats.pop("compare", None), cats.pop("arg_reduction", None)   # used inside where / gather
    cats["slice"], cats["gather"] = ["getitem"], ["getitem"]
    return [(c, names) for c, names in sorted(cats.items()) if c in MAKERS]


SPLIT_CATEGORIES = ("unary", "binary", "where", "clip")    # row-wise: the batch split applies


def step(b, only=None):
    """Adds one statement (trying a few proposals); returns its variable or None."""
    cats = [(c, names) for c, names in categories() if only is None or c in only]
    weights = np.array([WEIGHTS.get(c, 1.0) for c, _ in cats])
    for _ in range(6):
        cat, names = cats[int(b.rng.choice(len(cats), p=weights / weights.sum()))]
        name = b.choice(names)
        maker = MAKERS[cat]
        var = b.propose(lambda: maker(b, name))
        if var is not None:
            return var
        if cat == "unary":       # outside its domain: retry behind an adapter
            for adapter in b.rng.permutation(ADAPTERS):
                v = b.pick()
                mapped = b.add(str(adapter), (v,)) if v else None
                if mapped and b.add(b.choice(catalog.spellings(name, 1)), (mapped,)):
                    return b.stmts[-1].var
    return None


def batch_prelude(b):
    """X @ W + b through a nonlinearity: the shape the batch split takes (rows of a batch)."""
    rng = b.rng
    rows, d, h = int(rng.choice([2, 4, 6])), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    x, w, bias = b.new_input((rows, d)), b.new_input((d, h)), b.new_input((h,))
    act = b.choice(["gc.tanh", "gc.sigmoid", "np.sin", "gc.softplus"])
    b.add(act + "(({0} @ {1}) + {2})", (x, w, bias))


def generate(seed, max_stmts=12):
    """The program of a seed (the same seed gives the same program)."""
    rng = np.random.default_rng(seed)
    b = Builder(rng)
    split = rng.random() < 0.12
    if split:
        batch_prelude(b)
    else:
        for _ in range(int(rng.integers(1, 3))):
            b.new_input(random_shape(rng))
    r = rng.random()
    n = int(rng.integers(1, 5)) if r < 0.5 else int(rng.integers(5, 11)) if r < 0.85 else int(
        rng.integers(11, max(12, max_stmts + 1)))
    n = min(n, max_stmts) if not split else int(rng.integers(1, 5))
    for _ in range(n * 2):
        if len(b.stmts) >= n:
            break
        step(b, SPLIT_CATEGORIES if split else None)
    if split and rng.random() < 0.6 and b.stmts:    # a loss over the batch: partial sums
        last = b.stmts[-1].var
        b.add(b.choice(["gc.mean({0})", "gc.sum({0}, axis=0)", "np.sum({0} ** 2)"]), (last,))
    floats = [s.var for s in b.stmts if b.vals[s.var].dtype.kind == "f"]
    if not floats:          # none yet, or only bool / int results (np.any, count_nonzero ...)
        floats = [b.add("({0} * 1.5)", (b.inputs[0][0],))]
    outputs = [floats[-1]] + [v for v in floats[:-1] if rng.random() < 0.15][:2]
    used = {a for s in b.stmts for a in s.args}
    inputs = tuple((n, v) for n, v in b.inputs if n in used)
    total = sum(v.size for _, v in inputs)
    return Program(inputs, tuple(b.stmts), tuple(outputs), seed=int(seed), split=split,
                   hvp=len(b.stmts) <= 5 and total <= 48)
