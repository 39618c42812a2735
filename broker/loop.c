/* broker/loop.c — the broker's event loop: sockets, batching + group commit, the worker side of
 * the protocol, lease expiry, dispatch, and sending after commit (broker/broker.h).
 *
 * Replay safety: a batch runs inside store_write(), which may call it again after growing the
 * map. Everything a batch changes outside the transaction is the worker registry (restored from
 * a snapshot taken before the first run) and the outbox (cleared); the inbox is only read.
 *
 * Store full (broker.h): a batch whose write fails because the store is full is undone the same
 * way (registry from the snapshot, outbox cleared) and its messages run again in "full mode":
 * one read transaction, nothing written; whatever needs a write later (re-queueing a task whose
 * result was refused, a `fail`, the leases of a worker that re-registered or left, restart
 * recovery) goes on the deferred list, which the first batch that commits applies before its
 * messages. A deferred entry is only kept while it names a live lease, so the list is bounded
 * by the number of leases.
 */
#include "broker/broker.h"

#include "broker/clients.h"
#include "broker/payload.h"
#include "broker/registry.h"
#include "broker/taskq.h"
#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void brk_config_defaults(brk_config *c) {
    memset(c, 0, sizeof *c);
    c->db = "thinkfast.db";
    c->clients_ep = "tcp://127.0.0.1:5555";
    c->workers_ep = "tcp://127.0.0.1:5556";
    c->lease_ms = PROTO_LEASE_MS;
    c->max_attempts = BRK_DEFAULT_MAX_ATTEMPTS;
    c->group_commit_ms = BRK_DEFAULT_GROUP_COMMIT_MS;
    c->max_batch = BRK_DEFAULT_MAX_BATCH;
    c->nosync = 0;
    c->map_bytes = STORE_DEFAULT_MAP_BYTES;
    c->map_max_bytes = 0;
    c->full_retry_ms = BRK_DEFAULT_FULL_RETRY_MS;
}

typedef struct in_msg {
    int from_workers;
    uint8_t ident[BRK_IDENT_MAX];
    size_t ident_len;
    proto_msg *m;          /* NULL when malformed */
    char err[256];         /* why it was malformed */
} in_msg;

typedef struct out_msg {
    int to_workers;
    uint8_t ident[BRK_IDENT_MAX];
    size_t ident_len;
    proto_writer *w;
    uint64_t task;         /* `task` messages: re-queue the task if it cannot be delivered */
    char worker[64];
} out_msg;

typedef struct { uint64_t task; char worker[64]; } undelivered;

/* Work a full store could not record, applied by the next batch that commits. */
enum { DEF_REQUEUE_TASK = 1,  /* task's result was refused: re-queue (uncounted), cancel the holder */
       DEF_FAIL = 2,          /* a `fail` for task's current lease */
       DEF_WORKER_GONE = 3,   /* worker re-registered / disconnected: re-queue its old leases */
       DEF_RECOVER = 4 };     /* restart recovery could not be written */
typedef struct deferred {
    int kind;
    uint64_t task;
    uint32_t attempt;
    int mark_gone;            /* DEF_WORKER_GONE: mirror the worker as "gone" unless registered again */
    char worker[64];
    char error[256];
} deferred;

/* A batch stops collecting once its parsed messages hold this much memory (results are up to
 * ~1 MB each; the count cap alone would allow gigabytes). */
#define BRK_MAX_BATCH_BYTES ((size_t)256 << 20)

typedef struct brk_loop {
    const brk_config *cfg;
    store *st;
    void *zctx, *cli, *wrk;
    zap_handler *zap;              /* NULL unless CURVE with an allow-list */
    void *cli_mon, *wrk_mon;       /* handshake monitors (CURVE only; NULL otherwise) */
    int64_t hs_window_ms;
    uint32_t hs_logged, hs_suppressed;
    brk_registry reg, snap;
    in_msg *in;
    uint32_t n_in;
    out_msg *out;
    uint32_t n_out, cap_out;
    undelivered *undel, *undel_next;
    uint32_t n_undel, n_undel_next, cap_undel;
    size_t in_bytes;               /* memory held by the inbox's parsed messages */
    int run_count;                 /* runs of the current batch (replays after map growth) */
    int timers_due;
    brk_batch *b;
    brk_client_env cenv;
    /* store-full state */
    int full;                      /* 1 while writes fail because the store is full */
    int full_run;                  /* the current run is a read-only full-mode run */
    char full_msg[768];            /* "store full: ..." for clients and workers */
    int64_t full_since_ms, full_retry_at_ms, full_logged_ms, full_left_ms;
    int full_backoff;              /* retry interval multiplier while the store flaps at its limit */
    uint64_t full_entries, full_refused_results, full_refused_cmds;
    deferred *def;
    uint32_t n_def, cap_def;
    /* counters */
    uint64_t batches, msgs, tasks_sent, bad_msgs;
    int64_t bad_window_ms;
    uint32_t bad_logged, bad_suppressed;
} brk_loop;

/* ---------------------------------------------------------------- outbox */

static out_msg *out_push(brk_loop *L, int to_workers, const void *ident, size_t len, proto_writer *w) {
    if (L->n_out == L->cap_out) {
        L->cap_out = L->cap_out ? L->cap_out * 2 : 256;
        L->out = xrealloc(L->out, L->cap_out * sizeof *L->out);
    }
    out_msg *o = &L->out[L->n_out++];
    o->to_workers = to_workers;
    memcpy(o->ident, ident, len);
    o->ident_len = len;
    o->w = w;
    o->task = 0;
    o->worker[0] = 0;
    return o;
}

static void out_clear(brk_loop *L) {
    for (uint32_t i = 0; i < L->n_out; i++) proto_writer_destroy(&L->out[i].w);
    L->n_out = 0;
}

