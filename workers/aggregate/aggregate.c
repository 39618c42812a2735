/* workers/aggregate/aggregate.c — per-job aggregation (see aggregate.h for the JSON shape).
 *
 * Per problem: samples are grouped by their canonical answer (empty = no vote); a group counts
 * as correct when more than half of its samples were graded correct (normally all or none: the
 * canonical key is finer than the equivalence used for grading). Then for each k with n >= k:
 * coverage = pass@k(n, c, k), majority = metrics_majority_ex, and with rewards naive and
 * weighted best-of-N (also per subject / level slice). Job values are means over the problems counted in the column; intervals
 * are percentile bootstraps over those problems; every random choice derives from the job seed,
 * the problem index and k, so results do not depend on problem order, on other problems or on
 * the number of threads (problems are computed in parallel: $THINKFAST_AGG_THREADS, default all CPUs).
 */
#include "workers/aggregate/aggregate.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workers/aggregate/metrics.h"

#define AGG_BOOTSTRAP_REPS 1000

static uint64_t mix3(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t z = seed ^ (a * 0x9E3779B97F4A7C15ULL) ^ (b * 0xC2B2AE3D27D4EB4FULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* ---- grouping one problem's samples by canonical key ---- */

typedef struct grouping {
    int *label;            /* [n] group or -1 */
    int *sizes;            /* [G] */
    unsigned char *gcorr;  /* [G] */
    int G, abstain;
} grouping;

typedef struct keyidx { const char *key; int i; } keyidx;
static int cmp_keyidx(const void *a, const void *b) {
    const keyidx *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static void group_problem(const agg_problem *p, grouping *g) {
    int n = p->n;
    g->label = xmalloc(sizeof(int) * ((size_t)n + 1));
    g->sizes = xcalloc((size_t)n + 1, sizeof(int));
    g->gcorr = xcalloc((size_t)n + 1, 1);
    g->G = 0; g->abstain = 0;
    int *ncorr = xcalloc((size_t)n + 1, sizeof(int));
    if (!p->canonical) { /* every sample its own answer */
        for (int i = 0; i < n; i++) { g->label[i] = g->G; g->sizes[g->G] = 1; ncorr[g->G] = p->correct[i] ? 1 : 0; g->G++; }
    } else {
        keyidx *ki = xmalloc(sizeof(keyidx) * ((size_t)n + 1));
        int m = 0;
        for (int i = 0; i < n; i++) {
            const char *c = p->canonical[i];
            if (!c || !*c) { g->label[i] = -1; g->abstain++; continue; }
            ki[m].key = c; ki[m].i = i; m++;
        }
        qsort(ki, (size_t)m, sizeof(keyidx), cmp_keyidx);
        for (int j = 0; j < m; j++) {
            if (j == 0 || strcmp(ki[j].key, ki[j - 1].key) != 0) g->G++;
            int gi = g->G - 1;
            g->label[ki[j].i] = gi;
            g->sizes[gi]++;
            ncorr[gi] += p->correct[ki[j].i] ? 1 : 0;
        }
        free(ki);
    }
    for (int i = 0; i < g->G; i++) g->gcorr[i] = 2 * ncorr[i] > g->sizes[i];
    free(ncorr);
}

static void grouping_free(grouping *g) { free(g->label); free(g->sizes); free(g->gcorr); }

static int cmp_by_p(const void *a, const void *b, void *ctx) {
    const agg_problem *pr = ctx;
    int x = pr[((const keyidx *)a)->i].p, y = pr[((const keyidx *)b)->i].p;
    int ia = ((const keyidx *)a)->i, ib = ((const keyidx *)b)->i;
    return x != y ? (x > y) - (x < y) : (ia > ib) - (ia < ib);
}

/* ---- slices (subject / level breakdowns) ---- */

static int slice_find(agg_curve **arr, int *n, const char *name, int n_k) {
    for (int i = 0; i < *n; i++) if (strcmp((*arr)[i].name, name) == 0) return i;
    *arr = xrealloc(*arr, sizeof(agg_curve) * (size_t)(*n + 1));
    agg_curve *c = &(*arr)[*n];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    for (int j = 0; j < n_k; j++) { c->coverage[j] = 0; c->majority[j] = 0; c->bon[j] = 0; c->wbon[j] = 0; }
    return (*n)++;
}

static int cmp_curve_name(const void *a, const void *b) {
    return strcmp(((const agg_curve *)a)->name, ((const agg_curve *)b)->name);
}

/* ---- compute ---- */

/* Per-problem results, [problems][n_k] each; filled by workers in parallel, reduced serially. */
typedef struct agg_work {
    const agg_problem *problems;
    int n_problems, n_k;
    const int *k;
    uint64_t seed;
    agg_stats *s;
    double *bon, *wbon, *mse2, *wse2;
    unsigned char *mexact, *wexact;
    int next;                /* next problem to take (under lock) */
    pthread_mutex_t lock;
} agg_work;

static void problem_compute(agg_work *w, int i) {
    const agg_problem *p = &w->problems[i];
    int n_k = w->n_k;
    const int *k = w->k;
    agg_stats *s = w->s;
    int c = 0;
    for (int j = 0; j < p->n; j++) c += p->correct[j] ? 1 : 0;
    grouping g;
    group_problem(p, &g);
    int has_rew = 0;
    if (p->reward) for (int j = 0; j < p->n; j++) if (!isnan(p->reward[j])) { has_rew = 1; break; }
    for (int j = 0; j < n_k; j++) {
        size_t at = (size_t)i * n_k + j;
        s->problem_coverage[at] = s->problem_majority[at] = w->bon[at] = w->wbon[at] = NAN;
        w->mse2[at] = w->wse2[at] = 0;
        w->mexact[at] = w->wexact[at] = 1;
        if (p->n < k[j]) continue;
        uint64_t sd = mix3(w->seed, (uint64_t)p->p, (uint64_t)k[j]);
        s->problem_coverage[at] = metrics_pass_at_k(p->n, c, k[j]);
        metrics_est e;
        if (metrics_majority_ex(g.sizes, g.gcorr, g.G, g.abstain, k[j], sd, &e) == 0) {
            s->problem_majority[at] = e.value;
            if (!e.exact) { w->mexact[at] = 0; w->mse2[at] = e.se * e.se; }
        }
        if (has_rew) {
            w->bon[at] = metrics_bon_at_k(p->reward, p->correct, p->n, k[j]);
            if (metrics_wbon_ex(p->reward, g.label, g.gcorr, p->n, g.G, k[j], sd ^ 1, &e) == 0) {
                w->wbon[at] = e.value;
                if (!e.exact) { w->wexact[at] = 0; w->wse2[at] = e.se * e.se; }
            }
        }
    }
    grouping_free(&g);
}

void agg_problem_at_k(const agg_problem *p, int k, uint64_t seed, double *coverage, double *majority) {
    int c = 0;
    for (int j = 0; j < p->n; j++) c += p->correct[j] ? 1 : 0;
    *coverage = metrics_pass_at_k(p->n, c, k);
    grouping g;
    group_problem(p, &g);
    metrics_est e;
    *majority = NAN;
    if (metrics_majority_ex(g.sizes, g.gcorr, g.G, g.abstain, k, mix3(seed, (uint64_t)p->p, (uint64_t)k), &e) == 0)
        *majority = e.value;
    grouping_free(&g);
}

static void *agg_worker(void *arg) {
    agg_work *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int i = w->next++;
        pthread_mutex_unlock(&w->lock);
        if (i >= w->n_problems) break;
        problem_compute(w, i);
    }
    return NULL;
}

/* Threads: $THINKFAST_AGG_THREADS, else the online CPUs (at most 64). Results do not depend on it. */
static int agg_threads(int n_problems) {
    const char *e = getenv("THINKFAST_AGG_THREADS");
    long t = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    if (t < 1) t = 1;
    if (t > 64) t = 64;
    if (t > n_problems) t = n_problems > 0 ? n_problems : 1;
    return (int)t;
}

int aggregate_compute(const agg_problem *problems, int n_problems, const int *k, int n_k, uint64_t seed,
                      agg_stats *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (n_k < 1 || n_k > AGG_MAX_K || !k) return util_err(err, errlen, "k: expected 1..%d values, got %d", AGG_MAX_K, n_k);
    for (int j = 0; j < n_k; j++) {
        if (k[j] < 1) return util_err(err, errlen, "k[%d]: expected a positive integer, got %d", j, k[j]);
        for (int i = 0; i < j; i++)
            if (k[i] == k[j]) return util_err(err, errlen, "k[%d]: duplicate value %d", j, k[j]);
    }
    if (n_problems < 0 || (n_problems > 0 && !problems)) return util_err(err, errlen, "problems: expected an array, got %d", n_problems);
    for (int i = 0; i < n_problems; i++) {
        const agg_problem *p = &problems[i];
        if (p->n < 0 || p->n > 1000000) return util_err(err, errlen, "problem %d: n = %d out of range", p->p, p->n);
        if (p->n > 0 && !p->correct) return util_err(err, errlen, "problem %d: correct: missing", p->p);
        if (p->level < 0) return util_err(err, errlen, "problem %d: level = %d", p->p, p->level);
    }

    agg_stats *s = out;
    s->n_k = n_k;
    memcpy(s->k, k, sizeof(int) * (size_t)n_k);
    s->problems = n_problems;
    s->seed = seed;
    s->bootstrap_reps = AGG_BOOTSTRAP_REPS;
    s->majority_exact = 1;
    s->wbon_exact = 1;
    size_t cells = (size_t)(n_problems ? n_problems : 1) * (size_t)n_k;
    s->problem_index = xcalloc((size_t)n_problems + 1, sizeof(int));
    s->problem_coverage = xmalloc(sizeof(double) * cells);
    s->problem_majority = xmalloc(sizeof(double) * cells);

    /* serial pass: counts, rewards present, the job's mean sample time and the budgets */
    double tsum = 0;
    long long tcount = 0;
    int has_time = n_problems > 0;
    for (int i = 0; i < n_problems; i++) {
        const agg_problem *p = &problems[i];
        s->problem_index[i] = p->p;
        s->samples += p->n;
        for (int j = 0; j < p->n; j++) s->correct += p->correct[j] ? 1 : 0;
        if (p->reward) for (int j = 0; j < p->n; j++) if (!isnan(p->reward[j])) { s->has_reward = 1; break; }
        if (p->n > 0) {
            if (!p->time_s) has_time = 0;
            else for (int j = 0; j < p->n; j++) {
                if (!(p->time_s[j] >= 0) || isinf(p->time_s[j])) { has_time = 0; break; }
                tsum += p->time_s[j]; tcount++;
            }
        }
    }
    s->has_time = has_time && tcount > 0;
    if (s->has_time) {
        s->mean_sample_s = tsum / (double)tcount;
        for (int j = 0; j < n_k; j++) s->budget_s[j] = k[j] * s->mean_sample_s;
    }

    /* parallel pass over problems */
    agg_work w = {.problems = problems, .n_problems = n_problems, .n_k = n_k, .k = k, .seed = seed, .s = s};
    w.bon = xmalloc(sizeof(double) * cells); w.wbon = xmalloc(sizeof(double) * cells);
    w.mse2 = xmalloc(sizeof(double) * cells); w.wse2 = xmalloc(sizeof(double) * cells);
    w.mexact = xmalloc(cells); w.wexact = xmalloc(cells);
    pthread_mutex_init(&w.lock, NULL);
    int nt = agg_threads(n_problems);
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < nt; t++) if (pthread_create(&th[started], NULL, agg_worker, &w) == 0) started++;
    agg_worker(&w); /* the calling thread works too (and alone if no thread could start) */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&w.lock);
    double *pbon = w.bon, *pwbon = w.wbon;

    /* job means, intervals (bootstrap over problems in problem-index order, so that the input
     * order does not change the interval) */
    double *col = xmalloc(sizeof(double) * ((size_t)n_problems + 1));
    keyidx *ord = xmalloc(sizeof(keyidx) * ((size_t)n_problems + 1));
    for (int i = 0; i < n_problems; i++) { ord[i].key = ""; ord[i].i = i; }
    qsort_r(ord, (size_t)n_problems, sizeof(keyidx), cmp_by_p, (void *)problems);
    for (int j = 0; j < n_k; j++) {
        double sc = 0, sm = 0, sb = 0, sw = 0, m2 = 0, w2 = 0;
        int cnt = 0, cb = 0;
        for (int i = 0; i < n_problems; i++) {
            size_t at = (size_t)i * n_k + j;
            double v = s->problem_coverage[at];
            if (isnan(v)) continue;
            cnt++;
            sc += v;
            sm += s->problem_majority[at];
            m2 += w.mse2[at];
            if (!w.mexact[at]) { s->majority_exact = 0; s->majority_mc[j]++; }
            double b = pbon[at], ww = pwbon[at];
            if (!isnan(b) && !isnan(ww)) {
                cb++; sb += b; sw += ww; w2 += w.wse2[at];
                if (!w.wexact[at]) s->wbon_exact = 0;
            }
        }
        s->counted[j] = cnt;
        s->coverage[j] = cnt ? sc / cnt : NAN;
        s->majority[j] = cnt ? sm / cnt : NAN;
        s->majority_se[j] = cnt ? sqrt(m2) / cnt : NAN;
        s->bon[j] = cb ? sb / cb : NAN;
        s->wbon[j] = cb ? sw / cb : NAN;
        s->wbon_se[j] = cb ? sqrt(w2) / cb : NAN;
        /* budget_s[j] = k[j] * mean_sample_s buys exactly k[j] samples per problem (see aggregate.h) */
        s->time_coverage[j] = s->has_time ? s->coverage[j] : NAN;
        s->time_majority[j] = s->has_time ? s->majority[j] : NAN;
        double *srcs[4] = {s->problem_coverage, s->problem_majority, pbon, pwbon};
        double *los[4] = {s->coverage_lo, s->majority_lo, s->bon_lo, s->wbon_lo};
        double *his[4] = {s->coverage_hi, s->majority_hi, s->bon_hi, s->wbon_hi};
        for (int m = 0; m < 4; m++) {
            if (m >= 2 && !s->has_reward) { los[m][j] = his[m][j] = NAN; continue; }
            for (int i = 0; i < n_problems; i++) col[i] = srcs[m][(size_t)ord[i].i * n_k + j];
            metrics_bootstrap_mean_ci(col, n_problems, AGG_BOOTSTRAP_REPS, 0.05, mix3(seed, 0xB007, (uint64_t)(j * 4 + m)),
                                      &los[m][j], &his[m][j]);
        }
    }
    free(col);
    free(ord);

    /* breakdowns */
    for (int pass = 0; pass < 2; pass++) {
        agg_curve **arr = pass == 0 ? &s->by_subject : &s->by_level;
        int *na = pass == 0 ? &s->n_subject : &s->n_level;
        int **counts = NULL, **rcounts = NULL; /* per slice and k: problems counted; with rewards */
        for (int i = 0; i < n_problems; i++) {
            const agg_problem *p = &problems[i];
            char name[64];
            if (pass == 0) { if (!p->subject || !*p->subject) continue; snprintf(name, sizeof name, "%s", p->subject); }
            else { if (p->level <= 0) continue; snprintf(name, sizeof name, "%d", p->level); }
            int before = *na;
            int si = slice_find(arr, na, name, n_k);
            if (*na > before) {
                counts = xrealloc(counts, sizeof(int *) * (size_t)*na);
                counts[si] = xcalloc((size_t)AGG_MAX_K, sizeof(int));
                rcounts = xrealloc(rcounts, sizeof(int *) * (size_t)*na);
                rcounts[si] = xcalloc((size_t)AGG_MAX_K, sizeof(int));
            }
            agg_curve *cv = &(*arr)[si];
            cv->problems++;
            for (int j = 0; j < n_k; j++) {
                double v = s->problem_coverage[(size_t)i * n_k + j];
                if (isnan(v)) continue;
                cv->coverage[j] += v;
                cv->majority[j] += s->problem_majority[(size_t)i * n_k + j];
                counts[si][j]++;
                double b = pbon[(size_t)i * n_k + j], ww = pwbon[(size_t)i * n_k + j];
                if (!isnan(b) && !isnan(ww)) { /* as the job columns: problems with both */
                    cv->bon[j] += b;
                    cv->wbon[j] += ww;
                    rcounts[si][j]++;
                }
            }
        }
        for (int si = 0; si < *na; si++) {
            for (int j = 0; j < n_k; j++) {
                int cn = counts[si][j];
                (*arr)[si].coverage[j] = cn ? (*arr)[si].coverage[j] / cn : NAN;
                (*arr)[si].majority[j] = cn ? (*arr)[si].majority[j] / cn : NAN;
                int rn = rcounts[si][j];
                (*arr)[si].bon[j] = rn ? (*arr)[si].bon[j] / rn : NAN;
                (*arr)[si].wbon[j] = rn ? (*arr)[si].wbon[j] / rn : NAN;
            }
            free(counts[si]);
            free(rcounts[si]);
        }
        free(counts);
        free(rcounts);
        if (*na > 1) qsort(*arr, (size_t)*na, sizeof(agg_curve), cmp_curve_name);
    }
    free(w.bon); free(w.wbon); free(w.mse2); free(w.wse2); free(w.mexact); free(w.wexact);
    return 0;
}

