/* kernels_avx512.c — AVX-512 VNNI kernels (vpdpbusd: unsigned bytes x signed bytes, four
 * products summed into each int32 lane): the batched integer GEMM (kernels.h,
 * tw_qgemm_ops) for every quantized weight type (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
 * Q6_K), and the legacy types' row dots for small B (tw_kernels_avx512_ops).
 *
 * Layout. A tile is TW_QGEMM_ROWS = 16 weight rows. Each weight block (32 elements) of the
 * tile is unpacked once into 512 bytes, interleaved so that 32-bit lane i of the g-th
 * 64-byte vector holds elements 4g..4g+3 of row i, as unsigned bytes: the stored q for
 * Q4_0/Q4_1/Q5_0/Q5_1 (0..31), w + 128 for Q8_0; with the 16 rows' scales d_w (and mins
 * m_w) as floats. An activation row (ggml's q8_0/q8_1 bytes, tw_quantize_q8a) is
 * prepared once per product: its qs, per block the bias -offset * sum(qs) (offset 8 for
 * Q4_0, 16 for Q5_0, 128 for Q8_0's shifted weights, 0 for Q4_1/Q5_1) and d_x, s_x as
 * floats. Then per block and activation row: eight vpdpbusd, each with 4 activation bytes
 * broadcast, starting from the bias, give in lane i the exact integer
 * sumi_i = sum((q_i - offset) * q_x) = ggml's, for all 16 rows at once; then
 * acc_i = fma(float(sumi_i), d_w,i * d_x, acc_i) (+ fma(m_w,i, s_x, acc_i) for Q4_1/Q5_1),
 * sequentially over the blocks of the row. Eight activation rows share each unpacked
 * weight vector (register blocking: 8 weight vectors + 8 accumulators). The k-quants use
 * the same layout per 32-element chunk, with their integer sub-block scales applied in
 * int32 before one float step per super-block (tile_rows_k).
 *
 * Unpacking costs ~1.5-3 row dots per tile, so kernels.c uses the GEMM from a measured B
 * (tw_matmul_int_gemm_min_b) and the row dots below it.
 *
 * Deliberately not here: threads and the choice of path (kernels.c), CPUs without
 * AVX-512 F/BW/VL + VNNI (tw_kernels_avx512_qgemm / _ops return NULL: kernels.c uses the
 * AVX2 row dots and dequantize + sgemm), repacking weights at load time. */
#include "model/kernels.h"
#include "model/quant.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define TW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define BLK_SCRATCH 640                  /* 512 bytes of weights + 16 d_w + 16 m_w */

static bool is_legacy(tw_type t)
{
    return t == TW_TYPE_Q8_0 || t == TW_TYPE_Q4_0 || t == TW_TYPE_Q4_1 || t == TW_TYPE_Q5_0 || t == TW_TYPE_Q5_1;
}

static bool is_k(tw_type t) { return t == TW_TYPE_Q4_K || t == TW_TYPE_Q5_K || t == TW_TYPE_Q6_K; }

static bool qgemm_supports(tw_type t) { return is_legacy(t) || is_k(t); }

static int offset_of(tw_type t)
{
    return t == TW_TYPE_Q8_0 ? 128 : t == TW_TYPE_Q4_0 ? 8 : t == TW_TYPE_Q5_0 ? 16 : 0;
}

static bool has_min(tw_type t) { return t == TW_TYPE_Q4_1 || t == TW_TYPE_Q5_1; }

/* prepared activation row. Legacy: qs (C bytes), bias (int32 per block), d_x, s_x (float
 * per block). k-quants: the q8_K blocks (292 bytes each), then per super-block the 8 sums
 * of 32 qs (int32, Q4_K/Q5_K mins) and the 16 values -32 * bsums (int32, Q6_K's offset). */
#define KBLK_SCRATCH 5248                /* 4096 weights + 8 x 16 sc + 8 x 16 mn (int32) + d, dmin */
static size_t qgemm_act_bytes(tw_type t, int64_t C)
{
    if (is_k(t)) return (size_t)(C / 256) * (292 + 24 * 4);
    return (size_t)C + (size_t)(C / 32) * 12;
}

static size_t qgemm_scratch_bytes(tw_type t, int64_t C)
{
    if (is_k(t)) return (size_t)(C / 256) * KBLK_SCRATCH;
    return (size_t)(C / 32) * BLK_SCRATCH;
}

