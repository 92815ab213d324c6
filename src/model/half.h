/* half.h — IEEE 754 binary16 (fp16) and bfloat16 (bf16) <-> binary32 conversions, scalar,
 * exact and portable (integer bit manipulation only, no F16C, no dependence on the FP
 * rounding mode). Header-inline so the dequantization loops of quant.c (one fp16 scale per
 * block) pay no call. The row versions live in quant.c.
 *
 * Semantics (checked in tests/test_quant.c against numpy over all 65,536 fp16/bf16 values
 * and ~3.7 M float32 patterns with every tie case):
 *  - widening (fp16 -> fp32, bf16 -> fp32) is exact for every value, subnormals included;
 *    NaNs keep sign and payload (no quieting), like numpy's float16 -> float32 cast;
 *  - narrowing (fp32 -> fp16, fp32 -> bf16) rounds to nearest, ties to even; values past
 *    the largest finite value round to +-inf exactly as IEEE says (fp16: |x| >= 65520 ->
 *    inf); fp16 subnormals are produced, not flushed; NaN stays NaN with its sign, made
 *    quiet and keeping the top payload bits (like x86 F16C and ggml's fp32 -> bf16).
 * Deliberately not here: vectorized (F16C/AVX) conversion — that comes with the fast
 * kernels. GGUF stores both formats little-endian; these functions work on the uint16_t
 * value, so callers reading file bytes assemble it as b[0] | b[1] << 8. */
#ifndef TW_MODEL_HALF_H
#define TW_MODEL_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t tw_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float tw_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* binary16: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits. */
static inline float tw_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t em = h & 0x7fffu;
    if (em >= 0x7c00u)                       /* inf / NaN: exponent all ones, payload kept */
        return tw_bits_f32(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    if (em >= 0x0400u)                       /* normal: rebias exponent 15 -> 127 */
        return tw_bits_f32(sign | ((em << 13) + ((127u - 15u) << 23)));
    /* zero / subnormal: em * 2^-24, exact in binary32 (em < 2^10) */
    float v = (float)em * 0x1p-24f;
    return tw_bits_f32(sign | tw_f32_bits(v));
}

static inline uint16_t tw_fp32_to_fp16(float f)
{
    uint32_t x = tw_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u)                     /* NaN: quiet, top 9 payload bits kept */
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    if (x >= 0x477ff000u)                    /* >= 65520 = halfway 65504..65536: tie goes to
                                              * the even neighbour, which is inf */
        return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) {                  /* >= 2^-14: a normal fp16 */
        /* add half an ulp minus one, plus the lsb of the kept part (ties to even); a carry
         * out of the mantissa bumps the exponent, which is the right result */
        uint32_t r = x + 0x0fffu + ((x >> 13) & 1u);
        return (uint16_t)(sign | ((r - ((127u - 15u) << 23)) >> 13));
    }
    if (x <= 0x33000000u)                    /* <= 2^-25: half of the smallest subnormal (a
                                              * tie rounds to the even 0) or less */
        return sign;
    /* fp16 subnormal: value = m * 2^(e-150) with the implicit bit; in units of 2^-24 that
     * is m >> s with s = 126 - e (14..24), rounded to nearest even. */
    uint32_t e = x >> 23;
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t s = 126u - e;
    uint32_t q = m >> s;
    uint32_t rem = m & ((1u << s) - 1u);
    uint32_t half = 1u << (s - 1u);
    if (rem > half || (rem == half && (q & 1u))) q++;   /* q may reach 0x400: the smallest
                                                         * normal, encoded the same way */
    return (uint16_t)(sign | q);
}

/* bfloat16: the top 16 bits of a binary32. */
static inline float tw_bf16_to_fp32(uint16_t h)
{
    return tw_bits_f32((uint32_t)h << 16);
}

static inline uint16_t tw_fp32_to_bf16(float f)
{
    uint32_t x = tw_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)     /* NaN: truncating could give inf; set quiet bit */
        return (uint16_t)((x >> 16) | 0x0040u);
    /* round to nearest even on the 16 dropped bits; overflow carries into inf correctly */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

#endif /* TW_MODEL_HALF_H */
