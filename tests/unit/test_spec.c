/* tests/unit/test_spec.c — job spec parsing: defaults, canonical JSON, every validation error
 * with its file:line:col and field path, the shipped examples, and garbage input. */
#include "jobs/json_pos.h"
#include "jobs/spec.h"
#include "tests/unit/unit.h"

#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

static char err[1024];

static int parse(const char *text, job_spec *s) {
    return job_spec_parse(text, strlen(text), "job.json", s, err, sizeof err);
}

/* Expected "job.json:L:C: " for the first occurrence of `needle` in text (computed here by
 * counting, independently of the scanner under test). */
static void where(const char *text, const char *needle, char *out, size_t cap) {
    const char *p = strstr(text, needle);
    int line = 1, col = 1;
    for (const char *q = text; p && q < p; q++) {
        if (*q == '\n') { line++; col = 1; }
        else col++;
    }
    snprintf(out, cap, "job.json:%d:%d: ", line, col);
}

/* Parse must fail with exactly `msg`, positioned at the first `at` in text. */
#define EXPECT_ERR(text, at, msg) do { \
    job_spec s_; char pre_[64], want_[1200]; \
    EXPECT(parse((text), &s_) == -1); \
    EXPECT(s_.json == NULL); \
    where((text), (at), pre_, sizeof pre_); \
    snprintf(want_, sizeof want_, "%s%s", pre_, (msg)); \
    EXPECT_EQ_STR(err, want_); \
    job_spec_free(&s_); } while (0)

TEST(defaults_filled) {
    job_spec s;
    const char *t = "{\"dataset\": {\"format\": \"synth\"}}";
    EXPECT(job_spec_parse(t, strlen(t), "runs/my-job.json", &s, err, sizeof err) == 0);
    EXPECT_EQ_STR(s.kind, "sample");
    EXPECT_EQ_STR(s.name, "my-job");
    EXPECT_EQ_STR(s.model.backend, "replay");
    EXPECT_EQ_STR(s.model.device, "auto");
    EXPECT_NEAR(s.model.corrupt, 0, 0);
    EXPECT_EQ_STR(s.dataset.format, "synth");
    EXPECT_EQ_INT(s.dataset.n, 500);
    EXPECT_EQ_INT(s.dataset.seed, 1);
    EXPECT_EQ_INT(s.dataset.steps_min, 2);
    EXPECT_EQ_INT(s.dataset.steps_max, 6);
    EXPECT_EQ_STR(s.prompt.template_name, "plain");
    EXPECT_EQ_INT(s.sampling.n, 16);
    EXPECT_NEAR(s.sampling.temperature, 0.8, 0);
    EXPECT_NEAR(s.sampling.top_p, 0.95, 0);
    EXPECT_EQ_INT(s.sampling.top_k, 0);
    EXPECT_NEAR(s.sampling.min_p, 0, 0);
    EXPECT_EQ_INT(s.sampling.max_tokens, 1024);
    EXPECT_EQ_INT(s.sampling.seed, 1);
    EXPECT_EQ_INT(s.sampling.n_stop, 0);
    EXPECT_EQ_STR(s.score.grader, "gsm8k");
    EXPECT_EQ_INT(s.aggregate.n_k, 5);
    for (int i = 0; i < s.aggregate.n_k; i++) EXPECT_EQ_INT(s.aggregate.k[i], 1 << i);
    EXPECT_EQ_INT(s.chunk, 8);
    EXPECT_EQ_INT(s.priority, 0);
    EXPECT_EQ_INT(s.max_attempts, 3);
    EXPECT_EQ_STR(s.json,
                  "{\"kind\":\"sample\",\"name\":\"my-job\",\"model\":{\"backend\":\"replay\","
                  "\"corrupt\":0.0,\"path\":\"\",\"device\":\"auto\"},\"dataset\":{\"format\":"
                  "\"synth\",\"n\":500,\"seed\":1,\"steps\":[2,6],\"numbers\":[2,100],\"limit\":0},"
                  "\"prompt\":{\"template\":\"plain\",\"system\":\"\"},\"sampling\":{\"n\":16,"
                  "\"temperature\":0.8,\"top_p\":0.95,\"top_k\":0,\"min_p\":0.0,\"max_tokens\":1024,"
                  "\"seed\":1,\"stop\":[]},\"score\":{\"grader\":\"gsm8k\"},\"aggregate\":{\"k\":"
                  "[1,2,4,8,16]},\"chunk\":8,\"priority\":0,\"max_attempts\":3}");
    job_spec_free(&s);
    EXPECT(s.json == NULL);
}

