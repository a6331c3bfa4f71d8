/* The device models against exact answers: the RC network's closed form
 * and steady state, battery energy and charge, the roofline, the governors
 * on a Pixel 6, and the profile files (every shipped one loads and names
 * its sources; malformed ones are refused with file and line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devices/device.h"
#include "harness/device_bridge.h"
#include "harness/json.h"

/* The shipped profile directory, from the environment ctest sets. */
static const char *profiles_dir(void)
{
    static char dir[1024];
    const char *src = getenv("ONDEV_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/devices/profiles", src ? src : ".");
    return dir;
}

static od_dev_profile *load(const char *name)
{
    static od_dev_profile p;
    od_dev_search_path sp;
    od_dev_search_path_init(&sp, profiles_dir());
    od_dev_status st = od_dev_profile_find(&sp, name, &p);
    if (st != OD_DEV_OK)
        fail_msg("%s: %s", name, od_dev_error_message());
    return &p;
}

static double rel_err(double got, double want)
{
    return fabs(got - want) / fmax(fabs(want), 1e-300);
}

/* ------------------------------------------------------------- thermal */

static od_dev_thermal thermal_fixture(void)
{
    od_dev_thermal t = {.r_ss_c_per_w = 2.5, .r_sa_c_per_w = 5.14,
                        .c_soc_j_per_c = 10, .c_skin_j_per_c = 186,
                        .ambient_c = 25, .soc_c = 25, .skin_c = 25};
    return t;
}

/* The step response from ambient, written independently of the model's
 * Sylvester form: x(t) = x* + a1 v1 e^{l1 t} + a2 v2 e^{l2 t}, with
 * eigenvectors v = (a12, l - a11) and a1, a2 solving x(0) = 0. */
static void step_exact(const od_dev_thermal *t, double p_w, double time_s,
                       double *soc_c, double *skin_c)
{
    double g = 1 / t->r_ss_c_per_w, h = 1 / t->r_sa_c_per_w;
    double a11 = -g / t->c_soc_j_per_c, a12 = g / t->c_soc_j_per_c;
    double a21 = g / t->c_skin_j_per_c, a22 = -(g + h) / t->c_skin_j_per_c;
    double tr = a11 + a22, det = a11 * a22 - a12 * a21;
    double l1 = 0.5 * (tr + sqrt(tr * tr - 4 * det));
    double l2 = 0.5 * (tr - sqrt(tr * tr - 4 * det));
    double v1x = a12, v1y = l1 - a11, v2x = a12, v2y = l2 - a11;
    double xs = p_w * (t->r_ss_c_per_w + t->r_sa_c_per_w);
    double ys = p_w * t->r_sa_c_per_w;
    /* Solve a1 v1 + a2 v2 = -(xs, ys). */
    double d = v1x * v2y - v2x * v1y;
    double a1 = (-xs * v2y + ys * v2x) / d;
    double a2 = (-ys * v1x + xs * v1y) / d;
    *soc_c = t->ambient_c + xs + a1 * v1x * exp(l1 * time_s) +
             a2 * v2x * exp(l2 * time_s);
    *skin_c = t->ambient_c + ys + a1 * v1y * exp(l1 * time_s) +
              a2 * v2y * exp(l2 * time_s);
}

static void test_thermal_step_response(void **state)
{
    (void)state;
    const double p_w = 3.0;
    const double times_s[] = {0.5, 3, 20, 100, 600, 2000, 7200};
    for (size_t k = 0; k < sizeof times_s / sizeof times_s[0]; k++) {
        od_dev_thermal t = thermal_fixture();
        od_dev_thermal_advance(&t, p_w, times_s[k]);
        double soc, skin;
        step_exact(&t, p_w, times_s[k], &soc, &skin);
        /* Temperatures rise relative to ambient: judge that rise. */
        double rise_soc = soc - t.ambient_c, rise_skin = skin - t.ambient_c;
        if (rel_err(t.soc_c - t.ambient_c, rise_soc) > 1e-3 ||
            rel_err(t.skin_c - t.ambient_c, rise_skin) > 1e-3)
            fail_msg("t = %g s: model (%.9g, %.9g) vs exact (%.9g, %.9g)",
                     times_s[k], t.soc_c, t.skin_c, soc, skin);
    }
}

