/* Reader for IDX files (the format of MNIST and Fashion-MNIST), gzip
 * compressed or plain: zlib reads both.
 *
 * Layout: a 4-byte magic (two zero bytes, an element type, the number of
 * dimensions), one big-endian uint32 per dimension, then the elements in
 * row-major order. Only unsigned bytes (type 0x08) are read here.
 *
 * The reader streams: open parses the header, read hands out the next bytes,
 * finish reads what is left and refuses the file when it holds fewer or more
 * bytes than its header promises. Every refusal names the file. */
#ifndef ONDEV_WORKLOADS_IDX_H
#define ONDEV_WORKLOADS_IDX_H

#include "engine/common.h"

#define OD_IDX_MAX_DIMS 4
#define OD_IDX_TYPE_U8 0x08

typedef struct od_idx_file {
    char path[1024];
    void *gz;                    /* gzFile; NULL once closed */
    int ndim;
    uint32_t dims[OD_IDX_MAX_DIMS];
    uint64_t count;              /* elements the header promises */
    uint64_t consumed;           /* elements handed out so far */
} od_idx_file;

/* Open path and parse its header. The magic must be 0x00 0x00 0x08 ndim with
 * ndim == expect_ndim. Returns OD_ERR_IO when the file cannot be opened
 * (errno is kept, so ENOENT tells a missing file), OD_ERR_FORMAT for a bad
 * header. On failure nothing stays open. */
od_status od_idx_open(od_idx_file *f, const char *path, int expect_ndim);

/* Read the next n elements into buf. OD_ERR_FORMAT when the data ends first
 * (a truncated file), OD_ERR_IO on a read or decompression error. */
od_status od_idx_read(od_idx_file *f, uint8_t *buf, size_t n);

/* Skip the elements not read yet, check that nothing follows them, and
 * close. The file is closed whatever the outcome. */
od_status od_idx_finish(od_idx_file *f);

/* Close without checks (after a failure). Safe to call twice. */
void od_idx_close(od_idx_file *f);

#endif
