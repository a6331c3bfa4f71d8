/* `ondev report RESULTS [--out DIR]`: plots and a report page. */
#include <string.h>

#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/log.h"
#include "results/results.h"

static void od__report_help(FILE *f)
{
    fprintf(f,
            "usage: ondev report RESULTS [--out DIR]\n"
            "\n"
            "Plot stored results and write report.html and report.md.\n"
            "RESULTS is a run file (.h5), a sweep index, or a directory of "
            "run files.\nEach plot is written as PNG and SVG with its "
            "gnuplot script (.gp) and\ndata (.dat) beside it, to restyle "
            "and re-render with `gnuplot NAME.gp`.\nNeeds gnuplot (Debian "
            "package gnuplot-nox).\n"
            "\n"
            "options:\n"
            "  -o, --out DIR   where to write (default: RESULTS without "
            ".h5, plus \"-report\")\n"
            "  -q, --quiet     errors and warnings only\n"
            "  -h, --help      this help\n");
}

int od_cmd_report(int argc, char **argv)
{
    od_cli_common common = {0};
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (od_cli_common_option(&common, a))
            continue;
        if (strcmp(a, "--out") == 0 || strcmp(a, "-o") == 0) {
            if (i + 1 == argc) {
                od_log_error("%s needs a directory", a);
                return OD_EXIT_USAGE;
            }
            out = argv[++i];
        } else if (strncmp(a, "--out=", 6) == 0) {
            out = a + 6;
        } else if (a[0] == '-' && a[1] != '\0') {
            od_log_error("report: unknown option '%s' (see ondev report "
                         "--help)", a);
            return OD_EXIT_USAGE;
        } else if (in) {
            od_log_error("report: one RESULTS argument only, got '%s' and "
                         "'%s'", in, a);
            return OD_EXIT_USAGE;
        } else {
            in = a;
        }
    }
    if (common.help) {
        od__report_help(stdout);
        return OD_EXIT_OK;
    }
    if (!in) {
        od_log_error("report: which results? (ondev report RESULTS)");
        return OD_EXIT_USAGE;
    }

    char dir[1024];
    if (!out) {
        size_t n = strlen(in);
        while (n > 1 && in[n - 1] == '/')
            n--;
        if (n > 3 && strncmp(in + n - 3, ".h5", 3) == 0)
            n -= 3;
        snprintf(dir, sizeof dir, "%.*s-report", (int)n, in);
        out = dir;
    }

    od_res_set set;
    if (od_res_load(in, &set)) {
        od_log_error("%s", od_res_error());
        return OD_EXIT_USAGE;
    }
    int rc = od_res_report(&set, out,
                           od_log_enabled(OD_LOG_INFO) ? stderr : NULL);
    od_res_set_free(&set);
    if (rc) {
        od_log_error("%s", od_res_error());
        return OD_EXIT_FAIL;
    }
    od_log_info("report: %s/report.html (and report.md)", out);
    return OD_EXIT_OK;
}
