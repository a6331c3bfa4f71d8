/* `ondev profile` measurements: topology, clock, counters, FMA peak, memory
 * bandwidth and per-kind kernel throughput of the machine ondev runs on.
 *
 * Method, in order:
 *   1. hwloc gives packages, cores, PUs, NUMA nodes, memory and caches.
 *   2. The clock comes from a chain of dependent integer additions (one per
 *      cycle on every x86-64 and AArch64 core), with cpufreq and
 *      /proc/cpuinfo reported beside it.
 *   3. PAPI, when built in, is asked for cycles, instructions and FP
 *      operations; a machine without usable counters is reported, not
 *      refused.
 *   4. The peak is a loop of independent FMAs in the ISA the kernels use.
 *   5. Bandwidth is a STREAM-style copy and triad over arrays larger than
 *      the caches, on one thread and on every core.
 *   6. Each op kind runs representative kernels at the shapes of the
 *      shipped workloads, on one thread; its efficiency is the share of the
 *      one-core peak it reaches, which is what the emulator's roofline
 *      multiplies the peak by (devices/device.h, od_dev_op_time_s).
 *   7. Whole training steps of fmnist-cnn and fmnist-mlp give the same
 *      share as the engine's cost records see it, layer overheads
 *      included; the profile takes it where a kind occurs in them.
 * Every figure is the best of several timed samples. */
#include "harness/profile.h"

#include <errno.h>
#include <hwloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OD__X86 1
#endif

#ifdef ONDEV_HAVE_PAPI
#include <papi.h>
#endif

#include "devices/device.h"
#include "engine/cpu.h"
#include "engine/kernels.h"
#include "engine/model.h"
#include "engine/pool.h"
#include "harness/log.h"
#include "harness/topology.h"
#include "workloads/workload.h"

#ifndef ONDEV_VERSION
#define ONDEV_VERSION "unknown"
#endif

/* How long and how often to time each figure. */
typedef struct od__plan {
    int repeats;            /* samples; the best one counts */
    double sample_s;        /* shortest sample: calls are batched up to it */
    size_t stream_bytes;    /* each of the three bandwidth arrays */
    int batch;              /* N of the representative kernel shapes */
} od__plan;

static od__plan od__plan_for(const od_profile_opts *o)
{
    od__plan p;
    /* Short samples and many of them: on a loaded machine a sample shorter
     * than a scheduler time slice often runs undisturbed, and the best one
     * is then the machine's own figure. */
    if (o->quick) {
        p.repeats = 9;
        p.sample_s = 0.001;
        p.stream_bytes = (size_t)32 << 20;
        p.batch = 32;
    } else {
        p.repeats = 25;
        p.sample_s = 0.002;
        p.stream_bytes = (size_t)128 << 20;
        p.batch = 64;
    }
    return p;
}

/* ------------------------------------------------------------- counters */

/* The PAPI event set around the timed samples; n 0 when nothing counts. */
typedef struct od__counters {
    int n;                  /* events in the set */
    int idx_cyc, idx_ins, idx_fp;   /* position in values, or -1 */
#ifdef ONDEV_HAVE_PAPI
    int es;
#endif
    long long values[3];
} od__counters;

static void od__counters_init(od__counters *c, od_profile_result *r)
{
    memset(c, 0, sizeof *c);
    c->idx_cyc = c->idx_ins = c->idx_fp = -1;
#ifdef ONDEV_HAVE_PAPI
    r->papi_built = 1;
    c->es = PAPI_NULL;
    int v = PAPI_library_init(PAPI_VER_CURRENT);
    if (v != PAPI_VER_CURRENT) {
        snprintf(r->counters_text, sizeof r->counters_text,
                 "none available (PAPI could not start: %s); measurements "
                 "use wall-clock time only",
                 v < 0 ? PAPI_strerror(v) : "library version mismatch");
        return;
    }
    snprintf(r->papi_version, sizeof r->papi_version, "%d.%d.%d",
             PAPI_VERSION_MAJOR(PAPI_VERSION),
             PAPI_VERSION_MINOR(PAPI_VERSION),
             PAPI_VERSION_REVISION(PAPI_VERSION));
    r->counter_slots = PAPI_num_cmp_hwctrs(0);
    if (r->counter_slots <= 0) {
        r->counter_slots = 0;
        snprintf(r->counters_text, sizeof r->counters_text,
                 "none available (PAPI reports 0); measurements use "
                 "wall-clock time only");
        return;
    }

    /* Add what this CPU can count; a VM often offers slots but no event. */
    int first_err = PAPI_OK;
    if (PAPI_create_eventset(&c->es) != PAPI_OK) {
        snprintf(r->counters_text, sizeof r->counters_text,
                 "none available (PAPI cannot create an event set); "
                 "measurements use wall-clock time only");
        c->es = PAPI_NULL;
        return;
    }
    const int events[3] = {PAPI_TOT_CYC, PAPI_TOT_INS, PAPI_SP_OPS};
    int *slots[3] = {&c->idx_cyc, &c->idx_ins, &c->idx_fp};
    for (int i = 0; i < 3; i++) {
        int st = PAPI_add_event(c->es, events[i]);
        if (st != PAPI_OK && i == 2) /* some CPUs count only all FP ops */
            st = PAPI_add_event(c->es, PAPI_FP_OPS);
        if (st == PAPI_OK)
            *slots[i] = c->n++;
        else if (first_err == PAPI_OK)
            first_err = st;
    }
    if (c->n > 0 && PAPI_start(c->es) == PAPI_OK &&
        PAPI_stop(c->es, c->values) == PAPI_OK) {
        r->counters_usable = c->n;
        snprintf(r->counters_text, sizeof r->counters_text,
                 "%d usable (%s%s%s) of %d reported by PAPI %s", c->n,
                 c->idx_cyc >= 0 ? "cycles " : "",
                 c->idx_ins >= 0 ? "instructions " : "",
                 c->idx_fp >= 0 ? "FP32 operations" : "",
                 r->counter_slots, r->papi_version);
        return;
    }
    snprintf(r->counters_text, sizeof r->counters_text,
             "none available (PAPI reports %d counter slots, but neither "
             "cycles, instructions nor FP operations can be counted: %s); "
             "measurements use wall-clock time only",
             r->counter_slots,
             first_err != PAPI_OK ? PAPI_strerror(first_err)
                                  : "the event set does not start");
    PAPI_cleanup_eventset(c->es);
    PAPI_destroy_eventset(&c->es);
    c->es = PAPI_NULL;
    c->n = 0;
    c->idx_cyc = c->idx_ins = c->idx_fp = -1;
#else
    (void)r;
    snprintf(r->counters_text, sizeof r->counters_text,
             "none available (ondev was built without PAPI); measurements "
             "use wall-clock time only");
#endif
}

static void od__counters_start(od__counters *c)
{
#ifdef ONDEV_HAVE_PAPI
    if (c->n && PAPI_start(c->es) != PAPI_OK)
        c->n = 0;
#else
    (void)c;
#endif
}

/* Stop counting; values[] hold the counts since od__counters_start. */
static void od__counters_stop(od__counters *c)
{
    memset(c->values, 0, sizeof c->values);
#ifdef ONDEV_HAVE_PAPI
    if (c->n && PAPI_stop(c->es, c->values) != PAPI_OK)
        memset(c->values, 0, sizeof c->values);
#else
    (void)c;
#endif
}

static double od__counters_ipc(const od__counters *c)
{
    if (c->idx_cyc < 0 || c->idx_ins < 0 || c->values[c->idx_cyc] <= 0)
        return 0.0;
    return (double)c->values[c->idx_ins] / (double)c->values[c->idx_cyc];
}

static void od__counters_free(od__counters *c)
{
#ifdef ONDEV_HAVE_PAPI
    if (c->es != PAPI_NULL) {
        PAPI_cleanup_eventset(c->es);
        PAPI_destroy_eventset(&c->es);
    }
    if (PAPI_is_initialized())
        PAPI_shutdown();
#else
    (void)c;
#endif
}

