/* workers/wrk_task.h — one leased task inside a worker, and the runner thread that executes it.
 *
 * The worker's main thread owns the ZeroMQ socket (heartbeats, cancel, reconnects); the task
 * itself runs on one persistent runner thread so that a long task (a model generating for
 * minutes) never starves the heartbeat. The runner hands outputs back through a bounded
 * buffer: each output is one complete msgpack value; the main thread takes them in batches of
 * at most WRK_RESULT_BYTES (one `result` message each). The runner blocks when more than
 * WRK_OUTPUT_BACKLOG bytes are waiting (back-pressure), and signals an eventfd whenever there
 * is something for the main thread (a full batch, progress after a quiet spell, or the end).
 *
 *   main thread                         runner thread
 *     wrk_runner_start(task) ───────────► role fn(task)
 *                                           wrk_task_emit(out) ... (eventfd when a batch is full)
 *     poll(eventfd) ◄────────────────────   wrk_task_progress(done, total)
 *     wrk_runner_take(batch)                return 0 | -1 (err)
 *     ... result final:false / final:true | fail
 *     wrk_runner_cancel() ──────────────► emit returns 1, role fn returns early, task discarded
 */
#ifndef THINKFAST_WRK_TASK_H
#define THINKFAST_WRK_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "jobs/proto.h"

#define WRK_RESULT_BYTES (1u << 20)     /* bytes of outputs per `result` message (soft cap) */
#define WRK_OUTPUT_BACKLOG (8u << 20)   /* runner waits while this much is untaken */

typedef struct wrk_task {
    uint64_t id;              /* broker task id */
    uint64_t attempt;
    char job[32];
    char kind[16];            /* "sample" | "score" | "aggregate" */
    uint64_t lease_ms;
    proto_msg *msg;           /* the whole `task` message (owned) */
    const proto_val *payload; /* points into msg */
    int64_t received_ms;
    /* telemetry the role adds to (runner thread only, read by main after the end) */
    uint64_t tokens;
    double compute_s;
    struct wrk_runner *runner; /* set while running */
} wrk_task;

/* Builds a task from a parsed `task` message, taking ownership of *msg (set to NULL) on success.
 * Returns 0, or -1 with err naming the missing / mistyped field (msg untouched). */
int wrk_task_from_msg(proto_msg **msg, wrk_task **out, char *err, size_t errlen);
void wrk_task_destroy(wrk_task **t);

/* ---- called by role functions on the runner thread ---- */
/* Queues one output (one complete msgpack value). Returns 0, or 1 when the task was cancelled
 * (the role should stop and return; what it returns is ignored). May block on back-pressure. */
int wrk_task_emit(wrk_task *t, const void *msgpack, size_t len);
/* Progress counters for the `progress` message (units of the role's choosing). */
void wrk_task_progress(wrk_task *t, uint64_t done, uint64_t total);
/* 1 once the main thread cancelled the task. */
int wrk_task_cancelled(const wrk_task *t);

/* A role: runs the task to completion through wrk_task_emit. 0 ok, -1 with err set. */
typedef int (*wrk_role_fn)(void *role_ctx, wrk_task *t, char *err, size_t errlen);

/* ---- the runner (main thread API) ---- */
typedef struct wrk_runner wrk_runner;

wrk_runner *wrk_runner_new(wrk_role_fn fn, void *role_ctx);
/* Cancels a running task, joins the thread, frees everything. *r = NULL. */
void wrk_runner_destroy(wrk_runner **r);
/* eventfd that becomes readable when wrk_runner_take has something new (poll it). */
int wrk_runner_fd(const wrk_runner *r);
/* 1 while a task is started and not yet fully taken. */
int wrk_runner_busy(const wrk_runner *r);
/* The task being run (or NULL); owned by the runner. */
wrk_task *wrk_runner_task(wrk_runner *r);
/* Starts a task (runner must be idle); takes ownership of *t (set to NULL). */
void wrk_runner_start(wrk_runner *r, wrk_task **t);
/* Asks the task to stop; its outputs are discarded and the runner becomes idle once the role
 * returns (wrk_runner_take then reports WRK_TAKE_CANCELLED). */
void wrk_runner_cancel(wrk_runner *r);

enum { WRK_TAKE_NONE = 0, WRK_TAKE_PARTIAL = 1, WRK_TAKE_DONE = 2, WRK_TAKE_FAILED = 3, WRK_TAKE_CANCELLED = 4 };
/* Moves at most max_bytes of whole outputs (at least one output if any is waiting) into
 * items (appended, concatenated msgpack values) and sets *n_items. Returns
 *   WRK_TAKE_NONE     nothing waiting;
 *   WRK_TAKE_PARTIAL  outputs taken, more may follow (or the task is still running);
 *   WRK_TAKE_DONE     the role finished and these are the last outputs (possibly none);
 *   WRK_TAKE_FAILED   the role failed: err holds its message (no items);
 *   WRK_TAKE_CANCELLED the cancelled task has ended (no items).
 * After DONE / FAILED / CANCELLED the finished task is given to *finished (caller destroys it)
 * and the runner is idle. force: take even a small batch (otherwise PARTIAL waits for a full
 * batch). */
int wrk_runner_take(wrk_runner *r, int force, size_t max_bytes, util_buf *items, uint32_t *n_items,
                    wrk_task **finished, char *err, size_t errlen);
/* Progress snapshot for the `progress` message. */
void wrk_runner_progress(wrk_runner *r, uint64_t *done, uint64_t *total, uint64_t *emitted);
/* Clears the eventfd (call after poll says it is readable). */
void wrk_runner_clear_fd(wrk_runner *r);

#endif
