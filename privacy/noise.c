/* Gaussian noise from AES-128 in counter mode through the ziggurat (see
 * noise.h). */
#include "privacy/noise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "engine/cpu.h"

#define OD__CHUNK 4096                 /* values per keystream range */
#define OD__SPARE 256                  /* spare words fetched at once */
#define OD__CHUNK_BLOCKS_LOG2 20       /* 16-byte blocks per chunk range */
#define OD__ZIG_R 3.442619855899       /* start of the tail, 128 layers */
#define OD__ZIG_V 9.91256303526217e-3  /* area of each layer */
#define OD__ZIG_M 16777216.0           /* 2^24: scale of the 25-bit value */

od_status od_noise_init(od_noise *g, uint64_t seed)
{
    if (sodium_init() < 0)
        return od_fail(OD_ERR_UNSUPPORTED, "libsodium failed to initialise;"
                       " DP noise is unavailable");
    memset(g, 0, sizeof *g);
    unsigned char msg[24] = "ondev dp noise v3";
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

/* A supply of uniform 32-bit words: a range of AES-128-CTR keystream
 * blocks under the key, each counter block the 64-bit nonce followed by
 * the 64-bit block number, big-endian (OpenSSL's 16-byte IV is the first
 * counter block; the ranges used never carry into the nonce). */
typedef struct od__words {
    EVP_CIPHER_CTX *ctx;
    const unsigned char *nonce;
    uint64_t block;                    /* next keystream block */
    uint32_t *w;
    int pos, len;
} od__words;

static void od__words_refill(od__words *s)
{
    unsigned char iv[16];
    for (int i = 0; i < 8; i++) {
        iv[i] = s->nonce[i];
        iv[8 + i] = (unsigned char)(s->block >> (56 - 8 * i));
    }
    /* The keystream is the encryption of zeros, read from a shared block
     * rather than written into the buffer first. */
    static const unsigned char zeros[OD__CHUNK * sizeof(uint32_t)];
    int bytes = s->len * (int)sizeof *s->w, out = 0;
    OD_ASSERT((size_t)bytes <= sizeof zeros);
    /* Only an allocation failure inside OpenSSL can make these fail. */
    OD_ASSERT(EVP_EncryptInit_ex(s->ctx, NULL, NULL, NULL, iv) == 1);
    OD_ASSERT(EVP_EncryptUpdate(s->ctx, (unsigned char *)s->w, &out, zeros,
                                bytes) == 1
              && out == bytes);
    s->block += (uint64_t)bytes / 16;
    s->pos = 0;
}

static inline uint32_t od__word(od__words *s)
{
    if (s->pos == s->len)
        od__words_refill(s);
    return s->w[s->pos++];
}

/* Uniform in (0, 1). */
static inline double od__uni(od__words *s)
{
    return ((double)od__word(s) + 0.5) * (1.0 / 4294967296.0);
}

/* The slow path of a sample whose word (hz, iz) failed the fast test,
 * with further words from s: the tail beyond R for layer 0, else the
 * wedge test of layer iz (skipped when the caller has made it and it
 * failed), and on failure a fresh word. */
static float od__zig_slow(const od_noise *g, od__words *s, int32_t hz, int iz,
                          int wedge_failed)
{
    for (;; wedge_failed = 0) {
        if (iz == 0) {
            double x, y;
            do {
                x = -log(od__uni(s)) / OD__ZIG_R;
                y = -log(od__uni(s));
            } while (y + y < x * x);
            return (float)(hz > 0 ? OD__ZIG_R + x : -OD__ZIG_R - x);
        }
        if (!wedge_failed) {
            double x = (double)hz * g->wn[iz];
            if (g->fn[iz] + od__uni(s) * (g->fn[iz - 1] - g->fn[iz])
                < exp(-0.5 * x * x))
                return (float)x;
        }
        uint32_t u = od__word(s);
        iz = (int)(u & 127);
        hz = (int32_t)u >> 7;
        if ((uint32_t)abs(hz) < g->kn[iz])
            return (float)hz * g->wn[iz];
    }
}

/* e^t for t in [-6, 0], the range of the wedge test (t = -x^2 / 2 with
 * x < R): t = n ln 2 + r with |r| <= ln 2 / 2, a degree-7 Taylor
 * polynomial in r (truncation below 6e-9 relative), scaled by 2^n. Every
 * step is a correctly rounded operation (fmaf), so the vector versions
 * below, which take the same constants, give the same bits. */
#define OD__EXP_LOG2E 1.44269504f
#define OD__EXP_NLN2_HI -0.693145751953125f   /* -ln 2, high part */
#define OD__EXP_NLN2_LO -1.42860677e-6f       /* -ln 2, low part */
/* 1/k! for k = 7 down to 0, Horner's order. */
static const float od__exp_taylor[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120,
                                        1.0f / 24,   1.0f / 6,   0.5f,
                                        1.0f,        1.0f};

static float od__exp_wedge(float t)
{
    float n = nearbyintf(t * OD__EXP_LOG2E);
    float r = fmaf(n, OD__EXP_NLN2_HI, t);
    r = fmaf(n, OD__EXP_NLN2_LO, r);
    float p = od__exp_taylor[0];
    for (int k = 1; k < 8; k++)
        p = fmaf(p, r, od__exp_taylor[k]);
    union { uint32_t u; float f; } two_n = {(uint32_t)((int)n + 127) << 23};
    return p * two_n.f;
}

/* Pass one over a chunk: each sample whose word passes the ziggurat's
 * fast test is written (x = scale (x + std z) when adding, else
 * x = std z), and the others are listed in bad[], in order. Returns the
 * number listed. */
static int od__fast_pass(const od_noise *g, const uint32_t *u, float std,
                         float scale, float *x, int n, int add, int *bad)
{
    int nb = 0;
    for (int i = 0; i < n; i++) {
        int iz = (int)(u[i] & 127);      /* layer: the low 7 bits */
        int32_t hz = (int32_t)u[i] >> 7; /* value: the high 25 bits, signed */
        if ((uint32_t)abs(hz) < g->kn[iz]) {
            float r = std * ((float)hz * g->wn[iz]);
            x[i] = add ? (x[i] + r) * scale : r;
        } else {
            bad[nb++] = i;
        }
    }
    return nb;
}

/* Pass two, for the samples pass one listed (bad[0, nb)): each in the
 * wedge of a layer (iz > 0) takes one word of its own, v[b], for the
 * wedge test in single precision; those accepted are written, and the
 * rest, with the samples in the tail (iz = 0), are listed in later[], in
 * order. Returns the number listed. */
static int od__wedge_pass(const od_noise *g, const uint32_t *u,
                          const int *bad, int nb, const uint32_t *v,
                          float std, float scale, float *x, int add,
                          int *later)
{
    int nl = 0;
    for (int b = 0; b < nb; b++) {
        uint32_t w = u[bad[b]];
        int iz = (int)(w & 127);
        float xv = (float)((int32_t)w >> 7) * g->wn[iz];
        float h = ((float)(v[b] >> 8) + 0.5f) * 0x1p-24f;
        if (iz > 0 && g->fn[iz] + h * (g->fn[iz - 1] - g->fn[iz])
                          < od__exp_wedge(-0.5f * xv * xv)) {
            float r = std * xv;
            float *xi = x + bad[b];
            *xi = add ? (*xi + r) * scale : r;
        } else {
            later[nl++] = b;
        }
    }
    return nl;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Entry iz (0..127, per lane) of a 128-entry table of 32-bit values held
 * in 8 registers: 32 entries at a time by two-table permutes, bits 5 and 6
 * of iz picking which. */
static inline __attribute__((always_inline,
                             target("avx512f,avx512bw,avx512dq,avx512vl")))
__m512i od__lookup128(const __m512i t[8], __m512i iz)
{
    __mmask16 b5 = _mm512_test_epi32_mask(iz, _mm512_set1_epi32(32));
    __mmask16 b6 = _mm512_test_epi32_mask(iz, _mm512_set1_epi32(64));
    __m512i lo = _mm512_mask_blend_epi32(
        b5, _mm512_permutex2var_epi32(t[0], iz, t[1]),
        _mm512_permutex2var_epi32(t[2], iz, t[3]));
    __m512i hi = _mm512_mask_blend_epi32(
        b5, _mm512_permutex2var_epi32(t[4], iz, t[5]),
        _mm512_permutex2var_epi32(t[6], iz, t[7]));
    return _mm512_mask_blend_epi32(b6, lo, hi);
}

/* od__fast_pass 16 words at a time, with the same float operations in the
 * same order, so that the values and the list equal the scalar pass's bit
 * for bit; the samples past the last multiple of 16 go the scalar way. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static int od__fast_pass_avx512(const od_noise *g, const uint32_t *u,
                                float std, float scale, float *x, int n,
                                int add, int *bad)
{
    const __m512i low7 = _mm512_set1_epi32(127);
    const __m512 sv = _mm512_set1_ps(std), cv = _mm512_set1_ps(scale);
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                           11, 12, 13, 14, 15);
    /* The 128-entry tables in registers (cheaper than gathers). */
    __m512i kt[8], wt[8];
    for (int t = 0; t < 8; t++) {
        kt[t] = _mm512_loadu_si512(g->kn + 16 * t);
        wt[t] = _mm512_castps_si512(_mm512_loadu_ps(g->wn + 16 * t));
    }
    int k = 0, nb = 0;
    for (; k + 16 <= n; k += 16) {
        __m512i w = _mm512_loadu_si512(u + k);
        __m512i iz = _mm512_and_si512(w, low7);       /* layer */
        __m512i hz = _mm512_srai_epi32(w, 7);         /* signed value */
        __mmask16 ok = _mm512_cmplt_epu32_mask(_mm512_abs_epi32(hz),
                                               od__lookup128(kt, iz));
        __m512 v = _mm512_mul_ps(
            sv, _mm512_mul_ps(_mm512_cvtepi32_ps(hz),
                              _mm512_castsi512_ps(od__lookup128(wt, iz))));
        if (add)
            v = _mm512_mul_ps(
                _mm512_add_ps(_mm512_maskz_loadu_ps(ok, x + k), v), cv);
        _mm512_mask_storeu_ps(x + k, ok, v);
        /* The failing lanes' indices, packed to the front; bad[] has room
         * for a whole vector past its count. */
        __mmask16 no = (__mmask16)~ok;
        _mm512_storeu_si512(bad + nb, _mm512_maskz_compress_epi32(
                                          no, _mm512_add_epi32(
                                                  lane, _mm512_set1_epi32(k))));
        nb += __builtin_popcount((unsigned)no);
    }
    int rest = od__fast_pass(g, u + k, std, scale, x + k, n - k, add,
                             bad + nb);
    for (int i = 0; i < rest; i++)
        bad[nb + i] += k;
    return nb + rest;
}

/* od__fast_pass 8 words at a time on AVX2, with the same float operations
 * in the same order (the tables by gathers), so that the values and the
 * list equal the scalar pass's bit for bit. The rejected lanes (under 3 %)
 * are listed from the comparison's bit mask; when adding they keep their
 * value, which pass two or three then updates. */
__attribute__((target("avx2,fma")))
static int od__fast_pass_avx2(const od_noise *g, const uint32_t *u,
                              float std, float scale, float *x, int n,
                              int add, int *bad)
{
    const __m256i low7 = _mm256_set1_epi32(127);
    const __m256 sv = _mm256_set1_ps(std), cv = _mm256_set1_ps(scale);
    int k = 0, nb = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(u + k));
        __m256i iz = _mm256_and_si256(w, low7);       /* layer */
        __m256i hz = _mm256_srai_epi32(w, 7);         /* signed value */
        /* kn < 2^31 and |hz| < 2^24: the signed comparison is the
         * unsigned one of the scalar pass. */
        __m256i kn = _mm256_i32gather_epi32((const int *)g->kn, iz, 4);
        __m256i ok = _mm256_cmpgt_epi32(kn, _mm256_abs_epi32(hz));
        __m256 v = _mm256_mul_ps(
            sv, _mm256_mul_ps(_mm256_cvtepi32_ps(hz),
                              _mm256_i32gather_ps(g->wn, iz, 4)));
        if (add) {
            __m256 old = _mm256_loadu_ps(x + k);
            v = _mm256_blendv_ps(old, _mm256_mul_ps(_mm256_add_ps(old, v), cv),
                                 _mm256_castsi256_ps(ok));
        }
        _mm256_storeu_ps(x + k, v);
        unsigned no = ~(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(ok))
                      & 0xffu;
        for (; no; no &= no - 1)
            bad[nb++] = k + __builtin_ctz(no);
    }
    int rest = od__fast_pass(g, u + k, std, scale, x + k, n - k, add,
                             bad + nb);
    for (int i = 0; i < rest; i++)
        bad[nb + i] += k;
    return nb + rest;
}

