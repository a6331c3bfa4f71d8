/* Optimised GEMM: a packed, cache-blocked driver (after the BLIS layering)
 * over per-ISA micro-kernels, threaded over the pool.
 *
 * Loops, outermost first, for the part of C a task owns:
 *   jc  columns in blocks of nc, so that a packed (kc, nc) block of op(B)
 *       stays in the L2 cache;
 *   pc  the inner dimension in blocks of kc (at most OD__GEMM_KC_MAX);
 *       op(B)'s block is packed here into NR-wide micro-panels when B is
 *       stored transposed (the packing transposes it) or is too large for
 *       L2; otherwise its rows are already contiguous along n and the
 *       micro-kernel reads them in place;
 *   ic  rows in steps of MR: the (MR, kc) micro-panel of op(A), packed when
 *       A is stored transposed and read in place otherwise (its rows are
 *       then already contiguous along k), stays in L1;
 *   jr  columns in steps of NR: one micro-kernel call per register tile.
 *
 * Threads own disjoint blocks of C and sum over k in the same blocks and the
 * same order whatever the thread count, so results are bitwise identical
 * from run to run and across pool sizes (for one ISA). */
#include "engine/kernels.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu.h"
#include "engine/gemm_internal.h"

/* Largest block of the inner dimension. An A micro-panel of 8 x 256 floats
 * (8 KB) stays in the 48 KB L1 data cache; the B micro-panel streams from
 * L2. Measured: 256 beats 128, 192 and 384 on the training shapes. */
#define OD__GEMM_KC_MAX 256
/* Bytes of packed op(B) per block: half of a 2 MB L2 cache. */
#define OD__GEMM_B_BLOCK_BYTES (1u << 20)
/* Largest untransposed B read in place rather than packed; by kernels
 * that cannot mask a partial vector of B, the largest span of stored B. */
#define OD__GEMM_B_INPLACE_BYTES (2u << 20)
#define OD__GEMM_B_INPLACE_L1_BYTES (32u << 10)
/* Rows per task from which a row split may pack all of op(B) in every
 * task rather than leave a task a narrow last tile (see od__gemm_run). */
#define OD__GEMM_REPACK_MIN_ROWS 128
/* Below this many flops a product runs on the calling thread: waking the
 * pool would cost more than it saves. */
#define OD__GEMM_PAR_MIN_FLOPS 1.0e6

/* ---- Per-thread buffers --------------------------------------------------
 * Each thread owns one 64-byte aligned buffer per slot that only grows: slot
 * OD__GEMM_SLOT_PACK holds packed panels, OD__GEMM_SLOT_SWAP the transposed
 * result of od__gemm_nt_swapped. A thread-key destructor frees them when a
 * pool worker exits; the calling thread's buffers stay reachable through
 * its thread-local pointers. */

enum { OD__GEMM_SLOT_PACK, OD__GEMM_SLOT_SWAP, OD__GEMM_SLOTS };

static pthread_key_t od__gemm_key[OD__GEMM_SLOTS];
static pthread_once_t od__gemm_key_once = PTHREAD_ONCE_INIT;
static _Thread_local float *od__gemm_buf[OD__GEMM_SLOTS];
static _Thread_local size_t od__gemm_buf_floats[OD__GEMM_SLOTS];

static void od__gemm_buf_free(void *p) { od_aligned_free(p); }

static void od__gemm_key_init(void)
{
    for (int s = 0; s < OD__GEMM_SLOTS; s++)
        OD_ASSERT(pthread_key_create(&od__gemm_key[s], od__gemm_buf_free)
                  == 0);
}

/* A buffer of at least `floats` floats for this thread in the given slot,
 * valid until the next call for the same slot on the same thread. */