/* --------------------------------------------------------------- timing */

typedef void (*od__call_fn)(void *ctx);

/* Best seconds per call of fn(ctx). Calls are batched so that one sample
 * lasts at least plan->sample_s (the clock's resolution then does not
 * matter); of plan->repeats samples the fastest counts, so that other
 * processes on a busy machine lower the figure little. Counters c (may be
 * NULL) run around the timed samples; *calls gets the calls they cover. */
static double od__best_per_call(const od__plan *plan, od__call_fn fn,
                                void *ctx, od__counters *c, double *calls)
{
    fn(ctx); /* warm caches and page tables */

    long batch = 1;
    for (;;) {
        uint64_t t0 = od_now_ns();
        for (long i = 0; i < batch; i++)
            fn(ctx);
        double dt = (double)(od_now_ns() - t0) * 1e-9;
        if (dt >= plan->sample_s || batch >= (1L << 30))
            break;
        double grow = dt > 0 ? 1.25 * plan->sample_s / dt : 16.0;
        if (grow < 2.0)
            grow = 2.0;
        if (grow > 1024.0)
            grow = 1024.0;
        batch = (long)((double)batch * grow);
    }

    double best = INFINITY;
    if (c)
        od__counters_start(c);
    for (int r = 0; r < plan->repeats; r++) {
        uint64_t t0 = od_now_ns();
        for (long i = 0; i < batch; i++)
            fn(ctx);
        double dt = (double)(od_now_ns() - t0) * 1e-9 / (double)batch;
        if (dt < best)
            best = dt;
    }
    if (c)
        od__counters_stop(c);
    if (calls)
        *calls = (double)batch * plan->repeats;
    return best;
}

/* ------------------------------------------------------------- topology */

static void od__topology(od_profile_result *r)
{
    od_host h;
    od_host_describe(&h);
    snprintf(r->cpu_model, sizeof r->cpu_model, "%s", h.cpu_model);
    r->packages = h.packages;
    r->cores = h.cores;
    r->pus = h.pus;
    r->topology_known = h.known;
    r->numa_nodes = 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        r->mem_total_bytes = (double)pages * (double)page;

    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return;
    hwloc_topology_set_icache_types_filter(t, HWLOC_TYPE_FILTER_KEEP_ALL);
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return;
    }
    int numa = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    if (numa > 0)
        r->numa_nodes = numa;
    hwloc_obj_t root = hwloc_get_root_obj(t);
    if (root && root->total_memory > 0)
        r->mem_total_bytes = (double)root->total_memory;

    static const hwloc_obj_type_t types[] = {
        HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L1ICACHE, HWLOC_OBJ_L2CACHE,
        HWLOC_OBJ_L2ICACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L3ICACHE,
        HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int n = hwloc_get_nbobjs_by_type(t, types[i]);
        hwloc_obj_t o = hwloc_get_obj_by_type(t, types[i], 0);
        if (n <= 0 || !o || !o->attr || r->ncaches == OD_PROFILE_MAX_CACHES)
            continue;
        od_profile_cache *c = &r->caches[r->ncaches++];
        c->level = (int)o->attr->cache.depth;
        c->size_bytes = o->attr->cache.size;
        c->count = n;
        snprintf(c->type, sizeof c->type, "%s",
                 o->attr->cache.type == HWLOC_OBJ_CACHE_DATA ? "data"
                 : o->attr->cache.type == HWLOC_OBJ_CACHE_INSTRUCTION
                     ? "instruction"
                     : "unified");
    }
    hwloc_topology_destroy(t);
}

/* Bytes of the last-level cache on the whole machine (0: unknown). */
static double od__llc_total_bytes(const od_profile_result *r)
{
    int best = -1;
    for (int i = 0; i < r->ncaches; i++)
        if (strcmp(r->caches[i].type, "instruction") != 0 &&
            (best < 0 || r->caches[i].level > r->caches[best].level))
            best = i;
    if (best < 0)
        return 0.0;
    return (double)r->caches[best].size_bytes * r->caches[best].count;
}

/* Bytes of one L2 instance (0: unknown). */
static double od__l2_bytes(const od_profile_result *r)
{
    for (int i = 0; i < r->ncaches; i++)
        if (r->caches[i].level == 2 &&
            strcmp(r->caches[i].type, "instruction") != 0)
            return (double)r->caches[i].size_bytes;
    return 0.0;
}

/* ---------------------------------------------------------------- clock */

/* A number from the first line of a small text file; 0 when absent. */
static double od__read_number_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0.0;
    double v = 0.0;
    if (fscanf(f, "%lf", &v) != 1)
        v = 0.0;
    fclose(f);
    return v > 0 ? v : 0.0;
}

/* The first "cpu MHz" of /proc/cpuinfo in kHz; 0 when absent. */
static double od__cpuinfo_khz(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0.0;
    char line[256];
    double mhz = 0.0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu MHz", 7) == 0) {
            const char *colon = strchr(line, ':');
            if (colon)
                mhz = strtod(colon + 1, NULL);
            break;
        }
    }
    fclose(f);
    return mhz > 0 ? mhz * 1e3 : 0.0;
}

#define OD__CHAIN_ADDS 16

/* iters rounds of OD__CHAIN_ADDS dependent additions: one round takes
 * OD__CHAIN_ADDS cycles, since each addition waits for the previous one
 * and the loop counter runs alongside on another port. */
typedef struct od__chain_ctx {
    uint64_t iters;
    uint64_t step;      /* a register operand: some cores fold chains of
                           additions of an immediate at rename */
    uint64_t sink;
} od__chain_ctx;

static int od__chain_supported(void)
{
#if defined(__x86_64__) || defined(__aarch64__)
    return 1;
#else
    return 0;
#endif
}

static void od__chain(void *p)
{
    od__chain_ctx *c = p;
    uint64_t x = c->sink, n = c->iters, step = c->step;
#if defined(__x86_64__)
    __asm__ volatile(
        "1:\n\t"
        "addq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\t"
        "addq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\t"
        "addq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\t"
        "addq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\taddq %2, %0\n\t"
        "decq %1\n\t"
        "jnz 1b\n\t"
        : "+r"(x), "+r"(n)
        : "r"(step)
        : "cc");
#elif defined(__aarch64__)
    __asm__ volatile(
        "1:\n\t"
        "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
        "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
        "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
        "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
        "add %0, %0, %2\n\tadd %0, %0, %2\n\tadd %0, %0, %2\n\t"
        "add %0, %0, %2\n\t"
        "subs %1, %1, #1\n\t"
        "b.ne 1b\n\t"
        : "+r"(x), "+r"(n)
        : "r"(step)
        : "cc");
#else
    x += n * step;
#endif
    c->sink = x;
}

