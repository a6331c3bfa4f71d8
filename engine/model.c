/* Models: a sequence of layers with forward, backward, the loss, and
 * bookkeeping over the parameters (counts, freezing, a summary). */
#include "engine/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

od_status od_model_create(od_ctx *ctx, od_model **out)
{
    OD_ASSERT(ctx && ctx->arena && out);
    *out = NULL;
    od_model *m = calloc(1, sizeof *m);
    if (!m)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a model");
    m->ctx = ctx;
    *out = m;
    return OD_OK;
}

od_status od_model_add(od_model *m, od_layer *l)
{
    OD_ASSERT(m && l);
    if (m->nlayers == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        od_layer **layers = realloc(m->layers, (size_t)cap * sizeof *layers);
        if (layers)
            m->layers = layers;
        od_tensor *outs = layers ? realloc(m->outs, (size_t)cap * sizeof *outs)
                                 : NULL;
        if (!layers || !outs) {
            l->vt->destroy(l);
            return od_fail(OD_ERR_NOMEM, "out of host memory for a model");
        }
        m->outs = outs;
        m->cap = cap;
    }
    od_param **params = realloc(m->params, (size_t)(m->nparams + l->nparams + 1)
                                               * sizeof *params);
    if (!params) {
        l->vt->destroy(l);
        return od_fail(OD_ERR_NOMEM, "out of host memory for a model");
    }
    m->params = params;
    for (int i = 0; i < l->nparams; i++)
        m->params[m->nparams++] = l->params[i];

    l->index = m->nlayers;
    memset(&m->outs[m->nlayers], 0, sizeof m->outs[0]);
    m->layers[m->nlayers++] = l;
    return OD_OK;
}

void od_model_destroy(od_model *m)
{
    if (!m)
        return;
    for (int i = m->nlayers - 1; i >= 0; i--)
        m->layers[i]->vt->destroy(m->layers[i]);
    free(m->layers);
    free(m->outs);
    free(m->params);
    free(m);
}

void od_model_init(od_model *m, uint64_t seed)
{
    for (int i = 0; i < m->nlayers; i++) {
        od_layer *l = m->layers[i];
        if (!l->vt->init)
            continue;
        od_rng rng;
        od_rng_seed(&rng, seed, (uint64_t)i);  /* one stream per layer */
        l->vt->init(l, &rng);
    }
}

od_status od_model_check_shape(const od_model *m, int ndim, const int *dims,
                               int *out_ndim, int *out_dims)
{
    int cur_ndim = ndim, cur[OD_MAX_DIMS] = {0};
    if (ndim < 1 || ndim > OD_MAX_DIMS)
        return od_fail(OD_ERR_MISMATCH, "model input has %d dimensions; "
                       "1 to %d are supported", ndim, OD_MAX_DIMS);
    memcpy(cur, dims, (size_t)ndim * sizeof *dims);
    for (int i = 0; i < m->nlayers; i++) {
        const od_layer *l = m->layers[i];
        int next_ndim = 0, next[OD_MAX_DIMS] = {0};
        OD_TRY(l->vt->out_shape(l, cur_ndim, cur, &next_ndim, next));
        cur_ndim = next_ndim;
        memcpy(cur, next, sizeof cur);
    }
    *out_ndim = cur_ndim;
    memcpy(out_dims, cur, (size_t)cur_ndim * sizeof *cur);
    return OD_OK;
}

od_status od_model_forward(od_model *m, const od_tensor *x, int training,
                           od_tensor *out)
{
    m->input = *x;
    const od_tensor *cur = x;
    for (int i = 0; i < m->nlayers; i++) {
        od_layer *l = m->layers[i];
        OD_TRY(l->vt->forward(l, m->ctx, cur, &m->outs[i], training));
        cur = &m->outs[i];
    }
    *out = *cur;
    return OD_OK;
}

/* How a backward pass treats the parameter gradients: adds to them, sets
 * them (clearing those it would not set whole), or, where a layer can,
 * applies the update they feed instead (od_model_backward_apply). */
typedef enum od__grad_mode {
    OD__GRAD_ADD,
    OD__GRAD_FRESH,
    OD__GRAD_APPLY
} od__grad_mode;

