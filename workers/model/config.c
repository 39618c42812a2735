/* workers/model/config.c — HF config.json -> model_config (see config.h).
 *
 * Defaults follow transformers' configuration classes (LlamaConfig, BambaConfig, Mamba2Config)
 * so that a file loads here exactly as it loads there. Python's json module writes inf/nan as
 * the bare tokens Infinity / -Infinity / NaN (e.g. "time_step_limit": [0.0, Infinity]); jansson
 * rejects them, so they are rewritten to finite sentinels before parsing and mapped back.
 * transformers 5.x writes {"__float__": "Infinity"} instead; both are accepted.
 */
#include "workers/model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define CFG_INF_SENTINEL 1.0e308 /* what "Infinity" is rewritten to; >= this reads back as inf */
#define CFG_MAX_DIM (1 << 20)    /* sanity bound for widths / heads / states */
#define CFG_MAX_VOCAB (1 << 24)

typedef struct cfg_ctx {
    const char *file;
    char *err;
    size_t errlen;
} cfg_ctx;

/* ---------------------------------------------------------------- JSON helpers */

/* Rewrites bare Infinity / -Infinity / NaN (outside strings) to parseable tokens. */
static char *cfg_sanitize(const char *text, size_t len, size_t *out_len) {
    util_buf b;
    util_buf_init(&b);
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            util_buf_append(&b, &c, 1);
            if (c == '\\' && i + 1 < len) { util_buf_append(&b, &text[i + 1], 1); i++; }
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') { in_str = 1; util_buf_append(&b, &c, 1); continue; }
        if (len - i >= 8 && !memcmp(text + i, "Infinity", 8)) { util_buf_printf(&b, "1.0e308"); i += 7; continue; }
        if (len - i >= 3 && !memcmp(text + i, "NaN", 3)) { util_buf_printf(&b, "null"); i += 2; continue; }
        util_buf_append(&b, &c, 1);
    }
    *out_len = b.len;
    if (!b.data) { b.data = xstrdup(""); }
    return b.data;
}

/* A JSON number (the Infinity sentinel mapped back), or transformers 5.x's encoding of a
 * non-finite float: {"__float__": "Infinity"} (also "-Infinity", "NaN"). 0 ok, -1 otherwise. */

static int json_to_double(json_t *v, double *out) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        if (*out >= CFG_INF_SENTINEL) *out = INFINITY;
        else if (*out <= -CFG_INF_SENTINEL) *out = -INFINITY;
        return 0;
    }
    json_t *f = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "__float__") : NULL;
    if (!json_is_string(f)) return -1;
    const char *s = json_string_value(f);
    if (!strcmp(s, "Infinity") || !strcmp(s, "inf")) *out = INFINITY;
    else if (!strcmp(s, "-Infinity") || !strcmp(s, "-inf")) *out = -INFINITY;
    else if (!strcmp(s, "NaN") || !strcmp(s, "nan")) *out = NAN;
    else {
        char *end;
        *out = strtod(s, &end);
        if (end == s || *end) return -1;
    }
    return 0;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Present and not null. */
static json_t *get(json_t *o, const char *k) {
    json_t *v = o ? json_object_get(o, k) : NULL;
    return v && !json_is_null(v) ? v : NULL;
}

