/* workers/model/tok_load.c — tokenizer front door: format detection, the shared vocabulary
 * tables (string -> id and pair -> merge hash maps), special-token splitting, decode.
 *
 * The algorithms live in tok_bpe.c (byte-level BPE) and tok_spm.c (SentencePiece-style BPE);
 * each file format has its own loader (tok_tiktoken.c, tok_hfjson.c, tok_llama2c.c,
 * tok_gguf.c) that fills a `tok` through tok__new/tok__set and seals it with tok__finish.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

const char *tok_strerror(int rc) {
    switch (rc) {
    case TOK_OK: return "ok";
    case TOK_ERR_IO: return "I/O error";
    case TOK_ERR_FORMAT: return "malformed or unsupported tokenizer file";
    case TOK_ERR_ARG: return "invalid argument";
    case TOK_ERR_RANGE: return "token id out of range";
    default: return "unknown tokenizer error";
    }
}

/* ---------------------------------------------------------------- hashing and maps */

uint64_t tok__hash(const void *p, size_t n) {
    /* FNV-1a with a final avalanche: vocab strings are short, so simplicity wins. */
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ull; }
    h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33;
    return h;
}

static uint64_t pair_hash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ull; k ^= k >> 33;
    return k;
}

static uint32_t pow2_at_least(uint64_t n) {
    uint32_t c = 16;
    while (c < n && c < (1u << 31)) c <<= 1;
    return c;
}

int32_t tok__lookup(const tok *t, const void *s, size_t n) {
    if (!t->map.slot) return -1;
    uint32_t i = (uint32_t)tok__hash(s, n) & t->map.mask;
    for (;;) {
        uint32_t v = t->map.slot[i];
        if (!v) return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->text_len[id] == n && memcmp(t->blob + t->text_off[id], s, n) == 0) return id;
        i = (i + 1) & t->map.mask;
    }
}

void tok__pairs_init(tok_pairmap *m, uint32_t expected) {
    m->mask = pow2_at_least((uint64_t)expected * 2) - 1;
    m->slot = xcalloc((size_t)m->mask + 1, sizeof *m->slot);
    m->count = 0;
}

static void pairs_grow(tok_pairmap *m) {
    tok_pairmap n;
    n.mask = (m->mask + 1) * 2 - 1;
    n.slot = xcalloc((size_t)n.mask + 1, sizeof *n.slot);
    n.count = 0;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i].key) continue;
        uint32_t j = (uint32_t)pair_hash(m->slot[i].key) & n.mask;
        while (n.slot[j].key) j = (j + 1) & n.mask;
        n.slot[j] = m->slot[i];
        n.count++;
    }
    free(m->slot);
    *m = n;
}

