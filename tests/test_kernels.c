/* test_kernels.c — the inference kernels (src/model/kernels.h) against their references.
 *
 * Tolerances (docs/kernels.md), all relative to the natural scale of a dot product,
 * S = ||w_r|| * ||x_b|| (Cauchy-Schwarz bound of |out|):
 *  - tw_matmul, quantized W, small B (activations rounded to 8 bits): the hard bound of
 *    the rounding is 0.023 S (blocks of 32) / 0.063 S (blocks of 256), see kernels.h; we
 *    assert max error <= 0.01 S and RMS error <= 0.002 S on Gaussian data (observed:
 *    max 3.8e-3 S and RMS 1.3e-3 S at C = 32, a single block; ~1e-3 S max at C >= 256);
 *  - everything without activation rounding (F32/F16/BF16 weights, tw_matmul_float, the
 *    sgemm path for B >= tw_matmul_sgemm_min_b(t)): 1e-6 S (float32 accumulation over
 *    C <= 768; observed <= 1.6e-7 S);
 *  - AVX2 / AVX-512 row dots and the batched integer GEMM vs scalar with the same rounded
 *    activations: the integer sums agree, only float accumulation order differs: 2e-6 S;
 *  - the activation quantizers vs ggml's (fixture): bytewise equal; our products vs ggml's
 *    vec_dot on ggml-quantized weights (fixture): 5e-7 S;
 *  - dequantization (tw_get_row, AVX2 and scalar): bitwise equal to tw_dequantize_row;
 *  - small ops vs double references: 1e-6 relative (rmsnorm), 3e-6 relative per element
 *    + 1e-12 (softmax), 3e-6 relative (swiglu); add exact.
 * Every matmul test runs once per available path (AVX-512 VNNI, AVX2 when the CPU has
 * them, and forced scalar), so a machine without them still checks everything it can run. */
#include "testutil.h"

#include "base/base.h"
#include "model/gguf.h"
#include "model/half.h"
#include "model/kernels.h"
#include "model/quant.h"

#include <math.h>

static const tw_type ALL_TYPES[] = {TW_TYPE_F32,  TW_TYPE_F16,  TW_TYPE_BF16, TW_TYPE_Q8_0,
                                    TW_TYPE_Q4_0, TW_TYPE_Q4_1, TW_TYPE_Q5_0, TW_TYPE_Q5_1,
                                    TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
#define N_TYPES (sizeof ALL_TYPES / sizeof ALL_TYPES[0])

static bool is_quant(tw_type t) { return tw_matmul_act_type(t) != TW_TYPE_F32; }
static bool is_k(tw_type t) { return tw_matmul_act_type(t) == TW_TYPE_Q8_K; }
static const char *tname(tw_type t) { return tw_type_get((uint32_t)t)->name; }

static void fill_normal(float *x, int64_t n, uint64_t seed, double scale)
{
    tw_rng r;
    tw_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * tw_rng_normal(&r));
}

/* R rows of C Gaussian weights (row scales vary 0.5..2, a few outliers per row, like real
 * weights), quantized to t. Caller frees. */
static void *make_weights(tw_type t, int64_t R, int64_t C, uint64_t seed)
{
    float *f = malloc((size_t)(R * C) * sizeof *f);
    fill_normal(f, R * C, seed, 0.05);
    tw_rng r;
    tw_rng_seed(&r, seed ^ 0x9e3779b97f4a7c15ull);
    for (int64_t i = 0; i < R; i++) {
        const float s = (float)(0.5 + 1.5 * tw_rng_uniform(&r));
        for (int64_t k = 0; k < C; k++) f[i * C + k] *= s;
        f[i * C + (int64_t)tw_rng_below(&r, (uint64_t)C)] *= 8.0f;
    }
    const size_t rb = tw_type_row_bytes((uint32_t)t, (uint64_t)C);
    cr_assert(rb > 0, "%s: C = %lld not a multiple of the block", tname(t), (long long)C);
    uint8_t *w = malloc(rb * (size_t)R);
    for (int64_t i = 0; i < R; i++) tw_quantize_row(t, w + (size_t)i * rb, f + i * C, C);
    free(f);
    return w;
}

/* ||dequantized row r|| for each row */
static double *row_norms(const void *W, tw_type t, int64_t R, int64_t C)
{
    double *n = malloc((size_t)R * sizeof *n);
    float *row = malloc((size_t)C * sizeof *row);
    const size_t rb = tw_type_row_bytes((uint32_t)t, (uint64_t)C);
    for (int64_t i = 0; i < R; i++) {
        tw_dequantize_row(t, row, (const uint8_t *)W + (size_t)i * rb, C);
        double s = 0;
        for (int64_t k = 0; k < C; k++) s += (double)row[k] * row[k];
        n[i] = sqrt(s);
    }
    free(row);
    return n;
}

static double *vec_norms(const float *x, int64_t B, int64_t C)
{
    double *n = malloc((size_t)B * sizeof *n);
    for (int64_t b = 0; b < B; b++) {
        double s = 0;
        for (int64_t k = 0; k < C; k++) s += (double)x[b * C + k] * x[b * C + k];
        n[b] = sqrt(s);
    }
    return n;
}

typedef struct errstat {
    double max, rms;     /* of |a - b| / (||w_r|| ||x_b||) */
} errstat;

static errstat compare(const float *a, const float *b, const double *wn, const double *xn, int64_t B, int64_t R)
{
    errstat e = {0, 0};
    for (int64_t i = 0; i < B; i++)
        for (int64_t r = 0; r < R; r++) {
            const double s = wn[r] * xn[i] > 0 ? wn[r] * xn[i] : 1.0;
            const double d = fabs((double)a[i * R + r] - (double)b[i * R + r]) / s;
            if (!(d == d)) return (errstat){INFINITY, INFINITY};   /* NaN */
            if (d > e.max) e.max = d;
            e.rms += d * d;
        }
    e.rms = sqrt(e.rms / (double)(B * R));
    return e;
}

/* the paths this machine can run, best first: AVX-512 (VNNI GEMM for batches), AVX2,
 * scalar. Path index p: 0 .. n_paths() - 1; the last one is always scalar. */
static tw_kernel_path g_paths[3];
static int n_paths(void)
{
    int n = 0;
    if (tw_kernels_avx512_qgemm()) g_paths[n++] = TW_KPATH_AVX512;
    if (tw_kernels_avx2_ops()) g_paths[n++] = TW_KPATH_AVX2;
    g_paths[n++] = TW_KPATH_SCALAR;
    return n;
}
static void set_path(int p)
{
    n_paths();
    tw_kernels_force_path(g_paths[p]);
}
static bool path_scalar(int p) { return p == n_paths() - 1; }
/* the row kernels of path p */
static const tw_kernel_ops *path_ops(int p)
{
    n_paths();
    return g_paths[p] == TW_KPATH_SCALAR ? tw_kernels_scalar_ops()
           : g_paths[p] == TW_KPATH_AVX2 ? tw_kernels_avx2_ops() : tw_kernels_avx512_ops();
}
static const char *path_name(int p)
{
    n_paths();
    return g_paths[p] == TW_KPATH_AVX512 ? "avx512" : g_paths[p] == TW_KPATH_AVX2 ? "avx2" : "scalar";
}