/* Integer field in [lo, hi]; absent/null -> def. prefix names the enclosing object ("" or "rope_scaling."). */
static int get_int(cfg_ctx *c, json_t *o, const char *prefix, const char *k, long long def, long long lo,
                   long long hi, int *out) {
    json_t *v = get(o, k);
    long long x = def;
    if (v) {
        if (json_is_integer(v)) x = json_integer_value(v);
        else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 1e15)
            x = (long long)json_real_value(v);
        else
            return util_err(c->err, c->errlen, "%s: %s%s: expected an integer, got %s", c->file, prefix, k, json_kind(v));
    }
    if (x < lo || x > hi)
        return util_err(c->err, c->errlen, "%s: %s%s: %lld is out of range [%lld, %lld]", c->file, prefix, k, x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_num(cfg_ctx *c, json_t *o, const char *prefix, const char *k, double def, double *out) {
    json_t *v = get(o, k);
    if (!v) { *out = def; return 0; }
    if (json_to_double(v, out) != 0)
        return util_err(c->err, c->errlen, "%s: %s%s: expected a number, got %s", c->file, prefix, k, json_kind(v));
    return 0;
}

static int get_pos_num(cfg_ctx *c, json_t *o, const char *prefix, const char *k, double def, double *out) {
    if (get_num(c, o, prefix, k, def, out)) return -1;
    if (!(*out > 0) || isinf(*out))
        return util_err(c->err, c->errlen, "%s: %s%s: expected a positive number, got %g", c->file, prefix, k, *out);
    return 0;
}

static int get_bool(cfg_ctx *c, json_t *o, const char *k, int def, int *out) {
    json_t *v = get(o, k);
    if (!v) { *out = def; return 0; }
    if (!json_is_boolean(v))
        return util_err(c->err, c->errlen, "%s: %s: expected true or false, got %s", c->file, k, json_kind(v));
    *out = json_is_true(v);
    return 0;
}

static int get_str(cfg_ctx *c, json_t *o, const char *prefix, const char *k, const char *def, const char **out) {
    json_t *v = get(o, k);
    if (!v) { *out = def; return 0; }
    if (!json_is_string(v))
        return util_err(c->err, c->errlen, "%s: %s%s: expected a string, got %s", c->file, prefix, k, json_kind(v));
    *out = json_string_value(v);
    return 0;
}

/* ---------------------------------------------------------------- common parts */

static int parse_special_ids(cfg_ctx *c, json_t *root, int def_bos, int def_eos, int def_pad, model_config *m) {
    json_t *v;
    if (get_int(c, root, "", "bos_token_id", def_bos, -1, CFG_MAX_VOCAB, &m->bos_id)) return -1;
    if (!get(root, "bos_token_id") && json_object_get(root, "bos_token_id")) m->bos_id = -1; /* explicit null */
    if (get_int(c, root, "", "pad_token_id", def_pad, -1, CFG_MAX_VOCAB, &m->pad_id)) return -1;
    if (!get(root, "pad_token_id") && json_object_get(root, "pad_token_id")) m->pad_id = -1;
    m->n_eos = 0;
    v = json_object_get(root, "eos_token_id");
    if (!v) {
        if (def_eos >= 0) m->eos_ids[m->n_eos++] = def_eos;
    } else if (json_is_null(v)) {
        /* none */
    } else if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < 0 || x >= CFG_MAX_VOCAB)
            return util_err(c->err, c->errlen, "%s: eos_token_id: %lld is out of range", c->file, (long long)x);
        m->eos_ids[m->n_eos++] = (int)x;
    } else if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n > MODEL_MAX_EOS)
            return util_err(c->err, c->errlen, "%s: eos_token_id: %zu ids (at most %d supported)", c->file, n, MODEL_MAX_EOS);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= CFG_MAX_VOCAB)
                return util_err(c->err, c->errlen, "%s: eos_token_id[%zu]: expected a token id, got %s", c->file, i,
                                json_kind(e));
            m->eos_ids[m->n_eos++] = (int)json_integer_value(e);
        }
    } else {
        return util_err(c->err, c->errlen, "%s: eos_token_id: expected an integer or a list, got %s", c->file,
                        json_kind(v));
    }
    return 0;
}

