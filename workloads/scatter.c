#include "workloads/scatter.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kernels.h"
#include "engine/pool.h"
#include "workloads/fmnist.h"

/* Gabor functions are summed over this many periods each way (-2 .. 2), as
 * kymatio does; the widest Gaussian used here (sigma 0.8 2^(J-1)) is far
 * inside one period of the padded image. */
#define OD__SCATTER_PERIODS 2
/* kymatio divides its Gabor functions by 2 x 3.1415 sigma^2 / slant, with
 * pi rounded to 3.1415; the same constant keeps the features equal to
 * kymatio's (the rounding scales every filter by 1.00003). */
#define OD__SCATTER_PI_NORM 3.1415

struct od_scatter {
    int h, w;          /* image */
    int J, L;
    int hp, wp;        /* padded */
    int top, left;     /* padding before the image */
    int oh, ow;        /* output: (hp, wp) / 2^J minus one pixel a side */
    int channels;
    /* Fourier filters, real, each (hp >> res, wp >> res):
     * psi[n][res] for n = j L + t, res < psi_levels(j); phi[res], res < J. */
    float ***psi;
    float **phi;
    /* lowmat[j] (oh ow, (hp >> j) (wp >> j)): the low-pass output of a
     * real signal at resolution 2^-j, as a matrix on that signal (phi_J in
     * space at that resolution, shifted to each output pixel); kept for
     * the resolutions whose moduli need no spectrum (NULL elsewhere). */
    float **lowmat;
    /* Out-of-place FFTW plans; the transforms of the L angles of a scale
     * run as one batch. */
    fftwf_plan image_r2c;  /* padded image -> half spectrum */
    fftwf_plan *inv;       /* [j], j < J: L full spectra -> L complex
                              signals, at resolution 2^-j */
    fftwf_plan *r2c;       /* [j], j < J: L real signals -> L half spectra */
    fftwf_plan out_c2r;    /* the half spectra of the channels low-passed
                              in the Fourier domain -> (hp, wp) >> J real
                              values */
    int spectral_channels; /* those channels: 0 .. (J - 1) L */
};

/* Buffers of one thread. "Half" spectra of real signals keep columns
 * 0 .. cols / 2 (FFTW's layout); full ones are (rows, cols). A batch of L
 * holds L items packed at the size of their resolution. */
struct od_scatter_work {
    fftwf_complex *u0;     /* (hp, wp) full spectrum of the padded image */
    fftwf_complex *u1;     /* (L, ...) full spectra of first-order moduli
                              of one scale */
    fftwf_complex *band;   /* (L, ...) band-passed, sub-sampled spectra */
    fftwf_complex *z;      /* (L, ...) the same back in space */
    float *re;             /* (L, ...) real signals in space */
    fftwf_complex *half;   /* (L, ...) their half spectra */
    fftwf_complex *lo;     /* (hp, wp) >> J: one low-passed full spectrum */
    fftwf_complex *lo_half;/* (spectral channels, ...) their Hermitian
                              parts */
    float *lo_re;          /* (spectral channels, (hp, wp) >> J) the same in
                              space */
};

/* Plan creation in FFTW is not thread-safe; execution is. */
static pthread_mutex_t od__fftw_plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* How many resolutions of psi_j the transform uses: psi_j is applied at
 * resolution 0 (first order) and at the resolution 2^-j1 of every j1 < j
 * that can start a second-order path (j1 <= J - 2). */
static int od__psi_levels(int j, int J)
{
    int cap = J - 1 > 1 ? J - 1 : 1;
    return j + 1 < cap ? j + 1 : cap;
}

int od_scatter_channels(const od_scatter *s) { return s->channels; }
int od_scatter_out_height(const od_scatter *s) { return s->oh; }
int od_scatter_out_width(const od_scatter *s) { return s->ow; }
int od_scatter_padded_height(const od_scatter *s) { return s->hp; }
int od_scatter_padded_width(const od_scatter *s) { return s->wp; }

/* ---- Filter bank -------------------------------------------------------- */

/* g (hp, wp), complex as (re, im) pairs: the Gabor function
 *   exp(-u^T A u + i xi (u0 cos theta + u1 sin theta)) / (2 pi sigma^2 / slant)
 * with A = R diag(1, slant^2) R^T / (2 sigma^2), R the rotation by theta,
 * summed over the periodic images of u = (row, col) in 5 x 5 periods. */
