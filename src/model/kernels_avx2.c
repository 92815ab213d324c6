/* kernels_avx2.c — the AVX2 + FMA + F16C kernel table (kernels.h, tw_kernel_ops): 8-bit
 * activation quantizers, integer dot products of every weight type with them, float dots
 * for F32/F16/BF16 weights, dequantizers (bitwise equal to quant.c's references) and the
 * small layer ops (a vector expf for softmax and SiLU).
 *
 * Every function carries __attribute__((target(...))) instead of the file being compiled
 * with -mavx2: the Makefile builds for baseline x86-64 and kernels.c picks this table at
 * run time only when the CPU has all three features (tw_kernels_avx2_ops).
 *
 * Integer dot products (the approach of llama.cpp's ggml-quants.c AVX2 paths, written
 * from the block formats in quant.h): weights unpacked to bytes, _mm256_maddubs_epi16
 * (unsigned x signed bytes -> int16 pairs), _mm256_madd_epi16 to int32, one float FMA per
 * block. As in ggml: Q8_0, and Q4_0/Q5_0 as bytes q - 8 / q - 16, are signed and use the
 * sign trick (_mm256_sign_epi8 moves the weight's sign onto the activation); Q4_1/Q5_1 and
 * the k-quants keep unsigned weights with the minimums / offsets in a separate term (Q4_K's
 * mins, Q6_K's -32 through the activation's block sums). No int16
 * saturation is possible: every pair sum is bounded below 2 * 128 * 127. The result equals
 * the scalar path's up to float rounding (tests: within 2e-6 ||w|| ||x||).
 *
 * Deliberately not here: AVX-512 / VNNI (kernels_avx512.c: the batched GEMM and the legacy
 * row dots), threading, the choice between paths (kernels.c). */
#include "model/kernels.h"
#include "model/quant.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define TW_AVX2 __attribute__((target("avx2,fma,f16c")))

/* ---- helpers ------------------------------------------------------------------------ */

TW_AVX2 static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TW_AVX2 static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

TW_AVX2 static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

TW_AVX2 static inline float fp16(uint16_t h) { return _cvtsh_ss(h); }

static inline uint32_t rd32le(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);   /* little-endian host (quant.c asserts it) */
    return v;
}

/* 32 nibbles of 16 bytes as 32 bytes: byte j = low nibble of b[j], byte j + 16 = high
 * nibble (the legacy types' element order). */
TW_AVX2 static inline __m256i nibbles32(const uint8_t *b)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)b);
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

/* The 32 bits of v as 32 bytes: 0xff where bit j is set, else 0. Byte j first gets the
 * source byte j/8 (shuffle), then every bit but bit j%8 is forced on: the byte is all
 * ones exactly when bit j%8 was set. */
TW_AVX2 static inline __m256i bits32(uint32_t v)
{
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    __m256i x = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v), shuf);
    x = _mm256_or_si256(x, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
    return _mm256_cmpeq_epi8(x, _mm256_set1_epi8(-1));
}

/* sum over pairs of u (unsigned bytes) * s (signed bytes), as 8 int32 */
TW_AVX2 static inline __m256i dot_us(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* the same for two signed byte vectors: |a| * (b with a's sign) */
TW_AVX2 static inline __m256i dot_ss(__m256i a, __m256i b)
{
    return dot_us(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

/* ---- vector expf ------------------------------------------------------------------------ */
/* exp(x) = 2^n * e^r, n = round(x / ln 2), r = x - n ln 2 (two-constant Cody-Waite), e^r
 * by the degree-6 Cephes expf polynomial on |r| <= ln2/2 (max error ~2 ulp). 2^n is built
 * as 2 * 2^(n-1) so n = 128 (x near ln FLT_MAX) still fits the exponent field. x < -86
 * gives 0 (exp(-86) ~ 4e-38, below any value the callers can see), x > ln FLT_MAX gives
 * inf, NaN stays NaN. */
TW_AVX2 static inline __m256 exp256(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.72283905206835f), lo = _mm256_set1_ps(-86.0f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    const __m256 fx = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    __m256 y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i n = _mm256_cvtps_epi32(fx);
    const __m256 pow2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(126)), 23));
    y = _mm256_mul_ps(_mm256_add_ps(y, y), pow2);
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* ---- activation quantizers ---------------------------------------------------------------- */

/* 32 floats * id, rounded to nearest even, packed to 32 int8 in order. */
TW_AVX2 static inline __m256i round_pack32(const float *x, __m256 id)
{
    const int rm = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), id), rm));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id), rm));
    const __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), id), rm));
    const __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), id), rm));
    /* packs interleave 128-bit lanes: undo with a dword permutation */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

