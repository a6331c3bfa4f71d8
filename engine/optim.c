#include "engine/optim.h"

#include <math.h>
#include <stdlib.h>
#include <strings.h>

#include "engine/cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OD__OPTIM_X86 1
#endif

/* Elements per pool task. Updates are element-wise, so any split gives the
 * same bits; the size only trades scheduling overhead for balance. */
#define OD__OPTIM_CHUNK 16384

typedef struct od__pstate {
    float *slot[2];     /* each (size of the parameter), or NULL */
    uint64_t steps;     /* updates this parameter has received */
} od__pstate;

struct od_optim {
    od_ctx *ctx;
    od_model *m;
    od_optim_config cfg;
    int nslots;
    int nparams;
    od__pstate *ps;     /* (nparams) */
    uint64_t steps;
};

/* ---- Configuration ------------------------------------------------------- */

od_optim_config od_optim_config_default(od_optim_kind kind)
{
    od_optim_config c = {0};
    c.kind = kind;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    switch (kind) {
    case OD_OPTIM_SGD:
        c.lr = 0.01f;
        break;
    case OD_OPTIM_ADAM:
        c.lr = 1e-3f;
        break;
    case OD_OPTIM_ADAMW:
        c.lr = 1e-3f;
        c.weight_decay = 0.01f;
        break;
    }
    return c;
}

od_status od_optim_config_check(const od_optim_config *c)
{
    OD_ASSERT(c);
    if (c->kind != OD_OPTIM_SGD && c->kind != OD_OPTIM_ADAM &&
        c->kind != OD_OPTIM_ADAMW)
        return od_fail(OD_ERR_INVALID, "optimiser kind %d is not one of "
                       "sgd, adam, adamw", (int)c->kind);
    if (!(c->lr >= 0.0f) || !isfinite(c->lr))
        return od_fail(OD_ERR_INVALID, "optimiser lr is %g; it must be a "
                       "finite number >= 0", (double)c->lr);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return od_fail(OD_ERR_INVALID, "optimiser weight_decay is %g; it must "
                       "be a finite number >= 0", (double)c->weight_decay);
    if (c->kind == OD_OPTIM_SGD) {
        if (!(c->momentum >= 0.0f) || !isfinite(c->momentum))
            return od_fail(OD_ERR_INVALID, "SGD momentum is %g; it must be "
                           ">= 0", (double)c->momentum);
        if (!isfinite(c->dampening))
            return od_fail(OD_ERR_INVALID, "SGD dampening is %g; it must be "
                           "finite", (double)c->dampening);
        if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
            return od_fail(OD_ERR_INVALID, "SGD with Nesterov momentum needs "
                           "momentum > 0 and dampening 0 (got momentum %g, "
                           "dampening %g)", (double)c->momentum,
                           (double)c->dampening);
        return OD_OK;
    }
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f))
        return od_fail(OD_ERR_INVALID, "%s beta1 is %g; it must be in [0, 1)",
                       od_optim_kind_name(c->kind), (double)c->beta1);
    if (!(c->beta2 >= 0.0f && c->beta2 < 1.0f))
        return od_fail(OD_ERR_INVALID, "%s beta2 is %g; it must be in [0, 1)",
                       od_optim_kind_name(c->kind), (double)c->beta2);
    if (!(c->eps >= 0.0f) || !isfinite(c->eps))
        return od_fail(OD_ERR_INVALID, "%s eps is %g; it must be a finite "
                       "number >= 0", od_optim_kind_name(c->kind),
                       (double)c->eps);
    return OD_OK;
}

static const char *const od__optim_names[] = {"sgd", "adam", "adamw"};

const char *od_optim_kind_name(od_optim_kind kind)
{
    OD_ASSERT(kind >= OD_OPTIM_SGD && kind <= OD_OPTIM_ADAMW);
    return od__optim_names[kind];
}

