/* End-to-end training through the run loop on a small part of
 * Fashion-MNIST: the loss must fall well below what an untrained model
 * scores (ln 10 = 2.30), figures must add up, runs must repeat bit for bit,
 * and memory budgets, stop requests and resumed checkpoints must behave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness/config.h"
#include "harness/log.h"
#include "harness/run.h"
#include "workloads/fmnist.h"

/* Every test needs the Debian dataset; without it they skip. */
static int have_fmnist(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz",
             od_fmnist_resolve_dir(NULL));
    if (access(path, R_OK) == 0)
        return 1;
    fprintf(stderr, "skipping: %s is missing; install it with "
                    "`apt-get install dataset-fashion-mnist`\n", path);
    return 0;
}

/* A small, fast configuration: 2000 training images, batch 32. */
static void small_config(od_config *c)
{
    od_config_defaults(c);
    const char *sets[] = {"train_subset=2000", "test_subset=1000",
                          "batch_size=32", "threads=1", "seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        assert_int_equal(od_config_set_arg(c, sets[i]), OD_OK);
}

static void set(od_config *c, const char *arg)
{
    if (od_config_set_arg(c, arg) != OD_OK)
        fail_msg("%s: %s", arg, od_error_message());
}

static od_status train(const od_config *c, od_run_result *r)
{
    od_status st = od_train(c, r);
    if (st != OD_OK && st != OD_ERR_INTERRUPTED && st != OD_ERR_NOMEM)
        fail_msg("training failed: %s", od_error_message());
    return st;
}

static void test_mlp_learns(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    od_config c;
    small_config(&c);
    set(&c, "epochs=5");   /* 5 x 63 = 315 steps */
    set(&c, "momentum=0.9");
    od_run_result r;
    assert_int_equal(train(&c, &r), OD_OK);

    /* 2000 / 32 = 62.5: the last, partial batch of 16 counts as a step. */
    assert_int_equal(r.train_size, 2000);
    assert_int_equal(r.test_size, 1000);
    assert_int_equal(r.epochs_done, 5);
    assert_int_equal(r.steps, 5 * 63);
    assert_int_equal(r.samples, 5 * 2000);
    assert_int_equal(r.param_count, 269322);

    /* The first epoch starts near ln 10; the last must be far below. */
    fprintf(stderr, "train loss by epoch:");
    for (int e = 0; e < 5; e++)
        fprintf(stderr, " %.4f", r.epoch_train_loss[e]);
    fprintf(stderr, "; test accuracy %.4f\n", r.test_accuracy);
    assert_true(r.epoch_train_loss[0] > 1.0);
    assert_true(r.epoch_train_loss[0] < 2.4);
    assert_true(r.train_loss < 0.7);
    assert_true(r.train_loss == r.epoch_train_loss[4]);
    assert_true(r.epoch_train_loss[4] < r.epoch_train_loss[1]);
    /* Ten classes: chance is 10 %. */
    assert_true(r.test_accuracy > 0.6 && r.test_accuracy <= 1.0);
    assert_true(r.test_loss < 1.2);
    for (int e = 0; e < 5; e++)
        assert_false(isnan(r.epoch_test_accuracy[e]));   /* eval each epoch */

    /* Memory: parameters and gradients are 4 bytes each, one momentum
     * buffer of the same size, and the sum of the kinds bounds the overall
     * peak. */
    assert_true(r.peak_mem_by_kind[OD_MEM_PARAM] >= 269322 * 4);
    assert_true(r.peak_mem_by_kind[OD_MEM_GRAD] >= 269322 * 4);
    assert_true(r.peak_mem_by_kind[OD_MEM_OPTIM] >= 269322 * 4);
    assert_true(r.peak_mem_by_kind[OD_MEM_ACT] > 0);
    size_t sum = 0;
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++)
        sum += r.peak_mem_by_kind[k];
    assert_true(r.peak_mem_bytes <= sum);
    assert_true(r.peak_mem_bytes >= r.peak_mem_by_kind[OD_MEM_PARAM] +
                                        r.peak_mem_by_kind[OD_MEM_GRAD]);

    /* Three linear layers: three multiply-adds (6 flops) per weight per
     * sample (forward, input and weight gradients), except that fc1's input
     * gradient is not needed. A lower bound for any complete accounting. */
    double gemm_per_sample = 2.0 * (256 * 256 + 10 * 256) * 3 +
                             2.0 * 784 * 256 * 2;
    assert_true(r.flops_by_kind[OD_OP_GEMM] >=
                0.99 * gemm_per_sample * (double)r.samples);
    assert_true(r.host_time_s > 0);
    od_run_result_free(&r);
}

