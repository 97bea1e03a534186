"""Pickling compiled functions (API.md section 13): gc.jit functions, Compiled signatures and built
AOT modules pickled here and called in a fresh process, which compiles again (an empty disk cache)
or reuses the cache, or for an AOT module needs no compiler at all."""
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gradc as gc
from conftest import assert_close

cloudpickle = pytest.importorskip("cloudpickle")

ROOT = Path(__file__).resolve().parent.parent

KERNELS = '''
import numpy as np
import gradc as gc


@gc.jit
def predict(W, b, X):
    return gc.relu(X @ W + b)


def loss(params, X, scale):
    return gc.mean((X @ params["w"] + params["b"]) ** 2) * scale


@gc.jit(static_argnums=(1,))
def power_sum(x, k):
    return gc.sum(x ** k)


mod = gc.Module("pickled_kernels")


@mod.export({"w": "f32[3]", "b": "f32[]"}, "f32[5,3]", "f32[]")
def loss_grad(params, X, scale):
    return gc.value_and_grad(loss)(params, X, scale)
'''


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    """The module above, importable by name here and in the subprocesses (PYTHONPATH)."""
    directory = tmp_path_factory.mktemp("pickled_src")
    (directory / "pickled_src_kernels.py").write_text(KERNELS)
    sys.path.insert(0, str(directory))
    try:
        import pickled_src_kernels
        yield pickled_src_kernels, directory
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop("pickled_src_kernels", None)


def _args(rng):
    f32 = np.float32
    return {"W": rng.standard_normal((3, 4)).astype(f32), "b": rng.standard_normal(4).astype(f32),
            "X": rng.standard_normal((5, 3)).astype(f32),
            "params": {"w": rng.standard_normal(3).astype(f32), "b": np.float32(0.25)}}


def _run_elsewhere(tmp_path, cases, env, *, pythonpath):
    """Unpickles each (blob, args) in a fresh interpreter and calls it; returns what the calls
    returned there, with the cache_hit of each Compiled."""
    (tmp_path / "cases.pkl").write_bytes(pickle.dumps(cases))
    script = textwrap.dedent(f'''
        import pickle
        cases = pickle.load(open({str(tmp_path / "cases.pkl")!r}, "rb"))
        out = {{}}
        for name, (blob, args) in cases.items():
            fn = pickle.loads(blob)
            hit = fn.stats["cache_hit"] if hasattr(fn, "stats") else None
            out[name] = (fn(*args) if not hasattr(fn, "__all__") else
                         getattr(fn, fn.__all__[0])(*args), hit, type(fn).__name__)
        pickle.dump(out, open({str(tmp_path / "out.pkl")!r}, "wb"))
        ''')
    env = {**env, "PYTHONPATH": os.pathsep.join(map(str, pythonpath))}
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return pickle.loads((tmp_path / "out.pkl").read_bytes())


def _assert_same(got, want, what):
    got_leaves, got_tree = gc.tree_flatten(got)
    want_leaves, want_tree = gc.tree_flatten(want)
    assert got_tree == want_tree, what
    for g, w in zip(got_leaves, want_leaves):
        assert g.dtype == w.dtype, what
        assert_close(g, w, w.dtype, what)


