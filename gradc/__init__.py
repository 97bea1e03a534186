"""gradc: trace numpy-like Python into a graph, differentiate it, and compile forward and reverse
passes to fused C through cffi.

>>> import numpy as np, gradc as gc
>>> step = gc.jit(gc.grad(lambda w, x: gc.sum((x @ w) ** 2)))
>>> step(np.ones(2), np.eye(2))
array([2., 2.])

Documentation: https://gradc.readthedocs.io (the source's ``docs/`` folder, built with MkDocs).
"""
__version__ = "0.1.0"

import numpy as _np

from . import nn, optim, random
from .dtypes import Spec
from .eager import Tensor, no_grad, tensor
from .errors import (CheckError, CompileError, ConcretizationError, GradientCheckError,
                     GradientHazardWarning, NonFiniteError, ShapeError)
from .loop import fori_loop, scan
from .jit import Compiled, Jitted, Lowered, jit
from .hazards import lint
from .crosscheck import check
from .printing import debug_print
from . import compile_log as _compile_log
_compile_log.enable_from_env()
# modules that register ops (registry.py); gc.linalg.inv ... live in the linalg module
from . import ops, elementwise, reductions, shapes, einsum, indexing, creation, linalg  # noqa: F401
from .registry import PUBLIC as _PUBLIC, supported
from .primitives import PRIMITIVES
from .transforms import (GradCheckReport, check_grad, grad, hessian, jacobian, jvp, value_and_grad,
                         vjp)
from .cache import cache_info, clear_cache
from .tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

float32, float64, int32, int64 = _np.float32, _np.float64, _np.int32, _np.int64
from .aot import Module

globals().update(_PUBLIC)     # gc.<name> for every exported op (registry.py)

# The public API (API.md); tests/test_public_api.py checks that every name here has a docstring
# with an example and that no other public name leaks out of the package.
__all__ = [
    # compiling and inspecting
    "jit", "Jitted", "Lowered", "Compiled", "Spec", "Module",
    # derivatives and pytrees
    "grad", "value_and_grad", "vjp", "jvp", "jacobian", "hessian", "check_grad", "GradCheckReport",
    "stop_gradient", "tree_map", "tree_flatten", "tree_unflatten", "tree_leaves",
    # loops that stay loops
    "scan", "fori_loop",
    # operations
    "abs", "add", "argmax", "argmin", "astype", "broadcast_to", "clip", "concatenate", "cos",
    "divide", "dot", "equal", "exp", "expand_dims", "expm1", "greater", "greater_equal", "less",
    "less_equal", "log", "log1p", "logsumexp", "matmul", "max", "maximum", "mean", "min",
    "minimum", "multiply", "negative", "not_equal", "ones_like", "power", "relu", "reshape",
    "sigmoid", "sign", "sin", "softplus", "sqrt", "square", "squeeze", "stack", "subtract", "sum",
    "tanh", "transpose", "where", "zeros_like",
    "float32", "float64", "int32", "int64",
    # the eager engine
    "tensor", "Tensor", "no_grad",
    # seeing what happens
    "debug_print", "lint", "check", "CheckError", "GradientHazardWarning", "NonFiniteError",
    # training, random numbers, neural-network losses
    "optim", "random", "nn",
    # errors and the cache
    "CompileError", "ConcretizationError", "GradientCheckError", "ShapeError",
    "cache_info", "clear_cache",
    "PRIMITIVES",
]
# every op the registry exports (gc.var, gc.einsum, gc.arcsinh, ...), and the list of them
__all__ += sorted(set(_PUBLIC) - set(__all__)) + ["supported"]
