"""gradc's BLAS for compiled kernels: which library, loaded once before the first kernel.

Two are supported. Intel MKL (the optional `mkl` wheel, `pip install gradc[mkl]`) is the default
on Intel CPUs where it is installed: its threads come from the GNU OpenMP runtime, the one gradc's
own threaded loops use (one pool, not two spinning side by side), and small products of fixed
shape get kernels MKL generates for the shape (its JIT). Otherwise OpenBLAS (scipy-openblas32, a
dependency; a copy separate from NumPy's), on one thread: kernels share big products among their
own threads by blocks of rows. GRADC_BLAS=mkl|openblas|none chooses; none is the plain C loop.
GRADC_NUM_THREADS caps the threads (default: the available cores).

OpenBLAS reads OPENBLAS_CORETYPE when it loads. These machines set it to Haswell for everyone
(AVX2 kernels, about half the sgemm speed of the AVX-512 ones on a CPU that has AVX-512), so gradc
picks the core type for its copy itself: GRADC_OPENBLAS_CORETYPE if set, else SkylakeX (Cooperlake
with bf16) on CPUs with AVX-512, else whatever the environment says."""
import ctypes
import functools
import importlib.util
import os


def _cpuinfo(field):
    """The first value of a /proc/cpuinfo field ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags():
    return set(_cpuinfo("flags").split())


def cpu_vendor():
    return _cpuinfo("vendor_id")


def chosen_coretype(flags=None):
    """The OpenBLAS core type gradc loads its copy with (None: leave the environment's)."""
    if os.environ.get("GRADC_OPENBLAS_CORETYPE"):
        return os.environ["GRADC_OPENBLAS_CORETYPE"]
    flags = cpu_flags() if flags is None else flags
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    return None


def num_threads():
    value = os.environ.get("GRADC_NUM_THREADS")
    if value:
        return max(1, int(value))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


LIBRARY = "scipy_openblas"
CHOICES = ("mkl", "openblas", "none")
MKL_THREADING_GNU = 3        # mkl_service.h: MKL_THREADING_GNU


@functools.lru_cache(maxsize=None)
def lib_dir():
    """scipy-openblas32's library folder, found without importing the package (its import loads
    the library, and then it is too late to choose the core type)."""
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "lib")
    return path if os.path.exists(os.path.join(path, f"lib{LIBRARY}.so")) else None


@functools.lru_cache(maxsize=None)
def mkl_library():
    """The path of MKL's single dynamic library (libmkl_rt) from the `mkl` wheel, or None."""
    import importlib.metadata      # NOTE: here, not at the top: its import alone took ~25 ms
    try:
        files = importlib.metadata.distribution("mkl").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if os.path.basename(str(f)).startswith("libmkl_rt.so"):
            path = os.path.realpath(f.locate())
            if os.path.exists(path):
                return path
    return None


@functools.lru_cache(maxsize=None)
def kind():
    """The BLAS kernels link: "mkl", "openblas" or None (the plain C GEMM)."""
    asked = os.environ.get("GRADC_BLAS", "").strip().lower()
    if asked and asked not in CHOICES:
        raise ValueError(f"GRADC_BLAS={asked!r}: expected one of {', '.join(CHOICES)}")
    if asked == "mkl" and mkl_library() is None:
        raise ValueError("GRADC_BLAS=mkl but MKL is not installed (pip install mkl)")
    if asked == "openblas" and lib_dir() is None:
        raise ValueError("GRADC_BLAS=openblas but scipy-openblas32 is not installed")
    if asked:
        return None if asked == "none" else asked
    if cpu_vendor() == "GenuineIntel" and mkl_library():     # NOTE: the vendor first: looking
        return "mkl"                                          # for MKL took 58 ms of a cold call
    return "openblas" if lib_dir() else None


def link_flags():
    """Compile and link flags for the chosen BLAS ([] for the plain C GEMM)."""
    if kind() == "mkl":
        # NOTE: not linked: reading libmkl_rt's symbol table cost ld 130 ms per kernel (half of a
        # cold setup). load() has made MKL global before any kernel loads, and cffi loads kernels
        # with RTLD_NOW, so their references bind to it then (without MKL the load fails, never a
        # call).
        return ["-DGRADC_HAVE_MKL"]
    if kind() == "openblas":
        return ["-DGRADC_HAVE_OPENBLAS", f"-L{lib_dir()}", f"-Wl,-rpath,{lib_dir()}",
                f"-l{LIBRARY}"]
    return []


@functools.lru_cache(maxsize=None)
def load():
    """Loads the chosen BLAS into the process (globally, so kernels linked to it reuse it) with
    its threads. Returns a description, or None for the plain C GEMM."""
    if kind() == "mkl":
        return _load_mkl()
    if kind() == "openblas":
        return _load_openblas()
    return None


def _load_mkl():
    path = mkl_library()
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    # NOTE: the threading layer must be set before any other MKL call.
    if lib.MKL_Set_Threading_Layer(ctypes.c_int(MKL_THREADING_GNU)) != MKL_THREADING_GNU:
        raise RuntimeError(f"MKL ({path}) could not use the GNU OpenMP threading layer")
    threads = num_threads()
    lib.MKL_Set_Num_Threads(ctypes.c_int(threads))
    version = ctypes.create_string_buffer(256)
    lib.mkl_get_version_string(version, ctypes.c_int(len(version)))
    return {"library": path, "core": version.value.decode(errors="replace").strip(),
            "threads": threads}


def _load_openblas():
    path = os.path.join(lib_dir(), f"lib{LIBRARY}.so")
    coretype = chosen_coretype()
    saved = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        os.environ["OPENBLAS_CORETYPE"] = coretype
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    finally:
        if coretype:
            if saved is None:
                del os.environ["OPENBLAS_CORETYPE"]
            else:
                os.environ["OPENBLAS_CORETYPE"] = saved
    # NOTE: one thread: kernels share big products among their own OpenMP threads by blocks of
    # rows (plan.thread_blocks), whose regions give way to a busy machine (gradc_runtime.h).
    # OpenBLAS's pool beside them (2 cores, a process spinning on the other) made rnn[64] 3.6x
    # and the transformer step 3.5x slower than on one thread.
    lib.scipy_openblas_set_num_threads(ctypes.c_int(1))
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    return {"library": path, "core": lib.scipy_openblas_get_corename().decode(),
            "threads": num_threads()}
