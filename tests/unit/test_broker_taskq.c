/* tests/unit/test_broker_taskq.c — the task state machine and DAG release against a real LMDB
 * store in a temp directory: lease, result streaming, idempotent commit, DAG release, lease
 * expiry with attempts -> poison task -> job failed, stale fail messages, cancel, restart
 * recovery across close/reopen, output validation, replay after map growth. After every batch
 * the invariants of broker/taskq.c are checked against the store itself.
 */
#include "unit.h"

#include "broker/payload.h"
#include "broker/taskq.h"
#include "broker/tasks.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- fixtures ---- */

static char *g_dir;
static store *g_st;

typedef struct { char worker[64]; uint64_t task; int cancel; } ended_ev;
static ended_ev g_ev[256];
static int g_nev;
static void on_ended(void *ctx, const char *worker, uint64_t task, int cancel) {
    if (g_nev < 256) {
        snprintf(g_ev[g_nev].worker, 64, "%s", worker);
        g_ev[g_nev].task = task;
        g_ev[g_nev].cancel = cancel;
        g_nev++;
    }
}

static void setup(size_t map_bytes) {
    g_dir = unit_tmpdir("taskq");
    char err[256];
    if (store_open(g_dir, 0, map_bytes, &g_st, err, sizeof err) != 0) { printf("%s\n", err); abort(); }
    g_nev = 0;
}
static void teardown(void) {
    store_close(&g_st);
    unit_rmrf(g_dir);
    free(g_dir);
    g_dir = NULL;
}

/* A job with n_problems problems (answers "p<i>"), n samples, chunk problems per chunk. */
static job_spec make_spec(int n, int chunk, int max_attempts) {
    job_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "sample");
    snprintf(s.name, sizeof s.name, "unit");
    snprintf(s.model.backend, sizeof s.model.backend, "replay");
    snprintf(s.score.grader, sizeof s.score.grader, "gsm8k");
    s.sampling.n = n;
    s.sampling.seed = 5;
    s.aggregate.n_k = 2; s.aggregate.k[0] = 1; s.aggregate.k[1] = n;
    s.chunk = chunk;
    s.max_attempts = max_attempts;
    s.json = "{\"kind\":\"sample\"}";
    return s;
}

static job_problem g_probs[64];
static char g_txt[64][3][32];
static char g_big[1500];
static job_dataset make_ds(int n) {
    memset(g_big, 'y', sizeof g_big - 1);
    for (int i = 0; i < n; i++) {
        snprintf(g_txt[i][0], 32, "%d", i);
        snprintf(g_txt[i][1], 32, "question %d", i);
        snprintf(g_txt[i][2], 32, "p%d", i);
        g_probs[i] = (job_problem){.id = g_txt[i][0], .question = g_txt[i][1], .solution = g_big,
                                   .answer = g_txt[i][2], .subject = "", .level = 0};
    }
    return (job_dataset){g_probs, n};
}

/* ---- batch runner ---- */

typedef int (*step_fn)(brk_batch *b, void *ctx);
typedef struct { step_fn fn; void *ctx; int rc; int runs; } batch_ctx;
static int batch_cb(store_txn *t, void *vctx) {
    batch_ctx *c = vctx;
    c->runs++;
    brk_batch b;
    brk_fx fx = {on_ended, NULL};
    taskq_batch_init(&b, t, util_wall_ms(), &fx);
    c->rc = c->fn(&b, c->ctx);
    int rc = c->rc < 0 ? c->rc : taskq_batch_flush(&b);
    taskq_batch_free(&b);
    return rc;
}
static int run(step_fn fn, void *ctx) {
    batch_ctx c = {fn, ctx, 0, 0};
    char err[256] = "";
    int rc = store_write(g_st, batch_cb, &c, err, sizeof err);
    if (rc && rc != -100) { printf("  store_write: %d %s\n", rc, err); return rc; }
    if (rc) return rc;
    return c.rc;
}

