/* tools/jobctl_compare.c — `jobctl compare JOB1 JOB2 ... --db DIR`: several jobs (teacher vs
 * student, two checkpoints, two temperatures) on one k axis and one GPU-seconds axis — the
 * paper's inference-scaling figure — computed offline from the store (read-only; a running
 * broker is fine).
 *
 * Every job is aggregated with aggregate_compute on the same input the aggregate worker gets
 * (so its overall numbers equal `jobctl reaggregate --k LIST`), plus each problem's MATH subject
 * and level (the by_subject / by_level breakdowns), on one k list: --k, else the union of the
 * jobs' aggregate.k lists. Each job keeps its own seed (spec sampling.seed).
 *
 * Time axis (aggregate.h's rule): a budget of T GPU-seconds per problem buys floor(T / t) samples
 * of a job whose samples take t on average (amortised time_s, DESIGN.md Metrics); coverage and
 * majority are the unbiased estimates at that many samples. By default each job is shown at its
 * own budgets k x t (aggregate's "time" curves); --budget-axis evaluates every job on one shared
 * grid of budgets (powers of two between the smallest and largest budget of all jobs) so that
 * the table compares them at equal cost.
 *
 * Output: a table for people, or --json: one JSON object per line per job
 *   {"job":"j-000001","name":..,"label":..,"db":DIR,"state":..,"problems_total":N,"samples_per_problem":n,
 *    "stats":{agg_stats_to_json, with by_subject/by_level/time (+ per_problem with --per-problem)},
 *    "budget":{"budget_s":[..],"coverage":[..],"majority":[..]}   (--budget-axis only)}
 * --plot FILE.svg|FILE.png: a figure with panels coverage@k, majority@k (log-2 k axis) and
 * coverage / majority vs GPU-seconds per problem (log axis), plus best-of-N panels when the jobs
 * have rewards; one colour per job, bootstrap 95% bands on the k panels. For .png the SVG is
 * written next to it (FILE.svg) and converted (tools/jobctl_png.c); without a converter the
 * SVG is kept and the command says so (exit status 0: the figure exists, as SVG).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tools/jobctl_report.h"
#include "workers/aggregate/metrics.h"
#include "workers/aggregate/plot_svg.h"

#define CMP_MAX_JOBS 16

static const char cmp_usage[] =
    "usage: jobctl compare JOB [JOB ...] --db DIR [--json] [--plot FILE.svg|FILE.png] [--k LIST]\n"
    "                      [--budget-axis] [--per-problem] [--title TEXT]\n"
    "Compares jobs (e.g. a teacher and its distilled student) on one k axis and one GPU-time axis,\n"
    "offline from the store (read-only; a running broker is fine). JOB is an id (j-000001, 1) or a\n"
    "job name. Prints coverage@k, majority@k (and best-of-N with rewards) with bootstrap 95%\n"
    "intervals, accuracy vs GPU-seconds per problem, and the MATH subject / level breakdown.\n"
    "  --db DIR        the broker's store directory (default $THINKFAST_DB); jobs in several stores:\n"
    "                  each --db applies to the JOBs after it (--db A teacher --db B student)\n"
    "  --json          one JSON object per job and line instead of the tables\n"
    "  --plot FILE     write the figure: FILE.svg, or FILE.png (needs rsvg-convert or librsvg;\n"
    "                  the SVG is always written too)\n"
    "  --k LIST        comma-separated k values (default: the union of the jobs' aggregate.k)\n"
    "  --budget-axis   evaluate every job on one shared grid of GPU-second budgets\n"
    "  --per-problem   with --json: each problem's coverage@k and majority@k too\n"
    "  --title TEXT    the figure's title (default \"Inference scaling: NAME vs NAME\")\n";

typedef struct cmp_job {
    jobctl_jobdata d;
    agg_stats st;
    int have_st;
    char label[256];
    uint64_t seed;
    double bud_cov[AGG_MAX_K], bud_maj[AGG_MAX_K];
} cmp_job;

typedef struct cmp_args {
    const char *jobs[CMP_MAX_JOBS];
    const char *job_db[CMP_MAX_JOBS];   /* the store each job is read from */
    int n_jobs;
    const char *db, *plot, *klist, *title;
    int json, budget_axis, per_problem;
} cmp_args;

