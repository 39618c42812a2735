/* store/store.h — the durable store: one LMDB environment, its named databases, key encodings,
 * typed records (msgpack) and the accessors the broker and the offline tools use.
 *
 * One writer: the broker is the only process that opens the store read-write; tools (jobctl
 * report/export/reaggregate, the dashboard) open it read-only at the same time (LMDB MVCC: a
 * reader never blocks the writer and always sees the last committed state).
 *
 * Named databases and their keys (all integers big-endian so that byte order = numeric order):
 *
 *   meta         "schema" -> u32 schema version (STORE_SCHEMA_VERSION);
 *                "next_job", "next_task", "next_seq" -> u64 counters
 *   jobs         job u64                      -> store_job      (msgpack map)
 *   problems     job u64 | p u32              -> store_problem  (msgpack map)
 *   tasks        task u64                     -> store_task     (msgpack map)
 *   ready        role u8 | ~prio u32 | seq u64 -> task u64 (8 raw bytes). The first key with a
 *                role prefix is that role's next task: higher job priority first, then FIFO.
 *   leases       task u64                     -> store_lease    (msgpack map)
 *   generations  job u64 | p u32 | s u32      -> store_generation (the text written last)
 *   scores       job u64 | p u32 | s u32      -> store_score (+ the generation's time_s, since
 *                the light reads: records without it are read as before, see store_score_meta)
 *   stats        job u64                      -> store_stats (the aggregate record)
 *   workers      worker id (string bytes)     -> store_worker
 *
 * Job ids print as "j-000001" (store_job_id_format); task ids are plain integers.
 *
 * Lifetimes: views handed to *_each callbacks (store_generation, store_score, store_problem
 * string fields) point into LMDB's map and are valid only during that callback. Typed records
 * read with *_get are copies the caller owns (free the ones with a _free function).
 *
 * Map growth: a write that hits MDB_MAP_FULL is aborted, the map is doubled (no transaction
 * open, as LMDB requires) and the write retried: use store_write(), whose callback must be
 * replayable (it may run more than once; only the last run's effects are committed).
 * Stale readers (a killed tool's reader slot) are cleared at open and by store_maintain().
 *
 * A full store is an error, never corruption. "Full" is either
 *   STORE_ERR_MAP_FULL   the map reached its limit (store_set_map_max; 0 = no limit) or could not
 *                        be grown (mmap refused the address space), or
 *   STORE_ERR_DISK_FULL  the file system refused to extend data.mdb (ENOSPC, EDQUOT, EFBIG from
 *                        a file-size limit; also EIO from LMDB's "short write" when the file
 *                        system is nearly full or the file reached RLIMIT_FSIZE).
 * Either way the failed transaction is aborted whole (LMDB's last committed state is intact and
 * the store stays usable: readers go on, a later write may succeed once there is room), and
 * store_last_error() / the caller's err say what is full, the map size and the limit.
 * store_err_is_full() tells these two apart from real I/O failures.
 */
#ifndef THINKFAST_STORE_H
#define THINKFAST_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 1
#define STORE_DEFAULT_MAP_BYTES ((size_t)1 << 30)  /* 1 GiB initial map; grows on demand */

enum {
    STORE_OK = 0,
    STORE_ERR_NOTFOUND = -1,   /* no such key / job */
    STORE_ERR_MAP_FULL = -2,   /* map full (store_write handles it by growing) */
    STORE_ERR_CORRUPT = -3,    /* a record failed to decode */
    STORE_ERR_SCHEMA = -4,     /* schema version mismatch */
    STORE_ERR_IO = -5,         /* any other LMDB / file-system failure */
    STORE_ERR_READONLY = -6,   /* write attempted on a read-only store */
    STORE_ERR_DISK_FULL = -7,  /* the file system refused to extend the data file */
};
/* 1 for STORE_ERR_MAP_FULL and STORE_ERR_DISK_FULL (the store is full, not broken), else 0. */
int store_err_is_full(int rc);
const char *store_strerror(int rc);

typedef struct store store;
typedef struct store_txn store_txn;

/* ---- environment ---- */