typedef struct shape {
    int64_t R, C;
} shape;

/* C: multiples of 256 for every type, and of 32 only for the legacy/plain types;
 * R not a multiple of any unroll or chunk. */
static const shape SHAPES_K[] = {{37, 256}, {67, 768}};
static const shape SHAPES_32[] = {{37, 32}, {67, 96}, {13, 576}};
static const int64_t BATCHES[] = {1, 2, 7, 64};

static void check_matmul_type(tw_type t, bool use_float)
{
    for (int pass = 0; pass < 2; pass++) {
        const shape *sh = pass == 0 ? SHAPES_K : SHAPES_32;
        const int nsh = pass == 0 ? 2 : 3;
        if (pass == 1 && is_k(t)) break;
        for (int s = 0; s < nsh; s++) {
            const int64_t R = sh[s].R, C = sh[s].C;
            void *W = make_weights(t, R, C, 1000 + (uint64_t)t * 10 + (uint64_t)s);
            double *wn = row_norms(W, t, R, C);
            for (size_t bi = 0; bi < sizeof BATCHES / sizeof BATCHES[0]; bi++) {
                const int64_t B = BATCHES[bi];
                float *x = malloc((size_t)(B * C) * sizeof *x);
                fill_normal(x, B * C, 77 + (uint64_t)B, 1.0);
                double *xn = vec_norms(x, B, C);
                float *ref = malloc((size_t)(B * R) * sizeof *ref), *out = malloc((size_t)(B * R) * sizeof *out);
                tw_matmul_ref(ref, x, W, t, B, R, C);
                /* mode 0: the default B threshold; 1: sgemm from B = 2; 2: never sgemm — so
                 * both sides of the threshold are checked whatever the table says */
                for (int mode = 0; mode < 3; mode++)
                for (int p = 0; p < n_paths(); p++) {
                    if (mode > 0 && (path_scalar(p) || B == 1)) continue;       /* scalar: no sgemm */
                    tw_kernels_set_sgemm_min_b(mode == 1 ? 2 : mode == 2 ? INT64_MAX : 0);
                    set_path(p);
                    for (int64_t i = 0; i < B * R; i++) out[i] = -12345.0f;   /* every output written */
                    if (use_float) tw_matmul_float(out, x, W, t, B, R, C, 1);   /* threads: see deterministic_across_threads */
                    else tw_matmul(out, x, W, t, B, R, C, 1);
                    const errstat e = compare(out, ref, wn, xn, B, R);
                    const bool rounded = !use_float && is_quant(t) &&
                                         (tw_matmul_ggml_order(t) || !(tw_kernels_simd() && B >= tw_matmul_sgemm_min_b(t)));
                    tw_kernels_set_sgemm_min_b(0);
                    if (getenv("TW_KERNELS_VERBOSE"))
                        fprintf(stderr, "%-5s %-6s %s mode %d B=%-3lld R=%-3lld C=%-4lld max %.2e rms %.2e\n", tname(t),
                                path_name(p), use_float ? "float" : "matmul", mode, (long long)B, (long long)R,
                                (long long)C, e.max, e.rms);
                    if (rounded) {
                        cr_assert(e.max <= 0.01 && e.rms <= 0.002,
                                  "%s %s B=%lld R=%lld C=%lld: max err %.3g rms %.3g of ||w|| ||x||", tname(t),
                                  path_name(p), (long long)B, (long long)R, (long long)C, e.max, e.rms);
                    } else {
                        cr_assert(e.max <= 1e-6, "%s %s %s B=%lld R=%lld C=%lld: max err %.3g of ||w|| ||x||", tname(t),
                                  path_name(p), use_float ? "float" : "matmul", (long long)B, (long long)R,
                                  (long long)C, e.max);
                    }
                }
                tw_kernels_force_scalar(false);
                free(x); free(xn); free(ref); free(out);
            }
            free(W); free(wn);
        }
    }
}

Test(kernels, matmul_every_type_vs_ref)
{
    for (size_t i = 0; i < N_TYPES; i++) check_matmul_type(ALL_TYPES[i], false);
}

Test(kernels, matmul_float_every_type_vs_ref)
{
    for (size_t i = 0; i < N_TYPES; i++) check_matmul_type(ALL_TYPES[i], true);
}

/* The AVX2 path against the scalar one with the same rounded activations: the integer
 * sums are identical, only float accumulation differs. Also the quantizers byte for byte. */
Test(kernels, simd_matches_scalar)
{
    const tw_kernel_ops *simd = tw_kernels_avx2_ops(), *sc = tw_kernels_scalar_ops();
    if (!simd) {
        cr_log_warn("no AVX2+FMA+F16C on this CPU: only the scalar path is tested");
        cr_assert(!tw_kernels_simd());
        return;
    }
    const int64_t C = 1024, R = 19;
    float *x = malloc(C * sizeof *x);
    fill_normal(x, C, 5, 1.0);
    x[3] = 0.0f;
    for (int k = 32; k < 64; k++) x[k] = 0.0f;          /* an all-zero block: d = 0 */
    x[100] = 127.5f / 127.0f * 2.0f;                     /* values at rounding ties are */
    x[101] = 2.0f;                                       /* handled identically */
    tw_block_q8a qa[2][C / 32];
    tw_block_q8k qk[2][C / 256];
    sc->quantize_q8a(qa[0], x, C);
    simd->quantize_q8a(qa[1], x, C);
    sc->quantize_q8k(qk[0], x, C);
    simd->quantize_q8k(qk[1], x, C);
    cr_assert(memcmp(qa[0], qa[1], sizeof qa[0]) == 0, "q8a bytes differ between scalar and AVX2");
    cr_assert(memcmp(qk[0], qk[1], sizeof qk[0]) == 0, "q8k bytes differ between scalar and AVX2");
    cr_assert(qa[0][1].d == 0 && qa[0][1].s == 0 && qa[0][1].qs[5] == 0, "zero block");
    /* the quantizer itself: q = round(x * 127 / amax), bsums = sums of 16 */
    for (int i = 0; i < C / 256; i++)
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += qk[0][i].qs[16 * g + j];
            cr_assert_eq(qk[0][i].bsums[g], s);
        }
    for (int j = 0; j < 32; j++) {
        const float d = tw_fp16_to_fp32(qa[0][0].d);      /* fp16(amax / 127): rounded */
        const float want = nearbyintf(x[j] / d);
        cr_assert(fabsf((float)qa[0][0].qs[j] - want) <= 1.0f, "q8a element %d", j);
        cr_assert(fabsf(d * qa[0][0].qs[j] - x[j]) <= d * 0.51f, "q8a rounding %d", j);
    }
    double xn = 0;
    for (int64_t k = 0; k < C; k++) xn += (double)x[k] * x[k];
    xn = sqrt(xn);
    for (size_t t = 0; t < N_TYPES; t++) {
        const tw_type ty = ALL_TYPES[t];
        void *W = make_weights(ty, R, C, 300 + t);
        double *wn = row_norms(W, ty, R, C);
        const size_t rb = tw_type_row_bytes((uint32_t)ty, (uint64_t)C);
        const void *xa = tw_matmul_act_type(ty) == TW_TYPE_Q8_0 ? (const void *)qa[0]
                         : tw_matmul_act_type(ty) == TW_TYPE_Q8_K ? (const void *)qk[0] : (const void *)x;
        /* the AVX2 row dots and (where the CPU has it) the AVX-512 VNNI ones */
        const tw_kernel_ops *tables[2] = {simd, tw_kernels_avx512_ops()};
        for (int v = 0; v < 2 && tables[v]; v++)
            for (int64_t r = 0; r < R; r++) {
                const float a = sc->vec_dot(ty, (const uint8_t *)W + r * rb, xa, C);
                const float b = tables[v]->vec_dot(ty, (const uint8_t *)W + r * rb, xa, C);
                cr_assert(fabs((double)a - b) <= 2e-6 * wn[r] * xn, "%s row %lld: scalar %.9g %s %.9g", tname(ty),
                          (long long)r, a, tables[v]->name, b);
            }
        free(W);
        free(wn);
    }
    free(x);
}

