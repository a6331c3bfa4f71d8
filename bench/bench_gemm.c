/* GEMM benchmark: ondev's od_gemm beside OpenBLAS's cblas_sgemm in the same
 * process, on 1 and 2 threads, with the machine's own FMA peak as the yard
 * stick.
 *
 *   bench_gemm [--quick] [--json FILE] [--only TEXT]
 *
 * Peak: independent FMA chains on the widest vectors the selected ISA has
 * (zmm for AVX-512, ymm for AVX2), on 1 thread and on every thread of a pool
 * of 2 at once; best of several repeats.
 *
 * Shapes, C (m, n) = op(A) (m, k) * op(B) (k, n), named as in
 * bench/torch_gemm.py:
 *   square     m = n = k = 64, 128, 256, 512, 1024 (NN)
 *   training   batch B = 64 and 256 through layers in x out = 784x256,
 *              256x256, 1024x128, 256x10, in the three forms of a linear
 *              layer:
 *                forward          Y (B, out) = X (B, in) W^T      NT
 *                backward-data    dX (B, in) = dY (B, out) W      NN
 *                backward-weight  dW (out, in) += dY^T X          TN, beta 1
 * Each figure is the best per-call time over several repeats, each repeat
 * long enough to swamp the clock's resolution.
 *
 * OpenBLAS picks its kernels when it is loaded, from OPENBLAS_CORETYPE if
 * set; the core it runs is printed, and bench/run runs this program once as
 * installed and once with OPENBLAS_CORETYPE=SkylakeX. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "engine/cpu.h"
#include "engine/gemm_internal.h"
#include "engine/kernels.h"
#include "engine/pool.h"
#include "engine/rng.h"

#if defined(ONDEV_HAVE_OPENBLAS)
#include <cblas.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#else
#define HAVE_X86 0
#endif

#define MAX_THREADS 2

typedef struct bench_shape {
    char name[48];
    const char *form;
    int m, n, k, trans_a, trans_b;
    float beta;
} bench_shape;

typedef struct bench_result {
    bench_shape s;
    int threads;
    double ondev_gflops, blas_gflops; /* blas 0 when OpenBLAS is absent */
    double max_rel_diff;              /* ondev against OpenBLAS */
    double peak_gflops; /* FMA peak measured between ondev's repeats */
} bench_result;

typedef struct bench_opts {
    int quick;
    const char *json;
    const char *only; /* run only shapes whose name contains this */
    double min_repeat_s; /* length of one repeat of the FMA peak loop */
    double budget_s;     /* time spent timing one GEMM configuration */
    int repeats;
} bench_opts;

/* ---- FMA peak ------------------------------------------------------------ */

#define PEAK_CHAINS 16 /* independent accumulators: > FMA latency x ports */

#if HAVE_X86
/* Run iters steps of PEAK_CHAINS independent FMAs on zmm; returns a sum so
 * that the work cannot be dropped. */
