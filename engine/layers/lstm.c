/* LSTM over a sequence, as PyTorch's nn.LSTM (one layer, batch first), from
 * zero initial states. For each step t, with x_t (N, I), h and c (N, H):
 *
 *   i  = sigmoid(W_ii x_t + b_ii + W_hi h + b_hi)
 *   f  = sigmoid(W_if x_t + b_if + W_hf h + b_hf)
 *   g  = tanh(W_ig x_t + b_ig + W_hg h + b_hg)
 *   o  = sigmoid(W_io x_t + b_io + W_ho h + b_ho)
 *   c' = f * c + i * g
 *   h' = o * tanh(c')
 *
 * weight_ih (4H, I) and weight_hh (4H, H) stack the i, f, g, o rows in that
 * order; bias_ih and bias_hh (4H) likewise. GEMMs are organised as in the
 * GRU: one for the input projection of all steps, one per step for the
 * hidden projection, and in backward one per step for the state gradient
 * with the weight gradients batched at the end. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nominal element-wise flops per hidden unit and step: four gate
 * non-linearities and tanh(c) (an exponential each, counted as 4, plus 2)
 * and 5 for the state updates. */
#define OD__LSTM_CELL_FWD_FLOPS 35.0
#define OD__LSTM_CELL_BWD_FLOPS 24.0

typedef struct od__lstm {
    od_layer base;
    od_arena *arena;
    int in, hidden, return_seq;
    int n, t;       /* batch and steps of the last forward */
    od_tensor x;    /* the last forward's input (not owned) */
    od_tensor y;    /* the last forward's output */
    float *hs;      /* (T + 1, N, H): hs[0] = 0, hs[t + 1] = h after t */
    float *cs;      /* (T + 1, N, H): cells, likewise */
    float *tcs;     /* (T, N, H): tanh of the cell after t */
    float *gates;   /* (T, N, 4H): i, f, g, o after their non-linearity */
} od__lstm;

enum { OD__W_IH = 0, OD__W_HH, OD__B_IH, OD__B_HH };

static od_status od__lstm_out_shape(const od_layer *l, int ndim,
                                    const int *dims, int *out_ndim,
                                    int *out_dims)
{
    const od__lstm *L = (const od__lstm *)l;
    if (ndim != 3 || dims[2] != L->in) {
        char want[48];
        snprintf(want, sizeof want, "(N, T, %d)", L->in);
        return od__shape_fail(l, want, ndim, dims);
    }
    out_dims[0] = dims[0];
    if (L->return_seq) {
        *out_ndim = 3;
        out_dims[1] = dims[1];
        out_dims[2] = L->hidden;
    } else {
        *out_ndim = 2;
        out_dims[1] = L->hidden;
    }
    return OD_OK;
}

/* One time step's element-wise work, split over batch rows. */
typedef struct od__lstm_step {
    int n, t, steps, h;
    const float *xp;   /* (N*T, 4H) input projections, row n*T + t */
    const float *hp;   /* (N, 4H) hidden projections of this step */
    float *gates;      /* (T, N, 4H) */
    float *hs, *cs;    /* (T + 1, N, H) states; index t is before step t */
    float *tcs;        /* (T, N, H) */
    float *y;          /* (N, T, H) sequence output, or NULL */
    float *dh;         /* (N, H) gradient of h after the step */
    float *dc;         /* (N, H) of c after the step; becomes c before it */
    float *dxp;        /* (N*T, 4H) gradients of the pre-activations */
    float *dhp;        /* (T*N, 4H) the same, by step */
} od__lstm_step;

/* Gates and new states for rows [lo, hi) of step t. */
static void od__lstm_cell_fwd(void *arg, int lo, int hi)
{
    const od__lstm_step *s = arg;
    const int H = s->h, G = 4 * H, T = s->steps, t = s->t;
    const size_t state = (size_t)s->n * H;
    for (int n = lo; n < hi; n++) {
        const float *xr = s->xp + ((size_t)n * T + t) * G;
        const float *hr = s->hp + (size_t)n * G;
        const float *cprev = s->cs + t * state + (size_t)n * H;
        float *cnext = s->cs + (t + 1) * state + (size_t)n * H;
        float *hnext = s->hs + (t + 1) * state + (size_t)n * H;
        float *tc = s->tcs + t * state + (size_t)n * H;
        float *g = s->gates + ((size_t)t * s->n + n) * G;
        for (int j = 0; j < H; j++) {
            float gi = od__sigmoidf(xr[j] + hr[j]);
            float gf = od__sigmoidf(xr[H + j] + hr[H + j]);
            float gg = tanhf(xr[2 * H + j] + hr[2 * H + j]);
            float go = od__sigmoidf(xr[3 * H + j] + hr[3 * H + j]);
            g[j] = gi;
            g[H + j] = gf;
            g[2 * H + j] = gg;
            g[3 * H + j] = go;
            cnext[j] = gf * cprev[j] + gi * gg;
            tc[j] = tanhf(cnext[j]);
            hnext[j] = go * tc[j];
        }
        if (s->y)
            memcpy(s->y + ((size_t)n * T + t) * H, hnext,
                   (size_t)H * sizeof(float));
    }
}

