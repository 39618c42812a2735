/* tests/unit/test_synth.c — the built-in problem generator: every solution line's arithmetic
 * recomputed from the text by an independent evaluator, operands traced to the question or to
 * earlier lines, determinism (and a pinned hash), and the JSONL round trip through the GSM8K
 * reader and `jobctl gen-data`. */
#include "jobs/dataset.h"
#include "jobs/synth.h"
#include "tools/gendata.h"
#include "tests/unit/unit.h"

#include <ctype.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];
static int verify_quiet; /* the checker's own test expects failures: keep them off the log */
#define printf(...) (verify_quiet ? 0 : printf(__VA_ARGS__))

/* ---- a tiny expression evaluator: + - * / with precedence, '$' ignored, doubles ---- */
typedef struct ev {
    const char *p;
    int bad;
    double nums[32];
    int n_nums;
} ev;

static void ev_ws(ev *e) { while (*e->p == ' ' || *e->p == '$') e->p++; }
static double ev_atom(ev *e) {
    ev_ws(e);
    if (!isdigit((unsigned char)*e->p)) { e->bad = 1; return 0; }
    double x = 0;
    while (isdigit((unsigned char)*e->p)) x = x * 10 + (*e->p++ - '0');
    if (e->n_nums < 32) e->nums[e->n_nums++] = x;
    return x;
}
static double ev_term(ev *e) {
    double x = ev_atom(e);
    for (;;) {
        ev_ws(e);
        if (*e->p == '*') { e->p++; x *= ev_atom(e); }
        else if (*e->p == '/') { e->p++; double y = ev_atom(e); if (y == 0) e->bad = 1; else x /= y; }
        else return x;
    }
}
static double ev_expr(ev *e) {
    double x = ev_term(e);
    for (;;) {
        ev_ws(e);
        if (*e->p == '+') { e->p++; x += ev_term(e); }
        else if (*e->p == '-') { e->p++; x -= ev_term(e); }
        else return x;
    }
}

static int in_set(const double *set, int n, double x) {
    for (int i = 0; i < n; i++)
        if (set[i] == x) return 1;
    return 0;
}

/* Checks one problem; returns 0 or -1 after printing why. */
static int verify(const job_problem *p, int steps_min, int steps_max) {
    double known[512];
    int n_known = 0;
    double consts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 60, 100};
    /* numbers stated in the question */
    for (const char *q = p->question; *q;) {
        if (isdigit((unsigned char)*q)) {
            double x = 0;
            while (isdigit((unsigned char)*q)) x = x * 10 + (*q++ - '0');
            if (n_known < 512) known[n_known++] = x;
        } else q++;
    }
    int n_q = n_known;
    double results[64];
    int n_res = 0, lines = 0;
    char line[1024];
    const char *s = p->solution;
    long long final = -1;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        if (len >= sizeof line) { printf("  %s: line too long\n", p->id); return -1; }
        memcpy(line, s, len);
        line[len] = 0;
        s += len + (nl ? 1 : 0);
        if (!strncmp(line, "#### ", 5)) {
            final = strtoll(line + 5, NULL, 10);
            if (*s) { printf("  %s: text after ####\n", p->id); return -1; }
            break;
        }
        lines++;
        char *eq = strstr(line, " = ");
        if (!eq || strstr(eq + 3, " = ")) { printf("  %s: not one '=' in \"%s\"\n", p->id, line); return -1; }
        /* the expression is the run of [0-9 +-*\/$] just before " = " */
        char *b = eq;
        while (b > line && strchr("0123456789 +-*/$", b[-1])) b--;
        while (*b == ' ') b++;
        *eq = 0;
        ev e = {b, 0, {0}, 0};
        double val = ev_expr(&e);
        ev_ws(&e);
        if (e.bad || *e.p || e.n_nums < 2) { printf("  %s: bad expression \"%s\"\n", p->id, b); return -1; }
        const char *r = eq + 3;
        if (*r == '$') r++;
        if (!isdigit((unsigned char)*r)) { printf("  %s: no result in \"%s\"\n", p->id, line); return -1; }
        double res = (double)strtoll(r, NULL, 10);
        if (val != res) { printf("  %s: %s = %.17g, text says %.0f\n", p->id, b, val, res); return -1; }
        for (int i = 0; i < e.n_nums; i++)
            if (!in_set(known, n_known, e.nums[i]) && !in_set(consts, 14, e.nums[i])) {
                printf("  %s: operand %.0f in \"%s\" is neither given nor computed\n", p->id, e.nums[i], b);
                return -1;
            }
        if (n_known < 512) known[n_known++] = res;
        if (n_res < 64) results[n_res++] = res;
        /* every earlier result is used by some later line: checked below via operands */
    }
    (void)n_q;
    if (final < 0) { printf("  %s: no '#### N' or negative answer\n", p->id); return -1; }
    if (n_res == 0 || results[n_res - 1] != (double)final) {
        printf("  %s: last line's result is not the final answer %lld\n", p->id, final);
        return -1;
    }
    char a[32];
    snprintf(a, sizeof a, "%lld", final);
    if (strcmp(a, p->answer) != 0) { printf("  %s: answer %s != #### %s\n", p->id, p->answer, a); return -1; }
    if (lines < steps_min || lines > steps_max || lines != p->level) {
        printf("  %s: %d lines, level %d, range [%d, %d]\n", p->id, lines, p->level, steps_min, steps_max);
        return -1;
    }
    size_t ql = strlen(p->question);
    if (ql < 2 || p->question[ql - 1] != '?') { printf("  %s: question does not end with '?'\n", p->id); return -1; }
    for (const char *c = p->question; *c; c++)
        if ((unsigned char)*c >= 0x80 || (*c < 0x20)) { printf("  %s: non-ASCII or control char\n", p->id); return -1; }
    return 0;
}

