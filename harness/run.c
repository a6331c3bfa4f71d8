#include "harness/run.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "engine/checkpoint.h"
#include "engine/cpu.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/pool.h"
#include "engine/rng.h"
#include "harness/dp_bridge.h"
#include "harness/device_bridge.h"
#include "harness/json.h"
#include "harness/log.h"
#include "harness/results_bridge.h"
#include "workloads/workload.h"

/* ---- Stopping on request ------------------------------------------------- */

static volatile sig_atomic_t od__stop;

void od_run_request_stop(void) { od__stop = 1; }
int od_run_stop_requested(void) { return od__stop != 0; }
void od_run_clear_stop(void) { od__stop = 0; }

static void od__on_signal(int sig)
{
    (void)sig;
    od__stop = 1;
}

void od_run_install_signal_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = od__on_signal;
    sigemptyset(&sa.sa_mask);
    /* The first signal asks for a clean stop; the handler then reverts to
     * the default, so a second one ends the process at once. */
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* ---- The run's state ----------------------------------------------------- */

typedef struct od__run {
    const od_config *cfg;
    const od_workload *wl;
    od_dataset train, test;
    od_pool *pool;
    od_arena *arena;
    od_trace trace;
    od_ctx ctx;
    od_model *model;
    od_optim *optim;
    od_schedule sched;
    int32_t *order;          /* (train.n) this epoch's sample order */
    int32_t *eval_idx;       /* (batch_size) indices of one test batch */
    int64_t steps_per_epoch;
    int64_t start_step;      /* from a resumed checkpoint, else 0 */
    od_dpsgd *dp;            /* DP-SGD when dp = true, else NULL */
    od_results_run *store;   /* the results file; NULL: none */
    od_device_bridge dev;    /* the emulated phone; inactive when none */
    int microbatch;          /* examples per pass; 0: the whole batch */
    uint64_t epoch_t0_ns;    /* host clock at the start of this epoch */
} od__run;

static void od__run_free(od__run *s)
{
    od_results_abandon(s->store);
    od_device_bridge_close(&s->dev);
    od_dpsgd_destroy(s->dp);
    free(s->order);
    free(s->eval_idx);
    if (s->optim)
        od_optim_destroy(s->optim);
    if (s->model)
        od_model_destroy(s->model);
    if (s->arena)
        od_arena_destroy(s->arena);
    od_trace_free(&s->trace);
    if (s->pool)
        od_pool_destroy(s->pool);
    od_dataset_free(&s->train);
    od_dataset_free(&s->test);
}

/* Allocate one batch from the step memory and copy the samples idx[0..n)
 * of d into it: x (n, sample_dims...) and labels (n, labels_per_sample). */
static od_status od__gather(od__run *s, const od_dataset *d,
                            const int32_t *idx, int n, od_tensor *x,
                            int32_t **labels)
{
    int dims[OD_MAX_DIMS] = {n};
    for (int i = 0; i < d->sample_ndim; i++)
        dims[1 + i] = d->sample_dims[i];
    OD_TRY(od_tensor_alloc_uninit(s->arena, OD_MEM_ACT, x,
                                  1 + d->sample_ndim, dims));
    size_t label_bytes = (size_t)n * (size_t)d->labels_per_sample *
                         sizeof(int32_t);
    void *y;
    OD_TRY(od_arena_alloc(s->arena, OD_MEM_SCRATCH, label_bytes, &y));
    *labels = y;

    uint64_t t0 = od_now_ns();
    OD_TRY(od_dataset_gather(d, idx, n, x->data, *labels));
    double bytes = (double)(x->size * sizeof(float) + label_bytes);
    od_trace_add(&s->trace, OD_OP_COPY, OD_PHASE_OTHER, "gather", 0, bytes,
                 bytes, od_now_ns() - t0);
    return OD_OK;
}

/* Forward, cross-entropy and backward of one batch; gradients are zeroed
 * first. *loss is the batch's mean loss over *count rows. With lr >= 0 and
 * a plain SGD optimiser, a batch taken in one pass applies the update to
 * the layers that can take it during the backward pass (see
 * od_model_backward_apply); the od_optim_step(lr) that follows updates the
 * rest. */
