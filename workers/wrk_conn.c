/* workers/wrk_conn.c — DEALER socket lifecycle, registration, heartbeats, back-off, CURVE. */
#include "workers/wrk_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "broker/zap.h"
#include "common/util.h"

struct wrk_conn {
    void *zctx;
    wrk_conn_cfg cfg;
    void *sock;
    void *mon;              /* PAIR end of sock's handshake monitor (NULL when unavailable) */
    int mon_logged;         /* a handshake failure was logged for the current socket */
    int auth_failures;
    int64_t last_heard_ms;
    int64_t last_beat_ms;
    int backoff_ms;
    int opens;
};

wrk_conn *wrk_conn_new(void *zctx, const wrk_conn_cfg *cfg) {
    wrk_conn *c = xcalloc(1, sizeof *c);
    c->zctx = zctx;
    c->cfg = *cfg;
    if (c->cfg.heartbeat_ms <= 0) c->cfg.heartbeat_ms = PROTO_HEARTBEAT_MS;
    c->backoff_ms = WRK_BACKOFF_MIN_MS;
    return c;
}

static void close_sock(wrk_conn *c, int linger_ms) {
    if (c->mon) {
        int zero = 0;
        zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(c->mon);
        c->mon = NULL;
    }
    if (!c->sock) return;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    zmq_close(c->sock);
    c->sock = NULL;
}

void wrk_conn_destroy(wrk_conn **cp, int linger_ms) {
    if (!cp || !*cp) return;
    close_sock(*cp, linger_ms);
    free(*cp);
    *cp = NULL;
}

int wrk_conn_open(wrk_conn *c) {
    close_sock(c, 0);
    c->opens++;
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    if (!c->sock) { LOG_ERROR("zmq_socket: %s", zmq_strerror(zmq_errno())); return -1; }
    int64_t maxmsg = PROTO_MAX_BODY + 1024;
    int zero = 0, hwm = 200, sndto = WRK_SEND_TIMEOUT_MS, ivl = 100;
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &sndto, sizeof sndto);
    zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    if (c->cfg.curve) {
        char err[256];
        if (zkey_apply_client(c->sock, c->cfg.curve, err, sizeof err) != 0) {
            LOG_ERROR("%s", err);
            close_sock(c, 0);
            return -2;
        }
    }
    /* handshake monitor: the only place a refusal by the broker becomes visible */
    c->mon_logged = 0;
    c->mon = zap_monitor_open(c->zctx, c->sock);
    if (zmq_connect(c->sock, c->cfg.endpoint) != 0) {
        int e = zmq_errno();
        LOG_ERROR("connect %s: %s", c->cfg.endpoint, zmq_strerror(e));
        close_sock(c, 0);
        return e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO ? -2 : -1;
    }
    int64_t now = util_now_ms();
    c->last_heard_ms = now;
    c->last_beat_ms = now;
    proto_writer *w = proto_writer_new("ready", 5);
    proto_w_key(w, "worker"); proto_w_str(w, c->cfg.id);
    proto_w_key(w, "role"); proto_w_str(w, c->cfg.role);
    proto_w_key(w, "credit"); proto_w_u64(w, (uint64_t)c->cfg.credit);
    proto_w_key(w, "host"); proto_w_str(w, c->cfg.host);
    proto_w_key(w, "pid"); proto_w_i64(w, c->cfg.pid);
    int rc = proto_send(c->sock, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    if (rc != 0) { LOG_WARN("send ready: %s", zmq_strerror(zmq_errno())); return -1; }
    LOG_INFO("connected to %s as %s (role %s, credit %d, %s)%s", c->cfg.endpoint, c->cfg.id, c->cfg.role,
             c->cfg.credit, c->cfg.curve ? "CURVE" : "plaintext", c->opens > 1 ? " [re-registered]" : "");
    return 0;
}

void *wrk_conn_socket(const wrk_conn *c) { return c->sock; }

int wrk_conn_send(wrk_conn *c, const proto_writer *w) {
    if (!c->sock) return -1;
    if (proto_send(c->sock, NULL, 0, w, 0) != 0) {
        LOG_WARN("send to broker failed: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    c->last_beat_ms = util_now_ms(); /* any message is a heartbeat */
    return 0;
}

void wrk_conn_heard(wrk_conn *c) {
    c->last_heard_ms = util_now_ms();
    c->backoff_ms = WRK_BACKOFF_MIN_MS;
}

int wrk_conn_silent(const wrk_conn *c, int64_t now_ms) {
    return now_ms - c->last_heard_ms > (int64_t)WRK_DEAD_BEATS * c->cfg.heartbeat_ms;
}

/* Reads pending monitor events; logs the first handshake failure of this socket. */
static void drain_monitor(wrk_conn *c) {
    uint16_t event;
    uint32_t value;
    for (int i = 0; i < 64 && zap_monitor_read(c->mon, &event, &value); i++) {
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) c->auth_failures++;
        if (c->mon_logged) continue;
        c->mon_logged = 1;
        char what[160];
        zap_handshake_describe(event, value, what, sizeof what);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            LOG_ERROR("the broker at %s refused us (%s): is our public key %s in its --allow-keys file?",
                      c->cfg.endpoint, what, c->cfg.curve ? c->cfg.curve->mine.public_z85 : "(none: plaintext)");
        else
            LOG_ERROR("handshake with %s failed: %s: %s", c->cfg.endpoint, what,
                      c->cfg.curve ? "wrong --curve-server-key, or the broker does not use CURVE?"
                                   : "the broker probably requires CURVE (--curve-server-key, --curve-keyfile)");
    }
}

int wrk_conn_auth_failures(const wrk_conn *c) { return c->auth_failures; }

int wrk_conn_tick(wrk_conn *c, int64_t now_ms) {
    drain_monitor(c);
    if (now_ms - c->last_beat_ms < c->cfg.heartbeat_ms) return 0;
    proto_writer *w = proto_writer_new("heartbeat", 2);
    proto_w_key(w, "worker"); proto_w_str(w, c->cfg.id);
    proto_w_key(w, "credit"); proto_w_u64(w, (uint64_t)c->cfg.credit);
    int rc = wrk_conn_send(c, w);
    proto_writer_destroy(&w);
    c->last_beat_ms = now_ms;
    return rc;
}

int wrk_conn_next_beat_ms(const wrk_conn *c, int64_t now_ms) {
    int64_t d = c->last_beat_ms + c->cfg.heartbeat_ms - now_ms;
    return d < 0 ? 0 : (int)d;
}

int wrk_conn_backoff_next(wrk_conn *c) {
    int d = c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > WRK_BACKOFF_MAX_MS ? WRK_BACKOFF_MAX_MS : c->backoff_ms * 2;
    return d;
}

int wrk_conn_opens(const wrk_conn *c) { return c->opens; }
