/* Privacy loss distribution (PLD) accountant for the Poisson-subsampled
 * Gaussian mechanism under add/remove adjacency.
 *
 * Dominating pairs (as in Google's dp_accounting; Zhu, Dong & Wang 2022,
 * "Optimal accounting of differential privacy via characteristic
 * function", on Poisson subsampling), with μ0 = N(0, σ²), μ1 = N(1, σ²)
 * and μ = (1 − q) μ0 + q μ1:
 *   remove:  P = μ,  Q = μ0,  loss L(x) =  log(1 − q + q e^{(2x−1)/2σ²})
 *   add:     P = μ0, Q = μ,   loss L(x) = −log(1 − q + q e^{(2x−1)/2σ²})
 * Removing a record from the batch's dataset compares μ against μ0; adding
 * one compares the other way round. The record is the same in every step,
 * so a T-step run is the T-fold composition of one direction, and the
 * reported ε is the larger of the two.
 *
 * Discretisation. Losses live on the grid l_k = k h. Upper bound: the
 * "connect the dots" PLD (Doroshenko et al. 2022): the P-mass of every loss
 * bucket (l_{k−1}, l_k] is split between its two ends so that both its
 * P-mass and its Q-mass are kept; the result has exactly the true δ(ε) at
 * every grid point and lies above it in between (δ is convex in e^ε), so
 * it dominates the mechanism and its compositions. Losses beyond the
 * truncation are rounded up (lower tail) or sent to +inf (upper tail).
 * Estimate: the bucket's mass is split linearly in loss around its
 * effective loss log(P-mass / Q-mass); no bound, and its error is second
 * order in h.
 *
 * Composition: the T-th power of the discrete Fourier transform on a window
 * [a, b] of the composed loss chosen by Chernoff bounds so that at most
 * OD__TAIL of mass lies outside either end; that mass (which the circular
 * transform aliases) is added to the infinite-loss mass of the upper bound. */
#include "privacy/accountant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OD__TAIL 1e-15          /* Chernoff tail mass per end of the window */
#define OD__Z_TRUNC 9.0         /* single-step truncation, in σ (Φ̄(9)~1e-19) */
#define OD__TARGET_POINTS (1 << 18)
#define OD__MAX_FFT (1 << 23)

enum { OD__REMOVE = 0, OD__ADD = 1 };

/* One adjacency direction of the composed PLD: masses at losses
 * (m_lo + i) h for i in [0, len), and the mass at +inf. */
typedef struct od__pld_dir {
    int64_t m_lo;
    int64_t len;
    double *mass_upper;   /* (len) */
    double *mass_est;     /* (len) */
    double inf_upper;
    double inf_est;
} od__pld_dir;

struct od_pld {
    double h;
    od__pld_dir dir[2];
};

/* One step of one direction on the grid: masses at k h for k in
 * [k_lo, k_lo + n). */
typedef struct od__step {
    int64_t k_lo;
    int64_t n;
    double *w_upper;   /* (n) */
    double *w_est;     /* (n) */
    double inf_upper;  /* P-mass of losses above the grid */
    double inf_est;
} od__step;

/* ---- The mechanism ---------------------------------------------------- */

/* Φ(v) − Φ(u) for u <= v, from erfc values at both ends, choosing the tail
 * that avoids cancellation. ep_* = erfc(·/√2), em_* = erfc(−·/√2). */
static double od__gauss_diff(double u, double v, double ep_u, double em_u,
                             double ep_v, double em_v)
{
    if (!(u < v))
        return 0.0;
    double d;
    if (u > 0.0)
        d = 0.5 * (ep_u - ep_v);
    else if (v < 0.0)
        d = 0.5 * (em_v - em_u);
    else
        d = 1.0 - 0.5 * ep_v - 0.5 * em_u;
    return d > 0.0 ? d : 0.0;
}

/* The point x where the loss of direction dir equals l. Remove: L rises
 * with x, L <= l iff x <= x(l). Add: L falls with x, L <= l iff x >= x(l).
 * ±inf when l is outside the loss range. */
