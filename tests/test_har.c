/* Tests of the health-activity workload: the generator's determinism and
 * layout, the physics of its signals (gravity, gait frequency, intensity),
 * per-user variation, subsets, the CNN, the logistic-regression baseline,
 * and a short training in which the CNN beats that baseline. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/optim.h"
#include "workloads/har.h"
#include "workloads/workload.h"

/* Same seed, same bytes; another seed, other bytes. */
static void test_determinism(void **state)
{
    (void)state;
    od_dataset a, b, c;
    assert_int_equal(od_har_generate(7, 0, 3, 5, "a", &a), OD_OK);
    assert_int_equal(od_har_generate(7, 0, 3, 5, "b", &b), OD_OK);
    assert_int_equal(od_har_generate(8, 0, 3, 5, "c", &c), OD_OK);
    assert_int_equal(a.n, 3 * OD_HAR_CLASSES * 5);
    assert_memory_equal(a.x, b.x, a.n * a.sample_size * sizeof(float));
    assert_memory_equal(a.y, b.y, a.n * sizeof(int32_t));
    assert_memory_equal(a.group, b.group, a.n * sizeof(int32_t));
    assert_memory_not_equal(a.x, c.x, a.n * a.sample_size * sizeof(float));

    /* A user's windows do not depend on which other users are generated:
     * user 2 alone equals user 2 of the three. */
    od_dataset d;
    assert_int_equal(od_har_generate(7, 2, 1, 5, "d", &d), OD_OK);
    size_t per_user = (size_t)OD_HAR_CLASSES * 5 * a.sample_size;
    assert_memory_equal(d.x, a.x + 2 * per_user, per_user * sizeof(float));
    od_dataset_free(&a);
    od_dataset_free(&b);
    od_dataset_free(&c);
    od_dataset_free(&d);
}

static void test_layout(void **state)
{
    (void)state;
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.seed = 3;
    od_dataset train, test;
    assert_int_equal(od_har_load(&o, &train, &test), OD_OK);
    assert_int_equal(od_dataset_check(&train), OD_OK);
    assert_int_equal(od_dataset_check(&test), OD_OK);
    assert_int_equal(train.n, OD_HAR_TRAIN_USERS * OD_HAR_CLASSES *
                                  OD_HAR_WINDOWS_PER_ACTIVITY);
    assert_int_equal(test.n, OD_HAR_TEST_USERS * OD_HAR_CLASSES *
                                 OD_HAR_WINDOWS_PER_ACTIVITY);
    assert_int_equal(train.sample_ndim, 2);
    assert_int_equal(train.sample_dims[0], OD_HAR_AXES);
    assert_int_equal(train.sample_dims[1], OD_HAR_WINDOW);
    assert_string_equal(train.class_names[OD_HAR_LYING], "lying");

    /* Balanced classes; test users are not training users. */
    int64_t counts[OD_HAR_CLASSES];
    od_dataset_class_counts(&train, counts);
    for (int k = 0; k < OD_HAR_CLASSES; k++)
        assert_int_equal(counts[k], OD_HAR_TRAIN_USERS *
                                        OD_HAR_WINDOWS_PER_ACTIVITY);
    for (int i = 0; i < train.n; i++)
        assert_true(train.group[i] >= 0 &&
                    train.group[i] < OD_HAR_TRAIN_USERS);
    for (int i = 0; i < test.n; i++)
        assert_true(test.group[i] >= OD_HAR_TRAIN_USERS &&
                    test.group[i] < OD_HAR_TRAIN_USERS + OD_HAR_TEST_USERS);
    od_dataset_free(&train);
    od_dataset_free(&test);

    /* A small subset still holds every activity, and is deterministic. */
    o.train_subset = 70;
    o.test_subset = 35;
    od_dataset s1, t1, s2, t2;
    assert_int_equal(od_har_load(&o, &s1, &t1), OD_OK);
    assert_int_equal(od_har_load(&o, &s2, &t2), OD_OK);
    assert_int_equal(s1.n, 70);
    assert_int_equal(t1.n, 35);
    assert_memory_equal(s1.x, s2.x, 70 * s1.sample_size * sizeof(float));
    od_dataset_class_counts(&s1, counts);
    for (int k = 0; k < OD_HAR_CLASSES; k++)
        assert_true(counts[k] > 0);
    od_dataset_free(&s1);
    od_dataset_free(&t1);
    od_dataset_free(&s2);
    od_dataset_free(&t2);
}

/* Per-window figures of the acceleration magnitude |a| (128). */
static void magnitude(const float *w, double *mag)
{
    for (int t = 0; t < OD_HAR_WINDOW; t++) {
        double s = 0;
        for (int k = 0; k < OD_HAR_AXES; k++) {
            double v = w[k * OD_HAR_WINDOW + t];
            s += v * v;
        }
        mag[t] = sqrt(s);
    }
}

