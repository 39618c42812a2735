/* tests/unit/test_metrics.c — the estimators against brute force over every subset (small n,
 * exact combinatorics), the Monte Carlo paths against the exact ones within their stated error,
 * and pass@k against the replay backend's closed form 1 - corrupt^k on simulated samples.
 */
#include "tests/unit/unit.h"

#include "workers/aggregate/metrics.h"

#include <stdint.h>

static double binom_exact(int n, int k) {
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

/* Brute force: every size-k subset of samples labelled label[i] (group or -1). w = NULL: counts. */
static double brute_vote(const int *label, const double *w, const unsigned char *gc, int n, int G, int k) {
    double sum = 0;
    long cnt = 0;
    for (uint32_t m = 0; m < (1u << n); m++) {
        if (__builtin_popcount(m) != k) continue;
        double acc[64] = {0};
        int present[64] = {0};
        for (int i = 0; i < n; i++) if ((m >> i & 1) && label[i] >= 0) {
            acc[label[i]] += w ? (isnan(w[i]) ? 0 : w[i]) : 1;
            present[label[i]] = 1;
        }
        double best = -INFINITY;
        int nb = 0, nc = 0;
        for (int g = 0; g < G; g++) {
            if (!present[g]) continue;
            if (acc[g] > best) { best = acc[g]; nb = 1; nc = gc[g]; }
            else if (acc[g] == best) { nb++; nc += gc[g]; }
        }
        sum += nb ? (double)nc / nb : 0;
        cnt++;
    }
    return sum / cnt;
}

TEST(pass_at_k_exact) {
    for (int n = 1; n <= 20; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                double want = 1.0 - binom_exact(n - c, k) / binom_exact(n, k);
                EXPECT_NEAR(metrics_pass_at_k(n, c, k), want, 1e-12);
            }
    EXPECT_EQ_INT(metrics_pass_at_k(10, 3, 8), 1.0); /* n - c < k */
    EXPECT(isnan(metrics_pass_at_k(10, 11, 1)));
    EXPECT(isnan(metrics_pass_at_k(10, 3, 11)));
    EXPECT(isnan(metrics_pass_at_k(10, 3, 0)));
    /* large n stays finite and in [0, 1] */
    double v = metrics_pass_at_k(10000, 3, 5000);
    EXPECT(v > 0.87 && v < 0.876); /* 1 - 0.5^3 */
}

TEST(pass_at_k_closed_form) {
    /* replay backend: each sample is wrong with probability corrupt, so E[pass@k] = 1 - corrupt^k */
    const double corrupt = 0.3;
    const int P = 4000, n = 16;
    metrics_rng r;
    metrics_rng_seed(&r, 7);
    int ks[] = {1, 2, 4, 8, 16};
    for (int ki = 0; ki < 5; ki++) {
        int k = ks[ki];
        double sum = 0, sum2 = 0;
        metrics_rng_seed(&r, 7);
        for (int p = 0; p < P; p++) {
            int c = 0;
            for (int s = 0; s < n; s++) c += metrics_rng_uniform(&r) >= corrupt;
            double v = metrics_pass_at_k(n, c, k);
            sum += v; sum2 += v * v;
        }
        double mean = sum / P, se = sqrt((sum2 / P - mean * mean) / (P - 1));
        double want = 1 - pow(corrupt, k);
        EXPECT_MSG(fabs(mean - want) <= 4 * se + 1e-6, "k=%d mean %.5f want %.5f se %.5f", k, mean, want, se);
    }
}

TEST(majority_brute_force) {
    metrics_rng r;
    metrics_rng_seed(&r, 42);
    int checked = 0;
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)metrics_rng_below(&r, 13);
        int G = 1 + (int)metrics_rng_below(&r, 5);
        int label[16], sizes[8] = {0}, A = 0;
        unsigned char gc[8] = {0};
        for (int i = 0; i < n; i++) {
            int g = (int)metrics_rng_below(&r, (uint64_t)G + 1) - 1; /* -1 = abstain */
            if (trial % 3 == 0 && g < 0) g = 0;
            label[i] = g;
            if (g >= 0) sizes[g]++; else A++;
        }
        /* sort labels so groups are contiguous as metrics_majority_ex assumes nothing about order */
        for (int g = 0; g < G; g++) gc[g] = metrics_rng_below(&r, 3) == 0;
        if (trial % 2) { memset(gc, 0, sizeof gc); gc[metrics_rng_below(&r, (uint64_t)G)] = 1; }
        for (int k = 1; k <= n; k++) {
            double want = brute_vote(label, NULL, gc, n, G, k);
            metrics_est e;
            EXPECT_EQ_INT(metrics_majority_ex(sizes, gc, G, A, k, 1, &e), 0);
            EXPECT(e.exact);
            EXPECT_MSG(fabs(e.value - want) < 1e-12, "n=%d G=%d A=%d k=%d got %.15f want %.15f", n, G, A, k, e.value, want);
            checked++;
        }
    }
    EXPECT(checked > 1000);
    /* the shared-API form: one correct group */
    int sizes[] = {3, 3, 2};
    double se = -1;
    double v = metrics_majority_at_k(sizes, 3, 0, 2, 1, &se);
    int label[] = {0, 0, 0, 1, 1, 1, 2, 2};
    unsigned char gc[] = {1, 0, 0};
    EXPECT_NEAR(v, brute_vote(label, NULL, gc, 8, 3, 2), 1e-12);
    EXPECT_EQ_INT(se, 0);
    EXPECT_EQ_INT(metrics_majority_at_k(sizes, 3, -1, 2, 1, NULL), 0);
    EXPECT(isnan(metrics_majority_at_k(sizes, 3, 3, 2, 1, NULL)));
    EXPECT(isnan(metrics_majority_at_k(sizes, 3, 0, 9, 1, NULL)));
    /* hand-computed: sizes {2,1}, k=2, correct=0: subsets {00}:1, {0,1}x2: tie 1/2 each -> (1+1)/3 */
    int s2[] = {2, 1};
    EXPECT_NEAR(metrics_majority_at_k(s2, 2, 0, 2, 1, NULL), 2.0 / 3.0, 1e-15);
}

