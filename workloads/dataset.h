/* Datasets held in host memory: a block of fp32 samples, a block of int32
 * labels, and optionally the natural owner of each sample.
 *
 * One layout serves every workload:
 *  - images:         sample_dims (C, H, W), one label per sample;
 *  - character text: sample_dims (T) holding token ids as floats (exact up to
 *                    2^24), labels_per_sample T (the next character at each
 *                    position);
 *  - sensor windows: sample_dims (T, channels), one label per window.
 *
 * A label of -1 means "no label here" (padding in a sequence); the engine's
 * cross-entropy skips such rows. Every other label lies in [0, num_classes).
 *
 * The dataset is not charged to the engine's arena: it stands for data that a
 * phone keeps on flash and streams in. The harness copies batches out of it
 * with od_dataset_gather into its own (arena) buffers. */
#ifndef ONDEV_WORKLOADS_DATASET_H
#define ONDEV_WORKLOADS_DATASET_H

#include "engine/common.h"

#define OD_DATASET_MAX_DIMS 3

typedef struct od_dataset {
    char name[64];          /* "fashion-mnist/train" */
    int n;                  /* number of samples */
    int sample_ndim;        /* 1 .. OD_DATASET_MAX_DIMS */
    int sample_dims[OD_DATASET_MAX_DIMS];
    size_t sample_size;     /* product of sample_dims */
    int labels_per_sample;  /* 1 for classification, T for sequence labels */
    int num_classes;
    float *x;               /* (n, sample_size), 64-byte aligned, owned */
    int32_t *y;             /* (n, labels_per_sample), owned */
    int32_t *group;         /* (n) owner of each sample (subject, speaker) for
                               natural client partitions; NULL when none */
    char **class_names;     /* num_classes strings, owned; NULL when none */
} od_dataset;

/* Allocate a zero-filled dataset of n samples of the given shape. On failure
 * *d is left empty (safe to free). with_groups: also allocate d->group. */
od_status od_dataset_alloc(od_dataset *d, const char *name, int n,
                           int sample_ndim, const int *sample_dims,
                           int labels_per_sample, int num_classes,
                           int with_groups);

/* Release everything the dataset owns and zero it. Safe on a zeroed or
 * already freed dataset. */
void od_dataset_free(od_dataset *d);

/* Copy num_classes names into the dataset (replacing any it had). */
od_status od_dataset_set_class_names(od_dataset *d,
                                     const char *const *names);

/* Bytes held by x, y and group (what a phone would keep for this data). */
size_t od_dataset_bytes(const od_dataset *d);

/* A new dataset made of the samples src[idx[0]], ..., src[idx[count - 1]]
 * (repeats allowed), or of the first count samples when idx is NULL. The
 * copy keeps labels, groups and class names; name is the new name (NULL:
 * src's name). Indices out of range return OD_ERR_INVALID. */
od_status od_dataset_subset(const od_dataset *src, const int32_t *idx,
                            int count, const char *name, od_dataset *out);

/* Batch assembly: x_out (count, sample_size) and y_out
 * (count, labels_per_sample) receive the samples idx[0..count). Either output
 * may be NULL to skip it. Indices out of range return OD_ERR_INVALID and
 * leave the outputs partly written. */
od_status od_dataset_gather(const od_dataset *d, const int32_t *idx,
                            int count, float *x_out, int32_t *y_out);

/* Check the invariants a loader or generator must establish: shapes set,
 * buffers present, every label in [0, num_classes) or -1. Returns
 * OD_ERR_FORMAT naming the first bad sample otherwise. */
od_status od_dataset_check(const od_dataset *d);

/* counts (num_classes): how many labels of each class; -1 labels are not
 * counted. */
void od_dataset_class_counts(const od_dataset *d, int64_t *counts);

#endif
