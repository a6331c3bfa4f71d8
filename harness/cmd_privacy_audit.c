/* `ondev privacy attack` and `ondev privacy audit`: evidence that an
 * unprotected update leaks and that DP-SGD as implemented protects.
 *
 *   ondev privacy attack [--index I] [--epsilon E] [--out DIR] ...
 *   ondev privacy audit  [--epsilon E | --noise-multiplier S] ...
 *
 * Bad values are refused with the flag named and exit status 2. */
#include "harness/commands.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "harness/cli.h"
#include "harness/json.h"
#include "harness/log.h"
#include "privacy/accountant.h"
#include "privacy/attack.h"
#include "privacy/audit.h"
#include "workloads/workload.h"

static const char od__attack_help[] =
    "usage: ondev privacy attack [--index I] [--epsilon E] [--clip-norm C]\n"
    "                            [--delta D] [--seed S] [--out DIR]\n"
    "                            [--data-dir DIR] [--json]\n"
    "\n"
    "Gradient inversion against one client update of fmnist-mlp: the\n"
    "update of a single Fashion-MNIST test image I (default 0) on the\n"
    "freshly initialised model, inverted through its first linear layer\n"
    "(row k of the weight gradient over bias gradient k) and its label read\n"
    "from the last layer's bias gradient. Done twice: on the plain update,\n"
    "and on a DP-SGD update (clipped to C, default 1, plus Gaussian noise\n"
    "calibrated to epsilon E, default 8, at delta D, default 1e-5, for one\n"
    "step of a batch of one). Reports the PSNR of each reconstruction;\n"
    "with --out, writes original.png, plain.png and dp.png there.\n"
    "--epsilon 0 skips the DP update.\n";

static const char od__audit_help[] =
    "usage: ondev privacy audit [--epsilon E | --noise-multiplier S]\n"
    "                           [--canaries M] [--guesses R] [--steps T]\n"
    "                           [--sampling-rate Q] [--clip-norm C]\n"
    "                           [--delta D] [--beta B] [--seed S] [--json]\n"
    "\n"
    "One-run privacy audit (Steinke, Nasr & Jagielski 2023) of ondev's\n"
    "DP-SGD: M canaries (default 1000) each join the training set with\n"
    "probability 1/2; after one DP-SGD training run (T steps, default 100,\n"
    "Poisson rate Q, default 0.1, clipping C, default 1, noise calibrated\n"
    "to E, default 2, at delta D, default 1e-5) the auditor guesses in/out\n"
    "for the R/2 highest and R/2 lowest canary scores (R default 200). The\n"
    "paper's (epsilon, delta) bound on the chance of that many correct\n"
    "guesses gives a p-value for the claim and an empirical lower bound on\n"
    "epsilon at confidence 1 - B (default 0.95, at the same delta D),\n"
    "reported beside the claimed epsilon. A lower bound above the claim\n"
    "means the implementation does not deliver its guarantee. See\n"
    "docs/dpsgd.md.\n";

