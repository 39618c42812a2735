/* workers/model/kvcache.h — the inference state of many sequences: paged KV cache for the
 * attention layers and per-sequence state slots (conv + SSM state) for the Mamba-2 layers.
 *
 *   pages  [n_pages, page_size, Hkv, hd] per attention layer, K and V separately (act dtype);
 *          refcounted, so a prompt's full pages are shared by all its samples;
 *   slots  per Mamba layer: the conv state of the x|B|C channels [n_slots, conv_dim, K-1] and
 *          the SSM state [n_slots, H, P, N], fp32; a slot is copied when a sample forks.
 *
 * A kv_seq is one sequence's view: its page list, length and slot. Forking a prompt for a
 * sample shares its full pages by reference and copies the partial last page and the slot:
 * every write a sequence makes lands at positions >= its length, i.e. on pages it owns alone.
 * Pages are reserved at admission (kv_seq_reserve) so a running sequence never runs out.
 *
 * kv_batch collects the host-side index arrays of one forward step (tokens, positions,
 * cu_seqlens, slots, block table, slot mapping) from several sequences.
 * Not thread-safe: one engine thread owns a cache.
 */
#ifndef THINKFAST_KVCACHE_H
#define THINKFAST_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"
#include "workers/model/config.h"

typedef struct kv_cache kv_cache;

typedef struct kv_seq {
    int32_t *pages;   /* page ids in order (owned) */
    int n_pages, cap_pages;
    int len;          /* tokens whose state is in the cache */
    int slot;         /* Mamba state slot, -1 if none (no Mamba layers or not allocated) */
    int reserved;     /* pages reserved for this sequence and not yet allocated */
} kv_seq;

/* Creates the cache for model config c on backend be: n_pages pages of page_size tokens
 * (0 pages if the model has no attention layer) and n_slots state slots (0 if no Mamba layer).
 * 0 ok; -1 with err ("kv cache: out of backend memory for N pages (B bytes)"). */
int kv_cache_new(op_backend *be, const model_config *c, int page_size, int n_pages, int n_slots,
                 kv_cache **out, char *err, size_t errlen);
void kv_cache_destroy(kv_cache **kv);

int kv_page_size(const kv_cache *kv);
int kv_n_pages(const kv_cache *kv);
/* Pages neither allocated nor reserved. */
int kv_pages_available(const kv_cache *kv);
int kv_slots_available(const kv_cache *kv);
/* Bytes of backend memory one page takes over all attention layers (K and V). */
size_t kv_page_bytes(op_backend *be, const model_config *c, int page_size);
/* Bytes one state slot takes over all Mamba layers. */
size_t kv_slot_bytes(const model_config *c);

/* Layer storage (layer = index among attention / among Mamba layers). */
void *kv_k(kv_cache *kv, int attn_layer);
void *kv_v(kv_cache *kv, int attn_layer);
float *kv_conv(kv_cache *kv, int mamba_layer); /* [n_slots, conv_dim, K-1]: the x|B|C channels */
float *kv_ssm(kv_cache *kv, int mamba_layer);

/* Starts an empty sequence: takes a state slot (cleared) if the model has Mamba layers.
 * 0 ok, -1 when no slot is free. */
int kv_seq_init(kv_cache *kv, kv_seq *s);
/* Reserves pages so that the sequence can grow to max_len tokens. 0 ok, -1 if not enough. */
int kv_seq_reserve(kv_cache *kv, kv_seq *s, int max_len);
/* Pages a fork of a len-token sequence must reserve to reach max_len. */
int kv_fork_pages_needed(const kv_cache *kv, int len, int max_len);
/* dst (uninitialised) becomes a copy of src sharing src's full pages; takes a slot and copies
 * the state, copies the partial last page; reserves pages up to max_len. 0 ok, -1 if no slot
 * or pages (dst left empty). */
int kv_seq_fork(kv_cache *kv, const kv_seq *src, kv_seq *dst, int max_len);
/* Drops the sequence's pages (shared ones when their last user goes), slot and reservation. */
void kv_seq_release(kv_cache *kv, kv_seq *s);

/* One step's host-side arrays, grown as needed and reused across steps. */
typedef struct kv_batch {
    int n_seq, T, max_pages;
    int32_t *tokens, *pos, *cu_seqlens, *slots, *block_table, *slot_mapping;
    const kv_seq **seqs;
    int cap_T, cap_seq, cap_bt;
} kv_batch;
void kv_batch_init(kv_batch *b);
void kv_batch_free(kv_batch *b);
void kv_batch_clear(kv_batch *b);
/* Appends n tokens of s (positions s->len .. s->len + n - 1), allocating pages from the
 * sequence's reservation (or the free pool), and advances s->len. 0 ok, -1 out of pages. */
int kv_batch_add(kv_cache *kv, kv_batch *b, kv_seq *s, const int32_t *tokens, int n);
/* Fills the block table [n_seq, max_pages]; call after the last kv_batch_add. */
void kv_batch_finish(kv_batch *b);

#endif
