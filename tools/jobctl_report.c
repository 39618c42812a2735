/* tools/jobctl_report.c — shared pieces of the report commands (tools/jobctl_report.h): one
 * job's data read from the store offline, the aggregate input built from it the way the broker
 * builds the aggregate payload (broker/payload.c), k-list and "JOB --db DIR" argument parsing,
 * and the subject/level tables (coverage and majority; for jobs with rewards also best-of-N and
 * weighted best-of-N at the job's k values that fit in BREAKDOWN_WIDTH columns: all k in --json).
 */
#include "tools/jobctl_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- loading ---- */

typedef struct load_ctx {
    jobctl_jobdata *d;
    int want_text;
} load_ctx;

static int load_problem_cb(const store_problem *p, void *vctx) {
    jobctl_jobdata *d = ((load_ctx *)vctx)->d;
    if (p->p >= d->n_problems) return 0;
    free(d->subject[p->p]); free(d->answer[p->p]); free(d->problem_id[p->p]);
    d->subject[p->p] = xstrdup(p->subject ? p->subject : "");
    d->answer[p->p] = xstrdup(p->answer ? p->answer : "");
    d->problem_id[p->p] = xstrdup(p->id ? p->id : "");
    d->level[p->p] = p->level > 0 ? p->level : 0;
    return 0;
}

/* Records one generation's telemetry; returns its flat index, or (size_t)-1 when out of shape. */
static size_t note_gen(jobctl_jobdata *d, uint32_t p, uint32_t s, double time_s, int64_t tokens, const char *finish) {
    if (p >= d->n_problems || s >= d->n_samples) return (size_t)-1;
    size_t i = (size_t)p * d->n_samples + s;
    if (!d->have_gen[i]) d->n_gen++;
    d->have_gen[i] = 1;
    d->time_s[i] = time_s;
    d->tokens[i] = tokens;
    snprintf(d->finish[i], sizeof d->finish[i], "%s", finish);
    return i;
}

static int load_gen_cb(uint64_t job, const store_generation *g, void *vctx) {
    load_ctx *c = vctx;
    jobctl_jobdata *d = c->d;
    (void)job;
    size_t i = note_gen(d, g->p, g->s, g->time_s, g->tokens, g->finish);
    if (i == (size_t)-1) return 0;
    free(d->text[i]);
    d->text[i] = xmalloc((size_t)g->text_len + 1);
    if (g->text_len) memcpy(d->text[i], g->text, g->text_len);
    d->text[i][g->text_len] = 0;
    d->text_len[i] = g->text_len;
    return 0;
}

/* Without the texts: the light walk, which never copies (or even parses) them. */
static int load_gen_meta_cb(uint64_t job, const store_generation_meta *g, void *vctx) {
    (void)job;
    note_gen(((load_ctx *)vctx)->d, g->p, g->s, g->time_s, g->tokens, g->finish);
    return 0;
}

static int load_score_cb(uint64_t job, const store_score *sc, void *vctx) {
    jobctl_jobdata *d = ((load_ctx *)vctx)->d;
    (void)job;
    if (sc->p >= d->n_problems || sc->s >= d->n_samples) { d->n_score_orphan++; return 0; }
    size_t i = (size_t)sc->p * d->n_samples + sc->s;
    if (!d->have_score[i]) d->n_score++;
    d->have_score[i] = 1;
    d->correct[i] = sc->correct ? 1 : 0;
    free(d->extracted[i]); free(d->canonical[i]);
    d->extracted[i] = xstrdup(sc->extracted ? sc->extracted : "");
    d->canonical[i] = xstrdup(sc->canonical ? sc->canonical : "");
    d->reward[i] = sc->reward;
    return 0;
}