static void qgemm_prepare_act(tw_type t, void *act, const float *x, int64_t C)
{
    if (is_k(t)) {
        const int64_t nb = C / 256;
        tw_block_q8k *y = act;
        int32_t *bs32 = (int32_t *)((uint8_t *)act + (size_t)nb * 292), *b6 = bs32 + nb * 8;
        tw_kernels_avx2_ops()->quantize_q8k(y, x, C);
        for (int64_t i = 0; i < nb; i++)
            for (int k = 0; k < 16; k++) {
                b6[16 * i + k] = -32 * y[i].bsums[k];
                if (k % 2 == 0) bs32[8 * i + k / 2] = y[i].bsums[k] + y[i].bsums[k + 1];
            }
        return;
    }
    const int64_t nb = C / 32;
    uint8_t *qs = act;
    int32_t *bias = (int32_t *)(qs + C);
    float *dx = (float *)(bias + nb), *sx = dx + nb;
    const int off = offset_of(t);
    const tw_kernel_ops *ops = tw_kernels_avx2_ops();
    for (int64_t l = 0; l < nb; l++) {
        tw_block_q8a b;
        ops->quantize_q8a(&b, x + 32 * l, 32);
        memcpy(qs + 32 * l, b.qs, 32);
        int s = 0;
        for (int k = 0; k < 32; k++) s += b.qs[k];
        bias[l] = -off * s;
        dx[l] = tw_fp16_to_fp32(b.d);
        sx[l] = tw_fp16_to_fp32(b.s);
    }
}

/* 32 nibbles of 16 bytes as 32 bytes: byte j = low nibble of b[j], byte j + 16 = high */
TW_AVX512 static inline __m256i nibbles32(const uint8_t *b)
{
    const __m128i x = _mm_loadu_si128((const __m128i *)b);
    const __m128i m = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m), _mm_and_si128(x, m));
}

/* The tile's blocks in the interleaved layout, straight from the GGUF rows: lane i of a
 * vpgatherdd reads 4 bytes of row i (rows rb bytes apart; a partial tile repeats its last
 * row), so one gather of qs bytes 4g..4g+3 gives group g (Q8_0, as w + 128) or, for the
 * 4-bit packing, groups g (low nibbles) and g + 4 (high nibbles) at once. The Q5 fifth
 * bits: bits 4g..4g+3 of qh spread to bit 4 of the 4 bytes ((b * 0x00204081) &
 * 0x01010101 puts bit k at bit 0 of byte k). Scales: one gather of the block's first 4
 * bytes (d, and m for Q4_1/Q5_1; every read stays inside the block). */
TW_AVX512 static void unpack_tile(uint8_t *scratch, const uint8_t *W, size_t rb, tw_type t, int64_t n_rows, int64_t nb)
{
    const size_t bs = tw_type_get((uint32_t)t)->bytes;
    int32_t offs[16];
    for (int i = 0; i < 16; i++) offs[i] = (int32_t)((size_t)(i < n_rows ? i : n_rows - 1) * rb);
    const __m512i rows = _mm512_loadu_si512(offs);
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f), x80 = _mm512_set1_epi32((int)0x80808080u);
    const bool q5 = t == TW_TYPE_Q5_0 || t == TW_TYPE_Q5_1, mn = has_min(t);
    const int qoff = t == TW_TYPE_Q4_0 ? 2 : t == TW_TYPE_Q4_1 ? 4 : t == TW_TYPE_Q5_0 ? 6 : 8;
    const int hoff = t == TW_TYPE_Q5_0 ? 2 : 4;
    for (int64_t l = 0; l < nb; l++) {
        uint8_t *o = scratch + (size_t)l * BLK_SCRATCH;
        const uint8_t *base = W + (size_t)l * bs;
        const __m512i sc = _mm512_i32gather_epi32(rows, (const void *)base, 1);
        _mm512_store_ps((float *)(o + 512), _mm512_cvtph_ps(_mm512_cvtepi32_epi16(sc)));
        _mm512_store_ps((float *)(o + 576), mn ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(sc, 16)))
                                               : _mm512_setzero_ps());
        if (t == TW_TYPE_Q8_0) {
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++)
                _mm512_store_si512((__m512i *)(o + 64 * g),
                                   _mm512_xor_si512(_mm512_i32gather_epi32(rows, (const void *)(base + 2 + 4 * g), 1), x80));
            continue;
        }
        const __m512i qh = q5 ? _mm512_i32gather_epi32(rows, (const void *)(base + hoff), 1) : _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            const __m512i v = _mm512_i32gather_epi32(rows, (const void *)(base + qoff + 4 * g), 1);
            __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
            if (q5) {
                const __m512i spread = _mm512_set1_epi32(0x00204081), ones = _mm512_set1_epi32(0x01010101);
                const __m512i bl = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * g), _mm512_set1_epi32(15));
                const __m512i bh = _mm512_and_si512(_mm512_srli_epi32(qh, 4 * g + 16), _mm512_set1_epi32(15));
                lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(_mm512_mullo_epi32(bl, spread), ones), 4));
                hi = _mm512_or_si512(hi, _mm512_slli_epi32(_mm512_and_si512(_mm512_mullo_epi32(bh, spread), ones), 4));
            }
            _mm512_store_si512((__m512i *)(o + 64 * g), lo);
            _mm512_store_si512((__m512i *)(o + 64 * (g + 4)), hi);
        }
    }
}

