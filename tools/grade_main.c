/* tools/grade_main.c — bin/grade: the graders on their own, JSONL in, JSONL out.
 *
 *   bin/grade --grader math|gsm8k [--canonical] < in.jsonl > out.jsonl
 * Each input line is an object {"response": str, "reference": str} ("answer" is accepted for
 * "reference"); each output line is {"extracted": str, "correct": bool} (plus "canonical" with
 * --canonical), one per non-blank input line, in order. A bad line is reported on stderr as
 * "grade: line N: why", answered with {"extracted":null,"correct":false,"error":"why"} so output
 * lines stay aligned with input lines, and makes the exit status 1 at the end.
 */
#include "workers/score/grade.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: bin/grade --grader math|gsm8k [--canonical] < in.jsonl > out.jsonl\n"
            "  --grader NAME   which grader: math (last \\boxed{}, LaTeX equivalence) or gsm8k\n"
            "                  (final number); required, no default\n"
            "  --canonical     also write \"canonical\": the majority-voting key of the answer\n"
            "  --help          this text\n"
            "input lines:  {\"response\": \"...\", \"reference\": \"...\"}   (\"answer\" = \"reference\")\n"
            "output lines: {\"extracted\": \"...\", \"correct\": true|false}\n"
            "exit status: 0, or 1 if any line was bad (each reported on stderr with its line number)\n");
}

/* Model output may hold invalid UTF-8, which JSON cannot carry: replace each bad byte by '?'. */
static void utf8_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        int ok = len > 0;
        for (int i = 1; ok && i < len; i++) ok = (p[i] >> 6) == 2;
        if (!ok) { *p++ = '?'; continue; }
        p += len;
    }
}

static void emit(json_t *o) {
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s) { fputs(s, stdout); fputc('\n', stdout); free(s); }
    json_decref(o);
}

int main(int argc, char **argv) {
    const char *gname = NULL;
    int want_canon = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(argv[i], "--grader") == 0 && i + 1 < argc) gname = argv[++i];
        else if (strncmp(argv[i], "--grader=", 9) == 0) gname = argv[i] + 9;
        else if (strcmp(argv[i], "--canonical") == 0) want_canon = 1;
        else { fprintf(stderr, "grade: unknown argument '%s' (see --help)\n", argv[i]); return 2; }
    }
    grader_kind k;
    if (!gname) { fprintf(stderr, "grade: --grader math|gsm8k is required (see --help)\n"); return 2; }
    if (grade_parse_kind(gname, &k) != 0) { fprintf(stderr, "grade: --grader: unknown grader '%s' (math|gsm8k)\n", gname); return 2; }

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, bad = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        size_t l = (size_t)len;
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r' || line[l - 1] == ' ')) l--;
        if (l == 0) continue;
        json_error_t je;
        char why[300] = "";
        json_t *in = json_loadb(line, l, JSON_REJECT_DUPLICATES, &je);
        const char *resp = NULL, *ref = NULL;
        if (!in) snprintf(why, sizeof why, "invalid JSON at column %d: %s", je.column, je.text);
        else if (!json_is_object(in)) snprintf(why, sizeof why, "expected a JSON object");
        else {
            json_t *r = json_object_get(in, "response");
            json_t *f = json_object_get(in, "reference");
            if (!f) f = json_object_get(in, "answer");
            if (!json_is_string(r)) snprintf(why, sizeof why, "\"response\": expected a string");
            else if (!json_is_string(f)) snprintf(why, sizeof why, "\"reference\": expected a string");
            else { resp = json_string_value(r); ref = json_string_value(f); }
        }
        json_t *out = json_object();
        if (why[0]) {
            fprintf(stderr, "grade: line %ld: %s\n", lineno, why);
            bad++;
            json_object_set_new(out, "extracted", json_null());
            json_object_set_new(out, "correct", json_false());
            json_object_set_new(out, "error", json_string(why));
        } else {
            char ex[GRADE_ANSWER_MAX + 1];
            int ok = grade_answer(k, resp, ref, ex, sizeof ex);
            utf8_sanitize(ex);
            json_object_set_new(out, "extracted", json_string(ex));
            json_object_set_new(out, "correct", json_boolean(ok));
            if (want_canon) {
                char cn[GRADE_ANSWER_MAX + 1];
                grade_canonical(k, ex, cn, sizeof cn);
                utf8_sanitize(cn);
                json_object_set_new(out, "canonical", json_string(cn));
            }
        }
        emit(out);
        json_decref(in);
    }
    free(line);
    if (bad) fprintf(stderr, "grade: %ld of %ld lines were bad\n", bad, lineno);
    return bad ? 1 : 0;
}
