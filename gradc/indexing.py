"""Item assignment on gradc values, functional underneath (API.md section 8): `x[key] = v`,
`x[key] += v` and JAX's `x.at[key].set(v) / .add(v) / .multiply(v)` compute a new array, which
item assignment then binds to the same Python object (views taken earlier keep the old values).
Gradients reach both x and v: the update is a scatter of v and a `where` over x."""
import numpy as np

from . import core, ops
from .errors import ConcretizationError, user_location
from .registry import export


def _is_traced_mask(k):
    return isinstance(k, core.Tracer) and k.dtype == bool


def update(x, key, value, how):
    """x with x[key] replaced by value (how="set"), increased by it ("add") or multiplied by it.
    Repeated indices: "add" accumulates (as np.add.at / JAX), "set" keeps the last value (NumPy)."""
    x = ops.asarray(x)
    key = key if isinstance(key, tuple) else (key,)
    if any(_is_traced_mask(k) for k in key):
        return _update_masked(x, key, value, how)
    positions = ops.getitem(np.arange(x.size, dtype=np.int64).reshape(x.shape), key)
    value = ops.astype(value, x.dtype) if not ops._is_python_scalar(value) else np.asarray(
        value, x.dtype)
    if how == "multiply":
        value = ops.multiply(ops.getitem(x, key), value)
        how = "set"
    value = ops.reshape(ops.broadcast_to(value, ops.asarray(positions).shape), (-1,))
    positions = ops.reshape(positions, (-1,))
    flat = ops.reshape(x, (-1,))
    if how == "add":
        out = ops.add(flat, _scatter(value, positions, x.size))
    elif isinstance(positions, np.ndarray):       # known positions: the last write wins, as NumPy
        last = len(positions) - 1 - np.unique(positions[::-1], return_index=True)[1]
        hit = np.zeros(x.size, bool)
        hit[positions] = True
        out = ops.where(hit, _scatter(ops.getitem(value, last), positions[last], x.size), flat)
    else:       # positions known only at run time: repeated ones add up (as JAX, undefined there)
        hit = ops.greater(_scatter(np.ones(positions.shape, x.dtype), positions, x.size), 0)
        out = ops.where(hit, _scatter(value, positions, x.size), flat)
    return ops.reshape(out, x.shape)


def _scatter(values, positions, size):
    return ops.bind(ops.P.scatter_add, values, positions, shape=(size,), wrap=False)


def _update_masked(x, key, value, how):
    """x[mask] = v for a traced mask: a `where`, possible when v is one value (its shape would
    otherwise depend on how many elements the mask selects)."""
    (mask,) = key if len(key) == 1 else (None,)
    v = ops.asarray(value) if not ops._is_python_scalar(value) else value
    if mask is None or ops.asarray(mask).shape != x.shape[:ops.asarray(mask).ndim] or np.ndim(v):
        raise ConcretizationError(
            f"x[mask] = v with a traced boolean mask at {user_location()}: the number of selected "
            "elements depends on the data, so v must be one value and the mask the only index; "
            "for others use gc.where(mask, v, x)")
    mask = ops.reshape(mask, ops.asarray(mask).shape + (1,) * (x.ndim - ops.asarray(mask).ndim))
    new = {"set": lambda: v, "add": lambda: ops.add(x, v),
           "multiply": lambda: ops.multiply(x, v)}[how]()
    return ops.where(mask, new, x)


def setitem(target, key, value):
    """`target[key] = value` for a traced value: target now holds the updated array."""
    if isinstance(target, core.Tracer):
        # An argument too (x[0] = v in fn): the trace keeps its own tracer of the input node,
        # and the caller's array is never touched.
        new = update(target, key, value, "set")
        target.node, target.trace, target.weak = new.node, new.trace, False
        return
    target._rebind(update(target, key, value, "set"))      # gc.Tensor (see Tensor._rebind)


@export()
def at(x):
    """JAX's `x.at` for any array, NumPy's too: gc.at(x)[1:, 0].add(v) is a new array.

    >>> import numpy as np, gradc as gc
    >>> gc.at(np.zeros(3))[np.array([0, 0, 2])].add(1.0)
    array([2., 0., 1.])
    """
    return IndexUpdates(x)


class IndexUpdates:
    """`x.at[key]`: the JAX-style functional updates of x at key."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __getitem__(self, key):
        return IndexUpdate(self.array, key)


class IndexUpdate:
    __slots__ = ("array", "key")

    def __init__(self, array, key):
        self.array, self.key = array, key

    def get(self):
        """x[key]."""
        return ops.getitem(self.array, self.key)

    def set(self, value):
        """A new array: x with x[key] = value."""
        return update(self.array, self.key, value, "set")

    def add(self, value):
        """A new array: x with value added at key (repeated indices add up)."""
        return update(self.array, self.key, value, "add")

    def multiply(self, value):
        """A new array: x with x[key] multiplied by value."""
        return update(self.array, self.key, value, "multiply")


def expand_masks(key):
    """Concrete boolean masks in an index replaced by their nonzero() index arrays (NumPy's
    meaning); a traced mask raises: the result's shape would depend on the data."""
    from .eager import Tensor
    out = []
    for k in key:
        if isinstance(k, (np.ndarray, Tensor)) or (isinstance(k, list) and k and all(
                isinstance(e, (bool, np.bool_)) for e in k)):
            concrete = np.asarray(k)
            if concrete.dtype == bool:
                out.extend(np.nonzero(concrete))
                continue
        if _is_traced_mask(k):
            raise ConcretizationError(
                f"x[mask] with a traced boolean mask at {user_location()}: the result's shape "
                "depends on the data. Use gc.where(mask, x, 0) (e.g. gc.sum(gc.where(mask, x, 0)) "
                "for the sum of the selected elements)")
        out.append(k)
    return tuple(out)
