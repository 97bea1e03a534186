/* gradc runtime: the hand-written helpers that generated kernels include.
 * C99, static inline, prefixed gradc_, no state but the thread heuristic's (which chooses who runs
 * a region's chunks, never what they compute): kernels stay reentrant. */
#ifndef GRADC_RUNTIME_H
#define GRADC_RUNTIME_H

#include <stdint.h>
/* The C library as kernels use it. NOTE: JIT builds (-DGRADC_LIGHT_HEADERS, GCC or clang) declare
 * the few functions and macros they need instead of parsing <math.h>, <stdlib.h> and <string.h>:
 * that took ~9 ms of the ~50 ms a small kernel's build takes (2-core AMD, GCC 12). C99 allows
 * declaring a library function without its header; GCC and clang know these as built-ins (the
 * code is the same as with the headers), and -Werror=implicit-function-declaration turns a
 * function missing here into a compile error, never a call through an int-returning guess. */
#if defined(GRADC_LIGHT_HEADERS) && defined(__GNUC__)
#include <stddef.h>
#if defined(__has_include)
#if __has_include(<features.h>)
#include <features.h>       /* __GLIBC_PREREQ, for the kernels' SIMD declarations */
#endif
#endif
#define GRADC_LIBM1(name) float name##f(float); double name(double);
#define GRADC_LIBM2(name) float name##f(float, float); double name(double, double);
GRADC_LIBM1(acos) GRADC_LIBM1(asin) GRADC_LIBM1(atan) GRADC_LIBM1(cos) GRADC_LIBM1(sin)
GRADC_LIBM1(tan) GRADC_LIBM1(acosh) GRADC_LIBM1(asinh) GRADC_LIBM1(atanh) GRADC_LIBM1(cosh)
GRADC_LIBM1(sinh) GRADC_LIBM1(tanh) GRADC_LIBM1(exp) GRADC_LIBM1(exp2) GRADC_LIBM1(expm1)
GRADC_LIBM1(log) GRADC_LIBM1(log10) GRADC_LIBM1(log1p) GRADC_LIBM1(log2) GRADC_LIBM1(cbrt)
GRADC_LIBM1(fabs) GRADC_LIBM1(sqrt) GRADC_LIBM1(erf) GRADC_LIBM1(erfc) GRADC_LIBM1(lgamma)
GRADC_LIBM1(tgamma) GRADC_LIBM1(ceil) GRADC_LIBM1(floor) GRADC_LIBM1(nearbyint)
GRADC_LIBM1(rint) GRADC_LIBM1(round) GRADC_LIBM1(trunc)
GRADC_LIBM2(atan2) GRADC_LIBM2(hypot) GRADC_LIBM2(pow) GRADC_LIBM2(fmod) GRADC_LIBM2(remainder)
GRADC_LIBM2(copysign) GRADC_LIBM2(nextafter) GRADC_LIBM2(fdim) GRADC_LIBM2(fmax) GRADC_LIBM2(fmin)
#undef GRADC_LIBM1
#undef GRADC_LIBM2
void *memcpy(void *, const void *, size_t);
void *memset(void *, int, size_t);
void *malloc(size_t);
void free(void *);
void abort(void);
/* as glibc's <math.h> defines them for GCC */
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf_sign(x)
#define isfinite(x) __builtin_isfinite(x)
#define signbit(x) __builtin_signbit(x)
#else
#include <math.h>
#include <stdlib.h>
#include <string.h>
#endif

/* Vector math: with GRADC_VECTOR_MATH (JIT builds with GCC on x86-64 glibc) the libm functions the
 * kernels call are declared SIMD-capable, so GCC vectorises fused loops with glibc's libmvec
 * (link with -lmvec). Unlike -ffast-math this keeps IEEE NaN/Inf behaviour; libmvec's results are
 * within 4 ulp of the correctly rounded ones. The declarations themselves are generated from the
 * primitive table into each kernel (gradc/cbackend/vecmath.py). */
#if defined(GRADC_VECTOR_MATH) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define GRADC_SIMD __attribute__((simd("notinbranch")))
#endif

