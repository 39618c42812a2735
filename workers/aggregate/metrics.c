/* workers/aggregate/metrics.c — estimators over random size-k subsets of a problem's samples.
 *
 * majority@k exactly: condition on the correct group c holding a of the k places. Groups smaller
 * than a can never reach a, so together with the abstainers they form a free pool whose ways
 * to fill places are one binomial (Vandermonde); only groups of size >= a need a dynamic program
 * over (places used j, groups tied at a: t), and a tie of c with t others scores 1/(t+1):
 *   E = sum_c sum_a C(s_c, a) sum_{j,t} DP_a[j][t] C(F_a, k-a-j) / (t+1)  /  C(n, k).
 * Counts are long doubles (C(1024,512) ~ 1e306 fits with room to spare). The cost is estimated
 * first; above METRICS_EXACT_BUDGET the result is a seeded Monte Carlo estimate instead.
 * The Monte Carlo sampler draws min(k, n-k) samples by partial Fisher-Yates (the complement when
 * k > n/2) and finds the winner touching only the drawn samples' groups plus a walk down the
 * groups sorted by total weight, so a draw costs O(min(k, n-k)) rather than O(groups).
 */
#include "workers/aggregate/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define METRICS_EXACT_BUDGET 2.0e6 /* DP cell updates allowed for one exact majority@k */
#define METRICS_MC_DRAWS 1000      /* draws per Monte Carlo estimate (at most) */
#define METRICS_MC_MIN_DRAWS 200   /* ... and at least */
#define METRICS_MC_WORK 131072.0   /* drawn samples per estimate: draws = WORK / min(k, n-k), clamped */
#define METRICS_ENUM_MAX 20000.0   /* subsets enumerated for an exact weighted BoN */

/* ---- rng ---- */

void metrics_rng_seed(metrics_rng *r, uint64_t seed) { r->s = seed ^ 0x6A09E667F3BCC909ULL; }

