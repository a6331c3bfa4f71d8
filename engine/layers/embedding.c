/* Embedding lookup: ids (N, T) -> (N, T, dim) rows of a table (vocab, dim).
 * Ids travel in a float tensor (exact up to 2^24); any id that is not an
 * integer in [0, vocab) is refused with a status. Ids have no gradient: a
 * requested input gradient is all zeros. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od__embedding {
    od_layer base;
    od_arena *arena;
    int vocab, dim;
    od_tensor ids;  /* the last forward's input (not owned) */
    od_tensor y;    /* the last forward's output */
} od__embedding;

static od_status od__embedding_out_shape(const od_layer *l, int ndim,
                                         const int *dims, int *out_ndim,
                                         int *out_dims)
{
    const od__embedding *L = (const od__embedding *)l;
    if (ndim < 1 || ndim >= OD_MAX_DIMS)
        return od__shape_fail(l, "ids (N, T)", ndim, dims);
    *out_ndim = ndim + 1;
    memcpy(out_dims, dims, (size_t)ndim * sizeof *dims);
    out_dims[ndim] = L->dim;
    return OD_OK;
}

static od_status od__embedding_forward(od_layer *l, od_ctx *ctx,
                                       const od_tensor *x, od_tensor *y,
                                       int training)
{
    (void)training;
    od__embedding *L = (od__embedding *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__embedding_out_shape(l, x->ndim, x->dims, &ndim, dims));
    for (size_t i = 0; i < x->size; i++) {
        float id = x->data[i];
        if (!(id >= 0.0f && id < (float)L->vocab && id == floorf(id)))
            return od_fail(OD_ERR_INVALID, "embedding '%s': id %g at "
                           "position %zu is not an integer in [0, %d)",
                           l->name, (double)id, i, L->vocab);
    }
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    const float *table = l->params[0]->value.data; /* (vocab, dim) */
    size_t row_bytes = (size_t)L->dim * sizeof(float);
    for (size_t i = 0; i < x->size; i++)
        memcpy(y->data + i * L->dim, table + (size_t)x->data[i] * L->dim,
               row_bytes);

    L->ids = *x;
    L->y = *y;
    od__cost(ctx, l, OD_OP_EMBED, OD_PHASE_FORWARD, 0.0,
             (double)x->size + (double)y->size, (double)y->size, t0);
    return OD_OK;
}

static od_status od__embedding_backward(od_layer *l, od_ctx *ctx,
                                        const od_tensor *dy, od_tensor *dx)
{
    od__embedding *L = (od__embedding *)l;
    OD_ASSERT(L->ids.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));

    od_param *w = l->params[0];
    double flops = 0, rd = 0, wr = 0;
    /* Scatter-add each row of dy into the row of its id, in input order. */
    if (od__wants_grad(w)) {
        for (size_t i = 0; i < L->ids.size; i++) {
            float *g = w->grad.data + (size_t)L->ids.data[i] * L->dim;
            const float *d = dy->data + i * L->dim;
            for (int j = 0; j < L->dim; j++)
                g[j] += d[j];
        }
        flops += (double)dy->size;
        rd += (double)L->ids.size + 2.0 * (double)dy->size;
        wr += (double)dy->size;
    }
    if (dx) {
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dx, L->ids.ndim,
                               L->ids.dims));
        wr += (double)dx->size;
    }
    od__cost(ctx, l, OD_OP_EMBED, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

/* PyTorch's nn.Embedding: N(0, 1). */
static void od__embedding_init(od_layer *l, od_rng *rng)
{
    od_tensor *t = &l->params[0]->value;
    for (size_t i = 0; i < t->size; i++)
        t->data[i] = (float)od_rng_normal(rng);
}

static void od__embedding_destroy(od_layer *l)
{
    od__layer_free(l, ((od__embedding *)l)->arena);
}

static const od_layer_vtbl od__embedding_vtbl = {
    "embedding", od__embedding_out_shape, od__embedding_forward,
    od__embedding_backward, od__embedding_init, od__embedding_destroy,
    NULL, NULL, NULL,
};

od_status od_embedding_create(od_ctx *ctx, const char *name, int vocab,
                              int dim, od_layer **out_layer)
{
    *out_layer = NULL;
    if (vocab <= 0 || dim <= 0 || vocab > (1 << 24))
        return od_fail(OD_ERR_INVALID, "embedding '%s': vocabulary (%d) must "
                       "be in [1, 2^24] and dimension (%d) positive",
                       name ? name : "", vocab, dim);
    od__embedding *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__embedding_vtbl, name);
    L->arena = ctx->arena;
    L->vocab = vocab;
    L->dim = dim;
    int wd[2] = {vocab, dim};
    od_status st = od__param_new(ctx->arena, L->base.name, "weight", 2, wd,
                                 &L->base.params[0]);
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    L->base.nparams = 1;
    *out_layer = &L->base;
    return OD_OK;
}
