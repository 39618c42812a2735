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

/* What a FILE received, as a string (caller frees). */
static char *fx_slurp(FILE *f) {
    long n = ftell(f);
    if (n < 0) n = 0;
    char *buf = xmalloc((size_t)n + 1);
    rewind(f);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    fclose(f);
    return buf;
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
    return fx_slurp(tmp);
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
    char *d = unit_tmpdir("compare");
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
    unit_rmrf(d);
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
    unit_rmrf(d);
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
    unit_rmrf(d);
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
    unit_rmrf(d1); unit_rmrf(d2);
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
    unit_rmrf(d);
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
    unit_rmrf(d);
    free(d);
}

/* ---- best-of-N columns in the breakdown tables ---- */

/* The fixture's answer of sample (p, s) (as fx_job writes it) and its reward (reward_base + s). */
static int fx_answer(correct_fn fn, int p, int s) { return fn(p, s) ? 10 + p : (s % 2 ? 900 + s : 999); }

/* Best-of-N and weighted best-of-N at k over the slice's problems, counted here by enumerating
 * every size-k subset of the FX_N samples (rewards base + s; weighted ties split evenly). */
static void fx_bon(correct_fn fn, double base, int k, const char *subject, int level, double *bon, double *wbon) {
    double sb = 0, sw = 0;
    int np = 0;
    for (int p = 0; p < FX_P; p++) {
        if (subject && strcmp(subject, fx_subject(p))) continue;
        if (level && level != fx_level(p)) continue;
        double pb = 0, pw = 0;
        int subsets = 0;
        for (unsigned m = 0; m < (1u << FX_N); m++) {
            if (__builtin_popcount(m) != k) continue;
            subsets++;
            int best = -1;
            for (int s = 0; s < FX_N; s++) if ((m >> s) & 1 && (best < 0 || base + s > base + best)) best = s;
            pb += fn(p, best);
            double top = -1e300;
            int winners = 0, right = 0;
            for (int s = 0; s < FX_N; s++) {   /* each answer present: its summed reward */
                if (!((m >> s) & 1)) continue;
                double sum = 0;
                for (int t = 0; t < FX_N; t++)
                    if ((m >> t) & 1 && fx_answer(fn, p, t) == fx_answer(fn, p, s)) sum += base + t;
                int first = 1;   /* count each answer once: at its first sample in the subset */
                for (int t = 0; t < s; t++) if ((m >> t) & 1 && fx_answer(fn, p, t) == fx_answer(fn, p, s)) first = 0;
                if (!first) continue;
                if (sum > top + 1e-9) { top = sum; winners = 0; right = 0; }
                if (fabs(sum - top) <= 1e-9) { winners++; right += fn(p, s); }
            }
            pw += (double)right / winners;
        }
        sb += pb / subsets;
        sw += pw / subsets;
        np++;
    }
    *bon = np ? sb / np : NAN;
    *wbon = np ? sw / np : NAN;
}

/* The stats of job `name` in store d, k = {1, 2, 4}, seed 7, plus its JSON (agg_stats_to_json:
 * what --json prints). */
static int fx_stats(const char *d, const char *name, agg_stats *s, util_buf *js) {
    store *st = NULL;
    char err[512];
    jobctl_jobdata jd;
    int k[] = {1, 2, 4};
    EXPECT_MSG(store_open(d, 1, 0, &st, err, sizeof err) == STORE_OK, "%s", err);
    if (!st) return -1;
    int rc = jobctl_jobdata_load(st, name, 0, &jd, err, sizeof err);
    store_close(&st);
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc == 0) {
        jobctl_jobdata_agg_input(&jd, 1);
        rc = aggregate_compute(jd.ap, jd.n_ap, k, 3, 7, s, err, sizeof err);
        EXPECT_MSG(rc == 0, "%s", err);
    }
    jobctl_jobdata_free(&jd);
    util_buf_init(js);
    if (rc == 0) agg_stats_to_json(s, js);
    return rc;
}

/* Both printers: from agg_stats, and from the stats map the broker stores (JSON -> msgpack). */
static void fx_print_both(const agg_stats *s, const util_buf *js, char **from_stats, char **from_map) {
    FILE *f1 = tmpfile(), *f2 = tmpfile();
    jobctl_print_breakdown(f1, s);
    char err[512];
    proto_writer *w = proto_writer_new(NULL, 0);
    EXPECT(wrk_json_to_msgpack(js->data, js->len, w, err, sizeof err) == 0);
    size_t n;
    const void *data = proto_writer_data(w, &n);
    proto_msg *m = NULL;
    EXPECT(proto_parse_value(data, n, &m, err, sizeof err) == 0);
    if (m) jobctl_print_breakdown_map(f2, proto_root(m));
    proto_msg_destroy(&m);
    proto_writer_destroy(&w);
    *from_stats = fx_slurp(f1);
    *from_map = fx_slurp(f2);
}

