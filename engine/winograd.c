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
 * transforms run on 16 channels at once in AVX-512 registers: a group's
 * images are first copied channels-last (and zero-padded), and its
 * outputs copied back to NCHW at the end. AVX-512 only; other ISAs, and
 * calls with fewer than OD__WINO_MIN_TILES tiles, use the im2col lowering
 * of conv.c. The matrices come from the Toom-Cook construction on the
 * points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (od__wino_build); the
 * results differ from the direct product by the transforms' rounding: a
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

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum {
    OD__WM = 4,                 /* outputs per tile side */
    OD__WR = 5,                 /* kernel side */
    OD__WA = OD__WM + OD__WR - 1, /* transformed block side: 8 */
    OD__WA2 = OD__WA * OD__WA,  /* positions per block: 64 */
};

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
static float od__g[OD__WA][OD__WR];   /* G, from od__wino_build */
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

/* Coefficients of G4 (od__g4, checked against them in od__wino_build). */
#define OD__G4_1 ((float)(-2.0 / 9.0))
#define OD__G4_3A ((float)(1.0 / 90.0))
#define OD__G4_3B ((float)(1.0 / 45.0))
#define OD__G4_3C ((float)(2.0 / 45.0))
#define OD__G4_3D ((float)(4.0 / 45.0))
#define OD__G4_5A ((float)(32.0 / 45.0))
#define OD__G4_5B ((float)(16.0 / 45.0))
#define OD__G4_5C ((float)(8.0 / 45.0))
#define OD__G4_5D ((float)(4.0 / 45.0))
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
            od__g[j][i] = (float)(pow(pts[j], i) / f);
    }
    for (int i = 0; i < OD__WR; i++)
        od__g[n][i] = i == OD__WR - 1 ? 1.0f : 0.0f;
    for (int j = 0; j <= n; j++)
        for (int i = 0; i < OD__WM; i++)
            od__g4[j][i] = j < n ? od__g[j][i] : (i == OD__WM - 1 ? 1.0f : 0.0f);
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
    return od_cpu_isa() == OD_ISA_AVX512 && tiles >= OD__WINO_MIN_TILES &&
           s->kh == OD__WR && s->kw == OD__WR && s->stride_h == 1 &&
           s->stride_w == 1 && s->pad_h == s->pad_w && s->pad_h < OD__WR &&
           s->c_in >= 8 && s->c_out >= 8 && od_conv2d_out_h(s) >= OD__WM &&
           od_conv2d_out_w(s) >= OD__WM;
}

/* ---- Plan ------------------------------------------------------------------ */

static size_t od__r16(size_t n) { return (n + 15) & ~(size_t)15; }

typedef struct {
    int n, c_in, c_out, h, w, pad;   /* the convolution computed */
    int cip, cop;                    /* channels rounded up to 16 */
    int oh, ow, th, tw, tiles_img;   /* output, tiles down and across */
    int hp, wp;                      /* padded input block: th*4+4, tw*4+4 */
    int group, groups;               /* images per group, groups */
    int t_max;                       /* tiles in the largest group */
    /* Per worker: the channels-last input (group, HP, WP, CIP), V (T, 64,
     * CIP), M (T, 64, COP) and the channels-last output (group, TH*4,
     * TW*4, COP). Tile-major V and M keep each tile's 64 transformed
     * vectors together, so the transforms write and read them in order. */
    size_t xt_floats, v_floats, m_floats, yt_floats, worker_floats;
    size_t u_floats;                 /* U (64, CIP, C_out) */
    size_t wt_floats;                /* kernels channels-last (C_in, 25, COP) */
} od__wino_plan;

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

#if defined(__x86_64__)

#define OD__WT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
/* Transforms unrolled whole: the tables' zeros and ones then fold away. */
#define OD__UNROLL _Pragma("GCC unroll 8")

static inline __attribute__((always_inline)) __mmask16 od__lanes(int n)
{
    return n >= 16 ? (__mmask16)0xffff
                   : (n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u));
}

/* The transformed kernels G g G^T of w (C_out, C_in, 5, 5), g the kernel
 * from input channel i to output channel o:
 *  - forward: U[xi nu][i][o] (64, CIP, C_out), rows i >= C_in zero;
 *  - adjoint (for the input gradient): U'[xi nu][o][i] (64, C_out, CIP),
 *    columns i >= C_in zero.
 * The kernels are first copied to wt (rows, 25, columns rounded up to 16),
 * columns last, so that the transform runs on 16 columns at once. */