static double od__x_of_loss(int dir, double q, double sigma, double l)
{
    double s2 = sigma * sigma;
    if (dir == OD__REMOVE) {
        if (l == INFINITY)
            return INFINITY;
        if (q == 1.0)
            return l == -INFINITY ? -INFINITY : s2 * l + 0.5;
        if (l <= log1p(-q))
            return -INFINITY;
        return s2 * log1p(expm1(l) / q) + 0.5;
    }
    if (l == -INFINITY)
        return INFINITY;
    if (q == 1.0)
        return l == INFINITY ? -INFINITY : -s2 * l + 0.5;
    if (l >= -log1p(-q))
        return -INFINITY;
    return s2 * log1p(expm1(-l) / q) + 0.5;
}

/* log(1 − q + q e^u), the remove-direction loss at u = (2x − 1)/(2σ²). */
static double od__loss_remove_u(double q, double u)
{
    if (q == 1.0)
        return u;
    double a = log1p(-q), b = log(q) + u;
    double hi = a > b ? a : b, lo = a > b ? b : a;
    return hi + log1p(exp(lo - hi));
}

/* Loss range [lo, hi] of one step outside which the P-mass is below
 * Φ̄(OD__Z_TRUNC) (or zero, where the loss is bounded). */
static void od__loss_range(int dir, double q, double sigma, double *lo,
                           double *hi)
{
    double s2 = sigma * sigma, z = OD__Z_TRUNC;
    if (dir == OD__REMOVE) {
        /* x ~ μ: both components lie within z σ of [0, 1]. */
        double x_lo = -z * sigma, x_hi = 1.0 + z * sigma;
        *lo = q < 1.0 ? log1p(-q)
                      : od__loss_remove_u(q, (2.0 * x_lo - 1.0) / (2.0 * s2));
        *hi = od__loss_remove_u(q, (2.0 * x_hi - 1.0) / (2.0 * s2));
    } else {
        /* x ~ μ0. */
        double x_lo = -z * sigma, x_hi = z * sigma;
        *hi = q < 1.0 ? -log1p(-q)
                      : -od__loss_remove_u(q, (2.0 * x_lo - 1.0) / (2.0 * s2));
        *lo = -od__loss_remove_u(q, (2.0 * x_hi - 1.0) / (2.0 * s2));
    }
}

/* erfc values of the standardised points a grid point needs. */
typedef struct od__gpt {
    double u0, ep0, em0;   /* u0 = x / σ      (component μ0) */
    double u1, ep1, em1;   /* u1 = (x − 1)/σ  (component μ1) */
} od__gpt;

static od__gpt od__grid_point(int dir, double q, double sigma, double l)
{
    od__gpt g;
    double x = od__x_of_loss(dir, q, sigma, l);
    g.u0 = x / sigma;
    g.u1 = (x - 1.0) / sigma;
    g.ep0 = erfc(g.u0 * M_SQRT1_2);
    g.em0 = erfc(-g.u0 * M_SQRT1_2);
    g.ep1 = erfc(g.u1 * M_SQRT1_2);
    g.em1 = erfc(-g.u1 * M_SQRT1_2);
    return g;
}

/* P- and Q-mass of losses in (la, lb] given the grid points at la and lb. */
static void od__bucket(int dir, double q, const od__gpt *a, const od__gpt *b,
                       double *pm, double *qm)
{
    double m0, m1;
    if (dir == OD__REMOVE) {
        /* x in (x(la), x(lb)]. */
        m0 = od__gauss_diff(a->u0, b->u0, a->ep0, a->em0, b->ep0, b->em0);
        m1 = od__gauss_diff(a->u1, b->u1, a->ep1, a->em1, b->ep1, b->em1);
        *pm = (1.0 - q) * m0 + q * m1;
        *qm = m0;
    } else {
        /* x in [x(lb), x(la)). */
        m0 = od__gauss_diff(b->u0, a->u0, b->ep0, b->em0, a->ep0, a->em0);
        m1 = od__gauss_diff(b->u1, a->u1, b->ep1, b->em1, a->ep1, a->em1);
        *pm = m0;
        *qm = (1.0 - q) * m0 + q * m1;
    }
}

