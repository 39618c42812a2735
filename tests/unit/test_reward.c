/* tests/unit/test_reward.c — reward models (workers/score/reward.h) on small constructed models.
 *
 * Models are written here through model_random + the safetensors writer, with the stories260K
 * tokenizer (tok512.bin, 512 ids) from ../shared/data linked in (or, where ../shared/data is
 * absent, a generated 512-id llama2.c tokenizer: THINKFAST_DATA=/nonexistent forces it):
 *   - "zeroed" Llamas whose attention o_proj and MLP down_proj are zero, so the residual stream
 *     of every token is its embedding and the expected ORM score / PRM probability is a
 *     hand-computed dot product (independent of the engine);
 *   - random Llamas, checked against model_forward logits of the equivalent causal LM whose
 *     lm_head rows are the ORM's score.weight rows (ORM) or of the PRM itself run token by token
 *     through the cache (PRM), and batch vs one-at-a-time.
 * Also the two-token normalised PRM step score (prm_bad_token) and its params forwarding.
 * Plus step splitting, aggregation rules, spec validation (score.reward), load errors, CUDA vs
 * CPU (skipped without a device) and a throughput bench (THINKFAST_REWARD_BENCH=1,
 * THINKFAST_REWARD_DEVICE=cpu|cuda).
 */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/payload.h"
#include "broker/tasks.h"
#include "jobs/prompt.h"
#include "jobs/proto.h"
#include "jobs/spec.h"
#include "store/store.h"
#include "workers/wrk_roles.h"
#include "workers/wrk_task.h"
#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/safetensors.h"
#include "workers/model/tokenizer.h"
#include "workers/score/reward.h"

/* ------------------------------------------------------------------ pure helpers */

TEST(aggregate_rules) {
    double s[4] = {0.9, 0.2, 0.7, 0.5};
    EXPECT_NEAR(reward_aggregate(REWARD_AGG_LAST, s, 4), 0.5, 0);
    EXPECT_NEAR(reward_aggregate(REWARD_AGG_MIN, s, 4), 0.2, 0);
    EXPECT_NEAR(reward_aggregate(REWARD_AGG_PROD, s, 4), 0.9 * 0.2 * 0.7 * 0.5, 1e-15);
    EXPECT_NEAR(reward_aggregate(REWARD_AGG_MIN, s, 1), 0.9, 0);
    EXPECT(isnan(reward_aggregate(REWARD_AGG_LAST, s, 0)));
    double t[3] = {0.4, NAN, 0.8};
    EXPECT(isnan(reward_aggregate(REWARD_AGG_MIN, t, 3)));
    reward_agg a;
    reward_kind k;
    EXPECT(reward_parse_agg("prod", &a) == 0 && a == REWARD_AGG_PROD);
    EXPECT(reward_parse_agg(NULL, &a) == 0 && a == REWARD_AGG_LAST);
    EXPECT(reward_parse_agg("mean", &a) == -1);
    EXPECT(reward_parse_kind("prm", &k) == 0 && k == REWARD_PRM);
    EXPECT(reward_parse_kind("", &k) == 0 && k == REWARD_ORM);
    EXPECT(reward_parse_kind("bt", &k) == -1);
}

static int split(const char *r, const char *sep, size_t *out, int cap) {
    size_t *e;
    int n = reward_split_steps(r, strlen(r), sep, &e);
    for (int i = 0; i < n && i < cap; i++) out[i] = e[i];
    free(e);
    return n;
}

TEST(split_steps) {
    size_t e[8];
    int n = split("a\n\nbc\n\nd", NULL, e, 8);
    EXPECT_EQ_INT(n, 3);
    EXPECT_EQ_INT(e[0], 3); EXPECT_EQ_INT(e[1], 7); EXPECT_EQ_INT(e[2], 8);
    n = split("a\n\nbc\n\n", "\n\n", e, 8);   /* no tail: two steps */
    EXPECT_EQ_INT(n, 2);
    EXPECT_EQ_INT(e[1], 7);
    n = split("a\n\nbc\n\n  \n", "\n\n", e, 8); /* whitespace tail is not a step */
    EXPECT_EQ_INT(n, 2);
    n = split("\n\n\n\nx\n\n", "\n\n", e, 8);   /* empty steps merge into the next */
    EXPECT_EQ_INT(n, 1);
    EXPECT_EQ_INT(e[0], 7);
    n = split("", NULL, e, 8);                   /* always one step, at the end */
    EXPECT_EQ_INT(n, 1);
    EXPECT_EQ_INT(e[0], 0);
    n = split("no separator here", NULL, e, 8);
    EXPECT_EQ_INT(n, 1);
    EXPECT_EQ_INT(e[0], 17);
    n = split("s1 ки s2 ки s3", " ки", e, 8);
    EXPECT_EQ_INT(n, 3);
    EXPECT_EQ_INT(e[0], 2 + strlen(" ки"));
}

/* ------------------------------------------------------------------ model construction */

typedef struct tensor_edit {
    int zero_mixers;          /* zero every o_proj / down_proj (residual = embedding) */
    const float *score;       /* add score.weight [labels, D] */
    int labels;
    const float *lm_head;     /* add lm_head.weight [V, D] (untied) */
} tensor_edit;

/* The tokenizer the models use: stories260K's tok512.bin from ../shared/data, or (where that
 * is absent, e.g. on a GPU host) a generated llama2.c tokenizer of 512 ids: <unk>, BOS, EOS, the
 * 256 byte tokens, printable ASCII, a few merges ("Th", "The", " The", "\n\n", ...), fillers. */
static int tok_generated;
static const char *tok_path(void) {
    static char path[PATH_MAX];
    if (path[0]) return path;
    if (realpath(unit_data_path("models/stories260K/tok512.bin"), path)) return path;
    snprintf(path, sizeof path, "/tmp/thinkfast_rm_tok_%d.bin", (int)getpid());
    tok_generated = 1;
    FILE *f = fopen(path, "wb");
    if (!f) { path[0] = 0; return NULL; }
    int32_t maxlen = 16;
    fwrite(&maxlen, 4, 1, f);
    int n = 0;
    char buf[32];
    const char *merges[] = {"Th", "The", " The", "\n\n", " a", "an", " an", "he", " t", " th", "in", "er", NULL};
    for (int id = 0; id < 512; id++) {
        const char *t;
        float score = 0;
        if (id == 0) t = "<unk>";
        else if (id == 1) t = "\n<s>\n";
        else if (id == 2) t = "\n</s>\n";
        else if (id < 259) { snprintf(buf, sizeof buf, "<0x%02X>", id - 3); t = buf; }
        else if (id < 259 + 95) { buf[0] = (char)(32 + id - 259); buf[1] = 0; t = buf; score = -100; }
        else if (merges[id - 354 < 12 ? id - 354 : 12]) { t = merges[id - 354]; score = -(float)(id - 354); }
        else { snprintf(buf, sizeof buf, "<f%d>", id); t = buf; score = -1000; }
        int32_t l = (int32_t)strlen(t);
        fwrite(&score, 4, 1, f);
        fwrite(&l, 4, 1, f);
        fwrite(t, 1, (size_t)l, f);
        n++;
    }
    fclose(f);
    return n == 512 ? path : NULL;
}

/* derive_model's tokenizer: NULL = tok_path() as tokenizer.bin; else this file under this name. */
static const char *tk_file, *tk_name;
static int tk_bos = 1, tk_eos = 2;

/* Copies the random model at src into dst with edits and a config rewritten: architectures =
 * arch, tie_word_embeddings = tie, num_labels (if > 0); links the stories260K tokenizer. */
static int derive_model(const char *src, const char *dst, const char *arch, int tie, int num_labels,
                        const tensor_edit *ed) {
    char p[1024], err[512];
    snprintf(p, sizeof p, "%s/config.json", src);
    json_t *cfg = json_load_file(p, 0, NULL);
    if (!cfg) return -1;
    json_object_set_new(cfg, "architectures", json_pack("[s]", arch));
    json_object_set_new(cfg, "tie_word_embeddings", json_boolean(tie));
    if (num_labels > 0) json_object_set_new(cfg, "num_labels", json_integer(num_labels));
    json_object_set_new(cfg, "bos_token_id", json_integer(tk_bos));
    json_object_set_new(cfg, "eos_token_id", json_integer(tk_eos));
    snprintf(p, sizeof p, "%s/config.json", dst);
    int rc = json_dump_file(cfg, p, JSON_INDENT(1));
    int64_t D = json_integer_value(json_object_get(cfg, "hidden_size"));
    int64_t V = json_integer_value(json_object_get(cfg, "vocab_size"));
    json_decref(cfg);
    if (rc) return -1;
    st_file *f;
    if (st_open(src, &f, err, sizeof err)) { printf("  %s\n", err); return -1; }
    snprintf(p, sizeof p, "%s/model.safetensors", dst);
    st_writer *w = st_writer_new(p);
    float **tmp = calloc(st_count(f), sizeof *tmp);
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (!strcmp(t->name, "lm_head.weight")) continue;
        tmp[i] = st_tensor_to_f32(t);
        if (ed && ed->zero_mixers && (strstr(t->name, "o_proj") || strstr(t->name, "down_proj")))
            memset(tmp[i], 0, sizeof(float) * st_numel(t));
        st_writer_add(w, t->name, OP_F32, t->ndim, t->shape, tmp[i]);
    }
    if (ed && ed->score) {
        int64_t sh[2] = {ed->labels, D};
        st_writer_add(w, "score.weight", OP_F32, 2, sh, ed->score);
    }
    if (ed && ed->lm_head) {
        int64_t sh[2] = {V, D};
        st_writer_add(w, "lm_head.weight", OP_F32, 2, sh, ed->lm_head);
    }
    rc = st_writer_finish(&w, err, sizeof err);
    if (rc) printf("  %s\n", err);
    for (int i = 0; i < st_count(f); i++) free(tmp[i]);
    free(tmp);
    st_close(&f);
    char tkr[PATH_MAX];
    const char *tk = tk_file ? realpath(tk_file, tkr) : tok_path();
    if (!tk) return -1;
    snprintf(p, sizeof p, "%s/%s", dst, tk_file ? tk_name : "tokenizer.bin");
    if (symlink(tk, p) != 0) return -1;
    return rc;
}

