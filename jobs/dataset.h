/* jobs/dataset.h — the problems of a job: dataset readers (GSM8K, MATH, generic JSONL) and the
 * built-in generator (format "synth", jobs/synth.h).
 *
 * Formats (one JSON object per line; blank lines are skipped; \uXXXX escapes, surrogate pairs
 * included, are decoded to UTF-8):
 *   gsm8k  {"question", "answer"}: answer text ends with "#### N". problem.answer = N with
 *          thousands commas removed; problem.solution = the whole answer text (the "#### N"
 *          line kept) with the <<expr=result>> calculator annotations removed.
 *   math   MATH500 {"problem", "solution", "answer", "subject", "level", "unique_id"}:
 *          answer may be missing (original MATH): then the last \boxed{...} of the solution;
 *          level is an int or a "Level N" string; id = unique_id.
 *   jsonl  {"prompt", "answer"} (answer string or number), optional "id" (string or int) and
 *          "solution".
 * A problem's id is its record index ("0", "1", ... in file order) unless the file gives one.
 * Every string field of a loaded job_problem is non-NULL (possibly ""); level is 0 if unknown.
 * Errors name FILE:LINE and the field, e.g. "test.jsonl:12: answer: missing '#### N'".
 */
#ifndef THINKFAST_JOB_DATASET_H
#define THINKFAST_JOB_DATASET_H

#include <stddef.h>

#include "jobs/spec.h"

typedef struct job_problem {
    char *id;
    char *question;
    char *solution;  /* reference worked solution ("" if the format has none) */
    char *answer;    /* reference final answer */
    char *subject;   /* MATH subject, synth story category, else "" */
    int level;       /* MATH level 1..5, synth: number of steps, else 0 */
} job_problem;

typedef struct job_dataset {
    job_problem *items;
    int n;
} job_dataset;

/* Loads the problems spec->dataset describes (file formats read spec->dataset.path; synth is
 * generated), keeping the first spec->dataset.limit if > 0. 0 ok (*out owned by the caller,
 * free with job_dataset_free), -1 with err set (and *out empty). */
int job_dataset_load(const job_spec *spec, job_dataset *out, char *err, size_t errlen);

/* The reader behind job_dataset_load for files: format "gsm8k" | "math" | "jsonl". */
int job_dataset_read_file(const char *path, const char *format, int limit, job_dataset *out,
                          char *err, size_t errlen);

/* Frees every problem and the array; leaves *d empty. Safe on an empty dataset. */
void job_dataset_free(job_dataset *d);

/* Appends a problem (strings copied; NULL taken as ""). For generators and tests. */
void job_dataset_push(job_dataset *d, const char *id, const char *question, const char *solution,
                      const char *answer, const char *subject, int level);

/* Removes GSM8K calculator annotations "<<...>>" from s in place. */
void job_strip_calc_annotations(char *s);

#endif
