/* A fixed-size thread pool for the kernels. The calling thread takes part as
 * worker 0, so a pool of n threads starts n - 1 helpers.
 *
 * Determinism: od_pool_run hands out task indices dynamically, so which
 * thread runs a task varies; kernels therefore make every task write its own
 * outputs and reduce partial results in task order afterwards, never in
 * completion order. With the same thread count the results are bitwise
 * identical from run to run. */
#ifndef ONDEV_ENGINE_POOL_H
#define ONDEV_ENGINE_POOL_H

#include "engine/common.h"

typedef struct od_pool od_pool;

/* fn(ctx, task, worker): task in [0, ntasks), worker in [0, nthreads). */
typedef void (*od_task_fn)(void *ctx, int task, int worker);

/* cpus: nthreads logical CPU ids to bind the workers to (worker i on
 * cpus[i]), or NULL to leave placement to the OS. Binding failures are not
 * fatal: the pool runs unbound and od_pool_bound() says so. */
od_pool *od_pool_create(int nthreads, const int *cpus);
void od_pool_destroy(od_pool *p);

/* Run fn over ntasks tasks and wait. A NULL pool runs them in order on the
 * calling thread. Not re-entrant: a task must not call od_pool_run. */
void od_pool_run(od_pool *p, int ntasks, od_task_fn fn, void *ctx);

int od_pool_threads(const od_pool *p); /* 1 for a NULL pool */
int od_pool_bound(const od_pool *p);   /* 1 when every worker is bound */

#endif
