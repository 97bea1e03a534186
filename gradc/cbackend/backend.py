"""backend="c": a Lowered graph becomes one native function, compiled with the system compiler and
called through cffi with the uniform signature `int f(void **args, void *work)`."""
import ctypes
import hashlib
import os
import sys
import threading
import time

import cffi
import numpy as np

try:
    from .. import _fastcall       # the native call path (setup.py builds it where it can)
except ImportError:
    _fastcall = None

from . import blas, build, emit, split
from ..ir import repeated_value
from .csyntax import passed_consts
from .driver import split_driver
from .lower import lower
from .vecmath import simd_declarations
from .. import symbolic
from ..symbolic import prod

KERNEL = "gradc_kernel"
_ffi = cffi.FFI()
_ffi.cdef(f"int {KERNEL}(void **args, void *work);")
_from_buffer = _ffi.from_buffer
_new = _ffi.new


# NOTE: GNU OpenMP reads its spin count when it loads (with the first threaded kernel); a user's
# GOMP_SPINCOUNT or OMP_WAIT_POLICY wins. Measured on the 2-core AMD, quiet: rnn[64] took 410 us
# per call (median of 300 in one process) bounded to 10,000 spins and 204-209 us at 300,000
# (libgomp's documented default); softmax[256] 175 us either way. With a process spinning on the
# other core, default / one-thread time stayed <= 1.06x at 300,000 on softmax, rnn[64], mlp[64],
# mlp[1024], elem[1e7] and the transformer (bench/busy.py): a region that waits on a busy core
# sends the next ones to one thread (csrc: gradc_region_end), so spinning no longer costs there.
GOMP_SPINCOUNT = "300000"


def _dlopen(path):
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        lib = _ffi.dlopen(path)
    else:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
        try:
            lib = _ffi.dlopen(path)
        finally:
            del os.environ["GOMP_SPINCOUNT"]
    _pin_openmp()
    return lib


_OPENMP_RUNTIMES = ("libgomp.so.1", "libomp.so", "libomp.so.5")
_pinned = []


def _pin_openmp():
    """Keeps the OpenMP runtime a kernel brought in loaded for good.

    NOTE: cffi unloads a kernel library when its last reference goes (at the latest when Python
    exits); the OpenMP runtime went with the last kernel that linked it while its idle threads
    still ran its code: a segfault at exit in ~1 of 10 cold processes with a threaded kernel (every
    time with OMP_WAIT_POLICY=active). A dlopen that is never closed keeps it mapped."""
    if _pinned:
        return
    for name in _OPENMP_RUNTIMES:
        try:     # RTLD_NOLOAD: only a runtime already loaded (by the kernel), never a new one
            _pinned.append(ctypes.CDLL(name, mode=os.RTLD_NOLOAD | os.RTLD_NOW))
            return
        except OSError:
            pass


def default_threads(graph):
    """OpenMP threads for a kernel's big loops and products (blas.py: gradc's OpenBLAS runs on the
    calling thread; MKL's threads are the OpenMP pool itself)."""
    return blas.num_threads()


def fingerprint(graph, threads):
    """A hash of everything the generated C depends on, so a process that traced the same graph
    finds its library without generating the C again (warm start)."""
    h = hashlib.sha256(f"{threads}\0{split.SPLIT_MIN_WORK}\0{build.toolchain_identity()}".encode())
    index = {}
    for i, node in enumerate(graph.nodes):
        index[node.id] = i
        params = sorted((k, _param_key(v)) for k, v in node.params.items())
        h.update(repr((node.prim.name, [index[x.id] for x in node.inputs], params, node.shape,
                       node.dtype.str)).encode())
    h.update(repr([index[o.id] for o in graph.outputs]).encode())
    return h.hexdigest()[:32]


def _param_key(value):
    if isinstance(value, np.ndarray):      # data, unless uniform (then a literal in the C)
        same = repeated_value(value)
        return ("array", value.shape, value.dtype.str, None if same is None else same.item())
    return value


