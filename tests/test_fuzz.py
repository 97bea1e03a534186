"""The differential fuzzer (gradc.fuzz): a fast seeded slice of it, and tests of the fuzzer itself
(it catches a planted wrong C form and a kernel that never writes its outputs, and shrinks a failure
to a small runnable program), plus the sanitizer and poison modes."""
import importlib
import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gradc as gc
from gradc.cbackend import backend, build
from gradc.fuzz import catalog, check, generate, shrink
from gradc.fuzz import repro, runner
from gradc.fuzz.program import Program, Stmt, run_eager
from gradc.fuzz.sanitize import sanitizer_env
from gradc.primitives import PRIMITIVES

gen_module = importlib.import_module("gradc.fuzz.generate")   # the package exports the function
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLICE_SEED, SLICE_PROGRAMS = 12, 48


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A planted bug must not be served from (or left in) the shared disk cache."""
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_seeded_slice_has_no_failures():
    """CI's slice of the fuzzer: SLICE_PROGRAMS programs, float64 and float32, poison on, in a
    worker process (a crashing kernel must not take pytest down). `python -m gradc.fuzz --seed 12
    --programs 48` shows the failures shrunk."""
    summary = runner.fuzz(SLICE_SEED, programs=SLICE_PROGRAMS, workers=1, shrink_failures=False,
                          out=io.StringIO())
    assert summary["programs"] == SLICE_PROGRAMS
    assert summary["counts"].get("ok", 0) >= SLICE_PROGRAMS // 2, summary["counts"]
    assert not summary["failures"], summary["examples"]


def test_catalogue_covers_the_public_ops():
    """API.md section 3's ops are all in some category (a new op with a known signature is fuzzed
    at once; one the fuzzer cannot place is listed in its summary)."""
    cats = catalog.catalogue()
    section3 = {"add", "subtract", "multiply", "divide", "negative", "power", "square", "sqrt", "exp",
                "log", "log1p", "expm1", "abs", "sign", "sin", "cos", "tanh", "sigmoid", "relu",
                "softplus", "maximum", "minimum", "where", "clip", "equal", "not_equal", "less",
                "less_equal", "greater", "greater_equal", "sum", "mean", "max", "min", "argmax",
                "argmin", "logsumexp", "reshape", "transpose", "expand_dims", "squeeze",
                "broadcast_to", "concatenate", "stack", "matmul", "dot", "nn.softmax",
                "nn.log_softmax", "nn.cross_entropy", "nn.mse", "nn.multiclass_hinge",
                "nn.binary_cross_entropy_with_logits"}
    assert not section3 & set(catalog.unclassified())
    assert section3 <= {n for names in cats.values() for n in names}
    for name in ("tanh", "log", "sqrt", "add", "power", "maximum"):
        assert name in cats["unary"] + cats["binary"]
    assert {"sum", "mean", "max", "min", "logsumexp"} <= set(cats["reduction"])
    assert {"nn.cross_entropy", "nn.multiclass_hinge"} <= set(cats["label_loss"])


def test_catalogue_covers_every_exported_op():
    """Every op gradc exports is fuzzed: the registry's gc.<name> records (the NumPy surface of
    API.md section 9 too: cumsum, pad, einsum, ...) and gc.linalg, not only gradc.ops."""
    from gradc import registry
    taken = {n for names in catalog.catalogue().values() for n in names}
    assert catalog.unclassified() == []
    assert {n for n in registry.PUBLIC if n not in catalog.NOT_OPS} <= taken
    assert {f"linalg.{n}" for n in catalog.LINALG} <= taken
    assert {f"random.{n}" for n in catalog.RANDOM} | {"scan", "fori_loop"} <= taken
    for name in ("cumsum", "pad", "take_along_axis", "einsum", "tensordot", "split", "hstack",
                 "logaddexp", "var", "norm"):
        assert name in taken, name


@pytest.mark.parametrize("category", ["rearrange", "join", "split", "product", "linalg", "loop",
                                      "random"])
def test_each_new_category_makes_statements(category):
    """Each hand-written category's maker proposes statements that run and are kept."""
    kept = set()
    for seed in range(60):
        b = gen_module.Builder(np.random.default_rng(seed))
        b.new_input((3, 3)), b.new_input((2, 3))
        for name in catalog.catalogue()[category]:
            var = b.propose(lambda: gen_module.MAKERS[category](b, name))
            if var is not None:
                kept.add(name)
    assert kept == set(catalog.catalogue()[category])


