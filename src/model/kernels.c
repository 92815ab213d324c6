/* kernels.c — the portable half of the inference kernels (kernels.h): CPU feature
 * detection and path selection, the scalar kernel table (8-bit activation quantizers,
 * integer dot products of every weight type with them, float dots, the small layer ops),
 * the double-precision references, RoPE, the thread pool (tw_parallel_for) and the
 * matrix-product drivers that spread rows over it or hand dequantized tiles to gemm.c.
 *
 * The integer dot products follow llama.cpp's scheme (ggml-quants.c vec_dot_q*_q8_*): the
 * activation row is rounded once to 8-bit blocks, byte for byte ggml's block_q8_1 /
 * block_q8_K (fp16 scales included), and each weight block contributes
 * (d_w * d_x) * sum(q_w * q_x) (+ m_w * s_x for Q4_1/Q5_1, - (dmin_w * d_x) * sum(mins *
 * bsums) for Q4_K/Q5_K), integer sums exact, the same float products as ggml.
 *
 * Deliberately not here: any SIMD (kernels_avx2.c, kernels_avx512.c), weight quantization (quant.c),
 * attention and model logic (llama.c). */
#include "model/gemm.h"
#include "model/kernels.h"
#include "model/quant.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- CPU features and path selection ---------------------------------------------- */

static tw_cpu g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;
static int g_path;              /* tw_kernel_path; read/written with __atomic builtins */
static int64_t g_sgemm_min_b;   /* 0: the table below */
static int64_t g_int_gemm_min_b;   /* 0: the table below */

static void detect_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    g_cpu.avx2 = __builtin_cpu_supports("avx2");
    g_cpu.fma = __builtin_cpu_supports("fma");
    g_cpu.f16c = __builtin_cpu_supports("f16c");
    g_cpu.avx512f = __builtin_cpu_supports("avx512f");
    g_cpu.avx512 = g_cpu.avx512f && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                   __builtin_cpu_supports("avx512vnni") && g_cpu.avx2 && g_cpu.fma && g_cpu.f16c;
#endif
}

const tw_cpu *tw_cpu_features(void)
{
    pthread_once(&g_cpu_once, detect_cpu);
    return &g_cpu;
}

void tw_kernels_force_path(tw_kernel_path p)
{
    __atomic_store_n(&g_path, (int)p, __ATOMIC_RELAXED);
}

void tw_kernels_force_scalar(bool on)
{
    tw_kernels_force_path(on ? TW_KPATH_SCALAR : TW_KPATH_AUTO);
}

/* TW_KERNEL_PATH=scalar|avx2|avx512 in the environment picks the default path (AUTO) for
 * A/B measurements of whole programs (tunewise bench); tw_kernels_force_path overrides. */
static int g_env_path;
static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;

static void read_env_path(void)
{
    const char *e = getenv("TW_KERNEL_PATH");
    if (!e) return;
    if (strcmp(e, "scalar") == 0) g_env_path = TW_KPATH_SCALAR;
    else if (strcmp(e, "avx2") == 0) g_env_path = TW_KPATH_AVX2;
    else if (strcmp(e, "avx512") == 0) g_env_path = TW_KPATH_AVX512;
}

tw_kernel_path tw_kernels_path(void)
{
    int p = __atomic_load_n(&g_path, __ATOMIC_RELAXED);
    if (p == TW_KPATH_AUTO) {
        pthread_once(&g_env_once, read_env_path);
        p = g_env_path;
    }
    if (p == TW_KPATH_SCALAR || !tw_kernels_avx2_ops()) return TW_KPATH_SCALAR;
    if (p == TW_KPATH_AVX2 || !tw_kernels_avx512_qgemm() || !tw_kernels_avx512_ops()) return TW_KPATH_AVX2;
    return TW_KPATH_AVX512;
}

void tw_kernels_set_int_gemm_min_b(int64_t b)
{
    __atomic_store_n(&g_int_gemm_min_b, b > 0 ? b : 0, __ATOMIC_RELAXED);
}

void tw_kernels_set_sgemm_min_b(int64_t b)
{
    __atomic_store_n(&g_sgemm_min_b, b > 0 ? b : 0, __ATOMIC_RELAXED);
}

static bool is_quantized(tw_type t)
{
    return t != TW_TYPE_F32 && t != TW_TYPE_F16 && t != TW_TYPE_BF16;
}

/* Measured with bench_kernels --only threshold (576 x 1536, one thread, OpenBLAS 0.3.21
 * with its Haswell kernels, on the dev machine's AMD EPYC): the smallest measured B
 * (2, 4, 8, 12, 16, 24, 32, 48, 64) at which dequantize + sgemm beat the row-wise path.
 * These apply on the AVX2 path (no batched integer GEMM). With the AVX-512 VNNI GEMM the
 * integer path is faster than sgemm at every B for every quantized type (bench_kernels
 * --only gemm; docs/kernels.md), so sgemm is never chosen for them. */
int64_t tw_matmul_sgemm_min_b(tw_type type)
{
    const int64_t o = __atomic_load_n(&g_sgemm_min_b, __ATOMIC_RELAXED);
    if (o > 0) return o;
    if (is_quantized(type) && tw_kernels_path() == TW_KPATH_AVX512 && tw_kernels_avx512_qgemm()->supports(type))
        return INT64_MAX;
    switch (type) {
    case TW_TYPE_F32: return 8;
    case TW_TYPE_Q4_0: case TW_TYPE_Q5_K: return 16;
    case TW_TYPE_Q4_1: return 24;
    case TW_TYPE_Q4_K: return 32;
    case TW_TYPE_Q8_0: return 48;
    default: return 12;      /* F16, BF16, Q5_0, Q5_1, Q6_K */
    }
}

