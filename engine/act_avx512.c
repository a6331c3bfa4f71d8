/* AVX-512 loops of the activations (see kernels_internal.h). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

static OD__T inline __mmask16 od__tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

OD__T void od__relu_fwd_avx512(size_t n, const float *x, float *y)
{
    const __m512 zero = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
        /* max(a, 0) returns 0 for a NaN in a, as the scalar comparison does. */
        _mm512_storeu_ps(y + i, _mm512_max_ps(a, zero));
        _mm512_storeu_ps(y + i + 16, _mm512_max_ps(b, zero));
    }
    for (; i < n; i += 16) {
        __mmask16 m = od__tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_max_ps(a, zero));
    }
}

OD__T void od__relu_bwd_avx512(size_t n, const float *x, const float *dy,
                               float *dx)
{
    const __m512 zero = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = od__tail_mask(n - i);
        __m512 a = _mm512_maskz_loadu_ps(m, x + i);
        __mmask16 pos = _mm512_mask_cmp_ps_mask(m, a, zero, _CMP_GT_OQ);
        __m512 g = _mm512_maskz_loadu_ps(pos, dy + i);
        _mm512_mask_storeu_ps(dx + i, m, g);
    }
}

#else

void od__relu_fwd_avx512(size_t n, const float *x, float *y)
{
    (void)n, (void)x, (void)y;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

void od__relu_bwd_avx512(size_t n, const float *x, const float *dy,
                         float *dx)
{
    (void)n, (void)x, (void)dy, (void)dx;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

#endif