TW_AVX2 static inline __m256 absmax8(__m256 m, const float *x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    return _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x)));
}

/* ggml's x86 quantize_row_q8_1 step for step (kernels.c, quantize_q8a_scalar, has the
 * formulas): the same bytes as the scalar version and as ggml. */
TW_AVX2 static void quantize_q8a_avx2(tw_block_q8a *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 32; k += 8) m = absmax8(m, x + k);
        const float amax = hmax_ps(m);
        const float d = amax / 127.0f;
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        const __m256i q = round_pack32(x, id);
        _mm256_storeu_si256((__m256i *)y[i].qs, q);
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), q), _mm256_set1_epi16(1));
        y[i].d = (uint16_t)_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        y[i].s = (uint16_t)_cvtss_sh(d * (float)hsum_epi32(s), _MM_FROUND_TO_NEAREST_INT);
    }
}

/* ggml's quantize_row_q8_K_ref (see quantize_q8k_scalar): the signed max is found with a
 * vector |x| maximum and a scan for its first occurrence; iscale * x is rounded to nearest
 * even by _mm256_round_ps, and the packs saturate at 127 (the min(127, v)). */
TW_AVX2 static void quantize_q8k_avx2(tw_block_q8k *y, const float *x, int64_t n)
{
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 256; k += 8) m = absmax8(m, x + k);
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0.0f;
        for (int k = 0; k < 256; k++)
            if (fabsf(x[k]) == amax) {
                max = x[k];
                break;
            }
        const float iscale = -127.0f / max;
        const __m256 id = _mm256_set1_ps(iscale);
        for (int k = 0; k < 256; k += 32) {
            const __m256i q = round_pack32(x + k, id);
            _mm256_storeu_si256((__m256i *)(y[i].qs + k), q);
            /* the two 16-element sums of these 32 bytes */
            const __m256i lo = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), ones);
            const __m256i hi = _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), ones);
            y[i].bsums[k / 16] = (int16_t)hsum_epi32(lo);
            y[i].bsums[k / 16 + 1] = (int16_t)hsum_epi32(hi);
        }
        y[i].d = 1.0f / iscale;
    }
}

/* ---- float dots ------------------------------------------------------------------------------ */

