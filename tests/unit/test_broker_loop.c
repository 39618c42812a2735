/* tests/unit/test_broker_loop.c — the broker's event loop over real ZeroMQ sockets (ipc
 * endpoints in /tmp), with brk_run in a thread: malformed frames on both sockets, reregister for
 * unknown workers, submit/status/list, leasing by credit, lease expiry of a silent worker and
 * re-dispatch to another, cancel messages to the holder and dropped late results, clean stop,
 * and persistence across a restart of the loop on the same store.
 * (Integration tests in Python drive the real binaries; this one checks the loop in-process.)
 */
#include "unit.h"

#include "broker/broker.h"
#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <zmq.h>

#include "tests/unit/broker_testutil.h"

static char *g_dir, g_cep[128], g_wep[128];

static void send_ready(void *s, const char *id, const char *role, int credit) {
    proto_writer *w = proto_writer_new("ready", 4);
    proto_w_key(w, "worker"); proto_w_str(w, id);
    proto_w_key(w, "role"); proto_w_str(w, role);
    proto_w_key(w, "credit"); proto_w_u64(w, (uint64_t)credit);
    proto_w_key(w, "pid"); proto_w_i64(w, getpid());
    proto_send(s, NULL, 0, w, 0);
    proto_writer_destroy(&w);
}

static void send_simple(void *s, const char *cmd) {
    proto_writer *w = proto_writer_new(cmd, 0);
    proto_send(s, NULL, 0, w, 0);
    proto_writer_destroy(&w);
}

static void start_broker(void) {
    g_stop = 0;
    g_run_rc = -99;
}