TEST(arithmetic_verified_for_thousands) {
    struct { int lo, hi, nlo, nhi; uint64_t seed; int n; } cases[] = {
        {2, 6, 2, 100, 1, 3000}, {1, 1, 2, 100, 2, 500}, {1, 12, 2, 100, 3, 2000},
        {8, 12, 2, 100, 4, 1000}, {2, 6, 100, 5000, 5, 1000}, {3, 5, 1, 9, 6, 1000},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        synth_params p = {cases[c].n, cases[c].seed, cases[c].lo, cases[c].hi, cases[c].nlo, cases[c].nhi};
        job_dataset d;
        EXPECT(synth_generate(&p, &d, err, sizeof err) == 0);
        EXPECT_EQ_INT(d.n, p.n);
        int bad = 0, hist[SYNTH_MAX_STEPS + 1] = {0};
        for (int i = 0; i < d.n && bad < 5; i++) {
            if (verify(&d.items[i], p.steps_min, p.steps_max) != 0) {
                bad++;
                printf("  question: %s\n  solution:\n%s\n", d.items[i].question, d.items[i].solution);
            }
            if (d.items[i].level >= 0 && d.items[i].level <= SYNTH_MAX_STEPS) hist[d.items[i].level]++;
        }
        EXPECT_EQ_INT(bad, 0);
        /* every step count of the range occurs */
        for (int k = p.steps_min; k <= p.steps_max; k++) EXPECT_MSG(hist[k] > 0, "case %zu: no %d-step problem", c, k);
        job_dataset_free(&d);
    }
}

/* The checker itself must catch broken problems (or the test above proves nothing). */
TEST(verifier_catches_errors) {
    job_problem ok = {"t", "Ann has 3 boxes with 4 pens each. How many pens?",
                      "Ann has 3 * 4 = 12 pens.\n#### 12", "12", "", 1};
    EXPECT_EQ_INT(verify(&ok, 1, 1), 0);
    verify_quiet = 1;
    job_problem wrong = ok, unknown = ok, final = ok, steps = ok, answer = ok;
    wrong.solution = "Ann has 3 * 4 = 13 pens.\n#### 13";
    wrong.answer = "13";
    EXPECT_EQ_INT(verify(&wrong, 1, 1), -1);
    unknown.solution = "Ann has 3 * 44 = 132 pens.\n#### 132";
    unknown.answer = "132";
    EXPECT_EQ_INT(verify(&unknown, 1, 1), -1);
    final.solution = "Ann has 3 * 4 = 12 pens.\n#### 11";
    EXPECT_EQ_INT(verify(&final, 1, 1), -1);
    steps.level = 2;
    EXPECT_EQ_INT(verify(&steps, 1, 2), -1);
    answer.answer = "11";
    EXPECT_EQ_INT(verify(&answer, 1, 1), -1);
    verify_quiet = 0;
}

