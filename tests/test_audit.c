/* The one-run audit (privacy/audit.h): its bound, ε̂, and the audit run.
 *
 * Bound: with δ = 0 it is the binomial tail P[Binomial(r, q) >= v], to a
 * relative 1e-12 against a long double sum computed here; with δ > 0 it
 * matches a slow evaluation of the same formula written out from its
 * definition here (every F(v - i) summed afresh), and values computed
 * with mpmath at 50 digits; it falls with v and rises with ε and δ.
 * ε̂ is where the bound crosses β, never below the old charge of δ to the
 * test level (β - 2 m δ) and never above the δ = 0 value.
 *
 * Audit: a correct DP-SGD run gives an empirical lower bound at or below
 * the epsilon it claims; the same run with clipping switched off (the
 * test-only switch) gives a lower bound above it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "privacy/audit.h"

/* ---- Reference ----------------------------------------------------------- */

/* P[Binomial(r, q) = k] for q = e^ε / (1 + e^ε), in long double from
 * lgammal: a different method (and precision) from the library's. */
static long double ref_pmf(int r, int k, double eps)
{
    long double e = eps;
    long double lq = -log1pl(expl(-e));   /* ln q */
    long double lp1 = lq - e;             /* ln (1 - q) */
    return expl(lgammal(r + 1.0L) - lgammal(k + 1.0L) - lgammal(r - k + 1.0L)
                + k * lq + (r - k) * lp1);
}

/* P[Binomial(r, q) >= k], term by term. */
static long double ref_tail(int r, int k, double eps)
{
    if (k <= 0)
        return 1.0L;
    long double s = 0;
    for (int j = r; j >= k; j--)
        s += ref_pmf(r, j, eps);
    return s;
}

/* The paper's bound written out from its definition: every F(v - i)
 * summed afresh (O(v r) terms). */
static double ref_p_value(int m, int r, int v, double eps, double delta)
{
    long double f_v = ref_tail(r, v, eps), alpha = 0;
    for (int i = 1; i <= v; i++) {
        long double a = (ref_tail(r, v - i, eps) - f_v) / i;
        alpha = a > alpha ? a : alpha;
    }
    long double p = f_v + 2.0L * m * delta * alpha;
    return (double)(p < 1 ? p : 1);
}

static double p_value(int m, int r, int v, double eps, double delta)
{
    double p = -1;
    assert_int_equal(od_audit_p_value(m, r, v, eps, delta, &p), OD_OK);
    return p;
}

static double eps_lower(int m, int r, int v, double delta, double beta)
{
    double e = -1;
    assert_int_equal(od_audit_epsilon_lower(m, r, v, delta, beta, &e), OD_OK);
    return e;
}

static void expect_close(double got, double want, double rel,
                         const char *what)
{
    if (!(fabs(got - want) <= rel * fabs(want)))
        fail_msg("%s: %.17g, expected %.17g (relative error %.3g, allowed "
                 "%.3g)", what, got, want, fabs(got - want) / fabs(want),
                 rel);
}

/* ---- Bound --------------------------------------------------------------- */

static void test_pure_dp_is_the_binomial_tail(void **state)
{
    (void)state;
    static const int rv[][2] = {
        {1, 0}, {1, 1}, {7, 3}, {7, 7}, {13, 1}, {200, 100}, {200, 122},
        {200, 182}, {200, 200}, {1001, 650}, {1001, 997}, {100003, 50400},
        {100003, 50800},
    };
    static const double eps[] = {0.0, 0.1, 0.7, 2.0, 4.5, 9.0};
    char what[96];
    for (size_t a = 0; a < sizeof rv / sizeof rv[0]; a++)
        for (size_t b = 0; b < sizeof eps / sizeof eps[0]; b++) {
            int r = rv[a][0], v = rv[a][1];
            double want = (double)ref_tail(r, v, eps[b]);
            if (want < 1e-290)
                continue;
            snprintf(what, sizeof what, "tail r %d v %d eps %g", r, v,
                     eps[b]);
            expect_close(p_value(r + 5, r, v, eps[b], 0.0), want, 1e-12,
                         what);
        }
    /* Closed forms: v = 0 is certain, v = r is q^r. */
    assert_true(p_value(10, 10, 0, 3.0, 0.0) == 1.0);
    double q = 1 / (1 + exp(-1.3));
    expect_close(p_value(40, 40, 40, 1.3, 0.0), pow(q, 40), 1e-13, "q^r");
}

static void test_bound_against_slow_evaluation(void **state)
{
    (void)state;
    static const struct {
        int m, r, v;
        double eps, delta;
    } c[] = {
        {1000, 200, 122, 0.2, 1e-5}, {1000, 200, 182, 1.9, 1e-5},
        {1000, 200, 200, 4.0, 1e-5}, {50, 7, 5, 0.5, 1e-3},
        {13, 13, 1, 0.0, 0.01},      {1, 1, 1, 0.3, 0.1},
        {2000, 1001, 700, 1.0, 1e-6}, {1000, 200, 150, 0.8, 1e-3},
        {1000, 200, 140, 0.1, 0.01}, {30, 29, 17, 0.05, 0.004},
    };
    char what[96];
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        snprintf(what, sizeof what, "m %d r %d v %d eps %g delta %g",
                 c[k].m, c[k].r, c[k].v, c[k].eps, c[k].delta);
        expect_close(p_value(c[k].m, c[k].r, c[k].v, c[k].eps, c[k].delta),
                     ref_p_value(c[k].m, c[k].r, c[k].v, c[k].eps,
                                 c[k].delta), 1e-10, what);
    }
}

