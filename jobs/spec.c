/* jobs/spec.c — job spec parsing, validation and canonical rendering (see jobs/spec.h).
 *
 * jansson parses the text (duplicate keys rejected); this file walks the tree section by
 * section against a table of known keys, fills defaults, checks ranges and cross-field
 * consistency, and reports the first problem with its position found by jobs/json_pos.c.
 * The canonical JSON is written by hand (fixed key order, shortest round-trip doubles) so that
 * it is byte-stable across runs and jansson versions.
 */
#include "jobs/spec.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"
#include "jobs/json_pos.h"

typedef struct pctx {
    const char *text;
    size_t len;
    const char *file;
    char *err;
    size_t errlen;
} pctx;

/* ---- errors ---- */

/* Writes "FILE:LINE:COL: PATH: message". want_key: point at the member's key. If path is not
 * in the text (a missing field), the position of the nearest present ancestor is used. */
static int fail_at(pctx *c, const char *path, int want_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(pctx *c, const char *path, int want_key, const char *fmt, ...) {
    char msg[768], anc[512];
    int line = 1, col = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(anc, sizeof anc, "%s", path);
    int found = json_pos_find(c->text, c->len, anc, want_key, &line, &col) == 0;
    while (!found && anc[0]) {
        char *dot = strrchr(anc, '.'), *br = strrchr(anc, '[');
        char *cut = dot > br ? dot : br;
        if (cut) *cut = 0;
        else anc[0] = 0;
        found = json_pos_find(c->text, c->len, anc, 0, &line, &col) == 0;
    }
    if (path[0])
        util_err(c->err, c->errlen, "%s:%d:%d: %s: %s", c->file, line, col, path, msg);
    else
        util_err(c->err, c->errlen, "%s:%d:%d: %s", c->file, line, col, msg);
    return -1;
}

/* Shortest "%.Ng" that reads back as the same double; ".0" added to integral values. */
static void fmt_double(double x, char *out, size_t cap) {
    if (!isfinite(x)) { snprintf(out, cap, "null"); return; }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, x);
        if (strtod(out, NULL) == x) break;
    }
    if (!strpbrk(out, ".eE")) {
        size_t n = strlen(out);
        if (n + 2 < cap) memcpy(out + n, ".0", 3);
    }
}

/* A short human rendering of a JSON value for "got ..." messages. */
static void describe(const json_t *v, char *out, size_t cap) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: snprintf(out, cap, "an object"); break;
    case JSON_ARRAY: snprintf(out, cap, "an array"); break;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = strlen(s);
        if (n > 40) snprintf(out, cap, "\"%.40s...\"", s);
        else snprintf(out, cap, "\"%s\"", s);
        break;
    }
    case JSON_INTEGER: snprintf(out, cap, "%lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: fmt_double(json_real_value(v), out, cap); break;
    case JSON_TRUE: snprintf(out, cap, "true"); break;
    case JSON_FALSE: snprintf(out, cap, "false"); break;
    default: snprintf(out, cap, "null"); break;
    }
}

/* ---- known keys and suggestions ---- */

static const char *const KEYS_TOP[] = {"kind", "name", "model", "dataset", "prompt", "sampling",
                                       "score", "aggregate", "chunk", "priority",
                                       "max_attempts", NULL};
static const char *const KEYS_MODEL[] = {"backend", "corrupt", "path", "device", NULL};
static const char *const KEYS_DATASET[] = {"path", "format", "limit", "n", "seed", "steps",
                                           "numbers", NULL};
static const char *const KEYS_PROMPT[] = {"template", "system", NULL};
static const char *const KEYS_SAMPLING[] = {"n", "temperature", "top_p", "top_k", "min_p",
                                            "max_tokens", "seed", "stop", NULL};
static const char *const KEYS_SCORE[] = {"grader", "reward", NULL};
static const char *const KEYS_REWARD[] = {"model", "kind", "device", "prm_token", "prm_separator",
                                          "prm_aggregate", "prm_bad_token", NULL};
static const char *const KEYS_AGGREGATE[] = {"k", NULL};

static const struct {
    const char *section;
    const char *const *keys;
} SECTIONS[] = {{"", KEYS_TOP},          {"model", KEYS_MODEL},   {"dataset", KEYS_DATASET},
                {"prompt", KEYS_PROMPT}, {"sampling", KEYS_SAMPLING}, {"score", KEYS_SCORE},
                {"aggregate", KEYS_AGGREGATE}, {"score.reward", KEYS_REWARD}};

