/* Layers, models and the gradient checker.
 *
 * Every layer kind's input and parameter gradients are compared with central
 * differences by od_gradcheck_* (float perturbations, loss accumulated in
 * double). Tolerance: a worst relative error below OD_TEST_TOL = 1e-2, with
 * coordinates far below their tensor's scale judged against 1 % of it (see
 * gradcheck.h). A wrong gradient (a missing term, a transposed product, a
 * gate out of order) gives errors of order 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/gradcheck.h"
#include "engine/model.h"
#include "engine/optim.h"

#define OD_TEST_TOL 1e-2

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
    f.ctx = (od_ctx){.arena = f.arena, .pool = f.pool, .trace = &f.trace, .seed = 1234};
    od_rng_seed(&f.rng, 42, 7);
    *state = &f;
    return f.arena && f.pool ? 0 : -1;
}

/* After each test: step memory goes, whether the test passed or not. */
static int reset_step(void **state)
{
    fixture *f = *state;
    od_arena_reset_step(f->arena);
    f->ctx.step = 0;
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

/* A step-memory tensor filled from U(lo, hi). */
static od_tensor rand_tensor(fixture *f, int ndim, const int *dims, float lo,
                             float hi)
{
    od_tensor t;
    assert_int_equal(od_tensor_alloc(f->arena, OD_MEM_ACT, &t, ndim, dims),
                     OD_OK);
    for (size_t i = 0; i < t.size; i++)
        t.data[i] = lo + (hi - lo) * od_rng_uniformf(&f->rng);
    return t;
}

/* Give every parameter random values, so that no check passes because a
 * parameter is zero or one. */
static void randomise_params(fixture *f, od_layer *l, float bound)
{
    for (int i = 0; i < l->nparams; i++) {
        od_tensor *v = &l->params[i]->value;
        for (size_t j = 0; j < v->size; j++)
            v->data[j] = bound * (2.0f * od_rng_uniformf(&f->rng) - 1.0f);
    }
}

/* Check one layer and fail the test when its worst error is too large. */
static void check_layer(fixture *f, od_layer *l, od_tensor *x,
                        int check_input, const od_gradcheck_opts *opts)
{
    od_gradcheck_opts def = {.seed = 5};
    od_gradcheck_result r;
    od_status st = od_gradcheck_layer(&f->ctx, l, x, NULL, check_input,
                                      opts ? opts : &def, &r);
    if (st != OD_OK)
        fail_msg("%s: %s", l->name, od_error_message());
    print_message("%-10s checked %4d skipped %d worst %.2e at %s\n", l->name,
                  r.checked, r.skipped, r.max_rel_err, r.worst);
    assert_true(r.checked > 0);
    if (r.max_rel_err >= OD_TEST_TOL)
        fail_msg("%s: relative error %.3e at %s", l->name, r.max_rel_err,
                 r.worst);
}

static void test_linear(void **state)
{
    fixture *f = *state;
    od_layer *l;
    assert_int_equal(od_linear_create(&f->ctx, "fc", 7, 5, 1, &l), OD_OK);
    od_layer_vtbl const *vt = l->vt;
    vt->init(l, &f->rng);

    int d2[2] = {3, 7};
    od_tensor x2 = rand_tensor(f, 2, d2, -1, 1);
    check_layer(f, l, &x2, 1, NULL);

    /* A sequence (N, T, in) goes through the last dimension. */
    int d3[3] = {2, 3, 7};
    od_tensor x3 = rand_tensor(f, 3, d3, -1, 1);
    od_tensor y;
    assert_int_equal(vt->forward(l, &f->ctx, &x3, &y, 1), OD_OK);
    assert_int_equal(y.ndim, 3);
    assert_int_equal(y.dims[2], 5);
    check_layer(f, l, &x3, 1, NULL);

    /* Without a bias. */
    od_layer *nb;
    assert_int_equal(od_linear_create(&f->ctx, "fc_nobias", 4, 3, 0, &nb),
                     OD_OK);
    assert_int_equal(nb->nparams, 1);
    randomise_params(f, nb, 0.5f);
    int d4[2] = {5, 4};
    od_tensor x4 = rand_tensor(f, 2, d4, -1, 1);
    check_layer(f, nb, &x4, 1, NULL);
    nb->vt->destroy(nb);
    l->vt->destroy(l);
}

static void test_conv2d(void **state)
{
    fixture *f = *state;
    od_layer *l;
    assert_int_equal(od_conv2d_create(&f->ctx, "conv", 3, 4, 3, 3, 2, 1, 1,
                                      &l), OD_OK);
    l->vt->init(l, &f->rng);
    int d[4] = {2, 3, 7, 9};
    od_tensor x = rand_tensor(f, 4, d, -1, 1);
    od_tensor y;
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y, 1), OD_OK);
    assert_int_equal(y.dims[1], 4);
    assert_int_equal(y.dims[2], 4); /* (7 + 2 - 3) / 2 + 1 */
    assert_int_equal(y.dims[3], 5); /* (9 + 2 - 3) / 2 + 1 */
    od_gradcheck_opts all = {.seed = 5, .max_per_tensor = 400};
    check_layer(f, l, &x, 1, &all);
    l->vt->destroy(l);
}

/* Values spaced 0.05 apart in a shuffled order: no two elements of a window
 * come within 2h of each other, so the maximum never switches. */
