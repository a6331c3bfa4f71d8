/* AVX-512 parts of the convolutions (see kernels_internal.h): the row
 * operations of the im2col lowering, where a short row is one masked load
 * and store per 16 floats (8 for col2im's additions, see od__add_y), and
 * the register-blocked forward pass of single-channel 5x5 convolutions. */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stddef.h>

#define OD__T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define OD__INLINE static inline __attribute__((always_inline)) OD__T

OD__INLINE __mmask16 od__mask(int left)
{
    if (left <= 0)
        return 0;
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

/* im2col of an unpadded, stride-1 convolution whose output rows are 8
 * wide (fmnist-cnn's second convolution): two output rows make one
 * 16-float store instead of two 8-float ones. Same values as the general
 * loops. */
OD__INLINE void od__im2col_ow8(const od_conv2d_shape *s, int oh,
                               const float *x, int nimg, float *col,
                               size_t ldc)
{
    size_t plane = (size_t)s->h * s->w, p = (size_t)oh * 8;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int r = 0; r < s->kh; r++)
            for (int c = 0; c < s->kw; c++) {
                float *row = col + ((size_t)(ci * s->kh + r) * s->kw + c) * ldc;
                const float *x0 = x + (size_t)ci * plane + (size_t)r * s->w + c;
                for (int b = 0; b < nimg; b++) {
                    const float *xb = x0 + (size_t)b * s->c_in * plane;
                    float *dst = row + (size_t)b * p;
                    int i = 0;
                    for (; i + 2 <= oh; i += 2) {
                        __m512 v = _mm512_castps256_ps512(
                            _mm256_loadu_ps(xb + (size_t)i * s->w));
                        v = _mm512_insertf32x8(
                            v, _mm256_loadu_ps(xb + (size_t)(i + 1) * s->w), 1);
                        _mm512_storeu_ps(dst + (size_t)i * 8, v);
                    }
                    if (i < oh)
                        _mm256_storeu_ps(dst + (size_t)i * 8,
                                         _mm256_loadu_ps(xb + (size_t)i * s->w));
                }
            }
}

OD__T void od__im2col_avx512(const od_conv2d_shape *s, int oh, int ow,
                             const float *x, int nimg, float *col, size_t ldc)
{
    if (ow == 8 && s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
        s->pad_w == 0) {
        od__im2col_ow8(s, oh, x, nimg, col, ldc);
        return;
    }
    od__im2col_body(s, oh, ow, x, nimg, col, ldc, od__copy_z, od__zero_z);
}

/* col2im of a stride-1 convolution whose input rows fit one vector
 * (W <= 16): an image's plane is summed in an L1-resident buffer of
 * aligned 16-float rows over the (r, c) contributions, each read from dcol
 * with a masked load shifted by c - pad, and stored to dx once. The
 * additions per element come in the same (r, c) order, from zero, as in
 * the general loops, so the results are the same bit for bit; the general
 * loops' partial, overlapping stores into dx, which stall the loads that
 * follow them, are gone. */
OD__INLINE void od__col2im_narrow(const od_conv2d_shape *s, int oh, int ow,
                                  const float *dcol, size_t ldc, int nimg,
                                  float *dx, float *acc)
{
    size_t plane = (size_t)s->h * s->w, p = (size_t)oh * ow;
    const __mmask16 row_mask = od__mask(s->w);
    const __mmask16 src_mask = od__mask(ow);
    for (int b = 0; b < nimg; b++)
        for (int ci = 0; ci < s->c_in; ci++) {
            for (int ih = 0; ih < s->h; ih++)
                _mm512_store_ps(acc + 16 * ih, _mm512_setzero_ps());
            const float *src_ci = dcol + (size_t)ci * s->kh * s->kw * ldc +
                                  (size_t)b * p;
            for (int r = 0; r < s->kh; r++) {
                /* Output row i reads input row i + r - pad_h. */
                int ilo, ihi;
                od__conv_valid_range(oh, s->h, 1, s->pad_h, r, &ilo, &ihi);
                float *arow = acc + 16 * (r - s->pad_h);
                for (int c = 0; c < s->kw; c++) {
                    /* Output column j lands on input column j + shift. */
                    int shift = c - s->pad_w;
                    __mmask16 m = (__mmask16)(shift >= 0 ? src_mask << shift
                                                         : src_mask >> -shift) &
                                  row_mask;
                    const float *src = src_ci + (size_t)(r * s->kw + c) * ldc
                                       - shift;
                    for (int i = ilo; i < ihi; i++) {
                        float *a = arow + 16 * i;
                        _mm512_store_ps(a, _mm512_add_ps(
                            _mm512_load_ps(a),
                            _mm512_maskz_loadu_ps(m, src + (ptrdiff_t)i * ow)));
                    }
                }
            }
            float *xp = dx + ((size_t)b * s->c_in + ci) * plane;
            for (int ih = 0; ih < s->h; ih++)
                _mm512_mask_storeu_ps(xp + (size_t)ih * s->w, row_mask,
                                      _mm512_load_ps(acc + 16 * ih));
        }
}