static void od__clock(const od__plan *plan, od_profile_result *r)
{
    r->sysfs_max_khz = od__read_number_file(
        "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
    r->cpuinfo_khz = od__cpuinfo_khz();
    if (od__chain_supported()) {
        od__chain_ctx c = {.iters = 20000, .step = 1, .sink = 0};
        double s = od__best_per_call(plan, od__chain, &c, NULL, NULL);
        r->loop_freq_khz = (double)c.iters * OD__CHAIN_ADDS / s / 1e3;
    }
    if (r->loop_freq_khz > 0) {
        r->freq_khz = r->loop_freq_khz;
        snprintf(r->freq_method, sizeof r->freq_method,
                 "timed chain of dependent integer additions");
    } else if (r->sysfs_max_khz > 0) {
        r->freq_khz = r->sysfs_max_khz;
        snprintf(r->freq_method, sizeof r->freq_method,
                 "cpufreq cpuinfo_max_freq");
    } else if (r->cpuinfo_khz > 0) {
        r->freq_khz = r->cpuinfo_khz;
        snprintf(r->freq_method, sizeof r->freq_method,
                 "/proc/cpuinfo cpu MHz");
    } else {
        r->freq_khz = 2e6;
        snprintf(r->freq_method, sizeof r->freq_method,
                 "assumed 2 GHz (no clock source on this machine)");
    }
}

/* ----------------------------------------------------------------- peak */

/* Independent accumulators per loop: enough to hide the FMA latency
 * (4 cycles) on two FMA pipes, few enough to stay in 16 registers. */
#define OD__FMA_ACC 12

typedef struct od__peak_ctx {
    long iters;
    double flops_per_iter;
    void (*loop)(long iters, float *out);
    float sink;
} od__peak_ctx;

#ifdef OD__X86
#define OD__T512 __attribute__((target("avx512f")))
#define OD__T256 __attribute__((target("avx2,fma")))

OD__T512 static void od__fma_avx512(long iters, float *out)
{
    __m512 acc[OD__FMA_ACC];
    const __m512 m = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
    for (int i = 0; i < OD__FMA_ACC; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < OD__FMA_ACC; i++)
            acc[i] = _mm512_fmadd_ps(acc[i], m, b);
    for (int i = 1; i < OD__FMA_ACC; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    *out += _mm512_reduce_add_ps(acc[0]);
}

OD__T256 static void od__fma_avx2(long iters, float *out)
{
    __m256 acc[OD__FMA_ACC];
    const __m256 m = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < OD__FMA_ACC; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < OD__FMA_ACC; i++)
            acc[i] = _mm256_fmadd_ps(acc[i], m, b);
    for (int i = 1; i < OD__FMA_ACC; i++)
        acc[0] = _mm256_add_ps(acc[0], acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, acc[0]);
    for (int i = 0; i < 8; i++)
        *out += lanes[i];
}
#endif

/* Portable: 4-lane vectors, a multiply and an add (the build does not fuse
 * them), as the portable kernels compile. */
typedef float od__v4 __attribute__((vector_size(16)));

static void od__fma_portable(long iters, float *out)
{
    od__v4 acc[OD__FMA_ACC];
    const od__v4 m = {0.9999f, 0.9999f, 0.9999f, 0.9999f};
    const od__v4 b = {1e-4f, 1e-4f, 1e-4f, 1e-4f};
    for (int i = 0; i < OD__FMA_ACC; i++) {
        od__v4 v = {(float)i, (float)i, (float)i, (float)i};
        acc[i] = v;
    }
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < OD__FMA_ACC; i++)
            acc[i] = acc[i] * m + b;
    for (int i = 1; i < OD__FMA_ACC; i++)
        acc[0] += acc[i];
    *out += acc[0][0] + acc[0][1] + acc[0][2] + acc[0][3];
}

static volatile float od__sink;

static void od__peak_call(void *p)
{
    od__peak_ctx *c = p;
    c->loop(c->iters, &c->sink);
}

static void od__peak(const od__plan *plan, od__counters *ctr,
                     od_profile_result *r)
{
    od__peak_ctx c = {.iters = 20000, .sink = 0.0f};
    c.loop = od__fma_portable;
    c.flops_per_iter = OD__FMA_ACC * 4 * 2;
#ifdef OD__X86
    od_isa isa = od_cpu_isa();
    if (isa == OD_ISA_AVX512) {
        c.loop = od__fma_avx512;
        c.flops_per_iter = OD__FMA_ACC * 16 * 2;
    } else if (isa == OD_ISA_AVX2) {
        c.loop = od__fma_avx2;
        c.flops_per_iter = OD__FMA_ACC * 8 * 2;
    }
#endif
    double s = od__best_per_call(plan, od__peak_call, &c, ctr, NULL);
    od__sink = c.sink; /* the loops' results are used */
    r->peak_gflop_s = c.flops_per_iter * (double)c.iters / s / 1e9;
    r->flop_per_cycle = r->peak_gflop_s * 1e9 / (r->freq_khz * 1e3);
    r->peak_ipc = ctr ? od__counters_ipc(ctr) : 0.0;
}

/* ------------------------------------------------------------ bandwidth */

typedef struct od__stream {
    float *a, *b, *c;       /* (n) each */
    size_t n;
    int nthreads;
    od_pool *pool;          /* NULL: one thread */
    int op;                 /* 0 init, 1 copy, 2 triad */
} od__stream;

/* Part t of nthreads: its share of the arrays. */
static void od__stream_part(void *p, int t, int worker)
{
    (void)worker;
    od__stream *s = p;
    size_t lo = s->n * (size_t)t / (size_t)s->nthreads;
    size_t hi = s->n * (size_t)(t + 1) / (size_t)s->nthreads;
    float *restrict a = s->a, *restrict b = s->b, *restrict c = s->c;
    if (s->op == 0) {
        for (size_t i = lo; i < hi; i++) {
            a[i] = 0.0f;
            b[i] = 1.0f;
            c[i] = 2.0f;
        }
    } else if (s->op == 1) {
        memcpy(a + lo, b + lo, (hi - lo) * sizeof(float));
    } else {
        const float q = 0.5f;
        for (size_t i = lo; i < hi; i++)
            a[i] = b[i] + q * c[i];
    }
}

static void od__stream_call(void *p)
{
    od__stream *s = p;
    od_pool_run(s->pool, s->nthreads, od__stream_part, s);
}

static void od__stream_free(od__stream *s)
{
    od_aligned_free(s->a);
    od_aligned_free(s->b);
    od_aligned_free(s->c);
    s->a = s->b = s->c = NULL;
}

/* Fresh arrays whose pages are first touched by the workers that will use
 * them (each NUMA node then holds its workers' share). */
static od_status od__stream_alloc(od__stream *s, size_t bytes)
{
    s->n = bytes / sizeof(float);
    s->a = od_aligned_alloc(s->n * sizeof(float));
    s->b = od_aligned_alloc(s->n * sizeof(float));
    s->c = od_aligned_alloc(s->n * sizeof(float));
    if (!s->a || !s->b || !s->c) {
        od__stream_free(s);
        return od_fail(OD_ERR_NOMEM, "profile: cannot allocate 3 x %zu MiB "
                       "for the bandwidth arrays; try --quick", bytes >> 20);
    }
    s->op = 0;
    od__stream_call(s);
    return OD_OK;
}

static od_status od__bandwidth(const od__plan *plan, od_profile_result *r)
{
    r->mem_buffer_bytes = (double)plan->stream_bytes;
    double llc = od__llc_total_bytes(r);
    r->buffer_exceeds_llc = llc > 0 && 3.0 * r->mem_buffer_bytes >= 2.0 * llc;

    /* One thread. */
    od__stream s = {0};
    s.nthreads = 1;
    OD_TRY(od__stream_alloc(&s, plan->stream_bytes));
    s.op = 1;
    double t = od__best_per_call(plan, od__stream_call, &s, NULL, NULL);
    r->copy_gb_s_1 = 2.0 * r->mem_buffer_bytes / t / 1e9;
    s.op = 2;
    t = od__best_per_call(plan, od__stream_call, &s, NULL, NULL);
    r->triad_gb_s_1 = 3.0 * r->mem_buffer_bytes / t / 1e9;
    od__stream_free(&s);

    /* Every core, one worker bound to each where the OS allows. */
    int nt = od_topology_default_threads();
    r->threads_all = 1;
    r->triad_gb_s_all = r->triad_gb_s_1;
    if (nt <= 1)
        return OD_OK;
    int cpus[OD_TOPO_MAX_CPUS];
    const char *why = NULL;
    int bound = nt <= OD_TOPO_MAX_CPUS && od_topology_pick_cpus(nt, cpus, &why);
    s.pool = od_pool_create(nt, bound ? cpus : NULL);
    if (!s.pool) {
        od_log_warn("profile: no thread pool of %d; the all-core bandwidth "
                    "is the one-thread figure", nt);
        return OD_OK;
    }
    s.nthreads = nt;
    od_status st = od__stream_alloc(&s, plan->stream_bytes);
    if (st == OD_OK) {
        s.op = 2;
        t = od__best_per_call(plan, od__stream_call, &s, NULL, NULL);
        r->triad_gb_s_all = 3.0 * r->mem_buffer_bytes / t / 1e9;
        r->threads_all = nt;
    }
    od__stream_free(&s);
    od_pool_destroy(s.pool);
    return st;
}

