/* Compute kernels. Each has a plain reference (suffix _ref: single thread,
 * straightforward loops, the oracle for tests) and an optimised version
 * (no suffix) that is threaded over the pool and dispatches on od_cpu_isa()
 * to AVX-512, AVX2+FMA or portable C.
 *
 * Layouts: matrices row-major with a leading dimension; images NCHW;
 * convolution weights (C_out, C_in, KH, KW). Shapes are written next to
 * buffers as (rows, cols) or (N, C, H, W). A NULL pool means one thread.
 *
 * Determinism: for a given pool size the optimised kernels give bitwise
 * identical results from run to run (see pool.h). */
#ifndef ONDEV_ENGINE_KERNELS_H
#define ONDEV_ENGINE_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pool.h"

/* ---- GEMM ---------------------------------------------------------------
 * C = alpha * op(A) * op(B) + beta * C, with op(X) = X or X^T.
 * op(A) is (m, k), op(B) is (k, n), C is (m, n). With beta == 0, C is not
 * read (it may hold NaN). Leading dimensions are of the stored matrices. */
void od_gemm(od_pool *pool, int trans_a, int trans_b, int m, int n, int k,
             float alpha, const float *a, int lda, const float *b, int ldb,
             float beta, float *c, int ldc);
void od_gemm_ref(int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta,
                 float *c, int ldc);

/* ---- 2-D convolution (cross-correlation, as in PyTorch) ------------------ */
typedef struct od_conv2d_shape {
    int n, c_in, h, w;      /* input (N, C_in, H, W) */
    int c_out, kh, kw;      /* weights (C_out, C_in, KH, KW) */
    int stride_h, stride_w;
    int pad_h, pad_w;       /* zero padding on each side */
} od_conv2d_shape;

int od_conv2d_out_h(const od_conv2d_shape *s);
int od_conv2d_out_w(const od_conv2d_shape *s);
/* Floats of scratch the optimised kernels need for a pool of nthreads. */
size_t od_conv2d_scratch_floats(const od_conv2d_shape *s, int nthreads);

/* y (N, C_out, OH, OW) = conv(x, w) + bias (bias may be NULL). */
void od_conv2d_forward(od_pool *pool, const od_conv2d_shape *s,
                       const float *x, const float *w, const float *bias,
                       float *y, float *scratch);
/* dx (N, C_in, H, W) = gradient of the input; overwritten. */
void od_conv2d_backward_data(od_pool *pool, const od_conv2d_shape *s,
                             const float *dy, const float *w, float *dx,
                             float *scratch);
/* dw (C_out, C_in, KH, KW) and db (C_out) are accumulated into (+=);
 * db may be NULL. */
void od_conv2d_backward_weight(od_pool *pool, const od_conv2d_shape *s,
                               const float *x, const float *dy, float *dw,
                               float *db, float *scratch);
/* db (C_out) += dy (N, C_out, OH, OW) summed over examples and positions. */
void od_conv2d_bias_grad(const od_conv2d_shape *s, const float *dy, float *db);
/* sqnorm[i] += the squared norm of example i's own weight gradient (when
 * want_w) plus that of its bias gradient (when want_b), for the N
 * examples of x and dy; scratch of od_conv2d_pergrad_scratch_floats.
 * When kept is not NULL, example i's gradients are also stored there, in
 * od_conv2d_pergrad_kept_floats / N floats each, for od_conv2d_kept_sum. */
size_t od_conv2d_pergrad_scratch_floats(const od_conv2d_shape *s,
                                        int nthreads);
void od_conv2d_pergrad_sqnorm(od_pool *pool, const od_conv2d_shape *s,
                              const float *x, const float *dy, int want_w,
                              int want_b, float *sqnorm, float *kept,
                              float *scratch);
size_t od_conv2d_pergrad_kept_floats(const od_conv2d_shape *s);
/* dw (C_out, C_in, KH, KW) and db (C_out), each when not NULL, +=
 * scale[i] times example i's gradients as kept by
 * od_conv2d_pergrad_sqnorm, for each example in order. */
void od_conv2d_kept_sum(const od_conv2d_shape *s, const float *kept,
                        const float *scale, float *dw, float *db);
/* DP-SGD's clipping factor of an example whose gradient has squared norm
 * sq: min(1, clip / ||g||), 1 for an infinite clip or a zero gradient. */
static inline float od_clip_factor(float sq, float clip)
{
    float norm = sqrtf(sq);
    return isfinite(clip) && norm > clip ? clip / norm : 1.0f;
}
/* The same norms when sqnorm[i] holds on entry those of every other layer
 * of example i's gradient: adds the layer's own to make the total, and
 * accumulates into dw (C_out, C_in, KH, KW) and db (C_out) (each when not
 * NULL) the sum over examples of od_clip_factor(sqnorm[i], clip) times
 * example i's gradient. The sums go in a fixed order for a given pool
 * size. Same scratch as od_conv2d_pergrad_sqnorm. */
void od_conv2d_pergrad_clipped(od_pool *pool, const od_conv2d_shape *s,
                               const float *x, const float *dy, float clip,
                               float *sqnorm, float *dw, float *db,
                               float *scratch);
