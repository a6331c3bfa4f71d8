/* `ondev workloads`: the workloads with their data, model and metrics, and
 * `ondev workloads partition ...`: how a workload's training data splits
 * across the clients of a federated run. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/json.h"
#include "harness/log.h"
#include "workloads/partition.h"
#include "workloads/workload.h"

static void od__workloads_help(FILE *f)
{
    fprintf(f,
            "usage: ondev workloads [--json]\n"
            "       ondev workloads partition --set workload=NAME "
            "[--set key=value]... [--json]\n"
            "\n"
            "The first form lists the workloads: data source, sizes, model, "
            "parameters\nand metrics. The second splits a workload's "
            "training data across clients\nand prints each client's sample "
            "count and label entropy, with totals.\n"
            "\n"
            "partition keys:\n"
            "  workload=NAME       the workload (default fmnist-mlp)\n"
            "  partition=SCHEME    iid | dirichlet | natural | lognormal | "
            "powerlaw (default iid)\n"
            "  clients=N           number of clients (default 10; natural: "
            "0 = one per owner)\n"
            "  alpha=A             dirichlet concentration, > 0 (default "
            "0.5)\n"
            "  sigma=S             lognormal spread of log sizes, > 0 "
            "(default 1)\n"
            "  exponent=E          power-law tail index, > 0 (default 1.5)\n"
            "  level=L             natural owner: kjv-char chapter | book, "
            "har-cnn user\n"
            "  seed=N              seed of the split and of generated data "
            "(default 1)\n"
            "  train_subset=N      the first N training samples only (0: "
            "all)\n"
            "  data_dir=DIR        data or cache directory (empty: the "
            "workload's)\n"
            "\n"
            "options:\n"
            "  --json              the summary as JSON on stdout\n"
            "  -h, --help          this help\n");
}

/* ---- Listing ------------------------------------------------------------- */

/* Parameters of w's model, built in a scratch arena; 0 when it cannot be
 * built. */
static size_t od__param_count(const od_workload *w)
{
    od_arena *a = od_arena_create(0);
    if (!a)
        return 0;
    od_ctx ctx = {.arena = a};
    od_model *m = NULL;
    size_t n = 0;
    if (w->build_model(&ctx, &m) == OD_OK) {
        n = od_model_param_count(m, 0);
        od_model_destroy(m);
    }
    od_arena_destroy(a);
    return n;
}

static void od__shape(const od_workload *w, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < w->sample_ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? ", " : "",
                              w->sample_dims[i]);
    if (o < len)
        snprintf(buf + o, len - o, ")");
}

static int od__list(int json)
{
    if (json) {
        od_json j;
        od_json_init(&j, stdout);
        od_json_begin_array(&j, NULL);
        for (int i = 0; i < od_workload_count(); i++) {
            const od_workload *w = od_workload_at(i);
            od_json_begin_object(&j, NULL);
            od_json_string(&j, "name", w->name);
            od_json_string(&j, "description", w->description);
            od_json_string(&j, "data_source", w->data_source);
            od_json_string(&j, "metrics", w->metrics);
            od_json_begin_array(&j, "sample_dims");
            for (int k = 0; k < w->sample_ndim; k++)
                od_json_int(&j, NULL, w->sample_dims[k]);
            od_json_end_array(&j);
            od_json_int(&j, "labels_per_sample", w->labels_per_sample);
            od_json_int(&j, "num_classes", w->num_classes);
            od_json_int(&j, "param_count", (int64_t)od__param_count(w));
            if (w->group_kind)
                od_json_string(&j, "natural_clients", w->group_kind);
            else
                od_json_null(&j, "natural_clients");
            od_json_end_object(&j);
        }
        od_json_end_array(&j);
        fputc('\n', stdout);
        return fflush(stdout) == 0 ? OD_EXIT_OK : OD_EXIT_FAIL;
    }
    for (int i = 0; i < od_workload_count(); i++) {
        const od_workload *w = od_workload_at(i);
        char shape[64];
        od__shape(w, shape, sizeof shape);
        printf("%s\n  %s\n  data: %s\n  sample %s, %d label%s, %d "
               "classes; %zu parameters\n  metrics: %s\n  natural clients: "
               "%s\n", w->name, w->description, w->data_source, shape,
               w->labels_per_sample, w->labels_per_sample == 1 ? "" : "s",
               w->num_classes, od__param_count(w), w->metrics,
               w->group_kind ? w->group_kind : "none (use iid, dirichlet, "
               "lognormal or powerlaw)");
    }
    return OD_EXIT_OK;
}

