/* 2-D max and average pooling over NCHW images, without padding.
 *
 * The optimised versions split the N * C planes into fixed blocks run over
 * the pool; a plane is always handled whole by one task, so backward's
 * accumulation into overlapping windows happens in one fixed order and the
 * results do not depend on the pool size. */
#include <string.h>

#include "engine/kernels_internal.h"

int od_pool2d_out_h(const od_pool2d_shape *s)
{
    return s->h < s->kh ? 0 : (s->h - s->kh) / s->stride_h + 1;
}

int od_pool2d_out_w(const od_pool2d_shape *s)
{
    return s->w < s->kw ? 0 : (s->w - s->kw) / s->stride_w + 1;
}

static void od__check_shape(const od_pool2d_shape *s)
{
    OD_ASSERT(s->n >= 0 && s->c >= 0 && s->h >= 1 && s->w >= 1);
    OD_ASSERT(s->kh >= 1 && s->kw >= 1 && s->stride_h >= 1 && s->stride_w >= 1);
}

/* ---- Per-plane loops ---------------------------------------------------------
 * Each handles planes [p0, p1) of the (N * C) planes in a fixed order. The
 * general max loops double as the max-pooling references (they are as plain
 * as a reference gets); the optimised versions add the threading and
 * specialised 2x2 stride-2 loops (portable and AVX-512). */

static void od__max_fwd_planes(const od_pool2d_shape *s, size_t p0, size_t p1,
                               const float *x, float *y, int32_t *argmax)
{
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)oh * ow;
    for (size_t p = p0; p < p1; p++) {
        const float *xp = x + p * in_plane;      /* (H, W) */
        float *yp = y + p * out_plane;           /* (OH, OW) */
        int32_t *ap = argmax + p * out_plane;    /* (OH, OW) */
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                int r0 = i * s->stride_h, c0 = j * s->stride_w;
                int best = r0 * s->w + c0;
                float bv = xp[best];
                /* Strictly greater: the first maximum in row-major order
                 * wins ties. */
                for (int r = r0; r < r0 + s->kh; r++)
                    for (int c = c0; c < c0 + s->kw; c++)
                        if (xp[r * s->w + c] > bv) {
                            bv = xp[r * s->w + c];
                            best = r * s->w + c;
                        }
                yp[i * ow + j] = bv;
                ap[i * ow + j] = best;
            }
        }
    }
}

/* The common 2x2 window with stride 2: same result and tie-breaking as the
 * general loop, without its inner loop bookkeeping. */
static void od__max_fwd_planes_2x2(const od_pool2d_shape *s, size_t p0,
                                   size_t p1, const float *x, float *y,
                                   int32_t *argmax)
{
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s), w = s->w;
    size_t in_plane = (size_t)s->h * w, out_plane = (size_t)oh * ow;
    for (size_t p = p0; p < p1; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        int32_t *ap = argmax + p * out_plane;
        for (int i = 0; i < oh; i++) {
            const float *r0 = xp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j = 0; j < ow; j++) {
                int k = 2 * i * w + 2 * j;
                float bv = r0[2 * j];
                int best = k;
                if (r0[2 * j + 1] > bv) {
                    bv = r0[2 * j + 1];
                    best = k + 1;
                }
                if (r1[2 * j] > bv) {
                    bv = r1[2 * j];
                    best = k + w;
                }
                if (r1[2 * j + 1] > bv) {
                    bv = r1[2 * j + 1];
                    best = k + w + 1;
                }
                yp[i * ow + j] = bv;
                ap[i * ow + j] = best;
            }
        }
    }
}

