/* kernels/cuda/cuda_internal.cuh — what the .cu files of the CUDA backend share: the backend's
 * private state (stream, cuBLASLt handle, workspaces), bf16 helpers and the launchers each
 * .cu file exports to cuda_backend.cu, which wires them into the op_backend table.
 * CUDA/C++ only: C callers use kernels/cuda/cuda_backend.h.
 */
#ifndef THINKFAST_CUDA_INTERNAL_CUH
#define THINKFAST_CUDA_INTERNAL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"

typedef __nv_bfloat16 bf16;

#define CU_MM_CACHE 96
#define CU_PROF_MAX 4096
#define CU_RETIRED_MAX 32 /* cached cuBLASLt matmul plans (shape, accumulate, out type) */

typedef struct cu_mm_plan {
    int T, K, N, accumulate, f32out, valid;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c, d;
    cublasLtMatmulAlgo_t algo;
} cu_mm_plan;

/* Backend-private state behind op_backend.impl. */
typedef struct cu_impl {
    int device;
    int n_sm;
    cudaStream_t stream;
    cudaEvent_t ev[2];    /* op_cuda_timer_begin/end */
    cudaEvent_t ev_tune[2]; /* matmul autotuning */
    cudaEvent_t *prof_ev; /* [CU_PROF_MAX] op_cuda_prof_*, created on first use */
    int *prof_slot;
    int prof_n;
    cublasLtHandle_t lt;
    void *lt_ws;          /* cuBLASLt workspace (device) */
    size_t lt_ws_bytes;
    cu_mm_plan mm[CU_MM_CACHE];
    int mm_next;          /* round-robin eviction */
    int attn_mode;        /* decode attention: 0 tensor cores (default), 1 FMA decode kernel, 2 general kernel
                           * (THINKFAST_ATTN_DECODE=mma|fma|generic) */
    int attn_prefill_mma; /* prefill attention on tensor cores (cuda_attn_prefill_mma.cu; default, validated on
                           * an H100), 0: k_attention (THINKFAST_ATTN_PREFILL=generic) */
    int ssd_rpt;          /* decode scan rows per thread, 8 (default) or 4 (THINKFAST_SSD_RPT=4) */
    int ssd_chunked;      /* prefill scan in the chunked tensor-core form (cuda_ssd_chunked.cu): 1 (default;
                           * validated on an H100, 1.2-1.4x the recurrent kernel), 2 (fewer hi/lo splits),
                           * 0: the recurrent kernel (THINKFAST_SSD_CHUNKED=0|1|2) */
    int pdl;              /* programmatic dependent launch of the decode step's own kernels (cu_launch):
                           * 1 (default), THINKFAST_PDL=0 off */
    int conv_ssd_fused;   /* decode: conv1d + scan in one kernel (op conv_ssd_decode); THINKFAST_CONV_SSD=0: off */
    int mm_autotune;      /* time the heuristic's candidates per new shape: 2 hot (default), 1 with W
                           * evicted from L2 first (THINKFAST_MM_AUTOTUNE=cold, opt-in), 0 off (=0) */
    void *l2_flush;       /* 2 x L2 bytes written before each cold timing run (allocated at first use) */
    size_t l2_flush_bytes;
    int l2_flush_failed;  /* could not allocate it: tune hot */
    /* Scratch for split-K attention partials and sampling; grown outside graph capture only. */
    void *scratch;
    size_t scratch_bytes;
    void *retired[CU_RETIRED_MAX]; /* earlier scratch buffers (graphs may still use them) */
    int n_retired;
    int capturing;        /* inside op_cuda_graph_begin/end */
    /* Sampling: device params, device ids, pinned host ids. */
    void *samp_params;    /* op_sample_params[samp_cap] (device) */
    int32_t *samp_ids;    /* [samp_cap] (device) */
    int32_t *samp_ids_host; /* [samp_cap] pinned */
    int samp_cap;
    /* Staging buffer for load_weight conversions. */
    void *stage;
    size_t stage_bytes;
    char name[32];
} cu_impl;

static inline cu_impl *cu_of(op_backend *b) { return (cu_impl *)b->impl; }

/* Ensures the scratch buffer holds at least `bytes`; aborts if that needs a reallocation
 * while a graph is being captured (warm up each bucket eagerly before capturing it). */
void *cu_scratch(cu_impl *c, size_t bytes);

/* ---- programmatic dependent launch (sm_90) ----
 * A kernel launched through cu_launch may be scheduled while the kernel before it in the stream
 * is still running (its blocks wait in cu_pdl_wait), which hides the launch and ramp of the
 * small latency-bound kernels between a decode step's matmuls. Contract of such a kernel: it
 * calls cu_pdl_wait() before its first global memory access (read or write), and may call
 * cu_pdl_trigger() to let the next such kernel be scheduled early. Both are no-ops for a kernel
 * launched plainly, so the kernels stay correct under `<<<>>>` and THINKFAST_PDL=0. */
