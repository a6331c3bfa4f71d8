/* Per-example gradient norms and the clipped sum (see pergrad.h). */
#include "engine/pergrad.h"

#include "engine/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether a parameter takes part: trainable with a gradient buffer. */
static int od__param_wanted(const od_param *p)
{
    return p->trainable && p->grad.data;
}

static int od__layer_wanted(const od_layer *l)
{
    for (int k = 0; k < l->nparams; k++)
        if (od__param_wanted(l->params[k]))
            return 1;
    return 0;
}

/* Example i of a batch tensor (N, ...) as a tensor (1, ...). */
static od_tensor od__example(const od_tensor *t, int i)
{
    od_tensor e = *t;
    size_t per = t->size / (size_t)t->dims[0];
    e.dims[0] = 1;
    e.size = per;
    e.data = t->data + (size_t)i * per;
    return e;
}

/* The input of layer li in the last forward. */
static const od_tensor *od__layer_input(const od_model *m, int li)
{
    return li == 0 ? &m->input : &m->outs[li - 1];
}

/* Squared per-example norms of layer li's gradient by materialising one
 * example's gradient at a time: the layer's gradient buffers are pointed
 * at zeroed scratch, the layer runs forward and backward on the example
 * alone, and a final forward over the whole batch restores the state its
 * backward reads. */
static od_status od__materialised_sqnorm(od_model *m, int li,
                                         const od_tensor *dy, float *sqnorm)
{
    od_layer *l = m->layers[li];
    od_ctx *ctx = m->ctx;
    const od_tensor *x = od__layer_input(m, li);
    int n = x->dims[0];

    float *saved[OD_LAYER_MAX_PARAMS] = {0};
    size_t total = 0;
    for (int k = 0; k < l->nparams; k++)
        if (od__param_wanted(l->params[k]))
            total += l->params[k]->grad.size;
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH, total * sizeof(float),
                          &p));
    float *buf = p;   /* every wanted parameter's gradient, back to back */
    size_t off = 0;
    for (int k = 0; k < l->nparams; k++) {
        od_param *q = l->params[k];
        if (!od__param_wanted(q))
            continue;
        saved[k] = q->grad.data;
        q->grad.data = buf + off;
        off += q->grad.size;
    }

    od_status st = OD_OK;
    for (int i = 0; i < n && st == OD_OK; i++) {
        size_t mark = od_arena_mark(ctx->arena);
        od_tensor xi = od__example(x, i), gi = od__example(dy, i), yi;
        memset(buf, 0, total * sizeof(float));
        st = l->vt->forward(l, ctx, &xi, &yi, 1);
        if (st == OD_OK)
            st = l->vt->backward(l, ctx, &gi, NULL);
        if (st == OD_OK)
            sqnorm[i] += (float)od_sumsq(total, buf);
        od_arena_release(ctx->arena, mark);
    }
    for (int k = 0; k < l->nparams; k++)
        if (saved[k])
            l->params[k]->grad.data = saved[k];
    if (st != OD_OK)
        return st;

    od_tensor y;
    return l->vt->forward(l, ctx, x, &y, 1);
}

/* Sweep 1 of pergrad.h: output gradients dys[first..L) of every layer from
 * dout, with parameter gradients switched off, then the per-example
 * squared norms into sqnorm (N) of every layer but `skip` (-1: none).
 * *first_out is the lowest layer with a trainable parameter (L when
 * none). */
