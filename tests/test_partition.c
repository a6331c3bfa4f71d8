/* Tests of client partitioning: for every scheme, every sample lands in
 * exactly one client and no client is empty; splits repeat for a seed;
 * smaller Dirichlet alpha gives less label entropy per client; quantity
 * skew spreads sizes; natural splits keep owners whole; impossible splits
 * are refused with a reason. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "workloads/partition.h"

enum { N = 2000, CLASSES = 10, GROUPS = 40 };

/* N samples of one value each, labels cycling over CLASSES, groups of 50
 * consecutive samples. */
static void make_dataset(od_dataset *d, int with_groups)
{
    const int dims[1] = {1};
    assert_int_equal(od_dataset_alloc(d, "synthetic", N, 1, dims, 1,
                                      CLASSES, with_groups), OD_OK);
    for (int i = 0; i < N; i++) {
        d->x[i] = (float)i;
        d->y[i] = (i * 7) % CLASSES;
        if (with_groups)
            d->group[i] = i / (N / GROUPS);
    }
}

/* Make, validate and return a split. */
static void split(const od_dataset *d, const od_partition_opts *o,
                  od_partition *p)
{
    od_status st = od_partition_make(d, o, p);
    if (st != OD_OK)
        fail_msg("%s", od_error_message());
    assert_int_equal(od_partition_validate(p), OD_OK);
    assert_int_equal(p->n, d->n);
}

static int same_split(const od_partition *a, const od_partition *b)
{
    return a->clients == b->clients &&
           memcmp(a->offset, b->offset,
                  (size_t)(a->clients + 1) * sizeof *a->offset) == 0 &&
           memcmp(a->idx, b->idx, (size_t)a->n * sizeof *a->idx) == 0;
}

/* Every scheme: invariants, repeatable for a seed, another seed differs. */
static void test_invariants_all_schemes(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 1);
    for (int s = 0; s < OD_PARTITION_SCHEME_COUNT; s++) {
        od_partition_opts o;
        od_partition_opts_init(&o);
        o.scheme = (od_partition_scheme)s;
        o.clients = s == OD_PARTITION_NATURAL ? 0 : 37;
        o.alpha = 0.3;
        o.seed = 5;
        od_partition a, b, c;
        split(&d, &o, &a);
        split(&d, &o, &b);
        assert_true(same_split(&a, &b));
        assert_int_equal(a.clients, s == OD_PARTITION_NATURAL ? GROUPS : 37);
        /* Samples ascend inside each client. */
        for (int k = 0; k < a.clients; k++)
            for (int64_t j = a.offset[k] + 1; j < a.offset[k + 1]; j++)
                assert_true(a.idx[j - 1] < a.idx[j]);
        if (s != OD_PARTITION_NATURAL) {
            o.seed = 6;
            split(&d, &o, &c);
            assert_false(same_split(&a, &c));
            od_partition_free(&c);
        }
        od_partition_free(&a);
        od_partition_free(&b);
    }
    od_dataset_free(&d);
}

/* The checker itself catches a sample in two clients and an empty one. */
static void test_validate_catches(void **state)
{
    (void)state;
    int64_t off[3] = {0, 2, 4};
    int32_t idx[4] = {0, 1, 1, 3};
    od_partition p = {.clients = 2, .offset = off, .idx = idx, .n = 4};
    assert_int_equal(od_partition_validate(&p), OD_ERR_FORMAT);
    idx[2] = 2;
    assert_int_equal(od_partition_validate(&p), OD_OK);
    off[1] = 0;
    assert_int_equal(od_partition_validate(&p), OD_ERR_FORMAT);
}

static void test_iid(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 0);
    od_partition_opts o;
    od_partition_opts_init(&o);
    o.clients = 30;
    od_partition p;
    split(&d, &o, &p);
    od_partition_stats s;
    assert_int_equal(od_partition_stats_compute(&d, &p, &s, NULL), OD_OK);
    assert_true(s.max_size - s.min_size <= 1);
    /* About 66 samples drawn from 10 balanced classes: close to the full
     * log2(10) = 3.32 bits. */
    assert_true(s.mean_label_entropy_bits > 3.0);
    assert_true(fabs(s.global_label_entropy_bits - log2(10.0)) < 1e-9);
    od_partition_free(&p);

    /* One client per sample is possible; one more is not. */
    o.clients = N;
    split(&d, &o, &p);
    assert_int_equal(p.clients, N);
    od_partition_free(&p);
    o.clients = N + 1;
    assert_int_equal(od_partition_make(&d, &o, &p), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "more than"));
    od_dataset_free(&d);
}

