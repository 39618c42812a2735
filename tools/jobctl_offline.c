/* tools/jobctl_offline.c — subcommands that read the store directly, read-only, with no broker:
 *   export JOB --db DIR --format jsonl     one JSON line per generation (with its score)
 *   reaggregate JOB --db DIR [--k LIST]    recomputes the stats from the stored scores
 * The store may be in use by a running broker (LMDB MVCC: we read a consistent snapshot).
 * reaggregate builds exactly the input the broker gives the aggregate role (broker/payload.c:
 * problems with at least one score, samples in s order, canonical keys, rewards, generation
 * times; k and seed from the job spec) and runs the same code (wrk_aggregate_stats), so its
 * output equals the online stats byte for byte unless --k changes the k list.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/spec.h"
#include "store/store.h"
#include "tools/jobctl.h"
#include "workers/aggregate/aggregate.h"
#include "workers/wrk_roles.h"

static int parse_db_args(int argc, char **argv, const char *usage, const char **job, const char **db, const char **format,
                         const char **klist, int *json) {
    const char *env = getenv("THINKFAST_DB");
    *db = env && *env ? env : NULL;
    *job = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s", usage); return 1; }
        if (json && !strcmp(a, "--json")) { *json = 1; continue; }
        if (!strcmp(a, "--db") || (format && !strcmp(a, "--format")) || (klist && !strcmp(a, "--k"))) {
            if (i + 1 >= argc) { fprintf(stderr, "jobctl %s: %s needs a value\n", argv[0], a); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--db")) *db = v;
            else if (!strcmp(a, "--format")) *format = v;
            else *klist = v;
            continue;
        }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "jobctl %s: unknown flag %s\n%s", argv[0], a, usage); return 2; }
        if (*job) { fprintf(stderr, "jobctl %s: unexpected argument %s\n%s", argv[0], a, usage); return 2; }
        *job = a;
    }
    if (!*job) { fprintf(stderr, "jobctl %s: missing JOB\n%s", argv[0], usage); return 2; }
    if (!*db) { fprintf(stderr, "jobctl %s: --db DIR is required (or set THINKFAST_DB)\n", argv[0]); return 2; }
    return 0;
}

static int open_job(const char *db, const char *job, store **st, store_job *j, const char *cmd) {
    char err[1024];
    if (store_open(db, 1, 0, st, err, sizeof err) != 0) { fprintf(stderr, "jobctl %s: %s\n", cmd, err); return 1; }
    if (store_job_find(*st, job, j, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl %s: %s: no job \"%s\" (%s)\n", cmd, db, job, err);
        store_close(st);
        return 1;
    }
    return 0;
}

/* ---- export ---- */

typedef struct export_ctx {
    store_txn *txn;
    FILE *out;
    util_buf line;
    uint64_t n;
    int io_error;
} export_ctx;

static int export_cb(uint64_t job, const store_generation *g, void *ctx) {
    export_ctx *e = ctx;
    util_buf *b = &e->line;
    b->len = 0;
    store_score sc;
    int have = store_score_get(e->txn, job, g->p, g->s, &sc) == STORE_OK;
    util_buf_printf(b, "{\"problem\":%u,\"sample\":%u,\"text\":", g->p, g->s);
    jobctl_json_str(b, g->text, g->text_len);
    util_buf_append(b, ",\"extracted\":", 13);
    if (have) jobctl_json_str(b, sc.extracted, strlen(sc.extracted));
    else util_buf_append(b, "null", 4);
    util_buf_printf(b, ",\"correct\":%s", have ? (sc.correct ? "true" : "false") : "null");
    util_buf_append(b, ",\"canonical\":", 13);
    if (have) jobctl_json_str(b, sc.canonical, strlen(sc.canonical));
    else util_buf_append(b, "null", 4);
    util_buf_printf(b, ",\"tokens\":%lld,\"time_s\":", (long long)g->tokens);
    if (isfinite(g->time_s)) util_buf_printf(b, "%.9g", g->time_s);
    else util_buf_append(b, "null", 4);
    util_buf_append(b, ",\"finish\":", 10);
    jobctl_json_str(b, g->finish, strlen(g->finish));
    util_buf_append(b, "}\n", 2);
    if (fwrite(b->data, 1, b->len, e->out) != b->len) { e->io_error = 1; return 1; }
    e->n++;
    return 0;
}

