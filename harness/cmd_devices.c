/* `ondev devices [NAME]`: list the emulated phone profiles, or show one in
 * full with the source of every figure. */
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "harness/cli.h"
#include "harness/commands.h"
#include "harness/device_bridge.h"
#include "harness/json.h"
#include "harness/log.h"

#define OD__MAX_PROFILES 64

static void od__devices_help(FILE *f)
{
    fprintf(f,
            "usage: ondev devices [NAME] [--json]\n"
            "\n"
            "List the emulated phone profiles (name, SoC, clusters, battery, "
            "memory), or\nshow profile NAME in full with the source of "
            "every figure.\n"
            "\n"
            "Profiles are YAML files NAME.yaml, searched in the directories "
            "of the\nenvironment variable ONDEV_DEVICE_PATH (colon-separated), "
            "then in the shipped\ndevices/profiles; docs/devices.md "
            "describes the format and the models.\n"
            "\n"
            "options:\n"
            "  --json       the list or the profile as JSON on stdout\n"
            "  -h, --help   this help\n");
}

/* "4x Cortex-A55 + 2x Cortex-X1", or with short 1: "4xA55 2xX1" (the
 * core type without its "Cortex-" prefix and any remark in brackets). */
static void od__clusters_text(const od_dev_profile *p, int short_form,
                              char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < p->nclusters; i++) {
        const char *type = p->clusters[i].core_type;
        int n = (int)strlen(type);
        if (short_form) {
            if (strncmp(type, "Cortex-", 7) == 0) {
                type += 7;
                n -= 7;
            }
            const char *paren = strstr(type, " (");
            if (paren)
                n = (int)(paren - type);
        }
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%dx%s%.*s",
                 i ? (short_form ? " " : " + ") : "", p->clusters[i].cores,
                 short_form ? "" : " ", n, type);
    }
}

static void od__write_list_json(od_json *j, const od_dev_profile *p)
{
    od_json_begin_object(j, NULL);
    od_json_string(j, "name", p->name);
    od_json_string(j, "model", p->model);
    od_json_string(j, "soc", p->soc);
    od_json_begin_array(j, "clusters");
    for (int i = 0; i < p->nclusters; i++) {
        const od_dev_cluster *c = &p->clusters[i];
        od_json_begin_object(j, NULL);
        od_json_string(j, "name", c->name);
        od_json_string(j, "core_type", c->core_type);
        od_json_int(j, "cores", c->cores);
        od_json_double(j, "max_freq_khz", c->freq_khz[c->nfreq - 1]);
        od_json_end_object(j);
    }
    od_json_end_array(j);
    od_json_double(j, "battery_mah", p->battery_mah);
    od_json_double(j, "mem_total_bytes", p->mem_total_bytes);
    od_json_double(j, "mem_budget_bytes", od_dev_profile_mem_budget_bytes(p));
    od_json_string(j, "path", p->path);
    od_json_end_object(j);
}

