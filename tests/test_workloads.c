/* Tests of the workload layer: datasets and batch assembly, the IDX reader
 * and the Fashion-MNIST loader on small files written here (good and broken
 * ones), the real Fashion-MNIST files when installed, the model builders and
 * the registry. */
#include <errno.h>
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
#include <zlib.h>

#include "workloads/dataset.h"
#include "workloads/fmnist.h"
#include "workloads/idx.h"
#include "workloads/workload.h"

/* Every test gets its own directory under one temporary root. */
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
    snprintf(g_root, sizeof g_root, "%s/ondev-workloads-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(g_root) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh, empty directory for one test. */
static void new_dir(char *dir, size_t len)
{
    snprintf(dir, len, "%s/case%d", g_root, g_case++);
    assert_int_equal(mkdir(dir, 0700), 0);
}

/* Fail with the status and message when st is not want or the message lacks
 * one of the given fragments. */
static void assert_refused(od_status st, od_status want, const char *frag1,
                           const char *frag2)
{
    const char *msg = od_error_message();
    if (st != want || !strstr(msg, frag1) || (frag2 && !strstr(msg, frag2)))
        print_error("got status '%s' (want '%s'), message: %s\n",
                    od_status_name(st), od_status_name(want), msg);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, frag1));
    if (frag2)
        assert_non_null(strstr(msg, frag2));
}

/* ---- IDX fixtures --------------------------------------------------------- */

/* Pixel k of image i in the fixtures; every byte value occurs. */
static uint8_t fx_pixel(uint32_t i, uint32_t k)
{
    return (uint8_t)(i * 37u + k * 11u);
}

/* What goes into one split's pair of files; fx_good gives a valid pair and
 * each test breaks one thing. */
typedef struct fx {
    uint32_t img_magic, lbl_magic;
    uint32_t n_img, rows, cols;  /* as the image header says */
    uint32_t n_lbl;              /* as the label header says */
    long img_payload_delta;      /* bytes written beyond (>0) or short of
                                    (<0) what the image header promises */
    int bad_label_at;            /* index whose label is set to 10; -1 none */
    int gzip;                    /* 0: plain files without ".gz" */
} fx;

static fx fx_good(uint32_t n)
{
    fx f = {0x00000803u, 0x00000801u, n, 28, 28, n, 0, -1, 1};
    return f;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Write header (magic, dims) and payload to path, gzip-compressed or not. */
static void write_file(const char *path, int gzip, uint32_t magic, int ndim,
                       const uint32_t *dims, const uint8_t *payload,
                       size_t payload_bytes)
{
    uint8_t head[4 + 4 * 4];
    put_be32(head, magic);
    for (int i = 0; i < ndim; i++)
        put_be32(head + 4 + 4 * i, dims[i]);
    size_t head_bytes = 4 + 4 * (size_t)ndim;

    if (gzip) {
        gzFile gz = gzopen(path, "wb");
        assert_non_null(gz);
        assert_int_equal(gzwrite(gz, head, (unsigned)head_bytes),
                         (int)head_bytes);
        if (payload_bytes)
            assert_int_equal(gzwrite(gz, payload, (unsigned)payload_bytes),
                             (int)payload_bytes);
        assert_int_equal(gzclose(gz), Z_OK);
    } else {
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(head, 1, head_bytes, fp), head_bytes);
        assert_int_equal(fwrite(payload, 1, payload_bytes, fp),
                         payload_bytes);
        assert_int_equal(fclose(fp), 0);
    }
}