void tok__pairs_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged) {
    if ((uint64_t)(m->count + 1) * 2 > (uint64_t)m->mask + 1) pairs_grow(m);
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)pair_hash(key) & m->mask;
    while (m->slot[i].key) {
        if (m->slot[i].key == key) {
            /* the same pair twice: the lower rank is the one BPE would apply */
            if (rank < m->slot[i].rank) { m->slot[i].rank = rank; m->slot[i].merged = merged; }
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->slot[i].key = key;
    m->slot[i].rank = rank;
    m->slot[i].merged = merged;
    m->count++;
}

const tok_pair_slot *tok__pairs_get(const tok_pairmap *m, int32_t a, int32_t b) {
    if (!m->slot) return NULL;
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    uint32_t i = (uint32_t)pair_hash(key) & m->mask;
    for (;;) {
        const tok_pair_slot *s = &m->slot[i];
        if (!s->key) return NULL;
        if (s->key == key) return s;
        i = (i + 1) & m->mask;
    }
}

void tok__pairs_free(tok_pairmap *m) {
    free(m->slot);
    m->slot = NULL;
    m->mask = m->count = 0;
}

/* ---------------------------------------------------------------- building */

tok *tok__new(tok_kind kind, tok_fmt fmt, int n_vocab) {
    tok *t = xcalloc(1, sizeof *t);
    t->kind = kind;
    t->fmt = fmt;
    t->n_vocab = n_vocab;
    size_t n = n_vocab > 0 ? (size_t)n_vocab : 1;
    t->text_off = xcalloc(n, sizeof *t->text_off);
    t->text_len = xcalloc(n, sizeof *t->text_len);
    t->disp_off = xcalloc(n, sizeof *t->disp_off);
    t->disp_len = xcalloc(n, sizeof *t->disp_len);
    t->type = xcalloc(n, 1);
    if (kind == TOK_KIND_SPM) t->score = xcalloc(n, sizeof *t->score);
    t->bos = t->eos = t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

static uint32_t blob_add(tok *t, const char *p, size_t n) {
    if (t->blob_len + n + 1 > t->blob_cap) {
        size_t c = t->blob_cap ? t->blob_cap : 4096;
        while (c < t->blob_len + n + 1) c *= 2;
        t->blob = xrealloc(t->blob, c);
        t->blob_cap = c;
    }
    uint32_t off = (uint32_t)t->blob_len;
    if (n) memcpy(t->blob + off, p, n);
    t->blob[off + n] = '\0'; /* lets callers print a piece with %s when it has no NUL */
    t->blob_len += n + 1;
    return off;
}

void tok__set(tok *t, int32_t id, const char *text, size_t text_len, const char *disp, size_t disp_len,
              uint8_t type, float score) {
    t->text_off[id] = blob_add(t, text, text_len);
    t->text_len[id] = (uint32_t)text_len;
    if (disp) {
        t->disp_off[id] = blob_add(t, disp, disp_len);
        t->disp_len[id] = (uint32_t)disp_len;
    } else {
        t->disp_off[id] = t->text_off[id];
        t->disp_len[id] = (uint32_t)text_len;
    }
    t->type[id] = type;
    if (t->score) t->score[id] = score;
}

static int in_map(const tok *t, uint8_t type) {
    if (t->kind == TOK_KIND_BYTE_BPE) return type == TOK_T_NORMAL;
    return type == TOK_T_NORMAL || type == TOK_T_USER;
}

static int special_cmp(const void *a, const void *b, void *ctx) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    const tok *t = ctx;
    unsigned char fx = (unsigned char)t->blob[t->text_off[x]], fy = (unsigned char)t->blob[t->text_off[y]];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return x < y ? -1 : (x > y);
}

int tok__finish(tok *t, char *err, size_t errlen) {
    if (t->n_vocab <= 0) return util_err(err, errlen, "empty vocabulary"), TOK_ERR_FORMAT;
    for (int i = 0; i < t->n_vocab; i++)
        if (!t->type[i]) return util_err(err, errlen, "token id %d is not defined (ids must be 0..%d without gaps)",
                                         i, t->n_vocab - 1), TOK_ERR_FORMAT;
    /* string -> id over the tokens plain text may produce; on duplicates the lowest id wins */
    t->map.mask = pow2_at_least((uint64_t)t->n_vocab * 2) - 1;
    t->map.slot = xcalloc((size_t)t->map.mask + 1, sizeof *t->map.slot);
    for (int id = 0; id < t->n_vocab; id++) {
        if (!in_map(t, t->type[id])) continue;
        size_t n;
        const char *s = tok__text(t, id, &n);
        if (n == 0) continue;
        if (tok__lookup(t, s, n) >= 0) continue;
        uint32_t i = (uint32_t)tok__hash(s, n) & t->map.mask;
        while (t->map.slot[i]) i = (i + 1) & t->map.mask;
        t->map.slot[i] = (uint32_t)id + 1;
    }
    /* byte table */
    if (t->kind == TOK_KIND_BYTE_BPE) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_id[b] = tok__lookup(t, &c, 1);
            if (t->byte_id[b] < 0)
                return util_err(err, errlen, "byte-level BPE vocabulary lacks a token for byte 0x%02X", b), TOK_ERR_FORMAT;
        }
    } else {
        for (int id = 0; id < t->n_vocab; id++) {
            if (t->type[id] != TOK_T_BYTE) continue;
            size_t n;
            const char *s = tok__text(t, id, &n);
            int v = tok__byte_token(s, n);
            if (v >= 0 && t->byte_id[v] < 0) t->byte_id[v] = id;
        }
    }
    /* specials */
    int ns = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_T_CONTROL || ty == TOK_T_USER || ty == TOK_T_UNKNOWN) && t->text_len[id] > 0) ns++;
    }
    t->special_ids = xmalloc(sizeof(int32_t) * (size_t)(ns ? ns : 1));
    t->n_special = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if ((ty == TOK_T_CONTROL || ty == TOK_T_USER || ty == TOK_T_UNKNOWN) && t->text_len[id] > 0)
            t->special_ids[t->n_special++] = id;
    }
    qsort_r(t->special_ids, (size_t)t->n_special, sizeof(int32_t), special_cmp, t);
    memset(t->spec_start, 0, sizeof t->spec_start);
    for (int i = 0; i < t->n_special; i++) t->spec_start[(unsigned char)t->blob[t->text_off[t->special_ids[i]]] + 1]++;
    for (int c = 0; c < 256; c++) t->spec_start[c + 1] += t->spec_start[c];
    /* ids sanity */
    if (t->bos >= t->n_vocab || t->eos >= t->n_vocab || t->unk >= t->n_vocab)
        return util_err(err, errlen, "special id out of range (bos %d, eos %d, unk %d, vocab %d)",
                        t->bos, t->eos, t->unk, t->n_vocab), TOK_ERR_FORMAT;
    if (t->n_eos == 0 && t->eos >= 0) t->eos_ids[t->n_eos++] = t->eos;
    /* SPM: may text be cut before each run of space markers? Only if no mergeable token has
     * a marker that follows a non-marker byte (true of SentencePiece's split_by_whitespace
     * vocabularies such as Llama-2's and tok512). */
    if (t->kind == TOK_KIND_SPM) {
        const char *mk = t->space_u2581 ? "\xE2\x96\x81" : " ";
        size_t ml = strlen(mk);
        t->spm_word_split = 1;
        for (int id = 0; id < t->n_vocab && t->spm_word_split; id++) {
            if (!in_map(t, t->type[id])) continue;
            size_t n;
            const char *s = tok__text(t, id, &n);
            for (size_t i = 1; i + ml <= n; i++)
                if (memcmp(s + i, mk, ml) == 0 && !(i >= ml && memcmp(s + i - ml, mk, ml) == 0)) {
                    t->spm_word_split = 0;
                    break;
                }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- load */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int load_file(const char *path, tok **out, char *err, size_t errlen) {
    size_t len = 0;
    char rerr[512];
    char *data = util_read_file(path, &len, rerr, sizeof rerr);
    if (!data) return util_err(err, errlen, "%s", rerr), TOK_ERR_IO;
    char e[512] = "";
    int rc;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n')) i++;
    if (len >= 4 && memcmp(data, "GGUF", 4) == 0) {
        rc = tok__load_gguf(data, len, out, e, sizeof e);
    } else if (i < len && data[i] == '{') {
        rc = tok__load_hfjson(data, len, out, e, sizeof e);
    } else if (tok__is_spmproto(data, len)) {
        rc = tok__load_spmproto(data, len, out, e, sizeof e);
    } else {
        /* tiktoken lines are printable ASCII; llama2.c starts with a small binary int32 */
        int text = len > 0;
        for (size_t k = 0; k < len && k < 256; k++) {
            unsigned char c = (unsigned char)data[k];
            if (c == 0 || c > 126 || (c < 32 && c != '\n' && c != '\r')) { text = 0; break; }
        }
        if (text) rc = tok__load_tiktoken(data, len, out, e, sizeof e);
        else rc = tok__load_llama2c(data, len, out, e, sizeof e);
    }
    free(data);
    if (rc) {
        *out = NULL;
        util_err(err, errlen, "%s: %s", path, e);
    }
    return rc;
}

int tok_load(const char *path, tok **out, char *err, size_t errlen) {
    if (!out) return util_err(err, errlen, "tok_load: out is NULL"), TOK_ERR_ARG;
    *out = NULL;
    if (!path || !*path) return util_err(err, errlen, "tok_load: empty path"), TOK_ERR_ARG;
    if (is_dir(path)) {
        /* HF order: tokenizer.json first; when it is of a kind we refuse (e.g. a SentencePiece
         * conversion with byte_fallback), the next file is tried and both errors are kept. */
        static const char *names[] = {"tokenizer.json", "tokenizer.model", "tokenizer.bin"};
        char p[4096], first[1024] = "";
        int rc = TOK_ERR_IO, tried = 0;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            snprintf(p, sizeof p, "%s/%s", path, names[k]);
            if (!file_exists(p)) continue;
            rc = load_file(p, out, err, errlen);
            if (rc != TOK_ERR_FORMAT) return rc;
            if (!tried++) snprintf(first, sizeof first, "%s", err ? err : "");
        }
        if (tried) {
            if (err && strcmp(first, err) != 0) {
                char last[1024];
                snprintf(last, sizeof last, "%s", err);
                util_err(err, errlen, "%s; %s", first, last);
            }
            return rc;
        }
        return util_err(err, errlen, "%s: directory has no tokenizer.json, tokenizer.model or tokenizer.bin", path),
               TOK_ERR_IO;
    }
    return load_file(path, out, err, errlen);
}

void tok_destroy(tok **tp) {
    if (!tp || !*tp) return;
    tok *t = *tp;
    free(t->blob);
    free(t->text_off);
    free(t->text_len);
    free(t->disp_off);
    free(t->disp_len);
    free(t->score);
    free(t->type);
    free(t->map.slot);
    tok__pairs_free(&t->pairs);
    tok__pretok_free(t);
    free(t->special_ids);
    free(t);
    *tp = NULL;
}

int tok__byte_token(const char *s, size_t n) {
    unsigned v;
    char tail, buf[8];
    if (n != 6) return -1;
    memcpy(buf, s, 6);
    buf[6] = 0;
    if (sscanf(buf, "<0x%2x%c", &v, &tail) != 2 || tail != '>' || v > 255) return -1;
    return (int)v;
}

void tok__u2581_to_space(const char *s, size_t n, util_buf *out) {
    out->len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 && (unsigned char)s[i + 2] == 0x81) {
            util_buf_append(out, " ", 1);
            i += 2;
        } else {
            util_buf_append(out, s + i, 1);
        }
    }
    util_buf_append(out, "", 0);
}

