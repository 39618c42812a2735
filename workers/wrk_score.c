/* workers/wrk_score.c — the score role: grade each (p, s) text against its reference answer and
 * emit {p, s, extracted, canonical, correct}. canonical is grade_canonical of the extracted
 * answer, the key majority voting groups by ("" = no answer, no vote).
 * With a reward model in the payload ({reward:{model, kind, device, prm_*}, prompt:{template,
 * system}}, items carrying their question), every output also gets `reward` (float) and, for a
 * process RM, `steps` (the per-step scores): workers/score/reward.h. The reward model reads the
 * rendered prompt + the response; with the llama3-chat template an outcome RM also gets the
 * assistant turn's closing "<|eot_id|>" (as chat reward models are trained on the full turn;
 * the sampler's text stops before it). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/prompt.h"
#include "workers/score/grade.h"
#include "workers/score/reward.h"
#include "workers/wrk_roles.h"

/* The loaded reward model, kept across tasks of the process (loading is the expensive part).
 * File-local because wrk_roles has no slot for it yet; the mutex serialises scorers. */
static pthread_mutex_t rw_mu = PTHREAD_MUTEX_INITIALIZER;
static reward_cache *rw_cache;

static const char *pstr(const proto_val *m, const char *key, char *buf, size_t cap) {
    const char *v;
    uint32_t len;
    if (!m || proto_get_str(m, key, &v, &len) != 0) return NULL;
    snprintf(buf, cap, "%.*s", (int)len, v);
    return buf;
}

/* A NUL-terminated copy of item[key] ("" when absent): msgpack strings are not terminated. */
static char *item_str(const proto_val *it, const char *key) {
    const char *v;
    uint32_t len;
    if (proto_get_str(it, key, &v, &len) != 0) { v = ""; len = 0; }
    char *d = xmalloc((size_t)len + 1);
    memcpy(d, v, len);
    d[len] = 0;
    return d;
}

/* Scores every item with the payload's reward model into out[n]. Items must be maps. */
static int score_rewards(const proto_val *pl, const proto_val *items, uint32_t n, reward_result *out, char *err,
                         size_t errlen) {
    const proto_val *rw = proto_get_map(pl, "reward");
    const proto_val *pr = proto_get_map(pl, "prompt");
    if (!rw) return util_err(err, errlen, "score payload: reward: expected a map");
    char model[1024], kind[16], dev[64], tokn[256], sep[128], agg[16], bad[256], tmpl[64], sys[1024];
    reward_spec rs = {pstr(rw, "model", model, sizeof model), pstr(rw, "kind", kind, sizeof kind),
                      pstr(rw, "device", dev, sizeof dev), pstr(rw, "prm_token", tokn, sizeof tokn),
                      pstr(rw, "prm_separator", sep, sizeof sep), pstr(rw, "prm_aggregate", agg, sizeof agg),
                      pstr(rw, "prm_bad_token", bad, sizeof bad)};
    if (!rs.model || !*rs.model) return util_err(err, errlen, "score payload: reward.model: expected a model directory");
    const char *tp = pstr(pr, "template", tmpl, sizeof tmpl), *sp = pstr(pr, "system", sys, sizeof sys);
    if (!tp || !*tp) tp = "plain";
    uint32_t cap = n ? n : 1;
    reward_item *it = xcalloc(cap, sizeof *it);
    util_buf *prompts = xcalloc(cap, sizeof *prompts);
    char **resp = xcalloc(cap, sizeof *resp);
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) util_buf_init(&prompts[i]);
    for (uint32_t i = 0; i < n && !rc; i++) {
        const proto_val *x = &items->v.arr.items[i];
        char *q = item_str(x, "question");
        job_problem jp;
        memset(&jp, 0, sizeof jp);
        jp.id = jp.solution = jp.answer = jp.subject = (char *)"";
        jp.question = q;
        if (prompt_render(tp, sp, &jp, &prompts[i], err, errlen) != 0) rc = -1;
        util_buf_append(&prompts[i], "", 1); /* NUL */
        free(q);
        resp[i] = item_str(x, "text");
        if (!strcmp(tp, "llama3-chat") && (!rs.kind || strcmp(rs.kind, "prm") != 0)) {
            size_t l = strlen(resp[i]);
            resp[i] = xrealloc(resp[i], l + sizeof "<|eot_id|>");
            memcpy(resp[i] + l, "<|eot_id|>", sizeof "<|eot_id|>");
        }
        it[i].prompt = prompts[i].data;
        it[i].response = resp[i];
    }
    if (!rc) {
        pthread_mutex_lock(&rw_mu);
        if (!rw_cache) rw_cache = reward_cache_new();
        reward_model *rm = reward_cache_get(rw_cache, &rs, err, errlen);
        rc = rm ? reward_score_batch(rm, it, (int)n, out, err, errlen) : -1;
        pthread_mutex_unlock(&rw_mu);
    }
    for (uint32_t i = 0; i < n; i++) { util_buf_free(&prompts[i]); free(resp[i]); }
    free(resp);
    free(prompts);
    free(it);
    return rc;
}