static void od__gabor(int hp, int wp, double sigma, double theta, double xi,
                      double slant, double *g)
{
    double c = cos(theta), sn = sin(theta);
    double inv = 1.0 / (2.0 * sigma * sigma);
    double a00 = (c * c + sn * sn * slant * slant) * inv;
    double a01 = c * sn * (1.0 - slant * slant) * inv;
    double a11 = (sn * sn + c * c * slant * slant) * inv;
    double norm = 2.0 * OD__SCATTER_PI_NORM * sigma * sigma / slant;

    for (int m = 0; m < hp; m++)
        for (int n = 0; n < wp; n++) {
            double re = 0.0, im = 0.0;
            for (int ex = -OD__SCATTER_PERIODS; ex <= OD__SCATTER_PERIODS;
                 ex++)
                for (int ey = -OD__SCATTER_PERIODS;
                     ey <= OD__SCATTER_PERIODS; ey++) {
                    double x = m + ex * hp, y = n + ey * wp;
                    double mag = exp(-(a00 * x * x + 2.0 * a01 * x * y +
                                       a11 * y * y));
                    double ph = xi * (x * c + y * sn);
                    re += mag * cos(ph);
                    im += mag * sin(ph);
                }
            g[2 * (m * wp + n)] = re / norm;
            g[2 * (m * wp + n) + 1] = im / norm;
        }
}

/* out (hp, wp) = Re DFT(g), g (hp, wp) complex, in double by two passes of
 * direct sums (the sizes are small and this runs once per filter). */
static od_status od__dft_real(int hp, int wp, const double *g, float *out)
{
    double *t = malloc((size_t)hp * wp * 2 * sizeof *t);
    if (!t)
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the filter bank");

    /* Along each row: t[m][l] = sum_n g[m][n] e^{-2 pi i l n / wp}. */
    for (int m = 0; m < hp; m++)
        for (int l = 0; l < wp; l++) {
            double re = 0.0, im = 0.0;
            for (int n = 0; n < wp; n++) {
                double a = -2.0 * M_PI * (double)((long)l * n % wp) / wp;
                double gr = g[2 * (m * wp + n)], gi = g[2 * (m * wp + n) + 1];
                re += gr * cos(a) - gi * sin(a);
                im += gr * sin(a) + gi * cos(a);
            }
            t[2 * (m * wp + l)] = re;
            t[2 * (m * wp + l) + 1] = im;
        }
    /* Along the rows; only the real part is kept. */
    for (int k = 0; k < hp; k++)
        for (int l = 0; l < wp; l++) {
            double re = 0.0;
            for (int m = 0; m < hp; m++) {
                double a = -2.0 * M_PI * (double)((long)k * m % hp) / hp;
                re += t[2 * (m * wp + l)] * cos(a) -
                      t[2 * (m * wp + l) + 1] * sin(a);
            }
            out[k * wp + l] = (float)re;
        }
    free(t);
    return OD_OK;
}

/* The filter f (hp, wp) at resolution 2^-res, into out (hp >> res,
 * wp >> res): frequencies from hp / 2^(res+1) up to hp - hp / 2^res +
 * hp / 2^(res+1) (exclusive) are dropped (rows, then columns alike), and
 * the rest is folded by summing the 2^res x 2^res aliases. */
static void od__periodize(const float *f, int hp, int wp, int res, float *out)
{
    int k = 1 << res, ro = hp >> res, co = wp >> res;
    int start_r = (int)floor(hp / (double)(2 * k));
    int len_r = hp - ro;
    int start_c = (int)floor(wp / (double)(2 * k));
    int len_c = wp - co;

    for (int a = 0; a < ro; a++)
        for (int b = 0; b < co; b++) {
            double sum = 0.0;
            for (int i = 0; i < k; i++) {
                int r = a + i * ro;
                if (r >= start_r && r < start_r + len_r)
                    continue;
                for (int jj = 0; jj < k; jj++) {
                    int c = b + jj * co;
                    if (c >= start_c && c < start_c + len_c)
                        continue;
                    sum += f[r * wp + c];
                }
            }
            out[a * co + b] = (float)sum;
        }
}

/* Fill levels[0 .. nlevels) with the periodisations of the filter whose
 * spatial form is g (hp, wp, complex). */
static od_status od__filter_levels(int hp, int wp, const double *g,
                                   int nlevels, float **levels)
{
    float *full = malloc((size_t)hp * wp * sizeof *full);
    if (!full)
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the filter bank");
    od_status st = od__dft_real(hp, wp, g, full);
    for (int r = 0; st == OD_OK && r < nlevels; r++) {
        size_t n = (size_t)(hp >> r) * (size_t)(wp >> r);
        levels[r] = od_aligned_alloc(n * sizeof *levels[r]);
        if (!levels[r]) {
            st = od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                         "the filter bank");
            break;
        }
        od__periodize(full, hp, wp, r, levels[r]);
    }
    free(full);
    return st;
}

/* psi_{j,t}: the Gabor function of the band minus its envelope times the
 * constant that gives it zero sum (a Morlet wavelet), per level. */