/* -------------------------------------------------------------- kernels */

/* The buffers of every representative kernel, sized for the largest. */
typedef struct od__kbufs {
    float *x, *y, *w, *dy, *dx, *scratch;
    int32_t *idx;
    size_t floats;          /* of x, y, w, dy, dx each */
    size_t scratch_floats;
} od__kbufs;

typedef struct od__kctx {
    od__kbufs *k;
    int which;
    int m, n, kk, ta, tb;               /* GEMM */
    od_conv2d_shape cs;                 /* convolution */
    od_pool2d_shape ps;                 /* pooling */
    size_t len;                         /* element-wise */
    od_act act;
    int rows, cols;                     /* softmax, reductions */
    double sink;
} od__kctx;

enum {
    OD__K_GEMM, OD__K_CONV_FWD, OD__K_CONV_BWD_DATA, OD__K_CONV_BWD_WEIGHT,
    OD__K_MAXPOOL_FWD, OD__K_MAXPOOL_BWD, OD__K_ACT_FWD, OD__K_ACT_BWD,
    OD__K_XENT_FWD, OD__K_XENT_BWD, OD__K_ROW_SQNORM, OD__K_SUM_ROWS,
};

static void od__kernel_call(void *p)
{
    od__kctx *c = p;
    od__kbufs *k = c->k;
    switch (c->which) {
    case OD__K_GEMM: {
        int lda = c->ta ? c->m : c->kk, ldb = c->tb ? c->kk : c->n;
        od_gemm(NULL, c->ta, c->tb, c->m, c->n, c->kk, 1.0f, k->x, lda, k->w,
                ldb, 0.0f, k->y, c->n);
        break;
    }
    case OD__K_CONV_FWD:
        od_conv2d_forward(NULL, &c->cs, k->x, k->w, NULL, k->y, k->scratch);
        break;
    case OD__K_CONV_BWD_DATA:
        od_conv2d_backward_data(NULL, &c->cs, k->dy, k->w, k->dx, k->scratch);
        break;
    case OD__K_CONV_BWD_WEIGHT:
        /* Accumulates into dw; the values grow but stay finite over the
         * calls a profile makes (gradients of unit-range data). */
        od_conv2d_backward_weight(NULL, &c->cs, k->x, k->dy, k->dx, NULL,
                                  k->scratch);
        break;
    case OD__K_MAXPOOL_FWD:
        od_maxpool2d_forward(NULL, &c->ps, k->x, k->y, k->idx);
        break;
    case OD__K_MAXPOOL_BWD:
        od_maxpool2d_backward(NULL, &c->ps, k->dy, k->idx, k->dx);
        break;
    case OD__K_ACT_FWD:
        od_act_forward(NULL, c->act, c->len, k->x, k->y);
        break;
    case OD__K_ACT_BWD:
        od_act_backward(NULL, c->act, c->len, k->x, k->y, k->dy, k->dx);
        break;
    case OD__K_XENT_FWD:
        c->sink += od_softmax_xent_forward(NULL, c->rows, c->cols, k->x,
                                           k->idx, k->y, k->dx);
        break;
    case OD__K_XENT_BWD:
        od_softmax_xent_backward(NULL, c->rows, c->cols, k->y, k->idx,
                                 0.01f, k->dx);
        break;
    case OD__K_ROW_SQNORM:
        od_row_sqnorm(NULL, c->rows, c->cols, k->x, k->y);
        break;
    case OD__K_SUM_ROWS:
        od_sum_rows(NULL, c->rows, c->cols, k->x, k->y);
        break;
    default:
        OD_ASSERT(0 && "unknown profile kernel");
    }
}

