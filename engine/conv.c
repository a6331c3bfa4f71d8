/* 2-D convolution (cross-correlation) over NCHW images, with weights
 * (C_out, C_in, KH, KW): forward, gradient of the input, gradient of the
 * weights and bias.
 *
 * The optimised versions lower a group of B images at a time to one matrix
 * product. With K = C_in * KH * KW and P = OH * OW:
 *
 *   col (K, B * P)     the group's images unrolled (im2col), column b*P + p
 *   forward            Y (C_out, B * P) = W (C_out, K) * col
 *   input gradient     dcol (K, B * P) = W^T (K, C_out) * dY; col2im
 *   weight gradient    dW^T (K, C_out) += col * dY^T
 *
 * so the products' long dimension is B * P rather than P alone, which keeps
 * them efficient on small feature maps (8x8 after two 5x5 convolutions).
 * W^T is transposed once per call into scratch, and the weight gradient is
 * formed transposed, because od_gemm runs fastest when op(A) is stored
 * untransposed (its rows are then read in place along k); measured on the
 * fmnist-cnn shapes, each of the two nearly halves its product's time.
 *
 * Threading and determinism: groups are fixed from the shape and the pool
 * size. Forward and input gradient run one task per group (each writes only
 * its own images). The weight gradient splits the batch into one chunk per
 * thread; each chunk sums its groups into its own partial dW^T in scratch,
 * and the partials are added to dw in chunk order at the end. When there are
 * fewer groups than threads, groups run one after another and each product
 * is threaded inside od_gemm instead. */
#include <string.h>

#include "engine/kernels_internal.h"

int od_conv2d_out_h(const od_conv2d_shape *s)
{
    int span = s->h + 2 * s->pad_h - s->kh;
    return span < 0 ? 0 : span / s->stride_h + 1;
}

int od_conv2d_out_w(const od_conv2d_shape *s)
{
    int span = s->w + 2 * s->pad_w - s->kw;
    return span < 0 ? 0 : span / s->stride_w + 1;
}

static void od__check_shape(const od_conv2d_shape *s)
{
    OD_ASSERT(s->n >= 0 && s->c_in >= 1 && s->h >= 1 && s->w >= 1);
    OD_ASSERT(s->c_out >= 1 && s->kh >= 1 && s->kw >= 1);
    OD_ASSERT(s->stride_h >= 1 && s->stride_w >= 1);
    OD_ASSERT(s->pad_h >= 0 && s->pad_w >= 0);
}

/* ---- References ------------------------------------------------------------
 * Direct loops accumulating in double: slow and plainly right. */

void od_conv2d_forward_ref(const od_conv2d_shape *s, const float *x,
                           const float *w, const float *bias, float *y)
{
    od__check_shape(s);
    int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->c_out; co++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < s->c_in; ci++)
                        for (int r = 0; r < s->kh; r++)
                            for (int c = 0; c < s->kw; c++) {
                                int ih = i * s->stride_h - s->pad_h + r;
                                int iw = j * s->stride_w - s->pad_w + c;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                size_t xi = (((size_t)n * s->c_in + ci) * s->h + ih) * s->w + iw;
                                size_t wi = (((size_t)co * s->c_in + ci) * s->kh + r) * s->kw + c;
                                acc += (double)x[xi] * w[wi];
                            }
                    y[(((size_t)n * s->c_out + co) * oh + i) * ow + j] = (float)acc;
                }
}

/* dx[n, ci, ih, iw] = sum over (co, r, c) with ih = i * sh - ph + r and
 * iw = j * sw - pw + c for some output (i, j) of dy[n, co, i, j] * w[...]. */
void od_conv2d_backward_data_ref(const od_conv2d_shape *s, const float *dy,
                                 const float *w, float *dx)
{
    od__check_shape(s);
    int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    for (int n = 0; n < s->n; n++)
        for (int ci = 0; ci < s->c_in; ci++)
            for (int ih = 0; ih < s->h; ih++)
                for (int iw = 0; iw < s->w; iw++) {
                    double acc = 0.0;
                    for (int co = 0; co < s->c_out; co++)
                        for (int r = 0; r < s->kh; r++)
                            for (int c = 0; c < s->kw; c++) {
                                int ti = ih + s->pad_h - r, tj = iw + s->pad_w - c;
                                if (ti < 0 || tj < 0 || ti % s->stride_h || tj % s->stride_w)
                                    continue;
                                int i = ti / s->stride_h, j = tj / s->stride_w;
                                if (i >= oh || j >= ow)
                                    continue;
                                size_t yi = (((size_t)n * s->c_out + co) * oh + i) * ow + j;
                                size_t wi = (((size_t)co * s->c_in + ci) * s->kh + r) * s->kw + c;
                                acc += (double)dy[yi] * w[wi];
                            }
                    dx[(((size_t)n * s->c_in + ci) * s->h + ih) * s->w + iw] = (float)acc;
                }
}

