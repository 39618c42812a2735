/* tests/unit/test_engine.c — the generation engine: stories260K (converted from llama2.c) run
 * greedily from BOS reproduces the text documented in its model card; a sample's tokens do not
 * depend on the number of slots / batch composition; engine greedy equals a manual argmax loop
 * for every architecture; EOS, stop strings and max_tokens end samples; telemetry adds up.
 */
#include <math.h>

#include "common/util.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/engine.h"
#include "workers/model/llama2c.h"
#include "workers/model/tokenizer.h"

static op_backend *be;

/* ---------------------------------------------------------------- collected results */
typedef struct got { int n; uint32_t problem[256], sample[256]; int32_t ids[256][64]; int n_ids[256], tokens[256];
                     char text[256][1024]; double time_s[256]; char finish[256][8]; } got;
static int collect(void *ud, const eng_result *r) {
    got *g = ud;
    if (g->n >= 256) return 1;
    int i = g->n++;
    g->problem[i] = r->problem;
    g->sample[i] = r->sample;
    g->n_ids[i] = r->n_ids;
    g->tokens[i] = r->tokens;
    memcpy(g->ids[i], r->ids, sizeof(int32_t) * (r->n_ids < 64 ? r->n_ids : 64));
    snprintf(g->text[i], sizeof g->text[i], "%.*s", (int)r->text_len, r->text);
    g->time_s[i] = r->time_s;
    snprintf(g->finish[i], sizeof g->finish[i], "%s", r->finish);
    return 0;
}
static int find(const got *g, uint32_t p, uint32_t s) {
    for (int i = 0; i < g->n; i++) if (g->problem[i] == p && g->sample[i] == s) return i;
    return -1;
}

/* ---------------------------------------------------------------- stories260K */
static char *stories_dir;

static char *expected_story(void) {
    size_t len;
    char err[256];
    char *md = util_read_file(unit_data_path("models/stories260K/stories260K.md"), &len, err, sizeof err);
    if (!md) return NULL;
    const char *key = "-t 0.0\n";
    char *p = strstr(md, key);
    if (!p) { free(md); return NULL; }
    p += strlen(key);
    char *end = strstr(p, "\n```");
    if (!end) { free(md); return NULL; }
    char *out = strndup(p, (size_t)(end - p));
    free(md);
    return out;
}

