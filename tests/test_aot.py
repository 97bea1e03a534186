"""Ahead-of-time builds (API.md section 5): gc.Module's C, header, extension and FFI builder,
checked against the JIT; the extension run without gradc or a compiler; the C and package
examples."""
import contextlib
import importlib
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradc as gc
from gradc.aot import BuildError
from conftest import assert_close

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CC = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
C_FLAGS = ["-O2", "-std=c99", "-pedantic", "-fopenmp-simd", "-Wall", "-Wextra", "-Werror"]
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")

KERNELS = '''
import numpy as np
import gradc as gc

mod = gc.Module("aot_test_kernels")


@mod.export("f64[]", "f64[]", "f64[]")
def circuit(x, y, z):
    """The lecture's f = (x + y) z and its gradient."""
    return gc.value_and_grad(lambda x, y, z: (x + y) * z, argnums=(0, 1, 2))(x, y, z)


def xent(W, b, X, y):
    return gc.nn.cross_entropy(X @ W + b, y)


@mod.export("f32[6,4]", "f32[4]", "f32[5,6]", "i64[5]")
def loss_and_grads(W, b, X, y):
    return gc.value_and_grad(xent, argnums=(0, 1))(W, b, X, y)


@mod.export({"w": "f64[3]", "b": "f64[]"}, "f64[7,3]", "f64[7]")
def linreg_grad(params, X, y):
    return gc.grad(lambda p, X, y: gc.nn.mse(X @ p["w"] + p["b"], y))(params, X, y)


SCALE = np.linspace(0.5, 2.0, 4).astype(np.float32)     # a captured array: a C constant


@mod.export("f32[3,4]", "bool[3,4]", "i32[2]")
def masked(x, mask, rows):
    return {"where": gc.where(mask, x * SCALE, 0.0), "rows": x[rows], "x": x}


@mod.export("f32[4]")
def norm2(v):
    return gc.sum(v * v)


@mod.export("f64[2,2]", "f64[2,2]")
def factors(a, c):
    return np.linalg.inv(a), np.linalg.cholesky(c)
'''


def _inputs(rng):
    """Arguments per export, the same for the JIT and the built module."""
    f32 = np.float32
    return {
        "circuit": (-2.0, 5.0, -4.0),
        "loss_and_grads": (rng.standard_normal((6, 4)).astype(f32),
                           rng.standard_normal(4).astype(f32),
                           rng.standard_normal((5, 6)).astype(f32), np.array([0, 3, 1, 2, 3])),
        "linreg_grad": ({"w": rng.standard_normal(3), "b": np.float64(0.5)},
                        rng.standard_normal((7, 3)), rng.standard_normal(7)),
        "masked": (rng.standard_normal((3, 4)).astype(f32), rng.random((3, 4)) > 0.5,
                   np.array([2, -1], np.int32)),
        "norm2": (np.arange(4, dtype=f32),),
        "factors": (np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([[4.0, 1.0], [1.0, 2.0]])),
    }


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _imported(outdir, name):
    """The built module `name` imported from outdir (as after sys.path.insert(0, outdir))."""
    sys.path.insert(0, str(outdir))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(outdir))
        sys.modules.pop(name, None)
        sys.modules.pop(f"_{name}", None)


def _run_isolated(script, cwd, env=None):
    """Runs script with site-packages on sys.path but without .pth files (-I -S), so an editable
    install of gradc is invisible while numpy and cffi still import."""
    dirs = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})
    prelude = f"import sys; sys.path.extend({dirs!r})\n"
    return subprocess.run([sys.executable, "-I", "-S", "-c", prelude + script], cwd=cwd, env=env,
                          capture_output=True, text=True)


