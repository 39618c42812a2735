/* tests/unit/test_config.c — config.json parsing for Llama (transformers 4.x and 5.x RoPE
 * layouts), Bamba (hybrid and pure) and Mamba2; llama3 inv_freq against an independent
 * double-precision formula; errors naming file and field; and every committed golden fixture
 * under tests/fixtures/models/ loads (config + safetensors, shapes consistent).
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/unit/unit.h"
#include "workers/model/config.h"
#include "workers/model/safetensors.h"

static int parse(const char *json, model_config *c, char *err, size_t errlen) {
    return model_config_parse(json, strlen(json), "x/config.json", c, err, errlen);
}

static const char *LLAMA31_4X =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 128256,"
    " \"hidden_size\": 4096, \"intermediate_size\": 14336, \"num_hidden_layers\": 32,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"max_position_embeddings\": 131072,"
    " \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, \"tie_word_embeddings\": false,"
    " \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009], \"hidden_act\": \"silu\","
    " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
    "   \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}, \"torch_dtype\": \"bfloat16\"}";

static const char *LLAMA31_5X =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 128256,"
    " \"hidden_size\": 4096, \"intermediate_size\": 14336, \"num_hidden_layers\": 32,"
    " \"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"max_position_embeddings\": 131072,"
    " \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false, \"head_dim\": 128,"
    " \"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009],"
    " \"rope_parameters\": {\"rope_theta\": 500000.0, \"factor\": 8.0, \"low_freq_factor\": 1.0,"
    "   \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"},"
    " \"dtype\": \"bfloat16\"}";

TEST(llama_4x_and_5x) {
    model_config a, b;
    char err[512] = "";
    EXPECT_EQ_INT(parse(LLAMA31_4X, &a, err, sizeof err), 0);
    if (err[0]) printf("  %s\n", err);
    EXPECT_EQ_INT(parse(LLAMA31_5X, &b, err, sizeof err), 0);
    if (err[0]) printf("  %s\n", err);
    EXPECT_EQ_INT(a.arch, MODEL_LLAMA);
    EXPECT_EQ_INT(a.vocab_size, 128256);
    EXPECT_EQ_INT(a.hidden, 4096);
    EXPECT_EQ_INT(a.n_layers, 32);
    EXPECT_EQ_INT(a.intermediate, 14336);
    EXPECT_EQ_INT(a.n_heads, 32);
    EXPECT_EQ_INT(a.n_kv_heads, 8);
    EXPECT_EQ_INT(a.head_dim, 128);
    EXPECT_EQ_INT(a.rot_dim, 128);
    EXPECT_NEAR(a.rms_eps, 1e-5, 1e-12);
    EXPECT_EQ_INT(a.tie_embeddings, 0);
    EXPECT_EQ_INT(a.bos_id, 128000);
    EXPECT_EQ_INT(a.n_eos, 3);
    EXPECT_EQ_INT(a.eos_ids[2], 128009);
    EXPECT_EQ_INT(a.rope_type, MODEL_ROPE_LLAMA3);
    EXPECT_NEAR(a.rope_theta, 500000.0, 0);
    EXPECT_NEAR(a.rope_factor, 8.0, 0);
    EXPECT_EQ_INT(a.rope_original_max_position, 8192);
    EXPECT_EQ_INT(a.n_attn_layers, 32);
    EXPECT_EQ_INT(a.layer_is_attn[31], 1);
    /* the two layouts describe the same model */
    EXPECT_EQ_INT(b.rope_type, a.rope_type);
    EXPECT_NEAR(b.rope_theta, a.rope_theta, 0);
    EXPECT_NEAR(b.rope_factor, a.rope_factor, 0);
    EXPECT_NEAR(b.rope_low_freq_factor, a.rope_low_freq_factor, 0);
    EXPECT_NEAR(b.rope_high_freq_factor, a.rope_high_freq_factor, 0);
    EXPECT_EQ_INT(b.rope_original_max_position, a.rope_original_max_position);
    EXPECT_EQ_INT(b.head_dim, a.head_dim);
    float fa[64], fb[64];
    model_config_rope_inv_freq(&a, fa);
    model_config_rope_inv_freq(&b, fb);
    EXPECT(memcmp(fa, fb, sizeof fa) == 0);
    char d[256];
    model_config_describe(&a, d, sizeof d);
    EXPECT(strstr(d, "llama3") != NULL);
}