TW_AVX2 static float dot_f32_avx2(const float *a, const float *b, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

TW_AVX2 static inline __m256 load_f16(const uint16_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

TW_AVX2 static inline __m256 load_bf16(const uint16_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

TW_AVX2 static float dot_f16_avx2(const uint16_t *w, const float *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16(w + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load_f16(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16(w + i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16(w + i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_f16(w + i), _mm256_loadu_ps(x + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += fp16(w[i]) * x[i];
    return s;
}

TW_AVX2 static float dot_bf16_avx2(const uint16_t *w, const float *x, int64_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load_bf16(w + i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load_bf16(w + i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_bf16(w + i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_bf16(w + i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_bf16(w + i), _mm256_loadu_ps(x + i), s0);
    float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += tw_bf16_to_fp32(w[i]) * x[i];
    return s;
}

/* ---- integer dots, legacy types (blocks of 32, tw_block_q8a activations) -------------------- */
/* Two blocks per iteration into two accumulators: one FMA chain per block would make the
 * FMA latency (4 cycles) the bound.
 *
 * As ggml: Q8_0, Q4_0, Q5_0 have signed weights (q - 8 / q - 16 formed as bytes) and the
 * block gives (d_w d_x) * sumi, sumi exact (the sign trick: |w| * sign(x, w)); Q4_1, Q5_1
 * keep q unsigned and add m_w * s_x. The scales: the weight block starts with fp16 d (and
 * m) and the activation block with fp16 d, s, so two 32-bit loads + vcvtph2ps give
 * (d_w, m_w) and (d_x, s_x) and one multiply gives d_w d_x (lane 0, broadcast into the
 * FMA) and m_w s_x (lane 1, summed in a vector). */

enum { MIN_NONE = 0, MIN_STORED = 1 };

/* lanes (d_w d_x, m_w s_x, ., .) */
TW_AVX2 static inline __m128 block_scales(const void *wblk, int kind, const tw_block_q8a *y)
{
    uint32_t u = 0, v;
    memcpy(&u, wblk, kind == MIN_STORED ? 4 : 2);
    memcpy(&v, y, 4);
    const __m128 w = _mm_cvtph_ps(_mm_cvtsi32_si128((int)u));
    return _mm_mul_ps(w, _mm_cvtph_ps(_mm_cvtsi32_si128((int)v)));
}

/* kind: MIN_NONE (signed weights), MIN_STORED (unsigned weights + m_w s_x) */
#define LEGACY_DOT(name, wtype, QW, kind)                                                                \
    TW_AVX2 static float name(const wtype *w, const tw_block_q8a *y, int64_t nb)                          \
    {                                                                                                 \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                \
        __m128 accm = _mm_setzero_ps();                                                               \
        int64_t i = 0;                                                                                \
        for (; i + 2 <= nb; i += 2) {                                                                 \
            const __m256i q0 = QW(w + i), q1 = QW(w + i + 1);                                         \
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                          \
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)y[i + 1].qs);                      \
            const __m256 p0 = _mm256_cvtepi32_ps(kind == MIN_NONE ? dot_ss(q0, x0) : dot_us(q0, x0)); \
            const __m256 p1 = _mm256_cvtepi32_ps(kind == MIN_NONE ? dot_ss(q1, x1) : dot_us(q1, x1)); \
            const __m128 s0 = block_scales(w + i, kind, y + i);                                       \
            const __m128 s1 = block_scales(w + i + 1, kind, y + i + 1);                               \
            acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), p0, acc0);                              \
            acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s1), p1, acc1);                              \
            if (kind != MIN_NONE) accm = _mm_add_ps(accm, _mm_add_ps(s0, s1));                        \
        }                                                                                             \
        for (; i < nb; i++) {                                                                         \
            const __m256i q0 = QW(w + i);                                                             \
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                          \
            const __m256 p0 = _mm256_cvtepi32_ps(kind == MIN_NONE ? dot_ss(q0, x0) : dot_us(q0, x0)); \
            const __m128 s0 = block_scales(w + i, kind, y + i);                                       \
            acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), p0, acc0);                              \
            if (kind != MIN_NONE) accm = _mm_add_ps(accm, s0);                                        \
        }                                                                                             \
        const float sum = hsum_ps(_mm256_add_ps(acc0, acc1));                                         \
        return kind == MIN_NONE ? sum : sum + _mm_cvtss_f32(_mm_movehdup_ps(accm));                   \
    }

/* the weights of one block as 32 bytes in element order: signed q - offset (Q8_0, Q4_0,
 * Q5_0) or unsigned q (Q4_1, Q5_1) */
#define QW_Q8_0(b) _mm256_loadu_si256((const __m256i *)(b)->qs)
#define QW_Q4(b) nibbles32((b)->qs)
#define QW_Q4S(b) _mm256_sub_epi8(nibbles32((b)->qs), _mm256_set1_epi8(8))
#define QW_Q5(b) _mm256_or_si256(nibbles32((b)->qs), _mm256_and_si256(bits32(rd32le((b)->qh)), _mm256_set1_epi8(0x10)))
/* q - 16 as int8: the nibble where the 5th bit is set, nibble | 0xf0 (= nibble - 16) where not */
#define QW_Q5S(b) _mm256_or_si256(nibbles32((b)->qs), _mm256_andnot_si256(bits32(rd32le((b)->qh)), _mm256_set1_epi8((char)0xf0)))

_Static_assert(offsetof(tw_block_q4_1, m) == 2 && offsetof(tw_block_q5_1, m) == 2, "m follows d");
_Static_assert(offsetof(tw_block_q8a, s) == 2 && sizeof(tw_block_q8a) == 36, "ggml block_q8_1 layout");
_Static_assert(offsetof(tw_block_q8k, qs) == 4 && offsetof(tw_block_q8k, bsums) == 260 && sizeof(tw_block_q8k) == 292,
               "ggml block_q8_K layout");

LEGACY_DOT(dot_q8_0_avx2, tw_block_q8_0, QW_Q8_0, MIN_NONE)
LEGACY_DOT(dot_q4_0_avx2, tw_block_q4_0, QW_Q4S, MIN_NONE)
LEGACY_DOT(dot_q4_1_avx2, tw_block_q4_1, QW_Q4, MIN_STORED)
LEGACY_DOT(dot_q5_0_avx2, tw_block_q5_0, QW_Q5S, MIN_NONE)
LEGACY_DOT(dot_q5_1_avx2, tw_block_q5_1, QW_Q5, MIN_STORED)

/* ---- integer dots, k-quants (super-blocks of 256, tw_block_q8k activations) ------------------ */

/* The 8 six-bit scales and 8 mins of a Q4_K/Q5_K super-block (tw_q4k_scale_min in
 * quant.h), four bytes at a time: bytes 0-3 / 4-7 hold sc/mn 0..3 in their low 6 bits; for
 * j >= 4 the low nibbles come from bytes 8-11 (low nibble sc, high nibble mn) and the top 2
 * bits from the top bits of bytes 0-3 (sc) / 4-7 (mn). */
static inline void unpack_scales_k(const uint8_t *s12, uint8_t *sc, uint8_t *mn)
{
    uint32_t u[3], a, b, c, d;
    memcpy(u, s12, 12);
    a = u[0] & 0x3f3f3f3fu;
    b = u[1] & 0x3f3f3f3fu;
    c = (u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4);
    d = ((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4);
    memcpy(sc, &a, 4);
    memcpy(sc + 4, &c, 4);
    memcpy(mn, &b, 4);
    memcpy(mn + 4, &d, 4);
}

/* sum_j mn_j * (bsums[2j] + bsums[2j+1]) */
TW_AVX2 static inline int min_term_k(const uint8_t *mn, const int16_t *bsums)
{
    const __m256i b = _mm256_loadu_si256((const __m256i *)bsums);                  /* 16 x int16 */
    const __m128i m8 = _mm_loadl_epi64((const __m128i *)mn);                         /* 8 x u8 */
    /* each min twice, to line up with the pairs of 16-element sums */
    const __m256i m = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
    return hsum_epi32(_mm256_madd_epi16(b, m));
}

TW_AVX2 static float dot_q4_k_avx2(const tw_block_q4_k *w, const tw_block_q8k *y, int64_t nb)
{
    __m256 acc = _mm256_setzero_ps();
    float accm = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        unpack_scales_k(w[i].scales, sc, mn);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            const __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16(sc[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        const float dx = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(w[i].d) * dx), _mm256_cvtepi32_ps(sumi), acc);
        accm += fp16(w[i].dmin) * dx * (float)min_term_k(mn, y[i].bsums);
    }
    return hsum_ps(acc) - accm;
}

TW_AVX2 static float dot_q5_k_avx2(const tw_block_q5_k *w, const tw_block_q8k *y, int64_t nb)
{
    __m256 acc = _mm256_setzero_ps();
    float accm = 0.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        unpack_scales_k(w[i].scales, sc, mn);
        const __m256i qh = _mm256_loadu_si256((const __m256i *)w[i].qh);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(w[i].qs + 32 * c));
            /* bit 2c / 2c+1 of qh[l]: a 16-bit shift is fine, the mask keeps bit 0 of each
             * byte, which came from the same byte */
            const __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4);
            const __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4);
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, m4), h0);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), h1);
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(y[i].qs + 64 * c + 32));
            const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), _mm256_set1_epi16(sc[2 * c]));
            const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), _mm256_set1_epi16(sc[2 * c + 1]));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        const float dx = y[i].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(w[i].d) * dx), _mm256_cvtepi32_ps(sumi), acc);
        accm += fp16(w[i].dmin) * dx * (float)min_term_k(mn, y[i].bsums);
    }
    return hsum_ps(acc) - accm;
}

