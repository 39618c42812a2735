/* tests/unit/test_grade.c — graders: GSM8K number extraction, MATH boxed extraction and
 * normalisation, equivalence rules, canonical voting keys; and validation on the real data:
 * every MATH500 reference solution against its answer, every GSM8K test answer against its
 * `#### N` (both read from ../shared/data via unit_data_path; skipped when absent).
 */
#include "tests/unit/unit.h"

#include "workers/score/grade.h"
#include "workers/score/math_norm.h"
#include "workers/sample/replay.h"

#include <jansson.h>
#include <stdint.h>

static int gsm(const char *resp, const char *ref) { return grade_answer(GRADER_GSM8K, resp, ref, NULL, 0); }
static int mth(const char *resp, const char *ref) { return grade_answer(GRADER_MATH, resp, ref, NULL, 0); }
static int meq(const char *a, const char *b) { return grade_equiv(GRADER_MATH, a, b); }

TEST(parse_kind) {
    grader_kind k = GRADER_MATH;
    EXPECT_EQ_INT(grade_parse_kind("gsm8k", &k), 0);
    EXPECT_EQ_INT(k, GRADER_GSM8K);
    EXPECT_EQ_INT(grade_parse_kind("math", &k), 0);
    EXPECT_EQ_INT(k, GRADER_MATH);
    EXPECT_EQ_INT(grade_parse_kind("MATH500", &k), -1);
    EXPECT_EQ_STR(grade_kind_name(GRADER_GSM8K), "gsm8k");
}

TEST(gsm8k_extract) {
    char out[64];
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "so 9 * 2 = 18\n#### 18", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "18");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "The answer is $1,234.50 dollars.", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "1234.50");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "16 - 3 - 4 = 9 eggs, and 9*2=18", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "18");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "The temperature fell to -3 degrees", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "-3");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "5-3 = 2", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "2");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "We get \\boxed{42} in the end, step 3.", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "42");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "no digits here", out, sizeof out), -1);
    EXPECT_EQ_STR(out, "");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "lists 1, 2, 3", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "3");
    EXPECT_EQ_INT(grade_extract(GRADER_GSM8K, "#### 1,000,000", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "1000000");
}

TEST(gsm8k_grade) {
    EXPECT(gsm("#### 18", "18"));
    EXPECT(gsm("The answer is 18.00", "18"));
    EXPECT(gsm("she makes $18.", "18"));
    EXPECT(gsm("The answer is 18", "Janet sells 9 eggs.\n#### 18"));
    EXPECT(gsm("#### -7", "-7"));
    EXPECT(gsm("#### 0.50", ".5"));
    EXPECT(!gsm("#### 18", "180"));
    EXPECT(!gsm("#### 18.5", "18"));
    EXPECT(!gsm("#### -18", "18"));
    EXPECT(!gsm("nothing", "18"));
    EXPECT(!gsm("#### 18", "not a number"));
    EXPECT(!gsm("#### 18", ""));
    char ex[32];
    EXPECT_EQ_INT(grade_answer(GRADER_GSM8K, "It costs $1,250 in total", "1250", ex, sizeof ex), 1);
    EXPECT_EQ_STR(ex, "1250");
}

TEST(gsm8k_canonical) {
    char a[64], b[64];
    grade_canonical(GRADER_GSM8K, "18", a, sizeof a);
    grade_canonical(GRADER_GSM8K, "18.00", b, sizeof b);
    EXPECT_EQ_STR(a, b);
    grade_canonical(GRADER_GSM8K, "018.0", b, sizeof b);
    EXPECT_EQ_STR(a, b);
    grade_canonical(GRADER_GSM8K, "-0", b, sizeof b);
    EXPECT_EQ_STR(b, "0");
    grade_canonical(GRADER_GSM8K, "18.5", b, sizeof b);
    EXPECT(strcmp(a, b) != 0);
    grade_canonical(GRADER_GSM8K, "", b, sizeof b);
    EXPECT_EQ_STR(b, "");
}

