/* Reading result files back: a run file, a sweep index, or a directory. */
#include "results/results.h"

#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "results/store_internal.h"

/* ---- Values ------------------------------------------------------------- */

static int od__values_add(od_res_values *vs, od_res_value v)
{
    od_res_value *p = realloc(vs->v, (size_t)(vs->n + 1) * sizeof *p);
    if (!p)
        return -1;
    vs->v = p;
    vs->v[vs->n++] = v;
    return 0;
}

static void od__values_free(od_res_values *vs)
{
    for (int i = 0; i < vs->n; i++) {
        free(vs->v[i].key);
        free(vs->v[i].text);
        free(vs->v[i].units);
    }
    free(vs->v);
    vs->v = NULL;
    vs->n = 0;
}

const od_res_value *od_res_values_find(const od_res_values *vs,
                                       const char *key)
{
    for (int i = 0; i < vs->n; i++)
        if (strcmp(vs->v[i].key, key) == 0)
            return &vs->v[i];
    return NULL;
}

/* Read a scalar string (attribute when is_attr, else dataset) of any
 * string type into a new heap string; NULL when it is not a string. */
static char *od__read_text(hid_t obj, int is_attr)
{
    hid_t type = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    if (type < 0)
        return NULL;
    char *out = NULL;
    if (H5Tget_class(type) == H5T_STRING) {
        if (H5Tis_variable_str(type) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(type));
            char *v = NULL;
            herr_t e = is_attr ? H5Aread(obj, mt, &v)
                               : H5Dread(obj, mt, H5S_ALL, H5S_ALL,
                                         H5P_DEFAULT, &v);
            if (e >= 0) {
                out = od__res_strdup(v ? v : "");
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(type);
            char *v = calloc(n + 1, 1);
            herr_t e = -1;
            if (v)
                e = is_attr ? H5Aread(obj, type, v)
                            : H5Dread(obj, type, H5S_ALL, H5S_ALL,
                                      H5P_DEFAULT, v);
            if (e >= 0)
                out = v;
            else
                free(v);
        }
    }
    H5Tclose(type);
    return out;
}

static char *od__units_of(hid_t obj)
{
    if (H5Aexists(obj, "units") <= 0)
        return od__res_strdup("");
    hid_t a = H5Aopen(obj, "units", H5P_DEFAULT);
    char *u = a >= 0 ? od__read_text(a, 1) : NULL;
    if (a >= 0)
        H5Aclose(a);
    return u ? u : od__res_strdup("");
}

typedef struct od__iter {
    hid_t group;
    od_res_values *vs;
    int failed;
} od__iter;

static herr_t od__attr_cb(hid_t obj, const char *name,
                          const H5A_info_t *info, void *data)
{
    (void)info;
    od__iter *it = data;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return 0;
    od_res_value v = {.key = od__res_strdup(name)};
    v.text = od__read_text(a, 1);
    if (v.text) {
        v.is_text = 1;
    } else {
        hid_t space = H5Aget_space(a);
        if (H5Sget_simple_extent_npoints(space) == 1 &&
            H5Aread(a, H5T_NATIVE_DOUBLE, &v.num) >= 0)
            v.units = od__res_strdup("");
        else
            v.num = NAN;
        H5Sclose(space);
        if (!v.units) {   /* not a scalar number: ignored */
            free(v.key);
            H5Aclose(a);
            return 0;
        }
    }
    H5Aclose(a);
    if (!v.key || od__values_add(it->vs, v))
        it->failed = 1;
    return 0;
}

