/* AVX2 loops of the row operations (see kernels_internal.h). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx2,fma")))

OD__T void od__sum_rows_avx2(int rows, int cols, const float *x, size_t ld,
                             float *out)
{
    int j = 0;
    /* Four vectors of columns at a time, rows added in order. */
    for (; j + 32 <= cols; j += 32) {
        __m256 a0 = _mm256_loadu_ps(out + j);
        __m256 a1 = _mm256_loadu_ps(out + j + 8);
        __m256 a2 = _mm256_loadu_ps(out + j + 16);
        __m256 a3 = _mm256_loadu_ps(out + j + 24);
        for (int i = 0; i < rows; i++) {
            const float *xi = x + (size_t)i * ld + j;
            a0 = _mm256_add_ps(a0, _mm256_loadu_ps(xi));
            a1 = _mm256_add_ps(a1, _mm256_loadu_ps(xi + 8));
            a2 = _mm256_add_ps(a2, _mm256_loadu_ps(xi + 16));
            a3 = _mm256_add_ps(a3, _mm256_loadu_ps(xi + 24));
        }
        _mm256_storeu_ps(out + j, a0);
        _mm256_storeu_ps(out + j + 8, a1);
        _mm256_storeu_ps(out + j + 16, a2);
        _mm256_storeu_ps(out + j + 24, a3);
    }
    for (; j + 8 <= cols; j += 8) {
        __m256 a = _mm256_loadu_ps(out + j);
        for (int i = 0; i < rows; i++)
            a = _mm256_add_ps(a, _mm256_loadu_ps(x + (size_t)i * ld + j));
        _mm256_storeu_ps(out + j, a);
    }
    /* Fewer than eight columns left: plain loop, same order. */
    for (int i = 0; i < rows; i++)
        for (int jj = j; jj < cols; jj++)
            out[jj] += x[(size_t)i * ld + jj];
}

OD__T void od__add_bias_rows_avx2(int rows, int cols, float *x, size_t ld,
                                  const float *bias)
{
    for (int i = 0; i < rows; i++) {
        float *xi = x + (size_t)i * ld;
        int j = 0;
        for (; j + 8 <= cols; j += 8)
            _mm256_storeu_ps(xi + j, _mm256_add_ps(_mm256_loadu_ps(xi + j),
                                                   _mm256_loadu_ps(bias + j)));
        for (; j < cols; j++)
            xi[j] += bias[j];
    }
}

#else

void od__sum_rows_avx2(int rows, int cols, const float *x, size_t ld,
                       float *out)
{
    (void)rows, (void)cols, (void)x, (void)ld, (void)out;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

void od__add_bias_rows_avx2(int rows, int cols, float *x, size_t ld,
                            const float *bias)
{
    (void)rows, (void)cols, (void)x, (void)ld, (void)bias;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

#endif