void od_conv2d_backward_weight_ref(const od_conv2d_shape *s, const float *x,
                                   const float *dy, float *dw, float *db)
{
    od__check_shape(s);
    int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    for (int co = 0; co < s->c_out; co++) {
        for (int ci = 0; ci < s->c_in; ci++)
            for (int r = 0; r < s->kh; r++)
                for (int c = 0; c < s->kw; c++) {
                    double acc = 0.0;
                    for (int n = 0; n < s->n; n++)
                        for (int i = 0; i < oh; i++)
                            for (int j = 0; j < ow; j++) {
                                int ih = i * s->stride_h - s->pad_h + r;
                                int iw = j * s->stride_w - s->pad_w + c;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                size_t xi = (((size_t)n * s->c_in + ci) * s->h + ih) * s->w + iw;
                                size_t yi = (((size_t)n * s->c_out + co) * oh + i) * ow + j;
                                acc += (double)x[xi] * dy[yi];
                            }
                    dw[(((size_t)co * s->c_in + ci) * s->kh + r) * s->kw + c] += (float)acc;
                }
        if (db) {
            double acc = 0.0;
            for (int n = 0; n < s->n; n++)
                for (int k = 0; k < oh * ow; k++)
                    acc += dy[((size_t)n * s->c_out + co) * oh * ow + k];
            db[co] += (float)acc;
        }
    }
}

/* ---- Plan: groups, chunks and the scratch layout ---------------------------- */

/* Group size: enough images that the products' long dimension (images *
 * P) reaches OD__COLS_TARGET, and no more than fit the col buffer target
 * (1 MiB, half of a core's L2). Images whose own P reaches the target go
 * one at a time: their products then read dy and write y in place, with no
 * gather or scatter copies (fmnist-cnn: conv1, P = 576, one image; conv2,
 * P = 64, four). Measured on the fmnist-cnn step; flat between 192 and
 * 512. */
#define OD__COL_TARGET_FLOATS ((size_t)1 << 18)
#define OD__COLS_TARGET ((size_t)256)

static size_t od__round16(size_t n) { return (n + 15) & ~(size_t)15; }

typedef struct {
    int oh, ow;
    size_t p;            /* OH * OW */
    size_t k;            /* C_in * KH * KW */
    int nthreads;
    int groups;          /* image groups; group g holds od__split(N, groups, g) */
    int max_group;       /* images in the largest group */
    int chunks;          /* weight-gradient chunks (partials) */
    int identity;        /* 1x1, stride 1, no padding: one image's col is x */
    size_t col_floats;   /* per worker: col (K, max_group * P) */
    size_t buf_floats;   /* per worker: (C_out, max_group * P) */
    size_t part_floats;  /* per chunk: dW^T (K, C_out) then db (C_out) */
    size_t shared_floats; /* after the workers' space: W^T (K, C_out) for the
                           * input gradient, or the chunks' partials */
} od__conv_plan;

/* Every number here depends only on the shape and the pool size. */
static od__conv_plan od__plan(const od_conv2d_shape *s, int nthreads)
{
    od__check_shape(s);
    od__conv_plan pl;
    memset(&pl, 0, sizeof pl);
    pl.oh = od_conv2d_out_h(s);
    pl.ow = od_conv2d_out_w(s);
    pl.p = (size_t)pl.oh * pl.ow;
    pl.k = (size_t)s->c_in * s->kh * s->kw;
    pl.nthreads = nthreads < 1 ? 1 : nthreads;
    pl.identity = s->kh == 1 && s->kw == 1 && s->stride_h == 1 &&
                  s->stride_w == 1 && s->pad_h == 0 && s->pad_w == 0;
    if (s->n == 0 || pl.p == 0)
        return pl;

    /* Images per group as above, at least one, and no more than leaves
     * every thread a group. */
    size_t per_img = pl.k * pl.p;
    size_t b = per_img >= OD__COL_TARGET_FLOATS ? 1 : OD__COL_TARGET_FLOATS / per_img;
    size_t b_cols = (OD__COLS_TARGET + pl.p - 1) / pl.p;
    if (b > b_cols)
        b = b_cols;
    size_t fair = ((size_t)s->n + pl.nthreads - 1) / pl.nthreads;
    if (b > fair)
        b = fair;
    int groups = (int)(((size_t)s->n + b - 1) / b);
    /* A multiple of the thread count balances the work when possible. */
    if (groups > pl.nthreads && groups % pl.nthreads) {
        int up = (groups / pl.nthreads + 1) * pl.nthreads;
        if (up <= s->n)
            groups = up;
    }
    pl.groups = groups;
    pl.max_group = (s->n + groups - 1) / groups;
    pl.chunks = s->n >= pl.nthreads && pl.nthreads > 1 ? pl.nthreads : 1;
    pl.col_floats = od__round16(pl.k * pl.max_group * pl.p);
    /* Groups of one image use dy and y in place: no (C_out, B * P) copy. */
    pl.buf_floats = pl.max_group > 1
                        ? od__round16((size_t)s->c_out * pl.max_group * pl.p)
                        : 0;
    pl.part_floats = od__round16((size_t)s->c_out * pl.k + s->c_out);
    pl.shared_floats = (size_t)pl.chunks * pl.part_floats;
    return pl;
}

