/* Gradient inversion of a linear first layer (see attack.h). */
#include "privacy/attack.h"

#include <math.h>
#include <string.h>

#include "engine/pergrad.h"
#include "privacy/dpsgd.h"
#include "privacy/noise.h"

od_status od_attack_invert_linear(const float *dw, const float *db, int out,
                                  int in, float *x)
{
    double den = 0;
    for (int k = 0; k < out; k++)
        den += (double)db[k] * db[k];
    if (!(den > 0))
        return od_fail(OD_ERR_INVALID, "gradient inversion: the bias "
                       "gradient is zero; the update carries no example");
    for (int j = 0; j < in; j++) {
        double acc = 0;
        for (int k = 0; k < out; k++)
            acc += (double)db[k] * dw[(size_t)k * in + j];
        x[j] = (float)(acc / den);
    }
    return OD_OK;
}

int od_attack_infer_label(const float *db_last, int classes)
{
    int best = 0;
    for (int c = 1; c < classes; c++)
        if (db_last[c] < db_last[best])
            best = c;
    return best;
}

double od_psnr(const float *ref, const float *rec, size_t n, double peak)
{
    double se = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)ref[i] - rec[i];
        se += d * d;
    }
    double mse = n ? se / (double)n : 0.0;
    if (mse == 0)
        return INFINITY;
    return 10.0 * log10(peak * peak / mse);
}

/* The first and last layers with parameters; both must be linear with a
 * weight and a bias. */
static od_status od__attack_layers(const od_model *m, od_layer **first,
                                   od_layer **last)
{
    *first = *last = NULL;
    for (int i = 0; i < m->nlayers; i++)
        if (m->layers[i]->nparams > 0) {
            if (!*first)
                *first = m->layers[i];
            *last = m->layers[i];
        }
    const od_layer *ls[2] = {*first, *last};
    for (int i = 0; i < 2; i++)
        if (!ls[i] || strcmp(ls[i]->vt->kind, "linear") != 0
            || ls[i]->nparams != 2)
            return od_fail(OD_ERR_UNSUPPORTED, "gradient inversion needs a "
                           "model whose first and last layers with "
                           "parameters are linear with bias");
    return OD_OK;
}

od_status od_attack_run(od_model *m, const od_tensor *x, int32_t label,
                        const od_attack_config *c, float *x_rec,
                        od_attack_result *out)
{
    memset(out, 0, sizeof *out);
    od_layer *first, *last;
    OD_TRY(od__attack_layers(m, &first, &last));
    OD_ASSERT(x->dims[0] == 1);
    const od_tensor *w = &first->params[0]->grad;   /* (out, in) */
    const od_tensor *b = &first->params[1]->grad;   /* (out) */
    if ((size_t)w->dims[1] != x->size)
        return od_fail(OD_ERR_MISMATCH, "gradient inversion: the first "
                       "linear layer takes %d inputs but the example has "
                       "%zu values", w->dims[1], x->size);

    /* The client's update: the example's gradient, clipped and noised
     * under DP (a DP-SGD step on a batch of one; the expected batch is
     * one, so nothing is divided). */
    od_tensor logits, dl;
    double loss;
    int count;
    float norm = 0, scale = 1;
    od_model_zero_grad(m);
    OD_TRY(od_model_forward(m, x, 1, &logits));
    OD_TRY(od_dpsgd_example_xent(m, &logits, &label, &loss, &count, &dl));
    float clip = c->dp ? (float)c->clip_norm : INFINITY;
    OD_TRY(od_pergrad_clipped_backward(m, &dl, clip, &norm, &scale));
    out->grad_norm = norm;
    if (c->dp && c->noise_multiplier > 0) {
        od_noise g;
        OD_TRY(od_noise_init(&g, c->seed));
        float std = (float)(c->noise_multiplier * c->clip_norm);
        for (int k = 0; k < m->nparams; k++) {
            od_param *p = m->params[k];
            if (p->trainable && p->grad.data)
                od_noise_add(&g, m->ctx->pool, 0, (uint32_t)k, std, 1.0f,
                             p->grad.data, p->grad.size);
        }
    }

    /* The attack sees only the update. */
    OD_TRY(od_attack_invert_linear(w->data, b->data, w->dims[0], w->dims[1],
                                   x_rec));
    out->psnr_db = od_psnr(x->data, x_rec, x->size, 1.0);
    for (size_t i = 0; i < x->size; i++) {
        double e = fabs((double)x->data[i] - x_rec[i]);
        if (e > out->max_abs_err)
            out->max_abs_err = e;
    }
    out->label = label;
    out->label_guess = od_attack_infer_label(last->params[1]->grad.data,
                                             last->params[1]->grad.dims[0]);
    return OD_OK;
}
