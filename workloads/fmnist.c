#include "workloads/fmnist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "workloads/idx.h"

/* Label order of the Fashion-MNIST release. */
const char *const od_fmnist_class_names[OD_FMNIST_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

#define OD__FMNIST_PIXELS (OD_FMNIST_ROWS * OD_FMNIST_COLS)

/* Images converted per read: bounds the temporary byte buffer. */
#define OD__FMNIST_CHUNK_IMAGES 512

#define OD__FMNIST_INSTALL_HINT                                              \
    "Install it with `apt-get install dataset-fashion-mnist`, or point "     \
    "$" OD_FMNIST_DIR_ENV " (or the workload's data directory option) at a " \
    "directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz"

const char *od_fmnist_resolve_dir(const char *dir)
{
    if (dir && dir[0])
        return dir;
    const char *env = getenv(OD_FMNIST_DIR_ENV);
    if (env && env[0])
        return env;
    return OD_FMNIST_DEFAULT_DIR;
}

/* Write into path the file dir/<prefix>-<kind>-ubyte.gz, or the same name
 * without ".gz" when only that exists. A missing directory or file returns
 * OD_ERR_IO with the install hint. */
static od_status od__fmnist_path(const char *dir, const char *prefix,
                                 const char *kind, char *path, size_t len)
{
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return od_fail(OD_ERR_IO, "Fashion-MNIST is not installed: no "
                       "directory %s. " OD__FMNIST_INSTALL_HINT ".", dir);

    int n = snprintf(path, len, "%s/%s-%s-ubyte.gz", dir, prefix, kind);
    if (n < 0 || (size_t)n >= len)
        return od_fail(OD_ERR_INVALID, "data directory path too long: %s",
                       dir);
    if (stat(path, &sb) == 0)
        return OD_OK;

    /* Fall back to an uncompressed copy. */
    path[n - 3] = '\0';
    if (stat(path, &sb) == 0)
        return OD_OK;
    path[n - 3] = '.';
    return od_fail(OD_ERR_IO, "Fashion-MNIST is not installed: %s not "
                   "found. " OD__FMNIST_INSTALL_HINT ".", path);
}

/* Read and check a whole label file: *labels (*count) receives the labels,
 * each in 0..9. The caller frees *labels. */
static od_status od__fmnist_read_labels(const char *path, uint8_t **labels,
                                        int *count)
{
    *labels = NULL;
    *count = 0;
    od_idx_file f;
    OD_TRY(od_idx_open(&f, path, 1));

    /* Fashion-MNIST has at most 60,000 labels per file; anything past
     * INT32_MAX cannot be indexed by a dataset. */
    if (f.dims[0] == 0 || f.dims[0] > INT32_MAX) {
        od_idx_close(&f);
        return od_fail(OD_ERR_FORMAT, "%s: header gives %u labels; expected "
                       "between 1 and %d", path, (unsigned)f.dims[0],
                       INT32_MAX);
    }
    uint8_t *buf = malloc(f.dims[0]);
    if (!buf) {
        od_idx_close(&f);
        return od_fail(OD_ERR_NOMEM, "%s: cannot allocate %u bytes for the "
                       "labels", path, (unsigned)f.dims[0]);
    }

    od_status st = od_idx_read(&f, buf, f.dims[0]);
    if (st == OD_OK)
        st = od_idx_finish(&f);
    else
        od_idx_close(&f);
    for (uint32_t i = 0; st == OD_OK && i < f.dims[0]; i++)
        if (buf[i] >= OD_FMNIST_CLASSES)
            st = od_fail(OD_ERR_FORMAT, "%s: label %u of item %u is out of "
                         "range: labels must lie in 0..%d", path,
                         (unsigned)buf[i], (unsigned)i,
                         OD_FMNIST_CLASSES - 1);
    if (st != OD_OK) {
        free(buf);
        return st;
    }
    *labels = buf;
    *count = (int)f.dims[0];
    return OD_OK;
}

/* Read the image file at path into d, whose first d->n images are kept;
 * the file must hold exactly nlabels 28x28 images (label_path names the
 * label file in the message when it does not). */
static od_status od__fmnist_read_images(const char *path,
                                        const char *label_path, int nlabels,
                                        od_dataset *d)
{
    od_idx_file f;
    OD_TRY(od_idx_open(&f, path, 3));

    if (f.dims[1] != OD_FMNIST_ROWS || f.dims[2] != OD_FMNIST_COLS) {
        od_idx_close(&f);
        return od_fail(OD_ERR_FORMAT, "%s: images are %ux%u, expected "
                       "%dx%d (Fashion-MNIST)", path, (unsigned)f.dims[1],
                       (unsigned)f.dims[2], OD_FMNIST_ROWS, OD_FMNIST_COLS);
    }
    if (f.dims[0] != (uint32_t)nlabels) {
        od_idx_close(&f);
        return od_fail(OD_ERR_MISMATCH, "%s holds %u images but %s holds %d "
                       "labels; the counts must match", path,
                       (unsigned)f.dims[0], label_path, nlabels);
    }

    /* Convert the kept images chunk by chunk: byte / 255 into (n, 1, 28, 28);
     * od_idx_finish then reads and checks the rest of the file. */
    uint8_t *buf = malloc((size_t)OD__FMNIST_CHUNK_IMAGES * OD__FMNIST_PIXELS);
    if (!buf) {
        od_idx_close(&f);
        return od_fail(OD_ERR_NOMEM, "%s: cannot allocate a read buffer",
                       path);
    }
    od_status st = OD_OK;
    for (int i0 = 0; st == OD_OK && i0 < d->n;
         i0 += OD__FMNIST_CHUNK_IMAGES) {
        int nimg = d->n - i0 < OD__FMNIST_CHUNK_IMAGES
                       ? d->n - i0 : OD__FMNIST_CHUNK_IMAGES;
        size_t nbytes = (size_t)nimg * OD__FMNIST_PIXELS;
        st = od_idx_read(&f, buf, nbytes);
        float *x = d->x + (size_t)i0 * OD__FMNIST_PIXELS;
        for (size_t k = 0; st == OD_OK && k < nbytes; k++)
            x[k] = (float)buf[k] / 255.0f;
    }
    free(buf);
    if (st == OD_OK)
        return od_idx_finish(&f);
    od_idx_close(&f);
    return st;
}

od_status od_fmnist_load_split(const char *dir, od_fmnist_split split,
                               int limit, od_dataset *out)
{
    OD_ASSERT(out);
    OD_ASSERT(split == OD_FMNIST_TRAIN || split == OD_FMNIST_TEST);
    memset(out, 0, sizeof *out);
    if (limit < 0)
        return od_fail(OD_ERR_INVALID, "Fashion-MNIST subset of %d samples; "
                       "give a positive count, or 0 for all", limit);
    dir = od_fmnist_resolve_dir(dir);
    const char *prefix = split == OD_FMNIST_TRAIN ? "train" : "t10k";

    char label_path[1024], image_path[1024];
    OD_TRY(od__fmnist_path(dir, prefix, "labels-idx1", label_path,
                           sizeof label_path));
    OD_TRY(od__fmnist_path(dir, prefix, "images-idx3", image_path,
                           sizeof image_path));

    /* Labels first: the file is small and fixes the number of samples. */
    uint8_t *labels = NULL;
    int nlabels = 0;
    OD_TRY(od__fmnist_read_labels(label_path, &labels, &nlabels));
    int n = (limit > 0 && limit < nlabels) ? limit : nlabels;

    const int dims[3] = {1, OD_FMNIST_ROWS, OD_FMNIST_COLS};
    const char *name = split == OD_FMNIST_TRAIN ? "fashion-mnist/train"
                                                : "fashion-mnist/test";
    od_status st = od_dataset_alloc(out, name, n, 3, dims, 1,
                                    OD_FMNIST_CLASSES, 0);
    if (st == OD_OK)
        st = od_dataset_set_class_names(out, od_fmnist_class_names);
    if (st == OD_OK) {
        for (int i = 0; i < n; i++)
            out->y[i] = labels[i];
        st = od__fmnist_read_images(image_path, label_path, nlabels, out);
    }
    free(labels);
    if (st != OD_OK)
        od_dataset_free(out);
    return st;
}

od_status od_fmnist_load(const char *dir, int train_limit, int test_limit,
                         od_dataset *train, od_dataset *test)
{
    OD_ASSERT(train && test && train != test);
    memset(test, 0, sizeof *test);
    OD_TRY(od_fmnist_load_split(dir, OD_FMNIST_TRAIN, train_limit, train));
    od_status st = od_fmnist_load_split(dir, OD_FMNIST_TEST, test_limit,
                                        test);
    if (st != OD_OK)
        od_dataset_free(train);
    return st;
}

/* ---- Models ------------------------------------------------------------ */

/* Append the layer made by `create`, a constructor call that writes the
 * layer into a variable named l; on failure jump to the builder's `fail`
 * label with st set. The model owns the layer even when adding fails. */
#define OD__APPEND(create)                     \
    do {                                       \
        od_layer *l = NULL;                    \
        st = (create);                         \
        if (st == OD_OK)                       \
            st = od_model_add(m, l);           \
        if (st != OD_OK)                       \
            goto fail;                         \
    } while (0)

/* Every Fashion-MNIST model maps (N, 1, 28, 28) to (N, 10). A builder that
 * does not is a bug. */
static void od__fmnist_check_model(const od_model *m)
{
    const int in[4] = {1, 1, OD_FMNIST_ROWS, OD_FMNIST_COLS};
    int out_ndim = 0, out_dims[OD_MAX_DIMS] = {0};
    od_status st = od_model_check_shape(m, 4, in, &out_ndim, out_dims);
    OD_ASSERT(st == OD_OK);
    OD_ASSERT(out_ndim == 2 && out_dims[0] == 1 &&
              out_dims[1] == OD_FMNIST_CLASSES);
}

od_status od_fmnist_build_mlp(od_ctx *ctx, od_model **out)
{
    OD_ASSERT(ctx && out);
    *out = NULL;
    od_model *m = NULL;
    OD_TRY(od_model_create(ctx, &m));
    od_status st = OD_OK;

    /* (N, 1, 28, 28) -> (N, 784) -> (N, 256) -> (N, 256) -> (N, 10) */
    OD__APPEND(od_flatten_create("flatten", &l));
    OD__APPEND(od_linear_create(ctx, "fc1", OD__FMNIST_PIXELS, 256, 1, &l));
    OD__APPEND(od_activation_create("relu1", OD_ACT_RELU, &l));
    OD__APPEND(od_linear_create(ctx, "fc2", 256, 256, 1, &l));
    OD__APPEND(od_activation_create("relu2", OD_ACT_RELU, &l));
    OD__APPEND(od_linear_create(ctx, "fc3", 256, OD_FMNIST_CLASSES, 1, &l));

    od__fmnist_check_model(m);
    *out = m;
    return OD_OK;
fail:
    od_model_destroy(m);
    return st;
}

/* The fmnist-cnn layout with the given activation after every hidden
 * layer; names follow it (relu1, tanh1, ...). */
static od_status od__fmnist_build_cnn_act(od_ctx *ctx, od_act act,
                                          const char *act_name,
                                          od_model **out)
{
    OD_ASSERT(ctx && out);
    *out = NULL;
    od_model *m = NULL;
    OD_TRY(od_model_create(ctx, &m));
    od_status st = OD_OK;
    char name[3][16];
    for (int i = 0; i < 3; i++)
        snprintf(name[i], sizeof name[i], "%s%d", act_name, i + 1);

    /* ReLU then 2x2 max pooling run as one layer (the same values and
     * gradients, one pass over the convolution's output instead of
     * three); other activations stay separate layers. */
    for (int i = 0; i < 2; i++) {
        /* (N, 1, 28, 28) -> conv (N, 32, 24, 24) -> pool (N, 32, 12, 12)
         * -> conv (N, 64, 8, 8) -> pool (N, 64, 4, 4) */
        static const int c_in[2] = {1, 32}, c_out[2] = {32, 64};
        char conv[16], pool[64];
        snprintf(conv, sizeof conv, "conv%d", i + 1);
        OD__APPEND(od_conv2d_create(ctx, conv, c_in[i], c_out[i], 5, 5, 1, 0,
                                    1, &l));
        if (act == OD_ACT_RELU) {
            snprintf(pool, sizeof pool, "%s+pool%d", name[i], i + 1);
            OD__APPEND(od_relu_maxpool2d_create(pool, 2, 2, &l));
        } else {
            snprintf(pool, sizeof pool, "pool%d", i + 1);
            OD__APPEND(od_activation_create(name[i], act, &l));
            OD__APPEND(od_maxpool2d_create(pool, 2, 2, &l));
        }
    }
    /* -> (N, 1024) -> (N, 128) -> (N, 10) */
    OD__APPEND(od_flatten_create("flatten", &l));
    OD__APPEND(od_linear_create(ctx, "fc1", 64 * 4 * 4, 128, 1, &l));
    OD__APPEND(od_activation_create(name[2], act, &l));
    OD__APPEND(od_linear_create(ctx, "fc2", 128, OD_FMNIST_CLASSES, 1, &l));

    od__fmnist_check_model(m);
    *out = m;
    return OD_OK;
fail:
    od_model_destroy(m);
    return st;
}

od_status od_fmnist_build_cnn(od_ctx *ctx, od_model **out)
{
    return od__fmnist_build_cnn_act(ctx, OD_ACT_RELU, "relu", out);
}

od_status od_fmnist_build_cnn_tanh(od_ctx *ctx, od_model **out)
{
    return od__fmnist_build_cnn_act(ctx, OD_ACT_TANH, "tanh", out);
}