def test_jit_and_compiled_run_in_a_fresh_process(kernels, tmp_path):
    """pickle where the function is importable, cloudpickle for a lambda and a closure; the
    receiver starts from an empty disk cache, so it traces and compiles itself."""
    module, directory = kernels
    a = _args(np.random.default_rng(0))
    weights = np.linspace(-1, 1, 4).astype(np.float32)          # a captured constant
    local = gc.jit(lambda W, X: gc.sum(gc.tanh(X @ W) * weights))
    vg = gc.jit(gc.value_and_grad(module.loss))
    cases = {
        # the Compiled ones first: each is the first of its signature in the receiver's cache
        "compiled": (pickle.dumps(module.predict.lower(a["W"], a["b"], a["X"]).compile()),
                     (a["W"], a["b"], a["X"])),
        # a weak Python scalar stays weak (computes in float32), a static argument stays static
        "compiled weak scalar": (pickle.dumps(gc.jit(module.loss).lower(a["params"], a["X"], 0.5)
                                              .compile()), (a["params"], a["X"], 0.5)),
        "cloudpickle compiled": (cloudpickle.dumps(local.lower(a["W"], a["X"]).compile()),
                                 (a["W"], a["X"])),
        "jit by name": (pickle.dumps(module.predict), (a["W"], a["b"], a["X"])),
        "jit static": (pickle.dumps(module.power_sum), (a["X"], 3)),
        "cloudpickle lambda": (cloudpickle.dumps(local), (a["W"], a["X"])),
        "cloudpickle value_and_grad": (cloudpickle.dumps(vg), (a["params"], a["X"], 0.5)),
    }
    want = {name: pickle.loads(blob)(*args) for name, (blob, args) in cases.items()}
    assert want["compiled weak scalar"].dtype == np.float32
    got = _run_elsewhere(tmp_path, cases, {"GRADC_CACHE_DIR": str(tmp_path / "empty-cache"),
                                           "PATH": os.environ["PATH"]},
                         pythonpath=[ROOT, directory])
    for name in cases:
        out, hit, kind = got[name]
        _assert_same(out, want[name], name)
        if kind == "Compiled":
            assert hit is False, f"{name}: a fresh cache should have been compiled into"
    # The same Compiled in a process sharing this cache finds its library there.
    got = _run_elsewhere(tmp_path, {"compiled": cases["compiled"]},
                         {"PATH": os.environ["PATH"], **_cache_env()},
                         pythonpath=[ROOT, directory])
    assert got["compiled"][1] is True


def _cache_env():
    return {k: v for k, v in os.environ.items() if k in ("GRADC_CACHE_DIR", "HOME")}


def test_pickles_hold_no_process_state(kernels):
    """What is sent is the function and the signature: no library or cffi object, and the same
    bytes before and after the function ran (nothing compiled or cached goes with it)."""
    module, _ = kernels
    a = _args(np.random.default_rng(1))
    fresh = gc.jit(module.loss)
    before = cloudpickle.dumps(fresh)
    fresh(a["params"], a["X"], 0.5)
    assert cloudpickle.dumps(fresh) == before
    assert b"cffi" not in before and b"CLibrary" not in before
    compiled = module.predict.lower(a["W"], a["b"], a["X"]).compile()
    blob = pickle.dumps(compiled)
    assert b"cffi" not in blob and len(blob) < 2000
    again = pickle.loads(blob)
    assert again is not compiled and isinstance(again, gc.Compiled)
    with pytest.raises(ValueError, match="argument X"):       # still fixed to its signature
        again(a["W"], a["b"], a["X"][:2])
    assert pickle.loads(pickle.dumps(module.predict)) is module.predict      # by name


def test_plain_pickle_of_a_lambda_says_so():
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pickle.dumps(gc.jit(lambda x: x + 1))


def test_built_module_runs_where_it_was_not_built_without_a_compiler(kernels, tmp_path):
    """A built AOT module pickles by value (its wrapper and its library): a process without a
    compiler and without the build directory on its path loads it from its cache and calls it."""
    module, _ = kernels
    outdir = tmp_path / "build"
    module.mod.build(outdir)
    sys.path.insert(0, str(outdir))
    try:
        import pickled_kernels
        a = _args(np.random.default_rng(2))
        args = (a["params"], a["X"], np.float32(0.5))
        want = pickled_kernels.loss_grad(*args)
        _assert_same(want, gc.jit(gc.value_and_grad(module.loss))(*args), "built vs jit")
        blob = pickle.dumps(pickled_kernels)
        assert pickle.loads(blob) is pickled_kernels          # the same build: the same module
        assert cloudpickle.loads(cloudpickle.dumps(pickled_kernels)) is pickled_kernels
    finally:
        sys.path.remove(str(outdir))
        sys.modules.pop("pickled_kernels", None)
        sys.modules.pop("_pickled_kernels", None)
    (tmp_path / "bin").mkdir()
    got = _run_elsewhere(tmp_path, {"aot": (blob, args)},
                         {"PATH": str(tmp_path / "bin"), "GRADC_CACHE_DIR": str(tmp_path / "c")},
                         pythonpath=[ROOT])
    out, _, kind = got["aot"]
    assert kind == "_BuiltModule"
    _assert_same(out, want, "pickled AOT module")