/* Attention + RoPE fields shared by Llama and Bamba. */
static int parse_attention(cfg_ctx *c, json_t *root, int def_kv, model_config *m, int is_bamba) {
    if (get_int(c, root, "", "num_attention_heads", 32, 1, CFG_MAX_DIM, &m->n_heads)) return -1;
    if (get_int(c, root, "", "num_key_value_heads", def_kv > 0 ? def_kv : m->n_heads, 1, CFG_MAX_DIM, &m->n_kv_heads))
        return -1;
    if (!get(root, "num_key_value_heads") && def_kv <= 0) m->n_kv_heads = m->n_heads;
    if (m->n_heads % m->n_kv_heads)
        return util_err(c->err, c->errlen, "%s: num_key_value_heads: %d does not divide num_attention_heads %d",
                        c->file, m->n_kv_heads, m->n_heads);
    if (get_int(c, root, "", "head_dim", 0, 0, CFG_MAX_DIM, &m->head_dim)) return -1;
    if (m->head_dim == 0) {
        if (m->hidden % m->n_heads)
            return util_err(c->err, c->errlen, "%s: num_attention_heads: %d does not divide hidden_size %d (and no head_dim)",
                            c->file, m->n_heads, m->hidden);
        m->head_dim = m->hidden / m->n_heads;
    }
    if (!is_bamba) {
        if (get_bool(c, root, "attention_bias", 0, &m->attn_bias)) return -1;
        if (get_bool(c, root, "mlp_bias", 0, &m->mlp_bias)) return -1;
    }

    /* RoPE: transformers 4.x "rope_theta" + "rope_scaling"; 5.x "rope_parameters"
     * (rope_scaling wins when both are present, as in RotaryEmbeddingConfigMixin). */
    json_t *rp = get(root, "rope_scaling");
    const char *rp_name = "rope_scaling.";
    if (!rp) { rp = get(root, "rope_parameters"); rp_name = "rope_parameters."; }
    if (rp && !json_is_object(rp))
        return util_err(c->err, c->errlen, "%s: %.*s: expected an object, got %s", c->file, (int)strlen(rp_name) - 1,
                        rp_name, json_kind(rp));
    double theta_top;
    if (get_pos_num(c, root, "", "rope_theta", 10000.0, &theta_top)) return -1;
    if (get_pos_num(c, rp, rp_name, "rope_theta", theta_top, &m->rope_theta)) return -1;
    const char *rtype = "default";
    if (rp) {
        const char *t1 = NULL, *t2 = NULL;
        if (get_str(c, rp, rp_name, "rope_type", NULL, &t1) || get_str(c, rp, rp_name, "type", NULL, &t2)) return -1;
        rtype = t1 ? t1 : t2 ? t2 : "default";
    }
    double prf_top;
    if (get_num(c, root, "", "partial_rotary_factor", 1.0, &prf_top)) return -1;
    if (get_num(c, rp, rp_name, "partial_rotary_factor", prf_top, &m->partial_rotary_factor)) return -1;
    if (is_bamba) {
        /* BambaConfig hardcodes 0.5 (transformers 4.x and 5.x) whatever the file says. */
        if ((get(root, "partial_rotary_factor") || get(rp, "partial_rotary_factor")) && m->partial_rotary_factor != 0.5)
            return util_err(c->err, c->errlen,
                            "%s: partial_rotary_factor: %g, but transformers' BambaConfig always uses 0.5", c->file,
                            m->partial_rotary_factor);
        m->partial_rotary_factor = 0.5;
    }
    if (!(m->partial_rotary_factor > 0 && m->partial_rotary_factor <= 1))
        return util_err(c->err, c->errlen, "%s: partial_rotary_factor: %g is not in (0, 1]", c->file,
                        m->partial_rotary_factor);
    m->rot_dim = (int)(m->head_dim * m->partial_rotary_factor);
    if (m->rot_dim < 2 || m->rot_dim % 2)
        return util_err(c->err, c->errlen, "%s: partial_rotary_factor: %g x head_dim %d gives %d rotary dims (must be even and >= 2)",
                        c->file, m->partial_rotary_factor, m->head_dim, m->rot_dim);

    m->rope_factor = 1.0;
    if (!strcmp(rtype, "default")) {
        m->rope_type = MODEL_ROPE_DEFAULT;
    } else if (!strcmp(rtype, "linear") && !is_bamba) {
        m->rope_type = MODEL_ROPE_LINEAR;
        if (!get(rp, "factor"))
            return util_err(c->err, c->errlen, "%s: %sfactor: required for rope_type linear", c->file, rp_name);
        if (get_pos_num(c, rp, rp_name, "factor", 1.0, &m->rope_factor)) return -1;
    } else if (!strcmp(rtype, "llama3") && !is_bamba) {
        m->rope_type = MODEL_ROPE_LLAMA3;
        static const char *req[] = {"factor", "low_freq_factor", "high_freq_factor"};
        for (int i = 0; i < 3; i++)
            if (!get(rp, req[i]))
                return util_err(c->err, c->errlen, "%s: %s%s: required for rope_type llama3", c->file, rp_name, req[i]);
        if (get_pos_num(c, rp, rp_name, "factor", 1.0, &m->rope_factor)) return -1;
        if (get_pos_num(c, rp, rp_name, "low_freq_factor", 1.0, &m->rope_low_freq_factor)) return -1;
        if (get_pos_num(c, rp, rp_name, "high_freq_factor", 4.0, &m->rope_high_freq_factor)) return -1;
        if (m->rope_high_freq_factor <= m->rope_low_freq_factor)
            return util_err(c->err, c->errlen, "%s: %shigh_freq_factor: %g must exceed low_freq_factor %g", c->file,
                            rp_name, m->rope_high_freq_factor, m->rope_low_freq_factor);
        /* 5.x fills a missing original_max_position_embeddings from max_position_embeddings. */
        int def_orig = m->max_position > 0 ? m->max_position : 8192;
        if (get_int(c, rp, rp_name, "original_max_position_embeddings", def_orig, 1, 1 << 30,
                    &m->rope_original_max_position))
            return -1;
    } else {
        return util_err(c->err, c->errlen, "%s: %srope_type: \"%s\" is not supported for %s (supported: default%s)",
                        c->file, rp_name, rtype, m->arch_name, is_bamba ? "" : ", linear, llama3");
    }
    return 0;
}

