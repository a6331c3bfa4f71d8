#include "engine/arena.h"

#include <stdlib.h>
#include <string.h>

/* Every block carries a header in front of it (one alignment unit, so the
 * payload stays 64-byte aligned). Step blocks are chained so that a reset or
 * release can walk them newest first. */
typedef struct od__block {
    struct od__block *prev;  /* older step block, or NULL */
    size_t bytes;            /* payload size as charged to the budget */
    od_mem_kind kind;
    int is_step;
} od__block;

#define OD__HDR OD_ALIGN
_Static_assert(sizeof(od__block) <= OD__HDR, "block header too large");

struct od_arena {
    size_t budget;
    size_t used;
    size_t peak;
    size_t used_kind[OD_MEM_KIND_COUNT];
    size_t peak_kind[OD_MEM_KIND_COUNT];
    od__block *step_top;   /* newest step block */
    size_t step_count;
};

static const char *const od__kind_names[OD_MEM_KIND_COUNT] = {
    "parameters", "gradients", "optimiser state", "activations", "scratch",
};

const char *od_mem_kind_name(od_mem_kind kind)
{
    OD_ASSERT(kind >= 0 && kind < OD_MEM_KIND_COUNT);
    return od__kind_names[kind];
}

od_arena *od_arena_create(size_t budget_bytes)
{
    od_arena *a = calloc(1, sizeof *a);
    if (a)
        a->budget = budget_bytes;
    return a;
}

void od_arena_destroy(od_arena *a)
{
    if (!a)
        return;
    od_arena_reset_step(a);
    free(a);
}

static size_t od__round_up(size_t n) { return (n + OD_ALIGN - 1) / OD_ALIGN * OD_ALIGN; }

od_status od_arena_alloc(od_arena *a, od_mem_kind kind, size_t bytes, void **out)
{
    OD_ASSERT(a && out && kind >= 0 && kind < OD_MEM_KIND_COUNT);
    *out = NULL;
    size_t charged = od__round_up(bytes ? bytes : 1);
    if (a->budget && a->used + charged > a->budget) {
        size_t avail = a->budget > a->used ? a->budget - a->used : 0;
        return od_fail(OD_ERR_NOMEM,
                       "memory budget exceeded allocating %s: needed %zu bytes, "
                       "%zu of the %zu-byte budget available (in use: %zu params, "
                       "%zu grads, %zu optimiser, %zu activations, %zu scratch)",
                       od__kind_names[kind], charged, avail, a->budget,
                       a->used_kind[OD_MEM_PARAM], a->used_kind[OD_MEM_GRAD],
                       a->used_kind[OD_MEM_OPTIM], a->used_kind[OD_MEM_ACT],
                       a->used_kind[OD_MEM_SCRATCH]);
    }
    unsigned char *raw = od_aligned_alloc(OD__HDR + charged);
    if (!raw)
        return od_fail(OD_ERR_NOMEM, "host out of memory allocating %zu bytes",
                       charged);
    memset(raw + OD__HDR, 0, charged);
    od__block *b = (od__block *)raw;
    b->bytes = charged;
    b->kind = kind;
    b->is_step = (kind == OD_MEM_ACT || kind == OD_MEM_SCRATCH);
    b->prev = NULL;
    if (b->is_step) {
        b->prev = a->step_top;
        a->step_top = b;
        a->step_count++;
    }
    a->used += charged;
    a->used_kind[kind] += charged;
    if (a->used > a->peak)
        a->peak = a->used;
    if (a->used_kind[kind] > a->peak_kind[kind])
        a->peak_kind[kind] = a->used_kind[kind];
    *out = raw + OD__HDR;
    return OD_OK;
}

static void od__release_block(od_arena *a, od__block *b)
{
    a->used -= b->bytes;
    a->used_kind[b->kind] -= b->bytes;
    od_aligned_free(b);
}

void od_arena_free(od_arena *a, void *p)
{
    if (!p)
        return;
    od__block *b = (od__block *)((unsigned char *)p - OD__HDR);
    OD_ASSERT(!b->is_step); /* step blocks go back through reset or release */
    od__release_block(a, b);
}

size_t od_arena_mark(const od_arena *a) { return a->step_count; }

void od_arena_release(od_arena *a, size_t mark)
{
    OD_ASSERT(mark <= a->step_count);
    while (a->step_count > mark) {
        od__block *b = a->step_top;
        a->step_top = b->prev;
        a->step_count--;
        od__release_block(a, b);
    }
}

void od_arena_reset_step(od_arena *a) { od_arena_release(a, 0); }

size_t od_arena_budget(const od_arena *a) { return a->budget; }
void od_arena_set_budget(od_arena *a, size_t budget_bytes) { a->budget = budget_bytes; }
size_t od_arena_used(const od_arena *a) { return a->used; }
size_t od_arena_peak(const od_arena *a) { return a->peak; }

size_t od_arena_used_kind(const od_arena *a, od_mem_kind kind)
{
    OD_ASSERT(kind >= 0 && kind < OD_MEM_KIND_COUNT);
    return a->used_kind[kind];
}

size_t od_arena_peak_kind(const od_arena *a, od_mem_kind kind)
{
    OD_ASSERT(kind >= 0 && kind < OD_MEM_KIND_COUNT);
    return a->peak_kind[kind];
}

void od_arena_reset_peaks(od_arena *a)
{
    a->peak = a->used;
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++)
        a->peak_kind[k] = a->used_kind[k];
}