size_t od_conv2d_scratch_floats(const od_conv2d_shape *s, int nthreads)
{
    od__conv_plan pl = od__plan(s, nthreads);
    size_t floats = (size_t)pl.nthreads * (pl.col_floats + pl.buf_floats) +
                    pl.shared_floats;
    if (od__conv2d_winograd(s)) {
        size_t wino = od__conv2d_winograd_scratch(s, pl.nthreads);
        floats = wino > floats ? wino : floats;
    }
    return floats;
}

static float *od__worker_col(const od__conv_plan *pl, float *scratch, int worker)
{
    return scratch + (size_t)worker * (pl->col_floats + pl->buf_floats);
}

static float *od__worker_buf(const od__conv_plan *pl, float *scratch, int worker)
{
    return od__worker_col(pl, scratch, worker) + pl->col_floats;
}

static float *od__shared(const od__conv_plan *pl, float *scratch)
{
    return scratch + (size_t)pl->nthreads * (pl->col_floats + pl->buf_floats);
}

static float *od__chunk_part(const od__conv_plan *pl, float *scratch, int chunk)
{
    return od__shared(pl, scratch) + (size_t)chunk * pl->part_floats;
}

/* ---- Lowering: im2col and col2im per ISA (loops in kernels_internal.h), and
 * the moves between NCHW and (C, B * P) ------------------------------------- */

static void od__copy_portable(int n, const float *src, float *dst)
{
    for (int j = 0; j < n; j++)
        dst[j] = src[j];
}

static void od__zero_portable(int n, float *dst)
{
    for (int j = 0; j < n; j++)
        dst[j] = 0.0f;
}

static void od__add_portable(int n, const float *src, float *dst)
{
    for (int j = 0; j < n; j++)
        dst[j] += src[j];
}

void od__im2col_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *x, int nimg, float *col, size_t ldc)
{
    od__im2col_body(s, oh, ow, x, nimg, col, ldc, od__copy_portable,
                    od__zero_portable);
}

void od__col2im_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *dcol, size_t ldc, int nimg, float *dx)
{
    od__col2im_body(s, oh, ow, dcol, ldc, nimg, dx, od__add_portable,
                    od__zero_portable);
}

void od__im2row_portable(const od_conv2d_shape *s, int oh, int ow,
                         const float *x, float *row)
{
    od__im2row_body(s, oh, ow, x, row, od__copy_portable, od__zero_portable);
}

void od__combine_rows_portable(size_t k, int nout, const int32_t *cnt,
                               const int32_t *pos, const float *val,
                               size_t ldl, const float *rows, size_t ld,
                               float *dst, size_t ldd)
{
    for (int o = 0; o < nout; o++) {
        float *d = dst + (size_t)o * ldd;
        for (size_t q = 0; q < k; q++)
            d[q] = 0.0f;
        for (int t = 0; t < cnt[o]; t++) {
            const float *r = rows + (size_t)pos[(size_t)o * ldl + t] * ld;
            float v = val[(size_t)o * ldl + t];
            for (size_t q = 0; q < k; q++)
                d[q] += v * r[q];
        }
    }
}

static void od__im2row(const od_conv2d_shape *s, const od__conv_plan *pl,
                       const float *x, float *row)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__im2row_avx512(s, pl->oh, pl->ow, x, row);
        break;
    case OD_ISA_AVX2:
        od__im2row_avx2(s, pl->oh, pl->ow, x, row);
        break;
    default:
        od__im2row_portable(s, pl->oh, pl->ow, x, row);
    }
}

static void od__combine_rows(size_t k, int nout, const int32_t *cnt,
                             const int32_t *pos, const float *val, size_t ldl,
                             const float *rows, size_t ld, float *dst,
                             size_t ldd)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__combine_rows_avx512(k, nout, cnt, pos, val, ldl, rows, ld, dst,
                                ldd);
        break;
    case OD_ISA_AVX2:
        od__combine_rows_avx2(k, nout, cnt, pos, val, ldl, rows, ld, dst,
                              ldd);
        break;
    default:
        od__combine_rows_portable(k, nout, cnt, pos, val, ldl, rows, ld, dst,
                                  ldd);
    }
}

static void od__im2col(const od_conv2d_shape *s, const od__conv_plan *pl,
                       const float *x, int nimg, float *col, size_t ldc)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__im2col_avx512(s, pl->oh, pl->ow, x, nimg, col, ldc);
        break;
    case OD_ISA_AVX2:
        od__im2col_avx2(s, pl->oh, pl->ow, x, nimg, col, ldc);
        break;
    default:
        od__im2col_portable(s, pl->oh, pl->ow, x, nimg, col, ldc);
    }
}

static void od__col2im(const od_conv2d_shape *s, const od__conv_plan *pl,
                       const float *dcol, size_t ldc, int nimg, float *dx)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__col2im_avx512(s, pl->oh, pl->ow, dcol, ldc, nimg, dx);
        break;
    case OD_ISA_AVX2:
        od__col2im_avx2(s, pl->oh, pl->ow, dcol, ldc, nimg, dx);
        break;
    default:
        od__col2im_portable(s, pl->oh, pl->ow, dcol, ldc, nimg, dx);
    }
}

