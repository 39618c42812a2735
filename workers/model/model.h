/* workers/model/model.h — Llama, Bamba (hybrid and pure Mamba-2) and Mamba2 causal LMs: weights
 * loaded from an HF directory onto an op backend, and one forward written once against the op
 * table (kernels/ops.h), used for prefill and decode alike.
 *
 * Forward over a step: tokens of several sequences flattened (kv_batch), each sequence with
 * its state slot and cache pages; produces fp32 logits in backend memory, either for every
 * token or for the last token of each sequence. HF semantics: RMSNorm weight multiply,
 * rotate_half RoPE (partial rotary, llama3 scaling), q/k/v fused at load into one matrix, SwiGLU
 * MLP with gate/up fused at load, Mamba-2 mixer (in_proj kept fused [z | x | B | C | dt]: one
 * matmul whose column blocks the next ops read with a row stride; causal conv1d + SiLU over x|B|C, dt = clamp(softplus(dt + dt_bias), time_step_limit), A = -exp(A_log),
 * D skip, gated RMSNorm over the whole d_inner as transformers' MambaRMSNormGated does (its
 * eps is rms_norm_eps / layer_norm_epsilon), out_proj).
 * Projection biases (attention_bias, mlp_bias, Mamba in/out proj bias) are supported.
 */
#ifndef THINKFAST_MODEL_H
#define THINKFAST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "workers/model/config.h"
#include "workers/model/kvcache.h"

typedef struct model model;

/* Loads DIR (config.json + safetensors) onto be (borrowed; must outlive the model).
 * 0 ok; -1 with err naming the file / tensor ("model.safetensors: tensor
 * model.layers.0.mlp.up_proj.weight: shape [64, 32], expected [172, 64]"). */
int model_load(const char *dir, op_backend *be, model **out, char *err, size_t errlen);
void model_destroy(model **m);

const model_config *model_cfg(const model *m);
op_backend *model_backend(const model *m);
/* Bytes of backend memory the weights take. */
size_t model_weight_bytes(const model *m);

/* Runs one step. b must be finished (kv_batch_finish) and its sequences' state lives in kv.
 * all_logits: 1 = logits for every token [b->T, V], 0 = for the last token of each sequence
 * [b->n_seq, V]. Returns fp32 logits in backend memory, valid until the next call. */
const float *model_forward(model *m, kv_cache *kv, const kv_batch *b, int all_logits);

/* Reward-model support (workers/score/reward.c): runs model_forward and returns the final-normed
 * hidden states it fed to the LM head, in the backend's activation dtype (act_dtype) and
 * memory: [b->T, hidden] when all_tokens = 1, else [b->n_seq, hidden] for the last token of
 * each sequence. Valid until the next forward. */
const void *model_forward_hidden(model *m, kv_cache *kv, const kv_batch *b, int all_tokens);

/* ---- decode steps over a fixed workspace (the CUDA-graph decode path, engine_graph.c) ----
 * A model_step is a decode workspace for up to max_seqs sequences of one token each whose
 * buffers (activations, logits and the index arrays of model_step_io) are allocated once and
 * never move, so the ops model_step_forward issues can be captured in a CUDA graph once per
 * row count and replayed after new inputs are uploaded into io. */
typedef struct model_step model_step;
typedef struct model_step_io {
    int32_t *tokens, *pos, *slot_mapping, *slots;  /* [max_seqs], backend memory */
    int32_t *cu_seqlens;                           /* [max_seqs + 1] */
    int32_t *block_table;                          /* [max_seqs, max_pages] (fixed row width) */
    float *logits;                                 /* [max_seqs, V], written by model_step_forward */
    int max_seqs, max_pages;
} model_step_io;

/* Allocates the workspace (backend memory). 0 ok; -1 with err ("model_step: out of cuda:0 memory
 * for a 4096-sequence decode workspace (... bytes)"). The step borrows m: destroy it first. */
int model_step_new(model *m, int max_seqs, int max_pages, model_step **out, char *err, size_t errlen);
void model_step_destroy(model_step **s);
const model_step_io *model_step_io_of(const model_step *s);
/* Backend bytes one row of a model_step takes (memory planning). */
size_t model_step_row_bytes(const model *m, int max_pages);
/* The decode step of rows 0..n-1 (1 <= n <= max_seqs; row i = sequence i, one token at pos[i])
 * with inputs already in io; the block table has max_pages columns. Issues only stream-ordered
 * backend ops (no upload, download, sync or allocation once the backend's own plans and scratch
 * exist: run it eagerly once per n before capturing it). Returns io->logits [n, V]. Equals
 * model_forward(all_logits = 0) of the same rows. */
const float *model_step_forward(model *m, kv_cache *kv, model_step *s, int n);

#endif