/* The activation quantizers against ggml's own (tests/ref/gen_kernel_fixtures.py calls
 * quantize_row_q8_0 / q8_1 / q8_K of the pip llama_cpp package's libggml-cpu.so): byte
 * for byte, on every path, including rounding ties, zero blocks, outliers, an fp16
 * overflowing scale and a negative largest element. */
Test(kernels, activation_quantizers_match_ggml)
{
    size_t len;
    uint8_t *f = NULL;
    tw_error e;
    cr_assert_eq(tw_file_read("tests/data/kernels/q8_act.bin", (char **)&f, &len, &e), TW_OK, "%s", e.msg);
    cr_assert(len >= 16 && memcmp(f, "TWQ8", 4) == 0);
    uint32_t hdr[3];
    memcpy(hdr, f + 4, 12);
    const uint32_t rows = hdr[1], n = hdr[2];
    cr_assert(hdr[0] == 1 && n % 256 == 0 && rows > 0);
    const size_t b0 = n / 32 * 34, b1 = n / 32 * 36, bk = n / 256 * 292;
    cr_assert_eq(len, 16 + rows * (n * 4 + b0 + b1 + bk));
    const uint8_t *X = f + 16, *Q0 = X + (size_t)rows * n * 4, *Q1 = Q0 + rows * b0, *QK = Q1 + rows * b1;
    float *x = malloc(n * sizeof *x);
    tw_block_q8a *qa = malloc(n / 32 * sizeof *qa);
    tw_block_q8k *qk = malloc(n / 256 * sizeof *qk);
    int checked = 0;
    for (int p = 0; p < n_paths(); p++) {
        const tw_kernel_ops *ops = path_ops(p);
        for (uint32_t r = 0; r < rows; r++) {
            memcpy(x, X + (size_t)r * n * 4, n * 4);
            ops->quantize_q8a(qa, x, n);
            ops->quantize_q8k(qk, x, n);
            cr_assert(memcmp(qa, Q1 + r * b1, b1) == 0, "%s row %u: q8a differs from ggml's q8_1", ops->name, r);
            for (uint32_t b = 0; b < n / 32; b++) {      /* q8_0 = (d, qs) of q8_1 */
                const uint8_t *g = Q0 + r * b0 + b * 34;
                cr_assert(memcmp(g, &qa[b].d, 2) == 0 && memcmp(g + 2, qa[b].qs, 32) == 0,
                          "%s row %u block %u: q8a differs from ggml's q8_0", ops->name, r, b);
            }
            cr_assert(memcmp(qk, QK + r * bk, bk) == 0, "%s row %u: q8k differs from ggml's q8_K", ops->name, r);
            checked++;
        }
        /* the public entry points take the path in use */
        set_path(p);
        memcpy(x, X, n * 4);
        tw_quantize_q8a(qa, x, n);
        cr_assert(memcmp(qa, Q1, b1) == 0);
        tw_quantize_q8k(qk, x, n);
        cr_assert(memcmp(qk, QK, bk) == 0);
    }
    tw_kernels_force_path(TW_KPATH_AUTO);
    cr_assert(checked >= 8);
    free(x); free(qa); free(qk); free(f);
}

/* The products against ggml's own (tests/ref/gen_kernel_fixtures.py: weights quantized by
 * ggml_quantize_chunk, each output = ggml's vec_dot of the weight row with the activation
 * row quantized by the type's vec_dot_type, i.e. what llama.cpp's CPU backend computes):
 * same activation bytes, same integer sums and scale products, so only the float
 * accumulation order differs: 5e-7 S (observed 3.4e-8 S; a float instead of ggml's fp16
 * activation scale moves a block's product by up to 2^-11 relative), on every path, with
 * and without the batched GEMM. */
