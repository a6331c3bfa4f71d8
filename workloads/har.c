#include "workloads/har.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const od_har_class_names[OD_HAR_CLASSES] = {
    "walking", "walking_upstairs", "walking_downstairs", "running",
    "sitting", "standing", "lying",
};

#define OD__PI 3.14159265358979323846
#define OD__DT_S (1.0 / OD_HAR_RATE_HZ)

/* Streams of the seed: one per user for the user's parameters, one per
 * (user, activity) for the windows, one for subsets. */
#define OD__STREAM_USER 0x48415255ull
#define OD__STREAM_WINDOWS 0x48415257ull
#define OD__STREAM_SUBSET 0x48415253ull

static double od__uniform(od_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * od_rng_uniform(r);
}

/* out = a b for 3x3 matrices. */
static void od__matmul3(const double a[3][3], const double b[3][3],
                        double out[3][3])
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            out[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] +
                        a[i][2] * b[2][j];
}

/* Rotation by yaw about z, then pitch about y, then roll about x:
 * R = Rz(yaw) Ry(pitch) Rx(roll). */
static void od__rotation(double yaw, double pitch, double roll,
                         double r[3][3])
{
    double cz = cos(yaw), sz = sin(yaw), cy = cos(pitch), sy = sin(pitch);
    double cx = cos(roll), sx = sin(roll);
    const double rz[3][3] = {{cz, -sz, 0}, {sz, cz, 0}, {0, 0, 1}};
    const double ry[3][3] = {{cy, 0, sy}, {0, 1, 0}, {-sy, 0, cy}};
    const double rx[3][3] = {{1, 0, 0}, {0, cx, -sx}, {0, sx, cx}};
    double t[3][3];
    od__matmul3(rz, ry, t);
    od__matmul3(t, rx, r);
}

void od_har_user_make(uint64_t seed, int u, od_har_user *user)
{
    OD_ASSERT(user && u >= 0);
    od_rng r;
    od_rng_seed(&r, seed, OD__STREAM_USER + ((uint64_t)u << 8));
    memset(user, 0, sizeof *user);

    /* Gait: step frequency and heel-strike size vary between people. */
    user->cadence_hz = 1.85 + 0.12 * od_rng_normal(&r);
    user->run_cadence_hz = 2.7 + 0.15 * od_rng_normal(&r);
    user->impact_g = od__uniform(&r, 0.45, 0.75);
    user->harmonic[0] = od__uniform(&r, 0.15, 0.3);
    user->harmonic[1] = od__uniform(&r, 0.05, 0.15);
    user->harmonic[2] = od__uniform(&r, 0.0, 0.08);
    user->lean_rad = 0.05 * od_rng_normal(&r);
    user->sit_pitch_rad = 1.25 + 0.1 * od_rng_normal(&r);

    /* Placement: the phone's attitude in the pocket: screen towards the
     * thigh or away from it, turned and tilted a little either way. */
    double yaw = (od_rng_uniform(&r) < 0.5 ? 0 : OD__PI) +
                 0.3 * od_rng_normal(&r);
    double pitch = 0.15 * od_rng_normal(&r);
    double roll = 0.15 * od_rng_normal(&r);
    od__rotation(yaw, pitch, roll, user->phone_rot);

    /* Sensor: a MEMS accelerometer's offset, scale error and noise. */
    for (int k = 0; k < 3; k++) {
        user->bias_g[k] = 0.03 * od_rng_normal(&r);
        user->gain[k] = 1.0 + 0.02 * od_rng_normal(&r);
    }
    user->noise_g = od__uniform(&r, 0.01, 0.03);
}

/* The gait of one window: what changes between walking, stairs and
 * running. */
typedef struct od__gait {
    double step_hz;      /* steps per second */
    double impact_g;     /* heel-strike peak, vertical */
    double width_s;      /* heel-strike duration (Gaussian sigma) */
    double vert_scale;   /* scale of the smooth vertical harmonics */
    double fwd_g;        /* fore-aft oscillation at the step frequency */
    double lat_g;        /* side-to-side sway at half the step frequency */
    double brake;        /* fore-aft share of each heel strike (braking) */
} od__gait;

