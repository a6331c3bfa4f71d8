/* Fully connected layer over the last dimension: y (..., out) =
 * x (..., in) W^T + b, with W (out, in) and b (out). Leading dimensions are
 * folded into rows, so a sequence (N, T, in) works as (N*T, in). */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od__linear {
    od_layer base;
    od_arena *arena;
    int in, out, has_bias;
    od_tensor x;  /* the last forward's input (not owned) */
    od_tensor y;  /* the last forward's output */
} od__linear;

static od_status od__linear_out_shape(const od_layer *l, int ndim,
                                      const int *dims, int *out_ndim,
                                      int *out_dims)
{
    const od__linear *L = (const od__linear *)l;
    if (ndim < 2 || dims[ndim - 1] != L->in) {
        char want[48];
        snprintf(want, sizeof want, "(N, ..., %d)", L->in);
        return od__shape_fail(l, want, ndim, dims);
    }
    *out_ndim = ndim;
    memcpy(out_dims, dims, (size_t)ndim * sizeof *dims);
    out_dims[ndim - 1] = L->out;
    return OD_OK;
}

static od_status od__linear_forward(od_layer *l, od_ctx *ctx,
                                    const od_tensor *x, od_tensor *y,
                                    int training)
{
    (void)training;
    od__linear *L = (od__linear *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__linear_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    int rows = (int)(x->size / (size_t)L->in);
    const float *w = l->params[0]->value.data;   /* (out, in) */

    /* y (rows, out) = x (rows, in) W^T, then + b on every row. */
    od_gemm(ctx->pool, 0, 1, rows, L->out, L->in, 1.0f, x->data, L->in, w,
            L->in, 0.0f, y->data, L->out);
    if (L->has_bias)
        od_add_bias_rows(ctx->pool, rows, L->out, y->data,
                         l->params[1]->value.data);

    L->x = *x;
    L->y = *y;
    double macs = (double)rows * L->in * L->out;
    double bias = L->has_bias ? (double)rows * L->out : 0.0;
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_FORWARD, 2.0 * macs + bias,
             (double)x->size + (double)L->in * L->out
                 + (L->has_bias ? L->out : 0),
             (double)y->size, t0);
    return OD_OK;
}

static od_status od__linear_backward(od_layer *l, od_ctx *ctx,
                                     const od_tensor *dy, od_tensor *dx)
{
    od__linear *L = (od__linear *)l;
    OD_ASSERT(L->x.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));

    int rows = (int)(L->x.size / (size_t)L->in);
    od_param *w = l->params[0];
    od_param *b = L->has_bias ? l->params[1] : NULL;
    double macs = (double)rows * L->in * L->out;
    double wsize = (double)L->in * L->out;
    double flops = 0, rd = (double)dy->size, wr = 0;

    /* dx (rows, in) = dy (rows, out) W (out, in), first: applying the
     * update below changes W. */
    if (dx) {
        OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, dx, L->x.ndim,
                               L->x.dims));
        od_gemm(ctx->pool, 0, 0, rows, L->in, L->out, 1.0f, dy->data, L->out,
                w->value.data, L->in, 0.0f, dx->data, L->in);
        flops += 2.0 * macs;
        rd += wsize;
        wr += (double)dx->size;
    }
    /* dW (out, in) += dy^T (out, rows) x (rows, in), or = with
     * ctx->fresh_grads (and so for db); with ctx->apply_update, the
     * product goes into W itself: W = beta W + alpha dW. */
    int apply = ctx->apply_update;
    float alpha = apply ? ctx->apply_alpha : 1.0f;
    if (od__wants_grad(w)) {
        float *c = apply ? w->value.data : w->grad.data;
        float beta = apply ? ctx->apply_beta
                           : ctx->fresh_grads ? 0.0f : 1.0f;
        od_gemm(ctx->pool, 1, 0, L->out, L->in, rows, alpha, dy->data, L->out,
                L->x.data, L->in, beta, c, L->in);
        w->applied = apply;
        flops += 2.0 * macs;
        rd += (double)L->x.size + wsize;
        wr += wsize;
    }
    /* db (out) += column sums of dy; applied, b = beta b + alpha db. */
    if (od__wants_grad(b)) {
        float *db = b->grad.data;
        if (apply) {
            void *p = NULL;
            OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                                  (size_t)L->out * sizeof(float), &p));
            db = p;
        }
        if (apply || ctx->fresh_grads)
            memset(db, 0, (size_t)L->out * sizeof(float));
        od_sum_rows(ctx->pool, rows, L->out, dy->data, db);
        if (apply) {
            float beta = ctx->apply_beta, *v = b->value.data;
            for (int j = 0; j < L->out; j++)
                v[j] = beta * v[j] + alpha * db[j];
        }
        b->applied = apply;
        flops += (double)rows * L->out;
        rd += L->out;
        wr += L->out;
    }
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

/* Per-example squared gradient norms without the per-example gradients
 * where that is cheaper. Example i owns T = rows / N rows of x and dy.
 * With T = 1 its weight gradient is the outer product dy_i x_i^T, whose
 * squared norm is ||x_i||^2 ||dy_i||^2. With T > 1 the gradient is
 * G_i^T X_i (G_i (T, out), X_i (T, in)); its squared norm is the sum of
 * the element-wise product of the Gram matrices X_i X_i^T and G_i G_i^T,
 * T^2 (in + out) multiply-adds against T in out for materialising it, so
 * the cheaper of the two is used. The bias gradient is the column sum of
 * G_i. */
