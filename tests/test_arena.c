/* The memory arena: the byte budget and its error message, use and peak per
 * category, step lifetimes (mark, release, reset). Every test frees what it
 * allocates and checks that use returns to where it was, so the sanitizer
 * build also proves that a failed allocation leaks nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "engine/arena.h"

/* Blocks are charged in whole 64-byte units (arena.h: 64-byte aligned). */
#define UNIT 64

static void assert_contains(const char *hay, const char *needle)
{
    assert_non_null(hay);
    if (!strstr(hay, needle)) {
        print_error("message does not contain '%s': %s\n", needle, hay);
        fail();
    }
}

static void test_budget_exceeded(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(1000);
    assert_non_null(a);
    void *p = NULL, *q = (void *)&p;
    assert_int_equal(od_arena_alloc(a, OD_MEM_PARAM, 512, &p), OD_OK);
    assert_int_equal(od_arena_used(a), 512);

    /* 600 bytes are charged as 640; 488 of 1000 are left. */
    od_clear_error();
    assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 600, &q), OD_ERR_NOMEM);
    assert_null(q);
    const char *msg = od_error_message();
    assert_contains(msg, "needed 640 bytes");
    assert_contains(msg, "488 of the 1000-byte budget");
    assert_contains(msg, "activations");
    assert_int_equal(od_arena_used(a), 512);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_ACT), 0);
    assert_int_equal(od_arena_peak(a), 512);
    assert_int_equal(od_arena_mark(a), 0);

    /* What the budget still holds fits; a byte then costs a whole unit,
     * more than the 40 bytes left. */
    void *r = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_SCRATCH, 448, &r), OD_OK);
    assert_int_equal(od_arena_used(a), 960);
    assert_int_equal(od_arena_alloc(a, OD_MEM_SCRATCH, 1, &q), OD_ERR_NOMEM);
    assert_contains(od_error_message(), "needed 64 bytes");
    assert_contains(od_error_message(), "40 of the 1000-byte budget");
    assert_int_equal(od_arena_used(a), 960);
    assert_int_equal(od_arena_mark(a), 1);
    od_arena_reset_step(a);
    assert_int_equal(od_arena_used(a), 512);

    /* Lowering the budget below the use makes the next allocation fail. */
    od_arena_set_budget(a, 256);
    assert_int_equal(od_arena_budget(a), 256);
    assert_int_equal(od_arena_alloc(a, OD_MEM_GRAD, 1, &q), OD_ERR_NOMEM);
    assert_contains(od_error_message(), "0 of the 256-byte budget");
    od_arena_set_budget(a, 0); /* no limit */
    assert_int_equal(od_arena_alloc(a, OD_MEM_GRAD, 1 << 20, &q), OD_OK);
    od_arena_free(a, q);

    od_arena_free(a, p);
    assert_int_equal(od_arena_used(a), 0);
    od_arena_destroy(a);
}

static void test_zeroed_and_aligned(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(0);
    for (size_t n = 1; n < 300; n += 37) {
        unsigned char *p = NULL;
        assert_int_equal(od_arena_alloc(a, OD_MEM_OPTIM, n, (void **)&p),
                         OD_OK);
        assert_int_equal((uintptr_t)p % UNIT, 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xff, n); /* the whole request is writable */
        od_arena_free(a, p);
    }
    /* A zero-byte request still gets a distinct, chargeable block. */
    void *z = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_PARAM, 0, &z), OD_OK);
    assert_non_null(z);
    assert_int_equal(od_arena_used(a), UNIT);
    od_arena_free(a, z);
    assert_int_equal(od_arena_used(a), 0);
    od_arena_destroy(a);
}