int jobctl_cmd_export(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    static const char usage[] =
        "usage: jobctl export JOB --db DIR [--format jsonl]\n"
        "Reads the store (read-only; a running broker is fine) and writes one JSON line per\n"
        "generation to stdout: {\"problem\",\"sample\",\"text\",\"extracted\",\"correct\",\"canonical\",\n"
        "\"tokens\",\"time_s\",\"finish\"} (extracted/correct null while not scored).\n"
        "  --db DIR        the broker's store directory (default $THINKFAST_DB)\n"
        "  --format jsonl  the only format (default)\n";
    const char *job, *db, *format = "jsonl";
    int rc = parse_db_args(argc, argv, usage, &job, &db, &format, NULL, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    if (strcmp(format, "jsonl") != 0) { fprintf(stderr, "jobctl export: --format: unknown format \"%s\" (expected jsonl)\n", format); return 2; }
    store *st;
    store_job j;
    if (open_job(db, job, &st, &j, "export")) return 1;
    char err[1024];
    export_ctx e = {.out = stdout};
    util_buf_init(&e.line);
    rc = store_txn_begin(st, 0, &e.txn, err, sizeof err);
    if (rc == 0) {
        rc = store_generations_each_txn(e.txn, j.id, export_cb, &e);
        store_txn_abort(&e.txn);
    }
    util_buf_free(&e.line);
    store_job_free(&j);
    store_close(&st);
    if (rc != 0 && !e.io_error) { fprintf(stderr, "jobctl export: %s\n", rc < 0 ? store_strerror(rc) : err); return 1; }
    if (e.io_error || fflush(stdout) != 0) { fprintf(stderr, "jobctl export: write error\n"); return 1; }
    return 0;
}

/* ---- reaggregate ---- */

typedef struct reagg_in {
    uint32_t n_problems, n_samples;
    unsigned char *have, *correct;   /* [p * n + s] */
    char **canonical;
    double *reward, *time_s;
} reagg_in;

static int reagg_time_cb(uint64_t job, const store_generation *g, void *ctx) {
    reagg_in *a = ctx;
    if (g->p < a->n_problems && g->s < a->n_samples) a->time_s[(size_t)g->p * a->n_samples + g->s] = g->time_s;
    return 0;
}

static int reagg_score_cb(uint64_t job, const store_score *sc, void *ctx) {
    reagg_in *a = ctx;
    if (sc->p >= a->n_problems || sc->s >= a->n_samples) return 0;
    size_t i = (size_t)sc->p * a->n_samples + sc->s;
    a->have[i] = 1;
    a->correct[i] = sc->correct ? 1 : 0;
    a->canonical[i] = xstrdup(sc->canonical ? sc->canonical : "");
    a->reward[i] = sc->reward;
    return 0;
}

static int parse_klist(const char *s, int *k, int *n_k) {
    *n_k = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x <= 0 || x > 1000000 || *n_k >= AGG_MAX_K) return -1;
        k[(*n_k)++] = (int)x;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return *n_k ? 0 : -1;
}

