/* tests/unit/test_broker_full.c — the broker's store-full state, in-process over ipc sockets
 * (brk_run in a thread, a raw worker and a raw client): the file system refuses to extend
 * data.mdb (RLIMIT_FSIZE: the kernel's EFBIG / short writes, as on a full disk), so a worker's
 * result cannot commit: it is answered `error {task, "store full: ..."}` and NOT acked; status
 * says "store":"full"; submit and cancel are refused; no task is leased. When room comes back
 * the periodic retry leaves the state: the task whose result was refused is re-queued without
 * counting an attempt, its holder told `cancel`, leased again (attempt 2), and its redone
 * result committed exactly once. The map-limit flavour runs on real processes in
 * tests/integration/test_store_full.py.
 */
#include "unit.h"

#include "broker/broker.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "tests/unit/broker_testutil.h"

static char *g_dir;

static proto_msg *submit(void *c, const char *name) {
    char spec[256];
    snprintf(spec, sizeof spec, "{\"kind\": \"sample\", \"name\": \"%s\", \"sampling\": {\"n\": 2}, \"chunk\": 4, "
                                "\"dataset\": {\"format\": \"synth\", \"n\": 4}}", name);
    proto_writer *w = proto_writer_new("submit", 1);
    proto_w_key(w, "spec"); proto_w_str(w, spec);
    return request(c, w);
}

/* A sample result for problems 0..3 x samples 0..1 with 40 KB texts: far more than fits. */
static void send_result(void *wk, uint64_t task, uint64_t attempt) {
    static char text[40000];
    memset(text, 'z', sizeof text);
    proto_writer *w = proto_writer_new("result", 4);
    proto_w_key(w, "task"); proto_w_u64(w, task);
    proto_w_key(w, "attempt"); proto_w_u64(w, attempt);
    proto_w_key(w, "final"); proto_w_bool(w, 1);
    proto_w_key(w, "outputs"); proto_w_array(w, 8);
    for (uint32_t i = 0; i < 8; i++) {
        proto_w_map(w, 6);
        proto_w_key(w, "p"); proto_w_u64(w, i / 2);
        proto_w_key(w, "s"); proto_w_u64(w, i % 2);
        proto_w_key(w, "text"); proto_w_strn(w, text, sizeof text);
        proto_w_key(w, "tokens"); proto_w_i64(w, 7);
        proto_w_key(w, "time_s"); proto_w_f64(w, 0.5);
        proto_w_key(w, "finish"); proto_w_str(w, "stop");
    }
    proto_send(wk, NULL, 0, w, 0);
    proto_writer_destroy(&w);
}