Test(kernels, products_match_ggml_vec_dot)
{
    size_t len;
    uint8_t *f = NULL;
    tw_error e;
    cr_assert_eq(tw_file_read("tests/data/kernels/vec_dot.bin", (char **)&f, &len, &e), TW_OK, "%s", e.msg);
    cr_assert(len >= 12 && memcmp(f, "TWVD", 4) == 0);
    uint32_t h[2];
    memcpy(h, f + 4, 8);
    cr_assert(h[0] == 1 && h[1] == 8);
    size_t off = 12;
    double worst = 0;
    for (uint32_t k = 0; k < h[1]; k++) {
        uint32_t d[4];
        cr_assert(off + 16 <= len);
        memcpy(d, f + off, 16);
        off += 16;
        const tw_type t = (tw_type)d[0];
        const int64_t R = d[1], C = d[2], B = d[3];
        const size_t rb = tw_type_row_bytes((uint32_t)t, (uint64_t)C);
        cr_assert(rb > 0 && off + R * rb + (size_t)(B * C + B * R) * 4 <= len, "type %u", d[0]);
        uint8_t *W = malloc(R * rb);          /* aligned copies (fp16 fields) */
        float *x = malloc((size_t)(B * C) * sizeof *x), *want = malloc((size_t)(B * R) * sizeof *want);
        float *out = malloc((size_t)(B * R) * sizeof *out);
        memcpy(W, f + off, R * rb);
        off += R * rb;
        memcpy(x, f + off, (size_t)(B * C) * 4);
        off += (size_t)(B * C) * 4;
        memcpy(want, f + off, (size_t)(B * R) * 4);
        off += (size_t)(B * R) * 4;
        double *wn = row_norms(W, t, R, C), *xn = vec_norms(x, B, C);
        for (int p = 0; p < n_paths(); p++)
            for (int gm = 0; gm < 2; gm++) {
                set_path(p);
                tw_kernels_set_int_gemm_min_b(gm ? 1 : INT64_MAX);
                tw_kernels_set_sgemm_min_b(INT64_MAX);
                tw_matmul(out, x, W, t, B, R, C, 1);
                for (int64_t i = 0; i < B * R; i++) {
                    const double s = wn[i % R] * xn[i / R], err = fabs((double)out[i] - want[i]) / s;
                    if (err > worst) worst = err;
                    cr_assert(err <= 5e-7, "%s %s%s out[%lld]: %.9g, ggml %.9g", tname(t), path_name(p),
                              gm ? " gemm" : "", (long long)i, out[i], want[i]);
                }
            }
        tw_kernels_set_int_gemm_min_b(0);
        tw_kernels_set_sgemm_min_b(0);
        tw_kernels_force_path(TW_KPATH_AUTO);
        free(W); free(x); free(want); free(out); free(wn); free(xn);
    }
    cr_assert_eq(off, len);
    if (getenv("TW_KERNELS_VERBOSE")) fprintf(stderr, "worst |ours - ggml| = %.3g S\n", worst);
    free(f);
}

/* The batched integer GEMM (AVX-512 VNNI) against the scalar row dots with the same
 * activation bytes: the integer sums are identical, only the float accumulation order
 * differs (2e-6 S). Odd shapes: R not a multiple of the 16-row tile, B = 1..33 (not a
 * multiple of the 8-row register block), C a multiple of 32 or 256. Within the GEMM every
 * output is bitwise independent of B and of where its row falls in a register block. */
