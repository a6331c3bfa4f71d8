/* Small AVX2 helpers shared by the engine's *_avx2.c files: always
 * inlined, so that no function outside them takes or returns a vector
 * (see tests/check_vzeroupper.py). x86-64 only; include after
 * <immintrin.h>. */
#ifndef ONDEV_ENGINE_AVX2_UTIL_H
#define ONDEV_ENGINE_AVX2_UTIL_H

#define OD__AVX2_INLINE \
    static inline __attribute__((always_inline, target("avx2,fma")))

/* Lanes 0..n-1 set: none for n <= 0, all for n >= 8. */
OD__AVX2_INLINE __m256i od__avx2_mask8(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* r[i][j] -> r[j][i] for an 8 x 8 block of floats held in r[0..7]. */
OD__AVX2_INLINE void od__avx2_transpose8(__m256 r[8])
{
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    /* u[4q + s] holds, in 128-bit lane L, column 4L + s of rows 4q..4q+3. */
    for (int s = 0; s < 4; s++) {
        r[s] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x20);
        r[4 + s] = _mm256_permute2f128_ps(u[s], u[4 + s], 0x31);
    }
}

#endif
