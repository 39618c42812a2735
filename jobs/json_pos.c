/* jobs/json_pos.c — a tiny JSON scanner that finds where a field path sits in the text.
 *
 * It does not validate (jansson already did): it walks objects and arrays, building the dotted
 * path of each value, and stops at the first value (or key) whose path equals the target.
 * Malformed input only ends the walk early; every read is bounded by len and nesting by
 * JPOS_MAX_DEPTH, so untrusted text cannot crash it.
 */
#include "jobs/json_pos.h"

#include <stdio.h>
#include <string.h>

#define JPOS_MAX_DEPTH 64
#define JPOS_MAX_PATH 512

typedef struct jscan {
    const char *s;
    size_t len, i;
    const char *target;
    int want_key;
    long found; /* byte offset, -1 = not yet */
} jscan;

static void skip_ws(jscan *c) {
    while (c->i < c->len && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
                             c->s[c->i] == '\r'))
        c->i++;
}

/* Scans a string starting at the opening quote; copies its raw contents (escapes kept as
 * written, except \" and \\) into out if non-NULL. Returns 0, or -1 if unterminated. */
static int scan_string(jscan *c, char *out, size_t cap) {
    size_t o = 0;
    if (c->i >= c->len || c->s[c->i] != '"') return -1;
    c->i++;
    while (c->i < c->len) {
        char ch = c->s[c->i++];
        if (ch == '"') {
            if (out && cap) out[o < cap ? o : cap - 1] = 0;
            return 0;
        }
        if (ch == '\\' && c->i < c->len) {
            char e = c->s[c->i++];
            if (e == '"' || e == '\\' || e == '/') ch = e;
            else {
                if (out && o + 1 < cap) out[o++] = '\\';
                ch = e;
            }
        }
        if (out && o + 1 < cap) out[o++] = ch;
    }
    return -1;
}

static int scan_value(jscan *c, char *path, size_t plen, int depth);

static int child_path(char *path, size_t plen, const char *key, int index, size_t *newlen) {
    int n;
    if (key) n = snprintf(path + plen, JPOS_MAX_PATH - plen, "%s%s", plen ? "." : "", key);
    else n = snprintf(path + plen, JPOS_MAX_PATH - plen, "[%d]", index);
    if (n < 0 || (size_t)n >= JPOS_MAX_PATH - plen) return -1;
    *newlen = plen + (size_t)n;
    return 0;
}

static int scan_value(jscan *c, char *path, size_t plen, int depth) {
    if (depth > JPOS_MAX_DEPTH) return -1;
    skip_ws(c);
    if (c->i >= c->len) return -1;
    path[plen] = 0;
    if (!c->want_key && strcmp(path, c->target) == 0) {
        c->found = (long)c->i;
        return 1;
    }
    char ch = c->s[c->i];
    if (ch == '{') {
        c->i++;
        for (;;) {
            skip_ws(c);
            if (c->i >= c->len) return -1;
            if (c->s[c->i] == '}') { c->i++; return 0; }
            if (c->s[c->i] == ',') { c->i++; continue; }
            size_t key_off = c->i;
            char key[256];
            if (scan_string(c, key, sizeof key) != 0) return -1;
            size_t nl;
            int ok = child_path(path, plen, key, 0, &nl) == 0;
            if (ok && c->want_key && strcmp(path, c->target) == 0) {
                c->found = (long)key_off;
                return 1;
            }
            skip_ws(c);
            if (c->i >= c->len || c->s[c->i] != ':') return -1;
            c->i++;
            int r = ok ? scan_value(c, path, nl, depth + 1) : scan_value(c, path, plen, depth + 1);
            path[plen] = 0;
            if (r != 0) return r;
        }
    }
    if (ch == '[') {
        c->i++;
        int index = 0;
        for (;;) {
            skip_ws(c);
            if (c->i >= c->len) return -1;
            if (c->s[c->i] == ']') { c->i++; return 0; }
            if (c->s[c->i] == ',') { c->i++; index++; continue; }
            size_t nl;
            int ok = child_path(path, plen, NULL, index, &nl) == 0;
            int r = ok ? scan_value(c, path, nl, depth + 1) : scan_value(c, path, plen, depth + 1);
            path[plen] = 0;
            if (r != 0) return r;
        }
    }
    if (ch == '"') return scan_string(c, NULL, 0);
    /* number / true / false / null: up to the next delimiter */
    while (c->i < c->len && !strchr(",]} \t\r\n", c->s[c->i])) c->i++;
    return 0;
}

void json_pos_linecol(const char *text, size_t len, size_t off, int *line, int *col) {
    int l = 1, k = 1;
    if (off > len) off = len;
    for (size_t i = 0; i < off; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') { l++; k = 1; }
        else if ((ch & 0xC0) != 0x80) k++; /* count characters, not continuation bytes */
    }
    *line = l;
    *col = k;
}

int json_pos_find(const char *text, size_t len, const char *path, int want_key, int *line,
                  int *col) {
    char buf[JPOS_MAX_PATH + 1];
    jscan c = {text, len, 0, path ? path : "", want_key, -1};
    *line = 1;
    *col = 1;
    if (!text) return -1;
    buf[0] = 0;
    if (want_key && !*c.target) want_key = c.want_key = 0;
    scan_value(&c, buf, 0, 0);
    if (c.found < 0) return -1;
    json_pos_linecol(text, len, (size_t)c.found, line, col);
    return 0;
}
