"""gradc: trace numpy-like Python into a graph, differentiate it, and compile forward and reverse
passes to fused C through cffi. See README.md and API.md."""
__version__ = "0.1.0"

import numpy as np

from . import nn
from .dtypes import Spec
from .eager import Tensor, no_grad, tensor
from .errors import (CheckError, CompileError, ConcretizationError, GradientCheckError,
                     GradientHazardWarning, NonFiniteError, ShapeError)
from .jit import Compiled, Jitted, Lowered, jit
from .hazards import lint
from .crosscheck import check
from .printing import debug_print
from . import compile_log as _compile_log
_compile_log.enable_from_env()
from .ops import (abs, add, argmax, argmin, astype, broadcast_to, clip, concatenate, cos, divide, dot,
                  equal, exp, expand_dims, expm1, greater, greater_equal, less, less_equal, log,
                  log1p, logsumexp, matmul, max, maximum, mean, min, minimum, multiply, negative,
                  not_equal, ones_like, power, relu, reshape, sigmoid, sign, sin, softplus, sqrt,
                  square, squeeze, stack, stop_gradient, subtract, sum, tanh, transpose, where,
                  zeros_like)
from .primitives import PRIMITIVES
from .transforms import (GradCheckReport, check_grad, grad, hessian, jacobian, jvp, value_and_grad,
                         vjp)
from .cache import cache_info, clear_cache
from .tree import tree_flatten, tree_leaves, tree_map, tree_unflatten

float32, float64, int32, int64 = np.float32, np.float64, np.int32, np.int64
from .aot import Module
