/* workers/sample/sample_backend.h — the interface every sampling backend implements.
 *
 * A backend turns problems into sampled completions. The sample worker role builds a
 * sample_params from the task payload, calls run() over the chunk's problems, and streams each
 * sample_output the backend emits to the broker. Backends:
 *   replay  (workers/sample/replay.c)  — calibration backend: emits the reference solution,
 *           or with seeded probability `corrupt` a wrong one (pass@k = 1 - corrupt^k).
 *   native  (workers/sample/native.c) — the Transformer/Mamba engine (workers/model/engine.h).
 * The factory that picks one from a job's model spec (and caches a loaded backend across
 * tasks) is in workers/sample/backend.h.
 *
 * Contract for run(): emits exactly n_items * p->n outputs (sample 0..n-1 of each problem) unless
 * emit returns non-zero (then run stops and returns 0 or -1, as it likes) or an error occurs
 * (returns -1 with err set). Output strings are valid only during the emit call.
 * A sample's tokens depend only on (seed, problem, sample, step), never on chunking or batching.
 * time_s is the sample's amortised compute time (DESIGN.md, Metrics).
 */
#ifndef THINKFAST_SAMPLE_BACKEND_H
#define THINKFAST_SAMPLE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct sample_params {
    int n;
    double temperature, top_p, min_p;
    int top_k;
    int max_tokens;
    uint64_t seed;
    const char *stop[4];
    int n_stop;
    const char *template_name;
    const char *system;
    const char *device;
} sample_params;

typedef struct sample_item {
    int problem; /* index of the problem in its job */
    const char *id, *question, *solution, *answer;
} sample_item;

typedef struct sample_output {
    int problem, sample;
    const char *text;
    int tokens;
    double time_s;
    const char *finish; /* "stop" | "length" */
} sample_output;

typedef int (*sample_emit_fn)(void *ud, const sample_output *out); /* non-zero aborts the run */

typedef struct sample_backend sample_backend;
struct sample_backend {
    int (*run)(sample_backend *b, const sample_item *items, int n_items, const sample_params *p,
               sample_emit_fn emit, void *ud, char *err, size_t errlen); /* 0 ok, -1 error (err set) */
    void (*destroy)(sample_backend **b);
    void *impl;
};

/* workers/sample/replay.c (WORKERS). corrupt in [0,1]; NULL + err on a bad value. */
sample_backend *sample_backend_replay_new(double corrupt, char *err, size_t errlen);
/* workers/sample/native.c (ENGINE). model_dir holds config.json + safetensors; device
 * "cpu"|"cuda"|"auto". NULL + err on failure. */
sample_backend *sample_backend_native_new(const char *model_dir, const char *device, char *err, size_t errlen);

#endif
