"""Errors of API.md section 7 that apply without a C compiler, the eager Tensor engine's rules
(section 4), input safety, and numerical stability at large magnitudes."""
import inspect
import os

import numpy as np
import pytest

import gradc as gc
from conftest import assert_close

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
THIS_FILE = os.path.basename(__file__)


def close(got, want, what=""):
    assert_close(np.asarray(got, np.float64), np.asarray(want, np.float64), F64, what)


def mentions_shape(message, shape):
    """True when `message` shows `shape` in one of the usual spellings."""
    dims = [str(d) for d in shape]
    spellings = {str(tuple(shape)), "(" + ",".join(dims) + ")", "[" + ", ".join(dims) + "]",
                 "[" + ",".join(dims) + "]", "x".join(dims)}
    return any(s in message for s in spellings)


def here():
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


# ---- ShapeError -------------------------------------------------------------------------------

def test_shape_error_matmul(backend):
    lines = {}

    def f(x, y):
        lines["op"] = here() + 1
        return x @ y

    with pytest.raises(gc.ShapeError) as info:
        gc.jit(f, backend=backend)(np.ones((2, 3)), np.ones((4, 5)))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "matmul" in message or "@" in message, message
    assert mentions_shape(message, (2, 3)) and mentions_shape(message, (4, 5)), message
    assert f"{THIS_FILE}:{lines['op']}" in message, f"user's file:line missing: {message}"


def test_shape_error_broadcasting_add(backend):
    lines = {}

    def f(x, y):
        lines["op"] = here() + 1
        return gc.add(x, y)

    with pytest.raises(gc.ShapeError) as info:
        gc.jit(f, backend=backend)(np.ones((2, 3)), np.ones(4))
    message = str(info.value)
    assert "add" in message or "+" in message, message
    assert mentions_shape(message, (2, 3)) and mentions_shape(message, (4,)), message
    assert f"{THIS_FILE}:{lines['op']}" in message, f"user's file:line missing: {message}"


def test_shape_error_operator_add_eager():
    lines = {}
    x = gc.tensor(np.ones((2, 3)))
    with pytest.raises(gc.ShapeError) as info:
        lines["op"] = here() + 1
        x + np.ones((3, 2))
    message = str(info.value)
    assert mentions_shape(message, (2, 3)) and mentions_shape(message, (3, 2)), message
    assert f"{THIS_FILE}:{lines['op']}" in message, message


def test_shape_error_under_grad():
    with pytest.raises(gc.ShapeError):
        gc.grad(lambda x, y: gc.sum(x @ y))(np.ones((2, 3)), np.ones((2, 3)))


# ---- ConcretizationError ----------------------------------------------------------------------

def test_control_flow_on_traced_value(backend):
    def f(x):
        if x > 0:
            return x
        return -x

    with pytest.raises(gc.ConcretizationError) as info:
        gc.jit(f, backend=backend)(np.float64(1.0))
    assert isinstance(info.value, TypeError)
    assert "gc.where" in str(info.value) or "gradc.where" in str(info.value), str(info.value)


def test_float_of_traced_value():
    with pytest.raises(gc.ConcretizationError):
        gc.jit(lambda x: float(gc.sum(x)) * x, backend="numpy")(np.ones(2))


# ---- unsupported NumPy functions ----------------------------------------------------------------

@pytest.mark.parametrize("fn, name", [(np.linalg.svd, "svd"), (np.fft.fft, "fft")],
                         ids=["svd", "fft"])
def test_unsupported_numpy_function_names_itself(fn, name):
    with pytest.raises(NotImplementedError) as info:
        gc.jit(lambda x: fn(x), backend="numpy")(np.ones((3, 3)))
    assert name in str(info.value), str(info.value)


def test_unsupported_numpy_function_on_tensor():
    with pytest.raises(NotImplementedError) as info:
        np.linalg.svd(gc.tensor(np.eye(2)))
    assert "svd" in str(info.value)


# ---- TypeError ----------------------------------------------------------------------------------