/* Vectorised sums: the kernels mark the loops whose sums may be reordered. Compiled without
 * -DGRADC_OPENMP_SIMD (and -fopenmp-simd) the mark is nothing and the sums run in order. */
#define GRADC_PRAGMA(x) _Pragma(#x)
#ifdef GRADC_OPENMP_SIMD
#define GRADC_SIMD_SUM(...) GRADC_PRAGMA(omp simd reduction(+:__VA_ARGS__))
#else
#define GRADC_SIMD_SUM(...)
#endif

/* Fused loops whose iterations are independent: every buffer a loop writes is apart from the ones
 * it reads at other points (the workspace plan guarantees it), so the compiler may skip its
 * run-time overlap checks, which GCC gets wrong for mixed bool/float buffers (a ReLU loop ran
 * 4x slower, unvectorised). */
#if defined(__clang__)
#define GRADC_IVDEP GRADC_PRAGMA(clang loop vectorize(assume_safety))
#elif defined(__GNUC__)
#define GRADC_IVDEP GRADC_PRAGMA(GCC ivdep)
#else
#define GRADC_IVDEP
#endif

/* Threads for big loops: a marked block runs as n chunks, chunk t (0 <= t < n) the same work in
 * every build, so results never depend on how many threads ran or which ran what (without
 * -fopenmp -DGRADC_OPENMP one thread runs the n chunks in order).
 *
 *     { GRADC_PARALLEL(n, threads) GRADC_CHUNKS(t, n) { ...chunk t of n... } GRADC_PARALLEL_END }
 *
 * With OpenMP, every thread of the team claims chunks until none is left, so a thread the OS has
 * not scheduled yet claims nothing and the others do its share. What the caller may still wait
 * for is that thread arriving at the region's end: on a machine whose other cores are busy that
 * can be a whole time slice (milliseconds, for a region of microseconds). So the kernel watches
 * its regions: after one where the calling thread waited for the others longer than half of what
 * their chunks would have taken it (at its own pace; and longer than a wake-up), it runs the
 * regions that start in the next 4 times that wait on its own; each such region in a row doubles
 * that, up to 64 times (a machine that stays busy costs ~1/64 of its time in such waits), each
 * region the others helped in halves it (a quiet machine's passing hiccup costs little). A region
 * that starts over 1 ms after the last shared one ended is not judged: the others were asleep and
 * had to wake (a call after an idle pause, the first region after a stretch run alone). This
 * state (per kernel library, not per call) only chooses who runs the chunks, never what they
 * compute. */

/* The threads a loop of `work` points and `outer` outer iterations gets when its size is named
 * (known at run time): the rule the schedule pass applies to fixed sizes (gradc/cbackend/loops.py,
 * _threads_for), at most `most`; one below `min_work`, the break-even of two threads. */
static inline int gradc_threads_for(int64_t work, int64_t outer, int64_t most, int64_t min_work)
{
    int64_t t = 2 * work / min_work;
    t = t < most ? t : most;
    t = t < outer ? t : outer;
    return work < min_work || t < 2 ? 1 : (int)t;
}

/* The chunks of such a loop: `per_thread` a thread where each keeps `min_work` points and there are
 * at most `most_chunks` (the copies of partial sums the kernel has room for), else one a thread:
 * loops.py's _chunks_for at run time, so a named kernel's sums are the fixed kernel's bits. */
static inline int64_t gradc_chunks_for(int64_t work, int64_t outer, int64_t most, int64_t min_work,
                                       int64_t per_thread, int64_t most_chunks)
{
    int64_t t = gradc_threads_for(work, outer, most, min_work), c = t * per_thread;
    return t >= 2 && c <= most_chunks && outer >= c && work >= c * min_work ? c : t;
}
/* The blocks of rows a product of m (named: known at run time) x k x n splits into among `threads`:
 * plan.thread_blocks's rule for fixed sizes (none below `split_macs` multiply-adds; `per_thread`
 * blocks a thread where each keeps `min_rows` rows, else one a thread), block r being rows
 * [m r / blocks, m (r + 1) / blocks). */