od_status od_optim_kind_parse(const char *name, od_optim_kind *out)
{
    OD_ASSERT(out);
    for (int k = OD_OPTIM_SGD; k <= OD_OPTIM_ADAMW; k++) {
        if (name && strcasecmp(name, od__optim_names[k]) == 0) {
            *out = (od_optim_kind)k;
            return OD_OK;
        }
    }
    return od_fail(OD_ERR_INVALID, "unknown optimiser '%s'; expected one of "
                   "sgd, adam, adamw", name ? name : "(null)");
}

/* ---- Life cycle ---------------------------------------------------------- */

static int od__slots_for(const od_optim_config *c)
{
    if (c->kind == OD_OPTIM_SGD)
        return c->momentum != 0.0f ? 1 : 0;
    return 2;
}

/* Whether the optimiser updates parameter p on this step. */
static int od__active(const od_param *p)
{
    return p->trainable && p->grad.data != NULL && p->value.size > 0;
}

od_status od_optim_state_ensure(od_optim *o, int index)
{
    OD_ASSERT(o && index >= 0 && index < o->nparams);
    od__pstate *s = &o->ps[index];
    size_t bytes = o->m->params[index]->value.size * sizeof(float);
    for (int k = 0; k < o->nslots; k++) {
        if (s->slot[k])
            continue;
        void *p = NULL;
        od_status st = od_arena_alloc(o->ctx->arena, OD_MEM_OPTIM, bytes, &p);
        if (st != OD_OK) {
            /* Leave the parameter with all of its state or none of it. */
            for (int j = 0; j < k; j++) {
                od_arena_free(o->ctx->arena, s->slot[j]);
                s->slot[j] = NULL;
            }
            return st;
        }
        s->slot[k] = p;
    }
    return OD_OK;
}

od_status od_optim_create(od_ctx *ctx, od_model *m, const od_optim_config *cfg,
                          od_optim **out)
{
    OD_ASSERT(ctx && ctx->arena && m && cfg && out);
    *out = NULL;
    OD_TRY(od_optim_config_check(cfg));

    od_optim *o = calloc(1, sizeof *o);
    if (!o)
        return od_fail(OD_ERR_NOMEM, "host out of memory creating optimiser");
    o->ctx = ctx;
    o->m = m;
    o->cfg = *cfg;
    o->nslots = od__slots_for(cfg);
    o->nparams = m->nparams;
    o->ps = calloc(m->nparams > 0 ? (size_t)m->nparams : 1, sizeof *o->ps);
    if (!o->ps) {
        free(o);
        return od_fail(OD_ERR_NOMEM, "host out of memory creating optimiser");
    }

    for (int i = 0; i < o->nparams; i++) {
        if (!m->params[i]->trainable)
            continue;
        od_status st = od_optim_state_ensure(o, i);
        if (st != OD_OK) {
            od_optim_destroy(o);
            return st;
        }
    }
    *out = o;
    return OD_OK;
}

void od_optim_destroy(od_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->nparams; i++)
        for (int k = 0; k < 2; k++)
            if (o->ps[i].slot[k])
                od_arena_free(o->ctx->arena, o->ps[i].slot[k]);
    free(o->ps);
    free(o);
}

/* ---- Update kernels ---------------------------------------------------------
 * Each updates elements [lo, hi) of one parameter. Scalars that depend only
 * on the step are computed once, in double, by the caller. */

typedef struct od__upd {
    float *p;           /* (n) parameter value */
    const float *g;     /* (n) gradient */
    float *s0, *s1;     /* (n) momentum buffer / first moment; second moment */
    size_t n;
    int first;          /* SGD: first step of this parameter */
    float lr, wd, mu, damp1; /* damp1 = 1 - dampening */
    int nesterov;
    float beta1c, beta2, beta2c; /* 1 - beta1, beta2, 1 - beta2 */
    float step_size;    /* lr / (1 - beta1^t) */
    float bc2_sqrt;     /* sqrt(1 - beta2^t) */
    float eps;
    float decay;        /* AdamW: 1 - lr * wd */
    int decoupled;
} od__upd;

