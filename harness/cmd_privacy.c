/* `ondev privacy`: the accountant on its own.
 *
 *   ondev privacy epsilon --sampling-rate Q --noise-multiplier S --steps T
 *                         --delta D [options]
 *   ondev privacy sigma   --epsilon E --sampling-rate Q --steps T
 *                         --delta D [options]
 *
 * Bad values are refused with the flag named and exit status 2. */
#include "harness/commands.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/json.h"
#include "harness/log.h"
#include "privacy/accountant.h"

#define OD__MAX_ORDERS 4096

static const char od__privacy_help[] =
    "usage: ondev privacy epsilon --sampling-rate Q --noise-multiplier S\n"
    "                             --steps T --delta D [options]\n"
    "       ondev privacy sigma --epsilon E --sampling-rate Q --steps T\n"
    "                           --delta D [options]\n"
    "\n"
    "epsilon: the (epsilon, delta) of T steps of DP-SGD with Poisson sampling\n"
    "rate Q and noise multiplier S (noise std / clipping norm), add/remove\n"
    "adjacency. sigma: the smallest S whose epsilon is at most E.\n"
    "\n"
    "options:\n"
    "  --sampling-rate Q     batch size / dataset size, in (0, 1]\n"
    "  --noise-multiplier S  > 0 (epsilon only)\n"
    "  --epsilon E           target epsilon > 0 (sigma only)\n"
    "  --steps T             number of steps, >= 1\n"
    "  --delta D             in (0, 1), typically below 1 / dataset size\n"
    "  --accountant A        rdp (default) or pld\n"
    "  --conversion C        RDP to (epsilon, delta): improved (default,\n"
    "                        Balle et al. 2020) or classic (Mironov 2017)\n"
    "  --orders L            RDP orders: default (dp_accounting's, up to\n"
    "                        1024), opacus, tf-privacy, or a list '2,4.5,8'\n"
    "  --sampling S          poisson (default) or shuffle; shuffle is\n"
    "                        accounted with the Poisson analysis as a\n"
    "                        labelled approximation, with a warning\n"
    "  --json                summary as JSON on stdout\n"
    "  -v, -q                more or less on stderr\n"
    "  -h, --help            this text\n"
    "\n"
    "The PLD accountant reports a rigorous upper bound (epsilon) and an\n"
    "estimate (epsilon_estimate). See docs/privacy.md.\n";

typedef struct od__privacy_args {
    const char *action;            /* "epsilon" or "sigma" */
    od_privacy_params params;
    double target_epsilon;
    const char *orders_name;
    double orders_buf[OD__MAX_ORDERS];
    int have_q, have_sigma, have_steps, have_delta, have_eps;
    od_cli_common common;
} od__privacy_args;

/* A finite double filling the whole string; 0 when it parses. */
static int od__parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* Steps: a whole number, written as an integer or as 1e4. */
static int od__parse_steps(const char *s, int64_t *out)
{
    double v;
    if (od__parse_double(s, &v) != 0 || v != floor(v) || v > 9e15 ||
        v < -9e15)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* "default" | "opacus" | "tf-privacy" | "a,b,c". */
static int od__parse_orders(od__privacy_args *a, const char *s)
{
    const double *o;
    int n;
    if (od_rdp_orders_preset(s, &o, &n) == OD_OK) {
        a->params.orders = o;
        a->params.n_orders = n;
        a->orders_name = s;
        return 0;
    }
    od_clear_error();
    char buf[4096];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        double v;
        if (n == OD__MAX_ORDERS || od__parse_double(tok, &v) != 0 ||
            !(v > 1.0))
            return -1;
        a->orders_buf[n++] = v;
    }
    if (n == 0)
        return -1;
    a->params.orders = a->orders_buf;
    a->params.n_orders = n;
    a->orders_name = "custom";
    return 0;
}

static int od__usage_error(const char *fmt, const char *flag, const char *v)
{
    od_log_error(fmt, flag, v);
    fprintf(stderr, "Run 'ondev privacy --help' for the options.\n");
    return OD_EXIT_USAGE;
}

