/* tests/unit/test_broker_fuzz.c — semantic fuzzing of the running broker: thousands of
 * well-formed msgpack bodies with the right signature but random fields (every command name,
 * fields of the wrong type, negative / huge numbers, nested junk, outputs for real and
 * made-up tasks), from a registered worker that holds real leases and from a client, under a
 * fixed seed. The broker must answer every client request, keep serving, and stop cleanly;
 * afterwards the store's task invariants still hold.
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

static brk_config g_cfg;
static volatile sig_atomic_t g_stop;
static int g_rc;
static char g_err[512];
static void *thr(void *a) { g_rc = brk_run(&g_cfg, &g_stop, g_err, sizeof g_err); return NULL; }

static uint64_t rs = 12345;
static uint64_t rnd(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return rs; }

static const char *keys[] = {"v", "cmd", "task", "attempt", "final", "outputs", "worker", "role", "credit",
                             "job", "spec", "p", "s", "text", "stats", "error", "rid", "extracted", "correct",
                             "canonical", "tokens", "time_s", "finish", "filename", "host", "pid"};
static const char *cmds[] = {"submit", "status", "list", "cancel", "report", "workers", "watch", "ready",
                             "result", "fail", "progress", "heartbeat", "disconnect", "task", "ack", "bogus"};
#define NK (sizeof keys / sizeof *keys)

static void rand_val(proto_writer *w, int depth) {
    switch (rnd() % (depth > 3 ? 7 : 10)) {
    case 0: proto_w_nil(w); break;
    case 1: proto_w_bool(w, (int)(rnd() & 1)); break;
    case 2: proto_w_i64(w, -(int64_t)(rnd() % 1000)); break;
    case 3: proto_w_u64(w, rnd() % 4 == 0 ? rnd() : rnd() % 40); break;
    case 4: proto_w_f64(w, (double)(rnd() % 1000) / 7.0); break;
    case 5: { static const char *ss[] = {"", "sample", "score", "aggregate", "j-000001", "x", "{", "w1"};
              proto_w_str(w, ss[rnd() % 8]); break; }
    case 6: proto_w_bin(w, "\x00\x01", 2); break;
    case 7: case 8: {
        uint32_t n = (uint32_t)(rnd() % 4);
        proto_w_array(w, n);
        for (uint32_t i = 0; i < n; i++) rand_val(w, depth + 1);
        break;
    }
    default: {
        uint32_t n = (uint32_t)(rnd() % 5);
        proto_w_map(w, n);
        for (uint32_t i = 0; i < n; i++) { proto_w_key(w, keys[rnd() % NK]); rand_val(w, depth + 1); }
    }
    }
}

/* A body with v/cmd right and 0..6 random fields, sometimes near-valid result outputs. */
static proto_writer *rand_msg(int client, uint64_t real_task) {
    const char *cmd = client ? cmds[rnd() % 7] : cmds[7 + rnd() % 9];
    int nf = (int)(rnd() % 7);
    int near = !client && strcmp(cmd, "result") == 0 && rnd() % 2;
    proto_writer *w = proto_writer_new(cmd, (uint32_t)(nf + (near ? 3 : 0)));
    if (near) {
        proto_w_key(w, "task"); proto_w_u64(w, rnd() % 3 ? real_task : rnd() % 50);
        proto_w_key(w, "final"); proto_w_bool(w, (int)(rnd() & 1));
        proto_w_key(w, "outputs");
        uint32_t n = (uint32_t)(rnd() % 6);
        proto_w_array(w, n);
        for (uint32_t i = 0; i < n; i++) {
            proto_w_map(w, 3);
            proto_w_key(w, "p"); proto_w_u64(w, rnd() % 6);
            proto_w_key(w, "s"); proto_w_u64(w, rnd() % 3);
            proto_w_key(w, "text"); if (rnd() % 5) proto_w_str(w, "t"); else rand_val(w, 1);
        }
    }
    for (int i = 0; i < nf; i++) {
        proto_w_key(w, keys[2 + rnd() % (NK - 2)]);
        rand_val(w, 1);
    }
    return w;
}

typedef struct { int bad; uint32_t cnt[5]; store_txn *t; } inv;
static int inv_cb(const store_task *x, void *ctx) {
    inv *c = ctx;
    store_lease l;
    int has = store_lease_get(c->t, x->id, &l) == STORE_OK;
    if (has != (x->state == BRK_TASK_LEASED)) c->bad++;
    if (x->state >= 0 && x->state < 5) c->cnt[x->state]++;
    return 0;
}

