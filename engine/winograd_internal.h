/* Internals of the Winograd convolution (winograd.c), shared by its driver
 * and the vector kernels of each instruction set (winograd_kernels.h, built
 * by winograd_avx512.c and winograd_avx2.c). Not part of the engine's
 * public interface. */
#ifndef ONDEV_ENGINE_WINOGRAD_INTERNAL_H
#define ONDEV_ENGINE_WINOGRAD_INTERNAL_H

#include <stddef.h>

enum {
    OD__WM = 4,                 /* outputs per tile side */
    OD__WR = 5,                 /* kernel side */
    OD__WA = OD__WM + OD__WR - 1, /* transformed block side: 8 */
    OD__WA2 = OD__WA * OD__WA,  /* positions per block: 64 */
};

/* G (8 x 5) of F(4x4, 5x5), built once by the driver before any kernel
 * runs (see od__wino_build in winograd.c). */
extern float od__wino_g[OD__WA][OD__WR];

/* Coefficients of G4, the first four columns of G with G4[inf] = (0, 0, 0,
 * 1), for the weight gradient's F(5x5, 4x4) (checked against G in
 * od__wino_build). */
#define OD__G4_1 ((float)(-2.0 / 9.0))
#define OD__G4_3A ((float)(1.0 / 90.0))
#define OD__G4_3B ((float)(1.0 / 45.0))
#define OD__G4_3C ((float)(2.0 / 45.0))
#define OD__G4_3D ((float)(4.0 / 45.0))
#define OD__G4_5A ((float)(32.0 / 45.0))
#define OD__G4_5B ((float)(16.0 / 45.0))
#define OD__G4_5C ((float)(8.0 / 45.0))
#define OD__G4_5D ((float)(4.0 / 45.0))

typedef struct {
    int n, c_in, c_out, h, w, pad;   /* the convolution computed */
    int cip, cop;                    /* channels rounded up to 16 */
    int oh, ow, th, tw, tiles_img;   /* output, tiles down and across */
    int hp, wp;                      /* padded input block: th*4+4, tw*4+4 */
    int group, groups;               /* images per group, groups */
    int t_max;                       /* tiles in the largest group */
    /* Per worker: the channels-last input (group, HP, WP, CIP), V (T, 64,
     * CIP), M (T, 64, COP) and the channels-last output (group, TH*4,
     * TW*4, COP). Tile-major V and M keep each tile's 64 transformed
     * vectors together, so the transforms write and read them in order. */
    size_t xt_floats, v_floats, m_floats, yt_floats, worker_floats;
    size_t u_floats;                 /* U (64, CIP, C_out) */
    size_t wt_floats;                /* kernels channels-last (C_in, 25, COP) */
} od__wino_plan;

/* The transforms and layout changes of one instruction set, each over a
 * group of nimg images in a worker's buffers (the driver's od__wino_task
 * and od__wgrad_task say in what order). Channels are the innermost axis
 * and a vector of them is transformed at once: the padded counts CIP and
 * COP are multiples of every vector width. */
typedef struct {
    /* U = G g G^T for every kernel (adjoint: U' for the input gradient). */
    void (*weights)(const od__wino_plan *p, int adjoint, const float *w,
                    float *wt, float *u);
    /* x (nimg, C_in, H, W) to padded channels-last xt (nimg, HP, WP, CIP). */
    void (*to_nhwc)(const od__wino_plan *p, int nimg, const float *x,
                    float *xt);
    /* V = B^T d B per tile, and its adjoint summed into xt. */
    void (*input)(const od__wino_plan *p, int nimg, const float *xt,
                  float *v);
    void (*input_adjoint)(const od__wino_plan *p, int nimg, const float *v,
                          float *xt);
    /* yt = A^T m A (+ bias) per tile, then yt to y (nimg, C_out, OH, OW). */
    void (*output)(const od__wino_plan *p, int nimg, const float *m,
                   const float *bias, float *yt);
    void (*to_nchw)(const od__wino_plan *p, int nimg, const float *yt,
                    float *y);
    /* dy (nimg, C_out, OH, OW) channels-last, then G4 e G4^T (adjoint 0)
     * or A e A^T (adjoint 1) per 4x4 tile. */
    void (*dy_to_nhwc)(const od__wino_plan *p, int nimg, const float *dy,
                       float *dyt);
    void (*dy_transform)(const od__wino_plan *p, int nimg, int adjoint,
                         const float *dyt, float *e);
    /* dw += A5^T acc A5 for the summed transformed products. */
    void (*wgrad_output)(const od__wino_plan *p, const float *acc, float *dw);
    /* Channels-last rows (row floats apart, cp channels each) to planes
     * (c, h, w). */
    void (*cl_to_planes)(int c, int h, int w, const float *src, size_t row,
                         int cp, float *dst);
} od__wino_kernels;

extern const od__wino_kernels od__wino_kernels_avx512;
extern const od__wino_kernels od__wino_kernels_avx2;

#endif
