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

typedef struct eng_config {
    int max_seqs;          /* decode slots; default 8 */
    int max_step_tokens;   /* prefill chunk; default 256 */
    int page_size;         /* default 16 */
    int max_prompts;       /* prompts held for forking at once; default 2 */
    size_t kv_bytes;       /* cap on KV-cache memory; 0 = half the backend's free memory */
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
} eng_stats;
void eng_get_stats(const engine *e, eng_stats *out);

/* Logits of every position of one prompt [n, V] into out_host (fp32), prefilled in chunks of
 * max_step_tokens with a temporary cache (bin/generate --dump-logits). 0 ok, -1 with err. */
int eng_prompt_logits(engine *e, const int32_t *ids, int n, float *out_host, char *err, size_t errlen);

#endif
