/* The memory arena: every byte the engine allocates for training comes from
 * here, under a hard byte budget (the device's share of memory for an app).
 *
 * Two lifetimes:
 *  - persistent blocks (parameters, gradients, optimiser state), freed one by
 *    one with od_arena_free;
 *  - step blocks (activations, scratch), freed together by
 *    od_arena_reset_step, or back to a mark with od_arena_release.
 *
 * Step blocks are carved from chunks that are kept and reused, so a steady
 * training loop asks the host for no memory after its first step.
 *
 * Use and peak use are tracked per category. Exceeding the budget returns
 * OD_ERR_NOMEM with a message giving the bytes needed and available. */
#ifndef ONDEV_ENGINE_ARENA_H
#define ONDEV_ENGINE_ARENA_H

#include "engine/common.h"

typedef enum od_mem_kind {
    OD_MEM_PARAM = 0,
    OD_MEM_GRAD,
    OD_MEM_OPTIM,
    OD_MEM_ACT,
    OD_MEM_SCRATCH,
    OD_MEM_KIND_COUNT
} od_mem_kind;

typedef struct od_arena od_arena;

/* budget_bytes == 0 means no limit. Returns NULL only if the host is out of
 * memory for the arena's own bookkeeping. */
od_arena *od_arena_create(size_t budget_bytes);
void od_arena_destroy(od_arena *a);

/* Allocate `bytes` (64-byte aligned, zero-filled) of the given kind.
 * PARAM, GRAD and OPTIM blocks are persistent; ACT and SCRATCH blocks live
 * until the next reset or release. */
od_status od_arena_alloc(od_arena *a, od_mem_kind kind, size_t bytes,
                         void **out);
/* As od_arena_alloc, but ACT and SCRATCH blocks are not zero-filled: for
 * outputs that the caller overwrites whole (zero-filling a large activation
 * costs as much as writing it). Under AddressSanitizer they are filled with
 * NaNs instead, so that reading before writing shows in the tests. */
od_status od_arena_alloc_uninit(od_arena *a, od_mem_kind kind, size_t bytes,
                                void **out);
void od_arena_free(od_arena *a, void *p);

/* Step lifetime: a mark is a position in the list of step blocks. */
size_t od_arena_mark(const od_arena *a);
void od_arena_release(od_arena *a, size_t mark);
void od_arena_reset_step(od_arena *a);

size_t od_arena_budget(const od_arena *a);
void od_arena_set_budget(od_arena *a, size_t budget_bytes);
size_t od_arena_used(const od_arena *a);        /* all kinds, now */
size_t od_arena_peak(const od_arena *a);        /* all kinds, high water */
size_t od_arena_used_kind(const od_arena *a, od_mem_kind kind);
size_t od_arena_peak_kind(const od_arena *a, od_mem_kind kind);
void od_arena_reset_peaks(od_arena *a);
const char *od_mem_kind_name(od_mem_kind kind);

#endif