/* Opens (creating when !readonly) the environment in directory dir. map_bytes 0 = default.
 * Read-write open creates the named databases and writes the schema version, and takes an
 * exclusive flock on DIR/writer.lock (a second writer process gets STORE_ERR_IO "already open
 * for writing by another process (pid N)"; the lock dies with the process); read-only open
 * fails with STORE_ERR_NOTFOUND if the directory holds no store, STORE_ERR_SCHEMA on a version
 * mismatch. One store per process (LMDB rule; never use across fork()). */
int store_open(const char *dir, int readonly, size_t map_bytes, store **out, char *err, size_t errlen);
/* Closes; *s = NULL. No transaction may be open. */
void store_close(store **s);
/* Durability: 0 = fsync every commit (default); 1 = MDB_NOSYNC ("fast, not durable"). */
void store_set_nosync(store *s, int nosync);
/* Periodic housekeeping: mdb_reader_check (clears stale reader slots). Returns slots cleared. */
int store_maintain(store *s);
size_t store_map_bytes(const store *s);
/* Doubles the map, capped at the limit (store_set_map_max). No transaction may be open.
 * STORE_ERR_MAP_FULL with err "... at its limit ..." when the map already is at the limit or
 * mmap cannot give the address space; STORE_ERR_IO for other failures. */
int store_grow(store *s, char *err, size_t errlen);
/* Largest map store_grow may reach, in bytes; 0 = unlimited (grow while the file system
 * allows). A limit below the current map size stops growth at the current size. Writer only. */
void store_set_map_max(store *s, size_t max_bytes);
size_t store_map_max(const store *s);
/* Bytes of the map in use (last page number + 1 times the page size; freed pages inside the
 * file are reused by LMDB, so this is the data file's high-water mark). */
size_t store_used_bytes(store *s);
const char *store_dir(const store *s);
/* Checks that about `bytes` more can be written, without changing the store: a write
 * transaction allocates that much (growing the map within its limit if needed) and is aborted;
 * and the file system has that much free (and RLIMIT_FSIZE leaves room past data.mdb). Returns
 * STORE_OK, STORE_ERR_MAP_FULL / STORE_ERR_DISK_FULL (err says what), or another STORE_ERR_*.
 * Used to leave a store-full state only with some headroom. No transaction may be open. */
int store_room_check(store *s, size_t bytes, char *err, size_t errlen);
int store_is_readonly(const store *s);
/* Text of the last LMDB failure on this store ("mdb_put(tasks): MDB_MAP_FULL ..."), or "". */
const char *store_last_error(const store *s);

/* ---- transactions ---- */
int store_txn_begin(store *s, int write, store_txn **out, char *err, size_t errlen);
/* Commits; *t = NULL either way. Returns STORE_ERR_MAP_FULL when the commit ran out of map. */
int store_txn_commit(store_txn **t, char *err, size_t errlen);
void store_txn_abort(store_txn **t);

/* Runs fn inside one write transaction and commits it. On STORE_ERR_MAP_FULL (from fn or from
 * the commit) the transaction is aborted, the map doubled and fn called again on a fresh
 * transaction, up to a few times. fn returns STORE_OK to commit, or a negative code to abort
 * (that code is returned). fn must therefore make no irreversible changes outside the txn.
 * When the store is full (the map cannot grow: its limit; or the disk: STORE_ERR_DISK_FULL,
 * which growing cannot help) the write is aborted whole and the full code returned, with err
 * naming what is full ("store: map full at its limit of 2 MiB ..." / "store: no space ..."). */
typedef int (*store_write_fn)(store_txn *t, void *ctx);
int store_write(store *s, store_write_fn fn, void *ctx, char *err, size_t errlen);

/* ---- counters (meta) ---- */
/* Returns the counter's next value and increments it (first value is 1). */
int store_next_id(store_txn *t, const char *counter, uint64_t *out);

