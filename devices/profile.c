/* Device profiles: YAML data files, one per phone, read with libyaml.
 *
 * Every figure in a profile names its source. A mapping may give `src: ID`
 * for all of its figures, and any figure KEY may override it with
 * `KEY_src: ID`; IDs refer to the top-level `sources:` mapping. A figure
 * without a source is refused, like any other malformed content, with the
 * file, line and column of the offending node. docs/devices.md describes
 * the format. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "devices/device.h"

typedef struct od__ctx {
    yaml_document_t *doc;
    const char *file;
    od_dev_profile *p;
} od__ctx;

/* Fail with "FILE:LINE:COL: message" pointing at node n (may be NULL). */
static od_dev_status od__err(const od__ctx *c, const yaml_node_t *n,
                             const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static od_dev_status od__err(const od__ctx *c, const yaml_node_t *n,
                             const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        return od_dev_fail(OD_DEV_ERR_FORMAT, "%s:%zu:%zu: %s", c->file,
                           n->start_mark.line + 1, n->start_mark.column + 1,
                           msg);
    return od_dev_fail(OD_DEV_ERR_FORMAT, "%s: %s", c->file, msg);
}

static const char *od__scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                            : NULL;
}

/* The value under key in mapping map, or NULL. */
static yaml_node_t *od__get(const od__ctx *c, const yaml_node_t *map,
                            const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        const char *k = od__scalar(yaml_document_get_node(c->doc, pr->key));
        if (k && strcmp(k, key) == 0)
            return yaml_document_get_node(c->doc, pr->value);
    }
    return NULL;
}

/* Refuse keys of map that are not in allowed (NULL-terminated), not
 * "src" and not an allowed key followed by "_src". */
static od_dev_status od__check_keys(const od__ctx *c, const yaml_node_t *map,
                                    const char *where,
                                    const char *const *allowed)
{
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
         pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
        const char *k = od__scalar(kn);
        if (!k)
            return od__err(c, kn, "%s: keys must be plain names", where);
        if (strcmp(k, "src") == 0)
            continue;
        int ok = 0;
        size_t kl = strlen(k);
        for (const char *const *a = allowed; *a && !ok; a++) {
            size_t al = strlen(*a);
            ok = strcmp(k, *a) == 0 ||
                 (kl == al + 4 && strncmp(k, *a, al) == 0 &&
                  strcmp(k + al, "_src") == 0);
        }
        if (!ok) {
            char list[512] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 3);
                if (a[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            return od__err(c, kn, "%s: unknown key '%s' (expected one of: %s)",
                           where, k, list);
        }
    }
    return OD_DEV_OK;
}

static int od__source_index(const od_dev_profile *p, const char *id)
{
    for (int i = 0; i < p->nsources; i++)
        if (strcmp(p->sources[i].id, id) == 0)
            return i;
    return -1;
}

