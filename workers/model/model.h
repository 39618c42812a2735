/* workers/model/model.h — Llama, Bamba (hybrid and pure Mamba-2) and Mamba2 causal LMs: weights
 * loaded from an HF directory onto an op backend, and one forward written once against the op
 * table (kernels/ops.h), used for prefill and decode alike.
 *
 * Forward over a step: tokens of several sequences flattened (kv_batch), each sequence with
 * its state slot and cache pages; produces fp32 logits in backend memory, either for every
 * token or for the last token of each sequence. HF semantics: RMSNorm weight multiply,
 * rotate_half RoPE (partial rotary, llama3 scaling), SwiGLU MLP with gate/up fused at load,
 * Mamba-2 mixer (in_proj split [z, x, B, C, dt] at load into five matrices, causal conv1d +
 * SiLU over x|B|C, dt = clamp(softplus(dt + dt_bias), time_step_limit), A = -exp(A_log),
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

#endif