static inline int64_t gradc_row_blocks(int64_t m, int64_t k, int64_t n, int64_t threads,
                                       int64_t per_thread, int64_t min_rows, int64_t split_macs)
{
    if (m * n * k < split_macs || m < threads) return 1;
    return m / (threads * per_thread) >= min_rows ? threads * per_thread : threads;
}
#ifdef GRADC_OPENMP
/* The OpenMP calls, declared rather than parsing <omp.h> (compile time is a headline figure). */
int omp_get_thread_num(void);
double omp_get_wtime(void);
#define GRADC_SLOW_WAIT_S 250e-6    /* waits below it are wake-ups, normal on a quiet machine */
#define GRADC_SOLO_MIN 4             /* regions alone for 4, 8, ... 64 times the wait */
#define GRADC_SOLO_MAX 64
#define GRADC_IDLE_S 1e-3           /* a region starting this long after the last shared one ended
                                       finds the other threads asleep: its wait is not judged */
/* NOTE: one copy of each helper per kernel, not one per region: inlined into every region they
 * made cc take 190 instead of 160 ms on mlp[1024]'s kernel; a call costs nanoseconds. */
#if defined(__GNUC__)
#define GRADC_REGION_FN static __attribute__((noinline))
#else
#define GRADC_REGION_FN static
#endif
typedef struct {
    int64_t next, n, own_chunks;
    double start, own_done;
    int team, after_idle;
} gradc_region;
static double gradc_solo_until;        /* omp_get_wtime() before which regions run alone */
static double gradc_solo_factor = GRADC_SOLO_MIN;
static double gradc_last_shared_end;   /* omp_get_wtime() when the last shared region ended */

GRADC_REGION_FN gradc_region gradc_region_begin(int64_t n, int threads) {
    gradc_region rg = {0, n, 0, 0.0, 0.0, n < threads ? (int)n : threads, 0};
    if (rg.team > 1) {
        double until, last;
        rg.start = omp_get_wtime();
        __atomic_load(&gradc_solo_until, &until, __ATOMIC_RELAXED);
        __atomic_load(&gradc_last_shared_end, &last, __ATOMIC_RELAXED);
        if (rg.start < until) rg.team = 1;
        rg.after_idle = rg.start - last > GRADC_IDLE_S;
    }
    return rg;
}

GRADC_REGION_FN int64_t gradc_claim(gradc_region *rg) {
    int64_t t = __atomic_fetch_add(&rg->next, 1, __ATOMIC_RELAXED);
    int me = rg->team > 1 && omp_get_thread_num() == 0;
    if (t < rg->n) {
        if (me) rg->own_chunks++;
        return t;
    }
    if (me) rg->own_done = omp_get_wtime();
    return -1;
}

GRADC_REGION_FN void gradc_region_end(const gradc_region *rg) {
    if (rg->team < 2) return;
    double now = omp_get_wtime(), waited = now - rg->own_done, own = rg->own_done - rg->start;
    __atomic_store(&gradc_last_shared_end, &now, __ATOMIC_RELAXED);
    /* NOTE: after an idle stretch (between calls, or after regions run alone) the others must
     * wake first; judged, that wait sent regions to run alone: the transformer step called every
     * 20 ms took 11.4-12.2 ms at the 90th percentile (one thread: 5.3 ms), 4.0-4.4 ms unjudged
     * (2-core AMD, three alternating pairs; mlp[1024] within noise either way). */
    if (rg->after_idle) return;
    /* what the others' chunks would have cost this thread, at its pace in this region */
    double saved = rg->own_chunks ? (rg->n - rg->own_chunks) * own / rg->own_chunks : waited;
    double factor;
    __atomic_load(&gradc_solo_factor, &factor, __ATOMIC_RELAXED);
    if (waited > GRADC_SLOW_WAIT_S && 2 * waited > saved) {
        double until = now + factor * waited;
        __atomic_store(&gradc_solo_until, &until, __ATOMIC_RELAXED);
        factor = factor < GRADC_SOLO_MAX ? 2 * factor : GRADC_SOLO_MAX;
    } else {
        factor = factor > GRADC_SOLO_MIN ? factor / 2 : GRADC_SOLO_MIN;
    }
    __atomic_store(&gradc_solo_factor, &factor, __ATOMIC_RELAXED);
}