/* ---- invariants ---- */
typedef struct { uint32_t cnt[5]; uint64_t job; int bad; store_txn *t; } inv_ctx;
static int inv_task(const store_task *x, void *vctx) {
    inv_ctx *c = vctx;
    if (x->state >= 0 && x->state <= 4) c->cnt[x->state]++;
    store_lease l;
    int has_lease = store_lease_get(c->t, x->id, &l) == STORE_OK;
    if (has_lease != (x->state == BRK_TASK_LEASED)) { printf("  task %llu: lease %d state %d\n", (unsigned long long)x->id, has_lease, x->state); c->bad++; }
    if (has_lease && strcmp(l.worker, x->worker) != 0) { printf("  task %llu: lease holder mismatch\n", (unsigned long long)x->id); c->bad++; }
    return 0;
}
static int check_invariants(uint64_t job) {
    store_txn *t;
    char err[128];
    store_txn_begin(g_st, 0, &t, err, sizeof err);
    inv_ctx c = {{0}, job, 0, t};
    store_tasks_each_txn(t, job, inv_task, &c);
    store_job j;
    int bad = c.bad;
    if (store_job_get(t, job, &j) == 0) {
        if (j.tasks_ready != c.cnt[0] || j.tasks_leased != c.cnt[1] || j.tasks_done != c.cnt[2] ||
            j.tasks_failed != c.cnt[3] || j.tasks_cancelled != c.cnt[4]) {
            printf("  job counters %u/%u/%u/%u/%u vs tasks %u/%u/%u/%u/%u\n", j.tasks_ready, j.tasks_leased, j.tasks_done,
                   j.tasks_failed, j.tasks_cancelled, c.cnt[0], c.cnt[1], c.cnt[2], c.cnt[3], c.cnt[4]);
            bad++;
        }
        store_job_free(&j);
    }
    /* ready DB holds exactly the ready tasks (single job in these tests) */
    if (store_ready_count(t, 0) != c.cnt[0]) { printf("  ready DB %llu vs %u ready tasks\n", (unsigned long long)store_ready_count(t, 0), c.cnt[0]); bad++; }
    store_txn_abort(&t);
    return bad;
}

static store_job get_job(uint64_t id) {
    store_job j;
    memset(&j, 0, sizeof j);
    store_txn *t;
    char err[128];
    store_txn_begin(g_st, 0, &t, err, sizeof err);
    store_job_get(t, id, &j);
    store_txn_abort(&t);
    return j;
}
static store_task get_task(uint64_t id) {
    store_task x;
    memset(&x, 0, sizeof x);
    store_txn *t;
    char err[128];
    store_txn_begin(g_st, 0, &t, err, sizeof err);
    store_task_get(t, id, &x);
    store_txn_abort(&t);
    return x;
}

/* ---- steps ---- */
typedef struct { int n, chunk, n_probs, max_attempts; uint64_t job; char err[256]; } submit_ctx;
static int step_submit(brk_batch *b, void *vctx) {
    submit_ctx *c = vctx;
    job_spec s = make_spec(c->n, c->chunk, c->max_attempts);
    job_dataset ds = make_ds(c->n_probs);
    return taskq_submit(b, &s, &ds, (uint32_t)c->max_attempts, &c->job, c->err, sizeof c->err);
}

typedef struct { int kind; const char *worker; store_task got; int n_max, n_got; } lease_ctx;
static int step_lease(brk_batch *b, void *vctx) {
    lease_ctx *c = vctx;
    c->n_got = 0;
    for (int i = 0; i < c->n_max; i++) {
        int rc = taskq_lease(b, c->kind, c->worker, &c->got);
        if (rc == STORE_ERR_NOTFOUND) break;
        if (rc) return rc;
        c->n_got++;
    }
    return 0;
}