/* The line of `text` that starts with "  NAME " (a table row), or NULL. */
static const char *fx_row(const char *text, const char *name) {
    char pat[80];
    snprintf(pat, sizeof pat, "\n  %s ", name);
    const char *r = strstr(text, pat);
    return r ? r + 1 : NULL;
}

/* A job with rewards (fx_job's reward_base + s): the subject and level tables carry bon@k and
 * wbon@k at every k (they fit), equal to the --json values and to the fixture's definition. */
TEST(breakdown_bon_columns) {
    char *d = fx_store(0);
    store *st = NULL;
    char err[512];
    EXPECT_MSG(store_open(d, 0, 0, &st, err, sizeof err) == STORE_OK, "%s", err);
    if (st) fx_job(st, 3, "rewarded", good_correct, 0.5, -1, -1, 0.1);
    store_close(&st);
    agg_stats s;
    util_buf js;
    if (fx_stats(d, "rewarded", &s, &js) != 0) { unit_rmrf(d); free(d); return; }
    char *t1, *t2;
    fx_print_both(&s, &js, &t1, &t2);
    EXPECT_EQ_STR(t1, t2);
    EXPECT_MSG(strstr(t1, "  subject   problems     cov@1     cov@4     maj@4     bon@1    wbon@1     bon@2    wbon@2"
                          "     bon@4    wbon@4\n") != NULL, "table:\n%s", t1);
    EXPECT_MSG(strstr(t1, "  level  problems     cov@1     cov@4     maj@4     bon@1    wbon@1     bon@2    wbon@2"
                          "     bon@4    wbon@4\n") != NULL, "table:\n%s", t1);
    EXPECT(strstr(t1, "to fit the width") == NULL);   /* every k shown */
    EXPECT(strstr(t1, "seeded") == NULL);             /* n = 4: weighted best-of-N is exact */
    json_error_t je;
    json_t *root = json_loadb(js.data, js.len, 0, &je);
    EXPECT_MSG(root != NULL, "%s", je.text);
    const int kk[] = {1, 2, 4};
    const struct { const char *table, *row, *subject; int level; } rows[] = {
        {"by_subject", "Algebra", "Algebra", 0}, {"by_subject", "Geometry", "Geometry", 0},
        {"by_level", "2", NULL, 2}, {"by_level", "3", NULL, 3}};
    for (size_t r = 0; root && r < sizeof rows / sizeof rows[0]; r++) {
        const char *line = fx_row(t1, rows[r].row);
        int probs = 0;
        double v[9];
        char fmt[64];
        snprintf(fmt, sizeof fmt, " %s %%d %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf %%lf", rows[r].row);
        EXPECT_MSG(line && sscanf(line, fmt, &probs, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 10,
                   "row %s in:\n%s", rows[r].row, t1);
        json_t *slice = json_object_get(json_object_get(root, rows[r].table), rows[r].row);
        EXPECT_MSG(slice != NULL, "%s.%s", rows[r].table, rows[r].row);
        for (int j = 0; j < 3 && slice; j++) {
            /* the text shows the --json values to 3 decimals ... */
            EXPECT_NEAR(v[3 + 2 * j], jnum(slice, "bon", (size_t)j), 5.0001e-4);
            EXPECT_NEAR(v[4 + 2 * j], jnum(slice, "wbon", (size_t)j), 5.0001e-4);
            /* ... which are the fixture's best-of-N and weighted best-of-N */
            double b, w;
            fx_bon(good_correct, 0.1, kk[j], rows[r].subject, rows[r].level, &b, &w);
            EXPECT_NEAR(jnum(slice, "bon", (size_t)j), b, 1e-9);
            EXPECT_NEAR(jnum(slice, "wbon", (size_t)j), w, 1e-9);
        }
        EXPECT_NEAR(v[0], fx_cov(good_correct, 1, rows[r].subject, rows[r].level), 5.0001e-4);
    }
    /* the rewards make the two methods differ (and pick a column mix-up): level 2 is problems
     * 1 and 4 (3 of 4 correct, the wrong one has the top reward): bon@4 = 0, wbon@4 = 1 */
    double b4, w4;
    fx_bon(good_correct, 0.1, 4, NULL, 2, &b4, &w4);
    EXPECT_NEAR(b4, 0.0, 1e-12);
    EXPECT_NEAR(w4, 1.0, 1e-12);
    json_decref(root);
    free(t1); free(t2);
    util_buf_free(&js);
    agg_stats_free(&s);
    unit_rmrf(d);
    free(d);
}

/* A job without rewards prints the table exactly as before the best-of-N columns existed:
 * problems, cov@kmin, cov@kmax, maj@kmax, nothing else. */
TEST(breakdown_without_rewards_unchanged) {
    char *d = fx_store(0);
    agg_stats s;
    util_buf js;
    if (fx_stats(d, "teacher", &s, &js) != 0) { unit_rmrf(d); free(d); return; }
    EXPECT_EQ_INT(s.has_reward, 0);
    char *t1, *t2;
    fx_print_both(&s, &js, &t1, &t2);
    EXPECT_EQ_STR(t1, t2);
    /* the table, rebuilt here in the original format */
    util_buf want;
    util_buf_init(&want);
    for (int pass = 0; pass < 2; pass++) {
        const agg_curve *c = pass ? s.by_level : s.by_subject;
        int n = pass ? s.n_level : s.n_subject, w = pass ? 5 : 8;   /* "level"; "subject"/"Geometry" */
        if (pass) util_buf_printf(&want, "\n");
        util_buf_printf(&want, "  %-*s  %8s  %8s  %8s  %8s\n", w, pass ? "level" : "subject", "problems", "cov@1",
                        "cov@4", "maj@4");
        for (int i = 0; i < n; i++)
            util_buf_printf(&want, "  %-*s  %8d  %8.3f  %8.3f  %8.3f\n", w, c[i].name, c[i].problems, c[i].coverage[0],
                            c[i].coverage[2], c[i].majority[2]);
    }
    EXPECT_EQ_STR(t1, want.data);
    EXPECT(strstr(t1, "bon") == NULL);
    util_buf_free(&want);
    free(t1); free(t2);
    util_buf_free(&js);
    agg_stats_free(&s);
    unit_rmrf(d);
    free(d);
}

/* Too many k for the width: k = 1 goes first, then the rest is thinned evenly (the largest k
 * always kept), and the table says which k it shows; a seeded weighted best-of-N is flagged. */
TEST(breakdown_bon_subset_and_flag) {
    agg_stats s;
    memset(&s, 0, sizeof s);
    agg_curve subj[2];
    memset(subj, 0, sizeof subj);
    const int kk[] = {1, 2, 4, 8, 16, 32};
    s.n_k = 6;
    for (int j = 0; j < 6; j++) s.k[j] = kk[j];
    s.has_reward = 1;
    s.wbon_exact = 0;
    snprintf(subj[0].name, sizeof subj[0].name, "%s", "A subject name forty characters long xyz");   /* 40 */
    snprintf(subj[1].name, sizeof subj[1].name, "%s", "Short");
    for (int i = 0; i < 2; i++) {
        subj[i].problems = 3 + i;
        for (int j = 0; j < 6; j++) {
            subj[i].coverage[j] = 0.5 + 0.01 * j;
            subj[i].majority[j] = 0.3 + 0.01 * j;
            subj[i].bon[j] = 0.1 + 0.01 * j + 0.1 * i;
            subj[i].wbon[j] = 0.6 + 0.01 * j + 0.1 * i;
        }
    }
    s.by_subject = subj;
    s.n_subject = 2;
    FILE *f = tmpfile();
    jobctl_print_breakdown(f, &s);
    char *t = fx_slurp(f);
    /* 2 + 40 + 4 x 10 = 82 of 130 columns: two pairs fit, from 2, 4, 8, 16, 32 evenly: 2 and 32 */
    EXPECT_MSG(strstr(t, "maj@32     bon@2    wbon@2    bon@32   wbon@32\n") != NULL, "%s", t);
    EXPECT(strstr(t, "bon@1 ") == NULL && strstr(t, "bon@4") == NULL && strstr(t, "bon@16") == NULL);
    const char *row = fx_row(t, "Short");
    double v[7];
    int probs = 0;
    EXPECT_MSG(row && sscanf(row, " Short %d %lf %lf %lf %lf %lf %lf %lf", &probs, &v[0], &v[1], &v[2], &v[3], &v[4],
                             &v[5], &v[6]) == 8, "%s", t);
    EXPECT_EQ_INT(probs, 4);
    EXPECT_NEAR(v[3], 0.21, 1e-9);   /* bon@2 of row 1 */
    EXPECT_NEAR(v[4], 0.71, 1e-9);   /* wbon@2 */
    EXPECT_NEAR(v[5], 0.25, 1e-9);   /* bon@32 */
    EXPECT_NEAR(v[6], 0.75, 1e-9);   /* wbon@32 */
    size_t len = 0;
    for (const char *p = t; *p; ) {   /* no line wider than the overall table (130) */
        const char *e = strchr(p, '\n');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > len) len = l;
        p += l + (e ? 1 : 0);
    }
    EXPECT_MSG(len <= 130, "widest line %zu", len);
    EXPECT(strstr(t, "(bon/wbon at k = 2, 32 of 1, 2, 4, 8, 16, 32 to fit the width; every k in --json)\n") != NULL);
    EXPECT(strstr(t, "(wbon: seeded estimate)\n") != NULL);
    free(t);
}

