/* Plots through gnuplot and the report page (HTML and Markdown).
 *
 * Each plot NAME is three files a user can edit and re-render: NAME.dat
 * (the numbers, with a header naming columns and units), NAME.gp (the
 * script; `gnuplot NAME.gp` writes NAME.png and NAME.svg) and the two
 * images. */
#include "results/results.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "results/store_internal.h"

/* Runs whose traces get their own plots; more are listed as skipped. */
#define OD__MAX_TRACE_PLOTS 12
/* Rows of a trace written to a plot's data; longer traces are thinned. */
#define OD__MAX_TRACE_ROWS 4000
#define OD__MAX_PLOTS (4 + 2 * OD__MAX_TRACE_PLOTS)

/* Line colours that stay apart in colour and in grey (Okabe-Ito). */
static const char *const od__colours[] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
    "#000000", "#F0E442",
};
#define OD__NCOLOURS (int)(sizeof od__colours / sizeof od__colours[0])

typedef struct od__plot {
    char name[64];
    char caption[256];
} od__plot;

typedef struct od__report {
    const od_res_set *set;
    const char *dir;
    const char *gnuplot;
    FILE *log;
    od__plot plots[OD__MAX_PLOTS];
    int nplots;
} od__report;

static void od__note(od__report *rp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void od__note(od__report *rp, const char *fmt, ...)
{
    if (!rp->log)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("report: ", rp->log);
    vfprintf(rp->log, fmt, ap);
    fputc('\n', rp->log);
    va_end(ap);
}

/* ---- Running gnuplot ---------------------------------------------------- */

/* The gnuplot to run: $ONDEV_GNUPLOT, or "gnuplot" found on PATH. NULL
 * when there is none. */
static char *od__find_gnuplot(void)
{
    const char *env = getenv("ONDEV_GNUPLOT");
    if (env && env[0])
        return access(env, X_OK) == 0 ? od__res_strdup(env) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char *copy = od__res_strdup(path), *save = NULL;
    char *found = NULL;
    for (char *d = strtok_r(copy, ":", &save); d && !found;
         d = strtok_r(NULL, ":", &save)) {
        char cand[4096];
        snprintf(cand, sizeof cand, "%s/gnuplot", d[0] ? d : ".");
        if (access(cand, X_OK) == 0)
            found = od__res_strdup(cand);
    }
    free(copy);
    return found;
}

/* Run gnuplot on NAME.gp inside the report's directory; its messages go
 * to NAME.log, which is removed when it succeeds. */
static int od__run_gnuplot(od__report *rp, const char *name)
{
    char script[128], logname[128];
    snprintf(script, sizeof script, "%s.gp", name);
    snprintf(logname, sizeof logname, "%s.log", name);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return od_res_fail("cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        if (chdir(rp->dir) != 0)
            _exit(126);
        int fd = open(logname, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(rp->gnuplot, rp->gnuplot, script, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return od_res_fail("waiting for gnuplot: %s", strerror(errno));
    char logpath[4096];
    snprintf(logpath, sizeof logpath, "%s/%s", rp->dir, logname);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(logpath);
        return 0;
    }
    return od_res_fail("gnuplot failed on %s/%s: see %s", rp->dir, script,
                       logpath);
}

static FILE *od__open_out(od__report *rp, const char *name, const char *ext)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.%s", rp->dir, name, ext);
    FILE *f = fopen(path, "w");
    if (!f)
        od_res_fail("cannot write %s: %s", path, strerror(errno));
    return f;
}

/* The start of every script: both terminals in one loop, so that the
 * plotting commands are written once. The body must end the loop with
 * od__gp_end. */
static void od__gp_begin(FILE *g, const char *name, const char *title,
                         int width_px, int height_px)
{
    fprintf(g,
            "# %s\n"
            "# Written by `ondev report`; edit freely and re-render with\n"
            "#   gnuplot %s.gp\n"
            "# which writes %s.png and %s.svg from %s.dat.\n"
            "set encoding utf8\n"
            "do for [fmt in \"png svg\"] {\n"
            "  if (fmt eq \"png\") {\n"
            "    set terminal pngcairo size %d,%d noenhanced "
            "font \"DejaVu Sans,12\" linewidth 1.6\n"
            "  } else {\n"
            "    set terminal svg size %d,%d noenhanced "
            "font \"DejaVu Sans,12\" linewidth 1.2 background \"white\"\n"
            "  }\n"
            "  set output \"%s.\".fmt\n"
            "  reset\n"
            "  set border 3 linewidth 1.0\n"
            "  set tics nomirror out scale 0.6\n"
            "  set grid xtics ytics linecolor \"#dddddd\" linewidth 0.6\n"
            "  set key outside right top box linecolor \"#bbbbbb\" "
            "spacing 1.2\n"
            "  set title \"%s\" font \",14\"\n",
            title, name, name, name, name, width_px, height_px,
            width_px * 3 / 4, height_px * 3 / 4, name, title);
}

static void od__gp_end(FILE *g)
{
    fputs("  set output\n}\n", g);
}

static void od__add_plot(od__report *rp, const char *name,
                         const char *caption)
{
    if (rp->nplots == OD__MAX_PLOTS)
        return;
    od__plot *p = &rp->plots[rp->nplots++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->caption, sizeof p->caption, "%s", caption);
}

/* Close the files of plot name, run gnuplot and list it. */
static int od__finish_plot(od__report *rp, FILE *dat, FILE *gp,
                           const char *name, const char *caption)
{
    int bad = ferror(dat) | ferror(gp);
    bad |= fclose(dat) != 0;
    bad |= fclose(gp) != 0;
    if (bad)
        return od_res_fail("cannot write the files of %s in %s", name,
                           rp->dir);
    if (od__run_gnuplot(rp, name))
        return -1;
    od__add_plot(rp, name, caption);
    od__note(rp, "%s/%s.png", rp->dir, name);
    return 0;
}

/* ---- Units and groups --------------------------------------------------- */

/* Seconds shown in s, min or h, whichever keeps numbers readable. */
static void od__time_unit(double max_s, double *div, const char **name)
{
    if (max_s >= 3 * 3600) {
        *div = 3600;
        *name = "h";
    } else if (max_s >= 180) {
        *div = 60;
        *name = "min";
    } else {
        *div = 1;
        *name = "s";
    }
}

static void od__energy_unit(double max_j, double *div, const char **name)
{
    if (max_j >= 1e4) {
        *div = 1e3;
        *name = "kJ";
    } else {
        *div = 1;
        *name = "J";
    }
}

/* The device a run emulated, for legends; "host" when none. */
static const char *od__device(const od_res_run *r)
{
    const char *d = od_res_run_text(r, "device");
    return d && d[0] ? d : "host";
}

/* Distinct devices of the runs for which keep[i] is set, in first-seen
 * order; returns how many (at most max). */
static int od__devices(const od_res_set *s, const int *keep,
                       const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < s->nruns; i++) {
        if (!keep[i])
            continue;
        const char *d = od__device(&s->runs[i]);
        int seen = 0;
        for (int k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], d) == 0;
        if (!seen && n < max)
            out[n++] = d;
    }
    return n;
}