static int parse_args(int argc, char **argv, cmp_args *a) {
    memset(a, 0, sizeof *a);
    const char *env = getenv("THINKFAST_DB");
    const char *first_db = NULL, *cur_db = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) { printf("%s", cmp_usage); return 1; }
        if (!strcmp(s, "--json")) { a->json = 1; continue; }
        if (!strcmp(s, "--budget-axis")) { a->budget_axis = 1; continue; }
        if (!strcmp(s, "--per-problem")) { a->per_problem = 1; continue; }
        if (!strcmp(s, "--db") || !strcmp(s, "--plot") || !strcmp(s, "--k") || !strcmp(s, "--title")) {
            if (i + 1 >= argc || !argv[i + 1][0]) { fprintf(stderr, "jobctl %s: %s needs a value\n", argv[0], s); return 2; }
            const char *v = argv[++i];
            if (!strcmp(s, "--db")) { cur_db = v; if (!first_db) first_db = v; }
            else if (!strcmp(s, "--plot")) a->plot = v;
            else if (!strcmp(s, "--k")) a->klist = v;
            else a->title = v;
            continue;
        }
        if (s[0] == '-' && s[1]) { fprintf(stderr, "jobctl %s: unknown flag %s\n%s", argv[0], s, cmp_usage); return 2; }
        if (a->n_jobs >= CMP_MAX_JOBS) { fprintf(stderr, "jobctl %s: at most %d jobs\n", argv[0], CMP_MAX_JOBS); return 2; }
        a->job_db[a->n_jobs] = cur_db;
        a->jobs[a->n_jobs++] = s;
    }
    /* --db applies to the jobs after it; jobs before the first --db use the first one */
    a->db = first_db ? first_db : env && *env ? env : NULL;
    for (int j = 0; j < a->n_jobs; j++) if (!a->job_db[j]) a->job_db[j] = a->db;
    if (a->n_jobs == 0) { fprintf(stderr, "jobctl %s: name at least one JOB\n%s", argv[0], cmp_usage); return 2; }
    if (!a->db) { fprintf(stderr, "jobctl %s: --db DIR is required (or set THINKFAST_DB)\n", argv[0]); return 2; }
    if (a->plot) {
        const char *dot = strrchr(a->plot, '.');
        if (!dot || (strcasecmp(dot, ".svg") != 0 && strcasecmp(dot, ".png") != 0)) {
            fprintf(stderr, "jobctl %s: --plot: expected a file name ending in .svg or .png, got \"%s\"\n", argv[0], a->plot);
            return 2;
        }
    }
    return 0;
}

/* Union of the jobs' k lists, ascending, at most AGG_MAX_K (the smallest are kept). */
static int union_k(cmp_job *jobs, int n_jobs, int *k) {
    int all[AGG_MAX_K * CMP_MAX_JOBS], n = 0;
    for (int j = 0; j < n_jobs; j++) {
        int kk[AGG_MAX_K];
        int nk = jobctl_jobdata_k(&jobs[j].d, kk, NULL);
        for (int i = 0; i < nk; i++) {
            int dup = 0;
            for (int q = 0; q < n; q++) dup |= all[q] == kk[i];
            if (!dup) all[n++] = kk[i];
        }
    }
    for (int i = 1; i < n; i++)       /* insertion sort: n is small */
        for (int q = i; q > 0 && all[q - 1] > all[q]; q--) { int t = all[q]; all[q] = all[q - 1]; all[q - 1] = t; }
    if (n > AGG_MAX_K) n = AGG_MAX_K;
    memcpy(k, all, sizeof(int) * (size_t)n);
    return n;
}

/* ---- the shared budget grid ---- */

/* Accuracy of one problem when `kp` of its samples are drawn: coverage (pass@kp) and majority,
 * computed as aggregate.c does (agg_problem_at_k). kp = 0 scores 0. */
static void problem_at(const agg_problem *p, int kp, uint64_t seed, double *cov, double *maj) {
    *cov = *maj = 0;
    if (kp <= 0 || p->n <= 0) return;
    if (kp > p->n) kp = p->n;
    double m;
    agg_problem_at_k(p, kp, seed, cov, &m);
    if (isfinite(m)) *maj = m;
}

/* The shared grid: budgets min_budget * 2^i up to the largest budget of any job, at most
 * AGG_MAX_K points (coarser steps when the span is wider). Returns the number of budgets. */
static int budget_grid(const cmp_job *jobs, int n_jobs, double *grid) {
    double lo = INFINITY, hi = 0;
    for (int j = 0; j < n_jobs; j++) {
        const agg_stats *s = &jobs[j].st;
        if (!jobs[j].have_st || !s->has_time || !(s->mean_sample_s > 0)) continue;
        for (int i = 0; i < s->n_k; i++) {
            if (s->budget_s[i] > 0 && s->budget_s[i] < lo) lo = s->budget_s[i];
            if (s->budget_s[i] > hi) hi = s->budget_s[i];
        }
    }
    if (!(lo <= hi) || !isfinite(lo)) return 0;
    int span = (int)floor(log2(hi / lo) + 1e-9);
    int step = 1;
    while (span / step + 1 > AGG_MAX_K) step++;
    int n = 0;
    for (int e = 0; e <= span && n < AGG_MAX_K; e += step) grid[n++] = lo * pow(2.0, e);
    return n;
}

/* aggregate.h's rule on an arbitrary budget T: the job buys k(T) = floor(T / mean_sample_s)
 * samples per problem; problems with fewer than k(T) samples are left out (as in the k columns);
 * k(T) = 0 scores 0; NaN when no problem has k(T) samples (beyond the job's data). */
static void eval_grid(cmp_job *j, const double *grid, int n_grid) {
    const jobctl_jobdata *d = &j->d;
    int n_max = 0;
    for (int i = 0; i < d->n_ap; i++) if (d->ap[i].n > n_max) n_max = d->ap[i].n;
    for (int b = 0; b < n_grid; b++) {
        j->bud_cov[b] = j->bud_maj[b] = NAN;
        if (!j->st.has_time) continue;
        /* n_max + 1 as the cap: a budget beyond every problem's samples must read as "no data" */
        int kT = metrics_samples_in_budget(grid[b], j->st.mean_sample_s, n_max + 1);
        if (kT > n_max) continue;
        double sc = 0, sm = 0;
        int cnt = 0;
        for (int i = 0; i < d->n_ap; i++) {
            const agg_problem *p = &d->ap[i];
            if (p->n < kT) continue;
            double c, m;
            problem_at(p, kT, j->seed, &c, &m);
            sc += c; sm += m; cnt++;
        }
        if (cnt) { j->bud_cov[b] = sc / cnt; j->bud_maj[b] = sm / cnt; }
    }
}