/* Resolve a source id given in node n (a scalar). */
static od_dev_status od__resolve(const od__ctx *c, const yaml_node_t *n,
                                 int *idx)
{
    const char *id = od__scalar(n);
    if (!id)
        return od__err(c, n, "a source must be one id from `sources:`");
    *idx = od__source_index(c->p, id);
    if (*idx < 0) {
        char list[512] = "";
        for (int i = 0; i < c->p->nsources; i++) {
            strncat(list, c->p->sources[i].id, sizeof list - strlen(list) - 3);
            if (i + 1 < c->p->nsources)
                strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return od__err(c, n, "unknown source '%s' (the file's sources: %s)",
                       id, list);
    }
    return OD_DEV_OK;
}

/* The mapping's own `src:` over the inherited one (-1: none). */
static od_dev_status od__map_source(const od__ctx *c, const yaml_node_t *map,
                                    int inherited, int *out)
{
    yaml_node_t *s = od__get(c, map, "src");
    *out = inherited;
    if (s)
        return od__resolve(c, s, out);
    return OD_DEV_OK;
}

/* Record where the figure at prefix.key came from; value node v is used for
 * the message when no source applies. */
static od_dev_status od__fact(const od__ctx *c, const yaml_node_t *map,
                              const char *prefix, const char *key,
                              int map_src, const yaml_node_t *v)
{
    char kbuf[80];
    snprintf(kbuf, sizeof kbuf, "%s_src", key);
    int src = map_src;
    yaml_node_t *own = od__get(c, map, kbuf);
    if (own) {
        od_dev_status st = od__resolve(c, own, &src);
        if (st)
            return st;
    }
    if (src < 0)
        return od__err(c, v, "%s.%s has no source: add `%s_src: ID` or a "
                       "`src: ID` for its section (IDs from `sources:`)",
                       prefix, key, key);
    od_dev_profile *p = c->p;
    if (p->nfacts == OD_DEV_MAX_FACTS)
        return od__err(c, v, "more than %d figures", OD_DEV_MAX_FACTS);
    od_dev_fact *f = &p->facts[p->nfacts++];
    snprintf(f->key, sizeof f->key, "%s.%s", prefix, key);
    f->source = src;
    f->value[0] = '\0';
    if (v->type == YAML_SCALAR_NODE) {
        snprintf(f->value, sizeof f->value, "%s", od__scalar(v));
    } else if (v->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = v->data.sequence.items.start;
             it < v->data.sequence.items.top; it++) {
            const char *s = od__scalar(yaml_document_get_node(c->doc, *it));
            size_t used = strlen(f->value);
            snprintf(f->value + used, sizeof f->value - used, "%s%s",
                     used ? ", " : "", s ? s : "?");
        }
    }
    return OD_DEV_OK;
}

static od_dev_status od__parse_double(const od__ctx *c, const yaml_node_t *n,
                                      const char *what, double *out)
{
    const char *s = od__scalar(n);
    if (!s || !*s)
        return od__err(c, n, "%s: expected a number", what);
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno || !isfinite(v))
        return od__err(c, n, "%s: '%s' is not a finite number", what, s);
    *out = v;
    return OD_DEV_OK;
}

/* A required number in [lo, hi] under key, with its source. */
static od_dev_status od__number(const od__ctx *c, const yaml_node_t *map,
                                const char *prefix, const char *key,
                                int map_src, double lo, double hi,
                                double *out)
{
    yaml_node_t *v = od__get(c, map, key);
    char what[96];
    snprintf(what, sizeof what, "%s.%s", prefix, key);
    if (!v)
        return od__err(c, map, "%s: missing key '%s'", prefix, key);
    od_dev_status st = od__parse_double(c, v, what, out);
    if (st)
        return st;
    if (*out < lo || *out > hi)
        return od__err(c, v, "%s = %g is outside [%g, %g]", what, *out, lo,
                       hi);
    return od__fact(c, map, prefix, key, map_src, v);
}

/* An optional number: *out keeps its value when the key is absent. */
static od_dev_status od__number_opt(const od__ctx *c, const yaml_node_t *map,
                                    const char *prefix, const char *key,
                                    int map_src, double lo, double hi,
                                    double *out)
{
    if (!od__get(c, map, key))
        return OD_DEV_OK;
    return od__number(c, map, prefix, key, map_src, lo, hi, out);
}

/* A list of numbers, each in [lo, hi]; *n_out 0 when absent and optional. */
static od_dev_status od__numbers(const od__ctx *c, const yaml_node_t *map,
                                 const char *prefix, const char *key,
                                 int map_src, int required, double lo,
                                 double hi, double *out, int cap, int *n_out)
{
    yaml_node_t *v = od__get(c, map, key);
    char what[96];
    snprintf(what, sizeof what, "%s.%s", prefix, key);
    *n_out = 0;
    if (!v) {
        if (required)
            return od__err(c, map, "%s: missing key '%s'", prefix, key);
        return OD_DEV_OK;
    }
    if (v->type != YAML_SEQUENCE_NODE)
        return od__err(c, v, "%s: expected a list of numbers, e.g. [1, 2]",
                       what);
    int n = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        if (n == cap)
            return od__err(c, e, "%s: more than %d values", what, cap);
        od_dev_status st = od__parse_double(c, e, what, &out[n]);
        if (st)
            return st;
        if (out[n] < lo || out[n] > hi)
            return od__err(c, e, "%s: %g is outside [%g, %g]", what, out[n],
                           lo, hi);
        n++;
    }
    if (n == 0)
        return od__err(c, v, "%s: the list is empty", what);
    *n_out = n;
    return od__fact(c, map, prefix, key, map_src, v);
}