/* Gate gradients of rows [lo, hi) of step t from dh and dc; dc becomes the
 * gradient of the cell before the step. */
static void od__lstm_cell_bwd(void *arg, int lo, int hi)
{
    const od__lstm_step *s = arg;
    const int H = s->h, G = 4 * H, T = s->steps, t = s->t;
    const size_t state = (size_t)s->n * H;
    for (int n = lo; n < hi; n++) {
        const float *g = s->gates + ((size_t)t * s->n + n) * G;
        const float *cprev = s->cs + t * state + (size_t)n * H;
        const float *tc = s->tcs + t * state + (size_t)n * H;
        const float *dh = s->dh + (size_t)n * H;
        float *dc = s->dc + (size_t)n * H;
        float *dxr = s->dxp + ((size_t)n * T + t) * G;
        float *dhr = s->dhp + ((size_t)t * s->n + n) * G;
        for (int j = 0; j < H; j++) {
            float gi = g[j], gf = g[H + j], gg = g[2 * H + j];
            float go = g[3 * H + j];
            float dct = dc[j] + dh[j] * go * (1.0f - tc[j] * tc[j]);
            float a[4];
            a[0] = dct * gg * gi * (1.0f - gi);
            a[1] = dct * cprev[j] * gf * (1.0f - gf);
            a[2] = dct * gi * (1.0f - gg * gg);
            a[3] = dh[j] * tc[j] * go * (1.0f - go);
            for (int q = 0; q < 4; q++) {
                dxr[q * H + j] = a[q];
                dhr[q * H + j] = a[q];
            }
            dc[j] = dct * gf;
        }
    }
}

static od_status od__lstm_forward(od_layer *l, od_ctx *ctx,
                                  const od_tensor *x, od_tensor *y,
                                  int training)
{
    (void)training;
    od__lstm *L = (od__lstm *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__lstm_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    const int N = x->dims[0], T = x->dims[1], I = L->in, H = L->hidden;
    const int G = 4 * H;
    const float *w_ih = l->params[OD__W_IH]->value.data; /* (4H, I) */
    const float *w_hh = l->params[OD__W_HH]->value.data; /* (4H, H) */
    const float *b_ih = l->params[OD__B_IH]->value.data; /* (4H) */
    const float *b_hh = l->params[OD__B_HH]->value.data; /* (4H) */

    size_t state = (size_t)N * H;  /* floats of one (N, H) state */
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT,
                          (size_t)(3 * T + 2) * state * sizeof(float), &p));
    L->hs = p;
    L->cs = L->hs + (size_t)(T + 1) * state;
    L->tcs = L->cs + (size_t)(T + 1) * state;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT,
                          (size_t)T * N * G * sizeof(float), &p));
    L->gates = p;

    size_t mark = od_arena_mark(ctx->arena);
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * T * G * sizeof(float), &p));
    float *xp = p;  /* (N*T, 4H), row n*T + t */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * G * sizeof(float), &p));
    float *hp = p;  /* (N, 4H) */

    /* Input projection of every step at once. */
    od_gemm(ctx->pool, 0, 1, N * T, G, I, 1.0f, x->data, I, w_ih, I, 0.0f,
            xp, G);
    od_add_bias_rows(ctx->pool, N * T, G, xp, b_ih);

    for (int t = 0; t < T; t++) {
        const float *hprev = L->hs + (size_t)t * state;

        /* Hidden projection; the state before the first step is zero. */
        if (t == 0) {
            for (int n = 0; n < N; n++)
                memcpy(hp + (size_t)n * G, b_hh, (size_t)G * sizeof(float));
        } else {
            od_gemm(ctx->pool, 0, 1, N, G, H, 1.0f, hprev, H, w_hh, H, 0.0f,
                    hp, G);
            od_add_bias_rows(ctx->pool, N, G, hp, b_hh);
        }

        od__lstm_step s = {
            .n = N, .t = t, .steps = T, .h = H, .xp = xp, .hp = hp,
            .gates = L->gates, .hs = L->hs, .cs = L->cs, .tcs = L->tcs,
            .y = L->return_seq ? y->data : NULL,
        };
        od__parallel_rows(ctx->pool, N, (size_t)10 * H, od__lstm_cell_fwd,
                          &s);
    }
    if (!L->return_seq)
        memcpy(y->data, L->hs + (size_t)T * state, state * sizeof(float));
    od_arena_release(ctx->arena, mark);

    L->n = N;
    L->t = T;
    L->x = *x;
    L->y = *y;
    double nt = (double)N * T;
    double flops = 2.0 * nt * I * G + nt * G           /* input projection */
                   + 2.0 * N * (T - 1.0) * H * G + nt * G /* hidden */
                   + OD__LSTM_CELL_FWD_FLOPS * nt * H;
    double rd = (double)x->size + (double)G * I + (double)G * H + 2.0 * G
                + nt * G;                       /* the projection, re-read */
    double wr = (double)y->size + nt * G       /* the projection */
                + 3.0 * nt * H + nt * G;       /* states and gates kept */
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_FORWARD, flops, rd, wr, t0);
    return OD_OK;
}

