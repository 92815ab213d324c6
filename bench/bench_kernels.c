/* bench_kernels.c — throughput of the inference kernels (src/model/kernels.h).
 *
 *   build/bench/bench_kernels [--quick] [--types q4_1,q8_0,...] [--reps-time S]
 *                             [--only token|sgemm|decode|prefill|threshold|gemm|scalar] [--threads N]
 *
 * 1. OpenBLAS sgemm peak (square 1024 and 2048, 1 and 2 OpenBLAS threads): what the
 *    prefill path and LoRA training can hope for on this machine.
 * 2. tw_matmul for each weight type at SmolLM2-135M shapes (R x C = 576x576 q/o, 192x576
 *    k/v are smaller, 1536x576 gate/up, 576x1536 down, 49152x576 the tied output), B = 1
 *    (decode: GB/s of weight bytes is the figure of merit) and B = 512 (prefill:
 *    GFLOP/s), 1 and 2 threads. --quick: B = 1 only and fewer types.
 * 3. The B threshold between the integer path and dequantize + sgemm (both paths timed at
 *    B = 2..64 with tw_kernels_set_sgemm_min_b).
 * 3b. (gemm) GFLOP/s per quantized type at B = 1, 2, 4, 8, 16, 64, 512 of the three
 *    ways to multiply: integer row dots, the batched integer GEMM, dequantize + sgemm.
 * 4. The scalar path at B = 1 for comparison, and the small ops.
 * 5. (token) all matmuls of one SmolLM2 decode step, best and median of 30.
 * Each figure is the best of repeated runs for at least --reps-time seconds (default 0.3):
 * the machine is shared, best-of filters out other jobs. Not a test: nothing is asserted;
 * figures go to bench/RESULTS.md by hand. */
#include "base/base.h"
#include "model/kernels.h"
#include "model/quant.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double g_min_time = 0.3;

/* Run fn until g_min_time has passed (at least 3 calls), return the fastest call. */
#define TIME_BEST(out_best, stmt)                                                     \
    do {                                                                              \
        double t_start_ = tw_now(), best_ = 1e30;                                    \
        int n_ = 0;                                                                   \
        while (n_ < 3 || tw_now() - t_start_ < g_min_time) {                          \
            double t0_ = tw_now();                                                    \
            stmt;                                                                     \
            double dt_ = tw_now() - t0_;                                              \
            if (dt_ < best_) best_ = dt_;                                             \
            n_++;                                                                     \
        }                                                                             \
        (out_best) = best_;                                                           \
    } while (0)

static void fill(float *x, int64_t n, uint64_t seed, double scale)
{
    tw_rng r;
    tw_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * tw_rng_normal(&r));
}

static void *make_weights(tw_type t, int64_t R, int64_t C)
{
    const size_t rb = tw_type_row_bytes((uint32_t)t, (uint64_t)C);
    uint8_t *w = malloc(rb * (size_t)R);
    float *row = malloc((size_t)C * sizeof *row);
    if (!w || !row) exit(1);
    for (int64_t i = 0; i < R; i++) {
        fill(row, C, (uint64_t)i + 1, 0.05);
        tw_quantize_row(t, w + (size_t)i * rb, row, C);
    }
    free(row);
    return w;
}

static void bench_sgemm(void)
{
    printf("## OpenBLAS sgemm peak (C = A B, square, row-major, no transposes)\n\n");
    printf("| n | OpenBLAS threads | GFLOP/s |\n|---|---|---|\n");
    const int old = openblas_get_num_threads();
    for (int n = 1024; n <= 2048; n *= 2) {
        float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b),
              *c = malloc((size_t)n * n * sizeof *c);
        fill(a, (int64_t)n * n, 1, 1.0);
        fill(b, (int64_t)n * n, 2, 1.0);
        for (int th = 1; th <= 2; th++) {
            openblas_set_num_threads(th);
            double t;
            TIME_BEST(t, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n));
            printf("| %d | %d | %.1f |\n", n, th, 2.0 * n * n * n / t / 1e9);
            fflush(stdout);
        }
        free(a); free(b); free(c);
    }
    openblas_set_num_threads(old);
    printf("\n");
}