Test(kernels, int_gemm_matches_scalar)
{
    if (!tw_kernels_avx512_qgemm()) {
        cr_log_warn("no AVX-512 VNNI on this CPU: the batched GEMM is not tested here");
        cr_assert(tw_matmul_int_gemm_min_b(TW_TYPE_Q4_0) == INT64_MAX);
        return;
    }
    const tw_type types[] = {TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1, TW_TYPE_Q5_0,
                             TW_TYPE_Q5_1, TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
    const shape shapes[] = {{1, 32}, {17, 96}, {37, 256}, {16, 576}};
    const shape shapes_k[] = {{1, 256}, {17, 512}, {37, 256}, {16, 768}};
    for (size_t t = 0; t < 8; t++)
        for (size_t si = 0; si < 4; si++) {
            const shape sh = is_k(types[t]) ? shapes_k[si] : shapes[si];
            const int64_t R = sh.R, C = sh.C, BMAX = 33;
            void *W = make_weights(types[t], R, C, 700 + t * 10 + si);
            double *wn = row_norms(W, types[t], R, C);
            float *x = malloc((size_t)(BMAX * C) * sizeof *x);
            fill_normal(x, BMAX * C, 800 + t, 1.0);
            x[3] = 0.0f;
            for (int64_t k = 0; k < 32 && C > 32; k++) x[C + k] = 0.0f;      /* a zero block */
            double *xn = vec_norms(x, BMAX, C);
            float *ref = malloc((size_t)(BMAX * R) * sizeof *ref), *out = malloc((size_t)(BMAX * R) * sizeof *out);
            float *one = malloc((size_t)R * sizeof *one);
            tw_kernels_force_path(TW_KPATH_SCALAR);
            tw_matmul(ref, x, W, types[t], BMAX, R, C, 1);
            tw_kernels_force_path(TW_KPATH_AVX512);
            tw_kernels_set_int_gemm_min_b(1);
            for (int64_t B = 1; B <= BMAX; B += (si == 1 ? 1 : 8)) {
                for (int64_t i = 0; i < B * R; i++) out[i] = -12345.0f;
                tw_matmul(out, x, W, types[t], B, R, C, 2);
                for (int64_t b = 0; b < B; b++)
                    for (int64_t r = 0; r < R; r++)
                        cr_assert(fabs((double)out[b * R + r] - ref[b * R + r]) <= 2e-6 * wn[r] * xn[b],
                                  "%s R=%lld C=%lld B=%lld [%lld,%lld]: gemm %.9g scalar %.9g", tname(types[t]),
                                  (long long)R, (long long)C, (long long)B, (long long)b, (long long)r,
                                  out[b * R + r], ref[b * R + r]);
                /* the last row alone (B = 1) gives the same bits */
                tw_matmul(one, x + (B - 1) * C, W, types[t], 1, R, C, 1);
                cr_assert(memcmp(one, out + (B - 1) * R, (size_t)R * sizeof *one) == 0,
                          "%s B=%lld: row %lld differs from the same row alone", tname(types[t]), (long long)B,
                          (long long)(B - 1));
            }
            tw_kernels_set_int_gemm_min_b(0);
            tw_kernels_force_path(TW_KPATH_AUTO);
            free(W); free(wn); free(x); free(xn); free(ref); free(out); free(one);
        }
}

/* The path selector: each forced path is the one reported, and the thresholds follow. */
Test(kernels, path_selector)
{
    tw_kernels_force_path(TW_KPATH_SCALAR);
    cr_assert_eq(tw_kernels_path(), TW_KPATH_SCALAR);
    cr_assert(!tw_kernels_simd());
    cr_assert_eq(tw_matmul_int_gemm_min_b(TW_TYPE_Q4_1), INT64_MAX);
    tw_kernels_force_path(TW_KPATH_AVX2);
    cr_assert_eq(tw_kernels_path(), tw_kernels_avx2_ops() ? TW_KPATH_AVX2 : TW_KPATH_SCALAR);
    cr_assert_eq(tw_matmul_int_gemm_min_b(TW_TYPE_Q4_1), INT64_MAX, "no GEMM on the AVX2 path");
    cr_assert(tw_matmul_sgemm_min_b(TW_TYPE_Q4_1) < INT64_MAX, "AVX2: sgemm for large B");
    tw_kernels_force_path(TW_KPATH_AVX512);
    if (tw_kernels_avx512_qgemm()) {
        cr_assert_eq(tw_kernels_path(), TW_KPATH_AVX512);
        cr_assert(tw_matmul_int_gemm_min_b(TW_TYPE_Q4_1) < INT64_MAX);
        cr_assert_eq(tw_matmul_int_gemm_min_b(TW_TYPE_F16), INT64_MAX);
        cr_assert_eq(tw_matmul_sgemm_min_b(TW_TYPE_Q4_1), INT64_MAX, "integer path at every B");
        cr_assert(tw_matmul_sgemm_min_b(TW_TYPE_F16) < INT64_MAX);
    } else {
        cr_assert_neq(tw_kernels_path(), TW_KPATH_AVX512);
    }
    tw_kernels_force_path(TW_KPATH_AUTO);
}

/* Dequantization: AVX2 and tw_get_row bitwise equal to the reference, on random bytes
 * (every bit pattern of the quants; finite fp16 scales). */
Test(kernels, dequant_bitwise)
{
    const int64_t C = 512, R = 5;
    tw_rng r;
    tw_rng_seed(&r, 11);
    for (size_t t = 0; t < N_TYPES; t++) {
        const tw_type ty = ALL_TYPES[t];
        const size_t rb = tw_type_row_bytes((uint32_t)ty, (uint64_t)C);
        uint8_t *W = malloc(rb * R);
        for (size_t i = 0; i < rb * R; i++) W[i] = (uint8_t)tw_rng_next(&r);
        /* keep every 16-bit word a finite fp16 / bf16 / float (no NaN/inf patterns) so
         * "bitwise" is meaningful: set exponent bits below all-ones */
        if (ty == TW_TYPE_F16)
            for (size_t i = 1; i < rb * R; i += 2) W[i] &= 0xbb;
        else if (ty == TW_TYPE_BF16 || ty == TW_TYPE_F32)
            for (size_t i = 1; i < rb * R; i += 2) W[i] &= 0xbf;
        else {
            /* the fp16 scales of each block: d (and dmin/m) at fixed offsets */
            const tw_type_info *ti = tw_type_get((uint32_t)ty);
            const size_t nblk = rb * R / ti->bytes;
            for (size_t b = 0; b < nblk; b++) {
                uint8_t *blk = W + b * ti->bytes;
                if (ty == TW_TYPE_Q6_K) blk[209] &= 0x3b;
                else {
                    blk[1] &= 0x3b;
                    if (ty == TW_TYPE_Q4_1 || ty == TW_TYPE_Q5_1 || ty == TW_TYPE_Q4_K || ty == TW_TYPE_Q5_K) blk[3] &= 0x3b;
                }
            }
        }
        float *ref = malloc(C * sizeof *ref), *got = malloc(C * sizeof *got);
        for (int p = 0; p < n_paths(); p++) {
            set_path(p);
            for (int64_t i = 0; i < R; i++) {
                tw_dequantize_row(ty, ref, W + i * rb, C);
                tw_get_row(got, W, ty, i, C);
                cr_assert(memcmp(ref, got, C * sizeof *ref) == 0, "%s row %lld (%s): tw_get_row differs", tname(ty),
                          (long long)i, tw_kernels_ops()->name);
                if (tw_kernels_avx2_ops()) {
                    tw_kernels_avx2_ops()->dequant(ty, got, W + i * rb, 256);
                    cr_assert(memcmp(ref, got, 256 * sizeof *ref) == 0, "%s: one-block dequant differs", tname(ty));
                }
            }
        }
        tw_kernels_force_scalar(false);
        free(W); free(ref); free(got);
    }
}

/* Each output is computed by one thread in a fixed order: bitwise the same for any
 * thread count, on every path (rounded, sgemm, float). */
Test(kernels, deterministic_across_threads)
{
    const int64_t R = 301, C = 512;
    const tw_type types[] = {TW_TYPE_Q4_1, TW_TYPE_Q6_K, TW_TYPE_F16};
    for (size_t t = 0; t < 3; t++) {
        void *W = make_weights(types[t], R, C, 400 + t);
        for (int64_t B = 1; B <= 41; B += 20) {
            float *x = malloc((size_t)(B * C) * sizeof *x);
            fill_normal(x, B * C, 9, 1.0);
            float *o1 = malloc((size_t)(B * R) * sizeof *o1), *o2 = malloc((size_t)(B * R) * sizeof *o2);
            for (int f = 0; f < 2; f++) {
                void (*mm)(float *, const float *, const void *, tw_type, int64_t, int64_t, int64_t, int) =
                    f ? tw_matmul_float : tw_matmul;
                mm(o1, x, W, types[t], B, R, C, 1);
                for (int nt = 2; nt <= 4; nt++) {
                    mm(o2, x, W, types[t], B, R, C, nt);
                    cr_assert(memcmp(o1, o2, (size_t)(B * R) * sizeof *o1) == 0, "%s B=%lld %s: %d threads differ from 1",
                              tname(types[t]), (long long)B, f ? "float" : "matmul", nt);
                }
                mm(o2, x, W, types[t], B, R, C, 0);
                cr_assert(memcmp(o1, o2, (size_t)(B * R) * sizeof *o1) == 0, "n_threads = 0 (all)");
            }
            free(x); free(o1); free(o2);
        }
        free(W);
    }
}

/* tw_parallel_for: every chunk exactly once, slots in range and never shared by two
 * running chunks, nested calls run inline, repeated jobs do not mix. */
typedef struct pf_state {
    int counts[1000];
    int slot_busy[8];
    int bad_slot, overlap, nested_ok;
} pf_state;

static void pf_inner(void *arg, int64_t c, int slot)
{
    (void)slot;
    __atomic_add_fetch((int *)arg + c, 1, __ATOMIC_RELAXED);
}

static void pf_chunk(void *arg, int64_t c, int slot)
{
    pf_state *s = arg;
    if (slot < 0 || slot >= 4) {
        __atomic_store_n(&s->bad_slot, 1, __ATOMIC_RELAXED);
        return;
    }
    if (__atomic_exchange_n(&s->slot_busy[slot], 1, __ATOMIC_ACQ_REL)) __atomic_store_n(&s->overlap, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&s->counts[c], 1, __ATOMIC_RELAXED);
    if (c == 17) {
        int inner[10] = {0};
        tw_parallel_for(10, 3, pf_inner, inner);
        int ok = 1;
        for (int i = 0; i < 10; i++) ok &= inner[i] == 1;
        __atomic_store_n(&s->nested_ok, ok, __ATOMIC_RELAXED);
    }
    for (volatile int spin = 0; spin < 200; spin++) {}
    __atomic_store_n(&s->slot_busy[slot], 0, __ATOMIC_RELEASE);
}

Test(kernels, parallel_for_each_chunk_once)
{
    pf_state *s = calloc(1, sizeof *s);
    for (int rep = 0; rep < 20; rep++) {
        memset(s, 0, sizeof *s);
        const int64_t n = 1 + rep * 47 % 1000;
        tw_parallel_for(n, 4, pf_chunk, s);
        for (int64_t c = 0; c < 1000; c++)
            cr_assert_eq(s->counts[c], c < n ? 1 : 0, "job %d (n = %lld): chunk %lld ran %d times", rep, (long long)n,
                         (long long)c, s->counts[c]);
        cr_assert(!s->bad_slot && !s->overlap, "slot out of range or shared");
        if (n > 17) cr_assert(s->nested_ok, "nested tw_parallel_for ran every inner chunk once");
    }
    tw_parallel_for(0, 4, pf_chunk, s);           /* no chunks: nothing runs */
    free(s);
}

/* Caller bugs are visible: an unsupported type or a C that is not a multiple of the block
 * gives NaN outputs; empty shapes touch nothing. */
Test(kernels, bad_shapes)
{
    float x[64] = {0}, out[4];
    uint8_t W[1024] = {0};
    for (int i = 0; i < 4; i++) out[i] = 1.0f;
    tw_matmul(out, x, W, TW_TYPE_Q4_K, 1, 2, 64, 1);       /* 64 is not a multiple of 256 */
    cr_assert(isnan(out[0]) && isnan(out[1]) && out[2] == 1.0f);
    tw_matmul_float(out, x, W, TW_TYPE_Q2_K, 1, 1, 256, 1); /* unsupported */
    cr_assert(isnan(out[0]));
    out[0] = 1.0f;
    tw_matmul(out, x, W, TW_TYPE_F32, 0, 4, 16, 1);
    tw_matmul(out, x, W, TW_TYPE_F32, 1, 0, 16, 1);
    cr_assert(out[0] == 1.0f, "empty shapes write nothing");
    tw_matmul(out, x, W, TW_TYPE_Q8_0, 1, 2, 0, 1);        /* C = 0: empty sums */
    cr_assert(out[0] == 0.0f && out[1] == 0.0f);
    tw_get_row(out, W, TW_TYPE_Q4_0, 0, 3);
    cr_assert(isnan(out[0]) && isnan(out[2]));
}

/* ---- small ops -------------------------------------------------------------------------- */


Test(kernels, rmsnorm_vs_double)
{
    const int64_t ns[] = {1, 7, 576, 1001};
    for (int p = 0; p < n_paths(); p++)
        for (size_t k = 0; k < 4; k++) {
            const int64_t n = ns[k];
            float *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            fill_normal(x, n, 21 + k, 3.0);
            fill_normal(w, n, 22 + k, 1.0);
            for (int wi = 0; wi < 2; wi++) {
                const float *wt = wi ? w : NULL;
                tw_rmsnorm_ref(a, x, wt, n, 1e-5f);
                path_ops(p)->rmsnorm(b, x, wt, n, 1e-5f);
                for (int64_t i = 0; i < n; i++)
                    cr_assert(fabsf(a[i] - b[i]) <= 1e-6f * fabsf(a[i]) + 1e-30f, "%s n=%lld i=%lld: %.9g vs %.9g",
                              path_ops(p)->name, (long long)n, (long long)i, b[i], a[i]);
            }
            /* mean square of the unweighted output is 1 / (1 + eps / ms) */
            tw_rmsnorm(b, x, NULL, n, 0.0f);
            double ms = 0;
            for (int64_t i = 0; i < n; i++) ms += (double)b[i] * b[i];
            cr_assert(fabs(ms / n - 1.0) < 1e-5, "normalized mean square %.9g", ms / n);
            memcpy(b, x, n * sizeof *b);                  /* in place */
            tw_rmsnorm(b, b, w, n, 1e-5f);
            tw_rmsnorm_ref(a, x, w, n, 1e-5f);
            for (int64_t i = 0; i < n; i++) cr_assert(fabsf(a[i] - b[i]) <= 1e-6f * fabsf(a[i]) + 1e-30f);
            free(x); free(w); free(a); free(b);
        }
    tw_kernels_force_scalar(false);
}

Test(kernels, softmax_vs_double)
{
    const int64_t ns[] = {1, 5, 8, 77, 1024};
    for (int p = 0; p < n_paths(); p++)
        for (size_t k = 0; k < 5; k++) {
            const int64_t n = ns[k];
            float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            fill_normal(a, n, 31 + k, 8.0);          /* spread: exp over ~[-60, 0] */
            if (n > 4) {
                a[1] = -INFINITY;                     /* masked */
                a[n - 1] = 88.0f;                     /* large logits are shifted, not overflowed */
                a[2] = 88.0f - 100.0f;                /* exp(-100): underflows to 0 in float */
            }
            memcpy(b, a, n * sizeof *a);
            tw_softmax_ref(a, n);
            path_ops(p)->softmax(b, n);
            double sum = 0;
            for (int64_t i = 0; i < n; i++) {
                cr_assert(fabsf(a[i] - b[i]) <= 3e-6f * a[i] + 1e-12f, "%s n=%lld i=%lld: %.9g vs %.9g",
                          path_ops(p)->name, (long long)n, (long long)i, b[i], a[i]);
                sum += b[i];
            }
            cr_assert(fabs(sum - 1.0) < 1e-5);
            if (n > 4) cr_assert(b[1] == 0.0f, "-inf gives exactly 0");
            free(a); free(b);
        }
}

Test(kernels, swiglu_and_add)
{
    const int64_t n = 1543;
    float *g = malloc(n * sizeof *g), *u = malloc(n * sizeof *u), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    fill_normal(g, n, 41, 4.0);
    fill_normal(u, n, 42, 1.0);
    g[0] = -100.0f;    /* silu -> -0 */
    g[1] = 100.0f;     /* silu -> g */
    g[2] = 0.0f;
    g[3] = -87.5f;     /* exp(87.5) is finite */
    g[4] = -89.0f;     /* exp(89) overflows to inf: g / inf = -0 */
    tw_swiglu_ref(a, g, u, n);
    for (int p = 0; p < n_paths(); p++) {
        path_ops(p)->swiglu(b, g, u, n);
        for (int64_t i = 0; i < n; i++)
            cr_assert(fabsf(a[i] - b[i]) <= 3e-6f * fabsf(a[i]) + 1e-30f, "%s i=%lld g=%g: %.9g vs %.9g",
                      path_ops(p)->name, (long long)i, g[i], b[i], a[i]);
        path_ops(p)->add(b, g, u, n);
        for (int64_t i = 0; i < n; i++) cr_assert(b[i] == g[i] + u[i], "add is exact");
    }
    cr_assert(fabsf(b[1] - (100.0f + u[1])) == 0.0f);
    memcpy(b, g, n * sizeof *b);
    tw_swiglu(b, b, u, n);                            /* out aliasing gate */
    for (int64_t i = 0; i < n; i++) cr_assert(fabsf(a[i] - b[i]) <= 3e-6f * fabsf(a[i]) + 1e-30f);
    free(g); free(u); free(a); free(b);
}

/* ---- RoPE --------------------------------------------------------------------------- */

/* A hand example: head_dim = n_rot = 4, pos = 1, base 10000: the pairs turn by
 * theta_0 = 1 and theta_1 = 10000^(-1/2) = 0.01 rad. x = (1, 2, 3, 4).
 *   NORMAL pairs (x0, x1) by 1, (x2, x3) by 0.01:
 *     (cos1 - 2 sin1, sin1 + 2 cos1, 3 cos.01 - 4 sin.01, 3 sin.01 + 4 cos.01)
 *   NEOX pairs (x0, x2) by 1, (x1, x3) by 0.01:
 *     (cos1 - 3 sin1, 2 cos.01 - 4 sin.01, sin1 + 3 cos1, 2 sin.01 + 4 cos.01)
 * with cos 1 = 0.5403023059, sin 1 = 0.8414709848, cos .01 = 0.9999500004,
 * sin .01 = 0.0099998333. */
Test(kernels, rope_hand_example)
{
    float x[4] = {1, 2, 3, 4};
    tw_rope(x, 1, 4, 4, 1, 10000.0f, 1.0f, NULL, 0);
    const float normal[4] = {-1.1426396637f, 1.9220755965f, 2.9598506679f, 4.0297995017f};
    for (int i = 0; i < 4; i++) cr_assert(fabsf(x[i] - normal[i]) <= 5e-7f, "normal[%d] = %.9g", i, x[i]);
    float y[4] = {1, 2, 3, 4};
    tw_rope(y, 1, 4, 4, 1, 10000.0f, 1.0f, NULL, 2);
    const float neox[4] = {-1.9841106486f, 1.9599006675f, 2.4623779024f, 4.0197996683f};
    for (int i = 0; i < 4; i++) cr_assert(fabsf(y[i] - neox[i]) <= 5e-7f, "neox[%d] = %.9g", i, y[i]);
    /* position 0 is the identity */
    float z[4] = {1, 2, 3, 4};
    tw_rope(z, 1, 4, 4, 0, 10000.0f, 1.0f, NULL, 2);
    cr_assert(z[0] == 1 && z[1] == 2 && z[2] == 3 && z[3] == 4);
}

/* n_rot < head_dim leaves the tail alone; heads are independent; freq_factors divide and
 * freq_scale multiplies the angle; NEOX on x equals NORMAL on x with its halves
 * interleaved (the row permutation llama.cpp's converter applies to q/k weights). */
Test(kernels, rope_properties)
{
    const int64_t H = 3, D = 64, NR = 32;
    float *x = malloc(H * D * sizeof *x), *a = malloc(H * D * sizeof *a), *b = malloc(H * D * sizeof *b);
    fill_normal(x, H * D, 51, 1.0);
    memcpy(a, x, H * D * sizeof *x);
    tw_rope(a, H, D, NR, 1234, 500000.0f, 1.0f, NULL, 2);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = NR; i < D; i++) cr_assert(a[h * D + i] == x[h * D + i], "dims past n_rot unchanged");
    /* each head alone gives the same */
    memcpy(b, x + D, D * sizeof *x);
    tw_rope(b, 1, D, NR, 1234, 500000.0f, 1.0f, NULL, 2);
    cr_assert(memcmp(b, a + D, D * sizeof *b) == 0);
    /* norms of rotated pairs are kept */
    for (int64_t i = 0; i < NR / 2; i++) {
        const double n0 = hypot(x[i], x[i + NR / 2]), n1 = hypot(a[i], a[i + NR / 2]);
        cr_assert(fabs(n0 - n1) < 1e-5 * (n0 + 1e-3));
    }
    /* neox(x) == unpermute(normal(permute(x))) */
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < NR / 2; i++) {
            b[h * D + 2 * i] = x[h * D + i];
            b[h * D + 2 * i + 1] = x[h * D + i + NR / 2];
        }
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = NR; i < D; i++) b[h * D + i] = x[h * D + i];
    tw_rope(b, H, D, NR, 1234, 500000.0f, 1.0f, NULL, 0);
    for (int64_t h = 0; h < H; h++)
        for (int64_t i = 0; i < NR / 2; i++) {
            cr_assert(b[h * D + 2 * i] == a[h * D + i]);
            cr_assert(b[h * D + 2 * i + 1] == a[h * D + i + NR / 2]);
        }
    /* freq factors: factor f_i at position p == no factor at each pair's angle / f_i; with
     * all factors 2 that is position p/2; freq_scale 0.5 does the same */
    float ff[16];
    for (int i = 0; i < 16; i++) ff[i] = 2.0f;
    memcpy(a, x, H * D * sizeof *x);
    memcpy(b, x, H * D * sizeof *x);
    tw_rope(a, H, D, NR, 1000, 10000.0f, 1.0f, ff, 0);
    tw_rope(b, H, D, NR, 500, 10000.0f, 1.0f, NULL, 0);
    for (int64_t i = 0; i < H * D; i++) cr_assert(fabsf(a[i] - b[i]) < 1e-6f, "freq factors");
    memcpy(a, x, H * D * sizeof *x);
    tw_rope(a, H, D, NR, 1000, 10000.0f, 0.5f, NULL, 0);
    for (int64_t i = 0; i < H * D; i++) cr_assert(fabsf(a[i] - b[i]) < 1e-6f, "freq scale");
    /* the table + apply split is the same computation */
    float cs[32];
    tw_rope_table(cs, NR, 77, 10000.0f, 1.0f, NULL);
    memcpy(a, x, H * D * sizeof *x);
    memcpy(b, x, H * D * sizeof *x);
    tw_rope_apply(a, H, D, NR, cs, 2);
    tw_rope(b, H, D, NR, 77, 10000.0f, 1.0f, NULL, 2);
    cr_assert(memcmp(a, b, H * D * sizeof *a) == 0);
    cr_assert(fabsf(cs[0] - cosf(77.0f)) < 1e-6f && fabsf(cs[1] - sinf(77.0f)) < 1e-6f);
    free(x); free(a); free(b);
}