uint64_t metrics_rng_next(metrics_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t metrics_rng_below(metrics_rng *r, uint64_t bound) {
    /* Lemire's multiply-shift with rejection: unbiased, no division on the common path */
    __extension__ typedef unsigned __int128 u128;
    u128 m = (u128)metrics_rng_next(r) * bound;
    uint64_t lo = (uint64_t)m;
    if (lo < bound) {
        uint64_t t = (0 - bound) % bound;
        while (lo < t) { m = (u128)metrics_rng_next(r) * bound; lo = (uint64_t)m; }
    }
    return (uint64_t)(m >> 64);
}

double metrics_rng_uniform(metrics_rng *r) { return (double)(metrics_rng_next(r) >> 11) / 9007199254740992.0; }

/* ---- pass@k ---- */

double metrics_pass_at_k(int n, int c, int k) {
    if (n < 1 || c < 0 || c > n || k < 1 || k > n) return NAN;
    if (n - c < k) return 1.0;
    double prod = 1.0;
    for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}

/* ---- binomials from a log-factorial table ---- */

typedef struct lfact { long double *lf; int n; } lfact;

static void lfact_init(lfact *t, int n) {
    t->n = n;
    t->lf = xmalloc(sizeof(long double) * (size_t)(n + 1));
    t->lf[0] = 0;
    for (int i = 1; i <= n; i++) t->lf[i] = t->lf[i - 1] + logl((long double)i);
}

static long double binoml(const lfact *t, int m, int x) {
    if (x < 0 || m < 0 || x > m) return 0;
    if (x == 0 || x == m) return 1;
    return expl(t->lf[m] - t->lf[x] - t->lf[m - x]);
}

/* ---- Monte Carlo vote over random subsets (shared by majority and weighted BoN) ---- */

typedef struct vote_ctx {
    int n, n_groups;
    const int *label;          /* [n] group or -1 */
    const double *w;           /* [n] weight (NULL = 1) */
    const unsigned char *gcorrect;
    double *total;             /* [G] sum of weights of the group's samples */
    int *count_total;          /* [G] samples per group */
    int *order;                /* groups by total desc */
    /* scratch */
    double *acc; int *cnt; unsigned *stamp; int *touched; int *perm;
} vote_ctx;

typedef struct gtot { double t; int g; } gtot;
static int cmp_gtot_desc(const void *a, const void *b) {
    double x = ((const gtot *)a)->t, y = ((const gtot *)b)->t;
    int ga = ((const gtot *)a)->g, gb = ((const gtot *)b)->g;
    return x < y ? 1 : x > y ? -1 : (ga > gb) - (ga < gb);
}

static void vote_init(vote_ctx *v, const int *label, const double *w, const unsigned char *gcorrect, int n, int G) {
    memset(v, 0, sizeof *v);
    v->n = n; v->n_groups = G; v->label = label; v->w = w; v->gcorrect = gcorrect;
    v->total = xcalloc((size_t)G + 1, sizeof(double));
    v->count_total = xcalloc((size_t)G + 1, sizeof(int));
    v->order = xmalloc(sizeof(int) * ((size_t)G + 1));
    v->acc = xcalloc((size_t)G + 1, sizeof(double));
    v->cnt = xcalloc((size_t)G + 1, sizeof(int));
    v->stamp = xcalloc((size_t)G + 1, sizeof(unsigned));
    v->touched = xmalloc(sizeof(int) * ((size_t)n + 1));
    v->perm = xmalloc(sizeof(int) * ((size_t)n + 1));
    for (int i = 0; i < n; i++) {
        int g = label[i];
        if (g < 0) continue;
        v->total[g] += w ? (isnan(w[i]) ? 0.0 : w[i]) : 1.0;
        v->count_total[g]++;
    }
    gtot *gt = xmalloc(sizeof(gtot) * ((size_t)G + 1));
    for (int g = 0; g < G; g++) { gt[g].t = v->total[g]; gt[g].g = g; }
    qsort(gt, (size_t)G, sizeof(gtot), cmp_gtot_desc);
    for (int g = 0; g < G; g++) v->order[g] = gt[g].g;
    free(gt);
}

static void vote_free(vote_ctx *v) {
    free(v->total); free(v->count_total); free(v->order); free(v->acc); free(v->cnt); free(v->stamp);
    free(v->touched); free(v->perm);
}

/* Score of one subset given by perm[0..m) (the subset itself, or its complement). */
static double vote_score_draw(vote_ctx *v, int m, int complement, unsigned id) {
    int nt = 0;
    for (int i = 0; i < m; i++) {
        int s = v->perm[i], g = v->label[s];
        if (g < 0) continue;
        if (v->stamp[g] != id) { v->stamp[g] = id; v->acc[g] = 0; v->cnt[g] = 0; v->touched[nt++] = g; }
        v->acc[g] += v->w ? (isnan(v->w[s]) ? 0.0 : v->w[s]) : 1.0;
        v->cnt[g]++;
    }
    double best = -INFINITY;
    int nbest = 0, nbest_correct = 0;
#define CONSIDER(score, g) do { double sc_ = (score); \
        if (sc_ > best) { best = sc_; nbest = 1; nbest_correct = v->gcorrect[g] ? 1 : 0; } \
        else if (sc_ == best) { nbest++; nbest_correct += v->gcorrect[g] ? 1 : 0; } } while (0)
    if (!complement) {
        for (int i = 0; i < nt; i++) CONSIDER(v->acc[v->touched[i]], v->touched[i]);
    } else {
        for (int i = 0; i < nt; i++) {
            int g = v->touched[i];
            if (v->cnt[g] < v->count_total[g]) CONSIDER(v->total[g] - v->acc[g], g);
        }
        /* untouched groups keep their totals: walk the sorted order until totals drop below best */
        for (int i = 0; i < v->n_groups; i++) {
            int g = v->order[i];
            if (v->count_total[g] == 0) continue;
            if (v->total[g] < best) break;
            if (v->stamp[g] == id) continue;
            CONSIDER(v->total[g], g);
        }
    }
#undef CONSIDER
    return nbest ? (double)nbest_correct / nbest : 0.0;
}

/* Draws for one estimate: fewer when each draw is long (the job-level error, over hundreds of
 * problems, stays far below the per-problem one). */
static int mc_draws(int n, int k) {
    int m = k < n - k ? k : n - k;
    double d = METRICS_MC_WORK / (m > 0 ? m : 1);
    if (d > METRICS_MC_DRAWS) d = METRICS_MC_DRAWS;
    if (d < METRICS_MC_MIN_DRAWS) d = METRICS_MC_MIN_DRAWS;
    return (int)d;
}

static void vote_mc(vote_ctx *v, int k, uint64_t seed, metrics_est *out) {
    metrics_rng r;
    metrics_rng_seed(&r, seed);
    int n = v->n, complement = k > n / 2, m = complement ? n - k : k;
    for (int i = 0; i < n; i++) v->perm[i] = i;
    double sum = 0, sum2 = 0;
    int draws = mc_draws(n, k);
    for (int d = 0; d < draws; d++) {
        for (int i = 0; i < m; i++) { /* partial Fisher-Yates: perm[0..m) is a uniform m-subset */
            int j = i + (int)metrics_rng_below(&r, (uint64_t)(n - i));
            int t = v->perm[i]; v->perm[i] = v->perm[j]; v->perm[j] = t;
        }
        double s = vote_score_draw(v, m, complement, (unsigned)d + 1);
        sum += s; sum2 += s * s;
    }
    double mean = sum / draws, var = sum2 / draws - mean * mean;
    if (var < 0) var = 0;
    out->value = mean;
    out->se = sqrt(var / (draws - 1));
    out->exact = 0;
}

