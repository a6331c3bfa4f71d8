/* Tests of the compute kernels other than GEMM (engine/kernels.h).
 *
 * Each optimised kernel is compared with its reference over odd shapes, on
 * 1 and 2 threads and under every instruction set this CPU has, by a relative
 * residual ||opt - ref|| / ||ref|| with the threshold stated next to each
 * check. Each backward kernel is checked against central finite differences
 * of its forward: for L(x) = dot(dy, f(x)), dL/dx_i is estimated by
 * (L(x + h e_i) - L(x - h e_i)) / 2h, with L summed in double, on a few
 * coordinates. Runs twice with the same pool must match bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/kernels.h"
#include "engine/pool.h"
#include "engine/rng.h"

/* Optimised versus reference: float accumulation over up to ~1000 terms
 * against a double reference. */
#define TOL_REL 1e-5
/* Kernels without long sums (activations, pooling, softmax): a few float
 * ulp; per element for the activations, as a residual for the others. */
#define TOL_ELEM 1e-6
/* Finite differences: |fd - analytic| <= TOL_FD * max(1, |analytic|). */
#define TOL_FD 2e-3

static od_pool *g_pool2;

static int setup(void **state)
{
    (void)state;
    g_pool2 = od_pool_create(2, NULL);
    return g_pool2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    od_pool_destroy(g_pool2);
    od_cpu_set_isa(od_cpu_isa_detected());
    return 0;
}

/* The pools every optimised kernel runs on: one thread (NULL) and two. */
static od_pool *pool_at(int i) { return i == 0 ? NULL : g_pool2; }
#define NPOOLS 2

/* ISAs to force, from portable up to what the CPU has. */
static int isa_count(void) { return (int)od_cpu_isa_detected() + 1; }

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static void fill(od_rng *r, size_t n, float *x, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * od_rng_uniformf(r);
}

static double rel_residual(size_t n, const float *got, const float *want)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    if (isnan(num))
        return INFINITY;
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static double dot(size_t n, const float *a, const float *b)
{
    double acc = 0.0;
    for (size_t i = 0; i < n; i++)
        acc += (double)a[i] * b[i];
    return acc;
}

static void check_rel(const char *what, size_t n, const float *got,
                      const float *want, double tol)
{
    double r = rel_residual(n, got, want);
    if (!(r <= tol))
        print_error("%s: relative residual %.3g > %.3g (n %zu)\n", what, r, tol, n);
    assert_true(r <= tol);
}

static void check_fd(const char *what, double fd, double analytic)
{
    double tol = TOL_FD * fmax(1.0, fabs(analytic));
    if (!(fabs(fd - analytic) <= tol))
        print_error("%s: finite difference %.6g, analytic %.6g\n", what, fd,
                    analytic);
    assert_true(fabs(fd - analytic) <= tol);
}

/* ---- Convolution ------------------------------------------------------------ */

static const od_conv2d_shape conv_shapes[] = {
    /* n, c_in, h, w, c_out, kh, kw, sh, sw, ph, pw */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
    {1, 1, 5, 5, 1, 5, 5, 1, 1, 0, 0},
    {2, 1, 28, 28, 32, 5, 5, 1, 1, 0, 0},   /* fmnist-cnn conv1, small batch */
    {3, 32, 12, 12, 64, 5, 5, 1, 1, 0, 0},  /* fmnist-cnn conv2 (im2col) */
    {9, 32, 12, 12, 64, 5, 5, 1, 1, 0, 0},  /* and with enough tiles for
                                             * Winograd (AVX-512, AVX2) */
    {3, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1},
    {5, 2, 11, 13, 7, 3, 3, 2, 2, 1, 1},
    {2, 3, 17, 6, 4, 5, 5, 2, 2, 2, 2},
    {1, 7, 13, 13, 3, 1, 1, 1, 1, 0, 0},
    {4, 5, 9, 9, 17, 1, 1, 2, 2, 0, 0},
    {1, 1, 31, 29, 19, 3, 3, 1, 1, 2, 2},
    {7, 1, 10, 11, 2, 5, 5, 2, 2, 1, 1},
    {2, 4, 3, 3, 2, 5, 5, 1, 1, 2, 2},      /* padding wider than the image */
    {13, 32, 12, 12, 16, 3, 3, 1, 1, 1, 1}, /* several groups per chunk */
    /* Winograd (AVX-512, AVX2): rows wider than 16, ragged tiles,
     * padding, and channel counts off the 8- and 16-lane blocks. */
    {3, 9, 21, 19, 10, 5, 5, 1, 1, 2, 2},
    {4, 17, 6, 7, 33, 5, 5, 1, 1, 4, 4},
    {21, 8, 9, 9, 8, 5, 5, 1, 1, 1, 1},
    /* One input channel, 5x5, register-blocked on AVX-512: narrow rows. */
    {3, 1, 9, 10, 16, 5, 5, 1, 1, 0, 0},
    {3, 6, 8, 5, 11, 3, 5, 1, 2, 1, 0},
    {2, 2, 6, 6, 3, 3, 3, 2, 1, 0, 2},
    {17, 3, 5, 7, 4, 3, 3, 1, 1, 0, 0},
    {3, 4, 17, 19, 5, 1, 1, 1, 1, 0, 0},    /* 1x1, one image per group */
};
#define N_FIXED_CONV (sizeof conv_shapes / sizeof conv_shapes[0])
#define N_RANDOM_CONV 10

/* A random shape from the families the requirements list. */
static od_conv2d_shape random_conv_shape(od_rng *r)
{
    static const int ks[] = {1, 3, 5}, primes[] = {1, 2, 3, 5, 7, 11, 13};
    od_conv2d_shape s;
    s.n = 1 + (int)od_rng_below(r, 6);
    s.c_in = od_rng_below(r, 3) == 0 ? 1 : primes[od_rng_below(r, 7)];
    s.c_out = primes[od_rng_below(r, 7)];
    s.kh = ks[od_rng_below(r, 3)];
    s.kw = od_rng_below(r, 2) ? s.kh : ks[od_rng_below(r, 3)];
    s.stride_h = 1 + (int)od_rng_below(r, 2);
    s.stride_w = 1 + (int)od_rng_below(r, 2);
    s.pad_h = (int)od_rng_below(r, 3);
    s.pad_w = (int)od_rng_below(r, 3);
    s.h = s.kh + (int)od_rng_below(r, 12);
    s.w = s.kw + (int)od_rng_below(r, 12);
    return s;
}

typedef struct {
    od_conv2d_shape s;
    size_t nx, nw, ny;
    float *x, *w, *b, *dy;
} conv_case;

