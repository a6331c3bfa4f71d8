/* Optimisers against hand-derived values and PyTorch 2.x's torch.optim (the
 * expected figures below were printed by torch.optim on float32 tensors with
 * the same starting values and gradients), and learning-rate schedules at
 * their corners. The models here are bare parameter lists, so these tests do
 * not depend on any layer. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/cpu.h"
#include "engine/optim.h"

/* Relative tolerance for float32 updates that PyTorch evaluates in a
 * slightly different order (a few ulps over three steps). */
#define REL_TOL 2e-6

#define MAXP 4

typedef struct fixture {
    od_arena *arena;
    od_trace trace;
    od_ctx ctx;
    od_param prm[MAXP];
    od_param *pptr[MAXP];
    od_model model;
} fixture;

/* A model of n parameters of the given sizes, all trainable, with
 * gradients. */
static void fixture_init(fixture *fx, size_t budget, int n, const int *sizes)
{
    memset(fx, 0, sizeof *fx);
    fx->arena = od_arena_create(budget);
    assert_non_null(fx->arena);
    od_trace_init(&fx->trace);
    fx->ctx.arena = fx->arena;
    fx->ctx.trace = &fx->trace;
    for (int i = 0; i < n; i++) {
        od_param *p = &fx->prm[i];
        snprintf(p->name, sizeof p->name, "layer%d.weight", i);
        assert_int_equal(od_tensor_alloc1(fx->arena, OD_MEM_PARAM, &p->value,
                                          sizes[i]), OD_OK);
        assert_int_equal(od_tensor_alloc1(fx->arena, OD_MEM_GRAD, &p->grad,
                                          sizes[i]), OD_OK);
        p->trainable = 1;
        fx->pptr[i] = p;
    }
    fx->model.ctx = &fx->ctx;
    fx->model.params = fx->pptr;
    fx->model.nparams = n;
}

static void fixture_free(fixture *fx)
{
    for (int i = 0; i < fx->model.nparams; i++) {
        od_arena_free(fx->arena, fx->prm[i].value.data);
        od_arena_free(fx->arena, fx->prm[i].grad.data);
    }
    assert_int_equal(od_arena_used(fx->arena), 0);
    od_arena_destroy(fx->arena);
    od_trace_free(&fx->trace);
}

static void assert_close(float got, double want, const char *what, int step,
                         int i)
{
    double err = fabs((double)got - want) / fmax(fabs(want), 1e-6);
    if (err > REL_TOL) {
        print_error("%s step %d element %d: got %.9g, want %.9g (rel %.2g)\n",
                    what, step, i, (double)got, want, err);
        fail();
    }
}

static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G[3][3] = {
    {0.5f, -1.0f, 2.0f}, {0.1f, 0.3f, -0.7f}, {-0.2f, 0.4f, 1.5f}};

/* Three steps of cfg on P0 with gradients G; compare with want[step]. */
static void run_three(const od_optim_config *cfg, const double want[3][3],
                      const char *what)
{
    fixture fx;
    int sizes[1] = {3};
    fixture_init(&fx, 0, 1, sizes);
    memcpy(fx.prm[0].value.data, P0, sizeof P0);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&fx.ctx, &fx.model, cfg, &o), OD_OK);
    for (int s = 0; s < 3; s++) {
        memcpy(fx.prm[0].grad.data, G[s], sizeof G[s]);
        assert_int_equal(od_optim_step(o, -1.0f), OD_OK);
        for (int i = 0; i < 3; i++)
            assert_close(fx.prm[0].value.data[i], want[s][i], what, s + 1, i);
    }
    assert_int_equal(od_optim_step_count(o), 3);
    assert_int_equal(od_optim_param_steps(o, 0), 3);
    od_optim_destroy(o);
    fixture_free(&fx);
}

/* Step 1, element 0: d = 0.5 + 0.01 * 1 = 0.51, p = 1 - 0.1 * 0.51 = 0.949. */
static void test_sgd_weight_decay(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    c.lr = 0.1f;
    c.weight_decay = 0.01f;
    const double want[3][3] = {{0.949000001, -1.898, 0.299499989},
                               {0.938050985, -1.92610204, 0.369200498},
                               {0.957112908, -1.96417594, 0.218831286}};
    run_three(&c, want, "sgd+wd");
}

