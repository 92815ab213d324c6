/* bench_gemm.c — GFLOP/s of tw_sgemm_nt (src/model/gemm.h) against OpenBLAS cblas_sgemm on
 * the shapes the engine uses.
 *
 *   make build/bench/bench_gemm && build/bench/bench_gemm [--reps-time S] [--paths]
 *
 * 1. One call, one thread: M = 512 (prefill batch) or 64 / 16 activation rows, N = 64
 *    weight rows (kernels.c's tile), K = 576 / 1536 (SmolLM2-135M) and 2048 / 4096;
 *    attention: scores M = 512 queries x N = 512 keys x K = 64, and probabilities x V
 *    M = 512 x N = 64 x K = 512. Also N = 128 / 256 per call, to show what a wider tile
 *    would give.
 * 2. Two threads: a whole weight matrix (R = 1536 or 576 rows) in tiles of 64 rows spread
 *    over tw_parallel_for (as kernels.c's chunk_sgemm), ours vs OpenBLAS (1 BLAS thread
 *    inside each of ours).
 * --paths adds the AVX2 and scalar paths to part 1.
 * Each figure is the fastest call over --reps-time seconds (default 0.5): the machine is
 * shared, best-of filters out other jobs. Not a test; figures go to docs/gemm.md by hand. */
#include "base/base.h"
#include "model/gemm.h"
#include "model/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double g_min_time = 0.5;

typedef struct shape {
    int64_t M, N, K;
    const char *what;
} shape;

static float *rand_buf(size_t n, uint64_t seed)
{
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_gemm: out of memory\n");
        exit(1);
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        p[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    return p;
}

typedef struct job {
    bool blas;
    const float *A, *B;
    float *C;
    int64_t M, R, K, tile;
} job;

static void run_tile(void *arg, int64_t t, int slot)
{
    (void)slot;
    const job *j = arg;
    const int64_t r0 = t * j->tile, n = j->R - r0 < j->tile ? j->R - r0 : j->tile;
    if (j->blas)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)j->M, (blasint)n, (blasint)j->K, 1.0f, j->A,
                    (blasint)j->K, j->B + r0 * j->K, (blasint)j->K, 0.0f, j->C + r0, (blasint)j->R);
    else
        tw_sgemm_nt(j->C + r0, j->R, j->A, j->K, j->B + r0 * j->K, j->K, j->M, n, j->K, false);
}

/* fastest of repeated runs of the whole job on nt threads, GFLOP/s */
static double time_job(job *j, int nt)
{
    const int64_t ntiles = (j->R + j->tile - 1) / j->tile;
    double best = 1e30, t_start = tw_now();
    int n = 0;
    while (n < 3 || tw_now() - t_start < g_min_time) {
        const double t0 = tw_now();
        if (nt == 1)
            for (int64_t t = 0; t < ntiles; t++) run_tile(j, t, 0);
        else tw_parallel_for(ntiles, nt, run_tile, j);
        const double dt = tw_now() - t0;
        if (dt < best) best = dt;
        n++;
    }
    return 2.0 * (double)j->M * (double)j->R * (double)j->K / best * 1e-9;
}

int main(int argc, char **argv)
{
    bool paths = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps-time") && i + 1 < argc) g_min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--paths")) paths = true;
        else {
            fprintf(stderr, "usage: bench_gemm [--reps-time S] [--paths]\n");
            return 2;
        }
    }
    openblas_set_num_threads(1);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("tw_sgemm_nt path: %s; OpenBLAS %s, OPENBLAS_CORETYPE=%s\n",
           tw_gemm_active_path() == TW_GEMM_AVX512 ? "avx512" : tw_gemm_active_path() == TW_GEMM_AVX2 ? "avx2"
                                                                                              : "scalar",
           openblas_get_config(), ct ? ct : "(unset)");

    static const shape one[] = {
        {512, 64, 576, "prefill tile, q/k/v/o/gate/up"}, {512, 64, 1536, "prefill tile, down"},
        {512, 64, 2048, "bigger models"},                {512, 64, 4096, "bigger models"},
        {64, 64, 576, "batch 64"},                       {16, 64, 576, "batch 16"},
        {512, 128, 576, "N = 128 per call"},             {512, 256, 576, "N = 256 per call"},
        {512, 512, 64, "attention S = Q K^T"},           {512, 64, 512, "attention S V"},
    };
    printf("\n1 thread, one call per tile of N rows (GFLOP/s, best of %.1f s)\n", g_min_time);
    printf("| M | N | K | use | tw_sgemm_nt | cblas_sgemm |%s\n", paths ? " avx2 | scalar |" : "");
    printf("|---:|---:|---:|---|---:|---:|%s\n", paths ? "---:|---:|" : "");
    for (size_t s = 0; s < sizeof one / sizeof *one; s++) {
        const shape *h = &one[s];
        float *A = rand_buf((size_t)(h->M * h->K), 1), *B = rand_buf((size_t)(h->N * h->K), 2);
        float *C = rand_buf((size_t)(h->M * h->N), 3);
        job j = {.A = A, .B = B, .C = C, .M = h->M, .R = h->N, .K = h->K, .tile = h->N};
        const double ours = time_job(&j, 1);
        j.blas = true;
        const double blas = time_job(&j, 1);
        j.blas = false;
        printf("| %lld | %lld | %lld | %s | %.1f | %.1f |", (long long)h->M, (long long)h->N, (long long)h->K, h->what,
               ours, blas);
        if (paths) {
            const tw_gemm_path ps[2] = {TW_GEMM_AVX2, TW_GEMM_SCALAR};
            for (int p = 0; p < 2; p++) {
                if (!tw_gemm_force_path(ps[p])) {
                    printf(" — |");
                    continue;
                }
                const double save = g_min_time;
                if (ps[p] == TW_GEMM_SCALAR) g_min_time = 0;
                printf(" %.1f |", time_job(&j, 1));
                g_min_time = save;
            }
            tw_gemm_force_path(TW_GEMM_AUTO);
        }
        printf("\n");
        free(A);
        free(B);
        free(C);
    }

    static const shape two[] = {
        {512, 1536, 576, "gate/up: R 1536 x C 576"},
        {512, 576, 1536, "down: R 576 x C 1536"},
        {512, 576, 576, "q/o: R 576 x C 576"},
    };
    printf("\nwhole matrix in 64-row tiles, tw_parallel_for (GFLOP/s, best of %.1f s)\n", g_min_time);
    printf("| M | R | C | matrix | ours 1 thr | ours 2 thr | BLAS 1 thr | BLAS 2 thr |\n");
    printf("|---:|---:|---:|---|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof two / sizeof *two; s++) {
        const shape *h = &two[s];
        float *A = rand_buf((size_t)(h->M * h->K), 1), *B = rand_buf((size_t)(h->N * h->K), 2);
        float *C = rand_buf((size_t)(h->M * h->N), 3);
        job j = {.A = A, .B = B, .C = C, .M = h->M, .R = h->N, .K = h->K, .tile = 64};
        double r[4];
        for (int b = 0; b < 2; b++) {
            j.blas = b == 1;
            r[2 * b] = time_job(&j, 1);
            r[2 * b + 1] = time_job(&j, 2);
        }
        printf("| %lld | %lld | %lld | %s | %.1f | %.1f | %.1f | %.1f |\n", (long long)h->M, (long long)h->N,
               (long long)h->K, h->what, r[0], r[1], r[2], r[3]);
        free(A);
        free(B);
        free(C);
    }
    return 0;
}
