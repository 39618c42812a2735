/* jobs/dataset.c — dataset readers (GSM8K, MATH, generic JSONL) and the synth dispatch.
 *
 * Files are read line by line (split on '\n' only: GSM8K escapes U+2028, never raw); each line
 * is parsed by jansson, which decodes \uXXXX escapes and surrogate pairs to UTF-8 and rejects
 * invalid UTF-8 and \u0000. Records are validated field by field; the first bad record stops
 * the load with "FILE:LINE: FIELD: problem".
 */
#include "jobs/dataset.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "jobs/synth.h"

void job_dataset_push(job_dataset *d, const char *id, const char *question, const char *solution,
                      const char *answer, const char *subject, int level) {
    /* capacity is implicit: 16, then doubled whenever n reaches a power of two >= 16 */
    if (d->n == 0 || (d->n >= 16 && (d->n & (d->n - 1)) == 0))
        d->items = xrealloc(d->items, (size_t)(d->n ? d->n * 2 : 16) * sizeof *d->items);
    job_problem *p = &d->items[d->n++];
    p->id = xstrdup(id ? id : "");
    p->question = xstrdup(question ? question : "");
    p->solution = xstrdup(solution ? solution : "");
    p->answer = xstrdup(answer ? answer : "");
    p->subject = xstrdup(subject ? subject : "");
    p->level = level;
}

void job_dataset_free(job_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->items[i].id);
        free(d->items[i].question);
        free(d->items[i].solution);
        free(d->items[i].answer);
        free(d->items[i].subject);
    }
    free(d->items);
    d->items = NULL;
    d->n = 0;
}

void job_strip_calc_annotations(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '<' && r[1] == '<') {
            char *end = strstr(r + 2, ">>");
            if (end) {
                r = end + 2;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = 0;
}

/* The contents of the last \boxed{...} (or \fbox{...}) with balanced braces, or NULL. */
static char *last_boxed(const char *s) {
    const char *best = NULL;
    for (const char *p = s; (p = strstr(p, "\\boxed")) != NULL; p++) best = p;
    if (!best)
        for (const char *p = s; (p = strstr(p, "\\fbox")) != NULL; p++) best = p;
    if (!best) return NULL;
    const char *open = strchr(best, '{');
    if (!open) return NULL;
    int depth = 0;
    for (const char *p = open; *p; p++) {
        if (*p == '{') depth++;
        else if (*p == '}' && --depth == 0) {
            size_t n = (size_t)(p - open - 1);
            char *out = xmalloc(n + 1);
            memcpy(out, open + 1, n);
            out[n] = 0;
            return out;
        }
    }
    return NULL;
}

static void trim(char *s) {
    size_t n = strlen(s), a = 0;
    while (a < n && (s[a] == ' ' || s[a] == '\t' || s[a] == '\n' || s[a] == '\r')) a++;
    while (n > a && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    memmove(s, s + a, n - a);
    s[n - a] = 0;
}

typedef struct rctx {
    const char *path;
    long line;
    char *err;
    size_t errlen;
} rctx;

/* A required (or optional) string field; *out borrowed from the json. */
static int field_str(rctx *c, json_t *obj, const char *key, int required, const char **out) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        return util_err(c->err, c->errlen, "%s:%ld: %s: missing", c->path, c->line, key);
    }
    if (!json_is_string(v))
        return util_err(c->err, c->errlen, "%s:%ld: %s: expected a string", c->path, c->line, key);
    *out = json_string_value(v);
    return 0;
}

/* A string or number field rendered as text into buf. */
static int field_text(rctx *c, json_t *obj, const char *key, int required, char *buf, size_t cap,
                      const char **out) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        if (!required) return 0;
        return util_err(c->err, c->errlen, "%s:%ld: %s: missing", c->path, c->line, key);
    }
    if (json_is_string(v)) *out = json_string_value(v);
    else if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
        *out = buf;
    } else if (json_is_real(v) && isfinite(json_real_value(v))) {
        double x = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, cap, "%.*g", prec, x);
            if (strtod(buf, NULL) == x) break;
        }
        *out = buf;
    } else {
        return util_err(c->err, c->errlen, "%s:%ld: %s: expected a string or a number", c->path,
                        c->line, key);
    }
    return 0;
}