/* Write dir/<prefix>-{images-idx3,labels-idx1}-ubyte[.gz] as f says. */
static void fx_write(const char *dir, const char *prefix, const fx *f)
{
    char path[512];
    const char *ext = f->gzip ? ".gz" : "";

    /* Labels: i % 10, one of them out of range on request. */
    uint8_t *lbl = malloc(f->n_lbl + 1);
    assert_non_null(lbl);
    for (uint32_t i = 0; i < f->n_lbl; i++)
        lbl[i] = (uint8_t)(i % 10);
    if (f->bad_label_at >= 0)
        lbl[f->bad_label_at] = 10;
    snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir, prefix,
             ext);
    int lbl_ndim = (int)(f->lbl_magic & 0xff);
    uint32_t lbl_dims[4] = {f->n_lbl, 1, 1, 1};
    write_file(path, f->gzip, f->lbl_magic, lbl_ndim > 4 ? 4 : lbl_ndim,
               lbl_dims, lbl, f->n_lbl);
    free(lbl);

    /* Images: the header's dimension count comes from the magic; two
     * dimensions are written as (n, rows * cols). */
    size_t promised = (size_t)f->n_img * f->rows * f->cols;
    size_t bytes = (size_t)((long)promised + f->img_payload_delta);
    uint8_t *img = malloc(bytes + 1);
    assert_non_null(img);
    size_t pixels = (size_t)f->rows * f->cols;
    for (size_t k = 0; k < bytes; k++)
        img[k] = fx_pixel((uint32_t)(k / pixels), (uint32_t)(k % pixels));
    int img_ndim = (int)(f->img_magic & 0xff);
    uint32_t img_dims[4] = {f->n_img, f->rows, f->cols, 1};
    if (img_ndim == 2)
        img_dims[1] = f->rows * f->cols;
    snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir, prefix,
             ext);
    write_file(path, f->gzip, f->img_magic, img_ndim > 4 ? 4 : img_ndim,
               img_dims, img, bytes);
    free(img);
}

/* Load the train split of a directory holding fixture f. */
static od_status load_fx(const fx *f, char *dir, size_t len, int limit,
                         od_dataset *d)
{
    new_dir(dir, len);
    fx_write(dir, "train", f);
    od_clear_error();
    od_status st = od_fmnist_load_split(dir, OD_FMNIST_TRAIN, limit, d);
    if (st != OD_OK) {
        /* A refused load leaves nothing behind. */
        assert_int_equal(d->n, 0);
        assert_null(d->x);
        assert_null(d->y);
    }
    return st;
}

/* ---- Datasets ------------------------------------------------------------- */

/* A dataset of 5 samples shaped (2, 3) with 2 labels each and groups:
 * x[i][k] = 100 i + k, y[i] = (i % 4, (i + 1) % 4), group[i] = 7 i. */
static void make_small(od_dataset *d)
{
    const int dims[2] = {2, 3};
    assert_int_equal(od_dataset_alloc(d, "small", 5, 2, dims, 2, 4, 1),
                     OD_OK);
    assert_int_equal(d->sample_size, 6);
    for (int i = 0; i < 5; i++) {
        for (int k = 0; k < 6; k++)
            d->x[i * 6 + k] = (float)(100 * i + k);
        d->y[i * 2] = i % 4;
        d->y[i * 2 + 1] = (i + 1) % 4;
        d->group[i] = 7 * i;
    }
    const char *names[4] = {"a", "b", "c", "d"};
    assert_int_equal(od_dataset_set_class_names(d, names), OD_OK);
}

static void test_dataset_gather(void **state)
{
    (void)state;
    od_dataset d;
    make_small(&d);
    assert_int_equal(od_dataset_check(&d), OD_OK);

    /* Repeats and any order are allowed. */
    const int32_t idx[4] = {4, 0, 4, 2};
    float x[4 * 6];
    int32_t y[4 * 2];
    memset(x, 0xff, sizeof x);
    memset(y, 0xff, sizeof y);
    assert_int_equal(od_dataset_gather(&d, idx, 4, x, y), OD_OK);
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 6; k++)
            assert_true(x[i * 6 + k] == (float)(100 * idx[i] + k));
        assert_int_equal(y[i * 2], idx[i] % 4);
        assert_int_equal(y[i * 2 + 1], (idx[i] + 1) % 4);
    }

    /* Labels only. */
    int32_t y2[2] = {-5, -5};
    const int32_t one[1] = {3};
    assert_int_equal(od_dataset_gather(&d, one, 1, NULL, y2), OD_OK);
    assert_int_equal(y2[0], 3);
    assert_int_equal(y2[1], 0);

    /* Out of range, either side. */
    const int32_t bad_hi[2] = {1, 5};
    assert_refused(od_dataset_gather(&d, bad_hi, 2, x, y), OD_ERR_INVALID,
                   "sample index 5", "0..4");
    const int32_t bad_lo[1] = {-1};
    assert_refused(od_dataset_gather(&d, bad_lo, 1, x, y), OD_ERR_INVALID,
                   "sample index -1", NULL);

    assert_int_equal(od_dataset_bytes(&d), 5 * 6 * 4 + 5 * 2 * 4 + 5 * 4);
    od_dataset_free(&d);
    assert_null(d.x);
    od_dataset_free(&d);  /* twice is harmless */
}

