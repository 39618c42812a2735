/* tests/unit/test_aggregate.c — aggregate_compute and its JSON: values against independent
 * per-problem computations, incremental (partial) inputs, breakdowns (with best-of-N and
 * weighted best-of-N per slice), time budgets, rewards,
 * determinism under problem reordering, invalid input, and a replay-style simulation whose
 * coverage must match 1 - corrupt^k within the bootstrap interval.
 */
#include "tests/unit/unit.h"

#include "workers/aggregate/aggregate.h"
#include "workers/aggregate/metrics.h"
#include "workers/aggregate/plot_svg.h"

#include <jansson.h>

static json_t *to_json(const agg_stats *s, int per_problem) {
    util_buf b;
    util_buf_init(&b);
    agg_stats_to_json_ex(s, per_problem, &b);
    json_error_t je;
    json_t *o = json_loads(b.data, 0, &je);
    if (!o) printf("  bad JSON: %s\n  %s\n", je.text, b.data);
    util_buf_free(&b);
    return o;
}

static double jat(json_t *o, const char *key, int i) { return json_number_value(json_array_get(json_object_get(o, key), (size_t)i)); }

TEST(small_job) {
    /* p0: answers A A B C, correct A; p1: all wrong, distinct; p2: B B A A (A correct), one abstain */
    static const unsigned char c0[] = {1, 1, 0, 0}, c1[] = {0, 0, 0, 0}, c2[] = {0, 0, 1, 0};
    static const char *const k0[] = {"A", "A", "B", "C"}, *const k1[] = {"x", "y", "z", "w"}, *const k2[] = {"B", "B", "A", ""};
    agg_problem P[3] = {
        {.p = 0, .n = 4, .correct = c0, .canonical = k0, .subject = "Algebra", .level = 2},
        {.p = 1, .n = 4, .correct = c1, .canonical = k1, .subject = "Geometry", .level = 5},
        {.p = 2, .n = 4, .correct = c2, .canonical = k2, .subject = "Algebra", .level = 5},
    };
    int k[] = {1, 2, 4};
    agg_stats s;
    char err[256];
    EXPECT_EQ_INT(aggregate_compute(P, 3, k, 3, 7, &s, err, sizeof err), 0);
    EXPECT_EQ_INT(s.problems, 3);
    EXPECT_EQ_INT(s.samples, 12);
    EXPECT_EQ_INT(s.correct, 3);
    for (int j = 0; j < 3; j++) {
        double cov = (metrics_pass_at_k(4, 2, k[j]) + metrics_pass_at_k(4, 0, k[j]) + metrics_pass_at_k(4, 1, k[j])) / 3;
        EXPECT_NEAR(s.coverage[j], cov, 1e-12);
        EXPECT_EQ_INT(s.counted[j], 3);
    }
    /* majority by hand: p0 k=1: 1/2; k=2: pairs of {A,A,B,C}: AA->1, AB,AB,AC,AC -> 1/2 each, BC -> 0 => (1+2)/6 = 1/2;
     * k=4: A wins 2 vs 1 vs 1 -> 1. p1: 0. p2 (A correct, 1 A, 2 B, 1 abstain): k=1 1/4; k=4: B wins -> 0;
     * k=2: pairs: BB->0, BA x2 -> 1/2, B+abst x2 -> 0, A+abst -> 1 => (1+1)/6 = 1/3 */
    EXPECT_NEAR(s.majority[0], (0.5 + 0 + 0.25) / 3, 1e-12);
    EXPECT_NEAR(s.majority[1], (0.5 + 0 + 1.0 / 3) / 3, 1e-12);
    EXPECT_NEAR(s.majority[2], (1 + 0 + 0) / 3.0, 1e-12);
    EXPECT(s.majority_exact);
    EXPECT(!s.has_reward);
    EXPECT(!s.has_time);
    EXPECT(s.coverage_lo[0] <= s.coverage[0] && s.coverage[0] <= s.coverage_hi[0]);
    EXPECT_EQ_INT(s.n_subject, 2);
    EXPECT_EQ_STR(s.by_subject[0].name, "Algebra");
    EXPECT_EQ_INT(s.by_subject[0].problems, 2);
    EXPECT_NEAR(s.by_subject[0].coverage[0], (0.5 + 0.25) / 2, 1e-12);
    EXPECT_EQ_INT(s.n_level, 2);
    EXPECT_EQ_STR(s.by_level[1].name, "5");
    json_t *o = to_json(&s, 1);
    EXPECT(o != NULL);
    if (o) {
        EXPECT_EQ_INT(json_integer_value(json_object_get(o, "problems")), 3);
        EXPECT_EQ_INT(json_integer_value(json_object_get(o, "samples")), 12);
        EXPECT_NEAR(jat(o, "coverage", 1), s.coverage[1], 1e-9);
        EXPECT_NEAR(jat(o, "majority", 2), s.majority[2], 1e-9);
        EXPECT(json_is_true(json_object_get(o, "majority_exact")));
        EXPECT_EQ_INT(json_integer_value(json_array_get(json_object_get(o, "majority_mc"), 2)), 0);
        EXPECT(json_object_get(o, "bon") == NULL);
        EXPECT(json_object_get(json_object_get(o, "by_subject"), "Geometry") != NULL);
        EXPECT_EQ_INT(json_array_size(json_object_get(o, "per_problem")), 3);
        EXPECT_EQ_INT(json_array_size(json_object_get(o, "coverage_ci")), 3);
        json_decref(o);
    }
    agg_stats_free(&s);
    agg_stats_free(&s); /* idempotent */
}

