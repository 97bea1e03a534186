"""gc.linalg: inverse, solve, determinants and the Cholesky factor of square matrices (batched as
NumPy), on the linalg primitives; np.linalg.<name>(traced) dispatches here."""
import re

import numpy as np

from . import ops
from . import primitives as P
from .errors import ShapeError, user_location
from .ir import describe_phase
from .registry import export
from .reductions import norm  # noqa: F401 -- gc.linalg.norm


def _square(a, name):
    a = ops._float(a)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{name}: needs square matrices (..., n, n), got {a.shape} "
                         f"(at {user_location()})")
    return a


@export("linalg.inv", public=False)
def inv(a):
    """The inverse of each square matrix, as numpy.linalg.inv."""
    return ops.bind(P.inv, _square(a, "inv"))


@export("linalg.solve", public=False)
def solve(a, b):
    """x with a @ x = b; b is a vector (..., n) or matrices (..., n, m), as numpy.linalg.solve."""
    a, b = ops._promote(_square(a, "solve"), ops._float(b))
    vector = b.ndim == 1          # NumPy 2: b is (M,) or (..., M, K), never a batch of vectors
    rhs = ops.reshape(b, b.shape + (1,)) if vector else b
    batch = ops.broadcast_shapes("solve", a.shape[:-2], rhs.shape[:-2])
    a = ops.broadcast_to(a, batch + a.shape[-2:])
    rhs = ops.broadcast_to(rhs, batch + rhs.shape[-2:])
    x = ops.bind(P.solve, a, rhs)
    return ops.reshape(x, x.shape[:-1]) if vector else x


@export("linalg.det", public=False)
def det(a):
    return ops.bind(P.det, _square(a, "det"), part="det")


@export("linalg.slogdet", public=False)
def slogdet(a):
    """(sign, log|det|) of each square matrix, as numpy.linalg.slogdet."""
    a = _square(a, "slogdet")
    return ops.bind(P.det, a, part="sign"), ops.bind(P.det, a, part="logabs")


@export("linalg.cholesky", public=False)
def cholesky(a, upper=False):
    """The lower Cholesky factor L (a = L L^T) of symmetric positive definite matrices."""
    out = ops.bind(P.cholesky, _square(a, "cholesky"))
    return ops.swap_last(out) if upper else out


# The C kernels' linalg error codes (GRADC_ERR_<name> in csrc/gradc_runtime.h): what went wrong,
# and in which primitives.
_KERNEL_ERRORS = {"SINGULAR": ("Singular matrix", ("inv", "solve")),
                  "NOT_PD": ("Matrix is not positive definite", ("cholesky",))}


def failed(nodes, detail):
    """NumPy's LinAlgError naming the op(s) and the user's line(s) where it happened."""
    sites = sorted({f"np.linalg.{n.prim.name} at {n.loc}" + (
        f" (in {describe_phase(n.phase)})" if getattr(n.phase, "rule", None) else "")
        for n in nodes}) or ["np.linalg"]
    derived = any(getattr(n.phase, "rule", None) for n in nodes)
    return np.linalg.LinAlgError(f"{' or '.join(sites)}: {detail}" + (
        "" if derived else " (NumPy raises LinAlgError for this input too)"))


def kernel_error(code, graph):
    """The LinAlgError for a C kernel's linalg error code (None for other codes)."""
    from .cbackend.build import CSRC
    names = {int(value): name for name, value in re.findall(
        r"#define GRADC_ERR_(\w+)\s+(\d+)", (CSRC / "gradc_runtime.h").read_text())}
    if names.get(code) not in _KERNEL_ERRORS:
        return None
    detail, prims = _KERNEL_ERRORS[names[code]]
    return failed([n for n in graph.nodes if n.prim.name in prims], detail)