static void test_dataset_subset(void **state)
{
    (void)state;
    od_dataset d, s, h;
    make_small(&d);

    const int32_t idx[3] = {3, 1, 3};
    assert_int_equal(od_dataset_subset(&d, idx, 3, "picked", &s), OD_OK);
    assert_string_equal(s.name, "picked");
    assert_int_equal(s.n, 3);
    assert_int_equal(s.sample_ndim, 2);
    assert_int_equal(s.sample_dims[0], 2);
    assert_int_equal(s.sample_dims[1], 3);
    assert_int_equal(s.labels_per_sample, 2);
    assert_int_equal(s.num_classes, 4);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 6; k++)
            assert_true(s.x[i * 6 + k] == (float)(100 * idx[i] + k));
        assert_int_equal(s.y[i * 2], idx[i] % 4);
        assert_int_equal(s.group[i], 7 * idx[i]);
    }
    assert_string_equal(s.class_names[3], "d");

    /* The first two samples, keeping the source's name. */
    assert_int_equal(od_dataset_subset(&d, NULL, 2, NULL, &h), OD_OK);
    assert_string_equal(h.name, "small");
    assert_int_equal(h.n, 2);
    assert_true(h.x[11] == 105.0f);  /* sample 1, element 5 */
    assert_int_equal(h.y[3], 2);
    assert_int_equal(h.group[1], 7);

    od_dataset e;
    assert_refused(od_dataset_subset(&d, NULL, 6, NULL, &e), OD_ERR_INVALID,
                   "first 6", "holds 5");
    assert_refused(od_dataset_subset(&d, NULL, 0, NULL, &e), OD_ERR_INVALID,
                   "at least one", NULL);
    const int32_t bad[1] = {9};
    assert_refused(od_dataset_subset(&d, bad, 1, NULL, &e), OD_ERR_INVALID,
                   "sample index 9", NULL);
    assert_null(e.x);

    od_dataset_free(&h);
    od_dataset_free(&s);
    od_dataset_free(&d);
}

static void test_dataset_check_and_counts(void **state)
{
    (void)state;
    od_dataset d;
    make_small(&d);
    int64_t counts[4];
    od_dataset_class_counts(&d, counts);
    /* Labels (0,1) (1,2) (2,3) (3,0) (0,1). */
    assert_int_equal(counts[0], 3);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 2);
    assert_int_equal(counts[3], 2);

    /* -1 marks "no label" and is accepted but not counted. */
    d.y[5] = -1;
    assert_int_equal(od_dataset_check(&d), OD_OK);
    od_dataset_class_counts(&d, counts);
    assert_int_equal(counts[3], 1);

    d.y[7] = 4;
    assert_refused(od_dataset_check(&d), OD_ERR_FORMAT, "sample 3",
                   "label 4");
    d.y[7] = -2;
    assert_refused(od_dataset_check(&d), OD_ERR_FORMAT, "label -2", NULL);
    od_dataset_free(&d);

    const int dims0[1] = {0};
    assert_refused(od_dataset_alloc(&d, "z", 3, 1, dims0, 1, 2, 0),
                   OD_ERR_INVALID, "dimension 0 is 0", NULL);
    assert_null(d.x);
    const int dims1[1] = {4};
    assert_refused(od_dataset_alloc(&d, "z", 0, 1, dims1, 1, 2, 0),
                   OD_ERR_INVALID, "0 samples", NULL);
    assert_refused(od_dataset_alloc(&d, "z", 3, 4, dims1, 1, 2, 0),
                   OD_ERR_INVALID, "4 dimensions", NULL);
    const int huge[3] = {1 << 30, 1 << 30, 1 << 30};
    assert_refused(od_dataset_alloc(&d, "z", 3, 3, huge, 1, 2, 0),
                   OD_ERR_INVALID, "too large", NULL);
}

