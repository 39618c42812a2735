/* workers/model/tok_spm.c — SentencePiece-style BPE (Llama-2 vocabularies: GGUF "llama" model,
 * SentencePiece tokenizer.model, HF byte_fallback tokenizer.json, llama2.c tokenizer.bin).
 *
 * The text run gets the dummy-prefix space (when asked), spaces become "▁" (llama2.c keeps
 * plain ' '), and it is cut into initial symbols:
 *   - GGUF / SentencePiece (llama.cpp's llm_tokenizer_spm): one symbol per UTF-8 character, its
 *     length taken from the lead byte and clamped to the text end; unknown characters stay
 *     symbols;
 *   - llama2.c (run.c's encode): a character that is not in the vocabulary becomes its bytes
 *     right away, as frozen <0xXX> symbols that never merge.
 *   - HF tokenizer.json with byte_fallback: characters as in llama.cpp, but an unknown one
 *     becomes frozen bytes right away (HF's merge_word).
 * Then the adjacent pair whose concatenation is a vocabulary token with the highest score is
 * merged (ties: leftmost) — or, when the vocabulary came with a merge table (tokenizer.json),
 * the listed pair with the lowest rank — through a heap with stale-entry checks (O(n log n)).
 * Finally a symbol that is not a token is emitted as <0xXX> byte tokens (or <unk> when the
 * vocabulary has no byte tokens).
 *
 * Invalid UTF-8 (which neither reference can be given from Python strings) is encoded so that
 * decode(encode(x)) == x: stray bytes become <0xXX> tokens, and a truncated sequence never
 * absorbs the following character (llama.cpp's splitter would swallow the next "▁").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

typedef struct {
    uint32_t start, len;
    int32_t prev, next;
    int32_t id;     /* token id of the symbol's text, -1 if it is not a token */
    int frozen;     /* byte fallback decided up front (llama2.c, HF): emitted as bytes, never merged */
} spm_sym;

typedef struct {
    const tok *t;
    const char *buf;
    spm_sym *sym;
    tok_heap heap;  /* key = score (or -rank); a = l.len + r.len when pushed: stale if it changed */
} spm_ws;

static void try_pair(spm_ws *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const spm_sym *a = &w->sym[l], *b = &w->sym[r];
    if (a->frozen || b->frozen) return;
    uint32_t len = a->len + b->len;
    if (w->t->pairs.slot) {
        /* HF tokenizer.json: only listed merges, the lowest rank first (score = -rank is exact
         * in a float for ranks below 2^24) */
        if (a->id < 0 || b->id < 0) return;
        const tok_pair_slot *m = tok__pairs_get(&w->t->pairs, a->id, b->id);
        if (!m) return;
        tok_cand c = {-(float)m->rank, l, r, (int32_t)len, 0, m->merged};
        tok__heap_push(&w->heap, c);
        return;
    }
    int32_t id = tok__lookup(w->t, w->buf + a->start, len);
    if (id < 0) return;
    tok_cand c = {w->t->score[id], l, r, (int32_t)len, 0, id};
    tok__heap_push(&w->heap, c);
}

static void emit_bytes(const tok *t, const unsigned char *p, size_t n, tok_ids *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0) id = t->unk;
        if (id >= 0) tok__ids_push(out, id);
    }
}

/* Encodes the normalised bytes u[0..m) (one segment) and appends the ids. prefix_sym: u[0] is
 * run.c's separately pushed dummy " " (llama2.c only). w->sym must hold m entries. */
