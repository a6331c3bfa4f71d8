/* One-run privacy audit (see audit.h). */
#include "privacy/audit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/rng.h"
#include "privacy/accountant.h"
#include "privacy/dpsgd.h"

/* ---- The bound -------------------------------------------------------------
 *
 * Source: T. Steinke, M. Nasr, M. Jagielski, "Privacy Auditing with One (1)
 * Training Run", NeurIPS 2023 (arXiv:2305.08846). For ε-DP the number W of
 * correct guesses is stochastically dominated by Binomial(r, q), q =
 * e^ε / (1 + e^ε), so P[W >= v] <= F(v) := P[Binomial(r, q) >= v]. For
 * (ε, δ)-DP the paper's approximate-DP result adds a δ term for each of the
 * m randomised canaries, weighted by how fast F rises below v:
 *
 *   P[W >= v] <= F(v) + 2 m δ max_{1 <= i <= v} (F(v - i) - F(v)) / i,
 *
 * which is what the paper's own p-value routine (its Appendix D) evaluates
 * and what its experiments report. F(v - i) - F(v) is P[v - i <= B < v],
 * the sum of the i binomial probabilities just below v. */

/* A sum of non-negative terms with Neumaier's compensation. */
typedef struct od__sum {
    double s, c;
} od__sum;

static void od__sum_add(od__sum *a, double x)
{
    double t = a->s + x;
    a->c += fabs(a->s) >= fabs(x) ? (a->s - t) + x : (x - t) + a->s;
    a->s = t;
}

/* ln n! - ln(sqrt(2 π n) (n / e)^n) for n >= 1: exact factorials up to 15,
 * Stirling's series to the n^-9 term (error below 2e-16) above. */
static double od__stirling_err(double n)
{
    if (n <= 15) {
        double f = 1;
        for (int k = 2; k <= (int)n; k++)
            f *= k;
        return log(f) - (n + 0.5) * log(n) + n - 0.5 * log(2 * M_PI);
    }
    double n2 = n * n;
    return (1.0 / 12 - (1.0 / 360 - (1.0 / 1260 - (1.0 / 1680
            - 1.0 / (1188 * n2)) / n2) / n2) / n2) / n;
}

/* x ln(x / mu) + mu - x (>= 0) for x, mu > 0, without the cancellation of
 * the direct form when x is close to mu. */
static double od__dev(double x, double mu)
{
    double d = x - mu;
    if (fabs(d) >= 0.1 * (x + mu))
        return x * log(x / mu) + mu - x;
    /* ln(x / mu) = 2 atanh(v), v = d / (x + mu): sum its odd series. */
    double v = d / (x + mu), v2 = v * v, s = d * v, term = 2 * x * v;
    for (int j = 1; j < 1000; j++) {
        term *= v2;
        double next = s + term / (2 * j + 1);
        if (next == s)
            break;
        s = next;
    }
    return s;
}

/* P[Binomial(r, q) = k] with p1 = 1 - q given separately (both accurate),
 * to about 1e-13 relative (better for the larger terms) for any r: the
 * saddle-point form of Loader ("Fast and accurate computation of binomial
 * probabilities", 2000) keeps the large terms of ln C(r, k) from
 * cancelling. */
static double od__binom_pmf(int r, int k, double q, double p1)
{
    if (k == 0)
        return exp(r * log(p1));
    if (k == r)
        return exp(r * log(q));
    double n = r, x = k, y = r - k;
    double lc = od__stirling_err(n) - od__stirling_err(x)
                - od__stirling_err(y) - od__dev(x, n * q) - od__dev(y, n * p1);
    return exp(lc) * sqrt(n / (2 * M_PI * x * y));
}

static od_status od__audit_check_counts(int m, int r, int v)
{
    if (r < 1 || v < 0 || v > r || r > m)
        return od_fail(OD_ERR_INVALID, "audit: need 0 <= correct (%d) <= "
                       "guesses (%d) <= canaries (%d) and at least one "
                       "guess", v, r, m);
    return OD_OK;
}

/* The bound for checked arguments. */
static double od__p_value(int m, int r, int v, double eps, double delta)
{
    /* q and 1 - q, each without rounding loss at large ε. */
    double q = 1.0 / (1.0 + exp(-eps)), p1 = 1.0 / (1.0 + exp(eps));

    /* F(v), smallest terms first when v is above the mean. */
    od__sum tail = {0, 0};
    if (v == 0)
        tail.s = 1;
    else
        for (int k = r; k >= v; k--)
            od__sum_add(&tail, od__binom_pmf(r, k, q, p1));
    double f_v = tail.s + tail.c;
    if (!(delta > 0) || v == 0)
        return f_v < 1 ? f_v : 1;

    /* α = max_i P[v - i <= B < v] / i. Every partial sum is at most
     * P[B < v] <= below (with a margin for the rounding of the terms), so
     * once below / i <= α no later i can win. */
    double below = 1 - f_v + 1e-12, alpha = 0;
    od__sum run = {0, 0};
    for (int i = 1; i <= v && below / i > alpha; i++) {
        od__sum_add(&run, od__binom_pmf(r, v - i, q, p1));
        double a = (run.s + run.c) / i;
        alpha = a > alpha ? a : alpha;
    }
    double p = f_v + 2.0 * m * delta * alpha;
    return p < 1 ? p : 1;
}

od_status od_audit_p_value(int canaries, int guesses, int correct,
                           double epsilon, double delta, double *p_out)
{
    *p_out = 1;
    OD_TRY(od__audit_check_counts(canaries, guesses, correct));
    if (!(epsilon >= 0) || !isfinite(epsilon) || !(delta >= 0 && delta <= 1))
        return od_fail(OD_ERR_INVALID, "audit: epsilon = %g must be finite "
                       "and >= 0, delta = %g in [0, 1]", epsilon, delta);
    *p_out = od__p_value(canaries, guesses, correct, epsilon, delta);
    return OD_OK;
}

od_status od_audit_epsilon_lower(int canaries, int guesses, int correct,
                                 double delta, double beta, double *eps_out)
{
    *eps_out = 0;
    OD_TRY(od__audit_check_counts(canaries, guesses, correct));
    if (!(beta > 0 && beta < 1) || !(delta >= 0 && delta <= 1))
        return od_fail(OD_ERR_INVALID, "audit: beta = %g must be in (0, 1) "
                       "and delta = %g in [0, 1]", beta, delta);
    int m = canaries, r = guesses, v = correct;

    /* The bound rises with ε (tests/test_audit.c checks it on a grid);
     * ε̂ is where it crosses β. At ε = 64, q is 1 to double precision and
     * the bound is 1 for v >= 1. */
    if (od__p_value(m, r, v, 0, delta) > beta)
        return OD_OK;
    double lo = 0, hi = 1;
    while (hi < 64 && od__p_value(m, r, v, hi, delta) <= beta) {
        lo = hi;
        hi *= 2;
    }
    for (int it = 0; it < 200 && hi - lo > 1e-13 * (1 + lo); it++) {
        double mid = 0.5 * (lo + hi);
        if (od__p_value(m, r, v, mid, delta) <= beta)
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
    st = od_audit_p_value(m, c->guesses, correct, pr.epsilon, c->delta,
                          &out->p_value);
    if (st == OD_OK)
        st = od_audit_epsilon_lower(m, c->guesses, correct, c->delta,
                                    c->beta, &out->epsilon_lower);

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
