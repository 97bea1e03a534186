"""Named dimensions (API.md section 10): a size that is known only when the kernel runs.

A `Dim` is a polynomial over named sizes with integer coefficients (`n`, `n*784`, `2*n + 1`), so
shape rules written with Python arithmetic (products for reshape, sums for concatenate) work on
it unchanged. What cannot be decided for every size raises `SymbolicShapeError` instead of
guessing: `int(n)`, `range(n)`, `n > 5`. Equality is structural and a named dim is taken to be
different from every constant, 1 included (`n == 1` is False), as in JAX: broadcasting a named dim
against 1 works, against another constant it is an error. Sizes are at least 1 at run time.

Choices that only change speed read `hint(d)`, d at 128 per named size; thread counts of loops
over named sizes are chosen at run time (cbackend/loops.py).
"""
import re

DEFAULT_HINT = 128
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SymbolicShapeError(TypeError):
    """A named dimension was used where its value must be known while tracing. The message ends
    with the user's file:line."""

    def __init__(self, message):
        from .errors import user_location
        super().__init__(f"{message} (at {user_location()})")


class Dim:
    """A size: {monomial: coefficient}, a monomial a sorted tuple of (name, power)."""
    __slots__ = ("terms",)

    def __init__(self, terms):
        self.terms = {m: c for m, c in terms.items() if c}

    @classmethod
    def named(cls, name):
        if not isinstance(name, str) or not NAME.match(name):
            raise ValueError(f"a dimension name must be an identifier, got {name!r}")
        return cls({((name, 1),): 1})

    # ---- arithmetic ------------------------------------------------------------------------------
    def __add__(self, other):
        other = as_dim(other)
        if other is NotImplemented:
            return other
        terms = dict(self.terms)
        for m, c in other.terms.items():
            terms[m] = terms.get(m, 0) + c
        return simplify(Dim(terms))

    __radd__ = __add__

    def __neg__(self):
        return Dim({m: -c for m, c in self.terms.items()})

    def __sub__(self, other):
        other = as_dim(other)
        return NotImplemented if other is NotImplemented else self + (-other)

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        other = as_dim(other)
        if other is NotImplemented:
            return other
        terms = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = _mono_mul(m1, m2)
                terms[m] = terms.get(m, 0) + c1 * c2
        return simplify(Dim(terms))

    __rmul__ = __mul__

    def __floordiv__(self, other):
        """Exact division only (a reshape's -1, a split into equal parts)."""
        return _exact(self, other)

    def __rfloordiv__(self, other):
        return _exact(other, self)

    def __truediv__(self, other):
        raise SymbolicShapeError(f"{self!r} / {other!r}: a named size divides only exactly (//)")

    def __rtruediv__(self, other):
        raise SymbolicShapeError(f"{other!r} / {self!r}: a named size divides only exactly (//)")

    def __mod__(self, other):
        if divide(self, other) is not None:
            return 0
        raise SymbolicShapeError(f"{self!r} % {other!r} depends on the size of {', '.join(names(self))}")

    def __rmod__(self, other):
        raise SymbolicShapeError(f"{other!r} % {self!r} depends on the size of {', '.join(names(self))}")

    # ---- comparisons -----------------------------------------------------------------------------
    def __eq__(self, other):
        other = as_dim(other)
        return other is not NotImplemented and self.terms == other.terms

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash(tuple(sorted(self.terms.items())))

    def _order(self, other, op):
        diff = self - other
        if isinstance(diff, int):
            return op(diff, 0)
        for sign in (1, -1):   # sign*diff grows with every size from its value at all sizes 1
            low = _lower_bound(diff if sign == 1 else -diff)
            if low is None:
                continue
            if sign == 1 and op(low, 0) == op(low + 1, 0) == op(10 ** 12, 0):
                return op(low, 0)           # diff >= low > ...: the same answer for every size
            if sign == -1 and op(-low, 0) == op(-low - 1, 0) == op(-10 ** 12, 0):
                return op(-low, 0)
        raise SymbolicShapeError(f"whether {self!r} {op.__doc__} {other!r} depends on the size of "
                                 f"{', '.join(names(diff))}: this function needs that size as a "
                                 "Python value")

    def __lt__(self, other):
        return self._order(other, _lt)

    def __le__(self, other):
        return self._order(other, _le)

    def __gt__(self, other):
        return self._order(other, _gt)

    def __ge__(self, other):
        return self._order(other, _ge)

    def __bool__(self):
        return True             # sizes are at least 1

    def _needs_value(self, *_):
        raise SymbolicShapeError(f"the size {self!r} is named (symbolic): it has no Python value "
                                 "while tracing (range(), int(), indexing with it need one)")

    __int__ = __index__ = __float__ = _needs_value

    # ---- text ------------------------------------------------------------------------------------
    def __repr__(self):
        return render(self, lambda name: name)

    def __str__(self):
        # NOTE: str() is the C expression, so the emitters' f-strings write sizes into C unchanged
        # (named sizes are the kernel's `D_<name>` variables); repr() is for people (shapes print
        # as tuples, which use repr).
        return render(self, c_name, parens=True)

    c = __str__

    def evaluate(self, sizes):
        total = 0
        for m, c in self.terms.items():
            v = c
            for name, p in m:
                v *= sizes[name] ** p
            total += v
        return total