/* A fine RK4 integration agrees too, and many small steps equal one big
 * step (the closed form makes the split irrelevant). */
static void test_thermal_step_independent(void **state)
{
    (void)state;
    const double p_w = 4.4, total_s = 900;
    od_dev_thermal one = thermal_fixture(), many = thermal_fixture();
    od_dev_thermal_advance(&one, p_w, total_s);
    for (int i = 0; i < 900; i++)
        od_dev_thermal_advance(&many, p_w, 1.0);
    assert_true(rel_err(many.skin_c - 25, one.skin_c - 25) < 1e-9);
    assert_true(rel_err(many.soc_c - 25, one.soc_c - 25) < 1e-9);

    od_dev_thermal t = thermal_fixture();
    double x = 0, y = 0, dt = 0.01;     /* rises of SoC and skin */
    double g = 1 / t.r_ss_c_per_w, h = 1 / t.r_sa_c_per_w;
    for (int i = 0; i < (int)(total_s / dt + 0.5); i++) {
        double k1x = (p_w - g * (x - y)) / t.c_soc_j_per_c;
        double k1y = (g * (x - y) - h * y) / t.c_skin_j_per_c;
        double x2 = x + 0.5 * dt * k1x, y2 = y + 0.5 * dt * k1y;
        double k2x = (p_w - g * (x2 - y2)) / t.c_soc_j_per_c;
        double k2y = (g * (x2 - y2) - h * y2) / t.c_skin_j_per_c;
        double x3 = x + 0.5 * dt * k2x, y3 = y + 0.5 * dt * k2y;
        double k3x = (p_w - g * (x3 - y3)) / t.c_soc_j_per_c;
        double k3y = (g * (x3 - y3) - h * y3) / t.c_skin_j_per_c;
        double x4 = x + dt * k3x, y4 = y + dt * k3y;
        double k4x = (p_w - g * (x4 - y4)) / t.c_soc_j_per_c;
        double k4y = (g * (x4 - y4) - h * y4) / t.c_skin_j_per_c;
        x += dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x);
        y += dt / 6 * (k1y + 2 * k2y + 2 * k3y + k4y);
    }
    assert_true(rel_err(one.soc_c - 25, x) < 1e-6);
    assert_true(rel_err(one.skin_c - 25, y) < 1e-6);
}

static void test_thermal_steady_state(void **state)
{
    (void)state;
    const double p_w = 3.5;
    od_dev_thermal t = thermal_fixture();
    od_dev_thermal_advance(&t, p_w, 1e6);
    assert_true(fabs(t.skin_c - (25 + p_w * 5.14)) < 1e-9);
    assert_true(fabs(t.soc_c - (25 + p_w * (2.5 + 5.14))) < 1e-9);
    /* And it cools back to ambient with the power off. */
    od_dev_thermal_advance(&t, 0.0, 1e6);
    assert_true(fabs(t.skin_c - 25) < 1e-9 && fabs(t.soc_c - 25) < 1e-9);
}

/* ------------------------------------------------------------- battery */

