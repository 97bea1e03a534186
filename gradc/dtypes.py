"""dtypes gradc supports, NEP 50 promotion with weakly typed Python scalars, and gc.Spec."""
import re

import numpy as np

from .symbolic import Dim

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)

SUPPORTED = (float32, float64, int32, int64, bool_)
SHORT_NAMES = {"f32": float32, "f64": float64, "i32": int32, "i64": int64, "bool": bool_}
_SHORT_OF = {v: k for k, v in SHORT_NAMES.items()}

# A stand-in Python scalar per kind, so np.result_type applies NEP 50's weak-scalar rules.
_WEAK_STANDIN = {"b": False, "i": 0, "u": 0, "f": 0.0}


def short_name(dtype):
    return _SHORT_OF.get(np.dtype(dtype), np.dtype(dtype).name)


def is_float(dtype):
    return np.dtype(dtype).kind == "f"


def canonical(dtype):
    """Maps any NumPy dtype to one gradc supports, or raises TypeError."""
    dtype = np.dtype(dtype)
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")       # byte-swapped data is converted, never misread
    if dtype in SUPPORTED:
        return dtype
    if dtype.kind == "f" and dtype.itemsize < 4:
        return float32
    if dtype.kind == "f" and dtype.itemsize > 8:
        return float64
    if dtype.kind in "iu":
        return int64 if dtype.itemsize >= 4 else int32
    raise TypeError(f"gradc does not support dtype {dtype} (supported: float32, float64, "
                    "int32, int64, bool)")


def promote(operands):
    """Result dtype of operands given as (dtype, weak) pairs, following NumPy 2 (NEP 50)."""
    args = [_WEAK_STANDIN[np.dtype(d).kind] if weak else np.dtype(d) for d, weak in operands]
    return canonical(np.result_type(*args))


def _dimension(d):
    if isinstance(d, str):
        return Dim.named(d)
    if isinstance(d, Dim):
        return d
    return int(d)


class Spec:
    """An abstract argument: shape and dtype. Spec((64, 784), "float32") or Spec.parse("f32[64,784]").

    >>> import gradc as gc
    >>> spec = gc.Spec.parse("f32[64,784]")
    >>> spec.shape, spec.dtype
    ((64, 784), dtype('float32'))
    """

    _PATTERN = re.compile(r"^\s*(f32|f64|i32|i64|bool)\s*\[\s*([0-9A-Za-z_,\s]*)\]\s*$")

    def __init__(self, shape, dtype="float32"):
        # A dimension given by name ("n") is named (API.md section 10): any size, read at run time.
        self.shape = tuple(_dimension(s) for s in shape)
        if any(isinstance(s, int) and s < 0 for s in self.shape):
            raise ValueError(f"Spec shape must be non-negative, got {self.shape}")
        self.dtype = canonical(dtype)

    @classmethod
    def parse(cls, text):
        """Parses the short form: f32[128,784], i64[64], f32[] (a scalar), f32[n,784] (named)."""
        match = cls._PATTERN.match(text) if isinstance(text, str) else None
        if match is not None and not all(re.match(r"^([0-9]+|[A-Za-z_][A-Za-z0-9_]*)$", d)
                                         for d in match.group(2).replace(" ", "").split(",") if d):
            match = None
        if match is None:
            raise ValueError(f"cannot parse spec {text!r}: expected e.g. 'f32[64,784]' with dtype "
                             "f32, f64, i32, i64 or bool")
        dims = [d for d in match.group(2).replace(" ", "").split(",") if d]
        return cls(tuple(int(d) if d.isdigit() else d for d in dims), SHORT_NAMES[match.group(1)])

    def __repr__(self):
        return f"{short_name(self.dtype)}[{','.join(map(repr, self.shape))}]"

    def __eq__(self, other):
        return isinstance(other, Spec) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))