TEST(stories260k_greedy_matches_model_card) {
    if (!stories_dir) { unit_skip("stories260K not available or conversion failed"); return; }
    char err[512];
    model *m = NULL;
    tok *tk = NULL;
    if (model_load(stories_dir, be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); return; }
    if (tok_load(stories_dir, &tk, err, sizeof err)) { EXPECT_MSG(0, "%s", err); model_destroy(&m); return; }
    char *want = expected_story();
    EXPECT(want != NULL);
    engine *e = NULL;
    eng_config cfg = {4, 64, 16, 1, 0};
    EXPECT(eng_new(m, tk, &cfg, &e, err, sizeof err) == 0);
    int32_t bos = 1;
    eng_request r;
    memset(&r, 0, sizeof r);
    r.prompt = &bos; r.n_prompt = 1; r.n_samples = 1; r.temperature = 0; r.max_tokens = 256;
    /* collect all ids: custom emitter */
    static got g;
    memset(&g, 0, sizeof g);
    EXPECT_MSG(eng_run(e, &r, 1, collect, &g, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_INT(g.n, 1);
    if (want && g.n == 1) {
        size_t full = strlen(g.text[0]), w = strlen(want), same = 0;
        while (same < full && same < w && g.text[0][same] == want[same]) same++;
        printf("  stories260K: %d tokens, text matches the model card for %zu of its %zu bytes\n", g.tokens[0], same, w);
        /* text of the first 185 tokens must be a prefix of the documented output */
        /* re-decode the first 185 ids (the stored copy holds 64; run again with max 185) */
        memset(&g, 0, sizeof g);
        r.max_tokens = 185;
        eng_run(e, &r, 1, collect, &g, err, sizeof err);
        size_t L = strlen(g.text[0]);
        EXPECT_MSG(g.tokens[0] == 185, "generated %d tokens", g.tokens[0]);
        EXPECT_MSG(L > 400 && strncmp(g.text[0], want, L) == 0, "greedy text diverges:\n got: %s\nwant: %.*s", g.text[0], (int)L, want);
        EXPECT(strncmp(g.text[0], "Once upon a time, there was a little girl named Lily.", 53) == 0);
    }
    /* a stop string cuts the text before it */
    memset(&g, 0, sizeof g);
    r.max_tokens = 100;
    r.stop[0] = "Lily";
    r.n_stop = 1;
    eng_run(e, &r, 1, collect, &g, err, sizeof err);
    EXPECT_EQ_STR(g.text[0], "Once upon a time, there was a little girl named ");
    EXPECT_EQ_STR(g.finish[0], "stop");
    /* max_tokens ends with "length" */
    memset(&g, 0, sizeof g);
    r.n_stop = 0;
    r.max_tokens = 7;
    eng_run(e, &r, 1, collect, &g, err, sizeof err);
    EXPECT_EQ_INT(g.tokens[0], 7);
    EXPECT_EQ_STR(g.finish[0], "length");
    free(want);
    eng_destroy(&e);
    tok_destroy(&tk);
    model_destroy(&m);
}

/* ---------------------------------------------------------------- determinism */

static size_t kv_cap_bytes; /* 0 = no cap */
static int pack_prefill, step_tokens = 5;
static int cb_count[8];
static int count_tokens(void *ud, int request, uint32_t sample, int32_t id, const char *piece, size_t len) {
    if (sample < 8) cb_count[sample]++;
    return 0;
}
static void run_reqs(model *m, int max_seqs, int max_prompts, const eng_request *rq, int n, got *g) {
    char err[512];
    engine *e = NULL;
    eng_config cfg = {max_seqs, step_tokens, 4, max_prompts, kv_cap_bytes};
    memset(g, 0, sizeof *g);
    EXPECT(eng_new(m, NULL, &cfg, &e, err, sizeof err) == 0);
    if (e) eng_set_prefill_pack(e, pack_prefill);
    memset(cb_count, 0, sizeof cb_count);
    if (e) eng_set_token_callback(e, count_tokens, NULL);
    EXPECT_MSG(eng_run(e, rq, n, collect, g, err, sizeof err) == 0, "%s", err);
    eng_destroy(&e);
}

TEST(same_seed_same_tokens_whatever_the_batching) {
    char err[512];
    for (int k = 0; k < MT_COUNT; k++) {
        char *dir = mt_tmpdir("eng");
        model_random_spec s = mt_spec(k);
        model_write_random(dir, &s, err, sizeof err);
        model *m = NULL;
        if (model_load(dir, be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); mt_rmdir(dir); continue; }
        int32_t p0[7] = {1, 5, 9, 22, 3, 40, 41}, p1[3] = {1, 60, 61}, p2[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
        eng_request rq[3];
        memset(rq, 0, sizeof rq);
        const int32_t *ps[3] = {p0, p1, p2};
        int ns[3] = {7, 3, 13};
        for (int i = 0; i < 3; i++) {
            rq[i].prompt = ps[i]; rq[i].n_prompt = ns[i]; rq[i].n_samples = 4; rq[i].problem = 10 + i;
            rq[i].temperature = 1.0f; rq[i].top_p = 0.95f; rq[i].seed = 99; rq[i].max_tokens = 12 + 3 * i;
        }
        static got a, b, c;
        run_reqs(m, 1, 1, rq, 3, &a);
        run_reqs(m, 5, 2, rq, 3, &b);
        run_reqs(m, 16, 3, rq, 3, &c);
        EXPECT_EQ_INT(a.n, 12);
        EXPECT_EQ_INT(b.n, 12);
        EXPECT_EQ_INT(c.n, 12);
        int same = 1, distinct = 0;
        for (int i = 0; i < a.n; i++) {
            int j = find(&b, a.problem[i], a.sample[i]), l = find(&c, a.problem[i], a.sample[i]);
            if (j < 0 || l < 0) { same = 0; continue; }
            same &= a.n_ids[i] == b.n_ids[j] && a.n_ids[i] == c.n_ids[l];
            same &= !memcmp(a.ids[i], b.ids[j], sizeof(int32_t) * a.n_ids[i]) && !memcmp(a.ids[i], c.ids[l], sizeof(int32_t) * a.n_ids[i]);
            int o = find(&a, a.problem[i], (a.sample[i] + 1) % 4);
            if (o >= 0 && memcmp(a.ids[i], a.ids[o], sizeof(int32_t) * 4)) distinct++;
        }
        EXPECT_MSG(same, "%s: tokens differ across batch configurations", mt_names[k]);
        /* prompts packed into one prefill forward (short prompts: same kernels, same bits) */
        pack_prefill = 1; step_tokens = 64;
        run_reqs(m, 4, 3, rq, 3, &b);
        pack_prefill = 0; step_tokens = 5;
        EXPECT_EQ_INT(b.n, 12);
        int same3 = 1;
        for (int i = 0; i < a.n; i++) {
            int j = find(&b, a.problem[i], a.sample[i]);
            same3 &= j >= 0 && a.n_ids[i] == b.n_ids[j] && !memcmp(a.ids[i], b.ids[j], sizeof(int32_t) * a.n_ids[i]);
        }
        EXPECT_MSG(same3, "%s: tokens differ with packed prefill", mt_names[k]);
        /* KV pressure: room for about two sequences; admission waits for pages, same tokens */
        if (model_cfg(m)->n_attn_layers) {
            kv_cap_bytes = kv_page_bytes(be, model_cfg(m), 4) * 24;
            run_reqs(m, 8, 2, rq, 3, &b);
            kv_cap_bytes = 0;
            EXPECT_EQ_INT(b.n, 12);
            int same2 = 1;
            for (int i = 0; i < a.n; i++) {
                int j = find(&b, a.problem[i], a.sample[i]);
                same2 &= j >= 0 && a.n_ids[i] == b.n_ids[j] && !memcmp(a.ids[i], b.ids[j], sizeof(int32_t) * a.n_ids[i]);
            }
            EXPECT_MSG(same2, "%s: tokens differ under KV pressure", mt_names[k]);
        }
        EXPECT_MSG(distinct > 6, "%s: samples of a problem should differ (%d distinct pairs)", mt_names[k], distinct);
        /* a different seed gives different tokens */
        for (int i = 0; i < 3; i++) rq[i].seed = 100;
        run_reqs(m, 5, 2, rq, 3, &b);
        int diff = 0;
        for (int i = 0; i < a.n; i++) {
            int j = find(&b, a.problem[i], a.sample[i]);
            if (j >= 0 && memcmp(a.ids[i], b.ids[j], sizeof(int32_t) * 4)) diff++;
        }
        EXPECT(diff > 6);
        model_destroy(&m);
        mt_rmdir(dir);
    }
}

TEST(greedy_engine_equals_manual_argmax) {
    char err[512];
    for (int k = 0; k < MT_COUNT; k++) {
        char *dir = mt_tmpdir("greedy");
        model_random_spec s = mt_spec(k);
        model_write_random(dir, &s, err, sizeof err);
        model *m = NULL;
        if (model_load(dir, be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s", err); mt_rmdir(dir); continue; }
        int V = model_cfg(m)->vocab_size, np = 6, ng = 10;
        int32_t seq[32] = {1, 17, 33, 8, 90, 4};
        kv_cache *kv = NULL;
        kv_cache_new(be, model_cfg(m), 4, 32, 2, &kv, err, sizeof err);
        float *lg = malloc(sizeof(float) * 32 * V);
        for (int t = 0; t < ng; t++) { /* full recompute each step: independent of the cache logic */
            mt_run_seq(m, kv, seq, np + t, np + t, lg);
            const float *row = lg + (size_t)(np + t - 1) * V;
            int best = 0;
            for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
            seq[np + t] = best;
        }
        kv_cache_destroy(&kv);
        /* the engine, greedy, 3 samples (all identical) */
        eng_request r;
        memset(&r, 0, sizeof r);
        r.prompt = seq; r.n_prompt = np; r.n_samples = 3; r.temperature = 0; r.max_tokens = ng;
        static got g;
        run_reqs(m, 2, 1, &r, 1, &g);
        EXPECT_EQ_INT(g.n, 3);
        int eos_at = ng;
        for (int t = 0; t < ng; t++) if (seq[np + t] == 2) { eos_at = t; break; }
        for (int i = 0; i < g.n; i++) {
            EXPECT_EQ_INT(g.n_ids[i], eos_at);
            EXPECT_EQ_INT(cb_count[g.sample[i]], eos_at); /* the streaming hook saw every token */
            EXPECT(!memcmp(g.ids[i], seq + np, sizeof(int32_t) * eos_at));
        }
        free(lg);
        model_destroy(&m);
        mt_rmdir(dir);
    }
}

TEST(eos_ends_a_sample_and_telemetry_adds_up) {
    char err[512];
    char *dir = mt_tmpdir("eos");
    model_random_spec s = mt_spec(MT_BAMBA_HYBRID);
    model_write_random(dir, &s, err, sizeof err);
    model *m = NULL;
    EXPECT(model_load(dir, be, &m, err, sizeof err) == 0);
    int32_t prompt[4] = {1, 7, 7, 7};
    eng_request r;
    memset(&r, 0, sizeof r);
    r.prompt = prompt; r.n_prompt = 4; r.n_samples = 1; r.temperature = 0; r.max_tokens = 5;
    static got g;
    run_reqs(m, 2, 1, &r, 1, &g);
    int32_t second = g.ids[0][1];
    model_destroy(&m);
    /* make the greedy second token the EOS id */
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *cfg = util_read_file(path, &len, err, sizeof err), *p = strstr(cfg, "\"eos_token_id\": 2");
    EXPECT(p != NULL);
    util_buf nb;
    util_buf_init(&nb);
    util_buf_append(&nb, cfg, (size_t)(p - cfg));
    util_buf_printf(&nb, "\"eos_token_id\": [%d, 2]%s", second, p + strlen("\"eos_token_id\": 2"));
    util_write_file_atomic(path, nb.data, nb.len, err, sizeof err);
    util_buf_free(&nb);
    free(cfg);
    EXPECT(model_load(dir, be, &m, err, sizeof err) == 0);
    if (!m) { mt_rmdir(dir); return; }
    run_reqs(m, 2, 1, &r, 1, &g);
    EXPECT_EQ_INT(g.tokens[0], 2);
    EXPECT_EQ_INT(g.n_ids[0], 1);
    EXPECT_EQ_STR(g.finish[0], "stop");
    /* telemetry: samples' amortised times add up to prefill + decode time */
    eng_request rq[2];
    memset(rq, 0, sizeof rq);
    int32_t p2[20];
    for (int i = 0; i < 20; i++) p2[i] = 3 + i;
    for (int i = 0; i < 2; i++) {
        rq[i].prompt = p2; rq[i].n_prompt = 20 - 5 * i; rq[i].n_samples = 3; rq[i].problem = i;
        rq[i].temperature = 0.8f; rq[i].seed = 5; rq[i].max_tokens = 30;
    }
    engine *e = NULL;
    eng_config ec = {4, 8, 4, 1, 0};
    eng_new(m, NULL, &ec, &e, err, sizeof err);
    memset(&g, 0, sizeof g);
    EXPECT(eng_run(e, rq, 2, collect, &g, err, sizeof err) == 0);
    eng_stats st;
    eng_get_stats(e, &st);
    double sum = 0;
    for (int i = 0; i < g.n; i++) { sum += g.time_s[i]; EXPECT(g.time_s[i] > 0); }
    EXPECT_EQ_INT(g.n, 6);
    EXPECT_EQ_INT(st.prefill_tokens, 35); /* each prompt prefilled once, not per sample */
    double tot = st.prefill_s + st.decode_s;
    EXPECT_MSG(sum >= tot * 0.999 && sum <= tot * 1.2 + 1e-3, "sum of time_s %g vs prefill+decode %g", sum, tot);
    EXPECT(st.mean_batch > 1.0);
    eng_destroy(&e);
    model_destroy(&m);
    mt_rmdir(dir);
}

int main(void) {
    char err[512];
    be = op_backend_new("cpu", err, sizeof err);
    char *d = mt_tmpdir("stories");
    char sum[256];
    char ck[1024], tb[1024]; /* unit_data_path returns one static buffer */
    snprintf(ck, sizeof ck, "%s", unit_data_path("models/stories260K/stories260K.bin"));
    snprintf(tb, sizeof tb, "%s", unit_data_path("models/stories260K/tok512.bin"));
    if (llama2c_convert(ck, tb, d, sum, sizeof sum, err, sizeof err) == 0)
        stories_dir = d;
    else
        printf("stories260K conversion: %s\n", err);
    RUN(stories260k_greedy_matches_model_card);
    RUN(same_seed_same_tokens_whatever_the_batching);
    RUN(greedy_engine_equals_manual_argmax);
    RUN(eos_ends_a_sample_and_telemetry_adds_up);
    mt_rmdir(d);
    be->destroy(&be);
    return unit_summary();
}