int jobctl_cmd_reaggregate(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    static const char usage[] =
        "usage: jobctl reaggregate JOB --db DIR [--k LIST] [--json]\n"
        "Recomputes the job's stats offline from the stored scores (no broker), with the same\n"
        "code and inputs as the aggregate worker: the result equals `jobctl report` unless --k\n"
        "changes the k list.\n"
        "  --db DIR   the broker's store directory (default $THINKFAST_DB)\n"
        "  --k LIST   comma-separated k values (default: the job's aggregate.k)\n"
        "  --json     the stats object instead of the table\n";
    const char *job, *db, *klist = NULL;
    int json = 0;
    int rc = parse_db_args(argc, argv, usage, &job, &db, NULL, &klist, &json);
    if (rc) return rc == 1 ? 0 : rc;
    store *st;
    store_job j;
    if (open_job(db, job, &st, &j, "reaggregate")) return 1;
    char err[2048];
    job_spec spec;
    memset(&spec, 0, sizeof spec);
    int k[AGG_MAX_K], n_k = 0;
    uint64_t seed = 0;
    rc = 1;
    reagg_in a = {.n_problems = j.n_problems, .n_samples = j.n_samples};
    size_t total = (size_t)j.n_problems * j.n_samples;
    agg_problem *ap = NULL;
    unsigned char *corr_rows = NULL;
    const char **canon_rows = NULL;
    double *rew_rows = NULL, *time_rows = NULL;
    if (!j.spec_json || job_spec_parse(j.spec_json, strlen(j.spec_json), "<stored spec>", &spec, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl reaggregate: job %s: stored spec unreadable: %s\n", job, j.spec_json ? err : "missing");
        goto out;
    }
    seed = spec.sampling.seed;
    if (klist) {
        if (parse_klist(klist, k, &n_k) != 0) { fprintf(stderr, "jobctl reaggregate: --k: expected a list like 1,2,4,8 (at most %d values)\n", AGG_MAX_K); rc = 2; goto out; }
    } else {
        n_k = spec.aggregate.n_k;
        for (int i = 0; i < n_k; i++) k[i] = spec.aggregate.k[i];
    }
    a.have = xcalloc(total ? total : 1, 1);
    a.correct = xcalloc(total ? total : 1, 1);
    a.canonical = xcalloc(total ? total : 1, sizeof(char *));
    a.reward = xmalloc((total ? total : 1) * sizeof(double));
    a.time_s = xmalloc((total ? total : 1) * sizeof(double));
    for (size_t i = 0; i < total; i++) a.reward[i] = a.time_s[i] = NAN;
    store_txn *txn;
    if (store_txn_begin(st, 0, &txn, err, sizeof err) != 0) { fprintf(stderr, "jobctl reaggregate: %s\n", err); goto out; }
    int src = store_generations_each_txn(txn, j.id, reagg_time_cb, &a);
    if (!src) src = store_scores_each_txn(txn, j.id, reagg_score_cb, &a);
    store_txn_abort(&txn);
    if (src) { fprintf(stderr, "jobctl reaggregate: reading the store: %s\n", store_strerror(src)); goto out; }
    /* Rows packed per problem in s order, only scored samples, only problems with a score. */
    ap = xcalloc(j.n_problems ? j.n_problems : 1, sizeof *ap);
    corr_rows = xmalloc(total ? total : 1);
    canon_rows = xcalloc(total ? total : 1, sizeof(char *));
    rew_rows = xmalloc((total ? total : 1) * sizeof(double));
    time_rows = xmalloc((total ? total : 1) * sizeof(double));
    int np = 0;
    size_t off = 0;
    for (uint32_t p = 0; p < j.n_problems; p++) {
        size_t base = (size_t)p * j.n_samples, start = off;
        for (uint32_t s = 0; s < j.n_samples; s++) {
            if (!a.have[base + s]) continue;
            corr_rows[off] = a.correct[base + s];
            canon_rows[off] = a.canonical[base + s];
            rew_rows[off] = a.reward[base + s];
            time_rows[off] = a.time_s[base + s];
            off++;
        }
        if (off == start) continue;
        ap[np].p = (int)p;
        ap[np].n = (int)(off - start);
        ap[np].correct = corr_rows + start;
        ap[np].canonical = canon_rows + start;
        ap[np].reward = rew_rows + start;
        ap[np].time_s = time_rows + start;
        np++;
    }
    proto_writer *w = proto_writer_new(NULL, 0);
    if (wrk_aggregate_stats(ap, np, k, n_k, seed, w, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl reaggregate: %s\n", err);
        proto_writer_destroy(&w);
        goto out;
    }
    size_t len;
    const void *data = proto_writer_data(w, &len);
    proto_msg *m;
    if (proto_parse_value(data, len, &m, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl reaggregate: %s\n", err);
        proto_writer_destroy(&w);
        goto out;
    }
    proto_writer_destroy(&w);
    if (json) {
        util_buf b;
        util_buf_init(&b);
        proto_val_to_json(proto_root(m), &b);
        printf("%s\n", b.data);
        util_buf_free(&b);
    } else {
        char id[32], title[200];
        store_job_id_format(j.id, id, sizeof id);
        snprintf(title, sizeof title, "job %s (reaggregated from %s)", id, db);
        jobctl_print_stats_table(title, proto_root(m));
    }
    proto_msg_destroy(&m);
    rc = 0;
out:
    for (size_t i = 0; a.canonical && i < total; i++) free(a.canonical[i]);
    free(a.have); free(a.correct); free(a.canonical); free(a.reward); free(a.time_s);
    free(ap); free(corr_rows); free(canon_rows); free(rew_rows); free(time_rows);
    job_spec_free(&spec);
    store_job_free(&j);
    store_close(&st);
    return rc;
}