/* Body-frame dynamic acceleration (3, 128) of a gait: x forward, y left,
 * z up. The vertical channel averages to zero, as the body does not
 * accelerate on average. */
static void od__gait_signal(const od_har_user *u, const od__gait *g,
                            od_rng *r, double dyn[3][OD_HAR_WINDOW])
{
    double f = g->step_hz;
    double phase = od__uniform(r, 0, 2 * OD__PI);
    double lat_phase = od__uniform(r, 0, 2 * OD__PI);
    double psi[3];
    for (int h = 0; h < 3; h++)
        psi[h] = od__uniform(r, -0.3, 0.3);

    /* Heel strikes at each step, with step-to-step timing jitter. */
    double strikes[16];
    int ns = 0;
    for (double t = -phase / (2 * OD__PI * f);
         t < OD_HAR_WINDOW * OD__DT_S + 0.2 && ns < 16; t += 1.0 / f)
        strikes[ns++] = t + 0.012 * od_rng_normal(r);
    double pulse_mean = g->impact_g * g->width_s * sqrt(2 * OD__PI) * f;

    for (int i = 0; i < OD_HAR_WINDOW; i++) {
        double t = i * OD__DT_S, w = 2 * OD__PI * f * t + phase;
        double v = 0;
        for (int h = 0; h < 3; h++)
            v += g->vert_scale * u->harmonic[h] * cos((h + 1) * w + psi[h]);
        double pulse = 0;
        for (int k = 0; k < ns; k++) {
            double d = (t - strikes[k]) / g->width_s;
            if (fabs(d) < 6)
                pulse += g->impact_g * exp(-0.5 * d * d);
        }
        dyn[2][i] = v + pulse - pulse_mean;
        dyn[0][i] = g->fwd_g * sin(w) - g->brake * (pulse - pulse_mean);
        dyn[1][i] = g->lat_g * cos(0.5 * w + lat_phase);
    }
}

/* Small postural sway or breathing: a slow sinusoid per axis. */
static void od__sway(double amp_g, od_rng *r, double dyn[3][OD_HAR_WINDOW])
{
    for (int k = 0; k < 3; k++) {
        double f = od__uniform(r, 0.2, 0.8);
        double ph = od__uniform(r, 0, 2 * OD__PI);
        double a = amp_g * od__uniform(r, 0.5, 1.5);
        for (int i = 0; i < OD_HAR_WINDOW; i++)
            dyn[k][i] = a * sin(2 * OD__PI * f * i * OD__DT_S + ph);
    }
}