OD__WT static void od__wino_weights(const od__wino_plan *p, int adjoint,
                                    const float *w, float *wt, float *u)
{
    const int c_in = p->c_in, c_out = p->c_out;
    const int rows = adjoint ? c_out : c_in, cols = adjoint ? c_in : c_out;
    const int colp = adjoint ? p->cip : p->cop;   /* wt's row length */
    const int ld = adjoint ? p->cip : c_out;      /* u's row length */
    size_t plane = (size_t)(adjoint ? c_out : p->cip) * ld;
    memset(u, 0, p->u_floats * sizeof *u);
    memset(wt, 0, (size_t)rows * 25 * colp * sizeof *wt);
    for (int o = 0; o < c_out; o++)
        for (int i = 0; i < c_in; i++) {
            const float *src = w + ((size_t)o * c_in + i) * 25;
            int r = adjoint ? o : i, c = adjoint ? i : o;
            for (int k = 0; k < 25; k++)
                wt[((size_t)r * 25 + k) * colp + c] = src[k];
        }
    for (int r = 0; r < rows; r++)
        for (int cb = 0; cb < cols; cb += 16) {
            __mmask16 live = od__lanes(ld - cb);
            const float *g = wt + (size_t)r * 25 * colp + cb;  /* (25, colp) */
            __m512 tmp[OD__WA][OD__WR];   /* G g */
            for (int a = 0; a < OD__WA; a++)
                for (int c = 0; c < OD__WR; c++) {
                    __m512 acc = _mm512_setzero_ps();
                    for (int k = 0; k < OD__WR; k++)
                        acc = _mm512_fmadd_ps(
                            _mm512_set1_ps(od__g[a][k]),
                            _mm512_loadu_ps(g + (size_t)(k * OD__WR + c) * colp),
                            acc);
                    tmp[a][c] = acc;
                }
            float *dst = u + (size_t)r * ld + cb;
            for (int a = 0; a < OD__WA; a++)
                for (int b = 0; b < OD__WA; b++) {
                    __m512 acc = _mm512_setzero_ps();
                    for (int c = 0; c < OD__WR; c++)
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(od__g[b][c]),
                                              tmp[a][c], acc);
                    _mm512_mask_storeu_ps(dst + (size_t)(a * OD__WA + b) * plane,
                                          live, acc);
                }
        }
}

/* r[i][j] -> r[j][i] for a 16 x 16 block of floats, in registers. */
static inline __attribute__((always_inline)) OD__WT void
od__transpose16(__m512 r[16])
{
    __m512 a[16], b[16];
    for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    /* b[4i + j], 128-bit lane L: column 4L + j of rows 4i..4i+3. */
    for (int i = 0; i < 4; i++) {
        __m512d a0 = _mm512_castps_pd(a[4 * i]), a1 = _mm512_castps_pd(a[4 * i + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * i + 2]), a3 = _mm512_castps_pd(a[4 * i + 3]);
        b[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    for (int j = 0; j < 4; j++) {
        __m512 c0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x44);
        __m512 c1 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xee);
        __m512 c2 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x44);
        __m512 c3 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xee);
        r[j] = _mm512_shuffle_f32x4(c0, c2, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(c0, c2, 0xdd);
        r[8 + j] = _mm512_shuffle_f32x4(c1, c3, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(c1, c3, 0xdd);
    }
}

/* One image's planes src (C, H, W) to channels-last rows: pixel (iy, ix)
 * goes to dst + iy * row + ix * cp, channels c..cp-1 zero. 16 channels by
 * 16 pixels at a time through a register transpose. */
OD__WT static void od__planes_to_cl(int c, int h, int w, const float *src,
                                    size_t row, int cp, float *dst)
{
    size_t plane = (size_t)h * w;
    for (int cb = 0; cb < cp; cb += 16)
        for (int iy = 0; iy < h; iy++)
            for (int x0 = 0; x0 < w; x0 += 16) {
                __mmask16 m = od__lanes(w - x0);
                __m512 r[16];
                for (int k = 0; k < 16; k++)
                    r[k] = cb + k < c
                               ? _mm512_maskz_loadu_ps(
                                     m, src + (size_t)(cb + k) * plane +
                                            (size_t)iy * w + x0)
                               : _mm512_setzero_ps();
                od__transpose16(r);
                int n = w - x0 < 16 ? w - x0 : 16;
                for (int k = 0; k < n; k++)
                    _mm512_storeu_ps(dst + (size_t)iy * row +
                                         (size_t)(x0 + k) * cp + cb, r[k]);
            }
}