static void conv_case_init(conv_case *c, const od_conv2d_shape *s, od_rng *r)
{
    c->s = *s;
    int oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
    c->nx = (size_t)s->n * s->c_in * s->h * s->w;
    c->nw = (size_t)s->c_out * s->c_in * s->kh * s->kw;
    c->ny = (size_t)s->n * s->c_out * oh * ow;
    c->x = falloc(c->nx);
    c->w = falloc(c->nw);
    c->b = falloc((size_t)s->c_out);
    c->dy = falloc(c->ny);
    fill(r, c->nx, c->x, -1.0f, 1.0f);
    fill(r, c->nw, c->w, -0.5f, 0.5f);
    fill(r, (size_t)s->c_out, c->b, -0.5f, 0.5f);
    fill(r, c->ny, c->dy, -1.0f, 1.0f);
}

static void conv_case_free(conv_case *c)
{
    free(c->x);
    free(c->w);
    free(c->b);
    free(c->dy);
}

static void shape_name(const od_conv2d_shape *s, char *buf, size_t len)
{
    snprintf(buf, len,
             "conv n=%d c_in=%d %dx%d c_out=%d k=%dx%d s=%d,%d p=%d,%d", s->n,
             s->c_in, s->h, s->w, s->c_out, s->kh, s->kw, s->stride_h,
             s->stride_w, s->pad_h, s->pad_w);
}

typedef struct {
    float *y, *y_nobias, *dx, *dw, *db, *dw_nobias;
} conv_refs;

/* The references' results, once per case. dw and db accumulate onto 0.25
 * and -0.5, to check that the kernels add rather than overwrite. */
static void conv_refs_init(conv_refs *rf, const conv_case *c)
{
    const od_conv2d_shape *s = &c->s;
    rf->y = falloc(c->ny);
    rf->y_nobias = falloc(c->ny);
    rf->dx = falloc(c->nx);
    rf->dw = falloc(c->nw);
    rf->dw_nobias = falloc(c->nw);
    rf->db = falloc((size_t)s->c_out);
    od_conv2d_forward_ref(s, c->x, c->w, c->b, rf->y);
    od_conv2d_forward_ref(s, c->x, c->w, NULL, rf->y_nobias);
    od_conv2d_backward_data_ref(s, c->dy, c->w, rf->dx);
    for (size_t i = 0; i < c->nw; i++)
        rf->dw[i] = 0.25f;
    for (int i = 0; i < s->c_out; i++)
        rf->db[i] = -0.5f;
    od_conv2d_backward_weight_ref(s, c->x, c->dy, rf->dw, rf->db);
    memset(rf->dw_nobias, 0, c->nw * sizeof *rf->dw_nobias);
    od_conv2d_backward_weight_ref(s, c->x, c->dy, rf->dw_nobias, NULL);
}

static void conv_refs_free(conv_refs *rf)
{
    free(rf->y), free(rf->y_nobias), free(rf->dx);
    free(rf->dw), free(rf->dw_nobias), free(rf->db);
}

/* Optimised against reference on one pool, and twice for determinism. */
static void conv_compare(const conv_case *c, const conv_refs *rf, od_pool *pool)
{
    const od_conv2d_shape *s = &c->s;
    char name[160];
    shape_name(s, name, sizeof name);
    /* Exactly the scratch the kernels ask for: AddressSanitizer catches any
     * access past it. */
    size_t nscratch = od_conv2d_scratch_floats(s, od_pool_threads(pool));
    float *scratch = falloc(nscratch);
    float *y = falloc(c->ny), *y2 = falloc(c->ny);
    float *dx = falloc(c->nx), *dx2 = falloc(c->nx);
    float *dw = falloc(c->nw), *dw2 = falloc(c->nw);
    float *db = falloc((size_t)s->c_out), *db2 = falloc((size_t)s->c_out);

    od_conv2d_forward(pool, s, c->x, c->w, c->b, y, scratch);
    od_conv2d_forward(pool, s, c->x, c->w, c->b, y2, scratch);
    check_rel(name, c->ny, y, rf->y, TOL_REL);
    assert_memory_equal(y, y2, c->ny * sizeof *y);
    od_conv2d_forward(pool, s, c->x, c->w, NULL, y, scratch);
    check_rel(name, c->ny, y, rf->y_nobias, TOL_REL);

    /* dx is overwritten: start from garbage. */
    for (size_t i = 0; i < c->nx; i++)
        dx[i] = dx2[i] = NAN;
    od_conv2d_backward_data(pool, s, c->dy, c->w, dx, scratch);
    od_conv2d_backward_data(pool, s, c->dy, c->w, dx2, scratch);
    check_rel(name, c->nx, dx, rf->dx, TOL_REL);
    assert_memory_equal(dx, dx2, c->nx * sizeof *dx);

    for (size_t i = 0; i < c->nw; i++)
        dw[i] = dw2[i] = 0.25f;
    for (int i = 0; i < s->c_out; i++)
        db[i] = db2[i] = -0.5f;
    od_conv2d_backward_weight(pool, s, c->x, c->dy, dw, db, scratch);
    od_conv2d_backward_weight(pool, s, c->x, c->dy, dw2, db2, scratch);
    check_rel(name, c->nw, dw, rf->dw, TOL_REL);
    /* db is a sum of many dy of both signs on top of -0.5, and can nearly
     * cancel: judge it against the size of its terms, not of the sum. */
    for (int co = 0; co < s->c_out; co++) {
        double scale = 0.5;
        size_t plane = c->ny / ((size_t)s->n * s->c_out);
        for (int i = 0; i < s->n; i++)
            for (size_t q = 0; q < plane; q++)
                scale += fabs(c->dy[((size_t)i * s->c_out + co) * plane + q]);
        double e = fabs((double)db[co] - rf->db[co]);
        if (!(e <= TOL_REL * scale))
            print_error("%s: db[%d] off by %.3g (terms sum to %.3g)\n", name,
                        co, e, scale);
        assert_true(e <= TOL_REL * scale);
    }
    assert_memory_equal(dw, dw2, c->nw * sizeof *dw);
    assert_memory_equal(db, db2, (size_t)s->c_out * sizeof *db);
    memset(dw, 0, c->nw * sizeof *dw);
    od_conv2d_backward_weight(pool, s, c->x, c->dy, dw, NULL, scratch);
    check_rel(name, c->nw, dw, rf->dw_nobias, TOL_REL);

    free(scratch);
    free(y), free(y2), free(dx), free(dx2), free(dw), free(dw2);
    free(db), free(db2);
}

static void test_conv_matches_reference(void **state)
{
    (void)state;
    od_rng r;
    od_rng_seed(&r, 42, 1);
    int total = 0;
    for (size_t k = 0; k < N_FIXED_CONV + N_RANDOM_CONV; k++) {
        od_conv2d_shape s = k < N_FIXED_CONV ? conv_shapes[k] : random_conv_shape(&r);
        conv_case c;
        conv_refs rf;
        conv_case_init(&c, &s, &r);
        conv_refs_init(&rf, &c);
        for (int isa = 0; isa < isa_count(); isa++) {
            od_cpu_set_isa((od_isa)isa);
            for (int p = 0; p < NPOOLS; p++)
                conv_compare(&c, &rf, pool_at(p));
        }
        conv_refs_free(&rf);
        conv_case_free(&c);
        total++;
    }
    assert_true(total >= 20);
    od_cpu_set_isa(od_cpu_isa_detected());
}

