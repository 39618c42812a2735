/* tests/unit/test_tokenizer_cli.c — bin/tokenize end to end (runs the built program).
 *
 * Skips when bin/tokenize has not been built. Expected ids are the llama2.c run.c ones from
 * tests/fixtures/tokenizer/llama2c-tok512.jsonl and the Llama-3 special ids of SOURCES.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/unit.h"

#define BIN "bin/tokenize"

/* Runs a shell command; returns its exit status and stdout (+ stderr when merge). */
static int run_cmd(const char *cmd, int merge, util_buf *out) {
    char full[4096];
    snprintf(full, sizeof full, "%s%s", cmd, merge ? " 2>&1" : " 2>/dev/null");
    FILE *f = popen(full, "r");
    if (!f) return -1;
    char buf[4096];
    size_t n;
    util_buf_init(out);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) util_buf_append(out, buf, n);
    if (!out->data) util_buf_append(out, "", 0);
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int have_bin(void) {
    if (access(BIN, X_OK) == 0) return 1;
    unit_skip(BIN " not built");
    return 0;
}

TEST(ids_and_pieces_llama2c) {
    if (!have_bin()) return;
    const char *tk = unit_data_path("models/stories260K/tok512.bin");
    if (access(tk, R_OK) != 0) { unit_skip("tok512.bin not available"); return; }
    char cmd[1024];
    util_buf o;
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text 'Once upon a time' --ids", tk);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "403 407 261 378\n");
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text 'Once upon a time' --ids --bos", tk);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "1 403 407 261 378\n");
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text 'a\nb'", tk);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "261\t a\n13\t\\n\n430\tb\n"); /* <0x0A> shown escaped */
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --decode 1,403,407,261,378", tk);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "\n<s>\nOnce upon a time\n");
    util_buf_free(&o);
}

TEST(text_file_and_specials_llama3) {
    if (!have_bin()) return;
    const char *tk = unit_data_path("tokenizers/llama3-tokenizer.model");
    if (access(tk, R_OK) != 0) { unit_skip("llama3-tokenizer.model not available"); return; }
    char path[] = "/tmp/thinkfast-tokcli-XXXXXX";
    int fd = mkstemp(path);
    const char text[] = "Hi<|eot_id|>\xff";
    EXPECT(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
    close(fd);
    char cmd[1024];
    util_buf o;
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text-file %s --ids --special --bos", tk, path);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "128000 13347 128009 187\n");
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text-file %s --special", tk, path);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "13347\tHi\n128009\t<|eot_id|>\n187\t\\xFF\n");
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --text-file %s --special --json", tk, path);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "{\"ids\":[13347,128009,187],\"pieces\":[\"Hi\",\"<|eot_id|>\",\"\xef\xbf\xbd\"]}\n");
    util_buf_free(&o);
    snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --decode '9906 11 1917 0' --json", tk);
    EXPECT_EQ_INT(run_cmd(cmd, 0, &o), 0);
    EXPECT_EQ_STR(o.data, "{\"text\":\"Hello, world!\"}\n");
    util_buf_free(&o);
    unlink(path);
}

TEST(usage_errors) {
    if (!have_bin()) return;
    util_buf o;
    EXPECT_EQ_INT(run_cmd(BIN " --help", 0, &o), 0);
    EXPECT(strstr(o.data, "--tokenizer") && strstr(o.data, "--text-file") && strstr(o.data, "--special"));
    util_buf_free(&o);
    EXPECT_EQ_INT(run_cmd(BIN " --text hi", 1, &o), 2);
    EXPECT(strstr(o.data, "--tokenizer PATH is required") != NULL);
    util_buf_free(&o);
    EXPECT_EQ_INT(run_cmd(BIN " --tokenizer /nonexistent/tok.model --text hi", 1, &o), 1);
    EXPECT(strstr(o.data, "/nonexistent/tok.model") != NULL);
    util_buf_free(&o);
    EXPECT_EQ_INT(run_cmd(BIN " --tokenizer x --text a --text-file b", 1, &o), 2);
    util_buf_free(&o);
    EXPECT_EQ_INT(run_cmd(BIN " --tokenizer x --bogus", 1, &o), 2);
    EXPECT(strstr(o.data, "--bogus") != NULL);
    util_buf_free(&o);
    const char *tk = unit_data_path("models/stories260K/tok512.bin");
    if (access(tk, R_OK) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --decode 1,999", tk);
        EXPECT_EQ_INT(run_cmd(cmd, 1, &o), 1);
        EXPECT(strstr(o.data, "out of range") != NULL);
        util_buf_free(&o);
        snprintf(cmd, sizeof cmd, BIN " --tokenizer %s --decode 1,x", tk);
        EXPECT_EQ_INT(run_cmd(cmd, 1, &o), 2);
        util_buf_free(&o);
    }
}

int main(void) {
    RUN(ids_and_pieces_llama2c);
    RUN(text_file_and_specials_llama3);
    RUN(usage_errors);
    return unit_summary();
}