static void test_battery_energy_and_soc(void **state)
{
    (void)state;
    od_dev_profile *p = load("pixel6");
    od_dev_battery b;
    od_dev_battery_init(&b, p, OD_DEV_BATTERY_LINEAR, 1.0);

    /* SoC falls linearly: equal time steps take equal charge. */
    const double i_ma = 900, dt_s = 600;
    double soc[5];
    soc[0] = od_dev_battery_soc(&b);
    for (int k = 1; k < 5; k++) {
        od_dev_battery_advance(&b, i_ma, 0, dt_s);
        soc[k] = od_dev_battery_soc(&b);
    }
    double per_step = i_ma * 1e-3 * dt_s / (p->battery_mah * 3.6);
    for (int k = 1; k < 5; k++)
        assert_true(fabs(soc[k - 1] - soc[k] - per_step) < 1e-12);
    assert_true(rel_err(b.energy_j, p->battery_v * i_ma * 1e-3 * 4 * dt_s) <
                1e-12);

    /* The kinetic model conserves total charge (SoC is still linear) and
     * leaves less charge available than the ideal one under load; its
     * closed form does not depend on the step size. */
    od_dev_battery k1, k2;
    od_dev_battery_init(&k1, p, OD_DEV_BATTERY_KIBAM, 1.0);
    od_dev_battery_init(&k2, p, OD_DEV_BATTERY_KIBAM, 1.0);
    od_dev_battery_advance(&k1, 2000, 0, 3600);
    for (int s = 0; s < 360; s++)
        od_dev_battery_advance(&k2, 2000, 0, 10);
    double want = 1.0 - 2.0 * 3600 / (p->battery_mah * 3.6);
    assert_true(fabs(od_dev_battery_soc(&k1) - want) < 1e-9);
    assert_true(od_dev_battery_available(&k1) < want - 1e-3);
    assert_true(fabs(od_dev_battery_soc(&k2) - od_dev_battery_soc(&k1)) <
                1e-9);
    assert_true(fabs(k2.avail_c - k1.avail_c) < 1e-6 * k1.capacity_c);
}

/* The emulator's energy is the integral of its reported power over its
 * emulated time. */
static void test_emulator_energy_integral(void **state)
{
    (void)state;
    od_dev_profile *p = load("pixel6");
    od_dev_settings s;
    od_dev_settings_defaults(&s, p);
    s.governor = OD_DEV_GOV_NONE;
    od_dev_emu *e;
    assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
    double integral_j = 0.0;
    for (int k = 0; k < 200; k++) {
        od_dev_op op = {OD_DEV_OP_GEMM, 1e9 * (1 + k % 7), 1e6};
        double dt = od_dev_emu_advance(e, &op, 1);
        integral_j += od_dev_emu_power_w(e) * dt;
        od_dev_emu_idle(e, 0.25);
        integral_j += od_dev_emu_power_w(e) * 0.25;
    }
    assert_true(rel_err(od_dev_emu_energy_j(e), integral_j) < 1e-9);
    double used = 100 * integral_j / p->battery_v / (p->battery_mah * 3.6);
    assert_true(rel_err(od_dev_emu_battery_used_pct(e), used) < 1e-9);
    od_dev_emu_destroy(e);
}

/* ------------------------------------------------------------- roofline */

static void test_roofline(void **state)
{
    (void)state;
    od_dev_profile *p = load("pixel6");
    const od_dev_cluster *big = &p->clusters[od_dev_profile_big_cluster(p)];
    assert_string_equal(big->core_type, "Cortex-X1");
    const double bw = 25.6e9, eff = 0.65, f = 2802000;
    od_dev_op compute = {OD_DEV_OP_GEMM, 2e9, 1e5};
    od_dev_op memory = {OD_DEV_OP_COPY, 1e5, 2e9};

    double tc = od_dev_op_time_s(big, 2, f, eff, bw, &compute);
    double tm = od_dev_op_time_s(big, 2, f, eff, bw, &memory);
    /* The compute-bound op takes its compute time, the memory-bound its
     * memory time. */
    assert_true(rel_err(tc, 2e9 / (2 * 32 * f * 1e3 * eff)) < 1e-12);
    assert_true(tc > 1e5 / bw);
    assert_true(rel_err(tm, 2e9 / bw) < 1e-12);
    assert_true(tm > 1e5 / (2 * 32 * f * 1e3 * eff));

    /* Halving the frequency doubles the first and leaves the second. */
    double tc2 = od_dev_op_time_s(big, 2, f / 2, eff, bw, &compute);
    double tm2 = od_dev_op_time_s(big, 2, f / 2, eff, bw, &memory);
    assert_true(rel_err(tc2, 2 * tc) < 1e-12);
    assert_true(rel_err(tm2, tm) < 0.01);

    /* One core of two takes twice as long on compute. */
    assert_true(rel_err(od_dev_op_time_s(big, 1, f, eff, bw, &compute),
                        2 * tc) < 1e-12);
}

