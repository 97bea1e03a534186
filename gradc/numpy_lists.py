"""np.array / np.asarray / np.sum / np.mean / np.stack ... of Python lists that hold gradc values
(`np.array([x, x * 2])`, `np.mean([a, b])`, `np.sum([a, b], axis=0)`).

NumPy converts a list in C: np.array and np.asarray never dispatch through __array_function__,
and a list hides its elements from the dispatch of np.sum and the rest. So, as autograd does with
its own `np.array`, gradc replaces these attributes of the numpy module by thin wrappers while a
trace is active (and for good from the first gc.Tensor that requires grad on, eager autodiff having
no scope). A wrapper calls NumPy's own function unless its first argument is a list or tuple that
holds a traced value or a gc.Tensor that requires grad (NumPy's own call tells: see _wrapper);
then gradc builds the array (one stack node).
Limit: a name bound before tracing (`from numpy import array`) is NumPy's own and not covered.
"""
import functools
import threading

import numpy as np

from . import core
from .errors import ConcretizationError

# np.<name>(list, ...): the list is one array ...
_WHOLE = ("array", "asarray", "asanyarray", "sum", "mean", "prod", "max", "min", "amax", "amin",
          "var", "std", "average", "cumsum", "cumprod")
# ... or a sequence of arrays, each of which may be a list (np.stack([[a, b], [c, d]])).
_EACH = ("stack", "vstack", "hstack", "column_stack", "concatenate")

_lock = threading.Lock()
_users = [0]            # active traces, all threads
_for_good = [False]     # set by the first gc.Tensor that requires grad
_wrappers = []          # (name, NumPy's function, its wrapper), made on first install
_installed = []         # the entries of _wrappers now in the numpy module
_grad_tensors_converted = [0]    # bumped by gc.Tensor.__array__ of a tensor that requires grad


def enter():
    """A trace starts: install the wrappers (counted, so nested and concurrent traces share)."""
    with _lock:
        _users[0] += 1
        if not _installed:
            _install()


def leave():
    """A trace ends (normally or by an error): the last one out restores NumPy's functions."""
    with _lock:
        _users[0] -= 1
        if _users[0] == 0 and not _for_good[0]:
            _restore()


def keep_installed():
    """Eager autodiff is in use (gc.Tensor requiring grad): the wrappers stay from now on."""
    if not _for_good[0]:
        with _lock:
            _for_good[0] = True
            if not _installed:
                _install()


def grad_tensor_converted():
    _grad_tensors_converted[0] += 1


def _install():
    if not _wrappers:
        from .methods import _tables
        table = _tables()[1]        # NumPy function -> gradc function, made before wrapping
        for name in _WHOLE + _EACH:
            original = getattr(np, name, None)
            if original is not None:
                _wrappers.append((name, original, _wrapper(original, name, table)))
    for entry in _wrappers:
        if getattr(np, entry[0]) is entry[1]:      # never wrap someone else's replacement
            setattr(np, entry[0], entry[2])
            _installed.append(entry)


def _restore():
    for name, original, wrapper in _installed:
        if getattr(np, name) is wrapper:
            setattr(np, name, original)
    _installed.clear()


_SEQUENCES = (list, tuple)


def _wrapper(original, name, table):
    each = name in _EACH
    Tracer = core.Tracer

    @functools.wraps(original)
    def wrapper(obj, *args, **kwargs):
        if type(obj) not in _SEQUENCES:
            return original(obj, *args, **kwargs)
        # NumPy first: a list without gradc values costs one comparison more. NumPy signals the
        # others: an n-d traced value refuses conversion, 0-d ones become object arrays (or a
        # traced result), and a gc.Tensor that requires grad counts its conversion.
        seen = _grad_tensors_converted[0]
        try:
            out = original(obj, *args, **kwargs)
        except ConcretizationError:
            if not holds_gradc(obj):
                raise
        else:
            if seen == _grad_tensors_converted[0] and type(out) is not Tracer and not (
                    type(out) is np.ndarray and out.dtype == object) or not holds_gradc(obj):
                return out
        return _gradc_call(table.get(original), name, each, obj, args, kwargs)

    wrapper._gradc_numpy = original
    return wrapper


def _gradc_call(fn, name, each, obj, args, kwargs):
    from . import creation
    if name == "array":
        dtype = args[0] if args else kwargs.get("dtype")
        return creation.array(obj, dtype, ndmin=kwargs.get("ndmin", 0))
    if name in ("asarray", "asanyarray"):
        return creation.asarray(obj, args[0] if args else kwargs.get("dtype"))
    return fn([creation.asarray(o) for o in obj] if each else creation.asarray(obj),
              *args, **kwargs)


def holds_gradc(obj):
    """Whether the (nested) list or tuple obj holds a traced value or a gc.Tensor requiring grad."""
    for e in obj:
        kind = type(e)
        if kind is core.Tracer or (kind in _SEQUENCES and holds_gradc(e)) or (
                kind.__name__ == "Tensor" and getattr(e, "requires_grad", False)):
            return True
    return False