void agg_stats_free(agg_stats *s) {
    if (!s) return;
    free(s->problem_index);
    free(s->problem_coverage);
    free(s->problem_majority);
    free(s->by_subject);
    free(s->by_level);
    memset(s, 0, sizeof *s);
}

/* ---- JSON ---- */

static void jnum(util_buf *b, double v) {
    if (isnan(v) || isinf(v)) util_buf_printf(b, "null");
    else util_buf_printf(b, "%.10g", v);
}

static void jarr(util_buf *b, const char *key, const double *v, int n) {
    util_buf_printf(b, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) { if (i) util_buf_append(b, ",", 1); jnum(b, v[i]); }
    util_buf_append(b, "]", 1);
}

static void jci(util_buf *b, const char *key, const double *lo, const double *hi, int n) {
    util_buf_printf(b, ",\"%s\":[", key);
    for (int i = 0; i < n; i++) {
        util_buf_printf(b, "%s[", i ? "," : "");
        jnum(b, lo[i]);
        util_buf_append(b, ",", 1);
        jnum(b, hi[i]);
        util_buf_append(b, "]", 1);
    }
    util_buf_append(b, "]", 1);
}

static void jslices(util_buf *b, const char *key, const agg_curve *c, int n, int n_k, int rewards) {
    if (n == 0) return;
    util_buf_printf(b, ",\"%s\":{", key);
    for (int i = 0; i < n; i++) {
        if (i) util_buf_append(b, ",", 1);
        util_buf_json_str(b, c[i].name, strlen(c[i].name));
        util_buf_printf(b, ":{\"problems\":%d", c[i].problems);
        jarr(b, "coverage", c[i].coverage, n_k);
        jarr(b, "majority", c[i].majority, n_k);
        if (rewards) {
            jarr(b, "bon", c[i].bon, n_k);
            jarr(b, "wbon", c[i].wbon, n_k);
        }
        util_buf_append(b, "}", 1);
    }
    util_buf_append(b, "}", 1);
}

