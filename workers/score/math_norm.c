/* workers/score/math_norm.c — MATH final-answer extraction and normalisation.
 *
 * The rules merge Minerva's normalize_final_answer (Lewkowycz et al. 2022) and Hendrycks'
 * _strip_string (MATH / PRM800K math_normalize.py), but keep structure that the equivalence
 * checker needs (commas, brackets, '=' of equations, relations). Applied in this order:
 *   1. whitespace controls -> ' '; Unicode minus, times, dot, pi, infinity, <=, >=, sqrt, cup ->
 *      LaTeX; \! removed; \, \; \: \quad ~ "\ " -> ' '
 *   2. \dfrac \tfrac \cfrac -> \frac; \left \right \bigl.. (and a following '.') removed;
 *      \displaystyle removed
 *   3. degrees (^\circ, ^{\circ}, \circ, \degree), \% and %, \$ and $ removed
 *   4. \boxed{X} / \fbox{X} -> X
 *   5. \text \textbf \textit \textrm \mathrm \mathbf \mbox \operatorname{X}: "and" -> ','; a
 *      letters-only X after other content and at the end of the answer is a unit -> dropped
 *      (with a following ^2 / ^3); otherwise X is kept
 *   6. trailing plain unit words ("10 inches", "5 square feet") dropped
 *   7. \le \ge \ne \leqslant \geqslant -> \leq \geq \neq; \lt \gt -> < >; \dots \ldots \cdots
 *      removed
 *   8. all spaces removed; {,} removed (LaTeX thousands separator)
 *   9. shorthands: \frac12 -> \frac{1}{2}, \frac1{x} -> \frac{1}{x}, \sqrt2 -> \sqrt{2}
 *  10. trailing '.', ',', ';', '\\' removed
 *  11. a whole answer of the form 1,234,567(.89) loses its commas
 *  12. a short left-hand side of a single '=' ("x=", "k=", "a_1=", "\theta=") is removed, and
 *      likewise a leading "x \in" ("x \in [2, 5)" -> "[2,5)")
 *  13. "(C)" -> "C" (multiple-choice letters); leading ".5" -> "0.5"
 */
#include "workers/score/math_norm.h"

#include <ctype.h>
#include <string.h>

#define NB 4096 /* working buffer: answers beyond this are truncated (GRADE_ANSWER_MAX is 1023) */

long mathnorm_match_close(const char *s, size_t open) {
    int depth = 0;
    char o = s[open];
    if (o != '{' && o != '(' && o != '[') return -1;
    for (size_t i = open; s[i]; i++) {
        char c = s[i];
        if (c == '\\' && s[i + 1]) { i++; continue; } /* escaped: \{ \} are literal set braces */
        if (o == '{') {
            if (c == '{') depth++;
            else if (c == '}') { if (--depth == 0) return (long)i; }
        } else {
            if (c == '(' || c == '[' || c == '{') depth++;
            else if (c == ')' || c == ']' || c == '}') { if (--depth == 0) return (long)i; }
        }
    }
    return -1;
}

/* ---- small in-place string helpers on NB buffers ---- */

static void cpy(char *dst, size_t cap, const char *src, size_t n) {
    if (cap == 0) return;
    if (n > cap - 1) n = cap - 1;
    memmove(dst, src, n);
    dst[n] = 0;
}

/* Replaces s[at..at+del) by rep (bounded by NB). */
static void splice(char *s, size_t at, size_t del, const char *rep) {
    size_t len = strlen(s), rl = strlen(rep);
    if (at > len) return;
    if (at + del > len) del = len - at;
    size_t tail = len - at - del;
    if (at + rl + tail > NB - 1) { /* truncate the tail */
        if (at + rl > NB - 1) rl = NB - 1 - at;
        tail = NB - 1 - at - rl;
    }
    memmove(s + at + rl, s + at + del, tail);
    memcpy(s + at, rep, rl);
    s[at + rl + tail] = 0;
}