static od_status od__forward_backward(od__run *s, const int32_t *idx, int n,
                                      float lr, double *loss, int *count)
{
    const od_dataset *d = &s->train;
    int mb = s->microbatch > 0 && s->microbatch < n ? s->microbatch : n;

    /* With micro-batches, each one's gradient is scaled to its share of
     * the rows that count in the whole batch, so that the accumulated
     * gradient is the batch's mean, as without splitting. */
    int total = 0;
    if (mb < n)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < d->labels_per_sample; j++)
                total += d->y[(size_t)idx[i] * d->labels_per_sample + j] >= 0;

    double loss_sum = 0;
    int counted = 0;
    if (n == 0)
        od_model_zero_grad(s->model);
    for (int start = 0; start < n; start += mb) {
        int k = n - start < mb ? n - start : mb;
        size_t mark = od_arena_mark(s->arena);
        od_tensor x, logits, dlogits;
        int32_t *labels;
        double part_loss;
        int part_count;
        OD_TRY(od__gather(s, d, idx + start, k, &x, &labels));
        OD_TRY(od_model_forward(s->model, &x, 1, &logits));
        OD_TRY(od_model_xent(s->model, &logits, labels, &part_loss,
                             &part_count, NULL, &dlogits));
        if (mb < n) {
            float share = total ? (float)part_count / (float)total : 0.0f;
            for (size_t i = 0; i < dlogits.size; i++)
                dlogits.data[i] *= share;
        }
        /* The first micro-batch sets the gradients, the others add. */
        float alpha, beta;
        if (mb == n && lr >= 0 &&
            od_optim_fusable(s->optim, lr, &alpha, &beta))
            OD_TRY(od_model_backward_apply(s->model, &dlogits, alpha, beta));
        else
            OD_TRY(start == 0 ? od_model_backward_fresh(s->model, &dlogits)
                              : od_model_backward(s->model, &dlogits));
        if (mb < n)
            od_arena_release(s->arena, mark);
        loss_sum += part_loss * part_count;
        counted += part_count;
    }
    *loss = counted ? loss_sum / counted : 0.0;
    *count = counted;
    return OD_OK;
}

/* od__gather for DP-SGD, which draws its own batches. */
static od_status od__dp_fetch(void *arg, const int32_t *idx, int n,
                              od_tensor *x, int32_t **labels)
{
    od__run *s = arg;
    return od__gather(s, &s->train, idx, n, x, labels);
}

/* Mean loss and accuracy over the test set, in batches, without training,
 * and the workload's own figures into metrics (count 0 when it has none).
 * Neither the trace nor the step counter moves. */
static od_status od__evaluate(od__run *s, double *accuracy, double *loss,
                              od_metrics *metrics)
{
    od_metric_acc acc;
    od_metric_acc_init(&acc);
    /* Evaluate in the training pass size, which is known to fit. */
    int bs = (int)s->cfg->batch_size;
    if (s->microbatch > 0 && s->microbatch < bs)
        bs = s->microbatch;
    double loss_sum = 0;
    int64_t rows = 0, correct = 0;
    int trace_was = s->trace.enabled;
    s->trace.enabled = 0;

    od_status st = OD_OK;
    for (int start = 0; start < s->test.n && st == OD_OK; start += bs) {
        int n = s->test.n - start < bs ? s->test.n - start : bs;
        for (int i = 0; i < n; i++)
            s->eval_idx[i] = start + i;
        od_arena_reset_step(s->arena);

        od_tensor x, logits;
        int32_t *labels;
        double batch_loss;
        int count, batch_correct;
        st = od__gather(s, &s->test, s->eval_idx, n, &x, &labels);
        if (st == OD_OK)
            st = od_model_forward(s->model, &x, 0, &logits);
        if (st == OD_OK)
            st = od_model_xent(s->model, &logits, labels, &batch_loss, &count,
                               &batch_correct, NULL);
        if (st == OD_OK) {
            loss_sum += batch_loss * count;
            rows += count;
            correct += batch_correct;
            od_metric_acc_add(&acc, &logits, labels);
        }
    }
    od_arena_reset_step(s->arena);
    s->trace.enabled = trace_was;
    *accuracy = rows ? (double)correct / (double)rows : NAN;
    *loss = rows ? loss_sum / (double)rows : NAN;
    memset(metrics, 0, sizeof *metrics);
    if (st == OD_OK && s->wl->extra_metrics)
        s->wl->extra_metrics(&acc, metrics);
    return st;
}

/* A NOMEM status from setting up, with what to change. per_step: the
 * failure came from one step's memory, which batch_size scales. */
static od_status od__budget_fail(const od__run *s, const char *during,
                                 int per_step)
{
    char budget[32], what[700], why[1024];
    od_format_size(od_arena_budget(s->arena), budget, sizeof budget);
    if (s->cfg->mem_budget == 0 && s->cfg->device[0])
        snprintf(what, sizeof what, "the memory share of device %s (%s)",
                 s->cfg->device, budget);
    else
        snprintf(what, sizeof what, "mem_budget = %s", budget);
    snprintf(why, sizeof why, "%s", od_error_message());
    if (!per_step)
        return od_fail(OD_ERR_NOMEM, "%s is too small for %s of %s: %s. "
                       "Raise mem_budget (0 = unlimited)", what, during,
                       s->wl->name, why);
    return od_fail(OD_ERR_NOMEM, "%s is too small for %s of %s at "
                   "batch_size = %lld: %s. Use a smaller batch_size, "
                   "micro-batches (microbatch=N, or memory_policy=adapt to "
                   "find one) or a larger mem_budget", what, during,
                   s->wl->name, (long long)s->cfg->batch_size, why);
}

