#include "harness/log.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/common.h"

static od_log_level od__level = OD_LOG_INFO;

/* The progress line currently drawn on the terminal, erased before any log
 * line is printed so that the two never interleave on one row. */
static od_progress *od__drawn_progress;

void od_log_set_level(od_log_level level) { od__level = level; }

od_log_level od_log_get_level(void) { return od__level; }

int od_log_enabled(od_log_level level) { return level <= od__level; }

static void od__erase_progress(void)
{
    if (od__drawn_progress && od__drawn_progress->drawn) {
        fputs("\r\033[K", stderr);
        od__drawn_progress->drawn = 0;
    }
}

void od_log(od_log_level level, const char *fmt, ...)
{
    if (!od_log_enabled(level))
        return;
    od__erase_progress();

    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);

    const char *prefix = "";
    if (level == OD_LOG_ERROR)
        prefix = "ondev: error: ";
    else if (level == OD_LOG_WARN)
        prefix = "ondev: warning: ";
    size_t n = strlen(buf);
    fprintf(stderr, "%s%s%s", prefix, buf,
            n && buf[n - 1] == '\n' ? "" : "\n");
    fflush(stderr);
}

void od_progress_begin(od_progress *p, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->tty = isatty(STDERR_FILENO);
    p->start_ns = od_now_ns();
}

static void od__progress_draw(od_progress *p, double loss)
{
    double frac = (double)p->done / (double)p->total;
    double elapsed_s = (double)(od_now_ns() - p->start_ns) * 1e-9;
    char loss_txt[32] = "";
    if (!isnan(loss))
        snprintf(loss_txt, sizeof loss_txt, "  loss %.4f", loss);

    if (p->tty) {
        enum { BAR = 24 };
        char bar[BAR + 1];
        int filled = (int)(frac * BAR);
        for (int i = 0; i < BAR; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[BAR] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %lld/%lld%s  %.1f s", p->label, bar,
                (long long)p->done, (long long)p->total, loss_txt, elapsed_s);
        p->drawn = 1;
        od__drawn_progress = p;
    } else {
        fprintf(stderr, "%s: %lld/%lld steps (%3.0f %%)%s  %.1f s\n",
                p->label, (long long)p->done, (long long)p->total,
                100.0 * frac, loss_txt, elapsed_s);
    }
    fflush(stderr);
}

void od_progress_update(od_progress *p, int64_t done, double loss)
{
    p->done = done;
    if (!od_log_enabled(OD_LOG_INFO))
        return;
    if (p->tty) {
        /* Redraw at most ten times a second, and always at the end. */
        uint64_t now = od_now_ns();
        if (done < p->total && p->drawn && now - p->last_draw_ns < 100000000u)
            return;
        p->last_draw_ns = now;
        od__progress_draw(p, loss);
        return;
    }
    int quarter = (int)(4 * done / p->total);
    if (quarter > p->last_quarter) {
        p->last_quarter = quarter;
        od__progress_draw(p, loss);
    }
}

void od_progress_end(od_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = 0;
    }
    if (od__drawn_progress == p)
        od__drawn_progress = NULL;
}