static inline int32_t ld32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* NJ activation rows (compile-time after inlining) against the unpacked tile. */
__attribute__((always_inline)) TW_AVX512 static inline void tile_rows(float *out, int64_t ldo, const uint8_t *scratch,
                                                                       const uint8_t *act, size_t act_row, int64_t nb,
                                                                       int64_t C, __mmask16 keep, const int NJ,
                                                                       const bool MIN)
{
    __m512 accf[8];
    const uint8_t *a[8];
    #pragma GCC unroll 8
    for (int jj = 0; jj < NJ; jj++) {
        accf[jj] = _mm512_setzero_ps();
        a[jj] = act + (size_t)jj * act_row;
    }
    for (int64_t l = 0; l < nb; l++) {
        const uint8_t *wb = scratch + (size_t)l * BLK_SCRATCH;
        __m512i w[8];
        #pragma GCC unroll 8
        for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512((const __m512i *)(wb + 64 * g));
        const __m512 dwv = _mm512_load_ps((const float *)(wb + 512));
        const __m512 mwv = _mm512_load_ps((const float *)(wb + 576));
        #pragma GCC unroll 8
        for (int jj = 0; jj < NJ; jj++) {
            const uint8_t *q = a[jj] + 32 * l;
            const int32_t *bias = (const int32_t *)(a[jj] + C);
            const float *dx = (const float *)(bias + nb), *sx = dx + nb;
            __m512i s = _mm512_set1_epi32(bias[l]);
            #pragma GCC unroll 8
            for (int g = 0; g < 8; g++) s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(ld32(q + 4 * g)));
            const __m512 sc = _mm512_mul_ps(dwv, _mm512_set1_ps(dx[l]));
            accf[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), sc, accf[jj]);
            if (MIN) accf[jj] = _mm512_fmadd_ps(mwv, _mm512_set1_ps(sx[l]), accf[jj]);
        }
    }
    #pragma GCC unroll 8
    for (int jj = 0; jj < NJ; jj++) _mm512_mask_storeu_ps(out + (size_t)jj * (size_t)ldo, keep, accf[jj]);
}

TW_AVX512 static void qgemm_tile_k(float *out, int64_t ldo, const uint8_t *W, size_t rb, tw_type t, int64_t n_rows,
                                   const uint8_t *act, size_t act_row, int64_t B, int64_t C, uint8_t *scratch);

#define TILE_CASES(MIN)                                                                                  \
    switch (nj) {                                                                                        \
    case 8: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 8, MIN); break;                         \
    case 7: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 7, MIN); break;                         \
    case 6: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 6, MIN); break;                         \
    case 5: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 5, MIN); break;                         \
    case 4: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 4, MIN); break;                         \
    case 3: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 3, MIN); break;                         \
    case 2: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 2, MIN); break;                         \
    default: tile_rows(o, ldo, scratch, a, act_row, nb, C, keep, 1, MIN); break;                        \
    }

TW_AVX512 static void qgemm_tile(float *out, int64_t ldo, const uint8_t *W, size_t rb, tw_type t, int64_t n_rows,
                                 const uint8_t *act, size_t act_row, int64_t B, int64_t C, void *scratch_v)
{
    uint8_t *scratch = scratch_v;
    if (is_k(t)) {
        qgemm_tile_k(out, ldo, W, rb, t, n_rows, act, act_row, B, C, scratch);
        return;
    }
    const int64_t nb = C / 32;
    unpack_tile(scratch, W, rb, t, n_rows, nb);
    const __mmask16 keep = (__mmask16)((1u << n_rows) - 1u);
    const bool mn = has_min(t);
    for (int64_t j0 = 0; j0 < B; j0 += 8) {
        const int nj = B - j0 < 8 ? (int)(B - j0) : 8;
        float *o = out + j0 * ldo;
        const uint8_t *a = act + (size_t)j0 * act_row;
        if (mn) {
            TILE_CASES(true)
        } else {
            TILE_CASES(false)
        }
    }
}

/* ---- k-quants ---- */

/* the 8 six-bit scales and mins of a Q4_K/Q5_K super-block (quant.h tw_q4k_scale_min) */
static inline void unpack_scales_k(const uint8_t *s12, uint8_t *sc, uint8_t *mn)
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = s12[j] & 63;
            mn[j] = s12[j + 4] & 63;
        } else {
            sc[j] = (uint8_t)((s12[j + 4] & 0xF) | ((s12[j - 4] >> 6) << 4));
            mn[j] = (uint8_t)((s12[j + 4] >> 4) | ((s12[j] >> 6) << 4));
        }
    }
}

