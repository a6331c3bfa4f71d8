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

/* Sixteen outputs at a time: each pair of input rows is split into even and
 * odd columns, and the four candidates of every window are compared in
 * row-major order with a strict "greater", as the scalar loop does, so
 * values, ties and NaNs come out the same. */
OD__T void od__maxpool2x2_avx512(int h, int w, size_t planes, const float *x,
                                 float *y, int32_t *argmax, int relu)
{
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
                    /* Windows with no positive input: 0, no gradient. */
                    __mmask16 pos = _mm512_cmp_ps_mask(
                        best, _mm512_setzero_ps(), _CMP_GT_OQ);
                    best = _mm512_maskz_mov_ps(pos, best);
                    idx = _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), pos,
                                                idx);
                }
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
                __m512i a = _mm512_sub_epi32(am, k);
                __mmask16 ok = _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512()) |
                               _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(1)) |
                               _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w)) |
                               _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w + 1));
                OD_ASSERT((ok & live) == live);
                __m512 c00 = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512()), g);
                __m512 c01 = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(1)), g);
                __m512 c10 = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w)), g);
                __m512 c11 = _mm512_maskz_mov_ps(
                    _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(w + 1)), g);
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
