/* AVX-512 loops of the row operations (see kernels_internal.h). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

OD__T void od__sum_rows_avx512(int rows, int cols, const float *x, size_t ld,
                               float *out)
{
    int j = 0;
    /* Four vectors of columns at a time, rows added in order. */
    for (; j + 64 <= cols; j += 64) {
        __m512 a0 = _mm512_loadu_ps(out + j);
        __m512 a1 = _mm512_loadu_ps(out + j + 16);
        __m512 a2 = _mm512_loadu_ps(out + j + 32);
        __m512 a3 = _mm512_loadu_ps(out + j + 48);
        for (int i = 0; i < rows; i++) {
            const float *xi = x + (size_t)i * ld + j;
            a0 = _mm512_add_ps(a0, _mm512_loadu_ps(xi));
            a1 = _mm512_add_ps(a1, _mm512_loadu_ps(xi + 16));
            a2 = _mm512_add_ps(a2, _mm512_loadu_ps(xi + 32));
            a3 = _mm512_add_ps(a3, _mm512_loadu_ps(xi + 48));
        }
        _mm512_storeu_ps(out + j, a0);
        _mm512_storeu_ps(out + j + 16, a1);
        _mm512_storeu_ps(out + j + 32, a2);
        _mm512_storeu_ps(out + j + 48, a3);
    }
    /* Remaining columns one (possibly partial) vector at a time. */
    for (; j < cols; j += 16) {
        int left = cols - j;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff
                                 : (__mmask16)((1u << left) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m, out + j);
        for (int i = 0; i < rows; i++)
            a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, x + (size_t)i * ld + j));
        _mm512_mask_storeu_ps(out + j, m, a);
    }
}

OD__T void od__add_bias_rows_avx512(int rows, int cols, float *x, size_t ld,
                                    const float *bias)
{
    for (int i = 0; i < rows; i++) {
        float *xi = x + (size_t)i * ld;
        int j = 0;
        for (; j + 16 <= cols; j += 16)
            _mm512_storeu_ps(xi + j, _mm512_add_ps(_mm512_loadu_ps(xi + j),
                                                   _mm512_loadu_ps(bias + j)));
        if (j < cols) {
            __mmask16 m = (__mmask16)((1u << (cols - j)) - 1u);
            __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, xi + j),
                                     _mm512_maskz_loadu_ps(m, bias + j));
            _mm512_mask_storeu_ps(xi + j, m, v);
        }
    }
}

/* od__pair_leaf_portable on four registers of 8 doubles: register r lane
 * l holds lane 8r + l there, and every step is the same product then sum,
 * so the bits agree. */
OD__T double od__pair_leaf_avx512(size_t n, const float *x, int squares)
{
    __m512d a[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd(), _mm512_setzero_pd()};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int r = 0; r < 4; r++) {
            __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * r));
            a[r] = _mm512_add_pd(a[r], squares ? _mm512_mul_pd(v, v) : v);
        }
    double lane[8];
    _mm512_storeu_pd(lane, _mm512_add_pd(_mm512_add_pd(a[0], a[1]),
                                         _mm512_add_pd(a[2], a[3])));
    double sum = 0.0;
    for (int l = 0; l < 8; l++)
        sum += lane[l];
    for (; i < n; i++)
        sum += squares ? (double)x[i] * x[i] : (double)x[i];
    return sum;
}

#else

void od__sum_rows_avx512(int rows, int cols, const float *x, size_t ld,
                         float *out)
{
    (void)rows, (void)cols, (void)x, (void)ld, (void)out;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

void od__add_bias_rows_avx512(int rows, int cols, float *x, size_t ld,
                              const float *bias)
{
    (void)rows, (void)cols, (void)x, (void)ld, (void)bias;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

double od__pair_leaf_avx512(size_t n, const float *x, int squares)
{
    return od__pair_leaf_portable(n, x, squares);
}

#endif