TEST(full_disk_pauses_then_retry_resumes) {
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) != 0 || old.rlim_max != RLIM_INFINITY) { unit_skip("cannot change RLIMIT_FSIZE"); return; }
    g_dir = unit_tmpdir("bfull");
    char db[128], cep[128], wep[128], data[160];
    snprintf(db, sizeof db, "%s/db", g_dir);
    snprintf(data, sizeof data, "%s/data.mdb", db);
    snprintf(cep, sizeof cep, "ipc://%s/c.sock", g_dir);
    snprintf(wep, sizeof wep, "ipc://%s/w.sock", g_dir);
    brk_config_defaults(&g_cfg);
    g_cfg.db = db;
    g_cfg.clients_ep = cep;
    g_cfg.workers_ep = wep;
    g_cfg.map_bytes = 64u << 20;     /* the map is never the limit here: the disk is */
    g_cfg.full_retry_ms = 200;
    g_zctx = zmq_ctx_new();
    g_stop = 0;
    g_run_rc = -99;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    pthread_t th;
    pthread_create(&th, NULL, broker_thread, NULL);
    usleep(200000);
    void *c = dealer(cep), *wk = dealer(wep);

    proto_msg *m = submit(c, "fulltest");
    char job[32];
    snprintf(job, sizeof job, "%s", str_of(m, "job"));
    EXPECT_EQ_STR(job, "j-000001");
    proto_msg_destroy(&m);
    proto_writer *w = proto_writer_new("ready", 3);
    proto_w_key(w, "worker"); proto_w_str(w, "wf");
    proto_w_key(w, "role"); proto_w_str(w, "sample");
    proto_w_key(w, "credit"); proto_w_u64(w, 1);
    proto_send(wk, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    m = recv_msg(wk, 3000);
    EXPECT(m && strcmp(proto_cmd(m), "task") == 0);
    uint64_t task = u64_of(m, "task");
    EXPECT_EQ_INT(u64_of(m, "attempt"), 1);
    proto_msg_destroy(&m);

    /* the disk is "full": data.mdb may not grow by a byte */
    usleep(100000);
    struct stat st;
    EXPECT(stat(data, &st) == 0);
    struct rlimit lim = {(rlim_t)st.st_size, old.rlim_max};
    EXPECT(setrlimit(RLIMIT_FSIZE, &lim) == 0);

    send_result(wk, task, 1);
    m = recv_msg(wk, 3000);
    EXPECT_MSG(m && strcmp(proto_cmd(m), "error") == 0, "got %s", m ? proto_cmd(m) : "nothing");
    EXPECT_EQ_INT(u64_of(m, "task"), task);
    EXPECT_MSG(strstr(str_of(m, "error"), "store full") != NULL, "%s", str_of(m, "error"));
    proto_msg_destroy(&m);

    m = status(c, job);
    EXPECT(ok_of(m) == 1);
    EXPECT_EQ_STR(str_of(m, "store"), "full");
    EXPECT_MSG(strstr(str_of(m, "store_error"), "data.mdb") != NULL, "%s", str_of(m, "store_error"));
    EXPECT_EQ_INT(u64_of(m, "samples_done"), 0);
    proto_msg_destroy(&m);
    m = submit(c, "refused");
    EXPECT(ok_of(m) == 0);
    EXPECT_MSG(strstr(str_of(m, "error"), "store full") != NULL, "%s", str_of(m, "error"));
    proto_msg_destroy(&m);
    w = proto_writer_new("cancel", 1);
    proto_w_key(w, "job"); proto_w_str(w, job);
    m = request(c, w);
    EXPECT(ok_of(m) == 0 && strstr(str_of(m, "error"), "store full") != NULL);
    proto_msg_destroy(&m);
    /* the worker hears nothing but heartbeats over several retry periods: no ack, no new task */
    m = recv_msg(wk, 700);
    EXPECT_MSG(m == NULL, "got %s", m ? proto_cmd(m) : "");
    proto_msg_destroy(&m);
    EXPECT_EQ_INT(g_run_rc, -99);   /* still running */

    /* room again: the retry resumes; the refused task is cancelled at its holder and re-leased */
    setrlimit(RLIMIT_FSIZE, &old);
    m = recv_msg(wk, 3000);
    EXPECT_MSG(m && strcmp(proto_cmd(m), "cancel") == 0, "got %s", m ? proto_cmd(m) : "nothing");
    EXPECT_EQ_INT(u64_of(m, "task"), task);
    proto_msg_destroy(&m);
    m = recv_msg(wk, 3000);
    EXPECT_MSG(m && strcmp(proto_cmd(m), "task") == 0, "got %s", m ? proto_cmd(m) : "nothing");
    EXPECT_EQ_INT(u64_of(m, "task"), task);
    EXPECT_EQ_INT(u64_of(m, "attempt"), 2);
    proto_msg_destroy(&m);
    send_result(wk, task, 2);
    m = recv_msg(wk, 3000);
    EXPECT_MSG(m && strcmp(proto_cmd(m), "ack") == 0, "got %s: %s", m ? proto_cmd(m) : "nothing", str_of(m, "error"));
    proto_msg_destroy(&m);

    m = status(c, job);
    EXPECT_EQ_STR(str_of(m, "store"), "ok");
    EXPECT_EQ_INT(u64_of(m, "samples_done"), 8);
    EXPECT_EQ_INT(u64_of(m, "chunks_sampled"), 1);
    const proto_val *tasks = m ? proto_get_map(proto_root(m), "tasks") : NULL;
    uint64_t failed = 99;
    if (tasks) proto_get_u64(tasks, "failed", &failed);
    EXPECT_EQ_INT(failed, 0);
    proto_msg_destroy(&m);
    m = submit(c, "accepted");
    EXPECT(ok_of(m) == 1);
    EXPECT_EQ_STR(str_of(m, "job"), "j-000002");
    proto_msg_destroy(&m);

    g_stop = 1;
    pthread_join(th, NULL);
    EXPECT_MSG(g_run_rc == 0, "brk_run: %d %s", g_run_rc, g_run_err);
    zmq_close(c);
    zmq_close(wk);
    zmq_ctx_term(g_zctx);
    signal(SIGXFSZ, prev);

    /* the store holds the task's 8 generations once, and a failure was not counted */
    store *s = NULL;
    char err[512];
    EXPECT(store_open(db, 1, 0, &s, err, sizeof err) == STORE_OK);
    if (s) {
        store_txn *t;
        EXPECT(store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK);
        store_task x;
        EXPECT(store_task_get(t, task, &x) == STORE_OK);
        EXPECT_EQ_INT(x.failures, 0);
        EXPECT_EQ_INT(x.outputs_done, 8);
        int n = 0;
        for (uint32_t p = 0; p < 4; p++)
            for (uint32_t sm = 0; sm < 2; sm++) {
                store_generation g;
                if (store_generation_get(t, 1, p, sm, &g) == STORE_OK && g.text_len == 40000) n++;
            }
        EXPECT_EQ_INT(n, 8);
        store_txn_abort(&t);
        store_close(&s);
    }
    unit_rmrf(g_dir);
    free(g_dir);
    g_dir = NULL;
}

int main(void) {
    log_set_level(LOG_LVL_WARN);
    RUN(full_disk_pauses_then_retry_resumes);
    return unit_summary();
}