def test_wrong_number_of_arguments(backend):
    f = gc.jit(lambda x, y: x + y, backend=backend)
    with pytest.raises(TypeError):
        f(np.ones(2))
    with pytest.raises(TypeError):
        f(np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(TypeError):
        f(np.ones(2), z=np.ones(2))


def test_differentiating_an_integer_argument_is_a_type_error():
    with pytest.raises(TypeError):
        gc.grad(lambda x: gc.sum(x * 2))(np.arange(3))
    with pytest.raises(TypeError):
        gc.grad(lambda x: x * 2)(3)
    with pytest.raises(TypeError):
        gc.grad(lambda x, y: gc.sum(x[y]), argnums=1)(np.ones(3), np.array([0, 1]))


def test_grad_of_non_scalar_output_suggests_vjp(backend):
    with pytest.raises(TypeError) as info:
        gc.grad(lambda x: x * 2)(np.ones(3))
    assert "vjp" in str(info.value), str(info.value)
    with pytest.raises(TypeError) as info:
        gc.jit(gc.grad(lambda x: x * 2), backend=backend)(np.ones(3))
    assert "vjp" in str(info.value), str(info.value)


# ---- IndexError for labels out of [0, C); indexing wraps negatives ----------------------------

BAD_LABELS = [np.array([0, 3]), np.array([0, -1]), np.array([7, 1])]
LABEL_IDS = ["too_large", "negative", "far"]


@pytest.mark.parametrize("bad", BAD_LABELS, ids=LABEL_IDS)
@pytest.mark.parametrize("loss", ["cross_entropy", "multiclass_hinge"])
def test_loss_labels_out_of_range(loss, bad):
    fn = getattr(gc.nn, loss)
    logits = np.zeros((2, 3))
    with pytest.raises(IndexError):
        gc.jit(lambda z, y: fn(z, y), backend="numpy")(logits, bad)
    with pytest.raises(IndexError):
        gc.jit(gc.grad(lambda z, y: fn(z, y)), backend="numpy")(logits, bad)
    with pytest.raises(IndexError):
        fn(logits, bad)
    with pytest.raises(IndexError):
        fn(gc.tensor(logits), bad)


@pytest.mark.parametrize("bad", BAD_LABELS, ids=LABEL_IDS)
def test_one_hot_labels_out_of_range(bad):
    with pytest.raises(IndexError):
        gc.jit(lambda y: gc.nn.one_hot(y, 3), backend="numpy")(bad)
    with pytest.raises(IndexError):
        gc.nn.one_hot(bad, 3)


def test_labels_in_range_are_fine():
    y = np.array([0, 2])
    close(gc.nn.one_hot(y, 3), np.eye(3)[y])
    assert np.isfinite(gc.jit(gc.nn.cross_entropy, backend="numpy")(np.zeros((2, 3)), y))


def test_indexing_wraps_negative_indices(backend):
    x = np.arange(12.0).reshape(4, 3)
    f = gc.jit(lambda x, i: x[i], backend=backend)
    close(f(x, np.array([-1, 0, -4])), x[[-1, 0, -4]])
    close(gc.jit(lambda x, y: x[np.arange(4), y], backend=backend)(x, np.array([-1, 0, 1, -3])),
          x[np.arange(4), [-1, 0, 1, -3]])


@pytest.mark.parametrize("bad", [np.array([4]), np.array([0, -5])],
                         ids=["too_large", "too_negative"])
def test_indexing_out_of_range_is_index_error(bad, backend):
    x = np.arange(12.0).reshape(4, 3)
    with pytest.raises(IndexError):
        gc.jit(lambda x, i: x[i], backend=backend)(x, bad)
    with pytest.raises(IndexError):
        gc.jit(gc.grad(lambda x, i: gc.sum(x[i])), backend=backend)(x, bad)


# ---- Compiled: fixed signature ------------------------------------------------------------------

def test_compiled_rejects_other_shapes_and_dtypes(backend):
    def affine(weights, bias):
        return weights * 2.0 + bias

    compiled = gc.jit(affine, backend=backend).lower(np.ones((2, 3)), np.ones(3)).compile()
    close(compiled(np.ones((2, 3)), np.zeros(3)), np.full((2, 3), 2.0))
    close(compiled([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], np.zeros(3)),
          [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])      # lists are converted first
    with pytest.raises(ValueError) as info:
        compiled(np.ones((3, 3)), np.ones(3))
    assert "weights" in str(info.value), str(info.value)
    with pytest.raises(ValueError) as info:
        compiled(np.ones((2, 3)), np.ones(3, np.float32))
    assert "bias" in str(info.value), str(info.value)
    stats = compiled.stats
    for key in ("nodes", "kernels", "workspace_bytes", "compile_seconds", "cache_hit"):
        assert key in stats, f"stats lacks {key!r}"


# ---- inputs: any layout, never modified ---------------------------------------------------------

def odd_inputs(rng):
    base = rng.standard_normal((6, 8))
    fortran = np.asfortranarray(rng.standard_normal((3, 4)))
    readonly = rng.standard_normal((3, 4))
    readonly.setflags(write=False)
    raw = np.zeros(3 * 4 * 8 + 1, np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float64, count=12, offset=1).reshape(3, 4)
    unaligned[...] = rng.standard_normal((3, 4))
    assert not unaligned.flags.aligned
    return {"strided": base[::2, ::2], "transposed": base[:4, :3].T, "fortran": fortran,
            "readonly": readonly, "unaligned": unaligned}


@pytest.mark.parametrize("kind", ["strided", "transposed", "fortran", "readonly", "unaligned"])
def test_odd_layouts_work_and_inputs_are_not_modified(kind, rng, backend):
    x = odd_inputs(rng)[kind]
    assert x.shape == (3, 4)
    before = x.copy()
    f = lambda x: gc.sum(gc.exp(x) * x, axis=1) + x[:, 0]
    close(gc.jit(f, backend=backend)(x), np.sum(np.exp(before) * before, axis=1) + before[:, 0])
    g = gc.jit(gc.grad(lambda x: gc.sum(x * x)), backend=backend)(x)
    close(g, 2 * before)
    np.testing.assert_array_equal(x, before)
    # eager and Tensor engines do not write into their inputs either
    gc.grad(lambda x: gc.sum(x * x))(x)
    t = gc.tensor(x, requires_grad=True)
    gc.sum(t * t).backward()
    close(t.grad, 2 * before)
    np.testing.assert_array_equal(x, before)


# ---- the eager Tensor engine ----------------------------------------------------------------

def test_backward_on_non_scalar_without_gradient_is_runtime_error():
    x = gc.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError):
        y.backward()