/* A string; with a source when src_needed. */
static od_dev_status od__string(const od__ctx *c, const yaml_node_t *map,
                                const char *prefix, const char *key,
                                int map_src, int src_needed, char *out,
                                size_t cap)
{
    yaml_node_t *v = od__get(c, map, key);
    if (!v)
        return od__err(c, map, "%s: missing key '%s'", prefix, key);
    const char *s = od__scalar(v);
    if (!s || !*s)
        return od__err(c, v, "%s.%s: expected text", prefix, key);
    if (strlen(s) >= cap)
        return od__err(c, v, "%s.%s: longer than %zu characters", prefix, key,
                       cap - 1);
    snprintf(out, cap, "%s", s);
    return src_needed ? od__fact(c, map, prefix, key, map_src, v)
                      : OD_DEV_OK;
}

static od_dev_status od__mapping(const od__ctx *c, const yaml_node_t *parent,
                                 const char *key, yaml_node_t **out)
{
    *out = od__get(c, parent, key);
    if (!*out)
        return od__err(c, parent, "missing section '%s'", key);
    if ((*out)->type != YAML_MAPPING_NODE)
        return od__err(c, *out, "%s: expected a mapping of key: value", key);
    return OD_DEV_OK;
}

static od_dev_status od__ascending(const od__ctx *c, const yaml_node_t *n,
                                   const char *what, const double *v, int k)
{
    for (int i = 1; i < k; i++)
        if (!(v[i] > v[i - 1]))
            return od__err(c, n, "%s must ascend strictly (%g then %g)", what,
                           v[i - 1], v[i]);
    return OD_DEV_OK;
}

#define OD__TRY(call)                   \
    do {                                \
        od_dev_status od__s = (call);   \
        if (od__s != OD_DEV_OK)         \
            return od__s;               \
    } while (0)

static od_dev_status od__parse_sources(od__ctx *c, const yaml_node_t *root)
{
    yaml_node_t *m;
    OD__TRY(od__mapping(c, root, "sources", &m));
    od_dev_profile *p = c->p;
    for (yaml_node_pair_t *pr = m->data.mapping.pairs.start;
         pr < m->data.mapping.pairs.top; pr++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
        const char *k = od__scalar(kn), *v = od__scalar(vn);
        if (!k || !*k || strlen(k) >= OD_DEV_NAME_MAX)
            return od__err(c, kn, "sources: an id is a short name");
        if (!v || !*v)
            return od__err(c, vn, "sources.%s: expected the source as text",
                           k);
        if (od__source_index(p, k) >= 0)
            return od__err(c, kn, "sources: '%s' is given twice", k);
        if (p->nsources == OD_DEV_MAX_SOURCES)
            return od__err(c, kn, "sources: more than %d",
                           OD_DEV_MAX_SOURCES);
        od_dev_source *s = &p->sources[p->nsources++];
        snprintf(s->id, sizeof s->id, "%s", k);
        snprintf(s->text, sizeof s->text, "%s", v);
    }
    if (p->nsources == 0)
        return od__err(c, m, "sources: at least one source is needed");
    return OD_DEV_OK;
}

