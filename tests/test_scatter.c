/* Tests of the scattering transform and the fmnist-scatter workload: the
 * Fourier-domain filter bank against the closed-form Fourier transform of
 * the same Gabor and Morlet functions, zero-mean band-pass filters, the
 * FFT pipeline against a direct spatial computation (periodic convolutions,
 * decimation, modulus) in double precision, invariance to a constant and
 * stability to a small translation, the output layout, the per-example
 * normalisation, and a short training on a few hundred images. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness/config.h"
#include "harness/run.h"
#include "workloads/fmnist.h"
#include "workloads/scatter.h"
#include "workloads/workload.h"

/* Deterministic uniform numbers in [0, 1). */
static double uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*state >> 11) * 0x1.0p-53;
}

/* ---- Closed form of the filters ---------------------------------------- */

/* The Fourier transform, at the angular frequency (w0, w1), of the Gabor
 * function exp(-u^T A u + i xi (u0 cos theta + u1 sin theta)) divided by
 * 2 x 3.1415 sigma^2 / slant, with A = R diag(1, slant^2) R^T / (2 sigma^2),
 * summed over the 2 pi periods of the sampled function (Poisson summation):
 *   (pi / 3.1415) exp(-(sigma^2 / 2) [(R^T d)_0^2 + (R^T d)_1^2 / slant^2])
 * with d = w - xi (cos theta, sin theta) - 2 pi p. */
static double gabor_hat(double w0, double w1, double sigma, double theta,
                        double xi, double slant)
{
    double c = cos(theta), s = sin(theta), sum = 0.0;
    for (int p = -4; p <= 4; p++)
        for (int q = -4; q <= 4; q++) {
            double d0 = w0 - xi * c - 2.0 * M_PI * p;
            double d1 = w1 - xi * s - 2.0 * M_PI * q;
            double r0 = c * d0 + s * d1, r1 = -s * d0 + c * d1;
            sum += exp(-0.5 * sigma * sigma *
                       (r0 * r0 + r1 * r1 / (slant * slant)));
        }
    return M_PI / 3.1415 * sum;
}

/* Morlet: the Gabor minus its envelope scaled to cancel at frequency 0. */
static double morlet_hat(double w0, double w1, double sigma, double theta,
                         double xi, double slant)
{
    double k = gabor_hat(0, 0, sigma, theta, xi, slant) /
               gabor_hat(0, 0, sigma, theta, 0, slant);
    return gabor_hat(w0, w1, sigma, theta, xi, slant) -
           k * gabor_hat(w0, w1, sigma, theta, 0, slant);
}

/* The signed frequency index (on the padded grid of n) that index a of a
 * filter at resolution 2^-res stands for: the low band kept by the crop. */
static int kept_freq(int a, int n, int res)
{
    int m = n >> res, start = n >> (res + 1);
    if (res == 0)
        return a;
    return a < start ? a : a - m;
}

/* Max |lib - closed form| / max |closed form| over every filter and level
 * that the transform keeps. */
