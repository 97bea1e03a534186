"""The primitive table: every primitive op defined once — shape/dtype rule, NumPy implementation,
derivative rules written with gradc's own ops, and its C form.

Elementwise ops give their partial derivatives (`partials`), from which JVP and VJP are derived;
linear ops give only a `transpose`; the few others give `jvp` and `vjp` directly. Everything else in
the API (mean, softmax, relu, cross_entropy, ...) is a composite in ops.py / nn.py.

C forms: elementwise ops have an expression template over their operands `{0}`, `{1}`, ... where
`{f}` is the float suffix ("f" for float32, "" for float64) and `{ctype}` the result's C type; the
other kinds name the lowering the C backend uses for them (views, reductions, calls).
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

import builtins
import math

import numpy as np

from . import ops as G
from .dtypes import bool_, int64
from .errors import ShapeError, user_location
from .symbolic import Dim, prod

PRIMITIVES = {}


@dataclass(eq=False)
class Primitive:
    name: str
    kind: str                      # source | unary | binary | ternary | compare | reduce | shape | ...
    impl: Optional[Callable]       # NumPy implementation: impl(*arrays, **params) -> ndarray
    shape_rule: Optional[Callable] = None   # (*avals, **params) -> (shape, dtype); aval = (shape, dtype)
    partials: Optional[Callable] = None     # elementwise: (*inputs, out, **params) -> [d out/d in_i or None]
    transpose: Optional[Callable] = None    # linear: (ct, *inputs, **params) -> [cotangent_i or None]
    linear_args: tuple = ()                 # which inputs a linear op is linear in
    jvp: Optional[Callable] = None          # (tangents, *inputs, out, **params) -> tangent or None
    vjp: Optional[Callable] = None          # (ct, *inputs, out, **params) -> [cotangent_i or None]
    c: object = None     # C: expression template (elementwise; a dict by dtype kind "f"/"i" where
                         # they differ) or the name of the lowering (other kinds)
    doc: str = ""
    extra: dict = field(default_factory=dict)
    public: bool = False   # elementwise: gc.<name> is made from this entry, np.<impl> dispatches to it

    def __repr__(self):
        return f"<primitive {self.name}>"


def define(prim):
    assert prim.name not in PRIMITIVES, prim.name
    PRIMITIVES[prim.name] = prim
    return prim


def shape_error(op, message):
    return ShapeError(f"{op}: {message} (at {user_location()})")


# ---- shape rules ---------------------------------------------------------------------------------

def _same_shape(name, result_dtype=None):
    def rule(*avals, **params):
        shapes = [a[0] for a in avals]
        if any(s != shapes[0] for s in shapes):
            raise shape_error(name, f"operands have shapes {', '.join(map(str, shapes))}")
        dtype = result_dtype if result_dtype is not None else avals[-1][1]
        return shapes[0], dtype
    return rule


def _mask(cond, like):
    """A bool condition as a 0/1 array of like's dtype."""
    return G.astype(cond, like.dtype)


# ---- elementwise ---------------------------------------------------------------------------------

def unary(name, impl, partial=None, c=None, doc="", public=False):
    return define(Primitive(name, "unary", impl, _same_shape(name),
                            partials=(lambda x, out, **_: [partial(x, out)]) if partial else None,
                            c=c, doc=doc, public=public))


def binary(name, impl, partials=None, c=None, doc="", public=False):
    return define(Primitive(name, "binary", impl, _same_shape(name),
                            partials=(lambda x, y, out, **_: partials(x, y, out)) if partials else None,
                            c=c, doc=doc, public=public))


def compare(name, impl, c):
    return define(Primitive(name, "compare", impl, _same_shape(name, bool_), c=c))


def _stable_sigmoid(x):
    # NOTE: exp(-logaddexp(0, -x)) neither overflows nor loses the tails at |x| ~ 1e3.
    return np.exp(-np.logaddexp(np.zeros((), x.dtype), -x)).astype(x.dtype, copy=False)