typedef struct shape {
    const char *what;
    int64_t R, C;
} shape;

static const shape SHAPES[] = {
    {"attn q/o", 576, 576}, {"ffn gate/up", 1536, 576}, {"ffn down", 576, 1536}, {"output", 49152, 576}};

static void bench_matmul(const tw_type *types, int ntypes, int64_t B, int max_threads)
{
    {
        printf("## tw_matmul, B = %lld (%s)\n\n", (long long)B, B == 1 ? "decode" : "prefill");
        printf("| type | R x C | threads | us/call | GFLOP/s | weight GB/s |\n|---|---|---|---|---|---|\n");
        for (int t = 0; t < ntypes; t++)
            for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
                const int64_t R = SHAPES[s].R, C = SHAPES[s].C;
                if (C % tw_type_get((uint32_t)types[t])->block != 0) continue;   /* k-quants need 256 | C */
                void *W = make_weights(types[t], R, C);
                float *x = malloc((size_t)(B * C) * sizeof *x), *out = malloc((size_t)(B * R) * sizeof *out);
                fill(x, B * C, 3, 1.0);
                const double wbytes = (double)tw_type_row_bytes((uint32_t)types[t], (uint64_t)C) * (double)R;
                for (int th = 1; th <= max_threads; th++) {
                    double best;
                    TIME_BEST(best, tw_matmul(out, x, W, types[t], B, R, C, th));
                    printf("| %s | %lldx%lld | %d | %.1f | %.2f | %.2f |\n", tw_type_get((uint32_t)types[t])->name,
                           (long long)R, (long long)C, th, best * 1e6, 2.0 * (double)B * R * C / best / 1e9,
                           wbytes / best / 1e9);
                    fflush(stdout);
                }
                free(W); free(x); free(out);
            }
        printf("\n");
    }
}

/* integer path vs dequantize + sgemm across B, one shape (valid for every type) */
static void bench_threshold(const tw_type *types, int ntypes, int threads)
{
    const int64_t R = 576, C = 1536;
    const int64_t Bs[] = {2, 4, 8, 12, 16, 24, 32, 48, 64};
    const int nb = (int)(sizeof Bs / sizeof Bs[0]);
    printf("## Row-wise path vs dequantize + sgemm (R x C = %lldx%lld, %d thread%s), GFLOP/s\n\n", (long long)R,
           (long long)C, threads, threads > 1 ? "s" : "");
    printf("| type | function | path |");
    for (int i = 0; i < nb; i++) printf(" B=%lld |", (long long)Bs[i]);
    printf(" default threshold |\n|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|");
    printf("---|\n");
    float *x = malloc((size_t)(64 * C) * sizeof *x), *out = malloc((size_t)(64 * R) * sizeof *out);
    fill(x, 64 * C, 4, 1.0);
    for (int t = 0; t < ntypes; t++) {
        void *W = make_weights(types[t], R, C);
        const int64_t def = tw_matmul_sgemm_min_b(types[t]);
        for (int f = 0; f < 2; f++)
            for (int path = 0; path < 2; path++) {
                tw_kernels_set_sgemm_min_b(path == 0 ? INT64_MAX : 1);
                printf("| %s | %s | %s |", tw_type_get((uint32_t)types[t])->name, f ? "matmul_float" : "matmul",
                       path == 0 ? "rows" : "sgemm");
                for (int i = 0; i < nb; i++) {
                    const int64_t B = Bs[i];
                    double best;
                    if (f) TIME_BEST(best, tw_matmul_float(out, x, W, types[t], B, R, C, threads));
                    else TIME_BEST(best, tw_matmul(out, x, W, types[t], B, R, C, threads));
                    printf(" %.1f |", 2.0 * (double)B * R * C / best / 1e9);
                    fflush(stdout);
                }
                printf(" %lld |\n", (long long)def);
            }
        tw_kernels_set_sgemm_min_b(0);
        free(W);
    }
    free(x); free(out);
    printf("\n");
}

