/* AVX-512 loops of 2x2, stride-2 max pooling (see kernels_internal.h). */
#include "engine/kernels_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__T __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

static inline __attribute__((always_inline)) OD__T __mmask16 od__mask(int left)
{
    if (left <= 0)
        return 0;
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* The maximum of each window's four candidates (c00, c01 on its top row,
 * c10, c11 below), compared in row-major order with a strict "greater" as
 * the scalar loop does, so that values, ties and NaNs come out the same;
 * idx is the flat index of the winner (k that of the corner, rows w
 * apart). With relu, windows with no positive input give 0 and index -1
 * (no gradient). */
static inline __attribute__((always_inline)) OD__T void
od__window_max(__m512 c00, __m512 c01, __m512 c10, __m512 c11, __m512i k,
               int w, int relu, __m512 *best_out, __m512i *idx_out)
{
    __m512 best = c00;
    __m512i idx = k;
    __mmask16 m = _mm512_cmp_ps_mask(c01, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, c01);
    idx = _mm512_mask_add_epi32(idx, m, k, _mm512_set1_epi32(1));
    m = _mm512_cmp_ps_mask(c10, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, c10);
    idx = _mm512_mask_add_epi32(idx, m, k, _mm512_set1_epi32(w));
    m = _mm512_cmp_ps_mask(c11, best, _CMP_GT_OQ);
    best = _mm512_mask_mov_ps(best, m, c11);
    idx = _mm512_mask_add_epi32(idx, m, k, _mm512_set1_epi32(w + 1));
    if (relu) {
        __mmask16 pos = _mm512_cmp_ps_mask(best, _mm512_setzero_ps(),
                                           _CMP_GT_OQ);
        best = _mm512_maskz_mov_ps(pos, best);
        idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), pos, idx);
    }
    *best_out = best;
    *idx_out = idx;
}

/* The gradient g of each live window split over its four candidates by
 * the winner's offset a from the corner (0, 1, w or w + 1). */
static inline __attribute__((always_inline)) OD__T void
od__window_split(__m512 g, __m512i a, int w, __mmask16 live, __m512 c[4])
{
    __mmask16 m00 = _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512());
    __mmask16 m01 = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(1));
    __mmask16 m10 = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w));
    __mmask16 m11 = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w + 1));
    OD_ASSERT(((m00 | m01 | m10 | m11) & live) == live);
    c[0] = _mm512_maskz_mov_ps(m00, g);
    c[1] = _mm512_maskz_mov_ps(m01, g);
    c[2] = _mm512_maskz_mov_ps(m10, g);
    c[3] = _mm512_maskz_mov_ps(m11, g);
}

/* The flat index, within its plane, of the top-left corner of each of the
 * 16 windows of row pairs rp0..rp0+3 of 8-wide planes (4 windows each). */
static inline __attribute__((always_inline)) OD__T __m512i
od__corner8(size_t rp0, int oh)
{
    int32_t k[16];
    for (int q = 0; q < 4; q++) {
        int oy = (int)((rp0 + (size_t)q) % (size_t)oh);
        for (int j = 0; j < 4; j++)
            k[4 * q + j] = 16 * oy + 2 * j;
    }
    return _mm512_loadu_si512(k);
}

/* 8-wide planes of even height: the planes are one run of row pairs (16
 * floats in, 4 windows out), taken four at a time, so that every lane of
 * the 16 outputs is used (the loop below would use 4 of 16). Same
 * comparisons in the same order as the scalar loop. */
