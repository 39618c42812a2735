/* workers/model/tok_gguf.c — loader for the vocabulary in a GGUF file (v2/v3, little-endian).
 *
 * Only the metadata key/value section is read (tensor data is ignored, so a vocab-only GGUF
 * such as llama.cpp's models/ggml-vocab-llama-spm.gguf and a full model file both work).
 * Keys used: tokenizer.ggml.model ("llama" = SentencePiece-style BPE, "gpt2" = byte-level BPE),
 * .tokens, .scores, .token_type, .merges, .pre, .bos/.eos/.unknown/.eot/.eom_token_id,
 * .add_space_prefix. Every length and count is bounds-checked against the file size before
 * it is used; errors name the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

enum {
    GG_U8 = 0, GG_I8, GG_U16, GG_I16, GG_U32, GG_I32, GG_F32, GG_BOOL, GG_STR, GG_ARR, GG_U64, GG_I64, GG_F64,
};

typedef struct {
    const unsigned char *p;
    size_t len, off;
    char *err;
    size_t errlen;
} rd;

static int need(rd *r, size_t n, const char *what) {
    if (r->len - r->off < n)
        return util_err(r->err, r->errlen, "%s: truncated at offset %zu (needs %zu bytes, %zu left)", what, r->off,
                        n, r->len - r->off);
    return 0;
}

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int rd_u32(rd *r, uint32_t *v, const char *what) {
    if (need(r, 4, what)) return -1;
    *v = (uint32_t)le(r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int rd_u64(rd *r, uint64_t *v, const char *what) {
    if (need(r, 8, what)) return -1;
    *v = le(r->p + r->off, 8);
    r->off += 8;
    return 0;
}

static int rd_str(rd *r, const char **s, size_t *n, const char *what) {
    uint64_t l;
    if (rd_u64(r, &l, what)) return -1;
    if (l > r->len - r->off) return util_err(r->err, r->errlen, "%s: string of %llu bytes runs past the end", what,
                                             (unsigned long long)l);
    *s = (const char *)r->p + r->off;
    *n = (size_t)l;
    r->off += (size_t)l;
    return 0;
}

static size_t type_size(uint32_t ty) {
    switch (ty) {
    case GG_U8: case GG_I8: case GG_BOOL: return 1;
    case GG_U16: case GG_I16: return 2;
    case GG_U32: case GG_I32: case GG_F32: return 4;
    case GG_U64: case GG_I64: case GG_F64: return 8;
    default: return 0;
    }
}

/* Skips (or, for the wanted keys, records) one value of type ty. */
static int skip_value(rd *r, uint32_t ty, const char *key, int depth) {
    if (ty == GG_STR) {
        const char *s;
        size_t n;
        return rd_str(r, &s, &n, key);
    }
    if (ty == GG_ARR) {
        uint32_t et;
        uint64_t cnt;
        if (depth > 2) return util_err(r->err, r->errlen, "%s: arrays nested too deeply", key);
        if (rd_u32(r, &et, key) || rd_u64(r, &cnt, key)) return -1;
        size_t es = type_size(et);
        if (es) {
            if (cnt > (r->len - r->off) / es) return util_err(r->err, r->errlen, "%s: array of %llu runs past the end", key,
                                                              (unsigned long long)cnt);
            r->off += (size_t)cnt * es;
            return 0;
        }
        if (et != GG_STR && et != GG_ARR) return util_err(r->err, r->errlen, "%s: unknown array element type %u", key, et);
        if (cnt > r->len - r->off) return util_err(r->err, r->errlen, "%s: array count %llu exceeds the file", key,
                                                   (unsigned long long)cnt);
        for (uint64_t i = 0; i < cnt; i++)
            if (skip_value(r, et, key, depth + 1)) return -1;
        return 0;
    }
    size_t es = type_size(ty);
    if (!es) return util_err(r->err, r->errlen, "%s: unknown value type %u", key, ty);
    if (need(r, es, key)) return -1;
    r->off += es;
    return 0;
}

typedef struct {
    uint32_t elem;
    uint64_t n;
    size_t off;       /* offset of the first element */
    int present;
} gg_arr;

typedef struct {
    const char *model, *pre;
    size_t model_n, pre_n;
    gg_arr tokens, scores, types, merges;
    int64_t bos, eos, unk, eot, eom;
    int add_space_prefix; /* -1 unset */
} gg_vocab;

