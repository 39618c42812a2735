/* workers/sample/replay.h — helpers of the replay (calibration) backend, exposed for tests.
 *
 * The backend itself is created with sample_backend_replay_new() (sample_backend.h). Sample s of
 * problem p is corrupted iff replay_is_corrupt(seed, p, s, corrupt): a pure function of its
 * arguments, so pass@k over many problems converges to 1 - corrupt^k in expectation.
 */
#ifndef THINKFAST_REPLAY_H
#define THINKFAST_REPLAY_H

#include <stdint.h>

#include "common/util.h"

/* Uniform double in [0,1) from (seed, problem, sample, stream); stream separates draws. */
double replay_uniform(uint64_t seed, int problem, int sample, int stream);
/* 1 when sample (problem, sample) must be wrong. corrupt <= 0 never, >= 1 always. */
int replay_is_corrupt(uint64_t seed, int problem, int sample, double corrupt);
/* A different answer than `answer` (number: changed by a seeded non-zero delta, keeping the
 * format; anything else: "ANSWER+d"). Appended to out. */
void replay_wrong_answer(const char *answer, uint64_t seed, int problem, int sample, util_buf *out);
/* The text sample (problem, sample) emits: the reference solution, or (corrupt) the solution
 * with its final answer (last "#### N" line, else last \boxed{...}) replaced by a wrong one.
 * With no solution, synthesises "The answer is \boxed{A}.\n#### A". Appended to out. */
void replay_render(const char *solution, const char *answer, int corrupt, uint64_t seed, int problem,
                   int sample, util_buf *out);

#endif
