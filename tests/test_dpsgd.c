/* DP-SGD: per-example norms and clipping, micro-batches, sampling, noise.
 *
 * Per-example norms and the clipped sum are checked against a reference
 * that runs forward and backward on each example alone and clips the
 * resulting gradient vectors, for every layer kind with parameters (linear
 * on rows and on sequences by both of its routes, conv2d, embedding,
 * layer norm, GRU, LSTM). Agreement is judged by a relative residual
 * below OD_TEST_TOL = 1e-4 (float sums over a few hundred terms; a wrong
 * norm or a missed re-weighting is off by tens of per cent).
 *
 * The noise test draws a fixed-seed sample and applies a chi-square test
 * of its variance and a goodness-of-fit test of its shape at about four
 * standard deviations, so a wrong table or a missing factor fails and a
 * correct generator does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/pergrad.h"
#include "privacy/dpsgd.h"
#include "privacy/noise.h"

#define OD_TEST_TOL 1e-4

typedef struct fixture {
    od_arena *arena;
    od_pool *pool;
    od_trace trace;
    od_ctx ctx;
    od_rng rng;
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    f.arena = od_arena_create(0);
    f.pool = od_pool_create(2, NULL);
    od_trace_init(&f.trace);
    f.ctx = (od_ctx){.arena = f.arena, .pool = f.pool, .trace = &f.trace, .seed = 99};
    od_rng_seed(&f.rng, 5, 11);
    *state = &f;
    return f.arena && f.pool ? 0 : -1;
}

static int reset_step(void **state)
{
    fixture *f = *state;
    od_arena_reset_step(f->arena);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    od_trace_free(&f->trace);
    od_pool_destroy(f->pool);
    od_arena_destroy(f->arena);
    return 0;
}

/* ---- Models with every layer kind ---------------------------------------- */

typedef enum model_kind {
    MODEL_MLP,        /* linear on (N, in) */
    MODEL_SEQ_MAT,    /* linear on (N, T, in), materialised route */
    MODEL_SEQ_GRAM,   /* linear on (N, T, in), Gram route */
    MODEL_CONV,
    MODEL_EMBED_GRU,  /* embedding, layer norm, GRU */
    MODEL_LSTM,
    MODEL_COUNT
} model_kind;

#define ADD(call)                                     \
    do {                                              \
        od_layer *l_;                                 \
        assert_int_equal((call), OD_OK);              \
        assert_int_equal(od_model_add(m, l_), OD_OK); \
    } while (0)
#define L_ &l_

/* Build a small model of a kind and the shape of one sample. */
static od_model *build(fixture *f, model_kind kind, int *ndim, int *dims,
                       int *classes, int *vocab)
{
    od_model *m;
    assert_int_equal(od_model_create(&f->ctx, &m), OD_OK);
    *vocab = 0;
    *classes = 3;
    switch (kind) {
    case MODEL_MLP:
        ADD(od_linear_create(&f->ctx, "fc1", 7, 5, 1, L_));
        ADD(od_activation_create("act", OD_ACT_TANH, L_));
        ADD(od_linear_create(&f->ctx, "fc2", 5, 3, 1, L_));
        *ndim = 1;
        dims[0] = 7;
        break;
    case MODEL_SEQ_MAT:   /* T (in + out) = 30 > in out = 6 */
    case MODEL_SEQ_GRAM:  /* T (in + out) = 72 <= in out = 143 */
    {
        int in = kind == MODEL_SEQ_MAT ? 3 : 13;
        int out = kind == MODEL_SEQ_MAT ? 2 : 11;
        int t = kind == MODEL_SEQ_MAT ? 6 : 3;
        ADD(od_linear_create(&f->ctx, "seq", in, out, 1, L_));
        ADD(od_activation_create("act", OD_ACT_SIGMOID, L_));
        ADD(od_flatten_create("flat", L_));
        ADD(od_linear_create(&f->ctx, "head", t * out, 3, 1, L_));
        *ndim = 2;
        dims[0] = t;
        dims[1] = in;
        break;
    }
    case MODEL_CONV:
        /* The larger convolution folds its clipped sum into its norm pass;
         * the smaller keeps its per-example gradients for it. */
        ADD(od_conv2d_create(&f->ctx, "wide", 2, 6, 3, 3, 1, 1, 1, L_));
        ADD(od_activation_create("act0", OD_ACT_TANH, L_));
        ADD(od_conv2d_create(&f->ctx, "conv", 6, 3, 3, 3, 2, 1, 1, L_));
        ADD(od_activation_create("act", OD_ACT_RELU, L_));
        ADD(od_maxpool2d_create("pool", 2, 2, L_));
        ADD(od_flatten_create("flat", L_));
        ADD(od_linear_create(&f->ctx, "fc", 3 * 2 * 2, 3, 1, L_));
        *ndim = 3;
        dims[0] = 2;
        dims[1] = 7;
        dims[2] = 7;
        break;
    case MODEL_EMBED_GRU:
        ADD(od_embedding_create(&f->ctx, "emb", 11, 4, L_));
        ADD(od_layernorm_create(&f->ctx, "ln", 4, 1e-5f, L_));
        ADD(od_gru_create(&f->ctx, "gru", 4, 6, 0, L_));
        ADD(od_linear_create(&f->ctx, "fc", 6, 3, 1, L_));
        *ndim = 1;
        dims[0] = 5;
        *vocab = 11;
        break;
    case MODEL_LSTM:
        ADD(od_lstm_create(&f->ctx, "lstm", 3, 5, 1, L_));
        ADD(od_flatten_create("flat", L_));
        ADD(od_linear_create(&f->ctx, "fc", 4 * 5, 3, 1, L_));
        *ndim = 2;
        dims[0] = 4;
        dims[1] = 3;
        break;
    default:
        fail();
    }
    od_model_init(m, 17 + (uint64_t)kind);
    return m;
}

