/* AVX2 loops of 2x2, stride-2 max pooling (see kernels_internal.h): eight
 * windows of a row pair at a time. A short last group of windows is
 * computed whole and copied out through a buffer, as AMD's Zen 2 and 3
 * microcode masked stores. */
#include "engine/kernels_internal.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "engine/avx2_util.h"

#define OD__T __attribute__((target("avx2,fma")))
#define OD__INLINE static inline __attribute__((always_inline)) OD__T

/* Elements 2j (odd: 2j + 1) of the 16 floats in lo, hi, j = 0..7. */
OD__INLINE __m256 od__even(__m256 lo, __m256 hi)
{
    __m256 t = _mm256_shuffle_ps(lo, hi, 0x88);  /* e0 e1 e4 e5 | e2 e3 e6 e7 */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xd8));
}

OD__INLINE __m256 od__odd(__m256 lo, __m256 hi)
{
    __m256 t = _mm256_shuffle_ps(lo, hi, 0xdd);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xd8));
}

/* The 16 floats e0 o0 e1 o1 ... e7 o7, in two vectors. */
OD__INLINE void od__interleave(__m256 e, __m256 o, __m256 out[2])
{
    __m256 lo = _mm256_unpacklo_ps(e, o);   /* e0 o0 e1 o1 | e4 o4 e5 o5 */
    __m256 hi = _mm256_unpackhi_ps(e, o);   /* e2 o2 e3 o3 | e6 o6 e7 o7 */
    out[0] = _mm256_permute2f128_ps(lo, hi, 0x20);
    out[1] = _mm256_permute2f128_ps(lo, hi, 0x31);
}

/* Replace (best, idx) by (c, k_step) in the lanes where c > best: a
 * strict "greater", so that, as in the scalar loop, ties keep the earlier
 * candidate and a NaN candidate never replaces the best so far. */
OD__INLINE void od__take_greater(__m256 c, __m256i k_step, __m256 *best,
                                 __m256i *idx)
{
    __m256 gt = _mm256_cmp_ps(c, *best, _CMP_GT_OQ);
    *best = _mm256_blendv_ps(*best, c, gt);
    *idx = _mm256_castps_si256(_mm256_blendv_ps(
        _mm256_castsi256_ps(*idx), _mm256_castsi256_ps(k_step), gt));
}

OD__T void od__maxpool2x2_avx2(int h, int w, size_t planes, const float *x,
                               float *y, int32_t *argmax, int relu)
{
    const int oh = h / 2, ow = w / 2;
    const __m256i ramp = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (size_t p = 0; p < planes; p++) {
        const float *xp = x + p * (size_t)h * w;
        float *yp = y + p * (size_t)oh * ow;
        int32_t *ap = argmax + p * (size_t)oh * ow;
        for (int i = 0; i < oh; i++) {
            const float *r0 = xp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j0 = 0; j0 < ow; j0 += 8) {
                int n = ow - j0 < 8 ? ow - j0 : 8;
                const float *a = r0 + 2 * j0, *b = r1 + 2 * j0;
                __m256 a_lo, a_hi, b_lo, b_hi;
                if (n == 8) {
                    a_lo = _mm256_loadu_ps(a);
                    a_hi = _mm256_loadu_ps(a + 8);
                    b_lo = _mm256_loadu_ps(b);
                    b_hi = _mm256_loadu_ps(b + 8);
                } else {
                    __m256i mlo = od__avx2_mask8(2 * n);
                    __m256i mhi = od__avx2_mask8(2 * n - 8);
                    a_lo = _mm256_maskload_ps(a, mlo);
                    a_hi = _mm256_maskload_ps(a + 8, mhi);
                    b_lo = _mm256_maskload_ps(b, mlo);
                    b_hi = _mm256_maskload_ps(b + 8, mhi);
                }
                /* Flat index of each window's top-left element. */
                __m256i k = _mm256_add_epi32(
                    _mm256_set1_epi32(2 * i * w + 2 * j0), ramp);
                __m256 best = od__even(a_lo, a_hi);
                __m256i idx = k;
                od__take_greater(od__odd(a_lo, a_hi),
                                 _mm256_add_epi32(k, _mm256_set1_epi32(1)),
                                 &best, &idx);
                od__take_greater(od__even(b_lo, b_hi),
                                 _mm256_add_epi32(k, _mm256_set1_epi32(w)),
                                 &best, &idx);
                od__take_greater(od__odd(b_lo, b_hi),
                                 _mm256_add_epi32(k, _mm256_set1_epi32(w + 1)),
                                 &best, &idx);
                if (relu) {
                    __m256 pos = _mm256_cmp_ps(best, _mm256_setzero_ps(),
                                               _CMP_GT_OQ);
                    best = _mm256_and_ps(best, pos);
                    idx = _mm256_castps_si256(_mm256_blendv_ps(
                        _mm256_castsi256_ps(_mm256_set1_epi32(-1)),
                        _mm256_castsi256_ps(idx), pos));
                }
                float *yo = yp + (size_t)i * ow + j0;
                int32_t *ao = ap + (size_t)i * ow + j0;
                if (n == 8) {
                    _mm256_storeu_ps(yo, best);
                    _mm256_storeu_si256((__m256i *)ao, idx);
                } else {
                    float yb[8];
                    int32_t ab[8];
                    _mm256_storeu_ps(yb, best);
                    _mm256_storeu_si256((__m256i *)ab, idx);
                    memcpy(yo, yb, (size_t)n * sizeof *yo);
                    memcpy(ao, ab, (size_t)n * sizeof *ao);
                }
            }
        }
    }
}