OD__T void od__col2im_avx512(const od_conv2d_shape *s, int oh, int ow,
                             const float *dcol, size_t ldc, int nimg,
                             float *dx)
{
    if (s->stride_h == 1 && s->stride_w == 1 && s->w <= 16 && s->h <= 64 &&
        ow <= 16) {
        __attribute__((aligned(64))) float acc[64 * 16];
        od__col2im_narrow(s, oh, ow, dcol, ldc, nimg, dx, acc);
        return;
    }
    od__col2im_body(s, oh, ow, dcol, ldc, nimg, dx, od__add_y, od__zero_z);
}

/* Runs of at most 8 floats written whole 8-float vectors at a time: the
 * next run, which starts where this one ends, overwrites the surplus, and
 * the row buffer has 8 floats of slack past its end. With masked stores
 * the copies took half as long again. */
OD__INLINE void od__copy_run8(int n, const float *src, float *dst)
{
    _mm256_storeu_ps(dst, _mm256_maskz_loadu_ps((__mmask8)((1u << n) - 1u),
                                                src));
}

OD__INLINE void od__zero_run8(int n, float *dst)
{
    (void)n;
    _mm256_storeu_ps(dst, _mm256_setzero_ps());
}

OD__T void od__im2row_avx512(const od_conv2d_shape *s, int oh, int ow,
                             const float *x, float *row)
{
    if (s->kw <= 8)
        od__im2row_body(s, oh, ow, x, row, od__copy_run8, od__zero_run8);
    else
        od__im2row_body(s, oh, ow, x, row, od__copy_z, od__zero_z);
}

/* nv vectors of 16 floats at dst (at most `left` floats, the last
 * vectors masked): one accumulator per vector, in registers over all n
 * terms (see od__combine_rows_body). */
OD__INLINE void od__combine_block(int nv, size_t left, int n,
                                  const int32_t *idx, const float *val,
                                  const float *rows, size_t ld, float *dst)
{
    __m512 acc[8];
    __mmask16 m[8];
    int lim = left < 128 ? (int)left : 128;
    for (int v = 0; v < nv; v++) {
        acc[v] = _mm512_setzero_ps();
        m[v] = od__mask(lim - 16 * v);
    }
    for (int t = 0; t < n; t++) {
        const float *r = rows + (size_t)idx[t] * ld;
        __m512 a = _mm512_set1_ps(val[t]);
        for (int v = 0; v < nv; v++)
            acc[v] = _mm512_fmadd_ps(
                a, _mm512_maskz_loadu_ps(m[v], r + 16 * v), acc[v]);
    }
    for (int v = 0; v < nv; v++)
        _mm512_mask_storeu_ps(dst + 16 * v, m[v], acc[v]);
}

OD__T void od__combine_rows_avx512(size_t k, int nout, const int32_t *cnt,
                                   const int32_t *pos, const float *val,
                                   size_t ldl, const float *rows, size_t ld,
                                   float *dst, size_t ldd)
{
    od__combine_rows_body(k, nout, cnt, pos, val, ldl, rows, ld, dst, ldd,
                          16, od__combine_block);
}

#else

void od__im2row_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *x, float *row)
{
    od__im2row_portable(s, oh, ow, x, row);
}

void od__combine_rows_avx512(size_t k, int nout, const int32_t *cnt,
                             const int32_t *pos, const float *val,
                             size_t ldl, const float *rows, size_t ld,
                             float *dst, size_t ldd)
{
    od__combine_rows_portable(k, nout, cnt, pos, val, ldl, rows, ld, dst,
                              ldd);
}

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

#if defined(__x86_64__)
/* ---- Single input channel, 5x5, stride 1, no padding ------------------------
 * A first layer on grey images (fmnist-cnn's conv1: 1 -> 32 channels, 5x5,
 * 24x24 outputs) has K = KH * KW products per output, too few for the
 * im2col GEMM to run its forward pass well. These loops keep output rows
 * (up to 32 wide, two registers) of 8 channels in registers and stream the
 * image from L1. (Its weight gradient, a long sum per weight, stays on the
 * GEMM: loops of this kind measured slower there.) */

/* Output rows i and i + 1 of 8 channels when rows are 24 wide (28x28
 * images): the 48 outputs fill three registers exactly, row i in lanes
 * 0-23 and row i + 1 in lanes 24-47, so no lane is wasted as in the
 * two-register row below. y points at the first of the 8 channels. */