static od_status od__build_psi(od_scatter *s, int j, int t, float **levels)
{
    int hp = s->hp, wp = s->wp;
    size_t n = (size_t)hp * wp;
    double *wave = malloc(2 * n * sizeof *wave);
    double *env = malloc(2 * n * sizeof *env);
    if (!wave || !env) {
        free(wave);
        free(env);
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the filter bank");
    }
    double sigma = 0.8 * ldexp(1.0, j);
    double theta = (double)(s->L - s->L / 2 - 1 - t) * M_PI / s->L;
    double xi = 0.75 * M_PI / ldexp(1.0, j);
    double slant = 4.0 / s->L;
    od__gabor(hp, wp, sigma, theta, xi, slant, wave);
    od__gabor(hp, wp, sigma, theta, 0.0, slant, env);

    /* K = sum(wave) / sum(env), complex over real; wave - K env. */
    double swr = 0.0, swi = 0.0, se = 0.0;
    for (size_t i = 0; i < n; i++) {
        swr += wave[2 * i];
        swi += wave[2 * i + 1];
        se += env[2 * i];
    }
    double kr = swr / se, ki = swi / se;
    for (size_t i = 0; i < n; i++) {
        double er = env[2 * i], ei = env[2 * i + 1];
        wave[2 * i] -= kr * er - ki * ei;
        wave[2 * i + 1] -= kr * ei + ki * er;
    }
    free(env);
    od_status st = od__filter_levels(hp, wp, wave,
                                     od__psi_levels(j, s->J), levels);
    free(wave);
    return st;
}

static od_status od__build_phi(od_scatter *s)
{
    size_t n = (size_t)s->hp * s->wp;
    double *g = malloc(2 * n * sizeof *g);
    if (!g)
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the filter bank");
    od__gabor(s->hp, s->wp, 0.8 * ldexp(1.0, s->J - 1), 0.0, 0.0, 1.0, g);
    od_status st = od__filter_levels(s->hp, s->wp, g, s->J, s->phi);
    free(g);
    return st;
}

/* Moduli of resolution 2^-j go straight to the output through lowmat[j]
 * unless their spectrum starts second-order paths: every resolution but
 * 0 when J > 1 (second order), and J - 1 (first order). */
static int od__uses_lowmat(int j, int J)
{
    return j > 0 || J == 1;
}

/* lowmat[j][o][i] = Re(phi_j(k p_o - i)): the low-pass filter at resolution
 * 2^-j in space (the inverse DFT of its spectrum, periodic), where p_o is
 * output pixel o's position on the grid of resolution 2^-J, after the
 * dropped border, and k = 2^(J - j). It equals the Fourier-domain route
 * (product with phi, fold to 2^-J, inverse, real part) on any real
 * signal. */
static od_status od__build_lowmat(od_scatter *s, int j)
{
    int n = s->hp >> j, m = s->wp >> j, k = 1 << (s->J - j);
    const float *f = s->phi[j];
    double *sp = malloc((size_t)n * m * sizeof *sp);
    size_t plane = (size_t)s->oh * s->ow;
    s->lowmat[j] = od_aligned_alloc(plane * n * m * sizeof(float));
    if (!sp || !s->lowmat[j]) {
        free(sp);
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the low-pass matrices");
    }

    /* The real part of the inverse DFT, by direct sums in double. */
    for (int u = 0; u < n; u++)
        for (int v = 0; v < m; v++) {
            double sum = 0.0;
            for (int a = 0; a < n; a++)
                for (int b = 0; b < m; b++)
                    sum += f[a * m + b] *
                           cos(2.0 * M_PI * ((double)((long)a * u % n) / n +
                                             (double)((long)b * v % m) / m));
            sp[u * m + v] = sum / ((double)n * m);
        }

    float *p = s->lowmat[j];
    for (int a = 0; a < s->oh; a++)
        for (int b = 0; b < s->ow; b++) {
            int pr = k * (a + 1), pc = k * (b + 1);
            for (int r = 0; r < n; r++)
                for (int c = 0; c < m; c++)
                    *p++ = (float)sp[((pr - r) % n + n) % n * m +
                                     ((pc - c) % m + m) % m];
        }
    free(sp);
    return OD_OK;
}

const float *od_scatter_filter(const od_scatter *s, int which, int res,
                               int *rows, int *cols)
{
    OD_ASSERT(s);
    const float *f = NULL;
    if (which == -1) {
        if (res >= 0 && res < s->J)
            f = s->phi[res];
    } else if (which >= 0 && which < s->J * s->L) {
        if (res >= 0 && res < od__psi_levels(which / s->L, s->J))
            f = s->psi[which][res];
    }
    if (f) {
        if (rows)
            *rows = s->hp >> res;
        if (cols)
            *cols = s->wp >> res;
    }
    return f;
}

/* ---- Set-up -------------------------------------------------------------- */