neg = define(Primitive("neg", "unary", np.negative, _same_shape("neg"),
                       transpose=lambda ct, x: [G.negative(ct)], linear_args=(0,), c="(-{0})"))
exp = unary("exp", np.exp, lambda x, out: out, "exp{f}({0})")
log = unary("log", np.log, lambda x, out: 1 / x, "log{f}({0})")
log1p = unary("log1p", np.log1p, lambda x, out: 1 / (1 + x), "log1p{f}({0})")
expm1 = unary("expm1", np.expm1, lambda x, out: out + 1, "expm1{f}({0})")
sqrt = unary("sqrt", np.sqrt, lambda x, out: 0.5 / out, "sqrt{f}({0})")
sin = unary("sin", np.sin, lambda x, out: G.cos(x), "sin{f}({0})")
cos = unary("cos", np.cos, lambda x, out: -G.sin(x), "cos{f}({0})")
tanh = unary("tanh", np.tanh, lambda x, out: 1 - out * out, "tanh{f}({0})")
abs = unary("abs", np.abs, lambda x, out: G.sign(x), {"f": "fabs{f}({0})", "i": "gradc_absi({0})"})           # abs'(0) = sign(0) = 0
sign = unary("sign", np.sign, None, {"f": "gradc_sign{f}({0})", "i": "gradc_signi({0})"})                      # derivative 0: no rule
# sigmoid and softplus are primitives for numerical stability at |x| ~ 1e3.
sigmoid = unary("sigmoid", _stable_sigmoid, lambda x, out: out * (1 - out), "gradc_sigmoid{f}({0})")
softplus = unary("softplus", lambda x: np.logaddexp(np.zeros((), x.dtype), x),
                 lambda x, out: G.sigmoid(x), "gradc_softplus{f}({0})")
stop_gradient = unary("stop_gradient", lambda x: x, None, "{0}")

