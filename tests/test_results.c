/* The results store: values and tables read back as written, with units;
 * columns that never get a number left out; a killed writer's file
 * refused as half-written; sweep indexes; CSV and JSON summaries; the
 * regression comparison (0 on equal runs, 1 past a tolerance, 2 on
 * unusable input); the report's plots and their Pareto front; the bridge
 * a training run writes through. Files go to a fresh directory under
 * $TMPDIR or /tmp. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness/results_bridge.h"
#include "results/results.h"

static char g_dir[256];

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", g_dir, name);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh subdirectory of the test's directory. */
static void make_dir(char *buf, size_t len, const char *name)
{
    path_in(buf, len, name);
    assert_int_equal(mkdir(buf, 0777), 0);
}

/* ---- A synthetic sweep -------------------------------------------------- */

static const char *const DEVICES[2] = {"pixel-7", "galaxy-a14"};
static const double EPSILONS[3] = {1.0, 3.0, 8.0};
#define NPOINTS 6
#define TRACE_ROWS 300

/* Summary figures of point (device d, epsilon e), smooth in both. */
static double fake_accuracy(int d, double eps)
{
    return 0.86 - 0.05 * d - 0.12 / eps;
}
static double fake_energy_j(int d, double eps)
{
    return 900.0 * (1 + 0.6 * d) * (1 + 0.15 * log(eps));
}

/* Write one point of the sweep to dir/name through the store's API, the
 * way a run with a device and privacy does: configuration, summary and a
 * step trace with every device column. acc_shift moves its accuracy. */
static void write_point(const char *dir, const char *name, int d, int e,
                        double acc_shift)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    od_res_writer *w;
    assert_int_equal(od_res_create(path, OD_RES_KIND_RUN, &w), 0);
    char eps_text[32];
    snprintf(eps_text, sizeof eps_text, "%g", EPSILONS[e]);
    assert_int_equal(od_res_put_text(w, "config", "text", "workload: x\n"),
                     0);
    assert_int_equal(od_res_put_text(w, "config", "workload", "fmnist-mlp"),
                     0);
    assert_int_equal(od_res_put_text(w, "config", "device", DEVICES[d]), 0);
    assert_int_equal(od_res_put_text(w, "config", "target_epsilon",
                                     eps_text), 0);
    assert_int_equal(od_res_put_text(w, "config", "data_dir", dir), 0);
    assert_int_equal(od_res_put_text(w, "config", "delta", "1e-05"), 0);

    double acc = fake_accuracy(d, EPSILONS[e]) + acc_shift;
    assert_int_equal(od_res_put_text(w, "summary", "device", DEVICES[d]), 0);
    assert_int_equal(od_res_put_num(w, "summary", "epsilon", EPSILONS[e],
                                    "1"), 0);
    assert_int_equal(od_res_put_num(w, "summary", "test_accuracy", acc, "1"),
                     0);
    assert_int_equal(od_res_put_num(w, "summary", "test_loss",
                                    2.0 * (1 - acc + acc_shift), "nat"), 0);
    assert_int_equal(od_res_put_num(w, "summary", "energy_j",
                                    fake_energy_j(d, EPSILONS[e]), "J"), 0);
    assert_int_equal(od_res_put_num(w, "summary", "emulated_time_s",
                                    600.0 * (1 + d) * (1 + 0.1 / EPSILONS[e]),
                                    "s"), 0);
    assert_int_equal(od_res_put_int(w, "summary", "steps", TRACE_ROWS, "1"),
                     0);
    assert_int_equal(od_res_put_num(w, "summary", "host_time_s", 1.0, "s"),
                     0);

    static const char *const cols[] = {
        "step", "emulated_time_s", "soc_temp_c", "skin_temp_c", "freq_khz",
        "battery_soc_pct", "loss", "accuracy", "epsilon"};
    static const char *const units[] = {"1", "s", "degC", "degC", "kHz",
                                        "%", "nat", "1", "1"};
    od_res_table *t;
    assert_int_equal(od_res_table_create(w, "traces/steps", 9, cols, units,
                                         &t), 0);
    for (int i = 0; i < TRACE_ROWS; i++) {
        double time_s = 2.0 * (1 + d) * i;
        double soc = 30 + 25 * (1 - exp(-i / 80.0));
        double row[9] = {
            i, time_s, soc, 28 + 0.4 * (soc - 30), soc > 50 ? 1.8e6 : 2.4e6,
            90 - 0.02 * (1 + d) * i, 2.3 * exp(-i / 120.0) + 0.3 +
            0.05 * sin(i * 1.7), i % 100 == 99 ? acc * (0.7 + i / 1000.0)
                                                : NAN,
            EPSILONS[e] * (i + 1) / TRACE_ROWS};
        assert_int_equal(od_res_table_append(t, row), 0);
    }
    assert_int_equal(od_res_commit(w), 0);
}