void od_scatter_destroy(od_scatter *s)
{
    if (!s)
        return;
    if (s->psi) {
        for (int n = 0; n < s->J * s->L; n++) {
            if (!s->psi[n])
                continue;
            for (int r = 0; r < od__psi_levels(n / s->L, s->J); r++)
                od_aligned_free(s->psi[n][r]);
            free(s->psi[n]);
        }
        free(s->psi);
    }
    if (s->phi) {
        for (int r = 0; r < s->J; r++)
            od_aligned_free(s->phi[r]);
        free(s->phi);
    }
    if (s->lowmat) {
        for (int r = 0; r < s->J; r++)
            od_aligned_free(s->lowmat[r]);
        free(s->lowmat);
    }
    pthread_mutex_lock(&od__fftw_plan_lock);
    if (s->image_r2c)
        fftwf_destroy_plan(s->image_r2c);
    for (int j = 0; j < s->J; j++) {
        if (s->inv && s->inv[j])
            fftwf_destroy_plan(s->inv[j]);
        if (s->r2c && s->r2c[j])
            fftwf_destroy_plan(s->r2c[j]);
    }
    if (s->out_c2r)
        fftwf_destroy_plan(s->out_c2r);
    pthread_mutex_unlock(&od__fftw_plan_lock);
    free(s->inv);
    free(s->r2c);
    free(s);
}

/* The plans, made on buffers from fftwf_malloc so that any work buffer
 * (also from fftwf_malloc) has the alignment they assume. FFTW_ESTIMATE:
 * the plan, and so every result, is the same from run to run. */
static od_status od__make_plans(od_scatter *s)
{
    int L = s->L, C = s->spectral_channels;
    size_t n = (size_t)s->hp * s->wp * L;
    size_t nlo = (size_t)(s->hp >> s->J) * (s->wp >> s->J) * C;
    fftwf_complex *a = fftwf_malloc((n > nlo ? n : nlo) * sizeof *a);
    fftwf_complex *b = fftwf_malloc(n * sizeof *b);
    float *re = fftwf_malloc((n > nlo ? n : nlo) * sizeof *re);
    if (!a || !b || !re) {
        fftwf_free(a);
        fftwf_free(b);
        fftwf_free(re);
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory for "
                       "the FFT plans");
    }

    pthread_mutex_lock(&od__fftw_plan_lock);
    s->image_r2c = fftwf_plan_dft_r2c_2d(s->hp, s->wp, re, a, FFTW_ESTIMATE);
    int ok = s->image_r2c != NULL;
    for (int j = 0; ok && j < s->J; j++) {
        int dims[2] = {s->hp >> j, s->wp >> j};
        int full = dims[0] * dims[1], half = dims[0] * (dims[1] / 2 + 1);
        s->inv[j] = fftwf_plan_many_dft(2, dims, L, a, NULL, 1, full, b,
                                        NULL, 1, full, FFTW_BACKWARD,
                                        FFTW_ESTIMATE);
        s->r2c[j] = fftwf_plan_many_dft_r2c(2, dims, L, re, NULL, 1, full,
                                            a, NULL, 1, half, FFTW_ESTIMATE);
        ok = s->inv[j] && s->r2c[j];
    }
    if (ok) {
        int dims[2] = {s->hp >> s->J, s->wp >> s->J};
        int full = dims[0] * dims[1], half = dims[0] * (dims[1] / 2 + 1);
        s->out_c2r = fftwf_plan_many_dft_c2r(2, dims, C, a, NULL, 1, half,
                                             re, NULL, 1, full,
                                             FFTW_ESTIMATE);
        ok = s->out_c2r != NULL;
    }
    pthread_mutex_unlock(&od__fftw_plan_lock);
    fftwf_free(a);
    fftwf_free(b);
    fftwf_free(re);
    if (!ok)
        return od_fail(OD_ERR_UNSUPPORTED, "scattering: FFTW made no plan "
                       "for %dx%d images", s->hp, s->wp);
    return OD_OK;
}


od_status od_scatter_create(int height, int width, int J, int L,
                            od_scatter **out)
{
    OD_ASSERT(out);
    *out = NULL;
    if (J < 1 || J > 8 || L < 1 || L > 64)
        return od_fail(OD_ERR_INVALID, "scattering with J = %d, L = %d: "
                       "J must lie in 1..8 and L in 1..64", J, L);
    int step = 1 << J;
    if (height < step || width < step)
        return od_fail(OD_ERR_INVALID, "scattering: a %dx%d image is smaller "
                       "than 2^J = %d; use a smaller J", height, width, step);
    int hp = ((height + step) / step + 1) * step;
    int wp = ((width + step) / step + 1) * step;
    /* One reflection must cover the padding on each side. */
    if ((hp - height + 1) / 2 > height - 1 || (wp - width + 1) / 2 > width - 1)
        return od_fail(OD_ERR_INVALID, "scattering: a %dx%d image is too "
                       "small to pad by reflection to %dx%d; use a smaller "
                       "J", height, width, hp, wp);

    od_scatter *s = calloc(1, sizeof *s);
    if (!s)
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory");
    s->h = height;
    s->w = width;
    s->J = J;
    s->L = L;
    s->hp = hp;
    s->wp = wp;
    s->top = (hp - height) / 2;
    s->left = (wp - width) / 2;
    s->oh = hp / step - 2;
    s->ow = wp / step - 2;
    s->channels = 1 + J * L + L * L * J * (J - 1) / 2;
    s->spectral_channels = 1 + (J - 1) * L;

    od_status st = OD_OK;
    s->psi = calloc((size_t)J * L, sizeof *s->psi);
    s->phi = calloc((size_t)J, sizeof *s->phi);
    s->lowmat = calloc((size_t)J, sizeof *s->lowmat);
    s->r2c = calloc((size_t)J, sizeof *s->r2c);
    s->inv = calloc((size_t)J, sizeof *s->inv);
    if (!s->psi || !s->phi || !s->lowmat || !s->r2c || !s->inv)
        st = od_fail(OD_ERR_NOMEM, "scattering: out of host memory");
    for (int n = 0; st == OD_OK && n < J * L; n++) {
        s->psi[n] = calloc((size_t)od__psi_levels(n / L, J),
                           sizeof *s->psi[n]);
        if (!s->psi[n])
            st = od_fail(OD_ERR_NOMEM, "scattering: out of host memory");
        else
            st = od__build_psi(s, n / L, n % L, s->psi[n]);
    }
    if (st == OD_OK)
        st = od__build_phi(s);
    for (int j = 0; st == OD_OK && j < J; j++)
        if (od__uses_lowmat(j, J))
            st = od__build_lowmat(s, j);
    if (st == OD_OK)
        st = od__make_plans(s);
    if (st != OD_OK) {
        od_scatter_destroy(s);
        return st;
    }
    *out = s;
    return OD_OK;
}

