/* One-run privacy audit (see audit.h). */
#include "privacy/audit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/rng.h"
#include "privacy/accountant.h"
#include "privacy/dpsgd.h"

/* log P[Binomial(r, p) >= v], summed in log space. */
static double od__log_tail(int r, int v, double p)
{
    if (v <= 0)
        return 0.0;
    if (v > r)
        return -INFINITY;
    double lp = log(p), lq = log1p(-p), lr = lgamma(r + 1.0);
    double mx = -INFINITY;
    for (int k = v; k <= r; k++) {
        double t = lr - lgamma(k + 1.0) - lgamma(r - k + 1.0) + k * lp
                   + (r - k) * lq;
        mx = t > mx ? t : mx;
    }
    double s = 0;
    for (int k = v; k <= r; k++)
        s += exp(lr - lgamma(k + 1.0) - lgamma(r - k + 1.0) + k * lp
                 + (r - k) * lq - mx);
    return mx + log(s);
}

od_status od_audit_epsilon_lower(int guesses, int correct, double beta,
                                 double extra_failure, double *eps_out)
{
    *eps_out = 0;
    if (guesses < 1 || correct < 0 || correct > guesses)
        return od_fail(OD_ERR_INVALID, "audit: %d correct of %d guesses is "
                       "not a count", correct, guesses);
    double level = beta - extra_failure;
    if (!(beta > 0 && beta < 1) || !(level > 0))
        return od_fail(OD_ERR_INVALID, "audit: beta = %g must be in (0, 1) "
                       "and above the failure charged for delta (%g)", beta,
                       extra_failure);
    double log_level = log(level);

    /* The tail grows with ε; ε̂ is where it crosses the level. */
    if (od__log_tail(guesses, correct, 0.5) > log_level)
        return OD_OK;
    double lo = 0, hi = 1;
    while (od__log_tail(guesses, correct, 1.0 / (1.0 + exp(-hi)))
           <= log_level && hi < 64)
        hi *= 2;
    for (int it = 0; it < 80; it++) {
        double mid = 0.5 * (lo + hi);
        double p = 1.0 / (1.0 + exp(-mid));
        if (od__log_tail(guesses, correct, p) <= log_level)
            lo = mid;
        else
            hi = mid;
    }
    *eps_out = lo;
    return OD_OK;
}

void od_audit_config_init(od_audit_config *c)
{
    memset(c, 0, sizeof *c);
    c->canaries = 1000;
    c->guesses = 200;
    c->base_examples = 500;
    c->features = 20;
    c->classes = 4;
    c->steps = 100;
    c->sampling_rate = 0.1;
    c->clip_norm = 1.0;
    c->target_epsilon = 2.0;
    c->delta = 1e-5;
    c->lr = 1.0;
    c->canary_scale = 100.0;
    c->beta = 0.05;
    c->seed = 1;
}

/* The training set: base examples first, then the included canaries. */
typedef struct od__audit_data {
    od_arena *arena;
    int base, dim, features;
    const float *base_x;      /* (base, features) */
    const int32_t *base_y;    /* (base) */
    const int32_t *canary;    /* (included) canary index of each */
    float scale;
} od__audit_data;

static od_status od__audit_fetch(void *arg, const int32_t *idx, int n,
                                 od_tensor *x, int32_t **labels)
{
    od__audit_data *a = arg;
    OD_TRY(od_tensor_alloc2(a->arena, OD_MEM_ACT, x, n, a->dim));
    void *p;
    OD_TRY(od_arena_alloc(a->arena, OD_MEM_SCRATCH,
                          (size_t)(n > 0 ? n : 1) * sizeof(int32_t), &p));
    int32_t *y = p;
    for (int i = 0; i < n; i++) {
        float *row = x->data + (size_t)i * a->dim;
        int k = idx[i];
        if (k < a->base) {
            memcpy(row, a->base_x + (size_t)k * a->features,
                   (size_t)a->features * sizeof(float));
            y[i] = a->base_y[k];
        } else {
            row[a->features + a->canary[k - a->base]] = a->scale;
            y[i] = 0;
        }
    }
    *labels = y;
    return OD_OK;
}

