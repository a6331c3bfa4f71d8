/* DP-SGD steps (see dpsgd.h). */
#include "privacy/dpsgd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pergrad.h"
#include "engine/rng.h"
#include "privacy/noise.h"

struct od_dpsgd {
    od_dpsgd_config cfg;
    od_noise noise;
    int32_t *idx;          /* (N) the Poisson batch of the current step */
    float *norms;          /* (N) per-example norms of a micro-batch */
    float *scales;         /* (N) their clip factors */
    int64_t poisson_steps; /* Poisson draws so far */
    int64_t poisson_drawn; /* examples they drew */
    od_dpsgd_stats stats;
};

void od_dpsgd_set_microbatch(od_dpsgd *d, int microbatch)
{
    OD_ASSERT(d && microbatch >= 0);
    d->cfg.microbatch = microbatch;
}

od_status od_dpsgd_create(const od_dpsgd_config *c, od_dpsgd **out)
{
    *out = NULL;
    if (!(c->clip_norm > 0) || !isfinite(c->clip_norm))
        return od_fail(OD_ERR_INVALID, "dp: clip_norm must be a finite "
                       "number > 0, got %g", c->clip_norm);
    if (!(c->noise_multiplier >= 0) || !isfinite(c->noise_multiplier))
        return od_fail(OD_ERR_INVALID, "dp: noise_multiplier must be >= 0, "
                       "got %g", c->noise_multiplier);
    if (c->dataset_size < 1 || c->batch_size < 1)
        return od_fail(OD_ERR_INVALID, "dp: dataset size (%d) and batch "
                       "size (%d) must be >= 1", c->dataset_size,
                       c->batch_size);
    if (c->microbatch < 0)
        return od_fail(OD_ERR_INVALID, "dp: microbatch must be >= 0 (0: "
                       "the whole batch at once), got %d", c->microbatch);
    od_dpsgd *d = calloc(1, sizeof *d);
    if (!d)
        return od_fail(OD_ERR_NOMEM, "out of host memory");
    d->cfg = *c;
    size_t n = (size_t)c->dataset_size;
    d->idx = malloc(n * sizeof *d->idx);
    d->norms = malloc(n * sizeof *d->norms);
    d->scales = malloc(n * sizeof *d->scales);
    od_status st = OD_OK;
    if (!d->idx || !d->norms || !d->scales)
        st = od_fail(OD_ERR_NOMEM, "out of host memory");
    if (st == OD_OK)
        st = od_noise_init(&d->noise, c->seed);
    if (st != OD_OK) {
        od_dpsgd_destroy(d);
        return st;
    }
    *out = d;
    return OD_OK;
}

void od_dpsgd_destroy(od_dpsgd *d)
{
    if (!d)
        return;
    free(d->idx);
    free(d->norms);
    free(d->scales);
    free(d);
}

double od_dpsgd_sampling_rate(const od_dpsgd *d)
{
    double q = (double)d->cfg.batch_size / (double)d->cfg.dataset_size;
    return q < 1.0 ? q : 1.0;
}

double od_dpsgd_expected_batch(const od_dpsgd *d)
{
    if (d->cfg.sampling == OD_SAMPLING_POISSON)
        return od_dpsgd_sampling_rate(d) * d->cfg.dataset_size;
    return d->cfg.batch_size;
}

const od_dpsgd_stats *od_dpsgd_get_stats(const od_dpsgd *d)
{
    return &d->stats;
}

int od_dpsgd_poisson_batch(const od_dpsgd *d, uint64_t step, int32_t *idx)
{
    od_rng rng;
    od_rng_seed(&rng, d->cfg.seed, 0x504f4953534f4eull ^ step); /* stream */
    double q = od_dpsgd_sampling_rate(d);
    int size = d->cfg.dataset_size, n = 0;
    if (q >= 1.0) {
        for (int i = 0; i < size; i++)
            idx[i] = i;
        return size;
    }
    /* Each example in with probability q, independently: the gaps between
     * the chosen are Geometric(q), P(gap >= k) = (1 - q)^k, drawn as
     * floor(log U / log(1 - q)) with U uniform in (0, 1]. About qN + 1
     * draws instead of N. */
    double l1q = log1p(-q);
    for (double i = -1;;) {
        double u = 1.0 - od_rng_uniform(&rng);
        i += 1.0 + floor(log(u) / l1q);
        if (i >= size)
            return n;
        idx[n++] = (int32_t)i;
    }
}