static void replace_all(char *s, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    char *p = s;
    while ((p = strstr(p, from)) != NULL) {
        size_t at = (size_t)(p - s);
        splice(s, at, fl, to);
        p = s + at + tl;
    }
}

/* Replaces the command `name` (with its backslash) only where it is not followed by a letter,
 * so "\le" does not touch "\left" or "\leq". */
static void replace_cmd(char *s, const char *name, const char *to) {
    size_t nl = strlen(name), tl = strlen(to);
    char *p = s;
    while ((p = strstr(p, name)) != NULL) {
        size_t at = (size_t)(p - s);
        if (isalpha((unsigned char)p[nl])) { p += nl; continue; }
        splice(s, at, nl, to);
        p = s + at + tl;
    }
}

static void trim(char *s) {
    size_t len = strlen(s), a = 0;
    while (a < len && isspace((unsigned char)s[a])) a++;
    while (len > a && isspace((unsigned char)s[len - 1])) len--;
    memmove(s, s + a, len - a);
    s[len - a] = 0;
}

static int is_letters_only(const char *s, size_t n) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalpha(c)) any = 1;
        else if (c != ' ' && c != '.' && c != '/') return 0; /* "m/s" is a unit too */
    }
    return any;
}

/* Is s[from..] only "", "^2", "^3", "^{2}", "^{3}", spaces and dots? */
static size_t unit_power_tail(const char *s) {
    size_t i = 0;
    while (s[i] == ' ') i++;
    if (s[i] == '^') {
        if ((s[i + 1] == '2' || s[i + 1] == '3') ) i += 2;
        else if (s[i + 1] == '{' && (s[i + 2] == '2' || s[i + 2] == '3') && s[i + 3] == '}') i += 4;
        else return (size_t)-1;
    }
    while (s[i] == ' ' || s[i] == '.') i++;
    return s[i] ? (size_t)-1 : i;
}

/* Unwraps \cmd{X} everywhere (innermost-last order is fine: X is re-scanned). */
static void unwrap_text_cmd(char *s, const char *cmd) {
    size_t cl = strlen(cmd);
    char *p = s;
    while ((p = strstr(p, cmd)) != NULL) {
        size_t at = (size_t)(p - s);
        size_t b = at + cl;
        while (s[b] == ' ') b++;
        if (isalpha((unsigned char)s[at + cl]) || s[b] != '{') { p = s + at + cl; continue; }
        long e = mathnorm_match_close(s, b);
        if (e < 0) { splice(s, at, b + 1 - at, ""); p = s + at; continue; } /* drop "\text{" */
        char inner[NB];
        cpy(inner, sizeof inner, s + b + 1, (size_t)e - b - 1);
        trim(inner);
        /* content before this command (trimmed): decides whether X is a unit */
        size_t before = at;
        while (before > 0 && s[before - 1] == ' ') before--;
        size_t tail = unit_power_tail(s + e + 1);
        if (strcmp(inner, "and") == 0 || strcmp(inner, ",and") == 0 || strcmp(inner, "or") == 0) {
            /* "3 \text{ and } 5" -> "3,5"; a preceding comma is kept once */
            int comma_before = before > 0 && s[before - 1] == ',';
            splice(s, at, (size_t)e + 1 - at, comma_before ? "" : ",");
        } else if (strcmp(cmd, "\\mathrm") == 0 && strcmp(inner, "th") == 0) {
            splice(s, at, (size_t)e + 1 - at, "");
        } else if (before > 0 && tail != (size_t)-1 && is_letters_only(inner, strlen(inner))) {
            s[at] = 0; /* a unit at the end: drop it and its power */
        } else {
            splice(s, at, (size_t)e + 1 - at, inner);
        }
        p = s + at;
    }
}

