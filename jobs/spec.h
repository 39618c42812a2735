/* jobs/spec.h — job specs: the JSON file a user submits, validated into a job_spec.
 *
 * A job file is one JSON object (see the files in examples/). Every field has a default except the
 * dataset path (required unless the dataset format is "synth"). Validation is strict: wrong
 * types, out-of-range values and unknown keys are errors (a typo must not pass silently), and
 * every error names the file, the line:column of the offending value (or key) and the field
 * path, e.g.
 *     bad.json:5:17: sampling.n: expected a positive integer, got -3
 *     job.json:3:16: model.backend: unknown backend "foo" (expected replay|native)
 *     job.json:9:5: sampling.temprature: unknown key (did you mean temperature?)
 *
 * Fields and defaults (JSON key -> struct field):
 *   kind "sample"                      name: file basename without ".json" (or "job")
 *   model.backend "replay"|"native" ("replay")   model.corrupt [0,1] (0)
 *   model.path (required for native)   model.device "auto"|"cpu"|"cuda"|"cuda:N" ("auto")
 *   dataset.format "gsm8k"|"math"|"jsonl"|"synth" (from the path's name: "math" if it contains
 *     "math", else "gsm8k")    dataset.path    dataset.limit >= 0 (0 = all)
 *   synth only: dataset.n (500), dataset.seed (1), dataset.steps [min,max] ([2,6], 1..12),
 *     dataset.numbers [lo,hi] ([2,100]: range of the base quantities in the problems)
 *   prompt.template "plain"|"llama3-chat" ("plain") -> template_name   prompt.system ("")
 *   sampling.n (16) temperature (0.8) top_p (0.95) top_k (0) min_p (0) max_tokens (1024)
 *     seed (1) stop (string or array of up to 4 strings; none)
 *   score.grader "gsm8k"|"math" (from the dataset format: math -> math, else gsm8k)
 *   score.reward (optional): {"model": DIR (required), "kind": "orm"|"prm" ("orm"),
 *     "device" ("auto"), prm only: "prm_token" (required), "prm_separator" ("\n\n"),
 *     "prm_aggregate" "last"|"min"|"prod" ("last"), "prm_bad_token" (optional, a token other
 *     than prm_token: the step score becomes p(good) / (p(good) + p(bad)); canonical JSON has it
 *     only when set)}
 *   aggregate.k: strictly increasing positive ints, each <= sampling.n (default: the powers of
 *     two below sampling.n, then sampling.n itself: n=16 -> [1,2,4,8,16], n=10 -> [1,2,4,8,10])
 *   chunk (8) problems per sample task, priority (0, higher first), max_attempts (3)
 *
 * job->json is the canonical compact JSON of the whole spec with every default filled in, keys
 * in a fixed order (what the broker stores); parsing it again yields the same spec and the
 * same JSON byte for byte.
 */
#ifndef THINKFAST_JOB_SPEC_H
#define THINKFAST_JOB_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define JOB_SPEC_MAX_K 32
#define JOB_SPEC_MAX_STOP 4

typedef struct job_spec {
    char kind[16];   /* "sample" */
    char name[128];
    struct {
        char backend[16]; /* "replay" | "native" */
        double corrupt;   /* replay: probability a sample is replaced with a wrong solution */
        char path[1024];  /* model directory (native) */
        char device[32];  /* "cpu" | "cuda" | "cuda:N" | "auto" */
    } model;
    struct {
        char path[1024];
        char format[16];  /* "gsm8k" | "math" | "jsonl" | "synth" */
        int limit;        /* keep the first N problems; 0 = all */
        int n;            /* synth: number of problems */
        uint64_t seed;    /* synth: generator seed */
        int steps_min, steps_max; /* synth: solution lines per problem */
        int num_min, num_max;     /* synth: range of base quantities ("numbers": [lo, hi]) */
    } dataset;
    struct {
        char template_name[32]; /* "plain" | "llama3-chat" (JSON key "template") */
        char system[1024];      /* optional system prompt; "" = none */
    } prompt;
    struct {
        int n;                  /* samples per problem */
        double temperature, top_p, min_p;
        int top_k;              /* 0 = off */
        int max_tokens;
        uint64_t seed;
        char stop[JOB_SPEC_MAX_STOP][64];
        int n_stop;
    } sampling;
    struct {
        char grader[16];        /* "gsm8k" | "math" */
        struct {                /* optional reward model (workers/score/reward.h); model "" = none */
            char model[1024];   /* model directory (made absolute by job_spec_load) */
            char kind[8];       /* "orm" | "prm" ("orm") */
            char device[32];    /* "auto" | "cpu" | "cuda" | "cuda:N" ("auto") */
            char prm_token[128];     /* prm: the token whose probability scores a step (required) */
            char prm_separator[64];  /* prm: step separator ("\n\n") */
            char prm_aggregate[8];   /* prm: "last" | "min" | "prod" ("last") */
            char prm_bad_token[128]; /* prm, optional ("" = none): step score = p(good) /
                                        (p(good) + p(bad)) instead of the full-softmax p(good) */
        } reward;
    } score;
    struct {
        int k[JOB_SPEC_MAX_K];
        int n_k;
    } aggregate;
    int chunk;         /* problems per sample task */
    int priority;      /* higher runs first */
    int max_attempts;  /* a task failing this often is marked failed */
    char *json;        /* canonical compact JSON (owned; freed by job_spec_free) */
} job_spec;

/* Parses and validates a job spec from text[0..len) (need not be NUL-terminated). filename is
 * used in error messages and for the default name (may be NULL: "<spec>"). On success returns
 * 0 and fills *out (free with job_spec_free); on error returns -1, writes one line
 * "FILE:LINE:COL: FIELD: message" into err and leaves *out zeroed (job_spec_free is safe). */
int job_spec_parse(const char *text, size_t len, const char *filename, job_spec *out, char *err,
                   size_t errlen);

/* Reads path and parses it (as job_spec_parse). Relative dataset.path and model.path are then
 * made absolute against the current working directory (like command-line paths, not the job
 * file's folder) and "."/".." are collapsed, so a broker or worker running elsewhere reads the
 * same files (job->json carries the absolute paths). */
int job_spec_load(const char *path, job_spec *out, char *err, size_t errlen);

/* Frees job->json and zeroes the struct. Safe on a zeroed or failed spec. */
void job_spec_free(job_spec *s);

/* Re-renders s->json from the struct fields (after a caller changed a field). */
void job_spec_render(job_spec *s);

#endif