static void od__max_bwd_planes(const od_pool2d_shape *s, size_t p0, size_t p1,
                               const float *dy, const int32_t *argmax,
                               float *dx)
{
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)oh * ow;
    memset(dx + p0 * in_plane, 0, (p1 - p0) * in_plane * sizeof *dx);
    for (size_t p = p0; p < p1; p++) {
        const float *dyp = dy + p * out_plane;
        const int32_t *ap = argmax + p * out_plane;
        float *dxp = dx + p * in_plane;
        for (size_t k = 0; k < out_plane; k++) {
            OD_ASSERT(ap[k] >= -1 && ap[k] < (int64_t)in_plane);
            if (ap[k] >= 0)
                dxp[ap[k]] += dyp[k];
        }
    }
}

/* Backward of 2x2 stride-2 max pooling: the windows tile the plane, so each
 * element of dx is written once, dy where the window chose it and 0
 * elsewhere (the last row and column of an odd-sized plane are in no window
 * and get 0). No separate clearing pass. */
static void od__max_bwd_planes_2x2(const od_pool2d_shape *s, size_t p0,
                                   size_t p1, const float *dy,
                                   const int32_t *argmax, float *dx)
{
    int h = s->h, w = s->w, oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t in_plane = (size_t)h * w, out_plane = (size_t)oh * ow;
    for (size_t p = p0; p < p1; p++) {
        const float *dyp = dy + p * out_plane;
        const int32_t *ap = argmax + p * out_plane;
        float *dxp = dx + p * in_plane;
        for (int i = 0; i < oh; i++) {
            float *r0 = dxp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j = 0; j < ow; j++) {
                /* The chosen element's row (0, 1) and column (0, 1) in its
                 * window; stored through a computed address rather than
                 * selected by branches, as its position is unpredictable. */
                r0[2 * j] = 0.0f;
                r0[2 * j + 1] = 0.0f;
                r1[2 * j] = 0.0f;
                r1[2 * j + 1] = 0.0f;
                if (ap[i * ow + j] < 0)
                    continue; /* no positive input (fused ReLU) */
                int32_t a = ap[i * ow + j] - (2 * i * w + 2 * j);
                int row = a >= w, col = a - row * w;
                OD_ASSERT((a >= 0) & (col >= 0) & (col <= 1));
                (row ? r1 : r0)[2 * j + col] = dyp[i * ow + j];
            }
            if (w % 2) {
                r0[w - 1] = 0.0f;
                r1[w - 1] = 0.0f;
            }
        }
        for (int r = 2 * oh; r < h; r++)
            for (int c = 0; c < w; c++)
                dxp[(size_t)r * w + c] = 0.0f;
    }
}

static void od__avg_fwd_planes(const od_pool2d_shape *s, size_t p0, size_t p1,
                               const float *x, float *y)
{
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)oh * ow;
    float inv = 1.0f / (float)(s->kh * s->kw);
    for (size_t p = p0; p < p1; p++) {
        const float *xp = x + p * in_plane;
        float *yp = y + p * out_plane;
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                int r0 = i * s->stride_h, c0 = j * s->stride_w;
                float acc = 0.0f;
                for (int r = r0; r < r0 + s->kh; r++)
                    for (int c = c0; c < c0 + s->kw; c++)
                        acc += xp[r * s->w + c];
                yp[i * ow + j] = acc * inv;
            }
        }
    }
}

static void od__avg_bwd_planes(const od_pool2d_shape *s, size_t p0, size_t p1,
                               const float *dy, float *dx)
{
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t in_plane = (size_t)s->h * s->w, out_plane = (size_t)oh * ow;
    float inv = 1.0f / (float)(s->kh * s->kw);
    memset(dx + p0 * in_plane, 0, (p1 - p0) * in_plane * sizeof *dx);
    for (size_t p = p0; p < p1; p++) {
        const float *dyp = dy + p * out_plane;
        float *dxp = dx + p * in_plane;
        for (int i = 0; i < oh; i++) {
            for (int j = 0; j < ow; j++) {
                float g = dyp[i * ow + j] * inv;
                int r0 = i * s->stride_h, c0 = j * s->stride_w;
                for (int r = r0; r < r0 + s->kh; r++)
                    for (int c = c0; c < c0 + s->kw; c++)
                        dxp[r * s->w + c] += g;
            }
        }
    }
}

