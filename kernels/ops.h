/* kernels/ops.h — the op interface: every model forward (workers/model/) is written once
 * against this table, and each backend implements it:
 *   kernels/cpu/  — the reference: fp32 activations and weights, portable C (+ OpenBLAS sgemm);
 *   kernels/cuda/ — bf16 weights and activations, fp32 accumulation, fp32 SSM state.
 *
 * Memory. Pointers passed to ops are backend memory (host memory for cpu, device memory for
 * cuda) obtained from alloc(); the model never dereferences them itself. "act" tensors have
 * the backend's activation dtype (act_dtype, element size act_bytes); weights are stored in
 * the same dtype; SSM/conv state and logits are always fp32. Index arrays (ids, positions,
 * block tables, cu_seqlens, slots) are int32 in backend memory, uploaded by the caller.
 *
 * Layouts (row-major):
 *   activations  [T, D]             T = number of tokens in the step (all sequences flattened)
 *   linear W     [N, K]             HF nn.Linear layout: y[T,N] = x[T,K] @ W^T
 *   q            [T, Hq,  hd]       k, v: [T, Hkv, hd]
 *   KV cache     [n_pages, page_size, Hkv, hd] per layer, separately for K and V (paged)
 *   block_table  [n_seq, max_pages] page ids of each sequence's pages, in order
 *   conv state   [n_slots, C, K-1]  fp32; the last K-1 inputs of the sequence, oldest first
 *   ssm state    [n_slots, H, P, N] fp32 (heads, head_dim, d_state)
 *
 * Sequences in a step. Ops that need sequence structure get `cu_seqlens` [n_seq+1] (token
 * offsets of each sequence in the flattened T, prefix sums) and `slots` [n_seq] (which
 * state slot each sequence owns). Decode is the case where every sequence has one token.
 *
 * Contracts: shapes are asserted by the host launchers (CHECK, abort on a caller bug);
 * every op writes every element of its output; ops run in stream order (cuda) and are
 * synchronous on the cpu. After sync() all previous work is done.
 */
#ifndef THINKFAST_OPS_H
#define THINKFAST_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { OP_F32 = 0, OP_BF16 = 1, OP_F16 = 2 } op_dtype;

/* Sampling parameters for one row of logits. The random number used for a row is a pure
 * function of (seed, problem, sample, step): see kernels/philox.h. */
typedef struct op_sample_params {
    float temperature;  /* <= 0: greedy (argmax, lowest id wins ties) */
    float top_p;        /* 1 = off */
    int32_t top_k;      /* 0 = off */
    float min_p;        /* 0 = off; keep tokens with p >= min_p * p_max */
    uint64_t seed;
    uint32_t problem, sample, step;
} op_sample_params;

typedef struct op_backend op_backend;
struct op_backend {
    const char *name;      /* "cpu", "cuda:0" */
    op_dtype act_dtype;    /* OP_F32 (cpu) or OP_BF16 (cuda) */
    size_t act_bytes;      /* 4 or 2 */
    void *impl;            /* backend-private state (streams, handles, workspaces) */

    /* --- memory --- */
    void *(*alloc)(op_backend *b, size_t bytes);            /* NULL on out-of-memory */
    void (*free)(op_backend *b, void *p);
    void (*upload)(op_backend *b, void *dst, const void *src_host, size_t bytes);
    void (*download)(op_backend *b, void *dst_host, const void *src, size_t bytes);
    void (*copy)(op_backend *b, void *dst, const void *src, size_t bytes);
    void (*memset0)(op_backend *b, void *dst, size_t bytes);
    void (*sync)(op_backend *b);
    /* Converts n checkpoint elements of dtype src_dtype (host memory) into the backend's
     * act dtype at dst (backend memory). */
    void (*load_weight)(op_backend *b, void *dst, const void *src_host, op_dtype src_dtype, size_t n);
    /* Bytes of free backend memory (cuda: cudaMemGetInfo; cpu: available RAM). */
    size_t (*mem_free)(op_backend *b);

    /* --- dense ops --- */
    /* out[T,D] = table[ids[t], :] */
    void (*embed)(op_backend *b, void *out, const void *table, const int32_t *ids, int T, int D);
    /* out = x / rms(x) * w, per row; rms over D with eps. out may alias x. */
    void (*rmsnorm)(op_backend *b, void *out, const void *x, const void *w, int T, int D, float eps);
    /* resid += x; out = rmsnorm(resid) * w (fused residual add + norm). */
    void (*add_rmsnorm)(op_backend *b, void *resid, const void *x, void *out, const void *w,
                        int T, int D, float eps);
    /* y[T,N] (=|+=) x[T,K] @ W[N,K]^T. accumulate: add into y (residual). */
    void (*matmul)(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N,
                   int accumulate);
    /* Same with an fp32 output (LM head -> logits). */
    void (*matmul_f32out)(op_backend *b, float *y, const void *x, const void *w, int T, int K, int N);
    /* out[T,F] = silu(gu[T, 0:F]) * gu[T, F:2F]  (gate and up projections stored concatenated). */
    void (*swiglu)(op_backend *b, void *out, const void *gu, int T, int F);
    /* y[i] += x[i] for n elements. */
    void (*add)(op_backend *b, void *y, const void *x, size_t n);