/* From which B the batched GEMM beats one row dot per (row, activation row): bench_kernels
 * --only gemm, one thread, 1536 x 576 (legacy) / 1536 x 768 (k-quants), B = 1, 2, 4, 8:
 * the GEMM pays for unpacking each 16-row tile (~1.5-3 row dots' worth) and then runs at
 * 350-560 GFLOP/s at B >= 64 against the row dots' 45-78 at any B (docs/kernels.md). */
int64_t tw_matmul_int_gemm_min_b(tw_type type)
{
    if (!is_quantized(type) || tw_kernels_path() != TW_KPATH_AVX512) return INT64_MAX;
    const tw_qgemm_ops *g = tw_kernels_avx512_qgemm();
    if (!g || !g->supports(type)) return INT64_MAX;
    const int64_t o = __atomic_load_n(&g_int_gemm_min_b, __ATOMIC_RELAXED);
    if (o > 0) return o;
    switch (type) {
    case TW_TYPE_Q4_0: case TW_TYPE_Q5_0: case TW_TYPE_Q6_K: return 2;
    case TW_TYPE_Q5_1: return 3;
    default: return 4;      /* Q8_0, Q4_1, Q4_K, Q5_K */
    }
}

/* tw_matmul_float's row-wise path dequantizes (~35 GFLOP/s for every type): sgemm wins
 * from B = 8 (same measurement). */
static int64_t float_sgemm_min_b(void)
{
    const int64_t o = __atomic_load_n(&g_sgemm_min_b, __ATOMIC_RELAXED);
    return o > 0 ? o : 8;
}

const tw_kernel_ops *tw_kernels_ops(void)
{
    switch (tw_kernels_path()) {
    case TW_KPATH_SCALAR: return tw_kernels_scalar_ops();
    case TW_KPATH_AVX512: return tw_kernels_avx512_ops();
    default: return tw_kernels_avx2_ops();
    }
}

bool tw_kernels_simd(void)
{
    return tw_kernels_ops() != tw_kernels_scalar_ops();
}

/* ---- activation quantizers -------------------------------------------------------- */

/* ggml's x86 quantize_row_q8_1 (arch/x86/quants.c): amax = max |x| of the block,
 * d = amax / 127 stored as fp16, id = 127 / amax (0 for an all-zero block), q = round-to-
 * nearest-even(x * id) (_mm256_round_ps with _MM_ROUND_NEAREST; nearbyintf in the default
 * rounding mode is the same), s = fp16(d * sum(q)) with the unrounded float d. Its d and
 * qs are also quantize_row_q8_0's. No FMA contraction (ISO C build): x * id is one
 * rounded product, as vmulps. */
static void quantize_q8a_scalar(tw_block_q8a *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int s = 0;
        for (int j = 0; j < 32; j++) {
            y[i].qs[j] = (int8_t)(int)nearbyintf(x[j] * id);
            s += y[i].qs[j];
        }
        y[i].d = tw_fp32_to_fp16(d);
        y[i].s = tw_fp32_to_fp16(d * (float)s);
    }
}

/* ggml's quantize_row_q8_K_ref (ggml-quants.c; x86 uses it as is): max = the first element
 * of largest magnitude, with its sign; iscale = -127 / max; q = min(127, nearest_int(iscale
 * * x)) (nearest_int: round half to even, as nearbyintf); d = 1 / iscale. An all-zero block:
 * d = 0, qs = 0 (ggml leaves its bsums unwritten; we write 0). */
static void quantize_q8k_scalar(tw_block_q8k *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; j++) {
            const float a = fabsf(x[j]);
            if (a > amax) {
                amax = a;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; j++) {
            const int v = (int)nearbyintf(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += y[i].qs[16 * g + j];
            y[i].bsums[g] = (int16_t)s;
        }
        y[i].d = 1.0f / iscale;
    }
}

void tw_quantize_q8a(tw_block_q8a *y, const float *x, int64_t n) { tw_kernels_ops()->quantize_q8a(y, x, n); }
void tw_quantize_q8k(tw_block_q8k *y, const float *x, int64_t n) { tw_kernels_ops()->quantize_q8k(y, x, n); }

tw_type tw_matmul_act_type(tw_type wtype)
{
    switch (wtype) {
    case TW_TYPE_Q8_0: case TW_TYPE_Q4_0: case TW_TYPE_Q4_1: case TW_TYPE_Q5_0: case TW_TYPE_Q5_1:
        return TW_TYPE_Q8_0;
    case TW_TYPE_Q4_K: case TW_TYPE_Q5_K: case TW_TYPE_Q6_K:
        return TW_TYPE_Q8_K;
    default:
        return TW_TYPE_F32;
    }
}

/* bytes of one activation row of C elements in the type tw_matmul_act_type(wtype) */
static size_t act_row_bytes(tw_type wtype, int64_t C)
{
    switch (tw_matmul_act_type(wtype)) {
    case TW_TYPE_Q8_0: return (size_t)(C / 32) * sizeof(tw_block_q8a);
    case TW_TYPE_Q8_K: return (size_t)(C / 256) * sizeof(tw_block_q8k);
    default: return (size_t)C * sizeof(float);
    }
}

/* ---- scalar dot products ------------------------------------------------------------- */

static inline uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* Eight independent float accumulators, summed pairwise at the end: the same lane
 * structure as an 8-wide vector loop, faster and more accurate than one running sum. */