/* ---- output ---- */

static void print_num(double v, int width) {
    if (isfinite(v)) printf("%*.3f", width, v);
    else printf("%*s", width, "-");
}

static void fmt_seconds(char *buf, size_t cap, double s) {
    if (!isfinite(s)) snprintf(buf, cap, "-");
    else if (s >= 1) snprintf(buf, cap, "%.3g s", s);
    else if (s >= 1e-3) snprintf(buf, cap, "%.3g ms", s * 1e3);
    else if (s >= 1e-6) snprintf(buf, cap, "%.3g us", s * 1e6);
    else snprintf(buf, cap, "%.3g ns", s * 1e9);
}

/* One metric, rows k, a column per job: "0.681 [0.647, 0.716]". */
static void print_metric(const char *title, cmp_job *jobs, int n_jobs, const int *k, int n_k, int which) {
    int cw = 22;   /* "0.681 [0.647, 0.716]" fits; wider for long job labels */
    for (int j = 0; j < n_jobs; j++) if ((int)strlen(jobs[j].label) > cw) cw = (int)strlen(jobs[j].label);
    if (cw > 48) cw = 48;
    printf("\n%s\n%6s", title, "k");
    for (int j = 0; j < n_jobs; j++) printf("  %-*.*s", cw, cw, jobs[j].label);
    printf("\n");
    for (int i = 0; i < n_k; i++) {
        printf("%6d", k[i]);
        for (int j = 0; j < n_jobs; j++) {
            const agg_stats *s = &jobs[j].st;
            const double *v = which == 0 ? s->coverage : which == 1 ? s->majority : which == 2 ? s->bon : s->wbon;
            const double *lo = which == 0 ? s->coverage_lo : which == 1 ? s->majority_lo : which == 2 ? s->bon_lo : s->wbon_lo;
            const double *hi = which == 0 ? s->coverage_hi : which == 1 ? s->majority_hi : which == 2 ? s->bon_hi : s->wbon_hi;
            if (!jobs[j].have_st || (which >= 2 && !s->has_reward) || !isfinite(v[i])) { printf("  %-*s", cw, "-"); continue; }
            char cell[64];
            if (isfinite(lo[i]) && isfinite(hi[i])) snprintf(cell, sizeof cell, "%.3f [%.3f, %.3f]", v[i], lo[i], hi[i]);
            else snprintf(cell, sizeof cell, "%.3f", v[i]);
            printf("  %-*s", cw, cell);
        }
        printf("\n");
    }
}

/* Name column width of a breakdown table: its header and row names, at most 32. */
static int slice_name_width(const char *what, const char *const *names, int n) {
    int w = (int)strlen(what);
    for (int i = 0; i < n; i++) if ((int)strlen(names[i]) > w) w = (int)strlen(names[i]);
    return w > 32 ? 32 : w;
}

/* The subject / level tables stay within this many columns (the reward columns are shown at as
 * many k as fit; every k is in --json). */
#define CMP_SLICE_WIDTH 130

/* Indices of k[0..n_k) whose bon@k / wbon@k fit next to the other columns: every k when they
 * fit in `room` characters at `pair` characters per k; else k = 1 goes first (best-of-1 and
 * weighted best-of-1 equal coverage@1 whenever every sample has a reward); else as many as fit
 * (at least one), spread evenly from the smallest remaining k to the largest. k is ascending
 * (union_k / jobctl_parse_klist). Returns how many. */
static int pick_bon_k(const int *k, int n_k, int room, int pair, int *idx) {
    int fit = pair > 0 ? room / pair : n_k;
    if (fit < 1) fit = 1;
    int from = n_k > fit && n_k > 1 && k[0] == 1 ? 1 : 0;
    int cand = n_k - from, m = cand < fit ? cand : fit;
    for (int i = 0; i < m; i++) {
        int pos = m == 1 ? cand - 1 : (int)((double)i * (cand - 1) / (m - 1) + 0.5);
        idx[i] = from + pos;
    }
    return m;
}

/* Subject / level table across jobs: rows = union of slice names, per job cov@kmin cov@kmax
 * maj@kmax, and when some job has rewards bon@k wbon@k at the k columns bk[0..n_bk) ("-" for a
 * job without rewards). */
