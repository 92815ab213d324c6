/* test_gemm.c — tw_sgemm_nt (src/model/gemm.h) against a double-precision reference, on
 * every path the CPU has (AVX-512, AVX2, scalar), with odd shapes, strides, accumulation,
 * K = 0, and the determinism the engine relies on (bitwise equal across paths and across
 * the caller's tiling of M and N).
 *
 * Tolerance: each element is a chain of K fused multiply-adds in float, so by the standard
 * bound for recursive summation |c - c_exact| <= gamma_K * (|c0| + sum_k |a_k b_k|) with
 * gamma_K = K u / (1 - K u), u = 2^-24 (one rounding per step; FMA adds none for the
 * product). The reference is computed in double (its own error ~K * 2^-53, negligible),
 * and we assert |c - ref| <= (K + 1) * 2^-24 * (|c0| + sum |a b|) + 1e-30: a worst-case
 * bound, so a correct implementation can never fail it, while any wrong index, missed k
 * or dropped row gives an error of order |a b| itself, far above it. */
#include "testutil.h"

#include "model/gemm.h"

#include <math.h>
#include <stdint.h>

static const tw_gemm_path k_paths[] = {TW_GEMM_AVX512, TW_GEMM_AVX2, TW_GEMM_SCALAR};
static const char *const k_names[] = {"?", "scalar", "avx2", "avx512"};

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static int64_t irand(int64_t lo, int64_t hi) /* [lo, hi] */
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return lo + (int64_t)(g_rng % (uint64_t)(hi - lo + 1));
}

static bool path_supported(tw_gemm_path p)
{
    switch (p) {
    case TW_GEMM_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case TW_GEMM_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    default: return true;
    }
}

/* A problem with padded strides. Padding of A and B holds NaN (reading it would poison
 * C); padding of C holds a sentinel that must survive. */
typedef struct prob {
    int64_t M, N, K, lda, ldb, ldc;
    float *A, *B, *C0, *C;
} prob;

static const float SENTINEL = -12345.5f;

static prob prob_make(int64_t M, int64_t N, int64_t K, int64_t pa, int64_t pb, int64_t pc)
{
    prob p = {.M = M, .N = N, .K = K, .lda = K + pa, .ldb = K + pb, .ldc = N + pc};
    const size_t na = (size_t)(M * p.lda) + 1, nb = (size_t)(N * p.ldb) + 1, nc = (size_t)(M * p.ldc) + 1;
    p.A = malloc(na * sizeof(float));
    p.B = malloc(nb * sizeof(float));
    p.C0 = malloc(nc * sizeof(float));
    p.C = malloc(nc * sizeof(float));
    cr_assert(p.A && p.B && p.C0 && p.C);
    for (size_t i = 0; i < na; i++) p.A[i] = NAN;
    for (size_t i = 0; i < nb; i++) p.B[i] = NAN;
    for (size_t i = 0; i < nc; i++) p.C0[i] = SENTINEL;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) p.A[i * p.lda + k] = frand();
    for (int64_t j = 0; j < N; j++)
        for (int64_t k = 0; k < K; k++) p.B[j * p.ldb + k] = frand();
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) p.C0[i * p.ldc + j] = frand();
    return p;
}

static void prob_free(prob *p)
{
    free(p->A);
    free(p->B);
    free(p->C0);
    free(p->C);
}

static size_t c_len(const prob *p)
{
    return (size_t)(p->M * p->ldc) + 1;
}

/* run tw_sgemm_nt on p (C starts as C0) */
static void prob_run(prob *p, bool acc)
{
    memcpy(p->C, p->C0, c_len(p) * sizeof(float));
    tw_sgemm_nt(p->C, p->ldc, p->A, p->lda, p->B, p->ldb, p->M, p->N, p->K, acc);
}

/* p->C against the double reference, padding untouched */
static void prob_check(const prob *p, bool acc, const char *what)
{
    for (int64_t i = 0; i < p->M; i++) {
        for (int64_t j = 0; j < p->N; j++) {
            const float c0 = p->C0[i * p->ldc + j];
            double ref = acc ? c0 : 0.0, mag = acc ? fabs(c0) : 0.0;
            for (int64_t k = 0; k < p->K; k++) {
                const double t = (double)p->A[i * p->lda + k] * (double)p->B[j * p->ldb + k];
                ref += t;
                mag += fabs(t);
            }
            const double got = p->C[i * p->ldc + j];
            const double tol = (double)(p->K + 1) * 0x1p-24 * mag + 1e-30;
            if (!(fabs(got - ref) <= tol))
                cr_assert_fail("%s: M=%lld N=%lld K=%lld acc=%d: C[%lld][%lld] = %.9g, reference %.9g (tol %.3g)", what,
                         (long long)p->M, (long long)p->N, (long long)p->K, (int)acc, (long long)i, (long long)j, got,
                         ref, tol);
        }
        for (int64_t j = p->N; j < p->ldc && i * p->ldc + j < (int64_t)c_len(p); j++)
            cr_assert(p->C[i * p->ldc + j] == SENTINEL, "%s: C padding [%lld][%lld] overwritten", what, (long long)i,
                      (long long)j);
    }
    cr_assert(p->C[c_len(p) - 1] == SENTINEL || p->M * p->ldc == 0, "%s: C written past its end", what);
}

