"""The array API standard's namespace (x.__array_namespace__(), gradc/array_api.py) against
array-api-strict as the reference: the standard's functions give the reference's values on gradc
values (traced under gc.jit on both backends, and eager), and code written against the standard
runs unchanged under gc.grad with gradients checked by finite differences."""
import os
import subprocess
import sys

import numpy as np
import pytest

import gradc as gc
from conftest import FLOAT_DTYPES, assert_close

xps = pytest.importorskip("array_api_strict")
ns = gc.tensor(0.0).__array_namespace__()

R = np.random.default_rng(0)
A = R.standard_normal((3, 4))
B = R.standard_normal((3, 4))
U = R.uniform(0.2, 0.9, (3, 4))            # domain of acos, asin, atanh, log ...
P = R.uniform(1.2, 3.0, (3, 4))            # domain of acosh
SQ = R.standard_normal((3, 3)) * 0.5 + 3 * np.eye(3)

# (name, arguments, keyword arguments): the namespace's function on these arguments
CASES = [(n, (A,), {}) for n in ("abs", "exp", "expm1", "sin", "cos", "tan", "tanh", "sinh",
                                 "cosh", "asinh", "atan", "negative", "positive", "sign", "square",
                                 "floor", "ceil", "trunc", "round", "isfinite", "isnan", "isinf",
                                 "signbit")]
CASES += [(n, (U,), {}) for n in ("sqrt", "log", "log1p", "log2", "log10", "acos", "asin",
                                  "atanh", "reciprocal")]
CASES += [("acosh", (P,), {})]
CASES += [(n, (A, B), {}) for n in ("add", "subtract", "multiply", "maximum", "minimum", "atan2",
                                    "hypot", "logaddexp", "equal", "not_equal", "less",
                                    "less_equal", "greater", "greater_equal")]
CASES += [(n, (A, U), {}) for n in ("divide", "remainder", "floor_divide")]
CASES += [("pow", (U, A), {})]
CASES += [(n, (A,), {"axis": ax, "keepdims": kd}) for n in ("sum", "prod", "mean", "max", "min")
          for ax, kd in ((None, False), (1, False), ((0, 1), True))]
CASES += [("var", (A,), {"axis": 0, "correction": 1}), ("std", (A,), {"correction": 0}),
          ("argmax", (A,), {"axis": 1}), ("argmin", (A,), {}),
          ("cumulative_sum", (A,), {"axis": 1}),
          ("cumulative_sum", (A,), {"axis": 0, "include_initial": True}),
          ("clip", (A,), {"min": -0.5, "max": 0.5}),
          ("reshape", (A,), {"shape": (4, 3)}), ("permute_dims", (A,), {"axes": (1, 0)}),
          ("matrix_transpose", (A,), {}), ("expand_dims", (A,), {"axis": 1}),
          ("flip", (A,), {"axis": 0}), ("roll", (A,), {"shift": 2, "axis": 1}),
          ("moveaxis", (A, 0, 1), {}), ("tile", (A, (2, 1)), {}), ("repeat", (A, 2), {"axis": 1}),
          ("broadcast_to", (A[:1],), {"shape": (3, 4)}), ("tril", (A,), {"k": 1}),
          ("triu", (A,), {}), ("matmul", (A, B.T), {}), ("vecdot", (A, B), {}),
          ("tensordot", (A, B), {"axes": ([1], [1])}), ("where", (A > 0, A, B), {}),
          ("concat", ([A, B],), {"axis": 1}), ("stack", ([A, B],), {"axis": 1}),
          ("squeeze", (A[:, :1],), {"axis": 1}), ("linalg.inv", (SQ,), {}),
          ("linalg.det", (SQ,), {}), ("linalg.solve", (SQ, A), {}),
          ("linalg.cholesky", (SQ @ SQ.T,), {}), ("linalg.vector_norm", (A,), {}),
          ("linalg.matrix_norm", (A,), {}), ("linalg.trace", (SQ,), {}),
          ("linalg.diagonal", (SQ,), {"offset": 1}), ("linalg.outer", (A[0], B[0]), {})]


