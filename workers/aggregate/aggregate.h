/* workers/aggregate/aggregate.h — per-job aggregation: turns every problem's scored samples into
 * the job's stats (coverage@k, majority@k, best-of-N, intervals, breakdowns, time budgets).
 *
 * Used by the aggregate worker role (incremental and final) and by `jobctl reaggregate`.
 * aggregate_compute is a pure function of its input: call it whenever scores change; problems
 * that do not yet have k samples are left out of the k column (counted[] says how many were
 * used), so partial results are unbiased over the problems they cover.
 *
 * Voting: samples are grouped by canonical key; "" / NULL keys abstain (take a place in the
 * subset, never win); a group is correct when more than half of its samples are graded correct.
 * Computation runs over problems in parallel ($THINKFAST_AGG_THREADS, default: all CPUs); the
 * result does not depend on the thread count or on the order of the problems.
 *
 * JSON (agg_stats_to_json), every array indexed like "k":
 *   {"k":[1,2,4], "problems":P, "samples":M, "correct":C,
 *    "coverage":[..], "coverage_ci":[[lo,hi],..], "majority":[..], "majority_ci":[[lo,hi],..],
 *    "majority_exact":true|false, "majority_se":[..], "majority_mc":[..], "counted":[..],
 *    "bon":[..]|absent, "bon_ci", "wbon":[..], "wbon_ci", "wbon_exact", "wbon_se",  (rewards only)
 *    "by_subject":{"Algebra":{"problems":n,"coverage":[..],"majority":[..],
 *                             "bon":[..],"wbon":[..]},..},  (when known; bon/wbon: rewards only)
 *    "by_level":{"1":{...},..},                                                    (when known)
 *    "time":{"mean_sample_s":t, "budget_s":[..], "coverage":[..], "majority":[..]}, (when known)
 *    "bootstrap_reps":1000, "seed":S}
 * "counted"[i]: problems with at least k[i] samples (the ones averaged in column i).
 * "majority_se": the standard error of the job mean due to Monte Carlo parts (0 when exact);
 * "majority_mc"[i]: how many of the counted problems were estimated rather than exact.
 * Values that are undefined (no problem has k samples) are written as null.
 * The msgpack form (wrk_aggregate_stats in workers/wrk_roles.h) uses the same keys.
 */
#ifndef THINKFAST_AGGREGATE_H
#define THINKFAST_AGGREGATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define AGG_MAX_K 32

/* One problem's scored samples (borrowed; nothing is copied or freed by aggregate_compute). */
typedef struct agg_problem {
    int p;                          /* problem index in the job */
    int n;                          /* samples scored so far */
    const unsigned char *correct;   /* [n] 0/1 */
    const char *const *canonical;   /* [n] grade_canonical keys; NULL or "" = no answer (no vote); NULL array = all distinct */
    const double *reward;           /* [n] reward-model scores, NaN if none; NULL = no rewards */
    const double *time_s;           /* [n] amortised GPU seconds per sample; NULL = unknown */
    const char *subject;            /* MATH subject or NULL */
    int level;                      /* MATH level 1..5, 0 = unknown */
} agg_problem;

/* Per-k curves for one slice of problems (the whole job, one subject, one level). */
typedef struct agg_curve {
    char name[64];                  /* "" for the job, else the subject or level */
    int problems;                   /* problems in the slice */
    double coverage[AGG_MAX_K];     /* mean over the slice's problems with n >= k; NaN if none */
    double majority[AGG_MAX_K];
    double bon[AGG_MAX_K];          /* best-of-N and weighted best-of-N: mean over the slice's */
    double wbon[AGG_MAX_K];         /* problems with n >= k and rewards; NaN if none (always NaN
                                       when the job has no rewards) */
} agg_curve;

typedef struct agg_stats {
    int n_k;
    int k[AGG_MAX_K];
    int problems;                   /* problems given */
    long long samples;              /* total samples */
    long long correct;              /* total correct samples */
    int counted[AGG_MAX_K];         /* problems with n >= k[i] (used in column i) */

    double coverage[AGG_MAX_K], coverage_lo[AGG_MAX_K], coverage_hi[AGG_MAX_K];
    double majority[AGG_MAX_K], majority_lo[AGG_MAX_K], majority_hi[AGG_MAX_K];
    double majority_se[AGG_MAX_K];  /* standard error of the job mean from Monte Carlo parts (0 if exact) */
    int majority_exact;             /* 1 if every per-problem majority value was exact */
    int majority_mc[AGG_MAX_K];     /* problems in column i whose majority value is a Monte Carlo estimate */

    int has_reward;                 /* some problem had a finite reward */
    double bon[AGG_MAX_K], bon_lo[AGG_MAX_K], bon_hi[AGG_MAX_K];
    double wbon[AGG_MAX_K], wbon_lo[AGG_MAX_K], wbon_hi[AGG_MAX_K], wbon_se[AGG_MAX_K];
    int wbon_exact;

    /* Per problem, row-major [problems][n_k] (NaN where n < k); problem_index[i] = problems[i].p. */
    int *problem_index;
    double *problem_coverage;
    double *problem_majority;

    /* Breakdowns (empty when no problem has a subject / level). */
    agg_curve *by_subject; int n_subject;
    agg_curve *by_level;   int n_level;

    /* Time budgets (has_time = every sample of every problem has a finite time_s >= 0).
     * The rule: a budget of T GPU-seconds per problem buys k(T) = the largest k with
     * k * mean_sample_s <= T samples (metrics_samples_in_budget; mean_sample_s is the job's mean
     * amortised time per sample, so faster models buy more samples for the same T), and the
     * value at T is the unbiased estimator at k(T). The curve is reported at the budgets
     * budget_s[i] = k[i] * mean_sample_s, where k(T) = k[i]: time_coverage/time_majority equal
     * the k columns, on a GPU-seconds axis that makes jobs of different speed comparable. */
    int has_time;
    double mean_sample_s;           /* mean over all samples */
    double budget_s[AGG_MAX_K], time_coverage[AGG_MAX_K], time_majority[AGG_MAX_K];

    int bootstrap_reps;             /* resamples used for the intervals */
    uint64_t seed;
} agg_stats;

/* Computes the stats. k: n_k (1..AGG_MAX_K) distinct positive sample counts. seed drives every
 * estimate (Monte Carlo parts and bootstrap). On success returns 0 and *out owns heap arrays
 * (release with agg_stats_free). On invalid input returns -1 with err naming the problem and
 * field ("problem 3: n = -1"), and *out is zeroed. */
int aggregate_compute(const agg_problem *problems, int n_problems, const int *k, int n_k,
                      uint64_t seed, agg_stats *out, char *err, size_t errlen);

/* One problem's coverage (pass@k) and majority@k for k <= p->n samples: the per-problem values
 * aggregate_compute averages in its k column (same grouping, same Monte Carlo seed for the
 * same seed), for tools that evaluate other k. *majority is NaN when undefined. */
void agg_problem_at_k(const agg_problem *p, int k, uint64_t seed, double *coverage, double *majority);

/* Appends the JSON object documented above to out (no trailing newline). */
void agg_stats_to_json(const agg_stats *s, util_buf *out);
/* Same, plus "per_problem":[{"p":..,"coverage":[..],"majority":[..]},..] when per_problem != 0. */
void agg_stats_to_json_ex(const agg_stats *s, int per_problem, util_buf *out);

/* Releases the heap arrays and zeroes *s (safe on a zeroed struct, idempotent). */
void agg_stats_free(agg_stats *s);

#endif
