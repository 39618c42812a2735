/* tests/unit/test_store.c — the LMDB store: records round-trip, idempotent inserts, the ready
 * queue's priority/FIFO order, map growth from a tiny map, persistence across close/reopen,
 * read-only opens, job lookup by id and name. Each test works in a fresh temp directory.
 */
#include "unit.h"

#include "broker/tasks.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <stdlib.h>
#include <unistd.h>

typedef struct { int n; uint32_t last_p, last_s; int ordered; uint64_t sum_tokens; } gen_count;
static int count_gen(uint64_t job, const store_generation *g, void *ctx) {
    gen_count *c = ctx;
    if (c->n && (g->p < c->last_p || (g->p == c->last_p && g->s <= c->last_s))) c->ordered = 0;
    c->last_p = g->p; c->last_s = g->s;
    c->n++;
    c->sum_tokens += (uint64_t)g->tokens;
    return 0;
}

typedef struct { int n; char name0[128]; } jobs_count;
static int count_jobs(const store_job *j, void *ctx) {
    jobs_count *c = ctx;
    if (c->n == 0) snprintf(c->name0, sizeof c->name0, "%s", j->name);
    c->n++;
    return 0;
}

TEST(records_roundtrip) {
    char *d = unit_tmpdir("store");
    store *s = NULL;
    char err[256];
    EXPECT_MSG(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK, "%s", err);
    if (!s) { free(d); return; }
    store_txn *t;
    EXPECT(store_txn_begin(s, 1, &t, err, sizeof err) == STORE_OK);
    uint64_t id1 = 0, id2 = 0;
    EXPECT(store_next_id(t, "next_job", &id1) == 0 && id1 == 1);
    EXPECT(store_next_id(t, "next_job", &id2) == 0 && id2 == 2);
    store_job j = {0};
    j.id = id1; snprintf(j.name, sizeof j.name, "alpha"); snprintf(j.state, sizeof j.state, "queued");
    j.priority = -5; j.n_problems = 3; j.n_samples = 4; j.samples_done = 1ull << 40;
    snprintf(j.error, sizeof j.error, "none");
    j.spec_json = "{\"kind\":\"sample\"}";
    EXPECT(store_job_put(t, &j) == 0);
    store_problem p = {.p = 2, .id = "q2", .question = "What is 1+1?", .answer = "2", .level = 3};
    EXPECT(store_problem_put(t, id1, &p) == 0);
    store_task task = {.id = 7, .job = id1, .kind = BRK_KIND_SCORE, .state = BRK_TASK_LEASED,
                       .chunk = 1, .p_begin = 8, .p_end = 16, .attempt = 2, .outputs_total = 64};
    snprintf(task.worker, sizeof task.worker, "w-1");
    snprintf(task.error, sizeof task.error, "boom");
    EXPECT(store_task_put(t, &task) == 0);
    store_generation g = {.p = 2, .s = 1, .text = "abc\0def", .text_len = 7, .tokens = 9, .time_s = 0.5};
    snprintf(g.finish, sizeof g.finish, "stop");
    EXPECT_EQ_INT(store_generation_put(t, id1, &g), 1);
    store_generation g2 = g;
    g2.text = "other"; g2.text_len = 5;
    EXPECT_EQ_INT(store_generation_put(t, id1, &g2), 0);   /* duplicate: nothing changes */
    store_score sc = {.p = 2, .s = 1, .extracted = "2", .canonical = "2", .correct = 1, .reward = NAN};
    EXPECT_EQ_INT(store_score_put(t, id1, &sc), 1);
    EXPECT_EQ_INT(store_score_put(t, id1, &sc), 0);
    EXPECT(store_txn_commit(&t, err, sizeof err) == STORE_OK);
    EXPECT(t == NULL);

    EXPECT(store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK);
    store_job j2;
    EXPECT(store_job_get(t, id1, &j2) == 0);
    EXPECT_EQ_STR(j2.name, "alpha");
    EXPECT_EQ_INT(j2.priority, -5);
    EXPECT(j2.samples_done == 1ull << 40);
    EXPECT_EQ_STR(j2.spec_json, "{\"kind\":\"sample\"}");
    store_job_free(&j2);
    EXPECT(store_job_get(t, 99, &j2) == STORE_ERR_NOTFOUND);
    store_problem p2;
    EXPECT(store_problem_get(t, id1, 2, &p2) == 0);
    EXPECT_EQ_STR(p2.question, "What is 1+1?");
    EXPECT_EQ_STR(p2.solution, "");
    EXPECT_EQ_INT(p2.level, 3);
    store_task t2;
    EXPECT(store_task_get(t, 7, &t2) == 0);
    EXPECT(t2.kind == BRK_KIND_SCORE && t2.state == BRK_TASK_LEASED && t2.p_end == 16 && t2.attempt == 2);
    EXPECT_EQ_STR(t2.worker, "w-1");
    EXPECT_EQ_STR(t2.error, "boom");
    store_generation g3;
    EXPECT(store_generation_get(t, id1, 2, 1, &g3) == 0);
    EXPECT(g3.text_len == 7 && memcmp(g3.text, "abc\0def", 7) == 0);
    EXPECT_EQ_STR(g3.finish, "stop");
    store_score sc2;
    EXPECT(store_score_get(t, id1, 2, 1, &sc2) == 0);
    EXPECT(sc2.correct == 1 && isnan(sc2.reward));
    EXPECT_EQ_STR(sc2.canonical, "2");
    store_txn_abort(&t);
    store_close(&s);
    EXPECT(s == NULL);
    unit_rmrf(d);
    free(d);
}

