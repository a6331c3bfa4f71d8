/* The optimised GEMM against the reference, on every instruction set this
 * CPU supports, over odd shapes (1, primes, sizes that are not multiples of
 * any vector width or register tile), every transposition, padded leading
 * dimensions, alpha != 1 and beta in {0, 1, 0.5}, on 1 and 2 threads.
 *
 * Judge: the relative residual
 *     ||C - C_ref||_F / (|alpha| ||op(A)||_F ||op(B)||_F + |beta| ||C0||_F)
 * must stay below 1e-5. Single-precision rounding over k <= 800 leaves it
 * around 1e-7; a wrong index or a missed block leaves it near 1. beta == 0
 * runs start from a C full of NaN, which any read of C would spread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/kernels.h"
#include "engine/pool.h"
#include "engine/rng.h"

#define RESID_TOL 1e-5

typedef struct gemm_case {
    int ta, tb, m, n, k;
    int pad_a, pad_b, pad_c; /* extra leading-dimension floats */
    float alpha, beta;
} gemm_case;

/* Stored operands and results of one case. */
typedef struct gemm_data {
    gemm_case g;
    int lda, ldb, ldc;
    size_t a_len, b_len, c_len;
    float *a, *b, *c0, *c_ref, *c;
    double scale; /* denominator of the residual */
} gemm_data;

static void fill_uniform(od_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * od_rng_uniformf(r) - 1.0f;
}

static double frob(const float *x, int rows, int cols, int ld)
{
    double s = 0.0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            s += (double)x[(size_t)i * ld + j] * x[(size_t)i * ld + j];
    return sqrt(s);
}

/* Build inputs and the reference result for g. */
static void gemm_data_init(gemm_data *d, const gemm_case *g, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->g = *g;
    int a_rows = g->ta ? g->k : g->m, a_cols = g->ta ? g->m : g->k;
    int b_rows = g->tb ? g->n : g->k, b_cols = g->tb ? g->k : g->n;
    d->lda = (a_cols > 0 ? a_cols : 1) + g->pad_a;
    d->ldb = (b_cols > 0 ? b_cols : 1) + g->pad_b;
    d->ldc = g->n + g->pad_c;
    d->a_len = (size_t)a_rows * d->lda + 1;
    d->b_len = (size_t)b_rows * d->ldb + 1;
    d->c_len = (size_t)g->m * d->ldc;
    d->a = malloc(d->a_len * sizeof(float));
    d->b = malloc(d->b_len * sizeof(float));
    d->c0 = malloc(d->c_len * sizeof(float));
    d->c_ref = malloc(d->c_len * sizeof(float));
    d->c = malloc(d->c_len * sizeof(float));
    assert_non_null(d->a);
    assert_non_null(d->b);
    assert_non_null(d->c0);
    assert_non_null(d->c_ref);
    assert_non_null(d->c);

    od_rng r;
    od_rng_seed(&r, seed, 0);
    fill_uniform(&r, d->a, d->a_len);
    fill_uniform(&r, d->b, d->b_len);
    if (g->beta == 0.0f) {
        for (size_t i = 0; i < d->c_len; i++)
            d->c0[i] = NAN;
    } else {
        fill_uniform(&r, d->c0, d->c_len);
    }
    memcpy(d->c_ref, d->c0, d->c_len * sizeof(float));
    od_gemm_ref(g->ta, g->tb, g->m, g->n, g->k, g->alpha, d->a, d->lda, d->b,
                d->ldb, g->beta, d->c_ref, d->ldc);

    double na = frob(d->a, a_rows, a_cols, d->lda);
    double nb = frob(d->b, b_rows, b_cols, d->ldb);
    double nc = g->beta == 0.0f ? 0.0 : frob(d->c0, g->m, g->n, d->ldc);
    d->scale = fabs(g->alpha) * na * nb + fabs(g->beta) * nc;
    if (d->scale == 0.0)
        d->scale = 1.0;
}

static void gemm_data_free(gemm_data *d)
{
    free(d->a);
    free(d->b);
    free(d->c0);
    free(d->c_ref);
    free(d->c);
}

/* Run the optimised GEMM into d->c (from C0) and return the residual; fail
 * at once if it wrote outside the (m, n) block. */
static double gemm_run_resid(gemm_data *d, od_pool *pool)
{
    const gemm_case *g = &d->g;
    memcpy(d->c, d->c0, d->c_len * sizeof(float));
    od_gemm(pool, g->ta, g->tb, g->m, g->n, g->k, g->alpha, d->a, d->lda,
            d->b, d->ldb, g->beta, d->c, d->ldc);

    double s = 0.0;
    for (int i = 0; i < g->m; i++) {
        for (int j = 0; j < d->ldc; j++) {
            size_t at = (size_t)i * d->ldc + j;
            if (j >= g->n) {
                /* Padding beyond column n must be left as it was. */
                if (memcmp(&d->c[at], &d->c0[at], sizeof(float)) != 0)
                    fail_msg("column %d of row %d (ldc %d, n %d) was written",
                             j, i, d->ldc, g->n);
                continue;
            }
            double e = (double)d->c[at] - d->c_ref[at];
            s += e * e;
        }
    }
    return sqrt(s) / d->scale;
}