/* Builds outputs for (task) covering samples [s0, s1) of its problems; bad = 1 puts p out of range. */
static proto_msg *make_outputs(const store_task *x, int n, int s0, int s1, int bad) {
    proto_writer *w = proto_writer_new(NULL, 0);
    if (x->kind == BRK_KIND_AGGREGATE) {
        proto_w_array(w, 1);
        proto_w_map(w, 1);
        proto_w_key(w, "stats");
        proto_w_map(w, 1); proto_w_key(w, "final"); proto_w_bool(w, x->final);
    } else {
        proto_w_array(w, (x->p_end - x->p_begin) * (uint32_t)(s1 - s0));
        for (uint32_t p = x->p_begin; p < x->p_end; p++)
            for (int s = s0; s < s1; s++) {
                proto_w_map(w, x->kind == BRK_KIND_SAMPLE ? 4 : 5);
                proto_w_key(w, "p"); proto_w_u64(w, bad ? x->p_end + 5 : p);
                proto_w_key(w, "s"); proto_w_u64(w, (uint64_t)s);
                if (x->kind == BRK_KIND_SAMPLE) {
                    char t[32];
                    snprintf(t, sizeof t, "answer p%u", p);
                    proto_w_key(w, "text"); proto_w_str(w, t);
                    proto_w_key(w, "tokens"); proto_w_i64(w, 3);
                } else {
                    proto_w_key(w, "extracted"); proto_w_str(w, "x");
                    proto_w_key(w, "canonical"); proto_w_str(w, s % 2 ? "a" : "b");
                    proto_w_key(w, "correct"); proto_w_bool(w, s % 2);
                }
            }
    }
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    char err[128];
    proto_parse_value(d, len, &m, err, sizeof err);
    proto_writer_destroy(&w);
    return m;
}

typedef struct { const char *worker; uint64_t task; proto_msg *outs; int final; int verdict; char err[256]; } result_ctx;
static int step_result(brk_batch *b, void *vctx) {
    result_ctx *c = vctx;
    c->verdict = taskq_result(b, c->worker, c->task, c->outs ? proto_root(c->outs) : NULL, c->final, c->err, sizeof c->err);
    return c->verdict < 0 ? c->verdict : 0;
}
static int deliver(const char *worker, const store_task *x, int n, int s0, int s1, int final, int bad, char *err_out) {
    result_ctx c = {worker, x->id, make_outputs(x, n, s0, s1, bad), final, 0, ""};
    int rc = run(step_result, &c);
    proto_msg_destroy(&c.outs);
    if (err_out) snprintf(err_out, 256, "%s", c.err);
    return rc ? rc : c.verdict;
}

typedef struct { const char *worker; int counted; const char *reason; int n; } requeue_ctx;
static int step_requeue(brk_batch *b, void *vctx) {
    requeue_ctx *c = vctx;
    c->n = taskq_requeue_worker(b, c->worker, c->counted, c->reason);
    return c->n < 0 ? c->n : 0;
}

/* Runs the whole DAG of a job with one worker per kind, returning the number of tasks run. */
static int run_job(uint64_t job, int n) {
    int ran = 0;
    for (int guard = 0; guard < 1000; guard++) {
        int any = 0;
        for (int kind = BRK_KIND_SAMPLE; kind <= BRK_KIND_AGGREGATE; kind++) {
            lease_ctx l = {kind, "w", {0}, 1, 0};
            if (run(step_lease, &l)) return -1;
            if (!l.n_got) continue;
            any = 1;
            ran++;
            if (deliver("w", &l.got, n, 0, n, 1, 0, NULL) != TASKQ_ACK) return -1;
            if (check_invariants(job)) return -1;
        }
        if (!any) break;
    }
    return ran;
}

/* ---- tests ---- */

