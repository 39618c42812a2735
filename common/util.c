/* common/util.c — implementation of common/util.h. */

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t util_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int64_t util_now_ms(void) { return util_now_ns() / 1000000LL; }
int64_t util_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
}

static void oom(size_t n, const char *file, int line) {
    fprintf(stderr, "fatal: %s:%d: out of memory allocating %zu bytes\n", file, line, n);
    abort();
}
void *util_xmalloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}
void *util_xcalloc_at(size_t c, size_t n, const char *file, int line) {
    void *p = calloc(c ? c : 1, n ? n : 1);
    if (!p) oom(c * n, file, line);
    return p;
}
void *util_xrealloc_at(void *q, size_t n, const char *file, int line) {
    void *p = realloc(q, n ? n : 1);
    if (!p) oom(n, file, line);
    return p;
}
char *util_xstrdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *p = util_xmalloc_at(n, file, line);
    memcpy(p, s, n);
    return p;
}

int util_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

char *util_read_file(const char *path, size_t *len_out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { util_err(err, errlen, "%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) { cap *= 2; buf = xrealloc(buf, cap); }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) {
        util_err(err, errlen, "%s: read error: %s", path, strerror(errno));
        fclose(f); free(buf); return NULL;
    }
    fclose(f);
    buf[len] = 0;
    if (len_out) *len_out = len;
    return buf;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return util_err(err, errlen, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            int e = errno; close(fd); unlink(tmp);
            return util_err(err, errlen, "%s: write: %s", tmp, strerror(e));
        }
        p += w; left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) { unlink(tmp); return util_err(err, errlen, "%s: fsync/close: %s", tmp, strerror(errno)); }
    if (rename(tmp, path) != 0) { int e = errno; unlink(tmp); return util_err(err, errlen, "%s: rename: %s", path, strerror(e)); }
    return 0;
}

int util_mkdirs(const char *path, int mode) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) { errno = ENAMETOOLONG; return -1; }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, (mode_t)mode) != 0 && errno != EEXIST) return -1;
    return 0;
}

void util_buf_init(util_buf *b) { b->data = NULL; b->len = b->cap = 0; }
void util_buf_free(util_buf *b) { free(b->data); util_buf_init(b); }
void util_buf_reserve(util_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}
void util_buf_append(util_buf *b, const void *p, size_t n) {
    util_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}
void util_buf_printf(util_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { va_end(ap2); return; }
    util_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available, n >= 1, s[0] >= 0x80), or 0
 * when the lead byte does not start one. Ranges from Unicode Table 3-7. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (s[0] >= 0xC2 && s[0] <= 0xDF) len = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        if (s[0] == 0xE0) lo = 0xA0;      /* overlong */
        else if (s[0] == 0xED) hi = 0x9F; /* surrogates */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        if (s[0] == 0xF0) lo = 0x90;      /* overlong */
        else if (s[0] == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else return 0;                      /* continuation byte, C0, C1, F5..FF */
    if (len > n || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return len;
}

void util_buf_json_str(util_buf *b, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    util_buf_reserve(b, n + 2);
    util_buf_append(b, "\"", 1);
    size_t run = 0; /* start of the pending run of bytes copied verbatim */
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') { i++; continue; }
        if (c >= 0x80) {
            size_t l = utf8_seq_len(p + i, n - i);
            if (l) { i += l; continue; }
        }
        if (i > run) util_buf_append(b, p + run, i - run);
        switch (c) {
        case '"': util_buf_append(b, "\\\"", 2); break;
        case '\\': util_buf_append(b, "\\\\", 2); break;
        case '\n': util_buf_append(b, "\\n", 2); break;
        case '\r': util_buf_append(b, "\\r", 2); break;
        case '\t': util_buf_append(b, "\\t", 2); break;
        case '\b': util_buf_append(b, "\\b", 2); break;
        case '\f': util_buf_append(b, "\\f", 2); break;
        default:
            if (c >= 0x80) util_buf_append(b, "\\ufffd", 6);
            else util_buf_printf(b, "\\u%04x", c); /* other controls and DEL */
        }
        run = ++i;
    }
    if (i > run) util_buf_append(b, p + run, i - run);
    util_buf_append(b, "\"", 1);
}
