/* workers/model/tok_bpe.c — byte-level BPE core (Llama-3 / tiktoken / GPT-2 family).
 *
 * Each pre-token piece starts as one symbol per byte; the adjacent pair with the lowest merge
 * rank is merged until no pair has a rank (ties: leftmost pair first — tiktoken's and HF's
 * rule). Candidate pairs sit in a binary min-heap keyed by (rank, left position) over a
 * doubly linked list of symbols; stale heap entries are recognised when popped, so a piece of
 * n bytes costs O(n log n) instead of the O(n^2) rescans of the textbook loop. With
 * ignore_merges (tiktoken, Llama-3 tokenizer.json) a piece that is itself a token is emitted
 * directly, as the references do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

typedef struct {
    int32_t rank;
    int32_t l, r;   /* symbol indices (= byte offsets of their starts) */
    int32_t a, b;   /* ids of l and r when pushed: the entry is stale if either changed */
    int32_t merged;
} bpe_cand;

typedef struct {
    const tok *t;
    tok_ids *out;
    int32_t *id, *prev, *next;
    bpe_cand *heap;
    size_t cap, hcap;
    int hn;
} bpe_ws;

static int cand_less(const bpe_cand *x, const bpe_cand *y) {
    return x->rank < y->rank || (x->rank == y->rank && x->l < y->l);
}

static void heap_push(bpe_ws *w, bpe_cand c) {
    if ((size_t)w->hn == w->hcap) {
        w->hcap = w->hcap ? w->hcap * 2 : 64;
        w->heap = xrealloc(w->heap, w->hcap * sizeof *w->heap);
    }
    int i = w->hn++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
}

static bpe_cand heap_pop(bpe_ws *w) {
    bpe_cand top = w->heap[0];
    bpe_cand last = w->heap[--w->hn];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= w->hn) break;
        if (c + 1 < w->hn && cand_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!cand_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->hn > 0) w->heap[i] = last;
    return top;
}

static void try_pair(bpe_ws *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const tok_pair_slot *m = tok__pairs_get(&w->t->pairs, w->id[l], w->id[r]);
    if (!m) return;
    bpe_cand c = {m->rank, l, r, w->id[l], w->id[r], m->merged};
    heap_push(w, c);
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
    w->hn = 0;
    for (int32_t i = 0; i + 1 < m; i++) try_pair(w, i, i + 1);
    while (w->hn > 0) {
        bpe_cand c = heap_pop(w);
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
    free(w.heap);
}
