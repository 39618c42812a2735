/* workers/wrk_task.c — task records and the runner thread (see wrk_task.h for the handshake).
 *
 * Shared state between the two threads is one mutex-protected block: the output buffer (whole
 * msgpack values, with their end offsets so batches split on value boundaries), progress
 * counters, and the run's outcome. The runner thread waits on `cv_work` for a task and on
 * `cv_space` when the backlog is full; it wakes the main thread through an eventfd, which the
 * main thread polls next to its socket.
 */
#include "workers/wrk_task.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/check.h"
#include "common/log.h"

int wrk_task_from_msg(proto_msg **msg, wrk_task **out, char *err, size_t errlen) {
    const proto_val *root = proto_root(*msg);
    uint64_t id, attempt = 0, lease = 0;
    const char *job = "", *kind;
    uint32_t len;
    if (proto_get_u64(root, "task", &id) != 0) return util_err(err, errlen, "task: missing or bad field 'task'");
    if (proto_get_str(root, "kind", &kind, &len) != 0) return util_err(err, errlen, "task %llu: missing field 'kind'", (unsigned long long)id);
    proto_get_u64(root, "attempt", &attempt);
    proto_get_u64(root, "lease_ms", &lease);
    proto_get_str(root, "job", &job, &len);
    const proto_val *payload = proto_get_map(root, "payload");
    if (!payload) return util_err(err, errlen, "task %llu: missing map 'payload'", (unsigned long long)id);
    wrk_task *t = xcalloc(1, sizeof *t);
    t->id = id;
    t->attempt = attempt;
    t->lease_ms = lease;
    snprintf(t->job, sizeof t->job, "%s", job);
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    t->msg = *msg;
    *msg = NULL;
    t->payload = payload;
    t->received_ms = util_now_ms();
    *out = t;
    return 0;
}

void wrk_task_destroy(wrk_task **t) {
    if (!t || !*t) return;
    proto_msg_destroy(&(*t)->msg);
    free(*t);
    *t = NULL;
}

struct wrk_runner {
    wrk_role_fn fn;
    void *role_ctx;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_space;
    int efd;
    int quit;
    wrk_task *task;        /* current task (owned) */
    int running;           /* role fn is executing */
    int ended;             /* role fn returned */
    int cancelled;
    int rc;                /* role fn's return */
    char err[1024];
    util_buf out;          /* untaken outputs */
    size_t *ends;          /* end offset of each untaken output */
    size_t n_ends, cap_ends;
    uint64_t done, total, emitted;
    int64_t last_signal_ms;
};

static void signal_main(wrk_runner *r) {
    uint64_t one = 1;
    ssize_t w = write(r->efd, &one, sizeof one);
    (void)w;
}

static void *runner_main(void *arg) {
    wrk_runner *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->quit && !(r->task && !r->running && !r->ended)) pthread_cond_wait(&r->cv_work, &r->mu);
        if (r->quit) break;
        wrk_task *t = r->task;
        r->running = 1;
        pthread_mutex_unlock(&r->mu);
        char err[1024] = "";
        int rc = r->fn(r->role_ctx, t, err, sizeof err);
        pthread_mutex_lock(&r->mu);
        r->running = 0;
        r->ended = 1;
        r->rc = rc;
        snprintf(r->err, sizeof r->err, "%s", rc && !err[0] ? "task failed (no message)" : err);
        signal_main(r);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

wrk_runner *wrk_runner_new(wrk_role_fn fn, void *role_ctx) {
    wrk_runner *r = xcalloc(1, sizeof *r);
    r->fn = fn;
    r->role_ctx = role_ctx;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv_work, NULL);
    pthread_cond_init(&r->cv_space, NULL);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(r->efd >= 0, "eventfd: %s", strerror(errno));
    util_buf_init(&r->out);
    CHECK(pthread_create(&r->thread, NULL, runner_main, r) == 0, "pthread_create failed");
    return r;
}

void wrk_runner_destroy(wrk_runner **rp) {
    if (!rp || !*rp) return;
    wrk_runner *r = *rp;
    pthread_mutex_lock(&r->mu);
    r->cancelled = 1;
    r->quit = 1;
    pthread_cond_broadcast(&r->cv_work);
    pthread_cond_broadcast(&r->cv_space);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    wrk_task_destroy(&r->task);
    util_buf_free(&r->out);
    free(r->ends);
    close(r->efd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv_work);
    pthread_cond_destroy(&r->cv_space);
    free(r);
    *rp = NULL;
}

int wrk_runner_fd(const wrk_runner *r) { return r->efd; }

void wrk_runner_clear_fd(wrk_runner *r) {
    uint64_t v;
    while (read(r->efd, &v, sizeof v) > 0) {}
}

int wrk_runner_busy(const wrk_runner *r) {
    wrk_runner *m = (wrk_runner *)r;
    pthread_mutex_lock(&m->mu);
    int b = m->task != NULL;
    pthread_mutex_unlock(&m->mu);
    return b;
}

