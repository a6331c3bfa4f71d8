/* Pieces every layer uses: parameters, names, shape messages. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

od_status od__param_new(od_arena *a, const char *layer, const char *suffix,
                        int ndim, const int *dims, od_param **out)
{
    *out = NULL;
    od_param *p = calloc(1, sizeof *p);
    if (!p)
        return od_fail(OD_ERR_NOMEM, "out of host memory for parameter "
                       "'%s.%s'", layer, suffix);
    snprintf(p->name, sizeof p->name, "%s.%s", layer, suffix);
    p->trainable = 1;

    od_status st = od_tensor_alloc(a, OD_MEM_PARAM, &p->value, ndim, dims);
    if (st == OD_OK)
        st = od_tensor_alloc(a, OD_MEM_GRAD, &p->grad, ndim, dims);
    if (st != OD_OK) {
        od__param_free(a, p);
        return st;
    }
    *out = p;
    return OD_OK;
}

void od__param_free(od_arena *a, od_param *p)
{
    if (!p)
        return;
    if (p->value.data)
        od_arena_free(a, p->value.data);
    if (p->grad.data)
        od_arena_free(a, p->grad.data);
    free(p);
}

void od__layer_init(od_layer *l, const od_layer_vtbl *vt, const char *name)
{
    l->vt = vt;
    snprintf(l->name, sizeof l->name, "%s", name ? name : vt->kind);
    l->nparams = 0;
    l->index = 0;
    l->fresh_grads = 0;
}

void od__layer_free(od_layer *l, od_arena *a)
{
    if (!l)
        return;
    for (int i = 0; i < l->nparams; i++)
        od__param_free(a, l->params[i]);
    free(l);
}

const char *od__shape_str(int ndim, const int *dims, char *buf, size_t len)
{
    size_t used = 0;
    int n = snprintf(buf, len, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && used < len; i++) {
        n = snprintf(buf + used, len - used, "%s%d", i ? ", " : "", dims[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < len)
        snprintf(buf + used, len - used, ")");
    return buf;
}

od_status od__shape_fail(const od_layer *l, const char *expected, int ndim,
                         const int *dims)
{
    char got[96];
    return od_fail(OD_ERR_MISMATCH, "%s '%s': expected input %s, got %s",
                   l->vt->kind, l->name, expected,
                   od__shape_str(ndim, dims, got, sizeof got));
}

od_status od__check_same(const od_layer *l, const char *what,
                         const od_tensor *t, int ndim, const int *dims)
{
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->dims[i] == dims[i];
    if (same)
        return OD_OK;
    char want[96], got[96];
    return od_fail(OD_ERR_MISMATCH, "%s '%s': expected %s %s, got %s",
                   l->vt->kind, l->name, what,
                   od__shape_str(ndim, dims, want, sizeof want),
                   od__shape_str(t->ndim, t->dims, got, sizeof got));
}

void od__fill_uniform(od_tensor *t, od_rng *rng, float bound)
{
    for (size_t i = 0; i < t->size; i++)
        t->data[i] = bound * (2.0f * od_rng_uniformf(rng) - 1.0f);
}

/* Below this many floats of work a row loop stays on the calling thread. */
#define OD__PAR_MIN_FLOATS ((size_t)4096)

typedef struct od__rows_task {
    od__rows_fn fn;
    void *arg;
    int rows, parts;
} od__rows_task;

static void od__rows_run(void *ctx, int task, int worker)
{
    (void)worker;
    const od__rows_task *t = ctx;
    int base = t->rows / t->parts, extra = t->rows % t->parts;
    int lo = task * base + (task < extra ? task : extra);
    int hi = lo + base + (task < extra ? 1 : 0);
    if (lo < hi)
        t->fn(t->arg, lo, hi);
}

void od__parallel_rows(od_pool *pool, int rows, size_t floats_per_row,
                       od__rows_fn fn, void *arg)
{
    int parts = od_pool_threads(pool);
    if (parts > rows)
        parts = rows;
    if (parts <= 1 || (size_t)rows * floats_per_row < OD__PAR_MIN_FLOATS) {
        fn(arg, 0, rows);
        return;
    }
    od__rows_task t = {fn, arg, rows, parts};
    od_pool_run(pool, parts, od__rows_run, &t);
}
