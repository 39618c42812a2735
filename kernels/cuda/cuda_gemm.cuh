/* kernels/cuda/cuda_gemm.cuh — the skinny decode GEMM of the CUDA backend (cuda_gemm.cu):
 * y[T,N] (=|+=) x[T,K] W[N,K]^T for T <= 128 tokens, bf16 operands, fp32 accumulation, bf16 or
 * fp32 output, streaming W straight from memory into tensor-core fragments (no shared-memory
 * staging) with split-K across a thread-block cluster (partials reduced through distributed
 * shared memory, no scratch, one kernel). mm_run in cuda_backend.cu tries it before cuBLASLt when
 * THINKFAST_MM_SKINNY=1 (opt-in until it has run and been measured on a device).
 * CUDA/C++ only.
 */
#ifndef THINKFAST_CUDA_GEMM_CUH
#define THINKFAST_CUDA_GEMM_CUH

#include "kernels/cuda/cuda_internal.cuh"

/* Launches y = x W^T (acc 0) or y += x W^T (acc 1) on c->stream; y is bf16 [T,N], or fp32 when
 * f32out. Returns 0 when launched, -1 (nothing launched, nothing written) for what it does not
 * handle, so that the caller runs cuBLASLt instead: T outside 1..128, K not a positive multiple
 * of 64, N < 1, x or w not 16-byte aligned, y not 4-byte aligned, or a first use of a batch
 * width during a graph capture (its one-time setup, cudaFuncSetAttribute and the cluster
 * occupancy query, runs outside captures only), or a variant whose launch was refused once (a
 * warning is logged; that batch width then stays on cuBLASLt). Graph-capturable: no
 * allocation, no sync, no scratch. Switches read at first use: THINKFAST_MM_SKINNY_MT=1 selects
 * the one-m-tile-per-warp variant for T <= 64 (A/B); THINKFAST_MM_SKINNY_TMAX=n (1..128) leaves
 * T > n to cuBLASLt. */
int cu_gemm_skinny(cu_impl *c, void *y, const void *x, const void *w, int T, int K, int N, int acc, int f32out);

#endif
