/* Internals of the packed GEMM, shared by the driver (gemm.c) and the
 * micro-kernels of each instruction set (gemm_avx512.c, gemm_avx2.c,
 * gemm_portable.c). Not part of the engine's public interface.
 *
 * Vocabulary (as in BLIS): C (m, n) is cut into register tiles of MR rows by
 * NR columns. A micro-kernel computes one tile over a block of kc steps of
 * the inner dimension, reading
 *  - the A micro-panel: element (i, p) of op(A) at a[i * a_rs + p * a_cs],
 *    where either a_rs == 1 (packed A, or A stored transposed) or a_cs == 1
 *    (A stored untransposed: its rows are already contiguous along k);
 *  - the B micro-panel bp (kc, nr): element (p, j) at bp[p * b_rs + j].
 *    Packed, b_rs = w is nr rounded up to the kernel's vector width, the
 *    padding columns are zero and bp is 64-byte aligned. Kernels whose arch
 *    sets b_in_place also accept B read where it is stored (b_rs = ldb, any
 *    alignment); they never read past column nr then.
 * It then writes C = alpha * acc + beta * C on the (mr, nr) tile, and does
 * not read C when beta == 0. Every element of C goes through the same
 * sequence of operations whatever its position in a tile, so the result does
 * not depend on how C is cut into tasks. */
#ifndef ONDEV_ENGINE_GEMM_INTERNAL_H
#define ONDEV_ENGINE_GEMM_INTERNAL_H

#include <stddef.h>

#include "engine/cpu.h"

/* Preconditions: 1 <= mr <= MR, 1 <= nr <= NR, kc >= 1. */
typedef void (*od__gemm_ukernel_fn)(int mr, int nr, int kc, const float *a,
                                    size_t a_rs, size_t a_cs,
                                    const float *bp, size_t b_rs, float alpha,
                                    float beta, float *c, size_t ldc);

/* Pack the (kc, nr) block of op(B) = B^T that starts at stored B's row j0,
 * column p0 (B stored (n, k) with leading dimension ldb) into bp (kc, w),
 * zero-filling columns nr..w-1. */
typedef void (*od__gemm_pack_bt_fn)(int kc, int nr, int w, const float *b,
                                    size_t ldb, float *bp);

/* Unroll the loops over a register tile completely, so that the
 * accumulator arrays become registers (GCC otherwise keeps a copy of them in
 * memory and stores to it on every step of k). */
#define OD__GEMM_UNROLL _Pragma("GCC unroll 16")

typedef struct od__gemm_arch {
    od_isa isa;
    int mr, nr;     /* register tile */
    int vec;        /* floats per vector register; packed widths round to it */
    /* The kernel may read an untransposed B where it is (1), or only when
     * n is a multiple of vec, so that no tile has a partial vector (2; the
     * driver then keeps to a B small enough to stay in L1, see gemm.c). */
    int b_in_place;
    od__gemm_ukernel_fn kernel;
    od__gemm_pack_bt_fn pack_bt; /* packs op(B) = B^T */
} od__gemm_arch;

extern const od__gemm_arch od__gemm_arch_portable;
extern const od__gemm_arch od__gemm_arch_avx2;
extern const od__gemm_arch od__gemm_arch_avx512;
/* A 14 x 32 tile on AVX-512, for products whose n is a multiple of 32. */
extern const od__gemm_arch od__gemm_arch_avx512_tall;

/* The portable transposing packer for panel columns j0..nr-1 (and the zero
 * padding nr..w-1); b and bp point at the panel's origin as above. The
 * vector packers use it for ragged edges. */
void od__gemm_pack_bt_cols(int j0, int kc, int nr, int w, const float *b,
                           size_t ldb, float *bp);

#endif
