/* quant.c — scalar reference (de)quantization of the plain and legacy GGUF weight types:
 * F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, and the type dispatch of tw_dequantize_row /
 * tw_quantize_row. The k-quants (Q4_K, Q5_K, Q6_K) are in quant_k.c.
 *
 * Formats: ggml's block_q8_0 / block_q4_0 / block_q4_1 / block_q5_0 / block_q5_1
 * (ggml-common.h; GGUF spec "GGML types"); byte diagrams in docs/quant.md. The quantizers
 * reproduce ggml's quantize_row_*_ref choices (and gguf-py's numpy ports of them, which the
 * tests compare against bit for bit): the same scale, the same reciprocal, the same
 * float32 operations in the same order, the same rounding (roundf for Q8_0, truncation of
 * x + 8.5 / + 16.5 / + 0.5 for the 4/5-bit types).
 * Deliberately not here: SIMD, dot products, threading. Bytes are read and written one by
 * one at documented offsets, so blocks need no alignment and the host's byte order does
 * not matter for the block types (F32 rows are copied: little-endian hosts only). */
#include "model/quant.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "GGUF data is little-endian; F32 rows are copied as is");

/* The structs of quant.h must match the on-disk layout. */
_Static_assert(sizeof(tw_block_q8_0) == 34, "q8_0 block");
_Static_assert(sizeof(tw_block_q4_0) == 18, "q4_0 block");
_Static_assert(sizeof(tw_block_q4_1) == 20, "q4_1 block");
_Static_assert(sizeof(tw_block_q5_0) == 22, "q5_0 block");
_Static_assert(sizeof(tw_block_q5_1) == 24, "q5_1 block");
_Static_assert(sizeof(tw_block_q4_k) == 144, "q4_K block");
_Static_assert(sizeof(tw_block_q5_k) == 176, "q5_K block");
_Static_assert(sizeof(tw_block_q6_k) == 210, "q6_K block");
_Static_assert(offsetof(tw_block_q5_0, qs) == 6 && offsetof(tw_block_q5_1, qs) == 8, "q5 qs");
_Static_assert(offsetof(tw_block_q6_k, d) == 208, "q6_K d");

#define Q8_0_BYTES 34
#define Q4_0_BYTES 18
#define Q4_1_BYTES 20
#define Q5_0_BYTES 22
#define Q5_1_BYTES 24

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Truncate t toward zero and clamp to [0, hi] — numpy's trunc().astype(uint8).clip(0, hi)
 * and ggml's MIN(hi, (int8_t)t) for the t >= 0 that finite inputs give; NaN -> 0. */
static inline int trunc_clamp(float t, int hi)
{
    if (!(t >= 0.0f)) return 0;
    if (t >= (float)hi) return hi;
    return (int)t;
}

/* ---- F16 / BF16 rows --------------------------------------------------------------- */

void tw_fp16_to_fp32_row(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_fp16_to_fp32(src[i]);
}

void tw_fp32_to_fp16_row(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_fp32_to_fp16(src[i]);
}

void tw_bf16_to_fp32_row(float *dst, const uint16_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_bf16_to_fp32(src[i]);
}

void tw_fp32_to_bf16_row(uint16_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_fp32_to_bf16(src[i]);
}

/* Byte-wise versions for tw_(de)quantize_row, whose buffers need no alignment. */
static void dequant_f16_bytes(float *dst, const uint8_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_fp16_to_fp32(rd16(src + 2 * i));
}

static void dequant_bf16_bytes(float *dst, const uint8_t *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = tw_bf16_to_fp32(rd16(src + 2 * i));
}

static void quant_f16_bytes(uint8_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) wr16(dst + 2 * i, tw_fp32_to_fp16(src[i]));
}

static void quant_bf16_bytes(uint8_t *dst, const float *src, int64_t n)
{
    for (int64_t i = 0; i < n; i++) wr16(dst + 2 * i, tw_fp32_to_bf16(src[i]));
}

/* ---- Q8_0: [d fp16][qs int8 x 32]; x = d * qs ------------------------------------------ */

void tw_dequantize_row_q8_0(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q8_0_BYTES, dst += TW_QK) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < TW_QK; j++) dst[j] = (float)qs[j] * d;
    }
}

