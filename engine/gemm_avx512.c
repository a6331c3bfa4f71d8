/* AVX-512 GEMM micro-kernels and transposing packer.
 *
 * Register tiles:
 *  - 8 rows x 48 columns (od__gemm_arch_avx512), i.e. 8 x 3 zmm
 *    accumulators (24 of the 32 registers), 3 registers for a row of the B
 *    panel and one broadcast of A. Each step of k issues 24 independent FMAs
 *    against 11 loads, enough to keep both FMA ports busy through the
 *    4-cycle FMA latency.
 *  - 14 rows x 32 columns (od__gemm_arch_avx512_tall), 28 accumulators, for
 *    products whose n is a multiple of 32 but not of 48, such as the
 *    (n, 64) transposed forward product of od_gemm (gemm.c).
 * Measured on the training shapes, neither wins everywhere: 14 x 32 runs
 * the short-k products (k = 10) about 8 % slower, 8 x 48 leaves a 16-wide
 * edge on n = 64, 256, 784 and 1024.
 *
 * Every (rows, vectors, A layout) combination is its own function, built
 * from one always-inlined body, so that edge tiles also keep their
 * accumulators in registers and waste no FMAs on padding rows. */
#include "engine/gemm_internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define OD__T512 \
    __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,fma")))
#define OD__Z_MR_MAX 14 /* rows of the tallest tile */
#define OD__Z_NV_MAX 3  /* zmm vectors per row of the widest tile */

/* Preconditions: MR_ in 1..14, NV in 1..3 (MR_ * NV <= 28), A_RS1 and FULL
 * are compile-time constants after inlining; A_RS1 selects
 * a[i + p * a_cs] (1) or a[i * a_rs + p] (0); last_mask selects the valid
 * lanes of the tile's last vector, and FULL says that it is all ones. Loads
 * of B are masked only when needed: a masked load in the loop costs about
 * 4 % of the kernel's speed. */