/* Whether run a sorts after run b: by x, then by y from high to low. */
static int od__after(const od_res_set *s, int a, int b, const char *x,
                     const char *y)
{
    double xa = od_res_summary_num(&s->runs[a], x);
    double xb = od_res_summary_num(&s->runs[b], x);
    if (xa != xb)
        return xa > xb;
    return od_res_summary_num(&s->runs[a], y) <
           od_res_summary_num(&s->runs[b], y);
}

/* Indices of runs with finite x and y summary figures, sorted by x (ties:
 * highest y first). */
static int od__points(const od_res_set *s, const char *x, const char *y,
                      int *idx)
{
    int n = 0;
    for (int i = 0; i < s->nruns; i++)
        if (isfinite(od_res_summary_num(&s->runs[i], x)) &&
            isfinite(od_res_summary_num(&s->runs[i], y)))
            idx[n++] = i;
    for (int a = 1; a < n; a++)   /* insertion sort: a sweep is small */
        for (int b = a; b > 0 && od__after(s, idx[b - 1], idx[b], x, y);
             b--) {
            int t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    return n;
}

static void od__gp_quoted(FILE *g, const char *s)
{
    fputc('"', g);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', g);
        fputc(*s, g);
    }
    fputc('"', g);
}

static double od__max_summary(const od_res_set *s, const char *key)
{
    double m = 0;
    for (int i = 0; i < s->nruns; i++) {
        double v = od_res_summary_num(&s->runs[i], key);
        if (isfinite(v) && v > m)
            m = v;
    }
    return m;
}

/* The privacy axis label, with δ when every run used the same one. */
static void od__eps_label(const od_res_set *s, char *buf, size_t len)
{
    const char *delta = NULL;
    int same = 1;
    for (int i = 0; i < s->nruns && same; i++) {
        const char *d = od_res_run_text(&s->runs[i], "delta");
        if (!delta)
            delta = d;
        else if (d && strcmp(d, delta) != 0)
            same = 0;
    }
    if (delta && same)
        snprintf(buf, len, "privacy budget ε (δ = %s)", delta);
    else
        snprintf(buf, len, "privacy budget ε");
}

/* Write the runs idx[0..n) grouped by device as gnuplot data blocks
 * (columns given by keys, each divided by div[k]); the block of device
 * k is index k. */
static int od__write_blocks(FILE *dat, const od_res_set *s, const int *idx,
                            int n, const char **devs, int ndev,
                            const char *const *keys, const double *div,
                            int nkeys)
{
    int blocks = 0;
    for (int d = 0; d < ndev; d++) {
        fprintf(dat, "%s# device %s\n", blocks ? "\n\n" : "", devs[d]);
        for (int i = 0; i < n; i++) {
            const od_res_run *r = &s->runs[idx[i]];
            if (strcmp(od__device(r), devs[d]) != 0)
                continue;
            for (int k = 0; k < nkeys; k++)
                fprintf(dat, "%s%.9g", k ? " " : "",
                        od_res_summary_num(r, keys[k]) / div[k]);
            fprintf(dat, "  # %s\n", r->label);
        }
        blocks++;
    }
    return blocks;
}

