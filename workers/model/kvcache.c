/* workers/model/kvcache.c — paged KV cache, Mamba state slots, sequences and step batches
 * (see kvcache.h). Page and slot bookkeeping is host-side; only the tensors live in backend
 * memory.
 */
#include "workers/model/kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/util.h"

struct kv_cache {
    op_backend *be;
    model_config cfg;
    int page_size, n_pages, n_slots;
    int n_attn, n_mamba;
    void **k, **v;            /* [n_attn] */
    float **conv, **ssm;      /* [n_mamba]: [n_slots, conv_dim, K-1], [n_slots, H, P, N] */
    size_t page_elems;        /* page_size * Hkv * hd */
    int *refcnt;              /* [n_pages] */
    int32_t *free_pages;      /* stack */
    int n_free, n_reserved;
    int32_t *free_slots;
    int n_free_slots;
};

size_t kv_page_bytes(op_backend *be, const model_config *c, int page_size) {
    return (size_t)2 * c->n_attn_layers * page_size * c->n_kv_heads * c->head_dim * be->act_bytes;
}
size_t kv_slot_bytes(const model_config *c) {
    int n_m = c->n_layers - c->n_attn_layers;
    size_t per = (size_t)c->m_conv_dim * (c->m_d_conv - 1) + (size_t)c->m_heads * c->m_head_dim * c->m_d_state;
    return n_m * per * sizeof(float);
}

void kv_cache_destroy(kv_cache **pkv) {
    if (!pkv || !*pkv) return;
    kv_cache *kv = *pkv;
    for (int i = 0; i < kv->n_attn; i++) {
        if (kv->k) kv->be->free(kv->be, kv->k[i]);
        if (kv->v) kv->be->free(kv->be, kv->v[i]);
    }
    for (int i = 0; i < kv->n_mamba; i++) {
        if (kv->conv) kv->be->free(kv->be, kv->conv[i]);
        if (kv->ssm) kv->be->free(kv->be, kv->ssm[i]);
    }
    free(kv->k); free(kv->v); free(kv->ssm); free(kv->conv);
    free(kv->refcnt); free(kv->free_pages); free(kv->free_slots);
    free(kv);
    *pkv = NULL;
}

int kv_cache_new(op_backend *be, const model_config *c, int page_size, int n_pages, int n_slots,
                 kv_cache **out, char *err, size_t errlen) {
    *out = NULL;
    if (page_size <= 0) return util_err(err, errlen, "kv cache: page size %d must be positive", page_size);
    kv_cache *kv = xcalloc(1, sizeof *kv);
    kv->be = be;
    kv->cfg = *c;
    kv->page_size = page_size;
    kv->n_attn = c->n_attn_layers;
    kv->n_mamba = c->n_layers - c->n_attn_layers;
    kv->n_pages = kv->n_attn > 0 ? n_pages : 0;
    kv->n_slots = kv->n_mamba > 0 ? n_slots : 0;
    kv->page_elems = (size_t)page_size * c->n_kv_heads * c->head_dim;
    size_t page_bytes = kv->page_elems * be->act_bytes;
    if (kv->n_attn) {
        kv->k = xcalloc(kv->n_attn, sizeof(void *));
        kv->v = xcalloc(kv->n_attn, sizeof(void *));
        for (int i = 0; i < kv->n_attn; i++) {
            kv->k[i] = be->alloc(be, page_bytes * kv->n_pages);
            kv->v[i] = be->alloc(be, page_bytes * kv->n_pages);
            if (!kv->k[i] || !kv->v[i]) {
                kv_cache_destroy(&kv);
                return util_err(err, errlen, "kv cache: out of %s memory for %d pages (%zu bytes)",
                                be->name, n_pages, kv_page_bytes(be, c, page_size) * (size_t)n_pages);
            }
        }
    }
    if (kv->n_mamba) {
        kv->ssm = xcalloc(kv->n_mamba, sizeof(float *));
        kv->conv = xcalloc(kv->n_mamba, sizeof(float *));
        size_t ssm_b = (size_t)kv->n_slots * c->m_heads * c->m_head_dim * c->m_d_state * sizeof(float);
        size_t conv_b = (size_t)kv->n_slots * c->m_conv_dim * (c->m_d_conv - 1) * sizeof(float);
        for (int i = 0; i < kv->n_mamba; i++) {
            kv->conv[i] = be->alloc(be, conv_b ? conv_b : 4);
            kv->ssm[i] = be->alloc(be, ssm_b);
            if (!kv->conv[i] || !kv->ssm[i]) {
                kv_cache_destroy(&kv);
                return util_err(err, errlen, "kv cache: out of %s memory for %d state slots (%zu bytes)",
                                be->name, n_slots, kv_slot_bytes(c) * (size_t)n_slots);
            }
        }
    }
    kv->refcnt = xcalloc(kv->n_pages ? kv->n_pages : 1, sizeof(int));
    kv->free_pages = xmalloc(sizeof(int32_t) * (kv->n_pages ? kv->n_pages : 1));
    for (int i = 0; i < kv->n_pages; i++) kv->free_pages[i] = kv->n_pages - 1 - i;
    kv->n_free = kv->n_pages;
    kv->free_slots = xmalloc(sizeof(int32_t) * (kv->n_slots ? kv->n_slots : 1));
    for (int i = 0; i < kv->n_slots; i++) kv->free_slots[i] = kv->n_slots - 1 - i;
    kv->n_free_slots = kv->n_slots;
    *out = kv;
    return 0;
}

