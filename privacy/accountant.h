/* Privacy accountants for DP-SGD with the Poisson-subsampled Gaussian
 * mechanism, and calibration of the noise multiplier.
 *
 * Two accountants answer the same question, "what (ε, δ) do T steps with
 * sampling rate q and noise multiplier σ give?":
 *
 *   RDP  Rényi DP of the sampled Gaussian at a list of orders, computed
 *        exactly (binomial expansion at integer orders, the two-series
 *        expansion of Mironov, Talwar & Zhang 2019 at fractional ones),
 *        composed by addition and converted to (ε, δ) by the improved
 *        (Balle et al. 2020) or the classic (Mironov 2017) bound.
 *   PLD  the privacy loss distribution of each step, discretised on a grid
 *        and composed by FFT; gives a rigorous upper bound on ε and an
 *        estimate. Adjacency is add/remove: both directions are composed
 *        and the worse one reported.
 *
 * Every ε names its accountant, conversion and δ; see docs/privacy.md for
 * the mathematics and the references. Nothing here prints: warnings (such
 * as the Poisson approximation for shuffled batches) are returned as
 * strings for the caller to show. */
#ifndef ONDEV_PRIVACY_ACCOUNTANT_H
#define ONDEV_PRIVACY_ACCOUNTANT_H

#include <stdint.h>

#include "engine/common.h"

typedef enum od_accountant {
    OD_ACCOUNTANT_RDP = 0,
    OD_ACCOUNTANT_PLD,
} od_accountant;

typedef enum od_rdp_conversion {
    OD_RDP_CONVERSION_IMPROVED = 0, /* Balle et al. 2020, as dp_accounting */
    OD_RDP_CONVERSION_CLASSIC,      /* Mironov 2017, Proposition 3 */
} od_rdp_conversion;

/* How batches were drawn. Only Poisson sampling has an exact analysis
 * here; shuffled fixed-size batches are accounted with the Poisson analysis
 * as a labelled approximation (see od_privacy_result.assumption). */
typedef enum od_sampling {
    OD_SAMPLING_POISSON = 0,
    OD_SAMPLING_SHUFFLE,
} od_sampling;

const char *od_accountant_name(od_accountant a);           /* "rdp", "pld" */
const char *od_rdp_conversion_name(od_rdp_conversion c);   /* "improved"... */
const char *od_sampling_name(od_sampling s);       /* "poisson", "shuffle" */
/* Parse the names above (case-sensitive); OD_ERR_INVALID with a message
 * listing the accepted names otherwise. */
od_status od_accountant_parse(const char *s, od_accountant *out);
od_status od_rdp_conversion_parse(const char *s, od_rdp_conversion *out);
od_status od_sampling_parse(const char *s, od_sampling *out);

/* ---- RDP ---------------------------------------------------------------- */

/* Named order lists. "default" is dp_accounting's default list:
 * 1.1, 1.2, ..., 10.9, then 11..63, then 128, 256, 512, 1024 (156 orders);
 * the large orders matter for large σ or small ε. "opacus" is Opacus's
 * DEFAULT_ALPHAS (1.1..10.9, 12..63); "tf-privacy" is the list of TF
 * Privacy's compute_dp_sgd_privacy (1.25..4.5, 5..63, 128, 256, 512).
 * Returns OD_ERR_INVALID for an unknown name. The arrays are static. */
od_status od_rdp_orders_preset(const char *name, const double **orders,
                               int *n_orders);
void od_rdp_default_orders(const double **orders, int *n_orders);

/* RDP at order alpha (> 1) of ONE step of the Poisson-subsampled Gaussian
 * mechanism with sampling rate q in [0, 1] and noise multiplier sigma > 0,
 * under add/remove adjacency. q = 0 gives 0; q = 1 gives alpha / (2 σ²).
 * Returns +inf when the series does not converge (never observed in the
 * supported range σ in [0.3, 100], q in [1e-6, 1], alpha <= 1024), which
 * excludes that order from any ε computed from it. */
double od_rdp_sampled_gaussian(double q, double sigma, double alpha);

