/* `ondev run [FILE] [--set key=value]...`: one experiment. */
#include <stdlib.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/config.h"
#include "harness/log.h"
#include "harness/results_bridge.h"
#include "harness/run.h"
#include "workloads/workload.h"

/* Print text from column indent, wrapped at 79 columns; the first line
 * continues the current one. */
static void od__wrap(FILE *f, const char *text, int indent)
{
    int col = indent;
    const char *p = text;
    while (*p) {
        const char *sp = strchr(p, ' ');
        int wlen = sp ? (int)(sp - p) : (int)strlen(p);
        if (col > indent && col + 1 + wlen > 79) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        } else if (col > indent) {
            fputc(' ', f);
            col++;
        }
        fwrite(p, 1, (size_t)wlen, f);
        col += wlen;
        p += wlen;
        while (*p == ' ')
            p++;
    }
    fputc('\n', f);
}

static void od__run_help(FILE *f)
{
    fprintf(f,
            "usage: ondev run [FILE] [--set key=value]... [options]\n"
            "\n"
            "Train one experiment and report host time, memory and "
            "accuracy.\n"
            "The configuration starts from the defaults; FILE (YAML, a flat "
            "mapping of\nkey: value) replaces some of them, then each --set "
            "replaces one.\n"
            "\n"
            "options:\n"
            "  -s, --set key=value   set one configuration key "
            "(repeatable)\n"
            "  --print-config        print the effective configuration as "
            "YAML and exit\n"
            "  -o, --out FILE        results file (HDF5; default "
            "ondev-results/run-*.h5)\n"
            "  --json                summary as JSON on stdout (other text "
            "on stderr)\n"
            "  -v, --verbose         host, CPU binding, model and "
            "per-epoch detail\n"
            "  -q, --quiet           errors and warnings only, no "
            "progress\n"
            "  -h, --help            this help\n"
            "\n"
            "workloads (--set workload=NAME):\n");
    for (int i = 0; i < od_workload_count(); i++) {
        const od_workload *w = od_workload_at(i);
        fprintf(f, "  %-12s ", w->name);
        od__wrap(f, w->description, 15);
    }
    fprintf(f, "\nkeys: `ondev run --print-config` lists every key with "
               "its default;\ndocs/configuration.md describes them.\n");
}

/* Read the sources in order: defaults, FILE, then every --set. */
static od_status od__read_config(od_config *c, const char *file,
                                 char **sets, int nsets)
{
    od_config_defaults(c);
    if (file)
        OD_TRY(od_config_load_yaml(c, file));
    for (int i = 0; i < nsets; i++)
        OD_TRY(od_config_set_arg(c, sets[i]));
    return OD_OK;
}

int od_cmd_run(int argc, char **argv)
{
    od_cli_common common = {0};
    const char *file = NULL;
    int print_config = 0;
    const char *out = NULL;
    char **sets = calloc((size_t)argc, sizeof *sets);
    int nsets = 0;
    if (!sets) {
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }

    int rc = OD_EXIT_OK;
    for (int i = 1; i < argc && rc == OD_EXIT_OK; i++) {
        const char *a = argv[i];
        if (od_cli_common_option(&common, a)) {
            continue;
        } else if (strcmp(a, "--print-config") == 0) {
            print_config = 1;
        } else if (strcmp(a, "--set") == 0 || strcmp(a, "-s") == 0) {
            if (i + 1 == argc) {
                od_log_error("%s needs key=value", a);
                rc = OD_EXIT_USAGE;
            } else {
                sets[nsets++] = argv[++i];
            }
        } else if (strncmp(a, "--set=", 6) == 0) {
            sets[nsets++] = argv[i] + 6;
        } else if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
            if (i + 1 == argc) {
                od_log_error("%s needs a file name", a);
                rc = OD_EXIT_USAGE;
            } else {
                out = argv[++i];
            }
        } else if (strncmp(a, "--out=", 6) == 0) {
            out = a + 6;
        } else if (a[0] == '-' && a[1] != '\0') {
            od_log_error("run: unknown option '%s' (see ondev run --help)",
                         a);
            rc = OD_EXIT_USAGE;
        } else if (file) {
            od_log_error("run: one configuration file only, got '%s' and "
                         "'%s'", file, a);
            rc = OD_EXIT_USAGE;
        } else {
            file = a;
        }
    }
    if (rc != OD_EXIT_OK || common.help) {
        if (common.help)
            od__run_help(stdout);
        free(sets);
        return rc;
    }

    /* Every value is checked here, before any work. */
    od_config cfg;
    od_status st = od__read_config(&cfg, file, sets, nsets);
    free(sets);
    if (st == OD_OK)
        st = od_config_validate(&cfg);
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        return OD_EXIT_USAGE;
    }
    if (print_config) {
        od_config_write_yaml(&cfg, stdout);
        return OD_EXIT_OK;
    }

    char default_out[256];
    if (!out) {
        if (od_results_default_path(default_out, sizeof default_out)) {
            od_log_error("%s", od_error_message());
            return OD_EXIT_USAGE;
        }
        out = default_out;
    }

    od_run_install_signal_handlers();
    od_run_result r;
    st = od_train_store(&cfg, out, &r);
    if (st == OD_OK || st == OD_ERR_INTERRUPTED)
        od_log_info("results: %s", out);

    if (st != OD_OK && st != OD_ERR_INTERRUPTED) {
        od_log_error("%s", od_error_message());
        od_run_result_free(&r);
        return r.started ? OD_EXIT_FAIL : OD_EXIT_USAGE;
    }
    if (st == OD_ERR_INTERRUPTED)
        od_log_warn("%s", od_error_message());

    /* The summary is built in memory and written in one piece. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        od_log_error("out of memory");
        od_run_result_free(&r);
        return OD_EXIT_FAIL;
    }
    if (common.json)
        od_run_result_write_json(&r, mem);
    else
        od_run_result_write_text(&r, mem);
    fclose(mem);
    if (common.json) {
        if (od_log_enabled(OD_LOG_INFO))
            od_run_result_write_text(&r, stderr);
        rc = od_cli_emit(stdout, buf, len) ? OD_EXIT_FAIL : OD_EXIT_OK;
    } else {
        /* The summary is the result, not a diagnostic: -q keeps it. */
        rc = od_cli_emit(stdout, buf, len) ? OD_EXIT_FAIL : OD_EXIT_OK;
    }
    free(buf);
    od_run_result_free(&r);
    if (st == OD_ERR_INTERRUPTED)
        return OD_EXIT_INTERRUPTED;
    return rc;
}