/* The sweep in dir, with an index. shift_point gets acc_shift. */
static void write_sweep(const char *dir, int shift_point, double acc_shift)
{
    const char *files[NPOINTS];
    char names[NPOINTS][32];
    for (int p = 0; p < NPOINTS; p++) {
        snprintf(names[p], sizeof names[p], "point-%d.h5", p);
        write_point(dir, names[p], p / 3, p % 3,
                    p == shift_point ? acc_shift : 0);
        files[p] = names[p];
    }
    assert_int_equal(od_res_write_index(dir, files, NPOINTS), 0);
}

/* ---- Store -------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    char path[512], part[600];
    path_in(path, sizeof path, "round.h5");
    snprintf(part, sizeof part, "%s.part", path);
    od_res_writer *w;
    assert_int_equal(od_res_create(path, OD_RES_KIND_RUN, &w), 0);
    assert_true(exists(part));
    assert_false(exists(path));
    assert_int_equal(od_res_put_text(w, "config", "text", "lr: 0.1\n"), 0);
    assert_int_equal(od_res_put_text(w, "config", "lr", "0.1"), 0);
    assert_int_equal(od_res_put_text(w, "summary", "workload", "w"), 0);
    assert_int_equal(od_res_put_num(w, "summary", "energy_j", 12.5, "J"), 0);
    assert_int_equal(od_res_put_int(w, "summary", "steps", 1234567890123LL,
                                    "1"), 0);
    assert_int_equal(od_res_put_num(w, "summary", "epsilon", NAN, "1"), 0);

    /* b gets its first number after the first block has gone to the
     * file; c never gets one. */
    static const char *const cols[] = {"a", "b", "c"};
    static const char *const units[] = {"s", "J", "degC"};
    od_res_table *t;
    assert_int_equal(od_res_table_create(w, "traces/steps", 3, cols, units,
                                         &t), 0);
    const int rows = 700;
    for (int i = 0; i < rows; i++) {
        double row[3] = {i * 0.5, i >= 300 ? i * 2.0 : NAN, NAN};
        assert_int_equal(od_res_table_append(t, row), 0);
    }
    assert_int_equal(od_res_table_rows(t), rows);
    assert_int_equal(od_res_commit(w), 0);
    assert_true(exists(path));

    od_res_set set;
    assert_int_equal(od_res_load(path, &set), 0);
    assert_int_equal(set.nruns, 1);
    const od_res_run *r = &set.runs[0];
    assert_string_equal(r->config_text, "lr: 0.1\n");
    assert_string_equal(od_res_run_text(r, "lr"), "0.1");
    assert_string_equal(od_res_run_text(r, "workload"), "w");
    const od_res_value *v = od_res_values_find(&r->summary, "energy_j");
    assert_non_null(v);
    assert_false(v->is_text);
    assert_true(v->num == 12.5);
    assert_string_equal(v->units, "J");
    assert_true(od_res_summary_num(r, "steps") == 1234567890123.0);
    assert_true(isnan(od_res_summary_num(r, "epsilon")));
    assert_true(isnan(od_res_summary_num(r, "absent")));

    const od_res_table_data *tr = od_res_run_trace(r, "steps");
    assert_non_null(tr);
    assert_int_equal(tr->nrows, rows);
    assert_int_equal(tr->ncols, 2);
    assert_null(od_res_trace_column(tr, "c"));
    assert_string_equal(tr->cols[0].name, "a");   /* declared order */
    const od_res_column *b = od_res_trace_column(tr, "b");
    assert_non_null(b);
    assert_string_equal(b->units, "J");
    for (int i = 0; i < rows; i++) {
        assert_true(tr->cols[0].data[i] == i * 0.5);
        if (i < 300)
            assert_true(isnan(b->data[i]));
        else
            assert_true(b->data[i] == i * 2.0);
    }
    od_res_set_free(&set);
}

/* A writer killed before its commit leaves only "<path>.part", which is
 * refused by name and, renamed, by its missing marker. */