static void worker_error(brk_loop *L, const void *ident, size_t len, uint64_t task, const char *msg) {
    proto_writer *w = proto_writer_new("error", task ? 2 : 1);
    proto_w_key(w, "error"); proto_w_str(w, msg);
    if (task) { proto_w_key(w, "task"); proto_w_u64(w, task); }
    out_push(L, 1, ident, len, w);
}

/* ---------------------------------------------------------------- deferred work (store full) */

static deferred *def_push(brk_loop *L, int kind, uint64_t task, const char *worker) {
    for (uint32_t i = 0; i < L->n_def; i++) {   /* one entry per (kind, task, worker) */
        deferred *d = &L->def[i];
        if (d->kind == kind && d->task == task && strcmp(d->worker, worker ? worker : "") == 0) return d;
    }
    if (L->n_def == L->cap_def) {
        L->cap_def = L->cap_def ? L->cap_def * 2 : 64;
        L->def = xrealloc(L->def, L->cap_def * sizeof *L->def);
    }
    deferred *d = &L->def[L->n_def++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->task = task;
    snprintf(d->worker, sizeof d->worker, "%s", worker ? worker : "");
    return d;
}

/* 1 when task's current lease is held by worker (read in the batch's transaction). */
static int holds_lease(brk_loop *L, uint64_t task, const char *worker) {
    store_task x;
    return store_task_get(L->b->txn, task, &x) == STORE_OK && x.state == BRK_TASK_LEASED &&
           strcmp(x.worker, worker) == 0;
}

typedef struct { const char *worker; int found; } lease_probe;
static int probe_lease(const store_lease *l, void *ctx) {
    lease_probe *p = ctx;
    if (strcmp(l->worker, p->worker) == 0) { p->found = 1; return 1; }
    return 0;
}

/* Full mode: the leases of `worker` are void (re-registration, disconnect); re-queue them later. */
static void def_worker_gone(brk_loop *L, const char *worker, int mark_gone) {
    lease_probe p = {worker, 0};
    store_leases_each_txn(L->b->txn, probe_lease, &p);
    if (p.found || mark_gone) def_push(L, DEF_WORKER_GONE, 0, worker)->mark_gone = mark_gone;
}

static int mirror_worker(brk_loop *L, const struct brk_worker *w, const char *state);
static int recover_in_batch(brk_batch *b, int *n_requeued);

/* Applies the deferred list at the start of a batch that will commit (replay-safe: the list is
 * only read here and cleared by the loop after the commit). */
static int apply_deferred(brk_loop *L) {
    int rc = 0;
    for (uint32_t i = 0; !rc && i < L->n_def; i++) {
        deferred *d = &L->def[i];
        switch (d->kind) {
        case DEF_RECOVER: {
            int n = 0;
            rc = recover_in_batch(L->b, &n);
            if (!rc && n) LOG_INFO("loop: recovery re-queued %d leased task(s) from the previous run", n);
            break;
        }
        case DEF_REQUEUE_TASK:
            if (!holds_lease(L, d->task, d->worker)) break;
            rc = taskq_requeue_task(L->b, d->task, d->worker, "its result could not be stored (store full): redo");
            if (!rc) {
                brk_worker *w = brk_registry_by_id(&L->reg, d->worker);
                if (w) {   /* the holder may still be streaming a result with a hole: stop it */
                    proto_writer *m = proto_writer_new("cancel", 1);
                    proto_w_key(m, "task"); proto_w_u64(m, d->task);
                    out_push(L, 1, w->ident, w->ident_len, m);
                }
            }
            break;
        case DEF_FAIL:
            rc = taskq_fail(L->b, d->worker, d->task, d->attempt, d->error);
            break;
        case DEF_WORKER_GONE: {
            int n = taskq_requeue_worker(L->b, d->worker, 0, "worker re-registered or left while the store was full");
            rc = n < 0 ? n : 0;
            if (!rc && d->mark_gone && !brk_registry_by_id(&L->reg, d->worker)) {
                store_worker sw;
                if (store_worker_get(L->b->txn, d->worker, &sw) == STORE_OK) {
                    snprintf(sw.state, sizeof sw.state, "gone");
                    rc = store_worker_put(L->b->txn, &sw);
                }
            }
            break;
        }
        }
    }
    /* the registry changed in memory while full: bring the store's mirror up to date */
    if (!rc && (L->n_def || L->full)) {
        for (int i = 0; !rc && i < L->reg.n; i++) rc = mirror_worker(L, &L->reg.w[i], "up");
    }
    return rc;
}

/* ---------------------------------------------------------------- effects */

static void on_lease_ended(void *ctx, const char *worker, uint64_t task, int send_cancel) {
    brk_loop *L = ctx;
    brk_worker *w = brk_registry_by_id(&L->reg, worker);
    if (!w) return;
    if (w->leased) w->leased--;
    if (send_cancel) {
        proto_writer *m = proto_writer_new("cancel", 1);
        proto_w_key(m, "task"); proto_w_u64(m, task);
        out_push(L, 1, w->ident, w->ident_len, m);
    }
}

/* ---------------------------------------------------------------- workers */

static int mirror_worker(brk_loop *L, const brk_worker *w, const char *state) {
    if (L->full_run) return 0;   /* read-only run: mirrored by the first batch that commits */
    store_worker sw;
    memset(&sw, 0, sizeof sw);
    snprintf(sw.id, sizeof sw.id, "%s", w->id);
    snprintf(sw.role, sizeof sw.role, "%s", brk_kind_name(w->kind));
    snprintf(sw.host, sizeof sw.host, "%s", w->host);
    sw.pid = w->pid;
    sw.credit = w->credit;
    sw.leased = w->leased;
    sw.registered_ms = w->registered_wall_ms;
    sw.last_seen_ms = w->last_seen_wall_ms;
    snprintf(sw.state, sizeof sw.state, "%s", state);
    return store_worker_put(L->b->txn, &sw);
}

static int worker_ready(brk_loop *L, const in_msg *im, brk_worker *w) {
    const proto_val *r = proto_root(im->m);
    const char *id, *role, *host = "";
    uint32_t idl;
    uint64_t credit;
    int64_t pid = 0;
    if (proto_get_str(r, "worker", &id, &idl) != 0 || idl == 0 || idl >= 64) {
        worker_error(L, im->ident, im->ident_len, 0, "ready: field worker: missing or not a string of 1..63 bytes");
        return 0;
    }
    int kind = proto_get_str(r, "role", &role, NULL) == 0 ? brk_kind_parse(role) : -1;
    if (kind < 0) {
        worker_error(L, im->ident, im->ident_len, 0, "ready: field role: expected sample|score|aggregate");
        return 0;
    }
    if (proto_get_u64(r, "credit", &credit) != 0 || credit < 1 || credit > 4096) {
        worker_error(L, im->ident, im->ident_len, 0, "ready: field credit: expected an integer 1..4096");
        return 0;
    }
    proto_get_str(r, "host", &host, NULL);
    proto_get_i64(r, "pid", &pid);
    int rc;
    if (w && strcmp(w->id, id) != 0) {
        /* same socket, new identity: treat as a fresh registration */
        if (L->full_run) def_worker_gone(L, w->id, 1);
        else if ((rc = taskq_requeue_worker(L->b, w->id, 0, "worker re-registered under a new id")) < 0) return rc;
        brk_registry_remove(&L->reg, w);
        w = NULL;
    }
    if (!w) {
        brk_worker *old = brk_registry_by_id(&L->reg, id);
        if (old) {
            /* the worker reconnected with a fresh socket: its old leases are void */
            if (L->full_run) def_worker_gone(L, old->id, 0);
            else if ((rc = taskq_requeue_worker(L->b, old->id, 0, "worker re-registered")) < 0) return rc;
            brk_registry_remove(&L->reg, old);
        }
        w = brk_registry_add(&L->reg, im->ident, im->ident_len);
        if (!w) return 0;
        snprintf(w->id, sizeof w->id, "%s", id);
        w->registered_wall_ms = L->b->now_ms;
        LOG_INFO("workers: %s registered (role %s, credit %llu, host %s, pid %lld)", id, brk_kind_name(kind),
                 (unsigned long long)credit, host, (long long)pid);
    }
    w->kind = kind;
    w->credit = (uint32_t)credit;
    snprintf(w->host, sizeof w->host, "%s", host);
    w->pid = pid;
    w->last_seen_ms = util_now_ms();
    w->last_seen_wall_ms = L->b->now_ms;
    return mirror_worker(L, w, "up");
}

static int worker_msg(brk_loop *L, const in_msg *im) {
    const char *cmd = proto_cmd(im->m);
    const proto_val *r = proto_root(im->m);
    brk_worker *w = brk_registry_by_ident(&L->reg, im->ident, im->ident_len);
    if (strcmp(cmd, "ready") == 0) return worker_ready(L, im, w);
    if (!w) {
        if (strcmp(cmd, "disconnect") == 0) return 0;
        LOG_DEBUG("workers: unknown peer sent %s: reregister", cmd);
        out_push(L, 1, im->ident, im->ident_len, proto_writer_new("reregister", 0));
        return 0;
    }
    w->last_seen_ms = util_now_ms();   /* any message extends every lease of the worker */
    w->last_seen_wall_ms = L->b->now_ms;
    char err[512] = "";
    if (strcmp(cmd, "heartbeat") == 0) {
        uint64_t credit;
        if (proto_get_u64(r, "credit", &credit) == 0 && credit >= 1 && credit <= 4096) w->credit = (uint32_t)credit;
        return 0;
    }
    if (strcmp(cmd, "progress") == 0) return 0;
    if (strcmp(cmd, "result") == 0) {
        uint64_t task;
        int final = 0;
        if (proto_get_u64(r, "task", &task) != 0) {
            worker_error(L, im->ident, im->ident_len, 0, "result: field task: missing or not an integer");
            return 0;
        }
        const proto_val *fv = proto_get(r, "final");
        if (fv && proto_get_bool(r, "final", &final) != 0) {
            worker_error(L, im->ident, im->ident_len, task, "result: field final: not a bool");
            return 0;
        }
        if (L->full_run) {
            /* cannot commit: no ack (the worker's `error` path); the task is re-queued and its
             * holder cancelled by the first batch that commits, so the refused outputs are redone */
            if (holds_lease(L, task, w->id)) def_push(L, DEF_REQUEUE_TASK, task, w->id);
            L->full_refused_results++;
            worker_error(L, im->ident, im->ident_len, task, L->full_msg);
            return 0;
        }
        const proto_val *outs = proto_get(r, "outputs");
        if (outs && outs->type == PV_NIL) outs = NULL;
        int rc = taskq_result(L->b, w->id, task, outs, final, err, sizeof err);
        if (rc < 0) return rc;
        /* w may have moved? no: taskq never adds/removes registry entries */
        if (rc == TASKQ_REJECT) {
            LOG_WARN("workers: %s: rejected result for task %llu: %s", w->id, (unsigned long long)task, err);
            worker_error(L, im->ident, im->ident_len, task, err);
            return 0;
        }
        proto_writer *a = proto_writer_new("ack", 2);
        proto_w_key(a, "task"); proto_w_u64(a, task);
        proto_w_key(a, "final"); proto_w_bool(a, final);
        out_push(L, 1, im->ident, im->ident_len, a);
        return 0;
    }
    if (strcmp(cmd, "fail") == 0) {
        uint64_t task, attempt = 0;
        const char *e = "";
        if (proto_get_u64(r, "task", &task) != 0) {
            worker_error(L, im->ident, im->ident_len, 0, "fail: field task: missing or not an integer");
            return 0;
        }
        proto_get_u64(r, "attempt", &attempt);
        proto_get_str(r, "error", &e, NULL);
        LOG_INFO("workers: %s: task %llu failed: %s", w->id, (unsigned long long)task, e);
        if (L->full_run) {   /* counted once the store has room (only if still the current lease) */
            if (holds_lease(L, task, w->id)) {
                deferred *d = def_push(L, DEF_FAIL, task, w->id);
                d->attempt = (uint32_t)attempt;
                snprintf(d->error, sizeof d->error, "%s", e);
            }
            return 0;
        }
        int rc = taskq_fail(L->b, w->id, task, (uint32_t)attempt, e);
        return rc < 0 ? rc : 0;
    }
    if (strcmp(cmd, "disconnect") == 0) {
        char id[64];
        snprintf(id, sizeof id, "%s", w->id);
        int rc = 0;
        if (L->full_run) def_worker_gone(L, id, 1);
        else rc = taskq_requeue_worker(L->b, id, 0, "worker disconnected");
        if (rc < 0) return rc;
        w = brk_registry_by_id(&L->reg, id);
        if (w) {
            if ((rc = mirror_worker(L, w, "gone"))) return rc;
            brk_registry_remove(&L->reg, w);
        }
        LOG_INFO("workers: %s disconnected", id);
        return 0;
    }
    snprintf(err, sizeof err, "unknown worker command \"%.64s\"", cmd);
    worker_error(L, im->ident, im->ident_len, 0, err);
    return 0;
}

/* ---------------------------------------------------------------- timers + dispatch */

static int expire_leases(brk_loop *L) {
    int64_t now = util_now_ms();
    for (int i = 0; i < L->reg.n;) {
        brk_worker *w = &L->reg.w[i];
        int64_t silent = now - w->last_seen_ms;
        if (silent <= (int64_t)L->cfg->lease_ms) { i++; continue; }
        char id[64], reason[160];
        snprintf(id, sizeof id, "%s", w->id);
        snprintf(reason, sizeof reason, "lease expired: worker %s silent for %lld ms", id, (long long)silent);
        LOG_WARN("workers: %s silent for %lld ms: dropping it and its leases", id, (long long)silent);
        int rc = taskq_requeue_worker(L->b, id, 1, reason);
        if (rc < 0) return rc;
        w = brk_registry_by_id(&L->reg, id);
        if (w) {
            if ((rc = mirror_worker(L, w, "gone"))) return rc;
            brk_registry_remove(&L->reg, w);   /* swaps the last entry into i: do not advance */
        }
    }
    return 0;
}

/* Leases ready tasks to workers with free credit, one task per worker per round, so that a
 * worker with a large credit does not take a whole queue while its peers idle. */
static int dispatch(brk_loop *L) {
    int empty[BRK_N_KINDS] = {0};
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = 0; i < L->reg.n; i++) {
            brk_worker *w = &L->reg.w[i];
            if (w->leased >= w->credit || w->kind <= 0 || w->kind >= BRK_N_KINDS || empty[w->kind]) continue;
            store_task x;
            int rc = taskq_lease(L->b, w->kind, w->id, &x);
            if (rc == STORE_ERR_NOTFOUND) { empty[w->kind] = 1; continue; }
            if (rc) return rc;
            store_job *j;
            if ((rc = taskq_job(L->b, x.job, &j))) return rc;
            char jid[24];
            store_job_id_format(j->id, jid, sizeof jid);
            proto_writer *m = proto_writer_new("task", 6);
            proto_w_key(m, "task"); proto_w_u64(m, x.id);
            proto_w_key(m, "attempt"); proto_w_u64(m, x.attempt);
            proto_w_key(m, "job"); proto_w_str(m, jid);
            proto_w_key(m, "kind"); proto_w_str(m, brk_kind_name(x.kind));
            proto_w_key(m, "lease_ms"); proto_w_u64(m, L->cfg->lease_ms);
            proto_w_key(m, "payload");
            if ((rc = payload_write(L->b->txn, j, &x, m))) { proto_writer_destroy(&m); return rc; }
            out_msg *o = out_push(L, 1, w->ident, w->ident_len, m);
            o->task = x.id;
            snprintf(o->worker, sizeof o->worker, "%s", w->id);
            w->leased++;
            progress = 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- the batch */

static int run_batch(store_txn *t, void *ctx) {
    brk_loop *L = ctx;
    if (L->run_count++ > 0) {
        brk_registry_copy(&L->reg, &L->snap);   /* replay: undo the previous run */
        out_clear(L);
    }
    brk_batch b;
    brk_fx fx = {on_lease_ended, L};
    taskq_batch_init(&b, t, util_wall_ms(), &fx);
    L->b = &b;
    L->full_run = 0;
    L->cenv.store_full = NULL;
    int rc = apply_deferred(L);
    for (uint32_t i = 0; !rc && i < L->n_undel; i++)
        rc = taskq_requeue_task(&b, L->undel[i].task, L->undel[i].worker, "task message could not be delivered");
    for (uint32_t i = 0; !rc && i < L->n_in; i++) {
        in_msg *im = &L->in[i];
        if (!im->m) {
            if (im->from_workers) worker_error(L, im->ident, im->ident_len, 0, im->err);
            else out_push(L, 0, im->ident, im->ident_len, brk_client_error("error", NULL, im->err));
            continue;
        }
        if (im->from_workers) {
            rc = worker_msg(L, im);
        } else {
            int fatal = 0;
            proto_writer *w = brk_client_handle(&b, &L->cenv, im->m, &fatal);
            out_push(L, 0, im->ident, im->ident_len, w);
            rc = fatal;
        }
    }
    if (!rc && L->timers_due) rc = expire_leases(L);
    if (!rc) rc = dispatch(L);
    if (!rc) rc = taskq_batch_flush(&b);
    taskq_batch_free(&b);
    L->b = NULL;
    return rc;
}

/* The batch's messages in full mode: one read transaction, nothing written (clients.c refuses
 * submit/cancel, worker_msg defers what needs a write); no lease expiry, no dispatch. Returns 0
 * or a STORE_ERR_* (a read failed: the store is broken, not full). */
static int run_full_batch(brk_loop *L, char *err, size_t errlen) {
    store_txn *t;
    int rc = store_txn_begin(L->st, 0, &t, err, errlen);
    if (rc) return rc;
    brk_batch b;
    brk_fx fx = {on_lease_ended, L};
    taskq_batch_init(&b, t, util_wall_ms(), &fx);
    L->b = &b;
    L->full_run = 1;
    L->cenv.store_full = L->full_msg;
    for (uint32_t i = 0; !rc && i < L->n_in; i++) {
        in_msg *im = &L->in[i];
        if (!im->m) {
            if (im->from_workers) worker_error(L, im->ident, im->ident_len, 0, im->err);
            else out_push(L, 0, im->ident, im->ident_len, brk_client_error("error", NULL, im->err));
            continue;
        }
        if (im->from_workers) {
            rc = worker_msg(L, im);
        } else {
            const char *cmd = proto_cmd(im->m);
            if (strcmp(cmd, "submit") == 0 || strcmp(cmd, "cancel") == 0) L->full_refused_cmds++;
            int fatal = 0;
            proto_writer *w = brk_client_handle(&b, &L->cenv, im->m, &fatal);
            out_push(L, 0, im->ident, im->ident_len, w);
            rc = fatal;
        }
    }
    taskq_batch_free(&b);
    L->b = NULL;
    L->full_run = 0;
    L->cenv.store_full = NULL;
    store_txn_abort(&t);
    if (rc) util_err(err, errlen, "store read failed in the store-full state: %s%s%s", store_strerror(rc),
                     store_last_error(L->st)[0] ? ": " : "", store_last_error(L->st));
    return rc;
}

/* Enters (or stays in) the store-full state after a write failed with rc (a full code). */
static void enter_full(brk_loop *L, int rc, const char *werr) {
    const brk_config *c = L->cfg;
    int64_t now = util_now_ms();
    const char *what = werr && *werr ? werr : store_strerror(rc);
    if (strncmp(what, "store: ", 7) == 0) what += 7;
    char fix[320];
    if (c->map_max_bytes)
        snprintf(fix, sizeof fix, "free disk space, restart the broker with a larger --map-max-mb (now %zu), or "
                 "archive finished jobs out of %.200s", c->map_max_bytes >> 20, c->db);
    else
        snprintf(fix, sizeof fix, "free disk space on the file system holding %.200s, or archive finished jobs out "
                 "of it (the map has no limit: --map-max-mb 0)", c->db);
    snprintf(L->full_msg, sizeof L->full_msg,
             "store full: %s. New jobs are refused and no tasks are leased until a write succeeds (retried "
             "every %u ms, less often while the store keeps refilling). Fix: %s", what, c->full_retry_ms, fix);
    if (!L->full) {
        /* a store that fills again soon after a retry succeeded is at its limit: back off the
         * retries (up to 32x) instead of re-leasing work that cannot be stored every few seconds */
        if (L->full_entries && now - L->full_left_ms < 10000) {
            if (L->full_backoff < 32) L->full_backoff *= 2;
        } else {
            L->full_backoff = 1;
        }
        L->full = 1;
        L->full_since_ms = now;
        L->full_entries++;
        /* one clear error per episode; a store that flaps at its limit logs at most every 30 s */
        if (L->full_entries == 1 || now - L->full_logged_ms >= 30000) {
            LOG_ERROR("%s", L->full_msg);
            L->full_logged_ms = now;
        } else {
            LOG_DEBUG("store full again (%llu episodes)", (unsigned long long)L->full_entries);
        }
    }
    L->full_retry_at_ms = now + (int64_t)c->full_retry_ms * L->full_backoff;
}

/* Store full, retry due: is there some headroom (a 32nd of the map, 64 KiB .. 16 MiB)? If not,
 * stay full without running a batch (nothing leased, nothing logged) and retry later. */
static int room_for_retry(brk_loop *L) {
    size_t want = store_map_bytes(L->st) / 32;
    if (want < ((size_t)64 << 10)) want = (size_t)64 << 10;
    if (want > ((size_t)16 << 20)) want = (size_t)16 << 20;
    char e[512] = "";
    int rc = store_room_check(L->st, want, e, sizeof e);
    if (rc == STORE_OK) return 1;
    LOG_DEBUG("store still full: %s", e);
    L->full_retry_at_ms = util_now_ms() + (int64_t)L->cfg->full_retry_ms * L->full_backoff;
    return 0;
}

static void leave_full(brk_loop *L) {
    LOG_WARN("store writable again after %.1f s full (%llu result(s) and %llu submit/cancel refused): "
             "accepting jobs and leasing tasks", (double)(util_now_ms() - L->full_since_ms) / 1000.0,
             (unsigned long long)L->full_refused_results, (unsigned long long)L->full_refused_cmds);
    L->full = 0;
    L->full_left_ms = util_now_ms();
    L->full_refused_results = L->full_refused_cmds = 0;
}

/* ---------------------------------------------------------------- sockets */

static void *make_router(brk_loop *L, const char *ep, const char *zap_domain, char *err, size_t errlen) {
    void *s = zmq_socket(L->zctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = 100000;
    int64_t maxmsg = (int64_t)PROTO_MAX_BODY;   /* checked per frame: the body frame is the big one */
    /* ROUTER_MANDATORY: an unroutable send fails (EHOSTUNREACH) instead of vanishing silently;
     * linger 0: shutdown never blocks on unsent messages; HWMs sized for bursts of tasks. */
    zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    /* CURVE server: set before bind; the ZAP domain tells the handler which endpoint asks */
    if (L->cfg->curve && zkey_apply_server(s, L->cfg->curve, zap_domain, err, errlen) != 0) {
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, ep) != 0) {
        util_err(err, errlen, "broker: bind %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Reads available messages from one socket into the inbox. Returns how many were read. */
static uint32_t drain_socket(brk_loop *L, void *sock, int from_workers) {
    uint32_t got = 0;
    while (L->n_in < L->cfg->max_batch && L->in_bytes < BRK_MAX_BATCH_BYTES) {
        in_msg *im = &L->in[L->n_in];
        im->from_workers = from_workers;
        im->m = NULL;
        im->err[0] = 0;
        int rc = proto_recv(sock, 1, im->ident, sizeof im->ident, &im->ident_len, &im->m, ZMQ_DONTWAIT,
                            im->err, sizeof im->err);
        if (rc == 1) break;
        if (rc == PROTO_ERR_SOCKET) { LOG_ERROR("loop: %s", im->err); break; }
        L->msgs++;
        L->in_bytes += proto_msg_bytes(im->m);
        if (rc != PROTO_OK) {
            L->bad_msgs++;
            /* rate-limited: a hostile peer must not turn the log into the bottleneck */
            int64_t now = util_now_ms();
            if (now - L->bad_window_ms >= 1000) {
                if (L->bad_suppressed)
                    LOG_WARN("loop: %u more malformed message(s) not logged", L->bad_suppressed);
                L->bad_window_ms = now;
                L->bad_logged = 0;
                L->bad_suppressed = 0;
            }
            if (L->bad_logged++ < 20)
                LOG_WARN("loop: malformed message on the %s socket: %s", from_workers ? "workers" : "clients", im->err);
            else
                L->bad_suppressed++;
            if (im->ident_len == 0) continue;   /* nobody to answer */
        }
        L->n_in++;
        got++;
    }
    return got;
}

static void send_outbox(brk_loop *L) {
    for (uint32_t i = 0; i < L->n_out; i++) {
        out_msg *o = &L->out[i];
        void *sock = o->to_workers ? L->wrk : L->cli;
        if (proto_send(sock, o->ident, o->ident_len, o->w, ZMQ_DONTWAIT) != 0) {
            int e = zmq_errno();
            if (o->task) {
                LOG_WARN("loop: task %llu could not be sent to %s (%s): re-queueing", (unsigned long long)o->task,
                         o->worker, zmq_strerror(e));
                if (L->n_undel_next == L->cap_undel) {
                    L->cap_undel = L->cap_undel ? L->cap_undel * 2 : 64;
                    L->undel = xrealloc(L->undel, L->cap_undel * sizeof *L->undel);
                    L->undel_next = xrealloc(L->undel_next, L->cap_undel * sizeof *L->undel_next);
                }
                L->undel_next[L->n_undel_next].task = o->task;
                snprintf(L->undel_next[L->n_undel_next].worker, 64, "%s", o->worker);
                L->n_undel_next++;
            } else {
                LOG_DEBUG("loop: reply dropped (%s)", zmq_strerror(e));
            }
        } else if (o->task) {
            L->tasks_sent++;
        }
    }
    out_clear(L);
}

/* Logs handshake failures seen on one endpoint (CURVE mode): a plaintext peer or a wrong server
 * key never reaches the ZAP handler, so this is where such refusals show. Key refusals are
 * logged by the ZAP handler itself. Rate-limited like malformed messages. */
static void drain_monitor(brk_loop *L, void *mon, const char *name, const char *ep) {
    uint16_t event;
    uint32_t value;
    for (int i = 0; i < 256 && zap_monitor_read(mon, &event, &value); i++) {
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) continue;   /* the ZAP handler logged it */
        int64_t now = util_now_ms();
        if (now - L->hs_window_ms >= 1000) {
            if (L->hs_suppressed) LOG_WARN("loop: %u more failed handshake(s) not logged", L->hs_suppressed);
            L->hs_window_ms = now;
            L->hs_logged = 0;
            L->hs_suppressed = 0;
        }
        char what[160];
        if (L->hs_logged++ < 20)
            LOG_WARN("loop: refused a connection on the %s endpoint %s: %s", name, ep,
                     zap_handshake_describe(event, value, what, sizeof what));
        else
            L->hs_suppressed++;
    }
}

static void heartbeat_all(brk_loop *L) {
    proto_writer *hb = proto_writer_new("heartbeat", 0);
    for (int i = 0; i < L->reg.n; i++)
        proto_send(L->wrk, L->reg.w[i].ident, L->reg.w[i].ident_len, hb, ZMQ_DONTWAIT);
    proto_writer_destroy(&hb);
}

static int recover(brk_loop *L, char *err, size_t errlen);

/* SIGHUP: re-reads the allow-list file; the ZAP thread switches to it under its mutex
 * (zap_handler_replace). Parsing happens here, outside that lock; a bad file changes nothing. */
static void reload_allowlist(brk_loop *L) {
    const brk_config *cfg = L->cfg;
    if (!L->zap || !cfg->allow_path) {
        LOG_INFO("SIGHUP: nothing to reload (%s)", !cfg->curve ? "plaintext broker: no CURVE, no allow-list"
                                                   : "--allow-any-key: no allow-list");
        return;
    }
    zap_allowlist *al = NULL;
    char e[512] = "";
    if (zap_allowlist_load(cfg->allow_path, &al, e, sizeof e) != ZKEY_OK) {
        LOG_ERROR("allow-list reload failed, the previous list stays in force: %s", e);
        return;
    }
    size_t n = zap_allowlist_count(al);
    zap_handler_replace(L->zap, al);
    LOG_INFO("allow-list reloaded: %zu keys from %s", n, cfg->allow_path);
}

int brk_run(const brk_config *cfg, volatile sig_atomic_t *stop, char *err, size_t errlen) {
    brk_loop L;
    memset(&L, 0, sizeof L);
    L.cfg = cfg;
    brk_registry_init(&L.reg);
    brk_registry_init(&L.snap);
    L.cenv.default_max_attempts = cfg->max_attempts;
    L.cenv.workers = &L.reg;
    int ret = -1;
    size_t map0 = cfg->map_bytes;
    if (cfg->map_max_bytes && map0 > cfg->map_max_bytes) map0 = cfg->map_max_bytes;
    if (store_open(cfg->db, 0, map0, &L.st, err, errlen) != STORE_OK) return -1;
    store_set_nosync(L.st, cfg->nosync);
    store_set_map_max(L.st, cfg->map_max_bytes);
    L.zctx = zmq_ctx_new();
    L.in = xcalloc(cfg->max_batch ? cfg->max_batch : 1, sizeof *L.in);
    /* the ZAP handler must exist before a CURVE socket binds: a CURVE server that finds no
     * handler admits every client key */
    if (cfg->curve && cfg->allow && zap_handler_start(L.zctx, cfg->allow, &L.zap, err, errlen) != 0) goto done;
    if (!(L.cli = make_router(&L, cfg->clients_ep, "clients", err, errlen))) goto done;
    if (!(L.wrk = make_router(&L, cfg->workers_ep, "workers", err, errlen))) goto done;
    if (cfg->curve) {
        L.cli_mon = zap_monitor_open(L.zctx, L.cli);
        L.wrk_mon = zap_monitor_open(L.zctx, L.wrk);
    }
    if (recover(&L, err, errlen) != 0) goto done;
    LOG_INFO("loop: serving clients on %s, workers on %s (%s)", cfg->clients_ep, cfg->workers_ep,
             !cfg->curve ? "plaintext, no authentication"
             : cfg->allow ? "CURVE, clients restricted to the allow-list" : "CURVE, any client key accepted");

    if (L.full) LOG_WARN("loop: started in the store-full state: jobs resume once a write succeeds");
    int64_t now = util_now_ms();
    int64_t next_hb = now + PROTO_HEARTBEAT_MS;
    int64_t lease_tick = cfg->lease_ms / 4 < 250 ? (cfg->lease_ms / 4 ? cfg->lease_ms / 4 : 1) : 250;
    int64_t next_lease = now + lease_tick;
    int64_t next_maint = now + 10000;
    int64_t next_log = now + 10000;
    zmq_pollitem_t items[4] = {{L.cli, 0, ZMQ_POLLIN, 0}, {L.wrk, 0, ZMQ_POLLIN, 0},
                               {L.cli_mon, 0, ZMQ_POLLIN, 0}, {L.wrk_mon, 0, ZMQ_POLLIN, 0}};
    int n_items = L.cli_mon && L.wrk_mon ? 4 : 2;
    ret = 0;
    while (!*stop) {
        now = util_now_ms();
        int64_t wake = next_hb < next_lease ? next_hb : next_lease;
        if (L.full && L.full_retry_at_ms < wake) wake = L.full_retry_at_ms;
        long timeout = wake > now ? (long)(wake - now) : 0;
        if (L.n_undel_next) timeout = 0;
        int n = zmq_poll(items, n_items, timeout);
        if (n < 0 && zmq_errno() != EINTR) {
            util_err(err, errlen, "broker: zmq_poll: %s", zmq_strerror(zmq_errno()));
            ret = -1;
            break;
        }
        if (cfg->reload && *cfg->reload) {   /* SIGHUP (clear first: a signal during the reload is kept) */
            *cfg->reload = 0;
            reload_allowlist(&L);
        }
        L.n_in = 0;
        if (n > 0 && n_items == 4) {
            if (items[2].revents & ZMQ_POLLIN) drain_monitor(&L, L.cli_mon, "clients", cfg->clients_ep);
            if (items[3].revents & ZMQ_POLLIN) drain_monitor(&L, L.wrk_mon, "workers", cfg->workers_ep);
        }
        if (n > 0) {
            drain_socket(&L, L.cli, 0);
            drain_socket(&L, L.wrk, 1);
            /* group commit: keep collecting for up to group_commit_ms */
            int64_t deadline = util_now_ms() + cfg->group_commit_ms;
            while (L.n_in > 0 && L.n_in < cfg->max_batch && L.in_bytes < BRK_MAX_BATCH_BYTES && !*stop) {
                int64_t left = deadline - util_now_ms();
                if (left <= 0) break;
                if (zmq_poll(items, 2, (long)left) <= 0) break;
                drain_socket(&L, L.cli, 0);
                drain_socket(&L, L.wrk, 1);
            }
        }
        now = util_now_ms();
        L.timers_due = now >= next_lease;
        if (L.timers_due) next_lease = now + lease_tick;
        /* swap the undelivered lists: this batch re-queues what the last send could not deliver */
        undelivered *tmp = L.undel; L.undel = L.undel_next; L.undel_next = tmp;
        L.n_undel = L.n_undel_next; L.n_undel_next = 0;
        int retry_due = L.full && now >= L.full_retry_at_ms && room_for_retry(&L);
        if (L.full && !retry_due) {
            /* store full, no retry yet: answer what can be answered without writing */
            for (uint32_t i = 0; i < L.n_undel; i++) def_push(&L, DEF_REQUEUE_TASK, L.undel[i].task, L.undel[i].worker);
            L.n_undel = 0;
            if (L.n_in) {
                char rerr[512] = "";
                if (run_full_batch(&L, rerr, sizeof rerr) != 0) {
                    util_err(err, errlen, "broker: %s", rerr);
                    out_clear(&L);
                    ret = -1;
                    break;
                }
                send_outbox(&L);
            }
        } else if (L.n_in || L.timers_due || L.n_undel || retry_due) {
            brk_registry_copy(&L.snap, &L.reg);
            L.run_count = 0;
            if (retry_due) L.timers_due = 1;
            char werr[512] = "";
            int rc = store_write(L.st, run_batch, &L, werr, sizeof werr);
            if (rc == STORE_OK) {
                if (L.full) leave_full(&L);
                L.n_def = 0;   /* applied and committed */
                L.batches++;
                send_outbox(&L);
            } else if (store_err_is_full(rc)) {
                /* nothing of this batch was committed or sent: undo it, enter the full state, and
                 * answer its messages from a read transaction */
                brk_registry_copy(&L.reg, &L.snap);
                out_clear(&L);
                for (uint32_t i = 0; i < L.n_undel; i++) def_push(&L, DEF_REQUEUE_TASK, L.undel[i].task, L.undel[i].worker);
                L.n_undel = 0;
                enter_full(&L, rc, werr);
                char rerr[512] = "";
                if (L.n_in && run_full_batch(&L, rerr, sizeof rerr) != 0) {
                    util_err(err, errlen, "broker: %s", rerr);
                    out_clear(&L);
                    ret = -1;
                    break;
                }
                send_outbox(&L);
            } else {
                /* the store is unusable (I/O error, corruption): nothing of this batch was
                 * committed or sent; stop rather than acknowledge what is not durable */
                util_err(err, errlen, "broker: store write failed: %s", werr[0] ? werr : store_strerror(rc));
                out_clear(&L);
                ret = -1;
                break;
            }
        }
        for (uint32_t i = 0; i < L.n_in; i++) proto_msg_destroy(&L.in[i].m);
        L.n_in = 0;
        L.in_bytes = 0;
        now = util_now_ms();
        if (now >= next_hb) { heartbeat_all(&L); next_hb = now + PROTO_HEARTBEAT_MS; }
        if (now >= next_maint) {
            /* stale reader slots pin old pages: clearing them may give a full map room again */
            if (store_maintain(L.st) > 0 && L.full) L.full_retry_at_ms = now;
            next_maint = now + 10000;
        }
        if (now >= next_log) {
            LOG_DEBUG("loop: %llu batches, %llu messages (%llu malformed), %llu tasks sent, %d workers",
                      (unsigned long long)L.batches, (unsigned long long)L.msgs, (unsigned long long)L.bad_msgs,
                      (unsigned long long)L.tasks_sent, L.reg.n);
            next_log = now + 10000;
        }
    }
    if (ret == 0) LOG_INFO("loop: stopping (%llu batches, %llu messages, %llu tasks sent)",
                           (unsigned long long)L.batches, (unsigned long long)L.msgs, (unsigned long long)L.tasks_sent);
    if (L.zap) {
        uint64_t za, zr;
        zap_handler_counts(L.zap, &za, &zr);
        LOG_INFO("zap: %llu connection(s) allowed, %llu refused", (unsigned long long)za, (unsigned long long)zr);
    }
done:
    for (uint32_t i = 0; i < L.n_in; i++) proto_msg_destroy(&L.in[i].m);
    out_clear(&L);
    free(L.out);
    free(L.in);
    free(L.undel);
    free(L.undel_next);
    free(L.def);
    if (L.cli_mon) zmq_close(L.cli_mon);
    if (L.wrk_mon) zmq_close(L.wrk_mon);
    if (L.cli) zmq_close(L.cli);
    if (L.wrk) zmq_close(L.wrk);
    zap_handler_stop(&L.zap);
    if (L.zctx) zmq_ctx_term(L.zctx);
    brk_registry_free(&L.reg);
    brk_registry_free(&L.snap);
    store_close(&L.st);
    return ret;
}

/* Restart recovery: every lease in the store belongs to a worker this process has never seen
 * (the registry starts empty), so re-queue them all now instead of waiting for an expiry. */
typedef struct { int n; store_worker *w; int nw, capw; } recover_ctx;
static int collect_up(const store_worker *w, void *ctx) {
    recover_ctx *c = ctx;
    if (strcmp(w->state, "up") != 0) return 0;
    if (c->nw == c->capw) { c->capw = c->capw ? c->capw * 2 : 16; c->w = xrealloc(c->w, (size_t)c->capw * sizeof *c->w); }
    c->w[c->nw++] = *w;
    return 0;
}
/* Marks the previous run's workers gone and re-queues every lease, inside batch b (no flush). */
static int recover_in_batch(brk_batch *b, int *n_requeued) {
    recover_ctx c = {0};
    /* workers of the previous run are gone until they register again */
    int rc = store_workers_each_txn(b->txn, collect_up, &c);
    for (int i = 0; !rc && i < c.nw; i++) {
        snprintf(c.w[i].state, sizeof c.w[i].state, "gone");
        rc = store_worker_put(b->txn, &c.w[i]);
    }
    free(c.w);
    if (rc) return rc;
    rc = taskq_recover(b);
    if (rc < 0) return rc;
    *n_requeued = rc;
    return 0;
}
static int recover_fn(store_txn *t, void *ctx) {
    recover_ctx *c = ctx;
    brk_batch b;
    taskq_batch_init(&b, t, util_wall_ms(), NULL);
    int rc = recover_in_batch(&b, &c->n);
    if (!rc) rc = taskq_batch_flush(&b);
    taskq_batch_free(&b);
    return rc;
}
static int recover(brk_loop *L, char *err, size_t errlen) {
    recover_ctx c = {0};
    char werr[512] = "";
    int rc = store_write(L->st, recover_fn, &c, werr, sizeof werr);
    if (store_err_is_full(rc)) {
        /* restarted on a full store (same limit, disk still full): serve read-only and recover
         * with the first write that succeeds; no lease is handed out before that */
        def_push(L, DEF_RECOVER, 0, NULL);
        enter_full(L, rc, werr);
        return 0;
    }
    if (rc) return util_err(err, errlen, "%s", werr), -1;
    if (c.n) LOG_INFO("loop: recovery re-queued %d leased task(s) from the previous run", c.n);
    return 0;
}
