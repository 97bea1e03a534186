/* gradc BLAS: row-major GEMM for generated kernels. With GRADC_HAVE_OPENBLAS it calls
 * scipy-openblas32's cblas (declared here, so kernels need not parse the full cblas.h);
 * otherwise a plain C fallback, correct but slower. C99, prefixed gradc_. */
#ifndef GRADC_BLAS_H
#define GRADC_BLAS_H

#include <stdint.h>

#ifdef GRADC_HAVE_OPENBLAS
void scipy_cblas_sgemm(int order, int transa, int transb, int m, int n, int k, float alpha,
                       const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void scipy_cblas_dgemm(int order, int transa, int transb, int m, int n, int k, double alpha,
                       const double *a, int lda, const double *b, int ldb, double beta, double *c,
                       int ldc);
#endif

#define GRADC_GEMM_FALLBACK(NAME, T)                                                          \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, T *c, int ldc) {                             \
        for (int i = 0; i < m; i++) {                                                          \
            for (int j = 0; j < n; j++) c[(int64_t)i * ldc + j] = 0;                          \
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

/* C[m,n] = op(A) @ op(B), row-major; ta / tb say whether A / B are stored transposed. */
#ifdef GRADC_HAVE_OPENBLAS
#define GRADC_GEMM(NAME, T, CBLAS, FALLBACK)                                                  \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, T *c, int ldc) {                             \
        if (m > 0 && n > 0 && k > 0)                                                           \
            CBLAS(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, 1, a, lda, b, ldb, 0, c, ldc); \
        else                                                                                   \
            FALLBACK(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);                                 \
    }
#else
#define GRADC_GEMM(NAME, T, CBLAS, FALLBACK)                                                  \
    static inline void NAME(int ta, int tb, int m, int n, int k, const T *a, int lda,         \
                            const T *b, int ldb, T *c, int ldc) {                             \
        FALLBACK(ta, tb, m, n, k, a, lda, b, ldb, c, ldc);                                     \
    }
#endif

GRADC_GEMM(gradc_gemm_f, float, scipy_cblas_sgemm, gradc_gemm_fallback_f)
GRADC_GEMM(gradc_gemm_d, double, scipy_cblas_dgemm, gradc_gemm_fallback_d)

#endif /* GRADC_BLAS_H */
