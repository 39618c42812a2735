/* kernels/cuda/cuda_backend.h — the CUDA op backend (bf16 activations and weights, fp32
 * accumulation, fp32 SSM/conv state) and its device-side helpers, as plain C declarations:
 * C11 callers never see CUDA types. Implemented in the .cu files of kernels/cuda/ (and
 * cuda_plan.c); compiled only when GPU=1 (the Makefile then defines THINKFAST_CUDA=1 for C).
 *
 * Decode with CUDA graphs. The ops of one decode step can be captured once per batch-size
 * bucket and replayed:
 *     run the step eagerly once (sizes scratch buffers), then
 *     op_cuda_graph_begin(b); ...the step's ops on b...; g = op_cuda_graph_end(b);
 *     per step: upload ids/positions/slot mappings (b->upload), op_cuda_graph_launch(b, g),
 *               op_cuda_sample_async(...) or b->sample(...).
 * Inside a capture only stream-ordered device work is allowed: no upload/download/sync/sample
 * through the table (they abort with a message). Every pointer and scalar is frozen at
 * capture; the contents of device buffers (ids, positions, block tables, slot mappings,
 * cu_seqlens, slots) may change between replays. The attention kernel sizes its split-K
 * from the block-table capacity, not the positions, so growing contexts replay correctly.
 */
#ifndef THINKFAST_CUDA_BACKEND_H
#define THINKFAST_CUDA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no device or no driver (never aborts). */
int op_cuda_device_count(void);

/* Creates the CUDA backend on device `device` (0-based). Returns NULL and writes a message into
 * err ("no CUDA device: ...", "cuda:3: no such device (1 present)") on failure. Destroy with
 * b->destroy(&b). One backend per device per thread: ops do not switch the current device. */
op_backend *op_cuda_new(int device, char *err, size_t errlen);

/* Device name and memory ("NVIDIA H100 80GB HBM3, 132 SMs, 79.1 GiB") into buf. */
void op_cuda_describe(op_backend *b, char *buf, size_t len);

/* Grows the backend's scratch (split-K attention partials) to at least `bytes` now, so that a
 * later capture needs no allocation. */
void op_cuda_reserve_scratch(op_backend *b, size_t bytes);

/* ---- graphs ---- */
typedef struct op_cuda_graph op_cuda_graph;
/* Starts capturing the backend's stream. 0 ok, -1 (err set) if a capture is already open. */
int op_cuda_graph_begin(op_backend *b, char *err, size_t errlen);
/* Ends the capture and instantiates it. NULL (err set) if capture failed (an op that is not
 * capturable ran, see above). */
op_cuda_graph *op_cuda_graph_end(op_backend *b, char *err, size_t errlen);
/* Replays the graph on the backend's stream (asynchronous, stream-ordered). */
void op_cuda_graph_launch(op_backend *b, op_cuda_graph *g);
void op_cuda_graph_destroy(op_cuda_graph **g);

/* ---- sampling without host round trips (graph-capturable) ----
 * Like b->sample, but params [B] are in device memory and the ids [B] are written to device
 * memory; nothing is synchronised. */
void op_cuda_sample_async(op_backend *b, int32_t *ids_dev, const float *logits, int B, int V,
                          const op_sample_params *params_dev);

/* ---- bf16 SSM state (the option the issue asks to measure) ----
 * b->ssd_scan with the state [n_slots, H, P, N] stored in bf16 instead of fp32 (arithmetic
 * stays fp32; the state is rounded to bf16 once per call). Halves the decode state traffic. */
void op_cuda_ssd_scan_bf16state(op_backend *b, void *y, const void *x, const void *dt, const float *A_log,
                                const void *Bm, const void *Cm, const float *D, const float *dt_bias,
                                void *ssm_state_bf16, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                                int T, int xbc_ld, int dt_ld, int H, int P, int G, int N, float dt_min, float dt_max);