/* The three ways tw_matmul can multiply quantized weights, per B: one integer dot per
 * (row, activation row), the batched integer GEMM (AVX-512 VNNI), dequantize + sgemm.
 * R x C = 1536 x 576 (legacy types; SmolLM2's gate/up) or 1536 x 768 (k-quants). */
static void bench_gemm(const tw_type *types, int ntypes, int threads)
{
    const int64_t Bs[] = {1, 2, 4, 8, 16, 64, 512};
    const int nb = (int)(sizeof Bs / sizeof Bs[0]);
    printf("## Integer rows vs integer GEMM vs dequantize + sgemm (%d thread%s), GFLOP/s\n\n", threads,
           threads > 1 ? "s" : "");
    printf("| type | R x C | path |");
    for (int i = 0; i < nb; i++) printf(" B=%lld |", (long long)Bs[i]);
    printf("\n|---|---|---|");
    for (int i = 0; i < nb; i++) printf("---|");
    printf("\n");
    for (int t = 0; t < ntypes; t++) {
        const tw_type ty = types[t];
        if (tw_matmul_act_type(ty) == TW_TYPE_F32) continue;
        const int64_t R = 1536, C = tw_matmul_act_type(ty) == TW_TYPE_Q8_K ? 768 : 576;
        float *x = malloc((size_t)(512 * C) * sizeof *x), *out = malloc((size_t)(512 * R) * sizeof *out);
        fill(x, 512 * C, 4, 1.0);
        void *W = make_weights(ty, R, C);
        for (int path = 0; path < 3; path++) {
            tw_kernels_set_int_gemm_min_b(0);
            if (path == 1 && tw_matmul_int_gemm_min_b(ty) == INT64_MAX) continue;    /* no GEMM for it here */
            printf("| %s | %lldx%lld | %s |", tw_type_get((uint32_t)ty)->name, (long long)R, (long long)C,
                   path == 0 ? "rows" : path == 1 ? "int GEMM" : "sgemm");
            for (int i = 0; i < nb; i++) {
                const int64_t B = Bs[i];
                tw_kernels_set_sgemm_min_b(path == 2 ? 1 : INT64_MAX);
                tw_kernels_set_int_gemm_min_b(path == 1 ? 1 : INT64_MAX);
                double best;
                TIME_BEST(best, tw_matmul(out, x, W, ty, B, R, C, threads));
                printf(" %.1f |", 2.0 * (double)B * R * C / best / 1e9);
                fflush(stdout);
            }
            printf("\n");
        }
        tw_kernels_set_sgemm_min_b(0);
        tw_kernels_set_int_gemm_min_b(0);
        free(W); free(x); free(out);
    }
    printf("\n");
}