/* The frequency in Hz of the strongest component of x (128) between 0.5
 * and 6 Hz, by a plain DFT with the mean removed. */
static double dominant_hz(const double *x)
{
    double mean = 0;
    for (int t = 0; t < OD_HAR_WINDOW; t++)
        mean += x[t] / OD_HAR_WINDOW;
    double best = 0, best_hz = 0;
    for (double hz = 0.5; hz <= 6.0; hz += 0.05) {
        double re = 0, im = 0;
        for (int t = 0; t < OD_HAR_WINDOW; t++) {
            double ph = 2 * M_PI * hz * t / OD_HAR_RATE_HZ;
            re += (x[t] - mean) * cos(ph);
            im += (x[t] - mean) * sin(ph);
        }
        if (re * re + im * im > best) {
            best = re * re + im * im;
            best_hz = hz;
        }
    }
    return best_hz;
}

/* The signals obey the physics they model: about 1 g of gravity at rest,
 * steps at the user's cadence, running harder than walking harder than
 * standing. */
static void test_physics(void **state)
{
    (void)state;
    for (int u = 0; u < 5; u++) {
        od_har_user user;
        od_har_user_make(11, u, &user);
        assert_true(user.cadence_hz > 1.3 && user.cadence_hz < 2.4);
        od_rng r;
        od_rng_seed(&r, 11, (uint64_t)u);
        float w[OD_HAR_AXES * OD_HAR_WINDOW];
        double mag[OD_HAR_WINDOW], sd[OD_HAR_CLASSES];
        for (int a = 0; a < OD_HAR_CLASSES; a++) {
            od_har_window(&user, (od_har_activity)a, &r, w);
            magnitude(w, mag);
            double m = 0, v = 0;
            for (int t = 0; t < OD_HAR_WINDOW; t++)
                m += mag[t] / OD_HAR_WINDOW;
            for (int t = 0; t < OD_HAR_WINDOW; t++)
                v += (mag[t] - m) * (mag[t] - m) / OD_HAR_WINDOW;
            sd[a] = sqrt(v);
            if (a >= OD_HAR_SITTING)   /* at rest: gravity alone */
                assert_true(fabs(m - 1.0) < 0.12);
            if (a == OD_HAR_WALKING) {
                /* Steps (or their second harmonic) at the cadence. */
                double hz = dominant_hz(mag);
                double ratio = hz / user.cadence_hz;
                assert_true(fabs(ratio - 1) < 0.15 || fabs(ratio - 2) < 0.3);
            }
        }
        assert_true(sd[OD_HAR_RUNNING] > 2 * sd[OD_HAR_WALKING]);
        assert_true(sd[OD_HAR_WALKING] > 4 * sd[OD_HAR_STANDING]);
        assert_true(sd[OD_HAR_STANDING] < 0.06);
    }

    /* Users differ: cadences and phone attitudes are not all the same. */
    od_har_user a, b;
    od_har_user_make(11, 0, &a);
    od_har_user_make(11, 1, &b);
    assert_true(a.cadence_hz != b.cadence_hz);
    assert_true(memcmp(a.phone_rot, b.phone_rot, sizeof a.phone_rot) != 0);
}

static void test_bad_input(void **state)
{
    (void)state;
    od_dataset d;
    assert_int_equal(od_har_generate(1, 0, 0, 5, "x", &d), OD_ERR_INVALID);
    assert_int_equal(od_har_generate(1, 0, 2, 0, "x", &d), OD_ERR_INVALID);
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.train_subset = -1;
    od_dataset tr, te;
    assert_int_equal(od_har_load(&o, &tr, &te), OD_ERR_INVALID);
}