/* ------------------------------------------------------------- governors */

typedef struct run_stats {
    double throttled_s, max_skin_c, min_skin_after_43_c, mean_heat_w_last_h;
    double time_s;
} run_stats;

/* A constant heavy GEMM load for total_s of emulated time. */
static run_stats heavy_load(od_dev_governor gov, double total_s)
{
    od_dev_profile *p = load("pixel6");
    od_dev_settings s;
    od_dev_settings_defaults(&s, p);
    s.governor = gov;
    od_dev_emu *e;
    assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
    od_dev_op op = {OD_DEV_OP_GEMM, 2e10, 1e7};
    run_stats r = {.min_skin_after_43_c = INFINITY};
    double heat_j = 0.0, heat_s = 0.0;
    int reached = 0;
    while (od_dev_emu_time_s(e) < total_s) {
        /* Heat is constant between polls; sample it as each op ends. */
        double dt = od_dev_emu_advance(e, &op, 1);
        double skin = od_dev_emu_skin_c(e);
        reached |= skin >= 43.0;
        if (reached && skin < r.min_skin_after_43_c)
            r.min_skin_after_43_c = skin;
        if (od_dev_emu_time_s(e) > total_s - 3600) {
            heat_j += od_dev_emu_heat_w(e) * dt;
            heat_s += dt;
        }
    }
    r.throttled_s = od_dev_emu_throttled_time_s(e);
    r.max_skin_c = od_dev_emu_max_skin_c(e);
    r.mean_heat_w_last_h = heat_j / heat_s;
    r.time_s = od_dev_emu_time_s(e);
    od_dev_emu_destroy(e);
    return r;
}

static void test_governor_pid_pixel6(void **state)
{
    (void)state;
    run_stats r = heavy_load(OD_DEV_GOV_PID, 4 * 3600.0);
    /* It throttles, settles near the 3.5 W sustainable power, and keeps
     * the skin inside the trip band once it got there. */
    assert_true(r.throttled_s > 600);
    if (fabs(r.mean_heat_w_last_h - 3.5) > 0.15 * 3.5)
        fail_msg("mean heat over the last hour %.3f W, expected 3.5 W "
                 "within 15 %%", r.mean_heat_w_last_h);
    if (r.max_skin_c > 45.0 || r.min_skin_after_43_c < 39.0)
        fail_msg("skin left the trip band [39, 45] C: %.2f .. %.2f",
                 r.min_skin_after_43_c, r.max_skin_c);

    /* Without a governor the same load heats far past the band. */
    run_stats none = heavy_load(OD_DEV_GOV_NONE, 4 * 3600.0);
    assert_true(none.throttled_s == 0.0);
    assert_true(none.max_skin_c > 47.0);
}

static void test_governor_step_wise_pixel6(void **state)
{
    (void)state;
    run_stats r = heavy_load(OD_DEV_GOV_STEP_WISE, 3 * 3600.0);
    assert_true(r.throttled_s > 600);
    assert_true(r.max_skin_c < 43.0);
}

/* Ops that span governor polls are split there, so one big op takes the
 * same emulated time, energy and heat as the same work in small pieces. */