static od_status od__backward(od_model *m, const od_tensor *dout,
                              od_tensor *dx, od__grad_mode mode,
                              float alpha, float beta)
{
    OD_ASSERT(m->input.data); /* backward needs a forward first */
    const od_tensor *last = m->nlayers ? &m->outs[m->nlayers - 1] : &m->input;
    if (!od_tensor_same_shape(dout, last)) {
        char want[64], got[64];
        return od_fail(OD_ERR_MISMATCH, "model backward: the output gradient "
                       "is %s but the last output was %s",
                       od_tensor_shape_str(dout, got, sizeof got),
                       od_tensor_shape_str(last, want, sizeof want));
    }
    /* Below the lowest layer with a trainable parameter nothing needs a
     * gradient unless the caller asks for dx: a first linear layer after a
     * flatten (fmnist-mlp) would otherwise form its whole input gradient
     * for nothing. */
    int stop = 0;
    if (!dx) {
        stop = m->nlayers;
        for (int i = 0; i < m->nlayers && stop == m->nlayers; i++)
            for (int k = 0; k < m->layers[i]->nparams; k++)
                if (m->layers[i]->params[k]->trainable)
                    stop = i;
    }
    /* Fresh gradients: clear those the pass will not set whole, that is
     * all but the trainable parameters of the layers that honour
     * ctx->fresh_grads (or, applying, ctx->apply_update, whose gradients
     * go unused) and that the pass reaches. */
    int fresh = mode != OD__GRAD_ADD;
    if (fresh)
        for (int i = 0; i < m->nlayers; i++) {
            od_layer *l = m->layers[i];
            int applies = mode == OD__GRAD_APPLY && l->applies_update;
            od_layer_zero_grad(l, (l->fresh_grads || applies) && i >= stop);
        }
    od_ctx *ctx = m->ctx;
    od_tensor cur = *dout;
    for (int i = m->nlayers - 1; i >= stop; i--) {
        od_layer *l = m->layers[i];
        od_tensor next;
        int want_dx = i > stop || dx != NULL;
        ctx->fresh_grads = fresh && l->fresh_grads;
        ctx->apply_update = mode == OD__GRAD_APPLY && l->applies_update;
        ctx->apply_alpha = alpha;
        ctx->apply_beta = beta;
        od_status st = l->vt->backward(l, ctx, &cur,
                                       want_dx ? &next : NULL);
        ctx->fresh_grads = ctx->apply_update = 0;
        OD_TRY(st);
        if (want_dx)
            cur = next;
    }
    if (dx)
        *dx = cur;
    return OD_OK;
}

od_status od_model_backward_input(od_model *m, const od_tensor *dout,
                                  od_tensor *dx)
{
    return od__backward(m, dout, dx, OD__GRAD_ADD, 0, 0);
}

od_status od_model_backward(od_model *m, const od_tensor *dout)
{
    return od__backward(m, dout, NULL, OD__GRAD_ADD, 0, 0);
}

od_status od_model_backward_fresh(od_model *m, const od_tensor *dout)
{
    return od__backward(m, dout, NULL, OD__GRAD_FRESH, 0, 0);
}

od_status od_model_backward_apply(od_model *m, const od_tensor *dout,
                                  float alpha, float beta)
{
    return od__backward(m, dout, NULL, OD__GRAD_APPLY, alpha, beta);
}

void od_layer_zero_grad(od_layer *l, int set_whole)
{
    for (int k = 0; k < l->nparams; k++) {
        od_param *p = l->params[k];
        if (p->grad.data && !(set_whole && p->trainable))
            memset(p->grad.data, 0, p->grad.size * sizeof(float));
    }
}

void od_model_zero_grad(od_model *m)
{
    for (int i = 0; i < m->nparams; i++) {
        od_param *p = m->params[i];
        if (p->grad.data)
            memset(p->grad.data, 0, p->grad.size * sizeof(float));
    }
}

od_status od_model_xent(od_model *m, const od_tensor *logits,
                        const int32_t *labels, double *mean_loss, int *count,
                        int *correct, od_tensor *dlogits)
{
    od_ctx *ctx = m->ctx;
    uint64_t t0 = od_now_ns();
    const int cols = logits->dims[logits->ndim - 1];
    const int rows = (int)(logits->size / (size_t)cols);
    for (int r = 0; r < rows; r++)
        if (labels[r] < -1 || labels[r] >= cols)
            return od_fail(OD_ERR_INVALID, "cross-entropy: label %d of row "
                           "%d is outside [0, %d) (or -1 to ignore the row)",
                           (int)labels[r], r, cols);

    /* The gradient outlives the call; the probabilities and per-row losses
     * are scratch. */
    if (dlogits)
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dlogits, logits->ndim,
                               logits->dims));
    size_t mark = od_arena_mark(ctx->arena);
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          logits->size * sizeof(float), &p));
    float *probs = p;     /* (rows, cols) */
    od_status st = od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                                  (size_t)rows * sizeof(float), &p);
    if (st != OD_OK) {
        od_arena_release(ctx->arena, mark);
        return st;
    }
    float *row_loss = p;  /* (rows) */
    double total = od_softmax_xent_forward(ctx->pool, rows, cols,
                                           logits->data, labels, probs,
                                           row_loss);

    int n = 0, hits = 0;
    for (int r = 0; r < rows; r++) {
        if (labels[r] < 0)
            continue;
        n++;
        const float *lr = logits->data + (size_t)r * cols;
        int best = 0;
        for (int c = 1; c < cols; c++)
            if (lr[c] > lr[best])
                best = c;
        hits += best == labels[r];
    }
    *mean_loss = n ? total / n : 0.0;
    if (count)
        *count = n;
    if (correct)
        *correct = hits;
    /* Per element: max, exponential (counted as 4), sum, divide, log. */
    od_trace_add(ctx->trace, OD_OP_SOFTMAX, OD_PHASE_FORWARD, "xent",
                 8.0 * (double)logits->size, 4.0 * (double)logits->size,
                 4.0 * ((double)logits->size + rows), od_now_ns() - t0);

    /* dlogits = (probs - onehot) / n; zero rows for ignored labels. */
    if (dlogits) {
        t0 = od_now_ns();
        if (n)
            od_softmax_xent_backward(ctx->pool, rows, cols, probs, labels,
                                     1.0f / (float)n, dlogits->data);
        od_trace_add(ctx->trace, OD_OP_SOFTMAX, OD_PHASE_BACKWARD, "xent",
                     2.0 * (double)logits->size, 4.0 * (double)logits->size,
                     4.0 * (double)dlogits->size, od_now_ns() - t0);
    }
    od_arena_release(ctx->arena, mark);
    return OD_OK;
}