/* Log scale for ε when the points span more than a decade. */
static void od__eps_axis(FILE *g, const od_res_set *s, const int *idx, int n)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++) {
        double e = od_res_summary_num(&s->runs[idx[i]], "epsilon");
        if (e > 0 && e < lo)
            lo = e;
        if (e > hi)
            hi = e;
    }
    if (lo > 0 && hi / lo > 10)
        fputs("  set logscale x 10\n", g);
    fputs("  set offsets graph 0.03, graph 0.03, graph 0.05, graph 0.05\n",
          g);
}

/* ---- Plots over the runs of a sweep ------------------------------------- */

static int od__plot_acc_eps(od__report *rp)
{
    const od_res_set *s = rp->set;
    const char *name = "accuracy_vs_epsilon";
    int *idx = malloc((size_t)s->nruns * sizeof *idx);
    int *keep = calloc((size_t)s->nruns, sizeof *keep);
    if (!idx || !keep) {
        free(idx);
        free(keep);
        return od_res_fail("out of memory");
    }
    int n = od__points(s, "epsilon", "test_accuracy", idx);
    int rc = 0;
    if (n < 2) {
        od__note(rp, "skipped accuracy vs ε: %s", n == 0
                 ? "no run has both epsilon and test_accuracy in its summary"
                 : "only one run has epsilon and test_accuracy");
        goto done;
    }
    for (int i = 0; i < n; i++)
        keep[idx[i]] = 1;
    const char *devs[OD__NCOLOURS];
    int ndev = od__devices(s, keep, devs, OD__NCOLOURS);
    FILE *dat = od__open_out(rp, name, "dat");
    FILE *gp = dat ? od__open_out(rp, name, "gp") : NULL;
    if (!gp) {
        if (dat)
            fclose(dat);
        rc = -1;
        goto done;
    }
    static const char *const keys[] = {"epsilon", "test_accuracy"};
    const double div[] = {1, 0.01};
    fprintf(dat, "# %s: one block per device, sorted by epsilon\n"
                 "# columns: epsilon [1], test_accuracy [%%]\n", name);
    od__write_blocks(dat, s, idx, n, devs, ndev, keys, div, 2);

    char xl[128];
    od__eps_label(s, xl, sizeof xl);
    od__gp_begin(gp, name, "Test accuracy against privacy budget", 900,
                 560);
    od__eps_axis(gp, s, idx, n);
    fputs("  set xlabel ", gp);
    od__gp_quoted(gp, xl);
    fputs("\n  set ylabel \"test accuracy (%)\"\n  plot \\\n", gp);
    for (int d = 0; d < ndev; d++) {
        fprintf(gp, "    \"%s.dat\" index %d using 1:2 with linespoints "
                    "pointtype %d pointsize 1.2 linecolor \"%s\" title ",
                name, d, 5 + 2 * (d % 4), od__colours[d % OD__NCOLOURS]);
        od__gp_quoted(gp, devs[d]);
        fputs(d + 1 < ndev ? ", \\\n" : "\n", gp);
    }
    od__gp_end(gp);
    rc = od__finish_plot(rp, dat, gp, name,
                         "Test accuracy against the privacy budget ε, one "
                         "line per device.");
done:
    free(idx);
    free(keep);
    return rc;
}

static int od__plot_time_energy_eps(od__report *rp)
{
    const od_res_set *s = rp->set;
    const char *name = "time_energy_vs_epsilon";
    int *it = malloc((size_t)s->nruns * sizeof *it);
    int *ie = malloc((size_t)s->nruns * sizeof *ie);
    int *keep = calloc((size_t)s->nruns, sizeof *keep);
    int rc = 0;
    if (!it || !ie || !keep) {
        rc = od_res_fail("out of memory");
        goto done;
    }
    int nt = od__points(s, "epsilon", "emulated_time_s", it);
    int ne = od__points(s, "epsilon", "energy_j", ie);
    if (nt < 2 && ne < 2) {
        od__note(rp, "skipped time and energy vs ε: fewer than two runs "
                 "have epsilon with emulated_time_s or energy_j");
        goto done;
    }
    for (int i = 0; i < nt; i++)
        keep[it[i]] = 1;
    for (int i = 0; i < ne; i++)
        keep[ie[i]] = 1;
    const char *devs[OD__NCOLOURS];
    int ndev = od__devices(s, keep, devs, OD__NCOLOURS);
    double tdiv, ediv;
    const char *tunit, *eunit;
    od__time_unit(od__max_summary(s, "emulated_time_s"), &tdiv, &tunit);
    od__energy_unit(od__max_summary(s, "energy_j"), &ediv, &eunit);

    FILE *dat = od__open_out(rp, name, "dat");
    FILE *gp = dat ? od__open_out(rp, name, "gp") : NULL;
    if (!gp) {
        if (dat)
            fclose(dat);
        rc = -1;
        goto done;
    }
    /* Blocks 0..ndev-1: time; ndev..2 ndev-1: energy. */
    static const char *const tkeys[] = {"epsilon", "emulated_time_s"};
    static const char *const ekeys[] = {"epsilon", "energy_j"};
    const double td[] = {1, tdiv}, ed[] = {1, ediv};
    fprintf(dat, "# %s\n# blocks 0..%d: epsilon [1], emulated_time_s [%s] "
                 "per device\n# blocks %d..%d: epsilon [1], energy_j [%s] "
                 "per device\n", name, ndev - 1, tunit, ndev, 2 * ndev - 1,
            eunit);
    od__write_blocks(dat, s, it, nt, devs, ndev, tkeys, td, 2);
    fputs("\n\n", dat);
    od__write_blocks(dat, s, ie, ne, devs, ndev, ekeys, ed, 2);

    char xl[128];
    od__eps_label(s, xl, sizeof xl);
    int panels = (nt >= 2) + (ne >= 2);
    od__gp_begin(gp, name, "", panels == 2 ? 1300 : 900, 560);
    fputs("  unset title\n", gp);
    fprintf(gp, "  set multiplot layout 1,%d title \"Cost of training "
                "against privacy budget\" font \",14\"\n", panels);
    for (int p = 0; p < 2; p++) {
        if ((p == 0 && nt < 2) || (p == 1 && ne < 2))
            continue;
        od__eps_axis(gp, s, p == 0 ? it : ie, p == 0 ? nt : ne);
        fputs("  set xlabel ", gp);
        od__gp_quoted(gp, xl);
        if (p == 0)
            fprintf(gp, "\n  set ylabel \"emulated training time (%s)\"\n",
                    tunit);
        else
            fprintf(gp, "\n  set ylabel \"energy (%s)\"\n", eunit);
        fputs("  set key below horizontal nobox height 1\n", gp);
        fputs("  plot \\\n", gp);
        for (int d = 0; d < ndev; d++) {
            fprintf(gp, "    \"%s.dat\" index %d using 1:2 with linespoints "
                        "pointtype %d pointsize 1.2 linecolor \"%s\" title ",
                    name, p * ndev + d, 5 + 2 * (d % 4),
                    od__colours[d % OD__NCOLOURS]);
            od__gp_quoted(gp, devs[d]);
            fputs(d + 1 < ndev ? ", \\\n" : "\n", gp);
        }
    }
    fputs("  unset multiplot\n", gp);
    od__gp_end(gp);
    rc = od__finish_plot(rp, dat, gp, name,
                         "Emulated training time and energy against the "
                         "privacy budget ε, per device.");
done:
    free(it);
    free(ie);
    free(keep);
    return rc;
}