/* d = max|x| / 127, q = roundf(x / d) (half away from zero) — ggml quantize_row_q8_0_ref */
void tw_quantize_row_q8_0(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q8_0_BYTES, src += TW_QK) {
        float amax = 0.0f;
        for (int j = 0; j < TW_QK; j++) {
            const float a = fabsf(src[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, tw_fp32_to_fp16(d));
        for (int j = 0; j < TW_QK; j++) {
            float v = roundf(src[j] * id);          /* |v| <= 127 for finite input; the */
            if (isnan(v)) v = 0.0f;                  /* guards only keep the conversion */
            else if (v < -127.0f) v = -127.0f;       /* defined for inf/NaN input */
            else if (v > 127.0f) v = 127.0f;
            b[2 + j] = (uint8_t)(int8_t)v;
        }
    }
}

/* ---- Q4_0: [d fp16][qs 16 bytes]; x = d * (q - 8) ------------------------------------- */
/* Nibble order (all 4/5-bit legacy types): byte j holds element j in its low nibble and
 * element j + 16 in its high nibble. */

void tw_dequantize_row_q4_0(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q4_0_BYTES, dst += TW_QK) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const uint8_t *qs = b + 2;
        for (int j = 0; j < TW_QK / 2; j++) {
            dst[j] = d * (float)((qs[j] & 0x0f) - 8);
            dst[j + TW_QK / 2] = d * (float)((qs[j] >> 4) - 8);
        }
    }
}

/* Signed max: the element of largest magnitude (first one on ties) keeps its sign, and
 * d = max / -8 maps it to q = 0 exactly, the asymmetric end of [-8, 7]. Started from x[0]
 * rather than 0 so a block of zeros gives the same -0 scale bits as gguf-py. */
static float signed_absmax(const float *x, int n)
{
    float amax = fabsf(x[0]), max = x[0];
    for (int j = 1; j < n; j++) {
        const float a = fabsf(x[j]);
        if (a > amax) {
            amax = a;
            max = x[j];
        }
    }
    return max;
}

void tw_quantize_row_q4_0(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q4_0_BYTES, src += TW_QK) {
        const float d = signed_absmax(src, TW_QK) / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, tw_fp32_to_fp16(d));
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = trunc_clamp(src[j] * id + 8.5f, 15);
            const int q1 = trunc_clamp(src[j + TW_QK / 2] * id + 8.5f, 15);
            b[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- Q4_1: [d fp16][m fp16][qs 16 bytes]; x = d * q + m -------------------------------- */

void tw_dequantize_row_q4_1(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q4_1_BYTES, dst += TW_QK) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const float m = tw_fp16_to_fp32(rd16(b + 2));
        const uint8_t *qs = b + 4;
        for (int j = 0; j < TW_QK / 2; j++) {
            dst[j] = d * (float)(qs[j] & 0x0f) + m;       /* two roundings, as gguf-py/ggml */
            dst[j + TW_QK / 2] = d * (float)(qs[j] >> 4) + m;
        }
    }
}

static void min_max(const float *x, int n, float *mn, float *mx)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) {
        if (x[j] < lo) lo = x[j];
        if (x[j] > hi) hi = x[j];
    }
    *mn = lo;
    *mx = hi;
}

/* d = (max - min) / 15, q = trunc((x - min) / d + 0.5) — ggml quantize_row_q4_1_ref */
void tw_quantize_row_q4_1(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q4_1_BYTES, src += TW_QK) {
        float lo, hi;
        min_max(src, TW_QK, &lo, &hi);
        const float d = (hi - lo) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, tw_fp32_to_fp16(d));
        wr16(b + 2, tw_fp32_to_fp16(lo));
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = trunc_clamp((src[j] - lo) * id + 0.5f, 15);
            const int q1 = trunc_clamp((src[j + TW_QK / 2] - lo) * id + 0.5f, 15);
            b[4 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* ---- Q5_0: [d fp16][qh uint32 LE][qs 16 bytes]; x = d * (q - 16) ----------------------- */
/* The 5th bit of element j is bit j of qh. */

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void tw_dequantize_row_q5_0(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q5_0_BYTES, dst += TW_QK) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const uint32_t qh = rd32(b + 2);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = (qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            dst[j] = d * (float)(q0 - 16);
            dst[j + TW_QK / 2] = d * (float)(q1 - 16);
        }
    }
}

/* d = signed max / -16, q = trunc(x / d + 16.5) clamped to 31 — ggml quantize_row_q5_0_ref */
void tw_quantize_row_q5_0(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q5_0_BYTES, src += TW_QK) {
        const float d = signed_absmax(src, TW_QK) / -16.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, tw_fp32_to_fp16(d));
        uint32_t qh = 0;
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = trunc_clamp(src[j] * id + 16.5f, 31);
            const int q1 = trunc_clamp(src[j + TW_QK / 2] * id + 16.5f, 31);
            b[6 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + TW_QK / 2);
        }
        wr32(b + 2, qh);
    }
}

/* ---- Q5_1: [d fp16][m fp16][qh uint32 LE][qs 16 bytes]; x = d * q + m ------------------ */