/* ---- Fashion-MNIST loader on fixtures --------------------------------------- */

static void check_fixture_data(const od_dataset *d, int n)
{
    assert_int_equal(d->n, n);
    assert_string_equal(d->name, "fashion-mnist/train");
    assert_int_equal(d->sample_ndim, 3);
    assert_int_equal(d->sample_dims[0], 1);
    assert_int_equal(d->sample_dims[1], 28);
    assert_int_equal(d->sample_dims[2], 28);
    assert_int_equal(d->sample_size, 784);
    assert_int_equal(d->labels_per_sample, 1);
    assert_int_equal(d->num_classes, 10);
    assert_null(d->group);
    assert_string_equal(d->class_names[9], "Ankle boot");
    for (int i = 0; i < n; i++) {
        assert_int_equal(d->y[i], i % 10);
        for (int k = 0; k < 784; k++)
            assert_true(d->x[(size_t)i * 784 + (size_t)k] ==
                        (float)fx_pixel((uint32_t)i, (uint32_t)k) / 255.0f);
    }
    assert_int_equal(od_dataset_check(d), OD_OK);
}

static void test_fmnist_good_fixture(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;

    /* 13 images: a prime, and more than one conversion chunk is not needed
     * for correctness but the limit below cuts inside the file. */
    fx f = fx_good(13);
    assert_int_equal(load_fx(&f, dir, sizeof dir, 0, &d), OD_OK);
    check_fixture_data(&d, 13);
    assert_true(d.x[0] == 0.0f);
    od_dataset_free(&d);

    /* A limit keeps the first samples, yet the file is still read whole. */
    assert_int_equal(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 5, &d),
                     OD_OK);
    check_fixture_data(&d, 5);
    od_dataset_free(&d);
    assert_int_equal(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 100, &d),
                     OD_OK);
    assert_int_equal(d.n, 13);
    od_dataset_free(&d);
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, -1, &d),
                   OD_ERR_INVALID, "-1", NULL);

    /* Plain files are read when there is no .gz. */
    f.gzip = 0;
    assert_int_equal(load_fx(&f, dir, sizeof dir, 0, &d), OD_OK);
    check_fixture_data(&d, 13);
    od_dataset_free(&d);

    /* More images than one conversion chunk (512). */
    f = fx_good(1031);
    assert_int_equal(load_fx(&f, dir, sizeof dir, 0, &d), OD_OK);
    check_fixture_data(&d, 1031);
    od_dataset_free(&d);
}

static void test_fmnist_truncated(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;
    fx f = fx_good(7);
    f.img_payload_delta = -100;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "truncated", "train-images-idx3-ubyte.gz");

    /* Truncated beyond the kept samples: still refused. */
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 2, &d),
                   OD_ERR_FORMAT, "truncated", NULL);

    /* A header cut short. */
    f = fx_good(7);
    new_dir(dir, sizeof dir);
    fx_write(dir, "train", &f);
    char path[600];
    snprintf(path, sizeof path, "%s/train-labels-idx1-ubyte.gz", dir);
    const uint8_t two[2] = {0, 0};
    write_file(path, 1, 0x00000801u, 0, NULL, two, 0);
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 0, &d),
                   OD_ERR_FORMAT, "truncated header",
                   "train-labels-idx1-ubyte.gz");
}

/* A gzip stream cut in the middle, or with a damaged byte, is refused:
 * neither is read as a short but valid file. */