/* every available path on p, checked against the reference and bitwise against each other */
static void check_all_paths(prob *p, bool acc)
{
    float *first = NULL;
    char what[96];
    for (size_t q = 0; q < sizeof k_paths / sizeof *k_paths; q++) {
        if (!path_supported(k_paths[q])) continue;
        cr_assert(tw_gemm_force_path(k_paths[q]));
        cr_assert_eq(tw_gemm_active_path(), k_paths[q]);
        prob_run(p, acc);
        snprintf(what, sizeof what, "path %s", k_names[k_paths[q]]);
        prob_check(p, acc, what);
        if (!first) {
            first = malloc(c_len(p) * sizeof(float));
            cr_assert_not_null(first);
            memcpy(first, p->C, c_len(p) * sizeof(float));
        } else {
            cr_assert(memcmp(first, p->C, c_len(p) * sizeof(float)) == 0,
                      "path %s differs bitwise from the first path (M=%lld N=%lld K=%lld)", k_names[k_paths[q]],
                      (long long)p->M, (long long)p->N, (long long)p->K);
        }
    }
    tw_gemm_force_path(TW_GEMM_AUTO);
    free(first);
}

Test(gemm, force_path_reports_cpu_support)
{
    for (size_t q = 0; q < sizeof k_paths / sizeof *k_paths; q++) {
        cr_assert(tw_gemm_force_path(TW_GEMM_SCALAR));
        const bool ok = tw_gemm_force_path(k_paths[q]);
        cr_assert_eq(ok, path_supported(k_paths[q]), "force %s", k_names[k_paths[q]]);
        cr_assert_eq(tw_gemm_active_path(), ok ? k_paths[q] : TW_GEMM_SCALAR, "a refused force changes nothing");
    }
    cr_assert(tw_gemm_force_path(TW_GEMM_AUTO));
    const tw_gemm_path best = path_supported(TW_GEMM_AVX512) ? TW_GEMM_AVX512
                              : path_supported(TW_GEMM_AVX2) ? TW_GEMM_AVX2
                                                             : TW_GEMM_SCALAR;
    cr_assert_eq(tw_gemm_active_path(), best);
}

/* every (M, N, K) around the microkernel edges (MR 12/14/6, NR 32/16) */
Test(gemm, edge_shapes_every_path)
{
    static const int64_t ms[] = {1, 2, 5, 6, 7, 11, 12, 13, 14, 15, 27, 29, 43};
    static const int64_t ns[] = {1, 3, 15, 16, 17, 31, 32, 33, 48, 64, 65};
    static const int64_t ks[] = {1, 2, 7, 16, 33};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                prob p = prob_make(ms[a], ns[b], ks[c], 0, 0, 0);
                check_all_paths(&p, (a + b + c) % 2 == 1);
                prob_free(&p);
            }
}

/* random shapes 1..70 with random padding of every stride, both accumulate modes */
Test(gemm, random_shapes_strides_accumulate)
{
    for (int t = 0; t < 150; t++) {
        prob p = prob_make(irand(1, 70), irand(1, 70), irand(1, 70), irand(0, 5), irand(0, 9), irand(0, 7));
        check_all_paths(&p, t % 2 == 0);
        prob_free(&p);
    }
}

/* K beyond one KC block (256), M beyond one MC block (336), engine-sized tiles */
Test(gemm, large_shapes)
{
    static const int64_t shp[][3] = {{512, 64, 576}, {37, 64, 1536}, {350, 45, 300}, {3, 70, 1100}, {700, 9, 257}};
    for (size_t s = 0; s < sizeof shp / sizeof *shp; s++) {
        prob p = prob_make(shp[s][0], shp[s][1], shp[s][2], s == 2 ? 3 : 0, s == 3 ? 64 : 0, s == 4 ? 1 : 0);
        check_all_paths(&p, s % 2 == 1);
        prob_free(&p);
    }
}

/* K = 0: C = 0, or unchanged when accumulating; M = 0 or N = 0 touch nothing */
Test(gemm, degenerate_sizes)
{
    for (size_t q = 0; q < sizeof k_paths / sizeof *k_paths; q++) {
        if (!tw_gemm_force_path(k_paths[q])) continue;
        float C[3 * 5], A[3] = {1, 2, 3}, B[4] = {4, 5, 6, 7};
        for (int i = 0; i < 15; i++) C[i] = 9.0f;
        tw_sgemm_nt(C, 5, A, 1, B, 1, 3, 4, 0, true);
        for (int i = 0; i < 15; i++) cr_assert_eq(C[i], 9.0f);
        tw_sgemm_nt(C, 5, A, 1, B, 1, 3, 4, 0, false);
        for (int i = 0; i < 15; i++) cr_assert_eq(C[i], i % 5 == 4 ? 9.0f : 0.0f, "K=0 zeroes C, not its padding");
        for (int i = 0; i < 15; i++) C[i] = 9.0f;
        tw_sgemm_nt(C, 5, A, 1, B, 1, 0, 4, 1, false);
        tw_sgemm_nt(C, 5, A, 1, B, 1, 3, 0, 1, false);
        for (int i = 0; i < 15; i++) cr_assert_eq(C[i], 9.0f);
        tw_sgemm_nt(C, 5, A, 1, B, 1, 3, 4, 1, false); /* K = 1: outer product, exact */
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++) cr_assert_eq(C[i * 5 + j], A[i] * B[j]);
    }
    tw_gemm_force_path(TW_GEMM_AUTO);
}