__attribute__((target("avx512f,fma"))) static float fma_zmm(long iters)
{
    __m512 acc[PEAK_CHAINS];
    const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long t = 0; t < iters; t++)
        for (int i = 0; i < PEAK_CHAINS; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    __m512 s = acc[0];
    for (int i = 1; i < PEAK_CHAINS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_ymm(long iters)
{
    __m256 acc[PEAK_CHAINS / 2 + 4]; /* 12 chains fit in 16 ymm registers */
    const int chains = PEAK_CHAINS / 2 + 4;
    const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < chains; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long t = 0; t < iters; t++)
        for (int i = 0; i < chains; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    __m256 s = acc[0];
    for (int i = 1; i < chains; i++)
        s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] +
           out[7];
}
#endif

typedef struct peak_ctx {
    od_isa isa;
    long iters;
    int ntasks;
    atomic_int started;   /* tasks that have begun, this run */
    volatile float sink[MAX_THREADS];
} peak_ctx;

static double peak_flops_per_iter(od_isa isa)
{
    return isa == OD_ISA_AVX512 ? PEAK_CHAINS * 16 * 2.0
                                : (PEAK_CHAINS / 2 + 4) * 8 * 2.0;
}

static void peak_task(void *ctx_, int task, int worker)
{
    (void)worker;
    peak_ctx *ctx = ctx_;
    /* Start together: a helper thread that wakes late (an idle vCPU can
     * take milliseconds) would otherwise find its task already run by the
     * caller, and the two threads' loops would run one after the other.
     * The wait gives up after a second, so a pool short of threads cannot
     * hang it. */
    atomic_fetch_add(&ctx->started, 1);
    uint64_t t0 = od_now_ns();
    while (atomic_load(&ctx->started) < ctx->ntasks &&
           od_now_ns() - t0 < 1000000000u)
        ;
#if HAVE_X86
    ctx->sink[task] = ctx->isa == OD_ISA_AVX512 ? fma_zmm(ctx->iters)
                                                : fma_ymm(ctx->iters);
#else
    ctx->sink[task] = (float)ctx->iters;
#endif
}

/* One run of ctx's loop on every thread of pool (NULL: one thread);
 * returns its GFLOP/s. */
static double peak_run(peak_ctx *ctx, od_pool *pool, double *seconds)
{
    uint64_t t0 = od_now_ns();
    atomic_store(&ctx->started, 0);
    od_pool_run(pool, ctx->ntasks, peak_task, ctx);
    double dt = (double)(od_now_ns() - t0) * 1e-9;
    if (seconds)
        *seconds = dt;
    return peak_flops_per_iter(ctx->isa) * ctx->iters * ctx->ntasks / dt *
           1e-9;
}

/* Set ctx up for pool with a loop that lasts at least repeat_s; 0 when the
 * ISA has no FMA (ctx then does nothing). */
static int peak_init(peak_ctx *ctx, od_pool *pool, double repeat_s)
{
    od_isa isa = od_cpu_isa();
    memset(ctx, 0, sizeof *ctx);
    if (isa == OD_ISA_PORTABLE || !HAVE_X86)
        return 0;
    ctx->isa = isa;
    ctx->iters = 1 << 10;
    ctx->ntasks = od_pool_threads(pool);
    /* Grow the loop until one run lasts repeat_s; short runs let the best
     * fall between the time slices of other processes. */
    for (;;) {
        double dt;
        peak_run(ctx, pool, &dt);
        if (dt >= repeat_s)
            return 1;
        ctx->iters *= 2;
    }
}

/* Peak GFLOP/s over all threads of pool (NULL: one thread); 0 when the ISA
 * has no FMA. */
static double measure_peak(od_pool *pool, const bench_opts *o)
{
    peak_ctx ctx;
    if (!peak_init(&ctx, pool, o->min_repeat_s))
        return 0.0;
    double best = 0.0;
    for (int r = 0; r < o->repeats + 2; r++)
        best = fmax(best, peak_run(&ctx, pool, NULL));
    return best;
}

/* ---- Micro-kernel ceiling ---------------------------------------------------
 * The register-tile micro-kernel alone, on packed panels that stay in L1
 * (k block 256, beta 1, the full tile): every product runs through it, so
 * this bounds what the driver can reach, and the gap to the FMA peak is
 * what loads and the tile's write-back cost on this machine. */
static double measure_kernel_ceiling(const bench_opts *o)
{
    const od__gemm_arch *ar = NULL;
#if HAVE_X86
    if (od_cpu_isa() == OD_ISA_AVX512)
        ar = &od__gemm_arch_avx512;
    else if (od_cpu_isa() == OD_ISA_AVX2)
        ar = &od__gemm_arch_avx2;
#endif
    if (!ar)
        return 0.0;
    const int kc = 256;
    float *a = od_aligned_alloc((size_t)ar->mr * kc * sizeof(float));
    float *b = od_aligned_alloc((size_t)ar->nr * kc * sizeof(float));
    float *c = od_aligned_alloc((size_t)ar->mr * ar->nr * sizeof(float));
    if (!a || !b || !c) {
        od_aligned_free(a);
        od_aligned_free(b);
        od_aligned_free(c);
        return 0.0;
    }
    for (int i = 0; i < ar->mr * kc; i++)
        a[i] = 1e-3f * (float)(i % 7);
    for (int i = 0; i < ar->nr * kc; i++)
        b[i] = 1e-3f * (float)(i % 5);
    memset(c, 0, (size_t)ar->mr * ar->nr * sizeof(float));
    long calls = 1024;
    double best = 0.0;
    for (int r = -1; r < o->repeats + 2; r++) {
        uint64_t t0 = od_now_ns();
        for (long i = 0; i < calls; i++)
            ar->kernel(ar->mr, ar->nr, kc, a, 1, (size_t)ar->mr, b,
                       (size_t)ar->nr, 1.0f, 1.0f, c, (size_t)ar->nr);
        double dt = (double)(od_now_ns() - t0) * 1e-9;
        if (r < 0) {   /* size the loop to min_repeat_s */
            while (dt * 2 < o->min_repeat_s) {
                calls *= 2;
                dt *= 2;
            }
            continue;
        }
        double g = 2.0 * ar->mr * ar->nr * kc * (double)calls / dt * 1e-9;
        if (g > best)
            best = g;
    }
    od_aligned_free(a);
    od_aligned_free(b);
    od_aligned_free(c);
    return best;
}

/* ---- GEMM timing --------------------------------------------------------- */

typedef struct gemm_args {
    const bench_shape *s;
    const float *a, *b;
    float *c;
    int lda, ldb, ldc;
    od_pool *pool;
    int use_blas;
} gemm_args;

static void gemm_call(const gemm_args *g)
{
    const bench_shape *s = g->s;
#if defined(ONDEV_HAVE_OPENBLAS)
    if (g->use_blas) {
        cblas_sgemm(CblasRowMajor, s->trans_a ? CblasTrans : CblasNoTrans,
                    s->trans_b ? CblasTrans : CblasNoTrans, s->m, s->n, s->k,
                    1.0f, g->a, g->lda, g->b, g->ldb, s->beta, g->c, g->ldc);
        return;
    }
#endif
    od_gemm(g->pool, s->trans_a, s->trans_b, s->m, s->n, s->k, 1.0f, g->a,
            g->lda, g->b, g->ldb, s->beta, g->c, g->ldc);
}

/* Best seconds per call: calls are timed in batches of at least
 * OD_BATCH_S, and batches repeat until o->budget_s has passed (and at least
 * o->repeats times). Short batches let the best one fall between the
 * time slices of other processes on a busy machine.
 *
 * With peak set, a run of the FMA peak loop follows each batch, on the
 * same threads, and *peak_gflops gets the best of those runs. A virtual
 * machine's speed can drift by a fifth within a minute, so a product is
 * judged against the peak of the same seconds, not of the program's
 * start. */
#define OD_BATCH_S 2e-4
#define PEAK_BESIDE_S 5e-4 /* one run of the peak loop between repeats */
static double best_time_s(const gemm_args *g, const bench_opts *o,
                          peak_ctx *peak, double *peak_gflops)
{
    gemm_call(g);
    long calls = 1;
    for (;;) {
        uint64_t t0 = od_now_ns();
        for (long i = 0; i < calls; i++)
            gemm_call(g);
        double dt = (double)(od_now_ns() - t0) * 1e-9;
        if (dt >= OD_BATCH_S)
            break;
        calls *= 2;
    }
    double best = 1e30, spent = 0.0, best_peak = 0.0;
    for (int r = 0; r < o->repeats || spent < o->budget_s; r++) {
        uint64_t t0 = od_now_ns();
        for (long i = 0; i < calls; i++)
            gemm_call(g);
        double dt = (double)(od_now_ns() - t0) * 1e-9;
        spent += dt;
        if (dt / calls < best)
            best = dt / calls;
        if (peak)
            best_peak = fmax(best_peak, peak_run(peak, g->pool, NULL));
    }
    if (peak_gflops)
        *peak_gflops = best_peak;
    return best;
}

static float *alloc_random(od_rng *r, size_t n)
{
    float *x = od_aligned_alloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_gemm: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = od_rng_uniformf(r) - 0.5f;
    return x;
}

/* Time one library (OpenBLAS when use_blas) on one shape. OpenBLAS's idle
 * threads keep spinning for a while after a call, so main() times all of
 * ondev first and all of OpenBLAS after. */
static void bench_shape_run(const bench_shape *s, int threads, od_pool *pool,
                            int use_blas, peak_ctx *peak,
                            const bench_opts *o, bench_result *res)
{
    od_rng r;
    od_rng_seed(&r, 1, (uint64_t)s->m * 131 + (uint64_t)s->n * 7 + s->k);
    int lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n;
    int ldc = s->n;
    size_t c_len = (size_t)s->m * s->n;
    float *a = alloc_random(&r, (size_t)s->m * s->k);
    float *b = alloc_random(&r, (size_t)s->k * s->n);
    float *c = alloc_random(&r, c_len);
    double flops = 2.0 * s->m * s->n * s->k;

    res->s = *s;
    res->threads = threads;
    gemm_args g = {s, a, b, c, lda, ldb, ldc, pool, use_blas};
#if defined(ONDEV_HAVE_OPENBLAS)
    if (use_blas)
        openblas_set_num_threads(threads);
#endif
    if (use_blas) {
        res->blas_gflops = flops / best_time_s(&g, o, NULL, NULL) * 1e-9;
    } else {
        res->ondev_gflops =
            flops / best_time_s(&g, o, peak, &res->peak_gflops) * 1e-9;
    }

#if defined(ONDEV_HAVE_OPENBLAS)
    /* Sanity: one fresh product each way must agree. */
    if (use_blas) {
        float *c2 = alloc_random(&r, c_len);
        memset(c, 0, c_len * sizeof(float));
        memset(c2, 0, c_len * sizeof(float));
        gemm_call(&g);
        g.use_blas = 0;
        g.c = c2;
        gemm_call(&g);
        double cmax = 0.0, dmax = 0.0;
        for (size_t i = 0; i < c_len; i++) {
            cmax = fmax(cmax, fabs(c[i]));
            dmax = fmax(dmax, fabs((double)c[i] - c2[i]));
        }
        res->max_rel_diff = cmax > 0.0 ? dmax / cmax : dmax;
        if (!(res->max_rel_diff < 1e-4))
            fprintf(stderr, "bench_gemm: warning: %s: ondev and OpenBLAS "
                            "differ by %.2e (relative)\n", s->name,
                    res->max_rel_diff);
        od_aligned_free(c2);
    }
#endif
    od_aligned_free(a);
    od_aligned_free(b);
    od_aligned_free(c);
}

/* ---- Shapes -------------------------------------------------------------- */

static int make_shapes(bench_shape *out, int quick)
{
    static const int square[] = {64, 128, 256, 512, 1024};
    static const int batches[] = {64, 256};
    static const int layers[][2] = {{784, 256}, {256, 256}, {1024, 128},
                                    {256, 10}};
    int n = 0;
    for (size_t i = 0; i < sizeof square / sizeof square[0]; i++) {
        int s = square[i];
        if (quick && s > 256)
            continue;
        bench_shape x = {.form = "square", .m = s, .n = s, .k = s};
        snprintf(x.name, sizeof x.name, "square%d", s);
        out[n++] = x;
    }
    for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
        for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
            int bsz = batches[bi], fin = layers[li][0], fout = layers[li][1];
            if (quick && bsz > 64)
                continue;
            bench_shape f = {.form = "forward", .m = bsz, .n = fout,
                             .k = fin, .trans_b = 1};
            bench_shape d = {.form = "backward-data", .m = bsz, .n = fin,
                             .k = fout};
            bench_shape w = {.form = "backward-weight", .m = fout, .n = fin,
                             .k = bsz, .trans_a = 1, .beta = 1.0f};
            snprintf(f.name, sizeof f.name, "%dx%d/b%d/forward", fin, fout,
                     bsz);
            snprintf(d.name, sizeof d.name, "%dx%d/b%d/backward-data", fin,
                     fout, bsz);
            snprintf(w.name, sizeof w.name, "%dx%d/b%d/backward-weight", fin,
                     fout, bsz);
            out[n++] = f;
            out[n++] = d;
            out[n++] = w;
        }
    }
    return n;
}

