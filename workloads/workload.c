#include "workloads/workload.h"

#include <stdio.h>
#include <string.h>

#include "workloads/fmnist.h"

static od_status od__fmnist_workload_load(const od_workload_opts *opts,
                                          od_dataset *train,
                                          od_dataset *test)
{
    OD_ASSERT(opts);
    return od_fmnist_load(opts->data_dir, opts->train_subset,
                          opts->test_subset, train, test);
}

#define OD__FMNIST_SOURCE                                                   \
    "Fashion-MNIST (Xiao, Rasul and Vollgraf 2017, arXiv:1708.07747), "     \
    "Debian package dataset-fashion-mnist, " OD_FMNIST_DEFAULT_DIR

static const od_workload od__workloads[] = {
    {
        .name = "fmnist-mlp",
        .description = "Fashion-MNIST clothing images, 10 classes; "
                       "multilayer perceptron 784-256-256-10 "
                       "(269,322 parameters)",
        .data_source = OD__FMNIST_SOURCE,
        .metrics = "accuracy, cross-entropy loss",
        .sample_ndim = 3,
        .sample_dims = {1, OD_FMNIST_ROWS, OD_FMNIST_COLS},
        .labels_per_sample = 1,
        .num_classes = OD_FMNIST_CLASSES,
        .load = od__fmnist_workload_load,
        .build_model = od_fmnist_build_mlp,
    },
    {
        .name = "fmnist-cnn",
        .description = "Fashion-MNIST clothing images, 10 classes; "
                       "two 5x5 convolutions with max pooling, then two "
                       "linear layers (184,586 parameters)",
        .data_source = OD__FMNIST_SOURCE,
        .metrics = "accuracy, cross-entropy loss",
        .sample_ndim = 3,
        .sample_dims = {1, OD_FMNIST_ROWS, OD_FMNIST_COLS},
        .labels_per_sample = 1,
        .num_classes = OD_FMNIST_CLASSES,
        .load = od__fmnist_workload_load,
        .build_model = od_fmnist_build_cnn,
    },
};

#define OD__NWORKLOADS ((int)(sizeof od__workloads / sizeof od__workloads[0]))

void od_workload_opts_init(od_workload_opts *opts)
{
    OD_ASSERT(opts);
    memset(opts, 0, sizeof *opts);
}

int od_workload_count(void) { return OD__NWORKLOADS; }

const od_workload *od_workload_at(int i)
{
    OD_ASSERT(i >= 0 && i < OD__NWORKLOADS);
    return &od__workloads[i];
}

const od_workload *od_workload_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; i < OD__NWORKLOADS; i++)
        if (strcmp(od__workloads[i].name, name) == 0)
            return &od__workloads[i];
    return NULL;
}

od_status od_workload_lookup(const char *name, const od_workload **out)
{
    OD_ASSERT(out);
    *out = od_workload_find(name);
    if (*out)
        return OD_OK;

    char known[512];
    size_t off = 0;
    known[0] = '\0';
    for (int i = 0; i < OD__NWORKLOADS && off < sizeof known; i++)
        off += (size_t)snprintf(known + off, sizeof known - off, "%s%s",
                                i ? ", " : "", od__workloads[i].name);
    return od_fail(OD_ERR_INVALID, "unknown workload '%s'; known workloads: "
                   "%s", name ? name : "(none)", known);
}
