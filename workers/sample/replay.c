/* workers/sample/replay.c — the replay backend: a calibration "model" for the pipeline.
 *
 * Sample s of problem p is the problem's reference solution, or — with probability `corrupt`,
 * decided by a hash of (seed, p, s) — the same solution with its final answer changed, so that
 * graders mark it wrong and pass@k per problem is 1 - corrupt^k in expectation. The final answer
 * is the last "#### N" line (GSM8K style) or else the last \boxed{...} (MATH style).
 * Telemetry matches what a model backend records: tokens = whitespace-separated words of the
 * emitted text (a stand-in for a tokenizer), time_s = measured wall time to produce the sample.
 * Sampling knobs are honoured where they have a meaning without a model: max_tokens truncates
 * the text to that many words (finish "length"), stop strings cut the text (finish "stop").
 */
#include "workers/sample/replay.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workers/sample/sample_backend.h"

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t replay_hash(uint64_t seed, int problem, int sample, int stream) {
    uint64_t h = mix64(seed);
    h = mix64(h ^ (uint64_t)(uint32_t)problem);
    h = mix64(h ^ ((uint64_t)(uint32_t)sample << 1));
    return mix64(h ^ ((uint64_t)(uint32_t)stream << 2));
}

double replay_uniform(uint64_t seed, int problem, int sample, int stream) {
    return (double)(replay_hash(seed, problem, sample, stream) >> 11) * (1.0 / 9007199254740992.0);
}

int replay_is_corrupt(uint64_t seed, int problem, int sample, double corrupt) {
    if (!(corrupt > 0)) return 0;
    if (corrupt >= 1) return 1;
    return replay_uniform(seed, problem, sample, 0) < corrupt;
}

/* Parses [sign] digits[,digits...] [. digits] surrounded by optional spaces and an optional
 * leading '$'. On success fills sign ('-' or 0), int digits (commas removed) and fraction. */
static int parse_number(const char *s, char *sign, char *ip, size_t ipcap, char *fp, size_t fpcap) {
    size_t ni = 0, nf = 0;
    *sign = 0;
    while (isspace((unsigned char)*s)) s++;
    if (*s == '$') s++;
    if (*s == '-' || *s == '+') { if (*s == '-') *sign = '-'; s++; }
    if (!isdigit((unsigned char)*s)) return -1;
    while (isdigit((unsigned char)*s) || (*s == ',' && isdigit((unsigned char)s[1]))) {
        if (*s != ',') { if (ni + 1 >= ipcap) return -1; ip[ni++] = *s; }
        s++;
    }
    ip[ni] = 0;
    if (*s == '.' && isdigit((unsigned char)s[1])) {
        s++;
        while (isdigit((unsigned char)*s)) { if (nf + 1 >= fpcap) return -1; fp[nf++] = *s++; }
    }
    fp[nf] = 0;
    while (isspace((unsigned char)*s) || *s == '.') s++; /* "18." at a sentence end */
    return *s ? -1 : 0;
}

void replay_wrong_answer(const char *answer, uint64_t seed, int problem, int sample, util_buf *out) {
    uint64_t h = replay_hash(seed, problem, sample, 1);
    int d = 1 + (int)(h % 9);              /* 1..9 */
    int neg = (int)((h >> 8) & 1);
    char sign, ip[64], fp[64];
    if (!answer) answer = "";
    if (parse_number(answer, &sign, ip, sizeof ip, fp, sizeof fp) == 0) {
        if (strlen(ip) <= 15) {
            long long v = strtoll(ip, NULL, 10);
            if (sign == '-') v = -v;
            long long w = neg ? v - d : v + d;
            if (w < 0 && v >= 0) w = v + d;  /* keep non-negative answers non-negative */
            util_buf_printf(out, "%lld", w);
        } else {  /* too long for an integer: change the last digit */
            size_t n = strlen(ip);
            ip[n - 1] = (char)('0' + (ip[n - 1] - '0' + d) % 10);
            util_buf_printf(out, "%s%s", sign == '-' ? "-" : "", ip);
        }
        if (fp[0]) util_buf_printf(out, ".%s", fp);
        return;
    }
    while (isspace((unsigned char)*answer)) answer++;
    size_t n = strlen(answer);
    while (n && isspace((unsigned char)answer[n - 1])) n--;
    if (n == 0) { util_buf_printf(out, "%d", d); return; }
    util_buf_append(out, answer, n);
    util_buf_printf(out, "+%d", d);
}

/* Finds the last "\boxed{" and its matching '}'; returns content start/end or -1. */
static int find_last_boxed(const char *s, size_t *c0, size_t *c1) {
    const char *p = NULL, *q = s;
    while ((q = strstr(q, "\\boxed{")) != NULL) { p = q; q += 7; }
    if (!p) return -1;
    const char *c = p + 7;
    int depth = 1;
    for (const char *e = c; *e; e++) {
        if (*e == '{') depth++;
        else if (*e == '}' && --depth == 0) { *c0 = (size_t)(c - s); *c1 = (size_t)(e - s); return 0; }
    }
    return -1;
}

