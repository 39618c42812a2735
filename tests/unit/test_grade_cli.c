/* tests/unit/test_grade_cli.c — bin/grade as a program: JSONL in, JSONL out, --help, bad lines
 * reported with their line numbers and a non-zero exit, output aligned with input lines.
 * Needs bin/grade (built by `make`); skipped when it is missing.
 */
#include "tests/unit/unit.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs cmd with input on stdin; captures stdout into out and stderr into errout; returns the exit status. */
static int run_cmd(const char *cmd, const char *input, char *out, size_t cap, char *errout, size_t ecap) {
    char in_path[] = "/tmp/tf_grade_inXXXXXX", err_path[] = "/tmp/tf_grade_errXXXXXX";
    int fd = mkstemp(in_path), efd = mkstemp(err_path);
    if (fd < 0 || efd < 0) return -1;
    if (write(fd, input, strlen(input)) != (ssize_t)strlen(input)) return -1;
    close(fd);
    close(efd);
    char full[1024];
    snprintf(full, sizeof full, "%s < %s 2> %s", cmd, in_path, err_path);
    FILE *p = popen(full, "r");
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    FILE *e = fopen(err_path, "r");
    n = e ? fread(errout, 1, ecap - 1, e) : 0;
    errout[n] = 0;
    if (e) fclose(e);
    unlink(in_path);
    unlink(err_path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(cli) {
    if (access("bin/grade", X_OK) != 0) { unit_skip("bin/grade not built"); return; }
    char out[8192], err[4096];
    int rc = run_cmd("bin/grade --grader math --canonical",
                     "{\"response\": \"so $\\\\boxed{\\\\frac12}$\", \"reference\": \"0.5\"}\n"
                     "\n"
                     "{\"response\": \"no box\", \"reference\": \"1\"}\n"
                     "not json\n"
                     "{\"response\": 3, \"reference\": \"1\"}\n"
                     "{\"response\": \"\\\\boxed{(1,2)}\", \"answer\": \"(2,1)\"}\n",
                     out, sizeof out, err, sizeof err);
    EXPECT_EQ_INT(rc, 1);
    EXPECT(strstr(err, "line 4") != NULL);
    EXPECT(strstr(err, "line 5") != NULL && strstr(err, "\"response\"") != NULL);
    EXPECT(strstr(err, "line 1:") == NULL);
    /* one output line per non-blank input line, in order */
    const char *want_ex[] = {"\\frac12", "", NULL, NULL, "(1,2)"};
    int want_ok[] = {1, 0, 0, 0, 0};
    char *save = NULL;
    int i = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        EXPECT_MSG(o != NULL, "output line %d is not JSON: %s", i + 1, line);
        if (!o || i >= 5) { json_decref(o); continue; }
        EXPECT_EQ_INT(json_is_true(json_object_get(o, "correct")), want_ok[i]);
        json_t *ex = json_object_get(o, "extracted");
        if (want_ex[i]) EXPECT_EQ_STR(json_string_value(ex), want_ex[i]);
        else EXPECT(json_is_null(ex) && json_object_get(o, "error") != NULL);
        if (i == 0) EXPECT_EQ_STR(json_string_value(json_object_get(o, "canonical")), "1/2");
        json_decref(o);
    }
    EXPECT_EQ_INT(i, 5);
    /* gsm8k, all good -> exit 0 */
    rc = run_cmd("bin/grade --grader gsm8k", "{\"response\": \"She pays $1,250.\\n#### 1250\", \"reference\": \"1250\"}\n",
                 out, sizeof out, err, sizeof err);
    EXPECT_EQ_INT(rc, 0);
    EXPECT(strstr(out, "\"correct\":true") != NULL && strstr(out, "\"extracted\":\"1250\"") != NULL);
    /* usage errors */
    EXPECT_EQ_INT(run_cmd("bin/grade", "", out, sizeof out, err, sizeof err), 2);
    EXPECT(strstr(err, "--grader") != NULL);
    EXPECT_EQ_INT(run_cmd("bin/grade --grader latex", "", out, sizeof out, err, sizeof err), 2);
    EXPECT(strstr(err, "latex") != NULL);
    EXPECT_EQ_INT(run_cmd("bin/grade --help", "", out, sizeof out, err, sizeof err), 0);
    EXPECT(strstr(out, "--grader") != NULL && strstr(out, "--canonical") != NULL);
}

int main(void) {
    RUN(cli);
    return unit_summary();
}