TEST(majority_mc_matches_exact) {
    /* n = 200 with a mix of group sizes; the MC estimate must agree within 4 standard errors */
    int sizes[] = {60, 45, 30, 20, 10, 5, 5, 5};
    unsigned char gc[] = {0, 1, 0, 0, 0, 0, 0, 0};
    int G = 8, A = 20;
    int ks[] = {3, 8, 32, 150};
    for (int i = 0; i < 4; i++) {
        metrics_est ex, mc;
        EXPECT_EQ_INT(metrics_majority_ex(sizes, gc, G, A, ks[i], 5, &ex), 0);
        EXPECT(ex.exact);
        EXPECT_EQ_INT(metrics_majority_mc(sizes, gc, G, A, ks[i], 5, &mc), 0);
        EXPECT(!mc.exact);
        EXPECT_MSG(fabs(ex.value - mc.value) <= 4 * mc.se + 1e-9, "k=%d exact %.5f mc %.5f se %.5f", ks[i], ex.value, mc.value, mc.se);
        /* determinism */
        metrics_est mc2;
        metrics_majority_mc(sizes, gc, G, A, ks[i], 5, &mc2);
        EXPECT_EQ_INT(mc.value == mc2.value, 1);
    }
}

TEST(majority_large_exact_or_estimate) {
    /* n = 1024: a dominant correct group and a tail of wrong answers: affordable exactly */
    int sizes[64];
    unsigned char gc[64] = {0};
    int G = 0, n = 0;
    sizes[G] = 700; gc[G++] = 1; n += 700;
    while (n < 1024) { int s = 1 + G % 12; if (n + s > 1024) s = 1024 - n; sizes[G++] = s; n += s; }
    int ks[] = {1, 2, 16, 256, 512, 1023, 1024};
    for (int i = 0; i < 7; i++) {
        metrics_est e;
        EXPECT_EQ_INT(metrics_majority_ex(sizes, gc, G, 0, ks[i], 3, &e), 0);
        EXPECT(e.value >= 0 && e.value <= 1);
        if (ks[i] >= 16) EXPECT_MSG(e.value > 0.99, "k=%d %.6f exact=%d", ks[i], e.value, e.exact);
    }
    /* a close race: two groups of 300 and 310 (correct), exact and MC agree */
    int s2[] = {310, 300, 100};
    unsigned char g2[] = {1, 0, 0};
    metrics_est e, m;
    metrics_majority_ex(s2, g2, 3, 0, 101, 9, &e);
    metrics_majority_mc(s2, g2, 3, 0, 101, 9, &m);
    EXPECT_MSG(fabs(e.value - m.value) <= 4 * m.se, "exact %.5f (%d) mc %.5f se %.5f", e.value, e.exact, m.value, m.se);
}