static int od__plot_pareto(od__report *rp)
{
    const od_res_set *s = rp->set;
    const char *name = "accuracy_vs_energy";
    int *idx = malloc((size_t)s->nruns * sizeof *idx);
    int *keep = calloc((size_t)s->nruns, sizeof *keep);
    int rc = 0;
    if (!idx || !keep) {
        rc = od_res_fail("out of memory");
        goto done;
    }
    int n = od__points(s, "energy_j", "test_accuracy", idx);
    if (n < 2) {
        od__note(rp, "skipped accuracy vs energy: fewer than two runs have "
                 "energy_j and test_accuracy in their summary");
        goto done;
    }
    for (int i = 0; i < n; i++)
        keep[idx[i]] = 1;
    const char *devs[OD__NCOLOURS];
    int ndev = od__devices(s, keep, devs, OD__NCOLOURS);
    double ediv;
    const char *eunit;
    od__energy_unit(od__max_summary(s, "energy_j"), &ediv, &eunit);

    FILE *dat = od__open_out(rp, name, "dat");
    FILE *gp = dat ? od__open_out(rp, name, "gp") : NULL;
    if (!gp) {
        if (dat)
            fclose(dat);
        rc = -1;
        goto done;
    }
    static const char *const keys[] = {"energy_j", "test_accuracy"};
    const double div[] = {ediv, 0.01};
    fprintf(dat, "# %s\n# blocks 0..%d: energy_j [%s], test_accuracy [%%] "
                 "per device\n# block %d: the Pareto front (no other run is "
                 "at most as costly and more accurate)\n",
            name, ndev - 1, eunit, ndev);
    od__write_blocks(dat, s, idx, n, devs, ndev, keys, div, 2);

    /* The front: sorted by energy (equal energies most accurate first), a
     * run is on it when it beats the accuracy of every run before it, that
     * is of every run at most as costly. */
    fprintf(dat, "\n\n# Pareto front\n");
    double best = -INFINITY;
    for (int i = 0; i < n; i++) {
        const od_res_run *r = &s->runs[idx[i]];
        double a = od_res_summary_num(r, "test_accuracy");
        if (a > best) {
            best = a;
            fprintf(dat, "%.9g %.9g  # %s\n",
                    od_res_summary_num(r, "energy_j") / ediv, 100 * a,
                    r->label);
        }
    }

    od__gp_begin(gp, name, "Accuracy against energy", 900, 560);
    fputs("  set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n",
          gp);
    fprintf(gp, "  set xlabel \"energy per training run (%s)\"\n"
                "  set ylabel \"test accuracy (%%)\"\n  plot \\\n", eunit);
    fprintf(gp, "    \"%s.dat\" index %d using 1:2 with steps linewidth 2 "
                "linecolor \"#888888\" dashtype 2 title \"Pareto front\", "
                "\\\n    \"%s.dat\" index %d using 1:2 with points "
                "pointtype 6 pointsize 2.2 linecolor \"#444444\" notitle",
            name, ndev, name, ndev);
    for (int d = 0; d < ndev; d++) {
        fprintf(gp, ", \\\n    \"%s.dat\" index %d using 1:2 with points "
                    "pointtype %d pointsize 1.3 linecolor \"%s\" title ",
                name, d, 5 + 2 * (d % 4), od__colours[d % OD__NCOLOURS]);
        od__gp_quoted(gp, devs[d]);
    }
    fputc('\n', gp);
    od__gp_end(gp);
    rc = od__finish_plot(rp, dat, gp, name,
                         "Test accuracy against energy per run; circled "
                         "runs form the Pareto front (no other run is at "
                         "most as costly and more accurate).");
done:
    free(idx);
    free(keep);
    return rc;
}