/* od__wedge_pass 8 listed samples at a time on AVX2, with the same
 * operations in the same order (gathers for the words and tables; the
 * polynomial's fmaf as FMA instructions, the same correctly rounded
 * results), the accepted values written and the others listed lane by
 * lane; the rest the scalar way. */
__attribute__((target("avx2,fma")))
static int od__wedge_pass_avx2(const od_noise *g, const uint32_t *u,
                               const int *bad, int nb, const uint32_t *v,
                               float std, float scale, float *x, int add,
                               int *later)
{
    const __m256i one = _mm256_set1_epi32(1);
    int b = 0, nl = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256i at = _mm256_loadu_si256((const __m256i *)(bad + b));
        __m256i w = _mm256_i32gather_epi32((const int *)u, at, 4);
        __m256i iz = _mm256_and_si256(w, _mm256_set1_epi32(127));
        __m256 xv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srai_epi32(w, 7)),
                                  _mm256_i32gather_ps(g->wn, iz, 4));
        __m256 h = _mm256_mul_ps(
            _mm256_add_ps(
                _mm256_cvtepi32_ps(_mm256_srli_epi32(
                    _mm256_loadu_si256((const __m256i *)(v + b)), 8)),
                _mm256_set1_ps(0.5f)),
            _mm256_set1_ps(0x1p-24f));
        __m256 f = _mm256_i32gather_ps(g->fn, iz, 4);
        __m256 fm = _mm256_i32gather_ps(
            g->fn,
            _mm256_max_epi32(_mm256_sub_epi32(iz, one),
                             _mm256_setzero_si256()),
            4);
        __m256 lhs = _mm256_add_ps(f, _mm256_mul_ps(h, _mm256_sub_ps(fm, f)));
        /* od__exp_wedge(-x^2 / 2). */
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-0.5f), xv), xv);
        __m256 n = _mm256_round_ps(
            _mm256_mul_ps(t, _mm256_set1_ps(OD__EXP_LOG2E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(OD__EXP_NLN2_HI), t);
        r = _mm256_fmadd_ps(n, _mm256_set1_ps(OD__EXP_NLN2_LO), r);
        __m256 p = _mm256_set1_ps(od__exp_taylor[0]);
        for (int k = 1; k < 8; k++)
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(od__exp_taylor[k]));
        __m256 e = _mm256_mul_ps(
            p, _mm256_castsi256_ps(_mm256_slli_epi32(
                   _mm256_add_epi32(_mm256_cvtps_epi32(n),
                                    _mm256_set1_epi32(127)), 23)));
        __m256 ok = _mm256_and_ps(
            _mm256_cmp_ps(lhs, e, _CMP_LT_OQ),
            _mm256_castsi256_ps(
                _mm256_cmpgt_epi32(iz, _mm256_setzero_si256())));
        unsigned okbits = (unsigned)_mm256_movemask_ps(ok);
        float val[8];
        _mm256_storeu_ps(val, _mm256_mul_ps(_mm256_set1_ps(std), xv));
        for (int l = 0; l < 8; l++) {
            if (okbits >> l & 1u) {
                float *xi = x + bad[b + l];
                *xi = add ? (*xi + val[l]) * scale : val[l];
            } else {
                later[nl++] = b + l;
            }
        }
    }
    int rest = od__wedge_pass(g, u, bad + b, nb - b, v + b, std, scale, x,
                              add, later + nl);
    for (int i = 0; i < rest; i++)
        later[nl + i] += b;
    return nl + rest;
}

