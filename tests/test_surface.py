"""The public surface is derived from the op entries (one entry per op): exports, NumPy dispatch
and the SIMD declarations of the libm functions the C templates call."""
import re
import shutil
import subprocess

import numpy as np
import pytest

import gradc as gc
from gradc.cbackend import build, vecmath
from gradc.registry import FUNCTIONS, PUBLIC, UFUNCS, numpy_object


def test_public_elementwise_primitives_are_exported_and_dispatched():
    for prim in gc.PRIMITIVES.values():
        if not prim.public:
            continue
        assert getattr(gc, prim.name, None) is PUBLIC[prim.name], f"gc.{prim.name} missing"
        if isinstance(prim.impl, np.ufunc):
            assert UFUNCS.get(prim.impl.__name__) is PUBLIC[prim.name], \
                f"np.{prim.impl.__name__} does not dispatch to gc.{prim.name}"


def test_every_export_is_a_gc_attribute_and_numpy_names_resolve():
    for name, fn in PUBLIC.items():
        assert getattr(gc, name) is fn, name
    for path in FUNCTIONS:
        assert numpy_object(path) is not None, f"np.{path} does not exist in this NumPy"
    for name in UFUNCS:
        assert isinstance(getattr(np, name, None), np.ufunc), f"np.{name} is not a ufunc"


def test_numpy_ufuncs_on_tracers_reach_the_exported_function():
    x = np.linspace(0.1, 0.9, 6)
    for name, fn in UFUNCS.items():
        ufunc = getattr(np, name)
        if ufunc.nin != 1 or name in ("logical_not", "invert"):
            continue
        with np.errstate(invalid="ignore"):     # arccosh of values below 1: NaN on both sides
            got = gc.jit(lambda v: ufunc(v), backend="numpy")(x)
            np.testing.assert_allclose(got, fn(x), rtol=1e-12, err_msg=name)


def test_every_template_call_is_classified():
    """A template that calls a libm function must say whether libmvec vectorises it (LIBMVEC) or
    GCC inlines it (INLINE): else the fused loop would silently call scalar libm."""
    known = {n for table in vecmath.LIBMVEC.values() for n in table} | vecmath.INLINE
    unknown = vecmath.template_calls() - known
    assert not unknown, f"libm calls in C templates that vecmath.py does not classify: {unknown}"


def test_every_vectorisable_call_is_declared_simd():
    text = vecmath.simd_declarations()
    for n in vecmath.template_calls():
        if any(n in table for table in vecmath.LIBMVEC.values()):
            assert re.search(rf"GRADC_SIMD float {n}f\(", text), f"{n}f not declared SIMD"
            assert re.search(rf"GRADC_SIMD double {n}\(", text), f"{n} not declared SIMD"


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs nm")
def test_fused_loop_calls_libmvec(tmp_path, monkeypatch):
    cc = build.find_compiler()
    if not build.vector_math_flags(cc)[0]:
        pytest.skip("no libmvec on this machine")
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))     # this kernel's library alone
    gc.jit(lambda x: gc.tanh(x) * gc.arcsinh(x))(np.ones(64, np.float32))
    (lib,) = tmp_path.glob("*.so")
    symbols = subprocess.run(["nm", "-D", str(lib)], capture_output=True, text=True).stdout
    assert re.search(r"_ZGV\w*_tanhf", symbols) and re.search(r"_ZGV\w*_asinhf", symbols), \
        "the fused loop calls scalar libm"


# ---- the supported list and errors for the rest (API.md section 8) -------------------------------

def test_shipped_supported_list_is_current():
    from pathlib import Path
    from gradc.registry import supported_text
    shipped = (Path(gc.__file__).parent / "SUPPORTED.md").read_text()
    assert shipped == supported_text(), \
        "gradc/SUPPORTED.md is stale: python -m gradc.registry > gradc/SUPPORTED.md"
    assert "np.var" in gc.supported() and "x.copy" in gc.supported() and "gc.einsum" in shipped


@pytest.mark.parametrize("what, call", [
    ("np.sort", lambda x: np.sort(x)),
    ("np.add.outer", lambda x: np.add.outer(x, x)),
    ("np.linalg.svd", lambda x: np.linalg.svd(x)),
    (".nonzero", lambda x: x.nonzero()),
    (".itemset", lambda x: x.itemset(0, 1.0)),
    (".imag", lambda x: x.imag),
], ids=["function", "ufunc_method", "linalg", "method", "method2", "attribute"])
def test_unsupported_names_itself_and_points_to_the_list(what, call):
    x = np.eye(3)
    for run in (lambda: gc.jit(call, backend="numpy")(x), lambda: call(gc.tensor(x))):
        with pytest.raises(NotImplementedError) as info:
            run()
        assert what in str(info.value) and "gc.supported()" in str(info.value), str(info.value)


def test_missing_attribute_is_not_there_for_hasattr():
    assert not hasattr(gc.tensor(1.0), "tolist")


def test_library_function_that_converts_is_named():
    scipy_special = pytest.importorskip("scipy.special")
    with pytest.raises(gc.ConcretizationError) as info:
        gc.grad(lambda x: scipy_special.logsumexp(x))(np.ones(3))
    message = str(info.value)
    assert "scipy.special" in message and "logsumexp" in message and "test_surface.py" in message


def test_writing_a_traced_value_into_a_numpy_buffer_names_the_fix():
    def loss(w):
        buf = np.zeros(3)
        buf[0:2] = w
        return buf.sum()
    with pytest.raises(gc.ConcretizationError) as info:
        gc.grad(loss)(np.ones(2))
    assert ".at[i].set" in str(info.value) and "gc.array(buf)" in str(info.value)

    def loss_scalar(w):
        buf = np.zeros(3)
        buf[0] = w[0]       # NumPy replaces gradc's error by its own ValueError; ours is the cause
        return buf.sum()
    with pytest.warns(RuntimeWarning, match=r"written into a NumPy array .*\.at\[i\]\.set"):
        with pytest.raises((gc.ConcretizationError, ValueError)):
            gc.grad(loss_scalar)(np.ones(2))


def test_traced_boolean_mask_names_gc_where():
    with pytest.raises(gc.ConcretizationError) as info:
        gc.grad(lambda x: gc.sum(x[x > 0]))(np.ones(3))
    assert "gc.where" in str(info.value)
