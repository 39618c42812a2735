/* tools/jobctl_rescore.c — `jobctl rescore JOB --db DIR [--grader math|gsm8k] [--json]
 * [--dry-run]`: regrades a job's stored generations offline, without a broker, rewrites the
 * scores whose grade changed and recomputes the job's stats.
 *
 * Steps:
 *   1. open the store read-write (dry run: read-only). store_open takes the single-writer lock,
 *      so a running broker makes this fail with its pid: two writers would race on scores and
 *      stats (--dry-run only reads and works while a broker runs);
 *   2. read the job (problems' reference answers, generation texts, current scores);
 *   3. grade every scored sample with grade_answer / grade_canonical exactly as the score worker
 *      does (workers/wrk_score.c); rewards are kept; generations not scored yet are left alone
 *      (the broker scores them when the job resumes, and its counters stay right);
 *   4. recompute the stats with the aggregate worker's code and input (wrk_aggregate_stats, as
 *      `jobctl reaggregate`), so unchanged scores give identical stats (with the problems'
 *      subject/level breakdowns exactly when the stored stats have them);
 *   5. write the changed scores (store_score_replace) and the stats in one store_write
 *      transaction: all or nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tools/jobctl_report.h"
#include "workers/score/grade.h"
#include "workers/wrk_roles.h"

static const char rescore_usage[] =
    "usage: jobctl rescore JOB --db DIR [--grader math|gsm8k] [--json] [--dry-run]\n"
    "Regrades the job's stored generations offline (no broker may hold the store: stop it first),\n"
    "rewrites the scores that changed (rewards are kept) and recomputes the stats with the\n"
    "aggregate worker's code. Generations that were never scored are left alone.\n"
    "  --db DIR        the broker's store directory (default $THINKFAST_DB)\n"
    "  --grader NAME   math | gsm8k (default: the job's score.grader)\n"
    "  --json          print the summary as one JSON object\n"
    "  --dry-run       grade and report, write nothing (needs no lock: a broker may be running)\n";

/* ---- the rewrite ---- */

typedef struct new_score {
    uint32_t p, s;
    char *extracted, *canonical;
    int correct;
    double reward;
} new_score;

typedef struct rescore_write_in {
    uint64_t job;
    const new_score *scores;
    size_t n_scores;
    const store_stats *stats;   /* NULL: leave the stats alone */
} rescore_write_in;

/* store_write callback: the changed scores and the stats, in one transaction. */
static int rescore_write_txn(store_txn *t, void *ctx) {
    const rescore_write_in *in = ctx;
    for (size_t i = 0; i < in->n_scores; i++) {
        const new_score *n = &in->scores[i];
        store_score sc = {n->p, n->s, n->extracted, n->canonical, n->correct, n->reward, NULL, 0};
        store_score old; /* keep the stored PRM step scores: regrading never changes them */
        if (store_score_get(t, in->job, n->p, n->s, &old) == STORE_OK) {
            sc.steps = old.steps;
            sc.n_steps = old.n_steps;
        }
        int rc = store_score_replace(t, in->job, &sc);
        if (rc != STORE_OK) return rc;
    }
    return in->stats ? store_stats_put(t, in->job, in->stats) : STORE_OK;
}

/* ---- the command ---- */

static int stats_json(const void *msgpack, size_t len, util_buf *out) {
    proto_msg *m;
    char e[256];
    if (proto_parse_value(msgpack, len, &m, e, sizeof e) != 0) return -1;
    proto_val_to_json(proto_root(m), out);
    proto_msg_destroy(&m);
    return 0;
}

static double first_of(const char *json, const char *key) {
    /* coverage[0] for the summary line; the JSON is ours (agg_stats_to_json), so a scan is enough */
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":[", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) return NAN;
    p += strlen(pat);
    if (!strncmp(p, "null", 4)) return NAN;
    return strtod(p, NULL);
}

