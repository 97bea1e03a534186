"""The documentation: every ```python block of docs/ runs (each page's blocks in order, in one
namespace, as a reader follows the page), the generated supported-NumPy page lists what gradc
dispatches, and, where MkDocs is installed (the `docs` extra), the site builds with warnings as
errors."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(p for p in DOCS.rglob("*.md"))


def test_every_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", [p for p in PAGES if BLOCK.search(p.read_text())],
                         ids=lambda p: str(p.relative_to(DOCS)))
def test_page_examples_run(page, tmp_path, monkeypatch, isolated_cache):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    text = page.read_text()
    for match in BLOCK.finditer(text):
        line = text[:match.start()].count("\n") + 2
        try:
            exec(compile(match.group(1), f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except ModuleNotFoundError as exc:      # a page about an optional extra (gradc[dask])
            if exc.name not in ("dask", "distributed", "cloudpickle"):
                raise
            pytest.skip(f"needs {exc.name} (an optional extra)")


def test_numpy_functions_page_is_generated_from_the_dispatch_tables():
    sys.path.insert(0, str(DOCS))
    try:
        import hooks
    finally:
        sys.path.remove(str(DOCS))
    page = (DOCS / "numpy-functions.md").read_text()
    rendered = hooks.on_page_markdown(page, page=None)
    for name in ("`np.exp`", "`np.sum`", "`np.matmul`", "`np.where`"):
        assert name in rendered
    from gradc.support import numpy_names
    names = numpy_names()
    assert all(f"`{n}`" in rendered for n in names["ufuncs"] + names["functions"])


@pytest.mark.skipif(shutil.which("mkdocs") is None, reason="MkDocs not installed (the docs extra)")
def test_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").exists()
