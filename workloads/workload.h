/* The workload registry. A workload is a dataset together with the model
 * trained on it: "fmnist-mlp", "fmnist-cnn", ... The harness looks one up by
 * the name given in the configuration, loads its data, builds its model and
 * reports the metrics it names.
 *
 * Adding a workload: write its loader and model builder in workloads/, then
 * add one entry to the table in workloads/workload.c. */
#ifndef ONDEV_WORKLOADS_WORKLOAD_H
#define ONDEV_WORKLOADS_WORKLOAD_H

#include "engine/model.h"
#include "workloads/dataset.h"
#include "workloads/metrics.h"

typedef struct od_workload_opts {
    /* Where the data lives; NULL or "" for the workload's default (which an
     * environment variable may override, e.g. ONDEV_FMNIST_DIR). */
    const char *data_dir;
    /* Keep only the first n training / test samples; 0 keeps all. For
     * quick runs and tests. */
    int train_subset;
    int test_subset;
    /* Seed of generated data (synthetic workloads); loaders of fixed data
     * ignore it. */
    uint64_t seed;
    /* Nonzero: no progress lines on stderr while loading (a quiet run). */
    int quiet;
    /* Host threads a loader that computes features may use; 0: the
     * machine's cores. */
    int threads;
} od_workload_opts;

typedef struct od_workload od_workload;

struct od_workload {
    const char *name;          /* "fmnist-cnn" */
    const char *description;   /* one line for `ondev` listings */
    const char *data_source;   /* where the data comes from, with a reference */
    const char *metrics;       /* what a run reports, e.g. "accuracy, loss" */
    /* One sample as the model sees it, without the batch dimension:
     * (1, 28, 28) for Fashion-MNIST. */
    int sample_ndim;
    int sample_dims[OD_DATASET_MAX_DIMS];
    int labels_per_sample;
    int num_classes;
    /* Fill train and test; on failure both are empty and the message says
     * what to do (e.g. which package to install). */
    od_status (*load)(const od_workload_opts *opts, od_dataset *train,
                      od_dataset *test);
    /* Build the model with parameters allocated from ctx->arena but not yet
     * initialised (call od_model_init). Input (N, sample_dims...), output
     * logits (N, num_classes) or (N, T, num_classes) for sequence labels. */
    od_status (*build_model)(od_ctx *ctx, od_model **out);

    /* Optional (NULL: none). Extra figures of an evaluation: the harness
     * adds every test batch to an od_metric_acc (od_metric_acc_add) and
     * this names what to report from the totals, e.g. top3_accuracy and
     * bits_per_char. */
    void (*extra_metrics)(const od_metric_acc *acc, od_metrics *out);
    /* Optional (NULL: none). A simple model fitted on train and scored on
     * test, so that the model's gain is visible; fills out->baseline and
     * baseline_* values. Runs on the host, outside the emulated device. */
    od_status (*baseline)(const od_dataset *train, const od_dataset *test,
                          od_metrics *out);
    /* Optional (NULL: the sample's group). The natural client of a group
     * at a coarser level ("book" for a chapter), for partitions; level
     * names are workload-specific. Returns -1 for an unknown level. */
    int32_t (*group_at_level)(int32_t group, const char *level);
    /* What a group is ("chapter", "user"); NULL when samples have none. */
    const char *group_kind;
    /* The levels group_at_level accepts, for messages ("chapter, book");
     * NULL: group_kind only. */
    const char *group_levels;
};

/* Defaults: the workload's own data directory, all samples, seed 0. */
void od_workload_opts_init(od_workload_opts *opts);

int od_workload_count(void);
/* i in [0, od_workload_count()). */
const od_workload *od_workload_at(int i);
/* NULL when no workload has that name. */
const od_workload *od_workload_find(const char *name);
/* As od_workload_find, but an unknown name returns OD_ERR_INVALID with a
 * message listing the known ones. */
od_status od_workload_lookup(const char *name, const od_workload **out);

#endif
