/* workers/model/tok_internal.h — the tokenizer's private layout, shared by the tok_*.c files.
 *
 * Not a public header: only tok_*.c include it. A `tok` holds, per id, the vocabulary string
 * (`text`: what merges and lookups compare — raw bytes for byte-level BPE, the stored string with
 * "▁" for GGUF SPM) and the bytes decode prints (`disp`). Two open-addressing hash tables index
 * it: string -> id over the mergeable tokens, and (left id, right id) -> (rank, merged id) for
 * byte-level BPE. Loaders fill the tables through the tok__* builders below, then call
 * tok__finish(), which builds the indexes and checks the invariants the encoders rely on.
 */
#ifndef THINKFAST_TOK_INTERNAL_H
#define THINKFAST_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "workers/model/tokenizer.h"

/* Token types (GGUF numbering, so GGUF token_type values map directly). */
enum {
    TOK_T_NORMAL = 1,
    TOK_T_UNKNOWN = 2,
    TOK_T_CONTROL = 3,   /* BOS/EOS/<|...|> specials */
    TOK_T_USER = 4,      /* user-defined / added non-special token */
    TOK_T_UNUSED = 5,
    TOK_T_BYTE = 6,      /* <0xXX> byte-fallback token (SPM) */
};

/* Source formats (for descriptions and format-specific rules). */
typedef enum {
    TOK_FMT_TIKTOKEN = 1,
    TOK_FMT_HFJSON,
    TOK_FMT_GGUF_BPE,
    TOK_FMT_LLAMA2C,
    TOK_FMT_GGUF_SPM,
    TOK_FMT_SPMPROTO,
} tok_fmt;

/* string -> id map (open addressing, linear probing; slots hold id+1, 0 = empty). */
typedef struct {
    uint32_t *slot;
    uint32_t mask;
} tok_strmap;

/* (a, b) -> (rank, merged) map for byte-level BPE merges. */
typedef struct {
    uint64_t key;    /* ((uint64_t)a << 32 | b) + 1; 0 = empty */
    int32_t rank;
    int32_t merged;
} tok_pair_slot;
typedef struct {
    tok_pair_slot *slot;
    uint32_t mask;
    uint32_t count;
} tok_pairmap;

struct tok {
    tok_kind kind;
    tok_fmt fmt;
    int n_vocab;
    /* per-id strings, stored in one blob: text (lookup form) and disp (decode form) */
    char *blob;
    size_t blob_len, blob_cap;
    uint32_t *text_off, *text_len;
    uint32_t *disp_off, *disp_len;
    float *score;       /* SPM merge scores (NULL for byte-level BPE) */
    uint8_t *type;      /* TOK_T_* per id */
    int32_t bos, eos, unk;
    int32_t eos_ids[8];
    int n_eos;
    /* text -> id over tokens the encoder may produce from plain text */
    tok_strmap map;
    /* byte-level BPE */
    tok_pairmap pairs;
    int32_t byte_id[256];    /* id of the single-byte token (BPE) or <0xXX> (SPM); -1 absent */
    int ignore_merges;       /* a whole pre-token found in the vocab is emitted as is */
    void *re;                /* pcre2_code * (pre-tokenizer split) */
    int re_jit;
    /* SPM */
    int add_space_prefix;    /* prepend the dummy "▁"/" " to the input's first text run and each run after a special */
    int spm_prefix_first_only; /* ...but only to a run at offset 0 (HF Metaspace prepend_scheme "first") */
    int space_u2581;         /* spaces are stored as U+2581 (GGUF); else plain ' ' (llama2.c) */
    int llama2c_split;       /* initial symbols as run.c makes them (else as llama.cpp does) */
    int spm_word_split;      /* exact speed-up: no token has a space marker after another char */
    int strip_space_at_start;/* decode drops the dummy space at the start and after specials (GGUF, SentencePiece) */
    /* specials recognised when parse_special is set, longest first */
    int32_t *special_ids;    /* sorted by (first byte, length descending) */
    int n_special;
    uint32_t spec_start[257];/* specials starting with byte c: special_ids[spec_start[c]..spec_start[c+1]) */
    char desc[160];
};

/* ---- building (tok_load.c) ---- */
tok *tok__new(tok_kind kind, tok_fmt fmt, int n_vocab);
/* Stores id's lookup string and display bytes (disp NULL = same as text). */
void tok__set(tok *t, int32_t id, const char *text, size_t text_len, const char *disp, size_t disp_len,
              uint8_t type, float score);
/* Builds the string map over ids of the given types, the byte table, the specials list; checks
 * invariants. Returns 0, or TOK_ERR_FORMAT with err set (prefix with the path by the caller). */