/* od__wedge_pass 16 listed samples at a time, with the same operations in
 * the same order (gathers for the words and tables, scatters for the
 * values), the rest the scalar way. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static int od__wedge_pass_avx512(const od_noise *g, const uint32_t *u,
                                 const int *bad, int nb, const uint32_t *v,
                                 float std, float scale, float *x, int add,
                                 int *later)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                           11, 12, 13, 14, 15);
    const __m512i one = _mm512_set1_epi32(1);
    int b = 0, nl = 0;
    for (; b + 16 <= nb; b += 16) {
        __m512i at = _mm512_loadu_si512(bad + b);
        __m512i w = _mm512_i32gather_epi32(at, (const void *)u, 4);
        __m512i iz = _mm512_and_si512(w, _mm512_set1_epi32(127));
        __m512 xv = _mm512_mul_ps(
            _mm512_cvtepi32_ps(_mm512_srai_epi32(w, 7)),
            _mm512_i32gather_ps(iz, g->wn, 4));
        __m512 h = _mm512_mul_ps(
            _mm512_add_ps(
                _mm512_cvtepi32_ps(_mm512_srli_epi32(
                    _mm512_loadu_si512(v + b), 8)),
                _mm512_set1_ps(0.5f)),
            _mm512_set1_ps(0x1p-24f));
        __m512 f = _mm512_i32gather_ps(iz, g->fn, 4);
        __m512 fm = _mm512_i32gather_ps(
            _mm512_max_epi32(_mm512_sub_epi32(iz, one), _mm512_setzero_si512()),
            g->fn, 4);
        __m512 lhs = _mm512_add_ps(f, _mm512_mul_ps(h, _mm512_sub_ps(fm, f)));
        /* od__exp_wedge(-x^2 / 2). */
        __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), xv), xv);
        __m512 n = _mm512_roundscale_ps(
            _mm512_mul_ps(t, _mm512_set1_ps(OD__EXP_LOG2E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(OD__EXP_NLN2_HI), t);
        r = _mm512_fmadd_ps(n, _mm512_set1_ps(OD__EXP_NLN2_LO), r);
        __m512 p = _mm512_set1_ps(od__exp_taylor[0]);
        for (int k = 1; k < 8; k++)
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(od__exp_taylor[k]));
        __m512 e = _mm512_mul_ps(
            p, _mm512_castsi512_ps(_mm512_slli_epi32(
                   _mm512_add_epi32(_mm512_cvtps_epi32(n),
                                    _mm512_set1_epi32(127)), 23)));
        __mmask16 ok = _mm512_cmplt_ps_mask(lhs, e)
                       & _mm512_cmpgt_epi32_mask(iz, _mm512_setzero_si512());
        __m512 val = _mm512_mul_ps(_mm512_set1_ps(std), xv);
        if (add)
            val = _mm512_mul_ps(
                _mm512_add_ps(_mm512_mask_i32gather_ps(
                                  _mm512_setzero_ps(), ok, at, x, 4), val),
                _mm512_set1_ps(scale));
        _mm512_mask_i32scatter_ps(x, ok, at, val, 4);
        __mmask16 no = (__mmask16)~ok;
        _mm512_storeu_si512(later + nl, _mm512_maskz_compress_epi32(
                                            no, _mm512_add_epi32(
                                                    lane, _mm512_set1_epi32(b))));
        nl += __builtin_popcount((unsigned)no);
    }
    int rest = od__wedge_pass(g, u, bad + b, nb - b, v + b, std, scale, x,
                              add, later + nl);
    for (int i = 0; i < rest; i++)
        later[nl + i] += b;
    return nl + rest;
}
#endif

