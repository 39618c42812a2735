/* workers/wrk_roles.c — role dispatch, per-process role state, JSON -> msgpack conversion. */
#include "workers/wrk_roles.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/sample/backend.h"
#include "workers/wrk_roles_internal.h"

wrk_roles *wrk_roles_new(void) {
    wrk_roles *r = xcalloc(1, sizeof *r);
    r->backends = sample_backend_cache_new();
    return r;
}

void wrk_roles_destroy(wrk_roles **r) {
    if (!r || !*r) return;
    sample_backend_cache_destroy(&(*r)->backends);
    free(*r);
    *r = NULL;
}

int wrk_roles_run(void *ctx, wrk_task *t, char *err, size_t errlen) {
    wrk_roles *r = ctx;
    if (strcmp(t->kind, "sample") == 0) return wrk_sample_run(r, t, err, errlen);
    if (strcmp(t->kind, "score") == 0) return wrk_score_run(r, t, err, errlen);
    if (strcmp(t->kind, "aggregate") == 0) return wrk_aggregate_run(r, t, err, errlen);
    return util_err(err, errlen, "task %llu: unknown kind \"%s\"", (unsigned long long)t->id, t->kind);
}

static void put_json(proto_writer *w, json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        proto_w_map(w, (uint32_t)json_object_size(v));
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) { proto_w_key(w, k); put_json(w, x); }
        break;
    }
    case JSON_ARRAY: {
        proto_w_array(w, (uint32_t)json_array_size(v));
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) put_json(w, x);
        break;
    }
    case JSON_STRING: proto_w_strn(w, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: proto_w_i64(w, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: proto_w_f64(w, json_real_value(v)); break;
    case JSON_TRUE: proto_w_bool(w, 1); break;
    case JSON_FALSE: proto_w_bool(w, 0); break;
    default: proto_w_nil(w); break;
    }
}

int wrk_json_to_msgpack(const char *json, size_t len, proto_writer *w, char *err, size_t errlen) {
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!root) return util_err(err, errlen, "json:%d:%d: %s", je.line, je.column, je.text);
    put_json(w, root);
    json_decref(root);
    return 0;
}