OD__INLINE void od__single_in_rows24(const od_conv2d_shape *s,
                                     const float *xb, const float *wb,
                                     const float *bias, float *y, int oh,
                                     int i)
{
    __m512 acc[8][3];
    _Pragma("GCC unroll 8")
    for (int k = 0; k < 8; k++) {
        __m512 bv = _mm512_set1_ps(bias ? bias[k] : 0.0f);
        acc[k][0] = acc[k][1] = acc[k][2] = bv;
    }
    _Pragma("GCC unroll 5")
    for (int r = 0; r < 5; r++) {
        const float *x0 = xb + (size_t)(i + r) * s->w;      /* row i + r */
        const float *x1 = x0 + s->w;                        /* row i + 1 + r */
        _Pragma("GCC unroll 5")
        for (int c = 0; c < 5; c++) {
            __m512 v0 = _mm512_loadu_ps(x0 + c);
            __m512 v1 = _mm512_mask_loadu_ps(
                _mm512_maskz_loadu_ps(0x00ff, x0 + c + 16), 0xff00,
                x1 + c - 8);
            __m512 v2 = _mm512_loadu_ps(x1 + c + 8);
            _Pragma("GCC unroll 8")
            for (int k = 0; k < 8; k++) {
                __m512 wv = _mm512_set1_ps(wb[k * 25 + r * 5 + c]);
                acc[k][0] = _mm512_fmadd_ps(wv, v0, acc[k][0]);
                acc[k][1] = _mm512_fmadd_ps(wv, v1, acc[k][1]);
                acc[k][2] = _mm512_fmadd_ps(wv, v2, acc[k][2]);
            }
        }
    }
    _Pragma("GCC unroll 8")
    for (int k = 0; k < 8; k++) {
        float *y0 = y + ((size_t)k * oh + i) * 24, *y1 = y0 + 24;
        _mm512_storeu_ps(y0, acc[k][0]);
        _mm512_mask_storeu_ps(y0 + 16, 0x00ff, acc[k][1]);
        _mm512_mask_storeu_ps(y1 - 8, 0xff00, acc[k][1]);
        _mm512_storeu_ps(y1 + 8, acc[k][2]);
    }
}

/* y (nimg, C_out, OH, OW) = conv(x) + bias for images [0, nimg) of x;
 * C_out a multiple of 8. The loops over the 5x5 kernel and the 8 channels
 * are unrolled so that the 16 accumulators stay in registers. */
OD__T void od__conv2d_single_in_fwd_avx512(const od_conv2d_shape *s,
                                           int nimg, const float *x,
                                           const float *w,
                                           const float *bias, float *y)
{
    const int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    const __mmask16 m0 = od__mask(ow), m1 = od__mask(ow - 16);
    for (int b = 0; b < nimg; b++) {
        const float *xb = x + (size_t)b * s->h * s->w;
        float *yb = y + (size_t)b * s->c_out * oh * ow;
        for (int co0 = 0; co0 < s->c_out; co0 += 8) {
            const float *wb = w + (size_t)co0 * 25;
            int i = 0;
            if (ow == 24)
                for (; i + 2 <= oh; i += 2)
                    od__single_in_rows24(s, xb, wb, bias ? bias + co0 : NULL,
                                         yb + (size_t)co0 * oh * ow, oh, i);
            for (; i < oh; i++) {
                __m512 acc[8][2];
                _Pragma("GCC unroll 8")
                for (int k = 0; k < 8; k++) {
                    __m512 bv = _mm512_set1_ps(bias ? bias[co0 + k] : 0.0f);
                    acc[k][0] = bv;
                    acc[k][1] = bv;
                }
                _Pragma("GCC unroll 5")
                for (int r = 0; r < 5; r++) {
                    const float *xr = xb + (size_t)(i + r) * s->w;
                    _Pragma("GCC unroll 5")
                    for (int c = 0; c < 5; c++) {
                        __m512 x0 = _mm512_maskz_loadu_ps(m0, xr + c);
                        __m512 x1 = _mm512_maskz_loadu_ps(m1, xr + c + 16);
                        _Pragma("GCC unroll 8")
                        for (int k = 0; k < 8; k++) {
                            __m512 wv = _mm512_set1_ps(wb[k * 25 + r * 5 + c]);
                            acc[k][0] = _mm512_fmadd_ps(wv, x0, acc[k][0]);
                            acc[k][1] = _mm512_fmadd_ps(wv, x1, acc[k][1]);
                        }
                    }
                }
                _Pragma("GCC unroll 8")
                for (int k = 0; k < 8; k++) {
                    float *yr = yb + ((size_t)(co0 + k) * oh + i) * ow;
                    _mm512_mask_storeu_ps(yr, m0, acc[k][0]);
                    _mm512_mask_storeu_ps(yr + 16, m1, acc[k][1]);
                }
            }
        }
    }
}

#else

void od__conv2d_single_in_fwd_avx512(const od_conv2d_shape *s, int nimg,
                                     const float *x, const float *w,
                                     const float *bias, float *y)
{
    (void)s, (void)nimg, (void)x, (void)w, (void)bias, (void)y;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

#endif
