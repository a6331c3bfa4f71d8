/* Softmax with cross-entropy over the rows of a logits matrix.
 *
 * Numerics: each row's maximum is subtracted before exponentiating, so every
 * exponent is <= 0 and nothing overflows; the loss of a row is
 * log(sum exp(z - max)) - (z[label] - max), finite for any finite logits. */
#include <math.h>

#include "engine/kernels_internal.h"

static void od__check_label(int32_t label, int cols)
{
    OD_ASSERT(label == -1 || (label >= 0 && label < cols));
}

/* ---- References ------------------------------------------------------------ */

double od_softmax_xent_forward_ref(int rows, int cols, const float *logits,
                                   const int32_t *labels, float *probs,
                                   float *row_loss)
{
    OD_ASSERT(rows >= 0 && cols >= 1);
    double total = 0.0;
    for (int i = 0; i < rows; i++) {
        const float *z = logits + (size_t)i * cols;
        float *p = probs + (size_t)i * cols;
        double mx = z[0];
        for (int j = 1; j < cols; j++)
            if (z[j] > mx)
                mx = z[j];
        double sum = 0.0;
        for (int j = 0; j < cols; j++)
            sum += exp((double)z[j] - mx);
        for (int j = 0; j < cols; j++)
            p[j] = (float)(exp((double)z[j] - mx) / sum);
        od__check_label(labels[i], cols);
        double loss = 0.0;
        if (labels[i] >= 0) {
            loss = log(sum) - ((double)z[labels[i]] - mx);
            total += loss;
        }
        row_loss[i] = (float)loss;
    }
    return total;
}

void od_softmax_xent_backward_ref(int rows, int cols, const float *probs,
                                  const int32_t *labels, float scale,
                                  float *dlogits)
{
    OD_ASSERT(rows >= 0 && cols >= 1);
    for (int i = 0; i < rows; i++) {
        const float *p = probs + (size_t)i * cols;
        float *d = dlogits + (size_t)i * cols;
        od__check_label(labels[i], cols);
        for (int j = 0; j < cols; j++) {
            double v = 0.0;
            if (labels[i] >= 0)
                v = (double)scale * ((double)p[j] - (j == labels[i] ? 1.0 : 0.0));
            d[j] = (float)v;
        }
    }
}

/* ---- Optimised --------------------------------------------------------------
 * Rows are independent; tasks are fixed blocks of rows. Each row is computed
 * the same way wherever it runs; the forward's total is summed over the
 * per-row losses afterwards, in row order. */

/* One row in float with a double sum of exponentials. The exponentials are
 * stored in p on the way and scaled afterwards, so expf runs once per
 * element. Returns the row's loss (0 for an ignored row). */
static float od__xent_row(int cols, const float *z, int32_t label, float *p)
{
    float mx = z[0];
    for (int j = 1; j < cols; j++)
        mx = z[j] > mx ? z[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < cols; j++) {
        p[j] = expf(z[j] - mx);
        sum += p[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < cols; j++)
        p[j] *= inv;
    od__check_label(label, cols);
    if (label < 0)
        return 0.0f;
    return (float)(log(sum) - ((double)z[label] - mx));
}

typedef struct {
    int rows, cols, row_chunk;
    const float *logits, *probs;
    const int32_t *labels;
    float *out, *row_loss;
    float scale;
} od__xent_ctx;

static void od__xent_fwd_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__xent_ctx *c = ctx_;
    int lo = task * c->row_chunk;
    int hi = lo + c->row_chunk < c->rows ? lo + c->row_chunk : c->rows;
    for (int i = lo; i < hi; i++) {
        size_t off = (size_t)i * c->cols;
        c->row_loss[i] = od__xent_row(c->cols, c->logits + off, c->labels[i],
                                      c->out + off);
    }
}

static void od__xent_bwd_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__xent_ctx *c = ctx_;
    int lo = task * c->row_chunk;
    int hi = lo + c->row_chunk < c->rows ? lo + c->row_chunk : c->rows;
    for (int i = lo; i < hi; i++) {
        const float *p = c->probs + (size_t)i * c->cols;
        float *d = c->out + (size_t)i * c->cols;
        int32_t label = c->labels[i];
        od__check_label(label, c->cols);
        if (label < 0) {
            for (int j = 0; j < c->cols; j++)
                d[j] = 0.0f;
            continue;
        }
        for (int j = 0; j < c->cols; j++)
            d[j] = c->scale * p[j];
        d[label] = c->scale * (p[label] - 1.0f);
    }
}

/* Rows per task: about OD__CHUNK_ELEMS / 4 elements (exp is not free). */
static int od__xent_row_chunk(int cols)
{
    int rc = (int)(OD__CHUNK_ELEMS / 4 / (size_t)cols);
    return rc < 1 ? 1 : rc;
}

double od_softmax_xent_forward(od_pool *pool, int rows, int cols,
                               const float *logits, const int32_t *labels,
                               float *probs, float *row_loss)
{
    OD_ASSERT(rows >= 0 && cols >= 1);
    if (rows == 0)
        return 0.0;
    od__xent_ctx c = {rows, cols, od__xent_row_chunk(cols), logits, NULL,
                      labels, probs, row_loss, 0.0f};
    int ntasks = (rows + c.row_chunk - 1) / c.row_chunk;
    od_pool_run(pool, ntasks, od__xent_fwd_task, &c);
    double total = 0.0;
    for (int i = 0; i < rows; i++)
        total += row_loss[i];
    return total;
}

void od_softmax_xent_backward(od_pool *pool, int rows, int cols,
                              const float *probs, const int32_t *labels,
                              float scale, float *dlogits)
{
    OD_ASSERT(rows >= 0 && cols >= 1);
    if (rows == 0)
        return;
    od__xent_ctx c = {rows, cols, od__xent_row_chunk(cols) * 4, NULL, probs,
                      labels, dlogits, NULL, scale};
    int ntasks = (rows + c.row_chunk - 1) / c.row_chunk;
    od_pool_run(pool, ntasks, od__xent_bwd_task, &c);
}