/* ---- Plots of one run's traces ------------------------------------------ */

/* Rows of t to write: every row up to OD__MAX_TRACE_ROWS, else evenly
 * thinned (the last row always kept). */
static size_t od__stride(size_t nrows)
{
    return nrows > OD__MAX_TRACE_ROWS
               ? (nrows + OD__MAX_TRACE_ROWS - 1) / OD__MAX_TRACE_ROWS
               : 1;
}

static int od__has_numbers(const od_res_column *c, size_t n)
{
    if (!c)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(c->data[i]))
            return 1;
    return 0;
}

static double od__col_max(const od_res_column *c, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(c->data[i]) && c->data[i] > m)
            m = c->data[i];
    return m;
}

static int od__plot_device_traces(od__report *rp, int ri, const char *tag)
{
    const od_res_run *r = &rp->set->runs[ri];
    const od_res_table_data *t = od_res_run_trace(r, "steps");
    size_t n = t ? t->nrows : 0;
    const od_res_column *time = od_res_trace_column(t, "emulated_time_s");
    const od_res_column *soc = od_res_trace_column(t, "soc_temp_c");
    const od_res_column *skin = od_res_trace_column(t, "skin_temp_c");
    const od_res_column *freq = od_res_trace_column(t, "freq_khz");
    const od_res_column *batt = od_res_trace_column(t, "battery_soc_pct");
    int has_temp = od__has_numbers(soc, n) || od__has_numbers(skin, n);
    int has_freq = od__has_numbers(freq, n);
    int has_batt = od__has_numbers(batt, n);
    if (!od__has_numbers(time, n) || !(has_temp || has_freq || has_batt)) {
        od__note(rp, "skipped device traces of %s: its step trace has no "
                 "emulated_time_s with temperature, frequency or battery "
                 "(no device emulated?)", r->label);
        return 0;
    }
    char name[64];
    snprintf(name, sizeof name, "device_traces%s", tag);
    double div;
    const char *unit;
    od__time_unit(od__col_max(time, n), &div, &unit);

    FILE *dat = od__open_out(rp, name, "dat");
    FILE *gp = dat ? od__open_out(rp, name, "gp") : NULL;
    if (!gp) {
        if (dat)
            fclose(dat);
        return -1;
    }
    fprintf(dat, "# %s: device state over emulated time, run %s\n"
                 "# columns: emulated_time [%s], soc_temp [degC], "
                 "skin_temp [degC], freq [MHz], battery_soc [%%]\n",
            name, r->label, unit);
    size_t stride = od__stride(n);
    for (size_t i = 0; i < n; i += stride) {
        if (i + stride >= n)
            i = n - 1;
        if (!isfinite(time->data[i]))
            continue;
        fprintf(dat, "%.9g %.6g %.6g %.6g %.6g\n", time->data[i] / div,
                soc ? soc->data[i] : NAN, skin ? skin->data[i] : NAN,
                freq ? freq->data[i] / 1000.0 : NAN,
                batt ? batt->data[i] : NAN);
    }

    int panels = has_temp + has_freq + has_batt;
    od__gp_begin(gp, name, "", 900, 260 + 220 * panels);
    fputs("  unset title\n  set datafile missing NaN\n", gp);
    fputs("  set multiplot layout ", gp);
    fprintf(gp, "%d,1 title ", panels);
    char title[320];
    snprintf(title, sizeof title, "Device state during training: %s",
             r->label);
    od__gp_quoted(gp, title);
    /* Fixed margins keep the panels' axes aligned; headroom keeps lines
     * off the frame. */
    fputs(" font \",14\"\n  set lmargin 10\n  set rmargin 16\n"
          "  set offsets 0, 0, graph 0.08, graph 0.08\n"
          "  set key outside right top\n", gp);
    fprintf(gp, "  set xlabel \"emulated time (%s)\"\n", unit);
    if (has_temp) {
        fputs("  set ylabel \"temperature (°C)\"\n  plot ", gp);
        int first = 1;
        if (od__has_numbers(soc, n)) {
            fprintf(gp, "\"%s.dat\" using 1:2 with lines linecolor \"%s\" "
                        "title \"SoC\"", name, od__colours[1]);
            first = 0;
        }
        if (od__has_numbers(skin, n))
            fprintf(gp, "%s\"%s.dat\" using 1:3 with lines linecolor \"%s\" "
                        "title \"skin\"", first ? "" : ", ", name,
                    od__colours[0]);
        fputc('\n', gp);
    }
    if (has_freq)
        fprintf(gp, "  set ylabel \"CPU frequency (MHz)\"\n"
                    "  plot \"%s.dat\" using 1:4 with steps linecolor \"%s\""
                    " title \"cap\"\n", name, od__colours[2]);
    if (has_batt)
        fprintf(gp, "  set ylabel \"battery (%%)\"\n"
                    "  plot \"%s.dat\" using 1:5 with lines linecolor \"%s\""
                    " title \"charge\"\n", name, od__colours[3]);
    fputs("  unset multiplot\n", gp);
    od__gp_end(gp);
    char caption[256];
    snprintf(caption, sizeof caption, "Temperature, CPU frequency and "
             "battery over emulated time (%s).", r->label);
    return od__finish_plot(rp, dat, gp, name, caption);
}

