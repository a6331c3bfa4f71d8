/* GRU over a sequence, as PyTorch's nn.GRU (one layer, batch first), from a
 * zero initial state. For each step t, with x_t (N, I) and h (N, H):
 *
 *   r  = sigmoid(W_ir x_t + b_ir + W_hr h + b_hr)
 *   z  = sigmoid(W_iz x_t + b_iz + W_hz h + b_hz)
 *   n  = tanh(W_in x_t + b_in + r * (W_hn h + b_hn))
 *   h' = (1 - z) * n + z * h
 *
 * weight_ih (3H, I) and weight_hh (3H, H) stack the r, z, n rows in that
 * order; bias_ih and bias_hh (3H) likewise. The input projection of every
 * step is one GEMM (N*T, I) x (I, 3H); each step then needs one GEMM for the
 * hidden projection. Backward through time runs one GEMM per step for the
 * state gradient, and the weight gradients are batched into one GEMM each at
 * the end. */
#include "engine/layers/layers_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nominal element-wise flops per hidden unit and step: two sigmoids and a
 * tanh (an exponential each, counted as 4, plus 2) and 6 for the rest. */
#define OD__GRU_CELL_FWD_FLOPS 24.0
#define OD__GRU_CELL_BWD_FLOPS 20.0

typedef struct od__gru {
    od_layer base;
    od_arena *arena;
    int in, hidden, return_seq;
    int n, t;       /* batch and steps of the last forward */
    od_tensor x;    /* the last forward's input (not owned) */
    od_tensor y;    /* the last forward's output */
    float *hs;      /* (T + 1, N, H): hs[0] = 0, hs[t + 1] = state after t */
    float *gates;   /* (T, N, 4H): r, z, n and W_hn h + b_hn per step */
} od__gru;

enum { OD__W_IH = 0, OD__W_HH, OD__B_IH, OD__B_HH };