/* The inverse for one image: dst (C, H, W) from channels-last rows src. */
OD__WT static void od__cl_to_planes(int c, int h, int w, const float *src,
                                    size_t row, int cp, float *dst)
{
    size_t plane = (size_t)h * w;
    for (int cb = 0; cb < c; cb += 16)
        for (int iy = 0; iy < h; iy++)
            for (int x0 = 0; x0 < w; x0 += 16) {
                int n = w - x0 < 16 ? w - x0 : 16;
                __m512 r[16];
                for (int k = 0; k < 16; k++)
                    r[k] = k < n ? _mm512_loadu_ps(src + (size_t)iy * row +
                                                   (size_t)(x0 + k) * cp + cb)
                                 : _mm512_setzero_ps();
                od__transpose16(r);
                __mmask16 m = od__lanes(n);
                for (int k = 0; k < 16 && cb + k < c; k++)
                    _mm512_mask_storeu_ps(dst + (size_t)(cb + k) * plane +
                                              (size_t)iy * w + x0, m, r[k]);
            }
}

/* xt (nimg, HP, WP, CIP): images [0, nimg) of x (nimg, C_in, H, W),
 * channels last, with the zero padding around (pad rows and columns before,
 * whatever the tiles need after) and zero channels up to CIP. */
OD__WT static void od__wino_to_nhwc(const od__wino_plan *p, int nimg,
                                    const float *x, float *xt)
{
    size_t plane = (size_t)p->h * p->w;
    size_t row = (size_t)p->wp * p->cip;         /* floats per xt row */
    for (int b = 0; b < nimg; b++) {
        float *img = xt + (size_t)b * p->hp * row;
        /* Zero the padding: rows above and below, columns left and right. */
        memset(img, 0, (size_t)p->pad * row * sizeof *img);
        memset(img + (size_t)(p->pad + p->h) * row, 0,
               (size_t)(p->hp - p->pad - p->h) * row * sizeof *img);
        for (int iy = p->pad; iy < p->pad + p->h; iy++) {
            memset(img + (size_t)iy * row, 0,
                   (size_t)p->pad * p->cip * sizeof *img);
            memset(img + (size_t)iy * row + (size_t)(p->pad + p->w) * p->cip,
                   0, (size_t)(p->wp - p->pad - p->w) * p->cip * sizeof *img);
        }
        od__planes_to_cl(p->c_in, p->h, p->w, x + (size_t)b * p->c_in * plane,
                         row, p->cip,
                         img + (size_t)p->pad * row + (size_t)p->pad * p->cip);
    }
}

/* o = B^T d for 8 vectors d, using the table's structure: rows 1-2, 3-4
 * and 5-6 are sums and differences of an even part (d2, d4, d6) and an odd
 * part (d1, d3, d5), rows 0 and 7 two differences each; 26 operations
 * instead of the 46 the table's non-zero entries would take. The
 * coefficients are od__bt's (checked there against the construction). */
static inline __attribute__((always_inline)) OD__WT void
od__bt8(const __m512 d[8], __m512 o[8])
{
#define OD__S(x) _mm512_set1_ps(x)
    /* Row 0: -d0 + 5.25 d2 - 5.25 d4 + d6; row 7: -d1 + 5.25 d3 - 5.25 d5 + d7. */
    o[0] = _mm512_fmadd_ps(OD__S(5.25f), _mm512_sub_ps(d[2], d[4]),
                           _mm512_sub_ps(d[6], d[0]));
    o[7] = _mm512_fmadd_ps(OD__S(5.25f), _mm512_sub_ps(d[3], d[5]),
                           _mm512_sub_ps(d[7], d[1]));
    /* Rows 1, 2: (d2 - 4.25 d4 + d6) +- (d1 - 4.25 d3 + d5). */
    __m512 e = _mm512_fnmadd_ps(OD__S(4.25f), d[4], _mm512_add_ps(d[2], d[6]));
    __m512 q = _mm512_fnmadd_ps(OD__S(4.25f), d[3], _mm512_add_ps(d[1], d[5]));
    o[1] = _mm512_add_ps(e, q);
    o[2] = _mm512_sub_ps(e, q);
    /* Rows 3, 4: (0.25 d2 - 1.25 d4 + d6) +- (0.5 d1 - 2.5 d3 + 2 d5). */
    e = _mm512_fmadd_ps(OD__S(0.25f), d[2],
                        _mm512_fnmadd_ps(OD__S(1.25f), d[4], d[6]));
    q = _mm512_fmadd_ps(OD__S(0.5f), d[1],
                        _mm512_fmadd_ps(OD__S(2.0f), d[5],
                                        _mm512_mul_ps(OD__S(-2.5f), d[3])));
    o[3] = _mm512_add_ps(e, q);
    o[4] = _mm512_sub_ps(e, q);
    /* Rows 5, 6: (4 d2 - 5 d4 + d6) +- (2 d1 - 2.5 d3 + 0.5 d5). */
    e = _mm512_fmadd_ps(OD__S(4.0f), d[2],
                        _mm512_fnmadd_ps(OD__S(5.0f), d[4], d[6]));
    q = _mm512_fmadd_ps(OD__S(2.0f), d[1],
                        _mm512_fmadd_ps(OD__S(0.5f), d[5],
                                        _mm512_mul_ps(OD__S(-2.5f), d[3])));
    o[5] = _mm512_add_ps(e, q);
    o[6] = _mm512_sub_ps(e, q);
#undef OD__S
}

