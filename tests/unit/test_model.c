/* tests/unit/test_model.c — the model forward on random-weight Llama / Bamba (hybrid, pure) /
 * Mamba2 checkpoints: a full-sequence forward equals prefill + token-by-token decode and any
 * chunking of the prefill; several sequences in one step equal separate runs; forking a prompt
 * (shared KV pages + copied state slot) equals independent prefills; loading refuses broken
 * checkpoints with the tensor named.
 */
#include <math.h>

#include "common/util.h"
#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/safetensors.h"

static op_backend *be;
static char *dirs[MT_COUNT];

static void gen_tokens(int32_t *t, int n, int V, unsigned seed) {
    for (int i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; t[i] = (int32_t)((seed >> 8) % (unsigned)V); }
}

TEST(random_models_load) {
    char err[512];
    for (int k = 0; k < MT_COUNT; k++) {
        model *m = NULL;
        int rc = model_load(dirs[k], be, &m, err, sizeof err);
        EXPECT_MSG(rc == 0, "%s: %s", mt_names[k], err);
        if (m) {
            const model_config *c = model_cfg(m);
            EXPECT_EQ_INT(c->vocab_size, 97);
            model_destroy(&m);
            EXPECT(m == NULL);
        }
    }
}

TEST(prefill_decode_equals_full_forward) {
    char err[512];
    int n = 21;
    for (int k = 0; k < MT_COUNT; k++) {
        model *m = NULL;
        if (model_load(dirs[k], be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); continue; }
        int V = model_cfg(m)->vocab_size;
        kv_cache *kv = NULL;
        EXPECT(kv_cache_new(be, model_cfg(m), 4, 64, 4, &kv, err, sizeof err) == 0);
        int32_t tok[21];
        gen_tokens(tok, n, V, 7 + k);
        float *full = calloc((size_t)n * V, sizeof(float)), *step = calloc((size_t)n * V, sizeof(float));
        float *ch5 = calloc((size_t)n * V, sizeof(float));
        mt_run_seq(m, kv, tok, n, n, full);
        mt_run_seq(m, kv, tok, n, 1, step);
        mt_run_seq(m, kv, tok, n, 5, ch5);
        double d1 = mt_maxdiff(full, step, (size_t)n * V), d2 = mt_maxdiff(full, ch5, (size_t)n * V);
        EXPECT_MSG(d1 < 1e-3, "%s: full vs token-by-token max diff %g", mt_names[k], d1);
        EXPECT_MSG(d2 < 1e-3, "%s: full vs chunks of 5 max diff %g", mt_names[k], d2);
        /* the logits are not trivially equal: positions differ */
        EXPECT(mt_maxdiff(full, full + V, V) > 1e-3);
        /* all pages and slots returned */
        EXPECT_EQ_INT(kv_pages_available(kv), kv_n_pages(kv));
        free(full); free(step); free(ch5);
        kv_cache_destroy(&kv);
        model_destroy(&m);
    }
}

