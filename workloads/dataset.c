#include "workloads/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Largest element count of one buffer we accept: keeps every byte count and
 * every index product far from overflow on 64-bit hosts. */
#define OD__DATASET_MAX_ELEMS ((size_t)1 << 40)

static void od__copy_name(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}


/* Training draws samples in random order from an x of tens or hundreds of
 * MB, so that nearly every sample costs a TLB miss on 4 KB pages. Large x
 * arrays are aligned to 2 MB and marked for transparent huge pages where
 * the system offers them (only a hint: without it they stay 4 KB pages). */
static void *od__alloc_samples(size_t bytes)
{
    const size_t huge = (size_t)2 << 20;
    if (bytes < 4 * huge)
        return od_aligned_alloc(bytes);
    void *p = NULL;
    size_t rounded = (bytes + huge - 1) / huge * huge;
    if (posix_memalign(&p, huge, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

od_status od_dataset_alloc(od_dataset *d, const char *name, int n,
                           int sample_ndim, const int *sample_dims,
                           int labels_per_sample, int num_classes,
                           int with_groups)
{
    OD_ASSERT(d);
    memset(d, 0, sizeof *d);
    od__copy_name(d->name, sizeof d->name, name);

    if (n < 1)
        return od_fail(OD_ERR_INVALID, "dataset '%s': %d samples; a dataset "
                       "needs at least one", d->name, n);
    if (sample_ndim < 1 || sample_ndim > OD_DATASET_MAX_DIMS)
        return od_fail(OD_ERR_INVALID, "dataset '%s': samples with %d "
                       "dimensions; 1 to %d are supported", d->name,
                       sample_ndim, OD_DATASET_MAX_DIMS);
    if (labels_per_sample < 1 || num_classes < 1)
        return od_fail(OD_ERR_INVALID, "dataset '%s': %d labels per sample "
                       "and %d classes; both must be positive", d->name,
                       labels_per_sample, num_classes);

    size_t sample_size = 1;
    for (int i = 0; i < sample_ndim; i++) {
        if (sample_dims[i] < 1)
            return od_fail(OD_ERR_INVALID, "dataset '%s': sample dimension "
                           "%d is %d; dimensions must be positive", d->name,
                           i, sample_dims[i]);
        sample_size *= (size_t)sample_dims[i];
        if (sample_size > OD__DATASET_MAX_ELEMS)
            break;
    }
    if (sample_size > OD__DATASET_MAX_ELEMS / (size_t)n ||
        (size_t)labels_per_sample > OD__DATASET_MAX_ELEMS / (size_t)n)
        return od_fail(OD_ERR_INVALID, "dataset '%s': %d samples of this "
                       "shape are too large to hold", d->name, n);

    size_t x_bytes = (size_t)n * sample_size * sizeof(float);
    size_t y_bytes = (size_t)n * (size_t)labels_per_sample * sizeof(int32_t);
    d->x = od__alloc_samples(x_bytes);
    d->y = od_aligned_alloc(y_bytes);
    if (with_groups)
        d->group = od_aligned_alloc((size_t)n * sizeof(int32_t));
    if (!d->x || !d->y || (with_groups && !d->group)) {
        od_dataset_free(d);
        return od_fail(OD_ERR_NOMEM, "dataset '%s': cannot allocate %zu "
                       "bytes of host memory", name ? name : "",
                       x_bytes + y_bytes);
    }
    memset(d->x, 0, x_bytes);
    memset(d->y, 0, y_bytes);
    if (d->group)
        memset(d->group, 0, (size_t)n * sizeof(int32_t));

    d->n = n;
    d->sample_ndim = sample_ndim;
    for (int i = 0; i < sample_ndim; i++)
        d->sample_dims[i] = sample_dims[i];
    d->sample_size = sample_size;
    d->labels_per_sample = labels_per_sample;
    d->num_classes = num_classes;
    return OD_OK;
}

static void od__free_class_names(od_dataset *d)
{
    if (!d->class_names)
        return;
    for (int c = 0; c < d->num_classes; c++)
        free(d->class_names[c]);
    free(d->class_names);
    d->class_names = NULL;
}

void od_dataset_free(od_dataset *d)
{
    if (!d)
        return;
    od__free_class_names(d);
    od_aligned_free(d->x);
    od_aligned_free(d->y);
    od_aligned_free(d->group);
    memset(d, 0, sizeof *d);
}

od_status od_dataset_set_class_names(od_dataset *d,
                                     const char *const *names)
{
    OD_ASSERT(d && names && d->num_classes >= 1);
    od__free_class_names(d);

    char **copy = calloc((size_t)d->num_classes, sizeof *copy);
    if (!copy)
        return od_fail(OD_ERR_NOMEM, "dataset '%s': cannot allocate class "
                       "names", d->name);
    for (int c = 0; c < d->num_classes; c++) {
        OD_ASSERT(names[c]);
        copy[c] = strdup(names[c]);
        if (!copy[c]) {
            for (int k = 0; k < c; k++)
                free(copy[k]);
            free(copy);
            return od_fail(OD_ERR_NOMEM, "dataset '%s': cannot allocate "
                           "class names", d->name);
        }
    }
    d->class_names = copy;
    return OD_OK;
}

size_t od_dataset_bytes(const od_dataset *d)
{
    size_t n = (size_t)d->n;
    size_t bytes = n * d->sample_size * sizeof(float) +
                   n * (size_t)d->labels_per_sample * sizeof(int32_t);
    if (d->group)
        bytes += n * sizeof(int32_t);
    return bytes;
}

/* OD_OK when every idx[i] names a sample of d; otherwise OD_ERR_INVALID
 * naming the first bad position. */
static od_status od__check_indices(const od_dataset *d, const int32_t *idx,
                                   int count)
{
    for (int i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= d->n)
            return od_fail(OD_ERR_INVALID, "dataset '%s': sample index %d "
                           "(position %d of %d) is outside 0..%d", d->name,
                           (int)idx[i], i, count, d->n - 1);
    return OD_OK;
}

/* Prefetch the cache lines of one sample's row of x. */
static void od__prefetch_row(const float *row, size_t floats)
{
    const char *p = (const char *)row;
    for (size_t off = 0; off < floats * sizeof(float); off += 64)
        __builtin_prefetch(p + off, 0, 3);
}

od_status od_dataset_gather(const od_dataset *d, const int32_t *idx,
                            int count, float *x_out, int32_t *y_out)
{
    OD_ASSERT(d && d->x && d->y);
    OD_ASSERT(count >= 0 && (idx || count == 0));
    OD_TRY(od__check_indices(d, idx, count));

    /* Each sample is one contiguous row of x and one of y. */
    size_t xs = d->sample_size;
    size_t ys = (size_t)d->labels_per_sample;
    /* Rows are scattered over a dataset far larger than the caches: ask
     * for the rows OD__AHEAD samples ahead while copying this one, so that
     * their fetch from memory overlaps the copies in between. */
    enum { OD__AHEAD = 4 };
    for (int i = 0; x_out && i < count && i < OD__AHEAD; i++)
        od__prefetch_row(d->x + (size_t)idx[i] * xs, xs);
    for (int i = 0; i < count; i++) {
        size_t src = (size_t)idx[i];
        if (x_out && i + OD__AHEAD < count)
            od__prefetch_row(d->x + (size_t)idx[i + OD__AHEAD] * xs, xs);
        if (x_out)
            memcpy(x_out + (size_t)i * xs, d->x + src * xs,
                   xs * sizeof(float));
        if (y_out)
            memcpy(y_out + (size_t)i * ys, d->y + src * ys,
                   ys * sizeof(int32_t));
    }
    return OD_OK;
}

od_status od_dataset_subset(const od_dataset *src, const int32_t *idx,
                            int count, const char *name, od_dataset *out)
{
    OD_ASSERT(src && out && src != out);
    memset(out, 0, sizeof *out);
    if (count < 1)
        return od_fail(OD_ERR_INVALID, "dataset '%s': a subset of %d "
                       "samples; at least one is needed", src->name, count);
    if (!idx && count > src->n)
        return od_fail(OD_ERR_INVALID, "dataset '%s': asked for the first %d "
                       "samples but it holds %d", src->name, count, src->n);
    if (idx)
        OD_TRY(od__check_indices(src, idx, count));

    OD_TRY(od_dataset_alloc(out, name ? name : src->name, count,
                            src->sample_ndim, src->sample_dims,
                            src->labels_per_sample, src->num_classes,
                            src->group != NULL));

    /* The first count samples are one contiguous block; a list is gathered
     * sample by sample. */
    if (!idx) {
        memcpy(out->x, src->x, (size_t)count * src->sample_size *
                               sizeof(float));
        memcpy(out->y, src->y, (size_t)count *
                               (size_t)src->labels_per_sample *
                               sizeof(int32_t));
        if (src->group)
            memcpy(out->group, src->group, (size_t)count * sizeof(int32_t));
    } else {
        od_status st = od_dataset_gather(src, idx, count, out->x, out->y);
        OD_ASSERT(st == OD_OK);  /* indices were checked above */
        if (src->group)
            for (int i = 0; i < count; i++)
                out->group[i] = src->group[idx[i]];
    }

    if (src->class_names) {
        od_status st = od_dataset_set_class_names(
            out, (const char *const *)src->class_names);
        if (st != OD_OK) {
            od_dataset_free(out);
            return st;
        }
    }
    return OD_OK;
}

od_status od_dataset_check(const od_dataset *d)
{
    OD_ASSERT(d);
    if (d->n < 1 || !d->x || !d->y)
        return od_fail(OD_ERR_FORMAT, "dataset '%s' is empty", d->name);
    if (d->sample_ndim < 1 || d->sample_ndim > OD_DATASET_MAX_DIMS ||
        d->labels_per_sample < 1 || d->num_classes < 1)
        return od_fail(OD_ERR_FORMAT, "dataset '%s' has an invalid shape",
                       d->name);

    size_t size = 1;
    for (int i = 0; i < d->sample_ndim; i++)
        size *= (size_t)(d->sample_dims[i] > 0 ? d->sample_dims[i] : 0);
    if (size != d->sample_size || size == 0)
        return od_fail(OD_ERR_FORMAT, "dataset '%s': sample_size %zu does "
                       "not match its dimensions", d->name, d->sample_size);

    size_t nlabels = (size_t)d->n * (size_t)d->labels_per_sample;
    for (size_t i = 0; i < nlabels; i++) {
        int32_t y = d->y[i];
        if (y < -1 || y >= d->num_classes)
            return od_fail(OD_ERR_FORMAT, "dataset '%s': sample %zu has "
                           "label %d, outside 0..%d (or -1 for none)",
                           d->name, i / (size_t)d->labels_per_sample,
                           (int)y, d->num_classes - 1);
    }
    return OD_OK;
}

void od_dataset_class_counts(const od_dataset *d, int64_t *counts)
{
    OD_ASSERT(d && counts);
    memset(counts, 0, (size_t)d->num_classes * sizeof *counts);
    size_t nlabels = (size_t)d->n * (size_t)d->labels_per_sample;
    for (size_t i = 0; i < nlabels; i++) {
        int32_t y = d->y[i];
        if (y >= 0) {
            OD_ASSERT(y < d->num_classes);
            counts[y]++;
        }
    }
}
