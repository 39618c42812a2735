/* broker/payload.c — task payload builders and result-output commit (broker/payload.h). */
#include "broker/payload.h"

#include "broker/tasks.h"
#include "common/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void payload_params_encode(const job_spec *spec, uint8_t **out, size_t *len) {
    proto_writer *w = proto_writer_new(NULL, 0);
    int has_reward = spec->score.reward.model[0] != 0; /* optional reward model (REWARD engineer) */
    proto_w_map(w, has_reward ? 7 : 6);
    proto_w_key(w, "model");
    proto_w_map(w, 4);
    proto_w_key(w, "backend"); proto_w_str(w, spec->model.backend);
    proto_w_key(w, "corrupt"); proto_w_f64(w, spec->model.corrupt);
    proto_w_key(w, "path"); proto_w_str(w, spec->model.path);
    proto_w_key(w, "device"); proto_w_str(w, spec->model.device);
    proto_w_key(w, "sampling");
    proto_w_map(w, 8);
    proto_w_key(w, "n"); proto_w_i64(w, spec->sampling.n);
    proto_w_key(w, "temperature"); proto_w_f64(w, spec->sampling.temperature);
    proto_w_key(w, "top_p"); proto_w_f64(w, spec->sampling.top_p);
    proto_w_key(w, "top_k"); proto_w_i64(w, spec->sampling.top_k);
    proto_w_key(w, "min_p"); proto_w_f64(w, spec->sampling.min_p);
    proto_w_key(w, "max_tokens"); proto_w_i64(w, spec->sampling.max_tokens);
    proto_w_key(w, "seed"); proto_w_u64(w, spec->sampling.seed);
    proto_w_key(w, "stop");
    int ns = spec->sampling.n_stop < 0 ? 0 : spec->sampling.n_stop > JOB_SPEC_MAX_STOP ? JOB_SPEC_MAX_STOP : spec->sampling.n_stop;
    proto_w_array(w, (uint32_t)ns);
    for (int i = 0; i < ns; i++) proto_w_str(w, spec->sampling.stop[i]);
    proto_w_key(w, "prompt");
    proto_w_map(w, 2);
    proto_w_key(w, "template"); proto_w_str(w, spec->prompt.template_name);
    proto_w_key(w, "system"); proto_w_str(w, spec->prompt.system);
    proto_w_key(w, "grader"); proto_w_str(w, spec->score.grader);
    proto_w_key(w, "k");
    int nk = spec->aggregate.n_k < 0 ? 0 : spec->aggregate.n_k > JOB_SPEC_MAX_K ? JOB_SPEC_MAX_K : spec->aggregate.n_k;
    proto_w_array(w, (uint32_t)nk);
    for (int i = 0; i < nk; i++) proto_w_i64(w, spec->aggregate.k[i]);
    proto_w_key(w, "seed"); proto_w_u64(w, spec->sampling.seed);
    if (has_reward) {
        proto_w_key(w, "reward");
        int has_bad = spec->score.reward.prm_bad_token[0] != 0;
        proto_w_map(w, has_bad ? 7 : 6);
        proto_w_key(w, "model"); proto_w_str(w, spec->score.reward.model);
        proto_w_key(w, "kind"); proto_w_str(w, spec->score.reward.kind);
        proto_w_key(w, "device"); proto_w_str(w, spec->score.reward.device);
        proto_w_key(w, "prm_token"); proto_w_str(w, spec->score.reward.prm_token);
        proto_w_key(w, "prm_separator"); proto_w_str(w, spec->score.reward.prm_separator);
        proto_w_key(w, "prm_aggregate"); proto_w_str(w, spec->score.reward.prm_aggregate);
        if (has_bad) { proto_w_key(w, "prm_bad_token"); proto_w_str(w, spec->score.reward.prm_bad_token); }
    }
    size_t n;
    const void *d = proto_writer_data(w, &n);
    *out = xmalloc(n);
    memcpy(*out, d, n);
    *len = n;
    proto_writer_destroy(&w);
}

/* Writes params[key] or an empty map / nil when the stored params lack it. */
static void w_param(proto_writer *w, const proto_val *params, const char *key, int as_map) {
    const proto_val *v = proto_get(params, key);
    if (v) proto_w_val(w, v);
    else if (as_map) proto_w_map(w, 0);
    else proto_w_nil(w);
}