/* ---------------------------------------------------------------- encode */

void tok__ids_push(tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->ids = xrealloc(v->ids, sizeof(int32_t) * (size_t)v->cap);
    }
    v->ids[v->n++] = id;
}

static void encode_run(const tok *t, const char *s, size_t n, int after_special, int at_start, tok_ids *v) {
    if (n == 0) return;
    if (t->kind == TOK_KIND_BYTE_BPE) tok__bpe_encode(t, s, n, v);
    else tok__spm_encode(t, s, n, t->add_space_prefix && (t->spm_prefix_first_only ? at_start : after_special), v);
}

/* Longest special starting at s (n bytes left), or -1. */
static int32_t match_special(const tok *t, const char *s, size_t n) {
    unsigned c = (unsigned char)s[0];
    for (uint32_t k = t->spec_start[c]; k < t->spec_start[c + 1]; k++) {
        int32_t id = t->special_ids[k];
        size_t l = t->text_len[id];
        if (l <= n && memcmp(t->blob + t->text_off[id], s, l) == 0) return id;
    }
    return -1;
}

int tok_encode(const tok *t, const char *text, size_t len, int add_bos, int parse_special,
               int32_t **ids, int *n_ids) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (!t || !ids || !n_ids || (!text && len > 0)) return TOK_ERR_ARG;
    if (len > (size_t)INT32_MAX / 2) return TOK_ERR_ARG; /* ids are counted in int */
    tok_ids v = {0};
    if (add_bos && t->bos >= 0) tok__ids_push(&v, t->bos);
    size_t seg = 0;
    int after_special = 1; /* SPM: the first text run gets the dummy prefix, as do runs after specials */
    if (parse_special && t->n_special > 0) {
        for (size_t i = 0; i < len;) {
            int32_t sid = match_special(t, text + i, len - i);
            if (sid < 0) { i++; continue; }
            encode_run(t, text + seg, i - seg, after_special, seg == 0, &v);
            tok__ids_push(&v, sid);
            after_special = 1;
            i += t->text_len[sid];
            seg = i;
        }
    }
    encode_run(t, text + seg, len - seg, after_special, seg == 0, &v);
    if (!v.ids) v.ids = xmalloc(sizeof(int32_t));
    *ids = v.ids;
    *n_ids = v.n;
    return 0;
}