TEST(default_k_includes_n_and_grader_follows_format) {
    job_spec s;
    EXPECT(parse("{\"dataset\":{\"path\":\"x/test.jsonl\",\"format\":\"math\"},"
                 "\"sampling\":{\"n\":10}}", &s) == 0);
    EXPECT_EQ_INT(s.aggregate.n_k, 5);
    EXPECT_EQ_INT(s.aggregate.k[3], 8);
    EXPECT_EQ_INT(s.aggregate.k[4], 10);
    EXPECT_EQ_STR(s.score.grader, "math");
    EXPECT_EQ_INT(s.dataset.n, 0); /* synth knobs are cleared for files */
    job_spec_free(&s);
    EXPECT(parse("{\"dataset\":{\"path\":\"data/MATH500.jsonl\"},\"sampling\":{\"n\":1}}", &s) == 0);
    EXPECT_EQ_STR(s.dataset.format, "math");
    EXPECT_EQ_INT(s.aggregate.n_k, 1);
    EXPECT_EQ_INT(s.aggregate.k[0], 1);
    job_spec_free(&s);
    EXPECT(parse("{\"dataset\":{\"path\":\"gsm8k/test.jsonl\"}}", &s) == 0);
    EXPECT_EQ_STR(s.dataset.format, "gsm8k");
    EXPECT_EQ_STR(s.score.grader, "gsm8k");
    job_spec_free(&s);
}

TEST(full_spec_round_trips) {
    const char *text =
        "{\"kind\":\"sample\",\"name\":\"x \\\"q\\\" \\u00e9\",\"model\":{\"backend\":\"native\","
        "\"path\":\"/m/llama\",\"device\":\"cuda:1\"},\"dataset\":{\"path\":\"/d/g.jsonl\","
        "\"format\":\"jsonl\",\"limit\":7},\"prompt\":{\"template\":\"llama3-chat\",\"system\":"
        "\"Be brief.\\nThink.\"},\"sampling\":{\"n\":12,\"temperature\":0,\"top_p\":1,\"top_k\":40,"
        "\"min_p\":0.05,\"max_tokens\":512,\"seed\":18446744073,\"stop\":[\"\\n\\n\",\"Question:\"]},"
        "\"score\":{\"grader\":\"math\"},\"aggregate\":{\"k\":[1,3,12]},\"chunk\":2,"
        "\"priority\":-5,\"max_attempts\":1}";
    job_spec a, b;
    EXPECT(parse(text, &a) == 0);
    EXPECT_EQ_STR(a.name, "x \"q\" \xc3\xa9");
    EXPECT_EQ_STR(a.model.device, "cuda:1");
    EXPECT_EQ_INT(a.sampling.n_stop, 2);
    EXPECT_EQ_STR(a.sampling.stop[0], "\n\n");
    EXPECT_EQ_INT((long long)a.sampling.seed, 18446744073LL);
    EXPECT_NEAR(a.sampling.min_p, 0.05, 0);
    EXPECT_EQ_INT(a.priority, -5);
    EXPECT_EQ_INT(a.aggregate.k[2], 12);
    EXPECT(a.json != NULL);
    /* canonical JSON parses to the same spec and renders byte-identically */
    EXPECT(job_spec_parse(a.json, strlen(a.json), "canon", &b, err, sizeof err) == 0);
    EXPECT_EQ_STR(b.json, a.json);
    EXPECT_NEAR(b.sampling.min_p, a.sampling.min_p, 0);
    EXPECT_NEAR(b.sampling.temperature, 0, 0);
    EXPECT_EQ_STR(b.prompt.system, "Be brief.\nThink.");
    job_spec_free(&a);
    job_spec_free(&b);
}

