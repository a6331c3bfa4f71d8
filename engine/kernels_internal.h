/* Shared by the kernel files of the engine only: how work is split into
 * fixed chunks, and the ISA-specific inner loops the dispatchers pick from.
 *
 * Chunking rule: a kernel splits its work into chunks whose boundaries depend
 * only on the problem size (and, where stated, the pool size), never on which
 * worker runs a chunk, so the results are the same from run to run. */
#ifndef ONDEV_ENGINE_KERNELS_INTERNAL_H
#define ONDEV_ENGINE_KERNELS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/cpu.h"
#include "engine/kernels.h"

/* Below this many elements an element-wise kernel runs on the calling thread
 * alone: waking the pool costs more than the work. */
#define OD__PAR_MIN_ELEMS ((size_t)32768)

/* Elements per chunk for element-wise kernels: a multiple of 64 floats, so
 * every chunk starts on a cache line (when the base pointer does). */
#define OD__CHUNK_ELEMS ((size_t)16384)

/* Number of chunks of `chunk` items needed to cover n items. */
static inline size_t od__nchunks(size_t n, size_t chunk)
{
    return (n + chunk - 1) / chunk;
}

/* Bounds [*lo, *hi) of part `i` when n items are split into `parts` nearly
 * equal, contiguous parts (the first n % parts parts get one more item). */
static inline void od__split(size_t n, size_t parts, size_t i, size_t *lo,
                             size_t *hi)
{
    size_t base = n / parts, extra = n % parts;
    *lo = i * base + (i < extra ? i : extra);
    *hi = *lo + base + (i < extra ? 1 : 0);
}

/* Sum of x[0..n) in float, in 16 interleaved lanes (lane l takes the
 * elements i with i % 16 == l) that are then added in lane order. A fixed
 * order the compiler can vectorise, unlike one running sum. */
