/* Same seed and same thread count give bitwise-identical training: a small
 * MLP (with dropout) and a small CNN each train 20 SGD steps on seeded
 * synthetic data, twice with one thread and twice with a 2-thread pool, and
 * the loss sequences and final parameters of the two runs of each thread
 * count must match byte for byte. docs/engine.md ("Determinism") explains
 * the reduction order this rests on.
 *
 * Sizes are chosen so that every kernel really splits its work: the
 * products are above the GEMM's threading threshold and the batch is larger
 * than the pool. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/model.h"
#include "engine/optim.h"

#define STEPS 20
#define BATCH 64
#define EXAMPLES 256
#define CLASSES 10
#define MLP_IN 96
#define IMG 12

typedef enum net_kind { NET_MLP, NET_CNN } net_kind;

typedef struct run_result {
    double loss[STEPS];
    float *params;      /* every parameter, concatenated */
    size_t nfloats;
} run_result;

#define CHECK(call) assert_int_equal((call), OD_OK)

static void build(od_ctx *ctx, net_kind kind, od_model **out)
{
    od_model *m = NULL;
    od_layer *l = NULL;
    CHECK(od_model_create(ctx, &m));
    if (kind == NET_MLP) {
        /* (N, 96) -> 256 -> relu -> dropout -> 64 -> tanh -> 10 */
        CHECK(od_linear_create(ctx, "fc1", MLP_IN, 256, 1, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_activation_create("relu1", OD_ACT_RELU, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_dropout_create("drop1", 0.2f, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_linear_create(ctx, "fc2", 256, 64, 1, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_activation_create("tanh2", OD_ACT_TANH, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_linear_create(ctx, "fc3", 64, CLASSES, 1, &l));
        CHECK(od_model_add(m, l));
    } else {
        /* (N, 1, 12, 12) -> conv 6 -> relu -> pool 2 -> conv 8 -> relu
         * -> flatten (N, 288) -> 10 */
        CHECK(od_conv2d_create(ctx, "conv1", 1, 6, 3, 3, 1, 1, 1, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_activation_create("relu1", OD_ACT_RELU, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_maxpool2d_create("pool1", 2, 2, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_conv2d_create(ctx, "conv2", 6, 8, 3, 3, 1, 1, 1, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_activation_create("relu2", OD_ACT_RELU, &l));
        CHECK(od_model_add(m, l));
        CHECK(od_flatten_create("flat", &l));
        CHECK(od_model_add(m, l));
        CHECK(od_linear_create(ctx, "fc", 8 * 6 * 6, CLASSES, 1, &l));
        CHECK(od_model_add(m, l));
    }
    od_model_init(m, 7);
    *out = m;
}

/* Examples whose mean depends on the label, so that the loss falls:
 * x (EXAMPLES, feat), labels (EXAMPLES). */
static void make_data(uint64_t seed, size_t feat, float *x, int32_t *labels)
{
    od_rng rng;
    od_rng_seed(&rng, seed, 0);
    for (int i = 0; i < EXAMPLES; i++) {
        labels[i] = (int32_t)od_rng_below(&rng, CLASSES);
        for (size_t j = 0; j < feat; j++) {
            float shift = (int)(j % CLASSES) == labels[i] ? 1.0f : 0.0f;
            x[(size_t)i * feat + j] = (float)od_rng_normal(&rng) + shift;
        }
    }
}

static void train(net_kind kind, int nthreads, run_result *res)
{
    od_arena *arena = od_arena_create(0);
    od_pool *pool = nthreads > 1 ? od_pool_create(nthreads, NULL) : NULL;
    od_trace trace;
    od_trace_init(&trace);
    od_ctx ctx = {.arena = arena, .pool = pool, .trace = &trace, .seed = 42};

    od_model *m = NULL;
    build(&ctx, kind, &m);
    od_optim_config cfg = od_optim_config_default(OD_OPTIM_SGD);
    cfg.lr = 0.05f;
    cfg.momentum = 0.9f;
    cfg.weight_decay = 1e-4f;
    od_optim *o = NULL;
    CHECK(od_optim_create(&ctx, m, &cfg, &o));

    size_t feat = kind == NET_MLP ? MLP_IN : IMG * IMG;
    float *x = malloc(EXAMPLES * feat * sizeof(float));
    int32_t *labels = malloc(EXAMPLES * sizeof(int32_t));
    assert_non_null(x);
    assert_non_null(labels);
    make_data(1234, feat, x, labels);

    for (int s = 0; s < STEPS; s++) {
        int first = (s * BATCH) % EXAMPLES;
        od_tensor xb = {0};  /* a view of BATCH examples, not arena memory */
        if (kind == NET_MLP) {
            xb.ndim = 2;
            xb.dims[0] = BATCH;
            xb.dims[1] = MLP_IN;
        } else {
            xb.ndim = 4;
            xb.dims[0] = BATCH;
            xb.dims[1] = 1;
            xb.dims[2] = IMG;
            xb.dims[3] = IMG;
        }
        xb.size = BATCH * feat;
        xb.data = x + (size_t)first * feat;

        ctx.step = (uint64_t)s;
        od_trace_begin_step(&trace);
        od_model_zero_grad(m);
        od_tensor logits, dlogits;
        int count = 0;
        CHECK(od_model_forward(m, &xb, 1, &logits));
        CHECK(od_model_xent(m, &logits, labels + first, &res->loss[s], &count,
                            NULL, &dlogits));
        assert_int_equal(count, BATCH);
        CHECK(od_model_backward(m, &dlogits));
        CHECK(od_optim_step(o, -1.0f));
        od_trace_end_step(&trace);
        od_arena_reset_step(arena);
    }

    res->nfloats = od_model_param_count(m, 0);
    res->params = malloc(res->nfloats * sizeof(float));
    assert_non_null(res->params);
    size_t off = 0;
    for (int i = 0; i < m->nparams; i++) {
        const od_tensor *v = &m->params[i]->value;
        memcpy(res->params + off, v->data, v->size * sizeof(float));
        off += v->size;
    }

    free(x);
    free(labels);
    od_optim_destroy(o);
    od_model_destroy(m);
    assert_int_equal(od_arena_used(arena), 0);
    od_arena_destroy(arena);
    od_pool_destroy(pool);
    od_trace_free(&trace);
}

static void check_net(net_kind kind, const char *what)
{
    run_result r[2][2]; /* [1 or 2 threads][first or second run] */
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            train(kind, t + 1, &r[t][k]);

    for (int t = 0; t < 2; t++) {
        /* The runs really trained: finite losses that fell. */
        for (int s = 0; s < STEPS; s++)
            assert_true(isfinite(r[t][0].loss[s]));
        if (!(r[t][0].loss[STEPS - 1] < 0.95 * r[t][0].loss[0])) {
            print_error("%s, %d thread(s): loss %.4f -> %.4f did not fall\n",
                        what, t + 1, r[t][0].loss[0],
                        r[t][0].loss[STEPS - 1]);
            fail();
        }
        for (int s = 0; s < STEPS; s++) {
            if (memcmp(&r[t][0].loss[s], &r[t][1].loss[s], sizeof(double))) {
                print_error("%s, %d thread(s): step %d loss %.17g then "
                            "%.17g\n", what, t + 1, s, r[t][0].loss[s],
                            r[t][1].loss[s]);
                fail();
            }
        }
        assert_memory_equal(r[t][0].params, r[t][1].params,
                            r[t][0].nfloats * sizeof(float));
    }

    /* Across thread counts the engine promises nothing (the convolution's
     * weight gradient has one partial sum per thread); report it only. */
    int same = memcmp(r[0][0].loss, r[1][0].loss, sizeof r[0][0].loss) == 0;
    fprintf(stderr, "%s: loss %.4f -> %.4f; 1 and 2 threads %s\n", what,
            r[0][0].loss[0], r[0][0].loss[STEPS - 1],
            same ? "bitwise equal" : "differ in rounding");

    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 2; k++)
            free(r[t][k].params);
}

static void test_mlp_repeats(void **state)
{
    (void)state;
    check_net(NET_MLP, "mlp");
}

static void test_cnn_repeats(void **state)
{
    (void)state;
    check_net(NET_CNN, "cnn");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_repeats),
        cmocka_unit_test(test_cnn_repeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
