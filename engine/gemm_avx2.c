/* AVX2 + FMA GEMM micro-kernel and transposing packer.
 *
 * Register tile: 6 rows x 16 columns, i.e. 6 x 2 ymm accumulators (12 of
 * the 16 registers), 2 for a row of the B panel and one broadcast of A:
 * 12 independent FMAs per step of k against 8 loads.
 *
 * As in the AVX-512 kernel, every (rows, vectors, A layout) combination is
 * its own function built from one always-inlined body. */
#include "engine/gemm_internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include "engine/avx2_util.h"

#define OD__T256 __attribute__((target("avx2,fma")))
#define OD__Y_MR 6
#define OD__Y_NV 2 /* ymm vectors per tile row */
#define OD__Y_NR (8 * OD__Y_NV)

/* Preconditions: MR_ in 1..6 and NV in 1..2 are compile-time constants after
 * inlining; A_RS1 selects a[i + p * a_cs] (1) or a[i * a_rs + p] (0);
 * tail in 1..8 is the number of valid lanes in the last vector. */
static inline __attribute__((always_inline)) OD__T256 void
od__y_body(const int MR_, const int NV, const int A_RS1, int kc,
           const float *a, size_t a_rs, size_t a_cs, const float *bp,
           size_t b_rs, float alpha, float beta, float *c, size_t ldc,
           int tail)
{
    __m256 acc[OD__Y_MR][OD__Y_NV];
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++)
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm256_setzero_ps();

    /* Main loop: one row of the B panel against one column of A. */
    const float *arow[OD__Y_MR];
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++)
        arow[i] = A_RS1 ? a + i : a + (size_t)i * a_rs;
    const size_t astep = A_RS1 ? a_cs : 1;
    /* Unrolling by 2 keeps more loads of B in flight (measured: +5 % when
     * the B panel streams from L2). */
    _Pragma("GCC unroll 2")
    for (int p = 0; p < kc; p++) {
        __m256 bv[OD__Y_NV];
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++)
            bv[v] = _mm256_loadu_ps(bp + (size_t)p * b_rs + 8 * v);
        OD__GEMM_UNROLL
        for (int i = 0; i < MR_; i++) {
            __m256 ai = _mm256_broadcast_ss(&arow[i][(size_t)p * astep]);
            OD__GEMM_UNROLL
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm256_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }

    /* Write-back: C = alpha * acc (+ beta * C), the last vector masked. */
    const __m256 alpha_v = _mm256_set1_ps(alpha);
    const __m256 beta_v = _mm256_set1_ps(beta);
    /* Lane l of the last vector is valid when l < tail. */
    const __m256i last_mask = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++) {
        float *crow = c + (size_t)i * ldc;
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++) {
            /* Masked only where the tile's last vector is partial: AMD's
             * Zen 2 and 3 microcode VMASKMOVPS stores (tens of cycles
             * each), which cost half the time of a tile with k = 64. */
            const int masked = v == NV - 1 && tail < 8;
            __m256 t = _mm256_mul_ps(alpha_v, acc[i][v]);
            if (beta != 0.0f) {
                __m256 cv = masked ? _mm256_maskload_ps(crow + 8 * v, last_mask)
                                   : _mm256_loadu_ps(crow + 8 * v);
                t = _mm256_fmadd_ps(beta_v, cv, t);
            }
            if (masked)
                _mm256_maskstore_ps(crow + 8 * v, last_mask, t);
            else
                _mm256_storeu_ps(crow + 8 * v, t);
        }
    }
}

#define OD__Y_ARGS                                                       \
    int kc, const float *a, size_t a_rs, size_t a_cs, const float *bp,    \
        size_t b_rs, float alpha, float beta, float *c, size_t ldc, int tail
#define OD__Y_PASS kc, a, a_rs, a_cs, bp, b_rs, alpha, beta, c, ldc, tail

typedef void (*od__y_fn)(OD__Y_ARGS);