/* Smaller alpha, less label entropy per client and fewer classes. */
static void test_dirichlet_entropy(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 0);
    const double alphas[] = {0.05, 0.3, 1.0, 10.0, 1000.0};
    double prev_h = -1, prev_classes = -1;
    for (size_t i = 0; i < sizeof alphas / sizeof alphas[0]; i++) {
        od_partition_opts o;
        od_partition_opts_init(&o);
        o.scheme = OD_PARTITION_DIRICHLET;
        o.clients = 20;
        o.alpha = alphas[i];
        o.seed = 11;
        od_partition p;
        split(&d, &o, &p);
        od_partition_stats s;
        double h[20];
        assert_int_equal(od_partition_stats_compute(&d, &p, &s, h), OD_OK);
        double mean = 0;
        for (int k = 0; k < 20; k++)
            mean += h[k] / 20;
        assert_true(fabs(mean - s.mean_label_entropy_bits) < 1e-9);
        assert_true(s.mean_label_entropy_bits > prev_h);
        assert_true(s.mean_classes_per_client >= prev_classes);
        prev_h = s.mean_label_entropy_bits;
        prev_classes = s.mean_classes_per_client;
        if (alphas[i] <= 0.05)
            assert_true(s.mean_label_entropy_bits < 1.5);
        if (alphas[i] >= 1000)
            assert_true(s.mean_label_entropy_bits > 3.2);
        od_partition_free(&p);
    }
    od_dataset_free(&d);
}

/* Many clients and a tiny alpha leave some clients without any draw; each
 * still gets a sample. */
static void test_dirichlet_no_empty(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 0);
    od_partition_opts o;
    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_DIRICHLET;
    o.clients = 500;
    o.alpha = 0.01;
    od_partition p;
    split(&d, &o, &p);
    od_partition_stats s;
    assert_int_equal(od_partition_stats_compute(&d, &p, &s, NULL), OD_OK);
    assert_true(s.min_size >= 1);
    od_partition_free(&p);
    od_dataset_free(&d);
}

static double size_cv(const od_dataset *d, od_partition_scheme scheme,
                      double sigma, double exponent)
{
    od_partition_opts o;
    od_partition_opts_init(&o);
    o.scheme = scheme;
    o.clients = 50;
    o.sigma = sigma;
    o.exponent = exponent;
    o.seed = 3;
    od_partition p;
    split(d, &o, &p);
    od_partition_stats s;
    assert_int_equal(od_partition_stats_compute(d, &p, &s, NULL), OD_OK);
    assert_true(s.min_size >= 1);
    assert_true(fabs(s.mean_size - (double)N / 50) < 1e-9);
    od_partition_free(&p);
    return s.std_size / s.mean_size;
}

/* Quantity skew: sizes spread more with a wider lognormal or a heavier
 * power-law tail, and far more than iid. */
static void test_quantity_skew(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 0);
    double iid = size_cv(&d, OD_PARTITION_IID, 1, 1);
    double ln_narrow = size_cv(&d, OD_PARTITION_LOGNORMAL, 0.2, 1);
    double ln_wide = size_cv(&d, OD_PARTITION_LOGNORMAL, 1.5, 1);
    double pl_light = size_cv(&d, OD_PARTITION_POWERLAW, 1, 5.0);
    double pl_heavy = size_cv(&d, OD_PARTITION_POWERLAW, 1, 0.8);
    assert_true(iid < 0.02);
    assert_true(ln_narrow > iid && ln_narrow < 0.5);
    assert_true(ln_wide > 2 * ln_narrow);
    assert_true(pl_heavy > 2 * pl_light);
    od_dataset_free(&d);
}

static int32_t quarter(int32_t g, const void *arg)
{
    (void)arg;
    return g / 4;
}

/* Natural: owners stay whole; coarser levels and fewer clients merge
 * owners without splitting them. */