static void spm_segment(spm_ws *w, const unsigned char *u, size_t m, int prefix_sym, tok_ids *out) {
    const tok *t = w->t;
    w->buf = (const char *)u;
    w->heap.n = 0;
    int32_t ns = 0;
    if (t->llama2c_split) {
        /* run.c: gather a character (lead byte + up to 3 continuation bytes), look it up */
        size_t i = 0;
        if (prefix_sym) {
            int32_t id = tok__lookup(t, u, 1);
            w->sym[ns] = (spm_sym){0, 1, -1, -1, id, id < 0};
            ns++;
            i = 1;
        }
        while (i < m) {
            size_t l = 1;
            while (i + l < m && (u[i + l] & 0xC0) == 0x80 && l < 4) l++;
            int32_t id = tok__lookup(t, u + i, l);
            if (id >= 0) {
                w->sym[ns] = (spm_sym){(uint32_t)i, (uint32_t)l, ns - 1, -1, id, 0};
                ns++;
            } else {
                for (size_t k = 0; k < l; k++) {
                    w->sym[ns] = (spm_sym){(uint32_t)(i + k), 1, ns - 1, -1, -1, 1};
                    ns++;
                }
            }
            i += l;
        }
    } else {
        /* llama.cpp: UTF-8 length from the lead byte, clamped to the end; and (our addition,
         * a no-op on valid UTF-8) clamped at the first byte that is not a continuation byte,
         * so a stray lead byte cannot swallow the "▁" of a space and break the round trip */
        static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
        size_t i = 0;
        while (i < m) {
            size_t l = lens[u[i] >> 4];
            if (l > m - i) l = m - i;
            for (size_t k = 1; k < l; k++)
                if ((u[i + k] & 0xC0) != 0x80) { l = k; break; }
            /* HF (merge table) turns an unknown character into byte tokens up front */
            int32_t id = tok__lookup(t, u + i, l);
            w->sym[ns] = (spm_sym){(uint32_t)i, (uint32_t)l, ns - 1, -1, id, id < 0 && t->pairs.slot != NULL};
            ns++;
            i += l;
        }
    }
    for (int32_t k = 0; k + 1 < ns; k++) w->sym[k].next = k + 1;

    for (int32_t k = 0; k + 1 < ns; k++) try_pair(w, k, k + 1);
    while (w->heap.n > 0) {
        tok_cand c = tok__heap_pop(&w->heap);
        spm_sym *a = &w->sym[c.l], *b = &w->sym[c.r];
        if (a->len == 0 || b->len == 0 || a->next != c.r || a->len + b->len != (uint32_t)c.a) continue; /* stale */
        a->len += b->len;
        a->id = c.merged;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = c.l;
        b->len = 0;
        b->next = -1;
        try_pair(w, a->prev, c.l);
        try_pair(w, c.l, a->next);
    }
    for (int32_t k = 0; k >= 0 && k < ns; k = w->sym[k].next) {
        const spm_sym *y = &w->sym[k];
        if (y->id >= 0) tok__ids_push(out, y->id);
        else emit_bytes(t, u + y->start, y->len, out);
    }
}

void tok__spm_encode(const tok *t, const char *s, size_t n, int prefix_space, tok_ids *out) {
    static const char U2581[3] = {(char)0xE2, (char)0x96, (char)0x81};
    /* normalised text */
    util_buf nb;
    util_buf_init(&nb);
    if (prefix_space) {
        if (t->space_u2581) util_buf_append(&nb, U2581, 3);
        else util_buf_append(&nb, " ", 1);
    }
    if (t->space_u2581) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == ' ') {
                if (i > k) util_buf_append(&nb, s + k, i - k);
                util_buf_append(&nb, U2581, 3);
                k = i + 1;
            }
        }
        if (n > k) util_buf_append(&nb, s + k, n - k);
    } else if (n) {
        util_buf_append(&nb, s, n);
    }
    const unsigned char *u = (const unsigned char *)nb.data;
    size_t m = nb.len;
    if (m == 0) {
        util_buf_free(&nb);
        return;
    }
    spm_ws w = {.t = t};
    w.sym = xmalloc(m * sizeof *w.sym);
    if (!t->spm_word_split) {
        spm_segment(&w, u, m, prefix_space && t->llama2c_split, out);
    } else {
        /* Exact shortcut (tok__finish checked the vocabulary): no token has a space marker
         * right after another character, so no merge crosses the start of a space run and
         * each "▁word" segment can be merged on its own — small heaps, cache-friendly. */
        const unsigned char *mk = t->space_u2581 ? (const unsigned char *)U2581 : (const unsigned char *)" ";
        size_t ml = t->space_u2581 ? 3 : 1, start = 0;
        for (size_t i = 1; i <= m; i++) {
            int cut = i == m;
            if (!cut && i + ml <= m && memcmp(u + i, mk, ml) == 0 && !(i >= ml && memcmp(u + i - ml, mk, ml) == 0))
                cut = 1;
            if (!cut) continue;
            spm_segment(&w, u + start, i - start, start == 0 && prefix_space && t->llama2c_split, out);
            start = i;
        }
    }
    free(w.sym);
    free(w.heap.v);
    util_buf_free(&nb);
}
