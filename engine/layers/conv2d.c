/* 2-D convolution (cross-correlation, as PyTorch's nn.Conv2d) with
 * (KH, KW) kernels and one stride and one zero padding for both axes:
 * x (N, C_in, H, W) -> y (N, C_out, OH, OW), weights (C_out, C_in, KH, KW),
 * bias (C_out). The work is done by the od_conv2d_* kernels; their scratch
 * comes from the arena (scratch) and is returned right after the call. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od__conv2d {
    od_layer base;
    od_arena *arena;
    int c_in, c_out, kh, kw, stride, pad, has_bias;
    od_conv2d_shape shape;  /* of the last forward */
    od_tensor x;            /* the last forward's input (not owned) */
    od_tensor y;            /* the last forward's output */
    /* Each example's gradients, kept by the per-example norms for the
     * clipped sum that follows them (arena scratch: valid until the next
     * forward, which clears it). */
    float *kept;
} od__conv2d;

/* Largest per-example gradients kept, over the batch: above it the clipped
 * sum runs a second backward instead. */
#define OD__CONV2D_KEEP_BYTES (4u << 20)

static od_conv2d_shape od__conv2d_shape_of(const od__conv2d *L,
                                           const int *dims)
{
    od_conv2d_shape s = {
        .n = dims[0], .c_in = dims[1], .h = dims[2], .w = dims[3],
        .c_out = L->c_out, .kh = L->kh, .kw = L->kw,
        .stride_h = L->stride, .stride_w = L->stride,
        .pad_h = L->pad, .pad_w = L->pad,
    };
    return s;
}

static od_status od__conv2d_out_shape(const od_layer *l, int ndim,
                                      const int *dims, int *out_ndim,
                                      int *out_dims)
{
    const od__conv2d *L = (const od__conv2d *)l;
    if (ndim != 4 || dims[1] != L->c_in || dims[2] + 2 * L->pad < L->kh
        || dims[3] + 2 * L->pad < L->kw) {
        char want[96];
        snprintf(want, sizeof want, "(N, %d, H, W) with H, W >= %d",
                 L->c_in, L->kh - 2 * L->pad > 1 ? L->kh - 2 * L->pad : 1);
        return od__shape_fail(l, want, ndim, dims);
    }
    od_conv2d_shape s = od__conv2d_shape_of(L, dims);
    *out_ndim = 4;
    out_dims[0] = dims[0];
    out_dims[1] = L->c_out;
    out_dims[2] = od_conv2d_out_h(&s);
    out_dims[3] = od_conv2d_out_w(&s);
    return OD_OK;
}

/* Scratch for one kernel call, from the arena's step blocks. */
static od_status od__conv2d_scratch(od_ctx *ctx, const od_conv2d_shape *s,
                                    float **scratch)
{
    size_t floats = od_conv2d_scratch_floats(s, od_pool_threads(ctx->pool));
    void *p = NULL;
    *scratch = NULL;
    if (floats == 0)
        return OD_OK;
    OD_TRY(od_arena_alloc_uninit(ctx->arena, OD_MEM_SCRATCH,
                                 floats * sizeof(float), &p));
    *scratch = p;
    return OD_OK;
}