static od_tensor spaced_tensor(fixture *f, int ndim, const int *dims)
{
    od_tensor t = rand_tensor(f, ndim, dims, 0, 1);
    int32_t idx[512];
    assert_true(t.size <= 512);
    for (size_t i = 0; i < t.size; i++)
        idx[i] = (int32_t)i;
    od_rng_shuffle(&f->rng, idx, (int)t.size);
    for (size_t i = 0; i < t.size; i++)
        t.data[i] = 0.05f * (float)idx[i] - 3.0f;
    return t;
}

static void test_pooling(void **state)
{
    fixture *f = *state;
    od_layer *mp, *ap;
    assert_int_equal(od_maxpool2d_create("maxpool", 2, 2, &mp), OD_OK);
    assert_int_equal(od_avgpool2d_create("avgpool", 3, 2, &ap), OD_OK);

    int d[4] = {2, 3, 5, 7};
    od_tensor x = spaced_tensor(f, 4, d);
    od_gradcheck_opts opts = {.step = 5e-3f, .seed = 3};
    check_layer(f, mp, &x, 1, &opts);

    int d2[4] = {2, 2, 7, 5};
    od_tensor x2 = rand_tensor(f, 4, d2, -1, 1);
    check_layer(f, ap, &x2, 1, NULL);
    mp->vt->destroy(mp);
    ap->vt->destroy(ap);
}

static void test_activations(void **state)
{
    fixture *f = *state;
    const od_act acts[] = {OD_ACT_RELU, OD_ACT_TANH, OD_ACT_SIGMOID,
                           OD_ACT_GELU};
    for (int a = 0; a < 4; a++) {
        od_layer *l;
        assert_int_equal(od_activation_create(NULL, acts[a], &l), OD_OK);
        int d[2] = {3, 11};
        od_tensor x = rand_tensor(f, 2, d, -2, 2);
        /* Keep ReLU's inputs at least 0.1 from its kink at 0. */
        for (size_t i = 0; i < x.size; i++)
            if (fabsf(x.data[i]) < 0.1f)
                x.data[i] = x.data[i] < 0 ? -0.1f - x.data[i]
                                          : 0.1f + x.data[i];
        check_layer(f, l, &x, 1, NULL);
        l->vt->destroy(l);
    }
}

static void test_dropout(void **state)
{
    fixture *f = *state;
    od_layer *l;
    assert_int_equal(od_dropout_create("drop", 0.3f, &l), OD_OK);
    int d[2] = {4, 50};
    od_tensor x = rand_tensor(f, 2, d, 0.5f, 1.5f);

    /* The mask is fixed within a step, so the check sees one function. */
    check_layer(f, l, &x, 1, NULL);

    /* Kept units are scaled by 1 / (1 - p); about p of them are dropped;
     * the same step repeats the mask and another step changes it. */
    od_tensor y1, y2, y3, ye;
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y1, 1), OD_OK);
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y2, 1), OD_OK);
    f->ctx.step++;
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y3, 1), OD_OK);
    f->ctx.step--;
    int dropped = 0, differ = 0;
    for (size_t i = 0; i < x.size; i++) {
        assert_true(y1.data[i] == 0.0f
                    || fabsf(y1.data[i] - x.data[i] / 0.7f) < 1e-6f);
        dropped += y1.data[i] == 0.0f;
        assert_true(y1.data[i] == y2.data[i]);
        differ += y1.data[i] != y3.data[i];
    }
    assert_in_range(dropped, 30, 90); /* 60 expected of 200 */
    assert_true(differ > 0);

    /* Outside training it is the identity. */
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &ye, 0), OD_OK);
    assert_memory_equal(ye.data, x.data, x.size * sizeof(float));
    l->vt->destroy(l);
    od_arena_reset_step(f->arena);
}

static void test_embedding(void **state)
{
    fixture *f = *state;
    od_layer *l;
    assert_int_equal(od_embedding_create(&f->ctx, "emb", 11, 5, &l), OD_OK);
    l->vt->init(l, &f->rng);
    int d[2] = {3, 4};
    od_tensor ids = rand_tensor(f, 2, d, 0, 1);
    const float v[12] = {0, 3, 3, 10, 7, 0, 1, 2, 3, 10, 10, 5};
    memcpy(ids.data, v, sizeof v);
    check_layer(f, l, &ids, 0, NULL);

    /* Repeated ids accumulate: row 10 appears three times. */
    od_tensor y, dy, dx;
    assert_int_equal(l->vt->forward(l, &f->ctx, &ids, &y, 1), OD_OK);
    memset(l->params[0]->grad.data, 0, 55 * sizeof(float));
    assert_int_equal(od_tensor_alloc(f->arena, OD_MEM_ACT, &dy, y.ndim,
                                     y.dims), OD_OK);
    for (size_t i = 0; i < dy.size; i++)
        dy.data[i] = 1.0f;
    assert_int_equal(l->vt->backward(l, &f->ctx, &dy, &dx), OD_OK);
    assert_float_equal(l->params[0]->grad.data[10 * 5], 3.0f, 0.0f);
    assert_float_equal(l->params[0]->grad.data[4 * 5], 0.0f, 0.0f);

    /* Ids outside the vocabulary are refused. */
    ids.data[5] = 11;
    assert_int_equal(l->vt->forward(l, &f->ctx, &ids, &y, 1),
                     OD_ERR_INVALID);
    ids.data[5] = 2.5f;
    assert_int_equal(l->vt->forward(l, &f->ctx, &ids, &y, 1),
                     OD_ERR_INVALID);
    l->vt->destroy(l);
    od_arena_reset_step(f->arena);
}