void agg_stats_to_json_ex(const agg_stats *s, int per_problem, util_buf *b) {
    int n = s->n_k;
    util_buf_printf(b, "{\"k\":[");
    for (int i = 0; i < n; i++) util_buf_printf(b, "%s%d", i ? "," : "", s->k[i]);
    util_buf_printf(b, "],\"problems\":%d,\"samples\":%lld,\"correct\":%lld", s->problems, s->samples, s->correct);
    util_buf_printf(b, ",\"counted\":[");
    for (int i = 0; i < n; i++) util_buf_printf(b, "%s%d", i ? "," : "", s->counted[i]);
    util_buf_append(b, "]", 1);
    jarr(b, "coverage", s->coverage, n);
    jci(b, "coverage_ci", s->coverage_lo, s->coverage_hi, n);
    jarr(b, "majority", s->majority, n);
    jci(b, "majority_ci", s->majority_lo, s->majority_hi, n);
    util_buf_printf(b, ",\"majority_exact\":%s", s->majority_exact ? "true" : "false");
    jarr(b, "majority_se", s->majority_se, n);
    util_buf_printf(b, ",\"majority_mc\":[");
    for (int i = 0; i < n; i++) util_buf_printf(b, "%s%d", i ? "," : "", s->majority_mc[i]);
    util_buf_append(b, "]", 1);
    if (s->has_reward) {
        jarr(b, "bon", s->bon, n);
        jci(b, "bon_ci", s->bon_lo, s->bon_hi, n);
        jarr(b, "wbon", s->wbon, n);
        jci(b, "wbon_ci", s->wbon_lo, s->wbon_hi, n);
        util_buf_printf(b, ",\"wbon_exact\":%s", s->wbon_exact ? "true" : "false");
        jarr(b, "wbon_se", s->wbon_se, n);
    }
    jslices(b, "by_subject", s->by_subject, s->n_subject, n, s->has_reward);
    jslices(b, "by_level", s->by_level, s->n_level, n, s->has_reward);
    if (s->has_time) {
        util_buf_printf(b, ",\"time\":{\"mean_sample_s\":");
        jnum(b, s->mean_sample_s);
        jarr(b, "budget_s", s->budget_s, n);
        jarr(b, "coverage", s->time_coverage, n);
        jarr(b, "majority", s->time_majority, n);
        util_buf_append(b, "}", 1);
    }
    util_buf_printf(b, ",\"bootstrap_reps\":%d,\"seed\":%llu", s->bootstrap_reps, (unsigned long long)s->seed);
    if (per_problem) {
        util_buf_printf(b, ",\"per_problem\":[");
        for (int i = 0; i < s->problems; i++) {
            util_buf_printf(b, "%s{\"p\":%d", i ? "," : "", s->problem_index[i]);
            jarr(b, "coverage", s->problem_coverage + (size_t)i * n, n);
            jarr(b, "majority", s->problem_majority + (size_t)i * n, n);
            util_buf_append(b, "}", 1);
        }
        util_buf_append(b, "]", 1);
    }
    util_buf_append(b, "}", 1);
}

void agg_stats_to_json(const agg_stats *s, util_buf *out) { agg_stats_to_json_ex(s, 0, out); }