static od_status od__conv2d_forward(od_layer *l, od_ctx *ctx,
                                    const od_tensor *x, od_tensor *y,
                                    int training)
{
    (void)training;
    od__conv2d *L = (od__conv2d *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__conv2d_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    od_conv2d_shape s = od__conv2d_shape_of(L, x->dims);
    size_t mark = od_arena_mark(ctx->arena);
    float *scratch;
    OD_TRY(od__conv2d_scratch(ctx, &s, &scratch));
    od_conv2d_forward(ctx->pool, &s, x->data, l->params[0]->value.data,
                      L->has_bias ? l->params[1]->value.data : NULL, y->data,
                      scratch);
    od_arena_release(ctx->arena, mark);

    L->shape = s;
    L->x = *x;
    L->y = *y;
    L->kept = NULL;
    double wsize = (double)L->c_out * L->c_in * L->kh * L->kw;
    double macs = (double)y->size * L->c_in * L->kh * L->kw;
    od__cost(ctx, l, OD_OP_CONV, OD_PHASE_FORWARD,
             2.0 * macs + (L->has_bias ? (double)y->size : 0.0),
             (double)x->size + wsize + (L->has_bias ? L->c_out : 0),
             (double)y->size, t0);
    return OD_OK;
}

static od_status od__conv2d_backward(od_layer *l, od_ctx *ctx,
                                     const od_tensor *dy, od_tensor *dx)
{
    od__conv2d *L = (od__conv2d *)l;
    OD_ASSERT(L->x.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));

    od_param *w = l->params[0];
    od_param *b = L->has_bias ? l->params[1] : NULL;
    const od_conv2d_shape *s = &L->shape;
    double wsize = (double)L->c_out * L->c_in * L->kh * L->kw;
    double macs = (double)dy->size * L->c_in * L->kh * L->kw;
    double flops = 0, rd = (double)dy->size, wr = 0;

    if (dx)
        OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, dx, L->x.ndim,
                               L->x.dims));
    size_t mark = od_arena_mark(ctx->arena);
    float *scratch;
    OD_TRY(od__conv2d_scratch(ctx, s, &scratch));

    if (od__wants_grad(w)) {
        float *db = od__wants_grad(b) ? b->grad.data : NULL;
        od_conv2d_backward_weight(ctx->pool, s, L->x.data, dy->data,
                                  w->grad.data, db, scratch);
        flops += 2.0 * macs;
        rd += (double)L->x.size + wsize;
        wr += wsize;
    } else if (od__wants_grad(b)) {
        od_conv2d_bias_grad(&L->shape, dy->data, b->grad.data);
    }
    if (od__wants_grad(b)) {
        flops += (double)dy->size;
        rd += L->c_out;
        wr += L->c_out;
    }
    if (dx) {
        od_conv2d_backward_data(ctx->pool, s, dy->data, w->value.data,
                                dx->data, scratch);
        flops += 2.0 * macs;
        rd += wsize;
        wr += (double)dx->size;
    }
    od_arena_release(ctx->arena, mark);
    od__cost(ctx, l, OD_OP_CONV, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

/* Per-example squared gradient norms. The weights are shared over the
 * OH x OW output positions P, so the norm-from-Grams route costs
 * P^2 (C_in KH KW + C_out) per example against P C_in KH KW C_out for
 * materialising the example's gradient; for the image sizes ondev trains
 * the second is cheaper, so each example's weight gradient is formed in
 * scratch and reduced to its norm there (od_conv2d_pergrad_sqnorm), the
 * examples spread over the pool.
 * TODO(pergrad): take the Gram route when P is small against the channels
 * (late layers of deep networks). */
static od_status od__conv2d_pergrad(od_layer *l, od_ctx *ctx,
                                    const od_tensor *dy, int clipped,
                                    float clip, float *sqnorm)
{
    od__conv2d *L = (od__conv2d *)l;
    OD_ASSERT(L->x.data); /* needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));
    od_param *w = l->params[0];
    od_param *b = L->has_bias ? l->params[1] : NULL;
    float *dw = od__wants_grad(w) ? w->grad.data : NULL;
    float *db = od__wants_grad(b) ? b->grad.data : NULL;
    if (!dw && !db)
        return OD_OK;

    /* Small per-example gradients (early layers) are kept for the clipped
     * sum, which then needs no second backward; outside the mark below,
     * they live until the caller releases the step's scratch. */
    L->kept = NULL;
    size_t keep = od_conv2d_pergrad_kept_floats(&L->shape);
    if (!clipped && keep * sizeof(float) <= OD__CONV2D_KEEP_BYTES) {
        void *k = NULL;
        OD_TRY(od_arena_alloc_uninit(ctx->arena, OD_MEM_SCRATCH,
                                     keep * sizeof(float), &k));
        L->kept = k;
    }
    size_t mark = od_arena_mark(ctx->arena);
    size_t floats = od_conv2d_pergrad_scratch_floats(
        &L->shape, od_pool_threads(ctx->pool));
    void *p = NULL;
    OD_TRY(od_arena_alloc_uninit(ctx->arena, OD_MEM_SCRATCH,
                                 floats * sizeof(float), &p));
    if (clipped)
        od_conv2d_pergrad_clipped(ctx->pool, &L->shape, L->x.data, dy->data,
                                  clip, sqnorm, dw, db, p);
    else
        od_conv2d_pergrad_sqnorm(ctx->pool, &L->shape, L->x.data, dy->data,
                                 dw != NULL, db != NULL, sqnorm, L->kept, p);
    od_arena_release(ctx->arena, mark);
    double macs = (double)dy->size * L->c_in * L->kh * L->kw;
    od__cost(ctx, l, OD_OP_CONV, OD_PHASE_BACKWARD, 2.0 * macs,
             (double)L->x.size + (double)dy->size,
             (double)L->shape.n + (clipped ? (double)w->grad.size : 0.0), t0);
    return OD_OK;
}

static od_status od__conv2d_grad_sqnorm(od_layer *l, od_ctx *ctx,
                                        const od_tensor *dy, float *sqnorm)
{
    return od__conv2d_pergrad(l, ctx, dy, 0, 0.0f, sqnorm);
}

/* The per-example norms and the clipped sum in one pass (see model.h):
 * each example's gradient is formed in scratch anyway for its norm. */
static od_status od__conv2d_clipped_grad(od_layer *l, od_ctx *ctx,
                                        const od_tensor *dy, float clip,
                                        float *sqnorm)
{
    return od__conv2d_pergrad(l, ctx, dy, 1, clip, sqnorm);
}

/* The clipped sum of engine/pergrad.c: from the per-example gradients
 * when the norms kept them, else by scaling dy's example rows. */
static od_status od__conv2d_scaled_backward(od_layer *l, od_ctx *ctx,
                                           od_tensor *dy, const float *scale)
{
    od__conv2d *L = (od__conv2d *)l;
    od_param *w = l->params[0];
    od_param *b = L->has_bias ? l->params[1] : NULL;
    if (L->kept) {   /* the per-example gradients of this very batch */
        uint64_t t0 = od_now_ns();
        OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));
        od_conv2d_kept_sum(&L->shape, L->kept, scale,
                           od__wants_grad(w) ? w->grad.data : NULL,
                           od__wants_grad(b) ? b->grad.data : NULL);
        L->kept = NULL;
        double g = (double)od_conv2d_pergrad_kept_floats(&L->shape);
        od__cost(ctx, l, OD_OP_CONV, OD_PHASE_BACKWARD, 2.0 * g, g,
                 (double)w->grad.size + (b ? (double)L->c_out : 0), t0);
        return OD_OK;
    }
    od_tensor_scale_rows(dy, scale);
    return od__conv2d_backward(l, ctx, dy, NULL);
}

