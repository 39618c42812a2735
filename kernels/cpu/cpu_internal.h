/* kernels/cpu/cpu_internal.h — private to kernels/cpu/: the op functions each cpu_*.c file
 * provides to the table built in cpu_backend.c, and the shared scratch allocator.
 */
#ifndef THINKFAST_CPU_INTERNAL_H
#define THINKFAST_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

typedef struct cpu_pool cpu_pool;

/* Backend-private state: one growable scratch buffer (ops are synchronous and the backend is
 * used from one thread at a time, so one buffer suffices) and a worker thread pool. */
typedef struct cpu_impl {
    void *scratch;
    size_t scratch_bytes;
    cpu_pool *pool;
    int n_threads;      /* pool threads + the caller */
} cpu_impl;

/* Returns scratch of at least bytes (grown, never shrunk; 64-byte aligned). With parallel
 * tasks, carve it per thread: cpu_scratch(b, n_threads * per_thread). */
void *cpu_scratch(op_backend *b, size_t bytes);

/* Runs fn(arg, i, tid) for i in [0, n) on the pool (the caller takes part); tid in
 * [0, cpu_threads(b)) identifies the thread (for per-thread scratch). Returns when all are
 * done. Runs inline when n == 1 or the pool has one thread. Tasks must write disjoint memory. */
typedef void (*cpu_task_fn)(void *arg, int i, int tid);
void cpu_parallel_for(op_backend *b, int n, cpu_task_fn fn, void *arg);
int cpu_threads(const op_backend *b);

/* cpu_dense.c */
void cpu_embed(op_backend *b, void *out, const void *table, const int32_t *ids, int T, int D);
void cpu_rmsnorm(op_backend *b, void *out, const void *x, const void *w, int T, int D, float eps);
void cpu_add_rmsnorm(op_backend *b, void *resid, const void *x, void *out, const void *w, int T,
                     int D, float eps);
void cpu_matmul(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N,
                int accumulate);
void cpu_matmul_f32out(op_backend *b, float *y, const void *x, const void *w, int T, int K, int N);
void cpu_swiglu(op_backend *b, void *out, const void *gu, int T, int F);
void cpu_add(op_backend *b, void *y, const void *x, size_t n);

/* cpu_attention.c */
void cpu_qkv_rope_write(op_backend *b, void *q_out, const void *qkv, const int32_t *pos,
                       const float *inv_freq, void *k_cache, void *v_cache,
                       const int32_t *slot_mapping, int T, int Hq, int Hkv, int hd, int rot_dim);
void cpu_attention(op_backend *b, void *out, const void *q, const void *k_cache,
                   const void *v_cache, const int32_t *block_table, int max_pages,
                   const int32_t *cu_seqlens, const int32_t *pos, int n_seq, int T, int Hq,
                   int Hkv, int hd, int page_size, float scale);

/* cpu_mamba.c */
void cpu_conv1d(op_backend *b, void *out, const void *x, int x_ld, const void *w, const void *bias,
                float *conv_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                int T, int C, int K);
void cpu_ssd_scan(op_backend *b, void *y, const void *x, const void *dt, const float *A_log,
                  const void *Bm, const void *Cm, const float *D, const float *dt_bias,
                  float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                  int T, int xbc_ld, int dt_ld, int H, int P, int G, int N, int chunk, float dt_min,
                  float dt_max);
void cpu_gated_rmsnorm(op_backend *b, void *out, const void *y, const void *z, int z_ld, const void *w,
                       int T, int D, int group_size, float eps);

/* cpu_sample.c */
void cpu_sample(op_backend *b, int32_t *ids_host, const float *logits, int B, int V,
                const op_sample_params *params);

#endif