def test_generated_programs_run_and_keep_off_kinks():
    for i in range(40):
        program = generate(runner.program_seed(3, i))
        outs = run_eager(program)
        assert outs and all(np.all(np.isfinite(o)) for o in outs), program.source()
        assert "def f(" in program.source()


def _program(source_lines, inputs, outputs):
    stmts = tuple(Stmt(var, template, args) for var, template, args in source_lines)
    return Program(tuple(inputs), stmts, tuple(outputs), seed=5)


SIN_PROGRAM = _program([("v0", "gc.sin({0})", ("x0",)), ("v1", "({0} * {1})", ("v0", "x1"))],
                       [("x0", np.array([[0.4, -0.7, 1.1], [0.2, 0.9, -1.3]])),
                        ("x1", np.array([0.5, 1.2, -0.9]))],
                       ["v1"])


def test_poison_guards_catch_a_write_past_an_output(fresh_cache, monkeypatch):
    monkeypatch.setenv("GRADC_POISON", "1")
    f = gc.jit(lambda x: x * 2.0)
    compiled = f.lower(np.ones(3)).compile()
    kernel = compiled.executable.fn

    def overflows(argv, work):      # the real kernel, then one element past output 0
        code = kernel(argv, work)
        backend._ffi.cast("double *", argv[1])[3] = 7.0
        return code
    compiled.executable.fn = overflows
    with pytest.raises(RuntimeError, match="wrote outside output 0"):
        compiled(np.ones(3))


def test_a_planted_wrong_c_form_is_caught(fresh_cache, monkeypatch):
    assert check(SIN_PROGRAM).kind == "ok"
    monkeypatch.setattr(PRIMITIVES["sin"], "c", "cos{f}({0})")
    # a new cache: the warm-start index keys graphs by gradc's files, not a patched table in memory
    monkeypatch.setenv("GRADC_CACHE_DIR", str(fresh_cache / "planted"))
    outcome = check(SIN_PROGRAM)
    assert outcome.kind.startswith("wrong output (c float64)"), outcome


def test_poison_catches_a_kernel_that_never_writes_its_outputs(fresh_cache, monkeypatch):
    planted = backend.PoisonedCExecutable.__init__

    def never_writes(self, lowered):
        planted(self, lowered)
        self.fn = lambda argv, work: 0     # returns success, writes nothing
    monkeypatch.setattr(backend.PoisonedCExecutable, "__init__", never_writes)
    outcome = check(SIN_PROGRAM, poison=True)
    assert outcome.kind == "wrong output (c float64)" and "nan" in outcome.detail, outcome


def test_poison_mode_fills_outputs_and_workspace(monkeypatch):
    monkeypatch.setenv("GRADC_POISON", "1")
    f = gc.jit(lambda x: gc.tanh(x) * 2.0)
    x = np.array([0.1, 0.2], np.float32)
    np.testing.assert_allclose(f(x), np.tanh(x) * 2, rtol=1e-6)
    assert isinstance(f.lower(x).compile().executable, backend.PoisonedCExecutable)
    buf, middle = backend._guarded(24)
    assert np.isnan(middle.view(np.float64)).all() and (middle.view(np.int64) == -1).all()
    assert backend._intact(buf) and buf.size == 24 + 2 * backend.GUARD
    monkeypatch.delenv("GRADC_POISON")
    assert not isinstance(gc.jit(lambda x: x * 3.0).lower(x).compile().executable,
                          backend.PoisonedCExecutable)


