/* Element-wise activations: ReLU, tanh, sigmoid and exact-erf GELU, forward
 * and backward.
 *
 * The references evaluate in double through libm and round once. The
 * optimised versions split the array into fixed chunks run over the pool.
 * ReLU has AVX-512 and AVX2 loops. tanh and sigmoid use libm's float
 * functions (within a few ulp of the exact value; no shortcut
 * approximations); GELU and its derivative, and tanh and sigmoid derivatives
 * recomputed from x, go through double where float would cancel. Every
 * element's value is the same whatever the chunking.
 *
 * Backward takes y when the caller has it; y may be NULL, in which case f(x)
 * is recomputed where the derivative needs it. */
#include <math.h>
#include <string.h>

#include "engine/kernels_internal.h"

#define OD__SQRT1_2 0.70710678118654752440
#define OD__INV_SQRT_2PI 0.39894228040143267794

/* ---- References ------------------------------------------------------------ */

/* Phi(x) = erfc(-x / sqrt 2) / 2 keeps full relative accuracy in the left
 * tail, where 1 + erf(x / sqrt 2) cancels to nothing. */
static double od__gelu_d(double x)
{
    return 0.5 * x * erfc(-x * OD__SQRT1_2);
}

/* d/dx of x * Phi(x) = Phi(x) + x * phi(x). */
static double od__gelu_grad_d(double x)
{
    double cdf = 0.5 * erfc(-x * OD__SQRT1_2);
    double pdf = OD__INV_SQRT_2PI * exp(-0.5 * x * x);
    return cdf + x * pdf;
}

void od_act_forward_ref(od_act act, size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i], r = 0.0;
        switch (act) {
        case OD_ACT_RELU: r = v > 0.0 ? v : 0.0; break;
        case OD_ACT_TANH: r = tanh(v); break;
        case OD_ACT_SIGMOID: r = 1.0 / (1.0 + exp(-v)); break;
        case OD_ACT_GELU: r = od__gelu_d(v); break;
        default: OD_ASSERT(!"unknown activation");
        }
        y[i] = (float)r;
    }
}

void od_act_backward_ref(od_act act, size_t n, const float *x, const float *y,
                         const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i], g = dy[i], d = 0.0;
        switch (act) {
        case OD_ACT_RELU:
            d = v > 0.0 ? 1.0 : 0.0;
            break;
        case OD_ACT_TANH: {
            double t = y ? (double)y[i] : tanh(v);
            d = (1.0 - t) * (1.0 + t);
            break;
        }
        case OD_ACT_SIGMOID: {
            double s = y ? (double)y[i] : 1.0 / (1.0 + exp(-v));
            d = s * (1.0 - s);
            break;
        }
        case OD_ACT_GELU:
            d = od__gelu_grad_d(v);
            break;
        default:
            OD_ASSERT(!"unknown activation");
        }
        dx[i] = (float)(g * d);
    }
}

/* ---- Portable loops of the optimised version ------------------------------ */

static void od__fwd_portable(od_act act, size_t n, const float *x, float *y)
{
    switch (act) {
    case OD_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case OD_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanhf(x[i]);
        break;
    case OD_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case OD_ACT_GELU:
        /* In double: the float erfc of a rounded argument loses ~1e-6
         * relative accuracy in the left tail. */
        for (size_t i = 0; i < n; i++)
            y[i] = (float)od__gelu_d(x[i]);
        break;
    default:
        OD_ASSERT(!"unknown activation");
    }
}

static void od__bwd_portable(od_act act, size_t n, const float *x,
                             const float *y, const float *dy, float *dx)
{
    switch (act) {
    case OD_ACT_RELU:
        /* Masking the bits of dy keeps the loop free of branches (the sign
         * of x is unpredictable) and vectorisable; same result as
         * x > 0 ? dy : 0, NaNs included. */
        for (size_t i = 0; i < n; i++) {
            uint32_t g;
            memcpy(&g, &dy[i], sizeof g);
            g &= 0u - (uint32_t)(x[i] > 0.0f);
            memcpy(&dx[i], &g, sizeof g);
        }
        break;
    case OD_ACT_TANH:
        /* (1 - t)(1 + t) rather than 1 - t * t: no cancellation as |t|
         * nears 1. Without y, t is recomputed in double: 1 - t is then
         * accurate even where a float t would have rounded to 1. */
        if (y) {
            for (size_t i = 0; i < n; i++)
                dx[i] = dy[i] * ((1.0f - y[i]) * (1.0f + y[i]));
        } else {
            for (size_t i = 0; i < n; i++) {
                double t = tanh((double)x[i]);
                dx[i] = (float)((double)dy[i] * ((1.0 - t) * (1.0 + t)));
            }
        }
        break;
    case OD_ACT_SIGMOID:
        if (y) {
            for (size_t i = 0; i < n; i++)
                dx[i] = dy[i] * (y[i] * (1.0f - y[i]));
        } else {
            for (size_t i = 0; i < n; i++) {
                double sg = 1.0 / (1.0 + exp(-(double)x[i]));
                dx[i] = (float)((double)dy[i] * (sg * (1.0 - sg)));
            }
        }
        break;
    case OD_ACT_GELU:
        /* Phi(x) + x phi(x) cancels for negative x: in double. */
        for (size_t i = 0; i < n; i++)
            dx[i] = (float)((double)dy[i] * od__gelu_grad_d(x[i]));
        break;
    default:
        OD_ASSERT(!"unknown activation");
    }
}

