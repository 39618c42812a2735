/* tests/unit/test_worker.c — worker internals: the runner thread's batching (bounded result
 * messages on output boundaries), cancel and failure paths; the sample backend cache; the
 * JSON -> msgpack conversion the aggregate role ships stats with; jobctl's JSON string escaping. */
#include <pthread.h>
#include <unistd.h>

#include "jobs/proto.h"
#include "tests/unit/unit.h"
#include "tools/jobctl.h"
#include "workers/sample/backend.h"
#include "workers/wrk_roles.h"
#include "workers/wrk_task.h"

/* A role emitting `n` outputs of `size` bytes (msgpack bin values), or failing, or waiting. */
typedef struct fake_role { int n; size_t size; int fail; int wait_cancel; } fake_role;

static int fake_fn(void *ctx, wrk_task *t, char *err, size_t errlen) {
    fake_role *f = ctx;
    if (f->fail) return util_err(err, errlen, "boom at %d", 7);
    char *buf = calloc(1, f->size + 16);
    for (int i = 0; i < f->n; i++) {
        proto_writer *w = proto_writer_new(NULL, 0);
        proto_w_bin(w, buf, f->size);
        size_t len;
        const void *d = proto_writer_data(w, &len);
        int stop = wrk_task_emit(t, d, len);
        proto_writer_destroy(&w);
        wrk_task_progress(t, (uint64_t)i + 1, (uint64_t)f->n);
        if (stop) break;
    }
    free(buf);
    while (f->wait_cancel && !wrk_task_cancelled(t)) usleep(1000);
    return 0;
}

static wrk_task *make_task(uint64_t id) {
    proto_writer *w = proto_writer_new("task", 5);
    proto_w_key(w, "task"); proto_w_u64(w, id);
    proto_w_key(w, "attempt"); proto_w_u64(w, 1);
    proto_w_key(w, "job"); proto_w_str(w, "j-000001");
    proto_w_key(w, "kind"); proto_w_str(w, "sample");
    proto_w_key(w, "payload"); proto_w_map(w, 0);
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    char err[256];
    if (proto_parse(d, len, &m, err, sizeof err) != 0) { proto_writer_destroy(&w); return NULL; }
    proto_writer_destroy(&w);
    wrk_task *t = NULL;
    if (wrk_task_from_msg(&m, &t, err, sizeof err) != 0) { proto_msg_destroy(&m); return NULL; }
    return t;
}

/* Takes until the task ends; returns the number of outputs and checks every batch's size. */
static int drain(wrk_runner *r, size_t max_bytes, int *batches, int *final_kind, size_t *biggest, char *err) {
    util_buf items;
    util_buf_init(&items);
    int total = 0;
    *batches = 0;
    *biggest = 0;
    for (int spins = 0; spins < 20000; spins++) {
        uint32_t n = 0;
        wrk_task *fin = NULL;
        items.len = 0;
        int k = wrk_runner_take(r, 0, max_bytes, &items, &n, &fin, err, 256);
        if (n) { (*batches)++; total += (int)n; if (items.len > *biggest) *biggest = items.len; }
        if (k == WRK_TAKE_DONE || k == WRK_TAKE_FAILED || k == WRK_TAKE_CANCELLED) {
            *final_kind = k;
            wrk_task_destroy(&fin);
            util_buf_free(&items);
            return total;
        }
        if (k == WRK_TAKE_NONE) usleep(500);
    }
    util_buf_free(&items);
    *final_kind = -1;
    return total;
}

