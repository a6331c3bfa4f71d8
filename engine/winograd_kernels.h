/* The Winograd transforms and layout changes (see winograd.c), written once
 * for any vector width. Not a normal header: an instruction-set file
 * (winograd_avx512.c, winograd_avx2.c) defines the macros below and then
 * includes it, once, to build its od__wino_kernels table OD__WINO_TABLE.
 *
 *   OD__WT              the target attribute of every function
 *   OD__V, OD__VL       the vector type and its float lanes (8 or 16)
 *   OD__VADD, OD__VSUB, OD__VMUL, OD__VFMADD (a*b+c), OD__VFNMADD (c-a*b),
 *   OD__VSET1, OD__VZERO, OD__VLOAD, OD__VSTORE (unaligned)
 *   OD__VLOADN(p, n)    the first n lanes from p (all when n >= OD__VL),
 *                       the others zero; nothing read past them
 *   OD__VSTOREN(p, v, n) the first n lanes of v to p (n as above)
 *   OD__VTRANSPOSE(r)   r[i][j] -> r[j][i] for OD__V r[OD__VL]
 *
 * Vector helpers are always inlined, so that no function outside the
 * table takes or returns a vector (see tests/check_vzeroupper.py). */
#include <string.h>

#include "engine/winograd_internal.h"

/* Transforms unrolled whole: the tables' zeros and ones then fold away. */
#define OD__UNROLL _Pragma("GCC unroll 8")

/* The transformed kernels G g G^T of w (C_out, C_in, 5, 5), g the kernel
 * from input channel i to output channel o:
 *  - forward: U[xi nu][i][o] (64, CIP, C_out), rows i >= C_in zero;
 *  - adjoint (for the input gradient): U'[xi nu][o][i] (64, C_out, CIP),
 *    columns i >= C_in zero.
 * The kernels are first copied to wt (rows, 25, columns rounded up to 16),
 * columns last, so that the transform runs on a vector of columns at
 * once. */
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
        for (int cb = 0; cb < cols; cb += OD__VL) {
            int live = ld - cb;   /* lanes to store */
            const float *g = wt + (size_t)r * 25 * colp + cb;  /* (25, colp) */
            OD__V tmp[OD__WA][OD__WR];   /* G g */
            for (int a = 0; a < OD__WA; a++)
                for (int c = 0; c < OD__WR; c++) {
                    OD__V acc = OD__VZERO();
                    for (int k = 0; k < OD__WR; k++)
                        acc = OD__VFMADD(
                            OD__VSET1(od__wino_g[a][k]),
                            OD__VLOAD(g + (size_t)(k * OD__WR + c) * colp),
                            acc);
                    tmp[a][c] = acc;
                }
            float *dst = u + (size_t)r * ld + cb;
            for (int a = 0; a < OD__WA; a++)
                for (int b = 0; b < OD__WA; b++) {
                    OD__V acc = OD__VZERO();
                    for (int c = 0; c < OD__WR; c++)
                        acc = OD__VFMADD(OD__VSET1(od__wino_g[b][c]),
                                              tmp[a][c], acc);
                    OD__VSTOREN(dst + (size_t)(a * OD__WA + b) * plane, acc,
                                live);
                }
        }
}

/* One image's planes src (C, H, W) to channels-last rows: pixel (iy, ix)
 * goes to dst + iy * row + ix * cp, channels c..cp-1 zero. OD__VL channels
 * by OD__VL pixels at a time through a register transpose. */
OD__WT static void od__planes_to_cl(int c, int h, int w, const float *src,
                                    size_t row, int cp, float *dst)
{
    size_t plane = (size_t)h * w;
    for (int cb = 0; cb < cp; cb += OD__VL)
        for (int iy = 0; iy < h; iy++)
            for (int x0 = 0; x0 < w; x0 += OD__VL) {
                int n = w - x0 < OD__VL ? w - x0 : OD__VL;
                OD__V r[OD__VL];
                for (int k = 0; k < OD__VL; k++)
                    r[k] = cb + k < c
                               ? OD__VLOADN(src + (size_t)(cb + k) * plane +
                                                (size_t)iy * w + x0,
                                            n)
                               : OD__VZERO();
                OD__VTRANSPOSE(r);
                for (int k = 0; k < n; k++)
                    OD__VSTORE(dst + (size_t)iy * row +
                                         (size_t)(x0 + k) * cp + cb, r[k]);
            }
}