static float dot_f32_scalar(const float *a, const float *b, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_f16_scalar(const uint16_t *w, const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += tw_fp16_to_fp32(w[i + k]) * x[i + k];
    for (; i < n; i++) acc[0] += tw_fp16_to_fp32(w[i]) * x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static float dot_bf16_scalar(const uint16_t *w, const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += tw_bf16_to_fp32(w[i + k]) * x[i + k];
    for (; i < n; i++) acc[0] += tw_bf16_to_fp32(w[i]) * x[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* The legacy dots, as ggml's generic vec_dot_q*_q8_0 / q8_1: per block
 * (d_w * d_x) * sumi (+ m_w * s_x), sumi = sum((q - offset) * q_x) exact. */
static inline float dx16(const tw_block_q8a *y) { return tw_fp16_to_fp32(y->d); }

static float dot_q8_0_scalar(const tw_block_q8_0 *w, const tw_block_q8a *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += w[i].qs[j] * y[i].qs[j];
        sum += (tw_fp16_to_fp32(w[i].d) * dx16(y + i)) * (float)s;
    }
    return sum;
}

static float dot_q4_0_scalar(const tw_block_q4_0 *w, const tw_block_q8a *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++)
            s += ((w[i].qs[j] & 15) - 8) * y[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        sum += (tw_fp16_to_fp32(w[i].d) * dx16(y + i)) * (float)s;
    }
    return sum;
}

/* x = d q + m: sum x_w x_a ~ d d_a sum(q q_a) + m s_a, s_a = fp16(d_a sum(q_a)) (q8_1). */
static float dot_q4_1_scalar(const tw_block_q4_1 *w, const tw_block_q8a *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += (w[i].qs[j] & 15) * y[i].qs[j] + (w[i].qs[j] >> 4) * y[i].qs[j + 16];
        sum += (tw_fp16_to_fp32(w[i].d) * dx16(y + i)) * (float)s + tw_fp16_to_fp32(w[i].m) * tw_fp16_to_fp32(y[i].s);
    }
    return sum;
}

static float dot_q5_0_scalar(const tw_block_q5_0 *w, const tw_block_q8a *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = rd32le(w[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int q0 = ((w[i].qs[j] & 15) | (int)(((qh >> j) & 1u) << 4)) - 16;
            const int q1 = ((w[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4)) - 16;
            s += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sum += (tw_fp16_to_fp32(w[i].d) * dx16(y + i)) * (float)s;
    }
    return sum;
}

static float dot_q5_1_scalar(const tw_block_q5_1 *w, const tw_block_q8a *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = rd32le(w[i].qh);
        int s = 0;
        for (int j = 0; j < 16; j++) {
            const int q0 = (w[i].qs[j] & 15) | (int)(((qh >> j) & 1u) << 4);
            const int q1 = (w[i].qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            s += q0 * y[i].qs[j] + q1 * y[i].qs[j + 16];
        }
        sum += (tw_fp16_to_fp32(w[i].d) * dx16(y + i)) * (float)s + tw_fp16_to_fp32(w[i].m) * tw_fp16_to_fp32(y[i].s);
    }
    return sum;
}

/* Q4_K: x = d sc_j q - dmin mn_j per sub-block j of 32; the min term uses the activation's
 * 16-element sums: sum_j mn_j * d_a * (bsums[2j] + bsums[2j+1]). */
static float dot_q4_k_scalar(const tw_block_q4_k *w, const tw_block_q8k *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qs = w[i].qs;
        const int8_t *a = y[i].qs;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++, qs += 32, a += 64) {
            uint8_t sc0, mn0, sc1, mn1;
            tw_q4k_scale_min(2 * c, w[i].scales, &sc0, &mn0);
            tw_q4k_scale_min(2 * c + 1, w[i].scales, &sc1, &mn1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += (qs[l] & 15) * a[l];
                s1 += (qs[l] >> 4) * a[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ += mn0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) + mn1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        sum += tw_fp16_to_fp32(w[i].d) * y[i].d * (float)sumi - tw_fp16_to_fp32(w[i].dmin) * y[i].d * (float)summ;
    }
    return sum;
}

static float dot_q5_k_scalar(const tw_block_q5_k *w, const tw_block_q8k *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qs = w[i].qs, *qh = w[i].qh;
        const int8_t *a = y[i].qs;
        int sumi = 0, summ = 0;
        for (int c = 0; c < 4; c++, qs += 32, a += 64) {
            uint8_t sc0, mn0, sc1, mn1;
            tw_q4k_scale_min(2 * c, w[i].scales, &sc0, &mn0);
            tw_q4k_scale_min(2 * c + 1, w[i].scales, &sc1, &mn1);
            int s0 = 0, s1 = 0;
            for (int l = 0; l < 32; l++) {
                s0 += ((qs[l] & 15) | (((qh[l] >> (2 * c)) & 1) << 4)) * a[l];
                s1 += ((qs[l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4)) * a[l + 32];
            }
            sumi += sc0 * s0 + sc1 * s1;
            summ += mn0 * (y[i].bsums[4 * c] + y[i].bsums[4 * c + 1]) + mn1 * (y[i].bsums[4 * c + 2] + y[i].bsums[4 * c + 3]);
        }
        sum += tw_fp16_to_fp32(w[i].d) * y[i].d * (float)sumi - tw_fp16_to_fp32(w[i].dmin) * y[i].d * (float)summ;
    }
    return sum;
}

/* Q6_K: x = d sc_k (q - 32) per sub-block k of 16 (layout in quant.h). */
static float dot_q6_k_scalar(const tw_block_q6_k *w, const tw_block_q8k *y, int64_t nb)
{
    float sum = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w[i].ql + 64 * h, *qh = w[i].qh + 32 * h;
            const int8_t *sc = w[i].scales + 8 * h, *a = y[i].qs + 128 * h;
            int s[8] = {0};     /* per sub-block of 16: element 32k + l has scale 2k + l/16 */
            for (int l = 0; l < 32; l++) {
                const int q1 = ((ql[l] & 15) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const int is = l / 16;
                s[is + 0] += q1 * a[l];
                s[is + 2] += q2 * a[l + 32];
                s[is + 4] += q3 * a[l + 64];
                s[is + 6] += q4 * a[l + 96];
            }
            for (int k = 0; k < 8; k++) sumi += sc[k] * s[k];
        }
        sum += tw_fp16_to_fp32(w[i].d) * y[i].d * (float)sumi;
    }
    return sum;
}

static float vec_dot_scalar(tw_type t, const void *w, const void *xa, int64_t n)
{
    switch (t) {
    case TW_TYPE_F32: return dot_f32_scalar(w, xa, n);
    case TW_TYPE_F16: return dot_f16_scalar(w, xa, n);
    case TW_TYPE_BF16: return dot_bf16_scalar(w, xa, n);
    case TW_TYPE_Q8_0: return dot_q8_0_scalar(w, xa, n / 32);
    case TW_TYPE_Q4_0: return dot_q4_0_scalar(w, xa, n / 32);
    case TW_TYPE_Q4_1: return dot_q4_1_scalar(w, xa, n / 32);
    case TW_TYPE_Q5_0: return dot_q5_0_scalar(w, xa, n / 32);
    case TW_TYPE_Q5_1: return dot_q5_1_scalar(w, xa, n / 32);
    case TW_TYPE_Q4_K: return dot_q4_k_scalar(w, xa, n / 256);
    case TW_TYPE_Q5_K: return dot_q5_k_scalar(w, xa, n / 256);
    case TW_TYPE_Q6_K: return dot_q6_k_scalar(w, xa, n / 256);
    default: return NAN;
    }
}

float tw_vec_dot(tw_type wtype, const void *w, const void *xa, int64_t n)
{
    return tw_kernels_ops()->vec_dot(wtype, w, xa, n);
}

/* ---- scalar small ops ---------------------------------------------------------------- */

static void rmsnorm_scalar(float *out, const float *x, const float *weight, int64_t n, float eps)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k] * x[i + k];
    for (; i < n; i++) acc[0] += x[i] * x[i];
    const float ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    const float scale = 1.0f / sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = weight ? x[i] * scale * weight[i] : x[i] * scale;
}