/* The same seed and thread count give bitwise the same run; another seed
 * gives another. */
static void test_repeatable(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    od_config c;
    small_config(&c);
    set(&c, "train_subset=500");
    set(&c, "test_subset=200");
    set(&c, "optimizer=adam");
    set(&c, "lr=0.001");
    od_run_result a, b, d;
    assert_int_equal(train(&c, &a), OD_OK);
    assert_int_equal(train(&c, &b), OD_OK);
    set(&c, "seed=8");
    assert_int_equal(train(&c, &d), OD_OK);
    assert_memory_equal(&a.train_loss, &b.train_loss, sizeof(double));
    assert_memory_equal(&a.test_loss, &b.test_loss, sizeof(double));
    assert_true(a.train_loss != d.train_loss);
    /* Adam keeps two moments per parameter. */
    assert_true(a.peak_mem_by_kind[OD_MEM_OPTIM] >= 2 * 269322 * 4);
    od_run_result_free(&a);
    od_run_result_free(&b);
    od_run_result_free(&d);
}

/* Two epochs in one go equal one epoch, a checkpoint, and a run resumed
 * from it: same shuffles, same schedule steps, same momentum buffers. The
 * step schedule does not depend on the total length, so both halves share
 * it. */
static void test_resume_matches_straight_run(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    char path[] = "/tmp/ondev_test_train_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);

    od_config c;
    small_config(&c);
    set(&c, "train_subset=600");
    set(&c, "test_subset=200");
    set(&c, "momentum=0.9");
    set(&c, "schedule=step");
    set(&c, "lr_step_size=15");
    set(&c, "lr_gamma=0.5");
    set(&c, "epochs=2");
    od_run_result straight, first, second;
    assert_int_equal(train(&c, &straight), OD_OK);

    char arg[128];
    od_config c1 = c;
    set(&c1, "epochs=1");
    snprintf(arg, sizeof arg, "checkpoint=%s", path);
    set(&c1, arg);
    assert_int_equal(train(&c1, &first), OD_OK);

    od_config c2 = c;
    snprintf(arg, sizeof arg, "resume=%s", path);
    set(&c2, arg);
    assert_int_equal(train(&c2, &second), OD_OK);
    unlink(path);

    assert_int_equal(second.start_epoch, 1);
    assert_int_equal(second.epochs_done, 1);
    assert_int_equal(second.steps, 19);   /* 600 / 32 -> 19 steps */
    assert_memory_equal(&first.epoch_train_loss[0],
                        &straight.epoch_train_loss[0], sizeof(double));
    assert_memory_equal(&second.train_loss, &straight.train_loss,
                        sizeof(double));
    assert_memory_equal(&second.test_loss, &straight.test_loss,
                        sizeof(double));
    od_run_result_free(&straight);
    od_run_result_free(&first);
    od_run_result_free(&second);
}

/* A budget that cannot hold the model, or one training step, is refused
 * before training, naming the bytes and the setting to change. */
static void test_memory_budget(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    od_config c;
    small_config(&c);
    set(&c, "train_subset=200");
    set(&c, "test_subset=100");

    /* Parameters alone take 1.03 MiB. */
    set(&c, "mem_budget=1MiB");
    od_run_result r;
    assert_int_equal(train(&c, &r), OD_ERR_NOMEM);
    assert_false(r.started);
    assert_int_equal(r.steps, 0);
    const char *msg = od_error_message();
    if (!strstr(msg, "mem_budget = 1MiB") || !strstr(msg, "parameters"))
        fail_msg("unhelpful message: %s", msg);
    od_run_result_free(&r);

    /* Parameters and gradients fit (2.06 MiB); a batch of 4096 images does
     * not: its input alone is 12.25 MiB. */
    set(&c, "mem_budget=3MiB");
    set(&c, "batch_size=4096");
    assert_int_equal(train(&c, &r), OD_ERR_NOMEM);
    assert_false(r.started);
    msg = od_error_message();
    if (!strstr(msg, "one training step") || !strstr(msg, "batch_size"))
        fail_msg("unhelpful message: %s", msg);
    od_run_result_free(&r);

    /* A budget with room trains, and its peak stays within it. */
    set(&c, "mem_budget=4MiB");
    set(&c, "batch_size=32");
    assert_int_equal(train(&c, &r), OD_OK);
    assert_true(r.peak_mem_bytes <= 4u << 20);
    assert_int_equal(r.mem_budget_bytes, 4u << 20);
    od_run_result_free(&r);
}