static void test_fmnist_damaged_gzip(void **state)
{
    (void)state;
    char dir[512], path[600];
    od_dataset d;
    fx f = fx_good(64);
    new_dir(dir, sizeof dir);
    fx_write(dir, "train", &f);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 0, &d),
                   OD_ERR_FORMAT, "truncated", "cut short");
    assert_null(d.x);

    /* Flip the bits of one compressed byte: zlib reports bad data or, at
     * the latest, a wrong checksum at the end of the stream. */
    fx_write(dir, "train", &f);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 200, SEEK_SET), 0);
    int c = fgetc(fp);
    assert_true(c != EOF);
    assert_int_equal(fseek(fp, 200, SEEK_SET), 0);
    assert_int_equal(fputc(c ^ 0xff, fp), c ^ 0xff);
    assert_int_equal(fclose(fp), 0);
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, 0, &d),
                   OD_ERR_FORMAT, "corrupt compressed data",
                   "train-images-idx3-ubyte.gz");
    assert_null(d.x);
}

static void test_fmnist_trailing_garbage(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;
    fx f = fx_good(7);
    f.img_payload_delta = 3;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "trailing garbage", "train-images-idx3-ubyte.gz");
}

static void test_fmnist_wrong_magic(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;
    fx f = fx_good(7);
    f.img_magic = 0x08030000u;  /* byte-swapped */
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "wrong magic", "train-images-idx3-ubyte.gz");

    f = fx_good(7);
    f.lbl_magic = 0x00000d01u;  /* float elements */
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "wrong magic", "train-labels-idx1-ubyte.gz");
}

static void test_fmnist_wrong_dims(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;

    /* Images stored as (n, 784). */
    fx f = fx_good(7);
    f.img_magic = 0x00000802u;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "2 dimensions, expected 3", "train-images-idx3-ubyte.gz");

    /* 32x32 images. */
    f = fx_good(7);
    f.rows = 32;
    f.cols = 32;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "32x32, expected 28x28", "train-images-idx3-ubyte.gz");

    /* 28x27: a transposed or cropped file. */
    f = fx_good(7);
    f.cols = 27;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "28x27", NULL);
}

static void test_fmnist_count_mismatch(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;
    fx f = fx_good(7);
    f.n_lbl = 6;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_MISMATCH,
                   "holds 7 images", "6 labels");
}

static void test_fmnist_label_range(void **state)
{
    (void)state;
    char dir[512];
    od_dataset d;
    fx f = fx_good(7);
    f.bad_label_at = 4;
    assert_refused(load_fx(&f, dir, sizeof dir, 0, &d), OD_ERR_FORMAT,
                   "label 10 of item 4 is out of range",
                   "train-labels-idx1-ubyte.gz");
}

static void test_fmnist_missing(void **state)
{
    (void)state;
    char dir[512], nowhere[600];
    od_dataset d;

    /* No directory. */
    new_dir(dir, sizeof dir);
    snprintf(nowhere, sizeof nowhere, "%s/not-there", dir);
    assert_refused(od_fmnist_load_split(nowhere, OD_FMNIST_TEST, 0, &d),
                   OD_ERR_IO, "apt-get install dataset-fashion-mnist",
                   nowhere);
    assert_non_null(strstr(od_error_message(), "not installed"));

    /* A directory without the files. */
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TEST, 0, &d),
                   OD_ERR_IO, "apt-get install dataset-fashion-mnist",
                   "t10k-labels-idx1-ubyte.gz");

    /* Labels present, images absent. */
    fx f = fx_good(3);
    fx_write(dir, "t10k", &f);
    char path[600];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", dir);
    assert_int_equal(unlink(path), 0);
    assert_refused(od_fmnist_load_split(dir, OD_FMNIST_TEST, 0, &d),
                   OD_ERR_IO, "apt-get install dataset-fashion-mnist",
                   "t10k-images-idx3-ubyte");

    /* od_idx_open on its own keeps errno for a missing file. */
    od_idx_file fi;
    errno = 0;
    od_status st = od_idx_open(&fi, path, 3);
    int err = errno;
    assert_refused(st, OD_ERR_IO, "cannot open", path);
    assert_int_equal(err, ENOENT);
}

