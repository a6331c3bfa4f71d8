/* Rényi DP of the Poisson-subsampled Gaussian mechanism and its conversion
 * to (ε, δ).
 *
 * With μ0 = N(0, σ²), μ1 = N(1, σ²) and μ = (1 − q) μ0 + q μ1, the RDP of
 * one step at order α is log(A_α) / (α − 1) with
 *     A_α = E_{z~μ0} [ (μ(z) / μ0(z))^α ]
 * (Mironov, Talwar & Zhang 2019, "Rényi Differential Privacy of the Sampled
 * Gaussian Mechanism", Sections 3.2 and 3.3). Everything is summed in log
 * space so that neither large orders nor small σ overflow. */
#include "privacy/accountant.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---- Order lists ------------------------------------------------------ */

#define OD__N_DEFAULT 156
#define OD__N_OPACUS 151
#define OD__N_TFP 72

static double od__orders_default[OD__N_DEFAULT];
static double od__orders_opacus[OD__N_OPACUS];
static double od__orders_tfp[OD__N_TFP];

static pthread_once_t od__orders_once = PTHREAD_ONCE_INIT;

/* Fill the static lists (once, whichever thread asks first). The
 * fractional orders are formed as 1 + x / 10.0, the same double values
 * Python's list comprehensions produce, so that the order reported matches
 * the reference libraries exactly. */
static void od__orders_build(void)
{
    int n = 0;
    for (int x = 1; x < 100; x++)
        od__orders_default[n++] = 1.0 + x / 10.0;
    for (int a = 11; a < 64; a++)
        od__orders_default[n++] = a;
    od__orders_default[n++] = 128;
    od__orders_default[n++] = 256;
    od__orders_default[n++] = 512;
    od__orders_default[n++] = 1024;
    OD_ASSERT(n == OD__N_DEFAULT);

    n = 0;
    for (int x = 1; x < 100; x++)
        od__orders_opacus[n++] = 1.0 + x / 10.0;
    for (int a = 12; a < 64; a++)
        od__orders_opacus[n++] = a;
    OD_ASSERT(n == OD__N_OPACUS);

    static const double head[] = {1.25, 1.5, 1.75, 2.0, 2.25,
                                  2.5,  3.0, 3.5,  4.0, 4.5};
    n = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        od__orders_tfp[n++] = head[i];
    for (int a = 5; a < 64; a++)
        od__orders_tfp[n++] = a;
    od__orders_tfp[n++] = 128;
    od__orders_tfp[n++] = 256;
    od__orders_tfp[n++] = 512;
    OD_ASSERT(n == OD__N_TFP);
}

static void od__orders_fill(void)
{
    OD_ASSERT(pthread_once(&od__orders_once, od__orders_build) == 0);
}

void od_rdp_default_orders(const double **orders, int *n_orders)
{
    od__orders_fill();
    *orders = od__orders_default;
    *n_orders = OD__N_DEFAULT;
}

od_status od_rdp_orders_preset(const char *name, const double **orders,
                               int *n_orders)
{
    od__orders_fill();
    if (strcmp(name, "default") == 0) {
        *orders = od__orders_default;
        *n_orders = OD__N_DEFAULT;
    } else if (strcmp(name, "opacus") == 0) {
        *orders = od__orders_opacus;
        *n_orders = OD__N_OPACUS;
    } else if (strcmp(name, "tf-privacy") == 0) {
        *orders = od__orders_tfp;
        *n_orders = OD__N_TFP;
    } else {
        return od_fail(OD_ERR_INVALID,
                       "unknown RDP order list '%s': use default, opacus or "
                       "tf-privacy, or a comma-separated list of orders > 1",
                       name);
    }
    return OD_OK;
}

/* ---- Log-space arithmetic --------------------------------------------- */

