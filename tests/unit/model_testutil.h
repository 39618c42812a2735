/* tests/unit/model_testutil.h — helpers shared by the model / engine tests: small random model
 * specs for every architecture, temp directories, and a one-sequence runner over the cache.
 */
#ifndef THINKFAST_MODEL_TESTUTIL_H
#define THINKFAST_MODEL_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers/model/model.h"
#include "workers/model/model_random.h"

enum { MT_LLAMA_GQA, MT_LLAMA_MHA, MT_BAMBA_HYBRID, MT_BAMBA_PURE, MT_MAMBA2, MT_COUNT };
__attribute__((unused)) static const char *mt_names[MT_COUNT] = {"llama-gqa-llama3-tied", "llama-mha-untied-bias", "bamba-hybrid",
                                         "bamba-pure-bias", "mamba2"};

static inline model_random_spec mt_spec(int kind) {
    model_random_spec s;
    memset(&s, 0, sizeof s);
    s.vocab = 97; s.hidden = 32; s.layers = 3; s.intermediate = 48;
    s.heads = 4; s.kv_heads = 2; s.head_dim = 8; s.tie = 1;
    s.m_heads = 4; s.m_head_dim = 16; s.m_groups = 2; s.m_d_state = 8; s.m_d_conv = 4; s.m_expand = 2; s.m_chunk = 8;
    s.dtype = OP_F32;
    s.seed = 1000 + kind;
    switch (kind) {
    case MT_LLAMA_GQA: s.arch = MODEL_LLAMA; s.llama3_rope = 1; break;
    case MT_LLAMA_MHA: s.arch = MODEL_LLAMA; s.kv_heads = 4; s.tie = 0; s.proj_bias = 1; break;
    case MT_BAMBA_HYBRID: s.arch = MODEL_BAMBA; s.attn_layers[0] = 1; s.n_attn_layers = 1; s.partial_rotary = 0.5; break;
    case MT_BAMBA_PURE: s.arch = MODEL_BAMBA; s.m_groups = 1; s.tie = 0; s.proj_bias = 1; break;
    default: s.arch = MODEL_MAMBA2; s.m_groups = 1; break;
    }
    return s;
}

/* mkdtemp under /tmp; returns a static-lifetime copy per call site. */
static inline char *mt_tmpdir(const char *tag) {
    char *p = malloc(256);
    snprintf(p, 256, "/tmp/thinkfast_%s_XXXXXX", tag);
    if (!mkdtemp(p)) { perror("mkdtemp"); exit(1); }
    return p;
}
static inline void mt_rmdir(char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

/* Runs tokens[0..n) of one fresh sequence through the model in steps of `chunk` tokens;
 * writes the logits of every position (all = 1) or only of each step's last token into
 * out[n, V] (rows of positions not computed are left as they are). */
static inline void mt_run_seq(model *m, kv_cache *kv, const int32_t *tokens, int n, int chunk, float *out) {
    const model_config *c = model_cfg(m);
    op_backend *be = model_backend(m);
    kv_seq s;
    kv_seq_init(kv, &s);
    kv_seq_reserve(kv, &s, n);
    kv_batch b;
    kv_batch_init(&b);
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        kv_batch_clear(&b);
        kv_batch_add(kv, &b, &s, tokens + i, k);
        kv_batch_finish(&b);
        const float *lg = model_forward(m, kv, &b, 1);
        be->download(be, out + (size_t)i * c->vocab_size, lg, sizeof(float) * (size_t)k * c->vocab_size);
    }
    kv_batch_free(&b);
    kv_seq_release(kv, &s);
}

static inline double mt_maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) { double d = fabs((double)a[i] - b[i]); if (!(d <= m)) m = d; }
    return m;
}

#endif