static const char *const UNIT_WORDS[] = {
    "square", "sq", "cubic", "units", "unit", "ways", "integers", "dollars", "dollar", "cents",
    "cent", "mph", "inches", "inch", "in", "ft", "feet", "foot", "yards", "yard", "miles", "mile",
    "hours", "hour", "hrs", "minutes", "minute", "mins", "seconds", "second", "sec", "days", "day",
    "weeks", "years", "km", "cm", "mm", "m", "meters", "meter", "gm", "g", "grams", "kg",
    "pounds", "lbs", "ounces", "oz", "degrees", "degree", "points", "digits", "students", "people",
    "edges", "meals", "multiples", "sue", "childrentickets", "percent", "liters", "gallons",
    "cups", "marbles", "coins", "times", NULL};

static int is_unit_word(const char *w, size_t n) {
    for (int i = 0; UNIT_WORDS[i]; i++)
        if (strlen(UNIT_WORDS[i]) == n && strncmp(UNIT_WORDS[i], w, n) == 0) return 1;
    return 0;
}

/* "10 inches" -> "10", "5 square feet" -> "5"; only after a number-like end (digit, '}', ')'). */
static void strip_plain_units(char *s) {
    for (int iter = 0; iter < 4; iter++) {
        size_t len = strlen(s);
        size_t e = len;
        while (e > 0 && (s[e - 1] == ' ' || s[e - 1] == '.')) e--;
        /* optional ^2 / ^3 after the word */
        size_t pe = e;
        if (pe >= 2 && s[pe - 2] == '^' && (s[pe - 1] == '2' || s[pe - 1] == '3')) pe -= 2;
        size_t b = pe;
        while (b > 0 && isalpha((unsigned char)s[b - 1])) b--;
        if (b == pe || b == 0 || s[b - 1] != ' ') return;
        if (!is_unit_word(s + b, pe - b)) return;
        size_t q = b;
        while (q > 0 && s[q - 1] == ' ') q--;
        if (q == 0) return;
        char c = s[q - 1];
        if (!(isdigit((unsigned char)c) || c == '}' || c == ')' || isalpha((unsigned char)c))) return;
        /* a preceding word must itself be a unit word ("square feet") or a number-ish end */
        if (isalpha((unsigned char)c)) {
            size_t wb = q;
            while (wb > 0 && isalpha((unsigned char)s[wb - 1])) wb--;
            if (!is_unit_word(s + wb, q - wb)) return;
        }
        s[q] = 0;
    }
}

/* Adds braces to \frac / \sqrt shorthand arguments, recursing into braced arguments. */
static void fix_range(const char *s, size_t from, size_t to, char *out, size_t *o, int depth) {
#define EMIT(c) do { if (*o < NB - 1) out[(*o)++] = (c); } while (0)
    for (size_t i = from; i < to;) {
        int is_frac = strncmp(s + i, "\\frac", 5) == 0 && !isalpha((unsigned char)s[i + 5]);
        int is_sqrt = !is_frac && strncmp(s + i, "\\sqrt", 5) == 0 && !isalpha((unsigned char)s[i + 5]);
        if ((!is_frac && !is_sqrt) || depth > 32) { EMIT(s[i]); i++; continue; }
        for (int j = 0; j < 5; j++) EMIT(s[i + j]);
        i += 5;
        if (is_sqrt && i < to && s[i] == '[') { /* root index */
            long e = mathnorm_match_close(s, i);
            if (e < 0 || (size_t)e >= to) continue;
            EMIT('[');
            fix_range(s, i + 1, (size_t)e, out, o, depth + 1);
            EMIT(']');
            i = (size_t)e + 1;
        }
        for (int arg = 0; arg < (is_frac ? 2 : 1) && i < to; arg++) {
            if (s[i] == '{') {
                long e = mathnorm_match_close(s, i);
                if (e < 0 || (size_t)e >= to) break;
                EMIT('{');
                fix_range(s, i + 1, (size_t)e, out, o, depth + 1);
                EMIT('}');
                i = (size_t)e + 1;
            } else if (s[i] == '\\' || s[i] == ' ' || s[i] == '}' || s[i] == ')') {
                break; /* \frac\pi2 and the like: leave alone */
            } else {
                EMIT('{'); EMIT(s[i]); EMIT('}');
                i++;
            }
        }
    }
#undef EMIT
}

