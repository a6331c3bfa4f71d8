#include "workloads/metrics.h"

#include <math.h>
#include <string.h>

void od_metric_acc_init(od_metric_acc *acc)
{
    OD_ASSERT(acc);
    memset(acc, 0, sizeof *acc);
}

/* Rank of the label among scores s (classes): how many classes score
 * strictly higher, ties broken towards the lower class index so that the
 * rank matches an argmax that keeps the first maximum. */
static int od__label_rank(const float *s, int classes, int label)
{
    int rank = 0;
    for (int c = 0; c < classes; c++)
        if (s[c] > s[label] || (s[c] == s[label] && c < label))
            rank++;
    return rank;
}

void od_metric_acc_add(od_metric_acc *acc, const od_tensor *logits,
                       const int32_t *labels)
{
    OD_ASSERT(acc && logits && labels && logits->ndim >= 1);
    int classes = logits->dims[logits->ndim - 1];
    OD_ASSERT(classes > 0);
    size_t rows = logits->size / (size_t)classes;

    for (size_t r = 0; r < rows; r++) {
        int32_t y = labels[r];
        OD_ASSERT(y >= -1 && y < classes);
        if (y < 0)
            continue;
        const float *s = logits->data + r * (size_t)classes;  /* (classes) */

        /* log-sum-exp around the maximum, in double. */
        float mx = s[0];
        for (int c = 1; c < classes; c++)
            mx = s[c] > mx ? s[c] : mx;
        double sum = 0;
        for (int c = 0; c < classes; c++)
            sum += exp((double)s[c] - (double)mx);
        acc->nll_nats += log(sum) - ((double)s[y] - (double)mx);

        int rank = od__label_rank(s, classes, y);
        acc->top1 += rank == 0;
        acc->top3 += rank < 3;
        acc->rows++;
    }
}

void od_metric_acc_add_probs(od_metric_acc *acc, const double *p,
                             int classes, int32_t label)
{
    OD_ASSERT(acc && p && classes > 0 && label >= -1 && label < classes);
    if (label < 0)
        return;
    double total = 0;
    int rank = 0;
    for (int c = 0; c < classes; c++) {
        OD_ASSERT(p[c] >= 0);
        total += p[c];
        if (p[c] > p[label] || (p[c] == p[label] && c < label))
            rank++;
    }
    OD_ASSERT(total > 0);
    acc->nll_nats += p[label] > 0 ? -log(p[label] / total) : INFINITY;
    acc->top1 += rank == 0;
    acc->top3 += rank < 3;
    acc->rows++;
}

void od_metrics_put(od_metrics *m, const char *name, double value)
{
    OD_ASSERT(m && name && m->count < OD_METRICS_MAX);
    m->names[m->count] = name;
    m->values[m->count] = value;
    m->count++;
}

double od_metrics_get(const od_metrics *m, const char *name)
{
    for (int i = 0; i < m->count; i++)
        if (strcmp(m->names[i], name) == 0)
            return m->values[i];
    return NAN;
}

double od_metric_acc_top1(const od_metric_acc *acc)
{
    return acc->rows ? (double)acc->top1 / (double)acc->rows : NAN;
}

double od_metric_acc_top3(const od_metric_acc *acc)
{
    return acc->rows ? (double)acc->top3 / (double)acc->rows : NAN;
}

double od_metric_acc_bits(const od_metric_acc *acc)
{
    return acc->rows ? acc->nll_nats / (double)acc->rows / log(2.0) : NAN;
}