def _exact(a, b):
    q = divide(a, b)
    if q is None:
        raise SymbolicShapeError(f"{a!r} // {b!r} is not exact for every size of "
                                 f"{', '.join(names([a, b]))}")
    return q


def _lt(a, b):
    "<"
    return a < b


def _le(a, b):
    "<="
    return a <= b


def _gt(a, b):
    ">"
    return a > b


def _ge(a, b):
    ">="
    return a >= b


def _lower_bound(d):
    """The value at every size 1 when no coefficient but the constant is negative (the minimum
    over sizes >= 1), else None."""
    if any(c < 0 for m, c in d.terms.items() if m):
        return None
    return sum(d.terms.values())


def _mono_mul(a, b):
    powers = dict(a)
    for name, p in b:
        powers[name] = powers.get(name, 0) + p
    return tuple(sorted(powers.items()))


def as_dim(x):
    if isinstance(x, Dim):
        return x
    if isinstance(x, bool):
        return NotImplemented
    try:
        return Dim({(): int(x.__index__())})
    except (AttributeError, TypeError):
        return NotImplemented


def simplify(d):
    """A Dim with only a constant term is that int."""
    if not d.terms:
        return 0
    if list(d.terms) == [()]:
        return d.terms[()]
    return d


def divide(a, b):
    """a / b when it is a polynomial with integer coefficients, else None."""
    a, b = as_dim(a), as_dim(b)
    if len(b.terms) != 1:
        return (Dim({(): 1}) if a == b else None) if b.terms else None
    (mb, cb), = b.terms.items()
    out = {}
    for m, c in a.terms.items():
        powers = dict(m)
        for name, p in mb:
            if powers.get(name, 0) < p:
                return None
            powers[name] -= p
        if c % cb:
            return None
        out[tuple(sorted((n, p) for n, p in powers.items() if p))] = c // cb
    return simplify(Dim(out))


def render(d, name_of, parens=False):
    parts = []
    for m, c in sorted(d.terms.items(), key=lambda mc: (-len(mc[0]), mc[0])):
        factors = ([name_of(n) for n, p in m for _ in range(p)] if parens     # C has no power
                   else [name_of(n) + (f"^{p}" if p > 1 else "") for n, p in m])
        text = "*".join(([str(abs(c))] if abs(c) != 1 or not m else []) + factors)
        parts.append(("-" if c < 0 else "+", text))
    text = " ".join(f"{s} {t}" for s, t in parts).lstrip("+ ").strip()
    if text.startswith("- "):
        text = "-" + text[2:]
    return f"({text})" if parens and (len(parts) > 1 or text.startswith("-")) else text


def c_name(name):
    return f"D_{name}"


def to_json(x):
    """A size as JSON data (the disk cache's index): an int, or the Dim's terms."""
    if not isinstance(x, Dim):
        return x
    return {"terms": [[c, [list(f) for f in m]] for m, c in x.terms.items()]}


