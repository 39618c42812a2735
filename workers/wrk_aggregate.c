/* workers/wrk_aggregate.c — the aggregate role: payload problems -> agg_problem[] ->
 * aggregate_compute -> one output {stats: map}. The map is agg_stats_to_json's JSON converted
 * to msgpack, so the online stats, `jobctl report` and `jobctl reaggregate` share one form. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/aggregate/aggregate.h"
#include "workers/wrk_roles.h"

#define WRK_AGG_MAX_N 10000000   /* samples per problem cap */

int wrk_aggregate_stats(const agg_problem *problems, int n_problems, const int *k, int n_k, uint64_t seed,
                        proto_writer *w, char *err, size_t errlen) {
    agg_stats st;
    if (aggregate_compute(problems, n_problems, k, n_k, seed, &st, err, errlen) != 0) return -1;
    util_buf json;
    util_buf_init(&json);
    agg_stats_to_json(&st, &json);
    agg_stats_free(&st);
    int rc = wrk_json_to_msgpack(json.data ? json.data : "{}", json.data ? json.len : 2, w, err, errlen);
    util_buf_free(&json);
    return rc;
}

/* Per-problem arrays decoded from the payload (owned here; agg_problem borrows them). */
typedef struct agg_arrays {
    unsigned char *correct;
    const char **canonical;
    double *reward;
    double *time_s;
} agg_arrays;

static int array_of_n(const proto_val *pv, const char *key, uint32_t n, uint32_t idx, const proto_val **out,
                      char *err, size_t errlen) {
    const proto_val *a = proto_get(pv, key);
    *out = NULL;
    if (!a || a->type == PV_NIL) return 0;
    if (a->type != PV_ARRAY || a->v.arr.n != n)
        return util_err(err, errlen, "aggregate payload: problems[%u].%s: expected an array of %u values", idx, key, n);
    *out = a;
    return 0;
}

static int num_of(const proto_val *v, double *out) {
    switch (v->type) {
    case PV_FLOAT: *out = v->v.f; return 0;
    case PV_INT: *out = (double)v->v.i; return 0;
    case PV_UINT: *out = (double)v->v.u; return 0;
    case PV_BOOL: *out = v->v.b; return 0;
    case PV_NIL: *out = NAN; return 0;
    default: return -1;
    }
}

int wrk_aggregate_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen) {
    (void)r;
    const proto_val *pl = t->payload;
    const proto_val *ka = proto_get_array(pl, "k");
    const proto_val *probs = proto_get_array(pl, "problems");
    uint64_t seed = 0;
    proto_get_u64(pl, "seed", &seed);
    if (!ka || ka->v.arr.n == 0 || ka->v.arr.n > AGG_MAX_K)
        return util_err(err, errlen, "aggregate payload: k: expected an array of 1..%d integers", AGG_MAX_K);
    if (!probs) return util_err(err, errlen, "aggregate payload: missing array 'problems'");
    int k[AGG_MAX_K], n_k = (int)ka->v.arr.n;
    for (int i = 0; i < n_k; i++) {
        const proto_val *kv = &ka->v.arr.items[i];
        int64_t x = kv->type == PV_INT ? kv->v.i : kv->type == PV_UINT && kv->v.u < (1u << 30) ? (int64_t)kv->v.u : -1;
        if (x <= 0 || x >= (1 << 30)) return util_err(err, errlen, "aggregate payload: k[%d]: expected a positive integer", i);
        k[i] = (int)x;
    }
    uint32_t np = probs->v.arr.n;
    agg_problem *ap = xcalloc(np ? np : 1, sizeof *ap);
    agg_arrays *arr = xcalloc(np ? np : 1, sizeof *arr);
    int rc = -1;
    wrk_task_progress(t, 0, np);
    for (uint32_t i = 0; i < np; i++) {
        const proto_val *pv = &probs->v.arr.items[i];
        int64_t p;
        if (pv->type != PV_MAP || proto_get_i64(pv, "p", &p) != 0 || p < 0 || p > INT32_MAX) {
            util_err(err, errlen, "aggregate payload: problems[%u].p: expected a non-negative integer", i);
            goto done;
        }
        const proto_val *corr = proto_get_array(pv, "correct");
        if (!corr || corr->v.arr.n > WRK_AGG_MAX_N) {
            util_err(err, errlen, "aggregate payload: problems[%u].correct: expected an array", i);
            goto done;
        }
        uint32_t n = corr->v.arr.n;
        const proto_val *canon, *rew, *tim;
        if (array_of_n(pv, "canonical", n, i, &canon, err, errlen) || array_of_n(pv, "reward", n, i, &rew, err, errlen) ||
            array_of_n(pv, "time_s", n, i, &tim, err, errlen))
            goto done;
        arr[i].correct = xcalloc(n ? n : 1, 1);
        if (canon) arr[i].canonical = xcalloc(n ? n : 1, sizeof(char *));
        if (rew) arr[i].reward = xcalloc(n ? n : 1, sizeof(double));
        if (tim) arr[i].time_s = xcalloc(n ? n : 1, sizeof(double));
        for (uint32_t j = 0; j < n; j++) {
            const proto_val *c = &corr->v.arr.items[j];
            double cv;
            if (num_of(c, &cv) != 0 || !(cv == 0 || cv == 1)) {
                util_err(err, errlen, "aggregate payload: problems[%u].correct[%u]: expected 0/1", i, j);
                goto done;
            }
            arr[i].correct[j] = (unsigned char)cv;
            if (canon) {
                const proto_val *cs = &canon->v.arr.items[j];
                if (cs->type == PV_STR) arr[i].canonical[j] = cs->v.str.ptr;
                else if (cs->type != PV_NIL) {
                    util_err(err, errlen, "aggregate payload: problems[%u].canonical[%u]: expected a string", i, j);
                    goto done;
                }
            }
            if (rew && num_of(&rew->v.arr.items[j], &arr[i].reward[j]) != 0) {
                util_err(err, errlen, "aggregate payload: problems[%u].reward[%u]: expected a number", i, j);
                goto done;
            }
            if (tim && num_of(&tim->v.arr.items[j], &arr[i].time_s[j]) != 0) {
                util_err(err, errlen, "aggregate payload: problems[%u].time_s[%u]: expected a number", i, j);
                goto done;
            }
        }
        const char *subject;
        uint32_t slen;
        int64_t level = 0;
        ap[i].p = (int)p;
        ap[i].n = (int)n;
        ap[i].correct = arr[i].correct;
        ap[i].canonical = arr[i].canonical;
        ap[i].reward = arr[i].reward;
        ap[i].time_s = arr[i].time_s;
        ap[i].subject = proto_get_str(pv, "subject", &subject, &slen) == 0 && slen ? subject : NULL;
        ap[i].level = proto_get_i64(pv, "level", &level) == 0 && level > 0 && level < 100 ? (int)level : 0;
    }
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 1);
    proto_w_key(w, "stats");
    if (wrk_aggregate_stats(ap, (int)np, k, n_k, seed, w, err, errlen) == 0) {
        size_t len;
        const void *data = proto_writer_data(w, &len);
        wrk_task_emit(t, data, len);
        wrk_task_progress(t, np, np);
        rc = 0;
    }
    proto_writer_destroy(&w);
done:
    for (uint32_t i = 0; i < np; i++) {
        free(arr[i].correct);
        free((void *)arr[i].canonical);
        free(arr[i].reward);
        free(arr[i].time_s);
    }
    free(arr);
    free(ap);
    return rc;
}
