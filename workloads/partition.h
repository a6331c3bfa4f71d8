/* Splitting a dataset across the clients of a federated run, the way
 * real users' data is split: unevenly and non-identically.
 *
 * Schemes (all seeded and deterministic):
 *  - iid:       a seeded shuffle dealt into clients of near-equal size;
 *  - dirichlet: label skew; for each class, the shares of the clients are
 *               drawn from Dirichlet(alpha) (smaller alpha, fewer classes
 *               per client);
 *  - natural:   one client per natural owner of the data (the dataset's
 *               groups: a user, a chapter, or coarser levels the workload
 *               names, such as a book); with a given number of clients,
 *               owners are dealt to clients in a seeded order;
 *  - lognormal: quantity skew; client sizes proportional to draws of
 *               exp(N(0, sigma^2)), samples dealt at random;
 *  - powerlaw:  quantity skew; client sizes proportional to draws of a
 *               Pareto law with tail index `exponent` (u^(-1/exponent)).
 *
 * Every sample lands in exactly one client, and every client gets at least
 * one sample. */
#ifndef ONDEV_WORKLOADS_PARTITION_H
#define ONDEV_WORKLOADS_PARTITION_H

#include "workloads/dataset.h"

typedef enum od_partition_scheme {
    OD_PARTITION_IID = 0,
    OD_PARTITION_DIRICHLET,
    OD_PARTITION_NATURAL,
    OD_PARTITION_LOGNORMAL,
    OD_PARTITION_POWERLAW,
    OD_PARTITION_SCHEME_COUNT
} od_partition_scheme;

typedef struct od_partition_opts {
    od_partition_scheme scheme;
    int clients;        /* > 0; natural: 0 means one per owner */
    double alpha;       /* dirichlet: concentration, > 0 */
    double sigma;       /* lognormal: spread of log sizes, > 0 */
    double exponent;    /* powerlaw: Pareto tail index, > 0 */
    uint64_t seed;
    /* natural: the owner of a sample's group at a coarser level (e.g.
     * chapter -> book); NULL keeps the groups. Must return >= 0. */
    int32_t (*owner_of)(int32_t group, const void *arg);
    const void *owner_arg;
} od_partition_opts;

/* The clients' samples, as compressed rows: client c holds the samples
 * idx[offset[c]] .. idx[offset[c + 1] - 1], in ascending order. */
typedef struct od_partition {
    int clients;
    int64_t *offset;    /* (clients + 1), owned */
    int32_t *idx;       /* (n), owned */
    int n;              /* samples in the dataset */
} od_partition;

/* Defaults: iid, 10 clients, alpha 0.5, sigma 1, exponent 1.5, seed 0. */
void od_partition_opts_init(od_partition_opts *o);

/* "iid", "dirichlet", ...; NULL for an out-of-range value. */
const char *od_partition_scheme_name(od_partition_scheme s);
/* OD_ERR_INVALID naming the known schemes when name is none of them. */
od_status od_partition_scheme_parse(const char *name,
                                    od_partition_scheme *out);

/* Check the options against the dataset before any work: clients in
 * [1, n] (natural: at most the number of owners), alpha, sigma, exponent
 * positive, groups present for natural, one label per sample for
 * dirichlet. OD_ERR_INVALID with the reason otherwise. */
od_status od_partition_check(const od_dataset *d,
                             const od_partition_opts *o);

/* Split d as o says (after od_partition_check). On failure *p is empty. */
od_status od_partition_make(const od_dataset *d, const od_partition_opts *o,
                            od_partition *p);
void od_partition_free(od_partition *p);

static inline int64_t od_partition_size(const od_partition *p, int c)
{
    return p->offset[c + 1] - p->offset[c];
}

/* Figures of a split. Label entropy is in bits, over every label the
 * client holds (-1 labels skipped); for sequence labels, over all of
 * them. */
typedef struct od_partition_stats {
    int clients;
    int64_t min_size, max_size;
    double mean_size, std_size;
    double mean_label_entropy_bits;   /* mean over clients */
    double global_label_entropy_bits; /* of the whole dataset */
    double mean_classes_per_client;   /* classes with at least one label */
} od_partition_stats;

/* Fill s; with entropy (clients), also each client's label entropy. */
od_status od_partition_stats_compute(const od_dataset *d,
                                     const od_partition *p,
                                     od_partition_stats *s,
                                     double *entropy);

/* Check the invariants: offsets rise from 0 to n, every sample appears in
 * exactly one client, no client is empty. OD_ERR_FORMAT otherwise. */
od_status od_partition_validate(const od_partition *p);

#endif
