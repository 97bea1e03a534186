"""The C lowering's passes (gradc/cbackend/lower.py), each run alone on a plan made by the passes
before it, and the printed plan GRADC_DEBUG shows after each."""
import numpy as np
import pytest

import gradc as gc
from gradc.cbackend import lower as L, split
from gradc.cbackend.plan import Call, Loop


def graph_of(f, *args):
    return gc.jit(f).lower(*args).graph


def plan_until(graph, last, threads=1):
    """The plan after the passes up to and including `last`."""
    passes = L.PASSES[:L.PASSES.index(last) + 1]
    return L.lower(graph, threads, passes)


def node_named(graph, prim):
    return [n for n in graph.nodes if n.prim.name == prim]


def test_pass_list_is_ordered_and_named():
    assert [p.__name__ for p in L.PASSES] == ["batch_split", "flat_products", "products", "fusion",
                                              "loop_merging",
                                              "storage", "memory", "loop_bodies", "schedule",
                                              "outlining"]


def test_flat_products_makes_a_batch_against_one_matrix_one_product(monkeypatch):
    """x @ W for a stack x, and W's gradient: one product each, over the stack's rows; a graph
    the batch split takes keeps its batches (the split follows a batch axis, not merged rows)."""
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", float("inf"))      # not a batch split
    f = gc.value_and_grad(lambda W, x: gc.sum(gc.tanh(x @ W) ** 2), argnums=(0, 1))
    g = graph_of(f, np.ones((5, 3)), np.ones((4, 6, 5)))
    before = [n.shape for n in node_named(g, "matmul")]
    assert sorted(before) == [(4, 5, 3), (4, 6, 3), (4, 6, 5)]
    plan = plan_until(g, L.flat_products)
    assert sorted(n.shape for n in node_named(plan.graph, "matmul")) == [(5, 3), (24, 3), (24, 5)]
    assert not [n for n in node_named(plan.graph, "broadcast_to") if n.shape == (4, 5, 3)]
    assert [n.shape for n in node_named(plan.graph, "sum")] == [()]         # the loss's only
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", 0)
    kept = plan_until(g, L.flat_products, threads=2)
    assert kept.split is not None and len(node_named(kept.graph, "matmul")) == 3
    assert all(len(n.shape) == 3 for n in node_named(kept.graph, "matmul"))


def test_products_fold_a_transposed_operand_read_only_by_products():
    g = graph_of(lambda x, w: x.T @ w, np.ones((3, 2)), np.ones((3, 4)))
    plan = plan_until(g, L.products)
    (t,) = node_named(g, "transpose")
    assert plan.folded[t.id][1] is True and t.id not in plan.materialized


def test_products_materialize_a_view_another_step_reads():
    g = graph_of(lambda x, w: (gc.concatenate([x.T, w]), x.T @ w), np.ones((2, 2)), np.ones((2, 2)))
    plan = plan_until(g, L.products)
    (t,) = node_named(g, "transpose")
    assert t.id in plan.materialized and t.id not in plan.folded


def test_fusion_gives_each_computed_node_a_step():
    g = graph_of(lambda x, w: gc.sum(gc.exp(x @ w) * 2.0, axis=1), np.ones((3, 2)), np.ones((2, 4)))
    plan = plan_until(g, L.fusion)
    kinds = [(type(s).__name__, [m.prim.name for m in s.members] if isinstance(s, Loop)
              else s.node.prim.name) for s in plan.steps]
    assert kinds == [("Call", "matmul"), ("Loop", ["exp"]), ("Loop", ["mul"]), ("Loop", ["sum"])]


def test_loop_merging_joins_a_chain_and_its_reduction():
    g = graph_of(lambda x: gc.sum(gc.exp(x) * 2.0, axis=1), np.ones((3, 4)))
    plan = plan_until(g, L.loop_merging)
    assert len(plan.steps) == 1 and [m.prim.name for m in plan.steps[0].members] == \
        ["exp", "mul", "sum"]


def test_loop_merging_waits_for_a_reduction_read_elsewhere():
    g = graph_of(lambda x: x - gc.max(x, axis=1, keepdims=True), np.ones((3, 4)))
    plan = plan_until(g, L.loop_merging)
    loops = [s for s in plan.steps if isinstance(s, Loop)]
    (red,) = [s for s in loops if any(m.prim.name == "max" for m in s.members)]
    (sub,) = [s for s in loops if any(m.prim.name == "sub" for m in s.members)]
    assert red.index < sub.index


def test_storage_keeps_loop_locals_out_of_memory():
    g = graph_of(lambda x: gc.sum(gc.exp(x) * 2.0), np.ones((3, 4)))
    plan = plan_until(g, L.storage)
    (exp,) = node_named(g, "exp")
    assert exp.id not in plan.stored
    assert set(plan.output_of.values()) == {0}