TEST(value_errors_name_position_and_path) {
    const char *t1 = "{\n  \"dataset\": {\"format\": \"synth\"},\n  \"sampling\": {\n"
                     "    \"temperature\": 0.7,\n    \"n\":    -3\n  }\n}\n";
    EXPECT_ERR(t1, "-3", "sampling.n: expected a positive integer, got -3");
    EXPECT_ERR("{\"model\": {\"backend\": \"foo\"}, \"dataset\": {\"format\": \"synth\"}}",
               "\"foo\"", "model.backend: unknown backend \"foo\" (expected replay|native)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"},\n \"sampling\": {\"temprature\": 1}}",
               "\"temprature\"", "sampling.temprature: unknown key (did you mean temperature?)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"temperature\": 1}", "\"temperature\"",
               "temperature: unknown key (did you mean sampling.temperature?)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"zzz\": 1}", "\"zzz\"",
               "zzz: unknown key (expected kind|name|model|dataset|prompt|sampling|score|"
               "aggregate|chunk|priority|max_attempts)");
    EXPECT_ERR("{\"model\": {\"corrupt\": 1.5}, \"dataset\": {\"format\": \"synth\"}}", "1.5",
               "model.corrupt: expected a number in [0, 1], got 1.5");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"top_p\": 0}}", "0}",
               "sampling.top_p: expected a number in (0, 1], got 0");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"temperature\": -0.5}}",
               "-0.5", "sampling.temperature: expected a number in [0, 100], got -0.5");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"n\": 16.0}}", "16.0",
               "sampling.n: expected a positive integer, got 16.0");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"n\": \"16\"}}", "\"16\"",
               "sampling.n: expected a positive integer, got \"16\"");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"n\": 8},\n"
               " \"aggregate\": {\"k\": [1, 2, 4, 16]}}", "16]",
               "aggregate.k[3]: k = 16 exceeds sampling.n = 8");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"aggregate\": {\"k\": [1, 4, 2]}}", "2]",
               "aggregate.k[2]: k values must be strictly increasing (4 then 2)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"aggregate\": {\"k\": []}}", "[]",
               "aggregate.k: expected a non-empty array of positive integers, got an array");
    EXPECT_ERR("{\"model\": \"replay\", \"dataset\": {\"format\": \"synth\"}}", "\"replay\"",
               "model: expected an object, got \"replay\"");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"chunk\": 0}", "0}",
               "chunk: expected a positive integer, got 0");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"max_attempts\": 1000}", "1000",
               "max_attempts: expected an integer in [1, 100], got 1000");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"kind\": \"train\"}", "\"train\"",
               "kind: unknown kind \"train\" (expected sample)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"prompt\": {\"template\": \"chatml\"}}",
               "\"chatml\"", "prompt.template: unknown template \"chatml\" (expected plain|llama3-chat)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"model\": {\"device\": \"tpu\"}}", "\"tpu\"",
               "model.device: unknown device \"tpu\" (expected auto|cpu|cuda|cuda:N)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\", \"steps\": [5, 2]}}", "[5",
               "dataset.steps: min 5 must be <= max 2");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\", \"steps\": [0, 2]}}", "0,",
               "dataset.steps[0]: expected an integer in [1, 12], got 0");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}}",
               "[\"a\"", "sampling.stop: at most 4 stop strings, got 5");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"stop\": [\"a\", 3]}}", "3]",
               "sampling.stop[1]: expected a string, got 3");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"sampling\": {\"seed\": -1}}", "-1",
               "sampling.seed: expected a non-negative integer, got -1");
}