static model_random_spec small_llama(uint64_t seed) {
    model_random_spec s = mt_spec(MT_LLAMA_GQA);
    s.vocab = 512;
    s.layers = 2;
    s.seed = seed;
    return s;
}

/* A random two-layer Llama (small_llama(seed)) written to base, and the causal-LM PRM derived
 * from it into prm (tied: lm_head = embedding); zeroed: every o_proj / down_proj zeroed, so the
 * residual stream stays the embedding (tensor_edit.zero_mixers). Returns the spec. */
static model_random_spec write_prm(const char *base, const char *prm, uint64_t seed, int zeroed) {
    char err[1024] = "";
    model_random_spec s = small_llama(seed);
    EXPECT_MSG(model_write_random(base, &s, err, sizeof err) == 0, "write %s: %s", base, err);
    tensor_edit ed = {1, NULL, 0, NULL};
    EXPECT(derive_model(base, prm, "LlamaForCausalLM", 1, 0, zeroed ? &ed : NULL) == 0);
    return s;
}

static float *rand_vec(int n, uint64_t seed, float scale) {
    float *v = malloc(sizeof(float) * n);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        v[i] = scale * (float)((double)(x >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
    }
    return v;
}

static int have_tokenizer(void) { return tok_path() != NULL; }

/* Host reference for a zeroed model: rmsnorm(embed[id]) * norm_w, in double. */
static void zeroed_hidden(st_file *f, const model_config *c, int32_t id, double *h) {
    const st_tensor *E = st_find(f, "model.embed_tokens.weight"), *N = st_find(f, "model.norm.weight");
    float *e = st_tensor_to_f32(E), *nw = st_tensor_to_f32(N);
    int D = c->hidden;
    double ss = 0;
    for (int i = 0; i < D; i++) ss += (double)e[(size_t)id * D + i] * e[(size_t)id * D + i];
    double r = 1.0 / sqrt(ss / D + c->rms_eps);
    for (int i = 0; i < D; i++) h[i] = e[(size_t)id * D + i] * r * nw[i];
    free(e);
    free(nw);
}

/* The probability a zeroed PRM (tied lm_head E) gives its good token at a step ending on token
 * id: the full softmax over the vocabulary (bad < 0), or good against bad alone. */
static double zeroed_step_prob(st_file *f, const model_config *c, const float *E, int32_t id, int32_t good,
                               int32_t bad) {
    double h[64], lg[512], mx = -INFINITY, z = 0;
    if (c->hidden > 64 || c->vocab_size > 512) return NAN; /* the small test models only: fails the caller */
    zeroed_hidden(f, c, id, h);
    for (int v = 0; v < c->vocab_size; v++) {
        if (bad >= 0 && v != good && v != bad) continue;
        double d = 0;
        for (int j = 0; j < c->hidden; j++) d += (double)E[(size_t)v * c->hidden + j] * h[j];
        lg[v] = d;
        if (d > mx) mx = d;
    }
    for (int v = 0; v < c->vocab_size; v++)
        if (bad < 0 || v == good || v == bad) z += exp(lg[v] - mx);
    return exp(lg[good] - mx) / z;
}

static const char *PROMPT = "Question: Lily had 3 apples and got 4 more. How many?\nAnswer: Let's think step by step.\n";
static const char *RESP[4] = {
    "Lily had 3 apples.\n\nShe got 4 more, so 3 + 4 = 7.\n\nThe answer is 7.",
    "Once upon a time there was a dog.\n\nThe answer is 12.",
    "",
    "She got 4 more.\n\n\n\nSo 7 apples.\n\n",
};

/* ------------------------------------------------------------------ ORM */

TEST(orm_zeroed_model_matches_hand_computation) {
    if (!have_tokenizer()) { unit_skip("no ../shared/data/models/stories260K/tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *orm = mt_tmpdir("rm_orm");
    char err[1024] = "";
    model_random_spec s = small_llama(11);
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    float *w = rand_vec(2 * s.hidden, 5, 1.0f);
    tensor_edit ed = {1, w, 2, NULL};
    EXPECT(derive_model(base, orm, "LlamaForSequenceClassification", 0, 2, &ed) == 0);
    reward_spec rs = {orm, "orm", "cpu", NULL, NULL, NULL, NULL};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        EXPECT_EQ_INT(reward_num_labels(rm), 2);
        st_file *f;
        EXPECT(st_open(orm, &f, err, sizeof err) == 0);
        model_config c;
        EXPECT(model_config_load(base, &c, err, sizeof err) == 0);
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n, *pos, ns;
            EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
            EXPECT_EQ_INT(ns, 1);
            EXPECT_EQ_INT(pos[0], n - 1);
            EXPECT_EQ_INT(ids[0], 1); /* BOS */
            double h[64], l0 = 0, l1 = 0;
            zeroed_hidden(f, &c, ids[n - 1], h);
            for (int d = 0; d < c.hidden; d++) { l0 += w[d] * h[d]; l1 += w[c.hidden + d] * h[d]; }
            double expect = 1.0 / (1.0 + exp(l0 - l1)); /* softmax(l)[1] */
            reward_item it = {PROMPT, RESP[i]};
            reward_result r;
            EXPECT(reward_score_batch(rm, &it, 1, &r, err, sizeof err) == 0);
            EXPECT_NEAR(r.reward, expect, 1e-5);
            EXPECT(r.steps == NULL && r.n_steps == 0);
            reward_result_free(&r, 1);
            free(ids);
            free(pos);
        }
        st_close(&f);
    }
    reward_destroy(&rm);
    free(w);
    mt_rmdir(base);
    mt_rmdir(orm);
}

TEST(orm_matches_causal_lm_with_score_rows_as_lm_head) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *orm = mt_tmpdir("rm_orm"), *clm = mt_tmpdir("rm_clm");
    char err[1024] = "";
    model_random_spec s = small_llama(12);
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    float *w = rand_vec(s.hidden, 6, 0.5f);
    tensor_edit e1 = {0, w, 1, NULL};
    EXPECT(derive_model(base, orm, "LlamaForSequenceClassification", 0, 1, &e1) == 0);
    float *head = calloc((size_t)s.vocab * s.hidden, sizeof(float));
    memcpy(head + (size_t)7 * s.hidden, w, sizeof(float) * s.hidden); /* row 7 = the score row */
    tensor_edit e2 = {0, NULL, 0, head};
    EXPECT(derive_model(base, clm, "LlamaForCausalLM", 0, 0, &e2) == 0);
    reward_spec rs = {orm, "orm", "cpu", NULL, NULL, NULL, NULL};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    op_backend *be = op_backend_new("cpu", err, sizeof err);
    model *m = NULL;
    EXPECT_MSG(model_load(clm, be, &m, err, sizeof err) == 0, "%s", err);
    if (rc == 0 && m) {
        kv_cache *kv;
        EXPECT(kv_cache_new(be, model_cfg(m), 16, 64, 0, &kv, err, sizeof err) == 0);
        reward_item items[4];
        for (int i = 0; i < 4; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i]; }
        reward_result res[4];
        EXPECT(reward_score_batch(rm, items, 4, res, err, sizeof err) == 0); /* packed in one forward */
        int V = s.vocab;
        double seen[4];
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n, *pos, ns;
            EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
            float *lg = malloc(sizeof(float) * (size_t)n * V);
            mt_run_seq(m, kv, ids, n, 5, lg); /* token chunks of 5: another code path */
            double expect = lg[(size_t)(n - 1) * V + 7];
            EXPECT_NEAR(res[i].reward, expect, 1e-4 + 1e-4 * fabs(expect));
            /* one at a time through the ids API gives the same */
            reward_result one;
            EXPECT(reward_score_ids(rm, ids, n, pos, ns, &one, err, sizeof err) == 0);
            EXPECT_NEAR(one.reward, res[i].reward, 1e-4);
            reward_set_max_step(rm, 9); /* chunked */
            EXPECT(reward_score_ids(rm, ids, n, pos, ns, &one, err, sizeof err) == 0);
            EXPECT_NEAR(one.reward, res[i].reward, 1e-4);
            reward_set_max_step(rm, 2048);
            seen[i] = res[i].reward;
            free(lg);
            free(ids);
            free(pos);
        }
        EXPECT(seen[0] != seen[1]); /* the head actually distinguishes inputs */
        kv_cache_destroy(&kv);
    }
    model_destroy(&m);
    if (be) be->destroy(&be);
    reward_destroy(&rm);
    free(w);
    free(head);
    mt_rmdir(base);
    mt_rmdir(orm);
    mt_rmdir(clm);
}

