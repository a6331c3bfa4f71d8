/* 2-D max and average pooling over square windows, without padding (as
 * PyTorch's nn.MaxPool2d / nn.AvgPool2d with padding 0 and floor mode):
 * x (N, C, H, W) -> y (N, C, OH, OW), OH = (H - K) / S + 1. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct od__pool2d {
    od_layer base;
    int is_max, k, stride;
    int relu;               /* max pooling of ReLU(x), in one pass */
    od_pool2d_shape shape;  /* of the last forward */
    int32_t *argmax;        /* (N, C, OH, OW), max pooling only */
    od_tensor x_shape;      /* the last forward's input; shape only */
    od_tensor y_shape;      /* the last forward's output; shape only */
} od__pool2d;

static od_status od__pool2d_out_shape(const od_layer *l, int ndim,
                                      const int *dims, int *out_ndim,
                                      int *out_dims)
{
    const od__pool2d *L = (const od__pool2d *)l;
    if (ndim != 4 || dims[2] < L->k || dims[3] < L->k) {
        char want[64];
        snprintf(want, sizeof want, "(N, C, H, W) with H, W >= %d", L->k);
        return od__shape_fail(l, want, ndim, dims);
    }
    *out_ndim = 4;
    out_dims[0] = dims[0];
    out_dims[1] = dims[1];
    out_dims[2] = (dims[2] - L->k) / L->stride + 1;
    out_dims[3] = (dims[3] - L->k) / L->stride + 1;
    return OD_OK;
}

static od_status od__pool2d_forward(od_layer *l, od_ctx *ctx,
                                    const od_tensor *x, od_tensor *y,
                                    int training)
{
    (void)training;
    od__pool2d *L = (od__pool2d *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__pool2d_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    od_pool2d_shape s = {
        .n = x->dims[0], .c = x->dims[1], .h = x->dims[2], .w = x->dims[3],
        .kh = L->k, .kw = L->k, .stride_h = L->stride, .stride_w = L->stride,
    };
    double window = (double)L->k * L->k;
    double written = (double)y->size;
    if (L->is_max) {
        void *p = NULL;
        OD_TRY(od_arena_alloc_uninit(ctx->arena, OD_MEM_ACT,
                                     y->size * sizeof(int32_t), &p));
        L->argmax = p;
        if (L->relu)
            od_relu_maxpool2d_forward(ctx->pool, &s, x->data, y->data,
                                      L->argmax);
        else
            od_maxpool2d_forward(ctx->pool, &s, x->data, y->data, L->argmax);
        written += (double)y->size; /* the argmax indices */
    } else {
        L->argmax = NULL;
        od_avgpool2d_forward(ctx->pool, &s, x->data, y->data);
    }
    L->shape = s;
    L->x_shape = *x;
    L->y_shape = *y;
    /* One comparison (max) or addition (average) per window element; the
     * average adds one scaling per output. */
    double flops = (double)y->size * window +
                   (L->is_max && !L->relu ? 0 : (double)y->size);
    od__cost(ctx, l, OD_OP_POOL, OD_PHASE_FORWARD, flops, (double)x->size,
             written, t0);
    return OD_OK;
}

static od_status od__pool2d_backward(od_layer *l, od_ctx *ctx,
                                     const od_tensor *dy, od_tensor *dx)
{
    od__pool2d *L = (od__pool2d *)l;
    OD_ASSERT(L->x_shape.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y_shape.ndim,
                          L->y_shape.dims));
    if (!dx) {
        od__cost(ctx, l, OD_OP_POOL, OD_PHASE_BACKWARD, 0, 0, 0, t0);
        return OD_OK;
    }
    OD_TRY(od_tensor_alloc_uninit(ctx->arena, OD_MEM_ACT, dx, L->x_shape.ndim,
                           L->x_shape.dims));
    double flops, rd = (double)dy->size;
    if (L->is_max) {
        od_maxpool2d_backward(ctx->pool, &L->shape, dy->data, L->argmax,
                              dx->data);
        flops = (double)dy->size;
        rd += (double)dy->size; /* the argmax indices */
    } else {
        od_avgpool2d_backward(ctx->pool, &L->shape, dy->data, dx->data);
        flops = (double)dy->size * (1.0 + (double)L->k * L->k);
    }
    od__cost(ctx, l, OD_OP_POOL, OD_PHASE_BACKWARD, flops, rd,
             (double)dx->size, t0);
    return OD_OK;
}

static void od__pool2d_destroy(od_layer *l) { od__layer_free(l, NULL); }

static const od_layer_vtbl od__maxpool2d_vtbl = {
    "maxpool2d", od__pool2d_out_shape, od__pool2d_forward,
    od__pool2d_backward, NULL, od__pool2d_destroy, NULL, NULL, NULL,
};

static const od_layer_vtbl od__avgpool2d_vtbl = {
    "avgpool2d", od__pool2d_out_shape, od__pool2d_forward,
    od__pool2d_backward, NULL, od__pool2d_destroy, NULL, NULL, NULL,
};

static const od_layer_vtbl od__relu_maxpool2d_vtbl = {
    "relu+maxpool2d", od__pool2d_out_shape, od__pool2d_forward,
    od__pool2d_backward, NULL, od__pool2d_destroy, NULL, NULL, NULL,
};

static od_status od__pool2d_create(const od_layer_vtbl *vt, const char *name,
                                   int k, int stride, od_layer **out_layer)
{
    *out_layer = NULL;
    if (k <= 0 || stride <= 0)
        return od_fail(OD_ERR_INVALID, "%s '%s': window and stride must be "
                       "positive (window %d, stride %d)", vt->kind,
                       name ? name : "", k, stride);
    od__pool2d *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, vt, name);
    L->relu = vt == &od__relu_maxpool2d_vtbl;
    L->is_max = vt == &od__maxpool2d_vtbl || L->relu;
    L->k = k;
    L->stride = stride;
    *out_layer = &L->base;
    return OD_OK;
}

od_status od_maxpool2d_create(const char *name, int k, int stride,
                              od_layer **out_layer)
{
    return od__pool2d_create(&od__maxpool2d_vtbl, name, k, stride, out_layer);
}

od_status od_avgpool2d_create(const char *name, int k, int stride,
                              od_layer **out_layer)
{
    return od__pool2d_create(&od__avgpool2d_vtbl, name, k, stride, out_layer);
}

od_status od_relu_maxpool2d_create(const char *name, int k, int stride,
                                   od_layer **out_layer)
{
    return od__pool2d_create(&od__relu_maxpool2d_vtbl, name, k, stride,
                             out_layer);
}
