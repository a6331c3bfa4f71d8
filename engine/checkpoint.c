#include "engine/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char od__magic[8] = {'O', 'D', 'C', 'K', 'P', 'T', '\r', '\n'};
#define OD__MARKER 0x01020304u
#define OD__MARKER_SWAPPED 0x04030201u
/* magic, version, marker, file bytes, step, parameter count */
#define OD__HEADER_BYTES (8 + 4 + 4 + 8 + 8 + 4)
#define OD__MAX_NAME 4096u

/* ---- CRC-32 -------------------------------------------------------------- */

static uint32_t od__crc_table[256];
static pthread_once_t od__crc_once = PTHREAD_ONCE_INIT;

static void od__crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        od__crc_table[i] = c;
    }
}

uint32_t od_crc32(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&od__crc_once, od__crc_init);
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = od__crc_table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

/* ---- Writing ----------------------------------------------------------------
 * The writer runs twice over the same emit function: once with f == NULL to
 * count the bytes (the header records the file's length), then for real. */

typedef struct od__writer {
    FILE *f;            /* NULL: count only */
    uint64_t bytes;
    uint32_t crc;
    int err;            /* errno of the first failed write, or 0 */
} od__writer;

static void od__put(od__writer *w, const void *p, size_t n)
{
    w->bytes += n;
    if (!w->f || w->err || n == 0)
        return;
    w->crc = od_crc32(w->crc, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->err = errno ? errno : EIO;
}

static void od__put_u32(od__writer *w, uint32_t v) { od__put(w, &v, sizeof v); }
static void od__put_u64(od__writer *w, uint64_t v) { od__put(w, &v, sizeof v); }
static void od__put_f32(od__writer *w, float v) { od__put(w, &v, sizeof v); }

static void od__emit(od__writer *w, const od_model *m, const od_optim *o,
                     uint64_t step, uint64_t file_bytes)
{
    od__put(w, od__magic, sizeof od__magic);
    od__put_u32(w, OD_CHECKPOINT_VERSION);
    od__put_u32(w, OD__MARKER);
    od__put_u64(w, file_bytes);
    od__put_u64(w, step);
    od__put_u32(w, (uint32_t)m->nparams);

    for (int i = 0; i < m->nparams; i++) {
        const od_param *p = m->params[i];
        uint32_t len = (uint32_t)strnlen(p->name, sizeof p->name);
        od__put_u32(w, len);
        od__put(w, p->name, len);
        od__put_u32(w, (uint32_t)p->value.ndim);
        for (int d = 0; d < p->value.ndim; d++)
            od__put_u32(w, (uint32_t)p->value.dims[d]);
        od__put_u32(w, (uint32_t)(p->trainable != 0));
        od__put(w, p->value.data, p->value.size * sizeof(float));
    }

    od__put_u32(w, o != NULL);
    if (o) {
        const od_optim_config *c = od_optim_get_config(o);
        int nslots = od_optim_slot_count(o);
        od__put_u32(w, (uint32_t)c->kind);
        od__put_f32(w, c->lr);
        od__put_f32(w, c->momentum);
        od__put_f32(w, c->dampening);
        od__put_f32(w, c->weight_decay);
        od__put_u32(w, (uint32_t)(c->nesterov != 0));
        od__put_f32(w, c->beta1);
        od__put_f32(w, c->beta2);
        od__put_f32(w, c->eps);
        od__put_u64(w, od_optim_step_count(o));
        od__put_u32(w, (uint32_t)nslots);
        for (int i = 0; i < m->nparams; i++) {
            int has = nslots > 0 && od_optim_state(o, i, 0) != NULL;
            od__put_u32(w, (uint32_t)has);
            od__put_u64(w, od_optim_param_steps(o, i));
            for (int k = 0; has && k < nslots; k++)
                od__put(w, od_optim_state(o, i, k),
                        m->params[i]->value.size * sizeof(float));
        }
    }
}

/* Flush a directory's entries (the rename) to disk; best effort. */
static void od__sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n == 0)
            n = 1; /* the root directory */
        if (n >= sizeof dir)
            return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