static int write_sample(store_txn *t, const store_job *job, const store_task *task, const proto_val *params,
                        proto_writer *w) {
    char jid[24];
    store_job_id_format(job->id, jid, sizeof jid);
    proto_w_map(w, 6);
    proto_w_key(w, "job"); proto_w_str(w, jid);
    proto_w_key(w, "chunk"); proto_w_u64(w, task->chunk);
    proto_w_key(w, "model"); w_param(w, params, "model", 1);
    proto_w_key(w, "sampling"); w_param(w, params, "sampling", 1);
    proto_w_key(w, "prompt"); w_param(w, params, "prompt", 1);
    proto_w_key(w, "problems");
    proto_w_array(w, task->p_end - task->p_begin);
    for (uint32_t p = task->p_begin; p < task->p_end; p++) {
        store_problem pr;
        int rc = store_problem_get(t, job->id, p, &pr);
        if (rc) return rc;
        proto_w_map(w, 5);
        proto_w_key(w, "p"); proto_w_u64(w, p);
        proto_w_key(w, "id"); proto_w_str(w, pr.id);
        proto_w_key(w, "question"); proto_w_str(w, pr.question);
        proto_w_key(w, "solution"); proto_w_str(w, pr.solution);
        proto_w_key(w, "answer"); proto_w_str(w, pr.answer);
    }
    return STORE_OK;
}

static int write_score(store_txn *t, const store_job *job, const store_task *task, const proto_val *params,
                       proto_writer *w) {
    char jid[24];
    store_job_id_format(job->id, jid, sizeof jid);
    /* with a reward model the scorer also needs the prompt: {template, system} + each question */
    const proto_val *reward = proto_get(params, "reward");
    proto_w_map(w, reward ? 6 : 4);
    proto_w_key(w, "job"); proto_w_str(w, jid);
    proto_w_key(w, "chunk"); proto_w_u64(w, task->chunk);
    proto_w_key(w, "grader"); w_param(w, params, "grader", 0);
    if (reward) {
        proto_w_key(w, "reward"); proto_w_val(w, reward);
        proto_w_key(w, "prompt"); w_param(w, params, "prompt", 1);
    }
    proto_w_key(w, "items");
    /* a score chunk is released only when its sample chunk is complete: every (p, s) exists */
    proto_w_array(w, (task->p_end - task->p_begin) * job->n_samples);
    for (uint32_t p = task->p_begin; p < task->p_end; p++) {
        store_problem pr;
        int rc = store_problem_get(t, job->id, p, &pr);
        if (rc) return rc;
        for (uint32_t s = 0; s < job->n_samples; s++) {
            store_generation g;
            rc = store_generation_get(t, job->id, p, s, &g);
            if (rc == STORE_ERR_NOTFOUND) { g.text = ""; g.text_len = 0; }
            else if (rc) return rc;
            proto_w_map(w, reward ? 5 : 4);
            proto_w_key(w, "p"); proto_w_u64(w, p);
            proto_w_key(w, "s"); proto_w_u64(w, s);
            proto_w_key(w, "text"); proto_w_strn(w, g.text, g.text_len);
            proto_w_key(w, "answer"); proto_w_str(w, pr.answer);
            if (reward) { proto_w_key(w, "question"); proto_w_str(w, pr.question); }
        }
    }
    return STORE_OK;
}

/* Aggregate input, gathered from the scores (and generation times) before writing. */
typedef struct {
    uint32_t n_problems, n_samples;
    uint8_t *have, *correct;     /* [p * n + s] */
    char **canonical;
    double *reward, *time_s;
    uint64_t untimed;            /* scores without the generation's time_s (older records) */
} agg_in;

/* Fallback for scores written without time_s: the generation's, read light (no text). */
static int agg_time_cb(uint64_t job, const store_generation_meta *g, void *ctx) {
    agg_in *a = ctx;
    if (g->p < a->n_problems && g->s < a->n_samples) a->time_s[(size_t)g->p * a->n_samples + g->s] = g->time_s;
    return 0;
}
/* Light score reads: everything the aggregate needs, time_s included, from the small records. */
static int agg_score_cb(uint64_t job, const store_score_meta *sc, void *ctx) {
    agg_in *a = ctx;
    if (sc->p >= a->n_problems || sc->s >= a->n_samples) return 0;
    size_t i = (size_t)sc->p * a->n_samples + sc->s;
    a->have[i] = 1;
    a->correct[i] = (uint8_t)(sc->correct ? 1 : 0);
    size_t n = strnlen(sc->canonical, sc->canonical_len);   /* a view: not NUL-terminated */
    a->canonical[i] = xmalloc(n + 1);
    memcpy(a->canonical[i], sc->canonical, n);
    a->canonical[i][n] = 0;
    a->reward[i] = sc->reward;
    if (sc->has_time_s) a->time_s[i] = sc->time_s;
    else a->untimed++;
    return 0;
}