static od_status od__audit_check(const od_audit_config *c)
{
    if (c->canaries < 2 || c->guesses < 2 || c->guesses % 2
        || c->guesses > c->canaries)
        return od_fail(OD_ERR_INVALID, "audit: guesses (%d) must be even, "
                       ">= 2 and at most canaries (%d)", c->guesses,
                       c->canaries);
    if (c->base_examples < 0 || c->features < 1 || c->classes < 2
        || c->steps < 1)
        return od_fail(OD_ERR_INVALID, "audit: examples (%d), features "
                       "(%d), classes (%d) and steps (%d) are out of range",
                       c->base_examples, c->features, c->classes, c->steps);
    if (!(c->sampling_rate > 0 && c->sampling_rate <= 1))
        return od_fail(OD_ERR_INVALID, "audit: sampling rate %g must be in "
                       "(0, 1]", c->sampling_rate);
    if (!(c->noise_multiplier > 0) && !(c->target_epsilon > 0))
        return od_fail(OD_ERR_INVALID, "audit: give a noise multiplier or "
                       "a target epsilon");
    return OD_OK;
}

/* Scores of the canaries after training: how far W[0, d + j] moved. */
static void od__audit_scores(const od_model *m, const float *w0, int dim,
                             int features, int canaries, double *score)
{
    const float *w = m->params[0]->value.data;   /* (classes, dim) */
    for (int j = 0; j < canaries; j++)
        score[j] = (double)w[features + j] - w0[features + j];
    (void)dim;
}

typedef struct od__ranked {
    double score;
    int canary;
} od__ranked;

static int od__by_score(const void *a, const void *b)
{
    const od__ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? -1 : 1;
    return x->canary - y->canary;
}

