/* The Winograd kernels (winograd_kernels.h) on AVX2 with FMA: 8 channels
 * per register. Partial vectors (image rows, the last channels) take masked
 * loads and stores; whole ones never do, since AMD's Zen 2 and 3 microcode
 * VMASKMOVPS stores. */
#include "engine/winograd_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include "engine/avx2_util.h"

#define OD__WT __attribute__((target("avx2,fma")))
#define OD__WINL static inline __attribute__((always_inline)) OD__WT

#define OD__V __m256
#define OD__VL 8
#define OD__VADD _mm256_add_ps
#define OD__VSUB _mm256_sub_ps
#define OD__VMUL _mm256_mul_ps
#define OD__VFMADD _mm256_fmadd_ps
#define OD__VFNMADD _mm256_fnmadd_ps
#define OD__VSET1 _mm256_set1_ps
#define OD__VZERO _mm256_setzero_ps
#define OD__VLOAD _mm256_loadu_ps
#define OD__VSTORE _mm256_storeu_ps
#define OD__VLOADN(p, n) od__loadn8((p), (n))
#define OD__VSTOREN(p, v, n) od__storen8((p), (v), (n))
#define OD__VTRANSPOSE(r) od__avx2_transpose8(r)

OD__WINL __m256 od__loadn8(const float *p, int n)
{
    if (n >= 8)
        return _mm256_loadu_ps(p);
    return n <= 0 ? _mm256_setzero_ps()
                  : _mm256_maskload_ps(p, od__avx2_mask8(n));
}

OD__WINL void od__storen8(float *p, __m256 v, int n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else if (n > 0)
        _mm256_maskstore_ps(p, od__avx2_mask8(n), v);
}

#define OD__WINO_TABLE od__wino_kernels_avx2
#include "engine/winograd_kernels.h"

#else /* not x86-64: od__conv2d_winograd never selects this table */

const od__wino_kernels od__wino_kernels_avx2 = {0};

#endif
