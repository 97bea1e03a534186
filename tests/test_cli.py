"""The command line (API.md section 6): `python -m gradc build | graph | demo | cache`, and its
one-line errors (exit status 1, no traceback) for every kind of user mistake."""
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gradc.cli import main

ROOT = Path(__file__).resolve().parent.parent

KERNELS = '''
import gradc as gc

mod = gc.Module("cli_kernels")


def loss(W, x):
    return gc.sum(gc.tanh(x @ W))


@mod.export("f32[3,2]", "f32[4,3]")
def value_and_grad(W, x):
    return gc.value_and_grad(loss)(W, x)


def predict(W, x):
    return gc.argmax(x @ W, axis=1), gc.relu(x @ W)
'''


def gradc(*args, cwd, env=None):
    """Runs `python -m gradc ARGS` with gradc importable; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "gradc", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "kernels.py").write_text(KERNELS)
    return tmp_path


def test_help_and_version(tmp_path):
    result = gradc("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("build", "graph", "demo", "cache"):
        assert command in result.stdout
    assert gradc("--version", cwd=tmp_path).stdout.startswith("gradc ")
    assert gradc(cwd=tmp_path).returncode == 2          # a command is required


# ---- build ---------------------------------------------------------------------------------------

def test_build_writes_an_importable_extension(project):
    result = gradc("build", "kernels.py", "-o", "out", cwd=project)
    assert result.returncode == 0, result.stderr
    out = project / "out"
    for name in ("cli_kernels.c", "cli_kernels.h", "cli_kernels.py"):
        assert (out / name).is_file() and f"out/{name}" in result.stdout
    assert list(out.glob("_cli_kernels*.so"))
    assert "cli_kernels: 1 export (generated in" in result.stdout
    script = textwrap.dedent('''
        import sys; sys.path.insert(0, "out")
        import numpy as np, cli_kernels
        W, x = np.ones((3, 2), np.float32), np.ones((4, 3), np.float32)
        value, grad = cli_kernels.value_and_grad(W, x)
        print(round(float(value), 4), grad.shape, grad.dtype)
        ''')
    run = subprocess.run([sys.executable, "-c", script], cwd=project, capture_output=True,
                         text=True)
    assert run.stdout.split() == [str(round(8 * float(__import__("numpy").tanh(3.0)), 4)), "(3,",
                                  "2)", "float32"], run.stderr


def test_build_c_only_needs_no_compiler(project):
    empty = project / "bin"
    empty.mkdir()
    result = gradc("build", "kernels.py", "-o", "csrc", "--c-only", cwd=project,
                   env={"PATH": str(empty), "CC": ""})
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (project / "csrc").iterdir())
    assert written == ["cli_kernels.c", "cli_kernels.h"]


def test_build_without_a_compiler_is_one_line(project):
    empty = project / "bin"
    empty.mkdir()
    result = gradc("build", "kernels.py", "-o", "out", cwd=project,
                   env={"PATH": str(empty), "CC": ""})
    assert_one_line_error(result, "no C compiler")


@pytest.mark.parametrize("source, fragment", [
    ("x = 1\n", "bad.py: no gc.Module found"),
    ("import gradc as gc\nm = gc.Module('m')\n@m.export('f32[3,4]', 'f32[5]')\n"
     "def f(a, b):\n    return a @ b\n", "export 'f' of module 'm' failed to trace: ShapeError"),
    ("import gradc as gc\nm = gc.Module('m')\n@m.export('f32[3,2x]')\ndef f(a):\n    return a\n",
     "bad.py:3: ValueError: cannot parse spec 'f32[3,2x]'"),
    ("import gradc as gc\nm = gc.Module('m')\n", "module 'm' exports no function"),
    ("def f(:\n", "bad.py:1: SyntaxError"),
    ("import no_such_module_anywhere\n", "bad.py:1: ModuleNotFoundError"),
], ids=["no-module", "trace-fails", "bad-spec", "no-export", "syntax", "import-error"])
def test_build_bad_file(tmp_path, source, fragment):
    (tmp_path / "bad.py").write_text(source)
    assert_one_line_error(gradc("build", "bad.py", "-o", "out", cwd=tmp_path), fragment)
    assert not (tmp_path / "out" / "m.c").exists()


def test_build_bad_paths(project):
    (project / "a_file").write_text("not a directory\n")
    assert_one_line_error(gradc("build", "kernels.py", "-o", "a_file", cwd=project),
                          "output directory a_file is a file")
    assert_one_line_error(gradc("build", "kernels.py", "-o", "a_file/sub", cwd=project),
                          "a_file/sub")
    assert_one_line_error(gradc("build", "missing.py", cwd=project), "missing.py: no such file")
    if os.geteuid() != 0:                 # root writes anywhere
        locked = project / "locked"
        locked.mkdir()
        locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert_one_line_error(gradc("build", "kernels.py", "-o", "locked", cwd=project), "locked")


# ---- graph ---------------------------------------------------------------------------------------

def test_graph_writes_dot(project):
    result = gradc("graph", "kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,3]", "-o",
                   "loss.dot", cwd=project)
    assert result.returncode == 0, result.stderr
    dot = (project / "loss.dot").read_text()
    nodes = dot.split("subgraph cluster_legend")[0]
    assert dot.startswith('digraph "loss"') and "tanh" in dot and "#ffd8b1" not in nodes
    assert 'label="W\\nf32[3,2]"' in dot
    assert 'tanh\\nf32[4,2]\\nkernels.py:8"' in dot          # the user's line on each node
    assert 'out0 [label="output"' in dot
    assert 'legend_rev [label="gradient pass", fillcolor="#ffd8b1"]' in dot


CIRCUIT = """import gradc as gc


