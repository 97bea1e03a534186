"""Shrinking a failing program to a small one that fails the same way: drop outputs and statements,
route a statement's users to one of its operands, shrink input dimensions to 1, round the values,
drop the extra checks, greedily, as long as `fails(candidate)` holds."""
import itertools
import time

import numpy as np

from .program import Stmt


def prune(program):
    """Only the statements the outputs need, and only the inputs those use."""
    needed = set(program.outputs)
    kept = []
    for s in reversed(program.stmts):
        if s.var in needed:
            kept.append(s)
            needed.update(s.args)
    inputs = tuple((n, v) for n, v in program.inputs if n in needed)
    return program.with_(stmts=tuple(reversed(kept)), inputs=inputs)


def _rename(program, old, new):
    stmts = tuple(Stmt(s.var, s.template, tuple(new if a == old else a for a in s.args))
                  for s in program.stmts)
    outputs = tuple(dict.fromkeys(new if o == old else o for o in program.outputs))
    return program.with_(stmts=stmts, outputs=outputs)


def candidates(program):
    """Smaller programs, most promising first."""
    p = program
    if len(p.outputs) > 1:
        for o in p.outputs:
            yield p.with_(outputs=(o,))
    if p.hvp:
        yield p.with_(hvp=False)
    if p.split:
        yield p.with_(split=False)
    for i in reversed(range(len(p.stmts))):
        s = p.stmts[i]
        for a in dict.fromkeys(s.args):        # users of s read one of its operands instead
            q = _rename(p.with_(stmts=p.stmts[:i] + p.stmts[i + 1:]), s.var, a)
            if q.stmts:
                yield q
    for k, (name, value) in enumerate(p.inputs):
        for axis, d in enumerate(value.shape):
            for new in ([1] if d > 2 else []) + [d - 1] if d > 1 else []:
                smaller = np.take(value, np.arange(new), axis=axis)
                yield p.with_(inputs=p.inputs[:k] + ((name, smaller),) + p.inputs[k + 1:])
    rounded = tuple((n, np.round(v, 2)) for n, v in p.inputs)
    if any(not np.array_equal(a, b) for (_, a), (_, b) in zip(rounded, p.inputs)):
        yield p.with_(inputs=rounded)


def shrink(program, fails, budget_seconds=120, max_tries=400):
    """The smallest program found that still `fails`; also the number of candidates tried."""
    best = prune(program)
    if not fails(best):
        best = program
    start, tries = time.monotonic(), 0
    improved = True
    while improved and time.monotonic() - start < budget_seconds and tries < max_tries:
        improved = False
        for cand in itertools.islice(candidates(best), 200):
            cand = prune(cand)
            if cand.size() > best.size():
                continue
            tries += 1
            if fails(cand):
                best, improved = cand, True
                break
            if time.monotonic() - start > budget_seconds or tries >= max_tries:
                break
    return best, tries
