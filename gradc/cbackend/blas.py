"""gradc's own OpenBLAS (scipy-openblas32, separate from NumPy's): loaded once, before the first
kernel, with the core type that fits this CPU and gradc's thread count.

OpenBLAS reads OPENBLAS_CORETYPE when it loads. These machines set it to Haswell for everyone
(AVX2 kernels, about half the sgemm speed of the AVX-512 ones on a CPU that has AVX-512), so gradc
picks the core type for its copy itself: GRADC_OPENBLAS_CORETYPE if set, else SkylakeX (Cooperlake
with bf16) on CPUs with AVX-512, else whatever the environment says. GRADC_NUM_THREADS caps its
threads (default: the available cores)."""
import ctypes
import functools
import importlib.util
import os


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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
def load():
    """Loads scipy-openblas32 into the process (globally, so kernels linked to it reuse it).
    Returns a description, or None when it is not installed (kernels then use the C GEMM)."""
    if lib_dir() is None:
        return None
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
    threads = num_threads()
    lib.scipy_openblas_set_num_threads(ctypes.c_int(threads))
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    return {"library": path, "core": lib.scipy_openblas_get_corename().decode(), "threads": threads}