/* The first step copies the gradient into the buffer without dampening:
 * b = 0.5, p = 0.95. Step 2: b = 0.9 * 0.5 + 0.9 * 0.1 = 0.54, p = 0.896. */
static void test_sgd_momentum_dampening(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.dampening = 0.1f;
    const double want[3][3] = {{0.949999988, -1.89999998, 0.300000012},
                               {0.895999968, -1.83700001, 0.183000013},
                               {0.865399957, -1.81630003, -0.057299979}};
    run_three(&c, want, "sgd+momentum");
}

/* Step 1, element 0: g = 0.5 + 0.1 * 1 = 0.6, b = 0.6, d = 0.6 + 0.9 * 0.6
 * = 1.14, p = 1 - 0.114 = 0.886. */
static void test_sgd_nesterov(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    c.lr = 0.1f;
    c.momentum = 0.9f;
    c.nesterov = 1;
    c.weight_decay = 0.1f;
    const double want[3][3] = {{0.885999978, -1.77199996, 0.110500023},
                               {0.801565945, -1.69813192, 0.0753505304},
                               {0.765319586, -1.66433418, -0.304721177}};
    run_three(&c, want, "sgd+nesterov");
}

/* Bias correction makes the first Adam step lr * sign(g) (up to eps):
 * element 0 moves from 1 to 0.9 although its gradient is 0.55. */
static void test_adam_bias_correction(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_ADAM);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    const double want[3][3] = {{0.900000036, -1.89999998, 0.400000006},
                               {0.813648343, -1.84007037, 0.359036416},
                               {0.759899735, -1.80575418, 0.296148956}};
    run_three(&c, want, "adam");
}

/* Decoupled decay: p = 1 * (1 - 0.1 * 0.1) = 0.99, then the Adam step of
 * 0.1 gives 0.89 (coupled decay above gave 0.9). */
static void test_adamw_decay(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_ADAMW);
    c.lr = 0.1f;
    c.weight_decay = 0.1f;
    const double want[3][3] = {{0.890000045, -1.88, 0.395000011},
                               {0.800795972, -1.81841516, 0.352403015},
                               {0.758352637, -1.79222512, 0.287570983}};
    run_three(&c, want, "adamw");
}

/* A frozen parameter is neither updated nor given state, even with a
 * gradient and weight decay; a parameter made trainable later gets state on
 * its first step, and its own step count starts there. */
static void test_frozen_and_late_trainable(void **state)
{
    (void)state;
    fixture fx;
    int sizes[2] = {5, 7};
    fixture_init(&fx, 0, 2, sizes);
    for (int i = 0; i < 7; i++) {
        fx.prm[1].value.data[i] = (float)i - 3.0f;
        fx.prm[1].grad.data[i] = 1.0f;
    }
    for (int i = 0; i < 5; i++)
        fx.prm[0].grad.data[i] = 1.0f;
    fx.prm[1].trainable = 0;
    float before[7];
    memcpy(before, fx.prm[1].value.data, sizeof before);

    od_optim_config c = od_optim_config_default(OD_OPTIM_ADAMW);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&fx.ctx, &fx.model, &c, &o), OD_OK);
    /* Two moments of 5 floats, each rounded up to 64 bytes. */
    assert_int_equal(od_arena_used_kind(fx.arena, OD_MEM_OPTIM), 2 * 64);
    assert_null(od_optim_state(o, 1, 0));

    for (int s = 0; s < 3; s++)
        assert_int_equal(od_optim_step(o, -1.0f), OD_OK);
    assert_memory_equal(before, fx.prm[1].value.data, sizeof before);
    assert_true(fx.prm[0].value.data[0] < 0.0f);
    assert_null(od_optim_state(o, 1, 0));
    assert_int_equal(od_optim_param_steps(o, 1), 0);

    fx.prm[1].trainable = 1;
    assert_int_equal(od_optim_step(o, -1.0f), OD_OK);
    assert_non_null(od_optim_state(o, 1, 1));
    assert_int_equal(od_optim_param_steps(o, 0), 4);
    assert_int_equal(od_optim_param_steps(o, 1), 1);
    /* First Adam step of that parameter: p * (1 - lr * wd) - lr. */
    double want = (double)before[0] * (1.0 - 1e-3 * 0.01) - 1e-3;
    assert_close(fx.prm[1].value.data[0], want, "late", 1, 0);

    od_optim_destroy(o);
    assert_int_equal(od_arena_used_kind(fx.arena, OD_MEM_OPTIM), 0);
    fixture_free(&fx);
}

