#include "engine/cost.h"

#include <stdlib.h>
#include <string.h>

static const char *const od__op_names[OD_OP_KIND_COUNT] = {
    "gemm", "conv", "pool", "eltwise", "softmax", "norm",
    "embed", "reduce", "optim", "rng", "copy",
};

const char *od_op_kind_name(od_op_kind kind)
{
    OD_ASSERT(kind >= 0 && kind < OD_OP_KIND_COUNT);
    return od__op_names[kind];
}

void od_trace_init(od_trace *t)
{
    memset(t, 0, sizeof *t);
    t->enabled = 1;
}

void od_trace_free(od_trace *t)
{
    free(t->recs);
    memset(t, 0, sizeof *t);
}

void od_trace_set_observer(od_trace *t, od_cost_observer fn, void *user)
{
    t->observer = fn;
    t->observer_user = user;
}

void od_trace_begin_step(od_trace *t) { t->n = 0; }

void od_trace_end_step(od_trace *t)
{
    if (t->observer && t->n)
        t->observer(t->observer_user, t->recs, t->n);
}

void od_trace_add(od_trace *t, od_op_kind kind, od_phase phase,
                  const char *name, double flops, double bytes_read,
                  double bytes_written, uint64_t host_ns)
{
    if (!t || !t->enabled)
        return;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        od_cost *r = realloc(t->recs, cap * sizeof *r);
        OD_ASSERT(r);
        t->recs = r;
        t->cap = cap;
    }
    t->recs[t->n++] = (od_cost){kind, phase, name, flops, bytes_read,
                                bytes_written, host_ns};
    t->total_flops[kind] += flops;
    t->total_bytes[kind] += bytes_read + bytes_written;
    t->total_ns[kind] += host_ns;
}
