/* Optimisers and learning-rate schedules.
 *
 * The update rules follow PyTorch's torch.optim step for step, so that a run
 * here and the same run in PyTorch agree to rounding:
 *
 *  SGD    g = grad + wd * p                      (coupled L2 decay)
 *         b = g on a parameter's first step, else b = mu * b + (1 - damp) * g
 *         d = g + mu * b (Nesterov) or d = b     (only when mu != 0)
 *         p = p - lr * d
 *  Adam   g = grad + wd * p                      (coupled L2 decay)
 *         m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g^2
 *         p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *  AdamW  p = p * (1 - lr * wd), then Adam's update with g = grad
 *
 * t counts the steps a parameter has taken (its own count, as PyTorch keeps
 * one per parameter). Only trainable parameters that have a gradient are
 * updated; frozen ones are neither read nor written. State lives in the
 * arena under the optimiser-state category: allocated at creation for the
 * parameters trainable then, and on the first step of a parameter made
 * trainable later. */
#ifndef ONDEV_ENGINE_OPTIM_H
#define ONDEV_ENGINE_OPTIM_H

#include "engine/model.h"

typedef enum od_optim_kind {
    OD_OPTIM_SGD,
    OD_OPTIM_ADAM,
    OD_OPTIM_ADAMW
} od_optim_kind;

typedef struct od_optim_config {
    od_optim_kind kind;
    float lr;            /* used when od_optim_step is given lr < 0 */
    float momentum;      /* SGD */
    float dampening;     /* SGD */
    float weight_decay;  /* coupled (SGD, Adam) or decoupled (AdamW) */
    int nesterov;        /* SGD; needs momentum > 0 and dampening == 0 */
    float beta1, beta2;  /* Adam, AdamW */
    float eps;           /* Adam, AdamW */
} od_optim_config;

/* PyTorch's defaults for the kind: SGD lr 0.01 (PyTorch has none; 0.01 is a
 * common choice), no momentum, no decay; Adam lr 1e-3, betas (0.9, 0.999),
 * eps 1e-8, no decay; AdamW the same with weight decay 0.01. */
od_optim_config od_optim_config_default(od_optim_kind kind);

/* OD_ERR_INVALID with a message naming the field when a value is out of
 * range (negative lr, beta outside [0, 1), Nesterov without momentum...). */
od_status od_optim_config_check(const od_optim_config *cfg);

/* "sgd", "adam", "adamw" (any case). Unknown names give OD_ERR_INVALID with
 * the list of valid ones. */
od_status od_optim_kind_parse(const char *name, od_optim_kind *out);
const char *od_optim_kind_name(od_optim_kind kind);

typedef struct od_optim od_optim;

/* Create an optimiser over every parameter of m. The optimiser keeps ctx
 * (arena for its state, pool for the update, trace for the cost record) and
 * m; both must outlive it, and m must not gain parameters afterwards. */
od_status od_optim_create(od_ctx *ctx, od_model *m, const od_optim_config *cfg,
                          od_optim **out);

/* One update of every trainable parameter from its gradient (gradients are
 * not cleared). lr < 0 uses the configured rate. Appends one cost record
 * (kind optim, phase update). OD_ERR_NOMEM when state for a newly trainable
 * parameter does not fit the budget, OD_ERR_INVALID for a NaN or infinite
 * lr; nothing is updated then. */
od_status od_optim_step(od_optim *o, float lr);

/* Whether the update od_optim_step(o, lr) would make is p = beta p + alpha
 * grad for every parameter, so that a backward pass may apply it as it
 * forms the gradients (od_model_backward_apply): SGD without momentum,
 * with alpha = -lr and beta = 1 - lr wd. lr < 0 uses the configured rate.
 * Sets alpha and beta when it is. Parameters whose `applied` flag is set
 * are skipped by the next od_optim_step, which clears the flag and counts
 * their step. */
int od_optim_fusable(const od_optim *o, float lr, float *alpha, float *beta);

void od_optim_destroy(od_optim *o);

/* ---- State, for checkpoints ---------------------------------------------- */
const od_optim_config *od_optim_get_config(const od_optim *o);
od_model *od_optim_model(const od_optim *o);
/* Calls of od_optim_step so far. */
uint64_t od_optim_step_count(const od_optim *o);
void od_optim_set_step_count(od_optim *o, uint64_t steps);
/* State buffers per parameter: 0 (SGD without momentum), 1 (SGD momentum
 * buffer) or 2 (Adam and AdamW: first and second moments). */
int od_optim_slot_count(const od_optim *o);
/* Buffer `slot` of parameter `index` (same shape as its value), or NULL
 * when that parameter has no state. */
float *od_optim_state(const od_optim *o, int index, int slot);
/* Steps parameter `index` has taken (0: its buffers are not initialised). */
uint64_t od_optim_param_steps(const od_optim *o, int index);
void od_optim_set_param_steps(od_optim *o, int index, uint64_t steps);
/* Allocate (zeroed) the state of parameter `index` if it has none. */
od_status od_optim_state_ensure(od_optim *o, int index);

/* ---- Learning-rate schedules --------------------------------------------- */
typedef enum od_sched_kind {
    OD_SCHED_CONSTANT,
    OD_SCHED_STEP,
    OD_SCHED_COSINE
} od_sched_kind;

/* Steps count from 0. With warmup_steps = W > 0, step s < W gets
 * base_lr * (s + 1) / W, and the schedule proper starts at step W with its
 * own step t = s - W (as PyTorch's SequentialLR chains a warmup before it):
 *  constant  base_lr
 *  step      base_lr * gamma^floor(t / step_size)           (StepLR)
 *  cosine    min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2 with
 *            T = total_steps - W (CosineAnnealingLR's closed form); min_lr
 *            from step total_steps on. total_steps counts the warmup. */
typedef struct od_schedule {
    od_sched_kind kind;
    float base_lr;
    long step_size;     /* step */
    float gamma;        /* step */
    long total_steps;   /* cosine */
    float min_lr;       /* cosine */
    long warmup_steps;  /* 0: none */
} od_schedule;

/* OD_ERR_INVALID naming the field when the schedule cannot be evaluated. */
od_status od_schedule_check(const od_schedule *s);
/* The learning rate at `step` (>= 0) of a schedule that passes the check. */
float od_schedule_lr(const od_schedule *s, long step);

/* "constant", "step", "cosine" (any case). */
od_status od_sched_kind_parse(const char *name, od_sched_kind *out);
const char *od_sched_kind_name(od_sched_kind kind);

#endif