/* Edit distance (case-insensitive) for "did you mean", capped for long strings. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int m = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < m) m = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < m) m = d[i - 1][j - 1] + cost;
            /* adjacent transposition counts as one edit ("temprature" vs "temperature" is 1) */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < m)
                m = d[i - 2][j - 2] + 1;
            d[i][j] = m;
        }
    return d[la][lb];
}

static int check_keys(pctx *c, const json_t *obj, const char *section, const char *const *keys) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int known = 0;
        for (int i = 0; keys[i]; i++)
            if (strcmp(keys[i], key) == 0) known = 1;
        if (known) continue;
        char path[512];
        snprintf(path, sizeof path, "%s%s%s", section, *section ? "." : "", key);
        const char *best = NULL;
        int bestd = 99, lim = strlen(key) <= 4 ? 1 : 2;
        for (int i = 0; keys[i]; i++) {
            int dd = edit_distance(key, keys[i]);
            if (dd < bestd) { bestd = dd; best = keys[i]; }
        }
        if (best && bestd <= lim)
            return fail_at(c, path, 1, "unknown key (did you mean %s?)", best);
        /* a known key placed in the wrong section */
        for (size_t s = 0; s < sizeof SECTIONS / sizeof SECTIONS[0]; s++) {
            if (strcmp(SECTIONS[s].section, section) == 0) continue;
            for (int i = 0; SECTIONS[s].keys[i]; i++)
                if (strcmp(SECTIONS[s].keys[i], key) == 0) {
                    if (SECTIONS[s].section[0])
                        return fail_at(c, path, 1, "unknown key (did you mean %s.%s?)",
                                       SECTIONS[s].section, key);
                    return fail_at(c, path, 1, "unknown key (it belongs at the top level)");
                }
        }
        char list[256] = "";
        for (int i = 0; keys[i]; i++) {
            size_t n = strlen(list);
            snprintf(list + n, sizeof list - n, "%s%s", i ? "|" : "", keys[i]);
        }
        return fail_at(c, path, 1, "unknown key (expected %s)", list);
    }
    return 0;
}

/* ---- typed getters; each returns 0 (absent: dst untouched, or set) or -1 (error reported) ---- */

static void join(char *out, size_t cap, const char *section, const char *key) {
    snprintf(out, cap, "%s%s%s", section, *section ? "." : "", key);
}

/* An optional sub-object; *out = NULL when absent. */
static int get_section(pctx *c, const json_t *root, const char *key, const json_t **out) {
    *out = json_object_get(root, key);
    if (!*out) return 0;
    if (!json_is_object(*out)) {
        char got[96];
        describe(*out, got, sizeof got);
        return fail_at(c, key, 0, "expected an object, got %s", got);
    }
    return 0;
}

/* String in one of `choices` ("a|b|c", NULL = any), at most cap-1 bytes. what names the
 * thing for the "unknown X" message. *present set to 1 if the key was there. */
static int get_str(pctx *c, const json_t *obj, const char *section, const char *key, char *dst,
                   size_t cap, const char *choices, const char *what, int *present) {
    char path[256], got[96];
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (present) *present = v != NULL;
    if (!v) return 0;
    join(path, sizeof path, section, key);
    if (!json_is_string(v)) {
        describe(v, got, sizeof got);
        return fail_at(c, path, 0, "expected a string, got %s", got);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n >= cap) return fail_at(c, path, 0, "too long (%zu bytes, at most %zu)", n, cap - 1);
    if (choices) {
        int ok = 0;
        const char *p = choices;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == n && strncmp(p, s, l) == 0) ok = 1;
            p += l + (bar ? 1 : 0);
        }
        if (!ok) {
            describe(v, got, sizeof got);
            return fail_at(c, path, 0, "unknown %s %s (expected %s)", what, got, choices);
        }
    }
    memcpy(dst, s, n + 1);
    return 0;
}

static int get_int(pctx *c, const json_t *obj, const char *section, const char *key, int *dst,
                   long long lo, long long hi, const char *expect) {
    char path[256], got[96];
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) return 0;
    join(path, sizeof path, section, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        describe(v, got, sizeof got);
        return fail_at(c, path, 0, "expected %s, got %s", expect, got);
    }
    *dst = (int)json_integer_value(v);
    return 0;
}

static int get_u64(pctx *c, const json_t *obj, const char *section, const char *key,
                   uint64_t *dst) {
    char path[256], got[96];
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) return 0;
    join(path, sizeof path, section, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        describe(v, got, sizeof got);
        return fail_at(c, path, 0, "expected a non-negative integer, got %s", got);
    }
    *dst = (uint64_t)json_integer_value(v);
    return 0;
}

