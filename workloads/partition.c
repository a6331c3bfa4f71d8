#include "workloads/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/rng.h"

static const char *const od__scheme_names[OD_PARTITION_SCHEME_COUNT] = {
    "iid", "dirichlet", "natural", "lognormal", "powerlaw",
};

/* Streams of the seed, one per use. */
#define OD__STREAM_SHUFFLE 0x50415254ull
#define OD__STREAM_WEIGHTS 0x50415257ull
#define OD__STREAM_CLASS 0x50415243ull

void od_partition_opts_init(od_partition_opts *o)
{
    OD_ASSERT(o);
    memset(o, 0, sizeof *o);
    o->scheme = OD_PARTITION_IID;
    o->clients = 10;
    o->alpha = 0.5;
    o->sigma = 1.0;
    o->exponent = 1.5;
}

const char *od_partition_scheme_name(od_partition_scheme s)
{
    if ((int)s < 0 || s >= OD_PARTITION_SCHEME_COUNT)
        return NULL;
    return od__scheme_names[s];
}

od_status od_partition_scheme_parse(const char *name,
                                    od_partition_scheme *out)
{
    OD_ASSERT(out);
    for (int i = 0; i < OD_PARTITION_SCHEME_COUNT; i++)
        if (name && strcmp(name, od__scheme_names[i]) == 0) {
            *out = (od_partition_scheme)i;
            return OD_OK;
        }
    return od_fail(OD_ERR_INVALID, "unknown partition '%s'; known: iid, "
                   "dirichlet, natural, lognormal, powerlaw",
                   name ? name : "(none)");
}

void od_partition_free(od_partition *p)
{
    if (!p)
        return;
    free(p->offset);
    free(p->idx);
    memset(p, 0, sizeof *p);
}

/* The owner of sample i for a natural split. */
static int32_t od__owner(const od_dataset *d, const od_partition_opts *o,
                         int i)
{
    int32_t g = d->group[i];
    return o->owner_of ? o->owner_of(g, o->owner_arg) : g;
}

static int od__cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The distinct owners of d's samples, ascending, into *owners (*count);
 * the caller frees *owners. */
static od_status od__owners(const od_dataset *d, const od_partition_opts *o,
                            int32_t **owners, int *count)
{
    int32_t *v = malloc((size_t)(d->n ? d->n : 1) * sizeof *v);
    if (!v)
        return od_fail(OD_ERR_NOMEM, "out of memory for the partition");
    for (int i = 0; i < d->n; i++) {
        v[i] = od__owner(d, o, i);
        if (v[i] < 0) {
            free(v);
            return od_fail(OD_ERR_INVALID, "sample %d has no natural owner "
                           "at the requested level (group %d)", i,
                           d->group[i]);
        }
    }
    qsort(v, (size_t)d->n, sizeof *v, od__cmp_i32);
    int k = 0;
    for (int i = 0; i < d->n; i++)
        if (i == 0 || v[i] != v[k - 1])
            v[k++] = v[i];
    *owners = v;
    *count = k;
    return OD_OK;
}

od_status od_partition_check(const od_dataset *d,
                             const od_partition_opts *o)
{
    OD_ASSERT(d && o);
    const char *name = od_partition_scheme_name(o->scheme);
    if (!name)
        return od_fail(OD_ERR_INVALID, "unknown partition scheme %d",
                       (int)o->scheme);
    if (d->n <= 0)
        return od_fail(OD_ERR_INVALID, "cannot partition %s: it has no "
                       "samples", d->name);
    if (o->clients < 0 || (o->clients == 0 &&
                           o->scheme != OD_PARTITION_NATURAL))
        return od_fail(OD_ERR_INVALID, "clients = %d: a %s partition needs "
                       "at least one client", o->clients, name);
    if (o->clients > d->n)
        return od_fail(OD_ERR_INVALID, "clients = %d is more than the %d "
                       "samples of %s: every client needs at least one "
                       "sample; use at most %d clients", o->clients, d->n,
                       d->name, d->n);

    switch (o->scheme) {
    case OD_PARTITION_DIRICHLET:
        if (!(o->alpha > 0) || !isfinite(o->alpha))
            return od_fail(OD_ERR_INVALID, "alpha = %g: the Dirichlet "
                           "concentration must be a positive number "
                           "(0.1: strong label skew, 100: nearly iid)",
                           o->alpha);
        if (d->labels_per_sample != 1)
            return od_fail(OD_ERR_INVALID, "a dirichlet label-skew "
                           "partition needs one label per sample; %s has "
                           "%d (use natural, iid, lognormal or powerlaw)",
                           d->name, d->labels_per_sample);
        break;
    case OD_PARTITION_LOGNORMAL:
        if (!(o->sigma > 0) || !isfinite(o->sigma))
            return od_fail(OD_ERR_INVALID, "sigma = %g: the lognormal spread "
                           "must be a positive number (e.g. 1)", o->sigma);
        break;
    case OD_PARTITION_POWERLAW:
        if (!(o->exponent > 0) || !isfinite(o->exponent))
            return od_fail(OD_ERR_INVALID, "exponent = %g: the power-law "
                           "tail index must be a positive number (e.g. "
                           "1.5)", o->exponent);
        break;
    case OD_PARTITION_NATURAL: {
        if (!d->group)
            return od_fail(OD_ERR_INVALID, "%s has no natural owners "
                           "(users, books); partition it with iid, "
                           "dirichlet, lognormal or powerlaw", d->name);
        int32_t *owners;
        int count;
        OD_TRY(od__owners(d, o, &owners, &count));
        free(owners);
        if (o->clients > count)
            return od_fail(OD_ERR_INVALID, "clients = %d is more than the "
                           "%d natural owners of %s; use at most %d, or 0 "
                           "for one client per owner", o->clients, count,
                           d->name, count);
        break;
    }
    default:
        break;
    }
    return OD_OK;
}