TEST(batched_sequences_equal_separate_runs) {
    char err[512];
    int lens[3] = {9, 1, 14};
    for (int k = 0; k < MT_COUNT; k++) {
        model *m = NULL;
        if (model_load(dirs[k], be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); continue; }
        int V = model_cfg(m)->vocab_size;
        kv_cache *kv = NULL;
        kv_cache_new(be, model_cfg(m), 4, 64, 6, &kv, err, sizeof err);
        int32_t tok[3][16];
        float *ref[3];
        for (int s = 0; s < 3; s++) {
            gen_tokens(tok[s], lens[s], V, 100 + s);
            ref[s] = calloc((size_t)lens[s] * V, sizeof(float));
            mt_run_seq(m, kv, tok[s], lens[s], lens[s], ref[s]);
        }
        /* all three in one step, then a decode step of the three together */
        kv_seq seq[3];
        kv_batch b;
        kv_batch_init(&b);
        kv_batch_clear(&b);
        for (int s = 0; s < 3; s++) {
            kv_seq_init(kv, &seq[s]);
            kv_seq_reserve(kv, &seq[s], lens[s] + 1);
            kv_batch_add(kv, &b, &seq[s], tok[s], lens[s] - 1);
        }
        kv_batch_finish(&b);
        const float *lg = model_forward(m, kv, &b, 1);
        float *got = malloc(sizeof(float) * (size_t)b.T * V);
        be->download(be, got, lg, sizeof(float) * (size_t)b.T * V);
        for (int s = 0; s < 3; s++) {
            int off = b.cu_seqlens[s];
            double d = mt_maxdiff(got + (size_t)off * V, ref[s], (size_t)(lens[s] - 1) * V);
            EXPECT_MSG(d < 1e-3, "%s seq %d: batched prefill diff %g", mt_names[k], s, d);
        }
        kv_batch_clear(&b);
        for (int s = 0; s < 3; s++) kv_batch_add(kv, &b, &seq[s], &tok[s][lens[s] - 1], 1);
        kv_batch_finish(&b);
        lg = model_forward(m, kv, &b, 0);
        be->download(be, got, lg, sizeof(float) * 3 * V);
        for (int s = 0; s < 3; s++) {
            double d = mt_maxdiff(got + (size_t)s * V, ref[s] + (size_t)(lens[s] - 1) * V, V);
            EXPECT_MSG(d < 1e-3, "%s seq %d: batched decode diff %g", mt_names[k], s, d);
        }
        for (int s = 0; s < 3; s++) { kv_seq_release(kv, &seq[s]); free(ref[s]); }
        free(got);
        kv_batch_free(&b);
        kv_cache_destroy(&kv);
        model_destroy(&m);
    }
}

TEST(fork_shares_prefix_and_equals_independent_prefill) {
    char err[512];
    for (int k = 0; k < MT_COUNT; k++) {
        model *m = NULL;
        if (model_load(dirs[k], be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); continue; }
        int V = model_cfg(m)->vocab_size;
        kv_cache *kv = NULL;
        kv_cache_new(be, model_cfg(m), 4, 64, 8, &kv, err, sizeof err);
        int np = 10, ns = 3, ng = 6; /* prompt 10 = 2 full pages + a partial one */
        int32_t prompt[10], cont[3][6];
        gen_tokens(prompt, np, V, 55);
        for (int s = 0; s < ns; s++) gen_tokens(cont[s], ng, V, 300 + s);
        /* reference: each sample's prompt + continuation as one sequence */
        float *ref = calloc((size_t)(np + ng) * V, sizeof(float)), *got = malloc(sizeof(float) * ns * V);
        kv_seq parent;
        kv_seq_init(kv, &parent);
        kv_seq_reserve(kv, &parent, np);
        kv_batch b;
        kv_batch_init(&b);
        kv_batch_clear(&b);
        kv_batch_add(kv, &b, &parent, prompt, np);
        kv_batch_finish(&b);
        model_forward(m, kv, &b, 0);
        int before = kv_pages_available(kv);
        kv_seq child[3];
        for (int s = 0; s < ns; s++) EXPECT(kv_seq_fork(kv, &parent, &child[s], np + ng) == 0);
        if (model_cfg(m)->n_attn_layers) {
            /* each fork reserves its own pages (partial copy + growth) but shares the 2 full ones */
            int per = kv_fork_pages_needed(kv, np, np + ng);
            EXPECT_EQ_INT(per, 2);
            EXPECT_EQ_INT(before - kv_pages_available(kv), ns * per);
            EXPECT(child[0].pages[0] == parent.pages[0] && child[1].pages[1] == parent.pages[1]);
            EXPECT(child[0].pages[2] != parent.pages[2]);
        }
        kv_seq_release(kv, &parent); /* the children keep the shared pages alive */
        double worst = 0;
        for (int t = 0; t < ng; t++) {
            kv_batch_clear(&b);
            for (int s = 0; s < ns; s++) kv_batch_add(kv, &b, &child[s], &cont[s][t], 1);
            kv_batch_finish(&b);
            const float *lg = model_forward(m, kv, &b, 0);
            be->download(be, got, lg, sizeof(float) * ns * V);
            for (int s = 0; s < ns; s++) {
                int32_t all[16];
                memcpy(all, prompt, sizeof(int32_t) * np);
                memcpy(all + np, cont[s], sizeof(int32_t) * ng);
                mt_run_seq(m, kv, all, np + t + 1, np + t + 1, ref);
                double d = mt_maxdiff(got + (size_t)s * V, ref + (size_t)(np + t) * V, V);
                if (d > worst) worst = d;
            }
        }
        EXPECT_MSG(worst < 1e-3, "%s: fork vs independent max diff %g", mt_names[k], worst);
        for (int s = 0; s < ns; s++) kv_seq_release(kv, &child[s]);
        EXPECT_EQ_INT(kv_pages_available(kv), kv_n_pages(kv));
        free(ref); free(got);
        kv_batch_free(&b);
        kv_cache_destroy(&kv);
        model_destroy(&m);
    }
}