TEST(bon_brute_force) {
    metrics_rng r;
    metrics_rng_seed(&r, 11);
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + (int)metrics_rng_below(&r, 12);
        double rew[16];
        unsigned char c[16];
        for (int i = 0; i < n; i++) {
            rew[i] = (double)metrics_rng_below(&r, 4); /* many ties */
            if (metrics_rng_below(&r, 6) == 0) rew[i] = NAN;
            c[i] = metrics_rng_below(&r, 2);
        }
        rew[0] = 1.5; /* at least one finite */
        for (int k = 1; k <= n; k++) {
            /* brute force: max over subset, ties broken uniformly, NaN below all */
            double sum = 0;
            long cnt = 0;
            for (uint32_t m = 0; m < (1u << n); m++) {
                if (__builtin_popcount(m) != k) continue;
                double best = -INFINITY;
                int nb = 0, nc = 0, any_f = 0;
                for (int i = 0; i < n; i++) if ((m >> i & 1) && !isnan(rew[i])) any_f = 1;
                for (int i = 0; i < n; i++) {
                    if (!(m >> i & 1)) continue;
                    double x = isnan(rew[i]) ? (any_f ? -INFINITY : 0) : rew[i];
                    if (isnan(rew[i]) && any_f) continue;
                    if (x > best) { best = x; nb = 1; nc = c[i]; }
                    else if (x == best) { nb++; nc += c[i]; }
                }
                sum += (double)nc / nb;
                cnt++;
            }
            EXPECT_NEAR(metrics_bon_at_k(rew, c, n, k), sum / cnt, 1e-12);
        }
    }
    double allnan[3] = {NAN, NAN, NAN};
    unsigned char c3[3] = {1, 0, 1};
    EXPECT(isnan(metrics_bon_at_k(allnan, c3, 3, 2)));
}