int jobctl_cmd_rescore(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    const char *db, *job, *grader_name = NULL;
    int json = 0, dry = 0;
    const jobctl_flag flags[] = {{"--json", &json, NULL}, {"--dry-run", &dry, NULL}, {"--grader", NULL, &grader_name},
                                 {NULL, NULL, NULL}};
    int prc = jobctl_parse_job_db(argc, argv, rescore_usage, flags, &job, &db);
    if (prc) return prc == 1 ? 0 : prc;
    grader_kind gk;
    if (grader_name && grade_parse_kind(grader_name, &gk) != 0) {
        fprintf(stderr, "jobctl %s: --grader: unknown grader \"%s\" (expected math or gsm8k)\n", argv[0], grader_name);
        return 2;
    }
    char err[2048];

    int rc = 1;
    store *st = NULL;
    jobctl_jobdata d;
    memset(&d, 0, sizeof d);
    store_stats old;
    memset(&old, 0, sizeof old);
    int have_old = 0;
    new_score *changed = NULL;
    size_t n_changed = 0;
    proto_writer *w = NULL;
    util_buf old_json, new_json, out;
    util_buf_init(&old_json); util_buf_init(&new_json); util_buf_init(&out);

    if (dry) {
        if (jobctl_open_store_ro(db, argv[0], &st)) goto done;
    } else if (store_open(db, 0, 0, &st, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl %s: %s (rescore rewrites scores and needs the store to itself: stop the broker, "
                        "or use --dry-run)\n", argv[0], err);
        goto done;
    }
    if (jobctl_jobdata_load(st, job, 1, &d, err, sizeof err) != 0) { fprintf(stderr, "jobctl %s: %s: %s\n", argv[0], db, err); goto done; }
    int src = store_stats_get(st, d.job.id, &old, err, sizeof err);
    if (src == STORE_OK) have_old = 1;
    else if (src != STORE_ERR_NOTFOUND) { fprintf(stderr, "jobctl %s: reading stats: %s\n", argv[0], err); goto done; }
    if (!grader_name) {
        if (grade_parse_kind(d.spec.score.grader, &gk) != 0) {
            fprintf(stderr, "jobctl %s: job %s: its spec names an unknown grader \"%s\"; pass --grader\n", argv[0], d.id, d.spec.score.grader);
            goto done;
        }
    }

    /* regrade */
    uint64_t regraded = 0, to_correct = 0, to_wrong = 0, answer_only = 0, unscored = 0, no_text = 0;
    size_t total = (size_t)d.n_problems * d.n_samples;
    changed = xcalloc(total ? total : 1, sizeof *changed);
    char extracted[GRADE_ANSWER_MAX + 2], canonical[GRADE_ANSWER_MAX + 2];
    for (uint32_t p = 0; p < d.n_problems; p++) {
        for (uint32_t s = 0; s < d.n_samples; s++) {
            size_t i = (size_t)p * d.n_samples + s;
            if (!d.have_score[i]) { unscored += d.have_gen[i]; continue; }
            if (!d.have_gen[i]) { no_text++; continue; }   /* a score without its generation: nothing to regrade */
            int correct = grade_answer(gk, d.text[i], d.answer[p], extracted, sizeof extracted) == 1;
            if (grade_canonical(gk, extracted, canonical, sizeof canonical) != 0) canonical[sizeof canonical - 1] = 0;
            regraded++;
            int same = correct == d.correct[i] && !strcmp(extracted, d.extracted[i]) && !strcmp(canonical, d.canonical[i]);
            if (same) continue;
            if (correct && !d.correct[i]) to_correct++;
            else if (!correct && d.correct[i]) to_wrong++;
            else answer_only++;
            new_score *n = &changed[n_changed++];
            n->p = p; n->s = s;
            n->extracted = xstrdup(extracted);
            n->canonical = xstrdup(canonical);
            n->correct = correct;
            n->reward = d.reward[i];
            /* the new grade feeds the stats below */
            d.correct[i] = (unsigned char)correct;
            free(d.extracted[i]); d.extracted[i] = xstrdup(extracted);
            free(d.canonical[i]); d.canonical[i] = xstrdup(canonical);
        }
    }

    /* stats, as the aggregate worker computes them */
    int k[AGG_MAX_K];
    uint64_t seed;
    int n_k = jobctl_jobdata_k(&d, k, &seed);
    if (have_old && stats_json(old.msgpack, old.msgpack_len, &old_json) != 0) have_old = 0;
    /* Subject/level breakdowns: match the stored stats' form (they exist when the broker's
     * aggregate payload carries the problems' subject and level), else include them. */
    int with_meta = !have_old || strstr(old_json.data ? old_json.data : "", "\"by_subject\":") ||
                    strstr(old_json.data ? old_json.data : "", "\"by_level\":");
    jobctl_jobdata_agg_input(&d, with_meta);
    w = proto_writer_new(NULL, 0);
    if (wrk_aggregate_stats(d.ap, d.n_ap, k, n_k, seed, w, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl %s: job %s: recomputing stats: %s\n", argv[0], d.id, err);
        goto done;
    }
    size_t new_len;
    const void *new_stats = proto_writer_data(w, &new_len);
    if (stats_json(new_stats, new_len, &new_json) != 0) { fprintf(stderr, "jobctl %s: internal: stats do not decode\n", argv[0]); goto done; }
    int stats_changed = !have_old || old_json.len != new_json.len || memcmp(old_json.data, new_json.data, new_json.len) != 0;
    if (d.n_ap == 0) stats_changed = 0;   /* nothing scored: leave the (absent) stats alone */

    int written = 0;
    if (!dry && (n_changed > 0 || stats_changed)) {
        int32_t final = have_old ? old.final : !strcmp(d.job.state, "done");
        store_stats ns = {final, util_wall_ms(), d.n_score, 0, (uint8_t *)new_stats, new_len};
        rescore_write_in in = {d.job.id, changed, n_changed, stats_changed ? &ns : NULL};
        if (store_write(st, rescore_write_txn, &in, err, sizeof err) != 0) {
            fprintf(stderr, "jobctl %s: writing %s: %s\n", argv[0], db, err);
            goto done;
        }
        written = 1;
    }

    char gname[16];
    snprintf(gname, sizeof gname, "%s", grade_kind_name(gk));
    if (json) {
        util_buf_append(&out, "{\"job\":", 7);
        jobctl_json_str(&out, d.id, strlen(d.id));
        util_buf_append(&out, ",\"name\":", 8);
        jobctl_json_str(&out, d.job.name, strlen(d.job.name));
        util_buf_printf(&out, ",\"grader\":\"%s\",\"regraded\":%llu,\"changed\":%zu,\"to_correct\":%llu,\"to_wrong\":%llu,"
                              "\"answer_only\":%llu,\"unscored\":%llu,\"scores_without_generation\":%llu,"
                              "\"stats_changed\":%s,\"written\":%s,\"dry_run\":%s,\"stats\":",
                        gname, (unsigned long long)regraded, n_changed, (unsigned long long)to_correct,
                        (unsigned long long)to_wrong, (unsigned long long)answer_only, (unsigned long long)unscored,
                        (unsigned long long)no_text, stats_changed ? "true" : "false", written ? "true" : "false",
                        dry ? "true" : "false");
        if (d.n_ap) util_buf_append(&out, new_json.data, new_json.len);
        else util_buf_append(&out, "null", 4);
        util_buf_append(&out, "}\n", 2);
        fwrite(out.data, 1, out.len, stdout);
    } else {
        printf("rescore %s (%s) with the %s grader%s: %llu scored samples regraded, %zu changed "
               "(%llu now correct, %llu now wrong, %llu other answer changes)\n",
               d.id, d.job.name, gname, dry ? " (dry run)" : "", (unsigned long long)regraded, n_changed,
               (unsigned long long)to_correct, (unsigned long long)to_wrong, (unsigned long long)answer_only);
        if (unscored) printf("  %llu generation(s) not scored yet were left alone\n", (unsigned long long)unscored);
        if (no_text) printf("  %llu score(s) without a stored generation were left alone\n", (unsigned long long)no_text);
        double c0 = first_of(have_old ? old_json.data : NULL, "coverage"), c1 = first_of(new_json.data, "coverage");
        if (d.n_ap == 0) printf("  stats: nothing scored, no stats\n");
        else if (!stats_changed) printf("  stats: unchanged (coverage@%d %.4f)\n", k[0], c1);
        else if (have_old) printf("  stats: %s (coverage@%d %.4f -> %.4f)\n", written ? "rewritten" : "would change", k[0], c0, c1);
        else printf("  stats: %s (coverage@%d %.4f)\n", written ? "written" : "would be written", k[0], c1);
    }
    if (!dry && grader_name && strcmp(d.job.state, "done") && strcmp(d.job.state, "failed") && strcmp(d.job.state, "cancelled") &&
        strcmp(d.spec.score.grader, gname))
        fprintf(stderr, "jobctl %s: note: job %s is %s; samples the broker scores later use its own grader (%s)\n", argv[0],
                d.id, d.job.state, d.spec.score.grader);
    rc = fflush(stdout) ? 1 : 0;
done:
    for (size_t i = 0; i < n_changed; i++) { free(changed[i].extracted); free(changed[i].canonical); }
    free(changed);
    proto_writer_destroy(&w);
    util_buf_free(&old_json); util_buf_free(&new_json); util_buf_free(&out);
    store_stats_free(&old);
    jobctl_jobdata_free(&d);
    if (st) store_close(&st);
    return rc;
}