static void print_slices_cmp(const char *what, cmp_job *jobs, int n_jobs, int level, const int *k, int n_k,
                             const int *bk, int n_bk) {
    const char *names[512];
    int n_names = 0;
    for (int j = 0; j < n_jobs; j++) {
        const agg_stats *s = &jobs[j].st;
        const agg_curve *c = level ? s->by_level : s->by_subject;
        int n = level ? s->n_level : s->n_subject;
        for (int i = 0; i < n && n_names < 512; i++) {
            int dup = 0;
            for (int q = 0; q < n_names; q++) dup |= !strcmp(names[q], c[i].name);
            if (!dup) names[n_names++] = c[i].name;
        }
    }
    if (!n_names) return;
    int w = slice_name_width(what, names, n_names);
    int jlo = 0, jhi = n_k - 1;
    char h[96 + AGG_MAX_K * 24], c1[24], c2[24], c3[24];
    snprintf(c1, sizeof c1, "cov@%d", k[jlo]);
    snprintf(c2, sizeof c2, "cov@%d", k[jhi]);
    snprintf(c3, sizeof c3, "maj@%d", k[jhi]);
    int n_h = snprintf(h, sizeof h, "%5s%7s%7s%7s", "probs", c1, c2, c3);
    int bw[AGG_MAX_K];   /* width of each bon / wbon column: a space and "wbon@K" at least */
    for (int b = 0; b < n_bk; b++) {
        char hb[24], hw[24];
        snprintf(hb, sizeof hb, "bon@%d", k[bk[b]]);
        snprintf(hw, sizeof hw, "wbon@%d", k[bk[b]]);
        bw[b] = 1 + (int)strlen(hw) > 7 ? 1 + (int)strlen(hw) : 7;
        if (n_h > 0 && (size_t)n_h < sizeof h)
            n_h += snprintf(h + n_h, sizeof h - (size_t)n_h, "%*s%*s", bw[b], hb, bw[b], hw);
    }
    int gw = n_bk ? (int)strlen(h) : 26;   /* one job's column group */
    printf("\nby %s (problems, coverage@%d, coverage@%d, majority@%d", what, k[jlo], k[jhi], k[jhi]);
    if (n_bk) {
        printf(", best-of-N / weighted best-of-N at k =");
        for (int b = 0; b < n_bk; b++) printf("%s %d", b ? "," : "", k[bk[b]]);
    }
    printf(")\n%-*s", w, "");
    for (int j = 0; j < n_jobs; j++) printf(" | %-*.*s", gw, gw, jobs[j].label);
    printf("\n%-*s", w, what);
    for (int j = 0; j < n_jobs; j++) printf(" | %*.*s", gw, gw, h);
    printf("\n");
    for (int i = 0; i < n_names; i++) {
        printf("%-*.*s", w, w, names[i]);
        for (int j = 0; j < n_jobs; j++) {
            const agg_stats *s = &jobs[j].st;
            const agg_curve *c = level ? s->by_level : s->by_subject, *hit = NULL;
            int n = level ? s->n_level : s->n_subject;
            for (int q = 0; q < n; q++) if (!strcmp(c[q].name, names[i])) hit = &c[q];
            if (!hit) { printf(" | %*s", gw, "-"); continue; }
            printf(" | %5d", hit->problems);
            print_num(hit->coverage[jlo], 7);
            print_num(hit->coverage[jhi], 7);
            print_num(hit->majority[jhi], 7);
            for (int b = 0; b < n_bk; b++) {
                print_num(s->has_reward ? hit->bon[bk[b]] : NAN, bw[b]);
                print_num(s->has_reward ? hit->wbon[bk[b]] : NAN, bw[b]);
            }
        }
        printf("\n");
    }
}

/* Both breakdown tables with one column layout; with rewards, a line naming the k of the reward
 * columns when they are not all of k (weighted best-of-N's seeded-estimate flag is printed under
 * the overall table: the breakdowns average the same per-problem values). */
static void print_breakdowns_cmp(cmp_job *jobs, int n_jobs, const int *k, int n_k) {
    int any_reward = 0, has_slices = 0;
    const char *names[1024];
    int n_names = 0;
    for (int j = 0; j < n_jobs; j++) {
        const agg_stats *s = &jobs[j].st;
        if (!jobs[j].have_st) continue;
        any_reward |= s->has_reward;
        has_slices |= s->n_subject > 0 || s->n_level > 0;
        for (int i = 0; i < s->n_subject && n_names < 1024; i++) names[n_names++] = s->by_subject[i].name;
        for (int i = 0; i < s->n_level && n_names < 1024; i++) names[n_names++] = s->by_level[i].name;
    }
    int bk[AGG_MAX_K] = {0}, n_bk = 0;
    if (any_reward && has_slices && n_k > 0) {
        /* room per job: the width left by the name column and the fixed part of each group,
         * shared by the jobs; a k's pair of columns is 2 x max(7, 1 + strlen("wbon@K")) */
        int w = slice_name_width("subject", names, n_names);
        char hw[24];
        snprintf(hw, sizeof hw, "wbon@%d", k[n_k - 1]);
        int pair = 2 * (1 + (int)strlen(hw) > 7 ? 1 + (int)strlen(hw) : 7);
        int room = (CMP_SLICE_WIDTH - w) / n_jobs - 3 - 26;
        n_bk = pick_bon_k(k, n_k, room, pair, bk);
    }
    print_slices_cmp("subject", jobs, n_jobs, 0, k, n_k, bk, n_bk);
    print_slices_cmp("level", jobs, n_jobs, 1, k, n_k, bk, n_bk);
    if (!n_bk) return;
    if (n_bk < n_k) {
        printf("(best-of-N columns at k =");
        for (int b = 0; b < n_bk; b++) printf("%s %d", b ? "," : "", k[bk[b]]);
        printf(" of");
        for (int i = 0; i < n_k; i++) printf("%s %d", i ? "," : "", k[i]);
        printf(" to fit the width; every k in --json)\n");
    }
}