def _erf(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


# ---- elementwise ops whose entry is all there is (public=True: gc.<name> and np.<ufunc> are made
# from it). Primitives, not composites: libm computes them to the last digit and libmvec vectorises
# them; composites lose digits (sinh near 0, arcsinh at large |x|) or overflow (hypot).
tan = unary("tan", np.tan, lambda x, out: 1 + out * out, "tan{f}({0})", public=True)
arcsin = unary("arcsin", np.arcsin, lambda x, out: 1 / G.sqrt(1 - x * x), "asin{f}({0})", public=True)
arccos = unary("arccos", np.arccos, lambda x, out: -1 / G.sqrt(1 - x * x), "acos{f}({0})",
               public=True)
arctan = unary("arctan", np.arctan, lambda x, out: 1 / (1 + x * x), "atan{f}({0})", public=True)
sinh = unary("sinh", np.sinh, lambda x, out: G.cosh(x), "sinh{f}({0})", public=True)
cosh = unary("cosh", np.cosh, lambda x, out: G.sinh(x), "cosh{f}({0})", public=True)
arcsinh = unary("arcsinh", np.arcsinh, lambda x, out: 1 / G.sqrt(x * x + 1), "asinh{f}({0})",
                public=True)
arccosh = unary("arccosh", np.arccosh, lambda x, out: 1 / G.sqrt(x * x - 1), "acosh{f}({0})",
                public=True)
arctanh = unary("arctanh", np.arctanh, lambda x, out: 1 / (1 - x * x), "atanh{f}({0})", public=True)
exp2 = unary("exp2", np.exp2, lambda x, out: out * math.log(2), "exp2{f}({0})", public=True)
log2 = unary("log2", np.log2, lambda x, out: 1 / (x * math.log(2)), "log2{f}({0})", public=True)
log10 = unary("log10", np.log10, lambda x, out: 1 / (x * math.log(10)), "log10{f}({0})",
              public=True)
cbrt = unary("cbrt", np.cbrt, lambda x, out: 1 / (3 * out * out), "cbrt{f}({0})", public=True)
erf = unary("erf", _erf, lambda x, out: (2 / math.sqrt(math.pi)) * G.exp(-x * x), "erf{f}({0})",
            public=True)
# Piecewise constant: no derivative rule, so the gradient is zero (as sign's).
floor = unary("floor", np.floor, None, "floor{f}({0})", public=True)
ceil = unary("ceil", np.ceil, None, "ceil{f}({0})", public=True)
trunc = unary("trunc", np.trunc, None, "trunc{f}({0})", public=True)
rint = unary("rint", np.rint, None, "rint{f}({0})", public=True)          # halves to even
arctan2 = binary("arctan2", np.arctan2,
                 lambda y, x, out: [x / (x * x + y * y), -y / (x * x + y * y)],
                 "atan2{f}({0}, {1})", public=True)
hypot = binary("hypot", np.hypot, lambda x, y, out: [x / out, y / out], "hypot{f}({0}, {1})",
               public=True)
# fmod(x, y) = x - trunc(x / y) * y on floats; gc.fmod (integers too), mod, remainder and
# floor_divide are composed from it (elementwise.py).
fmod = binary("fmod", np.fmod, lambda x, y, out: [G.ones_like(x), -G.trunc(x / y)],
              "fmod{f}({0}, {1})")


add = define(Primitive("add", "binary", np.add, _same_shape("add"),
                       transpose=lambda ct, x, y: [ct, ct], linear_args=(0, 1), c="({0} + {1})"))
sub = define(Primitive("sub", "binary", np.subtract, _same_shape("sub"),
                       transpose=lambda ct, x, y: [ct, G.negative(ct)], linear_args=(0, 1),
                       c="({0} - {1})"))
mul = binary("mul", np.multiply, lambda x, y, out: [y, x], "({0} * {1})")
div = binary("div", np.divide, lambda x, y, out: [1 / y, -out / y], "({0} / {1})")
pow = binary("pow", np.power,
             # NOTE: each where's untaken branch reads safe inputs (x -> 1), so that its own
             # derivative is finite too: d2/dx2 x**0 at 0 is 0, not 0 * inf.
             lambda x, y, out: [G.where(y == 0, 0, y * G.power(G.where(y == 0, 1, x), y - 1)),
                                G.where(x > 0, out * G.log(G.where(x > 0, x, 1)), 0)],
             {"f": "pow{f}({0}, {1})", "i": "(({ctype})pow((double){0}, (double){1}))"})
# Ties split the gradient equally, as PyTorch does.
maximum = binary("maximum", np.maximum,
                 lambda x, y, out: [_mask(x > y, x) + 0.5 * _mask(x == y, x),
                                    _mask(y > x, x) + 0.5 * _mask(x == y, x)],
                 {"f": "gradc_max{f}({0}, {1})", "i": "gradc_maxi({0}, {1})"})
minimum = binary("minimum", np.minimum,
                 lambda x, y, out: [_mask(x < y, x) + 0.5 * _mask(x == y, x),
                                    _mask(y < x, x) + 0.5 * _mask(x == y, x)],
                 {"f": "gradc_min{f}({0}, {1})", "i": "gradc_mini({0}, {1})"})

equal = compare("equal", np.equal, "({0} == {1})")
not_equal = compare("not_equal", np.not_equal, "({0} != {1})")
less = compare("less", np.less, "({0} < {1})")
less_equal = compare("less_equal", np.less_equal, "({0} <= {1})")
greater = compare("greater", np.greater, "({0} > {1})")
greater_equal = compare("greater_equal", np.greater_equal, "({0} >= {1})")
logical_and = compare("logical_and", np.logical_and, "({0} && {1})")
logical_or = compare("logical_or", np.logical_or, "({0} || {1})")
logical_not = define(Primitive("logical_not", "unary", np.logical_not,
                               _same_shape("logical_not", bool_), c="(!{0})"))


def _where_rule(c, x, y):
    if not (c[0] == x[0] == y[0]):
        raise shape_error("where", f"operands have shapes {c[0]}, {x[0]}, {y[0]}")
    return x[0], x[1]


where = define(Primitive("where", "ternary", np.where, _where_rule,
                         transpose=lambda ct, c, x, y: [None, G.where(c, ct, 0), G.where(c, 0, ct)],
                         linear_args=(1, 2), c="({0} ? {1} : {2})"))


def _cast_transpose(ct, x, dtype):
    return [G.astype(ct, x.dtype)]


cast = define(Primitive("cast", "unary", lambda x, dtype: x.astype(dtype),
                        lambda x, dtype: (x[0], np.dtype(dtype)),
                        transpose=_cast_transpose, linear_args=(0,), c="(({ctype}){0})"))


# ---- reductions ----------------------------------------------------------------------------------

def _reduce_rule(name):
    def rule(x, axes):
        if any(not 0 <= a < len(x[0]) for a in axes):
            raise shape_error(name, f"axes {axes} out of range for shape {x[0]}")
        return tuple(d for i, d in enumerate(x[0]) if i not in axes), x[1]
    return rule


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else d for i, d in enumerate(shape))


