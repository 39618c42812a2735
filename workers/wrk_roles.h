/* workers/wrk_roles.h — the worker roles: sample, score, aggregate.
 *
 * Each role turns a task payload (broker/tasks.h documents every field) into outputs emitted
 * through wrk_task_emit, one msgpack map per output:
 *   sample    -> {p, s, text, tokens, time_s, finish}            (wrk_sample.c, via the backend cache)
 *   score     -> {p, s, extracted, canonical, correct}           (wrk_score.c, grade.h)
 *   aggregate -> {stats: <agg_stats map, keys as agg_stats_to_json>} (wrk_aggregate.c)
 * Payloads come from the network: every field is validated and a bad payload is an error (the
 * task fails with a message naming the field), never a crash.
 *
 * Test-only fault injection: THINKFAST_FAULT_CRASH_PROBLEM=N makes the sample role abort() when
 * it reaches problem N (used by the integration tests for poison tasks).
 */
#ifndef THINKFAST_WRK_ROLES_H
#define THINKFAST_WRK_ROLES_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/proto.h"
#include "workers/wrk_task.h"

typedef struct wrk_roles wrk_roles;

/* Per-process state of the roles (the sample role's backend cache). */
wrk_roles *wrk_roles_new(void);
void wrk_roles_destroy(wrk_roles **r);

/* A wrk_role_fn: dispatches on t->kind. ctx is a wrk_roles *. */
int wrk_roles_run(void *ctx, wrk_task *t, char *err, size_t errlen);

int wrk_sample_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen);
int wrk_score_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen);
int wrk_aggregate_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen);

/* Converts JSON text to one msgpack value appended to w (objects -> maps in key order, integers
 * -> int, reals -> float64, null -> nil). Used to ship agg_stats (whose JSON is the reference
 * form) as msgpack, and by `jobctl reaggregate` to print exactly what the online path stores.
 * 0 ok, -1 with err set. */
/* The aggregate computation shared by the aggregate role and `jobctl reaggregate`, so both
 * produce the same bytes: aggregate_compute, agg_stats_to_json, then that JSON as msgpack
 * appended to w. 0 ok, -1 with err set. (struct agg_problem: workers/aggregate/aggregate.h) */
struct agg_problem;
int wrk_aggregate_stats(const struct agg_problem *problems, int n_problems, const int *k, int n_k, uint64_t seed,
                        proto_writer *w, char *err, size_t errlen);

int wrk_json_to_msgpack(const char *json, size_t len, proto_writer *w, char *err, size_t errlen);

#endif
