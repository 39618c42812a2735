/* workers/score/math_eval.c — expression evaluator and structural equivalence for MATH answers.
 *
 * Recursive descent over the normalised string (no spaces):
 *   expr  := term (('+'|'-') term)*
 *   term  := unary ((('*'|'/'|\cdot|\times|\div) unary) | <implicit product> unary)*
 *   unary := ('-'|'+') unary | power
 *   power := postfix ('^' exponent)?           (right associative)
 *   postfix := atom '!'*
 *   atom  := number | '(' expr ')' | '{' expr '}' | '|' expr '|' | \frac{e}{e} | \sqrt[e]{e}
 *          | \binom{e}{e} | \pi | \infty | func arg | variable
 * A value is a double plus, when every operation so far was rational and fit in 64 bits, the
 * exact reduced fraction p/q. Errors (unknown syntax) make the whole evaluation fail, which the
 * equivalence treats as "compare as strings".
 */
#include "workers/score/math_eval.h"

#include "workers/score/math_norm.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EB 4096
#define ME_MAX_DEPTH 64
#define ME_POINTS 8

typedef struct val {
    double d;
    int exact; /* p/q valid */
    long long p, q;
} val;

typedef struct parser {
    const char *s;
    size_t i;
    int err;
    int point;   /* -1: variables are an error; else the evaluation point index */
    int nvars;   /* variables seen */
    int depth;
} parser;

/* ---- values ---- */

static long long gcdll(long long a, long long b) {
    if (a < 0) a = -a;
    if (b < 0) b = -b;
    while (b) { long long t = a % b; a = b; b = t; }
    return a;
}

static val vd(double d) { val v = {d, 0, 0, 1}; return v; }

static val vq(long long p, long long q) {
    val v = {0, 0, 0, 1};
    if (q == 0 || p == LLONG_MIN || q == LLONG_MIN) { v.d = q == 0 ? NAN : (double)p / (double)q; return v; }
    if (q < 0) { p = -p; q = -q; }
    long long g = gcdll(p, q);
    if (g > 1) { p /= g; q /= g; }
    v.exact = 1; v.p = p; v.q = q; v.d = (double)p / (double)q;
    return v;
}

static val v_add(val a, val b, int sign) {
    if (a.exact && b.exact) {
        long long x, y, z, bp = b.p;
        if (sign < 0) { if (bp == LLONG_MIN) goto inexact; bp = -bp; }
        if (!__builtin_mul_overflow(a.p, b.q, &x) && !__builtin_mul_overflow(bp, a.q, &y) &&
            !__builtin_add_overflow(x, y, &x) && !__builtin_mul_overflow(a.q, b.q, &z))
            return vq(x, z);
    }
inexact:
    return vd(sign < 0 ? a.d - b.d : a.d + b.d);
}

static val v_mul(val a, val b) {
    if (a.exact && b.exact) {
        long long x, z;
        if (!__builtin_mul_overflow(a.p, b.p, &x) && !__builtin_mul_overflow(a.q, b.q, &z)) return vq(x, z);
    }
    return vd(a.d * b.d);
}

static val v_div(val a, val b) {
    if (b.exact && b.p == 0) return vd(NAN);
    if (a.exact && b.exact) {
        long long x, z;
        if (!__builtin_mul_overflow(a.p, b.q, &x) && !__builtin_mul_overflow(a.q, b.p, &z)) return vq(x, z);
    }
    if (b.d == 0) return vd(NAN);
    return vd(a.d / b.d);
}

static val v_neg(val a) {
    if (a.exact && a.p != LLONG_MIN) return vq(-a.p, a.q);
    return vd(-a.d);
}

static int isqrt_exact(long long x, long long *r) {
    if (x < 0) return 0;
    long long s = (long long)llround(sqrt((double)x));
    for (long long t = s - 1; t <= s + 1; t++)
        if (t >= 0 && t <= 3037000499LL && t * t == x) { *r = t; return 1; }
    return 0;
}

static val v_pow(val a, val b) {
    if (b.exact && b.q == 1 && a.exact && b.p >= -64 && b.p <= 64) {
        long long e = b.p < 0 ? -b.p : b.p, rp = 1, rq = 1;
        int ok = 1;
        for (long long i = 0; i < e && ok; i++)
            ok = !__builtin_mul_overflow(rp, a.p, &rp) && !__builtin_mul_overflow(rq, a.q, &rq);
        if (ok) {
            if (b.p < 0) { if (rp == 0) return vd(NAN); return vq(rq, rp); }
            return vq(rp, rq);
        }
    }
    if (b.exact && b.q == 2 && a.exact && a.p >= 0) { /* x^(k/2) exact when x is a square */
        long long sp, sq;
        if (isqrt_exact(a.p, &sp) && isqrt_exact(a.q, &sq)) return v_pow(vq(sp, sq), vq(b.p, 1));
    }
    if (a.d < 0 && !(b.exact && b.q == 1)) {
        /* odd roots of negatives: (-8)^(1/3) = -2 */
        if (b.exact && (b.q % 2) == 1) return vd(-pow(-a.d, b.d));
        return vd(NAN);
    }
    return vd(pow(a.d, b.d));
}

