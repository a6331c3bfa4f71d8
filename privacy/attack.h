/* Gradient inversion: what one example's model update gives away.
 *
 * For a first layer z = W x + b (W (out, in), b (out)) the gradient of a
 * single example's loss is dW = d x^T and db = d, with d = dL/dz. Every row
 * k with d_k != 0 therefore holds the input exactly: dW[k, :] / db[k] = x.
 * The least-squares combination of all rows, sum_k db_k dW[k, :] / sum_k
 * db_k^2, is exact as well and uses every row's signal. Clipping scales
 * dW and db alike, so it hides nothing; the noise of DP-SGD does.
 *
 * For softmax cross-entropy the last layer's bias gradient is p - onehot,
 * negative only at the true label, which gives the label away too. */
#ifndef ONDEV_PRIVACY_ATTACK_H
#define ONDEV_PRIVACY_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model.h"

/* x (in) = sum_k db_k dW[k, :] / sum_k db_k^2 from dw (out, in), db (out).
 * OD_ERR_INVALID when db is all zero (nothing to invert). */
od_status od_attack_invert_linear(const float *dw, const float *db, int out,
                                  int in, float *x);

/* The label whose bias-gradient entry is the smallest (the only negative
 * one for a single example's softmax cross-entropy). */
int od_attack_infer_label(const float *db_last, int classes);

/* Peak signal-to-noise ratio of rec against ref in dB,
 * 10 log10(peak^2 / MSE); +inf for an exact match. */
double od_psnr(const float *ref, const float *rec, size_t n, double peak);

typedef struct od_attack_config {
    int dp;                   /* 0: the plain gradient; 1: DP-SGD's */
    double clip_norm;         /* C, with dp */
    double noise_multiplier;  /* σ, with dp */
    uint64_t seed;            /* of the noise */
} od_attack_config;

typedef struct od_attack_result {
    double psnr_db;       /* of the reconstruction, peak 1 (inputs in [0, 1]) */
    double max_abs_err;
    int label;            /* the true label */
    int label_guess;      /* from the last layer's bias gradient */
    double grad_norm;     /* of the example's gradient before clipping */
} od_attack_result;

/* One client's update from a single example x (1, ...) with its label, on
 * model m (first layer with parameters: linear with bias; last: linear with
 * bias), then the attack on that update: x_rec (x->size) receives the
 * reconstruction. With dp the update is one DP-SGD step on a batch of one:
 * the gradient clipped to C plus N(0, σ² C²) noise. The model's gradients
 * hold the update afterwards. */
od_status od_attack_run(od_model *m, const od_tensor *x, int32_t label,
                        const od_attack_config *c, float *x_rec,
                        od_attack_result *out);

#endif
