"""np.array / np.asarray / np.sum / np.mean / np.stack of Python lists holding traced arrays or
gc.Tensor (API.md section 8; gradc/numpy_lists.py): plain NumPy functions, run unchanged through
gc.grad, gc.jit on both backends and gc.Tensor.backward(); values against plain NumPy, gradients
against central finite differences, the C backend against the interpreter, both float dtypes."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc as gc
from conftest import FLOAT_DTYPES, assert_close

W = np.linspace(-1.0, 1.5, 24)      # fixed weights: no symmetric sum hides a wrong gradient


def _w(a):
    return np.reshape(W[:np.size(a)], np.shape(a))


# Each takes x of shape (2, 3) and returns a scalar; all plain NumPy.
CASES = {
    "array": lambda x: np.sum(_w(np.zeros((2, 2, 3))) * np.array([x, x * 2]) ** 2),
    "asarray_nested": lambda x: np.sum(_w(np.zeros((2, 2, 2, 3)))
                                       * np.asarray([[x, 1.0 - x], [x * x, np.sin(x)]])),
    "mean": lambda x: np.mean([x, x + 2]) * np.mean([x * x, np.exp(x)]),
    "mean_axis": lambda x: np.sum(_w(x) * np.mean([x, x * x], axis=0)),
    "sum_axis0": lambda x: np.sum(_w(x) * np.sum([x, x ** 3], axis=0)),
    "stack_nested": lambda x: np.sum(_w(np.zeros((2, 2, 3))) * np.stack([[x[0], x[1]],
                                                                         [x[1] * 2, x[0]]])),
    "scalars_and_numbers": lambda x: np.sum(np.array([x[0, 0], 2.0, x[1, 2] * 3]) ** 2),
    "array_ndmin": lambda x: np.sum(np.array([x[0], x[1] ** 2], ndmin=4)[0, 0] * _w(x)),
    "var_of_list": lambda x: np.var([x[0], 3 * x[1]]),
}


def _x(dtype):
    return np.linspace(0.3, 1.4, 6).reshape(2, 3).astype(dtype)


def _fd_grad(f, x, eps=1e-6):
    x = x.astype(np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_lists_of_traced_arrays(name, dtype, isolated_cache):
    f = CASES[name]
    x = _x(dtype)
    before = x.copy()
    fd = _fd_grad(f, x)
    tol = 1e-6 if dtype == np.float64 else 2e-3
    g = gc.grad(f)(x)
    np.testing.assert_allclose(g, fd, rtol=tol, atol=tol, err_msg=f"{name}: gc.grad vs FD")
    interp = gc.jit(gc.value_and_grad(f), backend="numpy")(x)
    compiled = gc.jit(gc.value_and_grad(f), backend="c")(x)
    assert_close(interp[0], np.asarray(f(x.astype(np.float64)), dtype), dtype, f"{name} value")
    np.testing.assert_allclose(interp[1], fd, rtol=tol, atol=tol, err_msg=f"{name}: jit vs FD")
    for got, want in zip(compiled, interp):
        assert_close(got, want, dtype, f"{name}: C backend vs interpreter")
    t = gc.tensor(x, requires_grad=True)
    f(t).backward()
    assert_close(t.grad, g, dtype, f"{name}: gc.Tensor.backward vs gc.grad")
    np.testing.assert_array_equal(x, before)            # inputs are never modified


def test_one_stack_node_and_plain_lists_untouched():
    """A list of traced arrays is one stack (no per-element graph); lists of numbers and arrays
    still go to NumPy's own functions, with NumPy's dtypes."""
    def f(x):
        plain = np.array([[1, 2], [3, 4]])
        assert plain.dtype == np.int64 and isinstance(plain, np.ndarray)
        assert isinstance(np.sum([1.0, 2.0]), np.floating)
        assert isinstance(np.asarray((np.ones(2), np.zeros(2))), np.ndarray)
        return np.sum(np.array([x, x]))
    text = gc.jit(f, backend="numpy").lower(np.ones(3)).as_text()
    assert text.count("concatenate") == 1 and "slice" not in text, text


_RESTORE_CHECK = textwrap.dedent("""
    import threading
    import numpy as np
    import gradc as gc
    ORIGINAL = {n: getattr(np, n) for n in ("array", "asarray", "sum", "mean", "stack")}

    def restored():
        return all(getattr(np, n) is f for n, f in ORIGINAL.items())

    f = lambda x: np.sum(np.array([x, 2 * x]))
    gc.grad(f)(np.ones(3))
    assert restored(), "after a trace"
    try:
        gc.grad(lambda x: np.sum(np.array([x, x])) + undefined_name)(np.ones(3))
    except NameError:
        pass
    assert restored(), "after an error while tracing"
    gc.grad(lambda x: gc.grad(f)(x).sum() * np.sum(np.asarray([x, x])))(np.ones(3))
    assert restored(), "after nested traces"
    errors = []

    def work(i):
        try:
            for _ in range(20):
                g = gc.grad(lambda x: np.mean([x, x * i]))(np.ones(4))
                assert np.allclose(g, (1 + i) / 8), g
                assert np.array([1.0, 2.0]).dtype == np.float64
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert restored(), "after concurrent traces in threads"
    from numpy import array as bound_array      # bound before tracing: NumPy's own, a clear error
    try:
        gc.grad(lambda x: np.sum(bound_array([x, x])))(np.ones(2))
        raise AssertionError("no error")
    except gc.ConcretizationError as e:
        assert "from numpy import array" in str(e), e
    gc.tensor([1.0], requires_grad=True)
    assert np.array is not ORIGINAL["array"], "eager autodiff keeps the wrappers"
    assert np.array.__wrapped__ is ORIGINAL["array"] and np.array.__name__ == "array"
    print("ok")
""")


def test_numpy_restored_on_every_exit_path():
    """NumPy's own functions are back after every trace (normal exit, error, nested, threads);
    a name bound before tracing gets a clear error. A fresh process: eager autodiff (gc.Tensor
    requiring grad) keeps the wrappers installed for good."""
    out = subprocess.run([sys.executable, "-c", _RESTORE_CHECK], capture_output=True, text=True,
                         cwd=str(__import__("pathlib").Path(__file__).parent.parent), timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_item_assignment_into_an_argument():
    """x[0] = v inside the function: functional underneath, the caller's array unchanged, the
    assigned position gets zero gradient (API.md section 8)."""
    def f(x):
        x[0] = 3.0
        x[1:] += x[0] * x[1:]
        return np.sum(x * x)

    for dtype in FLOAT_DTYPES:
        x = np.array([0.5, -1.0, 2.0], dtype)
        before = x.copy()
        y = x.astype(np.float64)
        want = 2 * (y[1:] * 4) * 4            # d/dx_i (4 x_i)^2, i >= 1; x[0] is overwritten
        want = np.concatenate([[0.0], want])
        assert_close(gc.grad(f)(x), want.astype(dtype), dtype, "gc.grad")
        for backend in ("numpy", "c"):
            value, g = gc.jit(gc.value_and_grad(f), backend=backend)(x)
            assert_close(g, want.astype(dtype), dtype, backend)
            assert_close(value, np.sum((y * 4)[1:] ** 2) + 9.0, dtype, backend)
        np.testing.assert_array_equal(x, before)