od_status od_dpsgd_example_xent(od_model *m, const od_tensor *logits,
                                const int32_t *labels, double *mean_loss,
                                int *count, od_tensor *dlogits)
{
    OD_TRY(od_model_xent(m, logits, labels, mean_loss, count, NULL,
                         dlogits));
    int n = logits->dims[0];
    int cols = logits->dims[logits->ndim - 1];
    int rows = (int)(logits->size / (size_t)cols);
    int per = rows / n;   /* label rows per example */

    /* dlogits holds (p - onehot) / count; example i's own mean loss has
     * (p - onehot) / c_i with c_i its labelled rows. */
    for (int i = 0; i < n; i++) {
        int ci = 0;
        for (int r = 0; r < per; r++)
            ci += labels[(size_t)i * per + r] >= 0;
        if (ci == 0)
            continue;
        float s = (float)*count / (float)ci;
        float *row = dlogits->data + (size_t)i * per * cols;
        for (size_t k = 0; k < (size_t)per * cols; k++)
            row[k] *= s;
    }
    return OD_OK;
}

/* Poisson draws so far against Binomial(steps N, q): more than six
 * standard deviations off means the sampler is broken. */
static od_status od__check_sampling(const od_dpsgd *d)
{
    double q = od_dpsgd_sampling_rate(d);
    double trials = (double)d->poisson_steps * d->cfg.dataset_size;
    double mean = trials * q, sd = sqrt(trials * q * (1.0 - q));
    double off = fabs((double)d->poisson_drawn - mean);
    if (off > 6.0 * sd + 1.0)
        return od_fail(OD_ERR_INVALID, "dp self-check: Poisson sampling drew "
                       "%lld examples in %lld steps where %.0f +- %.0f were "
                       "expected (q = %g); the sampler is broken",
                       (long long)d->poisson_drawn,
                       (long long)d->poisson_steps, mean, sd, q);
    return OD_OK;
}

/* How a step's update reaches the parameters: od_dpsgd_step_apply's
 * alpha and beta, when it applies them. */
typedef struct od__apply {
    int on;
    float alpha, beta;
} od__apply;

/* One micro-batch: forward, per-example loss gradients, clipped sum into
 * the gradients (in place of them when first is set, and applied where a
 * layer can when ap->on is). Adds its loss sum and labelled rows. */
static od_status od__microbatch(od_dpsgd *d, od_model *m, const int32_t *idx,
                                int n, int first, const od__apply *ap,
                                od_dpsgd_fetch_fn fetch, void *arg,
                                double *loss_sum, int64_t *rows)
{
    od_tensor x, logits, dlogits;
    int32_t *labels;
    OD_TRY(fetch(arg, idx, n, &x, &labels));
    OD_TRY(od_model_forward(m, &x, 1, &logits));
    double loss;
    int count;
    OD_TRY(od_dpsgd_example_xent(m, &logits, labels, &loss, &count,
                                 &dlogits));
    *loss_sum += loss * count;
    *rows += count;

    double c = d->cfg.clip_norm;
    float clip = d->cfg.test_disable_clipping ? INFINITY : (float)c;
    if (ap->on)
        OD_TRY(od_pergrad_clipped_backward_apply(m, &dlogits, clip, d->norms,
                                                 d->scales, ap->alpha,
                                                 ap->beta));
    else
        OD_TRY((first ? od_pergrad_clipped_backward_fresh
                      : od_pergrad_clipped_backward)(m, &dlogits, clip,
                                                     d->norms, d->scales));
    for (int i = 0; i < n; i++) {
        double norm = d->norms[i];
        d->stats.norm_sum += norm;
        if (norm > d->stats.norm_max)
            d->stats.norm_max = norm;
        d->stats.clipped += norm > c;
        if (!d->cfg.test_disable_clipping &&
            (double)d->scales[i] * norm > c * (1.0 + 1e-5))
            return od_fail(OD_ERR_INVALID, "dp self-check: example %d has "
                           "norm %g after clipping, above clip_norm %g",
                           i, (double)d->scales[i] * norm, c);
    }
    return OD_OK;
}

