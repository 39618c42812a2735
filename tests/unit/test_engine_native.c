/* tests/unit/test_engine_native.c — the "native" sample backend end to end on stories260K
 * (converted from llama2.c): every (problem, sample) emitted once with text, tokens, time and
 * finish; stop strings honoured; outputs independent of the number of decode slots and of how
 * problems are chunked into tasks; bad model paths give clear errors.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/model_testutil.h"
#include "tests/unit/unit.h"
#include "workers/model/llama2c.h"
#include "workers/sample/sample_backend.h"

static char *dir;

typedef struct outs { int n; int problem[64], sample[64], tokens[64]; char text[64][2048]; double time_s[64]; char finish[64][8]; } outs;
static int take(void *ud, const sample_output *o) {
    outs *s = ud;
    if (s->n >= 64) return 1;
    int i = s->n++;
    s->problem[i] = o->problem; s->sample[i] = o->sample; s->tokens[i] = o->tokens; s->time_s[i] = o->time_s;
    snprintf(s->text[i], sizeof s->text[i], "%s", o->text);
    snprintf(s->finish[i], sizeof s->finish[i], "%s", o->finish);
    return 0;
}
static int find(const outs *s, int p, int k) {
    for (int i = 0; i < s->n; i++) if (s->problem[i] == p && s->sample[i] == k) return i;
    return -1;
}

static sample_params params(void) {
    sample_params p;
    memset(&p, 0, sizeof p);
    p.n = 3; p.temperature = 0.8; p.top_p = 0.95; p.max_tokens = 40; p.seed = 11;
    p.template_name = "plain"; p.device = "cpu";
    return p;
}

TEST(native_emits_every_sample) {
    if (!dir) { unit_skip("stories260K conversion failed"); return; }
    char err[512];
    sample_backend *b = sample_backend_native_new(dir, "cpu", err, sizeof err);
    EXPECT_MSG(b != NULL, "%s", err);
    if (!b) return;
    sample_item items[2] = {{4, "a", "Lily saw a dog.", "", "1"}, {9, "b", "Tom had a red ball.", "", "2"}};
    sample_params p = params();
    static outs o;
    memset(&o, 0, sizeof o);
    EXPECT_MSG(b->run(b, items, 2, &p, take, &o, err, sizeof err) == 0, "%s", err);
    EXPECT_EQ_INT(o.n, 6);
    for (int pi = 0; pi < 2; pi++)
        for (int k = 0; k < 3; k++) {
            int i = find(&o, items[pi].problem, k);
            EXPECT_MSG(i >= 0, "problem %d sample %d missing", items[pi].problem, k);
            if (i < 0) continue;
            EXPECT(o.tokens[i] >= 1 && o.tokens[i] <= 40);
            EXPECT(o.time_s[i] > 0);
            EXPECT(!strcmp(o.finish[i], "stop") || !strcmp(o.finish[i], "length"));
            EXPECT(strcmp(o.finish[i], "length") || o.tokens[i] == 40);
        }
    /* different samples of one problem differ */
    EXPECT(strcmp(o.text[find(&o, 4, 0)], o.text[find(&o, 4, 1)]) != 0);
    /* one slot, and the problems as two separate tasks: same texts */
    setenv("THINKFAST_MAX_SEQS", "1", 1);
    sample_backend *b1 = sample_backend_native_new(dir, "cpu", err, sizeof err);
    unsetenv("THINKFAST_MAX_SEQS");
    static outs o1;
    memset(&o1, 0, sizeof o1);
    EXPECT(b1->run(b1, &items[1], 1, &p, take, &o1, err, sizeof err) == 0);
    EXPECT(b1->run(b1, &items[0], 1, &p, take, &o1, err, sizeof err) == 0);
    EXPECT_EQ_INT(o1.n, 6);
    int same = 1;
    for (int i = 0; i < o.n; i++) {
        int j = find(&o1, o.problem[i], o.sample[i]);
        same &= j >= 0 && !strcmp(o.text[i], o1.text[j]) && o.tokens[i] == o1.tokens[j];
    }
    EXPECT(same);
    /* a stop string */
    p.stop[0] = "\n";
    p.n_stop = 1;
    p.max_tokens = 120;
    memset(&o, 0, sizeof o);
    EXPECT(b->run(b, items, 2, &p, take, &o, err, sizeof err) == 0);
    int stopped = 0;
    for (int i = 0; i < o.n; i++) {
        EXPECT(strchr(o.text[i], '\n') == NULL);
        stopped += !strcmp(o.finish[i], "stop");
    }
    EXPECT(stopped > 0);
    /* emit abort stops the run */
    b1->destroy(&b1);
    b->destroy(&b);
    EXPECT(b == NULL);
}

TEST(native_bad_paths) {
    char err[512] = "";
    sample_backend *b = sample_backend_native_new("/nonexistent/model", "cpu", err, sizeof err);
    EXPECT(b == NULL);
    EXPECT_MSG(strstr(err, "/nonexistent/model") != NULL, "%s", err);
    b = sample_backend_native_new(dir ? dir : "/tmp", "tpu", err, sizeof err);
    EXPECT(b == NULL);
    EXPECT_MSG(strstr(err, "tpu") != NULL, "%s", err);
}

int main(void) {
    char err[512], ck[1024], tb[1024];
    char *d = mt_tmpdir("native");
    snprintf(ck, sizeof ck, "%s", unit_data_path("models/stories260K/stories260K.bin"));
    snprintf(tb, sizeof tb, "%s", unit_data_path("models/stories260K/tok512.bin"));
    if (llama2c_convert(ck, tb, d, NULL, 0, err, sizeof err) == 0) dir = d;
    else printf("conversion: %s\n", err);
    RUN(native_emits_every_sample);
    RUN(native_bad_paths);
    mt_rmdir(d);
    return unit_summary();
}
