/* Layers that only change the shape: flatten (N, ...) -> (N, rest) and
 * reshape (N, ...) -> (N, dims...). Both return views over their input's
 * data; nothing is copied. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct od__shape {
    od_layer base;
    int ndim;                 /* reshape: target dims without the batch */
    int dims[OD_MAX_DIMS];
    od_tensor x_shape;        /* the last forward's input; shape only */
    od_tensor y_shape;        /* the last forward's output; shape only */
} od__shape;

static od_status od__flatten_out_shape(const od_layer *l, int ndim,
                                       const int *dims, int *out_ndim,
                                       int *out_dims)
{
    if (ndim < 1)
        return od__shape_fail(l, "(N, ...)", ndim, dims);
    *out_ndim = 2;
    out_dims[0] = dims[0];
    out_dims[1] = (int)od_shape_size(ndim - 1, dims + 1);
    return OD_OK;
}

static od_status od__reshape_out_shape(const od_layer *l, int ndim,
                                       const int *dims, int *out_ndim,
                                       int *out_dims)
{
    const od__shape *L = (const od__shape *)l;
    size_t want = od_shape_size(L->ndim, L->dims);
    if (ndim < 1 || od_shape_size(ndim - 1, dims + 1) != want) {
        char buf[96];
        snprintf(buf, sizeof buf, "(N, ...) with %zu elements per example",
                 want);
        return od__shape_fail(l, buf, ndim, dims);
    }
    *out_ndim = L->ndim + 1;
    out_dims[0] = dims[0];
    memcpy(out_dims + 1, L->dims, (size_t)L->ndim * sizeof *dims);
    return OD_OK;
}

static od_status od__shape_forward(od_layer *l, od_ctx *ctx,
                                   const od_tensor *x, od_tensor *y,
                                   int training)
{
    (void)training;
    od__shape *L = (od__shape *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(l->vt->out_shape(l, x->ndim, x->dims, &ndim, dims));
    *y = od_tensor_reshape(x, ndim, dims);
    L->x_shape = *x;
    L->y_shape = *y;
    od__cost(ctx, l, OD_OP_COPY, OD_PHASE_FORWARD, 0, 0, 0, t0);
    return OD_OK;
}

static od_status od__shape_backward(od_layer *l, od_ctx *ctx,
                                    const od_tensor *dy, od_tensor *dx)
{
    od__shape *L = (od__shape *)l;
    OD_ASSERT(L->x_shape.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y_shape.ndim,
                          L->y_shape.dims));
    if (dx)
        *dx = od_tensor_reshape(dy, L->x_shape.ndim, L->x_shape.dims);
    od__cost(ctx, l, OD_OP_COPY, OD_PHASE_BACKWARD, 0, 0, 0, t0);
    return OD_OK;
}

static void od__shape_destroy(od_layer *l) { od__layer_free(l, NULL); }

static const od_layer_vtbl od__flatten_vtbl = {
    "flatten", od__flatten_out_shape, od__shape_forward, od__shape_backward,
    NULL, od__shape_destroy, NULL, NULL, NULL,
};

static const od_layer_vtbl od__reshape_vtbl = {
    "reshape", od__reshape_out_shape, od__shape_forward, od__shape_backward,
    NULL, od__shape_destroy, NULL, NULL, NULL,
};

od_status od_flatten_create(const char *name, od_layer **out_layer)
{
    *out_layer = NULL;
    od__shape *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__flatten_vtbl, name);
    *out_layer = &L->base;
    return OD_OK;
}

od_status od_reshape_create(const char *name, int ndim, const int *dims,
                            od_layer **out_layer)
{
    *out_layer = NULL;
    if (ndim < 1 || ndim >= OD_MAX_DIMS)
        return od_fail(OD_ERR_INVALID, "reshape '%s': %d target dimensions; "
                       "give 1 to %d (the batch dimension is kept)",
                       name ? name : "", ndim, OD_MAX_DIMS - 1);
    for (int i = 0; i < ndim; i++)
        if (dims[i] <= 0)
            return od_fail(OD_ERR_INVALID, "reshape '%s': target dimension "
                           "%d is %d; dimensions must be positive",
                           name ? name : "", i, dims[i]);
    od__shape *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__reshape_vtbl, name);
    L->ndim = ndim;
    memcpy(L->dims, dims, (size_t)ndim * sizeof *dims);
    *out_layer = &L->base;
    return OD_OK;
}