def f(x, y, z):
    q = x + y
    return q * z


def mlp(params, x):
    return gc.sum(gc.tanh(x @ params["w"] + params["b"]))
"""


def test_graph_grad_draws_every_output_named(tmp_path):
    """The lecture circuit: df/dx and df/dy are the same node (z); both outputs are drawn."""
    (tmp_path / "circuit.py").write_text(CIRCUIT)
    result = gradc("graph", "circuit.py:f", *["--arg", "f64[]"] * 3, "--grad", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dot = result.stdout
    for i, name in enumerate(["value", "d/dx", "d/dy", "d/dz"]):
        assert f'out{i} [label="{name}", shape=plaintext];' in dot
    edges = [line.strip() for line in dot.splitlines() if line.strip().endswith(("-> out1;",
                                                                                 "-> out2;"))]
    assert len(edges) == 2 and edges[0].split(" ->")[0] == edges[1].split(" ->")[0]
    assert 'label="q = add\\nf64[]\\ncircuit.py:5"' in dot      # the user's variable name


def test_graph_dict_argument(tmp_path):
    (tmp_path / "circuit.py").write_text(CIRCUIT)
    result = gradc("graph", "circuit.py:mlp", "--arg", '{"w": "f32[3,2]", "b": "f32[2]"}',
                   "--arg", "f32[4,3]", "--grad", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'label="params[\'w\']\\nf32[3,2]"' in result.stdout
    assert 'label="d/dparams[\'b\']"' in result.stdout
    bad = gradc("graph", "circuit.py:mlp", "--arg", '{"w": 3}', "--arg", "f32[4,3]", cwd=tmp_path)
    assert_one_line_error(bad, "is not a spec such as 'f32[3,4]'")


def test_graph_grad_draws_the_reverse_pass(project):
    result = gradc("graph", "kernels.py:predict", "--arg", "f32[3,2]", "--arg", "f32[4,3]",
                   "--grad", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('digraph "value_and_grad of sum(predict)"')
    assert "#ffd8b1" in result.stdout          # reverse-pass nodes in their own colour


def test_graph_uses_export_specs(project):
    result = gradc("graph", "kernels.py:value_and_grad", cwd=project)
    assert result.returncode == 0 and "f32[4,3]" in result.stdout, result.stderr


def test_graph_renders_through_graphviz_dot(project):
    """A stand-in `dot` on PATH checks the call (format flag, output file, DOT on stdin)."""
    fake = project / "fakebin"
    fake.mkdir()
    (fake / "dot").write_text('#!/bin/sh\n# args: -Tsvg -o OUT\ncat > "$3.in"\n'
                              'echo "<svg>$1</svg>" > "$3"\n')
    (fake / "dot").chmod(0o755)
    result = gradc("graph", "kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,3]", "-o",
                   "loss.svg", cwd=project, env={"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert (project / "loss.svg").read_text().strip() == "<svg>-Tsvg</svg>"
    assert (project / "loss.svg.in").read_text().startswith('digraph "loss"')


@pytest.mark.skipif(not __import__("shutil").which("dot"), reason="Graphviz not installed")
def test_graph_renders_with_real_graphviz(project):
    result = gradc("graph", "kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,3]", "-o",
                   "loss.svg", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "<svg" in (project / "loss.svg").read_text()


@pytest.mark.parametrize("args, fragment", [
    (["kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,3]", "-o", "g.svg"],
     "apt-get install graphviz"),
    (["kernels.py:loss", "--arg", "f32[3,", "-o", "g.dot"], "cannot parse spec 'f32[3,'"),
    (["kernels.py:nope", "--arg", "f32[3]"], "no function 'nope'"),
    (["kernels.py", "-o", "g.dot"], "expected FILE.py:FUNC"),
    (["kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,3]", "-o", "g.txt"],
     "unknown format '.txt'"),
    (["kernels.py:loss", "--arg", "f32[3,2]", "--arg", "f32[4,4]"], "loss failed to trace"),
    (["kernels.py:loss"], "give the argument specs of loss"),
], ids=["no-graphviz", "bad-spec", "no-function", "no-func", "bad-format", "trace", "no-specs"])
def test_graph_mistakes(project, args, fragment):
    no_dot = project / "nodot"
    no_dot.mkdir()
    result = gradc("graph", *args, cwd=project, env={"PATH": str(no_dot)})
    assert_one_line_error(result, fragment)


# ---- demo and cache ------------------------------------------------------------------------------

def test_demo(tmp_path):
    result = gradc("demo", "--steps", "3", "--models", "softmax_regression", "--engines", "c",
                   "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "softmax regression" in result.stdout and "%" in result.stdout


def test_cache_info_and_clear(tmp_path):
    env = {"GRADC_CACHE_DIR": str(tmp_path / "cache")}
    info = gradc("cache", "info", cwd=tmp_path, env=env)
    assert info.returncode == 0
    assert f"location  {tmp_path / 'cache'}" in info.stdout and "entries   0" in info.stdout
    compile_one = "import numpy as np, gradc as gc; gc.jit(lambda x: x * 3.0)(np.ones(2))"
    subprocess.run([sys.executable, "-c", compile_one], env=dict(os.environ, **env), check=True)
    info = gradc("cache", "info", cwd=tmp_path, env=env)
    assert "entries   1" in info.stdout and "size" in info.stdout
    cleared = gradc("cache", "clear", cwd=tmp_path, env=env)
    assert cleared.returncode == 0 and "removed 1 entry from" in cleared.stdout
    assert "entries   0" in gradc("cache", "info", cwd=tmp_path, env=env).stdout


def test_main_returns_the_exit_status(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GRADC_CACHE_DIR", str(tmp_path))
    assert main(["cache", "info"]) == 0
    assert main(["build", str(tmp_path / "missing.py")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_every_option_has_help_text():
    import argparse

    from gradc import cli, demo

    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from parsers(sub)

    for parser in [*parsers(cli._parser()), demo.make_parser()]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest} has no help"


def test_demo_torch_engine_without_torch_fails_loudly(tmp_path):
    fake = tmp_path / "site"
    fake.mkdir()
    (fake / "torch.py").write_text("raise ImportError('No module named torch (simulated)')\n")
    env = dict(os.environ, PYTHONPATH=f"{fake}{os.pathsep}{ROOT}")
    result = subprocess.run([sys.executable, "-m", "gradc", "demo", "--engines", "c,torch",
                             "--steps", "2"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the 'torch' engine needs PyTorch" in result.stderr
    assert "gradc demo:" not in result.stdout           # nothing was trained