/* Threads and CPU binding. */
static od_status od__setup_pool(od__run *s, od_run_result *r)
{
    int threads = (int)s->cfg->threads;
    if (threads == 0)
        threads = od_topology_default_threads();
    r->threads = threads;

    const char *why;
    int *cpus = r->cpus;
    if (od_topology_pick_cpus(threads, cpus, &why)) {
        r->ncpus = threads;
    } else {
        cpus = NULL;
        od_log_debug("running unbound: %s", why);
    }
    s->pool = od_pool_create(threads, cpus);
    if (!s->pool)
        return od_fail(OD_ERR_NOMEM, "cannot start %d threads", threads);
    r->bound = od_pool_bound(s->pool);
    if (cpus && !r->bound) {
        r->ncpus = 0;
        od_log_debug("the OS refused CPU binding: running unbound");
    }
    if (od_log_enabled(OD_LOG_DEBUG)) {
        od_host h;
        od_host_describe(&h);
        char host[512];
        od_host_summary(&h, host, sizeof host);
        od_log_debug("host: %s", host);
        od_log_debug("kernels: %s", r->isa);
    }
    if (r->bound && od_log_enabled(OD_LOG_DEBUG)) {
        char list[256] = "";
        size_t o = 0;
        for (int i = 0; i < r->ncpus && o + 12 < sizeof list; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%d",
                                  i ? "," : "", r->cpus[i]);
        od_log_debug("%d thread%s bound to CPUs %s", threads,
                     threads == 1 ? "" : "s", list);
    }
    return OD_OK;
}

/* Everything before the training loop: data, memory, model, optimiser. */
static void od__device_opts(const od_config *c, od_device_opts *o)
{
    od_device_opts_defaults(o);
    snprintf(o->device, sizeof o->device, "%s", c->device);
    o->ambient_c = c->ambient_c;
    snprintf(o->governor, sizeof o->governor, "%s", c->governor);
    snprintf(o->placement, sizeof o->placement, "%s", c->placement);
    o->device_threads = (int)c->device_threads;
    o->battery_start_pct = c->battery_start_pct;
    snprintf(o->battery_model, sizeof o->battery_model, "%s",
             c->battery_model);
    o->stop_below_pct = c->stop_below_pct;
    o->charging = c->charging;
    o->only_while_charging = c->only_while_charging;
    o->charge_current_ma = c->charge_current_ma;
    o->pause_skin_c = c->pause_skin_c;
    o->max_freq_khz = c->max_freq_khz;
    o->pace_realtime = strcmp(c->pace, "realtime") == 0;
}