static void test_layernorm(void **state)
{
    fixture *f = *state;
    od_layer *l;
    assert_int_equal(od_layernorm_create(&f->ctx, "ln", 7, 1e-5f, &l), OD_OK);
    /* PyTorch's initial values: weight 1, bias 0. */
    assert_float_equal(l->params[0]->value.data[3], 1.0f, 0.0f);
    assert_float_equal(l->params[1]->value.data[3], 0.0f, 0.0f);

    int d[3] = {3, 2, 7};
    od_tensor x = rand_tensor(f, 3, d, -2, 2);
    od_tensor y;
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y, 1), OD_OK);
    double mean = 0, var = 0;
    for (int j = 0; j < 7; j++)
        mean += y.data[j] / 7.0;
    for (int j = 0; j < 7; j++)
        var += (y.data[j] - mean) * (y.data[j] - mean) / 7.0;
    assert_true(fabs(mean) < 1e-5 && fabs(var - 1.0) < 1e-3);

    randomise_params(f, l, 1.0f);
    check_layer(f, l, &x, 1, NULL);
    l->vt->destroy(l);
}

static void check_recurrent(fixture *f, int lstm, int return_seq)
{
    od_layer *l;
    const char *name = lstm ? (return_seq ? "lstm_seq" : "lstm_last")
                            : (return_seq ? "gru_seq" : "gru_last");
    od_status st = lstm ? od_lstm_create(&f->ctx, name, 4, 5, return_seq, &l)
                        : od_gru_create(&f->ctx, name, 4, 5, return_seq, &l);
    assert_int_equal(st, OD_OK);
    randomise_params(f, l, 0.6f);
    int d[3] = {2, 4, 4}; /* N = 2, T = 4, I = 4 */
    od_tensor x = rand_tensor(f, 3, d, -1, 1);
    od_tensor y;
    assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y, 1), OD_OK);
    assert_int_equal(y.ndim, return_seq ? 3 : 2);
    assert_int_equal(y.dims[y.ndim - 1], 5);
    /* Round-off of the float forward dominates small steps here; the
     * fourth-order stencil allows a step of 5e-2 (worst errors ~1e-3). */
    od_gradcheck_opts opts = {.step = 5e-2f, .high_order = 1, .seed = 9,
                              .max_per_tensor = 128};
    check_layer(f, l, &x, 1, &opts);
    l->vt->destroy(l);
}

static void test_gru_lstm_gradients(void **state)
{
    fixture *f = *state;
    for (int lstm = 0; lstm < 2; lstm++)
        for (int seq = 0; seq < 2; seq++)
            check_recurrent(f, lstm, seq);
}

/* Forward values against PyTorch 2 (torch.nn.GRU / nn.LSTM, batch_first,
 * I = 2, H = 3, T = 3, N = 2) with element k of weight_ih, weight_hh,
 * bias_ih, bias_hh and x set to 0.5 sin(k + 1), 0.5 sin(k + 101),
 * 0.3 sin(k + 201), 0.3 sin(k + 301) and sin(k + 401), row-major; the
 * output y (N, T, H) was printed with 8 decimals by /usr/bin/python3. */
static const float od__torch_gru[18] = {
    -0.21350490f, -0.04320844f, 0.39384350f, -0.00235730f, 0.08770841f,
    -0.03773105f, -0.22110133f, 0.23114939f, 0.32352293f, -0.29375303f,
    -0.03483853f, 0.40041241f, -0.05182391f, 0.04677387f, 0.05840228f,
    -0.15751442f, 0.21716255f, 0.28267863f,
};
static const float od__torch_lstm[18] = {
    -0.10285325f, -0.01212762f, 0.24514595f, 0.09343215f, 0.04516847f,
    0.02155516f, -0.08249830f, 0.13470176f, 0.16788793f, -0.10392522f,
    -0.00976869f, 0.28368923f, 0.08470871f, 0.01886550f, 0.03713803f,
    -0.06753257f, 0.14143997f, 0.11642969f,
};

static void fill_sin(od_tensor *t, int offset, float scale)
{
    for (size_t k = 0; k < t->size; k++)
        t->data[k] = scale * (float)sin((double)offset + (double)k + 1.0);
}

static void test_recurrent_vs_torch(void **state)
{
    fixture *f = *state;
    for (int lstm = 0; lstm < 2; lstm++) {
        for (int seq = 0; seq < 2; seq++) {
            od_layer *l;
            od_status st = lstm ? od_lstm_create(&f->ctx, "rnn", 2, 3, seq, &l)
                                : od_gru_create(&f->ctx, "rnn", 2, 3, seq, &l);
            assert_int_equal(st, OD_OK);
            assert_string_equal(l->params[1]->name, "rnn.weight_hh");
            fill_sin(&l->params[0]->value, 0, 0.5f);
            fill_sin(&l->params[1]->value, 100, 0.5f);
            fill_sin(&l->params[2]->value, 200, 0.3f);
            fill_sin(&l->params[3]->value, 300, 0.3f);
            int d[3] = {2, 3, 2};
            od_tensor x, y;
            assert_int_equal(od_tensor_alloc(f->arena, OD_MEM_ACT, &x, 3, d),
                             OD_OK);
            fill_sin(&x, 400, 1.0f);
            assert_int_equal(l->vt->forward(l, &f->ctx, &x, &y, 0), OD_OK);
            const float *want = lstm ? od__torch_lstm : od__torch_gru;
            for (int n = 0; n < 2; n++)
                for (int t = seq ? 0 : 2; t < 3; t++)
                    for (int j = 0; j < 3; j++) {
                        float got = seq ? y.data[(n * 3 + t) * 3 + j]
                                        : y.data[n * 3 + j];
                        assert_float_equal(got, want[(n * 3 + t) * 3 + j],
                                           2e-6f);
                    }
            l->vt->destroy(l);
        }
    }
    od_arena_reset_step(f->arena);
}