static void print_tables(const cmp_args *a, cmp_job *jobs, int n_jobs, const int *k, int n_k, const double *grid, int n_grid) {
    int one_db = 1;
    for (int j = 1; j < n_jobs; j++) one_db &= !strcmp(a->job_db[j], a->job_db[0]);
    if (one_db) printf("compare: %d job%s from %s\n", n_jobs, n_jobs == 1 ? "" : "s", a->db);
    else {
        printf("compare: %d jobs from", n_jobs);
        for (int j = 0; j < n_jobs; j++) printf("%s %s:%s", j ? "," : "", a->job_db[j], a->jobs[j]);
        printf("\n");
    }
    printf("  %-10s %-24s %-9s %9s %8s %9s %11s\n", "job", "name", "state", "problems", "samples", "correct", "t/sample");
    int any_reward = 0, any_time = 0;
    for (int j = 0; j < n_jobs; j++) {
        const cmp_job *c = &jobs[j];
        const agg_stats *s = &c->st;
        char probs[32], corr[32], ts[32];
        snprintf(probs, sizeof probs, "%d/%u", c->have_st ? s->problems : 0, c->d.n_problems);
        snprintf(corr, sizeof corr, "%.1f%%", c->have_st && s->samples ? 100.0 * (double)s->correct / (double)s->samples : 0.0);
        fmt_seconds(ts, sizeof ts, c->have_st && s->has_time ? s->mean_sample_s : NAN);
        printf("  %-10s %-24.24s %-9s %9s %8lld %9s %11s\n", c->d.id, c->d.job.name, c->d.job.state, probs,
               c->have_st ? s->samples : 0LL, corr, ts);
        any_reward |= c->have_st && s->has_reward;
        any_time |= c->have_st && s->has_time;
    }
    print_metric("coverage@k (pass@k, unbiased) [bootstrap 95% interval]", jobs, n_jobs, k, n_k, 0);
    print_metric("majority@k (accuracy of the plurality answer)", jobs, n_jobs, k, n_k, 1);
    int inexact = 0;
    for (int j = 0; j < n_jobs; j++) inexact |= jobs[j].have_st && !jobs[j].st.majority_exact;
    if (inexact) printf("(majority: some values are seeded estimates; see majority_se in --json)\n");
    if (any_reward) {
        print_metric("best-of-N@k (highest-reward sample)", jobs, n_jobs, k, n_k, 2);
        print_metric("weighted best-of-N@k (reward summed per answer)", jobs, n_jobs, k, n_k, 3);
        int wbon_inexact = 0;
        for (int j = 0; j < n_jobs; j++) wbon_inexact |= jobs[j].have_st && jobs[j].st.has_reward && !jobs[j].st.wbon_exact;
        if (wbon_inexact) printf("(weighted best-of-N: some values are seeded estimates; see wbon_se in --json)\n");
    }
    if (any_time) {
        if (n_grid > 0) {
            printf("\naccuracy vs GPU-seconds per problem (shared budgets; coverage / majority)\n%10s", "budget");
            for (int j = 0; j < n_jobs; j++) printf("  %-17.17s", jobs[j].label);
            printf("\n");
            for (int b = 0; b < n_grid; b++) {
                char bs[32];
                fmt_seconds(bs, sizeof bs, grid[b]);
                printf("%10s", bs);
                for (int j = 0; j < n_jobs; j++) {
                    printf("  ");
                    print_num(jobs[j].bud_cov[b], 7);
                    printf(" /");
                    print_num(jobs[j].bud_maj[b], 7);
                }
                printf("\n");
            }
        } else {
            printf("\naccuracy vs GPU-seconds per problem (budget = k x the job's mean sample time)\n");
            for (int j = 0; j < n_jobs; j++) {
                const agg_stats *s = &jobs[j].st;
                if (!jobs[j].have_st || !s->has_time) continue;
                printf("  %s\n  %6s %12s %9s %9s\n", jobs[j].label, "k", "budget", "coverage", "majority");
                for (int i = 0; i < s->n_k; i++) {
                    char bs[32];
                    fmt_seconds(bs, sizeof bs, s->budget_s[i]);
                    printf("  %6d %12s ", s->k[i], bs);
                    print_num(s->time_coverage[i], 9);
                    print_num(s->time_majority[i], 10);
                    printf("\n");
                }
            }
        }
    }
    print_breakdowns_cmp(jobs, n_jobs, k, n_k);
}

static void json_str(util_buf *b, const char *s) { jobctl_json_str(b, s, strlen(s)); }

static void json_arr(util_buf *b, const double *v, int n) {
    util_buf_append(b, "[", 1);
    for (int i = 0; i < n; i++) {
        if (i) util_buf_append(b, ",", 1);
        if (isfinite(v[i])) util_buf_printf(b, "%.10g", v[i]);
        else util_buf_append(b, "null", 4);
    }
    util_buf_append(b, "]", 1);
}