static od_status od__gru_out_shape(const od_layer *l, int ndim,
                                   const int *dims, int *out_ndim,
                                   int *out_dims)
{
    const od__gru *L = (const od__gru *)l;
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
typedef struct od__gru_step {
    int n, t, steps, h;
    const float *xp;     /* (N*T, 3H) input projections, row n*T + t */
    const float *hp;     /* (N, 3H) hidden projections of this step */
    float *gates;        /* (T, N, 4H) */
    const float *hprev;  /* (N, H) state before the step */
    float *hnext;        /* (N, H) state after it */
    float *y;            /* (N, T, H) sequence output, or NULL */
    float *dh;           /* (N, H) gradient of the state after the step */
    float *dh_prev;      /* (N, H) gradient of the state before it */
    float *dxp;          /* (N*T, 3H) gradients of the input projections */
    float *dhp;          /* (T*N, 3H) gradients of the hidden projections */
} od__gru_step;

/* Gates and new state for rows [lo, hi) of step t. */
static void od__gru_cell_fwd(void *arg, int lo, int hi)
{
    const od__gru_step *s = arg;
    const int H = s->h, G = 3 * H, T = s->steps, t = s->t;
    for (int n = lo; n < hi; n++) {
        const float *xr = s->xp + ((size_t)n * T + t) * G;
        const float *hr = s->hp + (size_t)n * G;
        const float *hprev = s->hprev + (size_t)n * H;
        float *g = s->gates + ((size_t)t * s->n + n) * 4 * H;
        float *hnext = s->hnext + (size_t)n * H;
        for (int j = 0; j < H; j++) {
            float r = od__sigmoidf(xr[j] + hr[j]);
            float z = od__sigmoidf(xr[H + j] + hr[H + j]);
            float hn = hr[2 * H + j];
            float nn = tanhf(xr[2 * H + j] + r * hn);
            g[j] = r;
            g[H + j] = z;
            g[2 * H + j] = nn;
            g[3 * H + j] = hn;
            hnext[j] = (1.0f - z) * nn + z * hprev[j];
        }
        if (s->y)
            memcpy(s->y + ((size_t)n * T + t) * H, hnext,
                   (size_t)H * sizeof(float));
    }
}

/* Gate gradients of rows [lo, hi) of step t from dh; dh_prev gets the
 * direct part d * z (the part through W_hh is added by a GEMM). */
static void od__gru_cell_bwd(void *arg, int lo, int hi)
{
    const od__gru_step *s = arg;
    const int H = s->h, G = 3 * H, T = s->steps, t = s->t;
    for (int n = lo; n < hi; n++) {
        const float *g = s->gates + ((size_t)t * s->n + n) * 4 * H;
        const float *hprev = s->hprev + (size_t)n * H;
        const float *dh = s->dh + (size_t)n * H;
        float *dh_prev = s->dh_prev + (size_t)n * H;
        float *dxr = s->dxp + ((size_t)n * T + t) * G;
        float *dhr = s->dhp + ((size_t)t * s->n + n) * G;
        for (int j = 0; j < H; j++) {
            float r = g[j], z = g[H + j], nn = g[2 * H + j];
            float hn = g[3 * H + j];
            float d = dh[j];
            float dn_pre = d * (1.0f - z) * (1.0f - nn * nn);
            float dz_pre = d * (hprev[j] - nn) * z * (1.0f - z);
            float dr_pre = dn_pre * hn * r * (1.0f - r);
            dxr[j] = dr_pre;
            dxr[H + j] = dz_pre;
            dxr[2 * H + j] = dn_pre;
            dhr[j] = dr_pre;
            dhr[H + j] = dz_pre;
            dhr[2 * H + j] = dn_pre * r;
            dh_prev[j] = d * z;
        }
    }
}

static od_status od__gru_forward(od_layer *l, od_ctx *ctx, const od_tensor *x,
                                 od_tensor *y, int training)
{
    (void)training;
    od__gru *L = (od__gru *)l;
    uint64_t t0 = od_now_ns();
    int ndim = 0, dims[OD_MAX_DIMS] = {0};
    OD_TRY(od__gru_out_shape(l, x->ndim, x->dims, &ndim, dims));
    OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, y, ndim, dims));

    const int N = x->dims[0], T = x->dims[1], I = L->in, H = L->hidden;
    const int G = 3 * H;
    const float *w_ih = l->params[OD__W_IH]->value.data; /* (3H, I) */
    const float *w_hh = l->params[OD__W_HH]->value.data; /* (3H, H) */
    const float *b_ih = l->params[OD__B_IH]->value.data; /* (3H) */
    const float *b_hh = l->params[OD__B_HH]->value.data; /* (3H) */

    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT,
                          (size_t)(T + 1) * N * H * sizeof(float), &p));
    L->hs = p;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_ACT,
                          (size_t)T * N * 4 * H * sizeof(float), &p));
    L->gates = p;

    size_t mark = od_arena_mark(ctx->arena);
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * T * G * sizeof(float), &p));
    float *xp = p;  /* (N*T, 3H), row n*T + t */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * G * sizeof(float), &p));
    float *hp = p;  /* (N, 3H) */

    /* Input projection of every step at once. */
    od_gemm(ctx->pool, 0, 1, N * T, G, I, 1.0f, x->data, I, w_ih, I, 0.0f,
            xp, G);
    od_add_bias_rows(ctx->pool, N * T, G, xp, b_ih);

    for (int t = 0; t < T; t++) {
        const float *hprev = L->hs + (size_t)t * N * H;  /* (N, H) */
        float *hnext = L->hs + (size_t)(t + 1) * N * H;  /* (N, H) */

        /* Hidden projection; the state before the first step is zero. */
        if (t == 0) {
            for (int n = 0; n < N; n++)
                memcpy(hp + (size_t)n * G, b_hh, (size_t)G * sizeof(float));
        } else {
            od_gemm(ctx->pool, 0, 1, N, G, H, 1.0f, hprev, H, w_hh, H, 0.0f,
                    hp, G);
            od_add_bias_rows(ctx->pool, N, G, hp, b_hh);
        }

        od__gru_step s = {
            .n = N, .t = t, .steps = T, .h = H, .xp = xp, .hp = hp,
            .gates = L->gates, .hprev = hprev, .hnext = hnext,
            .y = L->return_seq ? y->data : NULL,
        };
        od__parallel_rows(ctx->pool, N, (size_t)8 * H, od__gru_cell_fwd, &s);
    }
    if (!L->return_seq)
        memcpy(y->data, L->hs + (size_t)T * N * H,
               (size_t)N * H * sizeof(float));
    od_arena_release(ctx->arena, mark);

    L->n = N;
    L->t = T;
    L->x = *x;
    L->y = *y;
    double nt = (double)N * T;
    double flops = 2.0 * nt * I * G + nt * G           /* input projection */
                   + 2.0 * N * (T - 1.0) * H * G + nt * G /* hidden */
                   + OD__GRU_CELL_FWD_FLOPS * nt * H;
    double rd = (double)x->size + (double)G * I + (double)G * H + 2.0 * G
                + nt * G;                       /* the projection, re-read */
    double wr = (double)y->size + nt * G       /* the projection */
                + nt * H + 4.0 * nt * H;       /* states and gates kept */
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_FORWARD, flops, rd, wr, t0);
    return OD_OK;
}

