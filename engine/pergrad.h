/* Per-example gradient norms and the clipped gradient sum of DP-SGD.
 *
 * After a forward pass of N examples, od_pergrad_clipped_backward computes
 * each example's gradient norm over every trainable parameter and adds
 *
 *     sum_i  min(1, C / ||g_i||) g_i
 *
 * to the parameters' gradients, where g_i is the gradient of example i's
 * own loss. It does so in two sweeps over the layers:
 *
 *  1. input gradients only, top to bottom, keeping each layer's output
 *     gradient (N, ...); then each layer adds its share of the per-example
 *     squared norms: from input and output-gradient norms or Gram products
 *     where the layer allows it (linear, conv2d: the layer's grad_sqnorm
 *     slot), else by materialising one example's gradient at a time;
 *  2. every layer's output gradient is re-weighted example by example with
 *     the clip factors and the layers' backward passes accumulate the
 *     parameter gradients, without input gradients (a layer may instead
 *     sum the per-example gradients its norms kept:
 *     the scaled_backward slot; conv2d keeps them when they are small).
 *
 * One layer may fold sweep 2 into sweep 1 (the clipped_grad slot): when it
 * forms each example's gradient anyway for the norm (conv2d), it goes
 * last in sweep 1, once the other layers' norms are summed, and adds each
 * example's gradient times its clip factor there and then. The largest
 * such layer is chosen.
 *
 * The work is one forward and one backward pass plus the norms, against
 * a forward and a backward for a non-private step. Layers must treat
 * examples independently (no batch statistics); every layer kind of the
 * engine does. */
#ifndef ONDEV_ENGINE_PERGRAD_H
#define ONDEV_ENGINE_PERGRAD_H

#include "engine/model.h"

/* dout (N, ...): gradient of the sum of per-example losses with respect to
 * the last forward's output, so that its rows for example i come from
 * example i's loss alone. clip_norm C > 0; C = +inf (or any non-finite
 * value) leaves every example unclipped. Accumulates into the parameter
 * gradients (does not zero them, so micro-batches add up). norms (N), when
 * not NULL, receives each example's gradient norm before clipping; scales
 * (N), when not NULL, the factor min(1, C / norm) applied to it. Memory
 * comes from the context's arena (activations) and is kept until the
 * caller resets or releases it. */
od_status od_pergrad_clipped_backward(od_model *m, const od_tensor *dout,
                                      float clip_norm, float *norms,
                                      float *scales);
/* As od_pergrad_clipped_backward on zeroed gradients, without clearing
 * those that the pass sets whole (the layers that honour ctx->fresh_grads
 * and take the plain re-weighted backward): the first micro-batch of a
 * step. */
od_status od_pergrad_clipped_backward_fresh(od_model *m,
                                            const od_tensor *dout,
                                            float clip_norm, float *norms,
                                            float *scales);
/* As od_pergrad_clipped_backward_fresh, except that the layers that take
 * the plain re-weighted backward and honour ctx->apply_update put the
 * clipped sum S straight into their parameters, p = beta p + alpha S, and
 * set their `applied` flags instead of forming S (see
 * od_model_backward_apply). */
od_status od_pergrad_clipped_backward_apply(od_model *m,
                                            const od_tensor *dout,
                                            float clip_norm, float *norms,
                                            float *scales, float alpha,
                                            float beta);

/* Only the per-example gradient norms (N) of the last forward, for dout as
 * above; parameter gradients are left as they were. */
od_status od_pergrad_norms(od_model *m, const od_tensor *dout, float *norms);

#endif