/* A batch (n, sample...) of random inputs and labels in memory from the
 * step arena. Ids for embeddings, U(-1, 1) otherwise. */
static od_tensor rand_batch(fixture *f, int n, int ndim, const int *dims,
                            int vocab, int classes, int32_t *labels)
{
    int full[OD_MAX_DIMS] = {n};
    for (int i = 0; i < ndim; i++)
        full[1 + i] = dims[i];
    od_tensor x;
    assert_int_equal(od_tensor_alloc(f->arena, OD_MEM_ACT, &x, ndim + 1,
                                     full), OD_OK);
    for (size_t k = 0; k < x.size; k++)
        x.data[k] = vocab ? (float)od_rng_below(&f->rng, (uint64_t)vocab)
                          : 2.0f * od_rng_uniformf(&f->rng) - 1.0f;
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)od_rng_below(&f->rng, (uint64_t)classes);
    return x;
}

static size_t grad_size(const od_model *m)
{
    size_t s = 0;
    for (int k = 0; k < m->nparams; k++)
        s += m->params[k]->grad.size;
    return s;
}

static void flat_grads(const od_model *m, double *out)
{
    size_t o = 0;
    for (int k = 0; k < m->nparams; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++)
            out[o++] = m->params[k]->grad.data[i];
}

/* ||a - b|| / ||b||. */
static double rel_residual(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1.0));
}

/* Per-example norms and the clipped sum against one backward per example,
 * for one model kind. */
