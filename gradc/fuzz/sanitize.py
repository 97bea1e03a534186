"""The environment that runs gradc's kernels under AddressSanitizer and UBSan (GRADC_SANITIZE=1):
the sanitizer runtime must be the first library a non-sanitized Python loads (LD_PRELOAD)."""
import functools
import os
import subprocess

from gradc.cbackend import build


@functools.lru_cache(maxsize=None)
def asan_runtime():
    """The path of the compiler's libasan.so, or None where the compiler has none."""
    try:
        out = subprocess.run([build.find_compiler(), "-print-file-name=libasan.so"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired, Exception):     # noqa: BLE001 - no compiler
        return None
    path = out.stdout.strip()
    return path if out.returncode == 0 and os.path.isabs(path) and os.path.exists(path) else None


def sanitizer_env():
    """Variables for a subprocess that runs sanitized kernels, or None if the runtime is missing.
    Leak checking is off: CPython's allocations are not ours."""
    lib = asan_runtime()
    if lib is None:
        return None
    return {"GRADC_SANITIZE": "1", "LD_PRELOAD": lib,
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def main(argv=None):
    """`python -m gradc.fuzz.sanitize [pytest arguments]`: pytest under the sanitizers in a
    subprocess (default: the op table and the error cases)."""
    import sys
    args = list(sys.argv[1:] if argv is None else argv) or ["-q", "-p", "no:cacheprovider",
                                                            "tests/test_ops.py",
                                                            "tests/test_errors.py"]
    env = sanitizer_env()
    if env is None:
        print("the C compiler has no AddressSanitizer runtime (libasan): nothing to run")
        return 2
    return subprocess.run([sys.executable, "-m", "pytest", *args],
                          env=dict(os.environ, **env)).returncode


if __name__ == "__main__":
    raise SystemExit(main())
