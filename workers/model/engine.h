/* workers/model/engine.h — the generation engine: continuous batching over a fixed number of
 * sequence slots, each prompt prefilled once and forked into its n samples.
 *
 *   requests ──► prefill (chunks of max_step_tokens; one prompt per forward unless packing is
 *                 on, eng_set_prefill_pack) ──► held prompt
 *                 (its KV pages / state slot + last-position logits)
 *   held prompt ──fork──► sample s: first token drawn from the prompt's logits (step 0),
 *                 shares the prompt's full KV pages, copies the partial page and state slot
 *   decode step: every running sample advances one token; finished samples (EOS id, stop
 *                string, max_tokens) are emitted and their slot is refilled at once from the
 *                held prompts, then from the queue.
 *
 * Determinism: the token a sample draws at step k uses the Philox uniform keyed by
 * (seed, problem, sample, k), so its tokens do not depend on which other samples share the
 * batch, on max_seqs, or on restarts. On the CPU backend this holds bit for bit: decode
 * matmuls use a fixed-order kernel whatever the batch (up to 64 sequences, CPU_SMALL_T), and
 * each prompt is prefilled on its own.
 * A GPU backend whose GEMM picks kernels by shape may differ in the last bits between batch
 * shapes, which can flip exact near-ties.
 *
 * Decode on CUDA (eng_set_graphs, default on there): each step is padded to a batch-size bucket
 * and replayed from a CUDA graph captured for that bucket (its first step runs eagerly), with
 * sampling on the GPU so only ids cross to the host; prefill and forks stay eager between steps
 * (workers/model/engine_graph.h). Slots can be planned from free memory (ENG_SEQS_AUTO).
 *
 * Telemetry (DESIGN.md Metrics): a sample's time_s = prefill time of its prompt / n samples
 * + sum over its decode steps of (step time / sequences in the step).
 */
#ifndef THINKFAST_ENGINE_H
#define THINKFAST_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "workers/model/model.h"
#include "workers/model/tokenizer.h"

typedef struct engine engine;

/* eng_config.max_seqs: as many decode slots as fit in the backend's free memory, planned by
 * eng_run from the requests' lengths (KV pages, state slots, step workspace; see eng_plan). */
#define ENG_SEQS_AUTO (-1)

typedef struct eng_config {
    int max_seqs;          /* decode slots; default 8; ENG_SEQS_AUTO: planned from free memory */
    int max_step_tokens;   /* prefill chunk; default 256 */
    int page_size;         /* default 16 */
    int max_prompts;       /* prompts held for forking at once; default 2 */
    size_t kv_bytes;       /* cap on KV-cache memory; 0 = half the backend's free memory (fixed max_seqs) */
} eng_config;

typedef struct eng_request {
    const int32_t *prompt;  /* n_prompt >= 1 ids (BOS included if the model wants one) */
    int n_prompt;
    int n_samples;          /* samples 0..n_samples-1 */
    uint32_t problem;       /* RNG key part */
    float temperature, top_p, min_p;  /* temperature <= 0: greedy; top_p 1 / min_p 0: off */
    int top_k;              /* 0: off */
    uint64_t seed;
    int max_tokens;         /* generated tokens at most (EOS included) */
    const char *stop[4];    /* stop strings (need a tokenizer); the text is cut before them */
    int n_stop;
} eng_request;

typedef struct eng_result {
    int request;            /* index in the reqs array */
    uint32_t problem, sample;
    const int32_t *ids;     /* generated ids, the final EOS excluded */
    int n_ids;
    int tokens;             /* tokens generated (EOS included) */
    const char *text;       /* decoded text ("" without a tokenizer), cut before a stop string */
    size_t text_len;
    double time_s;          /* amortised compute time */
    const char *finish;     /* "stop" (EOS or stop string) | "length" */
} eng_result;

/* Return non-zero to abort eng_run. Pointers in r are valid during the call only. */
typedef int (*eng_emit_fn)(void *ud, const eng_result *r);