/* Forward and backward of one layer into host copies: y, dx, then every
 * parameter gradient, one after the other in out (zeroed gradients first). */
static size_t run_layer(od_ctx *ctx, od_layer *l, const od_tensor *x,
                        const od_tensor *dy, float *out)
{
    od_tensor y, dx;
    for (int i = 0; i < l->nparams; i++)
        memset(l->params[i]->grad.data, 0,
               l->params[i]->grad.size * sizeof(float));
    assert_int_equal(l->vt->forward(l, ctx, x, &y, 1), OD_OK);
    assert_int_equal(y.size, dy->size);
    od_tensor dyv = od_tensor_reshape(dy, y.ndim, y.dims);
    assert_int_equal(l->vt->backward(l, ctx, &dyv, &dx), OD_OK);
    size_t n = 0;
    memcpy(out + n, y.data, y.size * sizeof(float));
    n += y.size;
    memcpy(out + n, dx.data, dx.size * sizeof(float));
    n += dx.size;
    for (int i = 0; i < l->nparams; i++) {
        const od_tensor *g = &l->params[i]->grad;
        memcpy(out + n, g->data, g->size * sizeof(float));
        n += g->size;
    }
    return n;
}

/* Recurrent layers large enough for their element-wise work to be split
 * over the pool: bitwise repeatable with two threads, and equal to one
 * thread up to GEMM summation order (relative 1e-5 of the largest value). */
static void test_recurrent_threads(void **state)
{
    fixture *f = *state;
    static float a[80000], b[80000], c[80000];
    od_ctx one = f->ctx;
    one.pool = NULL;
    one.trace = NULL;
    for (int lstm = 0; lstm < 2; lstm++) {
        od_layer *l;
        od_status st = lstm ? od_lstm_create(&f->ctx, "rnn", 8, 96, 1, &l)
                            : od_gru_create(&f->ctx, "rnn", 8, 96, 1, &l);
        assert_int_equal(st, OD_OK);
        l->vt->init(l, &f->rng);
        int d[3] = {7, 3, 8}, dd[3] = {7, 3, 96};
        od_tensor x = rand_tensor(f, 3, d, -1, 1);
        od_tensor dy = rand_tensor(f, 3, dd, -1, 1);

        size_t n = run_layer(&f->ctx, l, &x, &dy, a);
        assert_true(n <= 80000);
        assert_int_equal(run_layer(&f->ctx, l, &x, &dy, b), n);
        assert_memory_equal(a, b, n * sizeof(float));
        assert_int_equal(run_layer(&one, l, &x, &dy, c), n);
        float scale = 0;
        for (size_t i = 0; i < n; i++)
            scale = fmaxf(scale, fabsf(c[i]));
        for (size_t i = 0; i < n; i++)
            if (fabsf(a[i] - c[i]) > 1e-5f * scale)
                fail_msg("%s: value %zu is %g with two threads, %g with one",
                         lstm ? "lstm" : "gru", i, (double)a[i], (double)c[i]);
        l->vt->destroy(l);
        od_arena_reset_step(f->arena);
    }
}

static void test_shape_layers(void **state)
{
    fixture *f = *state;
    od_layer *fl, *rs;
    assert_int_equal(od_flatten_create("flat", &fl), OD_OK);
    int target[2] = {4, 3};
    assert_int_equal(od_reshape_create("reshape", 2, target, &rs), OD_OK);
    int d[4] = {2, 3, 2, 2};
    od_tensor x = rand_tensor(f, 4, d, -1, 1);
    od_tensor y;
    assert_int_equal(fl->vt->forward(fl, &f->ctx, &x, &y, 1), OD_OK);
    assert_int_equal(y.ndim, 2);
    assert_int_equal(y.dims[1], 12);
    check_layer(f, fl, &x, 1, NULL);
    x = rand_tensor(f, 4, d, -1, 1);
    check_layer(f, rs, &x, 1, NULL);

    int bad[2] = {2, 13};
    int ond, od[4];
    assert_int_equal(rs->vt->out_shape(rs, 2, bad, &ond, od),
                     OD_ERR_MISMATCH);
    fl->vt->destroy(fl);
    rs->vt->destroy(rs);
}

