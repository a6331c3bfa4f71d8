#include "workloads/workload.h"

#include <stdio.h>
#include <string.h>

#include "workloads/fmnist.h"
#include "workloads/har.h"
#include "workloads/kjv.h"
#include "workloads/scatter.h"

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

static od_status od__kjv_workload_load(const od_workload_opts *opts,
                                       od_dataset *train, od_dataset *test)
{
    return od_kjv_load(opts, train, test);
}

/* Chapters group into books for one client per book. */
static int32_t od__kjv_group_at_level(int32_t group, const char *level)
{
    if (!level || !level[0] || strcmp(level, "chapter") == 0)
        return group;
    if (strcmp(level, "book") == 0)
        return od_kjv_chapter_to_book(group);
    return -1;
}

static od_status od__har_workload_load(const od_workload_opts *opts,
                                       od_dataset *train, od_dataset *test)
{
    return od_har_load(opts, train, test);
}

/* What the Fashion-MNIST workloads share: data, sample shape, metrics. */
#define OD__FMNIST_COMMON                                                   \
    .data_source = OD__FMNIST_SOURCE,                                       \
    .metrics = "accuracy, cross-entropy loss", .sample_ndim = 3,            \
    .sample_dims = {1, OD_FMNIST_ROWS, OD_FMNIST_COLS},                     \
    .labels_per_sample = 1, .num_classes = OD_FMNIST_CLASSES,               \
    .load = od__fmnist_workload_load

static const od_workload od__workloads[] = {
    {
        .name = "fmnist-mlp",
        .description = "Fashion-MNIST clothing images, 10 classes; "
                       "multilayer perceptron 784-256-256-10 "
                       "(269,322 parameters)",
        OD__FMNIST_COMMON,
        .build_model = od_fmnist_build_mlp,
    },
    {
        .name = "fmnist-cnn",
        .description = "Fashion-MNIST clothing images, 10 classes; "
                       "two 5x5 convolutions with max pooling, then two "
                       "linear layers (184,586 parameters)",
        OD__FMNIST_COMMON,
        .build_model = od_fmnist_build_cnn,
    },
    {
        .name = "fmnist-cnn-tanh",
        .description = "Fashion-MNIST clothing images, 10 classes; "
                       "fmnist-cnn with tanh activations, for DP-SGD "
                       "(184,586 parameters)",
        OD__FMNIST_COMMON,
        .build_model = od_fmnist_build_cnn_tanh,
    },
    {
        .name = "fmnist-scatter",
        .description = "Fashion-MNIST clothing images, 10 classes, as "
                       "fixed scattering features (J = 2, 8 angles: 81 "
                       "channels of 7x7, group-normalised); one linear "
                       "layer 3969-10 (39,700 parameters)",
        .data_source = OD__FMNIST_SOURCE "; scattering transform as "
                       "kymatio's Scattering2D (Andreux et al. 2020)",
        .metrics = "accuracy, cross-entropy loss", .sample_ndim = 3,
        .sample_dims = {OD_SCATTER_FMNIST_CHANNELS, OD_SCATTER_FMNIST_SIDE,
                        OD_SCATTER_FMNIST_SIDE},
        .labels_per_sample = 1, .num_classes = OD_FMNIST_CLASSES,
        .load = od_fmnist_scatter_load,
        .build_model = od_fmnist_build_scatter_linear,
    },
    {
        .name = "kjv-char",
        .description = "King James Bible next-character prediction, 64 "
                       "characters, windows of 64 (60,678 train / 4,558 "
                       "test from 10 held-out books); embedding 32, "
                       "GRU 256, linear 256-64 (241,216 parameters)",
        .data_source = "King James Bible (1769 text), Debian packages "
                       "bible-kjv and bible-kjv-text, through "
                       "`bible -f Gen1:1-Rev22:21`; cached in "
                       "~/.cache/ondev/" OD_KJV_CACHE_NAME,
        .metrics = "accuracy (top-1), top3_accuracy, bits_per_char, "
                   "cross-entropy loss; bigram baseline",
        .sample_ndim = 1,
        .sample_dims = {OD_KJV_SEQ_LEN},
        .labels_per_sample = OD_KJV_SEQ_LEN,
        .num_classes = OD_KJV_VOCAB,
        .load = od__kjv_workload_load,
        .build_model = od_kjv_build_gru,
        .extra_metrics = od_kjv_metrics,
        .baseline = od_kjv_bigram_baseline,
        .group_at_level = od__kjv_group_at_level,
        .group_kind = "chapter",
        .group_levels = "chapter, book",
    },
    {
        .name = "har-cnn",
        .description = "phone accelerometer activity recognition, 7 "
                       "activities, 2.56 s windows at 50 Hz, 3 axes "
                       "(8,064 train windows from 24 users / 2,016 test "
                       "from 6 other users); 1-D CNN of three strided "
                       "convolutions and two linear layers (33,287 "
                       "parameters)",
        .data_source = "seeded physical model of gait, posture, phone "
                       "placement and sensor error (docs/har-model.md); "
                       "the run's seed picks the users",
        .metrics = "accuracy, cross-entropy loss; logistic-regression "
                   "baseline",
        .sample_ndim = 2,
        .sample_dims = {OD_HAR_AXES, OD_HAR_WINDOW},
        .labels_per_sample = 1,
        .num_classes = OD_HAR_CLASSES,
        .load = od__har_workload_load,
        .build_model = od_har_build_cnn,
        .baseline = od_har_logreg_baseline,
        .group_kind = "user",
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
