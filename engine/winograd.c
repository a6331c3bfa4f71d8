/* Winograd convolution F(4x4, 5x5) for 5x5, stride-1 convolutions with
 * enough channels (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", CVPR 2016).
 *
 * Each 4x4 block of output (a tile) is computed from the 8x8 block of
 * input under it as
 *
 *     Y = A^T [ (G g G^T) . (B^T d B) ] A        (. elementwise)
 *
 * summed over input channels, where g is a 5x5 kernel and d the 8x8 input
 * block. The elementwise products of all channels become 64 matrix
 * products, one per position (xi, nu) of the 8x8 transformed block:
 *
 *     M[xi nu] (T, C_out) = V[xi nu] (T, C_in) * U[xi nu] (C_in, C_out)
 *
 * (V and M are stored tile-major, (T, 64, C): position (xi, nu)'s matrix is
 * every 64th row.)
 *
 * with U the transformed kernels and V the transformed input blocks of T
 * tiles: 64 multiplications per 16 outputs and channel pair against 400
 * for the direct form, while the transforms cost O(64) per tile and
 * channel. Channels are the innermost axis of V, U and M, so that the
 * transforms run on a register of channels at once (16 on AVX-512, 8 on
 * AVX2; winograd_kernels.h): a group's images are first copied
 * channels-last (and zero-padded), and its outputs copied back to NCHW at
 * the end. This file holds the plan and the driver; the portable path,
 * and calls with fewer than OD__WINO_MIN_TILES tiles, use the im2col
 * lowering of conv.c. The matrices come from the Toom-Cook construction
 * on the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (od__wino_build);
 * the results differ from the direct product by the transforms' rounding: a
 * relative residual of 2e-6 to 3e-6 on fmnist-cnn's second layer with
 * random data, ten times the im2col path's (tests/test_kernels.c bounds
 * both by 1e-5).
 *
 * The gradient of the input is the adjoint of the forward computation,
 * on the forward's own tiles: per tile, dM = A dY A^T from the 4x4 output
 * gradient, dV = dM U^T per position (64 GEMMs), and B dV B^T added into
 * the tile's 8x8 block of the padded input (blocks overlap by 4). Treating
 * it instead as a convolution of dy padded by 4 - pad with turned kernels
 * would transform 2.25 times as many tiles on fmnist-cnn (the padding's
 * zeros included). The weight gradient uses F(5x5, 4x4) on the same
 * points (see od__at5).
 *
 * Threading and determinism: images are split into groups fixed by the
 * shape and the pool size; each task transforms, multiplies and writes
 * back one group in its worker's scratch. Every output gets the same
 * operations in the same order whichever worker runs it. The weight
 * gradient sums one chunk of groups per thread and adds the chunks in
 * chunk order. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "engine/kernels_internal.h"
#include "engine/winograd_internal.h"

/* Tiles per group: enough rows for the 64 products to run well, few
 * enough that a worker's V and M stay within its L2 cache. */
#define OD__WINO_TILES_TARGET 64

/* A^T and B^T for the points 0, 1, -1, 2, -2, 1/2, -1/2, infinity, exact
 * in float. The transforms (od__bt8, od__at_rows) apply them through their
 * even and odd parts; these tables spell them out, and od__wino_build
 * checks them against the construction. */