static double filter_bank_error(int h, int w, int J, int L)
{
    od_scatter *s = NULL;
    assert_int_equal(od_scatter_create(h, w, J, L, &s), OD_OK);
    int hp = od_scatter_padded_height(s), wp = od_scatter_padded_width(s);
    double worst = 0.0;
    int levels_seen = 0;
    for (int which = -1; which < J * L; which++)
        for (int res = 0; res < J; res++) {
            int rows, cols;
            const float *f = od_scatter_filter(s, which, res, &rows, &cols);
            if (!f)
                continue;
            levels_seen++;
            assert_int_equal(rows, hp >> res);
            assert_int_equal(cols, wp >> res);
            double err = 0.0, peak = 0.0;
            for (int a = 0; a < rows; a++)
                for (int b = 0; b < cols; b++) {
                    double w0 = 2.0 * M_PI * kept_freq(a, hp, res) / hp;
                    double w1 = 2.0 * M_PI * kept_freq(b, wp, res) / wp;
                    double ref;
                    if (which < 0) {
                        ref = gabor_hat(w0, w1, 0.8 * ldexp(1, J - 1), 0, 0,
                                        1.0);
                    } else {
                        int j = which / L, t = which % L;
                        ref = morlet_hat(w0, w1, 0.8 * ldexp(1, j),
                                         (L - L / 2 - 1 - t) * M_PI / L,
                                         0.75 * M_PI / ldexp(1, j), 4.0 / L);
                    }
                    err = fmax(err, fabs(f[a * cols + b] - ref));
                    peak = fmax(peak, fabs(ref));
                }
            assert_true(peak > 0.5);
            worst = fmax(worst, err / peak);
        }
    /* phi at J levels, psi_j at min(j + 1, max(J - 1, 1)) levels each. */
    int expect = J;
    for (int j = 0; j < J; j++) {
        int cap = J - 1 > 1 ? J - 1 : 1;
        expect += L * (j + 1 < cap ? j + 1 : cap);
    }
    assert_int_equal(levels_seen, expect);
    od_scatter_destroy(s);
    return worst;
}

/* The filter bank (built in space, then a DFT) equals the closed form of
 * its Fourier transform to float precision, at every level kept. */
static void test_filters_closed_form(void **state)
{
    (void)state;
    double e1 = filter_bank_error(28, 28, 2, 8);
    double e2 = filter_bank_error(32, 20, 3, 4);
    print_message("filter bank vs closed form: %.2e (28x28, J 2, L 8), "
                  "%.2e (32x20, J 3, L 4)\n", e1, e2);
    assert_true(e1 < 1e-5);
    assert_true(e2 < 1e-5);
}

/* Band-pass filters have zero mean: their spectrum vanishes at 0, while
 * the low-pass passes a constant unchanged (up to kymatio's pi / 3.1415). */
static void test_band_pass_zero_mean(void **state)
{
    (void)state;
    od_scatter *s = NULL;
    assert_int_equal(od_scatter_create(28, 28, 2, 8, &s), OD_OK);
    for (int n = 0; n < 16; n++) {
        int rows, cols;
        const float *f = od_scatter_filter(s, n, 0, &rows, &cols);
        assert_non_null(f);
        float peak = 0.0f;
        for (int i = 0; i < rows * cols; i++)
            peak = fmaxf(peak, fabsf(f[i]));
        assert_true(peak > 0.5f);
        assert_true(fabsf(f[0]) < 1e-6f * peak);
    }
    const float *phi = od_scatter_filter(s, -1, 0, NULL, NULL);
    assert_float_equal(phi[0], M_PI / 3.1415, 1e-5);
    /* Levels the transform does not use are not kept. */
    assert_null(od_scatter_filter(s, 8, 1, NULL, NULL));
    assert_null(od_scatter_filter(s, -1, 2, NULL, NULL));
    assert_null(od_scatter_filter(s, 16, 0, NULL, NULL));
    od_scatter_destroy(s);
}

/* ---- Direct spatial reference ------------------------------------------ */

/* A filter in space, (n, m) complex: the inverse DFT of f (n, m), real. */
static double *spatial(const float *f, int n, int m)
{
    double *g = malloc((size_t)n * m * 2 * sizeof *g);
    assert_non_null(g);
    for (int u = 0; u < n; u++)
        for (int v = 0; v < m; v++) {
            double re = 0.0, im = 0.0;
            for (int a = 0; a < n; a++)
                for (int b = 0; b < m; b++) {
                    double ph = 2.0 * M_PI * ((double)a * u / n +
                                              (double)b * v / m);
                    re += f[a * m + b] * cos(ph);
                    im += f[a * m + b] * sin(ph);
                }
            g[2 * (u * m + v)] = re / (n * m);
            g[2 * (u * m + v) + 1] = im / (n * m);
        }
    return g;
}