/* ---- Per-example gradients of a convolution (DP-SGD) ---------------------- */

/* Shapes beyond conv_shapes for the per-example kernels: receptive fields
 * of 64 weights or more (the sparse route) with strides, padding and rows
 * wider than 8. */
static const od_conv2d_shape pergrad_shapes[] = {
    {3, 8, 13, 11, 6, 3, 3, 2, 2, 1, 1},
    {2, 3, 11, 12, 4, 3, 9, 1, 2, 1, 2},
    {4, 7, 10, 10, 5, 3, 4, 1, 1, 0, 3},
};
#define N_PERGRAD_EXTRA (sizeof pergrad_shapes / sizeof pergrad_shapes[0])

/* |got - want| <= TOL_REL * |want| for each of n doubles. */
static void check_each(const char *what, int n, const float *got,
                       const double *want)
{
    for (int i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= TOL_REL * fabs(want[i]) + 1e-30))
            print_error("%s: [%d] %.9g against %.9g\n", what, i,
                        (double)got[i], want[i]);
        assert_true(e <= TOL_REL * fabs(want[i]) + 1e-30);
    }
}

/* got, accumulated from init, against want: the relative residual of the
 * increments (exactly zero when want adds nothing). */
static void check_inc(const char *what, size_t n, const float *got,
                      const double *want, double init)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (want[i] - init) * (want[i] - init);
    }
    double r = den > 0.0 ? sqrt(num / den) : sqrt(num);
    if (!(r <= TOL_REL))
        print_error("%s: relative residual %.3g > %.3g (n %zu)\n", what, r,
                    TOL_REL, n);
    assert_true(r <= TOL_REL);
}

/* od_conv2d_pergrad_sqnorm, od_conv2d_kept_sum and
 * od_conv2d_pergrad_clipped against each example's own reference weight
 * and bias gradients, with output gradients dense, a quarter nonzero (as
 * behind ReLU and 2x2 max pooling: the sparse route where the receptive
 * field is large enough) and all zero, on every ISA and pool size. */
static void pergrad_case(const od_conv2d_shape *s, double density, od_rng *r)
{
    conv_case c;
    conv_case_init(&c, s, r);
    for (size_t i = 0; i < c.ny; i++)
        if (od_rng_uniformf(r) >= density)
            c.dy[i] = 0.0f;
    char name[200];
    shape_name(s, name, sizeof name);
    snprintf(name + strlen(name), sizeof name - strlen(name), " density %.2f",
             density);
    int n = s->n, cout = s->c_out;
    size_t nw = c.nw;
    size_t xs = c.nx / (size_t)n, ys = c.ny / (size_t)n;
    od_conv2d_shape s1 = *s;
    s1.n = 1;

    /* References: each example's gradients, their squared norms, and the
     * scaled and clipped sums (dw from 0.25 and db from -0.5). */
    float *gw = falloc((size_t)n * nw), *gb = falloc((size_t)n * cout);
    double *sq = malloc((size_t)n * sizeof *sq), *other = malloc((size_t)n * sizeof *other);
    float *scale = falloc((size_t)n);
    assert_non_null(sq);
    assert_non_null(other);
    double mean = 0;
    for (int i = 0; i < n; i++) {
        memset(gw + (size_t)i * nw, 0, nw * sizeof *gw);
        memset(gb + (size_t)i * cout, 0, (size_t)cout * sizeof *gb);
        od_conv2d_backward_weight_ref(&s1, c.x + (size_t)i * xs,
                                      c.dy + (size_t)i * ys,
                                      gw + (size_t)i * nw, gb + (size_t)i * cout);
        sq[i] = 0;
        for (size_t j = 0; j < nw; j++)
            sq[i] += (double)gw[(size_t)i * nw + j] * gw[(size_t)i * nw + j];
        for (int j = 0; j < cout; j++)
            sq[i] += (double)gb[(size_t)i * cout + j] * gb[(size_t)i * cout + j];
        other[i] = 0.5 * od_rng_uniformf(r);
        scale[i] = od_rng_uniformf(r);
        mean += sq[i] / n;
    }
    /* Clip at about the typical norm, so that some examples are clipped
     * and others not. */
    float clip = (float)sqrt(mean + 0.25);
    double *want_sq = malloc((size_t)n * sizeof *want_sq);
    double *kept_w = malloc(nw * sizeof *kept_w), *kept_b = malloc((size_t)cout * sizeof *kept_b);
    double *clip_w = malloc(nw * sizeof *clip_w), *clip_b = malloc((size_t)cout * sizeof *clip_b);
    assert_true(want_sq && kept_w && kept_b && clip_w && clip_b);
    for (size_t j = 0; j < nw; j++)
        kept_w[j] = clip_w[j] = 0.25;
    for (int j = 0; j < cout; j++)
        kept_b[j] = clip_b[j] = -0.5;
    for (int i = 0; i < n; i++) {
        want_sq[i] = 0.5 + sq[i];
        double f = od_clip_factor((float)(other[i] + sq[i]), clip);
        for (size_t j = 0; j < nw; j++) {
            kept_w[j] += scale[i] * (double)gw[(size_t)i * nw + j];
            clip_w[j] += f * gw[(size_t)i * nw + j];
        }
        for (int j = 0; j < cout; j++) {
            kept_b[j] += scale[i] * (double)gb[(size_t)i * cout + j];
            clip_b[j] += f * gb[(size_t)i * cout + j];
        }
    }

    float *got_sq = falloc((size_t)n), *dw = falloc(nw), *db = falloc((size_t)cout);
    float *dw2 = falloc(nw), *db2 = falloc((size_t)cout);
    float *kept = falloc(od_conv2d_pergrad_kept_floats(s));
    for (int isa = 0; isa < isa_count(); isa++) {
        od_cpu_set_isa((od_isa)isa);
        for (int p = 0; p < NPOOLS; p++) {
            od_pool *pool = pool_at(p);
            /* Exactly the scratch asked for: AddressSanitizer catches any
             * access past it. */
            float *scratch = falloc(od_conv2d_pergrad_scratch_floats(
                s, od_pool_threads(pool)));
            for (int i = 0; i < n; i++)
                got_sq[i] = 0.5f;
            od_conv2d_pergrad_sqnorm(pool, s, c.x, c.dy, 1, 1, got_sq, kept,
                                     scratch);
            check_each(name, n, got_sq, want_sq);
            for (size_t j = 0; j < nw; j++)
                dw[j] = 0.25f;
            for (int j = 0; j < cout; j++)
                db[j] = -0.5f;
            od_conv2d_kept_sum(s, kept, scale, dw, db);
            check_inc(name, nw, dw, kept_w, 0.25);
            check_inc(name, (size_t)cout, db, kept_b, -0.5);

            for (int i = 0; i < n; i++)
                got_sq[i] = (float)other[i];
            for (size_t j = 0; j < nw; j++)
                dw[j] = dw2[j] = 0.25f;
            for (int j = 0; j < cout; j++)
                db[j] = db2[j] = -0.5f;
            od_conv2d_pergrad_clipped(pool, s, c.x, c.dy, clip, got_sq, dw,
                                      db, scratch);
            check_inc(name, nw, dw, clip_w, 0.25);
            check_inc(name, (size_t)cout, db, clip_b, -0.5);
            /* The bias alone. */
            for (int i = 0; i < n; i++)
                got_sq[i] = (float)other[i];
            od_conv2d_pergrad_clipped(pool, s, c.x, c.dy, INFINITY, got_sq,
                                      NULL, db2, scratch);
            for (int j = 0; j < cout; j++) {
                double want = -0.5;
                for (int i = 0; i < n; i++)
                    want += gb[(size_t)i * cout + j];
                assert_true(fabs(db2[j] - want) <= TOL_REL * (1.0 + fabs(want)));
            }
            free(scratch);
        }
    }
    od_cpu_set_isa(od_cpu_isa_detected());
    free(got_sq), free(dw), free(db), free(dw2), free(db2), free(kept);
    free(want_sq), free(kept_w), free(kept_b), free(clip_w), free(clip_b);
    free(gw), free(gb), free(sq), free(other), free(scale);
    conv_case_free(&c);
}