/* ---- Building blocks ----------------------------------------------------- */

typedef struct od__remainder {
    double frac;
    int index;
} od__remainder;

/* Larger fraction first, then lower index. */
static int od__cmp_remainder(const void *a, const void *b)
{
    const od__remainder *x = a, *y = b;
    if (x->frac != y->frac)
        return x->frac < y->frac ? 1 : -1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Split total into k counts proportional to w (k), by largest remainders
 * (ties to the lower index). Every count gets at least min_each first.
 * rem (k) is scratch. */
static void od__apportion(const double *w, int k, int64_t total,
                          int64_t min_each, int64_t *counts,
                          od__remainder *rem)
{
    OD_ASSERT(total >= min_each * k);
    double sum = 0;
    for (int c = 0; c < k; c++)
        sum += w[c];
    int64_t rest = total - min_each * k, given = 0;
    for (int c = 0; c < k; c++) {
        double share = sum > 0 ? (double)rest * w[c] / sum
                               : (double)rest / k;
        counts[c] = (int64_t)floor(share);
        if (given + counts[c] > rest)   /* rounding in the shares */
            counts[c] = rest - given;
        rem[c] = (od__remainder){share - (double)counts[c], c};
        given += counts[c];
    }

    /* Hand out what flooring left over, largest fraction first. */
    qsort(rem, (size_t)k, sizeof *rem, od__cmp_remainder);
    for (int64_t j = 0; j < rest - given; j++)
        counts[rem[j % k].index]++;
    for (int c = 0; c < k; c++)
        counts[c] += min_each;
}

/* log of a Gamma(shape, 1) draw (Marsaglia and Tsang, 2000; shapes below 1
 * through Gamma(shape + 1) U^(1 / shape)), in logs so that tiny shapes do
 * not underflow. */
static double od__log_gamma_draw(od_rng *r, double shape)
{
    double boost = 0;
    if (shape < 1) {
        double u = od_rng_uniform(r);
        boost = log(u > 0 ? u : 1e-300) / shape;
        shape += 1;
    }
    double dd = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * dd);
    for (;;) {
        double x = od_rng_normal(r), v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = od_rng_uniform(r);
        if (u > 0 && log(u) < 0.5 * x * x + dd - dd * v + dd * log(v))
            return log(dd * v) + boost;
    }
}

/* Dirichlet(alpha, ..., alpha) proportions p (k). */
static void od__dirichlet(od_rng *r, double alpha, int k, double *p)
{
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < k; c++) {
        p[c] = od__log_gamma_draw(r, alpha);
        mx = p[c] > mx ? p[c] : mx;
    }
    for (int c = 0; c < k; c++)
        sum += (p[c] = exp(p[c] - mx));
    for (int c = 0; c < k; c++)
        p[c] /= sum;
}

/* Give every empty client one sample from the currently largest client
 * (its highest-numbered sample), so that no client is empty. */
static void od__fill_empty(int n, int k, int32_t *client_of, int64_t *size)
{
    for (int c = 0; c < k; c++) {
        if (size[c] > 0)
            continue;
        int big = 0;
        for (int j = 1; j < k; j++)
            if (size[j] > size[big])
                big = j;
        OD_ASSERT(size[big] > 1);
        for (int i = n - 1; i >= 0; i--)
            if (client_of[i] == big) {
                client_of[i] = c;
                break;
            }
        size[big]--;
        size[c]++;
    }
}

/* ---- The schemes --------------------------------------------------------- */