od_status od_checkpoint_save(const char *path, const od_model *m,
                             const od_optim *o, uint64_t step)
{
    OD_ASSERT(path && m);
    if (o)
        OD_ASSERT(od_optim_model(o) == m);

    od__writer count = {0};
    od__emit(&count, m, o, step, 0);
    uint64_t file_bytes = count.bytes + 4; /* + CRC */

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return od_fail(OD_ERR_NOMEM, "host out of memory saving %s", path);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        od_status st = od_fail(OD_ERR_IO, "cannot create a temporary file "
                               "next to %s: %s (is the directory writable?)",
                               path, strerror(errno));
        free(tmp);
        return st;
    }
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        od_status st = od_fail(OD_ERR_IO, "cannot write %s: %s", tmp,
                               strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }

    od__writer w = {.f = f};
    errno = 0;
    od__emit(&w, m, o, step, file_bytes);
    uint32_t crc = w.crc;
    if (!w.err && fwrite(&crc, 1, sizeof crc, f) != sizeof crc)
        w.err = errno ? errno : EIO;
    if (!w.err && fflush(f) != 0)
        w.err = errno ? errno : EIO;
    if (!w.err && fsync(fileno(f)) != 0)
        w.err = errno ? errno : EIO;
    if (fclose(f) != 0 && !w.err)
        w.err = errno ? errno : EIO;
    if (!w.err)
        OD_ASSERT(w.bytes + 4 == file_bytes);
    if (!w.err && rename(tmp, path) != 0)
        w.err = errno ? errno : EIO;
    if (w.err) {
        od_status st = od_fail(OD_ERR_IO, "cannot save checkpoint %s: %s "
                               "(the previous file under that name, if any, "
                               "is unchanged)", path, strerror(w.err));
        unlink(tmp);
        free(tmp);
        return st;
    }
    free(tmp);
    od__sync_dir_of(path);
    return OD_OK;
}

/* ---- Reading ------------------------------------------------------------- */

typedef struct od__reader {
    FILE *f;
    const char *path;
    uint64_t pos;
    uint64_t end;       /* offset of the CRC: fields must end here */
    unsigned char buf[65536];
} od__reader;

/* Read n bytes into dst, or skip them when dst is NULL. */
static od_status od__get(od__reader *r, void *dst, size_t n)
{
    if (r->pos + n > r->end)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: a field "
                       "at byte %llu runs past the end of the data", r->path,
                       (unsigned long long)r->pos);
    if (!dst) {
        if (fseeko(r->f, (off_t)n, SEEK_CUR) != 0)
            return od_fail(OD_ERR_IO, "cannot read %s: %s", r->path,
                           strerror(errno));
    } else if (n && fread(dst, 1, n, r->f) != n) {
        return od_fail(OD_ERR_IO, "cannot read %s at byte %llu: %s", r->path,
                       (unsigned long long)r->pos,
                       ferror(r->f) ? strerror(errno) : "unexpected end");
    }
    r->pos += n;
    return OD_OK;
}

static od_status od__get_u32(od__reader *r, uint32_t *v)
{
    return od__get(r, v, 4);
}

static od_status od__get_u64(od__reader *r, uint64_t *v)
{
    return od__get(r, v, 8);
}

static const char *od__shape_str(int ndim, const uint32_t *dims, char *buf,
                                 size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %u" : "%u",
                                dims[i]);
    if (off < len)
        snprintf(buf + off, len - off, ")");
    return buf;
}

/* Check the header and the checksum of an open checkpoint; leaves the reader
 * just after the header. */
