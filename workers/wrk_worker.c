/* workers/wrk_worker.c — the worker event loop (see wrk_worker.h). */
#include "workers/wrk_worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "common/check.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "workers/wrk_conn.h"
#include "workers/wrk_roles.h"
#include "workers/wrk_task.h"

#define WRK_FLUSH_MS 1000      /* partial outputs older than this are sent even if small */
#define WRK_POLL_MAX_MS 1000

typedef struct wrk_state {
    const wrk_worker_cfg *cfg;
    wrk_conn *conn;
    wrk_runner *runner;
    wrk_task **queue;          /* leased, not yet started (FIFO) */
    int n_queue, cap_queue;
    int need_reconnect;
    int64_t reconnect_at_ms;
    int64_t last_flush_ms, last_progress_ms;
    uint64_t tasks_done, tasks_failed;
    util_buf items;
} wrk_state;

static void queue_push(wrk_state *s, wrk_task *t) {
    if (s->n_queue == s->cap_queue) {
        s->cap_queue = s->cap_queue ? 2 * s->cap_queue : 8;
        s->queue = xrealloc(s->queue, (size_t)s->cap_queue * sizeof *s->queue);
    }
    s->queue[s->n_queue++] = t;
}

static wrk_task *queue_pop(wrk_state *s) {
    if (!s->n_queue) return NULL;
    wrk_task *t = s->queue[0];
    memmove(s->queue, s->queue + 1, (size_t)(s->n_queue - 1) * sizeof *s->queue);
    s->n_queue--;
    return t;
}

static void drop_all_tasks(wrk_state *s, const char *why) {
    if (s->n_queue || wrk_runner_busy(s->runner))
        LOG_WARN("dropping %d queued task(s)%s: %s", s->n_queue, wrk_runner_busy(s->runner) ? " and the running one" : "", why);
    for (int i = 0; i < s->n_queue; i++) wrk_task_destroy(&s->queue[i]);
    s->n_queue = 0;
    wrk_runner_cancel(s->runner);
}

static void schedule_reconnect(wrk_state *s, const char *why) {
    if (s->need_reconnect) return;
    drop_all_tasks(s, why);
    int delay = wrk_conn_backoff_next(s->conn);
    LOG_WARN("%s: reconnecting in %d ms", why, delay);
    s->need_reconnect = 1;
    s->reconnect_at_ms = util_now_ms() + delay;
}

static void send_result(wrk_state *s, const wrk_task *t, int final, const util_buf *items, uint32_t n_items) {
    proto_writer *w = proto_writer_new("result", final ? 5 : 4);
    proto_w_key(w, "task"); proto_w_u64(w, t->id);
    proto_w_key(w, "attempt"); proto_w_u64(w, t->attempt);
    proto_w_key(w, "final"); proto_w_bool(w, final);
    proto_w_key(w, "outputs"); proto_w_array(w, n_items);
    if (n_items) proto_w_raw(w, items->data, items->len);
    if (final) {
        uint64_t done, total, emitted;
        wrk_runner_progress(s->runner, &done, &total, &emitted);
        proto_w_key(w, "telemetry");
        proto_w_map(w, 6);
        proto_w_key(w, "role"); proto_w_str(w, s->cfg->role);
        proto_w_key(w, "worker"); proto_w_str(w, s->cfg->id);
        proto_w_key(w, "outputs"); proto_w_u64(w, emitted); /* counters stay until the next start */
        proto_w_key(w, "tokens"); proto_w_u64(w, t->tokens);
        proto_w_key(w, "compute_s"); proto_w_f64(w, t->compute_s);
        proto_w_key(w, "wall_s"); proto_w_f64(w, (double)(util_now_ms() - t->received_ms) / 1000.0);
    }
    if (wrk_conn_send(s->conn, w) != 0) schedule_reconnect(s, "cannot send result");
    proto_writer_destroy(&w);
}

static void send_fail(wrk_state *s, const wrk_task *t, const char *error) {
    proto_writer *w = proto_writer_new("fail", 3);
    proto_w_key(w, "task"); proto_w_u64(w, t->id);
    proto_w_key(w, "attempt"); proto_w_u64(w, t->attempt);
    proto_w_key(w, "error"); proto_w_str(w, error);
    if (wrk_conn_send(s->conn, w) != 0) schedule_reconnect(s, "cannot send fail");
    proto_writer_destroy(&w);
}