/* A number in [lo, hi] (lo excluded when lo_open). Integers are accepted. */
static int get_num(pctx *c, const json_t *obj, const char *section, const char *key, double *dst,
                   double lo, int lo_open, double hi, const char *expect) {
    char path[256], got[96];
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) return 0;
    join(path, sizeof path, section, key);
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!json_is_number(v) || !isfinite(x) || x < lo || (lo_open && x == lo) || x > hi) {
        describe(v, got, sizeof got);
        return fail_at(c, path, 0, "expected %s, got %s", expect, got);
    }
    *dst = x;
    return 0;
}

/* [a, b] pair of integers within [lo, hi] with a <= b (a < b when strict). */
static int get_pair(pctx *c, const json_t *obj, const char *section, const char *key, int *a,
                    int *b, int lo, int hi, int strict) {
    char path[256], got[96];
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) return 0;
    join(path, sizeof path, section, key);
    if (!json_is_array(v) || json_array_size(v) != 2) {
        describe(v, got, sizeof got);
        return fail_at(c, path, 0, "expected [min, max], got %s", got);
    }
    long long x[2];
    for (int i = 0; i < 2; i++) {
        const json_t *e = json_array_get(v, (size_t)i);
        char ep[280];
        snprintf(ep, sizeof ep, "%s[%d]", path, i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi) {
            describe(e, got, sizeof got);
            return fail_at(c, ep, 0, "expected an integer in [%d, %d], got %s", lo, hi, got);
        }
        x[i] = json_integer_value(e);
    }
    if (x[0] > x[1] || (strict && x[0] == x[1]))
        return fail_at(c, path, 0, "min %lld must be %s max %lld", x[0], strict ? "<" : "<=",
                       x[1]);
    *a = (int)x[0];
    *b = (int)x[1];
    return 0;
}

/* ---- defaults ---- */

static void spec_defaults(job_spec *s, const char *filename) {
    memset(s, 0, sizeof *s);
    snprintf(s->kind, sizeof s->kind, "sample");
    const char *base = filename ? strrchr(filename, '/') : NULL;
    base = base ? base + 1 : filename;
    if (base && *base && strcmp(base, "<spec>") != 0) {
        snprintf(s->name, sizeof s->name, "%s", base);
        size_t n = strlen(s->name);
        if (n > 5 && strcmp(s->name + n - 5, ".json") == 0) s->name[n - 5] = 0;
    } else {
        snprintf(s->name, sizeof s->name, "job");
    }
    snprintf(s->model.backend, sizeof s->model.backend, "replay");
    snprintf(s->model.device, sizeof s->model.device, "auto");
    s->dataset.n = 500;
    s->dataset.seed = 1;
    s->dataset.steps_min = 2;
    s->dataset.steps_max = 6;
    s->dataset.num_min = 2;
    s->dataset.num_max = 100;
    snprintf(s->prompt.template_name, sizeof s->prompt.template_name, "plain");
    s->sampling.n = 16;
    s->sampling.temperature = 0.8;
    s->sampling.top_p = 0.95;
    s->sampling.top_k = 0;
    s->sampling.min_p = 0;
    s->sampling.max_tokens = 1024;
    s->sampling.seed = 1;
    s->chunk = 8;
    s->priority = 0;
    s->max_attempts = 3;
}

static int contains_ci(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return 1;
    return 0;
}

/* ---- sections ---- */

static int parse_model(pctx *c, const json_t *m, job_spec *s) {
    int has_corrupt = m && json_object_get(m, "corrupt");
    if (m && check_keys(c, m, "model", KEYS_MODEL)) return -1;
    if (get_str(c, m, "model", "backend", s->model.backend, sizeof s->model.backend,
                "replay|native", "backend", NULL) ||
        get_num(c, m, "model", "corrupt", &s->model.corrupt, 0, 0, 1, "a number in [0, 1]") ||
        get_str(c, m, "model", "path", s->model.path, sizeof s->model.path, NULL, NULL, NULL) ||
        get_str(c, m, "model", "device", s->model.device, sizeof s->model.device, NULL, NULL,
                NULL))
        return -1;
    const char *d = s->model.device;
    int dev_ok = !strcmp(d, "auto") || !strcmp(d, "cpu") || !strcmp(d, "cuda");
    if (!dev_ok && !strncmp(d, "cuda:", 5) && d[5]) {
        dev_ok = 1;
        for (const char *p = d + 5; *p; p++)
            if (!isdigit((unsigned char)*p) || p - (d + 5) > 3) dev_ok = 0;
    }
    if (!dev_ok)
        return fail_at(c, "model.device", 0, "unknown device \"%s\" (expected auto|cpu|cuda|cuda:N)",
                       d);
    if (!strcmp(s->model.backend, "native") && !s->model.path[0])
        return fail_at(c, "model.path", 0, "required for backend native (a model directory)");
    if (!strcmp(s->model.backend, "native") && has_corrupt && s->model.corrupt != 0)
        return fail_at(c, "model.corrupt", 0, "only valid with backend replay");
    return 0;
}