static void test_fmnist_dir_resolution(void **state)
{
    (void)state;
    char dir[512];
    od_dataset train, test;
    new_dir(dir, sizeof dir);
    fx f = fx_good(11);
    fx_write(dir, "train", &f);
    f = fx_good(3);
    fx_write(dir, "t10k", &f);

    const char *saved = getenv(OD_FMNIST_DIR_ENV);
    char *saved_copy = saved ? strdup(saved) : NULL;

    assert_int_equal(setenv(OD_FMNIST_DIR_ENV, dir, 1), 0);
    assert_string_equal(od_fmnist_resolve_dir(NULL), dir);
    assert_string_equal(od_fmnist_resolve_dir(""), dir);
    assert_string_equal(od_fmnist_resolve_dir("/x"), "/x");
    assert_int_equal(od_fmnist_load(NULL, 0, 2, &train, &test), OD_OK);
    assert_int_equal(train.n, 11);
    assert_int_equal(test.n, 2);
    assert_string_equal(test.name, "fashion-mnist/test");
    od_dataset_free(&train);
    od_dataset_free(&test);

    /* A failing test split leaves neither split behind. */
    assert_refused(od_fmnist_load("/nonexistent/ondev", 0, 0, &train, &test),
                   OD_ERR_IO, "/nonexistent/ondev", NULL);
    assert_null(train.x);
    assert_null(test.x);

    assert_int_equal(unsetenv(OD_FMNIST_DIR_ENV), 0);
    assert_string_equal(od_fmnist_resolve_dir(NULL), OD_FMNIST_DEFAULT_DIR);
    if (saved_copy) {
        setenv(OD_FMNIST_DIR_ENV, saved_copy, 1);
        free(saved_copy);
    }
}

/* The files of Debian's dataset-fashion-mnist, when installed. */
static void test_fmnist_real(void **state)
{
    (void)state;
    struct stat sb;
    if (stat(OD_FMNIST_DEFAULT_DIR "/train-labels-idx1-ubyte.gz", &sb) != 0) {
        print_message("dataset-fashion-mnist not installed; skipped\n");
        skip();
    }
    od_dataset train, test;
    od_status st = od_fmnist_load(OD_FMNIST_DEFAULT_DIR, 0, 0, &train,
                                  &test);
    if (st != OD_OK)
        print_error("%s\n", od_error_message());
    assert_int_equal(st, OD_OK);
    assert_int_equal(train.n, 60000);
    assert_int_equal(test.n, 10000);
    assert_int_equal(train.y[0], 9);  /* an ankle boot */
    assert_int_equal(test.y[0], 9);

    /* Pixels in [0, 1], both ends reached. */
    float lo = 1.0f, hi = 0.0f;
    for (size_t i = 0; i < (size_t)train.n * train.sample_size; i++) {
        lo = train.x[i] < lo ? train.x[i] : lo;
        hi = train.x[i] > hi ? train.x[i] : hi;
    }
    assert_true(lo == 0.0f && hi == 1.0f);

    /* The release is balanced: 6,000 and 1,000 images per class. */
    int64_t counts[10];
    od_dataset_class_counts(&train, counts);
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], 6000);
    od_dataset_class_counts(&test, counts);
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], 1000);

    /* Images and labels line up: a nearest-centroid classifier (class means
     * of the training images, squared Euclidean distance) scores 67.68 % on
     * the test set as computed with NumPy from the same files; transposed
     * or misaligned images drop it to about 10 %. */
    double *centroid = calloc(10 * 784, sizeof *centroid);
    assert_non_null(centroid);
    for (int i = 0; i < train.n; i++)
        for (int k = 0; k < 784; k++)
            centroid[train.y[i] * 784 + k] += train.x[(size_t)i * 784 + k];
    for (int c = 0; c < 10; c++)
        for (int k = 0; k < 784; k++)
            centroid[c * 784 + k] /= 6000.0;
    int correct = 0;
    for (int i = 0; i < test.n; i++) {
        int best = -1;
        double best_d = 0.0;
        for (int c = 0; c < 10; c++) {
            double dist = 0.0;
            for (int k = 0; k < 784; k++) {
                double e = test.x[(size_t)i * 784 + k] - centroid[c * 784 + k];
                dist += e * e;
            }
            if (best < 0 || dist < best_d) {
                best = c;
                best_d = dist;
            }
        }
        correct += best == test.y[i];
    }
    free(centroid);
    print_message("nearest-centroid test accuracy %.4f\n",
                  correct / 10000.0);
    assert_in_range(correct, 6768 - 20, 6768 + 20);

    od_dataset_free(&train);
    od_dataset_free(&test);
}