def test_memory_reuses_the_space_of_dead_values():
    def f(x):
        a = gc.sum(gc.exp(x), axis=0)          # dead after b
        b = gc.sum(a * x, axis=1)
        c = gc.sum(gc.log(gc.abs(b) + 1.0) * x.T, axis=0)
        return gc.sum(c * gc.sum(x, axis=1))
    g = graph_of(f, np.ones((64, 64)))
    plan = plan_until(g, L.memory)
    assert all(off % 64 == 0 for off in plan.offsets.values())
    total = sum(n.nbytes for n in g.nodes if n.id in plan.offsets)
    assert plan.workspace_bytes < total + 64 * len(plan.offsets)
    assert len(set(plan.offsets.values())) < len(plan.offsets)     # some memory is reused


def test_schedule_threads_only_big_loops():
    big = graph_of(lambda x: gc.sum(gc.exp(x), axis=0), np.ones((512, 256)))
    small = graph_of(lambda x: gc.sum(gc.exp(x), axis=0), np.ones((8, 8)))
    assert max(s.threads for s in L.lower(big, 2).steps) == 2
    assert max(s.threads for s in L.lower(small, 2).steps) == 1
    assert max(s.threads for s in L.lower(big, 1).steps) == 1


def test_schedule_accumulates_a_sum_over_length_one_axes_at_the_innermost_level():
    g = graph_of(lambda x: gc.sum(x * 2.0, axis=0), np.ones((1, 4)))
    (loop,) = L.lower(g).steps
    (r,) = [m for m in loop.members if m.prim.name == "sum"]
    assert loop.accum[r.id] == len(loop.domain) == 1


def test_schedule_flat_loop_for_elementwise_chains():
    g = graph_of(lambda x, y: gc.exp(x) * y, np.ones((3, 4)), np.ones((3, 4)))
    (loop,) = L.lower(g).steps
    assert loop.flat


def rnn_grad(Wx, Wh, b, xs, h0):
    def loss(Wx, Wh, b):
        h = h0
        for t in range(xs.shape[0]):
            h = gc.tanh(xs[t] @ Wx + h @ Wh + b)
        return gc.sum(h * h)
    return gc.grad(loss, argnums=(0, 1, 2))(Wx, Wh, b)


def rnn_args(steps, batch=16, hidden=64):
    r = np.random.default_rng(0)
    return (r.normal(size=(32, hidden)).astype(np.float32),
            r.normal(size=(hidden, hidden)).astype(np.float32), np.zeros(hidden, np.float32),
            r.normal(size=(steps, batch, 32)).astype(np.float32),
            np.zeros((batch, hidden), np.float32))


def test_outlining_gives_repeated_steps_one_signature(monkeypatch):
    monkeypatch.setenv("GRADC_NUM_THREADS", "1")       # one kernel, not a batch split's block
    plan = L.lower(graph_of(rnn_grad, *rnn_args(6)))
    signatures = list(plan.outlined.values())
    assert signatures and max(signatures.count(s) for s in signatures) >= 4
    src = gc.jit(rnn_grad).lower(*rnn_args(6)).c_source
    assert "static GRADC_NOINLINE int gradc_kernel_step0(" in src


def test_outlining_tells_other_shapes_apart():
    g = graph_of(lambda x, y: (gc.exp(x) * 2.0, gc.exp(y) * 2.0), np.ones((3, 4)), np.ones((4, 3)))
    assert L.lower(g).outlined == {}


def test_batch_split_lowers_the_block_graph():
    g = graph_of(rnn_grad, *rnn_args(16))
    plan = plan_until(g, L.batch_split, threads=2)
    assert plan.split is not None and plan.graph is plan.split.block and plan.threads == 1
    assert plan_until(g, L.batch_split, threads=1).split is None


def test_debug_prints_the_plan_after_each_pass(monkeypatch, capsys):
    monkeypatch.setenv("GRADC_DEBUG", "1")
    L.lower(graph_of(lambda x, w: gc.sum(gc.relu(x @ w)), np.ones((3, 2)), np.ones((2, 4))))
    out = capsys.readouterr().out
    for p in L.PASSES:
        assert f"--- after {p.__name__}\nplan: " in out
    assert "call matmul" in out and "loop [3, 4]" in out and "memory: " in out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lowered_kernels_match_the_interpreter(dtype):
    args = rnn_args(5, batch=4, hidden=8)
    args = tuple(a.astype(dtype) for a in args)
    for got, want in zip(gc.jit(rnn_grad)(*args), gc.jit(rnn_grad, backend="numpy")(*args)):
        np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-10,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)
    assert all(isinstance(s, (Loop, Call)) for s in L.lower(graph_of(rnn_grad, *args)).steps)