static int parse_dataset(pctx *c, const json_t *d, job_spec *s) {
    int has_format = 0, has_path = 0;
    if (!d) return fail_at(c, "dataset", 0, "required (a path, or {\"format\": \"synth\"})");
    if (check_keys(c, d, "dataset", KEYS_DATASET)) return -1;
    if (get_str(c, d, "dataset", "format", s->dataset.format, sizeof s->dataset.format,
                "gsm8k|math|jsonl|synth", "format", &has_format) ||
        get_str(c, d, "dataset", "path", s->dataset.path, sizeof s->dataset.path, NULL, NULL,
                &has_path) ||
        get_int(c, d, "dataset", "limit", &s->dataset.limit, 0, INT_MAX,
                "an integer >= 0 (0 = all)"))
        return -1;
    if (has_path && !s->dataset.path[0]) return fail_at(c, "dataset.path", 0, "must not be empty");
    if (!has_format) {
        if (!has_path)
            return fail_at(c, "dataset.path", 0,
                           "required (or set dataset.format to \"synth\" for built-in data)");
        if (contains_ci(s->dataset.path, "math")) strcpy(s->dataset.format, "math");
        else if (contains_ci(s->dataset.path, "gsm")) strcpy(s->dataset.format, "gsm8k");
        else
            return fail_at(c, "dataset.format", 0,
                           "required: cannot tell the format from the path (expected "
                           "gsm8k|math|jsonl|synth)");
    }
    int synth = !strcmp(s->dataset.format, "synth");
    if (synth) {
        if (has_path) return fail_at(c, "dataset.path", 0, "not used by format synth");
        if (get_int(c, d, "dataset", "n", &s->dataset.n, 1, 1000000,
                    "a positive integer (at most 1000000; write bigger sets with jobctl gen-data)") ||
            get_u64(c, d, "dataset", "seed", &s->dataset.seed) ||
            get_pair(c, d, "dataset", "steps", &s->dataset.steps_min, &s->dataset.steps_max, 1,
                     12, 0) ||
            get_pair(c, d, "dataset", "numbers", &s->dataset.num_min, &s->dataset.num_max, 1,
                     100000, 1))
            return -1;
    } else {
        if (!has_path)
            return fail_at(c, "dataset.path", 0, "required for format %s", s->dataset.format);
        static const char *const synth_only[] = {"n", "seed", "steps", "numbers"};
        for (int i = 0; i < 4; i++)
            if (json_object_get(d, synth_only[i])) {
                char path[64];
                snprintf(path, sizeof path, "dataset.%s", synth_only[i]);
                return fail_at(c, path, 1, "only valid with format synth (use limit to keep the "
                                           "first N problems)");
            }
        s->dataset.n = 0;
        s->dataset.seed = 0;
        s->dataset.steps_min = s->dataset.steps_max = 0;
        s->dataset.num_min = s->dataset.num_max = 0;
    }
    return 0;
}