static void softmax_scalar(float *x, int64_t n)
{
    float mx = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

static void swiglu_scalar(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

static void add_scalar(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static float hsum8_ggml(const float *a)
{
    return ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]));
}

static void dot_ggml_scalar_row(tw_type t, float *out, const void *wv, const tw_block_q8a *const *y, int nr,
                                int64_t nb)
{
    for (int k = 0; k < nr; k++) {
        float acc[8] = {0}, summs = 0.0f;
        for (int64_t i = 0; i < nb; i++) {
            int8_t q[32];
            float dw;
            if (t == TW_TYPE_Q4_1) {
                const tw_block_q4_1 *w = (const tw_block_q4_1 *)wv + i;
                dw = tw_fp16_to_fp32(w->d);
                summs = fmaf(tw_fp16_to_fp32(w->m), tw_fp16_to_fp32(y[k][i].s), summs);
                for (int b = 0; b < 16; b++) {
                    q[b] = (int8_t)(w->qs[b] & 15);
                    q[b + 16] = (int8_t)(w->qs[b] >> 4);
                }
            } else {
                const tw_block_q8_0 *w = (const tw_block_q8_0 *)wv + i;
                dw = tw_fp16_to_fp32(w->d);
                memcpy(q, w->qs, 32);
            }
            const float dd = dw * tw_fp16_to_fp32(y[k][i].d);
            const int8_t *a = y[k][i].qs;
            for (int l = 0; l < 8; l++) {
                const int lane = q[4 * l] * a[4 * l] + q[4 * l + 1] * a[4 * l + 1] + q[4 * l + 2] * a[4 * l + 2] +
                                 q[4 * l + 3] * a[4 * l + 3];
                acc[l] = fmaf(dd, (float)lane, acc[l]);
            }
        }
        out[k] = t == TW_TYPE_Q4_1 ? hsum8_ggml(acc) + summs : hsum8_ggml(acc);
    }
}

static void dot_ggml_scalar(tw_type t, float *out, const void *wv, size_t rb, int nw, const tw_block_q8a *const *y,
                            int nr, int64_t nb)
{
    for (int i = 0; i < nw; i++) dot_ggml_scalar_row(t, out + i * nr, (const uint8_t *)wv + (size_t)i * rb, y, nr, nb);
}

static const tw_kernel_ops g_scalar_ops = {
    .name = "scalar",
    .dot_ggml = dot_ggml_scalar,
    .vec_dot = vec_dot_scalar,
    .dequant = tw_dequantize_row,
    .quantize_q8a = quantize_q8a_scalar,
    .quantize_q8k = quantize_q8k_scalar,
    .dot_f32 = dot_f32_scalar,
    .rmsnorm = rmsnorm_scalar,
    .softmax = softmax_scalar,
    .swiglu = swiglu_scalar,
    .add = add_scalar,
};

const tw_kernel_ops *tw_kernels_scalar_ops(void)
{
    return &g_scalar_ops;
}

/* ---- the small ops: public entry points and references ---------------------------------- */

void tw_rmsnorm(float *out, const float *x, const float *weight, int64_t n, float eps)
{
    if (n > 0) tw_kernels_ops()->rmsnorm(out, x, weight, n, eps);
}

void tw_softmax(float *x, int64_t n)
{
    if (n > 0) tw_kernels_ops()->softmax(x, n);
}

void tw_swiglu(float *out, const float *gate, const float *up, int64_t n)
{
    if (n > 0) tw_kernels_ops()->swiglu(out, gate, up, n);
}

void tw_add(float *out, const float *a, const float *b, int64_t n)
{
    if (n > 0) tw_kernels_ops()->add(out, a, b, n);
}

void tw_rmsnorm_ref(float *out, const float *x, const float *weight, int64_t n, float eps)
{
    if (n <= 0) return;
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const double scale = 1.0 / sqrt(ss / (double)n + (double)eps);
    for (int64_t i = 0; i < n; i++) out[i] = (float)(x[i] * scale * (weight ? weight[i] : 1.0));
}

void tw_softmax_ref(float *x, int64_t n)
{
    if (n <= 0) return;
    double mx = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(exp((double)x[i] - mx) / sum);
}

