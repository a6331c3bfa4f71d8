/* Per-op cost records. Every op the engine executes appends one record: its
 * kind, floating-point operations, bytes read and written, and host
 * nanoseconds. A step's records go to an observer (the device emulator
 * charges them to an emulated phone). */
#ifndef ONDEV_ENGINE_COST_H
#define ONDEV_ENGINE_COST_H

#include "engine/common.h"

typedef enum od_op_kind {
    OD_OP_GEMM = 0,     /* linear layers, recurrent cells' matrix products */
    OD_OP_CONV,         /* convolutions (im2col + GEMM) */
    OD_OP_POOL,
    OD_OP_ELTWISE,      /* activations, dropout, additions */
    OD_OP_SOFTMAX,      /* softmax with cross-entropy */
    OD_OP_NORM,         /* layer norm */
    OD_OP_EMBED,        /* embedding lookup and scatter */
    OD_OP_REDUCE,       /* reductions, per-example norms */
    OD_OP_OPTIM,        /* optimiser updates */
    OD_OP_RNG,          /* random numbers (dropout masks, DP noise) */
    OD_OP_COPY,         /* data movement: batch assembly, reshapes that copy */
    OD_OP_KIND_COUNT
} od_op_kind;

typedef enum od_phase {
    OD_PHASE_FORWARD = 0,
    OD_PHASE_BACKWARD,
    OD_PHASE_UPDATE,
    OD_PHASE_OTHER,
} od_phase;

typedef struct od_cost {
    od_op_kind kind;
    od_phase phase;
    const char *name;      /* static string, e.g. "linear", "conv2d" */
    double flops;
    double bytes_read;
    double bytes_written;
    uint64_t host_ns;
} od_cost;

typedef void (*od_cost_observer)(void *user, const od_cost *recs, size_t n);

/* The records of the current step, in execution order. */
typedef struct od_trace {
    od_cost *recs;
    size_t n, cap;
    int enabled;
    od_cost_observer observer;
    void *observer_user;
    /* Running totals over all steps, per kind. */
    double total_flops[OD_OP_KIND_COUNT];
    double total_bytes[OD_OP_KIND_COUNT];
    uint64_t total_ns[OD_OP_KIND_COUNT];
} od_trace;

void od_trace_init(od_trace *t);
void od_trace_free(od_trace *t);
void od_trace_set_observer(od_trace *t, od_cost_observer fn, void *user);
/* Forget the current step's records (totals are kept). */
void od_trace_begin_step(od_trace *t);
/* Hand the step's records to the observer. */
void od_trace_end_step(od_trace *t);
/* Append a record; a NULL trace is ignored. */
void od_trace_add(od_trace *t, od_op_kind kind, od_phase phase,
                  const char *name, double flops, double bytes_read,
                  double bytes_written, uint64_t host_ns);
const char *od_op_kind_name(od_op_kind kind);

#endif
