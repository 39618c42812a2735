/* tools/jobctl_report.h — the report side of jobctl: offline commands that turn a store's
 * scored samples into the paper's numbers and figures (bin/jobctl dispatches to them).
 *
 *   jobctl_report.c   shared: load one job's problems/generations/scores from a store into the
 *                     aggregate input (with MATH subject/level), the subject/level table, the
 *                     "JOB --db DIR" argument parser
 *   jobctl_compare.c  compare JOB1 JOB2 ... --db DIR [--json] [--plot F.svg|F.png] [--k LIST]
 *                     [--budget-axis] [--title T]: several jobs (from one store or several:
 *                     each --db applies to the JOBs after it) on one k axis and one
 *                     GPU-seconds axis, with subject/level breakdowns
 *   jobctl_rescore.c  rescore JOB --db DIR [--grader math|gsm8k] [--json] [--dry-run]: regrade
 *                     the stored generations offline (no broker may hold the store), rewrite the
 *                     scores that changed and the stats
 *   jobctl_csv.c      export JOB --db DIR --format csv: one RFC 4180 row per generation
 *   jobctl_png.c      SVG -> PNG for compare --plot F.png (rsvg-convert or librsvg, at run time)
 *
 * Every command has the jobctl_cmd_* signature of tools/jobctl.h: argv[0] is the subcommand's
 * name, the return value is the exit status (0 ok, 1 failure, 2 usage error). The jobctl_opts
 * (broker endpoint) are unused: these commands read the store directory directly.
 */
#ifndef THINKFAST_JOBCTL_REPORT_H
#define THINKFAST_JOBCTL_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jobs/proto.h"
#include "jobs/spec.h"
#include "store/store.h"
#include "tools/jobctl.h"
#include "workers/aggregate/aggregate.h"

/* ---- subcommands ---- */
int jobctl_cmd_compare(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_rescore(const jobctl_opts *o, int argc, char **argv);
/* `export JOB --db DIR --format csv [--no-text]`: accepts the same arguments as
 * jobctl_cmd_export (so the export command can hand its argv over when --format is csv). */
int jobctl_export_csv(const jobctl_opts *o, int argc, char **argv);
/* Appends s[0..n) to b as one RFC 4180 field: quoted (quotes doubled) when it holds a comma,
 * quote, CR or LF; invalid UTF-8 bytes and NULs become U+FFFD. */
void jobctl_csv_field(util_buf *b, const char *s, size_t n);

/* ---- one job's data, read from a store (offline) ---- */

/* Everything the report commands need about one job, indexed [p * n_samples + s]. Owned; free
 * with jobctl_jobdata_free. Strings are copies (the store's views die with its transaction). */
typedef struct jobctl_jobdata {
    store_job job;              /* the job record (spec_json, params owned) */
    job_spec spec;              /* the stored spec, parsed (spec_ok) */
    int spec_ok;
    char id[32];                /* "j-000001" */
    uint32_t n_problems, n_samples;
    /* per problem */
    char **subject;             /* [n_problems], "" when unknown */
    int *level;                 /* [n_problems], 0 when unknown */
    char **answer;              /* [n_problems], the reference answer */
    char **problem_id;          /* [n_problems], the dataset's id */
    /* per sample */
    unsigned char *have_gen, *have_score, *correct;
    char **text;                /* generation text (only when loaded with want_text) */
    uint32_t *text_len;
    char **extracted, **canonical;
    double *reward, *time_s;    /* NaN when absent */
    int64_t *tokens;
    char (*finish)[16];
    uint64_t n_gen, n_score;    /* stored generations / scores of the job */
    uint64_t n_score_orphan;    /* scores whose (p, s) lies outside the job's shape (ignored) */
    /* aggregate input (jobctl_jobdata_agg_input): problems with >= 1 score, s order */
    agg_problem *ap;
    int n_ap;
    unsigned char *ap_correct;
    const char **ap_canonical;
    double *ap_reward, *ap_time;
} jobctl_jobdata;

/* Reads job `id_or_name` (id text or name, see store_job_find) from an open store in one read
 * transaction: its record, problems, scores and generation telemetry (and texts when want_text).
 * Returns 0, or -1 with err ("no job \"x\"", "stored spec unreadable: ...", a store error).
 * *out is zeroed first and always safe to pass to jobctl_jobdata_free. */
int jobctl_jobdata_load(store *st, const char *id_or_name, int want_text, jobctl_jobdata *out,
                        char *err, size_t errlen);
/* Builds d->ap exactly as the broker builds the aggregate payload (problems with at least one
 * score, scored samples in s order, rewards, generation times) — so aggregate_compute on it
 * reproduces the online stats — plus, when with_meta, each problem's subject and level (which
 * add the by_subject / by_level breakdowns). Idempotent (rebuilds). */
void jobctl_jobdata_agg_input(jobctl_jobdata *d, int with_meta);
void jobctl_jobdata_free(jobctl_jobdata *d);

/* The job's k list (spec aggregate.k) and the seed every estimate uses (spec sampling.seed),
 * the same as the aggregate worker. Returns n_k (>= 1; {1} when the spec has none). */
int jobctl_jobdata_k(const jobctl_jobdata *d, int *k, uint64_t *seed);

/* Parses "1,2,4,8" into k (at most AGG_MAX_K distinct positive values, any order; sorted
 * ascending on return). Returns n_k, or -1 with err naming the bad element. */
int jobctl_parse_klist(const char *text, int *k, char *err, size_t errlen);

/* Prints the breakdown of an agg_stats by MATH subject and by level: one row per slice with its
 * problem count and coverage/majority at k = 1 (or the smallest k) and the largest k; for jobs
 * with rewards also bon@k / wbon@k pairs (every k of the job's list if the table fits 130
 * columns, else k = 1 dropped first and an even spread ending at the largest k, with a note
 * naming the k shown; "(wbon: seeded estimate)" when weighted BoN is estimated). Prints
 * nothing when the stats have no breakdown. */
void jobctl_print_breakdown(FILE *f, const agg_stats *s);
/* The same from a stats map as stored/sent by the broker (keys of agg_stats_to_json:
 * "by_subject", "by_level"), for `jobctl report`. Prints nothing when absent. */
void jobctl_print_breakdown_map(FILE *f, const proto_val *stats);

/* Converts an SVG file to PNG at `scale` x its size (tools/jobctl_png.c): rsvg-convert on PATH,
 * else librsvg loaded at run time. 0 ok (how gets "rsvg-convert" | "librsvg"); -1 with err
 * when no converter exists or the conversion failed. */
int jobctl_svg_to_png(const char *svg, const char *png, double scale, char *how, size_t howcap, char *err, size_t errlen);

/* Parses "SUBCMD JOB --db DIR" plus the extra flags (table ended by {NULL}; at most
 * JOBCTL_MAX_EXTRA_FLAGS; NULL = none) with jobctl_parse_args; --db defaults to $THINKFAST_DB
 * and is required. Returns 0, 1 (--help printed) or 2 (usage error printed). */
#define JOBCTL_MAX_EXTRA_FLAGS 8
int jobctl_parse_job_db(int argc, char **argv, const char *usage, const jobctl_flag *extra, const char **job,
                        const char **db);

/* Opens the store at db read-only; prints "jobctl CMD: ..." on failure. Returns 0 or 1. */
int jobctl_open_store_ro(const char *db, const char *cmd, store **out);

#endif