void tw_swiglu_ref(float *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * up[i]);
    }
}

/* ---- RoPE ---------------------------------------------------------------------------------- */

void tw_rope_table(float *cs, int64_t n_rot, int64_t pos, float theta_base, float freq_scale,
                   const float *freq_factors)
{
    for (int64_t i = 0; i < n_rot / 2; i++) {
        double th = (double)freq_scale * (double)pos * pow((double)theta_base, -2.0 * (double)i / (double)n_rot);
        if (freq_factors) th /= (double)freq_factors[i];
        cs[2 * i] = (float)cos(th);
        cs[2 * i + 1] = (float)sin(th);
    }
}

void tw_rope_apply(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float *cs, int mode)
{
    const int64_t half = n_rot / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        for (int64_t i = 0; i < half; i++) {
            /* NORMAL: pair (2i, 2i+1); NEOX: pair (i, i + n_rot/2) */
            const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + half : 2 * i + 1;
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = v[i0], b = v[i1];
            v[i0] = a * c - b * s;
            v[i1] = a * s + b * c;
        }
    }
}

void tw_rope(float *x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos, float theta_base,
             float freq_scale, const float *freq_factors, int mode)
{
    float stack[512];
    float *cs = n_rot <= 512 ? stack : malloc((size_t)n_rot * sizeof *cs);
    if (!cs) {                                   /* out of memory: one pair at a time */
        for (int64_t i = 0; i < n_rot / 2; i++) {
            float one[2];
            double th = (double)freq_scale * (double)pos * pow((double)theta_base, -2.0 * (double)i / (double)n_rot);
            if (freq_factors) th /= (double)freq_factors[i];
            one[0] = (float)cos(th);
            one[1] = (float)sin(th);
            for (int64_t h = 0; h < n_heads; h++) {
                float *v = x + h * head_dim;
                const int64_t i0 = mode == 2 ? i : 2 * i, i1 = mode == 2 ? i + n_rot / 2 : 2 * i + 1;
                const float a = v[i0], b = v[i1];
                v[i0] = a * one[0] - b * one[1];
                v[i1] = a * one[1] + b * one[0];
            }
        }
        return;
    }
    tw_rope_table(cs, n_rot, pos, theta_base, freq_scale, freq_factors);
    tw_rope_apply(x, n_heads, head_dim, n_rot, cs, mode);
    if (cs != stack) free(cs);
}

/* ---- matrix products --------------------------------------------------------------------- */

static bool valid_shape(tw_type type, int64_t C)
{
    if (C < 0 || !tw_quant_supported(type)) return false;
    const tw_type_info *t = tw_type_get((uint32_t)type);
    return t && C % t->block == 0;
}

static int resolve_threads(int n_threads)
{
    return n_threads > 0 ? n_threads : omp_get_max_threads();
}

/* ---- the thread pool ------------------------------------------------------------------ */
/* Why not an OpenMP parallel-for: its end barrier waits for every thread of the team, and
 * on a loaded machine (this project's 2 shared cores often run 6 jobs) a worker that is
 * not scheduled stalls the caller for a whole time slice. Measured (bench_kernels --only
 * token / a standalone loop over the 211 Q4_1 matmuls of a SmolLM2 decode step, load ~3
 * from other jobs, median of 40): 1 thread 6.4 ms, 2 threads with this pool 10.1 ms,
 * 2 OpenMP threads 16-25 ms with a p90 of 72-1650 ms.
 * Here the caller claims chunks itself and only waits for chunks another thread has
 * *started*; a worker that arrives late finds nothing left and goes back to waiting.
 *
 * One job at a time: the job's chunk counter carries its generation in the high 32 bits,
 * and workers claim chunks with a compare-and-swap that fails once the generation moved
 * on, so a stale worker can never take a chunk of a later job. A second caller that
 * finds the pool busy (another thread's matmul) runs its chunks inline. Workers are
 * detached threads started on first use (at most TW_POOL_MAX), spinning ~100 us after a
 * job (decode issues the next matmul within microseconds) and then sleeping on a
 * condition variable. Process-wide state, like OpenMP's own thread pool. */
#define TW_POOL_MAX 63

static struct pool {
    pthread_mutex_t mu;           /* guards the fields up to `joined` */
    pthread_cond_t cv;
    pthread_mutex_t busy;         /* held by the caller whose job runs */
    int n_workers, n_sleeping;
    uint64_t gen;                 /* job generation; also read without mu (atomic) */
    tw_chunk_fn fn;
    void *arg;
    int64_t n_chunks;
    int max_helpers, joined;
    uint64_t next;                /* atomic: gen << 32 | next chunk index */
    int64_t done;                 /* atomic: chunks finished in the current job */
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claim and run chunks of job `gen` until none is left (or the job is over). */
static void pool_run_chunks(uint64_t gen, tw_chunk_fn fn, void *arg, int64_t n, int slot)
{
    const uint64_t tag = gen & 0xffffffffu;
    for (;;) {
        uint64_t v = __atomic_load_n(&g_pool.next, __ATOMIC_ACQUIRE);
        for (;;) {
            if ((v >> 32) != tag || (int64_t)(v & 0xffffffffu) >= n) return;
            if (__atomic_compare_exchange_n(&g_pool.next, &v, v + 1, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) break;
        }
        fn(arg, (int64_t)(v & 0xffffffffu), slot);
        __atomic_add_fetch(&g_pool.done, 1, __ATOMIC_RELEASE);
    }
}

static void *pool_worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&g_pool.mu);
    uint64_t seen = g_pool.gen;
    for (;;) {
        if (g_pool.gen == seen) {
            /* spin a little without the lock, then sleep */
            pthread_mutex_unlock(&g_pool.mu);
            const double t0 = mono_now();
            for (int i = 1; __atomic_load_n(&g_pool.gen, __ATOMIC_ACQUIRE) == seen; i++) {
                cpu_relax();
                if ((i & 255) == 0 && mono_now() - t0 > 100e-6) break;
            }
            pthread_mutex_lock(&g_pool.mu);
            while (g_pool.gen == seen) {
                g_pool.n_sleeping++;
                pthread_cond_wait(&g_pool.cv, &g_pool.mu);
                g_pool.n_sleeping--;
            }
        }
        seen = g_pool.gen;
        if (g_pool.joined < g_pool.max_helpers) {
            const int slot = ++g_pool.joined;
            const tw_chunk_fn fn = g_pool.fn;
            void *arg = g_pool.arg;
            const int64_t n = g_pool.n_chunks;
            pthread_mutex_unlock(&g_pool.mu);
            pool_run_chunks(seen, fn, arg, n, slot);
            pthread_mutex_lock(&g_pool.mu);
        }
    }
    return NULL;
}