def assert_tree_close(got, want, what):
    got_leaves, got_tree = gc.tree_flatten(got)
    want_leaves, want_tree = gc.tree_flatten(want)
    assert got_tree == want_tree, f"{what}: structure {got_tree} != {want_tree}"
    for i, (g, w) in enumerate(zip(got_leaves, want_leaves)):
        assert isinstance(g, np.ndarray), f"{what}: leaf {i} is {type(g).__name__}"
        assert (g.shape, g.dtype) == (w.shape, w.dtype), f"{what}: leaf {i}"
        if w.dtype.kind == "f":
            assert_close(g, w, w.dtype, f"{what}: leaf {i}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{what}: leaf {i}")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    path = tmp_path_factory.mktemp("aot_src") / "aot_test_kernels_src.py"
    path.write_text(KERNELS)
    return _load(path, "aot_test_kernels_src")


@pytest.fixture(scope="module")
def built(kernels, tmp_path_factory):
    """(output directory, the imported extension module) of kernels.mod."""
    outdir = tmp_path_factory.mktemp("aot_out")
    kernels.mod.build(outdir)
    with _imported(outdir, "aot_test_kernels") as module:
        yield outdir, module


@pytest.fixture(scope="module")
def expected(kernels):
    args = _inputs(np.random.default_rng(0))
    return args, {name: gc.jit(getattr(kernels, name))(*a) for name, a in args.items()}


# ---- the generated C -----------------------------------------------------------------------------

def test_header_is_documented_and_guarded(kernels):
    header = kernels.mod.header()
    assert header.startswith("/* aot_test_kernels.h:")
    assert (f"Generated by gradc {gc.__version__} from aot_test_kernels_src.py; do not edit"
            in header)
    for text in ("#ifndef AOT_TEST_KERNELS_H", 'extern "C" {', "link with: -lm",
                 "#define AOT_TEST_KERNELS_ERR_INDEX 1", "#define AOT_TEST_KERNELS_ERR_ALLOC 2",
                 "#define AOT_TEST_KERNELS_ERR_SINGULAR 4", "#define AOT_TEST_KERNELS_ERR_NOT_PD 5",
                 "AOT_TEST_KERNELS_ERR_SINGULAR for a singular matrix",
                 "int aot_test_kernels_loss_and_grads(const float *W, const float *b, "
                 "const float *X, const int64_t *y,",
                 "int aot_test_kernels_masked(const float *x, const uint8_t *mask, "
                 "const int32_t *rows",
                 "int aot_test_kernels_circuit(const double *x, const double *y, const double *z,",
                 "void *work);", "size_t aot_test_kernels_norm2_work_bytes(void);",
                 "int aot_test_kernels_norm2_n_in(void);",
                 "int aot_test_kernels_norm2_n_out(void);",
                 "const char *aot_test_kernels_linreg_grad_name_in(int i);",
                 "const char *aot_test_kernels_linreg_grad_name_out(int i);",
                 "params_w  f64[3]  params['w']"):
        assert " ".join(text.split()) in " ".join(header.split()), text


def test_source_is_standalone_with_constants_as_arrays(kernels):
    source = kernels.mod.c_source()
    assert '#include "gradc' not in source          # the runtime is inlined
    assert "static const float aot_test_kernels_masked_k0[4] = {" in source
    assert "0.5f, 1.0f, 1.5f, 2.0f" in source
    assert "static int aot_test_kernels_loss_and_grads_kernel(void **args, void *work)" in source
    assert "-march" not in source.split("*/", 1)[0].replace("no -march flag", "")


