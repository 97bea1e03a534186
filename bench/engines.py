"""One small adapter per engine: how each framework computes a workload's value and gradients.

An engine's `load()` imports its framework (ImportError means "not installed"; nothing here
imports torch, JAX or PyTensor at module level) and returns its version. `setup(workload,
inputs)` builds whatever the engine needs (trace, compile, convert inputs to its own arrays)
and returns `call()`, which computes (value, grads) in the engine's own array type, fully
materialised (JAX: block_until_ready). The steady-state timing calls `call()` only; the
conversion to NumPy for the check happens outside the clock. `cache_env(dir)` names the
environment variables that point the engine's on-disk compilation cache at `dir`, so that
cold setup starts from an empty cache and warm setup (a new process) from a filled one;
engines without a disk cache return {} and get no warm-setup measurement.
"""
from __future__ import annotations

import importlib.metadata
import os
from types import SimpleNamespace

CORES = len(os.sched_getaffinity(0))


def version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class Engine:
    name = ""
    dist = ""           # distribution whose version is reported
    peer = True         # False for gradc's own engines (they are compared *against* the peers)

    def cache_env(self, cache_dir):
        return {}

    def load(self):
        return version_of(self.dist)

    def setup(self, workload, inputs):
        raise NotImplementedError


class GradcEngine(Engine):
    dist = "gradc"
    peer = False

    def __init__(self, backend, blas=None):
        self.backend = backend
        self.blas = blas            # GRADC_BLAS for this engine (None: gradc's default choice)
        self.name = f"gradc-{backend}" + (f"-{blas}" if blas else "")

    def cache_env(self, cache_dir):
        return {"GRADC_CACHE_DIR": cache_dir, **({"GRADC_BLAS": self.blas} if self.blas else {})}

    def load(self):
        import gradc
        for attr in ("jit", "value_and_grad"):
            if not hasattr(gradc, attr):        # e.g. the package directory without its code yet
                raise ImportError(f"gradc has no attribute {attr!r} (gradc is not built yet)")
        return getattr(gradc, "__version__", None) or version_of(self.dist)

    def setup(self, workload, inputs):
        import gradc as gc
        f = gc.jit(gc.value_and_grad(lambda *a: workload.loss(gc, *a), argnums=workload.argnums),
                   backend=self.backend)
        return lambda: f(*inputs)


class NumpyEngine(Engine):
    name = "numpy"
    dist = "numpy"

    def setup(self, workload, inputs):
        return lambda: workload.numpy_value_and_grad(*inputs)


class _Torch(Engine):
    dist = "torch"

    def load(self):
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(CORES)
        self.torch = torch
        self.xp = SimpleNamespace(
            log=torch.log, sqrt=torch.sqrt, sum=torch.sum, tanh=torch.tanh, relu=torch.relu,
            transpose=torch.permute,
            mean=lambda x, axis, keepdims: torch.mean(x, dim=axis, keepdim=keepdims),
            nn=SimpleNamespace(cross_entropy=F.cross_entropy,
                               softmax=lambda x, axis: torch.softmax(x, dim=axis)))
        return torch.__version__

    def tensors(self, workload, inputs, requires_grad):
        import numpy as np
        ts = [self.torch.from_numpy(np.array(a)) for a in inputs]      # np.array: 0-d and writable
        for i in workload.argnums:
            ts[i].requires_grad_(requires_grad)
        return ts


class TorchEager(_Torch):
    name = "torch"

    def setup(self, workload, inputs):
        ts = self.tensors(workload, inputs, requires_grad=True)
        params = [ts[i] for i in workload.argnums]

        def call():
            for p in params:
                p.grad = None
            loss = workload.loss(self.xp, *ts)
            loss.backward()
            return loss.detach(), tuple(p.grad for p in params)
        return call


class TorchCompile(_Torch):
    name = "torch.compile"

    def cache_env(self, cache_dir):
        return {"TORCHINDUCTOR_CACHE_DIR": cache_dir}

    def setup(self, workload, inputs):
        ts = self.tensors(workload, inputs, requires_grad=False)
        f = self.torch.compile(self.torch.func.grad_and_value(
            lambda *a: workload.loss(self.xp, *a), argnums=workload.argnums))

        def call():
            grads, value = f(*ts)
            return value, grads
        return call


class Jax(Engine):
    name = "jax.jit"
    dist = "jax"

    def load(self):
        import jax
        import jax.numpy as jnp
        jax.devices()                       # initialise the runtime outside the setup clock
        self.jax = jax

        def cross_entropy(logits, y):
            logp = jax.nn.log_softmax(logits, axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        self.xp = SimpleNamespace(log=jnp.log, sqrt=jnp.sqrt, sum=jnp.sum, tanh=jnp.tanh,
                                  relu=jax.nn.relu, transpose=jnp.transpose, mean=jnp.mean,
                                  nn=SimpleNamespace(cross_entropy=cross_entropy,
                                                     softmax=jax.nn.softmax))
        return jax.__version__

    def setup(self, workload, inputs):
        import numpy as np
        jax = self.jax
        if any(np.asarray(a).dtype == np.float64 for a in inputs):
            jax.config.update("jax_enable_x64", True)      # only the float64 scalar workload
        args = [jax.device_put(a) for a in inputs]
        f = jax.jit(jax.value_and_grad(lambda *a: workload.loss(self.xp, *a), argnums=workload.argnums))
        return lambda: jax.block_until_ready(f(*args))


class PyTensor(Engine):
    name = "pytensor"
    dist = "pytensor"

    def cache_env(self, cache_dir):
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        return {"PYTENSOR_FLAGS": (flags + "," if flags else "") + f"base_compiledir={cache_dir}"}

    def load(self):
        import pytensor
        import pytensor.tensor as pt
        from pytensor.tensor.special import log_softmax, softmax
        self.pytensor = pytensor

        def cross_entropy(logits, y):
            return -log_softmax(logits, axis=-1)[pt.arange(logits.shape[0]), y].mean()

        self.pt = pt
        self.xp = SimpleNamespace(log=pt.log, sqrt=pt.sqrt, sum=pt.sum, tanh=pt.tanh,
                                  relu=lambda x: pt.maximum(x, 0), transpose=pt.transpose,
                                  mean=pt.mean,
                                  nn=SimpleNamespace(cross_entropy=cross_entropy, softmax=softmax))
        return pytensor.__version__

    def setup(self, workload, inputs):
        import numpy as np
        sym = [self.pt.tensor(name=n, dtype=np.asarray(a).dtype, shape=np.shape(a))
               for n, a in zip(workload.arg_names, inputs)]
        loss = workload.loss(self.xp, *sym)
        grads = self.pytensor.grad(loss, [sym[i] for i in workload.argnums])
        f = self.pytensor.function(sym, [loss, *grads])

        def call():
            value, *gs = f(*inputs)
            return value, tuple(gs)
        return call


# gradc-c-openblas: gradc-c as users without MKL get it (gradc-c uses MKL where it is installed).
ENGINES = {e.name: e for e in (GradcEngine("c"), GradcEngine("c", blas="openblas"),
                               GradcEngine("numpy"), NumpyEngine(), TorchEager(),
                               TorchCompile(), Jax(), PyTensor())}