/* Q6_K: sum_k sc_k sum (q - 32) a = sum_k sc_k sum q a - 32 sum_k sc_k bsums_k, with q the
 * unsigned 6-bit value (0..63, fit for maddubs). The 16 sub-blocks of 16 line up with the
 * 16 bsums. */
TW_AVX2 static float dot_q6_k_avx2(const tw_block_q6_k *w, const tw_block_q8k *y, int64_t nb)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nb; i++) {
        const int8_t *sc = w[i].scales;
        const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        const int corr = 32 * hsum_epi32(_mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y[i].bsums)));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h;
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w[i].qh + 32 * h));
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            for (int k = 0; k < 4; k++) {
                /* elements 128h + 32k .. +32: sub-blocks 8h + 2k (low 16) and 8h + 2k + 1 */
                const __m256i x = _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * k));
                const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * k + 1]), _mm_set1_epi16(sc[8 * h + 2 * k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], x), s));
            }
        }
        /* the correction is folded in as an integer before the one float multiply */
        sumi = _mm256_sub_epi32(sumi, _mm256_setr_epi32(corr, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16(w[i].d) * y[i].d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_ps(acc);
}

TW_AVX2 static float vec_dot_avx2(tw_type t, const void *w, const void *xa, int64_t n)
{
    switch (t) {
    case TW_TYPE_F32: return dot_f32_avx2(w, xa, n);
    case TW_TYPE_F16: return dot_f16_avx2(w, xa, n);
    case TW_TYPE_BF16: return dot_bf16_avx2(w, xa, n);
    case TW_TYPE_Q8_0: return dot_q8_0_avx2(w, xa, n / 32);
    case TW_TYPE_Q4_0: return dot_q4_0_avx2(w, xa, n / 32);
    case TW_TYPE_Q4_1: return dot_q4_1_avx2(w, xa, n / 32);
    case TW_TYPE_Q5_0: return dot_q5_0_avx2(w, xa, n / 32);
    case TW_TYPE_Q5_1: return dot_q5_1_avx2(w, xa, n / 32);
    case TW_TYPE_Q4_K: return dot_q4_k_avx2(w, xa, n / 256);
    case TW_TYPE_Q5_K: return dot_q5_k_avx2(w, xa, n / 256);
    case TW_TYPE_Q6_K: return dot_q6_k_avx2(w, xa, n / 256);
    default: return NAN;
    }
}

/* ---- dequantization (bitwise equal to quant.c: same float operations, mul then add, no
 * FMA — the build is ISO C, so the compiler does not contract them either) ----------------- */

TW_AVX2 static inline void store_i8x32_scaled(float *dst, __m256i q, __m256 d)
{
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
    _mm256_storeu_ps(dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
    _mm256_storeu_ps(dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

/* dst = d * q + m, q unsigned bytes */
TW_AVX2 static inline void store_u8x32_affine(float *dst, __m256i q, __m256 d, __m256 m)
{
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo))), m));
    _mm256_storeu_ps(dst + 8,
                     _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)))), m));
    _mm256_storeu_ps(dst + 16, _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi))), m));
    _mm256_storeu_ps(dst + 24,
                     _mm256_add_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)))), m));
}

