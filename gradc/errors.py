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
    """Shapes that do not fit an operation, found while tracing; names the op, the shapes and
    your file:line.

    >>> import numpy as np, gradc as gc
    >>> try:
    ...     gc.jit(lambda a, b: a @ b)(np.ones((2, 3)), np.ones((2, 3)))
    ... except gc.ShapeError as e:
    ...     print(str(e).split(" (at")[0])
    matmul: shapes (2, 3) and (2, 3) do not fit: inner dimensions 3 and 2 differ
    """


class ConcretizationError(TypeError):
    """Python control flow or conversion on a traced (symbolic) value.

    >>> import numpy as np, gradc as gc
    >>> def f(x):
    ...     return x if x > 0 else -x          # Python's if on a traced value
    >>> try:
    ...     gc.jit(f)(np.array(1.0))
    ... except gc.ConcretizationError as e:
    ...     print("gc.where" in str(e))
    True
    """


class GradientCheckError(AssertionError):
    """Reverse-mode gradients disagree with finite differences (raised by gc.check_grad).

    >>> import gradc as gc
    >>> issubclass(gc.GradientCheckError, AssertionError)
    True
    """


class CompileError(RuntimeError):
    """The C compiler is missing or rejected the generated code.

    The message holds the compiler's output and the path of the generated C (kept on disk);
    ``backend="numpy"`` still works.

    >>> import gradc as gc
    >>> issubclass(gc.CompileError, RuntimeError)
    True
    """


def user_location():
    """The file:line of the innermost frame outside the gradc package ('?' if there is none)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and not filename.startswith("<frozen"):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"