od_status od_scatter_work_create(const od_scatter *s, od_scatter_work **out)
{
    OD_ASSERT(s && out);
    *out = NULL;
    od_scatter_work *w = calloc(1, sizeof *w);
    if (!w)
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory");
    size_t full = (size_t)s->hp * s->wp, batch = full * s->L;
    size_t low = (size_t)(s->hp >> s->J) * (s->wp >> s->J) *
                 s->spectral_channels;
    size_t c = sizeof(fftwf_complex);
    w->u0 = fftwf_malloc(full * c);
    w->u1 = fftwf_malloc(batch * c);
    w->band = fftwf_malloc(batch * c);
    w->z = fftwf_malloc(batch * c);
    w->re = fftwf_malloc(batch * sizeof(float));
    w->half = fftwf_malloc(batch * c);
    w->lo = fftwf_malloc(low / s->spectral_channels * c);
    w->lo_half = fftwf_malloc(low * c);
    w->lo_re = fftwf_malloc(low * sizeof(float));
    if (!w->u0 || !w->u1 || !w->band || !w->z || !w->re ||
        !w->half || !w->lo || !w->lo_half || !w->lo_re) {
        od_scatter_work_destroy(w);
        return od_fail(OD_ERR_NOMEM, "scattering: out of host memory");
    }
    *out = w;
    return OD_OK;
}

void od_scatter_work_destroy(od_scatter_work *w)
{
    if (!w)
        return;
    fftwf_free(w->u0);
    fftwf_free(w->u1);
    fftwf_free(w->band);
    fftwf_free(w->z);
    fftwf_free(w->re);
    fftwf_free(w->half);
    fftwf_free(w->lo);
    fftwf_free(w->lo_half);
    fftwf_free(w->lo_re);
    free(w);
}

/* ---- The transform ------------------------------------------------------- */

/* out (rows / k, cols / k) = the spectrum of (x * f) sub-sampled by k in
 * space: the mean of the k x k aliases of the product x f, where x and f
 * are (rows, cols) spectra (f real). Row r and column c of the product land
 * on row r mod rows / k and column c mod cols / k. */
static void od__mul_fold(const fftwf_complex *x, const float *f, int rows,
                         int cols, int k, fftwf_complex *out)
{
    int ro = rows / k, co = cols / k;
    float scale = 1.0f / (float)(k * k);
    float *o = (float *)out;
    memset(o, 0, (size_t)ro * co * 2 * sizeof *o);
    for (int r = 0; r < rows; r++) {
        float *orow = o + (size_t)(r % ro) * co * 2;
        for (int jj = 0; jj < k; jj++) {
            size_t base = (size_t)r * cols + (size_t)jj * co;
            const float *xs = (const float *)(x + base);
            const float *fs = f + base;
            for (int b = 0; b < co; b++) {
                orow[2 * b] += xs[2 * b] * fs[b];
                orow[2 * b + 1] += xs[2 * b + 1] * fs[b];
            }
        }
    }
    if (k > 1)
        for (size_t i = 0; i < (size_t)ro * co * 2; i++)
            o[i] *= scale;
}

/* full (rows, cols) = the whole spectrum of a real signal from its half
 * (rows, cols / 2 + 1), by X[-u] = conj(X[u]). */
static void od__expand(const fftwf_complex *half, int rows, int cols,
                       fftwf_complex *full)
{
    int hc = cols / 2 + 1;
    for (int a = 0; a < rows; a++) {
        const fftwf_complex *h = half + (size_t)a * hc;
        const fftwf_complex *m = half + (size_t)((rows - a) % rows) * hc;
        fftwf_complex *f = full + (size_t)a * cols;
        for (int b = 0; b < hc; b++) {
            f[b][0] = h[b][0];
            f[b][1] = h[b][1];
        }
        for (int b = hc; b < cols; b++) {
            f[b][0] = m[cols - b][0];
            f[b][1] = -m[cols - b][1];
        }
    }
}