OD__T void od__maxpool2x2_bwd_avx2(int h, int w, size_t planes,
                                   const float *dy, const int32_t *argmax,
                                   float *dx)
{
    const int oh = h / 2, ow = w / 2;
    const __m256i ramp = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    for (size_t p = 0; p < planes; p++) {
        const float *dyp = dy + p * (size_t)oh * ow;
        const int32_t *ap = argmax + p * (size_t)oh * ow;
        float *dxp = dx + p * (size_t)h * w;
        for (int i = 0; i < oh; i++) {
            float *r0 = dxp + (size_t)(2 * i) * w, *r1 = r0 + w;
            for (int j0 = 0; j0 < ow; j0 += 8) {
                int n = ow - j0 < 8 ? ow - j0 : 8;
                __m256i mo = od__avx2_mask8(n);
                __m256i am =
                    _mm256_maskload_epi32(ap + (size_t)i * ow + j0, mo);
                __m256 g = _mm256_maskload_ps(dyp + (size_t)i * ow + j0, mo);
                /* Windows marked -1 (fused ReLU, no positive input) and
                 * lanes past the row pass no gradient. */
                __m256i live = _mm256_and_si256(
                    mo, _mm256_cmpgt_epi32(am, _mm256_set1_epi32(-1)));
                g = _mm256_and_ps(g, _mm256_castsi256_ps(live));
                /* Offset of the chosen element from the window's corner. */
                __m256i k = _mm256_add_epi32(
                    _mm256_set1_epi32(2 * i * w + 2 * j0), ramp);
                __m256i a = _mm256_sub_epi32(am, k);
                __m256i m00 = _mm256_cmpeq_epi32(a, _mm256_setzero_si256());
                __m256i m01 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(1));
                __m256i m10 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(w));
                __m256i m11 = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(w + 1));
                __m256i any = _mm256_or_si256(_mm256_or_si256(m00, m01),
                                              _mm256_or_si256(m10, m11));
                OD_ASSERT(_mm256_testc_si256(any, live));
                __m256 c00 = _mm256_and_ps(g, _mm256_castsi256_ps(m00));
                __m256 c01 = _mm256_and_ps(g, _mm256_castsi256_ps(m01));
                __m256 c10 = _mm256_and_ps(g, _mm256_castsi256_ps(m10));
                __m256 c11 = _mm256_and_ps(g, _mm256_castsi256_ps(m11));
                __m256 top[2], bot[2];
                od__interleave(c00, c01, top);
                od__interleave(c10, c11, bot);
                float *t = r0 + 2 * j0, *b = r1 + 2 * j0;
                if (n == 8) {
                    _mm256_storeu_ps(t, top[0]);
                    _mm256_storeu_ps(t + 8, top[1]);
                    _mm256_storeu_ps(b, bot[0]);
                    _mm256_storeu_ps(b + 8, bot[1]);
                } else {
                    float buf[32];
                    _mm256_storeu_ps(buf, top[0]);
                    _mm256_storeu_ps(buf + 8, top[1]);
                    _mm256_storeu_ps(buf + 16, bot[0]);
                    _mm256_storeu_ps(buf + 24, bot[1]);
                    memcpy(t, buf, (size_t)(2 * n) * sizeof *t);
                    memcpy(b, buf + 16, (size_t)(2 * n) * sizeof *b);
                }
            }
            if (w % 2) {
                r0[w - 1] = 0.0f;
                r1[w - 1] = 0.0f;
            }
        }
        for (int r = 2 * oh; r < h; r++)
            memset(dxp + (size_t)r * w, 0, (size_t)w * sizeof *dxp);
    }
}

#else

void od__maxpool2x2_avx2(int h, int w, size_t planes, const float *x,
                         float *y, int32_t *argmax, int relu)
{
    (void)h, (void)w, (void)planes, (void)x, (void)y, (void)argmax, (void)relu;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

void od__maxpool2x2_bwd_avx2(int h, int w, size_t planes, const float *dy,
                             const int32_t *argmax, float *dx)
{
    (void)h, (void)w, (void)planes, (void)dy, (void)argmax, (void)dx;
    OD_ASSERT(!"AVX2 path on a non-x86-64 build");
}

#endif