class CSource:
    """The generated C for one signature, with what the caller must pass."""

    def __init__(self, lowered, name=KERNEL, static=False, threads=None):
        threads = default_threads(lowered.graph) if threads is None else threads
        graph = lowered.graph
        self.graph = graph
        self.plan = lower(graph, threads)
        self.split = self.plan.split
        block = self.plan.graph
        if self.split is None:
            body, self.kernels = emit.generate(self.plan, name, _names(self.plan.graph), static)
            self.workspace_bytes = self.plan.workspace_bytes
        else:       # blocks of the batch on threads: one kernel for a block, run by a driver
            body, self.kernels = emit.generate(self.plan, f"{name}_block", _names(block),
                                               static=True)
            driver, self.workspace_bytes = split_driver(
                self.split, name, f"{name}_block", self.plan.workspace_bytes, static)
            body = body + "\n\n" + driver
        self.consts = passed_consts(graph)
        self.function = body     # the kernel alone, with its helpers (for AOT)
        fn_name = getattr(lowered.fn, "__name__", "function")
        self.source = "\n".join([
            f"/* generated by gradc for {fn_name}: {len(graph.nodes)} nodes, {self.kernels} "
            f"loops/calls, {self.workspace_bytes} bytes of workspace. */",
            "#include \"gradc_runtime.h\"",
            "#include \"gradc_blas.h\"",
            simd_declarations(),
            "",
            f"int {name}(void **args, void *work);",
            body, ""])
        self.name = name
        self.uses_blas = "gradc_gemm_" in body
        self.uses_threads = "GRADC_PARALLEL(" in body


def _names(graph):
    return {n.id: _letters(i) for i, n in enumerate(graph.nodes)}


def _letters(i):
    from ..ir import _letters as letters
    return letters(i)


_KINDS = {"f": 1, "i": 2, "b": 3}     # weakly typed Python float / int / bool (see _fastcall.c)


class OutputPool:
    """Memory for big outputs, reused once the caller has dropped every array on it.

    NOTE: a fresh 40 MB array costs ~9 ms of page faults here, as much as the computation that
    fills it; allocators of ML frameworks cache for the same reason. An output never shares memory
    with an array that is still alive."""
    MIN_BYTES = 1 << 20
    KEEP = 4                      # buffers kept per size

    def __init__(self):
        self.buffers = {}
        self.lock = threading.Lock()

    def empty(self, shape, dtype):
        nbytes = prod(shape) * dtype.itemsize
        if nbytes < self.MIN_BYTES:
            return np.empty(shape, dtype)
        with self.lock:
            pool = self.buffers.setdefault(nbytes, [])
            for buf in pool:
                if sys.getrefcount(buf) == 3:     # the list, `buf` and getrefcount's argument
                    return buf.view(dtype).reshape(shape)
            buf = np.empty(nbytes, np.uint8)
            if len(pool) < self.KEEP:
                pool.append(buf)
            return buf.view(dtype).reshape(shape)


_pool = OutputPool()


