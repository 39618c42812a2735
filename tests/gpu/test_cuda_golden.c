/* tests/gpu/test_cuda_golden.c — the engine on the CUDA backend against HF transformers: for each
 * golden fixture under tests/fixtures/models/<name>/ (see its README), the model is loaded onto
 * the GPU (bf16 weights and activations, fp32 accumulation and state), and
 *   - the logits of every prompt position (one prefill, and prefill in chunks of 5 tokens) must
 *     match HF's fp32 logits within bf16 tolerance: max |diff| <= 4% of the largest |logit|
 *     (bf16 keeps 8 mantissa bits; errors compound over layers);
 *   - the greedy continuation through the engine must equal HF's greedy ids, except from a
 *     documented near-tie on: a step whose HF top-2 margin is below 3x the measured logit
 *     error is where a bf16 engine may legitimately pick the runner-up (printed, not failed).
 * Skips visibly without a CUDA device or without the fixtures.
 */
#include <math.h>
#include <sys/stat.h>

#include "kernels/cuda/cuda_backend.h"
#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/engine.h"
#include "workers/model/safetensors.h"

static op_backend *be;
static const char *fixture_root = "tests/fixtures/models";
static const char *names[] = {"llama_gqa_llama3_tied", "llama_mha_untied", "bamba_hybrid", "bamba_pure", "mamba2"};

typedef struct gen1 { int32_t ids[256]; int n, calls; } gen1;
static int take(void *ud, const eng_result *r) {
    gen1 *g = ud;
    if (r->sample == 0) {
        g->n = r->n_ids < 256 ? r->n_ids : 256;
        memcpy(g->ids, r->ids, sizeof(int32_t) * g->n);
    }
    g->calls++;
    return 0;
}