/* Periodic convolution of x (n, m) real with g (n, m) complex at (u, v). */
static void conv_at(const double *x, const double *g, int n, int m, int u,
                    int v, double *re, double *im)
{
    double sr = 0.0, si = 0.0;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < m; b++) {
            const double *k = g + 2 * (((u - a + n) % n) * m +
                                       (v - b + m) % m);
            sr += x[a * m + b] * k[0];
            si += x[a * m + b] * k[1];
        }
    *re = sr;
    *im = si;
}

/* y (n >> d, m >> d) = |x * g| sampled every 2^d pixels. */
static double *modulus_down(const double *x, const double *g, int n, int m,
                            int d)
{
    int no = n >> d, mo = m >> d;
    double *y = malloc((size_t)no * mo * sizeof *y);
    assert_non_null(y);
    for (int a = 0; a < no; a++)
        for (int b = 0; b < mo; b++) {
            double re, im;
            conv_at(x, g, n, m, a << d, b << d, &re, &im);
            y[a * mo + b] = sqrt(re * re + im * im);
        }
    return y;
}

/* One output channel (oh, ow): Re(x * phi) at every 2^d-th pixel, without
 * the first row and column (the unpadding). */
static void lowpass_out(const double *x, const double *phi, int n, int m,
                        int d, int oh, int ow, double *out)
{
    for (int a = 0; a < oh; a++)
        for (int b = 0; b < ow; b++) {
            double re, im;
            conv_at(x, phi, n, m, (a + 1) << d, (b + 1) << d, &re, &im);
            out[a * ow + b] = re;
        }
}

/* The whole transform computed in space, in double: reflection padding,
 * periodic convolutions with the bank's filters (brought to space by an
 * inverse DFT), decimation and modulus, in kymatio's order. */
static double *scatter_reference(const od_scatter *s, const float *img,
                                 int h, int w, int J, int L)
{
    int hp = od_scatter_padded_height(s), wp = od_scatter_padded_width(s);
    int oh = od_scatter_out_height(s), ow = od_scatter_out_width(s);
    int top = (hp - h) / 2, left = (wp - w) / 2;
    size_t plane = (size_t)oh * ow;
    double *out = calloc((size_t)od_scatter_channels(s) * plane, sizeof *out);
    double *xp = malloc((size_t)hp * wp * sizeof *xp);
    assert_non_null(out);
    assert_non_null(xp);
    for (int r = 0; r < hp; r++)
        for (int c = 0; c < wp; c++) {
            int sr = r - top, sc = c - left;
            sr = sr < 0 ? -sr : sr >= h ? 2 * (h - 1) - sr : sr;
            sc = sc < 0 ? -sc : sc >= w ? 2 * (w - 1) - sc : sc;
            xp[r * wp + c] = img[sr * w + sc];
        }

    double *phi[8] = {0};
    for (int r = 0; r < J; r++)
        phi[r] = spatial(od_scatter_filter(s, -1, r, NULL, NULL), hp >> r,
                         wp >> r);

    lowpass_out(xp, phi[0], hp, wp, J, oh, ow, out);
    double *o2 = out + (size_t)(1 + J * L) * plane;
    for (int n1 = 0; n1 < J * L; n1++) {
        int j1 = n1 / L;
        double *psi1 = spatial(od_scatter_filter(s, n1, 0, NULL, NULL), hp,
                               wp);
        double *u1 = modulus_down(xp, psi1, hp, wp, j1);
        int h1 = hp >> j1, w1 = wp >> j1;
        lowpass_out(u1, phi[j1], h1, w1, J - j1, oh, ow,
                    out + (size_t)(1 + n1) * plane);
        for (int n2 = 0; n2 < J * L; n2++) {
            int j2 = n2 / L;
            if (j2 <= j1)
                continue;
            double *psi2 = spatial(od_scatter_filter(s, n2, j1, NULL, NULL),
                                   h1, w1);
            double *u2 = modulus_down(u1, psi2, h1, w1, j2 - j1);
            lowpass_out(u2, phi[j2], hp >> j2, wp >> j2, J - j2, oh, ow, o2);
            o2 += plane;
            free(u2);
            free(psi2);
        }
        free(u1);
        free(psi1);
    }
    for (int r = 0; r < J; r++)
        free(phi[r]);
    free(xp);
    return out;
}

