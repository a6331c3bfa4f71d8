#include "harness/cli.h"

#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "harness/commands.h"
#include "harness/config.h"
#include "harness/json.h"
#include "harness/log.h"
#include "harness/topology.h"

#ifndef ONDEV_VERSION
#define ONDEV_VERSION "unknown"
#endif
#ifndef ONDEV_GIT_DESCRIBE
#define ONDEV_GIT_DESCRIBE "unknown"
#endif
#ifndef ONDEV_COMPILER
#define ONDEV_COMPILER "unknown"
#endif

static int od__cmd_config(int argc, char **argv);

typedef struct od__command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *synopsis;
    const char *summary;
    int hidden;
} od__command;

static const od__command od__commands[] = {
    {"run", od_cmd_run, "run [FILE] [--set key=value]...",
     "train one experiment and report time, memory and accuracy", 0},
    {"privacy", od_cmd_privacy, "privacy epsilon|sigma ...",
     "the differential-privacy accountant on its own", 0},
    {"workloads", od_cmd_workloads, "workloads [partition --set k=v...]",
     "list the workloads, or split one across federated clients", 0},
    {"devices", od_cmd_devices, "devices [NAME]",
     "list the emulated phone profiles, or show one with sources", 0},
    {"profile", od_cmd_profile, "profile [--out FILE] [--quick]",
     "measure this machine and write a device profile for it", 0},
    {"report", od_cmd_report, "report RESULTS [--out DIR]",
     "plots and an HTML/Markdown report from stored results", 0},
    {"compare", od_cmd_compare, "compare BASE NEW [--junit FILE]",
     "regression check of two results against tolerances", 0},
    {"config", od__cmd_config, "config [--markdown]",
     "the configuration keys as YAML or as a Markdown table", 1},
};
#define OD__NCOMMANDS (sizeof od__commands / sizeof od__commands[0])

static void od__usage(FILE *f)
{
    fprintf(f, "usage: ondev <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < OD__NCOMMANDS; i++)
        if (!od__commands[i].hidden)
            fprintf(f, "  %-34s %s\n", od__commands[i].synopsis,
                    od__commands[i].summary);
    fprintf(f,
            "\noptions (before or after the command):\n"
            "  -h, --help      help on a command: ondev run --help\n"
            "  -v, --verbose   more detail on stderr (host, binding, "
            "epochs)\n"
            "  -q, --quiet     errors and warnings only\n"
            "  --json          machine-readable summary on stdout; other "
            "text goes to stderr\n"
            "  --version       version, compiler, kernels and host\n");
}

int od_cli_common_option(od_cli_common *o, const char *arg)
{
    if (strcmp(arg, "-v") == 0 || strcmp(arg, "--verbose") == 0)
        od_log_set_level(OD_LOG_DEBUG);
    else if (strcmp(arg, "-q") == 0 || strcmp(arg, "--quiet") == 0)
        od_log_set_level(OD_LOG_WARN);
    else if (strcmp(arg, "--json") == 0)
        o->json = 1;
    else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
        o->help = 1;
    else
        return 0;
    return 1;
}

int od_cli_emit(FILE *f, const char *buf, size_t len)
{
    if (len && fwrite(buf, 1, len, f) != len)
        return -1;
    return fflush(f) == 0 ? 0 : -1;
}

void od_cli_write_version(FILE *f, int json)
{
    od_host h;
    od_host_describe(&h);
    od_isa isa = od_cpu_isa(), detected = od_cpu_isa_detected();
    if (json) {
        od_json j;
        od_json_init(&j, f);
        od_json_begin_object(&j, NULL);
        od_json_string(&j, "version", ONDEV_VERSION);
        od_json_string(&j, "git_describe", ONDEV_GIT_DESCRIBE);
        od_json_string(&j, "compiler", ONDEV_COMPILER);
        od_json_string(&j, "isa", od_isa_name(isa));
        od_json_string(&j, "isa_detected", od_isa_name(detected));
        od_json_begin_object(&j, "host");
        od_json_string(&j, "cpu_model", h.cpu_model);
        od_json_int(&j, "packages", h.packages);
        od_json_int(&j, "cores", h.cores);
        od_json_int(&j, "pus", h.pus);
        od_json_int(&j, "l1d_bytes", (int64_t)h.l1d_bytes);
        od_json_int(&j, "l2_bytes", (int64_t)h.l2_bytes);
        od_json_int(&j, "l3_bytes", (int64_t)h.l3_bytes);
        od_json_end_object(&j);
        od_json_end_object(&j);
        return;
    }
    char host[512];
    od_host_summary(&h, host, sizeof host);
    fprintf(f, "ondev %s (%s)\ncompiler: %s\nkernels: %s", ONDEV_VERSION,
            ONDEV_GIT_DESCRIBE, ONDEV_COMPILER, od_isa_name(isa));
    if (isa != detected)
        fprintf(f, " (capped by ONDEV_ISA; the CPU has %s)",
                od_isa_name(detected));
    fprintf(f, "\nhost: %s\n", host);
}

/* `ondev config [--markdown]`: the key table, for docs/configuration.md. */
static int od__cmd_config(int argc, char **argv)
{
    int markdown = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--markdown") == 0) {
            markdown = 1;
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            printf("usage: ondev config [--markdown]\n"
                   "Print every configuration key with its default, as "
                   "YAML or as the Markdown\ntable of "
                   "docs/configuration.md.\n");
            return OD_EXIT_OK;
        } else {
            od_log_error("config: unknown option '%s'", argv[i]);
            return OD_EXIT_USAGE;
        }
    }
    if (markdown) {
        od_config_write_markdown(stdout);
    } else {
        od_config c;
        od_config_defaults(&c);
        od_config_write_yaml(&c, stdout);
    }
    return OD_EXIT_OK;
}