def _unreduce(ct, x, axes):
    """Broadcasts a reduced value back over the reduced axes of x."""
    return G.broadcast_to(G.reshape(ct, _kept_shape(x.shape, axes)), x.shape)


sum = define(Primitive("sum", "reduce", lambda x, axes: np.sum(x, axis=axes, dtype=x.dtype),
                       _reduce_rule("sum"),
                       transpose=lambda ct, x, axes: [_unreduce(ct, x, axes)], linear_args=(0,),
                       c="sum"))


def _max_mask(x, out, axes):
    """1 where x attains the maximum, divided by the number of ties (they share the gradient)."""
    hit = _mask(x == _unreduce(out, x, axes), x)
    return hit / _unreduce(G.sum_axes(hit, axes), x, axes)


max = define(Primitive("max", "reduce", lambda x, axes: np.max(x, axis=axes), _reduce_rule("max"),
                       jvp=lambda t, x, out, axes: G.sum_axes(t[0] * _max_mask(x, out, axes), axes),
                       vjp=lambda ct, x, out, axes: [_unreduce(ct, x, axes) * _max_mask(x, out, axes)],
                       c="max"))


def _argmax_rule(x, axis):
    if axis is None:
        return (), int64
    return tuple(d for i, d in enumerate(x[0]) if i != axis), int64


argmax = define(Primitive("argmax", "reduce",
                          lambda x, axis: np.asarray(np.argmax(x, axis=axis), dtype=np.int64),
                          _argmax_rule, c="argmax"))


# ---- shape ---------------------------------------------------------------------------------------

def _reshape_rule(x, shape):
    if prod(x[0]) != prod(shape):
        raise shape_error("reshape", f"cannot reshape {x[0]} into {shape}")
    return tuple(shape), x[1]


reshape = define(Primitive("reshape", "shape", lambda x, shape: np.reshape(x, shape), _reshape_rule,
                           transpose=lambda ct, x, shape: [G.reshape(ct, x.shape)],
                           linear_args=(0,), c="reshape"))


def _broadcast_rule(x, shape):
    lead = len(shape) - len(x[0])
    if lead < 0 or any(d not in (1, s) for d, s in zip(x[0], shape[lead:])):
        raise shape_error("broadcast_to", f"cannot broadcast {x[0]} to {shape}")
    return tuple(shape), x[1]


def _broadcast_transpose(ct, x, shape):
    lead = len(shape) - x.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(x.shape)
                                      if d == 1 and shape[lead + i] != 1)
    return [G.reshape(G.sum_axes(ct, axes), x.shape)]


broadcast_to = define(Primitive("broadcast_to", "shape",
                                lambda x, shape: np.broadcast_to(x, shape), _broadcast_rule,
                                transpose=_broadcast_transpose, linear_args=(0,), c="broadcast"))