/* Creating state past the budget fails with OD_ERR_NOMEM and, in a step,
 * updates nothing; so does a step with a learning rate that is not finite. */
static void test_budget(void **state)
{
    (void)state;
    fixture fx;
    int sizes[2] = {16, 16};
    /* 4 tensors of 64 bytes in use; room for two more 64-byte blocks. */
    fixture_init(&fx, 6 * 64, 2, sizes);
    od_optim_config c = od_optim_config_default(OD_OPTIM_ADAM);
    od_optim *o = NULL;
    assert_int_equal(od_optim_create(&fx.ctx, &fx.model, &c, &o),
                     OD_ERR_NOMEM);
    assert_null(o);
    assert_int_equal(od_arena_used_kind(fx.arena, OD_MEM_OPTIM), 0);

    fx.prm[1].trainable = 0;
    assert_int_equal(od_optim_create(&fx.ctx, &fx.model, &c, &o), OD_OK);
    fx.prm[1].trainable = 1;
    for (int i = 0; i < 16; i++)
        fx.prm[0].grad.data[i] = fx.prm[1].grad.data[i] = 1.0f;
    assert_int_equal(od_optim_step(o, -1.0f), OD_ERR_NOMEM);
    assert_non_null(strstr(od_error_message(), "needed"));
    for (int i = 0; i < 16; i++)
        assert_true(fx.prm[0].value.data[i] == 0.0f);
    assert_int_equal(od_optim_step_count(o), 0);
    fx.prm[1].trainable = 0;
    assert_int_equal(od_optim_step(o, NAN), OD_ERR_INVALID);
    assert_int_equal(od_optim_step(o, INFINITY), OD_ERR_INVALID);
    for (int i = 0; i < 16; i++)
        assert_true(fx.prm[0].value.data[i] == 0.0f);
    assert_int_equal(od_optim_step_count(o), 0);
    od_optim_destroy(o);
    fixture_free(&fx);
}

/* The update is element-wise: a 2-thread pool over several chunks gives the
 * same bits as one thread. Also checks the cost record. */
static void test_pool_and_cost(void **state)
{
    (void)state;
    enum { N = 40009 }; /* a prime: the last chunk is partial */
    float *res[2];
    for (int run = 0; run < 2; run++) {
        fixture fx;
        int sizes[1] = {N};
        fixture_init(&fx, 0, 1, sizes);
        od_pool *pool = run ? od_pool_create(2, NULL) : NULL;
        fx.ctx.pool = pool;
        od_rng rng;
        od_rng_seed(&rng, 7, 0);
        for (int i = 0; i < N; i++)
            fx.prm[0].value.data[i] = (float)od_rng_normal(&rng);
        od_optim_config c = od_optim_config_default(OD_OPTIM_ADAMW);
        od_optim *o = NULL;
        assert_int_equal(od_optim_create(&fx.ctx, &fx.model, &c, &o), OD_OK);
        for (int s = 0; s < 3; s++) {
            for (int i = 0; i < N; i++)
                fx.prm[0].grad.data[i] = (float)od_rng_normal(&rng);
            od_trace_begin_step(&fx.trace);
            assert_int_equal(od_optim_step(o, 0.01f), OD_OK);
            assert_int_equal(fx.trace.n, 1);
            assert_int_equal(fx.trace.recs[0].kind, OD_OP_OPTIM);
            assert_int_equal(fx.trace.recs[0].phase, OD_PHASE_UPDATE);
            assert_true(fx.trace.recs[0].flops >= 10.0 * N);
            assert_true(fx.trace.recs[0].bytes_read >= 4.0 * N * 4);
            assert_true(fx.trace.recs[0].bytes_written >= 3.0 * N * 4);
        }
        res[run] = malloc(N * sizeof(float));
        memcpy(res[run], fx.prm[0].value.data, N * sizeof(float));
        od_optim_destroy(o);
        od_pool_destroy(pool);
        fixture_free(&fx);
    }
    assert_memory_equal(res[0], res[1], N * sizeof(float));
    free(res[0]);
    free(res[1]);
}