static float *od__gemm_scratch(int slot, size_t floats)
{
    if (floats <= od__gemm_buf_floats[slot])
        return od__gemm_buf[slot];
    pthread_once(&od__gemm_key_once, od__gemm_key_init);
    od_aligned_free(od__gemm_buf[slot]);
    /* Round up to 64 KB so that slightly larger problems reuse it. */
    size_t cap = (floats + 16383) / 16384 * 16384;
    od__gemm_buf[slot] = od_aligned_alloc(cap * sizeof(float));
    /* A few MB at most: the packing slot holds ~1.1 MB, the swap slot
     * m * n floats with m * n bounded by OD__GEMM_SWAP_MAX_FLOATS. */
    OD_ASSERT(od__gemm_buf[slot] != NULL);
    od__gemm_buf_floats[slot] = cap;
    pthread_setspecific(od__gemm_key[slot], od__gemm_buf[slot]);
    return od__gemm_buf[slot];
}

/* ---- The driver ---------------------------------------------------------- */

typedef struct od__gemm_job {
    const od__gemm_arch *arch;
    int trans_a, trans_b, m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    size_t lda, ldb, ldc;
    int b_in_place;     /* the kernel reads op(B) = B where it is stored */
    int kc_base;        /* inner-dimension block (the last may be shorter) */
    int nc_base;        /* column block, a multiple of NR */
    /* Partition into tasks: units of `unit` rows (split_n == 0) or columns
     * (split_n == 1), spread evenly over ntasks. */
    int split_n, unit, units, ntasks;
} od__gemm_job;

static int od__min(int x, int y) { return x < y ? x : y; }
static int od__round_up(int x, int to) { return (x + to - 1) / to * to; }

/* Pack the (kc, nr) block of op(B) at (pc, j0) into bp (kc, w). */
static void od__gemm_pack_b(const od__gemm_job *job, int pc, int kc, int j0,
                            int nr, int w, float *bp)
{
    if (job->trans_b) {
        const float *src = job->b + (size_t)j0 * job->ldb + pc;
        job->arch->pack_bt(kc, nr, w, src, job->ldb, bp);
        return;
    }
    for (int p = 0; p < kc; p++) {
        const float *src = job->b + (size_t)(pc + p) * job->ldb + j0;
        float *dst = bp + (size_t)p * w;
        memcpy(dst, src, (size_t)nr * sizeof(float));
        for (int j = nr; j < w; j++)
            dst[j] = 0.0f;
    }
}

/* Pack the (mr, kc) micro-panel of op(A) = A^T at (i0, pc) into ap, element
 * (i, p) at ap[p * MR + i]. */
static void od__gemm_pack_at(const od__gemm_job *job, int i0, int mr, int pc,
                             int kc, float *ap)
{
    const int MR = job->arch->mr;
    for (int p = 0; p < kc; p++) {
        const float *src = job->a + (size_t)(pc + p) * job->lda + i0;
        float *dst = ap + (size_t)p * MR;
        for (int i = 0; i < mr; i++)
            dst[i] = src[i];
    }
}

