"""The public surface, derived from each op's one entry: a composite registers itself with `@export`
where it is defined, an elementwise primitive through its `numpy` field (ops.py makes its function).
From these records come the `gc.<name>` exports, the NumPy ufuncs and functions dispatched to gradc
on traced values (methods.py) and the list of supported NumPy functions (`gc.supported()`)."""
import numpy as np

PUBLIC = {}       # gc.<name> -> the gradc function
UFUNCS = {}       # NumPy ufunc name (np.exp.__name__) -> the gradc function
FUNCTIONS = {}    # NumPy function path ("sum", "linalg.norm") -> callable with NumPy's signature


def export(*numpy, ufunc=(), name=None, public=True, numpy_call=None, example=None, like=None):
    """Registers fn as gc.<name> (unless public=False), as the target of the NumPy functions named
    in `numpy` ("mean", "linalg.norm") and of the ufuncs named in `ufunc`. `numpy_call(fn)` adapts
    fn to NumPy's signature where the two differ (out=, dtype= ...). `example` (the arguments of a
    call, as Python source) adds a docstring example that compares gc.<name> with np.<like> (by
    default the first NumPy name) on those arguments."""
    def register(fn):
        key = name or fn.__name__
        if example is not None:
            _add_example(fn, key, like or (numpy[0] if numpy else (
                ufunc if isinstance(ufunc, str) else ufunc[0])), example)
        if public:
            assert key not in PUBLIC or PUBLIC[key] is fn, f"gc.{key} exported twice"
            PUBLIC[key] = fn
        for u in (ufunc,) if isinstance(ufunc, str) else ufunc:
            UFUNCS[u] = fn
        for n in numpy:
            FUNCTIONS[n] = numpy_call(fn) if numpy_call is not None else fn
        return fn
    return register


def _add_example(fn, name, numpy_name, args):
    """Appends a doctest comparing gc.<name>(args) with np.<numpy_name>(args) (lists of arrays
    compare element by element)."""
    doc = (fn.__doc__ or f"As numpy.{numpy_name}.").rstrip()
    fn.__doc__ = (f"{doc}\n\n    >>> import numpy as np, gradc as gc\n"
                  f"    >>> got, want = gc.{name}({args}), np.{numpy_name}({args})\n"
                  f"    >>> all(np.allclose(g, w) for g, w in zip(np.atleast_1d(got), "
                  f"np.atleast_1d(want)))\n    True\n")


def numpy_object(path):
    """np.<path> ("linalg.norm" -> np.linalg.norm), or None where this NumPy lacks it."""
    obj = np
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return getattr(obj, "_gradc_numpy", obj)     # NumPy's own under gradc's list wrappers


def numpy_reduction(fn):
    """Adapts NumPy's reduction signature (x, axis=None, dtype=None, out=None, keepdims=False)."""
    def call(x, axis=None, dtype=None, out=None, keepdims=False, **rest):
        if out is not None or dtype is not None or rest:
            raise NotImplementedError(f"gradc does not implement np.{fn.__name__} with out=, "
                                      f"dtype= or {sorted(rest)} arguments")
        return fn(x, axis, keepdims)
    return call


def supported():
    """Every supported name: gc.<function>, np.<function> and np.<ufunc> on traced values and
    gc.Tensor, and x.<method or attribute>; generated from the op records, so it cannot drift.

    >>> "np.var" in gc.supported()
    True
    """
    from .core import Tracer
    from .methods import _UFUNC_METHODS, ArrayMethods, _tables
    ufuncs, functions = _tables()
    names = {f"gc.{n}" for n in PUBLIC}
    names |= {f"np.{n}" for n in ufuncs}
    names |= {f"np.{u}.{m}" for u, m in _UFUNC_METHODS}
    names |= {f"np.{p}" for p in FUNCTIONS if numpy_object(p) is not None}
    names |= {"np.shape", "np.ndim", "np.size"}
    members = {n for cls in (ArrayMethods, Tracer) for n in vars(cls) if not n.startswith("_")}
    names |= {f"x.{n}" for n in members - {"node", "trace", "weak"}}
    names |= {f"x.{n}" for n in ("__setitem__", "__mod__", "__floordiv__", "__round__")}
    return sorted(names)


def supported_text():
    """The text of gradc/SUPPORTED.md (python -m gradc.registry > gradc/SUPPORTED.md)."""
    groups = {"gc.": "gradc functions (`gc.<name>`)",
              "np.": "NumPy functions and ufuncs that dispatch to gradc on traced values and "
                     "`gc.Tensor` (`np.<name>`)",
              "x.": "Methods, attributes and operators of traced values and `gc.Tensor`"}
    lines = ["# What gradc implements", "",
             "Generated from gradc's op records by `python -m gradc.registry`; a test checks that "
             "this file is current. Anything else raises NotImplementedError naming itself.", ""]
    names = supported()
    for prefix, title in groups.items():
        lines += [f"## {title}", ""]
        lines += [f"- `{n}`" for n in names if n.startswith(prefix)]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    from gradc.registry import supported_text as _text    # the package's registry, filled
    print(_text(), end="")