od_status od_partition_make(const od_dataset *d, const od_partition_opts *o,
                            od_partition *p)
{
    OD_ASSERT(d && o && p);
    memset(p, 0, sizeof *p);
    OD_TRY(od_partition_check(d, o));

    const int n = d->n;
    int k = o->clients;
    int32_t *owners = NULL;
    int nowners = 0;
    if (o->scheme == OD_PARTITION_NATURAL) {
        OD_TRY(od__owners(d, o, &owners, &nowners));
        if (k == 0)
            k = nowners;
    }

    int32_t *client_of = malloc((size_t)n * sizeof *client_of);  /* (n) */
    int32_t *order = malloc((size_t)n * sizeof *order);          /* (n) */
    int64_t *size = calloc((size_t)k, sizeof *size);             /* (k) */
    double *w = calloc((size_t)k, sizeof *w);                    /* (k) */
    od__remainder *rem = calloc((size_t)k, sizeof *rem);         /* (k) */
    int64_t *counts = calloc((size_t)k, sizeof *counts);         /* (k) */
    od_status st = OD_OK;
    if (!client_of || !order || !size || !w || !rem || !counts) {
        st = od_fail(OD_ERR_NOMEM, "out of memory for the partition");
        goto done;
    }
    od_rng r;
    od_rng_seed(&r, o->seed, OD__STREAM_SHUFFLE);
    for (int i = 0; i < n; i++)
        order[i] = i;

    switch (o->scheme) {
    case OD_PARTITION_IID:
        /* Deal a shuffled deck: sizes differ by at most one. */
        od_rng_shuffle(&r, order, n);
        for (int i = 0; i < n; i++)
            client_of[order[i]] = i % k;
        break;

    case OD_PARTITION_LOGNORMAL:
    case OD_PARTITION_POWERLAW: {
        /* Sizes from the law (at least one each), then a shuffled deal. */
        od_rng wr;
        od_rng_seed(&wr, o->seed, OD__STREAM_WEIGHTS);
        for (int c = 0; c < k; c++) {
            if (o->scheme == OD_PARTITION_LOGNORMAL) {
                w[c] = exp(o->sigma * od_rng_normal(&wr));
            } else {
                double u = 1.0 - od_rng_uniform(&wr);   /* (0, 1] */
                w[c] = pow(u, -1.0 / o->exponent);
            }
        }
        od__apportion(w, k, n, 1, counts, rem);
        od_rng_shuffle(&r, order, n);
        int64_t at = 0;
        for (int c = 0; c < k; c++)
            for (int64_t j = 0; j < counts[c]; j++)
                client_of[order[at++]] = c;
        OD_ASSERT(at == n);
        break;
    }

    case OD_PARTITION_DIRICHLET: {
        /* Per class: shuffle its samples, draw the clients' shares, and
         * cut the class into runs of those sizes. */
        od_rng_shuffle(&r, order, n);
        for (int cls = 0; cls < d->num_classes; cls++) {
            int64_t nc = 0;
            for (int i = 0; i < n; i++)
                nc += d->y[order[i]] == cls;
            if (nc == 0)
                continue;
            od_rng cr;
            od_rng_seed(&cr, o->seed, OD__STREAM_CLASS + (uint64_t)cls);
            od__dirichlet(&cr, o->alpha, k, w);
            od__apportion(w, k, nc, 0, counts, rem);
            int c = 0;
            int64_t used = 0;
            for (int i = 0; i < n; i++) {
                if (d->y[order[i]] != cls)
                    continue;
                while (used == counts[c]) {
                    c++;
                    used = 0;
                }
                client_of[order[i]] = c;
                used++;
            }
        }
        /* Unlabelled samples (-1) go to clients at random. */
        for (int i = 0; i < n; i++)
            if (d->y[i] < 0 || d->y[i] >= d->num_classes)
                client_of[i] = (int32_t)od_rng_below(&r, (uint64_t)k);
        break;
    }

    case OD_PARTITION_NATURAL: {
        /* Owners in a seeded order, dealt to the clients; with one client
         * per owner, owner j (ascending) is client j. */
        int32_t *slot = malloc((size_t)nowners * sizeof *slot);
        if (!slot) {
            st = od_fail(OD_ERR_NOMEM, "out of memory for the partition");
            goto done;
        }
        for (int j = 0; j < nowners; j++)
            slot[j] = j;
        if (k < nowners)
            od_rng_shuffle(&r, slot, nowners);
        for (int i = 0; i < n; i++) {
            int32_t ow = od__owner(d, o, i);
            const int32_t *hit = bsearch(&ow, owners, (size_t)nowners,
                                         sizeof *owners, od__cmp_i32);
            OD_ASSERT(hit);
            client_of[i] = slot[hit - owners] % k;
        }
        free(slot);
        break;
    }

    default:
        OD_ASSERT(0);
    }

    /* No client may be empty (dirichlet with a small alpha leaves some). */
    for (int i = 0; i < n; i++) {
        OD_ASSERT(client_of[i] >= 0 && client_of[i] < k);
        size[client_of[i]]++;
    }
    od__fill_empty(n, k, client_of, size);

    /* Compressed rows, samples ascending within each client. */
    p->offset = malloc((size_t)(k + 1) * sizeof *p->offset);
    p->idx = malloc((size_t)n * sizeof *p->idx);
    if (!p->offset || !p->idx) {
        od_partition_free(p);
        st = od_fail(OD_ERR_NOMEM, "out of memory for the partition");
        goto done;
    }
    p->clients = k;
    p->n = n;
    p->offset[0] = 0;
    for (int c = 0; c < k; c++)
        p->offset[c + 1] = p->offset[c] + size[c];
    memcpy(counts, p->offset, (size_t)k * sizeof *counts);
    for (int i = 0; i < n; i++)
        p->idx[counts[client_of[i]]++] = i;

done:
    free(owners);
    free(client_of);
    free(order);
    free(size);
    free(w);
    free(rem);
    free(counts);
    return st;
}