/* ---- Partition ----------------------------------------------------------- */

typedef struct od__part_args {
    const char *workload;
    const char *level;
    const char *data_dir;
    od_partition_opts opts;
    long long train_subset;
} od__part_args;

/* Parse a whole number or a finite real; 0 on success. */
static int od__parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int od__parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Apply one key=value; OD_ERR_INVALID with the reason when it is unknown
 * or out of range. Ranges that depend on the data are checked later. */
static od_status od__part_set(od__part_args *a, char *kv)
{
    char *eq = strchr(kv, '=');
    if (!eq)
        return od_fail(OD_ERR_INVALID, "'%s' is not key=value", kv);
    *eq = '\0';
    const char *k = kv, *v = eq + 1;
    long long n;
    double x;
    if (strcmp(k, "workload") == 0) {
        a->workload = v;
    } else if (strcmp(k, "partition") == 0) {
        OD_TRY(od_partition_scheme_parse(v, &a->opts.scheme));
    } else if (strcmp(k, "clients") == 0) {
        if (od__parse_ll(v, &n) || n < 0 || n > INT32_MAX)
            return od_fail(OD_ERR_INVALID, "clients = '%s': expected a "
                           "whole number from 1 (0: natural, one per "
                           "owner)", v);
        a->opts.clients = (int)n;
    } else if (strcmp(k, "alpha") == 0) {
        if (od__parse_double(v, &x) || !(x > 0))
            return od_fail(OD_ERR_INVALID, "alpha = '%s': the Dirichlet "
                           "concentration must be a number above 0 (0.1: "
                           "strong label skew, 100: nearly iid)", v);
        a->opts.alpha = x;
    } else if (strcmp(k, "sigma") == 0) {
        if (od__parse_double(v, &x) || !(x > 0))
            return od_fail(OD_ERR_INVALID, "sigma = '%s': expected a "
                           "number above 0", v);
        a->opts.sigma = x;
    } else if (strcmp(k, "exponent") == 0) {
        if (od__parse_double(v, &x) || !(x > 0))
            return od_fail(OD_ERR_INVALID, "exponent = '%s': expected a "
                           "number above 0", v);
        a->opts.exponent = x;
    } else if (strcmp(k, "seed") == 0) {
        if (od__parse_ll(v, &n) || n < 0)
            return od_fail(OD_ERR_INVALID, "seed = '%s': expected a whole "
                           "number from 0", v);
        a->opts.seed = (uint64_t)n;
    } else if (strcmp(k, "train_subset") == 0) {
        if (od__parse_ll(v, &n) || n < 0 || n > INT32_MAX)
            return od_fail(OD_ERR_INVALID, "train_subset = '%s': expected "
                           "a whole number from 0", v);
        a->train_subset = n;
    } else if (strcmp(k, "level") == 0) {
        a->level = v;
    } else if (strcmp(k, "data_dir") == 0) {
        a->data_dir = v;
    } else {
        return od_fail(OD_ERR_INVALID, "unknown partition key '%s'; keys: "
                       "workload, partition, clients, alpha, sigma, "
                       "exponent, level, seed, train_subset, data_dir", k);
    }
    return OD_OK;
}

/* owner_of for natural partitions at a workload's level. */
typedef struct od__level_arg {
    const od_workload *w;
    const char *level;
} od__level_arg;

static int32_t od__owner_at_level(int32_t group, const void *arg)
{
    const od__level_arg *la = arg;
    return la->w->group_at_level(group, la->level);
}