TEST(dag_end_to_end) {
    setup(0);
    submit_ctx sc = {4, 3, 10, 3, 0, ""};       /* 10 problems, chunks of 3 -> 4 sample chunks */
    EXPECT_EQ_INT(run(step_submit, &sc), 0);
    EXPECT_EQ_INT(sc.job, 1);
    store_job j = get_job(sc.job);
    EXPECT_EQ_INT(j.n_chunks, 4);
    EXPECT_EQ_INT(j.tasks_ready, 4);
    EXPECT_EQ_STR(j.state, "queued");
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);

    /* no score work yet */
    lease_ctx none = {BRK_KIND_SCORE, "w", {0}, 5, 0};
    run(step_lease, &none);
    EXPECT_EQ_INT(none.n_got, 0);

    /* lease the first sample chunk, stream its result in two parts, with a duplicate */
    lease_ctx l = {BRK_KIND_SAMPLE, "w1", {0}, 1, 0};
    EXPECT_EQ_INT(run(step_lease, &l), 0);
    EXPECT_EQ_INT(l.n_got, 1);
    EXPECT(l.got.p_begin == 0 && l.got.p_end == 3 && l.got.attempt == 1 && l.got.state == BRK_TASK_LEASED);
    j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "running");
    store_job_free(&j);
    EXPECT_EQ_INT(deliver("w1", &l.got, 4, 0, 2, 0, 0, NULL), TASKQ_ACK);
    EXPECT_EQ_INT(deliver("w1", &l.got, 4, 0, 2, 0, 0, NULL), TASKQ_ACK);  /* redelivery */
    j = get_job(sc.job);
    EXPECT_EQ_INT(j.samples_done, 6);   /* 3 problems x 2 samples, counted once */
    store_job_free(&j);
    EXPECT_EQ_INT(get_task(l.got.id).state, BRK_TASK_LEASED);
    /* final before complete from the holder: counted failure, re-queued */
    g_nev = 0;
    EXPECT_EQ_INT(deliver("w1", &l.got, 4, 2, 3, 1, 0, NULL), TASKQ_ACK);
    store_task x = get_task(l.got.id);
    EXPECT_EQ_INT(x.state, BRK_TASK_READY);
    EXPECT_EQ_INT(x.failures, 1);
    EXPECT(strstr(x.error, "incomplete") != NULL);
    EXPECT(g_nev == 1 && g_ev[0].task == l.got.id && !g_ev[0].cancel);
    /* its outputs stay; it went to the back of the queue: lease everything, it comes last */
    uint64_t poisoned = l.got.id;
    store_task all[4];
    for (int i = 0; i < 4; i++) {
        lease_ctx li = {BRK_KIND_SAMPLE, "w1", {0}, 1, 0};
        EXPECT_EQ_INT(run(step_lease, &li), 0);
        all[i] = li.got;
    }
    EXPECT_EQ_INT(all[3].id, poisoned);
    EXPECT_EQ_INT(all[3].attempt, 2);
    for (int i = 0; i < 4; i++) EXPECT_EQ_INT(deliver("w1", &all[i], 4, 0, 4, 1, 0, NULL), TASKQ_ACK);
    x = get_task(poisoned);
    EXPECT_EQ_INT(x.state, BRK_TASK_DONE);
    EXPECT_EQ_INT(x.outputs_done, 12);
    /* a late duplicate of a done task changes nothing */
    EXPECT_EQ_INT(deliver("w1", &all[3], 4, 0, 4, 1, 0, NULL), TASKQ_ACK);
    j = get_job(sc.job);
    EXPECT_EQ_INT(j.samples_done, 40);
    EXPECT_EQ_INT(j.chunks_sampled, 4);
    EXPECT_EQ_INT(j.tasks_ready, 4);   /* the four score chunks */
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);

    /* score chunks are released in completion order: chunk 1 first; 4 samples per problem */
    lease_ctx ls = {BRK_KIND_SCORE, "s1", {0}, 1, 0};
    run(step_lease, &ls);
    EXPECT_EQ_INT(ls.n_got, 1);
    EXPECT_EQ_INT(ls.got.chunk, 1);
    {
        store_txn *t;
        char err[128];
        store_txn_begin(g_st, 0, &t, err, sizeof err);
        store_job jj;
        store_job_get(t, sc.job, &jj);
        proto_writer *w = proto_writer_new(NULL, 0);
        EXPECT_EQ_INT(payload_write(t, &jj, &ls.got, w), 0);
        size_t n;
        const void *d = proto_writer_data(w, &n);
        proto_msg *m = NULL;
        EXPECT_EQ_INT(proto_parse_value(d, n, &m, err, sizeof err), 0);
        const proto_val *items = m ? proto_get_array(proto_root(m), "items") : NULL;
        EXPECT(items && items->v.arr.n == 12);
        const char *txt = NULL, *ans = NULL;
        if (items && items->v.arr.n == 12) {
            char want_t[32], want_a[32];
            snprintf(want_t, sizeof want_t, "answer p%u", ls.got.p_begin + 1);
            snprintf(want_a, sizeof want_a, "p%u", ls.got.p_begin + 1);
            proto_get_str(&items->v.arr.items[5], "text", &txt, NULL);
            proto_get_str(&items->v.arr.items[5], "answer", &ans, NULL);
            EXPECT_EQ_STR(txt, want_t);
            EXPECT_EQ_STR(ans, want_a);
        }
        const char *grader = NULL;
        if (m) proto_get_str(proto_root(m), "grader", &grader, NULL);
        EXPECT_EQ_STR(grader, "gsm8k");
        proto_msg_destroy(&m);
        proto_writer_destroy(&w);
        store_job_free(&jj);
        store_txn_abort(&t);
    }
    EXPECT_EQ_INT(deliver("s1", &ls.got, 4, 0, 4, 1, 0, NULL), TASKQ_ACK);
    /* one incremental aggregate is pending; a second score chunk does not add another */
    run(step_lease, &ls);
    EXPECT_EQ_INT(deliver("s1", &ls.got, 4, 0, 4, 1, 0, NULL), TASKQ_ACK);
    j = get_job(sc.job);
    EXPECT(j.agg_task != 0);
    EXPECT_EQ_INT(j.tasks_ready, 3);   /* 2 score chunks + 1 aggregate */
    store_job_free(&j);

    /* finish everything */
    int ran = run_job(sc.job, 4);
    EXPECT(ran >= 2 + 1);
    j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "done");
    EXPECT_EQ_INT(j.samples_done, 40);
    EXPECT_EQ_INT(j.scores_done, 40);
    EXPECT_EQ_INT(j.chunks_scored, 4);
    EXPECT(j.final_created == 1);
    EXPECT_EQ_INT(j.tasks_ready + j.tasks_leased, 0);
    EXPECT_EQ_INT(j.tasks_failed, 0);
    store_job_free(&j);
    store_stats st;
    char err[128];
    EXPECT_EQ_INT(store_stats_get(g_st, sc.job, &st, err, sizeof err), 0);
    EXPECT_EQ_INT(st.final, 1);
    store_stats_free(&st);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    teardown();
}

