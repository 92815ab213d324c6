/* quant.h — weight storage types of GGUF files: block layouts, dequantization (type ->
 * float32) and reference quantization (float32 -> type), scalar reference code.
 *
 * Types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (blocks of 32) and the k-quants
 * Q4_K, Q5_K, Q6_K (super-blocks of 256) — what common Q8_0 / Q4_K_M / Q5_K_M downloads
 * contain. Layouts are ggml's (ggml-common.h block_q4_0 ... block_q6_K; GGUF spec, "GGML
 * types"), little-endian, fp16 scales; byte diagrams and formulas in docs/quant.md.
 *
 * Verified (tests/test_quant.c, fixtures from tests/ref/gen_quant_fixtures.py):
 *  - dequantization is bit-identical to gguf-py (gguf.quants.dequantize) for every type,
 *    on random blocks and on tensors of the real SmolLM2-135M Q4_1/Q8_0/F32 file;
 *  - quantization of Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16, BF16 is bit-identical to gguf-py's
 *    numpy reference quantizers (which match ggml's *_ref functions);
 *  - Q4_K / Q5_K / Q6_K quantizers use ggml's algorithms (weighted min/scale search, 6-bit
 *    scale packing; make_qx_quants-style search for Q6_K) written from the format, not
 *    bit-compared with ggml (gguf-py has no k-quant quantizer; two deliberate deviations at
 *    rounding boundaries and for tiny data, docs/quant.md); their round-trip error
 *    is bounded in the tests (docs/quant.md, "Error bounds").
 *
 * Deliberately not here: SIMD kernels and quantized dot products (a later file; they must
 * match these references within a stated tolerance), tensor files (gguf.h), threading.
 * Rows are independent, so callers parallelize over rows themselves. */
#ifndef TW_MODEL_QUANT_H
#define TW_MODEL_QUANT_H

#include "model/half.h"
#include "model/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TW_QK 32      /* elements per block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 */
#define TW_QK_K 256   /* elements per super-block: Q4_K, Q5_K, Q6_K */

/* ---- the API ------------------------------------------------------------------------- */

/* true for the types these functions handle: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * Q4_K, Q5_K, Q6_K (both directions). */
bool tw_quant_supported(tw_type type);

/* dst (n) float32 <- src (tw_type_row_bytes(type, n) bytes of `type`).
 * Preconditions: tw_quant_supported(type), n >= 0 a multiple of the block size
 * (tw_type_get(type)->block). src needs no alignment (read byte-wise, little-endian).
 * Violating the preconditions is a caller bug: dst (n floats) is then filled with NaN so
 * it shows, never left uninitialized, and nothing is read from src.
 * Bitwise equal to gguf-py's dequantize for every supported type. */
void tw_dequantize_row(tw_type type, float *dst, const void *src, int64_t n);

/* dst (tw_type_row_bytes(type, n) bytes) <- src (n) float32: the reference quantizer,
 * round to nearest with ggml's scale choices. Same preconditions; violating them writes
 * nothing. Finite inputs whose block scale overflows fp16 (e.g. Q8_0 with
 * max|x|/127 > 65504) give inf scales, as in ggml — the formats cannot store them.
 * Deterministic: the same input gives the same bytes on every machine (scalar float32
 * arithmetic, no FMA contraction: the build is -std=c11). */
void tw_quantize_row(tw_type type, void *dst, const float *src, int64_t n);

/* Row versions of the half.h conversions (dst first, n elements each). */
void tw_fp16_to_fp32_row(float *dst, const uint16_t *src, int64_t n);
void tw_fp32_to_fp16_row(uint16_t *dst, const float *src, int64_t n);
void tw_bf16_to_fp32_row(float *dst, const uint16_t *src, int64_t n);
void tw_fp32_to_bf16_row(uint16_t *dst, const float *src, int64_t n);

/* ---- block layouts ------------------------------------------------------------------- */
/* Documentation and for the later SIMD kernels. The fp16 fields are uint16_t, so a block
 * pointer must be 2-byte aligned (GGUF tensor data is 32-aligned and every block size is
 * even); the reference code here reads bytes at these offsets and needs no alignment.
 * Sizes and offsets are checked by _Static_assert in quant.c and against types.c in the
 * tests. x[i] is element i of the block. */

/* Q8_0, 34 bytes: x[i] = d * qs[i] */
typedef struct tw_block_q8_0 {
    uint16_t d;            /* fp16 scale */
    int8_t qs[TW_QK];
} tw_block_q8_0;

