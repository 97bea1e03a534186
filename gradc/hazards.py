"""The gradient-hazard lint (API.md section 11): patterns of the traced graph whose gradient (or
value) is NaN, Inf or needlessly inaccurate at some inputs, found at trace time.

The hazards are one table, RULES, one row each: a name, the primitive the pattern ends at, a
matcher over the graph, what goes wrong and the fix. Only the user's own nodes are matched (not
the nodes derivative rules add), so the gradient graph of a safe form never trips a rule."""
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import GradientHazardWarning

VIEWS = ("reshape", "broadcast_to", "transpose", "slice", "gather", "cast", "stop_gradient")
ELEMENTWISE = ("unary", "binary", "ternary")
# Ops whose derivative is infinite or NaN somewhere: the operand that decides where, and when a
# range [lo, hi] of that operand keeps clear of it.
_POSITIVE = lambda lo, hi: lo > 0                                     # noqa: E731
_NONZERO = lambda lo, hi: lo > 0 or hi < 0                            # noqa: E731
_OPEN_UNIT = lambda lo, hi: -1 < lo and hi < 1                        # noqa: E731
SINGULAR = {"sqrt": (0, _POSITIVE), "log": (0, _POSITIVE), "log2": (0, _POSITIVE),
            "log10": (0, _POSITIVE), "log1p": (0, lambda lo, hi: lo > -1), "div": (1, _NONZERO),
            "pow": (0, _POSITIVE), "reciprocal": (0, _NONZERO), "cbrt": (0, _NONZERO),
            "arcsin": (0, _OPEN_UNIT), "arccos": (0, _OPEN_UNIT), "arctanh": (0, _OPEN_UNIT),
            "arccosh": (0, lambda lo, hi: lo > 1)}


def _user_node(node):
    """An operation the user wrote: not one a derivative rule or a gradc composite made (so
    np.linalg.norm's sqrt(sum(x * x)) is not reported at every call of it)."""
    return (node.phase == "fwd" and getattr(node.phase, "rule", None) is None
            and not getattr(node.phase, "library", False))


def _strip(node, skip=VIEWS):
    """node with views (reshape, broadcast, slicing, indexing, casts) peeled off."""
    while node.prim.name in skip and node.inputs:
        node = node.inputs[0]
    return node


def _const_value(node):
    node = _strip(node, ("reshape", "broadcast_to", "cast"))
    if node.prim.name != "const" or node.params["value"].size == 0:
        return None
    value = node.params["value"].reshape(-1)
    return value[0].item() if (value == value[0]).all() else None


def _is_max_shift(node):
    """x - max(x) (the stable shift softmax and logsumexp use)."""
    return node.prim.name == "sub" and _strip(node.inputs[1]).prim.name == "max"


def _softmax_div(node):
    """node (views peeled) is exp(z) / sum(exp(z)): returns (div, exp) or None."""
    node = _strip(node)
    if node.prim.name != "div":
        return None
    num, den = _strip(node.inputs[0]), _strip(node.inputs[1])
    if num.prim.name == "exp" and den.prim.name == "sum" and _strip(den.inputs[0]) is num:
        return node, num
    return None


# ---- the matchers: node -> a detail string (a finding) or None ------------------------------------

def _log_of_softmax(node):
    return "log of exp(z) / sum(exp(z))" if _softmax_div(node.inputs[0]) else None


def _log_of_sigmoid(node):
    x = _strip(node.inputs[0])
    if x.prim.name == "sigmoid":
        return "log(sigmoid(x))"
    if x.prim.name == "sub" and _strip(x.inputs[1]).prim.name == "sigmoid" \
            and _const_value(x.inputs[0]) == 1:
        return "log(1 - sigmoid(x))"
    return None


def _unshifted_softmax(node):
    found = _softmax_div(node)
    if found is None or _is_max_shift(_strip(found[1].inputs[0])):
        return None
    return "exp(z) / sum(exp(z)) without subtracting max(z)"


