"""Compiling generated C with the system compiler into a shared library, and the disk cache of the
results: keyed by a hash of the source, compiler identity, flags, machine and gradc version;
written under a temporary name and renamed; verified by checksum before it is trusted."""
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from .. import __version__
from ..errors import CompileError
from . import blas

CSRC = next(p for p in (Path(__file__).resolve().parent.parent / "csrc",
                        Path(__file__).resolve().parent.parent.parent / "csrc") if p.is_dir())
# NOTE: -O2 compiles about twice as fast as -O3; the dynamic cost model keeps -O3's vectorisation
# of the fused loops (without it an RNN step with tanh runs 4x slower).
# -DGRADC_LIGHT_HEADERS: the C library declared, not parsed (csrc/gradc_runtime.h).
JIT_FLAGS = ["-pipe", "-O2", "-fvect-cost-model=dynamic", "-march=native",
             "-mprefer-vector-width=512", "-std=c99", "-fPIC", "-shared", "-fno-math-errno",
             "-fno-semantic-interposition", "-fopenmp-simd", "-DGRADC_OPENMP_SIMD",
             "-DGRADC_LIGHT_HEADERS", "-Werror=implicit-function-declaration"]
# NOTE: big kernels (unrolled loops, whole training steps) compile at -O1 with the vectoriser:
# measured on a 2-core AMD EPYC (CPU time, one thread, two runs each), cc for rnn[64] 285 -> 250
# ms at 390 -> 392 us a call, the transformer step 285 -> 253 ms at 5.18 -> 5.30 ms a call; small,
# loop-bound kernels stay at -O2 (elem[1e5] ran 11% slower at -O1) and compile in ~50 ms anyway.
LARGE_SOURCE_CHARS = 16384
LARGE_SOURCE_FLAGS = ["-O1", "-ftree-vectorize"]
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
OPENMP_FLAGS = ["-fopenmp", "-DGRADC_OPENMP"]     # only for kernels with threaded loops
# GRADC_SANITIZE=1 (a test mode, see README): kernels built with AddressSanitizer and UBSan; an error
# aborts the process. The Python that loads them needs LD_PRELOAD=$(cc -print-file-name=libasan.so).
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g"]


def sanitize_flags():
    return SANITIZE_FLAGS if os.environ.get("GRADC_SANITIZE", "") not in ("", "0") else []


@functools.lru_cache(maxsize=None)
def vector_math_flags(cc):
    """-DGRADC_VECTOR_MATH and -lmvec where glibc's vector math library is there (GCC, x86-64)."""
    if platform.machine() != "x86_64" or "clang" in compiler_identity(cc).lower():
        return [], []
    return (["-DGRADC_VECTOR_MATH"], ["-lmvec"]) if _compiler_facts(cc)["libmvec"] else ([], [])


def cache_dir():
    return Path(os.environ.get("GRADC_CACHE_DIR") or Path.home() / ".cache" / "gradc")


def find_compiler():
    """The C compiler: $CC, else cc / gcc on PATH."""
    cc = os.environ.get("CC")
    if cc:
        return cc
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    raise CompileError("no C compiler found: set CC or put cc/gcc on PATH (backend='numpy' needs "
                       "none)")


@functools.lru_cache(maxsize=None)
def compiler_identity(cc):
    return _compiler_facts(cc)["identity"]


