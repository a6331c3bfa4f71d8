/* Summaries as CSV and JSON, and the index of a sweep. */
#include "results/results.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "results/store_internal.h"

int od__res_write_atomic(const char *path, const char *buf, size_t len)
{
    char *tmp = malloc(strlen(path) + 8);
    if (!tmp)
        return od_res_fail("out of memory");
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        int rc = od_res_fail("cannot write %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok &= fflush(f) == 0;
    ok &= fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (ok && rename(tmp, path) == 0) {
        free(tmp);
        return 0;
    }
    int rc = od_res_fail("cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    free(tmp);
    return rc;
}

void od__res_fmt_num(double v, char *buf, size_t len)
{
    if (isnan(v))
        snprintf(buf, len, "n/a");
    else
        snprintf(buf, len, "%.6g", v);
}

/* The union of the summary keys over the set, in first-seen order; each
 * entry points at a key owned by one of the runs. */
typedef struct od__keys {
    const od_res_value **first;   /* the first value seen of each key */
    int n;
} od__keys;

static int od__keys_collect(const od_res_set *set, od__keys *k)
{
    k->first = NULL;
    k->n = 0;
    for (int i = 0; i < set->nruns; i++) {
        const od_res_values *vs = &set->runs[i].summary;
        for (int j = 0; j < vs->n; j++) {
            int seen = 0;
            for (int m = 0; m < k->n && !seen; m++)
                seen = strcmp(k->first[m]->key, vs->v[j].key) == 0;
            if (seen)
                continue;
            const od_res_value **p = realloc(k->first, (size_t)(k->n + 1) *
                                                           sizeof *p);
            if (!p) {
                free(k->first);
                return od_res_fail("out of memory");
            }
            k->first = p;
            k->first[k->n++] = &vs->v[j];
        }
    }
    return 0;
}

/* A CSV field, quoted when it holds a comma, quote or line break. */
static void od__csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int od_res_write_summary_csv(const od_res_set *set, FILE *f)
{
    od__keys k;
    if (od__keys_collect(set, &k))
        return -1;
    fputs("file", f);
    for (int m = 0; m < k.n; m++) {
        char name[256];
        const od_res_value *v = k.first[m];
        if (!v->is_text && v->units[0] && strcmp(v->units, "1") != 0)
            snprintf(name, sizeof name, "%s [%s]", v->key, v->units);
        else
            snprintf(name, sizeof name, "%s", v->key);
        fputc(',', f);
        od__csv_field(f, name);
    }
    fputc('\n', f);
    for (int i = 0; i < set->nruns; i++) {
        const od_res_run *r = &set->runs[i];
        od__csv_field(f, r->path);
        for (int m = 0; m < k.n; m++) {
            fputc(',', f);
            const od_res_value *v = od_res_values_find(&r->summary,
                                                       k.first[m]->key);
            if (!v)
                continue;
            if (v->is_text)
                od__csv_field(f, v->text);
            else if (!isnan(v->num))
                fprintf(f, "%.17g", v->num);
        }
        fputc('\n', f);
    }
    free(k.first);
    return ferror(f) ? od_res_fail("cannot write the CSV summary") : 0;
}

static void od__json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void od__json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

int od_res_write_summary_json(const od_res_set *set, FILE *f)
{
    od__keys k;
    if (od__keys_collect(set, &k))
        return -1;
    fputs("{\n  \"units\": {", f);
    int first = 1;
    for (int m = 0; m < k.n; m++) {
        if (k.first[m]->is_text)
            continue;
        fprintf(f, "%s\n    ", first ? "" : ",");
        od__json_str(f, k.first[m]->key);
        fputs(": ", f);
        od__json_str(f, k.first[m]->units);
        first = 0;
    }
    fputs("\n  },\n  \"runs\": [", f);
    for (int i = 0; i < set->nruns; i++) {
        const od_res_run *r = &set->runs[i];
        fprintf(f, "%s\n    {\n      \"file\": ", i ? "," : "");
        od__json_str(f, r->path);
        for (int j = 0; j < r->summary.n; j++) {
            const od_res_value *v = &r->summary.v[j];
            fputs(",\n      ", f);
            od__json_str(f, v->key);
            fputs(": ", f);
            if (v->is_text)
                od__json_str(f, v->text);
            else
                od__json_num(f, v->num);
        }
        fputs("\n    }", f);
    }
    fputs("\n  ]\n}\n", f);
    free(k.first);
    return ferror(f) ? od_res_fail("cannot write the JSON summary") : 0;
}

/* Render one of the two formats in memory and write it atomically. */
static int od__summary_file(const od_res_set *set, const char *path,
                            int json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return od_res_fail("out of memory");
    int rc = json ? od_res_write_summary_json(set, m)
                  : od_res_write_summary_csv(set, m);
    fclose(m);
    if (rc == 0)
        rc = od__res_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

int od_res_write_summary_files(const od_res_set *set, const char *stem)
{
    char *path = malloc(strlen(stem) + 8);
    if (!path)
        return od_res_fail("out of memory");
    sprintf(path, "%s.csv", stem);
    int rc = od__summary_file(set, path, 0);
    sprintf(path, "%s.json", stem);
    if (rc == 0)
        rc = od__summary_file(set, path, 1);
    free(path);
    return rc;
}

/* ---- The index of a sweep ------------------------------------------------ */

int od_res_write_index(const char *dir, const char *const *files, int n)
{
    /* Every point must be complete before the index names it. */
    od_res_set set = {0};
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *p = malloc(strlen(dir) + strlen(files[i]) + 2);
        if (!p)
            return od_res_fail("out of memory");
        sprintf(p, "%s/%s", dir, files[i]);
        od_res_set one;
        if (od_res_load(p, &one)) {
            rc = -1;
        } else {
            od_res_run *runs = realloc(set.runs, (size_t)(set.nruns +
                                                          one.nruns) *
                                                     sizeof *runs);
            if (!runs) {
                od_res_set_free(&one);
                rc = od_res_fail("out of memory");
            } else {
                set.runs = runs;
                for (int j = 0; j < one.nruns; j++)
                    set.runs[set.nruns++] = one.runs[j];
                free(one.runs);
                free(one.source);
            }
        }
        free(p);
    }

    char *path = malloc(strlen(dir) + sizeof OD_RES_INDEX_NAME + 16);
    od_res_writer *w = NULL;
    if (!path && rc == 0)
        rc = od_res_fail("out of memory");
    if (rc == 0) {
        sprintf(path, "%s/%s", dir, OD_RES_INDEX_NAME);
        rc = od_res_create(path, OD_RES_KIND_INDEX, &w);
    }
    if (rc == 0)
        rc = od_res_put_strings(w, "points", "file", files, (size_t)n);

    /* One column per summary key, a row per point. */
    od__keys k = {0};
    if (rc == 0)
        rc = od__keys_collect(&set, &k);
    double *col = rc == 0 ? malloc((size_t)(n ? n : 1) * sizeof *col) : NULL;
    const char **txt = rc == 0 ? malloc((size_t)(n ? n : 1) * sizeof *txt)
                               : NULL;
    if (rc == 0 && (!col || !txt))
        rc = od_res_fail("out of memory");
    for (int m = 0; m < k.n && rc == 0; m++) {
        const char *key = k.first[m]->key;
        if (strcmp(key, "file") == 0)
            continue;
        for (int i = 0; i < set.nruns; i++) {
            const od_res_value *v = od_res_values_find(&set.runs[i].summary,
                                                       key);
            col[i] = v && !v->is_text ? v->num : NAN;
            txt[i] = v && v->is_text ? v->text : "";
        }
        if (k.first[m]->is_text)
            rc = od_res_put_strings(w, "points", key, txt,
                                    (size_t)set.nruns);
        else
            rc = od_res_put_column(w, "points", key, col, (size_t)set.nruns,
                                   k.first[m]->units);
    }
    free(col);
    free(txt);
    free(k.first);
    if (rc == 0) {
        rc = od_res_commit(w);
        w = NULL;
    }
    od_res_discard(w);
    if (rc == 0) {
        sprintf(path, "%s/summary", dir);
        rc = od_res_write_summary_files(&set, path);
    }
    free(path);
    od_res_set_free(&set);
    return rc;
}
