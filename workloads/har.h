/* Health activity: a seeded generator of 3-axis accelerometer windows from
 * a phone in a trouser pocket, with per-user gait and placement, and a
 * small 1-D CNN to recognise the activity. docs/har-model.md describes the
 * signal model and where its figures come from.
 *
 * A window is 2.56 s at 50 Hz (128 samples) of (x, y, z) acceleration in
 * units of g, as an accelerometer reports it (gravity included). Samples
 * are shaped (3, 128), channels first, so that the model sees them as
 * (3, 1, 128) images one row high. One label per window, in the order of
 * od_har_class_names. A sample's group is its user. Users 0 .. train_users
 * - 1 train; the next test_users are held out for testing. */
#ifndef ONDEV_WORKLOADS_HAR_H
#define ONDEV_WORKLOADS_HAR_H

#include "engine/model.h"
#include "workloads/dataset.h"
#include "workloads/metrics.h"
#include "workloads/workload.h"

#define OD_HAR_RATE_HZ 50
#define OD_HAR_WINDOW 128
#define OD_HAR_AXES 3
#define OD_HAR_CLASSES 7
#define OD_HAR_TRAIN_USERS 24
#define OD_HAR_TEST_USERS 6
#define OD_HAR_WINDOWS_PER_ACTIVITY 48  /* per user */

typedef enum od_har_activity {
    OD_HAR_WALKING = 0,
    OD_HAR_UPSTAIRS,
    OD_HAR_DOWNSTAIRS,
    OD_HAR_RUNNING,
    OD_HAR_SITTING,
    OD_HAR_STANDING,
    OD_HAR_LYING,
} od_har_activity;

extern const char *const od_har_class_names[OD_HAR_CLASSES];

/* What makes one user differ from another (drawn from the seed). */
typedef struct od_har_user {
    double cadence_hz;        /* walking step frequency */
    double run_cadence_hz;    /* running step frequency */
    double impact_g;          /* walking heel-strike peak */
    double harmonic[3];       /* weights of step harmonics 1..3 */
    double phone_rot[3][3];   /* body frame -> phone frame */
    double sit_pitch_rad;     /* thigh angle when sitting */
    double lean_rad;          /* forward lean when walking */
    double bias_g[3];         /* accelerometer offset per axis */
    double gain[3];           /* accelerometer scale per axis */
    double noise_g;           /* white noise, standard deviation */
} od_har_user;

/* The parameters of user u under seed. Same inputs, same user. */
void od_har_user_make(uint64_t seed, int u, od_har_user *user);

/* One window (3, 128) of activity a for user, from rng. */
void od_har_window(const od_har_user *user, od_har_activity a,
                   od_rng *rng, float *out);

/* Generate windows_per_activity windows of every activity for users
 * first_user .. first_user + users - 1, in user order, into *out (groups
 * are user numbers). Deterministic in seed: same seed, same bytes. */
od_status od_har_generate(uint64_t seed, int first_user, int users,
                          int windows_per_activity, const char *name,
                          od_dataset *out);

/* The workload's loader: OD_HAR_TRAIN_USERS training users, the next
 * OD_HAR_TEST_USERS for testing, opts->seed drives everything; the subsets
 * keep the first windows after a seeded shuffle (so a small subset still
 * holds every activity). */
od_status od_har_load(const od_workload_opts *opts, od_dataset *train,
                      od_dataset *test);

/* har-cnn: (N, 3, 128) -> (N, 3, 1, 128) -> conv 1x9 /2 16 -> conv 1x5 /2
 * 32 -> conv 1x5 /2 32 -> flatten 384 -> fc 64 -> fc 7 (33,287
 * parameters). */
od_status od_har_build_cnn(od_ctx *ctx, od_model **out);

/* od_workload.baseline: multinomial logistic regression on the 384 raw
 * values of a window (standardised with the training set's mean and
 * deviation), trained by SGD with a fixed seed; baseline_accuracy and
 * baseline_loss on test. */
od_status od_har_logreg_baseline(const od_dataset *train,
                                 const od_dataset *test, od_metrics *out);

#endif
