/* workers/model/model_random.c — random HF model directories (see model_random.h). */
#include "workers/model/model_random.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/safetensors.h"

typedef struct rnd { uint64_t s; } rnd;
static double rnd_u(rnd *r) { /* splitmix64 -> [0,1) */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct wctx { st_writer *w; rnd r; op_dtype dt; int failed; } wctx;

/* uniform in [center - a, center + a] */
static void put(wctx *c, const char *name, int ndim, const int64_t *shape, double center, double a) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *f = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) f[i] = (float)(center + (2 * rnd_u(&c->r) - 1) * a);
    int rc;
    if (c->dt == OP_F32) rc = st_writer_add(c->w, name, OP_F32, ndim, shape, f);
    else {
        uint16_t *h = xmalloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) h[i] = c->dt == OP_BF16 ? st_f32_to_bf16(f[i]) : st_f32_to_f16(f[i]);
        rc = st_writer_add(c->w, name, c->dt, ndim, shape, h);
        free(h);
    }
    if (rc) c->failed = 1;
    free(f);
}
static void put_vals(wctx *c, const char *name, int64_t n, const float *v) {
    int64_t shape[1] = {n};
    if (st_writer_add(c->w, name, OP_F32, 1, shape, v)) c->failed = 1;
}
static void mat(wctx *c, const char *name, int64_t rows, int64_t cols) {
    int64_t s[2] = {rows, cols};
    put(c, name, 2, s, 0.0, sqrt(3.0 / (double)cols));
}
static void normw(wctx *c, const char *name, int64_t n) {
    int64_t s[1] = {n};
    put(c, name, 1, s, 1.0, 0.1);
}