int jobctl_jobdata_load(store *st, const char *id_or_name, int want_text, jobctl_jobdata *out,
                        char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    jobctl_jobdata *d = out;
    store_txn *txn = NULL;
    if (store_txn_begin(st, 0, &txn, err, errlen) != 0) return -1;
    int rc = store_job_find_txn(txn, id_or_name, &d->job);
    if (rc != STORE_OK) {
        store_txn_abort(&txn);
        if (rc == STORE_ERR_NOTFOUND) return util_err(err, errlen, "no job \"%s\" (neither an id nor a job name)", id_or_name);
        return util_err(err, errlen, "job \"%s\": %s", id_or_name, store_strerror(rc));
    }
    store_job_id_format(d->job.id, d->id, sizeof d->id);
    if (d->job.spec_json) {
        char serr[512];
        d->spec_ok = job_spec_parse(d->job.spec_json, strlen(d->job.spec_json), "<stored spec>", &d->spec, serr, sizeof serr) == 0;
        if (!d->spec_ok) {
            store_txn_abort(&txn);
            return util_err(err, errlen, "job %s: stored spec unreadable: %s", d->id, serr);
        }
    } else {
        store_txn_abort(&txn);
        return util_err(err, errlen, "job %s: the store holds no spec for it", d->id);
    }
    /* The job record's shape bounds every index; a corrupt record with absurd counts must not
     * make us allocate terabytes. */
    d->n_problems = d->job.n_problems;
    d->n_samples = d->job.n_samples;
    size_t total = (size_t)d->n_problems * d->n_samples;
    if (d->n_problems > 100000000u || d->n_samples > 100000000u || total > ((size_t)1 << 32)) {
        store_txn_abort(&txn);
        return util_err(err, errlen, "job %s: implausible shape %u problems x %u samples", d->id, d->n_problems, d->n_samples);
    }
    size_t np = d->n_problems ? d->n_problems : 1, nt = total ? total : 1;
    d->subject = xcalloc(np, sizeof(char *));
    d->answer = xcalloc(np, sizeof(char *));
    d->problem_id = xcalloc(np, sizeof(char *));
    d->level = xcalloc(np, sizeof(int));
    d->have_gen = xcalloc(nt, 1);
    d->have_score = xcalloc(nt, 1);
    d->correct = xcalloc(nt, 1);
    d->extracted = xcalloc(nt, sizeof(char *));
    d->canonical = xcalloc(nt, sizeof(char *));
    d->reward = xmalloc(nt * sizeof(double));
    d->time_s = xmalloc(nt * sizeof(double));
    d->tokens = xcalloc(nt, sizeof(int64_t));
    d->finish = xcalloc(nt, sizeof *d->finish);
    if (want_text) {
        d->text = xcalloc(nt, sizeof(char *));
        d->text_len = xcalloc(nt, sizeof(uint32_t));
    }
    for (size_t i = 0; i < nt; i++) d->reward[i] = d->time_s[i] = NAN;
    load_ctx c = {d, want_text};
    rc = store_problems_each_txn(txn, d->job.id, load_problem_cb, &c);
    if (rc == STORE_OK)
        rc = want_text ? store_generations_each_txn(txn, d->job.id, load_gen_cb, &c)
                       : store_generations_meta_each_txn(txn, d->job.id, load_gen_meta_cb, &c);
    if (rc == STORE_OK) rc = store_scores_each_txn(txn, d->job.id, load_score_cb, &c);
    store_txn_abort(&txn);
    if (rc != STORE_OK) return util_err(err, errlen, "job %s: reading the store: %s (%s)", d->id, store_strerror(rc), store_last_error(st));
    for (uint32_t p = 0; p < d->n_problems; p++) {
        if (!d->subject[p]) d->subject[p] = xstrdup("");
        if (!d->answer[p]) d->answer[p] = xstrdup("");
        if (!d->problem_id[p]) d->problem_id[p] = xstrdup("");
    }
    return 0;
}