/* A finite double filling the whole string; 0 when it parses. */
static int od__number(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int od__bad(const char *cmd, const char *flag, const char *value,
                   const char *want)
{
    od_log_error("privacy %s: %s %s: expected %s", cmd, flag,
                 value ? value : "(missing)", want);
    fprintf(stderr, "Run 'ondev privacy %s --help' for the options.\n", cmd);
    return OD_EXIT_USAGE;
}

/* ---- PNG output ------------------------------------------------------------ */

static void od__be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int od__png_chunk(FILE *f, const char *type, const unsigned char *d,
                         uint32_t len)
{
    unsigned char hdr[8];
    od__be32(hdr, len);
    memcpy(hdr + 4, type, 4);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (len)
        crc = crc32(crc, d, len);
    unsigned char tail[4];
    od__be32(tail, (uint32_t)crc);
    return fwrite(hdr, 1, 8, f) == 8 && (len == 0 || fwrite(d, 1, len, f)
                                         == len)
           && fwrite(tail, 1, 4, f) == 4 ? 0 : -1;
}

/* An 8-bit grey PNG of a (h, w) image with values in [0, 1] (clamped). */
static od_status od__write_png(const char *path, const float *img, int h,
                               int w)
{
    size_t raw_len = (size_t)h * (w + 1);
    unsigned char *raw = malloc(raw_len);
    uLongf z_len = compressBound((uLong)raw_len);
    unsigned char *z = malloc(z_len);
    if (!raw || !z) {
        free(raw);
        free(z);
        return od_fail(OD_ERR_NOMEM, "out of host memory");
    }
    for (int i = 0; i < h; i++) {
        raw[(size_t)i * (w + 1)] = 0;  /* filter: none */
        for (int j = 0; j < w; j++) {
            float v = img[(size_t)i * w + j];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            raw[(size_t)i * (w + 1) + 1 + j] = (unsigned char)lrintf(v * 255);
        }
    }
    od_status st = OD_OK;
    if (compress2(z, &z_len, raw, (uLong)raw_len, 9) != Z_OK)
        st = od_fail(OD_ERR_IO, "cannot compress %s", path);
    FILE *f = st == OD_OK ? fopen(path, "wb") : NULL;
    if (st == OD_OK && !f)
        st = od_fail(OD_ERR_IO, "cannot write %s: %s", path,
                     strerror(errno));
    if (f) {
        static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r',
                                             '\n', 0x1a, '\n'};
        unsigned char ihdr[13] = {0};
        od__be32(ihdr, (uint32_t)w);
        od__be32(ihdr + 4, (uint32_t)h);
        ihdr[8] = 8;  /* bit depth; colour type 0 (grey) */
        int bad = fwrite(sig, 1, 8, f) != 8
                  || od__png_chunk(f, "IHDR", ihdr, 13)
                  || od__png_chunk(f, "IDAT", z, (uint32_t)z_len)
                  || od__png_chunk(f, "IEND", NULL, 0);
        if (fclose(f) != 0 || bad)
            st = od_fail(OD_ERR_IO, "cannot write %s", path);
    }
    free(raw);
    free(z);
    return st;
}

/* ---- attack ----------------------------------------------------------------- */

typedef struct od__attack_args {
    int index;
    double epsilon, clip_norm, delta;
    uint64_t seed;
    const char *out_dir, *data_dir;
    od_cli_common common;
} od__attack_args;

static int od__attack_parse(int argc, char **argv, od__attack_args *a)
{
    a->epsilon = 8.0;
    a->clip_norm = 1.0;
    a->delta = 1e-5;
    a->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (od_cli_common_option(&a->common, f))
            continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!strcmp(f, "--out") || !strcmp(f, "--data-dir")) {
            if (!v)
                return od__bad("attack", f, v, "a directory");
            *(!strcmp(f, "--out") ? &a->out_dir : &a->data_dir) = v;
        } else if (!strcmp(f, "--index")) {
            if (!v || od__number(v, &x) || x < 0 || x > 9999 || x != floor(x))
                return od__bad("attack", f, v, "a test image in [0, 9999]");
            a->index = (int)x;
        } else if (!strcmp(f, "--epsilon")) {
            if (!v || od__number(v, &x) || x < 0)
                return od__bad("attack", f, v, "a number >= 0");
            a->epsilon = x;
        } else if (!strcmp(f, "--clip-norm")) {
            if (!v || od__number(v, &x) || !(x > 0))
                return od__bad("attack", f, v, "a number > 0");
            a->clip_norm = x;
        } else if (!strcmp(f, "--delta")) {
            if (!v || od__number(v, &x) || !(x > 0 && x < 1))
                return od__bad("attack", f, v, "a number in (0, 1)");
            a->delta = x;
        } else if (!strcmp(f, "--seed")) {
            if (!v || od__number(v, &x) || x < 0 || x != floor(x))
                return od__bad("attack", f, v, "a whole number >= 0");
            a->seed = (uint64_t)x;
        } else {
            return od__bad("attack", "unknown option", f, "an option below");
        }
        i++;
    }
    return -1;
}

static od_status od__attack_png(const char *dir, const char *name,
                                const float *img)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return od__write_png(path, img, 28, 28);
}