/* Moves whatever the runner has into result / fail messages. */
static void pump_runner(wrk_state *s) {
    for (;;) {
        int64_t now = util_now_ms();
        int force = now - s->last_flush_ms >= WRK_FLUSH_MS;
        wrk_task *fin = NULL;
        uint32_t n = 0;
        char err[1024] = "";
        s->items.len = 0;
        wrk_task *cur = wrk_runner_task(s->runner);
        int r = wrk_runner_take(s->runner, force, WRK_RESULT_BYTES, &s->items, &n, &fin, err, sizeof err);
        if (r == WRK_TAKE_NONE) return;
        if (r == WRK_TAKE_PARTIAL) {
            if (!s->need_reconnect) send_result(s, cur, 0, &s->items, n);
            s->last_flush_ms = now;
            continue;
        }
        if (r == WRK_TAKE_DONE) {
            if (!s->need_reconnect) send_result(s, fin, 1, &s->items, n);
            s->tasks_done++;
            LOG_DEBUG("task %llu done in %lld ms", (unsigned long long)fin->id, (long long)(now - fin->received_ms));
        } else if (r == WRK_TAKE_FAILED) {
            LOG_WARN("task %llu (%s, attempt %llu) failed: %s", (unsigned long long)fin->id, fin->kind,
                     (unsigned long long)fin->attempt, err);
            if (!s->need_reconnect) send_fail(s, fin, err);
            s->tasks_failed++;
        } else {
            LOG_INFO("task %llu cancelled", (unsigned long long)fin->id);
        }
        wrk_task_destroy(&fin);
        s->last_flush_ms = now;
        return;
    }
}

static void handle_msg(wrk_state *s, proto_msg **mp) {
    const char *cmd = proto_cmd(*mp);
    const proto_val *root = proto_root(*mp);
    if (strcmp(cmd, "task") == 0) {
        char err[256];
        wrk_task *t = NULL;
        if (wrk_task_from_msg(mp, &t, err, sizeof err) != 0) { LOG_WARN("bad task message: %s", err); return; }
        if (strcmp(t->kind, s->cfg->role) != 0) {
            LOG_WARN("task %llu has kind %s but this worker's role is %s: refusing", (unsigned long long)t->id, t->kind, s->cfg->role);
            char e[160];
            snprintf(e, sizeof e, "worker %s has role %s, cannot run a %s task", s->cfg->id, s->cfg->role, t->kind);
            send_fail(s, t, e);
            wrk_task_destroy(&t);
            return;
        }
        LOG_DEBUG("task %llu (%s, job %s, attempt %llu)", (unsigned long long)t->id, t->kind, t->job, (unsigned long long)t->attempt);
        queue_push(s, t);
    } else if (strcmp(cmd, "cancel") == 0) {
        uint64_t id;
        if (proto_get_u64(root, "task", &id) != 0) { LOG_WARN("cancel without task id"); return; }
        wrk_task *cur = wrk_runner_task(s->runner);
        if (cur && cur->id == id) wrk_runner_cancel(s->runner);
        for (int i = 0; i < s->n_queue; i++)
            if (s->queue[i]->id == id) {
                wrk_task_destroy(&s->queue[i]);
                memmove(s->queue + i, s->queue + i + 1, (size_t)(s->n_queue - i - 1) * sizeof *s->queue);
                s->n_queue--;
                i--;
            }
        LOG_INFO("task %llu cancelled by the broker", (unsigned long long)id);
    } else if (strcmp(cmd, "reregister") == 0) {
        schedule_reconnect(s, "broker asked to re-register");
        s->reconnect_at_ms = util_now_ms(); /* the broker is up: no need to wait */
    } else if (strcmp(cmd, "heartbeat") == 0 || strcmp(cmd, "ack") == 0) {
        /* liveness only */
    } else if (strcmp(cmd, "error") == 0) {
        const char *e;
        uint32_t n;
        LOG_WARN("broker error: %s", proto_get_str(root, "error", &e, &n) == 0 ? e : "(no text)");
    } else {
        LOG_WARN("unknown command \"%s\" from the broker: ignored", cmd);
    }
}