static void check_case(const gemm_case *g, uint64_t seed, od_pool *pool2)
{
    gemm_data d;
    gemm_data_init(&d, g, seed);
    od_pool *pools[2] = {NULL, pool2};
    for (int t = 0; t < 2; t++) {
        double resid = gemm_run_resid(&d, pools[t]);
        if (!(resid <= RESID_TOL))
            fail_msg("isa %s, %d thread(s): %c%c m=%d n=%d k=%d lda=%d "
                     "ldb=%d ldc=%d alpha=%g beta=%g: residual %.3g > %g",
                     od_isa_name(od_cpu_isa()), t + 1, g->ta ? 'T' : 'N',
                     g->tb ? 'T' : 'N', g->m, g->n, g->k, d.lda, d.ldb,
                     d.ldc, (double)g->alpha, (double)g->beta, resid,
                     RESID_TOL);
    }
    gemm_data_free(&d);
}

/* Hand-picked shapes: ones, primes, vector-width and tile neighbours; k past
 * one block (256); an untransposed B past the 2 MB the AVX-512 path reads in
 * place (3 x 700 x 770), and n past one column block (1024 at kc = 256). */
static const int fixed_shapes[][3] = {
    {1, 1, 1},     {1, 1, 7},     {1, 17, 1},    {13, 1, 5},
    {7, 13, 31},   {31, 61, 13},  {61, 127, 7},  {127, 31, 61},
    {8, 48, 16},   {9, 49, 17},   {16, 16, 16},  {15, 33, 47},
    {6, 16, 8},    {5, 15, 9},    {12, 32, 64},  {3, 47, 385},
    {67, 131, 97}, {130, 61, 200}, {5, 300, 401}, {300, 7, 301},
    {64, 10, 256}, {10, 256, 64},  {64, 256, 10}, {3, 700, 770},
    {37, 97, 1},   {2, 3, 800},   {3, 1100, 256},
};

static void check_all_cases(void)
{
    od_pool *pool2 = od_pool_create(2, NULL);
    assert_non_null(pool2);
    const float betas[3] = {0.0f, 1.0f, 0.5f};
    const float alphas[3] = {1.0f, -0.75f, 2.5f};
    int ncase = 0;

    int nfixed = (int)(sizeof fixed_shapes / sizeof fixed_shapes[0]);
    for (int s = 0; s < nfixed; s++) {
        /* Every shape in all four transposition forms, the scalars and
         * paddings rotating with the shape. */
        for (int t = 0; t < 4; t++) {
            gemm_case g = {
                .ta = t & 1, .tb = (t >> 1) & 1,
                .m = fixed_shapes[s][0], .n = fixed_shapes[s][1],
                .k = fixed_shapes[s][2],
                .pad_a = (s + t) % 3 == 0 ? 0 : 3 + s % 5,
                .pad_b = (s + t) % 2 == 0 ? 0 : 1 + t,
                .pad_c = (s + t) % 4 == 1 ? 0 : 2 + s % 3,
                .alpha = alphas[(s + t) % 3],
                .beta = betas[(s + 2 * t) % 3],
            };
            check_case(&g, 1000u + (uint64_t)ncase, pool2);
            ncase++;
        }
    }

    /* Random shapes up to 150 in each dimension. */
    od_rng r;
    od_rng_seed(&r, 42, 1);
    for (int s = 0; s < 24; s++) {
        gemm_case g = {
            .ta = (int)od_rng_below(&r, 2), .tb = (int)od_rng_below(&r, 2),
            .m = 1 + (int)od_rng_below(&r, 150),
            .n = 1 + (int)od_rng_below(&r, 150),
            .k = 1 + (int)od_rng_below(&r, 150),
            .pad_a = (int)od_rng_below(&r, 9),
            .pad_b = (int)od_rng_below(&r, 9),
            .pad_c = (int)od_rng_below(&r, 9),
            .alpha = alphas[od_rng_below(&r, 3)],
            .beta = betas[od_rng_below(&r, 3)],
        };
        check_case(&g, 5000u + (uint64_t)s, pool2);
        ncase++;
    }
    assert_true(ncase >= 30);
    od_pool_destroy(pool2);
}

static void run_on_isa(od_isa isa)
{
    if (od_cpu_isa_detected() < isa) {
        print_message("  skipped: this CPU lacks %s\n", od_isa_name(isa));
        skip();
        return;
    }
    od_isa saved = od_cpu_isa();
    od_cpu_set_isa(isa);
    assert_int_equal(od_cpu_isa(), isa);
    check_all_cases();
    od_cpu_set_isa(saved);
}