static od_dev_status od__parse_cluster(od__ctx *c, const yaml_node_t *m,
                                       int top_src, od_dev_cluster *cl)
{
    static const char *const keys[] = {
        "name", "core_type", "cores", "freq_khz", "core_current_ma",
        "cluster_current_ma", "heat_mw", "heat_scale", "flop_per_cycle",
        "l2_kib",
        "power_weight", NULL};
    if (m->type != YAML_MAPPING_NODE)
        return od__err(c, m, "clusters: each entry is a mapping");
    OD__TRY(od__string(c, m, "clusters[]", "name", -1, 0, cl->name,
                       sizeof cl->name));
    char pre[64];
    snprintf(pre, sizeof pre, "clusters.%s", cl->name);
    OD__TRY(od__check_keys(c, m, pre, keys));
    int src;
    OD__TRY(od__map_source(c, m, top_src, &src));
    OD__TRY(od__string(c, m, pre, "core_type", src, 1, cl->core_type,
                       sizeof cl->core_type));
    double cores;
    OD__TRY(od__number(c, m, pre, "cores", src, 1, 64, &cores));
    if (cores != floor(cores))
        return od__err(c, od__get(c, m, "cores"), "%s.cores: a whole number",
                       pre);
    cl->cores = (int)cores;

    OD__TRY(od__numbers(c, m, pre, "freq_khz", src, 1, 1e4, 1e8, cl->freq_khz,
                        OD_DEV_MAX_FREQS, &cl->nfreq));
    OD__TRY(od__ascending(c, od__get(c, m, "freq_khz"), "freq_khz",
                          cl->freq_khz, cl->nfreq));
    int n;
    OD__TRY(od__numbers(c, m, pre, "core_current_ma", src, 1, 0, 1e5,
                        cl->core_current_ma, OD_DEV_MAX_FREQS, &n));
    if (n != cl->nfreq)
        return od__err(c, od__get(c, m, "core_current_ma"),
                       "%s.core_current_ma has %d values, freq_khz has %d: "
                       "one current per frequency", pre, n, cl->nfreq);
    OD__TRY(od__number(c, m, pre, "cluster_current_ma", src, 0, 1e5,
                       &cl->cluster_current_ma));
    OD__TRY(od__numbers(c, m, pre, "heat_mw", src, 0, 0, 1e6, cl->heat_mw,
                        OD_DEV_MAX_FREQS, &n));
    if (n && n != cl->nfreq)
        return od__err(c, od__get(c, m, "heat_mw"),
                       "%s.heat_mw has %d values, freq_khz has %d: one power "
                       "per frequency", pre, n, cl->nfreq);
    cl->has_heat = n > 0;
    cl->heat_scale = 1.0;
    OD__TRY(od__number_opt(c, m, pre, "heat_scale", src, 0.05, 20,
                           &cl->heat_scale));
    if (cl->has_heat && od__get(c, m, "heat_scale"))
        return od__err(c, od__get(c, m, "heat_scale"),
                       "%s: give heat_mw or heat_scale, not both", pre);
    OD__TRY(od__number(c, m, pre, "flop_per_cycle", src, 0.1, 1024,
                       &cl->flop_per_cycle));
    double l2_kib;
    OD__TRY(od__number(c, m, pre, "l2_kib", src, 0, 1 << 20, &l2_kib));
    cl->l2_bytes = l2_kib * 1024.0;
    OD__TRY(od__number(c, m, pre, "power_weight", src, 0, 1,
                       &cl->power_weight));
    return OD_DEV_OK;
}

static od_dev_status od__parse_pid(od__ctx *c, const yaml_node_t *m, int src,
                                   int i, od_dev_pid_stage *s)
{
    static const char *const keys[] = {
        "control_c", "sustainable_mw", "k_po", "k_pu", "k_i", "k_d",
        "i_max_mw", "i_cutoff_c", "min_alloc_mw", "max_alloc_mw", NULL};
    char pre[48];
    snprintf(pre, sizeof pre, "thermal.pid[%d]", i);
    if (m->type != YAML_MAPPING_NODE)
        return od__err(c, m, "%s: expected a mapping", pre);
    OD__TRY(od__check_keys(c, m, pre, keys));
    OD__TRY(od__map_source(c, m, src, &src));
    OD__TRY(od__number(c, m, pre, "control_c", src, -40, 150, &s->control_c));
    OD__TRY(od__number(c, m, pre, "sustainable_mw", src, 1, 1e6,
                       &s->sustainable_mw));
    OD__TRY(od__number(c, m, pre, "k_po", src, 0, 1e6, &s->k_po));
    OD__TRY(od__number(c, m, pre, "k_pu", src, 0, 1e6, &s->k_pu));
    OD__TRY(od__number(c, m, pre, "k_i", src, 0, 1e6, &s->k_i));
    OD__TRY(od__number(c, m, pre, "k_d", src, 0, 1e6, &s->k_d));
    OD__TRY(od__number(c, m, pre, "i_max_mw", src, 0, 1e6, &s->i_max_mw));
    OD__TRY(od__number(c, m, pre, "i_cutoff_c", src, -100, 100,
                       &s->i_cutoff_c));
    OD__TRY(od__number(c, m, pre, "min_alloc_mw", src, 0, 1e6,
                       &s->min_alloc_mw));
    OD__TRY(od__number(c, m, pre, "max_alloc_mw", src, 0, 1e6,
                       &s->max_alloc_mw));
    if (s->max_alloc_mw < s->min_alloc_mw)
        return od__err(c, m, "%s: max_alloc_mw < min_alloc_mw", pre);
    return OD_DEV_OK;
}