/* Values of the same formula computed with mpmath 1.2.1 at 50 significant
 * digits from exact binomial coefficients (and, for ε̂, 80 bisection steps
 * on its bound <= β); printed to 17 and 15 digits. */
static void test_bound_against_mpmath(void **state)
{
    (void)state;
    expect_close(p_value(1000, 200, 122, 0.2, 1e-5), 0.050905081261258431,
                 1e-11, "m 1000 r 200 v 122");
    expect_close(p_value(1000, 200, 182, 1.9, 1e-5), 0.053120024961298128,
                 1e-11, "m 1000 r 200 v 182");
    expect_close(p_value(1000, 200, 200, 4.0, 1e-5), 0.029922351154376599,
                 1e-11, "m 1000 r 200 v 200");
    expect_close(p_value(50, 7, 5, 0.5, 1e-3), 0.49790571155743352, 1e-11,
                 "m 50 r 7 v 5");
    expect_close(p_value(2000, 1001, 700, 1.0, 1e-6), 0.98869314584260774,
                 1e-11, "m 2000 r 1001 v 700");
    expect_close(p_value(1000, 200, 150, 0.8, 1e-3), 0.12714058366237714,
                 1e-11, "m 1000 r 200 v 150");
    /* Here the δ term is a million times the tail (3.458e-7). */
    expect_close(p_value(1000, 200, 140, 0.1, 0.01), 0.41390963378679165,
                 1e-11, "m 1000 r 200 v 140");

    expect_close(eps_lower(1000, 200, 122, 1e-5, 0.05), 0.198742649301513,
                 1e-9, "eps_lower v 122");
    expect_close(eps_lower(1000, 200, 200, 1e-5, 0.05), 4.16649017670451,
                 1e-9, "eps_lower v 200");
    expect_close(eps_lower(1000, 200, 182, 1e-3, 0.05), 1.18603378642601,
                 1e-9, "eps_lower v 182 delta 1e-3");
}

static void test_bound_is_monotone(void **state)
{
    (void)state;
    static const int mr[][2] = {{1000, 200}, {13, 7}, {301, 301}};
    static const double deltas[] = {0.0, 1e-7, 1e-5, 1e-3, 0.05};
    const double slack = 1e-12;
    for (size_t a = 0; a < sizeof mr / sizeof mr[0]; a++) {
        int m = mr[a][0], r = mr[a][1];
        for (int v = 0; v <= r; v += (r > 50 ? 3 : 1)) {
            for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++) {
                /* Rises with ε. */
                double prev = p_value(m, r, v, 0.0, deltas[d]);
                for (double e = 0.125; e <= 10.0; e += 0.125) {
                    double p = p_value(m, r, v, e, deltas[d]);
                    if (p < prev * (1 - slack))
                        fail_msg("m %d r %d v %d delta %g: bound falls from "
                                 "%.17g to %.17g at eps %g", m, r, v,
                                 deltas[d], prev, p, e);
                    prev = p;
                }
            }
            /* Rises with δ, strictly while below 1 and v > 0. */
            for (double e = 0.0; e <= 6.0; e += 0.5) {
                double prev = p_value(m, r, v, e, 0.0);
                for (size_t d = 1; d < sizeof deltas / sizeof deltas[0];
                     d++) {
                    double p = p_value(m, r, v, e, deltas[d]);
                    if (p < prev || (v > 0 && prev < 0.5 && !(p > prev)))
                        fail_msg("m %d r %d v %d eps %g: bound %.17g at "
                                 "delta %g after %.17g", m, r, v, e, p,
                                 deltas[d], prev);
                    prev = p;
                }
            }
        }
        /* Falls with v. */
        for (size_t d = 0; d < sizeof deltas / sizeof deltas[0]; d++)
            for (double e = 0.0; e <= 6.0; e += 0.25) {
                double prev = p_value(m, r, 0, e, deltas[d]);
                assert_true(prev == 1.0);
                for (int v = 1; v <= r; v++) {
                    double p = p_value(m, r, v, e, deltas[d]);
                    if (p > prev * (1 + slack))
                        fail_msg("m %d r %d eps %g delta %g: bound rises "
                                 "from %.17g to %.17g at v %d", m, r, e,
                                 deltas[d], prev, p, v);
                    prev = p;
                }
            }
    }
}

/* ---- od_audit_epsilon_lower ---------------------------------------------- */

