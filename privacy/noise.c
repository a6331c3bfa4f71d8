/* Gaussian noise from ChaCha20 through the ziggurat (see noise.h). */
#include "privacy/noise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "engine/cpu.h"

#define OD__CHUNK 4096                 /* values per keystream range */
#define OD__WORDS (OD__CHUNK + 256)    /* uniform words fetched at once */
#define OD__CHUNK_BLOCKS_LOG2 20       /* 64-byte blocks per chunk range */
#define OD__ZIG_R 3.442619855899       /* start of the tail, 128 layers */
#define OD__ZIG_V 9.91256303526217e-3  /* area of each layer */
#define OD__ZIG_M 16777216.0           /* 2^24: scale of the 25-bit value */

od_status od_noise_init(od_noise *g, uint64_t seed)
{
    if (sodium_init() < 0)
        return od_fail(OD_ERR_UNSUPPORTED, "libsodium failed to initialise;"
                       " DP noise is unavailable");
    memset(g, 0, sizeof *g);
    unsigned char msg[24] = "ondev dp noise v1";
    for (int i = 0; i < 8; i++)
        msg[16 + i] = (unsigned char)(seed >> (8 * i));
    crypto_generichash(g->key, sizeof g->key, msg, sizeof msg, NULL, 0);

    /* The layers of the ziggurat: layer i spans [0, x_i) with equal areas
     * V; kn holds x_{i-1} / x_i scaled to the value range, so that a value
     * below it lies inside the layer's rectangle for certain. */
    double dn = OD__ZIG_R, tn = dn;
    double q = OD__ZIG_V / exp(-0.5 * dn * dn);
    g->kn[0] = (uint32_t)(dn / q * OD__ZIG_M);
    g->kn[1] = 0;
    g->wn[0] = (float)(q / OD__ZIG_M);
    g->wn[127] = (float)(dn / OD__ZIG_M);
    g->fn[0] = 1.0f;
    g->fn[127] = (float)exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; i--) {
        dn = sqrt(-2.0 * log(OD__ZIG_V / dn + exp(-0.5 * dn * dn)));
        g->kn[i + 1] = (uint32_t)(dn / tn * OD__ZIG_M);
        tn = dn;
        g->fn[i] = (float)exp(-0.5 * dn * dn);
        g->wn[i] = (float)(dn / OD__ZIG_M);
    }
    return OD_OK;
}

/* A chunk's supply of uniform 32-bit words from its keystream range. */
typedef struct od__words {
    const od_noise *g;
    unsigned char nonce[8];
    uint64_t block;                    /* next keystream block */
    uint32_t w[OD__WORDS];
    int pos;
} od__words;

static void od__words_refill(od__words *s)
{
    memset(s->w, 0, sizeof s->w);
    crypto_stream_chacha20_xor_ic((unsigned char *)s->w,
                                  (const unsigned char *)s->w, sizeof s->w,
                                  s->nonce, s->block, s->g->key);
    s->block += sizeof s->w / 64;
    s->pos = 0;
}

static inline uint32_t od__word(od__words *s)
{
    if (s->pos == OD__WORDS)
        od__words_refill(s);
    return s->w[s->pos++];
}

/* Uniform in (0, 1). */
static inline double od__uni(od__words *s)
{
    return ((double)od__word(s) + 0.5) * (1.0 / 4294967296.0);
}

/* The slow path: the wedge of layer iz, or the tail beyond R. */
static float od__zig_fix(const od_noise *g, od__words *s, int32_t hz, int iz)
{
    for (;;) {
        double x = (double)hz * g->wn[iz];
        if (iz == 0) {
            double y;
            do {
                x = -log(od__uni(s)) / OD__ZIG_R;
                y = -log(od__uni(s));
            } while (y + y < x * x);
            return (float)(hz > 0 ? OD__ZIG_R + x : -OD__ZIG_R - x);
        }
        if (g->fn[iz] + od__uni(s) * (g->fn[iz - 1] - g->fn[iz])
            < exp(-0.5 * x * x))
            return (float)x;
        uint32_t u = od__word(s);
        iz = (int)(u & 127);
        hz = (int32_t)u >> 7;
        if ((uint32_t)abs(hz) < g->kn[iz])
            return (float)hz * g->wn[iz];
    }
}