static int parse_sampling(pctx *c, const json_t *m, job_spec *s) {
    if (!m) return 0;
    if (check_keys(c, m, "sampling", KEYS_SAMPLING)) return -1;
    if (get_int(c, m, "sampling", "n", &s->sampling.n, 1, 1 << 20, "a positive integer") ||
        get_num(c, m, "sampling", "temperature", &s->sampling.temperature, 0, 0, 100,
                "a number in [0, 100]") ||
        get_num(c, m, "sampling", "top_p", &s->sampling.top_p, 0, 1, 1, "a number in (0, 1]") ||
        get_int(c, m, "sampling", "top_k", &s->sampling.top_k, 0, INT_MAX,
                "an integer >= 0 (0 = off)") ||
        get_num(c, m, "sampling", "min_p", &s->sampling.min_p, 0, 0, 1, "a number in [0, 1]") ||
        get_int(c, m, "sampling", "max_tokens", &s->sampling.max_tokens, 1, 1 << 20,
                "a positive integer (at most 1048576)") ||
        get_u64(c, m, "sampling", "seed", &s->sampling.seed))
        return -1;
    const json_t *stop = json_object_get(m, "stop");
    if (stop) {
        char got[96];
        if (json_is_string(stop)) {
            stop = json_pack("[O]", stop); /* treat "x" as ["x"] */
        } else if (!json_is_array(stop)) {
            describe(stop, got, sizeof got);
            return fail_at(c, "sampling.stop", 0, "expected a string or an array of strings, got %s",
                           got);
        } else {
            json_incref((json_t *)stop);
        }
        int rc = 0;
        if (json_array_size(stop) > JOB_SPEC_MAX_STOP)
            rc = fail_at(c, "sampling.stop", 0, "at most %d stop strings, got %zu",
                         JOB_SPEC_MAX_STOP, json_array_size(stop));
        for (size_t i = 0; rc == 0 && i < json_array_size(stop); i++) {
            const json_t *e = json_array_get(stop, i);
            char path[64];
            snprintf(path, sizeof path, json_is_array(json_object_get(m, "stop")) ?
                     "sampling.stop[%zu]" : "sampling.stop", i);
            if (!json_is_string(e)) {
                describe(e, got, sizeof got);
                rc = fail_at(c, path, 0, "expected a string, got %s", got);
            } else if (json_string_length(e) == 0 || json_string_length(e) >= 64 ||
                       strlen(json_string_value(e)) != json_string_length(e)) {
                rc = fail_at(c, path, 0, "expected 1 to 63 bytes, got %zu",
                             json_string_length(e));
            } else {
                strcpy(s->sampling.stop[s->sampling.n_stop++], json_string_value(e));
            }
        }
        json_decref((json_t *)stop);
        if (rc) return -1;
    }
    return 0;
}

/* score.reward: the optional reward model (workers/score/reward.h). */
static int parse_reward(pctx *c, const json_t *score, job_spec *s) {
    const json_t *r = score ? json_object_get(score, "reward") : NULL;
    if (!r) return 0;
    char got[96];
    if (!json_is_object(r)) {
        describe(r, got, sizeof got);
        return fail_at(c, "score.reward", 0, "expected an object, got %s", got);
    }
    if (check_keys(c, r, "score.reward", KEYS_REWARD)) return -1;
    strcpy(s->score.reward.kind, "orm");
    strcpy(s->score.reward.device, "auto");
    strcpy(s->score.reward.prm_separator, "\n\n");
    strcpy(s->score.reward.prm_aggregate, "last");
    int has_model = 0, has_bad = 0;
    const char *sec = "score.reward";
    if (get_str(c, r, sec, "model", s->score.reward.model, sizeof s->score.reward.model, NULL, NULL,
                &has_model) ||
        get_str(c, r, sec, "kind", s->score.reward.kind, sizeof s->score.reward.kind, "orm|prm",
                "kind", NULL) ||
        get_str(c, r, sec, "device", s->score.reward.device, sizeof s->score.reward.device, NULL,
                NULL, NULL) ||
        get_str(c, r, sec, "prm_token", s->score.reward.prm_token,
                sizeof s->score.reward.prm_token, NULL, NULL, NULL) ||
        get_str(c, r, sec, "prm_separator", s->score.reward.prm_separator,
                sizeof s->score.reward.prm_separator, NULL, NULL, NULL) ||
        get_str(c, r, sec, "prm_aggregate", s->score.reward.prm_aggregate,
                sizeof s->score.reward.prm_aggregate, "last|min|prod", "aggregate rule", NULL) ||
        get_str(c, r, sec, "prm_bad_token", s->score.reward.prm_bad_token,
                sizeof s->score.reward.prm_bad_token, NULL, NULL, &has_bad))
        return -1;
    if (!s->score.reward.model[0])
        return fail_at(c, "score.reward.model", 0, "required (a reward model directory)");
    const char *d = s->score.reward.device;
    int dev_ok = !strcmp(d, "auto") || !strcmp(d, "cpu") || !strcmp(d, "cuda");
    if (!dev_ok && !strncmp(d, "cuda:", 5) && d[5]) {
        dev_ok = 1;
        for (const char *p = d + 5; *p; p++)
            if (!isdigit((unsigned char)*p) || p - (d + 5) > 3) dev_ok = 0;
    }
    if (!dev_ok)
        return fail_at(c, "score.reward.device", 0,
                       "unknown device \"%s\" (expected auto|cpu|cuda|cuda:N)", d);
    if (!strcmp(s->score.reward.kind, "prm")) {
        if (!s->score.reward.prm_token[0])
            return fail_at(c, "score.reward.prm_token", 0,
                           "required for kind prm (the token whose probability scores a step)");
        if (!s->score.reward.prm_separator[0])
            return fail_at(c, "score.reward.prm_separator", 0, "must not be empty");
        if (has_bad && !s->score.reward.prm_bad_token[0])
            return fail_at(c, "score.reward.prm_bad_token", 0,
                           "must not be empty (leave it out to score a step by p(prm_token) alone)");
        if (has_bad && !strcmp(s->score.reward.prm_bad_token, s->score.reward.prm_token))
            return fail_at(c, "score.reward.prm_bad_token", 0, "must differ from prm_token (\"%s\")",
                           s->score.reward.prm_token);
    } else {
        static const char *const prm_only[] = {"prm_token", "prm_separator", "prm_aggregate",
                                               "prm_bad_token", NULL};
        for (int i = 0; prm_only[i]; i++)
            if (json_object_get(r, prm_only[i])) {
                char path[64];
                snprintf(path, sizeof path, "score.reward.%s", prm_only[i]);
                return fail_at(c, path, 1, "only valid with kind prm");
            }
    }
    return 0;
}