TEST(orm_load_errors) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *d1 = mt_tmpdir("rm_e1"), *d2 = mt_tmpdir("rm_e2");
    char err[1024] = "";
    model_random_spec s = small_llama(13);
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    EXPECT(derive_model(base, d1, "LlamaForSequenceClassification", 0, 1, NULL) == 0); /* no score head */
    reward_spec rs = {d1, "orm", "cpu", NULL, NULL, NULL, NULL};
    reward_model *rm = NULL;
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1 && rm == NULL);
    EXPECT_MSG(strstr(err, "score.weight is missing") != NULL, "%s", err);
    float *w = rand_vec(3 * s.hidden, 1, 1.0f);
    tensor_edit ed = {0, w, 3, NULL};
    EXPECT(derive_model(base, d2, "LlamaForSequenceClassification", 0, 2, &ed) == 0); /* num_labels 2 vs 3 rows */
    rs.model = d2;
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "num_labels") != NULL, "%s", err);
    rs.kind = "bt";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "reward.kind") != NULL, "%s", err);
    char *d3 = mt_tmpdir("rm_e3");
    EXPECT(derive_model(base, d3, "LlamaForCausalLM", 1, 0, NULL) == 0);
    rs.model = d3;
    rs.kind = "prm";
    rs.prm_token = NULL;
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "reward.prm_token") != NULL, "%s", err);
    rs.prm_token = "hello world again";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "tokens for this tokenizer") != NULL, "%s", err);
    rs.prm_token = "The";
    rs.prm_bad_token = "hello world again";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "reward.prm_bad_token: \"hello world again\" is") != NULL, "%s", err);
    rs.prm_bad_token = "The";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "reward.prm_bad_token: \"The\" is the same token") != NULL, "%s", err);
    rs.prm_bad_token = NULL;
    rs.prm_aggregate = "mean";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "reward.prm_aggregate") != NULL, "%s", err);
    rs.prm_aggregate = NULL;
    rs.kind = "orm"; /* a causal LM has no score head */
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "score.weight is missing") != NULL, "%s", err);
    mt_rmdir(d3);
    rs.model = "/nonexistent/rm";
    EXPECT(reward_load(&rs, &rm, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "/nonexistent/rm") != NULL, "%s", err);
    free(w);
    mt_rmdir(base);
    mt_rmdir(d1);
    mt_rmdir(d2);
}

/* Against HF transformers: the golden Llama fixture (tests/fixtures/models, logits HF computed
 * for a 26-token prompt). A LlamaForSequenceClassification head applies score.weight to the same
 * final-normed hidden state the tied LM head reads, so with score rows = embedding rows 5 and 9
 * HF's classifier logits at position t are its LM logits [t, 5] and [t, 9]; a PRM's step
 * probability is softmax(HF logits[t])[token]. */
TEST(hf_golden_fixture_orm_and_prm) {
    const char *fx = "tests/fixtures/models/llama_gqa_llama3_tied";
    char ep[512], err[1024] = "";
    snprintf(ep, sizeof ep, "%s/expected.safetensors", fx);
    if (access(ep, R_OK) != 0 || !have_tokenizer()) { unit_skip("no golden fixture or tokenizer"); return; }
    st_file *ex = NULL, *mf = NULL;
    EXPECT(st_open(ep, &ex, err, sizeof err) == 0);
    EXPECT(st_open(fx, &mf, err, sizeof err) == 0);
    if (!ex || !mf) { st_close(&ex); st_close(&mf); return; }
    const st_tensor *ti = st_find(ex, "input_ids"), *tl = st_find(ex, "logits");
    float *idf = st_tensor_to_f32(ti), *lg = st_tensor_to_f32(tl);
    int n = (int)st_numel(ti), V = (int)tl->shape[1];
    int32_t ids[64];
    for (int i = 0; i < n && i < 64; i++) ids[i] = (int32_t)idf[i];
    const st_tensor *E = st_find(mf, "model.embed_tokens.weight");
    float *emb = st_tensor_to_f32(E);
    int D = (int)E->shape[1];
    float *score = malloc(sizeof(float) * 2 * D);
    memcpy(score, emb + (size_t)5 * D, sizeof(float) * D);
    memcpy(score + D, emb + (size_t)9 * D, sizeof(float) * D);
    char *orm = mt_tmpdir("rm_hform"), *prm = mt_tmpdir("rm_hfprm");
    tensor_edit ed = {0, score, 2, NULL};
    EXPECT(derive_model(fx, orm, "LlamaForSequenceClassification", 0, 2, &ed) == 0);
    EXPECT(derive_model(fx, prm, "LlamaForCausalLM", 1, 0, NULL) == 0);
    reward_spec rs = {orm, "orm", "cpu", NULL, NULL, NULL, NULL};
    reward_model *rm = NULL;
    EXPECT_MSG(reward_load(&rs, &rm, err, sizeof err) == 0, "%s", err);
    int ts[4] = {1, 7, 18, n - 1};
    for (int k = 0; k < 4 && rm; k++) {
        int t = ts[k];
        reward_result r;
        EXPECT(reward_score_ids(rm, ids, t + 1, NULL, 0, &r, err, sizeof err) == 0);
        double l5 = lg[(size_t)t * V + 5], l9 = lg[(size_t)t * V + 9];
        EXPECT_NEAR(r.reward, 1.0 / (1.0 + exp(l5 - l9)), 2e-5);
    }
    reward_destroy(&rm);
    reward_spec ps = {prm, "prm", "cpu", "The", NULL, "prod", NULL};
    EXPECT_MSG(reward_load(&ps, &rm, err, sizeof err) == 0, "%s", err);
    if (rm) {
        int good = reward_prm_token_id(rm);
        int pos[4] = {0, 6, 13, n - 1};
        reward_result r;
        EXPECT(reward_score_ids(rm, ids, n, pos, 4, &r, err, sizeof err) == 0);
        double prod = 1;
        for (int k = 0; k < 4 && r.steps; k++) {
            const float *row = lg + (size_t)pos[k] * V;
            double mx = -INFINITY, z = 0;
            for (int v = 0; v < V; v++) if (row[v] > mx) mx = row[v];
            for (int v = 0; v < V; v++) z += exp(row[v] - mx);
            double p = exp(row[good] - mx) / z;
            EXPECT_NEAR(r.steps[k], p, 1e-5 + 1e-4 * p);
            prod *= p;
        }
        EXPECT_NEAR(r.reward, prod, 1e-4 * prod);
        reward_result_free(&r, 1);
        /* bad step positions are refused */
        int bad[1] = {n};
        EXPECT(reward_score_ids(rm, ids, n, bad, 1, &r, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "step position") != NULL, "%s", err);
        int32_t badid[2] = {1, 100000};
        EXPECT(reward_score_ids(rm, badid, 2, pos, 1, &r, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "outside the vocabulary") != NULL, "%s", err);
    }
    reward_destroy(&rm);
    free(idf); free(lg); free(emb); free(score);
    st_close(&ex);
    st_close(&mf);
    mt_rmdir(orm);
    mt_rmdir(prm);
}

/* ------------------------------------------------------------------ PRM */

TEST(prm_step_positions_follow_the_text) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prm");
    char err[1024] = "";
    (void)write_prm(base, prm, 14, 0);
    reward_spec rs = {prm, "prm", "cpu", "The", NULL, NULL, NULL};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        tok *tk;
        EXPECT(tok_load(prm, &tk, err, sizeof err) == 0);
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n, *pos, ns;
            EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
            size_t *ends;
            int ne = reward_split_steps(RESP[i], strlen(RESP[i]), "\n\n", &ends);
            EXPECT_EQ_INT(ns, ne);
            for (int k = 0; k < ns && k < ne; k++) {
                /* the tokens up to the step end decode to the text up to the step end */
                util_buf b;
                util_buf_init(&b);
                tok_decode(tk, ids, pos[k] + 1, &b);
                size_t want = strlen(PROMPT) + ends[k];
                char *full = malloc(want + 1);
                snprintf(full, want + 1, "%s%s", PROMPT, RESP[i]);
                /* decode renders BOS as "<s>"-like text for llama2.c? it drops nothing but the BOS piece */
                const char *dec = b.data ? b.data : "";
                size_t skip = strlen(dec) >= want ? strlen(dec) - want : 0;
                EXPECT_MSG(strlen(dec) >= want && !strcmp(dec + skip, full), "step %d of resp %d: [%s] vs [%s]", k, i, dec, full);
                free(full);
                util_buf_free(&b);
            }
            if (ns > 1) EXPECT(pos[ns - 2] < pos[ns - 1]);
            free(ends);
            free(ids);
            free(pos);
        }
        tok_destroy(&tk);
    }
    reward_destroy(&rm);
    mt_rmdir(base);
    mt_rmdir(prm);
}

