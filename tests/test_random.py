"""gc.random (API.md section 12): Threefry-2x32 against Random123's known answers (through a
scalar reference written here, independent of the library's vectorised one), the same bits
eagerly, on both backends and in an AOT build, and the distributions' shapes and moments."""
import numpy as np
import pytest

import gradc as gc
from gradc.primitives import threefry2x32

MASK = 0xFFFFFFFF


def threefry_scalar(k0, k1, c0, c1):
    """Threefry-2x32-20 on Python ints, following Random123's threefry.h."""
    rot = (13, 15, 26, 6, 17, 29, 16, 24)
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = (c0 + ks[0]) & MASK, (c1 + ks[1]) & MASK
    for i in range(20):
        x0 = (x0 + x1) & MASK
        r = rot[i % 8]
        x1 = (((x1 << r) | (x1 >> (32 - r))) & MASK) ^ x0
        if i % 4 == 3:
            s = i // 4 + 1
            x0 = (x0 + ks[s % 3]) & MASK
            x1 = (x1 + ks[(s + 1) % 3] + s) & MASK
    return x0, x1


# Random123's known-answer vectors for threefry2x32_20 (kat_vectors): key, counter, result.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, want", KNOWN_ANSWERS)
def test_threefry_known_answers(key, counter, want):
    assert threefry_scalar(*key, *counter) == want
    got = threefry2x32(*key, *counter)
    assert (int(got[0]), int(got[1])) == want


def reference_bits(key, n):
    """(first word, second word) of elements 0..n-1 of a random array under key."""
    k0, k1 = int(key[0]) & MASK, int(key[1]) & MASK
    words = [threefry_scalar(k0, k1, i >> 32, i & MASK) for i in range(n)]
    return np.array([w[0] for w in words], np.int64), np.array([w[1] for w in words], np.int64)


KEYS = [gc.random.key(0), gc.random.key(2 ** 40 + 12345), np.array([MASK, 7], np.int64)]


def draw_all(key):
    return {"bits": gc.random.split(key, 5),
            "u32": gc.random.uniform(key, (3, 7)),
            "u64": gc.random.uniform(key, (21,), dtype=np.float64),
            "n32": gc.random.normal(key, (4, 5)),
            "n64": gc.random.normal(key, (20,), dtype=np.float64),
            "mask": gc.random.bernoulli(key, 0.3, (6, 4))}


@pytest.mark.parametrize("key", KEYS, ids=["key0", "key2^40", "keymax"])
def test_bits_and_uniforms_equal_the_reference(key):
    w0, w1 = reference_bits(key, 24)
    got = draw_all(key)
    np.testing.assert_array_equal(got["bits"].ravel(), w0[:10])
    np.testing.assert_array_equal(got["u32"].ravel(), ((w0[:21] >> 8) * 2.0 ** -24).astype(np.float32))
    np.testing.assert_array_equal(got["u64"],
                                  ((w0[:21] >> 5) * 67108864.0 + (w1[:21] >> 6)) * 2.0 ** -53)
    u = ((w0 >> 8) * 2.0 ** -24).astype(np.float32)
    np.testing.assert_array_equal(got["mask"].ravel(), u < np.float32(0.3))


@pytest.mark.parametrize("key", KEYS[:2], ids=["key0", "key2^40"])
@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_same_values_eager_and_compiled(key, backend):
    """Bits and uniforms are equal bit for bit; normals to float tolerance (libm vs NumPy)."""
    want = draw_all(key)
    got = gc.jit(draw_all, backend=backend)(key)
    for name, w in want.items():
        assert got[name].dtype == w.dtype and got[name].shape == w.shape, name
        if name.startswith("n"):
            rtol = 1e-5 if w.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(got[name], w, rtol=rtol, atol=rtol, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name], w, err_msg=name)


def test_split_keys_differ_and_are_deterministic():
    key = gc.random.key(42)
    keys = gc.random.split(key, 4)
    assert keys.shape == (4, 2) and keys.dtype == np.int64
    assert len({tuple(k) for k in keys}) == 4
    np.testing.assert_array_equal(keys, gc.random.split(gc.random.key(42), 4))
    k1, k2 = gc.random.split(key)
    assert not np.array_equal(gc.random.uniform(k1, (8,)), gc.random.uniform(k2, (8,)))


