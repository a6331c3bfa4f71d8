/* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 70,000 grey-scale 28x28
 * images of clothing in 10 classes, 60,000 for training and 10,000 for
 * testing, read from the gzip IDX files of Debian's dataset-fashion-mnist:
 *   {train,t10k}-images-idx3-ubyte.gz, {train,t10k}-labels-idx1-ubyte.gz
 * (an uncompressed file without ".gz" is used when the .gz is absent).
 *
 * Samples are pixels / 255 as fp32, shaped (1, 28, 28) so that a batch is
 * NCHW; one label per image in 0..9. */
#ifndef ONDEV_WORKLOADS_FMNIST_H
#define ONDEV_WORKLOADS_FMNIST_H

#include "engine/model.h"
#include "workloads/dataset.h"

#define OD_FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define OD_FMNIST_DIR_ENV "ONDEV_FMNIST_DIR"
#define OD_FMNIST_CLASSES 10
#define OD_FMNIST_ROWS 28
#define OD_FMNIST_COLS 28

typedef enum od_fmnist_split {
    OD_FMNIST_TRAIN = 0,  /* train-*: 60,000 images */
    OD_FMNIST_TEST,       /* t10k-*: 10,000 images */
} od_fmnist_split;

/* "T-shirt/top", "Trouser", ..., "Ankle boot", indexed by label. */
extern const char *const od_fmnist_class_names[OD_FMNIST_CLASSES];

/* The directory to read: dir when given and not empty, else the value of
 * $ONDEV_FMNIST_DIR when set and not empty, else OD_FMNIST_DEFAULT_DIR. */
const char *od_fmnist_resolve_dir(const char *dir);

/* Load one split from dir (resolved as above) into *out, keeping the first
 * limit samples (0: all). The whole of both files is read and checked
 * whatever the limit. On failure *out is empty and the status says why:
 *  OD_ERR_IO        missing directory or file (the message says how to
 *                   install the data), unreadable or corrupt gzip stream;
 *  OD_ERR_FORMAT    wrong magic or dimension count, images not 28x28, a
 *                   label outside 0..9, a truncated file, trailing bytes;
 *  OD_ERR_MISMATCH  image and label files with different counts;
 *  OD_ERR_INVALID   a negative limit. */
od_status od_fmnist_load_split(const char *dir, od_fmnist_split split,
                               int limit, od_dataset *out);

/* Both splits, the test one after the training one; on failure both are
 * empty. */
od_status od_fmnist_load(const char *dir, int train_limit, int test_limit,
                         od_dataset *train, od_dataset *test);

/* Model builders: input (N, 1, 28, 28), output logits (N, 10). Parameters
 * are allocated from ctx->arena and left for od_model_init to fill.
 *
 * fmnist-mlp: flatten, fc1 784->256, relu1, fc2 256->256, relu2,
 *             fc3 256->10 (269,322 parameters).
 * fmnist-cnn: conv1 5x5 1->32, relu1, pool1 2x2, conv2 5x5 32->64, relu2,
 *             pool2 2x2, flatten, fc1 1024->128, relu3, fc2 128->10
 *             (184,586 parameters). Convolutions are valid (no padding).
 * fmnist-cnn-tanh: fmnist-cnn with tanh in place of every ReLU (tanh1..3).
 *             Bounded activations train better under DP-SGD's clipping
 *             and noise (Papernot et al. 2021, "Tempered sigmoid
 *             activations for deep learning with differential privacy"). */
od_status od_fmnist_build_mlp(od_ctx *ctx, od_model **out);
od_status od_fmnist_build_cnn(od_ctx *ctx, od_model **out);
od_status od_fmnist_build_cnn_tanh(od_ctx *ctx, od_model **out);

#endif
