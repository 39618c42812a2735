/* broker/clients.c — client commands (broker/clients.h). */
#include "broker/clients.h"

#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/dataset.h"
#include "jobs/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Starts a reply with ok + optional rid + n_extra fields. */
static proto_writer *reply_new(const char *cmd, const proto_msg *m, int ok, uint32_t n_extra) {
    uint64_t rid = 0;
    int has_rid = m && proto_get_u64(proto_root(m), "rid", &rid) == 0;
    proto_writer *w = proto_writer_new(cmd, 1 + (uint32_t)has_rid + n_extra);
    proto_w_key(w, "ok"); proto_w_bool(w, ok);
    if (has_rid) { proto_w_key(w, "rid"); proto_w_u64(w, rid); }
    return w;
}

proto_writer *brk_client_error(const char *cmd, const proto_msg *m, const char *error) {
    proto_writer *w = reply_new(cmd, m, 0, 1);
    proto_w_key(w, "error"); proto_w_str(w, error);
    return w;
}

/* Resolves the request's "job" field (id or name) to a cached job. */
static int find_job(brk_batch *b, const proto_msg *m, store_job **out, char *err, size_t errlen) {
    const char *q;
    if (proto_get_str(proto_root(m), "job", &q, NULL) != 0 || !*q)
        return util_err(err, errlen, "field job: missing or not a string (\"j-000001\" or a job name)"), STORE_ERR_NOTFOUND;
    store_job tmp;
    int rc = store_job_find_txn(b->txn, q, &tmp);
    if (rc == STORE_ERR_NOTFOUND) {
        /* a job submitted earlier in this same batch is only in the cache */
        uint64_t id;
        if (store_job_id_parse(q, &id) == 0 && taskq_job(b, id, out) == STORE_OK) return STORE_OK;
        for (int i = 0; i < b->n_jobs; i++)
            if (strcmp(b->jobs[i].job.name, q) == 0) { *out = &b->jobs[i].job; return STORE_OK; }
        return util_err(err, errlen, "no job \"%s\"", q), STORE_ERR_NOTFOUND;
    }
    if (rc) return util_err(err, errlen, "store: %s", store_strerror(rc)), rc;
    uint64_t id = tmp.id;
    store_job_free(&tmp);
    return taskq_job(b, id, out);
}

static void write_status_fields(proto_writer *w, const store_job *j) {
    char jid[24];
    store_job_id_format(j->id, jid, sizeof jid);
    proto_w_key(w, "job"); proto_w_str(w, jid);
    proto_w_key(w, "name"); proto_w_str(w, j->name);
    proto_w_key(w, "state"); proto_w_str(w, j->state);
    proto_w_key(w, "tasks");
    proto_w_map(w, 5);
    proto_w_key(w, "ready"); proto_w_u64(w, j->tasks_ready);
    proto_w_key(w, "leased"); proto_w_u64(w, j->tasks_leased);
    proto_w_key(w, "done"); proto_w_u64(w, j->tasks_done);
    proto_w_key(w, "failed"); proto_w_u64(w, j->tasks_failed);
    proto_w_key(w, "cancelled"); proto_w_u64(w, j->tasks_cancelled);
    proto_w_key(w, "samples_done"); proto_w_u64(w, j->samples_done);
    proto_w_key(w, "samples_total"); proto_w_u64(w, (uint64_t)j->n_problems * j->n_samples);
    proto_w_key(w, "scores_done"); proto_w_u64(w, j->scores_done);
    proto_w_key(w, "problems"); proto_w_u64(w, j->n_problems);
    proto_w_key(w, "n"); proto_w_u64(w, j->n_samples);
    proto_w_key(w, "chunks"); proto_w_u64(w, j->n_chunks);
    proto_w_key(w, "chunks_sampled"); proto_w_u64(w, j->chunks_sampled);
    proto_w_key(w, "chunks_scored"); proto_w_u64(w, j->chunks_scored);
    proto_w_key(w, "priority"); proto_w_i64(w, j->priority);
    proto_w_key(w, "created_ms"); proto_w_i64(w, j->created_ms);
    proto_w_key(w, "started_ms"); proto_w_i64(w, j->started_ms);
    proto_w_key(w, "finished_ms"); proto_w_i64(w, j->finished_ms);
    proto_w_key(w, "error"); proto_w_str(w, j->error);
    proto_w_key(w, "failed_task"); proto_w_u64(w, j->failed_task);
}
#define STATUS_FIELDS 18

/* "store": "ok" | "full" (+ "store_error" while full): 1 or 2 fields. */
static uint32_t store_fields_n(const brk_client_env *env) { return env->store_full ? 2 : 1; }
static void write_store_fields(proto_writer *w, const brk_client_env *env) {
    proto_w_key(w, "store"); proto_w_str(w, env->store_full ? "full" : "ok");
    if (env->store_full) { proto_w_key(w, "store_error"); proto_w_str(w, env->store_full); }
}