TEST(fuzz_running_broker) {
    char *dir = unit_tmpdir("bfuzz");
    char db[128], cep[128], wep[128];
    snprintf(db, sizeof db, "%s/db", dir);
    snprintf(cep, sizeof cep, "ipc://%s/c", dir);
    snprintf(wep, sizeof wep, "ipc://%s/w", dir);
    brk_config_defaults(&g_cfg);
    g_cfg.db = db; g_cfg.clients_ep = cep; g_cfg.workers_ep = wep;
    g_cfg.group_commit_ms = 0;
    g_cfg.lease_ms = 60000;
    pthread_t th;
    pthread_create(&th, NULL, thr, NULL);
    usleep(150000);
    void *ctx = zmq_ctx_new();
    void *c = zmq_socket(ctx, ZMQ_DEALER), *wk = zmq_socket(ctx, ZMQ_DEALER);
    int z = 0, tmo = 5000;
    zmq_setsockopt(c, ZMQ_LINGER, &z, sizeof z); zmq_setsockopt(wk, ZMQ_LINGER, &z, sizeof z);
    zmq_setsockopt(c, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(c, cep); zmq_connect(wk, wep);
    char err[256];
    proto_msg *m = NULL;

    /* a real job and a registered worker holding a real lease */
    proto_writer *w = proto_writer_new("submit", 1);
    proto_w_key(w, "spec");
    proto_w_str(w, "{\"kind\":\"sample\",\"name\":\"fz\",\"sampling\":{\"n\":3},\"chunk\":2,\"dataset\":{\"format\":\"synth\",\"n\":6}}");
    proto_send(c, NULL, 0, w, 0); proto_writer_destroy(&w);
    EXPECT(proto_recv(c, 0, NULL, 0, NULL, &m, 0, err, sizeof err) == PROTO_OK);
    proto_msg_destroy(&m);
    w = proto_writer_new("ready", 3);
    proto_w_key(w, "worker"); proto_w_str(w, "w1");
    proto_w_key(w, "role"); proto_w_str(w, "sample");
    proto_w_key(w, "credit"); proto_w_u64(w, 2);
    proto_send(wk, NULL, 0, w, 0); proto_writer_destroy(&w);
    uint64_t real_task = 1;
    zmq_setsockopt(wk, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    if (proto_recv(wk, 0, NULL, 0, NULL, &m, 0, err, sizeof err) == PROTO_OK)
        proto_get_u64(proto_root(m), "task", &real_task);
    proto_msg_destroy(&m);

    const int N = 3000;
    int sent_client = 0;
    for (int i = 0; i < N; i++) {
        int client = (int)(rnd() % 3 == 0);
        w = rand_msg(client, real_task);
        proto_send(client ? c : wk, NULL, 0, w, 0);
        proto_writer_destroy(&w);
        sent_client += client;
    }
    /* every client request gets exactly one reply */
    int replies = 0;
    while (replies < sent_client && proto_recv(c, 0, NULL, 0, NULL, &m, 0, err, sizeof err) == PROTO_OK) {
        replies++;
        proto_msg_destroy(&m);
    }
    EXPECT_EQ_INT(replies, sent_client);
    /* still serving */
    w = proto_writer_new("list", 0);
    proto_send(c, NULL, 0, w, 0); proto_writer_destroy(&w);
    EXPECT(proto_recv(c, 0, NULL, 0, NULL, &m, 0, err, sizeof err) == PROTO_OK);
    int ok = 0;
    if (m) proto_get_bool(proto_root(m), "ok", &ok);
    EXPECT(ok == 1);
    proto_msg_destroy(&m);
    g_stop = 1;
    pthread_join(th, NULL);
    EXPECT_MSG(g_rc == 0, "%s", g_err);
    zmq_close(c); zmq_close(wk); zmq_ctx_term(ctx);

    store *st = NULL;
    EXPECT(store_open(db, 1, 0, &st, err, sizeof err) == 0);
    if (st) {
        store_txn *t;
        store_txn_begin(st, 0, &t, err, sizeof err);
        inv iv = {0, {0}, t};
        store_tasks_each_txn(t, 0, inv_cb, &iv);
        EXPECT_EQ_INT(iv.bad, 0);
        store_job j;
        if (store_job_get(t, 1, &j) == 0) {
            EXPECT(j.tasks_ready == iv.cnt[0] && j.tasks_leased == iv.cnt[1] && j.tasks_done == iv.cnt[2] &&
                   j.tasks_failed == iv.cnt[3] && j.tasks_cancelled == iv.cnt[4]);
            EXPECT(j.samples_done <= 18);
            store_job_free(&j);
        }
        store_txn_abort(&t);
        store_close(&st);
    }
    unit_rmrf(dir);
    free(dir);
}

int main(void) {
    log_set_level(LOG_LVL_OFF);
    RUN(fuzz_running_broker);
    return unit_summary();
}