TEST(broken_checkpoints_are_refused_with_names) {
    char err[512];
    char *d = mt_tmpdir("broken");
    model_random_spec s = mt_spec(MT_LLAMA_GQA);
    s.intermediate = 40;
    EXPECT(model_write_random(d, &s, err, sizeof err) == 0);
    /* config says 48 -> shapes disagree */
    char path[512], *cfg;
    snprintf(path, sizeof path, "%s/config.json", d);
    size_t len;
    cfg = util_read_file(path, &len, err, sizeof err);
    char *p = strstr(cfg, "\"intermediate_size\": 40");
    if (p) memcpy(p, "\"intermediate_size\": 48", 23);
    util_write_file_atomic(path, cfg, len, err, sizeof err);
    free(cfg);
    model *m = NULL;
    EXPECT(model_load(d, be, &m, err, sizeof err) != 0);
    EXPECT(m == NULL);
    EXPECT_MSG(strstr(err, "mlp.gate_proj.weight") && strstr(err, "expected [48, 32]"), "%s", err);
    /* a missing tensor */
    char *d2 = mt_tmpdir("missing");
    model_random_spec s2 = mt_spec(MT_MAMBA2);
    s2.layers = 2;
    model_write_random(d2, &s2, err, sizeof err);
    snprintf(path, sizeof path, "%s/config.json", d2);
    cfg = util_read_file(path, &len, err, sizeof err);
    p = strstr(cfg, "\"num_hidden_layers\": 2");
    if (p) p[21] = '3';
    util_write_file_atomic(path, cfg, len, err, sizeof err);
    free(cfg);
    EXPECT(model_load(d2, be, &m, err, sizeof err) != 0);
    EXPECT_MSG(strstr(err, "backbone.layers.2.") != NULL, "%s", err);
    mt_rmdir(d);
    mt_rmdir(d2);
}

TEST(bf16_checkpoint_loads_close_to_f32) {
    char err[512];
    char *d = mt_tmpdir("bf16");
    model_random_spec s = mt_spec(MT_BAMBA_HYBRID);
    s.dtype = OP_BF16;
    EXPECT(model_write_random(d, &s, err, sizeof err) == 0);
    model *m = NULL;
    EXPECT_MSG(model_load(d, be, &m, err, sizeof err) == 0, "%s", err);
    if (m) {
        kv_cache *kv = NULL;
        kv_cache_new(be, model_cfg(m), 4, 16, 2, &kv, err, sizeof err);
        int32_t t[5] = {1, 2, 3, 4, 5};
        float *o = calloc(5 * 97, sizeof(float));
        mt_run_seq(m, kv, t, 5, 5, o);
        int finite = 1;
        for (int i = 0; i < 5 * 97; i++) finite &= isfinite(o[i]) != 0;
        EXPECT(finite);
        free(o);
        kv_cache_destroy(&kv);
        model_destroy(&m);
    }
    mt_rmdir(d);
}

int main(void) {
    char err[512];
    be = op_backend_new("cpu", err, sizeof err);
    for (int k = 0; k < MT_COUNT; k++) {
        dirs[k] = mt_tmpdir("model");
        model_random_spec s = mt_spec(k);
        if (model_write_random(dirs[k], &s, err, sizeof err)) { printf("write %s: %s\n", mt_names[k], err); return 1; }
    }
    RUN(random_models_load);
    RUN(prefill_decode_equals_full_forward);
    RUN(batched_sequences_equal_separate_runs);
    RUN(fork_shares_prefix_and_equals_independent_prefill);
    RUN(broken_checkpoints_are_refused_with_names);
    RUN(bf16_checkpoint_loads_close_to_f32);
    for (int k = 0; k < MT_COUNT; k++) mt_rmdir(dirs[k]);
    be->destroy(&be);
    return unit_summary();
}