static int parse_aggregate(pctx *c, const json_t *m, job_spec *s) {
    const json_t *k = m ? json_object_get(m, "k") : NULL;
    if (m && check_keys(c, m, "aggregate", KEYS_AGGREGATE)) return -1;
    if (!k) { /* powers of two below n, then n */
        s->aggregate.n_k = 0;
        for (long long p = 1; p < s->sampling.n && s->aggregate.n_k < JOB_SPEC_MAX_K - 1; p *= 2)
            s->aggregate.k[s->aggregate.n_k++] = (int)p;
        s->aggregate.k[s->aggregate.n_k++] = s->sampling.n;
        return 0;
    }
    char got[96];
    if (!json_is_array(k) || json_array_size(k) == 0) {
        describe(k, got, sizeof got);
        return fail_at(c, "aggregate.k", 0, "expected a non-empty array of positive integers, got %s",
                       got);
    }
    if (json_array_size(k) > JOB_SPEC_MAX_K)
        return fail_at(c, "aggregate.k", 0, "at most %d values, got %zu", JOB_SPEC_MAX_K,
                       json_array_size(k));
    for (size_t i = 0; i < json_array_size(k); i++) {
        const json_t *e = json_array_get(k, i);
        char path[64];
        snprintf(path, sizeof path, "aggregate.k[%zu]", i);
        if (!json_is_integer(e) || json_integer_value(e) < 1) {
            describe(e, got, sizeof got);
            return fail_at(c, path, 0, "expected a positive integer, got %s", got);
        }
        long long x = json_integer_value(e);
        if (x > s->sampling.n)
            return fail_at(c, path, 0, "k = %lld exceeds sampling.n = %d", x, s->sampling.n);
        if (i > 0 && x <= s->aggregate.k[i - 1])
            return fail_at(c, path, 0, "k values must be strictly increasing (%d then %lld)",
                           s->aggregate.k[i - 1], x);
        s->aggregate.k[s->aggregate.n_k++] = (int)x;
    }
    return 0;
}

/* ---- canonical JSON ---- */

static void emit_str(util_buf *b, const char *s) { util_buf_json_str(b, s, strlen(s)); }

static void emit_num(util_buf *b, double x) {
    char tmp[48];
    fmt_double(x, tmp, sizeof tmp);
    util_buf_printf(b, "%s", tmp);
}