static void check_kind(fixture *f, model_kind kind)
{
    int ndim, dims[OD_MAX_DIMS], classes, vocab;
    od_model *m = build(f, kind, &ndim, dims, &classes, &vocab);
    enum { N = 6 };
    int32_t labels[N];
    od_tensor x = rand_batch(f, N, ndim, dims, vocab, classes, labels);
    size_t gs = grad_size(m);
    double *ref = calloc((size_t)N * gs, sizeof *ref);   /* (N, gs) */
    double *sum_ref = calloc(gs, sizeof *sum_ref);
    double *sum = calloc(gs, sizeof *sum);
    assert_non_null(ref);
    assert_non_null(sum_ref);
    assert_non_null(sum);

    /* Reference: each example alone. */
    double ref_norm[N];
    size_t per = x.size / N;
    for (int i = 0; i < N; i++) {
        od_tensor xi = x, logits, dl;
        xi.dims[0] = 1;
        xi.size = per;
        xi.data = x.data + (size_t)i * per;
        double loss;
        int count;
        od_model_zero_grad(m);
        assert_int_equal(od_model_forward(m, &xi, 1, &logits), OD_OK);
        assert_int_equal(od_model_xent(m, &logits, labels + i, &loss, &count,
                                       NULL, &dl), OD_OK);
        assert_int_equal(od_model_backward(m, &dl), OD_OK);
        flat_grads(m, ref + (size_t)i * gs);
        double s = 0;
        for (size_t k = 0; k < gs; k++)
            s += ref[(size_t)i * gs + k] * ref[(size_t)i * gs + k];
        ref_norm[i] = sqrt(s);
    }

    /* Clip at the median norm so that some examples are clipped and some
     * are not. */
    double sorted[N];
    memcpy(sorted, ref_norm, sizeof sorted);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (sorted[j] < sorted[i]) {
                double t = sorted[i];
                sorted[i] = sorted[j];
                sorted[j] = t;
            }
    float clip = (float)(0.5 * (sorted[N / 2 - 1] + sorted[N / 2]));
    int clipped = 0;
    for (int i = 0; i < N; i++) {
        double s = ref_norm[i] > clip ? clip / ref_norm[i] : 1.0;
        clipped += ref_norm[i] > clip;
        for (size_t k = 0; k < gs; k++)
            sum_ref[k] += s * ref[(size_t)i * gs + k];
    }
    assert_true(clipped > 0 && clipped < N);

    /* The batch at once. */
    od_tensor logits, dl;
    double loss;
    int count;
    float norms[N], scales[N];
    od_model_zero_grad(m);
    assert_int_equal(od_model_forward(m, &x, 1, &logits), OD_OK);
    assert_int_equal(od_dpsgd_example_xent(m, &logits, labels, &loss,
                                           &count, &dl), OD_OK);
    assert_int_equal(od_pergrad_clipped_backward(m, &dl, clip, norms,
                                                 scales), OD_OK);
    flat_grads(m, sum);
    for (int i = 0; i < N; i++) {
        double e = fabs(norms[i] - ref_norm[i]) / ref_norm[i];
        if (e > OD_TEST_TOL)
            fail_msg("model %d example %d: norm %g, reference %g", kind, i,
                     (double)norms[i], ref_norm[i]);
        assert_true(scales[i] * norms[i] <= clip * (1 + 1e-6));
    }
    double r = rel_residual(sum, sum_ref, gs);
    if (r > OD_TEST_TOL)
        fail_msg("model %d: clipped sum off by %g", kind, r);

    /* Norms alone leave the gradients as they were. */
    float norms2[N];
    assert_int_equal(od_pergrad_norms(m, &dl, norms2), OD_OK);
    flat_grads(m, sum_ref);
    assert_true(rel_residual(sum_ref, sum, gs) == 0.0);
    for (int i = 0; i < N; i++)
        assert_true(fabsf(norms2[i] - norms[i]) <= 1e-6f * norms[i]);

    /* The fresh variant, over stale gradients, sets the same sum. */
    for (int k = 0; k < m->nparams; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++)
            m->params[k]->grad.data[i] = NAN;
    assert_int_equal(od_pergrad_clipped_backward_fresh(m, &dl, clip, NULL,
                                                       NULL), OD_OK);
    flat_grads(m, sum_ref);
    r = rel_residual(sum_ref, sum, gs);
    if (!(r == 0.0))
        fail_msg("model %d: the fresh clipped sum differs by %g", kind, r);

    free(ref);
    free(sum_ref);
    free(sum);
    od_model_destroy(m);
}

static void test_norms_every_layer_kind(void **state)
{
    fixture *f = *state;
    for (int k = 0; k < MODEL_COUNT; k++) {
        check_kind(f, (model_kind)k);
        od_arena_reset_step(f->arena);
    }
}

/* ---- Steps through od_dpsgd ------------------------------------------------ */

typedef struct toy_data {
    fixture *f;
    int n, dim;
    float *x;        /* (n, dim) */
    int32_t *y;      /* (n) */
} toy_data;

static od_status toy_fetch(void *arg, const int32_t *idx, int n,
                           od_tensor *x, int32_t **labels)
{
    toy_data *t = arg;
    OD_TRY(od_tensor_alloc2(t->f->arena, OD_MEM_ACT, x, n, t->dim));
    void *p;
    OD_TRY(od_arena_alloc(t->f->arena, OD_MEM_SCRATCH,
                          (size_t)(n ? n : 1) * sizeof(int32_t), &p));
    *labels = p;
    for (int i = 0; i < n; i++) {
        memcpy(x->data + (size_t)i * t->dim, t->x + (size_t)idx[i] * t->dim,
               (size_t)t->dim * sizeof(float));
        (*labels)[i] = t->y[idx[i]];
    }
    return OD_OK;
}