/* buf (C, nimg * P) from t (nimg, C, P). */
static void od__gather(int c, size_t p, int nimg, const float *t, float *buf)
{
    size_t ld = (size_t)nimg * p;
    for (int b = 0; b < nimg; b++)
        for (int ch = 0; ch < c; ch++) {
            const float *src = t + ((size_t)b * c + ch) * p;
            float *dst = buf + (size_t)ch * ld + (size_t)b * p;
            for (size_t q = 0; q < p; q++)
                dst[q] = src[q];
        }
}

/* y (nimg, C, P) = buf (C, nimg * P) + bias (C; may be NULL). */
static void od__scatter_bias(int c, size_t p, int nimg, const float *buf,
                             const float *bias, float *y)
{
    size_t ld = (size_t)nimg * p;
    for (int b = 0; b < nimg; b++)
        for (int ch = 0; ch < c; ch++) {
            const float *src = buf + (size_t)ch * ld + (size_t)b * p;
            float *dst = y + ((size_t)b * c + ch) * p;
            float bv = bias ? bias[ch] : 0.0f;
            for (size_t q = 0; q < p; q++)
                dst[q] = src[q] + bv;
        }
}

/* ---- Forward ------------------------------------------------------------------ */

typedef struct {
    const od_conv2d_shape *s;
    const od__conv_plan *pl;
    od_pool *gemm_pool;   /* pool for od_gemm: NULL inside a task */
    const float *x, *w, *bias, *dy;
    float *y, *dx, *dw, *db;
    float *scratch;
} od__conv_ctx;

static void od__fwd_group(od__conv_ctx *c, int g, int worker)
{
    const od_conv2d_shape *s = c->s;
    const od__conv_plan *pl = c->pl;
    size_t lo, hi;
    od__split((size_t)s->n, (size_t)pl->groups, (size_t)g, &lo, &hi);
    int nimg = (int)(hi - lo);
    if (nimg == 0)
        return;
    size_t ncols = (size_t)nimg * pl->p;
    float *col = od__worker_col(pl, c->scratch, worker);  /* (K, nimg * P) */
    float *buf = od__worker_buf(pl, c->scratch, worker);  /* (C_out, nimg * P) */
    const float *x = c->x + lo * s->c_in * s->h * s->w;
    float *y = c->y + lo * s->c_out * pl->p;

    /* A 1x1 convolution's input (C_in, H * W) is already its col. */
    const float *colp = col;
    if (nimg == 1 && pl->identity)
        colp = x;
    else
        od__im2col(s, pl, x, nimg, col, ncols);
    if (nimg == 1) {
        /* One image: the product lands in y directly; (C_out, P) is NCHW. */
        od_gemm(c->gemm_pool, 0, 0, s->c_out, (int)ncols, (int)pl->k, 1.0f,
                c->w, (int)pl->k, colp, (int)ncols, 0.0f, y, (int)ncols);
        if (c->bias)
            for (int co = 0; co < s->c_out; co++)
                for (size_t q = 0; q < pl->p; q++)
                    y[co * pl->p + q] += c->bias[co];
        return;
    }
    od_gemm(c->gemm_pool, 0, 0, s->c_out, (int)ncols, (int)pl->k, 1.0f, c->w,
            (int)pl->k, colp, (int)ncols, 0.0f, buf, (int)ncols);
    od__scatter_bias(s->c_out, pl->p, nimg, buf, c->bias, y);
}

static void od__fwd_task(void *ctx_, int task, int worker)
{
    od__fwd_group(ctx_, task, worker);
}

int od__conv2d_single_in(const od_conv2d_shape *s)
{
    od_isa isa = od_cpu_isa();
    int ow = od_conv2d_out_w(s);
    int fits = isa == OD_ISA_AVX512 ? s->c_out % 8 == 0 && ow <= 32
               : isa == OD_ISA_AVX2 ? s->c_out % 4 == 0 && ow <= 24
                                    : 0;
    return fits && s->c_in == 1 && s->kh == 5 && s->kw == 5 &&
           s->stride_h == 1 && s->stride_w == 1 && s->pad_h == 0 &&
           s->pad_w == 0 && ow >= 1 && od_conv2d_out_h(s) >= 1;
}

/* Forward of a single-input-channel convolution: group g's images by the
 * register-blocked loops, without lowering. */
static void od__fwd_single_task(void *ctx_, int g, int worker)
{
    (void)worker;
    od__conv_ctx *c = ctx_;
    const od_conv2d_shape *s = c->s;
    size_t lo, hi;
    od__split((size_t)s->n, (size_t)c->pl->groups, (size_t)g, &lo, &hi);
    if (hi > lo)
        (od_cpu_isa() == OD_ISA_AVX512 ? od__conv2d_single_in_fwd_avx512
                                       : od__conv2d_single_in_fwd_avx2)(
            s, (int)(hi - lo), c->x + lo * s->h * s->w, c->w, c->bias,
            c->y + lo * s->c_out * c->pl->p);
}