/* y = A^T m (rows = 4, od__at) or A5^T m (rows = 5, od__at5) for 8
 * vectors m, by the sums and differences of the +-p pairs (m1, m2),
 * (m3, m4), (m5, m6): row k is the sum of p^k m_p, plus m7 on the last. */
static inline __attribute__((always_inline)) OD__WT void
od__at_rows(const int rows, const __m512 m[8], __m512 *y)
{
#define OD__S(x) _mm512_set1_ps(x)
    __m512 s1 = _mm512_add_ps(m[1], m[2]), d1 = _mm512_sub_ps(m[1], m[2]);
    __m512 s2 = _mm512_add_ps(m[3], m[4]), d2 = _mm512_sub_ps(m[3], m[4]);
    __m512 s3 = _mm512_add_ps(m[5], m[6]), d3 = _mm512_sub_ps(m[5], m[6]);
    y[0] = _mm512_add_ps(_mm512_add_ps(m[0], s1), _mm512_add_ps(s2, s3));
    y[1] = _mm512_fmadd_ps(OD__S(0.5f), d3, _mm512_fmadd_ps(OD__S(2.0f), d2, d1));
    y[2] = _mm512_fmadd_ps(OD__S(0.25f), s3, _mm512_fmadd_ps(OD__S(4.0f), s2, s1));
    y[3] = _mm512_fmadd_ps(OD__S(0.125f), d3, _mm512_fmadd_ps(OD__S(8.0f), d2, d1));
    if (rows == 5)
        y[4] = _mm512_fmadd_ps(OD__S(0.0625f), s3,
                               _mm512_fmadd_ps(OD__S(16.0f), s2, s1));
    y[rows - 1] = _mm512_add_ps(y[rows - 1], m[7]);
#undef OD__S
}

/* out[k * rows + l] = (A^T M A)[k][l] (rows 4 or 5, as od__at_rows) for the
 * 8x8 block of vectors M[a][e] at src + (a * 8 + e) * stride. */
static inline __attribute__((always_inline)) OD__WT void
od__at_block(const int rows, const float *src, size_t stride, __m512 *out)
{
    __m512 tmp[OD__WR][OD__WA];   /* A^T M, by columns */
    OD__UNROLL
    for (int e = 0; e < OD__WA; e++) {
        __m512 mv[OD__WA], y[OD__WR];
        OD__UNROLL
        for (int a = 0; a < OD__WA; a++)
            mv[a] = _mm512_loadu_ps(src + (size_t)(a * OD__WA + e) * stride);
        od__at_rows(rows, mv, y);
        OD__UNROLL
        for (int k = 0; k < rows; k++)
            tmp[k][e] = y[k];
    }
    OD__UNROLL
    for (int k = 0; k < rows; k++)
        od__at_rows(rows, tmp[k], out + k * rows);
}


