/* workers/model/llama2c.c — llama2.c checkpoint (+ tokenizer.bin) -> HF Llama directory.
 * See llama2c.h for the formats and the RoPE row permutation.
 */
#include "workers/model/llama2c.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "workers/model/safetensors.h"

#define L2C_MAX_DIM (1 << 16)
#define L2C_MAX_VOCAB (1 << 22)
#define L2C_MAX_LAYERS 1024
#define L2C_MAGIC_V1 0x616b3432u /* "ak42": llama2.c export version 1+ */

/* Total float count of the weights (without the optional wcls). */
static uint64_t l2c_floats(const llama2c_header *h) {
    uint64_t D = (uint64_t)h->dim, F = (uint64_t)h->hidden_dim, L = (uint64_t)h->n_layers, V = (uint64_t)h->vocab_size;
    uint64_t hd = D / (uint64_t)h->n_heads, KV = hd * (uint64_t)h->n_kv_heads;
    return V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * F * D + D +
           (uint64_t)h->seq_len * hd; /* freq_cis_real + freq_cis_imag, [seq_len, hd/2] each */
}

int llama2c_read_header(const char *checkpoint, llama2c_header *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(checkpoint, "rb");
    if (!f) return util_err(err, errlen, "%s: %s", checkpoint, strerror(errno));
    int32_t v[7];
    struct stat sb;
    size_t got = fread(v, 4, 7, f);
    int st = fstat(fileno(f), &sb);
    fclose(f);
    if (st != 0) return util_err(err, errlen, "%s: stat: %s", checkpoint, strerror(errno));
    if (got != 7) return util_err(err, errlen, "%s: %lld bytes, too short for a llama2.c header (28 bytes)", checkpoint,
                                  (long long)sb.st_size);
    if ((uint32_t)v[0] == L2C_MAGIC_V1)
        return util_err(err, errlen, "%s: llama2.c export version %d (magic \"ak42\"); only the legacy version 0 "
                        "format is supported (export with --version 0)", checkpoint, (int)v[1]);
    static const char *names[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    static const int maxes[7] = {L2C_MAX_DIM, L2C_MAX_DIM * 4, L2C_MAX_LAYERS, L2C_MAX_DIM, L2C_MAX_DIM, L2C_MAX_VOCAB, 1 << 24};
    for (int i = 0; i < 7; i++) {
        long long x = v[i];
        if (i == 5 && x < 0) x = -x;
        if (x <= 0 || x > maxes[i])
            return util_err(err, errlen, "%s: header %s = %d is out of range (1..%d); not a llama2.c version 0 checkpoint?",
                            checkpoint, names[i], (int)v[i], maxes[i]);
    }
    out->dim = v[0];
    out->hidden_dim = v[1];
    out->n_layers = v[2];
    out->n_heads = v[3];
    out->n_kv_heads = v[4];
    out->shared_classifier = v[5] > 0;
    out->vocab_size = v[5] > 0 ? v[5] : -v[5];
    out->seq_len = v[6];
    if (out->dim % out->n_heads)
        return util_err(err, errlen, "%s: header: n_heads %d does not divide dim %d", checkpoint, out->n_heads, out->dim);
    if ((out->dim / out->n_heads) % 2)
        return util_err(err, errlen, "%s: header: head size %d is odd (RoPE needs pairs)", checkpoint,
                        out->dim / out->n_heads);
    if (out->n_kv_heads > out->n_heads || out->n_heads % out->n_kv_heads)
        return util_err(err, errlen, "%s: header: n_kv_heads %d does not divide n_heads %d", checkpoint,
                        out->n_kv_heads, out->n_heads);
    uint64_t want = 28 + 4 * l2c_floats(out);
    if (!out->shared_classifier) want += 4 * (uint64_t)out->vocab_size * (uint64_t)out->dim;
    if ((uint64_t)sb.st_size != want)
        return util_err(err, errlen, "%s: %lld bytes, but the header (dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
                        "n_kv_heads=%d vocab_size=%d seq_len=%d, %s classifier) implies %llu bytes%s",
                        checkpoint, (long long)sb.st_size, out->dim, out->hidden_dim, out->n_layers, out->n_heads,
                        out->n_kv_heads, v[5], out->seq_len, out->shared_classifier ? "tied" : "untied",
                        (unsigned long long)want, (uint64_t)sb.st_size < want ? " (truncated?)" : "");
    return 0;
}

void llama2c_permute_rows(float *dst, const float *src, int n_heads, int head_dim, int cols) {
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                const float *s = src + ((size_t)h * head_dim + 2 * i + j) * cols;
                float *d = dst + ((size_t)h * head_dim + j * half + i) * cols;
                memcpy(d, s, (size_t)cols * sizeof(float));
            }
}

