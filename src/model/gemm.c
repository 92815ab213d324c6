/* gemm.c — tw_sgemm_nt (gemm.h): single-threaded float32 C = A · B^T, our own kernels so
 * prefill speed does not depend on which OpenBLAS kernels the environment selects.
 *
 * Scheme (after the BLIS / GotoBLAS layering, written from the idea, not from code;
 * design and measurements in docs/gemm.md):
 *   for each block of KC columns of K (k0):
 *     for each block of MC rows of A (i0):
 *       for each panel of NR rows of B (j0):
 *         pack B[j0 .. j0+NR, k0 .. k0+KC] k-major into a stack buffer (zero-padded to NR)
 *         for each MR rows of A (i): microkernel C[i.., j0..] (+)= A[i.., k0..] · panel^T
 * A is not packed: the microkernel broadcasts A's elements straight from its rows. The
 * engine calls with N = 64 weight rows per call, so A (M x K) would be packed again for
 * every 64 columns of C; merely copying A's blocks (no transpose) cost 10-30% of the
 * throughput at N = 64 (docs/gemm.md). The B panel (NR x KC floats) stays in L1, the A
 * block (MC x KC) in L2.
 *
 * Numerics, the same on every path: each C element is one float accumulator that starts
 * at 0 (or at C when accumulating) and takes one fused multiply-add per k, k = 0, 1, ...,
 * K-1 in order (the KC blocking stores and reloads the accumulator, which is exact). So
 * the result is bitwise the same whatever the caller's tiling of M or N, whatever MR/NR/KC,
 * and on the AVX-512, AVX2 and scalar (fmaf) paths alike (tests/test_gemm.c checks this).
 *
 * Paths, chosen at run time (the library is built for baseline x86-64; the SIMD functions
 * carry target attributes as in kernels_avx2.c): AVX-512F microkernel 14 x 32 (28 zmm
 * accumulators), AVX2 + FMA microkernel 6 x 16 (12 ymm accumulators), portable scalar
 * (fmaf; slow, for CPUs without AVX2 + FMA). Edge tiles: one inlined microkernel per row
 * count, masked stores for the columns; rows are cut into near-equal microtiles. The B
 * panel is packed with 8 x 8 register transposes. Scratch is a fixed-size stack buffer
 * (32 KiB at most), so nothing here can fail to allocate.
 *
 * Deliberately not here: threads (callers split N across theirs), other transpositions,
 * alpha/beta scaling beyond the accumulate flag, packed-B reuse across calls. */
#include "model/gemm.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TW_GEMM_X86 1
#endif

/* Blocking. KC: B panel NR x KC floats must sit in L1 (32 x 256 x 4 = 32 KiB of the 48 KiB
 * L1d here); MC: the A block MC x KC (~336 KiB at KC = 256) in L2 (1 MiB). */
#ifndef TW_GEMM_KC
#define TW_GEMM_KC 256
#endif
#ifndef TW_GEMM_MC
#define TW_GEMM_MC 336
#endif
#ifndef TW_GEMM_MR512
#define TW_GEMM_MR512 14
#endif
#ifndef TW_GEMM_NV512
#define TW_GEMM_NV512 2 /* NR = 16 * NV */
#endif
#define NR512 (16 * TW_GEMM_NV512)
#define MR256 6
#define NR256 16

static int g_forced; /* tw_gemm_path; 0 (AUTO): the best the CPU has */

static bool cpu_has(tw_gemm_path p)
{
#ifdef TW_GEMM_X86
    switch (p) {
    case TW_GEMM_AVX512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case TW_GEMM_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TW_GEMM_SCALAR: return true;
    default: return false;
    }
#else
    return p == TW_GEMM_SCALAR;
#endif
}

bool tw_gemm_force_path(tw_gemm_path p)
{
    if (p != TW_GEMM_AUTO && !cpu_has(p)) return false;
    __atomic_store_n(&g_forced, (int)p, __ATOMIC_RELAXED);
    return true;
}