static void agg_input_free(jobctl_jobdata *d) {
    free(d->ap); free(d->ap_correct); free(d->ap_canonical); free(d->ap_reward); free(d->ap_time);
    d->ap = NULL; d->ap_correct = NULL; d->ap_canonical = NULL; d->ap_reward = NULL; d->ap_time = NULL;
    d->n_ap = 0;
}

void jobctl_jobdata_agg_input(jobctl_jobdata *d, int with_meta) {
    agg_input_free(d);
    size_t total = (size_t)d->n_problems * d->n_samples, nt = total ? total : 1;
    d->ap = xcalloc(d->n_problems ? d->n_problems : 1, sizeof *d->ap);
    d->ap_correct = xmalloc(nt);
    d->ap_canonical = xcalloc(nt, sizeof(char *));
    d->ap_reward = xmalloc(nt * sizeof(double));
    d->ap_time = xmalloc(nt * sizeof(double));
    size_t off = 0;
    for (uint32_t p = 0; p < d->n_problems; p++) {
        size_t base = (size_t)p * d->n_samples, start = off;
        for (uint32_t s = 0; s < d->n_samples; s++) {
            if (!d->have_score[base + s]) continue;
            d->ap_correct[off] = d->correct[base + s];
            d->ap_canonical[off] = d->canonical[base + s];
            d->ap_reward[off] = d->reward[base + s];
            d->ap_time[off] = d->time_s[base + s];
            off++;
        }
        if (off == start) continue;
        agg_problem *a = &d->ap[d->n_ap++];
        a->p = (int)p;
        a->n = (int)(off - start);
        a->correct = d->ap_correct + start;
        a->canonical = d->ap_canonical + start;
        a->reward = d->ap_reward + start;
        a->time_s = d->ap_time + start;
        if (with_meta) {
            a->subject = d->subject[p][0] ? d->subject[p] : NULL;
            a->level = d->level[p];
        }
    }
}

void jobctl_jobdata_free(jobctl_jobdata *d) {
    if (!d) return;
    size_t total = (size_t)d->n_problems * d->n_samples;
    for (uint32_t p = 0; p < d->n_problems; p++) {
        if (d->subject) free(d->subject[p]);
        if (d->answer) free(d->answer[p]);
        if (d->problem_id) free(d->problem_id[p]);
    }
    for (size_t i = 0; i < total; i++) {
        if (d->extracted) free(d->extracted[i]);
        if (d->canonical) free(d->canonical[i]);
        if (d->text) free(d->text[i]);
    }
    free(d->subject); free(d->answer); free(d->problem_id); free(d->level);
    free(d->have_gen); free(d->have_score); free(d->correct); free(d->extracted); free(d->canonical);
    free(d->reward); free(d->time_s); free(d->tokens); free(d->finish); free(d->text); free(d->text_len);
    agg_input_free(d);
    if (d->spec_ok) job_spec_free(&d->spec);
    store_job_free(&d->job);
    memset(d, 0, sizeof *d);
}

int jobctl_jobdata_k(const jobctl_jobdata *d, int *k, uint64_t *seed) {
    int n = 0;
    if (d->spec_ok) {
        int nk = d->spec.aggregate.n_k;
        for (int i = 0; i < nk && i < AGG_MAX_K && i < JOB_SPEC_MAX_K; i++) k[n++] = d->spec.aggregate.k[i];
    }
    if (n == 0) k[n++] = 1;
    if (seed) *seed = d->spec_ok ? d->spec.sampling.seed : 0;
    return n;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int jobctl_parse_klist(const char *text, int *k, char *err, size_t errlen) {
    int n = 0, idx = 0;
    const char *s = text;
    if (!s || !*s) return util_err(err, errlen, "--k: empty list (expected e.g. 1,2,4,8)");
    for (;;) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',') || x <= 0 || x > 1000000000L)
            return util_err(err, errlen, "--k: element %d of \"%s\": expected a positive integer", idx + 1, text);
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= k[i] == (int)x;
        if (!dup) {
            if (n >= AGG_MAX_K) return util_err(err, errlen, "--k: at most %d distinct values", AGG_MAX_K);
            k[n++] = (int)x;
        }
        idx++;
        if (!*end) break;
        s = end + 1;
    }
    qsort(k, (size_t)n, sizeof *k, cmp_int);
    return n;
}