static od_status od__setup(od__run *s, od_run_result *r)
{
    const od_config *c = s->cfg;
    OD_TRY(od_config_validate(c));
    OD_TRY(od_dp_config_check(c));
    OD_TRY(od_workload_lookup(c->workload, &s->wl));
    snprintf(r->workload, sizeof r->workload, "%s", s->wl->name);
    snprintf(r->isa, sizeof r->isa, "%s", od_isa_name(od_cpu_isa()));
    r->seed = (uint64_t)c->seed;
    r->batch_size = (int)c->batch_size;
    if (c->train_subset > INT32_MAX || c->test_subset > INT32_MAX)
        return od_fail(OD_ERR_INVALID, "train_subset and test_subset must be "
                       "below 2^31");

    /* Data. The loader's message says how to install missing data. */
    od_workload_opts wo;
    od_workload_opts_init(&wo);
    wo.data_dir = c->data_dir;
    wo.train_subset = (int)c->train_subset;
    wo.test_subset = (int)c->test_subset;
    wo.seed = (uint64_t)c->seed;
    wo.quiet = !od_log_enabled(OD_LOG_INFO);
    wo.threads = (int)c->threads;
    OD_TRY(s->wl->load(&wo, &s->train, &s->test));
    if (s->train.n == 0)
        return od_fail(OD_ERR_INVALID, "workload %s has no training samples",
                       s->wl->name);
    r->train_size = s->train.n;
    r->test_size = s->test.n;
    od_log_debug("data: %d training and %d test samples of %s",
                 s->train.n, s->test.n, s->wl->data_source);

    OD_TRY(od__setup_pool(s, r));

    /* The emulated phone, if any: its app memory share is the budget
     * unless mem_budget sets one. */
    od_device_opts dopts;
    od__device_opts(c, &dopts);
    OD_TRY(od_device_bridge_open(&s->dev, &dopts));
    uint64_t budget = c->mem_budget ? c->mem_budget
                                    : od_device_bridge_mem_budget_bytes(&s->dev);
    r->mem_budget_bytes = budget;

    /* Memory, model and optimiser, all under the budget. */
    s->arena = od_arena_create((size_t)budget);
    if (!s->arena)
        return od_fail(OD_ERR_NOMEM, "out of host memory");
    od_trace_init(&s->trace);
    od_trace_set_observer(&s->trace, od_device_bridge_observe, &s->dev);
    s->ctx = (od_ctx){.arena = s->arena, .pool = s->pool,
                      .trace = &s->trace, .seed = (uint64_t)c->seed};
    od_status st = s->wl->build_model(&s->ctx, &s->model);
    if (st == OD_ERR_NOMEM)
        return od__budget_fail(s, "the parameters and gradients", 0);
    OD_TRY(st);
    od_model_init(s->model, (uint64_t)c->seed);
    r->param_count = od_model_param_count(s->model, 0);
    if (od_log_enabled(OD_LOG_DEBUG)) {
        char summary[4096];
        int in_dims[OD_MAX_DIMS] = {(int)c->batch_size};
        for (int i = 0; i < s->wl->sample_ndim; i++)
            in_dims[1 + i] = s->wl->sample_dims[i];
        od_model_summary(s->model, 1 + s->wl->sample_ndim, in_dims, summary,
                         sizeof summary);
        od_log_debug("model %s, %zu parameters:\n%s", s->wl->name,
                     r->param_count, summary);
    }

    od_optim_kind kind;
    OD_TRY(od_optim_kind_parse(c->optimizer, &kind));
    od_optim_config oc = od_optim_config_default(kind);
    oc.lr = (float)c->lr;
    oc.momentum = (float)c->momentum;
    oc.nesterov = c->nesterov;
    oc.weight_decay = (float)c->weight_decay;
    oc.beta1 = (float)c->beta1;
    oc.beta2 = (float)c->beta2;
    oc.eps = (float)c->eps;
    OD_TRY(od_optim_config_check(&oc));
    st = od_optim_create(&s->ctx, s->model, &oc, &s->optim);
    if (st == OD_ERR_NOMEM)
        return od__budget_fail(s, "the optimiser state", 0);
    OD_TRY(st);

    s->steps_per_epoch = (s->train.n + c->batch_size - 1) / c->batch_size;
    OD_TRY(od_sched_kind_parse(c->schedule, &s->sched.kind));
    s->sched.base_lr = (float)c->lr;
    s->sched.step_size = (long)c->lr_step_size;
    s->sched.gamma = (float)c->lr_gamma;
    s->sched.min_lr = (float)c->lr_min;
    s->sched.warmup_steps = (long)c->warmup_steps;

    if (c->resume[0]) {
        uint64_t step = 0;
        OD_TRY(od_checkpoint_load(c->resume, s->model, s->optim, &step));
        /* epochs counts the whole training, so a run resumed from the end
         * of epoch k trains epochs k + 1 .. epochs, exactly as an
         * uninterrupted run would have (same shuffles, same schedule). */
        s->start_step = (int64_t)step;
        r->start_epoch = (int)(step / (uint64_t)s->steps_per_epoch);
        if (step % (uint64_t)s->steps_per_epoch != 0)
            od_log_warn("%s was saved at step %llu, inside epoch %d of %lld "
                        "steps (other batch_size or train_subset?); "
                        "training goes on from the start of epoch %d",
                        c->resume, (unsigned long long)step,
                        r->start_epoch + 1, (long long)s->steps_per_epoch,
                        r->start_epoch + 1);
        od_log_info("resumed from %s at step %llu (%d epoch%s done)",
                    c->resume, (unsigned long long)step, r->start_epoch,
                    r->start_epoch == 1 ? "" : "s");
    }
    /* epochs = 0 trains nothing; the schedule is still checked, as for
     * one epoch, so that the same settings cannot fail later. */
    s->sched.total_steps = (long)(s->steps_per_epoch *
                                  (c->epochs > 0 ? c->epochs : 1));
    if (s->sched.kind == OD_SCHED_COSINE &&
        s->sched.warmup_steps >= s->sched.total_steps)
        return od_fail(OD_ERR_INVALID, "warmup_steps = %ld leaves nothing "
                       "of the cosine schedule: training has %ld steps "
                       "(epochs x %lld steps per epoch); lower warmup_steps",
                       s->sched.warmup_steps, s->sched.total_steps,
                       (long long)s->steps_per_epoch);
    OD_TRY(od_schedule_check(&s->sched));
    if (c->dp)
        OD_TRY(od_dp_setup(c, s->train.n, s->sched.total_steps, &s->dp,
                           &r->dp));

    s->order = malloc((size_t)s->train.n * sizeof *s->order);
    s->eval_idx = malloc((size_t)c->batch_size * sizeof *s->eval_idx);
    if (!s->order || !s->eval_idx)
        return od_fail(OD_ERR_NOMEM, "out of host memory");

    /* One full batch through forward and backward, untimed and unrecorded,
     * so that a budget too small for training fails here, before any
     * update, rather than part-way through the first epoch. */
    int n = s->train.n < c->batch_size ? s->train.n : (int)c->batch_size;
    for (int i = 0; i < n; i++)
        s->order[i] = i;
    double loss;
    int count;
    s->trace.enabled = 0;
    s->microbatch = (int)c->microbatch;
    for (;;) {
        od_arena_reset_step(s->arena);
        st = od__forward_backward(s, s->order, n, -1.0f, &loss, &count);
        od_arena_reset_step(s->arena);
        od_model_zero_grad(s->model);
        /* memory_policy=adapt: halve the micro-batch until a step fits. */
        int mb = s->microbatch > 0 && s->microbatch < n ? s->microbatch : n;
        if (st != OD_ERR_NOMEM || strcmp(c->memory_policy, "adapt") != 0 ||
            mb == 1)
            break;
        s->microbatch = (mb + 1) / 2;
        od_log_info("memory_policy=adapt: a batch of %d does not fit, "
                    "trying micro-batches of %d", n, s->microbatch);
    }
    s->trace.enabled = 1;
    r->microbatch = s->microbatch > 0 && s->microbatch < n ? s->microbatch : n;
    if (st == OD_ERR_NOMEM)
        return od__budget_fail(s, "one training step", 1);
    if (st == OD_OK && s->dp && s->microbatch != (int)c->microbatch)
        od_dpsgd_set_microbatch(s->dp, s->microbatch);
    return st;
}

