#include "harness/device_bridge.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/log.h"

#ifndef ONDEV_SOURCE_DIR
#define ONDEV_SOURCE_DIR "."
#endif

/* The device part mirrors the engine's op kinds one for one. */
_Static_assert((int)OD_DEV_OP_KIND_COUNT == (int)OD_OP_KIND_COUNT,
               "devices/device.h and engine/cost.h list different op kinds");
_Static_assert((int)OD_DEV_OP_COPY == (int)OD_OP_COPY &&
               (int)OD_DEV_OP_GEMM == (int)OD_OP_GEMM,
               "op kinds out of order");

const char *od_device_profiles_dir(void)
{
    return ONDEV_SOURCE_DIR "/devices/profiles";
}

void od_device_opts_defaults(od_device_opts *o)
{
    memset(o, 0, sizeof *o);
    o->ambient_c = 25.0;
    snprintf(o->governor, sizeof o->governor, "pid");
    snprintf(o->placement, sizeof o->placement, "big");
    o->battery_start_pct = 100.0;
    snprintf(o->battery_model, sizeof o->battery_model, "linear");
    o->max_pause_s = 6 * 3600.0;
}

/* A device-part failure as an engine status, keeping its message. */
static od_status od__dev_status(od_dev_status st, const char *what)
{
    od_status s = st == OD_DEV_ERR_FORMAT  ? OD_ERR_FORMAT
                  : st == OD_DEV_ERR_IO    ? OD_ERR_IO
                  : st == OD_DEV_ERR_NOMEM ? OD_ERR_NOMEM
                                           : OD_ERR_INVALID;
    return od_fail(s, "%s%s", what, od_dev_error_message());
}

od_status od_device_bridge_open(od_device_bridge *b, const od_device_opts *o)
{
    memset(b, 0, sizeof *b);
    if (!o->device[0])
        return OD_OK;
    b->profile = malloc(sizeof *b->profile);
    if (!b->profile)
        return od_fail(OD_ERR_NOMEM, "out of host memory");

    od_dev_search_path sp;
    od_dev_search_path_init(&sp, od_device_profiles_dir());
    od_dev_status st = od_dev_profile_find(&sp, o->device, b->profile);
    if (st != OD_DEV_OK) {
        od_device_bridge_close(b);
        return od__dev_status(st, "device: ");
    }

    od_dev_settings s;
    od_dev_settings_defaults(&s, b->profile);
    s.ambient_c = o->ambient_c;
    s.threads = o->device_threads;
    s.initial_soc = o->battery_start_pct / 100.0;
    s.stop_below_soc = o->stop_below_pct / 100.0;
    s.charging = o->charging;
    s.only_while_charging = o->only_while_charging;
    s.charge_current_ma = o->charge_current_ma;
    s.pause_skin_c = o->pause_skin_c;
    s.max_freq_khz = o->max_freq_khz;
    for (int k = 0; k < OD_DEV_OP_KIND_COUNT; k++)
        s.efficiency[k] = o->efficiency[k];
    if ((st = od_dev_settings_governor(&s, o->governor)) != OD_DEV_OK ||
        (st = od_dev_settings_placement(&s, b->profile, o->placement)) !=
            OD_DEV_OK ||
        (st = od_dev_settings_battery_model(&s, o->battery_model)) !=
            OD_DEV_OK ||
        (st = od_dev_emu_create(b->profile, &s, &b->emu)) != OD_DEV_OK) {
        od_device_bridge_close(b);
        return od__dev_status(st, "device: ");
    }
    b->pace_realtime = o->pace_realtime;
    b->max_pause_s = o->max_pause_s;
    return OD_OK;
}

void od_device_bridge_close(od_device_bridge *b)
{
    od_dev_emu_destroy(b->emu);
    free(b->profile);
    free(b->ops);
    memset(b, 0, sizeof *b);
}

int od_device_bridge_active(const od_device_bridge *b)
{
    return b->emu != NULL;
}

uint64_t od_device_bridge_mem_budget_bytes(const od_device_bridge *b)
{
    return b->emu ? (uint64_t)od_dev_emu_mem_budget_bytes(b->emu) : 0;
}

static void od__sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