/* ---- majority@k ---- */

/* Exact cost (DP cell updates) for correct group c; -1 if the caller should not try. */
static double majority_cost(const int *s, int G, int A, int c, int k) {
    double cost = 0;
    int amax = s[c] < k ? s[c] : k;
    for (int a = 1; a <= amax; a++) {
        int rem = k - a, nbig = 0;
        long F = A, capbig = 0;
        for (int g = 0; g < G; g++) {
            if (g == c) continue;
            if (s[g] >= a) { nbig++; capbig += a; } else F += s[g];
        }
        if (rem > F + capbig) continue;
        int T = nbig < rem / a ? nbig : rem / a;
        long w = rem < capbig ? rem : capbig;
        cost += (double)nbig * (double)(w + 1) * (double)(T + 1) * (double)(a + 1) + 1;
        if (cost > 1e18) return cost;
    }
    return cost;
}

static long double majority_exact_group(const lfact *lf, const int *s, int G, int A, int c, int k) {
    long double total = 0;
    int amax = s[c] < k ? s[c] : k;
    int *big = xmalloc(sizeof(int) * ((size_t)G + 1));
    for (int a = 1; a <= amax; a++) {
        int rem = k - a, nbig = 0;
        long F = A, capbig = 0;
        for (int g = 0; g < G; g++) {
            if (g == c) continue;
            if (s[g] >= a) { big[nbig++] = s[g]; capbig += a; } else F += s[g];
        }
        if (rem > F + capbig) continue;
        int T = nbig < rem / a ? nbig : rem / a;
        int W = rem; /* j in [0, rem] */
        size_t cells = (size_t)(W + 1) * (size_t)(T + 1);
        long double *dp = xcalloc(cells, sizeof(long double)), *nx = xcalloc(cells, sizeof(long double));
        dp[0] = 1;
        long capleft = capbig;
        int jmax = 0;
        long double *row = xmalloc(sizeof(long double) * ((size_t)a + 1));
        for (int b = 0; b < nbig; b++) {
            row[0] = 1; /* C(big[b], x) for x = 0..a by the multiplicative recurrence */
            for (int x = 1; x <= a; x++) row[x] = row[x - 1] * (long double)(big[b] - x + 1) / (long double)x;
            capleft -= a;
            memset(nx, 0, cells * sizeof(long double));
            int njmax = jmax + a < W ? jmax + a : W;
            long lo_next = (long)rem - F - capleft; /* j after this group must be >= this to finish */
            for (int j = 0; j <= jmax; j++) {
                for (int t = 0; t <= T; t++) {
                    long double v = dp[(size_t)j * (size_t)(T + 1) + (size_t)t];
                    if (v == 0) continue;
                    int xmax = a < W - j ? a : W - j;
                    for (int x = 0; x <= xmax; x++) {
                        if (j + x < lo_next) continue;
                        int nt = t + (x == a);
                        if (nt > T) continue;
                        nx[(size_t)(j + x) * (size_t)(T + 1) + (size_t)nt] += v * row[x];
                    }
                }
            }
            long double *tmp = dp; dp = nx; nx = tmp;
            jmax = njmax;
        }
        free(row);
        long double sum_a = 0;
        for (int j = 0; j <= jmax; j++) {
            long double ways_free = binoml(lf, (int)F, rem - j);
            if (ways_free == 0) continue;
            for (int t = 0; t <= T; t++) {
                long double v = dp[(size_t)j * (size_t)(T + 1) + (size_t)t];
                if (v != 0) sum_a += v * ways_free / (long double)(t + 1);
            }
        }
        total += binoml(lf, s[c], a) * sum_a;
        free(dp); free(nx);
    }
    free(big);
    return total;
}

/* Validates a grouping for majority@k (G groups of sizes[g] >= 0 samples plus A abstentions,
 * 1 <= k <= n <= 10^6) and returns n, the number of samples; -1 when invalid. */
static long groups_total(const int *sizes, const unsigned char *gcorrect, int G, int A, int k) {
    if (G < 0 || A < 0 || k < 1 || (G > 0 && (!sizes || !gcorrect))) return -1;
    long n = A;
    for (int g = 0; g < G; g++) { if (sizes[g] < 0) return -1; n += sizes[g]; }
    if (k > n || n > 1000000) return -1;
    return n;
}

