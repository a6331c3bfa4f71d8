/* Gaussian noise for differential privacy from a cryptographic stream.
 *
 * The uniform bits are the keystream of AES-128 in counter mode (OpenSSL's,
 * with the AES instructions about 1.5 times as fast here as its ChaCha20)
 * under a 128-bit key derived from a 64-bit seed (libsodium's BLAKE2b of a
 * label and the seed), so a seed makes a run reproducible while the noise
 * stays unpredictable to anyone without it. Normals come
 * from the ziggurat method (Marsaglia & Tsang 2000, 128 layers) with the
 * layer index and the value taken from disjoint bits of each 32-bit word.
 *
 * Noise is addressed, not sequential: a fill is named by a stream (e.g. the
 * training step) and a substream (e.g. the parameter's index), and split
 * into fixed chunks of 4096 values, each with its own keystream range.
 * Within a chunk, value i comes from word i of the range; the words that
 * fail the ziggurat's fast test (about 1 in 36) take one word each for the
 * wedge test from a second part of the range, and those that fail it or
 * lie in the tail draw the rest from a third part, in order of i. The
 * result is therefore the same for any number of threads and any
 * instruction set, and the values need not be drawn one after another. */
#ifndef ONDEV_PRIVACY_NOISE_H
#define ONDEV_PRIVACY_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/pool.h"

typedef struct od_noise {
    unsigned char key[16];
    /* Ziggurat tables, 128 layers. */
    uint32_t kn[128];
    float wn[128];
    float fn[128];
} od_noise;

/* Derive the key from seed and build the tables. Returns OD_ERR_UNSUPPORTED
 * when libsodium cannot initialise. */
od_status od_noise_init(od_noise *g, uint64_t seed);

/* out[0..n) = std * N(0, 1) draws of (stream, substream). */
void od_noise_fill(const od_noise *g, od_pool *pool, uint64_t stream,
                   uint32_t substream, float std, float *out, size_t n);

/* x[i] = scale * (x[i] + std z_i) for i in [0, n), with z the N(0, 1)
 * draws of (stream, substream) that od_noise_fill would write (scale 1
 * adds them exactly). */
void od_noise_add(const od_noise *g, od_pool *pool, uint64_t stream,
                  uint32_t substream, float std, float scale, float *x,
                  size_t n);

#endif