static int key_is(const char *k, size_t kn, const char *want) {
    return strlen(want) == kn && memcmp(k, want, kn) == 0;
}

static int read_int_value(rd *r, uint32_t ty, int64_t *v, const char *key) {
    size_t es = type_size(ty);
    if (!es || ty == GG_F32 || ty == GG_F64) return util_err(r->err, r->errlen, "%s: expected an integer (type %u)", key, ty);
    if (need(r, es, key)) return -1;
    uint64_t u = le(r->p + r->off, (int)es);
    r->off += es;
    if (ty == GG_I8) *v = (int8_t)u;
    else if (ty == GG_I16) *v = (int16_t)u;
    else if (ty == GG_I32) *v = (int32_t)u;
    else *v = (int64_t)u;
    return 0;
}

static int parse_header(rd *r, gg_vocab *v) {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    r->off = 4;
    if (rd_u32(r, &version, "GGUF version")) return -1;
    if (version < 2 || version > 3)
        return util_err(r->err, r->errlen, "GGUF version %u not supported (need 2 or 3)", version);
    if (rd_u64(r, &n_tensors, "tensor count") || rd_u64(r, &n_kv, "metadata count")) return -1;
    if (n_kv > r->len) return util_err(r->err, r->errlen, "metadata count %llu exceeds the file", (unsigned long long)n_kv);
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = v->eot = v->eom = -1;
    v->add_space_prefix = -1;
    for (uint64_t i = 0; i < n_kv; i++) {
        const char *k;
        size_t kn;
        uint32_t ty;
        char kbuf[128];
        if (rd_str(r, &k, &kn, "metadata key")) return -1;
        snprintf(kbuf, sizeof kbuf, "%.*s", (int)(kn < 100 ? kn : 100), k);
        if (rd_u32(r, &ty, kbuf)) return -1;
        gg_arr *arr = NULL;
        if (key_is(k, kn, "tokenizer.ggml.tokens")) arr = &v->tokens;
        else if (key_is(k, kn, "tokenizer.ggml.scores")) arr = &v->scores;
        else if (key_is(k, kn, "tokenizer.ggml.token_type")) arr = &v->types;
        else if (key_is(k, kn, "tokenizer.ggml.merges")) arr = &v->merges;
        if (arr) {
            if (ty != GG_ARR) return util_err(r->err, r->errlen, "%s: expected an array (type %u)", kbuf, ty);
            size_t save = r->off;
            uint32_t et;
            uint64_t cnt;
            if (rd_u32(r, &et, kbuf) || rd_u64(r, &cnt, kbuf)) return -1;
            arr->elem = et;
            arr->n = cnt;
            arr->off = r->off;
            arr->present = 1;
            r->off = save;
            if (skip_value(r, ty, kbuf, 0)) return -1;
            continue;
        }
        if (key_is(k, kn, "tokenizer.ggml.model") || key_is(k, kn, "tokenizer.ggml.pre")) {
            if (ty != GG_STR) return util_err(r->err, r->errlen, "%s: expected a string (type %u)", kbuf, ty);
            const char *s;
            size_t n;
            if (rd_str(r, &s, &n, kbuf)) return -1;
            if (k[kn - 1] == 'l') { v->model = s; v->model_n = n; }
            else { v->pre = s; v->pre_n = n; }
            continue;
        }
        int64_t *iv = NULL;
        if (key_is(k, kn, "tokenizer.ggml.bos_token_id")) iv = &v->bos;
        else if (key_is(k, kn, "tokenizer.ggml.eos_token_id")) iv = &v->eos;
        else if (key_is(k, kn, "tokenizer.ggml.unknown_token_id")) iv = &v->unk;
        else if (key_is(k, kn, "tokenizer.ggml.eot_token_id")) iv = &v->eot;
        else if (key_is(k, kn, "tokenizer.ggml.eom_token_id")) iv = &v->eom;
        if (iv) {
            if (read_int_value(r, ty, iv, kbuf)) return -1;
            continue;
        }
        if (key_is(k, kn, "tokenizer.ggml.add_space_prefix") && ty == GG_BOOL) {
            if (need(r, 1, kbuf)) return -1;
            v->add_space_prefix = r->p[r->off++] != 0;
            continue;
        }
        if (skip_value(r, ty, kbuf, 0)) return -1;
    }
    return 0;
}

