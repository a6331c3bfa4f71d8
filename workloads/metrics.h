/* Figures a workload reports besides accuracy and loss: top-3 accuracy,
 * bits per label, a baseline's scores.
 *
 * The harness feeds every evaluation batch to od_metric_acc_add, then asks
 * the workload (od_workload.extra_metrics) which named values to report. A
 * baseline (od_workload.baseline) fills the same kind of named values. The
 * names are JSON keys of the run's summary ("top3_accuracy",
 * "bits_per_char", "baseline_accuracy"). */
#ifndef ONDEV_WORKLOADS_METRICS_H
#define ONDEV_WORKLOADS_METRICS_H

#include "engine/tensor.h"

#define OD_METRICS_MAX 8

/* Running totals over labelled rows (rows whose label is -1 are skipped). */
typedef struct od_metric_acc {
    int64_t rows;       /* labelled rows seen */
    int64_t top1;       /* rows whose label has the highest logit */
    int64_t top3;       /* rows whose label is among the three highest */
    double nll_nats;    /* sum of -log p(label), natural log */
} od_metric_acc;

/* Named values, in the order they should be reported. names point to
 * static strings. */
typedef struct od_metrics {
    int count;
    const char *names[OD_METRICS_MAX];
    double values[OD_METRICS_MAX];
    char baseline[64];  /* what the baseline is ("bigram"); "" when none */
} od_metrics;

void od_metric_acc_init(od_metric_acc *acc);

/* Add one batch: logits (rows, classes) viewed from any shape whose last
 * dimension is the number of classes, labels (rows), -1 for none. A label
 * outside [-1, classes) is a bug. */
void od_metric_acc_add(od_metric_acc *acc, const od_tensor *logits,
                       const int32_t *labels);

/* Add one row given its class probabilities p (classes), which need not be
 * normalised but must be positive somewhere. For baselines that are not
 * models. */
void od_metric_acc_add_probs(od_metric_acc *acc, const double *p,
                             int classes, int32_t label);

/* Append name = value; more than OD_METRICS_MAX values is a bug. */
void od_metrics_put(od_metrics *m, const char *name, double value);

/* The value of name, or NaN when absent. */
double od_metrics_get(const od_metrics *m, const char *name);

/* Derived figures of acc (NaN when no rows). */
double od_metric_acc_top1(const od_metric_acc *acc);
double od_metric_acc_top3(const od_metric_acc *acc);
double od_metric_acc_bits(const od_metric_acc *acc);  /* bits per row */

#endif
