/* broker/taskq.c — the task state machine and DAG release (broker/taskq.h, broker/tasks.h).
 *
 * Invariants kept by every transition (checked by tests/unit/test_broker_taskq.c):
 *   - a task is in the ready DB  <=>  its state is READY;
 *   - a task has a lease record  <=>  its state is LEASED (task.worker names the holder);
 *   - the job's tasks_{ready,leased,done,failed,cancelled} equal the counts of its tasks;
 *   - outputs are only ever inserted (idempotent), never rewritten.
 */
#include "broker/taskq.h"

#include "broker/payload.h"
#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void taskq_batch_init(brk_batch *b, store_txn *t, int64_t now_ms, const brk_fx *fx) {
    memset(b, 0, sizeof *b);
    b->txn = t;
    b->now_ms = now_ms;
    if (fx) b->fx = *fx;
}

void taskq_batch_free(brk_batch *b) {
    for (int i = 0; i < b->n_jobs; i++) store_job_free(&b->jobs[i].job);
    free(b->jobs);
    b->jobs = NULL;
    b->n_jobs = b->cap_jobs = 0;
}

int taskq_batch_flush(brk_batch *b) {
    for (int i = 0; i < b->n_jobs; i++) {
        if (!b->jobs[i].dirty) continue;
        int rc = store_job_put(b->txn, &b->jobs[i].job);
        if (rc) return rc;
        b->jobs[i].dirty = 0;
    }
    return STORE_OK;
}

int taskq_job(brk_batch *b, uint64_t id, store_job **out) {
    for (int i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].job.id == id) { *out = &b->jobs[i].job; return STORE_OK; }
    store_job j;
    int rc = store_job_get(b->txn, id, &j);
    if (rc) return rc;
    if (b->n_jobs == b->cap_jobs) {
        b->cap_jobs = b->cap_jobs ? b->cap_jobs * 2 : 8;
        b->jobs = xrealloc(b->jobs, (size_t)b->cap_jobs * sizeof *b->jobs);
    }
    b->jobs[b->n_jobs].job = j;
    b->jobs[b->n_jobs].dirty = 0;
    *out = &b->jobs[b->n_jobs++].job;
    return STORE_OK;
}

void taskq_job_dirty(brk_batch *b, uint64_t id) {
    for (int i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].job.id == id) b->jobs[i].dirty = 1;
}

static uint32_t *state_counter(store_job *j, int state) {
    switch (state) {
    case BRK_TASK_READY: return &j->tasks_ready;
    case BRK_TASK_LEASED: return &j->tasks_leased;
    case BRK_TASK_DONE: return &j->tasks_done;
    case BRK_TASK_FAILED: return &j->tasks_failed;
    default: return &j->tasks_cancelled;
    }
}

static int job_is_finished(const store_job *j) {
    return strcmp(j->state, "done") == 0 || strcmp(j->state, "failed") == 0 || strcmp(j->state, "cancelled") == 0;
}

/* Moves task to new_state, keeping the ready DB, the lease DB and the job counters in step.
 * The caller has set any other task fields; this writes the task record. */
static int set_state(brk_batch *b, store_task *x, int new_state, int send_cancel) {
    store_job *j;
    int rc = taskq_job(b, x->job, &j);
    if (rc) return rc;
    int old = x->state;
    if (old == BRK_TASK_READY && new_state != BRK_TASK_READY) {
        rc = store_ready_del(b->txn, (uint8_t)x->kind, x->priority, x->seq);
        if (rc && rc != STORE_ERR_NOTFOUND) return rc;
    }
    if (old == BRK_TASK_LEASED && new_state != BRK_TASK_LEASED) {
        rc = store_lease_del(b->txn, x->id);
        if (rc && rc != STORE_ERR_NOTFOUND) return rc;
        if (b->fx.lease_ended && x->worker[0]) b->fx.lease_ended(b->fx.ctx, x->worker, x->id, send_cancel);
        x->worker[0] = 0;
    }
    if (new_state == BRK_TASK_READY) {
        /* (re-)queued at the back of its priority */
        if ((rc = store_next_id(b->txn, "next_seq", &x->seq))) return rc;
        if ((rc = store_ready_push(b->txn, (uint8_t)x->kind, x->priority, x->seq, x->id))) return rc;
    }
    if (new_state == BRK_TASK_DONE || new_state == BRK_TASK_FAILED || new_state == BRK_TASK_CANCELLED)
        x->finished_ms = b->now_ms;
    if (old != new_state) {
        uint32_t *c = state_counter(j, old);
        if (*c) (*c)--;
        (*state_counter(j, new_state))++;
    }
    x->state = new_state;
    taskq_job_dirty(b, x->job);
    return store_task_put(b->txn, x);
}

