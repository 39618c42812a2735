/* jobs/synth.h — the built-in data: a seeded generator of GSM8K-style word problems.
 *
 * Each problem is a short story (a person, objects, prices, wages, rates, percentages, time)
 * built as a chain of arithmetic steps; the solution has one step per line in GSM8K's answer
 * style ("Natalia sells 48 / 2 = 24 clips in May.") and ends with "#### N". Every step is
 * integer arithmetic checked while the chain is built (divisions and percentages are exact,
 * nothing goes negative), so every answer is a non-negative integer and every line's
 * arithmetic is right by construction. Numbers used in a step are givens of the question or
 * results of earlier steps (plus the small constants of words like "half" or "%": 2..12, 60,
 * 100).
 *
 * Determinism: problem i depends only on (seed, i, steps, numbers) through our own PRNG
 * (splitmix64 + xoshiro256**) and integer arithmetic, so the same parameters give byte-identical
 * text on any machine, and the first k problems of a set of n equal a set of k.
 */
#ifndef THINKFAST_JOB_SYNTH_H
#define THINKFAST_JOB_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/util.h"
#include "jobs/dataset.h"

typedef struct synth_params {
    int n;                    /* problems */
    uint64_t seed;
    int steps_min, steps_max; /* solution lines per problem, 1 <= min <= max <= SYNTH_MAX_STEPS */
    int num_min, num_max;     /* range of base quantities, 1 <= lo < hi <= 100000 */
} synth_params;

#define SYNTH_MAX_STEPS 12

/* The defaults: n 500, seed 1, steps [2,6], numbers [2,100]. */
void synth_params_default(synth_params *p);

/* Validates p; 0 ok, -1 with err naming the bad knob. */
int synth_params_check(const synth_params *p, char *err, size_t errlen);

/* Generates problem `index`, appending its text to question and solution (the solution ends
 * with "#### N", no trailing newline), and returns its number of steps (>= 1), or -1 on invalid
 * params (err set). *category (may be NULL) gets the kind of story, a static string: counting,
 * groups, rates, comparison, wages, money, distance, time, shopping. */
int synth_problem(const synth_params *p, int index, util_buf *question, util_buf *solution,
                  int64_t *answer, const char **category, char *err, size_t errlen);

/* Generates p->n problems into *out (ids "synth-SEED-INDEX", level = steps, subject = the
 * category). 0 ok, -1 with err set. */
int synth_generate(const synth_params *p, job_dataset *out, char *err, size_t errlen);

/* Writes d as GSM8K-format JSONL ({"question": ..., "answer": solution}); strings escaped by
 * util_buf_json_str (valid UTF-8 copied as is). 0 ok, -1 on a write error. */
int synth_write_jsonl(const job_dataset *d, FILE *f);

/* The body of `jobctl gen-data synth [--n N] [--seed S] [--steps MIN,MAX] [--numbers LO,HI]
 * [--out FILE|-]` (implemented in tools/gendata.c). argv[0] is "gen-data". Returns the exit
 * status (0 ok, 2 usage error, 1 other failure). */
int gendata_main(int argc, char **argv);

#endif
