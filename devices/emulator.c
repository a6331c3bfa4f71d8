/* The device emulator: charges op costs to an emulated phone in virtual
 * time. Each op takes its roofline time on the placed cores at the current
 * frequency; while it runs the clusters draw battery current and heat the
 * RC network; every poll_s of emulated time the governor looks at the skin
 * temperature and sets a frequency cap per cluster. An op that spans a
 * poll is split there, so results do not depend on how ops are grouped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"

/* ------------------------------------------------------------- CPU model */

static const char *const od__kind_names[OD_DEV_OP_KIND_COUNT] = {
    "gemm", "conv", "pool", "eltwise", "softmax", "norm",
    "embed", "reduce", "optim", "rng", "copy"};

/* Share of peak FLOP rate per kind, until `ondev profile` calibrates them:
 * blocked matrix products reach most of the peak, streaming kernels little
 * of it (they are bounded by memory anyway). docs/devices.md. */
static const double od__default_eff[OD_DEV_OP_KIND_COUNT] = {
    0.65,   /* gemm */
    0.60,   /* conv */
    0.15,   /* pool */
    0.15,   /* eltwise */
    0.10,   /* softmax: exp dominates */
    0.15,   /* norm */
    0.05,   /* embed: gathers */
    0.20,   /* reduce */
    0.15,   /* optim */
    0.10,   /* rng */
    0.10,   /* copy */
};

const char *od_dev_op_kind_name(int kind)
{
    if (kind < 0 || kind >= OD_DEV_OP_KIND_COUNT)
        return "unknown";
    return od__kind_names[kind];
}

double od_dev_default_efficiency(int kind)
{
    OD_DEV_ASSERT(kind >= 0 && kind < OD_DEV_OP_KIND_COUNT);
    return od__default_eff[kind];
}

double od_dev_op_time_s(const od_dev_cluster *c, int n_cores,
                        double freq_khz, double efficiency,
                        double bandwidth_bytes_per_s, const od_dev_op *op)
{
    OD_DEV_ASSERT(n_cores > 0 && freq_khz > 0 && efficiency > 0);
    OD_DEV_ASSERT(bandwidth_bytes_per_s > 0);
    double rate = n_cores * c->flop_per_cycle * freq_khz * 1e3 * efficiency;
    double compute_s = op->flops / rate;
    double memory_s = op->bytes / bandwidth_bytes_per_s;
    return compute_s > memory_s ? compute_s : memory_s;
}

double od_dev_cluster_current_ma(const od_dev_cluster *c, int fi, int n_busy)
{
    OD_DEV_ASSERT(fi >= 0 && fi < c->nfreq);
    if (n_busy <= 0)
        return 0.0;
    return c->cluster_current_ma + n_busy * c->core_current_ma[fi];
}

double od_dev_cluster_heat_mw(const od_dev_cluster *c, int fi, int n_busy,
                              double battery_v)
{
    OD_DEV_ASSERT(fi >= 0 && fi < c->nfreq);
    if (n_busy <= 0)
        return 0.0;
    /* The thermal table is for the whole cluster busy; fewer busy cores
     * scale it down in proportion. Without a table, heat is the electrical
     * power of the battery model times the profile's heat scale. */
    if (c->has_heat)
        return c->heat_mw[fi] * n_busy / c->cores;
    return od_dev_cluster_current_ma(c, fi, n_busy) * battery_v *
           c->heat_scale;
}

/* ------------------------------------------------------------- settings */

void od_dev_settings_defaults(od_dev_settings *s, const od_dev_profile *p)
{
    memset(s, 0, sizeof *s);
    s->ambient_c = 25.0;
    s->governor = OD_DEV_GOV_PID;
    s->cluster = p ? od_dev_profile_big_cluster(p) : 0;
    s->threads = 0;
    s->initial_soc = 1.0;
    s->battery_model = OD_DEV_BATTERY_LINEAR;
}

od_dev_status od_dev_settings_governor(od_dev_settings *s, const char *name)
{
    if (strcmp(name, "pid") == 0)
        s->governor = OD_DEV_GOV_PID;
    else if (strcmp(name, "step_wise") == 0)
        s->governor = OD_DEV_GOV_STEP_WISE;
    else if (strcmp(name, "none") == 0)
        s->governor = OD_DEV_GOV_NONE;
    else
        return od_dev_fail(OD_DEV_ERR_INVALID, "governor '%s' is unknown; "
                           "use pid, step_wise or none", name);
    return OD_DEV_OK;
}

