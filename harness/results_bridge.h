/* What a run hands to the results store: the file of one run, opened
 * before training, fed a row per step, and closed with the summary.
 *
 * A run's file holds its configuration (text and one attribute per key),
 * ondev's version and build, the host, the per-step trace (traces/steps),
 * the per-epoch figures (traces/epochs) and the summary (the keys of
 * `ondev run --json`, each with units). It is written to "<path>.part" and
 * renamed when od_results_finish succeeds; "<stem>.csv" and "<stem>.json"
 * hold the summary beside it. docs/results-format.md has the layout. */
#ifndef ONDEV_HARNESS_RESULTS_BRIDGE_H
#define ONDEV_HARNESS_RESULTS_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"
#include "harness/config.h"
#include "harness/run.h"

typedef struct od_results_run od_results_run;

/* One row of traces/steps. Set every field with od_results_step_init (all
 * NaN), then those that apply: a column that stays NaN for the whole run
 * is left out of the file. */
typedef struct od_results_step_row {
    double step;              /* 0-based training step */
    double host_time_s;       /* host time in the training loop so far */
    double emulated_time_s;   /* on the emulated device */
    double energy_j;          /* device energy so far */
    double soc_temp_c;
    double skin_temp_c;
    double freq_khz;          /* big-cluster frequency (cap applied) */
    double battery_soc_pct;   /* state of charge */
    double loss;              /* this step's mean training loss */
    double accuracy;          /* test accuracy when evaluated here */
    double epsilon;           /* privacy spent so far */
} od_results_step_row;

void od_results_step_init(od_results_step_row *row);

/* A fresh default path, "ondev-results/run-YYYYmmdd-HHMMSS-PID.h5" under
 * the current directory, which is created if needed. */
od_status od_results_default_path(char *buf, size_t len);

/* Open the file of a run at path (through "<path>.part") and write the
 * configuration, version, build and host. */
od_status od_results_begin(const char *path, const od_config *c,
                           od_results_run **out);

/* Append one row to traces/steps (buffered; flushed in blocks). */
od_status od_results_step(od_results_run *w, const od_results_step_row *row);

/* Extra summary figures a part of the run owns (device, privacy): a
 * number with units ("J", "s", "1"...) or a text. Written at finish. */
od_status od_results_put(od_results_run *w, const char *key, double value,
                         const char *units);
od_status od_results_put_text(od_results_run *w, const char *key,
                              const char *text);

/* Write r's summary and per-epoch figures, mark the file complete, rename
 * it into place and write the CSV and JSON summaries. w is freed in every
 * case. An interrupted run is finished too: its summary says so. */
od_status od_results_finish(od_results_run *w, const od_run_result *r);

/* The run failed: remove the ".part" file. w is freed; NULL is fine. */
void od_results_abandon(od_results_run *w);

/* The final path of the file being written. */
const char *od_results_path(const od_results_run *w);

#endif