static inline float od__sum_lanes(size_t n, const float *x)
{
    float lane[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += x[i + l];
    for (int l = 0; i < n; i++, l++)
        lane[l] += x[i];
    float acc = 0.0f;
    for (int l = 0; l < 16; l++)
        acc += lane[l];
    return acc;
}

/* ---- ISA-specific loops (the engine files ending in _avx512.c, _avx2.c) --
 * Each does exactly what its portable twin in the owning file does, over
 * n elements; the results may differ only by floating-point rounding where
 * the comment says so. */

/* y = max(x, 0); exact. */
void od__relu_fwd_avx512(size_t n, const float *x, float *y);
void od__relu_fwd_avx2(size_t n, const float *x, float *y);
/* dx = x > 0 ? dy : 0; exact. */
void od__relu_bwd_avx512(size_t n, const float *x, const float *dy,
                         float *dx);
void od__relu_bwd_avx2(size_t n, const float *x, const float *dy, float *dx);

/* out (cols) += sum over rows of x (rows, ld) restricted to columns [0, cols),
 * summing the rows in order in float; exact same order as the portable loop,
 * so results are bitwise equal across ISAs. */
/* A leaf of od_sum / od_sumsq's pairwise tree (reduce.c): up to 256
 * elements, or their squares, in double; the two give the same bits. */
double od__pair_leaf_portable(size_t n, const float *x, int squares);
double od__pair_leaf_avx512(size_t n, const float *x, int squares);
void od__sum_rows_avx512(int rows, int cols, const float *x, size_t ld,
                         float *out);
void od__sum_rows_avx2(int rows, int cols, const float *x, size_t ld,
                       float *out);
/* x (rows, ld) += bias on columns [0, cols); exact. */
void od__add_bias_rows_avx512(int rows, int cols, float *x, size_t ld,
                              const float *bias);
void od__add_bias_rows_avx2(int rows, int cols, float *x, size_t ld,
                            const float *bias);

/* Max pooling with 2x2 windows and stride 2 over `planes` planes (H, W),
 * H, W >= 2: the same values and argmax as the general loop, bit for bit;
 * with relu, of ReLU(x) as od_relu_maxpool2d_forward defines it. */
void od__maxpool2x2_avx512(int h, int w, size_t planes, const float *x,
                           float *y, int32_t *argmax, int relu);
/* Its backward: dx (planes, H, W) = dy routed to the argmax of each window,
 * 0 elsewhere (overwritten, including rows and columns in no window). */
void od__maxpool2x2_bwd_avx512(int h, int w, size_t planes, const float *dy,
                               const int32_t *argmax, float *dx);
void od__maxpool2x2_avx2(int h, int w, size_t planes, const float *x,
                         float *y, int32_t *argmax, int relu);
void od__maxpool2x2_bwd_avx2(int h, int w, size_t planes, const float *dy,
                             const int32_t *argmax, float *dx);

/* ---- Convolution lowering (conv.c, conv_avx512.c, conv_avx2.c) -----------
 * The loop nests of im2col and col2im are written once here and inlined into
 * one function per ISA, which supplies the short row operations (rows are 8
 * to 28 floats in the models here, where a masked vector op beats a loop).
 * After inlining the row operations are known functions and inline too. */

/* dst[0..n) = src[0..n), dst[0..n) = 0, dst[0..n) += src[0..n); n >= 0. */
typedef void (*od__row_copy_fn)(int n, const float *src, float *dst);
typedef void (*od__row_zero_fn)(int n, float *dst);
typedef void (*od__row_add_fn)(int n, const float *src, float *dst);

/* Output positions j in [*lo, *hi) read input position
 * j * stride - pad + c inside [0, size). */
static inline void od__conv_valid_range(int out, int size, int stride,
                                        int pad, int c, int *lo, int *hi)
{
    int first = pad - c;      /* j * stride >= first */
    int end = size + pad - c; /* j * stride < end */
    int l = first <= 0 ? 0 : (first + stride - 1) / stride;
    int h = end <= 0 ? 0 : (end + stride - 1) / stride;
    if (h > out)
        h = out;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* col (K, nimg * P) with leading dimension ldc, from nimg images at
 * x (nimg, C_in, H, W); row (ci, r, c) of col holds, for each image and
 * output position, the input element that the weight (ci, r, c) meets there,
 * or zero in the padding. */
static inline __attribute__((always_inline)) void
od__im2col_body(const od_conv2d_shape *s, int oh, int ow, const float *x,
                int nimg, float *col, size_t ldc, od__row_copy_fn copy,
                od__row_zero_fn zero)
{
    size_t plane = (size_t)s->h * s->w, p = (size_t)oh * ow;
    for (int ci = 0; ci < s->c_in; ci++)
        for (int r = 0; r < s->kh; r++) {
            int ilo, ihi;
            od__conv_valid_range(oh, s->h, s->stride_h, s->pad_h, r, &ilo, &ihi);
            for (int c = 0; c < s->kw; c++) {
                int jlo, jhi;
                od__conv_valid_range(ow, s->w, s->stride_w, s->pad_w, c, &jlo, &jhi);
                float *row = col + ((size_t)(ci * s->kh + r) * s->kw + c) * ldc;
                if (s->stride_w == 1 && s->stride_h == 1 && ilo == 0 &&
                    ihi == oh && jlo == 0 && jhi == ow) {
                    /* No padding reached: straight copies of OH rows. */
                    const float *x0 = x + (size_t)ci * plane +
                                      (size_t)(r - s->pad_h) * s->w + (c - s->pad_w);
                    for (int b = 0; b < nimg; b++) {
                        const float *xb = x0 + (size_t)b * s->c_in * plane;
                        float *dst = row + (size_t)b * p;
                        for (int i = 0; i < oh; i++)
                            copy(ow, xb + (size_t)i * s->w, dst + (size_t)i * ow);
                    }
                    continue;
                }
                for (int b = 0; b < nimg; b++) {
                    const float *xp = x + ((size_t)b * s->c_in + ci) * plane;
                    float *dst = row + (size_t)b * p;
                    /* Rows wholly in the padding. */
                    zero(ilo * ow, dst);
                    zero((oh - ihi) * ow, dst + (size_t)ihi * ow);
                    for (int i = ilo; i < ihi; i++) {
                        float *d = dst + (size_t)i * ow;
                        const float *xr =
                            xp + (size_t)(i * s->stride_h - s->pad_h + r) * s->w;
                        zero(jlo, d);
                        if (s->stride_w == 1) {
                            copy(jhi - jlo, xr + (jlo - s->pad_w + c), d + jlo);
                        } else {
                            for (int j = jlo; j < jhi; j++)
                                d[j] = xr[j * s->stride_w - s->pad_w + c];
                        }
                        zero(ow - jhi, d + jhi);
                    }
                }
            }
        }
}

/* dx (nimg, C_in, H, W) = col2im of dcol (K, nimg * P): every column entry
 * is added to the input element it was read from, in a fixed loop order. */
static inline __attribute__((always_inline)) void
od__col2im_body(const od_conv2d_shape *s, int oh, int ow, const float *dcol,
                size_t ldc, int nimg, float *dx, od__row_add_fn add,
                od__row_zero_fn zero)
{
    size_t plane = (size_t)s->h * s->w, p = (size_t)oh * ow;
    for (int b = 0; b < nimg; b++)
        for (int ci = 0; ci < s->c_in; ci++) {
            float *xp = dx + ((size_t)b * s->c_in + ci) * plane;
            zero((int)plane, xp);
            for (int r = 0; r < s->kh; r++) {
                int ilo, ihi;
                od__conv_valid_range(oh, s->h, s->stride_h, s->pad_h, r, &ilo, &ihi);
                for (int c = 0; c < s->kw; c++) {
                    int jlo, jhi;
                    od__conv_valid_range(ow, s->w, s->stride_w, s->pad_w, c, &jlo, &jhi);
                    const float *src = dcol + ((size_t)(ci * s->kh + r) * s->kw + c) * ldc +
                                       (size_t)b * p;
                    for (int i = ilo; i < ihi; i++) {
                        float *xr = xp + (size_t)(i * s->stride_h - s->pad_h + r) * s->w;
                        const float *sr = src + (size_t)i * ow;
                        if (s->stride_w == 1) {
                            add(jhi - jlo, sr + jlo, xr + (jlo - s->pad_w + c));
                        } else {
                            for (int j = jlo; j < jhi; j++)
                                xr[j * s->stride_w - s->pad_w + c] += sr[j];
                        }
                    }
                }
            }
        }
}

/* Winograd F(4x4, 5x5) convolution (winograd.c): whether it serves shape
 * s (AVX-512; 5x5, stride 1, equal padding below 5, at least 8 channels
 * in and out, an output of at least 4x4), its scratch, and the forward,
 * input-gradient and weight-gradient passes, with the contracts of
 * od_conv2d_forward, od_conv2d_backward_data and
 * od_conv2d_backward_weight. */
int od__conv2d_winograd(const od_conv2d_shape *s);
size_t od__conv2d_winograd_scratch(const od_conv2d_shape *s, int nthreads);
void od__conv2d_winograd_forward(od_pool *pool, const od_conv2d_shape *s,
                                 const float *x, const float *w,
                                 const float *bias, float *y, float *scratch);
void od__conv2d_winograd_backward_data(od_pool *pool,
                                       const od_conv2d_shape *s,
                                       const float *dy, const float *w,
                                       float *dx, float *scratch);
void od__conv2d_winograd_backward_weight(od_pool *pool,
                                         const od_conv2d_shape *s,
                                         const float *x, const float *dy,
                                         float *dw, float *db, float *scratch);

/* row (P, K) from one image x (C_in, H, W): the transpose of im2col's
 * (K, P), written directly. Row p = (i, j) holds the image's receptive
 * field at output position p, in weight order (ci, r, c), zero in the
 * padding; its KW-long runs are contiguous in the image whatever the
 * stride. The optimised versions may write up to 8 floats past the last
 * row. */
static inline __attribute__((always_inline)) void
od__im2row_body(const od_conv2d_shape *s, int oh, int ow, const float *x,
                float *row, od__row_copy_fn copy, od__row_zero_fn zero)
{
    size_t plane = (size_t)s->h * s->w;
    if (s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
        s->pad_w == 0) {
        /* Every run inside the image: no bounds to test. The shape in
         * locals, so that the copy's mask for kw is made once. */
        const int kw = s->kw, kh = s->kh, w = s->w, c_in = s->c_in;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                const float *xc = x + (size_t)i * w + j;
                for (int ci = 0; ci < c_in; ci++, xc += plane)
                    for (int r = 0; r < kh; r++, row += kw)
                        copy(kw, xc + (size_t)r * w, row);
            }
        return;
    }
    for (int i = 0; i < oh; i++)
        for (int j = 0; j < ow; j++) {
            int c0 = j * s->stride_w - s->pad_w;
            int inside = c0 >= 0 && c0 + s->kw <= s->w;
            for (int ci = 0; ci < s->c_in; ci++)
                for (int r = 0; r < s->kh; r++, row += s->kw) {
                    int ir = i * s->stride_h - s->pad_h + r;
                    if (ir < 0 || ir >= s->h) {
                        zero(s->kw, row);
                        continue;
                    }
                    const float *xr = x + (size_t)ci * plane + (size_t)ir * s->w;
                    if (inside) {
                        copy(s->kw, xr + c0, row);
                        continue;
                    }
                    for (int c = 0; c < s->kw; c++)
                        row[c] = c0 + c >= 0 && c0 + c < s->w ? xr[c0 + c]
                                                              : 0.0f;
                }
        }
}

/* For each output o < nout: dst[o * ldd + 0..k) = the sum over t <
 * cnt[o] of val[o * ldl + t] * rows[pos[o * ldl + t] * ld + 0..k), the
 * terms added in order t = 0, 1, ... onto zero: a product whose left-hand
 * matrix is sparse (each output's nonzeros listed), for the per-example
 * weight gradients of convolutions whose output gradient is mostly zero.
 * The optimised versions go over the columns in blocks that stay in L1
 * across all outputs. */
/* The optimised versions' loop nest, written once: blocks of 8 vectors of
 * `width` floats (eight accumulators, enough to keep two FMA ports busy)
 * for every output in turn, so that the block's slice of rows stays in L1
 * while it is reused, the last block narrower. block(nv, left, ...) forms
 * nv vectors of one output's block, masked to the `left` floats there
 * are; nv is a constant at each call. */
typedef void (*od__combine_block_fn)(int nv, size_t left, int n,
                                     const int32_t *idx, const float *val,
                                     const float *rows, size_t ld,
                                     float *dst);

static inline __attribute__((always_inline)) void
od__combine_rows_body(size_t k, int nout, const int32_t *cnt,
                      const int32_t *pos, const float *val, size_t ldl,
                      const float *rows, size_t ld, float *dst, size_t ldd,
                      size_t width, od__combine_block_fn block)
{
    for (size_t q = 0; q < k; q += 8 * width) {
        size_t left = k - q;
        for (int o = 0; o < nout; o++) {
            const int32_t *po = pos + (size_t)o * ldl;
            const float *vo = val + (size_t)o * ldl;
            float *d = dst + (size_t)o * ldd + q;
            if (left > 4 * width)
                block(8, left, cnt[o], po, vo, rows + q, ld, d);
            else if (left > 2 * width)
                block(4, left, cnt[o], po, vo, rows + q, ld, d);
            else if (left > width)
                block(2, left, cnt[o], po, vo, rows + q, ld, d);
            else
                block(1, left, cnt[o], po, vo, rows + q, ld, d);
        }
    }
}

void od__combine_rows_portable(size_t k, int nout, const int32_t *cnt,
                               const int32_t *pos, const float *val,
                               size_t ldl, const float *rows, size_t ld,
                               float *dst, size_t ldd);
void od__combine_rows_avx512(size_t k, int nout, const int32_t *cnt,
                             const int32_t *pos, const float *val, size_t ldl,
                             const float *rows, size_t ld, float *dst,
                             size_t ldd);
void od__combine_rows_avx2(size_t k, int nout, const int32_t *cnt,
                           const int32_t *pos, const float *val, size_t ldl,
                           const float *rows, size_t ld, float *dst,
                           size_t ldd);
void od__im2row_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *x, float *row);
void od__im2row_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *x, float *row);
void od__im2row_avx2(const od_conv2d_shape *s, int oh, int ow,
                     const float *x, float *row);

