#include "harness/results_bridge.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "engine/cost.h"
#include "engine/cpu.h"
#include "harness/topology.h"
#include "results/results.h"

#ifndef ONDEV_VERSION
#define ONDEV_VERSION "unknown"
#endif
#ifndef ONDEV_GIT_DESCRIBE
#define ONDEV_GIT_DESCRIBE "unknown"
#endif
#ifndef ONDEV_COMPILER
#define ONDEV_COMPILER "unknown"
#endif

/* Columns of traces/steps, in the order of od_results_step_row. */
static const char *const od__step_cols[] = {
    "step", "host_time_s", "emulated_time_s", "energy_j", "soc_temp_c",
    "skin_temp_c", "freq_khz", "battery_soc_pct", "loss", "accuracy",
    "epsilon",
};
static const char *const od__step_units[] = {
    "1", "s", "s", "J", "degC", "degC", "kHz", "%", "nat", "1", "1",
};
#define OD__NSTEP_COLS (int)(sizeof od__step_cols / sizeof od__step_cols[0])

struct od_results_run {
    od_res_writer *w;
    od_res_table *steps;
    char path[1024];
};

void od_results_step_init(od_results_step_row *row)
{
    double *v = (double *)row;
    for (size_t i = 0; i < sizeof *row / sizeof(double); i++)
        v[i] = NAN;
}

const char *od_results_path(const od_results_run *w) { return w->path; }

od_status od_results_default_path(char *buf, size_t len)
{
    const char *dir = "ondev-results";
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return od_fail(OD_ERR_IO, "cannot create the directory %s for the "
                       "results: %s (or give --out FILE)", dir,
                       strerror(errno));
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y%m%d-%H%M%S", &tm);
    snprintf(buf, len, "%s/run-%s-%ld.h5", dir, when, (long)getpid());
    return OD_OK;
}

/* A failure of the store as an od_status with its message. */
static od_status od__io(void)
{
    return od_fail(OD_ERR_IO, "results: %s", od_res_error());
}

static int od__write_config(od_res_writer *w, const od_config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return od_res_fail("out of memory");
    od_config_write_yaml(c, m);
    fclose(m);
    int rc = od_res_put_text(w, "config", "text", text);
    free(text);
    if (c->file[0])
        rc |= od_res_put_text(w, "config", "file", c->file);

    size_t nkeys;
    const od_config_key *keys = od_config_keys(&nkeys);
    for (size_t i = 0; i < nkeys && rc == 0; i++) {
        char value[OD_CONFIG_STR_MAX + 32];
        od_config_value_text(c, &keys[i], value, sizeof value);
        rc = od_res_put_text(w, "config", keys[i].name, value);
    }
    return rc;
}

static int od__write_build_host(od_res_writer *w)
{
    int rc = od_res_put_text(w, "build", "version", ONDEV_VERSION);
    rc |= od_res_put_text(w, "build", "git_describe", ONDEV_GIT_DESCRIBE);
    rc |= od_res_put_text(w, "build", "compiler", ONDEV_COMPILER);
    rc |= od_res_put_text(w, "build", "isa", od_isa_name(od_cpu_isa()));
    rc |= od_res_put_text(w, "build", "isa_detected",
                          od_isa_name(od_cpu_isa_detected()));

    od_host h;
    od_host_describe(&h);
    rc |= od_res_put_text(w, "host", "cpu_model", h.cpu_model);
    rc |= od_res_put_text(w, "host", "topology_source",
                          h.known ? "hwloc" : "sysconf");
    rc |= od_res_put_int(w, "host", "packages", h.packages, "1");
    rc |= od_res_put_int(w, "host", "cores", h.cores, "1");
    rc |= od_res_put_int(w, "host", "pus", h.pus, "1");
    rc |= od_res_put_int(w, "host", "l1d_bytes", (int64_t)h.l1d_bytes, "B");
    rc |= od_res_put_int(w, "host", "l2_bytes", (int64_t)h.l2_bytes, "B");
    rc |= od_res_put_int(w, "host", "l3_bytes", (int64_t)h.l3_bytes, "B");
    struct utsname u;
    if (uname(&u) == 0) {
        char os[2 * sizeof u.release];
        snprintf(os, sizeof os, "%s %s", u.sysname, u.release);
        rc |= od_res_put_text(w, "host", "os", os);
        rc |= od_res_put_text(w, "host", "machine", u.machine);
    }
    /* Whether hardware counters could be read by an unprivileged process:
     * perf_event_paranoid above 2 forbids it. */
    const char *counters = "unknown";
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    int paranoid;
    if (f && fscanf(f, "%d", &paranoid) == 1)
        counters = paranoid <= 2 ? "available" : "not available "
                                                 "(perf_event_paranoid > 2)";
    if (f)
        fclose(f);
    rc |= od_res_put_text(w, "host", "hardware_counters", counters);
    return rc;
}

