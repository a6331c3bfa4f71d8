/* Profiling the real machine: its topology (hwloc), its hardware counters
 * (PAPI, when the machine exposes any), the clock, the FMA peak, the memory
 * bandwidth and the throughput the engine's kernels, alone and in training
 * steps of the shipped models, reach per op kind. The
 * result becomes a device profile (YAML, the schema of devices/profiles)
 * whose `efficiency:` section calibrates the emulator's CPU model.
 *
 * Every timing is the best of several repeats, each long enough for the
 * clock's resolution, so that a busy machine lowers the figures little.
 * docs/profile.md says what is measured and how to read it. */
#ifndef ONDEV_HARNESS_PROFILE_H
#define ONDEV_HARNESS_PROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/common.h"
#include "engine/cost.h"
#include "harness/json.h"

#define OD_PROFILE_MAX_CACHES 8
#define OD_PROFILE_MAX_KERNELS 24

typedef struct od_profile_opts {
    int quick;          /* a run of a few seconds: smaller buffers, fewer
                           repeats; the figures are rougher */
} od_profile_opts;

/* One level of cache as hwloc reports it. */
typedef struct od_profile_cache {
    int level;                  /* 1, 2, 3 */
    char type[16];              /* "data", "instruction", "unified" */
    uint64_t size_bytes;        /* one instance */
    int count;                  /* instances on the machine */
} od_profile_cache;

/* One representative kernel of an op kind, run on one thread. */
typedef struct od_profile_kernel {
    od_op_kind kind;
    char name[48];              /* "gemm 64x128x1024 (fc1 forward)" */
    double flops;               /* per call, counted as the engine does */
    double bytes;               /* per call: read plus written */
    double best_s;              /* fastest call */
    double gflop_s;             /* flops / best_s / 1e9 */
    double gb_s;                /* bytes / best_s / 1e9 */
    double roofline_gflop_s;    /* min(peak, intensity x 1-core bandwidth) */
    double roofline_fraction;   /* gflop_s / roofline; above 1 when the
                                   working set stays in cache */
    double ipc;                 /* instructions per cycle; 0: no counters */
    double counted_flops;       /* FP operations counted; 0: no counter */
} od_profile_kernel;

typedef struct od_profile_result {
    /* Host. */
    char cpu_model[128];
    int packages, cores, pus, numa_nodes;
    int topology_known;         /* 0: hwloc failed, counts from the OS */
    double mem_total_bytes;
    int ncaches;
    od_profile_cache caches[OD_PROFILE_MAX_CACHES];
    char isa[16];               /* the kernels' ISA path */
    char isa_detected[16];

    /* Clock. */
    double freq_khz;            /* the one the profile uses */
    char freq_method[96];       /* how freq_khz was obtained */
    double loop_freq_khz;       /* from a dependent-add loop; 0: not run */
    double sysfs_max_khz;       /* cpufreq's cpuinfo_max_freq; 0: absent */
    double cpuinfo_khz;         /* /proc/cpuinfo "cpu MHz"; 0: absent */

    /* Hardware counters. */
    int papi_built;             /* ondev was built with PAPI */
    int counter_slots;          /* counters PAPI reports for the CPU */
    int counters_usable;        /* events that could be added and started */
    char papi_version[32];
    char counters_text[256];    /* one sentence for people */
    double peak_ipc;            /* IPC of the FMA loop; 0: no counters */

    /* Throughput. */
    double peak_gflop_s;        /* one core, the kernels' ISA */
    double flop_per_cycle;      /* peak / freq */
    double mem_buffer_bytes;    /* each stream array */
    double copy_gb_s_1;         /* one thread */
    double triad_gb_s_1;
    double triad_gb_s_all;      /* every core */
    int threads_all;
    int buffer_exceeds_llc;     /* 0: the figures may include cache hits */

    int nkernels;
    od_profile_kernel kernels[OD_PROFILE_MAX_KERNELS];
    /* Share of the 1-core peak reached per kind (0: not measured): by the
     * kernels alone, and by whole training steps of the shipped models
     * (the engine's layers, their arena allocation included, as the cost
     * records time them). */
    double kernel_efficiency[OD_OP_KIND_COUNT];
    double train_efficiency[OD_OP_KIND_COUNT];
    double train_flops[OD_OP_KIND_COUNT];   /* per step, both models */
    double train_best_s[OD_OP_KIND_COUNT];  /* per step, fastest steps */
    int train_steps;                        /* timed steps per model */
    /* What the profile gets: the training figure where there is one, else
     * the kernels' (efficiency_from names which, per kind). */
    double efficiency[OD_OP_KIND_COUNT];
    const char *efficiency_from[OD_OP_KIND_COUNT];  /* "training",
                                                       "kernels" or NULL */

    int quick;                  /* measured with --quick */
    double elapsed_s;           /* wall time of the whole measurement */
} od_profile_result;

/* Measure this machine. Fails only when memory for the buffers cannot be
 * had (OD_ERR_NOMEM); missing hwloc details, /sys entries or counters are
 * reported in r, never fatal. Progress goes to the log at info level. */
od_status od_profile_measure(const od_profile_opts *o, od_profile_result *r);

/* Write r as a device profile in the schema of the shipped devices/profiles.
 * name is the profile's name (the file stem), date e.g. "2026-12-03".
 * OD_ERR_IO names the file when it cannot be written. */
od_status od_profile_write_yaml(const od_profile_result *r, const char *path,
                                const char *name, const char *date);

/* r as keys of the current JSON object. */
void od_profile_write_json(const od_profile_result *r, od_json *j);
/* r for people, several lines. */
void od_profile_write_text(const od_profile_result *r, FILE *f);

#endif