class CExecutable:
    """A compiled signature: checks and converts arrays, allocates fresh outputs, calls C."""
    _empty = _pool.empty          # a bound method: not rebound, as cheap as the global

    def __init__(self, lowered):
        start = time.perf_counter()
        graph = lowered.graph
        graph_key = fingerprint(graph, default_threads(graph))
        known = build.read_index(graph_key)
        if known and known.get("uses_blas", True):
            blas.load()      # gradc's BLAS (its threads, OpenBLAS's core type) before a kernel links it
        self.lib = known and build.load_cached(known["key"], _dlopen)
        if self.lib:     # warm start: this graph was compiled before, no C to generate
            path, seconds, hit, facts = build.cache_dir() / f"{known['key']}.so", 0.0, True, known
        else:
            code = CSource(lowered)
            if code.uses_blas:
                blas.load()
            self.lib, path, seconds, hit = build.load_shared(
                code.source, _dlopen, blas=code.uses_blas,
                extra_flags=build.OPENMP_FLAGS if code.uses_threads else ())
            facts = {"key": path.stem, "kernels": code.kernels,
                     "workspace_bytes": symbolic.to_json(code.workspace_bytes),
                     "uses_blas": code.uses_blas}
            build.write_index(graph_key, facts)
        self.fn = getattr(self.lib, KERNEL)
        self.graph = graph           # names the op of a linalg error code
        self.out_specs = [(n.shape, n.dtype) for n in graph.outputs]
        self.const_arrays = [np.ascontiguousarray(n.params["value"])
                             for n in passed_consts(graph)]
        self.const_ptrs = [_from_buffer(a) for a in self.const_arrays]
        self.workspace_bytes = symbolic.from_json(facts["workspace_bytes"])
        self._local = threading.local()
        self.entry = None
        self.dims = symbolic.dim_names(graph)
        if self.dims:       # named sizes: read from the arguments at each call, passed last
            self.in_specs = [n.shape for n in graph.inputs]
            self.in_names = [n.name or f"arg{i}" for i, n in enumerate(graph.inputs)]
            self.stats = self._stats(graph, facts, start, hit, seconds, path)
            self.entry = self._named_entry(lowered)
            return
        big_outputs = any(prod(s) * d.itemsize >= OutputPool.MIN_BYTES
                          for s, d in self.out_specs)
        # NOTE: an extension built before the linalg error codes reports them as RuntimeError.
        stale = not getattr(_fastcall, "ERRORS_TO_PYTHON", 0) and any(
            n.prim.name in ("inv", "solve", "cholesky") for n in graph.nodes)
        if _fastcall is not None and not big_outputs and not stale:   # big outputs: the pool
            weak = getattr(lowered, "in_weak", [False] * len(graph.inputs))
            kinds = [(_KINDS[n.dtype.kind] if w else 0, n.dtype.num, n.shape)
                     for n, w in zip(graph.inputs, weak)]
            self.entry = _fastcall.Entry(int(_ffi.cast("uintptr_t", self.fn)), tuple(kinds),
                                         tuple((d.num, s) for s, d in self.out_specs),
                                         tuple(self.const_arrays), self.workspace_bytes, self.lib)
        self.stats = self._stats(graph, facts, start, hit, seconds, path)

    def _named_entry(self, lowered):
        """The native call path of a kernel with named sizes, where every input and output size
        is a number or one named size (else None: the Python path evaluates the rest)."""
        graph = lowered.graph
        index = {name: k for k, name in enumerate(self.dims)}

        def dims(shape):
            out = []
            for d in shape:
                if not isinstance(d, symbolic.Dim):
                    out.append(d)
                elif symbolic.is_name(d):
                    out.append(-1 - index[symbolic.names(d)[0]])
                else:
                    return None
            return tuple(out)
        ins = [dims(n.shape) for n in graph.inputs]
        outs = [dims(s) for s, _ in self.out_specs]
        if _fastcall is None or len(self.dims) > 8 or None in ins or None in outs:
            return None
        work = self.workspace_bytes
        terms = (tuple((c, *[dict(m).get(name, 0) for name in self.dims])
                       for m, c in work.terms.items()) if isinstance(work, symbolic.Dim)
                 else ((work,) + (0,) * len(self.dims),))
        weak = getattr(lowered, "in_weak", [False] * len(graph.inputs))
        kinds = [(_KINDS[n.dtype.kind] if w else 0, n.dtype.num, d)
                 for n, w, d in zip(graph.inputs, weak, ins)]
        return _fastcall.Entry(int(_ffi.cast("uintptr_t", self.fn)), tuple(kinds),
                               tuple((d.num, s) for (_, d), s in zip(self.out_specs, outs)),
                               tuple(self.const_arrays), 0, self.lib, len(self.dims), terms,
                               getattr(lowered, "min_named_size", 1))

    def _stats(self, graph, facts, start, hit, seconds, path):
        return {"nodes": len(graph.nodes), "kernels": facts["kernels"],
                "workspace_bytes": self.workspace_bytes,
                "compile_seconds": time.perf_counter() - start if not hit else seconds,
                "cache_hit": hit, "backend": "c", "library": str(path)}

    def _workspace(self, nbytes=None):
        nbytes = max(self.workspace_bytes if nbytes is None else nbytes, 1)
        work = getattr(self._local, "work", None)
        if work is None or len(work[0]) < nbytes:
            buf = np.empty(nbytes, np.uint8)
            work = self._local.work = (buf, _from_buffer(buf))
        return work[1]

    def __call__(self, leaves):
        ptrs = []
        for a in leaves:
            if not (a.flags.c_contiguous and a.flags.aligned and a.dtype.isnative):
                a = np.require(a, a.dtype.newbyteorder("="), "CA")   # a copy, as NumPy would
            ptrs.append(_from_buffer(a))
        if self.dims:
            sizes = symbolic.bind_sizes([a.shape for a in leaves], self.in_specs, self.in_names)
            outs = [self._empty(symbolic.substitute(shape, sizes), dtype)
                    for shape, dtype in self.out_specs]
            dims = np.array([sizes[d] for d in self.dims], np.int64)
            argv = _new("void *[]", ptrs + self.const_ptrs + [_from_buffer(o) for o in outs]
                        + [_from_buffer(dims)])
            code = self.fn(argv, self._workspace(symbolic.evaluate(self.workspace_bytes, sizes)))
            if code:
                raise_error(code, self.graph)
            return outs
        outs = [self._empty(shape, dtype) for shape, dtype in self.out_specs]
        argv = _new("void *[]", ptrs + self.const_ptrs + [_from_buffer(o) for o in outs])
        code = self.fn(argv, self._workspace())
        if code:
            raise_error(code, self.graph)
        return outs


