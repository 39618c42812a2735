/* workers/model/tok_pretok.c — the regex pre-tokenizer of byte-level BPE (Llama-3 split).
 *
 * Text is cut into pieces by a PCRE2 pattern compiled with UTF + UCP, so \p{L}, \p{N} and \s are
 * Unicode-aware like the regex engines tiktoken and HF tokenizers use. BPE then never merges
 * across piece boundaries. Input need not be valid UTF-8: the pattern is compiled with
 * PCRE2_MATCH_INVALID_UTF, so matches never include an invalid sequence, and the bytes between
 * two matches (a maximal run of invalid UTF-8) become a piece of their own. Valid text is split
 * exactly as the reference does; every byte ends up in exactly one piece, so decode(encode(x))
 * == x for any byte string.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

/* meta-llama/llama-models models/llama3/tokenizer.py (pat_str). \s is widened by U+0085 below. */
const char TOK_RE_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-2 (ByteLevel pre-tokenizer with use_regex = true). */
const char TOK_RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* The reference engines (Rust regex under tiktoken, Oniguruma under HF tokenizers) define \s
 * as the Unicode White_Space property. PCRE2's UCP \s differs: it lacks U+0085 (NEXT LINE) and
 * has U+180E (MONGOLIAN VOWEL SEPARATOR, a format character since Unicode 6.3). So \s is
 * rewritten as the explicit White_Space list, \S as its complement, and \s inside a class as
 * the list's members; the golden tests (tiktoken) caught the U+180E difference. */
#define WS_LIST "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static char *widen_space(const char *pat) {
    util_buf b;
    util_buf_init(&b);
    int in_class = 0;
    for (const char *p = pat; *p; p++) {
        if (p[0] == '\\' && p[1]) {
            if (p[1] == 's') {
                if (in_class) util_buf_printf(&b, "%s", WS_LIST);
                else util_buf_printf(&b, "[%s]", WS_LIST);
            } else if (p[1] == 'S' && !in_class) {
                util_buf_printf(&b, "[^%s]", WS_LIST);
            } else if (p[1] == 'S') { /* \S inside a class has no plain-list equivalent */
                util_buf_append(&b, p, 2);
            } else {
                util_buf_append(&b, p, 2);
            }
            p++;
            continue;
        }
        if (*p == '[' && !in_class) in_class = 1;
        else if (*p == ']' && in_class) in_class = 0;
        util_buf_append(&b, p, 1);
    }
    return b.data;
}

int tok__pretok_compile(tok *t, const char *pattern, char *err, size_t errlen) {
    int ecode;
    PCRE2_SIZE eoff;
    char *pat = widen_space(pattern);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, NULL);
    free(pat);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        return util_err(err, errlen, "pre-tokenizer regex: %s at offset %zu", (char *)msg, (size_t)eoff),
               TOK_ERR_FORMAT;
    }
    t->re = re;
    t->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}

void tok__pretok_free(tok *t) {
    if (t->re) pcre2_code_free((pcre2_code *)t->re);
    t->re = NULL;
}

/* Byte length of the UTF-8 sequence at s (1 when invalid): used only to step over a match
 * failure so the loop always advances. */
static size_t utf8_step(const unsigned char *s, size_t n) {
    size_t l = s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
    return l > n ? n : l;
}

int tok__pretok_split(const tok *t, const char *s, size_t n, tok_piece_fn fn, void *ctx) {
    const pcre2_code *re = t->re;
    if (!re) {
        if (n) fn(ctx, s, n);
        return 0;
    }
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    if (!md || !mc) {
        pcre2_match_data_free(md);
        pcre2_match_context_free(mc);
        return TOK_ERR_ARG;
    }
    /* The split patterns backtrack at most linearly; lift the default limits so that very
     * long whitespace runs (megabytes) still match instead of failing with MATCHLIMIT. */
    pcre2_set_match_limit(mc, UINT32_MAX);
    pcre2_set_depth_limit(mc, UINT32_MAX);
    pcre2_set_heap_limit(mc, 1u << 22); /* KiB = 4 GiB */
    size_t pos = 0;
    const PCRE2_SPTR subj = (PCRE2_SPTR)s;
    while (pos < n) {
        int rc = pcre2_match(re, subj, n, pos, 0, md, mc);
        if (rc == PCRE2_ERROR_NOMATCH) {
            fn(ctx, s + pos, n - pos);
            break;
        }
        if (rc < 0 && t->re_jit) /* e.g. JIT stack exhausted: the interpreter has no such limit */
            rc = pcre2_match(re, subj, n, pos, PCRE2_NO_JIT, md, mc);
        if (rc < 0) {
            /* cannot happen with the built-in patterns; keep going one character at a time so
             * encoding stays total (and still lossless) */
            size_t l = utf8_step((const unsigned char *)s + pos, n - pos);
            fn(ctx, s + pos, l);
            pos += l;
            continue;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (a > pos) fn(ctx, s + pos, a - pos); /* invalid UTF-8 between matches */
        if (b == a) { /* empty match: not produced by the split patterns; step one char */
            size_t l = utf8_step((const unsigned char *)s + a, n - a);
            fn(ctx, s + a, l);
            b = a + l;
        } else {
            fn(ctx, s + a, b - a);
        }
        pos = b;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    return 0;
}