/* Scratch per super-block: w (8 chunks of 32 elements x 512 bytes, interleaved as for the
 * legacy blocks: lane i of vector g of chunk c = elements 32c + 4g .. + 3 of row i,
 * unsigned), sc (8 x 16 int32: Q4_K/Q5_K scale of chunk c, row i; Q6_K: 16 x 16 int32 of
 * the sub-block scales, over the mn area too), mn (8 x 16 int32), d, dmin (16 floats). */
TW_AVX512 static void unpack_tile_k(uint8_t *scratch, const uint8_t *W, size_t rb, tw_type t, int64_t n_rows,
                                    int64_t nb)
{
    /* As unpack_tile: gathers of 4 bytes per row. Q4_K/Q5_K: qs bytes 32p + 4g hold group g
     * of chunks 2p (low nibbles) and 2p + 1 (high); Q5_K's fifth bit of chunk c, element l
     * is bit c of qh[l]. Q6_K chunk c = 4h + k (element 128h + 32k + l): low 4 bits from
     * ql[64h + 32(k & 1) + l] (low nibble for k < 2), bits 4-5 = bits 2k, 2k+1 of
     * qh[32h + l]. Scales and mins per row in scalar code. */
    const size_t bs = tw_type_get((uint32_t)t)->bytes;
    int32_t offs[16];
    for (int i = 0; i < 16; i++) offs[i] = (int32_t)((size_t)(i < n_rows ? i : n_rows - 1) * rb);
    const __m512i rows = _mm512_loadu_si512(offs);
    const __m512i m4 = _mm512_set1_epi32(0x0f0f0f0f), m1 = _mm512_set1_epi32(0x01010101), m2 = _mm512_set1_epi32(0x03030303);
    const bool q6 = t == TW_TYPE_Q6_K, q5 = t == TW_TYPE_Q5_K;
    for (int64_t l = 0; l < nb; l++) {
        uint8_t *o = scratch + (size_t)l * KBLK_SCRATCH;
        const uint8_t *base = W + (size_t)l * bs;
        int32_t *sc = (int32_t *)(o + 4096), *mn = sc + 128;
        float *d = (float *)(o + 5120), *dmin = d + 16;
        if (q6) {
            /* d is at 208..209: read 206..209 (inside the block) and keep the high half */
            const __m512i dd = _mm512_i32gather_epi32(rows, (const void *)(base + 206), 1);
            _mm512_store_ps(d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
            for (int i = 0; i < TW_QGEMM_ROWS; i++) {
                const uint8_t *b = base + offs[i];
                for (int s16 = 0; s16 < 16; s16++) sc[16 * s16 + i] = (int8_t)b[192 + s16];
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++)
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    const __m512i qh = _mm512_i32gather_epi32(rows, (const void *)(base + 128 + 32 * h + 4 * g), 1);
                    const __m512i l0 = _mm512_i32gather_epi32(rows, (const void *)(base + 64 * h + 4 * g), 1);
                    const __m512i l1 = _mm512_i32gather_epi32(rows, (const void *)(base + 64 * h + 32 + 4 * g), 1);
                    const __m512i lo4[4] = {_mm512_and_si512(l0, m4), _mm512_and_si512(l1, m4),
                                            _mm512_and_si512(_mm512_srli_epi32(l0, 4), m4),
                                            _mm512_and_si512(_mm512_srli_epi32(l1, 4), m4)};
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        const __m512i hb = _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * k), m2), 4);
                        _mm512_store_si512((__m512i *)(o + 512 * (4 * h + k) + 64 * g), _mm512_or_si512(lo4[k], hb));
                    }
                }
            continue;
        }
        const __m512i dd = _mm512_i32gather_epi32(rows, (const void *)base, 1);
        _mm512_store_ps(d, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dd)));
        _mm512_store_ps(dmin, _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dd, 16))));
        for (int i = 0; i < TW_QGEMM_ROWS; i++) {
            uint8_t s8[8], n8[8];
            unpack_scales_k(base + offs[i] + 4, s8, n8);
            for (int c = 0; c < 8; c++) {
                sc[16 * c + i] = s8[c];
                mn[16 * c + i] = n8[c];
            }
        }
        const int qoff = q5 ? 48 : 16;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
            const __m512i qh = q5 ? _mm512_i32gather_epi32(rows, (const void *)(base + 16 + 4 * g), 1) : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                const __m512i v = _mm512_i32gather_epi32(rows, (const void *)(base + qoff + 32 * p + 4 * g), 1);
                __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), m4);
                if (q5) {
                    lo = _mm512_or_si512(lo, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * p), m1), 4));
                    hi = _mm512_or_si512(hi, _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(qh, 2 * p + 1), m1), 4));
                }
                _mm512_store_si512((__m512i *)(o + 512 * (2 * p) + 64 * g), lo);
                _mm512_store_si512((__m512i *)(o + 512 * (2 * p + 1) + 64 * g), hi);
            }
        }
    }
}