POISON_BYTE = 0xFF     # a NaN (with a payload) in every float, -1 in ints, an invalid bool
GUARD = 64             # poisoned bytes before and after each buffer, checked after the call


def poison_enabled():
    """GRADC_POISON=1 (a debug mode for tests and the fuzzer): see PoisonedCExecutable."""
    return os.environ.get("GRADC_POISON", "") not in ("", "0")


def _guarded(nbytes):
    """(buffer with GUARD poisoned bytes each side, its middle nbytes)."""
    buf = np.full(nbytes + 2 * GUARD, POISON_BYTE, np.uint8)
    return buf, buf[GUARD:GUARD + nbytes]


def _intact(buf):
    return bool((buf[:GUARD] == POISON_BYTE).all() and (buf[-GUARD:] == POISON_BYTE).all())


class PoisonedCExecutable(CExecutable):
    """Fills every output and the workspace with POISON_BYTE before each call, so an output element
    the kernel never writes reads as NaN (not as the memory's or the last call's value), and a
    workspace read before it is written spreads NaN. Each buffer has guard bytes on both sides,
    checked after the call: a write outside a buffer raises RuntimeError instead of corrupting the
    heap. Calls go through Python, not the native fast path: the normal path has no check for this
    mode."""

    def __init__(self, lowered):
        super().__init__(lowered)
        self.entry = None

    def _empty(self, shape, dtype):
        buf, middle = _guarded(prod(shape) * dtype.itemsize)
        outputs = sum(what.startswith("output") for what, _ in self._local.guarded)
        self._local.guarded.append((f"output {outputs}", buf))
        return middle.view(dtype).reshape(shape)

    def _workspace(self, nbytes=None):
        buf, middle = _guarded(max(self.workspace_bytes if nbytes is None else nbytes, 1))
        self._local.guarded.append(("the workspace", buf))
        return _from_buffer(middle)

    def __call__(self, leaves):
        self._local.guarded = []
        outs = super().__call__(leaves)
        broken = [what for what, buf in self._local.guarded if not _intact(buf)]
        if broken:
            raise RuntimeError(f"gradc kernel wrote outside {', '.join(broken)} (GRADC_POISON's "
                               "guard bytes changed)")
        return outs


def raise_error(code, graph=None):
    if code == 1:
        raise IndexError("index out of range in a gather or label lookup (the C kernel checked "
                         "it): labels must lie in [0, number of classes)")
    from ..linalg import kernel_error
    error = kernel_error(code, graph) if graph is not None else None
    if error is not None:
        raise error
    raise RuntimeError(f"gradc kernel failed with error code {code}")


def compile(lowered):
    return PoisonedCExecutable(lowered) if poison_enabled() else CExecutable(lowered)


def generate(lowered):
    return CSource(lowered)
