/* Layers, models and the training context.
 *
 * A model is a sequence of layers. Forward runs them in order and each layer
 * keeps what its backward needs (in step-lifetime arena memory, category
 * activations); backward runs them in reverse and accumulates parameter
 * gradients. Every layer call appends a cost record to the context's trace.
 *
 * Token ids (embedding input) travel in float tensors; ids are exact up to
 * 2^24, far above any vocabulary used here. */
#ifndef ONDEV_ENGINE_MODEL_H
#define ONDEV_ENGINE_MODEL_H

#include "engine/arena.h"
#include "engine/cost.h"
#include "engine/kernels.h"
#include "engine/pool.h"
#include "engine/rng.h"
#include "engine/tensor.h"

/* What every op needs: where memory comes from, where work runs, where costs
 * go. seed drives dropout masks; step is advanced by the caller each step so
 * that masks differ between steps yet repeat between runs. */
typedef struct od_ctx {
    od_arena *arena;
    od_pool *pool;    /* may be NULL: one thread */
    od_trace *trace;  /* may be NULL: no records */
    uint64_t seed;
    uint64_t step;
    /* Set by od_model_backward_fresh while a layer whose fresh_grads is set
     * runs its backward: it then sets its parameters' gradients instead of
     * adding to them. */
    int fresh_grads;
    /* Set by od_model_backward_apply while a layer whose applies_update is
     * set runs its backward: instead of forming its trainable parameters'
     * gradients it updates the parameters, p = apply_beta p + apply_alpha
     * grad, and sets their `applied` flags. */
    int apply_update;
    float apply_alpha, apply_beta;
} od_ctx;

typedef struct od_param {
    char name[48];     /* "conv1.weight" */
    od_tensor value;   /* arena category: parameters */
    od_tensor grad;    /* arena category: gradients (allocated only when trainable) */
    int trainable;     /* 0: frozen; no gradient is kept or applied */
    int applied;       /* updated by the last backward (ctx->apply_update);
                          the next od_optim_step leaves it alone */
} od_param;

typedef struct od_layer od_layer;

typedef struct od_layer_vtbl {
    const char *kind;  /* "linear", "conv2d", ... */
    /* Output shape for an input shape; OD_ERR_MISMATCH with a message when the
     * input does not fit the layer. */
    od_status (*out_shape)(const od_layer *l, int ndim, const int *dims,
                           int *out_ndim, int *out_dims);
    /* y is allocated by the layer from ctx->arena (activations). */
    od_status (*forward)(od_layer *l, od_ctx *ctx, const od_tensor *x,
                         od_tensor *y, int training);
    /* Accumulates into the gradients of trainable parameters. When dx is not
     * NULL, allocates and writes the gradient of the input. */
    od_status (*backward)(od_layer *l, od_ctx *ctx, const od_tensor *dy,
                          od_tensor *dx);
    /* Initialise parameters as PyTorch's defaults for the layer. */
    void (*init)(od_layer *l, od_rng *rng);
    void (*destroy)(od_layer *l);
    /* Optional (NULL: engine/pergrad.c materialises each example's gradient
     * instead). Adds to sqnorm[i] (N) the squared norm of example i's
     * gradient of the layer's trainable parameters, from the last forward
     * and dy (N, ...), the output gradient whose rows for example i come
     * from example i's loss alone. Leaves parameter gradients untouched. */
    od_status (*grad_sqnorm)(od_layer *l, od_ctx *ctx, const od_tensor *dy,
                             float *sqnorm);
    /* Optional (NULL: engine/pergrad.c scales dy's example rows and runs
     * backward without dx). Adds to the parameter gradients the sum over
     * examples i of scale[i] times example i's gradient, from the last
     * forward and dy (N, ...); may overwrite dy. */
    od_status (*scaled_backward)(od_layer *l, od_ctx *ctx, od_tensor *dy,
                                 const float *scale);
    /* Optional (NULL: grad_sqnorm, then the clipped sum as above). With
     * sqnorm[i] (N) holding on entry the squared norms of example i's
     * gradients of every other layer: adds the layer's own, and adds to
     * its parameter gradients the sum over examples of
     * od_clip_factor(sqnorm[i], clip) times example i's gradient, in one
     * pass. engine/pergrad.c gives this to one layer of a model, the one
     * with the most parameters among those that offer it. */
    od_status (*clipped_grad)(od_layer *l, od_ctx *ctx, const od_tensor *dy,
                              float clip, float *sqnorm);
} od_layer_vtbl;

#define OD_LAYER_MAX_PARAMS 8

struct od_layer {
    const od_layer_vtbl *vt;
    char name[32];                   /* "fc1", "conv2", ... */
    od_param *params[OD_LAYER_MAX_PARAMS];
    int nparams;
    int index;                       /* position in its model (set by
                                        od_model_add; 0 when standalone):
                                        seeds dropout masks */
    int fresh_grads;                 /* backward honours ctx->fresh_grads */
    int applies_update;              /* backward honours ctx->apply_update */
};

/* ---- Layer constructors (engine/layers/) ---------------------------------
 * Each allocates its parameters from ctx->arena and returns OD_OK with *out
 * set, or a status with a message. Names prefix the parameters' names. */

/* y (..., out) = x (..., in) W^T + b; W (out, in), b (out). */
od_status od_linear_create(od_ctx *ctx, const char *name, int in, int out,
                           int bias, od_layer **out_layer);