static int write_aggregate(store_txn *t, const store_job *job, const store_task *task, const proto_val *params,
                           proto_writer *w) {
    char jid[24];
    store_job_id_format(job->id, jid, sizeof jid);
    size_t total = (size_t)job->n_problems * job->n_samples;
    agg_in a = {.n_problems = job->n_problems, .n_samples = job->n_samples};
    a.have = xcalloc(total, 1);
    a.correct = xcalloc(total, 1);
    a.canonical = xcalloc(total, sizeof(char *));
    a.reward = xmalloc(total * sizeof(double));
    a.time_s = xmalloc(total * sizeof(double));
    for (size_t i = 0; i < total; i++) { a.reward[i] = NAN; a.time_s[i] = NAN; }
    /* scores first: each carries its generation's time_s when written by this version; the
     * generations (~1 KB of text each, 500 x 1024 per job) are walked only for older scores */
    int rc = store_scores_meta_each_txn(t, job->id, agg_score_cb, &a);
    if (!rc && a.untimed) rc = store_generations_meta_each_txn(t, job->id, agg_time_cb, &a);
    if (!rc) {
        uint32_t n_with = 0;
        for (uint32_t p = 0; p < job->n_problems; p++) {
            int any = 0;
            for (uint32_t s = 0; s < job->n_samples && !any; s++) any = a.have[(size_t)p * job->n_samples + s];
            n_with += (uint32_t)any;
        }
        proto_w_map(w, 5);
        proto_w_key(w, "job"); proto_w_str(w, jid);
        proto_w_key(w, "final"); proto_w_bool(w, task->final);
        proto_w_key(w, "k"); w_param(w, params, "k", 0);
        proto_w_key(w, "seed"); w_param(w, params, "seed", 0);
        proto_w_key(w, "problems");
        proto_w_array(w, n_with);
        for (uint32_t p = 0; p < job->n_problems; p++) {
            size_t base = (size_t)p * job->n_samples;
            uint32_t cnt = 0;
            for (uint32_t s = 0; s < job->n_samples; s++) cnt += a.have[base + s];
            if (!cnt) continue;
            /* subject/level (MATH, synth) feed the aggregator's breakdowns */
            store_problem pr;
            int meta = store_problem_get(t, job->id, p, &pr) == STORE_OK && (pr.subject[0] || pr.level > 0);
            proto_w_map(w, meta ? 7 : 5);
            proto_w_key(w, "p"); proto_w_u64(w, p);
            if (meta) {
                proto_w_key(w, "subject"); proto_w_str(w, pr.subject);
                proto_w_key(w, "level"); proto_w_i64(w, pr.level);
            }
            proto_w_key(w, "correct"); proto_w_array(w, cnt);
            for (uint32_t s = 0; s < job->n_samples; s++) if (a.have[base + s]) proto_w_u64(w, a.correct[base + s]);
            proto_w_key(w, "canonical"); proto_w_array(w, cnt);
            for (uint32_t s = 0; s < job->n_samples; s++) if (a.have[base + s]) proto_w_str(w, a.canonical[base + s]);
            proto_w_key(w, "reward"); proto_w_array(w, cnt);
            for (uint32_t s = 0; s < job->n_samples; s++) if (a.have[base + s]) proto_w_f64(w, a.reward[base + s]);
            proto_w_key(w, "time_s"); proto_w_array(w, cnt);
            for (uint32_t s = 0; s < job->n_samples; s++) if (a.have[base + s]) proto_w_f64(w, a.time_s[base + s]);
        }
    }
    for (size_t i = 0; i < total; i++) free(a.canonical[i]);
    free(a.have); free(a.correct); free(a.canonical); free(a.reward); free(a.time_s);
    return rc;
}