/* The inverse for one image: dst (C, H, W) from channels-last rows src. */
OD__WT static void od__cl_to_planes(int c, int h, int w, const float *src,
                                    size_t row, int cp, float *dst)
{
    size_t plane = (size_t)h * w;
    for (int cb = 0; cb < c; cb += OD__VL)
        for (int iy = 0; iy < h; iy++)
            for (int x0 = 0; x0 < w; x0 += OD__VL) {
                int n = w - x0 < OD__VL ? w - x0 : OD__VL;
                OD__V r[OD__VL];
                for (int k = 0; k < OD__VL; k++)
                    r[k] = k < n ? OD__VLOAD(src + (size_t)iy * row +
                                                   (size_t)(x0 + k) * cp + cb)
                                 : OD__VZERO();
                OD__VTRANSPOSE(r);
                for (int k = 0; k < OD__VL && cb + k < c; k++)
                    OD__VSTOREN(dst + (size_t)(cb + k) * plane +
                                    (size_t)iy * w + x0,
                                r[k], n);
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
od__bt8(const OD__V d[8], OD__V o[8])
{
#define OD__S(x) OD__VSET1(x)
    /* Row 0: -d0 + 5.25 d2 - 5.25 d4 + d6; row 7: -d1 + 5.25 d3 - 5.25 d5 + d7. */
    o[0] = OD__VFMADD(OD__S(5.25f), OD__VSUB(d[2], d[4]),
                           OD__VSUB(d[6], d[0]));
    o[7] = OD__VFMADD(OD__S(5.25f), OD__VSUB(d[3], d[5]),
                           OD__VSUB(d[7], d[1]));
    /* Rows 1, 2: (d2 - 4.25 d4 + d6) +- (d1 - 4.25 d3 + d5). */
    OD__V e = OD__VFNMADD(OD__S(4.25f), d[4], OD__VADD(d[2], d[6]));
    OD__V q = OD__VFNMADD(OD__S(4.25f), d[3], OD__VADD(d[1], d[5]));
    o[1] = OD__VADD(e, q);
    o[2] = OD__VSUB(e, q);
    /* Rows 3, 4: (0.25 d2 - 1.25 d4 + d6) +- (0.5 d1 - 2.5 d3 + 2 d5). */
    e = OD__VFMADD(OD__S(0.25f), d[2],
                        OD__VFNMADD(OD__S(1.25f), d[4], d[6]));
    q = OD__VFMADD(OD__S(0.5f), d[1],
                        OD__VFMADD(OD__S(2.0f), d[5],
                                        OD__VMUL(OD__S(-2.5f), d[3])));
    o[3] = OD__VADD(e, q);
    o[4] = OD__VSUB(e, q);
    /* Rows 5, 6: (4 d2 - 5 d4 + d6) +- (2 d1 - 2.5 d3 + 0.5 d5). */
    e = OD__VFMADD(OD__S(4.0f), d[2],
                        OD__VFNMADD(OD__S(5.0f), d[4], d[6]));
    q = OD__VFMADD(OD__S(2.0f), d[1],
                        OD__VFMADD(OD__S(0.5f), d[5],
                                        OD__VMUL(OD__S(-2.5f), d[3])));
    o[5] = OD__VADD(e, q);
    o[6] = OD__VSUB(e, q);
#undef OD__S
}

/* y = A^T m (rows = 4, od__at) or A5^T m (rows = 5, od__at5) for 8
 * vectors m, by the sums and differences of the +-p pairs (m1, m2),
 * (m3, m4), (m5, m6): row k is the sum of p^k m_p, plus m7 on the last. */
static inline __attribute__((always_inline)) OD__WT void
od__at_rows(const int rows, const OD__V m[8], OD__V *y)
{
#define OD__S(x) OD__VSET1(x)
    OD__V s1 = OD__VADD(m[1], m[2]), d1 = OD__VSUB(m[1], m[2]);
    OD__V s2 = OD__VADD(m[3], m[4]), d2 = OD__VSUB(m[3], m[4]);
    OD__V s3 = OD__VADD(m[5], m[6]), d3 = OD__VSUB(m[5], m[6]);
    y[0] = OD__VADD(OD__VADD(m[0], s1), OD__VADD(s2, s3));
    y[1] = OD__VFMADD(OD__S(0.5f), d3, OD__VFMADD(OD__S(2.0f), d2, d1));
    y[2] = OD__VFMADD(OD__S(0.25f), s3, OD__VFMADD(OD__S(4.0f), s2, s1));
    y[3] = OD__VFMADD(OD__S(0.125f), d3, OD__VFMADD(OD__S(8.0f), d2, d1));
    if (rows == 5)
        y[4] = OD__VFMADD(OD__S(0.0625f), s3,
                               OD__VFMADD(OD__S(16.0f), s2, s1));
    y[rows - 1] = OD__VADD(y[rows - 1], m[7]);
#undef OD__S
}

/* out[k * rows + l] = (A^T M A)[k][l] (rows 4 or 5, as od__at_rows) for the
 * 8x8 block of vectors M[a][e] at src + (a * 8 + e) * stride. */
static inline __attribute__((always_inline)) OD__WT void
od__at_block(const int rows, const float *src, size_t stride, OD__V *out)
{
    OD__V tmp[OD__WR][OD__WA];   /* A^T M, by columns */
    OD__UNROLL
    for (int e = 0; e < OD__WA; e++) {
        OD__V mv[OD__WA], y[OD__WR];
        OD__UNROLL
        for (int a = 0; a < OD__WA; a++)
            mv[a] = OD__VLOAD(src + (size_t)(a * OD__WA + e) * stride);
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
od__g4x(const OD__V e[4], OD__V o[8])
{
#define OD__S(x) OD__VSET1(x)
    o[0] = OD__VSUB(OD__VZERO(), e[0]);
    OD__V ev = OD__VADD(e[0], e[2]), od = OD__VADD(e[1], e[3]);
    o[1] = OD__VMUL(OD__S(OD__G4_1), OD__VADD(ev, od));
    o[2] = OD__VMUL(OD__S(OD__G4_1), OD__VSUB(ev, od));
    ev = OD__VFMADD(OD__S(OD__G4_3C), e[2], OD__VMUL(OD__S(OD__G4_3A), e[0]));
    od = OD__VFMADD(OD__S(OD__G4_3D), e[3], OD__VMUL(OD__S(OD__G4_3B), e[1]));
    o[3] = OD__VADD(ev, od);
    o[4] = OD__VSUB(ev, od);
    ev = OD__VFMADD(OD__S(OD__G4_5C), e[2], OD__VMUL(OD__S(OD__G4_5A), e[0]));
    od = OD__VFMADD(OD__S(OD__G4_5D), e[3], OD__VMUL(OD__S(OD__G4_5B), e[1]));
    o[5] = OD__VADD(ev, od);
    o[6] = OD__VSUB(ev, od);
    o[7] = e[3];
#undef OD__S
}

/* o = A e for 4 vectors e (A = od__at transposed: the adjoint of A^T),
 * by even (e0, e2) and odd (e1, e3) parts. */
static inline __attribute__((always_inline)) OD__WT void
od__a8x(const OD__V e[4], OD__V o[8])
{
#define OD__S(x) OD__VSET1(x)
    o[0] = e[0];
    OD__V ev = OD__VADD(e[0], e[2]), od = OD__VADD(e[1], e[3]);
    o[1] = OD__VADD(ev, od);
    o[2] = OD__VSUB(ev, od);
    ev = OD__VFMADD(OD__S(4.0f), e[2], e[0]);
    od = OD__VFMADD(OD__S(8.0f), e[3], OD__VMUL(OD__S(2.0f), e[1]));
    o[3] = OD__VADD(ev, od);
    o[4] = OD__VSUB(ev, od);
    ev = OD__VFMADD(OD__S(0.25f), e[2], e[0]);
    od = OD__VFMADD(OD__S(0.125f), e[3], OD__VMUL(OD__S(0.5f), e[1]));
    o[5] = OD__VADD(ev, od);
    o[6] = OD__VSUB(ev, od);
    o[7] = e[3];
#undef OD__S
}

/* o = B v for 8 vectors v (B = od__bt transposed: the adjoint of B^T), by
 * the sums and differences of the pairs (v1, v2), (v3, v4), (v5, v6). */
static inline __attribute__((always_inline)) OD__WT void
od__b8(const OD__V v[8], OD__V o[8])
{
#define OD__S(x) OD__VSET1(x)
    OD__V s1 = OD__VADD(v[1], v[2]), d1 = OD__VSUB(v[1], v[2]);
    OD__V s2 = OD__VADD(v[3], v[4]), d2 = OD__VSUB(v[3], v[4]);
    OD__V s3 = OD__VADD(v[5], v[6]), d3 = OD__VSUB(v[5], v[6]);
    o[0] = OD__VSUB(OD__VZERO(), v[0]);
    o[1] = OD__VSUB(
        OD__VFMADD(OD__S(0.5f), d2, OD__VFMADD(OD__S(2.0f), d3, d1)),
        v[7]);
    o[2] = OD__VFMADD(OD__S(5.25f), v[0],
                           OD__VFMADD(OD__S(0.25f), s2,
                                           OD__VFMADD(OD__S(4.0f), s3, s1)));
    o[3] = OD__VFMADD(OD__S(5.25f), v[7],
                           OD__VFMADD(OD__S(-4.25f), d1,
                                           OD__VMUL(OD__S(-2.5f),
                                                         OD__VADD(d2, d3))));
    o[4] = OD__VFNMADD(OD__S(5.25f), v[0],
                            OD__VFNMADD(OD__S(4.25f), s1,
                                             OD__VFNMADD(OD__S(1.25f), s2,
                                                              OD__VMUL(OD__S(-5.0f), s3))));
    o[5] = OD__VFNMADD(OD__S(5.25f), v[7],
                            OD__VFMADD(OD__S(2.0f), d2,
                                            OD__VFMADD(OD__S(0.5f), d3, d1)));
    o[6] = OD__VADD(OD__VADD(v[0], s1), OD__VADD(s2, s3));
    o[7] = v[7];
#undef OD__S
}

/* V[t][xi nu][ch] (T, 64, CIP) = B^T d B for every tile t and a vector of
 * channels at a time, d the tile's 8x8 block of xt. */
OD__WT static void od__wino_input(const od__wino_plan *p, int nimg,
                                  const float *xt, float *v)
{
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *blk = xt + (((size_t)b * p->hp + ty * OD__WM) *
                                         p->wp + tx * OD__WM) * p->cip;
                for (int cb = 0; cb < p->cip; cb += OD__VL) {
                    /* B^T d one column at a time, then each row of that
                     * times B. */
                    OD__V tmp[OD__WA][OD__WA];
                    OD__UNROLL
                    for (int c = 0; c < OD__WA; c++) {
                        OD__V d[OD__WA], o[OD__WA];
                        OD__UNROLL
                        for (int r = 0; r < OD__WA; r++)
                            d[r] = OD__VLOAD(
                                blk + ((size_t)r * p->wp + c) * p->cip + cb);
                        od__bt8(d, o);
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            tmp[a][c] = o[a];
                    }
                    float *dst = v + (size_t)t * OD__WA2 * p->cip + cb;
                    OD__UNROLL
                    for (int a = 0; a < OD__WA; a++) {
                        OD__V o[OD__WA];
                        od__bt8(tmp[a], o);
                        OD__UNROLL
                        for (int e = 0; e < OD__WA; e++)
                            OD__VSTORE(
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
                for (int cb = 0; cb < p->cip; cb += OD__VL) {
                    /* B v one column at a time, then each row times B^T. */
                    OD__V tmp[OD__WA][OD__WA];
                    OD__UNROLL
                    for (int e = 0; e < OD__WA; e++) {
                        OD__V d[OD__WA], o[OD__WA];
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            d[a] = OD__VLOAD(
                                src + (size_t)(a * OD__WA + e) * p->cip + cb);
                        od__b8(d, o);
                        OD__UNROLL
                        for (int r = 0; r < OD__WA; r++)
                            tmp[r][e] = o[r];
                    }
                    OD__UNROLL
                    for (int r = 0; r < OD__WA; r++) {
                        OD__V o[OD__WA];
                        od__b8(tmp[r], o);
                        OD__UNROLL
                        for (int c = 0; c < OD__WA; c++) {
                            float *dst = blk + ((size_t)r * p->wp + c) * p->cip + cb;
                            OD__VSTORE(dst, OD__VADD(
                                                      OD__VLOAD(dst), o[c]));
                        }
                    }
                }
            }
}

/* yt (nimg, TH*4, TW*4, COP) = A^T m A (+ bias) for every tile and a
 * vector of output channels at a time, m from M[t][xi nu][o] (T, 64, COP). */
OD__WT static void od__wino_output(const od__wino_plan *p, int nimg,
                                   const float *m, const float *bias,
                                   float *yt)
{
    int yw = p->tw * OD__WM;
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *src = m + (size_t)t * OD__WA2 * p->cop;
                for (int cb = 0; cb < p->cop; cb += OD__VL) {
                    OD__V bv = bias ? OD__VLOADN(bias + cb, p->c_out - cb)
                                     : OD__VZERO();
                    OD__V y[OD__WM * OD__WM];
                    od__at_block(OD__WM, src + cb, p->cop, y);
                    OD__UNROLL
                    for (int k = 0; k < OD__WM; k++) {
                        OD__UNROLL
                        for (int l = 0; l < OD__WM; l++) {
                            float *dst = yt + (((size_t)b * p->th * OD__WM +
                                                ty * OD__WM + k) * yw +
                                               tx * OD__WM + l) * p->cop + cb;
                            OD__VSTORE(dst, OD__VADD(y[k * OD__WM + l], bv));
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
 * a vector of channels at a time. */
static inline __attribute__((always_inline)) OD__WT void
od__dy_expand(const int adjoint, const OD__V e[4], OD__V o[8])
{
    if (adjoint)
        od__a8x(e, o);
    else
        od__g4x(e, o);
}

OD__WT static void od__wino_dy_transform(const od__wino_plan *p, int nimg,
                                         int adjoint, const float *dyt,
                                         float *e_out)
{
    int yw = p->tw * OD__WM;
    for (int b = 0; b < nimg; b++)
        for (int ty = 0; ty < p->th; ty++)
            for (int tx = 0; tx < p->tw; tx++) {
                int t = (b * p->th + ty) * p->tw + tx;
                const float *blk = dyt + (((size_t)b * p->th * OD__WM +
                                           ty * OD__WM) * yw + tx * OD__WM) *
                                             p->cop;
                for (int cb = 0; cb < p->cop; cb += OD__VL) {
                    OD__V tmp[OD__WA][OD__WM];   /* G4 e, by columns */
                    OD__UNROLL
                    for (int c = 0; c < OD__WM; c++) {
                        OD__V d[OD__WM], o[OD__WA];
                        OD__UNROLL
                        for (int r = 0; r < OD__WM; r++)
                            d[r] = OD__VLOAD(
                                blk + ((size_t)r * yw + c) * p->cop + cb);
                        od__dy_expand(adjoint, d, o);
                        OD__UNROLL
                        for (int a = 0; a < OD__WA; a++)
                            tmp[a][c] = o[a];
                    }
                    float *dst = e_out + (size_t)t * OD__WA2 * p->cop + cb;
                    OD__UNROLL
                    for (int a = 0; a < OD__WA; a++) {
                        OD__V o[OD__WA];
                        od__dy_expand(adjoint, tmp[a], o);
                        OD__UNROLL
                        for (int f = 0; f < OD__WA; f++)
                            OD__VSTORE(
                                dst + (size_t)(a * OD__WA + f) * p->cop, o[f]);
                    }
                }
            }
}

/* dw[o][i] (C_out, C_in, 5, 5) += A5^T acc[.][o][i] A5 for the summed
 * transformed products acc (64, C_out, CIP), a vector of input channels at
 * a time; once per call. */
OD__WT static void od__wino_wgrad_output(const od__wino_plan *p,
                                         const float *acc, float *dw)
{
    size_t plane = (size_t)p->c_out * p->cip;
    for (int o = 0; o < p->c_out; o++)
        for (int ib = 0; ib < p->c_in; ib += OD__VL) {
            const float *src = acc + (size_t)o * p->cip + ib;
            /* out[k * 5 + l][lane]: the 25 taps of OD__VL input channels. */
            OD__V y[OD__WR * OD__WR];
            od__at_block(OD__WR, src, plane, y);
            float out[OD__WR * OD__WR][OD__VL];
            for (int t = 0; t < OD__WR * OD__WR; t++)
                OD__VSTORE(out[t], y[t]);
            int n = p->c_in - ib < OD__VL ? p->c_in - ib : OD__VL;
            for (int j = 0; j < n; j++) {
                float *dst = dw + ((size_t)o * p->c_in + ib + j) * 25;
                for (int t = 0; t < 25; t++)
                    dst[t] += out[t][j];
            }
        }
}

const od__wino_kernels OD__WINO_TABLE = {
    .weights = od__wino_weights,
    .to_nhwc = od__wino_to_nhwc,
    .input = od__wino_input,
    .input_adjoint = od__wino_input_adjoint,
    .output = od__wino_output,
    .to_nchw = od__wino_to_nchw,
    .dy_to_nhwc = od__wino_dy_to_nhwc,
    .dy_transform = od__wino_dy_transform,
    .wgrad_output = od__wino_wgrad_output,
    .cl_to_planes = od__cl_to_planes,
};

#undef OD__UNROLL