/* Llama-3 byte-level BPE with the llama3-chat template: specials in the prompt, BOS not doubled,
 * step ends where the decoded prefix ends with the separator; a special token as prm_token. */
TEST(prm_positions_llama3_tokenizer) {
    const char *tf = unit_data_path("tokenizers/llama3-tokenizer.model");
    if (access(tf, R_OK) != 0) { unit_skip("no ../shared/data/tokenizers/llama3-tokenizer.model"); return; }
    char tfile[PATH_MAX];
    snprintf(tfile, sizeof tfile, "%s", tf);
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prm3");
    char err[1024] = "";
    model_random_spec s = small_llama(20);
    s.vocab = 128256; s.hidden = 16; s.layers = 1; s.intermediate = 16; s.heads = 2; s.kv_heads = 1; s.head_dim = 8;
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    tk_file = tfile; tk_name = "tokenizer.model"; tk_bos = 128000; tk_eos = 128009;
    EXPECT(derive_model(base, prm, "LlamaForCausalLM", 1, 0, NULL) == 0);
    tk_file = NULL; tk_bos = 1; tk_eos = 2;
    reward_spec rs = {prm, "prm", "cpu", "<|reserved_special_token_0|>", "\n\n", "last", NULL};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        EXPECT_EQ_INT(reward_prm_token_id(rm), 128002);
        tok *tk;
        EXPECT(tok_load(prm, &tk, err, sizeof err) == 0);
        const char *chat = "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 3 + 4?<|eot_id|>"
                           "<|start_header_id|>assistant<|end_header_id|>\n\n";
        const char *resp = "3 + 4 = 7.\n\nSo the answer is 7.\n\n\n\nThe answer is 7.";
        int32_t *ids;
        int n, *pos, ns;
        EXPECT(reward_tokenize(rm, chat, resp, &ids, &n, &pos, &ns, err, sizeof err) == 0);
        EXPECT_EQ_INT(ids[0], 128000);
        EXPECT(ids[1] != 128000);
        size_t *ends;
        int ne = reward_split_steps(resp, strlen(resp), "\n\n", &ends);
        EXPECT_EQ_INT(ns, 3);
        EXPECT_EQ_INT(ne, 3);
        for (int k = 0; k < ns && k < ne; k++) {
            util_buf b;
            util_buf_init(&b);
            tok_decode(tk, ids, pos[k] + 1, &b);
            util_buf_append(&b, "", 1);
            size_t want = strlen(chat) + ends[k];
            /* the step's token covers the separator's end (it may run a little past it) */
            EXPECT_MSG(b.len - 1 >= want && !strncmp(b.data, chat, strlen(chat)) &&
                       !strncmp(b.data + strlen(chat), resp, ends[k]), "step %d: [%s]", k, b.data);
            util_buf dp;
            util_buf_init(&dp);
            tok_decode(tk, ids, pos[k], &dp);
            EXPECT_MSG(dp.len < want, "step %d ends one token late", k);
            util_buf_free(&dp);
            util_buf_free(&b);
        }
        reward_item it = {chat, resp};
        reward_result r;
        EXPECT(reward_score_batch(rm, &it, 1, &r, err, sizeof err) == 0);
        EXPECT_EQ_INT(r.n_steps, 3);
        for (int k = 0; k < r.n_steps; k++) EXPECT(r.steps[k] > 0 && r.steps[k] < 1);
        EXPECT_NEAR(r.reward, r.steps[2], 0);
        reward_result_free(&r, 1);
        free(ends);
        free(ids);
        free(pos);
        tok_destroy(&tk);
    }
    reward_destroy(&rm);
    mt_rmdir(base);
    mt_rmdir(prm);
}

TEST(prm_zeroed_model_matches_hand_computation) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prm");
    char err[1024] = "";
    (void)write_prm(base, prm, 15, 1);
    const char *aggs[3] = {"last", "min", "prod"};
    for (int a = 0; a < 3; a++) {
        reward_spec rs = {prm, "prm", "cpu", "The", "\n\n", aggs[a], NULL};
        reward_model *rm = NULL;
        int rc = reward_load(&rs, &rm, err, sizeof err);
        EXPECT_MSG(rc == 0, "%s", err);
        if (rc) break;
        int32_t good = reward_prm_token_id(rm);
        EXPECT(good > 2 && good < 512);
        st_file *f;
        EXPECT(st_open(prm, &f, err, sizeof err) == 0);
        model_config c;
        EXPECT(model_config_load(prm, &c, err, sizeof err) == 0);
        float *E = st_tensor_to_f32(st_find(f, "model.embed_tokens.weight")); /* tied lm_head */
        reward_item items[4];
        for (int i = 0; i < 4; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i]; }
        reward_result res[4];
        EXPECT(reward_score_batch(rm, items, 4, res, err, sizeof err) == 0);
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n, *pos, ns;
            EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
            EXPECT_EQ_INT(res[i].n_steps, ns);
            double agg = a == 2 ? 1.0 : a == 1 ? INFINITY : 0;
            for (int k = 0; k < ns && k < res[i].n_steps; k++) {
                double p = zeroed_step_prob(f, &c, E, ids[pos[k]], good, -1);
                /* relative: a zeroed model gives the good token ~1e-9 of the full softmax, far
                 * inside any absolute tolerance */
                EXPECT_MSG(p > 0 && fabs(res[i].steps[k] / p - 1.0) < 1e-3, "step %d: got %g, want %g", k,
                           res[i].steps[k], p);
                if (a == 0) agg = p;
                else if (a == 1) agg = p < agg ? p : agg;
                else agg *= p;
            }
            EXPECT_MSG(agg > 0 && fabs(res[i].reward / agg - 1.0) < 3e-3, "%s reward: got %g, want %g", aggs[a],
                       res[i].reward, agg);
            free(ids);
            free(pos);
        }
        EXPECT_EQ_INT(res[0].n_steps, 3);
        EXPECT_EQ_INT(res[2].n_steps, 1); /* empty response: one step at the end of the prompt */
        EXPECT_EQ_INT(res[3].n_steps, 2);
        reward_result_free(res, 4);
        free(E);
        st_close(&f);
        reward_destroy(&rm);
    }
    mt_rmdir(base);
    mt_rmdir(prm);
}

/* prm_bad_token: each step scores p(good) / (p(good) + p(bad)) over the two logits at the step's
 * end, recomputed here from the zeroed model's lm_head (= embedding) rows; "min" aggregate. The
 * same model without prm_bad_token gives the (different) full-softmax probability. */
TEST(prm_bad_token_two_token_normalisation) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prmbad");
    char err[1024] = "";
    (void)write_prm(base, prm, 17, 1);
    reward_spec rs = {prm, "prm", "cpu", "The", "\n\n", "min", "apples"};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    if (rc != 0 && strstr(err, "tokens for this tokenizer")) { /* "apples" is several tokens here */
        rs.prm_bad_token = "a";
        rc = reward_load(&rs, &rm, err, sizeof err);
    }
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc) { mt_rmdir(base); mt_rmdir(prm); return; }
    int32_t good = reward_prm_token_id(rm), bad = reward_prm_bad_token_id(rm);
    EXPECT(good > 2 && good < 512 && bad > 2 && bad < 512 && bad != good);
    rs.prm_bad_token = NULL;
    reward_model *full = NULL;
    EXPECT_MSG(reward_load(&rs, &full, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_INT(reward_prm_bad_token_id(full), -1);
    st_file *f;
    EXPECT(st_open(prm, &f, err, sizeof err) == 0);
    model_config c;
    EXPECT(model_config_load(prm, &c, err, sizeof err) == 0);
    float *E = st_tensor_to_f32(st_find(f, "model.embed_tokens.weight")); /* tied lm_head */
    reward_item items[4];
    for (int i = 0; i < 4; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i]; }
    reward_result res[4], res_full[4];
    EXPECT(reward_score_batch(rm, items, 4, res, err, sizeof err) == 0);
    EXPECT(reward_score_batch(full, items, 4, res_full, err, sizeof err) == 0);
    int differs = 0;
    for (int i = 0; i < 4; i++) {
        int32_t *ids;
        int n, *pos, ns;
        EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
        EXPECT_EQ_INT(res[i].n_steps, ns);
        double agg = INFINITY;
        for (int k = 0; k < ns && k < res[i].n_steps; k++) {
            double p = zeroed_step_prob(f, &c, E, ids[pos[k]], good, bad);
            EXPECT_NEAR(res[i].steps[k], p, 1e-5);
            if (fabs(res_full[i].steps[k] - p) > 1e-3) differs++;
            agg = p < agg ? p : agg;
        }
        EXPECT_NEAR(res[i].reward, agg, 1e-5);
        free(ids);
        free(pos);
    }
    EXPECT_MSG(differs > 0, "two-token scores equal the full-softmax ones");
    reward_result_free(res, 4);
    reward_result_free(res_full, 4);
    free(E);
    st_close(&f);
    reward_destroy(&rm);
    reward_destroy(&full);
    mt_rmdir(base);
    mt_rmdir(prm);
}