/* dst = d * q - m (k-quants: (d sc) q - (dmin mn)) */
TW_AVX2 static inline void store_u8x32_affine_sub(float *dst, __m256i q, __m256 d, __m256 m)
{
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(dst, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo))), m));
    _mm256_storeu_ps(dst + 8,
                     _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)))), m));
    _mm256_storeu_ps(dst + 16, _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi))), m));
    _mm256_storeu_ps(dst + 24,
                     _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)))), m));
}

TW_AVX2 static void dequant_avx2(tw_type type, float *dst, const void *src, int64_t n)
{
    const tw_type_info *ti = tw_type_get((uint32_t)type);
    if (n < 0 || !ti || !tw_quant_supported(type) || n % ti->block != 0) {
        tw_dequantize_row(type, dst, src, n);      /* the reference's NaN fill */
        return;
    }
    switch (type) {
    case TW_TYPE_F16: {
        const uint16_t *s = src;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_f16(s + i));
        for (; i < n; i++) dst[i] = fp16(s[i]);
        return;
    }
    case TW_TYPE_BF16: {
        const uint16_t *s = src;
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, load_bf16(s + i));
        for (; i < n; i++) dst[i] = tw_bf16_to_fp32(s[i]);
        return;
    }
    case TW_TYPE_Q8_0: {
        const tw_block_q8_0 *b = src;
        for (int64_t i = 0; i < n / 32; i++)
            store_i8x32_scaled(dst + 32 * i, _mm256_loadu_si256((const __m256i *)b[i].qs), _mm256_set1_ps(fp16(b[i].d)));
        return;
    }
    case TW_TYPE_Q4_0: {
        const tw_block_q4_0 *b = src;
        for (int64_t i = 0; i < n / 32; i++)
            store_i8x32_scaled(dst + 32 * i, _mm256_sub_epi8(nibbles32(b[i].qs), _mm256_set1_epi8(8)),
                               _mm256_set1_ps(fp16(b[i].d)));
        return;
    }
    case TW_TYPE_Q4_1: {
        const tw_block_q4_1 *b = src;
        for (int64_t i = 0; i < n / 32; i++)
            store_u8x32_affine(dst + 32 * i, nibbles32(b[i].qs), _mm256_set1_ps(fp16(b[i].d)), _mm256_set1_ps(fp16(b[i].m)));
        return;
    }
    case TW_TYPE_Q5_0: {
        const tw_block_q5_0 *b = src;
        for (int64_t i = 0; i < n / 32; i++) {
            /* q - 16 as int8: the nibble when the 5th bit is set, nibble - 16 = nibble | 0xf0
             * when it is not */
            const __m256i hi = _mm256_andnot_si256(bits32(rd32le(b[i].qh)), _mm256_set1_epi8((char)0xf0));
            store_i8x32_scaled(dst + 32 * i, _mm256_or_si256(nibbles32(b[i].qs), hi), _mm256_set1_ps(fp16(b[i].d)));
        }
        return;
    }
    case TW_TYPE_Q5_1: {
        const tw_block_q5_1 *b = src;
        for (int64_t i = 0; i < n / 32; i++) {
            const __m256i hi = _mm256_and_si256(bits32(rd32le(b[i].qh)), _mm256_set1_epi8(0x10));
            store_u8x32_affine(dst + 32 * i, _mm256_or_si256(nibbles32(b[i].qs), hi), _mm256_set1_ps(fp16(b[i].d)),
                               _mm256_set1_ps(fp16(b[i].m)));
        }
        return;
    }
    case TW_TYPE_Q4_K:
    case TW_TYPE_Q5_K: {
        const bool q5 = type == TW_TYPE_Q5_K;
        const uint8_t *blk = src;
        const __m256i m4 = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1);
        for (int64_t i = 0; i < n / 256; i++, blk += ti->bytes, dst += 256) {
            uint16_t d16, dmin16;
            memcpy(&d16, blk, 2);
            memcpy(&dmin16, blk + 2, 2);
            const float d = fp16(d16), dmin = fp16(dmin16);
            uint8_t sc[8], mn[8];
            unpack_scales_k(blk + 4, sc, mn);
            const uint8_t *qs = blk + (q5 ? 48 : 16);
            const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(blk + 16)) : _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (q5) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
                }
                store_u8x32_affine_sub(dst + 64 * c, lo, _mm256_set1_ps(d * (float)sc[2 * c]),
                                       _mm256_set1_ps(dmin * (float)mn[2 * c]));
                store_u8x32_affine_sub(dst + 64 * c + 32, hi, _mm256_set1_ps(d * (float)sc[2 * c + 1]),
                                       _mm256_set1_ps(dmin * (float)mn[2 * c + 1]));
            }
        }
        return;
    }
    case TW_TYPE_Q6_K: {
        const tw_block_q6_k *b = src;
        const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(3), o32 = _mm256_set1_epi8(32);
        for (int64_t i = 0; i < n / 256; i++, dst += 256) {
            const float d = fp16(b[i].d);
            for (int h = 0; h < 2; h++) {
                const uint8_t *ql = b[i].ql + 64 * h;
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(b[i].qh + 32 * h));
                const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
                const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
                for (int k = 0; k < 4; k++) {
                    /* 32 elements, two sub-blocks of 16 with their own scales */
                    const __m256i v = _mm256_sub_epi8(q[k], o32);
                    const __m128i lo = _mm256_castsi256_si128(v), hi = _mm256_extracti128_si256(v, 1);
                    const __m256 d0 = _mm256_set1_ps(d * (float)b[i].scales[8 * h + 2 * k]);
                    const __m256 d1 = _mm256_set1_ps(d * (float)b[i].scales[8 * h + 2 * k + 1]);
                    float *o = dst + 128 * h + 32 * k;
                    _mm256_storeu_ps(o, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
                    _mm256_storeu_ps(o + 8, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
                    _mm256_storeu_ps(o + 16, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
                    _mm256_storeu_ps(o + 24, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
                }
            }
        }
        return;
    }
    default:
        tw_dequantize_row(type, dst, src, n);      /* F32: a copy */
        return;
    }
}

/* ---- small ops ---------------------------------------------------------------------------------- */

TW_AVX2 static void rmsnorm_avx2(float *out, const float *x, const float *weight, int64_t n, float eps)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    float ss = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; i++) ss += x[i] * x[i];
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        if (weight) v = _mm256_mul_ps(v, _mm256_loadu_ps(weight + i));
        _mm256_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = weight ? x[i] * scale * weight[i] : x[i] * scale;
}