static int print_json(const cmp_args *a, cmp_job *jobs, int n_jobs, const double *grid, int n_grid) {
    util_buf b;
    util_buf_init(&b);
    int rc = 0;
    for (int j = 0; j < n_jobs && !rc; j++) {
        const cmp_job *c = &jobs[j];
        b.len = 0;
        util_buf_append(&b, "{\"job\":", 7);
        json_str(&b, c->d.id);
        util_buf_append(&b, ",\"name\":", 8);
        json_str(&b, c->d.job.name);
        util_buf_append(&b, ",\"label\":", 9);
        json_str(&b, c->label);
        util_buf_append(&b, ",\"db\":", 6);
        json_str(&b, a->job_db[j]);
        util_buf_append(&b, ",\"state\":", 9);
        json_str(&b, c->d.job.state);
        util_buf_printf(&b, ",\"problems_total\":%u,\"samples_per_problem\":%u,\"generations\":%llu,\"scores\":%llu,\"stats\":",
                        c->d.n_problems, c->d.n_samples, (unsigned long long)c->d.n_gen, (unsigned long long)c->d.n_score);
        if (c->have_st) agg_stats_to_json_ex(&c->st, a->per_problem, &b);
        else util_buf_append(&b, "null", 4);
        if (n_grid > 0) {
            util_buf_append(&b, ",\"budget\":{\"budget_s\":", 22);
            json_arr(&b, grid, n_grid);
            util_buf_append(&b, ",\"coverage\":", 12);
            json_arr(&b, c->bud_cov, n_grid);
            util_buf_append(&b, ",\"majority\":", 12);
            json_arr(&b, c->bud_maj, n_grid);
            util_buf_append(&b, "}", 1);
        }
        util_buf_append(&b, "}\n", 2);
        if (fwrite(b.data, 1, b.len, stdout) != b.len) rc = 1;
    }
    util_buf_free(&b);
    if (fflush(stdout) != 0) rc = 1;
    if (rc) fprintf(stderr, "jobctl compare: write error on stdout\n");
    return rc;
}

/* ---- the figure ---- */

/* Builds the panels and renders the SVG into out. 0 ok, -1 with err. */
static int build_figure(const cmp_args *a, cmp_job *jobs, int n_jobs, const double *grid, int n_grid, util_buf *out,
                        char *err, size_t errlen) {
    enum { NP = 6 };
    plot_series *ser = xcalloc((size_t)NP * (size_t)n_jobs, sizeof *ser);
    double *kx = xcalloc((size_t)n_jobs * AGG_MAX_K, sizeof(double));
    plot_panel pan[NP];
    int np = 0, any_reward = 0, any_time = 0;
    for (int j = 0; j < n_jobs; j++) {
        any_reward |= jobs[j].have_st && jobs[j].st.has_reward;
        any_time |= jobs[j].have_st && jobs[j].st.has_time;
        for (int i = 0; i < jobs[j].st.n_k; i++) kx[(size_t)j * AGG_MAX_K + i] = jobs[j].st.k[i];
    }
    /* panel kinds: 0 coverage@k, 1 majority@k, 2 bon@k, 3 wbon@k, 4 coverage vs time, 5 majority vs time */
    int kinds[NP], nk = 0;
    kinds[nk++] = 0; kinds[nk++] = 1;
    if (any_reward) { kinds[nk++] = 2; kinds[nk++] = 3; }
    if (any_time) { kinds[nk++] = 4; kinds[nk++] = 5; }
    /* Time panels: seconds in a unit that keeps the tick labels short (1, 2, 4 us rather than
     * 1e-06), and a log-2 axis unless the data spans more than two decades. */
    double tmin = INFINITY, tmax = 0;
    for (int j = 0; j < n_jobs; j++) {
        const agg_stats *s = &jobs[j].st;
        const double *xs = n_grid > 0 ? grid : s->budget_s;
        int n = n_grid > 0 ? n_grid : s->n_k;
        if (!jobs[j].have_st || !s->has_time) continue;
        for (int i = 0; i < n; i++) if (xs[i] > 0 && isfinite(xs[i])) { if (xs[i] < tmin) tmin = xs[i]; if (xs[i] > tmax) tmax = xs[i]; }
    }
    double tscale = 1;
    const char *tunit = "GPU-seconds per problem";
    if (tmax > 0 && tmax < 1e-6) { tscale = 1e9; tunit = "GPU-nanoseconds per problem"; }
    else if (tmax > 0 && tmax < 1e-3) { tscale = 1e6; tunit = "GPU-microseconds per problem"; }
    else if (tmax > 0 && tmax < 1) { tscale = 1e3; tunit = "GPU-milliseconds per problem"; }
    plot_scale tax = tmax > 0 && tmax / tmin > 100 ? PLOT_LOG10 : PLOT_LOG2;
    char txlabel[96];
    snprintf(txlabel, sizeof txlabel, "%s (log scale)", tunit);
    double *tx = xcalloc((size_t)n_jobs * AGG_MAX_K, sizeof(double));
    for (int j = 0; j < n_jobs; j++)
        for (int i = 0; i < AGG_MAX_K; i++) {
            double v = n_grid > 0 ? (i < n_grid ? grid[i] : NAN) : jobs[j].st.budget_s[i];
            tx[(size_t)j * AGG_MAX_K + i] = v * tscale;
        }
    static const char *titles[NP] = {"Coverage (pass@k), 95% CI shaded", "Majority vote, 95% CI shaded",
                                     "Best-of-N (reward model), 95% CI shaded", "Weighted best-of-N, 95% CI shaded", "Coverage vs compute", "Majority vote vs compute"};
    static const char *ylabels[NP] = {"coverage@k", "majority@k", "best-of-N@k", "weighted best-of-N@k", "coverage", "majority accuracy"};
    for (int q = 0; q < nk; q++) {
        int kind = kinds[q];
        plot_series *ps = ser + (size_t)np * n_jobs;
        for (int j = 0; j < n_jobs; j++) {
            const agg_stats *s = &jobs[j].st;
            plot_series *se = &ps[j];
            se->name = jobs[j].label;
            if (!jobs[j].have_st) continue;
            if (kind <= 3) {
                if (kind >= 2 && !s->has_reward) continue;
                se->n = s->n_k;
                se->x = kx + (size_t)j * AGG_MAX_K;
                se->y = kind == 0 ? s->coverage : kind == 1 ? s->majority : kind == 2 ? s->bon : s->wbon;
                se->y_lo = kind == 0 ? s->coverage_lo : kind == 1 ? s->majority_lo : kind == 2 ? s->bon_lo : s->wbon_lo;
                se->y_hi = kind == 0 ? s->coverage_hi : kind == 1 ? s->majority_hi : kind == 2 ? s->bon_hi : s->wbon_hi;
            } else if (n_grid > 0) {
                se->n = n_grid;
                se->x = tx + (size_t)j * AGG_MAX_K;
                se->y = kind == 4 ? jobs[j].bud_cov : jobs[j].bud_maj;
            } else if (s->has_time) {
                se->n = s->n_k;
                se->x = tx + (size_t)j * AGG_MAX_K;
                se->y = kind == 4 ? s->time_coverage : s->time_majority;
            }
        }
        plot_panel *p = &pan[np++];
        memset(p, 0, sizeof *p);
        p->title = titles[kind];
        p->xlabel = kind <= 3 ? "samples per problem k (log scale)" : txlabel;
        p->ylabel = ylabels[kind];
        p->x_scale = kind <= 3 ? PLOT_LOG2 : tax;
        p->y_percent = 1;
        p->y_min = NAN;
        p->y_max = NAN;
        p->series = ps;
        p->n_series = n_jobs;
    }
    /* One y range for every panel (so that panels compare at a glance): from the lowest value or
     * interval bound, rounded down to 10%, to 100% plus room for the markers drawn at 100%. */
    double ylo = INFINITY, yhi = -INFINITY;
    for (int q = 0; q < np; q++)
        for (int j = 0; j < pan[q].n_series; j++) {
            const plot_series *se = &pan[q].series[j];
            for (int i = 0; i < se->n; i++) {
                double v[3] = {se->y[i], se->y_lo ? se->y_lo[i] : NAN, se->y_hi ? se->y_hi[i] : NAN};
                for (int t = 0; t < 3; t++) if (isfinite(v[t])) { if (v[t] < ylo) ylo = v[t]; if (v[t] > yhi) yhi = v[t]; }
            }
        }
    if (ylo <= yhi) {
        double lo = floor(ylo * 10 - 1e-9) / 10, hi = ceil(yhi * 10 - 1e-9) / 10;
        if (lo < 0) lo = 0;
        if (hi > 1) hi = 1;
        if (hi - lo < 0.2) { lo = lo - 0.1 < 0 ? 0 : lo - 0.1; hi = hi + 0.1 > 1 ? 1 : hi + 0.1; }
        double pad = (hi - lo) * 0.025;   /* markers at the limits stay whole */
        for (int q = 0; q < np; q++) { pan[q].y_min = lo > 0 ? lo - pad : -pad; pan[q].y_max = hi + pad; }
    }
    char title[512];
    if (a->title) snprintf(title, sizeof title, "%s", a->title);
    else {
        size_t off = (size_t)snprintf(title, sizeof title, "Inference scaling: ");
        for (int j = 0; j < n_jobs && off < sizeof title; j++)
            off += (size_t)snprintf(title + off, sizeof title - off, "%s%s", j ? " vs " : "", jobs[j].d.job.name[0] ? jobs[j].d.job.name : jobs[j].d.id);
    }
    int rc = plot_svg_render(pan, np, 2, title, out, err, errlen);
    free(ser);
    free(kx);
    free(tx);
    return rc;
}