/* Convolutions of one input channel, 5x5, stride 1, no padding, by
 * register-blocked loops: whether s qualifies on the ISA in use (conv.c;
 * AVX-512: C_out a multiple of 8, outputs at most 32 wide; AVX2: of 4, at
 * most 24 wide), and the forward pass over nimg images on each. */
int od__conv2d_single_in(const od_conv2d_shape *s);
void od__conv2d_single_in_fwd_avx512(const od_conv2d_shape *s, int nimg,
                                     const float *x, const float *w,
                                     const float *bias, float *y);
void od__conv2d_single_in_fwd_avx2(const od_conv2d_shape *s, int nimg,
                                   const float *x, const float *w,
                                   const float *bias, float *y);

/* The lowering per ISA: same results bit for bit (copies and single
 * additions in the same order). */
void od__im2col_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *x, int nimg, float *col, size_t ldc);
void od__im2col_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *x, int nimg, float *col, size_t ldc);
void od__im2col_avx2(const od_conv2d_shape *s, int oh, int ow, const float *x,
                     int nimg, float *col, size_t ldc);
void od__col2im_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *dcol, size_t ldc, int nimg, float *dx);
void od__col2im_avx512(const od_conv2d_shape *s, int oh, int ow,
                       const float *dcol, size_t ldc, int nimg, float *dx);
void od__col2im_avx2(const od_conv2d_shape *s, int oh, int ow,
                     const float *dcol, size_t ldc, int nimg, float *dx);

#endif