static void fix_shorthand(char *s) {
    char out[NB];
    size_t o = 0;
    fix_range(s, 0, strlen(s), out, &o, 0);
    out[o] = 0;
    memcpy(s, out, o + 1);
}

static int is_thousands_number(const char *s) {
    size_t i = 0;
    if (s[i] == '-') i++;
    size_t d = 0;
    while (isdigit((unsigned char)s[i])) { i++; d++; }
    if (d < 1 || d > 3 || s[i] != ',') return 0;
    while (s[i] == ',') {
        for (int j = 1; j <= 3; j++) if (!isdigit((unsigned char)s[i + j])) return 0;
        i += 4;
    }
    if (s[i] == '.') { i++; if (!isdigit((unsigned char)s[i])) return 0; while (isdigit((unsigned char)s[i])) i++; }
    return s[i] == 0;
}

/* Is s[0..n) a short variable name: a letter, optional _x / _{..}, or one \greek command? */
static int is_short_lhs(const char *s, size_t n) {
    if (n == 0) return 0;
    size_t i = 0;
    if (s[0] == '\\') {
        i = 1;
        while (i < n && isalpha((unsigned char)s[i])) i++;
        if (i < 3) return 0;
    } else if (isalpha((unsigned char)s[0])) {
        i = 1;
        if (i < n && s[i] == '(') { /* f(x)= */
            size_t j = i + 1;
            while (j < n && isalpha((unsigned char)s[j])) j++;
            if (j < n && s[j] == ')' && j + 1 == n && j > i + 1) return 1;
            return 0;
        }
    } else {
        return 0;
    }
    if (i < n && s[i] == '_') {
        i++;
        if (i < n && s[i] == '{') { while (i < n && s[i] != '}') i++; i++; }
        else i++;
    }
    return i == n;
}