static void test_gemm_portable(void **state)
{
    (void)state;
    run_on_isa(OD_ISA_PORTABLE);
}

static void test_gemm_avx2(void **state)
{
    (void)state;
    run_on_isa(OD_ISA_AVX2);
}

static void test_gemm_avx512(void **state)
{
    (void)state;
    run_on_isa(OD_ISA_AVX512);
}

/* k == 0: C = beta * C, and beta == 0 clears even NaN. */
static void test_gemm_k_zero(void **state)
{
    (void)state;
    float a[1] = {1.0f}, b[1] = {1.0f};
    float c[6] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
    od_gemm(NULL, 0, 0, 2, 2, 0, 1.0f, a, 1, b, 2, 0.5f, c, 3);
    const float want[6] = {0.5f, 1.0f, 3.0f, 2.0f, 2.5f, 6.0f};
    for (int i = 0; i < 6; i++)
        assert_true(c[i] == want[i]);

    float cn[4] = {NAN, NAN, NAN, NAN};
    od_gemm(NULL, 1, 1, 2, 2, 0, 1.0f, a, 2, b, 1, 0.0f, cn, 2);
    for (int i = 0; i < 4; i++)
        assert_true(cn[i] == 0.0f);
}

/* Same inputs twice on 2 threads give the same bits; this driver also never
 * splits k across threads, so 1 thread gives those bits too, whichever way
 * it splits: columns (256 x 256), rows after a transposed A (256 x 784),
 * rows where two column halves would each end in a 16-wide tile beside
 * 48-wide ones (256 x 128 x 1024, op(B) packed by both tasks). */
static void test_gemm_deterministic(void **state)
{
    (void)state;
    od_pool *pool2 = od_pool_create(2, NULL);
    assert_non_null(pool2);
    const gemm_case cases[] = {
        {0, 1, 256, 256, 784, 0, 0, 0, 1.0f, 0.0f},
        {1, 0, 256, 784, 64, 0, 0, 0, 1.0f, 1.0f},
        {0, 0, 131, 67, 509, 1, 2, 3, -0.5f, 0.5f},
        {0, 1, 256, 128, 1024, 0, 0, 0, 1.0f, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gemm_case *g = &cases[i];
        gemm_data d;
        gemm_data_init(&d, g, 77 + i);
        float *first = malloc(d.c_len * sizeof(float));
        assert_non_null(first);
        for (int rep = 0; rep < 3; rep++) {
            memcpy(d.c, d.c0, d.c_len * sizeof(float));
            od_gemm(rep < 2 ? pool2 : NULL, g->ta, g->tb, g->m, g->n, g->k,
                    g->alpha, d.a, d.lda, d.b, d.ldb, g->beta, d.c, d.ldc);
            if (rep == 0)
                memcpy(first, d.c, d.c_len * sizeof(float));
            else
                assert_memory_equal(first, d.c, d.c_len * sizeof(float));
        }
        free(first);
        gemm_data_free(&d);
    }
    od_pool_destroy(pool2);
}

/* Many back-to-back threaded products, as a training loop issues them: the
 * pool's hand-off between jobs must never lose or repeat a task. */
static void test_gemm_many_threaded_calls(void **state)
{
    (void)state;
    od_pool *pool2 = od_pool_create(2, NULL);
    assert_non_null(pool2);
    const gemm_case g = {0, 0, 48, 96, 128, 0, 0, 0, 1.0f, 0.0f};
    gemm_data d;
    gemm_data_init(&d, &g, 99);
    float *first = malloc(d.c_len * sizeof(float));
    assert_non_null(first);
    for (int rep = 0; rep < 400; rep++) {
        for (size_t i = 0; i < d.c_len; i++)
            d.c[i] = NAN;
        od_gemm(pool2, 0, 0, g.m, g.n, g.k, 1.0f, d.a, d.lda, d.b, d.ldb,
                0.0f, d.c, d.ldc);
        if (rep == 0)
            memcpy(first, d.c, d.c_len * sizeof(float));
        else if (memcmp(first, d.c, d.c_len * sizeof(float)) != 0)
            fail_msg("call %d of the same product gave different bits", rep);
    }
    double resid = gemm_run_resid(&d, pool2);
    assert_true(resid <= RESID_TOL);
    free(first);
    gemm_data_free(&d);
    od_pool_destroy(pool2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_portable),
        cmocka_unit_test(test_gemm_avx2),
        cmocka_unit_test(test_gemm_avx512),
        cmocka_unit_test(test_gemm_k_zero),
        cmocka_unit_test(test_gemm_deterministic),
        cmocka_unit_test(test_gemm_many_threaded_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
