/* What the GRU and the LSTM share in backward: once the gradients of the
 * input and hidden projections of every step are known, the parameter
 * gradients and the input gradient are a few large products, the same for
 * any number of gates. */
#include "engine/layers/layers_internal.h"

#include <math.h>

od_status od__rnn_params_new(od_ctx *ctx, od_layer *l, int in, int hidden,
                             int gates)
{
    const int g = gates * hidden;
    const int shapes[4][2] = {{g, in}, {g, hidden}, {g, 0}, {g, 0}};
    const char *names[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    for (int i = 0; i < 4; i++) {
        OD_TRY(od__param_new(ctx->arena, l->name, names[i],
                             shapes[i][1] ? 2 : 1, shapes[i], &l->params[i]));
        l->nparams++;
    }
    return OD_OK;
}

void od__rnn_init(od_layer *l, int hidden, od_rng *rng)
{
    float bound = 1.0f / sqrtf((float)hidden);
    for (int i = 0; i < l->nparams; i++)
        od__fill_uniform(&l->params[i]->value, rng, bound);
}

void od__rnn_backward_params(od_ctx *ctx, od_param *w_ih, od_param *w_hh,
                             od_param *b_ih, od_param *b_hh, int N, int T,
                             int I, int H, int G, const float *x,
                             const float *hs1, const float *dxp,
                             const float *dhp, od_tensor *dx, double *flops,
                             double *rd, double *wr)
{
    double nt = (double)N * T;

    /* W_hh (G, H) += dhp^T (G, T*N) hs[0..T) (T*N, H); the first step's
     * state is zero, so its rows are skipped. */
    if (od__wants_grad(w_hh) && T > 1) {
        od_gemm(ctx->pool, 1, 0, G, H, (T - 1) * N, 1.0f,
                dhp + (size_t)N * G, G, hs1, H, 1.0f, w_hh->grad.data, H);
        *flops += 2.0 * (T - 1.0) * N * G * H;
        *rd += 2.0 * (double)G * H + nt * G + nt * H;
        *wr += (double)G * H;
    }
    if (od__wants_grad(b_hh)) {
        od_sum_rows(ctx->pool, T * N, G, dhp, b_hh->grad.data);
        *flops += nt * G;
        *rd += nt * G + G;
        *wr += G;
    }

    /* W_ih (G, I) += dxp^T (G, N*T) x (N*T, I). */
    if (od__wants_grad(w_ih)) {
        od_gemm(ctx->pool, 1, 0, G, I, N * T, 1.0f, dxp, G, x, I, 1.0f,
                w_ih->grad.data, I);
        *flops += 2.0 * nt * G * I;
        *rd += 2.0 * (double)G * I + nt * G + nt * I;
        *wr += (double)G * I;
    }
    if (od__wants_grad(b_ih)) {
        od_sum_rows(ctx->pool, N * T, G, dxp, b_ih->grad.data);
        *flops += nt * G;
        *rd += nt * G + G;
        *wr += G;
    }

    /* dx (N*T, I) = dxp (N*T, G) W_ih (G, I). */
    if (dx) {
        od_gemm(ctx->pool, 0, 0, N * T, I, G, 1.0f, dxp, G, w_ih->value.data,
                I, 0.0f, dx->data, I);
        *flops += 2.0 * nt * G * I;
        *rd += nt * G + (double)G * I;
        *wr += (double)dx->size;
    }
}