typedef struct od__fill_job {
    const od_noise *g;
    EVP_CIPHER_CTX **ctx;              /* one per worker */
    unsigned char nonce[8];
    uint32_t substream;
    float std, scale;
    float *x;
    size_t n;
    int add;
} od__fill_job;

static void od__fill_chunk(void *arg, int task, int worker)
{
    const od__fill_job *j = arg;
    /* The chunk's 2^20 blocks: its words, one per sample, from the first;
     * one per wedge test from a quarter on; the spare words of the slow
     * path from the middle on. */
    uint64_t base = ((uint64_t)j->substream << 44)
                    | ((uint64_t)task << OD__CHUNK_BLOCKS_LOG2);
    uint32_t words[OD__CHUNK], wedge_w[OD__CHUNK], spare_w[OD__SPARE];
    int bad[OD__CHUNK + 16], later[OD__CHUNK + 16];
    size_t lo = (size_t)task * OD__CHUNK;
    int n = (int)(lo + OD__CHUNK < j->n ? OD__CHUNK : j->n - lo);
    /* Whole vectors of 16 words: the chunk's last may be partly used. */
    od__words own = {j->ctx[worker], j->nonce, base, words, 0, (n + 15) & ~15};
    od__words spare = {j->ctx[worker], j->nonce,
                       base + ((uint64_t)1 << (OD__CHUNK_BLOCKS_LOG2 - 1)),
                       spare_w, OD__SPARE, OD__SPARE};
    od__words_refill(&own);

    const od_noise *g = j->g;
    float *x = j->x + lo, std = j->std, scale = j->scale;
    int nb;
#if defined(__x86_64__)
    if (od_cpu_isa() == OD_ISA_AVX512)
        nb = od__fast_pass_avx512(g, words, std, scale, x, n, j->add, bad);
    else if (od_cpu_isa() == OD_ISA_AVX2)
        nb = od__fast_pass_avx2(g, words, std, scale, x, n, j->add, bad);
    else
#endif
        nb = od__fast_pass(g, words, std, scale, x, n, j->add, bad);
    if (nb == 0)
        return;
    /* Pass two: the wedge tests, a word each from the chunk's wedge range. */
    od__words wedge = {j->ctx[worker], j->nonce,
                       base + ((uint64_t)1 << (OD__CHUNK_BLOCKS_LOG2 - 2)),
                       wedge_w, 0, (nb + 15) & ~15};
    od__words_refill(&wedge);
    int nl;
#if defined(__x86_64__)
    if (od_cpu_isa() == OD_ISA_AVX512)
        nl = od__wedge_pass_avx512(g, words, bad, nb, wedge_w, std, scale, x,
                                   j->add, later);
    else if (od_cpu_isa() == OD_ISA_AVX2)
        nl = od__wedge_pass_avx2(g, words, bad, nb, wedge_w, std, scale, x,
                                 j->add, later);
    else
#endif
        nl = od__wedge_pass(g, words, bad, nb, wedge_w, std, scale, x, j->add,
                            later);
    /* Pass three, in order: the tail, and a fresh word for each sample
     * whose wedge test failed, with the words of the spare range. */
    for (int l = 0; l < nl; l++) {
        int i = bad[later[l]];
        int iz = (int)(words[i] & 127);
        float r = std * od__zig_slow(g, &spare, (int32_t)words[i] >> 7, iz,
                                     iz > 0);
        x[i] = j->add ? (x[i] + r) * scale : r;
    }
}