static void od__part_write_json(const od__part_args *a, const od_workload *w,
                                const od_dataset *d, const od_partition *p,
                                const od_partition_stats *s,
                                const double *entropy)
{
    od_json j;
    od_json_init(&j, stdout);
    od_json_begin_object(&j, NULL);
    od_json_string(&j, "workload", w->name);
    od_json_string(&j, "partition", od_partition_scheme_name(a->opts.scheme));
    od_json_int(&j, "seed", (int64_t)a->opts.seed);
    if (a->opts.scheme == OD_PARTITION_DIRICHLET)
        od_json_double(&j, "alpha", a->opts.alpha);
    if (a->opts.scheme == OD_PARTITION_LOGNORMAL)
        od_json_double(&j, "sigma", a->opts.sigma);
    if (a->opts.scheme == OD_PARTITION_POWERLAW)
        od_json_double(&j, "exponent", a->opts.exponent);
    if (a->opts.scheme == OD_PARTITION_NATURAL)
        od_json_string(&j, "level", a->level && a->level[0]
                                        ? a->level
                                        : (w->group_kind ? w->group_kind
                                                         : ""));
    od_json_int(&j, "samples", d->n);
    od_json_int(&j, "num_classes", d->num_classes);
    od_json_int(&j, "clients", s->clients);
    od_json_int(&j, "min_size", s->min_size);
    od_json_int(&j, "max_size", s->max_size);
    od_json_double(&j, "mean_size", s->mean_size);
    od_json_double(&j, "std_size", s->std_size);
    od_json_double(&j, "mean_label_entropy_bits", s->mean_label_entropy_bits);
    od_json_double(&j, "global_label_entropy_bits",
                   s->global_label_entropy_bits);
    od_json_double(&j, "mean_classes_per_client", s->mean_classes_per_client);
    od_json_begin_array(&j, "sizes");
    for (int c = 0; c < p->clients; c++)
        od_json_int(&j, NULL, od_partition_size(p, c));
    od_json_end_array(&j);
    od_json_double_array(&j, "label_entropy_bits", entropy,
                         (size_t)p->clients);
    od_json_end_object(&j);
    fputc('\n', stdout);
}

static void od__part_write_text(const od__part_args *a, const od_workload *w,
                                const od_dataset *d, const od_partition *p,
                                const od_partition_stats *s,
                                const double *entropy)
{
    printf("%s: %d training samples, %d classes, partition %s", w->name,
           d->n, d->num_classes, od_partition_scheme_name(a->opts.scheme));
    if (a->opts.scheme == OD_PARTITION_DIRICHLET)
        printf(" (alpha %g)", a->opts.alpha);
    else if (a->opts.scheme == OD_PARTITION_LOGNORMAL)
        printf(" (sigma %g)", a->opts.sigma);
    else if (a->opts.scheme == OD_PARTITION_POWERLAW)
        printf(" (exponent %g)", a->opts.exponent);
    printf(", seed %llu\n", (unsigned long long)a->opts.seed);
    printf("%-8s %10s %16s\n", "client", "samples", "label entropy");
    for (int c = 0; c < p->clients; c++)
        printf("%-8d %10lld %11.3f bits\n", c,
               (long long)od_partition_size(p, c), entropy[c]);
    printf("clients %d; size min %lld, max %lld, mean %.1f, std %.1f\n",
           s->clients, (long long)s->min_size, (long long)s->max_size,
           s->mean_size, s->std_size);
    printf("label entropy: mean %.3f bits per client (whole set %.3f); "
           "%.1f classes per client on average\n",
           s->mean_label_entropy_bits, s->global_label_entropy_bits,
           s->mean_classes_per_client);
}

