"""MkDocs hook: fills the supported-NumPy-functions page from gradc's dispatch tables, so the page
lists exactly what the code supports (gradc.support)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "<!-- numpy-functions-table -->"


def on_page_markdown(markdown, page, **kwargs):
    if PLACEHOLDER not in markdown:
        return markdown
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from gradc.support import numpy_names_markdown
    return markdown.replace(PLACEHOLDER, numpy_names_markdown())