int llama2c_check_tokenizer(const char *path, int vocab_size, char *err, size_t errlen) {
    size_t n;
    char *b = util_read_file(path, &n, err, errlen);
    if (!b) return -1;
    int rc = -1;
    size_t pos = 4;
    int32_t maxlen, len;
    if (n < 4) { util_err(err, errlen, "%s: %zu bytes, too short for a llama2.c tokenizer", path, n); goto done; }
    memcpy(&maxlen, b, 4);
    if (maxlen <= 0 || maxlen > 4096) {
        util_err(err, errlen, "%s: max_token_length %d is out of range (not a llama2.c tokenizer.bin?)", path, (int)maxlen);
        goto done;
    }
    for (int i = 0; i < vocab_size; i++) {
        if (n - pos < 8) {
            util_err(err, errlen, "%s: ends inside entry %d of %d (the checkpoint's vocab_size)", path, i, vocab_size);
            goto done;
        }
        memcpy(&len, b + pos + 4, 4);
        pos += 8;
        if (len < 0 || len > maxlen || (size_t)len > n - pos) {
            util_err(err, errlen, "%s: entry %d: length %d is invalid (max_token_length %d, %zu bytes left)", path, i,
                     (int)len, (int)maxlen, n - pos);
            goto done;
        }
        pos += (size_t)len;
    }
    if (pos != n) {
        util_err(err, errlen, "%s: %zu bytes remain after %d entries; the tokenizer does not match the checkpoint's "
                 "vocab_size %d", path, n - pos, vocab_size, vocab_size);
        goto done;
    }
    rc = 0;
done:
    free(b);
    return rc;
}

