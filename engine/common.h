/* Shared definitions of the engine: status codes, the error message of the
 * last failure, and the always-on assertion for programmer errors.
 *
 * Conventions: functions whose outcome a caller must handle (bad input,
 * budget exceeded, unreadable file) return od_status and leave a message in
 * od_error_message(); bugs trip OD_ASSERT, which is on in every build. */
#ifndef ONDEV_ENGINE_COMMON_H
#define ONDEV_ENGINE_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum od_status {
    OD_OK = 0,
    OD_ERR_NOMEM,       /* the arena's byte budget (or the host) is exhausted */
    OD_ERR_INVALID,     /* bad argument or configuration value */
    OD_ERR_IO,          /* a file could not be read or written */
    OD_ERR_FORMAT,      /* a file was read but its contents are wrong */
    OD_ERR_MISMATCH,    /* well-formed input that does not fit (shapes, model) */
    OD_ERR_INTERRUPTED, /* stopped on request (signal) */
    OD_ERR_UNSUPPORTED,
} od_status;

const char *od_status_name(od_status st);

/* The message of the last failure on this thread; "" when none. */
const char *od_error_message(void);

/* Record a failure message (printf-style) and return st, so that callers can
 * write `return od_fail(OD_ERR_IO, "cannot open %s", path);`. */
od_status od_fail(od_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void od_clear_error(void);

void od__assert_fail(const char *expr, const char *file, int line)
    __attribute__((noreturn));

#define OD_ASSERT(expr) \
    ((expr) ? (void)0 : od__assert_fail(#expr, __FILE__, __LINE__))

/* Propagate a non-OK status. */
#define OD_TRY(call)                    \
    do {                                \
        od_status od__st = (call);      \
        if (od__st != OD_OK)            \
            return od__st;              \
    } while (0)

/* Allocation aligned for the widest vector the kernels use. */
#define OD_ALIGN 64
void *od_aligned_alloc(size_t bytes);
void od_aligned_free(void *p);

/* Monotonic host clock in nanoseconds. */
uint64_t od_now_ns(void);

#endif
