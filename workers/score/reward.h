/* workers/score/reward.h — reward-model scoring: a Llama-architecture reward model run through
 * the model engine (workers/model/model.h), giving one float per (prompt, response) sample.
 *
 *   ORM (outcome RM, "orm"): a LlamaForSequenceClassification-style checkpoint — the causal
 *       LM's body plus a linear head `score.weight` [num_labels, hidden] (no bias, no lm_head).
 *       logits = score.weight · h, h = the final-normed hidden state of the LAST token of
 *       prompt + response (HF pools the last non-pad token; we never pad). Reward:
 *       num_labels == 1 -> logits[0]; num_labels > 1 -> softmax(logits)[num_labels - 1]
 *       (the probability of the last label, by convention "good"/"correct").
 *   PRM (process RM, "prm"): a causal LM (any architecture the engine loads). The response is
 *       cut into steps at every occurrence of the separator (default "\n\n"); a step ends at
 *       the token that completes its separator, and the response's end is one more step when
 *       text other than whitespace follows the last separator (or there is no separator at
 *       all, so every sample has at least one step). Step score = the model's next-token
 *       probability (full softmax over the vocabulary) of the designated token (prm_token) at
 *       the step's end — or, with prm_bad_token set (RLHFlow-style PRMs), the two-token
 *       normalised p(good) / (p(good) + p(bad)) = 1 / (1 + exp(logit[bad] - logit[good])).
 *       Reward = aggregate of the step scores: "last" (default), "min" or
 *       "prod".
 *
 * Input text: prompt + response, tokenised in one piece (specials in the text such as
 * "<|eot_id|>" become their ids, BOS prepended when the tokenizer has one and the text does not
 * start with it), so BPE merges are what the model saw in training. Step ends are located by
 * the byte offsets of the tokens (tok_piece_after); a token spanning the end of a separator
 * counts as the step's end. Sequences longer than the model's max_position keep their last
 * max_position tokens (the end is what both heads read).
 *
 * Loading an ORM: the engine's config loader knows only *ForCausalLM classes, so the reward
 * loader presents it a shadow directory (under $TMPDIR) whose config.json names the causal
 * class with tied embeddings and whose weight files are symlinks to the originals; the head
 * `score.weight` is read on the host (fp32) and applied to the hidden state in double.
 *
 * Batching: several whole sequences share a forward (reward_set_max_step tokens in all), so a
 * sample's score may differ in the last bits with its neighbours in the batch (matmul kernels
 * are chosen by row count), as the engine's prefill packing does; chunked and one-at-a-time
 * scoring agree within ~1e-5 on the CPU backend (tests/unit/test_reward.c).
 * Measured (H100, random 123M-param Llama, bf16 weights, 64 samples x 522 tokens sharing a
 * 40-token prompt; THINKFAST_REWARD_BENCH=1 build/tests/test_reward): ORM 854 samples/s
 * (446k tokens/s; 740 before prefix sharing), PRM with a 32000-id vocabulary 245 samples/s.
 *
 * Thread safety: a reward_model is used by one thread at a time.
 */
#ifndef THINKFAST_REWARD_H
#define THINKFAST_REWARD_H

#include <stddef.h>
#include <stdint.h>

typedef enum { REWARD_ORM = 1, REWARD_PRM = 2 } reward_kind;
typedef enum { REWARD_AGG_LAST = 1, REWARD_AGG_MIN = 2, REWARD_AGG_PROD = 3 } reward_agg;

/* What to load (the job spec's score.reward section). NULL / "" strings take the defaults:
 * kind "orm", device "auto", prm_separator "\n\n", prm_aggregate "last". prm_token is
 * required for "prm": a special token's text ("<|reserved_special_token_0|>") or a string the
 * tokenizer encodes as exactly one token ("+"). */
typedef struct reward_spec {
    const char *model;          /* model directory (config.json, safetensors, tokenizer) */
    const char *kind;           /* "orm" | "prm" */
    const char *device;         /* "auto" | "cpu" | "cuda" | "cuda:N" */
    const char *prm_token;
    const char *prm_separator;
    const char *prm_aggregate;  /* "last" | "min" | "prod" */
    const char *prm_bad_token;  /* optional (NULL / "" = none): PRM step score normalised over
                                   {prm_token, prm_bad_token}; resolved like prm_token */
} reward_spec;

/* One sample's score. steps (PRM only; NULL and 0 for ORM) is owned: reward_result_free. */
typedef struct reward_result {
    double reward;
    double *steps;
    int n_steps;
} reward_result;