static void od__step_free(od__step *s)
{
    free(s->w_upper);
    free(s->w_est);
    s->w_upper = s->w_est = NULL;
}

/* Discretise one step of direction dir on the grid of interval h. */
static od_status od__step_build(int dir, double q, double sigma, double h,
                                od__step *s)
{
    double lo, hi;
    od__loss_range(dir, q, sigma, &lo, &hi);
    int64_t k_lo = (int64_t)floor(lo / h), k_hi = (int64_t)ceil(hi / h);
    if (k_hi <= k_lo)
        k_hi = k_lo + 1;
    int64_t n = k_hi - k_lo + 1;
    if (n > OD__MAX_FFT)
        return od_fail(OD_ERR_NOMEM,
                       "the loss grid needs %lld points for one step; use "
                       "a coarser grid", (long long)n);
    s->k_lo = k_lo;
    s->n = n;
    s->w_upper = calloc((size_t)n, sizeof(double));
    s->w_est = calloc((size_t)n, sizeof(double));
    if (s->w_upper == NULL || s->w_est == NULL) {
        od__step_free(s);
        return od_fail(OD_ERR_NOMEM, "out of host memory for the loss grid");
    }

    double e_mh = exp(-h), one_m_e_mh = -expm1(-h);
    od__gpt g_inf_lo = od__grid_point(dir, q, sigma, -INFINITY);
    od__gpt g_inf_hi = od__grid_point(dir, q, sigma, INFINITY);
    od__gpt prev = od__grid_point(dir, q, sigma, (double)k_lo * h);

    /* Lower tail, L <= l_{k_lo}: rounded up onto the first grid point. */
    double pm, qm;
    od__bucket(dir, q, &g_inf_lo, &prev, &pm, &qm);
    s->w_upper[0] += pm;
    s->w_est[0] += pm;

    for (int64_t i = 1; i < n; i++) {
        double l_prev = (double)(k_lo + i - 1) * h;
        od__gpt cur = od__grid_point(dir, q, sigma, (double)(k_lo + i) * h);
        od__bucket(dir, q, &prev, &cur, &pm, &qm);
        prev = cur;
        if (pm <= 0.0)
            continue;

        /* Upper bound: keep P- and Q-mass. With r = qm / pm in
         * [e^{-l_i}, e^{-l_{i-1}}], the share at the lower end is
         * (r e^{l_{i-1}} − e^{-h}) / (1 − e^{-h}). */
        double rel = qm > 0.0 ? exp(log(qm / pm) + l_prev) : 0.0;
        double f_lo = (rel - e_mh) / one_m_e_mh;
        f_lo = f_lo < 0.0 ? 0.0 : (f_lo > 1.0 ? 1.0 : f_lo);
        s->w_upper[i - 1] += pm * f_lo;
        s->w_upper[i] += pm * (1.0 - f_lo);

        /* Estimate: split linearly around the effective loss. */
        double f_hi = qm > 0.0 ? (log(pm / qm) - l_prev) / h : 1.0;
        f_hi = f_hi < 0.0 ? 0.0 : (f_hi > 1.0 ? 1.0 : f_hi);
        s->w_est[i - 1] += pm * (1.0 - f_hi);
        s->w_est[i] += pm * f_hi;
    }

    /* Upper tail, L > l_{k_hi}: infinite loss in both. */
    od__bucket(dir, q, &prev, &g_inf_hi, &pm, &qm);
    s->inf_upper = pm;
    s->inf_est = pm;
    return OD_OK;
}

/* ---- Tail bounds of the composition ------------------------------------ */

/* log Σ_i w_i e^{λ (k_lo + i) h} over the finite masses, shifted by the
 * largest exponent so that nothing overflows. */
static double od__log_mgf(const double *w, int64_t n, int64_t k_lo, double h,
                          double lambda)
{
    double l_first = (double)k_lo * h, l_last = (double)(k_lo + n - 1) * h;
    double mx = fmax(lambda * l_first, lambda * l_last);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (w[i] > 0.0)
            s += w[i] * exp(lambda * (double)(k_lo + i) * h - mx);
    return s > 0.0 ? mx + log(s) : -INFINITY;
}

