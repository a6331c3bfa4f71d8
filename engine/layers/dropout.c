/* Inverted dropout: in training each element is kept with probability
 * 1 - p and scaled by 1 / (1 - p), otherwise zeroed; outside training the
 * layer passes its input through unchanged (no copy). The mask depends only
 * on (ctx->seed, ctx->step, the layer's index), so runs repeat and a
 * forward repeated within one step draws the same mask. */
#include "engine/layers/layers_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct od__dropout {
    od_layer base;
    float p;
    int applied;      /* the last forward was in training with p > 0 */
    float *mask;      /* 0 or 1 / (1 - p), one per element, when applied */
    od_tensor shape;  /* the last forward's input; shape only */
} od__dropout;

static od_status od__dropout_out_shape(const od_layer *l, int ndim,
                                       const int *dims, int *out_ndim,
                                       int *out_dims)
{
    if (ndim < 1 || ndim > OD_MAX_DIMS)
        return od__shape_fail(l, "a tensor of 1 to 4 dimensions", ndim, dims);
    *out_ndim = ndim;
    memcpy(out_dims, dims, (size_t)ndim * sizeof *dims);
    return OD_OK;
}

/* The generator for one (seed, step, layer) triple: the step is folded into
 * the seed through an odd multiplier, the layer picks the stream. */
static void od__dropout_rng(const od_ctx *ctx, const od_layer *l, od_rng *r)
{
    uint64_t seed = ctx->seed ^ ((ctx->step + 1) * 0x9E3779B97F4A7C15ull);
    od_rng_seed(r, seed, 0x64726f70ull + (uint64_t)l->index);
}

static od_status od__dropout_forward(od_layer *l, od_ctx *ctx,
                                     const od_tensor *x, od_tensor *y,
                                     int training)
{
    od__dropout *L = (od__dropout *)l;
    uint64_t t0 = od_now_ns();
    L->shape = *x;
    L->applied = training && L->p > 0.0f;
    if (!L->applied) {
        *y = *x;
        od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_FORWARD, 0, 0, 0, t0);
        return OD_OK;
    }
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, y, x->ndim, x->dims));
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT, x->size * sizeof(float),
                          &p));
    L->mask = p;

    od_rng rng;
    od__dropout_rng(ctx, l, &rng);
    float keep = 1.0f / (1.0f - L->p);
    for (size_t i = 0; i < x->size; i++) {
        L->mask[i] = od_rng_uniformf(&rng) >= L->p ? keep : 0.0f;
        y->data[i] = x->data[i] * L->mask[i];
    }
    /* A draw and a compare per element for the mask, and one product. */
    od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_FORWARD, 3.0 * (double)x->size,
             (double)x->size, 2.0 * (double)x->size, t0);
    return OD_OK;
}

static od_status od__dropout_backward(od_layer *l, od_ctx *ctx,
                                      const od_tensor *dy, od_tensor *dx)
{
    od__dropout *L = (od__dropout *)l;
    OD_ASSERT(L->shape.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->shape.ndim,
                          L->shape.dims));
    if (!dx) {
        od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_BACKWARD, 0, 0, 0, t0);
        return OD_OK;
    }
    if (!L->applied) {
        *dx = *dy;
        od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_BACKWARD, 0, 0, 0, t0);
        return OD_OK;
    }
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dx, dy->ndim, dy->dims));
    for (size_t i = 0; i < dy->size; i++)
        dx->data[i] = dy->data[i] * L->mask[i];
    od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_BACKWARD, (double)dy->size,
             2.0 * (double)dy->size, (double)dx->size, t0);
    return OD_OK;
}

static void od__dropout_destroy(od_layer *l) { od__layer_free(l, NULL); }

static const od_layer_vtbl od__dropout_vtbl = {
    "dropout", od__dropout_out_shape, od__dropout_forward,
    od__dropout_backward, NULL, od__dropout_destroy, NULL, NULL, NULL,
};

od_status od_dropout_create(const char *name, float p, od_layer **out_layer)
{
    *out_layer = NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return od_fail(OD_ERR_INVALID, "dropout '%s': probability %g is "
                       "outside [0, 1)", name ? name : "", (double)p);
    od__dropout *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__dropout_vtbl, name);
    L->p = p;
    *out_layer = &L->base;
    return OD_OK;
}