static void test_conv_pergrad_matches_reference(void **state)
{
    (void)state;
    od_rng r;
    od_rng_seed(&r, 7, 3);
    static const double densities[] = {1.0, 0.25, 0.0};
    int total = 0;
    for (size_t k = 0; k < N_FIXED_CONV + N_PERGRAD_EXTRA + N_RANDOM_CONV; k++) {
        od_conv2d_shape s = k < N_FIXED_CONV ? conv_shapes[k]
                            : k < N_FIXED_CONV + N_PERGRAD_EXTRA
                                ? pergrad_shapes[k - N_FIXED_CONV]
                                : random_conv_shape(&r);
        for (size_t d = 0; d < sizeof densities / sizeof densities[0]; d++)
            pergrad_case(&s, densities[d], &r);
        total++;
    }
    assert_true(total >= 20);
}

/* L = dot(dy, conv(x, w) + b) in double, through the optimised forward. */
static double conv_loss(const conv_case *c, od_pool *pool, const float *x,
                        const float *w, const float *b, float *y,
                        float *scratch)
{
    od_conv2d_forward(pool, &c->s, x, w, b, y, scratch);
    return dot(c->ny, c->dy, y);
}

/* The convolution is linear in x, w and b, so central differences are exact
 * up to rounding for any step; h = 0.25 keeps rounding small. */
static void test_conv_backward_finite_differences(void **state)
{
    (void)state;
    static const od_conv2d_shape shapes[] = {
        {2, 3, 7, 6, 4, 3, 3, 2, 1, 1, 2},
        {3, 1, 9, 8, 5, 5, 5, 1, 1, 2, 0},
        {2, 5, 5, 5, 3, 1, 1, 2, 2, 0, 0},
    };
    const float h = 0.25f;
    od_rng r;
    od_rng_seed(&r, 7, 2);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        for (int p = 0; p < NPOOLS; p++) {
            od_pool *pool = pool_at(p);
            conv_case c;
            conv_case_init(&c, &shapes[k], &r);
            float *scratch = falloc(od_conv2d_scratch_floats(&c.s, od_pool_threads(pool)));
            float *y = falloc(c.ny), *dx = falloc(c.nx), *dw = falloc(c.nw);
            float db[16] = {0};
            memset(dw, 0, c.nw * sizeof *dw);
            od_conv2d_backward_data(pool, &c.s, c.dy, c.w, dx, scratch);
            od_conv2d_backward_weight(pool, &c.s, c.x, c.dy, dw, db, scratch);

            for (int t = 0; t < 6; t++) {
                size_t i = od_rng_below(&r, c.nx);
                float keep = c.x[i];
                c.x[i] = keep + h;
                double lp = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.x[i] = keep - h;
                double lm = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.x[i] = keep;
                check_fd("conv dx", (lp - lm) / (2.0 * h), dx[i]);

                i = od_rng_below(&r, c.nw);
                keep = c.w[i];
                c.w[i] = keep + h;
                lp = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.w[i] = keep - h;
                lm = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.w[i] = keep;
                check_fd("conv dw", (lp - lm) / (2.0 * h), dw[i]);

                i = od_rng_below(&r, (uint64_t)c.s.c_out);
                keep = c.b[i];
                c.b[i] = keep + h;
                lp = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.b[i] = keep - h;
                lm = conv_loss(&c, pool, c.x, c.w, c.b, y, scratch);
                c.b[i] = keep;
                check_fd("conv db", (lp - lm) / (2.0 * h), db[i]);
            }
            free(scratch), free(y), free(dx), free(dw);
            conv_case_free(&c);
        }
    }
}

static void test_conv_output_size(void **state)
{
    (void)state;
    od_conv2d_shape s = {1, 1, 28, 28, 1, 5, 5, 1, 1, 0, 0};
    assert_int_equal(od_conv2d_out_h(&s), 24);
    s.stride_h = 2, s.pad_h = 2;
    assert_int_equal(od_conv2d_out_h(&s), 14);
    s.h = 2, s.pad_h = 1;   /* 2 + 2 - 5 < 0: no window fits */
    assert_int_equal(od_conv2d_out_h(&s), 0);
}

/* ---- Pooling ---------------------------------------------------------------- */

static const od_pool2d_shape pool_shapes[] = {
    /* n, c, h, w, kh, kw, sh, sw */
    {1, 1, 1, 1, 1, 1, 1, 1},
    {64, 32, 24, 24, 2, 2, 2, 2},  /* fmnist-cnn after conv1 */
    {64, 64, 8, 8, 2, 2, 2, 2},    /* after conv2: 8-wide planes */
    {3, 5, 6, 8, 2, 2, 2, 2},      /* 8 wide, row pairs not a multiple of 4 */
    {2, 3, 9, 8, 2, 2, 2, 2},      /* 8 wide, odd height */
    {3, 5, 7, 9, 2, 2, 2, 2},      /* odd sizes drop the last row/column */
    {2, 3, 11, 13, 3, 3, 2, 2},    /* overlapping windows */
    {1, 7, 5, 17, 3, 2, 1, 3},
    {5, 1, 16, 16, 4, 4, 4, 4},
    {2, 2, 3, 3, 3, 3, 1, 1},
    {1, 3, 2, 2, 3, 3, 1, 1},      /* window larger than the image */
    {7, 11, 13, 5, 1, 1, 1, 1},
    {3, 4, 8, 8, 2, 3, 2, 1},
    {1, 2, 31, 29, 5, 5, 3, 3},
    {4, 17, 9, 10, 2, 2, 1, 1},
    {2, 3, 35, 33, 2, 2, 2, 2},    /* 17 outputs a row: a vector and a tail */
    {2, 3, 1, 5, 2, 2, 2, 2},      /* no window fits vertically */
    {1, 2, 5, 1, 2, 2, 2, 2},      /* nor horizontally */
};
#define N_FIXED_POOL (sizeof pool_shapes / sizeof pool_shapes[0])