static od_dev_status od__parse_thermal(od__ctx *c, const yaml_node_t *root,
                                       int top_src)
{
    static const char *const keys[] = {
        "r_soc_skin_c_per_w", "r_skin_ambient_c_per_w", "c_soc_j_per_c",
        "c_skin_j_per_c", "trips_c", "hysteresis_c", "poll_s", "pid", NULL};
    od_dev_profile *p = c->p;
    yaml_node_t *m;
    int src;
    OD__TRY(od__mapping(c, root, "thermal", &m));
    OD__TRY(od__check_keys(c, m, "thermal", keys));
    OD__TRY(od__map_source(c, m, top_src, &src));
    OD__TRY(od__number(c, m, "thermal", "r_soc_skin_c_per_w", src, 1e-3, 1e3,
                       &p->r_soc_skin_c_per_w));
    OD__TRY(od__number(c, m, "thermal", "r_skin_ambient_c_per_w", src, 1e-3,
                       1e3, &p->r_skin_amb_c_per_w));
    OD__TRY(od__number(c, m, "thermal", "c_soc_j_per_c", src, 1e-3, 1e6,
                       &p->c_soc_j_per_c));
    OD__TRY(od__number(c, m, "thermal", "c_skin_j_per_c", src, 1e-3, 1e6,
                       &p->c_skin_j_per_c));
    OD__TRY(od__numbers(c, m, "thermal", "trips_c", src, 1, -40, 150,
                        p->trips_c, OD_DEV_MAX_TRIPS, &p->ntrips));
    OD__TRY(od__ascending(c, od__get(c, m, "trips_c"), "thermal.trips_c",
                          p->trips_c, p->ntrips));
    OD__TRY(od__number(c, m, "thermal", "hysteresis_c", src, 0, 20,
                       &p->hysteresis_c));
    OD__TRY(od__number(c, m, "thermal", "poll_s", src, 0.01, 600,
                       &p->poll_s));

    yaml_node_t *pid = od__get(c, m, "pid");
    if (!pid)
        return od__err(c, m, "thermal: missing key 'pid'");
    if (pid->type != YAML_SEQUENCE_NODE)
        return od__err(c, pid, "thermal.pid: expected a list of stages");
    p->npid = 0;
    for (yaml_node_item_t *it = pid->data.sequence.items.start;
         it < pid->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        if (p->npid == OD_DEV_MAX_PID_STAGES)
            return od__err(c, e, "thermal.pid: more than %d stages",
                           OD_DEV_MAX_PID_STAGES);
        OD__TRY(od__parse_pid(c, e, src, p->npid, &p->pid[p->npid]));
        if (p->npid > 0 &&
            !(p->pid[p->npid].control_c > p->pid[p->npid - 1].control_c))
            return od__err(c, e, "thermal.pid: control_c must ascend");
        p->npid++;
    }
    if (p->npid == 0)
        return od__err(c, pid, "thermal.pid: at least one stage");
    return OD_DEV_OK;
}

/* The optional `efficiency:` section: op kind name -> share of a core's
 * peak FLOP rate in (0, 1], each with its source. Kinds not listed stay 0
 * (the emulator's default). */