void od_conv2d_forward_ref(const od_conv2d_shape *s, const float *x,
                           const float *w, const float *bias, float *y);
void od_conv2d_backward_data_ref(const od_conv2d_shape *s, const float *dy,
                                 const float *w, float *dx);
void od_conv2d_backward_weight_ref(const od_conv2d_shape *s, const float *x,
                                   const float *dy, float *dw, float *db);

/* ---- 2-D pooling (no padding; windows that do not fit are dropped) ------- */
typedef struct od_pool2d_shape {
    int n, c, h, w;
    int kh, kw, stride_h, stride_w;
} od_pool2d_shape;

int od_pool2d_out_h(const od_pool2d_shape *s);
int od_pool2d_out_w(const od_pool2d_shape *s);
/* argmax (N, C, OH, OW) holds the flat index within each (H, W) plane of the
 * chosen element (the first maximum in row-major order). */
void od_maxpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                          const float *x, float *y, int32_t *argmax);
/* Max pooling of ReLU(x) in one pass: y = max(0, window maximum); argmax
 * as above where that maximum is positive and -1 where it is not (no input
 * of the window then gets a gradient). Equal to od_act_forward(RELU)
 * followed by od_maxpool2d_forward, and with od_maxpool2d_backward to their
 * backward passes, without the full-size ReLU tensors. */
void od_relu_maxpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                               const float *x, float *y, int32_t *argmax);
/* dx is overwritten; windows with argmax -1 pass no gradient. */
void od_maxpool2d_backward(od_pool *pool, const od_pool2d_shape *s,
                           const float *dy, const int32_t *argmax, float *dx);
void od_avgpool2d_forward(od_pool *pool, const od_pool2d_shape *s,
                          const float *x, float *y);
void od_avgpool2d_backward(od_pool *pool, const od_pool2d_shape *s,
                           const float *dy, float *dx);
void od_maxpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                              float *y, int32_t *argmax);
void od_relu_maxpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                                   float *y, int32_t *argmax);
void od_maxpool2d_backward_ref(const od_pool2d_shape *s, const float *dy,
                               const int32_t *argmax, float *dx);
void od_avgpool2d_forward_ref(const od_pool2d_shape *s, const float *x,
                              float *y);
void od_avgpool2d_backward_ref(const od_pool2d_shape *s, const float *dy,
                               float *dx);

/* ---- Element-wise activations --------------------------------------------
 * Forward: y = f(x). Backward: dx = dy * f'(.) computed from x (and y where
 * cheaper; y may be NULL, and f(x) is then recomputed); dx may alias dy.
 * GELU is the exact erf form, as PyTorch's default. */
typedef enum od_act {
    OD_ACT_RELU = 0,
    OD_ACT_TANH,
    OD_ACT_SIGMOID,
    OD_ACT_GELU,
} od_act;

void od_act_forward(od_pool *pool, od_act act, size_t n, const float *x,
                    float *y);
void od_act_backward(od_pool *pool, od_act act, size_t n, const float *x,
                     const float *y, const float *dy, float *dx);
void od_act_forward_ref(od_act act, size_t n, const float *x, float *y);
void od_act_backward_ref(od_act act, size_t n, const float *x, const float *y,
                         const float *dy, float *dx);

/* ---- Softmax with cross-entropy ------------------------------------------
 * logits (rows, cols); labels (rows) in [0, cols), or -1 to ignore a row.
 * Writes probs (rows, cols) and the per-row loss (rows; 0 for ignored rows);
 * returns the sum of losses over the rows that count. Backward writes
 * dlogits = scale * (probs - onehot), zero for ignored rows. */
double od_softmax_xent_forward(od_pool *pool, int rows, int cols,
                               const float *logits, const int32_t *labels,
                               float *probs, float *row_loss);
void od_softmax_xent_backward(od_pool *pool, int rows, int cols,
                              const float *probs, const int32_t *labels,
                              float scale, float *dlogits);
double od_softmax_xent_forward_ref(int rows, int cols, const float *logits,
                                   const int32_t *labels, float *probs,
                                   float *row_loss);
void od_softmax_xent_backward_ref(int rows, int cols, const float *probs,
                                  const int32_t *labels, float scale,
                                  float *dlogits);

/* ---- Reductions and row operations ---------------------------------------- */
/* out (cols) += sum over rows of x (rows, cols): bias gradients. */
void od_sum_rows(od_pool *pool, int rows, int cols, const float *x,
                 float *out);
void od_sum_rows_ref(int rows, int cols, const float *x, float *out);
/* out (rows) = sum of squares of each row of x (rows, cols). */
void od_row_sqnorm(od_pool *pool, int rows, int cols, const float *x,
                   float *out);
void od_row_sqnorm_ref(int rows, int cols, const float *x, float *out);
/* x (rows, cols) += bias (cols) on every row. */
void od_add_bias_rows(od_pool *pool, int rows, int cols, float *x,
                      const float *bias);
/* Sum of all elements, and sum of squares, in a fixed (pairwise) order. */
double od_sum(size_t n, const float *x);
double od_sumsq(size_t n, const float *x);

#endif
