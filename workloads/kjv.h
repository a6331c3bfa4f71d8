/* Keyboard text: the King James Bible (Authorized Version, 1769 text) as
 * printed by the `bible` command of Debian's bible-kjv, for next-character
 * prediction.
 *
 * The text is taken once from `bible -f Gen1:1-Rev22:21` (one verse per
 * line, "Ge1:1 In the beginning ...") and kept in a cache file the user can
 * see and delete: <dir>/kjv-bible.txt, where dir is the workload's data
 * directory option, else $XDG_CACHE_HOME/ondev, else ~/.cache/ondev. The
 * file starts with a header line giving its length and CRC-32; a file that
 * does not match is rebuilt.
 *
 * Samples are windows of OD_KJV_SEQ_LEN characters inside one chapter,
 * shaped (T) with character ids as floats; the labels (T) are the next
 * character at each position, -1 past the chapter's end. Each verse ends in
 * '\n'. A sample's group is its chapter (0 .. 1188, in canonical order).
 * Whole books are held out for the test split (od_kjv_is_test_book). */
#ifndef ONDEV_WORKLOADS_KJV_H
#define ONDEV_WORKLOADS_KJV_H

#include "engine/model.h"
#include "workloads/dataset.h"
#include "workloads/metrics.h"
#include "workloads/workload.h"

#define OD_KJV_BOOKS 66
#define OD_KJV_CHAPTERS 1189
#define OD_KJV_VERSES 31102
#define OD_KJV_VOCAB 64
#define OD_KJV_SEQ_LEN 64
#define OD_KJV_EMBED_DIM 32
#define OD_KJV_HIDDEN 256
#define OD_KJV_CACHE_NAME "kjv-bible.txt"
/* The command that prints the text; "bible" on the PATH by default. */
#define OD_KJV_BIBLE_ENV "ONDEV_BIBLE"

/* The character of each id: "\n !'(),-.:;?" then A-Z then a-z. */
extern const char od_kjv_alphabet[OD_KJV_VOCAB + 1];

/* The id of character c, or -1 when c is not in the alphabet. */
int od_kjv_char_id(unsigned char c);

/* 1 for the books held out for testing (Ruth, Ecclesiastes, Lamentations,
 * Hosea, Jonah, Mark, Romans, Galatians, Hebrews, 1 John: 4,558 of the
 * 65,236 windows), else 0. book in [0, OD_KJV_BOOKS). */
int od_kjv_is_test_book(int book);

/* The whole text, parsed. */
typedef struct od_kjv_text {
    char *text;             /* (len) verses, each ending in '\n', owned */
    size_t len;
    size_t chapter_start[OD_KJV_CHAPTERS + 1];  /* offsets into text */
    int chapter_book[OD_KJV_CHAPTERS];          /* book of each chapter */
    char book_abbrev[OD_KJV_BOOKS][8];          /* "Ge", "Exo", ... */
} od_kjv_text;

/* The cache directory: dir when given and not empty, else
 * $XDG_CACHE_HOME/ondev, else $HOME/.cache/ondev. */
od_status od_kjv_cache_dir(const char *dir, char *out, size_t len);

/* Read the text from the cache in dir (resolved as above), or, when the
 * cache is missing or does not match its checksum, run the `bible` command
 * and write the cache again. *rebuilt (may be NULL) says whether the
 * command ran. A cache that cannot be written is not an error (the text is
 * still returned). Failures: OD_ERR_IO when the command is missing (the
 * message gives the apt-get command), OD_ERR_FORMAT when its output is not
 * the expected 66 books, 1189 chapters and 31,102 verses. */
od_status od_kjv_text_load(const char *dir, od_kjv_text *t, int *rebuilt);
void od_kjv_text_free(od_kjv_text *t);

/* The workload's loader (od_workload.load): training windows from every
 * book but the held-out ones, test windows from those. opts->data_dir is
 * the cache directory; the subsets keep the first windows. */
od_status od_kjv_load(const od_workload_opts *opts, od_dataset *train,
                      od_dataset *test);

/* kjv-char: input ids (N, T) -> embed (N, T, 32) -> gru (N, T, 256)
 * -> fc (N, T, 64) logits over the alphabet (241,216 parameters). */
od_status od_kjv_build_gru(od_ctx *ctx, od_model **out);

/* od_workload.extra_metrics: top3_accuracy and bits_per_char. */
void od_kjv_metrics(const od_metric_acc *acc, od_metrics *out);

/* od_workload.baseline: a character bigram model, counted on train's
 * (input, next) pairs with add-one smoothing, scored on test's:
 * baseline_accuracy, baseline_top3_accuracy, baseline_bits_per_char. */
od_status od_kjv_bigram_baseline(const od_dataset *train,
                                 const od_dataset *test, od_metrics *out);

/* The book (0 .. 65) of a chapter group (0 .. 1188), for partitions with
 * one client per book. */
int32_t od_kjv_chapter_to_book(int32_t chapter);

#endif