/* The engine tiles N by 64 weight rows and M by batch; attention uses other splits. The
 * result must not depend on it, bitwise. */
Test(gemm, tiling_invariance_bitwise)
{
    const int64_t M = 75, N = 200, K = 300;
    prob p = prob_make(M, N, K, 0, 0, 0);
    tw_sgemm_nt(p.C0, N, p.A, K, p.B, K, M, N, K, false);
    float *T = malloc((size_t)(M * N) * sizeof(float));
    cr_assert_not_null(T);
    static const int64_t nsplit[] = {64, 1, 7, 33, 128};
    static const int64_t msplit[] = {75, 1, 13, 40};
    for (size_t s = 0; s < sizeof nsplit / sizeof *nsplit; s++) {
        const int64_t tm = msplit[s % (sizeof msplit / sizeof *msplit)];
        for (int64_t i0 = 0; i0 < M; i0 += tm)
            for (int64_t j0 = 0; j0 < N; j0 += nsplit[s]) {
                const int64_t mm = M - i0 < tm ? M - i0 : tm, nn = N - j0 < nsplit[s] ? N - j0 : nsplit[s];
                tw_sgemm_nt(T + i0 * N + j0, N, p.A + i0 * K, K, p.B + j0 * K, K, mm, nn, K, false);
            }
        cr_assert(memcmp(T, p.C0, (size_t)(M * N) * sizeof(float)) == 0, "tiles %lld x %lld differ",
                  (long long)tm, (long long)nsplit[s]);
    }
    free(T);
    prob_free(&p);
}

/* Non-finite inputs stay where they belong: an Inf in row i of A makes row i Inf/NaN
 * and no other row; the zero padding of a partial B panel never reaches C. */
Test(gemm, nonfinite_confined)
{
    for (size_t q = 0; q < sizeof k_paths / sizeof *k_paths; q++) {
        if (!tw_gemm_force_path(k_paths[q])) continue;
        const int64_t M = 20, N = 21, K = 9;
        prob p = prob_make(M, N, K, 0, 0, 2);
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++) p.A[i * K + k] = fabsf(p.A[i * K + k]) + 0.5f;
        for (int64_t j = 0; j < N; j++)
            for (int64_t k = 0; k < K; k++) p.B[j * K + k] = fabsf(p.B[j * K + k]) + 0.5f;
        p.A[5 * K + 3] = INFINITY;
        prob_run(&p, false);
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                const float c = p.C[i * p.ldc + j];
                if (i == 5) cr_assert(isinf(c) && c > 0, "row 5 col %lld: %g", (long long)j, c);
                else cr_assert(isfinite(c) && c > 0, "row %lld col %lld: %g", (long long)i, (long long)j, c);
            }
            for (int64_t j = N; j < p.ldc; j++) cr_assert_eq(p.C[i * p.ldc + j], SENTINEL);
        }
        prob_free(&p);
    }
    tw_gemm_force_path(TW_GEMM_AUTO);
}

/* Operands at odd (4-byte but not 16/64-byte) addresses */
Test(gemm, unaligned_operands)
{
    const int64_t M = 30, N = 40, K = 50;
    prob p = prob_make(M, N, K, 0, 0, 0);
    float *A1 = malloc((size_t)(M * K + 1) * sizeof(float)), *B1 = malloc((size_t)(N * K + 1) * sizeof(float));
    float *C1 = malloc((size_t)(M * N + 1) * sizeof(float));
    cr_assert(A1 && B1 && C1);
    memcpy(A1 + 1, p.A, (size_t)(M * K) * sizeof(float));
    memcpy(B1 + 1, p.B, (size_t)(N * K) * sizeof(float));
    prob_run(&p, false);
    for (size_t q = 0; q < sizeof k_paths / sizeof *k_paths; q++) {
        if (!tw_gemm_force_path(k_paths[q])) continue;
        tw_sgemm_nt(C1 + 1, N, A1 + 1, K, B1 + 1, K, M, N, K, false);
        cr_assert(memcmp(C1 + 1, p.C, (size_t)(M * N) * sizeof(float)) == 0, "path %s", k_names[k_paths[q]]);
    }
    tw_gemm_force_path(TW_GEMM_AUTO);
    free(A1);
    free(B1);
    free(C1);
    prob_free(&p);
}
