"""The exceptions gradc raises, and where in the user's code an error happened."""
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Where the documentation (docs/, built with MkDocs) is published; error messages link to pages.
DOCS_URL = "https://gradc.readthedocs.io/en/latest"


def docs_link(page):
    """The URL of a documentation page, e.g. docs_link("guide/jit") for docs/guide/jit.md."""
    return f"{DOCS_URL}/{page}/"


class ShapeError(ValueError):
    """Shapes that do not fit an operation, found while tracing."""


class ConcretizationError(TypeError):
    """Python control flow or conversion on a traced (symbolic) value."""


class GradientCheckError(AssertionError):
    """Reverse-mode gradients disagree with finite differences."""


class CompileError(RuntimeError):
    """The C compiler is missing or rejected the generated code."""


def user_location():
    """The file:line of the innermost frame outside the gradc package ('?' if there is none)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and not filename.startswith("<frozen"):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"