def _transpose_rule(x, perm):
    if sorted(perm) != list(range(len(x[0]))):
        raise shape_error("transpose", f"axes {perm} do not permute shape {x[0]}")
    return tuple(x[0][p] for p in perm), x[1]


transpose = define(Primitive("transpose", "shape", lambda x, perm: np.transpose(x, perm),
                             _transpose_rule,
                             transpose=lambda ct, x, perm: [G.transpose(ct, tuple(np.argsort(perm)))],
                             linear_args=(0,), c="transpose"))


def _slices(starts, stops, steps):
    # NOTE: a negative step that runs to the front normalises to stop=-1, which Python reads as "last".
    return tuple(builtins.slice(a, None if b < 0 else b, s) for a, b, s in zip(starts, stops, steps))


def _slice_length(start, stop, step):
    if isinstance(start, Dim) or isinstance(stop, Dim):
        return stop - start         # ops._named_slice: step 1, never empty-clipped
    return len(range(start, stop, step))


def _slice_rule(x, starts, stops, steps):
    return tuple(_slice_length(a, b, s) for a, b, s in zip(starts, stops, steps)), x[1]


def _unslice_impl(x, shape, starts, stops, steps):
    out = np.zeros(shape, x.dtype)
    out[_slices(starts, stops, steps)] = x
    return out


# Basic slicing with normalised (start, stop, step) per axis; steps may be negative.
slice = define(Primitive("slice", "shape",
                         lambda x, starts, stops, steps: x[_slices(starts, stops, steps)],
                         _slice_rule,
                         transpose=lambda ct, x, **p: [G.bind(unslice, ct, shape=x.shape, **p)],
                         linear_args=(0,), c="slice"))
# The transpose of slice: x placed at the slice positions of a zero array of `shape`.
unslice = define(Primitive("unslice", "shape", _unslice_impl,
                           lambda x, shape, **p: (tuple(shape), x[1]),
                           transpose=lambda ct, x, shape, **p: [G.bind(slice, ct, **p)],
                           linear_args=(0,), c="unslice"))


def _concat_rule(*xs, axis):
    first = xs[0][0]
    for x in xs[1:]:
        if len(x[0]) != len(first) or any(a != b for i, (a, b) in enumerate(zip(x[0], first))
                                          if i != axis):
            raise shape_error("concatenate", "shapes " + ", ".join(str(x[0]) for x in xs)
                              + f" do not match outside axis {axis}")
    shape = list(first)
    shape[axis] = builtins.sum(x[0][axis] for x in xs)
    return tuple(shape), xs[0][1]


def _concat_transpose(ct, *xs, axis):
    cts, start = [], 0
    for x in xs:
        cts.append(G.slice_axis(ct, axis, start, start + x.shape[axis]))
        start += x.shape[axis]
    return cts


concatenate = define(Primitive("concatenate", "shape",
                               lambda *xs, axis: np.concatenate(xs, axis=axis), _concat_rule,
                               transpose=_concat_transpose, linear_args=None, c="concatenate"))


# ---- gather / scatter ----------------------------------------------------------------------------

def _check_indices(indices, dims, wrap):
    """NumPy-style bounds check; `wrap` allows negative indices (indexing), else they are errors."""
    out = []
    for idx, dim in zip(indices, dims):
        low = -dim if wrap else 0
        if idx.size and (idx.min() < low or idx.max() >= dim):
            bad = idx[(idx < low) | (idx >= dim)].flat[0]
            raise IndexError(f"index {bad} is out of bounds for axis of size {dim}")
        out.append(np.where(idx < 0, idx + dim, idx) if wrap else idx)
    return tuple(out)


def _gather_impl(x, *indices, wrap):
    return x[_check_indices(indices, x.shape, wrap)]


