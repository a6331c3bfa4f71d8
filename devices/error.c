/* The last failure message of the devices part, and its assertion. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "devices/device.h"

static _Thread_local char od__dev_msg[1024];

const char *od_dev_error_message(void) { return od__dev_msg; }

od_dev_status od_dev_fail(od_dev_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(od__dev_msg, sizeof od__dev_msg, fmt, ap);
    va_end(ap);
    return st;
}

void od_dev__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "ondev: internal error: %s:%d: assertion '%s' failed\n",
            file, line, expr);
    abort();
}