/* ||a - b|| / ||b|| over channels [c0, c1) of (C, plane) outputs. */
static double rel_residual(const float *a, const double *b, int c0, int c1,
                           size_t plane)
{
    double num = 0.0, den = 0.0;
    for (size_t i = (size_t)c0 * plane; i < (size_t)c1 * plane; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    assert_true(den > 0.0);
    return sqrt(num / den);
}

/* The FFT pipeline equals the direct spatial computation, order by order,
 * to a relative residual below 2e-5 (float FFTs of a few hundred points
 * round at about 1e-6). */
static void check_against_reference(int h, int w, int J, int L, uint64_t seed)
{
    od_scatter *s = NULL;
    od_scatter_work *wk = NULL;
    assert_int_equal(od_scatter_create(h, w, J, L, &s), OD_OK);
    assert_int_equal(od_scatter_work_create(s, &wk), OD_OK);
    float *img = malloc((size_t)h * w * sizeof *img);
    assert_non_null(img);
    for (int i = 0; i < h * w; i++)
        img[i] = (float)uniform(&seed);
    int C = od_scatter_channels(s);
    size_t plane = (size_t)od_scatter_out_height(s) * od_scatter_out_width(s);
    float *out = malloc((size_t)C * plane * sizeof *out);
    assert_non_null(out);
    od_scatter_apply(s, wk, img, out);
    double *ref = scatter_reference(s, img, h, w, J, L);

    int c1 = 1 + J * L;
    double r0 = rel_residual(out, ref, 0, 1, plane);
    double r1 = rel_residual(out, ref, 1, c1, plane);
    double r2 = rel_residual(out, ref, c1, C, plane);
    print_message("FFT vs spatial reference (%dx%d, J %d, L %d): order 0 "
                  "%.2e, order 1 %.2e, order 2 %.2e\n", h, w, J, L, r0, r1,
                  r2);
    assert_true(r0 < 2e-5);
    assert_true(r1 < 2e-5);
    assert_true(r2 < 2e-5);
    free(ref);
    free(out);
    free(img);
    od_scatter_work_destroy(wk);
    od_scatter_destroy(s);
}

static void test_fft_matches_spatial(void **state)
{
    (void)state;
    check_against_reference(13, 16, 2, 8, 11);  /* odd side: odd padding */
    check_against_reference(16, 16, 3, 4, 12);  /* psi at two resolutions */
}

/* ---- Properties --------------------------------------------------------- */

/* A constant image has no first- or second-order energy: band-pass filters
 * cancel it, and reflection padding keeps it constant (zero padding would
 * add edges). Order 0 passes the constant. */
static void test_constant_image(void **state)
{
    (void)state;
    od_scatter *s = NULL;
    od_scatter_work *wk = NULL;
    assert_int_equal(od_scatter_create(28, 28, 2, 8, &s), OD_OK);
    assert_int_equal(od_scatter_work_create(s, &wk), OD_OK);
    float img[28 * 28], out[81 * 49];
    for (int i = 0; i < 28 * 28; i++)
        img[i] = 0.7f;
    od_scatter_apply(s, wk, img, out);
    for (int i = 0; i < 49; i++)
        assert_float_equal(out[i], 0.7 * M_PI / 3.1415, 1e-5);
    float worst = 0.0f;
    for (int i = 49; i < 81 * 49; i++)
        worst = fmaxf(worst, fabsf(out[i]));
    print_message("constant image: largest order-1/2 value %.2e\n", worst);
    assert_true(worst < 1e-5f * 0.7f);
    od_scatter_work_destroy(wk);
    od_scatter_destroy(s);
}

/* 28x28 with J = 2, L = 8 gives 81 channels of 7x7, every value written
 * and nothing written past them. */
static void test_output_shape(void **state)
{
    (void)state;
    od_scatter *s = NULL;
    od_scatter_work *wk = NULL;
    assert_int_equal(od_scatter_create(28, 28, 2, 8, &s), OD_OK);
    assert_int_equal(od_scatter_channels(s), OD_SCATTER_FMNIST_CHANNELS);
    assert_int_equal(OD_SCATTER_FMNIST_CHANNELS, 1 + 2 * 8 + 64);
    assert_int_equal(od_scatter_out_height(s), 7);
    assert_int_equal(od_scatter_out_width(s), 7);
    assert_int_equal(od_scatter_padded_height(s), 36);
    assert_int_equal(od_scatter_work_create(s, &wk), OD_OK);

    enum { N = 81 * 49, GUARD = 64 };
    float img[28 * 28], out[N + GUARD];
    uint64_t seed = 3;
    for (int i = 0; i < 28 * 28; i++)
        img[i] = (float)uniform(&seed);
    for (int i = 0; i < N + GUARD; i++)
        out[i] = NAN;
    od_scatter_apply(s, wk, img, out);
    for (int i = 0; i < N; i++)
        assert_true(isfinite(out[i]));
    for (int i = N; i < N + GUARD; i++)
        assert_true(isnan(out[i]));
    /* Moduli are non-negative, and so are their low-passed values up to
     * the ringing of the cropped low-pass filter. */
    for (int c = 1; c < 81; c++) {
        double sum = 0.0;
        for (int i = 0; i < 49; i++)
            sum += out[c * 49 + i];
        assert_true(sum > 0.0);
    }
    od_scatter_work_destroy(wk);

    /* Other sizes: J = 3, L = 4 on 32x40 gives 1 + 12 + 48 channels of
     * 4x5; too small an image is refused. */
    od_scatter_destroy(s);
    assert_int_equal(od_scatter_create(32, 40, 3, 4, &s), OD_OK);
    assert_int_equal(od_scatter_channels(s), 61);
    assert_int_equal(od_scatter_out_height(s), 4);
    assert_int_equal(od_scatter_out_width(s), 5);
    od_scatter_destroy(s);
    s = NULL;
    assert_int_equal(od_scatter_create(3, 28, 2, 8, &s), OD_ERR_INVALID);
    assert_null(s);
    assert_int_equal(od_scatter_create(28, 28, 0, 8, &s), OD_ERR_INVALID);
}

/* A test picture (28x28), zero near the border, shifted by (dy, dx)
 * pixels: blobs, a sharp bar (across, or upright when `upright`) and a
 * patch of fine random texture, whose pixels a shift decorrelates. */
static void picture(float *img, int dy, int dx, uint64_t seed, int upright)
{
    memset(img, 0, 28 * 28 * sizeof *img);
    double cy[4], cx[4], amp[4], tex[16][16];
    for (int k = 0; k < 4; k++) {
        cy[k] = 9 + 10 * uniform(&seed);
        cx[k] = 9 + 10 * uniform(&seed);
        amp[k] = 0.5 + 0.5 * uniform(&seed);
    }
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++)
            tex[r][c] = uniform(&seed);
    for (int r = 4; r < 24; r++)
        for (int c = 4; c < 24; c++) {
            double v = 0.0;
            double y = r - dy, x = c - dx;
            for (int k = 0; k < 4; k++)
                v += amp[k] * exp(-((y - cy[k]) * (y - cy[k]) +
                                    (x - cx[k]) * (x - cx[k])) / 6.0);
            double along = upright ? y : x, across = upright ? x : y;
            if (across >= 12 && across < 15 && along >= 7 && along < 21)
                v += 1.0;   /* a sharp bar */
            if (y >= 6 && y < 22 && x >= 6 && x < 22)
                v += tex[(int)y - 6][(int)x - 6];
            img[r * 28 + c] = (float)v;
        }
}