def _gather_rule(x, *indices, wrap):
    if len(indices) > len(x[0]):
        raise shape_error("gather", f"too many indices ({len(indices)}) for shape {x[0]}")
    idx_shape = indices[0][0]
    return tuple(idx_shape) + tuple(x[0][len(indices):]), x[1]


def _scatter_add_impl(g, *indices, shape, wrap):
    out = np.zeros(shape, g.dtype)
    np.add.at(out, _check_indices(indices, shape, wrap), g)
    return out


# x[i0, i1, ...] with index arrays broadcast to one shape; linear in x.
gather = define(Primitive("gather", "gather", _gather_impl, _gather_rule,
                          transpose=lambda ct, x, *idx, wrap: [G.bind(scatter_add, ct, *idx,
                                                                      shape=x.shape, wrap=wrap)]
                          + [None] * len(idx),
                          linear_args=(0,), c="gather"))
# The transpose of gather: adds g into a zero array of `shape` at the indices (repeats add up).
scatter_add = define(Primitive("scatter_add", "scatter", _scatter_add_impl,
                               lambda g, *idx, shape, wrap: (tuple(shape), g[1]),
                               transpose=lambda ct, g, *idx, shape, wrap:
                               [G.bind(gather, ct, *idx, wrap=wrap)] + [None] * len(idx),
                               linear_args=(0,), c="scatter_add"))


# ---- random numbers ------------------------------------------------------------------------------

# NOTE: a primitive because random bits need 32-bit integer mixing (rotations, xor, wrapping adds)
# that gradc's float-and-index ops cannot express; everything in gc.random is composed from it.
THREEFRY_ROTATIONS = (13, 15, 26, 6, 17, 29, 16, 24)


def threefry2x32(k0, k1, c0, c1):
    """Threefry-2x32, 20 rounds (Salmon et al. 2011, Random123): the counter words (c0, c1)
    encrypted under the key (k0, k1); uint32 arrays in and out. csrc's gradc_threefry2x32 is the
    same function in C."""
    k0, k1, x0, x1 = (np.asarray(v, np.uint32) for v in (k0, k1, c0, c1))
    keys = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    with np.errstate(over="ignore"):          # the adds wrap modulo 2^32 by design
        x0, x1 = x0 + keys[0], x1 + keys[1]
        for i in range(20):
            r = np.uint32(THREEFRY_ROTATIONS[i % 8])
            x0 = x0 + x1
            x1 = ((x1 << r) | (x1 >> (np.uint32(32) - r))) ^ x0
            if i % 4 == 3:
                s = i // 4 + 1
                x0 = x0 + keys[s % 3]
                x1 = x1 + keys[(s + 1) % 3] + np.uint32(s)
    return x0, x1