static char *config_json(const llama2c_header *h) {
    json_t *o = json_object();
    json_t *arch = json_array();
    json_array_append_new(arch, json_string("LlamaForCausalLM"));
    json_object_set_new(o, "architectures", arch);
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "vocab_size", json_integer(h->vocab_size));
    json_object_set_new(o, "hidden_size", json_integer(h->dim));
    json_object_set_new(o, "intermediate_size", json_integer(h->hidden_dim));
    json_object_set_new(o, "num_hidden_layers", json_integer(h->n_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(h->n_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(h->n_kv_heads));
    json_object_set_new(o, "head_dim", json_integer(h->dim / h->n_heads));
    json_object_set_new(o, "max_position_embeddings", json_integer(h->seq_len));
    json_object_set_new(o, "rms_norm_eps", json_real(1e-5));
    json_object_set_new(o, "rope_theta", json_real(10000.0));
    json_object_set_new(o, "hidden_act", json_string("silu"));
    json_object_set_new(o, "attention_bias", json_false());
    json_object_set_new(o, "mlp_bias", json_false());
    json_object_set_new(o, "tie_word_embeddings", json_boolean(h->shared_classifier));
    json_object_set_new(o, "bos_token_id", json_integer(1));
    json_object_set_new(o, "eos_token_id", json_integer(2));
    json_object_set_new(o, "torch_dtype", json_string("float32"));
    json_object_set_new(o, "converted_from", json_string("llama2.c version 0 checkpoint (thinkfast bin/convert)"));
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    json_decref(o);
    return s;
}

int llama2c_convert(const char *checkpoint, const char *tokenizer, const char *outdir, char *summary,
                    size_t summary_cap, char *err, size_t errlen) {
    llama2c_header h;
    if (llama2c_read_header(checkpoint, &h, err, errlen)) return -1;
    if (llama2c_check_tokenizer(tokenizer, h.vocab_size, err, errlen)) return -1;
    if (util_mkdirs(outdir, 0755) != 0) return util_err(err, errlen, "%s: mkdir: %s", outdir, strerror(errno));

    int fd = open(checkpoint, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_err(err, errlen, "%s: %s", checkpoint, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) { close(fd); return util_err(err, errlen, "%s: stat: %s", checkpoint, strerror(errno)); }
    size_t fsize = (size_t)sb.st_size;
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return util_err(err, errlen, "%s: mmap: %s", checkpoint, strerror(errno));

    const int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers, V = h.vocab_size, hd = D / h.n_heads,
                  KV = hd * h.n_kv_heads;
    const float *p = (const float *)((const char *)map + 28);
    const float *emb = p;           p += V * D;
    const float *rms_att = p;       p += L * D;
    const float *wq = p;            p += L * D * D;
    const float *wk = p;            p += L * KV * D;
    const float *wv = p;            p += L * KV * D;
    const float *wo = p;            p += L * D * D;
    const float *rms_ffn = p;       p += L * D;
    const float *w1 = p;            p += L * F * D;
    const float *w2 = p;            p += L * D * F;
    const float *w3 = p;            p += L * F * D;
    const float *rms_final = p;     p += D;
    p += h.seq_len * hd;            /* freq_cis_real, freq_cis_imag: unused */
    const float *wcls = h.shared_classifier ? NULL : p;

    /* permuted q/k copies must outlive st_writer_finish */
    float *qk = xmalloc((size_t)L * (size_t)(D * D + KV * D) * sizeof(float));
    char path[4096], name[256];
    snprintf(path, sizeof path, "%s/model.safetensors", outdir);
    st_writer *w = st_writer_new(path);
    int64_t s2[2], s1[1];
    s2[0] = V; s2[1] = D;
    st_writer_add_ref(w, "model.embed_tokens.weight", OP_F32, 2, s2, emb);
    if (wcls) st_writer_add_ref(w, "lm_head.weight", OP_F32, 2, s2, wcls);
    s1[0] = D;
    st_writer_add_ref(w, "model.norm.weight", OP_F32, 1, s1, rms_final);
    for (int64_t l = 0; l < L; l++) {
        float *q = qk + l * (D * D + KV * D), *k = q + D * D;
        llama2c_permute_rows(q, wq + l * D * D, h.n_heads, (int)hd, (int)D);
        llama2c_permute_rows(k, wk + l * KV * D, h.n_kv_heads, (int)hd, (int)D);
#define ADD2(suffix, ptr, rows, cols) do { \
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, suffix); \
        s2[0] = (rows); s2[1] = (cols); st_writer_add_ref(w, name, OP_F32, 2, s2, (ptr)); } while (0)
#define ADD1(suffix, ptr) do { \
        snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, suffix); \
        s1[0] = D; st_writer_add_ref(w, name, OP_F32, 1, s1, (ptr)); } while (0)
        ADD1("input_layernorm.weight", rms_att + l * D);
        ADD1("post_attention_layernorm.weight", rms_ffn + l * D);
        ADD2("self_attn.q_proj.weight", q, D, D);
        ADD2("self_attn.k_proj.weight", k, KV, D);
        ADD2("self_attn.v_proj.weight", wv + l * KV * D, KV, D);
        ADD2("self_attn.o_proj.weight", wo + l * D * D, D, D);
        ADD2("mlp.gate_proj.weight", w1 + l * F * D, F, D);
        ADD2("mlp.down_proj.weight", w2 + l * D * F, D, F);
        ADD2("mlp.up_proj.weight", w3 + l * F * D, F, D);
#undef ADD1
#undef ADD2
    }
    st_writer_meta(w, "format", "pt");
    int rc = st_writer_finish(&w, err, errlen) == 0 ? 0 : -1;
    free(qk);
    munmap(map, fsize);
    if (rc) return -1;

    char *cfg = config_json(&h);
    snprintf(path, sizeof path, "%s/config.json", outdir);
    size_t cl = strlen(cfg);
    cfg = xrealloc(cfg, cl + 2);
    memcpy(cfg + cl, "\n", 2);
    rc = util_write_file_atomic(path, cfg, cl + 1, err, errlen);
    free(cfg);
    if (rc) return -1;

    size_t tn;
    char *tb = util_read_file(tokenizer, &tn, err, errlen);
    if (!tb) return -1;
    snprintf(path, sizeof path, "%s/tokenizer.bin", outdir);
    rc = util_write_file_atomic(path, tb, tn, err, errlen);
    free(tb);
    if (rc) return -1;
    if (summary)
        snprintf(summary, summary_cap, "dim=%d hidden_dim=%d layers=%d heads=%d/%d vocab=%d seq_len=%d %s", h.dim,
                 h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, h.vocab_size, h.seq_len,
                 h.shared_classifier ? "tied" : "untied");
    return 0;
}
