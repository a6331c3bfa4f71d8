#include "workloads/kjv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

const char od_kjv_alphabet[OD_KJV_VOCAB + 1] =
    "\n !'(),-.:;?"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "abcdefghijklmnopqrstuvwxyz";

/* Chapters per book in canonical order (Genesis 50 ... Revelation 22). The
 * parsed text must agree with it. */
static const int od__kjv_book_chapters[OD_KJV_BOOKS] = {
    50, 40, 27, 36, 34, 24, 21, 4, 31, 24, 22, 25, 29, 36, 10, 13, 10, 42,
    150, 31, 12, 8, 66, 52, 5, 48, 12, 14, 3, 9, 1, 4, 7, 3, 3, 3, 2, 14, 4,
    28, 16, 24, 21, 28, 16, 16, 13, 6, 6, 4, 4, 5, 3, 6, 4, 3, 1, 13, 5, 5,
    3, 5, 1, 1, 1, 22,
};

/* Ruth, Ecclesiastes, Lamentations, Hosea, Jonah, Mark, Romans, Galatians,
 * Hebrews, 1 John: a mix of narrative, poetry, prophecy, gospel and
 * letters. */
static const int od__kjv_test_books[] = {7, 20, 24, 27, 31, 40, 44, 47, 57,
                                         61};

#define OD__KJV_RANGE "Gen1:1-Rev22:21"
#define OD__KJV_MAGIC "ondev kjv-bible cache v1"
#define OD__KJV_INSTALL_HINT                                                \
    "Install the King James Bible with `apt-get install bible-kjv` (it "    \
    "brings the text, bible-kjv-text), or set $" OD_KJV_BIBLE_ENV " to the " \
    "path of a `bible` program"

int od_kjv_char_id(unsigned char c)
{
    /* Letters by range, the 12 others by search: ids follow the order of
     * od_kjv_alphabet. */
    if (c >= 'A' && c <= 'Z')
        return 12 + (c - 'A');
    if (c >= 'a' && c <= 'z')
        return 38 + (c - 'a');
    for (int i = 0; i < 12; i++)
        if ((unsigned char)od_kjv_alphabet[i] == c && c != '\0')
            return i;
    return -1;
}

int od_kjv_is_test_book(int book)
{
    OD_ASSERT(book >= 0 && book < OD_KJV_BOOKS);
    for (size_t i = 0; i < sizeof od__kjv_test_books / sizeof(int); i++)
        if (od__kjv_test_books[i] == book)
            return 1;
    return 0;
}

int32_t od_kjv_chapter_to_book(int32_t chapter)
{
    OD_ASSERT(chapter >= 0 && chapter < OD_KJV_CHAPTERS);
    int32_t first = 0;
    for (int b = 0; b < OD_KJV_BOOKS; b++) {
        first += od__kjv_book_chapters[b];
        if (chapter < first)
            return b;
    }
    OD_ASSERT(0);
    return -1;
}

/* ---- The cache ----------------------------------------------------------- */

od_status od_kjv_cache_dir(const char *dir, char *out, size_t len)
{
    int n;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (dir && dir[0])
        n = snprintf(out, len, "%s", dir);
    else if (xdg && xdg[0])
        n = snprintf(out, len, "%s/ondev", xdg);
    else if (home && home[0])
        n = snprintf(out, len, "%s/.cache/ondev", home);
    else
        return od_fail(OD_ERR_INVALID, "no cache directory for the Bible "
                       "text: set $XDG_CACHE_HOME or $HOME, or give a data "
                       "directory");
    if (n < 0 || (size_t)n >= len)
        return od_fail(OD_ERR_INVALID, "cache directory path too long");
    return OD_OK;
}

/* mkdir -p; returns 0 on success. */
static int od__mkdirs(const char *dir)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Read the whole of f into a NUL-terminated buffer; *len bytes. */
static char *od__read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            return NULL;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!buf || ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The body of the cache file at path, when its header matches its length
 * and CRC-32; NULL otherwise (missing, truncated, altered). */