/* o = G4 e for 4 vectors e, by even (e0, e2) and odd (e1, e3) parts. */
static inline __attribute__((always_inline)) OD__WT void
od__g4x(const __m512 e[4], __m512 o[8])
{
#define OD__S(x) _mm512_set1_ps(x)
    o[0] = _mm512_sub_ps(_mm512_setzero_ps(), e[0]);
    __m512 ev = _mm512_add_ps(e[0], e[2]), od = _mm512_add_ps(e[1], e[3]);
    o[1] = _mm512_mul_ps(OD__S(OD__G4_1), _mm512_add_ps(ev, od));
    o[2] = _mm512_mul_ps(OD__S(OD__G4_1), _mm512_sub_ps(ev, od));
    ev = _mm512_fmadd_ps(OD__S(OD__G4_3C), e[2], _mm512_mul_ps(OD__S(OD__G4_3A), e[0]));
    od = _mm512_fmadd_ps(OD__S(OD__G4_3D), e[3], _mm512_mul_ps(OD__S(OD__G4_3B), e[1]));
    o[3] = _mm512_add_ps(ev, od);
    o[4] = _mm512_sub_ps(ev, od);
    ev = _mm512_fmadd_ps(OD__S(OD__G4_5C), e[2], _mm512_mul_ps(OD__S(OD__G4_5A), e[0]));
    od = _mm512_fmadd_ps(OD__S(OD__G4_5D), e[3], _mm512_mul_ps(OD__S(OD__G4_5B), e[1]));
    o[5] = _mm512_add_ps(ev, od);
    o[6] = _mm512_sub_ps(ev, od);
    o[7] = e[3];
#undef OD__S
}

/* o = A e for 4 vectors e (A = od__at transposed: the adjoint of A^T),
 * by even (e0, e2) and odd (e1, e3) parts. */
static inline __attribute__((always_inline)) OD__WT void
od__a8x(const __m512 e[4], __m512 o[8])
{
#define OD__S(x) _mm512_set1_ps(x)
    o[0] = e[0];
    __m512 ev = _mm512_add_ps(e[0], e[2]), od = _mm512_add_ps(e[1], e[3]);
    o[1] = _mm512_add_ps(ev, od);
    o[2] = _mm512_sub_ps(ev, od);
    ev = _mm512_fmadd_ps(OD__S(4.0f), e[2], e[0]);
    od = _mm512_fmadd_ps(OD__S(8.0f), e[3], _mm512_mul_ps(OD__S(2.0f), e[1]));
    o[3] = _mm512_add_ps(ev, od);
    o[4] = _mm512_sub_ps(ev, od);
    ev = _mm512_fmadd_ps(OD__S(0.25f), e[2], e[0]);
    od = _mm512_fmadd_ps(OD__S(0.125f), e[3], _mm512_mul_ps(OD__S(0.5f), e[1]));
    o[5] = _mm512_add_ps(ev, od);
    o[6] = _mm512_sub_ps(ev, od);
    o[7] = e[3];
#undef OD__S
}

/* o = B v for 8 vectors v (B = od__bt transposed: the adjoint of B^T), by
 * the sums and differences of the pairs (v1, v2), (v3, v4), (v5, v6). */
static inline __attribute__((always_inline)) OD__WT void
od__b8(const __m512 v[8], __m512 o[8])
{
#define OD__S(x) _mm512_set1_ps(x)
    __m512 s1 = _mm512_add_ps(v[1], v[2]), d1 = _mm512_sub_ps(v[1], v[2]);
    __m512 s2 = _mm512_add_ps(v[3], v[4]), d2 = _mm512_sub_ps(v[3], v[4]);
    __m512 s3 = _mm512_add_ps(v[5], v[6]), d3 = _mm512_sub_ps(v[5], v[6]);
    o[0] = _mm512_sub_ps(_mm512_setzero_ps(), v[0]);
    o[1] = _mm512_sub_ps(
        _mm512_fmadd_ps(OD__S(0.5f), d2, _mm512_fmadd_ps(OD__S(2.0f), d3, d1)),
        v[7]);
    o[2] = _mm512_fmadd_ps(OD__S(5.25f), v[0],
                           _mm512_fmadd_ps(OD__S(0.25f), s2,
                                           _mm512_fmadd_ps(OD__S(4.0f), s3, s1)));
    o[3] = _mm512_fmadd_ps(OD__S(5.25f), v[7],
                           _mm512_fmadd_ps(OD__S(-4.25f), d1,
                                           _mm512_mul_ps(OD__S(-2.5f),
                                                         _mm512_add_ps(d2, d3))));
    o[4] = _mm512_fnmadd_ps(OD__S(5.25f), v[0],
                            _mm512_fnmadd_ps(OD__S(4.25f), s1,
                                             _mm512_fnmadd_ps(OD__S(1.25f), s2,
                                                              _mm512_mul_ps(OD__S(-5.0f), s3))));
    o[5] = _mm512_fnmadd_ps(OD__S(5.25f), v[7],
                            _mm512_fmadd_ps(OD__S(2.0f), d2,
                                            _mm512_fmadd_ps(OD__S(0.5f), d3, d1)));
    o[6] = _mm512_add_ps(_mm512_add_ps(v[0], s1), _mm512_add_ps(s2, s3));
    o[7] = v[7];
#undef OD__S
}