/* Channel ch's low-pass spectrum: u (full spectrum at resolution 2^-res)
 * times phi, sub-sampled to resolution 2^-J, kept as its Hermitian part
 * (Y[u] + conj(Y[-u])) / 2 in w->lo_half. The channel is the real part of
 * the inverse of Y, which is the inverse of that Hermitian part, so one
 * batch of half-spectrum inverses finishes all such channels. */
static void od__lowpass(const od_scatter *s, od_scatter_work *w,
                        const fftwf_complex *u, int res, int ch)
{
    int rows = s->hp >> res, cols = s->wp >> res;
    int ro = s->hp >> s->J, co = s->wp >> s->J, hc = co / 2 + 1;
    od__mul_fold(u, s->phi[res], rows, cols, 1 << (s->J - res), w->lo);
    fftwf_complex *h = w->lo_half + (size_t)ch * ro * hc;
    for (int a = 0; a < ro; a++) {
        const fftwf_complex *y = w->lo + (size_t)a * co;
        const fftwf_complex *m = w->lo + (size_t)((ro - a) % ro) * co;
        for (int b = 0; b < hc; b++) {
            int mb = (co - b) % co;
            h[a * hc + b][0] = 0.5f * (y[b][0] + m[mb][0]);
            h[a * hc + b][1] = 0.5f * (y[b][1] - m[mb][1]);
        }
    }
}

/* w->re (L, (hp >> j) (wp >> j)) = for each angle t, |x * psi_{j,t}|
 * sub-sampled to resolution 2^-j, where x is a full spectrum at
 * resolution 2^-res (res <= j) and psi's filters are taken at that
 * resolution. */
static void od__band(const od_scatter *s, od_scatter_work *w,
                     const fftwf_complex *x, int res, int j)
{
    int rows = s->hp >> res, cols = s->wp >> res;
    size_t n = (size_t)(s->hp >> j) * (s->wp >> j);
    for (int t = 0; t < s->L; t++)
        od__mul_fold(x, s->psi[j * s->L + t][res], rows, cols, 1 << (j - res),
                     w->band + t * n);
    fftwf_execute_dft(s->inv[j], w->band, w->z);

    /* The modulus, with the inverse's 1 / (rows cols). */
    float inv = 1.0f / (float)n;
    for (size_t i = 0; i < n * s->L; i++) {
        float re = w->z[i][0], im = w->z[i][1];
        w->re[i] = sqrtf(re * re + im * im) * inv;
    }
}

/* dst (L, full spectra at resolution 2^-j) = the spectra of the L signals
 * in w->re. */
static void od__spectra(const od_scatter *s, od_scatter_work *w, int j,
                        fftwf_complex *dst)
{
    int ro = s->hp >> j, co = s->wp >> j;
    size_t n = (size_t)ro * co, nh = (size_t)ro * (co / 2 + 1);
    fftwf_execute_dft_r2c(s->r2c[j], w->re, w->half);
    for (int t = 0; t < s->L; t++)
        od__expand(w->half + t * nh, ro, co, dst + t * n);
}

/* out (L channels of (oh, ow)) = the low-pass outputs of the L signals in
 * w->re, at resolution 2^-j, through lowmat[j]. */
static void od__lowpass_space(const od_scatter *s, od_scatter_work *w, int j,
                              float *out)
{
    int k = (s->hp >> j) * (s->wp >> j), plane = s->oh * s->ow;
    OD_ASSERT(s->lowmat[j]);
    od_gemm(NULL, 0, 1, s->L, plane, k, 1.0f, w->re, k, s->lowmat[j], k,
            0.0f, out, plane);
}

/* Reflection about the first and last pixel (no repeat): -1 -> 1,
 * n -> n - 2. Valid for i in (-n, 2n - 1). */
static int od__reflect(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * (n - 1) - i;
    return i;
}

