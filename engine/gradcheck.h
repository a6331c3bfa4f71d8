/* A finite-difference gradient checker, for layers and whole models.
 *
 * It compares the analytic gradients of backward (with respect to the
 * input and to every trainable parameter) with central differences
 * (f(v + h) - f(v - h)) / 2h of a scalar loss accumulated in double:
 *  - for a layer, L = sum_i y_i * r_i with a fixed probe r (given, or drawn
 *    uniformly from [-1, 1)), so that backward starts from dy = r;
 *  - for a model, L = the mean softmax cross-entropy of od_model_xent.
 *
 * The error of one coordinate is |a - n| / max(|a|, |n|, rel_floor * s),
 * with a the analytic value, n the numerical one and s the largest |a| in
 * the same tensor: coordinates far below the tensor's scale are judged
 * against that scale, where float round-off of the loss would otherwise
 * dominate. Training mode is used (dropout masks repeat within a step).
 *
 * Functions that are not differentiable everywhere (ReLU, max pooling) give
 * wrong central differences next to a kink; with skip_kinks set, a
 * coordinate is counted in `skipped` instead of compared when its error
 * exceeds kink_tol and the difference of its one-sided slopes
 * (f(v+h) - f(v)) / h and (f(v) - f(v-h)) / h accounts for the whole
 * disagreement |a - n| (a single kink within h gives exactly half of it).
 * A wrong gradient away from kinks is still caught. */
#ifndef ONDEV_ENGINE_GRADCHECK_H
#define ONDEV_ENGINE_GRADCHECK_H

#include "engine/model.h"

typedef struct od_gradcheck_opts {
    float step;          /* h; 0 means 1e-2 */
    int max_per_tensor;  /* coordinates checked per tensor (a seeded random
                            draw, repeats possible, when the tensor is
                            larger); 0 means 64 */
    double rel_floor;    /* see above; 0 means 1e-2 */
    int skip_kinks;      /* skip coordinates next to a kink */
    double kink_tol;     /* only coordinates whose error exceeds this are
                            candidates for skipping; 0 means 1e-2 */
    int high_order;      /* the 4-point stencil (8 (f(v+h) - f(v-h))
                            - (f(v+2h) - f(v-2h))) / 12h: truncation error
                            O(h^4) instead of O(h^2), so a larger h can keep
                            float round-off down; twice the forwards */
    uint64_t seed;       /* the sample of coordinates and the probe r */
} od_gradcheck_opts;

typedef struct od_gradcheck_result {
    double max_rel_err;     /* worst over everything compared */
    double input_rel_err;   /* worst over the input (0 when not checked) */
    double param_rel_err;   /* worst over the parameters */
    char worst[64];         /* where the worst is: "fc1.weight[17]" */
    int checked;            /* coordinates compared */
    int skipped;            /* coordinates skipped next to a kink */
} od_gradcheck_result;

/* Check one layer on input x (its data is perturbed and restored).
 * probe: r, the shape of the layer's output, or NULL for a seeded random
 * one. check_input = 0 skips the input (ids of an embedding have none).
 * Parameter gradients are zeroed first and hold the analytic gradient
 * afterwards. Step memory allocated here is released before returning. */
od_status od_gradcheck_layer(od_ctx *ctx, od_layer *l, od_tensor *x,
                             const od_tensor *probe, int check_input,
                             const od_gradcheck_opts *opts,
                             od_gradcheck_result *res);

/* Check a model on input x and labels (one per row of the logits) through
 * its mean cross-entropy. With no layers, this checks the cross-entropy's
 * gradient with respect to the logits (check_input must then be set). */
od_status od_gradcheck_model(od_model *m, od_tensor *x, const int32_t *labels,
                             int check_input, const od_gradcheck_opts *opts,
                             od_gradcheck_result *res);

#endif