/* V[t][xi nu][ch] (T, 64, CIP) = B^T d B for every tile t and 16 channels
 * at a time, d the tile's 8x8 block of xt. */
OD__WT static void od__wino_input(const od__wino_plan *p, int nimg,
                                  const float *xt, float *v, int t_all)
{
    (void)t_all;
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *blk = xt + (((size_t)b * p->hp + ty * OD__WM) *
                                         p->wp + tx * OD__WM) * p->cip;
                for (int cb = 0; cb < p->cip; cb += 16) {
                    /* B^T d one column at a time, then each row of that
                     * times B. */
                    __m512 tmp[OD__WA][OD__WA];
                    OD__UNROLL
                    for (int c = 0; c < OD__WA; c++) {
                        __m512 d[OD__WA], o[OD__WA];
                        OD__UNROLL
                        for (int r = 0; r < OD__WA; r++)
                            d[r] = _mm512_loadu_ps(
                                blk + ((size_t)r * p->wp + c) * p->cip + cb);
                        od__bt8(d, o);
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            tmp[a][c] = o[a];
                    }
                    float *dst = v + (size_t)t * OD__WA2 * p->cip + cb;
                    OD__UNROLL
                    for (int a = 0; a < OD__WA; a++) {
                        __m512 o[OD__WA];
                        od__bt8(tmp[a], o);
                        OD__UNROLL
                        for (int e = 0; e < OD__WA; e++)
                            _mm512_storeu_ps(
                                dst + (size_t)(a * OD__WA + e) * p->cip, o[e]);
                    }
                }
            }
}

/* The adjoint of od__wino_input: xt (nimg, HP, WP, CIP) = the sum over
 * tiles of B v B^T placed at each tile's 8x8 block (blocks overlap by
 * four rows and columns), v from dV[t][xi nu][ch] (T, 64, CIP); xt is
 * overwritten. */
OD__WT static void od__wino_input_adjoint(const od__wino_plan *p, int nimg,
                                          const float *v, float *xt)
{
    memset(xt, 0, (size_t)nimg * p->hp * p->wp * p->cip * sizeof *xt);
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                float *blk = xt + (((size_t)b * p->hp + ty * OD__WM) * p->wp +
                                   tx * OD__WM) * p->cip;
                const float *src = v + (size_t)t * OD__WA2 * p->cip;
                for (int cb = 0; cb < p->cip; cb += 16) {
                    /* B v one column at a time, then each row times B^T. */
                    __m512 tmp[OD__WA][OD__WA];
                    OD__UNROLL
                    for (int e = 0; e < OD__WA; e++) {
                        __m512 d[OD__WA], o[OD__WA];
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            d[a] = _mm512_loadu_ps(
                                src + (size_t)(a * OD__WA + e) * p->cip + cb);
                        od__b8(d, o);
                        OD__UNROLL
                        for (int r = 0; r < OD__WA; r++)
                            tmp[r][e] = o[r];
                    }
                    OD__UNROLL
                    for (int r = 0; r < OD__WA; r++) {
                        __m512 o[OD__WA];
                        od__b8(tmp[r], o);
                        OD__UNROLL
                        for (int c = 0; c < OD__WA; c++) {
                            float *dst = blk + ((size_t)r * p->wp + c) * p->cip + cb;
                            _mm512_storeu_ps(dst, _mm512_add_ps(
                                                      _mm512_loadu_ps(dst), o[c]));
                        }
                    }
                }
            }
}

/* yt (nimg, TH*4, TW*4, COP) = A^T m A (+ bias) for every tile and 16
 * output channels at a time, m from M[t][xi nu][o] (T, 64, COP). */
OD__WT static void od__wino_output(const od__wino_plan *p, int nimg,
                                   const float *m, int t_all,
                                   const float *bias, float *yt)
{
    (void)t_all;
    int yw = p->tw * OD__WM;
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *src = m + (size_t)t * OD__WA2 * p->cop;
                for (int cb = 0; cb < p->cop; cb += 16) {
                    __mmask16 live = p->c_out - cb >= 16
                                         ? (__mmask16)0xffff
                                         : (__mmask16)((1u << (p->c_out - cb)) - 1u);
                    __m512 bv = bias ? _mm512_maskz_loadu_ps(live, bias + cb)
                                     : _mm512_setzero_ps();
                    __m512 y[OD__WM * OD__WM];
                    od__at_block(OD__WM, src + cb, p->cop, y);
                    OD__UNROLL
                    for (int k = 0; k < OD__WM; k++) {
                        OD__UNROLL
                        for (int l = 0; l < OD__WM; l++) {
                            float *dst = yt + (((size_t)b * p->th * OD__WM +
                                                ty * OD__WM + k) * yw +
                                               tx * OD__WM + l) * p->cop + cb;
                            _mm512_storeu_ps(dst, _mm512_add_ps(y[k * OD__WM + l], bv));
                        }
                    }
                }
            }
}