static const float od__at[OD__WM][OD__WA] = {
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.0f},
    {0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0f},
    {0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 1.0f},
};
static const float od__bt[OD__WA][OD__WA] = {
    {-1.0f, 0.0f, 5.25f, 0.0f, -5.25f, 0.0f, 1.0f, 0.0f},
    {0.0f, 1.0f, 1.0f, -4.25f, -4.25f, 1.0f, 1.0f, 0.0f},
    {0.0f, -1.0f, 1.0f, 4.25f, -4.25f, -1.0f, 1.0f, 0.0f},
    {0.0f, 0.5f, 0.25f, -2.5f, -1.25f, 2.0f, 1.0f, 0.0f},
    {0.0f, -0.5f, 0.25f, 2.5f, -1.25f, -2.0f, 1.0f, 0.0f},
    {0.0f, 2.0f, 4.0f, -2.5f, -5.0f, 0.5f, 1.0f, 0.0f},
    {0.0f, -2.0f, 4.0f, 2.5f, -5.0f, -0.5f, 1.0f, 0.0f},
    {0.0f, -1.0f, 0.0f, 5.25f, 0.0f, -5.25f, 0.0f, 1.0f},
};
float od__wino_g[OD__WA][OD__WR];   /* G, from od__wino_build */
/* For the weight gradient, F(5x5, 4x4) on the same points: the 5x5
 * gradient of a kernel from an 8x8 input block and the 4x4 output-gradient
 * tile under it, dW = A5^T [ (G4 e G4^T) . (B^T d B) ] A5 (B^T as above).
 * A5^T[k][j] = p_j^k, A5^T[k][inf] = (k == 4); G4 is G's first four
 * columns with G4[inf] = (0, 0, 0, 1). */
static const float od__at5[OD__WR][OD__WA] = {
    {1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 0.0f},
    {0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f, 0.0f},
    {0.0f, 1.0f, 1.0f, 4.0f, 4.0f, 0.25f, 0.25f, 0.0f},
    {0.0f, 1.0f, -1.0f, 8.0f, -8.0f, 0.125f, -0.125f, 0.0f},
    {0.0f, 1.0f, 1.0f, 16.0f, 16.0f, 0.0625f, 0.0625f, 1.0f},
};
static float od__g4[OD__WA][OD__WM];

static pthread_once_t od__wino_once = PTHREAD_ONCE_INIT;

/* The Toom-Cook matrices for linear convolution of a 5-tap kernel with a
 * 4-tap signal, evaluated at points p_0..p_6 and infinity; correlation is
 * its transpose. With f_j = prod over l != j of (p_j - p_l):
 *   A^T[k][j] = p_j^k;            A^T[k][inf] = (k == 3)
 *   G[j][i]   = p_j^i / f_j;      G[inf][i]   = (i == 4)
 *   B^T[j][t] = coefficient of x^t in prod over l != j of (x - p_l);
 *   B^T[inf][t] = coefficient of x^t in prod over all l of (x - p_l).
 * G is kept in double until rounded once; A^T and B^T must equal the
 * tables above. */
static void od__wino_build(void)
{
    static const double pts[OD__WA - 1] = {0.0, 1.0, -1.0, 2.0, -2.0,
                                           0.5, -0.5};
    const int n = OD__WA - 1;
    for (int k = 0; k < OD__WM; k++) {
        for (int j = 0; j < n; j++)
            OD_ASSERT(od__at[k][j] == (float)pow(pts[j], k));
        OD_ASSERT(od__at[k][n] == (k == OD__WM - 1 ? 1.0f : 0.0f));
    }
    for (int j = 0; j < n; j++) {
        double f = 1.0;
        for (int l = 0; l < n; l++)
            if (l != j)
                f *= pts[j] - pts[l];
        for (int i = 0; i < OD__WR; i++)
            od__wino_g[j][i] = (float)(pow(pts[j], i) / f);
    }
    for (int i = 0; i < OD__WR; i++)
        od__wino_g[n][i] = i == OD__WR - 1 ? 1.0f : 0.0f;
    for (int j = 0; j <= n; j++)
        for (int i = 0; i < OD__WM; i++)
            od__g4[j][i] = j < n ? od__wino_g[j][i]
                                 : (i == OD__WM - 1 ? 1.0f : 0.0f);
    /* od__g4x's constants. */
    OD_ASSERT(od__g4[0][0] == -1.0f && od__g4[1][0] == OD__G4_1 &&
              od__g4[2][1] == -OD__G4_1 && od__g4[3][0] == OD__G4_3A &&
              od__g4[3][1] == OD__G4_3B && od__g4[3][2] == OD__G4_3C &&
              od__g4[3][3] == OD__G4_3D && od__g4[4][1] == -OD__G4_3B &&
              od__g4[5][0] == OD__G4_5A && od__g4[5][1] == OD__G4_5B &&
              od__g4[5][2] == OD__G4_5C && od__g4[5][3] == OD__G4_5D &&
              od__g4[6][3] == -OD__G4_5D && od__g4[7][3] == 1.0f);
    for (int k = 0; k < OD__WR; k++) {
        for (int j = 0; j < n; j++)
            OD_ASSERT(od__at5[k][j] == (float)pow(pts[j], k));
        OD_ASSERT(od__at5[k][n] == (k == OD__WR - 1 ? 1.0f : 0.0f));
    }
    for (int j = 0; j <= n; j++) {
        double c[OD__WA + 1] = {1.0};  /* c[t]: coefficient of x^t */
        int deg = 0;
        for (int l = 0; l < n; l++) {
            if (l == j)
                continue;
            for (int t = deg + 1; t >= 1; t--)
                c[t] = c[t - 1] - pts[l] * c[t];
            c[0] = -pts[l] * c[0];
            deg++;
        }
        for (int t = 0; t < OD__WA; t++)
            OD_ASSERT(od__bt[j][t] == (float)c[t]);
    }
}