/* ε for target delta from RDP values rdp[i] at orders[i] (already composed
 * over all steps): the minimum over orders of the chosen conversion, clamped
 * at 0. *order_out receives the order that achieved it. Improved:
 *   ε(α) = rdp + log((α−1)/α) − (log δ + log α)/(α − 1)   for α > 1.01,
 * and ε(α) = 0 when δ² > 1 − exp(−rdp) (the total-variation bound), as in
 * dp_accounting's compute_epsilon. Classic: ε(α) = rdp + log(1/δ)/(α − 1).
 * An infinite result (no order usable) is returned as +inf with OD_OK. */
od_status od_rdp_to_epsilon(const double *orders, const double *rdp, int n,
                            double delta, od_rdp_conversion conv,
                            double *eps_out, double *order_out);

/* ---- PLD ---------------------------------------------------------------- */

/* The composed privacy loss distribution of steps self-compositions of the
 * Poisson-subsampled Gaussian, both adjacency directions, both the
 * pessimistic (upper-bound) and the estimating discretisation. */
typedef struct od_pld od_pld;

/* Build it. grid_step_hint > 0 forces the loss grid interval; 0 picks one
 * from the width of the composed distribution (about 2^18 grid points).
 * OD_ERR_INVALID for parameters outside q in (0, 1], σ > 0, steps >= 1;
 * OD_ERR_NOMEM when the grid does not fit in memory. */
od_status od_pld_create(double q, double sigma, int64_t steps,
                        double grid_step_hint, od_pld **out);
void od_pld_destroy(od_pld *p);
/* The grid interval od_pld_create picks when given no hint. */
od_status od_pld_auto_grid_step(double q, double sigma, int64_t steps,
                                double *grid_step);
/* δ(ε) and ε(δ) of the composition (max over the two directions).
 * upper = 1: the rigorous upper bound; upper = 0: the estimate. ε(δ) is
 * +inf when the mass at infinite loss alone exceeds δ. Round-off limits
 * the answers to δ >= 1e-12 (docs/privacy.md, "Numerics"). */
double od_pld_delta(const od_pld *p, double epsilon, int upper);
double od_pld_epsilon(const od_pld *p, double delta, int upper);
double od_pld_grid_step(const od_pld *p);

/* ---- One call for the harness ------------------------------------------- */

typedef struct od_privacy_params {
    double sampling_rate;     /* q in (0, 1]: batch / dataset size */
    double noise_multiplier;  /* σ > 0: noise std / clipping norm */
    int64_t steps;            /* T >= 1 */
    double delta;             /* in (0, 1) */
    od_accountant accountant;
    od_rdp_conversion conversion;  /* RDP only */
    od_sampling sampling;
    const double *orders;     /* RDP orders; NULL: the default list */
    int n_orders;
    double pld_grid_step;     /* PLD loss grid interval; 0: automatic (about
                                 2^18 points over the composed window) */
} od_privacy_params;

/* Defaults: RDP, improved conversion, Poisson sampling, default orders. */
void od_privacy_params_init(od_privacy_params *p);

typedef struct od_privacy_result {
    double epsilon;           /* the number to report: RDP's ε, or the PLD
                                 upper bound */
    double order;             /* RDP: order achieving the min; PLD: NaN */
    double epsilon_estimate;  /* PLD: the estimate; RDP: = epsilon */
    double epsilon_upper;     /* PLD: the upper bound; RDP: = epsilon */
    double grid_step;         /* PLD loss grid interval; RDP: NaN */
    /* NULL, or the analysis assumption the caller must show the user, e.g.
     * "poisson-approximation" for shuffled batches. */
    const char *assumption;
} od_privacy_result;

/* Check every field; OD_ERR_INVALID with a message naming the field. */
od_status od_privacy_params_check(const od_privacy_params *p);

/* ε for the parameters. */
od_status od_privacy_epsilon(const od_privacy_params *p,
                             od_privacy_result *out);

/* Smallest σ (to relative tolerance 1e-6, rounded up) with ε(σ) <= target
 * epsilon for the other parameters in p (p->noise_multiplier is ignored).
 * Bracket expansion by doubling, then bisection. OD_ERR_INVALID when no σ
 * up to 1e4 reaches the target, or when even σ = 0.01 meets it (the
 * target does not constrain σ). *at receives ε at the returned σ. */
od_status od_privacy_sigma(const od_privacy_params *p, double target_epsilon,
                           double *sigma_out, od_privacy_result *at);

#endif