static __device__ __forceinline__ void cu_pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
static __device__ __forceinline__ void cu_pdl_trigger() {
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
}

template <typename... KArgs, typename... Args>
static inline void cu_launch(const cu_impl *c, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                             Args... args) {
    if (!c->pdl) {
        kernel<<<grid, block, smem, c->stream>>>(args...);
        return;
    }
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, ((KArgs)args)...));
}

static inline unsigned cu_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    return (unsigned)(b ? b : 1);
}

/* ---- launchers (one group per .cu file) ---- */

/* cuda_dense.cu */
void cu_embed(op_backend *b, void *out, const void *table, const int32_t *ids, int T, int D);
void cu_rmsnorm(op_backend *b, void *out, const void *x, const void *w, int T, int D, float eps);
void cu_add_rmsnorm(op_backend *b, void *resid, const void *x, void *out, const void *w, int T, int D,
                    float eps);
void cu_swiglu(op_backend *b, void *out, const void *gu, int T, int F);
void cu_add(op_backend *b, void *y, const void *x, size_t n);
void cu_qkv_rope_write(op_backend *b, void *q_out, const void *qkv, const int32_t *pos, const float *inv_freq,
                       void *k_cache, void *v_cache, const int32_t *slot_mapping, int T, int Hq, int Hkv, int hd,
                       int rot_dim);
void cu_gated_rmsnorm(op_backend *b, void *out, const void *y, const void *z, int z_ld, const void *w, int T, int D,
                      int group_size, float eps);
void cu_convert_to_bf16(cudaStream_t s, bf16 *dst, const void *src, op_dtype src_dtype, size_t n);
void cu_fill_random_bf16(cudaStream_t s, bf16 *dst, size_t n, uint64_t seed, float lo, float hi);
void cu_fill_random_f32(cudaStream_t s, float *dst, size_t n, uint64_t seed, float lo, float hi);

/* cuda_attention.cu */
void cu_attention(op_backend *b, void *out, const void *q, const void *k_cache, const void *v_cache,
                  const int32_t *block_table, int max_pages, const int32_t *cu_seqlens, const int32_t *pos,
                  int n_seq, int T, int Hq, int Hkv, int hd, int page_size, float scale);

/* cuda_attn_prefill_mma.cu: the prefill form of cu_attention (same arguments and result) as a
 * flash-attention kernel on tensor cores (bf16 mma, fp32 online softmax). Returns 0 when
 * launched, -1 without doing anything when the call is not supported (head_dim other than 64 or
 * 128, page_size not a power of two in 16..256, a GQA group over 64, misaligned pointers): the
 * caller then runs the generic kernel. No host sync, no allocation: graph-capturable. */
int cu_attn_prefill_mma(cu_impl *c, void *out, const void *q, const void *k_cache, const void *v_cache,
                        const int32_t *block_table, int max_pages, const int32_t *cu_seqlens, const int32_t *pos,
                        int n_seq, int T, int Hq, int Hkv, int hd, int page_size, float scale);

/* cuda_mamba.cu */
void cu_conv1d(op_backend *b, void *out, const void *x, int x_ld, const void *w, const void *bias,
               float *conv_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq, int T, int C, int K);
void cu_ssd_scan(op_backend *b, void *y, const void *x, const void *dt, const float *A_log, const void *Bm,
                 const void *Cm, const float *D, const float *dt_bias, float *ssm_state,
                 const int32_t *cu_seqlens, const int32_t *slots, int n_seq, int T, int xbc_ld, int dt_ld, int H,
                 int P, int G, int N, int chunk, float dt_min, float dt_max);
int cu_conv_ssd_decode(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w, const void *conv_b,
                       float *conv_state, const void *dt, int dt_ld, const float *A_log, const float *D,
                       const float *dt_bias, float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots,
                       int n_seq, int C, int K, int H, int P, int G, int N, float dt_min, float dt_max);

/* cuda_ssd_chunked.cu: the fp32-state scan of a prefill step in the chunked SSD form (same
 * arguments and result as cu_ssd_scan). Returns 0 when done, -1 without doing anything when
 * the call is not supported (graph capture, P or N not a multiple of 8, N > 256, invalid
 * shapes): the caller then runs the recurrent kernel. Synchronises the stream (reads
 * cu_seqlens on the host). */
int cu_ssd_chunked(op_backend *b, void *y, const void *x, const void *dt, const float *A_log, const void *Bm,
                   const void *Cm, const float *D, const float *dt_bias, float *ssm_state, const int32_t *cu_seqlens,
                   const int32_t *slots, int n_seq, int T, int xbc_ld, int dt_ld, int H, int P, int G, int N,
                   int chunk, float dt_min, float dt_max);

/* cuda_sample.cu */
void cu_sample_async(op_backend *b, int32_t *ids_dev, const float *logits, int B, int V,
                     const op_sample_params *params_dev);

#endif
