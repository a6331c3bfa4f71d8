#include "workloads/idx.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

/* zlib reads at most UINT_MAX bytes per call; stay well below. */
#define OD__IDX_CHUNK_BYTES ((size_t)1 << 20)

/* The failure of a gzread that returned -1: OD_ERR_IO when the system
 * could not read the file, OD_ERR_FORMAT when the compressed data are
 * damaged. */
static od_status od__gz_fail(gzFile gz, const char *path)
{
    int zerr = Z_OK;
    const char *msg = gzerror(gz, &zerr);
    if (zerr == Z_ERRNO)
        return od_fail(OD_ERR_IO, "%s: cannot read: %s", path,
                       strerror(errno));
    return od_fail(OD_ERR_FORMAT, "%s: corrupt compressed data (%s); "
                   "the file is damaged, reinstall or download it again",
                   path, (msg && msg[0]) ? msg : "unknown zlib error");
}

/* Why a gzip file ended early: a note when the compressed stream itself was
 * cut, "" when the stream was complete but held too few bytes. */
static const char *od__gz_end_note(gzFile gz)
{
    int zerr = Z_OK;
    gzerror(gz, &zerr);
    return zerr == Z_BUF_ERROR ? " (the compressed stream is cut short)"
                               : "";
}

/* Read up to n bytes; returns the count read (short only at the end of the
 * data) or -1 on an error. */
static int64_t od__gz_read_all(gzFile gz, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got;
        if (want > OD__IDX_CHUNK_BYTES)
            want = OD__IDX_CHUNK_BYTES;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

static uint32_t od__be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void od_idx_close(od_idx_file *f)
{
    if (f && f->gz) {
        gzclose((gzFile)f->gz);
        f->gz = NULL;
    }
}

od_status od_idx_open(od_idx_file *f, const char *path, int expect_ndim)
{
    OD_ASSERT(f && path);
    OD_ASSERT(expect_ndim >= 1 && expect_ndim <= OD_IDX_MAX_DIMS);
    memset(f, 0, sizeof *f);
    if (strlen(path) >= sizeof f->path)
        return od_fail(OD_ERR_INVALID, "path too long (%zu characters, at "
                       "most %zu): %s", strlen(path), sizeof f->path - 1,
                       path);
    memcpy(f->path, path, strlen(path) + 1);

    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        int err = errno ? errno : ENOMEM;
        od_status st = od_fail(OD_ERR_IO, "cannot open %s: %s", path,
                               strerror(err));
        errno = err;
        return st;
    }
    f->gz = gz;
    gzbuffer(gz, 256 * 1024);

    /* The magic: two zero bytes, the element type, the dimension count. */
    uint8_t head[4 + 4 * OD_IDX_MAX_DIMS];
    int64_t got = od__gz_read_all(gz, head, 4);
    if (got < 0) {
        od_status st = od__gz_fail(gz, path);
        od_idx_close(f);
        return st;
    }
    if (got < 4) {
        od_idx_close(f);
        return od_fail(OD_ERR_FORMAT, "%s: truncated: %d bytes, shorter "
                       "than the 4-byte IDX magic", path, (int)got);
    }
    uint32_t magic = od__be32(head);
    uint32_t want_magic = (uint32_t)OD_IDX_TYPE_U8 << 8 |
                          (uint32_t)expect_ndim;
    if (head[0] != 0 || head[1] != 0 || head[2] != OD_IDX_TYPE_U8) {
        od_idx_close(f);
        return od_fail(OD_ERR_FORMAT, "%s: wrong magic number 0x%08x, "
                       "expected 0x%08x (an IDX file of unsigned bytes with "
                       "%d dimensions); is this an IDX file?", path,
                       (unsigned)magic, (unsigned)want_magic, expect_ndim);
    }
    if (head[3] != expect_ndim) {
        od_idx_close(f);
        return od_fail(OD_ERR_FORMAT, "%s: wrong magic number 0x%08x: %d "
                       "dimensions, expected %d (magic 0x%08x)", path,
                       (unsigned)magic, head[3], expect_ndim,
                       (unsigned)want_magic);
    }

    /* One big-endian size per dimension. */
    f->ndim = expect_ndim;
    got = od__gz_read_all(gz, head + 4, 4 * (size_t)expect_ndim);
    if (got < 0) {
        od_status st = od__gz_fail(gz, path);
        od_idx_close(f);
        return st;
    }
    if (got < 4 * expect_ndim) {
        od_idx_close(f);
        return od_fail(OD_ERR_FORMAT, "%s: truncated header: the sizes of "
                       "%d dimensions need %d bytes, the file has %d", path,
                       expect_ndim, 4 * expect_ndim, (int)got);
    }
    f->count = 1;
    for (int i = 0; i < expect_ndim; i++) {
        f->dims[i] = od__be32(head + 4 + 4 * i);
        f->count *= f->dims[i];
        /* 2^40 bytes is far beyond any dataset here; it also keeps the
         * product of up to four 32-bit sizes from overflowing. */
        if (f->count > ((uint64_t)1 << 40)) {
            od_idx_close(f);
            return od_fail(OD_ERR_FORMAT, "%s: header promises more than "
                           "2^40 elements; the file is damaged", path);
        }
    }
    return OD_OK;
}

od_status od_idx_read(od_idx_file *f, uint8_t *buf, size_t n)
{
    OD_ASSERT(f && f->gz && (buf || n == 0));
    OD_ASSERT(f->consumed + n <= f->count);
    int64_t got = od__gz_read_all((gzFile)f->gz, buf, n);
    if (got < 0)
        return od__gz_fail((gzFile)f->gz, f->path);
    if ((size_t)got < n)
        return od_fail(OD_ERR_FORMAT, "%s: truncated: the header promises "
                       "%llu data bytes but the file ends after %llu%s",
                       f->path, (unsigned long long)f->count,
                       (unsigned long long)(f->consumed + (uint64_t)got),
                       od__gz_end_note((gzFile)f->gz));
    f->consumed += n;
    return OD_OK;
}

od_status od_idx_finish(od_idx_file *f)
{
    OD_ASSERT(f && f->gz);
    uint8_t scratch[64 * 1024];
    od_status st = OD_OK;

    /* Read what the caller skipped, so that truncation is caught anyway. */
    while (st == OD_OK && f->consumed < f->count) {
        uint64_t left = f->count - f->consumed;
        size_t n = left < sizeof scratch ? (size_t)left : sizeof scratch;
        st = od_idx_read(f, scratch, n);
    }

    /* Nothing may follow the promised data. */
    if (st == OD_OK) {
        int64_t extra = od__gz_read_all((gzFile)f->gz, scratch,
                                        sizeof scratch);
        if (extra < 0)
            st = od__gz_fail((gzFile)f->gz, f->path);
        else if (extra > 0)
            st = od_fail(OD_ERR_FORMAT, "%s: trailing garbage: %s%lld "
                         "bytes after the %llu data bytes the header "
                         "promises", f->path,
                         extra == (int64_t)sizeof scratch ? "at least " : "",
                         (long long)extra, (unsigned long long)f->count);
    }
    od_idx_close(f);
    return st;
}
