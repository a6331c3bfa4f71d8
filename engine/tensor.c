#include "engine/tensor.h"

#include <stdio.h>
#include <string.h>

size_t od_shape_size(int ndim, const int *dims)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= (size_t)dims[i];
    return n;
}

static od_status od__tensor_alloc(od_arena *a, od_mem_kind kind, od_tensor *t,
                                  int ndim, const int *dims, int zero)
{
    OD_ASSERT(t && ndim >= 1 && ndim <= OD_MAX_DIMS);
    memset(t, 0, sizeof *t);
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0)
            return od_fail(OD_ERR_INVALID, "tensor dimension %d is %d; "
                           "dimensions must be positive", i, dims[i]);
        t->dims[i] = dims[i];
    }
    t->ndim = ndim;
    t->size = od_shape_size(ndim, dims);
    void *p = NULL;
    size_t bytes = t->size * sizeof(float);
    OD_TRY(zero ? od_arena_alloc(a, kind, bytes, &p)
                : od_arena_alloc_uninit(a, kind, bytes, &p));
    t->data = p;
    return OD_OK;
}

od_status od_tensor_alloc(od_arena *a, od_mem_kind kind, od_tensor *t,
                          int ndim, const int *dims)
{
    return od__tensor_alloc(a, kind, t, ndim, dims, 1);
}

od_status od_tensor_alloc_uninit(od_arena *a, od_mem_kind kind, od_tensor *t,
                                 int ndim, const int *dims)
{
    return od__tensor_alloc(a, kind, t, ndim, dims, 0);
}

od_status od_tensor_alloc1(od_arena *a, od_mem_kind kind, od_tensor *t, int d0)
{
    int d[1] = {d0};
    return od_tensor_alloc(a, kind, t, 1, d);
}

od_status od_tensor_alloc2(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1)
{
    int d[2] = {d0, d1};
    return od_tensor_alloc(a, kind, t, 2, d);
}

od_status od_tensor_alloc3(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1, int d2)
{
    int d[3] = {d0, d1, d2};
    return od_tensor_alloc(a, kind, t, 3, d);
}

od_status od_tensor_alloc4(od_arena *a, od_mem_kind kind, od_tensor *t, int d0,
                           int d1, int d2, int d3)
{
    int d[4] = {d0, d1, d2, d3};
    return od_tensor_alloc(a, kind, t, 4, d);
}

od_tensor od_tensor_reshape(const od_tensor *t, int ndim, const int *dims)
{
    OD_ASSERT(ndim >= 1 && ndim <= OD_MAX_DIMS);
    OD_ASSERT(od_shape_size(ndim, dims) == t->size);
    od_tensor v = *t;
    memset(v.dims, 0, sizeof v.dims);
    v.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v.dims[i] = dims[i];
    return v;
}

int od_tensor_same_shape(const od_tensor *a, const od_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return 0;
    return 1;
}

void od_tensor_scale_rows(od_tensor *t, const float *scale)
{
    size_t per = t->size / (size_t)t->dims[0];
    for (int i = 0; i < t->dims[0]; i++) {
        if (scale[i] == 1.0f)
            continue;
        float *row = t->data + (size_t)i * per;
        const float s = scale[i];
        for (size_t k = 0; k < per; k++)
            row[k] *= s;
    }
}

const char *od_tensor_shape_str(const od_tensor *t, char *buf, size_t len)
{
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "(");
    for (int i = 0; i < t->ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %d" : "%d", t->dims[i]);
    if (off < len)
        snprintf(buf + off, len - off, ")");
    return buf;
}
