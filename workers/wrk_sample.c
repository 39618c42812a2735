/* workers/wrk_sample.c — the sample role: payload -> sample_items + sample_params, run the job's
 * backend (cached across tasks), one output map per (problem, sample).
 *
 * Fault injection (tests only): THINKFAST_FAULT_CRASH_PROBLEM=N aborts the process when the
 * backend reaches problem N, simulating a worker that crashes on a poison input.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "workers/sample/backend.h"
#include "workers/wrk_roles.h"
#include "workers/wrk_roles_internal.h"

#define WRK_MAX_SAMPLES 1000000   /* sampling.n cap: a bad payload must not ask for 2^63 */

typedef struct emit_ctx {
    wrk_task *t;
    long crash_problem;   /* -1 = off */
    long delay_ms;        /* 0 = off */
    uint64_t done, total;
} emit_ctx;

static int sample_emit(void *ud, const sample_output *o) {
    emit_ctx *e = ud;
    if (e->crash_problem >= 0 && o->problem == e->crash_problem) {
        LOG_ERROR("THINKFAST_FAULT_CRASH_PROBLEM=%ld reached: aborting (test fault injection)", e->crash_problem);
        abort();
    }
    if (e->delay_ms > 0) {
        struct timespec ts = {.tv_sec = e->delay_ms / 1000, .tv_nsec = (e->delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 6);
    proto_w_key(w, "p"); proto_w_i64(w, o->problem);
    proto_w_key(w, "s"); proto_w_i64(w, o->sample);
    proto_w_key(w, "text"); proto_w_str(w, o->text ? o->text : "");
    proto_w_key(w, "tokens"); proto_w_i64(w, o->tokens);
    proto_w_key(w, "time_s"); proto_w_f64(w, o->time_s);
    proto_w_key(w, "finish"); proto_w_str(w, o->finish ? o->finish : "stop");
    size_t len;
    const void *data = proto_writer_data(w, &len);
    int stop = wrk_task_emit(e->t, data, len);
    proto_writer_destroy(&w);
    e->t->tokens += o->tokens > 0 ? (uint64_t)o->tokens : 0;
    e->t->compute_s += o->time_s;
    wrk_task_progress(e->t, ++e->done, e->total);
    return stop;
}

/* A non-negative integer from the environment; dflt when unset, and (with a warning) when not a
 * number, so that a typo never turns into "crash at problem 0". */
static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0) {
        LOG_WARN("%s=%s: not a non-negative integer, ignored", name, v);
        return dflt;
    }
    return x;
}

static const char *str_or(const proto_val *m, const char *key, const char *dflt) {
    const char *s;
    uint32_t n;
    return proto_get_str(m, key, &s, &n) == 0 ? s : dflt;
}

int wrk_sample_run(wrk_roles *r, wrk_task *t, char *err, size_t errlen) {
    const proto_val *pl = t->payload;
    const proto_val *model = proto_get_map(pl, "model");
    const proto_val *smp = proto_get_map(pl, "sampling");
    const proto_val *prompt = proto_get_map(pl, "prompt");
    const proto_val *probs = proto_get_array(pl, "problems");
    if (!model) return util_err(err, errlen, "sample payload: missing map 'model'");
    if (!smp) return util_err(err, errlen, "sample payload: missing map 'sampling'");
    if (!probs) return util_err(err, errlen, "sample payload: missing array 'problems'");

    sample_params sp = {0};
    int64_t n = 0, top_k = 0, max_tokens = 0;
    if (proto_get_i64(smp, "n", &n) != 0 || n <= 0 || n > WRK_MAX_SAMPLES)
        return util_err(err, errlen, "sample payload: sampling.n must be an integer in 1..%d", WRK_MAX_SAMPLES);
    sp.n = (int)n;
    sp.temperature = 1.0;
    sp.top_p = 1.0;
    proto_get_f64(smp, "temperature", &sp.temperature);
    proto_get_f64(smp, "top_p", &sp.top_p);
    proto_get_f64(smp, "min_p", &sp.min_p);
    if (proto_get_i64(smp, "top_k", &top_k) == 0 && top_k >= 0 && top_k < (1 << 30)) sp.top_k = (int)top_k;
    if (proto_get_i64(smp, "max_tokens", &max_tokens) == 0 && max_tokens >= 0 && max_tokens < (1 << 30))
        sp.max_tokens = (int)max_tokens;
    proto_get_u64(smp, "seed", &sp.seed);
    const proto_val *stop = proto_get_array(smp, "stop");
    if (stop)
        for (uint32_t i = 0; i < stop->v.arr.n && sp.n_stop < 4; i++)
            if (stop->v.arr.items[i].type == PV_STR) sp.stop[sp.n_stop++] = stop->v.arr.items[i].v.str.ptr;
    sp.template_name = prompt ? str_or(prompt, "template", "plain") : "plain";
    sp.system = prompt ? str_or(prompt, "system", "") : "";
    sp.device = str_or(model, "device", "auto");

    double corrupt = 0;
    proto_get_f64(model, "corrupt", &corrupt);
    const char *backend_name = str_or(model, "backend", "replay");
    sample_backend *b = sample_backend_cache_get(r->backends, backend_name, corrupt, str_or(model, "path", ""),
                                                 sp.device, err, errlen);
    if (!b) return -1;

    uint32_t n_items = probs->v.arr.n;
    sample_item *items = xcalloc(n_items ? n_items : 1, sizeof *items);
    for (uint32_t i = 0; i < n_items; i++) {
        const proto_val *pv = &probs->v.arr.items[i];
        int64_t p;
        if (pv->type != PV_MAP || proto_get_i64(pv, "p", &p) != 0 || p < 0 || p > INT32_MAX) {
            free(items);
            return util_err(err, errlen, "sample payload: problems[%u].p: expected a non-negative integer", i);
        }
        items[i].problem = (int)p;
        items[i].id = str_or(pv, "id", "");
        items[i].question = str_or(pv, "question", "");
        items[i].solution = str_or(pv, "solution", "");
        items[i].answer = str_or(pv, "answer", "");
    }
    emit_ctx e = {.t = t, .crash_problem = -1, .total = (uint64_t)n_items * (uint64_t)sp.n};
    e.crash_problem = env_long("THINKFAST_FAULT_CRASH_PROBLEM", -1);
    e.delay_ms = env_long("THINKFAST_FAULT_DELAY_MS", 0);
    wrk_task_progress(t, 0, e.total);
    int rc = b->run(b, items, (int)n_items, &sp, sample_emit, &e, err, errlen);
    free(items);
    if (rc != 0) return -1;
    if (!wrk_task_cancelled(t) && e.done != e.total)
        return util_err(err, errlen, "backend %s emitted %llu of %llu samples", backend_name,
                        (unsigned long long)e.done, (unsigned long long)e.total);
    return 0;
}