static void toy_init(fixture *f, toy_data *t, int n, int dim)
{
    t->f = f;
    t->n = n;
    t->dim = dim;
    t->x = malloc((size_t)n * dim * sizeof(float));
    t->y = malloc((size_t)n * sizeof(int32_t));
    assert_non_null(t->x);
    assert_non_null(t->y);
    for (int i = 0; i < n * dim; i++)
        t->x[i] = 3.0f * (2.0f * od_rng_uniformf(&f->rng) - 1.0f);
    for (int i = 0; i < n; i++)
        t->y[i] = (int32_t)od_rng_below(&f->rng, 4);
}

static od_model *toy_model(fixture *f, int dim)
{
    od_model *m;
    assert_int_equal(od_model_create(&f->ctx, &m), OD_OK);
    ADD(od_linear_create(&f->ctx, "fc1", dim, 9, 1, L_));
    ADD(od_activation_create("act", OD_ACT_RELU, L_));
    ADD(od_linear_create(&f->ctx, "fc2", 9, 4, 1, L_));
    od_model_init(m, 3);
    return m;
}

/* Gradient accumulation over micro-batches of 1, 3 and 4 examples gives
 * the one-batch result, noise included. */
static void test_microbatches_match_one_batch(void **state)
{
    fixture *f = *state;
    toy_data t;
    toy_init(f, &t, 40, 6);
    od_model *m = toy_model(f, 6);
    size_t gs = grad_size(m);
    double *one = malloc(gs * sizeof *one), *acc = malloc(gs * sizeof *acc);
    assert_non_null(one);
    assert_non_null(acc);
    int32_t idx[10] = {3, 17, 5, 39, 0, 22, 8, 30, 11, 14};
    int mbs[4] = {0, 1, 3, 4};
    for (int v = 0; v < 4; v++) {
        od_dpsgd_config c = {.clip_norm = 0.7, .noise_multiplier = 1.3,
                             .sampling = OD_SAMPLING_SHUFFLE,
                             .dataset_size = 40, .batch_size = 10,
                             .microbatch = mbs[v], .seed = 8};
        od_dpsgd *d;
        assert_int_equal(od_dpsgd_create(&c, &d), OD_OK);
        double loss;
        int count;
        assert_int_equal(od_dpsgd_step(d, m, 4, idx, 10, toy_fetch, &t,
                                       &loss, &count), OD_OK);
        assert_int_equal(count, 10);
        assert_true(od_dpsgd_get_stats(d)->clipped > 0);
        flat_grads(m, v == 0 ? one : acc);
        if (v > 0) {
            double r = rel_residual(acc, one, gs);
            if (r > 1e-5)
                fail_msg("micro-batch %d: off by %g", mbs[v], r);
        }
        od_dpsgd_destroy(d);
        od_arena_reset_step(f->arena);
    }
    free(one);
    free(acc);
    free(t.x);
    free(t.y);
    od_model_destroy(m);
}

/* A DP-SGD step with the SGD update applied in the step itself
 * (od_dpsgd_step_apply, for the linear layers; the layer norm takes
 * od_optim_step) against od_dpsgd_step then od_optim_step: the same
 * parameters to rounding, noise included, with weight decay, over Poisson
 * steps (empty ones among them) and with micro-batches (a batch that takes
 * more than one pass turns the fused update off). */
