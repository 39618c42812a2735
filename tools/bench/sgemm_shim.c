/* tools/bench/sgemm_shim.c — a plain-C cblas_sgemm for the GPU-machine builds of the GPU tests
 * (tools/bench/gpu-build.sh), which has no OpenBLAS: the CPU reference backend then runs its
 * matmuls through this straightforward fp32 triple loop (double accumulation) instead. Only
 * row-major is needed by kernels/cpu; column-major calls are mapped onto it. Not part of the
 * library: the Makefile never compiles tools/bench/.
 */
#include <cblas.h>
#include <stddef.h>

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const int M, const int N, const int K, const float alpha, const float *A, const int lda,
                 const float *B, const int ldb, const float beta, float *C, const int ldc) {
    if (order == CblasColMajor) { /* C^T = B^T A^T in row-major terms */
        cblas_sgemm(CblasRowMajor, tb, ta, N, M, K, alpha, B, ldb, A, lda, beta, C, ldc);
        return;
    }
    int at = ta != CblasNoTrans, bt = tb != CblasNoTrans;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double acc = 0.0;
            for (int k = 0; k < K; k++) {
                float a = at ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float b = bt ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += (double)a * b;
            }
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
    }
}