void tw_dequantize_row_q5_1(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q5_1_BYTES, dst += TW_QK) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const float m = tw_fp16_to_fp32(rd16(b + 2));
        const uint32_t qh = rd32(b + 4);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = (qs[j] & 0x0f) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            dst[j] = d * (float)q0 + m;
            dst[j + TW_QK / 2] = d * (float)q1 + m;
        }
    }
}

/* d = (max - min) / 31, q = trunc((x - min) / d + 0.5) — ggml quantize_row_q5_1_ref */
void tw_quantize_row_q5_1(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    for (int64_t i = 0; i < n / TW_QK; i++, b += Q5_1_BYTES, src += TW_QK) {
        float lo, hi;
        min_max(src, TW_QK, &lo, &hi);
        const float d = (hi - lo) / 31.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(b, tw_fp32_to_fp16(d));
        wr16(b + 2, tw_fp32_to_fp16(lo));
        uint32_t qh = 0;
        for (int j = 0; j < TW_QK / 2; j++) {
            const int q0 = trunc_clamp((src[j] - lo) * id + 0.5f, 31);
            const int q1 = trunc_clamp((src[j + TW_QK / 2] - lo) * id + 0.5f, 31);
            b[8 + j] = (uint8_t)((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + TW_QK / 2);
        }
        wr32(b + 4, qh);
    }
}

/* ---- dispatch ------------------------------------------------------------------------ */

bool tw_quant_supported(tw_type type)
{
    switch (type) {
    case TW_TYPE_F32: case TW_TYPE_F16: case TW_TYPE_BF16:
    case TW_TYPE_Q8_0: case TW_TYPE_Q4_0: case TW_TYPE_Q4_1: case TW_TYPE_Q5_0: case TW_TYPE_Q5_1:
    case TW_TYPE_Q4_K: case TW_TYPE_Q5_K: case TW_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

static bool valid_call(tw_type type, int64_t n)
{
    if (n < 0 || !tw_quant_supported(type)) return false;
    const tw_type_info *t = tw_type_get((uint32_t)type);
    return t && n % t->block == 0;
}

void tw_dequantize_row(tw_type type, float *dst, const void *src, int64_t n)
{
    if (!valid_call(type, n)) {
        for (int64_t i = 0; i < n; i++) dst[i] = NAN;
        return;
    }
    switch (type) {
    case TW_TYPE_F32: if (n) memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case TW_TYPE_F16: dequant_f16_bytes(dst, src, n); break;
    case TW_TYPE_BF16: dequant_bf16_bytes(dst, src, n); break;
    case TW_TYPE_Q8_0: tw_dequantize_row_q8_0(dst, src, n); break;
    case TW_TYPE_Q4_0: tw_dequantize_row_q4_0(dst, src, n); break;
    case TW_TYPE_Q4_1: tw_dequantize_row_q4_1(dst, src, n); break;
    case TW_TYPE_Q5_0: tw_dequantize_row_q5_0(dst, src, n); break;
    case TW_TYPE_Q5_1: tw_dequantize_row_q5_1(dst, src, n); break;
    case TW_TYPE_Q4_K: tw_dequantize_row_q4_k(dst, src, n); break;
    case TW_TYPE_Q5_K: tw_dequantize_row_q5_k(dst, src, n); break;
    case TW_TYPE_Q6_K: tw_dequantize_row_q6_k(dst, src, n); break;
    default: break;   /* excluded by valid_call */
    }
}

void tw_quantize_row(tw_type type, void *dst, const float *src, int64_t n)
{
    if (!valid_call(type, n)) return;
    switch (type) {
    case TW_TYPE_F32: if (n) memcpy(dst, src, (size_t)n * sizeof(float)); break;
    case TW_TYPE_F16: quant_f16_bytes(dst, src, n); break;
    case TW_TYPE_BF16: quant_bf16_bytes(dst, src, n); break;
    case TW_TYPE_Q8_0: tw_quantize_row_q8_0(dst, src, n); break;
    case TW_TYPE_Q4_0: tw_quantize_row_q4_0(dst, src, n); break;
    case TW_TYPE_Q4_1: tw_quantize_row_q4_1(dst, src, n); break;
    case TW_TYPE_Q5_0: tw_quantize_row_q5_0(dst, src, n); break;
    case TW_TYPE_Q5_1: tw_quantize_row_q5_1(dst, src, n); break;
    case TW_TYPE_Q4_K: tw_quantize_row_q4_k(dst, src, n); break;
    case TW_TYPE_Q5_K: tw_quantize_row_q5_k(dst, src, n); break;
    case TW_TYPE_Q6_K: tw_quantize_row_q6_k(dst, src, n); break;
    default: break;
    }
}