/* The fused decode conv1d + scan (b->conv_ssd_decode) with the SSM state stored in bf16: same
 * contract and return value (-1 for a shape it does not take, nothing written); the state is
 * rounded to bf16 once per call, as op_cuda_ssd_scan_bf16state does. */
int op_cuda_conv_ssd_decode_bf16state(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w,
                                      const void *conv_b, float *conv_state, const void *dt, int dt_ld,
                                      const float *A_log, const float *D, const float *dt_bias, void *ssm_state_bf16,
                                      const int32_t *cu_seqlens, const int32_t *slots, int n_seq, int C, int K, int H,
                                      int P, int G, int N, float dt_min, float dt_max);

/* ---- timing ---- */
/* Milliseconds of device time taken by `iters` back-to-back replays of g (CUDA events around
 * them; synchronises). */
double op_cuda_graph_time_ms(op_backend *b, op_cuda_graph *g, int iters);
/* Event pair for timing arbitrary stream work: begin records, end records + synchronises and
 * returns the elapsed milliseconds. */
void op_cuda_timer_begin(op_backend *b);
double op_cuda_timer_end(op_backend *b);

/* ---- per-op profiling (eager runs; events between ops) ----
 * prof_begin records a start event; prof_mark(slot) attributes the device time since the
 * previous mark to slot (0..63); prof_end synchronises and adds each slot's milliseconds into
 * ms[0..n_slots). At most 4095 marks per begin/end (further marks are ignored). */
void op_cuda_prof_begin(op_backend *b);
void op_cuda_prof_mark(op_backend *b, int slot);
void op_cuda_prof_end(op_backend *b, double *ms, int n_slots);

/* ---- test and benchmark helpers ---- */
/* Fills n elements at dst (device) with uniform values in [lo, hi) from a stateless hash of
 * (seed, index); dtype OP_BF16 or OP_F32. Stream-ordered. */
void op_cuda_fill_uniform(op_backend *b, void *dst, op_dtype dtype, size_t n, uint64_t seed, float lo,
                          float hi);

/* ---- memory planning (kernels/cuda/cuda_plan.c; pure arithmetic) ----
 * Sizes the KV page pool and the Mamba state slots from free device memory: the largest batch
 * B with B * per_sequence_bytes <= free_bytes - reserve_bytes, where a sequence owns
 * ceil(own_tokens / page_size) KV pages (prompt pages that are full are shared by the
 * samples_per_prompt samples of a problem), one state slot and its step activations. */
typedef struct op_cuda_plan_req {
    size_t free_bytes;       /* device memory free now (after weights), b->mem_free(b) */
    size_t reserve_bytes;    /* kept free: cuBLAS workspace, graphs, fragmentation */
    size_t page_bytes;       /* one KV page, K and V, over all attention layers (0: none) */
    int page_size;           /* tokens per page */
    size_t state_bytes;      /* one sequence's SSM + conv state over all Mamba layers */
    size_t act_bytes;        /* one sequence's share of a decode step's activations + logits */
    int max_len;             /* prompt + generated tokens of a sequence */
    int prompt_len;          /* tokens of the (shared) prompt */
    int samples_per_prompt;  /* >= 1; 1: nothing shared */
    int batch_cap;           /* plan at most this many sequences (0: no cap) */
} op_cuda_plan_req;
typedef struct op_cuda_plan {
    int max_batch;           /* sequences that fit (0 if not even one) */
    int pages_per_seq;       /* pages a sequence owns (its share of shared prompt pages rounded up) */
    int n_pages;             /* KV pages to allocate for max_batch sequences */
    int n_state_slots;       /* Mamba state slots to allocate (= max_batch) */
    size_t per_seq_bytes, kv_bytes, state_bytes, act_bytes, total_bytes;
} op_cuda_plan;
/* 0 ok; -1 with err set ("out of device memory: one sequence needs 2.1 GiB, 1.0 GiB free")
 * when not even one sequence fits or the request is inconsistent. */
int op_cuda_plan_memory(const op_cuda_plan_req *req, op_cuda_plan *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
