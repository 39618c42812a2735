/* tests/unit/test_replay.c — the replay sampling backend: determinism, corrupt rate, pass@k
 * closed form, wrong-answer rendering for GSM8K and MATH styles, max_tokens and stop strings. */
#include "workers/sample/replay.h"
#include "workers/sample/sample_backend.h"
#include "tests/unit/unit.h"

typedef struct collect { int n; char texts[64][512]; int tokens[64]; char finish[64][8]; int samples[64]; } collect;

static int collect_emit(void *ud, const sample_output *o) {
    collect *c = ud;
    if (c->n >= 64) return 1;
    snprintf(c->texts[c->n], sizeof c->texts[0], "%s", o->text);
    c->tokens[c->n] = o->tokens;
    c->samples[c->n] = o->sample;
    snprintf(c->finish[c->n], sizeof c->finish[0], "%s", o->finish);
    c->n++;
    return 0;
}

static const char *GSM_SOL = "Tom has 3 apples and buys 4 more.\n3 + 4 = <<3+4=7>>7\n#### 7";

TEST(deterministic_and_exact_count) {
    char err[256];
    sample_backend *b = sample_backend_replay_new(0.5, err, sizeof err);
    EXPECT(b != NULL);
    sample_item it[2] = {{.problem = 3, .id = "a", .question = "q", .solution = GSM_SOL, .answer = "7"},
                         {.problem = 9, .id = "b", .question = "q", .solution = GSM_SOL, .answer = "7"}};
    sample_params p = {.n = 8, .seed = 42, .max_tokens = 0};
    static collect c1, c2;
    memset(&c1, 0, sizeof c1); memset(&c2, 0, sizeof c2);
    EXPECT(b->run(b, it, 2, &p, collect_emit, &c1, err, sizeof err) == 0);
    EXPECT(b->run(b, it, 2, &p, collect_emit, &c2, err, sizeof err) == 0);
    EXPECT_EQ_INT(c1.n, 16);
    int same = 1, n_wrong = 0;
    for (int i = 0; i < c1.n; i++) {
        if (strcmp(c1.texts[i], c2.texts[i]) != 0) same = 0;
        if (!strstr(c1.texts[i], "#### 7")) n_wrong++;
        EXPECT_EQ_INT(c1.samples[i], i % 8);
        EXPECT(c1.tokens[i] > 5);
        EXPECT_EQ_STR(c1.finish[i], "stop");
    }
    EXPECT(same);
    EXPECT(n_wrong > 0 && n_wrong < 16);
    /* chunking must not matter: problem 9 alone gives the same texts as in the pair */
    static collect c3;
    memset(&c3, 0, sizeof c3);
    EXPECT(b->run(b, it + 1, 1, &p, collect_emit, &c3, err, sizeof err) == 0);
    for (int i = 0; i < 8; i++) EXPECT_EQ_STR(c3.texts[i], c1.texts[8 + i]);
    b->destroy(&b);
    EXPECT(b == NULL);
}

TEST(bad_corrupt_rejected) {
    char err[256] = "";
    EXPECT(sample_backend_replay_new(1.5, err, sizeof err) == NULL);
    EXPECT(strstr(err, "corrupt") != NULL);
    EXPECT(sample_backend_replay_new(NAN, err, sizeof err) == NULL);
}

TEST(corrupt_rate_and_pass_at_k) {
    const double corrupt = 0.3;
    const int P = 4000, N = 8;
    long wrong = 0;
    double pass2 = 0, pass4 = 0;
    for (int p = 0; p < P; p++) {
        int w = 0;
        int first[4];
        for (int s = 0; s < N; s++) {
            int bad = replay_is_corrupt(7, p, s, corrupt);
            w += bad;
            if (s < 4) first[s] = bad;
        }
        wrong += w;
        pass2 += !(first[0] && first[1]);
        pass4 += !(first[0] && first[1] && first[2] && first[3]);
    }
    double rate = (double)wrong / (P * N);
    EXPECT_NEAR(rate, corrupt, 0.015);
    EXPECT_NEAR(pass2 / P, 1 - corrupt * corrupt, 0.02);
    EXPECT_NEAR(pass4 / P, 1 - pow(corrupt, 4), 0.01);
    EXPECT(replay_is_corrupt(7, 1, 1, 0.0) == 0);
    EXPECT(replay_is_corrupt(7, 1, 1, 1.0) == 1);
    /* different seeds give different patterns */
    int diff = 0;
    for (int p = 0; p < 200; p++) diff += replay_is_corrupt(1, p, 0, 0.5) != replay_is_corrupt(2, p, 0, 0.5);
    EXPECT(diff > 50);
}