def test_schedule_threads_follow_the_work_not_the_cores():
    def threads_of(n, cores):
        g = graph_of(lambda x: gc.exp(x) * 2.0, np.ones(n, np.float32))
        return max(s.threads for s in L.lower(g, cores).steps)
    assert threads_of(1 << 16, 16) == 2
    assert threads_of(1 << 17, 16) == 4
    assert threads_of(1 << 20, 16) == 16
    assert threads_of(1 << 20, 2) == 2


def test_batch_split_blocks_follow_the_work_not_the_cores():
    g16 = graph_of(rnn_grad, *rnn_args(16, batch=16))
    assert L.lower(g16, 16).split.blocks == 2          # not 16 blocks of one row
    g32 = graph_of(rnn_grad, *rnn_args(16, batch=32))
    split = L.lower(g32, 16).split
    assert split.blocks == 4 and split.rows == 8


def test_float32_and_float64_copies_of_a_step_are_not_one_function():
    """Found by the fuzzer on the regex outlining: concatenates of a float64 and a float32 pair
    read the same as text, shared one function, and wrote doubles into float outputs."""
    f = lambda a, b, c, d: (gc.concatenate([b, a]), gc.concatenate([d, c]))   # noqa: E731
    args = (np.ones((2, 1)), np.full((2, 1), 2.0), np.ones((2, 1), np.float32),
            np.full((2, 1), 2.0, np.float32))
    g = graph_of(f, *args)
    plan = L.lower(g)
    assert len(set(plan.outlined.values())) == len(plan.outlined) // 2 or not plan.outlined
    for got, want in zip(gc.jit(f)(*args), gc.jit(f, backend="numpy")(*args)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _clip_outputs(x):
    v = np.clip(x, -1.321, 0.906)
    return np.broadcast_to(v, v.shape), v


def _clip_everything(x, t, c0, c1):
    outs = _clip_outputs(x)
    value, grad = gc.value_and_grad(lambda x: gc.sum(_clip_outputs(x)[0] * c0)
                                    + gc.sum(_clip_outputs(x)[1] * c1))(x)
    return outs, value, grad, gc.jvp(_clip_outputs, (x,), (t,))[1]


def test_float64_and_float32_sums_in_one_loop():
    """A fuzzer finding (seed 20261204017468): the float64 and float32 copies of one program in one
    kernel fuse into a loop carrying sums of both dtypes; under `omp simd` GCC 12 -march=native
    got the float64 value wrong (2.76 for 4.15)."""
    r = np.random.default_rng(17468)
    x, t, c0, c1 = (r.uniform(-1.5, 1.5, (3, 2, 2, 4)) for _ in range(4))
    both = lambda a, b: (_clip_everything(*a), _clip_everything(*b))   # noqa: E731
    args = ((x, t, c0, c1), tuple(v.astype(np.float32) for v in (x, t, c0, c1)))
    for got, want in zip(gc.tree_leaves(gc.jit(both)(*args)),
                         gc.tree_leaves(gc.jit(both, backend="numpy")(*args))):
        np.testing.assert_allclose(got, want, rtol=1e-4 if got.dtype == np.float32 else 1e-12)


def test_schedule_decides_the_simd_pragma():
    """The schedule pass marks an innermost loop carrying sums of one dtype for `omp simd` (naming
    its sums), one carrying float32 and float64 sums only as independent (the GCC 12 miscompile
    above), and a loop whose sums go to memory across it neither; emission follows the plan."""
    one = graph_of(lambda x: (gc.sum(x * x, axis=1), gc.sum(gc.exp(x), axis=1)), np.ones((4, 8)))
    (loop,) = L.lower(one).steps
    assert len(loop.simd_sums) == 2 and not loop.ivdep
    assert {n.id for n in loop.members if n.prim.name == "sum"} == set(loop.simd_sums)
    assert "GRADC_SIMD_SUM(" in gc.jit(lambda x: gc.sum(x * x, axis=1)).lower(
        np.ones((4, 8))).c_source
    mixed = graph_of(lambda x, y: (gc.sum(x * x, axis=1), gc.sum(y * y, axis=1)),
                     np.ones((4, 8)), np.ones((4, 8), np.float32))
    loops = [s for s in L.lower(mixed).steps if isinstance(s, Loop)]
    assert any(len({m.dtype for m in s.members if m.prim.name == "sum"}) == 2 for s in loops)
    for s in loops:
        sums = [m for m in s.members if m.prim.name == "sum"]
        if len({m.dtype for m in sums}) == 2:
            assert s.simd_sums == () and s.ivdep
    src = gc.jit(lambda x, y: (gc.sum(x * x, axis=1), gc.sum(y * y, axis=1))).lower(
        np.ones((4, 8)), np.ones((4, 8), np.float32)).c_source
    assert "GRADC_SIMD_SUM(" not in src and "GRADC_IVDEP" in src
    outer = graph_of(lambda x: gc.sum(x * x, axis=0), np.ones((4, 8)))
    assert [(s.simd_sums, s.ivdep) for s in L.lower(outer).steps] == [((), True)]
    across = graph_of(lambda x: gc.sum(x * x, axis=(0, 2)), np.ones((2, 3, 4)))
    (loop,) = L.lower(across).steps
    assert loop.simd_sums == () and not loop.ivdep
    text = L.lower(one).as_text()
    assert "simd sums " in text


def test_schedule_shares_a_batch_of_small_products_by_its_members(monkeypatch):
    """8 products of 64x64x64, each small, 2.1M multiply-adds together; a batch of big ones is
    shared by rows."""
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", float("inf"))      # not a batch split

    def shared(q, threads):
        g = graph_of(lambda q, k: q @ gc.transpose(k, (0, 2, 1)), q, q)
        plan = plan_until(g, L.schedule, threads)
        return [(c.axis, c.blocks) for c in plan.steps if isinstance(c, Call)]
    q = np.ones((8, 64, 64), np.float32)
    assert shared(q, 2) == [("batch", 8)]
    assert shared(q, 16) == [("batch", 8)]
    assert shared(q, 1) == [("", 1)]
    assert shared(q[:, :8], 2) == [("", 1)]                         # small together too
    assert shared(np.ones((2, 256, 64), np.float32), 2) == [("rows", 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_batch_split_product_is_bitwise_the_one_thread_product(dtype, monkeypatch):
    from gradc.cbackend import backend
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 7, 64, 64)).astype(dtype)
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", float("inf"))      # not a batch split
    f = lambda q, k: q @ gc.transpose(k, (0, 2, 1))          # noqa: E731
    one = gc.jit(f)(q, k)
    monkeypatch.setattr(backend, "default_threads", lambda graph: 2)
    lowered = gc.jit(f).lower(q, k)
    assert "blocks of the batch" in lowered.c_source
    np.testing.assert_array_equal(lowered.compile()(q, k), one)
    np.testing.assert_allclose(one, q @ k.transpose(0, 2, 1), rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_wide_product_is_shared_by_columns(dtype, monkeypatch):
    """64x784 @ 784x256: each block packs all of the operand it does not split, so a product with
    more columns than rows is split by columns (W packed once), and gives the one-thread bits."""
    from gradc.cbackend import backend
    monkeypatch.setattr(split, "SPLIT_MIN_WORK", float("inf"))      # not a batch split
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((64, 784)).astype(dtype), rng.standard_normal((784, 256)).astype(dtype)
    f = lambda x, W: gc.tanh(x @ W)                                   # noqa: E731
    plan = plan_until(graph_of(f, x, W), L.schedule, 2)
    assert [(c.axis, c.blocks) for c in plan.steps if isinstance(c, Call)] == [("cols", 2)]
    tall = plan_until(graph_of(f, np.ones((1024, 784), dtype), W), L.schedule, 2)
    assert [(c.axis, c.blocks) for c in tall.steps if isinstance(c, Call)] == [("rows", 8)]
    one = gc.jit(f)(x, W)
    monkeypatch.setattr(backend, "default_threads", lambda graph: 2)
    lowered = gc.jit(f).lower(x, W)
    assert "2 blocks of 128 columns" in lowered.c_source
    np.testing.assert_array_equal(lowered.compile()(x, W), one)
    np.testing.assert_allclose(one, np.tanh(x.astype(np.float64) @ W), rtol=1e-4, atol=2e-4)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_flat_products_of_a_sum_over_a_batch_of_stack_times_matrix(backend):
    """sum over the batch of x @ W (found by the fuzzer, seed 20261222000036: the sum's product had
    already become one product)."""
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 6, 5)), rng.standard_normal((5, 3))
    f = gc.jit(lambda x, W: gc.sum(x @ W, axis=0), backend=backend)
    np.testing.assert_allclose(f(x, W), np.sum(x @ W, axis=0), rtol=1e-12, atol=1e-12)
    g = gc.jit(gc.grad(lambda x, W: gc.sum(gc.sum(x @ W, axis=0) ** 2), argnums=(0, 1)), backend=backend)
    want_x = np.broadcast_to(2 * np.sum(x @ W, axis=0) @ W.T, x.shape)
    want_W = np.einsum("btd,tn->dn", x, 2 * np.sum(x @ W, axis=0))
    got_x, got_W = g(x, W)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_W, want_W, rtol=1e-12, atol=1e-12)