/* Parse argv into a; returns -1 to continue, or an exit status. */
static int od__privacy_parse(int argc, char **argv, od__privacy_args *a)
{
    od_privacy_params_init(&a->params);
    a->orders_name = "default";
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (od_cli_common_option(&a->common, arg))
            continue;
        if (arg[0] != '-') {
            if (a->action != NULL)
                return od__usage_error("privacy: unexpected argument '%s'%s",
                                       arg, "");
            if (strcmp(arg, "epsilon") != 0 && strcmp(arg, "sigma") != 0)
                return od__usage_error("privacy: unknown action '%s'%s: use "
                                       "epsilon or sigma", arg, "");
            a->action = arg;
            continue;
        }
        if (i + 1 >= argc)
            return od__usage_error("privacy: %s needs a value%s", arg, "");
        const char *v = argv[++i];
        od_privacy_params *p = &a->params;
        if (strcmp(arg, "--sampling-rate") == 0) {
            if (od__parse_double(v, &p->sampling_rate) != 0 ||
                !(p->sampling_rate > 0.0 && p->sampling_rate <= 1.0))
                return od__usage_error("privacy: %s must be in (0, 1] "
                                       "(batch size / dataset size), got "
                                       "'%s'", arg, v);
            a->have_q = 1;
        } else if (strcmp(arg, "--noise-multiplier") == 0) {
            if (od__parse_double(v, &p->noise_multiplier) != 0 ||
                !(p->noise_multiplier > 0.0))
                return od__usage_error("privacy: %s must be a number > 0, "
                                       "got '%s'", arg, v);
            a->have_sigma = 1;
        } else if (strcmp(arg, "--steps") == 0) {
            if (od__parse_steps(v, &p->steps) != 0 || p->steps < 1)
                return od__usage_error("privacy: %s must be a whole number "
                                       ">= 1, got '%s'", arg, v);
            a->have_steps = 1;
        } else if (strcmp(arg, "--delta") == 0) {
            if (od__parse_double(v, &p->delta) != 0 ||
                !(p->delta > 0.0 && p->delta < 1.0))
                return od__usage_error("privacy: %s must be in (0, 1), got "
                                       "'%s'", arg, v);
            a->have_delta = 1;
        } else if (strcmp(arg, "--epsilon") == 0) {
            if (od__parse_double(v, &a->target_epsilon) != 0 ||
                !(a->target_epsilon > 0.0))
                return od__usage_error("privacy: %s must be a number > 0, "
                                       "got '%s'", arg, v);
            a->have_eps = 1;
        } else if (strcmp(arg, "--accountant") == 0) {
            if (od_accountant_parse(v, &p->accountant) != OD_OK)
                return od__usage_error("privacy: %s must be rdp or pld, "
                                       "got '%s'", arg, v);
        } else if (strcmp(arg, "--conversion") == 0) {
            if (od_rdp_conversion_parse(v, &p->conversion) != OD_OK)
                return od__usage_error("privacy: %s must be improved or "
                                       "classic, got '%s'", arg, v);
        } else if (strcmp(arg, "--sampling") == 0) {
            if (od_sampling_parse(v, &p->sampling) != OD_OK)
                return od__usage_error("privacy: %s must be poisson or "
                                       "shuffle, got '%s'", arg, v);
        } else if (strcmp(arg, "--orders") == 0) {
            if (od__parse_orders(a, v) != 0)
                return od__usage_error("privacy: %s must be default, opacus, "
                                       "tf-privacy or a comma-separated list "
                                       "of orders > 1, got '%s'", arg, v);
        } else {
            return od__usage_error("privacy: unknown option '%s'%s", arg, "");
        }
    }
    od_clear_error();

    if (a->common.help) {
        fputs(od__privacy_help, stdout);
        return OD_EXIT_OK;
    }
    if (a->action == NULL)
        return od__usage_error("privacy: name an action%s%s: epsilon or sigma",
                               "", "");
    int sigma = strcmp(a->action, "sigma") == 0;
    const char *missing = NULL;
    if (!a->have_q)
        missing = "--sampling-rate";
    else if (!a->have_steps)
        missing = "--steps";
    else if (!a->have_delta)
        missing = "--delta";
    else if (!sigma && !a->have_sigma)
        missing = "--noise-multiplier";
    else if (sigma && !a->have_eps)
        missing = "--epsilon";
    if (missing != NULL)
        return od__usage_error("privacy %s: %s is required", a->action,
                               missing);
    if (sigma && a->have_sigma)
        return od__usage_error("privacy %s: %s is what sigma computes; drop "
                               "it", a->action, "--noise-multiplier");
    if (!sigma && a->have_eps)
        return od__usage_error("privacy %s: %s belongs to the sigma action",
                               a->action, "--epsilon");
    return -1;
}

static void od__json_number_or_null(od_json *j, const char *key, double v)
{
    if (isfinite(v))
        od_json_double(j, key, v);
    else
        od_json_null(j, key);
}

