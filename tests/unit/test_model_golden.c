/* tests/unit/test_model_golden.c — the engine against HF transformers (an independent
 * implementation): for each fixture under tests/fixtures/models/<name>/ (written by
 * tests/fixtures/gen_models.py on the GPU machine with transformers' pure-PyTorch paths), the
 * logits of every prompt position must match expected.safetensors `logits` within tolerance —
 * both from one full prefill and from a prefill in chunks of 5 tokens (state passing across
 * chunks) — and the engine's greedy continuation must equal `greedy_ids` exactly (the fixture
 * guarantees top-2 margins >= 0.02; a step whose margin is below 1e-3 would be skipped as a
 * documented near-tie). Fixtures not (yet) present are skipped visibly.
 */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>

#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/engine.h"
#include "workers/model/safetensors.h"

static op_backend *be;
static const char *fixture_root = "tests/fixtures/models";

static const char *names[] = {"llama_gqa_llama3_tied", "llama_mha_untied", "bamba_hybrid", "bamba_pure", "mamba2"};

typedef struct gen1 { int32_t ids[256]; int n; } gen1;
static int take(void *ud, const eng_result *r) {
    gen1 *g = ud;
    g->n = r->n_ids < 256 ? r->n_ids : 256;
    memcpy(g->ids, r->ids, sizeof(int32_t) * g->n);
    return 0;
}

