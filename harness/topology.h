/* The host machine as hwloc sees it, and which logical CPUs the workers of
 * a run are bound to. */
#ifndef ONDEV_HARNESS_TOPOLOGY_H
#define ONDEV_HARNESS_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#define OD_TOPO_MAX_CPUS 1024

typedef struct od_host {
    char cpu_model[128];     /* "Intel(R) Xeon(R) ..." or "unknown" */
    int packages;
    int cores;               /* physical cores usable by this process */
    int pus;                 /* logical CPUs (hardware threads) usable */
    uint64_t l1d_bytes;      /* per core; 0 when unknown */
    uint64_t l2_bytes;
    uint64_t l3_bytes;       /* per package */
    int known;               /* 0: hwloc failed; counts come from sysconf */
} od_host;

/* Describe the host. Never fails: without hwloc's view the counts come from
 * the OS and the model is "unknown". */
void od_host_describe(od_host *h);
/* "Intel(R) Xeon(R) ...; 2 cores, 2 PUs; L1d 48 KiB, L2 2 MiB, L3 ..." */
void od_host_summary(const od_host *h, char *buf, size_t len);

/* Choose the logical CPUs for nthreads workers: the first PU of each
 * physical core first, then second hardware threads of cores, and so on.
 * Writes the OS indexes to cpus[0..nthreads) and returns 1, or returns 0
 * when no placement can be given (more threads than PUs, or hwloc cannot
 * tell): the workers then run unbound. *why explains a 0. */
int od_topology_pick_cpus(int nthreads, int *cpus, const char **why);

/* The number of threads `threads = 0` stands for: every physical core. */
int od_topology_default_threads(void);

#endif