def test_grad_accumulates_and_resets():
    x = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    gc.sum(x * x).backward()
    close(x.grad, [2.0, 4.0])
    gc.sum(x * 3.0).backward()
    close(x.grad, [5.0, 7.0])
    x.grad = None
    assert x.grad is None
    gc.sum(x).backward()
    close(x.grad, [1.0, 1.0])


def test_leaves_without_requires_grad_get_no_grad():
    a = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = gc.tensor(np.array([3.0, 4.0]))
    assert a.requires_grad and not b.requires_grad
    gc.sum(a * b).backward()
    close(a.grad, [3.0, 4.0])
    assert b.grad is None


def test_no_grad():
    x = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    with gc.no_grad():
        y = x * 2
    assert not y.requires_grad
    close(y.numpy(), [2.0, 4.0])
    z = x * 2
    assert z.requires_grad


def test_detach():
    x = gc.tensor(np.array([1.0, 2.0]), requires_grad=True)
    d = x.detach()
    assert not d.requires_grad
    close(d.numpy(), [1.0, 2.0])
    gc.sum(x * x.detach()).backward()
    close(x.grad, [1.0, 2.0])          # d/dx x * const = const, not 2x


def test_tensor_accessors():
    t = gc.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert isinstance(t, gc.Tensor)
    assert t.shape == (2, 2) and t.ndim == 2
    assert isinstance(t.numpy(), np.ndarray)
    assert gc.sum(t).item() == 10.0
    assert gc.tensor([1, 2], dtype=np.float32).dtype == np.float32
    with pytest.raises((ValueError, RuntimeError, TypeError)):
        t.item()