/* Fewer tiles than this in a call (e.g. one example at a time, as DP-SGD's
 * per-example gradients are formed) leave the 64 products too small to
 * pay for the transforms: im2col runs those. */
#define OD__WINO_MIN_TILES 32

int od__conv2d_winograd(const od_conv2d_shape *s)
{
    long tiles = (long)s->n * ((od_conv2d_out_h(s) + OD__WM - 1) / OD__WM) *
                 ((od_conv2d_out_w(s) + OD__WM - 1) / OD__WM);
    od_isa isa = od_cpu_isa();
    return (isa == OD_ISA_AVX512 || isa == OD_ISA_AVX2) &&
           tiles >= OD__WINO_MIN_TILES &&
           s->kh == OD__WR && s->kw == OD__WR && s->stride_h == 1 &&
           s->stride_w == 1 && s->pad_h == s->pad_w && s->pad_h < OD__WR &&
           s->c_in >= 8 && s->c_out >= 8 && od_conv2d_out_h(s) >= OD__WM &&
           od_conv2d_out_w(s) >= OD__WM;
}

/* ---- Plan ------------------------------------------------------------------ */

static size_t od__r16(size_t n) { return (n + 15) & ~(size_t)15; }

static od__wino_plan od__wino_plan_of(int n, int c_in, int c_out, int h,
                                      int w, int pad, int nthreads)
{
    od__wino_plan p;
    memset(&p, 0, sizeof p);
    p.n = n, p.c_in = c_in, p.c_out = c_out, p.h = h, p.w = w, p.pad = pad;
    p.cip = (int)od__r16((size_t)c_in);
    p.cop = (int)od__r16((size_t)c_out);
    p.oh = h + 2 * pad - OD__WR + 1;
    p.ow = w + 2 * pad - OD__WR + 1;
    p.th = (p.oh + OD__WM - 1) / OD__WM;
    p.tw = (p.ow + OD__WM - 1) / OD__WM;
    p.tiles_img = p.th * p.tw;
    p.hp = p.th * OD__WM + OD__WR - 1;
    p.wp = p.tw * OD__WM + OD__WR - 1;
    int g = OD__WINO_TILES_TARGET / p.tiles_img;
    int fair = (n + nthreads - 1) / (nthreads > 0 ? nthreads : 1);
    if (g > fair)
        g = fair;
    if (g < 1)
        g = 1;
    p.group = g;
    p.groups = n > 0 ? (n + g - 1) / g : 0;
    p.t_max = g * p.tiles_img;
    p.xt_floats = (size_t)g * p.hp * p.wp * p.cip;
    p.v_floats = (size_t)OD__WA2 * p.t_max * p.cip;
    p.m_floats = (size_t)OD__WA2 * p.t_max * p.cop;
    p.yt_floats = (size_t)g * p.th * OD__WM * p.tw * OD__WM * p.cop;
    p.worker_floats = p.xt_floats + p.v_floats + p.m_floats + p.yt_floats;
    p.u_floats = (size_t)OD__WA2 * p.cip * c_out;
    /* wt for the forward kernels (C_in, 25, COP) or the adjoint's
     * (C_out, 25, CIP). */
    size_t wf = (size_t)c_in * 25 * p.cop, wa = (size_t)c_out * 25 * p.cip;
    p.wt_floats = wf > wa ? wf : wa;
    return p;
}