/* Independent double-precision llama3 formula (Meta's apply_scaling). */
static double ref_llama3(double inv, double factor, double lo, double hi, double old) {
    double wl = 2 * M_PI / inv, low_wl = old / lo, high_wl = old / hi;
    if (wl < high_wl) return inv;
    if (wl > low_wl) return inv / factor;
    double s = (old / wl - lo) / (hi - lo);
    return (1 - s) * inv / factor + s * inv;
}

TEST(rope_inv_freq) {
    model_config c;
    char err[512];
    EXPECT_EQ_INT(parse(LLAMA31_4X, &c, err, sizeof err), 0);
    float f[64];
    model_config_rope_inv_freq(&c, f);
    int n_scaled = 0, n_medium = 0, n_kept = 0;
    for (int i = 0; i < 64; i++) {
        double inv = pow(500000.0, -(2.0 * i) / 128.0);
        double r = ref_llama3(inv, 8, 1, 4, 8192);
        EXPECT_MSG(fabs(f[i] - r) <= 2e-6 * r, "i=%d %.9g vs %.9g", i, f[i], r);
        if (r == inv) n_kept++;
        else if (fabs(r - inv / 8) < 1e-12 * inv) n_scaled++;
        else n_medium++;
    }
    /* all three regimes are exercised at head_dim 128 */
    EXPECT(n_kept > 0 && n_scaled > 0 && n_medium > 0);
    EXPECT(f[0] == 1.0f);

    /* default rope, partial: rot_dim = head_dim * prf */
    const char *j = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
                    " \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"vocab_size\": 256, \"rope_theta\": 10000,"
                    " \"partial_rotary_factor\": 0.5}";
    EXPECT_EQ_INT(parse(j, &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.head_dim, 16);
    EXPECT_EQ_INT(c.rot_dim, 8);
    EXPECT_EQ_INT(c.n_kv_heads, 4);
    EXPECT_EQ_INT(c.rope_type, MODEL_ROPE_DEFAULT);
    float g[4];
    model_config_rope_inv_freq(&c, g);
    for (int i = 0; i < 4; i++) EXPECT_NEAR(g[i], pow(10000.0, -(2.0 * i) / 8.0), 1e-6 * g[i] + 1e-12);

    /* linear scaling divides by the factor */
    j = "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_attention_heads\": 4, \"num_hidden_layers\": 1,"
        " \"vocab_size\": 16, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}}";
    EXPECT_EQ_INT(parse(j, &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.rope_type, MODEL_ROPE_LINEAR);
    float h[8];
    model_config_rope_inv_freq(&c, h);
    EXPECT_NEAR(h[0], 0.25, 1e-7);
}

TEST(bamba) {
    const char *hybrid =
        "{\"architectures\": [\"BambaForCausalLM\"], \"model_type\": \"bamba\", \"vocab_size\": 512,"
        " \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 4, \"num_attention_heads\": 4,"
        " \"num_key_value_heads\": 2, \"attn_layer_indices\": [1, 3], \"mamba_n_heads\": 8, \"mamba_d_head\": 16,"
        " \"mamba_n_groups\": 2, \"mamba_d_state\": 16, \"mamba_d_conv\": 4, \"mamba_expand\": 2,"
        " \"mamba_chunk_size\": 8, \"mamba_conv_bias\": true, \"mamba_proj_bias\": false,"
        " \"time_step_limit\": [0.0, Infinity], \"rms_norm_eps\": 1e-05, \"partial_rotary_factor\": 0.5,"
        " \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"eos_token_id\": 2, \"name\": \"Infinity \\\" NaN\"}";
    model_config c;
    char err[512] = "";
    EXPECT_EQ_INT(parse(hybrid, &c, err, sizeof err), 0);
    if (err[0]) printf("  %s\n", err);
    EXPECT_EQ_INT(c.arch, MODEL_BAMBA);
    EXPECT_EQ_INT(c.n_layers, 4);
    EXPECT_EQ_INT(c.n_attn_layers, 2);
    EXPECT(c.layer_is_attn[0] == 0 && c.layer_is_attn[1] == 1 && c.layer_is_attn[2] == 0 && c.layer_is_attn[3] == 1);
    EXPECT_EQ_INT(c.head_dim, 16);
    EXPECT_EQ_INT(c.rot_dim, 8);
    EXPECT_EQ_INT(c.m_heads, 8);
    EXPECT_EQ_INT(c.m_head_dim, 16);
    EXPECT_EQ_INT(c.m_d_inner, 128);
    EXPECT_EQ_INT(c.m_groups, 2);
    EXPECT_EQ_INT(c.m_d_state, 16);
    EXPECT_EQ_INT(c.m_conv_dim, 128 + 2 * 2 * 16);
    EXPECT_EQ_INT(c.m_in_proj, 128 + 192 + 8);
    EXPECT_EQ_INT(c.m_chunk, 8);
    EXPECT_EQ_INT(c.m_conv_bias, 1);
    EXPECT_EQ_INT(c.m_proj_bias, 0);
    EXPECT(c.dt_min == 0.0 && isinf(c.dt_max));
    EXPECT_EQ_INT(c.pad_id, 0); /* BambaConfig default */

    const char *pure = "{\"architectures\": [\"BambaForCausalLM\"], \"vocab_size\": 256, \"hidden_size\": 64,"
                       " \"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                       " \"num_key_value_heads\": 4, \"attn_layer_indices\": [], \"mamba_n_heads\": 4,"
                       " \"mamba_d_head\": \"auto\", \"mamba_d_state\": 8, \"time_step_limit\": [0.001, 0.1]}";
    EXPECT_EQ_INT(parse(pure, &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.n_attn_layers, 0);
    EXPECT_EQ_INT(c.m_head_dim, 32);
    EXPECT_EQ_INT(c.m_groups, 1);
    EXPECT_NEAR(c.dt_min, 0.001, 0);
    EXPECT_NEAR(c.dt_max, 0.1, 0);
    /* null attn_layer_indices is pure as well */
    const char *nul = "{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                      " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 4,"
                      " \"attn_layer_indices\": null}";
    EXPECT_EQ_INT(parse(nul, &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.n_attn_layers, 0);
}

TEST(mamba2) {
    const char *j = "{\"architectures\": [\"Mamba2ForCausalLM\"], \"model_type\": \"mamba2\", \"vocab_size\": 300,"
                    " \"hidden_size\": 64, \"num_hidden_layers\": 3, \"num_heads\": 8, \"head_dim\": 16,"
                    " \"n_groups\": 2, \"state_size\": 16, \"expand\": 2, \"conv_kernel\": 4, \"chunk_size\": 16,"
                    " \"use_conv_bias\": true, \"use_bias\": false, \"layer_norm_epsilon\": 1e-05,"
                    " \"residual_in_fp32\": true, \"time_step_limit\": [0.0, Infinity], \"tie_word_embeddings\": true,"
                    " \"bos_token_id\": 0, \"eos_token_id\": 2, \"pad_token_id\": 1}";
    model_config c;
    char err[512] = "";
    EXPECT_EQ_INT(parse(j, &c, err, sizeof err), 0);
    if (err[0]) printf("  %s\n", err);
    EXPECT_EQ_INT(c.arch, MODEL_MAMBA2);
    EXPECT_EQ_INT(c.intermediate, 0);
    EXPECT_EQ_INT(c.n_attn_layers, 0);
    EXPECT_EQ_INT(c.m_heads, 8);
    EXPECT_EQ_INT(c.m_head_dim, 16);
    EXPECT_EQ_INT(c.m_d_inner, 128);
    EXPECT_EQ_INT(c.m_d_conv, 4);
    EXPECT_EQ_INT(c.m_chunk, 16);
    EXPECT_EQ_INT(c.tie_embeddings, 1);
    EXPECT_EQ_INT(c.m_residual_in_fp32, 1);
    EXPECT_EQ_INT(c.bos_id, 0);
    EXPECT(isinf(c.dt_max));

    /* transformers 5.x writes inf as {"__float__": "Infinity"} */
    const char *j5 = "{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64, \"num_heads\": 8,"
                     " \"head_dim\": 16, \"n_groups\": 2, \"time_step_limit\": [0.0, {\"__float__\": \"Infinity\"}]}";
    EXPECT_EQ_INT(parse(j5, &c, err, sizeof err), 0);
    EXPECT(c.dt_min == 0.0 && isinf(c.dt_max) && c.dt_max > 0);
    const char *j6 = "{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64, \"num_heads\": 8,"
                     " \"head_dim\": 16, \"n_groups\": 2, \"time_step_limit\": [0.0, {\"__float__\": \"lots\"}]}";
    EXPECT(parse(j6, &c, err, sizeof err) != 0);
    EXPECT(strstr(err, "time_step_limit") != NULL);
    const char *j7 = "{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64, \"num_heads\": 8,"
                     " \"head_dim\": 16, \"n_groups\": 2, \"layer_types\": [\"mamba\", \"attention\"], \"num_hidden_layers\": 2}";
    EXPECT(parse(j7, &c, err, sizeof err) != 0);
    EXPECT(strstr(err, "layer_types[1]") != NULL);
}

static void expect_err(const char *json, const char *needle1, const char *needle2) {
    model_config c;
    char err[512] = "";
    int rc = parse(json, &c, err, sizeof err);
    EXPECT_MSG(rc != 0, "accepted: %s", json);
    EXPECT_MSG(strstr(err, "x/config.json") != NULL, "no file name in \"%s\"", err);
    EXPECT_MSG(strstr(err, needle1) != NULL, "\"%s\" lacks \"%s\"", err, needle1);
    if (needle2) EXPECT_MSG(strstr(err, needle2) != NULL, "\"%s\" lacks \"%s\"", err, needle2);
}

TEST(errors) {
    expect_err("{\"architectures\": [\"GPT2LMHeadModel\"]}", "architectures", "GPT2LMHeadModel");
    expect_err("{\"hidden_size\": 64}", "model_type", "missing");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,", "invalid JSON", NULL);
    expect_err("[]", "object", NULL);
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"64\"}", "hidden_size", "integer");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": -4}", "hidden_size", "out of range");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 8,"
               " \"num_key_value_heads\": 3}", "num_key_value_heads", "does not divide");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 6}",
               "num_attention_heads", "hidden_size");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}", "rope_scaling.rope_type", "yarn");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0}}",
               "rope_parameters.high_freq_factor", "required");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"rope_theta\": -1}", "rope_theta", "positive");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"hidden_act\": \"gelu\"}", "hidden_act", "gelu");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"vocab_size\": 100, \"eos_token_id\": 100}", "eos_token_id", "vocab_size");
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
               " \"eos_token_id\": [1, \"x\"]}", "eos_token_id[1]", NULL);
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"num_hidden_layers\": 1000}", "num_hidden_layers", NULL);
    expect_err("{\"architectures\": [\"LlamaForCausalLM\"], \"tie_word_embeddings\": 1}", "tie_word_embeddings", "true or false");
    expect_err("{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 4,"
               " \"attn_layer_indices\": [2]}", "attn_layer_indices[0]", NULL);
    expect_err("{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 3}", "mamba_n_heads", NULL);
    expect_err("{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 4, \"mamba_d_head\": 8}",
               "mamba_n_heads x mamba_d_head", NULL);
    expect_err("{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 4,"
               " \"partial_rotary_factor\": 1.0}", "partial_rotary_factor", "0.5");
    expect_err("{\"architectures\": [\"BambaForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"mamba_n_heads\": 4,"
               " \"time_step_limit\": [1.0]}", "time_step_limit", NULL);
    expect_err("{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64, \"num_heads\": 8, \"head_dim\": 16,"
               " \"n_groups\": 3}", "n_groups", "does not divide");
    expect_err("{\"architectures\": [\"Mamba2ForCausalLM\"], \"hidden_size\": 64, \"num_heads\": 8, \"head_dim\": 8,"
               " \"n_groups\": 1}", "num_heads x head_dim", NULL);

    model_config c;
    char err[512] = "";
    EXPECT(model_config_load("/nonexistent/model", &c, err, sizeof err) != 0);
    EXPECT(strstr(err, "/nonexistent/model/config.json") != NULL);
}

