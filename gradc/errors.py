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


class UnsupportedError(NotImplementedError, AttributeError):
    """A NumPy function, method or attribute gradc does not implement (an AttributeError too, so
    hasattr() answers False for missing attributes)."""


SUPPORTED_HINT = ("see gc.supported() (also shipped as gradc/SUPPORTED.md) or "
                  f"{docs_link('numpy-functions')} for what gradc implements")


def library_caller():
    """(module.function, user's file:line) when the innermost frame outside gradc belongs to an
    installed library (site-packages, NumPy's own code); else None."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None or not _in_library(frame):
        return None
    while frame.f_back is not None and _in_library(frame.f_back):   # the function the user called
        frame = frame.f_back
    name = f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"
    caller = frame.f_back
    where = (f"{os.path.basename(caller.f_code.co_filename)}:{caller.f_lineno}"
             if caller is not None else "?")
    return name, where


def _in_library(frame):
    f = frame.f_code.co_filename
    return not f.startswith(_PACKAGE_DIR) and any(
        part in f for part in ("site-packages", "dist-packages", os.sep + "lib" + os.sep + "python",
                               "<frozen"))


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


class NonFiniteError(FloatingPointError):
    """debug_nans: a call made a NaN or Inf from finite values. Attributes: `op`, `phase` (as
    written: "the forward pass", "the gradient of sqrt"), `loc` (the user's file:line), `node`.

    >>> f = gc.jit(gc.grad(lambda x: gc.sum(gc.sqrt(x))), debug_nans=True)
    >>> try:
    ...     f(np.zeros(2))
    ... except gc.NonFiniteError as e:
    ...     print(e.op, "/", e.phase)
    div / the gradient of sqrt
    """

    def __init__(self, message, op=None, phase=None, loc=None, node=None):
        super().__init__(message)
        self.op, self.phase, self.loc, self.node = op, phase, loc, node


class CheckError(AssertionError):
    """gc.check: the backends or finite differences disagree. `report` holds the full comparison.

    >>> try:
    ...     gc.check(lambda x: gc.where(x > 0, x, 0.0), np.array([1e-9, 1.0]))
    ... except gc.CheckError as e:
    ...     print(e.report.ok)
    False
    """

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class GradientHazardWarning(UserWarning):
    """A pattern whose gradient (or value) is NaN, Inf or inaccurate at some inputs (gc.lint).

    >>> [f.rule for f in gc.lint(lambda x: gc.sqrt(gc.sum(x ** 2)), np.ones(3))]
    ['norm-at-zero']
    """


# Modules that only route a user's call to a primitive (the user wrote the operation); a node made
# under any other gradc module comes from a composite (gc.nn.softmax, np.linalg.norm...).
_ENTRY_MODULES = {"core.py", "ops.py", "methods.py", "registry.py", "eager.py", "transforms.py",
                  "jit.py", "interpreter.py", "printing.py", "autodiff.py", "tree.py", "dtypes.py"}


def made_by_library():
    """True when the operation being traced was called by one of gradc's composites rather than
    directly by the user's code (the gradient-hazard lint judges only the user's own operations)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR):
            return False
        if os.path.basename(filename) not in _ENTRY_MODULES:
            return True
        frame = frame.f_back
    return False


def user_location():
    """The file:line of the innermost frame outside the gradc package ('?' if there is none)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_PACKAGE_DIR) and not filename.startswith("<frozen"):
            return f"{os.path.basename(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"