def _random_impl(key, shape, dtype):
    """Element i (row-major) is Threefry of the counter i under the key's two low 32-bit words:
    int64 gives the first output word, float32 its top 24 bits as a uniform in [0, 1), float64
    53 bits of both words."""
    k = np.asarray(key).astype(np.int64) & 0xFFFFFFFF
    i = np.arange(prod(shape), dtype=np.uint64)
    o0, o1 = threefry2x32(k[0], k[1], i >> np.uint64(32), i & np.uint64(0xFFFFFFFF))
    dtype = np.dtype(dtype)
    if dtype == np.int64:
        out = o0.astype(np.int64)
    elif dtype == np.float32:
        out = (o0 >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    else:
        out = ((o0 >> np.uint32(5)).astype(np.float64) * 67108864.0
               + (o1 >> np.uint32(6)).astype(np.float64)) * 2.0 ** -53
    return out.reshape(shape)


def _random_rule(key, shape, dtype):
    if key[0] != (2,) or np.dtype(key[1]).kind not in "iu":
        raise TypeError(f"gc.random: a key is an integer array of shape (2,) made by "
                        f"gc.random.key(seed) or gc.random.split, not {key[1]}{list(key[0])} "
                        f"(at {user_location()})")
    return tuple(shape), np.dtype(dtype)


# Counter-based random numbers of `shape` from a key: raw 32-bit words (int64) or uniforms in
# [0, 1) (float32 / float64); no derivative (the key is an integer).
random_bits = define(Primitive("random_bits", "random", _random_impl, _random_rule,
                               c="random_bits"))


# ---- matmul --------------------------------------------------------------------------------------

def _matmul_rule(a, b):
    (sa, da), (sb, _) = a, b
    if len(sa) < 2 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        raise shape_error("matmul", f"shapes {sa} and {sb} do not fit (inner dimensions "
                          f"{sa[-1] if sa else '?'} and {sb[-2] if len(sb) > 1 else '?'})")
    return sa[:-1] + sb[-1:], da


def _matmul_jvp(t, a, b, out):
    ta, tb = t
    terms = ([G.matmul(ta, b)] if ta is not None else []) + ([G.matmul(a, tb)] if tb is not None else [])
    return terms[0] if len(terms) == 1 else G.add(*terms)


# a[..., m, k] @ b[..., k, n] with equal batch dimensions (ops.matmul handles 1-D and broadcasting).
matmul = define(Primitive("matmul", "matmul", np.matmul, _matmul_rule, jvp=_matmul_jvp,
                          vjp=lambda ct, a, b, out: [G.matmul(ct, G.swap_last(b)),
                                                     G.matmul(G.swap_last(a), ct)],
                          c="matmul"))

# ---- sources -------------------------------------------------------------------------------------

input = define(Primitive("input", "source", None, c="input"))
const = define(Primitive("const", "source", None, c="const"))   # params: value (an ndarray)
# A named size's value at run time (API.md section 10: mean's divisor over a named dim), a scalar
# of `dtype`; params: size (a symbolic.Dim).
dim_value = define(Primitive("dim_value", "source", lambda size, dtype: np.asarray(size, dtype),
                             lambda size, dtype: ((), np.dtype(dtype)), c="dim_value"))


def _iota_rule(size, dtype):
    return (size,), np.dtype(dtype)


# 0, 1, ..., size - 1 for a size that may be named (the rows of a batch of named length);
# a primitive because np.arange of a named size is no constant.
iota = define(Primitive("iota", "iota", lambda size, dtype: np.arange(size, dtype=dtype), _iota_rule,
                        c="iota"))



# ---- linear algebra ------------------------------------------------------------------------------
# Primitives because their derivatives are short graph code (d inv = -inv dA inv) where the
# composite (an unrolled elimination) would be differentiated step by step. C: csrc/gradc_runtime.h,
# called once per batch of matrices ("call_args": the sizes it is given).

def _square_rule(name):
    def rule(a, **_):
        if len(a[0]) < 2 or a[0][-1] != a[0][-2]:
            raise shape_error(name, f"needs square matrices (..., n, n), got {a[0]}")
        return a[0], a[1]
    return rule


def _batch_n(node):
    x = node.inputs[0]
    n = x.shape[-1]
    return [prod(x.shape[:-2]), n]


def _inv_vjp(ct, a, out):
    t = G.swap_last(out)
    return [G.negative(G.matmul(G.matmul(t, ct), t))]


inv = define(Primitive("inv", "linalg", np.linalg.inv, _square_rule("inv"),
                       jvp=lambda t, a, out: G.negative(G.matmul(G.matmul(out, t[0]), out)),
                       vjp=_inv_vjp, c="gradc_inv", extra={"call_args": _batch_n}))


def _solve_rule(a, b):
    _square_rule("solve")(a)
    if len(b[0]) != len(a[0]) or b[0][:-2] != a[0][:-2] or b[0][-2] != a[0][-1]:
        raise shape_error("solve", f"right-hand side {b[0]} does not fit matrices {a[0]}")
    return b[0], a[1]


def _solve_jvp(t, a, b, out):
    ta, tb = t
    rhs = tb if tb is not None else G.zeros_like(out)
    if ta is not None:
        rhs = G.subtract(rhs, G.matmul(ta, out))
    return G.bind(solve, a, rhs)


def _solve_vjp(ct, a, b, out):
    gb = G.bind(solve, G.swap_last(a), ct)
    return [G.negative(G.matmul(gb, G.swap_last(out))), gb]


# a^-1 b for b of shape (..., n, m) (ops.solve handles NumPy's vector right-hand sides).
solve = define(Primitive("solve", "linalg", np.linalg.solve, _solve_rule, jvp=_solve_jvp,
                         vjp=_solve_vjp, c="gradc_solve",
                         extra={"call_args": lambda node: _batch_n(node) + [node.shape[-1]]}))


def _det_impl(a, part):
    if part == "det":
        return np.linalg.det(a)
    sign, logabs = np.linalg.slogdet(a)
    return logabs if part == "logabs" else sign


def _det_rule(a, part):
    _square_rule("det")(a)
    return a[0][:-2], a[1]


def _det_scale(out, part):
    """d part / d a = scale * inv(a)^T: det for det, 1 for log|det|, 0 for the sign."""
    return out if part == "det" else None


def _det_vjp(ct, a, out, part):
    if part == "sign":
        return [None]
    g = ct if part == "logabs" else G.multiply(ct, out)
    g = G.reshape(g, g.shape + (1, 1))
    return [G.multiply(g, G.swap_last(G.bind(inv, a)))]


def _det_jvp(t, a, out, part):
    if part == "sign":
        return None
    d = G.sum_axes(G.multiply(G.swap_last(G.bind(inv, a)), t[0]), (a.ndim - 2, a.ndim - 1))
    return d if part == "logabs" else G.multiply(out, d)


# det(a), log|det(a)| or sign(det(a)) (part), by LU elimination.
det = define(Primitive("det", "linalg", _det_impl, _det_rule, jvp=_det_jvp, vjp=_det_vjp,
                       c="gradc_det", extra={"call_args": lambda node: _batch_n(node) + [
                           ("det", "logabs", "sign").index(node.params["part"])]}))


def _phi(x):
    """The lower triangle of x with its diagonal halved (the mask in x's dtype: a float64 mask
    made float32 Cholesky derivatives float64, and a loop reading one as its float32 tangent read
    garbage in C; found by the fuzzer)."""
    n = x.shape[-1]
    return G.multiply(x, (np.tril(np.ones((n, n)), -1) + 0.5 * np.eye(n)).astype(x.dtype))


def _cholesky_jvp(t, a, out):
    linv = G.bind(inv, out)
    return G.matmul(out, _phi(G.matmul(G.matmul(linv, t[0]), G.swap_last(linv))))


def _cholesky_vjp(ct, a, out):
    # Murray (2016): gA = sym(L^-T Phi(L^T gL) L^-1) with sym(X) = (X + X^T) / 2.
    linv = G.bind(inv, out)
    g = G.matmul(G.matmul(G.swap_last(linv), _phi(G.matmul(G.swap_last(out), ct))), linv)
    return [G.multiply(G.add(g, G.swap_last(g)), 0.5)]


cholesky = define(Primitive("cholesky", "linalg", np.linalg.cholesky, _square_rule("cholesky"),
                            jvp=_cholesky_jvp, vjp=_cholesky_vjp, c="gradc_cholesky",
                            extra={"call_args": _batch_n}))


# ---- loops ---------------------------------------------------------------------------------------

from . import loop as _loop, loop_derivatives as _loop_d   # noqa: E402  (they use the table)

# A loop whose body is a Graph in params (body, length, reverse, n_carry, n_xs, select): gc.scan,
# gc.fori_loop. Its rules are graph code over the body; see loop.py.
scan = define(Primitive("scan", "loop", _loop.impl, _loop.shape_rule, jvp=_loop_d.jvp,
                        vjp=_loop_d.vjp, c="scan"))
