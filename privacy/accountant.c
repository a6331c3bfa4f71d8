/* The accountants behind one call: names, parameter checks, ε for a
 * configuration and σ for a target ε. */
#include "privacy/accountant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *od_accountant_name(od_accountant a)
{
    switch (a) {
    case OD_ACCOUNTANT_RDP: return "rdp";
    case OD_ACCOUNTANT_PLD: return "pld";
    }
    return "unknown";
}

const char *od_rdp_conversion_name(od_rdp_conversion c)
{
    switch (c) {
    case OD_RDP_CONVERSION_IMPROVED: return "improved";
    case OD_RDP_CONVERSION_CLASSIC: return "classic";
    }
    return "unknown";
}

const char *od_sampling_name(od_sampling s)
{
    switch (s) {
    case OD_SAMPLING_POISSON: return "poisson";
    case OD_SAMPLING_SHUFFLE: return "shuffle";
    }
    return "unknown";
}

od_status od_accountant_parse(const char *s, od_accountant *out)
{
    if (strcmp(s, "rdp") == 0)
        *out = OD_ACCOUNTANT_RDP;
    else if (strcmp(s, "pld") == 0)
        *out = OD_ACCOUNTANT_PLD;
    else
        return od_fail(OD_ERR_INVALID,
                       "unknown accountant '%s': use rdp or pld", s);
    return OD_OK;
}

od_status od_rdp_conversion_parse(const char *s, od_rdp_conversion *out)
{
    if (strcmp(s, "improved") == 0)
        *out = OD_RDP_CONVERSION_IMPROVED;
    else if (strcmp(s, "classic") == 0)
        *out = OD_RDP_CONVERSION_CLASSIC;
    else
        return od_fail(OD_ERR_INVALID,
                       "unknown RDP conversion '%s': use improved or classic",
                       s);
    return OD_OK;
}

od_status od_sampling_parse(const char *s, od_sampling *out)
{
    if (strcmp(s, "poisson") == 0)
        *out = OD_SAMPLING_POISSON;
    else if (strcmp(s, "shuffle") == 0)
        *out = OD_SAMPLING_SHUFFLE;
    else
        return od_fail(OD_ERR_INVALID,
                       "unknown sampling '%s': use poisson or shuffle", s);
    return OD_OK;
}

void od_privacy_params_init(od_privacy_params *p)
{
    memset(p, 0, sizeof *p);
    p->sampling_rate = NAN;
    p->noise_multiplier = NAN;
    p->steps = 0;
    p->delta = NAN;
    p->accountant = OD_ACCOUNTANT_RDP;
    p->conversion = OD_RDP_CONVERSION_IMPROVED;
    p->sampling = OD_SAMPLING_POISSON;
    p->orders = NULL;
    p->n_orders = 0;
}

/* Everything but the noise multiplier, which calibration leaves unset. */
static od_status od__check_common(const od_privacy_params *p)
{
    if (!(p->sampling_rate > 0.0 && p->sampling_rate <= 1.0))
        return od_fail(OD_ERR_INVALID,
                       "sampling rate must be in (0, 1] (batch size over "
                       "dataset size), got %g", p->sampling_rate);
    if (p->steps < 1)
        return od_fail(OD_ERR_INVALID, "steps must be at least 1, got %lld",
                       (long long)p->steps);
    if (!(p->delta > 0.0 && p->delta < 1.0))
        return od_fail(OD_ERR_INVALID,
                       "delta must be in (0, 1) (typically below 1/dataset "
                       "size), got %g", p->delta);
    if (p->accountant != OD_ACCOUNTANT_RDP &&
        p->accountant != OD_ACCOUNTANT_PLD)
        return od_fail(OD_ERR_INVALID, "unknown accountant %d",
                       (int)p->accountant);
    if (p->conversion != OD_RDP_CONVERSION_IMPROVED &&
        p->conversion != OD_RDP_CONVERSION_CLASSIC)
        return od_fail(OD_ERR_INVALID, "unknown RDP conversion %d",
                       (int)p->conversion);
    if (p->sampling != OD_SAMPLING_POISSON &&
        p->sampling != OD_SAMPLING_SHUFFLE)
        return od_fail(OD_ERR_INVALID, "unknown sampling %d",
                       (int)p->sampling);
    if (!(p->pld_grid_step >= 0.0) || isinf(p->pld_grid_step))
        return od_fail(OD_ERR_INVALID,
                       "PLD grid step must be 0 (automatic) or positive, "
                       "got %g", p->pld_grid_step);
    if (p->orders != NULL) {
        if (p->n_orders < 1)
            return od_fail(OD_ERR_INVALID, "the RDP order list is empty");
        for (int i = 0; i < p->n_orders; i++)
            if (!(p->orders[i] > 1.0) || isinf(p->orders[i]))
                return od_fail(OD_ERR_INVALID,
                               "RDP orders must be finite and greater than "
                               "1, got %g", p->orders[i]);
    }
    return OD_OK;
}

