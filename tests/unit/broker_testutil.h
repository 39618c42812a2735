/* tests/unit/broker_testutil.h — what the in-process broker tests share (header-only; include
 * once per test file): the broker run on a thread (broker_thread with g_cfg, g_stop, g_run_rc,
 * g_run_err), DEALER sockets in g_zctx, request/response over the wire protocol with heartbeats
 * skipped, and field accessors that tolerate a NULL message (so a missing answer fails an
 * assertion instead of crashing the test).
 */
#ifndef THINKFAST_BROKER_TESTUTIL_H
#define THINKFAST_BROKER_TESTUTIL_H

#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker/broker.h"
#include "jobs/proto.h"

static brk_config g_cfg;
static volatile sig_atomic_t g_stop;
static int g_run_rc;
static char g_run_err[512];
static void *g_zctx;

/* pthread entry: runs the broker with g_cfg until g_stop; the result lands in g_run_rc/g_run_err. */
static inline void *broker_thread(void *arg) {
    (void)arg;
    g_run_rc = brk_run(&g_cfg, &g_stop, g_run_err, sizeof g_run_err);
    return NULL;
}

/* A DEALER connected to ep (linger 0, 3 s receive timeout). */
static inline void *dealer(const char *ep) {
    void *s = zmq_socket(g_zctx, ZMQ_DEALER);
    int z = 0, tmo = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &z, sizeof z);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_connect(s, ep);
    return s;
}

/* The next message whose cmd is not "heartbeat", or NULL after timeout_ms. */
static inline proto_msg *recv_msg(void *s, int timeout_ms) {
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms);
    for (;;) {
        proto_msg *m = NULL;
        char err[256];
        if (proto_recv(s, 0, NULL, 0, NULL, &m, 0, err, sizeof err) != PROTO_OK) return NULL;
        if (strcmp(proto_cmd(m), "heartbeat") != 0) return m;
        proto_msg_destroy(&m);
    }
}

/* Sends w (destroyed) and returns the answer, or NULL after 5 s. */
static inline proto_msg *request(void *c, proto_writer *w) {
    proto_send(c, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    return recv_msg(c, 5000);
}

static inline proto_msg *status(void *c, const char *job) {
    proto_writer *w = proto_writer_new("status", 1);
    proto_w_key(w, "job"); proto_w_str(w, job);
    return request(c, w);
}

/* Field accessors: "(none)", 0 and -1 when the message or the field is missing. */
static inline const char *str_of(const proto_msg *m, const char *key) {
    const char *s = NULL;
    if (m) proto_get_str(proto_root(m), key, &s, NULL);
    return s ? s : "(none)";
}
static inline uint64_t u64_of(const proto_msg *m, const char *key) {
    uint64_t x = 0;
    if (m) proto_get_u64(proto_root(m), key, &x);
    return x;
}
static inline int ok_of(const proto_msg *m) {
    int ok = -1;
    if (m) proto_get_bool(proto_root(m), "ok", &ok);
    return ok;
}

#endif