static void test_emulator_split_invariant(void **state)
{
    (void)state;
    od_dev_profile *p = load("pixel6");
    od_dev_settings s;
    od_dev_settings_defaults(&s, p);
    s.ambient_c = 38.0;         /* throttling starts within the run */
    od_dev_emu *a, *b;
    assert_int_equal(od_dev_emu_create(p, &s, &a), OD_DEV_OK);
    assert_int_equal(od_dev_emu_create(p, &s, &b), OD_DEV_OK);
    od_dev_op big = {OD_DEV_OP_GEMM, 1e14, 1e9};
    od_dev_op small = {OD_DEV_OP_GEMM, 1e11, 1e6};
    od_dev_emu_advance(a, &big, 1);
    for (int k = 0; k < 1000; k++)
        od_dev_emu_advance(b, &small, 1);
    assert_true(od_dev_emu_throttled_time_s(a) > 0);
    assert_true(rel_err(od_dev_emu_time_s(b), od_dev_emu_time_s(a)) < 1e-9);
    assert_true(rel_err(od_dev_emu_energy_j(b), od_dev_emu_energy_j(a)) <
                1e-9);
    assert_true(fabs(od_dev_emu_skin_c(b) - od_dev_emu_skin_c(a)) < 1e-9);
    od_dev_emu_destroy(a);
    od_dev_emu_destroy(b);
}

/* The policies: stop below a charge level, pause while hot or unplugged. */
static void test_policies(void **state)
{
    (void)state;
    od_dev_profile *p = load("pixel6");
    od_dev_settings s;
    od_dev_settings_defaults(&s, p);
    s.initial_soc = 0.25;
    s.stop_below_soc = 0.20;
    s.pause_skin_c = 30.0;
    od_dev_emu *e;
    assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
    char why[160];
    assert_int_equal(od_dev_emu_verdict(e, why, sizeof why), OD_DEV_CONTINUE);
    od_dev_op op = {OD_DEV_OP_GEMM, 1e12, 1e6};
    while (od_dev_emu_verdict(e, NULL, 0) == OD_DEV_CONTINUE)
        od_dev_emu_advance(e, &op, 1);
    assert_int_equal(od_dev_emu_verdict(e, why, sizeof why), OD_DEV_PAUSE);
    assert_non_null(strstr(why, "skin"));
    od_dev_emu_idle(e, 3600);
    assert_int_equal(od_dev_emu_verdict(e, NULL, 0), OD_DEV_CONTINUE);
    while (od_dev_emu_verdict(e, NULL, 0) != OD_DEV_STOP) {
        od_dev_emu_advance(e, &op, 1);
        if (od_dev_emu_verdict(e, NULL, 0) == OD_DEV_PAUSE)
            od_dev_emu_idle(e, 600);
    }
    assert_int_equal(od_dev_emu_verdict(e, why, sizeof why), OD_DEV_STOP);
    assert_non_null(strstr(why, "below the stop level"));
    assert_true(od_dev_emu_soc(e) < 0.20 && od_dev_emu_soc(e) > 0.19);
    od_dev_emu_destroy(e);

    od_dev_settings_defaults(&s, p);
    s.only_while_charging = 1;
    assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
    assert_int_equal(od_dev_emu_verdict(e, NULL, 0), OD_DEV_PAUSE);
    od_dev_emu_set_charging(e, 1);
    assert_int_equal(od_dev_emu_verdict(e, NULL, 0), OD_DEV_CONTINUE);
    /* Charging at 1.5 A outpaces a light load: the battery gains. */
    s.initial_soc = 0.5;
    od_dev_emu_destroy(e);
    s.charging = 1;
    assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
    od_dev_emu_idle(e, 600);
    assert_true(od_dev_emu_soc(e) > 0.5);
    od_dev_emu_destroy(e);
}

/* ------------------------------------------------------------- profiles */

static void test_shipped_profiles(void **state)
{
    (void)state;
    static const char *const want[] = {"alcatel1b", "oneplus9pro", "pixel4a",
                                       "pixel6", "pixel7"};
    od_dev_search_path sp;
    od_dev_search_path_init(&sp, profiles_dir());
    char names[64][OD_DEV_NAME_MAX];
    int n = od_dev_profile_names(&sp, names, 64);
    assert_true(n >= 5);
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= strcmp(names[i], want[w]) == 0;
        if (!found)
            fail_msg("profile %s is not on the search path", want[w]);
    }
    for (int i = 0; i < n && i < 64; i++) {
        od_dev_profile *p = load(names[i]);
        assert_true(p->nfacts >= 30);
        for (int f = 0; f < p->nfacts; f++)
            assert_true(strlen(p->sources[p->facts[f].source].text) > 10);
        /* The figures every model uses each name a source. */
        static const char *const keys[] = {
            "battery.capacity_mah", "battery.nominal_v", "memory.total_gib",
            "memory.app_share", "base_current_ma.awake",
            "thermal.r_skin_ambient_c_per_w", "thermal.trips_c",
            "thermal.pid[0].sustainable_mw"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (!od_dev_profile_source(p, keys[k]))
                fail_msg("%s: %s has no source", names[i], keys[k]);
        for (int c = 0; c < p->nclusters; c++) {
            char key[96];
            snprintf(key, sizeof key, "clusters.%s.core_current_ma",
                     p->clusters[c].name);
            assert_non_null(od_dev_profile_source(p, key));
        }
        assert_true(od_dev_profile_mem_budget_bytes(p) > 1e8);
    }
}