static OD__T void od__maxpool2x2_w8(int h, size_t planes, const float *x,
                                    float *y, int32_t *argmax, int relu)
{
    const int oh = h / 2;
    const size_t pairs = planes * (size_t)oh;
    /* Window corners of row pairs 0-1 (from z0, z1) in lanes 0-7; the
     * other three candidates are 1, 8 and 9 further on. */
    const __m512i i00 = _mm512_setr_epi32(0, 2, 4, 6, 16, 18, 20, 22, 0, 0,
                                          0, 0, 0, 0, 0, 0);
    const __m512i i01 = _mm512_add_epi32(i00, _mm512_set1_epi32(1));
    const __m512i i10 = _mm512_add_epi32(i00, _mm512_set1_epi32(8));
    const __m512i i11 = _mm512_add_epi32(i00, _mm512_set1_epi32(9));
    for (size_t rp = 0; rp < pairs; rp += 4) {
        int n = pairs - rp < 4 ? (int)(pairs - rp) : 4;   /* row pairs */
        const float *src = x + rp * 16;
        __m512 z[4];
        for (int q = 0; q < 4; q++)
            z[q] = q < n ? _mm512_loadu_ps(src + 16 * q) : _mm512_setzero_ps();
#define OD__PICK(idx)                                                        \
    _mm512_shuffle_f32x4(_mm512_permutex2var_ps(z[0], idx, z[1]),           \
                         _mm512_permutex2var_ps(z[2], idx, z[3]), 0x44)
        __m512 c00 = OD__PICK(i00), c01 = OD__PICK(i01);
        __m512 c10 = OD__PICK(i10), c11 = OD__PICK(i11);
#undef OD__PICK
        __m512 best;
        __m512i idx;
        od__window_max(c00, c01, c10, c11, od__corner8(rp, oh), 8, relu,
                       &best, &idx);
        __mmask16 mo = od__mask(4 * n);
        _mm512_mask_storeu_ps(y + rp * 4, mo, best);
        _mm512_mask_storeu_epi32(argmax + rp * 4, mo, idx);
    }
}

/* Its gradient: each window's gradient to the element its argmax names,
 * zeros elsewhere, four row pairs at a time. */
static OD__T void od__maxpool2x2_bwd_w8(int h, size_t planes, const float *dy,
                                        const int32_t *argmax, float *dx)
{
    const int oh = h / 2;
    const size_t pairs = planes * (size_t)oh;
    /* Interleaving tables: lanes 0..15 of (e, o) -> e0 o0 e1 o1 ... */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                         5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    for (size_t rp = 0; rp < pairs; rp += 4) {
        int n = pairs - rp < 4 ? (int)(pairs - rp) : 4;
        __mmask16 mo = od__mask(4 * n);
        __m512i am = _mm512_maskz_loadu_epi32(mo, argmax + rp * 4);
        __mmask16 live = _mm512_mask_cmpge_epi32_mask(mo, am,
                                                      _mm512_setzero_si512());
        __m512 g = _mm512_maskz_loadu_ps(live, dy + rp * 4);
        __m512 c[4];
        od__window_split(g, _mm512_sub_epi32(am, od__corner8(rp, oh)), 8,
                         live, c);
        /* Top rows of the four pairs, interleaved, then bottom rows. */
        __m512 t01 = _mm512_permutex2var_ps(c[0], lo, c[1]);
        __m512 t23 = _mm512_permutex2var_ps(c[0], hi, c[1]);
        __m512 b01 = _mm512_permutex2var_ps(c[2], lo, c[3]);
        __m512 b23 = _mm512_permutex2var_ps(c[2], hi, c[3]);
        __m512 z[4] = {_mm512_shuffle_f32x4(t01, b01, 0x44),
                       _mm512_shuffle_f32x4(t01, b01, 0xee),
                       _mm512_shuffle_f32x4(t23, b23, 0x44),
                       _mm512_shuffle_f32x4(t23, b23, 0xee)};
        float *dst = dx + rp * 16;
        for (int q = 0; q < n; q++)
            _mm512_storeu_ps(dst + 16 * q, z[q]);
    }
}

/* Sixteen outputs at a time: each pair of input rows is split into even and
 * odd columns, and the four candidates of every window are compared in
 * row-major order with a strict "greater", as the scalar loop does, so
 * values, ties and NaNs come out the same. */
OD__T void od__maxpool2x2_avx512(int h, int w, size_t planes, const float *x,
                                 float *y, int32_t *argmax, int relu)
{
    if (w == 8 && h % 2 == 0) {
        od__maxpool2x2_w8(h, planes, x, y, argmax, relu);
        return;
    }
    const int oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                           20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)h * w;
        float *yp = y + p * (size_t)oh * ow;
        int32_t *ap = argmax + p * (size_t)oh * ow;
        for (int i = 0; i < oh; i++) {
            const float *r0 = xp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j0 = 0; j0 < ow; j0 += 16) {
                int n = ow - j0 < 16 ? ow - j0 : 16;
                __mmask16 mlo = od__mask(2 * n), mhi = od__mask(2 * n - 16);
                const float *a = r0 + 2 * j0, *b = r1 + 2 * j0;
                __m512 a_lo = _mm512_maskz_loadu_ps(mlo, a);
                __m512 a_hi = _mm512_maskz_loadu_ps(mhi, a + 16);
                __m512 b_lo = _mm512_maskz_loadu_ps(mlo, b);
                __m512 b_hi = _mm512_maskz_loadu_ps(mhi, b + 16);
                __m512 c00 = _mm512_permutex2var_ps(a_lo, even, a_hi);
                __m512 c01 = _mm512_permutex2var_ps(a_lo, odd, a_hi);
                __m512 c10 = _mm512_permutex2var_ps(b_lo, even, b_hi);
                __m512 c11 = _mm512_permutex2var_ps(b_lo, odd, b_hi);
                /* Flat index of each window's top-left element. */
                __m512i k = _mm512_add_epi32(_mm512_set1_epi32(2 * i * w + 2 * j0),
                                             even);
                __m512 best;
                __m512i idx;
                od__window_max(c00, c01, c10, c11, k, w, relu, &best, &idx);
                __mmask16 mo = od__mask(n);
                _mm512_mask_storeu_ps(yp + (size_t)i * ow + j0, mo, best);
                _mm512_mask_storeu_epi32(ap + (size_t)i * ow + j0, mo, idx);
            }
        }
    }
}