static inline float od__normal(const od_noise *g, od__words *s)
{
    uint32_t u = od__word(s);
    int iz = (int)(u & 127);      /* layer: the low 7 bits */
    int32_t hz = (int32_t)u >> 7; /* value: the high 25 bits, signed */
    if ((uint32_t)abs(hz) < g->kn[iz])
        return (float)hz * g->wn[iz];
    return od__zig_fix(g, s, hz, iz);
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Samples [k, hi) of a chunk, 16 words at a time: the lanes up to the
 * first whose word fails the ziggurat's fast test are written at once,
 * and that lane then takes od__normal's slow path from its own word, as
 * the scalar loop would. The same words feed the same samples and the
 * same float operations (the product, then std times it, then the
 * addition), so the values equal the scalar loop's bit for bit. Returns
 * the sample reached (the rest, fewer than 16, are left to the caller). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static size_t od__fill_fast_avx512(const od_noise *g, od__words *s,
                                   float std, float *x, size_t k, size_t hi,
                                   int add)
{
    const __m512i low7 = _mm512_set1_epi32(127);
    const __m512 sv = _mm512_set1_ps(std);
    /* The 128-entry tables in registers, looked up 32 entries at a time
     * by two-table permutes (cheaper than gathers). */
    __m512i kt[8];
    __m512 wt[8];
    for (int t = 0; t < 8; t++) {
        kt[t] = _mm512_loadu_si512(g->kn + 16 * t);
        wt[t] = _mm512_loadu_ps(g->wn + 16 * t);
    }
    while (k + 16 <= hi) {
        if (s->pos + 16 > OD__WORDS) {
            /* Across a refill: one sample the scalar way. */
            float v = std * od__normal(g, s);
            x[k] = add ? x[k] + v : v;
            k++;
            continue;
        }
        __m512i u = _mm512_loadu_si512(s->w + s->pos);
        __m512i iz = _mm512_and_si512(u, low7);       /* layer */
        __m512i hz = _mm512_srai_epi32(u, 7);         /* signed value */
        /* Entries 32q..32q+31 from tables 2q, 2q+1; bits 5 and 6 of the
         * layer pick q. */
        __mmask16 b5 = _mm512_test_epi32_mask(iz, _mm512_set1_epi32(32));
        __mmask16 b6 = _mm512_test_epi32_mask(iz, _mm512_set1_epi32(64));
        __m512i k01 = _mm512_mask_blend_epi32(
            b5, _mm512_permutex2var_epi32(kt[0], iz, kt[1]),
            _mm512_permutex2var_epi32(kt[2], iz, kt[3]));
        __m512i k23 = _mm512_mask_blend_epi32(
            b5, _mm512_permutex2var_epi32(kt[4], iz, kt[5]),
            _mm512_permutex2var_epi32(kt[6], iz, kt[7]));
        __m512 w01 = _mm512_mask_blend_ps(
            b5, _mm512_permutex2var_ps(wt[0], iz, wt[1]),
            _mm512_permutex2var_ps(wt[2], iz, wt[3]));
        __m512 w23 = _mm512_mask_blend_ps(
            b5, _mm512_permutex2var_ps(wt[4], iz, wt[5]),
            _mm512_permutex2var_ps(wt[6], iz, wt[7]));
        __mmask16 ok = _mm512_cmplt_epu32_mask(
            _mm512_abs_epi32(hz), _mm512_mask_blend_epi32(b6, k01, k23));
        __m512 v = _mm512_mul_ps(
            sv, _mm512_mul_ps(_mm512_cvtepi32_ps(hz),
                              _mm512_mask_blend_ps(b6, w01, w23)));
        int f = ok == 0xffff ? 16 : __builtin_ctz(~(unsigned)ok);
        __mmask16 take = (__mmask16)((1u << f) - 1u);
        if (add)
            v = _mm512_add_ps(_mm512_maskz_loadu_ps(take, x + k), v);
        _mm512_mask_storeu_ps(x + k, take, v);
        s->pos += f;
        k += (size_t)f;
        if (f < 16) {
            float w = std * od__normal(g, s);
            x[k] = add ? x[k] + w : w;
            k++;
        }
    }
    return k;
}
#endif

typedef struct od__fill_job {
    const od_noise *g;
    uint64_t stream;
    uint32_t substream;
    float std;
    float *x;
    size_t n;
    int add;
} od__fill_job;

static void od__fill_chunk(void *arg, int task, int worker)
{
    (void)worker;
    const od__fill_job *j = arg;
    od__words s;
    s.g = j->g;
    for (int i = 0; i < 8; i++)
        s.nonce[i] = (unsigned char)(j->stream >> (8 * i));
    s.block = ((uint64_t)j->substream << 44)
              | ((uint64_t)task << OD__CHUNK_BLOCKS_LOG2);
    od__words_refill(&s);

    size_t lo = (size_t)task * OD__CHUNK;
    size_t hi = lo + OD__CHUNK < j->n ? lo + OD__CHUNK : j->n;
    float *x = j->x;
    size_t k = lo;
#if defined(__x86_64__)
    if (od_cpu_isa() == OD_ISA_AVX512)
        k = od__fill_fast_avx512(j->g, &s, j->std, x, lo, hi, j->add);
#endif
    if (j->add)
        for (; k < hi; k++)
            x[k] += j->std * od__normal(j->g, &s);
    else
        for (; k < hi; k++)
            x[k] = j->std * od__normal(j->g, &s);
}

static void od__fill(const od_noise *g, od_pool *pool, uint64_t stream,
                     uint32_t substream, float std, float *x, size_t n,
                     int add)
{
    /* 2^24 chunks of 2^20 blocks each fit below the substream's bits. */
    OD_ASSERT(n / OD__CHUNK < ((size_t)1 << 24));
    OD_ASSERT(substream < (1u << 20));
    od__fill_job j = {g, stream, substream, std, x, n, add};
    int chunks = (int)((n + OD__CHUNK - 1) / OD__CHUNK);
    if (chunks > 0)
        od_pool_run(chunks > 1 ? pool : NULL, chunks, od__fill_chunk, &j);
}

void od_noise_fill(const od_noise *g, od_pool *pool, uint64_t stream,
                   uint32_t substream, float std, float *out, size_t n)
{
    od__fill(g, pool, stream, substream, std, out, n, 0);
}

void od_noise_add(const od_noise *g, od_pool *pool, uint64_t stream,
                  uint32_t substream, float std, float *x, size_t n)
{
    od__fill(g, pool, stream, substream, std, x, n, 1);
}
