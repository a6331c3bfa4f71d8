/* DP-SGD configuration, calibration and accounting for a run (see
 * dp_bridge.h). */
#include "harness/dp_bridge.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness/log.h"

od_status od_dp_config_check(const od_config *c)
{
    if (!c->dp)
        return OD_OK;
    if (c->noise_multiplier > 0 && c->epsilon > 0)
        return od_fail(OD_ERR_INVALID, "dp: noise_multiplier = %g and "
                       "epsilon = %g are both set; give one (epsilon "
                       "calibrates noise_multiplier)", c->noise_multiplier,
                       c->epsilon);
    if (!(c->noise_multiplier > 0) && !(c->epsilon > 0))
        return od_fail(OD_ERR_INVALID, "dp = true needs noise_multiplier > 0 "
                       "or a target epsilon > 0");
    return OD_OK;
}

/* Accountant parameters from the configuration. */
static od_status od__params(const od_config *c, double q, int64_t steps,
                            od_privacy_params *p)
{
    od_privacy_params_init(p);
    OD_TRY(od_accountant_parse(c->accountant, &p->accountant));
    OD_TRY(od_rdp_conversion_parse(c->conversion, &p->conversion));
    OD_TRY(od_sampling_parse(c->sampling, &p->sampling));
    p->sampling_rate = q;
    p->steps = steps;
    p->delta = c->delta;
    p->noise_multiplier = c->noise_multiplier;
    return OD_OK;
}

od_status od_dp_setup(const od_config *c, int train_n, int64_t total_steps,
                      od_dpsgd **out, od_dp_summary *sum)
{
    *out = NULL;
    OD_TRY(od_dp_config_check(c));
    memset(sum, 0, sizeof *sum);
    od_dpsgd_config dc = {
        .clip_norm = c->clip_norm,
        .noise_multiplier = c->noise_multiplier,
        .dataset_size = train_n,
        .batch_size = (int)c->batch_size,
        .microbatch = (int)c->microbatch,
        .seed = (uint64_t)c->seed,
    };
    OD_TRY(od_sampling_parse(c->sampling, &dc.sampling));
    double q = (double)c->batch_size / (double)train_n;
    if (q > 1.0)
        q = 1.0;

    od_privacy_params p;
    OD_TRY(od__params(c, q, total_steps > 0 ? total_steps : 1, &p));
    if (c->epsilon > 0) {
        od_privacy_result at;
        od_status st = od_privacy_sigma(&p, c->epsilon, &dc.noise_multiplier,
                                        &at);
        if (st != OD_OK)
            return od_fail(st, "dp: cannot reach epsilon = %g for %lld steps "
                           "at q = %g: %s", c->epsilon,
                           (long long)total_steps, q, od_error_message());
        od_log_info("dp: noise_multiplier %.4f gives epsilon %.3f at delta "
                    "%g over %lld steps (q = %.5f, %s)", dc.noise_multiplier,
                    at.epsilon, c->delta, (long long)total_steps, q,
                    c->accountant);
    }
    if (strcmp(c->sampling, "shuffle") == 0)
        od_log_warn("dp: sampling = shuffle is accounted with the Poisson "
                    "analysis (an approximation; use sampling = poisson for "
                    "an epsilon that holds)");
    OD_TRY(od_dpsgd_create(&dc, out));

    sum->enabled = 1;
    sum->epsilon = NAN;
    sum->epsilon_target = c->epsilon;
    sum->delta = c->delta;
    sum->noise_multiplier = dc.noise_multiplier;
    sum->clip_norm = c->clip_norm;
    sum->sampling_rate = q;
    snprintf(sum->accountant, sizeof sum->accountant, "%.7s", c->accountant);
    snprintf(sum->conversion, sizeof sum->conversion, "%.15s",
             p.accountant == OD_ACCOUNTANT_RDP ? c->conversion : "");
    snprintf(sum->sampling, sizeof sum->sampling, "%.15s", c->sampling);
    return OD_OK;
}

od_status od_dp_finish(const od_dpsgd *d, int64_t steps, od_dp_summary *sum)
{
    const od_dpsgd_stats *s = od_dpsgd_get_stats(d);
    sum->steps = steps;
    sum->mean_norm = s->examples ? s->norm_sum / (double)s->examples : NAN;
    sum->clipped_fraction = s->examples ? (double)s->clipped /
                                          (double)s->examples : NAN;
    sum->empty_batches = s->empty_batches;
    if (steps == 0) {
        sum->epsilon = 0;
        return OD_OK;
    }
    od_privacy_params p;
    od_privacy_params_init(&p);
    OD_TRY(od_accountant_parse(sum->accountant, &p.accountant));
    if (sum->conversion[0])
        OD_TRY(od_rdp_conversion_parse(sum->conversion, &p.conversion));
    OD_TRY(od_sampling_parse(sum->sampling, &p.sampling));
    p.sampling_rate = sum->sampling_rate;
    p.noise_multiplier = sum->noise_multiplier;
    p.steps = steps;
    p.delta = sum->delta;
    od_privacy_result r;
    OD_TRY(od_privacy_epsilon(&p, &r));
    sum->epsilon = r.epsilon;
    sum->assumption = r.assumption;
    return OD_OK;
}

void od_dp_summary_write_json(const od_dp_summary *s, od_json *j)
{
    od_json_bool(j, "dp", s->enabled);
    if (!s->enabled)
        return;
    od_json_double(j, "epsilon", s->epsilon);
    if (s->epsilon_target > 0)
        od_json_double(j, "epsilon_target", s->epsilon_target);
    od_json_double(j, "delta", s->delta);
    od_json_double(j, "noise_multiplier", s->noise_multiplier);
    od_json_double(j, "clip_norm", s->clip_norm);
    od_json_double(j, "sampling_rate", s->sampling_rate);
    od_json_string(j, "sampling", s->sampling);
    od_json_int(j, "dp_steps", s->steps);
    od_json_string(j, "accountant", s->accountant);
    if (s->conversion[0])
        od_json_string(j, "conversion", s->conversion);
    else
        od_json_null(j, "conversion");
    if (s->assumption)
        od_json_string(j, "assumption", s->assumption);
    od_json_double(j, "mean_grad_norm", s->mean_norm);
    od_json_double(j, "clipped_fraction", s->clipped_fraction);
    od_json_int(j, "empty_batches", s->empty_batches);
}