TEST(partial_and_invalid) {
    static const unsigned char c[] = {1, 0, 1, 1};
    static const char *const kk[] = {"1", "2", "1", "1"};
    agg_problem P[2] = {{.p = 0, .n = 4, .correct = c, .canonical = kk}, {.p = 1, .n = 2, .correct = c, .canonical = kk}};
    int k[] = {1, 4, 8};
    agg_stats s;
    char err[256] = "";
    EXPECT_EQ_INT(aggregate_compute(P, 2, k, 3, 1, &s, err, sizeof err), 0);
    EXPECT_EQ_INT(s.counted[0], 2);
    EXPECT_EQ_INT(s.counted[1], 1);
    EXPECT_EQ_INT(s.counted[2], 0);
    EXPECT_NEAR(s.coverage[1], 1.0, 1e-12);
    EXPECT(isnan(s.coverage[2]));
    json_t *o = to_json(&s, 0);
    EXPECT(o && json_is_null(json_array_get(json_object_get(o, "coverage"), 2)));
    json_decref(o);
    agg_stats_free(&s);
    int bad_k[] = {1, 1};
    EXPECT_EQ_INT(aggregate_compute(P, 2, bad_k, 2, 1, &s, err, sizeof err), -1);
    EXPECT(strstr(err, "duplicate") != NULL);
    int zero_k[] = {0};
    EXPECT_EQ_INT(aggregate_compute(P, 2, zero_k, 1, 1, &s, err, sizeof err), -1);
    EXPECT(strstr(err, "k[0]") != NULL);
    agg_problem badp = {.p = 9, .n = -1};
    EXPECT_EQ_INT(aggregate_compute(&badp, 1, k, 1, 1, &s, err, sizeof err), -1);
    EXPECT(strstr(err, "problem 9") != NULL);
    agg_problem nocorr = {.p = 4, .n = 3};
    EXPECT_EQ_INT(aggregate_compute(&nocorr, 1, k, 1, 1, &s, err, sizeof err), -1);
    EXPECT(strstr(err, "problem 4: correct") != NULL);
    /* zero problems: valid, all null */
    EXPECT_EQ_INT(aggregate_compute(NULL, 0, k, 3, 1, &s, err, sizeof err), 0);
    EXPECT(isnan(s.coverage[0]));
    agg_stats_free(&s);
}