void mathnorm_normalize(const char *in, char *out, size_t cap) {
    char s[NB];
    if (cap == 0) return;
    cpy(s, sizeof s, in ? in : "", in ? strlen(in) : 0);
    for (char *p = s; *p; p++) if (*p == '\n' || *p == '\t' || *p == '\r') *p = ' ';
    /* Unicode math that models write inside boxes -> LaTeX (the trailing space keeps "\\pi r"
     * from becoming "\\pir"; spaces are dropped later where they separate nothing) */
    replace_all(s, "\xe2\x88\x92", "-");          /* U+2212 minus */
    replace_all(s, "\xc3\x97", "\\times ");       /* U+00D7 */
    replace_all(s, "\xc2\xb7", "\\cdot ");        /* U+00B7 */
    replace_all(s, "\xe2\x8b\x85", "\\cdot ");    /* U+22C5 */
    replace_all(s, "\xcf\x80", "\\pi ");          /* U+03C0 */
    replace_all(s, "\xe2\x88\x9e", "\\infty ");   /* U+221E */
    replace_all(s, "\xe2\x89\xa4", "\\leq ");     /* U+2264 */
    replace_all(s, "\xe2\x89\xa5", "\\geq ");     /* U+2265 */
    replace_all(s, "\xe2\x88\x9a", "\\sqrt");     /* U+221A */
    replace_all(s, "\xe2\x88\xaa", "\\cup ");     /* U+222A */
    /* 1 */
    {   /* one pass, so that a matrix row break (two backslashes) is not read as "backslash space" */
        size_t o = 0;
        for (size_t i = 0; s[i]; i++) {
            if (s[i] == '\\' && s[i + 1] == '\\') { s[o++] = s[i++]; s[o++] = s[i]; continue; }
            if (s[i] == '\\' && s[i + 1] == '!') { i++; continue; }
            if (s[i] == '\\' && (s[i + 1] == ',' || s[i + 1] == ';' || s[i + 1] == ':' || s[i + 1] == ' ')) { s[o++] = ' '; i++; continue; }
            s[o++] = s[i] == '~' ? ' ' : s[i];
        }
        s[o] = 0;
    }
    replace_cmd(s, "\\qquad", " "); replace_cmd(s, "\\quad", " ");
    /* 2 */
    replace_cmd(s, "\\dfrac", "\\frac"); replace_cmd(s, "\\tfrac", "\\frac"); replace_cmd(s, "\\cfrac", "\\frac");
    replace_all(s, "\\left.", ""); replace_all(s, "\\right.", "");
    replace_cmd(s, "\\left", ""); replace_cmd(s, "\\right", "");
    replace_cmd(s, "\\bigl", ""); replace_cmd(s, "\\bigr", ""); replace_cmd(s, "\\Bigl", ""); replace_cmd(s, "\\Bigr", "");
    replace_cmd(s, "\\big", ""); replace_cmd(s, "\\Big", "");
    replace_cmd(s, "\\displaystyle", "");
    /* 3 */
    replace_all(s, "^{\\circ}", ""); replace_all(s, "^\\circ", ""); replace_all(s, "^{ \\circ }", "");
    replace_cmd(s, "\\circ", ""); replace_cmd(s, "\\degree", ""); replace_all(s, "\xc2\xb0", "");
    replace_all(s, "\\%", ""); replace_all(s, "%", "");
    replace_all(s, "\\$", ""); replace_all(s, "$", "");
    /* 4 */
    for (int iter = 0; iter < 4; iter++) {
        char *p = strstr(s, "\\boxed{");
        size_t cl = 6;
        if (!p) { p = strstr(s, "\\fbox{"); cl = 5; }
        if (!p) break;
        size_t at = (size_t)(p - s);
        long e = mathnorm_match_close(s, at + cl);
        if (e < 0) break;
        splice(s, (size_t)e, 1, "");
        splice(s, at, cl + 1, "");
    }
    /* 5 */
    replace_cmd(s, "\\mbox", "\\text"); replace_cmd(s, "\\textrm", "\\text"); replace_cmd(s, "\\textbf", "\\text");
    replace_cmd(s, "\\textit", "\\text"); replace_cmd(s, "\\mathbf", "\\text"); replace_cmd(s, "\\textsf", "\\text");
    replace_cmd(s, "\\boldsymbol", "\\text"); replace_cmd(s, "\\operatorname", "\\text");
    unwrap_text_cmd(s, "\\mathrm");
    unwrap_text_cmd(s, "\\text");
    trim(s);
    /* 6 */
    strip_plain_units(s);
    /* 7 */
    replace_cmd(s, "\\leqslant", "\\leq"); replace_cmd(s, "\\geqslant", "\\geq");
    replace_cmd(s, "\\le", "\\leq"); replace_cmd(s, "\\ge", "\\geq"); replace_cmd(s, "\\ne", "\\neq");
    replace_cmd(s, "\\lt", "<"); replace_cmd(s, "\\gt", ">");
    replace_cmd(s, "\\ldots", ""); replace_cmd(s, "\\dots", ""); replace_cmd(s, "\\cdots", "");
    /* 8 */
    {   /* a space survives (as one) only where removing it would merge tokens: after a command
         * before a letter ("\\geq x" is not "\\geqx") and after a one-character sub/superscript
         * before an alphanumeric ("\\log_2 8" is not "\\log_28") */
        size_t o = 0;
        for (size_t i = 0; s[i]; i++) {
            if (s[i] != ' ') { s[o++] = s[i]; continue; }
            while (s[i + 1] == ' ') i++;
            unsigned char nx = (unsigned char)s[i + 1];
            int keep = 0;
            if (o > 0 && isalpha(nx)) {
                size_t b = o;
                while (b > 0 && isalpha((unsigned char)s[b - 1])) b--;
                keep = b < o && b > 0 && s[b - 1] == '\\';
            }
            if (!keep && o >= 2 && isalnum(nx) && (s[o - 2] == '_' || s[o - 2] == '^') && isalnum((unsigned char)s[o - 1]))
                keep = 1;
            if (keep) s[o++] = ' ';
        }
        s[o] = 0;
    }
    replace_all(s, "{,}", "");
    /* 9 */
    fix_shorthand(s);
    /* 10 */
    for (;;) {
        size_t len = strlen(s);
        if (len > 0 && (s[len - 1] == '.' || s[len - 1] == ',' || s[len - 1] == ';')) { s[len - 1] = 0; continue; }
        if (len > 1 && s[len - 1] == '\\' && s[len - 2] == '\\') { s[len - 2] = 0; continue; }
        break;
    }
    /* 11 */
    if (is_thousands_number(s)) {
        size_t o = 0;
        for (size_t i = 0; s[i]; i++) if (s[i] != ',') s[o++] = s[i];
        s[o] = 0;
    }
    /* 12: one top-level '=' with a short lhs */
    {
        int depth = 0, neq = 0;
        size_t eqat = 0;
        for (size_t i = 0; s[i]; i++) {
            char c = s[i];
            if (c == '{' || c == '(' || c == '[') depth++;
            else if (c == '}' || c == ')' || c == ']') depth--;
            else if (c == '=' && depth == 0) { neq++; eqat = i; }
            else if (c == ',' && depth == 0) { neq = 99; } /* lists of equations: leave */
        }
        if (neq == 1 && is_short_lhs(s, eqat) && s[eqat + 1]) splice(s, 0, eqat + 1, "");
        else if (neq == 1 && eqat > 0 && is_short_lhs(s + eqat + 1, strlen(s + eqat + 1))) s[eqat] = 0; /* "4=x" */
    }
    /* 12b: "x \in [2,5)" -> "[2,5)" (membership written out) */
    {
        char *mem = strstr(s, "\\in");
        if (mem && mem > s && !isalpha((unsigned char)mem[3]) && is_short_lhs(s, (size_t)(mem - s)) && mem[3])
            splice(s, 0, (size_t)(mem - s) + 3, "");
    }
    /* 13 */
    if (s[0] == '(' && isupper((unsigned char)s[1]) && s[2] == ')' && s[3] == 0) { s[0] = s[1]; s[1] = 0; }
    if (s[0] == '.' && isdigit((unsigned char)s[1])) splice(s, 0, 0, "0");
    else if (s[0] == '-' && s[1] == '.' && isdigit((unsigned char)s[2])) splice(s, 1, 0, "0");
    cpy(out, cap, s, strlen(s));
}