TEST(expiry_attempts_poison) {
    setup(0);
    submit_ctx sc = {2, 2, 4, 3, 0, ""};   /* 2 chunks, max 3 attempts */
    EXPECT_EQ_INT(run(step_submit, &sc), 0);
    uint64_t first = 0;
    for (int attempt = 1; attempt <= 3; attempt++) {
        lease_ctx l = {BRK_KIND_SAMPLE, "wx", {0}, 1, 0};
        EXPECT_EQ_INT(run(step_lease, &l), 0);
        if (!first) first = l.got.id;
        /* the poison task goes to the back of the queue, so drain the healthy one once */
        if (l.got.id != first) {
            EXPECT_EQ_INT(deliver("wx", &l.got, 2, 0, 2, 1, 0, NULL), TASKQ_ACK);
            EXPECT_EQ_INT(run(step_lease, &l), 0);
        }
        EXPECT_EQ_INT(l.got.id, first);
        EXPECT_EQ_INT(l.got.attempt, attempt);
        requeue_ctx rq = {"wx", 1, "lease expired: worker wx silent for 12000 ms", 0};
        EXPECT_EQ_INT(run(step_requeue, &rq), 0);
        EXPECT_EQ_INT(rq.n, 1);
        EXPECT_EQ_INT(check_invariants(sc.job), 0);
    }
    store_task x = get_task(first);
    EXPECT_EQ_INT(x.state, BRK_TASK_FAILED);
    EXPECT_EQ_INT(x.failures, 3);
    store_job j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "failed");
    EXPECT_EQ_INT(j.failed_task, first);
    EXPECT_MSG(strstr(j.error, "failed after 3 attempts") && strstr(j.error, "silent for 12000 ms") &&
               strstr(j.error, "sample chunk 0"), "%s", j.error);
    EXPECT_EQ_INT(j.tasks_ready + j.tasks_leased, 0);   /* the rest was cancelled */
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    /* nothing of a failed job is leased any more */
    lease_ctx l = {BRK_KIND_SCORE, "wx", {0}, 5, 0};
    run(step_lease, &l);
    EXPECT_EQ_INT(l.n_got, 0);
    teardown();
}

