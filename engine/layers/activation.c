/* Element-wise activations (ReLU, tanh, sigmoid, exact GELU) over tensors of
 * any shape, through the od_act_* kernels. */
#include "engine/layers/layers_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct od__activation {
    od_layer base;
    od_act act;
    od_tensor x;  /* the last forward's input (not owned) */
    od_tensor y;  /* the last forward's output */
} od__activation;

/* Nominal floating-point operations per element, forward and backward, so
 * that the cost model sees transcendental activations as dearer than ReLU:
 * ReLU a compare; tanh and sigmoid an exponential (counted as 4) plus a
 * few arithmetic operations; GELU an erf (counted as 8) and 4 more. */
static const double od__act_fwd_flops[] = {1.0, 6.0, 6.0, 12.0};
static const double od__act_bwd_flops[] = {1.0, 3.0, 3.0, 16.0};

static od_status od__activation_out_shape(const od_layer *l, int ndim,
                                          const int *dims, int *out_ndim,
                                          int *out_dims)
{
    if (ndim < 1 || ndim > OD_MAX_DIMS)
        return od__shape_fail(l, "a tensor of 1 to 4 dimensions", ndim, dims);
    *out_ndim = ndim;
    memcpy(out_dims, dims, (size_t)ndim * sizeof *dims);
    return OD_OK;
}

static od_status od__activation_forward(od_layer *l, od_ctx *ctx,
                                        const od_tensor *x, od_tensor *y,
                                        int training)
{
    (void)training;
    od__activation *L = (od__activation *)l;
    uint64_t t0 = od_now_ns();
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, y, x->ndim, x->dims));
    od_act_forward(ctx->pool, L->act, x->size, x->data, y->data);
    L->x = *x;
    L->y = *y;
    od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_FORWARD,
             od__act_fwd_flops[L->act] * (double)x->size, (double)x->size,
             (double)y->size, t0);
    return OD_OK;
}

static od_status od__activation_backward(od_layer *l, od_ctx *ctx,
                                         const od_tensor *dy, od_tensor *dx)
{
    od__activation *L = (od__activation *)l;
    OD_ASSERT(L->x.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));
    if (!dx) {
        od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_BACKWARD, 0, 0, 0, t0);
        return OD_OK;
    }
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, dx, L->x.ndim, L->x.dims));
    od_act_backward(ctx->pool, L->act, dy->size, L->x.data, L->y.data,
                    dy->data, dx->data);
    /* ReLU and GELU read x, tanh and sigmoid read y, all read dy. */
    od__cost(ctx, l, OD_OP_ELTWISE, OD_PHASE_BACKWARD,
             od__act_bwd_flops[L->act] * (double)dy->size,
             2.0 * (double)dy->size, (double)dx->size, t0);
    return OD_OK;
}

static void od__activation_destroy(od_layer *l) { od__layer_free(l, NULL); }

#define OD__ACT_VTBL(kind)                                                  \
    {                                                                       \
        kind, od__activation_out_shape, od__activation_forward,            \
            od__activation_backward, NULL, od__activation_destroy, NULL,   \
            NULL, NULL,                                                    \
    }

static const od_layer_vtbl od__act_vtbls[] = {
    [OD_ACT_RELU] = OD__ACT_VTBL("relu"),
    [OD_ACT_TANH] = OD__ACT_VTBL("tanh"),
    [OD_ACT_SIGMOID] = OD__ACT_VTBL("sigmoid"),
    [OD_ACT_GELU] = OD__ACT_VTBL("gelu"),
};

od_status od_activation_create(const char *name, od_act act,
                               od_layer **out_layer)
{
    *out_layer = NULL;
    if ((int)act < 0 || act > OD_ACT_GELU)
        return od_fail(OD_ERR_INVALID, "activation '%s': unknown function %d",
                       name ? name : "", (int)act);
    od__activation *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__act_vtbls[act], name);
    L->act = act;
    *out_layer = &L->base;
    return OD_OK;
}