def _norm_at_zero(node):
    s = _strip(node.inputs[0], ("reshape", "broadcast_to"))
    if s.prim.name != "sum":
        return None
    sq = _strip(s.inputs[0], ("reshape", "broadcast_to", "transpose"))
    if sq.prim.name == "mul" and sq.inputs[0] is sq.inputs[1]:
        return "sqrt(sum(x * x))"
    if sq.prim.name == "pow" and _const_value(sq.inputs[1]) == 2:
        return "sqrt(sum(x ** 2))"
    return None


def _cone(node, stop_at_where):
    """node and the nodes it is computed from through elementwise ops and views."""
    seen, stack, out = set(), [node], []
    while stack:
        n = stack.pop()
        if n.id in seen:
            continue
        seen.add(n.id)
        out.append(n)
        if stop_at_where and n.prim.name == "where":
            continue       # a where inside the branch may be the guard (the double-where trick)
        if n.prim.kind in ELEMENTWISE or n.prim.name in VIEWS:
            stack += n.inputs
    return out


def _range(node, depth=0):
    """Bounds [lo, hi] of a node's values known from its form alone (abs(x) + 1 >= 1)."""
    inf = float("inf")
    name = node.prim.name
    if depth > 32:
        return -inf, inf
    if name == "const":
        value = node.params["value"]
        return (float(value.min()), float(value.max())) if value.size else (-inf, inf)
    if name in ("reshape", "broadcast_to", "transpose", "slice", "stop_gradient"):
        return _range(node.inputs[0], depth + 1)
    r = [_range(i, depth + 1) for i in node.inputs] if name in _RANGE_RULES else None
    return _RANGE_RULES[name](node, *r) if r is not None else (-inf, inf)


def _mul_range(node, a, b):
    if node.inputs[0] is node.inputs[1]:                 # x * x
        lo = 0.0 if a[0] <= 0 <= a[1] else min(a[0] ** 2, a[1] ** 2)
        return lo, max(a[0] ** 2, a[1] ** 2)
    with np.errstate(invalid="ignore"):
        products = [x * y for x in a for y in b]
    return (float(np.nanmin(products)), float(np.nanmax(products))) \
        if not np.isnan(products).all() else (-np.inf, np.inf)


_RANGE_RULES = {
    "add": lambda n, a, b: (a[0] + b[0], a[1] + b[1]),
    "sub": lambda n, a, b: (a[0] - b[1], a[1] - b[0]),
    "neg": lambda n, a: (-a[1], -a[0]),
    "mul": _mul_range,
    "abs": lambda n, a: (0.0 if a[0] <= 0 <= a[1] else min(abs(a[0]), abs(a[1])),
                         max(abs(a[0]), abs(a[1]))),
    "exp": lambda n, a: (0.0, float(np.exp(a[1]))),         # 0: exp underflows
    "sigmoid": lambda n, a: (0.0, 1.0),
    "softplus": lambda n, a: (0.0, float("inf")),
    "maximum": lambda n, a, b: (max(a[0], b[0]), max(a[1], b[1])),
    "minimum": lambda n, a, b: (min(a[0], b[0]), min(a[1], b[1])),
    "where": lambda n, c, a, b: (min(a[0], b[0]), max(a[1], b[1])),
}


def _unsafe_branch(node):
    """where(c(x), f(x), ...) where f is singular where c masks it: the masked entries still get
    0 * f'(x) = 0 * inf = nan in the gradient."""
    cond = _strip(node.inputs[0])
    if cond.prim.kind != "compare":
        return None
    tested = {_strip(i).id for i in cond.inputs if _const_value(i) is None}
    for branch in node.inputs[1:]:
        for n in _cone(branch, stop_at_where=False):
            if n.prim.name not in SINGULAR or not _user_node(n):
                continue
            operand, safe = SINGULAR[n.prim.name]
            if n.prim.name == "pow" and _const_value(n.inputs[1]) in (0, 1, 2, 3, 4):
                continue
            if safe(*_range(n.inputs[operand])):
                continue
            if any(m.id in tested for m in _cone(n.inputs[operand], stop_at_where=True)):
                at = f" (at {n.loc})" if n.loc != node.loc else ""
                return f"{n.prim.name}{at} in a branch of where({cond.prim.name}(...), ...)"
    return None