TEST(consistency_errors) {
    EXPECT_ERR("{\"model\": {\"backend\": \"native\"}, \"dataset\": {\"format\": \"synth\"}}",
               "{\"backend\"", "model.path: required for backend native (a model directory)");
    EXPECT_ERR("{\"model\": {\"backend\": \"native\", \"path\": \"/m\", \"corrupt\": 0.5},"
               " \"dataset\": {\"format\": \"synth\"}}", "0.5",
               "model.corrupt: only valid with backend replay");
    EXPECT_ERR("{\"name\": \"x\"}", "{", "dataset: required (a path, or {\"format\": \"synth\"})");
    EXPECT_ERR("{\"dataset\": {\"format\": \"gsm8k\"}}", "{\"format\"",
               "dataset.path: required for format gsm8k");
    EXPECT_ERR("{\"dataset\": {\"path\": \"a.jsonl\"}}", "{\"path\"",
               "dataset.format: required: cannot tell the format from the path (expected "
               "gsm8k|math|jsonl|synth)");
    EXPECT_ERR("{\"dataset\": {\"path\": \"g.jsonl\", \"format\": \"gsm8k\", \"n\": 5}}", "\"n\"",
               "dataset.n: only valid with format synth (use limit to keep the first N problems)");
    EXPECT_ERR("{\"dataset\": {\"path\": \"g.jsonl\", \"format\": \"synth\"}}", "\"g.jsonl\"",
               "dataset.path: not used by format synth");
    EXPECT_ERR("{\"dataset\": {\"path\": \"g.jsonl\", \"format\": \"csv\"}}", "\"csv\"",
               "dataset.format: unknown format \"csv\" (expected gsm8k|math|jsonl|synth)");
    EXPECT_ERR("{\"dataset\": {\"format\": \"synth\"}, \"name\": \"\"}", "\"\"",
               "name: must not be empty");
}

TEST(syntax_errors_and_non_objects) {
    job_spec s;
    EXPECT(parse("{\n  \"sampling\": {\"n\": 4,}\n}", &s) == -1);
    EXPECT_MSG(strncmp(err, "job.json:2:", 11) == 0 && strstr(err, "syntax error"), "%s", err);
    EXPECT(parse("{\"a\": 1, \"a\": 2}", &s) == -1);
    EXPECT_MSG(strstr(err, "job.json:1:") == err && strstr(err, "duplicate"), "%s", err);
    EXPECT(parse("", &s) == -1);
    EXPECT_MSG(strstr(err, "job.json:") == err, "%s", err);
    EXPECT_ERR("[1, 2]", "[", "expected a JSON object (a job spec), got an array");
    EXPECT(job_spec_parse(NULL, 0, NULL, &s, err, sizeof err) == -1);
    /* a UTF-8 byte-order mark is skipped; CRLF line ends count as one line each */
    const char *bom = "\xEF\xBB\xBF{\r\n\"dataset\": {\"format\": \"synth\"},\r\n\"chunk\": -1}";
    EXPECT(parse(bom, &s) == -1);
    EXPECT_EQ_STR(err, "job.json:3:10: chunk: expected a positive integer, got -1");
    EXPECT(parse("\xEF\xBB\xBF{\"dataset\": {\"format\": \"synth\"}}", &s) == 0);
    job_spec_free(&s);
    job_spec_free(&s);
}

TEST(json_pos_paths) {
    const char *t = "{\"a\": {\"b\": [10, {\"c\": \"x\\\"y\"}, 30]},\n \"d\": \"\xc3\xa9\", \"e\": 5}";
    int line, col;
    EXPECT(json_pos_find(t, strlen(t), "a.b[2]", 0, &line, &col) == 0);
    EXPECT_EQ_INT(line, 1);
    EXPECT_EQ_INT(col, (int)(strstr(t, "30") - t) + 1);
    EXPECT(json_pos_find(t, strlen(t), "a.b[1].c", 1, &line, &col) == 0);
    EXPECT_EQ_INT(col, (int)(strstr(t, "\"c\"") - t) + 1);
    EXPECT(json_pos_find(t, strlen(t), "e", 0, &line, &col) == 0);
    EXPECT_EQ_INT(line, 2);
    EXPECT_EQ_INT(col, 17); /* é is one column although two bytes */
    EXPECT(json_pos_find(t, strlen(t), "a.zz", 0, &line, &col) == -1);
    EXPECT(json_pos_find("{\"a\": [", 7, "a[0]", 0, &line, &col) == -1);
}