static void test_epsilon_lower(void **state)
{
    (void)state;
    /* Chance-level guessing gives no evidence. */
    assert_true(eps_lower(1000, 100, 50, 0.0, 0.05) == 0.0);
    assert_true(eps_lower(1000, 100, 50, 1e-5, 0.05) == 0.0);

    /* δ = 0, all r guesses right: q^r = β, so q = β^(1/r). */
    double q = pow(0.05, 0.01);
    expect_close(eps_lower(100, 100, 100, 0.0, 0.05), log(q / (1 - q)),
                 1e-10, "all right, delta 0");

    /* ε̂ is where the bound, evaluated independently, crosses β. */
    static const struct {
        int m, r, v;
        double delta, beta;
    } c[] = {
        {1000, 200, 122, 1e-5, 0.05}, {1000, 200, 182, 1e-5, 0.05},
        {1000, 200, 200, 1e-5, 0.05}, {1000, 200, 182, 1e-3, 0.05},
        {60, 40, 33, 1e-4, 0.1},      {1000, 200, 182, 0.0, 0.01},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        double e = eps_lower(c[k].m, c[k].r, c[k].v, c[k].delta, c[k].beta);
        double below = ref_p_value(c[k].m, c[k].r, c[k].v, e, c[k].delta);
        double above = ref_p_value(c[k].m, c[k].r, c[k].v, e + 1e-8,
                                   c[k].delta);
        if (!(e > 0 && below <= c[k].beta * (1 + 1e-9) && above > c[k].beta))
            fail_msg("v %d of %d, delta %g: eps_lower %.15g, bound %.17g "
                     "there and %.17g just above, beta %g", c[k].v, c[k].r,
                     c[k].delta, e, below, above, c[k].beta);
    }

    /* Charging δ costs evidence, but less than lowering the level to
     * β - 2 m δ did: F + 2 m δ α <= F + 2 m δ as α <= 1. */
    for (int v = 110; v <= 200; v += 10) {
        double exact = eps_lower(1000, 200, v, 1e-5, 0.05);
        double pure = eps_lower(1000, 200, v, 0.0, 0.05);
        double crude = eps_lower(1000, 200, v, 0.0, 0.05 - 2 * 1000 * 1e-5);
        if (!(crude <= exact && exact <= pure && (v < 130 || exact > crude)))
            fail_msg("v %d: crude %.15g, exact %.15g, pure %.15g", v, crude,
                     exact, pure);
    }
    /* More correct guesses, a higher bound. */
    assert_true(eps_lower(1000, 200, 170, 1e-5, 0.05)
                > eps_lower(1000, 200, 150, 1e-5, 0.05));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    double x;
    assert_int_equal(od_audit_p_value(100, 10, 11, 1, 0, &x), OD_ERR_INVALID);
    assert_int_equal(od_audit_p_value(9, 10, 5, 1, 0, &x), OD_ERR_INVALID);
    assert_int_equal(od_audit_p_value(10, 0, 0, 1, 0, &x), OD_ERR_INVALID);
    assert_int_equal(od_audit_p_value(10, 10, 5, -1, 0, &x), OD_ERR_INVALID);
    assert_int_equal(od_audit_p_value(10, 10, 5, NAN, 0, &x),
                     OD_ERR_INVALID);
    assert_int_equal(od_audit_p_value(10, 10, 5, 1, 1.5, &x),
                     OD_ERR_INVALID);
    assert_int_equal(od_audit_epsilon_lower(10, 10, 5, 0, 0, &x),
                     OD_ERR_INVALID);
    assert_int_equal(od_audit_epsilon_lower(10, 10, 5, -1e-9, 0.05, &x),
                     OD_ERR_INVALID);
}

/* ---- Audit run ----------------------------------------------------------- */

static void test_audit_correct_and_broken(void **state)
{
    (void)state;
    od_audit_config c;
    od_audit_config_init(&c);
    c.target_epsilon = 2.0;
    od_audit_result good, bad;
    assert_int_equal(od_audit_run(&c, &good), OD_OK);
    c.test_disable_clipping = 1;
    assert_int_equal(od_audit_run(&c, &bad), OD_OK);
    if (!(good.epsilon_lower <= good.epsilon_claimed))
        fail_msg("correct run: lower bound %g above the claimed %g",
                 good.epsilon_lower, good.epsilon_claimed);
    if (!(bad.epsilon_lower > bad.epsilon_claimed))
        fail_msg("broken run: lower bound %g not above the claimed %g "
                 "(%d of %d guesses right)", bad.epsilon_lower,
                 bad.epsilon_claimed, bad.correct, bad.guesses);
    assert_true(fabs(good.epsilon_claimed - 2.0) < 1e-3);

    /* The p-value at the claim says the same as ε̂ against the claim. */
    assert_true(good.p_value > good.beta);
    assert_true(bad.p_value <= bad.beta);
    expect_close(good.p_value, p_value(good.canaries, good.guesses,
                                       good.correct, good.epsilon_claimed,
                                       good.delta), 1e-15, "p_value");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pure_dp_is_the_binomial_tail),
        cmocka_unit_test(test_bound_against_slow_evaluation),
        cmocka_unit_test(test_bound_against_mpmath),
        cmocka_unit_test(test_bound_is_monotone),
        cmocka_unit_test(test_epsilon_lower),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_audit_correct_and_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