def _fn(namespace, name):
    obj = namespace
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _map(args, convert):
    return tuple([convert(a) for a in x] if isinstance(x, list) else
                 convert(x) if isinstance(x, np.ndarray) else x for x in args)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name, args, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_namespace_matches_array_api_strict(name, args, kwargs, dtype, backend):
    args = _map(args, lambda a: a.astype(dtype) if a.dtype.kind == "f" else a)
    want = np.asarray(_fn(xps, name)(*_map(args, xps.asarray), **kwargs))
    arrays = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]

    def call(*traced):
        full = list(args)
        for i, t in zip(arrays, traced):
            full[i] = t
        return _fn(ns, name)(*full, **kwargs)

    got = gc.jit(call, backend=backend)(*[args[i] for i in arrays])
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        assert_close(got, want, dtype, name)
    else:
        np.testing.assert_array_equal(got, want, err_msg=name)


def _standard_loss(W, X, y):
    """A softmax regression loss written against the standard: any conforming namespace."""
    xp = W.__array_namespace__()
    logits = xp.matmul(X, W)
    m = xp.max(logits, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(logits - m), axis=1)) + xp.squeeze(m, axis=1)
    picked = xp.take_along_axis(logits, xp.reshape(y, (-1, 1)), axis=1)
    reg = xp.sum(xp.square(W)) * 1e-2 + xp.linalg.vector_norm(W) * 1e-3
    return xp.mean(lse - xp.squeeze(picked, axis=1)) + reg + xp.var(W, correction=1)


def test_code_written_for_the_standard_differentiates():
    r = np.random.default_rng(1)
    W, X, y = r.standard_normal((5, 3)), r.standard_normal((8, 5)), r.integers(0, 3, 8)
    want = float(_standard_loss(xps.asarray(W), xps.asarray(X), xps.asarray(y)))
    value, grad = gc.jit(gc.value_and_grad(_standard_loss))(W, X, y)
    assert abs(float(value) - want) < 1e-10
    eps, fd = 1e-6, np.zeros_like(W)
    for i in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[i] = eps
        plus, minus = (float(_standard_loss(xps.asarray(W + s * e), xps.asarray(X), xps.asarray(y)))
                       for s in (1, -1))
        fd[i] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_scipy_functions_dispatch_through_the_namespace():
    """SciPy with SCIPY_ARRAY_API=1 (set before SciPy is imported: a subprocess)."""
    pytest.importorskip("scipy")
    code = ("import numpy as np, gradc as gc, scipy.special as sp\n"
            "x = np.random.default_rng(0).standard_normal((3, 4))\n"
            "f = lambda x: gc.sum(sp.logsumexp(x, axis=1))\n"
            "v, g = gc.jit(gc.value_and_grad(f))(x)\n"
            "e = np.exp(x - x.max(1, keepdims=True))\n"
            "assert abs(v - f(x)) < 1e-12, v\n"
            "assert np.allclose(g, e / e.sum(1, keepdims=True), rtol=1e-12), g\n"
            "print('ok')\n")
    env = dict(os.environ, SCIPY_ARRAY_API="1",
               PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(gc.__file__))]
                                          + sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_reductions_in_a_given_dtype_and_vecdot_checks():
    """The three array-API-suite failures of gradc's own functions (bench/array_api_tests.sh)."""
    import gradc.array_api as xp
    assert xp.sum(np.arange(3, dtype=np.int64), dtype=np.int32).dtype == np.int32
    assert xp.prod(np.arange(1, 4, dtype=np.int64), dtype=np.int32).dtype == np.int32
    assert xp.vecdot(np.ones((2, 3), np.int32), np.ones(3, np.int32)).dtype == np.int32
    with pytest.raises(ValueError, match="contracted axis"):
        xp.vecdot(np.ones((2, 3)), np.ones(4))


def test_tensordot_over_zero_size_axes():
    """Found by the array API test suite: summing over an axis of length 0 reshaped to (-1, 0)."""
    for a, b, axes in [(np.zeros((3, 0)), np.zeros((0, 4)), 1), (np.zeros((0, 0)), np.zeros((0, 0)), 2)]:
        want = np.tensordot(a, b, axes)
        for got in (gc.tensordot(a, b, axes), gc.jit(lambda a, b: gc.tensordot(a, b, axes))(a, b)):
            assert got.shape == want.shape
            np.testing.assert_array_equal(got, want)