/* ---- the real model ------------------------------------------------------------------ */

static const char *smollm2_path(void)
{
    const char *p = getenv("TW_SMOLLM2");
    static char buf[1024];
    if (p) return p;
    snprintf(buf, sizeof buf, "%s/.cache/tunewise/models/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME") ? getenv("HOME") : "");
    return buf;
}

/* Real Q4_1 weights (their value distribution, not ours): a projection and 512 rows of
 * the embedding (49152 x 576) against the reference, on both paths. */
Test(kernels, smollm2_real_weights)
{
    const char *path = smollm2_path();
    if (!tw_file_exists(path))
        cr_assert_fail("the SmolLM2-135M-Instruct Q4_1 model is not at %s: run scripts/get-models.sh (or set TW_SMOLLM2)", path);
    tw_gguf *g;
    tw_error e;
    cr_assert_eq(tw_gguf_open(&g, path, &e), TW_OK, "%s", e.msg);
    const char *names[] = {"blk.0.ffn_down.weight", "token_embd.weight"};
    for (int k = 0; k < 2; k++) {
        const tw_gguf_tensor *t = tw_gguf_tensor_find(g, names[k]);
        cr_assert_not_null(t, "%s", names[k]);
        const int64_t C = t->ne[0], R = t->ne[1] < 512 ? t->ne[1] : 512;
        for (int64_t B = 1; B <= 16; B += 15) {
            float *x = malloc((size_t)(B * C) * sizeof *x);
            fill_normal(x, B * C, 61, 1.0);
            double *xn = vec_norms(x, B, C), *wn = row_norms(t->data, t->type, R, C);
            float *ref = malloc((size_t)(B * R) * sizeof *ref), *out = malloc((size_t)(B * R) * sizeof *out);
            tw_matmul_ref(ref, x, t->data, t->type, B, R, C);
            for (int p = 0; p < n_paths(); p++) {
                set_path(p);
                tw_matmul(out, x, t->data, t->type, B, R, C, 2);
                const errstat es = compare(out, ref, wn, xn, B, R);
                const bool rounded = tw_matmul_ggml_order(t->type) || !(tw_kernels_simd() && B >= tw_matmul_sgemm_min_b(t->type));
                cr_assert(es.max <= (rounded ? 0.01 : 1e-6) && es.rms <= (rounded ? 0.002 : 1e-6),
                          "%s %s B=%lld: max %.3g rms %.3g", names[k], tw_kernels_ops()->name, (long long)B, es.max, es.rms);
                tw_matmul_float(out, x, t->data, t->type, B, R, C, 2);
                cr_assert(compare(out, ref, wn, xn, B, R).max <= 1e-6, "%s float path", names[k]);
            }
            tw_kernels_force_scalar(false);
            free(x); free(xn); free(wn); free(ref); free(out);
        }
        float *row = malloc(C * sizeof *row), *want = malloc(C * sizeof *want);
        tw_get_row(row, t->data, t->type, 123, C);
        tw_dequantize_row(t->type, want, (const uint8_t *)t->data + 123 * tw_type_row_bytes(t->type, C), C);
        cr_assert(memcmp(row, want, C * sizeof *row) == 0);
        free(row); free(want);
    }
    tw_gguf_free(g);
}