static void od__write_full_json(const od_dev_profile *p, FILE *f)
{
    od_json j;
    od_json_init(&j, f);
    od_json_begin_object(&j, NULL);
    od_json_string(&j, "name", p->name);
    od_json_string(&j, "model", p->model);
    od_json_string(&j, "soc", p->soc);
    od_json_string(&j, "path", p->path);
    od_json_int(&j, "big_cluster", od_dev_profile_big_cluster(p));
    od_json_begin_array(&j, "clusters");
    for (int i = 0; i < p->nclusters; i++) {
        const od_dev_cluster *c = &p->clusters[i];
        od_json_begin_object(&j, NULL);
        od_json_string(&j, "name", c->name);
        od_json_string(&j, "core_type", c->core_type);
        od_json_int(&j, "cores", c->cores);
        od_json_double_array(&j, "freq_khz", c->freq_khz, (size_t)c->nfreq);
        od_json_double_array(&j, "core_current_ma", c->core_current_ma,
                             (size_t)c->nfreq);
        od_json_double(&j, "cluster_current_ma", c->cluster_current_ma);
        if (c->has_heat)
            od_json_double_array(&j, "heat_mw", c->heat_mw,
                                 (size_t)c->nfreq);
        else
            od_json_double(&j, "heat_scale", c->heat_scale);
        od_json_double(&j, "flop_per_cycle", c->flop_per_cycle);
        od_json_double(&j, "l2_bytes", c->l2_bytes);
        od_json_double(&j, "power_weight", c->power_weight);
        od_json_end_object(&j);
    }
    od_json_end_array(&j);

    od_json_begin_object(&j, "memory");
    od_json_double(&j, "total_bytes", p->mem_total_bytes);
    od_json_double(&j, "peak_bandwidth_bytes_per_s",
                   p->mem_bandwidth_bytes_per_s);
    od_json_double(&j, "cpu_bandwidth_share", p->mem_cpu_bw_share);
    od_json_double(&j, "app_share", p->mem_app_share);
    od_json_double(&j, "budget_bytes", od_dev_profile_mem_budget_bytes(p));
    od_json_end_object(&j);

    od_json_begin_object(&j, "battery");
    od_json_double(&j, "capacity_mah", p->battery_mah);
    od_json_double(&j, "nominal_v", p->battery_v);
    od_json_double(&j, "charge_current_ma", p->charge_current_ma);
    od_json_double(&j, "kibam_c", p->kibam_c);
    od_json_double(&j, "kibam_k_per_s", p->kibam_k_per_s);
    od_json_end_object(&j);

    od_json_begin_object(&j, "base_current_ma");
    od_json_double(&j, "suspend", p->suspend_ma);
    od_json_double(&j, "awake", p->awake_ma);
    od_json_double(&j, "active", p->active_ma);
    od_json_end_object(&j);

    od_json_begin_object(&j, "thermal");
    od_json_double(&j, "r_soc_skin_c_per_w", p->r_soc_skin_c_per_w);
    od_json_double(&j, "r_skin_ambient_c_per_w", p->r_skin_amb_c_per_w);
    od_json_double(&j, "c_soc_j_per_c", p->c_soc_j_per_c);
    od_json_double(&j, "c_skin_j_per_c", p->c_skin_j_per_c);
    od_json_double_array(&j, "trips_c", p->trips_c, (size_t)p->ntrips);
    od_json_double(&j, "hysteresis_c", p->hysteresis_c);
    od_json_double(&j, "poll_s", p->poll_s);
    od_json_begin_array(&j, "pid");
    for (int i = 0; i < p->npid; i++) {
        const od_dev_pid_stage *g = &p->pid[i];
        od_json_begin_object(&j, NULL);
        od_json_double(&j, "control_c", g->control_c);
        od_json_double(&j, "sustainable_mw", g->sustainable_mw);
        od_json_double(&j, "k_po", g->k_po);
        od_json_double(&j, "k_pu", g->k_pu);
        od_json_double(&j, "k_i", g->k_i);
        od_json_double(&j, "k_d", g->k_d);
        od_json_double(&j, "i_max_mw", g->i_max_mw);
        od_json_double(&j, "i_cutoff_c", g->i_cutoff_c);
        od_json_double(&j, "min_alloc_mw", g->min_alloc_mw);
        od_json_double(&j, "max_alloc_mw", g->max_alloc_mw);
        od_json_end_object(&j);
    }
    od_json_end_array(&j);
    od_json_end_object(&j);

    od_json_begin_object(&j, "sources");
    for (int i = 0; i < p->nsources; i++)
        od_json_string(&j, p->sources[i].id, p->sources[i].text);
    od_json_end_object(&j);
    /* Figure path -> source id, in file order. */
    od_json_begin_object(&j, "figure_sources");
    for (int i = 0; i < p->nfacts; i++)
        od_json_string(&j, p->facts[i].key,
                       p->sources[p->facts[i].source].id);
    od_json_end_object(&j);
    od_json_end_object(&j);
    fputc('\n', f);
}