/* ---- Checks and figures -------------------------------------------------- */

od_status od_partition_validate(const od_partition *p)
{
    OD_ASSERT(p);
    if (p->clients <= 0 || !p->offset || !p->idx || p->offset[0] != 0 ||
        p->offset[p->clients] != p->n)
        return od_fail(OD_ERR_FORMAT, "partition offsets do not run from 0 "
                       "to the %d samples", p->n);
    char *seen = calloc((size_t)p->n, 1);
    if (!seen)
        return od_fail(OD_ERR_NOMEM, "out of memory");
    od_status st = OD_OK;
    for (int c = 0; c < p->clients && st == OD_OK; c++) {
        if (p->offset[c + 1] <= p->offset[c])
            st = od_fail(OD_ERR_FORMAT, "client %d is empty", c);
        for (int64_t j = p->offset[c]; j < p->offset[c + 1] && st == OD_OK;
             j++) {
            int32_t i = p->idx[j];
            if (i < 0 || i >= p->n)
                st = od_fail(OD_ERR_FORMAT, "client %d holds sample %d, "
                             "outside 0..%d", c, i, p->n - 1);
            else if (seen[i]++)
                st = od_fail(OD_ERR_FORMAT, "sample %d is in two clients",
                             i);
        }
    }
    free(seen);
    return st;
}

/* Entropy in bits of counts (k). */
static double od__entropy_bits(const int64_t *counts, int k)
{
    int64_t total = 0;
    for (int c = 0; c < k; c++)
        total += counts[c];
    double h = 0;
    for (int c = 0; c < k; c++)
        if (counts[c] > 0) {
            double q = (double)counts[c] / (double)total;
            h -= q * log2(q);
        }
    return h;
}

od_status od_partition_stats_compute(const od_dataset *d,
                                     const od_partition *p,
                                     od_partition_stats *s, double *entropy)
{
    OD_ASSERT(d && p && s && p->n == d->n);
    memset(s, 0, sizeof *s);
    const int K = d->num_classes;
    const int L = d->labels_per_sample;
    int64_t *counts = calloc((size_t)K, sizeof *counts);
    int64_t *all = calloc((size_t)K, sizeof *all);
    if (!counts || !all) {
        free(counts);
        free(all);
        return od_fail(OD_ERR_NOMEM, "out of memory");
    }
    s->clients = p->clients;
    s->min_size = INT64_MAX;
    double sum = 0, sum2 = 0, hsum = 0, classes = 0;
    for (int c = 0; c < p->clients; c++) {
        int64_t sz = od_partition_size(p, c);
        s->min_size = sz < s->min_size ? sz : s->min_size;
        s->max_size = sz > s->max_size ? sz : s->max_size;
        sum += (double)sz;
        sum2 += (double)sz * (double)sz;

        memset(counts, 0, (size_t)K * sizeof *counts);
        for (int64_t j = p->offset[c]; j < p->offset[c + 1]; j++) {
            const int32_t *y = d->y + (size_t)p->idx[j] * (size_t)L;
            for (int t = 0; t < L; t++)
                if (y[t] >= 0 && y[t] < K)
                    counts[y[t]]++;
        }
        double h = od__entropy_bits(counts, K);
        if (entropy)
            entropy[c] = h;
        hsum += h;
        for (int k = 0; k < K; k++) {
            classes += counts[k] > 0;
            all[k] += counts[k];
        }
    }
    s->mean_size = sum / p->clients;
    double var = sum2 / p->clients - s->mean_size * s->mean_size;
    s->std_size = var > 0 ? sqrt(var) : 0;
    s->mean_label_entropy_bits = hsum / p->clients;
    s->mean_classes_per_client = classes / p->clients;
    s->global_label_entropy_bits = od__entropy_bits(all, K);
    free(counts);
    free(all);
    return OD_OK;
}