/* Chernoff bound on one end of the T-fold sum: for sgn = +1 the smallest
 * b with mass above b <= OD__TAIL, i.e. min over λ > 0 of
 * (T K(λ) − log τ) / λ; for sgn = −1 the largest a with mass below a <=
 * OD__TAIL, max over λ of (log τ − T K(−λ)) / λ. Golden-section search on
 * log λ; any λ gives a valid bound, so the search only tightens it. */
static double od__chernoff_end(const od__step *s, const double *w, double h,
                               double steps, int sgn)
{
    double log_tau = log(OD__TAIL);
    double a = log(1e-4), b = log(1e4);
    double best = sgn > 0 ? INFINITY : -INFINITY;
    const double gr = 0.6180339887498949;
    double x1 = b - gr * (b - a), x2 = a + gr * (b - a);
    double f[2];
    double xs[2] = {x1, x2};
    for (int it = 0; it < 2; it++) {
        double lam = exp(xs[it]);
        double k = od__log_mgf(w, s->n, s->k_lo, h, sgn * lam);
        double e = sgn > 0 ? (steps * k - log_tau) / lam
                           : (log_tau - steps * k) / lam;
        f[it] = sgn * e;  /* minimise sgn * end */
        if (sgn * e < sgn * best)
            best = e;
    }
    for (int it = 0; it < 24; it++) {
        int left = f[0] < f[1];
        if (left) {
            b = x2;
            x2 = x1;
            f[1] = f[0];
            x1 = b - gr * (b - a);
        } else {
            a = x1;
            x1 = x2;
            f[0] = f[1];
            x2 = a + gr * (b - a);
        }
        double xn = left ? x1 : x2;
        double lam = exp(xn);
        double k = od__log_mgf(w, s->n, s->k_lo, h, sgn * lam);
        double e = sgn > 0 ? (steps * k - log_tau) / lam
                           : (log_tau - steps * k) / lam;
        f[left ? 0 : 1] = sgn * e;
        if (sgn * e < sgn * best)
            best = e;
    }
    /* Never wider than the trivial support of the sum. */
    double lo_sup = steps * (double)s->k_lo * h;
    double hi_sup = steps * (double)(s->k_lo + s->n - 1) * h;
    if (sgn > 0)
        return best < hi_sup ? best : hi_sup;
    return best > lo_sup ? best : lo_sup;
}

/* ---- FFT -------------------------------------------------------------- */

#define od__PI_L 3.141592653589793238462643383279502884L

/* In-place iterative radix-2 transform of (re, im) of length n (a power of
 * two); inverse = 1 gives the unscaled inverse transform. Extended
 * precision: raising a coefficient to the power T multiplies its relative
 * round-off by T, and with 64-bit doubles that noise (about 1e-16 T log2 n
 * per coefficient) can reach 1e-10 of the composed δ at T = 1e5. */
static void od__fft(long double *re, long double *im, int64_t n,
                    const long double *cs, const long double *sn, int inverse)
{
    for (int64_t i = 1, j = 0; i < n; i++) {
        int64_t bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            long double t = re[i]; re[i] = re[j]; re[j] = t;
            t = im[i]; im[i] = im[j]; im[j] = t;
        }
    }
    for (int64_t len = 2; len <= n; len <<= 1) {
        int64_t half = len >> 1, stride = n / len;
        for (int64_t i = 0; i < n; i += len) {
            for (int64_t k = 0; k < half; k++) {
                long double wr = cs[k * stride];
                long double wi = inverse ? sn[k * stride] : -sn[k * stride];
                int64_t a = i + k, b = a + half;
                long double xr = re[b] * wr - im[b] * wi;
                long double xi = re[b] * wi + im[b] * wr;
                re[b] = re[a] - xr;
                im[b] = im[a] - xi;
                re[a] += xr;
                im[a] += xi;
            }
        }
    }
}

/* z^T for a complex z = (re, im), in place, through its polar form. */
static void od__cpow(long double *re, long double *im, long double t)
{
    long double r = hypotl(*re, *im);
    if (r == 0.0L) {
        *re = *im = 0.0L;
        return;
    }
    long double mag = expl(t * logl(r));
    long double ang = t * atan2l(*im, *re);
    *re = mag * cosl(ang);
    *im = mag * sinl(ang);
}