/* The flagship is faster and spends a smaller share of its battery than
 * the Android Go phone on the same work. */
static void test_flagship_vs_low_end(void **state)
{
    (void)state;
    double time_s[2], used_pct[2];
    const char *const names[2] = {"pixel6", "alcatel1b"};
    for (int i = 0; i < 2; i++) {
        od_dev_profile *p = load(names[i]);
        od_dev_settings s;
        od_dev_settings_defaults(&s, p);
        od_dev_emu *e;
        assert_int_equal(od_dev_emu_create(p, &s, &e), OD_DEV_OK);
        od_dev_op ops[3] = {{OD_DEV_OP_CONV, 5e9, 4e7},
                            {OD_DEV_OP_ELTWISE, 1e7, 8e7},
                            {OD_DEV_OP_OPTIM, 2e6, 3e7}};
        for (int k = 0; k < 100; k++)
            od_dev_emu_advance(e, ops, 3);
        time_s[i] = od_dev_emu_time_s(e);
        used_pct[i] = od_dev_emu_battery_used_pct(e);
        od_dev_emu_destroy(e);
    }
    assert_true(time_s[1] > 3 * time_s[0]);
    assert_true(used_pct[1] > used_pct[0]);
}

static const char good_text[] =
    "model: Test phone\n"
    "soc: Test SoC\n"
    "src: spec\n"
    "sources:\n"
    "  spec: a made-up specification for tests\n"
    "clusters:\n"
    "  - name: big\n"
    "    core_type: Test core\n"
    "    cores: 2\n"
    "    freq_khz: [1000000, 2000000]\n"
    "    core_current_ma: [50, 150]\n"
    "    cluster_current_ma: 2\n"
    "    flop_per_cycle: 16\n"
    "    l2_kib: 512\n"
    "    power_weight: 0.3\n"
    "memory: {total_gib: 4, peak_bandwidth_gb_s: 20, cpu_bandwidth_share: "
    "0.5, app_share: 0.25}\n"
    "battery: {capacity_mah: 4000, nominal_v: 3.85, charge_current_ma: "
    "1000}\n"
    "base_current_ma: {suspend: 5, awake: 20, active: 10}\n"
    "thermal:\n"
    "  r_soc_skin_c_per_w: 2\n"
    "  r_skin_ambient_c_per_w: 5\n"
    "  c_soc_j_per_c: 10\n"
    "  c_skin_j_per_c: 150\n"
    "  trips_c: [39, 43]\n"
    "  hysteresis_c: 2\n"
    "  poll_s: 5\n"
    "  pid:\n"
    "    - {control_c: 43, sustainable_mw: 3000, k_po: 1000, k_pu: 1000, "
    "k_i: 10, k_d: 0, i_max_mw: 500, i_cutoff_c: 2, min_alloc_mw: 500, "
    "max_alloc_mw: 8000}\n";

/* good_text with the first occurrence of from replaced by to. */
static od_dev_status parse_edited(const char *from, const char *to,
                                  od_dev_profile *p)
{
    char buf[4096];
    const char *at = strstr(good_text, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - good_text), good_text,
             to, at + strlen(from));
    return od_dev_profile_parse(buf, strlen(buf), "bad.yaml", p);
}