OD__T void od__maxpool2x2_bwd_avx512(int h, int w, size_t planes,
                                     const float *dy, const int32_t *argmax,
                                     float *dx)
{
    if (w == 8 && h % 2 == 0) {
        od__maxpool2x2_bwd_w8(h, planes, dy, argmax, dx);
        return;
    }
    const int oh = h / 2, ow = w / 2;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                           20, 22, 24, 26, 28, 30);
    /* Interleaving tables: lanes 0..15 of (e, o) -> e0 o0 e1 o1 ... */
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20,
                                         5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    for (size_t p = 0; p < planes; p++) {
        const float *dyp = dy + p * (size_t)oh * ow;
        const int32_t *ap = argmax + p * (size_t)oh * ow;
        float *dxp = dx + p * (size_t)h * w;
        for (int i = 0; i < oh; i++) {
            float *r0 = dxp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j0 = 0; j0 < ow; j0 += 16) {
                int n = ow - j0 < 16 ? ow - j0 : 16;
                __mmask16 mo = od__mask(n);
                __m512i am = _mm512_maskz_loadu_epi32(mo, ap + (size_t)i * ow + j0);
                /* Windows marked -1 (fused ReLU, no positive input) pass
                 * no gradient. */
                __mmask16 live = _mm512_mask_cmpge_epi32_mask(
                    mo, am, _mm512_setzero_si512());
                __m512 g = _mm512_maskz_loadu_ps(live, dyp + (size_t)i * ow + j0);
                __m512i k = _mm512_add_epi32(_mm512_set1_epi32(2 * i * w + 2 * j0),
                                             even);
                /* Offset of the chosen element from the window's corner. */
                __m512 cc[4];
                od__window_split(g, _mm512_sub_epi32(am, k), w, live, cc);
                __m512 c00 = cc[0], c01 = cc[1], c10 = cc[2], c11 = cc[3];
                __mmask16 mlo = od__mask(2 * n), mhi = od__mask(2 * n - 16);
                _mm512_mask_storeu_ps(r0 + 2 * j0, mlo,
                                      _mm512_permutex2var_ps(c00, lo, c01));
                _mm512_mask_storeu_ps(r0 + 2 * j0 + 16, mhi,
                                      _mm512_permutex2var_ps(c00, hi, c01));
                _mm512_mask_storeu_ps(r1 + 2 * j0, mlo,
                                      _mm512_permutex2var_ps(c10, lo, c11));
                _mm512_mask_storeu_ps(r1 + 2 * j0 + 16, mhi,
                                      _mm512_permutex2var_ps(c10, hi, c11));
            }
            if (w % 2) {
                r0[w - 1] = 0.0f;
                r1[w - 1] = 0.0f;
            }
        }
        for (int r = 2 * oh; r < h; r++)
            for (int c = 0; c < w; c++)
                dxp[(size_t)r * w + c] = 0.0f;
    }
}

#else

void od__maxpool2x2_avx512(int h, int w, size_t planes, const float *x,
                           float *y, int32_t *argmax, int relu)
{
    (void)h, (void)w, (void)planes, (void)x, (void)y, (void)argmax, (void)relu;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

void od__maxpool2x2_bwd_avx512(int h, int w, size_t planes, const float *dy,
                               const int32_t *argmax, float *dx)
{
    (void)h, (void)w, (void)planes, (void)dy, (void)argmax, (void)dx;
    OD_ASSERT(!"AVX-512 path on a non-x86-64 build");
}

#endif