od_status od_privacy_params_check(const od_privacy_params *p)
{
    if (!(p->noise_multiplier > 0.0) || isinf(p->noise_multiplier))
        return od_fail(OD_ERR_INVALID,
                       "noise multiplier must be positive and finite, got %g",
                       p->noise_multiplier);
    return od__check_common(p);
}

/* RDP accountant: compose over the steps and convert. */
static od_status od__epsilon_rdp(const od_privacy_params *p,
                                 od_privacy_result *out)
{
    const double *orders = p->orders;
    int n = p->n_orders;
    if (orders == NULL)
        od_rdp_default_orders(&orders, &n);

    double *rdp = malloc((size_t)n * sizeof *rdp);
    if (rdp == NULL)
        return od_fail(OD_ERR_NOMEM, "out of host memory for %d orders", n);
    for (int i = 0; i < n; i++)
        rdp[i] = (double)p->steps *
                 od_rdp_sampled_gaussian(p->sampling_rate,
                                         p->noise_multiplier, orders[i]);
    od_status st = od_rdp_to_epsilon(orders, rdp, n, p->delta, p->conversion,
                                     &out->epsilon, &out->order);
    free(rdp);
    OD_TRY(st);
    out->epsilon_estimate = out->epsilon;
    out->epsilon_upper = out->epsilon;
    out->grid_step = NAN;
    return OD_OK;
}

static od_status od__epsilon_pld(const od_privacy_params *p,
                                 od_privacy_result *out)
{
    od_pld *pld = NULL;
    OD_TRY(od_pld_create(p->sampling_rate, p->noise_multiplier, p->steps,
                         p->pld_grid_step, &pld));
    out->epsilon_upper = od_pld_epsilon(pld, p->delta, 1);
    out->epsilon_estimate = od_pld_epsilon(pld, p->delta, 0);
    out->epsilon = out->epsilon_upper;
    out->order = NAN;
    out->grid_step = od_pld_grid_step(pld);
    od_pld_destroy(pld);
    return OD_OK;
}

od_status od_privacy_epsilon(const od_privacy_params *p,
                             od_privacy_result *out)
{
    OD_TRY(od_privacy_params_check(p));
    memset(out, 0, sizeof *out);
    if (p->accountant == OD_ACCOUNTANT_RDP)
        OD_TRY(od__epsilon_rdp(p, out));
    else
        OD_TRY(od__epsilon_pld(p, out));
    /* Fixed-size shuffled batches have no exact analysis here: the
     * Poisson bound is used and labelled, never silently. */
    out->assumption = p->sampling == OD_SAMPLING_SHUFFLE
                          ? "poisson-approximation"
                          : NULL;
    return OD_OK;
}

#define OD__SIGMA_MIN 0.01
#define OD__SIGMA_MAX 1e4
#define OD__SIGMA_RTOL 1e-6

/* ε at a given σ with the other parameters of p. */
static od_status od__eps_at(const od_privacy_params *p, double sigma,
                            od_privacy_result *r)
{
    od_privacy_params q = *p;
    q.noise_multiplier = sigma;
    return od_privacy_epsilon(&q, r);
}

/* Find lo < hi with ε(lo) > target >= ε(hi), starting from guess and
 * stepping by factor (squared at every further step). */