static void assert_message_has(const char *a, const char *b)
{
    const char *msg = od_dev_error_message();
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("message '%s' lacks '%s' or '%s'", msg, a, b ? b : "");
}

static void test_malformed_profiles(void **state)
{
    (void)state;
    static od_dev_profile p;
    assert_int_equal(od_dev_profile_parse(good_text, strlen(good_text),
                                          "good.yaml", &p), OD_DEV_OK);
    assert_string_equal(p.name, "good");
    assert_int_equal(p.clusters[0].nfreq, 2);

    /* Each refusal names the file, the line and what is wrong. */
    assert_int_equal(parse_edited("src: spec\n", "", &p), OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:", "has no source");
    assert_int_equal(parse_edited("core_current_ma: [50, 150]",
                                  "core_current_ma: [50]", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:11:", "one current per frequency");
    assert_int_equal(parse_edited("[1000000, 2000000]", "[2000000, 1000000]",
                                  &p), OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:10:", "ascend");
    assert_int_equal(parse_edited("cores: 2", "cores: two", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:9:", "not a finite number");
    assert_int_equal(parse_edited("l2_kib", "l2_kb", &p), OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:14:", "unknown key 'l2_kb'");
    assert_int_equal(parse_edited("src: spec", "src: datasheet", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:3:", "unknown source 'datasheet'");
    assert_int_equal(parse_edited("  trips_c: [39, 43]\n", "", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("missing key 'trips_c'", NULL);
    assert_int_equal(parse_edited("cores: 2\n", "cores: [2\n", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:", "YAML syntax");
    assert_int_equal(parse_edited("app_share: 0.25", "app_share: 1.5", &p),
                     OD_DEV_ERR_FORMAT);
    assert_message_has("bad.yaml:16:", "outside");
}

/* A user adds a profile through ONDEV_DEVICE_PATH; an unknown name lists
 * the valid ones. */
static void test_search_path(void **state)
{
    (void)state;
    char dir[] = "/tmp/ondev_devices_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/myphone.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(good_text, f);
    fclose(f);

    setenv("ONDEV_DEVICE_PATH", dir, 1);
    od_dev_search_path sp;
    od_dev_search_path_init(&sp, profiles_dir());
    unsetenv("ONDEV_DEVICE_PATH");
    static od_dev_profile p;
    assert_int_equal(od_dev_profile_find(&sp, "myphone", &p), OD_DEV_OK);
    assert_string_equal(p.model, "Test phone");
    assert_int_equal(od_dev_profile_find(&sp, "pixel6", &p), OD_DEV_OK);
    assert_int_equal(od_dev_profile_find(&sp, "pixel9", &p),
                     OD_DEV_ERR_NOT_FOUND);
    assert_message_has("unknown device 'pixel9'", "myphone");
    assert_message_has("pixel6", "alcatel1b");

    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------- the bridge */

/* The harness side: engine cost records in, the run's JSON keys out. */
static void test_bridge(void **state)
{
    (void)state;
    od_device_opts o;
    od_device_opts_defaults(&o);
    od_device_bridge b;
    assert_int_equal(od_device_bridge_open(&b, &o), OD_OK);
    assert_false(od_device_bridge_active(&b));
    assert_int_equal(od_device_bridge_mem_budget_bytes(&b), 0);
    od_device_bridge_close(&b);

    /* Bad settings are refused with what is allowed. */
    snprintf(o.device, sizeof o.device, "pixel6");
    snprintf(o.governor, sizeof o.governor, "fast");
    assert_int_equal(od_device_bridge_open(&b, &o), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "step_wise"));
    snprintf(o.governor, sizeof o.governor, "pid");
    snprintf(o.placement, sizeof o.placement, "huge");
    assert_int_equal(od_device_bridge_open(&b, &o), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "little"));
    snprintf(o.placement, sizeof o.placement, "big");
    snprintf(o.device, sizeof o.device, "pixel66");
    assert_int_equal(od_device_bridge_open(&b, &o), OD_ERR_INVALID);
    assert_non_null(strstr(od_error_message(), "pixel6"));

    snprintf(o.device, sizeof o.device, "pixel6");
    o.battery_start_pct = 20.05;
    o.stop_below_pct = 20.0;
    assert_int_equal(od_device_bridge_open(&b, &o), OD_OK);
    assert_true(od_device_bridge_active(&b));
    assert_int_equal(od_device_bridge_mem_budget_bytes(&b), 2147483648ull);

    od_cost recs[2] = {
        {.kind = OD_OP_GEMM, .flops = 4e11, .bytes_read = 1e6,
         .bytes_written = 1e6},
        {.kind = OD_OP_COPY, .flops = 0, .bytes_read = 2.56e9,
         .bytes_written = 2.56e9},
    };
    int stop = 0, steps = 0;
    double first_s = 0.0;
    for (; steps < 1000; steps++) {
        od_device_bridge_before_step(&b, &stop);
        if (stop)
            break;
        od_device_bridge_observe(&b, recs, 2);
        if (steps == 0)
            first_s = b.last_step_s;
    }
    /* The first step, still cool at 2.802 GHz: 4e11 / (2 cores × 32 ×
     * 2.802e9 × 0.65) s of GEMM, then 5.12e9 B / 25.6e9 B/s of copying. */
    double want_s = 4e11 / (2 * 32 * 2.802e9 * 0.65) + 5.12e9 / 25.6e9;
    assert_true(stop && steps > 1);
    assert_true(rel_err(first_s, want_s) < 1e-9);
    assert_non_null(strstr(b.stop_reason, "below the stop level"));

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    od_json j;
    od_json_init(&j, f);
    od_json_begin_object(&j, NULL);
    od_device_bridge_write_json(&b, &j);
    od_json_end_object(&j);
    fclose(f);
    static const char *const keys[] = {
        "\"device\": \"pixel6\"", "\"emulated_time_s\"", "\"energy_j\"",
        "\"battery_used_pct\"", "\"max_skin_temp_c\"",
        "\"throttled_time_s\"", "\"mean_freq_khz\"",
        "\"device_stop_reason\""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (!strstr(buf, keys[k]))
            fail_msg("summary lacks %s:\n%s", keys[k], buf);
    free(buf);
    od_device_bridge_close(&b);
}

/* `ondev devices` end to end, when the command is at hand. */
static void test_command(void **state)
{
    (void)state;
    const char *bin = getenv("ONDEV_BIN");
    if (!bin || access(bin, X_OK) != 0) {
        skip();
        return;
    }
    char cmd[1200], out[65536];
    snprintf(cmd, sizeof cmd, "'%s' devices --json", bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_true(out[0] == '[');
    assert_non_null(strstr(out, "\"name\": \"pixel6\""));
    assert_non_null(strstr(out, "\"name\": \"alcatel1b\""));

    snprintf(cmd, sizeof cmd, "'%s' devices pixel6", bin);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_non_null(strstr(out, "clusters.big.heat_mw"));
    assert_non_null(strstr(out, "thermal_info_config_oriole.json"));

    snprintf(cmd, sizeof cmd, "'%s' devices pixel9 2>&1", bin);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    assert_non_null(strstr(out, "known devices: alcatel1b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thermal_step_response),
        cmocka_unit_test(test_thermal_step_independent),
        cmocka_unit_test(test_thermal_steady_state),
        cmocka_unit_test(test_battery_energy_and_soc),
        cmocka_unit_test(test_emulator_energy_integral),
        cmocka_unit_test(test_roofline),
        cmocka_unit_test(test_governor_pid_pixel6),
        cmocka_unit_test(test_governor_step_wise_pixel6),
        cmocka_unit_test(test_emulator_split_invariant),
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_shipped_profiles),
        cmocka_unit_test(test_flagship_vs_low_end),
        cmocka_unit_test(test_malformed_profiles),
        cmocka_unit_test(test_search_path),
        cmocka_unit_test(test_bridge),
        cmocka_unit_test(test_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