TEST(wrong_answer_differs) {
    const char *answers[] = {"7", "0", "-3", "1,234", "3.50", "$18", "12345678901234567890", "\\frac{1}{2}", ""};
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        for (int s = 0; s < 20; s++) {
            util_buf b;
            util_buf_init(&b);
            replay_wrong_answer(answers[i], 5, (int)i, s, &b);
            EXPECT(b.len > 0);
            EXPECT_MSG(strcmp(b.data, answers[i]) != 0, "%s -> %s", answers[i], b.data);
            util_buf_free(&b);
        }
    }
    util_buf b;
    util_buf_init(&b);
    replay_wrong_answer("1,234", 5, 0, 0, &b);
    EXPECT(strchr(b.data, ',') == NULL);
    long v = strtol(b.data, NULL, 10);
    EXPECT(v != 1234 && labs(v - 1234) <= 9);
    util_buf_free(&b);
    util_buf_init(&b);
    replay_wrong_answer("0", 5, 0, 0, &b);
    EXPECT(strtol(b.data, NULL, 10) > 0); /* non-negative stays non-negative */
    util_buf_free(&b);
}

TEST(render_gsm8k_and_math) {
    util_buf b;
    util_buf_init(&b);
    replay_render(GSM_SOL, "7", 0, 1, 0, 0, &b);
    EXPECT_EQ_STR(b.data, GSM_SOL);
    util_buf_free(&b);
    util_buf_init(&b);
    replay_render(GSM_SOL, "7", 1, 1, 0, 0, &b);
    EXPECT(strncmp(b.data, GSM_SOL, strlen(GSM_SOL) - 1) == 0); /* everything up to the answer kept */
    EXPECT(strstr(b.data, "#### ") != NULL && strcmp(strstr(b.data, "#### ") + 5, "7") != 0);
    util_buf_free(&b);
    const char *msol = "We get $x = \\frac{1}{2}$, so the answer is $\\boxed{\\frac{1}{2}}$.";
    util_buf_init(&b);
    replay_render(msol, "\\frac{1}{2}", 1, 1, 0, 0, &b);
    EXPECT(strstr(b.data, "\\boxed{\\frac{1}{2}+") != NULL);
    EXPECT(strstr(b.data, "}$.") != NULL);
    util_buf_free(&b);
    util_buf_init(&b);
    replay_render(NULL, "42", 0, 1, 0, 0, &b);
    EXPECT(strstr(b.data, "\\boxed{42}") && strstr(b.data, "#### 42"));
    util_buf_free(&b);
}

TEST(max_tokens_and_stop) {
    char err[256];
    sample_backend *b = sample_backend_replay_new(0.0, err, sizeof err);
    sample_item it = {.problem = 0, .solution = GSM_SOL, .answer = "7"};
    sample_params p = {.n = 1, .seed = 1, .max_tokens = 3};
    static collect c;
    memset(&c, 0, sizeof c);
    EXPECT(b->run(b, &it, 1, &p, collect_emit, &c, err, sizeof err) == 0);
    EXPECT_EQ_STR(c.texts[0], "Tom has 3");
    EXPECT_EQ_STR(c.finish[0], "length");
    EXPECT_EQ_INT(c.tokens[0], 3);
    memset(&c, 0, sizeof c);
    p.max_tokens = 1000;
    p.stop[0] = "\n";
    p.n_stop = 1;
    EXPECT(b->run(b, &it, 1, &p, collect_emit, &c, err, sizeof err) == 0);
    EXPECT_EQ_STR(c.texts[0], "Tom has 3 apples and buys 4 more.");
    EXPECT_EQ_STR(c.finish[0], "stop");
    p.n = 0;
    EXPECT(b->run(b, &it, 1, &p, collect_emit, &c, err, sizeof err) == -1);
    b->destroy(&b);
}

int main(void) {
    RUN(deterministic_and_exact_count);
    RUN(bad_corrupt_rejected);
    RUN(corrupt_rate_and_pass_at_k);
    RUN(wrong_answer_differs);
    RUN(render_gsm8k_and_math);
    RUN(max_tokens_and_stop);
    return unit_summary();
}