void od_scatter_apply(const od_scatter *s, od_scatter_work *w,
                      const float *image, float *out)
{
    OD_ASSERT(s && w && image && out);
    int L = s->L;

    /* Pad by reflection and take the spectrum. */
    for (int r = 0; r < s->hp; r++) {
        const float *src = image + (size_t)od__reflect(r - s->top, s->h) *
                                       s->w;
        for (int c = 0; c < s->wp; c++)
            w->re[r * s->wp + c] = src[od__reflect(c - s->left, s->w)];
    }
    fftwf_execute_dft_r2c(s->image_r2c, w->re, w->half);
    od__expand(w->half, s->hp, s->wp, w->u0);

    /* Order 0 in channel 0, order 1 in channels 1 .. J L, order 2 after.
     * Moduli whose spectrum starts second-order paths are low-passed in
     * the Fourier domain (channels 0 .. (J - 1) L, finished together at
     * the end); the others go straight to the output through lowmat. */
    size_t plane = (size_t)s->oh * s->ow;
    od__lowpass(s, w, w->u0, 0, 0);
    float *out2 = out + (size_t)(1 + s->J * L) * plane;
    for (int j1 = 0; j1 < s->J; j1++) {
        size_t n1 = (size_t)(s->hp >> j1) * (s->wp >> j1);
        od__band(s, w, w->u0, 0, j1);
        if (j1 == s->J - 1) {
            od__lowpass_space(s, w, j1, out + (size_t)(1 + j1 * L) * plane);
            continue;
        }
        od__spectra(s, w, j1, w->u1);
        for (int t1 = 0; t1 < L; t1++) {
            const fftwf_complex *u1 = w->u1 + t1 * n1;
            od__lowpass(s, w, u1, j1, 1 + j1 * L + t1);
            for (int j2 = j1 + 1; j2 < s->J; j2++) {
                od__band(s, w, u1, j1, j2);
                od__lowpass_space(s, w, j2, out2);
                out2 += (size_t)L * plane;
            }
        }
    }
    OD_ASSERT(out2 == out + (size_t)s->channels * plane);

    /* The Fourier-domain channels back to space; drop the border row and
     * column on each side, and apply the inverse's 1 / (ro co). */
    fftwf_execute_dft_c2r(s->out_c2r, w->lo_half, w->lo_re);
    int ro = s->hp >> s->J, co = s->wp >> s->J;
    float inv = 1.0f / (float)(ro * co);
    for (int c = 0; c < s->spectral_channels; c++) {
        const float *src = w->lo_re + (size_t)c * ro * co;
        float *dst = out + (size_t)c * plane;
        for (int a = 0; a < s->oh; a++)
            for (int b = 0; b < s->ow; b++)
                dst[a * s->ow + b] = src[(a + 1) * co + (b + 1)] * inv;
    }
}

void od_scatter_group_norm(float *x, int channels, int height, int width,
                           int groups, float eps)
{
    OD_ASSERT(x && groups > 0 && channels % groups == 0);
    size_t n = (size_t)(channels / groups) * height * width;
    for (int g = 0; g < groups; g++) {
        float *v = x + (size_t)g * n;
        double sum = 0.0, sq = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += v[i];
        double mean = sum / (double)n;
        for (size_t i = 0; i < n; i++) {
            double d = v[i] - mean;
            sq += d * d;
        }
        double inv = 1.0 / sqrt(sq / (double)n + (double)eps);
        for (size_t i = 0; i < n; i++)
            v[i] = (float)((v[i] - mean) * inv);
    }
}

/* ---- The fmnist-scatter workload ---------------------------------------- */

/* Images per task of the feature extraction. */
#define OD__SCATTER_CHUNK 256

typedef struct od__scatter_job {
    const od_scatter *s;
    od_scatter_work **work;   /* one per pool thread */
    const od_dataset *src;    /* (n, 1, 28, 28) */
    od_dataset *dst;          /* (n, 81, 7, 7) */
    atomic_int done;          /* images finished, for progress */
    int total;                /* images of both splits */
    int offset;               /* images finished before this split */
    int tty;
    const char *label;
} od__scatter_job;

static void od__scatter_task(void *ctx, int task, int worker)
{
    od__scatter_job *job = ctx;
    int i0 = task * OD__SCATTER_CHUNK;
    int i1 = i0 + OD__SCATTER_CHUNK < job->src->n ? i0 + OD__SCATTER_CHUNK
                                                  : job->src->n;
    size_t in = job->src->sample_size, out = job->dst->sample_size;
    for (int i = i0; i < i1; i++) {
        float *f = job->dst->x + (size_t)i * out;
        od_scatter_apply(job->s, job->work[worker], job->src->x + i * in, f);
        od_scatter_group_norm(f, OD_SCATTER_FMNIST_CHANNELS,
                              OD_SCATTER_FMNIST_SIDE, OD_SCATTER_FMNIST_SIDE,
                              OD_SCATTER_FMNIST_GROUPS, OD_SCATTER_NORM_EPS);
    }
    int done = atomic_fetch_add(&job->done, i1 - i0) + (i1 - i0);
    /* A progress line on a terminal, redrawn about every 4 %. */
    int before = (job->offset + done - (i1 - i0)) * 25 / job->total;
    int now = (job->offset + done) * 25 / job->total;
    if (job->tty && now != before)
        fprintf(stderr, "\rscattering features (%s): %3d %%", job->label,
                (int)(100.0 * (job->offset + done) / job->total));
}