int payload_write(store_txn *t, const store_job *job, const store_task *task, proto_writer *w) {
    proto_msg *pm = NULL;
    char e[128];
    const proto_val *params = NULL;
    if (job->params && proto_parse_value(job->params, job->params_len, &pm, e, sizeof e) == PROTO_OK)
        params = proto_root(pm);
    int rc;
    switch (task->kind) {
    case BRK_KIND_SAMPLE: rc = write_sample(t, job, task, params, w); break;
    case BRK_KIND_SCORE: rc = write_score(t, job, task, params, w); break;
    case BRK_KIND_AGGREGATE: rc = write_aggregate(t, job, task, params, w); break;
    default: proto_w_map(w, 0); rc = STORE_OK; break;
    }
    proto_msg_destroy(&pm);
    return rc;
}

/* ---- outputs ---- */

static int get_ps(const proto_val *o, const store_job *job, const store_task *task, uint32_t i,
                  uint32_t *p, uint32_t *s, char *err, size_t errlen) {
    uint64_t pu, su;
    if (proto_get_u64(o, "p", &pu) != 0)
        return util_err(err, errlen, "outputs[%u].p: missing or not a non-negative integer", i), 1;
    if (pu < task->p_begin || pu >= task->p_end)
        return util_err(err, errlen, "outputs[%u].p: %llu outside this task's problems [%u, %u)", i,
                        (unsigned long long)pu, task->p_begin, task->p_end), 1;
    if (proto_get_u64(o, "s", &su) != 0)
        return util_err(err, errlen, "outputs[%u].s: missing or not a non-negative integer", i), 1;
    if (su >= job->n_samples)
        return util_err(err, errlen, "outputs[%u].s: %llu outside [0, %u)", i, (unsigned long long)su, job->n_samples), 1;
    *p = (uint32_t)pu;
    *s = (uint32_t)su;
    return 0;
}

static int check_sample(const proto_val *o, const store_job *job, const store_task *task, uint32_t i,
                        store_generation *g, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    if (get_ps(o, job, task, i, &g->p, &g->s, err, errlen)) return 1;
    if (proto_get_str(o, "text", &g->text, &g->text_len) != 0)
        return util_err(err, errlen, "outputs[%u].text: missing or not a string", i), 1;
    if (proto_get(o, "tokens") && proto_get_i64(o, "tokens", &g->tokens) != 0)
        return util_err(err, errlen, "outputs[%u].tokens: not an integer", i), 1;
    if (proto_get(o, "time_s") && proto_get_f64(o, "time_s", &g->time_s) != 0)
        return util_err(err, errlen, "outputs[%u].time_s: not a number", i), 1;
    const char *fin = "stop";
    uint32_t fl = 4;
    if (proto_get(o, "finish") && (proto_get_str(o, "finish", &fin, &fl) != 0 || fl >= sizeof g->finish))
        return util_err(err, errlen, "outputs[%u].finish: not a short string", i), 1;
    memcpy(g->finish, fin, fl);
    g->finish[fl] = 0;
    g->task = task->id;
    return 0;
}

static int check_score(const proto_val *o, const store_job *job, const store_task *task, uint32_t i,
                       store_score *sc, char *err, size_t errlen) {
    memset(sc, 0, sizeof *sc);
    if (get_ps(o, job, task, i, &sc->p, &sc->s, err, errlen)) return 1;
    sc->extracted = "";
    sc->canonical = "";
    if (proto_get(o, "extracted") && proto_get_str(o, "extracted", &sc->extracted, NULL) != 0)
        return util_err(err, errlen, "outputs[%u].extracted: not a string", i), 1;
    if (proto_get(o, "canonical") && proto_get_str(o, "canonical", &sc->canonical, NULL) != 0)
        return util_err(err, errlen, "outputs[%u].canonical: not a string", i), 1;
    int c;
    if (proto_get_bool(o, "correct", &c) != 0)
        return util_err(err, errlen, "outputs[%u].correct: missing or not a bool / 0 / 1", i), 1;
    sc->correct = c;
    sc->reward = NAN;
    const proto_val *rv = proto_get(o, "reward");
    if (rv && rv->type != PV_NIL && proto_get_f64(o, "reward", &sc->reward) != 0)
        return util_err(err, errlen, "outputs[%u].reward: not a number", i), 1;
    const proto_val *st = proto_get(o, "steps");
    if (st && st->type != PV_NIL) {
        if (st->type != PV_ARRAY) return util_err(err, errlen, "outputs[%u].steps: not an array", i), 1;
        for (uint32_t j = 0; j < st->v.arr.n; j++) {
            proto_type ty = st->v.arr.items[j].type;
            if (ty != PV_FLOAT && ty != PV_INT && ty != PV_UINT && ty != PV_NIL)
                return util_err(err, errlen, "outputs[%u].steps[%u]: not a number", i, j), 1;
        }
    }
    return 0;
}