/* Mamba-2 mixer sizes, checked the way the HF mixers need them. */
static int check_mamba(cfg_ctx *c, model_config *m, double expand, const char *f_heads, const char *f_hd,
                       const char *f_groups) {
    double di = expand * m->hidden;
    if (!(expand > 0) || di > CFG_MAX_DIM * 16.0)
        return util_err(c->err, c->errlen, "%s: expand: %g is not a positive factor", c->file, expand);
    m->m_d_inner = (int)di;
    m->m_expand = (int)expand;
    if (m->m_heads * m->m_head_dim != m->m_d_inner)
        return util_err(c->err, c->errlen, "%s: %s x %s = %d x %d does not equal expand x hidden_size = %d", c->file,
                        f_heads, f_hd, m->m_heads, m->m_head_dim, m->m_d_inner);
    if (m->m_heads % m->m_groups)
        return util_err(c->err, c->errlen, "%s: %s: %d does not divide %s %d", c->file, f_groups, m->m_groups, f_heads,
                        m->m_heads);
    m->m_conv_dim = m->m_d_inner + 2 * m->m_groups * m->m_d_state;
    m->m_in_proj = m->m_d_inner + m->m_conv_dim + m->m_heads;
    return 0;
}

static int parse_time_step_limit(cfg_ctx *c, json_t *root, model_config *m) {
    m->dt_min = 0.0;
    m->dt_max = INFINITY;
    json_t *v = get(root, "time_step_limit");
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) != 2 || json_to_double(json_array_get(v, 0), &m->dt_min) ||
        json_to_double(json_array_get(v, 1), &m->dt_max))
        return util_err(c->err, c->errlen, "%s: time_step_limit: expected [min, max]", c->file);
    if (!(m->dt_min >= 0) || !(m->dt_max >= m->dt_min))
        return util_err(c->err, c->errlen, "%s: time_step_limit: [%g, %g] is not a range with 0 <= min <= max", c->file,
                        m->dt_min, m->dt_max);
    return 0;
}

static int check_act(cfg_ctx *c, json_t *root) {
    const char *act;
    if (get_str(c, root, "", "hidden_act", "silu", &act)) return -1;
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        return util_err(c->err, c->errlen, "%s: hidden_act: \"%s\" is not supported (only silu)", c->file, act);
    return 0;
}