static void test_killed_writer(void **state)
{
    (void)state;
    char dir[512], path[600], part[640], renamed[640];
    make_dir(dir, sizeof dir, "killed");
    snprintf(path, sizeof path, "%s/run.h5", dir);
    snprintf(part, sizeof part, "%s.part", path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        od_res_writer *w;
        if (od_res_create(path, OD_RES_KIND_RUN, &w))
            _exit(3);
        static const char *const cols[] = {"step"};
        static const char *const units[] = {"1"};
        od_res_table *t;
        if (od_res_table_create(w, "traces/steps", 1, cols, units, &t))
            _exit(3);
        for (int i = 0; i < 1000; i++) {
            double row[1] = {i};
            od_res_table_append(t, row);
        }
        od_res_flush(w);
        _exit(0);   /* no commit: as if killed here */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(exists(path));
    assert_true(exists(part));

    od_res_set set;
    assert_int_equal(od_res_load(part, &set), -1);
    assert_non_null(strstr(od_res_error(), "half-written"));
    snprintf(renamed, sizeof renamed, "%s/renamed.h5", dir);
    assert_int_equal(rename(part, renamed), 0);
    assert_int_equal(od_res_load(renamed, &set), -1);
    assert_non_null(strstr(od_res_error(), "half-written"));
    assert_int_equal(rename(renamed, part), 0);

    /* In a directory with a complete file beside it, the half-written one
     * is skipped and counted. */
    write_point(dir, "ok.h5", 0, 0, 0);
    assert_int_equal(od_res_load(dir, &set), 0);
    assert_int_equal(set.nruns, 1);
    assert_int_equal(set.nskipped, 1);
    od_res_set_free(&set);
}

static void test_index_and_summaries(void **state)
{
    (void)state;
    char dir[512], path[600];
    make_dir(dir, sizeof dir, "sweep");
    write_sweep(dir, -1, 0);

    od_res_set set;
    assert_int_equal(od_res_load(dir, &set), 0);   /* via index.h5 */
    assert_int_equal(set.nruns, NPOINTS);
    for (int p = 0; p < NPOINTS; p++) {
        double want = fake_accuracy(p / 3, EPSILONS[p % 3]);
        assert_true(od_res_summary_num(&set.runs[p], "test_accuracy") ==
                    want);
    }
    /* Labels name what differs between the points. */
    assert_non_null(strstr(set.runs[4].label, "device=galaxy-a14"));
    assert_non_null(strstr(set.runs[4].label, "target_epsilon=3"));
    od_res_set_free(&set);

    /* The index's own table: a row per point, with units. */
    snprintf(path, sizeof path, "%s/summary.csv", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[4096];
    int lines = 0, has_units = 0;
    while (fgets(line, sizeof line, f)) {
        if (lines == 0)
            has_units = strstr(line, "energy_j [J]") != NULL;
        lines++;
    }
    fclose(f);
    assert_int_equal(lines, 1 + NPOINTS);
    assert_true(has_units);
    snprintf(path, sizeof path, "%s/summary.json", dir);
    assert_true(exists(path));

    /* A missing point makes the index unusable, by name. */
    snprintf(path, sizeof path, "%s/point-2.h5", dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(od_res_load(dir, &set), -1);
    assert_non_null(strstr(od_res_error(), "point-2.h5"));
}

/* ---- Compare ------------------------------------------------------------ */

static int compare_dirs(const char *a, const char *b, const char *junit)
{
    od_res_set base, cur;
    assert_int_equal(od_res_load(a, &base), 0);
    assert_int_equal(od_res_load(b, &cur), 0);
    od_res_tolerances tol;
    od_res_tolerances_default(&tol);
    FILE *out = fopen("/dev/null", "w");
    int rc = od_res_compare(&base, &cur, &tol, out, junit);
    fclose(out);
    od_res_set_free(&base);
    od_res_set_free(&cur);
    return rc;
}

static void test_compare(void **state)
{
    (void)state;
    char a[512], b[512], c[512], d[512], junit[600];
    make_dir(a, sizeof a, "cmp-a");
    make_dir(b, sizeof b, "cmp-b");
    make_dir(c, sizeof c, "cmp-c");
    make_dir(d, sizeof d, "cmp-d");
    write_sweep(a, -1, 0);
    write_sweep(b, -1, 0);
    /* Accuracy 0.006 lower at one point: past the 0.005 default. */
    write_sweep(c, 4, -0.006);
    /* 0.004 lower: within it. */
    write_sweep(d, 4, -0.004);
    snprintf(junit, sizeof junit, "%s/junit.xml", g_dir);

    assert_int_equal(compare_dirs(a, b, NULL), OD_RES_CMP_OK);
    assert_int_equal(compare_dirs(a, d, NULL), OD_RES_CMP_OK);
    assert_int_equal(compare_dirs(a, c, junit), OD_RES_CMP_REGRESSION);

    /* JUnit: a test case per metric and point, one failure. */
    FILE *f = fopen(junit, "r");
    assert_non_null(f);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    int cases = 0, failures = 0;
    for (char *p = buf; (p = strstr(p, "<testcase ")); p++)
        cases++;
    for (char *p = buf; (p = strstr(p, "<failure ")); p++)
        failures++;
    /* test_accuracy, test_loss, emulated_time_s, energy_j, epsilon,
     * steps: six default metrics in the fixture (host time is off). */
    assert_int_equal(cases, 6 * NPOINTS);
    assert_int_equal(failures, 1);
    assert_non_null(strstr(buf, "tests=\"36\" failures=\"1\""));

    /* Higher accuracy past tolerance is a gain, not a regression. */
    char e[512];
    make_dir(e, sizeof e, "cmp-e");
    write_sweep(e, 1, +0.02);
    assert_int_equal(compare_dirs(a, e, NULL), OD_RES_CMP_OK);

    /* A tolerance file can loosen a metric. */
    char tolpath[600];
    snprintf(tolpath, sizeof tolpath, "%s/tol.txt", g_dir);
    f = fopen(tolpath, "w");
    fputs("# looser accuracy\ntest_accuracy abs 0.01 higher\n", f);
    fclose(f);
    od_res_tolerances tol;
    od_res_tolerances_default(&tol);
    assert_int_equal(od_res_tolerances_load(&tol, tolpath), 0);
    assert_false(tol.host_time);
    od_res_set base, cur;
    assert_int_equal(od_res_load(a, &base), 0);
    assert_int_equal(od_res_load(c, &cur), 0);
    FILE *out = fopen("/dev/null", "w");
    assert_int_equal(od_res_compare(&base, &cur, &tol, out, NULL),
                     OD_RES_CMP_OK);

    /* Unusable: base points with no counterpart. */
    od_res_set one;
    char single[600];
    snprintf(single, sizeof single, "%s/point-0.h5", a);
    assert_int_equal(od_res_load(single, &one), 0);
    assert_int_equal(od_res_compare(&base, &one, &tol, out, NULL),
                     OD_RES_CMP_UNUSABLE);
    assert_non_null(strstr(od_res_error(), "no run in"));
    fclose(out);
    od_res_set_free(&one);
    od_res_set_free(&base);
    od_res_set_free(&cur);

    /* Bad tolerance files are refused with the line. */
    f = fopen(tolpath, "w");
    fputs("test_accuracy absolute 0.01\n", f);
    fclose(f);
    assert_int_equal(od_res_tolerances_load(&tol, tolpath), -1);
    assert_non_null(strstr(od_res_error(), ":1:"));
}

/* ---- Report ------------------------------------------------------------- */

static int have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static void expect_plot(const char *dir, const char *name)
{
    static const char *const ext[] = {"png", "svg", "gp", "dat"};
    for (int i = 0; i < 4; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s.%s", dir, name, ext[i]);
        if (!exists(p))
            fail_msg("missing %s", p);
    }
}

static void test_report(void **state)
{
    (void)state;
    if (!have_gnuplot()) {
        skip();
        return;
    }
    char dir[512], out[600];
    make_dir(dir, sizeof dir, "report-in");
    write_sweep(dir, -1, 0);
    snprintf(out, sizeof out, "%s/report", g_dir);
    od_res_set set;
    assert_int_equal(od_res_load(dir, &set), 0);
    assert_int_equal(od_res_report(&set, out, NULL), 0);
    expect_plot(out, "accuracy_vs_epsilon");
    expect_plot(out, "time_energy_vs_epsilon");
    expect_plot(out, "accuracy_vs_energy");
    expect_plot(out, "device_traces_1");
    expect_plot(out, "training_6");
    char p[700];
    snprintf(p, sizeof p, "%s/report.html", out);
    assert_true(exists(p));
    snprintf(p, sizeof p, "%s/report.md", out);
    assert_true(exists(p));

    /* The Pareto front: sorted by energy, each point more accurate than
     * every cheaper one. On the fixture, energy and accuracy both rise
     * with ε on each device, and pixel-7 beats galaxy-a14 on both, so the
     * front is pixel-7's three points. */
    snprintf(p, sizeof p, "%s/accuracy_vs_energy.dat", out);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[512];
    int in_front = 0, front = 0;
    double last_e = -1, last_a = -1;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "# Pareto front")) {
            in_front = 1;
            continue;
        }
        double en, acc;
        if (!in_front || sscanf(line, "%lf %lf", &en, &acc) != 2)
            continue;
        assert_true(en > last_e && acc > last_a);
        assert_non_null(strstr(line, "pixel-7"));
        last_e = en;
        last_a = acc;
        front++;
    }
    fclose(f);
    assert_int_equal(front, 3);

    /* Without gnuplot: an error naming the package. */
    setenv("ONDEV_GNUPLOT", "/nonexistent/gnuplot", 1);
    assert_int_equal(od_res_report(&set, out, NULL), -1);
    unsetenv("ONDEV_GNUPLOT");
    assert_non_null(strstr(od_res_error(), "gnuplot-nox"));
    od_res_set_free(&set);
}