od_status od_audit_run(const od_audit_config *c, od_audit_result *out)
{
    memset(out, 0, sizeof *out);
    OD_TRY(od__audit_check(c));
    int m = c->canaries, d = c->features, dim = d + m;
    od_rng rng;
    od_rng_seed(&rng, c->seed, 0x41554449ull);

    /* Ordinary examples: Gaussian features labelled by a random linear
     * teacher. Canaries: each in with probability 1/2. */
    float *bx = malloc((size_t)(c->base_examples ? c->base_examples : 1) *
                       d * sizeof *bx);
    int32_t *by = malloc((size_t)(c->base_examples + 1) * sizeof *by);
    float *teacher = malloc((size_t)c->classes * d * sizeof *teacher);
    int8_t *in = malloc((size_t)m);
    int32_t *canary = malloc((size_t)m * sizeof *canary);
    double *score = malloc((size_t)m * sizeof *score);
    od__ranked *rank = malloc((size_t)m * sizeof *rank);
    float *w0 = malloc((size_t)c->classes * dim * sizeof *w0);
    od_arena *arena = od_arena_create(0);
    od_model *model = NULL;
    od_dpsgd *dp = NULL;
    od_status st = OD_OK;
    if (!bx || !by || !teacher || !in || !canary || !score || !rank || !w0
        || !arena) {
        st = od_fail(OD_ERR_NOMEM, "out of host memory");
        goto done;
    }
    for (int k = 0; k < c->classes * d; k++)
        teacher[k] = (float)od_rng_normal(&rng);
    for (int i = 0; i < c->base_examples; i++) {
        float *x = bx + (size_t)i * d;
        int best = 0;
        double best_v = -INFINITY;
        for (int k = 0; k < d; k++)
            x[k] = (float)od_rng_normal(&rng);
        for (int cl = 0; cl < c->classes; cl++) {
            double v = 0;
            for (int k = 0; k < d; k++)
                v += (double)teacher[cl * d + k] * x[k];
            if (v > best_v) {
                best_v = v;
                best = cl;
            }
        }
        by[i] = best;
    }
    int included = 0;
    for (int j = 0; j < m; j++) {
        in[j] = (int8_t)(od_rng_uniform(&rng) < 0.5);
        if (in[j])
            canary[included++] = j;
    }

    /* The model and the mechanism; σ from the target when not given. */
    od_ctx ctx = {.arena = arena, .seed = c->seed};
    od_layer *l;
    st = od_model_create(&ctx, &model);
    if (st == OD_OK)
        st = od_linear_create(&ctx, "fc", dim, c->classes, 1, &l);
    if (st == OD_OK)
        st = od_model_add(model, l);
    if (st != OD_OK)
        goto done;
    od_model_init(model, c->seed);
    memcpy(w0, model->params[0]->value.data,
           (size_t)c->classes * dim * sizeof *w0);

    int n = c->base_examples + included;
    int batch = (int)lround(c->sampling_rate * n);
    batch = batch < 1 ? 1 : batch;
    od_privacy_params pp;
    od_privacy_params_init(&pp);
    pp.sampling_rate = (double)batch / n;
    pp.steps = c->steps;
    pp.delta = c->delta;
    pp.noise_multiplier = c->noise_multiplier;
    od_privacy_result pr;
    if (c->noise_multiplier > 0)
        st = od_privacy_epsilon(&pp, &pr);
    else
        st = od_privacy_sigma(&pp, c->target_epsilon, &pp.noise_multiplier,
                              &pr);
    if (st != OD_OK)
        goto done;
    od_dpsgd_config dc = {
        .clip_norm = c->clip_norm, .noise_multiplier = pp.noise_multiplier,
        .sampling = OD_SAMPLING_POISSON, .dataset_size = n,
        .batch_size = batch, .seed = c->seed ^ 0x9e3779b97f4a7c15ull,
        .test_disable_clipping = c->test_disable_clipping,
    };
    st = od_dpsgd_create(&dc, &dp);
    if (st != OD_OK)
        goto done;

    /* Training: DP-SGD gradients, plain SGD updates. */
    od__audit_data data = {arena, c->base_examples, dim, d, bx, by, canary,
                           (float)c->canary_scale};
    for (int t = 0; t < c->steps && st == OD_OK; t++) {
        double loss;
        int count;
        od_arena_reset_step(arena);
        st = od_dpsgd_step(dp, model, (uint64_t)t, NULL, 0, od__audit_fetch,
                           &data, &loss, &count);
        for (int k = 0; k < model->nparams && st == OD_OK; k++) {
            od_param *p = model->params[k];
            for (size_t i = 0; i < p->value.size; i++)
                p->value.data[i] -= (float)c->lr * p->grad.data[i];
        }
    }
    if (st != OD_OK)
        goto done;

    /* Guesses: "in" for the r/2 highest scores, "out" for the r/2 lowest. */
    od__audit_scores(model, w0, dim, d, m, score);
    for (int j = 0; j < m; j++)
        rank[j] = (od__ranked){score[j], j};
    qsort(rank, (size_t)m, sizeof *rank, od__by_score);
    int half = c->guesses / 2, correct = 0;
    for (int k = 0; k < half; k++) {
        correct += in[rank[m - 1 - k].canary] == 1;
        correct += in[rank[k].canary] == 0;
    }

    out->epsilon_claimed = pr.epsilon;
    out->noise_multiplier = pp.noise_multiplier;
    out->sampling_rate = pp.sampling_rate;
    out->delta = c->delta;
    out->beta = c->beta;
    out->canaries = m;
    out->included = included;
    out->guesses = c->guesses;
    out->correct = correct;
    /* The δ of the claim is charged to the failure probability as m δ per
     * guess side (a conservative simplification; docs/dpsgd.md). */
    st = od_audit_epsilon_lower(c->guesses, correct, c->beta,
                                2.0 * m * c->delta, &out->epsilon_lower);

done:
    od_dpsgd_destroy(dp);
    if (model)
        od_model_destroy(model);
    if (arena)
        od_arena_destroy(arena);
    free(bx);
    free(by);
    free(teacher);
    free(in);
    free(canary);
    free(score);
    free(rank);
    free(w0);
    return st;
}