/* One record -> problem; index = record number (0-based) for default ids. */
static int read_record(rctx *c, const char *format, json_t *obj, int index, job_dataset *d) {
    char idbuf[32], ansbuf[64];
    snprintf(idbuf, sizeof idbuf, "%d", index);
    if (!strcmp(format, "gsm8k")) {
        const char *q, *a;
        if (field_str(c, obj, "question", 1, &q) || field_str(c, obj, "answer", 1, &a)) return -1;
        const char *mark = NULL;
        for (const char *p = a; (p = strstr(p, "####")) != NULL; p++) mark = p;
        if (!mark)
            return util_err(c->err, c->errlen, "%s:%ld: answer: missing the final '#### N'",
                            c->path, c->line);
        char *num = xstrdup(mark + 4), *w = num;
        for (char *r = num; *r; r++)
            if (*r != ',') *w++ = *r;
        *w = 0;
        trim(num);
        if (!num[0]) {
            free(num);
            return util_err(c->err, c->errlen, "%s:%ld: answer: empty value after '####'",
                            c->path, c->line);
        }
        char *sol = xstrdup(a);
        job_strip_calc_annotations(sol);
        job_dataset_push(d, idbuf, q, sol, num, "", 0);
        free(num);
        free(sol);
        return 0;
    }
    if (!strcmp(format, "math")) {
        const char *q, *sol, *ans, *subj, *uid;
        char uidbuf[32];
        if (field_str(c, obj, "problem", 1, &q) || field_str(c, obj, "solution", 0, &sol) ||
            field_text(c, obj, "answer", 0, ansbuf, sizeof ansbuf, &ans) ||
            field_str(c, obj, "subject", 0, &subj) ||
            field_text(c, obj, "unique_id", 0, uidbuf, sizeof uidbuf, &uid))
            return -1;
        int level = 0;
        json_t *lv = json_object_get(obj, "level");
        if (lv && json_is_integer(lv)) {
            level = (int)json_integer_value(lv);
        } else if (lv && json_is_string(lv)) {
            const char *s = json_string_value(lv);
            if (!strncmp(s, "Level ", 6)) s += 6;
            char *end;
            long x = strtol(s, &end, 10);
            if (end != s && *end == 0 && x >= 0 && x < 100) level = (int)x; /* "Level ?" -> 0 */
        } else if (lv && !json_is_null(lv)) {
            return util_err(c->err, c->errlen,
                            "%s:%ld: level: expected an integer or \"Level N\"", c->path, c->line);
        }
        char *boxed = NULL;
        if (!ans) {
            boxed = sol ? last_boxed(sol) : NULL;
            if (!boxed)
                return util_err(c->err, c->errlen,
                                "%s:%ld: answer: missing (and no \\boxed{} in the solution)",
                                c->path, c->line);
            ans = boxed;
        }
        job_dataset_push(d, uid ? uid : idbuf, q, sol, ans, subj, level);
        free(boxed);
        return 0;
    }
    /* jsonl */
    const char *q, *ans, *id, *sol;
    char idb[32];
    if (field_str(c, obj, "prompt", 1, &q) ||
        field_text(c, obj, "answer", 1, ansbuf, sizeof ansbuf, &ans) ||
        field_text(c, obj, "id", 0, idb, sizeof idb, &id) || field_str(c, obj, "solution", 0, &sol))
        return -1;
    job_dataset_push(d, id ? id : idbuf, q, sol, ans, "", 0);
    return 0;
}

int job_dataset_read_file(const char *path, const char *format, int limit, job_dataset *out,
                          char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (strcmp(format, "gsm8k") && strcmp(format, "math") && strcmp(format, "jsonl"))
        return util_err(err, errlen, "%s: unknown dataset format \"%s\" (expected gsm8k|math|jsonl)",
                        path, format);
    FILE *f = fopen(path, "rb");
    if (!f) return util_err(err, errlen, "%s: %s", path, strerror(errno));
    rctx c = {path, 0, err, errlen};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((limit <= 0 || out->n < limit) && (n = getline(&line, &cap, f)) >= 0) {
        c.line++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t a = 0;
        while (a < len && (line[a] == ' ' || line[a] == '\t')) a++;
        if (a == len) continue; /* blank line */
        json_error_t je;
        json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (!obj) {
            rc = util_err(err, errlen, "%s:%ld:%d: invalid JSON: %s", path, c.line, je.column,
                          je.text);
            break;
        }
        if (!json_is_object(obj)) {
            json_decref(obj);
            rc = util_err(err, errlen, "%s:%ld: expected a JSON object per line", path, c.line);
            break;
        }
        rc = read_record(&c, format, obj, out->n, out);
        json_decref(obj);
        if (rc) break;
    }
    if (rc == 0 && ferror(f)) rc = util_err(err, errlen, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (rc == 0 && out->n == 0) rc = util_err(err, errlen, "%s: no records", path);
    if (rc) job_dataset_free(out);
    return rc;
}

int job_dataset_load(const job_spec *spec, job_dataset *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!strcmp(spec->dataset.format, "synth")) {
        synth_params p;
        synth_params_default(&p);
        p.n = spec->dataset.n;
        if (spec->dataset.limit > 0 && spec->dataset.limit < p.n) p.n = spec->dataset.limit;
        p.seed = spec->dataset.seed;
        p.steps_min = spec->dataset.steps_min;
        p.steps_max = spec->dataset.steps_max;
        p.num_min = spec->dataset.num_min;
        p.num_max = spec->dataset.num_max;
        return synth_generate(&p, out, err, errlen);
    }
    if (!spec->dataset.path[0]) return util_err(err, errlen, "dataset.path: not set");
    return job_dataset_read_file(spec->dataset.path, spec->dataset.format, spec->dataset.limit,
                                 out, err, errlen);
}