static void bench_scalar_and_ops(const tw_type *types, int ntypes)
{
    const int64_t R = 576, C = 1536;
    printf("## Scalar vs AVX2 path, B = 1, R x C = %lldx%lld, 1 thread (weight GB/s)\n\n", (long long)R, (long long)C);
    printf("| type | scalar | avx2 | tw_matmul_float (avx2) |\n|---|---|---|---|\n");
    float *x = malloc((size_t)C * sizeof *x), *out = malloc((size_t)R * sizeof *out);
    fill(x, C, 5, 1.0);
    for (int t = 0; t < ntypes; t++) {
        void *W = make_weights(types[t], R, C);
        const double wbytes = (double)tw_type_row_bytes((uint32_t)types[t], (uint64_t)C) * (double)R;
        double ts, tv, tf;
        tw_kernels_force_scalar(true);
        TIME_BEST(ts, tw_matmul(out, x, W, types[t], 1, R, C, 1));
        tw_kernels_force_scalar(false);
        TIME_BEST(tv, tw_matmul(out, x, W, types[t], 1, R, C, 1));
        TIME_BEST(tf, tw_matmul_float(out, x, W, types[t], 1, R, C, 1));
        printf("| %s | %.2f | %.2f | %.2f |\n", tw_type_get((uint32_t)types[t])->name, wbytes / ts / 1e9,
               wbytes / tv / 1e9, wbytes / tf / 1e9);
        fflush(stdout);
        free(W);
    }
    free(x); free(out);
    printf("\n## Small ops (ns per call, current path %s)\n\n", tw_kernels_ops()->name);
    const int64_t n = 1536;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *w = malloc(n * sizeof *w);
    fill(a, n, 6, 1.0);
    fill(b, n, 7, 1.0);
    fill(w, n, 8, 1.0);
    printf("| op | n | scalar ns | avx2 ns |\n|---|---|---|---|\n");
    const tw_kernel_ops *ops[2] = {tw_kernels_scalar_ops(), tw_kernels_avx2_ops()};
    double t[2][4] = {{0}};
    for (int p = 0; p < 2; p++) {
        if (!ops[p]) continue;
        TIME_BEST(t[p][0], ops[p]->rmsnorm(b, a, w, 576, 1e-5f));
        TIME_BEST(t[p][1], (memcpy(b, a, n * sizeof *a), ops[p]->softmax(b, n)));
        TIME_BEST(t[p][2], ops[p]->swiglu(b, a, w, n));
        TIME_BEST(t[p][3], ops[p]->add(b, a, w, n));
    }
    const char *names[4] = {"rmsnorm", "softmax (incl. copy)", "swiglu", "add"};
    const int64_t ns[4] = {576, n, n, n};
    for (int k = 0; k < 4; k++) printf("| %s | %lld | %.0f | %.0f |\n", names[k], (long long)ns[k], t[0][k] * 1e9, t[1][k] * 1e9);
    double tr;
    float *q = malloc(9 * 64 * sizeof *q);
    fill(q, 9 * 64, 9, 1.0);
    TIME_BEST(tr, tw_rope(q, 9, 64, 64, 1000, 10000.0f, 1.0f, NULL, 0));
    printf("| rope (9 heads x 64, table in double) | 576 | %.0f | |\n\n", tr * 1e9);
    free(a); free(b); free(w); free(q);
}

/* The matmuls of one SmolLM2-135M decode step (30 layers of q 576x576, k/v 192x576,
 * o 576x576, gate/up 1536x576, down 576x1536, then the 49152x576 output), all of one
 * type, separate weights per layer (so they stream from memory as in a real model). Best
 * and median over 30 tokens: the median shows what a loaded machine does to threads. */
static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void bench_token(const tw_type *types, int ntypes, int max_threads)
{
    typedef struct { int64_t R, C; } rc;
    const rc layer[7] = {{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}};
    printf("## One SmolLM2-135M decode step: 211 matmuls, B = 1 (ms per token)\n\n");
    printf("| type | threads | weight MB | best ms | median ms | GB/s at best |\n|---|---|---|---|---|---|\n");
    for (int t = 0; t < ntypes; t++) {
        const tw_type ty = types[t];
        if (576 % tw_type_get((uint32_t)ty)->block != 0) continue;
        void *W[30][7];
        double mb = 0;
        for (int l = 0; l < 30; l++)
            for (int k = 0; k < 7; k++) {
                W[l][k] = make_weights(ty, layer[k].R, layer[k].C);
                mb += (double)tw_type_row_bytes((uint32_t)ty, (uint64_t)layer[k].C) * (double)layer[k].R;
            }
        void *out_w = make_weights(ty, 49152, 576);
        mb += (double)tw_type_row_bytes((uint32_t)ty, 576) * 49152.0;
        float *x = malloc(1536 * sizeof *x), *y = malloc(49152 * sizeof *y);
        fill(x, 1536, 7, 1.0);
        for (int th = 1; th <= max_threads; th++) {
            double ts[30];
            for (int rep = 0; rep < 30; rep++) {
                const double t0 = tw_now();
                for (int l = 0; l < 30; l++)
                    for (int k = 0; k < 7; k++) tw_matmul(y, x, W[l][k], ty, 1, layer[k].R, layer[k].C, th);
                tw_matmul(y, x, out_w, ty, 1, 49152, 576, th);
                ts[rep] = tw_now() - t0;
            }
            qsort(ts, 30, sizeof ts[0], cmp_double);
            printf("| %s | %d | %.1f | %.2f | %.2f | %.1f |\n", tw_type_get((uint32_t)ty)->name, th, mb / 1e6, ts[0] * 1e3,
                   ts[15] * 1e3, mb / ts[0] / 1e9);
            fflush(stdout);
        }
        for (int l = 0; l < 30; l++)
            for (int k = 0; k < 7; k++) free(W[l][k]);
        free(out_w); free(x); free(y);
    }
    printf("\n");
}