def _probe_compiler(cc):
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        mvec = subprocess.run([cc, "-print-file-name=libmvec.so"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CompileError(f"cannot run the C compiler {cc!r}: {e}") from None
    return {"identity": out.stdout.splitlines()[0] if out.stdout else cc,
            "libmvec": mvec.returncode == 0 and os.path.isabs(mvec.stdout.strip())}


@functools.lru_cache(maxsize=None)
def _compiler_facts(cc):
    """The compiler's --version line and whether it finds libmvec, kept in the cache folder under
    the compiler's path, size and time (each probe is a process: ~8 ms of every cold start)."""
    try:
        path = os.path.realpath(shutil.which(cc) or cc)
        st = os.stat(path)
        stamp = f"{path}\0{st.st_size}\0{st.st_mtime_ns}"
    except OSError:
        return _probe_compiler(cc)
    record = cache_dir() / "compilers.json"
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    facts = known.get(stamp)
    if not (isinstance(facts, dict) and set(facts) == {"identity", "libmvec"}):
        facts = known[stamp] = _probe_compiler(cc)
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(record, json.dumps(known).encode())
        except OSError:
            pass     # an unwritable cache only costs the next process the probes
    return facts


@functools.lru_cache(maxsize=None)
def machine_identity():
    """What -march=native depends on: the CPU model and flags."""
    info = ""
    try:
        with open("/proc/cpuinfo") as f:
            info = "".join(line for line in f if line.startswith(("model name", "flags")))[:4096]
    except OSError:
        pass
    return f"{platform.machine()} {hashlib.sha256(info.encode()).hexdigest()[:16]}"


@functools.lru_cache(maxsize=None)
def blas_flags():
    """Compile and link flags for the chosen BLAS, or [] for the plain C fallback, linked with gold
    where GCC has it: reading OpenBLAS's symbols made ld.bfd take ~18 ms more of each such
    kernel's build (mlp[1024]'s 174 -> 156 ms, medians of 12 interleaved builds on the 2-core AMD)."""
    flags = blas.link_flags()
    if any(f.startswith("-l") for f in flags) and shutil.which("ld.gold") \
            and "clang" not in compiler_identity(find_compiler()).lower():
        flags = flags + ["-fuse-ld=gold"]
    return flags


def load_shared(source, loader, **options):
    """Compiles (or finds in the cache) and loads source: returns (loader(path), path, seconds,
    cache_hit). A fresh build is loaded under its private name before it is renamed into the cache,
    and a cached entry that vanishes before it loads (pruned by another process) is rebuilt."""
    loaded, path, seconds, hit = compile_shared(source, loader=loader, **options)
    if not hit:
        return loaded, path, seconds, hit
    try:
        return loader(str(path)), path, seconds, hit
    except OSError:
        return compile_shared(source, force=True, loader=loader, **options)


def compile_shared(source, flags=None, extra_flags=(), force=False, loader=None, blas=True):
    """Compiles source into a cached shared library; returns (path, seconds, cache_hit), or with
    `loader`, (loader(library), path, seconds, False) where the library is loaded before it is
    published under its cache name. force rebuilds an entry even when it looks valid."""
    cc = find_compiler()
    vec_compile, vec_link = vector_math_flags(cc) if flags is None else ([], [])
    # Comments (node names, the user's file:line) do not change the library: not in the key.
    code = _COMMENT.sub("", source)
    if flags is None and len(code) > LARGE_SOURCE_CHARS:
        flags = [f for f in JIT_FLAGS if f != "-O2"] + LARGE_SOURCE_FLAGS
    flags = list(flags or JIT_FLAGS) + list(extra_flags) + vec_compile + sanitize_flags()
    # NOTE: linking the 30 MB OpenBLAS costs ~50 ms: only kernels that multiply matrices do.
    link = (blas_flags() if blas else []) + vec_link + ["-lm"]
    # The headers the source includes are part of what it is.
    key = hashlib.sha256("\0".join([code, headers_identity(), compiler_identity(cc),
                                    " ".join(flags + link), __version__,
                                    machine_identity()]).encode()).hexdigest()[:32]
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    lib_path, meta_path = directory / f"{key}.so", directory / f"{key}.json"
    if not force and _valid(lib_path, meta_path):
        os.utime(lib_path)
        return (None, lib_path, 0.0, True) if loader is not None else (lib_path, 0.0, True)
    start = time.perf_counter()
    c_path = directory / f"{key}.c"
    # Private names while compiling (another process may build or prune the same entry); the
    # results are renamed into place, the C source too, so it stays for the user to read.
    tmp_c = _temp_file(directory, ".tmp.c", source.encode())
    tmp = _temp_file(directory, ".so.tmp", b"")
    cmd = [cc, *flags, f"-I{CSRC}", tmp_c, "-o", tmp, *link]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as e:
        os.unlink(tmp)
        os.replace(tmp_c, c_path)
        raise CompileError(f"could not run {cc}: {e}\ngenerated C: {c_path}") from None
    os.replace(tmp_c, c_path)
    if result.returncode != 0:
        os.unlink(tmp)
        raise CompileError(f"C compilation failed ({' '.join(cmd)}):\n{result.stderr.strip()}\n"
                           f"generated C: {c_path}")
    data = Path(tmp).read_bytes()
    loaded = loader(tmp) if loader is not None else None    # mapped now: a later unlink is harmless
    os.replace(tmp, lib_path)
    _atomic_write(meta_path, json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                                         "size": len(data)}).encode())
    seconds = time.perf_counter() - start
    _maybe_prune(len(data) + len(source))
    if loader is not None:
        return loaded, lib_path, seconds, False
    return lib_path, seconds, False


def toolchain_identity():
    """What a compiled library depends on besides its source (part of every cache key)."""
    cc = find_compiler()
    return "\0".join([compiler_identity(cc), " ".join(JIT_FLAGS + OPENMP_FLAGS + sanitize_flags()
                                                      + LARGE_SOURCE_FLAGS),
                      " ".join(sum(vector_math_flags(cc), [])), " ".join(blas_flags()),
                      __version__, generator_identity(), machine_identity()])


def _hash_files(paths):
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def headers_identity():
    """A hash of csrc/'s headers, which every generated source includes."""
    return _hash_files(CSRC.glob("*.h"))