/* Time one kernel and record it in r. */
static void od__kernel(const od__plan *plan, od__counters *ctr,
                       od_profile_result *r, od__kctx *c, od_op_kind kind,
                       const char *name, double flops, double bytes)
{
    OD_ASSERT(r->nkernels < OD_PROFILE_MAX_KERNELS);
    double calls = 0;
    double s = od__best_per_call(plan, od__kernel_call, c, ctr, &calls);
    od_profile_kernel *k = &r->kernels[r->nkernels++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    snprintf(k->name, sizeof k->name, "%s", name);
    k->flops = flops;
    k->bytes = bytes;
    k->best_s = s;
    k->gflop_s = flops / s / 1e9;
    k->gb_s = bytes / s / 1e9;
    double intensity = bytes > 0 ? flops / bytes : INFINITY;
    double mem_bound = intensity * r->triad_gb_s_1;
    k->roofline_gflop_s = mem_bound < r->peak_gflop_s ? mem_bound
                                                      : r->peak_gflop_s;
    k->roofline_fraction = k->roofline_gflop_s > 0
                               ? k->gflop_s / k->roofline_gflop_s
                               : 0.0;
    k->ipc = od__counters_ipc(ctr);
    if (ctr->idx_fp >= 0 && calls > 0)
        k->counted_flops = (double)ctr->values[ctr->idx_fp] / calls;
    od_log_debug("profile: %-40s %8.2f GFLOP/s %8.2f GB/s", name, k->gflop_s,
                 k->gb_s);
}

static od_status od__kbufs_alloc(od__kbufs *k, size_t floats,
                                 size_t scratch_floats)
{
    memset(k, 0, sizeof *k);
    k->floats = floats;
    k->scratch_floats = scratch_floats;
    float **bufs[5] = {&k->x, &k->y, &k->w, &k->dy, &k->dx};
    for (int i = 0; i < 5; i++)
        *bufs[i] = od_aligned_alloc(floats * sizeof(float));
    k->scratch = od_aligned_alloc(scratch_floats * sizeof(float));
    k->idx = od_aligned_alloc(floats * sizeof(int32_t));
    if (!k->x || !k->y || !k->w || !k->dy || !k->dx || !k->scratch ||
        !k->idx)
        return od_fail(OD_ERR_NOMEM, "profile: cannot allocate %zu MiB for "
                       "the kernel buffers", (7 * floats * 4) >> 20);

    /* Unit-range values from a fixed linear congruential sequence. */
    uint32_t s = 12345u;
    for (size_t i = 0; i < floats; i++) {
        float *dst[5] = {k->x, k->y, k->w, k->dy, k->dx};
        for (int b = 0; b < 5; b++) {
            s = s * 1664525u + 1013904223u;
            dst[b][i] = (float)(s >> 8) * (2.0f / 16777216.0f) - 1.0f;
        }
        k->idx[i] = 0;
    }
    memset(k->scratch, 0, scratch_floats * sizeof(float));
    return OD_OK;
}

static void od__kbufs_free(od__kbufs *k)
{
    od_aligned_free(k->x);
    od_aligned_free(k->y);
    od_aligned_free(k->w);
    od_aligned_free(k->dy);
    od_aligned_free(k->dx);
    od_aligned_free(k->scratch);
    od_aligned_free(k->idx);
}

/* The representative kernels, at the shapes of fmnist-cnn and fmnist-mlp
 * (engine layers' flop and byte counts: docs/profile.md). */
static od_status od__kernels(const od__plan *plan, od__counters *ctr,
                             od_profile_result *r)
{
    const int B = plan->batch;
    char name[48];

    /* conv2 of fmnist-cnn: (B, 32, 12, 12) * (64, 32, 5, 5). */
    od_conv2d_shape c2 = {.n = B, .c_in = 32, .h = 12, .w = 12, .c_out = 64,
                          .kh = 5, .kw = 5, .stride_h = 1, .stride_w = 1};
    /* conv1: (B, 1, 28, 28) * (32, 1, 5, 5). */
    od_conv2d_shape c1 = {.n = B, .c_in = 1, .h = 28, .w = 28, .c_out = 32,
                          .kh = 5, .kw = 5, .stride_h = 1, .stride_w = 1};
    size_t scratch = od_conv2d_scratch_floats(&c2, 1);
    size_t s1 = od_conv2d_scratch_floats(&c1, 1);
    if (s1 > scratch)
        scratch = s1;
    /* The largest tensor: conv1's output (B, 32, 24, 24). */
    size_t floats = (size_t)B * 32 * 24 * 24;
    if (floats < (size_t)1024 * 1024)
        floats = (size_t)1024 * 1024;

    od__kbufs k;
    od_status st = od__kbufs_alloc(&k, floats, scratch);
    if (st != OD_OK) {
        od__kbufs_free(&k);
        return st;
    }
    od__kctx c;

    /* GEMM: fc1 of fmnist-cnn (1024 -> 128) forward and both gradients,
     * and fmnist-mlp's hidden layer (784 -> 256). */
    const struct { int m, n, k, ta, tb; const char *what; } gemms[] = {
        {B, 128, 1024, 0, 1, "fc1 forward"},
        {128, 1024, B, 1, 0, "fc1 weight gradient"},
        {B, 1024, 128, 0, 0, "fc1 input gradient"},
        {B, 256, 784, 0, 1, "mlp hidden forward"},
    };
    for (size_t i = 0; i < sizeof gemms / sizeof gemms[0]; i++) {
        memset(&c, 0, sizeof c);
        c.k = &k;
        c.which = OD__K_GEMM;
        c.m = gemms[i].m;
        c.n = gemms[i].n;
        c.kk = gemms[i].k;
        c.ta = gemms[i].ta;
        c.tb = gemms[i].tb;
        double mnk = (double)c.m * c.n * c.kk;
        double bytes = 4.0 * ((double)c.m * c.kk + (double)c.kk * c.n +
                              (double)c.m * c.n);
        snprintf(name, sizeof name, "gemm %dx%dx%d (%s)", c.m, c.n, c.kk,
                 gemms[i].what);
        od__kernel(plan, ctr, r, &c, OD_OP_GEMM, name, 2.0 * mnk, bytes);
    }

    /* Convolutions: conv2 forward and both gradients, conv1 forward. */
    const struct { const od_conv2d_shape *s; int which; const char *what; }
        convs[] = {
            {&c2, OD__K_CONV_FWD, "conv2 forward"},
            {&c2, OD__K_CONV_BWD_DATA, "conv2 input gradient"},
            {&c2, OD__K_CONV_BWD_WEIGHT, "conv2 weight gradient"},
            {&c1, OD__K_CONV_FWD, "conv1 forward"},
        };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        const od_conv2d_shape *s = convs[i].s;
        memset(&c, 0, sizeof c);
        c.k = &k;
        c.which = convs[i].which;
        c.cs = *s;
        double oh = od_conv2d_out_h(s), ow = od_conv2d_out_w(s);
        double in = (double)s->n * s->c_in * s->h * s->w;
        double out = (double)s->n * s->c_out * oh * ow;
        double wts = (double)s->c_out * s->c_in * s->kh * s->kw;
        double macs = out * s->c_in * s->kh * s->kw;
        od__kernel(plan, ctr, r, &c, OD_OP_CONV, convs[i].what, 2.0 * macs,
                   4.0 * (in + out + wts));
    }

    /* Max pooling after conv1: (B, 32, 24, 24) -> (B, 32, 12, 12). */
    memset(&c, 0, sizeof c);
    c.k = &k;
    c.ps = (od_pool2d_shape){.n = B, .c = 32, .h = 24, .w = 24, .kh = 2,
                             .kw = 2, .stride_h = 2, .stride_w = 2};
    double px = (double)B * 32 * 24 * 24, py = px / 4;
    c.which = OD__K_MAXPOOL_FWD;
    od__kernel(plan, ctr, r, &c, OD_OP_POOL, "maxpool 2x2 forward", 4.0 * py,
               4.0 * (px + 2.0 * py));
    c.which = OD__K_MAXPOOL_BWD;
    od__kernel(plan, ctr, r, &c, OD_OP_POOL, "maxpool 2x2 backward", py,
               4.0 * (2.0 * py + px));

    /* ReLU over conv1's output (every shipped workload uses ReLU); one flop
     * per element each way, as the engine counts it. */
    memset(&c, 0, sizeof c);
    c.k = &k;
    c.len = (size_t)px;
    c.act = OD_ACT_RELU;
    c.which = OD__K_ACT_FWD;
    od__kernel(plan, ctr, r, &c, OD_OP_ELTWISE, "relu forward", px, 8.0 * px);
    c.which = OD__K_ACT_BWD;
    od__kernel(plan, ctr, r, &c, OD_OP_ELTWISE, "relu backward", px,
               12.0 * px);

    /* Softmax with cross-entropy: 10 classes (Fashion-MNIST) and a
     * character vocabulary; labels are all 0 (the values do not change the
     * work). The engine counts 8 flops per logit forward, 2 backward. */
    const int xent[][2] = {{B, 10}, {8 * B, 96}};
    memset(k.idx, 0, k.floats * sizeof(int32_t)); /* pooling left indices */
    for (int i = 0; i < 2; i++) {
        memset(&c, 0, sizeof c);
        c.k = &k;
        c.rows = xent[i][0];
        c.cols = xent[i][1];
        double n = (double)c.rows * c.cols;
        c.which = OD__K_XENT_FWD;
        snprintf(name, sizeof name, "softmax-xent %dx%d forward", c.rows,
                 c.cols);
        od__kernel(plan, ctr, r, &c, OD_OP_SOFTMAX, name, 8.0 * n,
                   4.0 * (2.0 * n + 2.0 * c.rows));
        c.which = OD__K_XENT_BWD;
        snprintf(name, sizeof name, "softmax-xent %dx%d backward", c.rows,
                 c.cols);
        od__kernel(plan, ctr, r, &c, OD_OP_SOFTMAX, name, 2.0 * n,
                   4.0 * (2.0 * n + c.rows));
    }

    /* Reductions: per-example squared norms over (B, 8192) gradient rows,
     * and bias gradients over (16 B, 128). */
    memset(&c, 0, sizeof c);
    c.k = &k;
    c.rows = B;
    c.cols = 8192;
    c.which = OD__K_ROW_SQNORM;
    double n = (double)c.rows * c.cols;
    snprintf(name, sizeof name, "row sqnorm %dx%d", c.rows, c.cols);
    od__kernel(plan, ctr, r, &c, OD_OP_REDUCE, name, 2.0 * n,
               4.0 * (n + c.rows));
    c.rows = 16 * B;
    c.cols = 128;
    c.which = OD__K_SUM_ROWS;
    n = (double)c.rows * c.cols;
    snprintf(name, sizeof name, "sum rows %dx%d", c.rows, c.cols);
    od__kernel(plan, ctr, r, &c, OD_OP_REDUCE, name, n,
               4.0 * (n + 2.0 * c.cols));

    od__kbufs_free(&k);

    /* Per kind: all of its kernels' flops over all of their time, as a
     * share of the one-core peak (at most 1). */
    for (int kind = 0; kind < OD_OP_KIND_COUNT; kind++) {
        double f = 0, s = 0;
        for (int i = 0; i < r->nkernels; i++)
            if ((int)r->kernels[i].kind == kind) {
                f += r->kernels[i].flops;
                s += r->kernels[i].best_s;
            }
        if (f > 0 && s > 0 && r->peak_gflop_s > 0) {
            double e = f / s / (r->peak_gflop_s * 1e9);
            r->kernel_efficiency[kind] = e > 1.0 ? 1.0 : e;
        }
    }
    return OD_OK;
}

/* ------------------------------------------------------------ training */

/* Time whole training steps (forward, loss, backward; no optimiser) of a
 * shipped model on synthetic data, one thread. Per kind, the fastest step's
 * time of that kind's records is kept in best_s; flops per step are the
 * same every step. */