void od_conv2d_forward(od_pool *pool, const od_conv2d_shape *s,
                       const float *x, const float *w, const float *bias,
                       float *y, float *scratch)
{
    if (od__conv2d_winograd(s)) {
        od__conv2d_winograd_forward(pool, s, x, w, bias, y, scratch);
        return;
    }
    od__conv_plan pl = od__plan(s, od_pool_threads(pool));
    if (pl.groups == 0)
        return;
    OD_ASSERT(scratch);
    od__conv_ctx c = {s, &pl, NULL, x, w, bias, NULL, y, NULL, NULL, NULL, scratch};
    if (od__conv2d_single_in(s)) {
        od_pool_run(pool, pl.groups, od__fwd_single_task, &c);
        return;
    }
    if (pl.groups >= pl.nthreads) {
        od_pool_run(pool, pl.groups, od__fwd_task, &c);
        return;
    }
    c.gemm_pool = pool;
    for (int g = 0; g < pl.groups; g++)
        od__fwd_group(&c, g, 0);
}

/* ---- Input gradient ----------------------------------------------------------- */

/* wt (K, C_out) = w (C_out, K) transposed. */
static void od__transpose(int rows, int cols, const float *a, float *at)
{
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            at[(size_t)j * rows + i] = a[(size_t)i * cols + j];
}

static void od__bwd_data_group(od__conv_ctx *c, int g, int worker)
{
    const od_conv2d_shape *s = c->s;
    const od__conv_plan *pl = c->pl;
    size_t lo, hi;
    od__split((size_t)s->n, (size_t)pl->groups, (size_t)g, &lo, &hi);
    int nimg = (int)(hi - lo);
    if (nimg == 0)
        return;
    size_t ncols = (size_t)nimg * pl->p;
    float *dcol = od__worker_col(pl, c->scratch, worker); /* (K, nimg * P) */
    float *buf = od__worker_buf(pl, c->scratch, worker);  /* (C_out, nimg * P) */
    const float *wt = od__shared(pl, c->scratch);         /* (K, C_out) */
    const float *dy = c->dy + lo * s->c_out * pl->p;
    float *dx = c->dx + lo * s->c_in * s->h * s->w;

    /* One image's dy (C_out, P) is already the layout the product reads. */
    const float *dyt = dy;
    if (nimg > 1) {
        od__gather(s->c_out, pl->p, nimg, dy, buf);
        dyt = buf;
    }
    if (nimg == 1 && pl->identity) {
        /* col2im of one image is the identity: write dx directly. */
        od_gemm(c->gemm_pool, 0, 0, (int)pl->k, (int)ncols, s->c_out, 1.0f,
                wt, s->c_out, dyt, (int)ncols, 0.0f, dx, (int)ncols);
        return;
    }
    od_gemm(c->gemm_pool, 0, 0, (int)pl->k, (int)ncols, s->c_out, 1.0f, wt,
            s->c_out, dyt, (int)ncols, 0.0f, dcol, (int)ncols);
    od__col2im(s, pl, dcol, ncols, nimg, dx);
}

static void od__bwd_data_task(void *ctx_, int task, int worker)
{
    od__bwd_data_group(ctx_, task, worker);
}

void od_conv2d_backward_data(od_pool *pool, const od_conv2d_shape *s,
                             const float *dy, const float *w, float *dx,
                             float *scratch)
{
    if (od__conv2d_winograd(s)) {
        od__conv2d_winograd_backward_data(pool, s, dy, w, dx, scratch);
        return;
    }
    od__conv_plan pl = od__plan(s, od_pool_threads(pool));
    if (pl.groups == 0) {
        memset(dx, 0, (size_t)s->n * s->c_in * s->h * s->w * sizeof *dx);
        return;
    }
    OD_ASSERT(scratch);
    OD_ASSERT(pl.shared_floats >= pl.k * s->c_out);
    od__transpose(s->c_out, (int)pl.k, w, od__shared(&pl, scratch));
    od__conv_ctx c = {s, &pl, NULL, NULL, w, NULL, dy, NULL, dx, NULL, NULL, scratch};
    if (pl.groups >= pl.nthreads) {
        od_pool_run(pool, pl.groups, od__bwd_data_task, &c);
        return;
    }
    c.gemm_pool = pool;
    for (int g = 0; g < pl.groups; g++)
        od__bwd_data_group(&c, g, 0);
}

/* ---- Weight gradient ---------------------------------------------------------- */

/* dwt (K, C_out) += col * dY^T and db (C_out) += row sums of dY, over the
 * images of group g; the worker's scratch holds col and dY. */