int kv_page_size(const kv_cache *kv) { return kv->page_size; }
int kv_n_pages(const kv_cache *kv) { return kv->n_pages; }
int kv_pages_available(const kv_cache *kv) { return kv->n_free - kv->n_reserved; }
int kv_slots_available(const kv_cache *kv) { return kv->n_mamba ? kv->n_free_slots : 1 << 30; }
void *kv_k(kv_cache *kv, int i) { return kv->k[i]; }
void *kv_v(kv_cache *kv, int i) { return kv->v[i]; }
float *kv_conv(kv_cache *kv, int i) { return kv->conv[i]; }
float *kv_ssm(kv_cache *kv, int i) { return kv->ssm[i]; }

static void slot_clear(kv_cache *kv, int slot) {
    const model_config *c = &kv->cfg;
    size_t ssm_n = (size_t)c->m_heads * c->m_head_dim * c->m_d_state;
    for (int i = 0; i < kv->n_mamba; i++) {
        size_t n = (size_t)c->m_conv_dim * (c->m_d_conv - 1);
        kv->be->memset0(kv->be, kv->conv[i] + (size_t)slot * n, n * sizeof(float));
        kv->be->memset0(kv->be, kv->ssm[i] + (size_t)slot * ssm_n, ssm_n * sizeof(float));
    }
}
static void slot_copy(kv_cache *kv, int dst, int src) {
    const model_config *c = &kv->cfg;
    size_t ssm_n = (size_t)c->m_heads * c->m_head_dim * c->m_d_state;
    for (int i = 0; i < kv->n_mamba; i++) {
        size_t n = (size_t)c->m_conv_dim * (c->m_d_conv - 1);
        kv->be->copy(kv->be, kv->conv[i] + (size_t)dst * n, kv->conv[i] + (size_t)src * n, n * sizeof(float));
        kv->be->copy(kv->be, kv->ssm[i] + (size_t)dst * ssm_n, kv->ssm[i] + (size_t)src * ssm_n, ssm_n * sizeof(float));
    }
}

int kv_seq_init(kv_cache *kv, kv_seq *s) {
    memset(s, 0, sizeof *s);
    s->slot = -1;
    if (kv->n_mamba) {
        if (kv->n_free_slots == 0) return -1;
        s->slot = kv->free_slots[--kv->n_free_slots];
        slot_clear(kv, s->slot);
    }
    return 0;
}

static int pages_for(const kv_cache *kv, int len) { return (len + kv->page_size - 1) / kv->page_size; }

int kv_seq_reserve(kv_cache *kv, kv_seq *s, int max_len) {
    if (!kv->n_attn) return 0;
    int need = pages_for(kv, max_len) - s->n_pages - s->reserved;
    if (need <= 0) return 0;
    if (kv_pages_available(kv) < need) return -1;
    s->reserved += need;
    kv->n_reserved += need;
    return 0;
}

int kv_fork_pages_needed(const kv_cache *kv, int len, int max_len) {
    if (!kv->n_attn) return 0;
    return pages_for(kv, max_len) - len / kv->page_size;
}

static int page_take(kv_cache *kv, kv_seq *s) {
    int32_t p;
    if (s->reserved > 0) { s->reserved--; kv->n_reserved--; }
    else if (kv->n_free - kv->n_reserved <= 0) return -1;
    CHECK(kv->n_free > 0, "kv cache: reserved pages not free");
    p = kv->free_pages[--kv->n_free];
    kv->refcnt[p] = 1;
    if (s->n_pages == s->cap_pages) {
        s->cap_pages = s->cap_pages ? 2 * s->cap_pages : 16;
        s->pages = xrealloc(s->pages, sizeof(int32_t) * s->cap_pages);
    }
    s->pages[s->n_pages++] = p;
    return p;
}