/* y (nimg, C_out, OH, OW) from yt (nimg, TH*4, TW*4, COP), dropping the
 * outputs past the edge. */
OD__WT static void od__wino_to_nchw(const od__wino_plan *p, int nimg,
                                    const float *yt, float *y)
{
    size_t row = (size_t)p->tw * OD__WM * p->cop;
    size_t img = (size_t)p->th * OD__WM * row;
    for (int b = 0; b < nimg; b++)
        od__cl_to_planes(p->c_out, p->oh, p->ow, yt + (size_t)b * img, row,
                         p->cop,
                         y + (size_t)b * p->c_out * p->oh * p->ow);
}

/* dyt (nimg, TH*4, TW*4, COP): images [0, nimg) of dy (nimg, C_out, OH,
 * OW), channels last, zero past the edge and in channels past C_out. */
OD__WT static void od__wino_dy_to_nhwc(const od__wino_plan *p, int nimg,
                                       const float *dy, float *dyt)
{
    int yh = p->th * OD__WM, yw = p->tw * OD__WM;
    size_t row = (size_t)yw * p->cop, plane = (size_t)p->oh * p->ow;
    for (int b = 0; b < nimg; b++) {
        float *img = dyt + (size_t)b * yh * row;
        if (yh > p->oh || yw > p->ow)
            memset(img, 0, (size_t)yh * row * sizeof *img);
        od__planes_to_cl(p->c_out, p->oh, p->ow,
                         dy + (size_t)b * p->c_out * plane, row, p->cop, img);
    }
}

/* E[t][xi nu][o] (T, 64, COP) = G4 e G4^T (for the weight gradient) or
 * A e A^T (adjoint, for the input gradient) for every 4x4 tile e of dyt,
 * 16 channels at a time. */
static inline __attribute__((always_inline)) OD__WT void
od__dy_expand(const int adjoint, const __m512 e[4], __m512 o[8])
{
    if (adjoint)
        od__a8x(e, o);
    else
        od__g4x(e, o);
}

OD__WT static void od__wino_dy_transform(const od__wino_plan *p, int nimg,
                                         int adjoint, const float *dyt,
                                         float *e_out, int t_all)
{
    int yw = p->tw * OD__WM;
    (void)t_all;
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *blk = dyt + (((size_t)b * p->th * OD__WM +
                                           ty * OD__WM) * yw + tx * OD__WM) *
                                             p->cop;
                for (int cb = 0; cb < p->cop; cb += 16) {
                    __m512 tmp[OD__WA][OD__WM];   /* G4 e, by columns */
                    OD__UNROLL
                    for (int c = 0; c < OD__WM; c++) {
                        __m512 d[OD__WM], o[OD__WA];
                        OD__UNROLL
                        for (int r = 0; r < OD__WM; r++)
                            d[r] = _mm512_loadu_ps(
                                blk + ((size_t)r * yw + c) * p->cop + cb);
                        od__dy_expand(adjoint, d, o);
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            tmp[a][c] = o[a];
                    }
                    float *dst = e_out + (size_t)t * OD__WA2 * p->cop + cb;
                    OD__UNROLL
                    for (int a = 0; a < OD__WA; a++) {
                        __m512 o[OD__WA];
                        od__dy_expand(adjoint, tmp[a], o);
                        OD__UNROLL
                        for (int f = 0; f < OD__WA; f++)
                            _mm512_storeu_ps(
                                dst + (size_t)(a * OD__WA + f) * p->cop, o[f]);
                    }
                }
            }
}

/* dw[o][i] (C_out, C_in, 5, 5) += A5^T acc[.][o][i] A5 for the summed
 * transformed products acc (64, C_out, CIP), 16 input channels at a time;
 * once per call. */
