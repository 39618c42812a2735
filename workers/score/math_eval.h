/* workers/score/math_eval.h — a small evaluator for normalised LaTeX answers and the structural
 * equivalence MATH grading uses.
 *
 * Expressions: numbers (decimals, 1.2e5), + - * / ^, \cdot \times \div, implicit products,
 * \frac{}{}, \sqrt{} / \sqrt[n]{}, \pi, \infty, |x|, n!, \binom, trig/log/exp, mixed numbers
 * ("2\frac{1}{2}" = 2.5), single-letter variables (and \alpha-style ones, with subscripts).
 * Values carry an exact rational when only rational operations were used, so 1/3 and 0.3333
 * differ and 10^12 vs 10^12+1 are told apart; otherwise doubles compared with a 1e-9 relative
 * tolerance. Expressions with variables are compared at several pseudo-random points.
 * Structures: equations, relation chains (x<3, 3>x), ordered tuples and intervals (brackets must
 * agree), \cup unions, sets and bare lists (unordered), pmatrix/bmatrix matrices.
 * Conservative by design: anything it cannot parse falls back to exact string equality.
 */
#ifndef THINKFAST_MATH_EVAL_H
#define THINKFAST_MATH_EVAL_H

#include <stddef.h>

/* Evaluates a normalised expression without variables. Returns 0 and *out, or -1 when it is not
 * a plain number expression (variables, structure, syntax the evaluator does not know). */
int matheval_number(const char *s, double *out);

/* Structural + numeric equivalence of two normalised answers (mathnorm_normalize output).
 * Returns 1 equivalent, 0 not (including "cannot tell"). */
int matheval_equiv(const char *a, const char *b);

/* Writes a canonical form of a normalised answer for voting: each top-level element (of a
 * tuple, list, interval or the whole answer) that evaluates to a number without variables is
 * replaced by that number ("%.12g", exact rationals as "p/q"); everything else is kept as is. */
void matheval_canonical(const char *s, char *out, size_t cap);

#endif