TW_AVX2 static void softmax_avx2(float *x, int64_t n)
{
    float mx = x[0];
    int64_t i = 0;
    if (n >= 8) {
        __m256 m = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(x + i));
        mx = hmax_ps(m);
    }
    for (; i < n; i++)
        if (x[i] > mx) mx = x[i];
    const __m256 vm = _mm256_set1_ps(mx);
    __m256 s = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    float sum = hsum_ps(s);
    for (; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    const __m256 vi = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
    for (; i < n; i++) x[i] *= inv;
}

TW_AVX2 static void swiglu_avx2(float *out, const float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp256(_mm256_xor_ps(g, sign));
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

TW_AVX2 static void add_avx2(float *out, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

/* llama.cpp's order for Q4_1 / Q8_0 (kernels.h, tw_kernel_ops.dot_ggml): the same
 * instruction sequence as ggml's AVX2 vec_dot (maddubs + madd: lane l = products
 * 4l..4l+3), each weight block unpacked once for up to four activation rows. */
TW_AVX2 static inline float hsum8_ggml_avx2(__m256 v)
{
    float a[8];
    _mm256_storeu_ps(a, v);
    return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
}

/* NW weight rows (stride rb bytes) x NR activation rows, all accumulators in registers
 * (NW and NR are constants after inlining); several independent FMA chains hide the FMA
 * latency that a single row's chain is bound by. out[i * NR + k]. */
TW_AVX2 static inline __attribute__((always_inline)) void dot_ggml_tile(tw_type t, float *out, const uint8_t *wb,
                                                                        size_t rb, const tw_block_q8a *const *y,
                                                                        const int NW, const int NR, int64_t nb)
{
    __m256 acc[2][4];
    float summs[2][4];
    _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)
        _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++) {
            acc[i][k] = _mm256_setzero_ps();
            summs[i][k] = 0.0f;
        }
    const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(15);
    if (t == TW_TYPE_Q4_1) {
        for (int64_t b = 0; b < nb; b++) {
            float dy[4], sy[4];
            _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++) {
                dy[k] = _cvtsh_ss(y[k][b].d);
                sy[k] = _cvtsh_ss(y[k][b].s);
            }
            _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {
                const tw_block_q4_1 *w = (const tw_block_q4_1 *)(wb + (size_t)i * rb) + b;
                const float dw = _cvtsh_ss(w->d), mw = _cvtsh_ss(w->m);
                const __m128i raw = _mm_loadu_si128((const __m128i *)w->qs);
                const __m256i q = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), low4);
                _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++) {
                    summs[i][k] = __builtin_fmaf(mw, sy[k], summs[i][k]);
                    const __m256i p =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y[k][b].qs)), ones);
                    acc[i][k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[k]), _mm256_cvtepi32_ps(p), acc[i][k]);
                }
            }
        }
    } else {
        for (int64_t b = 0; b < nb; b++) {
            float dy[4];
            _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++) dy[k] = _cvtsh_ss(y[k][b].d);
            _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++) {
                const tw_block_q8_0 *w = (const tw_block_q8_0 *)(wb + (size_t)i * rb) + b;
                const float dw = _cvtsh_ss(w->d);
                const __m256i q = _mm256_loadu_si256((const __m256i *)w->qs);
                const __m256i aq = _mm256_sign_epi8(q, q);
                _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++) {
                    const __m256i sgn = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y[k][b].qs), q);
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sgn), ones);
                    acc[i][k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dy[k]), _mm256_cvtepi32_ps(p), acc[i][k]);
                }
            }
        }
    }
    _Pragma("GCC unroll 4") for (int i = 0; i < NW; i++)
        _Pragma("GCC unroll 4") for (int k = 0; k < NR; k++)
            out[i * NR + k] = t == TW_TYPE_Q4_1 ? hsum8_ggml_avx2(acc[i][k]) + summs[i][k] : hsum8_ggml_avx2(acc[i][k]);
}

