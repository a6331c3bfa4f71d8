/* Writing result files: values, tables appended row by row, and the
 * rename that makes a file complete. */
#include "results/results.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "results/store_internal.h"

/* ---- Errors ------------------------------------------------------------- */

static _Thread_local char od__res_msg[1024];

const char *od_res_error(void) { return od__res_msg; }

int od_res_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(od__res_msg, sizeof od__res_msg, fmt, ap);
    va_end(ap);
    return -1;
}

void od__res_quiet_hdf5(void)
{
    /* Failures are reported through od_res_error, not HDF5's own stack
     * dump on stderr. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

char *od__res_strdup(const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s ? s : "", n);
    return p;
}

/* ---- The writer --------------------------------------------------------- */

/* Rows a table keeps in memory before writing them. */
#define OD__ROWS_PER_BLOCK 256

struct od_res_table {
    od_res_writer *w;
    hid_t group;
    int ncols;
    char **cols;
    char **units;
    hid_t *dsets;        /* (ncols) H5I_INVALID_HID until materialised */
    double *buf;         /* (OD__ROWS_PER_BLOCK, ncols) */
    size_t nbuf;         /* rows in buf */
    size_t nwritten;     /* rows in the file */
    od_res_table *next;
};

struct od_res_writer {
    hid_t file;
    char *path;          /* final name */
    char *part;          /* name while writing */
    od_res_table *tables;
};

static hid_t od__text_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

/* Open group path under the root, creating it and its parents. */
static hid_t od__group(od_res_writer *w, const char *path)
{
    if (!path || !path[0] || strcmp(path, "/") == 0)
        return H5Gopen2(w->file, "/", H5P_DEFAULT);
    if (H5Lexists(w->file, path, H5P_DEFAULT) > 0)
        return H5Gopen2(w->file, path, H5P_DEFAULT);
    /* Members keep their creation order, so that a table's columns read
     * back in the order they were declared. */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED |
                                         H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(w->file, path, lcpl, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    H5Pclose(lcpl);
    return g;
}

static int od__attr_text(hid_t obj, const char *name, const char *text)
{
    hid_t type = od__text_type();
    hid_t space = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char *v = text ? text : "";
    herr_t e = a < 0 ? -1 : H5Awrite(a, type, &v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
    return e < 0 ? -1 : 0;
}

static int od__attr_int(hid_t obj, const char *name, int64_t value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    if (H5Aexists(obj, name) > 0)
        H5Adelete(obj, name);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, space, H5P_DEFAULT,
                         H5P_DEFAULT);
    herr_t e = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return e < 0 ? -1 : 0;
}

int od_res_create(const char *path, const char *kind, od_res_writer **out)
{
    *out = NULL;
    od__res_quiet_hdf5();
    od_res_writer *w = calloc(1, sizeof *w);
    if (!w)
        return od_res_fail("out of memory");
    w->path = od__res_strdup(path);
    w->part = malloc(strlen(path) + sizeof OD_RES_PART_SUFFIX);
    if (!w->path || !w->part) {
        free(w->path);
        free(w->part);
        free(w);
        return od_res_fail("out of memory");
    }
    sprintf(w->part, "%s%s", path, OD_RES_PART_SUFFIX);

    w->file = H5Fcreate(w->part, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        int rc = od_res_fail("cannot create %s: check that its directory "
                             "exists and is writable", w->part);
        free(w->path);
        free(w->part);
        free(w);
        return rc;
    }

    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    hid_t root = H5Gopen2(w->file, "/", H5P_DEFAULT);
    int rc = od__attr_text(root, "format", OD_RES_FORMAT);
    rc |= od__attr_int(root, "format_version", OD_RES_FORMAT_VERSION);
    rc |= od__attr_text(root, "kind", kind);
    rc |= od__attr_text(root, "created_utc", when);
    rc |= od__attr_int(root, "complete", 0);
    H5Gclose(root);
    if (rc) {
        od_res_discard(w);
        return od_res_fail("cannot write to %s", path);
    }
    *out = w;
    return 0;
}

int od_res_put_text(od_res_writer *w, const char *group, const char *name,
                    const char *text)
{
    hid_t g = od__group(w, group);
    if (g < 0)
        return od_res_fail("%s: cannot create group %s", w->path, group);
    int rc = od__attr_text(g, name, text);
    H5Gclose(g);
    return rc ? od_res_fail("%s: cannot write %s/%s", w->path, group, name)
              : 0;
}

/* A dataset of the given type and space under group, with units. */
static int od__put_dataset(od_res_writer *w, const char *group,
                           const char *name, hid_t file_type,
                           hid_t mem_type, hid_t space, const void *data,
                           const char *units)
{
    hid_t g = od__group(w, group);
    if (g < 0)
        return od_res_fail("%s: cannot create group %s", w->path, group);
    if (H5Lexists(g, name, H5P_DEFAULT) > 0)
        H5Ldelete(g, name, H5P_DEFAULT);
    hid_t d = H5Dcreate2(g, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL,
                                     H5P_DEFAULT, data);
    if (e >= 0 && units)
        e = od__attr_text(d, "units", units);
    if (d >= 0)
        H5Dclose(d);
    H5Gclose(g);
    return e < 0 ? od_res_fail("%s: cannot write %s/%s", w->path, group,
                               name)
                 : 0;
}

int od_res_put_num(od_res_writer *w, const char *group, const char *name,
                   double value, const char *units)
{
    hid_t space = H5Screate(H5S_SCALAR);
    int rc = od__put_dataset(w, group, name, H5T_IEEE_F64LE,
                             H5T_NATIVE_DOUBLE, space, &value,
                             units ? units : "1");
    H5Sclose(space);
    return rc;
}

int od_res_put_int(od_res_writer *w, const char *group, const char *name,
                   int64_t value, const char *units)
{
    hid_t space = H5Screate(H5S_SCALAR);
    int rc = od__put_dataset(w, group, name, H5T_STD_I64LE,
                             H5T_NATIVE_INT64, space, &value,
                             units ? units : "1");
    H5Sclose(space);
    return rc;
}

int od_res_put_column(od_res_writer *w, const char *group, const char *name,
                      const double *v, size_t n, const char *units)
{
    hsize_t dims[1] = {n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    int rc = od__put_dataset(w, group, name, H5T_IEEE_F64LE,
                             H5T_NATIVE_DOUBLE, space, v,
                             units ? units : "1");
    H5Sclose(space);
    return rc;
}

int od_res_put_strings(od_res_writer *w, const char *group,
                       const char *name, const char *const *v, size_t n)
{
    hsize_t dims[1] = {n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t type = od__text_type();
    int rc = od__put_dataset(w, group, name, type, type, space, v, NULL);
    H5Tclose(type);
    H5Sclose(space);
    return rc;
}

/* ---- Tables ------------------------------------------------------------- */

int od_res_table_create(od_res_writer *w, const char *name, int ncols,
                        const char *const *cols, const char *const *units,
                        od_res_table **out)
{
    *out = NULL;
    od_res_table *t = calloc(1, sizeof *t);
    if (!t)
        return od_res_fail("out of memory");
    t->w = w;
    t->ncols = ncols;
    t->cols = calloc((size_t)ncols, sizeof *t->cols);
    t->units = calloc((size_t)ncols, sizeof *t->units);
    t->dsets = malloc((size_t)ncols * sizeof *t->dsets);
    t->buf = malloc((size_t)ncols * OD__ROWS_PER_BLOCK * sizeof *t->buf);
    int ok = t->cols && t->units && t->dsets && t->buf;
    for (int c = 0; ok && c < ncols; c++) {
        t->cols[c] = od__res_strdup(cols[c]);
        t->units[c] = od__res_strdup(units[c] ? units[c] : "1");
        t->dsets[c] = H5I_INVALID_HID;
        ok = t->cols[c] && t->units[c];
    }
    t->group = ok ? od__group(w, name) : H5I_INVALID_HID;
    t->next = w->tables;
    w->tables = t;   /* freed with w from here on */
    if (!ok)
        return od_res_fail("out of memory");
    if (t->group < 0)
        return od_res_fail("%s: cannot create table %s", w->path, name);
    *out = t;
    return 0;
}

/* Create column c as an extendible dataset of nrows rows (NaN-filled). */
static int od__column_create(od_res_table *t, int c, size_t nrows)
{
    hsize_t dims[1] = {nrows}, maxdims[1] = {H5S_UNLIMITED};
    hsize_t chunk[1] = {1024};
    hid_t space = H5Screate_simple(1, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, chunk);
    double fill = NAN;
    H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, &fill);
    H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC);
    if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t d = H5Dcreate2(t->group, t->cols[c], H5T_IEEE_F64LE, space,
                         H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (d < 0 || od__attr_text(d, "units", t->units[c]))
        return od_res_fail("%s: cannot create column %s", t->w->path,
                           t->cols[c]);
    t->dsets[c] = d;
    return 0;
}

/* Write the buffered rows: extend every existing column, create the ones
 * whose first number is in the buffer. */
static int od__table_write(od_res_table *t)
{
    if (t->nbuf == 0)
        return 0;
    double *col = malloc(t->nbuf * sizeof *col);
    if (!col)
        return od_res_fail("out of memory");
    int rc = 0;
    for (int c = 0; c < t->ncols && rc == 0; c++) {
        int any = 0;
        for (size_t i = 0; i < t->nbuf; i++) {
            col[i] = t->buf[i * (size_t)t->ncols + (size_t)c];
            any |= !isnan(col[i]);
        }
        if (t->dsets[c] < 0 && !any)
            continue;
        if (t->dsets[c] < 0 && od__column_create(t, c, t->nwritten)) {
            rc = -1;
            break;
        }
        hsize_t size[1] = {t->nwritten + t->nbuf};
        hsize_t start[1] = {t->nwritten}, count[1] = {t->nbuf};
        herr_t e = H5Dset_extent(t->dsets[c], size);
        hid_t fspace = e < 0 ? -1 : H5Dget_space(t->dsets[c]);
        hid_t mspace = H5Screate_simple(1, count, NULL);
        if (fspace >= 0)
            e = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL,
                                    count, NULL);
        if (fspace >= 0 && e >= 0)
            e = H5Dwrite(t->dsets[c], H5T_NATIVE_DOUBLE, mspace, fspace,
                         H5P_DEFAULT, col);
        if (fspace >= 0)
            H5Sclose(fspace);
        H5Sclose(mspace);
        if (fspace < 0 || e < 0)
            rc = od_res_fail("%s: cannot append to column %s", t->w->path,
                             t->cols[c]);
    }
    free(col);
    if (rc == 0) {
        t->nwritten += t->nbuf;
        t->nbuf = 0;
        H5Fflush(t->w->file, H5F_SCOPE_GLOBAL);
    }
    return rc;
}

int od_res_table_append(od_res_table *t, const double *row)
{
    memcpy(t->buf + t->nbuf * (size_t)t->ncols, row,
           (size_t)t->ncols * sizeof *row);
    if (++t->nbuf == OD__ROWS_PER_BLOCK)
        return od__table_write(t);
    return 0;
}

size_t od_res_table_rows(const od_res_table *t)
{
    return t->nwritten + t->nbuf;
}

int od_res_flush(od_res_writer *w)
{
    for (od_res_table *t = w->tables; t; t = t->next)
        if (od__table_write(t))
            return -1;
    if (H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0)
        return od_res_fail("%s: cannot flush", w->part);
    return 0;
}

static void od__writer_close(od_res_writer *w)
{
    od_res_table *t = w->tables;
    while (t) {
        od_res_table *next = t->next;
        for (int c = 0; c < t->ncols; c++) {
            if (t->dsets && t->dsets[c] >= 0)
                H5Dclose(t->dsets[c]);
            if (t->cols)
                free(t->cols[c]);
            if (t->units)
                free(t->units[c]);
        }
        if (t->group >= 0)
            H5Gclose(t->group);
        free(t->cols);
        free(t->units);
        free(t->dsets);
        free(t->buf);
        free(t);
        t = next;
    }
    w->tables = NULL;
    if (w->file >= 0)
        H5Fclose(w->file);
    w->file = H5I_INVALID_HID;
}

static void od__writer_free(od_res_writer *w)
{
    free(w->path);
    free(w->part);
    free(w);
}

/* fsync a file or directory by name; errors are ignored where the file
 * system cannot sync directories. */
static int od__fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return dir ? 0 : -1;
    int rc = fsync(fd);
    close(fd);
    return dir ? 0 : rc;
}

int od_res_commit(od_res_writer *w)
{
    int rc = od_res_flush(w);
    if (rc == 0) {
        hid_t root = H5Gopen2(w->file, "/", H5P_DEFAULT);
        rc = od__attr_int(root, "complete", 1);
        H5Gclose(root);
        if (rc)
            od_res_fail("%s: cannot write the complete marker", w->part);
    }
    od__writer_close(w);
    if (rc == 0 && od__fsync_path(w->part, 0))
        rc = od_res_fail("cannot sync %s: %s", w->part, strerror(errno));
    if (rc == 0 && rename(w->part, w->path))
        rc = od_res_fail("cannot rename %s to %s: %s", w->part, w->path,
                         strerror(errno));
    if (rc == 0) {
        char *dir = od__res_strdup(w->path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) {
            *(slash == dir ? slash + 1 : slash) = '\0';
            od__fsync_path(dir, 1);
        } else if (dir) {
            od__fsync_path(".", 1);
        }
        free(dir);
    }
    od__writer_free(w);
    return rc;
}

void od_res_discard(od_res_writer *w)
{
    if (!w)
        return;
    od__writer_close(w);
    unlink(w->part);
    od__writer_free(w);
}