TEST(ready_queue_order) {
    char *d = unit_tmpdir("store");
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    store_txn *t;
    store_txn_begin(s, 1, &t, err, sizeof err);
    /* role 1: prio 0 seq 5 (task 50), prio 0 seq 3 (task 30), prio 9 seq 8 (task 80), prio -2 seq 1 */
    store_ready_push(t, 1, 0, 5, 50);
    store_ready_push(t, 1, 0, 3, 30);
    store_ready_push(t, 1, 9, 8, 80);
    store_ready_push(t, 1, -2, 1, 10);
    store_ready_push(t, 2, 100, 2, 20);
    uint64_t x = 0;
    EXPECT(store_ready_first(t, 1, &x) == 0 && x == 80);   /* highest priority first */
    store_ready_del(t, 1, 9, 8);
    EXPECT(store_ready_first(t, 1, &x) == 0 && x == 30);   /* then FIFO */
    store_ready_del(t, 1, 0, 3);
    EXPECT(store_ready_first(t, 1, &x) == 0 && x == 50);
    store_ready_del(t, 1, 0, 5);
    EXPECT(store_ready_first(t, 1, &x) == 0 && x == 10);   /* negative priority last */
    EXPECT_EQ_INT(store_ready_count(t, 1), 1);
    EXPECT_EQ_INT(store_ready_count(t, 0), 2);
    EXPECT(store_ready_first(t, 3, &x) == STORE_ERR_NOTFOUND);
    store_ready_del(t, 1, -2, 1);
    EXPECT(store_ready_first(t, 1, &x) == STORE_ERR_NOTFOUND);  /* role 2's key must not leak in */
    EXPECT(store_ready_first(t, 2, &x) == 0 && x == 20);
    store_txn_abort(&t);
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

typedef struct { int n; uint64_t job; } fill_ctx;
static int fill_gens(store_txn *t, void *vctx) {
    fill_ctx *c = vctx;
    static char text[3000];
    memset(text, 'x', sizeof text);
    for (int i = 0; i < c->n; i++) {
        store_generation g = {.p = (uint32_t)(i / 16), .s = (uint32_t)(i % 16), .text = text,
                              .text_len = sizeof text, .tokens = i};
        int rc = store_generation_put(t, c->job, &g);
        if (rc < 0) return rc;
    }
    return STORE_OK;
}

TEST(map_growth_and_persistence) {
    char *d = unit_tmpdir("store");
    store *s = NULL;
    char err[256] = "";
    /* 256 KiB map: 2000 generations of 3 KB (~6 MB) must grow it several times */
    EXPECT(store_open(d, 0, 256 << 10, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    size_t before = store_map_bytes(s);
    fill_ctx c = {2000, 1};
    int rc = store_write(s, fill_gens, &c, err, sizeof err);
    EXPECT_MSG(rc == STORE_OK, "%s", err);
    EXPECT_MSG(store_map_bytes(s) > before, "map %zu -> %zu", before, store_map_bytes(s));
    EXPECT(store_map_bytes(s) >= 4u << 20);
    store_close(&s);

    /* reopen: everything is there, idempotent inserts still say "present" */
    EXPECT(store_open(d, 0, 256 << 10, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    gen_count gc = {0, 0, 0, 1, 0};
    EXPECT(store_generations_each(s, 1, count_gen, &gc, err, sizeof err) == 0);
    EXPECT_EQ_INT(gc.n, 2000);
    EXPECT(gc.ordered);
    EXPECT_EQ_INT(gc.sum_tokens, 1999ull * 2000 / 2);
    store_txn *t;
    store_txn_begin(s, 1, &t, err, sizeof err);
    store_generation g = {.p = 0, .s = 0, .text = "y", .text_len = 1};
    EXPECT_EQ_INT(store_generation_put(t, 1, &g), 0);
    store_txn_abort(&t);
    /* a read-only open alongside the writer sees committed data */
    store *ro = NULL;
    /* one environment per process is LMDB's rule for the same env; test read-only after close */
    /* one writer: a second read-write open is refused while the first is open (the refusal
     * happens at the flock, before LMDB is touched, so LMDB's one-env-per-process rule holds) */
    store *w2 = NULL;
    EXPECT(store_open(d, 0, 0, &w2, err, sizeof err) == STORE_ERR_IO);
    EXPECT_MSG(strstr(err, "already open for writing") != NULL, "%s", err);
    EXPECT(w2 == NULL);
    store_close(&s);
    EXPECT(store_open(d, 1, 0, &ro, err, sizeof err) == STORE_OK);
    if (ro) {
        gc = (gen_count){0, 0, 0, 1, 0};
        EXPECT_MSG(store_generations_each(ro, 1, count_gen, &gc, err, sizeof err) == 0, "%s", err);
        EXPECT_EQ_INT(gc.n, 2000);
        EXPECT(store_txn_begin(ro, 1, &t, err, sizeof err) == STORE_ERR_READONLY);
        store_close(&ro);
    }
    unit_rmrf(d);
    free(d);
}

TEST(readonly_missing_and_find) {
    store *s = NULL;
    char err[256] = "";
    EXPECT(store_open("/nonexistent/tf_store", 1, 0, &s, err, sizeof err) == STORE_ERR_NOTFOUND);
    EXPECT(strstr(err, "/nonexistent/tf_store") != NULL);
    char *d = unit_tmpdir("store");
    EXPECT(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK);
    if (!s) { free(d); return; }
    store_txn *t;
    store_txn_begin(s, 1, &t, err, sizeof err);
    const char *names[] = {"alpha", "beta", "alpha"};
    for (int i = 0; i < 3; i++) {
        store_job j = {0};
        store_next_id(t, "next_job", &j.id);
        snprintf(j.name, sizeof j.name, "%s", names[i]);
        snprintf(j.state, sizeof j.state, "queued");
        store_job_put(t, &j);
    }
    EXPECT(store_txn_commit(&t, err, sizeof err) == 0);
    store_job j;
    EXPECT(store_job_find(s, "j-000002", &j, err, sizeof err) == 0 && j.id == 2);
    store_job_free(&j);
    EXPECT(store_job_find(s, "3", &j, err, sizeof err) == 0 && j.id == 3);
    store_job_free(&j);
    EXPECT(store_job_find(s, "alpha", &j, err, sizeof err) == 0 && j.id == 3);  /* newest */
    store_job_free(&j);
    EXPECT(store_job_find(s, "gamma", &j, err, sizeof err) == STORE_ERR_NOTFOUND);
    EXPECT(strstr(err, "gamma") != NULL);
    EXPECT(store_job_find(s, "j-000009", &j, err, sizeof err) == STORE_ERR_NOTFOUND);
    jobs_count jc = {0};
    EXPECT(store_jobs_each(s, count_jobs, &jc, err, sizeof err) == 0);
    EXPECT_EQ_INT(jc.n, 3);
    EXPECT_EQ_STR(jc.name0, "alpha");
    char idbuf[24];
    store_job_id_format(12, idbuf, sizeof idbuf);
    EXPECT_EQ_STR(idbuf, "j-000012");
    uint64_t x;
    EXPECT(store_job_id_parse("j-x1", &x) == -1);
    EXPECT(store_job_id_parse("", &x) == -1);
    EXPECT(store_job_id_parse("j-000", &x) == -1);
    /* stats round trip with a raw msgpack map */
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 1); proto_w_key(w, "k"); proto_w_array(w, 2); proto_w_u64(w, 1); proto_w_u64(w, 4);
    size_t n;
    const void *data = proto_writer_data(w, &n);
    store_stats st = {.final = 1, .samples = 64, .task = 9, .msgpack = (uint8_t *)data, .msgpack_len = n};
    store_txn_begin(s, 1, &t, err, sizeof err);
    EXPECT(store_stats_put(t, 2, &st) == 0);
    store_txn_commit(&t, err, sizeof err);
    store_stats st2;
    EXPECT(store_stats_get(s, 2, &st2, err, sizeof err) == 0);
    EXPECT(st2.final == 1 && st2.samples == 64 && st2.msgpack_len == n && memcmp(st2.msgpack, data, n) == 0);
    store_stats_free(&st2);
    EXPECT(store_stats_get(s, 3, &st2, err, sizeof err) == STORE_ERR_NOTFOUND);
    EXPECT(strstr(err, "j-000003") != NULL);
    proto_writer_destroy(&w);
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

int main(void) {
    RUN(records_roundtrip);
    RUN(ready_queue_order);
    RUN(map_growth_and_persistence);
    RUN(readonly_missing_and_find);
    return unit_summary();
}