/* A row of the results' step trace: the step, the host time and, when a
 * device is emulated, its state after the step. */
static void od__results_row(const od__run *s, int64_t step, double host_s,
                            od_results_step_row *row)
{
    od_results_step_init(row);
    row->step = (double)step;
    row->host_time_s = host_s;
    if (od_device_bridge_active(&s->dev)) {
        const od_dev_emu *emu = s->dev.emu;
        row->emulated_time_s = od_dev_emu_time_s(emu);
        row->energy_j = od_dev_emu_energy_j(emu);
        row->soc_temp_c = od_dev_emu_soc_c(emu);
        row->skin_temp_c = od_dev_emu_skin_c(emu);
        row->freq_khz = od_dev_emu_freq_khz(emu);
        row->battery_soc_pct = 100.0 * od_dev_emu_soc(emu);
    }
}

/* One epoch of training; adds its figures to r. */
static od_status od__train_epoch(od__run *s, int epoch, od_run_result *r,
                                 double *loss_mean)
{
    const od_config *c = s->cfg;
    int bs = (int)c->batch_size;
    int64_t nsteps = (s->train.n + bs - 1) / bs;

    /* Each epoch's order comes from its own stream of the seed, so that
     * epoch e is shuffled the same way however the run got there. With
     * shuffle = false every epoch visits the samples in stored order. */
    for (int i = 0; i < s->train.n; i++)
        s->order[i] = i;
    if (c->shuffle) {
        od_rng rng;
        od_rng_seed(&rng, (uint64_t)c->seed,
                    0x5348554646ull + (uint64_t)epoch);
        od_rng_shuffle(&rng, s->order, s->train.n);
    }

    char label[64];
    snprintf(label, sizeof label, "epoch %d/%lld", epoch + 1,
             (long long)c->epochs);
    od_progress prog;
    od_progress_begin(&prog, label, nsteps);

    double loss_sum = 0;
    int64_t rows = 0;
    od_status st = OD_OK;
    for (int64_t k = 0; k < nsteps; k++) {
        int dev_stop;
        od_device_bridge_before_step(&s->dev, &dev_stop);
        if (dev_stop) {
            od_log_warn("device: %s", s->dev.stop_reason);
            break;
        }
        int start = (int)(k * bs);
        int n = s->train.n - start < bs ? s->train.n - start : bs;
        int64_t step = (int64_t)epoch * s->steps_per_epoch + k;

        od_trace_begin_step(&s->trace);
        od_arena_reset_step(s->arena);
        s->ctx.step = (uint64_t)step;
        double loss;
        int count;
        float lr = od_schedule_lr(&s->sched, (long)step), alpha, beta;
        if (s->dp && od_optim_fusable(s->optim, lr, &alpha, &beta))
            st = od_dpsgd_step_apply(s->dp, s->model, (uint64_t)step,
                                     s->order + start, n, od__dp_fetch, s,
                                     alpha, beta, &loss, &count);
        else if (s->dp)
            st = od_dpsgd_step(s->dp, s->model, (uint64_t)step,
                               s->order + start, n, od__dp_fetch, s, &loss,
                               &count);
        else
            st = od__forward_backward(s, s->order + start, n, lr, &loss,
                                      &count);
        if (s->dp)
            n = od_dpsgd_get_stats(s->dp)->last_batch;
        if (st == OD_OK)
            st = od_optim_step(s->optim, lr);
        od_trace_end_step(&s->trace);
        if (st != OD_OK)
            break;

        loss_sum += loss * count;
        rows += count;
        r->steps++;
        r->samples += n;
        od_progress_update(&prog, k + 1, loss_sum / (double)rows);
        if (s->store) {
            od_results_step_row row;
            od__results_row(s, step, r->host_time_s +
                            (double)(od_now_ns() - s->epoch_t0_ns) * 1e-9,
                            &row);
            row.loss = loss;
            st = od_results_step(s->store, &row);
            if (st != OD_OK)
                break;
        }
        if (od_run_stop_requested()) {
            st = OD_ERR_INTERRUPTED;
            break;
        }
    }
    od_progress_end(&prog);
    *loss_mean = rows ? loss_sum / (double)rows : NAN;
    return st;
}

