/* tests/gpu/test_engine_graphs.c — the engine's bucketed decode path (workers/model/engine_graph.h):
 *   cpu  (always run): padded steps give the same tokens bit for bit as the plain engine for
 *        every architecture (temperature + top-k/top-p/min-p sampling, steps with every batch
 *        size as samples finish and slots refill); bucket coverage; step validation; automatic
 *        slot planning (ENG_SEQS_AUTO) and its out-of-memory error;
 *   cuda (skipped visibly without a device): CUDA-graph replays equal the same padded steps run
 *        eagerly (same kernels, so bit for bit, GPU sampling included), graphs are captured and
 *        replayed, the plan sizes the slots from free device memory and reports out of memory.
 */
#include <limits.h>
#include <string.h>

#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/engine.h"
#include "workers/model/engine_graph.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#define MAXR 4
#define MAXS 8
#define MAXT 40

typedef struct outs {
    int32_t ids[MAXR][MAXS][MAXT];
    int n[MAXR][MAXS], tokens[MAXR][MAXS];
    int calls;
} outs;

static int collect(void *ud, const eng_result *r) {
    outs *o = ud;
    o->calls++;
    if (r->request < MAXR && r->sample < MAXS) {
        int n = r->n_ids < MAXT ? r->n_ids : MAXT;
        memcpy(o->ids[r->request][r->sample], r->ids, sizeof(int32_t) * n);
        o->n[r->request][r->sample] = n;
        o->tokens[r->request][r->sample] = r->tokens;
    }
    return 0;
}

/* Three problems with different sample counts and lengths: steps see every batch size from
 * max_seqs down to 1 as samples finish, and slots refill from held prompts mid-run. */
static int32_t prompts[3][11];
static void make_reqs(eng_request *r, float temp) {
    int np[3] = {5, 11, 3}, ns[3] = {3, 2, 4}, mt[3] = {17, 9, 31};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < np[i]; j++) prompts[i][j] = (int32_t)((7 * i + 13 * j + 1) % 90 + 3);
        memset(&r[i], 0, sizeof r[i]);
        r[i].prompt = prompts[i];
        r[i].n_prompt = np[i];
        r[i].n_samples = ns[i];
        r[i].problem = (uint32_t)(100 + i);
        r[i].temperature = temp;
        r[i].top_k = i == 1 ? 20 : 0;
        r[i].top_p = i == 2 ? 0.9f : 1.0f;
        r[i].min_p = i == 0 ? 0.02f : 0.0f;
        r[i].seed = 77;
        r[i].max_tokens = mt[i];
    }
}

/* Runs the three requests with decode mode `mode` (eng_set_graphs); 0 ok. */
static int run_mode(engine *e, int mode, float temp, outs *o, eng_stats *st) {
    char err[256];
    eng_request r[3];
    make_reqs(r, temp);
    memset(o, 0, sizeof *o);
    eng_set_graphs(e, mode);
    int rc = eng_run(e, r, 3, collect, o, err, sizeof err);
    EXPECT_MSG(rc == 0, "eng_run (mode %d): %s", mode, err);
    eng_get_stats(e, st);
    return rc;
}

/* Number of (request, sample) token lists that differ; prints the first difference. */
static int compare(const char *what, const outs *a, const outs *b) {
    int bad = 0;
    for (int i = 0; i < 3; i++)
        for (int s = 0; s < MAXS; s++) {
            if (a->n[i][s] == b->n[i][s] && a->tokens[i][s] == b->tokens[i][s] &&
                memcmp(a->ids[i][s], b->ids[i][s], sizeof(int32_t) * a->n[i][s]) == 0)
                continue;
            if (!bad) {
                int k = 0;
                while (k < a->n[i][s] && k < b->n[i][s] && a->ids[i][s][k] == b->ids[i][s][k]) k++;
                printf("  %s: request %d sample %d differs at token %d (%d vs %d tokens)\n", what, i, s, k, a->n[i][s],
                       b->n[i][s]);
            }
            bad++;
        }
    return bad;
}