static void check_fixture(const char *name) {
    char dir[512], exp[600], err[512];
    snprintf(dir, sizeof dir, "%s/%s", fixture_root, name);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    struct stat sb;
    if (stat(exp, &sb) != 0) {
        char why[200];
        snprintf(why, sizeof why, "fixture %.80s absent (tests/fixtures/gen_models.py makes it)", name);
        unit_skip(why);
        return;
    }
    st_file *f = NULL;
    if (st_open(exp, &f, err, sizeof err)) { EXPECT_MSG(0, "%s", err); return; }
    const st_tensor *ti = st_find(f, "input_ids"), *tl = st_find(f, "logits"), *tg = st_find(f, "greedy_ids"),
                    *tm = st_find(f, "top2_margin"), *tf = st_find(f, "inv_freq");
    EXPECT_MSG(ti && tl && tg, "%s: input_ids / logits / greedy_ids missing", exp);
    model *m = NULL;
    if (!ti || !tl || !tg) goto out;
    if (model_load(dir, be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s: %s", name, err); goto out; }
    const model_config *c = model_cfg(m);
    int L = (int)st_numel(ti), V = c->vocab_size, G = (int)st_numel(tg);
    EXPECT_EQ_INT(st_numel(tl), (int64_t)L * V);
    if (st_numel(tl) != (int64_t)L * V) goto out;
    float *fid = st_tensor_to_f32(ti), *want = st_tensor_to_f32(tl), *gid = st_tensor_to_f32(tg);
    float *mg = tm ? st_tensor_to_f32(tm) : NULL;
    int32_t *ids = malloc(sizeof(int32_t) * L);
    for (int i = 0; i < L; i++) ids[i] = (int32_t)fid[i];
    /* rotary buffer, when the fixture records it */
    if (tf && c->n_attn_layers > 0) {
        float *fi = st_tensor_to_f32(tf), *mine = malloc(sizeof(float) * (c->rot_dim / 2 + 1));
        EXPECT_EQ_INT(st_numel(tf), c->rot_dim / 2);
        model_config_rope_inv_freq(c, mine);
        double d = 0;
        for (int i = 0; i < c->rot_dim / 2 && i < st_numel(tf); i++) d = fmax(d, fabs(fi[i] - mine[i]) / fabs(fi[i]));
        EXPECT_MSG(d < 1e-6, "%s: inv_freq rel diff %g", name, d);
        free(fi); free(mine);
    }
    /* logits at every position: one prefill, and chunks of 5 */
    float *got = malloc(sizeof(float) * (size_t)L * V);
    kv_cache *kv = NULL;
    kv_cache_new(be, c, 16, (L + 15) / 16 + 2, 2, &kv, err, sizeof err);
    for (int pass = 0; pass < 2; pass++) {
        int chunk = pass ? 5 : L;
        mt_run_seq(m, kv, ids, L, chunk, got);
        double worst = 0, maxabs = 0;
        size_t at = 0;
        for (size_t i = 0; i < (size_t)L * V; i++) {
            double e = fabs((double)got[i] - want[i]) / (1e-3 + 1e-3 * fabs(want[i]));
            if (e > worst) { worst = e; at = i; }
            maxabs = fmax(maxabs, fabs((double)got[i] - want[i]));
        }
        EXPECT_MSG(worst <= 1.0, "%s (chunk %d): logits differ at position %zu id %zu: %.6f vs %.6f (max abs diff %g)",
                   name, chunk, at / V, at % V, got[at], want[at], maxabs);
        printf("  %s chunk %d: max |logit diff| %.3g over %d positions x %d\n", name, chunk, maxabs, L, V);
    }
    /* decode path: prompt + greedy ids fed one token at a time (recurrent scan, cached
     * attention); the logits that chose greedy token i sit at position L - 1 + i */
    const st_tensor *tgl = st_find(f, "gen_logits");
    if (tgl && st_numel(tgl) == (int64_t)G * V) {
        float *gl = st_tensor_to_f32(tgl);
        int n = L + G - 1;
        int32_t *all = malloc(sizeof(int32_t) * n);
        float *dec = malloc(sizeof(float) * (size_t)n * V);
        memcpy(all, ids, sizeof(int32_t) * L);
        for (int i = 0; i + 1 < G; i++) all[L + i] = (int32_t)gid[i];
        kv_cache_destroy(&kv);
        kv_cache_new(be, c, 16, (n + 15) / 16 + 2, 2, &kv, err, sizeof err);
        mt_run_seq(m, kv, all, n, 1, dec);
        double maxabs = 0, worst = 0;
        for (int i = 0; i < G; i++)
            for (int v = 0; v < V; v++) {
                double a = dec[(size_t)(L - 1 + i) * V + v], w = gl[(size_t)i * V + v];
                maxabs = fmax(maxabs, fabs(a - w));
                worst = fmax(worst, fabs(a - w) / (1e-3 + 1e-3 * fabs(w)));
            }
        EXPECT_MSG(worst <= 1.0, "%s: token-by-token decode logits differ from gen_logits (max abs %g)", name, maxabs);
        printf("  %s decode: max |logit diff| %.3g over %d greedy steps\n", name, maxabs, G);
        free(gl); free(all); free(dec);
    }
    kv_cache_destroy(&kv);
    /* greedy continuation through the engine */
    engine *e = NULL;
    eng_config ec = {2, 7, 16, 1, 0};
    eng_new(m, NULL, &ec, &e, err, sizeof err);
    eng_request r;
    memset(&r, 0, sizeof r);
    r.prompt = ids; r.n_prompt = L; r.n_samples = 2; r.temperature = 0; r.max_tokens = G;
    gen1 g = {{0}, 0};
    EXPECT_MSG(eng_run(e, &r, 1, take, &g, err, sizeof err) == 0, "%s", err);
    int mism = 0, first = -1;
    for (int i = 0; i < G; i++) {
        int near_tie = mg && mg[i] < 1e-3f;
        if (i >= g.n || g.ids[i] != (int32_t)gid[i]) {
            if (near_tie) { printf("  %s: step %d is a documented near-tie (margin %g), not compared further\n", name, i, mg[i]); break; }
            mism++;
            if (first < 0) first = i;
            break;
        }
    }
    EXPECT_MSG(mism == 0, "%s: greedy ids diverge at step %d: got %d, want %d", name, first,
               first >= 0 && first < g.n ? g.ids[first] : -1, first >= 0 ? (int)gid[first] : -1);
    eng_destroy(&e);
    free(fid); free(want); free(gid); free(mg); free(ids); free(got);
out:
    model_destroy(&m);
    st_close(&f);
}

TEST(golden_llama_gqa_llama3_tied) { check_fixture(names[0]); }
TEST(golden_llama_mha_untied) { check_fixture(names[1]); }
TEST(golden_bamba_hybrid) { check_fixture(names[2]); }
TEST(golden_bamba_pure) { check_fixture(names[3]); }
TEST(golden_mamba2) { check_fixture(names[4]); }

int main(void) {
    char err[256];
    be = op_backend_new("cpu", err, sizeof err);
    RUN(golden_llama_gqa_llama3_tied);
    RUN(golden_llama_mha_untied);
    RUN(golden_bamba_hybrid);
    RUN(golden_bamba_pure);
    RUN(golden_mamba2);
    be->destroy(&be);
    return unit_summary();
}