static void od__bwd_weight_group(od__conv_ctx *c, int g, int worker,
                                 float *dwt, float *db)
{
    const od_conv2d_shape *s = c->s;
    const od__conv_plan *pl = c->pl;
    size_t lo, hi;
    od__split((size_t)s->n, (size_t)pl->groups, (size_t)g, &lo, &hi);
    int nimg = (int)(hi - lo);
    if (nimg == 0)
        return;
    size_t ncols = (size_t)nimg * pl->p;
    float *col = od__worker_col(pl, c->scratch, worker);  /* (K, nimg * P) */
    float *buf = od__worker_buf(pl, c->scratch, worker);  /* (C_out, nimg * P) */
    const float *x = c->x + lo * s->c_in * s->h * s->w;
    const float *dy = c->dy + lo * s->c_out * pl->p;

    const float *colp = col;
    if (nimg == 1 && pl->identity)
        colp = x;
    else
        od__im2col(s, pl, x, nimg, col, ncols);
    const float *dyt = dy;
    if (nimg > 1) {
        od__gather(s->c_out, pl->p, nimg, dy, buf);
        dyt = buf;
    }
    od_gemm(c->gemm_pool, 0, 1, (int)pl->k, s->c_out, (int)ncols, 1.0f, colp,
            (int)ncols, dyt, (int)ncols, 1.0f, dwt, s->c_out);
    if (db)
        for (int co = 0; co < s->c_out; co++)
            db[co] += od__sum_lanes(ncols, dyt + (size_t)co * ncols);
}

/* Chunk `chunk` of the batch: its groups summed, in order, into its own
 * partial dW^T and db (zeroed first). */
static void od__bwd_weight_chunk(od__conv_ctx *c, int chunk, int worker)
{
    const od__conv_plan *pl = c->pl;
    float *part = od__chunk_part(pl, c->scratch, chunk);
    float *pdwt = part, *pdb = part + (size_t)c->s->c_out * pl->k;
    memset(part, 0, pl->part_floats * sizeof *part);
    size_t g0, g1;
    od__split((size_t)pl->groups, (size_t)pl->chunks, (size_t)chunk, &g0, &g1);
    for (size_t g = g0; g < g1; g++)
        od__bwd_weight_group(c, (int)g, worker, pdwt, c->db ? pdb : NULL);
}

static void od__bwd_weight_task(void *ctx_, int task, int worker)
{
    od__bwd_weight_chunk(ctx_, task, worker);
}

void od_conv2d_bias_grad(const od_conv2d_shape *s, const float *dy, float *db)
{
    size_t plane = (size_t)od_conv2d_out_h(s) * (size_t)od_conv2d_out_w(s);
    for (int i = 0; i < s->n; i++)
        for (int co = 0; co < s->c_out; co++)
            db[co] += od__sum_lanes(plane,
                                    dy + ((size_t)i * s->c_out + co) * plane);
}

/* Add chunks' partial sums, in chunk order, to dw (C_out, K) and db
 * (when given): chunk ch's dW^T (K, C_out) at parts + ch * stride, its
 * bias gradient (C_out) right after. */
static void od__add_parts(const float *parts, size_t stride, int chunks,
                          size_t k, int c_out, float *dw, float *db)
{
    size_t nw = (size_t)c_out * k;
    for (int co = 0; co < c_out; co++)
        for (size_t q = 0; q < k; q++) {
            float acc = parts[q * c_out + co];
            for (int ch = 1; ch < chunks; ch++)
                acc += parts[(size_t)ch * stride + q * c_out + co];
            dw[(size_t)co * k + q] += acc;
        }
    if (db)
        for (int co = 0; co < c_out; co++) {
            float acc = parts[nw + co];
            for (int ch = 1; ch < chunks; ch++)
                acc += parts[(size_t)ch * stride + nw + co];
            db[co] += acc;
        }
}

void od_conv2d_backward_weight(od_pool *pool, const od_conv2d_shape *s,
                               const float *x, const float *dy, float *dw,
                               float *db, float *scratch)
{
    if (od__conv2d_winograd(s)) {
        od__conv2d_winograd_backward_weight(pool, s, x, dy, dw, db, scratch);
        return;
    }
    od__conv_plan pl = od__plan(s, od_pool_threads(pool));
    if (pl.groups == 0)
        return;
    OD_ASSERT(scratch);
    od__conv_ctx c = {s, &pl, NULL, x, NULL, NULL, dy, NULL, NULL, dw, db, scratch};
    if (pl.chunks == 1) {
        /* One chunk: groups one after another, products threaded inside. */
        c.gemm_pool = pool;
        od__bwd_weight_chunk(&c, 0, 0);
    } else {
        od_pool_run(pool, pl.chunks, od__bwd_weight_task, &c);
    }

    od__add_parts(od__chunk_part(&pl, scratch, 0), pl.part_floats, pl.chunks,
                  pl.k, s->c_out, dw, db);
}

/* ---- Per-example squared gradient norms ----------------------------------------
 * DP-SGD needs, for every example, the squared norm of its own weight and
 * bias gradients. Each example's weight gradient dW (C_out, K) is formed
 * in the worker's scratch and reduced to its squared norm at once, by one
 * of two routes chosen per example:
 *  - dense: im2col and one product, dW = dY col^T;
 *  - sparse, when at most half of the example's output gradient is
 *    nonzero (behind ReLU and 2x2 max pooling at most a quarter is):
 *    im2row, then each channel's row of dW is the sum of the receptive
 *    fields at the channel's nonzero positions, weighted by their output
 *    gradients (od__combine_rows), work in proportion to the nonzeros.
 * Examples are spread over the pool; each is computed by one task alone,
 * in a fixed order. The clipped variant also adds each example's
 * gradient, scaled by its clip factor, into its chunk's partial sum
 * (chunks of examples fixed by the thread count, as the batch weight
 * gradient's), so that the layer needs no second pass. */