TEST(prm_random_model_matches_model_forward) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prm");
    char err[1024] = "";
    model_random_spec s = write_prm(base, prm, 16, 0);
    reward_spec rs = {prm, "prm", "cpu", "The", NULL, "min", NULL};
    reward_model *rm = NULL;
    int rc = reward_load(&rs, &rm, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    op_backend *be = op_backend_new("cpu", err, sizeof err);
    model *m = NULL;
    EXPECT_MSG(model_load(prm, be, &m, err, sizeof err) == 0, "%s", err);
    if (rc == 0 && m) {
        kv_cache *kv;
        EXPECT(kv_cache_new(be, model_cfg(m), 16, 64, 0, &kv, err, sizeof err) == 0);
        reward_item items[4];
        for (int i = 0; i < 4; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i]; }
        reward_result res[4];
        EXPECT(reward_score_batch(rm, items, 4, res, err, sizeof err) == 0);
        int V = s.vocab, good = reward_prm_token_id(rm);
        for (int i = 0; i < 4; i++) {
            int32_t *ids;
            int n, *pos, ns;
            EXPECT(reward_tokenize(rm, PROMPT, RESP[i], &ids, &n, &pos, &ns, err, sizeof err) == 0);
            float *lg = malloc(sizeof(float) * (size_t)n * V);
            mt_run_seq(m, kv, ids, n, 1, lg); /* decode-style, one token per step */
            double mn = INFINITY;
            for (int k = 0; k < ns; k++) {
                const float *row = lg + (size_t)pos[k] * V;
                double mx = -INFINITY, z = 0;
                for (int v = 0; v < V; v++) if (row[v] > mx) mx = row[v];
                for (int v = 0; v < V; v++) z += exp(row[v] - mx);
                double p = exp(row[good] - mx) / z;
                EXPECT_NEAR(res[i].steps[k], p, 1e-5);
                if (p < mn) mn = p;
            }
            EXPECT_NEAR(res[i].reward, mn, 1e-5);
            /* chunked through the cache (7 tokens per forward) gives the same */
            reward_set_max_step(rm, 7);
            reward_result ch;
            EXPECT(reward_score_batch(rm, &items[i], 1, &ch, err, sizeof err) == 0);
            EXPECT_EQ_INT(ch.n_steps, res[i].n_steps);
            for (int k = 0; k < ch.n_steps && k < res[i].n_steps; k++) EXPECT_NEAR(ch.steps[k], res[i].steps[k], 1e-5);
            reward_result_free(&ch, 1);
            reward_set_max_step(rm, 2048);
            free(lg);
            free(ids);
            free(pos);
        }
        reward_result_free(res, 4);
        kv_cache_destroy(&kv);
    }
    model_destroy(&m);
    if (be) be->destroy(&be);
    reward_destroy(&rm);
    mt_rmdir(base);
    mt_rmdir(prm);
}

/* Prefix sharing (a problem's samples fork one prefilled prompt) agrees with whole sequences and
 * with model_forward, on Llama and on a hybrid Bamba (Mamba-2 state slots are forked too). */
TEST(prefix_sharing_matches_whole_sequences) {
    if (!have_tokenizer()) { unit_skip("no tokenizer"); return; }
    int kinds[2] = {MT_LLAMA_MHA, MT_BAMBA_HYBRID};
    for (int a = 0; a < 2; a++) {
        char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_pfx");
        char err[1024] = "";
        model_random_spec s = mt_spec(kinds[a]);
        s.vocab = 512;
        EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
        const char *arch = kinds[a] == MT_BAMBA_HYBRID ? "BambaForCausalLM" : "LlamaForCausalLM";
        EXPECT(derive_model(base, prm, arch, 1, 0, NULL) == 0); /* tied: lm_head = embedding */
        reward_spec rs = {prm, "prm", "cpu", "The", NULL, "last", NULL};
        reward_model *rm = NULL;
        int rc = reward_load(&rs, &rm, err, sizeof err);
        EXPECT_MSG(rc == 0, "%s: %s", arch, err);
        op_backend *be = op_backend_new("cpu", err, sizeof err);
        model *m = NULL;
        EXPECT_MSG(model_load(prm, be, &m, err, sizeof err) == 0, "%s", err);
        if (rc == 0 && m) {
            reward_item items[6];
            for (int i = 0; i < 6; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i % 4]; }
            items[4].prompt = "Q: other.\n"; /* a group of one in the middle */
            reward_result sh[6], whole[6];
            reward_set_max_step(rm, 40); /* several packs per group */
            int64_t t0 = reward_tokens_run(rm);
            EXPECT(reward_score_batch(rm, items, 6, sh, err, sizeof err) == 0);
            int64_t t1 = reward_tokens_run(rm);
            reward_set_prefix_sharing(rm, 0);
            EXPECT(reward_score_batch(rm, items, 6, whole, err, sizeof err) == 0);
            int64_t t2 = reward_tokens_run(rm);
            printf("  %s: %lld tokens with prefix sharing, %lld without\n", arch, (long long)(t1 - t0), (long long)(t2 - t1));
            EXPECT(t1 - t0 < t2 - t1 - 3 * 16); /* the 5-sample group's prompt ran once */
            kv_cache *kv;
            EXPECT(kv_cache_new(be, model_cfg(m), 16, 64, 2, &kv, err, sizeof err) == 0);
            int V = s.vocab, good = reward_prm_token_id(rm);
            for (int i = 0; i < 6; i++) {
                EXPECT_EQ_INT(sh[i].n_steps, whole[i].n_steps);
                int32_t *ids;
                int n, *pos, ns;
                EXPECT(reward_tokenize(rm, items[i].prompt, items[i].response, &ids, &n, &pos, &ns, err, sizeof err) == 0);
                float *lg = malloc(sizeof(float) * (size_t)n * V);
                mt_run_seq(m, kv, ids, n, n, lg);
                for (int k = 0; k < sh[i].n_steps && k < whole[i].n_steps && k < ns; k++) {
                    const float *row = lg + (size_t)pos[k] * V;
                    double mx = -INFINITY, z = 0;
                    for (int v = 0; v < V; v++) if (row[v] > mx) mx = row[v];
                    for (int v = 0; v < V; v++) z += exp(row[v] - mx);
                    double p = exp(row[good] - mx) / z;
                    EXPECT_NEAR(sh[i].steps[k], p, 1e-5 + 1e-4 * p);
                    EXPECT_NEAR(whole[i].steps[k], p, 1e-5 + 1e-4 * p);
                }
                free(lg);
                free(ids);
                free(pos);
            }
            reward_result_free(sh, 6);
            reward_result_free(whole, 6);
            kv_cache_destroy(&kv);
        }
        model_destroy(&m);
        if (be) be->destroy(&be);
        reward_destroy(&rm);
        mt_rmdir(base);
        mt_rmdir(prm);
    }
}

TEST(cache_reloads_only_on_change) {
    if (!have_tokenizer()) { unit_skip("no tok512.bin"); return; }
    char *base = mt_tmpdir("rm_base"), *prm = mt_tmpdir("rm_prm");
    char err[1024] = "";
    (void)write_prm(base, prm, 17, 0);
    reward_cache *c = reward_cache_new();
    reward_spec rs = {prm, "prm", "cpu", "The", NULL, NULL, NULL};
    reward_model *a = reward_cache_get(c, &rs, err, sizeof err);
    reward_model *b = reward_cache_get(c, &rs, err, sizeof err);
    EXPECT(a && a == b);
    EXPECT_EQ_INT(reward_cache_loads(c), 1);
    rs.prm_aggregate = "prod";
    EXPECT(reward_cache_get(c, &rs, err, sizeof err) != NULL);
    EXPECT_EQ_INT(reward_cache_loads(c), 2);
    rs.prm_token = "a b c d";
    EXPECT(reward_cache_get(c, &rs, err, sizeof err) == NULL);
    reward_cache_destroy(&c);
    EXPECT(c == NULL);
    mt_rmdir(base);
    mt_rmdir(prm);
}

/* ------------------------------------------------------------------ job spec: score.reward */

static int spec_err(const char *text, char *err, size_t cap) {
    job_spec s;
    memset(&s, 0, sizeof s);
    int rc = job_spec_parse(text, strlen(text), "job.json", &s, err, cap);
    job_spec_free(&s);
    return rc;
}