static int v_eq(val a, val b) {
    if (a.exact && b.exact) return a.p == b.p && a.q == b.q;
    if (isnan(a.d) || isnan(b.d)) return 0;
    if (isinf(a.d) || isinf(b.d)) return a.d == b.d;
    double m = fabs(a.d) > fabs(b.d) ? fabs(a.d) : fabs(b.d);
    double tol = 1e-9 * m;
    if (tol < 1e-12) tol = 1e-12;
    return fabs(a.d - b.d) <= tol;
}

/* ---- variables: a deterministic pseudo-random value per (name, point), |v| in [0.6, 2.9] ---- */

static double var_value(const char *name, size_t n, int point) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= (unsigned char)name[i]; h *= 1099511628211ULL; }
    h ^= (uint64_t)(point + 1) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 31; h *= 0xBF58476D1CE4E5B9ULL; h ^= h >> 27; h *= 0x94D049BB133111EBULL; h ^= h >> 31;
    double v = 0.6 + 2.3 * (double)(h >> 12) / 4503599627370496.0;
    return point >= ME_POINTS / 2 && (h & 1) ? -v : v; /* later points also try negative values */
}

/* ---- parser ---- */

static val p_expr(parser *P);
static val p_unary(parser *P);

static char pc(parser *P) { while (P->s[P->i] == ' ') P->i++; return P->s[P->i]; }

static int cmd_is(parser *P, const char *name) { /* name without backslash, not followed by a letter */
    size_t n = strlen(name);
    return P->s[P->i] == '\\' && strncmp(P->s + P->i + 1, name, n) == 0 && !isalpha((unsigned char)P->s[P->i + 1 + n]);
}

static const char *const GREEK[] = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta",
    "theta", "vartheta", "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi",
    "Psi", "Omega", NULL};
static const char *const FUNCS[] = {"sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan",
    "ln", "log", "exp", "sinh", "cosh", "tanh", NULL};

static int cmd_in(parser *P, const char *const *list, size_t *len) {
    for (int k = 0; list[k]; k++)
        if (cmd_is(P, list[k])) { *len = strlen(list[k]) + 1; return k; }
    return -1;
}

static int starts_atom(parser *P) {
    char c = pc(P);
    if (isdigit((unsigned char)c) || c == '.' || isalpha((unsigned char)c) || c == '(' || c == '{') return 1;
    if (c == '\\') {
        size_t l;
        if (cmd_is(P, "frac") || cmd_is(P, "sqrt") || cmd_is(P, "pi") || cmd_is(P, "infty") || cmd_is(P, "binom"))
            return 1;
        if (cmd_in(P, GREEK, &l) >= 0 || cmd_in(P, FUNCS, &l) >= 0) return 1;
    }
    return 0;
}

static val p_group(parser *P) { /* {expr} */
    if (pc(P) != '{') { P->err = 1; return vd(NAN); }
    P->i++;
    val v = p_expr(P);
    if (pc(P) != '}') { P->err = 1; return v; }
    P->i++;
    return v;
}

static val p_number(parser *P) {
    const char *s = P->s;
    size_t i = P->i;
    long long ip = 0, q = 1;
    int exact = 1, nd = 0;
    while (isdigit((unsigned char)s[i])) {
        if (__builtin_mul_overflow(ip, 10, &ip) || __builtin_add_overflow(ip, s[i] - '0', &ip)) exact = 0;
        i++; nd++;
    }
    if (s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        i++;
        while (isdigit((unsigned char)s[i])) {
            if (__builtin_mul_overflow(ip, 10, &ip) || __builtin_add_overflow(ip, s[i] - '0', &ip) ||
                __builtin_mul_overflow(q, 10, &q)) exact = 0;
            i++; nd++;
        }
    }
    if (nd == 0) { P->err = 1; return vd(NAN); }
    int e10 = 0;
    if ((s[i] == 'e' || s[i] == 'E') && (isdigit((unsigned char)s[i + 1]) ||
        ((s[i + 1] == '-' || s[i + 1] == '+') && isdigit((unsigned char)s[i + 2])))) {
        size_t j = i + 1;
        int sg = 1;
        if (s[j] == '-' || s[j] == '+') { sg = s[j] == '-' ? -1 : 1; j++; }
        int ev = 0;
        while (isdigit((unsigned char)s[j])) { if (ev < 10000) ev = ev * 10 + (s[j] - '0'); j++; }
        e10 = sg * ev;
        i = j;
    }
    double d = strtod(s + P->i, NULL);
    P->i = i;
    if (!exact) return vd(d);
    val v = vq(ip, q);
    if (e10) v = v_mul(v, v_pow(vq(10, 1), vq(e10, 1)));
    if (!v.exact) v.d = d;
    return v;
}