static void od__collect_totals(const od__run *s, od_run_result *r)
{
    for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
        r->flops_by_kind[k] = s->trace.total_flops[k];
        r->bytes_by_kind[k] = s->trace.total_bytes[k];
        r->host_s_by_kind[k] = (double)s->trace.total_ns[k] * 1e-9;
    }
    if (s->arena) {
        r->peak_mem_bytes = od_arena_peak(s->arena);
        for (int k = 0; k < OD_MEM_KIND_COUNT; k++)
            r->peak_mem_by_kind[k] = od_arena_peak_kind(s->arena,
                                                        (od_mem_kind)k);
    }
}

od_status od_train(const od_config *c, od_run_result *r)
{
    return od_train_store(c, NULL, r);
}

od_status od_train_store(const od_config *c, const char *results_path,
                         od_run_result *r)
{
    memset(r, 0, sizeof *r);
    r->train_loss = r->test_accuracy = r->test_loss = NAN;
    r->epochs = (int)c->epochs;
    size_t slots = r->epochs > 0 ? (size_t)r->epochs : 1;  /* epochs = 0 */
    r->epoch_train_loss = malloc(slots * sizeof(double));
    r->epoch_test_accuracy = malloc(slots * sizeof(double));
    r->epoch_test_loss = malloc(slots * sizeof(double));
    r->epoch_host_time_s = malloc(slots * sizeof(double));
    if (!r->epoch_train_loss || !r->epoch_test_accuracy ||
        !r->epoch_test_loss || !r->epoch_host_time_s)
        return od_fail(OD_ERR_NOMEM, "out of host memory");

    od__run s;
    memset(&s, 0, sizeof s);
    s.cfg = c;
    od_status st = od__setup(&s, r);
    if (st == OD_OK && results_path)
        st = od_results_begin(results_path, c, &s.store);
    if (st != OD_OK) {
        od__run_free(&s);
        return st;
    }

    r->started = 1;
    od_arena_reset_peaks(s.arena);
    if (r->epochs == 0)
        od_log_info("epochs = 0: evaluating the %s model without training",
                    c->resume[0] ? "loaded" : "initial");
    else if (r->start_epoch >= r->epochs)
        od_log_info("%s already holds %d epoch%s of training: evaluating "
                    "only (raise epochs to train more)", c->resume,
                    r->start_epoch, r->start_epoch == 1 ? "" : "s");
    for (int e = r->start_epoch; e < r->epochs; e++) {
        int i = e - r->start_epoch;   /* index into this run's arrays */
        uint64_t t0 = od_now_ns();
        s.epoch_t0_ns = t0;
        double loss;
        st = od__train_epoch(&s, e, r, &loss);
        double dt = (double)(od_now_ns() - t0) * 1e-9;
        r->host_time_s += dt;
        if (st != OD_OK) {
            if (st == OD_ERR_INTERRUPTED)
                r->interrupted = 1;
            break;
        }
        r->epochs_done = i + 1;
        r->epoch_train_loss[i] = r->train_loss = loss;
        r->epoch_host_time_s[i] = dt;
        r->epoch_test_accuracy[i] = r->epoch_test_loss[i] = NAN;

        /* Evaluation sits outside the timed loop. */
        if (c->eval_each_epoch || e + 1 == r->epochs) {
            st = od__evaluate(&s, &r->epoch_test_accuracy[i],
                              &r->epoch_test_loss[i], &r->metrics);
            if (st != OD_OK)
                break;
            r->test_accuracy = r->epoch_test_accuracy[i];
            r->test_loss = r->epoch_test_loss[i];
            if (s.store) {
                /* An evaluation row follows the epoch's last step and
                 * carries its number. */
                od_results_step_row row;
                od__results_row(&s, (e + 1) * s.steps_per_epoch - 1,
                                r->host_time_s, &row);
                row.accuracy = r->test_accuracy;
                st = od_results_step(s.store, &row);
                if (st != OD_OK)
                    break;
            }
        }
        od_log_debug("epoch %d/%d: train loss %.4f, test accuracy %.2f %%, "
                     "%.2f s", e + 1, r->epochs, loss,
                     100.0 * r->epoch_test_accuracy[i], dt);
        if (od_run_stop_requested() && e + 1 < r->epochs) {
            r->interrupted = 1;
            st = OD_ERR_INTERRUPTED;
            break;
        }
    }
    if (st == OD_OK && r->epochs_done == 0)
        st = od__evaluate(&s, &r->test_accuracy, &r->test_loss,
                          &r->metrics);
    /* The workload's reference model, for comparison; host work only. */
    if (st == OD_OK && s.wl->baseline) {
        st = s.wl->baseline(&s.train, &s.test, &r->baseline);
        if (st != OD_OK)
            od_log_warn("baseline of %s failed: %s", s.wl->name,
                        od_error_message());
        st = OD_OK;
    }
    od__collect_totals(&s, r);
    if (st == OD_OK && s.dp)
        st = od_dp_finish(s.dp, r->steps, &r->dp);

    if (st == OD_OK && c->checkpoint[0]) {
        uint64_t step = (uint64_t)(r->start_epoch + r->epochs_done) *
                        (uint64_t)s.steps_per_epoch;
        if (r->epochs_done == 0)
            step = (uint64_t)s.start_step;
        st = od_checkpoint_save(c->checkpoint, s.model, s.optim, step);
        if (st == OD_OK)
            od_log_info("saved the model to %s", c->checkpoint);
    }
    od_device_bridge_summary(&s.dev, &r->device);
    if (s.store && (st == OD_OK || st == OD_ERR_INTERRUPTED)) {
        od_status rst = od_results_finish(s.store, r);
        s.store = NULL;
        if (rst != OD_OK && st == OD_OK)
            st = rst;
        else if (rst != OD_OK)
            od_log_warn("%s", od_error_message());
    }
    if (st == OD_ERR_INTERRUPTED)
        od_fail(st, "stopped on request after %lld step%s (%d of %d epochs "
                "complete)", (long long)r->steps, r->steps == 1 ? "" : "s",
                r->start_epoch + r->epochs_done, r->epochs);
    od__run_free(&s);
    return st;
}