/* The validated steps array of a score output as doubles (nil = NaN), malloc'd; NULL and 0
 * when absent or empty. */
static double *score_steps(const proto_val *o, uint32_t *n) {
    const proto_val *st = proto_get(o, "steps");
    *n = 0;
    if (!st || st->type != PV_ARRAY || st->v.arr.n == 0) return NULL;
    double *d = xmalloc(sizeof(double) * st->v.arr.n);
    for (uint32_t j = 0; j < st->v.arr.n; j++) {
        const proto_val *e = &st->v.arr.items[j];
        d[j] = e->type == PV_FLOAT ? e->v.f : e->type == PV_INT ? (double)e->v.i
             : e->type == PV_UINT ? (double)e->v.u : NAN;
    }
    *n = st->v.arr.n;
    return d;
}

int payload_commit_outputs(store_txn *t, const store_job *job, const store_task *task,
                           const proto_val *outputs, int64_t now_ms, uint64_t *new_outputs,
                           char *err, size_t errlen) {
    *new_outputs = 0;
    if (!outputs) return 0;
    if (outputs->type != PV_ARRAY) return util_err(err, errlen, "outputs: not an array"), 1;
    uint32_t n = outputs->v.arr.n;
    const proto_val *items = outputs->v.arr.items;
    if (task->kind == BRK_KIND_AGGREGATE) {
        if (n == 0) return 0;
        if (n != 1) return util_err(err, errlen, "outputs: an aggregate task has exactly one output, got %u", n), 1;
        const proto_val *sv = proto_get_map(&items[0], "stats");
        if (!sv) return util_err(err, errlen, "outputs[0].stats: missing or not a map"), 1;
        store_stats old;
        int rc = store_stats_get_txn(t, job->id, &old);
        if (rc == STORE_OK) {
            int keep_old = old.final && !task->final;
            int same = old.task == task->id;
            store_stats_free(&old);
            if (keep_old || same) return 0;   /* never overwrite a final record; redelivery */
        } else if (rc != STORE_ERR_NOTFOUND) {
            return rc;
        }
        proto_writer *w = proto_writer_new(NULL, 0);
        proto_w_val(w, sv);
        size_t len;
        const void *d = proto_writer_data(w, &len);
        store_stats st = {.final = task->final, .updated_ms = now_ms, .samples = job->scores_done,
                          .task = task->id, .msgpack = (uint8_t *)d, .msgpack_len = len};
        rc = store_stats_put(t, job->id, &st);
        proto_writer_destroy(&w);
        if (rc) return rc;
        *new_outputs = 1;
        return 0;
    }
    if (task->kind != BRK_KIND_SAMPLE && task->kind != BRK_KIND_SCORE)
        return util_err(err, errlen, "task kind %d takes no outputs", task->kind), 1;
    /* validate everything first: a malformed message commits nothing */
    for (uint32_t i = 0; i < n; i++) {
        if (items[i].type != PV_MAP) return util_err(err, errlen, "outputs[%u]: not a map", i), 1;
        if (task->kind == BRK_KIND_SAMPLE) {
            store_generation g;
            if (check_sample(&items[i], job, task, i, &g, err, errlen)) return 1;
        } else {
            store_score sc;
            if (check_score(&items[i], job, task, i, &sc, err, errlen)) return 1;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        int rc;
        if (task->kind == BRK_KIND_SAMPLE) {
            store_generation g;
            check_sample(&items[i], job, task, i, &g, err, errlen);
            rc = store_generation_put(t, job->id, &g);
        } else {
            store_score sc;
            check_score(&items[i], job, task, i, &sc, err, errlen);
            double *steps = score_steps(&items[i], &sc.n_steps);
            sc.steps = steps;
            rc = store_score_put(t, job->id, &sc);
            free(steps);
        }
        if (rc < 0) return rc;
        *new_outputs += (uint64_t)rc;
    }
    return 0;
}
