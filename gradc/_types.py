"""Type aliases for the public API's hints (documentation for readers and type checkers)."""
from typing import Any, Callable, Sequence, Tuple, Union

# What gradc's functions accept as an array: NumPy arrays and scalars, Python numbers and nested
# lists, gc.Tensor, and the traced values inside gc.jit and the transforms.
ArrayLike = Any
# What they return: a NumPy array on NumPy inputs, a gc.Tensor on tensors, a traced value when
# tracing.
Array = Any
# Nested tuples, lists and dicts of arrays (dicts flatten in sorted-key order).
PyTree = Any
ArgNums = Union[int, Sequence[int]]
Shape = Union[int, Tuple[int, ...]]
Axis = Union[None, int, Sequence[int]]

__all__ = ["ArrayLike", "Array", "PyTree", "ArgNums", "Shape", "Axis", "Callable"]