/* NJ activation rows against the unpacked k-quant tile. Per super-block and row i:
 * Q4_K/Q5_K sumi = sum_c sc_c * dot_c(q, q_x), summ = sum_c mn_c * (sum of the 32 q_x);
 * acc = fma(float(sumi), d * d_x, acc), acc = fma(float(summ), -(dmin * d_x), acc).
 * Q6_K sumi = sum_s sc_s * (dot_s(q, q_x) - 32 bsums_s) (16-element sub-blocks);
 * acc = fma(float(sumi), d * d_x, acc). Integer sums exact (|sumi| < 2^31). */
__attribute__((always_inline)) TW_AVX512 static inline void tile_rows_k(float *out, int64_t ldo,
                                                                         const uint8_t *scratch, const uint8_t *act,
                                                                         size_t act_row, int64_t nb, __mmask16 keep,
                                                                         const int NJ, const bool Q6)
{
    __m512 accf[8];
    #pragma GCC unroll 8
    for (int jj = 0; jj < NJ; jj++) accf[jj] = _mm512_setzero_ps();
    for (int64_t l = 0; l < nb; l++) {
        const uint8_t *o = scratch + (size_t)l * KBLK_SCRATCH;
        const int32_t *sc = (const int32_t *)(o + 4096), *mn = sc + 128;
        const float *d = (const float *)(o + 5120), *dmin = d + 16;
        __m512i isum[8];
        #pragma GCC unroll 8
        for (int jj = 0; jj < NJ; jj++) isum[jj] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m512i w[8];
            #pragma GCC unroll 8
            for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512((const __m512i *)(o + 512 * c + 64 * g));
            #pragma GCC unroll 8
            for (int jj = 0; jj < NJ; jj++) {
                const uint8_t *a = act + (size_t)jj * act_row;
                const uint8_t *q = a + (size_t)l * 292 + 4 + 32 * c;
                if (Q6) {
                    const int32_t *b6 = (const int32_t *)(a + (size_t)nb * 292) + nb * 8 + 16 * l;
                    __m512i t0 = _mm512_set1_epi32(b6[2 * c]), t1 = _mm512_set1_epi32(b6[2 * c + 1]);
                    #pragma GCC unroll 8
                    for (int g = 0; g < 4; g++) t0 = _mm512_dpbusd_epi32(t0, w[g], _mm512_set1_epi32(ld32(q + 4 * g)));
                    #pragma GCC unroll 8
                    for (int g = 4; g < 8; g++) t1 = _mm512_dpbusd_epi32(t1, w[g], _mm512_set1_epi32(ld32(q + 4 * g)));
                    isum[jj] = _mm512_add_epi32(isum[jj], _mm512_mullo_epi32(t0, _mm512_load_si512(sc + 32 * c)));
                    isum[jj] = _mm512_add_epi32(isum[jj], _mm512_mullo_epi32(t1, _mm512_load_si512(sc + 32 * c + 16)));
                } else {
                    __m512i t0 = _mm512_setzero_si512();
                    #pragma GCC unroll 8
                    for (int g = 0; g < 8; g++) t0 = _mm512_dpbusd_epi32(t0, w[g], _mm512_set1_epi32(ld32(q + 4 * g)));
                    isum[jj] = _mm512_add_epi32(isum[jj], _mm512_mullo_epi32(t0, _mm512_load_si512(sc + 16 * c)));
                }
            }
        }
        const __m512 dv = _mm512_load_ps(d);
        #pragma GCC unroll 8
        for (int jj = 0; jj < NJ; jj++) {
            const uint8_t *a = act + (size_t)jj * act_row;
            float dx;
            memcpy(&dx, a + (size_t)l * 292, 4);
            accf[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[jj]), _mm512_mul_ps(dv, _mm512_set1_ps(dx)), accf[jj]);
            if (!Q6) {
                const int32_t *bs32 = (const int32_t *)(a + (size_t)nb * 292) + 8 * l;
                __m512i m = _mm512_setzero_si512();
                #pragma GCC unroll 8
                for (int c = 0; c < 8; c++)
                    m = _mm512_add_epi32(m, _mm512_mullo_epi32(_mm512_load_si512(mn + 16 * c), _mm512_set1_epi32(bs32[c])));
                const __m512 dm = _mm512_mul_ps(_mm512_load_ps(dmin), _mm512_set1_ps(-dx));
                accf[jj] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), dm, accf[jj]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int jj = 0; jj < NJ; jj++) _mm512_mask_storeu_ps(out + (size_t)jj * (size_t)ldo, keep, accf[jj]);
}