int wrk_worker_run(const wrk_worker_cfg *cfg, volatile sig_atomic_t *stop) {
    void *zctx = zmq_ctx_new();
    CHECK(zctx != NULL, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    wrk_conn_cfg cc = {.endpoint = cfg->endpoint, .id = cfg->id, .role = cfg->role, .credit = cfg->credit,
                       .host = cfg->host, .pid = (int64_t)getpid(), .heartbeat_ms = cfg->heartbeat_ms,
                       .curve = cfg->curve};
    int hb = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : PROTO_HEARTBEAT_MS;
    wrk_roles *roles = wrk_roles_new();
    wrk_state s = {.cfg = cfg};
    s.conn = wrk_conn_new(zctx, &cc);
    s.runner = wrk_runner_new(wrk_roles_run, roles);
    util_buf_init(&s.items);
    int orc = wrk_conn_open(s.conn);
    if (orc == -2) {
        if (cfg->curve)
            fprintf(stderr, "worker: --connect %s: cannot set up the connection (an invalid endpoint, or CURVE options "
                            "libzmq rejected: see the error above)\n", cfg->endpoint);
        else
            fprintf(stderr, "worker: --connect %s: not a valid ZeroMQ endpoint (e.g. tcp://127.0.0.1:5556)\n", cfg->endpoint);
        wrk_runner_destroy(&s.runner);
        wrk_roles_destroy(&roles);
        wrk_conn_destroy(&s.conn, 0);
        util_buf_free(&s.items);
        zmq_ctx_term(zctx);
        return 2;
    }
    if (orc != 0) schedule_reconnect(&s, "cannot connect");

    while (!*stop) {
        int64_t now = util_now_ms();
        if (s.need_reconnect && now >= s.reconnect_at_ms && !wrk_runner_busy(s.runner)) {
            s.need_reconnect = 0;
            if (wrk_conn_open(s.conn) != 0) schedule_reconnect(&s, "cannot connect");
        }
        void *sock = wrk_conn_socket(s.conn);
        zmq_pollitem_t items[2] = {{.socket = s.need_reconnect ? NULL : sock, .fd = -1, .events = ZMQ_POLLIN},
                                   {.socket = NULL, .fd = wrk_runner_fd(s.runner), .events = ZMQ_POLLIN}};
        int n_items = 2;
        if (!items[0].socket) { items[0] = items[1]; n_items = 1; }
        long timeout = s.need_reconnect ? (long)(s.reconnect_at_ms - now) : wrk_conn_next_beat_ms(s.conn, now);
        if (wrk_runner_busy(s.runner)) {
            long f = (long)(s.last_flush_ms + WRK_FLUSH_MS - now);
            if (f < timeout) timeout = f;
        }
        if (timeout < 0) timeout = 0;
        if (timeout > WRK_POLL_MAX_MS) timeout = WRK_POLL_MAX_MS;
        int rc = zmq_poll(items, n_items, timeout);
        if (rc < 0 && zmq_errno() != EINTR) { LOG_ERROR("zmq_poll: %s", zmq_strerror(zmq_errno())); break; }
        if (*stop) break;
        if (!s.need_reconnect && sock) {
            for (int i = 0; i < 1000; i++) {
                proto_msg *m = NULL;
                char err[256];
                int r = proto_recv(sock, 0, NULL, 0, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
                if (r == 1) break;
                wrk_conn_heard(s.conn);
                if (r != PROTO_OK) {
                    LOG_WARN("malformed message from the broker dropped: %s", err);
                    if (r == PROTO_ERR_SOCKET) break;
                    continue;
                }
                handle_msg(&s, &m);
                proto_msg_destroy(&m);
                if (s.need_reconnect) break;
            }
        }
        wrk_runner_clear_fd(s.runner);
        pump_runner(&s);
        if (!wrk_runner_busy(s.runner) && s.n_queue && !s.need_reconnect) {
            wrk_task *t = queue_pop(&s);
            s.last_flush_ms = s.last_progress_ms = util_now_ms();
            wrk_runner_start(s.runner, &t);
        }
        now = util_now_ms();
        if (!s.need_reconnect) {
            wrk_task *cur = wrk_runner_task(s.runner);
            if (cur && now - s.last_progress_ms >= hb) {
                uint64_t done, total, emitted;
                wrk_runner_progress(s.runner, &done, &total, &emitted);
                proto_writer *w = proto_writer_new("progress", 3);
                proto_w_key(w, "task"); proto_w_u64(w, cur->id);
                proto_w_key(w, "done"); proto_w_u64(w, done);
                proto_w_key(w, "total"); proto_w_u64(w, total);
                if (wrk_conn_send(s.conn, w) != 0) schedule_reconnect(&s, "cannot send progress");
                proto_writer_destroy(&w);
                s.last_progress_ms = now;
            }
            if (!s.need_reconnect && wrk_conn_tick(s.conn, now) != 0) schedule_reconnect(&s, "cannot send heartbeat");
            if (!s.need_reconnect && wrk_conn_silent(s.conn, now)) schedule_reconnect(&s, "broker silent");
        }
    }

    LOG_INFO("stopping: %llu task(s) done, %llu failed", (unsigned long long)s.tasks_done, (unsigned long long)s.tasks_failed);
    drop_all_tasks(&s, "shutting down");
    if (wrk_conn_socket(s.conn) && !s.need_reconnect) {
        proto_writer *w = proto_writer_new("disconnect", 1);
        proto_w_key(w, "worker"); proto_w_str(w, cfg->id);
        wrk_conn_send(s.conn, w);
        proto_writer_destroy(&w);
    }
    wrk_conn_destroy(&s.conn, 500);
    /* A role stuck inside a long backend call cannot be interrupted: do not wait for it. */
    int64_t deadline = util_now_ms() + 2000;
    while (wrk_runner_busy(s.runner) && util_now_ms() < deadline) {
        pump_runner(&s);
        usleep(10000);
    }
    int clean = !wrk_runner_busy(s.runner);
    if (clean) {
        wrk_runner_destroy(&s.runner);
        wrk_roles_destroy(&roles);
    }
    free(s.queue);
    util_buf_free(&s.items);
    zmq_ctx_term(zctx);
    return 0;
}