TEST(math_boxed) {
    char out[256];
    EXPECT_EQ_INT(mathnorm_last_boxed("so $\\boxed{\\frac{1}{2}}$.", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "\\frac{1}{2}");
    EXPECT_EQ_INT(mathnorm_last_boxed("\\boxed{1} then \\boxed{\\{a,{b}\\}}", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "\\{a,{b}\\}");
    EXPECT_EQ_INT(mathnorm_last_boxed("answer $\\boxed 5$", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "5");
    EXPECT_EQ_INT(mathnorm_last_boxed("\\fbox{7}", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "7");
    EXPECT_EQ_INT(mathnorm_last_boxed("\\boxed{3} and then \\boxed{4", out, sizeof out), 0);
    EXPECT_EQ_STR(out, "3");
    EXPECT_EQ_INT(mathnorm_last_boxed("nothing boxed", out, sizeof out), -1);
    EXPECT_EQ_INT(mathnorm_last_boxed("\\boxed{", out, sizeof out), -1);
    EXPECT_EQ_INT(mathnorm_last_boxed("\\boxedx{1}", out, sizeof out), -1);
}

TEST(math_normalize) {
    static const char *const cases[][2] = {
        {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"},
        {"\\dfrac{14}{3}", "\\frac{14}{3}"},
        {"90^\\circ", "90"},
        {"50\\%", "50"},
        {"\\$18.50", "18.50"},
        {"10\\text{ inches}", "10"},
        {"5\\text{ cm}^2", "5"},
        {"\\text{Evelyn}", "Evelyn"},
        {"\\text{(C)}", "C"},
        {"x = 3", "3"},
        {"\\frac12", "\\frac{1}{2}"},
        {"\\sqrt2", "\\sqrt{2}"},
        {"1,000,000", "1000000"},
        {"3.", "3"},
        {".5", "0.5"},
        {"k \\le 3", "k\\leq3"},
        {"\\boxed{7}", "7"},
        {"1{,}000", "1000"},
        {"3\\!\\cdot\\!4", "3\\cdot4"},
        {"12 square feet", "12"},
        {"2, 3\\text{ and }5", "2,3,5"},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mathnorm_normalize(cases[i][0], out, sizeof out);
        EXPECT_MSG(strcmp(out, cases[i][1]) == 0, "normalize(%s) = %s, want %s", cases[i][0], out, cases[i][1]);
    }
}

TEST(math_grade_basic) {
    EXPECT(mth("Thus $\\boxed{\\dfrac{14}{3}}$.", "\\frac{14}{3}"));
    EXPECT(mth("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "\\left( 3, \\frac{\\pi}{2} \\right)"));
    EXPECT(mth("\\boxed{90^\\circ}", "90"));
    EXPECT(mth("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}"));
    EXPECT(!mth("\\boxed{\\frac{14}{5}}", "\\frac{14}{3}"));
    EXPECT(!mth("no box: 14/3", "\\frac{14}{3}"));
    char ex[64];
    EXPECT_EQ_INT(grade_answer(GRADER_MATH, "so \\boxed{3\\sqrt{13}}", "3\\sqrt{13}", ex, sizeof ex), 1);
    EXPECT_EQ_STR(ex, "3\\sqrt{13}");
}

TEST(math_canonical) {
    char a[128], b[128], c[128];
    grade_canonical(GRADER_MATH, "\\frac{1}{2}", a, sizeof a);
    grade_canonical(GRADER_MATH, "0.5", b, sizeof b);
    grade_canonical(GRADER_MATH, "\\dfrac12", c, sizeof c);
    EXPECT_EQ_STR(a, b);
    EXPECT_EQ_STR(a, c);
    grade_canonical(GRADER_MATH, "18", a, sizeof a);
    grade_canonical(GRADER_MATH, "18.00", b, sizeof b);
    EXPECT_EQ_STR(a, b);
    grade_canonical(GRADER_MATH, "x=18.0", c, sizeof c);
    EXPECT_EQ_STR(a, c);
    grade_canonical(GRADER_MATH, "19", c, sizeof c);
    EXPECT(strcmp(a, c) != 0);
    grade_canonical(GRADER_MATH, "(\\frac{1}{2}, 3)", a, sizeof a);
    grade_canonical(GRADER_MATH, "\\left(0.5,3.0\\right)", b, sizeof b);
    EXPECT_EQ_STR(a, b);
    grade_canonical(GRADER_MATH, "\\text{Evelyn}", a, sizeof a);
    EXPECT_EQ_STR(a, "Evelyn");
}

TEST(math_equiv_forms) {
    /* equivalent pairs (a, b) */
    static const char *const yes[][2] = {
        {"\\frac12", "0.5"}, {"1/2", "\\frac{1}{2}"}, {"\\dfrac{3}{4}", "0.75"}, {"2", "2.0"},
        {"\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"}, {"2\\pi", "\\pi\\cdot 2"},
        {"-\\frac{1}{3}", "\\frac{-1}{3}"}, {"x = 3", "3"}, {"1,000", "1000"}, {"1.5\\times10^{3}", "1500"},
        {"(1, 2)", "\\left(1,2\\right)"}, {"[0, \\frac12)", "[0,0.5)"}, {"1, 2, 3", "3, 2, 1"},
        {"\\{1,2\\}", "2,1"}, {"x < 3", "3 > x"}, {"x \\le 3", "x\\leq 3"},
        {"(-\\infty, 3] \\cup (5, \\infty)", "(-\\infty,3]\\cup(5,\\infty)"},
        {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2.0\\end{pmatrix}"},
        {"2x^2+3x", "3x+2x^2"}, {"p-q", "-q+p"}, {"3\\sqrt{13}", "\\sqrt{117}"}, {"2\\frac{1}{2}", "\\frac52"},
        {"\\text{Evelyn}", "Evelyn"}, {"10\\%", "10"}, {"\\$5.00", "5"}, {"y = 2x+3", "2x+3"},
        {"\\sqrt[3]{8}", "2"}, {"1.2e3", "1200"}, {"5!", "120"}, {"\\binom{5}{2}", "10"},
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        EXPECT_MSG(meq(yes[i][0], yes[i][1]), "[%s] == [%s]", yes[i][0], yes[i][1]);
        EXPECT_MSG(meq(yes[i][1], yes[i][0]), "[%s] == [%s] (swapped)", yes[i][1], yes[i][0]);
    }
    static const char *const no[][2] = {
        {"\\frac12", "0.51"}, {"1/3", "0.333"}, {"(1, 2)", "(2, 1)"}, {"[0, 1)", "[0, 1]"}, {"1, 2", "1, 2, 3"},
        {"x < 3", "x \\le 3"}, {"2x^2+3x", "2x^2+3"}, {"p-q", "q-p"}, {"\\sqrt{2}", "1.414"},
        {"1000000000000", "1000000000001"}, {"Evelyn", "Evenly"}, {"-3", "3"}, {"2\\pi", "6.28"},
        {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}"},
        {"(1,2)", "1,2"}, {"", ""}, {"3", ""},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        EXPECT_MSG(!meq(no[i][0], no[i][1]), "[%s] != [%s]", no[i][0], no[i][1]);
        EXPECT_MSG(!meq(no[i][1], no[i][0]), "[%s] != [%s] (swapped)", no[i][1], no[i][0]);
    }
}

/* Untrusted input never crashes and outputs stay bounded: random token soup and random bytes. */
TEST(fuzz_no_crash) {
    static const char *const tok[] = {"\\boxed{", "\\fbox{", "{", "}", "(", ")", "[", "]", "\\frac", "\\sqrt", "\\left",
        "\\right", "\\text{", "^", "_", "-", "+", "=", ",", "\\\\", "&", "\\begin{pmatrix}", "\\end{pmatrix}", "1", "23",
        "0.5", "x", "\\pi", "\\infty", "\\cup", "<", "\\le", "|", "!", "$", "%", "####", " ", "The answer is", "e5",
        "\\log_", "\\sin", "\\{", "\\}", "1,000", ".", "\\!", "\\,", "\xff", "\xc3", "99999999999999999999", "^{", "/"};
    uint64_t st = 12345;
    char buf[2048], ex[1100], cn[1100];
    int answered = 0;
    for (int it = 0; it < 20000; it++) {
        size_t o = 0;
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        int ntok = 1 + (int)((st >> 33) % 40);
        for (int t = 0; t < ntok; t++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *w = tok[(st >> 33) % (sizeof tok / sizeof tok[0])];
            size_t l = strlen(w);
            if (o + l >= sizeof buf - 1) break;
            memcpy(buf + o, w, l); o += l;
        }
        if (it % 4 == 3) for (size_t i = 0; i < o; i++) { st = st * 6364136223846793005ULL + 1; buf[i] = (char)((st >> 40) | 1); }
        buf[o] = 0;
        for (int g = 0; g < 2; g++) {
            grader_kind k = g ? GRADER_MATH : GRADER_GSM8K;
            int r = grade_answer(k, buf, buf, ex, sizeof ex);
            EXPECT(r == 0 || r == 1);
            EXPECT(strlen(ex) < sizeof ex);
            answered += r;
            EXPECT(grade_canonical(k, buf, cn, sizeof cn) <= 0);
            EXPECT(strlen(cn) < sizeof cn);
            grade_equiv(k, buf, "1");
        }
    }
    EXPECT(answered > 0);
    /* a long response: bounded work and a found answer */
    size_t n = 2000000;
    char *big = malloc(n + 32);
    for (size_t i = 0; i < n; i++) big[i] = "ab1 {(\\x"[i % 8];
    strcpy(big + n, "\\boxed{42}");
    EXPECT_EQ_INT(grade_answer(GRADER_MATH, big, "42", ex, sizeof ex), 1);
    EXPECT_EQ_INT(grade_answer(GRADER_GSM8K, big, "42", ex, sizeof ex), 1);
    /* many unbalanced boxes: still linear (a quadratic scan would take minutes here) */
    for (size_t i = 0; i + 7 < n; i += 7) memcpy(big + i, "\\boxed{", 7);
    big[n - n % 7] = 0;
    EXPECT_EQ_INT(grade_answer(GRADER_MATH, big, "42", ex, sizeof ex), 0);
    free(big);
}

/* ---- fixture tables ---- */

/* Runs every line of a TSV fixture (grader, answer, reference, note); want = 1 (must be right)
 * or 0 (must be wrong). Returns the number of pairs checked. */
static int run_pairs(const char *rel, int want) {
    char path[512];
    snprintf(path, sizeof path, "tests/fixtures/%s", rel);
    FILE *f = fopen(path, "r");
    EXPECT_MSG(f != NULL, "cannot open %s", path);
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, same_key = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, "\n")] = 0;
        char *cols[4] = {0};
        char *p = line;
        for (int c = 0; c < 4 && p; c++) { cols[c] = p; p = strchr(p, '\t'); if (p) *p++ = 0; }
        EXPECT_MSG(cols[3] != NULL, "%s:%d: expected 4 columns", rel, lineno);
        if (!cols[3]) continue;
        grader_kind k;
        EXPECT_MSG(grade_parse_kind(cols[0], &k) == 0, "%s:%d: grader %s", rel, lineno, cols[0]);
        /* the fixtures write a newline inside a cell as the two characters \n */
        char ref[512];
        size_t o = 0;
        for (const char *q = cols[2]; *q && o < sizeof ref - 1; q++) {
            if (q[0] == '\\' && q[1] == 'n' && k == GRADER_GSM8K) { ref[o++] = '\n'; q++; }
            else ref[o++] = *q;
        }
        ref[o] = 0;
        char resp[600], ex[600];
        if (k == GRADER_MATH) snprintf(resp, sizeof resp, "So the final answer is $\\boxed{%s}$.", cols[1]);
        else snprintf(resp, sizeof resp, "%s", cols[1]);
        int got = grade_answer(k, resp, ref, ex, sizeof ex);
        EXPECT_MSG(got == want, "%s:%d (%s): [%s] vs [%s]: got %d, want %d (extracted [%s])", rel, lineno, cols[3], cols[1], ref, got, want, ex);
        /* voting keys never merge answers the grader tells apart */
        char ka[1100], kb[1100];
        grade_canonical(k, ex, ka, sizeof ka);
        grade_canonical(k, k == GRADER_GSM8K ? ref : cols[2], kb, sizeof kb);
        if (k == GRADER_GSM8K) { char num[128]; if (grade_extract(k, ref, num, sizeof num) == 0) grade_canonical(k, num, kb, sizeof kb); }
        if (!want) EXPECT_MSG(!ka[0] || strcmp(ka, kb) != 0, "%s:%d (%s): near-miss answers share the voting key [%s]", rel, lineno, cols[3], ka);
        else if (ka[0] && strcmp(ka, kb) == 0) same_key++;
        if (k == GRADER_MATH) {
            int rev = grade_equiv(k, ref, cols[1]);
            EXPECT_MSG(rev == want, "%s:%d (%s) reversed: [%s] vs [%s]: got %d, want %d", rel, lineno, cols[3], ref, cols[1], rev, want);
        }
        n++;
    }
    free(line);
    fclose(f);
    if (want) printf("  %s: %d of %d equivalent pairs share one voting key\n", rel, same_key, n);
    return n;
}

TEST(nearmiss_table) {
    int n = run_pairs("grade_nearmiss.tsv", 0);
    EXPECT_MSG(n >= 200, "only %d near-miss pairs", n);
}

TEST(equivalent_table) {
    int n = run_pairs("grade_equiv.tsv", 1);
    EXPECT_MSG(n >= 80, "only %d equivalent pairs", n);
}

/* Voting keys are sound: answers that share a key are equivalent. The pool: every answer and
 * reference of both fixture tables plus every MATH500 reference answer (when the data is there). */
typedef struct keyed { char *ans; char key[1100]; } keyed;
static int cmp_keyed(const void *a, const void *b) { return strcmp(((const keyed *)a)->key, ((const keyed *)b)->key); }

static int pool_add(keyed **pool, int n, const char *ans) {
    *pool = realloc(*pool, sizeof(keyed) * (size_t)(n + 1));
    (*pool)[n].ans = strdup(ans);
    grade_canonical(GRADER_MATH, ans, (*pool)[n].key, sizeof (*pool)[n].key);
    return n + 1;
}

TEST(canonical_keys_sound) {
    keyed *pool = NULL;
    int n = 0;
    const char *files[2] = {"tests/fixtures/grade_nearmiss.tsv", "tests/fixtures/grade_equiv.tsv"};
    char *line = NULL;
    size_t cap = 0;
    for (int fi = 0; fi < 2; fi++) {
        FILE *f = fopen(files[fi], "r");
        if (!f) continue;
        while (getline(&line, &cap, f) > 0) {
            if (strncmp(line, "math\t", 5) != 0) continue;
            line[strcspn(line, "\n")] = 0;
            char *a = line + 5, *b = strchr(a, '\t');
            if (!b) continue;
            *b++ = 0;
            char *e = strchr(b, '\t');
            if (e) *e = 0;
            n = pool_add(&pool, n, a);
            n = pool_add(&pool, n, b);
        }
        fclose(f);
    }
    FILE *f = fopen(unit_data_path("math500/test.jsonl"), "r");
    if (f) {
        while (getline(&line, &cap, f) > 0) {
            json_error_t je;
            json_t *o = json_loads(line, 0, &je);
            const char *ans = o ? json_string_value(json_object_get(o, "answer")) : NULL;
            if (ans) n = pool_add(&pool, n, ans);
            json_decref(o);
        }
        fclose(f);
    }
    free(line);
    EXPECT(n > 400);
    qsort(pool, (size_t)n, sizeof(keyed), cmp_keyed);
    int checked = 0;
    for (int i = 0; i < n; i++) {
        if (!pool[i].key[0]) continue;
        for (int j = i + 1; j < n && strcmp(pool[i].key, pool[j].key) == 0; j++) {
            checked++;
            EXPECT_MSG(grade_equiv(GRADER_MATH, pool[i].ans, pool[j].ans), "[%s] and [%s] share key [%s] but are not equivalent",
                       pool[i].ans, pool[j].ans, pool[i].key);
        }
    }
    EXPECT(checked > 50);
    for (int i = 0; i < n; i++) free(pool[i].ans);
    free(pool);
}

/* The replay backend's calibration depends on the graders: every corrupted sample (reference
 * solution with its final answer changed) must grade wrong and every clean one right, on the
 * real MATH500 and GSM8K test sets, so that pass@k = 1 - corrupt^k holds end to end. */
TEST(replay_calibration) {
    const char *files[2] = {"math500/test.jsonl", "gsm8k/test.jsonl"};
    for (int fi = 0; fi < 2; fi++) {
        FILE *f = fopen(unit_data_path(files[fi]), "r");
        if (!f) { unit_skip("shared data not found"); return; }
        grader_kind k = fi ? GRADER_GSM8K : GRADER_MATH;
        char *line = NULL;
        size_t cap = 0;
        int p = 0, n = 0, wrong_ok = 0, clean_ok = 0;
        while (getline(&line, &cap, f) > 0) {
            json_error_t je;
            json_t *o = json_loads(line, 0, &je);
            const char *sol = o ? json_string_value(json_object_get(o, fi ? "answer" : "solution")) : NULL;
            const char *ans = o ? json_string_value(json_object_get(o, "answer")) : NULL;
            if (!sol || !ans) { json_decref(o); continue; }
            char ref[512];
            const char *h = fi ? strstr(ans, "#### ") : NULL;
            snprintf(ref, sizeof ref, "%s", h ? h + 5 : ans);
            for (int smp = 0; smp < 4; smp++) {
                util_buf b;
                util_buf_init(&b);
                replay_render(sol, ref, 1, 11, p, smp, &b);
                char ex[1100];
                int c = grade_answer(k, b.data, ref, ex, sizeof ex);
                if (!c) wrong_ok++;
                else EXPECT_MSG(0, "%s #%d sample %d: corrupted answer [%s] graded correct against [%s]", files[fi], p, smp, ex, ref);
                util_buf_free(&b);
                n++;
            }
            util_buf b;
            util_buf_init(&b);
            replay_render(sol, ref, 0, 11, p, 0, &b);
            clean_ok += grade_answer(k, b.data, ref, NULL, 0);
            util_buf_free(&b);
            p++;
            json_decref(o);
        }
        free(line);
        fclose(f);
        EXPECT_EQ_INT(wrong_ok, n);
        EXPECT_EQ_INT(clean_ok, p);
        EXPECT(p >= 500);
    }
}

/* ---- real data ---- */

TEST(math500_solutions) {
    FILE *f = fopen(unit_data_path("math500/test.jsonl"), "r");
    if (!f) { unit_skip("math500/test.jsonl not found"); return; }
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok = 0, shown = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        const char *sol = json_string_value(json_object_get(o, "solution"));
        const char *ans = json_string_value(json_object_get(o, "answer"));
        n++;
        char ex[1100];
        if (sol && ans && grade_answer(GRADER_MATH, sol, ans, ex, sizeof ex)) ok++;
        else if (shown++ < 20) printf("  math500 #%d: extracted [%s] vs answer [%s]\n", n, ex, ans ? ans : "?");
        json_decref(o);
    }
    free(line);
    fclose(f);
    EXPECT_EQ_INT(n, 500);
    EXPECT_EQ_INT(ok, n);
}

TEST(gsm8k_answers) {
    FILE *f = fopen(unit_data_path("gsm8k/test.jsonl"), "r");
    if (!f) { unit_skip("gsm8k/test.jsonl not found"); return; }
    char *line = NULL;
    size_t cap = 0;
    int n = 0, ok = 0, shown = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        const char *a = json_string_value(json_object_get(o, "answer"));
        n++;
        const char *h = a ? strstr(a, "#### ") : NULL;
        char ref[64] = "";
        if (h) snprintf(ref, sizeof ref, "%s", h + 5);
        char ex[128];
        if (a && h && grade_answer(GRADER_GSM8K, a, ref, ex, sizeof ex)) ok++;
        else if (shown++ < 20) printf("  gsm8k #%d: extracted [%s] vs [%s]\n", n, ex, ref);
        json_decref(o);
    }
    free(line);
    fclose(f);
    EXPECT_EQ_INT(n, 1319);
    EXPECT_EQ_INT(ok, n);
}

int main(void) {
    RUN(parse_kind);
    RUN(gsm8k_extract);
    RUN(gsm8k_grade);
    RUN(gsm8k_canonical);
    RUN(math_boxed);
    RUN(math_normalize);
    RUN(math_grade_basic);
    RUN(math_canonical);
    RUN(math_equiv_forms);
    RUN(fuzz_no_crash);
    RUN(nearmiss_table);
    RUN(equivalent_table);
    RUN(canonical_keys_sound);
    RUN(math500_solutions);
    RUN(replay_calibration);
    RUN(gsm8k_answers);
    return unit_summary();
}
