/* workers/model/tok_bpe.c — byte-level BPE core (Llama-3 / tiktoken / GPT-2 family).
 *
 * Each pre-token piece starts as one symbol per byte; the adjacent pair with the lowest merge
 * rank is merged until no pair has a rank (ties: leftmost pair first — tiktoken's and HF's
 * rule). Candidate pairs sit in a binary heap ordered by (rank, left position) over a doubly
 * linked list of symbols (the heap, tok__heap_*, is defined here and also serves tok_spm.c);
 * stale heap entries are recognised when popped, so a piece of n bytes costs O(n log n)
 * instead of the O(n^2) rescans of the textbook loop. With ignore_merges (tiktoken, Llama-3
 * tokenizer.json) a piece that is itself a token is emitted directly, as the references do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

typedef struct {
    const tok *t;
    tok_ids *out;
    int32_t *id, *prev, *next;
    tok_heap heap;   /* key = -rank; a, b = ids of l and r when pushed (stale if either changed) */
    size_t cap;
} bpe_ws;

/* The candidate heap is shared with tok_spm.c: a max-heap on key, ties to the leftmost pair. */
static int cand_better(const tok_cand *x, const tok_cand *y) {
    return x->key > y->key || (x->key == y->key && x->l < y->l);
}

void tok__heap_push(tok_heap *h, tok_cand c) {
    if ((size_t)h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_better(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

tok_cand tok__heap_pop(tok_heap *h) {
    tok_cand top = h->v[0];
    tok_cand last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_better(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_better(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

static void try_pair(bpe_ws *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const tok_pair_slot *m = tok__pairs_get(&w->t->pairs, w->id[l], w->id[r]);
    if (!m) return;
    tok_cand c = {-(double)m->rank, l, r, w->id[l], w->id[r], m->merged};
    tok__heap_push(&w->heap, c);
}

static void bpe_piece(void *ctx, const char *p, size_t n) {
    bpe_ws *w = ctx;
    const tok *t = w->t;
    const unsigned char *s = (const unsigned char *)p;
    if (n == 1) {
        tok__ids_push(w->out, t->byte_id[s[0]]);
        return;
    }
    if (t->ignore_merges) {
        int32_t whole = tok__lookup(t, p, n);
        if (whole >= 0) {
            tok__ids_push(w->out, whole);
            return;
        }
    }
    if (n > w->cap) {
        w->cap = n;
        w->id = xrealloc(w->id, n * sizeof *w->id);
        w->prev = xrealloc(w->prev, n * sizeof *w->prev);
        w->next = xrealloc(w->next, n * sizeof *w->next);
    }
    int32_t m = (int32_t)n;
    for (int32_t i = 0; i < m; i++) {
        w->id[i] = t->byte_id[s[i]];
        w->prev[i] = i - 1;
        w->next[i] = i + 1 < m ? i + 1 : -1;
    }
    w->heap.n = 0;
    for (int32_t i = 0; i + 1 < m; i++) try_pair(w, i, i + 1);
    while (w->heap.n > 0) {
        tok_cand c = tok__heap_pop(&w->heap);
        if (w->id[c.l] != c.a || w->next[c.l] != c.r || w->id[c.r] != c.b) continue; /* stale */
        w->id[c.l] = c.merged;
        int32_t nx = w->next[c.r];
        w->next[c.l] = nx;
        if (nx >= 0) w->prev[nx] = c.l;
        w->id[c.r] = -1;
        w->next[c.r] = -1;
        try_pair(w, w->prev[c.l], c.l);
        try_pair(w, c.l, nx);
    }
    for (int32_t i = 0; i >= 0; i = w->next[i]) tok__ids_push(w->out, w->id[i]);
}

void tok__bpe_encode(const tok *t, const char *s, size_t n, tok_ids *out) {
    bpe_ws w = {.t = t, .out = out};
    tok__pretok_split(t, s, n, bpe_piece, &w);
    free(w.id);
    free(w.prev);
    free(w.next);
    free(w.heap.v);
}