/* Q4_1 and Q8_0 products in llama.cpp's float order (tw_matmul_ggml; tw_matmul takes it
 * for Q4_1 by default, tw_matmul_ggml_order): every path
 * (scalar with libm fmaf, AVX2, the AVX-512 table) gives the same bits, whatever the batch
 * size (each output element is summed the same way for B = 1 and B = 37), and the result
 * is the exact order's: a straightforward C transcription of it, computed here from the
 * quantized activation blocks, is bit-equal. */
Test(kernels, ggml_order_products_bitwise)
{
    const tw_type types[] = {TW_TYPE_Q4_1, TW_TYPE_Q8_0};
    const int64_t R = 19, C = 576, B = 37;
    const tw_kernel_path paths[] = {TW_KPATH_SCALAR, TW_KPATH_AVX2, TW_KPATH_AVX512};
    for (size_t ti = 0; ti < 2; ti++) {
        const tw_type t = types[ti];
        cr_assert(tw_matmul_ggml_order(t) == (t == TW_TYPE_Q4_1));   /* Q8_0: only through tw_matmul_ggml */
        void *W = make_weights(t, R, C, 50 + ti);
        float *x = malloc((size_t)(B * C) * sizeof *x), *ref = malloc((size_t)(B * R) * sizeof *ref);
        float *got = malloc((size_t)(B * R) * sizeof *got), *one = malloc((size_t)R * sizeof *one);
        fill_normal(x, B * C, 60 + ti, 1.0);
        x[5] = 40.0f;   /* an outlier activation, as SmolLM2 has */
        /* the reference: quantize each row (bytes checked against libggml elsewhere), then
         * the order written out in plain C */
        const size_t rb = tw_type_row_bytes((uint32_t)t, (uint64_t)C);
        tw_block_q8a *ya = malloc((size_t)(C / 32) * sizeof *ya);
        for (int64_t b = 0; b < B; b++) {
            tw_kernels_force_path(TW_KPATH_SCALAR);
            tw_quantize_q8a(ya, x + b * C, C);
            tw_kernels_force_path(TW_KPATH_AUTO);
            for (int64_t r = 0; r < R; r++) {
                float acc[8] = {0}, summs = 0;
                for (int64_t i = 0; i < C / 32; i++) {
                    int q[32];
                    float dw;
                    if (t == TW_TYPE_Q4_1) {
                        const tw_block_q4_1 *w = (const tw_block_q4_1 *)((const uint8_t *)W + (size_t)r * rb) + i;
                        dw = tw_fp16_to_fp32(w->d);
                        summs = fmaf(tw_fp16_to_fp32(w->m), tw_fp16_to_fp32(ya[i].s), summs);
                        for (int k = 0; k < 16; k++) {
                            q[k] = w->qs[k] & 15;
                            q[k + 16] = w->qs[k] >> 4;
                        }
                    } else {
                        const tw_block_q8_0 *w = (const tw_block_q8_0 *)((const uint8_t *)W + (size_t)r * rb) + i;
                        dw = tw_fp16_to_fp32(w->d);
                        for (int k = 0; k < 32; k++) q[k] = w->qs[k];
                    }
                    const float dd = dw * tw_fp16_to_fp32(ya[i].d);
                    for (int l = 0; l < 8; l++) {
                        int lane = 0;
                        for (int k = 4 * l; k < 4 * l + 4; k++) lane += q[k] * ya[i].qs[k];
                        acc[l] = fmaf(dd, (float)lane, acc[l]);
                    }
                }
                float v = ((acc[4] + acc[0]) + (acc[6] + acc[2])) + ((acc[5] + acc[1]) + (acc[7] + acc[3]));
                ref[b * R + r] = t == TW_TYPE_Q4_1 ? v + summs : v;
            }
        }
        for (size_t pi = 0; pi < 3; pi++) {
            tw_kernels_force_path(paths[pi]);
            if (tw_kernels_path() != paths[pi]) continue;   /* the CPU lacks it */
            tw_matmul_ggml(got, x, W, t, B, R, C, 2);
            cr_assert_eq(memcmp(got, ref, (size_t)(B * R) * sizeof *got), 0, "%s path %d: not the exact order", tname(t),
                         (int)paths[pi]);
            for (int64_t b = 0; b < B; b += 9) {
                tw_matmul_ggml(one, x + b * C, W, t, 1, R, C, 1);
                cr_assert_eq(memcmp(one, ref + b * R, (size_t)R * sizeof *one), 0, "%s path %d: B = 1 differs (row %lld)",
                             tname(t), (int)paths[pi], (long long)b);
            }
        }
        tw_kernels_force_path(TW_KPATH_AUTO);
        free(ya);
        free(W);
        free(x);
        free(ref);
        free(got);
        free(one);
    }
}
