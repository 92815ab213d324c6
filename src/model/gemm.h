/* gemm.h — single-threaded float32 matrix product C = A · B^T (both operands row-major,
 * "NT" layout: the layout of activations x (rows of C features) against weight rows W).
 *
 * Callers (kernels.c) split the work into tiles and run one call per tile on each of
 * their threads, so this function never starts threads of its own.
 *
 * Deliberately not here: dequantization (callers hand in float rows), threads, other
 * transpositions (nothing in the engine needs them).
 */
#ifndef TW_MODEL_GEMM_H
#define TW_MODEL_GEMM_H

#include <stdbool.h>
#include <stdint.h>

/* C (M, N) = A (M, K) · B (N, K)^T                      (accumulate: C += A · B^T)
 * Row strides lda >= K, ldb >= K, ldc >= N (in floats). C must not alias A or B.
 * M, N, K >= 0 (K == 0: C = 0, or unchanged when accumulating). Only C (M, N) is written
 * (never the padding between rows); allocates nothing, cannot fail.
 * Each C element is one float accumulator taking one fused multiply-add per k in
 * increasing k order, so the result is bitwise independent of how the caller tiles M
 * and N, and of the path below (docs/gemm.md). */
void tw_sgemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate);

/* The implementation tw_sgemm_nt runs (gemm.c). Every path gives bitwise the same C (one
 * fused multiply-add per k, in k order, per element), so this only changes speed. */
typedef enum tw_gemm_path {
    TW_GEMM_AUTO = 0,   /* the fastest the CPU has (default) */
    TW_GEMM_SCALAR = 1, /* portable C (fmaf) */
    TW_GEMM_AVX2 = 2,   /* AVX2 + FMA microkernel 6 x 16 */
    TW_GEMM_AVX512 = 3, /* AVX-512F microkernel 14 x 32 */
} tw_gemm_path;

/* Force a path for tests and benchmarks (process-wide; not to be flipped while other
 * threads multiply). false, and nothing changed, when the CPU lacks it. */
bool tw_gemm_force_path(tw_gemm_path p);
/* The path tw_sgemm_nt takes now (never TW_GEMM_AUTO). */
tw_gemm_path tw_gemm_active_path(void);

#endif /* TW_MODEL_GEMM_H */