static void test_peaks_per_kind(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(0);
    void *w = NULL, *g = NULL, *s = NULL, *x1 = NULL, *x2 = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_PARAM, 128, &w), OD_OK);
    assert_int_equal(od_arena_alloc(a, OD_MEM_GRAD, 128, &g), OD_OK);
    assert_int_equal(od_arena_alloc(a, OD_MEM_OPTIM, 256, &s), OD_OK);
    assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 1024, &x1), OD_OK);
    assert_int_equal(od_arena_alloc(a, OD_MEM_SCRATCH, 320, &x2), OD_OK);
    assert_int_equal(od_arena_used(a), 128 + 128 + 256 + 1024 + 320);

    od_arena_reset_step(a);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_ACT), 0);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_SCRATCH), 0);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_ACT), 1024);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_SCRATCH), 320);
    assert_int_equal(od_arena_peak(a), 1856);

    /* A smaller second step leaves the peaks where they were. */
    assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 64, &x1), OD_OK);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_ACT), 1024);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_ACT), 64);

    /* Each kind's peak is its own: freeing optimiser state and growing the
     * gradients raises only the gradients' peak. */
    od_arena_free(a, s);
    void *g2 = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_GRAD, 192, &g2), OD_OK);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_GRAD), 320);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_OPTIM), 256);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_OPTIM), 0);
    assert_int_equal(od_arena_peak_kind(a, OD_MEM_PARAM), 128);
    assert_int_equal(od_arena_peak(a), 1856);

    od_arena_reset_peaks(a);
    assert_int_equal(od_arena_peak(a), od_arena_used(a));
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++)
        assert_int_equal(od_arena_peak_kind(a, (od_mem_kind)k),
                         od_arena_used_kind(a, (od_mem_kind)k));

    od_arena_reset_step(a);
    od_arena_free(a, w);
    od_arena_free(a, g);
    od_arena_free(a, g2);
    assert_int_equal(od_arena_used(a), 0);
    od_arena_destroy(a);
}

static void test_mark_release_reset(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(0);
    void *w = NULL, *p = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_PARAM, 64, &w), OD_OK);
    assert_int_equal(od_arena_mark(a), 0); /* persistent blocks: no mark */

    for (int i = 0; i < 3; i++)
        assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 100, &p), OD_OK);
    size_t mark = od_arena_mark(a);
    size_t used_at_mark = od_arena_used(a);
    assert_int_equal(mark, 3);
    assert_int_equal(used_at_mark, 64 + 3 * 128);

    /* Scratch taken inside a kernel goes back at the mark, and only it. */
    assert_int_equal(od_arena_alloc(a, OD_MEM_SCRATCH, 5000, &p), OD_OK);
    assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 1, &p), OD_OK);
    void *late = NULL;
    assert_int_equal(od_arena_alloc(a, OD_MEM_PARAM, 64, &late), OD_OK);
    od_arena_release(a, mark);
    assert_int_equal(od_arena_mark(a), 3);
    assert_int_equal(od_arena_used(a), used_at_mark + 64);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_SCRATCH), 0);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_ACT), 3 * 128);

    /* Releasing at the current mark does nothing. */
    od_arena_release(a, mark);
    assert_int_equal(od_arena_used(a), used_at_mark + 64);

    /* Reset frees every step block and no persistent one. */
    od_arena_reset_step(a);
    assert_int_equal(od_arena_mark(a), 0);
    assert_int_equal(od_arena_used(a), 128);
    assert_int_equal(od_arena_used_kind(a, OD_MEM_PARAM), 128);

    od_arena_free(a, late);
    od_arena_free(a, w);
    od_arena_free(a, NULL); /* allowed, does nothing */
    assert_int_equal(od_arena_used(a), 0);
    /* Destroy releases step blocks still held (checked by the sanitizer). */
    assert_int_equal(od_arena_alloc(a, OD_MEM_ACT, 4096, &p), OD_OK);
    od_arena_destroy(a);
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(od_mem_kind_name(OD_MEM_PARAM), "parameters");
    assert_string_equal(od_mem_kind_name(OD_MEM_OPTIM), "optimiser state");
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++) {
        const char *n = od_mem_kind_name((od_mem_kind)k);
        assert_non_null(n);
        assert_true(n[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_exceeded),
        cmocka_unit_test(test_zeroed_and_aligned),
        cmocka_unit_test(test_peaks_per_kind),
        cmocka_unit_test(test_mark_release_reset),
        cmocka_unit_test(test_kind_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