static int od__partition(int argc, char **argv, int json)
{
    od__part_args a;
    memset(&a, 0, sizeof a);
    a.workload = "fmnist-mlp";
    od_partition_opts_init(&a.opts);
    a.opts.seed = 1;
    int clients_set = 0;

    /* Every key is checked before any data is read. */
    for (int i = 0; i < argc; i++) {
        char *kv = NULL;
        if (strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "-s") == 0) {
            if (i + 1 == argc) {
                od_log_error("%s needs key=value", argv[i]);
                return OD_EXIT_USAGE;
            }
            kv = argv[++i];
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
            kv = argv[i] + 6;
        } else {
            od_log_error("workloads partition: unknown argument '%s' (see "
                         "ondev workloads --help)", argv[i]);
            return OD_EXIT_USAGE;
        }
        clients_set |= strncmp(kv, "clients=", 8) == 0;
        if (od__part_set(&a, kv) != OD_OK) {
            od_log_error("%s", od_error_message());
            return OD_EXIT_USAGE;
        }
    }
    if (a.opts.scheme == OD_PARTITION_NATURAL && !clients_set)
        a.opts.clients = 0;
    if (a.opts.clients == 0 && a.opts.scheme != OD_PARTITION_NATURAL) {
        od_log_error("clients = 0: a %s partition needs at least one "
                     "client", od_partition_scheme_name(a.opts.scheme));
        return OD_EXIT_USAGE;
    }
    const od_workload *w;
    if (od_workload_lookup(a.workload, &w) != OD_OK) {
        od_log_error("%s", od_error_message());
        return OD_EXIT_USAGE;
    }
    od__level_arg la = {w, a.level};
    if (a.level && a.level[0]) {
        if (a.opts.scheme != OD_PARTITION_NATURAL) {
            od_log_error("level applies to natural partitions only");
            return OD_EXIT_USAGE;
        }
        if (!w->group_at_level || w->group_at_level(0, a.level) < 0) {
            if (!w->group_kind || strcmp(a.level, w->group_kind) != 0) {
                const char *known = w->group_levels ? w->group_levels
                                                    : w->group_kind;
                od_log_error("%s has no natural level '%s'; %s%s", w->name,
                             a.level, known ? "levels: " : "it has no "
                             "natural owners", known ? known : "");
                return OD_EXIT_USAGE;
            }
        } else {
            a.opts.owner_of = od__owner_at_level;
            a.opts.owner_arg = &la;
        }
    }

    /* The data, then the split. */
    od_workload_opts wo;
    od_workload_opts_init(&wo);
    wo.data_dir = a.data_dir;
    wo.train_subset = (int)a.train_subset;
    wo.test_subset = 1;
    wo.seed = a.opts.seed;
    od_dataset train, test;
    od_status st = w->load(&wo, &train, &test);
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        return OD_EXIT_USAGE;
    }
    od_dataset_free(&test);

    od_partition p;
    st = od_partition_make(&train, &a.opts, &p);
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        od_dataset_free(&train);
        return OD_EXIT_USAGE;
    }
    od_partition_stats s;
    double *entropy = malloc((size_t)p.clients * sizeof *entropy);
    st = entropy ? od_partition_stats_compute(&train, &p, &s, entropy)
                 : od_fail(OD_ERR_NOMEM, "out of memory");
    int rc = OD_EXIT_OK;
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        rc = OD_EXIT_FAIL;
    } else if (json) {
        od__part_write_json(&a, w, &train, &p, &s, entropy);
    } else {
        od__part_write_text(&a, w, &train, &p, &s, entropy);
    }
    if (rc == OD_EXIT_OK && fflush(stdout) != 0)
        rc = OD_EXIT_FAIL;
    free(entropy);
    od_partition_free(&p);
    od_dataset_free(&train);
    return rc;
}

int od_cmd_workloads(int argc, char **argv)
{
    od_cli_common common = {0};
    int sub = 0;   /* index of "partition" */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest) {
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        if (od_cli_common_option(&common, argv[i]))
            continue;
        if (!sub && strcmp(argv[i], "partition") == 0) {
            sub = i;
            continue;
        }
        rest[nrest++] = argv[i];
    }
    int rc;
    if (common.help) {
        od__workloads_help(stdout);
        rc = OD_EXIT_OK;
    } else if (sub) {
        rc = od__partition(nrest, rest, common.json);
    } else if (nrest) {
        od_log_error("workloads: unknown argument '%s' (see ondev workloads "
                     "--help)", rest[0]);
        rc = OD_EXIT_USAGE;
    } else {
        rc = od__list(common.json);
    }
    free(rest);
    return rc;
}