void tw_parallel_for(int64_t n_chunks, int n_threads, tw_chunk_fn fn, void *arg)
{
    if (n_chunks <= 0) return;
    int nt = resolve_threads(n_threads);
    if (nt > TW_POOL_MAX + 1) nt = TW_POOL_MAX + 1;
    if ((int64_t)nt > n_chunks) nt = (int)n_chunks;
    if (n_chunks > 0x7fffffff || nt <= 1 || pthread_mutex_trylock(&g_pool.busy) != 0) {
        for (int64_t c = 0; c < n_chunks; c++) fn(arg, c, 0);
        return;
    }
    pthread_mutex_lock(&g_pool.mu);
    while (g_pool.n_workers < nt - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        const int rc = pthread_create(&th, &at, pool_worker, NULL);
        pthread_attr_destroy(&at);
        if (rc != 0) break;                       /* fewer helpers; still correct */
        g_pool.n_workers++;
    }
    const uint64_t gen = g_pool.gen + 1;
    g_pool.fn = fn;
    g_pool.arg = arg;
    g_pool.n_chunks = n_chunks;
    g_pool.max_helpers = nt - 1;
    g_pool.joined = 0;
    __atomic_store_n(&g_pool.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_pool.next, (gen & 0xffffffffu) << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&g_pool.gen, gen, __ATOMIC_RELEASE);
    if (g_pool.n_sleeping > 0) pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);

    pool_run_chunks(gen, fn, arg, n_chunks, 0);
    /* every chunk is claimed; wait for the ones other threads are still running */
    for (int i = 1; __atomic_load_n(&g_pool.done, __ATOMIC_ACQUIRE) < n_chunks; i++) {
        cpu_relax();
        if ((i & 1023) == 0) sched_yield();       /* let a preempted helper finish */
    }
    pthread_mutex_unlock(&g_pool.busy);
}

/* ---- matrix product drivers ---------------------------------------------------------------- */

/* Rows per chunk: enough work (~32k weights) per chunk that claiming it is noise, small
 * enough to balance 2..16 threads on R >= 576. Which thread computes a row never changes
 * its value. */
static int64_t row_chunk(int64_t C)
{
    int64_t c = 32768 / (C > 0 ? C : 1);
    return c < 1 ? 1 : c > 64 ? 64 : c;
}

/* Use threads only when the product is big enough to pay for waking them. */
static int threads_for(int nt, int64_t B, int64_t R, int64_t C)
{
    return (double)B * (double)R * (double)C < 65536.0 ? 1 : nt;
}

static void fill_nan(float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = NAN;
}

/* What the chunk functions below share. */
typedef struct mm_job {
    float *out;
    const float *x;
    const void *xa;               /* activation rows (quantized or float) */
    size_t xa_row;                /* bytes per activation row */
    const uint8_t *W;
    tw_type type;
    int64_t B, R, C, chunk;       /* chunk: rows of W per chunk */
    size_t rb;                    /* bytes per row of W */
    const tw_kernel_ops *ops;
    float *bufs;                  /* sgemm: one tile buffer per slot */
} mm_job;

/* Rows path: out[b, r] = vec_dot(W row r, activation row b). */
static void chunk_rows(void *arg, int64_t c, int slot)
{
    (void)slot;
    const mm_job *j = arg;
    const int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->R ? r0 + j->chunk : j->R;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->rb;
        for (int64_t b = 0; b < j->B; b++)
            j->out[b * j->R + r] = j->ops->vec_dot(j->type, w, (const uint8_t *)j->xa + (size_t)b * j->xa_row, j->C);
    }
}

/* llama.cpp's order: out[b, r] for four activation rows at a time (tw_kernel_ops.dot_ggml). */
static void chunk_ggml(void *arg, int64_t c, int slot)
{
    (void)slot;
    const mm_job *j = arg;
    const int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->R ? r0 + j->chunk : j->R, nb = j->C / 32;
    for (int64_t b0 = 0; b0 < j->B; b0 += 4) {
        const int nr = j->B - b0 < 4 ? (int)(j->B - b0) : 4;
        const tw_block_q8a *y[4];
        for (int k = 0; k < nr; k++) y[k] = (const tw_block_q8a *)((const uint8_t *)j->xa + (size_t)(b0 + k) * j->xa_row);
        /* up to four weight rows per call (the kernels tile them: see dot_ggml) */
        for (int64_t r = r0; r < r1;) {
            const int nw = r1 - r >= 4 ? 4 : r1 - r >= 2 ? 2 : 1;
            float o[16];
            j->ops->dot_ggml(j->type, o, j->W + (size_t)r * j->rb, j->rb, nw, y, nr, nb);
            for (int i = 0; i < nw; i++)
                for (int k = 0; k < nr; k++) j->out[(b0 + k) * j->R + r + i] = o[i * nr + k];
            r += nw;
        }
    }
}

static bool g_ggml_order_off;

bool tw_matmul_ggml_order(tw_type type)
{
    return type == TW_TYPE_Q4_1 && !__atomic_load_n(&g_ggml_order_off, __ATOMIC_RELAXED);
}