/* ---------------------------------------------------------------- decode and queries */

const char *tok_piece(const tok *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->disp_len[id];
    return t->blob + t->disp_off[id];
}

const char *tok_piece_after(const tok *t, int32_t prev, int32_t id, size_t *len) {
    size_t n;
    const char *p = tok_piece(t, id, &n);
    if (!p) {
        if (len) *len = 0;
        return NULL;
    }
    /* the encoder put a dummy-prefix space at the start and (GGUF/SentencePiece) after every
     * special token: drop it again. llama2.c (run.c) only does so after BOS. */
    int after_special = prev >= 0 && prev < t->n_vocab &&
                        (prev == t->bos || (t->strip_space_at_start && !t->spm_prefix_first_only &&
                                            (t->type[prev] == TOK_T_CONTROL || t->type[prev] == TOK_T_UNKNOWN ||
                                             t->type[prev] == TOK_T_USER)));
    if (t->kind == TOK_KIND_SPM && n > 0 && p[0] == ' ' && t->type[id] != TOK_T_BYTE &&
        (after_special || (prev < 0 && t->strip_space_at_start))) {
        p++;
        n--;
    }
    if (len) *len = n;
    return p;
}

int tok_ids_parse(const char *s, int32_t **ids, int *n) {
    int cap = 16;
    *ids = xmalloc(sizeof(int32_t) * (size_t)cap);
    *n = 0;
    while (*s) {
        while (*s == ',' || *s == ' ' || *s == '\t' || *s == '\n') s++;
        if (!*s) break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) return -1;
        if (*n == cap) *ids = xrealloc(*ids, sizeof(int32_t) * (size_t)(cap *= 2));
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
        if (*s && *s != ',' && *s != ' ' && *s != '\t' && *s != '\n') return -1;
    }
    return 0;
}