/* ---- Models and registry ------------------------------------------------- */

typedef struct model_case {
    od_status (*build)(od_ctx *ctx, od_model **out);
    size_t params;
    const char *names[8];   /* parameter names in order */
    int weight_dims[4][4];  /* shapes of the weights, in layer order */
    const char *layers[12]; /* "name kind" of every layer, in order */
} model_case;

static void check_model(const model_case *mc)
{
    od_arena *arena = od_arena_create(0);
    assert_non_null(arena);
    od_ctx ctx = {.arena = arena, .pool = NULL, .trace = NULL, .seed = 3};
    od_model *m = NULL;
    od_status st = mc->build(&ctx, &m);
    if (st != OD_OK)
        print_error("%s\n", od_error_message());
    assert_int_equal(st, OD_OK);
    assert_non_null(m);
    assert_int_equal(od_model_param_count(m, 0), mc->params);

    /* The layers, in order. */
    int nlayers = 0;
    while (mc->layers[nlayers])
        nlayers++;
    assert_int_equal(m->nlayers, nlayers);
    for (int i = 0; i < nlayers; i++) {
        char got[80];
        snprintf(got, sizeof got, "%s %s", m->layers[i]->name,
                 m->layers[i]->vt->kind);
        assert_string_equal(got, mc->layers[i]);
    }

    /* PyTorch-style names, weights then biases, layer by layer. */
    assert_int_equal(m->nparams, 8 - (mc->names[6] ? 0 : 2));
    for (int i = 0; i < m->nparams; i++) {
        assert_string_equal(m->params[i]->name, mc->names[i]);
        if (i % 2 == 0) {
            const od_tensor *w = &m->params[i]->value;
            for (int k = 0; k < w->ndim; k++)
                assert_int_equal(w->dims[k], mc->weight_dims[i / 2][k]);
        }
    }

    /* A batch of 64 through the initialised model gives (64, 10) logits. */
    int out_ndim = 0, out_dims[OD_MAX_DIMS] = {0};
    const int in_dims[4] = {64, 1, 28, 28};
    assert_int_equal(od_model_check_shape(m, 4, in_dims, &out_ndim, out_dims),
                     OD_OK);
    assert_int_equal(out_ndim, 2);
    assert_int_equal(out_dims[0], 64);
    assert_int_equal(out_dims[1], 10);

    od_model_init(m, 42);
    od_tensor x, y;
    assert_int_equal(od_tensor_alloc(arena, OD_MEM_ACT, &x, 4, in_dims),
                     OD_OK);
    od_rng rng;
    od_rng_seed(&rng, 7, 0);
    for (size_t i = 0; i < x.size; i++)
        x.data[i] = od_rng_uniformf(&rng);
    st = od_model_forward(m, &x, 0, &y);
    if (st != OD_OK)
        print_error("%s\n", od_error_message());
    assert_int_equal(st, OD_OK);
    assert_int_equal(y.ndim, 2);
    assert_int_equal(y.dims[0], 64);
    assert_int_equal(y.dims[1], 10);
    /* Initialised weights give finite logits that depend on the input. */
    int differ = 0;
    for (size_t i = 0; i < y.size; i++) {
        assert_true(isfinite(y.data[i]));
        differ |= y.data[i % 10] != y.data[10 + i % 10];
    }
    assert_true(differ);

    od_model_destroy(m);
    od_arena_destroy(arena);
}

static void test_model_mlp(void **state)
{
    (void)state;
    const model_case mc = {
        od_fmnist_build_mlp, 269322,
        {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight",
         "fc3.bias", NULL, NULL},
        {{256, 784}, {256, 256}, {10, 256}, {0}},
        {"flatten flatten", "fc1 linear", "relu1 relu", "fc2 linear",
         "relu2 relu", "fc3 linear", NULL},
    };
    check_model(&mc);
}