static double rel_dist(const float *a, const float *b, int n)
{
    double num = 0.0, den = 0.0;
    for (int i = 0; i < n; i++) {
        num += (double)(a[i] - b[i]) * (a[i] - b[i]);
        den += (double)a[i] * a[i];
    }
    return sqrt(num / den);
}

/* A one-pixel translation moves the scattering features (orders 1 and 2)
 * much less than the pixels, while another picture moves them a lot. */
static void test_translation_stability(void **state)
{
    (void)state;
    od_scatter *s = NULL;
    od_scatter_work *wk = NULL;
    assert_int_equal(od_scatter_create(28, 28, 2, 8, &s), OD_OK);
    assert_int_equal(od_scatter_work_create(s, &wk), OD_OK);
    float x[784], xs[784], y[784];
    float sx[81 * 49], ss[81 * 49], sy[81 * 49];
    picture(x, 0, 0, 5, 0);
    picture(xs, 0, 1, 5, 0);
    picture(y, 0, 0, 6, 1);
    od_scatter_apply(s, wk, x, sx);
    od_scatter_apply(s, wk, xs, ss);
    od_scatter_apply(s, wk, y, sy);

    double img_shift = rel_dist(x, xs, 784);
    double feat_shift = rel_dist(sx + 49, ss + 49, 80 * 49);
    double feat_other = rel_dist(sx + 49, sy + 49, 80 * 49);
    print_message("1-pixel shift: image moves %.3f, features %.3f; another "
                  "picture: features %.3f\n", img_shift, feat_shift,
                  feat_other);
    assert_true(img_shift > 0.3);
    assert_true(feat_shift < 0.5 * img_shift);
    assert_true(feat_other > 2.0 * feat_shift);
    od_scatter_work_destroy(wk);
    od_scatter_destroy(s);
}