TEST(loop_over_the_wire) {
    g_dir = unit_tmpdir("loop");
    snprintf(g_cep, sizeof g_cep, "ipc://%s/c.sock", g_dir);
    snprintf(g_wep, sizeof g_wep, "ipc://%s/w.sock", g_dir);
    char db[128];
    snprintf(db, sizeof db, "%s/db", g_dir);
    brk_config_defaults(&g_cfg);
    g_cfg.db = db;
    g_cfg.clients_ep = g_cep;
    g_cfg.workers_ep = g_wep;
    g_cfg.lease_ms = 300;
    g_cfg.group_commit_ms = 0;
    g_zctx = zmq_ctx_new();
    start_broker();
    pthread_t th;
    pthread_create(&th, NULL, broker_thread, NULL);
    usleep(200000);

    void *c = dealer(g_cep);
    /* malformed frames on the client socket: answered with cmd "error"; the broker keeps going */
    zmq_send(c, "XX", 2, ZMQ_SNDMORE);
    zmq_send(c, "\x80", 1, 0);
    proto_msg *m = recv_msg(c, 3000);
    EXPECT(m != NULL);
    if (m) {
        EXPECT_EQ_STR(proto_cmd(m), "error");
        EXPECT(strstr(str_of(m, "error"), "signature") != NULL);
    }
    proto_msg_destroy(&m);
    zmq_send(c, "TF", 2, ZMQ_SNDMORE);
    zmq_send(c, "\xdf\x7f\xff\xff\xff", 5, 0);
    m = recv_msg(c, 3000);
    EXPECT(m && strstr(str_of(m, "error"), "map count") != NULL);
    proto_msg_destroy(&m);

    /* an unknown worker gets reregister; a malformed worker message gets an error */
    void *wa = dealer(g_wep);
    send_simple(wa, "heartbeat");
    m = recv_msg(wa, 3000);
    EXPECT(m != NULL);
    if (m) EXPECT_EQ_STR(proto_cmd(m), "reregister");
    proto_msg_destroy(&m);
    zmq_send(wa, "TF", 2, 0);
    m = recv_msg(wa, 3000);
    EXPECT(m && strcmp(proto_cmd(m), "error") == 0);
    proto_msg_destroy(&m);

    /* submit: a bad spec is refused with the file name in the error; a good one gets an id */
    proto_writer *w = proto_writer_new("submit", 3);
    proto_w_key(w, "spec"); proto_w_str(w, "{\"kind\": \"sample\", \"sampling\": {\"n\": -3}, \"dataset\": {\"format\": \"synth\", \"n\": 4}}");
    proto_w_key(w, "filename"); proto_w_str(w, "bad.json");
    proto_w_key(w, "rid"); proto_w_u64(w, 41);
    m = request(c, w);
    EXPECT(m != NULL);
    if (m) {
        int ok = 1;
        uint64_t rid = 0;
        proto_get_bool(proto_root(m), "ok", &ok);
        proto_get_u64(proto_root(m), "rid", &rid);
        EXPECT(ok == 0 && rid == 41);
        EXPECT_MSG(strstr(str_of(m, "error"), "bad.json:") != NULL, "%s", str_of(m, "error"));
    }
    proto_msg_destroy(&m);
    w = proto_writer_new("submit", 1);
    proto_w_key(w, "spec");
    proto_w_str(w, "{\"kind\": \"sample\", \"name\": \"looptest\", \"sampling\": {\"n\": 2}, \"chunk\": 2, "
                   "\"dataset\": {\"format\": \"synth\", \"n\": 4}}");
    m = request(c, w);
    char job[32] = "";
    snprintf(job, sizeof job, "%s", str_of(m, "job"));
    EXPECT_EQ_STR(job, "j-000001");
    proto_msg_destroy(&m);

    /* worker A (credit 1) registers and gets one sample task, then goes silent */
    send_ready(wa, "wa", "sample", 1);
    m = recv_msg(wa, 3000);
    EXPECT(m && strcmp(proto_cmd(m), "task") == 0);
    uint64_t task_a = 0;
    if (m) {
        proto_get_u64(proto_root(m), "task", &task_a);
        EXPECT_EQ_STR(str_of(m, "kind"), "sample");
        const proto_val *pl = proto_get_map(proto_root(m), "payload");
        const proto_val *pr = proto_get_array(pl, "problems");
        EXPECT(pr && pr->v.arr.n == 2);
    }
    proto_msg_destroy(&m);
    /* A holds its credit: no second task */
    m = recv_msg(wa, 200);
    EXPECT(m == NULL);
    proto_msg_destroy(&m);

    /* silence > lease_ms: A's lease expires; B (credit 2) gets both tasks */
    usleep(700000);
    void *wb = dealer(g_wep);
    send_ready(wb, "wb", "sample", 2);
    uint64_t got[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        m = recv_msg(wb, 3000);
        EXPECT(m && strcmp(proto_cmd(m), "task") == 0);
        if (m) proto_get_u64(proto_root(m), "task", &got[i]);
        uint64_t attempt = 0;
        if (m && got[i] == task_a) { proto_get_u64(proto_root(m), "attempt", &attempt); EXPECT_EQ_INT(attempt, 2); }
        proto_msg_destroy(&m);
    }
    EXPECT(got[0] == task_a || got[1] == task_a);
    /* A wakes up: it is unknown now */
    send_simple(wa, "heartbeat");
    m = recv_msg(wa, 3000);
    EXPECT(m && strcmp(proto_cmd(m), "reregister") == 0);
    proto_msg_destroy(&m);

    /* keep B alive, then cancel the job: B gets a cancel per task */
    send_simple(wb, "heartbeat");
    w = proto_writer_new("cancel", 1);
    proto_w_key(w, "job"); proto_w_str(w, "looptest");   /* by name */
    m = request(c, w);
    EXPECT_EQ_STR(str_of(m, "state"), "cancelled");
    proto_msg_destroy(&m);
    int cancels = 0;
    for (int i = 0; i < 2; i++) {
        m = recv_msg(wb, 3000);
        if (m && strcmp(proto_cmd(m), "cancel") == 0) cancels++;
        proto_msg_destroy(&m);
    }
    EXPECT_EQ_INT(cancels, 2);
    /* a late result is acked and dropped */
    w = proto_writer_new("result", 3);
    proto_w_key(w, "task"); proto_w_u64(w, got[0]);
    proto_w_key(w, "final"); proto_w_bool(w, 1);
    proto_w_key(w, "outputs"); proto_w_array(w, 0);
    proto_send(wb, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    m = recv_msg(wb, 3000);
    EXPECT(m && strcmp(proto_cmd(m), "ack") == 0);
    proto_msg_destroy(&m);
    m = status(c, job);
    EXPECT_EQ_STR(str_of(m, "state"), "cancelled");
    if (m) {
        uint64_t sd = 99;
        proto_get_u64(proto_root(m), "samples_done", &sd);
        EXPECT_EQ_INT(sd, 0);
    }
    proto_msg_destroy(&m);
    /* workers listing */
    m = request(c, proto_writer_new("workers", 0));
    const proto_val *ws = m ? proto_get_array(proto_root(m), "workers") : NULL;
    EXPECT(ws && ws->v.arr.n == 1);
    proto_msg_destroy(&m);

    /* clean stop */
    g_stop = 1;
    pthread_join(th, NULL);
    EXPECT_MSG(g_run_rc == 0, "%s", g_run_err);

    /* the store says the same, read-only */
    store *st = NULL;
    char err[256];
    EXPECT(store_open(db, 1, 0, &st, err, sizeof err) == 0);
    if (st) {
        store_job j;
        EXPECT(store_job_find(st, "j-000001", &j, err, sizeof err) == 0);
        EXPECT_EQ_STR(j.state, "cancelled");
        store_job_free(&j);
        store_close(&st);
    }

    /* restart on the same store: the job is still listed */
    start_broker();
    pthread_create(&th, NULL, broker_thread, NULL);
    usleep(200000);
    void *c2 = dealer(g_cep);
    m = request(c2, proto_writer_new("list", 0));
    const proto_val *jobs = m ? proto_get_array(proto_root(m), "jobs") : NULL;
    EXPECT(jobs && jobs->v.arr.n == 1);
    proto_msg_destroy(&m);
    g_stop = 1;
    pthread_join(th, NULL);
    EXPECT_EQ_INT(g_run_rc, 0);

    zmq_close(c); zmq_close(c2); zmq_close(wa); zmq_close(wb);
    zmq_ctx_term(g_zctx);
    unit_rmrf(g_dir);
    free(g_dir);
    g_dir = NULL;
}

/* Two workers of one role with credit 4 and a job of 4 sample chunks: 2 tasks each (one task
 * per worker per dispatch round), not 4 for whoever registered first. */
TEST(fair_dispatch) {
    g_dir = unit_tmpdir("loop");
    snprintf(g_cep, sizeof g_cep, "ipc://%s/c.sock", g_dir);
    snprintf(g_wep, sizeof g_wep, "ipc://%s/w.sock", g_dir);
    char db[128];
    snprintf(db, sizeof db, "%s/db", g_dir);
    brk_config_defaults(&g_cfg);
    g_cfg.db = db; g_cfg.clients_ep = g_cep; g_cfg.workers_ep = g_wep;
    g_zctx = zmq_ctx_new();
    start_broker();
    pthread_t th;
    pthread_create(&th, NULL, broker_thread, NULL);
    usleep(200000);
    void *c = dealer(g_cep), *w1 = dealer(g_wep), *w2 = dealer(g_wep);
    send_ready(w1, "w1", "sample", 4);
    send_ready(w2, "w2", "sample", 4);
    usleep(100000);
    /* both registered before the job arrives: the one batch that leases sees both */
    proto_writer *w = proto_writer_new("submit", 1);
    proto_w_key(w, "spec");
    proto_w_str(w, "{\"kind\": \"sample\", \"sampling\": {\"n\": 1}, \"chunk\": 1, \"dataset\": {\"format\": \"synth\", \"n\": 4}}");
    proto_msg *m = request(c, w);
    EXPECT_EQ_STR(str_of(m, "job"), "j-000001");
    proto_msg_destroy(&m);
    int n1 = 0, n2 = 0;
    while ((m = recv_msg(w1, 300)) != NULL) { n1 += strcmp(proto_cmd(m), "task") == 0; proto_msg_destroy(&m); }
    while ((m = recv_msg(w2, 300)) != NULL) { n2 += strcmp(proto_cmd(m), "task") == 0; proto_msg_destroy(&m); }
    EXPECT_EQ_INT(n1, 2);
    EXPECT_EQ_INT(n2, 2);
    g_stop = 1;
    pthread_join(th, NULL);
    EXPECT_EQ_INT(g_run_rc, 0);
    zmq_close(c); zmq_close(w1); zmq_close(w2);
    zmq_ctx_term(g_zctx);
    unit_rmrf(g_dir);
    free(g_dir);
    g_dir = NULL;
}

int main(void) {
    log_set_level(LOG_LVL_WARN);
    RUN(loop_over_the_wire);
    RUN(fair_dispatch);
    return unit_summary();
}
