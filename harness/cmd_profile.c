/* `ondev profile [--out FILE] [--quick] [--json]`: measure this machine and
 * write a device profile for it (harness/profile.h does the measuring). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/device.h"
#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/json.h"
#include "harness/log.h"
#include "harness/profile.h"

static void od__profile_help(FILE *f)
{
    fprintf(f,
            "usage: ondev profile [--out FILE] [--quick] [--json]\n"
            "\n"
            "Measure the machine ondev runs on: topology (hwloc), hardware "
            "counters (PAPI,\nwhen the machine has any), clock, FMA peak, "
            "memory bandwidth and the\nthroughput of the engine's kernels "
            "per op kind. Write a device profile for it\nwhose `efficiency:` "
            "section calibrates the emulator (docs/profile.md).\n"
            "\n"
            "Use the profile like a shipped one: with FILE in DIR,\n"
            "  ONDEV_DEVICE_PATH=DIR ondev run --set device=NAME\n"
            "where NAME is FILE without .yaml.\n"
            "\n"
            "options:\n"
            "  --out FILE   the profile to write (default: host.yaml)\n"
            "  --quick      a run of a few seconds with rougher figures\n"
            "  --json       the measurements as JSON on stdout\n"
            "  -v, -q       more or less progress on stderr\n"
            "  -h, --help   this help\n");
}

/* The file stem of path: "dir/host.yaml" -> "host". */
static void od__stem(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
        n -= 5;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, base, n);
    out[n] = '\0';
}

/* The directory part of path, "." when none. */
static void od__dir(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(out, cap, ".");
        return;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

int od_cmd_profile(int argc, char **argv)
{
    od_cli_common common = {0};
    od_profile_opts opts = {0};
    const char *out = "host.yaml";
    for (int i = 1; i < argc; i++) {
        if (od_cli_common_option(&common, argv[i]))
            continue;
        if (strcmp(argv[i], "--quick") == 0) {
            opts.quick = 1;
        } else if (strcmp(argv[i], "--out") == 0 ||
                   strncmp(argv[i], "--out=", 6) == 0) {
            if (argv[i][5] == '=') {
                out = argv[i] + 6;
            } else if (i + 1 < argc) {
                out = argv[++i];
            } else {
                od_log_error("profile: --out needs a file name, e.g. "
                             "--out host.yaml");
                return OD_EXIT_USAGE;
            }
        } else {
            od_log_error("profile: unknown argument '%s' (see ondev profile "
                         "--help)", argv[i]);
            return OD_EXIT_USAGE;
        }
    }
    if (common.help) {
        od__profile_help(stdout);
        return OD_EXIT_OK;
    }
    size_t outlen = strlen(out);
    if (outlen == 0 || out[outlen - 1] == '/') {
        od_log_error("profile: --out '%s' is not a file name", out);
        return OD_EXIT_USAGE;
    }
    char name[64], dir[512];
    od__stem(out, name, sizeof name);
    od__dir(out, dir, sizeof dir);
    /* Refuse an unwritable place now, not after a minute of measuring. */
    if (access(dir, W_OK) != 0) {
        od_log_error("profile: cannot write into %s: %s (choose another "
                     "--out)", dir, strerror(errno));
        return OD_EXIT_USAGE;
    }
    if (outlen < 6 || strcmp(out + outlen - 5, ".yaml") != 0)
        od_log_warn("profile: %s does not end in .yaml; the device search "
                    "path only finds NAME.yaml", out);

    od_profile_result *r = malloc(sizeof *r);
    if (!r) {
        od_log_error("profile: out of memory");
        return OD_EXIT_FAIL;
    }
    od_log_info("profile: measuring this machine%s",
                opts.quick ? " (quick)" : "");
    od_status st = od_profile_measure(&opts, r);
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        free(r);
        return OD_EXIT_FAIL;
    }

    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%d", &tm);
    st = od_profile_write_yaml(r, out, name, date);
    if (st != OD_OK) {
        od_log_error("%s", od_error_message());
        free(r);
        return OD_EXIT_FAIL;
    }

    /* The profile must load as any other; a failure here is a bug of the
     * writer, reported with the loader's message. */
    od_dev_profile *p = malloc(sizeof *p);
    if (!p) {
        od_log_error("profile: out of memory");
        free(r);
        return OD_EXIT_FAIL;
    }
    if (od_dev_profile_load(out, p) != OD_DEV_OK) {
        od_log_error("profile: the written profile does not load: %s",
                     od_dev_error_message());
        free(p);
        free(r);
        return OD_EXIT_FAIL;
    }

    if (common.json) {
        od_json j;
        od_json_init(&j, stdout);
        od_json_begin_object(&j, NULL);
        od_json_string(&j, "profile_path", out);
        od_json_string(&j, "profile_name", p->name);
        od_json_bool(&j, "quick", opts.quick);
        od_profile_write_json(r, &j);
        od_json_end_object(&j);
        fputc('\n', stdout);
        fflush(stdout);
        if (od_log_enabled(OD_LOG_INFO))
            od_profile_write_text(r, stderr);
    } else {
        od_profile_write_text(r, stdout);
        fflush(stdout);
    }
    od_log_info("profile: wrote %s in %.1f s; use it with\n"
                "  ONDEV_DEVICE_PATH=%s ondev run --set device=%s",
                out, r->elapsed_s, dir, p->name);
    free(p);
    free(r);
    return OD_EXIT_OK;
}
