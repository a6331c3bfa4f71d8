/* AVX2 row operations of the convolution lowering (see kernels_internal.h):
 * whole vectors of 8 floats, then a masked load and store for the rest. */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "engine/avx2_util.h"

#define OD__T __attribute__((target("avx2,fma")))
#define OD__INLINE static inline __attribute__((always_inline)) OD__T

OD__INLINE void od__copy_y(int n, const float *src, float *dst)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, _mm256_loadu_ps(src + j));
    if (j < n) {
        __m256i m = od__avx2_mask8(n - j);
        _mm256_maskstore_ps(dst + j, m, _mm256_maskload_ps(src + j, m));
    }
}

OD__INLINE void od__zero_y(int n, float *dst)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, _mm256_setzero_ps());
    if (j < n)
        _mm256_maskstore_ps(dst + j, od__avx2_mask8(n - j), _mm256_setzero_ps());
}

OD__INLINE void od__add_y(int n, const float *src, float *dst)
{
    int j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(dst + j, _mm256_add_ps(_mm256_loadu_ps(dst + j),
                                                _mm256_loadu_ps(src + j)));
    if (j < n) {
        __m256i m = od__avx2_mask8(n - j);
        __m256 v = _mm256_add_ps(_mm256_maskload_ps(dst + j, m),
                                 _mm256_maskload_ps(src + j, m));
        _mm256_maskstore_ps(dst + j, m, v);
    }
}

OD__T void od__im2col_avx2(const od_conv2d_shape *s, int oh, int ow,
                           const float *x, int nimg, float *col, size_t ldc)
{
    od__im2col_body(s, oh, ow, x, nimg, col, ldc, od__copy_y, od__zero_y);
}

OD__T void od__col2im_avx2(const od_conv2d_shape *s, int oh, int ow,
                           const float *dcol, size_t ldc, int nimg, float *dx)
{
    od__col2im_body(s, oh, ow, dcol, ldc, nimg, dx, od__add_y, od__zero_y);
}

OD__T void od__im2row_avx2(const od_conv2d_shape *s, int oh, int ow,
                           const float *x, float *row)
{
    od__im2row_body(s, oh, ow, x, row, od__copy_y, od__zero_y);
}

/* As od__combine_block on AVX-512 (conv_avx512.c), with vectors of 8. */
OD__INLINE void od__combine_block(int nv, size_t left, int n,
                                  const int32_t *idx, const float *val,
                                  const float *rows, size_t ld, float *dst)
{
    __m256 acc[8];
    __m256i m[8];
    int lim = left < 64 ? (int)left : 64;
    for (int v = 0; v < nv; v++) {
        acc[v] = _mm256_setzero_ps();
        int l = lim - 8 * v;
        m[v] = l >= 8 ? _mm256_set1_epi32(-1) : od__avx2_mask8(l);
    }
    for (int t = 0; t < n; t++) {
        const float *r = rows + (size_t)idx[t] * ld;
        __m256 a = _mm256_set1_ps(val[t]);
        for (int v = 0; v < nv; v++)
            acc[v] = _mm256_fmadd_ps(a, _mm256_maskload_ps(r + 8 * v, m[v]),
                                     acc[v]);
    }
    for (int v = 0; v < nv; v++)
        _mm256_maskstore_ps(dst + 8 * v, m[v], acc[v]);
}

OD__T void od__combine_rows_avx2(size_t k, int nout, const int32_t *cnt,
                                 const int32_t *pos, const float *val,
                                 size_t ldl, const float *rows, size_t ld,
                                 float *dst, size_t ldd)
{
    od__combine_rows_body(k, nout, cnt, pos, val, ldl, rows, ld, dst, ldd,
                          8, od__combine_block);
}

#else

void od__im2row_avx2(const od_conv2d_shape *s, int oh, int ow,
                     const float *x, float *row)
{
    od__im2row_portable(s, oh, ow, x, row);
}

void od__combine_rows_avx2(size_t k, int nout, const int32_t *cnt,
                           const int32_t *pos, const float *val,
                           size_t ldl, const float *rows, size_t ld,
                           float *dst, size_t ldd)
{
    od__combine_rows_portable(k, nout, cnt, pos, val, ldl, rows, ld, dst,
                              ldd);
}

void od__im2col_avx2(const od_conv2d_shape *s, int oh, int ow, const float *x,
                     int nimg, float *col, size_t ldc)
{
    od__im2col_portable(s, oh, ow, x, nimg, col, ldc);
}

void od__col2im_avx2(const od_conv2d_shape *s, int oh, int ow,
                     const float *dcol, size_t ldc, int nimg, float *dx)
{
    od__col2im_portable(s, oh, ow, dcol, ldc, nimg, dx);
}

#endif