int metrics_majority_ex(const int *sizes, const unsigned char *gcorrect, int G, int A, int k, uint64_t seed,
                        metrics_est *out) {
    out->value = NAN; out->se = 0; out->exact = 1;
    long n = groups_total(sizes, gcorrect, G, A, k);
    if (n < 0) return -1;
    int any = 0;
    for (int g = 0; g < G; g++) if (gcorrect[g] && sizes[g] > 0) any = 1;
    if (!any) { out->value = 0; return 0; }
    if (k == 1) { /* one sample: its answer */
        long c = 0;
        for (int g = 0; g < G; g++) if (gcorrect[g]) c += sizes[g];
        out->value = (double)c / (double)n;
        return 0;
    }
    if (k == n) { /* the whole set: plurality of the full counts */
        int best = -1, nb = 0, nc = 0;
        for (int g = 0; g < G; g++) {
            if (sizes[g] > best) { best = sizes[g]; nb = 1; nc = gcorrect[g] ? 1 : 0; }
            else if (sizes[g] == best) { nb++; nc += gcorrect[g] ? 1 : 0; }
        }
        out->value = best > 0 && nb ? (double)nc / nb : 0.0;
        return 0;
    }
    double cost = 0;
    for (int g = 0; g < G && cost <= 1e12; g++)
        if (gcorrect[g] && sizes[g] > 0) cost += majority_cost(sizes, G, A, g, k);
    /* exact whenever it costs at most a few Monte Carlo estimates */
    double mc_cost = (double)mc_draws((int)n, k) * (double)(k < n - k ? k : n - k);
    if (cost <= METRICS_EXACT_BUDGET || cost <= 4 * mc_cost) {
        lfact lf;
        lfact_init(&lf, (int)n);
        long double sum = 0;
        for (int g = 0; g < G; g++)
            if (gcorrect[g] && sizes[g] > 0) sum += majority_exact_group(&lf, sizes, G, A, g, k);
        long double all = binoml(&lf, (int)n, k);
        free(lf.lf);
        if (isfinite((double)(sum / all))) {
            double v = (double)(sum / all);
            out->value = v < 0 ? 0 : v > 1 ? 1 : v;
            return 0;
        }
    }
    return metrics_majority_mc(sizes, gcorrect, G, A, k, seed, out);
}

int metrics_majority_mc(const int *sizes, const unsigned char *gcorrect, int G, int A, int k, uint64_t seed,
                        metrics_est *out) {
    out->value = NAN; out->se = 0; out->exact = 0;
    long n = groups_total(sizes, gcorrect, G, A, k);
    if (n < 0) return -1;
    /* expand groups to per-sample labels */
    int *label = xmalloc(sizeof(int) * (size_t)n);
    long i = 0;
    for (int g = 0; g < G; g++) for (int j = 0; j < sizes[g]; j++) label[i++] = g;
    while (i < n) label[i++] = -1;
    vote_ctx v;
    vote_init(&v, label, NULL, gcorrect, (int)n, G);
    vote_mc(&v, k, seed, out);
    vote_free(&v);
    free(label);
    return 0;
}

double metrics_majority_at_k(const int *group_sizes, int n_groups, int correct_group, int k, uint64_t seed,
                             double *stderr_out) {
    if (stderr_out) *stderr_out = 0;
    if (correct_group < -1 || correct_group >= n_groups || n_groups < 0) return NAN;
    unsigned char *gc = xcalloc((size_t)n_groups + 1, 1);
    if (correct_group >= 0) gc[correct_group] = 1;
    metrics_est e;
    int rc = metrics_majority_ex(group_sizes, gc, n_groups, 0, k, seed, &e);
    free(gc);
    if (rc != 0) return NAN;
    if (stderr_out) *stderr_out = e.se;
    return e.value;
}

/* ---- naive best-of-N ---- */

typedef struct rs { double r; unsigned char c; } rs;
static int cmp_rs_desc(const void *a, const void *b) {
    double x = ((const rs *)a)->r, y = ((const rs *)b)->r;
    int xn = isnan(x), yn = isnan(y);
    if (xn || yn) return xn - yn; /* NaN last */
    return x < y ? 1 : x > y ? -1 : 0;
}