static od_status od__verify(od__reader *r, uint64_t *step, uint32_t *nparams)
{
    struct stat sb;
    if (fstat(fileno(r->f), &sb) != 0)
        return od_fail(OD_ERR_IO, "cannot stat %s: %s", r->path,
                       strerror(errno));
    uint64_t actual = (uint64_t)sb.st_size;

    unsigned char h[OD__HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, r->f);
    size_t cmp = got < sizeof od__magic ? got : sizeof od__magic;
    if (memcmp(h, od__magic, cmp) != 0 || got == 0)
        return od_fail(OD_ERR_FORMAT, "%s is not an ondev checkpoint (its "
                       "first bytes are not the checkpoint magic)", r->path);
    if (got < sizeof h)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is truncated: %zu bytes, "
                       "shorter than the %d-byte header", r->path, got,
                       OD__HEADER_BYTES);

    uint32_t version, marker, np;
    uint64_t file_bytes;
    memcpy(&version, h + 8, 4);
    memcpy(&marker, h + 12, 4);
    memcpy(&file_bytes, h + 16, 8);
    memcpy(step, h + 24, 8);
    memcpy(&np, h + 32, 4);
    if (marker == OD__MARKER_SWAPPED)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s was written on a machine "
                       "with the other byte order; this build cannot read it",
                       r->path);
    if (version != OD_CHECKPOINT_VERSION)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s has format version %u; "
                       "this build reads version %u", r->path, version,
                       OD_CHECKPOINT_VERSION);
    if (marker != OD__MARKER)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is corrupt: its byte "
                       "order marker is 0x%08x", r->path, marker);
    if (actual < file_bytes)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is truncated: %llu of "
                       "%llu bytes present", r->path,
                       (unsigned long long)actual,
                       (unsigned long long)file_bytes);
    if (actual > file_bytes || file_bytes < OD__HEADER_BYTES + 4)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is corrupt: %llu bytes "
                       "on disk but the header says %llu", r->path,
                       (unsigned long long)actual,
                       (unsigned long long)file_bytes);

    /* Checksum of everything before the stored CRC. */
    uint32_t crc = od_crc32(0, h, sizeof h);
    uint64_t left = file_bytes - 4 - sizeof h;
    while (left > 0) {
        size_t n = left < sizeof r->buf ? (size_t)left : sizeof r->buf;
        if (fread(r->buf, 1, n, r->f) != n)
            return od_fail(OD_ERR_IO, "cannot read %s: %s", r->path,
                           ferror(r->f) ? strerror(errno) : "unexpected end");
        crc = od_crc32(crc, r->buf, n);
        left -= n;
    }
    uint32_t stored;
    if (fread(&stored, 1, 4, r->f) != 4)
        return od_fail(OD_ERR_IO, "cannot read %s: unexpected end", r->path);
    if (stored != crc)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is corrupt: checksum "
                       "mismatch (stored CRC-32 0x%08x, computed 0x%08x)",
                       r->path, stored, crc);

    if (fseeko(r->f, (off_t)sizeof h, SEEK_SET) != 0)
        return od_fail(OD_ERR_IO, "cannot read %s: %s", r->path,
                       strerror(errno));
    r->pos = sizeof h;
    r->end = file_bytes - 4;
    *nparams = np;
    return OD_OK;
}

/* Walk the body after the header. With apply == 0 only check that it fits m
 * and o (allocating optimiser state the file has and o lacks); with
 * apply == 1 copy the values in. */
