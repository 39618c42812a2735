/* tools/bench_payload_main.c — bin/bench_payload: time the broker's aggregate payload build.
 *
 *   bin/bench_payload [--problems N] [--samples S] [--text-bytes B] [--reps R] [--db DIR]
 *                     [--keep] [--out FILE] [--only NAME]
 *
 * Fills a fresh store (DIR, default a temp directory removed afterwards unless --keep; an
 * existing store in DIR with the same shape is reused) with one job of N problems x S samples:
 * problems, generations whose text is B bytes (default 1000, about a 250-token chain of
 * thought), and scores. Then, in one read transaction each, times R times (reporting min and
 * median seconds):
 *   payload        payload_write() of the final aggregate task (what the broker does on every
 *                  incremental and the final aggregate), and the payload's size;
 *   gen_walk_full  store_generations_each_txn() with an empty callback (decodes whole records,
 *                  text included);
 *   gen_walk_meta  store_generations_meta_each_txn() with an empty callback (the light decoder:
 *                  no text);
 *   score_walk     store_scores_each_txn() with an empty callback (whole records);
 *   score_walk_meta store_scores_meta_each_txn() with an empty callback (light: what the
 *                  aggregate payload reads; with time_s in scores written by this version).
 * --only NAME runs just that measurement (e.g. under perf record). Prints one JSON object
 * (and writes it to --out when given).
 */
#include "broker/payload.h"
#include "broker/tasks.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    uint32_t n_problems, n_samples, text_bytes;
    char *text;            /* text_bytes + 64 of filler; each record uses a window of it */
    uint32_t p0, p1;       /* problems to write in this transaction */
} fill_ctx;

static int fill_job(store_txn *t, void *vctx) {
    fill_ctx *c = vctx;
    store_job j = {0};
    j.id = 1;
    snprintf(j.name, sizeof j.name, "bench-payload");
    snprintf(j.state, sizeof j.state, "running");
    j.n_problems = c->n_problems;
    j.n_samples = c->n_samples;
    j.chunk = 8;
    j.n_chunks = (c->n_problems + 7) / 8;
    j.samples_done = j.scores_done = (uint64_t)c->n_problems * c->n_samples;
    j.spec_json = "{}";
    proto_writer *w = proto_writer_new(NULL, 0);
    proto_w_map(w, 2);
    proto_w_key(w, "k");
    proto_w_array(w, 11);
    for (int i = 0; i <= 10; i++) proto_w_i64(w, 1 << i);
    proto_w_key(w, "seed"); proto_w_u64(w, 7);
    size_t n;
    const void *d = proto_writer_data(w, &n);
    j.params = xmalloc(n);
    memcpy(j.params, d, n);
    j.params_len = n;
    proto_writer_destroy(&w);
    int rc = store_job_put(t, &j);
    free(j.params);
    return rc;
}

static int fill_rows(store_txn *t, void *vctx) {
    fill_ctx *c = vctx;
    static const char *subjects[] = {"Algebra", "Geometry", "Number Theory", "Prealgebra"};
    for (uint32_t p = c->p0; p < c->p1; p++) {
        char id[32], ans[32];
        snprintf(id, sizeof id, "bench-%u", p);
        snprintf(ans, sizeof ans, "%u", p * 7 + 3);
        store_problem pr = {.p = p, .id = id, .question = "How many apples are left?", .solution = "#### 3",
                            .answer = ans, .subject = subjects[p % 4], .level = (int32_t)(p % 5) + 1};
        int rc = store_problem_put(t, 1, &pr);
        if (rc) return rc;
        for (uint32_t s = 0; s < c->n_samples; s++) {
            uint32_t len = c->text_bytes - (c->text_bytes / 4) + (uint32_t)((p * 131u + s * 17u) % (c->text_bytes / 2 + 1));
            store_generation g = {.p = p, .s = s, .text = c->text + (s % 61), .text_len = len,
                                  .tokens = len / 4, .time_s = 0.001 * (1 + (p + s) % 97), .task = 1 + p / 8};
            snprintf(g.finish, sizeof g.finish, "%s", s % 13 ? "stop" : "length");
            if ((rc = store_generation_put(t, 1, &g)) < 0) return rc;
            char canon[32];
            snprintf(canon, sizeof canon, "%u", (s % 3) ? p * 7 + 3 : s % 11);
            store_score sc = {.p = p, .s = s, .extracted = canon, .canonical = canon,
                              .correct = (s % 3) != 0, .reward = NAN};
            if ((rc = store_score_put(t, 1, &sc)) < 0) return rc;
        }
    }
    return STORE_OK;
}