static void test_model(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(0);
    od_ctx ctx = {.arena = a};
    od_model *m;
    assert_int_equal(od_har_build_cnn(&ctx, &m), OD_OK);
    assert_int_equal(od_model_param_count(m, 0), 33287);
    const int in[3] = {4, OD_HAR_AXES, OD_HAR_WINDOW};
    int nd, dims[OD_MAX_DIMS];
    assert_int_equal(od_model_check_shape(m, 3, in, &nd, dims), OD_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(dims[0], 4);
    assert_int_equal(dims[1], OD_HAR_CLASSES);
    od_model_destroy(m);
    od_arena_destroy(a);

    const od_workload *w = od_workload_find("har-cnn");
    assert_non_null(w);
    assert_non_null(w->baseline);
    assert_string_equal(w->group_kind, "user");
}

/* The baseline separates two linearly separable clouds perfectly and
 * refuses sequence labels. */
static void test_logreg(void **state)
{
    (void)state;
    const int dims[2] = {1, 4};
    od_dataset d;
    assert_int_equal(od_dataset_alloc(&d, "lin", 40, 2, dims, 1, 2, 0),
                     OD_OK);
    od_rng r;
    od_rng_seed(&r, 3, 0);
    for (int i = 0; i < 40; i++) {
        d.y[i] = i % 2;
        for (int k = 0; k < 4; k++)
            d.x[i * 4 + k] = (float)((d.y[i] ? 1.0 : -1.0) * (k == 2) +
                                     0.1 * od_rng_normal(&r));
    }
    od_metrics m = {0};
    assert_int_equal(od_har_logreg_baseline(&d, &d, &m), OD_OK);
    assert_string_equal(m.baseline, "logistic regression");
    assert_true(od_metrics_get(&m, "baseline_accuracy") == 1.0);
    assert_true(od_metrics_get(&m, "baseline_loss") < 0.5);  /* chance: 0.69 */
    od_dataset_free(&d);

    const int seq[1] = {4};
    assert_int_equal(od_dataset_alloc(&d, "seq", 4, 1, seq, 4, 2, 0), OD_OK);
    od_metrics m2 = {0};
    assert_int_equal(od_har_logreg_baseline(&d, &d, &m2), OD_ERR_MISMATCH);
    od_dataset_free(&d);
}

/* One epoch of the CNN on the full generated set beats the linear
 * baseline on held-out users by at least 10 accuracy points. */
static void test_cnn_beats_baseline(void **state)
{
    (void)state;
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.seed = 1;
    od_dataset tr, te;
    assert_int_equal(od_har_load(&o, &tr, &te), OD_OK);
    od_metrics base = {0};
    assert_int_equal(od_har_logreg_baseline(&tr, &te, &base), OD_OK);

    od_arena *a = od_arena_create(0);
    od_ctx ctx = {.arena = a};
    od_model *m;
    assert_int_equal(od_har_build_cnn(&ctx, &m), OD_OK);
    od_model_init(m, 1);
    od_optim_config oc = od_optim_config_default(OD_OPTIM_ADAM);
    oc.lr = 0.001f;
    od_optim *opt;
    assert_int_equal(od_optim_create(&ctx, m, &oc, &opt), OD_OK);

    enum { B = 32 };
    int32_t *order = malloc((size_t)tr.n * sizeof *order);
    assert_non_null(order);
    od_rng r;
    od_rng_seed(&r, 1, 0);
    {   /* one epoch */
        for (int i = 0; i < tr.n; i++)
            order[i] = i;
        od_rng_shuffle(&r, order, tr.n);
        for (int s = 0; s + B <= tr.n; s += B) {
            od_arena_reset_step(a);
            od_tensor x, logits, dl;
            int32_t y[B];
            assert_int_equal(od_tensor_alloc3(a, OD_MEM_ACT, &x, B,
                                              OD_HAR_AXES, OD_HAR_WINDOW),
                             OD_OK);
            assert_int_equal(od_dataset_gather(&tr, order + s, B, x.data, y),
                             OD_OK);
            od_model_zero_grad(m);
            assert_int_equal(od_model_forward(m, &x, 1, &logits), OD_OK);
            double loss;
            int count;
            assert_int_equal(od_model_xent(m, &logits, y, &loss, &count,
                                           NULL, &dl), OD_OK);
            assert_int_equal(od_model_backward(m, &dl), OD_OK);
            assert_int_equal(od_optim_step(opt, oc.lr), OD_OK);
        }
    }

    int64_t correct = 0;
    for (int s = 0; s < te.n; s += B) {
        int n = te.n - s < B ? te.n - s : B;
        int32_t idx[B], y[B];
        for (int i = 0; i < n; i++)
            idx[i] = s + i;
        od_arena_reset_step(a);
        od_tensor x, logits;
        assert_int_equal(od_tensor_alloc3(a, OD_MEM_ACT, &x, n, OD_HAR_AXES,
                                          OD_HAR_WINDOW), OD_OK);
        assert_int_equal(od_dataset_gather(&te, idx, n, x.data, y), OD_OK);
        double loss;
        int count, ok;
        assert_int_equal(od_model_forward(m, &x, 0, &logits), OD_OK);
        assert_int_equal(od_model_xent(m, &logits, y, &loss, &count, &ok,
                                       NULL), OD_OK);
        correct += ok;
    }
    double acc = (double)correct / te.n;
    double base_acc = od_metrics_get(&base, "baseline_accuracy");
    fprintf(stderr, "har-cnn after 1 epoch: %.1f %%, logistic regression "
                    "%.1f %%\n", 100 * acc, 100 * base_acc);
    assert_true(acc >= base_acc + 0.10);

    free(order);
    od_optim_destroy(opt);
    od_model_destroy(m);
    od_arena_destroy(a);
    od_dataset_free(&tr);
    od_dataset_free(&te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_physics),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_logreg),
        cmocka_unit_test(test_cnn_beats_baseline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
