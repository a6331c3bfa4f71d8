/* The 2-D scattering transform (Mallat 2012; Bruna and Mallat 2013) as the
 * Scattering2D of kymatio computes it (Andreux et al. 2020, JMLR 21(60)),
 * and the fmnist-scatter workload built on it: fixed scattering features of
 * Fashion-MNIST and a linear classifier, the "ScatterNet + linear" model of
 * Tramer and Boneh, "Differentially Private Learning Needs Better Features
 * (or Much More Data)", ICLR 2021.
 *
 * For an image x (H, W), scale J and L angles, the transform returns
 *   order 0:  x * phi_J                                      1 channel
 *   order 1:  |x * psi_{j1,t1}| * phi_J                      J L channels
 *   order 2:  ||x * psi_{j1,t1}| * psi_{j2,t2}| * phi_J      L^2 J (J-1) / 2
 *             for j1 < j2
 * each sampled every 2^J pixels: (C, H / 2^J, W / 2^J), channels in the
 * order above (order 2 by (j1, t1) first, then (j2, t2)). For 28x28 images,
 * J = 2 and L = 8: 81 channels of 7x7.
 *
 * Construction (docs/workloads.md gives the formulas):
 *  - The image is padded by reflection (the edge pixel is not repeated) to
 *    Hp = (floor((H + 2^J) / 2^J) + 1) 2^J rows and Wp columns alike, the
 *    padding split evenly with any odd pixel after the image.
 *  - Filters are built on (Hp, Wp) in space as periodised Gabor / Morlet
 *    functions and kept in the Fourier domain, where they are real. Band-pass
 *    psi_{j,t}: sigma = 0.8 2^j, centre frequency xi = (3 pi / 4) / 2^j,
 *    angle theta_t = (L / 2 - 1 - t) pi / L, slant 4 / L. Low-pass phi:
 *    a Gaussian of sigma = 0.8 2^(J-1).
 *  - Convolutions are products of spectra (FFTW, single precision);
 *    sub-sampling by k is the mean of the k x k aliases of the spectrum,
 *    and filters applied at resolution 2^-r are their spectra cropped to
 *    the band |f| < 1 / 2^(r+1) and folded to (Hp / 2^r, Wp / 2^r).
 *  - The outputs at (Hp / 2^J, Wp / 2^J) lose one row and column at each
 *    border ("unpadding").
 *  - A modulus whose spectrum starts no second-order path is low-passed in
 *    space instead, by a fixed matrix (phi in space, shifted to each output
 *    pixel): the same linear map, fewer transforms. */
#ifndef ONDEV_WORKLOADS_SCATTER_H
#define ONDEV_WORKLOADS_SCATTER_H

#include "engine/model.h"
#include "workloads/dataset.h"
#include "workloads/workload.h"

/* The transform of the fmnist-scatter workload. */
#define OD_SCATTER_FMNIST_J 2
#define OD_SCATTER_FMNIST_L 8
#define OD_SCATTER_FMNIST_CHANNELS 81   /* 1 + J L + L^2 J (J - 1) / 2 */
#define OD_SCATTER_FMNIST_SIDE 7        /* 28 / 2^J */
/* Per-example normalisation of the features: channels in groups of 3 (27
 * groups of 3 x 7 x 7 values), each group to zero mean and unit variance,
 * without learned parameters (GroupNorm with affine off, as in Tramer and
 * Boneh's ScatterNet models). */
#define OD_SCATTER_FMNIST_GROUPS 27
#define OD_SCATTER_NORM_EPS 1e-5f

typedef struct od_scatter od_scatter;
typedef struct od_scatter_work od_scatter_work;

/* The filter bank and FFT plans for images (height, width), scale J >= 1
 * and L >= 1 angles. Needs 2^J <= min(height, width) and the reflection
 * padding no wider than the image minus one pixel; otherwise
 * OD_ERR_INVALID says which size to use. */
od_status od_scatter_create(int height, int width, int J, int L,
                            od_scatter **out);
void od_scatter_destroy(od_scatter *s);

int od_scatter_channels(const od_scatter *s);   /* C */
int od_scatter_out_height(const od_scatter *s); /* height / 2^J */
int od_scatter_out_width(const od_scatter *s);  /* width / 2^J */
int od_scatter_padded_height(const od_scatter *s);
int od_scatter_padded_width(const od_scatter *s);

/* The Fourier-domain filter at resolution 2^-res, (rows, cols) row-major
 * with frequency 0 at [0][0], DFT ordering. which: -1 for the low-pass phi
 * (res in [0, J)), or n = j L + t for the band-pass psi_{j,t} (res in
 * [0, min(j + 1, max(J - 1, 1))), the levels the transform uses). NULL for
 * a level that is not kept. */
const float *od_scatter_filter(const od_scatter *s, int which, int res,
                               int *rows, int *cols);

/* Scratch for one thread's transforms. */
od_status od_scatter_work_create(const od_scatter *s, od_scatter_work **out);
void od_scatter_work_destroy(od_scatter_work *w);

/* image (height, width) -> out (C, height / 2^J, width / 2^J). Thread-safe
 * with one work per thread. */
void od_scatter_apply(const od_scatter *s, od_scatter_work *w,
                      const float *image, float *out);

/* x (C, H, W) in place: each of the groups of C / groups consecutive
 * channels to zero mean and unit variance, (x - mean) / sqrt(var + eps)
 * with the biased variance. groups must divide C. */
void od_scatter_group_norm(float *x, int channels, int height, int width,
                           int groups, float eps);

/* ---- The fmnist-scatter workload -----------------------------------------
 * Fashion-MNIST (workloads/fmnist.h) with each image replaced by its
 * normalised scattering features, (81, 7, 7); the features are computed
 * once at load on the host's cores, outside the emulated device. The
 * transform has no parameters and looks at one image at a time, so it
 * costs no privacy. */
od_status od_fmnist_scatter_load(const od_workload_opts *opts,
                                 od_dataset *train, od_dataset *test);

/* Features (N, 81, 7, 7) -> flatten (N, 3969) -> fc (N, 10): 39,700
 * parameters. */
od_status od_fmnist_build_scatter_linear(od_ctx *ctx, od_model **out);

#endif