/* Creates a task in READY state. */
static int create_task(brk_batch *b, store_job *j, int kind, uint32_t chunk, uint32_t p_begin, uint32_t p_end,
                       int final, uint64_t outputs_total, uint64_t *id_out) {
    store_task x;
    memset(&x, 0, sizeof x);
    int rc = store_next_id(b->txn, "next_task", &x.id);
    if (rc) return rc;
    x.job = j->id;
    x.kind = kind;
    x.chunk = chunk;
    x.p_begin = p_begin;
    x.p_end = p_end;
    x.final = final;
    x.priority = j->priority;
    x.outputs_total = outputs_total;
    x.created_ms = b->now_ms;
    x.state = BRK_TASK_READY;
    if ((rc = store_next_id(b->txn, "next_seq", &x.seq))) return rc;
    if ((rc = store_ready_push(b->txn, (uint8_t)kind, x.priority, x.seq, x.id))) return rc;
    j->tasks_ready++;
    taskq_job_dirty(b, j->id);
    if (id_out) *id_out = x.id;
    return store_task_put(b->txn, &x);
}

int taskq_submit(brk_batch *b, const job_spec *spec, const job_dataset *ds, uint32_t max_attempts,
                 uint64_t *job_id, char *err, size_t errlen) {
    if (!ds || ds->n <= 0) return util_err(err, errlen, "dataset: no problems"), -100;
    if (spec->sampling.n <= 0) return util_err(err, errlen, "sampling.n: must be positive"), -100;
    if (spec->chunk <= 0) return util_err(err, errlen, "chunk: must be positive"), -100;
    store_job j;
    memset(&j, 0, sizeof j);
    int rc = store_next_id(b->txn, "next_job", &j.id);
    if (rc) return rc;
    snprintf(j.name, sizeof j.name, "%s", spec->name);
    snprintf(j.state, sizeof j.state, "queued");
    j.priority = spec->priority;
    j.created_ms = b->now_ms;
    j.n_problems = (uint32_t)ds->n;
    j.n_samples = (uint32_t)spec->sampling.n;
    j.chunk = (uint32_t)spec->chunk;
    j.n_chunks = (j.n_problems + j.chunk - 1) / j.chunk;
    j.max_attempts = max_attempts ? max_attempts : 3;
    j.spec_json = xstrdup(spec->json ? spec->json : "{}");
    payload_params_encode(spec, &j.params, &j.params_len);
    for (int i = 0; i < ds->n; i++) {
        const job_problem *q = &ds->items[i];
        store_problem p = {.p = (uint32_t)i, .id = q->id, .question = q->question, .solution = q->solution,
                           .answer = q->answer, .subject = q->subject, .level = q->level};
        if ((rc = store_problem_put(b->txn, j.id, &p))) { store_job_free(&j); return rc; }
    }
    /* put the job in the batch cache, then create its sample tasks against the cached copy */
    if (b->n_jobs == b->cap_jobs) {
        b->cap_jobs = b->cap_jobs ? b->cap_jobs * 2 : 8;
        b->jobs = xrealloc(b->jobs, (size_t)b->cap_jobs * sizeof *b->jobs);
    }
    b->jobs[b->n_jobs].job = j;
    b->jobs[b->n_jobs].dirty = 1;
    store_job *jc = &b->jobs[b->n_jobs++].job;
    for (uint32_t c = 0; c < jc->n_chunks; c++) {
        uint32_t p0 = c * jc->chunk, p1 = p0 + jc->chunk > jc->n_problems ? jc->n_problems : p0 + jc->chunk;
        rc = create_task(b, jc, BRK_KIND_SAMPLE, c, p0, p1, 0, (uint64_t)(p1 - p0) * jc->n_samples, NULL);
        if (rc) return rc;
    }
    *job_id = jc->id;
    return STORE_OK;
}