void od_har_window(const od_har_user *u, od_har_activity a, od_rng *r,
                   float *out)
{
    OD_ASSERT(u && r && out && a >= 0 && a < OD_HAR_CLASSES);
    double dyn[3][OD_HAR_WINDOW];
    /* The thigh's attitude: tilt of its long axis from the vertical, the
     * direction (azimuth about that axis) the front of the thigh faces
     * relative to up, and a swing of the tilt at the stride frequency
     * (each leg swings once per two steps). */
    double tilt = u->lean_rad, azimuth = 0, swing = 0, swing_bias = 0;
    double jitter = 1.0 + 0.04 * od_rng_normal(r);
    double size = 1.0 + 0.1 * od_rng_normal(r);
    od__gait g = {0};

    /* Step 1: the activity's movement and posture, in the thigh's frame
     * (x to the front of the thigh, y to its left, z along it, up). */
    switch (a) {
    case OD_HAR_WALKING:
        g = (od__gait){u->cadence_hz * jitter, u->impact_g * size, 0.035,
                       1.0, 0.12, 0.06, 0.3};
        swing = 0.35;
        break;
    case OD_HAR_UPSTAIRS:
        /* Slower steps, a high knee lift, more vertical work and softer
         * landings. */
        g = (od__gait){0.85 * u->cadence_hz * jitter,
                       0.55 * u->impact_g * size, 0.045, 1.8, 0.08, 0.07,
                       0.15};
        swing = 0.55;
        swing_bias = 0.35;
        break;
    case OD_HAR_DOWNSTAIRS:
        /* Quicker steps, a short swing and hard landings on each stair. */
        g = (od__gait){1.08 * u->cadence_hz * jitter,
                       1.8 * u->impact_g * size, 0.022, 0.8, 0.1, 0.08,
                       0.45};
        swing = 0.25;
        swing_bias = 0.1;
        break;
    case OD_HAR_RUNNING:
        g = (od__gait){u->run_cadence_hz * jitter,
                       2.8 * u->impact_g * size, 0.03, 3.0, 0.35, 0.12,
                       0.35};
        swing = 0.7;
        swing_bias = 0.2;
        break;
    case OD_HAR_SITTING:
        /* Thigh near horizontal, its front facing up. */
        tilt = u->sit_pitch_rad + 0.08 * od_rng_normal(r);
        azimuth = 0.1 * od_rng_normal(r);
        od__sway(0.004, r, dyn);
        break;
    case OD_HAR_STANDING:
        tilt += 0.05 * od_rng_normal(r);
        azimuth = 0.1 * od_rng_normal(r);
        od__sway(0.012, r, dyn);
        break;
    case OD_HAR_LYING:
        /* On one side (the thigh's front faces sideways) or on the back
         * (flat, straighter than when sitting). */
        tilt = OD__PI / 2 + 0.1 * od_rng_normal(r);
        if (od_rng_uniform(r) < 0.6)
            azimuth = (od_rng_uniform(r) < 0.5 ? -1 : 1) *
                      (OD__PI / 2 + 0.2 * od_rng_normal(r));
        else
            azimuth = 0.15 * od_rng_normal(r);
        od__sway(0.002, r, dyn);
        break;
    }
    double swing_phase = od__uniform(r, 0, 2 * OD__PI);
    if (a <= OD_HAR_RUNNING)
        od__gait_signal(u, &g, r, dyn);

    /* Step 2: the phone's attitude: its place in the pocket for this user,
     * shifted a few degrees from window to window. */
    double shift[3][3], rot[3][3];
    od__rotation(0.07 * od_rng_normal(r), 0.07 * od_rng_normal(r),
                 0.07 * od_rng_normal(r), shift);
    od__matmul3(u->phone_rot, shift, rot);

    /* Step 3: the sensor reads gravity as +1 g up plus the movement,
     * with gain, offset, slow drift and white noise. */
    double drift[3], walk[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        drift[k] = 0.01 * od_rng_normal(r) / OD_HAR_WINDOW;
    for (int i = 0; i < OD_HAR_WINDOW; i++) {
        double t = i * OD__DT_S;
        double p = tilt + swing_bias * (swing > 0) +
                   swing * sin(OD__PI * g.step_hz * t + swing_phase);
        double s[3] = {
            sin(p) * cos(azimuth) + dyn[0][i],
            sin(p) * sin(azimuth) + dyn[1][i],
            cos(p) + dyn[2][i],
        };
        for (int k = 0; k < 3; k++) {
            double v = rot[k][0] * s[0] + rot[k][1] * s[1] +
                       rot[k][2] * s[2];
            walk[k] += 0.0003 * od_rng_normal(r);
            v = u->gain[k] * v + u->bias_g[k] + drift[k] * i + walk[k] +
                u->noise_g * od_rng_normal(r);
            out[(size_t)k * OD_HAR_WINDOW + (size_t)i] = (float)v;
        }
    }
}

od_status od_har_generate(uint64_t seed, int first_user, int users,
                          int windows_per_activity, const char *name,
                          od_dataset *out)
{
    OD_ASSERT(out);
    if (first_user < 0 || users <= 0 || windows_per_activity <= 0 ||
        (int64_t)users * OD_HAR_CLASSES * windows_per_activity > INT32_MAX)
        return od_fail(OD_ERR_INVALID, "activity data needs at least one "
                       "user and one window per activity (got %d users, %d "
                       "windows)", users, windows_per_activity);
    int n = users * OD_HAR_CLASSES * windows_per_activity;
    const int dims[2] = {OD_HAR_AXES, OD_HAR_WINDOW};
    OD_TRY(od_dataset_alloc(out, name, n, 2, dims, 1, OD_HAR_CLASSES, 1));

    int i = 0;
    for (int u = first_user; u < first_user + users; u++) {
        od_har_user user;
        od_har_user_make(seed, u, &user);
        for (int a = 0; a < OD_HAR_CLASSES; a++) {
            od_rng r;
            od_rng_seed(&r, seed, OD__STREAM_WINDOWS +
                                      ((uint64_t)u << 8) + (uint64_t)a);
            for (int w = 0; w < windows_per_activity; w++, i++) {
                od_har_window(&user, (od_har_activity)a, &r,
                              out->x + (size_t)i * out->sample_size);
                out->y[i] = a;
                out->group[i] = u;
            }
        }
    }
    return od_dataset_set_class_names(out, od_har_class_names);
}

/* Keep limit samples of *d chosen by a seeded shuffle, in their original
 * order (0 or >= n: keep all). */
static od_status od__har_subset(od_dataset *d, int limit, uint64_t seed)
{
    if (limit <= 0 || limit >= d->n)
        return OD_OK;
    int32_t *idx = malloc((size_t)d->n * sizeof *idx);
    if (!idx)
        return od_fail(OD_ERR_NOMEM, "out of memory");
    for (int i = 0; i < d->n; i++)
        idx[i] = i;
    od_rng r;
    od_rng_seed(&r, seed, OD__STREAM_SUBSET);
    od_rng_shuffle(&r, idx, d->n);
    /* Back into ascending order: users stay contiguous. */
    char *keep = calloc((size_t)d->n, 1);
    if (!keep) {
        free(idx);
        return od_fail(OD_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < limit; i++)
        keep[idx[i]] = 1;
    int k = 0;
    for (int i = 0; i < d->n; i++)
        if (keep[i])
            idx[k++] = i;
    free(keep);
    od_dataset sub;
    od_status st = od_dataset_subset(d, idx, limit, NULL, &sub);
    free(idx);
    if (st != OD_OK)
        return st;
    od_dataset_free(d);
    *d = sub;
    return OD_OK;
}

od_status od_har_load(const od_workload_opts *opts, od_dataset *train,
                      od_dataset *test)
{
    OD_ASSERT(opts && train && test);
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (opts->train_subset < 0 || opts->test_subset < 0)
        return od_fail(OD_ERR_INVALID, "subset sizes must not be negative");
    od_status st = od_har_generate(opts->seed, 0, OD_HAR_TRAIN_USERS,
                                   OD_HAR_WINDOWS_PER_ACTIVITY, "har/train",
                                   train);
    if (st == OD_OK)
        st = od_har_generate(opts->seed, OD_HAR_TRAIN_USERS,
                             OD_HAR_TEST_USERS, OD_HAR_WINDOWS_PER_ACTIVITY,
                             "har/test", test);
    if (st == OD_OK)
        st = od__har_subset(train, opts->train_subset, opts->seed);
    if (st == OD_OK)
        st = od__har_subset(test, opts->test_subset, opts->seed + 1);
    if (st != OD_OK) {
        od_dataset_free(train);
        od_dataset_free(test);
    }
    return st;
}

/* ---- Model --------------------------------------------------------------- */

#define OD__APPEND(create)                     \
    do {                                       \
        od_layer *l = NULL;                    \
        st = (create);                         \
        if (st == OD_OK)                       \
            st = od_model_add(m, l);           \
        if (st != OD_OK)                       \
            goto fail;                         \
    } while (0)

od_status od_har_build_cnn(od_ctx *ctx, od_model **out)
{
    OD_ASSERT(ctx && out);
    *out = NULL;
    od_model *m = NULL;
    OD_TRY(od_model_create(ctx, &m));
    od_status st = OD_OK;

    /* (N, 3, 128) -> (N, 3, 1, 128): time runs along the width. */
    const int img[3] = {OD_HAR_AXES, 1, OD_HAR_WINDOW};
    OD__APPEND(od_reshape_create("as_image", 3, img, &l));
    /* -> (N, 16, 1, 60) -> (N, 32, 1, 28) -> (N, 32, 1, 12) */
    OD__APPEND(od_conv2d_create(ctx, "conv1", OD_HAR_AXES, 16, 1, 9, 2, 0, 1,
                                &l));
    OD__APPEND(od_activation_create("relu1", OD_ACT_RELU, &l));
    OD__APPEND(od_conv2d_create(ctx, "conv2", 16, 32, 1, 5, 2, 0, 1, &l));
    OD__APPEND(od_activation_create("relu2", OD_ACT_RELU, &l));
    OD__APPEND(od_conv2d_create(ctx, "conv3", 32, 32, 1, 5, 2, 0, 1, &l));
    OD__APPEND(od_activation_create("relu3", OD_ACT_RELU, &l));
    /* -> (N, 384) -> (N, 64) -> (N, 7) */
    OD__APPEND(od_flatten_create("flatten", &l));
    OD__APPEND(od_linear_create(ctx, "fc1", 32 * 12, 64, 1, &l));
    OD__APPEND(od_activation_create("relu4", OD_ACT_RELU, &l));
    OD__APPEND(od_linear_create(ctx, "fc2", 64, OD_HAR_CLASSES, 1, &l));

    const int in[3] = {1, OD_HAR_AXES, OD_HAR_WINDOW};
    int out_ndim = 0, out_dims[OD_MAX_DIMS] = {0};
    OD_ASSERT(od_model_check_shape(m, 3, in, &out_ndim, out_dims) == OD_OK);
    OD_ASSERT(out_ndim == 2 && out_dims[1] == OD_HAR_CLASSES);
    *out = m;
    return OD_OK;
fail:
    od_model_destroy(m);
    return st;
}

/* ---- Baseline: logistic regression --------------------------------------- */

#define OD__LR_EPOCHS 30
#define OD__LR_BATCH 32
#define OD__LR_RATE 0.05
#define OD__LR_L2 1e-4

/* Class scores z (C) of standardised features f (D) under W (C, D), b (C),
 * turned into probabilities in place. */
static void od__lr_probs(const double *W, const double *b, const double *f,
                         int D, int C, double *z)
{
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < C; c++) {
        double s = b[c];
        for (int k = 0; k < D; k++)
            s += W[(size_t)c * (size_t)D + (size_t)k] * f[k];
        z[c] = s;
        mx = s > mx ? s : mx;
    }
    for (int c = 0; c < C; c++)
        sum += (z[c] = exp(z[c] - mx));
    for (int c = 0; c < C; c++)
        z[c] /= sum;
}

od_status od_har_logreg_baseline(const od_dataset *train,
                                 const od_dataset *test, od_metrics *out)
{
    OD_ASSERT(train && test && out);
    if (train->labels_per_sample != 1 || test->labels_per_sample != 1 ||
        train->sample_size != test->sample_size ||
        train->num_classes != test->num_classes || train->n == 0)
        return od_fail(OD_ERR_MISMATCH, "logistic regression needs one "
                       "label per sample and matching train and test "
                       "shapes");
    const int D = (int)train->sample_size, C = train->num_classes;
    double *mean = calloc((size_t)D, sizeof *mean);          /* (D) */
    double *scale = calloc((size_t)D, sizeof *scale);        /* (D) */
    double *W = calloc((size_t)C * (size_t)D, sizeof *W);    /* (C, D) */
    double *gW = calloc((size_t)C * (size_t)D, sizeof *gW);  /* (C, D) */
    double *b = calloc((size_t)C, sizeof *b);                 /* (C) */
    double *gb = calloc((size_t)C, sizeof *gb);               /* (C) */
    double *f = calloc((size_t)D, sizeof *f), *z = calloc((size_t)C, sizeof *z);
    int32_t *order = malloc((size_t)train->n * sizeof *order);
    od_status st = OD_OK;
    if (!mean || !scale || !W || !gW || !b || !gb || !f || !z || !order) {
        st = od_fail(OD_ERR_NOMEM, "out of memory for the baseline");
        goto done;
    }

    /* Standardise each input with the training set's mean and deviation. */
    for (int i = 0; i < train->n; i++)
        for (int k = 0; k < D; k++)
            mean[k] += train->x[(size_t)i * (size_t)D + (size_t)k];
    for (int k = 0; k < D; k++)
        mean[k] /= train->n;
    for (int i = 0; i < train->n; i++)
        for (int k = 0; k < D; k++) {
            double d = train->x[(size_t)i * (size_t)D + (size_t)k] - mean[k];
            scale[k] += d * d;
        }
    for (int k = 0; k < D; k++)
        scale[k] = 1.0 / sqrt(scale[k] / train->n + 1e-12);

    /* Mini-batch SGD on the mean cross-entropy plus an L2 penalty. */
    od_rng r;
    od_rng_seed(&r, 0x4c4f4752ull, 0);
    for (int i = 0; i < train->n; i++)
        order[i] = i;
    for (int e = 0; e < OD__LR_EPOCHS; e++) {
        od_rng_shuffle(&r, order, train->n);
        double lr = OD__LR_RATE / (1.0 + 0.2 * e);
        for (int s = 0; s < train->n; s += OD__LR_BATCH) {
            int nb = train->n - s < OD__LR_BATCH ? train->n - s
                                                 : OD__LR_BATCH;
            memset(gW, 0, (size_t)C * (size_t)D * sizeof *gW);
            memset(gb, 0, (size_t)C * sizeof *gb);
            for (int j = 0; j < nb; j++) {
                int i = order[s + j];
                const float *x = train->x + (size_t)i * (size_t)D;
                for (int k = 0; k < D; k++)
                    f[k] = (x[k] - mean[k]) * scale[k];
                od__lr_probs(W, b, f, D, C, z);
                z[train->y[i]] -= 1.0;
                for (int c = 0; c < C; c++) {
                    gb[c] += z[c];
                    for (int k = 0; k < D; k++)
                        gW[(size_t)c * (size_t)D + (size_t)k] += z[c] * f[k];
                }
            }
            for (int c = 0; c < C; c++) {
                b[c] -= lr * gb[c] / nb;
                for (int k = 0; k < D; k++) {
                    size_t o = (size_t)c * (size_t)D + (size_t)k;
                    W[o] -= lr * (gW[o] / nb + OD__LR_L2 * W[o]);
                }
            }
        }
    }

    /* Score the test set. */
    od_metric_acc acc;
    od_metric_acc_init(&acc);
    for (int i = 0; i < test->n; i++) {
        const float *x = test->x + (size_t)i * (size_t)D;
        for (int k = 0; k < D; k++)
            f[k] = (x[k] - mean[k]) * scale[k];
        od__lr_probs(W, b, f, D, C, z);
        od_metric_acc_add_probs(&acc, z, C, test->y[i]);
    }
    snprintf(out->baseline, sizeof out->baseline, "logistic regression");
    od_metrics_put(out, "baseline_accuracy", od_metric_acc_top1(&acc));
    od_metrics_put(out, "baseline_loss",
                   acc.rows ? acc.nll_nats / (double)acc.rows : NAN);

done:
    free(mean);
    free(scale);
    free(W);
    free(gW);
    free(b);
    free(gb);
    free(f);
    free(z);
    free(order);
    return st;
}
