"""The README's tour runs as written: every ```python block, each on its own (a reader copies one
block into a fresh interpreter), in a temporary directory."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(path):
    """(line number, code) of every ```python block of a Markdown file."""
    text = path.read_text()
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


BLOCKS = python_blocks(README)


def test_the_readme_has_a_tour():
    assert len(BLOCKS) >= 4


# Blocks that show an optional extra (gradc[dask]) skip where it is not installed.
OPTIONAL = {"dask", "distributed", "cloudpickle"}


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{n}" for n, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        # run as a script: `if __name__ == "__main__":` blocks run too
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__main__"})
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL:
            raise
        pytest.skip(f"needs {exc.name} (an optional extra)")


EXCERPT = re.compile(r'^```python title="([^"]+)"\n(.*?)^```', re.S | re.M)


def test_excerpts_are_verbatim_from_their_files():
    """A block titled with a file (```python title="gradc/primitives.py") quotes that file."""
    root = README.parent
    excerpts = EXCERPT.findall(README.read_text())
    assert excerpts
    for path, code in excerpts:
        assert code.strip() in (root / path).read_text(), f"README's excerpt of {path} is stale"