/* C[m0:m1, n0:n1] over the whole inner dimension. */
static void od__gemm_block(const od__gemm_job *job, int m0, int m1, int n0,
                           int n1)
{
    const od__gemm_arch *arch = job->arch;
    const int MR = arch->mr, NR = arch->nr;
    const int kc_base = job->kc_base;
    const int npanels = job->b_in_place
                            ? 0
                            : (od__min(job->nc_base, n1 - n0) + NR - 1) / NR;
    const size_t panel_floats = (size_t)NR * kc_base;

    float *bbuf = od__gemm_scratch(OD__GEMM_SLOT_PACK,
                                   panel_floats * npanels
                                   + (size_t)MR * kc_base);
    float *abuf = bbuf + panel_floats * npanels;

    for (int jc = n0; jc < n1; jc += job->nc_base) {
        const int nc = od__min(job->nc_base, n1 - jc);

        for (int pc = 0; pc < job->k; pc += kc_base) {
            const int kc = od__min(kc_base, job->k - pc);
            /* Later blocks of k add onto what the first one wrote. */
            const float beta = pc == 0 ? job->beta : 1.0f;

            for (int jr = 0; jr < nc && !job->b_in_place; jr += NR) {
                const int nr = od__min(NR, nc - jr);
                od__gemm_pack_b(job, pc, kc, jc + jr, nr,
                                od__round_up(nr, arch->vec),
                                bbuf + (size_t)(jr / NR) * panel_floats);
            }

            /* Rows in tiles of nearly equal height (differing by at most
             * one) rather than full tiles and a short last one: a tile of
             * MR - 1 rows runs almost as fast as a full one, a tile of a
             * few rows does not. */
            const int mtiles = (m1 - m0 + MR - 1) / MR;
            const int mr_lo = (m1 - m0) / mtiles;
            const int mr_extra = (m1 - m0) % mtiles;
            for (int it = 0, ic = m0; it < mtiles; it++) {
                const int mr = mr_lo + (it < mr_extra);
                const float *ap;
                size_t a_rs, a_cs;
                if (job->trans_a) {
                    od__gemm_pack_at(job, ic, mr, pc, kc, abuf);
                    ap = abuf;
                    a_rs = 1;
                    a_cs = (size_t)MR;
                } else {
                    ap = job->a + (size_t)ic * job->lda + pc;
                    a_rs = job->lda;
                    a_cs = 1;
                }

                float *crow = job->c + (size_t)ic * job->ldc + jc;
                for (int jr = 0; jr < nc; jr += NR) {
                    const int nr = od__min(NR, nc - jr);
                    const float *bp;
                    size_t b_rs;
                    if (job->b_in_place) {
                        bp = job->b + (size_t)pc * job->ldb + jc + jr;
                        b_rs = job->ldb;
                    } else {
                        bp = bbuf + (size_t)(jr / NR) * panel_floats;
                        b_rs = (size_t)od__round_up(nr, arch->vec);
                    }
                    arch->kernel(mr, nr, kc, ap, a_rs, a_cs, bp, b_rs,
                                 job->alpha, beta, crow + jr, job->ldc);
                }
                ic += mr;
            }
        }
    }
}

/* Task `task`'s share [*u0, *u1) of `units` units spread evenly over
 * ntasks. */
static void od__share(int units, int ntasks, int task, int *u0, int *u1)
{
    *u0 = (int)((long long)units * task / ntasks);
    *u1 = (int)((long long)units * (task + 1) / ntasks);
}

static void od__gemm_task(void *ctx, int task, int worker)
{
    (void)worker;
    const od__gemm_job *job = ctx;
    int u0, u1;
    od__share(job->units, job->ntasks, task, &u0, &u1);
    if (u0 == u1)
        return;
    if (job->split_n) {
        int n0 = u0 * job->unit, n1 = od__min(u1 * job->unit, job->n);
        od__gemm_block(job, 0, job->m, n0, n1);
    } else {
        int m0 = u0 * job->unit, m1 = od__min(u1 * job->unit, job->m);
        od__gemm_block(job, m0, m1, 0, job->n);
    }
}

static const od__gemm_arch *od__gemm_pick_arch(void)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512: return &od__gemm_arch_avx512;
    case OD_ISA_AVX2: return &od__gemm_arch_avx2;
    case OD_ISA_PORTABLE: break;
    }
    return &od__gemm_arch_portable;
}

/* C (m, n) = beta * C, for an empty inner dimension. */
static void od__gemm_scale_c(int m, int n, float beta, float *c, size_t ldc)
{
    for (int i = 0; i < m; i++) {
        float *crow = c + (size_t)i * ldc;
        for (int j = 0; j < n; j++)
            crow[j] = beta == 0.0f ? 0.0f : beta * crow[j];
    }
}

/* Whether splitting job's columns, in its units, over ntasks leaves some
 * task's columns ending in a tile of one vector or less beside full tiles
 * of three or more: the micro-kernel's least
 * efficient shape (a 16-wide tile beside 48-wide ones on AVX-512 loads a
 * row of B and broadcasts 8 elements of A for 8 FMAs, against 11 loads
 * for 24 in a full tile). With tiles of two vectors (AVX2's 6 x 16) the
 * narrow tile costs less, and splitting by rows instead measured as
 * much lost as won (AVX2 kernels on a Xeon, 784-256 layer: -3 % to +6 %). */