static val p_atom(parser *P);

/* exponent after '^': {expr} | [+-]digits | letter | command atom */
static val p_exponent(parser *P) {
    char c = pc(P);
    if (c == '{') return p_group(P);
    if (isdigit((unsigned char)c) || ((c == '-' || c == '+') && isdigit((unsigned char)P->s[P->i + 1]))) {
        int neg = c == '-';
        if (c == '-' || c == '+') P->i++;
        val v = p_number(P);
        return neg ? v_neg(v) : v;
    }
    return p_atom(P);
}

static val p_func(parser *P, int f) {
    val ex = vq(1, 1);
    int has_ex = 0;
    double base = 0;
    if (f == 10 && pc(P) == '_') { /* \log_b */
        P->i++;
        val b = pc(P) == '{' ? p_group(P) : p_number(P);
        base = b.d;
        if (!(base > 0) || base == 1) { P->err = 1; return vd(NAN); }
    }
    if (pc(P) == '^') { P->i++; ex = p_exponent(P); has_ex = 1; }
    val a;
    if (pc(P) == '(' || pc(P) == '{') a = p_atom(P);
    else a = p_unary(P);
    double x = a.d, r;
    switch (f) {
    case 0: r = sin(x); break;
    case 1: r = cos(x); break;
    case 2: r = tan(x); break;
    case 3: r = 1 / cos(x); break;
    case 4: r = 1 / sin(x); break;
    case 5: r = 1 / tan(x); break;
    case 6: r = asin(x); break;
    case 7: r = acos(x); break;
    case 8: r = atan(x); break;
    case 9: r = log(x); break;
    case 10: r = base ? log(x) / log(base) : log10(x); break; /* log without a base: base 10, never equal to ln */
    case 11: r = exp(x); break;
    case 12: r = sinh(x); break;
    case 13: r = cosh(x); break;
    default: r = tanh(x); break;
    }
    val v = vd(r);
    if (has_ex) v = v_pow(v, ex);
    return v;
}

