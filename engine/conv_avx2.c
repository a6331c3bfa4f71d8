/* AVX2 parts of the convolutions (see kernels_internal.h): the row
 * operations of the lowering (whole vectors of 8 floats, then a masked
 * load and store for the rest) and the register-blocked forward pass of
 * single-channel 5x5 convolutions. */
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

/* Runs of at most 8 floats written whole 8-float vectors at a time, as
 * od__copy_run8 on AVX-512 (conv_avx512.c): the next run overwrites the
 * surplus and the row buffer has 8 floats of slack past its end. The loads
 * stay masked (they may end at the image's last float); the stores are
 * not, since Zen 2 and 3 microcode masked stores (with them the copies
 * took a quarter of fmnist-cnn's DP-SGD step). */
OD__INLINE void od__copy_run8(int n, const float *src, float *dst)
{
    _mm256_storeu_ps(dst, _mm256_maskload_ps(src, od__avx2_mask8(n)));
}

OD__INLINE void od__zero_run8(int n, float *dst)
{
    (void)n;
    _mm256_storeu_ps(dst, _mm256_setzero_ps());
}

OD__T void od__im2row_avx2(const od_conv2d_shape *s, int oh, int ow,
                           const float *x, float *row)
{
    if (s->kw <= 8)
        od__im2row_body(s, oh, ow, x, row, od__copy_run8, od__zero_run8);
    else
        od__im2row_body(s, oh, ow, x, row, od__copy_y, od__zero_y);
}

/* As od__combine_block on AVX-512 (conv_avx512.c), with vectors of 8;
 * masked loads and stores only in a block with a partial last vector. */
OD__INLINE void od__combine_block(int nv, size_t left, int n,
                                  const int32_t *idx, const float *val,
                                  const float *rows, size_t ld, float *dst)
{
    __m256 acc[8];
    int lim = left < 64 ? (int)left : 64;
    for (int v = 0; v < nv; v++)
        acc[v] = _mm256_setzero_ps();
    if (lim == 8 * nv) {
        for (int t = 0; t < n; t++) {
            const float *r = rows + (size_t)idx[t] * ld;
            __m256 a = _mm256_set1_ps(val[t]);
            for (int v = 0; v < nv; v++)
                acc[v] = _mm256_fmadd_ps(a, _mm256_loadu_ps(r + 8 * v), acc[v]);
        }
        for (int v = 0; v < nv; v++)
            _mm256_storeu_ps(dst + 8 * v, acc[v]);
        return;
    }
    __m256i m[8];
    for (int v = 0; v < nv; v++) {
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


/* ---- Single input channel, 5x5, stride 1, no padding ------------------------
 * As on AVX-512 (conv_avx512.c), with 8-float registers: one output row of
 * 4 channels (NV <= 3 registers each, 12 accumulators) stays in registers
 * while the 25 taps stream the image rows from L1. A partial last vector
 * is loaded and stored masked (rows of 24, fmnist-cnn's, have none). */
OD__INLINE void od__single_in_row(const int NV, const int FULL,
                                  const od_conv2d_shape *s, const float *xb,
                                  const float *wb, const float *bias,
                                  float *y, int oh, int ow, int i)
{
    /* FULL (a constant): ow == 8 * NV, so that no mask is kept in a
     * register (NV = 3 needs all 16 for accumulators and operands). */
    const __m256i m = od__avx2_mask8(FULL ? 8 : ow - 8 * (NV - 1));
    __m256 acc[4][3];
    _Pragma("GCC unroll 4")
    for (int k = 0; k < 4; k++) {
        __m256 bv = _mm256_set1_ps(bias ? bias[k] : 0.0f);
        _Pragma("GCC unroll 3")
        for (int v = 0; v < NV; v++)
            acc[k][v] = bv;
    }
    _Pragma("GCC unroll 5")
    for (int r = 0; r < 5; r++) {
        const float *xr = xb + (size_t)(i + r) * s->w;
        _Pragma("GCC unroll 5")
        for (int c = 0; c < 5; c++) {
            __m256 xv[3];
            _Pragma("GCC unroll 3")
            for (int v = 0; v < NV; v++)
                xv[v] = v < NV - 1 || FULL
                            ? _mm256_loadu_ps(xr + c + 8 * v)
                            : _mm256_maskload_ps(xr + c + 8 * v, m);
            _Pragma("GCC unroll 4")
            for (int k = 0; k < 4; k++) {
                __m256 wv = _mm256_set1_ps(wb[k * 25 + r * 5 + c]);
                _Pragma("GCC unroll 3")
                for (int v = 0; v < NV; v++)
                    acc[k][v] = _mm256_fmadd_ps(wv, xv[v], acc[k][v]);
            }
        }
    }
    _Pragma("GCC unroll 4")
    for (int k = 0; k < 4; k++) {
        float *yr = y + ((size_t)k * oh + i) * ow;
        _Pragma("GCC unroll 3")
        for (int v = 0; v < NV; v++) {
            if (v < NV - 1 || FULL)
                _mm256_storeu_ps(yr + 8 * v, acc[k][v]);
            else
                _mm256_maskstore_ps(yr + 8 * v, m, acc[k][v]);
        }
    }
}

/* y (nimg, C_out, OH, OW) = conv(x) + bias for images [0, nimg) of x;
 * C_out a multiple of 4, OW at most 24. */
OD__T void od__conv2d_single_in_fwd_avx2(const od_conv2d_shape *s, int nimg,
                                         const float *x, const float *w,
                                         const float *bias, float *y)
{
    const int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    const int nv = (ow + 7) / 8, full = ow % 8 == 0;
    for (int b = 0; b < nimg; b++) {
        const float *xb = x + (size_t)b * s->h * s->w;
        float *yb = y + (size_t)b * s->c_out * oh * ow;
        for (int co0 = 0; co0 < s->c_out; co0 += 4) {
            const float *wb = w + (size_t)co0 * 25;
            const float *bb = bias ? bias + co0 : NULL;
            float *yc = yb + (size_t)co0 * oh * ow;
            for (int i = 0; i < oh; i++) {
#define OD__ROW(NV, FULL) \
    od__single_in_row(NV, FULL, s, xb, wb, bb, yc, oh, ow, i)
                if (nv == 3)
                    full ? OD__ROW(3, 1) : OD__ROW(3, 0);
                else if (nv == 2)
                    full ? OD__ROW(2, 1) : OD__ROW(2, 0);
                else
                    full ? OD__ROW(1, 1) : OD__ROW(1, 0);
#undef OD__ROW
            }
        }
    }
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

void od__conv2d_single_in_fwd_avx2(const od_conv2d_shape *s, int nimg,
                                   const float *x, const float *w,
                                   const float *bias, float *y)
{
    (void)s, (void)nimg, (void)x, (void)w, (void)bias, (void)y;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

#endif