TEST(runner_batches_on_output_boundaries) {
    fake_role f = {.n = 100, .size = 30000};   /* ~3 MB in 100 outputs */
    wrk_runner *r = wrk_runner_new(fake_fn, &f);
    wrk_task *t = make_task(1);
    EXPECT(t != NULL);
    wrk_runner_start(r, &t);
    EXPECT(t == NULL);
    EXPECT(wrk_runner_busy(r));
    int batches, kind;
    size_t biggest;
    char err[256] = "";
    int n = drain(r, WRK_RESULT_BYTES, &batches, &kind, &biggest, err);
    EXPECT_EQ_INT(n, 100);
    EXPECT_EQ_INT(kind, WRK_TAKE_DONE);
    EXPECT(batches >= 3);
    EXPECT(biggest <= WRK_RESULT_BYTES);
    EXPECT(!wrk_runner_busy(r));
    uint64_t done, total, emitted;
    wrk_runner_progress(r, &done, &total, &emitted);
    EXPECT_EQ_INT(done, 100);
    EXPECT_EQ_INT(emitted, 100);
    /* the runner is reusable: a second task */
    t = make_task(2);
    f.n = 3;
    wrk_runner_start(r, &t);
    n = drain(r, WRK_RESULT_BYTES, &batches, &kind, &biggest, err);
    EXPECT_EQ_INT(n, 3);
    EXPECT_EQ_INT(kind, WRK_TAKE_DONE);
    wrk_runner_destroy(&r);
    EXPECT(r == NULL);
}

TEST(runner_oversized_output_still_moves) {
    fake_role f = {.n = 2, .size = 1500000};   /* each output alone exceeds the batch cap */
    wrk_runner *r = wrk_runner_new(fake_fn, &f);
    wrk_task *t = make_task(3);
    wrk_runner_start(r, &t);
    int batches, kind;
    size_t biggest;
    char err[256];
    EXPECT_EQ_INT(drain(r, WRK_RESULT_BYTES, &batches, &kind, &biggest, err), 2);
    EXPECT_EQ_INT(batches, 2);
    EXPECT_EQ_INT(kind, WRK_TAKE_DONE);
    wrk_runner_destroy(&r);
}

TEST(runner_failure_and_cancel) {
    fake_role f = {.fail = 1};
    wrk_runner *r = wrk_runner_new(fake_fn, &f);
    wrk_task *t = make_task(4);
    wrk_runner_start(r, &t);
    int batches, kind;
    size_t biggest;
    char err[256] = "";
    EXPECT_EQ_INT(drain(r, WRK_RESULT_BYTES, &batches, &kind, &biggest, err), 0);
    EXPECT_EQ_INT(kind, WRK_TAKE_FAILED);
    EXPECT(strstr(err, "boom at 7") != NULL);
    /* cancel while the role is still running: outputs are discarded, CANCELLED once it returns */
    f.fail = 0;
    f.n = 10;
    f.size = 10;
    f.wait_cancel = 1;
    t = make_task(5);
    wrk_runner_start(r, &t);
    usleep(20000);
    wrk_runner_cancel(r);
    EXPECT_EQ_INT(drain(r, WRK_RESULT_BYTES, &batches, &kind, &biggest, err), 0);
    EXPECT_EQ_INT(kind, WRK_TAKE_CANCELLED);
    EXPECT(!wrk_runner_busy(r));
    wrk_runner_destroy(&r);
}

TEST(task_from_bad_message) {
    proto_writer *w = proto_writer_new("task", 1);
    proto_w_key(w, "kind"); proto_w_str(w, "sample");
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    char err[256] = "";
    EXPECT(proto_parse(d, len, &m, err, sizeof err) == 0);
    wrk_task *t = NULL;
    EXPECT(wrk_task_from_msg(&m, &t, err, sizeof err) == -1);
    EXPECT(m != NULL && t == NULL);
    EXPECT(strstr(err, "task") != NULL);
    proto_msg_destroy(&m);
    proto_writer_destroy(&w);
}