TEST(rewards_and_time) {
    static const unsigned char c0[] = {1, 0, 0, 1}, c1[] = {0, 1, 0, 0};
    static const char *const k0[] = {"5", "6", "7", "5"}, *const k1[] = {"1", "2", "3", "3"};
    static const double r0[] = {0.9, 0.2, 0.95, 0.1}, r1[] = {0.1, 0.8, 0.3, NAN};
    static const double t0[] = {1, 1, 1, 1}, t1[] = {2, 2, 2, 2};
    agg_problem P[2] = {
        {.p = 0, .n = 4, .correct = c0, .canonical = k0, .reward = r0, .time_s = t0},
        {.p = 1, .n = 4, .correct = c1, .canonical = k1, .reward = r1, .time_s = t1},
    };
    int k[] = {1, 2, 4};
    agg_stats s;
    char err[128];
    EXPECT_EQ_INT(aggregate_compute(P, 2, k, 3, 3, &s, err, sizeof err), 0);
    EXPECT(s.has_reward);
    for (int j = 0; j < 3; j++)
        EXPECT_NEAR(s.bon[j], (metrics_bon_at_k(r0, c0, 4, k[j]) + metrics_bon_at_k(r1, c1, 4, k[j])) / 2, 1e-12);
    /* k=4, p0: answer 5 sums 1.0, 7: 0.95 -> correct; p1: "2" 0.8 vs "3" 0.3 -> correct */
    EXPECT_NEAR(s.wbon[2], 1.0, 1e-12);
    EXPECT(s.wbon_exact);
    /* time: mean sample time (4*1 + 4*2)/8 = 1.5; a budget of 3 s buys 2 samples per problem */
    EXPECT(s.has_time);
    EXPECT_NEAR(s.mean_sample_s, 1.5, 1e-12);
    EXPECT_NEAR(s.budget_s[1], 3.0, 1e-12);
    EXPECT_EQ_INT(metrics_samples_in_budget(s.budget_s[1], s.mean_sample_s, 4), 2);
    EXPECT_NEAR(s.time_coverage[1], (metrics_pass_at_k(4, 2, 2) + metrics_pass_at_k(4, 1, 2)) / 2, 1e-12);
    EXPECT_NEAR(s.time_majority[2], s.majority[2], 1e-12);
    json_t *o = to_json(&s, 0);
    EXPECT(o && json_object_get(o, "wbon") && json_object_get(o, "time"));
    if (o) EXPECT_NEAR(jat(json_object_get(o, "time"), "budget_s", 2), 6.0, 1e-9);
    json_decref(o);
    agg_stats_free(&s);
    /* one NaN time: no time curves at all (never a budget built on missing data) */
    static const double tbad[] = {1, NAN, 1, 1};
    P[1].time_s = tbad;
    EXPECT_EQ_INT(aggregate_compute(P, 2, k, 3, 3, &s, err, sizeof err), 0);
    EXPECT(!s.has_time);
    o = to_json(&s, 0);
    EXPECT(o && json_object_get(o, "time") == NULL);
    json_decref(o);
    agg_stats_free(&s);
    /* no canonical keys: every sample is its own answer, so majority@k = the chance that a
     * random draw among the k distinct answers is correct = c/n */
    P[0].canonical = NULL;
    P[0].reward = NULL;
    EXPECT_EQ_INT(aggregate_compute(P, 1, k, 3, 3, &s, err, sizeof err), 0);
    for (int j = 0; j < 3; j++) EXPECT_NEAR(s.majority[j], 0.5, 1e-12);
    agg_stats_free(&s);
}

/* Best-of-N and weighted best-of-N per subject / level: means over the slice's problems that
 * have rewards (a slice without any reports NaN / null), from the per-problem metrics. */