od_dev_status od_dev_settings_placement(od_dev_settings *s,
                                        const od_dev_profile *p,
                                        const char *name)
{
    if (strcmp(name, "all") == 0) {
        s->cluster = OD_DEV_PLACE_ALL;
        return OD_DEV_OK;
    }
    if (strcmp(name, "big") == 0) {
        s->cluster = od_dev_profile_big_cluster(p);
        return OD_DEV_OK;
    }
    int i = od_dev_profile_cluster_index(p, name);
    if (i < 0) {
        char list[256] = "";
        for (int k = 0; k < p->nclusters; k++) {
            strncat(list, p->clusters[k].name, sizeof list - strlen(list) - 3);
            strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return od_dev_fail(OD_DEV_ERR_INVALID, "placement '%s' is not a "
                           "cluster of %s; use %sbig or all", name, p->name,
                           list);
    }
    s->cluster = i;
    return OD_DEV_OK;
}

od_dev_status od_dev_settings_battery_model(od_dev_settings *s,
                                            const char *name)
{
    if (strcmp(name, "linear") == 0)
        s->battery_model = OD_DEV_BATTERY_LINEAR;
    else if (strcmp(name, "kibam") == 0)
        s->battery_model = OD_DEV_BATTERY_KIBAM;
    else
        return od_dev_fail(OD_DEV_ERR_INVALID, "battery model '%s' is "
                           "unknown; use linear or kibam", name);
    return OD_DEV_OK;
}

/* ------------------------------------------------------------- emulator */

struct od_dev_emu {
    od_dev_profile p;
    od_dev_settings s;
    od_dev_thermal th;
    od_dev_battery bat;
    double eff[OD_DEV_OP_KIND_COUNT];
    double bw_bytes_per_s;      /* the CPU's share of memory bandwidth */
    double charge_ma;           /* flowing in while charging */

    int primary;                /* cluster whose frequency is reported */
    int busy[OD_DEV_MAX_CLUSTERS];      /* cores running when busy */
    int user_idx[OD_DEV_MAX_CLUSTERS];  /* highest index the settings allow */
    int cap_idx[OD_DEV_MAX_CLUSTERS];   /* the governor's cap */

    /* Governor state. */
    double next_poll_s;
    double budget_mw;           /* INFINITY when not throttling */
    double pid_i_mw, pid_prev_err_c;
    int pid_stage;              /* -1: off */
    int trip_on[OD_DEV_MAX_TRIPS];
    double prev_skin_c;
    int paused_hot;

    /* Totals. */
    double time_s, busy_s, throttled_s, freq_busy_sum, max_skin_c;
    double last_power_w, last_heat_w;
};

/* Running frequency index of cluster i: the lower of the two caps. */
static int od__fidx(const od_dev_emu *e, int i)
{
    return e->cap_idx[i] < e->user_idx[i] ? e->cap_idx[i] : e->user_idx[i];
}

od_dev_status od_dev_emu_create(const od_dev_profile *p,
                                const od_dev_settings *s, od_dev_emu **out)
{
    *out = NULL;
    if (s->cluster != OD_DEV_PLACE_ALL &&
        (s->cluster < 0 || s->cluster >= p->nclusters))
        return od_dev_fail(OD_DEV_ERR_INVALID, "cluster index %d: %s has "
                           "%d clusters", s->cluster, p->name, p->nclusters);
    if (s->cluster != OD_DEV_PLACE_ALL &&
        (s->threads < 0 || s->threads > p->clusters[s->cluster].cores))
        return od_dev_fail(OD_DEV_ERR_INVALID, "device threads = %d, but "
                           "the %s cluster of %s has %d cores; use 1 to %d, "
                           "or placement all", s->threads,
                           p->clusters[s->cluster].name, p->name,
                           p->clusters[s->cluster].cores,
                           p->clusters[s->cluster].cores);
    if (!(s->initial_soc > 0.0 && s->initial_soc <= 1.0))
        return od_dev_fail(OD_DEV_ERR_INVALID, "initial state of charge %g "
                           "is outside (0, 1]", s->initial_soc);
    if (!(s->ambient_c > -40.0 && s->ambient_c < 80.0))
        return od_dev_fail(OD_DEV_ERR_INVALID, "ambient temperature %g C is "
                           "outside (-40, 80)", s->ambient_c);
    if (s->max_freq_khz < 0.0 || s->pause_skin_c < 0.0 ||
        s->charge_current_ma < 0.0)
        return od_dev_fail(OD_DEV_ERR_INVALID, "a negative frequency cap, "
                           "pause temperature or charging current (0 "
                           "disables each)");
    if (s->stop_below_soc < 0.0 || s->stop_below_soc >= 1.0)
        return od_dev_fail(OD_DEV_ERR_INVALID, "stop-below state of charge "
                           "%g is outside [0, 1)", s->stop_below_soc);
    for (int k = 0; k < OD_DEV_OP_KIND_COUNT; k++)
        if (s->efficiency[k] < 0.0 || s->efficiency[k] > 1.0)
            return od_dev_fail(OD_DEV_ERR_INVALID, "efficiency of %s = %g "
                               "is outside [0, 1] (0: default)",
                               od__kind_names[k], s->efficiency[k]);

    od_dev_emu *e = calloc(1, sizeof *e);
    if (!e)
        return od_dev_fail(OD_DEV_ERR_NOMEM, "out of memory");
    e->p = *p;
    e->s = *s;
    /* Per kind: the settings' efficiency, else the profile's calibrated
     * one, else the default. */
    for (int k = 0; k < OD_DEV_OP_KIND_COUNT; k++)
        e->eff[k] = s->efficiency[k] > 0   ? s->efficiency[k]
                    : p->efficiency[k] > 0 ? p->efficiency[k]
                                           : od__default_eff[k];
    e->bw_bytes_per_s = p->mem_bandwidth_bytes_per_s * p->mem_cpu_bw_share;
    e->charge_ma = s->charge_current_ma > 0 ? s->charge_current_ma
                                            : p->charge_current_ma;

    e->primary = s->cluster == OD_DEV_PLACE_ALL ? od_dev_profile_big_cluster(p)
                                                : s->cluster;
    for (int i = 0; i < p->nclusters; i++) {
        const od_dev_cluster *c = &p->clusters[i];
        if (s->cluster == OD_DEV_PLACE_ALL)
            e->busy[i] = c->cores;
        else if (i == s->cluster)
            e->busy[i] = s->threads > 0 ? s->threads : c->cores;
        int u = c->nfreq - 1;
        while (s->max_freq_khz > 0 && u > 0 && c->freq_khz[u] > s->max_freq_khz)
            u--;
        e->user_idx[i] = u;
        e->cap_idx[i] = c->nfreq - 1;
    }

    od_dev_thermal_init(&e->th, p, s->ambient_c);
    od_dev_battery_init(&e->bat, p, s->battery_model, s->initial_soc);
    e->next_poll_s = p->poll_s;
    e->budget_mw = INFINITY;
    e->pid_stage = -1;
    e->prev_skin_c = e->th.skin_c;
    e->max_skin_c = e->th.skin_c;
    *out = e;
    return OD_DEV_OK;
}

void od_dev_emu_destroy(od_dev_emu *e) { free(e); }

/* Time one op takes now, on the placed cores at their current frequency. */
static double od__op_time(const od_dev_emu *e, const od_dev_op *op)
{
    OD_DEV_ASSERT(op->kind >= 0 && op->kind < OD_DEV_OP_KIND_COUNT);
    if (e->s.cluster != OD_DEV_PLACE_ALL) {
        int i = e->s.cluster;
        const od_dev_cluster *c = &e->p.clusters[i];
        return od_dev_op_time_s(c, e->busy[i], c->freq_khz[od__fidx(e, i)],
                                e->eff[op->kind], e->bw_bytes_per_s, op);
    }
    /* Every cluster works on its share of the op, in proportion to its
     * FLOP rate, so all finish together; memory is shared. */
    double rate = 0.0;
    for (int i = 0; i < e->p.nclusters; i++) {
        const od_dev_cluster *c = &e->p.clusters[i];
        rate += e->busy[i] * c->flop_per_cycle *
                c->freq_khz[od__fidx(e, i)] * 1e3 * e->eff[op->kind];
    }
    double compute_s = op->flops / rate;
    double memory_s = op->bytes / e->bw_bytes_per_s;
    return compute_s > memory_s ? compute_s : memory_s;
}

/* Load current (mA) and heat (W) with the CPU busy or idle. */
static void od__power(const od_dev_emu *e, int busy, double *load_ma,
                      double *heat_w)
{
    double ma = e->p.awake_ma, heat_mw = 0.0;
    if (busy) {
        ma += e->p.active_ma;
        for (int i = 0; i < e->p.nclusters; i++) {
            const od_dev_cluster *c = &e->p.clusters[i];
            int fi = od__fidx(e, i);
            ma += od_dev_cluster_current_ma(c, fi, e->busy[i]);
            heat_mw += od_dev_cluster_heat_mw(c, fi, e->busy[i],
                                              e->p.battery_v);
        }
        heat_mw += e->p.active_ma * e->p.battery_v;
    }
    heat_mw += e->p.awake_ma * e->p.battery_v;
    *load_ma = ma;
    *heat_w = heat_mw * 1e-3;
}

/* Let dt_s pass at constant frequencies, busy or idle. */
static void od__run(od_dev_emu *e, double dt_s, int busy)
{
    if (dt_s <= 0.0)
        return;
    double load_ma, heat_w;
    od__power(e, busy, &load_ma, &heat_w);
    od_dev_thermal_advance(&e->th, heat_w, dt_s);
    od_dev_battery_advance(&e->bat, load_ma, e->s.charging ? e->charge_ma : 0,
                           dt_s);
    e->last_power_w = load_ma * 1e-3 * e->p.battery_v;
    e->last_heat_w = heat_w;
    e->time_s += dt_s;
    if (e->th.skin_c > e->max_skin_c)
        e->max_skin_c = e->th.skin_c;
    if (busy) {
        int pi = e->primary;
        e->busy_s += dt_s;
        e->freq_busy_sum += dt_s * e->p.clusters[pi].freq_khz[od__fidx(e, pi)];
        int throttled = 0;
        for (int i = 0; i < e->p.nclusters; i++)
            throttled |= e->busy[i] > 0 && e->cap_idx[i] < e->user_idx[i];
        if (throttled)
            e->throttled_s += dt_s;
    }
    if (e->s.pause_skin_c > 0) {
        if (e->th.skin_c > e->s.pause_skin_c)
            e->paused_hot = 1;
        else if (e->th.skin_c < e->s.pause_skin_c - e->p.hysteresis_c)
            e->paused_hot = 0;
    }
}

/* Severity: how many trip points the skin is above, each with hysteresis
 * (a trip stays on until the skin falls below trip - hysteresis). */
static int od__severity(od_dev_emu *e, double skin_c)
{
    int sev = 0;
    for (int k = 0; k < e->p.ntrips; k++) {
        double on_at = e->trip_on[k] ? e->p.trips_c[k] - e->p.hysteresis_c
                                     : e->p.trips_c[k];
        e->trip_on[k] = skin_c >= on_at;
        if (e->trip_on[k])
            sev = k + 1;
    }
    return sev;
}

/* Split budget_mw over the busy clusters in proportion to weight × the
 * power each asks for (its heat at its allowed top frequency); what a
 * cluster cannot use goes to the others. Each gets the highest frequency
 * whose heat fits its grant. */
static void od__allocate(od_dev_emu *e, double budget_mw)
{
    int n = e->p.nclusters;
    double req[OD_DEV_MAX_CLUSTERS], grant[OD_DEV_MAX_CLUSTERS];
    int open[OD_DEV_MAX_CLUSTERS];
    double left = budget_mw;
    for (int i = 0; i < n; i++) {
        const od_dev_cluster *c = &e->p.clusters[i];
        req[i] = od_dev_cluster_heat_mw(c, e->user_idx[i], e->busy[i],
                                        e->p.battery_v);
        grant[i] = 0.0;
        open[i] = req[i] > 0.0;
    }
    /* Water-filling: at most n rounds, each closes at least one cluster or
     * hands out everything that is left. */
    for (int round = 0; round < n && left > 0.0; round++) {
        double wsum = 0.0;
        for (int i = 0; i < n; i++)
            if (open[i])
                wsum += e->p.clusters[i].power_weight * req[i];
        if (wsum <= 0.0)
            break;
        double spent = 0.0;
        for (int i = 0; i < n; i++) {
            if (!open[i])
                continue;
            double share = left * e->p.clusters[i].power_weight * req[i] /
                           wsum;
            if (grant[i] + share >= req[i]) {
                share = req[i] - grant[i];
                open[i] = 0;
            }
            grant[i] += share;
            spent += share;
        }
        left -= spent;
        if (spent <= 0.0)
            break;
    }
    for (int i = 0; i < n; i++) {
        const od_dev_cluster *c = &e->p.clusters[i];
        if (e->busy[i] == 0) {
            e->cap_idx[i] = c->nfreq - 1;
            continue;
        }
        int fi = e->user_idx[i];
        while (fi > 0 &&
               od_dev_cluster_heat_mw(c, fi, e->busy[i], e->p.battery_v) >
                   grant[i] * (1.0 + 1e-12))
            fi--;
        e->cap_idx[i] = fi;
    }
}

/* Power allocator: a PID on the skin temperature gives a power budget.
 * The stage targeted is the first whose control temperature is above the
 * current severity's trip point (the last stage when none is). */
static void od__govern_pid(od_dev_emu *e, double skin_c)
{
    int sev = od__severity(e, skin_c);
    if (sev == 0) {
        e->pid_stage = -1;
        e->pid_i_mw = 0.0;
        e->budget_mw = INFINITY;
        for (int i = 0; i < e->p.nclusters; i++)
            e->cap_idx[i] = e->p.clusters[i].nfreq - 1;
        return;
    }
    int st = e->p.npid - 1;
    for (int k = 0; k < e->p.npid; k++)
        if (e->p.pid[k].control_c > e->p.trips_c[sev - 1]) {
            st = k;
            break;
        }
    const od_dev_pid_stage *g = &e->p.pid[st];
    double err = g->control_c - skin_c;
    if (st != e->pid_stage)
        e->pid_prev_err_c = err;    /* no derivative kick on a switch */
    e->pid_stage = st;

    double p_mw = err * (err < 0 ? g->k_po : g->k_pu);
    if (err < g->i_cutoff_c) {
        e->pid_i_mw += g->k_i * err;
        e->pid_i_mw = fmax(-g->i_max_mw, fmin(g->i_max_mw, e->pid_i_mw));
    }
    double d_mw = g->k_d * (err - e->pid_prev_err_c) / e->p.poll_s;
    e->pid_prev_err_c = err;

    double budget = g->sustainable_mw + p_mw + e->pid_i_mw + d_mw;
    budget = fmax(g->min_alloc_mw, fmin(g->max_alloc_mw, budget));
    e->budget_mw = budget;
    od__allocate(e, budget);
}

/* Step-wise: while any trip is exceeded and the skin is not cooling, lower
 * every busy cluster's cap one frequency step per poll; once below all
 * trips, raise it one step per poll. */
static void od__govern_step(od_dev_emu *e, double skin_c)
{
    int sev = od__severity(e, skin_c);
    for (int i = 0; i < e->p.nclusters; i++) {
        int top = e->p.clusters[i].nfreq - 1;
        if (sev > 0 && skin_c >= e->prev_skin_c) {
            if (e->busy[i] > 0 && e->cap_idx[i] > 0)
                e->cap_idx[i]--;
        } else if (sev == 0 && e->cap_idx[i] < top) {
            e->cap_idx[i]++;
        }
    }
}

static void od__poll(od_dev_emu *e)
{
    double skin = e->th.skin_c;
    if (e->s.governor == OD_DEV_GOV_PID)
        od__govern_pid(e, skin);
    else if (e->s.governor == OD_DEV_GOV_STEP_WISE)
        od__govern_step(e, skin);
    e->prev_skin_c = skin;
    e->next_poll_s += e->p.poll_s;
}

/* Run for dt_s, stopping at each governor poll on the way. */
static void od__run_polled(od_dev_emu *e, double dt_s, int busy)
{
    while (dt_s > 0.0) {
        double to_poll = e->next_poll_s - e->time_s;
        if (to_poll <= 0.0) {
            od__poll(e);
            continue;
        }
        double step = dt_s < to_poll ? dt_s : to_poll;
        od__run(e, step, busy);
        dt_s -= step;
        if (step == to_poll)
            od__poll(e);
    }
}

double od_dev_emu_advance(od_dev_emu *e, const od_dev_op *ops, size_t n)
{
    double start = e->time_s;
    for (size_t k = 0; k < n; k++) {
        /* The share of the op still to run; its time is recomputed after
         * each poll because the frequency may have changed. */
        double left = 1.0;
        while (left > 0.0) {
            double full_s = od__op_time(e, &ops[k]);
            if (!(full_s > 0.0))
                break;
            double to_poll = e->next_poll_s - e->time_s;
            if (to_poll <= 0.0) {
                od__poll(e);
                continue;
            }
            double need_s = left * full_s;
            if (need_s < to_poll) {
                od__run(e, need_s, 1);
                left = 0.0;
            } else {
                od__run(e, to_poll, 1);
                left -= to_poll / full_s;
                if (left < 1e-12)
                    left = 0.0;
                od__poll(e);
            }
        }
    }
    return e->time_s - start;
}

void od_dev_emu_idle(od_dev_emu *e, double dt_s)
{
    OD_DEV_ASSERT(dt_s >= 0.0);
    od__run_polled(e, dt_s, 0);
}

void od_dev_emu_set_charging(od_dev_emu *e, int charging)
{
    e->s.charging = charging;
}

od_dev_verdict od_dev_emu_verdict(const od_dev_emu *e, char *reason,
                                  size_t len)
{
    char dummy[8];
    if (!reason) {
        reason = dummy;
        len = sizeof dummy;
    }
    reason[0] = '\0';
    double soc = od_dev_battery_soc(&e->bat);
    if (e->s.stop_below_soc > 0 && soc < e->s.stop_below_soc) {
        snprintf(reason, len, "battery at %.1f %%, below the stop level "
                 "of %.1f %%", 100 * soc, 100 * e->s.stop_below_soc);
        return OD_DEV_STOP;
    }
    if (od_dev_battery_available(&e->bat) <= 0.0) {
        snprintf(reason, len, "battery empty");
        return OD_DEV_STOP;
    }
    if (e->s.only_while_charging && !e->s.charging) {
        snprintf(reason, len, "not charging, and training runs only while "
                 "charging");
        return OD_DEV_PAUSE;
    }
    if (e->paused_hot) {
        snprintf(reason, len, "skin at %.1f C, above the pause limit of "
                 "%.1f C", e->th.skin_c, e->s.pause_skin_c);
        return OD_DEV_PAUSE;
    }
    return OD_DEV_CONTINUE;
}

double od_dev_emu_time_s(const od_dev_emu *e) { return e->time_s; }
double od_dev_emu_busy_time_s(const od_dev_emu *e) { return e->busy_s; }
double od_dev_emu_energy_j(const od_dev_emu *e) { return e->bat.energy_j; }

double od_dev_emu_battery_used_pct(const od_dev_emu *e)
{
    return 100.0 * (e->s.initial_soc - od_dev_battery_soc(&e->bat));
}

double od_dev_emu_max_skin_c(const od_dev_emu *e) { return e->max_skin_c; }

double od_dev_emu_throttled_time_s(const od_dev_emu *e)
{
    return e->throttled_s;
}

double od_dev_emu_mean_freq_khz(const od_dev_emu *e)
{
    if (e->busy_s <= 0.0)
        return e->p.clusters[e->primary].freq_khz[od__fidx(e, e->primary)];
    return e->freq_busy_sum / e->busy_s;
}

double od_dev_emu_mem_budget_bytes(const od_dev_emu *e)
{
    return od_dev_profile_mem_budget_bytes(&e->p);
}

double od_dev_emu_soc_c(const od_dev_emu *e) { return e->th.soc_c; }
double od_dev_emu_skin_c(const od_dev_emu *e) { return e->th.skin_c; }

double od_dev_emu_freq_khz(const od_dev_emu *e)
{
    return e->p.clusters[e->primary].freq_khz[od__fidx(e, e->primary)];
}

double od_dev_emu_soc(const od_dev_emu *e)
{
    return od_dev_battery_soc(&e->bat);
}

double od_dev_emu_power_w(const od_dev_emu *e) { return e->last_power_w; }
double od_dev_emu_heat_w(const od_dev_emu *e) { return e->last_heat_w; }
double od_dev_emu_budget_mw(const od_dev_emu *e) { return e->budget_mw; }

const od_dev_profile *od_dev_emu_profile(const od_dev_emu *e)
{
    return &e->p;
}