def test_keys_split_inside_jit_equal_eager_ones():
    def two_draws(key):
        k1, k2 = gc.random.split(key)
        return gc.random.uniform(k1, (3,)), gc.random.normal(k2, (3,), dtype=np.float64)

    want = two_draws(gc.random.key(3))
    got = gc.jit(two_draws)(gc.random.key(3))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def test_moments_and_ranges():
    key = gc.random.key(7)
    u = gc.random.uniform(key, (100_000,), dtype=np.float64)
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    z = gc.random.normal(key, (100_000,), dtype=np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(np.mean(np.abs(z) < 1) - 0.6827) < 0.005       # the normal's central mass
    b = gc.random.bernoulli(key, 0.3, (100_000,))
    assert abs(b.mean() - 0.3) < 0.005
    r = gc.random.uniform(key, (1000,), minval=-2.0, maxval=3.0)
    assert -2 <= r.min() and r.max() < 3 and r.min() < -1.9 and r.max() > 2.9


@pytest.mark.parametrize("backend", ["numpy", "c"])
def test_dropout_in_a_compiled_gradient(backend):
    """Inverted dropout inside gc.jit(gc.grad): the gradient is the mask over p."""
    def loss(x, key):
        keep = gc.random.bernoulli(key, 0.75, x.shape)
        return gc.sum(gc.where(keep, x / 0.75, 0.0))

    x, key = np.ones((4, 8), np.float32), gc.random.key(11)
    g = gc.jit(gc.grad(loss), backend=backend)(x, key)
    mask = gc.random.bernoulli(key, 0.75, x.shape)
    np.testing.assert_allclose(g, mask / np.float32(0.75), rtol=1e-6)


@pytest.mark.parametrize("bad, error, match", [
    (lambda: gc.random.uniform(np.zeros(3, np.int64), (2,)), TypeError, "integer array of shape"),
    (lambda: gc.random.uniform(np.zeros(2), (2,)), TypeError, "integer array of shape"),
    (lambda: gc.random.uniform(gc.random.key(0), (2,), dtype=np.int32), TypeError, "float32"),
    (lambda: gc.random.normal(gc.random.key(0), (2.5,)), TypeError, "shape must be"),
    (lambda: gc.random.key(1.5), TypeError, "seed must be"),
    (lambda: gc.random.split(gc.random.key(0), 0), TypeError, "num must be"),
])
def test_bad_arguments_raise(bad, error, match):
    with pytest.raises(error, match=match):
        bad()


def test_aot_build_gives_the_same_numbers(tmp_path):
    """An AOT export drawing random numbers from a key argument equals the eager draws bit for
    bit, and an exported Adam step equals the eager one."""
    import shutil
    import sys
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler")
    mod = gc.Module("random_aot_test")

    @mod.export("i64[2]")
    def draws(key):
        k1, k2 = gc.random.split(key)
        return gc.random.uniform(k1, (5,)), gc.random.uniform(k2, (4,), dtype=np.float64)

    opt = gc.optim.adam(0.1, weight_decay=0.01)
    params_spec = {"w": "f64[3]"}

    @mod.export(params_spec, {"count": "i64[]", "mu": params_spec, "nu": params_spec},
                params_spec)
    def adam_step(params, state, grads):
        return opt.update(params, grads, state)

    mod.build(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        import random_aot_test
        key = gc.random.key(123)
        got = random_aot_test.draws(key)
        params, grads = {"w": np.array([1.0, -2.0, 0.5])}, {"w": np.array([0.3, 0.1, -1.0])}
        state = opt.init(params)
        got_step = random_aot_test.adam_step(params, state, grads)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("random_aot_test", None)
        sys.modules.pop("_random_aot_test", None)
    want = draws(key)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    want_params, want_state = opt.update(params, grads, state)      # gc.optim in AOT too
    np.testing.assert_allclose(got_step[0]["w"], want_params["w"], rtol=1e-12)
    assert int(got_step[1]["count"]) == 1
