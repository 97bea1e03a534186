"""Shared fixtures and tolerances for the gradc test suite.

The tolerances below are the contract the tests hold the library to: they are stated once here
and are never loosened to make a test pass.
"""
import numpy as np
import pytest

import gradc as gc

# Value comparisons (library result vs NumPy reference, or one engine vs another) per dtype.
# rtol is relative to each element; atol is relative to the largest magnitude of the expected
# array (`scale`), so elements that cancel to ~0 are judged against the size of their neighbours.
RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-5}
ATOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-6}

# Central finite differences are always taken in float64 on the NumPy reference.
FD_EPS = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-7      # times max(1, |derivative|max, |f(x)|max): covers float64 rounding / FD_EPS

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

BACKENDS = ["numpy", "c"]

_C_BACKEND_STATE = {}


def _c_backend_skip_reason():
    """None when the C backend works; a skip reason when it is not built yet (checked once)."""
    if "reason" not in _C_BACKEND_STATE:
        try:
            gc.jit(lambda x: x + 1, backend="c")(np.ones(2))
            _C_BACKEND_STATE["reason"] = None
        except NotImplementedError:
            _C_BACKEND_STATE["reason"] = "C backend not built yet"
        # Any other exception is a real failure and propagates to every test using "c".
    return _C_BACKEND_STATE["reason"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "c":
        reason = _c_backend_skip_reason()
        if reason is not None:
            pytest.skip(reason)
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def scale_of(*arrays):
    """max(1, largest finite magnitude) over arrays: the unit for absolute tolerances."""
    s = 1.0
    for a in arrays:
        a = np.asarray(a, dtype=np.float64)
        if a.size:
            s = max(s, float(np.max(np.abs(a))))
    return s


def assert_close(got, want, dtype, what=""):
    """Compare `got` with `want` at the tolerance of `dtype` (a float dtype)."""
    dtype = np.dtype(dtype)
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != expected {want.shape}"
    np.testing.assert_allclose(
        got.astype(np.float64), want.astype(np.float64),
        rtol=RTOL[dtype], atol=ATOL[dtype] * scale_of(want), err_msg=what)


def assert_close_scalar(a, b, dtype, magnitude, what=""):
    """Compare two scalars whose natural size is `magnitude` (e.g. a sum of |terms|)."""
    dtype = np.dtype(dtype)
    tol = RTOL[dtype] * max(1.0, magnitude) + ATOL[dtype]
    assert abs(float(a) - float(b)) <= tol, f"{what}: {float(a)!r} != {float(b)!r} (tol {tol:g})"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("gradc_cache_shared")


@pytest.fixture
def isolated_cache(shared_cache, monkeypatch):
    """C builds go to a temporary cache, never the user's ~/.cache/gradc."""
    monkeypatch.setenv("GRADC_CACHE_DIR", str(shared_cache))
    monkeypatch.delenv("GRADC_CACHE_MAX_MB", raising=False)
