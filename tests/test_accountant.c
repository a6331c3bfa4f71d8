/* Privacy accountants: published reference values, high-precision values,
 * closed forms, monotonicity, calibration and the PLD bounds.
 *
 * Reference values and where they come from:
 *  - Opacus, tests/accountants_test.py (test_rdp_accountant): q = 0.04,
 *    σ = 1.5, 2250 steps, δ = 1e-5, Opacus's default orders, improved
 *    conversion: ε = 7.32911117143; and test_prv_accountant for the PLD.
 *  - TF Privacy, tutorials/README.md (2019 version) and
 *    mnist_dpsgd_tutorial.py: N = 60000, batch 256, σ = 1.1, 60 epochs,
 *    δ = 1e-5, orders [1 + x/10 for x in 1..99] + [12..63], classic
 *    conversion (get_privacy_spent of that time): ε = 3.01.
 *  - TF Privacy, compute_dp_sgd_privacy_test.py (test_compute_dp_sgd_privacy),
 *    orders [1.25 .. 4.5] + [5..63] + [128, 256, 512], improved conversion,
 *    steps = ceil(epochs N / batch).
 *  - TF Privacy, compute_dp_sgd_privacy_test.py
 *    (test_compute_dp_sgd_example_privacy and the privacy statements),
 *    computed by dp_accounting's RDP and PLD accountants.
 *  - dp_accounting, rdp/rdp_privacy_accountant_test.py and
 *    pld/pld_privacy_accountant_test.py.
 *  - Values marked "mpmath" were computed for this test by numerical
 *    integration of A_α = E_{z~N(0,σ²)}[(1 − q + q e^{(2z−1)/2σ²})^α] with
 *    mpmath at 50 digits (the method of dp_accounting's
 *    test_compute_log_a_equals_mp).
 *
 * Note on dp_accounting's fractional-order values: its current
 * _compute_log_a_frac adds the magnitudes of the alternating terms of the
 * series, which gives an upper bound rather than the exact value; at order
 * 1.5 (q = 0.01, σ = 2.5) that is 3 % above the integral. We compute the
 * exact signed sum, so we match mpmath and sit at or below those values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "privacy/accountant.h"

/* |got − want| <= rtol |want|, with a readable failure. */
static void od__assert_rel(double got, double want, double rtol)
{
    double err = fabs(got - want) / fabs(want);
    if (!(err <= rtol))
        fail_msg("got %.15g, want %.15g (relative error %.3g > %.3g)", got,
                 want, err, rtol);
}

static void od__assert_abs(double got, double want, double atol)
{
    if (!(fabs(got - want) <= atol))
        fail_msg("got %.15g, want %.15g (|error| %.3g > %.3g)", got, want,
                 fabs(got - want), atol);
}

static od_privacy_params od__params(double q, double sigma, int64_t steps,
                                    double delta)
{
    od_privacy_params p;
    od_privacy_params_init(&p);
    p.sampling_rate = q;
    p.noise_multiplier = sigma;
    p.steps = steps;
    p.delta = delta;
    return p;
}

static od_privacy_result od__eps(const od_privacy_params *p)
{
    od_privacy_result r;
    assert_int_equal(od_privacy_epsilon(p, &r), OD_OK);
    return r;
}

/* ---- Published RDP values --------------------------------------------- */

static void test_opacus_rdp_accountant(void **state)
{
    (void)state;
    od_privacy_params p = od__params(0.04, 1.5, 2250, 1e-5);
    assert_int_equal(od_rdp_orders_preset("opacus", &p.orders, &p.n_orders),
                     OD_OK);
    od_privacy_result r = od__eps(&p);
    od__assert_rel(r.epsilon, 7.32911117143, 1e-9);
}