def from_json(data):
    if not isinstance(data, dict):
        return data
    return simplify(Dim({tuple((n, p) for n, p in m): c for c, m in data["terms"]}))


def is_name(d):
    """Whether a Dim is one named size alone (n, not 2*n or n*m)."""
    return isinstance(d, Dim) and list(d.terms.items()) == [(((names(d)[0], 1),), 1)]


def is_symbolic(x):
    return isinstance(x, Dim)


def any_symbolic(shape):
    return any(isinstance(d, Dim) for d in shape)


def names(x):
    """The names a size or shape depends on, in order of first appearance."""
    out = []
    for d in (x if isinstance(x, (tuple, list)) else (x,)):
        if isinstance(d, Dim):
            for m in d.terms:
                for name, _ in m:
                    if name not in out:
                        out.append(name)
    return out


def at_least(a, b):
    """Whether a >= b for every size (False where it depends on them)."""
    try:
        return a >= b
    except SymbolicShapeError:
        return False


def as_shape(shape):
    """A shape's sizes as ints, or Dims where they are named."""
    return tuple(d if isinstance(d, Dim) else int(d) for d in shape)


def dim_names(graph):
    """The named sizes of a graph's inputs, in order of first appearance (a kernel's size
    arguments)."""
    return names([d for node in graph.inputs for d in node.shape])


def fits(shape, spec):
    """Whether an array shape can be of spec's (its rank, its fixed sizes; named ones any)."""
    return len(shape) == len(spec) and all(isinstance(w, Dim) or w == g for g, w in zip(shape, spec))


def bind_sizes(shapes, specs, arg_names):
    """{name: size} of the named dims in specs (shape tuples) from the arrays' shapes; a size that
    disagrees with another argument's, or a fixed size that differs, is a ValueError naming the
    arguments. Called only with shapes of the specs' ranks."""
    sizes, seen = {}, {}
    for shape, spec, arg in zip(shapes, specs, arg_names):
        for axis, (got, want) in enumerate(zip(shape, spec)):
            if is_name(want):
                name = names(want)[0]
                if name in sizes and sizes[name] != got:
                    raise ValueError(f"argument {arg}: dimension {name!r} (axis {axis}) is {got}, "
                                     f"but {seen[name]} gave {name!r} = {sizes[name]}")
                if got < 1:
                    raise ValueError(f"argument {arg}: dimension {name!r} (axis {axis}) is {got}; "
                                     "a named size is at least 1")
                sizes.setdefault(name, got)
                seen.setdefault(name, f"argument {arg}")
    for shape, spec, arg in zip(shapes, specs, arg_names):
        for axis, (got, want) in enumerate(zip(shape, spec)):
            if evaluate(want, sizes) != got:
                raise ValueError(f"argument {arg}: axis {axis} is {got}, expected {want!r}"
                                 + (f" = {evaluate(want, sizes)}" if isinstance(want, Dim) else ""))
    return sizes


def prod(shape):
    """The number of elements of a shape: an int, or a Dim when a size is named."""
    total = 1
    for d in shape:
        total = total * d
    return total


def evaluate(x, sizes):
    return x.evaluate(sizes) if isinstance(x, Dim) else x


def substitute(value, sizes):
    """value with every Dim inside tuples, lists and dicts replaced by its size."""
    if isinstance(value, Dim):
        return value.evaluate(sizes)
    if isinstance(value, tuple):
        return tuple(substitute(v, sizes) for v in value)
    if isinstance(value, list):
        return [substitute(v, sizes) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, sizes) for k, v in value.items()}
    return value


def contains(value):
    if isinstance(value, Dim):
        return True
    if isinstance(value, (tuple, list)):
        return any(contains(v) for v in value)
    if isinstance(value, dict):
        return any(contains(v) for v in value.values())
    return False


def hint(x):
    """x at DEFAULT_HINT per named size: for choices that only change speed (which dead block of
    the workspace to try first, which operand of a product is read most)."""
    if not isinstance(x, Dim):
        return x
    return x.evaluate({n: DEFAULT_HINT for n in names(x)})
