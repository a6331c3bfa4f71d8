/* Finite-difference gradient checks of layers and models (see
 * gradcheck.h for the loss, the error measure and the kink rule). */
#include "engine/gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The scalar loss at the current values of the input and parameters. */
typedef od_status (*od__loss_fn)(void *user, double *loss);

typedef struct od__check {
    od_ctx *ctx;
    od__loss_fn loss;
    void *user;
    float step;
    int max_per_tensor;
    double rel_floor;
    int skip_kinks;
    int high_order;
    double kink_tol;
    double loss0;       /* the loss at the unperturbed point */
    od_rng rng;
    od_gradcheck_result *res;
} od__check;

/* The loss with the step's memory returned afterwards. */
static od_status od__eval(od__check *c, double *loss)
{
    size_t mark = od_arena_mark(c->ctx->arena);
    od_status st = c->loss(c->user, loss);
    od_arena_release(c->ctx->arena, mark);
    return st;
}

/* Compare grad (n) with central differences of the loss over v (n), on all
 * coordinates or on max_per_tensor drawn at random (repeats possible);
 * *worst gets the tensor's worst error. */
static od_status od__check_tensor(od__check *c, const char *name, float *v,
                                  const float *grad, size_t n, double *worst)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)grad[i]));
    double floor_abs = c->rel_floor * scale;
    if (floor_abs < 1e-12)
        floor_abs = 1e-12;

    size_t count = n <= (size_t)c->max_per_tensor ? n
                                                  : (size_t)c->max_per_tensor;
    for (size_t k = 0; k < count; k++) {
        size_t i = count == n ? k : (size_t)od_rng_below(&c->rng, n);
        float orig = v[i];
        float up = orig + c->step, down = orig - c->step;
        float up2 = orig + 2.0f * c->step, down2 = orig - 2.0f * c->step;
        double f_up, f_down, f_up2 = 0, f_down2 = 0;

        v[i] = up;
        od_status st = od__eval(c, &f_up);
        v[i] = down;
        if (st == OD_OK)
            st = od__eval(c, &f_down);
        if (c->high_order) {
            v[i] = up2;
            if (st == OD_OK)
                st = od__eval(c, &f_up2);
            v[i] = down2;
            if (st == OD_OK)
                st = od__eval(c, &f_down2);
        }
        v[i] = orig;
        OD_TRY(st);

        /* The steps actually taken, after rounding to float. */
        double h_up = (double)up - orig, h_down = (double)orig - down;
        double num = (f_up - f_down) / (h_up + h_down);
        if (c->high_order) {
            double wide = (f_up2 - f_down2) / ((double)up2 - (double)down2);
            num = (4.0 * num - wide) / 3.0;
        }
        double ana = grad[i];
        double denom = fmax(fmax(fabs(ana), fabs(num)), floor_abs);
        double err = fabs(ana - num) / denom;

        /* Next to a kink the one-sided slopes differ by about twice the
         * disagreement; a wrong gradient on a smooth stretch does not. */
        if (c->skip_kinks && err > c->kink_tol) {
            double s_up = (f_up - c->loss0) / h_up;
            double s_down = (c->loss0 - f_down) / h_down;
            if (fabs(ana - num) <= fabs(s_up - s_down)) {
                c->res->skipped++;
                continue;
            }
        }
        c->res->checked++;
        if (err > *worst)
            *worst = err;
        if (c->res->checked == 1 || err > c->res->max_rel_err) {
            c->res->max_rel_err = err;
            snprintf(c->res->worst, sizeof c->res->worst, "%s[%zu]", name,
                     i);
        }
    }
    return OD_OK;
}

static void od__check_setup(od__check *c, od_ctx *ctx,
                            const od_gradcheck_opts *opts,
                            od_gradcheck_result *res)
{
    memset(c, 0, sizeof *c);
    memset(res, 0, sizeof *res);
    c->ctx = ctx;
    c->step = opts && opts->step > 0 ? opts->step : 1e-2f;
    c->max_per_tensor = opts && opts->max_per_tensor > 0
                            ? opts->max_per_tensor : 64;
    c->rel_floor = opts && opts->rel_floor > 0 ? opts->rel_floor : 1e-2;
    c->skip_kinks = opts ? opts->skip_kinks : 0;
    c->high_order = opts ? opts->high_order : 0;
    c->kink_tol = opts && opts->kink_tol > 0 ? opts->kink_tol : 1e-2;
    od_rng_seed(&c->rng, opts ? opts->seed : 0, 0x67726164ull);
    c->res = res;
}

/* Compare the gradients of every trainable parameter of l. */
static od_status od__check_params(od__check *c, od_layer *l)
{
    for (int j = 0; j < l->nparams; j++) {
        od_param *p = l->params[j];
        if (!p->trainable || !p->grad.data)
            continue;
        OD_TRY(od__check_tensor(c, p->name, p->value.data, p->grad.data,
                                p->value.size, &c->res->param_rel_err));
    }
    return OD_OK;
}

/* ---- One layer ----------------------------------------------------------- */

typedef struct od__layer_loss {
    od_ctx *ctx;
    od_layer *l;
    const od_tensor *x;
    const od_tensor *probe;
} od__layer_loss;