    /* --- attention --- */
    /* The attention layer's step inputs, fused: qkv [T, (Hq + 2 Hkv) hd] holds each token's q | k | v
     * (one matmul against the concatenated q/k/v weights). Rotary embedding (HF "rotate_half"
     * convention on the first rot_dim dims of each head; rot_dim 0 = none, rot_dim < hd = partial)
     * is applied to q and k; the rotated q is written to q_out [T, Hq, hd]; the rotated k and the
     * v of token t are written into the paged caches at flat slot slot_mapping[t]
     * (= page * page_size + offset). inv_freq [rot_dim/2] fp32 (already llama3-scaled), pos [T]. */
    void (*qkv_rope_write)(op_backend *b, void *q_out, const void *qkv, const int32_t *pos,
                           const float *inv_freq, void *k_cache, void *v_cache,
                           const int32_t *slot_mapping, int T, int Hq, int Hkv, int hd, int rot_dim);
    /* Causal GQA attention over the paged cache (the step's own k/v already written).
     * Token t belongs to sequence s (cu_seqlens) and sits at position pos[t]; it attends to
     * positions 0..pos[t] of sequence s, found through block_table[s]. out [T, Hq, hd]. */
    void (*attention)(op_backend *b, void *out, const void *q, const void *k_cache,
                      const void *v_cache, const int32_t *block_table, int max_pages,
                      const int32_t *cu_seqlens, const int32_t *pos, int n_seq, int T,
                      int Hq, int Hkv, int hd, int page_size, float scale);

    /* --- Mamba-2 --- */
    /* Causal depthwise conv1d over each sequence + bias + SiLU.
     * x [T, C] with row stride x_ld >= C elements (x may be a column block of a wider matrix,
     * e.g. the x|B|C columns of the fused in_proj output); out [T, C] contiguous (act).
     * w [C, K] (act), bias [C] (act or NULL). conv_state [n_slots, C, K-1] fp32 gives each
     * sequence's previous inputs (zeros for a fresh sequence: the caller clears the slot) and is
     * updated to the last K-1 inputs. */
    void (*conv1d)(op_backend *b, void *out, const void *x, int x_ld, const void *w, const void *bias,
                   float *conv_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                   int T, int C, int K);
    /* The SSD scan. x [T, H, P], B, C [T, G, N] (act; head h uses group h / (H/G)), rows of
     * x, B and C with stride xbc_ld elements (>= H P and >= G N: they may be column blocks of
     * the conv output x|B|C); dt [T, H] (act, raw: before softplus) with row stride dt_ld >= H.
     * A_log [H], D [H], dt_bias [H] (fp32).
     * dt' = clamp(softplus(dt + dt_bias), dt_min, dt_max); A = -exp(A_log);
     * h_t = exp(dt' A) h_{t-1} + dt' x_t B_t^T;  y_t = h_t C_t + D x_t.
     * ssm_state [n_slots, H, P, N] fp32: initial state of each sequence, updated to its final
     * state. y [T, H, P] (act, contiguous). chunk: chunk length for the chunked (SSD) algorithm;
     * backends use the recurrent form when every sequence has one token. */
    void (*ssd_scan)(op_backend *b, void *y, const void *x, const void *dt, const float *A_log,
                     const void *Bm, const void *Cm, const float *D, const float *dt_bias,
                     float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                     int T, int xbc_ld, int dt_ld, int H, int P, int G, int N, int chunk,
                     float dt_min, float dt_max);
    /* Optional (NULL when the backend has none): conv1d then ssd_scan fused, for a decode step
     * (exactly one token per sequence: T == n_seq). x, x_ld, conv_w, conv_b, conv_state, C, K as
     * conv1d; the conv output is not stored: the scan reads it as its x | B | C column blocks
     * (C = H P + 2 G N), rounded to act precision as conv1d would store it; dt (row stride dt_ld)
     * and the rest as ssd_scan. Same results as the two ops. Returns 0, or -1 having done nothing
     * for a shape it does not take (the caller then runs conv1d and ssd_scan). */
    int (*conv_ssd_decode)(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w, const void *conv_b,
                           float *conv_state, const void *dt, int dt_ld, const float *A_log, const float *D,
                           const float *dt_bias, float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots,
                           int n_seq, int C, int K, int H, int P, int G, int N, float dt_min, float dt_max);
    /* Gated RMSNorm (HF MambaRMSNormGated, norm_before_gate = False):
     * g = y * silu(z); out = g / rms_group(g) * w, rms over groups of group_size channels.
     * y, out [T, D] contiguous; z [T, D] with row stride z_ld >= D. */
    void (*gated_rmsnorm)(op_backend *b, void *out, const void *y, const void *z, int z_ld, const void *w,
                          int T, int D, int group_size, float eps);

    /* --- sampling --- */
    /* Picks one token per row of logits [B, V] (fp32, backend memory) with params[B] (host
     * memory); writes ids_host[B] (host memory). Only ids cross to the host. */
    void (*sample)(op_backend *b, int32_t *ids_host, const float *logits, int B, int V,
                   const op_sample_params *params);

    void (*destroy)(op_backend **b);
};

/* Creates a backend by name: "cpu", "cuda", "cuda:N". Returns NULL and writes a message into
 * err when the name is unknown or the device is absent ("no CUDA device: ..."); callers fall
 * back to "cpu" when they asked for "auto". */
op_backend *op_backend_new(const char *name, char *err, size_t errlen);

/* 1 if a CUDA device is present and usable, 0 otherwise (always 0 in a GPU=0 build). */
int op_cuda_available(void);

/* Element size of a dtype in bytes. */
size_t op_dtype_size(op_dtype t);

#endif