static od_status od__norm_sweep(od_model *m, const od_tensor *dout,
                                od_tensor *dys, float *sqnorm, int skip,
                                int *first_out)
{
    int nl = m->nlayers;
    int n = dout->dims[0];
    int first = nl;
    for (int li = nl - 1; li >= 0; li--)
        if (od__layer_wanted(m->layers[li]))
            first = li;
    *first_out = first;
    memset(sqnorm, 0, (size_t)n * sizeof(float));
    if (first == nl)
        return OD_OK;

    /* Input gradients only: switch every parameter's gradient off. */
    void *p = NULL;
    OD_TRY(od_arena_alloc(m->ctx->arena, OD_MEM_SCRATCH,
                          (size_t)m->nparams * sizeof(int), &p));
    int *on = p;   /* (nparams) the trainable flags to restore */
    for (int k = 0; k < m->nparams; k++) {
        on[k] = m->params[k]->trainable;
        m->params[k]->trainable = 0;
    }
    od_status st = OD_OK;
    dys[nl - 1] = *dout;
    for (int li = nl - 1; li > first && st == OD_OK; li--)
        st = m->layers[li]->vt->backward(m->layers[li], m->ctx, &dys[li],
                                         &dys[li - 1]);
    for (int k = 0; k < m->nparams; k++)
        m->params[k]->trainable = on[k];
    OD_TRY(st);

    for (int li = first; li < nl; li++) {
        od_layer *l = m->layers[li];
        if (!od__layer_wanted(l) || li == skip)
            continue;
        if (l->vt->grad_sqnorm)
            OD_TRY(l->vt->grad_sqnorm(l, m->ctx, &dys[li], sqnorm));
        else
            OD_TRY(od__materialised_sqnorm(m, li, &dys[li], sqnorm));
    }
    return OD_OK;
}

/* Whether sweep 2 takes layer li by the plain route, its own backward
 * on re-weighted output gradients (which honours ctx->fresh_grads and
 * ctx->apply_update where the layer says so). */
static int od__plain_route(const od_layer *l, int li, int first, int one_pass)
{
    return li >= first && li != one_pass && !l->vt->scaled_backward;
}

static od_status od__check_dout(const od_model *m, const od_tensor *dout)
{
    OD_ASSERT(m->input.data); /* needs a forward first */
    OD_ASSERT(m->nlayers > 0);
    const od_tensor *last = &m->outs[m->nlayers - 1];
    if (!od_tensor_same_shape(dout, last)) {
        char want[64], got[64];
        return od_fail(OD_ERR_MISMATCH, "per-example backward: the output "
                       "gradient is %s but the last output was %s",
                       od_tensor_shape_str(dout, got, sizeof got),
                       od_tensor_shape_str(last, want, sizeof want));
    }
    return OD_OK;
}

static od_status od__alloc_dys(od_model *m, od_tensor **dys)
{
    void *p = NULL;
    OD_TRY(od_arena_alloc(m->ctx->arena, OD_MEM_SCRATCH,
                          (size_t)m->nlayers * sizeof(od_tensor), &p));
    *dys = p;
    return OD_OK;
}

od_status od_pergrad_norms(od_model *m, const od_tensor *dout, float *norms)
{
    OD_TRY(od__check_dout(m, dout));
    od_tensor *dys;
    OD_TRY(od__alloc_dys(m, &dys));
    int first;
    OD_TRY(od__norm_sweep(m, dout, dys, norms, -1, &first));
    for (int i = 0; i < dout->dims[0]; i++)
        norms[i] = sqrtf(norms[i]);
    return OD_OK;
}

/* How sweep 2 treats the gradients (see od__clipped_backward). */
typedef enum od__sweep_mode {
    OD__SWEEP_ADD,     /* adds the clipped sum to them */
    OD__SWEEP_FRESH,   /* sets them to it */
    OD__SWEEP_APPLY    /* sets them, or applies it where a layer can */
} od__sweep_mode;