static od_pool2d_shape random_pool_shape(od_rng *r)
{
    od_pool2d_shape s;
    s.n = 1 + (int)od_rng_below(r, 5);
    s.c = 1 + (int)od_rng_below(r, 13);
    s.kh = 1 + (int)od_rng_below(r, 4);
    s.kw = 1 + (int)od_rng_below(r, 4);
    s.stride_h = 1 + (int)od_rng_below(r, 3);
    s.stride_w = 1 + (int)od_rng_below(r, 3);
    s.h = 1 + (int)od_rng_below(r, 19);
    s.w = 1 + (int)od_rng_below(r, 19);
    return s;
}

static void test_pool_matches_reference(void **state)
{
    (void)state;
    od_rng r;
    od_rng_seed(&r, 3, 3);
    for (size_t k = 0; k < N_FIXED_POOL + 12; k++) {
        od_pool2d_shape s = k < N_FIXED_POOL ? pool_shapes[k] : random_pool_shape(&r);
        size_t nx = (size_t)s.n * s.c * s.h * s.w;
        size_t ny = (size_t)s.n * s.c * od_pool2d_out_h(&s) * od_pool2d_out_w(&s);
        float *x = falloc(nx), *dy = falloc(ny);
        float *y_ref = falloc(ny), *y = falloc(ny);
        float *dx_ref = falloc(nx), *dx = falloc(nx);
        int32_t *am_ref = malloc((ny ? ny : 1) * sizeof *am_ref);
        int32_t *am = malloc((ny ? ny : 1) * sizeof *am);
        fill(&r, nx, x, -1.0f, 1.0f);
        /* Some exact ties, to exercise the tie rule on both paths. */
        for (size_t i = 0; i < nx; i += 7)
            x[i] = 0.5f;
        fill(&r, ny, dy, -1.0f, 1.0f);
        char name[96];
        snprintf(name, sizeof name, "pool %dx%dx%dx%d k=%dx%d s=%d,%d", s.n,
                 s.c, s.h, s.w, s.kh, s.kw, s.stride_h, s.stride_w);

        od_maxpool2d_forward_ref(&s, x, y_ref, am_ref);
        od_maxpool2d_backward_ref(&s, dy, am_ref, dx_ref);
        for (int isa = 0; isa < isa_count(); isa++) {
            od_cpu_set_isa((od_isa)isa);
            for (int p = 0; p < NPOOLS; p++) {
                for (size_t i = 0; i < nx; i++)
                    dx[i] = NAN;
                od_maxpool2d_forward(pool_at(p), &s, x, y, am);
                /* Maximum is exact: bitwise equality, same argmax. */
                assert_memory_equal(y, y_ref, ny * sizeof *y);
                assert_memory_equal(am, am_ref, ny * sizeof *am);
                od_maxpool2d_backward(pool_at(p), &s, dy, am, dx);
                check_rel(name, nx, dx, dx_ref, TOL_ELEM);
            }
        }
        od_cpu_set_isa(od_cpu_isa_detected());

        /* ReLU fused into max pooling against ReLU, then max pooling, then
         * ReLU's backward (dx where x > 0), all by the references. */
        float *xr = falloc(nx);
        for (size_t i = 0; i < nx; i++)
            xr[i] = x[i] > 0.0f ? x[i] : 0.0f;
        od_maxpool2d_forward_ref(&s, xr, y_ref, am_ref);
        od_maxpool2d_backward_ref(&s, dy, am_ref, dx_ref);
        for (size_t i = 0; i < nx; i++)
            if (!(x[i] > 0.0f))
                dx_ref[i] = 0.0f;
        od_relu_maxpool2d_forward_ref(&s, x, y, am);
        assert_memory_equal(y, y_ref, ny * sizeof *y);
        for (int isa = 0; isa < isa_count(); isa++) {
            od_cpu_set_isa((od_isa)isa);
            for (int p = 0; p < NPOOLS; p++) {
                for (size_t i = 0; i < nx; i++)
                    dx[i] = NAN;
                od_relu_maxpool2d_forward(pool_at(p), &s, x, y, am);
                assert_memory_equal(y, y_ref, ny * sizeof *y);
                od_maxpool2d_backward(pool_at(p), &s, dy, am, dx);
                check_rel(name, nx, dx, dx_ref, TOL_ELEM);
            }
        }
        od_cpu_set_isa(od_cpu_isa_detected());
        free(xr);

        od_avgpool2d_forward_ref(&s, x, y_ref);
        od_avgpool2d_backward_ref(&s, dy, dx_ref);
        for (int p = 0; p < NPOOLS; p++) {
            for (size_t i = 0; i < nx; i++)
                dx[i] = NAN;
            od_avgpool2d_forward(pool_at(p), &s, x, y);
            check_rel(name, ny, y, y_ref, TOL_ELEM);
            od_avgpool2d_backward(pool_at(p), &s, dy, dx);
            check_rel(name, nx, dx, dx_ref, TOL_ELEM);
        }
        free(x), free(dy), free(y_ref), free(y), free(dx_ref), free(dx);
        free(am_ref), free(am);
    }
}

