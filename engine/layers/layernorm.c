/* Layer normalisation over the last dimension D, as PyTorch's nn.LayerNorm:
 * y = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased variance,
 * gamma ("weight", D) starting at 1 and beta ("bias", D) at 0. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od__layernorm {
    od_layer base;
    od_arena *arena;
    int dim;
    float eps;
    od_tensor xhat;  /* normalised input, shape of the input */
    float *rstd;     /* (rows) 1 / sqrt(var + eps) */
} od__layernorm;

static od_status od__layernorm_out_shape(const od_layer *l, int ndim,
                                         const int *dims, int *out_ndim,
                                         int *out_dims)
{
    const od__layernorm *L = (const od__layernorm *)l;
    if (ndim < 1 || dims[ndim - 1] != L->dim) {
        char want[48];
        snprintf(want, sizeof want, "(..., %d)", L->dim);
        return od__shape_fail(l, want, ndim, dims);
    }
    *out_ndim = ndim;
    memcpy(out_dims, dims, (size_t)ndim * sizeof *dims);
    return OD_OK;
}

static od_status od__layernorm_forward(od_layer *l, od_ctx *ctx,
                                       const od_tensor *x, od_tensor *y,
                                       int training)
{
    (void)training;
    od__layernorm *L = (od__layernorm *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__layernorm_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, y, ndim, dims));
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, &L->xhat, ndim, dims));
    size_t rows = x->size / (size_t)L->dim;
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT, rows * sizeof(float), &p));
    L->rstd = p;

    const float *gamma = l->params[0]->value.data; /* (D) */
    const float *beta = l->params[1]->value.data;  /* (D) */
    int d = L->dim;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * d;
        float *hr = L->xhat.data + r * d, *yr = y->data + r * d;

        /* Mean and biased variance in double, two passes. */
        double mean = 0, var = 0;
        for (int j = 0; j < d; j++)
            mean += xr[j];
        mean /= d;
        for (int j = 0; j < d; j++)
            var += (xr[j] - mean) * (xr[j] - mean);
        var /= d;
        float rstd = (float)(1.0 / sqrt(var + L->eps));

        L->rstd[r] = rstd;
        for (int j = 0; j < d; j++) {
            hr[j] = (float)(xr[j] - mean) * rstd;
            yr[j] = hr[j] * gamma[j] + beta[j];
        }
    }
    /* Per element: 1 add (mean), 3 (variance), 2 (normalise), 2 (affine). */
    od__cost(ctx, l, OD_OP_NORM, OD_PHASE_FORWARD, 8.0 * (double)x->size,
             (double)x->size + 2.0 * d, 2.0 * (double)x->size + rows, t0);
    return OD_OK;
}

static od_status od__layernorm_backward(od_layer *l, od_ctx *ctx,
                                        const od_tensor *dy, od_tensor *dx)
{
    od__layernorm *L = (od__layernorm *)l;
    OD_ASSERT(L->xhat.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->xhat.ndim,
                          L->xhat.dims));

    od_param *g = l->params[0], *b = l->params[1];
    int d = L->dim;
    size_t rows = dy->size / (size_t)d;
    double flops = 0, rd = (double)dy->size, wr = 0;

    /* dgamma += sum over rows of dy * xhat; dbeta += sum of dy. */
    if (od__wants_grad(g)) {
        for (size_t r = 0; r < rows; r++) {
            const float *dyr = dy->data + r * d, *hr = L->xhat.data + r * d;
            for (int j = 0; j < d; j++)
                g->grad.data[j] += dyr[j] * hr[j];
        }
        flops += 2.0 * (double)dy->size;
        rd += (double)dy->size + d;
        wr += d;
    }
    if (od__wants_grad(b)) {
        od_sum_rows(ctx->pool, (int)rows, d, dy->data, b->grad.data);
        flops += (double)dy->size;
        rd += d;
        wr += d;
    }

    /* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
    if (dx) {
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dx, dy->ndim,
                               dy->dims));
        const float *gamma = g->value.data;
        for (size_t r = 0; r < rows; r++) {
            const float *dyr = dy->data + r * d;
            const float *hr = L->xhat.data + r * d;
            float *dxr = dx->data + r * d;
            double m1 = 0, m2 = 0;
            for (int j = 0; j < d; j++) {
                double gj = (double)dyr[j] * gamma[j];
                m1 += gj;
                m2 += gj * hr[j];
            }
            m1 /= d;
            m2 /= d;
            for (int j = 0; j < d; j++) {
                double gj = (double)dyr[j] * gamma[j];
                dxr[j] = (float)(L->rstd[r] * (gj - m1 - hr[j] * m2));
            }
        }
        flops += 10.0 * (double)dy->size;
        rd += (double)dy->size + d + rows;
        wr += (double)dx->size;
    }
    od__cost(ctx, l, OD_OP_NORM, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

static void od__layernorm_init(od_layer *l, od_rng *rng)
{
    (void)rng;
    od_tensor *g = &l->params[0]->value, *b = &l->params[1]->value;
    for (size_t i = 0; i < g->size; i++) {
        g->data[i] = 1.0f;
        b->data[i] = 0.0f;
    }
}

static void od__layernorm_destroy(od_layer *l)
{
    od__layer_free(l, ((od__layernorm *)l)->arena);
}

static const od_layer_vtbl od__layernorm_vtbl = {
    "layernorm", od__layernorm_out_shape, od__layernorm_forward,
    od__layernorm_backward, od__layernorm_init, od__layernorm_destroy,
    NULL, NULL, NULL,
};

od_status od_layernorm_create(od_ctx *ctx, const char *name, int dim,
                              float eps, od_layer **out_layer)
{
    *out_layer = NULL;
    if (dim <= 0 || !(eps > 0.0f))
        return od_fail(OD_ERR_INVALID, "layernorm '%s': dimension (%d) and "
                       "eps (%g) must be positive", name ? name : "", dim,
                       (double)eps);
    od__layernorm *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__layernorm_vtbl, name);
    L->arena = ctx->arena;
    L->dim = dim;
    L->eps = eps;
    od_status st = od__param_new(ctx->arena, L->base.name, "weight", 1, &dim,
                                 &L->base.params[0]);
    if (st == OD_OK) {
        L->base.nparams = 1;
        st = od__param_new(ctx->arena, L->base.name, "bias", 1, &dim,
                           &L->base.params[1]);
        if (st == OD_OK)
            L->base.nparams = 2;
    }
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    od__layernorm_init(&L->base, NULL);
    *out_layer = &L->base;
    return OD_OK;
}