static void test_step_apply(void **state)
{
    fixture *f = *state;
    toy_data t;
    toy_init(f, &t, 30, 6);
    for (int mb = 0; mb < 2; mb++) {
        od_model *m[2];
        od_optim *o[2];
        od_dpsgd *d[2];
        od_optim_config oc = od_optim_config_default(OD_OPTIM_SGD);
        oc.lr = 0.2f;
        oc.weight_decay = 0.05f;
        od_dpsgd_config c = {.clip_norm = 0.5, .noise_multiplier = 1.1,
                             .sampling = OD_SAMPLING_POISSON,
                             .dataset_size = 30, .batch_size = 2,
                             .microbatch = mb ? 1 : 0, .seed = 5};
        for (int k = 0; k < 2; k++) {
            od_model *model;
            assert_int_equal(od_model_create(&f->ctx, &model), OD_OK);
            {
                od_model *m = model;   /* for ADD */
                ADD(od_linear_create(&f->ctx, "fc1", 6, 9, 1, L_));
                ADD(od_layernorm_create(&f->ctx, "ln", 9, 1e-5f, L_));
                ADD(od_activation_create("act", OD_ACT_RELU, L_));
                ADD(od_linear_create(&f->ctx, "fc2", 9, 4, 1, L_));
            }
            od_model_init(model, 3);
            m[k] = model;
            assert_int_equal(od_optim_create(&f->ctx, model, &oc, &o[k]),
                             OD_OK);
            assert_int_equal(od_dpsgd_create(&c, &d[k]), OD_OK);
        }
        float alpha, beta;
        assert_true(od_optim_fusable(o[1], -1.0f, &alpha, &beta));
        int empty = 0, applied = 0, one_pass = 0;
        for (uint64_t step = 0; step < 24; step++)
            for (int k = 0; k < 2; k++) {
                double loss;
                int count;
                assert_int_equal(
                    k ? od_dpsgd_step_apply(d[k], m[k], step, NULL, 0,
                                            toy_fetch, &t, alpha, beta,
                                            &loss, &count)
                      : od_dpsgd_step(d[k], m[k], step, NULL, 0, toy_fetch,
                                      &t, &loss, &count), OD_OK);
                if (k) {
                    empty += count == 0;
                    one_pass += count > 0 && (!mb || count == 1);
                    applied += m[k]->params[0]->applied;
                    assert_int_equal(m[k]->params[2]->applied, 0);  /* ln */
                }
                assert_int_equal(od_optim_step(o[k], -1.0f), OD_OK);
                od_arena_reset_step(f->arena);
            }
        /* Poisson at q = 1/15 over 24 steps: some steps are empty, and
         * with micro-batches of 1 some take more than one pass. */
        assert_true(empty > 0 && empty < 24);
        assert_int_equal(applied, one_pass);
        assert_true(mb ? one_pass < 24 - empty : one_pass == 24 - empty);
        for (int q = 0; q < m[0]->nparams; q++) {
            const od_tensor *a = &m[0]->params[q]->value;
            const od_tensor *b = &m[1]->params[q]->value;
            float scale = 0;
            for (size_t i = 0; i < a->size; i++)
                scale = fmaxf(scale, fabsf(a->data[i]));
            for (size_t i = 0; i < a->size; i++)
                if (!(fabsf(a->data[i] - b->data[i]) <= 2e-6f * scale))
                    fail_msg("micro-batch %d %s[%zu]: %.9g applied, %.9g "
                             "stepped", mb, m[0]->params[q]->name, i,
                             (double)b->data[i], (double)a->data[i]);
        }
        for (int k = 0; k < 2; k++) {
            od_dpsgd_destroy(d[k]);
            od_optim_destroy(o[k]);
            od_model_destroy(m[k]);
        }
    }
    free(t.x);
    free(t.y);
}

/* An empty Poisson batch is a normal step: no examples, noise only. */
static void test_empty_poisson_batch(void **state)
{
    fixture *f = *state;
    toy_data t;
    toy_init(f, &t, 30, 5);
    od_model *m = toy_model(f, 5);
    od_dpsgd_config c = {.clip_norm = 1.0, .noise_multiplier = 0.0,
                         .sampling = OD_SAMPLING_POISSON,
                         .dataset_size = 30, .batch_size = 1, .seed = 2};
    od_dpsgd *d;
    assert_int_equal(od_dpsgd_create(&c, &d), OD_OK);
    int32_t idx[30];
    uint64_t step = 0;
    while (od_dpsgd_poisson_batch(d, step, idx) != 0)
        step++;
    assert_true(step < 100);  /* P(empty) = (1 - 1/30)^30, about 0.36 */

    double loss = -1;
    int count = -1;
    m->params[0]->grad.data[0] = 5.0f;  /* must be zeroed by the step */
    assert_int_equal(od_dpsgd_step(d, m, step, NULL, 0, toy_fetch, &t,
                                   &loss, &count), OD_OK);
    assert_int_equal(count, 0);
    assert_true(loss == 0.0);
    for (int k = 0; k < m->nparams; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++)
            assert_true(m->params[k]->grad.data[i] == 0.0f);
    assert_int_equal(od_dpsgd_get_stats(d)->empty_batches, 1);

    /* With noise, the empty step's update is pure noise / (q N). */
    od_dpsgd_destroy(d);
    c.noise_multiplier = 2.0;
    assert_int_equal(od_dpsgd_create(&c, &d), OD_OK);
    assert_int_equal(od_dpsgd_step(d, m, step, NULL, 0, toy_fetch, &t,
                                   &loss, &count), OD_OK);
    double ss = 0;
    size_t n = 0;
    for (int k = 0; k < m->nparams; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++, n++)
            ss += (double)m->params[k]->grad.data[i]
                  * m->params[k]->grad.data[i];
    /* Expected variance (σ C / (q N))^2 = 4. */
    assert_true(fabs(ss / (double)n - 4.0) < 4.0 * 0.5);
    od_dpsgd_destroy(d);
    free(t.x);
    free(t.y);
    od_model_destroy(m);
}

