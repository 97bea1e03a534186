"""Singular and non-positive-definite matrices (API.md section 8): np.linalg.inv / solve /
cholesky raise NumPy's LinAlgError naming the op and the user's line on both backends (the C
kernels return GRADC_ERR_SINGULAR / GRADC_ERR_NOT_PD), batched too; det and slogdet of a singular
matrix are 0 and (0, -inf), as NumPy's."""
import numpy as np
import pytest

import gradc as gc
from conftest import FLOAT_DTYPES

SINGULAR = np.array([[1.0, 2.0], [2.0, 4.0]])
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])


def f_inv(a):
    return np.linalg.inv(a)                                   # LINE inv


def f_solve(a):
    return np.linalg.solve(a, np.ones(a.shape[:-1] + (1,)))    # LINE solve


def f_cholesky(a):
    return np.linalg.cholesky(a)                              # LINE cholesky


CASES = [(f_inv, SINGULAR, "inv", "Singular matrix"),
         (f_solve, SINGULAR, "solve", "Singular matrix"),
         (f_cholesky, NOT_PD, "cholesky", "Matrix is not positive definite")]


def _line(tag):
    lines = open(__file__).read().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.endswith(f"# LINE {tag}"))


@pytest.mark.parametrize("batched", [False, True], ids=["one", "batched"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("fn, bad, name, detail", CASES, ids=[c[2] for c in CASES])
def test_bad_matrix_raises_linalg_error(fn, bad, name, detail, dtype, batched, backend,
                                        isolated_cache):
    good = np.array([[3.0, 1.0], [1.0, 2.0]])
    a = (np.stack([good, bad, good]) if batched else bad).astype(dtype)
    with pytest.raises(np.linalg.LinAlgError):
        fn(a)                                                 # NumPy itself
    where = f"np.linalg.{name} at test_linalg_errors.py:{_line(name)}: {detail}"
    jitted = gc.jit(fn, backend=backend)
    for _ in range(2):          # the second call takes the native fast path where there is one
        with pytest.raises(np.linalg.LinAlgError, match=where):
            jitted(a)
    ok = (np.stack([good] * 3) if batched else good).astype(dtype)
    np.testing.assert_allclose(jitted(ok), fn(ok), rtol=1e-5)    # the same kernel still works
    # The gradient's own solve may fail first: the op and the line are named all the same.
    with pytest.raises(np.linalg.LinAlgError, match=where.replace(": ", ".*")):
        gc.jit(gc.grad(lambda a: np.sum(fn(a))), backend=backend)(a)


def test_named_batch_size_raises_linalg_error(backend, isolated_cache):
    """A kernel with a named batch size (dynamic=True) names the op too."""
    jitted = gc.jit(f_inv, backend=backend, dynamic=True)
    jitted(np.stack([np.eye(2)] * 3))
    with pytest.raises(np.linalg.LinAlgError, match=f"np.linalg.inv at .*:{_line('inv')}: "):
        jitted(np.stack([np.eye(2), SINGULAR, np.eye(2), np.eye(2)]))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
def test_det_and_slogdet_of_singular_matrix_as_numpy(dtype, backend, isolated_cache):
    a = np.stack([SINGULAR, np.zeros((2, 2)), np.eye(2)]).astype(dtype)
    det, (sign, logabs) = gc.jit(lambda a: (np.linalg.det(a), np.linalg.slogdet(a)),
                                 backend=backend)(a)
    want_sign, want_logabs = np.linalg.slogdet(a)
    np.testing.assert_array_equal(det, np.linalg.det(a))
    np.testing.assert_array_equal(sign, want_sign)
    np.testing.assert_array_equal(logabs, want_logabs)


def test_solve_takes_b_as_numpy_2_does():
    """b is a vector only when it is 1-D: a (3, 2) b against (3, 2, 2) matrices is an error in
    NumPy 2 (not a batch of vectors), and in gradc."""
    a, b = np.stack([np.eye(2)] * 3), np.ones((3, 2))
    with pytest.raises(ValueError):
        np.linalg.solve(a, b)
    with pytest.raises(ValueError, match="solve"):
        gc.jit(lambda a, b: np.linalg.solve(a, b))(a, b)
    np.testing.assert_allclose(gc.jit(lambda a, b: np.linalg.solve(a, b))(a, np.ones(2)),
                               np.ones((3, 2)))
