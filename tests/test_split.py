"""The batch split (gradc/cbackend/split.py): which graphs split and along which axes, when a
kernel splits, and that split kernels compute what the interpreter computes."""
import os
import shutil

import numpy as np
import pytest

import gradc as gc
from gradc.cbackend import backend, split

pytestmark = [pytest.mark.skipif(shutil.which(os.environ.get("CC") or "cc") is None
                                 and shutil.which("gcc") is None,
                                 reason="no C compiler on this machine"),
              pytest.mark.usefixtures("isolated_cache")]

RNG = np.random.default_rng(4321)
TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-12)}


@pytest.fixture
def forced(monkeypatch):
    """Every graph that splits does, on 2 threads, however little work it has."""
    monkeypatch.setattr(backend, "default_threads", lambda graph: 2)
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", 0)


def rnn_loss(Wx, Wh, b, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = gc.tanh(xs[t] @ Wx + h @ Wh + b)
    return gc.sum(h * h)


def rnn_inputs(dtype, steps=3, batch=6, hidden=5, features=3):
    Wx = (0.5 * RNG.standard_normal((features, hidden))).astype(dtype)
    Wh = (0.5 * RNG.standard_normal((hidden, hidden))).astype(dtype)
    b = (0.1 * RNG.standard_normal(hidden)).astype(dtype)
    xs = RNG.standard_normal((steps, batch, features)).astype(dtype)
    return Wx, Wh, b, xs, RNG.standard_normal((batch, hidden)).astype(dtype)


def graph_of(f, *args):
    return gc.jit(f).lower(*args).graph


def labels_of(s):
    return ([s.input_axis(i) for i in range(len(s.graph.inputs))],
            [s.output_label(i) for i in range(len(s.graph.outputs))])


def assert_same_as_interpreter(f, args, dtype):
    """The split kernel (it must be one) against the interpreter run in float64."""
    lowered = gc.jit(f).lower(*args)
    assert "blocks of" in lowered.c_source, lowered.c_source
    kept = [np.copy(a) for a in args]
    got = lowered.compile()(*args)
    for a, k in zip(args, kept):
        np.testing.assert_array_equal(a, k)           # inputs are never modified
    wide = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in args]
    want = gc.jit(f, backend="numpy")(*wide)
    got_leaves, want_leaves = gc.tree_leaves(got), gc.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        assert np.shape(g) == np.shape(w)
        scale = max(1.0, float(np.max(np.abs(w)))) if np.size(w) else 1.0
        np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=TOL[dtype]["rtol"],
                                   atol=TOL[dtype]["atol"] * scale)
    again = lowered.compile()(*args)
    for g, a in zip(got_leaves, gc.tree_leaves(again)):
        np.testing.assert_array_equal(g, a)          # partial sums added in block order, not timing


# ---- which graphs split, and how ------------------------------------------------------------------

def test_an_rnn_splits_along_its_batch_with_the_weights_whole_and_their_gradients_partial():
    args = rnn_inputs(np.float32)
    s = split.find_split(graph_of(gc.value_and_grad(rnn_loss, argnums=(0, 1, 2)), *args), 2)
    assert s is not None and s.size == 6 and s.rows == 3
    # xs is (steps, batch, features): batched along axis 1; the loss and the gradients are sums
    # over the batch, so each block returns its rows' share.
    assert labels_of(s) == ([None, None, None, 1, 0], [split.PARTIAL] * 4)
    block_xs = s.block.inputs[3]
    assert block_xs.shape == (3, 3, 3) and s.block.inputs[0] is s.graph.inputs[0]


def test_a_weight_of_the_batchs_size_stays_whole():
    """Batch 5 = hidden 5 = features 5 (the weights' every axis could be the batch's)."""
    args = rnn_inputs(np.float64, steps=2, batch=4, hidden=4, features=4)
    s = split.find_split(graph_of(gc.grad(rnn_loss, argnums=(0, 1)), *args), 2)
    assert labels_of(s) == ([None, None, None, 1, 0], [split.PARTIAL] * 2)


X = RNG.standard_normal((6, 3))


@pytest.mark.parametrize("name, f", [
    ("rows minus their mean (a partial sum read beside rows)",
     lambda x: gc.sum(gc.tanh(x - gc.mean(x, axis=0)))),
    ("max across the batch", lambda x: gc.sum(gc.max(x, axis=0) * 2.0)),
    ("neighbouring rows", lambda x: gc.sum(x[1:] * x[:-1])),
    ("a constant array beside the rows", lambda x: gc.sum(x * np.arange(6.0)[:, None])),
    ("a reshape that mixes the batch into other axes", lambda x: gc.sum(gc.tanh(x.reshape(-1)))),
    ("a product over the batch read as rows", lambda x: gc.sum(x @ (x.T @ x))),
])
def test_graphs_that_mix_the_rows_do_not_split(name, f):
    assert split.find_split(graph_of(gc.value_and_grad(f), X), 2) is None, name


