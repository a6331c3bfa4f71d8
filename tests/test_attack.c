/* Gradient inversion.
 *
 * On fmnist-mlp (first layer linear with bias) a single example's plain
 * update reveals the image to float precision (PSNR above 60 dB, every
 * pixel within 1e-4) and its label; the same update under DP-SGD
 * calibrated to epsilon = 8 (and to 1) leaves a reconstruction below
 * 15 dB. Clipping alone hides nothing, which the test also shows. The
 * one-run audit is tested in test_audit.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/model.h"
#include "privacy/accountant.h"
#include "privacy/attack.h"
#include "workloads/workload.h"

typedef struct fixture {
    od_arena *arena;
    od_pool *pool;
    od_ctx ctx;
    od_model *mlp;
    od_tensor x;     /* (1, 1, 28, 28) */
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof f);
    f.arena = od_arena_create(0);
    f.pool = od_pool_create(2, NULL);
    f.ctx = (od_ctx){.arena = f.arena, .pool = f.pool, .seed = 3};
    const od_workload *wl = od_workload_find("fmnist-mlp");
    if (!f.arena || !f.pool || !wl || wl->build_model(&f.ctx, &f.mlp))
        return -1;
    od_model_init(f.mlp, 21);
    if (od_tensor_alloc4(f.arena, OD_MEM_PARAM, &f.x, 1, 1, 28, 28))
        return -1;
    /* A soft ring on a dark background, pixels in [0, 1]. */
    for (int i = 0; i < 28; i++)
        for (int j = 0; j < 28; j++) {
            double r = hypot(i - 13.5, j - 12.0);
            f.x.data[i * 28 + j] = (float)exp(-0.5 * (r - 8) * (r - 8) / 4);
        }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    od_model_destroy(f->mlp);
    od_pool_destroy(f->pool);
    od_arena_destroy(f->arena);
    return 0;
}

static int reset_step(void **state)
{
    fixture *f = *state;
    od_arena_reset_step(f->arena);
    return 0;
}

static void test_inversion_without_dp_is_exact(void **state)
{
    fixture *f = *state;
    float rec[784];
    od_attack_config c = {.dp = 0};
    od_attack_result r;
    for (int32_t label = 0; label < 10; label += 3) {
        assert_int_equal(od_attack_run(f->mlp, &f->x, label, &c, rec, &r),
                         OD_OK);
        if (!(r.psnr_db > 60.0) || r.max_abs_err > 1e-4)
            fail_msg("label %d: PSNR %.1f dB, max error %g", label,
                     r.psnr_db, r.max_abs_err);
        assert_int_equal(r.label_guess, label);
        od_arena_reset_step(f->arena);
    }

    /* Clipping alone scales dW and db alike: still exact. */
    c.dp = 1;
    c.clip_norm = 0.01;
    c.noise_multiplier = 0.0;
    assert_int_equal(od_attack_run(f->mlp, &f->x, 4, &c, rec, &r), OD_OK);
    assert_true(r.grad_norm > 0.01);
    assert_true(r.psnr_db > 60.0);
}

static void test_inversion_with_dp_fails(void **state)
{
    fixture *f = *state;
    float rec[784];
    double targets[2] = {8.0, 1.0};
    for (int t = 0; t < 2; t++) {
        /* One update of one example: q = 1, one step. */
        od_privacy_params p;
        od_privacy_params_init(&p);
        p.sampling_rate = 1.0;
        p.steps = 1;
        p.delta = 1e-5;
        double sigma;
        od_privacy_result at;
        assert_int_equal(od_privacy_sigma(&p, targets[t], &sigma, &at),
                         OD_OK);
        assert_true(at.epsilon <= targets[t] + 1e-9);
        for (uint64_t seed = 1; seed <= 3; seed++) {
            od_attack_config c = {.dp = 1, .clip_norm = 1.0,
                                  .noise_multiplier = sigma, .seed = seed};
            od_attack_result r;
            assert_int_equal(od_attack_run(f->mlp, &f->x, 7, &c, rec, &r),
                             OD_OK);
            if (!(r.psnr_db < 15.0))
                fail_msg("epsilon %g, sigma %g: PSNR %.1f dB", targets[t],
                         sigma, r.psnr_db);
            od_arena_reset_step(f->arena);
        }
    }
}

static void test_invert_linear_input_checks(void **state)
{
    (void)state;
    float dw[6] = {1, 2, 3, 4, 5, 6}, db[2] = {0, 0}, x[3];
    assert_int_equal(od_attack_invert_linear(dw, db, 2, 3, x),
                     OD_ERR_INVALID);
    db[1] = 2;  /* row 1 of dW is 2 x */
    assert_int_equal(od_attack_invert_linear(dw, db, 2, 3, x), OD_OK);
    assert_true(fabsf(x[0] - 2.0f) < 1e-6f && fabsf(x[2] - 3.0f) < 1e-6f);
    float ref[4] = {0, 0.5f, 1, 0.25f}, rec[4] = {0, 0.5f, 1, 0.35f};
    /* MSE 0.0025 with peak 1: 26.02 dB. */
    assert_true(fabs(od_psnr(ref, rec, 4, 1.0) - 26.0206) < 1e-3);
    assert_true(isinf(od_psnr(ref, ref, 4, 1.0)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_inversion_without_dp_is_exact,
                                  reset_step),
        cmocka_unit_test_teardown(test_inversion_with_dp_fails, reset_step),
        cmocka_unit_test(test_invert_linear_input_checks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