/* Ties go to the first maximum in row-major order within the window. */
static void test_maxpool_ties(void **state)
{
    (void)state;
    /* One 4x4 plane, 2x2 windows, stride 2; and 3x3 windows, stride 1. */
    const float x[16] = {
        1, 3, 2, 2,
        3, 0, 2, 2,
        5, 4, 7, 7,
        4, 5, 7, 7,
    };
    od_pool2d_shape s = {1, 1, 4, 4, 2, 2, 2, 2};
    float y[4];
    int32_t am[4];
    for (int p = 0; p < NPOOLS * isa_count(); p++) {
        od_cpu_set_isa((od_isa)(p / NPOOLS));
        od_maxpool2d_forward(pool_at(p % NPOOLS), &s, x, y, am);
        assert_int_equal(am[0], 1);   /* 3 at (0,1) before 3 at (1,0) */
        assert_int_equal(am[1], 2);   /* all 2: the first */
        assert_int_equal(am[2], 8);   /* 5 at (2,0) before 5 at (3,1) */
        assert_int_equal(am[3], 10);  /* all 7: the first */
        assert_true(y[0] == 3.0f && y[1] == 2.0f && y[2] == 5.0f && y[3] == 7.0f);
    }
    od_cpu_set_isa(od_cpu_isa_detected());
    od_pool2d_shape s3 = {1, 1, 4, 4, 3, 3, 1, 1};
    od_maxpool2d_forward_ref(&s3, x, y, am);
    assert_int_equal(am[0], 10);
    assert_int_equal(am[1], 10);
    assert_int_equal(am[2], 10);
    assert_int_equal(am[3], 10);
    /* Overlapping windows route their gradients to the shared element. */
    float dy[4] = {1, 2, 3, 4}, dx[16];
    od_maxpool2d_backward(g_pool2, &s3, dy, am, dx);
    assert_true(dx[10] == 10.0f);
    assert_true(od_sum(16, dx) == 10.0);
}

/* Max pooling is piecewise linear: with inputs spaced >= 1 apart, a step of
 * 0.25 never changes the argmax, so central differences are exact. */
static void test_pool_finite_differences(void **state)
{
    (void)state;
    od_pool2d_shape s = {2, 3, 7, 8, 3, 2, 2, 3};
    size_t nx = (size_t)s.n * s.c * s.h * s.w;
    size_t ny = (size_t)s.n * s.c * od_pool2d_out_h(&s) * od_pool2d_out_w(&s);
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
    int32_t *am = malloc(ny * sizeof *am);
    int32_t *idx = malloc(nx * sizeof *idx);
    od_rng r;
    od_rng_seed(&r, 11, 4);
    for (size_t i = 0; i < nx; i++)
        idx[i] = (int32_t)i;
    od_rng_shuffle(&r, idx, (int)nx);
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)idx[i];
    fill(&r, ny, dy, -1.0f, 1.0f);
    const float h = 0.25f;

    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0) {
            od_maxpool2d_forward(g_pool2, &s, x, y, am);
            od_maxpool2d_backward(g_pool2, &s, dy, am, dx);
        } else {
            od_avgpool2d_backward(g_pool2, &s, dy, dx);
        }
        for (size_t i = 0; i < nx; i += 5) {
            float keep = x[i];
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                x[i] = keep + (sgn ? -h : h);
                if (kind == 0)
                    od_maxpool2d_forward(g_pool2, &s, x, y, am);
                else
                    od_avgpool2d_forward(g_pool2, &s, x, y);
                l[sgn] = dot(ny, dy, y);
            }
            x[i] = keep;
            check_fd(kind ? "avgpool dx" : "maxpool dx", (l[0] - l[1]) / (2.0 * h), dx[i]);
        }
    }
    free(x), free(y), free(dy), free(dx), free(am), free(idx);
}

/* ---- Activations ------------------------------------------------------------ */

static const char *act_name(od_act a)
{
    static const char *names[] = {"relu", "tanh", "sigmoid", "gelu"};
    return names[a];
}

/* Largest element-wise relative error, with values below `floor` in size
 * judged against `floor` instead. */
static double max_rel_err(size_t n, const float *got, const float *want,
                          double floor)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(fabs((double)want[i]), floor);
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static void test_act_matches_reference(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 5, 7, 8, 13, 15, 16, 17, 31, 32,
                                   33, 63, 100, 257, 1000, 4099, 8191, 16383,
                                   16385, 40009, 131101};
    od_rng r;
    od_rng_seed(&r, 5, 5);
    size_t nmax = 131101;
    float *x = falloc(nmax + 3), *dy = falloc(nmax);
    float *y_ref = falloc(nmax), *y = falloc(nmax);
    float *dx_ref = falloc(nmax), *dx = falloc(nmax), *dx2 = falloc(nmax);
    float *dx_ref2 = falloc(nmax);
    fill(&r, nmax + 3, x, -12.0f, 12.0f);
    fill(&r, nmax, dy, -1.0f, 1.0f);
    x[0] = 0.0f;
    if (nmax > 3) {
        x[1] = -0.0f;
        x[2] = 1e-30f;
        x[3] = -40.0f;
    }
    for (int isa = 0; isa < isa_count(); isa++) {
        od_cpu_set_isa((od_isa)isa);
        for (int a = 0; a < 4; a++) {
            /* Only ReLU has ISA-specific code: the others once, at the top
             * ISA. */
            if (a != OD_ACT_RELU && isa != isa_count() - 1)
                continue;
            for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
                size_t n = sizes[k];
                /* Offsets of 1 and 3 elements test unaligned starts. */
                const float *xs = x + (k % 4);
                od_act_forward_ref((od_act)a, n, xs, y_ref);
                od_act_backward_ref((od_act)a, n, xs, y_ref, dy, dx_ref);
                for (int p = 0; p < NPOOLS; p++) {
                    od_act_forward(pool_at(p), (od_act)a, n, xs, y);
                    double e = max_rel_err(n, y, y_ref, 1e-30);
                    if (!(e <= TOL_ELEM))
                        print_error("%s forward n=%zu isa=%s: rel err %.3g\n",
                                    act_name((od_act)a), n, od_isa_name((od_isa)isa), e);
                    assert_true(e <= TOL_ELEM);
                    /* Backward with the reference's y (1 - y*y near |y| = 1
                     * magnifies a one-ulp difference in y), then without y,
                     * then in place. */
                    od_act_backward(pool_at(p), (od_act)a, n, xs, y_ref, dy, dx);
                    e = max_rel_err(n, dx, dx_ref, 1e-30);
                    if (!(e <= TOL_ELEM))
                        print_error("%s backward n=%zu isa=%s: rel err %.3g\n",
                                    act_name((od_act)a), n, od_isa_name((od_isa)isa), e);
                    assert_true(e <= TOL_ELEM);
                    od_act_backward_ref((od_act)a, n, xs, NULL, dy, dx_ref2);
                    od_act_backward(pool_at(p), (od_act)a, n, xs, NULL, dy, dx2);
                    assert_true(max_rel_err(n, dx2, dx_ref2, 1e-30) <= TOL_ELEM);
                    memcpy(dx2, dy, n * sizeof *dx2);
                    od_act_backward(pool_at(p), (od_act)a, n, xs, y_ref, dx2, dx2);
                    assert_memory_equal(dx2, dx, n * sizeof *dx);
                }
            }
        }
    }
    od_cpu_set_isa(od_cpu_isa_detected());
    free(x), free(dy), free(y_ref), free(y), free(dx_ref), free(dx), free(dx2);
    free(dx_ref2);
}