/* Group normalisation: every group has mean 0 and variance 1 / (1 +
 * eps / var), and an affine change of a group's values changes nothing. */
static void test_group_norm(void **state)
{
    (void)state;
    enum { C = 6, H = 3, W = 5, G = 3, N = C * H * W };
    float x[N], y[N];
    uint64_t seed = 9;
    for (int i = 0; i < N; i++)
        x[i] = (float)(10.0 * uniform(&seed) - 2.0);
    memcpy(y, x, sizeof x);
    /* Group 1 (channels 2, 3) of y scaled by 3 and shifted by 5. */
    for (int i = 2 * H * W; i < 4 * H * W; i++)
        y[i] = 3.0f * y[i] + 5.0f;
    od_scatter_group_norm(x, C, H, W, G, 1e-5f);
    od_scatter_group_norm(y, C, H, W, G, 1e-5f);
    for (int g = 0; g < G; g++) {
        double m = 0.0, v = 0.0;
        int n = N / G;
        for (int i = 0; i < n; i++)
            m += x[g * n + i];
        m /= n;
        for (int i = 0; i < n; i++)
            v += (x[g * n + i] - m) * (x[g * n + i] - m);
        v /= n;
        assert_true(fabs(m) < 1e-5);
        assert_true(fabs(v - 1.0) < 1e-5);
    }
    for (int i = 0; i < N; i++)
        assert_float_equal(x[i], y[i], 2e-5);
}

/* ---- The workload ------------------------------------------------------- */

static int have_fmnist(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz",
             od_fmnist_resolve_dir(NULL));
    if (access(path, R_OK) == 0)
        return 1;
    print_message("skipping: %s is missing; install it with `apt-get "
                  "install dataset-fashion-mnist`\n", path);
    return 0;
}

static void set(od_config *c, const char *arg)
{
    if (od_config_set_arg(c, arg) != OD_OK)
        fail_msg("%s: %s", arg, od_error_message());
}

/* The registry entry, the loaded features (shape, labels, normalisation)
 * and the model's shape. */