/* dst = the normalised features of every image of src. */
static od_status od__scatter_split(od__scatter_job *job, od_pool *pool,
                                   const od_dataset *src, od_dataset *dst,
                                   const char *name)
{
    const int dims[3] = {OD_SCATTER_FMNIST_CHANNELS, OD_SCATTER_FMNIST_SIDE,
                         OD_SCATTER_FMNIST_SIDE};
    OD_TRY(od_dataset_alloc(dst, name, src->n, 3, dims, 1, OD_FMNIST_CLASSES,
                            0));
    od_status st = od_dataset_set_class_names(dst, od_fmnist_class_names);
    if (st != OD_OK) {
        od_dataset_free(dst);
        return st;
    }
    memcpy(dst->y, src->y, (size_t)src->n * sizeof *dst->y);

    job->src = src;
    job->dst = dst;
    atomic_store(&job->done, 0);
    int ntasks = (src->n + OD__SCATTER_CHUNK - 1) / OD__SCATTER_CHUNK;
    od_pool_run(pool, ntasks, od__scatter_task, job);
    job->offset += src->n;
    return OD_OK;
}

od_status od_fmnist_scatter_load(const od_workload_opts *opts,
                                 od_dataset *train, od_dataset *test)
{
    OD_ASSERT(opts && train && test && train != test);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);

    od_dataset raw_train, raw_test;
    OD_TRY(od_fmnist_load(opts->data_dir, opts->train_subset,
                          opts->test_subset, &raw_train, &raw_test));

    /* Host threads: the run's, or the machine's cores; at most 8. */
    long ncpu = opts->threads > 0 ? opts->threads
                                  : sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;

    od_scatter *s = NULL;
    od_pool *pool = NULL;
    od_scatter_work *work[8] = {0};
    od_status st = od_scatter_create(OD_FMNIST_ROWS, OD_FMNIST_COLS,
                                     OD_SCATTER_FMNIST_J,
                                     OD_SCATTER_FMNIST_L, &s);
    if (st == OD_OK) {
        OD_ASSERT(od_scatter_channels(s) == OD_SCATTER_FMNIST_CHANNELS);
        OD_ASSERT(od_scatter_out_height(s) == OD_SCATTER_FMNIST_SIDE);
        pool = nthreads > 1 ? od_pool_create(nthreads, NULL) : NULL;
        if (nthreads > 1 && !pool)
            nthreads = 1;
    }
    for (int t = 0; st == OD_OK && t < nthreads; t++)
        st = od_scatter_work_create(s, &work[t]);

    if (st == OD_OK) {
        od__scatter_job job = {
            .s = s, .work = work, .total = raw_train.n + raw_test.n,
            .tty = !opts->quiet && isatty(STDERR_FILENO),
            .label = "fmnist-scatter",
        };
        uint64_t t0 = od_now_ns();
        st = od__scatter_split(&job, pool, &raw_train, train,
                               "fashion-mnist-scatter/train");
        if (st == OD_OK)
            st = od__scatter_split(&job, pool, &raw_test, test,
                                   "fashion-mnist-scatter/test");
        if (job.tty && job.total > 0)
            fprintf(stderr, "\rscattering features (%s): %d images in "
                    "%.1f s on %d thread%s\n", job.label, job.total,
                    (double)(od_now_ns() - t0) * 1e-9, nthreads,
                    nthreads == 1 ? "" : "s");
    }

    for (int t = 0; t < nthreads; t++)
        od_scatter_work_destroy(work[t]);
    od_pool_destroy(pool);
    od_scatter_destroy(s);
    od_dataset_free(&raw_train);
    od_dataset_free(&raw_test);
    if (st != OD_OK) {
        od_dataset_free(train);
        od_dataset_free(test);
    }
    return st;
}

od_status od_fmnist_build_scatter_linear(od_ctx *ctx, od_model **out)
{
    OD_ASSERT(ctx && out);
    *out = NULL;
    od_model *m = NULL;
    OD_TRY(od_model_create(ctx, &m));
    int in = OD_SCATTER_FMNIST_CHANNELS * OD_SCATTER_FMNIST_SIDE *
             OD_SCATTER_FMNIST_SIDE;

    /* (N, 81, 7, 7) -> (N, 3969) -> (N, 10) */
    od_layer *l = NULL;
    od_status st = od_flatten_create("flatten", &l);
    if (st == OD_OK)
        st = od_model_add(m, l);
    l = NULL;
    if (st == OD_OK)
        st = od_linear_create(ctx, "fc", in, OD_FMNIST_CLASSES, 1, &l);
    if (st == OD_OK)
        st = od_model_add(m, l);
    if (st != OD_OK) {
        od_model_destroy(m);
        return st;
    }

    const int dims[4] = {1, OD_SCATTER_FMNIST_CHANNELS, OD_SCATTER_FMNIST_SIDE,
                         OD_SCATTER_FMNIST_SIDE};
    int out_ndim = 0, out_dims[OD_MAX_DIMS] = {0};
    OD_ASSERT(od_model_check_shape(m, 4, dims, &out_ndim, out_dims) == OD_OK);
    OD_ASSERT(out_ndim == 2 && out_dims[1] == OD_FMNIST_CLASSES);
    *out = m;
    return OD_OK;
}