/* The ReLU of a max-pooled plane block: max(0, max of window) is the
 * maximum of the window's ReLU outputs, and where it is 0 no input gets a
 * gradient (ReLU's derivative is 0 at and below 0), marked argmax -1. */
static void od__relu_after_max(size_t outs, float *y, int32_t *argmax)
{
    for (size_t k = 0; k < outs; k++)
        if (!(y[k] > 0.0f)) {
            y[k] = 0.0f;
            argmax[k] = -1;
        }
}

/* ---- References ------------------------------------------------------------ */

void od_maxpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                              float *y, int32_t *argmax)
{
    od__check_shape(s);
    od__max_fwd_planes(s, 0, (size_t)s->n * s->c, x, y, argmax);
}

void od_relu_maxpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                                   float *y, int32_t *argmax)
{
    od_maxpool2d_forward_ref(s, x, y, argmax);
    od__relu_after_max((size_t)s->n * s->c * od_pool2d_out_h(s) *
                           od_pool2d_out_w(s), y, argmax);
}

void od_maxpool2d_backward_ref(const od_pool2d_shape *s, const float *dy,
                               const int32_t *argmax, float *dx)
{
    od__check_shape(s);
    od__max_bwd_planes(s, 0, (size_t)s->n * s->c, dy, argmax, dx);
}

/* Average pooling references accumulate in double; backward gathers, for
 * each input element, the gradients of every window that covers it. */
void od_avgpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                              float *y)
{
    od__check_shape(s);
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t planes = (size_t)s->n * s->c;
    for (size_t p = 0; p < planes; p++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double acc = 0.0;
                for (int r = 0; r < s->kh; r++)
                    for (int c = 0; c < s->kw; c++)
                        acc += x[(p * s->h + (size_t)(i * s->stride_h + r)) * s->w +
                                 (size_t)(j * s->stride_w + c)];
                y[(p * oh + i) * ow + j] = (float)(acc / (s->kh * s->kw));
            }
}

void od_avgpool2d_backward_ref(const od_pool2d_shape *s, const float *dy,
                               float *dx)
{
    od__check_shape(s);
    int oh = od_pool2d_out_h(s), ow = od_pool2d_out_w(s);
    size_t planes = (size_t)s->n * s->c;
    for (size_t p = 0; p < planes; p++)
        for (int r = 0; r < s->h; r++)
            for (int c = 0; c < s->w; c++) {
                double acc = 0.0;
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        int dr = r - i * s->stride_h, dc = c - j * s->stride_w;
                        if (dr >= 0 && dr < s->kh && dc >= 0 && dc < s->kw)
                            acc += dy[(p * oh + i) * ow + j];
                    }
                dx[(p * s->h + r) * s->w + c] = (float)(acc / (s->kh * s->kw));
            }
}

/* ---- Optimised: blocks of planes over the pool ----------------------------- */

typedef enum {
    OD__MAX_FWD, OD__RELU_MAX_FWD, OD__MAX_BWD, OD__AVG_FWD, OD__AVG_BWD
} od__pool_op;

typedef struct {
    od__pool_op op;
    const od_pool2d_shape *s;
    size_t planes, ntasks;
    const float *in;
    float *out;
    const int32_t *argmax_in;
    int32_t *argmax_out;
} od__pool_ctx;

