"""gc.linalg: inverse, solve, determinants and the Cholesky factor of square matrices (batched as
NumPy), on the linalg primitives; np.linalg.<name>(traced) dispatches here."""
from . import ops
from . import primitives as P
from .errors import ShapeError, user_location
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
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1] and b.ndim != 2)
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