/* Runs of equal energy: only the most accurate can be on the front, and
 * a costlier run joins it only by being more accurate. */
static void test_pareto_ties(void **state)
{
    (void)state;
    if (!have_gnuplot()) {
        skip();
        return;
    }
    static const double energy_j[4] = {10, 10, 20, 30};
    static const double accuracy[4] = {0.5, 0.7, 0.6, 0.8};
    char dir[512], out[600], p[700];
    make_dir(dir, sizeof dir, "ties");
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/run-%d.h5", dir, i);
        od_res_writer *w;
        assert_int_equal(od_res_create(p, OD_RES_KIND_RUN, &w), 0);
        assert_int_equal(od_res_put_num(w, "summary", "energy_j",
                                        energy_j[i], "J"), 0);
        assert_int_equal(od_res_put_num(w, "summary", "test_accuracy",
                                        accuracy[i], "1"), 0);
        assert_int_equal(od_res_commit(w), 0);
    }
    snprintf(out, sizeof out, "%s/report-ties", g_dir);
    od_res_set set;
    assert_int_equal(od_res_load(dir, &set), 0);
    assert_int_equal(od_res_report(&set, out, NULL), 0);
    od_res_set_free(&set);

    snprintf(p, sizeof p, "%s/accuracy_vs_energy.dat", out);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[512];
    int in_front = 0, n = 0;
    double want[2][2] = {{10, 70}, {30, 80}};
    while (fgets(line, sizeof line, f)) {
        double en, acc;
        if (strstr(line, "# Pareto front"))
            in_front = 1;
        else if (in_front && sscanf(line, "%lf %lf", &en, &acc) == 2) {
            assert_true(n < 2);
            assert_true(en == want[n][0] && acc == want[n][1]);
            n++;
        }
    }
    fclose(f);
    assert_int_equal(n, 2);
}