/* ---- jobs ---- */
typedef struct store_job {
    uint64_t id;
    char name[128];
    char state[16];         /* queued | running | done | failed | cancelled */
    int32_t priority;
    int64_t created_ms, started_ms, finished_ms;  /* wall clock, 0 = not yet */
    uint32_t n_problems;    /* problems stored for the job */
    uint32_t n_samples;     /* samples per problem (sampling.n) */
    uint32_t chunk;         /* problems per sample chunk */
    uint32_t n_chunks;
    uint32_t max_attempts;
    uint32_t chunks_sampled, chunks_scored;     /* sample / score tasks done */
    uint64_t samples_done;  /* generations committed */
    uint64_t scores_done;   /* scores committed */
    uint32_t tasks_ready, tasks_leased, tasks_done, tasks_failed, tasks_cancelled;
    uint64_t agg_task;      /* pending aggregate task (0 = none) */
    int agg_dirty;          /* scores landed since the last aggregate task was leased */
    uint64_t agg_scores_at; /* scores_done when the last aggregate task was leased */
    int final_created;      /* the final aggregate task exists */
    uint64_t failed_task;   /* task that made the job fail (0 = none) */
    char error[512];        /* why the job failed ("" otherwise) */
    char *spec_json;        /* canonical job spec JSON (owned; store_job_free) */
    uint8_t *params;        /* task parameters as one msgpack map, prepared at submit (owned):
                             * {model:{..}, sampling:{..}, prompt:{..}, grader, k:[..], seed} */
    size_t params_len;
} store_job;

void store_job_free(store_job *j);          /* frees spec_json and params; keeps the struct */
/* "j-000001" into buf (cap >= 24). */
void store_job_id_format(uint64_t id, char *buf, size_t cap);
/* Parses "j-000001", "j-1" or "1". Returns 0 or -1. */
int store_job_id_parse(const char *text, uint64_t *out);

int store_job_get(store_txn *t, uint64_t id, store_job *out);          /* STORE_ERR_NOTFOUND */
int store_job_put(store_txn *t, const store_job *j);
/* Finds a job by id text ("j-000001", "1") or, failing that, by name (the newest job with that
 * name). Opens its own read transaction. Fills *out (caller frees with store_job_free). */
int store_job_find(store *s, const char *id_or_name, store_job *out, char *err, size_t errlen);
int store_job_find_txn(store_txn *t, const char *id_or_name, store_job *out);
/* Calls fn for every job in id order; fn returns nonzero to stop. j is valid during the call
 * (its spec_json too). Own read transaction. */
typedef int (*store_job_fn)(const store_job *j, void *ctx);
int store_jobs_each(store *s, store_job_fn fn, void *ctx, char *err, size_t errlen);
int store_jobs_each_txn(store_txn *t, store_job_fn fn, void *ctx);

/* ---- problems ---- */
typedef struct store_problem {
    uint32_t p;             /* index within the job */
    const char *id, *question, *solution, *answer, *subject;  /* never NULL ("" if absent) */
    int32_t level;
} store_problem;
int store_problem_put(store_txn *t, uint64_t job, const store_problem *p);
/* Reads one problem; the view is valid until the transaction ends. */
int store_problem_get(store_txn *t, uint64_t job, uint32_t p, store_problem *out);
typedef int (*store_problem_fn)(const store_problem *p, void *ctx);
int store_problems_each(store *s, uint64_t job, store_problem_fn fn, void *ctx, char *err, size_t errlen);
int store_problems_each_txn(store_txn *t, uint64_t job, store_problem_fn fn, void *ctx);

/* ---- tasks ---- (kinds and states: broker/tasks.h) */
typedef struct store_task {
    uint64_t id, job;
    int32_t kind;           /* BRK_KIND_SAMPLE | _SCORE | _AGGREGATE */
    int32_t state;          /* BRK_TASK_READY | _LEASED | _DONE | _FAILED | _CANCELLED */
    uint32_t chunk;         /* chunk index (sample/score); 0 for aggregate */
    uint32_t p_begin, p_end;  /* problem range [p_begin, p_end) */
    int32_t final;          /* aggregate: 1 = the final aggregation */
    int32_t priority;
    uint64_t seq;           /* position in the ready queue while ready */
    uint32_t attempt;       /* leases handed out so far (the current lease's number) */
    uint32_t failures;      /* failed attempts (fail messages, expired leases) */
    uint64_t outputs_done, outputs_total;
    char worker[64];        /* holder of the current lease ("" when none) */
    int64_t created_ms, leased_ms, finished_ms;   /* wall clock */
    char error[512];        /* last failure's error text */
} store_task;
int store_task_get(store_txn *t, uint64_t id, store_task *out);
int store_task_put(store_txn *t, const store_task *task);
typedef int (*store_task_fn)(const store_task *task, void *ctx);
/* Every task (id order); job 0 = all jobs, else only that job's tasks. */
int store_tasks_each_txn(store_txn *t, uint64_t job, store_task_fn fn, void *ctx);

