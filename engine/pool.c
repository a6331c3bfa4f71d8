/* The pool. Dispatch is latency-sensitive (a GEMM of a 64-row batch takes
 * tens of microseconds), so both sides spin for a bounded time before they
 * sleep: helpers poll for the next job for OD__POOL_SPIN_NS after finishing
 * one, and the caller polls for the helpers to finish. The mutex and
 * condition variables are the slow path; every state change that a sleeper
 * waits for is made under the mutex, so no wake-up is lost.
 *
 * A helper joins a job before it takes tasks, and only while the job is
 * open. The caller closes the job once every task has been taken and waits
 * only for the helpers that joined: a helper that is slow to wake (the
 * machine is busy) costs the caller nothing but doing more tasks itself. */
#include "engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OD__POOL_PAUSE() _mm_pause()
#else
#define OD__POOL_PAUSE() ((void)0)
#endif

#define OD__POOL_CLOSED 0x80000000u

/* How long an idle thread polls before sleeping on a condition variable. */
#define OD__POOL_SPIN_NS 100000u

struct od_pool {
    int nthreads;
    int bound;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* signalled when a new job starts or on exit */
    pthread_cond_t done_cv;   /* signalled when the last joined helper leaves */
    /* The current job: written by the caller before it opens the job (resets
     * state) and bumps generation. */
    od_task_fn fn;
    void *ctx;
    int ntasks;
    atomic_int next_task;
    atomic_ulong generation;
    atomic_uint state;        /* OD__POOL_CLOSED | helpers working on the job */
    atomic_int quit;
};

typedef struct {
    od_pool *pool;
    int worker;
    int cpu;
} od__worker_arg;

static int od__bind_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

static void od__drain(od_pool *p, int worker)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next_task, 1);
        if (t >= p->ntasks)
            break;
        p->fn(p->ctx, t, worker);
    }
}

/* Poll until cond(p, arg) holds or OD__POOL_SPIN_NS pass; returns whether
 * it holds. Reads the clock only every 64 polls. */
static int od__spin_until(int (*cond)(od_pool *, unsigned long), od_pool *p,
                          unsigned long arg)
{
    uint64_t start = 0;
    for (unsigned i = 0;; i++) {
        if (cond(p, arg))
            return 1;
        if ((i & 63) == 0) {
            uint64_t now = od_now_ns();
            if (i == 0)
                start = now;
            else if (now - start > OD__POOL_SPIN_NS)
                return 0;
        }
        OD__POOL_PAUSE();
    }
}

static int od__job_posted(od_pool *p, unsigned long seen)
{
    return atomic_load(&p->quit) || atomic_load(&p->generation) != seen;
}

static int od__helpers_done(od_pool *p, unsigned long unused)
{
    (void)unused;
    return atomic_load(&p->state) == OD__POOL_CLOSED;
}

/* Join the posted job unless it is closed; returns whether it joined. */
static int od__join(od_pool *p)
{
    unsigned s = atomic_load(&p->state);
    while (!(s & OD__POOL_CLOSED))
        if (atomic_compare_exchange_weak(&p->state, &s, s + 1))
            return 1;
    return 0;
}

static void *od__worker_main(void *arg_)
{
    od__worker_arg *arg = arg_;
    od_pool *p = arg->pool;
    int worker = arg->worker;
    free(arg);
    unsigned long seen = 0;
    for (;;) {
        if (!od__spin_until(od__job_posted, p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!od__job_posted(p, seen))
                pthread_cond_wait(&p->work_cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit))
            break;
        seen = atomic_load(&p->generation);
        if (!od__join(p))
            continue;
        od__drain(p, worker);
        /* The last helper out of a closed job wakes a sleeping caller. */
        if (atomic_fetch_sub(&p->state, 1) - 1 == OD__POOL_CLOSED) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

od_pool *od_pool_create(int nthreads, const int *cpus)
{
    if (nthreads < 1)
        nthreads = 1;
    od_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->nthreads = nthreads;
    p->bound = cpus != NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->threads = calloc((size_t)nthreads, sizeof *p->threads);
    if (!p->threads) {
        free(p);
        return NULL;
    }
    if (cpus && !od__bind_self(cpus[0]))
        p->bound = 0;
    for (int i = 1; i < nthreads; i++) {
        od__worker_arg *arg = malloc(sizeof *arg);
        OD_ASSERT(arg);
        arg->pool = p;
        arg->worker = i;
        arg->cpu = cpus ? cpus[i] : -1;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        if (cpus) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpus[i], &set);
            if (pthread_attr_setaffinity_np(&attr, sizeof set, &set) != 0)
                p->bound = 0;
        }
        int rc = pthread_create(&p->threads[i], &attr, od__worker_main, arg);
        if (rc != 0 && cpus) {
            /* Binding may be refused (cgroup limits): start unbound. */
            p->bound = 0;
            rc = pthread_create(&p->threads[i], NULL, od__worker_main, arg);
        }
        pthread_attr_destroy(&attr);
        OD_ASSERT(rc == 0);
    }
    return p;
}

void od_pool_destroy(od_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p);
}

void od_pool_run(od_pool *p, int ntasks, od_task_fn fn, void *ctx)
{
    if (ntasks <= 0)
        return;
    if (!p || p->nthreads == 1 || ntasks == 1) {
        for (int t = 0; t < ntasks; t++)
            fn(ctx, t, 0);
        return;
    }
    /* Publish the job, then open it: helpers read the job only after they
     * joined it. */
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next_task, 0);
    atomic_store(&p->state, 0u);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    od__drain(p, 0);

    /* Every task is taken: close the job and wait for those who joined. */
    if ((atomic_fetch_or(&p->state, OD__POOL_CLOSED) & ~OD__POOL_CLOSED) != 0 &&
        !od__spin_until(od__helpers_done, p, 0)) {
        pthread_mutex_lock(&p->mu);
        while (!od__helpers_done(p, 0))
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

int od_pool_threads(const od_pool *p) { return p ? p->nthreads : 1; }
int od_pool_bound(const od_pool *p) { return p ? p->bound : 0; }
