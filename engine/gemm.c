/* Optimised GEMM dispatch. Until the packed kernels land this forwards to
 * the reference. */
#include "engine/kernels.h"

void od_gemm(od_pool *pool, int trans_a, int trans_b, int m, int n, int k,
             float alpha, const float *a, int lda, const float *b, int ldb,
             float beta, float *c, int ldc)
{
    (void)pool;
    od_gemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