/* ---- ready queue ---- */
int store_ready_push(store_txn *t, uint8_t role, int32_t priority, uint64_t seq, uint64_t task);
int store_ready_del(store_txn *t, uint8_t role, int32_t priority, uint64_t seq);
/* First (next) task of a role; STORE_ERR_NOTFOUND when the role's queue is empty. */
int store_ready_first(store_txn *t, uint8_t role, uint64_t *task);
/* Deletes the first entry of a role (repairs a dangling entry). NOTFOUND when empty. */
int store_ready_del_first(store_txn *t, uint8_t role);
/* Number of ready entries of a role (role 0 = all). */
uint64_t store_ready_count(store_txn *t, uint8_t role);

/* ---- leases ---- */
typedef struct store_lease {
    uint64_t task;
    char worker[64];
    uint32_t attempt;
    int64_t since_ms;       /* wall clock when leased */
} store_lease;
int store_lease_put(store_txn *t, const store_lease *l);
int store_lease_get(store_txn *t, uint64_t task, store_lease *out);
int store_lease_del(store_txn *t, uint64_t task);
typedef int (*store_lease_fn)(const store_lease *l, void *ctx);
int store_leases_each_txn(store_txn *t, store_lease_fn fn, void *ctx);

/* ---- generations (sample outputs) ---- */
typedef struct store_generation {
    uint32_t p, s;
    const char *text; uint32_t text_len;   /* view (see Lifetimes) */
    int64_t tokens;
    double time_s;          /* amortised GPU/CPU seconds */
    char finish[16];        /* "stop" | "length" */
    uint64_t task;          /* task that produced it */
} store_generation;
/* Idempotent insert: returns 1 if written, 0 if (job,p,s) already existed (nothing changed). */
int store_generation_put(store_txn *t, uint64_t job, const store_generation *g);
int store_generation_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_generation *out);
typedef int (*store_generation_fn)(uint64_t job, const store_generation *g, void *ctx);
/* (p, s) order. */
int store_generations_each(store *s, uint64_t job, store_generation_fn fn, void *ctx, char *err, size_t errlen);
int store_generations_each_txn(store_txn *t, uint64_t job, store_generation_fn fn, void *ctx);

/* The light view of a generation: every field but the text's bytes, read without copying or
 * decoding the text (which is most of the record). For the readers that need per-sample
 * numbers only (the aggregate payload reads time_s of every sample of a job, many times per
 * job). For the same record the fields equal store_generation's (one decoder fills both;
 * time_s 0 when the record has none, NaN when it is nil), and a record that is corrupt for
 * store_generation_get is corrupt here too: STORE_ERR_CORRUPT, store_last_error() saying
 * "corrupt record in generations: <what, at which offset>". The struct is a copy (no views). */
typedef struct store_generation_meta {
    uint32_t p, s;
    uint32_t text_len;      /* length of the text (not read) */
    int64_t tokens;
    double time_s;
    char finish[16];
    uint64_t task;
} store_generation_meta;
int store_generation_meta_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_generation_meta *out);
typedef int (*store_generation_meta_fn)(uint64_t job, const store_generation_meta *g, void *ctx);
/* (p, s) order, like store_generations_each_txn; fn returns nonzero to stop. */
int store_generations_meta_each_txn(store_txn *t, uint64_t job, store_generation_meta_fn fn, void *ctx);

