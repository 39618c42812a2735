/* kernels/cpu/cpu_ops.h — the CPU (reference) op backend: constructor and the CPU-only entry
 * points that tests and tools use directly (both SSD scan algorithms, the sampler core).
 *
 * Files: cpu_backend.c (table, memory, weight loading, scratch, thread pool), cpu_dense.c
 * (embed, norms, matmul: fixed-order kernel for small T, OpenBLAS sgemm above, SwiGLU),
 * cpu_attention.c (RoPE, paged KV write, causal GQA attention), cpu_mamba.c (conv1d, SSD scan
 * chunked + recurrent, gated RMSNorm), cpu_sample.c (sampling).
 * Everything is fp32; every op is synchronous. Ops split work over the backend's thread pool
 * (THINKFAST_CPU_THREADS) without changing any output's arithmetic.
 *
 * Sampling semantics (the CUDA backend should match them): temperature, then top-k (ties to
 * the lower id), top-p over the top-k-renormalised distribution (shortest prefix reaching
 * top_p, crossing token kept), then min-p (p >= min_p * p_max); the draw u = philox_uniform(seed,
 * problem, sample, step) walks the kept tokens in ascending id order and picks the first whose
 * running mass exceeds u * (kept mass). Greedy: argmax, lowest id on ties.
 */
#ifndef THINKFAST_CPU_OPS_H
#define THINKFAST_CPU_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

/* Creates the CPU backend ("cpu"). Never fails except on out-of-memory (aborts). */
op_backend *op_cpu_new(char *err, size_t errlen);

/* One sequence of the SSD scan, fp32 throughout. x [L, H, P], dt [L, H] (raw), B, C [L, G, N],
 * y [L, H, P]; state [H, P, N] is the initial state and receives the final state.
 * The recurrent form steps h_t = exp(dt' A) h_{t-1} + dt' x_t B_t^T token by token; the
 * chunked form (SSD) splits the sequence in chunks of `chunk` tokens: within a chunk the
 * output is the quadratic form y = (L o C B^T) (dt x) with the segment-sum decay matrix L, and
 * the state is passed between chunks. Both compute the same function up to rounding. */
void cpu_ssd_scan_recurrent(float *y, const float *x, const float *dt, const float *A_log,
                            const float *Bm, const float *Cm, const float *D,
                            const float *dt_bias, float *state, int L, int H, int P, int G,
                            int N, float dt_min, float dt_max);
void cpu_ssd_scan_chunked(float *y, const float *x, const float *dt, const float *A_log,
                          const float *Bm, const float *Cm, const float *D, const float *dt_bias,
                          float *state, int L, int H, int P, int G, int N, int chunk,
                          float dt_min, float dt_max);

/* Picks one token from logits[V] with params (see op_sample_params). work must hold
 * cpu_sample_work_bytes(V) bytes, 4-byte aligned (no allocation per call). Greedy when
 * temperature <= 0 or top_k == 1. */
size_t cpu_sample_work_bytes(int V);
int32_t cpu_sample_row(const float *logits, int V, const op_sample_params *p, void *work);

/* Matmuls with at most CPU_SMALL_T rows use a fixed-order kernel (batch-invariant results);
 * more rows go to OpenBLAS. y[T,N] (=|+=) x[T,K] W[N,K]^T. */
#define CPU_SMALL_T 64
void cpu_matmul_small(float *y, const float *x, const float *w, int T, int K, int N, int accumulate);

/* softplus with PyTorch's threshold (x > 20: x), used by the scan. */
static inline float cpu_softplus(float x) {
    return x > 20.0f ? x : log1pf(expf(x));
}

#endif
