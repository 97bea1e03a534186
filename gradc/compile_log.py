"""The compile log (API.md section 11): the logger "gradc" reports every trace and compile at INFO
with its reason and time; GRADC_LOG_COMPILES=1 sends it to stderr. Only the paths that trace or
compile log anything: a call that reuses its kernel never reaches this module."""
import logging
import os
import sys
from collections import namedtuple

from .dtypes import short_name

logger = logging.getLogger("gradc")

CacheInfo = namedtuple("CacheInfo", "hits misses entries")


def enable_from_env():
    """GRADC_LOG_COMPILES=1: INFO records of the "gradc" logger go to stderr (once)."""
    if os.environ.get("GRADC_LOG_COMPILES", "") in ("", "0"):
        return
    if not any(getattr(h, "_gradc_compile_log", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("gradc: %(message)s"))
        handler._gradc_compile_log = True
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _type(shape, dtype):
    return f"{short_name(dtype)}{list(shape)}".replace(" ", "")


def reason(old_key, new_key, names):
    """Why a call traces again: 'first call', "new shape for argument X: (17, 784) was
    (32, 784)", ... old_key / new_key are jit cache keys (tree, statics, leaf signatures)."""
    if old_key is None:
        return "first call"
    (old_tree, old_static, old_sigs), (tree, static, sigs) = old_key, new_key
    if old_tree != tree:
        return "new argument structure (pytree or keyword arguments)"
    if old_static != static:
        old = dict(old_static)
        changed = [f"new value of static argument {i}: {v!r} was {old.get(i)!r}"
                   for i, v in static if old.get(i) != v]
        return "; ".join(changed) or "new static arguments"
    changes = []
    for name, (shape, dtype, weak), (o_shape, o_dtype, o_weak) in zip(names, sigs, old_sigs):
        if shape != o_shape:
            changes.append(f"new shape for argument {name}: {shape} was {o_shape}")
        if dtype != o_dtype:
            changes.append(f"new dtype for argument {name}: {dtype} was {o_dtype}")
        elif weak != o_weak:
            changes.append(f"argument {name} is {'a Python scalar' if weak else 'an array'} now")
    return "; ".join(changes) or "new signature"


def per_shape(fn_name, why):
    logger.info("%s cannot have named sizes (%s): it gets a kernel per shape from now on", fn_name,
                why)


def traced(fn_name, why, seconds, lowered):
    if logger.isEnabledFor(logging.INFO):
        sig = ", ".join(f"{n}: {_type(s.shape, s.dtype)}"
                        for n, s in zip(lowered.in_names, lowered.in_specs))
        logger.info("traced %s(%s) in %.1f ms: %s; %d nodes after simplification", fn_name, sig,
                    seconds * 1e3, why, len(lowered.graph.nodes))


def compiled(fn_name, backend, seconds, stats):
    if logger.isEnabledFor(logging.INFO):
        how = "disk-cache hit" if stats.get("cache_hit") else "built"
        logger.info("compiled %s for backend=%r in %.1f ms (%s, kernels: %s)", fn_name, backend,
                    seconds * 1e3, how, stats.get("kernels", "?"))