static void test_softmax_xent(void **state)
{
    fixture *f = *state;
    od_model *m;
    assert_int_equal(od_model_create(&f->ctx, &m), OD_OK);
    int d[2] = {5, 7};
    od_tensor logits = rand_tensor(f, 2, d, -3, 3);
    const int32_t labels[5] = {3, -1, 0, 6, 2};

    od_gradcheck_opts opts = {.seed = 4};
    od_gradcheck_result r;
    assert_int_equal(od_gradcheck_model(m, &logits, labels, 1, &opts, &r),
                     OD_OK);
    print_message("xent       checked %4d worst %.2e at %s\n", r.checked,
                  r.max_rel_err, r.worst);
    assert_int_equal(r.checked, 35);
    assert_true(r.max_rel_err < OD_TEST_TOL);

    /* The ignored row counts for nothing; the mean is over 4 rows. */
    double loss;
    int count, correct;
    od_tensor dl;
    assert_int_equal(od_model_xent(m, &logits, labels, &loss, &count,
                                   &correct, &dl), OD_OK);
    assert_int_equal(count, 4);
    int hits = 0;
    for (int r = 0; r < 5; r++) {
        int best = 0;
        for (int c = 1; c < 7; c++)
            if (logits.data[r * 7 + c] > logits.data[r * 7 + best])
                best = c;
        hits += labels[r] >= 0 && best == labels[r];
    }
    assert_int_equal(correct, hits);
    /* The mean of -log softmax over the counted rows, in double. */
    double want = 0;
    for (int r = 0; r < 5; r++) {
        if (labels[r] < 0)
            continue;
        double sum = 0;
        for (int c = 0; c < 7; c++)
            sum += exp(logits.data[r * 7 + c]);
        want += (log(sum) - logits.data[r * 7 + labels[r]]) / 4.0;
    }
    assert_true(fabs(loss - want) < 1e-5 * want);
    for (int c = 0; c < 7; c++)
        assert_float_equal(dl.data[7 + c], 0.0f, 0.0f);

    const int32_t bad[5] = {3, 7, 0, 6, 2};
    assert_int_equal(od_model_xent(m, &logits, bad, &loss, &count, NULL,
                                   NULL), OD_ERR_INVALID);
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

/* conv -> relu -> maxpool -> flatten -> linear, under cross-entropy. */
static od_model *small_cnn(fixture *f)
{
    od_model *m;
    od_layer *l;
    assert_int_equal(od_model_create(&f->ctx, &m), OD_OK);
    assert_int_equal(od_conv2d_create(&f->ctx, "conv1", 1, 3, 3, 3, 1, 1, 1,
                                      &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_activation_create("relu1", OD_ACT_RELU, &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_maxpool2d_create("pool1", 2, 2, &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_flatten_create("flat", &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_linear_create(&f->ctx, "fc", 27, 4, 1, &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    od_model_init(m, 77);
    return m;
}

static void test_small_model(void **state)
{
    fixture *f = *state;
    od_model *m = small_cnn(f);
    int d[4] = {2, 1, 6, 6};
    od_tensor x = rand_tensor(f, 4, d, -1, 1);
    const int32_t labels[2] = {1, 3};

    /* Central differences are wrong next to a ReLU or max-pool kink; those
     * few coordinates are skipped and counted. */
    od_gradcheck_opts opts = {.step = 2e-3f, .skip_kinks = 1, .seed = 8,
                              .max_per_tensor = 48};
    od_gradcheck_result r;
    assert_int_equal(od_gradcheck_model(m, &x, labels, 1, &opts, &r), OD_OK);
    print_message("cnn        checked %4d skipped %d worst %.2e at %s\n",
                  r.checked, r.skipped, r.max_rel_err, r.worst);
    /* 48 of 72 inputs, 27 + 3 conv, 48 of 108 + 4 linear coordinates. Each
     * conv weight feeds 72 ReLU inputs, so a step of 2e-3 crosses a kink
     * for about one coordinate in ten; more than one in five is wrong. */
    assert_int_equal(r.checked + r.skipped, 48 + 27 + 3 + 48 + 4);
    assert_true(r.skipped * 5 < r.checked);
    assert_true(r.max_rel_err < OD_TEST_TOL);

    /* Plain backward (no input gradient) leaves the same parameter
     * gradients as the checker's analytic pass. */
    float saved[27 + 108]; /* conv1.weight, fc.weight */
    memcpy(saved, m->params[0]->grad.data, 27 * sizeof(float));
    memcpy(saved + 27, m->params[2]->grad.data, 108 * sizeof(float));
    od_tensor out, dout;
    double loss;
    od_model_zero_grad(m);
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);
    assert_int_equal(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout),
                     OD_OK);
    assert_int_equal(od_model_backward(m, &dout), OD_OK);
    assert_memory_equal(saved, m->params[0]->grad.data, 27 * sizeof(float));
    assert_memory_equal(saved + 27, m->params[2]->grad.data,
                        108 * sizeof(float));

    /* A fresh backward over stale gradients (NaN here) leaves the same
     * values: the linear layer sets its own, the conv's are cleared first. */
    float biases[3 + 4];
    memcpy(biases, m->params[1]->grad.data, 3 * sizeof(float));
    memcpy(biases + 3, m->params[3]->grad.data, 4 * sizeof(float));
    for (int k = 0; k < m->nparams; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++)
            m->params[k]->grad.data[i] = NAN;
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);
    assert_int_equal(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout),
                     OD_OK);
    assert_int_equal(od_model_backward_fresh(m, &dout), OD_OK);
    for (int i = 0; i < 27; i++)
        assert_true(m->params[0]->grad.data[i] == saved[i]);
    for (int i = 0; i < 108; i++)
        assert_true(m->params[2]->grad.data[i] == saved[27 + i]);
    for (int i = 0; i < 3; i++)
        assert_true(m->params[1]->grad.data[i] == biases[i]);
    for (int i = 0; i < 4; i++)
        assert_true(m->params[3]->grad.data[i] == biases[3 + i]);

    /* With the conv weight frozen, its bias gradient takes the layer's own
     * reduction instead of the kernel's. */
    assert_int_equal(od_model_set_trainable(m, "conv1.weight", 0), 1);
    od_gradcheck_opts bias_only = {.step = 2e-3f, .skip_kinks = 1,
                                   .seed = 8, .max_per_tensor = 8};
    assert_int_equal(od_gradcheck_model(m, &x, labels, 0, &bias_only, &r),
                     OD_OK);
    assert_int_equal(r.checked + r.skipped, 3 + 8 + 4);
    assert_true(r.max_rel_err < OD_TEST_TOL);
    assert_int_equal(od_model_set_trainable(m, NULL, 1), 4);

    char buf[1024];
    od_model_summary(m, 4, d, buf, sizeof buf);
    print_message("%s", buf);
    assert_non_null(strstr(buf, "conv1"));
    assert_non_null(strstr(buf, "(2, 27)"));
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

static od_model *mlp(fixture *f, int in, int hidden, int classes)
{
    od_model *m;
    od_layer *l;
    assert_int_equal(od_model_create(&f->ctx, &m), OD_OK);
    assert_int_equal(od_linear_create(&f->ctx, "fc1", in, hidden, 1, &l),
                     OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_activation_create("act1", OD_ACT_TANH, &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_linear_create(&f->ctx, "fc2", hidden, hidden, 1, &l),
                     OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_activation_create("act2", OD_ACT_TANH, &l), OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    assert_int_equal(od_linear_create(&f->ctx, "fc3", hidden, classes, 1, &l),
                     OD_OK);
    assert_int_equal(od_model_add(m, l), OD_OK);
    od_model_init(m, 11);
    return m;
}

static void test_param_count(void **state)
{
    fixture *f = *state;
    od_model *m = mlp(f, 784, 256, 10);
    assert_int_equal(od_model_param_count(m, 0), 269322);
    assert_int_equal(m->nparams, 6);
    assert_string_equal(m->params[4]->name, "fc3.weight");

    /* PyTorch's bound 1/sqrt(fan_in), reached but not exceeded. */
    float bound = 1.0f / sqrtf(784.0f), maxabs = 0;
    const od_tensor *w = &m->params[0]->value;
    for (size_t i = 0; i < w->size; i++)
        maxabs = fmaxf(maxabs, fabsf(w->data[i]));
    assert_true(maxabs <= bound && maxabs > 0.99f * bound);

    /* Initialisation is a function of the seed alone. */
    float first = w->data[123];
    od_model_init(m, 11);
    assert_true(w->data[123] == first);
    od_model_init(m, 12);
    assert_true(w->data[123] != first);

    assert_int_equal(od_model_set_trainable(m, "fc1", 0), 2);
    assert_int_equal(od_model_param_count(m, 1), 269322 - 200960);
    od_model_destroy(m);
}

static void test_frozen(void **state)
{
    fixture *f = *state;
    od_model *m = mlp(f, 6, 5, 3);
    int d[2] = {4, 6};
    od_tensor x = rand_tensor(f, 2, d, -1, 1);
    const int32_t labels[4] = {0, 2, 1, 2};

    /* Input gradient with everything trainable. */
    od_tensor out, dout, dx_all, dx_frozen;
    double loss;
    od_model_zero_grad(m);
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);
    assert_int_equal(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout),
                     OD_OK);
    assert_int_equal(od_model_backward_input(m, &dout, &dx_all), OD_OK);
    float fc3_grad = m->params[4]->grad.data[2];

    /* Freeze fc1 and fc2's weight: their gradients go, dx stays. */
    size_t grad_before = od_arena_used_kind(f->arena, OD_MEM_GRAD);
    assert_int_equal(od_model_set_trainable(m, "fc1", 0), 2);
    assert_int_equal(od_model_set_trainable(m, "fc2.weight", 0), 1);
    assert_null(m->params[0]->grad.data);
    assert_null(m->params[2]->grad.data);
    assert_non_null(m->params[3]->grad.data);
    assert_true(od_arena_used_kind(f->arena, OD_MEM_GRAD) < grad_before);

    od_model_zero_grad(m);
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);
    assert_int_equal(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout),
                     OD_OK);
    assert_int_equal(od_model_backward_input(m, &dout, &dx_frozen), OD_OK);
    assert_memory_equal(dx_all.data, dx_frozen.data,
                        dx_all.size * sizeof(float));
    assert_true(m->params[4]->grad.data[2] == fc3_grad);

    /* A fresh backward sets the bias of a linear layer whose weight is
     * frozen, and every other gradient, over stale values. */
    float fc2_bias[5], fc3_all[15 + 3];
    memcpy(fc2_bias, m->params[3]->grad.data, sizeof fc2_bias);
    memcpy(fc3_all, m->params[4]->grad.data, 15 * sizeof(float));
    memcpy(fc3_all + 15, m->params[5]->grad.data, 3 * sizeof(float));
    for (int k = 3; k < 6; k++)
        for (size_t i = 0; i < m->params[k]->grad.size; i++)
            m->params[k]->grad.data[i] = NAN;
    assert_int_equal(od_model_backward_fresh(m, &dout), OD_OK);
    for (int i = 0; i < 5; i++)
        assert_true(m->params[3]->grad.data[i] == fc2_bias[i]);
    for (int i = 0; i < 15; i++)
        assert_true(m->params[4]->grad.data[i] == fc3_all[i]);
    for (int i = 0; i < 3; i++)
        assert_true(m->params[5]->grad.data[i] == fc3_all[15 + i]);

    /* The gradient checker skips frozen parameters and still passes. */
    od_gradcheck_opts opts = {.seed = 2};
    od_gradcheck_result r;
    assert_int_equal(od_gradcheck_model(m, &x, labels, 1, &opts, &r), OD_OK);
    assert_int_equal(r.checked, 24 + 5 + 15 + 3);
    assert_true(r.max_rel_err < OD_TEST_TOL);

    /* Thawing allocates a zeroed gradient again. */
    assert_int_equal(od_model_set_trainable(m, NULL, 1), 6);
    assert_non_null(m->params[0]->grad.data);
    assert_float_equal(m->params[0]->grad.data[0], 0.0f, 0.0f);
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

/* One SGD step with the update applied during the backward pass
 * (od_model_backward_apply, then od_optim_step for the layers that do not
 * apply it) against the plain backward and optimiser step, from the same
 * start: a CNN (the conv takes the optimiser's step) and an MLP with a
 * frozen weight, with and without weight decay, over two steps. */
static void test_backward_apply(void **state)
{
    fixture *f = *state;
    for (int kind = 0; kind < 2; kind++)
        for (int decay = 0; decay < 2; decay++) {
            od_model *m[2];
            for (int k = 0; k < 2; k++) {
                m[k] = kind ? mlp(f, 6, 5, 3) : small_cnn(f);
                if (kind)
                    assert_int_equal(
                        od_model_set_trainable(m[k], "fc2.weight", 0), 1);
            }
            int d[4] = {4, 1, 6, 6};
            od_tensor x = kind ? rand_tensor(f, 2, (int[]){4, 6}, -1, 1)
                               : rand_tensor(f, 4, d, -1, 1);
            const int32_t labels[4] = {0, 2, 1, 3 - kind};
            od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
            c.lr = 0.3f;
            c.weight_decay = decay ? 0.1f : 0.0f;
            od_optim *o[2];
            for (int k = 0; k < 2; k++)
                assert_int_equal(od_optim_create(&f->ctx, m[k], &c, &o[k]),
                                 OD_OK);
            float alpha, beta;
            assert_true(od_optim_fusable(o[1], -1.0f, &alpha, &beta));
            assert_true(alpha == -0.3f);
            assert_true(fabsf(beta - (decay ? 0.97f : 1.0f)) < 1e-7f);

            for (int step = 0; step < 2; step++)
                for (int k = 0; k < 2; k++) {
                    od_tensor out, dout;
                    double loss;
                    /* Stale gradients: the passes must not read them. */
                    for (int q = 0; q < m[k]->nparams; q++)
                        for (size_t i = 0; i < m[k]->params[q]->grad.size; i++)
                            m[k]->params[q]->grad.data[i] = NAN;
                    assert_int_equal(od_model_forward(m[k], &x, 1, &out),
                                     OD_OK);
                    assert_int_equal(od_model_xent(m[k], &out, labels, &loss,
                                                   NULL, NULL, &dout), OD_OK);
                    assert_int_equal(
                        k ? od_model_backward_apply(m[k], &dout, alpha, beta)
                          : od_model_backward_fresh(m[k], &dout), OD_OK);
                    assert_int_equal(od_optim_step(o[k], -1.0f), OD_OK);
                }

            /* The same parameters to rounding (with decay the two forms of
             * the update round differently), every flag cleared
             * and every step counted. */
            for (int q = 0; q < m[0]->nparams; q++) {
                const od_tensor *a = &m[0]->params[q]->value;
                const od_tensor *b = &m[1]->params[q]->value;
                float scale = 0;   /* the tensor's largest magnitude */
                for (size_t i = 0; i < a->size; i++)
                    scale = fmaxf(scale, fabsf(a->data[i]));
                for (size_t i = 0; i < a->size; i++)
                    if (!(fabsf(a->data[i] - b->data[i]) <= 1e-6f * scale))
                        fail_msg("model %d decay %d %s[%zu]: %.9g applied, "
                                 "%.9g stepped", kind, decay,
                                 m[0]->params[q]->name, i,
                                 (double)b->data[i], (double)a->data[i]);
                assert_int_equal(m[1]->params[q]->applied, 0);
                assert_int_equal(od_optim_param_steps(o[1], q),
                                 od_optim_param_steps(o[0], q));
            }
            for (int k = 0; k < 2; k++) {
                od_optim_destroy(o[k]);
                od_model_destroy(m[k]);
            }
            od_arena_reset_step(f->arena);
        }

    /* Only plain SGD folds into the backward pass. */
    od_model *m = mlp(f, 6, 5, 3);
    float alpha, beta;
    od_optim_config cfgs[3] = {od_optim_config_default(OD_OPTIM_SGD),
                               od_optim_config_default(OD_OPTIM_ADAM),
                               od_optim_config_default(OD_OPTIM_ADAMW)};
    cfgs[0].momentum = 0.9f;
    for (int k = 0; k < 3; k++) {
        od_optim *o;
        assert_int_equal(od_optim_create(&f->ctx, m, &cfgs[k], &o), OD_OK);
        assert_false(od_optim_fusable(o, 0.1f, &alpha, &beta));
        od_optim_destroy(o);
    }
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

static void test_shape_mismatch(void **state)
{
    fixture *f = *state;
    od_model *m = mlp(f, 7, 5, 3);
    int d[2] = {3, 8};
    int ond, od[4];
    assert_int_equal(od_model_check_shape(m, 2, d, &ond, od),
                     OD_ERR_MISMATCH);
    const char *msg = od_error_message();
    assert_non_null(strstr(msg, "fc1"));
    assert_non_null(strstr(msg, "7)"));
    assert_non_null(strstr(msg, "(3, 8)"));

    od_tensor x = rand_tensor(f, 2, d, -1, 1), out;
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_ERR_MISMATCH);

    d[1] = 7;
    assert_int_equal(od_model_check_shape(m, 2, d, &ond, od), OD_OK);
    assert_int_equal(ond, 2);
    assert_int_equal(od[1], 3);
    x = rand_tensor(f, 2, d, -1, 1);
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);

    /* An output gradient of the wrong shape. */
    int bd[2] = {3, 4};
    od_tensor bad = rand_tensor(f, 2, bd, -1, 1);
    assert_int_equal(od_model_backward(m, &bad), OD_ERR_MISMATCH);
    od_layer *last = m->layers[m->nlayers - 1];
    assert_int_equal(last->vt->backward(last, &f->ctx, &bad, NULL),
                     OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "fc3"));

    /* Convolution and recurrent layers name what they expected. */
    od_layer *c, *g;
    assert_int_equal(od_conv2d_create(&f->ctx, "c", 3, 2, 3, 3, 1, 0, 1, &c),
                     OD_OK);
    int cd[4] = {1, 2, 5, 5};
    assert_int_equal(c->vt->out_shape(c, 4, cd, &ond, od), OD_ERR_MISMATCH);
    assert_int_equal(od_gru_create(&f->ctx, "g", 4, 3, 1, &g), OD_OK);
    int gd[2] = {2, 4};
    assert_int_equal(g->vt->out_shape(g, 2, gd, &ond, od), OD_ERR_MISMATCH);
    assert_non_null(strstr(od_error_message(), "(N, T, 4)"));
    c->vt->destroy(c);
    g->vt->destroy(g);
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

static void test_costs_and_memory(void **state)
{
    fixture *f = *state;
    od_model *m = small_cnn(f);
    od_arena_reset_peaks(f->arena);
    od_trace_begin_step(&f->trace);

    int d[4] = {2, 1, 6, 6};
    od_tensor x = rand_tensor(f, 4, d, -1, 1), out, dout;
    const int32_t labels[2] = {0, 1};
    double loss;
    assert_int_equal(od_model_forward(m, &x, 1, &out), OD_OK);
    assert_int_equal(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout),
                     OD_OK);
    assert_int_equal(od_model_backward(m, &dout), OD_OK);

    /* Five layers forward, xent forward and backward, five backward. */
    assert_int_equal(f->trace.n, 12);
    const od_cost *conv = &f->trace.recs[0];
    assert_int_equal(conv->kind, OD_OP_CONV);
    assert_int_equal(conv->phase, OD_PHASE_FORWARD);
    assert_string_equal(conv->name, "conv2d");
    /* 2 * (N C_out OH OW) * (C_in K K) + bias: 2 * 216 * 9 + 216. */
    assert_float_equal(conv->flops, 2.0 * 216 * 9 + 216, 0.0);
    assert_float_equal(conv->bytes_read, 4.0 * (72 + 27 + 3), 0.0);
    assert_float_equal(conv->bytes_written, 4.0 * 216, 0.0);
    const od_cost *fc = &f->trace.recs[4];
    assert_string_equal(fc->name, "linear");
    assert_int_equal(fc->kind, OD_OP_GEMM);
    assert_float_equal(fc->flops, 2.0 * 2 * 27 * 4 + 2 * 4, 0.0);
    const od_cost *fc_back = &f->trace.recs[7];
    assert_string_equal(fc_back->name, "linear");
    assert_int_equal(fc_back->phase, OD_PHASE_BACKWARD);
    /* dW, dx and db: 2 * 2 * 216 + 8. */
    assert_float_equal(fc_back->flops, 4.0 * 2 * 27 * 4 + 2 * 4, 0.0);
    const od_cost *conv_back = &f->trace.recs[11];
    assert_string_equal(conv_back->name, "conv2d");
    /* Layer 0 computes no input gradient: dW and db only. */
    assert_float_equal(conv_back->flops, 2.0 * 216 * 9 + 216, 0.0);

    assert_true(od_arena_peak_kind(f->arena, OD_MEM_PARAM) > 0);
    assert_true(od_arena_peak_kind(f->arena, OD_MEM_GRAD) > 0);
    assert_true(od_arena_peak_kind(f->arena, OD_MEM_ACT) > 0);
    assert_true(od_arena_peak_kind(f->arena, OD_MEM_SCRATCH) > 0);
    assert_int_equal(od_arena_peak_kind(f->arena, OD_MEM_OPTIM), 0);
    od_model_destroy(m);
    od_arena_reset_step(f->arena);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_linear, reset_step),
        cmocka_unit_test_teardown(test_conv2d, reset_step),
        cmocka_unit_test_teardown(test_pooling, reset_step),
        cmocka_unit_test_teardown(test_activations, reset_step),
        cmocka_unit_test_teardown(test_dropout, reset_step),
        cmocka_unit_test_teardown(test_embedding, reset_step),
        cmocka_unit_test_teardown(test_layernorm, reset_step),
        cmocka_unit_test_teardown(test_gru_lstm_gradients, reset_step),
        cmocka_unit_test_teardown(test_recurrent_vs_torch, reset_step),
        cmocka_unit_test_teardown(test_recurrent_threads, reset_step),
        cmocka_unit_test_teardown(test_shape_layers, reset_step),
        cmocka_unit_test_teardown(test_softmax_xent, reset_step),
        cmocka_unit_test_teardown(test_small_model, reset_step),
        cmocka_unit_test_teardown(test_param_count, reset_step),
        cmocka_unit_test_teardown(test_frozen, reset_step),
        cmocka_unit_test_teardown(test_backward_apply, reset_step),
        cmocka_unit_test_teardown(test_shape_mismatch, reset_step),
        cmocka_unit_test_teardown(test_costs_and_memory, reset_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
