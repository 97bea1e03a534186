"""The public surface: `gc.__all__` is the API, nothing else leaks out of the package, and every
public name has a docstring with a short example that runs (doctest, on an isolated cache)."""
import doctest
import types

import numpy as np
import pytest

import gradc as gc

# NumPy's scalar types and the primitive table are data, documented where they come from.
DATA = {"float32", "float64", "int32", "int64", "PRIMITIVES"}
SUBMODULES = {"optim": gc.optim, "random": gc.random, "nn": gc.nn}


def public_objects():
    """(qualified name, object) of every documented public name: gc's and its submodules'."""
    objects = [(f"gc.{n}", getattr(gc, n)) for n in gc.__all__ if n not in DATA]
    for prefix, module in SUBMODULES.items():
        objects += [(f"gc.{prefix}.{n}", getattr(module, n)) for n in module.__all__]
    return objects


def test_all_names_exist_and_nothing_else_leaks():
    assert not hasattr(gc, "np"), "numpy leaks out as gc.np"
    missing = [n for n in gc.__all__ if not hasattr(gc, n)]
    assert not missing
    extra = [n for n in dir(gc) if not n.startswith("_") and n not in gc.__all__
             and not isinstance(getattr(gc, n), types.ModuleType)]
    assert not extra, f"public names of gradc missing from gradc.__all__: {extra}"
    for prefix, module in SUBMODULES.items():
        assert prefix in gc.__all__
        assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize("name, obj", public_objects(), ids=[n for n, _ in public_objects()])
def test_docstring_has_an_example_that_runs(name, obj, isolated_cache):
    tests = [t for t in doctest.DocTestFinder(recurse=False).find(
        obj, name, globs={"np": np, "gc": gc}) if t.examples]
    assert tests, f"{name} has no docstring with a >>> example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{name}: {runner.failures} failing example(s) (output above)"


def test_the_package_is_typed():
    from pathlib import Path
    assert (Path(gc.__file__).parent / "py.typed").exists()
