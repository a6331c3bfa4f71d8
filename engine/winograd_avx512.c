/* The Winograd kernels (winograd_kernels.h) on AVX-512: 16 channels per
 * register. */
#include "engine/winograd_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define OD__WT __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define OD__WINL static inline __attribute__((always_inline)) OD__WT

#define OD__V __m512
#define OD__VL 16
#define OD__VADD _mm512_add_ps
#define OD__VSUB _mm512_sub_ps
#define OD__VMUL _mm512_mul_ps
#define OD__VFMADD _mm512_fmadd_ps
#define OD__VFNMADD _mm512_fnmadd_ps
#define OD__VSET1 _mm512_set1_ps
#define OD__VZERO _mm512_setzero_ps
#define OD__VLOAD _mm512_loadu_ps
#define OD__VSTORE _mm512_storeu_ps
#define OD__VLOADN(p, n) _mm512_maskz_loadu_ps(od__lanes16(n), (p))
#define OD__VSTOREN(p, v, n) _mm512_mask_storeu_ps((p), od__lanes16(n), (v))
#define OD__VTRANSPOSE(r) od__transpose16(r)

/* Lanes 0..n-1 set (all for n >= 16, none for n <= 0). */
OD__WINL __mmask16 od__lanes16(int n)
{
    return n >= 16 ? (__mmask16)0xffff
                   : (n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u));
}

/* r[i][j] -> r[j][i] for a 16 x 16 block of floats, in registers. */
OD__WINL void od__transpose16(__m512 r[16])
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

#define OD__WINO_TABLE od__wino_kernels_avx512
#include "engine/winograd_kernels.h"

#else /* not x86-64: od__conv2d_winograd never selects this table */

const od__wino_kernels od__wino_kernels_avx512 = {0};

#endif
