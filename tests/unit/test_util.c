/* tests/unit/test_util.c — common/util: buffers, atomic writes, whole-file reads, errors, JSON
 * string escaping (hand-picked cases plus an exhaustive comparison with an independent model). */
#include "common/util.h"
#include "tests/unit/unit.h"

#include <unistd.h>

TEST(buf_printf_grows) {
    util_buf b;
    util_buf_init(&b);
    for (int i = 0; i < 1000; i++) util_buf_printf(&b, "%d,", i);
    EXPECT(b.len > 3000);
    EXPECT(b.data[b.len] == 0);
    EXPECT(strncmp(b.data, "0,1,2,", 6) == 0);
    util_buf_free(&b);
    EXPECT(b.data == NULL);
}

TEST(atomic_write_then_read) {
    char path[] = "/tmp/thinkfast-util-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256];
    EXPECT(util_write_file_atomic(path, "hello\n", 6, err, sizeof err) == 0);
    size_t n = 0;
    char *s = util_read_file(path, &n, err, sizeof err);
    EXPECT(s && n == 6 && strcmp(s, "hello\n") == 0);
    free(s);
    unlink(path);
    EXPECT(util_read_file(path, &n, err, sizeof err) == NULL);
    EXPECT(strstr(err, path) != NULL);
}

/* ---- util_buf_json_str ---- */

/* Escapes n bytes of s and compares the whole output (quotes included) with want. */
static void json_is(const char *s, size_t n, const char *want, int line) {
    util_buf b;
    util_buf_init(&b);
    util_buf_json_str(&b, s, n);
    EXPECT_MSG(b.len == strlen(want) && memcmp(b.data, want, b.len) == 0,
               "line %d: got [%s] want [%s]", line, b.data, want);
    EXPECT(b.data[b.len] == 0);
    util_buf_free(&b);
}
#define JSON_IS(lit, want) json_is((lit), sizeof(lit) - 1, (want), __LINE__)

TEST(json_str_escapes) {
    JSON_IS("", "\"\"");
    JSON_IS("plain text 123", "\"plain text 123\"");
    JSON_IS("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    JSON_IS("\n\r\t\b\f", "\"\\n\\r\\t\\b\\f\"");
    JSON_IS("\x01\x02\x1b\x1f\x7f", "\"\\u0001\\u0002\\u001b\\u001f\\u007f\"");
    JSON_IS(" ~", "\" ~\""); /* 0x20 and 0x7e are printable */
    /* embedded NUL is kept when n says so */
    JSON_IS("a\0b", "\"a\\u0000b\"");
    JSON_IS("\0", "\"\\u0000\"");
    /* s may be NULL with n == 0 */
    json_is(NULL, 0, "\"\"", __LINE__);
    /* appends: existing content is kept */
    util_buf b;
    util_buf_init(&b);
    util_buf_append(&b, "[", 1);
    util_buf_json_str(&b, "x", 1);
    util_buf_append(&b, ",", 1);
    util_buf_json_str(&b, "y\"", 2);
    EXPECT_EQ_STR(b.data, "[\"x\",\"y\\\"\"");
    util_buf_free(&b);
}

TEST(json_str_valid_utf8_copied) {
    JSON_IS("caf\xc3\xa9", "\"caf\xc3\xa9\"");                      /* U+00E9 */
    JSON_IS("\xc2\x80\xdf\xbf", "\"\xc2\x80\xdf\xbf\"");            /* U+0080, U+07FF */
    JSON_IS("\xe0\xa0\x80\xe2\x82\xac\xef\xbf\xbf", "\"\xe0\xa0\x80\xe2\x82\xac\xef\xbf\xbf\""); /* U+0800 € U+FFFF */
    JSON_IS("\xed\x9f\xbf\xee\x80\x80", "\"\xed\x9f\xbf\xee\x80\x80\""); /* U+D7FF, U+E000 */
    JSON_IS("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");            /* U+1F600 */
    JSON_IS("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\""); /* U+10000, U+10FFFF */
    JSON_IS("\xef\xbf\xbd", "\"\xef\xbf\xbd\"");                    /* a real U+FFFD stays raw */
    JSON_IS("\xe2\x82\xac\"\n", "\"\xe2\x82\xac\\\"\\n\"");        /* multibyte next to escapes */
}