int tok__finish(tok *t, char *err, size_t errlen);
uint64_t tok__hash(const void *p, size_t n);
/* -1 if absent. */
int32_t tok__lookup(const tok *t, const void *s, size_t n);
/* Pair map (byte-level BPE). */
void tok__pairs_init(tok_pairmap *m, uint32_t expected);
void tok__pairs_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
const tok_pair_slot *tok__pairs_get(const tok_pairmap *m, int32_t a, int32_t b);
void tok__pairs_free(tok_pairmap *m);
/* tiktoken-style merges (tok_tiktoken.c): for ids < n_base of type NORMAL, every split of the
 * token into two tokens (a, b) merges with rank = the token's id. Needs the string map. */
void tok__pairs_from_vocab(tok *t, int n_base);
/* "<0xXX>" (6 bytes, as sscanf's %2x reads XX) -> the byte value 0..255, else -1. */
int tok__byte_token(const char *s, size_t n);
/* SentencePiece piece -> display bytes: each "▁" becomes ' '. Replaces out's contents (out->data
 * is never NULL afterwards). */
void tok__u2581_to_space(const char *s, size_t n, util_buf *out);
static inline const char *tok__text(const tok *t, int32_t id, size_t *n) {
    *n = t->text_len[id];
    return t->blob + t->text_off[id];
}

/* ---- byte-level helpers (tok_hfjson.c) ---- */
/* GPT-2 bytes_to_unicode inverse: appends the raw bytes of a byte-level string to out;
 * -1 if s has a character outside the 256-character alphabet (or invalid UTF-8). */
int tok__bytelevel_decode(const char *s, size_t n, util_buf *out);
/* Adds merge "A B" (byte-level strings) with the given rank; the merged token must exist.
 * 0, or TOK_ERR_FORMAT with err "what: why". */
int tok__add_merge_str(tok *t, const char *s, size_t n, int32_t rank, char *err, size_t errlen, const char *what);
/* Adds merge (A, B) given as two separate byte-level strings. */
int tok__add_merge_pair(tok *t, const char *a, size_t an, const char *b, size_t bn, int32_t rank, char *err,
                        size_t errlen, const char *what);

/* ---- format loaders (one file each); each returns 0 or TOK_ERR_* with err "what: why" ---- */
int tok__load_tiktoken(const char *data, size_t len, tok **out, char *err, size_t errlen);
int tok__load_hfjson(const char *data, size_t len, tok **out, char *err, size_t errlen);
int tok__load_llama2c(const char *data, size_t len, tok **out, char *err, size_t errlen);
int tok__load_gguf(const char *data, size_t len, tok **out, char *err, size_t errlen);
int tok__load_spmproto(const char *data, size_t len, tok **out, char *err, size_t errlen);
/* 1 if data looks like a SentencePiece ModelProto (tok_spmproto.c). */
int tok__is_spmproto(const char *data, size_t len);

/* ---- pre-tokenizer (tok_pretok.c) ---- */
extern const char TOK_RE_LLAMA3[];
extern const char TOK_RE_GPT2[];
/* Compiles pattern into t->re (UTF + UCP, JIT when available). */
int tok__pretok_compile(tok *t, const char *pattern, char *err, size_t errlen);
void tok__pretok_free(tok *t);
/* Splits s[0..n) into pieces; calls fn(ctx, piece_start, piece_len) for each, in order, covering
 * every byte exactly once. Bytes that are not valid UTF-8 form their own pieces (maximal runs). */
typedef void (*tok_piece_fn)(void *ctx, const char *p, size_t n);
int tok__pretok_split(const tok *t, const char *s, size_t n, tok_piece_fn fn, void *ctx);

/* ---- encoders (tok_bpe.c, tok_spm.c): append ids to a growable array ---- */
typedef struct {
    int32_t *ids;
    int n, cap;
} tok_ids;
void tok__ids_push(tok_ids *v, int32_t id);
/* Merge candidates (tok_bpe.c), shared by both encoders: a binary max-heap on key, ties to the
 * smaller l (leftmost pair). a, b: whatever the encoder needs to recognise a stale entry when
 * it is popped. Zero-initialise a tok_heap; free(h.v) when done. */
typedef struct {
    double key;     /* exact for int32 ranks and float scores */
    int32_t l, r;   /* symbol indices of the pair */
    int32_t a, b;
    int32_t merged; /* token id of the merged pair */
} tok_cand;
typedef struct {
    tok_cand *v;
    int n;
    size_t cap;
} tok_heap;
void tok__heap_push(tok_heap *h, tok_cand c);
/* Removes and returns the best candidate; h->n must be > 0. */
tok_cand tok__heap_pop(tok_heap *h);
/* Byte-level BPE of one text run (no specials inside). */
void tok__bpe_encode(const tok *t, const char *s, size_t n, tok_ids *out);
/* SPM BPE of one text run; prefix_space: add the dummy space first. */
void tok__spm_encode(const tok *t, const char *s, size_t n, int prefix_space, tok_ids *out);

#endif