int main(int argc, char **argv)
{
    bool quick = false;
    const char *only = NULL;
    int threads = 2;
    tw_type types[16];
    int ntypes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--reps-time") == 0 && i + 1 < argc) g_min_time = atof(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--types") == 0 && i + 1 < argc) {
            char *list = argv[++i];
            for (char *tok = strtok(list, ","); tok && ntypes < 16; tok = strtok(NULL, ",")) {
                tw_type t;
                if (!tw_type_parse(tok, &t) || !tw_quant_supported(t)) {
                    fprintf(stderr, "unknown or unsupported type '%s'\n", tok);
                    return 2;
                }
                types[ntypes++] = t;
            }
        } else {
            fprintf(stderr, "usage: %s [--quick] [--types q4_1,q8_0,...] [--reps-time SECONDS] "
                            "[--only token|sgemm|decode|prefill|threshold|gemm|scalar] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1) threads = 1;
    if (ntypes == 0) {
        const tw_type all[] = {TW_TYPE_F32,  TW_TYPE_F16,  TW_TYPE_BF16, TW_TYPE_Q8_0, TW_TYPE_Q4_0, TW_TYPE_Q4_1,
                               TW_TYPE_Q5_0, TW_TYPE_Q5_1, TW_TYPE_Q4_K, TW_TYPE_Q5_K, TW_TYPE_Q6_K};
        const tw_type few[] = {TW_TYPE_F16, TW_TYPE_Q8_0, TW_TYPE_Q4_1, TW_TYPE_Q4_K, TW_TYPE_Q6_K};
        if (quick) { memcpy(types, few, sizeof few); ntypes = 5; }
        else { memcpy(types, all, sizeof all); ntypes = 11; }
    }
    const tw_cpu *c = tw_cpu_features();
    printf("# bench_kernels: path %s (avx2 %d fma %d f16c %d avx512f %d avx512 vnni GEMM %d), OpenBLAS core %s, best of runs >= %.2f s\n\n",
           tw_kernels_ops()->name, c->avx2, c->fma, c->f16c, c->avx512f, c->avx512, openblas_get_corename(), g_min_time);
#define RUN(name) (only ? strcmp(only, name) == 0 : true)
    if (RUN("sgemm") && !quick) bench_sgemm();
    if (RUN("token")) bench_token(types, ntypes, threads);
    if (RUN("decode")) bench_matmul(types, ntypes, 1, threads);
    if (RUN("prefill") && !quick) bench_matmul(types, ntypes, 512, threads);
    if (RUN("threshold") && !quick) bench_threshold(types, ntypes, 1);
    if (RUN("gemm") && !quick) {
        bench_gemm(types, ntypes, 1);
        if (threads > 1) bench_gemm(types, ntypes, threads);
    }
    if (RUN("scalar")) bench_scalar_and_ops(types, ntypes);
    return 0;
}