double metrics_bon_at_k(const double *reward, const unsigned char *correct, int n, int k) {
    if (!reward || !correct || n < 1 || k < 1 || k > n) return NAN;
    rs *v = xmalloc(sizeof(rs) * (size_t)n);
    int finite = 0;
    for (int i = 0; i < n; i++) { v[i].r = reward[i]; v[i].c = correct[i] ? 1 : 0; finite += !isnan(reward[i]); }
    if (!finite) { free(v); return NAN; }
    qsort(v, (size_t)n, sizeof(rs), cmp_rs_desc);
    /* P(the max of the subset is at sorted rank i) = C(n-1-i, k-1) / C(n, k); computed as a
     * running ratio: P_0 = k/n, P_{i+1} = P_i (n-1-i-(k-1)) / (n-1-i). Ties: block average. */
    double res = 0, p = (double)k / n;
    int i = 0;
    while (i < n) {
        int j = i;
        while (j + 1 < n && ((isnan(v[j + 1].r) && isnan(v[i].r)) || v[j + 1].r == v[i].r)) j++;
        double mass = 0;
        int nc = 0;
        for (int r = i; r <= j; r++) {
            mass += p;
            nc += v[r].c;
            int left = n - 1 - r; /* samples below rank r */
            p = left > 0 ? p * (double)(left - (k - 1)) / (double)left : 0;
            if (p < 0) p = 0;
        }
        res += mass * (double)nc / (double)(j - i + 1);
        i = j + 1;
    }
    free(v);
    return res;
}

/* ---- weighted best-of-N ---- */

int metrics_wbon_ex(const double *reward, const int *group, const unsigned char *gcorrect, int n, int G, int k,
                    uint64_t seed, metrics_est *out) {
    out->value = NAN; out->se = 0; out->exact = 1;
    if (!reward || !group || n < 1 || k < 1 || k > n || G < 0) return -1;
    int finite = 0;
    for (int i = 0; i < n; i++) {
        if (group[i] >= G) return -1;
        finite += !isnan(reward[i]);
    }
    if (!finite) return -1;
    vote_ctx v;
    vote_init(&v, group, reward, gcorrect, n, G);
    /* number of subsets, to decide on enumeration */
    double lc = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0);
    if (lc <= log(METRICS_ENUM_MAX)) {
        int m = k <= n - k ? k : n - k, complement = k > n - k;
        int *idx = xmalloc(sizeof(int) * ((size_t)m + 1));
        for (int i = 0; i < m; i++) idx[i] = i;
        double sum = 0;
        long cnt = 0;
        unsigned id = 1;
        for (;;) {
            for (int i = 0; i < m; i++) v.perm[i] = idx[i];
            sum += vote_score_draw(&v, m, complement, id++);
            cnt++;
            int i = m - 1;
            while (i >= 0 && idx[i] == n - m + i) i--;
            if (i < 0) break;
            idx[i]++;
            for (int j = i + 1; j < m; j++) idx[j] = idx[j - 1] + 1;
        }
        free(idx);
        out->value = sum / (double)cnt;
    } else {
        vote_mc(&v, k, seed, out);
    }
    vote_free(&v);
    return 0;
}

/* ---- bootstrap ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double quantile_sorted(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    if (i >= n - 1) return v[n - 1];
    double f = pos - i;
    return v[i] * (1 - f) + v[i + 1] * f;
}

int metrics_bootstrap_mean_ci(const double *values, int n, int reps, double alpha, uint64_t seed, double *lo,
                              double *hi) {
    *lo = *hi = NAN;
    if (!values || n < 1 || reps < 2 || !(alpha > 0 && alpha < 1)) return -1;
    double *fin = xmalloc(sizeof(double) * (size_t)n);
    int m = 0;
    for (int i = 0; i < n; i++) if (!isnan(values[i])) fin[m++] = values[i];
    if (m == 0) { free(fin); return -1; }
    double *means = xmalloc(sizeof(double) * (size_t)reps);
    metrics_rng r;
    metrics_rng_seed(&r, seed);
    for (int b = 0; b < reps; b++) {
        double s = 0;
        for (int i = 0; i < m; i++) s += fin[metrics_rng_below(&r, (uint64_t)m)];
        means[b] = s / m;
    }
    qsort(means, (size_t)reps, sizeof(double), cmp_double);
    *lo = quantile_sorted(means, reps, alpha / 2);
    *hi = quantile_sorted(means, reps, 1 - alpha / 2);
    free(means);
    free(fin);
    return 0;
}

/* ---- time budgets ---- */

int metrics_samples_in_budget(double budget_s, double mean_sample_s, int n) {
    if (n < 1 || !(budget_s >= 0)) return 0;
    if (!(mean_sample_s > 0)) return n; /* free samples: all fit */
    double k = floor(budget_s / mean_sample_s * (1 + 1e-9));
    if (k > n) return n;
    return k < 0 ? 0 : (int)k;
}
