/* kernels/cuda/cuda_check.h — CUDA_CHECK / CUBLAS_CHECK, built from CHECK_GEN (common/check.h).
 * Only for .cu files (it includes CUDA headers); C callers use kernels/cuda/cuda_backend.h.
 */
#ifndef THINKFAST_CUDA_CHECK_H
#define THINKFAST_CUDA_CHECK_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "common/check.h"

/* CUDA runtime call: rc == cudaSuccess. */
#define CUDA_CHECK(call) \
    do { cudaError_t cuda_check_rc_ = (call); \
         CHECK_GEN(cuda_check_rc_ == cudaSuccess, #call, cudaGetErrorString(cuda_check_rc_)); } while (0)

/* cuBLAS / cuBLASLt call: rc == CUBLAS_STATUS_SUCCESS. */
#define CUBLAS_CHECK(call) \
    do { cublasStatus_t cublas_check_rc_ = (call); \
         CHECK_GEN(cublas_check_rc_ == CUBLAS_STATUS_SUCCESS, #call, cublasGetStatusString(cublas_check_rc_)); } while (0)

/* The last kernel launch (launch-configuration errors; asynchronous faults surface later). */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#endif
