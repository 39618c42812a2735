/* workers/score/math_norm.h — MATH answer extraction and Minerva/Hendrycks-style normalisation.
 *
 * mathnorm_last_boxed finds the final answer a model wrote; mathnorm_normalize rewrites a LaTeX
 * answer into a spacing- and notation-independent string (the input of grade_equiv's structural
 * comparison and of the canonical voting key). Both are pure and bounded: outputs are truncated
 * to their capacity and never overflow.
 */
#ifndef THINKFAST_MATH_NORM_H
#define THINKFAST_MATH_NORM_H

#include <stddef.h>

/* Content of the last `\boxed{...}` or `\fbox{...}` (balanced braces; `\boxed 5` form: up to the
 * next '$' or whitespace) of text into out. Returns 0 found, -1 none (out = ""). An unbalanced
 * last box (truncated output) falls back to the previous well-formed one. */
int mathnorm_last_boxed(const char *text, char *out, size_t cap);

/* Normalises a LaTeX answer (see math_norm.c for the ordered rule list): \left/\right,
 * \dfrac/\tfrac -> \frac, \text{..} unwrapped and trailing units dropped, ^\circ, \%, $, spacing,
 * trailing period, \fracab / \sqrt2 shorthands, thousands separators, short "x =" prefixes.
 * Always NUL-terminates out (cap >= 1). */
void mathnorm_normalize(const char *in, char *out, size_t cap);

/* Index of the brace/bracket closing the one at s[open] ('{', '(' or '['; any closer type ends a
 * nesting level for '(' / '[' since intervals mix them), or -1 when unbalanced. */
long mathnorm_match_close(const char *s, size_t open);

#endif
