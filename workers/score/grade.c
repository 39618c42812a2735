/* workers/score/grade.c — the graders' public API (grade.h) and the GSM8K number rules.
 *
 * GSM8K numbers: [-]digits with optional thousands commas (groups of exactly three digits) and an
 * optional decimal part; a '$' or other currency sign before and unit words after are ignored by
 * construction (only the number is taken). '-' is a sign only when it directly precedes the digits
 * and does not follow a digit or letter ("16-3" is a subtraction, "is -3" a negative number).
 * Numbers are compared as exact decimal strings after canonicalisation, never as floats.
 * MATH grading is math_norm.c (extraction, normalisation) + math_eval.c (equivalence).
 */
#include "workers/score/grade.h"

#include "workers/score/math_eval.h"
#include "workers/score/math_norm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GB 4096

int grade_parse_kind(const char *name, grader_kind *out) {
    if (!name) return -1;
    if (strcmp(name, "gsm8k") == 0) { *out = GRADER_GSM8K; return 0; }
    if (strcmp(name, "math") == 0) { *out = GRADER_MATH; return 0; }
    return -1;
}

const char *grade_kind_name(grader_kind k) { return k == GRADER_MATH ? "math" : "gsm8k"; }

static void bcopy_str(char *out, size_t cap, const char *s, size_t n) {
    if (!out || cap == 0) return;
    if (n > cap - 1) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
}

/* ---- GSM8K ---- */

/* Scans one number starting at s[i] (a digit or a sign). Writes it without commas into buf;
 * returns the index after it, or i when there is no number there. */
static size_t scan_number(const char *s, size_t i, char *buf, size_t cap) {
    size_t o = 0, j = i;
    if (s[j] == '-' || s[j] == '+') {
        if (!isdigit((unsigned char)s[j + 1]) && !(s[j + 1] == '.' && isdigit((unsigned char)s[j + 2]))) return i;
        if (s[j] == '-' && o < cap - 1) buf[o++] = '-';
        j++;
    }
    if (!isdigit((unsigned char)s[j]) && !(s[j] == '.' && isdigit((unsigned char)s[j + 1]))) return i;
    if (s[j] == '.' && o < cap - 1) buf[o++] = '0';
    while (isdigit((unsigned char)s[j])) {
        if (o < cap - 1) buf[o++] = s[j];
        j++;
        if (s[j] == ',' && isdigit((unsigned char)s[j + 1]) && isdigit((unsigned char)s[j + 2]) &&
            isdigit((unsigned char)s[j + 3]) && !isdigit((unsigned char)s[j + 4]))
            j++; /* thousands separator */
    }
    if (s[j] == '.' && isdigit((unsigned char)s[j + 1])) {
        if (o < cap - 1) buf[o++] = '.';
        j++;
        while (isdigit((unsigned char)s[j])) { if (o < cap - 1) buf[o++] = s[j]; j++; }
    }
    buf[o] = 0;
    return j;
}

static int sign_ok(const char *s, size_t i) {
    if (i == 0) return 1;
    unsigned char p = (unsigned char)s[i - 1];
    return !(isalnum(p) || p == ')' || p == '}' || p == '.');
}

/* First number in s[from..to) (to = -1: to the end). Returns 0 and buf, or -1. */
static int first_number(const char *s, size_t from, size_t to, char *buf, size_t cap) {
    for (size_t i = from; s[i] && i < to; i++) {
        if (isdigit((unsigned char)s[i]) && (i == 0 || !isdigit((unsigned char)s[i - 1]))) {
            size_t st = i;
            if (i > 0 && s[i - 1] == '-' && sign_ok(s, i - 1)) st = i - 1;
            if (scan_number(s, st, buf, cap) > st) return 0;
        }
    }
    return -1;
}

/* Last number in s[from..to). */
static int last_number(const char *s, size_t from, size_t to, char *buf, size_t cap) {
    char tmp[128];
    int found = -1;
    for (size_t i = from; s[i] && i < to; i++) {
        if (!isdigit((unsigned char)s[i]) && !(s[i] == '.' && isdigit((unsigned char)s[i + 1]) && (i == 0 || !isdigit((unsigned char)s[i - 1]))))
            continue;
        size_t st = i;
        if (i > 0 && s[i - 1] == '-' && sign_ok(s, i - 1)) st = i - 1;
        size_t e = scan_number(s, st, tmp, sizeof tmp);
        if (e > st) {
            bcopy_str(buf, cap, tmp, strlen(tmp));
            found = 0;
            i = e - 1;
        }
    }
    return found;
}

/* Case-insensitive search for the last occurrence of needle. */
static const char *last_ci(const char *s, const char *needle) {
    const char *last = NULL;
    size_t nl = strlen(needle);
    for (const char *p = s; *p; p++)
        if (strncasecmp(p, needle, nl) == 0) last = p;
    return last;
}

static int gsm8k_extract_ascii(const char *r, char *out, size_t cap);

/* U+2212 (minus sign) before a number is a '-': rewrite it in a copy when present. */
static int gsm8k_extract(const char *r, char *out, size_t cap) {
    if (!strstr(r, "\xe2\x88\x92")) return gsm8k_extract_ascii(r, out, cap);
    size_t n = strlen(r);
    char *c = malloc(n + 1);
    if (!c) return gsm8k_extract_ascii(r, out, cap);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)r[i] == 0xe2 && (unsigned char)r[i + 1] == 0x88 && (unsigned char)r[i + 2] == 0x92) { c[o++] = '-'; i += 2; }
        else c[o++] = r[i];
    }
    c[o] = 0;
    int rc = gsm8k_extract_ascii(c, out, cap);
    free(c);
    return rc;
}

