/* tests/unit/test_convert.c — llama2.c -> HF conversion: converts the shared stories260K into
 * a temp dir, reopens it with st_open + model_config_load, and checks config values, shapes,
 * byte-exact copies and the q/k RoPE row permutation against the raw llama2.c file; plus a
 * synthetic untied checkpoint and malformed inputs (truncated, wrong tokenizer, version 1).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/unit.h"
#include "workers/model/config.h"
#include "workers/model/llama2c.h"
#include "workers/model/safetensors.h"

static char *tmpdir; /* this run's scratch folder (main) */

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

TEST(permute_rows) {
    /* 2 heads of head_dim 4, 1 column: rows 0..7 -> per head [0,2,1,3] */
    float src[8] = {0, 1, 2, 3, 4, 5, 6, 7}, dst[8];
    llama2c_permute_rows(dst, src, 2, 4, 1);
    float want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    EXPECT(memcmp(dst, want, sizeof dst) == 0);
    /* head_dim 8: even rows first, then odd rows */
    float s2[16], d2[16];
    for (int i = 0; i < 16; i++) s2[i] = (float)i;
    llama2c_permute_rows(d2, s2, 1, 8, 2);
    float w2[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (int r = 0; r < 8; r++) {
        EXPECT(d2[2 * r] == 2 * w2[r]);
        EXPECT(d2[2 * r + 1] == 2 * w2[r] + 1);
    }
}

TEST(stories260k) {
    char ck[1024], tk[1024];
    snprintf(ck, sizeof ck, "%s", unit_data_path("models/stories260K/stories260K.bin"));
    snprintf(tk, sizeof tk, "%s", unit_data_path("models/stories260K/tok512.bin"));
    if (access(ck, R_OK) != 0 || access(tk, R_OK) != 0) { unit_skip("stories260K not in the shared data"); return; }
    char err[1024] = "", summary[256] = "";
    const char *out = tpath("s260");
    EXPECT_EQ_INT(llama2c_convert(ck, tk, out, summary, sizeof summary, err, sizeof err), 0);
    if (err[0]) { printf("  %s\n", err); return; }
    EXPECT(strstr(summary, "dim=64") && strstr(summary, "tied"));

    model_config c;
    EXPECT_EQ_INT(model_config_load(out, &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.arch, MODEL_LLAMA);
    EXPECT_EQ_INT(c.hidden, 64);
    EXPECT_EQ_INT(c.intermediate, 172);
    EXPECT_EQ_INT(c.n_layers, 5);
    EXPECT_EQ_INT(c.n_heads, 8);
    EXPECT_EQ_INT(c.n_kv_heads, 4);
    EXPECT_EQ_INT(c.head_dim, 8);
    EXPECT_EQ_INT(c.vocab_size, 512);
    EXPECT_EQ_INT(c.max_position, 512);
    EXPECT_EQ_INT(c.tie_embeddings, 1);
    EXPECT_EQ_INT(c.bos_id, 1);
    EXPECT(c.n_eos == 1 && c.eos_ids[0] == 2);
    EXPECT_NEAR(c.rms_eps, 1e-5, 1e-12);
    EXPECT_NEAR(c.rope_theta, 10000, 0);
    EXPECT_EQ_INT(c.rope_type, MODEL_ROPE_DEFAULT);

    st_file *f = NULL;
    EXPECT_EQ_INT(st_open(out, &f, err, sizeof err), 0);
    if (!f) { printf("  %s\n", err); return; }
    EXPECT_EQ_INT(st_count(f), 2 + 5 * 9);
    EXPECT(st_find(f, "lm_head.weight") == NULL);

    size_t n;
    char *raw = util_read_file(ck, &n, err, sizeof err);
    EXPECT(raw != NULL && n == 1056540);
    if (!raw) { st_close(&f); return; }
    const float *p = (const float *)(raw + 28);
    const int D = 64, F = 172, L = 5, V = 512, KV = 32, hd = 8;
    const float *emb = p, *rms_att = emb + V * D, *wq = rms_att + L * D, *wk = wq + L * D * D, *wv = wk + L * KV * D,
                *wo = wv + L * KV * D, *rms_ffn = wo + L * D * D, *w1 = rms_ffn + L * D, *w2 = w1 + L * F * D,
                *w3 = w2 + L * D * F, *rms_final = w3 + L * F * D;

    const st_tensor *t = st_find(f, "model.embed_tokens.weight");
    EXPECT(t && t->dtype == OP_F32 && t->shape[0] == V && t->shape[1] == D && !memcmp(t->data, emb, (size_t)V * D * 4));
    t = st_find(f, "model.norm.weight");
    EXPECT(t && !memcmp(t->data, rms_final, D * 4));
    int l = 3;
    char nm[128];
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.gate_proj.weight", l);
    t = st_find(f, nm);
    EXPECT(t && t->shape[0] == F && t->shape[1] == D && !memcmp(t->data, w1 + l * F * D, (size_t)F * D * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l);
    t = st_find(f, nm);
    EXPECT(t && t->shape[0] == D && t->shape[1] == F && !memcmp(t->data, w2 + l * D * F, (size_t)D * F * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.mlp.up_proj.weight", l);
    t = st_find(f, nm);
    EXPECT(t && !memcmp(t->data, w3 + l * F * D, (size_t)F * D * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.self_attn.v_proj.weight", l);
    t = st_find(f, nm);
    EXPECT(t && t->shape[0] == KV && !memcmp(t->data, wv + l * KV * D, (size_t)KV * D * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.self_attn.o_proj.weight", l);
    t = st_find(f, nm);
    EXPECT(t && !memcmp(t->data, wo + l * D * D, (size_t)D * D * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
    t = st_find(f, nm);
    EXPECT(t && !memcmp(t->data, rms_att + l * D, D * 4));
    snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
    t = st_find(f, nm);
    EXPECT(t && !memcmp(t->data, rms_ffn + l * D, D * 4));

    /* q: HF row (h, j*hd/2 + i) == llama2.c row (h, 2i + j); checked row by row for every head */
    snprintf(nm, sizeof nm, "model.layers.%d.self_attn.q_proj.weight", l);
    const st_tensor *q = st_find(f, nm);
    EXPECT(q && q->shape[0] == D && q->shape[1] == D);
    int bad = 0, moved = 0;
    for (int h = 0; q && h < 8; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++) {
                const float *hf = (const float *)q->data + (size_t)(h * hd + j * hd / 2 + i) * D;
                const float *src = wq + (size_t)l * D * D + (size_t)(h * hd + 2 * i + j) * D;
                if (memcmp(hf, src, D * 4)) bad++;
                if ((j * hd / 2 + i) != (2 * i + j) && memcmp(hf, wq + (size_t)l * D * D + (size_t)(h * hd + j * hd / 2 + i) * D, D * 4))
                    moved++;
            }
    EXPECT_EQ_INT(bad, 0);
    EXPECT(moved > 0); /* the permutation really moved rows (not an identity copy) */
    /* a specific row: HF q row 1 of head 2 = llama2.c row 2 of head 2 */
    if (q) EXPECT(((const float *)q->data)[(2 * hd + 1) * D + 5] == wq[(size_t)l * D * D + (2 * hd + 2) * D + 5]);
    snprintf(nm, sizeof nm, "model.layers.%d.self_attn.k_proj.weight", l);
    const st_tensor *k = st_find(f, nm);
    EXPECT(k && k->shape[0] == KV && k->shape[1] == D);
    bad = 0;
    for (int h = 0; k && h < 4; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                if (memcmp((const float *)k->data + (size_t)(h * hd + j * hd / 2 + i) * D,
                           wk + (size_t)l * KV * D + (size_t)(h * hd + 2 * i + j) * D, D * 4))
                    bad++;
    EXPECT_EQ_INT(bad, 0);
    free(raw);
    st_close(&f);

    /* the tokenizer was copied byte for byte */
    size_t a_n, b_n;
    char *a = util_read_file(tk, &a_n, NULL, 0), *b = util_read_file(tpath("s260/tokenizer.bin"), &b_n, NULL, 0);
    EXPECT(a && b && a_n == b_n && !memcmp(a, b, a_n));
    free(a);
    free(b);
}

/* Writes a tiny synthetic llama2.c file (untied when untied != 0). Returns the float count. */
static void write_tiny(const char *path, int untied, int drop_bytes) {
    int32_t hdr[7] = {8, 12, 2, 2, 1, untied ? -10 : 10, 4};
    int D = 8, F = 12, L = 2, V = 10, hd = 4, KV = 4;
    size_t nf = (size_t)V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * F * D + D + 4 * hd +
                (untied ? (size_t)V * D : 0);
    float *w = malloc(nf * 4);
    for (size_t i = 0; i < nf; i++) w[i] = (float)i * 0.001f;
    FILE *fp = fopen(path, "wb");
    fwrite(hdr, 4, 7, fp);
    fwrite(w, 1, nf * 4 - (size_t)drop_bytes, fp);
    fclose(fp);
    free(w);
}

static void write_tok(const char *path, int n) {
    FILE *fp = fopen(path, "wb");
    int32_t maxlen = 3;
    fwrite(&maxlen, 4, 1, fp);
    for (int i = 0; i < n; i++) {
        float score = (float)-i;
        int32_t len = 1 + i % 3;
        fwrite(&score, 4, 1, fp);
        fwrite(&len, 4, 1, fp);
        fwrite("abc", 1, (size_t)len, fp);
    }
    fclose(fp);
}

TEST(untied_and_errors) {
    char err[1024] = "";
    write_tiny(tpath("tiny.bin"), 1, 0);
    write_tok(tpath("tok10.bin"), 10);
    EXPECT_EQ_INT(llama2c_convert(tpath("tiny.bin"), tpath("tok10.bin"), tpath("tiny"), NULL, 0, err, sizeof err), 0);
    if (err[0]) printf("  %s\n", err);
    model_config c;
    st_file *f = NULL;
    EXPECT_EQ_INT(model_config_load(tpath("tiny"), &c, err, sizeof err), 0);
    EXPECT_EQ_INT(c.tie_embeddings, 0);
    EXPECT_EQ_INT(c.vocab_size, 10);
    EXPECT_EQ_INT(c.n_kv_heads, 1);
    EXPECT_EQ_INT(st_open(tpath("tiny"), &f, err, sizeof err), 0);
    if (f) {
        const st_tensor *t = st_find(f, "lm_head.weight");
        EXPECT(t && t->shape[0] == 10 && t->shape[1] == 8);
        /* wcls is the last V*D floats of the file */
        size_t nf = 80 + 16 + 128 + 2 * 2 * 32 + 128 + 16 + 3 * 2 * 96 + 8 + 16 + 80;
        if (t) EXPECT(((const float *)t->data)[79] == (float)(nf - 1) * 0.001f);
        EXPECT_EQ_INT(st_count(f), 3 + 2 * 9);
    }
    st_close(&f);

    /* truncated checkpoint */
    write_tiny(tpath("trunc.bin"), 0, 4);
    EXPECT(llama2c_convert(tpath("trunc.bin"), tpath("tok10.bin"), tpath("o1"), NULL, 0, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "trunc.bin") && strstr(err, "truncated"), "%s", err);
    /* tokenizer with the wrong vocabulary size */
    write_tok(tpath("tok9.bin"), 9);
    write_tiny(tpath("tied.bin"), 0, 0);
    EXPECT(llama2c_convert(tpath("tied.bin"), tpath("tok9.bin"), tpath("o2"), NULL, 0, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "tok9.bin") && strstr(err, "entry 9 of 10"), "%s", err);
    write_tok(tpath("tok11.bin"), 11);
    EXPECT(llama2c_convert(tpath("tied.bin"), tpath("tok11.bin"), tpath("o3"), NULL, 0, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "tok11.bin") && strstr(err, "remain"), "%s", err);
    EXPECT(access(tpath("o3/model.safetensors"), F_OK) != 0); /* nothing written on error */
    /* newer export format */
    FILE *fp = fopen(tpath("v1.bin"), "wb");
    uint32_t v1[8] = {0x616b3432u, 1, 8, 12, 2, 2, 1, 10};
    fwrite(v1, 4, 8, fp);
    fclose(fp);
    EXPECT(llama2c_convert(tpath("v1.bin"), tpath("tok10.bin"), tpath("o4"), NULL, 0, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "version 1") != NULL, "%s", err);
    /* garbage header */
    fp = fopen(tpath("bad.bin"), "wb");
    int32_t bad[7] = {64, 172, 5, 7, 4, 512, 512};
    fwrite(bad, 4, 7, fp);
    fclose(fp);
    EXPECT(llama2c_convert(tpath("bad.bin"), tpath("tok10.bin"), tpath("o5"), NULL, 0, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "n_heads 7 does not divide dim 64") != NULL, "%s", err);
    EXPECT(llama2c_convert(tpath("missing.bin"), tpath("tok10.bin"), tpath("o6"), NULL, 0, err, sizeof err) != 0);
    EXPECT(strstr(err, "missing.bin") != NULL);
}

int main(void) {
    tmpdir = unit_tmpdir("convert");
    RUN(permute_rows);
    RUN(stories260k);
    RUN(untied_and_errors);
    unit_rmrf(tmpdir);
    free(tmpdir);
    return unit_summary();
}