#define GRADC_PARALLEL(n, threads)                                                             \
    gradc_region gradc_rg = gradc_region_begin(n, threads);                                    \
    GRADC_PRAGMA(omp parallel num_threads(gradc_rg.team))
#define GRADC_CHUNKS(t, n) for (int64_t t; (t = gradc_claim(&gradc_rg)) >= 0;)
#define GRADC_PARALLEL_END gradc_region_end(&gradc_rg);
#else
#define GRADC_PARALLEL(n, threads)
#define GRADC_CHUNKS(t, n) for (int64_t t = 0; t < (n); t++)
#define GRADC_PARALLEL_END
#endif

/* Repeated steps (an unrolled loop's body) are emitted once and called per step; not inlining
 * them keeps compile time in proportion to the loop body, not to the number of steps. */
#if defined(__GNUC__)
#define GRADC_NOINLINE __attribute__((noinline))
#define GRADC_CONSTRUCTOR __attribute__((constructor))
#else
#define GRADC_NOINLINE
#define GRADC_CONSTRUCTOR
#endif

/* Counter-based random numbers: Threefry-2x32 with 20 rounds (Salmon et al. 2011, Random123),
 * the same function as gradc.primitives.threefry2x32. Element i of a random array is the counter
 * i encrypted under the key's two words, so any element is computed alone, in any order. */
static inline uint32_t gradc_rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }
static inline void gradc_threefry2x32(uint32_t k0, uint32_t k1, uint64_t counter,
                                      uint32_t *o0, uint32_t *o1) {
    static const int rot[8] = {13, 15, 26, 6, 17, 29, 16, 24};
    const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    uint32_t x0 = (uint32_t)(counter >> 32) + ks[0], x1 = (uint32_t)counter + ks[1];
    for (int i = 0; i < 20; i++) {
        x0 += x1;
        x1 = gradc_rotl32(x1, rot[i % 8]) ^ x0;
        if (i % 4 == 3) {
            int s = i / 4 + 1;
            x0 += ks[s % 3];
            x1 += ks[(s + 1) % 3] + (uint32_t)s;
        }
    }
    *o0 = x0;
    *o1 = x1;
}
/* The first word (random_bits as int64), its top 24 bits as a float in [0, 1), or 53 bits of
 * both words as a double in [0, 1): exact conversions, as the NumPy implementation. */
static inline int64_t gradc_random_bits(uint32_t k0, uint32_t k1, int64_t i) {
    uint32_t o0, o1;
    gradc_threefry2x32(k0, k1, (uint64_t)i, &o0, &o1);
    return (int64_t)o0;
}
static inline float gradc_random_uniformf(uint32_t k0, uint32_t k1, int64_t i) {
    uint32_t o0, o1;
    gradc_threefry2x32(k0, k1, (uint64_t)i, &o0, &o1);
    return (float)(o0 >> 8) * 0x1.0p-24f;
}
static inline double gradc_random_uniform(uint32_t k0, uint32_t k1, int64_t i) {
    uint32_t o0, o1;
    gradc_threefry2x32(k0, k1, (uint64_t)i, &o0, &o1);
    return ((double)(o0 >> 5) * 67108864.0 + (double)(o1 >> 6)) * 0x1.0p-53;
}

/* Error codes a kernel returns (0 is success). */
#define GRADC_OK 0
#define GRADC_ERR_INDEX 1      /* an index or label out of range */
#define GRADC_ERR_ALLOC 2      /* the self-allocating entry could not allocate its workspace */
#define GRADC_ERR_SIZE 3       /* a named size below 1 (an AOT export's size argument) */
#define GRADC_ERR_SINGULAR 4   /* linalg.inv / linalg.solve: a matrix is singular */
#define GRADC_ERR_NOT_PD 5     /* linalg.cholesky: a matrix is not positive definite */