void od_run_result_free(od_run_result *r)
{
    free(r->epoch_train_loss);
    free(r->epoch_test_accuracy);
    free(r->epoch_test_loss);
    free(r->epoch_host_time_s);
    r->epoch_train_loss = r->epoch_test_accuracy = NULL;
    r->epoch_test_loss = r->epoch_host_time_s = NULL;
}

/* ---- Output -------------------------------------------------------------- */

void od_run_result_write_json(const od_run_result *r, FILE *f)
{
    od_json j;
    od_json_init(&j, f);
    od_json_begin_object(&j, NULL);
    od_json_string(&j, "workload", r->workload);
    od_json_int(&j, "epochs", r->epochs);
    od_json_int(&j, "start_epoch", r->start_epoch);
    od_json_int(&j, "epochs_done", r->epochs_done);
    od_json_bool(&j, "interrupted", r->interrupted);
    od_json_int(&j, "train_size", r->train_size);
    od_json_int(&j, "test_size", r->test_size);
    od_json_int(&j, "samples", r->samples);
    od_json_int(&j, "steps", r->steps);
    od_json_int(&j, "batch_size", r->batch_size);
    od_json_int(&j, "threads", r->threads);
    od_json_begin_array(&j, "cpus");
    for (int i = 0; i < r->ncpus; i++)
        od_json_int(&j, NULL, r->cpus[i]);
    od_json_end_array(&j);
    od_json_bool(&j, "bound", r->bound);
    od_json_int(&j, "seed", (int64_t)r->seed);
    od_json_string(&j, "isa", r->isa);
    od_json_double(&j, "host_time_s", r->host_time_s);
    od_json_double(&j, "samples_per_s",
                   r->host_time_s > 0 ? (double)r->samples / r->host_time_s
                                      : NAN);
    od_json_double(&j, "test_accuracy", r->test_accuracy);
    od_json_double(&j, "test_loss", r->test_loss);
    od_json_double(&j, "train_loss", r->train_loss);
    size_t ne = (size_t)r->epochs_done;
    od_json_double_array(&j, "epoch_test_accuracy", r->epoch_test_accuracy,
                         ne);
    od_json_double_array(&j, "epoch_test_loss", r->epoch_test_loss, ne);
    od_json_double_array(&j, "epoch_train_loss", r->epoch_train_loss, ne);
    od_json_double_array(&j, "epoch_host_time_s", r->epoch_host_time_s, ne);

    for (int k = 0; k < r->metrics.count; k++)
        od_json_double(&j, r->metrics.names[k], r->metrics.values[k]);
    if (r->baseline.baseline[0])
        od_json_string(&j, "baseline", r->baseline.baseline);
    for (int k = 0; k < r->baseline.count; k++)
        od_json_double(&j, r->baseline.names[k], r->baseline.values[k]);

    od_json_int(&j, "peak_mem_bytes", (int64_t)r->peak_mem_bytes);
    od_json_begin_object(&j, "peak_mem_by_kind");
    static const char *const mem_names[OD_MEM_KIND_COUNT] = {
        "parameters", "gradients", "optimizer", "activations", "scratch",
    };
    for (int k = 0; k < OD_MEM_KIND_COUNT; k++)
        od_json_int(&j, mem_names[k], (int64_t)r->peak_mem_by_kind[k]);
    od_json_end_object(&j);
    od_json_int(&j, "mem_budget_bytes", (int64_t)r->mem_budget_bytes);
    od_json_int(&j, "microbatch", r->microbatch);
    od_json_int(&j, "param_count", (int64_t)r->param_count);
    od_dp_summary_write_json(&r->dp, &j);
    od_device_summary_write_json(&r->device, &j);

    double flops = 0;
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        flops += r->flops_by_kind[k];
    od_json_double(&j, "flops_total", flops);
    od_json_begin_object(&j, "cost_by_kind");
    for (int k = 0; k < OD_OP_KIND_COUNT; k++) {
        od_json_begin_object(&j, od_op_kind_name((od_op_kind)k));
        od_json_double(&j, "flops", r->flops_by_kind[k]);
        od_json_double(&j, "bytes", r->bytes_by_kind[k]);
        od_json_double(&j, "host_s", r->host_s_by_kind[k]);
        od_json_end_object(&j);
    }
    od_json_end_object(&j);
    od_json_end_object(&j);
}

