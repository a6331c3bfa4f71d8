#include "harness/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "harness/json.h"

#define OD__CONFIG_TABLE_ENTRY(name, type, def, allowed, doc) \
    {#name, OD_CONFIG_##type, def, allowed, doc, offsetof(od_config, name)},

static const od_config_key od__keys[OD_CONFIG_KEY_COUNT] = {
    OD_CONFIG_KEYS(OD__CONFIG_TABLE_ENTRY)
};

const od_config_key *od_config_keys(size_t *count)
{
    *count = OD_CONFIG_KEY_COUNT;
    return od__keys;
}

const od_config_key *od_config_key_find(const char *name)
{
    for (size_t i = 0; i < OD_CONFIG_KEY_COUNT; i++)
        if (strcmp(od__keys[i].name, name) == 0)
            return &od__keys[i];
    return NULL;
}

const char *od_config_type_name(od_config_type type)
{
    switch (type) {
    case OD_CONFIG_INT: return "integer";
    case OD_CONFIG_FLOAT: return "number";
    case OD_CONFIG_BOOL: return "boolean";
    case OD_CONFIG_STR: return "string";
    case OD_CONFIG_ENUM: return "choice";
    case OD_CONFIG_SIZE: return "size";
    }
    return "?";
}

/* ---- Typo suggestions ---------------------------------------------------- */

/* Levenshtein distance, case-insensitive, for names up to 63 bytes. */
static size_t od__edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return (size_t)-1;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            int same = tolower((unsigned char)a[i - 1]) ==
                       tolower((unsigned char)b[j - 1]);
            size_t best = diag + (same ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

const char *od_closest_name(const char *s, const char *const *names,
                            size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        size_t d = od__edit_distance(s, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    /* A typo changes a few characters; a third of the name at most. */
    size_t limit = strlen(s) / 3 > 2 ? strlen(s) / 3 : 2;
    return best_d <= limit ? best : NULL;
}

static const char *od__closest_key(const char *s)
{
    const char *names[OD_CONFIG_KEY_COUNT];
    for (size_t i = 0; i < OD_CONFIG_KEY_COUNT; i++)
        names[i] = od__keys[i].name;
    return od_closest_name(s, names, OD_CONFIG_KEY_COUNT);
}

/* ---- Sizes --------------------------------------------------------------- */

od_status od_parse_size(const char *text, uint64_t *bytes)
{
    const char *s = text;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '-' || *s == '+' || !(isdigit((unsigned char)*s) || *s == '.'))
        return od_fail(OD_ERR_INVALID, "'%s' is not a size: expected bytes "
                       "or a number with a unit, e.g. 512MiB or 2GB", text);
    errno = 0;
    char *end;
    double mantissa = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(mantissa))
        return od_fail(OD_ERR_INVALID, "'%s' is not a size: expected bytes "
                       "or a number with a unit, e.g. 512MiB or 2GB", text);
    while (isspace((unsigned char)*end))
        end++;

    char unit[8] = "";
    size_t ulen = strlen(end);
    while (ulen && isspace((unsigned char)end[ulen - 1]))
        ulen--;
    if (ulen >= sizeof unit)
        goto bad_unit;
    memcpy(unit, end, ulen);
    unit[ulen] = '\0';

    double scale = 0;
    static const struct { const char *name; double scale; } units[] = {
        {"", 1}, {"b", 1},
        {"k", 1024.0}, {"kib", 1024.0}, {"kb", 1e3},
        {"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6},
        {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
        {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(unit, units[i].name) == 0)
            scale = units[i].scale;
    if (scale == 0)
        goto bad_unit;

    double v = floor(mantissa * scale);
    if (v >= 9.2e18)
        return od_fail(OD_ERR_INVALID, "size '%s' is too large", text);
    *bytes = (uint64_t)v;
    return OD_OK;

bad_unit:
    return od_fail(OD_ERR_INVALID, "'%s' has an unknown size unit '%s': "
                   "use B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, "
                   "GB, TB (powers of 1000)", text, end);
}

void od_format_size(uint64_t bytes, char *buf, size_t len)
{
    static const char *const names[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        uint64_t unit = (uint64_t)1 << (10 * (4 - i));
        if (bytes && bytes % unit == 0) {
            snprintf(buf, len, "%llu%s", (unsigned long long)(bytes / unit),
                     names[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

/* ---- Ranges -------------------------------------------------------------- */

typedef struct od__range {
    double lo, hi;
    int lo_open, hi_open;
} od__range;

/* Parse "[lo, hi)" and the like; "inf" is allowed for either bound. */
static od__range od__range_parse(const char *text)
{
    od__range r = {-INFINITY, INFINITY, 0, 0};
    if (!text || !*text)
        return r;
    OD_ASSERT(text[0] == '[' || text[0] == '(');
    r.lo_open = text[0] == '(';
    char *end;
    r.lo = strtod(text + 1, &end);
    OD_ASSERT(*end == ',');
    r.hi = strtod(end + 1, &end);
    OD_ASSERT(*end == ']' || *end == ')');
    r.hi_open = *end == ')';
    return r;
}

static int od__range_contains(const od__range *r, double v)
{
    if (r->lo_open ? !(v > r->lo) : !(v >= r->lo))
        return 0;
    if (r->hi_open ? !(v < r->hi) : !(v <= r->hi))
        return 0;
    return 1;
}

/* ---- Setting values ------------------------------------------------------ */

static int od__parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* Does name appear in the '|'-separated list? Writes the canonical form. */
static int od__enum_match(const char *list, const char *name, char *out,
                          size_t len)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        size_t plen = bar ? (size_t)(bar - p) : strlen(p);
        if (plen == n && strncasecmp(p, name, n) == 0 && plen < len) {
            memcpy(out, p, plen);
            out[plen] = '\0';
            return 1;
        }
        p += plen + (bar ? 1 : 0);
    }
    return 0;
}

/* "sgd|adam|adamw" -> "sgd, adam, adamw". */
static void od__enum_list(const char *list, char *buf, size_t len)
{
    size_t o = 0;
    for (const char *p = list; *p && o + 3 < len; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o] = '\0';
}

static od_status od__bad_value(const od_config_key *k, const char *text,
                               const char *origin_text, const char *why)
{
    char expect[512];
    switch (k->type) {
    case OD_CONFIG_INT:
        snprintf(expect, sizeof expect, "an integer in %s", k->allowed);
        break;
    case OD_CONFIG_FLOAT:
        snprintf(expect, sizeof expect, "a number in %s", k->allowed);
        break;
    case OD_CONFIG_BOOL:
        snprintf(expect, sizeof expect, "true or false");
        break;
    case OD_CONFIG_ENUM: {
        char list[256];
        od__enum_list(k->allowed, list, sizeof list);
        snprintf(expect, sizeof expect, "one of %s", list);
        break;
    }
    case OD_CONFIG_SIZE:
        snprintf(expect, sizeof expect,
                 "bytes or a size such as 512MiB or 2GB");
        break;
    case OD_CONFIG_STR:
        snprintf(expect, sizeof expect, "text shorter than %d bytes",
                 OD_CONFIG_STR_MAX);
        break;
    }
    return od_fail(OD_ERR_INVALID, "%s: %s = '%s' %s; expected %s",
                   origin_text, k->name, text, why, expect);
}

od_status od_config_set(od_config *c, const char *key, const char *text,
                        od_config_origin origin, const char *origin_text)
{
    const od_config_key *k = od_config_key_find(key);
    if (!k) {
        const char *near = od__closest_key(key);
        if (near)
            return od_fail(OD_ERR_INVALID,
                           "%s: unknown configuration key '%s'; did you mean "
                           "'%s'? (`ondev run --print-config` lists every "
                           "key)", origin_text, key, near);
        return od_fail(OD_ERR_INVALID,
                       "%s: unknown configuration key '%s' "
                       "(`ondev run --print-config` lists every key)",
                       origin_text, key);
    }

    char *field = (char *)c + k->offset;
    od__range range = od__range_parse(
        k->type == OD_CONFIG_INT || k->type == OD_CONFIG_FLOAT ? k->allowed
                                                               : "");
    char *end;
    switch (k->type) {
    case OD_CONFIG_INT: {
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (end == text || *end != '\0' || isspace((unsigned char)*text))
            return od__bad_value(k, text, origin_text, "is not an integer");
        if (errno == ERANGE || !od__range_contains(&range, (double)v))
            return od__bad_value(k, text, origin_text, "is out of range");
        *(int64_t *)field = v;
        break;
    }
    case OD_CONFIG_FLOAT: {
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end != '\0' || isspace((unsigned char)*text) ||
            !isfinite(v))
            return od__bad_value(k, text, origin_text, "is not a number");
        if (!od__range_contains(&range, v))
            return od__bad_value(k, text, origin_text, "is out of range");
        *(double *)field = v;
        break;
    }
    case OD_CONFIG_BOOL:
        if (!od__parse_bool(text, (int *)field))
            return od__bad_value(k, text, origin_text, "is not a boolean");
        break;
    case OD_CONFIG_ENUM:
        if (!od__enum_match(k->allowed, text, field, OD_CONFIG_STR_MAX))
            return od__bad_value(k, text, origin_text, "is not allowed");
        break;
    case OD_CONFIG_SIZE: {
        uint64_t v;
        if (od_parse_size(text, &v) != OD_OK) {
            char why[300];
            snprintf(why, sizeof why, "is not a size (%s)",
                     od_error_message());
            return od__bad_value(k, text, origin_text, why);
        }
        *(uint64_t *)field = v;
        break;
    }
    case OD_CONFIG_STR:
        if (strlen(text) >= OD_CONFIG_STR_MAX)
            return od__bad_value(k, text, origin_text, "is too long");
        strcpy(field, text);
        break;
    }
    c->origin[k - od__keys] = origin;
    return OD_OK;
}

od_status od_config_set_arg(od_config *c, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return od_fail(OD_ERR_INVALID, "--set expects key=value, got '%s'",
                       arg);
    char key[128];
    size_t n = (size_t)(eq - arg);
    if (n >= sizeof key)
        n = sizeof key - 1;
    memcpy(key, arg, n);
    key[n] = '\0';
    return od_config_set(c, key, eq + 1, OD_CONFIG_FROM_ARG, "--set");
}

void od_config_defaults(od_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < OD_CONFIG_KEY_COUNT; i++) {
        od_status st = od_config_set(c, od__keys[i].name,
                                     od__keys[i].default_text,
                                     OD_CONFIG_FROM_DEFAULT, "default");
        /* A default that its own key refuses is a bug in the table. */
        OD_ASSERT(st == OD_OK);
    }
}

/* ---- YAML ---------------------------------------------------------------- */

/* libyaml gives where it gave up (problem) and, for an unfinished
 * construct, where that construct started (context). */
static od_status od__yaml_syntax(const yaml_parser_t *p, const char *name)
{
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "unreadable input";
    if (!p->context)
        return od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s",
                       name, m->line + 1, m->column + 1, problem);
    return od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: YAML syntax error: %s %s "
                   "that starts at line %zu, column %zu", name, m->line + 1,
                   m->column + 1, problem, p->context,
                   p->context_mark.line + 1, p->context_mark.column + 1);
}

static const char *od__event_what(yaml_event_type_t t)
{
    switch (t) {
    case YAML_MAPPING_START_EVENT: return "a mapping";
    case YAML_SEQUENCE_START_EVENT: return "a list";
    case YAML_ALIAS_EVENT: return "an alias";
    default: return "something else";
    }
}

/* Walk the event stream of a flat mapping and set each key. A bad value is
 * remembered and parsing goes on, so that a syntax error anywhere in the
 * file is what gets reported first. */
static od_status od__yaml_read(od_config *c, yaml_parser_t *p,
                               const char *name)
{
    enum { START, IN_DOC, IN_MAP, AFTER_MAP, DONE } state = START;
    od_status value_st = OD_OK;
    char value_msg[1024] = "";
    char key[128] = "";
    int have_key = 0;
    size_t key_line = 0, key_col = 0;
    size_t first_line[OD_CONFIG_KEY_COUNT] = {0};
    od_status st = OD_OK;

    while (state != DONE && st == OD_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(p, &ev))
            return od__yaml_syntax(p, name);
        size_t line = ev.start_mark.line + 1, col = ev.start_mark.column + 1;

        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_STREAM_END_EVENT:
            state = DONE;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (state != START)
                st = od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: a configuration "
                             "file holds one document only", name, line, col);
            state = IN_DOC;
            break;
        case YAML_MAPPING_START_EVENT:
            if (state == IN_DOC) {
                state = IN_MAP;
                break;
            }
            /* fallthrough */
        case YAML_SEQUENCE_START_EVENT:
        case YAML_ALIAS_EVENT:
            if (state == IN_MAP && have_key)
                st = od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: %s: expected a "
                             "single value, found %s", name, line, col, key,
                             od__event_what(ev.type));
            else
                st = od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: expected a flat "
                             "mapping of key: value, found %s", name, line,
                             col, od__event_what(ev.type));
            break;
        case YAML_MAPPING_END_EVENT:
            state = AFTER_MAP;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (state == IN_DOC) {
                /* A document that is only a null scalar is an empty file
                 * with a document marker; anything else is not a mapping. */
                if (ev.data.scalar.length != 0 ||
                    ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
                    st = od_fail(OD_ERR_FORMAT, "%s:%zu:%zu: expected a "
                                 "mapping of key: value, found '%s'", name,
                                 line, col, v);
                state = AFTER_MAP;
                break;
            }
            OD_ASSERT(state == IN_MAP);
            if (!have_key) {
                snprintf(key, sizeof key, "%s", v);
                key_line = line;
                key_col = col;
                have_key = 1;
                break;
            }
            have_key = 0;

            /* A plain null (empty, ~ or null) sets the empty text. */
            int plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            if (plain && (strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
                v = "";

            char where[OD_CONFIG_STR_MAX + 48];
            snprintf(where, sizeof where, "%s:%zu:%zu", name, key_line,
                     key_col);
            const od_config_key *k = od_config_key_find(key);
            if (k) {
                size_t id = (size_t)(k - od__keys);
                if (first_line[id] && value_st == OD_OK) {
                    value_st = od_fail(OD_ERR_FORMAT, "%s: key '%s' is set "
                                       "twice (first on line %zu)", where,
                                       key, first_line[id]);
                    snprintf(value_msg, sizeof value_msg, "%s",
                             od_error_message());
                }
                first_line[id] = key_line;
            }
            od_status set_st = od_config_set(c, key, v, OD_CONFIG_FROM_FILE,
                                             where);
            if (set_st != OD_OK && value_st == OD_OK) {
                value_st = set_st;
                snprintf(value_msg, sizeof value_msg, "%s",
                         od_error_message());
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    if (st == OD_OK && value_st != OD_OK)
        return od_fail(value_st, "%s", value_msg);
    return st;
}

/* Values go to a copy, so that c is unchanged when the file is refused. */
static od_status od__yaml_run(od_config *c, yaml_parser_t *p,
                              const char *name)
{
    od_config *tmp = malloc(sizeof *tmp);
    if (!tmp) {
        yaml_parser_delete(p);
        return od_fail(OD_ERR_NOMEM, "out of memory reading %s", name);
    }
    *tmp = *c;
    od_status st = od__yaml_read(tmp, p, name);
    yaml_parser_delete(p);
    if (st == OD_OK) {
        *c = *tmp;
        snprintf(c->file, sizeof c->file, "%s", name);
    }
    free(tmp);
    return st;
}

od_status od_config_load_yaml_text(od_config *c, const char *text,
                                   size_t len, const char *name)
{
    yaml_parser_t p;
    OD_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    return od__yaml_run(c, &p, name);
}

od_status od_config_load_yaml(od_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return od_fail(OD_ERR_IO, "cannot open configuration file %s: %s",
                       path, strerror(errno));
    yaml_parser_t p;
    OD_ASSERT(yaml_parser_initialize(&p));
    yaml_parser_set_input_file(&p, f);
    od_status st = od__yaml_run(c, &p, path);
    fclose(f);
    return st;
}

/* ---- Checks across keys -------------------------------------------------- */

od_status od_config_validate(const od_config *c)
{
    if (c->nesterov && strcmp(c->optimizer, "sgd") != 0)
        return od_fail(OD_ERR_INVALID, "nesterov = true needs optimizer = "
                       "sgd (it is '%s')", c->optimizer);
    if (c->nesterov && c->momentum <= 0)
        return od_fail(OD_ERR_INVALID, "nesterov = true needs momentum > 0; "
                       "set for example momentum=0.9");
    if (strcmp(c->schedule, "cosine") == 0 && c->lr_min > c->lr)
        return od_fail(OD_ERR_INVALID, "lr_min = %g is above lr = %g; the "
                       "cosine schedule decays from lr down to lr_min",
                       c->lr_min, c->lr);
    if (c->workload[0] == '\0')
        return od_fail(OD_ERR_INVALID, "workload is empty; name one, e.g. "
                       "workload=fmnist-mlp");
    /* The privacy analysis rests on random batches. */
    if (c->dp && !c->shuffle)
        return od_fail(OD_ERR_INVALID, "shuffle = false cannot be combined "
                       "with dp = true: DP-SGD's guarantee needs randomly "
                       "drawn batches; remove shuffle=false");
    return OD_OK;
}

/* ---- Output -------------------------------------------------------------- */

/* The shortest %g form that reads back to the same double. */
static void od__format_double(double v, char *buf, size_t len)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void od_config_value_text(const od_config *c, const od_config_key *k,
                          char *buf, size_t len)
{
    const char *field = (const char *)c + k->offset;
    switch (k->type) {
    case OD_CONFIG_INT:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
        break;
    case OD_CONFIG_FLOAT:
        od__format_double(*(const double *)field, buf, len);
        break;
    case OD_CONFIG_BOOL:
        snprintf(buf, len, "%s", *(const int *)field ? "true" : "false");
        break;
    case OD_CONFIG_SIZE:
        od_format_size(*(const uint64_t *)field, buf, len);
        break;
    case OD_CONFIG_STR:
    case OD_CONFIG_ENUM:
        snprintf(buf, len, "%s", field);
        break;
    }
}

void od_config_write_yaml(const od_config *c, FILE *f)
{
    fprintf(f, "# ondev configuration: the effective value of every key.\n"
               "# `ondev run FILE` reads this back; --set key=value "
               "overrides it.\n");
    for (size_t i = 0; i < OD_CONFIG_KEY_COUNT; i++) {
        const od_config_key *k = &od__keys[i];
        char value[OD_CONFIG_STR_MAX + 8];
        od_config_value_text(c, k, value, sizeof value);

        fprintf(f, "\n# %s", k->doc);
        if (k->type == OD_CONFIG_ENUM) {
            char list[256];
            od__enum_list(k->allowed, list, sizeof list);
            fprintf(f, " (%s)", list);
        } else if (*k->allowed) {
            fprintf(f, " %s", k->allowed);
        }
        fprintf(f, "\n%s: ", k->name);
        /* Text is double-quoted, which YAML and JSON escape alike. */
        if (k->type == OD_CONFIG_STR)
            od_json_write_escaped(f, value);
        else
            fputs(value, f);
        if (c->origin[i] == OD_CONFIG_FROM_FILE)
            fprintf(f, "  # from %s", c->file);
        else if (c->origin[i] == OD_CONFIG_FROM_ARG)
            fputs("  # from --set", f);
        fputc('\n', f);
    }
}

void od_config_write_markdown(FILE *f)
{
    fputs("| key | type | default | allowed | meaning |\n"
          "|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < OD_CONFIG_KEY_COUNT; i++) {
        const od_config_key *k = &od__keys[i];
        char allowed[256];
        if (k->type == OD_CONFIG_ENUM)
            od__enum_list(k->allowed, allowed, sizeof allowed);
        else if (k->type == OD_CONFIG_BOOL)
            snprintf(allowed, sizeof allowed, "true, false");
        else if (k->type == OD_CONFIG_SIZE)
            snprintf(allowed, sizeof allowed, "bytes, KiB, MiB, GiB, KB, "
                     "MB, GB");
        else if (k->type == OD_CONFIG_STR)
            snprintf(allowed, sizeof allowed, "text");
        else
            snprintf(allowed, sizeof allowed, "%s", k->allowed);
        const char *def = k->default_text;
        fprintf(f, "| `%s` | %s | %s%s%s | %s | %s |\n", k->name,
                od_config_type_name(k->type), *def ? "`" : "",
                *def ? def : "(empty)", *def ? "`" : "", allowed, k->doc);
    }
}
