"""gc.debug_print (API.md section 11): runtime values printed on every call, in order, on both
backends, through the transforms; AOT builds drop the prints."""
import numpy as np
import pytest

import gradc as gc


def loss(w, x):
    h = gc.tanh(x @ w)
    gc.debug_print("h = {}, norm {n:.3f}", h, n=gc.sum(h * h))
    total = gc.sum(h)
    gc.debug_print("loss {:.4f}", total)
    return total


W, X = np.full(3, 0.1), np.arange(6.0).reshape(2, 3)


def _expected(w=W, x=X):
    h = np.tanh(x @ w)
    return [f"h = {h}, norm {np.sum(h * h):.3f}", f"loss {np.sum(h):.4f}"]


def _lines(capsys):
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("transform", ["jit", "jit(value_and_grad)", "jit(grad(grad))"])
def test_printed_on_every_call_in_order(backend, transform, capsys):
    if transform == "jit":
        f = gc.jit(loss, backend=backend)
    elif transform == "jit(value_and_grad)":
        f = gc.jit(gc.value_and_grad(loss), backend=backend)
    else:
        f = gc.jit(gc.grad(lambda w, x: gc.sum(gc.grad(loss)(w, x) ** 2)), backend=backend)
    first = f(W, X)
    assert _lines(capsys) == _expected()
    second = f(W * 2, X)          # the compiled call prints the new values
    assert _lines(capsys) == _expected(W * 2)
    f(W, X)
    assert _lines(capsys) == _expected()
    if transform == "jit(value_and_grad)":     # the printed values are not outputs
        assert np.shape(first[0]) == () and np.shape(first[1]) == (3,)
        np.testing.assert_allclose(second[0], np.sum(np.tanh(X @ (W * 2))))


def test_outside_jit_prints_at_once(capsys):
    loss(W, X)                                              # plain NumPy values
    assert _lines(capsys) == _expected()
    gc.grad(loss)(W, X)                                     # a transform run on the interpreter
    assert _lines(capsys) == _expected()
    t = gc.tensor(W, requires_grad=True)
    loss(t, X).backward()                                   # the eager engine
    assert _lines(capsys) == _expected()


def test_compiled_and_lowered(capsys):
    lowered = gc.jit(loss).lower(gc.Spec((3,), "float64"), gc.Spec((2, 3), "float64"))
    out = lowered.compile()(W, X)
    assert _lines(capsys) == _expected()
    assert len(lowered.graph.outputs) == 4                  # the loss and the three printed values
    bare = lowered.without_prints()
    assert len(bare.graph.outputs) == 1 and bare.prints == []
    assert bare.compile()(W, X) == out and _lines(capsys) == []


def test_aot_exports_drop_the_prints():
    mod = gc.Module("printing_kernels")
    mod.export(gc.Spec((3,), "float64"), gc.Spec((2, 3), "float64"))(loss)
    lowered = mod.exports[0].lowered
    assert len(lowered.graph.outputs) == 1 and lowered.prints == []


def test_per_iteration_prints_one_line_a_row():
    """The hook a loop primitive uses: values stacked over iterations print one line each."""
    from gradc.printing import DebugPrint
    item = DebugPrint("step {} h={h:.1f}", ("h",), 2, "model.py:3", per_iteration=True)
    lines = item.format([np.arange(3), np.array([0.5, 1.5, 2.5])])
    assert lines == ["step 0 h=0.5", "step 1 h=1.5", "step 2 h=2.5"]


def test_constant_values_and_plain_text_print_on_every_call(backend, capsys):
    def fn(x):
        gc.debug_print("step")
        gc.debug_print("scale {}", 2.5)
        return x * 2.5
    f = gc.jit(fn, backend=backend)
    f(np.ones(2))
    f(np.ones(2))
    assert _lines(capsys) == ["step", "scale 2.5"] * 2


def _scan_with_prints(x):
    def body(c, xt):
        gc.debug_print("c = {}", c)
        return c * xt, c
    return gc.scan(body, 1.0, x)


def _nested_scans(x):
    def outer(c, row):
        def inner(d, v):
            gc.debug_print("d = {} at {}", d, v)
            return d + v, d
        d, _ = gc.scan(inner, c, row)
        return d, d
    return gc.scan(outer, 0.0, x)


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_prints_inside_loops_one_line_per_iteration(backend, capsys):
    value, ys = gc.jit(_scan_with_prints, backend=backend)(np.array([2.0, 3.0, 4.0]))
    assert float(value) == 24.0 and ys.tolist() == [1.0, 2.0, 6.0]
    assert capsys.readouterr().out.splitlines() == ["c = 1.0", "c = 2.0", "c = 6.0"]
    gc.jit(_nested_scans, backend=backend)(np.arange(4.0).reshape(2, 2))
    assert capsys.readouterr().out.splitlines() == ["d = 0.0 at 0.0", "d = 0.0 at 1.0",
                                                   "d = 1.0 at 2.0", "d = 3.0 at 3.0"]
    reverse = gc.jit(lambda x: gc.scan(lambda c, v: (gc.debug_print("r {}", c), (c + v, c))[1],
                                       0.0, x, reverse=True), backend=backend)
    reverse(np.array([1.0, 2.0, 3.0]))
    assert capsys.readouterr().out.splitlines() == ["r 0.0", "r 3.0", "r 5.0"]   # as they ran
    g = gc.jit(gc.grad(lambda x: _scan_with_prints(x)[0]), backend=backend)(np.array([2.0, 3.0]))
    assert g.tolist() == [3.0, 2.0]
    assert capsys.readouterr().out.splitlines() == ["c = 1.0", "c = 2.0"]
