/* tests/unit/test_compare.c — the report commands (tools/jobctl_report.h) on stores built here
 * with the store API: k-list parsing, RFC 4180 fields, loading a job, `compare --json` against
 * values counted independently from the fixture (coverage@1, coverage@n, per-subject and
 * per-level coverage, the time axis), the SVG figure, `export --format csv`, and `rescore`
 * (fixes a deliberately wrong stored score, leaves correct ones alone, keeps rewards, refuses
 * while another process holds the store's writer lock).
 */
#include "unit.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/spec.h"
#include "store/store.h"
#include "tools/jobctl_report.h"
#include "workers/score/grade.h"
#include "workers/wrk_roles.h"

static char *tmpdir(void) {
    char tmpl[] = "/tmp/tf_compare_XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? xstrdup(d) : NULL;
}

static void rmrf(const char *d) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "rm failed\n");
}

/* Runs a command with stdout captured; returns the output (caller frees). */
static char *capture(int (*fn)(const jobctl_opts *, int, char **), int argc, char **argv, int *rc) {
    fflush(stdout);
    int saved = dup(1);
    FILE *tmp = tmpfile();
    dup2(fileno(tmp), 1);
    jobctl_opts o = {JOBCTL_DEFAULT_BROKER, 1000};
    *rc = fn(&o, argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    long n = ftell(tmp);
    if (n < 0) n = 0;
    char *buf = xmalloc((size_t)n + 1);
    rewind(tmp);
    size_t got = fread(buf, 1, (size_t)n, tmp);
    buf[got] = 0;
    fclose(tmp);
    return buf;
}

/* ---- fixture: jobs of P problems x N samples; sample (p, s) is correct when correct_fn says so ---- */

#define FX_P 6
#define FX_N 4

typedef int (*correct_fn)(int p, int s);
static int good_correct(int p, int s) { return s < (p % 3) + 2; }          /* 2..4 of 4 correct */
static int bad_correct(int p, int s) { return p % 2 == 0 && s == 0; }      /* 1 of 4 on even problems */
static const char *fx_subject(int p) { return p % 2 ? "Geometry" : "Algebra"; }
static int fx_level(int p) { return 1 + p % 3; }

/* Writes job `id` named `name`; wrong samples answer 999 (a distinct wrong answer per sample
 * for s odd so that majority has something to do). stored_flip: (p, s) whose stored score is
 * deliberately the opposite of its text's grade (-1: none). */
static void fx_job(store *st, uint64_t id, const char *name, correct_fn fn, double time_s, int flip_p, int flip_s,
                   double reward_base) {
    char err[512], spec_text[512];
    snprintf(spec_text, sizeof spec_text,
             "{\"kind\":\"sample\",\"name\":\"%s\",\"model\":{\"backend\":\"replay\"},"
             "\"dataset\":{\"format\":\"synth\",\"n\":%d},\"sampling\":{\"n\":%d,\"seed\":7},"
             "\"aggregate\":{\"k\":[1,2,4]}}", name, FX_P, FX_N);
    job_spec spec;
    EXPECT_MSG(job_spec_parse(spec_text, strlen(spec_text), "fx.json", &spec, err, sizeof err) == 0, "%s", err);
    store_txn *t;
    EXPECT(store_txn_begin(st, 1, &t, err, sizeof err) == STORE_OK);
    store_job j;
    memset(&j, 0, sizeof j);
    j.id = id;
    snprintf(j.name, sizeof j.name, "%s", name);
    snprintf(j.state, sizeof j.state, "done");
    j.n_problems = FX_P; j.n_samples = FX_N; j.chunk = FX_P; j.n_chunks = 1; j.max_attempts = 3;
    j.spec_json = spec.json;
    EXPECT(store_job_put(t, &j) == STORE_OK);
    for (int p = 0; p < FX_P; p++) {
        char pid[32], answer[32], q[64];
        snprintf(pid, sizeof pid, "fx-%d", p);
        snprintf(answer, sizeof answer, "%d", 10 + p);
        snprintf(q, sizeof q, "What is %d + 10?", p);
        store_problem pr = {(uint32_t)p, pid, q, "", answer, fx_subject(p), fx_level(p)};
        EXPECT(store_problem_put(t, id, &pr) == STORE_OK);
        for (int s = 0; s < FX_N; s++) {
            int ok = fn(p, s);
            char text[128], ext[32];
            if (ok) snprintf(ext, sizeof ext, "%d", 10 + p);
            else snprintf(ext, sizeof ext, "%d", s % 2 ? 900 + s : 999);
            snprintf(text, sizeof text, "Adding, \"we\" get %s.\n#### %s", ext, ext);
            store_generation g = {(uint32_t)p, (uint32_t)s, text, (uint32_t)strlen(text), 5, time_s, "stop", 1};
            EXPECT(store_generation_put(t, id, &g) == 1);
            int stored = (p == flip_p && s == flip_s) ? !ok : ok;
            store_score sc = {(uint32_t)p, (uint32_t)s, ext, ext, stored, isnan(reward_base) ? NAN : reward_base + s, NULL, 0};
            EXPECT(store_score_put(t, id, &sc) == 1);
        }
    }
    EXPECT(store_txn_commit(&t, err, sizeof err) == STORE_OK);
    job_spec_free(&spec);
}

static char *fx_store(int with_flip) {
    char *d = tmpdir();
    store *st = NULL;
    char err[512];
    EXPECT_MSG(store_open(d, 0, 0, &st, err, sizeof err) == STORE_OK, "%s", err);
    if (!st) return d;
    fx_job(st, 1, "teacher", good_correct, 0.5, with_flip ? 1 : -1, 0, NAN);
    fx_job(st, 2, "student", bad_correct, 0.25, -1, -1, 0.1);
    store_close(&st);
    return d;
}

/* Independent expectations from the fixture's definition. */
static double fx_cov(correct_fn fn, int k, const char *subject, int level) {
    double sum = 0;
    int np = 0;
    for (int p = 0; p < FX_P; p++) {
        if (subject && strcmp(subject, fx_subject(p))) continue;
        if (level && level != fx_level(p)) continue;
        int c = 0;
        for (int s = 0; s < FX_N; s++) c += fn(p, s);
        /* pass@k = 1 - C(n-c, k) / C(n, k) for n = 4 */
        double num = 1, den = 1;
        for (int i = 0; i < k; i++) { num *= (double)(FX_N - c - i); den *= (double)(FX_N - i); }
        sum += (FX_N - c < k) ? 1.0 : 1.0 - num / den;
        np++;
    }
    return np ? sum / np : NAN;
}

static double jnum(json_t *o, const char *key, size_t i) {
    json_t *a = json_object_get(o, key);
    json_t *v = a ? json_array_get(a, i) : NULL;
    return v && json_is_number(v) ? json_number_value(v) : NAN;
}

/* ---- tests ---- */

TEST(parse_klist) {
    int k[AGG_MAX_K];
    char err[256];
    EXPECT_EQ_INT(jobctl_parse_klist("8,1,4,2,4", k, err, sizeof err), 4);
    EXPECT(k[0] == 1 && k[1] == 2 && k[2] == 4 && k[3] == 8);
    EXPECT_EQ_INT(jobctl_parse_klist("1,,2", k, err, sizeof err), -1);
    EXPECT(strstr(err, "element 2") != NULL);
    EXPECT_EQ_INT(jobctl_parse_klist("0", k, err, sizeof err), -1);
    EXPECT_EQ_INT(jobctl_parse_klist("3x", k, err, sizeof err), -1);
    EXPECT_EQ_INT(jobctl_parse_klist("", k, err, sizeof err), -1);
}

TEST(csv_field_quoting) {
    util_buf b;
    util_buf_init(&b);
    jobctl_csv_field(&b, "plain", 5);
    util_buf_append(&b, "|", 1);
    jobctl_csv_field(&b, "a,b", 3);
    util_buf_append(&b, "|", 1);
    jobctl_csv_field(&b, "say \"hi\"", 8);
    util_buf_append(&b, "|", 1);
    jobctl_csv_field(&b, "two\r\nlines", 10);
    util_buf_append(&b, "|", 1);
    jobctl_csv_field(&b, "bad\xff\xc3(", 6);
    util_buf_append(&b, "", 1);
    EXPECT_EQ_STR(b.data, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\r\nlines\"|bad\xEF\xBF\xBD\xEF\xBF\xBD(");
    util_buf_free(&b);
}

TEST(load_job) {
    char *d = fx_store(0);
    store *st = NULL;
    char err[512];
    EXPECT(store_open(d, 1, 0, &st, err, sizeof err) == STORE_OK);
    jobctl_jobdata jd;
    EXPECT_MSG(jobctl_jobdata_load(st, "student", 1, &jd, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_STR(jd.id, "j-000002");
    EXPECT_EQ_INT(jd.n_gen, FX_P * FX_N);
    EXPECT_EQ_INT(jd.n_score, FX_P * FX_N);
    EXPECT_EQ_STR(jd.subject[3], "Geometry");
    EXPECT_EQ_INT(jd.level[5], 3);
    EXPECT(strstr(jd.text[2 * FX_N + 0], "#### 12") != NULL);
    jobctl_jobdata_agg_input(&jd, 1);
    EXPECT_EQ_INT(jd.n_ap, FX_P);
    EXPECT_EQ_INT(jd.ap[4].n, FX_N);
    EXPECT_EQ_INT(jd.ap[4].correct[0], 1);
    EXPECT_EQ_INT(jd.ap[4].level, 2);
    EXPECT_NEAR(jd.ap[4].reward[3], 3.1, 1e-12);
    jobctl_jobdata_free(&jd);
    EXPECT(jobctl_jobdata_load(st, "nobody", 0, &jd, err, sizeof err) == -1);
    EXPECT(strstr(err, "nobody") != NULL);
    jobctl_jobdata_free(&jd);
    store_close(&st);
    rmrf(d);
    free(d);
}

TEST(compare_json) {
    char *d = fx_store(0);
    char *argv[] = {"compare", "teacher", "j-000002", "--db", d, "--json", "--k", "1,2,4,8", "--budget-axis", "--per-problem", NULL};
    int rc;
    char *out = capture(jobctl_cmd_compare, 10, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    char *nl = strchr(out, '\n');
    EXPECT(nl != NULL);
    json_error_t je;
    json_t *a = nl ? json_loadb(out, (size_t)(nl - out), 0, &je) : NULL;
    json_t *b = nl ? json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &je) : NULL;
    EXPECT_MSG(a && b, "output: %s", out);
    if (a && b) {
        EXPECT_EQ_STR(json_string_value(json_object_get(a, "name")), "teacher");
        EXPECT_EQ_STR(json_string_value(json_object_get(b, "job")), "j-000002");
        json_t *sa = json_object_get(a, "stats"), *sb = json_object_get(b, "stats");
        EXPECT_NEAR(jnum(sa, "coverage", 0), fx_cov(good_correct, 1, NULL, 0), 1e-9);
        EXPECT_NEAR(jnum(sa, "coverage", 1), fx_cov(good_correct, 2, NULL, 0), 1e-9);
        EXPECT_NEAR(jnum(sb, "coverage", 0), fx_cov(bad_correct, 1, NULL, 0), 1e-9);
        EXPECT_NEAR(jnum(sb, "coverage", 2), fx_cov(bad_correct, 4, NULL, 0), 1e-9);
        EXPECT(json_is_null(json_array_get(json_object_get(sa, "coverage"), 3)));   /* k = 8 > n */
        /* per problem: problem 4 of the teacher has 3 of 4 correct (s < 4 % 3 + 2) */
        json_t *pp = json_array_get(json_object_get(sa, "per_problem"), 4);
        EXPECT(pp && json_integer_value(json_object_get(pp, "p")) == 4);
        EXPECT_NEAR(jnum(pp, "coverage", 0), 0.75, 1e-12);
        /* breakdowns */
        json_t *geo = json_object_get(json_object_get(sb, "by_subject"), "Geometry");
        json_t *lv2 = json_object_get(json_object_get(sa, "by_level"), "2");
        EXPECT(geo && lv2);
        EXPECT_NEAR(jnum(geo, "coverage", 0), fx_cov(bad_correct, 1, "Geometry", 0), 1e-9);
        EXPECT_NEAR(jnum(lv2, "coverage", 1), fx_cov(good_correct, 2, NULL, 2), 1e-9);
        EXPECT_EQ_INT(json_integer_value(json_object_get(lv2, "problems")), 2);
        /* rewards only for the student: best-of-N columns there, not for the teacher */
        EXPECT(json_object_get(sb, "wbon") != NULL);
        EXPECT(json_object_get(sa, "wbon") == NULL);
        /* time: teacher samples take 0.5 s, student 0.25 s; the shared grid starts at the
         * smallest budget (student k=1: 0.25 s) and doubles */
        json_t *ta = json_object_get(sa, "time"), *bg = json_object_get(a, "budget"), *bgb = json_object_get(b, "budget");
        EXPECT(ta && bg && bgb);
        EXPECT_NEAR(json_number_value(json_object_get(ta, "mean_sample_s")), 0.5, 1e-12);
        EXPECT_NEAR(jnum(bg, "budget_s", 0), 0.25, 1e-12);
        EXPECT_NEAR(jnum(bg, "budget_s", 1), 0.5, 1e-12);
        /* 0.25 s buys the teacher no sample (0), the student one; 0.5 s buys the teacher one */
        EXPECT_NEAR(jnum(bg, "coverage", 0), 0.0, 1e-12);
        EXPECT_NEAR(jnum(bgb, "coverage", 0), fx_cov(bad_correct, 1, NULL, 0), 1e-9);
        EXPECT_NEAR(jnum(bg, "coverage", 1), fx_cov(good_correct, 1, NULL, 0), 1e-9);
        EXPECT_NEAR(jnum(bgb, "coverage", 1), fx_cov(bad_correct, 2, NULL, 0), 1e-9);
    }
    json_decref(a);
    json_decref(b);
    free(out);
    /* bad input: a job that does not exist, a bad k list, a bad plot name */
    char *argv2[] = {"compare", "teacher", "ghost", "--db", d, NULL};
    out = capture(jobctl_cmd_compare, 5, argv2, &rc);
    EXPECT_EQ_INT(rc, 1);
    free(out);
    char *argv3[] = {"compare", "teacher", "--db", d, "--k", "1,0", NULL};
    out = capture(jobctl_cmd_compare, 6, argv3, &rc);
    EXPECT_EQ_INT(rc, 2);
    free(out);
    char *argv4[] = {"compare", "teacher", "--db", d, "--plot", "fig.gif", NULL};
    out = capture(jobctl_cmd_compare, 6, argv4, &rc);
    EXPECT_EQ_INT(rc, 2);
    free(out);
    rmrf(d);
    free(d);
}

TEST(compare_table_and_plot) {
    char *d = fx_store(0);
    char svg[600];
    snprintf(svg, sizeof svg, "%s/fig.svg", d);
    char *argv[] = {"compare", "1", "2", "--db", d, "--plot", svg, NULL};
    int rc;
    char *out = capture(jobctl_cmd_compare, 7, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    EXPECT(strstr(out, "coverage@k") != NULL);
    EXPECT(strstr(out, "by subject") != NULL && strstr(out, "Geometry") != NULL);
    EXPECT(strstr(out, "by level") != NULL);
    EXPECT(strstr(out, "weighted best-of-N") != NULL);
    free(out);
    size_t n;
    char *s = util_read_file(svg, &n, NULL, 0);
    EXPECT(s != NULL);
    if (s) {
        EXPECT(strncmp(s, "<?xml", 5) == 0);
        EXPECT(strstr(s, "<svg") != NULL && strstr(s, "</svg>") != NULL);
        EXPECT(strstr(s, ">teacher<") != NULL && strstr(s, ">student<") != NULL);
        EXPECT(strstr(s, "samples per problem k") != NULL);
        EXPECT(strstr(s, "GPU-seconds per problem") != NULL || strstr(s, "GPU-milliseconds per problem") != NULL);
        EXPECT(strstr(s, "Weighted best-of-N") != NULL);   /* the student has rewards */
        free(s);
    }
    rmrf(d);
    free(d);
}

TEST(compare_two_stores) {
    char *d1 = fx_store(0), *d2 = fx_store(1);
    char *argv[] = {"compare", "--db", d1, "teacher", "--db", d2, "teacher", "student", "--json", NULL};
    int rc;
    char *out = capture(jobctl_cmd_compare, 9, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    json_t *o[3] = {NULL, NULL, NULL};
    const char *p = out;
    for (int i = 0; i < 3 && p && *p; i++) {
        json_error_t je;
        o[i] = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        p = strchr(p, '\n');
        if (p) p++;
    }
    EXPECT_MSG(o[0] && o[1] && o[2], "output: %s", out);
    if (o[0] && o[1] && o[2]) {
        EXPECT_EQ_STR(json_string_value(json_object_get(o[0], "db")), d1);
        EXPECT_EQ_STR(json_string_value(json_object_get(o[1], "db")), d2);
        EXPECT_EQ_STR(json_string_value(json_object_get(o[2], "db")), d2);
        /* same name and id in both stores: the labels tell them apart */
        EXPECT(strcmp(json_string_value(json_object_get(o[0], "label")), json_string_value(json_object_get(o[1], "label"))) != 0);
        EXPECT_EQ_STR(json_string_value(json_object_get(o[2], "label")), "student");
        /* d2's teacher has one score stored wrong: its coverage@1 is lower by 1/(P*N) */
        double c0 = jnum(json_object_get(o[0], "stats"), "coverage", 0), c1 = jnum(json_object_get(o[1], "stats"), "coverage", 0);
        EXPECT_NEAR(c0 - c1, 1.0 / (FX_P * FX_N), 1e-9);
    }
    for (int i = 0; i < 3; i++) json_decref(o[i]);
    free(out);
    rmrf(d1); rmrf(d2);
    free(d1); free(d2);
}

TEST(export_csv) {
    char *d = fx_store(0);
    char *argv[] = {"export", "student", "--db", d, "--format", "csv", NULL};
    int rc;
    char *out = capture(jobctl_export_csv, 6, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    /* header + one CRLF record per generation; texts hold a quote and a newline */
    EXPECT(strncmp(out, "problem,sample,id,subject,level,answer,correct,", 47) == 0);
    EXPECT(strstr(out, "\r\n0,0,fx-0,Algebra,1,10,1,10,10,0.1,5,0.25,stop,\"Adding, \"\"we\"\" get 10.\n#### 10\"\r\n") != NULL);
    EXPECT(strstr(out, "\r\n1,3,fx-1,Geometry,2,11,0,903,903,3.1,5,0.25,stop,") != NULL);
    int records = 0;
    for (const char *p = out; (p = strstr(p, "\r\n")) != NULL; p += 2) records++;
    EXPECT_EQ_INT(records, 1 + FX_P * FX_N);
    free(out);
    char *argv2[] = {"export", "student", "--db", d, "--format", "xml", NULL};
    out = capture(jobctl_export_csv, 6, argv2, &rc);
    EXPECT_EQ_INT(rc, 2);
    free(out);
    rmrf(d);
    free(d);
}

/* The breakdown table of `report` (from a stats map as the broker stores it) and of compare
 * (from agg_stats) print the same rows. */
TEST(breakdown_tables) {
    char *d = fx_store(0);
    store *st = NULL;
    char err[512];
    EXPECT(store_open(d, 1, 0, &st, err, sizeof err) == STORE_OK);
    jobctl_jobdata jd;
    EXPECT(jobctl_jobdata_load(st, "teacher", 0, &jd, err, sizeof err) == 0);
    store_close(&st);
    jobctl_jobdata_agg_input(&jd, 1);
    int k[] = {1, 2, 4};
    agg_stats s;
    EXPECT(aggregate_compute(jd.ap, jd.n_ap, k, 3, 7, &s, err, sizeof err) == 0);
    FILE *f1 = tmpfile(), *f2 = tmpfile();
    jobctl_print_breakdown(f1, &s);
    util_buf js;
    util_buf_init(&js);
    agg_stats_to_json(&s, &js);
    proto_writer *w = proto_writer_new(NULL, 0);
    EXPECT(wrk_json_to_msgpack(js.data, js.len, w, err, sizeof err) == 0);
    size_t n;
    const void *data = proto_writer_data(w, &n);
    proto_msg *m = NULL;
    EXPECT(proto_parse_value(data, n, &m, err, sizeof err) == 0);
    if (m) jobctl_print_breakdown_map(f2, proto_root(m));
    char b1[4096] = "", b2[4096] = "";
    rewind(f1); rewind(f2);
    size_t n1 = fread(b1, 1, sizeof b1 - 1, f1), n2 = fread(b2, 1, sizeof b2 - 1, f2);
    b1[n1] = 0; b2[n2] = 0;
    EXPECT(n1 > 0);
    EXPECT_EQ_STR(b1, b2);
    /* Algebra = problems 0, 2, 4: coverage@1 from the fixture's definition */
    const char *row = strstr(b1, "  Algebra ");
    int probs = 0;
    double c1 = NAN, c4 = NAN;
    EXPECT_MSG(row && sscanf(row, " Algebra %d %lf %lf", &probs, &c1, &c4) == 3, "table:\n%s", b1);
    EXPECT_EQ_INT(probs, 3);
    EXPECT_NEAR(c1, fx_cov(good_correct, 1, "Algebra", 0), 5e-4);
    EXPECT_NEAR(c4, fx_cov(good_correct, 4, "Algebra", 0), 5e-4);
    EXPECT(strstr(b1, "level") != NULL && strstr(b1, "cov@4") != NULL);
    fclose(f1); fclose(f2);
    proto_msg_destroy(&m);
    proto_writer_destroy(&w);
    util_buf_free(&js);
    agg_stats_free(&s);
    jobctl_jobdata_free(&jd);
    rmrf(d);
    free(d);
}

typedef struct { int n, correct; double reward_sum; } score_sum;
static int sum_scores(uint64_t job, const store_score *sc, void *ctx) {
    score_sum *s = ctx;
    s->n++;
    s->correct += sc->correct;
    if (!isnan(sc->reward)) s->reward_sum += sc->reward;
    return 0;
}

TEST(rescore) {
    char *d = fx_store(1);   /* teacher's (1, 0) is stored wrong although its text is right */
    char *argv[] = {"rescore", "teacher", "--db", d, "--json", NULL};
    int rc;
    char *out = capture(jobctl_cmd_rescore, 5, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    json_error_t je;
    json_t *o = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
    EXPECT_MSG(o != NULL, "output: %s", out);
    if (o) {
        EXPECT_EQ_INT(json_integer_value(json_object_get(o, "regraded")), FX_P * FX_N);
        EXPECT_EQ_INT(json_integer_value(json_object_get(o, "changed")), 1);
        EXPECT_EQ_INT(json_integer_value(json_object_get(o, "to_correct")), 1);
        EXPECT(json_is_true(json_object_get(o, "written")));
        EXPECT(json_is_true(json_object_get(o, "stats_changed")));
        EXPECT_NEAR(jnum(json_object_get(o, "stats"), "coverage", 0), fx_cov(good_correct, 1, NULL, 0), 1e-9);
    }
    json_decref(o);
    free(out);
    /* the store now agrees with the texts; the stats record holds the new numbers */
    store *st = NULL;
    char err[512];
    EXPECT(store_open(d, 1, 0, &st, err, sizeof err) == STORE_OK);
    if (st) {
        score_sum ss = {0, 0, 0};
        EXPECT(store_scores_each(st, 1, sum_scores, &ss, err, sizeof err) == STORE_OK);
        int expect_correct = 0;
        for (int p = 0; p < FX_P; p++) for (int s = 0; s < FX_N; s++) expect_correct += good_correct(p, s);
        EXPECT_EQ_INT(ss.n, FX_P * FX_N);
        EXPECT_EQ_INT(ss.correct, expect_correct);
        store_stats sst;
        EXPECT(store_stats_get(st, 1, &sst, err, sizeof err) == STORE_OK);
        EXPECT_EQ_INT(sst.samples, FX_P * FX_N);
        EXPECT_EQ_INT(sst.final, 1);
        store_stats_free(&sst);
        store_close(&st);
    }
    /* again: nothing changes, nothing is written */
    out = capture(jobctl_cmd_rescore, 5, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    EXPECT(strstr(out, "\"changed\":0") != NULL && strstr(out, "\"stats_changed\":false") != NULL && strstr(out, "\"written\":false") != NULL);
    free(out);
    /* rewards survive a regrade with another grader (gsm8k texts have no \boxed: all wrong) */
    char *argv2[] = {"rescore", "student", "--db", d, "--grader", "math", "--json", NULL};
    out = capture(jobctl_cmd_rescore, 7, argv2, &rc);
    EXPECT_EQ_INT(rc, 0);
    EXPECT(strstr(out, "\"to_correct\":0") != NULL);
    free(out);
    EXPECT(store_open(d, 1, 0, &st, err, sizeof err) == STORE_OK);
    if (st) {
        score_sum ss = {0, 0, 0};
        EXPECT(store_scores_each(st, 2, sum_scores, &ss, err, sizeof err) == STORE_OK);
        EXPECT_EQ_INT(ss.correct, 0);
        EXPECT_NEAR(ss.reward_sum, FX_P * (4 * 0.1 + 0 + 1 + 2 + 3), 1e-9);
        store_close(&st);
    }
    /* a writer holding the store: refused, nothing read or written */
    EXPECT(store_open(d, 0, 0, &st, err, sizeof err) == STORE_OK);
    char *argv3[] = {"rescore", "teacher", "--db", d, NULL};
    out = capture(jobctl_cmd_rescore, 4, argv3, &rc);
    EXPECT_EQ_INT(rc, 1);
    EXPECT_EQ_STR(out, "");
    free(out);
    store_close(&st);
    /* usage errors */
    char *argv4[] = {"rescore", "teacher", "--db", d, "--grader", "sat", NULL};
    out = capture(jobctl_cmd_rescore, 6, argv4, &rc);
    EXPECT_EQ_INT(rc, 2);
    free(out);
    rmrf(d);
    free(d);
}

int main(void) {
    RUN(parse_klist);
    RUN(csv_field_quoting);
    RUN(load_job);
    RUN(compare_json);
    RUN(compare_table_and_plot);
    RUN(compare_two_stores);
    RUN(breakdown_tables);
    RUN(export_csv);
    RUN(rescore);
    return unit_summary();
}