/* log(exp(a) + exp(b)), exact for -inf operands. */
static double od__log_add(double a, double b)
{
    if (a == -INFINITY)
        return b;
    if (b == -INFINITY)
        return a;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* A signed number held as sign * exp(log_mag); zero has log_mag = -inf. */
typedef struct od__slog {
    int sign;
    double log_mag;
} od__slog;

/* acc += sign * exp(log_term), keeping the magnitude in log space. */
static void od__slog_add(od__slog *acc, int sign, double log_term)
{
    if (log_term == -INFINITY)
        return;
    if (acc->log_mag == -INFINITY) {
        acc->sign = sign;
        acc->log_mag = log_term;
        return;
    }
    if (acc->sign == sign) {
        acc->log_mag = od__log_add(acc->log_mag, log_term);
        return;
    }
    /* Opposite signs: the larger magnitude keeps its sign. */
    if (acc->log_mag > log_term) {
        acc->log_mag += log1p(-exp(log_term - acc->log_mag));
    } else if (acc->log_mag < log_term) {
        acc->sign = sign;
        acc->log_mag = log_term + log1p(-exp(acc->log_mag - log_term));
    } else {
        acc->sign = 1;
        acc->log_mag = -INFINITY;
    }
}

/* log(erfc(x)), accurate in the far right tail where erfc underflows: past
 * x = 20 the asymptotic series erfc(x) = exp(-x²)/(x √π) Σ (−1)^n (2n−1)!!
 * / (2x²)^n is used; its first omitted term is below 1e-15 there. */
static double od__log_erfc(double x)
{
    if (x < 20.0)
        return log(erfc(x));
    double inv2x2 = 1.0 / (2.0 * x * x);
    double term = 1.0, sum = 1.0;
    for (int n = 1; n <= 8; n++) {
        term *= -(2.0 * n - 1.0) * inv2x2;
        sum += term;
    }
    return -x * x - log(x) - 0.5 * log(M_PI) + log(sum);
}

/* log|binom(alpha, k)| for real alpha >= 0 and integer k >= 0, and its sign
 * through *sign. For k <= alpha + 1 the coefficient is positive; past that
 * the sign alternates (for non-integer alpha). */
static double od__log_abs_binom(double alpha, double k, int *sign)
{
    int s1 = 1, s2 = 1, s3 = 1;
    double l = lgamma_r(alpha + 1.0, &s1) - lgamma_r(k + 1.0, &s2) -
               lgamma_r(alpha - k + 1.0, &s3);
    *sign = s1 * s2 * s3;
    return l;
}

/* ---- A_α -------------------------------------------------------------- */

/* log(A_α) for integer α >= 2 and 0 < q < 1: the binomial expansion
 *     A_α = Σ_{k=0}^{α} C(α, k) (1−q)^{α−k} q^k exp((k² − k) / (2σ²)),
 * all terms positive, summed by log-sum-exp around the largest term. */
static double od__log_a_int(double q, double sigma, int alpha)
{
    double log_q = log(q), log_1mq = log1p(-q);
    double inv_2s2 = 1.0 / (2.0 * sigma * sigma);
    double max_term = -INFINITY;

    /* Two passes (max, then the shifted sum) keep the result accurate when
     * the terms span hundreds of orders of magnitude. */
    for (int k = 0; k <= alpha; k++) {
        int sign;
        double t = od__log_abs_binom(alpha, k, &sign) + k * log_q +
                   (alpha - k) * log_1mq + ((double)k * k - k) * inv_2s2;
        if (t > max_term)
            max_term = t;
    }
    double sum = 0.0;
    for (int k = 0; k <= alpha; k++) {
        int sign;
        double t = od__log_abs_binom(alpha, k, &sign) + k * log_q +
                   (alpha - k) * log_1mq + ((double)k * k - k) * inv_2s2;
        sum += exp(t - max_term);
    }
    return max_term + log(sum);
}

#define OD__FRAC_MAX_TERMS 200000

/* log(A_α) for fractional α > 1 and 0 < q < 1: the two-series expansion of
 * Mironov, Talwar & Zhang (2019, Section 3.3). Splitting the integral at
 * z0 = σ² log(1/q − 1) + 1/2, where (1 − q) μ0 = q μ1, each side expands
 * in a convergent binomial series:
 *   A = Σ_k C(α,k) [ q^k (1−q)^{α−k} e^{(k²−k)/2σ²} erfc((k−z0)/(√2σ))/2
 *                  + q^{α−k} (1−q)^k e^{((α−k)²−(α−k))/2σ²}
 *                    erfc((z0−(α−k))/(√2σ))/2 ].
 * Past k = ⌈α⌉ the coefficients alternate in sign, so both partial sums are
 * kept as signed log-space numbers. Every other factor is positive, so the
 * k-th terms of both series share the coefficient's sign and, once their
 * magnitudes fall, the remainder of the alternating sum is at most the
 * last term: the loop stops when that is below e^-36 of the total. The
 * terms decay only polynomially in k (about k^-(α+2)), hence the generous
 * term limit. Returns +inf if it does not stop. */
static double od__log_a_frac(double q, double sigma, double alpha)
{
    double log_q = log(q), log_1mq = log1p(-q);
    double inv_2s2 = 1.0 / (2.0 * sigma * sigma);
    double z0 = sigma * sigma * (log1p(-q) - log(q)) + 0.5;
    double inv_sqrt2s = 1.0 / (M_SQRT2 * sigma);
    od__slog a0 = {1, -INFINITY}, a1 = {1, -INFINITY};
    double last0 = INFINITY, last1 = INFINITY;

    for (int k = 0; k < OD__FRAC_MAX_TERMS; k++) {
        int sign;
        double lc = od__log_abs_binom(alpha, k, &sign);
        double j = alpha - k;

        double t0 = lc + k * log_q + j * log_1mq;
        double t1 = lc + j * log_q + k * log_1mq;
        double e0 = -M_LN2 + od__log_erfc((k - z0) * inv_sqrt2s);
        double e1 = -M_LN2 + od__log_erfc((z0 - j) * inv_sqrt2s);
        double s0 = t0 + ((double)k * k - k) * inv_2s2 + e0;
        double s1 = t1 + (j * j - j) * inv_2s2 + e1;

        od__slog_add(&a0, sign, s0);
        od__slog_add(&a1, sign, s1);

        od__slog total = a0;
        od__slog_add(&total, a1.sign, a1.log_mag);
        double tail = (s0 > s1 ? s0 : s1) + M_LN2;
        if (k > alpha + 1.0 && s0 < last0 && s1 < last1 &&
            tail < total.log_mag - 36.0) {
            if (total.sign < 0 || total.log_mag == -INFINITY)
                return INFINITY; /* round-off beat the sum: unusable */
            return total.log_mag;
        }
        last0 = s0;
        last1 = s1;
    }
    return INFINITY;
}

double od_rdp_sampled_gaussian(double q, double sigma, double alpha)
{
    OD_ASSERT(q >= 0.0 && q <= 1.0);
    OD_ASSERT(sigma > 0.0);
    OD_ASSERT(alpha > 1.0);
    if (q == 0.0)
        return 0.0;
    if (isinf(alpha))
        return INFINITY;
    if (q == 1.0)
        return alpha / (2.0 * sigma * sigma);

    double log_a;
    if (alpha == floor(alpha) && alpha <= 1e6)
        log_a = od__log_a_int(q, sigma, (int)alpha);
    else
        log_a = od__log_a_frac(q, sigma, alpha);
    double rdp = log_a / (alpha - 1.0);
    /* A_α >= 1 in exact arithmetic; a hair below 0 is round-off. */
    return rdp < 0.0 ? 0.0 : rdp;
}

/* ---- Conversion to (ε, δ) --------------------------------------------- */

od_status od_rdp_to_epsilon(const double *orders, const double *rdp, int n,
                            double delta, od_rdp_conversion conv,
                            double *eps_out, double *order_out)
{
    if (n < 1)
        return od_fail(OD_ERR_INVALID, "RDP conversion needs at least one "
                                       "order");
    if (!(delta > 0.0 && delta < 1.0))
        return od_fail(OD_ERR_INVALID,
                       "delta must be in (0, 1), got %g", delta);

    double best = INFINITY, best_order = orders[0];
    for (int i = 0; i < n; i++) {
        double a = orders[i], r = rdp[i];
        if (!(a > 1.0))
            return od_fail(OD_ERR_INVALID,
                           "RDP order must be greater than 1, got %g", a);
        double eps;
        if (isnan(r) || r == INFINITY) {
            eps = INFINITY;
        } else if (r < 0.0) {
            return od_fail(OD_ERR_INVALID,
                           "negative RDP value %g at order %g", r, a);
        } else if (conv == OD_RDP_CONVERSION_CLASSIC) {
            /* Mironov 2017, Proposition 3. */
            eps = r - log(delta) / (a - 1.0);
        } else if (delta * delta + expm1(-r) > 0.0) {
            /* δ >= sqrt(1 − exp(−D_α)) bounds the total variation
             * distance, so (0, δ)-DP already holds. */
            eps = 0.0;
        } else if (a > 1.01) {
            /* Balle et al. 2020, Theorem 21 (improved conversion). */
            eps = r + log1p(-1.0 / a) - log(delta * a) / (a - 1.0);
        } else {
            eps = INFINITY; /* numerically unstable near α = 1 */
        }
        if (eps < best) {
            best = eps;
            best_order = a;
        }
    }
    *eps_out = best < 0.0 ? 0.0 : best;
    *order_out = best_order;
    return OD_OK;
}