size_t od_model_param_count(const od_model *m, int trainable_only)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (!trainable_only || m->params[i]->trainable)
            n += m->params[i]->value.size;
    return n;
}

int od_model_set_trainable(od_model *m, const char *prefix, int trainable)
{
    int matched = 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    for (int i = 0; i < m->nparams; i++) {
        od_param *p = m->params[i];
        if (prefix && strncmp(p->name, prefix, plen) != 0)
            continue;
        matched++;
        if (trainable && !p->grad.data) {
            od_status st = od_tensor_alloc(m->ctx->arena, OD_MEM_GRAD,
                                           &p->grad, p->value.ndim,
                                           p->value.dims);
            if (st != OD_OK) {
                /* Without room for its gradient the parameter stays
                 * frozen; od_error_message() says why. */
                memset(&p->grad, 0, sizeof p->grad);
                continue;
            }
        } else if (!trainable && p->grad.data) {
            od_arena_free(m->ctx->arena, p->grad.data);
            memset(&p->grad, 0, sizeof p->grad);
        }
        p->trainable = trainable != 0;
    }
    return matched;
}

/* "(64, 256)" for a shape given as ndim and dims. */
static const char *od__dims_str(int ndim, const int *dims, char *buf,
                                size_t len)
{
    od_tensor t;
    memset(&t, 0, sizeof t);
    t.ndim = ndim;
    memcpy(t.dims, dims, (size_t)ndim * sizeof *dims);
    return od_tensor_shape_str(&t, buf, len);
}

void od_model_summary(const od_model *m, int ndim, const int *in_dims,
                      char *buf, size_t len)
{
    size_t used = 0;
    int cur_ndim = ndim, cur[OD_MAX_DIMS] = {0};
    char shape[64];
    OD_ASSERT(ndim >= 1 && ndim <= OD_MAX_DIMS);

#define OD__APPEND(...)                                                      \
    do {                                                                     \
        if (used < len) {                                                    \
            int w_ = snprintf(buf + used, len - used, __VA_ARGS__);          \
            used += w_ > 0 ? (size_t)w_ : 0;                                 \
        }                                                                    \
    } while (0)

    if (len)
        buf[0] = '\0';
    memcpy(cur, in_dims, (size_t)ndim * sizeof *in_dims);
    OD__APPEND("%-12s %-10s %-20s %12s\n", "layer", "kind", "output",
               "params");
    OD__APPEND("%-12s %-10s %-20s %12s\n", "input", "",
               od__dims_str(cur_ndim, cur, shape, sizeof shape), "");
    for (int i = 0; i < m->nlayers; i++) {
        const od_layer *l = m->layers[i];
        int next_ndim = 0, next[OD_MAX_DIMS] = {0};
        size_t np = 0;
        for (int j = 0; j < l->nparams; j++)
            np += l->params[j]->value.size;
        if (l->vt->out_shape(l, cur_ndim, cur, &next_ndim, next) != OD_OK) {
            OD__APPEND("%-12s %-10s error: %s\n", l->name, l->vt->kind,
                       od_error_message());
            return;
        }
        cur_ndim = next_ndim;
        memcpy(cur, next, sizeof cur);
        OD__APPEND("%-12s %-10s %-20s %12zu\n", l->name, l->vt->kind,
                   od__dims_str(cur_ndim, cur, shape, sizeof shape), np);
    }
    OD__APPEND("total %zu parameters, %zu trainable\n",
               od_model_param_count(m, 0), od_model_param_count(m, 1));
#undef OD__APPEND
}