/* Q4_0, 18 bytes: x[i] = d * (q[i] - 8), q[i] = qs[i] & 15, q[i+16] = qs[i] >> 4 (i < 16) */
typedef struct tw_block_q4_0 {
    uint16_t d;
    uint8_t qs[TW_QK / 2];
} tw_block_q4_0;

/* Q4_1, 20 bytes: x[i] = d * q[i] + m, nibbles as Q4_0 */
typedef struct tw_block_q4_1 {
    uint16_t d;
    uint16_t m;            /* fp16 minimum (the value of q = 0) */
    uint8_t qs[TW_QK / 2];
} tw_block_q4_1;

/* Q5_0, 22 bytes: x[i] = d * (q[i] - 16), q[i] = low nibble as Q4_0 | bit i of qh << 4,
 * qh read as a little-endian uint32 (bytes, so the struct has no 4-byte alignment) */
typedef struct tw_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[TW_QK / 2];
} tw_block_q5_0;

/* Q5_1, 24 bytes: x[i] = d * q[i] + m, q[i] as Q5_0 */
typedef struct tw_block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[TW_QK / 2];
} tw_block_q5_1;

/* Q4_K, 144 bytes: 8 sub-blocks j of 32; x = d*sc[j] * q - dmin*mn[j], with 6-bit sc/mn
 * packed in scales[12] (see tw_q4k_scale_min) and q in qs: for chunk c (0..3) of 64
 * elements, qs[32c + l] holds element 64c + l (low nibble) and 64c + 32 + l (high). */
typedef struct tw_block_q4_k {
    uint16_t d;            /* fp16 super-block scale of the sub-block scales */
    uint16_t dmin;         /* fp16 super-block scale of the sub-block mins */
    uint8_t scales[12];
    uint8_t qs[TW_QK_K / 2];
} tw_block_q4_k;

/* Q5_K, 176 bytes: as Q4_K, plus a 5th bit: element 32j + l has it in bit j of qh[l]. */
typedef struct tw_block_q5_k {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[TW_QK_K / 8];
    uint8_t qs[TW_QK_K / 2];
} tw_block_q5_k;

/* Q6_K, 210 bytes: 16 sub-blocks of 16; x[i] = d * scales[i/16] * (q[i] - 32), q 6-bit:
 * in half h (128 elements), element 128h + 32s + l (s 0..3, l 0..31) has its low 4 bits
 * in ql[64h + l + 32(s&1)] (low nibble for s < 2, high for s >= 2) and its top 2 bits
 * in qh[32h + l] >> 2s. */
typedef struct tw_block_q6_k {
    uint8_t ql[TW_QK_K / 2];
    uint8_t qh[TW_QK_K / 4];
    int8_t scales[TW_QK_K / 16];
    uint16_t d;
} tw_block_q6_k;

/* The 6-bit scale sc and min mn of sub-block j (0..7) from the 12 packed bytes of Q4_K /
 * Q5_K: bytes 0-3 hold sc[0..3] in their low 6 bits, bytes 4-7 mn[0..3]; for j >= 4 the
 * low 4 bits of sc[j]/mn[j] are the low/high nibble of byte 8 + (j-4) and their top 2
 * bits the top 2 bits of bytes j-4 / j. */
static inline void tw_q4k_scale_min(int j, const uint8_t *scales, uint8_t *sc, uint8_t *mn)
{
    if (j < 4) {
        *sc = scales[j] & 63;
        *mn = scales[j + 4] & 63;
    } else {
        *sc = (uint8_t)((scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4));
        *mn = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

/* ---- per-type reference kernels ------------------------------------------------------ */
/* What tw_dequantize_row / tw_quantize_row dispatch to, once per row; exported so the
 * later SIMD kernels can be tested against them. n is a multiple of the block size. */
void tw_dequantize_row_q8_0(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q4_0(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q4_1(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q5_0(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q5_1(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q4_k(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q5_k(float *dst, const void *src, int64_t n);
void tw_dequantize_row_q6_k(float *dst, const void *src, int64_t n);

void tw_quantize_row_q8_0(void *dst, const float *src, int64_t n);
void tw_quantize_row_q4_0(void *dst, const float *src, int64_t n);
void tw_quantize_row_q4_1(void *dst, const float *src, int64_t n);
void tw_quantize_row_q5_0(void *dst, const float *src, int64_t n);
void tw_quantize_row_q5_1(void *dst, const float *src, int64_t n);
void tw_quantize_row_q4_k(void *dst, const float *src, int64_t n);
void tw_quantize_row_q5_k(void *dst, const float *src, int64_t n);
void tw_quantize_row_q6_k(void *dst, const float *src, int64_t n);

#endif /* TW_MODEL_QUANT_H */
