/* common/util.h — small helpers every module needs: clocks, checked allocation, whole-file
 * reads, bounded string formatting into caller error buffers, a growable buffer and JSON
 * string escaping into it.
 */
#ifndef THINKFAST_UTIL_H
#define THINKFAST_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in milliseconds / nanoseconds (CLOCK_MONOTONIC). */
int64_t util_now_ms(void);
int64_t util_now_ns(void);
/* Wall clock, milliseconds since the Unix epoch (for records people read). */
int64_t util_wall_ms(void);

/* malloc/calloc/realloc that abort with file:line on out-of-memory (for sizes we chose, not
 * sizes read from untrusted input: validate those first). */
void *util_xmalloc_at(size_t n, const char *file, int line);
void *util_xcalloc_at(size_t count, size_t n, const char *file, int line);
void *util_xrealloc_at(void *p, size_t n, const char *file, int line);
char *util_xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) util_xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(c, n) util_xcalloc_at((c), (n), __FILE__, __LINE__)
#define xrealloc(p, n) util_xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) util_xstrdup_at((s), __FILE__, __LINE__)

/* Reads a whole file into a NUL-terminated heap buffer (caller frees). Returns NULL and writes
 * "PATH: reason" into err (if non-NULL) on failure. *len_out gets the byte count (without NUL). */
char *util_read_file(const char *path, size_t *len_out, char *err, size_t errlen);

/* Writes len bytes to path atomically (temp file + fsync + rename). 0 ok, -1 with err set. */
int util_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* snprintf into an error buffer; tolerates err == NULL. Always returns -1 (for `return util_err(...)`). */
int util_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* mkdir -p. 0 ok, -1 (errno set). */
int util_mkdirs(const char *path, int mode);

/* Growable byte buffer, used for building messages and text. */
typedef struct util_buf {
    char *data;
    size_t len, cap;
} util_buf;
void util_buf_init(util_buf *b);
void util_buf_free(util_buf *b);
void util_buf_reserve(util_buf *b, size_t extra);
void util_buf_append(util_buf *b, const void *p, size_t n);
void util_buf_printf(util_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Keeps data NUL-terminated after every append (len excludes the NUL). */

/* Appends s[0..n) to b as one quoted JSON string; use it rather than a local escaper, so every
 * JSON writer treats odd bytes the same way. n is explicit, so embedded NUL bytes are kept (as \u0000); s may be
 * NULL when n == 0. The output is always valid JSON and valid UTF-8, whatever the input:
 *   - `"` and `\` are backslash-escaped; \n \r \t \b \f use their short escapes;
 *   - every other byte < 0x20, and 0x7f, becomes \u00xx (lower-case hex);
 *   - well-formed UTF-8 sequences (shortest form, no surrogates, <= U+10FFFF) are copied as is;
 *   - every byte of an ill-formed sequence (stray continuation byte, C0/C1/F5..FF lead, overlong
 *     form, encoded surrogate D800..DFFF, code point > U+10FFFF, truncated sequence) is replaced
 *     by the escape \ufffd (U+FFFD), one per byte, and decoding resumes at the next byte.
 * Never fails (allocation failure aborts, as in util_buf_append). */
void util_buf_json_str(util_buf *b, const char *s, size_t n);

#endif