static void od__write_full_text(const od_dev_profile *p, FILE *f)
{
    char clusters[256];
    od__clusters_text(p, 0, clusters, sizeof clusters);
    fprintf(f, "%s: %s, %s\n", p->name, p->model, p->soc);
    fprintf(f, "file: %s\n", p->path);
    fprintf(f, "cores: %s (big cluster: %s)\n", clusters,
            p->clusters[od_dev_profile_big_cluster(p)].name);
    fprintf(f, "memory budget for an app: %.0f MiB of %.0f MiB\n",
            od_dev_profile_mem_budget_bytes(p) / 1048576.0,
            p->mem_total_bytes / 1048576.0);
    fprintf(f, "\nfigures (value [source]):\n");
    for (int i = 0; i < p->nfacts; i++) {
        const od_dev_fact *x = &p->facts[i];
        fprintf(f, "  %-36s %s  [%s]\n", x->key, x->value,
                p->sources[x->source].id);
    }
    fprintf(f, "\nsources:\n");
    for (int i = 0; i < p->nsources; i++)
        fprintf(f, "  %s: %s\n", p->sources[i].id, p->sources[i].text);
}

static int od__show(const od_dev_search_path *sp, const char *name, int json)
{
    od_dev_profile *p = malloc(sizeof *p);
    if (!p) {
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    od_dev_status st = od_dev_profile_find(sp, name, p);
    if (st != OD_DEV_OK) {
        od_log_error("%s", od_dev_error_message());
        free(p);
        return OD_EXIT_USAGE;
    }
    if (json)
        od__write_full_json(p, stdout);
    else
        od__write_full_text(p, stdout);
    free(p);
    return OD_EXIT_OK;
}

static int od__list(const od_dev_search_path *sp, int json)
{
    char (*names)[OD_DEV_NAME_MAX] = calloc(OD__MAX_PROFILES, sizeof *names);
    od_dev_profile *p = malloc(sizeof *p);
    if (!names || !p) {
        free(names);
        free(p);
        od_log_error("out of memory");
        return OD_EXIT_FAIL;
    }
    int n = od_dev_profile_names(sp, names, OD__MAX_PROFILES);
    if (n > OD__MAX_PROFILES) {
        od_log_warn("%d profiles found; listing the first %d", n,
                    OD__MAX_PROFILES);
        n = OD__MAX_PROFILES;
    }
    int rc = OD_EXIT_OK;
    od_json j;
    if (json) {
        od_json_init(&j, stdout);
        od_json_begin_array(&j, NULL);
    } else {
        printf("%-12s %-30s %-32s %-18s %9s %9s %9s\n", "NAME", "MODEL",
               "SOC", "CORES", "BATTERY", "MEMORY", "APP");
    }
    for (int i = 0; i < n; i++) {
        if (od_dev_profile_find(sp, names[i], p) != OD_DEV_OK) {
            /* A broken file is named with its line and skipped. */
            od_log_error("%s", od_dev_error_message());
            rc = OD_EXIT_USAGE;
            continue;
        }
        if (json) {
            od__write_list_json(&j, p);
            continue;
        }
        char clusters[256];
        od__clusters_text(p, 1, clusters, sizeof clusters);
        printf("%-12s %-30s %-32s %-18s %5.0f mAh %5.1f GiB %5.0f MiB\n",
               p->name, p->model, p->soc, clusters, p->battery_mah,
               p->mem_total_bytes / 1073741824.0,
               od_dev_profile_mem_budget_bytes(p) / 1048576.0);
    }
    if (json) {
        od_json_end_array(&j);
        fputc('\n', stdout);
    } else if (n == 0) {
        od_log_warn("no device profiles found (ONDEV_DEVICE_PATH and %s)",
                    od_device_profiles_dir());
    }
    free(names);
    free(p);
    return rc;
}

int od_cmd_devices(int argc, char **argv)
{
    od_cli_common common = {0};
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (od_cli_common_option(&common, argv[i]))
            continue;
        if (argv[i][0] == '-') {
            od_log_error("devices: unknown option '%s'", argv[i]);
            od__devices_help(stderr);
            return OD_EXIT_USAGE;
        }
        if (name) {
            od_log_error("devices: one NAME at most ('%s' and '%s')", name,
                         argv[i]);
            return OD_EXIT_USAGE;
        }
        name = argv[i];
    }
    if (common.help) {
        od__devices_help(stdout);
        return OD_EXIT_OK;
    }
    od_dev_search_path sp;
    od_dev_search_path_init(&sp, od_device_profiles_dir());
    return name ? od__show(&sp, name, common.json) : od__list(&sp, common.json);
}