int jobctl_parse_job_db(int argc, char **argv, const char *usage, const jobctl_flag *extra, const char **job,
                        const char **db) {
    jobctl_flag flags[JOBCTL_MAX_EXTRA_FLAGS + 2];
    int n = 0;
    for (; extra && extra[n].name; n++) {
        if (n == JOBCTL_MAX_EXTRA_FLAGS) abort(); /* a programming error: raise the limit */
        flags[n] = extra[n];
    }
    flags[n++] = (jobctl_flag){"--db", NULL, db};
    flags[n] = (jobctl_flag){NULL, NULL, NULL};
    const char *env = getenv("THINKFAST_DB");
    *db = env && *env ? env : NULL;
    *job = NULL;
    int rc = jobctl_parse_args(argc, argv, usage, flags, 1, "JOB", job);
    if (rc) return rc;
    if (!*db) { fprintf(stderr, "jobctl %s: --db DIR is required (or set THINKFAST_DB)\n", argv[0]); return 2; }
    return 0;
}

int jobctl_open_store_ro(const char *db, const char *cmd, store **out) {
    char err[1024];
    if (store_open(db, 1, 0, out, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl %s: %s\n", cmd, err);
        return 1;
    }
    return 0;
}

/* ---- breakdown tables ---- */

/* The breakdown tables stay within this many columns, the width of the overall table above them
 * for a job with rewards (jobctl_print_stats_table: k + four value/interval columns): the
 * best-of-N columns are shown at as many of the job's k values as fit (see pick_bon_k). */
#define BREAKDOWN_WIDTH 130
#define BREAKDOWN_COL 10        /* "  %8s" */

static void fmt_val(char *buf, size_t cap, double x) {
    if (isfinite(x)) snprintf(buf, cap, "%.3f", x);
    else snprintf(buf, cap, "-");
}

/* Indices of k[0..n_k) in ascending order of k (at most AGG_MAX_K); returns how many. */
static int sorted_k_idx(const int *k, int n_k, int *ord) {
    int n = 0;
    for (int j = 0; j < n_k && j < AGG_MAX_K; j++) {      /* insertion sort: n_k is small */
        int q = n++;
        for (; q > 0 && k[ord[q - 1]] > k[j]; q--) ord[q] = ord[q - 1];
        ord[q] = j;
    }
    return n;
}

/* Which k columns get bon@k and wbon@k (a pair of BREAKDOWN_COL columns each) in a table whose
 * other columns take `used` characters: every k of the list when the pairs fit in
 * BREAKDOWN_WIDTH; else k = 1 goes first (best-of-1 and weighted best-of-1 equal coverage@1,
 * already in the table, whenever every sample has a reward); else as many as fit (at least one),
 * spread evenly over the remaining k from the smallest to the largest. Writes indices into k,
 * in ascending order of k; returns how many. */
static int pick_bon_k(const int *k, int n_k, int used, int *idx) {
    int ord[AGG_MAX_K], n = sorted_k_idx(k, n_k, ord);
    int fit = (BREAKDOWN_WIDTH - used) / (2 * BREAKDOWN_COL);
    if (fit < 1) fit = 1;
    int from = 0;
    if (n > fit && n > 1 && k[ord[0]] == 1) from = 1;
    int cand = n - from, m = cand < fit ? cand : fit;
    for (int i = 0; i < m; i++) {
        /* i-th of m evenly spaced positions over [0, cand - 1], the last one always included */
        int pos = m == 1 ? cand - 1 : (int)((double)i * (cand - 1) / (m - 1) + 0.5);
        idx[i] = ord[from + pos];
    }
    return m;
}

/* Name column width of a table (header `what`, rows c[0..n)), at most 40. */
static int slice_name_width(const char *what, const agg_curve *c, int n) {
    int w = (int)strlen(what);
    for (int i = 0; i < n; i++) { int l = (int)strlen(c[i].name); if (l > w) w = l; }
    return w > 40 ? 40 : w;
}

/* One row per slice: problems, coverage at the smallest k, coverage and majority at the largest,
 * then (rewards) bon@k and wbon@k at the k columns bk[0..n_bk). */
static void print_slices(FILE *f, const char *what, const agg_curve *c, int n, const int *k, int n_k, int w,
                         const int *bk, int n_bk) {
    if (n <= 0 || n_k <= 0) return;
    int lo = 0, hi = n_k - 1;
    for (int j = 0; j < n_k; j++) { if (k[j] < k[lo]) lo = j; if (k[j] > k[hi]) hi = j; }
    char h1[32], h2[32], h3[32];
    snprintf(h1, sizeof h1, "cov@%d", k[lo]);
    snprintf(h2, sizeof h2, "cov@%d", k[hi]);
    snprintf(h3, sizeof h3, "maj@%d", k[hi]);
    fprintf(f, "  %-*s  %8s  %8s  %8s  %8s", w, what, "problems", h1, h2, h3);
    for (int b = 0; b < n_bk; b++) {
        char hb[32], hw[32];
        snprintf(hb, sizeof hb, "bon@%d", k[bk[b]]);
        snprintf(hw, sizeof hw, "wbon@%d", k[bk[b]]);
        fprintf(f, "  %8s  %8s", hb, hw);
    }
    fprintf(f, "\n");
    for (int i = 0; i < n; i++) {
        char a[32], b[32], m[32];
        fmt_val(a, sizeof a, c[i].coverage[lo]);
        fmt_val(b, sizeof b, c[i].coverage[hi]);
        fmt_val(m, sizeof m, c[i].majority[hi]);
        fprintf(f, "  %-*.*s  %8d  %8s  %8s  %8s", w, w, c[i].name, c[i].problems, a, b, m);
        for (int q = 0; q < n_bk; q++) {
            char vb[32], vw[32];
            fmt_val(vb, sizeof vb, c[i].bon[bk[q]]);
            fmt_val(vw, sizeof vw, c[i].wbon[bk[q]]);
            fprintf(f, "  %8s  %8s", vb, vw);
        }
        fprintf(f, "\n");
    }
}

/* Both tables (subject, then level) with one column layout; with rewards the bon@k / wbon@k
 * columns, a line naming their k when they are not the whole k list, and the seeded-estimate
 * flag of weighted best-of-N (as the overall table flags majority). */
static void print_breakdown_curves(FILE *f, const agg_curve *subj, int ns, const agg_curve *lvl, int nl, const int *k,
                                   int n_k, int has_reward, int wbon_exact) {
    if ((ns <= 0 && nl <= 0) || n_k <= 0) return;
    int ws = ns > 0 ? slice_name_width("subject", subj, ns) : 0;
    int wl = nl > 0 ? slice_name_width("level", lvl, nl) : 0;
    int bk[AGG_MAX_K] = {0}, n_bk = 0;
    if (has_reward) {
        int wmax = ws > wl ? ws : wl;
        n_bk = pick_bon_k(k, n_k, 2 + wmax + 4 * BREAKDOWN_COL, bk);
    }
    if (ns > 0) print_slices(f, "subject", subj, ns, k, n_k, ws, bk, n_bk);
    if (nl > 0) {
        if (ns > 0) fprintf(f, "\n");
        print_slices(f, "level", lvl, nl, k, n_k, wl, bk, n_bk);
    }
    if (!has_reward) return;
    if (n_bk < n_k) {
        int all[AGG_MAX_K], n_all = sorted_k_idx(k, n_k, all);
        fprintf(f, "(bon/wbon at k =");
        for (int b = 0; b < n_bk; b++) fprintf(f, "%s %d", b ? "," : "", k[bk[b]]);
        fprintf(f, " of");
        for (int b = 0; b < n_all; b++) fprintf(f, "%s %d", b ? "," : "", k[all[b]]);
        fprintf(f, " to fit the width; every k in --json)\n");
    }
    if (!wbon_exact) fprintf(f, "(wbon: seeded estimate)\n");
}

void jobctl_print_breakdown(FILE *f, const agg_stats *s) {
    print_breakdown_curves(f, s->by_subject, s->n_subject, s->by_level, s->n_level, s->k, s->n_k, s->has_reward,
                           s->wbon_exact);
}

static double num_at(const proto_val *arr, uint32_t i) {
    if (!arr || arr->type != PV_ARRAY || i >= arr->v.arr.n) return NAN;
    const proto_val *v = &arr->v.arr.items[i];
    switch (v->type) {
    case PV_FLOAT: return v->v.f;
    case PV_INT: return (double)v->v.i;
    case PV_UINT: return (double)v->v.u;
    default: return NAN;
    }
}

/* Converts one "by_subject"/"by_level" map back into agg_curve rows. */
static int curves_from_map(const proto_val *m, int n_k, agg_curve **out) {
    *out = NULL;
    if (!m || m->type != PV_MAP || m->v.map.n == 0) return 0;
    int n = (int)m->v.map.n;
    agg_curve *c = xcalloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        const proto_val *v = &m->v.map.vals[i];
        snprintf(c[i].name, sizeof c[i].name, "%.*s", (int)m->v.map.key_lens[i], m->v.map.keys[i]);
        int64_t np = 0;
        if (v->type == PV_MAP) proto_get_i64(v, "problems", &np);
        c[i].problems = (int)np;
        const proto_val *cov = v->type == PV_MAP ? proto_get_array(v, "coverage") : NULL;
        const proto_val *maj = v->type == PV_MAP ? proto_get_array(v, "majority") : NULL;
        const proto_val *bon = v->type == PV_MAP ? proto_get_array(v, "bon") : NULL;
        const proto_val *wbon = v->type == PV_MAP ? proto_get_array(v, "wbon") : NULL;
        for (int j = 0; j < n_k && j < AGG_MAX_K; j++) {
            c[i].coverage[j] = num_at(cov, (uint32_t)j);
            c[i].majority[j] = num_at(maj, (uint32_t)j);
            c[i].bon[j] = num_at(bon, (uint32_t)j);     /* NaN when the job has no rewards */
            c[i].wbon[j] = num_at(wbon, (uint32_t)j);
        }
    }
    *out = c;
    return n;
}

void jobctl_print_breakdown_map(FILE *f, const proto_val *stats) {
    if (!stats || stats->type != PV_MAP) return;
    const proto_val *ka = proto_get_array(stats, "k");
    if (!ka) return;
    int k[AGG_MAX_K], n_k = 0;
    for (uint32_t i = 0; i < ka->v.arr.n && n_k < AGG_MAX_K; i++) {
        double x = num_at(ka, i);
        k[n_k++] = isfinite(x) ? (int)x : 0;
    }
    agg_curve *subj, *lvl;
    int ns = curves_from_map(proto_get_map(stats, "by_subject"), n_k, &subj);
    int nl = curves_from_map(proto_get_map(stats, "by_level"), n_k, &lvl);
    /* agg_stats_to_json writes "bon" (and the slices' bon/wbon) only when the job has rewards */
    int has_reward = proto_get_array(stats, "bon") != NULL, wbon_exact = 1;
    if (proto_get_bool(stats, "wbon_exact", &wbon_exact) != 0) wbon_exact = 1;
    print_breakdown_curves(f, subj, ns, lvl, nl, k, n_k, has_reward, wbon_exact);
    free(subj);
    free(lvl);
}