static void test_tf_privacy_tutorial_classic(void **state)
{
    (void)state;
    /* 60 epochs of 60000 / 256 steps: 14062.5, the tutorial's integer
     * division gives 14062 (14063 gives 3.0084, the same to 3 digits). */
    od_privacy_params p = od__params(256.0 / 60000.0, 1.1, 60 * 60000 / 256,
                                     1e-5);
    p.conversion = OD_RDP_CONVERSION_CLASSIC;
    assert_int_equal(od_rdp_orders_preset("opacus", &p.orders, &p.n_orders),
                     OD_OK);
    od_privacy_result r = od__eps(&p);
    od__assert_abs(r.epsilon, 3.01, 0.005);

    /* The improved conversion can only be tighter. */
    p.conversion = OD_RDP_CONVERSION_IMPROVED;
    assert_true(od__eps(&p).epsilon < r.epsilon);
}

static void test_tf_privacy_compute_dp_sgd_privacy(void **state)
{
    (void)state;
    static const struct {
        double n, batch, sigma, epochs, delta, eps, order;
    } cases[] = {
        {60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19.0},
        {100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13.0},
        {100000000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        od_privacy_params p = od__params(
            cases[i].batch / cases[i].n, cases[i].sigma,
            (int64_t)ceil(cases[i].epochs * cases[i].n / cases[i].batch),
            cases[i].delta);
        assert_int_equal(
            od_rdp_orders_preset("tf-privacy", &p.orders, &p.n_orders),
            OD_OK);
        od_privacy_result r = od__eps(&p);
        od__assert_rel(r.epsilon, cases[i].eps, 1e-9);
        assert_true(r.order == cases[i].order);
    }
}

static void test_dp_accounting_rdp_values(void **state)
{
    (void)state;
    /* test_compute_rdp_poisson_sampled_gaussian: q = 0.01, σ = 2.5,
     * 50 steps, rtol 1e-4 there. Integer orders: */
    od__assert_rel(50 * od_rdp_sampled_gaussian(0.01, 2.5, 5), 2.18075656e-03,
                   1e-6);
    od__assert_rel(50 * od_rdp_sampled_gaussian(0.01, 2.5, 50),
                   2.38460375e-02, 1e-6);
    od__assert_rel(50 * od_rdp_sampled_gaussian(0.01, 2.5, 100),
                   1.67416308e02, 1e-6);

    /* Fractional orders: exact values (mpmath), and dp_accounting's
     * published values (6.70579741e-04, 1.08548710e-03) are upper bounds. */
    double r15 = 50 * od_rdp_sampled_gaussian(0.01, 2.5, 1.5);
    double r25 = 50 * od_rdp_sampled_gaussian(0.01, 2.5, 2.5);
    od__assert_rel(r15, 50 * 1.30014179437608e-5, 1e-9);
    od__assert_rel(r25, 50 * 2.17083611383625e-5, 1e-9);
    assert_true(r15 <= 6.70579741e-04 && r25 <= 1.08548710e-03 * (1 + 1e-8));
}

static void test_rdp_fractional_matches_mpmath(void **state)
{
    (void)state;
    /* RDP of one step, mpmath integration at 50 digits; the first three
     * parameter sets are from dp_accounting's
     * test_compute_log_a_equals_mp, the others stress σ = 0.3 and
     * q = 1/2 where the series decays slowly. */
    static const double cases[][4] = {
        {1e-4, 1.0, 1.5, 1.28853739076733e-8},
        {0.1, 100, 20.5, 1.025221459388118e-5},
        {0.999, 100, 256.1, 0.01277972574666057},
        {0.5, 0.3, 1.5, 6.290743089204991},
        {1e-6, 0.3, 10.5, 43.06355850610967},
        {0.5, 0.3, 10.5, 57.56722329166182},
        {0.01, 1.0, 1.1, 9.241471084686959e-5},
        {0.01, 2.5, 1.5, 1.30014179437608e-5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        od__assert_rel(od_rdp_sampled_gaussian(cases[i][0], cases[i][1],
                                               cases[i][2]),
                       cases[i][3], 1e-8);
}

static void test_rdp_stable_over_range(void **state)
{
    (void)state;
    /* Over σ in [0.3, 100] and q in [1e-6, 1], fractional orders must give
     * finite values that lie between the neighbouring integer orders
     * (RDP is non-decreasing in the order). */
    static const double sigmas[] = {0.3, 0.7, 1.0, 3.0, 10.0, 100.0};
    static const double qs[] = {1e-6, 1e-4, 0.01, 0.1, 0.5, 0.9, 0.999999};
    static const double alphas[] = {1.1, 1.5, 2.5, 7.3, 31.5, 100.5};
    for (size_t s = 0; s < sizeof sigmas / sizeof sigmas[0]; s++)
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++)
            for (size_t a = 0; a < sizeof alphas / sizeof alphas[0]; a++) {
                double al = alphas[a], q = qs[k], sg = sigmas[s];
                double r = od_rdp_sampled_gaussian(q, sg, al);
                double r_hi = od_rdp_sampled_gaussian(q, sg, ceil(al));
                double r_lo = floor(al) > 1.0
                                  ? od_rdp_sampled_gaussian(q, sg, floor(al))
                                  : 0.0;
                if (!(isfinite(r) && r >= 0.0 &&
                      r >= r_lo * (1 - 1e-9) && r <= r_hi * (1 + 1e-9)))
                    fail_msg("q=%g sigma=%g alpha=%g: rdp %.15g not in "
                             "[%.15g, %.15g]", q, sg, al, r, r_lo, r_hi);
            }
}

static void test_rdp_closed_forms(void **state)
{
    (void)state;
    /* q = 1 is the Gaussian mechanism: α / (2σ²) exactly; q = 0 is 0. */
    assert_true(od_rdp_sampled_gaussian(1.0, 2.71828, 3.14159) ==
                3.14159 / (2 * 2.71828 * 2.71828));
    assert_true(od_rdp_sampled_gaussian(1.0, 0.5, 1024) == 2048.0);
    assert_true(od_rdp_sampled_gaussian(0.0, 1.0, 7.5) == 0.0);

    /* Integer order 2: A_2 = 1 + q² (e^{1/σ²} − 1). */
    double q = 0.3, s = 1.7;
    od__assert_rel(od_rdp_sampled_gaussian(q, s, 2),
                   log1p(q * q * expm1(1.0 / (s * s))), 1e-13);
}

static void test_dp_accounting_conversion(void **state)
{
    (void)state;
    /* test_compute_epsilon_delta_pure_dp: orders 2..32, RDP 1.1. */
    double orders[31], rdp[31], eps, order;
    for (int i = 0; i < 31; i++) {
        orders[i] = 2 + i;
        rdp[i] = 1.1;
    }
    assert_int_equal(od_rdp_to_epsilon(orders, rdp, 31, 1e-5,
                                       OD_RDP_CONVERSION_IMPROVED, &eps,
                                       &order),
                     OD_OK);
    od__assert_rel(eps, 1.32783806176, 1e-10);
    assert_true(order == 32);

    /* test_compute_epsilon_delta_gaussian: q = 1, σ = 4.530877117 is
     * exactly (1, 1e-6)-DP; orders 0.001 i for i in [1001, 100000). */
    int n = 100000 - 1001;
    double *o = malloc((size_t)n * sizeof *o);
    double *r = malloc((size_t)n * sizeof *r);
    assert_non_null(o);
    assert_non_null(r);
    for (int i = 0; i < n; i++) {
        o[i] = 0.001 * (1001 + i);
        r[i] = od_rdp_sampled_gaussian(1.0, 4.530877117, o[i]);
    }
    assert_int_equal(od_rdp_to_epsilon(o, r, n, 1e-6,
                                       OD_RDP_CONVERSION_IMPROVED, &eps,
                                       &order),
                     OD_OK);
    od__assert_abs(eps, 1.0, 5e-8);
    free(o);
    free(r);

    /* Classic is never below improved at the same order list. */
    double e_cl, o_cl;
    assert_int_equal(od_rdp_to_epsilon(orders, rdp, 31, 1e-5,
                                       OD_RDP_CONVERSION_CLASSIC, &e_cl,
                                       &o_cl),
                     OD_OK);
    od__assert_rel(e_cl, 1.1 + log(1e5) / 31.0, 1e-12);
    assert_true(e_cl > eps);
}

/* ---- PLD -------------------------------------------------------------- */

static void test_tf_privacy_example_privacy(void **state)
{
    (void)state;
    /* test_compute_dp_sgd_example_privacy, no microbatching, Poisson
     * q = 0.01, σ = 0.7, 1.2 epochs = 120 steps, δ = 1e-5: dp_accounting
     * PLD 2.4612381, RDP 3.2392676 (its fractional-order upper bound). */
    od_privacy_params p = od__params(0.01, 0.7, 120, 1e-5);
    od_privacy_result rdp = od__eps(&p);
    assert_true(rdp.epsilon <= 3.2392676 + 1e-7);
    od__assert_rel(rdp.epsilon, 3.2392676, 1e-4);

    p.accountant = OD_ACCOUNTANT_PLD;
    p.pld_grid_step = 1e-4;
    od_privacy_result pld = od__eps(&p);
    od__assert_abs(pld.epsilon_upper, 2.4612381, 1e-4);
    od__assert_abs(pld.epsilon_estimate, 2.4612381, 1e-4);
    assert_true(pld.epsilon == pld.epsilon_upper);
    assert_true(pld.epsilon_upper >= pld.epsilon_estimate - 1e-9);
}

static void test_tf_privacy_statement(void **state)
{
    (void)state;
    /* compute_dp_sgd_privacy_statement: 10000 examples, batch 64, 5 epochs,
     * σ = 2 with microbatching (effective σ = 1), δ = 1e-6, Poisson
     * q = 0.0064 for ceil(5 / 0.0064) = 782 steps: RDP 1.616, PLD 1.199
     * (printed to 3 decimals). */
    od_privacy_params p = od__params(64.0 / 10000.0, 1.0, 782, 1e-6);
    od__assert_abs(od__eps(&p).epsilon, 1.616, 5e-4);
    p.accountant = OD_ACCOUNTANT_PLD;
    p.pld_grid_step = 1e-4;
    od__assert_abs(od__eps(&p).epsilon, 1.199, 5e-4);
}

static void test_dp_accounting_pld(void **state)
{
    (void)state;
    od_pld *pld;

    /* test_poisson_subsampled_gaussian: q = 0.2, σ = 0.5, 3 steps:
     * δ(1) = 0.15594 and ε(0.15594) = 1, both to 1e-3. */
    assert_int_equal(od_pld_create(0.2, 0.5, 3, 2e-4, &pld), OD_OK);
    od__assert_abs(od_pld_delta(pld, 1.0, 1), 0.15594, 1e-3);
    od__assert_abs(od_pld_epsilon(pld, 0.15594, 1), 1.0, 1e-3);
    od_pld_destroy(pld);

    /* test_gaussian_basic: σ = √3, 3 steps (q = 1): δ(1) = 0.126936. The
     * composition is the Gaussian mechanism with μ = √3 / √3 = 1, whose
     * exact curve is δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (Balle &
     * Wang 2018, Theorem 8). */
    assert_int_equal(od_pld_create(1.0, sqrt(3.0), 3, 2e-4, &pld), OD_OK);
    for (double eps = 0.25; eps <= 4.0; eps += 0.25) {
        double exact = 0.5 * erfc((eps - 0.5) / M_SQRT2) -
                       exp(eps) * 0.5 * erfc((eps + 0.5) / M_SQRT2);
        double up = od_pld_delta(pld, eps, 1);
        assert_true(up >= exact - 1e-14);
        od__assert_rel(up, exact, 1e-5);
        od__assert_rel(od_pld_delta(pld, eps, 0), exact, 1e-5);
    }
    od__assert_abs(od_pld_delta(pld, 1.0, 1), 0.126936, 1e-6);
    od_pld_destroy(pld);
}

/* Closed-form δ(ε) of one step, both adjacency directions (the larger is
 * returned): remove compares μ = (1−q) N(0,σ²) + q N(1,σ²) with N(0,σ²),
 * add the other way round; Φ-tails at the point where the loss crosses ε. */
static double od__exact_delta_one_step(double q, double s, double eps)
{
    double s2 = s * s;
    double x = s2 * log1p(expm1(eps) / q) + 0.5;          /* remove */
    double up0 = 0.5 * erfc(x / s * M_SQRT1_2);
    double up1 = 0.5 * erfc((x - 1) / s * M_SQRT1_2);
    double d_rem = (1 - q) * up0 + q * up1 - exp(eps) * up0;
    double d_add = 0.0;
    if (eps < -log1p(-q)) {                               /* add */
        double xa = s2 * log1p(expm1(-eps) / q) + 0.5;
        double lo0 = 0.5 * erfc(-xa / s * M_SQRT1_2);
        double lo1 = 0.5 * erfc(-(xa - 1) / s * M_SQRT1_2);
        d_add = lo0 - exp(eps) * ((1 - q) * lo0 + q * lo1);
    }
    return d_rem > d_add ? d_rem : d_add;
}

static void test_pld_one_step_exact(void **state)
{
    (void)state;
    /* One step: the upper bound equals the exact curve at grid points and
     * lies above it in between; the estimate is close to it. */
    static const double qs[] = {0.2, 0.01, 1.0};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        od_pld *pld;
        assert_int_equal(od_pld_create(qs[i], 0.8, 1, 2.5e-4, &pld), OD_OK);
        for (double eps = 0.0; eps < 3.0; eps += 0.0937) {
            double exact = od__exact_delta_one_step(qs[i], 0.8, eps);
            double up = od_pld_delta(pld, eps, 1);
            if (!(up >= exact * (1 - 1e-9) - 1e-15))
                fail_msg("q=%g eps=%g: upper %.15g below exact %.15g", qs[i],
                         eps, up, exact);
            if (exact > 1e-12) {
                od__assert_rel(up, exact, 1e-5);
                od__assert_rel(od_pld_delta(pld, eps, 0), exact, 1e-5);
            }
        }
        od_pld_destroy(pld);
    }
}

static void test_pld_coarse_grid_dominates(void **state)
{
    (void)state;
    /* On a deliberately coarse grid (h = 0.05) the discretisation error is
     * large, which makes the upper-bound construction visible: one step
     * matches the exact δ(ε) at grid points and lies above it between
     * them, and three steps stay above a fine-grid computation. */
    const double q = 0.2, s = 0.8, h = 0.05;
    od_pld *coarse, *fine;
    assert_int_equal(od_pld_create(q, s, 1, h, &coarse), OD_OK);
    for (int k = 0; k < 60; k++) {
        double at = od__exact_delta_one_step(q, s, k * h);
        od__assert_rel(od_pld_delta(coarse, k * h, 1), at, 1e-9);
        double mid = od__exact_delta_one_step(q, s, (k + 0.5) * h);
        assert_true(od_pld_delta(coarse, (k + 0.5) * h, 1) > mid);
    }
    od_pld_destroy(coarse);

    assert_int_equal(od_pld_create(q, s, 3, h, &coarse), OD_OK);
    assert_int_equal(od_pld_create(q, s, 3, 5e-4, &fine), OD_OK);
    for (double eps = 0.0; eps < 4.0; eps += 0.173) {
        double f = od_pld_delta(fine, eps, 0);
        if (!(od_pld_delta(coarse, eps, 1) >= f))
            fail_msg("eps=%g: coarse upper %.12g below fine %.12g", eps,
                     od_pld_delta(coarse, eps, 1), f);
    }
    od_pld_destroy(coarse);
    od_pld_destroy(fine);
}

static void test_opacus_prv_interval(void **state)
{
    (void)state;
    /* Opacus tests/accountants_test.py (test_prv_accountant): q = 0.04,
     * σ = 1.5, 2250 steps, δ = 1e-5 gives 6.777395712150674, the upper end
     * of the PRV accountant's interval with eps_error = 0.01 (Gopi et al.
     * 2021), so the true ε lies within 0.02 below it. Our upper bound must
     * land in that interval, and below RDP's 7.329. */
    od_privacy_params p = od__params(0.04, 1.5, 2250, 1e-5);
    p.accountant = OD_ACCOUNTANT_PLD;
    od_privacy_result r = od__eps(&p);
    assert_true(r.epsilon_upper <= 6.777395712150674);
    assert_true(r.epsilon_upper >= 6.777395712150674 - 0.02);
}

static void test_pld_tighter_than_rdp(void **state)
{
    (void)state;
    /* Many steps: q = 0.01, σ = 1, 10000 steps, δ = 1e-5. The upper bound
     * stays above the estimate, below RDP, and above a lower bound: the
     * Gaussian-DP central limit (μ = q √(T (e^{1/σ²} − 1)), Bu et al.
     * 2020) is known to underestimate the Poisson-subsampled ε. */
    od_privacy_params p = od__params(0.01, 1.0, 10000, 1e-5);
    double rdp = od__eps(&p).epsilon;
    p.accountant = OD_ACCOUNTANT_PLD;
    od_privacy_result r = od__eps(&p);
    assert_true(r.epsilon_upper >= r.epsilon_estimate);
    assert_true(r.epsilon_upper < rdp - 0.3);
    od__assert_rel(r.epsilon_estimate, r.epsilon_upper, 1e-4);

    double mu = 0.01 * sqrt(10000 * expm1(1.0));
    double lo = 0.0, hi = 50.0; /* ε of μ-GDP at δ = 1e-5 by bisection */
    for (int i = 0; i < 200; i++) {
        double e = 0.5 * (lo + hi);
        double d = 0.5 * erfc((e / mu - mu / 2) / M_SQRT2) -
                   exp(e) * 0.5 * erfc((e / mu + mu / 2) / M_SQRT2);
        if (d > 1e-5)
            lo = e;
        else
            hi = e;
    }
    assert_true(r.epsilon_upper > hi);
}

/* ---- Properties ------------------------------------------------------- */

static void test_monotonicity(void **state)
{
    (void)state;
    for (int acc = 0; acc < 2; acc++) {
        od_privacy_params p = od__params(0.02, 1.0, 200, 1e-5);
        p.accountant = acc ? OD_ACCOUNTANT_PLD : OD_ACCOUNTANT_RDP;
        p.pld_grid_step = 1e-3;
        double base = od__eps(&p).epsilon;

        od_privacy_params m = p;
        m.noise_multiplier = 1.2;
        assert_true(od__eps(&m).epsilon < base);
        m = p;
        m.steps = 400;
        assert_true(od__eps(&m).epsilon > base);
        m = p;
        m.sampling_rate = 0.04;
        assert_true(od__eps(&m).epsilon > base);
        m = p;
        m.delta = 1e-7;
        assert_true(od__eps(&m).epsilon > base);
    }
}

static void test_calibration_round_trip(void **state)
{
    (void)state;
    for (int acc = 0; acc < 2; acc++) {
        od_privacy_params p = od__params(0.01, NAN, acc ? 100 : 1000, 1e-5);
        p.accountant = acc ? OD_ACCOUNTANT_PLD : OD_ACCOUNTANT_RDP;
        p.pld_grid_step = 2e-3;
        double sigma;
        od_privacy_result at;
        assert_int_equal(od_privacy_sigma(&p, 2.0, &sigma, &at), OD_OK);

        p.noise_multiplier = sigma;
        double eps = od__eps(&p).epsilon;
        assert_true(eps <= 2.0);
        od__assert_abs(eps, 2.0, 1e-4);
        od__assert_rel(at.epsilon, eps, 1e-12);

        /* Slightly less noise misses the target. */
        p.noise_multiplier = sigma * (1 - 1e-4);
        assert_true(od__eps(&p).epsilon > 2.0);
    }
}

static void test_calibration_edges(void **state)
{
    (void)state;
    /* A target that needs σ well below the starting point of 1. */
    od_privacy_params p = od__params(1.0, NAN, 1, 1e-5);
    double sigma;
    od_privacy_result at;
    assert_int_equal(od_privacy_sigma(&p, 150.0, &sigma, &at), OD_OK);
    assert_true(sigma > 0.01 && sigma < 0.1);
    assert_true(at.epsilon <= 150.0 && at.epsilon > 150.0 - 1e-3);

    /* Unreachable: ε = 1e-6 after 1e5 full-batch steps. */
    p.steps = 100000;
    assert_int_equal(od_privacy_sigma(&p, 1e-6, &sigma, &at),
                     OD_ERR_INVALID);

    /* Not constraining: one step at q = 0.01 stays below ε = 1e6 even at
     * σ = 0.01 (ε is about 1/σ² there). */
    p = od__params(0.01, NAN, 1, 1e-5);
    assert_int_equal(od_privacy_sigma(&p, 1e6, &sigma, &at), OD_ERR_INVALID);
}

static void test_shuffle_is_labelled(void **state)
{
    (void)state;
    od_privacy_params p = od__params(0.01, 1.0, 100, 1e-5);
    od_privacy_result poisson = od__eps(&p);
    assert_null(poisson.assumption);
    p.sampling = OD_SAMPLING_SHUFFLE;
    od_privacy_result shuffle = od__eps(&p);
    assert_non_null(shuffle.assumption);
    assert_string_equal(shuffle.assumption, "poisson-approximation");
    assert_true(shuffle.epsilon == poisson.epsilon);
}

static void test_bad_input_refused(void **state)
{
    (void)state;
    od_privacy_result r;
    od_privacy_params good = od__params(0.01, 1.0, 100, 1e-5);
    od_privacy_params p = good;
    p.sampling_rate = 0.0;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);
    p.sampling_rate = 1.5;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);
    p = good;
    p.noise_multiplier = 0.0;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);
    p = good;
    p.delta = 1.0;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);
    p = good;
    p.steps = 0;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);
    p = good;
    double bad_order = 1.0;
    p.orders = &bad_order;
    p.n_orders = 1;
    assert_int_equal(od_privacy_epsilon(&p, &r), OD_ERR_INVALID);

    od_accountant a;
    od_rdp_conversion c;
    assert_int_equal(od_accountant_parse("pld", &a), OD_OK);
    assert_int_equal(a, OD_ACCOUNTANT_PLD);
    assert_int_equal(od_accountant_parse("moments", &a), OD_ERR_INVALID);
    assert_int_equal(od_rdp_conversion_parse("classic", &c), OD_OK);
    assert_string_equal(od_rdp_conversion_name(c), "classic");
    assert_int_equal(od_rdp_conversion_parse("tight", &c), OD_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opacus_rdp_accountant),
        cmocka_unit_test(test_tf_privacy_tutorial_classic),
        cmocka_unit_test(test_tf_privacy_compute_dp_sgd_privacy),
        cmocka_unit_test(test_dp_accounting_rdp_values),
        cmocka_unit_test(test_rdp_fractional_matches_mpmath),
        cmocka_unit_test(test_rdp_stable_over_range),
        cmocka_unit_test(test_rdp_closed_forms),
        cmocka_unit_test(test_dp_accounting_conversion),
        cmocka_unit_test(test_tf_privacy_example_privacy),
        cmocka_unit_test(test_tf_privacy_statement),
        cmocka_unit_test(test_dp_accounting_pld),
        cmocka_unit_test(test_pld_one_step_exact),
        cmocka_unit_test(test_pld_coarse_grid_dominates),
        cmocka_unit_test(test_opacus_prv_interval),
        cmocka_unit_test(test_pld_tighter_than_rdp),
        cmocka_unit_test(test_monotonicity),
        cmocka_unit_test(test_calibration_round_trip),
        cmocka_unit_test(test_calibration_edges),
        cmocka_unit_test(test_shuffle_is_labelled),
        cmocka_unit_test(test_bad_input_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