static od_status od__bracket(const od_privacy_params *p, double target,
                             double guess, double factor, double *lo_out,
                             double *hi_out, od_privacy_result *r_hi)
{
    double hi = guess, lo = 0.0, f = factor;
    od_privacy_result r;
    OD_TRY(od__eps_at(p, hi, r_hi));
    while (!(r_hi->epsilon <= target)) {
        if (hi >= OD__SIGMA_MAX)
            return od_fail(OD_ERR_INVALID,
                           "no noise multiplier up to %g reaches epsilon %g: "
                           "raise the target epsilon or delta, or lower the "
                           "sampling rate or steps",
                           OD__SIGMA_MAX, target);
        lo = hi;
        hi = fmin(hi * f, OD__SIGMA_MAX);
        f *= f;
        OD_TRY(od__eps_at(p, hi, r_hi));
    }
    if (lo > 0.0) {
        *lo_out = lo;
        *hi_out = hi;
        return OD_OK;
    }
    f = factor;
    lo = fmax(hi / f, OD__SIGMA_MIN);
    OD_TRY(od__eps_at(p, lo, &r));
    while (r.epsilon <= target) {
        if (lo <= OD__SIGMA_MIN)
            return od_fail(OD_ERR_INVALID,
                           "every noise multiplier down to %g meets epsilon "
                           "%g: the target does not constrain the noise",
                           OD__SIGMA_MIN, target);
        hi = lo;
        *r_hi = r;
        f *= f;
        lo = fmax(lo / f, OD__SIGMA_MIN);
        OD_TRY(od__eps_at(p, lo, &r));
    }
    *lo_out = lo;
    *hi_out = hi;
    return OD_OK;
}

/* Bisect the bracket [lo, hi] until hi − lo <= rtol hi; hi always meets
 * the target, so it is what comes back (with its result in *r_hi). */
static od_status od__bisect(const od_privacy_params *p, double target,
                            double lo, double hi, double rtol,
                            double *sigma_out, od_privacy_result *r_hi)
{
    while (hi - lo > rtol * hi) {
        double mid = 0.5 * (lo + hi);
        od_privacy_result r;
        OD_TRY(od__eps_at(p, mid, &r));
        if (r.epsilon <= target) {
            hi = mid;
            *r_hi = r;
        } else {
            lo = mid;
        }
    }
    *sigma_out = hi;
    return OD_OK;
}

od_status od_privacy_sigma(const od_privacy_params *p, double target_epsilon,
                           double *sigma_out, od_privacy_result *at)
{
    OD_TRY(od__check_common(p));
    if (!(target_epsilon > 0.0) || isinf(target_epsilon))
        return od_fail(OD_ERR_INVALID,
                       "target epsilon must be positive and finite, got %g",
                       target_epsilon);

    od_privacy_result r_hi;
    double lo, hi, sigma;
    if (p->accountant != OD_ACCOUNTANT_PLD) {
        OD_TRY(od__bracket(p, target_epsilon, 1.0, 2.0, &lo, &hi, &r_hi));
        OD_TRY(od__bisect(p, target_epsilon, lo, hi, OD__SIGMA_RTOL, &sigma,
                          &r_hi));
        *sigma_out = sigma;
        if (at != NULL)
            *at = r_hi;
        return OD_OK;
    }

    /* PLD: every probe is a full PLD computation. The RDP answer (cheap,
     * and in practice never below the PLD one) starts a search on a grid
     * 16 times coarser; its answer then brackets the search at full
     * resolution within a fraction of a percent. */
    od_privacy_params rp = *p;
    rp.accountant = OD_ACCOUNTANT_RDP;
    double guess = 1.0;
    od_privacy_result tmp;
    if (od_privacy_sigma(&rp, target_epsilon, &guess, &tmp) != OD_OK)
        guess = 1.0;
    od_clear_error();

    if (p->pld_grid_step == 0.0) {
        od_privacy_params cp = *p;
        double h;
        OD_TRY(od_pld_auto_grid_step(p->sampling_rate, guess, p->steps, &h));
        cp.pld_grid_step = 16.0 * h;
        OD_TRY(od__bracket(&cp, target_epsilon, guess, 2.0, &lo, &hi,
                           &r_hi));
        OD_TRY(od__bisect(&cp, target_epsilon, lo, hi, 1e-4, &guess,
                          &r_hi));
        OD_TRY(od__bracket(p, target_epsilon, guess, 1.002, &lo, &hi,
                           &r_hi));
    } else {
        OD_TRY(od__bracket(p, target_epsilon, guess, 2.0, &lo, &hi, &r_hi));
    }
    OD_TRY(od__bisect(p, target_epsilon, lo, hi, OD__SIGMA_RTOL, &sigma,
                      &r_hi));
    *sigma_out = sigma;
    if (at != NULL)
        *at = r_hi;
    return OD_OK;
}