/* ---------------------------------------------------------------- per architecture */

static int parse_llama(cfg_ctx *c, json_t *root, model_config *m) {
    if (get_int(c, root, "", "vocab_size", 32000, 1, CFG_MAX_VOCAB, &m->vocab_size) ||
        get_int(c, root, "", "hidden_size", 4096, 1, CFG_MAX_DIM, &m->hidden) ||
        get_int(c, root, "", "intermediate_size", 11008, 1, CFG_MAX_DIM * 4, &m->intermediate) ||
        get_int(c, root, "", "num_hidden_layers", 32, 1, MODEL_MAX_LAYERS, &m->n_layers) ||
        get_int(c, root, "", "max_position_embeddings", 2048, 0, 1 << 30, &m->max_position))
        return -1;
    double eps;
    if (get_pos_num(c, root, "", "rms_norm_eps", 1e-6, &eps)) return -1;
    m->rms_eps = (float)eps;
    if (get_bool(c, root, "tie_word_embeddings", 0, &m->tie_embeddings)) return -1;
    if (check_act(c, root)) return -1;
    if (parse_special_ids(c, root, 1, 2, -1, m)) return -1;
    if (parse_attention(c, root, 0, m, 0)) return -1;
    for (int i = 0; i < m->n_layers; i++) m->layer_is_attn[i] = 1;
    m->n_attn_layers = m->n_layers;
    return 0;
}

static int parse_bamba(cfg_ctx *c, json_t *root, model_config *m) {
    if (get_int(c, root, "", "vocab_size", 128000, 1, CFG_MAX_VOCAB, &m->vocab_size) ||
        get_int(c, root, "", "hidden_size", 4096, 1, CFG_MAX_DIM, &m->hidden) ||
        get_int(c, root, "", "intermediate_size", 14336, 1, CFG_MAX_DIM * 4, &m->intermediate) ||
        get_int(c, root, "", "num_hidden_layers", 32, 1, MODEL_MAX_LAYERS, &m->n_layers) ||
        get_int(c, root, "", "max_position_embeddings", 262144, 0, 1 << 30, &m->max_position))
        return -1;
    double eps;
    if (get_pos_num(c, root, "", "rms_norm_eps", 1e-5, &eps)) return -1;
    m->rms_eps = (float)eps;
    if (get_bool(c, root, "tie_word_embeddings", 0, &m->tie_embeddings)) return -1;
    if (check_act(c, root)) return -1;
    if (parse_special_ids(c, root, 1, 2, 0, m)) return -1;

    /* layers: attention at attn_layer_indices (null or [] = pure Mamba-2) */
    json_t *ai = get(root, "attn_layer_indices");
    m->n_attn_layers = 0;
    if (ai) {
        if (!json_is_array(ai))
            return util_err(c->err, c->errlen, "%s: attn_layer_indices: expected a list of layer indices, got %s",
                            c->file, json_kind(ai));
        for (size_t i = 0; i < json_array_size(ai); i++) {
            json_t *e = json_array_get(ai, i);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= m->n_layers)
                return util_err(c->err, c->errlen, "%s: attn_layer_indices[%zu]: expected a layer index in [0, %d)",
                                c->file, i, m->n_layers);
            m->layer_is_attn[json_integer_value(e)] = 1;
        }
    }
    for (int i = 0; i < m->n_layers; i++) m->n_attn_layers += m->layer_is_attn[i];
    /* HF builds the attention projections' shapes from these even for a pure model; validate always. */
    if (parse_attention(c, root, 8, m, 1)) return -1;

    double expand;
    if (get_num(c, root, "", "mamba_expand", 2, &expand)) return -1;
    if (get_int(c, root, "", "mamba_n_heads", 128, 1, CFG_MAX_DIM, &m->m_heads) ||
        get_int(c, root, "", "mamba_n_groups", 1, 1, CFG_MAX_DIM, &m->m_groups) ||
        get_int(c, root, "", "mamba_d_state", 256, 1, 1 << 16, &m->m_d_state) ||
        get_int(c, root, "", "mamba_d_conv", 4, 1, 1024, &m->m_d_conv) ||
        get_int(c, root, "", "mamba_chunk_size", 256, 1, 1 << 20, &m->m_chunk))
        return -1;
    json_t *dh = get(root, "mamba_d_head");
    if (!dh || (json_is_string(dh) && !strcmp(json_string_value(dh), "auto"))) {
        int di = (int)(expand * m->hidden);
        if (di % m->m_heads)
            return util_err(c->err, c->errlen, "%s: mamba_n_heads: %d does not divide mamba_expand x hidden_size = %d",
                            c->file, m->m_heads, di);
        m->m_head_dim = di / m->m_heads;
    } else if (get_int(c, root, "", "mamba_d_head", 0, 1, CFG_MAX_DIM, &m->m_head_dim)) {
        return -1;
    }
    if (get_bool(c, root, "mamba_conv_bias", 1, &m->m_conv_bias) ||
        get_bool(c, root, "mamba_proj_bias", 0, &m->m_proj_bias))
        return -1;
    if (check_mamba(c, m, expand, "mamba_n_heads", "mamba_d_head", "mamba_n_groups")) return -1;
    if (parse_time_step_limit(c, root, m)) return -1;
    m->m_residual_in_fp32 = 0;
    return 0;
}

