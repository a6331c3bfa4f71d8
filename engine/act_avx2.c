/* AVX2 loops of the activations (see kernels_internal.h). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx2,fma")))

OD__T void od__relu_fwd_avx2(size_t n, const float *x, float *y)
{
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        /* max(a, 0) with a first returns 0 for a NaN, as the scalar loop. */
        _mm256_storeu_ps(y + i, _mm256_max_ps(_mm256_loadu_ps(x + i), zero));
    }
    for (; i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

OD__T void od__relu_bwd_avx2(size_t n, const float *x, const float *dy,
                             float *dx)
{
    const __m256 zero = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pos = _mm256_cmp_ps(_mm256_loadu_ps(x + i), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(dx + i, _mm256_and_ps(pos, _mm256_loadu_ps(dy + i)));
    }
    for (; i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

#else

void od__relu_fwd_avx2(size_t n, const float *x, float *y)
{
    (void)n, (void)x, (void)y;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

void od__relu_bwd_avx2(size_t n, const float *x, const float *dy, float *dx)
{
    (void)n, (void)x, (void)dy, (void)dx;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

#endif