@needs_cc
def test_c_entry_points_compile_cleanly_and_report_errors(kernels, tmp_path):
    (tmp_path / "k.c").write_text(kernels.mod.c_source())
    (tmp_path / "aot_test_kernels.h").write_text(kernels.mod.header())
    (tmp_path / "main.c").write_text(textwrap.dedent(r'''
        #include <stdio.h>
        #include <stdlib.h>
        #include "aot_test_kernels.h"
        static const char *show(const char *s) { return s ? s : "NULL"; }
        int main(void) {
            float W[24] = {0}, b[4] = {0}, X[30] = {0}, loss, gW[24], gb[4];
            int64_t y[5] = {0, 1, 2, 3, 0};
            int ok = aot_test_kernels_loss_and_grads(W, b, X, y, &loss, gW, gb);
            y[2] = 7;
            int bad = aot_test_kernels_loss_and_grads(W, b, X, y, &loss, gW, gb);
            void *work = malloc(aot_test_kernels_loss_and_grads_work_bytes() + 1);
            y[2] = 2;
            int with_work = aot_test_kernels_loss_and_grads_work(W, b, X, y, &loss, gW, gb, work);
            free(work);
            printf("%d %d %d %.6f %s %s %d %d %s %s\n", ok, bad, with_work, loss,
                   show(aot_test_kernels_loss_and_grads_name_in(0)),
                   show(aot_test_kernels_loss_and_grads_name_in(4)),
                   aot_test_kernels_loss_and_grads_n_in(), aot_test_kernels_loss_and_grads_n_out(),
                   show(aot_test_kernels_loss_and_grads_name_out(1)),
                   show(aot_test_kernels_linreg_grad_name_in(0)));
            return 0;
        }'''))
    if shutil.which("c++"):      # the header is usable from C++
        subprocess.run(["c++", "-fsyntax-only", "-Wall", "-x", "c++", "aot_test_kernels.h"],
                       cwd=tmp_path, check=True)
    subprocess.run([CC, *C_FLAGS, "-o", "main", "main.c", "k.c", "-lm"], cwd=tmp_path, check=True)
    out = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "1", "0", f"{np.log(4):.6f}", "W", "NULL", "4", "3",
                                  "out[1][0]", "params['b']"]


# ---- the extension -------------------------------------------------------------------------------

def test_extension_matches_jit(built, expected):
    _, module = built
    args, want = expected
    for name in args:
        assert_tree_close(getattr(module, name)(*args[name]), want[name], name)
    assert [float(v) for v in gc.tree_leaves(module.circuit(-2.0, 5.0, -4.0))] == [-12, -4, -4, 3]


def test_extension_checks_and_converts_arguments(built, expected):
    _, module = built
    args, want = expected
    W, b, X, y = args["loss_and_grads"]
    with pytest.raises(ValueError, match=r"argument W: expected f32\[6,4\], got f64\[6,4\]"):
        module.loss_and_grads(W.astype(np.float64), b, X, y)
    with pytest.raises(ValueError, match=r"argument X: expected f32\[5,6\], got f32\[6,5\]"):
        module.loss_and_grads(W, b, X.T.copy(), y)
    with pytest.raises(TypeError):
        module.loss_and_grads(W, b, X)
    params, Xl, yl = args["linreg_grad"]
    with pytest.raises(TypeError, match=r"params: expected a dict with keys \['b', 'w'\]"):
        module.linreg_grad({"w": params["w"]}, Xl, yl)
    # Lists, Fortran order, strided, unaligned and read-only arrays work; nothing is written.
    W_f = np.asfortranarray(W)
    X_big = np.zeros((5, 12), np.float32)
    X_big[:, ::2] = X
    raw = np.zeros(b.nbytes + 1, np.uint8)
    b_unaligned = raw[1:].view(np.float32)
    b_unaligned[:] = b
    y_ro = y.copy()
    y_ro.flags.writeable = False
    before = [a.copy() for a in (W_f, X_big, b_unaligned)]
    got = module.loss_and_grads(W_f, b_unaligned, X_big[:, ::2], y_ro)
    assert_tree_close(got, want["loss_and_grads"], "converted arguments")
    for a, copy in zip((W_f, X_big, b_unaligned), before):
        np.testing.assert_array_equal(a, copy)
    assert_tree_close(module.loss_and_grads(W.tolist(), b, X, y.tolist()), want["loss_and_grads"],
                      "lists")
    # Every call returns fresh arrays.
    first, second = module.norm2(*args["norm2"]), module.norm2(*args["norm2"])
    assert first is not second and first.flags.writeable
    out = module.masked(*args["masked"])
    assert not np.shares_memory(out["x"], args["masked"][0])