/* Per worker: col (K, P) or row (P, K) with 8 floats of slack, dW
 * (C_out, K), the bias gradient (C_out), and the output gradient's
 * nonzeros listed per channel (C_out counts, C_out x P positions and
 * values). */
static size_t od__pergrad_worker_floats(const od__conv_plan *pl,
                                        const od_conv2d_shape *s)
{
    size_t cp = (size_t)s->c_out * pl->p;
    return od__round16(pl->k * pl->p + 8) +
           od__round16(pl->k * (size_t)s->c_out) +
           2 * od__round16((size_t)s->c_out) + 2 * od__round16(cp);
}

/* Per chunk of the clipped variant: dW and the bias gradient. */
static size_t od__pergrad_part_floats(const od__conv_plan *pl,
                                      const od_conv2d_shape *s)
{
    return od__round16((pl->k + 1) * (size_t)s->c_out);
}

size_t od_conv2d_pergrad_scratch_floats(const od_conv2d_shape *s,
                                        int nthreads)
{
    od__conv_plan pl = od__plan(s, nthreads);
    return (size_t)pl.nthreads * (od__pergrad_worker_floats(&pl, s) +
                                  od__pergrad_part_floats(&pl, s));
}

typedef struct {
    const od_conv2d_shape *s;
    const od__conv_plan *pl;
    const float *x, *dy;
    int want_w, want_b;
    float *sqnorm, *scratch;
    float *kept;         /* each example's dW and bias gradient, or NULL */
    float clip;          /* the clipped variant: */
    float *parts;        /* chunks' partial sums */
    int chunks;
} od__pergrad_ctx;

/* Receptive fields of at least this many weights take the sparse route
 * when it applies; below it, finding the nonzeros costs about as much as
 * the product they save. */
#define OD__SPARSE_MIN_K 64

/* dw (C_out, K) = example i's weight gradient, from its input x (C_in, H,
 * W) and output gradient dy (C_out, P), by the route described above;
 * cnt, pos and val hold the nonzero lists (see od__pergrad_worker_floats). */
static void od__pergrad_weight(const od_conv2d_shape *s1,
                               const od__conv_plan *pl, const float *x,
                               const float *dy, float *col, float *dw,
                               int32_t *cnt, int32_t *pos, float *val)
{
    size_t total = (size_t)s1->c_out * pl->p, nnz = 0;
    if (pl->k >= OD__SPARSE_MIN_K) {
        /* Each channel's nonzeros, without a branch on their values. */
        for (int co = 0; co < s1->c_out; co++) {
            const float *d = dy + (size_t)co * pl->p;
            int32_t *po = pos + (size_t)co * pl->p;
            float *vo = val + (size_t)co * pl->p;
            int32_t m = 0;
            for (size_t p = 0; p < pl->p; p++) {
                po[m] = (int32_t)p;
                vo[m] = d[p];
                m += d[p] != 0.0f;
            }
            cnt[co] = m;
            nnz += (size_t)m;
        }
        if (2 * nnz <= total) {
            od__im2row(s1, pl, x, col);
            od__combine_rows(pl->k, s1->c_out, cnt, pos, val, pl->p, col,
                             pl->k, dw, pl->k);
            return;
        }
    }
    const float *colp = x;
    if (!pl->identity) {
        od__im2col(s1, pl, x, 1, col, pl->p);
        colp = col;
    }
    od_gemm(NULL, 0, 1, s1->c_out, (int)pl->k, (int)pl->p, 1.0f, dy,
            (int)pl->p, colp, (int)pl->p, 0.0f, dw, (int)pl->k);
}

/* Example i's own squared gradient norm; its dW (when want_w) and bias
 * gradient (when want_b) are left in the worker's scratch, at *dw_out and
 * *gb_out. */
static double od__pergrad_one(const od__pergrad_ctx *c, int i, int worker,
                              float **dw_out, float **gb_out)
{
    const od_conv2d_shape *s = c->s;
    const od__conv_plan *pl = c->pl;
    od_conv2d_shape s1 = *s;
    s1.n = 1;
    const float *x = c->x + (size_t)i * s->c_in * s->h * s->w;
    const float *dy = c->dy + (size_t)i * s->c_out * pl->p;
    float *col = c->scratch + (size_t)worker * od__pergrad_worker_floats(pl, s);
    float *dw = col + od__round16(pl->k * pl->p + 8);        /* (C_out, K) */
    float *gb = dw + od__round16(pl->k * (size_t)s->c_out);  /* (C_out) */
    size_t cp = (size_t)s->c_out * pl->p;
    int32_t *cnt = (int32_t *)(gb + od__round16((size_t)s->c_out));
    int32_t *pos = cnt + od__round16((size_t)s->c_out);
    float *val = (float *)(pos + od__round16(cp));
    *dw_out = dw;
    *gb_out = gb;
    double acc = 0.0;
    if (c->want_w) {
        od__pergrad_weight(&s1, pl, x, dy, col, dw, cnt, pos, val);
        acc += od_sumsq(pl->k * (size_t)s->c_out, dw);
    }
    if (c->want_b)
        for (int co = 0; co < s->c_out; co++) {
            gb[co] = od__sum_lanes(pl->p, dy + (size_t)co * pl->p);
            acc += (double)gb[co] * gb[co];
        }
    return acc;
}