static int gsm8k_extract_ascii(const char *r, char *out, size_t cap) {
    char num[128];
    const char *p = NULL;
    /* 1. the last "#### N" */
    for (const char *q = strstr(r, "####"); q; q = strstr(q + 4, "####")) p = q;
    if (p && first_number(p + 4, 0, (size_t)-1, num, sizeof num) == 0) goto found;
    /* 2. the last \boxed{..}: its last number */
    {
        char box[GB];
        if (mathnorm_last_boxed(r, box, sizeof box) == 0 && last_number(box, 0, (size_t)-1, num, sizeof num) == 0) goto found;
    }
    /* 3. "the answer is N" (last occurrence), the number within the next 64 bytes */
    if ((p = last_ci(r, "answer is")) != NULL && first_number(p + 9, 0, 64, num, sizeof num) == 0) goto found;
    if ((p = last_ci(r, "answer:")) != NULL && first_number(p + 7, 0, 64, num, sizeof num) == 0) goto found;
    /* 4. the last number anywhere */
    if (last_number(r, 0, (size_t)-1, num, sizeof num) == 0) goto found;
    if (cap) out[0] = 0;
    return -1;
found:
    bcopy_str(out, cap, num, strlen(num));
    return 0;
}

/* Decimal canonical form: "-007.50" -> "-7.5", "18.00" -> "18", "-0" -> "0". Returns -1 when
 * s is not a plain decimal. */
static int decimal_key(const char *s, char *out, size_t cap) {
    char b[160];
    size_t i = 0;
    int neg = 0;
    while (s[i] == ' ') i++;
    if (s[i] == '-' || s[i] == '+') { neg = s[i] == '-'; i++; }
    if (!isdigit((unsigned char)s[i])) return -1;
    while (s[i] == '0' && isdigit((unsigned char)s[i + 1])) i++;
    size_t o = 0;
    while (isdigit((unsigned char)s[i])) { if (o < sizeof b - 2) b[o++] = s[i]; i++; }
    if (s[i] == '.') {
        i++;
        size_t dot = o;
        b[o++] = '.';
        while (isdigit((unsigned char)s[i])) { if (o < sizeof b - 2) b[o++] = s[i]; i++; }
        while (o > dot + 1 && b[o - 1] == '0') o--;
        if (o == dot + 1) o = dot;
    }
    while (s[i] == ' ') i++;
    if (s[i]) return -1;
    b[o] = 0;
    if (strcmp(b, "0") == 0) neg = 0;
    int n = snprintf(out, cap, "%s%s", neg ? "-" : "", b);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- public API ---- */

int grade_extract(grader_kind k, const char *response, char *out, size_t cap) {
    if (cap) out[0] = 0;
    if (!response) return -1;
    if (k == GRADER_GSM8K) return gsm8k_extract(response, out, cap);
    return mathnorm_last_boxed(response, out, cap > GRADE_ANSWER_MAX + 1 ? GRADE_ANSWER_MAX + 1 : cap);
}

/* The reference of a GSM8K item: "18", "#### 18" or a whole answer text. */
static int gsm8k_reference(const char *ref, char *key, size_t cap) {
    char num[128];
    if (decimal_key(ref, key, cap) == 0) return 0;
    if (gsm8k_extract(ref, num, sizeof num) != 0) return -1;
    return decimal_key(num, key, cap);
}

int grade_equiv(grader_kind k, const char *a, const char *b) {
    if (!a || !b || !*a || !*b) return 0;
    if (k == GRADER_GSM8K) {
        char ka[160], kb[160];
        if (decimal_key(a, ka, sizeof ka) != 0 || gsm8k_reference(b, kb, sizeof kb) != 0) return 0;
        return strcmp(ka, kb) == 0;
    }
    char na[GB], nb[GB];
    mathnorm_normalize(a, na, sizeof na);
    mathnorm_normalize(b, nb, sizeof nb);
    if (!na[0] || !nb[0]) return 0;
    if (strcmp(na, nb) == 0) return 1;
    return matheval_equiv(na, nb);
}

int grade_answer(grader_kind k, const char *response, const char *reference_answer, char *extracted, size_t cap) {
    char ans[GRADE_ANSWER_MAX + 1];
    if (extracted && cap) extracted[0] = 0;
    if (!response || !reference_answer) return 0;
    if (grade_extract(k, response, ans, sizeof ans) != 0) return 0;
    if (extracted && cap) bcopy_str(extracted, cap, ans, strlen(ans));
    return grade_equiv(k, ans, reference_answer);
}

int grade_canonical(grader_kind k, const char *answer, char *out, size_t cap) {
    if (cap == 0) return -1;
    out[0] = 0;
    if (!answer || !*answer) return 0;
    if (k == GRADER_GSM8K) {
        if (decimal_key(answer, out, cap) == 0) return 0;
        char num[128];
        if (gsm8k_extract(answer, num, sizeof num) == 0 && decimal_key(num, out, cap) == 0) return 0;
        bcopy_str(out, cap, answer, strlen(answer));
        return strlen(answer) < cap ? 0 : -1;
    }
    char n[GB], c[GB];
    mathnorm_normalize(answer, n, sizeof n);
    matheval_canonical(n, c, sizeof c);
    size_t l = strlen(c);
    bcopy_str(out, cap, c, l);
    return l < cap ? 0 : -1;
}