/* The observed Poisson sampling rate over many steps matches q. */
static void test_poisson_rate(void **state)
{
    (void)state;
    od_dpsgd_config c = {.clip_norm = 1.0, .noise_multiplier = 1.0,
                         .sampling = OD_SAMPLING_POISSON,
                         .dataset_size = 2000, .batch_size = 50, .seed = 9};
    od_dpsgd *d;
    assert_int_equal(od_dpsgd_create(&c, &d), OD_OK);
    int32_t *idx = malloc(2000 * sizeof *idx);
    assert_non_null(idx);
    int64_t total = 0, first_tenth = 0, last_tenth = 0, at0 = 0;
    int lo = 2000, hi = 0;
    for (uint64_t s = 0; s < 400; s++) {
        int n = od_dpsgd_poisson_batch(d, s, idx);
        for (int i = 0; i < n; i++) {
            assert_true(idx[i] >= 0 && idx[i] < 2000);
            assert_true(i == 0 || idx[i] > idx[i - 1]);
            first_tenth += idx[i] < 200;
            last_tenth += idx[i] >= 1800;
        }
        at0 += n > 0 && idx[0] == 0;
        total += n;
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
    }
    /* Binomial(800000, 0.025): mean 20000, sd 139.6. */
    assert_true(fabs((double)total - 20000.0) < 5 * 139.6);
    assert_true(lo < 50 && hi > 50);  /* the batch size varies */
    /* Every position equally likely, the ends included: the first and the
     * last tenth each Binomial(80000, 0.025), mean 2000, sd 44.2; example
     * 0 Binomial(400, 0.025), mean 10, sd 3.1. */
    assert_true(fabs((double)first_tenth - 2000.0) < 5 * 44.2);
    assert_true(fabs((double)last_tenth - 2000.0) < 5 * 44.2);
    assert_true(at0 >= 1 && at0 <= 26);
    od_dpsgd_destroy(d);

    /* q = 1 (the batch as large as the data): every example, in order. */
    c.batch_size = 2500;
    assert_int_equal(od_dpsgd_create(&c, &d), OD_OK);
    assert_int_equal(od_dpsgd_poisson_batch(d, 0, idx), 2000);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(idx[i], i);
    free(idx);
    od_dpsgd_destroy(d);
}

static void test_bad_config(void **state)
{
    (void)state;
    od_dpsgd *d;
    od_dpsgd_config c = {.clip_norm = 0.0, .noise_multiplier = 1.0,
                         .dataset_size = 10, .batch_size = 2};
    assert_int_equal(od_dpsgd_create(&c, &d), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "clip_norm"));
    c.clip_norm = 1.0;
    c.noise_multiplier = -1.0;
    assert_int_equal(od_dpsgd_create(&c, &d), OD_ERR_INVALID);
}

/* ---- Noise ------------------------------------------------------------------ */

/* Standard normal CDF. */
static double phi(double x)
{
    return 0.5 * erfc(-x / sqrt(2.0));
}