/* Preconditions for both scalar loops: p, g and the state buffers do not
 * overlap. Scalars are copied to locals so that stores through p cannot be
 * taken to change them, and the branches stay outside the loops. */
static void od__sgd_range(const od__upd *u, size_t lo, size_t hi)
{
    float *restrict p = u->p, *restrict b = u->s0;
    const float *restrict g = u->g;
    const float lr = u->lr, wd = u->wd, mu = u->mu, damp1 = u->damp1;

    if (!b) {
        if (wd != 0.0f)
            for (size_t i = lo; i < hi; i++)
                p[i] = p[i] - lr * (g[i] + wd * p[i]);
        else
            for (size_t i = lo; i < hi; i++)
                p[i] = p[i] - lr * g[i];
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
        float bi = u->first ? d : mu * b[i] + damp1 * d;
        b[i] = bi;
        d = u->nesterov ? d + mu * bi : bi;
        p[i] = p[i] - lr * d;
    }
}

static void od__adam_range(const od__upd *u, size_t lo, size_t hi)
{
    float *restrict p = u->p, *restrict m = u->s0, *restrict v = u->s1;
    const float *restrict g = u->g;
    const float wd = u->wd, decay = u->decay, b1c = u->beta1c;
    const float b2 = u->beta2, b2c = u->beta2c, bc2 = u->bc2_sqrt;
    const float eps = u->eps, step = u->step_size;
    const int decoupled = u->decoupled, coupled = !decoupled && wd != 0.0f;
    for (size_t i = lo; i < hi; i++) {
        float pi = p[i], gi = g[i];
        if (decoupled)
            pi = pi * decay;
        else if (coupled)
            gi = gi + wd * pi;
        float mi = m[i] + b1c * (gi - m[i]);
        float vi = b2 * v[i] + b2c * gi * gi;
        float denom = sqrtf(vi) / bc2 + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step * (mi / denom);
    }
}

#ifdef OD__OPTIM_X86
/* The Adam loop in 16 and 8 lanes. Each lane performs the scalar loop's
 * operations in the same order, with separate multiplies and adds (no fused
 * multiply-add) and IEEE square root and division, so every ISA gives the
 * scalar loop's bits. The tail goes to the scalar loop. */
__attribute__((target("avx512f")))
static void od__adam_range_avx512(const od__upd *u, size_t lo, size_t hi)
{
    const __m512 b1c = _mm512_set1_ps(u->beta1c);
    const __m512 b2 = _mm512_set1_ps(u->beta2);
    const __m512 b2c = _mm512_set1_ps(u->beta2c);
    const __m512 bc2 = _mm512_set1_ps(u->bc2_sqrt);
    const __m512 eps = _mm512_set1_ps(u->eps);
    const __m512 step = _mm512_set1_ps(u->step_size);
    const __m512 decay = _mm512_set1_ps(u->decay);
    const __m512 wd = _mm512_set1_ps(u->wd);
    const int coupled = !u->decoupled && u->wd != 0.0f;
    size_t i = lo;
    for (; i + 16 <= hi; i += 16) {
        __m512 p = _mm512_loadu_ps(u->p + i);
        __m512 g = _mm512_loadu_ps(u->g + i);
        __m512 m = _mm512_loadu_ps(u->s0 + i);
        __m512 v = _mm512_loadu_ps(u->s1 + i);
        if (u->decoupled)
            p = _mm512_mul_ps(p, decay);
        else if (coupled)
            g = _mm512_add_ps(g, _mm512_mul_ps(wd, p));
        m = _mm512_add_ps(m, _mm512_mul_ps(b1c, _mm512_sub_ps(g, m)));
        v = _mm512_add_ps(_mm512_mul_ps(b2, v),
                          _mm512_mul_ps(_mm512_mul_ps(b2c, g), g));
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(v), bc2),
                                   eps);
        p = _mm512_sub_ps(p, _mm512_mul_ps(step, _mm512_div_ps(m, den)));
        _mm512_storeu_ps(u->p + i, p);
        _mm512_storeu_ps(u->s0 + i, m);
        _mm512_storeu_ps(u->s1 + i, v);
    }
    od__adam_range(u, i, hi);
}