static od_status od__lstm_backward(od_layer *l, od_ctx *ctx,
                                   const od_tensor *dy, od_tensor *dx)
{
    od__lstm *L = (od__lstm *)l;
    OD_ASSERT(L->x.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));

    const int N = L->n, T = L->t, I = L->in, H = L->hidden, G = 4 * H;
    od_param *w_ih = l->params[OD__W_IH], *w_hh = l->params[OD__W_HH];
    od_param *b_ih = l->params[OD__B_IH], *b_hh = l->params[OD__B_HH];
    size_t state = (size_t)N * H;

    if (dx)
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dx, L->x.ndim,
                               L->x.dims));
    size_t mark = od_arena_mark(ctx->arena);
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * T * G * sizeof(float), &p));
    float *dxp = p;   /* (N*T, 4H), row n*T + t: gate pre-activations */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)T * N * G * sizeof(float), &p));
    float *dhp = p;   /* (T*N, 4H), row t*N + n: the same, by step */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          3 * state * sizeof(float), &p));
    float *dh = p;                 /* (N, H) gradient of h at t */
    float *dh_prev = dh + state;   /* (N, H) at t - 1 */
    float *dc = dh_prev + state;   /* (N, H) of c at t, then at t - 1 */

    for (int t = T - 1; t >= 0; t--) {
        /* The output's gradient joins the gradient carried from t + 1. */
        if (L->return_seq) {
            for (int n = 0; n < N; n++)
                for (int j = 0; j < H; j++)
                    dh[(size_t)n * H + j] +=
                        dy->data[((size_t)n * T + t) * H + j];
        } else if (t == T - 1) {
            for (size_t i = 0; i < state; i++)
                dh[i] += dy->data[i];
        }

        od__lstm_step s = {
            .n = N, .t = t, .steps = T, .h = H, .gates = L->gates,
            .hs = L->hs, .cs = L->cs, .tcs = L->tcs, .dh = dh, .dc = dc,
            .dxp = dxp, .dhp = dhp,
        };
        od__parallel_rows(ctx->pool, N, (size_t)12 * H, od__lstm_cell_bwd,
                          &s);
        /* dh_prev (N, H) = dhp_t (N, 4H) W_hh (4H, H); nothing carries
         * back from the first step. */
        if (t > 0)
            od_gemm(ctx->pool, 0, 0, N, H, G, 1.0f,
                    dhp + (size_t)t * N * G, G, w_hh->value.data, H, 0.0f,
                    dh_prev, H);
        float *swap = dh;
        dh = dh_prev;
        dh_prev = swap;
    }

    double nt = (double)N * T;
    double flops = OD__LSTM_CELL_BWD_FLOPS * nt * H
                   + 2.0 * N * (T - 1.0) * G * H;
    double rd = (double)dy->size + 3.0 * nt * H + nt * G + (double)G * H;
    double wr = 2.0 * nt * G;

    od__rnn_backward_params(ctx, w_ih, w_hh, b_ih, b_hh, N, T, I, H, G,
                            L->x.data, L->hs + state, dxp, dhp, dx, &flops,
                            &rd, &wr);
    od_arena_release(ctx->arena, mark);
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

/* PyTorch's nn.LSTM: every weight and bias U(-1/sqrt(H), 1/sqrt(H)). */
static void od__lstm_init(od_layer *l, od_rng *rng)
{
    od__rnn_init(l, ((od__lstm *)l)->hidden, rng);
}

static void od__lstm_destroy(od_layer *l)
{
    od__layer_free(l, ((od__lstm *)l)->arena);
}

static const od_layer_vtbl od__lstm_vtbl = {
    "lstm", od__lstm_out_shape, od__lstm_forward, od__lstm_backward,
    od__lstm_init, od__lstm_destroy, NULL, NULL, NULL,
};

od_status od_lstm_create(od_ctx *ctx, const char *name, int in, int hidden,
                         int return_sequences, od_layer **out_layer)
{
    *out_layer = NULL;
    if (in <= 0 || hidden <= 0)
        return od_fail(OD_ERR_INVALID, "lstm '%s': sizes must be positive "
                       "(in %d, hidden %d)", name ? name : "", in, hidden);
    od__lstm *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__lstm_vtbl, name);
    L->arena = ctx->arena;
    L->in = in;
    L->hidden = hidden;
    L->return_seq = return_sequences != 0;

    od_status st = od__rnn_params_new(ctx, &L->base, in, hidden, 4);
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    *out_layer = &L->base;
    return OD_OK;
}