static od_dev_status od__parse_efficiency(od__ctx *c, const yaml_node_t *root,
                                          int top_src)
{
    const char *keys[OD_DEV_OP_KIND_COUNT + 1];
    for (int k = 0; k < OD_DEV_OP_KIND_COUNT; k++)
        keys[k] = od_dev_op_kind_name(k);
    keys[OD_DEV_OP_KIND_COUNT] = NULL;
    if (!od__get(c, root, "efficiency"))
        return OD_DEV_OK;
    yaml_node_t *m;
    int src;
    OD__TRY(od__mapping(c, root, "efficiency", &m));
    OD__TRY(od__check_keys(c, m, "efficiency", keys));
    OD__TRY(od__map_source(c, m, top_src, &src));
    for (int k = 0; k < OD_DEV_OP_KIND_COUNT; k++)
        OD__TRY(od__number_opt(c, m, "efficiency", keys[k], src, 1e-4, 1.0,
                               &c->p->efficiency[k]));
    return OD_DEV_OK;
}

static od_dev_status od__parse_root(od__ctx *c, const yaml_node_t *root)
{
    static const char *const keys[] = {
        "name", "model", "soc", "sources", "clusters", "memory", "battery",
        "base_current_ma", "thermal", "efficiency", NULL};
    od_dev_profile *p = c->p;
    if (!root || root->type != YAML_MAPPING_NODE)
        return od__err(c, root, "a profile is a mapping of key: value "
                       "(see devices/profiles/pixel6.yaml)");
    OD__TRY(od__check_keys(c, root, "profile", keys));
    OD__TRY(od__parse_sources(c, root));
    int top;
    OD__TRY(od__map_source(c, root, -1, &top));

    yaml_node_t *nn = od__get(c, root, "name");
    if (nn) {
        const char *s = od__scalar(nn);
        if (!s || strcmp(s, p->name) != 0)
            return od__err(c, nn, "name: '%s' differs from the file name "
                           "'%s'; they must agree", s ? s : "", p->name);
    }
    OD__TRY(od__string(c, root, "profile", "model", top, 0, p->model,
                       sizeof p->model));
    OD__TRY(od__string(c, root, "profile", "soc", top, 0, p->soc,
                       sizeof p->soc));

    /* Clusters, in ascending order of performance. */
    yaml_node_t *cls = od__get(c, root, "clusters");
    if (!cls || cls->type != YAML_SEQUENCE_NODE)
        return od__err(c, cls ? cls : root,
                       "clusters: expected a list of CPU clusters");
    p->nclusters = 0;
    for (yaml_node_item_t *it = cls->data.sequence.items.start;
         it < cls->data.sequence.items.top; it++) {
        yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        if (p->nclusters == OD_DEV_MAX_CLUSTERS)
            return od__err(c, e, "clusters: more than %d",
                           OD_DEV_MAX_CLUSTERS);
        od_dev_cluster *cl = &p->clusters[p->nclusters];
        OD__TRY(od__parse_cluster(c, e, top, cl));
        if (od_dev_profile_cluster_index(p, cl->name) >= 0)
            return od__err(c, e, "clusters: the name '%s' is used twice",
                           cl->name);
        p->nclusters++;
    }
    if (p->nclusters == 0)
        return od__err(c, cls, "clusters: at least one cluster");

    /* Memory. */
    static const char *const mkeys[] = {"total_gib", "peak_bandwidth_gb_s",
                                        "cpu_bandwidth_share", "app_share",
                                        NULL};
    yaml_node_t *m;
    int src;
    double gib, gbs;
    OD__TRY(od__mapping(c, root, "memory", &m));
    OD__TRY(od__check_keys(c, m, "memory", mkeys));
    OD__TRY(od__map_source(c, m, top, &src));
    OD__TRY(od__number(c, m, "memory", "total_gib", src, 0.0625, 1024, &gib));
    OD__TRY(od__number(c, m, "memory", "peak_bandwidth_gb_s", src, 0.1, 1e4,
                       &gbs));
    OD__TRY(od__number(c, m, "memory", "cpu_bandwidth_share", src, 0.01, 1,
                       &p->mem_cpu_bw_share));
    OD__TRY(od__number(c, m, "memory", "app_share", src, 0.01, 1,
                       &p->mem_app_share));
    p->mem_total_bytes = gib * 1073741824.0;
    p->mem_bandwidth_bytes_per_s = gbs * 1e9;

    /* Battery. */
    static const char *const bkeys[] = {"capacity_mah", "nominal_v",
                                        "charge_current_ma", "kibam_c",
                                        "kibam_k_per_s", NULL};
    OD__TRY(od__mapping(c, root, "battery", &m));
    OD__TRY(od__check_keys(c, m, "battery", bkeys));
    OD__TRY(od__map_source(c, m, top, &src));
    OD__TRY(od__number(c, m, "battery", "capacity_mah", src, 1, 1e6,
                       &p->battery_mah));
    OD__TRY(od__number(c, m, "battery", "nominal_v", src, 0.5, 100,
                       &p->battery_v));
    OD__TRY(od__number(c, m, "battery", "charge_current_ma", src, 0, 1e5,
                       &p->charge_current_ma));
    p->kibam_c = 1.0;
    p->kibam_k_per_s = 0.0;
    OD__TRY(od__number_opt(c, m, "battery", "kibam_c", src, 0.01, 1,
                           &p->kibam_c));
    OD__TRY(od__number_opt(c, m, "battery", "kibam_k_per_s", src, 0, 1,
                           &p->kibam_k_per_s));

    /* Base currents of the whole phone (screen and radios off). */
    static const char *const ckeys[] = {"suspend", "awake", "active", NULL};
    OD__TRY(od__mapping(c, root, "base_current_ma", &m));
    OD__TRY(od__check_keys(c, m, "base_current_ma", ckeys));
    OD__TRY(od__map_source(c, m, top, &src));
    OD__TRY(od__number(c, m, "base_current_ma", "suspend", src, 0, 1e4,
                       &p->suspend_ma));
    OD__TRY(od__number(c, m, "base_current_ma", "awake", src, 0, 1e4,
                       &p->awake_ma));
    OD__TRY(od__number(c, m, "base_current_ma", "active", src, 0, 1e4,
                       &p->active_ma));

    OD__TRY(od__parse_thermal(c, root, top));
    return od__parse_efficiency(c, root, top);
}

