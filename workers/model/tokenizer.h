/* workers/model/tokenizer.h — text <-> token ids for every model family the engine runs.
 *
 * One opaque handle `tok` covers two algorithms:
 *   - byte-level BPE (Llama-3): tiktoken `tokenizer.model` (base64 token + rank per line; the
 *     Llama-3 specials 128000..128255 are added), HF `tokenizer.json` (model.type BPE with a
 *     ByteLevel pre-tokenizer), GGUF with tokenizer.ggml.model = "gpt2". Text is split by the
 *     Llama-3 pre-tokenizer regex (PCRE2, Unicode classes), then each piece is merged by lowest
 *     merge rank. Any byte string round-trips exactly, invalid UTF-8 included.
 *   - SentencePiece-style BPE (Llama-2 / llama2.c): llama2.c `tokenizer.bin` (plain spaces),
 *     GGUF with tokenizer.ggml.model = "llama", SentencePiece `tokenizer.model` protobufs of BPE
 *     type, and HF `tokenizer.json` SentencePiece conversions (byte_fallback; spaces stored as
 *     U+2581). A dummy-prefix space is prepended, pieces merge by highest score (or, for
 *     tokenizer.json, by merge rank), and unknown characters fall back to <0xXX> bytes.
 *
 * Files: tok_load.c (format detection, shared tables), tok_bpe.c (byte-level BPE core),
 * tok_spm.c (score-greedy BPE core), tok_pretok.c (regex split), one loader per format
 * (tok_tiktoken.c, tok_hfjson.c, tok_llama2c.c, tok_gguf.c, tok_spmproto.c).
 *
 * Thread safety: a loaded `tok` is immutable; every function below taking `const tok *` may be
 * called from many threads at once. Nothing here reads ../shared/data at run time.
 */
#ifndef THINKFAST_TOKENIZER_H
#define THINKFAST_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

typedef struct tok tok;

/* Return codes (0 = ok). tok_strerror() names them. */
enum {
    TOK_OK = 0,
    TOK_ERR_IO = -1,      /* file missing / unreadable */
    TOK_ERR_FORMAT = -2,  /* file read but malformed or of an unsupported kind */
    TOK_ERR_ARG = -3,     /* NULL handle, negative length, ... */
    TOK_ERR_RANGE = -4,   /* token id outside [0, vocab size) */
};
const char *tok_strerror(int rc);

/* The algorithm family of a loaded tokenizer. */
typedef enum { TOK_KIND_BYTE_BPE = 1, TOK_KIND_SPM = 2 } tok_kind;

/* Loads a tokenizer. `path` is a file (format detected from its content: GGUF magic, JSON
 * object, SentencePiece protobuf, tiktoken lines, llama2.c binary layout) or a directory, where
 * tokenizer.json, then tokenizer.model, then tokenizer.bin is used (a file of a kind this code
 * refuses, e.g. a byte_fallback tokenizer.json, passes on to the next one). On success *out
 * owns a new tok (free with tok_destroy) and 0 is returned; on failure *out = NULL, a
 * TOK_ERR_* code is returned and err gets "PATH: what was wrong (line/field)". Unsupported
 * kinds (Unigram/WordPiece models, HF normalizers such as NFC) are refused, never guessed. */
int tok_load(const char *path, tok **out, char *err, size_t errlen);

/* Frees *t and sets *t = NULL; tolerates NULL and *t == NULL. */
void tok_destroy(tok **t);

/* Encodes len bytes of text (need not be NUL-terminated nor valid UTF-8; len 0 is fine).
 * add_bos: prepend tok_bos(). parse_special: special/control token strings that appear in the
 * text (e.g. "<|eot_id|>", "<s>") become their ids; otherwise they are ordinary text.
 * On success *ids is a new malloc'd array the caller frees (non-NULL even when *n_ids == 0)
 * and 0 is returned. On failure (TOK_ERR_ARG) *ids = NULL, *n_ids = 0. */
int tok_encode(const tok *t, const char *text, size_t len, int add_bos, int parse_special,
               int32_t **ids, int *n_ids);

/* Parses a text list of ids ("1,2, 3": non-negative integers separated by ',', ' ', '\t' or
 * '\n'), as the CLIs take them, into a new array *ids of *n entries (free() it; allocated even on
 * failure). 0, or -1 when an element is not an integer in 0..INT32_MAX or is followed by
 * something other than a separator. Ids are not checked against a vocabulary. */
int tok_ids_parse(const char *s, int32_t **ids, int *n);

/* Appends the text of ids[0..n) to out (out must be initialised; it is not cleared first).
 * Equals the concatenation of tok_piece_after(t, ids[i-1], ids[i]) with ids[-1] = -1, so
 * specials render as their text, <0xXX> tokens as their byte, and SPM drops the dummy-prefix
 * space the encoder added (see tok_piece_after). Returns TOK_ERR_RANGE (appending nothing) if
 * any id is out of range. Byte-level BPE: decode(encode(x)) == x for every byte string x;
 * SPM (GGUF / SentencePiece): for every x without a literal U+2581; llama2.c: with add_bos. */
int tok_decode(const tok *t, const int32_t *ids, int n, util_buf *out);

/* Raw bytes of one token (not NUL-terminated; *len gets the length): byte-level BPE tokens as
 * their bytes, specials as their text, SPM "▁" as ' ' and <0xXX> as the single byte.
 * Returns NULL (and *len = 0) for an out-of-range id. The pointer lives as long as t. */
const char *tok_piece(const tok *t, int32_t id, size_t *len);

/* Streaming form of tok_piece: the bytes to print for `id` when the previous token was `prev`
 * (-1 at the start). Identical to tok_piece except that, for SPM, a leading space is dropped
 * where the encoder had added the dummy prefix: after BOS (llama2.c, as run.c does), and for
 * GGUF / SentencePiece vocabularies also at the start (prev = -1) and after any special token.
 * NULL for an out-of-range id. */
const char *tok_piece_after(const tok *t, int32_t prev, int32_t id, size_t *len);

int tok_vocab_size(const tok *t);   /* number of ids, specials included (Llama-3: 128256) */
int32_t tok_bos(const tok *t);      /* -1 if none */
int32_t tok_eos(const tok *t);      /* the primary end id (Llama-3: <|end_of_text|>); -1 if none */
tok_kind tok_get_kind(const tok *t);
/* A short description such as "tiktoken byte-level BPE, 128256 ids (...)"; lives as long as t. */
const char *tok_describe(const tok *t);

/* Id of a special / control token by its text (e.g. "<|eot_id|>", "<s>"), -1 if absent. */
int32_t tok_special_id(const tok *t, const char *name);
/* 1 if id is a special/control token (BOS, EOS, <|...|>, <unk>), 0 otherwise. */
int tok_is_special(const tok *t, int32_t id);

/* Writes up to cap ids that end a generation (Llama-3: <|end_of_text|>, <|eot_id|>,
 * <|eom_id|>; SPM: </s>) to out; returns how many exist (may exceed cap). */
int tok_eos_ids(const tok *t, int32_t *out, int cap);

#endif
