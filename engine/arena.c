#include "engine/arena.h"

#include <stdlib.h>
#include <string.h>

/* Persistent blocks are allocated one by one and carry a header in front
 * (one alignment unit, so the payload stays 64-byte aligned).
 *
 * Step blocks are carved from reusable chunks with a bump pointer: a
 * training step allocates the same blocks every time, so after the first
 * step no memory is requested from the host and no page is faulted in
 * again. Releases are last-in first-out, so releasing a block moves the bump
 * pointer back to where the block began. When one step needed several
 * chunks, the next reset replaces them with one chunk of their total size.
 *
 * Under AddressSanitizer each step block is a separate host allocation
 * instead, so that overruns between neighbouring blocks are caught. */
typedef struct od__block {
    struct od__block *prev;  /* older step block, or NULL */
    size_t bytes;            /* payload size as charged to the budget */
    od_mem_kind kind;
    int is_step;
    int chunk;               /* step blocks: chunk index, or -1 when the
                                block is its own host allocation */
    size_t offset;           /* step blocks: where the block starts */
} od__block;

#define OD__HDR OD_ALIGN
_Static_assert(sizeof(od__block) <= OD__HDR, "block header too large");

#if defined(__SANITIZE_ADDRESS__)
#define OD__STEP_CHUNKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OD__STEP_CHUNKS 0
#endif
#endif
#ifndef OD__STEP_CHUNKS
#define OD__STEP_CHUNKS 1
#endif

#define OD__MAX_CHUNKS 32
#define OD__MIN_CHUNK_BYTES ((size_t)4 << 20)

typedef struct od__chunk {
    unsigned char *base;
    size_t size;
} od__chunk;

struct od_arena {
    size_t budget;
    size_t used;
    size_t peak;
    size_t used_kind[OD_MEM_KIND_COUNT];
    size_t peak_kind[OD_MEM_KIND_COUNT];
    od__block *step_top;   /* newest step block */
    size_t step_count;
    od__chunk chunks[OD__MAX_CHUNKS];
    int nchunks;
    int cur_chunk;         /* chunk the bump pointer is in */
    size_t cur_offset;     /* bump pointer within it */
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

static void od__free_chunks(od_arena *a)
{
    for (int i = 0; i < a->nchunks; i++)
        od_aligned_free(a->chunks[i].base);
    a->nchunks = 0;
    a->cur_chunk = 0;
    a->cur_offset = 0;
}

void od_arena_destroy(od_arena *a)
{
    if (!a)
        return;
    od_arena_reset_step(a);
    od__free_chunks(a);
    free(a);
}

static size_t od__round_up(size_t n) { return (n + OD_ALIGN - 1) / OD_ALIGN * OD_ALIGN; }

/* Room for `total` bytes (header included) at the bump pointer: in the
 * current chunk, a later one that is large enough, or a new chunk. Returns
 * the block's address or NULL when the host is out of memory. */
static unsigned char *od__step_carve(od_arena *a, size_t total, int *chunk,
                                     size_t *offset)
{
    while (a->cur_chunk < a->nchunks) {
        od__chunk *c = &a->chunks[a->cur_chunk];
        if (c->size - a->cur_offset >= total) {
            *chunk = a->cur_chunk;
            *offset = a->cur_offset;
            a->cur_offset += total;
            return c->base + *offset;
        }
        if (a->cur_chunk + 1 >= a->nchunks)
            break;
        a->cur_chunk++;
        a->cur_offset = 0;
    }
    if (a->nchunks == OD__MAX_CHUNKS)
        return NULL;
    size_t prev = a->nchunks ? a->chunks[a->nchunks - 1].size : 0;
    size_t size = 2 * prev > OD__MIN_CHUNK_BYTES ? 2 * prev : OD__MIN_CHUNK_BYTES;
    if (size < total)
        size = total;
    unsigned char *base = od_aligned_alloc(size);
    if (!base)
        return NULL;
    a->chunks[a->nchunks] = (od__chunk){base, size};
    a->cur_chunk = a->nchunks++;
    a->cur_offset = total;
    *chunk = a->cur_chunk;
    *offset = 0;
    return base;
}

static od_status od__alloc(od_arena *a, od_mem_kind kind, size_t bytes,
                           int zero, void **out)
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
    int is_step = (kind == OD_MEM_ACT || kind == OD_MEM_SCRATCH);
    unsigned char *raw;
    int chunk = -1;
    size_t offset = 0;
    if (is_step && OD__STEP_CHUNKS)
        raw = od__step_carve(a, OD__HDR + charged, &chunk, &offset);
    else
        raw = od_aligned_alloc(OD__HDR + charged);
    if (!raw)
        return od_fail(OD_ERR_NOMEM, "host out of memory allocating %zu bytes",
                       charged);
    if (zero || !is_step)
        memset(raw + OD__HDR, 0, charged);
    else if (!OD__STEP_CHUNKS)
        /* Sanitizer builds: all-ones bytes are NaNs, so that a kernel that
         * reads before it writes shows up in the results. */
        memset(raw + OD__HDR, 0xff, charged);
    od__block *b = (od__block *)raw;
    b->bytes = charged;
    b->kind = kind;
    b->is_step = is_step;
    b->chunk = chunk;
    b->offset = offset;
    b->prev = NULL;
    if (is_step) {
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

od_status od_arena_alloc(od_arena *a, od_mem_kind kind, size_t bytes,
                         void **out)
{
    return od__alloc(a, kind, bytes, 1, out);
}

od_status od_arena_alloc_uninit(od_arena *a, od_mem_kind kind, size_t bytes,
                                void **out)
{
    return od__alloc(a, kind, bytes, 0, out);
}

static void od__release_block(od_arena *a, od__block *b)
{
    a->used -= b->bytes;
    a->used_kind[b->kind] -= b->bytes;
    if (b->chunk >= 0) {
        /* Last in, first out: the bump pointer returns to the block. */
        a->cur_chunk = b->chunk;
        a->cur_offset = b->offset;
    } else {
        od_aligned_free(b);
    }
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

void od_arena_reset_step(od_arena *a)
{
    od_arena_release(a, 0);
    if (a->nchunks > 1) {
        /* One chunk of the combined size serves the next step alone. */
        size_t total = 0;
        for (int i = 0; i < a->nchunks; i++)
            total += a->chunks[i].size;
        od__free_chunks(a);
        unsigned char *base = od_aligned_alloc(total);
        if (base)
            a->chunks[a->nchunks++] = (od__chunk){base, total};
    }
    a->cur_chunk = 0;
    a->cur_offset = 0;
}

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