static od_status od__clipped_backward(od_model *m, const od_tensor *dout,
                                      float clip_norm, float *norms,
                                      float *scales, od__sweep_mode mode,
                                      float alpha, float beta)
{
    OD_TRY(od__check_dout(m, dout));
    od_ctx *ctx = m->ctx;
    int n = dout->dims[0];
    OD_ASSERT(n >= 1);
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          2 * (size_t)n * sizeof(float), &p));
    float *sq = p, *scale = sq + n;   /* (N), (N) */
    od_tensor *dys;
    OD_TRY(od__alloc_dys(m, &dys));
    /* Sweep 2 scales output gradients in place: work on a copy of dout. */
    od_tensor d;
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, &d, dout->ndim,
                           dout->dims));
    memcpy(d.data, dout->data, dout->size * sizeof(float));
    /* The layer that forms its norms and clipped sum in one pass, once the
     * others' norms are known: the largest that offers it. */
    int one_pass = -1;
    size_t most = 0;
    for (int li = 0; li < m->nlayers; li++) {
        od_layer *l = m->layers[li];
        if (!l->vt->clipped_grad || !od__layer_wanted(l))
            continue;
        size_t size = 0;
        for (int k = 0; k < l->nparams; k++)
            if (od__param_wanted(l->params[k]))
                size += l->params[k]->grad.size;
        if (size > most) {
            most = size;
            one_pass = li;
        }
    }
    int first;
    OD_TRY(od__norm_sweep(m, &d, dys, sq, one_pass, &first));
    /* Fresh gradients: those that sweep 2 sets whole (or applies) are the
     * trainable ones of the layers it reaches by the plain route and that
     * honour ctx->fresh_grads (ctx->apply_update); the rest are cleared. */
    if (mode != OD__SWEEP_ADD)
        for (int li = 0; li < m->nlayers; li++) {
            od_layer *l = m->layers[li];
            od_layer_zero_grad(l, od__plain_route(l, li, first, one_pass)
                                      && (l->fresh_grads ||
                                          (mode == OD__SWEEP_APPLY &&
                                           l->applies_update)));
        }
    if (one_pass >= 0)
        OD_TRY(m->layers[one_pass]->vt->clipped_grad(
            m->layers[one_pass], ctx, &dys[one_pass], clip_norm, sq));

    /* Clip factors; an all-zero gradient keeps 1. */
    for (int i = 0; i < n; i++) {
        scale[i] = od_clip_factor(sq[i], clip_norm);
        if (norms)
            norms[i] = sqrtf(sq[i]);
        if (scales)
            scales[i] = scale[i];
    }

    /* Sweep 2: the parameter gradients of each layer re-weighted example
     * by example, by the layer's own route or by scaling its output
     * gradient. */
    for (int li = first; li < m->nlayers; li++) {
        od_layer *l = m->layers[li];
        if (!od__layer_wanted(l) || li == one_pass)
            continue;
        od_tensor *dy = &dys[li];
        if (l->vt->scaled_backward) {
            OD_TRY(l->vt->scaled_backward(l, ctx, dy, scale));
        } else {
            od_tensor_scale_rows(dy, scale);
            ctx->fresh_grads = mode != OD__SWEEP_ADD && l->fresh_grads;
            ctx->apply_update = mode == OD__SWEEP_APPLY && l->applies_update;
            ctx->apply_alpha = alpha;
            ctx->apply_beta = beta;
            od_status st = l->vt->backward(l, ctx, dy, NULL);
            ctx->fresh_grads = ctx->apply_update = 0;
            OD_TRY(st);
        }
    }
    return OD_OK;
}

od_status od_pergrad_clipped_backward(od_model *m, const od_tensor *dout,
                                      float clip_norm, float *norms,
                                      float *scales)
{
    return od__clipped_backward(m, dout, clip_norm, norms, scales,
                                OD__SWEEP_ADD, 0, 0);
}

od_status od_pergrad_clipped_backward_fresh(od_model *m,
                                            const od_tensor *dout,
                                            float clip_norm, float *norms,
                                            float *scales)
{
    return od__clipped_backward(m, dout, clip_norm, norms, scales,
                                OD__SWEEP_FRESH, 0, 0);
}

od_status od_pergrad_clipped_backward_apply(od_model *m,
                                            const od_tensor *dout,
                                            float clip_norm, float *norms,
                                            float *scales, float alpha,
                                            float beta)
{
    return od__clipped_backward(m, dout, clip_norm, norms, scales,
                                OD__SWEEP_APPLY, alpha, beta);
}