static int od__split_leaves_narrow_edge(const od__gemm_job *job,
                                        int ntasks)
{
    const int nr = job->arch->nr, vec = job->arch->vec;
    if (nr < 3 * vec)
        return 0;
    for (int t = 0; t < ntasks; t++) {
        int u0, u1;
        od__share(job->units, ntasks, t, &u0, &u1);
        int tail = (od__min(u1 * job->unit, job->n) - u0 * job->unit) % nr;
        if (tail > 0 && tail <= vec)
            return 1;
    }
    return 0;
}

/* od_gemm for m, n, k >= 1 on the given micro-kernels. */
static void od__gemm_run(od_pool *pool, const od__gemm_arch *arch,
                         int trans_a, int trans_b, int m, int n, int k,
                         float alpha, const float *a, int lda, const float *b,
                         int ldb, float beta, float *c, int ldc)
{
    od__gemm_job job = {
        .arch = arch,
        .trans_a = trans_a != 0,
        .trans_b = trans_b != 0,
        .m = m, .n = n, .k = k,
        .alpha = alpha, .beta = beta,
        .a = a, .b = b, .c = c,
        .lda = (size_t)lda, .ldb = (size_t)ldb, .ldc = (size_t)ldc,
    };
    const int MR = job.arch->mr, NR = job.arch->nr;
    /* An untransposed B is read where it is when it fits in L2 anyway:
     * packing it would cost about as much as it saves for small batches.
     * A larger B is packed for locality (and fewer TLB misses). The AVX2
     * kernels read it in place only when every row of it they touch
     * stays in L1 (Winograd's transformed kernels, 8 KB on fmnist-cnn):
     * measured on an AMD EPYC with 512 KB of L2, reading larger ones in
     * place lost up to a sixth (64 x 1024 x 128, rows 4 KB apart). */
    const size_t b_bytes = (size_t)k * n * sizeof(float);
    job.b_in_place =
        !job.trans_b &&
        ((job.arch->b_in_place == 1 && b_bytes <= OD__GEMM_B_INPLACE_BYTES) ||
         (job.arch->b_in_place == 2 && n % job.arch->vec == 0 &&
          (size_t)k * ldb * sizeof(float) <= OD__GEMM_B_INPLACE_L1_BYTES));

    /* Blocks of k as even as possible, so that no block is a short tail. */
    int nkb = (k + OD__GEMM_KC_MAX - 1) / OD__GEMM_KC_MAX;
    job.kc_base = (k + nkb - 1) / nkb;
    int nc = (int)(OD__GEMM_B_BLOCK_BYTES / (sizeof(float) * job.kc_base));
    job.nc_base = nc / NR * NR > NR ? nc / NR * NR : NR;

    /* Split columns when there are enough for every thread (no packing of
     * op(B) is repeated then), else rows (each task packs the same op(B)).
     * A packed A with B read in place splits rows first when there are
     * enough: a column split would have every task pack all of A. So do
     * products whose column split would end a task's share in a narrow
     * tile, when B is read in place or each task has rows enough to
     * amortise packing all of op(B). Measured on a Xeon, two threads:
     * 256 x 128 x 1024 (the forward product of a 1024-128 layer at batch
     * 256) ran 12 % faster split by rows, packing op(B) twice, than split
     * into two 64-column halves of a 48-wide and a 16-wide tile each; at
     * batch 64 (32 rows a task) the row split lost 5-10 %. */
    int nthreads = od_pool_threads(pool);
    double flops = 2.0 * m * n * k;
    const int mtiles = (m + MR - 1) / MR;
    job.unit = job.arch->vec > 4 ? job.arch->vec : 4;
    job.units = (n + job.unit - 1) / job.unit;
    const int rows_first =
        mtiles >= 2 * nthreads &&
        ((job.trans_a && job.b_in_place) ||
         ((job.b_in_place || m >= OD__GEMM_REPACK_MIN_ROWS * nthreads) &&
          od__split_leaves_narrow_edge(&job, nthreads)));
    job.split_n = 1;
    job.ntasks = 1;
    if (nthreads > 1 && flops >= OD__GEMM_PAR_MIN_FLOPS) {
        if (job.units >= 2 * nthreads && !rows_first) {
            job.ntasks = nthreads;
        } else if (mtiles >= nthreads) {
            job.split_n = 0;
            job.unit = MR;
            job.units = mtiles;
            job.ntasks = nthreads;
        }
    }

    if (job.ntasks == 1)
        od__gemm_block(&job, 0, m, 0, n);
    else
        od_pool_run(pool, job.ntasks, od__gemm_task, &job);
}