static int parse_mamba2(cfg_ctx *c, json_t *root, model_config *m) {
    if (get_int(c, root, "", "vocab_size", 32768, 1, CFG_MAX_VOCAB, &m->vocab_size) ||
        get_int(c, root, "", "hidden_size", 4096, 1, CFG_MAX_DIM, &m->hidden) ||
        get_int(c, root, "", "num_hidden_layers", 64, 1, MODEL_MAX_LAYERS, &m->n_layers) ||
        get_int(c, root, "", "max_position_embeddings", 0, 0, 1 << 30, &m->max_position))
        return -1;
    double eps;
    if (get_pos_num(c, root, "", "layer_norm_epsilon", 1e-5, &eps)) return -1;
    m->rms_eps = (float)eps;
    if (get_bool(c, root, "tie_word_embeddings", 0, &m->tie_embeddings)) return -1;
    if (check_act(c, root)) return -1;
    if (parse_special_ids(c, root, 0, 2, 1, m)) return -1;
    int rms;
    if (get_bool(c, root, "rms_norm", 1, &rms)) return -1;
    if (!rms) return util_err(c->err, c->errlen, "%s: rms_norm: false is not supported (Mamba2 uses RMSNorm)", c->file);
    m->intermediate = 0;
    m->n_attn_layers = 0;
    double expand;
    if (get_num(c, root, "", "expand", 2, &expand)) return -1;
    if (get_int(c, root, "", "num_heads", 128, 1, CFG_MAX_DIM, &m->m_heads) ||
        get_int(c, root, "", "head_dim", 64, 1, CFG_MAX_DIM, &m->m_head_dim) ||
        get_int(c, root, "", "n_groups", 8, 1, CFG_MAX_DIM, &m->m_groups) ||
        get_int(c, root, "", "state_size", 128, 1, 1 << 16, &m->m_d_state) ||
        get_int(c, root, "", "conv_kernel", 4, 1, 1024, &m->m_d_conv) ||
        get_int(c, root, "", "chunk_size", 256, 1, 1 << 20, &m->m_chunk))
        return -1;
    if (get_bool(c, root, "use_conv_bias", 1, &m->m_conv_bias) || get_bool(c, root, "use_bias", 0, &m->m_proj_bias) ||
        get_bool(c, root, "residual_in_fp32", 1, &m->m_residual_in_fp32) ||
        get_bool(c, root, "norm_before_gate", 0, &m->m_norm_before_gate))
        return -1;
    if (check_mamba(c, m, expand, "num_heads", "head_dim", "n_groups")) return -1;
    if (parse_time_step_limit(c, root, m)) return -1;
    /* newer transformers may list per-layer types; only pure Mamba-2 stacks are supported */
    json_t *lt = get(root, "layer_types");
    if (lt) {
        if (!json_is_array(lt) || (int)json_array_size(lt) != m->n_layers)
            return util_err(c->err, c->errlen, "%s: layer_types: expected a list of %d layer types", c->file, m->n_layers);
        for (size_t i = 0; i < json_array_size(lt); i++) {
            json_t *e = json_array_get(lt, i);
            if (!json_is_string(e) || strcmp(json_string_value(e), "mamba"))
                return util_err(c->err, c->errlen, "%s: layer_types[%zu]: only \"mamba\" layers are supported for Mamba2ForCausalLM",
                                c->file, i);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- public */

int model_config_parse(const char *text, size_t len, const char *filename, model_config *out, char *err,
                       size_t errlen) {
    cfg_ctx c = {filename ? filename : "config.json", err, errlen};
    memset(out, 0, sizeof *out);
    size_t slen;
    char *clean = cfg_sanitize(text, len, &slen);
    json_error_t jerr;
    json_t *root = json_loadb(clean, slen, JSON_REJECT_DUPLICATES, &jerr);
    free(clean);
    if (!root)
        return util_err(err, errlen, "%s:%d:%d: invalid JSON: %s", c.file, jerr.line, jerr.column, jerr.text);
    int rc = -1;
    if (!json_is_object(root)) {
        util_err(err, errlen, "%s: expected a JSON object at the top level", c.file);
        goto done;
    }
    const char *arch = NULL, *mtype = NULL;
    json_t *archs = get(root, "architectures");
    if (archs) {
        if (!json_is_array(archs) || json_array_size(archs) < 1 || !json_is_string(json_array_get(archs, 0))) {
            util_err(err, errlen, "%s: architectures: expected a list of class names", c.file);
            goto done;
        }
        arch = json_string_value(json_array_get(archs, 0));
    }
    if (get_str(&c, root, "", "model_type", NULL, &mtype)) goto done;
    if (arch ? !strcmp(arch, "LlamaForCausalLM") || !strcmp(arch, "LlamaForSequenceClassification")
             : (mtype && !strcmp(mtype, "llama"))) {
        out->arch = MODEL_LLAMA;
        out->seq_cls = arch && !strcmp(arch, "LlamaForSequenceClassification");
        snprintf(out->arch_name, sizeof out->arch_name, "%s", out->seq_cls ? arch : "LlamaForCausalLM");
        rc = parse_llama(&c, root, out);
    } else if (arch ? !strcmp(arch, "BambaForCausalLM") : (mtype && !strcmp(mtype, "bamba"))) {
        out->arch = MODEL_BAMBA;
        snprintf(out->arch_name, sizeof out->arch_name, "BambaForCausalLM");
        rc = parse_bamba(&c, root, out);
    } else if (arch ? !strcmp(arch, "Mamba2ForCausalLM") : (mtype && !strcmp(mtype, "mamba2"))) {
        out->arch = MODEL_MAMBA2;
        snprintf(out->arch_name, sizeof out->arch_name, "Mamba2ForCausalLM");
        rc = parse_mamba2(&c, root, out);
    } else if (arch) {
        util_err(err, errlen, "%s: architectures: \"%s\" is not supported (LlamaForCausalLM, LlamaForSequenceClassification, BambaForCausalLM, Mamba2ForCausalLM)",
                 c.file, arch);
    } else {
        util_err(err, errlen, "%s: model_type: %s%s%s is not supported and there is no \"architectures\" (llama, bamba, mamba2)",
                 c.file, mtype ? "\"" : "", mtype ? mtype : "missing", mtype ? "\"" : "");
    }
    if (rc == 0) {
        for (int i = 0; i < out->n_eos; i++)
            if (out->eos_ids[i] >= out->vocab_size) {
                rc = util_err(err, errlen, "%s: eos_token_id: %d is not below vocab_size %d", c.file, out->eos_ids[i],
                              out->vocab_size);
                break;
            }
        if (rc == 0 && out->bos_id >= out->vocab_size)
            rc = util_err(err, errlen, "%s: bos_token_id: %d is not below vocab_size %d", c.file, out->bos_id,
                          out->vocab_size);
    }
done:
    json_decref(root);
    if (rc) memset(out, 0, sizeof *out), out->bos_id = -1;
    return rc;
}

int model_config_load(const char *dir, model_config *out, char *err, size_t errlen) {
    char path[4096];
    size_t n = strlen(dir);
    if (n >= 5 && !strcmp(dir + n - 5, ".json")) snprintf(path, sizeof path, "%s", dir);
    else snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = util_read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = model_config_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void model_config_rope_inv_freq(const model_config *c, float *inv_freq) {
    const int dim = c->rot_dim;
    const float base = (float)c->rope_theta;
    for (int i = 0; i < dim / 2; i++) {
        /* torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)); python 1.0 / t is t.reciprocal() * 1.0 */
        float e = (float)(2 * i) / (float)dim;
        float p = powf(base, e);
        float inv = 1.0f / p;
        if (c->rope_type == MODEL_ROPE_LINEAR) {
            inv = inv / (float)c->rope_factor;
        } else if (c->rope_type == MODEL_ROPE_LLAMA3) {
            const float factor = (float)c->rope_factor;
            const double old_ctx = (double)c->rope_original_max_position;
            const float low_wl = (float)(old_ctx / c->rope_low_freq_factor);
            const float high_wl = (float)(old_ctx / c->rope_high_freq_factor);
            const float two_pi = (float)(2 * M_PI);
            float wavelen = (1.0f / inv) * two_pi;
            float inv_llama = wavelen > low_wl ? inv / factor : inv;
            float smooth = ((1.0f / wavelen) * (float)old_ctx - (float)c->rope_low_freq_factor) /
                           (float)(c->rope_high_freq_factor - c->rope_low_freq_factor);
            float a = (1.0f - smooth) * inv_llama;
            a = a / factor;
            float b = smooth * inv_llama;
            float smoothed = a + b;
            int medium = !(wavelen < high_wl) && !(wavelen > low_wl);
            inv = medium ? smoothed : inv_llama;
        }
        inv_freq[i] = inv;
    }
}

void model_config_describe(const model_config *c, char *buf, size_t cap) {
    const char *an = c->arch == MODEL_LLAMA ? "llama" : c->arch == MODEL_BAMBA ? "bamba" : "mamba2";
    size_t o = (size_t)snprintf(buf, cap, "%s L=%d d=%d vocab=%d", an, c->n_layers, c->hidden, c->vocab_size);
    if (o < cap && c->intermediate) o += (size_t)snprintf(buf + o, cap - o, " ffn=%d", c->intermediate);
    if (o < cap && c->n_attn_layers)
        o += (size_t)snprintf(buf + o, cap - o, " attn=%d/%d heads=%d/%d hd=%d rot=%d rope=%s(theta=%g", c->n_attn_layers,
                              c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->rot_dim,
                              c->rope_type == MODEL_ROPE_LLAMA3 ? "llama3" : c->rope_type == MODEL_ROPE_LINEAR ? "linear" : "default",
                              c->rope_theta);
    if (o < cap && c->n_attn_layers)
        o += (size_t)snprintf(buf + o, cap - o, c->rope_type != MODEL_ROPE_DEFAULT ? ",factor=%g)" : ")", c->rope_factor);
    if (o < cap && c->n_attn_layers < c->n_layers)
        o += (size_t)snprintf(buf + o, cap - o, " mamba: H=%d P=%d G=%d N=%d conv=%d chunk=%d", c->m_heads,
                              c->m_head_dim, c->m_groups, c->m_d_state, c->m_d_conv, c->m_chunk);
    if (o < cap) snprintf(buf + o, cap - o, "%s", c->tie_embeddings ? " tied" : "");
}
