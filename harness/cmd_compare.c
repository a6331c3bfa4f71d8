/* `ondev compare BASE NEW`: the regression check for CI. */
#include <string.h>

#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/log.h"
#include "results/results.h"

static void od__compare_help(FILE *f)
{
    fprintf(f,
            "usage: ondev compare BASE NEW [--tolerance FILE] [--junit FILE]"
            " [--host-time]\n"
            "\n"
            "Compare the deterministic figures of two sets of results (run "
            "files, sweep\nindexes or directories), matching runs by "
            "configuration. Prints metric,\nbase, new, change and verdict; "
            "exit status 0 when every figure is within\ntolerance, 1 on a "
            "regression, 2 when the input cannot be used.\n"
            "\n"
            "options:\n"
            "  --tolerance FILE   lines \"metric abs|rel|ratio VALUE "
            "[higher|lower|none]\"\n"
            "                     over the defaults (docs/ci.md)\n"
            "  --junit FILE       also write JUnit XML, one test case per "
            "metric and point\n"
            "  --host-time        also compare host wall time (ratio, "
            "default band 1.5)\n"
            "  -h, --help         this help\n");
}

int od_cmd_compare(int argc, char **argv)
{
    od_cli_common common = {0};
    const char *paths[2] = {NULL, NULL}, *tol_file = NULL, *junit = NULL;
    int npaths = 0, host_time = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (od_cli_common_option(&common, a))
            continue;
        const char **target = NULL;
        if (strcmp(a, "--tolerance") == 0)
            target = &tol_file;
        else if (strcmp(a, "--junit") == 0)
            target = &junit;
        if (target) {
            if (i + 1 == argc) {
                od_log_error("%s needs a file name", a);
                return OD_EXIT_USAGE;
            }
            *target = argv[++i];
        } else if (strncmp(a, "--tolerance=", 12) == 0) {
            tol_file = a + 12;
        } else if (strncmp(a, "--junit=", 8) == 0) {
            junit = a + 8;
        } else if (strcmp(a, "--host-time") == 0) {
            host_time = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            od_log_error("compare: unknown option '%s' (see ondev compare "
                         "--help)", a);
            return OD_EXIT_USAGE;
        } else if (npaths == 2) {
            od_log_error("compare: two results only (BASE NEW), got a "
                         "third: '%s'", a);
            return OD_EXIT_USAGE;
        } else {
            paths[npaths++] = a;
        }
    }
    if (common.help) {
        od__compare_help(stdout);
        return OD_EXIT_OK;
    }
    if (npaths != 2) {
        od_log_error("compare: needs BASE and NEW (ondev compare BASE NEW)");
        return OD_EXIT_USAGE;
    }

    od_res_tolerances tol;
    od_res_tolerances_default(&tol);
    if (tol_file && od_res_tolerances_load(&tol, tol_file)) {
        od_log_error("%s", od_res_error());
        return OD_EXIT_USAGE;
    }
    if (host_time)
        tol.host_time = 1;

    od_res_set base, cur;
    if (od_res_load(paths[0], &base)) {
        od_log_error("base: %s", od_res_error());
        return OD_EXIT_USAGE;
    }
    if (od_res_load(paths[1], &cur)) {
        od_log_error("new: %s", od_res_error());
        od_res_set_free(&base);
        return OD_EXIT_USAGE;
    }
    int rc = od_res_compare(&base, &cur, &tol, stdout, junit);
    od_res_set_free(&base);
    od_res_set_free(&cur);
    if (rc == OD_RES_CMP_UNUSABLE) {
        od_log_error("%s", od_res_error());
        return OD_EXIT_USAGE;
    }
    return rc == OD_RES_CMP_OK ? OD_EXIT_OK : OD_EXIT_FAIL;
}