static void mlp(wctx *c, const char *pre, const model_random_spec *s) {
    char nm[256];
    snprintf(nm, sizeof nm, "%s.gate_proj.weight", pre); mat(c, nm, s->intermediate, s->hidden);
    snprintf(nm, sizeof nm, "%s.up_proj.weight", pre); mat(c, nm, s->intermediate, s->hidden);
    snprintf(nm, sizeof nm, "%s.down_proj.weight", pre); mat(c, nm, s->hidden, s->intermediate);
    if (s->proj_bias && s->arch == MODEL_LLAMA) {
        int64_t f[1] = {s->intermediate}, d[1] = {s->hidden};
        snprintf(nm, sizeof nm, "%s.gate_proj.bias", pre); put(c, nm, 1, f, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.up_proj.bias", pre); put(c, nm, 1, f, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.down_proj.bias", pre); put(c, nm, 1, d, 0.0, 0.2);
    }
}
static void attn(wctx *c, const char *pre, const model_random_spec *s) {
    char nm[256];
    int64_t q = (int64_t)s->heads * s->head_dim, kv = (int64_t)s->kv_heads * s->head_dim;
    snprintf(nm, sizeof nm, "%s.q_proj.weight", pre); mat(c, nm, q, s->hidden);
    snprintf(nm, sizeof nm, "%s.k_proj.weight", pre); mat(c, nm, kv, s->hidden);
    snprintf(nm, sizeof nm, "%s.v_proj.weight", pre); mat(c, nm, kv, s->hidden);
    snprintf(nm, sizeof nm, "%s.o_proj.weight", pre); mat(c, nm, s->hidden, q);
    if (s->proj_bias && s->arch == MODEL_LLAMA) {
        int64_t qb[1] = {q}, kb[1] = {kv}, ob[1] = {s->hidden};
        snprintf(nm, sizeof nm, "%s.q_proj.bias", pre); put(c, nm, 1, qb, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.k_proj.bias", pre); put(c, nm, 1, kb, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.v_proj.bias", pre); put(c, nm, 1, kb, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.o_proj.bias", pre); put(c, nm, 1, ob, 0.0, 0.2);
    }
}
static void mixer(wctx *c, const char *pre, const model_random_spec *s) {
    char nm[256];
    int64_t di = (int64_t)s->m_heads * s->m_head_dim, gn = (int64_t)s->m_groups * s->m_d_state;
    int64_t cd = di + 2 * gn, H = s->m_heads;
    snprintf(nm, sizeof nm, "%s.in_proj.weight", pre); mat(c, nm, di + cd + H, s->hidden);
    int64_t cs[3] = {cd, 1, s->m_d_conv};
    snprintf(nm, sizeof nm, "%s.conv1d.weight", pre); put(c, nm, 3, cs, 0.0, sqrt(3.0 / s->m_d_conv));
    int64_t bs[1] = {cd};
    snprintf(nm, sizeof nm, "%s.conv1d.bias", pre); put(c, nm, 1, bs, 0.0, 0.1);
    float *v = xmalloc(sizeof(float) * (size_t)H);
    for (int64_t h = 0; h < H; h++) v[h] = (float)log(1.0 + (double)h * 15.0 / (H > 1 ? H - 1 : 1));
    snprintf(nm, sizeof nm, "%s.A_log", pre); put_vals(c, nm, H, v);
    for (int64_t h = 0; h < H; h++) v[h] = (float)(1.0 + 0.1 * (2 * rnd_u(&c->r) - 1));
    snprintf(nm, sizeof nm, "%s.D", pre); put_vals(c, nm, H, v);
    for (int64_t h = 0; h < H; h++) { /* inverse softplus of dt in [0.001, 0.1] (log-uniform) */
        double dt = exp(log(0.001) + rnd_u(&c->r) * (log(0.1) - log(0.001)));
        v[h] = (float)(dt + log(-expm1(-dt)));
    }
    snprintf(nm, sizeof nm, "%s.dt_bias", pre); put_vals(c, nm, H, v);
    free(v);
    snprintf(nm, sizeof nm, "%s.norm.weight", pre); normw(c, nm, di);
    snprintf(nm, sizeof nm, "%s.out_proj.weight", pre); mat(c, nm, s->hidden, di);
    if (s->proj_bias) {
        int64_t ib[1] = {di + cd + H}, ob[1] = {s->hidden};
        snprintf(nm, sizeof nm, "%s.in_proj.bias", pre); put(c, nm, 1, ib, 0.0, 0.2);
        snprintf(nm, sizeof nm, "%s.out_proj.bias", pre); put(c, nm, 1, ob, 0.0, 0.2);
    }
}

int64_t model_random_params(const model_random_spec *s) {
    int64_t D = s->hidden, p = (int64_t)s->vocab * D * (s->tie ? 1 : 2) + D;
    int64_t att = D * (int64_t)s->heads * s->head_dim * 2 + D * (int64_t)s->kv_heads * s->head_dim * 2 + D;
    int64_t di = (int64_t)s->m_heads * s->m_head_dim, gn = (int64_t)s->m_groups * s->m_d_state;
    int64_t mam = D * (2 * di + 2 * gn + s->m_heads) + (di + 2 * gn) * (s->m_d_conv + 1) + 3 * s->m_heads + di + D * di + D;
    int64_t ml = 3 * D * (int64_t)s->intermediate + D;
    for (int i = 0; i < s->layers; i++) {
        int is_attn = s->arch == MODEL_LLAMA;
        for (int j = 0; j < s->n_attn_layers; j++) if (s->arch == MODEL_BAMBA && s->attn_layers[j] == i) is_attn = 1;
        p += is_attn ? att : mam;
        if (s->arch != MODEL_MAMBA2) p += ml;
    }
    return p;
}

int model_write_random(const char *dir, const model_random_spec *s, char *err, size_t errlen) {
    if (util_mkdirs(dir, 0755) != 0) return util_err(err, errlen, "%s: cannot create directory", dir);
    util_buf cj;
    util_buf_init(&cj);
    int di = s->m_heads * s->m_head_dim;
    int max_pos = s->max_position > 0 ? s->max_position : 4096;
    if (s->arch == MODEL_LLAMA) {
        util_buf_printf(&cj, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": %d, "
                        "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
                        "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, "
                        "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": %s, "
                        "\"bos_token_id\": 1, \"eos_token_id\": 2, \"max_position_embeddings\": %d, \"hidden_act\": \"silu\", "
                        "\"attention_bias\": %s, \"mlp_bias\": %s",
                        s->vocab, s->hidden, s->intermediate, s->layers, s->heads, s->kv_heads, s->head_dim,
                        s->tie ? "true" : "false", max_pos, s->proj_bias ? "true" : "false", s->proj_bias ? "true" : "false");
        if (s->llama3_rope)
            util_buf_printf(&cj, ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                            "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}");
        util_buf_printf(&cj, "}\n");
    } else if (s->arch == MODEL_BAMBA) {
        util_buf_printf(&cj, "{\"architectures\": [\"BambaForCausalLM\"], \"model_type\": \"bamba\", \"vocab_size\": %d, "
                        "\"hidden_size\": %d, \"intermediate_size\": %d, \"num_hidden_layers\": %d, "
                        "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"attn_layer_indices\": [",
                        s->vocab, s->hidden, s->intermediate, s->layers, s->heads, s->kv_heads);
        for (int i = 0; i < s->n_attn_layers; i++) util_buf_printf(&cj, "%s%d", i ? ", " : "", s->attn_layers[i]);
        util_buf_printf(&cj, "], \"mamba_n_heads\": %d, \"mamba_d_head\": %d, \"mamba_n_groups\": %d, \"mamba_d_state\": %d, "
                        "\"mamba_d_conv\": %d, \"mamba_expand\": %d, \"mamba_chunk_size\": %d, \"mamba_conv_bias\": true, "
                        "\"mamba_proj_bias\": %s, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
                        "\"tie_word_embeddings\": %s, \"bos_token_id\": 1, \"eos_token_id\": 2, \"max_position_embeddings\": %d",
                        s->m_heads, s->m_head_dim, s->m_groups, s->m_d_state, s->m_d_conv, s->m_expand, s->m_chunk,
                        s->proj_bias ? "true" : "false", s->tie ? "true" : "false", max_pos);
        if (s->partial_rotary > 0) util_buf_printf(&cj, ", \"partial_rotary_factor\": %g", s->partial_rotary);
        util_buf_printf(&cj, "}\n");
    } else {
        util_buf_printf(&cj, "{\"architectures\": [\"Mamba2ForCausalLM\"], \"model_type\": \"mamba2\", \"vocab_size\": %d, "
                        "\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_heads\": %d, \"head_dim\": %d, "
                        "\"n_groups\": %d, \"state_size\": %d, \"conv_kernel\": %d, \"expand\": %d, \"chunk_size\": %d, "
                        "\"use_conv_bias\": true, \"use_bias\": %s, \"layer_norm_epsilon\": 1e-05, "
                        "\"tie_word_embeddings\": %s, \"bos_token_id\": 1, \"eos_token_id\": 2, \"time_step_limit\": [0.0, Infinity]}\n",
                        s->vocab, s->hidden, s->layers, s->m_heads, s->m_head_dim, s->m_groups, s->m_d_state, s->m_d_conv,
                        s->m_expand, s->m_chunk, s->proj_bias ? "true" : "false", s->tie ? "true" : "false");
    }
    (void)di;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = util_write_file_atomic(path, cj.data, cj.len, err, errlen);
    util_buf_free(&cj);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    wctx c = {st_writer_new(path), {s->seed ^ 0x5eedULL}, s->dtype, 0};
    const char *root = s->arch == MODEL_MAMBA2 ? "backbone" : "model";
    char nm[256], pre[200];
    int64_t es[2] = {s->vocab, s->hidden};
    snprintf(nm, sizeof nm, "%s.%s.weight", root, s->arch == MODEL_MAMBA2 ? "embeddings" : "embed_tokens");
    put(&c, nm, 2, es, 0.0, 1.0);
    if (!s->tie) mat(&c, "lm_head.weight", s->vocab, s->hidden);
    snprintf(nm, sizeof nm, "%s.%s.weight", root,
             s->arch == MODEL_MAMBA2 ? "norm_f" : s->arch == MODEL_BAMBA ? "final_layernorm" : "norm");
    normw(&c, nm, s->hidden);
    for (int i = 0; i < s->layers; i++) {
        snprintf(pre, sizeof pre, "%s.layers.%d", root, i);
        if (s->arch == MODEL_MAMBA2) {
            snprintf(nm, sizeof nm, "%s.norm.weight", pre); normw(&c, nm, s->hidden);
            snprintf(nm, sizeof nm, "%s.mixer", pre); mixer(&c, nm, s);
        } else if (s->arch == MODEL_LLAMA) {
            snprintf(nm, sizeof nm, "%s.input_layernorm.weight", pre); normw(&c, nm, s->hidden);
            snprintf(nm, sizeof nm, "%s.post_attention_layernorm.weight", pre); normw(&c, nm, s->hidden);
            snprintf(nm, sizeof nm, "%s.self_attn", pre); attn(&c, nm, s);
            snprintf(nm, sizeof nm, "%s.mlp", pre); mlp(&c, nm, s);
        } else {
            int is_attn = 0;
            for (int j = 0; j < s->n_attn_layers; j++) is_attn |= s->attn_layers[j] == i;
            snprintf(nm, sizeof nm, "%s.input_layernorm.weight", pre); normw(&c, nm, s->hidden);
            snprintf(nm, sizeof nm, "%s.pre_ff_layernorm.weight", pre); normw(&c, nm, s->hidden);
            if (is_attn) { snprintf(nm, sizeof nm, "%s.self_attn", pre); attn(&c, nm, s); }
            else { snprintf(nm, sizeof nm, "%s.mamba", pre); mixer(&c, nm, s); }
            snprintf(nm, sizeof nm, "%s.feed_forward", pre); mlp(&c, nm, s);
        }
    }
    if (c.failed) {
        st_writer_finish(&c.w, err, errlen);
        return util_err(err, errlen, "%s: could not add a tensor (duplicate or bad shape)", path);
    }
    return st_writer_finish(&c.w, err, errlen) == 0 ? 0 : -1;
}