int taskq_lease(brk_batch *b, int kind, const char *worker, store_task *out) {
    for (;;) {
        uint64_t id;
        int rc = store_ready_first(b->txn, (uint8_t)kind, &id);
        if (rc) return rc;
        store_task x;
        rc = store_task_get(b->txn, id, &x);
        if (rc == STORE_ERR_NOTFOUND || (rc == STORE_OK && x.state != BRK_TASK_READY)) {
            /* a dangling ready entry (should not happen): drop it and go on */
            LOG_WARN("taskq: dropping dangling ready entry for task %llu", (unsigned long long)id);
            if ((rc = store_ready_del_first(b->txn, (uint8_t)kind))) return rc;
            continue;
        }
        if (rc) return rc;
        store_job *j;
        if ((rc = taskq_job(b, x.job, &j))) return rc;
        x.attempt++;
        snprintf(x.worker, sizeof x.worker, "%s", worker);
        x.leased_ms = b->now_ms;
        store_lease l = {.task = x.id, .attempt = x.attempt, .since_ms = b->now_ms};
        snprintf(l.worker, sizeof l.worker, "%s", worker);
        if ((rc = store_lease_put(b->txn, &l))) return rc;
        if (strcmp(j->state, "queued") == 0) {
            snprintf(j->state, sizeof j->state, "running");
            j->started_ms = b->now_ms;
        }
        if (x.kind == BRK_KIND_AGGREGATE) {   /* its payload sees every score so far */
            j->agg_dirty = 0;
            j->agg_scores_at = j->scores_done;
        }
        if ((rc = set_state(b, &x, BRK_TASK_LEASED, 0))) return rc;
        b->n_leased++;
        *out = x;
        return STORE_OK;
    }
}

/* Cancels every unfinished task of a job (ready -> cancelled, leased -> cancelled + cancel). */
typedef struct { uint64_t *ids; size_t n, cap; } id_list;
static int collect_open(const store_task *x, void *ctx) {
    id_list *l = ctx;
    if (x->state == BRK_TASK_READY || x->state == BRK_TASK_LEASED) {
        if (l->n == l->cap) { l->cap = l->cap ? l->cap * 2 : 64; l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids); }
        l->ids[l->n++] = x->id;
    }
    return 0;
}
static int cancel_open_tasks(brk_batch *b, uint64_t job) {
    id_list l = {0};
    int rc = store_tasks_each_txn(b->txn, job, collect_open, &l);
    for (size_t i = 0; !rc && i < l.n; i++) {
        store_task x;
        if ((rc = store_task_get(b->txn, l.ids[i], &x))) break;
        rc = set_state(b, &x, BRK_TASK_CANCELLED, 1);
    }
    free(l.ids);
    return rc;
}

static void task_label(const store_task *x, char *buf, size_t cap) {
    if (x->kind == BRK_KIND_AGGREGATE)
        snprintf(buf, cap, "task %llu (%s aggregate)", (unsigned long long)x->id, x->final ? "final" : "incremental");
    else
        snprintf(buf, cap, "task %llu (%s chunk %u, problems %u-%u)", (unsigned long long)x->id,
                 brk_kind_name(x->kind), x->chunk, x->p_begin, x->p_end ? x->p_end - 1 : 0);
}

/* One failed attempt: re-queue, or fail the task and its job after max attempts. */
static int count_failure(brk_batch *b, store_task *x, const char *error) {
    store_job *j;
    int rc = taskq_job(b, x->job, &j);
    if (rc) return rc;
    x->failures++;
    snprintf(x->error, sizeof x->error, "%s", error ? error : "");
    if (x->failures < j->max_attempts) {
        LOG_INFO("taskq: task %llu attempt %u failed (%u/%u): %s; re-queued", (unsigned long long)x->id,
                 x->attempt, x->failures, j->max_attempts, x->error);
        return set_state(b, x, BRK_TASK_READY, 0);
    }
    if ((rc = set_state(b, x, BRK_TASK_FAILED, 0))) return rc;
    char label[128];
    task_label(x, label, sizeof label);
    snprintf(j->error, sizeof j->error, "%s failed after %u attempts: %.300s", label, x->failures, x->error);
    j->failed_task = x->id;
    snprintf(j->state, sizeof j->state, "failed");
    j->finished_ms = b->now_ms;
    taskq_job_dirty(b, j->id);
    char jid[24];
    store_job_id_format(j->id, jid, sizeof jid);
    LOG_WARN("taskq: job %s failed: %s", jid, j->error);
    return cancel_open_tasks(b, j->id);
}