static val p_atom(parser *P) {
    if (++P->depth > ME_MAX_DEPTH) { P->err = 1; return vd(NAN); }
    val v = vd(NAN);
    char c = pc(P);
    size_t l;
    int k;
    if (isdigit((unsigned char)c) || (c == '.' && isdigit((unsigned char)P->s[P->i + 1]))) {
        v = p_number(P);
        /* mixed number: 2\frac{1}{2} = 2 + 1/2 (integer followed by a fraction of integers) */
        if (v.exact && v.q == 1 && cmd_is(P, "frac")) {
            size_t save = P->i;
            const char *t = P->s + P->i + 5;
            size_t j = 0;
            int ok = t[j] == '{';
            if (ok) { j++; int d = 0; while (isdigit((unsigned char)t[j])) { j++; d++; } ok = d > 0 && t[j] == '}'; j++; }
            if (ok) { ok = t[j] == '{'; j++; int d = 0; while (isdigit((unsigned char)t[j])) { j++; d++; } ok = ok && d > 0 && t[j] == '}'; }
            if (ok) {
                P->i += 5;
                val nn = p_group(P), dd = p_group(P);
                val fr = v_div(nn, dd);
                v = v.p < 0 ? v_add(v, fr, -1) : v_add(v, fr, 1);
            } else {
                P->i = save;
            }
        }
    } else if (c == '(') {
        P->i++;
        v = p_expr(P);
        if (pc(P) != ')') P->err = 1; else P->i++;
    } else if (c == '{') {
        v = p_group(P);
    } else if (c == '|') {
        P->i++;
        v = p_expr(P);
        if (pc(P) != '|') P->err = 1; else P->i++;
        v = v.exact ? vq(v.p < 0 ? -v.p : v.p, v.q) : vd(fabs(v.d));
    } else if (cmd_is(P, "frac")) {
        P->i += 5;
        val a = p_group(P), b = p_group(P);
        v = v_div(a, b);
    } else if (cmd_is(P, "binom")) {
        P->i += 6;
        val a = p_group(P), b = p_group(P);
        if (a.exact && b.exact && a.q == 1 && b.q == 1 && b.p >= 0 && a.p >= b.p && a.p <= 200) {
            val r = vq(1, 1);
            for (long long i = 1; i <= b.p; i++) r = v_div(v_mul(r, vq(a.p - b.p + i, 1)), vq(i, 1));
            v = r;
        } else {
            P->err = 1;
        }
    } else if (cmd_is(P, "sqrt")) {
        P->i += 5;
        val idx = vq(2, 1);
        if (pc(P) == '[') {
            P->i++;
            idx = p_expr(P);
            if (pc(P) != ']') P->err = 1; else P->i++;
        }
        val a = p_group(P);
        v = v_pow(a, v_div(vq(1, 1), idx));
    } else if (cmd_is(P, "pi")) {
        P->i += 3;
        v = vd(M_PI);
    } else if (cmd_is(P, "infty")) {
        P->i += 6;
        v = vd(INFINITY);
    } else if ((k = cmd_in(P, FUNCS, &l)) >= 0) {
        P->i += l;
        v = p_func(P, k);
    } else if (isalpha((unsigned char)c) || (c == '\\' && cmd_in(P, GREEK, &l) >= 0)) {
        size_t b = P->i;
        if (c == '\\') P->i += l; else P->i++;
        if (pc(P) == '_') { /* subscript is part of the name */
            P->i++;
            if (pc(P) == '{') { long e = mathnorm_match_close(P->s, P->i); if (e < 0) { P->err = 1; return v; } P->i = (size_t)e + 1; }
            else if (pc(P)) P->i++;
        }
        if (P->point < 0) { P->err = 1; return v; }
        P->nvars++;
        v = vd(var_value(P->s + b, P->i - b, P->point));
    } else {
        P->err = 1;
    }
    while (!P->err && pc(P) == '!' && P->s[P->i + 1] != '=') {
        P->i++;
        if (!(v.exact && v.q == 1 && v.p >= 0 && v.p <= 20)) { P->err = 1; break; }
        long long f = 1;
        for (long long i = 2; i <= v.p; i++) f *= i;
        v = vq(f, 1);
    }
    P->depth--;
    return v;
}

static val p_power(parser *P) {
    val b = p_atom(P);
    if (!P->err && pc(P) == '^') {
        P->i++;
        if (++P->depth > ME_MAX_DEPTH) { P->err = 1; return b; }
        val e = p_exponent(P);
        /* right associativity: a^b^c */
        if (!P->err && pc(P) == '^') { P->i++; e = v_pow(e, p_exponent(P)); }
        P->depth--;
        b = v_pow(b, e);
    }
    return b;
}

static val p_unary(parser *P) {
    if (++P->depth > ME_MAX_DEPTH) { P->err = 1; return vd(NAN); }
    val v;
    if (pc(P) == '-') { P->i++; v = v_neg(p_unary(P)); }
    else if (pc(P) == '+') { P->i++; v = p_unary(P); }
    else v = p_power(P);
    P->depth--;
    return v;
}

static val p_term(parser *P) {
    val v = p_unary(P);
    while (!P->err) {
        char c = pc(P);
        if (c == '*') { P->i++; v = v_mul(v, p_unary(P)); }
        else if (c == '/') { P->i++; v = v_div(v, p_unary(P)); }
        else if (cmd_is(P, "cdot")) { P->i += 5; v = v_mul(v, p_unary(P)); }
        else if (cmd_is(P, "times")) { P->i += 6; v = v_mul(v, p_unary(P)); }
        else if (cmd_is(P, "div")) { P->i += 4; v = v_div(v, p_unary(P)); }
        else if (starts_atom(P)) { v = v_mul(v, p_power(P)); }
        else break;
    }
    return v;
}

static val p_expr(parser *P) {
    if (++P->depth > ME_MAX_DEPTH) { P->err = 1; return vd(NAN); }
    val v = p_term(P);
    while (!P->err) {
        char c = pc(P);
        if (c == '+') { P->i++; v = v_add(v, p_term(P), 1); }
        else if (c == '-') { P->i++; v = v_add(v, p_term(P), -1); }
        else break;
    }
    P->depth--;
    return v;
}

/* Refuses strings that look like words (a run of >= 3 letters outside a command), since
 * implicit products would make "Evelyn" equal to "Evenly". */