def test_out_of_range_label_is_index_error(built, expected):
    _, module = built
    W, b, X, y = expected[0]["loss_and_grads"]
    with pytest.raises(IndexError, match="out of range"):
        module.loss_and_grads(W, b, X, np.array([0, 1, 4, 0, 0]))
    with pytest.raises(IndexError):
        module.masked(*expected[0]["masked"][:2], np.array([0, 3], np.int32))


def test_singular_matrix_is_linalg_error(built, expected):
    """A singular / not positive definite matrix: the error code the header names, and NumPy's
    LinAlgError from the wrapper."""
    _, module = built
    a, c = expected[0]["factors"]
    with pytest.raises(np.linalg.LinAlgError, match="factors: a matrix is singular.*ERR_SINGULAR"):
        module.factors(np.array([[1.0, 2.0], [2.0, 4.0]]), c)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite.*ERR_NOT_PD"):
        module.factors(a, np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_extension_runs_without_gradc_or_compiler(built, expected, tmp_path):
    outdir, _ = built
    args, want = expected
    (tmp_path / "args.pkl").write_bytes(pickle.dumps(args))
    (tmp_path / "bin").mkdir()
    script = textwrap.dedent(f'''
        import importlib.util, pickle, shutil, sys
        sys.path.insert(0, {str(outdir)!r})
        assert importlib.util.find_spec("gradc") is None, "gradc is importable"
        assert shutil.which("cc") is None and shutil.which("gcc") is None, "a compiler is on PATH"
        import aot_test_kernels as k
        args = pickle.load(open({str(tmp_path / "args.pkl")!r}, "rb"))
        out = {{name: getattr(k, name)(*a) for name, a in args.items()}}
        pickle.dump(out, open({str(tmp_path / "out.pkl")!r}, "wb"))
        ''')
    result = _run_isolated(script, tmp_path, env={"PATH": str(tmp_path / "bin")})
    assert result.returncode == 0, result.stderr
    got = pickle.loads((tmp_path / "out.pkl").read_bytes())
    for name in args:
        assert_tree_close(got[name], want[name], name)


@pytest.mark.skipif(importlib.util.find_spec("scipy_openblas32") is None,
                    reason="scipy-openblas32 not installed")
def test_openblas_build_matches_jit(kernels, expected, tmp_path):
    mod = gc.Module("aot_test_blas")
    mod.export("f32[6,4]", "f32[4]", "f32[5,6]", "i64[5]")(kernels.loss_and_grads)
    mod.build(tmp_path, blas="openblas")
    so, = tmp_path.glob("_aot_test_blas*.so")
    assert b"scipy_openblas" in so.read_bytes()          # linked (a NEEDED entry), not the C loop
    args, want = expected
    with _imported(tmp_path, "aot_test_blas") as module:
        assert_tree_close(module.loss_and_grads(*args["loss_and_grads"]), want["loss_and_grads"],
                          "openblas")


# ---- mistakes ------------------------------------------------------------------------------------

def test_export_mistakes_fail_early():
    mod = gc.Module("aot_mistakes")
    with pytest.raises(ValueError, match="cannot parse spec 'f32\\[3,2x\\]'"):
        mod.export("f32[3,2x]")
    with pytest.raises(TypeError, match="gc.Spec"):
        mod.export(3)
    with pytest.raises(ValueError, match="name="):
        mod.export("f32[3]")(lambda x: x)
    mod.export("f32[3]", name="f")(lambda x: x * 2)
    with pytest.raises(ValueError, match="aot_mistakes_f_work"):
        mod.export("f32[3]", name="f_work")(lambda x: x)
    with pytest.raises(ValueError, match="identifier"):
        gc.Module("not-a-name")


def test_trace_failure_is_a_build_error(tmp_path):
    mod = gc.Module("aot_bad_trace")

    @mod.export("f32[3,4]", "f32[5]")
    def product(a, b):
        return a @ b

    with pytest.raises(BuildError, match=r"test_aot.py:\d+: export 'product' .* failed to trace: "
                                         r"ShapeError"):
        mod.build(tmp_path, c_only=True)


def test_build_never_overwrites_a_users_file(kernels, tmp_path):
    (tmp_path / "aot_test_kernels.py").write_text("# my own code\n")
    with pytest.raises(BuildError, match="refusing to overwrite"):
        kernels.mod.build(tmp_path)
    assert (tmp_path / "aot_test_kernels.py").read_text() == "# my own code\n"


# ---- the examples --------------------------------------------------------------------------------

@needs_cc
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_c_example(tmp_path):
    """examples/aot_c: two modules linked into one C program, built by its Makefile."""
    example = tmp_path / "aot_c"
    shutil.copytree(EXAMPLES / "aot_c", example)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(["make", f"PYTHON={sys.executable}", f"CC={CC}", f"CFLAGS={' '.join(C_FLAGS)}"],
                   cwd=example, env=env, check=True, capture_output=True)
    out = subprocess.run(["./main"], cwd=example, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "circuit: f = -12, df/dx = -4, df/dy = -4, df/dz = 3"
    kernels = _load(example / "kernels.py", "aot_c_kernels")
    for n, line in ((8, lines[1]), (5, lines[3])):     # one kernel, two batch sizes
        assert line.startswith(f"linreg ({n} rows): ")
        numbers = [float(t.strip(",")) for t in line.split(":")[1].replace("=", " ").split()
                   if t.strip(",").lstrip("-").replace(".", "").isdigit()]
        X = (np.arange(n * 3).reshape(n, 3) % 5 - 2).astype(np.float32)
        y = (2 * X[:, 0] - 3 * X[:, 1] + 0.5 * X[:, 2] + 1).astype(np.float32)
        loss, (gw, gb) = gc.jit(kernels.linreg_grad)(np.zeros(3, np.float32), np.float32(0), X, y)
        np.testing.assert_allclose(numbers, [loss, *gw, gb], rtol=1e-6, atol=1e-6)
    assert lines[2] == "linreg_grad(w, b, X, y) -> 3 outputs"


@needs_cc
def test_package_example_builds_a_wheel_that_runs_without_gradc(tmp_path):
    """examples/aot_package: setup.py with cffi_modules -> wheel -> installed -> called."""
    project = tmp_path / "project"
    shutil.copytree(EXAMPLES / "aot_package", project)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PIP_DISABLE_PIP_VERSION_CHECK="1")
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(pip + ["wheel", "--no-build-isolation", "--no-deps", "--no-index", str(project),
                          "-w", str(tmp_path / "dist")], env=env, check=True, capture_output=True)
    wheel, = (tmp_path / "dist").glob("lecture_demo-*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--no-index", "--target", str(tmp_path / "site"),
                          str(wheel)], env=env, check=True, capture_output=True)

    kernels = _load(EXAMPLES / "aot_package" / "kernels.py", "aot_package_kernels")
    rng = np.random.default_rng(1)
    args = (rng.standard_normal((64, 10)).astype(np.float32) * 0.1, np.zeros(10, np.float32),
            rng.standard_normal((32, 64)).astype(np.float32), rng.integers(0, 10, 32))
    (tmp_path / "args.pkl").write_bytes(pickle.dumps(args))
    script = textwrap.dedent(f'''
        import importlib.util, pickle, sys
        sys.path.insert(0, {str(tmp_path / "site")!r})
        assert importlib.util.find_spec("gradc") is None
        import lecture_demo
        args = pickle.load(open("args.pkl", "rb"))
        out = (lecture_demo.loss_and_grads(*args), lecture_demo.predict(*args[:3]),
               lecture_demo.sgd_step(*args)[2])
        pickle.dump(out, open("out.pkl", "wb"))
        ''')
    result = _run_isolated(script, tmp_path)
    assert result.returncode == 0, result.stderr
    got_loss, got_predict, step_loss = pickle.loads((tmp_path / "out.pkl").read_bytes())
    assert_tree_close(got_loss, gc.jit(kernels.loss_and_grads)(*args), "loss_and_grads")
    assert_tree_close(got_predict, gc.jit(kernels.predict)(*args[:3]), "predict")
    assert step_loss == pytest.approx(float(got_loss[0]))
