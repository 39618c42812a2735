/* workers/model/tok_tiktoken.c — loader for tiktoken BPE files (Llama-3 `tokenizer.model`).
 *
 * Format: one line per token, "BASE64(token bytes) SP rank", ranks 0..N-1 each once; the rank
 * is both the id and the merge priority (merging a+b has the rank of the token a+b). The file
 * has no special tokens: for the Llama-3 vocabulary (N = 128000) the 256 specials of
 * meta-llama/llama-models models/llama3/tokenizer.py are appended (ids 128000..128255), with the
 * Llama-3 split regex. Other N get the same regex and no specials.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

#define LLAMA3_N_BASE 128000
#define LLAMA3_N_SPECIAL 256

static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Strict base64 (with '=' padding). Returns decoded length, or -1. out must hold n*3/4 bytes. */
static long b64_decode(const char *s, size_t n, unsigned char *out) {
    if (n == 0 || n % 4) return -1;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; continue; }
            if (pad) return -1; /* data after '=' */
            v[k] = b64_val(c);
            if (v[k] < 0) return -1;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (unsigned char)(x >> 16);
        if (pad < 2) out[o++] = (unsigned char)(x >> 8);
        if (pad < 1) out[o++] = (unsigned char)x;
    }
    return o;
}

static void llama3_special_name(int k, char *buf, size_t n) {
    static const char *fixed[12] = {
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>",
    };
    if (k < 12) snprintf(buf, n, "%s", fixed[k]);
    else snprintf(buf, n, "<|reserved_special_token_%d|>", k - 12 + 2);
}

void tok__pairs_from_vocab(tok *t, int n_base) {
    tok__pairs_init(&t->pairs, (uint32_t)n_base * 4);
    for (int32_t id = 0; id < n_base; id++) {
        size_t n;
        const char *s = tok__text(t, id, &n);
        if (t->type[id] != TOK_T_NORMAL || n < 2) continue;
        for (size_t k = 1; k < n; k++) {
            int32_t a = tok__lookup(t, s, k);
            if (a < 0) continue;
            int32_t b = tok__lookup(t, s + k, n - k);
            if (b < 0) continue;
            tok__pairs_put(&t->pairs, a, b, id, id);
        }
    }
}

int tok__load_tiktoken(const char *data, size_t len, tok **out, char *err, size_t errlen) {
    *out = NULL;
    /* pass 1: count lines */
    int n = 0;
    for (size_t i = 0; i < len;) {
        const char *e = memchr(data + i, '\n', len - i);
        size_t l = e ? (size_t)(e - (data + i)) : len - i;
        size_t k = 0;
        while (k < l && (data[i + k] == ' ' || data[i + k] == '\r')) k++;
        if (k < l) n++;
        i += l + 1;
    }
    if (n == 0) return util_err(err, errlen, "no tokens (expected lines \"BASE64 RANK\")"), TOK_ERR_FORMAT;
    if (n > (1 << 24)) return util_err(err, errlen, "%d lines: too many tokens", n), TOK_ERR_FORMAT;
    int llama3 = n == LLAMA3_N_BASE;
    int n_vocab = n + (llama3 ? LLAMA3_N_SPECIAL : 0);
    tok *t = tok__new(TOK_KIND_BYTE_BPE, TOK_FMT_TIKTOKEN, n_vocab);
    unsigned char *buf = NULL;
    size_t bufcap = 0;
    int line = 0, rc = TOK_ERR_FORMAT;
    for (size_t i = 0; i < len;) {
        const char *e = memchr(data + i, '\n', len - i);
        size_t l = e ? (size_t)(e - (data + i)) : len - i;
        const char *p = data + i;
        i += l + 1;
        line++;
        while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == ' ')) l--;
        if (l == 0) continue;
        const char *sp = memchr(p, ' ', l);
        if (!sp) { util_err(err, errlen, "line %d: expected \"BASE64 RANK\"", line); goto fail; }
        size_t bl = (size_t)(sp - p);
        const char *r = sp + 1;
        size_t rl = l - bl - 1;
        long rank = 0;
        if (rl == 0 || rl > 9) { util_err(err, errlen, "line %d: bad rank", line); goto fail; }
        for (size_t k = 0; k < rl; k++) {
            if (r[k] < '0' || r[k] > '9') { util_err(err, errlen, "line %d: rank is not a number", line); goto fail; }
            rank = rank * 10 + (r[k] - '0');
        }
        if (rank >= n) { util_err(err, errlen, "line %d: rank %ld outside 0..%d", line, rank, n - 1); goto fail; }
        if (t->type[rank]) { util_err(err, errlen, "line %d: rank %ld appears twice", line, rank); goto fail; }
        if (bl / 4 * 3 + 3 > bufcap) {
            bufcap = bl / 4 * 3 + 3;
            buf = xrealloc(buf, bufcap);
        }
        long bn = b64_decode(p, bl, buf);
        if (bn <= 0) { util_err(err, errlen, "line %d: invalid base64 token", line); goto fail; }
        tok__set(t, (int32_t)rank, (const char *)buf, (size_t)bn, NULL, 0, TOK_T_NORMAL, 0.0f);
    }
    if (llama3) {
        char name[64];
        for (int k = 0; k < LLAMA3_N_SPECIAL; k++) {
            llama3_special_name(k, name, sizeof name);
            tok__set(t, LLAMA3_N_BASE + k, name, strlen(name), NULL, 0, TOK_T_CONTROL, 0.0f);
        }
        t->bos = LLAMA3_N_BASE + 0;
        t->eos = LLAMA3_N_BASE + 1;
        t->eos_ids[0] = LLAMA3_N_BASE + 1; /* <|end_of_text|> */
        t->eos_ids[1] = LLAMA3_N_BASE + 9; /* <|eot_id|> */
        t->eos_ids[2] = LLAMA3_N_BASE + 8; /* <|eom_id|> */
        t->n_eos = 3;
    }
    if ((rc = tok__finish(t, err, errlen)) != 0) goto fail;
    tok__pairs_from_vocab(t, n);
    t->ignore_merges = 1;
    if ((rc = tok__pretok_compile(t, TOK_RE_LLAMA3, err, errlen)) != 0) goto fail;
    snprintf(t->desc, sizeof t->desc, "tiktoken byte-level BPE, %d ids (%d ranks%s)", n_vocab, n,
             llama3 ? " + 256 Llama-3 specials" : ", no specials");
    free(buf);
    *out = t;
    return 0;
fail:
    free(buf);
    tok_destroy(&t);
    return rc ? rc : TOK_ERR_FORMAT;
}