static int od__plot_training(od__report *rp, int ri, const char *tag)
{
    const od_res_run *r = &rp->set->runs[ri];
    const od_res_table_data *t = od_res_run_trace(r, "steps");
    size_t n = t ? t->nrows : 0;
    const od_res_column *loss = od_res_trace_column(t, "loss");
    const od_res_column *acc = od_res_trace_column(t, "accuracy");
    const od_res_column *time = od_res_trace_column(t, "emulated_time_s");
    const char *axis = "emulated time";
    if (!od__has_numbers(time, n)) {
        time = od_res_trace_column(t, "host_time_s");
        axis = "host time";
    }
    int has_loss = od__has_numbers(loss, n), has_acc = od__has_numbers(acc, n);
    if (!od__has_numbers(time, n) || !(has_loss || has_acc)) {
        od__note(rp, "skipped loss and accuracy of %s: its step trace has "
                 "no time with loss or accuracy", r->label);
        return 0;
    }
    if (strcmp(axis, "host time") == 0)
        od__note(rp, "%s: no emulated time in its trace; loss and accuracy "
                 "are drawn over host time", r->label);
    char name[64];
    snprintf(name, sizeof name, "training%s", tag);
    double div;
    const char *unit;
    od__time_unit(od__col_max(time, n), &div, &unit);

    FILE *dat = od__open_out(rp, name, "dat");
    FILE *gp = dat ? od__open_out(rp, name, "gp") : NULL;
    if (!gp) {
        if (dat)
            fclose(dat);
        return -1;
    }
    /* Per-step loss is noisy: a running mean over about a fiftieth of the
     * run is drawn over it. */
    size_t nloss = 0;
    for (size_t i = 0; has_loss && i < n; i++)
        nloss += isfinite(loss->data[i]) != 0;
    size_t window = nloss / 50 > 1 ? nloss / 50 : 1;
    int smooth = window >= 3;
    fprintf(dat, "# %s: training of %s over %s\n"
                 "# block 0: time [%s], loss [nat], running mean of loss "
                 "over %zu steps [nat]\n# block 1: time [%s], test "
                 "accuracy [%%]\n", name, r->label, axis, unit, window,
            unit);
    double *ring = calloc(window, sizeof *ring);
    if (!ring) {
        fclose(dat);
        fclose(gp);
        return od_res_fail("out of memory");
    }
    double sum = 0;
    size_t seen = 0, stride = od__stride(nloss);
    for (size_t i = 0; has_loss && i < n; i++) {
        double v = loss->data[i];
        if (!isfinite(v) || !isfinite(time->data[i]))
            continue;
        sum += v - ring[seen % window];
        ring[seen % window] = v;
        seen++;
        if (seen % stride == 0 || seen == nloss)
            fprintf(dat, "%.9g %.6g %.6g\n", time->data[i] / div, v,
                    sum / (double)(seen < window ? seen : window));
    }
    free(ring);
    fputs("\n\n", dat);
    for (size_t i = 0; has_acc && i < n; i++)
        if (isfinite(acc->data[i]) && isfinite(time->data[i]))
            fprintf(dat, "%.9g %.6g\n", time->data[i] / div,
                    100.0 * acc->data[i]);

    char title[320];
    snprintf(title, sizeof title, "Training: %s", r->label);
    od__gp_begin(gp, name, "", 900, 560);
    fputs("  set title ", gp);
    od__gp_quoted(gp, title);
    fprintf(gp, " font \",14\"\n  set xlabel \"%s (%s)\"\n", axis, unit);
    if (has_loss)
        fputs("  set ylabel \"training loss (nat)\"\n", gp);
    if (has_acc && has_loss)
        fputs("  set y2label \"test accuracy (%)\"\n  set y2tics\n"
              "  set border 11\n", gp);
    if (has_acc && !has_loss)
        fputs("  set ylabel \"test accuracy (%)\"\n", gp);
    fputs("  set key below horizontal nobox height 1\n"
          "  set offsets 0, 0, graph 0.05, graph 0.05\n  plot ", gp);
    if (has_loss && smooth)
        fprintf(gp, "\"%s.dat\" index 0 using 1:2 with lines linecolor "
                    "\"#a6c8e6\" linewidth 0.6 title \"loss per step\", \\\n"
                    "    \"%s.dat\" index 0 using 1:3 with lines linecolor "
                    "\"%s\" linewidth 1.5 title \"loss, mean of %zu "
                    "steps\"", name, name, od__colours[0], window);
    else if (has_loss)
        fprintf(gp, "\"%s.dat\" index 0 using 1:2 with lines linecolor "
                    "\"%s\" title \"training loss\"", name,
                od__colours[0]);
    if (has_acc)
        fprintf(gp, "%s\"%s.dat\" index 1 using 1:2 %swith linespoints "
                    "pointtype 7 pointsize 1.1 linecolor \"%s\" title "
                    "\"test accuracy\"", has_loss ? ", \\\n    " : "", name,
                has_loss ? "axes x1y2 " : "", od__colours[1]);
    fputc('\n', gp);
    od__gp_end(gp);
    char caption[256];
    snprintf(caption, sizeof caption, "Training loss and test accuracy "
             "over %s (%s).", axis, r->label);
    return od__finish_plot(rp, dat, gp, name, caption);
}