static void test_noise_distribution(void **state)
{
    fixture *f = *state;
    od_noise g;
    assert_int_equal(od_noise_init(&g, 1234), OD_OK);
    enum { N = 400000, BINS = 40 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    const double sd = 2.5;
    od_noise_fill(&g, f->pool, 77, 3, (float)sd, x, N);

    /* Variance: sum (x / sd)^2 is chi-square with N degrees of freedom,
     * mean N and sd sqrt(2 N). */
    double ss = 0, s = 0;
    for (int i = 0; i < N; i++) {
        ss += (x[i] / sd) * (x[i] / sd);
        s += x[i] / sd;
    }
    double z_var = (ss - N) / sqrt(2.0 * N);
    if (fabs(z_var) > 4.0)
        fail_msg("variance chi-square z = %g", z_var);
    assert_true(fabs(s / sqrt((double)N)) < 4.0);

    /* Shape: chi-square goodness of fit over BINS equiprobable bins;
     * BINS - 1 degrees of freedom, mean 39, sd 8.8: fail above 39 + 4 sd. */
    int counts[BINS] = {0};
    for (int i = 0; i < N; i++) {
        double u = phi(x[i] / sd);
        int b = (int)(u * BINS);
        counts[b < BINS ? b : BINS - 1]++;
    }
    double chi2 = 0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++)
        chi2 += (counts[b] - e) * (counts[b] - e) / e;
    if (chi2 > 39.0 + 4.0 * sqrt(78.0))
        fail_msg("shape chi-square %g over %d bins", chi2, BINS);

    /* Tails beyond 3.44 sd come from the ziggurat's tail routine: their
     * frequency 2 (1 - Phi(3.4426)) = 5.76e-4 must be met. */
    int tail = 0;
    for (int i = 0; i < N; i++)
        tail += fabs(x[i] / sd) > 3.4426;
    double et = N * 2.0 * (1.0 - phi(3.4426));
    assert_true(fabs(tail - et) < 4.0 * sqrt(et));

    /* Reproducible, independent of threads, different per stream. */
    od_noise_fill(&g, NULL, 77, 3, (float)sd, y, N);
    assert_memory_equal(x, y, N * sizeof *x);
    od_noise_fill(&g, f->pool, 78, 3, (float)sd, y, N);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += x[i] == y[i];
    assert_true(same < 10);
    od_noise g2;
    assert_int_equal(od_noise_init(&g2, 1235), OD_OK);
    od_noise_fill(&g2, f->pool, 77, 3, (float)sd, y, N);
    assert_true(x[0] != y[0] || x[1] != y[1]);

    /* Adding gives the same draws. */
    memset(y, 0, N * sizeof *y);
    od_noise_add(&g, f->pool, 77, 3, (float)sd, 1.0f, y, N);
    assert_memory_equal(x, y, N * sizeof *x);

    /* Every instruction set draws the same values bit for bit (the
     * AVX-512 and AVX2 loops take 16 and 8 words at a time and hand their
     * rejections to the scalar slow path), filling and adding to non-zero
     * values. */
    float *z = malloc(N * sizeof *z);
    assert_non_null(z);
    for (int i = 0; i < N; i++)
        y[i] = 0.25f * (float)(i % 7) - 0.5f;
    od_cpu_set_isa(OD_ISA_PORTABLE);
    od_noise_fill(&g, f->pool, 79, 5, (float)sd, x, N);
    od_noise_add(&g, f->pool, 79, 6, (float)sd, 0.75f, y, N);
    float *x2 = malloc(N * sizeof *x2);
    assert_non_null(x2);
    for (int isa = OD_ISA_PORTABLE + 1; isa <= (int)od_cpu_isa_detected();
         isa++) {
        od_cpu_set_isa((od_isa)isa);
        for (int i = 0; i < N; i++)
            z[i] = 0.25f * (float)(i % 7) - 0.5f;
        od_noise_fill(&g, f->pool, 79, 5, (float)sd, x2, N);
        od_noise_add(&g, f->pool, 79, 6, (float)sd, 0.75f, z, N);
        assert_memory_equal(x, x2, N * sizeof *x);
        assert_memory_equal(y, z, N * sizeof *y);
    }
    od_cpu_set_isa(od_cpu_isa_detected());
    free(x);
    free(x2);
    free(y);
    free(z);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_norms_every_layer_kind, reset_step),
        cmocka_unit_test_teardown(test_microbatches_match_one_batch,
                                  reset_step),
        cmocka_unit_test_teardown(test_step_apply, reset_step),
        cmocka_unit_test_teardown(test_empty_poisson_batch, reset_step),
        cmocka_unit_test(test_poisson_rate),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_noise_distribution),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