/* The T-fold self-convolutions of two mass vectors wa and wb (n masses
 * each from index k_lo), kept on the composed indices [m_lo, m_lo + len):
 * outa[i], outb[i] = mass at m_lo + i. Both real inputs go through one
 * complex transform as wa + i wb; their spectra are separated with the
 * conjugate symmetry of real signals, raised to the power T, and
 * recombined, so the inverse transform returns both results at once.
 * Negative round-off is clamped to zero. */
static od_status od__self_convolve2(const double *wa, const double *wb,
                                    int64_t n, int64_t k_lo, int64_t steps,
                                    int64_t m_lo, int64_t len, double *outa,
                                    double *outb)
{
    if (steps == 1) {
        for (int64_t i = 0; i < len; i++) {
            int64_t k = m_lo + i - k_lo;
            outa[i] = (k >= 0 && k < n) ? wa[k] : 0.0;
            outb[i] = (k >= 0 && k < n) ? wb[k] : 0.0;
        }
        return OD_OK;
    }
    int64_t nfft = 1;
    while (nfft < len)
        nfft <<= 1;
    if (nfft > OD__MAX_FFT)
        return od_fail(OD_ERR_NOMEM,
                       "the composed loss window needs %lld grid points",
                       (long long)len);
    long double *re = calloc((size_t)nfft, sizeof(long double));
    long double *im = calloc((size_t)nfft, sizeof(long double));
    long double *cs = malloc((size_t)(nfft / 2 + 1) * sizeof(long double));
    long double *sn = malloc((size_t)(nfft / 2 + 1) * sizeof(long double));
    if (re == NULL || im == NULL || cs == NULL || sn == NULL) {
        free(re); free(im); free(cs); free(sn);
        return od_fail(OD_ERR_NOMEM, "out of host memory for the FFT");
    }
    for (int64_t k = 0; k <= nfft / 2; k++) {
        long double t = 2.0L * od__PI_L * (long double)k / (long double)nfft;
        cs[k] = cosl(t);
        sn[k] = sinl(t);
    }

    /* Fold the single-step masses modulo nfft (circular convolution of the
     * folded inputs is the folded full convolution). */
    for (int64_t i = 0; i < n; i++) {
        re[i % nfft] += wa[i];
        im[i % nfft] += wb[i];
    }
    od__fft(re, im, nfft, cs, sn, 0);

    /* Z = A + iB with A, B the spectra of the real inputs:
     * A[k] = (Z[k] + conj Z[−k]) / 2, B[k] = (Z[k] − conj Z[−k]) / 2i.
     * Each pair (k, −k) is rewritten as A^T + i B^T. */
    long double t = (long double)steps;
    for (int64_t k = 0; k <= nfft / 2; k++) {
        int64_t nk = (nfft - k) & (nfft - 1);
        long double zr = re[k], zi = im[k], yr = re[nk], yi = im[nk];
        long double ar = 0.5L * (zr + yr), ai = 0.5L * (zi - yi);
        long double br = 0.5L * (zi + yi), bi = 0.5L * (yr - zr);
        od__cpow(&ar, &ai, t);
        od__cpow(&br, &bi, t);
        /* At k: A + iB; at −k: conj(A) + i conj(B). */
        re[k] = ar - bi;
        im[k] = ai + br;
        re[nk] = ar + bi;
        im[nk] = br - ai;
    }
    od__fft(re, im, nfft, cs, sn, 1);

    /* Composed index m sits at ((m − T k_lo) mod nfft). */
    int64_t shift = steps * k_lo;
    for (int64_t i = 0; i < len; i++) {
        int64_t j = ((m_lo + i - shift) % nfft + nfft) % nfft;
        double va = (double)(re[j] / (long double)nfft);
        double vb = (double)(im[j] / (long double)nfft);
        outa[i] = va > 0.0 ? va : 0.0;
        outb[i] = vb > 0.0 ? vb : 0.0;
    }
    free(re); free(im); free(cs); free(sn);
    return OD_OK;
}

