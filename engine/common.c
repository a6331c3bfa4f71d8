#include "engine/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char od__errbuf[1024];

const char *od_status_name(od_status st)
{
    switch (st) {
    case OD_OK: return "ok";
    case OD_ERR_NOMEM: return "out of memory budget";
    case OD_ERR_INVALID: return "invalid argument";
    case OD_ERR_IO: return "input/output error";
    case OD_ERR_FORMAT: return "malformed data";
    case OD_ERR_MISMATCH: return "mismatch";
    case OD_ERR_INTERRUPTED: return "interrupted";
    case OD_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

const char *od_error_message(void) { return od__errbuf; }

void od_clear_error(void) { od__errbuf[0] = '\0'; }

od_status od_fail(od_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(od__errbuf, sizeof od__errbuf, fmt, ap);
    va_end(ap);
    return st;
}

void od__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ondev: internal error: assertion '%s' failed at %s:%d\n"
                    "This is a bug in ondev; please report it with the "
                    "command that triggered it.\n",
            expr, file, line);
    abort();
}

void *od_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0)
        bytes = OD_ALIGN;
    if (posix_memalign(&p, OD_ALIGN, bytes) != 0)
        return NULL;
    return p;
}

void od_aligned_free(void *p) { free(p); }

uint64_t od_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