/* Micro-batches accumulate to the same gradient as the whole batch (up to
 * rounding), and memory_policy=adapt finds micro-batches that fit a budget
 * the whole batch does not. */
static void test_microbatches(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    od_config c;
    small_config(&c);
    set(&c, "train_subset=640");
    set(&c, "test_subset=200");
    set(&c, "batch_size=64");
    set(&c, "epochs=2");
    od_run_result whole, split;
    assert_int_equal(train(&c, &whole), OD_OK);
    set(&c, "microbatch=24");   /* 24 + 24 + 16: uneven parts */
    assert_int_equal(train(&c, &split), OD_OK);
    assert_int_equal(whole.microbatch, 64);
    assert_int_equal(split.microbatch, 24);
    /* Rounding differs, so compare to a tolerance that training noise of a
     * wrong scaling (a factor 24/64 or 3) would exceed by far. */
    assert_true(fabs(whole.train_loss - split.train_loss) <
                1e-4 * whole.train_loss);
    assert_true(fabs(whole.test_loss - split.test_loss) <
                1e-4 * whole.test_loss);
    assert_true(split.peak_mem_by_kind[OD_MEM_ACT] <
                whole.peak_mem_by_kind[OD_MEM_ACT]);
    od_run_result_free(&whole);
    od_run_result_free(&split);

    /* 3 MiB holds the parameters and gradients (2.06 MiB) but not the
     * activations of 640 images at once. */
    set(&c, "microbatch=0");
    set(&c, "batch_size=640");
    set(&c, "epochs=1");
    set(&c, "mem_budget=3MiB");
    od_run_result r;
    assert_int_equal(train(&c, &r), OD_ERR_NOMEM);
    od_run_result_free(&r);
    set(&c, "memory_policy=adapt");
    assert_int_equal(train(&c, &r), OD_OK);
    assert_true(r.microbatch >= 1 && r.microbatch < 640);
    assert_true(r.peak_mem_bytes <= 3u << 20);
    assert_int_equal(r.samples, 640);
    od_run_result_free(&r);
}

/* A stop request ends the run after the current step, keeping what was
 * done; unknown workloads and missing data fail before any work. */
static void test_stop_and_bad_input(void **state)
{
    (void)state;
    if (!have_fmnist())
        skip();
    od_config c;
    small_config(&c);
    set(&c, "train_subset=300");
    set(&c, "test_subset=100");
    od_run_result r;
    od_run_request_stop();
    assert_int_equal(train(&c, &r), OD_ERR_INTERRUPTED);
    od_run_clear_stop();
    assert_true(r.started && r.interrupted);
    assert_int_equal(r.steps, 1);
    assert_int_equal(r.samples, 32);
    assert_int_equal(r.epochs_done, 0);
    assert_non_null(strstr(od_error_message(), "after 1 step"));
    od_run_result_free(&r);

    set(&c, "workload=fmnist-mpl");
    assert_int_equal(od_train(&c, &r), OD_ERR_INVALID);
    assert_false(r.started);
    if (!strstr(od_error_message(), "fmnist-mlp"))
        fail_msg("valid workloads not listed: %s", od_error_message());
    od_run_result_free(&r);

    set(&c, "workload=fmnist-mlp");
    set(&c, "data_dir=/nonexistent/fmnist");
    assert_int_not_equal(od_train(&c, &r), OD_OK);
    assert_false(r.started);
    if (!strstr(od_error_message(), "apt-get install"))
        fail_msg("no install hint: %s", od_error_message());
    od_run_result_free(&r);
}

int main(void)
{
    od_log_set_level(OD_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_learns),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_resume_matches_straight_run),
        cmocka_unit_test(test_memory_budget),
        cmocka_unit_test(test_microbatches),
        cmocka_unit_test(test_stop_and_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