__attribute__((target("avx2")))
static void od__adam_range_avx2(const od__upd *u, size_t lo, size_t hi)
{
    const __m256 b1c = _mm256_set1_ps(u->beta1c);
    const __m256 b2 = _mm256_set1_ps(u->beta2);
    const __m256 b2c = _mm256_set1_ps(u->beta2c);
    const __m256 bc2 = _mm256_set1_ps(u->bc2_sqrt);
    const __m256 eps = _mm256_set1_ps(u->eps);
    const __m256 step = _mm256_set1_ps(u->step_size);
    const __m256 decay = _mm256_set1_ps(u->decay);
    const __m256 wd = _mm256_set1_ps(u->wd);
    const int coupled = !u->decoupled && u->wd != 0.0f;
    size_t i = lo;
    for (; i + 8 <= hi; i += 8) {
        __m256 p = _mm256_loadu_ps(u->p + i);
        __m256 g = _mm256_loadu_ps(u->g + i);
        __m256 m = _mm256_loadu_ps(u->s0 + i);
        __m256 v = _mm256_loadu_ps(u->s1 + i);
        if (u->decoupled)
            p = _mm256_mul_ps(p, decay);
        else if (coupled)
            g = _mm256_add_ps(g, _mm256_mul_ps(wd, p));
        m = _mm256_add_ps(m, _mm256_mul_ps(b1c, _mm256_sub_ps(g, m)));
        v = _mm256_add_ps(_mm256_mul_ps(b2, v),
                          _mm256_mul_ps(_mm256_mul_ps(b2c, g), g));
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2),
                                   eps);
        p = _mm256_sub_ps(p, _mm256_mul_ps(step, _mm256_div_ps(m, den)));
        _mm256_storeu_ps(u->p + i, p);
        _mm256_storeu_ps(u->s0 + i, m);
        _mm256_storeu_ps(u->s1 + i, v);
    }
    od__adam_range(u, i, hi);
}
#endif

static void od__upd_task(void *ctx, int task, int worker)
{
    (void)worker;
    const od__upd *u = ctx;
    size_t lo = (size_t)task * OD__OPTIM_CHUNK;
    size_t hi = lo + OD__OPTIM_CHUNK < u->n ? lo + OD__OPTIM_CHUNK : u->n;
    if (!u->s1) {
        od__sgd_range(u, lo, hi);
        return;
    }
#ifdef OD__OPTIM_X86
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__adam_range_avx512(u, lo, hi);
        return;
    case OD_ISA_AVX2:
        od__adam_range_avx2(u, lo, hi);
        return;
    case OD_ISA_PORTABLE:
        break;
    }
#endif
    od__adam_range(u, lo, hi);
}

int od_optim_fusable(const od_optim *o, float lr, float *alpha, float *beta)
{
    const od_optim_config *c = &o->cfg;
    if (lr < 0.0f)
        lr = c->lr;
    if (c->kind != OD_OPTIM_SGD || c->momentum != 0.0f || !isfinite(lr))
        return 0;
    *alpha = -lr;
    *beta = (float)(1.0 - (double)lr * (double)c->weight_decay);
    return 1;
}