/* ---- The page ----------------------------------------------------------- */

/* Summary figures shown in the main table, when present. */
static const char *const od__headline[] = {
    "workload", "device", "epsilon", "test_accuracy", "test_loss",
    "train_loss", "emulated_time_s", "energy_j", "host_time_s", "steps",
    "peak_mem_bytes", "flops_total",
};
#define OD__NHEADLINE (int)(sizeof od__headline / sizeof od__headline[0])

static void od__html(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

/* A cell: text as is, numbers with units. */
static void od__cell(const od_res_value *v, char *buf, size_t len)
{
    if (!v) {
        snprintf(buf, len, "-");
    } else if (v->is_text) {
        snprintf(buf, len, "%s", v->text);
    } else if (!isfinite(v->num)) {
        snprintf(buf, len, "n/a");
    } else if (strcmp(v->units, "1") == 0 || !v->units[0]) {
        snprintf(buf, len, "%.6g", v->num);
    } else {
        snprintf(buf, len, "%.6g %s", v->num, v->units);
    }
}

static int od__any_has(const od_res_set *s, const char *key)
{
    for (int i = 0; i < s->nruns; i++)
        if (od_res_values_find(&s->runs[i].summary, key))
            return 1;
    return 0;
}

/* One row per run of the summary table: the run's label, then the
 * headline figures any run has, each escaped by esc and wrapped in the
 * format's delimiters (HTML or Markdown). */
static void od__summary_rows(FILE *f, const od_res_set *s,
                             const char *row_open, const char *label_close,
                             const char *cell_open, const char *cell_close,
                             const char *row_close,
                             void (*esc)(FILE *, const char *))
{
    for (int i = 0; i < s->nruns; i++) {
        fputs(row_open, f);
        esc(f, s->runs[i].label);
        fputs(label_close, f);
        for (int k = 0; k < OD__NHEADLINE; k++) {
            if (!od__any_has(s, od__headline[k]))
                continue;
            char cell[256];
            od__cell(od_res_values_find(&s->runs[i].summary,
                                        od__headline[k]), cell, sizeof cell);
            fputs(cell_open, f);
            esc(f, cell);
            fputs(cell_close, f);
        }
        fputs(row_close, f);
    }
}

static void od__write_html(const od__report *rp, FILE *f, const char *when)
{
    const od_res_set *s = rp->set;
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
          "<meta charset=\"utf-8\">\n<title>ondev report</title>\n<style>\n"
          "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;"
          "max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\n"
          "table{border-collapse:collapse;font-size:0.9em;margin:1em 0}\n"
          "th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:right}"
          "\nth{background:#f2f2f2}td:first-child,th:first-child{text-align:"
          "left}\nfigure{margin:2em 0}img{max-width:100%;border:1px solid "
          "#eee}\nfigcaption{font-size:0.9em;color:#444}\n"
          "pre{background:#f7f7f7;padding:0.8em;overflow-x:auto}\n"
          "</style>\n</head>\n<body>\n<h1>ondev report</h1>\n<p>", f);
    fprintf(f, "%d run%s from <code>", s->nruns, s->nruns == 1 ? "" : "s");
    od__html(f, s->source);
    fprintf(f, "</code>, written %s.</p>\n", when);

    fputs("<h2>Summary</h2>\n<table>\n<tr><th>run</th>", f);
    for (int k = 0; k < OD__NHEADLINE; k++)
        if (od__any_has(s, od__headline[k]))
            fprintf(f, "<th>%s</th>", od__headline[k]);
    fputs("</tr>\n", f);
    od__summary_rows(f, s, "<tr><td>", "</td>", "<td>", "</td>", "</tr>\n",
                     od__html);
    fputs("</table>\n", f);

    fputs("<h2>Plots</h2>\n", f);
    if (rp->nplots == 0)
        fputs("<p>No plot could be drawn from these results (see the "
              "messages of <code>ondev report</code>).</p>\n", f);
    for (int p = 0; p < rp->nplots; p++) {
        const od__plot *pl = &rp->plots[p];
        fprintf(f, "<figure>\n<img src=\"%s.svg\" alt=\"%s\">\n"
                   "<figcaption>", pl->name, pl->name);
        od__html(f, pl->caption);
        fprintf(f, " <a href=\"%s.png\">PNG</a> · <a href=\"%s.svg\">SVG"
                   "</a> · <a href=\"%s.gp\">script</a> · <a href=\"%s.dat"
                   "\">data</a></figcaption>\n</figure>\n", pl->name,
                pl->name, pl->name, pl->name);
    }

    fputs("<h2>Runs in full</h2>\n", f);
    for (int i = 0; i < s->nruns; i++) {
        const od_res_run *r = &s->runs[i];
        fprintf(f, "<details%s><summary>", s->nruns == 1 ? " open" : "");
        od__html(f, r->label);
        fputs(" — <code>", f);
        od__html(f, r->path);
        fputs("</code></summary>\n<h3>Configuration</h3>\n<pre>", f);
        od__html(f, r->config_text);
        fputs("</pre>\n<h3>Summary</h3>\n<table>\n", f);
        for (int k = 0; k < r->summary.n; k++) {
            char cell[256];
            od__cell(&r->summary.v[k], cell, sizeof cell);
            fputs("<tr><td>", f);
            od__html(f, r->summary.v[k].key);
            fputs("</td><td>", f);
            od__html(f, cell);
            fputs("</td></tr>\n", f);
        }
        fputs("</table>\n<h3>Build and host</h3>\n<table>\n", f);
        const od_res_values *groups[2] = {&r->build, &r->host};
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < groups[g]->n; k++) {
                char cell[256];
                od__cell(&groups[g]->v[k], cell, sizeof cell);
                fputs("<tr><td>", f);
                od__html(f, groups[g]->v[k].key);
                fputs("</td><td>", f);
                od__html(f, cell);
                fputs("</td></tr>\n", f);
            }
        fputs("</table>\n</details>\n", f);
    }
    fputs("</body>\n</html>\n", f);
}