TEST(breakdowns_carry_bon_and_wbon) {
    static const unsigned char c0[] = {1, 0, 0, 1}, c1[] = {0, 1, 0, 0}, c2[] = {0, 0, 1, 0};
    static const char *const k0[] = {"5", "6", "7", "5"}, *const k1[] = {"1", "2", "3", "3"},
                             *const k2[] = {"a", "b", "c", "d"};
    static const double r0[] = {0.9, 0.2, 0.95, 0.1}, r1[] = {0.1, 0.8, 0.3, NAN};
    agg_problem P[3] = {
        {.p = 0, .n = 4, .correct = c0, .canonical = k0, .reward = r0, .subject = "Algebra", .level = 2},
        {.p = 1, .n = 4, .correct = c1, .canonical = k1, .reward = r1, .subject = "Algebra", .level = 5},
        {.p = 2, .n = 4, .correct = c2, .canonical = k2, .reward = NULL, .subject = "Geometry", .level = 5},
    };
    int k[] = {1, 2, 4};
    agg_stats s;
    char err[128];
    EXPECT_EQ_INT(aggregate_compute(P, 3, k, 3, 11, &s, err, sizeof err), 0);
    EXPECT(s.has_reward);
    EXPECT_EQ_INT(s.n_subject, 2);
    EXPECT_EQ_INT(s.n_level, 2);
    if (s.n_subject != 2 || s.n_level != 2) { agg_stats_free(&s); return; }
    const agg_curve *alg = &s.by_subject[0], *geo = &s.by_subject[1], *l2 = &s.by_level[0], *l5 = &s.by_level[1];
    EXPECT_EQ_STR(alg->name, "Algebra");
    EXPECT_EQ_STR(l5->name, "5");
    for (int j = 0; j < 3; j++) {
        double b0 = metrics_bon_at_k(r0, c0, 4, k[j]), b1 = metrics_bon_at_k(r1, c1, 4, k[j]);
        EXPECT_NEAR(alg->bon[j], (b0 + b1) / 2, 1e-12);
        EXPECT_NEAR(l2->bon[j], b0, 1e-12);
        EXPECT_NEAR(l5->bon[j], b1, 1e-12); /* the Geometry problem has no rewards: not counted */
        EXPECT(isnan(geo->bon[j]) && isnan(geo->wbon[j]));
        EXPECT(!isnan(geo->coverage[j]));
        EXPECT_NEAR(alg->wbon[j], (l2->wbon[j] + l5->wbon[j]) / 2, 1e-12);
        EXPECT_NEAR(alg->wbon[j], s.wbon[j], 1e-12); /* the job's rewarded problems are Algebra's */
    }
    /* k=4 by hand: p0 answer "5" sums 1.0 vs "7" 0.95 -> correct; p1 "2" 0.8 vs "3" 0.3 -> correct */
    EXPECT_NEAR(l2->wbon[2], 1.0, 1e-12);
    EXPECT_NEAR(l5->wbon[2], 1.0, 1e-12);
    EXPECT(l2->bon[0] != l5->bon[0]);
    json_t *o = to_json(&s, 0);
    EXPECT(o != NULL);
    if (o) {
        json_t *ja = json_object_get(json_object_get(o, "by_subject"), "Algebra");
        json_t *jg = json_object_get(json_object_get(o, "by_subject"), "Geometry");
        json_t *j5 = json_object_get(json_object_get(o, "by_level"), "5");
        EXPECT_NEAR(jat(ja, "bon", 1), alg->bon[1], 1e-9);
        EXPECT_NEAR(jat(ja, "wbon", 0), alg->wbon[0], 1e-9);
        EXPECT_NEAR(jat(j5, "bon", 2), l5->bon[2], 1e-9);
        EXPECT(json_is_null(json_array_get(json_object_get(jg, "bon"), 0)));
        EXPECT_EQ_INT(json_array_size(json_object_get(jg, "wbon")), 3);
        json_decref(o);
    }
    agg_stats_free(&s);
    /* no rewards anywhere: slices carry no bon / wbon keys */
    P[0].reward = P[1].reward = NULL;
    EXPECT_EQ_INT(aggregate_compute(P, 3, k, 3, 11, &s, err, sizeof err), 0);
    o = to_json(&s, 0);
    EXPECT(o != NULL);
    if (o) {
        json_t *ja = json_object_get(json_object_get(o, "by_subject"), "Algebra");
        EXPECT(ja && json_object_get(ja, "coverage") && !json_object_get(ja, "bon") && !json_object_get(ja, "wbon"));
        json_decref(o);
    }
    agg_stats_free(&s);
}