static od_status od__layer_loss_fn(void *user, double *loss)
{
    od__layer_loss *u = user;
    od_tensor y;
    OD_TRY(u->l->vt->forward(u->l, u->ctx, u->x, &y, 1));
    if (y.size != u->probe->size)
        return od_fail(OD_ERR_MISMATCH, "gradient check of '%s': the probe "
                       "has %zu elements but the output has %zu",
                       u->l->name, u->probe->size, y.size);
    double s = 0;
    for (size_t i = 0; i < y.size; i++)
        s += (double)y.data[i] * u->probe->data[i];
    *loss = s;
    return OD_OK;
}

static od_status od__gradcheck_layer(od__check *c, od_layer *l, od_tensor *x,
                                     const od_tensor *probe, int check_input)
{
    od_ctx *ctx = c->ctx;
    for (int j = 0; j < l->nparams; j++)
        if (l->params[j]->grad.data)
            memset(l->params[j]->grad.data, 0,
                   l->params[j]->grad.size * sizeof(float));

    /* The probe r, then the analytic gradients from dy = r. */
    od_tensor y, dx, r;
    OD_TRY(l->vt->forward(l, ctx, x, &y, 1));
    if (probe) {
        if (probe->size != y.size)
            return od_fail(OD_ERR_MISMATCH, "gradient check of '%s': the "
                           "probe has %zu elements but the output has %zu",
                           l->name, probe->size, y.size);
        r = od_tensor_reshape(probe, y.ndim, y.dims);
    } else {
        OD_TRY(od_tensor_alloc(ctx->arena, OD_MEM_ACT, &r, y.ndim, y.dims));
        for (size_t i = 0; i < r.size; i++)
            r.data[i] = 2.0f * od_rng_uniformf(&c->rng) - 1.0f;
    }
    OD_TRY(l->vt->backward(l, ctx, &r, check_input ? &dx : NULL));

    od__layer_loss u = {ctx, l, x, &r};
    c->loss = od__layer_loss_fn;
    c->user = &u;
    OD_TRY(od__eval(c, &c->loss0));
    if (check_input)
        OD_TRY(od__check_tensor(c, "input", x->data, dx.data, x->size,
                                &c->res->input_rel_err));
    return od__check_params(c, l);
}

od_status od_gradcheck_layer(od_ctx *ctx, od_layer *l, od_tensor *x,
                             const od_tensor *probe, int check_input,
                             const od_gradcheck_opts *opts,
                             od_gradcheck_result *res)
{
    od__check c;
    od__check_setup(&c, ctx, opts, res);

    /* The perturbed forwards are not part of any step's cost. */
    od_trace *trace = ctx->trace;
    ctx->trace = NULL;
    size_t mark = od_arena_mark(ctx->arena);
    od_status st = od__gradcheck_layer(&c, l, x, probe, check_input);
    od_arena_release(ctx->arena, mark);
    ctx->trace = trace;
    return st;
}

/* ---- A model ------------------------------------------------------------- */

typedef struct od__model_loss {
    od_model *m;
    const od_tensor *x;
    const int32_t *labels;
} od__model_loss;

/* The mean cross-entropy computed here in double from the float logits,
 * independently of the softmax kernel (whose gradient is under test), so
 * that the loss adds no float round-off of its own. */
static od_status od__model_loss_fn(void *user, double *loss)
{
    od__model_loss *u = user;
    od_tensor out;
    OD_TRY(od_model_forward(u->m, u->x, 1, &out));
    const int cols = out.dims[out.ndim - 1];
    const size_t rows = out.size / (size_t)cols;
    double total = 0;
    int count = 0;
    for (size_t r = 0; r < rows; r++) {
        if (u->labels[r] < 0)
            continue;
        const float *z = out.data + r * cols;
        double zmax = z[0], sum = 0;
        for (int j = 1; j < cols; j++)
            zmax = fmax(zmax, z[j]);
        for (int j = 0; j < cols; j++)
            sum += exp(z[j] - zmax);
        total += log(sum) + zmax - z[u->labels[r]];
        count++;
    }
    *loss = count ? total / count : 0.0;
    return OD_OK;
}

static od_status od__gradcheck_model(od__check *c, od_model *m, od_tensor *x,
                                     const int32_t *labels, int check_input)
{
    od_tensor out, dout, dx;
    double loss;
    od_model_zero_grad(m);
    OD_TRY(od_model_forward(m, x, 1, &out));
    OD_TRY(od_model_xent(m, &out, labels, &loss, NULL, NULL, &dout));
    OD_TRY(od_model_backward_input(m, &dout, check_input ? &dx : NULL));

    od__model_loss u = {m, x, labels};
    c->loss = od__model_loss_fn;
    c->user = &u;
    OD_TRY(od__eval(c, &c->loss0));
    if (check_input)
        OD_TRY(od__check_tensor(c, "input", x->data, dx.data, x->size,
                                &c->res->input_rel_err));
    for (int i = 0; i < m->nlayers; i++)
        OD_TRY(od__check_params(c, m->layers[i]));
    return OD_OK;
}

od_status od_gradcheck_model(od_model *m, od_tensor *x, const int32_t *labels,
                             int check_input, const od_gradcheck_opts *opts,
                             od_gradcheck_result *res)
{
    od_ctx *ctx = m->ctx;
    od__check c;
    od__check_setup(&c, ctx, opts, res);

    od_trace *trace = ctx->trace;
    ctx->trace = NULL;
    size_t mark = od_arena_mark(ctx->arena);
    od_status st = od__gradcheck_model(&c, m, x, labels, check_input);
    od_arena_release(ctx->arena, mark);
    ctx->trace = trace;
    return st;
}
