"""What NumPy code gradc runs on traced values and gc.Tensor: the names NumPy's dispatch reaches
through gradc's tables (`methods.py`), listed for the documentation's supported-functions page."""
from __future__ import annotations


def numpy_names() -> dict:
    """{"ufuncs": ["np.add", ...], "functions": ["np.sum", ...]}, sorted: the NumPy ufuncs and
    functions that dispatch to gradc (through __array_ufunc__ and __array_function__).

    >>> import gradc.support
    >>> names = gradc.support.numpy_names()
    >>> "np.exp" in names["ufuncs"], "np.sum" in names["functions"]
    (True, True)
    """
    from . import methods
    ufuncs, functions = methods._tables()
    listed = {f"np.{name}" for name in ufuncs}
    calls = set()
    for fn in functions:
        module = (getattr(fn, "__module__", None) or "numpy").replace("numpy", "np")
        calls.add(f"{module.split('._')[0]}.{fn.__name__}")
    return {"ufuncs": sorted(listed), "functions": sorted(calls)}


def numpy_names_markdown() -> str:
    """The supported NumPy names as Markdown tables (the docs' numpy-functions page)."""
    names = numpy_names()
    lines = [f"**{len(names['ufuncs'])} ufuncs** (elementwise; also the operators `+ - * / ** @`, "
             "comparisons, `&`, `|` and `~` on masks):", "", "| ufunc | ufunc | ufunc | ufunc |",
             "|---|---|---|---|"]
    lines += _rows(names["ufuncs"], 4)
    lines += ["", f"**{len(names['functions'])} functions:**", "",
              "| function | function | function | function |", "|---|---|---|---|"]
    lines += _rows(names["functions"], 4)
    return "\n".join(lines) + "\n"


def _rows(names, columns):
    rows = []
    for i in range(0, len(names), columns):
        cells = [f"`{n}`" for n in names[i:i + columns]]
        rows.append("| " + " | ".join(cells + [""] * (columns - len(cells))) + " |")
    return rows
