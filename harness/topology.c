#include "harness/topology.h"

#include <hwloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Load the topology of the CPUs this process may use. NULL on failure. */
static hwloc_topology_t od__topo_load(void)
{
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return NULL;
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return NULL;
    }
    return t;
}

static uint64_t od__cache_size(hwloc_topology_t t, hwloc_obj_type_t type)
{
    hwloc_obj_t o = hwloc_get_obj_by_type(t, type, 0);
    return o && o->attr ? o->attr->cache.size : 0;
}

void od_host_describe(od_host *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->cpu_model, sizeof h->cpu_model, "unknown");

    hwloc_topology_t t = od__topo_load();
    if (!t) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        h->pus = h->cores = n > 0 ? (int)n : 1;
        h->packages = 1;
        return;
    }
    h->known = 1;
    h->packages = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
    h->cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    h->pus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    if (h->cores <= 0)
        h->cores = h->pus;

    hwloc_obj_t pkg = hwloc_get_obj_by_type(t, HWLOC_OBJ_PACKAGE, 0);
    const char *model = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel")
                            : NULL;
    if (!model)
        model = hwloc_obj_get_info_by_name(hwloc_get_root_obj(t),
                                           "CPUModel");
    if (model)
        snprintf(h->cpu_model, sizeof h->cpu_model, "%s", model);

    h->l1d_bytes = od__cache_size(t, HWLOC_OBJ_L1CACHE);
    h->l2_bytes = od__cache_size(t, HWLOC_OBJ_L2CACHE);
    h->l3_bytes = od__cache_size(t, HWLOC_OBJ_L3CACHE);
    hwloc_topology_destroy(t);
}

static void od__kib(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= (1u << 20) && bytes % (1u << 20) == 0)
        snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
    else
        snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
}

void od_host_summary(const od_host *h, char *buf, size_t len)
{
    int o = snprintf(buf, len, "%s; %d core%s, %d PU%s", h->cpu_model,
                     h->cores, h->cores == 1 ? "" : "s", h->pus,
                     h->pus == 1 ? "" : "s");
    const struct { const char *name; uint64_t bytes; } caches[] = {
        {"L1d", h->l1d_bytes}, {"L2", h->l2_bytes}, {"L3", h->l3_bytes},
    };
    const char *sep = "; ";
    for (int i = 0; i < 3 && o > 0 && (size_t)o < len; i++) {
        if (!caches[i].bytes)
            continue;
        char size[32];
        od__kib(caches[i].bytes, size, sizeof size);
        o += snprintf(buf + o, len - (size_t)o, "%s%s %s", sep,
                      caches[i].name, size);
        sep = ", ";
    }
    if (!h->known && o > 0 && (size_t)o < len)
        snprintf(buf + o, len - (size_t)o, " (hwloc unavailable)");
}

int od_topology_default_threads(void)
{
    od_host h;
    od_host_describe(&h);
    return h.cores > 0 ? h.cores : 1;
}

int od_topology_pick_cpus(int nthreads, int *cpus, const char **why)
{
    *why = "";
    if (nthreads <= 0 || nthreads > OD_TOPO_MAX_CPUS) {
        *why = "thread count out of range for binding";
        return 0;
    }
    hwloc_topology_t t = od__topo_load();
    if (!t) {
        *why = "hwloc could not read the topology";
        return 0;
    }

    int ncores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    int npus = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    int picked = 0;
    if (nthreads > npus) {
        *why = "more threads than logical CPUs";
    } else if (ncores <= 0) {
        /* No core level (some virtual machines): take PUs in order. */
        for (; picked < nthreads; picked++)
            cpus[picked] =
                (int)hwloc_get_obj_by_type(t, HWLOC_OBJ_PU, picked)->os_index;
    } else {
        /* Round r takes the r-th hardware thread of every core, so that
         * SMT siblings are used only once each core has a worker. */
        for (int round = 0; picked < nthreads; round++) {
            int took = 0;
            for (int c = 0; c < ncores && picked < nthreads; c++) {
                hwloc_obj_t core = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE,
                                                         c);
                hwloc_obj_t pu = hwloc_get_obj_inside_cpuset_by_type(
                    t, core->cpuset, HWLOC_OBJ_PU, round);
                if (!pu)
                    continue;
                cpus[picked++] = (int)pu->os_index;
                took = 1;
            }
            if (!took)
                break;
        }
        if (picked < nthreads)
            *why = "cores and PUs did not add up";
    }
    hwloc_topology_destroy(t);
    return picked == nthreads;
}
