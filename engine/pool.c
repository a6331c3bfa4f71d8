#include "engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

struct od_pool {
    int nthreads;
    int bound;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* signalled when a new job starts or on exit */
    pthread_cond_t done_cv;   /* signalled when the last helper finishes */
    /* The current job. */
    od_task_fn fn;
    void *ctx;
    int ntasks;
    atomic_int next_task;
    unsigned long generation;
    int helpers_busy;
    int quit;
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

static void *od__worker_main(void *arg_)
{
    od__worker_arg *arg = arg_;
    od_pool *p = arg->pool;
    int worker = arg->worker;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->quit && p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->quit)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        od__drain(p, worker);
        pthread_mutex_lock(&p->mu);
        if (--p->helpers_busy == 0)
            pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
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
    p->quit = 1;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    atomic_store(&p->next_task, 0);
    p->helpers_busy = p->nthreads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    od__drain(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->helpers_busy > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int od_pool_threads(const od_pool *p) { return p ? p->nthreads : 1; }
int od_pool_bound(const od_pool *p) { return p ? p->bound : 0; }