int od_cmd_privacy_attack(int argc, char **argv)
{
    od__attack_args a;
    memset(&a, 0, sizeof a);
    int rc = od__attack_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.common.help) {
        fputs(od__attack_help, stdout);
        return OD_EXIT_OK;
    }

    const od_workload *wl = od_workload_find("fmnist-mlp");
    od_workload_opts wo;
    od_workload_opts_init(&wo);
    wo.data_dir = a.data_dir;
    wo.train_subset = 1;
    wo.test_subset = a.index + 1;
    od_dataset train = {0}, test = {0};
    od_arena *arena = od_arena_create(0);
    od_model *m = NULL;
    od_ctx ctx = {.arena = arena, .seed = a.seed};
    od_attack_result plain = {0}, dp = {0};
    double sigma = NAN, eps_at = NAN;
    float rec_plain[784], rec_dp[784];
    od_status st = wl ? wl->load(&wo, &train, &test)
                      : od_fail(OD_ERR_UNSUPPORTED, "fmnist-mlp is missing");
    if (st == OD_OK && test.n <= a.index)
        st = od_fail(OD_ERR_INVALID, "--index %d: the test set has %d "
                     "images", a.index, test.n);
    if (st == OD_OK && !arena)
        st = od_fail(OD_ERR_NOMEM, "out of host memory");
    if (st == OD_OK)
        st = wl->build_model(&ctx, &m);
    od_tensor x;
    int32_t label = 0;
    if (st == OD_OK) {
        od_model_init(m, a.seed);
        st = od_tensor_alloc4(arena, OD_MEM_PARAM, &x, 1, 1, 28, 28);
    }
    if (st == OD_OK)
        st = od_dataset_gather(&test, &a.index, 1, x.data, &label);

    od_attack_config c = {.dp = 0, .seed = a.seed};
    if (st == OD_OK)
        st = od_attack_run(m, &x, label, &c, rec_plain, &plain);
    if (st == OD_OK && a.epsilon > 0) {
        od_privacy_params p;
        od_privacy_params_init(&p);
        p.sampling_rate = 1.0;
        p.steps = 1;
        p.delta = a.delta;
        od_privacy_result at;
        st = od_privacy_sigma(&p, a.epsilon, &sigma, &at);
        eps_at = at.epsilon;
        c = (od_attack_config){.dp = 1, .clip_norm = a.clip_norm,
                               .noise_multiplier = sigma, .seed = a.seed};
        if (st == OD_OK)
            st = od_attack_run(m, &x, label, &c, rec_dp, &dp);
    }
    if (st == OD_OK && a.out_dir) {
        if (mkdir(a.out_dir, 0777) != 0 && errno != EEXIST)
            st = od_fail(OD_ERR_IO, "cannot create %s: %s", a.out_dir,
                         strerror(errno));
        if (st == OD_OK)
            st = od__attack_png(a.out_dir, "original.png", x.data);
        if (st == OD_OK)
            st = od__attack_png(a.out_dir, "plain.png", rec_plain);
        if (st == OD_OK && a.epsilon > 0)
            st = od__attack_png(a.out_dir, "dp.png", rec_dp);
    }
    if (st != OD_OK) {
        od_log_error("privacy attack: %s", od_error_message());
        rc = st == OD_ERR_INVALID ? OD_EXIT_USAGE : OD_EXIT_FAIL;
    } else if (a.common.json) {
        od_json j;
        od_json_init(&j, stdout);
        od_json_begin_object(&j, NULL);
        od_json_string(&j, "workload", "fmnist-mlp");
        od_json_int(&j, "index", a.index);
        od_json_int(&j, "label", label);
        od_json_begin_object(&j, "plain");
        if (isfinite(plain.psnr_db))
            od_json_double(&j, "psnr_db", plain.psnr_db);
        else
            od_json_string(&j, "psnr_db", "inf");
        od_json_double(&j, "max_abs_err", plain.max_abs_err);
        od_json_int(&j, "label_guess", plain.label_guess);
        od_json_end_object(&j);
        if (a.epsilon > 0) {
            od_json_begin_object(&j, "dp");
            od_json_double(&j, "epsilon", eps_at);
            od_json_double(&j, "delta", a.delta);
            od_json_string(&j, "accountant", "rdp");
            od_json_string(&j, "conversion", "improved");
            od_json_double(&j, "noise_multiplier", sigma);
            od_json_double(&j, "clip_norm", a.clip_norm);
            od_json_double(&j, "psnr_db", dp.psnr_db);
            od_json_int(&j, "label_guess", dp.label_guess);
            od_json_end_object(&j);
        }
        od_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "fmnist-mlp, test image %d (label %d), one update "
                "of the initial model:\n", a.index, label);
        fprintf(stderr, "  plain update: PSNR %.1f dB, max pixel error %.2g,"
                " label guessed %d\n", plain.psnr_db, plain.max_abs_err,
                plain.label_guess);
        if (a.epsilon > 0)
            fprintf(stderr, "  DP-SGD update (epsilon %.3g, delta %g, sigma "
                    "%.3f, C %g): PSNR %.1f dB, label guessed %d\n", eps_at,
                    a.delta, sigma, a.clip_norm, dp.psnr_db, dp.label_guess);
        if (a.out_dir)
            fprintf(stderr, "  images in %s/\n", a.out_dir);
    }
    if (m)
        od_model_destroy(m);
    if (arena)
        od_arena_destroy(arena);
    od_dataset_free(&train);
    od_dataset_free(&test);
    return rc;
}