static int write_plot(const cmp_args *a, cmp_job *jobs, int n_jobs, const double *grid, int n_grid) {
    char err[1024];
    util_buf svg;
    util_buf_init(&svg);
    int rc = 1;
    if (build_figure(a, jobs, n_jobs, grid, n_grid, &svg, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl compare: --plot %s: %s\n", a->plot, err);
        goto out;
    }
    size_t L = strlen(a->plot);
    int png = L >= 4 && strcasecmp(a->plot + L - 4, ".png") == 0;
    char svg_path[4096];
    if (png) snprintf(svg_path, sizeof svg_path, "%.*s.svg", (int)(L - 4), a->plot);
    else snprintf(svg_path, sizeof svg_path, "%s", a->plot);
    if (util_write_file_atomic(svg_path, svg.data, svg.len, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl compare: --plot: writing %s: %s\n", svg_path, err);
        goto out;
    }
    if (!png) {
        fprintf(stderr, "jobctl compare: wrote %s\n", svg_path);
        rc = 0;
        goto out;
    }
    char how[32];
    if (jobctl_svg_to_png(svg_path, a->plot, 2.0, how, sizeof how, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl compare: --plot %s: %s; the figure is in %s (SVG)\n", a->plot, err, svg_path);
        rc = 0;   /* the figure exists; only the raster copy is missing */
        goto out;
    }
    fprintf(stderr, "jobctl compare: wrote %s (and %s; PNG via %s)\n", a->plot, svg_path, how);
    rc = 0;
out:
    util_buf_free(&svg);
    return rc;
}

int jobctl_cmd_compare(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    cmp_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc == 1 ? 0 : rc;
    char err[2048];
    int k[AGG_MAX_K], n_k = 0;
    if (a.klist && (n_k = jobctl_parse_klist(a.klist, k, err, sizeof err)) < 0) {
        fprintf(stderr, "jobctl %s: %s\n", argv[0], err);
        return 2;
    }
    store *st = NULL;
    cmp_job *jobs = xcalloc((size_t)a.n_jobs, sizeof *jobs);
    int n_loaded = 0;
    rc = 1;
    for (int j = 0; j < a.n_jobs; j++) {
        /* one store open at a time (LMDB: one environment per process) */
        if (jobctl_open_store_ro(a.job_db[j], argv[0], &st)) goto out;
        int lrc = jobctl_jobdata_load(st, a.jobs[j], 0, &jobs[j].d, err, sizeof err);
        store_close(&st);
        if (lrc != 0) {
            jobctl_jobdata_free(&jobs[j].d);
            fprintf(stderr, "jobctl %s: %s: %s\n", argv[0], a.job_db[j], err);
            goto out;
        }
        n_loaded++;
        jobctl_jobdata_agg_input(&jobs[j].d, 1);
        int kk[AGG_MAX_K];
        jobctl_jobdata_k(&jobs[j].d, kk, &jobs[j].seed);
    }
    /* Labels: the job name, disambiguated by id when two jobs share one. */
    for (int j = 0; j < a.n_jobs; j++) {
        const char *nm = jobs[j].d.job.name[0] ? jobs[j].d.job.name : jobs[j].d.id;
        int dup = 0;
        for (int q = 0; q < a.n_jobs; q++) dup |= q != j && !strcmp(jobs[q].d.job.name, jobs[j].d.job.name);
        if (dup) snprintf(jobs[j].label, sizeof jobs[j].label, "%.128s (%.24s)", nm, jobs[j].d.id);
        else snprintf(jobs[j].label, sizeof jobs[j].label, "%.128s", nm);
    }
    int redo[CMP_MAX_JOBS] = {0};
    for (int j = 0; j < a.n_jobs; j++)     /* same name and id in two stores: add the store's folder name */
        for (int q = 0; q < a.n_jobs; q++) redo[j] |= q != j && !strcmp(jobs[q].label, jobs[j].label);
    for (int j = 0; j < a.n_jobs; j++) {
        if (!redo[j]) continue;
        const char *dbn = a.job_db[j];
        size_t L = strlen(dbn);
        while (L > 1 && dbn[L - 1] == '/') L--;
        size_t b = L;
        while (b > 0 && dbn[b - 1] != '/') b--;
        const char *nm = jobs[j].d.job.name[0] ? jobs[j].d.job.name : jobs[j].d.id;
        int dl = (int)(L - b) > 64 ? 64 : (int)(L - b);
        snprintf(jobs[j].label, sizeof jobs[j].label, "%.128s (%.*s:%.24s)", nm, dl, dbn + b, jobs[j].d.id);
    }
    if (!a.klist) n_k = union_k(jobs, a.n_jobs, k);
    for (int j = 0; j < a.n_jobs; j++) {
        if (jobs[j].d.n_ap == 0) {
            fprintf(stderr, "jobctl %s: job %s (%s) has no scored samples yet; it is listed without numbers\n", argv[0],
                    jobs[j].d.id, jobs[j].label);
            continue;
        }
        if (aggregate_compute(jobs[j].d.ap, jobs[j].d.n_ap, k, n_k, jobs[j].seed, &jobs[j].st, err, sizeof err) != 0) {
            fprintf(stderr, "jobctl %s: job %s: %s\n", argv[0], jobs[j].d.id, err);
            goto out;
        }
        jobs[j].have_st = 1;
    }
    double grid[AGG_MAX_K];
    int n_grid = 0;
    if (a.budget_axis) {
        n_grid = budget_grid(jobs, a.n_jobs, grid);
        if (n_grid == 0) fprintf(stderr, "jobctl %s: --budget-axis: no job has sample times; no budget axis\n", argv[0]);
        for (int j = 0; j < a.n_jobs; j++) {
            for (int b = 0; b < AGG_MAX_K; b++) jobs[j].bud_cov[b] = jobs[j].bud_maj[b] = NAN;
            if (jobs[j].have_st) eval_grid(&jobs[j], grid, n_grid);
        }
    }
    if (a.json) rc = print_json(&a, jobs, a.n_jobs, grid, n_grid);
    else { print_tables(&a, jobs, a.n_jobs, k, n_k, grid, n_grid); rc = fflush(stdout) ? 1 : 0; }
    if (rc == 0 && a.plot) {
        int any = 0;
        for (int j = 0; j < a.n_jobs; j++) any |= jobs[j].have_st;
        if (!any) { fprintf(stderr, "jobctl %s: --plot: no job has scored samples; nothing to draw\n", argv[0]); rc = 1; }
        else rc = write_plot(&a, jobs, a.n_jobs, grid, n_grid);
    }
out:
    for (int j = 0; j < n_loaded; j++) { jobctl_jobdata_free(&jobs[j].d); agg_stats_free(&jobs[j].st); }
    free(jobs);
    if (st) store_close(&st);
    return rc;
}