/* Results of every line but the last are used later (no dead computations). */
TEST(every_result_is_used) {
    synth_params p;
    synth_params_default(&p);
    p.n = 1000;
    p.steps_max = 10;
    job_dataset d;
    EXPECT(synth_generate(&p, &d, err, sizeof err) == 0);
    int bad = 0;
    for (int i = 0; i < d.n && bad < 3; i++) {
        /* collect "= R" results and the text after each */
        const char *s = d.items[i].solution;
        const char *eq;
        while ((eq = strstr(s, " = ")) != NULL) {
            const char *r = eq + 3;
            if (*r == '$') r++;
            long long res = strtoll(r, NULL, 10);
            const char *next = strchr(eq, '\n');
            if (!next || !strncmp(next + 1, "#### ", 5)) break;
            /* the value must appear as a whole number in a later expression */
            char needle[32];
            int found = 0;
            snprintf(needle, sizeof needle, "%lld", res);
            for (const char *q = next; (q = strstr(q, needle)) != NULL; q++)
                if (!isdigit((unsigned char)q[-1]) && !isdigit((unsigned char)q[strlen(needle)])) found = 1;
            if (!found) {
                printf("  %s: result %lld unused\n%s\n", d.items[i].id, res, d.items[i].solution);
                bad++;
                break;
            }
            s = next;
        }
    }
    EXPECT_EQ_INT(bad, 0);
    job_dataset_free(&d);
}

static uint64_t fnv1a(const char *s, uint64_t h) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

TEST(deterministic_and_prefix_stable) {
    synth_params p;
    synth_params_default(&p);
    p.n = 300;
    job_dataset a, b, c, e;
    EXPECT(synth_generate(&p, &a, err, sizeof err) == 0);
    EXPECT(synth_generate(&p, &b, err, sizeof err) == 0);
    p.n = 100;
    EXPECT(synth_generate(&p, &c, err, sizeof err) == 0);
    p.n = 300;
    p.seed = 2;
    EXPECT(synth_generate(&p, &e, err, sizeof err) == 0);
    int same = 1, prefix = 1, differ = 0;
    for (int i = 0; i < 300; i++) {
        if (strcmp(a.items[i].question, b.items[i].question) || strcmp(a.items[i].solution, b.items[i].solution))
            same = 0;
        if (i < 100 && (strcmp(a.items[i].question, c.items[i].question) || strcmp(a.items[i].answer, c.items[i].answer)))
            prefix = 0;
        if (strcmp(a.items[i].question, e.items[i].question)) differ++;
    }
    EXPECT(same);
    EXPECT(prefix);
    EXPECT(differ > 290);
    /* distinct problems within a set */
    int dups = 0;
    for (int i = 0; i < 300; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(a.items[i].question, a.items[j].question)) dups++;
    EXPECT_EQ_INT(dups, 0);
    job_dataset_free(&a);
    job_dataset_free(&b);
    job_dataset_free(&c);
    job_dataset_free(&e);
}

/* Pinned output: the same seed must give the same bytes on every machine and every build.
 * If you change the generator on purpose, datasets of earlier experiments change with it:
 * update this hash deliberately and say so in the change. */
TEST(pinned_hash) {
    synth_params p;
    synth_params_default(&p);
    p.n = 1000;
    job_dataset d;
    EXPECT(synth_generate(&p, &d, err, sizeof err) == 0);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < d.n; i++) {
        h = fnv1a(d.items[i].question, h);
        h = fnv1a(d.items[i].solution, h);
    }
    printf("synth seed 1 n 1000 fnv1a = %016llx\n", (unsigned long long)h);
    EXPECT_EQ_INT((long long)h, (long long)0x0bb70b9950a7ad33ULL);
    job_dataset_free(&d);
}

TEST(variety) {
    synth_params p;
    synth_params_default(&p);
    p.n = 2000;
    job_dataset d;
    EXPECT(synth_generate(&p, &d, err, sizeof err) == 0);
    /* distinct opening words (names) and distinct final-question templates */
    char firsts[256][16];
    int nf = 0;
    const char *markers[] = {"have left?", "earn", "spend", "miles", "minutes", "each", "buy",
                             "pay", "change", "hours", "keep", "save"};
    int seen[12] = {0};
    for (int i = 0; i < d.n; i++) {
        char w[16] = {0};
        sscanf(d.items[i].question, "%15[A-Za-z]", w);
        int found = 0;
        for (int k = 0; k < nf; k++)
            if (!strcmp(firsts[k], w)) found = 1;
        if (!found && nf < 256) strcpy(firsts[nf++], w);
        const char *lastq = strrchr(d.items[i].question, '.');
        for (int k = 0; k < 12; k++)
            if (lastq && strstr(lastq, markers[k])) seen[k]++;
    }
    EXPECT_MSG(nf >= 40, "only %d distinct opening words", nf);
    for (int k = 0; k < 12; k++) EXPECT_MSG(seen[k] > 5, "question kind \"%s\" seen %d times", markers[k], seen[k]);
    job_dataset_free(&d);
}