/* ---- Optimised: chunks over the pool, ReLU per ISA ------------------------ */

typedef struct {
    od_act act;
    size_t n;
    size_t chunk;   /* elements per task */
    const float *x, *y, *dy;
    float *out;
} od__act_ctx;

static void od__fwd_chunk(od_act act, size_t n, const float *x, float *y)
{
    if (act == OD_ACT_RELU && od_cpu_isa() == OD_ISA_AVX512)
        od__relu_fwd_avx512(n, x, y);
    else if (act == OD_ACT_RELU && od_cpu_isa() == OD_ISA_AVX2)
        od__relu_fwd_avx2(n, x, y);
    else
        od__fwd_portable(act, n, x, y);
}

static void od__bwd_chunk(od_act act, size_t n, const float *x,
                          const float *y, const float *dy, float *dx)
{
    if (act == OD_ACT_RELU && od_cpu_isa() == OD_ISA_AVX512)
        od__relu_bwd_avx512(n, x, dy, dx);
    else if (act == OD_ACT_RELU && od_cpu_isa() == OD_ISA_AVX2)
        od__relu_bwd_avx2(n, x, dy, dx);
    else
        od__bwd_portable(act, n, x, y, dy, dx);
}

static void od__fwd_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__act_ctx *c = ctx_;
    size_t lo = (size_t)task * c->chunk;
    size_t len = c->n - lo < c->chunk ? c->n - lo : c->chunk;
    od__fwd_chunk(c->act, len, c->x + lo, c->out + lo);
}

static void od__bwd_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__act_ctx *c = ctx_;
    size_t lo = (size_t)task * c->chunk;
    size_t len = c->n - lo < c->chunk ? c->n - lo : c->chunk;
    od__bwd_chunk(c->act, len, c->x + lo, c->y ? c->y + lo : NULL, c->dy + lo,
                  c->out + lo);
}

/* ReLU is memory-bound: threads pay off only on large arrays and in large
 * chunks. The others spend tens of cycles per element in libm and split
 * sooner, into smaller chunks. */
static size_t od__act_chunk(od_act act)
{
    return act == OD_ACT_RELU ? OD__CHUNK_ELEMS : OD__CHUNK_ELEMS / 4;
}

static od_pool *od__act_pool(od_pool *pool, od_act act, size_t n)
{
    size_t min = act == OD_ACT_RELU ? OD__PAR_MIN_ELEMS * 4 : OD__PAR_MIN_ELEMS / 4;
    return n < min ? NULL : pool;
}

void od_act_forward(od_pool *pool, od_act act, size_t n, const float *x,
                    float *y)
{
    if (n == 0)
        return;
    od__act_ctx c = {act, n, od__act_chunk(act), x, NULL, NULL, y};
    size_t ntasks = od__nchunks(n, c.chunk);
    pool = od__act_pool(pool, act, n);
    if (!pool || ntasks == 1) {
        od__fwd_chunk(act, n, x, y);
        return;
    }
    od_pool_run(pool, (int)ntasks, od__fwd_task, &c);
}

void od_act_backward(od_pool *pool, od_act act, size_t n, const float *x,
                     const float *y, const float *dy, float *dx)
{
    if (n == 0)
        return;
    od__act_ctx c = {act, n, od__act_chunk(act), x, y, dy, dx};
    size_t ntasks = od__nchunks(n, c.chunk);
    pool = od__act_pool(pool, act, n);
    if (!pool || ntasks == 1) {
        od__bwd_chunk(act, n, x, y, dy, dx);
        return;
    }
    od_pool_run(pool, (int)ntasks, od__bwd_task, &c);
}
