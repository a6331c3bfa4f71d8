#include "engine/rng.h"

#include <math.h>

static uint64_t od__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void od_rng_seed(od_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    for (int i = 0; i < 4; i++)
        r->s[i] = od__splitmix64(&x);
}

static uint64_t od__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t od_rng_next(od_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = od__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = od__rotl(s[3], 45);
    return result;
}

float od_rng_uniformf(od_rng *r) { return (float)(od_rng_next(r) >> 40) * 0x1.0p-24f; }

double od_rng_uniform(od_rng *r) { return (double)(od_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t od_rng_below(od_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
        x = od_rng_next(r);
    } while (x >= limit);
    return x % n;
}

double od_rng_normal(od_rng *r)
{
    double u1 = 1.0 - od_rng_uniform(r); /* (0, 1] */
    double u2 = od_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void od_rng_shuffle(od_rng *r, int32_t *idx, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)od_rng_below(r, (uint64_t)i + 1);
        int32_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