static herr_t od__link_cb(hid_t g, const char *name, const H5L_info_t *info,
                          void *data)
{
    (void)info;
    od__iter *it = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0)
        return 0;
    hid_t space = H5Dget_space(d);
    int scalar = H5Sget_simple_extent_npoints(space) == 1 &&
                 H5Sget_simple_extent_ndims(space) == 0;
    H5Sclose(space);
    if (scalar) {
        od_res_value v = {.key = od__res_strdup(name)};
        v.text = od__read_text(d, 0);
        if (v.text) {
            v.is_text = 1;
        } else if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                           H5P_DEFAULT, &v.num) >= 0) {
            v.units = od__units_of(d);
        } else {
            v.num = NAN;
            v.units = od__res_strdup("");
        }
        if (!v.key || od__values_add(it->vs, v))
            it->failed = 1;
    }
    H5Dclose(d);
    return 0;
}

/* Iterate a group's links in creation order when the file tracks it. */
static herr_t od__iterate(hid_t g, H5L_iterate_t cb, void *data)
{
    hsize_t idx = 0;
    herr_t e = H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, cb,
                          data);
    if (e < 0) {
        idx = 0;
        e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, cb, data);
    }
    return e;
}

/* Attributes and scalar datasets of group path; absent group: empty. */
static int od__read_values(hid_t file, const char *path, od_res_values *vs)
{
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0)
        return 0;
    hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
    if (g < 0)
        return 0;
    od__iter it = {.group = g, .vs = vs};
    hsize_t n = 0;
    H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &n, od__attr_cb, &it);
    od__iterate(g, od__link_cb, &it);
    H5Gclose(g);
    return it.failed ? od_res_fail("out of memory") : 0;
}

/* ---- Tables ------------------------------------------------------------- */

typedef struct od__table_iter {
    od_res_table_data *t;
    int failed;
} od__table_iter;

static herr_t od__column_cb(hid_t g, const char *name,
                            const H5L_info_t *info, void *data)
{
    (void)info;
    od__table_iter *it = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(d), type = H5Dget_type(d);
    int numeric = H5Tget_class(type) == H5T_FLOAT ||
                  H5Tget_class(type) == H5T_INTEGER;
    if (numeric && H5Sget_simple_extent_ndims(space) == 1) {
        hsize_t n;
        H5Sget_simple_extent_dims(space, &n, NULL);
        od_res_table_data *t = it->t;
        double *col = malloc((n ? n : 1) * sizeof *col);
        od_res_column *cols = realloc(t->cols, (size_t)(t->ncols + 1) *
                                                   sizeof *cols);
        if (!col || !cols) {
            free(col);
            it->failed = 1;
        } else {
            t->cols = cols;
            if (n && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                             H5P_DEFAULT, col) < 0)
                for (hsize_t i = 0; i < n; i++)
                    col[i] = NAN;
            /* Columns of one table have one length; a shorter one (a
             * file from elsewhere) is read as far as it goes. */
            if (t->ncols == 0 || n < t->nrows)
                t->nrows = n;
            t->cols[t->ncols++] = (od_res_column){
                .name = od__res_strdup(name), .units = od__units_of(d),
                .data = col};
        }
    }
    H5Tclose(type);
    H5Sclose(space);
    H5Dclose(d);
    return 0;
}

static herr_t od__trace_cb(hid_t g, const char *name, const H5L_info_t *info,
                           void *data)
{
    (void)info;
    od_res_run *r = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(g, name, &oi, H5P_DEFAULT) < 0 ||
        oi.type != H5O_TYPE_GROUP)
        return 0;
    od_res_table_data *ts = realloc(r->traces, (size_t)(r->ntraces + 1) *
                                                   sizeof *ts);
    if (!ts)
        return -1;
    r->traces = ts;
    od_res_table_data *t = &r->traces[r->ntraces++];
    memset(t, 0, sizeof *t);
    t->name = od__res_strdup(name);
    hid_t tg = H5Gopen2(g, name, H5P_DEFAULT);
    od__table_iter it = {.t = t};
    od__iterate(tg, od__column_cb, &it);
    H5Gclose(tg);
    return it.failed ? -1 : 0;
}

/* ---- Files -------------------------------------------------------------- */