def test_a_kernel_splits_only_when_its_work_on_one_thread_pays_for_the_threads():
    small = rnn_inputs(np.float32, steps=2)
    big = rnn_inputs(np.float32, steps=16, batch=16, hidden=64, features=32)
    rnn_grad = gc.grad(rnn_loss, argnums=(0, 1, 2))
    assert split.choose(graph_of(rnn_grad, *small), 2) is None
    assert split.choose(graph_of(rnn_grad, *big), 2) is not None
    assert split.choose(graph_of(rnn_grad, *big), 1) is None

    # Splittable, but most of the work is on the weights alone: every block would redo it.
    W, x = RNG.standard_normal((300, 300)), RNG.standard_normal((8, 300))
    weights_heavy = graph_of(lambda W, x: gc.sum(gc.tanh(x @ (W @ W @ W))), W, x)
    assert split.find_split(weights_heavy, 2) is not None
    assert split.choose(weights_heavy, 2) is None


# ---- split kernels against the interpreter -------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_split_rnn_gives_the_interpreters_value_and_gradients(dtype, forced):
    assert_same_as_interpreter(gc.value_and_grad(rnn_loss, argnums=(0, 1, 2, 3, 4)),
                               rnn_inputs(dtype), np.dtype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_of_every_kind_from_a_split_kernel(dtype, forced):
    """Rows along a later axis (copied out), rows along the first axis (written in place), a
    replicated output, float and integer partial sums."""
    x = RNG.standard_normal((3, 8, 4)).astype(dtype)      # batch of 8 along axis 1
    W = RNG.standard_normal((4, 5)).astype(dtype)

    def f(x, W):
        h = gc.tanh(x @ W)                                  # (3, 8, 5)
        return h, gc.exp(h[0]), W * 2.0, gc.sum(h * h), gc.sum(h > 0)
    assert_same_as_interpreter(f, (x, W), np.dtype(dtype))
    s = split.find_split(graph_of(f, x, W), 2)
    assert labels_of(s) == ([1, None], [1, 0, None, split.PARTIAL, split.PARTIAL])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_embedding_lookup_splits_and_its_gradient_adds_the_blocks_rows(dtype, forced):
    table = RNG.standard_normal((7, 4)).astype(dtype)
    W = RNG.standard_normal((4, 3)).astype(dtype)
    ids = np.array([3, 0, 3, 6, 1, 3, 0, 2])        # repeats within and across the blocks

    def loss(table, W, ids):
        return gc.sum(gc.tanh(table[ids] @ W) ** 2)
    f = gc.value_and_grad(loss, argnums=(0, 1))
    assert_same_as_interpreter(f, (table, W, ids), np.dtype(dtype))
    assert labels_of(split.find_split(graph_of(f, table, W, ids), 2)) == \
        ([None, None, 0], [split.PARTIAL] * 3)


def test_an_index_out_of_range_in_one_block_raises(forced):
    table, W = RNG.standard_normal((7, 4)), RNG.standard_normal((4, 3))
    f = gc.jit(lambda table, W, ids: gc.sum(gc.tanh(table[ids] @ W)))
    ids = np.array([1, 2, 3, 4, 5, 6, 0, 2])
    assert "blocks of" in f.lower(table, W, ids).c_source
    f(table, W, ids)
    bad = ids.copy()
    bad[6] = 7                                      # in the second block
    with pytest.raises(IndexError):
        f(table, W, bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_rnn_with_its_input_projection_hoisted_still_splits(dtype, forced):
    """xs @ Wx for all steps at once, (T, B, D) @ (D, H): the batch (axis 1) stays a batch of
    products until after the split (flat_products makes one product only in kernels left whole)."""
    Wx, Wh, b, xs, h0 = rnn_inputs(dtype)

    def loss(Wx, Wh, b, xs, h0):
        P = xs @ Wx + b
        h = h0
        for t in range(xs.shape[0]):
            h = gc.tanh(P[t] + h @ Wh)
        return gc.sum(h * h)
    f = gc.value_and_grad(loss, argnums=(0, 1, 2))
    assert_same_as_interpreter(f, (Wx, Wh, b, xs, h0), np.dtype(dtype))
    s = split.find_split(graph_of(f, Wx, Wh, b, xs, h0), 2)
    assert labels_of(s)[0] == [None, None, None, 1, 0]