@dataclass(frozen=True)
class Rule:
    name: str
    prim: str         # the primitive the pattern ends at
    match: object     # node -> detail or None
    problem: str
    fix: str


RULES = [
    Rule("where-unsafe-branch", "where", _unsafe_branch,
         "the gradient is NaN at the masked entries (0 * inf): where() still differentiates the "
         "branch it does not pick",
         "make the branch safe where it is masked: "
         "gc.where(x > 0, gc.sqrt(gc.where(x > 0, x, 1)), 0)"),
    Rule("log-softmax", "log", _log_of_softmax,
         "log of a softmax underflows to -inf (and a NaN gradient) for confident predictions",
         "use gc.nn.log_softmax(z) (or gc.nn.cross_entropy)"),
    Rule("log-sigmoid", "log", _log_of_sigmoid,
         "log(sigmoid(x)) is -inf for x below about -745 (-104 in float32), log(1 - sigmoid(x)) "
         "for x above 37 (17)",
         "use gc.nn.log_sigmoid(x) (log(1 - sigmoid(x)) = log_sigmoid(-x)) or "
         "gc.nn.binary_cross_entropy_with_logits"),
    Rule("softmax-by-hand", "div", _unshifted_softmax,
         "exp overflows to inf (and inf / inf = nan) for logits above about 709 (88 in float32)",
         "use gc.nn.softmax(z), or subtract z.max(axis, keepdims=True) first"),
    Rule("norm-at-zero", "sqrt", _norm_at_zero,
         "the gradient x / sqrt(sum(x**2)) is 0 / 0 = nan where x is all zero",
         "add a small constant inside, gc.sqrt(gc.sum(x ** 2) + 1e-12), or guard the zero case "
         "with the double-where trick"),
]


@dataclass(frozen=True)
class Finding:
    """One hazard at one line of the user's code."""
    rule: str
    loc: str
    detail: str
    problem: str
    fix: str

    @property
    def message(self):
        return f"{self.detail}: {self.problem}. Fix: {self.fix}. [{self.rule}]"

    def __str__(self):
        return f"{self.loc}: {self.message}"


def lint_graph(graph):
    """The findings of RULES on a traced graph, one per rule and line, in schedule order."""
    return lint_nodes(graph.nodes)


def lint_nodes(nodes):
    """The findings of RULES on nodes (each after its inputs), one per rule and line.
    Tracing records every node it makes, so the forward nodes a gradient does not need are seen."""
    by_prim = {}
    for rule in RULES:
        by_prim.setdefault(rule.prim, []).append(rule)
    findings, seen = [], set()
    for node in nodes:
        if not _user_node(node):
            continue
        for rule in by_prim.get(node.prim.name, ()):
            if (rule.name, node.loc) in seen:
                continue
            detail = rule.match(node)
            if detail:
                seen.add((rule.name, node.loc))
                findings.append(Finding(rule.name, node.loc, detail, rule.problem, rule.fix))
    return findings


def warn(findings, already):
    """Emits a GradientHazardWarning per finding not in `already` (a set it updates), pointing
    at the user's file and line."""
    for f in findings:
        if (f.rule, f.loc) in already:
            continue
        already.add((f.rule, f.loc))
        filename, _, line = f.loc.rpartition(":")
        warnings.warn_explicit(f.message, GradientHazardWarning, filename or f.loc,
                               int(line) if line.isdigit() else 0)


def lint(fn, *args, static_argnums=(), **kwargs):
    """The gradient hazards of fn traced for args (arrays or gc.Spec), as a list of findings,
    without running anything.

    >>> gc.lint(lambda x: gc.sum(gc.where(x > 0, gc.sqrt(x), 0.0)), gc.Spec((3,), "float64"))
    [Finding(rule='where-unsafe-branch', ...)]
    """
    from .jit import Jitted
    jitted = Jitted(fn, static_argnums, backend="numpy")
    jitted._hazards_warned = None        # return the findings, do not warn
    return lint_nodes(jitted.lower(*args, **kwargs).traced_nodes)
