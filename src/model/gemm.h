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
 * M, N, K >= 0 (K == 0: C = 0, or unchanged when accumulating). */
void tw_sgemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate);

#endif /* TW_MODEL_GEMM_H */