typedef struct { const char *worker; uint64_t task; uint32_t attempt; } fail_ctx;
static int step_fail(brk_batch *b, void *vctx) {
    fail_ctx *c = vctx;
    return taskq_fail(b, c->worker, c->task, c->attempt, "CUDA out of memory");
}

TEST(fail_messages_and_uncounted_requeue) {
    setup(0);
    submit_ctx sc = {1, 1, 1, 2, 0, ""};
    run(step_submit, &sc);
    lease_ctx l = {BRK_KIND_SAMPLE, "w1", {0}, 1, 0};
    run(step_lease, &l);
    /* a stale attempt number or another worker: ignored */
    fail_ctx f = {"w1", l.got.id, l.got.attempt + 1};
    run(step_fail, &f);
    f = (fail_ctx){"w2", l.got.id, l.got.attempt};
    run(step_fail, &f);
    EXPECT_EQ_INT(get_task(l.got.id).state, BRK_TASK_LEASED);
    /* a clean disconnect re-queues without counting */
    requeue_ctx rq = {"w1", 0, "worker disconnected", 0};
    run(step_requeue, &rq);
    store_task x = get_task(l.got.id);
    EXPECT(x.state == BRK_TASK_READY && x.failures == 0);
    /* two real failures with max_attempts 2 -> failed with the worker's text */
    for (int i = 0; i < 2; i++) {
        run(step_lease, &l);
        f = (fail_ctx){"w1", l.got.id, l.got.attempt};
        run(step_fail, &f);
    }
    x = get_task(l.got.id);
    EXPECT_EQ_INT(x.state, BRK_TASK_FAILED);
    store_job j = get_job(sc.job);
    EXPECT_MSG(strstr(j.error, "CUDA out of memory") != NULL, "%s", j.error);
    EXPECT_EQ_STR(j.state, "failed");
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    teardown();
}

typedef struct { uint64_t job; int rc; } cancel_ctx;
static int step_cancel(brk_batch *b, void *vctx) {
    cancel_ctx *c = vctx;
    c->rc = taskq_cancel_job(b, c->job);
    return c->rc < 0 ? c->rc : 0;
}

TEST(cancel) {
    setup(0);
    submit_ctx sc = {2, 1, 3, 3, 0, ""};   /* 3 chunks */
    run(step_submit, &sc);
    lease_ctx l = {BRK_KIND_SAMPLE, "w1", {0}, 1, 0};
    run(step_lease, &l);
    g_nev = 0;
    cancel_ctx cc = {sc.job, 0};
    EXPECT_EQ_INT(run(step_cancel, &cc), 0);
    EXPECT_EQ_INT(cc.rc, 0);
    EXPECT(g_nev == 1 && g_ev[0].cancel == 1 && g_ev[0].task == l.got.id && strcmp(g_ev[0].worker, "w1") == 0);
    store_job j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "cancelled");
    EXPECT_EQ_INT(j.tasks_cancelled, 3);
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    /* the late result is acknowledged and dropped */
    EXPECT_EQ_INT(deliver("w1", &l.got, 2, 0, 2, 1, 0, NULL), TASKQ_ACK);
    j = get_job(sc.job);
    EXPECT_EQ_INT(j.samples_done, 0);
    store_job_free(&j);
    run(step_lease, &l);
    EXPECT_EQ_INT(l.n_got, 0);
    /* cancelling again is fine; cancelling a done job is refused */
    EXPECT_EQ_INT(run(step_cancel, &cc), 0);
    EXPECT_EQ_INT(cc.rc, 0);
    submit_ctx sc2 = {1, 1, 1, 3, 0, ""};
    run(step_submit, &sc2);
    run_job(sc2.job, 1);
    cc.job = sc2.job;
    run(step_cancel, &cc);
    EXPECT_EQ_INT(cc.rc, 1);
    teardown();
}

static int step_recover(brk_batch *b, void *vctx) {
    int rc = taskq_recover(b);
    *(int *)vctx = rc;
    return rc < 0 ? rc : 0;
}