static int looks_like_words(const char *s) {
    size_t run = 0;
    for (size_t i = 0; s[i]; i++) {
        if (s[i] == '\\') { i++; while (isalpha((unsigned char)s[i])) i++; i--; run = 0; continue; }
        if (isalpha((unsigned char)s[i])) { if (++run >= 3) return 1; }
        else run = 0;
    }
    return 0;
}

static int eval_at(const char *s, int point, val *out, int *nvars) {
    parser P = {s, 0, 0, point, 0, 0};
    if (!*s) return -1;
    val v = p_expr(&P);
    if (P.err || s[P.i] != 0) return -1;
    *out = v;
    if (nvars) *nvars = P.nvars;
    return 0;
}

int matheval_number(const char *s, double *out) {
    val v;
    if (looks_like_words(s) || eval_at(s, -1, &v, NULL) != 0) return -1;
    *out = v.d;
    return 0;
}

/* ---- structure ---- */

typedef struct span { const char *s; size_t n; } span;

/* Splits s[0..n) at top level on sep (a string); returns the part count (<= max) or -1 if more. */
static int split_top(const char *s, size_t n, const char *sep, span *parts, int max) {
    size_t sl = strlen(sep), start = 0;
    int depth = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '}')) {
            depth += s[i + 1] == '{' ? 1 : -1; i++; continue;
        }
        if (c == '{' || c == '(' || c == '[') depth++;
        else if (c == '}' || c == ')' || c == ']') depth--;
        else if (depth == 0 && i + sl <= n && strncmp(s + i, sep, sl) == 0 &&
                 !(sep[0] == '\\' && i + sl < n && isalpha((unsigned char)s[i + sl]))) {
            if (np >= max) return -1;
            parts[np].s = s + start; parts[np].n = i - start; np++;
            start = i + sl; i += sl - 1;
        }
    }
    if (np >= max) return -1;
    parts[np].s = s + start; parts[np].n = n - start; np++;
    return np;
}

static int eq_span(span a, span b, int depth);

static void span_str(span a, char *buf, size_t cap) {
    size_t n = a.n < cap - 1 ? a.n : cap - 1;
    memcpy(buf, a.s, n);
    buf[n] = 0;
}

/* Outer brackets enclosing the whole span: returns 1 and the inner span. */
static int enclosed(span a, char *open, char *close, span *inner) {
    if (a.n < 2) return 0;
    char o = a.s[0], c = a.s[a.n - 1];
    int set = 0;
    if (a.n >= 4 && a.s[0] == '\\' && a.s[1] == '{' && a.s[a.n - 2] == '\\' && a.s[a.n - 1] == '}') set = 1;
    if (!set && !((o == '(' || o == '[') && (c == ')' || c == ']'))) return 0;
    /* the opener must close exactly at the end */
    int depth = 0;
    for (size_t i = 0; i < a.n; i++) {
        char x = a.s[i];
        if (x == '\\' && i + 1 < a.n && (a.s[i + 1] == '{' || a.s[i + 1] == '}')) {
            depth += a.s[i + 1] == '{' ? 1 : -1; i++;
            if (depth == 0 && i != a.n - 1) return 0;
            continue;
        }
        if (x == '{' || x == '(' || x == '[') depth++;
        else if (x == '}' || x == ')' || x == ']') { depth--; if (depth == 0 && i != a.n - 1) return 0; }
    }
    if (depth != 0) return 0;
    if (set) { *open = '{'; *close = '}'; inner->s = a.s + 2; inner->n = a.n - 4; }
    else { *open = o; *close = c; inner->s = a.s + 1; inner->n = a.n - 2; }
    return 1;
}

#define ME_MAX_PARTS 64

static int eq_list_ordered(span *pa, span *pb, int n, int depth) {
    for (int i = 0; i < n; i++) if (!eq_span(pa[i], pb[i], depth + 1)) return 0;
    return 1;
}

static int eq_list_unordered(span *pa, span *pb, int n, int depth) {
    unsigned char used[ME_MAX_PARTS] = {0};
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < n && !found; j++)
            if (!used[j] && eq_span(pa[i], pb[j], depth + 1)) { used[j] = 1; found = 1; }
        if (!found) return 0;
    }
    return 1;
}

static int is_plain_decimal(const char *s) {
    size_t i = 0;
    if (s[i] == '-') i++;
    if (!isdigit((unsigned char)s[i])) return 0;
    while (isdigit((unsigned char)s[i])) i++;
    if (s[i] == '.') { i++; if (!isdigit((unsigned char)s[i])) return 0; while (isdigit((unsigned char)s[i])) i++; }
    return s[i] == 0;
}