od_status od_optim_step(od_optim *o, float lr)
{
    OD_ASSERT(o);
    od_model *m = o->m;
    OD_ASSERT(m->nparams == o->nparams); /* parameters added after create */
    const od_optim_config *c = &o->cfg;
    if (lr < 0.0f)
        lr = c->lr;
    if (!isfinite(lr))
        return od_fail(OD_ERR_INVALID, "%s step: the learning rate is %g; "
                       "check the schedule's settings",
                       od__optim_names[c->kind], (double)lr);
    uint64_t t0 = od_now_ns();

    /* State for parameters made trainable since creation, before any update,
     * so that a budget failure leaves every parameter as it was. */
    for (int i = 0; i < o->nparams; i++)
        if (od__active(m->params[i]))
            OD_TRY(od_optim_state_ensure(o, i));

    double elems = 0.0;
    for (int i = 0; i < o->nparams; i++) {
        od_param *prm = m->params[i];
        if (!od__active(prm))
            continue;
        od__pstate *s = &o->ps[i];
        OD_ASSERT(prm->grad.size == prm->value.size);
        s->steps++;
        if (prm->applied) {   /* updated by the backward pass already */
            prm->applied = 0;
            continue;
        }

        od__upd u = {0};
        u.p = prm->value.data;
        u.g = prm->grad.data;
        u.s0 = s->slot[0];
        u.s1 = o->nslots == 2 ? s->slot[1] : NULL;
        u.n = prm->value.size;
        u.lr = lr;
        u.wd = c->weight_decay;
        if (c->kind == OD_OPTIM_SGD) {
            u.first = s->steps == 1;
            u.mu = c->momentum;
            u.damp1 = 1.0f - c->dampening;
            u.nesterov = c->nesterov;
        } else {
            double t = (double)s->steps;
            double bc1 = 1.0 - pow((double)c->beta1, t);
            double bc2 = 1.0 - pow((double)c->beta2, t);
            u.beta1c = 1.0f - c->beta1;
            u.beta2 = c->beta2;
            u.beta2c = 1.0f - c->beta2;
            u.step_size = (float)((double)lr / bc1);
            u.bc2_sqrt = (float)sqrt(bc2);
            u.eps = c->eps;
            u.decoupled = c->kind == OD_OPTIM_ADAMW;
            u.decay = (float)(1.0 - (double)lr * (double)c->weight_decay);
        }
        int ntasks = (int)((u.n + OD__OPTIM_CHUNK - 1) / OD__OPTIM_CHUNK);
        od_pool_run(o->ctx->pool, ntasks, od__upd_task, &u);
        elems += (double)u.n;
    }
    o->steps++;

    /* Cost: flops and bytes per element of each rule, as written above
     * (a square root and a division count as one flop each). */
    double flops_per, rd_per, wr_per;
    if (c->kind == OD_OPTIM_SGD) {
        flops_per = 2.0 + (c->weight_decay != 0.0f ? 2.0 : 0.0);
        rd_per = 2.0;
        wr_per = 1.0;
        if (o->nslots) {
            flops_per += 3.0 + (c->nesterov ? 2.0 : 0.0);
            rd_per += 1.0;
            wr_per += 1.0;
        }
    } else {
        flops_per = 12.0 + (c->weight_decay != 0.0f ? 2.0 : 0.0);
        rd_per = 4.0;
        wr_per = 3.0;
    }
    od_trace_add(o->ctx->trace, OD_OP_OPTIM, OD_PHASE_UPDATE,
                 od__optim_names[c->kind], flops_per * elems,
                 rd_per * elems * sizeof(float),
                 wr_per * elems * sizeof(float), od_now_ns() - t0);
    return OD_OK;
}

/* ---- State accessors ----------------------------------------------------- */

const od_optim_config *od_optim_get_config(const od_optim *o)
{
    return &o->cfg;
}

od_model *od_optim_model(const od_optim *o) { return o->m; }
uint64_t od_optim_step_count(const od_optim *o) { return o->steps; }
void od_optim_set_step_count(od_optim *o, uint64_t steps) { o->steps = steps; }
int od_optim_slot_count(const od_optim *o) { return o->nslots; }

float *od_optim_state(const od_optim *o, int index, int slot)
{
    OD_ASSERT(index >= 0 && index < o->nparams);
    OD_ASSERT(slot >= 0 && slot < o->nslots);
    return o->ps[index].slot[slot];
}

uint64_t od_optim_param_steps(const od_optim *o, int index)
{
    OD_ASSERT(index >= 0 && index < o->nparams);
    return o->ps[index].steps;
}

