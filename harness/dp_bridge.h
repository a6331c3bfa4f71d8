/* DP-SGD in a run: from the configuration keys (dp, clip_norm,
 * noise_multiplier or epsilon, delta, sampling, accountant, conversion,
 * microbatch) to a privacy/dpsgd.h mechanism with σ calibrated before
 * training, and from the steps taken to the ε the run reports. */
#ifndef ONDEV_HARNESS_DP_BRIDGE_H
#define ONDEV_HARNESS_DP_BRIDGE_H

#include <stdint.h>

#include "harness/config.h"
#include "harness/json.h"
#include "privacy/dpsgd.h"

typedef struct od_dp_summary {
    int enabled;
    double epsilon;           /* spent by the steps taken */
    double epsilon_target;    /* the configured target; 0 when none */
    double delta;
    double noise_multiplier;
    double clip_norm;
    double sampling_rate;     /* q */
    int64_t steps;            /* DP-SGD steps taken */
    char accountant[8];       /* "rdp", "pld" */
    char conversion[16];      /* RDP: "improved", "classic"; PLD: "" */
    char sampling[16];        /* "poisson", "shuffle" */
    const char *assumption;   /* NULL or the analysis assumption used */
    double mean_norm;         /* per-example gradient norm, before clip */
    double clipped_fraction;  /* of the examples, clipped */
    int64_t empty_batches;
} od_dp_summary;

/* Cross-key checks of the DP keys (before any work starts). OD_OK when dp
 * is off. */
od_status od_dp_config_check(const od_config *c);

/* The mechanism for a run of total_steps steps over train_n examples; σ is
 * calibrated first when the configuration gives a target epsilon. Fills
 * the configured part of *sum. */
od_status od_dp_setup(const od_config *c, int train_n, int64_t total_steps,
                      od_dpsgd **out, od_dp_summary *sum);

/* ε of the steps taken, into *sum with the run's clipping figures. */
od_status od_dp_finish(const od_dpsgd *d, int64_t steps, od_dp_summary *sum);

/* The summary's fields as keys of the current JSON object. */
void od_dp_summary_write_json(const od_dp_summary *s, od_json *j);

#endif