/* The JSON summary: every ε with its accountant, conversion and δ. */
static void od__privacy_json(FILE *f, const od__privacy_args *a,
                             const od_privacy_result *r, double sigma)
{
    const od_privacy_params *p = &a->params;
    int rdp = p->accountant == OD_ACCOUNTANT_RDP;
    od_json j;
    od_json_init(&j, f);
    od_json_begin_object(&j, NULL);
    od_json_string(&j, "action", a->action);
    od_json_double(&j, "epsilon", r->epsilon);
    od_json_string(&j, "accountant", od_accountant_name(p->accountant));
    if (rdp)
        od_json_string(&j, "conversion", od_rdp_conversion_name(p->conversion));
    else
        od_json_null(&j, "conversion");
    od__json_number_or_null(&j, "order", rdp ? r->order : NAN);
    od_json_double(&j, "delta", p->delta);
    od_json_double(&j, "sampling_rate", p->sampling_rate);
    od_json_double(&j, "noise_multiplier", sigma);
    od_json_int(&j, "steps", p->steps);
    if (strcmp(a->action, "sigma") == 0)
        od_json_double(&j, "target_epsilon", a->target_epsilon);
    od_json_string(&j, "adjacency", "add-remove");
    od_json_string(&j, "sampling", od_sampling_name(p->sampling));
    od_json_string(&j, "assumption",
                   r->assumption ? r->assumption : "exact-poisson");
    if (rdp) {
        od_json_string(&j, "orders", a->orders_name);
    } else {
        od_json_double(&j, "epsilon_upper", r->epsilon_upper);
        od_json_double(&j, "epsilon_estimate", r->epsilon_estimate);
        od_json_double(&j, "grid_step", r->grid_step);
    }
    od_json_end_object(&j);
}

static void od__privacy_text(FILE *f, const od__privacy_args *a,
                             const od_privacy_result *r, double sigma)
{
    const od_privacy_params *p = &a->params;
    if (strcmp(a->action, "sigma") == 0)
        fprintf(f, "noise multiplier %.6f reaches epsilon %.6g\n", sigma,
                a->target_epsilon);
    fprintf(f, "epsilon = %.6f at delta = %g (%s", r->epsilon, p->delta,
            od_accountant_name(p->accountant));
    if (p->accountant == OD_ACCOUNTANT_RDP)
        fprintf(f, ", %s conversion, order %g, orders %s)\n",
                od_rdp_conversion_name(p->conversion), r->order,
                a->orders_name);
    else
        fprintf(f, " upper bound; estimate %.6f, grid step %.3g)\n",
                r->epsilon_estimate, r->grid_step);
    fprintf(f, "for %lld steps, sampling rate %g (%s), noise multiplier %g, "
               "add/remove adjacency\n",
            (long long)p->steps, p->sampling_rate,
            od_sampling_name(p->sampling), sigma);
}

int od_cmd_privacy(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "attack") == 0)
        return od_cmd_privacy_attack(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "audit") == 0)
        return od_cmd_privacy_audit(argc - 1, argv + 1);
    od__privacy_args *a = calloc(1, sizeof *a);
    if (a == NULL) {
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    int rc = od__privacy_parse(argc, argv, a);
    if (rc >= 0) {
        free(a);
        return rc;
    }

    if (a->params.sampling == OD_SAMPLING_SHUFFLE)
        od_log_warn("privacy: --sampling shuffle: epsilon is computed with "
                    "the Poisson-sampling analysis as an APPROXIMATION; it is "
                    "not a proven bound for fixed-size shuffled batches (see "
                    "docs/privacy.md)");

    if (a->params.accountant == OD_ACCOUNTANT_PLD && a->params.delta < 1e-12)
        od_log_warn("privacy: the PLD accountant is accurate for delta >= "
                    "1e-12; for delta %g use --accountant rdp",
                    a->params.delta);

    od_privacy_result r;
    od_status st;
    double sigma = a->params.noise_multiplier;
    if (strcmp(a->action, "sigma") == 0)
        st = od_privacy_sigma(&a->params, a->target_epsilon, &sigma, &r);
    else
        st = od_privacy_epsilon(&a->params, &r);
    if (st != OD_OK) {
        od_log_error("privacy %s: %s", a->action, od_error_message());
        free(a);
        return st == OD_ERR_INVALID ? OD_EXIT_USAGE : OD_EXIT_FAIL;
    }

    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (mem == NULL) {
        od_log_error("out of memory");
        free(a);
        return OD_EXIT_FAIL;
    }
    if (a->common.json)
        od__privacy_json(mem, a, &r, sigma);
    else
        od__privacy_text(mem, a, &r, sigma);
    fclose(mem);
    rc = od_cli_emit(stdout, buf, len) == 0 ? OD_EXIT_OK : OD_EXIT_FAIL;
    free(buf);
    free(a);
    return rc;
}
