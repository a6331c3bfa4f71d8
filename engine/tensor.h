/* fp32 tensors of up to four dimensions, row-major (the last dimension is
 * contiguous). A tensor is a small value type; its data belongs to the arena
 * it was allocated from. */
#ifndef ONDEV_ENGINE_TENSOR_H
#define ONDEV_ENGINE_TENSOR_H

#include "engine/arena.h"

#define OD_MAX_DIMS 4

typedef struct od_tensor {
    int ndim;
    int dims[OD_MAX_DIMS];
    size_t size;   /* number of elements */
    float *data;
} od_tensor;

/* Allocate a zero-filled tensor of the given shape from the arena. */
od_status od_tensor_alloc(od_arena *a, od_mem_kind kind, od_tensor *t,
                          int ndim, const int *dims);
/* The same without zero-filling activations and scratch (see
 * od_arena_alloc_uninit): for outputs a kernel overwrites whole. */
od_status od_tensor_alloc_uninit(od_arena *a, od_mem_kind kind, od_tensor *t,
                                 int ndim, const int *dims);
/* Shorthands for 1 to 4 dimensions. */
od_status od_tensor_alloc1(od_arena *a, od_mem_kind kind, od_tensor *t, int d0);
od_status od_tensor_alloc2(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1);
od_status od_tensor_alloc3(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1, int d2);
od_status od_tensor_alloc4(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1, int d2, int d3);

/* A view with another shape over the same data; sizes must match. */
od_tensor od_tensor_reshape(const od_tensor *t, int ndim, const int *dims);

size_t od_shape_size(int ndim, const int *dims);
int od_tensor_same_shape(const od_tensor *a, const od_tensor *b);
/* Multiply each example (row along dims[0]) i of t by scale[i]. */
void od_tensor_scale_rows(od_tensor *t, const float *scale);
/* "(64, 1, 28, 28)" into buf. */
const char *od_tensor_shape_str(const od_tensor *t, char *buf, size_t len);

#endif