/* The file stem of path: "a/b/pixel6.yaml" -> "pixel6". */
static void od__stem(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    else if (n > 4 && strcmp(base + n - 4, ".yml") == 0)
        n -= 4;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

od_dev_status od_dev_profile_parse(const char *text, size_t len,
                                   const char *name, od_dev_profile *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->path, sizeof p->path, "%s", name);
    od__stem(name, p->name, sizeof p->name);

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return od_dev_fail(OD_DEV_ERR_NOMEM, "out of memory reading %s",
                           name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        od_dev_status st = od_dev_fail(
            OD_DEV_ERR_FORMAT, "%s:%zu:%zu: YAML syntax: %s", name,
            parser.problem_mark.line + 1, parser.problem_mark.column + 1,
            parser.problem ? parser.problem : "unreadable");
        yaml_parser_delete(&parser);
        return st;
    }
    od__ctx c = {.doc = &doc, .file = name, .p = p};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    od_dev_status st = root ? od__parse_root(&c, root)
                            : od__err(&c, NULL, "the file is empty");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return st;
}

od_dev_status od_dev_profile_load(const char *path, od_dev_profile *p)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return od_dev_fail(OD_DEV_ERR_IO, "cannot open device profile %s: %s",
                           path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return od_dev_fail(OD_DEV_ERR_NOMEM, "out of memory reading "
                                   "%s", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return od_dev_fail(OD_DEV_ERR_IO, "cannot read device profile %s",
                           path);
    }
    od_dev_status st = od_dev_profile_parse(buf, len, path, p);
    free(buf);
    return st;
}

const char *od_dev_profile_source(const od_dev_profile *p, const char *key)
{
    for (int i = 0; i < p->nfacts; i++)
        if (strcmp(p->facts[i].key, key) == 0)
            return p->sources[p->facts[i].source].text;
    return NULL;
}

double od_dev_profile_mem_budget_bytes(const od_dev_profile *p)
{
    return floor(p->mem_total_bytes * p->mem_app_share);
}