int kv_seq_fork(kv_cache *kv, const kv_seq *src, kv_seq *dst, int max_len) {
    memset(dst, 0, sizeof *dst);
    dst->slot = -1;
    if (kv->n_mamba && kv->n_free_slots == 0) return -1;
    if (kv->n_attn && kv_pages_available(kv) < kv_fork_pages_needed(kv, src->len, max_len)) return -1;
    if (kv->n_mamba) {
        dst->slot = kv->free_slots[--kv->n_free_slots];
        slot_copy(kv, dst->slot, src->slot);
    }
    dst->len = src->len;
    if (kv->n_attn) {
        int full = src->len / kv->page_size;
        dst->cap_pages = pages_for(kv, max_len) + 1;
        dst->pages = xmalloc(sizeof(int32_t) * dst->cap_pages);
        for (int i = 0; i < full; i++) {
            dst->pages[i] = src->pages[i];
            kv->refcnt[src->pages[i]]++;
        }
        dst->n_pages = full;
        CHECK(kv_seq_reserve(kv, dst, max_len) == 0, "kv fork: reservation failed after check");
        if (src->len % kv->page_size) {
            int p = page_take(kv, dst), q = src->pages[full];
            size_t nb = kv->page_elems * kv->be->act_bytes;
            for (int i = 0; i < kv->n_attn; i++) {
                kv->be->copy(kv->be, (char *)kv->k[i] + (size_t)p * nb, (char *)kv->k[i] + (size_t)q * nb, nb);
                kv->be->copy(kv->be, (char *)kv->v[i] + (size_t)p * nb, (char *)kv->v[i] + (size_t)q * nb, nb);
            }
        }
    }
    return 0;
}

void kv_seq_release(kv_cache *kv, kv_seq *s) {
    for (int i = 0; i < s->n_pages; i++) {
        int p = s->pages[i];
        if (--kv->refcnt[p] == 0) kv->free_pages[kv->n_free++] = p;
    }
    kv->n_reserved -= s->reserved;
    if (s->slot >= 0) kv->free_slots[kv->n_free_slots++] = s->slot;
    free(s->pages);
    memset(s, 0, sizeof *s);
    s->slot = -1;
}

void kv_batch_init(kv_batch *b) { memset(b, 0, sizeof *b); }
void kv_batch_free(kv_batch *b) {
    free(b->tokens); free(b->pos); free(b->cu_seqlens); free(b->slots); free(b->block_table);
    free(b->slot_mapping); free(b->seqs);
    memset(b, 0, sizeof *b);
}
void kv_batch_clear(kv_batch *b) {
    b->n_seq = 0;
    b->T = 0;
    b->max_pages = 0;
    if (!b->cu_seqlens) { b->cap_seq = 16; b->cu_seqlens = xmalloc(sizeof(int32_t) * 17);
        b->slots = xmalloc(sizeof(int32_t) * 16); b->seqs = xmalloc(sizeof(kv_seq *) * 16); }
    b->cu_seqlens[0] = 0;
}

int kv_batch_add(kv_cache *kv, kv_batch *b, kv_seq *s, const int32_t *tokens, int n) {
    if (!b->cu_seqlens) kv_batch_clear(b);
    if (b->T + n > b->cap_T) {
        b->cap_T = (b->T + n) * 2;
        b->tokens = xrealloc(b->tokens, sizeof(int32_t) * b->cap_T);
        b->pos = xrealloc(b->pos, sizeof(int32_t) * b->cap_T);
        b->slot_mapping = xrealloc(b->slot_mapping, sizeof(int32_t) * b->cap_T);
    }
    if (b->n_seq + 1 > b->cap_seq) {
        b->cap_seq *= 2;
        b->cu_seqlens = xrealloc(b->cu_seqlens, sizeof(int32_t) * (b->cap_seq + 1));
        b->slots = xrealloc(b->slots, sizeof(int32_t) * b->cap_seq);
        b->seqs = xrealloc(b->seqs, sizeof(kv_seq *) * b->cap_seq);
    }
    if (kv->n_attn) {
        int need = pages_for(kv, s->len + n);
        while (s->n_pages < need)
            if (page_take(kv, s) < 0) return -1;
    }
    for (int i = 0; i < n; i++) {
        int p = s->len + i;
        b->tokens[b->T + i] = tokens[i];
        b->pos[b->T + i] = p;
        b->slot_mapping[b->T + i] = kv->n_attn ? s->pages[p / kv->page_size] * kv->page_size + p % kv->page_size : 0;
    }
    b->T += n;
    b->slots[b->n_seq] = s->slot >= 0 ? s->slot : 0;
    b->seqs[b->n_seq] = s;
    b->n_seq++;
    b->cu_seqlens[b->n_seq] = b->T;
    s->len += n;
    return 0;
}

void kv_batch_finish(kv_batch *b) {
    int mp = 1;
    for (int i = 0; i < b->n_seq; i++) if (b->seqs[i]->n_pages > mp) mp = b->seqs[i]->n_pages;
    b->max_pages = mp;
    if ((size_t)b->n_seq * mp > (size_t)b->cap_bt) {
        b->cap_bt = b->n_seq * mp * 2;
        b->block_table = xrealloc(b->block_table, sizeof(int32_t) * b->cap_bt);
    }
    for (int i = 0; i < b->n_seq; i++) {
        const kv_seq *s = b->seqs[i];
        int32_t *row = b->block_table + (size_t)i * mp;
        for (int j = 0; j < mp; j++) row[j] = j < s->n_pages ? s->pages[j] : 0;
    }
}