/* ---- extraction ---- */

static int capture_box(const char *text, size_t at, size_t cl, char *out, size_t cap) {
    size_t b = at + cl;
    if (text[b] == '{') {
        long e = mathnorm_match_close(text, b);
        if (e < 0) return -1;
        cpy(out, cap, text + b + 1, (size_t)e - b - 1);
        return 0;
    }
    if (text[b] == ' ') { /* "\boxed 5" */
        while (text[b] == ' ') b++;
        size_t e = b;
        while (text[e] && text[e] != '$' && !isspace((unsigned char)text[e])) e++;
        if (e == b) return -1;
        cpy(out, cap, text + b, e - b);
        return 0;
    }
    return -1;
}

int mathnorm_last_boxed(const char *text, char *out, size_t cap) {
    if (cap) out[0] = 0;
    if (!text) return -1;
    /* candidates from the end backwards: take the last well-formed one */
    size_t len = strlen(text);
    int tries = 0; /* at most 16 candidates: each may scan to the end, keep the work linear */
    for (size_t i = len; i-- > 0 && tries < 16;) {
        if (text[i] != '\\') continue;
        size_t cl = 0;
        if (strncmp(text + i, "\\boxed", 6) == 0) cl = 6;
        else if (strncmp(text + i, "\\fbox", 5) == 0) cl = 5;
        else continue;
        if (isalpha((unsigned char)text[i + cl])) continue;
        tries++;
        if (capture_box(text, i, cl, out, cap) == 0) return 0;
    }
    if (cap) out[0] = 0;
    return -1;
}