/* Decimal string -> shortest form ("-007.50" -> "-7.5", "-0" -> "0"). */
static void decimal_canon(const char *s, char *out, size_t cap) {
    char b[EB];
    int neg = s[0] == '-';
    const char *p = s + neg;
    while (*p == '0' && isdigit((unsigned char)p[1])) p++;
    snprintf(b, sizeof b, "%s", p);
    char *dot = strchr(b, '.');
    if (dot) {
        size_t l = strlen(b);
        while (l > 0 && b[l - 1] == '0') b[--l] = 0;
        if (b[l - 1] == '.') b[--l] = 0;
    }
    if (strcmp(b, "0") == 0) neg = 0;
    snprintf(out, cap, "%s%s", neg ? "-" : "", b);
}

/* Relations in a chain, in order; returns the op codes (1 <, 2 >, 3 \leq, 4 \geq, 5 \neq) and parts. */
static int split_relations(span a, span *parts, int *ops, int max) {
    size_t start = 0;
    int depth = 0, np = 0;
    for (size_t i = 0; i < a.n; i++) {
        char c = a.s[i];
        int op = 0;
        size_t len = 1;
        if (c == '{' || c == '(' || c == '[') { depth++; continue; }
        if (c == '}' || c == ')' || c == ']') { depth--; continue; }
        if (depth) continue;
        if (c == '<') op = 1;
        else if (c == '>') op = 2;
        else if (c == '\\') {
            if (a.n - i >= 4 && strncmp(a.s + i, "\\leq", 4) == 0 && !(i + 4 < a.n && isalpha((unsigned char)a.s[i + 4]))) { op = 3; len = 4; }
            else if (a.n - i >= 4 && strncmp(a.s + i, "\\geq", 4) == 0 && !(i + 4 < a.n && isalpha((unsigned char)a.s[i + 4]))) { op = 4; len = 4; }
            else if (a.n - i >= 4 && strncmp(a.s + i, "\\neq", 4) == 0 && !(i + 4 < a.n && isalpha((unsigned char)a.s[i + 4]))) { op = 5; len = 4; }
        }
        if (!op) continue;
        if (np >= max - 1) return -1;
        parts[np].s = a.s + start; parts[np].n = i - start;
        ops[np] = op; np++;
        start = i + len; i += len - 1;
    }
    parts[np].s = a.s + start; parts[np].n = a.n - start; np++;
    return np;
}

static int flip_op(int op) { return op == 1 ? 2 : op == 2 ? 1 : op == 3 ? 4 : op == 4 ? 3 : op; }

/* Matrix: \begin{pmatrix}..\end{pmatrix} (also bmatrix, matrix) -> rows of cells. */
static int matrix_inner(span a, span *inner) {
    static const char *const kinds[] = {"pmatrix", "bmatrix", "matrix", "Bmatrix", "vmatrix", NULL};
    for (int k = 0; kinds[k]; k++) {
        char b[64], e[64];
        snprintf(b, sizeof b, "\\begin{%s}", kinds[k]);
        snprintf(e, sizeof e, "\\end{%s}", kinds[k]);
        size_t bl = strlen(b), el = strlen(e);
        if (a.n >= bl + el && strncmp(a.s, b, bl) == 0 && strncmp(a.s + a.n - el, e, el) == 0) {
            inner->s = a.s + bl; inner->n = a.n - bl - el;
            return k + 1;
        }
    }
    return 0;
}

static int eq_scalar(span a, span b) {
    char sa[EB], sb[EB];
    span_str(a, sa, sizeof sa);
    span_str(b, sb, sizeof sb);
    if (strcmp(sa, sb) == 0) return 1;
    if (is_plain_decimal(sa) && is_plain_decimal(sb)) {
        char ca[EB], cb[EB];
        decimal_canon(sa, ca, sizeof ca);
        decimal_canon(sb, cb, sizeof cb);
        return strcmp(ca, cb) == 0;
    }
    if (looks_like_words(sa) || looks_like_words(sb)) {
        /* words: case-insensitive equality of letters-only answers ("Yes" vs "yes") */
        size_t i = 0;
        for (; sa[i] && sb[i]; i++) {
            if (!isalpha((unsigned char)sa[i]) || tolower((unsigned char)sa[i]) != tolower((unsigned char)sb[i])) return 0;
        }
        return sa[i] == 0 && sb[i] == 0;
    }
    val va, vb;
    int na = 0, nb = 0;
    if (eval_at(sa, -1, &va, NULL) == 0 && eval_at(sb, -1, &vb, NULL) == 0) return v_eq(va, vb);
    /* with variables: compare at several points; every point must agree and at least 3 be finite */
    int valid = 0;
    for (int pt = 0; pt < ME_POINTS; pt++) {
        if (eval_at(sa, pt, &va, &na) != 0 || eval_at(sb, pt, &vb, &nb) != 0) return 0;
        if (na == 0 && nb == 0) return 0; /* would have been handled above */
        if (isnan(va.d) && isnan(vb.d)) continue;
        if (!v_eq(va, vb)) return 0;
        valid++;
    }
    return valid >= 3;
}

