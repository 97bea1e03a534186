"""The SIMD declarations of the libm functions the kernels call, derived from the primitive table's
C templates and the runtime's helpers: with them GCC vectorises fused loops through glibc's libmvec;
without them a loop silently calls scalar libm (16x slower for tanhf)."""
import functools
import re

from ..primitives import PRIMITIVES

# libm functions with vector variants in glibc's libmvec (x86-64), by the glibc that added them.
LIBMVEC = {
    (2, 22): {"exp": 1, "log": 1, "sin": 1, "cos": 1, "pow": 2},
    (2, 35): {"acos": 1, "acosh": 1, "asin": 1, "asinh": 1, "atan": 1, "atan2": 2, "atanh": 1,
              "cbrt": 1, "cosh": 1, "erf": 1, "erfc": 1, "exp10": 1, "exp2": 1, "expm1": 1,
              "hypot": 2, "log10": 1, "log1p": 1, "log2": 1, "sinh": 1, "tan": 1, "tanh": 1},
}
# Functions the templates may call that need no declaration: GCC inlines them as instructions.
INLINE = {"sqrt", "fabs", "floor", "ceil", "trunc", "rint", "fmax", "fmin", "fmod", "copysign"}
_TEMPLATE_CALL = re.compile(r"\b([a-z][a-z0-9]*)\{f\}\(")
_CALL = re.compile(r"\b([a-z][a-z0-9]*)\(")


def template_calls():
    """Names of the libm functions called by the elementwise templates (`exp{f}(...)` -> exp)."""
    names = set()
    for prim in PRIMITIVES.values():
        for template in (prim.c.values() if isinstance(prim.c, dict) else [prim.c]):
            if isinstance(template, str):
                names.update(_TEMPLATE_CALL.findall(template))
    return names


def _runtime_calls():
    from .build import CSRC
    text = (CSRC / "gradc_runtime.h").read_text()
    known = {n for table in LIBMVEC.values() for n in table}
    # NOTE: one pass over the calls in the text: a search per name took 35 ms of a cold call.
    called = set(_CALL.findall(text))
    return known & (called | {name[:-1] for name in called if name.endswith("f")})


@functools.lru_cache(maxsize=None)
def simd_declarations():
    """C text declaring every libmvec function the kernels may call as SIMD-capable (both float
    types), under GRADC_VECTOR_MATH and the glibc version that has it."""
    used = template_calls() | _runtime_calls()
    lines = ["#if defined(GRADC_SIMD) && defined(__GLIBC_PREREQ)"]
    for (major, minor), table in sorted(LIBMVEC.items()):
        names = sorted(n for n in table if n in used)
        if not names:
            continue
        lines.append(f"#if __GLIBC_PREREQ({major}, {minor})")
        for n in names:
            for ctype, suffix in (("float", "f"), ("double", "")):
                args = ", ".join([ctype] * table[n])
                lines.append(f"GRADC_SIMD {ctype} {n}{suffix}({args});")
        lines.append("#endif")
    lines.append("#endif")
    return "\n".join(lines)