int od_main(int argc, char **argv)
{
    /* Options before the command apply to it: `ondev -v run` is
     * `ondev run -v`. They are collected and passed on after its name. */
    char **global = calloc((size_t)argc + 1, sizeof *global);
    if (!global) {
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    int nglobal = 0, i = 1, version = 0;
    od_cli_common common = {0};
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--version") == 0)
            version = 1;
        else if (od_cli_common_option(&common, argv[i]))
            global[nglobal++] = argv[i];
        else {
            od_log_error("unknown option '%s'", argv[i]);
            od__usage(stderr);
            free(global);
            return OD_EXIT_USAGE;
        }
    }
    if (version) {
        od_cli_write_version(stdout, common.json);
        free(global);
        return OD_EXIT_OK;
    }
    if (i == argc) {
        od__usage(common.help ? stdout : stderr);
        free(global);
        return common.help ? OD_EXIT_OK : OD_EXIT_USAGE;
    }

    const char *name = argv[i];
    const od__command *cmd = NULL;
    for (size_t k = 0; k < OD__NCOMMANDS; k++)
        if (strcmp(od__commands[k].name, name) == 0)
            cmd = &od__commands[k];
    if (!cmd) {
        const char *names[OD__NCOMMANDS];
        size_t n = 0;
        for (size_t k = 0; k < OD__NCOMMANDS; k++)
            if (!od__commands[k].hidden)
                names[n++] = od__commands[k].name;
        const char *near = od_closest_name(name, names, n);
        if (near)
            od_log_error("unknown command '%s'; did you mean '%s'?", name,
                         near);
        else
            od_log_error("unknown command '%s'", name);
        od__usage(stderr);
        free(global);
        return OD_EXIT_USAGE;
    }

    /* argv for the command: its name, the global options, its own. */
    int sub_argc = 1 + nglobal + (argc - i - 1);
    char **sub = calloc((size_t)sub_argc + 1, sizeof *sub);
    if (!sub) {
        free(global);
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    sub[0] = argv[i];
    for (int k = 0; k < nglobal; k++)
        sub[1 + k] = global[k];
    for (int k = i + 1; k < argc; k++)
        sub[1 + nglobal + (k - i - 1)] = argv[k];
    int rc = cmd->fn(sub_argc, sub);
    free(sub);
    free(global);
    return rc;
}