def test_the_shrinker_reduces_a_planted_bug_to_a_small_runnable_program(fresh_cache, monkeypatch):
    monkeypatch.setattr(PRIMITIVES["sin"], "c", "(sin{f}({0}) * 1.001)")
    big = _program([("v0", "gc.tanh({0})", ("x0",)), ("v1", "({0} @ {1})", ("v0", "x1")),
                    ("v2", "np.sin({0})", ("v1",)), ("v3", "gc.sum({0}, axis=0)", ("v2",)),
                    ("v4", "({0} * 2.0)", ("v3",)), ("v5", "gc.exp({0})", ("x1",))],
                   [("x0", np.array([[0.5, -0.4], [1.2, 0.8], [-0.6, 0.9]])),
                    ("x1", np.array([[0.3, 1.1, -0.7], [0.9, -1.3, 0.4]]))], ["v4", "v5"])
    kind = check(big).kind
    assert kind.startswith("wrong"), kind

    def fails(p):
        return check(p).kind == kind
    small, tries = shrink(big, fails, budget_seconds=60)
    assert len(small.stmts) <= 2 and any("sin" in s.template for s in small.stmts), small.source()
    assert sum(v.size for _, v in small.inputs) < sum(v.size for _, v in big.inputs)
    script = repro.text(small, kind)
    compile(script, "<repro>", "exec")          # plain Python
    assert script.startswith("import os") and "import gradc as gc" in script


def test_the_runner_counts_crashes_in_workers(fresh_cache):
    """A worker that dies is a counted crash, not the end of the run."""
    crasher = _program([("v0", "__import__('os').kill(__import__('os').getpid(), 11) or {0}",
                          ("x0",))],
                       [("x0", np.array([1.0]))], ["v0"])
    pool = runner.Pool(1, {"poison": True, "dtypes": ("float64",), "max_stmts": 4})
    try:
        kind, detail, *_ = pool.run_one(("program", crasher))
        assert kind == "crash" and "signal 11" in detail, detail
        assert pool.run_one(("program", SIN_PROGRAM))[0] == "ok"
    finally:
        pool.stop()


SANITIZED = textwrap.dedent("""
    import cffi, numpy as np, gradc as gc
    from gradc.cbackend import build
    f = gc.jit(lambda x, y: gc.nn.cross_entropy(x @ np.ones((3, 4)), y))
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    print("value", float(f(x, np.array([1, 3]))))
    try:
        f(x, np.array([1, 4]))
    except IndexError:
        print("index error")
    if __import__("sys").argv[1] == "overflow":     # the sanitizer must stop this read
        ffi = cffi.FFI()
        ffi.cdef("double peek(double *p);")
        path, _, _ = build.compile_shared("double peek(double *p) { return p[8]; }", blas=False)
        ffi.dlopen(str(path)).peek(ffi.from_buffer("double[]", np.ones(8)))
        print("read past the buffer")
""")


def test_sanitizer_mode_builds_and_catches_an_overflow(fresh_cache):
    env = sanitizer_env()
    if env is None:
        pytest.skip("the C compiler has no AddressSanitizer runtime (libasan.so)")
    assert "-fsanitize=address,undefined" in " ".join(build.SANITIZE_FLAGS)
    full = dict(os.environ, **env, PYTHONPATH=ROOT)
    ok = subprocess.run([sys.executable, "-c", SANITIZED, "clean"], capture_output=True, text=True,
                        env=full, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    expected = float(gc.nn.cross_entropy(np.linspace(-1, 1, 6).reshape(2, 3) @ np.ones((3, 4)),
                                          np.array([1, 3])))
    assert f"value {expected!r}" in ok.stdout and "index error" in ok.stdout
    bad = subprocess.run([sys.executable, "-c", SANITIZED, "overflow"], capture_output=True,
                         text=True, env=full, timeout=300)
    assert bad.returncode != 0 and "heap-buffer-overflow" in bad.stderr
    assert "read past the buffer" not in bad.stdout


def test_sanitize_flags_are_in_the_cache_key(monkeypatch):
    monkeypatch.delenv("GRADC_SANITIZE", raising=False)
    plain = build.toolchain_identity()
    monkeypatch.setenv("GRADC_SANITIZE", "1")
    assert build.toolchain_identity() != plain and build.sanitize_flags() == build.SANITIZE_FLAGS