/* An incremental aggregation reads every score of the job, so it is released only after enough
 * new scores (TASKQ_AGG_STEP of the job's total) landed since the last one was leased: at most
 * about 1/TASKQ_AGG_STEP incremental aggregations per job, whatever the chunk size. */
#define TASKQ_AGG_STEP 0.1
static int incremental_due(const store_job *j) {
    uint64_t total = (uint64_t)j->n_problems * j->n_samples;
    uint64_t step = (uint64_t)((double)total * TASKQ_AGG_STEP);
    if (step < 1) step = 1;
    return j->scores_done >= j->agg_scores_at + step;
}

/* DAG release after task x is done. */
static int release(brk_batch *b, store_job *j, const store_task *x) {
    int rc = 0;
    if (x->kind == BRK_KIND_SAMPLE) {
        j->chunks_sampled++;
        rc = create_task(b, j, BRK_KIND_SCORE, x->chunk, x->p_begin, x->p_end, 0,
                         (uint64_t)(x->p_end - x->p_begin) * j->n_samples, NULL);
    } else if (x->kind == BRK_KIND_SCORE) {
        j->chunks_scored++;
        j->agg_dirty = 1;
        if (j->chunks_scored >= j->n_chunks && !j->final_created) {
            /* the final aggregation supersedes a pending incremental one that has not started */
            if (j->agg_task) {
                store_task a;
                if (store_task_get(b->txn, j->agg_task, &a) == STORE_OK && a.state == BRK_TASK_READY)
                    if ((rc = set_state(b, &a, BRK_TASK_CANCELLED, 0))) return rc;
                j->agg_task = 0;
            }
            j->final_created = 1;
            rc = create_task(b, j, BRK_KIND_AGGREGATE, 0, 0, j->n_problems, 1, 1, NULL);
        } else if (!j->agg_task && !j->final_created && incremental_due(j)) {
            rc = create_task(b, j, BRK_KIND_AGGREGATE, 0, 0, j->n_problems, 0, 1, &j->agg_task);
        }
    } else if (x->kind == BRK_KIND_AGGREGATE) {
        if (x->final) {
            snprintf(j->state, sizeof j->state, "done");
            j->finished_ms = b->now_ms;
            char jid[24];
            store_job_id_format(j->id, jid, sizeof jid);
            LOG_INFO("taskq: job %s done (%llu samples, %llu scores)", jid, (unsigned long long)j->samples_done,
                     (unsigned long long)j->scores_done);
        } else {
            if (j->agg_task == x->id) j->agg_task = 0;
            if (j->agg_dirty && !j->final_created && incremental_due(j))
                rc = create_task(b, j, BRK_KIND_AGGREGATE, 0, 0, j->n_problems, 0, 1, &j->agg_task);
        }
    }
    taskq_job_dirty(b, j->id);
    return rc;
}

int taskq_result(brk_batch *b, const char *worker, uint64_t task, const proto_val *outputs, int final,
                 char *err, size_t errlen) {
    store_task x;
    int rc = store_task_get(b->txn, task, &x);
    if (rc == STORE_ERR_NOTFOUND) return util_err(err, errlen, "unknown task %llu", (unsigned long long)task), TASKQ_REJECT;
    if (rc) return rc;
    if (x.state != BRK_TASK_READY && x.state != BRK_TASK_LEASED) return TASKQ_ACK;  /* finished: drop */
    store_job *j;
    if ((rc = taskq_job(b, x.job, &j))) return rc;
    if (job_is_finished(j)) return TASKQ_ACK;
    uint64_t fresh = 0;
    rc = payload_commit_outputs(b->txn, j, &x, outputs, b->now_ms, &fresh, err, errlen);
    if (rc < 0) return rc;
    if (rc == 1) return TASKQ_REJECT;
    if (fresh) {
        x.outputs_done += fresh;
        if (x.kind == BRK_KIND_SAMPLE) j->samples_done += fresh;
        else if (x.kind == BRK_KIND_SCORE) j->scores_done += fresh;
        b->n_outputs += fresh;
        taskq_job_dirty(b, j->id);
    }
    if (!final) {
        if (fresh && (rc = store_task_put(b->txn, &x))) return rc;
        return TASKQ_ACK;
    }
    if (x.outputs_done < x.outputs_total) {
        char msg[160];
        snprintf(msg, sizeof msg, "final result incomplete: %llu of %llu outputs", (unsigned long long)x.outputs_done,
                 (unsigned long long)x.outputs_total);
        if (x.state != BRK_TASK_LEASED || strcmp(x.worker, worker) != 0) {
            /* a stale attempt's incomplete result: keep its outputs, leave the task alone */
            if (fresh && (rc = store_task_put(b->txn, &x))) return rc;
            return TASKQ_ACK;
        }
        rc = count_failure(b, &x, msg);
        return rc ? rc : TASKQ_ACK;
    }
    /* a result from a worker other than the holder completes the task too: tell the holder */
    int other = x.state == BRK_TASK_LEASED && strcmp(x.worker, worker) != 0;
    if ((rc = set_state(b, &x, BRK_TASK_DONE, other))) return rc;
    b->n_done++;
    rc = release(b, j, &x);
    return rc ? rc : TASKQ_ACK;
}