static char *od__cache_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t n = 0;
    char *buf = od__read_all(f, &n);
    fclose(f);
    if (!buf)
        return NULL;

    unsigned long long body_len = 0;
    unsigned long crc = 0;
    int header_len = 0;
    if (sscanf(buf, OD__KJV_MAGIC " %llu %lx\n%n", &body_len, &crc,
               &header_len) != 2 || header_len <= 0 ||
        (size_t)header_len + body_len != n) {
        free(buf);
        return NULL;
    }
    const char *body = buf + header_len;
    if (crc32(0L, (const Bytef *)body, (uInt)body_len) != crc) {
        free(buf);
        return NULL;
    }
    memmove(buf, body, (size_t)body_len + 1);
    *len = (size_t)body_len;
    return buf;
}

/* Write body to path through a temporary file and a rename, so that a
 * reader never sees half a cache. Failures are ignored: the cache is only
 * a shortcut. */
static void od__cache_write(const char *dir, const char *path,
                            const char *body, size_t len)
{
    if (od__mkdirs(dir) != 0)
        return;
    char tmp[1200];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return;
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return;
    unsigned long crc = crc32(0L, (const Bytef *)body, (uInt)len);
    int ok = fprintf(f, OD__KJV_MAGIC " %zu %08lx\n", len, crc) > 0 &&
             fwrite(body, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0)
        remove(tmp);
}

