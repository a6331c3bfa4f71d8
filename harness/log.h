/* One levelled logger for diagnostics, and the progress indicator.
 *
 * Everything here writes to stderr: stdout is reserved for machine-readable
 * output (--json). The level is set once from -q / -v:
 *   -q  errors and warnings only, no progress
 *       (default) information and progress
 *   -v  also details (host description, binding, per-epoch figures) */
#ifndef ONDEV_HARNESS_LOG_H
#define ONDEV_HARNESS_LOG_H

#include <stdint.h>

typedef enum od_log_level {
    OD_LOG_ERROR = 0,
    OD_LOG_WARN,
    OD_LOG_INFO,
    OD_LOG_DEBUG,
} od_log_level;

void od_log_set_level(od_log_level level);
od_log_level od_log_get_level(void);
int od_log_enabled(od_log_level level);

/* A line on stderr; errors and warnings carry an "ondev: error: " or
 * "ondev: warning: " prefix. A trailing newline is added when missing. */
void od_log(od_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define od_log_error(...) od_log(OD_LOG_ERROR, __VA_ARGS__)
#define od_log_warn(...) od_log(OD_LOG_WARN, __VA_ARGS__)
#define od_log_info(...) od_log(OD_LOG_INFO, __VA_ARGS__)
#define od_log_debug(...) od_log(OD_LOG_DEBUG, __VA_ARGS__)

/* Progress of one phase (an epoch) counted in steps. On a terminal one line
 * is redrawn in place; otherwise a line is printed at each quarter. Silent
 * below OD_LOG_INFO. */
typedef struct od_progress {
    char label[64];
    int64_t total;
    int64_t done;
    int tty;
    int last_quarter;       /* last quarter printed (non-terminal) */
    uint64_t start_ns;
    uint64_t last_draw_ns;  /* last redraw (terminal) */
    int drawn;              /* a partial line is on the terminal */
} od_progress;

void od_progress_begin(od_progress *p, const char *label, int64_t total);
/* done steps so far; loss is the running mean train loss (NaN: unknown). */
void od_progress_update(od_progress *p, int64_t done, double loss);
/* Erase the in-place line, if any, so that ordinary log lines follow. */
void od_progress_end(od_progress *p);

#endif