TEST(json_str_invalid_utf8_replaced) {
    JSON_IS("\x80", "\"\\ufffd\"");                          /* lone continuation */
    JSON_IS("a\xbf" "b", "\"a\\ufffdb\"");
    JSON_IS("\xff\xfe", "\"\\ufffd\\ufffd\"");               /* never valid */
    JSON_IS("\xf5\x80\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* F5 lead */
    JSON_IS("\xc0\x80", "\"\\ufffd\\ufffd\"");               /* overlong NUL */
    JSON_IS("\xc1\xbf", "\"\\ufffd\\ufffd\"");               /* overlong U+007F */
    JSON_IS("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");    /* overlong '/' */
    JSON_IS("\xe0\x9f\xbf", "\"\\ufffd\\ufffd\\ufffd\"");    /* overlong U+07FF */
    JSON_IS("\xf0\x8f\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* overlong U+FFFF */
    JSON_IS("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");    /* surrogate D800 */
    JSON_IS("\xed\xbf\xbf", "\"\\ufffd\\ufffd\\ufffd\"");    /* surrogate DFFF */
    JSON_IS("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* U+110000 */
    JSON_IS("\xe2\x82", "\"\\ufffd\\ufffd\"");               /* truncated at end */
    JSON_IS("\xe2\x82z", "\"\\ufffd\\ufffdz\"");             /* truncated before ASCII */
    JSON_IS("\xf0\x9f\x98", "\"\\ufffd\\ufffd\\ufffd\"");
    JSON_IS("\xc3" "\xc3\xa9", "\"\\ufffd\xc3\xa9\"");       /* bad lead, then a good sequence */
    JSON_IS("\xe2\x82\n", "\"\\ufffd\\ufffd\\n\"");
    /* the sequence is judged within n: a valid tail beyond n does not count */
    json_is("\xc3\xa9", 1, "\"\\ufffd\"", __LINE__);
}

/* Independent model: decode by bit arithmetic, then reject overlong / surrogate / too large. */
static size_t ref_seq_len(const unsigned char *s, size_t n) {
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (!len || len > n) return 0;
    unsigned cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] >> 6) != 2) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
    return len;
}
static void ref_json(util_buf *b, const unsigned char *s, size_t n) {
    util_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t l = s[i] >= 0x80 ? ref_seq_len(s + i, n - i) : 0;
        if (l) { util_buf_append(b, s + i, l); i += l; continue; }
        unsigned c = s[i++];
        const char *e = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                      : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (e) util_buf_printf(b, "%s", e);
        else if (c >= 0x80) util_buf_printf(b, "\\ufffd");
        else if (c < 0x20 || c == 0x7f) util_buf_printf(b, "\\u%04x", c);
        else util_buf_append(b, &s[i - 1], 1);
    }
    util_buf_append(b, "\"", 1);
}

/* Every 1- and 2-byte input, every 3-byte input with a multibyte lead, and 4-byte inputs over
 * all F0..F4 leads and second bytes: the escaper agrees with the model. */
TEST(json_str_matches_model_exhaustively) {
    util_buf got, want;
    util_buf_init(&got);
    util_buf_init(&want);
    unsigned char s[4];
    long bad = 0, checked = 0;
#define CHECK_N(n) do { \
        got.len = want.len = 0; \
        util_buf_json_str(&got, (const char *)s, (n)); \
        ref_json(&want, s, (n)); \
        checked++; \
        if (got.len != want.len || memcmp(got.data, want.data, got.len) != 0) { \
            if (bad++ < 5) EXPECT_MSG(0, "input %02x %02x %02x %02x (n=%d): got [%s] want [%s]", \
                                      s[0], s[1], s[2], s[3], (int)(n), got.data, want.data); \
        } \
    } while (0)
    memset(s, 0, sizeof s);
    for (int a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        CHECK_N(1);
        for (int b2 = 0; b2 < 256; b2++) {
            s[1] = (unsigned char)b2;
            CHECK_N(2);
            if (a < 0xC0) continue;
            for (int c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                CHECK_N(3);
                if (a >= 0xF0 && a <= 0xF7 && (c == 0x80 || c == 0xBF || c == 0x41))
                    for (int d = 0; d < 256; d++) { s[3] = (unsigned char)d; CHECK_N(4); }
                s[3] = 0;
            }
            s[2] = 0;
        }
        s[1] = 0;
    }
#undef CHECK_N
    EXPECT_MSG(bad == 0, "%ld of %ld inputs differ from the model", bad, checked);
    util_buf_free(&got);
    util_buf_free(&want);
}

int main(void) {
    RUN(buf_printf_grows);
    RUN(atomic_write_then_read);
    RUN(json_str_escapes);
    RUN(json_str_valid_utf8_copied);
    RUN(json_str_invalid_utf8_replaced);
    RUN(json_str_matches_model_exhaustively);
    return unit_summary();
}