/* Adam's vector loops (AVX-512, AVX2) against the portable loop: the same
 * bits, over sizes that leave every kind of tail (1, primes, one short of
 * and one past a vector, several chunks). Threshold: bitwise equality, as
 * the vector loops do the scalar operations in the scalar order. */
static void test_isa_paths_bitwise(void **state)
{
    (void)state;
    static const int sizes[] = {1, 7, 15, 17, 31, 33, 40009};
    static const od_isa isas[] = {OD_ISA_PORTABLE, OD_ISA_AVX2,
                                  OD_ISA_AVX512};
    od_isa saved = od_cpu_isa();
    for (int kind = OD_OPTIM_ADAM; kind <= OD_OPTIM_ADAMW; kind++) {
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            int n = sizes[si];
            float *ref = NULL;
            for (int ii = 0; ii < 3; ii++) {
                od_cpu_set_isa(isas[ii]);
                fixture fx;
                fixture_init(&fx, 0, 1, &n);
                od_rng rng;
                od_rng_seed(&rng, (uint64_t)n, 3);
                for (int i = 0; i < n; i++)
                    fx.prm[0].value.data[i] = (float)od_rng_normal(&rng);
                od_optim_config c = od_optim_config_default(kind);
                c.weight_decay = 0.05f;
                od_optim *o = NULL;
                assert_int_equal(od_optim_create(&fx.ctx, &fx.model, &c, &o),
                                 OD_OK);
                for (int s = 0; s < 3; s++) {
                    for (int i = 0; i < n; i++)
                        fx.prm[0].grad.data[i] =
                            (float)od_rng_normal(&rng) * 1e-3f;
                    assert_int_equal(od_optim_step(o, 0.1f), OD_OK);
                }
                if (!ref) {
                    ref = malloc((size_t)n * sizeof(float));
                    memcpy(ref, fx.prm[0].value.data, (size_t)n * 4);
                } else if (memcmp(ref, fx.prm[0].value.data,
                                  (size_t)n * 4) != 0) {
                    print_error("%s, n = %d: %s differs from portable\n",
                                od_optim_kind_name(kind), n,
                                od_isa_name(od_cpu_isa()));
                    fail();
                }
                od_optim_destroy(o);
                fixture_free(&fx);
            }
            free(ref);
        }
    }
    od_cpu_set_isa(saved);
}

static void test_config_and_names(void **state)
{
    (void)state;
    od_optim_config c = od_optim_config_default(OD_OPTIM_SGD);
    c.nesterov = 1;
    assert_int_equal(od_optim_config_check(&c), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "Nesterov"));
    c.momentum = 0.9f;
    assert_int_equal(od_optim_config_check(&c), OD_OK);
    c.dampening = 0.5f;
    assert_int_equal(od_optim_config_check(&c), OD_ERR_INVALID);

    c = od_optim_config_default(OD_OPTIM_ADAM);
    c.beta2 = 1.0f;
    assert_int_equal(od_optim_config_check(&c), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "beta2"));
    c = od_optim_config_default(OD_OPTIM_ADAM);
    c.lr = -1.0f;
    assert_int_equal(od_optim_config_check(&c), OD_ERR_INVALID);

    od_optim_kind k;
    assert_int_equal(od_optim_kind_parse("AdamW", &k), OD_OK);
    assert_int_equal(k, OD_OPTIM_ADAMW);
    assert_int_equal(od_optim_kind_parse("sgd", &k), OD_OK);
    assert_int_equal(k, OD_OPTIM_SGD);
    assert_int_equal(od_optim_kind_parse("adagrad", &k), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "adagrad"));
    assert_non_null(strstr(od_error_message(), "adamw"));

    od_sched_kind sk;
    assert_int_equal(od_sched_kind_parse("cosine", &sk), OD_OK);
    assert_int_equal(sk, OD_SCHED_COSINE);
    assert_int_equal(od_sched_kind_parse("Step", &sk), OD_OK);
    assert_int_equal(sk, OD_SCHED_STEP);
    assert_int_equal(od_sched_kind_parse("linear", &sk), OD_ERR_INVALID);
    assert_string_equal(od_sched_kind_name(OD_SCHED_CONSTANT), "constant");
}

