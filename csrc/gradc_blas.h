/* gradc BLAS: row-major GEMM for generated kernels. With GRADC_HAVE_MKL it calls Intel MKL's cblas
 * (and MKL's JIT kernels for small products of fixed shape), with GRADC_HAVE_OPENBLAS
 * scipy-openblas32's cblas (declared here, so kernels need not parse a full cblas.h); otherwise a
 * plain C fallback, correct but slower. C99, prefixed gradc_. */
#ifndef GRADC_BLAS_H
#define GRADC_BLAS_H

#include <stdint.h>

#define GRADC_ROW_MAJOR 101
#define GRADC_NO_TRANS 111
#define GRADC_TRANS 112

#if defined(GRADC_HAVE_MKL)
#define GRADC_CBLAS_SGEMM cblas_sgemm
#define GRADC_CBLAS_DGEMM cblas_dgemm
#elif defined(GRADC_HAVE_OPENBLAS)
#define GRADC_CBLAS_SGEMM scipy_cblas_sgemm
#define GRADC_CBLAS_DGEMM scipy_cblas_dgemm
#endif

#ifdef GRADC_CBLAS_SGEMM
void GRADC_CBLAS_SGEMM(int order, int transa, int transb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c,
                       int ldc);
void GRADC_CBLAS_DGEMM(int order, int transa, int transb, int m, int n, int k, double alpha,
                       const double *a, int lda, const double *b, int ldb, double beta, double *c,
                       int ldc);
#endif

#define GRADC_GEMM_FALLBACK(NAME, T)                                                          \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, int beta, T *c, int ldc) {                   \
        for (int i = 0; i < m; i++) {                                                          \
            if (!beta) for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] = 0;               \
            for (int p = 0; p < k; p++) {                                                      \
                T av = ta ? a[(int64_t)p * lda + i] : a[(int64_t)i * lda + p];                \
                if (tb) {                                                                      \
                    for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] += av * b[(int64_t)j * ldb + p]; \
                } else {                                                                       \
                    for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] += av * b[(int64_t)p * ldb + j]; \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

GRADC_GEMM_FALLBACK(gradc_gemm_fallback_f, float)
GRADC_GEMM_FALLBACK(gradc_gemm_fallback_d, double)

/* C[m,n] = op(A) @ op(B) + beta C (beta 0 or 1), row-major; ta / tb say whether A / B are stored
 * transposed. */
#ifdef GRADC_CBLAS_SGEMM
#define GRADC_GEMM(NAME, T, CBLAS, FALLBACK)                                                  \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, int beta, T *c, int ldc) {                   \
        if (m > 0 && n > 0 && k > 0)                                                           \
            CBLAS(GRADC_ROW_MAJOR, ta ? GRADC_TRANS : GRADC_NO_TRANS,                          \
                  tb ? GRADC_TRANS : GRADC_NO_TRANS, m, n, k, 1, a, lda, b, ldb, beta, c, ldc); \
        else                                                                                   \
            FALLBACK(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);                           \
    }
#else
#define GRADC_GEMM(NAME, T, CBLAS, FALLBACK)                                                  \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, int beta, T *c, int ldc) {                   \
        FALLBACK(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);                               \
    }
#endif

GRADC_GEMM(gradc_gemm_f, float, GRADC_CBLAS_SGEMM, gradc_gemm_fallback_f)
GRADC_GEMM(gradc_gemm_d, double, GRADC_CBLAS_DGEMM, gradc_gemm_fallback_d)

/* Small products of a fixed shape: with MKL, a kernel MKL generates for the shape once, when the
 * library loads (gradc_jit_make_*, from the kernel's constructor), run on one thread; a slot MKL
 * could not fill (or any build without MKL) runs gradc_gemm_* instead. Products this small do not
 * pay for threads, and MKL's JIT code skips the checks and dispatch of every cblas call. */
#define GRADC_GEMM_JIT(SUFFIX, T, CREATE, GET)                                                 \
    typedef struct {                                                                           \
        void *jitter;                                                                          \
        void (*run)(void *, T *, T *, T *);                                                    \
    } gradc_jit_##SUFFIX;                                                                      \
    GRADC_JIT_MAKE(SUFFIX, T, CREATE, GET)                                                     \
    static inline void gradc_gemm_small_##SUFFIX(const gradc_jit_##SUFFIX *jit, int ta, int tb, \
            int m, int n, int k, const T *a, int lda, const T *b, int ldb, int beta, T *c,     \
            int ldc) {                                                                         \
        if (jit->run) jit->run(jit->jitter, (T *)a, (T *)b, c);                                \
        else gradc_gemm_##SUFFIX(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);               \
    }

#ifdef GRADC_HAVE_MKL
int mkl_cblas_jit_create_sgemm(void **jitter, int layout, int transa, int transb, int m, int n,
                               int k, float alpha, int lda, int ldb, float beta, int ldc);
int mkl_cblas_jit_create_dgemm(void **jitter, int layout, int transa, int transb, int m, int n,
                               int k, double alpha, int lda, int ldb, double beta, int ldc);
void (*mkl_jit_get_sgemm_ptr(const void *jitter))(void *, float *, float *, float *);
void (*mkl_jit_get_dgemm_ptr(const void *jitter))(void *, double *, double *, double *);
#define GRADC_MKL_JIT_ERROR 2
#define GRADC_JIT_MAKE(SUFFIX, T, CREATE, GET)                                                 \
    static inline void gradc_jit_make_##SUFFIX(gradc_jit_##SUFFIX *jit, int ta, int tb, int m,  \
            int n, int k, int lda, int ldb, int ldc, int beta) {                               \
        if (CREATE(&jit->jitter, GRADC_ROW_MAJOR, ta ? GRADC_TRANS : GRADC_NO_TRANS,           \
                   tb ? GRADC_TRANS : GRADC_NO_TRANS, m, n, k, 1, lda, ldb, beta, ldc)         \
            != GRADC_MKL_JIT_ERROR)                                                            \
            jit->run = GET(jit->jitter);                                                       \
    }
#else
#define GRADC_JIT_MAKE(SUFFIX, T, CREATE, GET)
#endif

GRADC_GEMM_JIT(f, float, mkl_cblas_jit_create_sgemm, mkl_jit_get_sgemm_ptr)
GRADC_GEMM_JIT(d, double, mkl_cblas_jit_create_dgemm, mkl_jit_get_dgemm_ptr)

#endif /* GRADC_BLAS_H */