static proto_writer *cmd_submit(brk_batch *b, const brk_client_env *env, const proto_msg *m, int *fatal) {
    const proto_val *r = proto_root(m);
    const char *text, *fname = "spec";
    uint32_t tl;
    if (env->store_full) return brk_client_error("submit", m, env->store_full);   /* intake paused */
    if (proto_get_str(r, "spec", &text, &tl) != 0)
        return brk_client_error("submit", m, "field spec: missing or not a string (the job JSON text)");
    proto_get_str(r, "filename", &fname, NULL);
    job_spec spec;
    job_dataset ds = {0};
    char err[1024] = "";
    if (job_spec_parse(text, tl, fname, &spec, err, sizeof err) != 0) {
        job_spec_free(&spec);
        return brk_client_error("submit", m, err);
    }
    if (job_dataset_load(&spec, &ds, err, sizeof err) != 0) {
        job_spec_free(&spec);
        job_dataset_free(&ds);
        return brk_client_error("submit", m, err);
    }
    uint32_t max_attempts = strstr(text, "\"max_attempts\"") && spec.max_attempts > 0 ? (uint32_t)spec.max_attempts
                                                                                      : env->default_max_attempts;
    uint64_t id = 0;
    int rc = taskq_submit(b, &spec, &ds, max_attempts, &id, err, sizeof err);
    proto_writer *w;
    if (rc == -100) {
        w = brk_client_error("submit", m, err);
    } else if (rc) {
        *fatal = rc;
        w = brk_client_error("submit", m, "store failure");
    } else {
        char jid[24];
        store_job_id_format(id, jid, sizeof jid);
        LOG_INFO("clients: submitted %s \"%s\": %d problems x %d samples, chunk %d, max_attempts %u", jid, spec.name,
                 ds.n, spec.sampling.n, spec.chunk, max_attempts);
        w = reply_new("submit", m, 1, 1);
        proto_w_key(w, "job"); proto_w_str(w, jid);
    }
    job_spec_free(&spec);
    job_dataset_free(&ds);
    return w;
}

static proto_writer *cmd_status(brk_batch *b, const brk_client_env *env, const proto_msg *m, const char *cmd,
                                int *fatal) {
    store_job *j;
    char err[256];
    int rc = find_job(b, m, &j, err, sizeof err);
    if (rc) {
        if (rc != STORE_ERR_NOTFOUND) *fatal = rc;
        return brk_client_error(cmd, m, err);
    }
    proto_writer *w = reply_new(cmd, m, 1, STATUS_FIELDS + store_fields_n(env));
    write_status_fields(w, j);
    write_store_fields(w, env);
    return w;
}

typedef struct { proto_writer *w; uint32_t n; int count_only; brk_batch *b; } list_ctx;
static int list_cb(const store_job *j0, void *ctx) {
    list_ctx *c = ctx;
    c->n++;
    if (c->count_only) return 0;
    const store_job *j = j0;   /* the batch was flushed: the store is current */
    char jid[24];
    store_job_id_format(j->id, jid, sizeof jid);
    proto_w_map(c->w, 7);
    proto_w_key(c->w, "job"); proto_w_str(c->w, jid);
    proto_w_key(c->w, "name"); proto_w_str(c->w, j->name);
    proto_w_key(c->w, "state"); proto_w_str(c->w, j->state);
    proto_w_key(c->w, "samples_done"); proto_w_u64(c->w, j->samples_done);
    proto_w_key(c->w, "samples_total"); proto_w_u64(c->w, (uint64_t)j->n_problems * j->n_samples);
    proto_w_key(c->w, "created_ms"); proto_w_i64(c->w, j->created_ms);
    proto_w_key(c->w, "finished_ms"); proto_w_i64(c->w, j->finished_ms);
    return 0;
}

static proto_writer *cmd_list(brk_batch *b, const brk_client_env *env, const proto_msg *m, int *fatal) {
    /* jobs of this batch are flushed first so the walk sees them */
    int rc = taskq_batch_flush(b);
    if (rc) { *fatal = rc; return brk_client_error("list", m, "store failure"); }
    list_ctx c = {NULL, 0, 1, b};
    rc = store_jobs_each_txn(b->txn, list_cb, &c);
    if (rc) { *fatal = rc; return brk_client_error("list", m, "store failure"); }
    proto_writer *w = reply_new("list", m, 1, 1 + store_fields_n(env));
    write_store_fields(w, env);
    proto_w_key(w, "jobs");
    proto_w_array(w, c.n);
    list_ctx c2 = {w, 0, 0, b};
    rc = store_jobs_each_txn(b->txn, list_cb, &c2);
    if (rc || c2.n != c.n) { *fatal = rc ? rc : STORE_ERR_CORRUPT; }
    return w;
}

