/* DP-SGD: sampling, per-example clipping and Gaussian noise around the
 * engine's forward and backward passes.
 *
 * One step of DP-SGD (Abadi et al. 2016) with clipping norm C and noise
 * multiplier σ:
 *
 *   1. draw a batch: Poisson (every example joins with probability q, so
 *      the batch size varies and may be 0) or the next slice of a shuffled
 *      order (fixed size);
 *   2. per example, the gradient g_i of its own loss, clipped to norm C:
 *      g_i min(1, C / ||g_i||) (engine/pergrad.h: norms without
 *      materialising where the layer allows, then one re-weighted
 *      backward); physical micro-batches add up to the logical batch;
 *   3. the sum plus N(0, σ² C² I) noise from privacy/noise.h;
 *   4. divided by the expected batch size (q N for Poisson, the batch size
 *      for shuffling), ready for the optimiser.
 *
 * Self-checks at run time: every clipped norm is at most C, and the number
 * of examples Poisson sampling has drawn so far stays within six standard
 * deviations of its expectation. Either failing is a bug and returns a
 * status naming it. */
#ifndef ONDEV_PRIVACY_DPSGD_H
#define ONDEV_PRIVACY_DPSGD_H

#include <stdint.h>

#include "engine/model.h"
#include "privacy/accountant.h"

typedef struct od_dpsgd_config {
    double clip_norm;         /* C > 0 */
    double noise_multiplier;  /* σ >= 0: noise std / C */
    od_sampling sampling;
    int dataset_size;         /* N >= 1 */
    int batch_size;           /* expected (Poisson) or fixed batch size */
    int microbatch;           /* examples per physical pass; 0: all */
    uint64_t seed;            /* noise key and Poisson draws */
    /* For tests of the audit only: skip clipping while still claiming the
     * guarantee of C. Never set by the harness. */
    int test_disable_clipping;
} od_dpsgd_config;

/* Copies a batch into memory from the model's arena: x (n, sample dims...)
 * and n labels (times labels per sample) for the examples idx[0..n). */
typedef od_status (*od_dpsgd_fetch_fn)(void *arg, const int32_t *idx, int n,
                                       od_tensor *x, int32_t **labels);

typedef struct od_dpsgd_stats {
    int64_t steps;             /* od_dpsgd_step calls */
    int64_t examples;          /* examples seen over all steps */
    int64_t clipped;           /* of which had a norm above C */
    int64_t empty_batches;     /* Poisson draws that came out empty */
    double norm_sum;           /* sum of per-example norms (before clip) */
    double norm_max;
    int last_batch;            /* examples in the last step */
} od_dpsgd_stats;

typedef struct od_dpsgd od_dpsgd;

/* OD_ERR_INVALID naming the field for a bad configuration. */
od_status od_dpsgd_create(const od_dpsgd_config *c, od_dpsgd **out);
void od_dpsgd_destroy(od_dpsgd *d);

/* q: batch_size / dataset_size (clamped to 1). */
double od_dpsgd_sampling_rate(const od_dpsgd *d);
/* What the sum is divided by: q N for Poisson, batch_size for shuffle. */
double od_dpsgd_expected_batch(const od_dpsgd *d);
const od_dpsgd_stats *od_dpsgd_get_stats(const od_dpsgd *d);

/* The Poisson batch of a step into idx (capacity dataset_size), in
 * increasing order; returns its size. The same (seed, step) always draws
 * the same batch. */
int od_dpsgd_poisson_batch(const od_dpsgd *d, uint64_t step, int32_t *idx);

/* Examples per physical pass from now on (0: the whole batch); the
 * result is the same up to rounding, only the memory needed changes. */
void od_dpsgd_set_microbatch(od_dpsgd *d, int microbatch);

/* One step's private gradient into the model's parameter gradients
 * (zeroed first), ready for od_optim_step. With Poisson sampling the batch
 * is drawn here and idx, n are ignored (pass NULL, 0); with shuffling,
 * idx[0..n) is the batch. *loss is the mean loss over *count labelled rows
 * of the batch (0 over 0 for an empty batch, which still adds noise). */
od_status od_dpsgd_step(od_dpsgd *d, od_model *m, uint64_t step,
                        const int32_t *idx, int n, od_dpsgd_fetch_fn fetch,
                        void *arg, double *loss, int *count);
/* As od_dpsgd_step, followed by a plain SGD step p = beta p + alpha g
 * (od_optim_fusable's alpha and beta) that the layers able to take it
 * (linear) apply during the step itself, noise included, when the batch
 * goes in one pass (see od_model_backward_apply); their parameters'
 * `applied` flags are set and their gradients left unformed, and the
 * od_optim_step that follows updates the rest. */
od_status od_dpsgd_step_apply(od_dpsgd *d, od_model *m, uint64_t step,
                              const int32_t *idx, int n,
                              od_dpsgd_fetch_fn fetch, void *arg,
                              float alpha, float beta, double *loss,
                              int *count);

/* Per-example loss gradients from logits (n, ..., classes): like
 * od_model_xent, but each example's rows are scaled so that example i's
 * gradient is that of its own mean loss over its labelled rows. */
od_status od_dpsgd_example_xent(od_model *m, const od_tensor *logits,
                                const int32_t *labels, double *mean_loss,
                                int *count, od_tensor *dlogits);

#endif
