"""The benchmark's clock (bench/timing.py): batch sizes follow the steady state, not the first calls."""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import timing  # noqa: E402


def test_slow_first_calls_do_not_leave_batches_of_one_call():
    calls = []

    def call():                       # three slow first calls (a cold start), then fast ones
        calls.append(None)
        if len(calls) <= 3:
            time.sleep(0.04)
        else:                         # a spin: a 0.2 ms sleep can take a millisecond on a busy machine
            end = time.perf_counter() + 0.0002
            while time.perf_counter() < end:
                pass

    r = timing.measure(call, budget_s=0.3, min_batches=3, warmup_s=0.02, batch_s=0.02)
    assert r["batch_size"] >= 20, r["batch_size"]          # ~100 calls of 0.2 ms per 20 ms batch
    assert r["median_s"] < 0.002, r["median_s"]           # the slow calls are not in the median
    assert r["batches"] >= 3


def test_transformer_reference_gradients_match_gradc_in_float64():
    """The transformer workload's hand-written backward (the benchmark's check) against gradc's."""
    import numpy as np
    import gradc as gc
    from bench import workloads
    w = workloads.WORKLOADS["transformer[8x128x64]"]
    args = [a.astype(np.float64) for a in workloads.inputs_for(w)]
    value, grads = gc.value_and_grad(lambda *a: w.loss(gc, *a), argnums=w.argnums)(*args)
    ref_value, ref_grads = w.numpy_value_and_grad(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for name, got, want in zip(w.arg_names, grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * np.abs(want).max(), err_msg=name)


def test_train_step_bench_runs_an_engine_in_its_own_process(capsys):
    """bench/train_step.py on a tiny batch with the interpreted engine: a timed row, its weights
    checked against the first engine's (itself)."""
    from bench import train_step
    assert train_step.main(["--batches", "8", "--engines", "gradc-numpy", "--quick",
                            "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "| mlp[8] Adam step | gradc-numpy |" in out and "skipped" not in out
