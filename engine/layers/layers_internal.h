/* What the layer implementations share: parameter allocation, shape
 * messages, cost records and a few element-wise helpers. Not part of the
 * engine's public interface. */
#ifndef ONDEV_ENGINE_LAYERS_INTERNAL_H
#define ONDEV_ENGINE_LAYERS_INTERNAL_H

#include <math.h>

#include "engine/model.h"

/* Allocate a parameter "<layer>.<suffix>" of the given shape: its value
 * (parameters) and, since parameters start trainable, its gradient
 * (gradients), both zero-filled. */
od_status od__param_new(od_arena *a, const char *layer, const char *suffix,
                        int ndim, const int *dims, od_param **out);
/* Return a parameter's memory to the arena and free it. NULL is ignored. */
void od__param_free(od_arena *a, od_param *p);

/* Fill the layer's header: vtable, name (truncated to fit), no params. */
void od__layer_init(od_layer *l, const od_layer_vtbl *vt, const char *name);
/* Free every parameter of l (from arena a, which may be NULL for layers
 * without parameters) and l itself. */
void od__layer_free(od_layer *l, od_arena *a);

/* Whether a parameter wants a gradient: trainable with its gradient
 * allocated. */
static inline int od__wants_grad(const od_param *p)
{
    return p && p->trainable && p->grad.data;
}

/* "(64, 1, 28, 28)" for a shape given as ndim and dims. */
const char *od__shape_str(int ndim, const int *dims, char *buf, size_t len);

/* OD_ERR_MISMATCH with "<kind> '<name>': expected input <what>, got
 * <shape>". */
od_status od__shape_fail(const od_layer *l, const char *expected, int ndim,
                         const int *dims);

/* Check that a tensor handed to forward or backward has the shape out_shape
 * accepts, or that dy has the shape of the last forward's output. */
od_status od__check_same(const od_layer *l, const char *what,
                         const od_tensor *t, int ndim, const int *dims);

/* One cost record for a layer call; the name is the layer's kind. */
static inline void od__cost(od_ctx *ctx, const od_layer *l, od_op_kind kind,
                            od_phase phase, double flops, double read_floats,
                            double written_floats, uint64_t t0_ns)
{
    od_trace_add(ctx->trace, kind, phase, l->vt->kind, flops,
                 4.0 * read_floats, 4.0 * written_floats,
                 od_now_ns() - t0_ns);
}

static inline float od__sigmoidf(float a)
{
    return 1.0f / (1.0f + expf(-a));
}

/* Run fn(arg, lo, hi) over rows [0, rows) split into contiguous ranges, one
 * per pool thread, or as one range when rows * floats_per_row is too small
 * to pay for waking the pool. fn must write only its own rows, so results
 * do not depend on the split. */
typedef void (*od__rows_fn)(void *arg, int lo, int hi);
void od__parallel_rows(od_pool *pool, int rows, size_t floats_per_row,
                       od__rows_fn fn, void *arg);

/* U(-bound, bound) into every element of t. */
void od__fill_uniform(od_tensor *t, od_rng *rng, float bound);

/* The parameters of a gated recurrent layer with `gates` gates, named and
 * shaped as PyTorch's: weight_ih (G, in), weight_hh (G, H), bias_ih (G),
 * bias_hh (G), G = gates x hidden. On failure the ones made are in
 * l->params[0..l->nparams) for od__layer_free. */
od_status od__rnn_params_new(od_ctx *ctx, od_layer *l, int in, int hidden,
                             int gates);
/* PyTorch's initialisation of them: all U(-1/sqrt(H), 1/sqrt(H)). */
void od__rnn_init(od_layer *l, int hidden, od_rng *rng);

/* The parameter and input gradients of a gated recurrent layer (G = gates
 * x H) from the gradients of its projections: dxp (N*T, G), row n*T + t;
 * dhp (T*N, G), row t*N + n; hs1 (T-1, N, H) the states before steps
 * 1..T-1. Accumulates into the trainable parameters' gradients, writes dx
 * when not NULL, and adds the work done to *flops, *rd and *wr (floats). */
void od__rnn_backward_params(od_ctx *ctx, od_param *w_ih, od_param *w_hh,
                             od_param *b_ih, od_param *b_hh, int N, int T,
                             int I, int H, int G, const float *x,
                             const float *hs1, const float *dxp,
                             const float *dhp, od_tensor *dx, double *flops,
                             double *rd, double *wr);

#endif