/* The plan of a convolution: the forward pass, the input gradient (its
 * adjoint) and the weight gradient all tile its output. */
static od__wino_plan od__plan_fwd(const od_conv2d_shape *s, int nthreads)
{
    return od__wino_plan_of(s->n, s->c_in, s->c_out, s->h, s->w, s->pad_h,
                            nthreads);
}

static size_t od__plan_floats(const od__wino_plan *p, int nthreads)
{
    size_t work = (size_t)nthreads * p->worker_floats;
    return p->u_floats + (work > p->wt_floats ? work : p->wt_floats);
}

/* The weight gradient's: per chunk (one per thread) its sum over tiles
 * (64, C_out, CIP); per worker the channels-last input and its transform,
 * the channels-last output gradient (group, TH*4, TW*4, COP) and its
 * transform (T, 64, COP). */
static size_t od__wgrad_acc_floats(const od__wino_plan *p)
{
    return (size_t)OD__WA2 * p->c_out * p->cip;
}

static size_t od__wgrad_worker_floats(const od__wino_plan *p)
{
    return p->xt_floats + p->v_floats + p->yt_floats + p->m_floats;
}

size_t od__conv2d_winograd_scratch(const od_conv2d_shape *s, int nthreads)
{
    if (nthreads < 1)
        nthreads = 1;
    od__wino_plan f = od__plan_fwd(s, nthreads);
    size_t a = od__plan_floats(&f, nthreads);
    size_t w = (size_t)nthreads * (od__wgrad_acc_floats(&f) +
                                   od__wgrad_worker_floats(&f));
    return a > w ? a : w;
}

/* ---- Driver ------------------------------------------------------------------- */

/* The kernels of the instruction set in use (od__conv2d_winograd runs
 * only on AVX-512 and AVX2). */
static const od__wino_kernels *od__wino_kernels_now(void)
{
    return od_cpu_isa() == OD_ISA_AVX512 ? &od__wino_kernels_avx512
                                         : &od__wino_kernels_avx2;
}

typedef struct {
    const od__wino_plan *p;
    const od__wino_kernels *k;
    int adjoint;         /* 0: y = conv(x); 1: the input gradient y of dy x */
    const float *x, *u, *bias;
    float *y, *work;     /* work: per worker xt, V, M, yt */
} od__wino_ctx;

/* Group g, in the worker's xt, V, M and yt. Forward: x channels-last, V =
 * B^T d B per tile, M = V U per position, y = A^T M A (+ bias). Adjoint,
 * for the input gradient (x holding dy): dy channels-last in yt's place,
 * dM = A dy A^T per tile in M's, dV = dM U'^T per position in V's, then
 * B dV B^T summed into the padded channels-last gradient in xt's, cropped
 * to y. */
