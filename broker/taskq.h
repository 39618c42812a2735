/* broker/taskq.h — the task state machine and DAG release, on the store (see broker/tasks.h for
 * the states, transitions and payload contract).
 *
 * Every function works inside one write transaction wrapped in a brk_batch, the unit of group
 * commit: the event loop opens a batch per poll iteration, applies every message to it, calls
 * taskq_batch_flush() and commits. Job records touched in a batch are cached in the batch and
 * written once by the flush. Nothing here touches the network: when a lease ends for any reason
 * the batch's effects callback is told (worker id, task, whether the worker must be sent
 * `cancel`), and the loop acts on it after the commit. A batch may be replayed from scratch
 * (store_write retries after growing the map), so these functions keep no state outside the
 * transaction and the batch.
 */
#ifndef THINKFAST_BRK_TASKQ_H
#define THINKFAST_BRK_TASKQ_H

#include <stdint.h>

#include "jobs/dataset.h"
#include "jobs/proto.h"
#include "jobs/spec.h"
#include "store/store.h"

typedef struct brk_fx {
    /* A lease held by `worker` on `task` ended (done, failed, re-queued, cancelled, taken over).
     * send_cancel: the worker may still be running it and must be told to drop it. */
    void (*lease_ended)(void *ctx, const char *worker, uint64_t task, int send_cancel);
    void *ctx;
} brk_fx;

typedef struct brk_job_slot { store_job job; int dirty; } brk_job_slot;

typedef struct brk_batch {
    store_txn *txn;
    int64_t now_ms;          /* wall clock of this batch */
    brk_fx fx;
    brk_job_slot *jobs;      /* job cache (written back by taskq_batch_flush) */
    int n_jobs, cap_jobs;
    /* counters for logs / benchmarks */
    uint64_t n_leased, n_done, n_outputs;
} brk_batch;

enum {
    TASKQ_ACK = 0,      /* result accepted (committed, duplicate, or dropped for a finished task) */
    TASKQ_REJECT = 1,   /* result malformed: answer with an error, change nothing */
};

void taskq_batch_init(brk_batch *b, store_txn *t, int64_t now_ms, const brk_fx *fx);
/* Writes the dirty cached jobs. Returns STORE_OK or a STORE_ERR_* (MAP_FULL included). */
int taskq_batch_flush(brk_batch *b);
void taskq_batch_free(brk_batch *b);

/* The cached job record (read through on first use). STORE_ERR_NOTFOUND if absent. The pointer
 * is valid until the batch is freed; call taskq_job_dirty after changing it. */
int taskq_job(brk_batch *b, uint64_t id, store_job **out);
void taskq_job_dirty(brk_batch *b, uint64_t id);

/* Stores a new job: its problems, its sample tasks (ready) and the prepared task parameters.
 * max_attempts: the per-task limit to record. Returns STORE_OK with *job_id, or a STORE_ERR_*,
 * or -100 with err set when the job is unusable (e.g. the dataset is empty). */
int taskq_submit(brk_batch *b, const job_spec *spec, const job_dataset *ds, uint32_t max_attempts,
                 uint64_t *job_id, char *err, size_t errlen);

/* Leases the next ready task of `kind` to worker: task -> LEASED, attempt+1, lease record,
 * job -> running. STORE_ERR_NOTFOUND when the kind's queue is empty. *out gets the task. */
int taskq_lease(brk_batch *b, int kind, const char *worker, store_task *out);

/* Applies a `result` from `worker` (see broker/tasks.h for the rules). outputs may be NULL
 * (no outputs in this message). Returns TASKQ_ACK / TASKQ_REJECT (err says why), or a negative
 * STORE_ERR_*. */
int taskq_result(brk_batch *b, const char *worker, uint64_t task, const proto_val *outputs, int final,
                 char *err, size_t errlen);

/* A `fail` from worker for (task, attempt): counted against max attempts when it is the current
 * lease; ignored (returns 0) when stale. Returns 0 or a STORE_ERR_*. */
int taskq_fail(brk_batch *b, const char *worker, uint64_t task, uint32_t attempt, const char *error);

/* Ends every lease `worker` holds and re-queues the tasks. counted: lease expiry (counts as a
 * failure) vs clean disconnect / re-registration (does not). reason goes into the task's error.
 * Returns the number of tasks re-queued (>= 0) or a STORE_ERR_*. */
int taskq_requeue_worker(brk_batch *b, const char *worker, int counted, const char *reason);

/* Re-queues one leased task (no failure counted), e.g. when its `task` message could not be
 * delivered. Stale (not leased by worker) -> no-op. */
int taskq_requeue_task(brk_batch *b, uint64_t task, const char *worker, const char *reason);

/* Cancels a job: state cancelled, ready tasks removed, leased ones cancelled (effects tell the
 * holders). Returns 0, STORE_ERR_NOTFOUND, or 1 when the job had already finished (done/failed). */
int taskq_cancel_job(brk_batch *b, uint64_t job);

/* Restart recovery: re-queues every leased task without counting a failure (no worker is
 * registered after a restart). Returns the number re-queued or a STORE_ERR_*. */
int taskq_recover(brk_batch *b);

#endif