/* ---- Building the composed PLD ---------------------------------------- */

static void od__dir_free(od__pld_dir *d)
{
    free(d->mass_upper);
    free(d->mass_est);
    d->mass_upper = d->mass_est = NULL;
}

void od_pld_destroy(od_pld *p)
{
    if (p == NULL)
        return;
    od__dir_free(&p->dir[0]);
    od__dir_free(&p->dir[1]);
    free(p);
}

double od_pld_grid_step(const od_pld *p) { return p->h; }

/* Width of the composed window of both directions at grid interval h. */
static od_status od__window_width(double q, double sigma, int64_t steps,
                                  double h, double *width)
{
    *width = 0.0;
    for (int d = 0; d < 2; d++) {
        od__step s = {0};
        OD_TRY(od__step_build(d, q, sigma, h, &s));
        double hi = od__chernoff_end(&s, s.w_upper, h, (double)steps, 1);
        double lo = od__chernoff_end(&s, s.w_upper, h, (double)steps, -1);
        od__step_free(&s);
        if (hi - lo > *width)
            *width = hi - lo;
    }
    return OD_OK;
}

static od_status od__dir_build(int d, double q, double sigma, int64_t steps,
                               double h, od__pld_dir *out)
{
    od__step s = {0};
    OD_TRY(od__step_build(d, q, sigma, h, &s));

    /* Window from the Chernoff bounds of the upper-bound discretisation;
     * the estimate's masses sit at most one cell lower, so a margin of 2 %
     * of the width plus two cells covers it. */
    double t = (double)steps;
    int64_t m_lo = s.k_lo, m_hi = s.k_lo + s.n - 1;
    if (steps > 1) {
        double hi = od__chernoff_end(&s, s.w_upper, h, t, 1);
        double lo = od__chernoff_end(&s, s.w_upper, h, t, -1);
        double margin = 0.02 * (hi - lo);
        m_lo = (int64_t)floor((lo - margin) / h) - 2;
        m_hi = (int64_t)ceil((hi + margin) / h) + 2;
    }
    int64_t len = m_hi - m_lo + 1;
    if (len > OD__MAX_FFT) {
        od__step_free(&s);
        return od_fail(OD_ERR_NOMEM,
                       "the composed loss window needs %lld grid points",
                       (long long)len);
    }
    out->m_lo = m_lo;
    out->len = len;
    out->mass_upper = malloc((size_t)len * sizeof(double));
    out->mass_est = malloc((size_t)len * sizeof(double));
    od_status st = OD_OK;
    if (out->mass_upper == NULL || out->mass_est == NULL)
        st = od_fail(OD_ERR_NOMEM, "out of host memory for the PLD");
    if (st == OD_OK)
        st = od__self_convolve2(s.w_upper, s.w_est, s.n, s.k_lo, steps, m_lo,
                                len, out->mass_upper, out->mass_est);

    /* Infinite loss after T steps: 1 − (1 − ω∞)^T; the upper bound also
     * takes the mass the window may have cut or aliased. */
    out->inf_upper = -expm1(t * log1p(-s.inf_upper));
    out->inf_est = -expm1(t * log1p(-s.inf_est));
    if (steps > 1)
        out->inf_upper += 2.0 * OD__TAIL;
    od__step_free(&s);
    return st;
}

static od_status od__check_mechanism(double q, double sigma, int64_t steps)
{
    if (!(q > 0.0 && q <= 1.0))
        return od_fail(OD_ERR_INVALID,
                       "sampling rate must be in (0, 1], got %g", q);
    if (!(sigma > 0.0) || isinf(sigma))
        return od_fail(OD_ERR_INVALID,
                       "noise multiplier must be positive, got %g", sigma);
    if (steps < 1)
        return od_fail(OD_ERR_INVALID, "steps must be at least 1, got %lld",
                       (long long)steps);
    return OD_OK;
}