static void od__wino_task(void *ctx_, int g, int worker)
{
    od__wino_ctx *c = ctx_;
    const od__wino_plan *p = c->p;
    const od__wino_kernels *k = c->k;
    size_t lo, hi;
    od__split((size_t)p->n, (size_t)p->groups, (size_t)g, &lo, &hi);
    int nimg = (int)(hi - lo);
    if (nimg == 0)
        return;
    int t_all = nimg * p->tiles_img;
    float *xt = c->work + (size_t)worker * p->worker_floats;
    float *v = xt + p->xt_floats;
    float *m = v + p->v_floats;
    float *yt = m + p->m_floats;
    /* V (T, 64, CIP) and M (T, 64, COP): position q's matrices are every
     * 64th row; U (64, CIP, C_out), U' (64, C_out, CIP). */
    size_t up = (size_t)p->cip * p->c_out;
    int ldv = OD__WA2 * p->cip, ldm = OD__WA2 * p->cop;
    if (!c->adjoint) {
        k->to_nhwc(p, nimg, c->x + lo * p->c_in * p->h * p->w, xt);
        k->input(p, nimg, xt, v);
        for (int q = 0; q < OD__WA2; q++)
            od_gemm(NULL, 0, 0, t_all, p->c_out, p->cip, 1.0f, v + q * p->cip,
                    ldv, c->u + q * up, p->c_out, 0.0f, m + q * p->cop, ldm);
        k->output(p, nimg, m, c->bias, yt);
        k->to_nchw(p, nimg, yt, c->y + lo * p->c_out * p->oh * p->ow);
        return;
    }
    k->dy_to_nhwc(p, nimg, c->x + lo * p->c_out * p->oh * p->ow, yt);
    k->dy_transform(p, nimg, 1, yt, m);
    for (int q = 0; q < OD__WA2; q++)
        od_gemm(NULL, 0, 0, t_all, p->cip, p->c_out, 1.0f, m + q * p->cop,
                ldm, c->u + q * up, p->cip, 0.0f, v + q * p->cip, ldv);
    k->input_adjoint(p, nimg, v, xt);
    size_t row = (size_t)p->wp * p->cip, plane = (size_t)p->h * p->w;
    for (int b = 0; b < nimg; b++)
        k->cl_to_planes(p->c_in, p->h, p->w,
                        xt + ((size_t)b * p->hp + p->pad) * row +
                            (size_t)p->pad * p->cip,
                        row, p->cip, c->y + (lo + b) * p->c_in * plane);
}

/* The convolution of plan p with weights w (adjoint 0: x to y), or its
 * input gradient (adjoint 1: dy in x, dx in y), in scratch of
 * od__conv2d_winograd_scratch floats. */
static void od__wino_run(od_pool *pool, const od__wino_plan *p, int adjoint,
                         const float *x, const float *w, const float *bias,
                         float *y, float *scratch)
{
    pthread_once(&od__wino_once, od__wino_build);
    if (p->groups == 0)
        return;
    /* wt lives where the workers' buffers go next. */
    const od__wino_kernels *k = od__wino_kernels_now();
    k->weights(p, adjoint, w, scratch + p->u_floats, scratch);
    od__wino_ctx c = {p, k, adjoint, x, scratch, bias, y,
                      scratch + p->u_floats};
    od_pool_run(pool, p->groups, od__wino_task, &c);
}

typedef struct {
    const od__wino_plan *p;
    const od__wino_kernels *k;
    const float *x, *dy;
    float *acc;          /* chunks' sums, (64, C_out, CIP) each */
    float *work;         /* per worker: xt, V, dyt, E */
    int chunks;
} od__wgrad_ctx;

/* Chunk `chunk`: its groups of images, in order, summed into its own
 * transformed accumulator (zeroed first). */