/* A Markdown table cell: pipes escaped. */
static void od__md(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

static void od__write_md(const od__report *rp, FILE *f, const char *when)
{
    const od_res_set *s = rp->set;
    fprintf(f, "# ondev report\n\n%d run%s from `%s`, written %s.\n\n"
               "## Summary\n\n| run |", s->nruns, s->nruns == 1 ? "" : "s",
            s->source, when);
    int ncols = 0;
    for (int k = 0; k < OD__NHEADLINE; k++)
        if (od__any_has(s, od__headline[k])) {
            fprintf(f, " %s |", od__headline[k]);
            ncols++;
        }
    fputs("\n|---|", f);
    for (int k = 0; k < ncols; k++)
        fputs("---:|", f);
    fputc('\n', f);
    od__summary_rows(f, s, "| ", " |", " ", " |", "\n", od__md);
    fputs("\n## Plots\n\n", f);
    if (rp->nplots == 0)
        fputs("No plot could be drawn from these results.\n\n", f);
    for (int p = 0; p < rp->nplots; p++)
        fprintf(f, "![%s](%s.png)\n\n%s ([SVG](%s.svg), "
                   "[script](%s.gp), [data](%s.dat))\n\n",
                rp->plots[p].name, rp->plots[p].name, rp->plots[p].caption,
                rp->plots[p].name, rp->plots[p].name, rp->plots[p].name);
    fputs("## Configuration\n\n", f);
    for (int i = 0; i < s->nruns; i++) {
        const od_res_run *r = &s->runs[i];
        fprintf(f, "### %s\n\n`%s`\n\n```yaml\n%s%s```\n\n", r->label,
                r->path, r->config_text,
                r->config_text[0] &&
                        r->config_text[strlen(r->config_text) - 1] != '\n'
                    ? "\n"
                    : "");
    }
}

static int od__write_page(od__report *rp, const char *file, int html)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return od_res_fail("out of memory");
    if (html)
        od__write_html(rp, m, when);
    else
        od__write_md(rp, m, when);
    fclose(m);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", rp->dir, file);
    int rc = od__res_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

/* mkdir -p */
static int od__mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return od_res_fail("cannot create %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return od_res_fail("cannot create %s: %s", p, strerror(errno));
    return 0;
}

int od_res_report(const od_res_set *set, const char *outdir, FILE *log)
{
    char *gnuplot = od__find_gnuplot();
    if (!gnuplot)
        return od_res_fail("gnuplot is not installed (or not on PATH): "
                           "install the Debian package gnuplot-nox "
                           "(apt-get install gnuplot-nox), or point "
                           "ONDEV_GNUPLOT at a gnuplot executable");
    if (od__mkdirs(outdir)) {
        free(gnuplot);
        return -1;
    }
    od__report *rp = calloc(1, sizeof *rp);
    if (!rp) {
        free(gnuplot);
        return od_res_fail("out of memory");
    }
    rp->set = set;
    rp->dir = outdir;
    rp->gnuplot = gnuplot;
    rp->log = log;

    int rc = od__plot_acc_eps(rp);
    if (rc == 0)
        rc = od__plot_time_energy_eps(rp);
    if (rc == 0)
        rc = od__plot_pareto(rp);
    for (int i = 0; i < set->nruns && rc == 0; i++) {
        if (i == OD__MAX_TRACE_PLOTS) {
            od__note(rp, "traces of %d more runs not plotted (the first %d "
                     "are)", set->nruns - i, OD__MAX_TRACE_PLOTS);
            break;
        }
        char tag[16] = "";
        if (set->nruns > 1)
            snprintf(tag, sizeof tag, "_%d", i + 1);
        rc = od__plot_device_traces(rp, i, tag);
        if (rc == 0)
            rc = od__plot_training(rp, i, tag);
    }
    if (rc == 0)
        rc = od__write_page(rp, "report.html", 1);
    if (rc == 0)
        rc = od__write_page(rp, "report.md", 0);
    free(gnuplot);
    free(rp);
    return rc;
}