tw_gemm_path tw_gemm_active_path(void)
{
    const int f = __atomic_load_n(&g_forced, __ATOMIC_RELAXED);
    if (f != TW_GEMM_AUTO) return (tw_gemm_path)f;
    if (cpu_has(TW_GEMM_AVX512)) return TW_GEMM_AVX512;
    if (cpu_has(TW_GEMM_AVX2)) return TW_GEMM_AVX2;
    return TW_GEMM_SCALAR;
}

/* C (M, N) = 0 (the K == 0 product), rows of stride ldc */
static void zero_c(float *C, int64_t ldc, int64_t M, int64_t N)
{
    for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof(float));
}

/* ---- scalar ------------------------------------------------------------------------- */

/* The reference order: one fmaf per k. fmaf, not a * b + c, so that this path rounds
 * exactly as the FMA microkernels do. */
static void gemm_scalar(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb,
                        int64_t M, int64_t N, int64_t K, bool accumulate)
{
    for (int64_t i = 0; i < M; i++) {
        const float *a = A + i * lda;
        for (int64_t j = 0; j < N; j++) {
            const float *b = B + j * ldb;
            float acc = accumulate ? C[i * ldc + j] : 0.0f;
            for (int64_t k = 0; k < K; k++) acc = fmaf(a[k], b[k], acc);
            C[i * ldc + j] = acc;
        }
    }
}

#ifdef TW_GEMM_X86

/* Rows of microtile t when mc rows are cut into ceil(mc / MR) tiles of near-equal height
 * (16 rows: 8 + 8 rather than 14 + 2, whose 2-row tile wastes most of each B load). */
static inline int mrow(int64_t mc, int MR, int64_t t)
{
    const int64_t nt = (mc + MR - 1) / MR, base = mc / nt, extra = mc % nt;
    return (int)(base + (t < extra));
}

/* ---- packing with 8 x 8 AVX transposes ------------------------------------------------ */

#define TW_AVX2P __attribute__((target("avx2")))

/* Pack nr (<= NR) rows of B, columns [0, kc), k-major: P[k * NR + j] = B[j * ldb + k];
 * rows nr .. NR-1 are zero (their products land in columns that are never stored).
 * Whole 8-row x 8-column blocks are transposed in registers (unpack, shuffle,
 * permute2f128), the rest element by element: an element-by-element pack took ~6% of a
 * 512 x 64 x 576 call (docs/gemm.md). P is 32-byte aligned, NR a multiple of 8. */
