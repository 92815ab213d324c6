/* quant_k.c — scalar reference (de)quantization of the k-quants Q4_K, Q5_K and Q6_K
 * (super-blocks of 256 elements; ggml's block_q4_K / block_q5_K / block_q6_K, ggml-common.h;
 * byte diagrams in docs/quant.md).
 *
 * Dequantization computes in float32 exactly what ggml's dequantize_row_q*_K and gguf-py's
 * dequantize do, in the same order — (d * sc) * q - (dmin * m) for Q4_K/Q5_K, (d * sc) * q
 * for Q6_K — so the results are bitwise equal (tested).
 *
 * Quantization follows ggml's reference quantizers (quantize_row_q*_K_ref) in method — not
 * bit-for-bit (nothing to compare against: gguf-py has no k-quant quantizer):
 *  - Q4_K / Q5_K: per sub-block of 32, a weighted least-squares fit of x ~ scale * q + min
 *    (q in 0..15 / 0..31, min <= 0) over a small grid of candidate inverse scales around
 *    nmax / (max - min), weights |x| + rms(sub-block) (ggml's make_qkx2_quants recipe);
 *    then the 8 scales and 8 mins are quantized to 6 bits against super-block fp16 d and
 *    dmin (d = max scale / 63), and q recomputed with the scales actually stored.
 *  - Q6_K: per sub-block of 16, a symmetric fit x ~ scale * q (q in -32..31) over 19
 *    candidate scales around -32 / signed max, weights x^2 (make_qx_quants, rmse type 1);
 *    then the 16 scales are quantized to int8 against an fp16 d = max scale / -128.
 * Deliberately not here: importance-matrix weighting, SIMD, the other k-quants (Q2_K,
 * Q3_K, Q8_K). */
#include "model/quant.h"

#include <math.h>
#include <string.h>

#define Q4_K_BYTES 144
#define Q5_K_BYTES 176
#define Q6_K_BYTES 210

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

/* Round to nearest (ties to even, like ggml's nearest_int) and clamp to [lo, hi]. Clamping
 * first keeps the value small enough for the 1.5 * 2^23 trick (adding it leaves no
 * fraction bits, so the FPU rounds, and subtracting it back is exact); NaN gives lo. */
static inline int round_clamp(float v, int lo, int hi)
{
    if (!(v >= (float)lo)) return lo;
    if (v > (float)hi) return hi;
    const float r = (v + 0x1.8p23f) - 0x1.8p23f;
    return (int)r;
}

/* ---- dequantization -------------------------------------------------------------------- */