/* Whether od__gemm_nt_swapped can transpose T straight into C: the packer
 * writes whole aligned rows of 16 floats, so C must be exactly such rows. */
static int od__gemm_nt_direct(int n, float alpha, float beta, const float *c,
                              int ldc)
{
    return alpha == 1.0f && beta == 0.0f && ldc == n && n % 16 == 0 &&
           (uintptr_t)c % 64 == 0;
}

/* The second half of od__gemm_nt_swapped for rows [i0, i1) of C: those
 * rows are columns i0..i1-1 of T (n, m), transposed by the packer into C
 * when direct, else into rows of tt (m, w) and then combined with C. */
typedef struct {
    const od__gemm_arch *arch;
    int m, n, w, direct, ntasks;
    const float *t;
    float *tt, *c;
    float alpha, beta;
    size_t ldc;
} od__swap_back_job;

static void od__swap_back_rows(const od__swap_back_job *j, int i0, int i1)
{
    if (i0 == i1)
        return;
    if (j->direct) {
        j->arch->pack_bt(i1 - i0, j->n, j->n, j->t + i0, (size_t)j->m,
                         j->c + (size_t)i0 * j->ldc);
        return;
    }
    float *tt = j->tt + (size_t)i0 * j->w;
    j->arch->pack_bt(i1 - i0, j->n, j->w, j->t + i0, (size_t)j->m, tt);
    for (int i = i0; i < i1; i++) {
        const float *src = tt + (size_t)(i - i0) * j->w;
        float *dst = j->c + (size_t)i * j->ldc;
        if (j->beta == 0.0f) {
            for (int q = 0; q < j->n; q++)
                dst[q] = j->alpha * src[q];
        } else {
            for (int q = 0; q < j->n; q++)
                dst[q] = j->alpha * src[q] + j->beta * dst[q];
        }
    }
}

static void od__swap_back_task(void *ctx, int task, int worker)
{
    (void)worker;
    const od__swap_back_job *j = ctx;
    int i0, i1;
    od__share(j->m, j->ntasks, task, &i0, &i1);
    od__swap_back_rows(j, i0, i1);
}

/* C (m, n) = alpha * A (m, k) B^T + beta * C with B stored (n, k), computed
 * as the transpose of T (n, m) = B A^T: the packing then transposes A^T
 * (m * k floats) instead of B^T (n * k), and T is transposed back through
 * the same packer, into C itself when od__gemm_nt_direct allows, else into
 * a (m, w) buffer that is then combined with C; on several threads each
 * transposes its share of C's rows. Each element of T gets the same
 * sequence of operations as in od__gemm_run, then alpha and beta apply
 * once. arch is an AVX-512 table (the packer's rows are 16 floats). */
