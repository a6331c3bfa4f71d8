/* Reductions and row operations: bias gradients (sum over rows), per-row
 * squared norms, bias addition, and whole-array sums in a fixed order. */
#include <math.h>
#include <string.h>

#include "engine/kernels_internal.h"

/* ---- References ------------------------------------------------------------ */

void od_sum_rows_ref(int rows, int cols, const float *x, float *out)
{
    OD_ASSERT(rows >= 0 && cols >= 0);
    for (int j = 0; j < cols; j++) {
        double acc = 0.0;
        for (int i = 0; i < rows; i++)
            acc += x[(size_t)i * cols + j];
        out[j] += (float)acc;
    }
}

void od_row_sqnorm_ref(int rows, int cols, const float *x, float *out)
{
    OD_ASSERT(rows >= 0 && cols >= 0);
    for (int i = 0; i < rows; i++) {
        double acc = 0.0;
        for (int j = 0; j < cols; j++) {
            double v = x[(size_t)i * cols + j];
            acc += v * v;
        }
        out[i] = (float)acc;
    }
}

/* ---- Pairwise sums -----------------------------------------------------------
 * Blocks of up to OD__PAIR_LEAF elements are leaves, summed in double over
 * 32 interleaved lanes (element i to lane i % 32), the lanes then folded as
 * ((l + (l+8)) + ((l+16) + (l+24))) for l < 8 and those 8 added in order,
 * then the last n % 32 elements left to right: an order that vector
 * registers follow exactly, where one running sum would serialise. Larger
 * ranges split at the midpoint rounded down to a multiple of the leaf, so
 * the tree depends only on n. */
#define OD__PAIR_LEAF ((size_t)256)

double od__pair_leaf_portable(size_t n, const float *x, int squares)
{
    double lane[32] = {0};
    size_t i = 0;
    if (squares) {
        for (; i + 32 <= n; i += 32)
            for (int l = 0; l < 32; l++)
                lane[l] += (double)x[i + l] * x[i + l];
    } else {
        for (; i + 32 <= n; i += 32)
            for (int l = 0; l < 32; l++)
                lane[l] += x[i + l];
    }
    double acc = 0.0;
    for (int l = 0; l < 8; l++)
        acc += (lane[l] + lane[l + 8]) + (lane[l + 16] + lane[l + 24]);
    for (; i < n; i++)
        acc += squares ? (double)x[i] * x[i] : (double)x[i];
    return acc;
}

typedef double (*od__pair_leaf_fn)(size_t n, const float *x, int squares);

static double od__pair_sum(size_t n, const float *x, int squares,
                           od__pair_leaf_fn leaf)
{
    if (n <= OD__PAIR_LEAF)
        return leaf(n, x, squares);
    size_t half = (n / 2 + OD__PAIR_LEAF - 1) / OD__PAIR_LEAF * OD__PAIR_LEAF;
    if (half >= n)
        half = n - OD__PAIR_LEAF;
    return od__pair_sum(half, x, squares, leaf) +
           od__pair_sum(n - half, x + half, squares, leaf);
}

/* The leaves give the same bits on every ISA (same lanes, same order, a
 * product then a sum), so od_sum and od_sumsq do too. */
static od__pair_leaf_fn od__pair_leaf(void)
{
    return od_cpu_isa() == OD_ISA_AVX512 ? od__pair_leaf_avx512
                                         : od__pair_leaf_portable;
}

double od_sum(size_t n, const float *x)
{
    return n ? od__pair_sum(n, x, 0, od__pair_leaf()) : 0.0;
}

double od_sumsq(size_t n, const float *x)
{
    return n ? od__pair_sum(n, x, 1, od__pair_leaf()) : 0.0;
}

/* ---- Optimised ------------------------------------------------------------- */

/* Columns per task of sum_rows and add_bias_rows: a multiple of 16 so that
 * every task but the last works on whole vectors. */
#define OD__COL_CHUNK 256

static void od__sum_rows_portable(int rows, int cols, const float *x,
                                  size_t ld, float *out)
{
    for (int i = 0; i < rows; i++) {
        const float *xi = x + (size_t)i * ld;
        for (int j = 0; j < cols; j++)
            out[j] += xi[j];
    }
}

/* The rows are added in order, in float, straight into out; every ISA path
 * follows the same order, so the result does not depend on the ISA or on the
 * pool size. */
static void od__sum_rows_cols(int rows, int cols, const float *x, size_t ld,
                              float *out)
{
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__sum_rows_avx512(rows, cols, x, ld, out);
        break;
    case OD_ISA_AVX2:
        od__sum_rows_avx2(rows, cols, x, ld, out);
        break;
    default:
        od__sum_rows_portable(rows, cols, x, ld, out);
    }
}

typedef struct {
    int rows, cols;
    const float *x;
    float *out;
} od__rows_ctx;