#define TILE_CASES_K(Q6)                                                                                 \
    switch (nj) {                                                                                        \
    case 8: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 8, Q6); break;                           \
    case 7: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 7, Q6); break;                           \
    case 6: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 6, Q6); break;                           \
    case 5: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 5, Q6); break;                           \
    case 4: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 4, Q6); break;                           \
    case 3: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 3, Q6); break;                           \
    case 2: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 2, Q6); break;                           \
    default: tile_rows_k(o, ldo, scratch, a, act_row, nb, keep, 1, Q6); break;                          \
    }

TW_AVX512 static void qgemm_tile_k(float *out, int64_t ldo, const uint8_t *W, size_t rb, tw_type t, int64_t n_rows,
                                   const uint8_t *act, size_t act_row, int64_t B, int64_t C, uint8_t *scratch)
{
    const int64_t nb = C / 256;
    unpack_tile_k(scratch, W, rb, t, n_rows, nb);
    const __mmask16 keep = (__mmask16)((1u << n_rows) - 1u);
    for (int64_t j0 = 0; j0 < B; j0 += 8) {
        const int nj = B - j0 < 8 ? (int)(B - j0) : 8;
        float *o = out + j0 * ldo;
        const uint8_t *a = act + (size_t)j0 * act_row;
        if (t == TW_TYPE_Q6_K) {
            TILE_CASES_K(true)
        } else {
            TILE_CASES_K(false)
        }
    }
}

/* ---- row dots of the legacy types for small B (AVX-512 VL/BW + VNNI on 256-bit vectors) ----
 * The AVX2 kernels' structure (two blocks per iteration into two accumulators, scales
 * from one vcvtph2ps each, the same float products as ggml) with cheaper integer parts:
 * vpdpbusd replaces maddubs + madd, the Q5 fifth bit comes from a mask register (the 32
 * bits of qh are the byte mask), and the offset of Q4_0/Q5_0 is taken off in the integer
 * domain as offset * sum(q_x) (a second vpdpbusd with the constant offset bytes), so sumi
 * is ggml's exactly. Q8_0 keeps the sign trick (|w| * sign(x, w)). */

enum { K_SIGNED = 0, K_OFFSET = 1, K_MIN = 2 };

/* lanes (d_w d_x, m_w s_x, ., .) */
TW_AVX512 static inline __m128 block_scales(const void *wblk, bool has_m, const tw_block_q8a *y)
{
    uint32_t u = 0, v;
    memcpy(&u, wblk, has_m ? 4 : 2);
    memcpy(&v, y, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128((int)u)), _mm_cvtph_ps(_mm_cvtsi32_si128((int)v)));
}

TW_AVX512 static inline __m256i q5_bytes(const uint8_t *qs, const uint8_t *qh)
{
    uint32_t v;
    memcpy(&v, qh, 4);
    const __m256i n = nibbles32(qs);
    return _mm256_mask_add_epi8(n, (__mmask32)v, n, _mm256_set1_epi8(0x10));    /* nibble + 16 = nibble | 16 */
}

/* sumi lanes of one block: QW gives the 32 weight bytes (unsigned unless K_SIGNED) */
#define BLOCK_SUMI(kind, q, x, off)                                                                              \
    ((kind) == K_SIGNED ? _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q)) \
     : (kind) == K_OFFSET ? _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), q, x),                     \
                                             _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(off), x)) \
                          : _mm256_dpbusd_epi32(_mm256_setzero_si256(), q, x))

