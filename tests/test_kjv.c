/* Tests of the keyboard-text workload: the alphabet and book tables, the
 * cache of the Bible text (built, reused, rebuilt when corrupt), the
 * message when the package is missing, the windows and their labels, the
 * model, the extra metrics and the bigram baseline. Tests that need the
 * `bible` program skip when it is not installed. */
#include <ftw.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "workloads/kjv.h"
#include "workloads/metrics.h"
#include "workloads/workload.h"

static char g_root[256];
static int g_case;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/ondev-kjv-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(g_root) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void new_dir(char *dir, size_t len)
{
    snprintf(dir, len, "%s/case%d", g_root, g_case++);
    assert_int_equal(mkdir(dir, 0700), 0);
}

/* 1 when a `bible` program is on the PATH. */
static int have_bible(void)
{
    return system("command -v bible >/dev/null 2>&1") == 0;
}

#define NEED_BIBLE()                                                  \
    do {                                                              \
        if (!have_bible()) {                                          \
            fprintf(stderr, "bible-kjv not installed: skipped\n");    \
            skip();                                                   \
        }                                                             \
    } while (0)

static void test_alphabet(void **state)
{
    (void)state;
    assert_int_equal(strlen(od_kjv_alphabet), OD_KJV_VOCAB);
    for (int i = 0; i < OD_KJV_VOCAB; i++)
        assert_int_equal(od_kjv_char_id((unsigned char)od_kjv_alphabet[i]),
                         i);
    assert_int_equal(od_kjv_char_id('\n'), 0);
    assert_int_equal(od_kjv_char_id('0'), -1);
    assert_int_equal(od_kjv_char_id('"'), -1);
    assert_int_equal(od_kjv_char_id(0xe9), -1);
}

static void test_books(void **state)
{
    (void)state;
    /* Genesis has 50 chapters, Psalms (book 18) starts at chapter 478 and
     * has 150, Revelation (65) has the last 22. */
    assert_int_equal(od_kjv_chapter_to_book(0), 0);
    assert_int_equal(od_kjv_chapter_to_book(49), 0);
    assert_int_equal(od_kjv_chapter_to_book(50), 1);
    assert_int_equal(od_kjv_chapter_to_book(477), 17);
    assert_int_equal(od_kjv_chapter_to_book(478), 18);
    assert_int_equal(od_kjv_chapter_to_book(627), 18);
    assert_int_equal(od_kjv_chapter_to_book(628), 19);
    assert_int_equal(od_kjv_chapter_to_book(1166), 64);
    assert_int_equal(od_kjv_chapter_to_book(1167), 65);
    assert_int_equal(od_kjv_chapter_to_book(OD_KJV_CHAPTERS - 1), 65);
    int held = 0;
    for (int b = 0; b < OD_KJV_BOOKS; b++)
        held += od_kjv_is_test_book(b);
    assert_int_equal(held, 10);
    assert_true(od_kjv_is_test_book(40));   /* Mark */
    assert_false(od_kjv_is_test_book(0));   /* Genesis */
}

static void test_cache_dir(void **state)
{
    (void)state;
    char out[256];
    assert_int_equal(od_kjv_cache_dir("/some/dir", out, sizeof out), OD_OK);
    assert_string_equal(out, "/some/dir");
    char *old = getenv("XDG_CACHE_HOME");
    char saved[512] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    assert_int_equal(od_kjv_cache_dir(NULL, out, sizeof out), OD_OK);
    assert_string_equal(out, "/x/cache/ondev");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", getenv("HOME") ? getenv("HOME") : "/root", 1);
    assert_int_equal(od_kjv_cache_dir("", out, sizeof out), OD_OK);
    assert_non_null(strstr(out, "/.cache/ondev"));
    if (old)
        setenv("XDG_CACHE_HOME", saved, 1);
}