void od_optim_set_param_steps(od_optim *o, int index, uint64_t steps)
{
    OD_ASSERT(index >= 0 && index < o->nparams);
    o->ps[index].steps = steps;
}

/* ---- Schedules ----------------------------------------------------------- */

static const char *const od__sched_names[] = {"constant", "step", "cosine"};

const char *od_sched_kind_name(od_sched_kind kind)
{
    OD_ASSERT(kind >= OD_SCHED_CONSTANT && kind <= OD_SCHED_COSINE);
    return od__sched_names[kind];
}

od_status od_sched_kind_parse(const char *name, od_sched_kind *out)
{
    OD_ASSERT(out);
    for (int k = OD_SCHED_CONSTANT; k <= OD_SCHED_COSINE; k++) {
        if (name && strcasecmp(name, od__sched_names[k]) == 0) {
            *out = (od_sched_kind)k;
            return OD_OK;
        }
    }
    return od_fail(OD_ERR_INVALID, "unknown learning-rate schedule '%s'; "
                   "expected one of constant, step, cosine",
                   name ? name : "(null)");
}

od_status od_schedule_check(const od_schedule *s)
{
    OD_ASSERT(s);
    if (s->kind != OD_SCHED_CONSTANT && s->kind != OD_SCHED_STEP &&
        s->kind != OD_SCHED_COSINE)
        return od_fail(OD_ERR_INVALID, "schedule kind %d is not one of "
                       "constant, step, cosine", (int)s->kind);
    if (!(s->base_lr >= 0.0f) || !isfinite(s->base_lr))
        return od_fail(OD_ERR_INVALID, "schedule base_lr is %g; it must be a "
                       "finite number >= 0", (double)s->base_lr);
    if (s->warmup_steps < 0)
        return od_fail(OD_ERR_INVALID, "schedule warmup_steps is %ld; it must "
                       "be >= 0", s->warmup_steps);
    if (s->kind == OD_SCHED_STEP) {
        if (s->step_size <= 0)
            return od_fail(OD_ERR_INVALID, "step schedule step_size is %ld; it "
                           "must be > 0", s->step_size);
        if (!(s->gamma >= 0.0f) || !isfinite(s->gamma))
            return od_fail(OD_ERR_INVALID, "step schedule gamma is %g; it must "
                           "be a finite number >= 0", (double)s->gamma);
    }
    if (s->kind == OD_SCHED_COSINE) {
        if (s->total_steps <= s->warmup_steps)
            return od_fail(OD_ERR_INVALID, "cosine schedule total_steps (%ld) "
                           "must exceed warmup_steps (%ld)", s->total_steps,
                           s->warmup_steps);
        if (!(s->min_lr >= 0.0f) || !isfinite(s->min_lr))
            return od_fail(OD_ERR_INVALID, "cosine schedule min_lr is %g; it "
                           "must be a finite number >= 0", (double)s->min_lr);
    }
    return OD_OK;
}

float od_schedule_lr(const od_schedule *s, long step)
{
    OD_ASSERT(s && step >= 0);
    double base = s->base_lr;
    if (step < s->warmup_steps)
        return (float)(base * (double)(step + 1) / (double)s->warmup_steps);
    long t = step - s->warmup_steps;

    switch (s->kind) {
    case OD_SCHED_CONSTANT:
        return s->base_lr;
    case OD_SCHED_STEP:
        OD_ASSERT(s->step_size > 0);
        return (float)(base * pow((double)s->gamma,
                                  (double)(t / s->step_size)));
    case OD_SCHED_COSINE: {
        long span = s->total_steps - s->warmup_steps;
        OD_ASSERT(span > 0);
        if (t >= span)
            return s->min_lr;
        double lo = s->min_lr;
        double c = cos(M_PI * (double)t / (double)span);
        return (float)(lo + (base - lo) * (1.0 + c) / 2.0);
    }
    }
    OD_ASSERT(!"unknown schedule kind");
    return 0.0f;
}