void job_spec_render(job_spec *s) {
    util_buf b;
    util_buf_init(&b);
    util_buf_printf(&b, "{\"kind\":");
    emit_str(&b, s->kind);
    util_buf_printf(&b, ",\"name\":");
    emit_str(&b, s->name);
    util_buf_printf(&b, ",\"model\":{\"backend\":");
    emit_str(&b, s->model.backend);
    util_buf_printf(&b, ",\"corrupt\":");
    emit_num(&b, s->model.corrupt);
    util_buf_printf(&b, ",\"path\":");
    emit_str(&b, s->model.path);
    util_buf_printf(&b, ",\"device\":");
    emit_str(&b, s->model.device);
    util_buf_printf(&b, "},\"dataset\":{");
    if (!strcmp(s->dataset.format, "synth")) {
        util_buf_printf(&b, "\"format\":\"synth\",\"n\":%d,\"seed\":%llu,\"steps\":[%d,%d],"
                            "\"numbers\":[%d,%d]",
                        s->dataset.n, (unsigned long long)s->dataset.seed, s->dataset.steps_min,
                        s->dataset.steps_max, s->dataset.num_min, s->dataset.num_max);
    } else {
        util_buf_printf(&b, "\"path\":");
        emit_str(&b, s->dataset.path);
        util_buf_printf(&b, ",\"format\":");
        emit_str(&b, s->dataset.format);
    }
    util_buf_printf(&b, ",\"limit\":%d},\"prompt\":{\"template\":", s->dataset.limit);
    emit_str(&b, s->prompt.template_name);
    util_buf_printf(&b, ",\"system\":");
    emit_str(&b, s->prompt.system);
    util_buf_printf(&b, "},\"sampling\":{\"n\":%d,\"temperature\":", s->sampling.n);
    emit_num(&b, s->sampling.temperature);
    util_buf_printf(&b, ",\"top_p\":");
    emit_num(&b, s->sampling.top_p);
    util_buf_printf(&b, ",\"top_k\":%d,\"min_p\":", s->sampling.top_k);
    emit_num(&b, s->sampling.min_p);
    util_buf_printf(&b, ",\"max_tokens\":%d,\"seed\":%llu,\"stop\":[", s->sampling.max_tokens,
                    (unsigned long long)s->sampling.seed);
    for (int i = 0; i < s->sampling.n_stop; i++) {
        if (i) util_buf_append(&b, ",", 1);
        emit_str(&b, s->sampling.stop[i]);
    }
    util_buf_printf(&b, "]},\"score\":{\"grader\":");
    emit_str(&b, s->score.grader);
    if (s->score.reward.model[0]) {
        util_buf_printf(&b, ",\"reward\":{\"model\":");
        emit_str(&b, s->score.reward.model);
        util_buf_printf(&b, ",\"kind\":");
        emit_str(&b, s->score.reward.kind);
        util_buf_printf(&b, ",\"device\":");
        emit_str(&b, s->score.reward.device);
        if (!strcmp(s->score.reward.kind, "prm")) {
            util_buf_printf(&b, ",\"prm_token\":");
            emit_str(&b, s->score.reward.prm_token);
            util_buf_printf(&b, ",\"prm_separator\":");
            emit_str(&b, s->score.reward.prm_separator);
            util_buf_printf(&b, ",\"prm_aggregate\":");
            emit_str(&b, s->score.reward.prm_aggregate);
            if (s->score.reward.prm_bad_token[0]) {
                util_buf_printf(&b, ",\"prm_bad_token\":");
                emit_str(&b, s->score.reward.prm_bad_token);
            }
        }
        util_buf_printf(&b, "}");
    }
    util_buf_printf(&b, "},\"aggregate\":{\"k\":[");
    for (int i = 0; i < s->aggregate.n_k; i++)
        util_buf_printf(&b, "%s%d", i ? "," : "", s->aggregate.k[i]);
    util_buf_printf(&b, "]},\"chunk\":%d,\"priority\":%d,\"max_attempts\":%d}", s->chunk,
                    s->priority, s->max_attempts);
    free(s->json);
    s->json = b.data; /* ownership moves to the spec */
}

/* ---- entry points ---- */