static void od__fill(const od_noise *g, od_pool *pool, uint64_t stream,
                     uint32_t substream, float std, float scale, float *x,
                     size_t n, int add)
{
    /* 2^24 chunks of 2^20 blocks each fit below the substream's bits. */
    OD_ASSERT(n / OD__CHUNK < ((size_t)1 << 24));
    OD_ASSERT(substream < (1u << 20));
    int chunks = (int)((n + OD__CHUNK - 1) / OD__CHUNK);
    if (chunks == 0)
        return;
    if (chunks == 1)
        pool = NULL;
    int workers = od_pool_threads(pool);
    EVP_CIPHER_CTX **ctx = malloc((size_t)workers * sizeof *ctx);
    OD_ASSERT(ctx != NULL);
    od__fill_job j = {g, ctx, {0}, substream, std, scale, x, n, add};
    for (int i = 0; i < 8; i++)
        j.nonce[i] = (unsigned char)(stream >> (8 * i));
    for (int w = 0; w < workers; w++) {
        ctx[w] = EVP_CIPHER_CTX_new();
        OD_ASSERT(ctx[w] != NULL);
        OD_ASSERT(EVP_EncryptInit_ex(ctx[w], EVP_aes_128_ctr(), NULL, g->key,
                                     NULL) == 1);
    }
    od_pool_run(pool, chunks, od__fill_chunk, &j);
    for (int w = 0; w < workers; w++)
        EVP_CIPHER_CTX_free(ctx[w]);
    free(ctx);
}

void od_noise_fill(const od_noise *g, od_pool *pool, uint64_t stream,
                   uint32_t substream, float std, float *out, size_t n)
{
    od__fill(g, pool, stream, substream, std, 1.0f, out, n, 0);
}

void od_noise_add(const od_noise *g, od_pool *pool, uint64_t stream,
                  uint32_t substream, float std, float scale, float *x,
                  size_t n)
{
    od__fill(g, pool, stream, substream, std, scale, x, n, 1);
}