static char *od__root_text(hid_t file, const char *name)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    char *v = NULL;
    if (H5Aexists(root, name) > 0) {
        hid_t a = H5Aopen(root, name, H5P_DEFAULT);
        v = od__read_text(a, 1);
        H5Aclose(a);
    }
    H5Gclose(root);
    return v;
}

static int64_t od__root_int(hid_t file, const char *name)
{
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    int64_t v = -1;
    if (H5Aexists(root, name) > 0) {
        hid_t a = H5Aopen(root, name, H5P_DEFAULT);
        if (H5Aread(a, H5T_NATIVE_INT64, &v) < 0)
            v = -1;
        H5Aclose(a);
    }
    H5Gclose(root);
    return v;
}

static void od__run_free(od_res_run *r)
{
    free(r->path);
    free(r->label);
    free(r->config_text);
    od__values_free(&r->config);
    od__values_free(&r->build);
    od__values_free(&r->host);
    od__values_free(&r->summary);
    for (int i = 0; i < r->ntraces; i++) {
        od_res_table_data *t = &r->traces[i];
        for (int c = 0; c < t->ncols; c++) {
            free(t->cols[c].name);
            free(t->cols[c].units);
            free(t->cols[c].data);
        }
        free(t->cols);
        free(t->name);
    }
    free(r->traces);
    memset(r, 0, sizeof *r);
}

static int od__ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Open path and check it is a complete ondev file; *kind receives the
 * root's kind (caller frees). */
static hid_t od__open_checked(const char *path, char **kind)
{
    *kind = NULL;
    if (od__ends_with(path, OD_RES_PART_SUFFIX)) {
        od_res_fail("%s is half-written: the run writing it has not "
                    "finished, or was killed (its results are not used)",
                    path);
        return H5I_INVALID_HID;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        od_res_fail("cannot read %s: no such file or directory", path);
        return H5I_INVALID_HID;
    }
    if (H5Fis_hdf5(path) <= 0) {
        od_res_fail("%s is not an HDF5 file", path);
        return H5I_INVALID_HID;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        od_res_fail("cannot open %s (damaged HDF5 file?)", path);
        return H5I_INVALID_HID;
    }
    char *format = od__root_text(f, "format");
    int ours = format && strcmp(format, OD_RES_FORMAT) == 0;
    free(format);
    if (!ours) {
        H5Fclose(f);
        od_res_fail("%s is not an ondev results file (no format = \"%s\" "
                    "attribute)", path, OD_RES_FORMAT);
        return H5I_INVALID_HID;
    }
    int64_t version = od__root_int(f, "format_version");
    if (version > OD_RES_FORMAT_VERSION) {
        H5Fclose(f);
        od_res_fail("%s has format version %lld; this ondev reads up to %d: "
                    "use a newer ondev", path, (long long)version,
                    OD_RES_FORMAT_VERSION);
        return H5I_INVALID_HID;
    }
    if (od__root_int(f, "complete") != 1) {
        H5Fclose(f);
        od_res_fail("%s is half-written (its 'complete' marker is not "
                    "set): the run writing it did not finish", path);
        return H5I_INVALID_HID;
    }
    *kind = od__root_text(f, "kind");
    return f;
}

static int od__load_run(hid_t f, const char *path, od_res_run *r)
{
    memset(r, 0, sizeof *r);
    r->path = od__res_strdup(path);
    int rc = od__read_values(f, "config", &r->config);
    rc |= od__read_values(f, "build", &r->build);
    rc |= od__read_values(f, "host", &r->host);
    rc |= od__read_values(f, "summary", &r->summary);
    /* The configuration's text is kept as the attribute "text" of
     * /config; the other attributes there are its keys. */
    for (int i = 0; i < r->config.n; i++) {
        if (strcmp(r->config.v[i].key, "text") == 0) {
            od_res_value v = r->config.v[i];
            r->config_text = v.text;
            free(v.key);
            free(v.units);
            memmove(&r->config.v[i], &r->config.v[i + 1],
                    (size_t)(r->config.n - i - 1) * sizeof v);
            r->config.n--;
            break;
        }
    }
    if (!r->config_text)
        r->config_text = od__res_strdup("");
    if (H5Lexists(f, "traces", H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, "traces", H5P_DEFAULT);
        if (od__iterate(g, od__trace_cb, r) < 0)
            rc = -1;
        H5Gclose(g);
    }
    return rc ? od_res_fail("%s: out of memory while reading", path) : 0;
}