int taskq_fail(brk_batch *b, const char *worker, uint64_t task, uint32_t attempt, const char *error) {
    store_task x;
    int rc = store_task_get(b->txn, task, &x);
    if (rc == STORE_ERR_NOTFOUND) return 0;
    if (rc) return rc;
    if (x.state != BRK_TASK_LEASED || strcmp(x.worker, worker) != 0 || (attempt && attempt != x.attempt)) return 0;
    return count_failure(b, &x, error && *error ? error : "worker reported failure (no error text)");
}

typedef struct { const char *worker; id_list ids; } by_worker;
static int collect_worker_leases(const store_lease *l, void *ctx) {
    by_worker *c = ctx;
    if (c->worker && strcmp(l->worker, c->worker) != 0) return 0;
    id_list *il = &c->ids;
    if (il->n == il->cap) { il->cap = il->cap ? il->cap * 2 : 16; il->ids = xrealloc(il->ids, il->cap * sizeof *il->ids); }
    il->ids[il->n++] = l->task;
    return 0;
}

static int requeue_leases(brk_batch *b, const char *worker, int counted, const char *reason) {
    by_worker c = {worker, {0}};
    int rc = store_leases_each_txn(b->txn, collect_worker_leases, &c);
    int n = 0;
    for (size_t i = 0; !rc && i < c.ids.n; i++) {
        store_task x;
        rc = store_task_get(b->txn, c.ids.ids[i], &x);
        if (rc == STORE_ERR_NOTFOUND) { rc = store_lease_del(b->txn, c.ids.ids[i]); continue; }
        if (rc) break;
        if (x.state != BRK_TASK_LEASED) { rc = store_lease_del(b->txn, x.id); if (rc == STORE_ERR_NOTFOUND) rc = 0; continue; }
        if (counted) {
            rc = count_failure(b, &x, reason);
        } else {
            LOG_INFO("taskq: task %llu re-queued: %s", (unsigned long long)x.id, reason);
            rc = set_state(b, &x, BRK_TASK_READY, 0);
        }
        n++;
    }
    free(c.ids.ids);
    return rc ? rc : n;
}

int taskq_requeue_worker(brk_batch *b, const char *worker, int counted, const char *reason) {
    return requeue_leases(b, worker, counted, reason);
}

int taskq_requeue_task(brk_batch *b, uint64_t task, const char *worker, const char *reason) {
    store_task x;
    int rc = store_task_get(b->txn, task, &x);
    if (rc == STORE_ERR_NOTFOUND) return 0;
    if (rc) return rc;
    if (x.state != BRK_TASK_LEASED || strcmp(x.worker, worker) != 0) return 0;
    LOG_INFO("taskq: task %llu re-queued: %s", (unsigned long long)x.id, reason);
    return set_state(b, &x, BRK_TASK_READY, 0);
}

int taskq_cancel_job(brk_batch *b, uint64_t job) {
    store_job *j;
    int rc = taskq_job(b, job, &j);
    if (rc) return rc;
    if (strcmp(j->state, "cancelled") == 0) return 0;
    if (job_is_finished(j)) return 1;
    snprintf(j->state, sizeof j->state, "cancelled");
    j->finished_ms = b->now_ms;
    taskq_job_dirty(b, job);
    return cancel_open_tasks(b, job);
}

int taskq_recover(brk_batch *b) {
    return requeue_leases(b, NULL, 0, "broker restarted");
}