static int nop_gen(uint64_t job, const store_generation *g, void *ctx) {
    (*(uint64_t *)ctx) += g->s;
    return 0;
}
static int nop_meta(uint64_t job, const store_generation_meta *g, void *ctx) {
    (*(uint64_t *)ctx) += g->s;
    return 0;
}
static int nop_score(uint64_t job, const store_score *sc, void *ctx) {
    (*(uint64_t *)ctx) += sc->s;
    return 0;
}
static int nop_score_meta(uint64_t job, const store_score_meta *sc, void *ctx) {
    (*(uint64_t *)ctx) += sc->s + (uint64_t)sc->has_time_s;
    return 0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

enum { M_PAYLOAD, M_GEN_FULL, M_GEN_META, M_SCORES, M_SCORES_META, M_COUNT };
static const char *const m_names[M_COUNT] = {"payload", "gen_walk_full", "gen_walk_meta", "score_walk", "score_walk_meta"};

/* One timed run of measurement m in a fresh read transaction; seconds, or -1 on error. */
static double run_once(store *s, const store_job *job, int m, size_t *payload_bytes) {
    char err[256];
    store_txn *t;
    if (store_txn_begin(s, 0, &t, err, sizeof err)) { LOG_ERROR("%s", err); return -1; }
    uint64_t sink = 0;
    int rc = 0;
    int64_t t0 = util_now_ns();
    if (m == M_PAYLOAD) {
        store_task task = {.id = 99, .job = job->id, .kind = BRK_KIND_AGGREGATE, .final = 1};
        proto_writer *w = proto_writer_new(NULL, 0);
        rc = payload_write(t, job, &task, w);
        proto_writer_data(w, payload_bytes);
        proto_writer_destroy(&w);
    } else if (m == M_GEN_FULL) {
        rc = store_generations_each_txn(t, job->id, nop_gen, &sink);
    } else if (m == M_GEN_META) {
        rc = store_generations_meta_each_txn(t, job->id, nop_meta, &sink);
    } else if (m == M_SCORES) {
        rc = store_scores_each_txn(t, job->id, nop_score, &sink);
    } else {
        rc = store_scores_meta_each_txn(t, job->id, nop_score_meta, &sink);
    }
    double sec = (double)(util_now_ns() - t0) * 1e-9;
    store_txn_abort(&t);
    if (rc) { LOG_ERROR("%s: %s (%s)", m_names[m], store_strerror(rc), store_last_error(s)); return -1; }
    if (m != M_PAYLOAD && sink == 0 && job->n_samples > 1) { LOG_ERROR("%s: walked nothing", m_names[m]); return -1; }
    return sec;
}

int main(int argc, char **argv) {
    log_set_name("bench_payload");
    uint32_t n_problems = 500, n_samples = 256, text_bytes = 1000;
    int reps = 5, keep = 0;
    const char *db = NULL, *out = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--keep")) { keep = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h") || !v) {
            fprintf(stderr, "usage: bench_payload [--problems N] [--samples S] [--text-bytes B] [--reps R] [--db DIR] [--keep] [--out FILE]\n"
                            "                     [--only payload|gen_walk_full|gen_walk_meta|score_walk|score_walk_meta]\n");
            return !strcmp(a, "--help") || !strcmp(a, "-h") ? 0 : 2;
        }
        i++;
        if (!strcmp(a, "--problems")) n_problems = (uint32_t)atol(v);
        else if (!strcmp(a, "--samples")) n_samples = (uint32_t)atol(v);
        else if (!strcmp(a, "--text-bytes")) text_bytes = (uint32_t)atol(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--db")) db = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--only")) only = v;
        else { fprintf(stderr, "bench_payload: unknown option %s (see --help)\n", a); return 2; }
    }
    if (!n_problems || !n_samples || text_bytes < 8 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench_payload: --problems/--samples must be > 0, --text-bytes >= 8, --reps in [1, 1000]\n");
        return 2;
    }
    char tmpl[] = "/tmp/tf_bench_payload_XXXXXX";
    int own_dir = 0;
    if (!db) {
        if (!mkdtemp(tmpl)) { perror("mkdtemp"); return 1; }
        db = tmpl;
        own_dir = 1;
    }
    char err[512];
    store *s = NULL;
    if (store_open(db, 0, (size_t)4 << 30, &s, err, sizeof err)) { fprintf(stderr, "bench_payload: %s\n", err); return 1; }
    store_set_nosync(s, 1);
    store_job job;
    int have = 0;
    store_txn *t;
    if (store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK) {
        if (store_job_get(t, 1, &job) == STORE_OK) {
            have = job.n_problems == n_problems && job.n_samples == n_samples;
            store_job_free(&job);
        }
        store_txn_abort(&t);
    }
    if (!have) {
        fill_ctx c = {n_problems, n_samples, text_bytes, NULL, 0, 0};
        c.text = xmalloc((size_t)text_bytes * 2 + 64);
        for (size_t i = 0; i < (size_t)text_bytes * 2 + 64; i++) c.text[i] = "Let x be the number of apples. 3 + 4 = 7, so "[i % 45];
        int64_t f0 = util_now_ns();
        int rc = store_write(s, fill_job, &c, err, sizeof err);
        uint32_t step = 4096 / n_samples + 1;
        for (uint32_t p = 0; !rc && p < n_problems; p += step) {
            c.p0 = p;
            c.p1 = p + step < n_problems ? p + step : n_problems;
            rc = store_write(s, fill_rows, &c, err, sizeof err);
        }
        free(c.text);
        if (rc) { fprintf(stderr, "bench_payload: filling the store: %s\n", err); store_close(&s); return 1; }
        fprintf(stderr, "bench_payload: filled %u x %u (text ~%u B) in %.1f s, %.0f MiB used\n", n_problems, n_samples,
                text_bytes, (double)(util_now_ns() - f0) * 1e-9, (double)store_used_bytes(s) / 1048576.0);
    }
    if (store_txn_begin(s, 0, &t, err, sizeof err) || store_job_get(t, 1, &job)) {
        fprintf(stderr, "bench_payload: cannot read the job back\n");
        return 1;
    }
    store_txn_abort(&t);

    util_buf j;
    util_buf_init(&j);
    util_buf_printf(&j, "{\"problems\":%u,\"samples\":%u,\"text_bytes\":%u,\"reps\":%d", n_problems, n_samples, text_bytes, reps);
    double *secs = xmalloc(sizeof(double) * (size_t)reps);
    size_t payload_bytes = 0;
    int failed = 0;
    for (int m = 0; m < M_COUNT && !failed; m++) {
        if (only && strcmp(only, m_names[m]) != 0) continue;
        run_once(s, &job, m, &payload_bytes);   /* warm-up: page cache, allocator */
        for (int r = 0; r < reps; r++) {
            secs[r] = run_once(s, &job, m, &payload_bytes);
            if (secs[r] < 0) failed = 1;
        }
        qsort(secs, (size_t)reps, sizeof *secs, cmp_d);
        util_buf_printf(&j, ",\"%s_s\":{\"min\":%.4f,\"median\":%.4f}", m_names[m], secs[0], secs[reps / 2]);
        fprintf(stderr, "bench_payload: %-15s min %.4f s  median %.4f s\n", m_names[m], secs[0], secs[reps / 2]);
    }
    util_buf_printf(&j, ",\"payload_bytes\":%zu}\n", payload_bytes);
    free(secs);
    store_job_free(&job);
    store_close(&s);
    if (own_dir && !keep) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
        if (system(cmd) != 0) fprintf(stderr, "bench_payload: could not remove %s\n", tmpl);
    } else if (own_dir) {
        fprintf(stderr, "bench_payload: store kept in %s\n", tmpl);
    }
    if (failed) { util_buf_free(&j); return 1; }
    fputs(j.data, stdout);
    if (out) {
        if (util_write_file_atomic(out, j.data, j.len, err, sizeof err)) fprintf(stderr, "bench_payload: %s\n", err);
    }
    util_buf_free(&j);
    return 0;
}