static proto_writer *cmd_cancel(brk_batch *b, const brk_client_env *env, const proto_msg *m, int *fatal) {
    store_job *j;
    char err[256];
    if (env->store_full) return brk_client_error("cancel", m, env->store_full);   /* cannot record it */
    int rc = find_job(b, m, &j, err, sizeof err);
    if (rc) {
        if (rc != STORE_ERR_NOTFOUND) *fatal = rc;
        return brk_client_error("cancel", m, err);
    }
    rc = taskq_cancel_job(b, j->id);
    char jid[24];
    store_job_id_format(j->id, jid, sizeof jid);
    if (rc < 0) { *fatal = rc; return brk_client_error("cancel", m, "store failure"); }
    if (rc == 1) {
        snprintf(err, sizeof err, "job %s already %s", jid, j->state);
        return brk_client_error("cancel", m, err);
    }
    LOG_INFO("clients: job %s cancelled", jid);
    proto_writer *w = reply_new("cancel", m, 1, 2);
    proto_w_key(w, "job"); proto_w_str(w, jid);
    proto_w_key(w, "state"); proto_w_str(w, "cancelled");
    return w;
}

static proto_writer *cmd_report(brk_batch *b, const proto_msg *m, int *fatal) {
    store_job *j;
    char err[256];
    int rc = find_job(b, m, &j, err, sizeof err);
    if (rc) {
        if (rc != STORE_ERR_NOTFOUND) *fatal = rc;
        return brk_client_error("report", m, err);
    }
    store_stats st;
    rc = store_stats_get_txn(b->txn, j->id, &st);
    if (rc && rc != STORE_ERR_NOTFOUND) { *fatal = rc; return brk_client_error("report", m, "store failure"); }
    char jid[24];
    store_job_id_format(j->id, jid, sizeof jid);
    proto_writer *w = reply_new("report", m, 1, 8);
    proto_w_key(w, "job"); proto_w_str(w, jid);
    proto_w_key(w, "name"); proto_w_str(w, j->name);
    proto_w_key(w, "state"); proto_w_str(w, j->state);
    proto_w_key(w, "final"); proto_w_bool(w, rc == STORE_OK && st.final);
    proto_w_key(w, "samples"); proto_w_u64(w, rc == STORE_OK ? st.samples : 0);
    proto_w_key(w, "stats");
    if (rc == STORE_OK) proto_w_raw(w, st.msgpack, st.msgpack_len);
    else proto_w_nil(w);
    proto_w_key(w, "error"); proto_w_str(w, j->error);
    proto_w_key(w, "failed_task"); proto_w_u64(w, j->failed_task);
    if (rc == STORE_OK) store_stats_free(&st);
    return w;
}

static proto_writer *cmd_workers(const brk_client_env *env, const proto_msg *m) {
    proto_writer *w = reply_new("workers", m, 1, 1);
    proto_w_key(w, "workers");
    const brk_registry *r = env->workers;
    proto_w_array(w, (uint32_t)r->n);
    for (int i = 0; i < r->n; i++) {
        const brk_worker *x = &r->w[i];
        proto_w_map(w, 8);
        proto_w_key(w, "id"); proto_w_str(w, x->id);
        proto_w_key(w, "role"); proto_w_str(w, brk_kind_name(x->kind));
        proto_w_key(w, "host"); proto_w_str(w, x->host);
        proto_w_key(w, "pid"); proto_w_i64(w, x->pid);
        proto_w_key(w, "credit"); proto_w_u64(w, x->credit);
        proto_w_key(w, "leased"); proto_w_u64(w, x->leased);
        proto_w_key(w, "last_seen_ms"); proto_w_i64(w, x->last_seen_wall_ms);
        proto_w_key(w, "registered_ms"); proto_w_i64(w, x->registered_wall_ms);
    }
    return w;
}

proto_writer *brk_client_handle(brk_batch *b, const brk_client_env *env, const proto_msg *m, int *fatal) {
    *fatal = 0;
    const char *cmd = proto_cmd(m);
    if (strcmp(cmd, "submit") == 0) return cmd_submit(b, env, m, fatal);
    if (strcmp(cmd, "status") == 0) return cmd_status(b, env, m, "status", fatal);
    if (strcmp(cmd, "watch") == 0) return cmd_status(b, env, m, "watch", fatal);
    if (strcmp(cmd, "list") == 0) return cmd_list(b, env, m, fatal);
    if (strcmp(cmd, "cancel") == 0) return cmd_cancel(b, env, m, fatal);
    if (strcmp(cmd, "report") == 0) return cmd_report(b, m, fatal);
    if (strcmp(cmd, "workers") == 0) return cmd_workers(env, m);
    char err[160];
    snprintf(err, sizeof err, "unknown command \"%.64s\" (submit|status|list|cancel|report|workers|watch)", cmd);
    return brk_client_error(cmd, m, err);
}