static void od__sum_rows_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__rows_ctx *c = ctx_;
    int j0 = task * OD__COL_CHUNK;
    int nc = c->cols - j0 < OD__COL_CHUNK ? c->cols - j0 : OD__COL_CHUNK;
    od__sum_rows_cols(c->rows, nc, c->x + j0, (size_t)c->cols, c->out + j0);
}

void od_sum_rows(od_pool *pool, int rows, int cols, const float *x,
                 float *out)
{
    OD_ASSERT(rows >= 0 && cols >= 0);
    if (rows == 0 || cols == 0)
        return;
    od__rows_ctx c = {rows, cols, x, out};
    int ntasks = (cols + OD__COL_CHUNK - 1) / OD__COL_CHUNK;
    if ((size_t)rows * cols < OD__PAR_MIN_ELEMS)
        pool = NULL;
    od_pool_run(pool, ntasks, od__sum_rows_task, &c);
}

/* Sum of squares of one row: 16 float lanes, each a running float sum over
 * its columns, combined in double at the end. Portable code in a fixed order;
 * the compiler vectorises the lane loop. */
static float od__row_sqnorm_one(int cols, const float *x)
{
    float lane[16] = {0};
    int j = 0;
    for (; j + 16 <= cols; j += 16)
        for (int l = 0; l < 16; l++)
            lane[l] += x[j + l] * x[j + l];
    double acc = 0.0;
    for (int l = 0; l < 16; l++)
        acc += lane[l];
    for (; j < cols; j++)
        acc += (double)x[j] * x[j];
    return (float)acc;
}

typedef struct {
    int rows, cols;
    const float *x;
    float *out;
    size_t ntasks;
} od__sqnorm_ctx;

static void od__row_sqnorm_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__sqnorm_ctx *c = ctx_;
    size_t lo, hi;
    od__split((size_t)c->rows, c->ntasks, (size_t)task, &lo, &hi);
    for (size_t i = lo; i < hi; i++)
        c->out[i] = od__row_sqnorm_one(c->cols, c->x + i * c->cols);
}

/* Each row is one unit of work computed the same way wherever it runs, so
 * the split into tasks only decides who computes which rows. */
void od_row_sqnorm(od_pool *pool, int rows, int cols, const float *x,
                   float *out)
{
    OD_ASSERT(rows >= 0 && cols >= 0);
    if (rows == 0)
        return;
    size_t ntasks = od__nchunks((size_t)rows * cols, OD__CHUNK_ELEMS);
    if (ntasks > (size_t)rows)
        ntasks = (size_t)rows;
    if (ntasks < 1)
        ntasks = 1;
    if ((size_t)rows * cols < OD__PAR_MIN_ELEMS)
        pool = NULL;
    od__sqnorm_ctx c = {rows, cols, x, out, ntasks};
    od_pool_run(pool, (int)ntasks, od__row_sqnorm_task, &c);
}

static void od__add_bias_portable(int rows, int cols, float *x, size_t ld,
                                  const float *bias)
{
    for (int i = 0; i < rows; i++) {
        float *xi = x + (size_t)i * ld;
        for (int j = 0; j < cols; j++)
            xi[j] += bias[j];
    }
}

typedef struct {
    int rows, cols;
    float *x;
    const float *bias;
    int row_chunk;
} od__bias_ctx;

static void od__add_bias_task(void *ctx_, int task, int worker)
{
    (void)worker;
    od__bias_ctx *c = ctx_;
    int i0 = task * c->row_chunk;
    int nr = c->rows - i0 < c->row_chunk ? c->rows - i0 : c->row_chunk;
    float *x = c->x + (size_t)i0 * c->cols;
    switch (od_cpu_isa()) {
    case OD_ISA_AVX512:
        od__add_bias_rows_avx512(nr, c->cols, x, (size_t)c->cols, c->bias);
        break;
    case OD_ISA_AVX2:
        od__add_bias_rows_avx2(nr, c->cols, x, (size_t)c->cols, c->bias);
        break;
    default:
        od__add_bias_portable(nr, c->cols, x, (size_t)c->cols, c->bias);
    }
}

void od_add_bias_rows(od_pool *pool, int rows, int cols, float *x,
                      const float *bias)
{
    OD_ASSERT(rows >= 0 && cols >= 0);
    if (rows == 0 || cols == 0)
        return;
    /* Tasks are blocks of whole rows of about OD__CHUNK_ELEMS elements. */
    int row_chunk = (int)(OD__CHUNK_ELEMS / (size_t)cols);
    if (row_chunk < 1)
        row_chunk = 1;
    od__bias_ctx c = {rows, cols, x, bias, row_chunk};
    int ntasks = (rows + row_chunk - 1) / row_chunk;
    if ((size_t)rows * cols < OD__PAR_MIN_ELEMS)
        pool = NULL;
    od_pool_run(pool, ntasks, od__add_bias_task, &c);
}