static od_status od__train_model(const od__plan *plan, const char *workload,
                                 int steps, double *flops, double *best_s)
{
    const od_workload *w = od_workload_find(workload);
    OD_ASSERT(w && w->labels_per_sample == 1);
    od_arena *arena = od_arena_create(0);
    if (!arena)
        return od_fail(OD_ERR_NOMEM, "profile: out of memory");
    od_trace trace;
    od_trace_init(&trace);
    od_ctx ctx = {.arena = arena, .pool = NULL, .trace = &trace, .seed = 1};
    od_model *m = NULL;
    od_tensor x = {0};
    void *label_mem = NULL;
    od_status st = w->build_model(&ctx, &m);
    if (st != OD_OK)
        goto done;
    od_model_init(m, 1);

    /* A batch of unit-range inputs and labels from a fixed sequence. */
    int dims[1 + OD_DATASET_MAX_DIMS];
    dims[0] = plan->batch;
    for (int i = 0; i < w->sample_ndim; i++)
        dims[1 + i] = w->sample_dims[i];
    st = od_tensor_alloc(arena, OD_MEM_PARAM, &x, 1 + w->sample_ndim, dims);
    if (st == OD_OK)
        st = od_arena_alloc(arena, OD_MEM_PARAM,
                            (size_t)plan->batch * sizeof(int32_t),
                            &label_mem);
    if (st != OD_OK)
        goto done;
    int32_t *labels = label_mem;
    uint32_t s = 777u;
    for (size_t i = 0; i < x.size; i++) {
        s = s * 1664525u + 1013904223u;
        x.data[i] = (float)(s >> 8) * (1.0f / 16777216.0f);
    }
    for (int i = 0; i < plan->batch; i++)
        labels[i] = i % w->num_classes;

    double sum_s[OD_OP_KIND_COUNT] = {0};
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        best_s[k] = INFINITY;
    for (int step = -1; step < steps; step++) { /* step -1 warms up */
        od_trace_begin_step(&trace);
        od_arena_reset_step(arena);
        od_model_zero_grad(m);
        ctx.step = (uint64_t)(step + 1);
        od_tensor logits, dlogits;
        double loss;
        int count;
        st = od_model_forward(m, &x, 1, &logits);
        if (st == OD_OK)
            st = od_model_xent(m, &logits, labels, &loss, &count, NULL,
                               &dlogits);
        if (st == OD_OK)
            st = od_model_backward(m, &dlogits);
        if (st != OD_OK)
            goto done;
        if (step < 0)
            continue;
        double f[OD_OP_KIND_COUNT] = {0}, ns[OD_OP_KIND_COUNT] = {0};
        for (size_t i = 0; i < trace.n; i++) {
            f[trace.recs[i].kind] += trace.recs[i].flops;
            ns[trace.recs[i].kind] += (double)trace.recs[i].host_ns;
        }
        for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
            flops[k] = f[k];
            sum_s[k] += ns[k] * 1e-9;
            if (ns[k] * 1e-9 < best_s[k])
                best_s[k] = ns[k] * 1e-9;
        }
    }
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (flops[k] > 0)
            od_log_debug("profile: %s %s: best step %.3f ms, mean %.3f ms",
                         workload, od_op_kind_name((od_op_kind)k),
                         best_s[k] * 1e3, sum_s[k] / steps * 1e3);

done:
    if (x.data)
        od_arena_free(arena, x.data);
    if (label_mem)
        od_arena_free(arena, label_mem);
    od_model_destroy(m);
    od_trace_free(&trace);
    od_arena_destroy(arena);
    if (st != OD_OK)
        return od_fail(st, "profile: a training step of %s failed: %s",
                       workload, od_error_message());
    return OD_OK;
}

/* Training steps of fmnist-cnn and fmnist-mlp; per kind, their flops over
 * their fastest times, as a share of the one-core peak. */
static od_status od__training(const od__plan *plan, od_profile_result *r)
{
    static const char *const models[] = {"fmnist-cnn", "fmnist-mlp"};
    r->train_steps = plan->repeats;
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        double f[OD_OP_KIND_COUNT] = {0}, t[OD_OP_KIND_COUNT];
        OD_TRY(od__train_model(plan, models[i], r->train_steps, f, t));
        for (int k = 0; k < OD_OP_KIND_COUNT; k++)
            if (f[k] > 0) {
                r->train_flops[k] += f[k];
                r->train_best_s[k] += t[k];
            }
    }
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->train_flops[k] > 0 && r->train_best_s[k] > 0 &&
            r->peak_gflop_s > 0) {
            double e = r->train_flops[k] / r->train_best_s[k] /
                       (r->peak_gflop_s * 1e9);
            r->train_efficiency[k] = e > 1.0 ? 1.0 : e;
        }
    return OD_OK;
}

/* ------------------------------------------------------------- measure */

od_status od_profile_measure(const od_profile_opts *o, od_profile_result *r)
{
    uint64_t t0 = od_now_ns();
    memset(r, 0, sizeof *r);
    od__plan plan = od__plan_for(o);
    r->quick = o->quick;

    od__topology(r);
    snprintf(r->isa, sizeof r->isa, "%s", od_isa_name(od_cpu_isa()));
    snprintf(r->isa_detected, sizeof r->isa_detected, "%s",
             od_isa_name(od_cpu_isa_detected()));

    od__counters ctr;
    od__counters_init(&ctr, r);

    od_log_info("profile: clock and FMA peak");
    /* The clock and the peak set every efficiency: more samples. */
    od__plan fine = plan;
    fine.repeats *= 4;
    od__clock(&fine, r);
    od__peak(&fine, &ctr, r);

    od_log_info("profile: memory bandwidth (3 x %zu MiB)",
                plan.stream_bytes >> 20);
    od_status st = od__bandwidth(&plan, r);
    if (st == OD_OK) {
        od_log_info("profile: kernels per op kind");
        st = od__kernels(&plan, &ctr, r);
    }
    if (st == OD_OK) {
        od_log_info("profile: training steps of fmnist-cnn and fmnist-mlp");
        st = od__training(&plan, r);
    }
    for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
        if (r->train_efficiency[k] > 0) {
            r->efficiency[k] = r->train_efficiency[k];
            r->efficiency_from[k] = "training";
        } else if (r->kernel_efficiency[k] > 0) {
            r->efficiency[k] = r->kernel_efficiency[k];
            r->efficiency_from[k] = "kernels";
        }
    }
    od__counters_free(&ctr);
    r->elapsed_s = (double)(od_now_ns() - t0) * 1e-9;
    return st;
}

/* ---------------------------------------------------------------- output */