static od_status od__gru_backward(od_layer *l, od_ctx *ctx,
                                  const od_tensor *dy, od_tensor *dx)
{
    od__gru *L = (od__gru *)l;
    OD_ASSERT(L->x.data); /* backward needs a forward first */
    uint64_t t0 = od_now_ns();
    OD_TRY(od__check_same(l, "output gradient", dy, L->y.ndim, L->y.dims));

    const int N = L->n, T = L->t, I = L->in, H = L->hidden, G = 3 * H;
    od_param *w_ih = l->params[OD__W_IH], *w_hh = l->params[OD__W_HH];
    od_param *b_ih = l->params[OD__B_IH], *b_hh = l->params[OD__B_HH];

    if (dx)
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, dx, L->x.ndim,
                               L->x.dims));
    size_t mark = od_arena_mark(ctx->arena);
    void *p = NULL;
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)N * T * G * sizeof(float), &p));
    float *dxp = p;   /* (N*T, 3H), row n*T + t: input pre-activations */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)T * N * G * sizeof(float), &p));
    float *dhp = p;   /* (T*N, 3H), row t*N + n: hidden projections */
    OD_TRY(od_arena_alloc(ctx->arena, OD_MEM_SCRATCH,
                          (size_t)2 * N * H * sizeof(float), &p));
    float *dh = p;                        /* (N, H) state gradient at t */
    float *dh_prev = dh + (size_t)N * H;  /* (N, H) at t - 1 */

    for (int t = T - 1; t >= 0; t--) {
        /* The output's gradient joins the gradient carried from t + 1. */
        if (L->return_seq) {
            for (int n = 0; n < N; n++)
                for (int j = 0; j < H; j++)
                    dh[(size_t)n * H + j] +=
                        dy->data[((size_t)n * T + t) * H + j];
        } else if (t == T - 1) {
            for (size_t i = 0; i < (size_t)N * H; i++)
                dh[i] += dy->data[i];
        }

        od__gru_step s = {
            .n = N, .t = t, .steps = T, .h = H, .gates = L->gates,
            .hprev = L->hs + (size_t)t * N * H, .dh = dh, .dh_prev = dh_prev,
            .dxp = dxp, .dhp = dhp,
        };
        od__parallel_rows(ctx->pool, N, (size_t)10 * H, od__gru_cell_bwd,
                          &s);
        /* dh_prev (N, H) += dhp_t (N, 3H) W_hh (3H, H). */
        if (t > 0)
            od_gemm(ctx->pool, 0, 0, N, H, G, 1.0f,
                    dhp + (size_t)t * N * G, G, w_hh->value.data, H, 1.0f,
                    dh_prev, H);
        float *swap = dh;
        dh = dh_prev;
        dh_prev = swap;
    }

    double nt = (double)N * T;
    double flops = OD__GRU_CELL_BWD_FLOPS * nt * H
                   + 2.0 * N * (T - 1.0) * G * H;
    double rd = (double)dy->size + 5.0 * nt * H + (double)G * H;
    double wr = 2.0 * nt * G;

    od__rnn_backward_params(ctx, w_ih, w_hh, b_ih, b_hh, N, T, I, H, G,
                            L->x.data, L->hs + (size_t)N * H, dxp, dhp, dx,
                            &flops, &rd, &wr);
    od_arena_release(ctx->arena, mark);
    od__cost(ctx, l, OD_OP_GEMM, OD_PHASE_BACKWARD, flops, rd, wr, t0);
    return OD_OK;
}

/* PyTorch's nn.GRU: every weight and bias U(-1/sqrt(H), 1/sqrt(H)). */
static void od__gru_init(od_layer *l, od_rng *rng)
{
    od__rnn_init(l, ((od__gru *)l)->hidden, rng);
}

static void od__gru_destroy(od_layer *l)
{
    od__layer_free(l, ((od__gru *)l)->arena);
}

static const od_layer_vtbl od__gru_vtbl = {
    "gru", od__gru_out_shape, od__gru_forward, od__gru_backward,
    od__gru_init, od__gru_destroy, NULL, NULL, NULL,
};

od_status od_gru_create(od_ctx *ctx, const char *name, int in, int hidden,
                        int return_sequences, od_layer **out_layer)
{
    *out_layer = NULL;
    if (in <= 0 || hidden <= 0)
        return od_fail(OD_ERR_INVALID, "gru '%s': sizes must be positive "
                       "(in %d, hidden %d)", name ? name : "", in, hidden);
    od__gru *L = calloc(1, sizeof *L);
    if (!L)
        return od_fail(OD_ERR_NOMEM, "out of host memory for a layer");
    od__layer_init(&L->base, &od__gru_vtbl, name);
    L->arena = ctx->arena;
    L->in = in;
    L->hidden = hidden;
    L->return_seq = return_sequences != 0;

    od_status st = od__rnn_params_new(ctx, &L->base, in, hidden, 3);
    if (st != OD_OK) {
        od__layer_free(&L->base, ctx->arena);
        return st;
    }
    *out_layer = &L->base;
    return OD_OK;
}