#define LR_EQ(s, step, want) \
    assert_float_equal(od_schedule_lr((s), (step)), (want), 1e-7)

static void test_schedule_step(void **state)
{
    (void)state;
    od_schedule s = {.kind = OD_SCHED_STEP, .base_lr = 0.1f, .step_size = 3,
                     .gamma = 0.5f};
    assert_int_equal(od_schedule_check(&s), OD_OK);
    LR_EQ(&s, 0, 0.1f);
    LR_EQ(&s, 2, 0.1f);   /* last step before the first boundary */
    LR_EQ(&s, 3, 0.05f);  /* exactly at the boundary */
    LR_EQ(&s, 5, 0.05f);
    LR_EQ(&s, 6, 0.025f);
    LR_EQ(&s, 30, 0.1f / 1024.0f);

    /* With warmup, the decay counts from the end of the warmup. */
    s.warmup_steps = 2;
    LR_EQ(&s, 0, 0.05f);
    LR_EQ(&s, 1, 0.1f);
    LR_EQ(&s, 4, 0.1f);
    LR_EQ(&s, 5, 0.05f);

    s.step_size = 0;
    assert_int_equal(od_schedule_check(&s), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "step_size"));

    od_schedule k = {.kind = OD_SCHED_CONSTANT, .base_lr = 0.3f};
    assert_int_equal(od_schedule_check(&k), OD_OK);
    LR_EQ(&k, 0, 0.3f);
    LR_EQ(&k, 1000000, 0.3f);
}

static void test_schedule_cosine(void **state)
{
    (void)state;
    od_schedule s = {.kind = OD_SCHED_COSINE, .base_lr = 1.0f,
                     .total_steps = 10, .min_lr = 0.1f};
    assert_int_equal(od_schedule_check(&s), OD_OK);
    LR_EQ(&s, 0, 1.0f);
    LR_EQ(&s, 5, 0.55f); /* half way: the mean of base and min */
    /* 0.1 + 0.9 * (1 + cos(0.9 pi)) / 2 = 0.1 + 0.45 * 0.0489434837 */
    LR_EQ(&s, 9, 0.122024568f);
    LR_EQ(&s, 10, 0.1f);
    LR_EQ(&s, 11, 0.1f);  /* stays at min_lr after the end */
    LR_EQ(&s, 500, 0.1f);

    /* Linear warmup of 4 steps, then the cosine over the 10 left. */
    s.warmup_steps = 4;
    s.total_steps = 14;
    LR_EQ(&s, 0, 0.25f);
    LR_EQ(&s, 3, 1.0f);
    LR_EQ(&s, 4, 1.0f);
    LR_EQ(&s, 9, 0.55f);
    LR_EQ(&s, 14, 0.1f);

    s.total_steps = 4;
    assert_int_equal(od_schedule_check(&s), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "total_steps"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_sgd_momentum_dampening),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_adam_bias_correction),
        cmocka_unit_test(test_adamw_decay),
        cmocka_unit_test(test_frozen_and_late_trainable),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_pool_and_cost),
        cmocka_unit_test(test_isa_paths_bitwise),
        cmocka_unit_test(test_config_and_names),
        cmocka_unit_test(test_schedule_step),
        cmocka_unit_test(test_schedule_cosine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