TEST(jsonl_reads_back_through_gsm8k_reader) {
    synth_params p;
    synth_params_default(&p);
    p.n = 400;
    p.steps_max = 9;
    job_dataset d, r;
    EXPECT(synth_generate(&p, &d, err, sizeof err) == 0);
    char path[] = "/tmp/thinkfast-synth-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    EXPECT(synth_write_jsonl(&d, f) == 0);
    fclose(f);
    EXPECT(job_dataset_read_file(path, "gsm8k", 0, &r, err, sizeof err) == 0);
    EXPECT_EQ_INT(r.n, d.n);
    for (int i = 0; i < d.n && i < r.n; i++) {
        EXPECT_EQ_STR(r.items[i].question, d.items[i].question);
        EXPECT_EQ_STR(r.items[i].answer, d.items[i].answer);
        EXPECT_EQ_STR(r.items[i].solution, d.items[i].solution);
    }
    job_dataset_free(&r);

    /* gen-data writes the same bytes */
    char outp[] = "/tmp/thinkfast-gendata-XXXXXX";
    close(mkstemp(outp));
    char *argv[] = {"gen-data", "synth", "--n", "400", "--seed", "1", "--steps", "2,9", "--out", outp, NULL};
    EXPECT_EQ_INT(gendata_main(10, argv), 0);
    size_t n1 = 0, n2 = 0;
    char *a = util_read_file(path, &n1, err, sizeof err), *b = util_read_file(outp, &n2, err, sizeof err);
    EXPECT(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    unlink(path);
    unlink(outp);
    job_dataset_free(&d);
}

/* Runs gendata_main with stderr silenced (its usage text would clutter the test log). */
static int gendata_quiet(int argc, char **argv) {
    fflush(stderr);
    int saved = dup(2), devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    int rc = gendata_main(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(devnull);
    return rc;
}

TEST(gendata_rejects_bad_arguments) {
    char *a1[] = {"gen-data", "synth", "--n", "-5", NULL};
    char *a2[] = {"gen-data", "synth", "--steps", "6,2", NULL};
    char *a3[] = {"gen-data", "synth", "--bogus", "1", NULL};
    char *a4[] = {"gen-data", "gsm8k", NULL};
    char *a5[] = {"gen-data", "synth", "--seed", NULL};
    char *a6[] = {"gen-data", "synth", "--numbers", "5,5", NULL};
    char *a7[] = {"gen-data", "synth", "--out", "/nonexistent-dir/x.jsonl", "--n", "2", NULL};
    EXPECT_EQ_INT(gendata_quiet(4, a1), 2);
    EXPECT_EQ_INT(gendata_quiet(4, a2), 2);
    EXPECT_EQ_INT(gendata_quiet(4, a3), 2);
    EXPECT_EQ_INT(gendata_quiet(2, a4), 2);
    EXPECT_EQ_INT(gendata_quiet(3, a5), 2);
    EXPECT_EQ_INT(gendata_quiet(4, a6), 2);
    EXPECT_EQ_INT(gendata_quiet(6, a7), 1);
    /* a device is written in place, never replaced by a renamed temp file */
    char *a8[] = {"gen-data", "synth", "--n", "50", "--out", "/dev/null", NULL};
    EXPECT_EQ_INT(gendata_quiet(6, a8), 0);
    struct stat st;
    EXPECT(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
}

TEST(params_checked) {
    synth_params p;
    synth_params_default(&p);
    p.steps_min = 0;
    job_dataset d;
    EXPECT(synth_generate(&p, &d, err, sizeof err) == -1);
    EXPECT(strstr(err, "steps") != NULL);
    synth_params_default(&p);
    p.steps_max = SYNTH_MAX_STEPS + 1;
    EXPECT(synth_params_check(&p, err, sizeof err) == -1);
    synth_params_default(&p);
    p.num_min = 50;
    p.num_max = 50;
    EXPECT(synth_params_check(&p, err, sizeof err) == -1);
    EXPECT(strstr(err, "numbers") != NULL);
}

int main(void) {
    RUN(verifier_catches_errors);
    RUN(arithmetic_verified_for_thousands);
    RUN(every_result_is_used);
    RUN(deterministic_and_prefix_stable);
    RUN(pinned_hash);
    RUN(variety);
    RUN(jsonl_reads_back_through_gsm8k_reader);
    RUN(gendata_rejects_bad_arguments);
    RUN(params_checked);
    return unit_summary();
}