wrk_task *wrk_runner_task(wrk_runner *r) { return r->task; }

void wrk_runner_start(wrk_runner *r, wrk_task **t) {
    pthread_mutex_lock(&r->mu);
    CHECK(r->task == NULL, "runner already has a task");
    r->task = *t;
    *t = NULL;
    r->task->runner = r;
    r->running = r->ended = r->cancelled = 0;
    r->rc = 0;
    r->err[0] = 0;
    r->out.len = 0;
    r->n_ends = 0;
    r->done = r->total = r->emitted = 0;
    r->last_signal_ms = util_now_ms();
    pthread_cond_signal(&r->cv_work);
    pthread_mutex_unlock(&r->mu);
}

void wrk_runner_cancel(wrk_runner *r) {
    pthread_mutex_lock(&r->mu);
    if (r->task) r->cancelled = 1;
    pthread_cond_broadcast(&r->cv_space);
    pthread_mutex_unlock(&r->mu);
}

int wrk_task_emit(wrk_task *t, const void *msgpack, size_t len) {
    wrk_runner *r = t->runner;
    pthread_mutex_lock(&r->mu);
    while (!r->cancelled && r->out.len >= WRK_OUTPUT_BACKLOG) pthread_cond_wait(&r->cv_space, &r->mu);
    if (r->cancelled) { pthread_mutex_unlock(&r->mu); return 1; }
    util_buf_append(&r->out, msgpack, len);
    if (r->n_ends == r->cap_ends) {
        r->cap_ends = r->cap_ends ? 2 * r->cap_ends : 256;
        r->ends = xrealloc(r->ends, r->cap_ends * sizeof *r->ends);
    }
    r->ends[r->n_ends++] = r->out.len;
    r->emitted++;
    if (r->out.len >= WRK_RESULT_BYTES) signal_main(r);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void wrk_task_progress(wrk_task *t, uint64_t done, uint64_t total) {
    wrk_runner *r = t->runner;
    pthread_mutex_lock(&r->mu);
    r->done = done;
    r->total = total;
    pthread_mutex_unlock(&r->mu);
}

int wrk_task_cancelled(const wrk_task *t) {
    wrk_runner *r = t->runner;
    pthread_mutex_lock(&r->mu);
    int c = r->cancelled;
    pthread_mutex_unlock(&r->mu);
    return c;
}

void wrk_runner_progress(wrk_runner *r, uint64_t *done, uint64_t *total, uint64_t *emitted) {
    pthread_mutex_lock(&r->mu);
    *done = r->done;
    *total = r->total;
    *emitted = r->emitted;
    pthread_mutex_unlock(&r->mu);
}

/* Moves whole outputs worth at most max_bytes (at least one) from r->out into items. */
static void take_batch(wrk_runner *r, size_t max_bytes, util_buf *items, uint32_t *n_items) {
    size_t k = 0;
    while (k < r->n_ends && (k == 0 || r->ends[k] <= max_bytes)) k++;
    size_t bytes = k ? r->ends[k - 1] : 0;
    util_buf_append(items, r->out.data, bytes);
    memmove(r->out.data, r->out.data + bytes, r->out.len - bytes);
    r->out.len -= bytes;
    for (size_t i = k; i < r->n_ends; i++) r->ends[i - k] = r->ends[i] - bytes;
    r->n_ends -= k;
    *n_items = (uint32_t)k;
    pthread_cond_broadcast(&r->cv_space);
}

int wrk_runner_take(wrk_runner *r, int force, size_t max_bytes, util_buf *items, uint32_t *n_items,
                    wrk_task **finished, char *err, size_t errlen) {
    *n_items = 0;
    pthread_mutex_lock(&r->mu);
    int ret = WRK_TAKE_NONE;
    if (!r->task) goto out;
    if (r->cancelled) {
        r->out.len = 0;
        r->n_ends = 0;
        pthread_cond_broadcast(&r->cv_space);
        if (r->ended || !r->running) {
            /* a task cancelled before the thread picked it up never runs */
            if (!r->running && !r->ended) r->ended = 1;
            ret = WRK_TAKE_CANCELLED;
        }
    } else if (r->ended && r->rc != 0) {
        util_err(err, errlen, "%s", r->err);
        r->out.len = 0;
        r->n_ends = 0;
        ret = WRK_TAKE_FAILED;
    } else if (r->ended) {
        take_batch(r, max_bytes, items, n_items);
        ret = r->n_ends ? WRK_TAKE_PARTIAL : WRK_TAKE_DONE;
    } else if (r->n_ends && (force || r->out.len >= max_bytes)) {
        take_batch(r, max_bytes, items, n_items);
        ret = WRK_TAKE_PARTIAL;
    }
    if (ret == WRK_TAKE_DONE || ret == WRK_TAKE_FAILED || ret == WRK_TAKE_CANCELLED) {
        r->task->runner = NULL;
        *finished = r->task;
        r->task = NULL;
        r->ended = r->running = 0;
    }
out:
    pthread_mutex_unlock(&r->mu);
    return ret;
}