/* A store with only host-side figures draws the training plot and skips
 * the others rather than drawing them empty. */
static void test_report_skips(void **state)
{
    (void)state;
    if (!have_gnuplot()) {
        skip();
        return;
    }
    char path[512], out[600];
    path_in(path, sizeof path, "hostonly.h5");
    od_res_writer *w;
    assert_int_equal(od_res_create(path, OD_RES_KIND_RUN, &w), 0);
    assert_int_equal(od_res_put_num(w, "summary", "test_accuracy", 0.8, "1"),
                     0);
    static const char *const cols[] = {"step", "host_time_s", "loss"};
    static const char *const units[] = {"1", "s", "nat"};
    od_res_table *t;
    assert_int_equal(od_res_table_create(w, "traces/steps", 3, cols, units,
                                         &t), 0);
    for (int i = 0; i < 50; i++) {
        double row[3] = {i, 0.01 * i, 1.0 / (1 + i)};
        assert_int_equal(od_res_table_append(t, row), 0);
    }
    assert_int_equal(od_res_commit(w), 0);

    snprintf(out, sizeof out, "%s/report-hostonly", g_dir);
    od_res_set set;
    assert_int_equal(od_res_load(path, &set), 0);
    char *log = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&log, &len);
    assert_int_equal(od_res_report(&set, out, m), 0);
    fclose(m);
    expect_plot(out, "training");
    char p[700];
    snprintf(p, sizeof p, "%s/accuracy_vs_epsilon.png", out);
    assert_false(exists(p));
    snprintf(p, sizeof p, "%s/device_traces.png", out);
    assert_false(exists(p));
    assert_non_null(strstr(log, "skipped accuracy vs ε"));
    assert_non_null(strstr(log, "skipped device traces"));
    assert_non_null(strstr(log, "over host time"));
    free(log);
    od_res_set_free(&set);
}

