"""np.array / np.asarray / np.sum / np.mean / np.stack ... of Python lists that hold gradc values
(`np.array([x, x * 2])`, `np.mean([a, b])`, `np.sum([a, b], axis=0)`).

NumPy converts a list in C: np.array and np.asarray never dispatch through __array_function__,
and a list hides its elements from the dispatch of np.sum and the rest. So, as autograd does with
its own `np.array`, gradc replaces these attributes of the numpy module by thin wrappers while a
trace is active (and for good from the first gc.Tensor that requires grad on, eager autodiff having
no scope). A wrapper calls NumPy's own function unless its first argument is a list or tuple that
holds a traced value or a gc.Tensor that requires grad; then gradc builds the array (one stack).
Limit: a name bound before tracing (`from numpy import array`) is NumPy's own and not covered.
"""
import functools
import threading

import numpy as np

from . import core

# np.<name>(list, ...): the list is one array ...
_WHOLE = ("array", "asarray", "asanyarray", "sum", "mean", "prod", "max", "min", "amax", "amin",
          "var", "std", "average", "cumsum", "cumprod")
# ... or a sequence of arrays, each of which may be a list (np.stack([[a, b], [c, d]])).
_EACH = ("stack", "vstack", "hstack", "column_stack", "concatenate")

_lock = threading.Lock()
_users = [0]            # active traces, all threads
_for_good = [False]     # set by the first gc.Tensor that requires grad
_installed = {}         # name -> (NumPy's function, its wrapper) while installed


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


def _install():
    from .methods import _tables
    _tables()          # NumPy function -> gradc function, keyed by NumPy's own functions
    for name in _WHOLE + _EACH:
        original = getattr(np, name, None)
        if original is None or hasattr(original, "_gradc_numpy"):
            continue
        wrapper = _wrapper(original, name)
        _installed[name] = (original, wrapper)
        setattr(np, name, wrapper)


def _restore():
    for name, (original, wrapper) in _installed.items():
        if getattr(np, name, None) is wrapper:     # leave a later monkeypatch of others alone
            setattr(np, name, original)
    _installed.clear()


_SEQUENCES = (list, tuple)


@functools.lru_cache(maxsize=None)
def _wrapper(original, name):
    each = name in _EACH

    @functools.wraps(original)
    def wrapper(obj, *args, **kwargs):
        if type(obj) not in _SEQUENCES or not holds_gradc(obj):
            return original(obj, *args, **kwargs)
        return _gradc_call(original, name, each, obj, args, kwargs)

    wrapper._gradc_numpy = original
    return wrapper


def _gradc_call(original, name, each, obj, args, kwargs):
    from . import creation
    from .methods import _tables
    if name == "array":
        dtype = args[0] if args else kwargs.get("dtype")
        return creation.array(obj, dtype, ndmin=kwargs.get("ndmin", 0))
    if name in ("asarray", "asanyarray"):
        return creation.asarray(obj, args[0] if args else kwargs.get("dtype"))
    value = [creation.asarray(o) for o in obj] if each else creation.asarray(obj)
    return _tables()[1][original](value, *args, **kwargs)


def holds_gradc(obj):
    """Whether the (nested) list or tuple obj holds a traced value or a gc.Tensor requiring grad.
    NOTE: one C-speed pass over the element types first, so lists of numbers cost little."""
    from .eager import Tensor
    kinds = set(map(type, obj))
    if core.Tracer in kinds:
        return True
    if Tensor in kinds and any(type(e) is Tensor and e.requires_grad for e in obj):
        return True
    return any(type(e) in _SEQUENCES and holds_gradc(e) for e in obj) \
        if not kinds.isdisjoint(_SEQUENCES) else False
