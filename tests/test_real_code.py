"""Realistic NumPy training losses (tests/real_code.py: plain NumPy, nothing gradc-specific) run
unchanged through gc.grad and gc.jit(gc.value_and_grad(...)); their values equal plain NumPy's and
their gradients match central finite differences of the plain NumPy function along random
directions (float64)."""
import numpy as np
import pytest

import gradc as gc
from real_code import CASES

EPS = 1e-6


def _perturbed(args, argnums, directions, scale):
    args = list(args)
    for i, d in zip(argnums, directions):
        args[i] = gc.tree_map(lambda a, v: np.asarray(a, np.float64) + scale * v, args[i], d)
    return args


def _directional_check(loss, args, argnums, grads, what):
    r = np.random.default_rng(7)
    for _ in range(2):
        directions = [gc.tree_map(lambda a: r.standard_normal(np.shape(a)), args[i])
                      for i in argnums]
        fd = (loss(*_perturbed(args, argnums, directions, EPS))
              - loss(*_perturbed(args, argnums, directions, -EPS))) / (2 * EPS)
        predicted = sum(float(np.sum(np.asarray(g) * v))
                        for gi, d in zip(grads, directions)
                        for g, v in zip(gc.tree_leaves(gi), gc.tree_leaves(d)))
        assert abs(predicted - fd) <= 1e-5 * max(1.0, abs(fd)), \
            f"{what}: directional derivative {predicted!r} != finite differences {fd!r}"


@pytest.mark.parametrize("name, loss, argnums, make_args", CASES, ids=[c[0] for c in CASES])
def test_real_code_runs_unchanged(name, loss, argnums, make_args):
    args = make_args(np.random.default_rng(0))
    nums = argnums if isinstance(argnums, tuple) else (argnums,)
    want = float(loss(*args))                                       # plain NumPy
    grads = gc.grad(loss, argnums=nums)(*args)
    _directional_check(loss, args, nums, grads, f"{name} gc.grad")
    value, jit_grads = gc.jit(gc.value_and_grad(loss, argnums=nums))(*args)
    assert abs(float(value) - want) <= 1e-10 * max(1.0, abs(want)), f"{name}: {value} != {want}"
    _directional_check(loss, args, nums, jit_grads, f"{name} gc.jit(gc.value_and_grad)")