static int od__set_add(od_res_set *set, od_res_run *r)
{
    od_res_run *p = realloc(set->runs, (size_t)(set->nruns + 1) * sizeof *p);
    if (!p)
        return od_res_fail("out of memory");
    set->runs = p;
    set->runs[set->nruns++] = *r;
    return 0;
}

/* "dir/name" for a name relative to dir (absolute names kept). */
static char *od__join(const char *dir, const char *name)
{
    if (name[0] == '/' || !dir[0])
        return od__res_strdup(name);
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    if (p)
        sprintf(p, "%s/%s", dir, name);
    return p;
}

static char *od__dirname(const char *path)
{
    char *d = od__res_strdup(path);
    char *slash = d ? strrchr(d, '/') : NULL;
    if (!d)
        return NULL;
    if (!slash)
        strcpy(d, ".");
    else if (slash == d)
        d[1] = '\0';
    else
        *slash = '\0';
    return d;
}

static int od__load_file(const char *path, od_res_set *set, int depth);

/* The points of a sweep index: /points/file lists them. */
static int od__load_index(hid_t f, const char *path, od_res_set *set,
                          int depth)
{
    if (H5Lexists(f, "points", H5P_DEFAULT) <= 0 ||
        H5Lexists(f, "points/file", H5P_DEFAULT) <= 0)
        return od_res_fail("%s: sweep index without points/file", path);
    hid_t d = H5Dopen2(f, "points/file", H5P_DEFAULT);
    hid_t space = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    herr_t e = names ? H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, names)
                     : -1;
    int rc = e < 0 ? od_res_fail("%s: cannot read points/file", path) : 0;
    char *dir = od__dirname(path);
    for (hssize_t i = 0; rc == 0 && i < n; i++) {
        char *p = od__join(dir, names[i]);
        if (!p)
            rc = od_res_fail("out of memory");
        else if (od__load_file(p, set, depth + 1)) {
            char why[1024];
            snprintf(why, sizeof why, "%s", od_res_error());
            rc = od_res_fail("sweep index %s: point %lld: %s", path,
                             (long long)i, why);
        }
        free(p);
    }
    if (e >= 0)
        H5Dvlen_reclaim(mt, space, H5P_DEFAULT, names);
    free(names);
    free(dir);
    H5Tclose(mt);
    H5Sclose(space);
    H5Dclose(d);
    return rc;
}

static int od__load_file(const char *path, od_res_set *set, int depth)
{
    char *kind;
    hid_t f = od__open_checked(path, &kind);
    if (f < 0)
        return -1;
    int rc;
    if (kind && strcmp(kind, OD_RES_KIND_INDEX) == 0) {
        rc = depth > 0 ? od_res_fail("%s: an index inside an index", path)
                       : od__load_index(f, path, set, depth);
    } else {
        od_res_run r;
        rc = od__load_run(f, path, &r);
        if (rc == 0)
            rc = od__set_add(set, &r);
        if (rc)
            od__run_free(&r);
    }
    free(kind);
    H5Fclose(f);
    return rc;
}