static void test_workload_load(void **state)
{
    (void)state;
    const od_workload *wl = od_workload_find("fmnist-scatter");
    assert_non_null(wl);
    assert_int_equal(wl->sample_ndim, 3);
    assert_int_equal(wl->sample_dims[0], 81);
    assert_int_equal(wl->sample_dims[1], 7);
    assert_int_equal(wl->sample_dims[2], 7);
    if (!have_fmnist()) {
        skip();
        return;
    }
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.train_subset = 40;
    o.test_subset = 30;
    od_dataset train, test, raw_train, raw_test;
    assert_int_equal(wl->load(&o, &train, &test), OD_OK);
    assert_int_equal(od_fmnist_load(NULL, 40, 30, &raw_train, &raw_test),
                     OD_OK);
    assert_int_equal(train.n, 40);
    assert_int_equal(test.n, 30);
    assert_int_equal(train.sample_size, 81 * 49);
    assert_int_equal(od_dataset_check(&train), OD_OK);
    assert_memory_equal(train.y, raw_train.y, 40 * sizeof(int32_t));
    assert_memory_equal(test.y, raw_test.y, 30 * sizeof(int32_t));

    /* Sample 7 of the test split is the normalised transform of image 7. */
    od_scatter *s = NULL;
    od_scatter_work *wk = NULL;
    assert_int_equal(od_scatter_create(28, 28, 2, 8, &s), OD_OK);
    assert_int_equal(od_scatter_work_create(s, &wk), OD_OK);
    float f[81 * 49];
    od_scatter_apply(s, wk, raw_test.x + 7 * 784, f);
    od_scatter_group_norm(f, 81, 7, 7, OD_SCATTER_FMNIST_GROUPS,
                          OD_SCATTER_NORM_EPS);
    assert_memory_equal(f, test.x + 7 * 81 * 49, sizeof f);
    od_scatter_work_destroy(wk);
    od_scatter_destroy(s);

    od_dataset_free(&train);
    od_dataset_free(&test);
    od_dataset_free(&raw_train);
    od_dataset_free(&raw_test);
}

/* A linear classifier on the features of 512 images learns well above
 * chance (10 %), without and with DP-SGD. */
static void test_workload_trains(void **state)
{
    (void)state;
    if (!have_fmnist()) {
        skip();
        return;
    }
    od_config c;
    od_config_defaults(&c);
    const char *sets[] = {"workload=fmnist-scatter", "train_subset=512",
                          "test_subset=500", "batch_size=64", "epochs=3",
                          "lr=0.05", "momentum=0.9", "threads=1", "seed=3",
                          "eval_each_epoch=false"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        set(&c, sets[i]);
    od_run_result r;
    if (od_train(&c, &r) != OD_OK)
        fail_msg("training failed: %s", od_error_message());
    print_message("fmnist-scatter, 512 images, SGD: test accuracy %.1f %%\n",
                  100.0 * r.test_accuracy);
    assert_int_equal((int)r.param_count, 3969 * 10 + 10);
    assert_true(r.test_accuracy > 0.6);
    od_run_result_free(&r);

    set(&c, "dp=true");
    set(&c, "noise_multiplier=1");
    set(&c, "clip_norm=0.1");
    set(&c, "lr=1");
    set(&c, "batch_size=128");
    set(&c, "epochs=5");
    if (od_train(&c, &r) != OD_OK)
        fail_msg("DP training failed: %s", od_error_message());
    print_message("fmnist-scatter, 512 images, DP-SGD sigma 1: test accuracy "
                  "%.1f %%\n", 100.0 * r.test_accuracy);
    assert_true(r.test_accuracy > 0.3);
    od_run_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filters_closed_form),
        cmocka_unit_test(test_band_pass_zero_mean),
        cmocka_unit_test(test_fft_matches_spatial),
        cmocka_unit_test(test_constant_image),
        cmocka_unit_test(test_output_shape),
        cmocka_unit_test(test_translation_stability),
        cmocka_unit_test(test_group_norm),
        cmocka_unit_test(test_workload_load),
        cmocka_unit_test(test_workload_trains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