typedef struct reward_item {
    const char *prompt;    /* the text the sampler continued (rendered template); may be "" */
    const char *response;  /* the sample */
} reward_item;

typedef struct reward_model reward_model;

/* Name parsing: 0 ok, -1 unknown (NULL or "" give the default: orm / last). */
int reward_parse_kind(const char *name, reward_kind *out);
int reward_parse_agg(const char *name, reward_agg *out);

/* Aggregates n >= 1 step scores: last -> steps[n-1], min -> the minimum, prod -> the product.
 * NaN when n <= 0. */
double reward_aggregate(reward_agg agg, const double *steps, int n);

/* Byte offsets (into response) where the steps end, as described above; *ends is malloc'd
 * (caller frees, non-NULL), returns the number of steps (>= 1). sep NULL or "" = "\n\n". */
int reward_split_steps(const char *response, size_t len, const char *sep, size_t **ends);

/* Loads the model, its tokenizer and (ORM) its head onto the device. 0 ok; -1 with err naming
 * the field or file ("reward.prm_token: \"foo bar\" is 2 tokens for this tokenizer (expected
 * one)", "DIR/model.safetensors: tensor score.weight is missing (an ORM needs a
 * LlamaForSequenceClassification-style score head)"). */
int reward_load(const reward_spec *spec, reward_model **out, char *err, size_t errlen);
void reward_destroy(reward_model **rm);

reward_kind reward_model_kind(const reward_model *rm);
int reward_num_labels(const reward_model *rm);   /* ORM head rows; 0 for PRM */
int32_t reward_prm_token_id(const reward_model *rm); /* -1 for ORM */
int32_t reward_prm_bad_token_id(const reward_model *rm); /* -1 for ORM or no prm_bad_token */
/* Backend name ("cpu", "cuda:0", ...). */
const char *reward_device(const reward_model *rm);

/* Tokenises prompt + response as the scorer does: *ids (malloc'd, *n ids) and *step_pos
 * (malloc'd, *n_steps >= 1 entries): PRM — for each step of the response, the index of the
 * token ending it; ORM — one entry, *n - 1. Truncation to max_position is applied (positions
 * refer to the kept ids; steps cut off by it are dropped, at least the last one is kept).
 * 0 ok, -1 with err. */
int reward_tokenize(const reward_model *rm, const char *prompt, const char *response, int32_t **ids, int *n,
                    int **step_pos, int *n_steps, char *err, size_t errlen);

/* Scores one token sequence: ORM reads position n - 1 (step_pos ignored); PRM reads every
 * position in step_pos (each in [0, n)). out->steps is allocated for PRM. 0 ok, -1 err. */
int reward_score_ids(reward_model *rm, const int32_t *ids, int n, const int *step_pos, int n_steps,
                     reward_result *out, char *err, size_t errlen);

/* Tokens per forward (default 2048; PRM less for a large vocabulary, so that the fp32 logits
 * of a step stay near 256 MB). Longer sequences run alone in chunks through the cache. n >= 1. */
void reward_set_max_step(reward_model *rm, int n);

/* 1 (default): consecutive items with the same prompt (a problem's samples) prefill their
 * longest common token prefix once and fork it for each sample (kv_seq_fork); 0: every sequence
 * is computed whole. Scores agree to rounding either way. */
void reward_set_prefix_sharing(reward_model *rm, int on);
/* Tokens run through the model since load (prefixes counted once). */
int64_t reward_tokens_run(const reward_model *rm);

/* Scores n items (several sequences share one forward where they fit). out[n] is filled
 * (free each with reward_result_free). 0 ok; -1 with err (out left freed). */
int reward_score_batch(reward_model *rm, const reward_item *items, int n, reward_result *out, char *err,
                       size_t errlen);

/* Frees n results' step arrays (tolerates NULL). */
void reward_result_free(reward_result *r, int n);

/* A one-model cache for workers: returns the loaded model for spec, loading it (and dropping
 * the previous one) when any field differs. Borrowed; valid until the next call or destroy.
 * NULL with err on a load error. */
typedef struct reward_cache reward_cache;
reward_cache *reward_cache_new(void);
void reward_cache_destroy(reward_cache **c);
reward_model *reward_cache_get(reward_cache *c, const reward_spec *spec, char *err, size_t errlen);
int reward_cache_loads(const reward_cache *c);

#endif