/* Known values (from the closed forms, evaluated in high precision). */
static void test_act_known_values(void **state)
{
    (void)state;
    const float x[] = {1.0f, -3.0f, 0.5f, -10.0f};
    /* x * Phi(x) */
    const double gelu[] = {0.8413447460685429, -0.0040496940948904,
                           0.3457312306370066, -7.6198530241605e-23};
    float y[4];
    od_act_forward(NULL, OD_ACT_GELU, 4, x, y);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(y[i] - gelu[i]) <= 1e-6 * fabs(gelu[i]));
    const float xs[] = {-20.0f, 0.0f, 2.0f};
    const double sig[] = {2.0611536181902037e-09, 0.5, 0.8807970779778823};
    od_act_forward(NULL, OD_ACT_SIGMOID, 3, xs, y);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(y[i] - sig[i]) <= 1e-6 * sig[i]);
    const double th[] = {-1.0, 0.0, 0.9640275800758169};
    od_act_forward(NULL, OD_ACT_TANH, 3, xs, y);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(y[i] - th[i]) <= 1e-6 * fabs(th[i]));
}

static void test_act_finite_differences(void **state)
{
    (void)state;
    const float h = 1e-2f;
    od_rng r;
    od_rng_seed(&r, 9, 6);
    enum { N = 64 };
    float x[N], y[N], dy[N], dx[N], yp, ym;
    fill(&r, N, x, -4.0f, 4.0f);
    fill(&r, N, dy, -1.0f, 1.0f);
    for (int a = 0; a < 4; a++) {
        od_act_forward(g_pool2, (od_act)a, N, x, y);
        od_act_backward(g_pool2, (od_act)a, N, x, y, dy, dx);
        for (int i = 0; i < N; i++) {
            /* ReLU has a kink at 0: stay clear of it. */
            if (a == OD_ACT_RELU && fabsf(x[i]) < 2 * h)
                continue;
            float xp = x[i] + h, xm = x[i] - h;
            od_act_forward(NULL, (od_act)a, 1, &xp, &yp);
            od_act_forward(NULL, (od_act)a, 1, &xm, &ym);
            double fd = dy[i] * ((double)yp - ym) / ((double)xp - xm);
            check_fd(act_name((od_act)a), fd, dx[i]);
        }
    }
}

/* ---- Softmax cross-entropy ------------------------------------------------- */

static void test_softmax_xent(void **state)
{
    (void)state;
    static const int shapes[][2] = {{1, 1}, {1, 2}, {3, 10}, {64, 10}, {7, 17},
                                    {5, 1000}, {129, 3}, {2, 16}, {33, 31},
                                    {300, 11}, {13, 100}, {1, 7919}};
    const size_t nfixed = sizeof shapes / sizeof shapes[0];
    od_rng r;
    od_rng_seed(&r, 13, 7);
    for (size_t k = 0; k < nfixed + 10; k++) {
        /* The fixed shapes, then random ones. */
        int rows = k < nfixed ? shapes[k][0] : 1 + (int)od_rng_below(&r, 97);
        int cols = k < nfixed ? shapes[k][1] : 1 + (int)od_rng_below(&r, 61);
        size_t n = (size_t)rows * cols;
        float *z = falloc(n), *p_ref = falloc(n), *p = falloc(n);
        float *d_ref = falloc(n), *d = falloc(n);
        float *l_ref = falloc((size_t)rows), *l = falloc((size_t)rows);
        int32_t *lab = malloc((size_t)rows * sizeof *lab);
        fill(&r, n, z, -5.0f, 5.0f);
        /* About one row in four ignored. */
        for (int i = 0; i < rows; i++)
            lab[i] = od_rng_below(&r, 4) == 0 ? -1 : (int32_t)od_rng_below(&r, (uint64_t)cols);
        double tot_ref = od_softmax_xent_forward_ref(rows, cols, z, lab, p_ref, l_ref);
        od_softmax_xent_backward_ref(rows, cols, p_ref, lab, 0.125f, d_ref);
        for (int pi = 0; pi < NPOOLS; pi++) {
            double tot = od_softmax_xent_forward(pool_at(pi), rows, cols, z, lab, p, l);
            check_rel("softmax probs", n, p, p_ref, TOL_ELEM);
            check_rel("softmax row loss", (size_t)rows, l, l_ref, TOL_ELEM);
            assert_true(fabs(tot - tot_ref) <= TOL_ELEM * fmax(1.0, fabs(tot_ref)));
            for (size_t i = 0; i < n; i++)
                d[i] = NAN;
            od_softmax_xent_backward(pool_at(pi), rows, cols, p, lab, 0.125f, d);
            check_rel("softmax dlogits", n, d, d_ref, TOL_ELEM);
            for (int i = 0; i < rows; i++)
                if (lab[i] < 0) {
                    assert_true(l[i] == 0.0f);
                    for (int j = 0; j < cols; j++)
                        assert_true(d[(size_t)i * cols + j] == 0.0f);
                }
        }
        free(z), free(p_ref), free(p), free(d_ref), free(d), free(l_ref), free(l);
        free(lab);
    }
}

/* Logits of +-1e4 would overflow exp without the row maximum subtracted. */
static void test_softmax_xent_extreme(void **state)
{
    (void)state;
    enum { R = 4, C = 5 };
    float z[R * C] = {
        1e4f, -1e4f, 0, 1e4f, 3,
        -1e4f, -1e4f, -1e4f, -1e4f, -1e4f,
        1e4f, 0, 0, 0, 0,
        5, 1, 2, 3, 4,
    };
    int32_t lab[R] = {1, 2, -1, 0};
    float p[R * C], l[R], d[R * C];
    for (int pi = 0; pi < NPOOLS; pi++) {
        double tot = od_softmax_xent_forward(pool_at(pi), R, C, z, lab, p, l);
        assert_true(isfinite(tot));
        for (int i = 0; i < R * C; i++)
            assert_true(isfinite(p[i]) && p[i] >= 0.0f && p[i] <= 1.0f);
        for (int i = 0; i < R; i++) {
            assert_true(isfinite(l[i]));
            assert_true(fabs(od_sum(C, p + i * C) - 1.0) <= 1e-6);
        }
        /* Row 0: label's logit is 2e4 below the maximum; two maxima share
         * the mass. */
        assert_true(fabs(l[0] - (2e4 + log(2.0))) <= 1e-6 * 2e4);
        assert_true(fabs(l[1] - log(5.0)) <= 1e-6);   /* all equal */
        assert_true(l[2] == 0.0f);                      /* ignored */
        assert_true(fabs(tot - (l[0] + l[1] + l[3])) <= 1e-6 * tot);
        od_softmax_xent_backward(pool_at(pi), R, C, p, lab, 1.0f, d);
        for (int i = 0; i < R * C; i++)
            assert_true(isfinite(d[i]));
        assert_true(d[2 * C + 0] == 0.0f);
    }
}

/* d(scale * total loss)/dz = scale * (p - onehot), against central
 * differences of the forward's total. */
