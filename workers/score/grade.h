/* workers/score/grade.h — answer graders for GSM8K and MATH: extraction, equivalence, and the
 * canonical key that majority voting groups answers by.
 *
 * Used by the score worker role, `jobctl rescore` and `bin/grade`. Pure functions over C
 * strings: no allocation visible to the caller, no globals, thread-safe. Inputs are untrusted
 * model output: any byte string (including invalid UTF-8 and unbalanced braces) is handled
 * without crashing; very long inputs are graded on bounded work.
 *
 * GSM8K: the final number of a response is taken from (in order of preference) the last
 *   `#### N`, the last `\boxed{N}`, the last "The answer is N", else the last number in the text.
 *   Numbers are compared as decimals after removing thousands separators, currency and units
 *   ("$1,234.50" == "1234.5", "18.00" == "18").
 * MATH: the last `\boxed{...}` / `\fbox{...}` (balanced braces, also `\boxed 5`), normalised in
 *   the Minerva / Hendrycks style (see math_norm.h), then compared by grade_equiv's structural and
 *   numeric rules (math_eval.h). The grader is conservative: it prefers a false "wrong" to a
 *   false "correct".
 */
#ifndef THINKFAST_GRADE_H
#define THINKFAST_GRADE_H

#include <stddef.h>

typedef enum { GRADER_GSM8K = 0, GRADER_MATH = 1 } grader_kind;

/* Longest answer grade_extract/grade_answer return for MATH (bytes, without the NUL): a longer
 * boxed content is truncated (such an answer is almost surely wrong anyway). */
#define GRADE_ANSWER_MAX 1023

/* "gsm8k" or "math" -> *out. Returns 0, or -1 for an unknown name (out untouched). */
int grade_parse_kind(const char *name, grader_kind *out);
/* The name grade_parse_kind accepts ("gsm8k" | "math"). */
const char *grade_kind_name(grader_kind k);

/* Extracts the final answer of a model response into out (NUL-terminated, truncated to cap-1).
 * GSM8K: the number as written, cleaned of commas/currency/units ("1,234" -> "1234").
 * MATH: the raw content of the last \boxed{} / \fbox{} (not yet normalised).
 * Returns 0 when an answer was found, -1 when none (out is then ""). */
int grade_extract(grader_kind k, const char *response, char *out, size_t cap);

/* Grades a response against a reference answer (GSM8K: the `#### N` value, or a full GSM8K
 * answer text containing `#### N`; MATH: the dataset's `answer` field). extracted (may be NULL)
 * gets the extracted answer or "" (cap bytes). Returns 1 correct, 0 wrong (also when nothing
 * could be extracted or the reference itself is unusable). */
int grade_answer(grader_kind k, const char *response, const char *reference_answer,
                 char *extracted, size_t cap);

/* Whether two already-extracted answers are equivalent under grader k (1 yes, 0 no). For MATH
 * this is the full equivalence (normalisation, numbers, fractions, radicals, tuples, intervals,
 * lists, matrices, equations); symmetric up to the bracket conventions documented in grade.c. */
int grade_equiv(grader_kind k, const char *a, const char *b);

/* The key answers are grouped by for majority voting: equal keys <=> "the same answer" for
 * voting purposes. GSM8K: the number in shortest decimal form ("18.00" -> "18", "-0" -> "0").
 * MATH: the normalised string, with a purely numeric answer replaced by its value
 * ("\frac{1}{2}", "0.5", "1/2" -> the same key). An empty/absent answer gives "" (callers treat
 * "" as "no vote"). Returns 0, or -1 if out is too small (out then holds a truncated key). */
int grade_canonical(grader_kind k, const char *answer, char *out, size_t cap);

#endif