#define LEGACY_DOT512(name, wtype, QW, kind, off)                                                        \
    TW_AVX512 static float name(const wtype *w, const tw_block_q8a *y, int64_t nb)                        \
    {                                                                                                 \
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();                                \
        __m128 accm = _mm_setzero_ps();                                                               \
        int64_t i = 0;                                                                                \
        for (; i + 2 <= nb; i += 2) {                                                                 \
            const __m256i q0 = QW(w + i), q1 = QW(w + i + 1);                                         \
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                          \
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)y[i + 1].qs);                      \
            const __m256 p0 = _mm256_cvtepi32_ps(BLOCK_SUMI(kind, q0, x0, off));                      \
            const __m256 p1 = _mm256_cvtepi32_ps(BLOCK_SUMI(kind, q1, x1, off));                      \
            const __m128 s0 = block_scales(w + i, (kind) == K_MIN, y + i);                            \
            const __m128 s1 = block_scales(w + i + 1, (kind) == K_MIN, y + i + 1);                    \
            acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), p0, acc0);                              \
            acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s1), p1, acc1);                              \
            if ((kind) == K_MIN) accm = _mm_add_ps(accm, _mm_add_ps(s0, s1));                         \
        }                                                                                             \
        for (; i < nb; i++) {                                                                         \
            const __m256i q0 = QW(w + i);                                                             \
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)y[i].qs);                          \
            const __m256 p0 = _mm256_cvtepi32_ps(BLOCK_SUMI(kind, q0, x0, off));                      \
            const __m128 s0 = block_scales(w + i, (kind) == K_MIN, y + i);                            \
            acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(s0), p0, acc0);                              \
            if ((kind) == K_MIN) accm = _mm_add_ps(accm, s0);                                         \
        }                                                                                             \
        float sum;                                                                                    \
        {                                                                                             \
            const __m256 a = _mm256_add_ps(acc0, acc1);                                               \
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));            \
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                                   \
            h = _mm_add_ss(h, _mm_movehdup_ps(h));                                                    \
            sum = _mm_cvtss_f32(h);                                                                   \
        }                                                                                             \
        return (kind) == K_MIN ? sum + _mm_cvtss_f32(_mm_movehdup_ps(accm)) : sum;                    \
    }

#define QW8(b) _mm256_loadu_si256((const __m256i *)(b)->qs)
#define QW4(b) nibbles32((b)->qs)
#define QW5(b) q5_bytes((b)->qs, (b)->qh)

LEGACY_DOT512(dot_q8_0_512, tw_block_q8_0, QW8, K_SIGNED, 0)
LEGACY_DOT512(dot_q4_0_512, tw_block_q4_0, QW4, K_OFFSET, 8)
LEGACY_DOT512(dot_q4_1_512, tw_block_q4_1, QW4, K_MIN, 0)
LEGACY_DOT512(dot_q5_0_512, tw_block_q5_0, QW5, K_OFFSET, 16)
LEGACY_DOT512(dot_q5_1_512, tw_block_q5_1, QW5, K_MIN, 0)

static float vec_dot_512(tw_type t, const void *w, const void *xa, int64_t n)
{
    switch (t) {
    case TW_TYPE_Q8_0: return dot_q8_0_512(w, xa, n / 32);
    case TW_TYPE_Q4_0: return dot_q4_0_512(w, xa, n / 32);
    case TW_TYPE_Q4_1: return dot_q4_1_512(w, xa, n / 32);
    case TW_TYPE_Q5_0: return dot_q5_0_512(w, xa, n / 32);
    case TW_TYPE_Q5_1: return dot_q5_1_512(w, xa, n / 32);
    default: return tw_kernels_avx2_ops()->vec_dot(t, w, xa, n);
    }
}

/* ---- llama.cpp's float order for Q4_1 / Q8_0 (tw_kernel_ops.dot_ggml), wider ----------
 * Bit-identical to the AVX2 tiles (kernels_avx2.c): per output and block, eight int32 lanes
 * of four u8 x s8 products (vpdpbusd computes exactly maddubs + madd's lanes: no pair sum
 * reaches the int16 saturation of maddubs for these operands), converted to float, times
 * the float product d_w d_x, fused into that output's eight-lane accumulator in block
 * order; Q4_1's m_w s_x summed with fma apart; the same final horizontal order. What is
 * new is the packing for prefill (4 weight rows x 4 activation rows): two outputs share one
 * 512-bit register (two activation rows against one weight row), and the d_w d_x products
 * and the m_w s_x sums are formed for several outputs at once (lane by lane the same float
 * operations). */
TW_AVX512 static inline float hsum8_ggml_512(__m256 v)
{
    float a[8];
    _mm256_storeu_ps(a, v);
    return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
}

TW_AVX512 static inline __m256i q4_1_bytes(const tw_block_q4_1 *w)
{
    const __m128i raw = _mm_loadu_si128((const __m128i *)w->qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(15));
}

TW_AVX512 static inline __m512i pair256(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

TW_AVX512 static inline __m512 pair_ps(float lo, float hi)
{
    /* (insertf32x8 is AVX512DQ, which the dispatch does not require) */
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(lo))),
                                               _mm256_castps_pd(_mm256_set1_ps(hi)), 1));
}