static int eq_span(span a, span b, int depth) {
    if (depth > 8) return 0;
    while (a.n && a.s[0] == ' ') { a.s++; a.n--; }
    while (b.n && b.s[0] == ' ') { b.s++; b.n--; }
    if (a.n == 0 || b.n == 0) return a.n == b.n;
    if (a.n == b.n && memcmp(a.s, b.s, a.n) == 0) return 1;
    span pa[ME_MAX_PARTS], pb[ME_MAX_PARTS];
    int na, nb;
    /* matrices */
    span ia, ib;
    int ka = matrix_inner(a, &ia), kb = matrix_inner(b, &ib);
    if (ka || kb) {
        if (!ka || !kb) return 0;
        span ra[ME_MAX_PARTS], rb[ME_MAX_PARTS];
        na = split_top(ia.s, ia.n, "\\\\", ra, ME_MAX_PARTS);
        nb = split_top(ib.s, ib.n, "\\\\", rb, ME_MAX_PARTS);
        while (na > 1 && ra[na - 1].n == 0) na--;
        while (nb > 1 && rb[nb - 1].n == 0) nb--;
        if (na < 1 || na != nb) return 0;
        for (int r = 0; r < na; r++) {
            int ca = split_top(ra[r].s, ra[r].n, "&", pa, ME_MAX_PARTS);
            int cb = split_top(rb[r].s, rb[r].n, "&", pb, ME_MAX_PARTS);
            if (ca < 1 || ca != cb || !eq_list_ordered(pa, pb, ca, depth)) return 0;
        }
        return 1;
    }
    /* unions of intervals/sets, in order */
    na = split_top(a.s, a.n, "\\cup", pa, ME_MAX_PARTS);
    nb = split_top(b.s, b.n, "\\cup", pb, ME_MAX_PARTS);
    if (na < 0 || nb < 0) return 0;
    if (na > 1 || nb > 1) return na == nb && eq_list_ordered(pa, pb, na, depth);
    /* equations: sides pairwise, or the whole equation mirrored */
    na = split_top(a.s, a.n, "=", pa, ME_MAX_PARTS);
    nb = split_top(b.s, b.n, "=", pb, ME_MAX_PARTS);
    if (na < 0 || nb < 0) return 0;
    if (na > 1 || nb > 1) {
        /* a top-level comma outside the equation means a list of equations: handled below */
        span ca[2], cb[2];
        if (split_top(a.s, a.n, ",", ca, 1) == 1 && split_top(b.s, b.n, ",", cb, 1) == 1) {
            if (na != nb) return 0;
            if (eq_list_ordered(pa, pb, na, depth)) return 1;
            for (int i = 0; i < na; i++) if (!eq_span(pa[i], pb[na - 1 - i], depth + 1)) return 0;
            return 1;
        }
    }
    /* relation chains: x<3, -2\leq x<5, mirrored 3>x */
    int oa[ME_MAX_PARTS], ob[ME_MAX_PARTS];
    {
        span ca[2], cb[2];
        int a_list = split_top(a.s, a.n, ",", ca, 1) != 1, b_list = split_top(b.s, b.n, ",", cb, 1) != 1;
        if (!a_list && !b_list) {
            na = split_relations(a, pa, oa, ME_MAX_PARTS);
            nb = split_relations(b, pb, ob, ME_MAX_PARTS);
            if (na < 0 || nb < 0) return 0;
            if (na > 1 || nb > 1) {
                if (na != nb) return 0;
                int same = 1;
                for (int i = 0; i < na - 1 && same; i++) same = oa[i] == ob[i];
                if (same && eq_list_ordered(pa, pb, na, depth)) return 1;
                for (int i = 0; i < na - 1; i++) if (oa[i] != flip_op(ob[na - 2 - i])) return 0;
                for (int i = 0; i < na; i++) if (!eq_span(pa[i], pb[na - 1 - i], depth + 1)) return 0;
                return 1;
            }
        }
    }
    /* brackets: tuples / intervals (ordered, brackets must agree), sets (unordered) */
    char ao = 0, ac = 0, bo = 0, bc = 0;
    span ina, inb;
    int ea = enclosed(a, &ao, &ac, &ina), eb = enclosed(b, &bo, &bc, &inb);
    int ca_n = ea ? split_top(ina.s, ina.n, ",", pa, ME_MAX_PARTS) : 0;
    int cb_n = eb ? split_top(inb.s, inb.n, ",", pb, ME_MAX_PARTS) : 0;
    if (ea && ao == '{') { /* set */
        if (eb && bo == '{') return ca_n > 0 && ca_n == cb_n && eq_list_unordered(pa, pb, ca_n, depth);
        nb = split_top(b.s, b.n, ",", pb, ME_MAX_PARTS);
        return ca_n > 0 && nb == ca_n && eq_list_unordered(pa, pb, ca_n, depth);
    }
    if (eb && bo == '{') return eq_span(b, a, depth + 1);
    if ((ea && ca_n > 1) || (eb && cb_n > 1)) {
        if (!ea || !eb || ao != bo || ac != bc || ca_n != cb_n || ca_n < 0) return 0;
        return eq_list_ordered(pa, pb, ca_n, depth);
    }
    /* bare lists: unordered */
    na = split_top(a.s, a.n, ",", pa, ME_MAX_PARTS);
    nb = split_top(b.s, b.n, ",", pb, ME_MAX_PARTS);
    if (na < 0 || nb < 0) return 0;
    if (na > 1 || nb > 1) return na == nb && eq_list_unordered(pa, pb, na, depth);
    /* "[3]" is not an interval with one element: compare the inside as an expression only for () */
    return eq_scalar(a, b);
}