TEST(order_independent_and_replay) {
    /* replay-style: P problems, n = 16 samples, each wrong with probability 0.3 (wrong answers
     * spread over 3 spellings); coverage@k must match 1 - 0.3^k within the bootstrap interval */
    enum { P = 400, N = 16 };
    static unsigned char corr[P][N];
    static const char *keys[P][N];
    static agg_problem probs[P], rev[P];
    static const char *const wrong[] = {"w1", "w2", "w3"};
    metrics_rng r;
    metrics_rng_seed(&r, 99);
    for (int p = 0; p < P; p++) {
        for (int s = 0; s < N; s++) {
            int ok = metrics_rng_uniform(&r) >= 0.3;
            corr[p][s] = (unsigned char)ok;
            keys[p][s] = ok ? "right" : wrong[metrics_rng_below(&r, 3)];
        }
        probs[p] = (agg_problem){.p = p, .n = N, .correct = corr[p], .canonical = keys[p]};
        rev[P - 1 - p] = probs[p];
    }
    int k[] = {1, 2, 4, 8, 16};
    agg_stats a, b;
    char err[128];
    setenv("THINKFAST_AGG_THREADS", "1", 1);
    EXPECT_EQ_INT(aggregate_compute(probs, P, k, 5, 5, &a, err, sizeof err), 0);
    setenv("THINKFAST_AGG_THREADS", "3", 1); /* threads and order must not change any number */
    EXPECT_EQ_INT(aggregate_compute(rev, P, k, 5, 5, &b, err, sizeof err), 0);
    unsetenv("THINKFAST_AGG_THREADS");
    for (int j = 0; j < 5; j++) {
        double want = 1 - pow(0.3, k[j]);
        EXPECT_MSG(a.coverage_lo[j] - 1e-4 <= want && want <= a.coverage_hi[j] + 1e-4, "k=%d cov %.4f [%.4f, %.4f] want %.4f",
                   k[j], a.coverage[j], a.coverage_lo[j], a.coverage_hi[j], want);
        EXPECT_NEAR(a.coverage[j], b.coverage[j], 1e-12);
        EXPECT_NEAR(a.majority[j], b.majority[j], 1e-12);
        EXPECT_NEAR(a.majority_lo[j], b.majority_lo[j], 1e-12);
        if (j > 0) EXPECT(a.majority[j] >= a.majority[j - 1] - 1e-9); /* the right answer dominates */
    }
    EXPECT(a.majority[4] > 0.99);
    agg_stats_free(&a);
    agg_stats_free(&b);
}