void tw_kernels_set_ggml_order(bool on)
{
    __atomic_store_n(&g_ggml_order_off, !on, __ATOMIC_RELAXED);
}

/* Float activations, W dequantized on the fly a piece at a time (no allocation):
 * out[b, r] = sum over pieces of dot(piece, x_b). PIECE is a multiple of 256. */
#define PIECE 1024
#define BGROUP 16
static void chunk_float_rows(void *arg, int64_t c, int slot)
{
    (void)slot;
    const mm_job *j = arg;
    const tw_type_info *ti = tw_type_get((uint32_t)j->type);
    const int64_t r0 = c * j->chunk, r1 = r0 + j->chunk < j->R ? r0 + j->chunk : j->R;
    const int64_t B = j->B, C = j->C;
    float piece[PIECE];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->rb;
        for (int64_t b0 = 0; b0 < B; b0 += BGROUP) {
            const int64_t nb = B - b0 < BGROUP ? B - b0 : BGROUP;
            float acc[BGROUP] = {0};
            for (int64_t k = 0; k < C; k += PIECE) {
                const int64_t len = C - k < PIECE ? C - k : PIECE;
                j->ops->dequant(j->type, piece, w + (size_t)(k / ti->block) * ti->bytes, len);
                for (int64_t b = 0; b < nb; b++) acc[b] += j->ops->dot_f32(piece, j->x + (b0 + b) * C + k, len);
            }
            for (int64_t b = 0; b < nb; b++) j->out[(b0 + b) * j->R + r] = acc[b];
        }
    }
}

static void matmul_rows(mm_job *j, int nt, bool float_deq)
{
    const bool plain = j->type == TW_TYPE_F32 || j->type == TW_TYPE_F16 || j->type == TW_TYPE_BF16;
    if (float_deq && plain) {                     /* float weights: the rows path is exact */
        j->xa = j->x;
        j->xa_row = (size_t)j->C * sizeof(float);
        float_deq = false;
    }
    j->chunk = row_chunk(j->C);
    tw_parallel_for((j->R + j->chunk - 1) / j->chunk, nt, float_deq ? chunk_float_rows : chunk_rows, j);
}

/* Rows of W per sgemm call: a fixed tile (not derived from the thread count) so results
 * do not depend on n_threads. 64 rows x C floats stays in L2 for C <= 2048. */
#define SGEMM_TILE 64

static void chunk_sgemm(void *arg, int64_t t, int slot)
{
    const mm_job *j = arg;
    const int64_t r0 = t * SGEMM_TILE, C = j->C;
    const int64_t rows = j->R - r0 < SGEMM_TILE ? j->R - r0 : SGEMM_TILE;
    const float *wt;
    if (j->type == TW_TYPE_F32) {
        wt = (const float *)j->W + r0 * C;
    } else {
        float *buf = j->bufs + (size_t)slot * SGEMM_TILE * (size_t)C;
        for (int64_t r = 0; r < rows; r++) j->ops->dequant(j->type, buf + r * C, j->W + (size_t)(r0 + r) * j->rb, C);
        wt = buf;
    }
    tw_sgemm_nt(j->out + r0, j->R, j->x, C, wt, C, j->B, rows, C, false);
}

/* out (B, R) = x (B, C) · W^T with W dequantized tile by tile and each tile multiplied by
 * gemm.c's single-threaded tw_sgemm_nt on one of our threads. false when the tile buffers
 * cannot be allocated. */
static bool matmul_sgemm(mm_job *j, int nt)
{
    const int64_t ntiles = (j->R + SGEMM_TILE - 1) / SGEMM_TILE;
    if (nt > ntiles) nt = (int)ntiles;
    if (nt > TW_POOL_MAX + 1) nt = TW_POOL_MAX + 1;
    j->bufs = NULL;
    if (j->type != TW_TYPE_F32) {
        j->bufs = malloc((size_t)nt * SGEMM_TILE * (size_t)j->C * sizeof(float));
        if (!j->bufs) return false;
    }
    tw_parallel_for(ntiles, nt, chunk_sgemm, j);
    free(j->bufs);
    return true;
}

/* ---- the batched integer GEMM driver ---- */

typedef struct qg_job {
    float *out;
    const uint8_t *W, *act;
    size_t rb, act_row, scratch_bytes;
    tw_type type;
    int64_t B, R, C;
    const tw_qgemm_ops *g;
    uint8_t *scratch;             /* one per slot */
} qg_job;

/* One chunk: TW_QGEMM_ROWS weight rows against every activation row. */
static void chunk_qgemm(void *arg, int64_t t, int slot)
{
    const qg_job *j = arg;
    const int64_t r0 = t * TW_QGEMM_ROWS;
    const int64_t n = j->R - r0 < TW_QGEMM_ROWS ? j->R - r0 : TW_QGEMM_ROWS;
    j->g->tile(j->out + r0, j->R, j->W + (size_t)r0 * j->rb, j->rb, j->type, n, j->act, j->act_row, j->B, j->C,
               j->scratch + (size_t)slot * j->scratch_bytes);
}

typedef struct qa_job {
    const tw_qgemm_ops *g;
    tw_type type;
    uint8_t *act;
    const float *x;
    size_t act_row;
    int64_t C;
} qa_job;

static void chunk_qgemm_act(void *arg, int64_t b, int slot)
{
    (void)slot;
    const qa_job *j = arg;
    j->g->prepare_act(j->type, j->act + (size_t)b * j->act_row, j->x + b * j->C, j->C);
}