TEST(backend_cache) {
    sample_backend_cache *c = sample_backend_cache_new();
    char err[512] = "";
    sample_backend *a = sample_backend_cache_get(c, "replay", 0.3, "", "cpu", err, sizeof err);
    sample_backend *b = sample_backend_cache_get(c, "replay", 0.3, "", "cpu", err, sizeof err);
    EXPECT(a != NULL && a == b);
    EXPECT_EQ_INT(sample_backend_cache_loads(c), 1);
    EXPECT(sample_backend_cache_get(c, "replay", 0.5, "", "cpu", err, sizeof err) != NULL);
    EXPECT_EQ_INT(sample_backend_cache_loads(c), 2);
    EXPECT(sample_backend_cache_get(c, "gpt5", 0, "", "", err, sizeof err) == NULL);
    EXPECT(strstr(err, "gpt5") != NULL);
    err[0] = 0;
    EXPECT(sample_backend_cache_get(c, "replay", 2.0, "", "", err, sizeof err) == NULL);
    EXPECT(strstr(err, "corrupt") != NULL);
    err[0] = 0;
    EXPECT(sample_backend_cache_get(c, "native", 0, "/nonexistent/model-dir", "cpu", err, sizeof err) == NULL);
    EXPECT(err[0] != 0);
    sample_backend_cache_destroy(&c);
    EXPECT(c == NULL);
}

TEST(json_to_msgpack_roundtrip) {
    const char *json = "{\"k\":[1,2,4],\"coverage\":[0.5,0.75,null],\"problems\":3,\"exact\":true,\"name\":\"a\\\"b\"}";
    proto_writer *w = proto_writer_new(NULL, 0);
    char err[256];
    EXPECT(wrk_json_to_msgpack(json, strlen(json), w, err, sizeof err) == 0);
    size_t len;
    const void *d = proto_writer_data(w, &len);
    proto_msg *m = NULL;
    EXPECT(proto_parse_value(d, len, &m, err, sizeof err) == 0);
    if (m) {
        const proto_val *root = proto_root(m);
        const proto_val *k = proto_get_array(root, "k");
        EXPECT(k && k->v.arr.n == 3);
        int64_t p;
        EXPECT(proto_get_i64(root, "problems", &p) == 0 && p == 3);
        const proto_val *cov = proto_get_array(root, "coverage");
        EXPECT(cov && cov->v.arr.items[1].type == PV_FLOAT && cov->v.arr.items[1].v.f == 0.75);
        EXPECT(cov && cov->v.arr.items[2].type == PV_NIL);
        const char *name;
        uint32_t nl;
        EXPECT(proto_get_str(root, "name", &name, &nl) == 0 && strcmp(name, "a\"b") == 0);
        util_buf b;
        util_buf_init(&b);
        proto_val_to_json(root, &b);
        EXPECT(strstr(b.data, "\"k\":[1,2,4]") != NULL);
        util_buf_free(&b);
        proto_msg_destroy(&m);
    }
    proto_writer_destroy(&w);
    w = proto_writer_new(NULL, 0);
    EXPECT(wrk_json_to_msgpack("{\"k\":", 5, w, err, sizeof err) == -1);
    EXPECT(strstr(err, "json:") != NULL);
    proto_writer_destroy(&w);
}

TEST(jobctl_json_escaping) {
    util_buf b;
    util_buf_init(&b);
    const char s[] = "a\"b\\c\nd\te\x01 \xc3\xa9 \xff\xfe z \xe2\x82";
    jobctl_json_str(&b, s, sizeof s - 1);
    EXPECT_EQ_STR(b.data, "\"a\\\"b\\\\c\\nd\\te\\u0001 \xc3\xa9 \\ufffd\\ufffd z \\ufffd\\ufffd\"");
    util_buf_free(&b);
}

int main(void) {
    RUN(runner_batches_on_output_boundaries);
    RUN(runner_oversized_output_still_moves);
    RUN(runner_failure_and_cancel);
    RUN(task_from_bad_message);
    RUN(backend_cache);
    RUN(json_to_msgpack_roundtrip);
    RUN(jobctl_json_escaping);
    return unit_summary();
}