# ---- numerical stability at |logits| ~ 1e3 -------------------------------------------------------

BIG = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -999.0, 1000.0]])


def np_log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def stable_case(name):
    """(gradc function, its exact value, its exact gradient of the sum) at BIG."""
    if name == "log_softmax":
        w = np.array([[1.0, 2.0, -1.0], [0.5, -2.0, 3.0]])
        sm = np.exp(np_log_softmax(BIG))
        grad = w - sm * w.sum(axis=-1, keepdims=True)
        return (lambda z: gc.sum(gc.nn.log_softmax(z) * w), np.sum(np_log_softmax(BIG) * w), grad)
    if name == "logsumexp":
        m = BIG.max(axis=-1, keepdims=True)
        value = np.sum(m[:, 0] + np.log(np.sum(np.exp(BIG - m), axis=-1)))
        return (lambda z: gc.sum(gc.logsumexp(z, axis=-1)), value, np.exp(np_log_softmax(BIG)))
    if name == "cross_entropy":
        y = np.array([1, 0])
        lsm = np_log_softmax(BIG)
        grad = (np.exp(lsm) - np.eye(3)[y]) / 2
        return (lambda z: gc.nn.cross_entropy(z, y), -np.mean(lsm[np.arange(2), y]), grad)
    if name == "sigmoid":
        s = 0.5 * (1 + np.tanh(BIG / 2))           # exact, overflow-free form
        return (lambda z: gc.sum(gc.sigmoid(z)), np.sum(s), s * (1 - s))
    if name == "softplus":
        sp = np.maximum(BIG, 0) + np.log1p(np.exp(-np.abs(BIG)))
        return (lambda z: gc.sum(gc.softplus(z)), np.sum(sp), 0.5 * (1 + np.tanh(BIG / 2)))
    if name == "bce_with_logits":
        t = np.array([[1.0, 0.0, 0.5], [1.0, 1.0, 0.0]])
        sp = np.maximum(BIG, 0) + np.log1p(np.exp(-np.abs(BIG)))
        return (lambda z: gc.nn.binary_cross_entropy_with_logits(z, t), np.mean(sp - BIG * t),
                (0.5 * (1 + np.tanh(BIG / 2)) - t) / BIG.size)
    raise KeyError(name)


STABLE = ["log_softmax", "logsumexp", "cross_entropy", "sigmoid", "softplus", "bce_with_logits"]


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("name", STABLE)
def test_numerically_stable_at_large_logits(name, dtype, backend):
    fn, want_value, want_grad = stable_case(name)
    z = BIG.astype(dtype)
    for where, vg in [("eager", gc.value_and_grad(fn)),
                      (f"jit[{backend}]", gc.jit(gc.value_and_grad(fn), backend=backend))]:
        value, grad = vg(z)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)), \
            f"{where}: non-finite value {value} or gradient {grad}"
        assert_close(value, np.float64(want_value), dtype, f"{where}: value")
        assert grad.dtype == dtype
        assert_close(grad, want_grad, dtype, f"{where}: gradient")
    t = gc.tensor(z, requires_grad=True)
    fn(t).backward()
    assert_close(t.grad, want_grad, dtype, "Tensor.backward")


@pytest.mark.parametrize("dtype", [F32, F64], ids=["f32", "f64"])
def test_softmax_at_large_logits(dtype, backend):
    z = BIG.astype(dtype)
    out = gc.jit(gc.nn.softmax, backend=backend)(z)
    assert np.all(np.isfinite(out))
    assert_close(out, np.exp(np_log_softmax(BIG)), dtype)