TEST(wbon_brute_force_and_mc) {
    metrics_rng r;
    metrics_rng_seed(&r, 13);
    for (int trial = 0; trial < 150; trial++) {
        int n = 1 + (int)metrics_rng_below(&r, 12), G = 1 + (int)metrics_rng_below(&r, 4);
        double rew[16];
        int grp[16];
        unsigned char gc[8] = {0};
        for (int i = 0; i < n; i++) {
            rew[i] = (double)metrics_rng_below(&r, 5) / 4.0;
            grp[i] = (int)metrics_rng_below(&r, (uint64_t)G + 1) - 1;
        }
        gc[metrics_rng_below(&r, (uint64_t)G)] = 1;
        for (int k = 1; k <= n; k++) {
            metrics_est e;
            EXPECT_EQ_INT(metrics_wbon_ex(rew, grp, gc, n, G, k, 1, &e), 0);
            EXPECT(e.exact);
            EXPECT_NEAR(e.value, brute_vote(grp, rew, gc, n, G, k), 1e-12);
        }
    }
    /* n = 24, k = 12 (2.7M subsets): Monte Carlo vs brute force */
    int n = 24, G = 4, grp[24];
    double rew[24];
    unsigned char gc[4] = {0, 0, 1, 0};
    for (int i = 0; i < n; i++) { grp[i] = i % 5 == 4 ? -1 : i % 4; rew[i] = 0.1 + 0.9 * metrics_rng_uniform(&r); }
    metrics_est e;
    EXPECT_EQ_INT(metrics_wbon_ex(rew, grp, gc, n, G, 12, 3, &e), 0);
    EXPECT(!e.exact);
    double want = brute_vote(grp, rew, gc, n, G, 12);
    EXPECT_MSG(fabs(e.value - want) <= 4 * e.se + 1e-9, "mc %.5f want %.5f se %.5f", e.value, want, e.se);
    /* k > n/2: the sampler draws the complement */
    EXPECT_EQ_INT(metrics_wbon_ex(rew, grp, gc, n, G, 18, 4, &e), 0);
    EXPECT(!e.exact);
    want = brute_vote(grp, rew, gc, n, G, 18);
    EXPECT_MSG(fabs(e.value - want) <= 4 * e.se + 1e-9, "complement: mc %.5f want %.5f se %.5f", e.value, want, e.se);
    EXPECT_EQ_INT(metrics_wbon_ex(rew, grp, gc, n, G, 25, 3, &e), -1);
}

TEST(bootstrap_ci) {
    double v[400];
    metrics_rng r;
    metrics_rng_seed(&r, 5);
    double mean = 0;
    for (int i = 0; i < 400; i++) { v[i] = metrics_rng_uniform(&r) < 0.3 ? 1 : 0; mean += v[i]; }
    mean /= 400;
    double lo, hi;
    EXPECT_EQ_INT(metrics_bootstrap_mean_ci(v, 400, 2000, 0.05, 1, &lo, &hi), 0);
    EXPECT(lo < mean && mean < hi);
    double half = 1.96 * sqrt(mean * (1 - mean) / 400);
    EXPECT_MSG(fabs((hi - lo) / 2 - half) < 0.2 * half, "half-width %.4f vs normal %.4f", (hi - lo) / 2, half);
    double lo2, hi2;
    metrics_bootstrap_mean_ci(v, 400, 2000, 0.05, 1, &lo2, &hi2);
    EXPECT(lo == lo2 && hi == hi2);
    double nan3[3] = {NAN, NAN, NAN};
    EXPECT_EQ_INT(metrics_bootstrap_mean_ci(nan3, 3, 100, 0.05, 1, &lo, &hi), -1);
    EXPECT(isnan(lo));
}

TEST(budget) {
    EXPECT_EQ_INT(metrics_samples_in_budget(10.0, 2.5, 100), 4);
    EXPECT_EQ_INT(metrics_samples_in_budget(0.3 * 3, 0.3, 100), 3); /* float slack */
    EXPECT_EQ_INT(metrics_samples_in_budget(1.0, 2.5, 100), 0);
    EXPECT_EQ_INT(metrics_samples_in_budget(1e9, 2.5, 100), 100);
    EXPECT_EQ_INT(metrics_samples_in_budget(1.0, 0.0, 7), 7);
}

int main(void) {
    RUN(pass_at_k_exact);
    RUN(pass_at_k_closed_form);
    RUN(majority_brute_force);
    RUN(majority_mc_matches_exact);
    RUN(majority_large_exact_or_estimate);
    RUN(bon_brute_force);
    RUN(wbon_brute_force_and_mc);
    RUN(bootstrap_ci);
    RUN(budget);
    return unit_summary();
}