/* ---- audit ------------------------------------------------------------------ */

int od_cmd_privacy_audit(int argc, char **argv)
{
    od_audit_config c;
    od_audit_config_init(&c);
    od_cli_common common = {0};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (od_cli_common_option(&common, f))
            continue;
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x;
        if (!v || od__number(v, &x))
            return od__bad("audit", f, v, "an option followed by a number");
        if (!strcmp(f, "--epsilon") && x > 0) {
            c.target_epsilon = x;
            c.noise_multiplier = 0;
        } else if (!strcmp(f, "--noise-multiplier") && x > 0) {
            c.noise_multiplier = x;
        } else if (!strcmp(f, "--canaries") && x >= 2 && x <= 1e6) {
            c.canaries = (int)x;
        } else if (!strcmp(f, "--guesses") && x >= 2 && x <= 1e6) {
            c.guesses = (int)x;
        } else if (!strcmp(f, "--steps") && x >= 1 && x <= 1e6) {
            c.steps = (int)x;
        } else if (!strcmp(f, "--sampling-rate") && x > 0 && x <= 1) {
            c.sampling_rate = x;
        } else if (!strcmp(f, "--clip-norm") && x > 0) {
            c.clip_norm = x;
        } else if (!strcmp(f, "--delta") && x > 0 && x < 1) {
            c.delta = x;
        } else if (!strcmp(f, "--beta") && x > 0 && x < 1) {
            c.beta = x;
        } else if (!strcmp(f, "--seed") && x >= 0 && x == floor(x)) {
            c.seed = (uint64_t)x;
        } else {
            return od__bad("audit", f, v, "a known option with a value in "
                           "its range (see --help)");
        }
        i++;
    }
    if (common.help) {
        fputs(od__audit_help, stdout);
        return OD_EXIT_OK;
    }
    od_audit_result r;
    od_status st = od_audit_run(&c, &r);
    if (st != OD_OK) {
        od_log_error("privacy audit: %s", od_error_message());
        return st == OD_ERR_INVALID ? OD_EXIT_USAGE : OD_EXIT_FAIL;
    }
    int holds = r.epsilon_lower <= r.epsilon_claimed;
    if (common.json) {
        od_json j;
        od_json_init(&j, stdout);
        od_json_begin_object(&j, NULL);
        od_json_double(&j, "epsilon", r.epsilon_claimed);
        od_json_double(&j, "epsilon_lower", r.epsilon_lower);
        od_json_double(&j, "delta", r.delta);
        od_json_string(&j, "accountant", "rdp");
        od_json_string(&j, "conversion", "improved");
        od_json_double(&j, "confidence", 1.0 - r.beta);
        od_json_double(&j, "p_value", r.p_value);
        od_json_double(&j, "noise_multiplier", r.noise_multiplier);
        od_json_double(&j, "sampling_rate", r.sampling_rate);
        od_json_int(&j, "steps", c.steps);
        od_json_int(&j, "canaries", r.canaries);
        od_json_int(&j, "included", r.included);
        od_json_int(&j, "guesses", r.guesses);
        od_json_int(&j, "correct", r.correct);
        od_json_bool(&j, "consistent", holds);
        od_json_end_object(&j);
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "one-run audit: %d canaries (%d in), %d guesses, %d "
                "correct\n", r.canaries, r.included, r.guesses, r.correct);
        fprintf(stderr, "  claimed epsilon %.3f at delta %g (rdp, improved; "
                "sigma %.3f, q %.4f, %d steps)\n", r.epsilon_claimed,
                r.delta, r.noise_multiplier, r.sampling_rate, c.steps);
        fprintf(stderr, "  empirical lower bound %.3f at %.0f %% confidence:"
                " %s\n", r.epsilon_lower, 100.0 * (1.0 - r.beta),
                holds ? "consistent with the claim"
                      : "ABOVE the claim: the guarantee does not hold");
        fprintf(stderr, "  p-value of the claim: %.3g (bound on the chance of"
                " %d or more correct)\n", r.p_value, r.correct);
    }
    return holds ? OD_EXIT_OK : OD_EXIT_FAIL;
}