od_status od_pld_auto_grid_step(double q, double sigma, int64_t steps,
                                double *grid_step)
{
    OD_TRY(od__check_mechanism(q, sigma, steps));

    /* About OD__TARGET_POINTS over the composed window (measured on a
     * coarse grid first), and at most OD__TARGET_POINTS over one step's
     * loss range. */
    double range = 0.0;
    for (int d = 0; d < 2; d++) {
        double lo, hi;
        od__loss_range(d, q, sigma, &lo, &hi);
        range = fmax(range, hi - lo);
    }
    double width;
    OD_TRY(od__window_width(q, sigma, steps, range / 4096.0, &width));
    /* The window gets 2 % margins and a few cells of slack on each side;
     * keep it within one power of two. */
    *grid_step = fmax(1.06 * width / (OD__TARGET_POINTS - 16),
                      range / OD__TARGET_POINTS);
    return OD_OK;
}

od_status od_pld_create(double q, double sigma, int64_t steps,
                        double grid_step_hint, od_pld **out)
{
    *out = NULL;
    OD_TRY(od__check_mechanism(q, sigma, steps));
    double h = grid_step_hint;
    if (!(h > 0.0))
        OD_TRY(od_pld_auto_grid_step(q, sigma, steps, &h));

    od_pld *p = calloc(1, sizeof *p);
    if (p == NULL)
        return od_fail(OD_ERR_NOMEM, "out of host memory for the PLD");
    p->h = h;
    for (int d = 0; d < 2; d++) {
        od_status st = od__dir_build(d, q, sigma, steps, h, &p->dir[d]);
        if (st != OD_OK) {
            od_pld_destroy(p);
            return st;
        }
    }
    *out = p;
    return OD_OK;
}

/* ---- Queries ---------------------------------------------------------- */

/* δ(ε) = P(L = inf) + Σ_{l > ε} p(l) (1 − e^{ε − l}) for one direction. */
static double od__dir_delta(const od__pld_dir *d, double h, double eps,
                            int upper)
{
    const double *m = upper ? d->mass_upper : d->mass_est;
    double delta = upper ? d->inf_upper : d->inf_est;
    for (int64_t i = d->len - 1; i >= 0; i--) {
        double l = (double)(d->m_lo + i) * h;
        if (l <= eps)
            break;
        delta += m[i] * -expm1(eps - l);
    }
    return delta;
}

/* Smallest ε >= 0 with δ(ε) <= target for one direction. Walks down the
 * grid keeping S = Σ_{j>=i} p_j and R = Σ_{j>=i} p_j e^{l_{i−1} − l_j},
 * so that δ(l_{i−1}) = I + S − R, then solves within the bracketing cell
 * where δ(ε) = I + S − e^{ε − l_{i−1}} R. */
static double od__dir_epsilon(const od__pld_dir *d, double h, double target,
                              int upper)
{
    const double *m = upper ? d->mass_upper : d->mass_est;
    double inf = upper ? d->inf_upper : d->inf_est;
    if (inf >= target)
        return INFINITY;
    double e_mh = exp(-h), s = 0.0, r = 0.0;
    for (int64_t i = d->len - 1; i >= 0; i--) {
        s += m[i];
        r = e_mh * (r + m[i]);
        double l_prev = (double)(d->m_lo + i - 1) * h;
        if (inf + s - r > target) {
            double eps = l_prev + log((inf + s - target) / r);
            return eps > 0.0 ? eps : 0.0;
        }
    }
    /* Below the window: δ(ε) = I + S − e^{ε − l_{−1}} R. */
    if (inf + s - target <= 0.0 || r <= 0.0)
        return 0.0;
    double eps = (double)(d->m_lo - 1) * h + log((inf + s - target) / r);
    return eps > 0.0 ? eps : 0.0;
}

double od_pld_delta(const od_pld *p, double epsilon, int upper)
{
    double a = od__dir_delta(&p->dir[0], p->h, epsilon, upper);
    double b = od__dir_delta(&p->dir[1], p->h, epsilon, upper);
    double d = a > b ? a : b;
    return d < 1.0 ? d : 1.0;
}

double od_pld_epsilon(const od_pld *p, double delta, int upper)
{
    double a = od__dir_epsilon(&p->dir[0], p->h, delta, upper);
    double b = od__dir_epsilon(&p->dir[1], p->h, delta, upper);
    return a > b ? a : b;
}