/* dst[0..n) += the sum of the chunks' parts[ch * stride + 0..n), in chunk
 * order. */
static void od__sum_parts(const float *parts, size_t stride, int chunks,
                          size_t n, float *dst)
{
    for (size_t j = 0; j < n; j++) {
        float acc = parts[j];
        for (int ch = 1; ch < chunks; ch++)
            acc += parts[(size_t)ch * stride + j];
        dst[j] += acc;
    }
}

static void od__pergrad_task(void *ctx_, int i, int worker)
{
    od__pergrad_ctx *c = ctx_;
    float *dw, *gb;
    c->sqnorm[i] += (float)od__pergrad_one(c, i, worker, &dw, &gb);
    if (c->kept) {
        size_t nw = c->pl->k * (size_t)c->s->c_out;
        float *dst = c->kept + (size_t)i * (nw + (size_t)c->s->c_out);
        if (c->want_w)
            memcpy(dst, dw, nw * sizeof *dst);
        if (c->want_b)
            memcpy(dst + nw, gb, (size_t)c->s->c_out * sizeof *dst);
    }
}

static void od__pergrad_clip_task(void *ctx_, int chunk, int worker)
{
    od__pergrad_ctx *c = ctx_;
    const od_conv2d_shape *s = c->s;
    size_t nw = c->pl->k * (size_t)s->c_out;
    float *part = c->parts + (size_t)chunk * od__pergrad_part_floats(c->pl, s);
    memset(part, 0, (nw + (size_t)s->c_out) * sizeof *part);
    size_t lo, hi;
    od__split((size_t)s->n, (size_t)c->chunks, (size_t)chunk, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        float *dw, *gb;
        float own = (float)od__pergrad_one(c, (int)i, worker, &dw, &gb);
        c->sqnorm[i] += own;
        float f = od_clip_factor(c->sqnorm[i], c->clip);
        if (c->want_w)
            for (size_t j = 0; j < nw; j++)
                part[j] += f * dw[j];
        if (c->want_b)
            for (int co = 0; co < s->c_out; co++)
                part[nw + co] += f * gb[co];
    }
}

void od_conv2d_pergrad_sqnorm(od_pool *pool, const od_conv2d_shape *s,
                              const float *x, const float *dy, int want_w,
                              int want_b, float *sqnorm, float *kept,
                              float *scratch)
{
    od__conv_plan pl = od__plan(s, od_pool_threads(pool));
    if (s->n == 0 || pl.p == 0 || (!want_w && !want_b))
        return;
    OD_ASSERT(scratch);
    od__pergrad_ctx c = {s, &pl, x, dy, want_w, want_b, sqnorm, scratch,
                         kept, 0.0f, NULL, 0};
    od_pool_run(pool, s->n, od__pergrad_task, &c);
}

size_t od_conv2d_pergrad_kept_floats(const od_conv2d_shape *s)
{
    size_t k = (size_t)s->c_in * s->kh * s->kw;
    return (size_t)s->n * (k + 1) * (size_t)s->c_out;
}

void od_conv2d_kept_sum(const od_conv2d_shape *s, const float *kept,
                        const float *scale, float *dw, float *db)
{
    size_t k = (size_t)s->c_in * s->kh * s->kw, nw = k * (size_t)s->c_out;
    for (int i = 0; i < s->n; i++) {
        const float *g = kept + (size_t)i * (nw + (size_t)s->c_out);
        const float f = scale[i];
        if (dw)
            for (size_t q = 0; q < nw; q++)
                dw[q] += f * g[q];
        if (db)
            for (int co = 0; co < s->c_out; co++)
                db[co] += f * g[nw + co];
    }
}

void od_conv2d_pergrad_clipped(od_pool *pool, const od_conv2d_shape *s,
                               const float *x, const float *dy, float clip,
                               float *sqnorm, float *dw, float *db,
                               float *scratch)
{
    od__conv_plan pl = od__plan(s, od_pool_threads(pool));
    if (s->n == 0 || pl.p == 0 || (!dw && !db))
        return;
    OD_ASSERT(scratch);
    int chunks = pl.nthreads < s->n ? pl.nthreads : s->n;
    float *parts = scratch + (size_t)pl.nthreads * od__pergrad_worker_floats(&pl, s);
    od__pergrad_ctx c = {s, &pl, x, dy, dw != NULL, db != NULL, sqnorm,
                         scratch, NULL, clip, parts, chunks};
    od_pool_run(pool, chunks, od__pergrad_clip_task, &c);
    size_t stride = od__pergrad_part_floats(&pl, s);
    size_t nw = pl.k * (size_t)s->c_out;
    if (dw)
        od__sum_parts(parts, stride, chunks, nw, dw);
    if (db)
        od__sum_parts(parts + nw, stride, chunks, (size_t)s->c_out, db);
}