static model *load_kind(op_backend *be, int kind, char **dir) {
    char err[256];
    model_random_spec sp = mt_spec(kind);
    *dir = mt_tmpdir("egraph");
    model *m = NULL;
    if (model_write_random(*dir, &sp, err, sizeof err) || model_load(*dir, be, &m, err, sizeof err)) {
        EXPECT_MSG(0, "%s: %s", mt_names[kind], err);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------------ cpu */

TEST(bucketed_steps_equal_plain_engine_cpu) {
    char err[256];
    op_backend *be = op_backend_new("cpu", err, sizeof err);
    EXPECT_MSG(be != NULL, "%s", err);
    if (!be) return;
    for (int kind = 0; kind < MT_COUNT; kind++) {
        char *dir;
        model *m = load_kind(be, kind, &dir);
        if (!m) { mt_rmdir(dir); continue; }
        engine *e = NULL;
        eng_config ec = {6, 8, 4, 2, 0};
        EXPECT(eng_new(m, NULL, &ec, &e, err, sizeof err) == 0);
        static outs plain, bucketed;
        eng_stats sp, sb;
        if (run_mode(e, 0, 0.9f, &plain, &sp) == 0 && run_mode(e, 1, 0.9f, &bucketed, &sb) == 0) {
            EXPECT_EQ_INT(plain.calls, 9);
            EXPECT_EQ_INT(bucketed.calls, 9);
            EXPECT_MSG(compare(mt_names[kind], &plain, &bucketed) == 0, "%s: padded steps changed the tokens", mt_names[kind]);
            EXPECT_MSG(sb.padded_rows > 0, "%s: no step was padded (the test must exercise padding rows)", mt_names[kind]);
            EXPECT_EQ_INT(sp.padded_rows, 0);
            EXPECT_EQ_INT(sb.decode_tokens, sp.decode_tokens);
            EXPECT_EQ_INT(sb.graph_replays, 0); /* no graphs on the cpu */
        }
        eng_destroy(&e);
        model_destroy(&m);
        mt_rmdir(dir);
    }
    be->destroy(&be);
}

TEST(buckets_cover_every_batch_size) {
    char err[256];
    op_backend *be = op_backend_new("cpu", err, sizeof err);
    if (!be) { EXPECT_MSG(0, "%s", err); return; }
    char *dir;
    model *m = load_kind(be, MT_BAMBA_HYBRID, &dir);
    if (!m) { mt_rmdir(dir); be->destroy(&be); return; }
    kv_cache *kv = NULL;
    EXPECT(kv_cache_new(be, model_cfg(m), 4, 8, 3, &kv, err, sizeof err) == 0);
    eng_graph *g = NULL;
    int maxs = 1000;
    EXPECT_MSG(eng_graph_new(m, kv, maxs, 2, 1, &g, err, sizeof err) == 0, "%s", err);
    if (g) {
        EXPECT_EQ_INT(kv_slots_available(kv), 2); /* the padding rows took one slot */
        EXPECT_EQ_INT(kv_pages_available(kv), 7); /* and one page */
        int prev = 0, distinct = 0, bad = 0;
        for (int n = 1; n <= maxs; n++) {
            int b = eng_graph_bucket(g, n);
            if (b < n || b > maxs || b < prev || (n >= 16 && b > n + n / 8 + 8) || (n < 16 && b > 2 * n)) {
                if (!bad) printf("  bucket(%d) = %d (previous %d)\n", n, b, prev);
                bad++;
            }
            distinct += b != prev;
            prev = b;
        }
        EXPECT_EQ_INT(bad, 0);
        EXPECT_EQ_INT(eng_graph_bucket(g, maxs), maxs);
        EXPECT_EQ_INT(eng_graph_bucket(g, 0), -1);
        EXPECT_EQ_INT(eng_graph_bucket(g, maxs + 1), -1);
        EXPECT_MSG(distinct <= 48, "%d buckets for 1000 rows: too many graphs", distinct);
        /* a step with a two-token sequence (prefill) is refused with a message */
        kv_seq s;
        kv_batch b;
        kv_batch_init(&b);
        EXPECT(kv_seq_init(kv, &s) == 0);
        EXPECT(kv_seq_reserve(kv, &s, 2) == 0);
        int32_t t[2] = {5, 6};
        kv_batch_clear(&b);
        EXPECT(kv_batch_add(kv, &b, &s, t, 2) == 0);
        kv_batch_finish(&b);
        op_sample_params p = {0};
        int32_t id = -1;
        err[0] = 0;
        EXPECT(eng_graph_step(g, &b, &p, &id, err, sizeof err) == -1);
        EXPECT_MSG(strstr(err, "does not fit") != NULL, "message: %s", err);
        kv_batch_free(&b);
        kv_seq_release(kv, &s);
        eng_graph_destroy(&g);
        EXPECT(g == NULL);
        EXPECT_EQ_INT(kv_slots_available(kv), 3); /* given back */
        EXPECT_EQ_INT(kv_pages_available(kv), 8);
    }
    kv_cache_destroy(&kv);
    model_destroy(&m);
    mt_rmdir(dir);
    be->destroy(&be);
}

/* ENG_SEQS_AUTO on backend be: the plan caps at the run's samples / the cap, the tokens equal a
 * fixed-slot run, and a sequence that cannot fit is a clear out-of-memory error. */
static void check_auto(op_backend *be, const char *oom_word) {
    char err[256];
    char *dir;
    model *m = load_kind(be, MT_LLAMA_GQA, &dir);
    if (!m) { mt_rmdir(dir); return; }
    engine *ea = NULL, *ef = NULL;
    eng_config auto_cfg = {ENG_SEQS_AUTO, 8, 4, 2, 0}, fixed = {6, 8, 4, 2, 0};
    EXPECT(eng_new(m, NULL, &auto_cfg, &ea, err, sizeof err) == 0);
    EXPECT(eng_new(m, NULL, &fixed, &ef, err, sizeof err) == 0);
    int n = eng_plan(ea, 64, 8, 4, err, sizeof err);
    EXPECT_MSG(n >= 1, "eng_plan: %s", err);
    eng_set_seqs_cap(ea, 6);
    EXPECT_EQ_INT(eng_plan(ea, 64, 8, 4, err, sizeof err), 6);
    static outs oa, of;
    eng_stats sa, sf;
    int mode = strcmp(be->name, "cpu") == 0 ? 0 : 1;
    if (run_mode(ea, mode, 0.8f, &oa, &sa) == 0 && run_mode(ef, mode, 0.8f, &of, &sf) == 0) {
        EXPECT_EQ_INT(sa.max_seqs, 6); /* 9 samples, cap 6 */
        EXPECT_EQ_INT(sf.max_seqs, 6);
        EXPECT_MSG(compare("auto vs fixed slots", &oa, &of) == 0, "planned slots changed the tokens");
    }
    /* a billion-token sequence does not fit anywhere */
    err[0] = 0;
    EXPECT_EQ_INT(eng_plan(ea, 1000000000, 8, 1, err, sizeof err), -1);
    EXPECT_MSG(strstr(err, oom_word) != NULL, "message: %s", err);
    eng_request r = {0};
    int32_t p[1] = {3};
    r.prompt = p; r.n_prompt = 1; r.n_samples = 1; r.max_tokens = 2;
    EXPECT(eng_run(ea, &r, 1, NULL, NULL, err, sizeof err) == 0); /* still usable after the error */
    eng_destroy(&ea);
    eng_destroy(&ef);
    model_destroy(&m);
    mt_rmdir(dir);
}

TEST(auto_slots_are_planned_cpu) {
    char err[256];
    op_backend *be = op_backend_new("cpu", err, sizeof err);
    if (!be) { EXPECT_MSG(0, "%s", err); return; }
    check_auto(be, "out of");
    be->destroy(&be);
}

/* ------------------------------------------------------------------ cuda */

static op_backend *cuda_be;

TEST(cuda_graph_replays_equal_eager_padded_steps) {
    if (!cuda_be) { unit_skip("no CUDA device"); return; }
    char err[256];
    for (int kind = 0; kind < MT_COUNT; kind++) {
        char *dir;
        model *m = load_kind(cuda_be, kind, &dir);
        if (!m) { mt_rmdir(dir); continue; }
        engine *e = NULL;
        eng_config ec = {6, 8, 4, 2, 0};
        EXPECT(eng_new(m, NULL, &ec, &e, err, sizeof err) == 0);
        eng_set_ignore_eos(e, 1); /* fixed lengths: the batch sizes (and padding) do not depend on bf16 logits */
        static outs eager, graphs, graphs2, plain;
        eng_stats se, sg, sg2, sp;
        if (run_mode(e, ENG_DECODE_BUCKETED, 0.9f, &eager, &se) == 0 && run_mode(e, 1, 0.9f, &graphs, &sg) == 0 &&
            run_mode(e, 1, 0.9f, &graphs2, &sg2) == 0 && run_mode(e, 0, 0.9f, &plain, &sp) == 0) {
            EXPECT_EQ_INT(graphs.calls, 9);
            EXPECT_MSG(compare(mt_names[kind], &eager, &graphs) == 0, "%s: graph replays differ from the eager padded steps",
                       mt_names[kind]);
            EXPECT_MSG(compare(mt_names[kind], &graphs, &graphs2) == 0, "%s: a second run with the same graphs differs",
                       mt_names[kind]);
            EXPECT_MSG(sg.graph_buckets > 0 && sg.graph_replays > 0, "%s: %d graphs, %lld replays", mt_names[kind],
                       sg.graph_buckets, (long long)sg.graph_replays);
            EXPECT_MSG(sg2.graph_replays == sg2.decode_steps, "%s: second run: %lld of %lld steps replayed", mt_names[kind],
                       (long long)sg2.graph_replays, (long long)sg2.decode_steps);
            EXPECT_EQ_INT(se.graph_replays, 0);
            EXPECT_MSG(sg.padded_rows > 0, "%s: no padded step", mt_names[kind]);
            int d = compare("plain vs graphs (info: GEMM shapes differ, near-ties may flip)", &plain, &graphs);
            printf("  %s: %d graphs, %lld of %lld steps replayed, %lld padding rows; plain eager path: %d of 9 samples "
                   "differ\n", mt_names[kind], sg.graph_buckets, (long long)sg.graph_replays, (long long)sg.decode_steps,
                   (long long)sg.padded_rows, d);
        }
        eng_destroy(&e);
        model_destroy(&m);
        mt_rmdir(dir);
    }
}

TEST(cuda_auto_slots_are_planned_from_device_memory) {
    if (!cuda_be) { unit_skip("no CUDA device"); return; }
    check_auto(cuda_be, "out of device memory");
}

int main(void) {
#ifdef THINKFAST_CUDA
    char err[256];
    if (op_cuda_device_count() > 0) {
        cuda_be = op_cuda_new(0, err, sizeof err);
        if (!cuda_be) printf("cuda backend unavailable: %s\n", err);
    } else {
        printf("no CUDA device: the CUDA graph tests are skipped\n");
    }
#else
    printf("GPU=0 build: the CUDA graph tests are skipped\n");
#endif
    RUN(bucketed_steps_equal_plain_engine_cpu);
    RUN(buckets_cover_every_batch_size);
    RUN(auto_slots_are_planned_cpu);
    RUN(cuda_graph_replays_equal_eager_padded_steps);
    RUN(cuda_auto_slots_are_planned_from_device_memory);
    if (cuda_be) cuda_be->destroy(&cuda_be);
    return unit_summary();
}
