/* A small, fast, seedable generator for initialisation, dropout masks and
 * data shuffling (xoshiro256**, seeded through splitmix64). Not for privacy
 * noise: DP noise comes from a cryptographic generator in privacy/. */
#ifndef ONDEV_ENGINE_RNG_H
#define ONDEV_ENGINE_RNG_H

#include <stdint.h>

typedef struct od_rng {
    uint64_t s[4];
} od_rng;

/* Seed from a 64-bit seed and a stream id, so that independent consumers
 * (each layer's initialisation, each epoch's shuffle) get separate streams. */
void od_rng_seed(od_rng *r, uint64_t seed, uint64_t stream);
uint64_t od_rng_next(od_rng *r);
/* Uniform in [0, 1) with 24 random bits (float) or 53 (double). */
float od_rng_uniformf(od_rng *r);
double od_rng_uniform(od_rng *r);
/* Uniform integer in [0, n), without modulo bias. */
uint64_t od_rng_below(od_rng *r, uint64_t n);
/* Standard normal (Box-Muller; no cached second value, so the stream
 * position depends only on the number of calls). */
double od_rng_normal(od_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void od_rng_shuffle(od_rng *r, int32_t *idx, int n);

#endif