#define OD__Y_DEF(MR_, NV, ARS1)                                          \
    static OD__T256 void od__y_##MR_##_##NV##_##ARS1(OD__Y_ARGS)         \
    {                                                                     \
        od__y_body(MR_, NV, ARS1, OD__Y_PASS);                            \
    }
#define OD__Y_DEF_NV(MR_, ARS1) OD__Y_DEF(MR_, 1, ARS1) OD__Y_DEF(MR_, 2, ARS1)
#define OD__Y_DEF_ALL(ARS1)                                               \
    OD__Y_DEF_NV(1, ARS1) OD__Y_DEF_NV(2, ARS1) OD__Y_DEF_NV(3, ARS1)     \
    OD__Y_DEF_NV(4, ARS1) OD__Y_DEF_NV(5, ARS1) OD__Y_DEF_NV(6, ARS1)

OD__Y_DEF_ALL(0)
OD__Y_DEF_ALL(1)

#define OD__Y_ROW(MR_, ARS1) { od__y_##MR_##_1_##ARS1, od__y_##MR_##_2_##ARS1 }
#define OD__Y_TABLE(ARS1)                                                 \
    { OD__Y_ROW(1, ARS1), OD__Y_ROW(2, ARS1), OD__Y_ROW(3, ARS1),         \
      OD__Y_ROW(4, ARS1), OD__Y_ROW(5, ARS1), OD__Y_ROW(6, ARS1) }

/* [A_RS1][mr - 1][nv - 1] */
static const od__y_fn od__y_table[2][OD__Y_MR][OD__Y_NV] = {
    OD__Y_TABLE(0),
    OD__Y_TABLE(1),
};

static OD__T256 void od__ukernel_avx2(int mr, int nr, int kc, const float *a,
                                      size_t a_rs, size_t a_cs,
                                      const float *bp, size_t b_rs,
                                      float alpha, float beta, float *c,
                                      size_t ldc)
{
    int nv = (nr + 7) / 8;
    int tail = nr - 8 * (nv - 1);
    int ars1 = a_rs == 1;
    od__y_table[ars1][mr - 1][nv - 1](kc, a, a_rs, a_cs, bp, b_rs, alpha,
                                      beta, c, ldc, tail);
}

static OD__T256 void od__pack_bt_avx2(int kc, int nr, int w, const float *b,
                                      size_t ldb, float *bp)
{
    /* Full 8 x 8 blocks go through registers; the ragged right and bottom
     * edges take the portable path. */
    int j8 = nr / 8 * 8, p8 = kc / 8 * 8;
    for (int j = 0; j < j8; j += 8) {
        for (int p = 0; p < p8; p += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++)
                r[q] = _mm256_loadu_ps(b + (size_t)(j + q) * ldb + p);
            od__avx2_transpose8(r);
            for (int q = 0; q < 8; q++)
                _mm256_store_ps(bp + (size_t)(p + q) * w + j, r[q]);
        }
        for (int q = 0; q < 8; q++) {
            const float *src = b + (size_t)(j + q) * ldb;
            for (int p = p8; p < kc; p++)
                bp[(size_t)p * w + j + q] = src[p];
        }
    }
    if (j8 < w)
        od__gemm_pack_bt_cols(j8, kc, nr, w, b, ldb, bp);
}

const od__gemm_arch od__gemm_arch_avx2 = {
    .isa = OD_ISA_AVX2,
    .mr = OD__Y_MR,
    .nr = OD__Y_NR,
    .vec = 8,
    .b_in_place = 2, /* full-width loads would read past a ragged nr */
    .kernel = od__ukernel_avx2,
    .pack_bt = od__pack_bt_avx2,
};

#else /* not x86: od_cpu_isa() never selects this table */

const od__gemm_arch od__gemm_arch_avx2 = {
    .isa = OD_ISA_PORTABLE,
    .mr = 4,
    .nr = 16,
    .vec = 1,
    .kernel = NULL,
    .pack_bt = NULL,
};

#endif