static void test_natural(void **state)
{
    (void)state;
    od_dataset d;
    make_dataset(&d, 1);
    od_partition_opts o;
    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_NATURAL;
    o.clients = 0;
    od_partition p;
    split(&d, &o, &p);
    assert_int_equal(p.clients, GROUPS);
    for (int k = 0; k < p.clients; k++) {
        assert_int_equal(od_partition_size(&p, k), N / GROUPS);
        for (int64_t j = p.offset[k]; j < p.offset[k + 1]; j++)
            assert_int_equal(d.group[p.idx[j]], k);
    }
    od_partition_free(&p);

    /* Fewer clients than owners: each owner in exactly one client. */
    o.clients = 7;
    split(&d, &o, &p);
    int client_of_group[GROUPS];
    for (int g = 0; g < GROUPS; g++)
        client_of_group[g] = -1;
    for (int k = 0; k < p.clients; k++)
        for (int64_t j = p.offset[k]; j < p.offset[k + 1]; j++) {
            int g = d.group[p.idx[j]];
            assert_true(client_of_group[g] == -1 || client_of_group[g] == k);
            client_of_group[g] = k;
        }
    od_partition_free(&p);

    /* A coarser level: 10 owners of 4 groups each. */
    o.clients = 0;
    o.owner_of = quarter;
    split(&d, &o, &p);
    assert_int_equal(p.clients, GROUPS / 4);
    assert_int_equal(od_partition_size(&p, 0), 4 * N / GROUPS);
    od_partition_free(&p);

    /* More clients than owners is refused. */
    o.clients = GROUPS / 4 + 1;
    assert_int_equal(od_partition_make(&d, &o, &p), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "natural owners"));
    od_dataset_free(&d);
}

/* Impossible requests fail before any work, with the reason. */
static void test_refusals(void **state)
{
    (void)state;
    od_dataset d, nog;
    make_dataset(&d, 1);
    make_dataset(&nog, 0);
    od_partition_opts o;
    od_partition p;

    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_DIRICHLET;
    o.alpha = 0;
    assert_int_equal(od_partition_make(&d, &o, &p), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "alpha"));
    o.alpha = -1;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);
    o.alpha = NAN;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);

    od_partition_opts_init(&o);
    o.clients = 0;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);
    o.clients = -3;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);

    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_NATURAL;
    assert_int_equal(od_partition_check(&nog, &o), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "no natural owners"));

    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_LOGNORMAL;
    o.sigma = 0;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);
    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_POWERLAW;
    o.exponent = -1;
    assert_int_equal(od_partition_check(&d, &o), OD_ERR_INVALID);

    /* Label skew needs one label per sample. */
    const int dims[1] = {3};
    od_dataset seq;
    assert_int_equal(od_dataset_alloc(&seq, "seq", 10, 1, dims, 3, 4, 0),
                     OD_OK);
    od_partition_opts_init(&o);
    o.scheme = OD_PARTITION_DIRICHLET;
    o.clients = 2;
    assert_int_equal(od_partition_check(&seq, &o), OD_ERR_INVALID);
    /* Other schemes accept sequences, and entropy counts every label. */
    for (int i = 0; i < 30; i++)
        seq.y[i] = i % 3 == 2 ? -1 : i % 4;
    o.scheme = OD_PARTITION_IID;
    split(&seq, &o, &p);
    od_partition_stats s;
    assert_int_equal(od_partition_stats_compute(&seq, &p, &s, NULL), OD_OK);
    assert_true(s.mean_label_entropy_bits > 0);
    od_partition_free(&p);

    od_partition_scheme sc;
    assert_int_equal(od_partition_scheme_parse("dirichlet", &sc), OD_OK);
    assert_int_equal(sc, OD_PARTITION_DIRICHLET);
    assert_int_equal(od_partition_scheme_parse("zipf", &sc), OD_ERR_INVALID);
    assert_null(od_partition_scheme_name(OD_PARTITION_SCHEME_COUNT));

    od_dataset_free(&seq);
    od_dataset_free(&d);
    od_dataset_free(&nog);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants_all_schemes),
        cmocka_unit_test(test_validate_catches),
        cmocka_unit_test(test_iid),
        cmocka_unit_test(test_dirichlet_entropy),
        cmocka_unit_test(test_dirichlet_no_empty),
        cmocka_unit_test(test_quantity_skew),
        cmocka_unit_test(test_natural),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