int job_spec_parse(const char *text, size_t len, const char *filename, job_spec *out, char *err,
                   size_t errlen) {
    pctx c = {text, len, filename && *filename ? filename : "<spec>", err, errlen};
    json_error_t je;
    json_t *root = NULL;
    const json_t *model, *dataset, *prompt, *sampling, *score, *aggregate;
    int rc = -1;
    job_spec *s = out;

    spec_defaults(s, c.file);
    if (!text) {
        util_err(err, errlen, "%s: no text", c.file);
        goto fail;
    }
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) { /* UTF-8 BOM from some editors */
        text += 3;
        len -= 3;
        c.text = text;
        c.len = len;
    }
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        util_err(err, errlen, "%s:%d:%d: syntax error: %s", c.file, je.line > 0 ? je.line : 1,
                 je.column > 0 ? je.column : 1, je.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        char got[96];
        describe(root, got, sizeof got);
        fail_at(&c, "", 0, "expected a JSON object (a job spec), got %s", got);
        goto fail;
    }
    if (check_keys(&c, root, "", KEYS_TOP)) goto fail;
    if (get_str(&c, root, "", "kind", s->kind, sizeof s->kind, "sample", "kind", NULL) ||
        get_str(&c, root, "", "name", s->name, sizeof s->name, NULL, NULL, NULL))
        goto fail;
    if (!s->name[0]) {
        fail_at(&c, "name", 0, "must not be empty");
        goto fail;
    }
    for (const char *p = s->name; *p; p++)
        if ((unsigned char)*p < 0x20) {
            fail_at(&c, "name", 0, "control characters are not allowed");
            goto fail;
        }
    if (get_section(&c, root, "model", &model) || get_section(&c, root, "dataset", &dataset) ||
        get_section(&c, root, "prompt", &prompt) || get_section(&c, root, "sampling", &sampling) ||
        get_section(&c, root, "score", &score) || get_section(&c, root, "aggregate", &aggregate))
        goto fail;
    if (parse_model(&c, model, s) || parse_dataset(&c, dataset, s)) goto fail;
    if (prompt && (check_keys(&c, prompt, "prompt", KEYS_PROMPT) ||
                   get_str(&c, prompt, "prompt", "template", s->prompt.template_name,
                           sizeof s->prompt.template_name, "plain|llama3-chat", "template", NULL) ||
                   get_str(&c, prompt, "prompt", "system", s->prompt.system,
                           sizeof s->prompt.system, NULL, NULL, NULL)))
        goto fail;
    if (parse_sampling(&c, sampling, s)) goto fail;
    strcpy(s->score.grader, !strcmp(s->dataset.format, "math") ? "math" : "gsm8k");
    if (score && (check_keys(&c, score, "score", KEYS_SCORE) ||
                  get_str(&c, score, "score", "grader", s->score.grader, sizeof s->score.grader,
                          "gsm8k|math", "grader", NULL)))
        goto fail;
    if (parse_reward(&c, score, s)) goto fail;
    if (parse_aggregate(&c, aggregate, s)) goto fail;
    if (get_int(&c, root, "", "chunk", &s->chunk, 1, 1 << 20, "a positive integer") ||
        get_int(&c, root, "", "priority", &s->priority, -1000000, 1000000,
                "an integer in [-1000000, 1000000]") ||
        get_int(&c, root, "", "max_attempts", &s->max_attempts, 1, 100,
                "an integer in [1, 100]"))
        goto fail;
    job_spec_render(s);
    rc = 0;
fail:
    json_decref(root);
    if (rc != 0) {
        memset(s, 0, sizeof *s);
    }
    return rc;
}

/* Collapses "//", "/./" and "/x/../" in an absolute path, in place (lexically: symlinks are
 * not resolved, so a file that does not exist yet still gets a clear error when read). */
static void normalize_abs(char *path) {
    char *seg[512];
    int n = 0;
    char *save = NULL, tmp[8192];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *t = strtok_r(tmp, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) { if (n > 0) n--; continue; }
        if (n < 512) seg[n++] = t;
    }
    char out[8192];
    size_t o = 0;
    out[0] = 0;
    for (int i = 0; i < n; i++) o += (size_t)snprintf(out + o, sizeof out - o, "/%s", seg[i]);
    if (n == 0) strcpy(out, "/");
    strcpy(path, out); /* never longer than the input */
}

/* Makes a relative path absolute against the current directory. */
static int absolutize(char *path, size_t cap, char *err, size_t errlen, const char *file,
                      const char *field) {
    if (!path[0]) return 0;
    char cwd[4096], tmp[8192];
    if (path[0] == '/') {
        snprintf(tmp, sizeof tmp, "%s", path);
    } else {
        if (!getcwd(cwd, sizeof cwd))
            return util_err(err, errlen, "%s: %s: cannot read the current directory", file, field);
        snprintf(tmp, sizeof tmp, "%s/%s", cwd, path);
    }
    normalize_abs(tmp);
    if (strlen(tmp) >= cap)
        return util_err(err, errlen, "%s: %s: absolute path too long (%zu bytes)", file, field,
                        strlen(tmp));
    strcpy(path, tmp);
    return 0;
}

int job_spec_load(const char *path, job_spec *out, char *err, size_t errlen) {
    size_t len = 0;
    memset(out, 0, sizeof *out);
    char *text = util_read_file(path, &len, err, errlen);
    if (!text) return -1;
    int rc = job_spec_parse(text, len, path, out, err, errlen);
    free(text);
    if (rc) return rc;
    if (absolutize(out->dataset.path, sizeof out->dataset.path, err, errlen, path,
                   "dataset.path") ||
        absolutize(out->model.path, sizeof out->model.path, err, errlen, path, "model.path") ||
        absolutize(out->score.reward.model, sizeof out->score.reward.model, err, errlen, path,
                   "score.reward.model")) {
        job_spec_free(out);
        return -1;
    }
    job_spec_render(out);
    return 0;
}

void job_spec_free(job_spec *s) {
    if (!s) return;
    free(s->json);
    memset(s, 0, sizeof *s);
}