/* Write s as a double-quoted YAML string. */
static void od__yaml_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fputc(' ', f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* A figure rounded to 4 significant digits, never below floor_v. */
static double od__round4(double v, double floor_v)
{
    if (!(v > floor_v))
        return floor_v;
    double mag = pow(10.0, floor(log10(v)) - 3.0);
    return round(v / mag) * mag;
}

/* A CPU model without trademark marks, "CPU", "Processor" and the clock:
 * "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz" -> "Intel Xeon Gold 6230". */
static void od__short_model(const char *model, char *out, size_t cap)
{
    static const char *const drop[] = {"(R)", "(r)", "(TM)", "(tm)",
                                       " CPU", " Processor", NULL};
    char buf[128];
    snprintf(buf, sizeof buf, "%s", model);
    char *at = strchr(buf, '@');
    if (at)
        *at = '\0';
    for (const char *const *d = drop; *d; d++) {
        size_t dl = strlen(*d);
        char *hit;
        while ((hit = strstr(buf, *d)) != NULL)
            memmove(hit, hit + dl, strlen(hit + dl) + 1);
    }
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
    const char *start = buf;
    while (*start == ' ')
        start++;
    if (!*start)
        start = "unknown";
    snprintf(out, cap, "%.*s", (int)cap - 1, start);
}

od_status od_profile_write_yaml(const od_profile_result *r, const char *path,
                                const char *name, const char *date)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return od_fail(OD_ERR_IO, "profile: cannot write %s: %s", path,
                       strerror(errno));
    char core_type[OD_DEV_NAME_MAX];
    od__short_model(r->cpu_model, core_type, sizeof core_type);

    fprintf(f,
            "# Device profile of this host, written by `ondev profile` on "
            "%s.\n"
            "#\n"
            "# Measured: clock, peak FLOP per cycle (%s kernels), L2, "
            "memory size and\n"
            "# bandwidth, and the per-kind efficiencies that calibrate the "
            "roofline.\n"
            "# Placeholders: power, battery and thermal figures. A host has "
            "no battery and\n"
            "# its heat is not modelled, so energy, battery and temperature "
            "results of this\n"
            "# profile mean nothing; copy them from a phone profile when "
            "profiling a\n"
            "# phone's SoC (docs/profile.md).\n",
            date, r->isa);
    int name_ok = name && *name && strlen(name) < 32;
    for (const char *p = name; name_ok && *p; p++)
        name_ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                  *p == '.';
    if (name_ok)
        fprintf(f, "name: %s\n", name);
    char text[160];
    snprintf(text, sizeof text, "%.80s (this host, %d core%s)", r->cpu_model,
             r->cores, r->cores == 1 ? "" : "s");
    fputs("model: ", f);
    od__yaml_string(f, text);
    snprintf(text, sizeof text, "%.60s", r->cpu_model);
    fputs("\nsoc: ", f);
    od__yaml_string(f, text);

    fputs("\nsources:\n  measured: ", f);
    snprintf(text, sizeof text,
             "measured by ondev profile on %s (ondev %s, %s kernels, %s run, "
             "best of repeats)", date, ONDEV_VERSION, r->isa,
             r->quick ? "quick" : "full");
    od__yaml_string(f, text);
    fputs("\n  topology: ", f);
    snprintf(text, sizeof text,
             "hwloc topology of this host, read by ondev profile on %s",
             date);
    od__yaml_string(f, text);
    fputs("\n  placeholder: ", f);
    od__yaml_string(f, "not measured: a neutral value that lets the "
                       "emulator run; replace it with a sourced figure");
    fputs("\n", f);

    /* One cluster: the host's cores at the measured clock. */
    double l2 = od__l2_bytes(r);
    fprintf(f,
            "clusters:\n"
            "  - name: host\n"
            "    src: measured\n"
            "    core_type: ");
    od__yaml_string(f, core_type);
    fprintf(f,
            "\n    core_type_src: topology\n"
            "    cores: %d\n"
            "    cores_src: topology\n"
            "    freq_khz: [%.0f]\n"
            "    core_current_ma: [0]\n"
            "    core_current_ma_src: placeholder\n"
            "    cluster_current_ma: 0\n"
            "    cluster_current_ma_src: placeholder\n"
            "    flop_per_cycle: %.4g\n"
            "    l2_kib: %.0f\n"
            "    l2_kib_src: topology\n"
            "    power_weight: 1\n"
            "    power_weight_src: placeholder\n",
            r->cores > 64 ? 64 : (r->cores < 1 ? 1 : r->cores),
            round(r->freq_khz / 1000.0) * 1000.0,
            r->flop_per_cycle < 0.1 ? 0.1 : r->flop_per_cycle,
            l2 / 1024.0);

    double gib = r->mem_total_bytes / 1073741824.0;
    fprintf(f,
            "memory:\n"
            "  src: measured\n"
            "  total_gib: %.4g\n"
            "  total_gib_src: topology\n"
            "  peak_bandwidth_gb_s: %.4g\n"
            "  cpu_bandwidth_share: 1\n"
            "  app_share: 0.5\n"
            "  app_share_src: placeholder\n",
            gib < 0.0625 ? 0.0625 : gib,
            od__round4(r->triad_gb_s_all > r->triad_gb_s_1
                           ? r->triad_gb_s_all : r->triad_gb_s_1, 0.1));

    fputs("battery:\n"
          "  src: placeholder\n"
          "  capacity_mah: 100000\n"
          "  nominal_v: 3.85\n"
          "  charge_current_ma: 0\n"
          "base_current_ma:\n"
          "  src: placeholder\n"
          "  suspend: 0\n"
          "  awake: 0\n"
          "  active: 0\n"
          "thermal:\n"
          "  src: placeholder\n"
          "  r_soc_skin_c_per_w: 1\n"
          "  r_skin_ambient_c_per_w: 1\n"
          "  c_soc_j_per_c: 10\n"
          "  c_skin_j_per_c: 100\n"
          "  trips_c: [100]\n"
          "  hysteresis_c: 2\n"
          "  poll_s: 1\n"
          "  pid:\n"
          "    - control_c: 100\n"
          "      sustainable_mw: 100000\n"
          "      k_po: 0\n"
          "      k_pu: 0\n"
          "      k_i: 0\n"
          "      k_d: 0\n"
          "      i_max_mw: 0\n"
          "      i_cutoff_c: 0\n"
          "      min_alloc_mw: 100000\n"
          "      max_alloc_mw: 100000\n",
          f);

    fputs("# Share of one core's peak FLOP rate each op kind reached on one "
          "thread, in\n# training steps of the shipped models where the "
          "kind occurs, else in its\n# kernels alone; kinds not listed keep "
          "the emulator's defaults.\n"
          "efficiency:\n"
          "  src: measured\n",
          f);
    for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
        if (!(r->efficiency[k] > 0))
            continue;
        fprintf(f, "  %s: %.4g", od_op_kind_name((od_op_kind)k),
                od__round4(r->efficiency[k], 1e-4));
        if (r->train_efficiency[k] > 0 && r->kernel_efficiency[k] > 0)
            fprintf(f, "    # training steps; kernels alone %.3g",
                    r->kernel_efficiency[k]);
        else
            fprintf(f, "    # %s", r->train_efficiency[k] > 0
                                       ? "training steps"
                                       : "kernels alone");
        fputc('\n', f);
    }

    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return od_fail(OD_ERR_IO, "profile: cannot write %s (disk full?)",
                       path);
    return OD_OK;
}