static void od__pool_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__pool_ctx *c = ctx_;
    const od_pool2d_shape *s = c->s;
    size_t p0, p1;
    od__split(c->planes, c->ntasks, (size_t)task, &p0, &p1);
    int is_2x2 = s->kh == 2 && s->kw == 2 && s->stride_h == 2 && s->stride_w == 2;
    size_t in_plane = (size_t)s->h * s->w;
    size_t out_plane = (size_t)od_pool2d_out_h(s) * od_pool2d_out_w(s);
    switch (c->op) {
    case OD__MAX_FWD:
    case OD__RELU_MAX_FWD:
        if (is_2x2 && od_cpu_isa() != OD_ISA_PORTABLE) {
            (od_cpu_isa() == OD_ISA_AVX512 ? od__maxpool2x2_avx512
                                           : od__maxpool2x2_avx2)(
                s->h, s->w, p1 - p0, c->in + p0 * in_plane,
                c->out + p0 * out_plane, c->argmax_out + p0 * out_plane,
                c->op == OD__RELU_MAX_FWD);
            break;
        }
        if (is_2x2)
            od__max_fwd_planes_2x2(s, p0, p1, c->in, c->out, c->argmax_out);
        else
            od__max_fwd_planes(s, p0, p1, c->in, c->out, c->argmax_out);
        if (c->op == OD__RELU_MAX_FWD)
            od__relu_after_max((p1 - p0) * out_plane, c->out + p0 * out_plane,
                               c->argmax_out + p0 * out_plane);
        break;
    case OD__MAX_BWD:
        if (is_2x2 && od_cpu_isa() != OD_ISA_PORTABLE)
            (od_cpu_isa() == OD_ISA_AVX512 ? od__maxpool2x2_bwd_avx512
                                           : od__maxpool2x2_bwd_avx2)(
                s->h, s->w, p1 - p0, c->in + p0 * out_plane,
                c->argmax_in + p0 * out_plane, c->out + p0 * in_plane);
        else if (is_2x2)
            od__max_bwd_planes_2x2(s, p0, p1, c->in, c->argmax_in, c->out);
        else
            od__max_bwd_planes(s, p0, p1, c->in, c->argmax_in, c->out);
        break;
    case OD__AVG_FWD:
        od__avg_fwd_planes(s, p0, p1, c->in, c->out);
        break;
    case OD__AVG_BWD:
        od__avg_bwd_planes(s, p0, p1, c->in, c->out);
        break;
    }
}

/* Tasks of about OD__CHUNK_ELEMS input elements, whole planes each. */
static void od__pool_run(od_pool *pool, od__pool_ctx *c)
{
    const od_pool2d_shape *s = c->s;
    od__check_shape(s);
    c->planes = (size_t)s->n * s->c;
    if (c->planes == 0)
        return;
    size_t elems = c->planes * s->h * s->w;
    c->ntasks = od__nchunks(elems, OD__CHUNK_ELEMS);
    if (c->ntasks > c->planes)
        c->ntasks = c->planes;
    if (elems < OD__PAR_MIN_ELEMS)
        pool = NULL;
    od_pool_run(pool, (int)c->ntasks, od__pool_task, c);
}

void od_maxpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                          const float *x, float *y, int32_t *argmax)
{
    od__pool_ctx c = {OD__MAX_FWD, s, 0, 0, x, y, NULL, argmax};
    od__pool_run(pool, &c);
}

void od_relu_maxpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                               const float *x, float *y, int32_t *argmax)
{
    od__pool_ctx c = {OD__RELU_MAX_FWD, s, 0, 0, x, y, NULL, argmax};
    od__pool_run(pool, &c);
}

void od_maxpool2d_backward(od_pool *pool, const od_pool2d_shape *s,
                           const float *dy, const int32_t *argmax, float *dx)
{
    od__pool_ctx c = {OD__MAX_BWD, s, 0, 0, dy, dx, argmax, NULL};
    od__pool_run(pool, &c);
}

void od_avgpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                          const float *x, float *y)
{
    od__pool_ctx c = {OD__AVG_FWD, s, 0, 0, x, y, NULL, NULL};
    od__pool_run(pool, &c);
}

void od_avgpool2d_backward(od_pool *pool, const od_pool2d_shape *s,
                           const float *dy, float *dx)
{
    od__pool_ctx c = {OD__AVG_BWD, s, 0, 0, dy, dx, NULL, NULL};
    od__pool_run(pool, &c);
}