int od_dev_profile_big_cluster(const od_dev_profile *p)
{
    int best = 0;
    double best_rate = -1.0;
    for (int i = 0; i < p->nclusters; i++) {
        const od_dev_cluster *c = &p->clusters[i];
        double rate = c->flop_per_cycle * c->freq_khz[c->nfreq - 1];
        if (rate >= best_rate) {
            best_rate = rate;
            best = i;
        }
    }
    return best;
}

int od_dev_profile_cluster_index(const od_dev_profile *p, const char *name)
{
    for (int i = 0; i < p->nclusters; i++)
        if (strcmp(p->clusters[i].name, name) == 0)
            return i;
    return -1;
}

/* --------------------------------------------------------------- search */

static void od__add_dir(od_dev_search_path *sp, const char *dir, size_t len)
{
    if (len == 0 || sp->ndirs == 16 || len >= OD_DEV_TEXT_MAX)
        return;
    memcpy(sp->dirs[sp->ndirs], dir, len);
    sp->dirs[sp->ndirs][len] = '\0';
    sp->ndirs++;
}

void od_dev_search_path_init(od_dev_search_path *sp, const char *shipped_dir)
{
    sp->ndirs = 0;
    const char *env = getenv("ONDEV_DEVICE_PATH");
    while (env && *env) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        od__add_dir(sp, env, len);
        env = colon ? colon + 1 : NULL;
    }
    if (shipped_dir)
        od__add_dir(sp, shipped_dir, strlen(shipped_dir));
}

static int od__cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int od_dev_profile_names(const od_dev_search_path *sp,
                         char (*names)[OD_DEV_NAME_MAX], int cap)
{
    int n = 0;
    for (int d = 0; d < sp->ndirs; d++) {
        DIR *dir = opendir(sp->dirs[d]);
        if (!dir)
            continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len <= 5 || strcmp(de->d_name + len - 5, ".yaml") != 0 ||
                de->d_name[0] == '.')
                continue;
            char stem[OD_DEV_NAME_MAX];
            od__stem(de->d_name, stem, sizeof stem);
            int dup = 0;
            for (int i = 0; i < n && i < cap && !dup; i++)
                dup = strcmp(names[i], stem) == 0;
            if (dup)
                continue;
            if (n < cap)
                snprintf(names[n], OD_DEV_NAME_MAX, "%s", stem);
            n++;
        }
        closedir(dir);
    }
    qsort(names, (size_t)(n < cap ? n : cap), OD_DEV_NAME_MAX, od__cmp_names);
    return n;
}

od_dev_status od_dev_profile_find(const od_dev_search_path *sp,
                                  const char *name, od_dev_profile *p)
{
    size_t len = strlen(name);
    if (strchr(name, '/') || (len > 5 && strcmp(name + len - 5, ".yaml") == 0))
        return od_dev_profile_load(name, p);
    if (len == 0 || len >= OD_DEV_NAME_MAX)
        return od_dev_fail(OD_DEV_ERR_INVALID, "'%s' is not a device name",
                           name);

    for (int d = 0; d < sp->ndirs; d++) {
        char path[OD_DEV_TEXT_MAX + OD_DEV_NAME_MAX + 8];
        snprintf(path, sizeof path, "%s/%s.yaml", sp->dirs[d], name);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return od_dev_profile_load(path, p);
        }
    }

    char names[64][OD_DEV_NAME_MAX];
    int n = od_dev_profile_names(sp, names, 64);
    char list[1024] = "";
    for (int i = 0; i < n && i < 64; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 3);
        if (i + 1 < n && i + 1 < 64)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    if (n == 0)
        return od_dev_fail(OD_DEV_ERR_NOT_FOUND, "unknown device '%s': no "
                           "profiles found (searched ONDEV_DEVICE_PATH and "
                           "the shipped devices/profiles)", name);
    return od_dev_fail(OD_DEV_ERR_NOT_FOUND, "unknown device '%s'; known "
                       "devices: %s (add NAME.yaml to a directory on "
                       "ONDEV_DEVICE_PATH for another)", name, list);
}