void od_device_bridge_observe(void *user, const od_cost *recs, size_t n)
{
    od_device_bridge *b = user;
    if (!b->emu || n == 0)
        return;
    if (n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < n)
            cap *= 2;
        od_dev_op *ops = realloc(b->ops, cap * sizeof *ops);
        if (!ops) {
            /* Charge what fits; the shortfall is logged, not fatal. */
            od_log_warn("device: out of host memory; %zu ops of a step not "
                        "charged", n - b->cap);
            n = b->cap;
        } else {
            b->ops = ops;
            b->cap = cap;
        }
    }
    for (size_t i = 0; i < n; i++) {
        b->ops[i].kind = (int)recs[i].kind;
        b->ops[i].flops = recs[i].flops;
        b->ops[i].bytes = recs[i].bytes_read + recs[i].bytes_written;
    }
    uint64_t t0 = od_now_ns();
    b->last_step_s = od_dev_emu_advance(b->emu, b->ops, n);
    b->steps++;
    if (b->pace_realtime)
        od__sleep_s(b->last_step_s - (double)(od_now_ns() - t0) * 1e-9);
}

void od_device_bridge_before_step(od_device_bridge *b, int *stop)
{
    *stop = 0;
    if (!b->emu)
        return;
    char why[256];
    for (;;) {
        od_dev_verdict v = od_dev_emu_verdict(b->emu, why, sizeof why);
        if (v == OD_DEV_CONTINUE)
            return;
        if (v == OD_DEV_PAUSE && b->paused_s < b->max_pause_s) {
            /* Wait in short slices so work resumes soon after it may. */
            od_dev_emu_idle(b->emu, 10.0);
            b->paused_s += 10.0;
            continue;
        }
        if (v == OD_DEV_PAUSE)
            snprintf(b->stop_reason, sizeof b->stop_reason,
                     "paused for %.0f s of emulated time (%s)", b->paused_s,
                     why);
        else
            snprintf(b->stop_reason, sizeof b->stop_reason, "%s", why);
        b->stopped = 1;
        *stop = 1;
        return;
    }
}

void od_device_bridge_summary(const od_device_bridge *b,
                              od_device_summary *s)
{
    memset(s, 0, sizeof *s);
    if (!b->emu)
        return;
    const od_dev_emu *e = b->emu;
    snprintf(s->device, sizeof s->device, "%s", b->profile->name);
    s->emulated_time_s = od_dev_emu_time_s(e);
    s->energy_j = od_dev_emu_energy_j(e);
    s->battery_used_pct = od_dev_emu_battery_used_pct(e);
    s->max_skin_temp_c = od_dev_emu_max_skin_c(e);
    s->throttled_time_s = od_dev_emu_throttled_time_s(e);
    s->mean_freq_khz = od_dev_emu_mean_freq_khz(e);
    s->paused_s = b->paused_s;
    if (b->stopped)
        snprintf(s->stop_reason, sizeof s->stop_reason, "%s",
                 b->stop_reason);
}

void od_device_summary_write_json(const od_device_summary *s, od_json *j)
{
    if (!s->device[0])
        return;
    od_json_string(j, "device", s->device);
    od_json_double(j, "emulated_time_s", s->emulated_time_s);
    od_json_double(j, "energy_j", s->energy_j);
    od_json_double(j, "battery_used_pct", s->battery_used_pct);
    od_json_double(j, "max_skin_temp_c", s->max_skin_temp_c);
    od_json_double(j, "throttled_time_s", s->throttled_time_s);
    od_json_double(j, "mean_freq_khz", s->mean_freq_khz);
    od_json_double(j, "device_paused_s", s->paused_s);
    if (s->stop_reason[0])
        od_json_string(j, "device_stop_reason", s->stop_reason);
}

void od_device_summary_write_text(const od_device_summary *s, FILE *f)
{
    if (!s->device[0])
        return;
    fprintf(f, "device %s: %.1f s emulated, %.1f J, %.2f %% of the battery, "
            "skin up to %.1f C, throttled %.1f s, mean %.0f MHz\n",
            s->device, s->emulated_time_s, s->energy_j, s->battery_used_pct,
            s->max_skin_temp_c, s->throttled_time_s,
            s->mean_freq_khz / 1000.0);
    if (s->stop_reason[0])
        fprintf(f, "device stopped the run: %s\n", s->stop_reason);
}

void od_device_bridge_write_json(const od_device_bridge *b, od_json *j)
{
    od_device_summary s;
    od_device_bridge_summary(b, &s);
    od_device_summary_write_json(&s, j);
}