static inline __attribute__((always_inline)) OD__T512 void
od__z_body(const int MR_, const int NV, const int A_RS1, const int FULL,
           int kc,
           const float *a, size_t a_rs, size_t a_cs, const float *bp,
           size_t b_rs, float alpha, float beta, float *c, size_t ldc,
           __mmask16 last_mask)
{
    __m512 acc[OD__Z_MR_MAX][OD__Z_NV_MAX];
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++)
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm512_setzero_ps();

    /* Fetch the C tile while the loop runs: the write-back needs it. */
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++)
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++)
            _mm_prefetch((const char *)(c + (size_t)i * ldc + 16 * v),
                         _MM_HINT_T0);

    /* The 14 x 32 family (more than 8 rows) keeps alpha and beta in memory
     * through the loop: in registers they would push a row of B out to the
     * stack. The 8 x 48 family keeps them in registers, which saves a store
     * and a reload on short blocks of k (measured: 4 % at k = 10). */
    const int ab_in_memory = MR_ > 8;
    volatile float ab_kept[2];
    if (ab_in_memory) {
        ab_kept[0] = alpha;
        ab_kept[1] = beta;
    }

    /* Main loop: one row of the B panel against one column of A. */
    const float *arow[OD__Z_MR_MAX];
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++)
        arow[i] = A_RS1 ? a + i : a + (size_t)i * a_rs;
    const size_t astep = A_RS1 ? a_cs : 1;
    /* Unrolling by 2 keeps more loads of B in flight (measured: +5 % when
     * the B panel streams from L2). */
    _Pragma("GCC unroll 2")
    for (int p = 0; p < kc; p++) {
        __m512 bv[OD__Z_NV_MAX];
        const float *brow = bp + (size_t)p * b_rs;
        OD__GEMM_UNROLL
        for (int v = 0; v < NV - 1; v++)
            bv[v] = _mm512_loadu_ps(brow + 16 * v);
        bv[NV - 1] = FULL ? _mm512_loadu_ps(brow + 16 * (NV - 1))
                          : _mm512_maskz_loadu_ps(last_mask,
                                                  brow + 16 * (NV - 1));
        OD__GEMM_UNROLL
        for (int i = 0; i < MR_; i++) {
            __m512 ai = _mm512_set1_ps(arow[i][(size_t)p * astep]);
            OD__GEMM_UNROLL
            for (int v = 0; v < NV; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
    }

    /* Write-back: C = alpha * acc (+ beta * C), the last vector masked. */
    if (ab_in_memory) {
        alpha = ab_kept[0];
        beta = ab_kept[1];
    }
    const __m512 alpha_v = _mm512_set1_ps(alpha);
    const __m512 beta_v = _mm512_set1_ps(beta);
    OD__GEMM_UNROLL
    for (int i = 0; i < MR_; i++) {
        float *crow = c + (size_t)i * ldc;
        OD__GEMM_UNROLL
        for (int v = 0; v < NV; v++) {
            __mmask16 mk = v == NV - 1 ? last_mask : (__mmask16)0xffff;
            __m512 t = _mm512_mul_ps(alpha_v, acc[i][v]);
            if (beta != 0.0f) {
                __m512 cv = _mm512_maskz_loadu_ps(mk, crow + 16 * v);
                t = _mm512_fmadd_ps(beta_v, cv, t);
            }
            _mm512_mask_storeu_ps(crow + 16 * v, mk, t);
        }
    }
}

#define OD__Z_ARGS                                                       \
    int kc, const float *a, size_t a_rs, size_t a_cs, const float *bp,    \
        size_t b_rs, float alpha, float beta, float *c, size_t ldc,       \
        __mmask16 last_mask
#define OD__Z_PASS kc, a, a_rs, a_cs, bp, b_rs, alpha, beta, c, ldc, last_mask

typedef void (*od__z_fn)(OD__Z_ARGS);

#define OD__Z_DEF(MR_, NV, ARS1)                                          \
    static OD__T512 void od__z_##MR_##_##NV##_##ARS1(OD__Z_ARGS)         \
    {                                                                     \
        if (last_mask == 0xffff)                                          \
            od__z_body(MR_, NV, ARS1, 1, OD__Z_PASS);                     \
        else                                                              \
            od__z_body(MR_, NV, ARS1, 0, OD__Z_PASS);                     \
    }
/* Rows 1..8 with up to 3 vectors serve the 8 x 48 tile, rows 9..14 with
 * up to 2 vectors the 14 x 32 one. */
#define OD__Z_DEF_NV3(MR_, ARS1) \
    OD__Z_DEF(MR_, 1, ARS1) OD__Z_DEF(MR_, 2, ARS1) OD__Z_DEF(MR_, 3, ARS1)
#define OD__Z_DEF_NV2(MR_, ARS1) \
    OD__Z_DEF(MR_, 1, ARS1) OD__Z_DEF(MR_, 2, ARS1)
#define OD__Z_DEF_ALL(ARS1)                                               \
    OD__Z_DEF_NV3(1, ARS1) OD__Z_DEF_NV3(2, ARS1) OD__Z_DEF_NV3(3, ARS1)  \
    OD__Z_DEF_NV3(4, ARS1) OD__Z_DEF_NV3(5, ARS1) OD__Z_DEF_NV3(6, ARS1)  \
    OD__Z_DEF_NV3(7, ARS1) OD__Z_DEF_NV3(8, ARS1) OD__Z_DEF_NV2(9, ARS1)  \
    OD__Z_DEF_NV2(10, ARS1) OD__Z_DEF_NV2(11, ARS1)                       \
    OD__Z_DEF_NV2(12, ARS1) OD__Z_DEF_NV2(13, ARS1)                       \
    OD__Z_DEF_NV2(14, ARS1)

OD__Z_DEF_ALL(0)
OD__Z_DEF_ALL(1)

#define OD__Z_ROW3(MR_, ARS1)                                             \
    { od__z_##MR_##_1_##ARS1, od__z_##MR_##_2_##ARS1,                     \
      od__z_##MR_##_3_##ARS1 }
#define OD__Z_ROW2(MR_, ARS1)                                             \
    { od__z_##MR_##_1_##ARS1, od__z_##MR_##_2_##ARS1 }
#define OD__Z_TABLE48(ARS1)                                               \
    { OD__Z_ROW3(1, ARS1), OD__Z_ROW3(2, ARS1), OD__Z_ROW3(3, ARS1),      \
      OD__Z_ROW3(4, ARS1), OD__Z_ROW3(5, ARS1), OD__Z_ROW3(6, ARS1),      \
      OD__Z_ROW3(7, ARS1), OD__Z_ROW3(8, ARS1) }
#define OD__Z_TABLE32(ARS1)                                               \
    { OD__Z_ROW2(1, ARS1), OD__Z_ROW2(2, ARS1), OD__Z_ROW2(3, ARS1),      \
      OD__Z_ROW2(4, ARS1), OD__Z_ROW2(5, ARS1), OD__Z_ROW2(6, ARS1),      \
      OD__Z_ROW2(7, ARS1), OD__Z_ROW2(8, ARS1), OD__Z_ROW2(9, ARS1),      \
      OD__Z_ROW2(10, ARS1), OD__Z_ROW2(11, ARS1), OD__Z_ROW2(12, ARS1),   \
      OD__Z_ROW2(13, ARS1), OD__Z_ROW2(14, ARS1) }

/* [A_RS1][mr - 1][nv - 1] for each tile */
static const od__z_fn od__z_table48[2][8][3] = {
    OD__Z_TABLE48(0),
    OD__Z_TABLE48(1),
};
static const od__z_fn od__z_table32[2][14][2] = {
    OD__Z_TABLE32(0),
    OD__Z_TABLE32(1),
};

/* The lanes of the last vector of a row of nr columns. */
static __mmask16 od__z_last_mask(int nr)
{
    int tail = nr - 16 * ((nr + 15) / 16 - 1);
    return (__mmask16)(tail == 16 ? 0xffff : (1u << tail) - 1);
}

static void od__ukernel_avx512_48(int mr, int nr, int kc, const float *a,
                                  size_t a_rs, size_t a_cs, const float *bp,
                                  size_t b_rs, float alpha, float beta,
                                  float *c, size_t ldc)
{
    od__z_table48[a_rs == 1][mr - 1][(nr + 15) / 16 - 1](
        kc, a, a_rs, a_cs, bp, b_rs, alpha, beta, c, ldc,
        od__z_last_mask(nr));
}

static void od__ukernel_avx512_32(int mr, int nr, int kc, const float *a,
                                  size_t a_rs, size_t a_cs, const float *bp,
                                  size_t b_rs, float alpha, float beta,
                                  float *c, size_t ldc)
{
    od__z_table32[a_rs == 1][mr - 1][(nr + 15) / 16 - 1](
        kc, a, a_rs, a_cs, bp, b_rs, alpha, beta, c, ldc,
        od__z_last_mask(nr));
}

/* Transpose a 16 x 16 block: rows r[0..15] in, columns out (in place). */
static inline __attribute__((always_inline)) OD__T512 void
od__z_transpose16(__m512 r[16])
{
    __m512 t[16];
    /* Interleave pairs of rows at 32-bit, then 64-bit granularity. */
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a0 = _mm512_castps_pd(t[i]), a1 = _mm512_castps_pd(t[i + 1]);
        __m512d a2 = _mm512_castps_pd(t[i + 2]);
        __m512d a3 = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* Now r[4q + s] holds, in each 128-bit lane L, column 4L + s of rows
     * 4q..4q+3. Gather the lanes: first 256-bit halves, then 128-bit. */
    for (int s = 0; s < 4; s++) {
        __m512 x0 = r[s], x1 = r[4 + s], x2 = r[8 + s], x3 = r[12 + s];
        __m512 y0 = _mm512_shuffle_f32x4(x0, x1, 0x88); /* lanes 0,2 | 0,2 */
        __m512 y1 = _mm512_shuffle_f32x4(x0, x1, 0xdd); /* lanes 1,3 | 1,3 */
        __m512 y2 = _mm512_shuffle_f32x4(x2, x3, 0x88);
        __m512 y3 = _mm512_shuffle_f32x4(x2, x3, 0xdd);
        t[s] = _mm512_shuffle_f32x4(y0, y2, 0x88);      /* lane 0 */
        t[4 + s] = _mm512_shuffle_f32x4(y1, y3, 0x88);  /* lane 1 */
        t[8 + s] = _mm512_shuffle_f32x4(y0, y2, 0xdd);  /* lane 2 */
        t[12 + s] = _mm512_shuffle_f32x4(y1, y3, 0xdd); /* lane 3 */
    }
    for (int i = 0; i < 16; i++)
        r[i] = t[i];
}

static OD__T512 void od__pack_bt_avx512(int kc, int nr, int w, const float *b,
                                        size_t ldb, float *bp)
{
    /* Every 16 x 16 block goes through registers, ragged ones included:
     * masked loads (which do not fault past the end) bring in the partial
     * block with zeros around it, so the padding columns come out zero. */
    for (int j = 0; j < w; j += 16) {
        int rows = nr - j < 16 ? nr - j : 16; /* stored rows of B to read */
        for (int p = 0; p < kc; p += 16) {
            int pk = kc - p < 16 ? kc - p : 16;
            __mmask16 mk = (__mmask16)(pk == 16 ? 0xffff : (1u << pk) - 1);
            __m512 r[16];
            OD__GEMM_UNROLL
            for (int q = 0; q < 16; q++)
                r[q] = q < rows ? _mm512_maskz_loadu_ps(
                                      mk, b + (size_t)(j + q) * ldb + p)
                                : _mm512_setzero_ps();
            od__z_transpose16(r);
            for (int q = 0; q < pk; q++)
                _mm512_store_ps(bp + (size_t)(p + q) * w + j, r[q]);
        }
    }
}

const od__gemm_arch od__gemm_arch_avx512 = {
    .isa = OD_ISA_AVX512,
    .mr = 8,
    .nr = 48,
    .vec = 16,
    .b_in_place = 1,
    .kernel = od__ukernel_avx512_48,
    .pack_bt = od__pack_bt_avx512,
};

const od__gemm_arch od__gemm_arch_avx512_tall = {
    .isa = OD_ISA_AVX512,
    .mr = 14,
    .nr = 32,
    .vec = 16,
    .b_in_place = 1,
    .kernel = od__ukernel_avx512_32,
    .pack_bt = od__pack_bt_avx512,
};

#else /* not x86: od_cpu_isa() never selects this table */

const od__gemm_arch od__gemm_arch_avx512 = {
    .isa = OD_ISA_PORTABLE,
    .mr = 4,
    .nr = 16,
    .vec = 1,
    .kernel = NULL,
    .pack_bt = NULL,
};

const od__gemm_arch od__gemm_arch_avx512_tall = {
    .isa = OD_ISA_PORTABLE,
    .mr = 4,
    .nr = 16,
    .vec = 1,
    .kernel = NULL,
    .pack_bt = NULL,
};

#endif