TW_AVX2P static void pack_b_avx2(float *restrict P, int NR, const float *restrict B, int64_t ldb, int nr, int kc)
{
    const int nr8 = nr & ~7, kc8 = kc & ~7;
    for (int j = 0; j < nr8; j += 8) {
        const float *b = B + j * ldb;
        for (int k = 0; k < kc8; k += 8) {
            const __m256 r0 = _mm256_loadu_ps(b + 0 * ldb + k), r1 = _mm256_loadu_ps(b + 1 * ldb + k);
            const __m256 r2 = _mm256_loadu_ps(b + 2 * ldb + k), r3 = _mm256_loadu_ps(b + 3 * ldb + k);
            const __m256 r4 = _mm256_loadu_ps(b + 4 * ldb + k), r5 = _mm256_loadu_ps(b + 5 * ldb + k);
            const __m256 r6 = _mm256_loadu_ps(b + 6 * ldb + k), r7 = _mm256_loadu_ps(b + 7 * ldb + k);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            /* u0: column k+0 of rows 0-3 | column k+4; u1: k+1 | k+5; u2: k+2 | k+6; ... */
            const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *p = P + (int64_t)k * NR + j;
            _mm256_store_ps(p + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(p + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(p + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(p + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(p + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(p + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(p + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(p + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int jj = j; jj < j + 8; jj++)
            for (int k = kc8; k < kc; k++) P[(int64_t)k * NR + jj] = B[jj * ldb + k];
    }
    for (int j = nr8; j < nr; j++) {
        const float *b = B + j * ldb;
        for (int k = 0; k < kc; k++) P[(int64_t)k * NR + j] = b[k];
    }
    for (int j = nr; j < NR; j++)
        for (int k = 0; k < kc; k++) P[(int64_t)k * NR + j] = 0.0f;
}

/* ---- AVX-512F ----------------------------------------------------------------------- */

#define TW_AVX512 __attribute__((target("avx512f,avx2,fma")))

/* mr rows (compile-time after inlining) x NR512 columns (valid: mask per vector) over kc.
 * a: row 0 of A at column k0; bp: the packed panel; c: C at (i, j0). */
TW_AVX512 static inline __attribute__((always_inline)) void ukr512(int mr, const float *a, int64_t lda,
                                                                    const float *bp, int kc, float *c,
                                                                    int64_t ldc, bool load_c,
                                                                    const __mmask16 *mask)
{
    __m512 acc[TW_GEMM_MR512][TW_GEMM_NV512];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < TW_GEMM_NV512; v++)
            acc[i][v] = load_c ? _mm512_maskz_loadu_ps(mask[v], c + i * ldc + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        __m512 b[TW_GEMM_NV512];
#pragma GCC unroll 8
        for (int v = 0; v < TW_GEMM_NV512; v++) b[v] = _mm512_load_ps(bp + (int64_t)k * NR512 + 16 * v);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const __m512 ai = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 8
            for (int v = 0; v < TW_GEMM_NV512; v++) acc[i][v] = _mm512_fmadd_ps(ai, b[v], acc[i][v]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < TW_GEMM_NV512; v++) _mm512_mask_storeu_ps(c + i * ldc + 16 * v, mask[v], acc[i][v]);
}

#define UKR512_CASE(n) \
    case n: ukr512(n, a, lda, bp, kc, c, ldc, load_c, mask); break;

TW_AVX512 static void ukr512_any(int mr, const float *a, int64_t lda, const float *bp, int kc, float *c,
                                 int64_t ldc, bool load_c, const __mmask16 *mask)
{
    switch (mr) {
        UKR512_CASE(1) UKR512_CASE(2) UKR512_CASE(3) UKR512_CASE(4)
#if TW_GEMM_MR512 > 4
        UKR512_CASE(5) UKR512_CASE(6)
#endif
#if TW_GEMM_MR512 > 6
        UKR512_CASE(7) UKR512_CASE(8)
#endif
#if TW_GEMM_MR512 > 8
        UKR512_CASE(9) UKR512_CASE(10) UKR512_CASE(11) UKR512_CASE(12)
#endif
#if TW_GEMM_MR512 > 12
        UKR512_CASE(13) UKR512_CASE(14)
#endif
#if TW_GEMM_MR512 > 14
#error "TW_GEMM_MR512 > 14: add cases"
#endif
    default: break;
    }
}

TW_AVX512 static void gemm_avx512(float *C, int64_t ldc, const float *A, int64_t lda, const float *B,
                                  int64_t ldb, int64_t M, int64_t N, int64_t K, bool accumulate)
{
    _Alignas(64) float panel[TW_GEMM_KC * NR512];
    const int64_t MC = TW_GEMM_MC / TW_GEMM_MR512 * TW_GEMM_MR512;
    for (int64_t k0 = 0; k0 < K; k0 += TW_GEMM_KC) {
        const int kc = (int)(K - k0 < TW_GEMM_KC ? K - k0 : TW_GEMM_KC);
        const bool load_c = accumulate || k0 > 0;
        for (int64_t i0 = 0; i0 < M; i0 += MC) {
            const int64_t mc = M - i0 < MC ? M - i0 : MC;
            const float *ab = A + i0 * lda + k0;
            for (int64_t j0 = 0; j0 < N; j0 += NR512) {
                const int nr = (int)(N - j0 < NR512 ? N - j0 : NR512);
                __mmask16 mask[TW_GEMM_NV512];
                for (int v = 0; v < TW_GEMM_NV512; v++) {
                    const int left = nr - 16 * v;
                    mask[v] = left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
                }
                pack_b_avx2(panel, NR512, B + j0 * ldb + k0, ldb, nr, kc);
                for (int64_t i = 0, t = 0; i < mc; i += mrow(mc, TW_GEMM_MR512, t++)) {
                    const int mr = mrow(mc, TW_GEMM_MR512, t);
                    const int64_t r = i0 + i;
                    ukr512_any(mr, ab + i * lda, lda, panel, kc, C + r * ldc + j0, ldc, load_c, mask);
                }
            }
        }
    }
}

/* ---- AVX2 + FMA --------------------------------------------------------------------- */

#define TW_AVX2G __attribute__((target("avx2,fma")))

TW_AVX2G static inline __attribute__((always_inline)) void ukr256(int mr, const float *a, int64_t lda,
                                                                   const float *bp, int kc, float *c,
                                                                   int64_t ldc, bool load_c, int nr)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), lane);
    const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr - 8), lane);
    __m256 acc[MR256][2];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        acc[i][0] = load_c ? _mm256_maskload_ps(c + i * ldc, m0) : _mm256_setzero_ps();
        acc[i][1] = load_c ? _mm256_maskload_ps(c + i * ldc + 8, m1) : _mm256_setzero_ps();
    }
#pragma GCC unroll 2
    for (int k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(bp + (int64_t)k * NR256), b1 = _mm256_load_ps(bp + (int64_t)k * NR256 + 8);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            const __m256 ai = _mm256_broadcast_ss(a + i * lda + k);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        _mm256_maskstore_ps(c + i * ldc, m0, acc[i][0]);
        _mm256_maskstore_ps(c + i * ldc + 8, m1, acc[i][1]);
    }
}

#define UKR256_CASE(n) \
    case n: ukr256(n, a, lda, bp, kc, c, ldc, load_c, nr); break;

TW_AVX2G static void ukr256_any(int mr, const float *a, int64_t lda, const float *bp, int kc, float *c,
                                int64_t ldc, bool load_c, int nr)
{
    switch (mr) {
        UKR256_CASE(1) UKR256_CASE(2) UKR256_CASE(3) UKR256_CASE(4) UKR256_CASE(5) UKR256_CASE(6)
    default: break;
    }
}

TW_AVX2G static void gemm_avx2(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb,
                               int64_t M, int64_t N, int64_t K, bool accumulate)
{
    _Alignas(32) float panel[TW_GEMM_KC * NR256];
    const int64_t MC = TW_GEMM_MC / MR256 * MR256;
    for (int64_t k0 = 0; k0 < K; k0 += TW_GEMM_KC) {
        const int kc = (int)(K - k0 < TW_GEMM_KC ? K - k0 : TW_GEMM_KC);
        const bool load_c = accumulate || k0 > 0;
        for (int64_t i0 = 0; i0 < M; i0 += MC) {
            const int64_t mc = M - i0 < MC ? M - i0 : MC;
            for (int64_t j0 = 0; j0 < N; j0 += NR256) {
                const int nr = (int)(N - j0 < NR256 ? N - j0 : NR256);
                pack_b_avx2(panel, NR256, B + j0 * ldb + k0, ldb, nr, kc);
                for (int64_t i = 0, t = 0; i < mc; i += mrow(mc, MR256, t++)) {
                    const int mr = mrow(mc, MR256, t);
                    const int64_t r = i0 + i;
                    ukr256_any(mr, A + r * lda + k0, lda, panel, kc, C + r * ldc + j0, ldc, load_c, nr);
                }
            }
        }
    }
}

#endif /* TW_GEMM_X86 */

void tw_sgemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate)
{
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) zero_c(C, ldc, M, N);
        return;
    }
    switch (tw_gemm_active_path()) {
#ifdef TW_GEMM_X86
    case TW_GEMM_AVX512: gemm_avx512(C, ldc, A, lda, B, ldb, M, N, K, accumulate); return;
    case TW_GEMM_AVX2: gemm_avx2(C, ldc, A, lda, B, ldb, M, N, K, accumulate); return;
#endif
    default: gemm_scalar(C, ldc, A, lda, B, ldb, M, N, K, accumulate); return;
    }
}