static od_status od__step(od_dpsgd *d, od_model *m, uint64_t step,
                          const int32_t *idx, int n, od_dpsgd_fetch_fn fetch,
                          void *arg, od__apply ap, double *loss, int *count)
{
    od_ctx *ctx = m->ctx;
    if (d->cfg.sampling == OD_SAMPLING_POISSON) {
        n = od_dpsgd_poisson_batch(d, step, d->idx);
        idx = d->idx;
        d->poisson_steps++;
        d->poisson_drawn += n;
        OD_TRY(od__check_sampling(d));
    }
    d->stats.steps++;
    d->stats.examples += n;
    d->stats.last_batch = n;
    d->stats.empty_batches += n == 0;

    /* The clipped sum, micro-batch by micro-batch; the first sets the
     * gradients, and an empty batch leaves them zero. */
    if (n == 0)
        od_model_zero_grad(m);
    int mb = d->cfg.microbatch > 0 ? d->cfg.microbatch : (n > 0 ? n : 1);
    /* The update is applied in the backward pass only when the batch goes
     * in one. */
    float inv = (float)(1.0 / od_dpsgd_expected_batch(d));
    ap.on = ap.on && n > 0 && mb >= n;
    od__apply sum_ap = {ap.on, ap.alpha * inv, ap.beta};
    double loss_sum = 0;
    int64_t rows = 0;
    for (int start = 0; start < n; start += mb) {
        int k = n - start < mb ? n - start : mb;
        size_t mark = od_arena_mark(ctx->arena);
        od_status st = od__microbatch(d, m, idx + start, k, start == 0,
                                      &sum_ap, fetch, arg, &loss_sum, &rows);
        od_arena_release(ctx->arena, mark);
        OD_TRY(st);
    }

    /* Noise N(0, σ² C²) on every coordinate, then the division by the
     * expected batch size. An empty batch gets noise only. A parameter
     * that has taken its update, p = beta p + alpha S / B, takes the
     * noise's share, alpha σC z / B, the same draws z. */
    uint64_t t0 = od_now_ns();
    float std = (float)(d->cfg.noise_multiplier * d->cfg.clip_norm);
    double elems = 0;
    for (int k = 0; k < m->nparams; k++) {
        od_param *p = m->params[k];
        if (!p->trainable || !p->grad.data)
            continue;
        float *x = p->applied ? p->value.data : p->grad.data;
        float s = p->applied ? 1.0f : inv;
        float sd = p->applied ? ap.alpha * inv * std : std;
        if (std > 0)
            od_noise_add(&d->noise, ctx->pool, step, (uint32_t)k, sd, s, x,
                         p->grad.size);
        else if (!p->applied)
            for (size_t i = 0; i < p->grad.size; i++)
                x[i] *= inv;
        elems += (double)p->grad.size;
    }
    od_trace_add(ctx->trace, OD_OP_RNG, OD_PHASE_BACKWARD,
                 "dp-noise", 8.0 * elems, 4.0 * elems, 4.0 * elems,
                 od_now_ns() - t0);

    *loss = rows ? loss_sum / (double)rows : 0.0;
    *count = (int)rows;
    return OD_OK;
}

od_status od_dpsgd_step(od_dpsgd *d, od_model *m, uint64_t step,
                        const int32_t *idx, int n, od_dpsgd_fetch_fn fetch,
                        void *arg, double *loss, int *count)
{
    od__apply off = {0, 0, 0};
    return od__step(d, m, step, idx, n, fetch, arg, off, loss, count);
}

od_status od_dpsgd_step_apply(od_dpsgd *d, od_model *m, uint64_t step,
                              const int32_t *idx, int n,
                              od_dpsgd_fetch_fn fetch, void *arg,
                              float alpha, float beta, double *loss,
                              int *count)
{
    od__apply on = {1, alpha, beta};
    return od__step(d, m, step, idx, n, fetch, arg, on, loss, count);
}
