/* workers/aggregate/metrics.h — the inference-scaling estimators of DESIGN.md "Metrics":
 * coverage (pass@k), majority@k, naive and weighted best-of-N, bootstrap intervals.
 *
 * All functions are pure: they read the current scores of one problem (or per-problem values of
 * a job) and return numbers, so the aggregator can recompute them incrementally at any time.
 * Estimates over random size-k subsets of the n samples are exact expectations when the exact
 * computation is affordable, otherwise seeded Monte Carlo estimates whose standard error is
 * returned alongside (metrics_est.exact says which). Same inputs + same seed -> same output.
 */
#ifndef THINKFAST_METRICS_H
#define THINKFAST_METRICS_H

#include <stdint.h>

/* One estimate: value, its standard error (0 when exact), and whether it is exact. */
typedef struct metrics_est {
    double value;
    double se;
    int exact; /* 1: exact expectation; 0: Monte Carlo estimate with standard error se */
} metrics_est;

/* Unbiased pass@k = 1 - C(n-c, k)/C(n, k) in the stable product form
 * 1 - prod_{i=n-c+1..n} (1 - k/i); exactly 1 when n - c < k.
 * Requires 0 <= c <= n and 1 <= k <= n; returns NaN otherwise. */
double metrics_pass_at_k(int n, int c, int k);

/* majority@k: the expected accuracy of the plurality answer of a uniformly random size-k subset
 * of the n = sum(group_sizes) samples; ties at the top are split evenly (a tie between the
 * correct answer and t others scores 1/(t+1)). correct_group is the index of the correct answer's
 * group, or -1 when no answer is correct (result 0). Exact when affordable; otherwise a seeded
 * estimate and *stderr_out (may be NULL) gets its standard error (0 when exact).
 * Returns NaN for invalid input (k < 1, k > n, a negative size, correct_group out of range). */
double metrics_majority_at_k(const int *group_sizes, int n_groups, int correct_group, int k,
                             uint64_t seed, double *stderr_out);

/* The general form. group_correct[g] (0/1; several groups may be correct, e.g. two spellings
 * that the canonical key did not unify) marks correct answers; n_abstain samples have no answer:
 * they take up places in the subset but never vote (a subset of abstainers only scores 0).
 * Returns 0, or -1 on invalid input (out->value = NaN). */
int metrics_majority_ex(const int *group_sizes, const unsigned char *group_correct, int n_groups,
                        int n_abstain, int k, uint64_t seed, metrics_est *out);

/* The Monte Carlo path of metrics_majority_ex, forced (tests compare it with the exact path;
 * tools may want the cheaper estimate). Same arguments and result convention. */
int metrics_majority_mc(const int *group_sizes, const unsigned char *group_correct, int n_groups,
                        int n_abstain, int k, uint64_t seed, metrics_est *out);

/* Naive best-of-N@k: the expected correctness of the answer of the highest-reward sample of a
 * uniformly random size-k subset (exact: by rank order statistics; equal rewards are broken
 * uniformly at random, NaN rewards rank below every number). correct[i] in {0,1}.
 * Returns the expectation, or NaN when every reward is NaN or k is out of range. */
double metrics_bon_at_k(const double *reward, const unsigned char *correct, int n, int k);

/* Weighted best-of-N@k: in a random size-k subset, the answer whose samples' rewards sum highest
 * wins (ties split evenly; NaN rewards count 0; samples with group[i] < 0 have no answer and
 * never win). group[i] indexes answers; group_correct[g] marks correct ones. Exact by enumeration
 * when C(n,k) is small or k in {1, n}; otherwise a seeded estimate (out->se). Returns 0, or -1
 * on invalid input or when every reward is NaN (out->value = NaN). */
int metrics_wbon_ex(const double *reward, const int *group, const unsigned char *group_correct,
                    int n, int n_groups, int k, uint64_t seed, metrics_est *out);

/* Percentile bootstrap of the mean of values[0..n) (NaN entries skipped): `reps` resamples with
 * replacement, seeded; *lo and *hi get the (alpha/2, 1-alpha/2) percentiles (alpha = 0.05 for 95%).
 * Returns 0, or -1 when no finite value exists (lo = hi = NaN). */
int metrics_bootstrap_mean_ci(const double *values, int n, int reps, double alpha, uint64_t seed,
                              double *lo, double *hi);

/* Time budgets: the number of samples that fit in a budget of budget_s GPU-seconds for a problem
 * whose samples take mean_sample_s each: the largest k with k * mean_sample_s <= budget_s
 * (1e-9 relative slack), capped at n. 0 when not even one sample fits. */
int metrics_samples_in_budget(double budget_s, double mean_sample_s, int n);

/* SplitMix64-based generator used for every seeded estimate (exposed for tests and tools). */
typedef struct metrics_rng { uint64_t s; } metrics_rng;
void metrics_rng_seed(metrics_rng *r, uint64_t seed);
uint64_t metrics_rng_next(metrics_rng *r);
/* Uniform integer in [0, bound) (bound >= 1), unbiased. */
uint64_t metrics_rng_below(metrics_rng *r, uint64_t bound);
double metrics_rng_uniform(metrics_rng *r); /* [0, 1) */

#endif