/* NaN-propagating max/min, as numpy.maximum / numpy.minimum. */
static inline float gradc_maxf(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float gradc_minf(float a, float b) { return (a < b || a != a) ? a : b; }
static inline double gradc_max(double a, double b) { return (a > b || a != a) ? a : b; }
static inline double gradc_min(double a, double b) { return (a < b || a != a) ? a : b; }
static inline int64_t gradc_maxi(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t gradc_mini(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t gradc_absi(int64_t a) { return a < 0 ? -a : a; }
static inline int64_t gradc_signi(int64_t a) { return (a > 0) - (a < 0); }

/* sign with sign(0) = 0 and NaN passed through, as numpy.sign. */
static inline float gradc_signf(float x) { return x > 0 ? 1.0f : (x < 0 ? -1.0f : x); }
static inline double gradc_sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : x); }

/* NOTE: stable forms. sigmoid never computes exp of a large positive number; softplus is
 * max(x, 0) + log1p(exp(-|x|)), finite and accurate for |x| ~ 1e3. */
static inline float gradc_sigmoidf(float x) {
    float e = expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
static inline double gradc_sigmoid(double x) {
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
static inline float gradc_softplusf(float x) { return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x))); }
static inline double gradc_softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* An index checked against [0, dim) after wrapping negatives when `wrap` (NumPy indexing);
 * returns -1 when out of range. */
static inline int64_t gradc_index(int64_t i, int64_t dim, int wrap) {
    if (wrap && i < 0) i += dim;
    return (i < 0 || i >= dim) ? -1 : i;
}

/* Small dense linear algebra for the linalg primitives (inv, solve, det, cholesky), per matrix of
 * a batch, in C so small matrices pay no call into Python or LAPACK's argument checks. Gauss-Jordan
 * elimination with partial pivoting; an exactly zero pivot (LAPACK getrf's info > 0) returns
 * GRADC_ERR_SINGULAR and a non-positive one in Cholesky (potrf's) GRADC_ERR_NOT_PD, where NumPy
 * raises LinAlgError.
 * Scratch memory comes from malloc (kernels stay reentrant). */