/* Run the `bible` command and return its output (the raw verse lines). */
static od_status od__run_bible(char **out, size_t *len)
{
    const char *prog = getenv(OD_KJV_BIBLE_ENV);
    if (!prog || !prog[0])
        prog = "bible";
    char cmd[1200];
    int n = snprintf(cmd, sizeof cmd, "'%s' -f " OD__KJV_RANGE
                     " 2>/dev/null", prog);
    if (n < 0 || (size_t)n >= sizeof cmd || strchr(prog, '\''))
        return od_fail(OD_ERR_INVALID, "$" OD_KJV_BIBLE_ENV " is not a "
                       "usable path: %s", prog);

    FILE *p = popen(cmd, "r");
    if (!p)
        return od_fail(OD_ERR_IO, "cannot run `%s`: %s. "
                       OD__KJV_INSTALL_HINT ".", prog, strerror(errno));
    char *buf = od__read_all(p, len);
    int status = pclose(p);
    if (!buf)
        return od_fail(OD_ERR_NOMEM, "out of memory reading the output of "
                       "`%s`", prog);
    if (status != 0 || *len == 0) {
        free(buf);
        return od_fail(OD_ERR_IO, "`%s -f " OD__KJV_RANGE "` failed (exit "
                       "status %d) or printed nothing: the King James Bible "
                       "is not installed. " OD__KJV_INSTALL_HINT ".", prog,
                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    *out = buf;
    return OD_OK;
}

/* ---- Parsing ------------------------------------------------------------- */

/* Turn the raw lines "Ge1:1 In the beginning ..." of raw (len) into t:
 * verse texts joined by '\n', chapter offsets and books. */
static od_status od__kjv_parse(const char *raw, size_t len, od_kjv_text *t)
{
    t->text = malloc(len + 1);
    if (!t->text)
        return od_fail(OD_ERR_NOMEM, "out of memory for the Bible text");

    char prev_abbrev[8] = "";
    int book = -1, chapter = -1, prev_ch = -1, verses = 0, line = 0;
    size_t o = 0;
    const char *p = raw, *end = raw + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        line++;
        if (eol == p) {   /* blank line */
            p = eol + 1;
            continue;
        }

        /* The reference: book abbreviation (a leading digit allowed),
         * chapter, ':', verse, one space. */
        char abbrev[8];
        size_t k = 0;
        const char *q = p;
        if (q < eol && *q >= '1' && *q <= '3')
            abbrev[k++] = *q++;
        while (q < eol && k < sizeof abbrev - 1 &&
               ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z')))
            abbrev[k++] = *q++;
        abbrev[k] = '\0';
        char *num_end;
        long ch = strtol(q, &num_end, 10);
        if (k == 0 || num_end == q || *num_end != ':')
            return od_fail(OD_ERR_FORMAT, "Bible text line %d: expected a "
                           "reference such as Ge1:1, found '%.20s'", line, p);
        q = num_end + 1;
        strtol(q, &num_end, 10);
        if (num_end == q || *num_end != ' ')
            return od_fail(OD_ERR_FORMAT, "Bible text line %d: bad verse "
                           "number in '%.20s'", line, p);
        q = num_end + 1;

        /* A new abbreviation starts a book, a new number a chapter. */
        if (strcmp(abbrev, prev_abbrev) != 0) {
            if (++book >= OD_KJV_BOOKS)
                return od_fail(OD_ERR_FORMAT, "Bible text line %d: more "
                               "than %d books", line, OD_KJV_BOOKS);
            snprintf(t->book_abbrev[book], sizeof t->book_abbrev[book],
                     "%s", abbrev);
            memcpy(prev_abbrev, abbrev, sizeof abbrev);
            prev_ch = -1;
        }
        if (ch != prev_ch) {
            if (++chapter >= OD_KJV_CHAPTERS)
                return od_fail(OD_ERR_FORMAT, "Bible text line %d: more "
                               "than %d chapters", line, OD_KJV_CHAPTERS);
            t->chapter_start[chapter] = o;
            t->chapter_book[chapter] = book;
            prev_ch = (int)ch;
        }

        for (; q < eol; q++) {
            if (od_kjv_char_id((unsigned char)*q) < 0)
                return od_fail(OD_ERR_FORMAT, "Bible text line %d: "
                               "character 0x%02x is not in the alphabet",
                               line, (unsigned char)*q);
            t->text[o++] = *q;
        }
        t->text[o++] = '\n';
        verses++;
        p = eol + 1;
    }
    t->text[o] = '\0';
    t->len = o;
    if (book + 1 != OD_KJV_BOOKS || chapter + 1 != OD_KJV_CHAPTERS ||
        verses != OD_KJV_VERSES)
        return od_fail(OD_ERR_FORMAT, "the Bible text holds %d books, %d "
                       "chapters and %d verses; expected %d, %d and %d",
                       book + 1, chapter + 1, verses, OD_KJV_BOOKS,
                       OD_KJV_CHAPTERS, OD_KJV_VERSES);
    t->chapter_start[OD_KJV_CHAPTERS] = o;
    for (int c = 0; c < OD_KJV_CHAPTERS; c++)
        if (t->chapter_book[c] != od_kjv_chapter_to_book(c))
            return od_fail(OD_ERR_FORMAT, "the Bible text's chapter %d "
                           "belongs to book %d; expected book %d", c,
                           t->chapter_book[c], od_kjv_chapter_to_book(c));
    return OD_OK;
}

void od_kjv_text_free(od_kjv_text *t)
{
    if (!t)
        return;
    free(t->text);
    memset(t, 0, sizeof *t);
}

od_status od_kjv_text_load(const char *dir, od_kjv_text *t, int *rebuilt)
{
    OD_ASSERT(t);
    memset(t, 0, sizeof *t);
    if (rebuilt)
        *rebuilt = 0;
    char cache_dir[1000], path[1100];
    OD_TRY(od_kjv_cache_dir(dir, cache_dir, sizeof cache_dir));
    snprintf(path, sizeof path, "%s/" OD_KJV_CACHE_NAME, cache_dir);

    /* A cache that matches its checksum and parses is used as it is. */
    size_t len = 0;
    char *raw = od__cache_read(path, &len);
    if (raw) {
        od_status st = od__kjv_parse(raw, len, t);
        free(raw);
        if (st == OD_OK)
            return OD_OK;
        od_kjv_text_free(t);
    }

    OD_TRY(od__run_bible(&raw, &len));
    if (rebuilt)
        *rebuilt = 1;
    od_status st = od__kjv_parse(raw, len, t);
    if (st == OD_OK)
        od__cache_write(cache_dir, path, raw, len);
    else
        od_kjv_text_free(t);
    free(raw);
    return st;
}

/* ---- The dataset --------------------------------------------------------- */

/* Windows of T characters starting every T characters of a chapter of c
 * characters; the last window's labels stop at the chapter's end. */
static int od__windows(size_t c)
{
    return c < 2 ? 0 : (int)((c - 2) / OD_KJV_SEQ_LEN + 1);
}

/* Fill d with the windows of the chapters whose book is (test ? held out
 * : not held out), keeping the first limit windows (0: all). */
static od_status od__kjv_fill(const od_kjv_text *t, int test, int limit,
                              od_dataset *d)
{
    int n = 0;
    for (int c = 0; c < OD_KJV_CHAPTERS; c++)
        if (od_kjv_is_test_book(t->chapter_book[c]) == test)
            n += od__windows(t->chapter_start[c + 1] - t->chapter_start[c]);
    if (limit > 0 && limit < n)
        n = limit;

    const int dims[1] = {OD_KJV_SEQ_LEN};
    OD_TRY(od_dataset_alloc(d, test ? "kjv/test" : "kjv/train", n, 1, dims,
                            OD_KJV_SEQ_LEN, OD_KJV_VOCAB, 1));
    const int T = OD_KJV_SEQ_LEN;
    int i = 0;
    for (int c = 0; c < OD_KJV_CHAPTERS && i < n; c++) {
        if (od_kjv_is_test_book(t->chapter_book[c]) != test)
            continue;
        size_t s = t->chapter_start[c], e = t->chapter_start[c + 1];
        for (size_t pos = s; pos + 1 < e && i < n; pos += (size_t)T, i++) {
            float *x = d->x + (size_t)i * (size_t)T;      /* (T) */
            int32_t *y = d->y + (size_t)i * (size_t)T;    /* (T) */
            for (int k = 0; k < T; k++) {
                size_t at = pos + (size_t)k;
                x[k] = at < e ? (float)od_kjv_char_id(
                                    (unsigned char)t->text[at])
                              : 0.0f;
                y[k] = at + 1 < e ? od_kjv_char_id(
                                        (unsigned char)t->text[at + 1])
                                  : -1;
            }
            d->group[i] = c;
        }
    }
    OD_ASSERT(i == n);

    const char *names[OD_KJV_VOCAB];
    char single[OD_KJV_VOCAB][4];   /* copied by od_dataset_set_class_names */
    for (int k = 0; k < OD_KJV_VOCAB; k++) {
        char ch = od_kjv_alphabet[k];
        if (ch == '\n')
            snprintf(single[k], sizeof single[k], "\\n");
        else
            snprintf(single[k], sizeof single[k], "%c", ch);
        names[k] = single[k];
    }
    return od_dataset_set_class_names(d, names);
}

od_status od_kjv_load(const od_workload_opts *opts, od_dataset *train,
                      od_dataset *test)
{
    OD_ASSERT(opts && train && test);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (opts->train_subset < 0 || opts->test_subset < 0)
        return od_fail(OD_ERR_INVALID, "subset sizes must not be negative");

    od_kjv_text t;
    OD_TRY(od_kjv_text_load(opts->data_dir, &t, NULL));
    od_status st = od__kjv_fill(&t, 0, opts->train_subset, train);
    if (st == OD_OK)
        st = od__kjv_fill(&t, 1, opts->test_subset, test);
    od_kjv_text_free(&t);
    if (st != OD_OK) {
        od_dataset_free(train);
        od_dataset_free(test);
    }
    return st;
}

/* ---- Model, metrics, baseline -------------------------------------------- */

#define OD__APPEND(create)                     \
    do {                                       \
        od_layer *l = NULL;                    \
        st = (create);                         \
        if (st == OD_OK)                       \
            st = od_model_add(m, l);           \
        if (st != OD_OK)                       \
            goto fail;                         \
    } while (0)

od_status od_kjv_build_gru(od_ctx *ctx, od_model **out)
{
    OD_ASSERT(ctx && out);
    *out = NULL;
    od_model *m = NULL;
    OD_TRY(od_model_create(ctx, &m));
    od_status st = OD_OK;

    /* (N, T) ids -> (N, T, 32) -> (N, T, 256) -> (N, T, 64) logits */
    OD__APPEND(od_embedding_create(ctx, "embed", OD_KJV_VOCAB,
                                   OD_KJV_EMBED_DIM, &l));
    OD__APPEND(od_gru_create(ctx, "gru", OD_KJV_EMBED_DIM, OD_KJV_HIDDEN, 1,
                             &l));
    OD__APPEND(od_linear_create(ctx, "fc", OD_KJV_HIDDEN, OD_KJV_VOCAB, 1,
                                &l));

    const int in[2] = {1, OD_KJV_SEQ_LEN};
    int out_ndim = 0, out_dims[OD_MAX_DIMS] = {0};
    OD_ASSERT(od_model_check_shape(m, 2, in, &out_ndim, out_dims) == OD_OK);
    OD_ASSERT(out_ndim == 3 && out_dims[2] == OD_KJV_VOCAB);
    *out = m;
    return OD_OK;
fail:
    od_model_destroy(m);
    return st;
}

void od_kjv_metrics(const od_metric_acc *acc, od_metrics *out)
{
    OD_ASSERT(acc && out);
    od_metrics_put(out, "top3_accuracy", od_metric_acc_top3(acc));
    od_metrics_put(out, "bits_per_char", od_metric_acc_bits(acc));
}

od_status od_kjv_bigram_baseline(const od_dataset *train,
                                 const od_dataset *test, od_metrics *out)
{
    OD_ASSERT(train && test && out);
    if (train->sample_ndim != 1 ||
        train->labels_per_sample != train->sample_dims[0] ||
        test->labels_per_sample != test->sample_dims[0] ||
        train->num_classes != test->num_classes)
        return od_fail(OD_ERR_MISMATCH, "the bigram baseline needs "
                       "character windows with one label per position");
    const int V = train->num_classes;
    double *counts = calloc((size_t)V * (size_t)V, sizeof *counts); /* (V, V) */
    if (!counts)
        return od_fail(OD_ERR_NOMEM, "out of memory for bigram counts");

    /* Count (character, next character) over every labelled position. */
    size_t T = train->sample_size;
    for (size_t i = 0; i < (size_t)train->n * T; i++) {
        int32_t y = train->y[i];
        if (y < 0)
            continue;
        int x = (int)train->x[i];
        OD_ASSERT(x >= 0 && x < V);
        counts[(size_t)x * (size_t)V + (size_t)y] += 1.0;
    }

    /* Score the test pairs with add-one smoothing. */
    od_metric_acc acc;
    od_metric_acc_init(&acc);
    double *p = malloc((size_t)V * sizeof *p);
    if (!p) {
        free(counts);
        return od_fail(OD_ERR_NOMEM, "out of memory for bigram counts");
    }
    for (size_t i = 0; i < (size_t)test->n * test->sample_size; i++) {
        int32_t y = test->y[i];
        if (y < 0)
            continue;
        int x = (int)test->x[i];
        OD_ASSERT(x >= 0 && x < V);
        for (int k = 0; k < V; k++)
            p[k] = counts[(size_t)x * (size_t)V + (size_t)k] + 1.0;
        od_metric_acc_add_probs(&acc, p, V, y);
    }
    free(p);
    free(counts);

    snprintf(out->baseline, sizeof out->baseline, "bigram");
    od_metrics_put(out, "baseline_accuracy", od_metric_acc_top1(&acc));
    od_metrics_put(out, "baseline_top3_accuracy", od_metric_acc_top3(&acc));
    od_metrics_put(out, "baseline_bits_per_char", od_metric_acc_bits(&acc));
    return OD_OK;
}