/* ---- Output -------------------------------------------------------------- */

static const char *blas_core(void)
{
#if defined(ONDEV_HAVE_OPENBLAS)
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
#else
    return "none";
#endif
}

/* The FMA peak r is judged against: the one measured between its own
 * repeats, or the program's first one when that is missing. */
static double peak_of(const bench_result *r,
                      const double peak[MAX_THREADS + 1])
{
    return r->peak_gflops > 0.0 ? r->peak_gflops : peak[r->threads];
}

/* ondev's GFLOP/s for the same shape on 1 thread (results are stored as
 * consecutive thread counts per shape). */
static double one_thread_gflops(const bench_result *res, int i)
{
    return res[i - (res[i].threads - 1)].ondev_gflops;
}

static void print_table(const bench_result *res, int nres,
                        const double peak[MAX_THREADS + 1])
{
    printf("\n%-30s %5s %5s %5s %3s %8s %6s %6s %6s %9s %6s\n", "shape",
           "m", "n", "k", "thr", "ondev", "peak", "%peak", "x1thr",
           "OpenBLAS", "ratio");
    double sum_pct[MAX_THREADS + 1] = {0};
    int count[MAX_THREADS + 1] = {0};
    for (int i = 0; i < nres; i++) {
        const bench_result *r = &res[i];
        double pk = peak_of(r, peak);
        char pct[16] = "n/a", blas[16] = "n/a", ratio[16] = "n/a";
        char speedup[16] = "";
        if (pk > 0.0) {
            snprintf(pct, sizeof pct, "%.1f", 100.0 * r->ondev_gflops / pk);
            if (strcmp(r->s.form, "square") != 0) {
                sum_pct[r->threads] += 100.0 * r->ondev_gflops / pk;
                count[r->threads]++;
            }
        }
        if (r->threads > 1)
            snprintf(speedup, sizeof speedup, "%.2f",
                     r->ondev_gflops / one_thread_gflops(res, i));
        if (r->blas_gflops > 0.0) {
            snprintf(blas, sizeof blas, "%.1f", r->blas_gflops);
            snprintf(ratio, sizeof ratio, "%.2f",
                     r->ondev_gflops / r->blas_gflops);
        }
        printf("%-30s %5d %5d %5d %3d %8.1f %6.1f %6s %6s %9s %6s\n",
               r->s.name, r->s.m, r->s.n, r->s.k, r->threads, r->ondev_gflops,
               pk, pct, speedup, blas, ratio);
    }
    printf("GFLOP/s; peak: the FMA peak of the same thread count, measured "
           "between ondev's repeats of that product; x1thr: ondev's speed-up "
           "over its 1-thread figure.\n");
    for (int t = 1; t <= MAX_THREADS; t++)
        if (count[t] > 0)
            printf("mean %%peak over the training shapes, %d thread(s): "
                   "%.1f\n", t, sum_pct[t] / count[t]);
}

