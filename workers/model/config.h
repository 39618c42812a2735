/* workers/model/config.h — the model hyper-parameters, read from an HF config.json.
 *
 * Supported architectures ("architectures"[0], or "model_type"):
 *   LlamaForCausalLM  (llama)  — Llama 2/3: GQA, head_dim, tied/untied embeddings, RoPE default
 *                                or llama3 scaling (transformers 4.x rope_theta + rope_scaling,
 *                                5.x rope_parameters);
 *   BambaForCausalLM  (bamba)  — per layer a Mamba-2 mixer or attention (attn_layer_indices),
 *                                each followed by a SwiGLU MLP; empty list = pure Mamba-2;
 *   Mamba2ForCausalLM (mamba2) — Mamba-2 mixer blocks only, no MLP (intermediate = 0).
 * Weight names are HF's (as transformers 5.x saves them; lm_head.weight absent when tied):
 *   Llama:  model.embed_tokens.weight, model.norm.weight, lm_head.weight,
 *           model.layers.N.{input_layernorm,post_attention_layernorm}.weight,
 *           model.layers.N.self_attn.{q,k,v,o}_proj.weight, model.layers.N.mlp.{gate,up,down}_proj.weight
 *   Bamba:  model.embed_tokens.weight, model.final_layernorm.weight, lm_head.weight,
 *           model.layers.N.{input_layernorm,pre_ff_layernorm}.weight,
 *           model.layers.N.feed_forward.{gate,up,down}_proj.weight,
 *           attention layers: model.layers.N.self_attn.{q,k,v,o}_proj.weight,
 *           mamba layers: model.layers.N.mamba.{in_proj.weight[,bias], conv1d.weight [C,1,K],
 *           conv1d.bias, dt_bias, A_log, D, norm.weight, out_proj.weight[,bias]}
 *   Mamba2: backbone.embeddings.weight, backbone.norm_f.weight, lm_head.weight,
 *           backbone.layers.N.norm.weight, backbone.layers.N.mixer.{same names as Bamba's mamba}
 * in_proj rows are [z (d_inner), x B C (conv_dim), dt (heads)]. HF's gated RMSNorm in both
 * Bamba and Mamba2 normalises over the whole d_inner (not per group): see
 * tests/fixtures/models/README.md for what the golden fixtures recorded.
 * Errors name the file and the field:
 * "models/x/config.json: num_key_value_heads: 3 does not divide num_attention_heads 8".
 */
#ifndef THINKFAST_MODEL_CONFIG_H
#define THINKFAST_MODEL_CONFIG_H

#include <stddef.h>

#define MODEL_MAX_LAYERS 256
#define MODEL_MAX_EOS 8

typedef enum { MODEL_LLAMA = 1, MODEL_BAMBA = 2, MODEL_MAMBA2 = 3 } model_arch;
typedef enum { MODEL_ROPE_DEFAULT = 0, MODEL_ROPE_LLAMA3 = 1, MODEL_ROPE_LINEAR = 2 } model_rope_type;

typedef struct model_config {
    model_arch arch;
    char arch_name[64];         /* "LlamaForCausalLM", ... */
    int seq_cls;                /* 1: LlamaForSequenceClassification (a `score.weight` head, no LM
                                 * head: the model's logits are unused; reward models read it) */
    int vocab_size;
    int hidden;                 /* hidden_size */
    int n_layers;
    int intermediate;           /* MLP intermediate size; 0 = no MLP (Mamba2) */
    float rms_eps;              /* rms_norm_eps (llama/bamba) or layer_norm_epsilon (mamba2) */
    int tie_embeddings;         /* 1: lm_head shares model.embed_tokens.weight */
    int bos_id;                 /* -1 if absent */
    int eos_ids[MODEL_MAX_EOS]; /* eos_token_id (int or list) */
    int n_eos;
    int pad_id;                 /* -1 if absent */
    int max_position;           /* max_position_embeddings (0 if absent) */

    /* attention (llama; bamba attention layers) */
    int n_heads;                /* num_attention_heads */
    int n_kv_heads;             /* num_key_value_heads (default n_heads) */
    int head_dim;               /* explicit head_dim, else hidden / n_heads */
    int attn_bias;              /* attention_bias: q/k/v/o projections have biases */
    int mlp_bias;               /* mlp_bias */
    double rope_theta;          /* default 10000 */
    model_rope_type rope_type;
    double rope_factor;         /* llama3 / linear: factor */
    double rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_position; /* llama3: original_max_position_embeddings */
    double partial_rotary_factor;   /* 1.0 unless given (bamba: 0.5 default) */
    int rot_dim;                /* rotary dims per head = (int)(head_dim * partial_rotary_factor), even */
    unsigned char layer_is_attn[MODEL_MAX_LAYERS]; /* 1 attention, 0 mamba (llama: all 1; mamba2: all 0) */
    int n_attn_layers;

    /* mamba-2 mixer (bamba mamba layers; mamba2) */
    int m_heads;                /* bamba mamba_n_heads / mamba2 num_heads */
    int m_head_dim;             /* mamba_d_head / head_dim */
    int m_groups;               /* mamba_n_groups / n_groups */
    int m_d_state;              /* mamba_d_state / state_size */
    int m_d_conv;               /* mamba_d_conv / conv_kernel */
    int m_expand;               /* mamba_expand / expand */
    int m_chunk;                /* mamba_chunk_size / chunk_size */
    int m_conv_bias;            /* mamba_conv_bias / use_conv_bias */
    int m_proj_bias;            /* mamba_proj_bias / use_bias */
    int m_d_inner;              /* m_heads * m_head_dim (checked against expand * hidden) */
    int m_conv_dim;             /* m_d_inner + 2 * m_groups * m_d_state */
    int m_in_proj;              /* in_proj rows: 2 * d_inner + 2 * G * N + m_heads */
    double dt_min, dt_max;      /* time_step_limit; (0, +inf) = no clamp */
    int m_norm_before_gate;     /* mamba2 norm_before_gate (HF ignores it: gated norm is y*silu(z) first) */
    int m_residual_in_fp32;     /* mamba2 residual_in_fp32 */
} model_config;

/* Reads DIR/config.json (or path itself if it names a .json file) into *out, filling defaults
 * the way transformers does and validating every size (positive, divisibility, layer indices
 * in range). 0 ok; -1 with a message naming the file and the field in err. */
int model_config_load(const char *dir, model_config *out, char *err, size_t errlen);
/* Same from JSON text; filename is used in messages only. */
int model_config_parse(const char *text, size_t len, const char *filename, model_config *out,
                       char *err, size_t errlen);

/* inv_freq[i] for i < rot_dim/2, as transformers computes it (modeling_rope_utils: default
 * 1 / theta^(2i/rot_dim); linear: / factor; llama3: _compute_llama3_parameters wavelength
 * smoothing), replaying torch's float32 operations one by one. Only powf may differ from
 * torch's vectorised pow, by at most an ulp. */
void model_config_rope_inv_freq(const model_config *c, float *inv_freq);

/* One-line summary for logs: "llama L=2 d=64 heads=4/2 hd=16 vocab=256 rope=llama3(8)". */
void model_config_describe(const model_config *c, char *buf, size_t cap);

#endif
