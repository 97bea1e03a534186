"""C spellings shared by emission and the batch split's driver: types and literals."""
import math

import numpy as np

CTYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t",
          "bool": "uint8_t"}
EXPR_CTYPES = dict(CTYPES, bool="_Bool")


def passed_consts(graph):
    """The constants a kernel takes as data, in argument order: arrays (single values are literals)."""
    return [n for n in graph.nodes if n.prim.name == "const" and n.size != 1]


def ctype(dtype):
    return CTYPES[np.dtype(dtype).name]


def literal(value, dtype):
    """A C literal of dtype for a NumPy scalar."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        v = float(value)
        if math.isnan(v):
            return "NAN"
        if math.isinf(v):
            return "INFINITY" if v > 0 else "(-INFINITY)"
        text = repr(v)
        text = text if ("." in text or "e" in text) else text + ".0"
        text = f"{text}f" if dtype == np.float32 else text
        return f"({text})" if v < 0 else text
    if dtype.kind == "b":
        return "1" if value else "0"
    text = f"{int(value)}LL" if dtype.itemsize == 8 else str(int(value))
    return f"({text})" if int(value) < 0 else text