#define GRADC_LINALG(T, S, ABS, LOG) \
/* Reduces w (n x n) to the identity by row operations, applied to rhs (n x m) too: rhs = w^-1 rhs. */ \
static inline int gradc_gauss_jordan_##S(T *w, T *rhs, int64_t n, int64_t m) { \
    for (int64_t k = 0; k < n; k++) { \
        int64_t p = k; \
        for (int64_t i = k + 1; i < n; i++) if (ABS(w[i * n + k]) > ABS(w[p * n + k])) p = i; \
        if (p != k) { \
            for (int64_t j = 0; j < n; j++) { T t = w[k * n + j]; w[k * n + j] = w[p * n + j]; w[p * n + j] = t; } \
            for (int64_t j = 0; j < m; j++) { T t = rhs[k * m + j]; rhs[k * m + j] = rhs[p * m + j]; rhs[p * m + j] = t; } \
        } \
        if (w[k * n + k] == 0) return GRADC_ERR_SINGULAR; \
        T inv = (T)1 / w[k * n + k]; \
        for (int64_t j = 0; j < n; j++) w[k * n + j] *= inv; \
        for (int64_t j = 0; j < m; j++) rhs[k * m + j] *= inv; \
        for (int64_t i = 0; i < n; i++) { \
            T f = w[i * n + k]; \
            if (i == k || f == 0) continue; \
            for (int64_t j = 0; j < n; j++) w[i * n + j] -= f * w[k * n + j]; \
            for (int64_t j = 0; j < m; j++) rhs[i * m + j] -= f * rhs[k * m + j]; \
        } \
    } \
    return GRADC_OK; \
} \
/* out = a^-1 for each of `batch` n x n matrices. */ \
static inline int gradc_inv_##S(T *out, const T *a, int64_t batch, int64_t n) { \
    T *w = (T *)malloc((size_t)(n * n > 0 ? n * n : 1) * sizeof(T)); \
    if (!w) return GRADC_ERR_ALLOC; \
    for (int64_t b = 0; b < batch; b++) { \
        T *o = out + b * n * n; \
        memcpy(w, a + b * n * n, (size_t)(n * n) * sizeof(T)); \
        for (int64_t i = 0; i < n * n; i++) o[i] = (i % (n + 1) == 0) ? (T)1 : (T)0; \
        int rc = gradc_gauss_jordan_##S(w, o, n, n); \
        if (rc) { free(w); return rc; } \
    } \
    free(w); \
    return GRADC_OK; \
} \
/* out = a^-1 rhs for each of `batch` n x n matrices a and n x m right-hand sides. */ \
static inline int gradc_solve_##S(T *out, const T *a, const T *rhs, int64_t batch, int64_t n, \
                                  int64_t m) { \
    T *w = (T *)malloc((size_t)(n * n > 0 ? n * n : 1) * sizeof(T)); \
    if (!w) return GRADC_ERR_ALLOC; \
    for (int64_t b = 0; b < batch; b++) { \
        memcpy(w, a + b * n * n, (size_t)(n * n) * sizeof(T)); \
        memcpy(out + b * n * m, rhs + b * n * m, (size_t)(n * m) * sizeof(T)); \
        int rc = gradc_gauss_jordan_##S(w, out + b * n * m, n, m); \
        if (rc) { free(w); return rc; } \
    } \
    free(w); \
    return GRADC_OK; \
} \
/* det (part 0), log|det| (part 1) or sign(det) (part 2) of each n x n matrix, by LU elimination. */ \
static inline int gradc_det_##S(T *out, const T *a, int64_t batch, int64_t n, int part) { \
    T *w = (T *)malloc((size_t)(n * n > 0 ? n * n : 1) * sizeof(T)); \
    if (!w) return GRADC_ERR_ALLOC; \
    for (int64_t b = 0; b < batch; b++) { \
        memcpy(w, a + b * n * n, (size_t)(n * n) * sizeof(T)); \
        T det = 1, logabs = 0, sign = 1; \
        for (int64_t k = 0; k < n; k++) { \
            int64_t p = k; \
            for (int64_t i = k + 1; i < n; i++) if (ABS(w[i * n + k]) > ABS(w[p * n + k])) p = i; \
            if (p != k) { \
                sign = -sign; det = -det; \
                for (int64_t j = 0; j < n; j++) { T t = w[k * n + j]; w[k * n + j] = w[p * n + j]; w[p * n + j] = t; } \
            } \
            T piv = w[k * n + k]; \
            det *= piv; \
            logabs += LOG(ABS(piv)); \
            if (piv < 0) sign = -sign; \
            if (piv == 0) { sign = 0; continue; } \
            for (int64_t i = k + 1; i < n; i++) { \
                T f = w[i * n + k] / piv; \
                for (int64_t j = k; j < n; j++) w[i * n + j] -= f * w[k * n + j]; \
            } \
        } \
        out[b] = part == 0 ? det : part == 1 ? logabs : sign; \
    } \
    free(w); \
    return GRADC_OK; \
} \
/* The lower Cholesky factor of each symmetric positive definite n x n matrix. */ \
static inline int gradc_cholesky_##S(T *out, const T *a, int64_t batch, int64_t n) { \
    for (int64_t b = 0; b < batch; b++) { \
        const T *x = a + b * n * n; \
        T *l = out + b * n * n; \
        for (int64_t i = 0; i < n; i++) { \
            for (int64_t j = 0; j <= i; j++) { \
                T s = x[i * n + j]; \
                for (int64_t k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k]; \
                if (i == j && !(s > 0)) return GRADC_ERR_NOT_PD;    /* NaN too, as potrf */ \
                l[i * n + j] = i == j ? GRADC_SQRT_##S(s) : s / l[j * n + j]; \
            } \
            for (int64_t j = i + 1; j < n; j++) l[i * n + j] = 0; \
        } \
    } \
    return GRADC_OK; \
}
#define GRADC_SQRT_f32 sqrtf
#define GRADC_SQRT_f64 sqrt
GRADC_LINALG(float, f32, fabsf, logf)
GRADC_LINALG(double, f64, fabs, log)

#endif /* GRADC_RUNTIME_H */
