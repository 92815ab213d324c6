/* gemm.c — tw_sgemm_nt (gemm.h): float32 C = A · B^T.
 * For now a thin wrapper over OpenBLAS cblas_sgemm run on the calling thread. */
#include "model/gemm.h"

#include <cblas.h>

void tw_sgemm_nt(float *C, int64_t ldc, const float *A, int64_t lda, const float *B, int64_t ldb, int64_t M,
                 int64_t N, int64_t K, bool accumulate)
{
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda,
                B, (blasint)ldb, accumulate ? 1.0f : 0.0f, C, (blasint)ldc);
}