static int od__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every "*.h5" of dir in name order; "*.h5.part" counted as skipped. */
static int od__load_dir(const char *dir, od_res_set *set)
{
    char *index = od__join(dir, OD_RES_INDEX_NAME);
    struct stat st;
    if (index && stat(index, &st) == 0) {
        int rc = od__load_file(index, set, 0);
        free(index);
        return rc;
    }
    free(index);

    DIR *d = opendir(dir);
    if (!d)
        return od_res_fail("cannot read directory %s", dir);
    char **names = NULL;
    int n = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && rc == 0) {
        if (od__ends_with(e->d_name, ".h5" OD_RES_PART_SUFFIX)) {
            fprintf(stderr, "ondev: warning: %s/%s is half-written (its run "
                    "did not finish): skipped\n", dir, e->d_name);
            set->nskipped++;
            continue;
        }
        if (!od__ends_with(e->d_name, ".h5"))
            continue;
        char **p = realloc(names, (size_t)(n + 1) * sizeof *p);
        if (!p || !(p[n] = od__join(dir, e->d_name))) {
            rc = od_res_fail("out of memory");
            names = p ? p : names;
            break;
        }
        names = p;
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, (size_t)n, sizeof *names, od__cmp_str);
    for (int i = 0; i < n && rc == 0; i++)
        rc = od__load_file(names[i], set, 1);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0 && set->nruns == 0)
        rc = od_res_fail("%s holds no complete results files (*.h5)%s", dir,
                         set->nskipped ? ", only half-written ones" : "");
    return rc;
}

/* Label each run by the configuration keys whose values differ across the
 * set; a single run is named by its workload. */
static void od__label_runs(od_res_set *set)
{
    for (int i = 0; i < set->nruns; i++) {
        od_res_run *r = &set->runs[i];
        char label[256] = "";
        size_t o = 0;
        for (int k = 0; k < r->config.n && set->nruns > 1; k++) {
            const od_res_value *v = &r->config.v[k];
            int differs = 0;
            for (int j = 0; j < set->nruns && !differs; j++) {
                const od_res_value *w =
                    od_res_values_find(&set->runs[j].config, v->key);
                differs = !w || !w->is_text || !v->is_text ||
                          strcmp(w->text, v->text) != 0;
            }
            if (differs && o + 2 < sizeof label)
                o += (size_t)snprintf(label + o, sizeof label - o,
                                      "%s%s=%s", o ? " " : "", v->key,
                                      v->is_text ? v->text : "?");
        }
        if (!label[0]) {
            const char *wl = od_res_run_text(r, "workload");
            if (set->nruns == 1 && wl) {
                snprintf(label, sizeof label, "%s", wl);
            } else {
                const char *base = strrchr(r->path, '/');
                snprintf(label, sizeof label, "%s", base ? base + 1 : r->path);
            }
        }
        free(r->label);
        r->label = od__res_strdup(label);
    }
}

int od_res_load(const char *path, od_res_set *set)
{
    memset(set, 0, sizeof *set);
    od__res_quiet_hdf5();
    set->source = od__res_strdup(path);
    struct stat st;
    int rc;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = od__load_dir(path, set);
    else
        rc = od__load_file(path, set, 0);
    if (rc) {
        od_res_set_free(set);
        return -1;
    }
    od__label_runs(set);
    return 0;
}

void od_res_set_free(od_res_set *set)
{
    for (int i = 0; i < set->nruns; i++)
        od__run_free(&set->runs[i]);
    free(set->runs);
    free(set->source);
    memset(set, 0, sizeof *set);
}

const od_res_table_data *od_res_run_trace(const od_res_run *r,
                                          const char *name)
{
    for (int i = 0; i < r->ntraces; i++)
        if (strcmp(r->traces[i].name, name) == 0)
            return &r->traces[i];
    return NULL;
}

const od_res_column *od_res_trace_column(const od_res_table_data *t,
                                         const char *name)
{
    if (!t)
        return NULL;
    for (int i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

double od_res_summary_num(const od_res_run *r, const char *key)
{
    const od_res_value *v = od_res_values_find(&r->summary, key);
    return v && !v->is_text ? v->num : NAN;
}

const char *od_res_run_text(const od_res_run *r, const char *key)
{
    const od_res_value *v = od_res_values_find(&r->summary, key);
    if (v && v->is_text)
        return v->text;
    v = od_res_values_find(&r->config, key);
    return v && v->is_text ? v->text : NULL;
}