TEST(examples_all_load) {
    DIR *d = opendir("examples");
    if (!d) { unit_skip("no examples/ folder in the current directory"); return; }
    struct dirent *e;
    int n = 0, have_demo = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0) continue;
        char path[512];
        snprintf(path, sizeof path, "examples/%s", e->d_name);
        job_spec s;
        int rc = job_spec_load(path, &s, err, sizeof err);
        EXPECT_MSG(rc == 0, "%s: %s", path, err);
        if (rc == 0 && !strcmp(e->d_name, "demo.json")) {
            have_demo = 1;
            EXPECT_EQ_STR(s.dataset.format, "synth");
            EXPECT_EQ_INT(s.dataset.n, 200);
            EXPECT_EQ_INT(s.sampling.n, 16);
            EXPECT_NEAR(s.model.corrupt, 0.3, 0);
            EXPECT_EQ_INT(s.aggregate.n_k, 5);
            EXPECT_EQ_INT(s.chunk, 8);
        }
        if (rc == 0 && strcmp(s.dataset.format, "synth") != 0)
            EXPECT_MSG(s.dataset.path[0] == '/', "%s: dataset.path not absolute: %s", path,
                       s.dataset.path);
        job_spec_free(&s);
        n++;
    }
    closedir(d);
    EXPECT(n >= 3);
    EXPECT(have_demo);
}

TEST(load_makes_paths_absolute_and_reports_missing_file) {
    char *dir = unit_tmpdir("spec");
    char path[256], old[4096];
    snprintf(path, sizeof path, "%s/j.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"dataset\": {\"path\": \"./data/x.jsonl\", \"format\": \"jsonl\"}}", f);
    fclose(f);
    EXPECT(getcwd(old, sizeof old) != NULL);
    EXPECT(chdir(dir) == 0);
    job_spec s;
    EXPECT(job_spec_load("j.json", &s, err, sizeof err) == 0);
    char want[4200];
    char real[4096];
    EXPECT(getcwd(real, sizeof real) != NULL);
    snprintf(want, sizeof want, "%s/data/x.jsonl", real);
    EXPECT_EQ_STR(s.dataset.path, want);
    EXPECT(strstr(s.json, want) != NULL);
    EXPECT_EQ_STR(s.name, "j");
    job_spec_free(&s);
    EXPECT(job_spec_load("nope.json", &s, err, sizeof err) == -1);
    EXPECT(strstr(err, "nope.json") != NULL);
    EXPECT(chdir(old) == 0);
    unit_rmrf(dir);
    free(dir);
}

/* Random byte edits of a valid spec: the parser must never crash, and must either accept or
 * give an error that starts with the file name. */
TEST(mutations_never_crash) {
    const char *base =
        "{\"name\":\"m\",\"model\":{\"backend\":\"replay\",\"corrupt\":0.3},\"dataset\":{\"format\":"
        "\"synth\",\"n\":20,\"steps\":[2,4]},\"sampling\":{\"n\":8,\"stop\":[\"x\"]},\"aggregate\":"
        "{\"k\":[1,2,8]},\"chunk\":4}";
    size_t n = strlen(base);
    char buf[512];
    uint64_t x = 12345;
    int ok = 0, bad = 0;
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, base, n + 1);
        int edits = 1 + (int)(x % 3);
        for (int e = 0; e < edits; e++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = (size_t)(x >> 33) % n;
            const char *alphabet = "{}[]\",:0123456789-.eE tnfaxu\\\xc3\xff";
            buf[pos] = alphabet[(x >> 20) % strlen(alphabet)];
        }
        job_spec s;
        if (job_spec_parse(buf, n, "m.json", &s, err, sizeof err) == 0) {
            ok++;
            EXPECT(s.json != NULL);
            job_spec_free(&s);
        } else {
            bad++;
            if (strncmp(err, "m.json:", 7) != 0) {
                EXPECT_MSG(0, "error without position: %s", err);
                break;
            }
        }
    }
    EXPECT(ok > 0 && bad > 0);
}

int main(void) {
    RUN(defaults_filled);
    RUN(default_k_includes_n_and_grader_follows_format);
    RUN(full_spec_round_trips);
    RUN(value_errors_name_position_and_path);
    RUN(consistency_errors);
    RUN(syntax_errors_and_non_objects);
    RUN(json_pos_paths);
    RUN(examples_all_load);
    RUN(load_makes_paths_absolute_and_reports_missing_file);
    RUN(mutations_never_crash);
    return unit_summary();
}