static od_status od__body(od__reader *r, od_model *m, od_optim *o,
                          uint32_t nparams, int apply)
{
    char name[OD__MAX_NAME + 1];
    char sa[96], sb[96];

    if (nparams != (uint32_t)m->nparams)
        return od_fail(OD_ERR_MISMATCH, "checkpoint %s holds %u parameters "
                       "but the model has %d; it was saved from another "
                       "model", r->path, nparams, m->nparams);

    for (int i = 0; i < m->nparams; i++) {
        od_param *p = m->params[i];
        uint32_t len, ndim, trainable;
        uint32_t dims[OD_MAX_DIMS];
        OD_TRY(od__get_u32(r, &len));
        if (len > OD__MAX_NAME)
            return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: "
                           "parameter %d has a %u-byte name", r->path, i, len);
        OD_TRY(od__get(r, name, len));
        name[len] = '\0';
        if (strncmp(name, p->name, sizeof p->name) != 0 ||
            len != strnlen(p->name, sizeof p->name))
            return od_fail(OD_ERR_MISMATCH, "checkpoint %s does not match the "
                           "model: parameter %d is '%s' in the file but '%.*s' "
                           "in the model", r->path, i, name,
                           (int)sizeof p->name, p->name);
        OD_TRY(od__get_u32(r, &ndim));
        if (ndim < 1 || ndim > OD_MAX_DIMS)
            return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: "
                           "parameter '%s' has %u dimensions", r->path, name,
                           ndim);
        OD_TRY(od__get(r, dims, 4 * (size_t)ndim));
        int same = (int)ndim == p->value.ndim;
        for (uint32_t d = 0; same && d < ndim; d++)
            same = dims[d] == (uint32_t)p->value.dims[d];
        if (!same) {
            uint32_t md[OD_MAX_DIMS];
            for (int d = 0; d < p->value.ndim; d++)
                md[d] = (uint32_t)p->value.dims[d];
            return od_fail(OD_ERR_MISMATCH, "checkpoint %s does not match the "
                           "model: parameter '%s' has shape %s in the file but "
                           "%s in the model", r->path, name,
                           od__shape_str((int)ndim, dims, sa, sizeof sa),
                           od__shape_str(p->value.ndim, md, sb, sizeof sb));
        }
        OD_TRY(od__get_u32(r, &trainable));
        OD_TRY(od__get(r, apply ? p->value.data : NULL,
                       p->value.size * sizeof(float)));
    }

    uint32_t has_optim;
    OD_TRY(od__get_u32(r, &has_optim));
    if (has_optim > 1)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: optimiser "
                       "flag is %u", r->path, has_optim);
    if (!o)
        return OD_OK; /* optimiser state, if any, is not wanted */
    if (!has_optim)
        return od_fail(OD_ERR_MISMATCH, "checkpoint %s holds no optimiser "
                       "state; load it without an optimiser to start one "
                       "afresh", r->path);

    const od_optim_config *cfg = od_optim_get_config(o);
    uint32_t kind, nslots, u32;
    uint64_t steps;
    float f32[4];
    OD_TRY(od__get_u32(r, &kind));
    OD_TRY(od__get(r, f32, sizeof f32)); /* lr, momentum, dampening, wd */
    OD_TRY(od__get_u32(r, &u32));        /* nesterov */
    OD_TRY(od__get(r, f32, 3 * sizeof(float))); /* beta1, beta2, eps */
    OD_TRY(od__get_u64(r, &steps));
    OD_TRY(od__get_u32(r, &nslots));
    if (kind != (uint32_t)cfg->kind)
        return od_fail(OD_ERR_MISMATCH, "checkpoint %s holds state of "
                       "optimiser %s but the optimiser is %s", r->path,
                       kind <= OD_OPTIM_ADAMW
                           ? od_optim_kind_name((od_optim_kind)kind)
                           : "(unknown)",
                       od_optim_kind_name(cfg->kind));
    int want = od_optim_slot_count(o);
    if (nslots != (uint32_t)want)
        return od_fail(OD_ERR_MISMATCH, "checkpoint %s holds %u state buffers "
                       "per parameter but this %s optimiser keeps %d (was "
                       "momentum switched on or off?)", r->path, nslots,
                       od_optim_kind_name(cfg->kind), want);
    if (apply)
        od_optim_set_step_count(o, steps);

    for (int i = 0; i < m->nparams; i++) {
        uint32_t has;
        uint64_t psteps;
        size_t bytes = m->params[i]->value.size * sizeof(float);
        OD_TRY(od__get_u32(r, &has));
        OD_TRY(od__get_u64(r, &psteps));
        if (has > 1 || (has && nslots == 0))
            return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: state "
                           "flag of parameter '%s' is %u", r->path,
                           m->params[i]->name, has);
        if (!apply) {
            if (has)
                OD_TRY(od_optim_state_ensure(o, i));
            for (uint32_t k = 0; has && k < nslots; k++)
                OD_TRY(od__get(r, NULL, bytes));
            continue;
        }
        od_optim_set_param_steps(o, i, psteps);
        for (int k = 0; k < want; k++) {
            float *s = od_optim_state(o, i, k);
            if (has)
                OD_TRY(od__get(r, s, bytes));
            else if (s)
                memset(s, 0, bytes);
        }
    }
    if (r->pos != r->end)
        return od_fail(OD_ERR_FORMAT, "checkpoint %s is malformed: %llu "
                       "unexpected bytes after the optimiser state", r->path,
                       (unsigned long long)(r->end - r->pos));
    return OD_OK;
}

od_status od_checkpoint_load(const char *path, od_model *m, od_optim *o,
                             uint64_t *step)
{
    OD_ASSERT(path && m);
    if (o)
        OD_ASSERT(od_optim_model(o) == m);

    od__reader *r = calloc(1, sizeof *r);
    if (!r)
        return od_fail(OD_ERR_NOMEM, "host out of memory loading %s", path);
    r->path = path;
    r->f = fopen(path, "rb");
    if (!r->f) {
        od_status st = od_fail(OD_ERR_IO, "cannot open checkpoint %s: %s",
                               path, strerror(errno));
        free(r);
        return st;
    }

    /* Three passes over the open file: header and checksum, then the body
     * checked against the model, then the body copied in. The file may be
     * replaced under its name meanwhile (saves rename), but the open handle
     * keeps reading the same bytes. */
    uint64_t saved_step = 0;
    uint32_t nparams = 0;
    uint64_t body = 0;
    od_status st = od__verify(r, &saved_step, &nparams);
    if (st == OD_OK) {
        body = r->pos;
        st = od__body(r, m, o, nparams, 0);
    }
    if (st == OD_OK) {
        if (fseeko(r->f, (off_t)body, SEEK_SET) != 0) {
            st = od_fail(OD_ERR_IO, "cannot read %s: %s", path,
                         strerror(errno));
        } else {
            r->pos = body;
            st = od__body(r, m, o, nparams, 1);
            /* The check pass saw the same bytes, so only I/O can fail. */
            OD_ASSERT(st == OD_OK || st == OD_ERR_IO);
        }
    }
    if (st == OD_OK && step)
        *step = saved_step;
    fclose(r->f);
    free(r);
    return st;
}
