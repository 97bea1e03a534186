"""Executors a Lowered graph can be compiled for: "numpy" (the interpreter) and "c" (native code)."""
import time

from . import interpreter


class NumpyExecutable:
    """backend="numpy": the graph interpreted node by node."""

    def __init__(self, lowered):
        start = time.perf_counter()
        self.graph = lowered.graph
        self.stats = {"nodes": len(self.graph.nodes), "kernels": 0, "workspace_bytes": 0,
                      "compile_seconds": time.perf_counter() - start, "cache_hit": False,
                      "backend": "numpy"}


    def __call__(self, leaves):
        return interpreter.run(self.graph, leaves)


class _NumpyBackend:
    @staticmethod
    def compile(lowered):
        return NumpyExecutable(lowered)


class _MissingCBackend:
    @staticmethod
    def compile(lowered):
        raise NotImplementedError("the C backend is not built yet; use backend='numpy'")

    generate = compile


def get(name):
    if name == "numpy":
        return _NumpyBackend
    if name == "c":
        try:
            from .cbackend import backend as c_backend
        except ImportError:
            return _MissingCBackend
        return c_backend
    raise ValueError(f"unknown backend {name!r}: expected 'c' or 'numpy'")