/* ---- The bridge a run writes through ------------------------------------ */

static void test_bridge(void **state)
{
    (void)state;
    char path[512], csv[512];
    path_in(path, sizeof path, "bridge.h5");
    path_in(csv, sizeof csv, "bridge.csv");
    od_config c;
    od_config_defaults(&c);
    c.seed = 42;

    od_results_run *w;
    assert_int_equal(od_results_begin(path, &c, &w), OD_OK);
    assert_string_equal(od_results_path(w), path);
    for (int i = 0; i < 10; i++) {
        od_results_step_row row;
        od_results_step_init(&row);
        row.step = i;
        row.host_time_s = 0.1 * i;
        row.loss = 2.0 - 0.1 * i;
        if (i == 9)
            row.accuracy = 0.75;
        assert_int_equal(od_results_step(w, &row), OD_OK);
    }
    assert_int_equal(od_results_put(w, "energy_j", 5.0, "J"), OD_OK);
    assert_int_equal(od_results_put_text(w, "device", "pixel-7"), OD_OK);

    od_run_result r;
    memset(&r, 0, sizeof r);
    snprintf(r.workload, sizeof r.workload, "fmnist-mlp");
    snprintf(r.isa, sizeof r.isa, "scalar");
    double tl[2] = {1.5, 1.2}, ta[2] = {0.7, 0.75}, tls[2] = {1.0, 0.9},
           ht[2] = {0.5, 0.5};
    r.epochs = r.epochs_done = 2;
    r.epoch_train_loss = tl;
    r.epoch_test_accuracy = ta;
    r.epoch_test_loss = tls;
    r.epoch_host_time_s = ht;
    r.steps = 10;
    r.test_accuracy = 0.75;
    r.host_time_s = 1.0;
    r.seed = 42;
    r.peak_mem_bytes = 4096;
    assert_int_equal(od_results_finish(w, &r), OD_OK);
    assert_true(exists(path));
    assert_true(exists(csv));

    od_res_set set;
    assert_int_equal(od_res_load(path, &set), 0);
    const od_res_run *run = &set.runs[0];
    assert_string_equal(od_res_run_text(run, "seed"), "42");
    assert_non_null(strstr(run->config_text, "seed: 42"));
    assert_true(od_res_summary_num(run, "energy_j") == 5.0);
    assert_true(od_res_summary_num(run, "test_accuracy") == 0.75);
    assert_true(od_res_summary_num(run, "peak_mem_bytes") == 4096);
    assert_string_equal(od_res_run_text(run, "device"), "pixel-7");
    assert_non_null(od_res_values_find(&run->build, "git_describe"));
    assert_non_null(od_res_values_find(&run->host, "cores"));
    const od_res_table_data *st = od_res_run_trace(run, "steps");
    assert_non_null(st);
    assert_int_equal(st->nrows, 10);
    assert_non_null(od_res_trace_column(st, "loss"));
    assert_null(od_res_trace_column(st, "energy_j"));   /* never set */
    assert_null(od_res_trace_column(st, "emulated_time_s"));
    const od_res_table_data *ep = od_res_run_trace(run, "epochs");
    assert_non_null(ep);
    assert_int_equal(ep->nrows, 2);
    od_res_set_free(&set);

    /* An abandoned run leaves nothing behind. */
    char path2[512], part2[600];
    path_in(path2, sizeof path2, "abandoned.h5");
    snprintf(part2, sizeof part2, "%s.part", path2);
    assert_int_equal(od_results_begin(path2, &c, &w), OD_OK);
    assert_true(exists(part2));
    od_results_abandon(w);
    assert_false(exists(part2));
    assert_false(exists(path2));
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/ondev-results-XXXXXX",
             tmp && tmp[0] ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    /* ONDEV_KEEP_TEST_FILES=1 keeps the files (the reports) to look at. */
    const char *keep = getenv("ONDEV_KEEP_TEST_FILES");
    if (keep && strcmp(keep, "1") == 0) {
        fprintf(stderr, "test files kept in %s\n", g_dir);
        return 0;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_killed_writer),
        cmocka_unit_test(test_index_and_summaries),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_report),
        cmocka_unit_test(test_pareto_ties),
        cmocka_unit_test(test_report_skips),
        cmocka_unit_test(test_bridge),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