/* i-th string of a string array (sequential walk is done by the caller through *off). */
static int arr_next_str(rd *r, size_t *off, const char **s, size_t *n, const char *what) {
    r->off = *off;
    if (rd_str(r, s, n, what)) return -1;
    *off = r->off;
    return 0;
}

static int check_arr(rd *r, const gg_arr *a, uint32_t elem, uint64_t n, const char *key) {
    if (!a->present) return 0;
    if (a->elem != elem && !(elem == GG_I32 && a->elem == GG_U32))
        return util_err(r->err, r->errlen, "%s: element type %u, expected %u", key, a->elem, elem);
    if (a->n != n)
        return util_err(r->err, r->errlen, "%s: %llu entries but tokenizer.ggml.tokens has %llu", key,
                        (unsigned long long)a->n, (unsigned long long)n);
    return 0;
}

int tok__load_gguf(const char *data, size_t len, tok **out, char *err, size_t errlen) {
    *out = NULL;
    rd r = {(const unsigned char *)data, len, 0, err, errlen};
    gg_vocab v;
    if (parse_header(&r, &v)) return TOK_ERR_FORMAT;
    if (!v.model) return util_err(err, errlen, "no tokenizer.ggml.model key (not a model/vocab GGUF?)"), TOK_ERR_FORMAT;
    int spm = v.model_n == 5 && memcmp(v.model, "llama", 5) == 0;
    int bpe = v.model_n == 4 && memcmp(v.model, "gpt2", 4) == 0;
    if (!spm && !bpe)
        return util_err(err, errlen, "tokenizer.ggml.model \"%.*s\" not supported (want \"llama\" or \"gpt2\")",
                        (int)(v.model_n < 64 ? v.model_n : 64), v.model), TOK_ERR_FORMAT;
    if (!v.tokens.present || v.tokens.elem != GG_STR)
        return util_err(err, errlen, "tokenizer.ggml.tokens: missing or not a string array"), TOK_ERR_FORMAT;
    if (v.tokens.n == 0 || v.tokens.n > (1u << 24))
        return util_err(err, errlen, "tokenizer.ggml.tokens: %llu entries (want 1..16777216)",
                        (unsigned long long)v.tokens.n), TOK_ERR_FORMAT;
    int n = (int)v.tokens.n;
    if (check_arr(&r, &v.scores, GG_F32, v.tokens.n, "tokenizer.ggml.scores") ||
        check_arr(&r, &v.types, GG_I32, v.tokens.n, "tokenizer.ggml.token_type"))
        return TOK_ERR_FORMAT;
    if (spm && !v.scores.present) return util_err(err, errlen, "tokenizer.ggml.scores: missing (SentencePiece vocab needs scores)"), TOK_ERR_FORMAT;
    if (bpe && (!v.merges.present || v.merges.elem != GG_STR))
        return util_err(err, errlen, "tokenizer.ggml.merges: missing or not a string array"), TOK_ERR_FORMAT;

    tok *t = tok__new(spm ? TOK_KIND_SPM : TOK_KIND_BYTE_BPE, spm ? TOK_FMT_GGUF_SPM : TOK_FMT_GGUF_BPE, n);
    util_buf disp, raw;
    util_buf_init(&disp);
    util_buf_init(&raw);
    int rc = TOK_ERR_FORMAT;
    size_t soff = v.tokens.off;
    char key[80];
    for (int id = 0; id < n; id++) {
        const char *s;
        size_t sn;
        snprintf(key, sizeof key, "tokenizer.ggml.tokens[%d]", id);
        if (arr_next_str(&r, &soff, &s, &sn, key)) goto fail;
        float score = 0.0f;
        if (v.scores.present) {
            uint32_t u = (uint32_t)le(r.p + v.scores.off + (size_t)id * 4, 4);
            memcpy(&score, &u, 4);
        }
        int32_t ty = TOK_T_NORMAL;
        if (v.types.present) ty = (int32_t)le(r.p + v.types.off + (size_t)id * 4, 4);
        if (ty < TOK_T_NORMAL || ty > TOK_T_BYTE) {
            util_err(err, errlen, "tokenizer.ggml.token_type[%d]: %d outside 1..6", id, ty);
            goto fail;
        }
        if (spm) {
            if (ty == TOK_T_BYTE) {
                int bv = tok__byte_token(s, sn);
                if (bv < 0) {
                    util_err(err, errlen, "tokenizer.ggml.tokens[%d]: byte token is not <0xXX>", id);
                    goto fail;
                }
                char c = (char)bv;
                tok__set(t, id, s, sn, &c, 1, (uint8_t)ty, score);
            } else {
                tok__u2581_to_space(s, sn, &disp);
                tok__set(t, id, s, sn, disp.data, disp.len, (uint8_t)ty, score);
            }
        } else {
            if (ty == TOK_T_CONTROL || ty == TOK_T_USER || ty == TOK_T_UNKNOWN || ty == TOK_T_UNUSED) {
                tok__set(t, id, s, sn, NULL, 0, (uint8_t)ty, score);
            } else {
                raw.len = 0;
                if (tok__bytelevel_decode(s, sn, &raw) != 0) {
                    util_err(err, errlen, "tokenizer.ggml.tokens[%d]: not a byte-level (GPT-2 alphabet) string", id);
                    goto fail;
                }
                tok__set(t, id, raw.data ? raw.data : "", raw.len, NULL, 0, TOK_T_NORMAL, score);
            }
        }
    }
    t->bos = v.bos >= 0 && v.bos < n ? (int32_t)v.bos : -1;
    t->eos = v.eos >= 0 && v.eos < n ? (int32_t)v.eos : -1;
    t->unk = v.unk >= 0 && v.unk < n ? (int32_t)v.unk : -1;
    if (t->eos >= 0) t->eos_ids[t->n_eos++] = t->eos;
    if (v.eot >= 0 && v.eot < n && v.eot != v.eos) t->eos_ids[t->n_eos++] = (int32_t)v.eot;
    if (v.eom >= 0 && v.eom < n && v.eom != v.eos && v.eom != v.eot) t->eos_ids[t->n_eos++] = (int32_t)v.eom;
    if (spm) {
        t->add_space_prefix = v.add_space_prefix != 0; /* llama.cpp's default is true */
        t->space_u2581 = 1;
        t->llama2c_split = 0;
        t->strip_space_at_start = t->add_space_prefix;
    }
    if ((rc = tok__finish(t, err, errlen)) != 0) goto fail;
    if (bpe) {
        rc = TOK_ERR_FORMAT;
        size_t moff = v.merges.off;
        tok__pairs_init(&t->pairs, (uint32_t)(v.merges.n < (1u << 24) ? v.merges.n : (1u << 24)));
        for (uint64_t i = 0; i < v.merges.n; i++) {
            const char *s;
            size_t sn;
            snprintf(key, sizeof key, "tokenizer.ggml.merges[%llu]", (unsigned long long)i);
            if (arr_next_str(&r, &moff, &s, &sn, key)) goto fail;
            if (tok__add_merge_str(t, s, sn, (int32_t)i, err, errlen, key) != 0) goto fail;
        }
        const char *re = TOK_RE_GPT2;
        if (v.pre && ((v.pre_n == 9 && !memcmp(v.pre, "llama-bpe", 9)) || (v.pre_n == 6 && !memcmp(v.pre, "llama3", 6)) ||
                      (v.pre_n == 9 && !memcmp(v.pre, "smaug-bpe", 9))))
            re = TOK_RE_LLAMA3;
        else if (v.pre && !(v.pre_n == 7 && !memcmp(v.pre, "default", 7)) && !(v.pre_n == 5 && !memcmp(v.pre, "gpt-2", 5))) {
            util_err(err, errlen, "tokenizer.ggml.pre \"%.*s\" not supported (llama-bpe, llama3, smaug-bpe, gpt-2, default)",
                     (int)(v.pre_n < 64 ? v.pre_n : 64), v.pre);
            goto fail;
        }
        t->ignore_merges = re == TOK_RE_LLAMA3;
        if ((rc = tok__pretok_compile(t, re, err, errlen)) != 0) goto fail;
    }
    snprintf(t->desc, sizeof t->desc, "GGUF %s, %d ids", spm ? "SentencePiece-style BPE" : "byte-level BPE", n);
    util_buf_free(&disp);
    util_buf_free(&raw);
    *out = t;
    return 0;
fail:
    util_buf_free(&disp);
    util_buf_free(&raw);
    tok_destroy(&t);
    return rc ? rc : TOK_ERR_FORMAT;
}