/* false when memory is short (the caller falls back) */
static bool matmul_qgemm(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                         int nt)
{
    const tw_qgemm_ops *g = tw_kernels_avx512_qgemm();
    const int64_t ntiles = (R + TW_QGEMM_ROWS - 1) / TW_QGEMM_ROWS;
    if (nt > ntiles) nt = (int)ntiles;
    if (nt > TW_POOL_MAX + 1) nt = TW_POOL_MAX + 1;
    if (nt < 1) nt = 1;
    const size_t act_row = (g->act_bytes(type, C) + 63) & ~(size_t)63;
    const size_t sb = (g->scratch_bytes(type, C) + 63) & ~(size_t)63;
    uint8_t *act = aligned_alloc(64, act_row * (size_t)B);
    uint8_t *scratch = aligned_alloc(64, sb * (size_t)nt);
    if (!act || !scratch) {
        free(act);
        free(scratch);
        return false;
    }
    qa_job a = {.g = g, .type = type, .act = act, .x = x, .act_row = act_row, .C = C};
    tw_parallel_for(B, B * C >= 65536 ? nt : 1, chunk_qgemm_act, &a);
    qg_job j = {.out = out, .W = W, .act = act, .rb = tw_type_row_bytes(type, C), .act_row = act_row,
                .scratch_bytes = sb, .type = type, .B = B, .R = R, .C = C, .g = g, .scratch = scratch};
    tw_parallel_for(ntiles, nt, chunk_qgemm, &j);
    free(act);
    free(scratch);
    return true;
}

static void matmul_impl(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                        int n_threads, bool force_ggml);

void tw_matmul(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
               int n_threads)
{
    matmul_impl(out, x, W, type, B, R, C, n_threads, false);
}

void tw_matmul_ggml(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                    int n_threads)
{
    matmul_impl(out, x, W, type, B, R, C, n_threads, type == TW_TYPE_Q4_1 || type == TW_TYPE_Q8_0);
}

static void matmul_impl(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                        int n_threads, bool force_ggml)
{
    if (B <= 0 || R <= 0) return;
    if (!valid_shape(type, C)) {
        fill_nan(out, B * R);
        return;
    }
    mm_job j = {.out = out, .x = x, .W = W, .type = type, .B = B, .R = R, .C = C,
                .rb = tw_type_row_bytes(type, C), .ops = tw_kernels_ops()};
    const int nt = threads_for(resolve_threads(n_threads), B, R, C);
    const bool ggml_order = (force_ggml || tw_matmul_ggml_order(type)) && C > 0;
    if (!ggml_order) {
        if (j.ops != tw_kernels_scalar_ops() && B >= tw_matmul_sgemm_min_b(type) && C > 0 && matmul_sgemm(&j, nt)) return;
        if (C > 0 && B >= tw_matmul_int_gemm_min_b(type) && matmul_qgemm(out, x, W, type, B, R, C, nt)) return;
    }
    const tw_type at = tw_matmul_act_type(type);
    if (at == TW_TYPE_F32 || C == 0) {
        j.xa = x;
        j.xa_row = (size_t)C * sizeof(float);
        matmul_rows(&j, nt, false);
        return;
    }
    j.xa_row = act_row_bytes(type, C);
    uint8_t *xa = malloc((size_t)B * j.xa_row);
    if (!xa) {                                    /* out of memory: the exact path needs none */
        matmul_rows(&j, nt, true);
        return;
    }
    for (int64_t b = 0; b < B; b++) {
        if (at == TW_TYPE_Q8_0) j.ops->quantize_q8a((tw_block_q8a *)(xa + (size_t)b * j.xa_row), x + b * C, C);
        else j.ops->quantize_q8k((tw_block_q8k *)(xa + (size_t)b * j.xa_row), x + b * C, C);
    }
    j.xa = xa;
    if (ggml_order) {
        j.chunk = row_chunk(C);
        tw_parallel_for((R + j.chunk - 1) / j.chunk, nt, chunk_ggml, &j);
    } else {
        matmul_rows(&j, nt, false);
    }
    free(xa);
}

void tw_matmul_float(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C,
                     int n_threads)
{
    if (B <= 0 || R <= 0) return;
    if (!valid_shape(type, C)) {
        fill_nan(out, B * R);
        return;
    }
    mm_job j = {.out = out, .x = x, .W = W, .type = type, .B = B, .R = R, .C = C,
                .rb = tw_type_row_bytes(type, C), .ops = tw_kernels_ops()};
    const int nt = threads_for(resolve_threads(n_threads), B, R, C);
    if (j.ops != tw_kernels_scalar_ops() && B >= float_sgemm_min_b() && C > 0 && matmul_sgemm(&j, nt)) return;
    matmul_rows(&j, nt, true);
}

void tw_matmul_ref(float *out, const float *x, const void *W, tw_type type, int64_t B, int64_t R, int64_t C)
{
    if (B <= 0 || R <= 0) return;
    if (!valid_shape(type, C)) {
        fill_nan(out, B * R);
        return;
    }
    /* dequantized a piece at a time on the stack: the reference needs no allocation */
    const size_t rb = tw_type_row_bytes(type, C);
    const tw_type_info *ti = tw_type_get((uint32_t)type);
    float piece[PIECE];
    for (int64_t r = 0; r < R; r++) {
        const uint8_t *w = (const uint8_t *)W + (size_t)r * rb;
        for (int64_t b = 0; b < B; b++) {
            double s = 0.0;
            for (int64_t k = 0; k < C; k += PIECE) {
                const int64_t len = C - k < PIECE ? C - k : PIECE;
                tw_dequantize_row(type, piece, w + (size_t)(k / ti->block) * ti->bytes, len);
                for (int64_t j = 0; j < len; j++) s += (double)piece[j] * x[b * C + k + j];
            }
            out[b * R + r] = (float)s;
        }
    }
}

void tw_get_row(float *out, const void *W, tw_type type, int64_t r, int64_t C)
{
    if (!valid_shape(type, C)) {
        fill_nan(out, C);
        return;
    }
    tw_kernels_ops()->dequant(type, out, (const uint8_t *)W + (size_t)r * tw_type_row_bytes(type, C), C);
}