TW_AVX2 static void dot_ggml_avx2(tw_type t, float *out, const void *wv, size_t rb, int nw,
                                  const tw_block_q8a *const *y, int nr, int64_t nb)
{
    const uint8_t *w = wv;
    if (nr <= 2 && nw % 2 == 0) {   /* pairs of weight rows: two independent FMA chains */
        for (int i = 0; i < nw; i += 2) {
            if (nr == 1) dot_ggml_tile(t, out + i, w + (size_t)i * rb, rb, y, 2, 1, nb);
            else dot_ggml_tile(t, out + i * 2, w + (size_t)i * rb, rb, y, 2, 2, nb);
        }
    } else
        for (int i = 0; i < nw; i++)
            switch (nr) {
            case 1: dot_ggml_tile(t, out + i * nr, w + (size_t)i * rb, rb, y, 1, 1, nb); break;
            case 2: dot_ggml_tile(t, out + i * nr, w + (size_t)i * rb, rb, y, 1, 2, nb); break;
            case 3: dot_ggml_tile(t, out + i * nr, w + (size_t)i * rb, rb, y, 1, 3, nb); break;
            default: dot_ggml_tile(t, out + i * nr, w + (size_t)i * rb, rb, y, 1, 4, nb); break;
            }
}

static const tw_kernel_ops g_avx2_ops = {
    .name = "avx2",
    .dot_ggml = dot_ggml_avx2,
    .vec_dot = vec_dot_avx2,
    .dequant = dequant_avx2,
    .quantize_q8a = quantize_q8a_avx2,
    .quantize_q8k = quantize_q8k_avx2,
    .dot_f32 = dot_f32_avx2,
    .rmsnorm = rmsnorm_avx2,
    .softmax = softmax_avx2,
    .swiglu = swiglu_avx2,
    .add = add_avx2,
};

const tw_kernel_ops *tw_kernels_avx2_ops(void)
{
    const tw_cpu *c = tw_cpu_features();
    return c->avx2 && c->fma && c->f16c ? &g_avx2_ops : NULL;
}

#else /* not x86 */

const tw_kernel_ops *tw_kernels_avx2_ops(void)
{
    return NULL;
}

#endif