void od_run_result_write_text(const od_run_result *r, FILE *f)
{
    fprintf(f, "%s: %d epoch%s, %lld steps of batch %d on %d thread%s "
               "(%s)\n", r->workload, r->epochs_done,
            r->epochs_done == 1 ? "" : "s", (long long)r->steps,
            r->batch_size, r->threads, r->threads == 1 ? "" : "s", r->isa);
    for (int e = 0; e < r->epochs_done; e++) {
        fprintf(f, "  epoch %d: train loss %.4f", r->start_epoch + e + 1,
                r->epoch_train_loss[e]);
        if (!isnan(r->epoch_test_accuracy[e]))
            fprintf(f, ", test accuracy %.2f %%, test loss %.4f",
                    100.0 * r->epoch_test_accuracy[e], r->epoch_test_loss[e]);
        fprintf(f, ", %.2f s\n", r->epoch_host_time_s[e]);
    }
    double flops = 0;
    for (int k = 0; k < OD_OP_KIND_COUNT; k++)
        flops += r->flops_by_kind[k];
    fprintf(f, "  training: %.2f s, %.0f samples/s, %.2f GFLOP/s\n",
            r->host_time_s,
            r->host_time_s > 0 ? (double)r->samples / r->host_time_s : 0.0,
            r->host_time_s > 0 ? flops / r->host_time_s * 1e-9 : 0.0);
    fprintf(f, "  peak memory: %.2f MiB (parameters %.2f, gradients %.2f,\n"
               "    optimizer %.2f, activations %.2f, scratch %.2f MiB)\n",
            (double)r->peak_mem_bytes / 1048576.0,
            (double)r->peak_mem_by_kind[OD_MEM_PARAM] / 1048576.0,
            (double)r->peak_mem_by_kind[OD_MEM_GRAD] / 1048576.0,
            (double)r->peak_mem_by_kind[OD_MEM_OPTIM] / 1048576.0,
            (double)r->peak_mem_by_kind[OD_MEM_ACT] / 1048576.0,
            (double)r->peak_mem_by_kind[OD_MEM_SCRATCH] / 1048576.0);
    od_device_summary_write_text(&r->device, f);
    if (!isnan(r->test_accuracy))
        fprintf(f, "  test accuracy %.2f %%, test loss %.4f\n",
                100.0 * r->test_accuracy, r->test_loss);
    if (r->dp.enabled)
        fprintf(f, "  DP-SGD: epsilon %.3f at delta %g (%s%s%s), sigma "
                "%.4f, C %g, q %.5f (%s), %lld steps\n", r->dp.epsilon,
                r->dp.delta, r->dp.accountant, r->dp.conversion[0] ? ", " : "",
                r->dp.conversion, r->dp.noise_multiplier, r->dp.clip_norm,
                r->dp.sampling_rate, r->dp.sampling,
                (long long)r->dp.steps);
    for (int k = 0; k < r->metrics.count; k++)
        fprintf(f, "  %s %.4f\n", r->metrics.names[k], r->metrics.values[k]);
    if (r->baseline.baseline[0] || r->baseline.count) {
        fprintf(f, "  baseline%s%s:", r->baseline.baseline[0] ? " " : "",
                r->baseline.baseline);
        for (int k = 0; k < r->baseline.count; k++)
            fprintf(f, " %s %.4f", r->baseline.names[k],
                    r->baseline.values[k]);
        fputc('\n', f);
    }
}