/* Q4_K: [d fp16][dmin fp16][scales 12][qs 128] */
void tw_dequantize_row_q4_k(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q4_K_BYTES) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const float dmin = tw_fp16_to_fp32(rd16(b + 2));
        const uint8_t *scales = b + 4, *qs = b + 16;
        for (int c = 0; c < 4; c++, qs += 32, dst += 64) {   /* 64 elements = 2 sub-blocks */
            uint8_t sc, mn;
            tw_q4k_scale_min(2 * c, scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            tw_q4k_scale_min(2 * c + 1, scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            for (int l = 0; l < 32; l++) dst[l] = d1 * (float)(qs[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++) dst[l + 32] = d2 * (float)(qs[l] >> 4) - m2;
        }
    }
}

/* Q5_K: [d fp16][dmin fp16][scales 12][qh 32][qs 128] */
void tw_dequantize_row_q5_k(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q5_K_BYTES) {
        const float d = tw_fp16_to_fp32(rd16(b));
        const float dmin = tw_fp16_to_fp32(rd16(b + 2));
        const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
        for (int c = 0; c < 4; c++, qs += 32, dst += 64) {
            uint8_t sc, mn;
            tw_q4k_scale_min(2 * c, scales, &sc, &mn);
            const float d1 = d * (float)sc, m1 = dmin * (float)mn;
            tw_q4k_scale_min(2 * c + 1, scales, &sc, &mn);
            const float d2 = d * (float)sc, m2 = dmin * (float)mn;
            /* bits 2c and 2c+1 of qh[l] are the 5th bits of the two sub-blocks (a mask
             * test rather than a variable shift: it vectorizes) */
            const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++)
                dst[l] = d1 * (float)((qs[l] & 0x0f) | ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                dst[l + 32] = d2 * (float)((qs[l] >> 4) | ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

/* Q6_K: [ql 128][qh 64][scales int8 16][d fp16] */
void tw_dequantize_row_q6_k(float *dst, const void *src, int64_t n)
{
    const uint8_t *b = src;
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q6_K_BYTES) {
        const float d = tw_fp16_to_fp32(rd16(b + 208));
        const int8_t *sc = (const int8_t *)(b + 192);
        for (int h = 0; h < 2; h++, dst += 128) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            const int8_t *s = sc + 8 * h;
            /* element 32*k + l of this half uses scale s[2k + l/16] */
            float ds[8];
            for (int k = 0; k < 8; k++) ds[k] = d * (float)s[k];
            for (int l = 0; l < 32; l++) {
                const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const int is = l / 16;
                dst[l] = ds[is + 0] * (float)q1;
                dst[l + 32] = ds[is + 2] * (float)q2;
                dst[l + 64] = ds[is + 4] * (float)q3;
                dst[l + 96] = ds[is + 6] * (float)q4;
            }
        }
    }
}

/* ---- quantization: fits ---------------------------------------------------------------- */

/* Fit x[0..n) ~ scale * q + mn, q in 0..nmax, mn <= 0, minimizing sum w (scale q + mn - x)^2.
 * Start from the plain min/max grid, then try inverse scales (nmax + rmin + rdelta*k) /
 * (max - mn), k = 0..nstep; for each candidate q the best (scale, mn) has a closed form
 * (2x2 weighted normal equations; with mn clamped to 0 when it comes out positive). The
 * grid origin follows the best mn found so far (as ggml's make_qkx2_quants does).
 * Writes q, returns scale, sets *neg_min = -mn >= 0. n <= 32. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *q, float *neg_min,
                           float rmin, float rdelta, int nstep)
{
    float lo = x[0], hi = x[0], sw = w[0], swx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {          /* constant (<= 0) sub-block: all of it is the min */
        memset(q, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }
    float iscale = (float)nmax / (hi - lo);
    float scale = 1.0f / iscale;
    float best = 0.0f;
    for (int i = 0; i < n; i++) {
        const int l = round_clamp(iscale * (x[i] - lo), 0, nmax);
        q[i] = (uint8_t)l;
        const float diff = scale * (float)l + lo - x[i];
        best += w[i] * diff * diff;
    }
    uint8_t aux[32];
    for (int k = 0; k <= nstep; k++) {
        iscale = (rmin + rdelta * (float)k + (float)nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            const int l = round_clamp(iscale * (x[i] - lo), 0, nmax);
            aux[i] = (uint8_t)l;
            sl += w[i] * (float)l;
            sl2 += w[i] * (float)(l * l);
            sxl += w[i] * (float)l * x[i];
        }
        const float det = sw * sl2 - sl * sl;
        if (det > 0) {
            float s = (sw * sxl - swx * sl) / det;
            float m = (sl2 * swx - sl * sxl) / det;
            if (m > 0) {      /* the format's min is subtracted (dmin*m >= 0): mn <= 0 */
                m = 0;
                s = sxl / sl2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                const float diff = s * (float)aux[i] + m - x[i];
                err += w[i] * diff * diff;
            }
            if (err < best) {
                memcpy(q, aux, (size_t)n);
                best = err;
                scale = s;
                lo = m;
            }
        }
    }
    *neg_min = -lo;
    return scale;
}

/* Symmetric fit x ~ scale * l, l in -nmax..nmax-1, weights x^2: start from l = round(x *
 * -nmax / signed max) and try 18 nearby inverse scales -(nmax + k/10) / max; keep the one
 * maximizing (sum w x l)^2 / (sum w l^2) (i.e. minimizing the weighted squared error).
 * Writes q = l + nmax (0..2nmax-1), returns scale. ggml's make_qx_quants, rmse type 1. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *q)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {     /* ggml's GROUP_MAX_EPS */
        memset(q, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -(float)nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
        q[i] = (uint8_t)(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)(l * l);
    }
    float scale = suml2 > 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int k = -9; k <= 9; k++) {
        if (k == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)k) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = round_clamp(iscale * x[i], -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)(l * l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) q[i] = (uint8_t)(nmax + round_clamp(iscale * x[i], -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* fp16 of a super-block scale s (0 or finite, any sign). A nonzero s too small for fp16
 * (|s| < 2^-25: tiny weights) is raised to the smallest subnormal 2^-24 with its sign
 * instead of flushing to 0, so the sub-block scales can still carry the data (they are
 * rounded against the stored value and absorb the difference). */
static uint16_t super_scale_fp16(float s)
{
    uint16_t h = tw_fp32_to_fp16(s);
    if ((h & 0x7fff) == 0 && s != 0.0f) h = (uint16_t)((h & 0x8000) | 0x0001);
    return h;
}

/* ---- quantization: Q4_K / Q5_K ---------------------------------------------------------- */

/* The shared part of Q4_K and Q5_K: fit the 8 sub-blocks, pack the 6-bit scales/mins into
 * scales12 and the fp16 d/dmin into b[0..4), and leave the final q (0..nmax) in L. */
static void quantize_superblock_k(uint8_t *b, uint8_t *scales12, const float *x, uint8_t *L, int nmax,
                                  float rmin, float rdelta, int nstep)
{
    float sc_f[8], mn_f[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        const float av = sqrtf(sum_x2 / 32.0f);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        sc_f[j] = fit_scale_min(32, nmax, xs, w, L + 32 * j, &mn_f[j], rmin, rdelta, nstep);
        if (sc_f[j] > max_scale) max_scale = sc_f[j];
        if (mn_f[j] > max_min) max_min = mn_f[j];
    }
    /* the super-block scales as stored (fp16), then the 6-bit sub-block scales rounded
     * against those stored values */
    const uint16_t d16 = super_scale_fp16(max_scale / 63.0f);
    const uint16_t dmin16 = super_scale_fp16(max_min / 63.0f);
    wr16(b, d16);
    wr16(b + 2, dmin16);
    const float d = tw_fp16_to_fp32(d16), dmin = tw_fp16_to_fp32(dmin16);
    memset(scales12, 0, 12);
    for (int j = 0; j < 8; j++) {
        const int ls = d > 0 ? round_clamp(sc_f[j] / d, 0, 63) : 0;
        const int lm = dmin > 0 ? round_clamp(mn_f[j] / dmin, 0, 63) : 0;
        if (j < 4) {
            scales12[j] = (uint8_t)ls;
            scales12[j + 4] = (uint8_t)lm;
        } else {
            scales12[j + 4] = (uint8_t)((ls & 0x0f) | ((lm & 0x0f) << 4));
            scales12[j - 4] |= (uint8_t)((ls >> 4) << 6);
            scales12[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    /* recompute q against the scales as stored (6-bit, fp16), so rounding of the scales
     * is compensated where the grid allows */
    for (int j = 0; j < 8; j++) {
        uint8_t sc, mn;
        tw_q4k_scale_min(j, scales12, &sc, &mn);
        const float dj = d * (float)sc;
        if (dj == 0.0f) continue;          /* q is irrelevant: every value decodes to -dmin*mn */
        const float mj = dmin * (float)mn;
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)round_clamp((x[32 * j + l] + mj) / dj, 0, nmax);
    }
}

void tw_quantize_row_q4_k(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    uint8_t L[TW_QK_K];
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q4_K_BYTES, src += TW_QK_K) {
        quantize_superblock_k(b, b + 4, src, L, 15, -1.0f, 0.1f, 20);
        uint8_t *qs = b + 16;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void tw_quantize_row_q5_k(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    uint8_t L[TW_QK_K];
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q5_K_BYTES, src += TW_QK_K) {
        quantize_superblock_k(b, b + 4, src, L, 31, -0.5f, 0.1f, 15);
        uint8_t *qh = b + 16, *qs = b + 48;
        memset(qh, 0, 32);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                const int q1 = L[64 * c + l], q2 = L[64 * c + 32 + l];
                qs[32 * c + l] = (uint8_t)((q1 & 0x0f) | ((q2 & 0x0f) << 4));
                qh[l] |= (uint8_t)(((q1 >> 4) << (2 * c)) | ((q2 >> 4) << (2 * c + 1)));
            }
    }
}

/* ---- quantization: Q6_K ------------------------------------------------------------------ */

void tw_quantize_row_q6_k(void *dst, const float *src, int64_t n)
{
    uint8_t *b = dst;
    uint8_t L[TW_QK_K];
    float scales[16];
    for (int64_t i = 0; i < n / TW_QK_K; i++, b += Q6_K_BYTES, src += TW_QK_K) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ib++) {
            scales[ib] = fit_scale_sym(16, 32, src + 16 * ib, L + 16 * ib);
            const float a = fabsf(scales[ib]);
            if (a > max_abs) {
                max_abs = a;
                max_scale = scales[ib];
            }
        }
        if (max_abs < 1e-15f) {           /* all (near) zero: the zero block */
            memset(b, 0, Q6_K_BYTES);
            continue;
        }
        /* d = max scale / -128 (the largest scale gets int8 -128, the asymmetric end);
         * the int8 scales are rounded against d as stored */
        const uint16_t d16 = super_scale_fp16(max_scale / -128.0f);
        wr16(b + 208, d16);
        const float d = tw_fp16_to_fp32(d16);
        int8_t *sc = (int8_t *)(b + 192);
        for (int ib = 0; ib < 16; ib++) sc[ib] = (int8_t)round_clamp(scales[ib] / d, -128, 127);
        for (int ib = 0; ib < 16; ib++) {
            const float dj = d * (float)sc[ib];
            if (dj == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * ib + l] = (uint8_t)(32 + round_clamp(src[16 * ib + l] / dj, -32, 31));
        }
        uint8_t *ql = b, *qh = b + 128;
        for (int h = 0; h < 2; h++) {
            const uint8_t *Lh = L + 128 * h;
            for (int l = 0; l < 32; l++) {
                const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
                ql[64 * h + l] = (uint8_t)((q1 & 0x0f) | ((q3 & 0x0f) << 4));
                ql[64 * h + l + 32] = (uint8_t)((q2 & 0x0f) | ((q4 & 0x0f) << 4));
                qh[32 * h + l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
            }
        }
    }
}