int matheval_equiv(const char *a, const char *b) {
    if (!a || !b) return 0;
    span sa = {a, strlen(a)}, sb = {b, strlen(b)};
    if (sa.n == 0 || sb.n == 0) return 0;
    return eq_span(sa, sb, 0);
}

/* ---- canonical keys ---- */

static void canon_elem(span a, char *out, size_t cap) {
    char s[EB];
    span_str(a, s, sizeof s);
    val v;
    if (s[0] && !looks_like_words(s) && eval_at(s, -1, &v, NULL) == 0 && !isnan(v.d)) {
        if (v.exact && v.q == 1) snprintf(out, cap, "%lld", v.p);
        else if (v.exact) snprintf(out, cap, "%lld/%lld", v.p, v.q);
        else if (is_plain_decimal(s)) decimal_canon(s, out, cap); /* beyond 64-bit: keep all digits */
        else if (isinf(v.d)) snprintf(out, cap, "%sinf", v.d < 0 ? "-" : "");
        else snprintf(out, cap, "~%.10g", v.d == 0 ? 0.0 : v.d);
        return;
    }
    snprintf(out, cap, "%s", s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void matheval_canonical(const char *s, char *out, size_t cap) {
    if (cap == 0) return;
    out[0] = 0;
    if (!s) return;
    span a = {s, strlen(s)}, inner;
    char o = 0, c = 0;
    int enc = enclosed(a, &o, &c, &inner);
    span body = enc ? inner : a;
    span parts[ME_MAX_PARTS];
    int n = split_top(body.s, body.n, ",", parts, ME_MAX_PARTS);
    if (n < 0 || (enc && n == 1 && o == '[')) { snprintf(out, cap, "%s", s); return; }
    /* sets and bare lists are unordered (as in matheval_equiv): sorted keys, no braces */
    int unordered = (enc && o == '{') || (!enc && n > 1);
    int keep_brackets = enc && o != '{' && !(n == 1 && o == '(');
    char **keys = malloc(sizeof(char *) * (size_t)n);
    if (!keys) { snprintf(out, cap, "%s", s); return; }
    for (int i = 0; i < n; i++) {
        keys[i] = malloc(EB);
        if (keys[i]) canon_elem(parts[i], keys[i], EB);
    }
    for (int i = 0; i < n; i++) if (!keys[i]) { for (int j = 0; j < n; j++) free(keys[j]); free(keys); snprintf(out, cap, "%s", s); return; }
    if (unordered) qsort(keys, (size_t)n, sizeof(char *), cmp_str);
    size_t len = 0;
#define APPEND(str) do { size_t l_ = strlen(str); if (len + l_ < cap) { memcpy(out + len, str, l_); len += l_; out[len] = 0; } else len = cap; } while (0)
    if (keep_brackets) { char b[2] = {o, 0}; APPEND(b); }
    for (int i = 0; i < n; i++) { if (i) APPEND(","); APPEND(keys[i]); }
    if (keep_brackets) { char b[2] = {c, 0}; APPEND(b); }
#undef APPEND
    for (int i = 0; i < n; i++) free(keys[i]);
    free(keys);
}