static void read_file(const char *path, char **buf, long *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)*len);
    assert_non_null(*buf);
    assert_int_equal(fread(*buf, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
}

static void write_file(const char *path, const char *buf, long len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
}

/* The text is built once, read back from the cache, and rebuilt when the
 * cache is altered or cut short; every version parses to the same text. */
static void test_cache_roundtrip(void **state)
{
    (void)state;
    NEED_BIBLE();
    char dir[300], path[400];
    new_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/" OD_KJV_CACHE_NAME, dir);

    od_kjv_text t1, t2;
    int rebuilt = -1;
    assert_int_equal(od_kjv_text_load(dir, &t1, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 1);
    const char *first = "In the beginning God created the heaven and the "
                        "earth.\nAnd the earth was without form";
    assert_int_equal(strncmp(t1.text, first, strlen(first)), 0);
    assert_string_equal(t1.book_abbrev[0], "Ge");
    assert_int_equal(t1.chapter_start[0], 0);
    assert_int_equal(t1.chapter_start[OD_KJV_CHAPTERS], t1.len);
    assert_true(t1.len > 4000000 && t1.len < 4500000);
    for (int c = 0; c < OD_KJV_CHAPTERS; c++)
        assert_true(t1.chapter_start[c] < t1.chapter_start[c + 1]);

    /* Second load: from the cache. */
    assert_int_equal(od_kjv_text_load(dir, &t2, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 0);
    assert_int_equal(t2.len, t1.len);
    assert_memory_equal(t2.text, t1.text, t1.len);
    od_kjv_text_free(&t2);

    /* One changed byte in the body: the checksum catches it. */
    char *buf;
    long len;
    read_file(path, &buf, &len);
    buf[len / 2] ^= 0x20;
    write_file(path, buf, len);
    assert_int_equal(od_kjv_text_load(dir, &t2, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 1);
    assert_memory_equal(t2.text, t1.text, t1.len);
    od_kjv_text_free(&t2);

    /* A truncated cache, and a header that lies about the length. */
    write_file(path, buf, len - 1000);
    assert_int_equal(od_kjv_text_load(dir, &t2, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 1);
    od_kjv_text_free(&t2);
    write_file(path, "ondev kjv-bible cache v1 5 00000000\nhello", 41);
    assert_int_equal(od_kjv_text_load(dir, &t2, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 1);
    assert_int_equal(t2.len, t1.len);
    od_kjv_text_free(&t2);
    free(buf);

    /* The rebuilt cache is good again. */
    assert_int_equal(od_kjv_text_load(dir, &t2, &rebuilt), OD_OK);
    assert_int_equal(rebuilt, 0);
    od_kjv_text_free(&t2);
    od_kjv_text_free(&t1);
}

/* Without the program (and no cache), the message names the package. */
static void test_missing_package(void **state)
{
    (void)state;
    char dir[300];
    new_dir(dir, sizeof dir);
    setenv(OD_KJV_BIBLE_ENV, "/nonexistent/ondev-test/bible", 1);
    od_kjv_text t;
    od_status st = od_kjv_text_load(dir, &t, NULL);
    unsetenv(OD_KJV_BIBLE_ENV);
    assert_int_equal(st, OD_ERR_IO);
    assert_non_null(strstr(od_error_message(), "apt-get install bible-kjv"));
    assert_null(t.text);

    /* Through the workload too: both datasets are left empty. */
    setenv(OD_KJV_BIBLE_ENV, "/nonexistent/ondev-test/bible", 1);
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.data_dir = dir;
    od_dataset train, test;
    st = od_kjv_load(&o, &train, &test);
    unsetenv(OD_KJV_BIBLE_ENV);
    assert_int_equal(st, OD_ERR_IO);
    assert_int_equal(train.n, 0);
    assert_null(train.x);
    assert_null(test.x);
}

/* A program that prints something else is refused as malformed. */
static void test_wrong_output(void **state)
{
    (void)state;
    char dir[300], prog[400];
    new_dir(dir, sizeof dir);
    snprintf(prog, sizeof prog, "%s/fake-bible", dir);
    FILE *f = fopen(prog, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho 'Ge1:1 In the beginning.'\n"
               "echo 'Ge1:2 And the earth.'\n");
    fclose(f);
    assert_int_equal(chmod(prog, 0755), 0);
    setenv(OD_KJV_BIBLE_ENV, prog, 1);
    od_kjv_text t;
    od_status st = od_kjv_text_load(dir, &t, NULL);
    unsetenv(OD_KJV_BIBLE_ENV);
    assert_int_equal(st, OD_ERR_FORMAT);
    assert_non_null(strstr(od_error_message(), "66"));
}

static void test_windows(void **state)
{
    (void)state;
    NEED_BIBLE();
    char dir[300];
    new_dir(dir, sizeof dir);
    od_workload_opts o;
    od_workload_opts_init(&o);
    o.data_dir = dir;
    od_dataset train, test;
    assert_int_equal(od_kjv_load(&o, &train, &test), OD_OK);
    assert_int_equal(od_dataset_check(&train), OD_OK);
    assert_int_equal(od_dataset_check(&test), OD_OK);
    assert_int_equal(train.sample_ndim, 1);
    assert_int_equal(train.sample_dims[0], OD_KJV_SEQ_LEN);
    assert_int_equal(train.labels_per_sample, OD_KJV_SEQ_LEN);
    assert_int_equal(train.num_classes, OD_KJV_VOCAB);
    /* The figures the documentation gives. */
    assert_int_equal(train.n, 60678);
    assert_int_equal(test.n, 4558);

    /* Labels are the next input; -1 only at a chapter's end. Train and
     * test hold disjoint books. */
    const int T = OD_KJV_SEQ_LEN;
    for (int pass = 0; pass < 2; pass++) {
        const od_dataset *d = pass ? &test : &train;
        int books = 0, last_book = -1;
        for (int i = 0; i < d->n; i++) {
            const float *x = d->x + (size_t)i * T;
            const int32_t *y = d->y + (size_t)i * T;
            for (int t = 0; t + 1 < T; t++)
                if (y[t] >= 0)
                    assert_int_equal(y[t], (int)x[t + 1]);
            for (int t = 1; t < T; t++)
                if (y[t - 1] < 0)
                    assert_int_equal(y[t], -1);
            int book = od_kjv_chapter_to_book(d->group[i]);
            assert_int_equal(od_kjv_is_test_book(book), pass);
            books += book != last_book;
            last_book = book;
        }
        assert_int_equal(books, pass ? 10 : 56);
    }
    /* The first window: "In the beginning ..." */
    const char *start = "In the beginning God";
    for (int t = 0; t < 20; t++)
        assert_int_equal((int)train.x[t], od_kjv_char_id(
                                              (unsigned char)start[t]));
    od_dataset_free(&train);
    od_dataset_free(&test);

    /* Subsets keep the first windows. */
    o.train_subset = 100;
    o.test_subset = 7;
    od_dataset a, b;
    assert_int_equal(od_kjv_load(&o, &a, &b), OD_OK);
    assert_int_equal(a.n, 100);
    assert_int_equal(b.n, 7);
    assert_int_equal(a.group[0], 0);
    od_dataset_free(&a);
    od_dataset_free(&b);
}

static void test_model(void **state)
{
    (void)state;
    od_arena *a = od_arena_create(0);
    od_ctx ctx = {.arena = a};
    od_model *m;
    assert_int_equal(od_kjv_build_gru(&ctx, &m), OD_OK);
    assert_int_equal(od_model_param_count(m, 0), 241216);
    const int in[2] = {5, 17};
    int nd, dims[OD_MAX_DIMS];
    assert_int_equal(od_model_check_shape(m, 2, in, &nd, dims), OD_OK);
    assert_int_equal(nd, 3);
    assert_int_equal(dims[0], 5);
    assert_int_equal(dims[1], 17);
    assert_int_equal(dims[2], OD_KJV_VOCAB);
    od_model_destroy(m);
    od_arena_destroy(a);

    const od_workload *w = od_workload_find("kjv-char");
    assert_non_null(w);
    assert_non_null(w->extra_metrics);
    assert_non_null(w->baseline);
    assert_int_equal(w->group_at_level(60, "book"), 1);
    assert_int_equal(w->group_at_level(60, "chapter"), 60);
    assert_int_equal(w->group_at_level(60, "verse"), -1);
}

/* Top-1, top-3 and bits on hand-made logits. */
static void test_metrics(void **state)
{
    (void)state;
    float data[3 * 4] = {
        0, 1, 2, 3,      /* label 3: top-1 */
        3, 2, 1, 0,      /* label 2: third */
        5, 5, 5, 5,      /* label 3: tie, ranked last of the four */
    };
    od_tensor t = {.ndim = 2, .dims = {3, 4}, .size = 12, .data = data};
    int32_t labels[3] = {3, 2, 3};
    od_metric_acc acc;
    od_metric_acc_init(&acc);
    od_metric_acc_add(&acc, &t, labels);
    assert_int_equal(acc.rows, 3);
    assert_int_equal(acc.top1, 1);
    assert_int_equal(acc.top3, 2);
    double z = exp(0) + exp(1) + exp(2) + exp(3);
    double nll = (log(z) - 3) + (log(z) - 1) + log(4.0);
    assert_true(fabs(acc.nll_nats - nll) < 1e-6 * nll);
    assert_true(fabs(od_metric_acc_bits(&acc) - nll / 3 / log(2.0)) < 1e-9);

    /* Unlabelled rows are skipped; a tie goes to the lower class. */
    int32_t some[3] = {-1, -1, 0};
    od_metric_acc_init(&acc);
    od_metric_acc_add(&acc, &t, some);
    assert_int_equal(acc.rows, 1);
    assert_int_equal(acc.top1, 1);
    int32_t none[3] = {-1, -1, -1};
    od_metric_acc_init(&acc);
    od_metric_acc_add(&acc, &t, none);
    assert_int_equal(acc.rows, 0);
    assert_true(isnan(od_metric_acc_top1(&acc)));

    od_metrics m = {0};
    od_metric_acc_init(&acc);
    od_metric_acc_add(&acc, &t, labels);
    od_kjv_metrics(&acc, &m);
    assert_int_equal(m.count, 2);
    assert_true(fabs(od_metrics_get(&m, "top3_accuracy") - 2.0 / 3) < 1e-12);
    assert_true(isnan(od_metrics_get(&m, "nothing")));
}

/* On "abab..." the bigram model always knows the next character. */
static void test_bigram(void **state)
{
    (void)state;
    const int dims[1] = {8};
    od_dataset tr, te;
    assert_int_equal(od_dataset_alloc(&tr, "t", 4, 1, dims, 8, 4, 0), OD_OK);
    assert_int_equal(od_dataset_alloc(&te, "e", 1, 1, dims, 8, 4, 0), OD_OK);
    for (int i = 0; i < 4 * 8; i++) {
        tr.x[i] = (float)(i % 2);
        tr.y[i] = (i + 1) % 2;
    }
    for (int i = 0; i < 8; i++) {
        te.x[i] = (float)(i % 2);
        te.y[i] = i == 7 ? -1 : (i + 1) % 2;
    }
    od_metrics m = {0};
    assert_int_equal(od_kjv_bigram_baseline(&tr, &te, &m), OD_OK);
    assert_string_equal(m.baseline, "bigram");
    assert_true(od_metrics_get(&m, "baseline_accuracy") == 1.0);
    assert_true(od_metrics_get(&m, "baseline_top3_accuracy") == 1.0);
    /* Each of a and b was followed 16 times by the other; add-one gives
     * p = 17 / 20. */
    double bits = -log2(17.0 / 20.0);
    assert_true(fabs(od_metrics_get(&m, "baseline_bits_per_char") - bits) <
                1e-9);
    od_dataset_free(&tr);
    od_dataset_free(&te);

    /* Images are refused. */
    const int img[3] = {1, 2, 2};
    assert_int_equal(od_dataset_alloc(&tr, "i", 2, 3, img, 1, 4, 0), OD_OK);
    od_metrics m2 = {0};
    assert_int_equal(od_kjv_bigram_baseline(&tr, &tr, &m2),
                     OD_ERR_MISMATCH);
    od_dataset_free(&tr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alphabet),
        cmocka_unit_test(test_books),
        cmocka_unit_test(test_cache_dir),
        cmocka_unit_test(test_cache_roundtrip),
        cmocka_unit_test(test_missing_package),
        cmocka_unit_test(test_wrong_output),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_bigram),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