/* compare's breakdown: bon/wbon per job when some job has rewards ("-" for one without), none
 * at all when no job has rewards. */
TEST(compare_breakdown_bon) {
    char *d = fx_store(0);
    store *st = NULL;
    char err[512];
    EXPECT_MSG(store_open(d, 0, 0, &st, err, sizeof err) == STORE_OK, "%s", err);
    if (st) fx_job(st, 3, "rewarded", good_correct, 0.5, -1, -1, 0.1);
    store_close(&st);
    char *argv[] = {"compare", "teacher", "rewarded", "--db", d, NULL};
    int rc;
    char *out = capture(jobctl_cmd_compare, 5, argv, &rc);
    EXPECT_EQ_INT(rc, 0);
    /* 8 + 2 x (3 + 26) columns leave room for two k of three: k = 1 goes, 2 and 4 stay */
    const char *sec = strstr(out, "\nby subject (");
    EXPECT_MSG(sec && strstr(sec, "best-of-N / weighted best-of-N at k = 2, 4)") != NULL, "%s", out);
    EXPECT(strstr(out, "(best-of-N columns at k = 2, 4 of 1, 2, 4 to fit the width; every k in --json)") != NULL);
    const char *row = sec ? strstr(sec, "\nAlgebra ") : NULL;
    const char *lvl = strstr(out, "\nby level (");
    const char *lrow = lvl ? strstr(lvl, "\n2 ") : NULL;
    double b[2], w[2];
    fx_bon(good_correct, 0.1, 2, "Algebra", 0, &b[0], &w[0]);
    fx_bon(good_correct, 0.1, 4, "Algebra", 0, &b[1], &w[1]);
    int p1 = 0, p2 = 0;
    double v[3], x[7];
    char d1[8], d2[8], d3[8], d4[8];
    EXPECT_MSG(row && sscanf(row, " Algebra | %d %lf %lf %lf %7s %7s %7s %7s | %d %lf %lf %lf %lf %lf %lf %lf", &p1,
                             &v[0], &v[1], &v[2], d1, d2, d3, d4, &p2, &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6]) == 16,
               "%s", out);
    EXPECT(!strcmp(d1, "-") && !strcmp(d2, "-") && !strcmp(d3, "-") && !strcmp(d4, "-"));   /* teacher */
    EXPECT_EQ_INT(p2, 3);
    EXPECT_NEAR(x[3], b[0], 5.0001e-4);
    EXPECT_NEAR(x[4], w[0], 5.0001e-4);
    EXPECT_NEAR(x[5], b[1], 5.0001e-4);
    EXPECT_NEAR(x[6], w[1], 5.0001e-4);
    fx_bon(good_correct, 0.1, 4, NULL, 2, &b[1], &w[1]);
    EXPECT_MSG(lrow && sscanf(lrow, " 2 | %d %lf %lf %lf %7s %7s %7s %7s | %d %lf %lf %lf %lf %lf %lf %lf", &p1,
                              &v[0], &v[1], &v[2], d1, d2, d3, d4, &p2, &x[0], &x[1], &x[2], &x[3], &x[4], &x[5], &x[6]) == 16,
               "%s", out);
    EXPECT_NEAR(x[5], b[1], 5.0001e-4);
    EXPECT_NEAR(x[6], w[1], 5.0001e-4);
    free(out);
    /* no rewards anywhere: no best-of-N in the breakdown (nor elsewhere) */
    char *argv2[] = {"compare", "teacher", "--db", d, NULL};
    out = capture(jobctl_cmd_compare, 4, argv2, &rc);
    EXPECT_EQ_INT(rc, 0);
    EXPECT_MSG(strstr(out, "by subject (problems, coverage@1, coverage@4, majority@4)\n") != NULL, "%s", out);
    EXPECT(strstr(out, "bon") == NULL && strstr(out, "best-of-N") == NULL);
    free(out);
    unit_rmrf(d);
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
    unit_rmrf(d);
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
    RUN(breakdown_bon_columns);
    RUN(breakdown_without_rewards_unchanged);
    RUN(breakdown_bon_subset_and_flag);
    RUN(compare_breakdown_bon);
    RUN(export_csv);
    RUN(rescore);
    return unit_summary();
}