void od_profile_write_json(const od_profile_result *r, od_json *j)
{
    od_json_begin_object(j, "host");
    od_json_string(j, "cpu_model", r->cpu_model);
    od_json_int(j, "packages", r->packages);
    od_json_int(j, "cores", r->cores);
    od_json_int(j, "pus", r->pus);
    od_json_int(j, "numa_nodes", r->numa_nodes);
    od_json_double(j, "mem_total_bytes", r->mem_total_bytes);
    od_json_bool(j, "topology_known", r->topology_known);
    od_json_begin_array(j, "caches");
    for (int i = 0; i < r->ncaches; i++) {
        od_json_begin_object(j, NULL);
        od_json_int(j, "level", r->caches[i].level);
        od_json_string(j, "type", r->caches[i].type);
        od_json_int(j, "size_bytes", (int64_t)r->caches[i].size_bytes);
        od_json_int(j, "count", r->caches[i].count);
        od_json_end_object(j);
    }
    od_json_end_array(j);
    od_json_end_object(j);

    od_json_string(j, "isa", r->isa);
    od_json_string(j, "isa_detected", r->isa_detected);

    od_json_begin_object(j, "clock");
    od_json_double(j, "freq_khz", r->freq_khz);
    od_json_string(j, "method", r->freq_method);
    od_json_double(j, "loop_freq_khz", r->loop_freq_khz);
    od_json_double(j, "sysfs_max_khz", r->sysfs_max_khz);
    od_json_double(j, "cpuinfo_khz", r->cpuinfo_khz);
    od_json_end_object(j);

    od_json_begin_object(j, "counters");
    od_json_bool(j, "papi_built", r->papi_built);
    od_json_string(j, "papi_version", r->papi_version);
    od_json_int(j, "slots", r->counter_slots);
    od_json_int(j, "usable", r->counters_usable);
    od_json_string(j, "text", r->counters_text);
    if (r->peak_ipc > 0)
        od_json_double(j, "peak_loop_ipc", r->peak_ipc);
    od_json_end_object(j);

    od_json_begin_object(j, "peak");
    od_json_double(j, "gflop_s_per_core", r->peak_gflop_s);
    od_json_double(j, "flop_per_cycle", r->flop_per_cycle);
    od_json_end_object(j);

    od_json_begin_object(j, "memory");
    od_json_double(j, "buffer_bytes", r->mem_buffer_bytes);
    od_json_bool(j, "buffer_exceeds_llc", r->buffer_exceeds_llc);
    od_json_double(j, "copy_gb_s_1", r->copy_gb_s_1);
    od_json_double(j, "triad_gb_s_1", r->triad_gb_s_1);
    od_json_double(j, "triad_gb_s_all", r->triad_gb_s_all);
    od_json_int(j, "threads_all", r->threads_all);
    od_json_end_object(j);

    od_json_begin_array(j, "kernels");
    for (int i = 0; i < r->nkernels; i++) {
        const od_profile_kernel *k = &r->kernels[i];
        od_json_begin_object(j, NULL);
        od_json_string(j, "kind", od_op_kind_name(k->kind));
        od_json_string(j, "name", k->name);
        od_json_double(j, "flops", k->flops);
        od_json_double(j, "bytes", k->bytes);
        od_json_double(j, "best_s", k->best_s);
        od_json_double(j, "gflop_s", k->gflop_s);
        od_json_double(j, "gb_s", k->gb_s);
        od_json_double(j, "roofline_gflop_s", k->roofline_gflop_s);
        od_json_double(j, "roofline_fraction", k->roofline_fraction);
        if (k->ipc > 0)
            od_json_double(j, "ipc", k->ipc);
        if (k->counted_flops > 0)
            od_json_double(j, "counted_flops", k->counted_flops);
        od_json_end_object(j);
    }
    od_json_end_array(j);

    od_json_begin_object(j, "training");
    od_json_int(j, "steps_per_model", r->train_steps);
    od_json_begin_object(j, "kinds");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
        if (!(r->train_flops[k] > 0))
            continue;
        od_json_begin_object(j, od_op_kind_name((od_op_kind)k));
        od_json_double(j, "flops_per_step", r->train_flops[k]);
        od_json_double(j, "best_s", r->train_best_s[k]);
        od_json_double(j, "gflop_s",
                       r->train_flops[k] / r->train_best_s[k] / 1e9);
        od_json_end_object(j);
    }
    od_json_end_object(j);
    od_json_end_object(j);

    const struct { const char *key; const double *v; } effs[] = {
        {"kernel_efficiency", r->kernel_efficiency},
        {"train_efficiency", r->train_efficiency},
        {"efficiency", r->efficiency},
    };
    for (size_t e = 0; e < sizeof effs / sizeof effs[0]; e++) {
        od_json_begin_object(j, effs[e].key);
        for (int k = 0; k < OD_OP_KIND_COUNT; k++)
            if (effs[e].v[k] > 0)
                od_json_double(j, od_op_kind_name((od_op_kind)k),
                               effs[e].v[k]);
        od_json_end_object(j);
    }
    od_json_begin_object(j, "efficiency_from");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->efficiency_from[k])
            od_json_string(j, od_op_kind_name((od_op_kind)k),
                           r->efficiency_from[k]);
    od_json_end_object(j);
    od_json_double(j, "elapsed_s", r->elapsed_s);
}

static void od__size_text(double bytes, char *buf, size_t len)
{
    if (bytes >= 1073741824.0)
        snprintf(buf, len, "%.1f GiB", bytes / 1073741824.0);
    else if (bytes >= 1048576.0)
        snprintf(buf, len, "%.0f MiB", bytes / 1048576.0);
    else
        snprintf(buf, len, "%.0f KiB", bytes / 1024.0);
}

void od_profile_write_text(const od_profile_result *r, FILE *f)
{
    char sz[32];
    od__size_text(r->mem_total_bytes, sz, sizeof sz);
    fprintf(f, "host: %s\n", r->cpu_model);
    fprintf(f, "topology: %d package%s, %d core%s, %d PU%s, %d NUMA "
            "node%s, %s memory%s\n",
            r->packages, r->packages == 1 ? "" : "s", r->cores,
            r->cores == 1 ? "" : "s", r->pus, r->pus == 1 ? "" : "s",
            r->numa_nodes, r->numa_nodes == 1 ? "" : "s", sz,
            r->topology_known ? "" : " (hwloc failed: counts from the OS)");
    for (int i = 0; i < r->ncaches; i++) {
        od__size_text((double)r->caches[i].size_bytes, sz, sizeof sz);
        fprintf(f, "cache: L%d %s %s x %d\n", r->caches[i].level,
                r->caches[i].type, sz, r->caches[i].count);
    }
    fprintf(f, "kernels ISA: %s", r->isa);
    if (strcmp(r->isa, r->isa_detected) != 0)
        fprintf(f, " (capped by ONDEV_ISA; the CPU has %s)", r->isa_detected);
    fprintf(f, "\nclock: %.0f MHz (%s", r->freq_khz / 1e3, r->freq_method);
    if (r->sysfs_max_khz > 0)
        fprintf(f, "; cpufreq max %.0f MHz", r->sysfs_max_khz / 1e3);
    if (r->cpuinfo_khz > 0)
        fprintf(f, "; /proc/cpuinfo %.0f MHz", r->cpuinfo_khz / 1e3);
    fprintf(f, ")\n");
    fprintf(f, "hardware counters: %s\n", r->counters_text);
    fprintf(f, "FMA peak: %.1f GFLOP/s per core, %.1f FLOP/cycle",
            r->peak_gflop_s, r->flop_per_cycle);
    if (r->peak_ipc > 0)
        fprintf(f, ", IPC %.2f", r->peak_ipc);
    od__size_text(r->mem_buffer_bytes, sz, sizeof sz);
    fprintf(f, "\nmemory bandwidth (3 arrays of %s%s): copy %.1f GB/s, "
            "triad %.1f GB/s on 1 thread, triad %.1f GB/s on %d\n",
            sz, r->buffer_exceeds_llc ? ""
                                      : ", not above the last-level cache",
            r->copy_gb_s_1, r->triad_gb_s_1, r->triad_gb_s_all,
            r->threads_all);
    fprintf(f, "%-8s %-40s %8s %8s %9s %9s\n", "kind", "kernel (1 thread)",
            "GFLOP/s", "GB/s", "roofline", "achieved");
    for (int i = 0; i < r->nkernels; i++) {
        const od_profile_kernel *k = &r->kernels[i];
        fprintf(f, "%-8s %-40s %8.2f %8.2f %9.2f %8.0f%%",
                od_op_kind_name(k->kind), k->name, k->gflop_s, k->gb_s,
                k->roofline_gflop_s, 100.0 * k->roofline_fraction);
        if (k->ipc > 0)
            fprintf(f, "  IPC %.2f", k->ipc);
        fputc('\n', f);
    }
    fprintf(f, "training steps (1 thread, best of %d per model):",
            r->train_steps);
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->train_flops[k] > 0)
            fprintf(f, " %s %.2f GFLOP/s", od_op_kind_name((od_op_kind)k),
                    r->train_flops[k] / r->train_best_s[k] / 1e9);
    fprintf(f, "\nefficiency (share of the 1-core peak), kernels alone:");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->kernel_efficiency[k] > 0)
            fprintf(f, " %s %.3f", od_op_kind_name((od_op_kind)k),
                    r->kernel_efficiency[k]);
    fprintf(f, "\nefficiency in training steps:");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->train_efficiency[k] > 0)
            fprintf(f, " %s %.3f", od_op_kind_name((od_op_kind)k),
                    r->train_efficiency[k]);
    fprintf(f, "\nefficiency written to the profile:");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        if (r->efficiency[k] > 0)
            fprintf(f, " %s %.3f (%s)", od_op_kind_name((od_op_kind)k),
                    r->efficiency[k], r->efficiency_from[k]);
    fprintf(f, "\n");
}