TEST(restart_recovery) {
    setup(0);
    submit_ctx sc = {2, 1, 3, 3, 0, ""};
    run(step_submit, &sc);
    lease_ctx l = {BRK_KIND_SAMPLE, "w1", {0}, 2, 0};
    run(step_lease, &l);
    EXPECT_EQ_INT(l.n_got, 2);
    /* part of a result committed before the "crash" */
    lease_ctx one = l;
    one.got = get_task(1);
    EXPECT_EQ_INT(deliver("w1", &one.got, 2, 0, 1, 0, 0, NULL), TASKQ_ACK);
    store_close(&g_st);
    char err[256];
    EXPECT_EQ_INT(store_open(g_dir, 0, 0, &g_st, err, sizeof err), 0);
    store_job j = get_job(sc.job);
    EXPECT_EQ_INT(j.tasks_leased, 2);
    EXPECT_EQ_INT(j.samples_done, 1);
    store_job_free(&j);
    int n = 0;
    EXPECT_EQ_INT(run(step_recover, &n), 0);
    EXPECT_EQ_INT(n, 2);
    j = get_job(sc.job);
    EXPECT_EQ_INT(j.tasks_leased, 0);
    EXPECT_EQ_INT(j.tasks_ready, 3);
    store_job_free(&j);
    EXPECT_EQ_INT(get_task(1).failures, 0);   /* a broker restart is not the task's fault */
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    /* the job resumes and completes with exact counts */
    run_job(sc.job, 2);
    j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "done");
    EXPECT_EQ_INT(j.samples_done, 6);
    EXPECT_EQ_INT(j.scores_done, 6);
    store_job_free(&j);
    teardown();
}

TEST(bad_outputs_rejected) {
    setup(0);
    submit_ctx sc = {2, 2, 2, 3, 0, ""};
    run(step_submit, &sc);
    lease_ctx l = {BRK_KIND_SAMPLE, "w1", {0}, 1, 0};
    run(step_lease, &l);
    char err[256];
    EXPECT_EQ_INT(deliver("w1", &l.got, 2, 0, 2, 1, 1, err), TASKQ_REJECT);
    EXPECT_MSG(strstr(err, "outputs[0].p") != NULL, "%s", err);
    store_job j = get_job(sc.job);
    EXPECT_EQ_INT(j.samples_done, 0);
    store_job_free(&j);
    EXPECT_EQ_INT(get_task(l.got.id).state, BRK_TASK_LEASED);
    /* unknown task */
    store_task ghost = l.got;
    ghost.id = 999;
    EXPECT_EQ_INT(deliver("w1", &ghost, 2, 0, 2, 1, 0, err), TASKQ_REJECT);
    /* an empty submit is refused */
    submit_ctx bad = {2, 2, 0, 3, 0, ""};
    EXPECT_EQ_INT(run(step_submit, &bad), -100);
    EXPECT(strstr(bad.err, "dataset") != NULL);
    teardown();
}

TEST(replay_after_map_growth) {
    setup(64 << 10);   /* 64 KiB: a 64-problem submit cannot fit at first */
    submit_ctx sc = {64, 4, 64, 3, 0, ""};
    batch_ctx c = {step_submit, &sc, 0, 0};
    char err[256] = "";
    EXPECT_EQ_INT(store_write(g_st, batch_cb, &c, err, sizeof err), 0);
    EXPECT_MSG(c.runs > 1, "runs %d", c.runs);
    EXPECT_EQ_INT(sc.job, 1);   /* the replay did not leave a gap in the job ids */
    store_job j = get_job(sc.job);
    EXPECT_EQ_INT(j.n_problems, 64);
    EXPECT_EQ_INT(j.tasks_ready, 16);
    store_job_free(&j);
    EXPECT_EQ_INT(check_invariants(sc.job), 0);
    int ran = run_job(sc.job, 64);
    EXPECT(ran > 0);
    j = get_job(sc.job);
    EXPECT_EQ_STR(j.state, "done");
    EXPECT_EQ_INT(j.samples_done, 64 * 64);
    store_job_free(&j);
    teardown();
}

int main(void) {
    RUN(dag_end_to_end);
    RUN(expiry_attempts_poison);
    RUN(fail_messages_and_uncounted_requeue);
    RUN(cancel);
    RUN(restart_recovery);
    RUN(bad_outputs_rejected);
    RUN(replay_after_map_growth);
    return unit_summary();
}