od_status od_results_begin(const char *path, const od_config *c,
                           od_results_run **out)
{
    *out = NULL;
    od_results_run *r = calloc(1, sizeof *r);
    if (!r)
        return od_fail(OD_ERR_NOMEM, "out of host memory");
    if (strlen(path) >= sizeof r->path) {
        free(r);
        return od_fail(OD_ERR_INVALID, "results path too long: %s", path);
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    if (od_res_create(path, OD_RES_KIND_RUN, &r->w)) {
        free(r);
        return od__io();
    }
    int rc = od__write_config(r->w, c);
    if (rc == 0)
        rc = od__write_build_host(r->w);
    if (rc == 0)
        rc = od_res_table_create(r->w, "traces/steps", OD__NSTEP_COLS,
                                 od__step_cols, od__step_units, &r->steps);
    if (rc == 0)
        rc = od_res_flush(r->w);
    if (rc) {
        od_status st = od__io();
        od_results_abandon(r);
        return st;
    }
    *out = r;
    return OD_OK;
}

od_status od_results_step(od_results_run *w, const od_results_step_row *row)
{
    _Static_assert(sizeof(od_results_step_row) ==
                       OD__NSTEP_COLS * sizeof(double),
                   "od__step_cols must list every field of the row");
    if (od_res_table_append(w->steps, (const double *)row))
        return od__io();
    return OD_OK;
}

od_status od_results_put(od_results_run *w, const char *key, double value,
                         const char *units)
{
    if (od_res_put_num(w->w, "summary", key, value, units))
        return od__io();
    return OD_OK;
}

od_status od_results_put_text(od_results_run *w, const char *key,
                              const char *text)
{
    if (od_res_put_text(w->w, "summary", key, text))
        return od__io();
    return OD_OK;
}

/* The figures of `ondev run --json`, each with units. */
static int od__write_summary(od_res_writer *w, const od_run_result *r)
{
    const char *g = "summary";
    int rc = od_res_put_text(w, g, "workload", r->workload);
    rc |= od_res_put_text(w, g, "isa", r->isa);
    rc |= od_res_put_int(w, g, "epochs", r->epochs, "1");
    rc |= od_res_put_int(w, g, "start_epoch", r->start_epoch, "1");
    rc |= od_res_put_int(w, g, "epochs_done", r->epochs_done, "1");
    rc |= od_res_put_int(w, g, "interrupted", r->interrupted, "1");
    rc |= od_res_put_int(w, g, "train_size", r->train_size, "1");
    rc |= od_res_put_int(w, g, "test_size", r->test_size, "1");
    rc |= od_res_put_int(w, g, "samples", r->samples, "1");
    rc |= od_res_put_int(w, g, "steps", r->steps, "1");
    rc |= od_res_put_int(w, g, "batch_size", r->batch_size, "1");
    rc |= od_res_put_int(w, g, "threads", r->threads, "1");
    rc |= od_res_put_int(w, g, "bound", r->bound, "1");
    rc |= od_res_put_int(w, g, "seed", (int64_t)r->seed, "1");
    rc |= od_res_put_num(w, g, "host_time_s", r->host_time_s, "s");
    rc |= od_res_put_num(w, g, "samples_per_s",
                         r->host_time_s > 0
                             ? (double)r->samples / r->host_time_s
                             : NAN,
                         "1/s");
    rc |= od_res_put_num(w, g, "test_accuracy", r->test_accuracy, "1");
    rc |= od_res_put_num(w, g, "test_loss", r->test_loss, "nat");
    rc |= od_res_put_num(w, g, "train_loss", r->train_loss, "nat");
    for (int k = 0; k < r->metrics.count; k++)
        rc |= od_res_put_num(w, g, r->metrics.names[k], r->metrics.values[k],
                             "1");
    if (r->baseline.baseline[0])
        rc |= od_res_put_text(w, g, "baseline", r->baseline.baseline);
    for (int k = 0; k < r->baseline.count; k++) {
        char name[96];
        snprintf(name, sizeof name, "baseline_%s", r->baseline.names[k]);
        rc |= od_res_put_num(w, g, name, r->baseline.values[k], "1");
    }

    rc |= od_res_put_int(w, g, "peak_mem_bytes", (int64_t)r->peak_mem_bytes,
                         "B");
    static const char *const mem_names[OD_MEM_KIND_COUNT] = {
        "parameters", "gradients", "optimizer", "activations", "scratch",
    };
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++) {
        char name[64];
        snprintf(name, sizeof name, "peak_mem_%s_bytes", mem_names[k]);
        rc |= od_res_put_int(w, g, name, (int64_t)r->peak_mem_by_kind[k],
                             "B");
    }
    rc |= od_res_put_int(w, g, "mem_budget_bytes",
                         (int64_t)r->mem_budget_bytes, "B");
    rc |= od_res_put_int(w, g, "param_count", (int64_t)r->param_count, "1");
    double flops = 0;
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        flops += r->flops_by_kind[k];
    rc |= od_res_put_num(w, g, "flops_total", flops, "FLOP");
    for (int k = 0; k < OD_OP_KIND_COUNT && rc == 0; k++) {
        char name[64];
        const char *kind = od_op_kind_name((od_op_kind)k);
        snprintf(name, sizeof name, "flops_%s", kind);
        rc |= od_res_put_num(w, g, name, r->flops_by_kind[k], "FLOP");
        snprintf(name, sizeof name, "bytes_%s", kind);
        rc |= od_res_put_num(w, g, name, r->bytes_by_kind[k], "B");
        snprintf(name, sizeof name, "host_time_%s_s", kind);
        rc |= od_res_put_num(w, g, name, r->host_s_by_kind[k], "s");
    }

    /* The emulated device, when there was one. */
    const od_device_summary *d = &r->device;
    if (d->device[0]) {
        rc |= od_res_put_text(w, g, "device", d->device);
        rc |= od_res_put_num(w, g, "emulated_time_s", d->emulated_time_s,
                             "s");
        rc |= od_res_put_num(w, g, "energy_j", d->energy_j, "J");
        rc |= od_res_put_num(w, g, "battery_used_pct", d->battery_used_pct,
                             "%");
        rc |= od_res_put_num(w, g, "max_skin_temp_c", d->max_skin_temp_c,
                             "degC");
        rc |= od_res_put_num(w, g, "throttled_time_s", d->throttled_time_s,
                             "s");
        rc |= od_res_put_num(w, g, "mean_freq_khz", d->mean_freq_khz, "kHz");
        rc |= od_res_put_num(w, g, "paused_s", d->paused_s, "s");
        if (d->stop_reason[0])
            rc |= od_res_put_text(w, g, "device_stop_reason", d->stop_reason);
    }

    /* DP-SGD, when on: ε names its accountant, conversion and δ. */
    const od_dp_summary *p = &r->dp;
    if (p->enabled) {
        rc |= od_res_put_num(w, g, "epsilon", p->epsilon, "1");
        if (p->epsilon_target > 0)
            rc |= od_res_put_num(w, g, "epsilon_target", p->epsilon_target,
                                 "1");
        rc |= od_res_put_num(w, g, "delta", p->delta, "1");
        rc |= od_res_put_num(w, g, "noise_multiplier", p->noise_multiplier,
                             "1");
        rc |= od_res_put_num(w, g, "clip_norm", p->clip_norm, "1");
        rc |= od_res_put_num(w, g, "sampling_rate", p->sampling_rate, "1");
        rc |= od_res_put_int(w, g, "dp_steps", p->steps, "1");
        rc |= od_res_put_text(w, g, "accountant", p->accountant);
        rc |= od_res_put_text(w, g, "conversion", p->conversion);
        rc |= od_res_put_text(w, g, "sampling", p->sampling);
        if (p->assumption)
            rc |= od_res_put_text(w, g, "dp_assumption", p->assumption);
        rc |= od_res_put_num(w, g, "mean_grad_norm", p->mean_norm, "1");
        rc |= od_res_put_num(w, g, "clipped_fraction", p->clipped_fraction,
                             "1");
        rc |= od_res_put_int(w, g, "empty_batches", p->empty_batches, "1");
    }

    /* Per epoch of this run: (epochs_done) each. */
    size_t ne = (size_t)r->epochs_done;
    if (ne > 0 && rc == 0) {
        double *epoch = malloc(ne * sizeof *epoch);
        if (!epoch)
            return od_res_fail("out of memory");
        for (size_t i = 0; i < ne; i++)
            epoch[i] = (double)(r->start_epoch + (int)i + 1);
        const char *t = "traces/epochs";
        rc |= od_res_put_column(w, t, "epoch", epoch, ne, "1");
        rc |= od_res_put_column(w, t, "train_loss", r->epoch_train_loss, ne,
                                "nat");
        rc |= od_res_put_column(w, t, "test_accuracy",
                                r->epoch_test_accuracy, ne, "1");
        rc |= od_res_put_column(w, t, "test_loss", r->epoch_test_loss, ne,
                                "nat");
        rc |= od_res_put_column(w, t, "host_time_s", r->epoch_host_time_s,
                                ne, "s");
        free(epoch);
    }
    return rc;
}

od_status od_results_finish(od_results_run *w, const od_run_result *r)
{
    od_status st = OD_OK;
    if (od__write_summary(w->w, r)) {
        st = od__io();
        od_res_discard(w->w);
        free(w);
        return st;
    }
    int rc = od_res_commit(w->w);
    if (rc == 0) {
        /* The CSV and JSON twins: "<path without .h5>.csv" and ".json". */
        char stem[sizeof w->path];
        snprintf(stem, sizeof stem, "%s", w->path);
        size_t n = strlen(stem);
        if (n > 3 && strcmp(stem + n - 3, ".h5") == 0)
            stem[n - 3] = '\0';
        od_res_set set;
        rc = od_res_load(w->path, &set);
        if (rc == 0) {
            rc = od_res_write_summary_files(&set, stem);
            od_res_set_free(&set);
        }
    }
    if (rc)
        st = od__io();
    free(w);
    return st;
}

void od_results_abandon(od_results_run *w)
{
    if (!w)
        return;
    od_res_discard(w->w);
    free(w);
}