/* x (N, C_in, H, W) -> y (N, C_out, OH, OW). */
od_status od_conv2d_create(od_ctx *ctx, const char *name, int c_in, int c_out,
                           int kh, int kw, int stride, int pad, int bias,
                           od_layer **out_layer);
od_status od_maxpool2d_create(const char *name, int k, int stride,
                              od_layer **out_layer);
od_status od_avgpool2d_create(const char *name, int k, int stride,
                              od_layer **out_layer);
/* ReLU then max pooling as one layer (kind "relu+maxpool2d"): the same
 * values and gradients as an activation layer followed by a maxpool2d
 * layer, without storing or reading the full-size ReLU output. */
od_status od_relu_maxpool2d_create(const char *name, int k, int stride,
                                   od_layer **out_layer);
od_status od_activation_create(const char *name, od_act act,
                               od_layer **out_layer);
/* Inverted dropout: kept units are scaled by 1 / (1 - p) in training. */
od_status od_dropout_create(const char *name, float p, od_layer **out_layer);
/* ids (N, T) -> (N, T, dim). */
od_status od_embedding_create(od_ctx *ctx, const char *name, int vocab,
                              int dim, od_layer **out_layer);
/* Normalises over the last dimension, with learnable scale and shift. */
od_status od_layernorm_create(od_ctx *ctx, const char *name, int dim,
                              float eps, od_layer **out_layer);
/* GRU as PyTorch's (gates r, z, n), unrolled over time from a zero state:
 * x (N, T, in) -> (N, T, hidden), or (N, hidden) for the last step only. */
od_status od_gru_create(od_ctx *ctx, const char *name, int in, int hidden,
                        int return_sequences, od_layer **out_layer);
/* LSTM as PyTorch's (gates i, f, g, o), same shapes as the GRU. */
od_status od_lstm_create(od_ctx *ctx, const char *name, int in, int hidden,
                         int return_sequences, od_layer **out_layer);
/* (N, ...) -> (N, product of the rest). */
od_status od_flatten_create(const char *name, od_layer **out_layer);
/* (N, ...) -> (N, dims...): dims exclude the batch dimension. */
od_status od_reshape_create(const char *name, int ndim, const int *dims,
                            od_layer **out_layer);

/* ---- Models ---------------------------------------------------------------- */
typedef struct od_model {
    od_ctx *ctx;
    od_layer **layers;
    int nlayers, cap;
    od_param **params;   /* every layer's parameters, in layer order */
    int nparams;
    od_tensor *outs;     /* each layer's output from the last forward */
    od_tensor input;     /* the last forward's input (not owned) */
} od_model;

od_status od_model_create(od_ctx *ctx, od_model **out);
/* Appends a layer; the model owns it from then on, even on failure. */
od_status od_model_add(od_model *m, od_layer *l);
void od_model_destroy(od_model *m);

/* Initialise every layer's parameters from seed (PyTorch's defaults). */
void od_model_init(od_model *m, uint64_t seed);
/* Check an input shape against every layer; writes the output shape. */
od_status od_model_check_shape(const od_model *m, int ndim, const int *dims,
                               int *out_ndim, int *out_dims);

od_status od_model_forward(od_model *m, const od_tensor *x, int training,
                           od_tensor *out);
/* Backward from the gradient of the last forward's output. */
od_status od_model_backward(od_model *m, const od_tensor *dout);
/* As od_model_backward, and also allocates (activations) and writes the
 * gradient of the last forward's input into dx when dx is not NULL. */
od_status od_model_backward_input(od_model *m, const od_tensor *dout,
                                  od_tensor *dx);
void od_model_zero_grad(od_model *m);
/* Clear layer l's gradients; with set_whole, only those of its frozen
 * parameters, when a backward with ctx->fresh_grads will set the others
 * whole. */
void od_layer_zero_grad(od_layer *l, int set_whole);
/* od_model_zero_grad then od_model_backward, without clearing the
 * gradients that the backward pass sets whole anyway (the layers that
 * honour ctx->fresh_grads: linear), which saves a pass over them. */
od_status od_model_backward_fresh(od_model *m, const od_tensor *dout);
/* od_model_backward_fresh, except that the layers that can (linear) do not
 * form their trainable parameters' gradients but update the parameters
 * with them at once, p = beta p + alpha grad, and set their `applied`
 * flags; their gradient buffers are left as they were. The update is
 * folded into the weight-gradient product (C = alpha A B + beta C on the
 * weights), which saves writing the gradients and the optimiser's pass
 * over them. For a plain SGD step; od_optim_fusable gives alpha and beta,
 * and the od_optim_step that follows updates only the other parameters. */
od_status od_model_backward_apply(od_model *m, const od_tensor *dout,
                                  float alpha, float beta);

/* Mean softmax cross-entropy of logits (..., classes) against labels (one per
 * row; -1 ignores a row). Writes the mean loss and the number of rows counted;
 * when dlogits is not NULL, allocates it (activations) and writes the gradient
 * of the mean. Optional: correct (rows whose argmax equals the label). */
od_status od_model_xent(od_model *m, const od_tensor *logits,
                        const int32_t *labels, double *mean_loss, int *count,
                        int *correct, od_tensor *dlogits);

size_t od_model_param_count(const od_model *m, int trainable_only);
/* Set the trainable flag of every parameter whose name starts with prefix
 * (NULL: all). Gradients are allocated on demand. Returns how many matched. */
int od_model_set_trainable(od_model *m, const char *prefix, int trainable);
/* One line per layer: name, kind, output shape, parameters. */
void od_model_summary(const od_model *m, int ndim, const int *in_dims,
                      char *buf, size_t len);

#endif