static int count_str(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

TEST(plot_svg) {
    double k[6] = {1, 2, 4, 8, 16, 32}, y1[6] = {0.2, 0.3, 0.45, NAN, 0.7, 0.8}, y2[6] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    double lo[6] = {0.15, 0.25, 0.4, NAN, 0.65, 0.75}, hi[6] = {0.25, 0.35, 0.5, NAN, 0.75, 0.85};
    double t[6] = {0, 0.5, 1, 2, 4, 8}; /* 0 cannot sit on a log axis: skipped */
    plot_series a[2] = {{"teacher <1B> & co", 6, k, y1, lo, hi}, {"student", 6, k, y2, NULL, NULL}};
    plot_series b[2] = {{"teacher <1B> & co", 6, t, y1, NULL, NULL}, {"student", 6, t, y2, NULL, NULL}};
    plot_panel p[2] = {{"Coverage", "samples per problem k", "coverage@k", PLOT_LOG2, 1, NAN, NAN, a, 2},
                       {"Coverage vs time", "GPU-seconds per problem", "coverage", PLOT_LOG10, 1, NAN, NAN, b, 2}};
    util_buf o, o2;
    util_buf_init(&o);
    util_buf_init(&o2);
    char err[128];
    EXPECT_EQ_INT(plot_svg_render(p, 2, 2, "teacher vs student", &o, err, sizeof err), 0);
    EXPECT_EQ_INT(plot_svg_render(p, 2, 2, "teacher vs student", &o2, err, sizeof err), 0);
    EXPECT(o.len == o2.len && memcmp(o.data, o2.data, o.len) == 0); /* deterministic */
    EXPECT(strncmp(o.data, "<?xml", 5) == 0);
    EXPECT(o.len > 10 && strcmp(o.data + o.len - 7, "</svg>\n") == 0);
    EXPECT_EQ_INT(count_str(o.data, "<g>"), count_str(o.data, "</g>") - 2); /* plus the two clip groups */
    /* lines: teacher has a NaN gap (2 runs per panel), student 1 run; x = 0 dropped on the log axis */
    EXPECT_EQ_INT(count_str(o.data, "<polyline"), 6);
    EXPECT_EQ_INT(count_str(o.data, "<polygon"), 2); /* the band, split by the gap */
    EXPECT_EQ_INT(count_str(o.data, "<circle"), 5 + 6 + 4 + 5 + 2); /* markers (+2 legend) */
    EXPECT(strstr(o.data, "teacher &lt;1B&gt; &amp; co") != NULL);
    EXPECT(strstr(o.data, "<1B>") == NULL);
    EXPECT(strstr(o.data, ">32</text>") != NULL);
    EXPECT(strstr(o.data, ">16</text>") != NULL);
    EXPECT(strstr(o.data, "%</text>") != NULL);
    EXPECT(strstr(o.data, "samples per problem k") != NULL);
    EXPECT(strstr(o.data, "GPU-seconds per problem") != NULL);
    EXPECT(strstr(o.data, "nan") == NULL && strstr(o.data, "inf") == NULL);
    util_buf_free(&o);
    util_buf_free(&o2);
    /* errors */
    util_buf_init(&o);
    EXPECT_EQ_INT(plot_svg_render(p, 0, 1, NULL, &o, err, sizeof err), -1);
    double nan6[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    plot_series c = {"x", 6, k, nan6, NULL, NULL};
    plot_panel q = {NULL, "k", "y", PLOT_LOG2, 0, NAN, NAN, &c, 1};
    EXPECT_EQ_INT(plot_svg_render(&q, 1, 1, NULL, &o, err, sizeof err), -1);
    EXPECT(strstr(err, "no finite point") != NULL);
    util_buf_free(&o);
}

TEST(plot_compare) {
    static const unsigned char c0[] = {1, 0, 1, 1}, c1[] = {0, 0, 1, 0};
    static const char *const k0[] = {"a", "b", "a", "a"}, *const k1[] = {"x", "y", "z", "y"};
    static const double t0[] = {1, 1, 1, 1}, t1[] = {0.25, 0.25, 0.25, 0.25};
    agg_problem A[2] = {{.p = 0, .n = 4, .correct = c0, .canonical = k0, .time_s = t0}, {.p = 1, .n = 4, .correct = c1, .canonical = k1, .time_s = t0}};
    agg_problem B[2] = {{.p = 0, .n = 4, .correct = c1, .canonical = k1, .time_s = t1}, {.p = 1, .n = 4, .correct = c1, .canonical = k1, .time_s = t1}};
    int k[] = {1, 2, 4};
    agg_stats sa, sb;
    char err[128];
    EXPECT_EQ_INT(aggregate_compute(A, 2, k, 3, 1, &sa, err, sizeof err), 0);
    EXPECT_EQ_INT(aggregate_compute(B, 2, k, 3, 1, &sb, err, sizeof err), 0);
    const agg_stats *jobs[2] = {&sa, &sb};
    const char *names[2] = {"teacher", "student"};
    util_buf o;
    util_buf_init(&o);
    EXPECT_EQ_INT(plot_svg_compare(jobs, names, 2, "cmp", &o, err, sizeof err), 0);
    EXPECT(strstr(o.data, "Coverage under a time budget") != NULL); /* both have times */
    EXPECT(strstr(o.data, "Weighted best-of-N") == NULL);            /* no rewards */
    EXPECT(count_str(o.data, "<clipPath") == 4);
    util_buf_free(&o);
    EXPECT_EQ_INT(plot_svg_compare(jobs, names, 0, "cmp", &o, err, sizeof err), -1);
    agg_stats_free(&sa);
    agg_stats_free(&sb);
}

int main(void) {
    RUN(small_job);
    RUN(partial_and_invalid);
    RUN(rewards_and_time);
    RUN(breakdowns_carry_bon_and_wbon);
    RUN(order_independent_and_replay);
    RUN(plot_svg);
    RUN(plot_compare);
    return unit_summary();
}