/* Write the figures to f (opened by main() before the long run, so that a
 * bad path fails at once) and close it. */
static int write_json(FILE *f, const char *path, const bench_result *res,
                      int nres, const double peak[MAX_THREADS + 1],
                      double ceiling)
{
    const char *env = getenv("OPENBLAS_CORETYPE");
    fprintf(f, "{\n \"tool\": \"bench_gemm\",\n \"isa\": \"%s\",\n",
            od_isa_name(od_cpu_isa()));
    fprintf(f, " \"openblas_core\": \"%s\",\n", blas_core());
    fprintf(f, " \"openblas_coretype_env\": \"%s\",\n", env ? env : "");
    fprintf(f, " \"peak_gflops\": {\"1\": %.3f, \"2\": %.3f},\n", peak[1],
            peak[2]);
    fprintf(f, " \"kernel_ceiling_gflops\": %.3f,\n", ceiling);
    fprintf(f, " \"results\": [\n");
    for (int i = 0; i < nres; i++) {
        const bench_result *r = &res[i];
        double pk = peak_of(r, peak);
        fprintf(f,
                "  {\"name\": \"%s\", \"form\": \"%s\", \"m\": %d, \"n\": %d, "
                "\"k\": %d, \"trans_a\": %d, \"trans_b\": %d, \"beta\": %g, "
                "\"threads\": %d, \"ondev_gflops\": %.3f, "
                "\"peak_gflops\": %.3f, \"ondev_pct_peak\": %.2f, "
                "\"openblas_gflops\": %.3f, "
                "\"ratio\": %.4f, \"max_rel_diff\": %.3g}%s\n",
                r->s.name, r->s.form, r->s.m, r->s.n, r->s.k, r->s.trans_a,
                r->s.trans_b, (double)r->s.beta, r->threads, r->ondev_gflops,
                pk, pk > 0.0 ? 100.0 * r->ondev_gflops / pk : 0.0, r->blas_gflops,
                r->blas_gflops > 0.0 ? r->ondev_gflops / r->blas_gflops : 0.0,
                r->max_rel_diff, i + 1 < nres ? "," : "");
    }
    fprintf(f, " ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_gemm: error writing %s\n", path);
        return 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_gemm [--quick] [--json FILE] [--only TEXT]\n"
               "  --quick      small shapes and short repeats (smoke test)\n"
               "  --json FILE  also write the figures to FILE\n"
               "  --only TEXT  only the shapes whose name contains TEXT\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            o.quick = 1;
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            o.json = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            o.only = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_gemm: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    o.min_repeat_s = 0.002;
    o.budget_s = o.quick ? 0.04 : 0.25;
    o.repeats = o.quick ? 5 : 20;

    FILE *json = NULL;
    if (o.json && !(json = fopen(o.json, "w"))) {
        fprintf(stderr, "bench_gemm: cannot write %s; check that its "
                        "directory exists and is writable\n", o.json);
        return 1;
    }

    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("bench_gemm: ondev isa %s; OpenBLAS core %s "
           "(OPENBLAS_CORETYPE=%s)\n",
           od_isa_name(od_cpu_isa()), blas_core(), env ? env : "unset");

    od_pool *pool2 = od_pool_create(MAX_THREADS, NULL);
    if (!pool2) {
        fprintf(stderr, "bench_gemm: cannot start a pool of %d threads\n",
                MAX_THREADS);
        return 1;
    }
    double peak[MAX_THREADS + 1] = {0};
    peak[1] = measure_peak(NULL, &o);
    peak[2] = measure_peak(pool2, &o);
    printf("FMA peak: %.1f GFLOP/s on 1 thread, %.1f on 2 (%.2fx)\n", peak[1],
           peak[2], peak[1] > 0.0 ? peak[2] / peak[1] : 0.0);
    double ceiling = measure_kernel_ceiling(&o);
    peak_ctx pctx[MAX_THREADS + 1];
    for (int t = 1; t <= MAX_THREADS; t++)
        peak_init(&pctx[t], t == 1 ? NULL : pool2, PEAK_BESIDE_S);
    printf("micro-kernel alone on L1-resident panels, 1 thread: %.1f GFLOP/s "
           "(%.1f %% of the FMA peak)\n", ceiling,
           peak[1] > 0.0 ? 100.0 * ceiling / peak[1] : 0.0);

    bench_shape shapes[64];
    int nshapes = make_shapes(shapes, o.quick);
    if (o.only) {
        int kept = 0;
        for (int i = 0; i < nshapes; i++)
            if (strstr(shapes[i].name, o.only))
                shapes[kept++] = shapes[i];
        nshapes = kept;
    }
    bench_result *res = calloc((size_t)nshapes * MAX_THREADS, sizeof *res);
    if (!res) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        return 1;
    }
    int nres = nshapes * MAX_THREADS;
#if defined(ONDEV_HAVE_OPENBLAS)
    const int nlibs = 2;
#else
    const int nlibs = 1;
#endif
    for (int lib = 0; lib < nlibs; lib++) {
        for (int i = 0; i < nshapes; i++) {
            for (int t = 1; t <= MAX_THREADS; t++) {
                bench_result *r = &res[i * MAX_THREADS + t - 1];
                bench_shape_run(&shapes[i], t, t == 1 ? NULL : pool2, lib,
                                pctx[t].ntasks ? &pctx[t] : NULL, &o, r);
                fprintf(stderr, "  %-30s t=%d %-8s %7.1f GFLOP/s\n",
                        r->s.name, t, lib ? "OpenBLAS" : "ondev",
                        lib ? r->blas_gflops : r->ondev_gflops);
            }
        }
    }
    print_table(res, nres, peak);

    int rc = json ? write_json(json, o.json, res, nres, peak, ceiling) : 0;
    free(res);
    od_pool_destroy(pool2);
    return rc;
}