/* Creates an engine over m (borrowed). tk may be NULL (no text, no stop strings). EOS ids are
 * the model config's eos_token_id(s) plus the tokenizer's end ids. cfg may be NULL (defaults).
 * 0 ok, -1 with err. */
int eng_new(model *m, const tok *tk, const eng_config *cfg, engine **out, char *err, size_t errlen);
void eng_destroy(engine **e);

/* on = 1: prefill several short prompts (together <= max_step_tokens) in one forward — faster
 * for n = 1 workloads, but a prompt's logits then depend on its neighbours in the last bits
 * (matmul kernels are chosen by row count). 0 (default): one prompt per forward, so a sample's
 * tokens are strictly independent of the other requests on the CPU backend. */
void eng_set_prefill_pack(engine *e, int on);

/* Decode path. 1: every decode step runs padded to a batch-size bucket on a fixed workspace
 * (workers/model/engine_graph.h), captured in a CUDA graph per bucket and sampled on the GPU
 * (only ids come back) when the backend is CUDA; on other backends the padded step runs eagerly
 * (same tokens as the plain path). ENG_DECODE_BUCKETED: the same padded steps, never captured
 * (the reference a graph replay must equal bit for bit). 0: the plain eager step
 * (model_forward + b->sample). Default: 1 on CUDA backends, 0 otherwise. Takes effect at the
 * next eng_run. */
#define ENG_DECODE_BUCKETED 2
void eng_set_graphs(engine *e, int mode);

/* ENG_SEQS_AUTO: plan at most cap decode slots (default 8192; <= 0 restores it). */
void eng_set_seqs_cap(engine *e, int cap);

/* Benchmarks (fixed generation length): on = 1 makes EOS ids ordinary tokens, so every sample
 * runs to max_tokens (stop strings still apply). Default 0. */
void eng_set_ignore_eos(engine *e, int on);

/* Memory plan for ENG_SEQS_AUTO: how many sequences of max_len tokens (prompt_len of them a
 * prompt shared by samples_per_prompt samples) fit in the backend's free memory now, with the
 * held prompts, the padding rows and a reserve (min(2 GiB, free / 8)) set aside. The caller's
 * cache is counted as free. Returns the number (>= 1); -1 with err ("out of device memory: one
 * sequence of 9000 tokens needs ...") when not even one fits. */
int eng_plan(engine *e, int max_len, int prompt_len, int samples_per_prompt, char *err, size_t errlen);

/* Generates every sample of every request, emitting each as it finishes (order: completion
 * order). The KV cache is (re)allocated to fit the longest request. 0 ok; -1 with err (a
 * prompt longer than the model context, a request that cannot fit in memory, emit abort). */
int eng_run(engine *e, const eng_request *reqs, int n_reqs, eng_emit_fn emit, void *ud, char *err,
            size_t errlen);

/* Optional per-token hook (streaming output): called for every generated token that is not an
 * EOS, with its decoded bytes (piece, len; "" without a tokenizer). Return non-zero to abort
 * eng_run. NULL disables it. */
typedef int (*eng_token_fn)(void *ud, int request, uint32_t sample, int32_t id, const char *piece, size_t len);
void eng_set_token_callback(engine *e, eng_token_fn fn, void *ud);

/* Statistics of the last eng_run. */
typedef struct eng_stats {
    double prefill_s, decode_s;
    int64_t prefill_tokens, decode_tokens, decode_steps;
    double mean_batch;      /* average sequences per decode step */
    int max_seqs;           /* decode slots of the run (the planned number under ENG_SEQS_AUTO) */
    int graph_buckets;      /* CUDA graphs captured so far (decode buckets) */
    int64_t graph_replays;  /* decode steps run as graph replays in this run */
    int64_t padded_rows;    /* padding rows added to decode steps in this run (buckets) */
} eng_stats;
void eng_get_stats(const engine *e, eng_stats *out);

/* Logits of every position of one prompt [n, V] into out_host (fp32), prefilled in chunks of
 * max_step_tokens with a temporary cache (bin/generate --dump-logits). 0 ok, -1 with err. */
int eng_prompt_logits(engine *e, const int32_t *ids, int n, float *out_host, char *err, size_t errlen);

#endif
