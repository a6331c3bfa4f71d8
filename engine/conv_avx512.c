/* AVX-512 row operations of the convolution lowering (see
 * kernels_internal.h): a short row is one masked load and store per 16
 * floats (8 for col2im's additions, see od__add_y). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define OD__INLINE static inline __attribute__((always_inline)) OD__T

OD__INLINE __mmask16 od__mask(int left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* Whole 16- and 8-float vectors, then one masked 8-float vector: a masked
 * 16-float store of a short row straddles two cache lines and measured
 * slower than this. */
OD__INLINE void od__copy_z(int n, const float *src, float *dst)
{
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dst + j, _mm512_loadu_ps(src + j));
    if (j + 8 <= n) {
        _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
        j += 8;
    }
    if (j < n) {
        __mmask8 m = (__mmask8)((1u << (n - j)) - 1u);
        _mm256_mask_storeu_ps(dst + j, m, _mm256_maskz_loadu_ps(m, src + j));
    }
}

OD__INLINE void od__zero_z(int n, float *dst)
{
    for (int j = 0; j < n; j += 16)
        _mm512_mask_storeu_ps(dst + j, od__mask(n - j), _mm512_setzero_ps());
}

/* dst += src on 8 floats at a time (AVX-512VL masks on ymm registers).
 * col2im adds each row one float further along the row it has just stored;
 * a masked 16-float store cannot forward to such a load and stalls, while
 * 8-float ones measured over twice as fast here. */
OD__INLINE void od__add_y(int n, const float *src, float *dst)
{
    for (int j = 0; j < n; j += 8) {
        int left = n - j;
        __mmask8 m = left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
        __m256 v = _mm256_add_ps(_mm256_maskz_loadu_ps(m, dst + j),
                                 _mm256_maskz_loadu_ps(m, src + j));
        _mm256_mask_storeu_ps(dst + j, m, v);
    }
}

OD__T void od__im2col_avx512(const od_conv2d_shape *s, int oh, int ow,
                             const float *x, int nimg, float *col, size_t ldc)
{
    od__im2col_body(s, oh, ow, x, nimg, col, ldc, od__copy_z, od__zero_z);
}

OD__T void od__col2im_avx512(const od_conv2d_shape *s, int oh, int ow,
                             const float *dcol, size_t ldc, int nimg,
                             float *dx)
{
    od__col2im_body(s, oh, ow, dcol, ldc, nimg, dx, od__add_y, od__zero_z);
}

#else

void od__im2col_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *x, int nimg, float *col, size_t ldc)
{
    od__im2col_portable(s, oh, ow, x, nimg, col, ldc);
}

void od__col2im_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *dcol, size_t ldc, int nimg, float *dx)
{
    od__col2im_portable(s, oh, ow, dcol, ldc, nimg, dx);
}

#endif
