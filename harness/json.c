#include "harness/json.h"

#include <inttypes.h>
#include <math.h>

#include "engine/common.h"

void od_json_init(od_json *j, FILE *f)
{
    j->f = f;
    j->depth = 0;
    j->count[0] = 0;
    j->kind[0] = '\0';
}

void od_json_write_escaped(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*c < 0x20)
                fprintf(f, "\\u%04x", *c);
            else
                fputc(*c, f);   /* UTF-8 passes through unchanged */
        }
    }
    fputc('"', f);
}

/* Separator, newline and indentation before a value, then its key. */
static void od__json_prefix(od_json *j, const char *key)
{
    int d = j->depth;
    char kind = d ? j->kind[d] : '\0';
    OD_ASSERT(kind != '{' || key != NULL);  /* object members have keys */
    OD_ASSERT(kind != '[' || key == NULL);  /* array items have none */
    OD_ASSERT(d > 0 || j->count[0] == 0);   /* one top-level value */

    if (j->count[d]++ > 0)
        fputc(',', j->f);
    if (kind == '{') {
        fputc('\n', j->f);
        for (int i = 0; i < d; i++)
            fputs("  ", j->f);
        od_json_write_escaped(j->f, key);
        fputs(": ", j->f);
    } else if (kind == '[' && j->count[d] > 1) {
        fputc(' ', j->f);
    }
}

static void od__json_open(od_json *j, const char *key, char kind)
{
    od__json_prefix(j, key);
    OD_ASSERT(j->depth + 1 < OD_JSON_MAX_DEPTH);
    fputc(kind, j->f);
    j->depth++;
    j->kind[j->depth] = kind;
    j->count[j->depth] = 0;
}

static void od__json_close(od_json *j, char kind)
{
    OD_ASSERT(j->depth > 0 && j->kind[j->depth] == kind);
    int had_members = j->count[j->depth] > 0;
    j->depth--;
    if (kind == '{') {
        if (had_members) {
            fputc('\n', j->f);
            for (int i = 0; i < j->depth; i++)
                fputs("  ", j->f);
        }
        fputc('}', j->f);
    } else {
        fputc(']', j->f);
    }
    if (j->depth == 0)
        fputc('\n', j->f);
}

void od_json_begin_object(od_json *j, const char *key)
{
    od__json_open(j, key, '{');
}

void od_json_end_object(od_json *j) { od__json_close(j, '{'); }

void od_json_begin_array(od_json *j, const char *key)
{
    od__json_open(j, key, '[');
}

void od_json_end_array(od_json *j) { od__json_close(j, '['); }

void od_json_string(od_json *j, const char *key, const char *value)
{
    od__json_prefix(j, key);
    od_json_write_escaped(j->f, value ? value : "");
}

void od_json_double(od_json *j, const char *key, double value)
{
    od__json_prefix(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.17g", value);
    else
        fputs("null", j->f);
}

void od_json_int(od_json *j, const char *key, int64_t value)
{
    od__json_prefix(j, key);
    fprintf(j->f, "%" PRId64, value);
}

void od_json_bool(od_json *j, const char *key, int value)
{
    od__json_prefix(j, key);
    fputs(value ? "true" : "false", j->f);
}

void od_json_null(od_json *j, const char *key)
{
    od__json_prefix(j, key);
    fputs("null", j->f);
}

void od_json_double_array(od_json *j, const char *key, const double *v,
                          size_t n)
{
    od_json_begin_array(j, key);
    for (size_t i = 0; i < n; i++)
        od_json_double(j, NULL, v[i]);
    od_json_end_array(j);
}
