/* tests/unit/test_dataset.c — dataset readers on the real GSM8K and MATH500 files (from
 * ../shared/data, skipped when absent), generic JSONL with escapes, errors, limits, synth. */
#include "jobs/dataset.h"
#include "jobs/spec.h"
#include "tests/unit/unit.h"

#include <stdint.h>
#include <unistd.h>

#include "common/util.h"

static char err[1024];

static int exists(const char *path) { return access(path, R_OK) == 0; }

/* Writes text to a fresh temp file; returns its path (static buffer). */
static const char *tmpfile_with(const char *text) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/thinkfast-ds-XXXXXX");
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

TEST(gsm8k_test_file) {
    const char *path = unit_data_path("gsm8k/test.jsonl");
    if (!exists(path)) { unit_skip("no gsm8k/test.jsonl"); return; }
    job_dataset d;
    EXPECT(job_dataset_read_file(path, "gsm8k", 0, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 1319);
    if (d.n != 1319) { job_dataset_free(&d); return; }
    EXPECT_EQ_STR(d.items[0].answer, "18");
    EXPECT_EQ_STR(d.items[0].id, "0");
    /* U+2019 decoded from \u2019 */
    EXPECT(strncmp(d.items[0].question, "Janet\xe2\x80\x99s ducks lay 16 eggs", 24) == 0);
    EXPECT_EQ_STR(d.items[0].solution,
                  "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\n"
                  "She makes 9 * 2 = $18 every day at the farmer\xe2\x80\x99s market.\n#### 18");
    EXPECT_EQ_STR(d.items[1].answer, "3");
    EXPECT_EQ_STR(d.items[2].answer, "70000");
    EXPECT_EQ_STR(d.items[146].answer, "2125");     /* "2,125" */
    EXPECT_EQ_STR(d.items[611].answer, "1450000");  /* "1,450,000" */
    EXPECT_EQ_STR(d.items[489].answer, "-10");
    EXPECT_EQ_STR(d.items[1113].answer, "-3");
    int annotated = 0, no_mark = 0;
    for (int i = 0; i < d.n; i++) {
        if (strstr(d.items[i].solution, "<<")) annotated++;
        if (!strstr(d.items[i].solution, "#### ")) no_mark++;
        if (strchr(d.items[i].answer, ',')) no_mark++;
        EXPECT(d.items[i].subject != NULL && d.items[i].level == 0);
    }
    EXPECT_EQ_INT(annotated, 0);
    EXPECT_EQ_INT(no_mark, 0);
    job_dataset_free(&d);
    EXPECT(d.items == NULL && d.n == 0);
    EXPECT(job_dataset_read_file(path, "gsm8k", 5, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 5);
    EXPECT_EQ_STR(d.items[4].id, "4");
    job_dataset_free(&d);
}

TEST(math500_file) {
    const char *path = unit_data_path("math500/test.jsonl");
    if (!exists(path)) { unit_skip("no math500/test.jsonl"); return; }
    job_dataset d;
    EXPECT(job_dataset_read_file(path, "math", 0, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 500);
    if (d.n != 500) { job_dataset_free(&d); return; }
    EXPECT_EQ_STR(d.items[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
    EXPECT_EQ_STR(d.items[0].subject, "Precalculus");
    EXPECT_EQ_INT(d.items[0].level, 2);
    EXPECT_EQ_STR(d.items[0].id, "test/precalculus/807.json");
    EXPECT(strncmp(d.items[0].question, "Convert the point $(0,3)$", 25) == 0);
    EXPECT(strstr(d.items[0].solution, "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}") != NULL);
    int levels[6] = {0}, boxed = 0;
    for (int i = 0; i < d.n; i++) {
        if (d.items[i].level >= 1 && d.items[i].level <= 5) levels[d.items[i].level]++;
        if (strstr(d.items[i].solution, "\\boxed")) boxed++;
    }
    /* counts from SOURCES.md */
    EXPECT_EQ_INT(levels[1], 43);
    EXPECT_EQ_INT(levels[2], 90);
    EXPECT_EQ_INT(levels[3], 105);
    EXPECT_EQ_INT(levels[4], 128);
    EXPECT_EQ_INT(levels[5], 134);
    EXPECT_EQ_INT(boxed, 500);
    job_dataset_free(&d);
}

TEST(via_spec_with_limit) {
    const char *path = unit_data_path("gsm8k/test.jsonl");
    if (!exists(path)) { unit_skip("no gsm8k/test.jsonl"); return; }
    char text[2048];
    snprintf(text, sizeof text, "{\"dataset\": {\"path\": \"%s\", \"limit\": 3}}", path);
    job_spec s;
    EXPECT(job_spec_parse(text, strlen(text), "j.json", &s, err, sizeof err) == 0);
    EXPECT_EQ_STR(s.dataset.format, "gsm8k");
    job_dataset d;
    EXPECT(job_dataset_load(&s, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 3);
    if (d.n == 3) EXPECT_EQ_STR(d.items[2].answer, "70000");
    job_dataset_free(&d);
    job_spec_free(&s);
}

TEST(jsonl_generic_and_escapes) {
    const char *path = tmpfile_with(
        "{\"prompt\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\\n\", \"answer\": 42, \"id\": 7}\n"
        "\n"
        "{\"prompt\": \"two\", \"answer\": \"x+1\", \"solution\": \"s\"}\n"
        "{\"prompt\": \"three\", \"answer\": 2.5, \"id\": \"p-3\"}\n");
    job_dataset d;
    EXPECT(job_dataset_read_file(path, "jsonl", 0, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 3);
    if (d.n == 3) {
        EXPECT_EQ_STR(d.items[0].question, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"\n");
        EXPECT_EQ_STR(d.items[0].answer, "42");
        EXPECT_EQ_STR(d.items[0].id, "7");
        EXPECT_EQ_STR(d.items[0].solution, "");
        EXPECT_EQ_STR(d.items[1].id, "1");
        EXPECT_EQ_STR(d.items[1].answer, "x+1");
        EXPECT_EQ_STR(d.items[1].solution, "s");
        EXPECT_EQ_STR(d.items[2].answer, "2.5");
        EXPECT_EQ_STR(d.items[2].id, "p-3");
    }
    job_dataset_free(&d);
    unlink(path);
}

TEST(math_variants) {
    const char *path = tmpfile_with(
        "{\"problem\": \"p1\", \"solution\": \"so \\\\boxed{1} then \\\\boxed{\\\\frac{a}{b}}.\", "
        "\"level\": \"Level 5\", \"type\": \"Algebra\"}\n"
        "{\"problem\": \"p2\", \"solution\": \"x\", \"answer\": \"3\", \"level\": \"Level ?\"}\n");
    job_dataset d;
    EXPECT(job_dataset_read_file(path, "math", 0, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 2);
    if (d.n == 2) {
        EXPECT_EQ_STR(d.items[0].answer, "\\frac{a}{b}");
        EXPECT_EQ_INT(d.items[0].level, 5);
        EXPECT_EQ_STR(d.items[0].id, "0");
        EXPECT_EQ_INT(d.items[1].level, 0);
        EXPECT_EQ_STR(d.items[1].answer, "3");
    }
    job_dataset_free(&d);
    unlink(path);
}

/* Each bad file must fail with exactly this message (FILE is the temp path). */
static void expect_fail(const char *format, const char *text, const char *msg_after_path) {
    const char *path = tmpfile_with(text);
    job_dataset d;
    char want[512];
    snprintf(want, sizeof want, "%s%s", path, msg_after_path);
    EXPECT(job_dataset_read_file(path, format, 0, &d, err, sizeof err) == -1);
    EXPECT_EQ_STR(err, want);
    EXPECT(d.n == 0 && d.items == NULL);
    unlink(path);
}

TEST(errors_name_file_line_field) {
    expect_fail("gsm8k", "{\"question\": \"q\", \"answer\": \"a\\n#### 1\"}\n{\"question\": \"q\"}\n",
                ":2: answer: missing");
    expect_fail("gsm8k", "{\"question\": \"q\", \"answer\": \"no final\"}\n",
                ":1: answer: missing the final '#### N'");
    expect_fail("gsm8k", "{\"question\": \"q\", \"answer\": \"x ####  \"}\n",
                ":1: answer: empty value after '####'");
    expect_fail("gsm8k", "{\"question\": 5, \"answer\": \"#### 1\"}\n",
                ":1: question: expected a string");
    expect_fail("math", "{\"problem\": \"p\", \"solution\": \"no box\"}\n",
                ":1: answer: missing (and no \\boxed{} in the solution)");
    expect_fail("math", "{\"problem\": \"p\", \"answer\": \"1\", \"level\": [1]}\n",
                ":1: level: expected an integer or \"Level N\"");
    expect_fail("jsonl", "{\"prompt\": \"p\", \"answer\": null}\n",
                ":1: answer: expected a string or a number");
    expect_fail("jsonl", "[1, 2]\n", ":1: expected a JSON object per line");
    expect_fail("jsonl", "", ": no records");
    expect_fail("csv", "x\n", ": unknown dataset format \"csv\" (expected gsm8k|math|jsonl)");
    /* invalid JSON: position from jansson */
    const char *path = tmpfile_with("{\"prompt\": \"p\", \"answer\": 1}\n{\"prompt\": \"p\" \"answer\": 1}\n");
    job_dataset d;
    EXPECT(job_dataset_read_file(path, "jsonl", 0, &d, err, sizeof err) == -1);
    char want[256];
    snprintf(want, sizeof want, "%s:2:", path);
    EXPECT_MSG(strncmp(err, want, strlen(want)) == 0 && strstr(err, "invalid JSON"), "%s", err);
    unlink(path);
    EXPECT(job_dataset_read_file("/nonexistent/x.jsonl", "gsm8k", 0, &d, err, sizeof err) == -1);
    EXPECT(strstr(err, "/nonexistent/x.jsonl") == err);
}

TEST(synth_via_spec) {
    const char *t = "{\"dataset\": {\"format\": \"synth\", \"n\": 50, \"seed\": 9, \"steps\": [3, 3], \"limit\": 20}}";
    job_spec s;
    EXPECT(job_spec_parse(t, strlen(t), "j.json", &s, err, sizeof err) == 0);
    job_dataset d;
    EXPECT(job_dataset_load(&s, &d, err, sizeof err) == 0);
    EXPECT_EQ_INT(d.n, 20);
    for (int i = 0; i < d.n; i++) {
        EXPECT_EQ_INT(d.items[i].level, 3);
        char id[32];
        snprintf(id, sizeof id, "synth-9-%d", i);
        EXPECT_EQ_STR(d.items[i].id, id);
        const char *mark = strstr(d.items[i].solution, "#### ");
        EXPECT(mark && strcmp(mark + 5, d.items[i].answer) == 0);
    }
    job_dataset_free(&d);
    job_spec_free(&s);
}

TEST(strip_annotations) {
    char s[] = "a = <<1+2=3>>3 and <<x>> but <<unclosed";
    job_strip_calc_annotations(s);
    EXPECT_EQ_STR(s, "a = 3 and  but <<unclosed");
}

/* Random byte edits of real GSM8K / MATH lines: the readers never crash, and each run either
 * loads or fails with "FILE:LINE..." naming the temp file. */
TEST(mutated_files_never_crash) {
    const char *path = unit_data_path("gsm8k/test.jsonl");
    const char *mpath = unit_data_path("math500/test.jsonl");
    if (!exists(path) || !exists(mpath)) { unit_skip("no shared data"); return; }
    size_t n1 = 0, n2 = 0;
    char *g = util_read_file(path, &n1, err, sizeof err), *m = util_read_file(mpath, &n2, err, sizeof err);
    EXPECT(g && m);
    if (!g || !m) { free(g); free(m); return; }
    /* the first 6 records of each */
    char *ends[2] = {g, m};
    for (int k = 0; k < 2; k++) {
        char *p = ends[k];
        for (int r = 0; r < 6 && p; r++) p = strchr(p + 1, '\n');
        if (p) p[1] = 0;
    }
    const char *formats[] = {"gsm8k", "math", "jsonl"};
    uint64_t x = 99;
    int ok = 0, bad = 0;
    char tmpl[] = "/tmp/thinkfast-dsfuzz-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    for (int it = 0; it < 600; it++) {
        const char *src = it % 2 ? m : g;
        size_t len = strlen(src);
        char *buf = xstrdup(src);
        for (int e = 0; e < 1 + it % 4; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            const char *alphabet = "{}[]\",:\\u0123456789 #\n\xc3\xff\x80";
            buf[(x >> 33) % len] = alphabet[(x >> 17) % strlen(alphabet)];
        }
        FILE *f = fopen(tmpl, "wb");
        fwrite(buf, 1, len, f);
        fclose(f);
        free(buf);
        job_dataset d;
        if (job_dataset_read_file(tmpl, formats[it % 3], 0, &d, err, sizeof err) == 0) {
            ok++;
            for (int i = 0; i < d.n; i++)
                EXPECT(d.items[i].question && d.items[i].answer && d.items[i].solution && d.items[i].id);
            job_dataset_free(&d);
        } else {
            bad++;
            EXPECT_MSG(strncmp(err, tmpl, strlen(tmpl)) == 0, "%s", err);
        }
    }
    unlink(tmpl);
    free(g);
    free(m);
    EXPECT(ok > 0 && bad > 0);
}

int main(void) {
    RUN(gsm8k_test_file);
    RUN(math500_file);
    RUN(via_spec_with_limit);
    RUN(jsonl_generic_and_escapes);
    RUN(math_variants);
    RUN(errors_name_file_line_field);
    RUN(synth_via_spec);
    RUN(strip_annotations);
    RUN(mutated_files_never_crash);
    return unit_summary();
}