static void test_softmax_xent_finite_differences(void **state)
{
    (void)state;
    enum { R = 6, C = 7 };
    float z[R * C], p[R * C], l[R], d[R * C];
    int32_t lab[R] = {0, 6, -1, 3, 3, 1};
    od_rng r;
    od_rng_seed(&r, 17, 8);
    fill(&r, R * C, z, -3.0f, 3.0f);
    const float scale = 0.5f, h = 1e-2f;
    od_softmax_xent_forward(g_pool2, R, C, z, lab, p, l);
    od_softmax_xent_backward(g_pool2, R, C, p, lab, scale, d);
    for (int i = 0; i < R * C; i++) {
        float keep = z[i];
        z[i] = keep + h;
        double lp = od_softmax_xent_forward(NULL, R, C, z, lab, p, l);
        z[i] = keep - h;
        double lm = od_softmax_xent_forward(NULL, R, C, z, lab, p, l);
        z[i] = keep;
        check_fd("softmax xent", scale * (lp - lm) / (2.0 * h), d[i]);
    }
}

/* ---- Reductions ------------------------------------------------------------- */

static void test_reductions_match_reference(void **state)
{
    (void)state;
    static const int shapes[][2] = {{1, 1}, {1, 17}, {64, 10}, {64, 128},
                                    {3, 1000}, {257, 31}, {1000, 1}, {7, 16},
                                    {13, 65}, {640, 257}, {2, 4099}, {37, 600},
                                    {5, 48}, {4096, 33}, {11, 15}, {99, 64},
                                    {1, 100003}, {31, 3}, {17, 1024}, {8, 8}};
    od_rng r;
    od_rng_seed(&r, 19, 9);
    for (int isa = 0; isa < isa_count(); isa++) {
        od_cpu_set_isa((od_isa)isa);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            int rows = shapes[k][0], cols = shapes[k][1];
            size_t n = (size_t)rows * cols;
            float *x = falloc(n), *x2 = falloc(n), *bias = falloc((size_t)cols);
            float *o_ref = falloc((size_t)(rows > cols ? rows : cols));
            float *o = falloc((size_t)(rows > cols ? rows : cols));
            float *o2 = falloc((size_t)(rows > cols ? rows : cols));
            fill(&r, n, x, -1.0f, 1.0f);
            fill(&r, (size_t)cols, bias, -1.0f, 1.0f);
            for (int p = 0; p < NPOOLS; p++) {
                /* sum_rows accumulates into out. */
                for (int j = 0; j < cols; j++)
                    o_ref[j] = o[j] = o2[j] = (float)j;
                od_sum_rows_ref(rows, cols, x, o_ref);
                od_sum_rows(pool_at(p), rows, cols, x, o);
                od_sum_rows(pool_at(p), rows, cols, x, o2);
                check_rel("sum_rows", (size_t)cols, o, o_ref, TOL_REL);
                assert_memory_equal(o, o2, (size_t)cols * sizeof *o);

                od_row_sqnorm_ref(rows, cols, x, o_ref);
                od_row_sqnorm(pool_at(p), rows, cols, x, o);
                check_rel("row_sqnorm", (size_t)rows, o, o_ref, TOL_REL);

                memcpy(x2, x, n * sizeof *x);
                od_add_bias_rows(pool_at(p), rows, cols, x2, bias);
                for (size_t i = 0; i < n; i++)
                    assert_true(x2[i] == x[i] + bias[i % (size_t)cols]);
            }
            free(x), free(x2), free(bias), free(o_ref), free(o), free(o2);
        }
    }
    od_cpu_set_isa(od_cpu_isa_detected());
}

/* sum_rows gives the same bits on every ISA and pool size. */
static void test_sum_rows_same_on_every_path(void **state)
{
    (void)state;
    enum { R = 77, C = 301 };
    float *x = falloc(R * C), first[C], o[C];
    od_rng r;
    od_rng_seed(&r, 23, 10);
    fill(&r, R * C, x, -1.0f, 1.0f);
    memset(first, 0, sizeof first);
    od_cpu_set_isa(OD_ISA_PORTABLE);
    od_sum_rows(NULL, R, C, x, first);
    for (int isa = 0; isa < isa_count(); isa++) {
        od_cpu_set_isa((od_isa)isa);
        for (int p = 0; p < NPOOLS; p++) {
            memset(o, 0, sizeof o);
            od_sum_rows(pool_at(p), R, C, x, o);
            assert_memory_equal(o, first, sizeof o);
        }
    }
    od_cpu_set_isa(od_cpu_isa_detected());
    free(x);
}

static void test_sum_pairwise(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 31, 33, 63, 64, 65, 127, 128,
                                   129, 255, 256, 257, 1000, 4097, 100003};
    od_rng r;
    od_rng_seed(&r, 29, 11);
    float *x = falloc(100003);
    fill(&r, 100003, x, -1.0f, 1.0f);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        long double s = 0, q = 0, a = 0;
        for (size_t i = 0; i < n; i++) {
            s += x[i];
            q += (long double)x[i] * x[i];
            a += fabsf(x[i]);
        }
        /* Pairwise in double: error well below 1e-12 of the absolute sum. */
        assert_true(fabsl(od_sum(n, x) - s) <= 1e-12L * (a + 1e-300L));
        assert_true(fabsl(od_sumsq(n, x) - q) <= 1e-12L * (q + 1e-300L));
        /* The same bits on every instruction set. */
        double sum = od_sum(n, x), sumsq = od_sumsq(n, x);
        for (int isa = 0; isa < isa_count(); isa++) {
            od_cpu_set_isa((od_isa)isa);
            assert_true(od_sum(n, x) == sum);
            assert_true(od_sumsq(n, x) == sumsq);
        }
        od_cpu_set_isa(od_cpu_isa_detected());
    }
    /* Cancellation that a float accumulator would lose entirely. */
    float c[3] = {1e8f, 1.0f, -1e8f};
    assert_true(od_sum(3, c) == 1.0);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_output_size),
        cmocka_unit_test(test_conv_matches_reference),
        cmocka_unit_test(test_conv_backward_finite_differences),
        cmocka_unit_test(test_conv_pergrad_matches_reference),
        cmocka_unit_test(test_pool_matches_reference),
        cmocka_unit_test(test_maxpool_ties),
        cmocka_unit_test(test_pool_finite_differences),
        cmocka_unit_test(test_act_matches_reference),
        cmocka_unit_test(test_act_known_values),
        cmocka_unit_test(test_act_finite_differences),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_softmax_xent_extreme),
        cmocka_unit_test(test_softmax_xent_finite_differences),
        cmocka_unit_test(test_reductions_match_reference),
        cmocka_unit_test(test_sum_rows_same_on_every_path),
        cmocka_unit_test(test_sum_pairwise),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