static void check_fixture(const char *name) {
    if (!be) { unit_skip("no CUDA device"); return; }
    char dir[512], exp[600], err[512];
    snprintf(dir, sizeof dir, "%s/%s", fixture_root, name);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    struct stat sb;
    if (stat(exp, &sb) != 0) {
        char why[200];
        snprintf(why, sizeof why, "fixture %.80s absent", name);
        unit_skip(why);
        return;
    }
    st_file *f = NULL;
    if (st_open(exp, &f, err, sizeof err)) { EXPECT_MSG(0, "%s", err); return; }
    const st_tensor *ti = st_find(f, "input_ids"), *tl = st_find(f, "logits"), *tg = st_find(f, "greedy_ids"),
                    *tm = st_find(f, "top2_margin");
    model *m = NULL;
    EXPECT_MSG(ti && tl && tg && tm, "%s: input_ids / logits / greedy_ids / top2_margin missing", exp);
    if (!ti || !tl || !tg || !tm) goto out;
    if (model_load(dir, be, &m, err, sizeof err)) { EXPECT_MSG(0, "%s: %s", name, err); goto out; }
    const model_config *c = model_cfg(m);
    int L = (int)st_numel(ti), V = c->vocab_size, G = (int)st_numel(tg);
    EXPECT_EQ_INT(st_numel(tl), (int64_t)L * V);
    if (st_numel(tl) != (int64_t)L * V) goto out;
    float *fid = st_tensor_to_f32(ti), *want = st_tensor_to_f32(tl), *gid = st_tensor_to_f32(tg), *mg = st_tensor_to_f32(tm);
    int32_t *ids = malloc(sizeof(int32_t) * L);
    for (int i = 0; i < L; i++) ids[i] = (int32_t)fid[i];
    double scale = 0;
    for (size_t i = 0; i < (size_t)L * V; i++) scale = fmax(scale, fabs(want[i]));
    float *got = malloc(sizeof(float) * (size_t)L * V);
    kv_cache *kv = NULL;
    double err_max = 0;
    if (kv_cache_new(be, c, 16, (L + 15) / 16 + 2, 2, &kv, err, sizeof err)) { EXPECT_MSG(0, "%s: %s", name, err); goto free_all; }
    for (int pass = 0; pass < 2; pass++) {
        int chunk = pass ? 5 : L;
        for (size_t i = 0; i < (size_t)L * V; i++) got[i] = NAN;
        mt_run_seq(m, kv, ids, L, chunk, got);
        double maxabs = 0;
        size_t at = 0;
        for (size_t i = 0; i < (size_t)L * V; i++) {
            double d = fabs((double)got[i] - want[i]);
            if (!(d <= maxabs)) { maxabs = d; at = i; }
        }
        err_max = fmax(err_max, maxabs);
        EXPECT_MSG(maxabs <= 0.04 * scale, "%s (chunk %d): logits differ at position %zu id %zu: %.5f vs %.5f (max |diff| %.4g, scale %.4g)",
                   name, chunk, at / V, at % V, got[at], want[at], maxabs, scale);
        printf("  %s chunk %d: max |logit diff| %.4g (%.2f%% of max |logit| %.3g) over %d positions x %d\n", name, chunk,
               maxabs, 100 * maxabs / scale, scale, L, V);
    }
    kv_cache_destroy(&kv);
    {
        engine *e = NULL;
        eng_config ec = {4, 7, 16, 1, (size_t)64 << 20};
        if (eng_new(m, NULL, &ec, &e, err, sizeof err)) { EXPECT_MSG(0, "%s: %s", name, err); goto free_all; }
        eng_request r;
        memset(&r, 0, sizeof r);
        r.prompt = ids; r.n_prompt = L; r.n_samples = 3; r.temperature = 0; r.max_tokens = G;
        gen1 g = {{0}, 0, 0};
        EXPECT_MSG(eng_run(e, &r, 1, take, &g, err, sizeof err) == 0, "%s", err);
        EXPECT_EQ_INT(g.calls, 3);
        double tie = 3 * err_max;
        int compared = 0;
        for (int i = 0; i < G; i++) {
            if (i >= g.n || g.ids[i] != (int32_t)gid[i]) {
                if (mg[i] < tie) {
                    printf("  %s: greedy step %d differs at a documented near-tie (HF margin %.4g < 3 x logit error %.4g): "
                           "got %d, HF %d; not compared further\n", name, i, mg[i], tie, i < g.n ? g.ids[i] : -1, (int)gid[i]);
                } else {
                    EXPECT_MSG(0, "%s: greedy ids diverge at step %d: got %d, want %d (margin %.4g)", name, i,
                               i < g.n ? g.ids[i] : -1, (int)gid[i], mg[i]);
                }
                break;
            }
            compared++;
        }
        printf("  %s: %d of %d greedy ids equal HF's\n", name, compared, G);
        eng_destroy(&e);
    }
free_all:
    free(fid); free(want); free(gid); free(mg); free(ids); free(got);
out:
    model_destroy(&m);
    st_close(&f);
}

TEST(cuda_golden_llama_gqa_llama3_tied) { check_fixture(names[0]); }
TEST(cuda_golden_llama_mha_untied) { check_fixture(names[1]); }
TEST(cuda_golden_bamba_hybrid) { check_fixture(names[2]); }
TEST(cuda_golden_bamba_pure) { check_fixture(names[3]); }
TEST(cuda_golden_mamba2) { check_fixture(names[4]); }

int main(void) {
    char err[256];
    if (op_cuda_device_count() > 0) {
        be = op_cuda_new(0, err, sizeof err);
        if (!be) printf("cuda backend unavailable: %s\n", err);
    } else {
        printf("no CUDA device: the golden GPU tests are skipped\n");
    }
    RUN(cuda_golden_llama_gqa_llama3_tied);
    RUN(cuda_golden_llama_mha_untied);
    RUN(cuda_golden_bamba_hybrid);
    RUN(cuda_golden_bamba_pure);
    RUN(cuda_golden_mamba2);
    if (be) be->destroy(&be);
    return unit_summary();
}
