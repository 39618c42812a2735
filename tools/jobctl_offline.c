/* tools/jobctl_offline.c — subcommands that read the store directly, read-only, with no broker:
 *   export JOB --db DIR --format jsonl     one JSON line per generation (with its score and,
 *                                          for PRM jobs, its step scores)
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
#include "tools/jobctl_report.h"
#include "workers/aggregate/aggregate.h"
#include "workers/wrk_roles.h"

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
    if (have && sc.steps && sc.n_steps > 0) { /* PRM step scores (NaN as null) */
        util_buf_append(b, ",\"steps\":[", 10);
        for (uint32_t i = 0; i < sc.n_steps; i++) {
            if (i) util_buf_append(b, ",", 1);
            if (isfinite(sc.steps[i])) util_buf_printf(b, "%.17g", sc.steps[i]);
            else util_buf_append(b, "null", 4);
        }
        util_buf_append(b, "]", 1);
    }
    util_buf_append(b, "}\n", 2);
    if (fwrite(b->data, 1, b->len, e->out) != b->len) { e->io_error = 1; return 1; }
    e->n++;
    return 0;
}

int jobctl_cmd_export(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    static const char usage[] =
        "usage: jobctl export JOB --db DIR [--format jsonl|csv]\n"
        "Reads the store (read-only; a running broker is fine) and writes one JSON line per\n"
        "generation to stdout: {\"problem\",\"sample\",\"text\",\"extracted\",\"correct\",\"canonical\",\n"
        "\"tokens\",\"time_s\",\"finish\"} (extracted/correct null while not scored), plus\n"
        "\"steps\":[...] (the PRM step scores) when the score has them.\n"
        "  --db DIR        the broker's store directory (default $THINKFAST_DB)\n"
        "  --format F      jsonl (default) or csv (RFC 4180; see jobctl export --format csv --help)\n";
    for (int i = 1; i + 1 < argc; i++)   /* csv has flags of its own (--no-text): hand it argv whole */
        if (!strcmp(argv[i], "--format") && !strcmp(argv[i + 1], "csv")) return jobctl_export_csv(o, argc, argv);
    const char *job, *db, *format = "jsonl";
    const jobctl_flag flags[] = {{"--format", NULL, &format}, {NULL, NULL, NULL}};
    int rc = jobctl_parse_job_db(argc, argv, usage, flags, &job, &db);
    if (rc) return rc == 1 ? 0 : rc;
    if (strcmp(format, "jsonl") != 0) { fprintf(stderr, "jobctl export: --format: unknown format \"%s\" (expected jsonl|csv)\n", format); return 2; }
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
    const jobctl_flag flags[] = {{"--k", NULL, &klist}, {"--json", &json, NULL}, {NULL, NULL, NULL}};
    int rc = jobctl_parse_job_db(argc, argv, usage, flags, &job, &db);
    if (rc) return rc == 1 ? 0 : rc;
    store *st;
    if (jobctl_open_store_ro(db, "reaggregate", &st)) return 1;
    char err[2048];
    jobctl_jobdata d;
    int k[AGG_MAX_K], n_k = 0;
    uint64_t seed = 0;
    rc = 1;
    /* The same input the broker sends the aggregate worker (subject/level included), so the
     * result equals the online stats. */
    if (jobctl_jobdata_load(st, job, 0, &d, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl reaggregate: %s: %s\n", db, err);
        goto out;
    }
    n_k = jobctl_jobdata_k(&d, k, &seed);
    if (klist && (n_k = jobctl_parse_klist(klist, k, err, sizeof err)) < 0) {
        fprintf(stderr, "jobctl reaggregate: --k: %s\n", err);
        rc = 2;
        goto out;
    }
    jobctl_jobdata_agg_input(&d, 1);
    proto_writer *w = proto_writer_new(NULL, 0);
    if (wrk_aggregate_stats(d.ap, d.n_ap, k, n_k, seed, w, err, sizeof err) != 0) {
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
        char title[200];
        snprintf(title, sizeof title, "job %s (reaggregated from %s)", d.id, db);
        jobctl_print_stats_table(title, proto_root(m));
    }
    proto_msg_destroy(&m);
    rc = 0;
out:
    jobctl_jobdata_free(&d);
    store_close(&st);
    return rc;
}