/* Every fixture under tests/fixtures/models/NAME/ opens, and the main tensors have the shapes the
 * config implies. Skipped (visibly) when no fixtures are present. */
static int check_shape(const st_file *f, const char *name, int64_t d0, int64_t d1) {
    const st_tensor *t = st_find(f, name);
    if (!t) { printf("  missing tensor %s\n", name); return 0; }
    int ok = d1 < 0 ? (t->ndim == 1 && t->shape[0] == d0) : (t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1);
    if (!ok) printf("  %s: shape [%lld, %lld], expected [%lld, %lld]\n", name, (long long)t->shape[0],
                    (long long)(t->ndim > 1 ? t->shape[1] : -1), (long long)d0, (long long)d1);
    return ok;
}

TEST(fixtures_load) {
    const char *root = "tests/fixtures/models";
    DIR *d = opendir(root);
    if (!d) { unit_skip("no tests/fixtures/models"); return; }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[1024], p[1100];
        snprintf(dir, sizeof dir, "%s/%s", root, e->d_name);
        snprintf(p, sizeof p, "%s/config.json", dir);
        struct stat sb;
        if (stat(p, &sb) != 0) continue;
        n++;
        model_config c;
        char err[512] = "";
        EXPECT_MSG(model_config_load(dir, &c, err, sizeof err) == 0, "%s: %s", dir, err);
        st_file *f = NULL;
        EXPECT_MSG(st_open(dir, &f, err, sizeof err) == 0, "%s: %s", dir, err);
        if (!f) continue;
        const char *pre = c.arch == MODEL_MAMBA2 ? "backbone" : "model";
        char nm[256];
        snprintf(nm, sizeof nm, "%s.%s", pre, c.arch == MODEL_MAMBA2 ? "embeddings.weight" : "embed_tokens.weight");
        EXPECT_MSG(check_shape(f, nm, c.vocab_size, c.hidden), "%s", dir);
        if (!c.tie_embeddings) EXPECT_MSG(check_shape(f, "lm_head.weight", c.vocab_size, c.hidden), "%s", dir);
        for (int l = 0; l < c.n_layers; l++) {
            if (c.layer_is_attn[l]) {
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight", l);
                EXPECT_MSG(check_shape(f, nm, (int64_t)c.n_heads * c.head_dim, c.hidden), "%s", dir);
                snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.weight", l);
                EXPECT_MSG(check_shape(f, nm, (int64_t)c.n_kv_heads * c.head_dim, c.hidden), "%s", dir);
            } else {
                const char *mx = c.arch == MODEL_MAMBA2 ? "backbone.layers.%d.mixer.%s" : "model.layers.%d.mamba.%s";
                snprintf(nm, sizeof nm, mx, l, "in_proj.weight");
                EXPECT_MSG(check_shape(f, nm, c.m_in_proj, c.hidden), "%s", dir);
                snprintf(nm, sizeof nm, mx, l, "A_log");
                EXPECT_MSG(check_shape(f, nm, c.m_heads, -1), "%s", dir);
                snprintf(nm, sizeof nm, mx, l, "out_proj.weight");
                EXPECT_MSG(check_shape(f, nm, c.hidden, c.m_d_inner), "%s", dir);
            }
            if (c.intermediate) {
                snprintf(nm, sizeof nm, c.arch == MODEL_BAMBA ? "model.layers.%d.feed_forward.gate_proj.weight"
                                                              : "model.layers.%d.mlp.gate_proj.weight", l);
                EXPECT_MSG(check_shape(f, nm, c.intermediate, c.hidden), "%s", dir);
            }
        }
        st_close(&f);
        /* the expected outputs file opens too, and its logits match the vocabulary */
        snprintf(p, sizeof p, "%s/expected.safetensors", dir);
        if (stat(p, &sb) == 0) {
            EXPECT_MSG(st_open(p, &f, err, sizeof err) == 0, "%s", err);
            if (f) {
                const st_tensor *lg = st_find(f, "logits");
                EXPECT_MSG(lg && lg->ndim == 2 && lg->shape[1] == c.vocab_size, "%s: logits", dir);
                EXPECT_MSG(st_find(f, "input_ids") && st_find(f, "greedy_ids"), "%s", dir);
                const st_tensor *inv = st_find(f, "inv_freq");
                if (inv && c.n_attn_layers) {
                    /* our inv_freq against the buffer HF computed */
                    EXPECT_EQ_INT(st_numel(inv), c.rot_dim / 2);
                    float mine[512], *ref = st_tensor_to_f32(inv);
                    model_config_rope_inv_freq(&c, mine);
                    for (int i = 0; i < c.rot_dim / 2 && i < 512; i++)
                        EXPECT_MSG(fabsf(mine[i] - ref[i]) <= 2e-7f * ref[i], "%s: inv_freq[%d] %.9g vs HF %.9g", dir, i,
                                   mine[i], ref[i]);
                    free(ref);
                }
            }
            st_close(&f);
        }
    }
    closedir(d);
    if (n == 0) unit_skip("no fixtures in tests/fixtures/models");
}

int main(void) {
    RUN(llama_4x_and_5x);
    RUN(rope_inv_freq);
    RUN(bamba);
    RUN(mamba2);
    RUN(errors);
    RUN(fixtures_load);
    return unit_summary();
}
