"""A failing program as a script a person can paste: plain numpy + gradc code that computes the
failing part with backend="numpy" (expected) and backend="c" (got), prints both, and prints
REPRODUCED when they disagree or the call raises."""
import numpy as np

from .program import array_text, run_eager

HARNESS = '''
def dot(outs, cs):
    total = 0.0
    for o, c in zip(outs, cs):
        total = total + gc.sum(o * c)
    return total


def compute(xs, ts, cs):
{body}

def leaves(tree):
    return [np.asarray(x) for x in gc.tree_leaves(tree)]


def each_dtype(*per_dtype):
    return tuple(compute(*a) for a in per_dtype)


xs = [{xs}]
ts = [{ts}]
cs = [{cs}]
{call}
try:
    got = {got}
except Exception as e:
    print("expected:", expected)
    print("got: an exception:", type(e).__name__, e)
    print("REPRODUCED")
    raise SystemExit(0)
print("expected:", expected)
print("got:     ", got)
bad = [i for i, (g, e) in enumerate(zip(leaves(got), leaves(expected)))
       if g.dtype != e.dtype or not np.allclose(g, e, rtol=1e-4 if g.dtype == np.float32 else 1e-7,
                                                atol=1e-4 if g.dtype == np.float32 else 1e-7)]
print("REPRODUCED: results differ at leaves", bad if bad else None) if bad else print("agree")
'''

BODIES = {
    "output": "    return f(*xs)\n",
    "value": "    return gc.value_and_grad(lambda xs: dot(f(*xs), cs))(xs)\n",
    "grad": "    return gc.value_and_grad(lambda xs: dot(f(*xs), cs))(xs)\n",
    "jvp": "    return gc.jvp(f, tuple(xs), tuple(ts))\n",
    "hvp": ("    inner = gc.grad(lambda xs: dot(f(*xs), cs))\n"
            "    return gc.grad(lambda xs: dot(inner(xs), ts))(xs)\n"),
    "all": ("    outs = f(*xs)\n"
            "    value, grads = gc.value_and_grad(lambda xs: dot(f(*xs), cs))(xs)\n"
            "    _, jt = gc.jvp(f, tuple(xs), tuple(ts))\n"
            "    return outs, value, grads, jt\n"),
}
HVP = "gc.grad(lambda xs: dot(gc.grad(lambda xs: dot(f(*xs), cs))(xs), ts))(xs)"
BODIES["all+hvp"] = BODIES["all"].replace("return outs, value, grads, jt",
                                          "return outs, value, grads, jt, " + HVP)


def focus(kind):
    """(part, dtype) a failure kind names: 'wrong grad (c float32)' -> ('grad', 'float32')."""
    part = next((p for p in ("output", "value", "grad", "jvp", "hvp") if f"wrong {p} " in kind),
                "all")
    dtype = "float32" if "float32" in kind else "float64"
    return part, dtype


def text(program, kind, detail="", full=False):
    """The script for a program that failed with outcome `kind`: the failing part alone, or with
    `full` everything the fuzzer compiled together (both dtypes, all parts, in one kernel)."""
    part, dtype = focus(kind)
    dtypes = [dtype]
    if full:
        part, dtypes = "all+hvp" if program.hvp else "all", ["float64", "float32"]
    xs = [v for _, v in program.inputs]
    outs = run_eager(program, xs)
    rng = np.random.default_rng(program.seed)
    cs = [rng.uniform(-1, 1, o.shape) for o in outs]
    ts = [rng.uniform(-1, 1, x.shape) for x in xs]
    head = ('import os\nos.environ.setdefault("GRADC_POISON", "1")   # unwritten outputs read NaN\n'
            f"# gradc fuzz finding: {kind}\n# {detail[:300]}\n"
            f"# (seed {program.seed}; the batch split was forced: {program.split})\n")
    if program.split:
        head += ("from gradc.cbackend import backend as _b, split as _s\n"
                 "_b.default_threads = lambda graph: 2          # force the split: two blocks\n"
                 "_s.choose = lambda graph, threads: _s.find_split(graph, threads)\n")
    if "batch split" in kind:      # as the checker: value and grad alone, float64, cs constants
        call = ("def split_vg(xs):\n"
                "    return gc.value_and_grad(lambda xs: dot(f(*xs), cs))(xs)\n\n\n"
                "args = [xs]\nexpected = gc.jit(split_vg, backend=\"numpy\")(*args)")
        got = "gc.jit(split_vg)(*args)"
    else:
        call = ("args = [[[a.astype(dtype) for a in part] for part in (xs, ts, cs)] for dtype in "
                f"{dtypes!r}]\nexpected = gc.jit(each_dtype, backend=\"numpy\")(*args)")
        # an "(eager)" finding: the un-jitted transforms disagreed with the reference
        got = "each_dtype(*args)" if "(eager)" in kind else "gc.jit(each_dtype)(*args)"
    harness = HARNESS.format(body=BODIES[part], call=call, got=got,
                             xs=", ".join(map(array_text, xs)),
                             ts=", ".join(map(array_text, ts)), cs=", ".join(map(array_text, cs)),
                             )
    return (head + "import numpy as np\nimport gradc as gc\n\n\n" + program.source()
            + "\n" + harness)