static void od__wgrad_task(void *ctx_, int chunk, int worker)
{
    od__wgrad_ctx *c = ctx_;
    const od__wino_plan *p = c->p;
    const od__wino_kernels *k = c->k;
    float *acc = c->acc + (size_t)chunk * od__wgrad_acc_floats(p);
    memset(acc, 0, od__wgrad_acc_floats(p) * sizeof *acc);
    float *xt = c->work + (size_t)worker * od__wgrad_worker_floats(p);
    float *v = xt + p->xt_floats;
    float *dyt = v + p->v_floats;
    float *e = dyt + p->yt_floats;
    size_t g0, g1;
    od__split((size_t)p->groups, (size_t)c->chunks, (size_t)chunk, &g0, &g1);
    for (size_t g = g0; g < g1; g++) {
        size_t lo, hi;
        od__split((size_t)p->n, (size_t)p->groups, g, &lo, &hi);
        int nimg = (int)(hi - lo);
        if (nimg == 0)
            continue;
        int t_all = nimg * p->tiles_img;
        k->to_nhwc(p, nimg, c->x + lo * p->c_in * p->h * p->w, xt);
        k->input(p, nimg, xt, v);
        k->dy_to_nhwc(p, nimg, c->dy + lo * p->c_out * p->oh * p->ow, dyt);
        k->dy_transform(p, nimg, 0, dyt, e);
        int ldv = OD__WA2 * p->cip, lde = OD__WA2 * p->cop;
        size_t ap = (size_t)p->c_out * p->cip;
        /* acc[q] (C_out, CIP) += E[q]^T (C_out, T) V[q] (T, CIP) */
        for (int q = 0; q < OD__WA2; q++)
            od_gemm(NULL, 1, 0, p->c_out, p->cip, t_all, 1.0f, e + q * p->cop,
                    lde, v + q * p->cip, ldv, 1.0f, acc + q * ap, p->cip);
    }
}

static void od__wgrad_run(od_pool *pool, const od__wino_plan *p,
                          const float *x, const float *dy, float *dw,
                          float *scratch)
{
    pthread_once(&od__wino_once, od__wino_build);
    if (p->groups == 0)
        return;
    int nthreads = od_pool_threads(pool);
    int chunks = nthreads < p->groups ? nthreads : p->groups;
    const od__wino_kernels *k = od__wino_kernels_now();
    od__wgrad_ctx c = {p, k, x, dy, scratch,
                       scratch + (size_t)nthreads * od__wgrad_acc_floats(p),
                       chunks};
    od_pool_run(pool, chunks, od__wgrad_task, &c);
    /* The chunks' sums, added in chunk order, then transformed once. */
    size_t n = od__wgrad_acc_floats(p);
    for (int ch = 1; ch < chunks; ch++)
        for (size_t j = 0; j < n; j++)
            scratch[j] += scratch[(size_t)ch * n + j];
    k->wgrad_output(p, scratch, dw);
}

void od__conv2d_winograd_forward(od_pool *pool, const od_conv2d_shape *s,
                                 const float *x, const float *w,
                                 const float *bias, float *y, float *scratch)
{
    OD_ASSERT(od__conv2d_winograd(s));
    od__wino_plan p = od__plan_fwd(s, od_pool_threads(pool));
    od__wino_run(pool, &p, 0, x, w, bias, y, scratch);
}

void od__conv2d_winograd_backward_data(od_pool *pool,
                                       const od_conv2d_shape *s,
                                       const float *dy, const float *w,
                                       float *dx, float *scratch)
{
    OD_ASSERT(od__conv2d_winograd(s));
    od__wino_plan p = od__plan_fwd(s, od_pool_threads(pool));
    od__wino_run(pool, &p, 1, dy, w, NULL, dx, scratch);
}

void od__conv2d_winograd_backward_weight(od_pool *pool,
                                         const od_conv2d_shape *s,
                                         const float *x, const float *dy,
                                         float *dw, float *db, float *scratch)
{
    OD_ASSERT(od__conv2d_winograd(s));
    od__wino_plan p = od__plan_fwd(s, od_pool_threads(pool));
    od__wgrad_run(pool, &p, x, dy, dw, scratch);
    if (db)
        od_conv2d_bias_grad(s, dy, db);
}