void replay_render(const char *solution, const char *answer, int corrupt, uint64_t seed, int problem,
                   int sample, util_buf *out) {
    if (!solution || !*solution) {
        const char *a = answer ? answer : "";
        util_buf wrong;
        util_buf_init(&wrong);
        if (corrupt) { replay_wrong_answer(a, seed, problem, sample, &wrong); a = wrong.data; }
        util_buf_printf(out, "The answer is \\boxed{%s}.\n#### %s", a, a);
        util_buf_free(&wrong);
        return;
    }
    if (!corrupt) { util_buf_append(out, solution, strlen(solution)); return; }
    /* GSM8K: the last "####" marker, its answer running to the end of the line. */
    const char *mark = NULL, *q = solution;
    while ((q = strstr(q, "####")) != NULL) { mark = q; q += 4; }
    util_buf wrong;
    util_buf_init(&wrong);
    if (mark) {
        const char *a0 = mark + 4;
        while (*a0 == ' ' || *a0 == '\t') a0++;
        const char *a1 = a0;
        while (*a1 && *a1 != '\n') a1++;
        char *ref = answer && *answer ? xstrdup(answer) : NULL;
        if (!ref) { ref = xmalloc((size_t)(a1 - a0) + 1); memcpy(ref, a0, (size_t)(a1 - a0)); ref[a1 - a0] = 0; }
        replay_wrong_answer(ref, seed, problem, sample, &wrong);
        free(ref);
        util_buf_append(out, solution, (size_t)(mark - solution));
        util_buf_printf(out, "#### %s", wrong.data);
        util_buf_append(out, a1, strlen(a1));
    } else {
        size_t c0, c1;
        if (find_last_boxed(solution, &c0, &c1) == 0) {
            char *ref;
            if (answer && *answer) ref = xstrdup(answer);
            else { ref = xmalloc(c1 - c0 + 1); memcpy(ref, solution + c0, c1 - c0); ref[c1 - c0] = 0; }
            replay_wrong_answer(ref, seed, problem, sample, &wrong);
            free(ref);
            util_buf_append(out, solution, c0);
            util_buf_append(out, wrong.data, wrong.len);
            util_buf_append(out, solution + c1, strlen(solution + c1));
        } else { /* no marked answer: state a wrong one explicitly */
            replay_wrong_answer(answer, seed, problem, sample, &wrong);
            util_buf_append(out, solution, strlen(solution));
            util_buf_printf(out, "\nThe answer is \\boxed{%s}.\n#### %s", wrong.data, wrong.data);
        }
    }
    util_buf_free(&wrong);
}

/* ---- the backend object ---- */

typedef struct replay_impl {
    double corrupt;
    util_buf text;
} replay_impl;

static int count_words(const char *s, size_t n, size_t *cut_at, int max_words) {
    int words = 0;
    size_t i = 0;
    *cut_at = n;
    while (i < n) {
        while (i < n && isspace((unsigned char)s[i])) i++;
        if (i >= n) break;
        if (max_words > 0 && words == max_words) { *cut_at = i; return words; }
        words++;
        while (i < n && !isspace((unsigned char)s[i])) i++;
    }
    return words;
}

static int replay_run(sample_backend *b, const sample_item *items, int n_items, const sample_params *p,
                      sample_emit_fn emit, void *ud, char *err, size_t errlen) {
    replay_impl *im = b->impl;
    if (!p || p->n <= 0) return util_err(err, errlen, "replay: sampling.n must be positive");
    if (n_items < 0 || (n_items > 0 && !items)) return util_err(err, errlen, "replay: no items");
    for (int i = 0; i < n_items; i++) {
        for (int s = 0; s < p->n; s++) {
            int64_t t0 = util_now_ns();
            util_buf *t = &im->text;
            t->len = 0;
            if (t->data) t->data[0] = 0;
            int bad = replay_is_corrupt(p->seed, items[i].problem, s, im->corrupt);
            replay_render(items[i].solution, items[i].answer, bad, p->seed, items[i].problem, s, t);
            if (!t->data) util_buf_append(t, "", 0);
            const char *finish = "stop";
            size_t len = t->len;
            for (int k = 0; k < p->n_stop && k < 4; k++) {
                if (!p->stop[k] || !*p->stop[k]) continue;
                char *hit = strstr(t->data, p->stop[k]);
                if (hit && (size_t)(hit - t->data) < len) len = (size_t)(hit - t->data);
            }
            size_t cut;
            int tokens = count_words(t->data, len, &cut, p->max_tokens);
            if (cut < len) { len = cut; finish = "length"; }
            while (len > 0 && finish[0] == 'l' && isspace((unsigned char)t->data[len - 1])) len--;
            t->data[len] = 0;
            t->len = len;
            sample_output o = {.problem = items[i].problem, .sample = s, .text = t->data, .tokens = tokens,
                               .time_s = (double)(util_now_ns() - t0) * 1e-9, .finish = finish};
            if (emit(ud, &o) != 0) return 0;
        }
    }
    return 0;
}

static void replay_destroy(sample_backend **bp) {
    if (!bp || !*bp) return;
    replay_impl *im = (*bp)->impl;
    if (im) { util_buf_free(&im->text); free(im); }
    free(*bp);
    *bp = NULL;
}

sample_backend *sample_backend_replay_new(double corrupt, char *err, size_t errlen) {
    if (!(corrupt >= 0 && corrupt <= 1)) {
        util_err(err, errlen, "replay: model.corrupt must be in [0, 1], got %g", corrupt);
        return NULL;
    }
    sample_backend *b = xcalloc(1, sizeof *b);
    replay_impl *im = xcalloc(1, sizeof *im);
    im->corrupt = corrupt;
    util_buf_init(&im->text);
    b->impl = im;
    b->run = replay_run;
    b->destroy = replay_destroy;
    return b;
}