OD__WT static void od__wino_wgrad_output(const od__wino_plan *p,
                                         const float *acc, float *dw)
{
    size_t plane = (size_t)p->c_out * p->cip;
    for (int o = 0; o < p->c_out; o++)
        for (int ib = 0; ib < p->c_in; ib += 16) {
            const float *src = acc + (size_t)o * p->cip + ib;
            /* out[k * 5 + l][lane]: the 25 taps of 16 input channels. */
            __m512 y[OD__WR * OD__WR];
            od__at_block(OD__WR, src, plane, y);
            float out[OD__WR * OD__WR][16];
            for (int t = 0; t < OD__WR * OD__WR; t++)
                _mm512_storeu_ps(out[t], y[t]);
            int n = p->c_in - ib < 16 ? p->c_in - ib : 16;
            for (int j = 0; j < n; j++) {
                float *dst = dw + ((size_t)o * p->c_in + ib + j) * 25;
                for (int t = 0; t < 25; t++)
                    dst[t] += out[t][j];
            }
        }
}

/* ---- Driver ------------------------------------------------------------------- */

typedef struct {
    const od__wino_plan *p;
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
        od__wino_to_nhwc(p, nimg, c->x + lo * p->c_in * p->h * p->w, xt);
        od__wino_input(p, nimg, xt, v, t_all);
        for (int q = 0; q < OD__WA2; q++)
            od_gemm(NULL, 0, 0, t_all, p->c_out, p->cip, 1.0f, v + q * p->cip,
                    ldv, c->u + q * up, p->c_out, 0.0f, m + q * p->cop, ldm);
        od__wino_output(p, nimg, m, t_all, c->bias, yt);
        od__wino_to_nchw(p, nimg, yt, c->y + lo * p->c_out * p->oh * p->ow);
        return;
    }
    od__wino_dy_to_nhwc(p, nimg, c->x + lo * p->c_out * p->oh * p->ow, yt);
    od__wino_dy_transform(p, nimg, 1, yt, m, t_all);
    for (int q = 0; q < OD__WA2; q++)
        od_gemm(NULL, 0, 0, t_all, p->cip, p->c_out, 1.0f, m + q * p->cop,
                ldm, c->u + q * up, p->cip, 0.0f, v + q * p->cip, ldv);
    od__wino_input_adjoint(p, nimg, v, xt);
    size_t row = (size_t)p->wp * p->cip, plane = (size_t)p->h * p->w;
    for (int b = 0; b < nimg; b++)
        od__cl_to_planes(p->c_in, p->h, p->w,
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
    od__wino_weights(p, adjoint, w, scratch + p->u_floats, scratch);
    od__wino_ctx c = {p, adjoint, x, scratch, bias, y, scratch + p->u_floats};
    od_pool_run(pool, p->groups, od__wino_task, &c);
}

typedef struct {
    const od__wino_plan *p;
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
        od__wino_to_nhwc(p, nimg, c->x + lo * p->c_in * p->h * p->w, xt);
        od__wino_input(p, nimg, xt, v, t_all);
        od__wino_dy_to_nhwc(p, nimg, c->dy + lo * p->c_out * p->oh * p->ow,
                            dyt);
        od__wino_dy_transform(p, nimg, 0, dyt, e, t_all);
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
    od__wgrad_ctx c = {p, x, dy, scratch,
                       scratch + (size_t)nthreads * od__wgrad_acc_floats(p),
                       chunks};
    od_pool_run(pool, chunks, od__wgrad_task, &c);
    /* The chunks' sums, added in chunk order, then transformed once. */
    size_t n = od__wgrad_acc_floats(p);
    for (int ch = 1; ch < chunks; ch++)
        for (size_t j = 0; j < n; j++)
            scratch[j] += scratch[(size_t)ch * n + j];
    od__wino_wgrad_output(p, scratch, dw);
}

#else

static void od__wino_run(od_pool *pool, const od__wino_plan *p, int adjoint,
                         const float *x, const float *w, const float *bias,
                         float *y, float *scratch)
{
    (void)pool, (void)p, (void)adjoint, (void)x, (void)w, (void)bias, (void)y;
    (void)scratch;
    (void)od__wino_build, (void)od__wino_once;  /* x86-64 only */
    OD_ASSERT(!"Winograd convolution on a non-x86-64 build");
}

static void od__wgrad_run(od_pool *pool, const od__wino_plan *p,
                          const float *x, const float *dy, float *dw,
                          float *scratch)
{
    (void)pool, (void)p, (void)x, (void)dy, (void)dw, (void)scratch;
    OD_ASSERT(!"Winograd convolution on a non-x86-64 build");
}

#endif

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
