"""Pickling compiled functions by what defines them (API.md section 13).

A `gc.jit` function pickles as its Python function and options, a `Compiled` as that plus the
signature it was lowered for (gc.Spec leaves), a built AOT module as its wrapper source and
extension library bytes. Nothing of the process is sent (no cffi library, handle, workspace or
thread pool): the receiving process traces again and compiles, or finds the library in its disk
cache, so the result does not depend on the process that made it.
"""
import hashlib
import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

from .dtypes import Spec


def _by_reference(obj):
    """True when `obj.__module__` is imported (and not __main__) and its attribute path
    `obj.__qualname__` is obj itself, so the receiver can import it by name: what pickle does
    with functions, and cloudpickle unless the module was registered to be pickled by value."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module_name in (None, "__main__") or not qualname or module_name not in sys.modules:
        return False
    cloudpickle = sys.modules.get("cloudpickle")
    by_value = getattr(cloudpickle, "list_registry_pickle_by_value", lambda: ())()
    if any(module_name == m or module_name.startswith(m + ".") for m in by_value):
        return False
    target = sys.modules[module_name]
    for part in qualname.split("."):
        target = getattr(target, part, None)
    return target is obj


def reduce_jitted(jitted):
    """A decorated function importable by name goes by name (the receiver's own gc.jit object);
    otherwise the undecorated function goes through the pickler (cloudpickle sends it by value)
    with the options, and the receiver makes a fresh gc.jit of it."""
    if _by_reference(jitted):
        return jitted.__qualname__
    return _jitted, (jitted.fn, jitted.static_argnums, jitted.backend, jitted.debug_nans,
                     jitted.dynamic)


def _jitted(fn, static_argnums, backend, debug_nans=None, dynamic="auto"):
    from .jit import Jitted
    return Jitted(fn, static_argnums, backend, debug_nans, dynamic)


def abstract_leaf(leaf, signature):
    """What stands for a call's array leaf in a pickled Compiled: a gc.Spec, or for a weakly typed
    Python scalar a zero of its type (a Spec would lose the weak type, and so the promotion)."""
    shape, dtype, weak = signature
    return type(leaf)(0) if weak else Spec(shape, dtype)


def reduce_compiled(compiled):
    lowered = compiled.lowered
    if lowered.jitted is None or lowered.abstract_call is None:
        raise TypeError(f"cannot pickle {compiled!r}: it was not made by gc.jit(...).lower()")
    args, kwargs = lowered.abstract_call
    return _compiled, (lowered.jitted, tuple(args), kwargs)


def _compiled(jitted, args, kwargs):
    return jitted.lower(*args, **kwargs).compile()


# ---- built AOT modules ---------------------------------------------------------------------------
# The generated wrapper makes its module object an instance of a ModuleType subclass whose
# __reduce__ calls reduce_built_module when gradc is importable (else it pickles by name).

def _build_files(module):
    """(wrapper source, extension file name, extension bytes) of an imported built module."""
    extension = importlib.import_module(module._EXTENSION, module.__package__ or None)
    library = Path(extension.__file__)
    return Path(module.__file__).read_text(), library.name, library.read_bytes()


def _build_hash(source, library):
    return hashlib.sha256(source.encode() + b"\0" + library).hexdigest()[:24]


def reduce_built_module(module):
    """A built module by value: its wrapper's source and its extension's file, loaded by the
    receiver from a directory of the disk cache named by their hash (no compiler needed)."""
    return load_built_module, (module.__name__.rpartition(".")[2], *_build_files(module))


def load_built_module(name, source, library_name, library):
    """The module of a pickled AOT build: the one already imported when it is the same build,
    else imported from <cache>/aot/<hash>/ as the top-level modules `name` and `_name`."""
    from .cbackend.build import _atomic_write, cache_dir
    digest = _build_hash(source, library)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "_gradc_build_hash", None) is None and hasattr(loaded, "_EXTENSION"):
            loaded._gradc_build_hash = _build_hash(*_build_files(loaded)[::2])
        if getattr(loaded, "_gradc_build_hash", None) == digest:
            return loaded
        raise ImportError(f"cannot load the pickled gradc module {name!r}: another module of that "
                          f"name is already imported here ({getattr(loaded, '__file__', loaded)})")
    directory = cache_dir() / "aot" / digest
    directory.mkdir(parents=True, exist_ok=True)
    # A package build imports its extension relatively; loaded alone, it is a top-level module.
    source = source.replace(f"from ._{name} import ffi, lib", f"from _{name} import ffi, lib")
    paths = [directory / library_name, directory / f"{name}.py"]
    for path, data in zip(paths, (library, source.encode())):
        if not (path.exists() and path.read_bytes() == data):
            _atomic_write(path, data)
    ext_spec = importlib.util.spec_from_file_location(
        f"_{name}", paths[0], loader=importlib.machinery.ExtensionFileLoader(f"_{name}",
                                                                             str(paths[0])))
    if f"_{name}" not in sys.modules:
        sys.modules[f"_{name}"] = importlib.util.module_from_spec(ext_spec)
    spec = importlib.util.spec_from_file_location(name, paths[1])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    module._gradc_build_hash = digest
    return module
