/* A small streaming JSON writer for the machine-readable summaries.
 *
 * Objects are indented two spaces per level; arrays stay on one line.
 * Strings are escaped per RFC 8259; doubles keep every bit (%.17g) and
 * non-finite values (NaN, Inf) become null, which JSON can represent.
 * Inside an object every value has a key; inside an array key is NULL. */
#ifndef ONDEV_HARNESS_JSON_H
#define ONDEV_HARNESS_JSON_H

#include <stdint.h>
#include <stdio.h>

#define OD_JSON_MAX_DEPTH 32

typedef struct od_json {
    FILE *f;
    int depth;
    int count[OD_JSON_MAX_DEPTH];    /* values written at each level */
    char kind[OD_JSON_MAX_DEPTH];    /* '{' or '[' */
} od_json;

void od_json_init(od_json *j, FILE *f);
void od_json_begin_object(od_json *j, const char *key);
void od_json_end_object(od_json *j);
void od_json_begin_array(od_json *j, const char *key);
void od_json_end_array(od_json *j);
void od_json_string(od_json *j, const char *key, const char *value);
void od_json_double(od_json *j, const char *key, double value);
void od_json_int(od_json *j, const char *key, int64_t value);
void od_json_bool(od_json *j, const char *key, int value);
void od_json_null(od_json *j, const char *key);
/* An array of doubles in one call. */
void od_json_double_array(od_json *j, const char *key, const double *v,
                          size_t n);

/* Write s as a quoted, escaped JSON string. */
void od_json_write_escaped(FILE *f, const char *s);

#endif
