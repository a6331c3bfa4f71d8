/* Portable GEMM micro-kernel and packer: plain C for any architecture, and
 * the fallback when the CPU has neither AVX2 nor AVX-512. The register tile
 * is 4 x 16; the compiler vectorises the inner loops with whatever the
 * baseline instruction set offers. Multiplications and additions are
 * rounded separately (ISO C does not contract them into FMAs). */
#include "engine/gemm_internal.h"

#define OD__P_MR 4
#define OD__P_NR 16

/* A full 4 x 16 tile: constant bounds let the compiler keep the
 * accumulators in registers. */
static void od__ukernel_full(int kc, const float *a, size_t a_rs, size_t a_cs,
                             const float *bp, size_t b_rs,
                             float acc[OD__P_MR][OD__P_NR])
{
    for (int p = 0; p < kc; p++) {
        const float *brow = bp + (size_t)p * b_rs;
        for (int i = 0; i < OD__P_MR; i++) {
            float av = a[(size_t)i * a_rs + (size_t)p * a_cs];
            for (int j = 0; j < OD__P_NR; j++)
                acc[i][j] += av * brow[j];
        }
    }
}

static void od__ukernel_portable(int mr, int nr, int kc, const float *a,
                                 size_t a_rs, size_t a_cs, const float *bp,
                                 size_t b_rs, float alpha, float beta,
                                 float *c, size_t ldc)
{
    float acc[OD__P_MR][OD__P_NR] = {{0}};

    if (mr == OD__P_MR && nr == OD__P_NR) {
        od__ukernel_full(kc, a, a_rs, a_cs, bp, b_rs, acc);
    } else {
        for (int p = 0; p < kc; p++) {
            const float *brow = bp + (size_t)p * b_rs;
            for (int i = 0; i < mr; i++) {
                float av = a[(size_t)i * a_rs + (size_t)p * a_cs];
                for (int j = 0; j < nr; j++)
                    acc[i][j] += av * brow[j];
            }
        }
    }

    for (int i = 0; i < mr; i++) {
        float *crow = c + (size_t)i * ldc;
        for (int j = 0; j < nr; j++) {
            float t = alpha * acc[i][j];
            crow[j] = beta == 0.0f ? t : beta * crow[j] + t;
        }
    }
}

void od__gemm_pack_bt_cols(int j0, int kc, int nr, int w, const float *b,
                           size_t ldb, float *bp)
{
    /* Read each stored row of B (a column of the panel) contiguously; the
     * writes stride by w. */
    for (int j = j0; j < nr; j++) {
        const float *src = b + (size_t)j * ldb;
        for (int p = 0; p < kc; p++)
            bp[(size_t)p * w + j] = src[p];
    }
    for (int j = nr; j < w; j++)
        for (int p = 0; p < kc; p++)
            bp[(size_t)p * w + j] = 0.0f;
}

static void od__pack_bt_portable(int kc, int nr, int w, const float *b,
                                 size_t ldb, float *bp)
{
    od__gemm_pack_bt_cols(0, kc, nr, w, b, ldb, bp);
}

const od__gemm_arch od__gemm_arch_portable = {
    .isa = OD_ISA_PORTABLE,
    .mr = OD__P_MR,
    .nr = OD__P_NR,
    .vec = 1,
    .b_in_place = 1,
    .kernel = od__ukernel_portable,
    .pack_bt = od__pack_bt_portable,
};