/* PyTorch's nn.Conv2d: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * with fan_in = C_in * KH * KW. */
static void od__conv2d_init(od_layer *l, od_rng *rng)
{
    od__conv2d *L = (od__conv2d *)l;
    float bound = 1.0f / sqrtf((float)(L->c_in * L->kh * L->kw));
    for (int i = 0; i < l->nparams; i++)
        od__fill_uniform(&l->params[i]->value, rng, bound);
}

static void od__conv2d_destroy(od_layer *l)
{
    od__layer_free(l, ((od__conv2d *)l)->arena);
}

static const od_layer_vtbl od__conv2d_vtbl = {
    "conv2d", od__conv2d_out_shape, od__conv2d_forward, od__conv2d_backward,
    od__conv2d_init, od__conv2d_destroy, od__conv2d_grad_sqnorm,
    od__conv2d_scaled_backward, od__conv2d_clipped_grad,
};

od_status od_conv2d_create(od_ctx *ctx, const char *name, int c_in, int c_out,
                           int kh, int kw, int stride, int pad, int bias,
                           od_layer **out_layer)
{
    *out_layer = NULL;
    if (c_in <= 0 || c_out <= 0 || kh <= 0 || kw <= 0 || stride <= 0
        || pad < 0)
        return od_fail(OD_ERR_INVALID, "conv2d '%s': channels, kernel and "
                       "stride must be positive and padding non-negative "
                       "(c_in %d, c_out %d, kernel %dx%d, stride %d, pad %d)",
                       name ? name : "", c_in, c_out, kh, kw, stride, pad);
    od__conv2d *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__conv2d_vtbl, name);
    L->arena = ctx->arena;
    L->c_in = c_in;
    L->c_out = c_out;
    L->kh = kh;
    L->kw = kw;
    L->stride = stride;
    L->pad = pad;
    L->has_bias = bias != 0;

    int wd[4] = {c_out, c_in, kh, kw};
    od_status st = od__param_new(ctx->arena, L->base.name, "weight", 4, wd,
                                 &L->base.params[0]);
    if (st == OD_OK) {
        L->base.nparams = 1;
        if (L->has_bias) {
            st = od__param_new(ctx->arena, L->base.name, "bias", 1, &c_out,
                               &L->base.params[1]);
            if (st == OD_OK)
                L->base.nparams = 2;
        }
    }
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    *out_layer = &L->base;
    return OD_OK;
}