int tok_decode(const tok *t, const int32_t *ids, int n, util_buf *out) {
    if (!t || !out || n < 0 || (n > 0 && !ids)) return TOK_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab) return TOK_ERR_RANGE;
    int32_t prev = -1;
    for (int i = 0; i < n; i++) {
        size_t l;
        const char *p = tok_piece_after(t, prev, ids[i], &l);
        util_buf_append(out, p, l);
        prev = ids[i];
    }
    return 0;
}

int tok_vocab_size(const tok *t) { return t ? t->n_vocab : 0; }
int32_t tok_bos(const tok *t) { return t ? t->bos : -1; }
int32_t tok_eos(const tok *t) { return t ? t->eos : -1; }
tok_kind tok_get_kind(const tok *t) { return t ? t->kind : (tok_kind)0; }
const char *tok_describe(const tok *t) { return t ? t->desc : ""; }

int32_t tok_special_id(const tok *t, const char *name) {
    if (!t || !name || !*name) return -1;
    size_t n = strlen(name);
    for (int k = 0; k < t->n_special; k++) {
        int32_t id = t->special_ids[k];
        if (t->text_len[id] == n && memcmp(t->blob + t->text_off[id], name, n) == 0) return id;
    }
    /* llama2.c stores BOS/EOS as "\n<s>\n"/"\n</s>\n": accept the bare names too */
    if (t->fmt == TOK_FMT_LLAMA2C) {
        if (strcmp(name, "<s>") == 0) return t->bos;
        if (strcmp(name, "</s>") == 0) return t->eos;
        if (strcmp(name, "<unk>") == 0) return t->unk;
    }
    return -1;
}

int tok_is_special(const tok *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    uint8_t ty = t->type[id];
    return ty == TOK_T_CONTROL || ty == TOK_T_UNKNOWN;
}

int tok_eos_ids(const tok *t, int32_t *out, int cap) {
    if (!t) return 0;
    for (int i = 0; i < t->n_eos && i < cap; i++) out[i] = t->eos_ids[i];
    return t->n_eos;
}
