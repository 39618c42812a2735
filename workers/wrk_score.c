/* workers/wrk_score.c — the score role: grade each (p, s) text against its reference answer and
 * emit {p, s, extracted, canonical, correct}. canonical is grade_canonical of the extracted
 * answer, the key majority voting groups by ("" = no answer, no vote). */
#include <string.h>

#include "common/util.h"
#include "workers/score/grade.h"
#include "workers/wrk_roles.h"

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
    for (uint32_t i = 0; i < n; i++) {
        const proto_val *it = &items->v.arr.items[i];
        int64_t p, s;
        const char *text, *answer;
        if (it->type != PV_MAP || proto_get_i64(it, "p", &p) != 0 || proto_get_i64(it, "s", &s) != 0 || p < 0 || s < 0)
            return util_err(err, errlen, "score payload: items[%u]: expected integers p and s", i);
        if (proto_get_str(it, "text", &text, &len) != 0) return util_err(err, errlen, "score payload: items[%u].text: expected a string", i);
        if (proto_get_str(it, "answer", &answer, &len) != 0) answer = "";
        int correct = grade_answer(gk, text, answer, extracted, sizeof extracted) == 1;
        if (grade_canonical(gk, extracted, canonical, sizeof canonical) != 0) canonical[sizeof canonical - 1] = 0;
        proto_writer *w = proto_writer_new(NULL, 0);
        proto_w_map(w, 5);
        proto_w_key(w, "p"); proto_w_i64(w, p);
        proto_w_key(w, "s"); proto_w_i64(w, s);
        proto_w_key(w, "extracted"); proto_w_str(w, extracted);
        proto_w_key(w, "canonical"); proto_w_str(w, canonical);
        proto_w_key(w, "correct"); proto_w_bool(w, correct);
        size_t blen;
        const void *data = proto_writer_data(w, &blen);
        int stop = wrk_task_emit(t, data, blen);
        proto_writer_destroy(&w);
        if (stop) return 0;
        wrk_task_progress(t, i + 1, n);
    }
    return 0;
}
