/* One central training run: configuration in, figures out.
 *
 * od_train validates the configuration, loads the workload's data, builds
 * the model and optimiser under the memory budget, trains for the configured
 * epochs and evaluates. The `ondev run` command wraps it; tests call it
 * directly. */
#ifndef ONDEV_HARNESS_RUN_H
#define ONDEV_HARNESS_RUN_H

#include <stdint.h>
#include <stdio.h>

#include "engine/arena.h"
#include "engine/cost.h"
#include "harness/config.h"
#include "harness/dp_bridge.h"
#include "harness/topology.h"
#include "workloads/metrics.h"
#include "harness/device_bridge.h"

typedef struct od_run_result {
    char workload[64];
    char isa[16];
    int threads;
    int cpus[OD_TOPO_MAX_CPUS];   /* OS indexes of the bound CPUs */
    int ncpus;                    /* 0 when unbound */
    int bound;
    uint64_t seed;
    int batch_size;
    int train_size, test_size;    /* samples after the subsets */
    size_t param_count;

    int epochs;                   /* configured: the whole training */
    int start_epoch;              /* epochs a resumed checkpoint held */
    int epochs_done;              /* epochs completed by this run; the
                                     epoch_ arrays hold this many */
    int64_t steps;                /* completed training steps */
    int64_t samples;              /* training samples processed */
    double host_time_s;           /* the training loop only */
    double train_loss;            /* mean over the last epoch's samples */
    double test_accuracy;         /* NaN when not evaluated */
    double test_loss;
    double *epoch_train_loss;     /* (epochs) */
    double *epoch_test_accuracy;  /* (epochs); NaN where not evaluated */
    double *epoch_test_loss;      /* (epochs) */
    double *epoch_host_time_s;    /* (epochs) */

    /* The workload's own figures from the last evaluation (top-3
     * accuracy, bits per label...) and those of its baseline model, each
     * reported under its name; count 0 when the workload names none. */
    od_metrics metrics;
    od_metrics baseline;

    uint64_t mem_budget_bytes;    /* 0: unlimited */
    int microbatch;               /* examples per physical pass, after
                                     memory_policy=adapt */
    size_t peak_mem_bytes;
    size_t peak_mem_by_kind[OD_MEM_KIND_COUNT];

    /* Training-loop totals per op kind (evaluation is not counted). */
    double flops_by_kind[OD_OP_KIND_COUNT];
    double bytes_by_kind[OD_OP_KIND_COUNT];
    double host_s_by_kind[OD_OP_KIND_COUNT];

    od_dp_summary dp;             /* DP-SGD figures; dp.enabled 0: off */
    od_device_summary device;     /* device figures; device.device[0] == 0: none */
    int started;                  /* the training loop was reached */
    int interrupted;              /* stopped early by a signal */
} od_run_result;

/* Train as c says and fill r (free with od_run_result_free, also after a
 * failure). Returns OD_ERR_INTERRUPTED when a stop was requested; r then
 * holds what was completed. Other failures leave a message in
 * od_error_message(); r->started says whether they happened before the
 * training loop (bad input) or during it. */
od_status od_train(const od_config *c, od_run_result *r);
void od_run_result_free(od_run_result *r);

/* As od_train, and with results_path not NULL the run's results also go to
 * that file (harness/results_bridge.h): opened once the configuration and
 * the data are checked, a row per step and per evaluation, the summary at
 * the end. A failed run leaves no file; an interrupted one leaves a
 * complete file whose summary says so. */
od_status od_train_store(const od_config *c, const char *results_path,
                         od_run_result *r);

/* The summary as one JSON object (see docs/configuration.md). */
void od_run_result_write_json(const od_run_result *r, FILE *f);
/* A few lines for people. */
void od_run_result_write_text(const od_run_result *r, FILE *f);

/* Ask the running od_train to stop after its current step. Safe to call
 * from a signal handler. */
void od_run_request_stop(void);
int od_run_stop_requested(void);
void od_run_clear_stop(void);
/* SIGINT and SIGTERM call od_run_request_stop; a second signal of the same
 * kind ends the process at once. */
void od_run_install_signal_handlers(void);

#endif