static void test_model_cnn(void **state)
{
    (void)state;
    const model_case mc = {
        od_fmnist_build_cnn, 184586,
        {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"},
        {{32, 1, 5, 5}, {64, 32, 5, 5}, {128, 1024}, {10, 128}},
        {"conv1 conv2d", "relu1+pool1 relu+maxpool2d", "conv2 conv2d",
         "relu2+pool2 relu+maxpool2d", "flatten flatten", "fc1 linear",
         "relu3 relu", "fc2 linear", NULL},
    };
    check_model(&mc);
}

static void test_model_cnn_tanh(void **state)
{
    (void)state;
    const model_case mc = {
        od_fmnist_build_cnn_tanh, 184586,
        {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"},
        {{32, 1, 5, 5}, {64, 32, 5, 5}, {128, 1024}, {10, 128}},
        {"conv1 conv2d", "tanh1 tanh", "pool1 maxpool2d", "conv2 conv2d",
         "tanh2 tanh", "pool2 maxpool2d", "flatten flatten", "fc1 linear",
         "tanh3 tanh", "fc2 linear", NULL},
    };
    check_model(&mc);
}

static void test_registry(void **state)
{
    (void)state;
    assert_true(od_workload_count() >= 2);
    for (int i = 0; i < od_workload_count(); i++) {
        const od_workload *w = od_workload_at(i);
        assert_non_null(w->name);
        assert_non_null(w->description);
        assert_non_null(w->data_source);
        assert_non_null(w->metrics);
        assert_non_null(w->load);
        assert_non_null(w->build_model);
        assert_true(w->num_classes >= 2);
        assert_ptr_equal(od_workload_find(w->name), w);
    }
    const od_workload *mlp = od_workload_find("fmnist-mlp");
    const od_workload *cnn = od_workload_find("fmnist-cnn");
    assert_non_null(mlp);
    assert_non_null(cnn);
    assert_ptr_equal(mlp->build_model, od_fmnist_build_mlp);
    assert_ptr_equal(cnn->build_model, od_fmnist_build_cnn);
    assert_int_equal(cnn->sample_dims[2], 28);
    assert_null(od_workload_find("fmnist"));
    assert_null(od_workload_find(NULL));

    const od_workload *w = NULL;
    assert_refused(od_workload_lookup("cifar", &w), OD_ERR_INVALID,
                   "'cifar'", "fmnist-mlp, fmnist-cnn");
    assert_null(w);
    assert_int_equal(od_workload_lookup("fmnist-cnn", &w), OD_OK);
    assert_ptr_equal(w, cnn);

    /* Load through the registry with options. */
    char dir[512];
    new_dir(dir, sizeof dir);
    fx f = fx_good(9);
    fx_write(dir, "train", &f);
    fx_write(dir, "t10k", &f);
    od_workload_opts opts;
    od_workload_opts_init(&opts);
    assert_null(opts.data_dir);
    assert_int_equal(opts.train_subset, 0);
    opts.data_dir = dir;
    opts.train_subset = 4;
    od_dataset train, test;
    assert_int_equal(cnn->load(&opts, &train, &test), OD_OK);
    assert_int_equal(train.n, 4);
    assert_int_equal(test.n, 9);
    assert_int_equal(train.sample_size, 784);
    od_dataset_free(&train);
    od_dataset_free(&test);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dataset_gather),
        cmocka_unit_test(test_dataset_subset),
        cmocka_unit_test(test_dataset_check_and_counts),
        cmocka_unit_test(test_fmnist_good_fixture),
        cmocka_unit_test(test_fmnist_truncated),
        cmocka_unit_test(test_fmnist_damaged_gzip),
        cmocka_unit_test(test_fmnist_trailing_garbage),
        cmocka_unit_test(test_fmnist_wrong_magic),
        cmocka_unit_test(test_fmnist_wrong_dims),
        cmocka_unit_test(test_fmnist_count_mismatch),
        cmocka_unit_test(test_fmnist_label_range),
        cmocka_unit_test(test_fmnist_missing),
        cmocka_unit_test(test_fmnist_dir_resolution),
        cmocka_unit_test(test_fmnist_real),
        cmocka_unit_test(test_model_mlp),
        cmocka_unit_test(test_model_cnn),
        cmocka_unit_test(test_model_cnn_tanh),
        cmocka_unit_test(test_registry),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