@functools.lru_cache(maxsize=None)
def generator_identity():
    """A hash of the code that writes and compiles the C (this package's backend, the primitive
    table, the C headers): the warm-start index skips generating C, so without this an edited
    checkout of one version would keep loading kernels the old code wrote."""
    package = Path(__file__).resolve().parent.parent
    return _hash_files([*package.glob("cbackend/*.py"), package / "primitives.py",
                        *CSRC.glob("*.h")])


def read_index(graph_key):
    """What an earlier process recorded for a graph (its library's key, workspace...), or None."""
    try:
        return json.loads((cache_dir() / f"{graph_key}.idx").read_text())
    except (OSError, ValueError):
        return None


def write_index(graph_key, facts):
    try:
        _atomic_write(cache_dir() / f"{graph_key}.idx", json.dumps(facts).encode())
    except OSError:
        pass     # a cache we cannot write only costs the next process some time


def load_cached(key, loader):
    """loader(library) for a valid cached entry, else None (missing, corrupted or pruned)."""
    lib_path = cache_dir() / f"{key}.so"
    if not _valid(lib_path, cache_dir() / f"{key}.json"):
        return None
    try:
        lib = loader(str(lib_path))
    except OSError:
        return None
    os.utime(lib_path)
    return lib


def _valid(lib_path, meta_path):
    """An entry is trusted only if its checksum matches (a truncated or corrupted one is rebuilt)."""
    try:
        meta = json.loads(meta_path.read_text())
        data = lib_path.read_bytes()
    except (OSError, ValueError):
        return False
    return len(data) == meta.get("size") and hashlib.sha256(data).hexdigest() == meta.get("sha256")


def _temp_file(directory, suffix, data):
    fd, path = tempfile.mkstemp(dir=directory, suffix=suffix)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def _atomic_write(path, data):
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _entry_sizes():
    """{library path: (bytes of its .so/.json/.c, last use)} in one pass over the cache folder."""
    sizes = {}
    try:
        with os.scandir(cache_dir()) as it:
            for entry in it:
                stem, _, suffix = entry.name.rpartition(".")
                if suffix not in ("so", "json", "c"):
                    continue
                st = entry.stat()
                size, used = sizes.get(stem, (0, 0.0))
                sizes[stem] = (size + st.st_size, max(used, st.st_mtime) if suffix == "so" else used)
    except OSError:
        pass
    # Only finished entries (with a library); files being written have temporary names.
    return {cache_dir() / f"{stem}.so": v for stem, v in sizes.items()
            if not stem.endswith(".tmp") and (cache_dir() / f"{stem}.so").exists()}


def entries():
    """Cached libraries, least recently used first."""
    sizes = _entry_sizes()
    return sorted((p for p in sizes if p.exists()), key=lambda p: sizes[p][1])


def _remove(lib):
    for suffix in (".so", ".json", ".c"):
        try:
            lib.with_suffix(suffix).unlink()
        except OSError:
            pass


_pruning = {"added": 0, "done": False, "running": threading.Lock()}


def _limit_bytes():
    return float(os.environ.get("GRADC_CACHE_MAX_MB", "1024")) * 2 ** 20


def _maybe_prune(added):
    """Prunes once per process, then whenever this process has added 5% of the limit.

    NOTE: pruning scans the whole folder, so it runs off the caller's path and not after every
    compile (a test run compiling 1000 kernels spent minutes scanning). An entry pruned while
    another process loads it fails its checksum or its dlopen there and is rebuilt."""
    _pruning["added"] += added
    if _pruning["done"] and _pruning["added"] < 0.05 * _limit_bytes():
        return
    if not _pruning["running"].acquire(blocking=False):
        return
    _pruning["added"], _pruning["done"] = 0, True

    def run():
        try:
            prune()
        finally:
            _pruning["running"].release()
    threading.Thread(target=run, daemon=True).start()


def prune():
    """Keeps the cache under GRADC_CACHE_MAX_MB (default 1024), dropping least recently used."""
    limit = _limit_bytes()
    sizes = _entry_sizes()
    total = sum(size for size, _ in sizes.values())
    for lib in sorted(sizes, key=lambda p: sizes[p][1]):
        if total <= limit:
            break
        total -= sizes[lib][0]
        _remove(lib)


def cache_info():
    """Location, number of entries and size of the disk cache.

    >>> import gradc as gc
    >>> sorted(gc.cache_info())
    ['bytes', 'entries', 'location']
    """
    sizes = _entry_sizes()
    return {"location": str(cache_dir()), "entries": sum(1 for p in sizes if p.exists()),
            "bytes": sum(size for size, _ in sizes.values())}


def clear_cache():
    """Removes every compiled entry; returns how many were removed.

    >>> import gradc as gc
    >>> isinstance(gc.clear_cache(), int)
    True
    """
    sizes = _entry_sizes()
    for lib in sizes:
        _remove(lib)
    for index in cache_dir().glob("*.idx"):
        index.unlink(missing_ok=True)
    return len(sizes)
