/* workers/model/model_random.h — writes small random-weight HF model directories (config.json +
 * model.safetensors) for Llama, Bamba and Mamba2, for engine tests and CPU benchmarks. The
 * weights are scaled so activations stay O(1) through the layers; the same spec and seed give
 * the same bytes.
 */
#ifndef THINKFAST_MODEL_RANDOM_H
#define THINKFAST_MODEL_RANDOM_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "workers/model/config.h"

typedef struct model_random_spec {
    model_arch arch;
    int vocab, hidden, layers, intermediate;     /* intermediate ignored for Mamba2 */
    int heads, kv_heads, head_dim;               /* attention (llama; bamba attention layers) */
    int tie;                                     /* tie_word_embeddings */
    double partial_rotary;                       /* 0 = leave default */
    int llama3_rope;                             /* llama: rope_scaling llama3 (factor 8) */
    int attn_layers[16], n_attn_layers;          /* bamba: attention layer indices */
    int m_heads, m_head_dim, m_groups, m_d_state, m_d_conv, m_expand, m_chunk;
    int proj_bias;                               /* mamba in_proj/out_proj biases; llama/bamba attention + mlp biases */
    op_dtype dtype;                              /* stored dtype (F32 or BF16) */
    int max_position;                            /* max_position_embeddings (0: 4096) */
    uint64_t seed;
} model_random_spec;

/* Creates dir (mkdir -p) and writes config.json and model.safetensors. 0 ok; -1 with err. */
int model_write_random(const char *dir, const model_random_spec *s, char *err, size_t errlen);

/* Parameter count of the spec (for reporting). */
int64_t model_random_params(const model_random_spec *s);

#endif