static void od__gemm_nt_swapped(od_pool *pool, const od__gemm_arch *arch,
                                int m, int n, int k, float alpha,
                                const float *a, int lda, const float *b,
                                int ldb, float beta, float *c, int ldc)
{
    OD_ASSERT(arch->vec == 16);
    const int direct = od__gemm_nt_direct(n, alpha, beta, c, ldc);
    const int w = od__round_up(n, arch->vec);
    float *t = od__gemm_scratch(OD__GEMM_SLOT_SWAP,
                                (size_t)n * m + (direct ? 0 : (size_t)m * w)
                                + 16);
    od__gemm_run(pool, arch, 0, 1, n, m, k, 1.0f, b, ldb, a, lda, 0.0f, t,
                 m);
    od__swap_back_job job = {
        .arch = arch, .m = m, .n = n, .w = w, .direct = direct,
        .ntasks = 1, .t = t, .c = c, .alpha = alpha, .beta = beta,
        .ldc = (size_t)ldc,
    };
    if (!direct) {
        /* tt (m, w) after T, realigned to 64 bytes for the packer's
         * aligned stores. */
        size_t off = (size_t)n * m;
        job.tt = t + off + (16 - off % 16) % 16;
    }
    /* Threads pay once the transposition moves more than this many
     * floats. */
    if (od_pool_threads(pool) > 1 && (size_t)m * n >= 4096)
        job.ntasks = od_pool_threads(pool);
    if (job.ntasks == 1)
        od__swap_back_rows(&job, 0, m);
    else
        od_pool_run(pool, job.ntasks, od__swap_back_task, &job);
}

/* Largest m * n for which od__gemm_nt_swapped is used (its buffer holds
 * at most twice as many floats). */
#define OD__GEMM_SWAP_MAX_FLOATS (1 << 18)

/* Whether od__gemm_nt_swapped pays: it packs m * k floats and transposes
 * m * n (and combines them with C unless direct) instead of packing n * k.
 * Measured on the training shapes: a saving of 2x in floats moved is
 * needed (64 x 256 x 784 gains 8 %, 64 x 256 x 256 at 1.3x lost 3 %). */
static int od__gemm_nt_swap_pays(int m, int n, int k, int direct)
{
    double moved = (double)m * k + (direct ? 1.0 : 2.0) * m * n;
    return (double)m * n <= OD__GEMM_SWAP_MAX_FLOATS &&
           2.0 * moved <= (double)n * k;
}

void od_gemm(od_pool *pool, int trans_a, int trans_b, int m, int n, int k,
             float alpha, const float *a, int lda, const float *b, int ldb,
             float beta, float *c, int ldc)
{
    OD_ASSERT(m >= 0 && n >= 0 && k >= 0);
    OD_ASSERT(ldc >= (n > 0 ? n : 1));
    OD_ASSERT(lda >= ((trans_a ? m : k) > 0 ? (trans_a ? m : k) : 1));
    OD_ASSERT(ldb >= ((trans_b ? k : n) > 0 ? (trans_b ? k : n) : 1));
    if (m == 0 || n == 0)
        return;
    if (k == 0) {
        od__gemm_scale_c(m, n, beta, c, (size_t)ldc);
        return;
    }
    const od__gemm_arch *arch = od__gemm_pick_arch();
    /* Measured on AVX-512 only (forward pass at batch 64: 64 x 256 x 784
     * from 78 to 83 % of the FMA peak, 64 x 256 x 256 from 79 to 82 %),
     * where the inner product's n = m (64 for such a batch) suits the
     * 14 x 32 tile, which has no ragged edge there. */
    if (arch->isa == OD_ISA_AVX512 && !trans_a && trans_b &&
        od__gemm_nt_swap_pays(m, n, k,
                              od__gemm_nt_direct(n, alpha, beta, c, ldc))) {
        od__gemm_nt_swapped(pool, &od__gemm_arch_avx512_tall, m, n, k, alpha,
                            a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* n of 32 or 64 fills 14 x 32 tiles exactly, where 8 x 48 tiles
     * leave a 16-wide edge (Winograd's per-position products, narrow
     * layers); short k stays on 8 x 48 (see gemm_avx512.c). */
    if (arch->isa == OD_ISA_AVX512 && (n == 32 || n == 64) && k >= 16)
        arch = &od__gemm_arch_avx512_tall;
    od__gemm_run(pool, arch, trans_a, trans_b, m, n, k, alpha, a, lda, b,
                 ldb, beta, c, ldc);
}
