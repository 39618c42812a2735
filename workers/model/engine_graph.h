/* workers/model/engine_graph.h — the engine's decode step on a fixed workspace, padded to
 * batch-size buckets and, on the CUDA backend, captured in one CUDA graph per bucket.
 *
 *   step with n sequences ──► bucket k >= n (1, 2, 4, 8, 16, 24, ... x1.125, max_seqs)
 *     host: tokens, positions, slot mappings, state slots, block table (fixed width max_pages)
 *           and sampling params of the n rows, plus k - n padding rows ──► one upload each
 *     device: model_step_forward(k) + GPU sampling of the k rows  ── graph replay once bucket k
 *             was run eagerly once and captured (the eager run is a real step, so nothing is
 *             computed twice) ──► ids of the n real rows are the only download
 *
 * Padding rows are dummy sequences: token 0 at position 0, writing their KV into one page and
 * their Mamba state into one slot that this module takes from the cache for itself, so they
 * never touch a real sequence; their sampled ids are dropped. Rows are independent in every op,
 * so a real row's logits do not depend on the padding.
 *
 * On backends without graphs (cpu) the same padded step runs eagerly and samples with
 * b->sample (used by the tests to check the padding against the plain engine bit for bit).
 * A graph freezes every device pointer it uses (weights, the cache, the workspace): destroy this
 * object before the kv cache or the model it was made for.
 */
#ifndef THINKFAST_ENGINE_GRAPH_H
#define THINKFAST_ENGINE_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "workers/model/kvcache.h"
#include "workers/model/model.h"

typedef struct eng_graph eng_graph;

typedef struct eng_graph_stats {
    int buckets_captured;   /* CUDA graphs instantiated */
    int capture_failures;   /* buckets that fell back to eager steps (capture failed; logged) */
    int64_t replays;        /* steps run as graph replays */
    int64_t eager_steps;    /* steps run eagerly (first step of a bucket, or no graphs) */
    int64_t rows, padded_rows; /* real rows and padding rows over all steps */
} eng_graph_stats;

/* Creates the executor for up to max_seqs sequences per step whose block tables hold at most
 * max_pages pages, over model m and cache kv (both borrowed). Takes one state slot and one page
 * of kv for the padding rows. use_graphs: 1 = capture CUDA graphs (CUDA backend in a GPU build;
 * ignored elsewhere), 0 = always eager. 0 ok; -1 with err ("engine graph: no free state slot
 * for the padding rows", out of memory for the workspace). */
int eng_graph_new(model *m, kv_cache *kv, int max_seqs, int max_pages, int use_graphs, eng_graph **out, char *err,
                  size_t errlen);
/* Frees the graphs and the workspace and gives the padding slot/page back to the cache. */
void eng_graph_destroy(eng_graph **g);

/* The bucket (padded row count) a step of n sequences runs with (1 <= n <= max_seqs). */
int eng_graph_bucket(const eng_graph *g, int n);

/* One decode step over b (finished with kv_batch_finish; every sequence has exactly one token;
 * 1 <= b->n_seq <= max_seqs; b->max_pages <= max_pages): runs the step padded to its bucket and
 * samples row i with params[i] (host memory); writes ids_host[0..n_seq). 0 ok; -1 with err (a
 * batch that does not fit the executor). */
int eng_graph_step(eng_graph *g, const kv_batch *b, const op_sample_params *params, int32_t *ids_host, char *err,
                   size_t errlen);

void eng_graph_get_stats(const eng_graph *g, eng_graph_stats *out);

#endif