TEST(spec_reward_section) {
    char err[1024] = "";
    job_spec s;
    memset(&s, 0, sizeof s);
    const char *t = "{\"dataset\":{\"format\":\"synth\"},\n"
                    " \"score\":{\"reward\":{\"model\":\"/m/prm\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_aggregate\":\"min\"}}}";
    EXPECT_MSG(job_spec_parse(t, strlen(t), "job.json", &s, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_STR(s.score.reward.model, "/m/prm");
    EXPECT_EQ_STR(s.score.reward.kind, "prm");
    EXPECT_EQ_STR(s.score.reward.device, "auto");
    EXPECT_EQ_STR(s.score.reward.prm_token, "+");
    EXPECT_EQ_STR(s.score.reward.prm_separator, "\n\n");
    EXPECT_EQ_STR(s.score.reward.prm_aggregate, "min");
    EXPECT(strstr(s.json, "\"reward\":{\"model\":\"/m/prm\",\"kind\":\"prm\",\"device\":\"auto\",\"prm_token\":\"+\","
                          "\"prm_separator\":\"\\n\\n\",\"prm_aggregate\":\"min\"}") != NULL);
    /* canonical JSON round-trips byte for byte */
    job_spec s2;
    memset(&s2, 0, sizeof s2);
    EXPECT(job_spec_parse(s.json, strlen(s.json), "canon.json", &s2, err, sizeof err) == 0);
    EXPECT_EQ_STR(s2.json, s.json);
    EXPECT(s.score.reward.prm_bad_token[0] == 0); /* absent: full-softmax p(prm_token) */
    EXPECT(strstr(s.json, "prm_bad_token") == NULL);
    job_spec_free(&s2);
    job_spec_free(&s);
    /* prm_bad_token: parsed, rendered after prm_aggregate, round-trips */
    t = "{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"/m/prm\",\"kind\":\"prm\","
        "\"prm_token\":\"+\",\"prm_bad_token\":\"-\"}}}";
    memset(&s, 0, sizeof s);
    EXPECT_MSG(job_spec_parse(t, strlen(t), "job.json", &s, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_STR(s.score.reward.prm_bad_token, "-");
    EXPECT(s.json && strstr(s.json, "\"prm_aggregate\":\"last\",\"prm_bad_token\":\"-\"}") != NULL);
    memset(&s2, 0, sizeof s2);
    EXPECT(s.json && job_spec_parse(s.json, strlen(s.json), "canon.json", &s2, err, sizeof err) == 0);
    EXPECT_EQ_STR(s2.score.reward.prm_bad_token, "-");
    EXPECT(s.json && s2.json && strcmp(s2.json, s.json) == 0);
    job_spec_free(&s2);
    job_spec_free(&s);
    /* ORM: defaults, prm fields absent from the canonical form */
    t = "{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"/m/orm\",\"device\":\"cuda:1\"}}}";
    EXPECT(job_spec_parse(t, strlen(t), "job.json", &s, err, sizeof err) == 0);
    EXPECT_EQ_STR(s.score.reward.kind, "orm");
    EXPECT(strstr(s.json, "\"reward\":{\"model\":\"/m/orm\",\"kind\":\"orm\",\"device\":\"cuda:1\"}") != NULL);
    job_spec_free(&s);
    /* no reward section: nothing rendered, model empty */
    t = "{\"dataset\":{\"format\":\"synth\"}}";
    EXPECT(job_spec_parse(t, strlen(t), "job.json", &s, err, sizeof err) == 0);
    EXPECT(s.score.reward.model[0] == 0);
    EXPECT(strstr(s.json, "reward") == NULL);
    job_spec_free(&s);
}

/* The job's params (what score payloads carry) forward prm_bad_token only when it is set. */
TEST(params_forward_prm_bad_token) {
    char err[1024] = "";
    const char *texts[2] = {
        "{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"/m/prm\",\"kind\":\"prm\","
        "\"prm_token\":\"+\",\"prm_bad_token\":\"-\"}}}",
        "{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"/m/prm\",\"kind\":\"prm\","
        "\"prm_token\":\"+\"}}}"};
    for (int i = 0; i < 2; i++) {
        job_spec s;
        memset(&s, 0, sizeof s);
        EXPECT_MSG(job_spec_parse(texts[i], strlen(texts[i]), "job.json", &s, err, sizeof err) == 0, "%s", err);
        uint8_t *buf = NULL;
        size_t len = 0;
        payload_params_encode(&s, &buf, &len);
        proto_msg *m = NULL;
        EXPECT_MSG(proto_parse_value(buf, len, &m, err, sizeof err) == 0, "%s", err);
        const proto_val *rw = m ? proto_get_map(proto_root(m), "reward") : NULL;
        EXPECT(rw != NULL);
        const char *v = NULL;
        uint32_t vl = 0;
        if (i == 0) {
            EXPECT(proto_get_str(rw, "prm_bad_token", &v, &vl) == 0 && vl == 1 && v[0] == '-');
            EXPECT(proto_get_str(rw, "prm_token", &v, &vl) == 0 && vl == 1 && v[0] == '+');
        } else {
            EXPECT(rw && proto_get(rw, "prm_bad_token") == NULL);
        }
        proto_msg_destroy(&m);
        free(buf);
        job_spec_free(&s);
    }
}

/* Score outputs' PRM step scores are committed with the score (broker/payload.c) and read back
 * by store_score_get (views valid in the txn) and store_scores_each; outputs without steps store
 * none; a malformed steps array commits nothing. */
static int steps_each_cb(uint64_t job, const store_score *sc, void *ctx) {
    (void)job;
    double *acc = ctx; /* [0] = count of scores, [1] = sum of every step, [2] = steps seen */
    acc[0] += 1;
    for (uint32_t i = 0; i < sc->n_steps; i++) acc[1] += sc->steps[i];
    acc[2] += sc->n_steps;
    return 0;
}

static proto_msg *outputs_msg(int bad) {
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_array(w, 2);
    proto_w_map(w, 5);
    proto_w_key(w, "p"); proto_w_u64(w, 0);
    proto_w_key(w, "s"); proto_w_u64(w, 0);
    proto_w_key(w, "correct"); proto_w_bool(w, 1);
    proto_w_key(w, "reward"); proto_w_f64(w, 0.25);
    proto_w_key(w, "steps"); proto_w_array(w, 3);
    proto_w_f64(w, 0.75); proto_w_f64(w, 0.25);
    if (bad) proto_w_str(w, "x"); else proto_w_nil(w);
    proto_w_map(w, 3);
    proto_w_key(w, "p"); proto_w_u64(w, 0);
    proto_w_key(w, "s"); proto_w_u64(w, 1);
    proto_w_key(w, "correct"); proto_w_bool(w, 0);
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    char err[256];
    if (proto_parse_value(d, len, &m, err, sizeof err) != 0) m = NULL;
    proto_writer_destroy(&w);
    return m;
}

TEST(score_steps_stored_and_read_back) {
    char *dir = mt_tmpdir("rm_store");
    char err[1024] = "";
    store *st = NULL;
    EXPECT_MSG(store_open(dir, 0, 0, &st, err, sizeof err) == STORE_OK, "%s", err);
    if (!st) { mt_rmdir(dir); return; }
    store_job job;
    memset(&job, 0, sizeof job);
    job.id = 1;
    job.n_problems = 1;
    job.n_samples = 2;
    store_task task;
    memset(&task, 0, sizeof task);
    task.id = 5;
    task.job = 1;
    task.kind = BRK_KIND_SCORE;
    task.p_begin = 0;
    task.p_end = 1;
    store_txn *t = NULL;
    EXPECT(store_txn_begin(st, 1, &t, err, sizeof err) == STORE_OK);
    uint64_t fresh = 0;
    proto_msg *bad = outputs_msg(1), *good = outputs_msg(0);
    EXPECT(bad && good);
    EXPECT_EQ_INT(payload_commit_outputs(t, &job, &task, proto_root(bad), 0, &fresh, err, sizeof err), 1);
    EXPECT_MSG(strstr(err, "outputs[0].steps[2]: not a number") != NULL, "%s", err);
    EXPECT(fresh == 0);
    store_score sc;
    EXPECT(store_score_get(t, 1, 0, 0, &sc) == STORE_ERR_NOTFOUND);
    EXPECT_EQ_INT(payload_commit_outputs(t, &job, &task, proto_root(good), 0, &fresh, err, sizeof err), 0);
    EXPECT(fresh == 2);
    EXPECT(store_txn_commit(&t, err, sizeof err) == STORE_OK);
    proto_msg_destroy(&bad);
    proto_msg_destroy(&good);

    EXPECT(store_txn_begin(st, 0, &t, err, sizeof err) == STORE_OK);
    store_score a, b;
    EXPECT(store_score_get(t, 1, 0, 0, &a) == STORE_OK);
    EXPECT(store_score_get(t, 1, 0, 1, &b) == STORE_OK); /* a's views stay valid */
    EXPECT_EQ_INT((int)a.n_steps, 3);
    if (a.steps && a.n_steps == 3) {
        EXPECT_NEAR(a.steps[0], 0.75, 0);
        EXPECT_NEAR(a.steps[1], 0.25, 0);
        EXPECT(isnan(a.steps[2])); /* nil -> NaN */
    } else {
        EXPECT(a.steps != NULL);
    }
    EXPECT_NEAR(a.reward, 0.25, 0);
    EXPECT(b.steps == NULL && b.n_steps == 0 && isnan(b.reward)); /* no steps sent: none stored */
    store_txn_abort(&t);
    double acc[3] = {0, 0, 0};
    EXPECT(store_scores_each(st, 1, steps_each_cb, acc, err, sizeof err) == STORE_OK);
    EXPECT_NEAR(acc[0], 2, 0);
    EXPECT(isnan(acc[1])); /* 0.75 + 0.25 + NaN */
    EXPECT_NEAR(acc[2], 3, 0);
    store_close(&st);
    mt_rmdir(dir);
}

TEST(spec_reward_model_path_made_absolute) {
    char *d = mt_tmpdir("rm_spec");
    char path[512], err[1024] = "", cwd[4096];
    snprintf(path, sizeof path, "%s/job.json", d);
    FILE *f = fopen(path, "w");
    fputs("{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"models/./rm/../orm\"}}}", f);
    fclose(f);
    job_spec s;
    EXPECT_MSG(job_spec_load(path, &s, err, sizeof err) == 0, "%s", err);
    EXPECT(getcwd(cwd, sizeof cwd) != NULL);
    char want[8192];
    snprintf(want, sizeof want, "%s/models/orm", cwd);
    EXPECT_EQ_STR(s.score.reward.model, want);
    EXPECT(strstr(s.json, want) != NULL);
    job_spec_free(&s);
    mt_rmdir(d);
}

TEST(spec_reward_errors) {
    char err[1024];
    struct { const char *text, *want; } cases[] = {
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":3}}", "job.json:1:49: score.reward: expected an object, got 3"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{}}}", "job.json:1:49: score.reward.model: required (a reward model directory)"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"bt\"}}}", "job.json:1:69: score.reward.kind: unknown kind \"bt\" (expected orm|prm)"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kidn\":\"prm\"}}}", "score.reward.kidn: unknown key (did you mean kind?)"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\"}}}", "score.reward.prm_token: required for kind prm"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"prm_token\":\"+\"}}}", "score.reward.prm_token: only valid with kind prm"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_aggregate\":\"mean\"}}}",
         "score.reward.prm_aggregate: unknown aggregate rule \"mean\" (expected last|min|prod)"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_separator\":\"\"}}}",
         "score.reward.prm_separator: must not be empty"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"device\":\"tpu\"}}}", "score.reward.device: unknown device \"tpu\""},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":7}}}", "score.reward.model: expected a string, got 7"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"prm_bad_token\":\"-\"}}}",
         "job.json:1:62: score.reward.prm_bad_token: only valid with kind prm"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_bad_token\":\"\"}}}",
         "score.reward.prm_bad_token: must not be empty"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_bad_token\":\"+\"}}}",
         "score.reward.prm_bad_token: must differ from prm_token (\"+\")"},
        {"{\"dataset\":{\"format\":\"synth\"},\"score\":{\"reward\":{\"model\":\"m\",\"kind\":\"prm\",\"prm_token\":\"+\",\"prm_bad_token\":3}}}",
         "score.reward.prm_bad_token: expected a string, got 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = 0;
        EXPECT_EQ_INT(spec_err(cases[i].text, err, sizeof err), -1);
        EXPECT_MSG(strstr(err, cases[i].want) != NULL, "case %zu: got \"%s\", want \"%s\"", i, err, cases[i].want);
        EXPECT_MSG(strncmp(err, "job.json:1:", 11) == 0, "case %zu: no position: %s", i, err);
    }
}

/* Runs one score task through the worker's score role (runner thread, as the daemon does) and
 * returns the outputs (one parsed value each) in out[cap]; -1 if the task failed (err set). */
static int run_score_task(const char *model, const char *kind, const char *tmpl, const char **questions,
                          const char **texts, int n, proto_msg **out, char *err, size_t errlen) {
    proto_writer *w = proto_writer_new("task", 5);
    proto_w_key(w, "task"); proto_w_u64(w, 9);
    proto_w_key(w, "attempt"); proto_w_u64(w, 1);
    proto_w_key(w, "job"); proto_w_str(w, "j-000001");
    proto_w_key(w, "kind"); proto_w_str(w, "score");
    proto_w_key(w, "payload");
    proto_w_map(w, 6);
    proto_w_key(w, "job"); proto_w_str(w, "j-000001");
    proto_w_key(w, "chunk"); proto_w_u64(w, 0);
    proto_w_key(w, "grader"); proto_w_str(w, "gsm8k");
    proto_w_key(w, "reward");
    proto_w_map(w, 6);
    proto_w_key(w, "model"); proto_w_str(w, model);
    proto_w_key(w, "kind"); proto_w_str(w, kind);
    proto_w_key(w, "device"); proto_w_str(w, "cpu");
    proto_w_key(w, "prm_token"); proto_w_str(w, "The");
    proto_w_key(w, "prm_separator"); proto_w_str(w, "\n\n");
    proto_w_key(w, "prm_aggregate"); proto_w_str(w, "min");
    proto_w_key(w, "prompt");
    proto_w_map(w, 2);
    proto_w_key(w, "template"); proto_w_str(w, tmpl);
    proto_w_key(w, "system"); proto_w_str(w, "");
    proto_w_key(w, "items");
    proto_w_array(w, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        proto_w_map(w, 5);
        proto_w_key(w, "p"); proto_w_u64(w, (uint64_t)i / 2);
        proto_w_key(w, "s"); proto_w_u64(w, (uint64_t)i % 2);
        proto_w_key(w, "text"); proto_w_str(w, texts[i]);
        proto_w_key(w, "answer"); proto_w_str(w, "7");
        proto_w_key(w, "question"); proto_w_str(w, questions[i]);
    }
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    wrk_task *t = NULL;
    int rc = proto_parse(d, len, &m, err, errlen);
    proto_writer_destroy(&w);
    if (rc == 0) rc = wrk_task_from_msg(&m, &t, err, errlen);
    if (rc) { proto_msg_destroy(&m); return -1; }
    wrk_roles *roles = wrk_roles_new();
    wrk_runner *r = wrk_runner_new(wrk_roles_run, roles);
    wrk_runner_start(r, &t);
    util_buf items;
    util_buf_init(&items);
    int got = 0, done = 0;
    for (int spins = 0; spins < 200000 && !done; spins++) {
        uint32_t k = 0;
        wrk_task *fin = NULL;
        items.len = 0;
        int st = wrk_runner_take(r, 1, 1, &items, &k, &fin, err, errlen); /* one output per take */
        if (k == 1 && got < n && proto_parse_value(items.data, items.len, &out[got], err, errlen) == 0) got++;
        if (st == WRK_TAKE_DONE || st == WRK_TAKE_FAILED || st == WRK_TAKE_CANCELLED) {
            wrk_task_destroy(&fin);
            done = st == WRK_TAKE_DONE ? 1 : -1;
        }
        if (st == WRK_TAKE_NONE) usleep(500);
    }
    util_buf_free(&items);
    wrk_runner_destroy(&r);
    wrk_roles_destroy(&roles);
    return done == 1 ? got : -1;
}

TEST(score_role_adds_rewards) {
    if (!have_tokenizer()) { unit_skip("no tokenizer"); return; }
    char *base = mt_tmpdir("rm_base"), *orm = mt_tmpdir("rm_orm"), *prm = mt_tmpdir("rm_prm");
    char err[1024] = "";
    model_random_spec s = small_llama(21);
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    float *w = rand_vec(s.hidden, 4, 0.5f);
    tensor_edit ed = {0, w, 1, NULL};
    EXPECT(derive_model(base, orm, "LlamaForSequenceClassification", 0, 1, &ed) == 0);
    EXPECT(derive_model(base, prm, "LlamaForCausalLM", 1, 0, NULL) == 0);
    const char *qs[4] = {"Lily had 3 apples and got 4 more. How many?", "Lily had 3 apples and got 4 more. How many?",
                         "Tom has 2 pens. How many?", "Tom has 2 pens. How many?"};
    const char *texts[4] = {RESP[0], RESP[1], RESP[3], "The answer is 7.\n\n#### 7"};
    const char *tmpls[2] = {"llama3-chat", "plain"}, *kinds[2] = {"orm", "prm"}, *dirs[2] = {orm, prm};
    for (int k = 0; k < 2; k++) {
        proto_msg *out[4] = {0};
        int got = run_score_task(dirs[k], kinds[k], tmpls[k], qs, texts, 4, out, err, sizeof err);
        EXPECT_MSG(got == 4, "%s: got %d: %s", kinds[k], got, err);
        reward_spec rs = {dirs[k], kinds[k], "cpu", "The", "\n\n", "min", NULL};
        reward_model *rm = NULL;
        EXPECT(reward_load(&rs, &rm, err, sizeof err) == 0);
        for (int i = 0; i < got && rm; i++) {
            const proto_val *o = proto_root(out[i]);
            int64_t p = -1, sidx = -1;
            double rew = NAN;
            EXPECT(proto_get_i64(o, "p", &p) == 0 && proto_get_i64(o, "s", &sidx) == 0);
            EXPECT(proto_get_f64(o, "reward", &rew) == 0);
            int j = (int)(p * 2 + sidx);
            if (j < 0 || j > 3) continue;
            /* the scorer's input: the rendered prompt + the text (+ <|eot_id|> for a chat ORM) */
            job_problem jp;
            memset(&jp, 0, sizeof jp);
            jp.id = jp.solution = jp.answer = jp.subject = (char *)"";
            jp.question = (char *)qs[j];
            util_buf pb;
            util_buf_init(&pb);
            EXPECT(prompt_render(tmpls[k], "", &jp, &pb, err, sizeof err) == 0);
            util_buf_append(&pb, "", 1);
            char resp[512];
            snprintf(resp, sizeof resp, "%s%s", texts[j], k == 0 ? "<|eot_id|>" : "");
            reward_item it = {pb.data, resp};
            reward_result r;
            EXPECT(reward_score_batch(rm, &it, 1, &r, err, sizeof err) == 0);
            EXPECT_NEAR(rew, r.reward, 1e-4 + 1e-4 * fabs(r.reward));
            const proto_val *st = proto_get(o, "steps");
            if (k == 0) EXPECT(st == NULL);
            else {
                EXPECT(st && st->type == PV_ARRAY && (int)st->v.arr.n == r.n_steps);
            }
            reward_result_free(&r, 1);
            util_buf_free(&pb);
        }
        reward_destroy(&rm);
        for (int i = 0; i < 4; i++) proto_msg_destroy(&out[i]);
    }
    /* a bad reward model fails the task with the loader's message */
    proto_msg *out[4] = {0};
    EXPECT(run_score_task(prm, "orm", "plain", qs, texts, 4, out, err, sizeof err) == -1);
    EXPECT_MSG(strstr(err, "score.weight") != NULL, "%s", err);
    for (int i = 0; i < 4; i++) proto_msg_destroy(&out[i]);
    free(w);
    mt_rmdir(base);
    mt_rmdir(orm);
    mt_rmdir(prm);
}

/* The CUDA backend (bf16 activations) agrees with the CPU one within bf16 tolerance. */
TEST(cuda_matches_cpu) {
    if (!op_cuda_available()) { unit_skip("no CUDA device"); return; }
    if (!have_tokenizer()) { unit_skip("no tokenizer"); return; }
    char *base = mt_tmpdir("rm_base"), *orm = mt_tmpdir("rm_orm");
    char err[1024] = "";
    model_random_spec s = small_llama(18);
    EXPECT(model_write_random(base, &s, err, sizeof err) == 0);
    float *w = rand_vec(s.hidden, 9, 0.5f);
    tensor_edit ed = {0, w, 1, NULL};
    EXPECT(derive_model(base, orm, "LlamaForSequenceClassification", 0, 1, &ed) == 0);
    char *prm = mt_tmpdir("rm_prm");
    EXPECT(derive_model(base, prm, "LlamaForCausalLM", 1, 0, NULL) == 0);
    const char *dirs[2] = {orm, prm}, *kinds[2] = {"orm", "prm"};
    reward_item items[4];
    for (int i = 0; i < 4; i++) { items[i].prompt = PROMPT; items[i].response = RESP[i]; }
    for (int k = 0; k < 2; k++) {
        reward_result rc_[4], rg[4];
        reward_model *a = NULL, *b = NULL;
        reward_spec rs = {dirs[k], kinds[k], "cpu", "The", NULL, "last", NULL};
        EXPECT_MSG(reward_load(&rs, &a, err, sizeof err) == 0, "%s", err);
        rs.device = "cuda";
        EXPECT_MSG(reward_load(&rs, &b, err, sizeof err) == 0, "%s", err);
        if (!a || !b) { reward_destroy(&a); reward_destroy(&b); break; }
        EXPECT(strncmp(reward_device(b), "cuda", 4) == 0);
        EXPECT(reward_score_batch(a, items, 4, rc_, err, sizeof err) == 0);
        EXPECT_MSG(reward_score_batch(b, items, 4, rg, err, sizeof err) == 0, "%s", err);
        for (int i = 0; i < 4; i++) {
            printf("  %s item %d: cpu %.6f cuda %.6f\n", kinds[k], i, rc_[i].reward, rg[i].reward);
            EXPECT_NEAR(rg[i].reward, rc_[i].reward, 0.03 + 0.03 * fabs(rc_[i].reward));
            EXPECT_EQ_INT(rg[i].n_steps, rc_[i].n_steps);
            for (int j = 0; j < rg[i].n_steps && j < rc_[i].n_steps; j++)
                EXPECT_NEAR(rg[i].steps[j], rc_[i].steps[j], 0.002 + 0.05 * rc_[i].steps[j]);
        }
        reward_result_free(rc_, 4);
        reward_result_free(rg, 4);
        reward_destroy(&a);
        reward_destroy(&b);
    }
    free(w);
    mt_rmdir(base);
    mt_rmdir(orm);
    mt_rmdir(prm);
}

/* Throughput on a mid-sized random Llama (THINKFAST_REWARD_BENCH=1; device from
 * THINKFAST_REWARD_DEVICE, default auto): 64 samples of ~500 tokens, ORM and PRM. */
TEST(bench) {
    if (!getenv("THINKFAST_REWARD_BENCH")) { unit_skip("set THINKFAST_REWARD_BENCH=1"); return; }
    if (!have_tokenizer()) { unit_skip("no tokenizer"); return; }
    const char *dev = getenv("THINKFAST_REWARD_DEVICE") ? getenv("THINKFAST_REWARD_DEVICE") : "auto";
    char *base = mt_tmpdir("rm_bench"), *orm = mt_tmpdir("rm_borm");
    char err[1024] = "";
    model_random_spec s = small_llama(19);
    s.vocab = 32000; s.hidden = 1024; s.layers = 8; s.intermediate = 2816; s.heads = 16; s.kv_heads = 4; s.head_dim = 64;
    s.dtype = OP_BF16;
    EXPECT_MSG(model_write_random(base, &s, err, sizeof err) == 0, "%s", err);
    float *w = rand_vec(s.hidden, 3, 0.1f);
    tensor_edit ed = {0, w, 1, NULL};
    EXPECT(derive_model(base, orm, "LlamaForSequenceClassification", 0, 1, &ed) == 0);
    char *prm = mt_tmpdir("rm_bprm");
    EXPECT(derive_model(base, prm, "LlamaForCausalLM", 1, 0, NULL) == 0);
    enum { N = 64 };
    reward_item items[N];
    char *texts[N];
    for (int i = 0; i < N; i++) {
        util_buf b;
        util_buf_init(&b);
        for (int k = 0; k < 8; k++) util_buf_printf(&b, "Step %d: she had %d apples and got %d more, so %d + %d = %d.\n\n", k + 1, i + k, k * 3, i + k, k * 3, i + 4 * k);
        util_buf_printf(&b, "The answer is %d.", i);
        util_buf_append(&b, "", 1);
        texts[i] = b.data;
        items[i].prompt = PROMPT;
        items[i].response = texts[i];
    }
    const char *dirs[2] = {orm, prm}, *kinds[2] = {"orm", "prm"};
    for (int k = 0; k < 2; k++) {
        reward_spec rs = {dirs[k], kinds[k], dev, "The", NULL, "min", NULL};
        reward_model *rm = NULL;
        if (reward_load(&rs, &rm, err, sizeof err) != 0) { printf("  %s\n", err); unit_cur_failed++; break; }
        int32_t *ids;
        int n, *pos, ns;
        reward_tokenize(rm, PROMPT, texts[0], &ids, &n, &pos, &ns, err, sizeof err);
        free(ids);
        free(pos);
        reward_result res[N];
        EXPECT(reward_score_batch(rm, items, N, res, err, sizeof err) == 0); /* warm-up */
        reward_result_free(res, N);
        double t0 = util_now_ns() / 1e9;
        int reps = 3;
        for (int r = 0; r < reps; r++) {
            EXPECT(reward_score_batch(rm, items, N, res, err, sizeof err) == 0);
            reward_result_free(res, N);
        }
        double dt = (util_now_ns() / 1e9 - t0) / reps;
        printf("  bench %s on %s: %d samples x ~%d tokens (%d steps) in %.3f s: %.1f samples/s, %.0f tokens/s "
               "(%.0fM-param llama, bf16 weights)\n", kinds[k], reward_device(rm), N, n, ns, dt, N / dt, N * (double)n / dt,
               model_random_params(&s) / 1e6);
        reward_destroy(&rm);
    }
    for (int i = 0; i < N; i++) free(texts[i]);
    free(w);
    mt_rmdir(base);
    mt_rmdir(orm);
    mt_rmdir(prm);
}

int main(void) {
    RUN(spec_reward_section);
    RUN(spec_reward_errors);
    RUN(spec_reward_model_path_made_absolute);
    RUN(aggregate_rules);
    RUN(split_steps);
    RUN(orm_zeroed_model_matches_hand_computation);
    RUN(orm_matches_causal_lm_with_score_rows_as_lm_head);
    RUN(orm_load_errors);
    RUN(hf_golden_fixture_orm_and_prm);
    RUN(prm_step_positions_follow_the_text);
    RUN(prm_positions_llama3_tokenizer);
    RUN(prm_zeroed_model_matches_hand_computation);
    RUN(prm_bad_token_two_token_normalisation);
    RUN(params_forward_prm_bad_token);
    RUN(score_steps_stored_and_read_back);
    RUN(prm_random_model_matches_model_forward);
    RUN(prefix_sharing_matches_whole_sequences);
    RUN(cache_reloads_only_on_change);
    RUN(score_role_adds_rewards);
    RUN(cuda_matches_cpu);
    RUN(bench);
    if (tok_generated) unlink(tok_path());
    return unit_summary();
}
