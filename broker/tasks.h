/* broker/tasks.h — task kinds, the task state machine, and the payload / output contract
 * between the broker and the worker roles. Implemented by broker/taskq.c (state machine on the
 * store) and broker/payload.c (payload builders); workers code against the documentation here.
 *
 * A sampling job is a DAG of tasks, created as it runs:
 *
 *     sample chunk 0 ──► score chunk 0 ──┐
 *     sample chunk 1 ──► score chunk 1 ──┼──► aggregate (incremental, coalesced: ≤ 1 pending)
 *     ...                                │
 *     sample chunk C-1 ► score chunk C-1 ┴──► aggregate (final, after every score chunk) ─► job done
 *
 *   - every sample chunk (`chunk` consecutive problems, all `n` samples each) is ready at submit;
 *   - score chunk c is created ready the moment sample chunk c is done;
 *   - when a score chunk is done, no aggregate task of the job is pending, and at least 10% of
 *     the job's scores landed since the last aggregation was leased, an incremental aggregate
 *     task is created (later score chunks coalesce into the next one);
 *   - when the last score chunk is done the final aggregate task is created; when it is done the
 *     job is done. An incremental result never overwrites a final one.
 *
 * Task state machine (every transition is one LMDB write, committed before anything is sent):
 *
 *                 lease (worker `ready`, credit left)
 *       ┌───────┐ ──────────────────────────────► ┌────────┐  result final:true, complete
 *   ──► │ READY │                                 │ LEASED │ ───────────────────────────► DONE
 *       └───────┘ ◄────────────────────────────── └────────┘
 *          │   ▲     lease expired / `fail` / worker       │  failures == max_attempts
 *          │   │     disconnect / broker restart           └──────────────────────────► FAILED
 *          │   └──── (re-queued at the back of its priority)        (job failed, error kept)
 *          │
 *          └── job cancelled or failed ──► CANCELLED  (LEASED too: the worker gets `cancel`)
 *
 *   failures counts `fail` messages, expired leases and incomplete final results; a clean worker
 *   `disconnect` and a broker restart re-queue WITHOUT counting (not the task's fault).
 *   Restart recovery: on start the broker re-queues every leased task (no worker is registered
 *   after a restart; workers get `reregister` and reconnect), then the job resumes.
 *
 * Wire details (see jobs/proto.h for the frames):
 *   task   {task: uint id, attempt: uint, job: "j-000001", kind: "sample"|"score"|"aggregate",
 *           lease_ms: uint, payload: {...}}
 *   result {task, attempt, final: bool, outputs: [...], telemetry: {...}}  ->  ack {task, final}
 *     results may be streamed: several `result` messages (final:false) then one final:true,
 *     each at most ~1 MB. Every output is committed idempotently keyed by (job, p, s): a
 *     duplicate (redelivery) is acked and changes nothing. A final result from the lease holder
 *     whose task still lacks outputs counts as a failed attempt (its outputs are kept). A result
 *     for a task that is done / cancelled, or of a finished job, is acked and dropped. A result
 *     (of any attempt, from any registered worker) for an unfinished task is accepted; if it
 *     completes the task while another worker holds the lease, that worker gets `cancel`.
 *     Malformed outputs (p outside the task's problems, s >= n, wrong types) are answered with
 *     `error {task, error}` and nothing of that message is committed. So is every result while
 *     the store is full (error "store full: ..."; broker/broker.h): it is not acked, and once a
 *     write succeeds again the task is re-queued without counting an attempt and its holder gets
 *     `cancel`, so the refused outputs are produced again (a worker only logs such an error).
 *   Messages from a peer that never sent `ready` (or was dropped after its leases expired) are
 *     answered with `reregister` and otherwise ignored.
 *   fail   {task, attempt, error: "text"}  ->  no reply; counted against max attempts.
 *   ready  {worker: "id", role, credit, host, pid}: credit is the worker's CAPACITY (how many
 *     tasks it can hold at once), not a delta: the broker leases while leased < credit. A
 *     `heartbeat {worker, credit}` may change it. A task's slot frees on its final result, on
 *     `fail`, or when the broker sends `cancel {task}`.
 *
 * Payloads (broker -> worker, in `task.payload`) and outputs (worker -> broker, `result.outputs`):
 *
 * sample  payload {job, chunk, model:{backend, corrupt, path, device},
 *                  sampling:{n, temperature, top_p, top_k, min_p, max_tokens, seed, stop:[str...]},
 *                  prompt:{template, system},
 *                  problems:[{p: index, id, question, solution, answer}]}
 *         outputs: one map per (problem, sample), s in [0, n):
 *                  {p, s, text, tokens: int, time_s: float, finish: "stop"|"length"}
 * score   payload {job, chunk, grader: "gsm8k"|"math", items:[{p, s, text, answer, question?}],
 *                  reward?: {model, kind: "orm"|"prm", device, prm_token, prm_separator,
 *                            prm_aggregate, prm_bad_token? (only when set)},
 *                  prompt?: {template, system}}
 *                  (reward, prompt and each item's question only when the job has score.reward)
 *         outputs: [{p, s, extracted: str, canonical: str, correct: bool|0/1, reward?: float,
 *                    steps?: [f64...] (PRM step scores; stored with the score, nil = NaN)}]
 * aggregate payload {job, final: bool, k:[int...], seed: uint,
 *                  problems:[{p, subject?, level?, correct:[0/1...], canonical:[str...],
 *                             reward:[f64...], time_s:[f64...]}]}
 *                  (samples in s order; reward NaN when none; subject/level when the dataset
 *                   has them: they add the by_subject / by_level breakdowns)
 *         outputs: [{stats: <map>}]  (the agg_stats as a msgpack map with the same keys as its
 *                  JSON: {"k":[...],"coverage":[...],"majority":[...],"problems":N,"samples":M,...})
 */
#ifndef THINKFAST_BRK_TASKS_H
#define THINKFAST_BRK_TASKS_H

/* Task kinds; also the worker role bytes of the ready queue's keys. */
typedef enum {
    BRK_KIND_SAMPLE = 1,
    BRK_KIND_SCORE = 2,
    BRK_KIND_AGGREGATE = 3,
} brk_kind;
#define BRK_N_KINDS 4

typedef enum {
    BRK_TASK_READY = 0,
    BRK_TASK_LEASED = 1,
    BRK_TASK_DONE = 2,
    BRK_TASK_FAILED = 3,
    BRK_TASK_CANCELLED = 4,
} brk_task_state;

/* Names: "sample" | "score" | "aggregate"; "ready" | "leased" | "done" | "failed" | "cancelled".
 * Unknown values give "?". */
const char *brk_kind_name(int kind);
const char *brk_task_state_name(int state);
/* Parses a role / kind name; returns the kind or -1. */
int brk_kind_parse(const char *name);

#endif