/* ---- scores ---- */
typedef struct store_score {
    uint32_t p, s;
    const char *extracted, *canonical;     /* views; "" when none */
    int32_t correct;        /* 0 | 1 */
    double reward;          /* NaN when no reward model */
    const double *steps;    /* PRM step scores (view, like the strings: valid inside the txn for
                               store_score_get, during the callback for *_each); NULL and 0 for
                               ORM / no-reward jobs and records written before steps were stored */
    uint32_t n_steps;
} store_score;
/* Idempotent insert: 1 written, 0 already present. The record also gets the generation's
 * time_s when (job, p, s) has a generation (see store_score_meta). */
int store_score_put(store_txn *t, uint64_t job, const store_score *sc);
/* Overwrite (offline regrading, `jobctl rescore`): writes sc whether or not (job,p,s) had a score.
 * STORE_OK or a negative STORE_ERR_*. */
int store_score_replace(store_txn *t, uint64_t job, const store_score *sc);
int store_score_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_score *out);
typedef int (*store_score_fn)(uint64_t job, const store_score *sc, void *ctx);
int store_scores_each(store *s, uint64_t job, store_score_fn fn, void *ctx, char *err, size_t errlen);
int store_scores_each_txn(store_txn *t, uint64_t job, store_score_fn fn, void *ctx);

/* The light view of a score, for the aggregate: no extracted answer, no steps, and the sample's
 * time_s. store_score_put / _replace copy the generation's time_s (store_generation_meta) into
 * the score record when the generation exists, so the aggregate can read the small score
 * records alone instead of every generation; has_time_s is 0 for scores written before that
 * (or before their generation): read time_s from the generation then. canonical is a view that
 * is NOT NUL-terminated (canonical_len bytes; valid inside the txn for _get, during the
 * callback for _each). Fields equal store_score's for the same record (one decoder fills both);
 * a corrupt record is STORE_ERR_CORRUPT ("corrupt record in scores: ..."), as for the whole read. */
typedef struct store_score_meta {
    uint32_t p, s;
    const char *canonical; uint32_t canonical_len;
    int32_t correct;        /* 0 | 1 */
    double reward;          /* NaN when none */
    int has_time_s;         /* 1: time_s is the generation's (NaN if that was nil) */
    double time_s;          /* NaN when !has_time_s */
} store_score_meta;
int store_score_meta_get(store_txn *t, uint64_t job, uint32_t p, uint32_t s, store_score_meta *out);
typedef int (*store_score_meta_fn)(uint64_t job, const store_score_meta *sc, void *ctx);
/* (p, s) order; fn returns nonzero to stop. */
int store_scores_meta_each_txn(store_txn *t, uint64_t job, store_score_meta_fn fn, void *ctx);

/* ---- stats (aggregate record per job) ---- */
typedef struct store_stats {
    int32_t final;          /* 1 = from the final aggregation */
    int64_t updated_ms;
    uint64_t samples;       /* scores it was computed from */
    uint64_t task;          /* aggregate task that produced it */
    uint8_t *msgpack;       /* the stats map as msgpack bytes (owned; store_stats_free);
                             * decode with proto_parse_value (jobs/proto.h), print with
                             * proto_val_to_json */
    size_t msgpack_len;
} store_stats;
void store_stats_free(store_stats *st);
int store_stats_put(store_txn *t, uint64_t job, const store_stats *st);
int store_stats_get_txn(store_txn *t, uint64_t job, store_stats *out);
/* Own read transaction; STORE_ERR_NOTFOUND before the first aggregation. */
int store_stats_get(store *s, uint64_t job, store_stats *out, char *err, size_t errlen);

/* ---- workers (registry mirror, for `workers` listings and offline inspection) ---- */
typedef struct store_worker {
    char id[64];
    char role[16];
    char host[64];
    int64_t pid;
    uint32_t credit;        /* capacity: tasks it can hold at once */
    uint32_t leased;
    int64_t registered_ms, last_seen_ms;   /* wall clock */
    char state[16];         /* "up" | "gone" */
} store_worker;
int store_worker_put(store_txn *t, const store_worker *w);
int store_worker_get(store_txn *t, const char *id, store_worker *out);
typedef int (*store_worker_fn)(const store_worker *w, void *ctx);
int store_workers_each_txn(store_txn *t, store_worker_fn fn, void *ctx);

#endif
