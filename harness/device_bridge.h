/* The bridge between a training run and an emulated device: it turns the
 * engine's per-step cost records into the device part's op records,
 * advances the emulator, applies the device's policies between steps and
 * writes the device figures of a run's JSON summary.
 *
 * Use from a run (see docs/devices.md):
 *   od_device_bridge b;
 *   od_device_bridge_open(&b, &opts);           before the arena exists
 *   budget = od_device_bridge_mem_budget_bytes(&b);
 *   od_trace_set_observer(&trace, od_device_bridge_observe, &b);
 *   each step: od_device_bridge_before_step(&b, &stop); if stop, end
 *   od_device_bridge_write_json(&b, &j);        inside the summary object
 *   od_device_bridge_close(&b); */
#ifndef ONDEV_HARNESS_DEVICE_BRIDGE_H
#define ONDEV_HARNESS_DEVICE_BRIDGE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "devices/device.h"
#include "engine/common.h"
#include "engine/cost.h"
#include "harness/json.h"

/* The shipped profile directory (the source tree's devices/profiles). */
const char *od_device_profiles_dir(void);

/* The device settings of a run; names match the configuration keys. */
typedef struct od_device_opts {
    char device[512];           /* profile name or file; "" disables */
    double ambient_c;           /* 25 */
    char governor[512];         /* pid | step_wise | none */
    char placement[512];        /* big | all | a cluster name */
    int device_threads;         /* cores on the placed cluster; 0: all */
    double battery_start_pct;   /* 100 */
    char battery_model[512];    /* linear | kibam */
    double stop_below_pct;      /* 0: never */
    int charging;               /* plugged in */
    int only_while_charging;
    double charge_current_ma;   /* 0: the profile's */
    double pause_skin_c;        /* 0: never */
    double max_freq_khz;        /* cap on every cluster; 0: none */
    /* Share of peak per op kind, from calibration; 0: the default. */
    double efficiency[OD_DEV_OP_KIND_COUNT];
    double max_pause_s;         /* give up after pausing this long; 21600 */
    int pace_realtime;          /* sleep so wall time follows emulated */
} od_device_opts;

void od_device_opts_defaults(od_device_opts *o);

typedef struct od_device_bridge {
    od_dev_profile *profile;    /* NULL when no device is emulated */
    od_dev_emu *emu;
    od_dev_op *ops;             /* (cap) conversion buffer */
    size_t cap;
    int pace_realtime;
    double max_pause_s;
    double paused_s;            /* emulated seconds spent paused */
    int64_t steps;
    double last_step_s;         /* emulated seconds of the last step */
    int stopped;
    char stop_reason[512];
} od_device_bridge;

/* Load the profile and create the emulator. With an empty o->device the
 * bridge is inert (every call below does nothing). OD_ERR_INVALID names
 * the setting and what is allowed; a bad profile gives OD_ERR_FORMAT with
 * its file and line. */
od_status od_device_bridge_open(od_device_bridge *b, const od_device_opts *o);
void od_device_bridge_close(od_device_bridge *b);
int od_device_bridge_active(const od_device_bridge *b);

/* The arena budget the device allows (0 when inert). */
uint64_t od_device_bridge_mem_budget_bytes(const od_device_bridge *b);

/* An od_cost_observer: charge one step's records (user is the bridge). */
void od_device_bridge_observe(void *user, const od_cost *recs, size_t n);

/* Before a step: apply the policies. A pause idles the device (it cools,
 * or waits for a charger) until work may go on; *stop becomes 1 when the
 * run must end, with the reason in b->stop_reason. */
void od_device_bridge_before_step(od_device_bridge *b, int *stop);

/* The device figures as keys of the current JSON object. */
void od_device_bridge_write_json(const od_device_bridge *b, od_json *j);

/* The same figures as plain values, to keep in a run's result after the
 * bridge is closed. device is "" when no device was emulated. */
typedef struct od_device_summary {
    char device[OD_DEV_NAME_MAX];
    double emulated_time_s;
    double energy_j;
    double battery_used_pct;
    double max_skin_temp_c;
    double throttled_time_s;
    double mean_freq_khz;
    double paused_s;
    char stop_reason[512];      /* "" unless a policy ended the run */
} od_device_summary;

void od_device_bridge_summary(const od_device_bridge *b,
                              od_device_summary *s);
/* Nothing when s->device is "". */
void od_device_summary_write_json(const od_device_summary *s, od_json *j);
/* One line for people ("pixel6: 12.3 s emulated, 45.6 J, ..."). */
void od_device_summary_write_text(const od_device_summary *s, FILE *f);

#endif