/* 4 weight rows x 4 activation rows: out[i * 4 + k] */
TW_AVX512 static void ggml_tile44(tw_type t, float *out, const uint8_t *wb, size_t rb, const tw_block_q8a *const *y,
                                  int64_t nb)
{
    __m512 acc[4][2];
    __m128 summs[4];
    for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps(), summs[i] = _mm_setzero_ps();
    const bool q41 = t == TW_TYPE_Q4_1;
    for (int64_t b = 0; b < nb; b++) {
        __m256i yk[4];
        float dy[4], sy[4];
        for (int k = 0; k < 4; k++) {
            yk[k] = _mm256_loadu_si256((const __m256i *)y[k][b].qs);
            dy[k] = _cvtsh_ss(y[k][b].d);
            sy[k] = _cvtsh_ss(y[k][b].s);
        }
        const __m512 dy01 = pair_ps(dy[0], dy[1]), dy23 = pair_ps(dy[2], dy[3]);
        const __m128 syv = _mm_setr_ps(sy[0], sy[1], sy[2], sy[3]);
        const __m512i y01 = pair256(yk[0], yk[1]), y23 = pair256(yk[2], yk[3]);
        for (int i = 0; i < 4; i++) {
            __m512i p01, p23;
            float dw;
            if (q41) {
                const tw_block_q4_1 *w = (const tw_block_q4_1 *)(wb + (size_t)i * rb) + b;
                dw = _cvtsh_ss(w->d);
                summs[i] = _mm_fmadd_ps(_mm_set1_ps(_cvtsh_ss(w->m)), syv, summs[i]);
                const __m512i q = _mm512_broadcast_i64x4(q4_1_bytes(w));
                p01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y01);
                p23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y23);
            } else {
                const tw_block_q8_0 *w = (const tw_block_q8_0 *)(wb + (size_t)i * rb) + b;
                dw = _cvtsh_ss(w->d);
                const __m256i q = _mm256_loadu_si256((const __m256i *)w->qs);
                const __m512i aq = _mm512_broadcast_i64x4(_mm256_sign_epi8(q, q));
                p01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aq, pair256(_mm256_sign_epi8(yk[0], q), _mm256_sign_epi8(yk[1], q)));
                p23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), aq, pair256(_mm256_sign_epi8(yk[2], q), _mm256_sign_epi8(yk[3], q)));
            }
            const __m512 dwv = _mm512_set1_ps(dw);
            acc[i][0] = _mm512_fmadd_ps(_mm512_mul_ps(dwv, dy01), _mm512_cvtepi32_ps(p01), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(_mm512_mul_ps(dwv, dy23), _mm512_cvtepi32_ps(p23), acc[i][1]);
        }
    }
    for (int i = 0; i < 4; i++) {
        float sm[4];
        _mm_storeu_ps(sm, summs[i]);
        for (int k = 0; k < 4; k++) {
            const __m512 a = acc[i][k / 2];
            const float v = hsum8_ggml_512(k & 1 ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)) : _mm512_castps512_ps256(a));
            out[i * 4 + k] = q41 ? v + sm[k] : v;
        }
    }
}

TW_AVX512 static void dot_ggml_512(tw_type t, float *out, const void *wv, size_t rb, int nw, const tw_block_q8a *const *y,
                                   int nr, int64_t nb)
{
    /* (decode, nr = 1: a 4 x 1 tile packing two weight rows per register measured slower
     * than the AVX2 pairs, 53 vs 37 us for 1536 x 576 on one thread: the packing
     * shuffles cost more than the saved maddubs) */
    if (nw == 4 && nr == 4) ggml_tile44(t, out, wv, rb, y, nb);
    else tw_kernels_avx2_ops()->dot_ggml(t, out, wv, rb, nw, y, nr, nb);
}

static tw_kernel_ops g_ops512;
static pthread_once_t g_ops512_once = PTHREAD_ONCE_INIT;

static void init_ops512(void)
{
    g_ops512 = *tw_kernels_avx2_ops();
    g_ops512.name = "avx512";
    g_ops512.vec_dot = vec_dot_512;
    g_ops512.dot_ggml = dot_ggml_512;
}

const tw_kernel_ops *tw_kernels_avx512_ops(void)
{
    if (!tw_cpu_features()->avx512 || !tw_kernels_avx2_ops()) return NULL;
    pthread_once(&g_ops512_once, init_ops512);
    return &g_ops512;
}

static const tw_qgemm_ops g_qgemm = {
    .supports = qgemm_supports,
    .act_bytes = qgemm_act_bytes,
    .prepare_act = qgemm_prepare_act,
    .scratch_bytes = qgemm_scratch_bytes,
    .tile = qgemm_tile,
};

const tw_qgemm_ops *tw_kernels_avx512_qgemm(void)
{
    return tw_cpu_features()->avx512 && tw_kernels_avx2_ops() ? &g_qgemm : NULL;
}

#else /* not x86-64 */

const tw_kernel_ops *tw_kernels_avx512_ops(void)
{
    return NULL;
}

const tw_qgemm_ops *tw_kernels_avx512_qgemm(void)
{
    return NULL;
}

#endif