static od_status od__linear_grad_sqnorm(od_layer *l, od_ctx *ctx,
                                        const od_tensor *dy, float *sqnorm)
{
    od__linear *L = (od__linear *)l;
    OD_ASSERT(L->x.data); /* needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));
    od_param *w = l->params[0];
    od_param *b = L->has_bias ? l->params[1] : NULL;
    int want_w = od__wants_grad(w), want_b = od__wants_grad(b);
    int n = L->x.dims[0];
    int rows = (int)(L->x.size / (size_t)L->in);
    int t = rows / n;
    int in = L->in, out = L->out;
    double flops = 0;

    size_t mark = od_arena_mark(ctx->arena);
    void *p = NULL;
    if (t == 1) {
        /* sx (N), sg (N): squared row norms of x and dy. */
        OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                              2 * (size_t)n * sizeof(float), &p));
        float *sx = p, *sg = sx + n;
        od_row_sqnorm(ctx->pool, n, out, dy->data, sg);
        if (want_w)
            od_row_sqnorm(ctx->pool, n, in, L->x.data, sx);
        for (int i = 0; i < n; i++)
            sqnorm[i] += (want_w ? sx[i] * sg[i] : 0.0f)
                         + (want_b ? sg[i] : 0.0f);
        flops = 2.0 * n * (in + out);
    } else {
        int gram = (double)t * (in + out) <= (double)in * out;
        size_t scratch = gram ? 2 * (size_t)t * t : (size_t)in * out;
        OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                              (scratch + (size_t)out) * sizeof(float), &p));
        float *buf = p;                  /* Grams (2, T, T) or (out, in) */
        float *bsum = buf + scratch;     /* (out) */
        for (int i = 0; i < n; i++) {
            const float *xi = L->x.data + (size_t)i * t * in;  /* (T, in) */
            const float *gi = dy->data + (size_t)i * t * out;  /* (T, out) */
            double acc = 0;
            if (want_w && gram) {
                float *gx = buf, *gg = buf + (size_t)t * t;
                od_gemm(NULL, 0, 1, t, t, in, 1.0f, xi, in, xi, in, 0.0f,
                        gx, t);
                od_gemm(NULL, 0, 1, t, t, out, 1.0f, gi, out, gi, out, 0.0f,
                        gg, t);
                for (size_t k = 0; k < (size_t)t * t; k++)
                    acc += (double)gx[k] * gg[k];
            } else if (want_w) {
                od_gemm(NULL, 1, 0, out, in, t, 1.0f, gi, out, xi, in, 0.0f,
                        buf, in);
                acc += od_sumsq((size_t)out * in, buf);
            }
            if (want_b) {
                memset(bsum, 0, (size_t)out * sizeof(float));
                od_sum_rows_ref(t, out, gi, bsum);
                acc += od_sumsq((size_t)out, bsum);
            }
            sqnorm[i] += (float)acc;
        }
        flops = gram ? 2.0 * n * t * t * (in + out + 1)
                     : 2.0 * n * t * in * out;
    }
    od_arena_release(ctx->arena, mark);
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_BACKWARD, flops,
             (double)L->x.size + (double)dy->size, (double)n, t0);
    return OD_OK;
}

/* PyTorch's nn.Linear: kaiming_uniform with a = sqrt(5) on the weight, which
 * is U(-1/sqrt(in), 1/sqrt(in)), and the same bound for the bias. */
static void od__linear_init(od_layer *l, od_rng *rng)
{
    od__linear *L = (od__linear *)l;
    float bound = 1.0f / sqrtf((float)L->in);
    for (int i = 0; i < l->nparams; i++)
        od__fill_uniform(&l->params[i]->value, rng, bound);
}

static void od__linear_destroy(od_layer *l)
{
    od__layer_free(l, ((od__linear *)l)->arena);
}

static const od_layer_vtbl od__linear_vtbl = {
    "linear", od__linear_out_shape, od__linear_forward, od__linear_backward,
    od__linear_init, od__linear_destroy, od__linear_grad_sqnorm, NULL, NULL,
};

od_status od_linear_create(od_ctx *ctx, const char *name, int in, int out,
                           int bias, od_layer **out_layer)
{
    *out_layer = NULL;
    if (in <= 0 || out <= 0)
        return od_fail(OD_ERR_INVALID, "linear '%s': sizes must be positive "
                       "(in %d, out %d)", name ? name : "", in, out);
    od__linear *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__linear_vtbl, name);
    L->base.fresh_grads = 1;
    L->base.applies_update = 1;
    L->arena = ctx->arena;
    L->in = in;
    L->out = out;
    L->has_bias = bias != 0;

    int wd[2] = {out, in};
    od_status st = od__param_new(ctx->arena, L->base.name, "weight", 2, wd,
                                 &L->base.params[L->base.nparams]);
    if (st == OD_OK) {
        L->base.nparams++;
        if (L->has_bias) {
            st = od__param_new(ctx->arena, L->base.name, "bias", 1, &out,
                               &L->base.params[L->base.nparams]);
            if (st == OD_OK)
                L->base.nparams++;
        }
    }
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    *out_layer = &L->base;
    return OD_OK;
}