int wrk_score_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen) {
    (void)r;
    const proto_val *pl = t->payload;
    const char *gname;
    uint32_t len;
    grader_kind gk;
    if (proto_get_str(pl, "grader", &gname, &len) != 0) return util_err(err, errlen, "score payload: missing string 'grader'");
    if (grade_parse_kind(gname, &gk) != 0)
        return util_err(err, errlen, "score payload: grader: unknown grader \"%s\" (expected gsm8k|math)", gname);
    const proto_val *items = proto_get_array(pl, "items");
    if (!items) return util_err(err, errlen, "score payload: missing array 'items'");
    uint32_t n = items->v.arr.n;
    char extracted[GRADE_ANSWER_MAX + 2], canonical[GRADE_ANSWER_MAX + 2];
    wrk_task_progress(t, 0, n);
    reward_result *rew = NULL;
    if (proto_get(pl, "reward") && proto_get(pl, "reward")->type != PV_NIL) {
        for (uint32_t i = 0; i < n; i++)
            if (items->v.arr.items[i].type != PV_MAP)
                return util_err(err, errlen, "score payload: items[%u]: expected a map", i);
        rew = xcalloc(n ? n : 1, sizeof *rew);
        if (score_rewards(pl, items, n, rew, err, errlen) != 0) { free(rew); return -1; }
    }
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        const proto_val *it = &items->v.arr.items[i];
        int64_t p, s;
        const char *text, *answer;
        if (it->type != PV_MAP || proto_get_i64(it, "p", &p) != 0 || proto_get_i64(it, "s", &s) != 0 || p < 0 || s < 0)
            { rc = util_err(err, errlen, "score payload: items[%u]: expected integers p and s", i); break; }
        if (proto_get_str(it, "text", &text, &len) != 0) { rc = util_err(err, errlen, "score payload: items[%u].text: expected a string", i); break; }
        if (proto_get_str(it, "answer", &answer, &len) != 0) answer = "";
        int correct = grade_answer(gk, text, answer, extracted, sizeof extracted) == 1;
        if (grade_canonical(gk, extracted, canonical, sizeof canonical) != 0) canonical[sizeof canonical - 1] = 0;
        proto_writer *w = proto_writer_new(NULL, 0);
        proto_w_map(w, 5 + (rew ? 1 : 0) + (rew && rew[i].steps ? 1 : 0));
        proto_w_key(w, "p"); proto_w_i64(w, p);
        proto_w_key(w, "s"); proto_w_i64(w, s);
        proto_w_key(w, "extracted"); proto_w_str(w, extracted);
        proto_w_key(w, "canonical"); proto_w_str(w, canonical);
        proto_w_key(w, "correct"); proto_w_bool(w, correct);
        if (rew) {
            proto_w_key(w, "reward"); proto_w_f64(w, rew[i].reward);
            if (rew[i].steps) {
                proto_w_key(w, "steps");
                proto_w_array(w, (uint32_t)rew[i].n_steps);
                for (int k = 0; k < rew[i].n_steps; k++) proto_w_f64(w, rew[i].steps[k]);
            }
        }
        size_t blen;
        const void *data = proto_writer_data(w, &blen);
        int stop = wrk_task_emit(t, data, blen);
        proto_writer_destroy(&w);
        if (stop) break;
        wrk_task_progress(t, i + 1, n);
    }
    if (rew) { reward_result_free(rew, (int)n); free(rew); }
    return rc;
}
