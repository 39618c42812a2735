/* workers/model/tok_hfjson.c — loader for HF tokenizers `tokenizer.json` (model.type "BPE").
 *
 * Two flavours:
 *   - byte-level BPE (Llama-3, GPT-2 family): vocab over the GPT-2 byte alphabet, merges ("a b"
 *     strings or [a, b] pairs), ignore_merges, a pre_tokenizer made of Split(Regex, Isolated)
 *     and/or ByteLevel (use_regex -> the GPT-2 pattern), normalizer null;
 *   - SentencePiece conversions (byte_fallback = true: Llama-2, Mistral, TinyLlama): raw "▁"
 *     pieces and <0xXX> byte tokens, merges applied by rank over UTF-8 characters (tok_spm.c's
 *     merge-table mode), the "▁" normalizer (Prepend + Replace) or a Metaspace pre-tokenizer.
 * added_tokens: special -> control token, otherwise user token. BOS comes from the
 * TemplateProcessing post-processor when there is one, otherwise from well-known names.
 * Anything else (Unigram/WordPiece models, other normalizers such as NFC) is refused with an
 * error naming the field, rather than encoded wrongly.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

/* GPT-2 bytes_to_unicode, inverted: printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) map to
 * themselves; the other 68 (0x00..0x20, 0x7F..0xA0, 0xAD), in byte order, to U+0100..U+0143. */
static int bl_inverse(uint32_t cp) {
    if ((cp >= '!' && cp <= '~') || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp < 256 || cp >= 256 + 68) return -1;
    uint32_t k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    return 0xAD;
}

int tok__bytelevel_decode(const char *s, size_t n, util_buf *out) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        if (u[i] < 0x80) { cp = u[i]; i++; }
        else if ((u[i] & 0xE0) == 0xC0 && i + 1 < n && (u[i + 1] & 0xC0) == 0x80) {
            cp = (uint32_t)(u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F);
            i += 2;
        } else return -1; /* the alphabet is below U+0800 */
        int b = bl_inverse(cp);
        if (b < 0) return -1;
        char c = (char)b;
        util_buf_append(out, &c, 1);
    }
    return 0;
}

int tok__add_merge_pair(tok *t, const char *a, size_t an, const char *b, size_t bn, int32_t rank, char *err,
                        size_t errlen, const char *what) {
    util_buf x;
    util_buf_init(&x);
    size_t al;
    if (t->kind == TOK_KIND_SPM) { /* SentencePiece-style vocabularies store raw strings */
        util_buf_append(&x, a, an);
        al = x.len;
        util_buf_append(&x, b, bn);
    } else {
        if (tok__bytelevel_decode(a, an, &x) != 0) goto bad_alpha;
        al = x.len;
        if (tok__bytelevel_decode(b, bn, &x) != 0) goto bad_alpha;
    }
    int32_t ia = tok__lookup(t, x.data, al), ib = tok__lookup(t, x.data + al, x.len - al);
    int32_t im = tok__lookup(t, x.data, x.len);
    if (ia < 0 || ib < 0 || im < 0) {
        util_err(err, errlen, "%s: merge \"%.*s %.*s\": %s not in the vocabulary", what, (int)an, a, (int)bn, b,
                 ia < 0 ? "left part" : ib < 0 ? "right part" : "merged token");
        util_buf_free(&x);
        return TOK_ERR_FORMAT;
    }
    tok__pairs_put(&t->pairs, ia, ib, rank, im);
    util_buf_free(&x);
    return 0;
bad_alpha:
    util_buf_free(&x);
    return util_err(err, errlen, "%s: merge \"%.*s %.*s\" is not in the byte-level alphabet", what, (int)an, a,
                    (int)bn, b), TOK_ERR_FORMAT;
}

int tok__add_merge_str(tok *t, const char *s, size_t n, int32_t rank, char *err, size_t errlen, const char *what) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return util_err(err, errlen, "%s: merge \"%.*s\" is not \"LEFT RIGHT\"", what, (int)(n < 80 ? n : 80), s),
               TOK_ERR_FORMAT;
    return tok__add_merge_pair(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), rank, err, errlen, what);
}

/* Reads the pre_tokenizer; sets *regex (NULL = no split) or fails naming the field. */
static int read_pretok(json_t *pt, const char **regex, char *err, size_t errlen, const char *where) {
    if (!pt || json_is_null(pt)) return 0;
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (!type) return util_err(err, errlen, "%s.type: missing", where), TOK_ERR_FORMAT;
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(pt, "pretokenizers");
        if (!json_is_array(arr)) return util_err(err, errlen, "%s.pretokenizers: expected an array", where), TOK_ERR_FORMAT;
        size_t i;
        json_t *e;
        json_array_foreach(arr, i, e) {
            char w[128];
            snprintf(w, sizeof w, "%s.pretokenizers[%zu]", where, i);
            int rc = read_pretok(e, regex, err, errlen, w);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const char *re = json_string_value(json_object_get(json_object_get(pt, "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(pt, "behavior"));
        if (!re) return util_err(err, errlen, "%s.pattern: only {\"Regex\": ...} patterns are supported", where), TOK_ERR_FORMAT;
        if (beh && strcmp(beh, "Isolated") != 0)
            return util_err(err, errlen, "%s.behavior: \"%s\" not supported (Isolated only)", where, beh), TOK_ERR_FORMAT;
        if (json_is_true(json_object_get(pt, "invert")))
            return util_err(err, errlen, "%s.invert: true not supported", where), TOK_ERR_FORMAT;
        if (*regex) return util_err(err, errlen, "%s: more than one regex split is not supported", where), TOK_ERR_FORMAT;
        *regex = re;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_is_true(json_object_get(pt, "add_prefix_space")))
            return util_err(err, errlen, "%s.add_prefix_space: true not supported", where), TOK_ERR_FORMAT;
        json_t *ur = json_object_get(pt, "use_regex");
        if (!ur || json_is_true(ur)) { /* default true */
            if (*regex) return util_err(err, errlen, "%s: ByteLevel regex after a Split is not supported", where), TOK_ERR_FORMAT;
            *regex = TOK_RE_GPT2;
        }
        return 0;
    }
    return util_err(err, errlen, "%s.type: pre-tokenizer \"%s\" not supported", where, type), TOK_ERR_FORMAT;
}

/* SentencePiece-converted tokenizer.json (byte_fallback): the normalizer / pre-tokenizer pair
 * that turns ' ' into "▁" and adds the dummy prefix. Accepted: normalizer null, Prepend("▁"),
 * Replace(" " -> "▁") or a Sequence of those; pre_tokenizer null or Metaspace("▁", split false,
 * prepend_scheme always | first | never, or the older add_prefix_space). */
typedef struct {
    int space, prefix, first_only;
} spm_cfg;

static int read_spm_normalizer(json_t *n, spm_cfg *c, char *err, size_t errlen, const char *where) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) return util_err(err, errlen, "%s.type: missing", where), TOK_ERR_FORMAT;
    if (!strcmp(type, "Sequence")) {
        json_t *arr = json_object_get(n, "normalizers");
        size_t i;
        json_t *e;
        if (!json_is_array(arr)) return util_err(err, errlen, "%s.normalizers: expected an array", where), TOK_ERR_FORMAT;
        json_array_foreach(arr, i, e) {
            char w[128];
            snprintf(w, sizeof w, "%s.normalizers[%zu]", where, i);
            int rc = read_spm_normalizer(e, c, err, errlen, w);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const char *p = json_string_value(json_object_get(n, "prepend"));
        if (!p || strcmp(p, "\xe2\x96\x81") != 0) return util_err(err, errlen, "%s.prepend: only \"\xe2\x96\x81\" is supported", where), TOK_ERR_FORMAT;
        c->prefix = 1;
        return 0;
    }
    if (!strcmp(type, "Replace")) {
        const char *from = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        const char *to = json_string_value(json_object_get(n, "content"));
        if (!from || !to || strcmp(from, " ") != 0 || strcmp(to, "\xe2\x96\x81") != 0)
            return util_err(err, errlen, "%s: only Replace(\" \" -> \"\xe2\x96\x81\") is supported", where), TOK_ERR_FORMAT;
        c->space = 1;
        return 0;
    }
    return util_err(err, errlen, "%s.type: normalizer \"%s\" not supported", where, type), TOK_ERR_FORMAT;
}

static int read_spm_pretok(json_t *p, spm_cfg *c, char *err, size_t errlen) {
    if (!p || json_is_null(p)) return 0;
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type || strcmp(type, "Metaspace") != 0)
        return util_err(err, errlen, "pre_tokenizer.type: \"%s\" not supported with byte_fallback (Metaspace or null)",
                        type ? type : "?"), TOK_ERR_FORMAT;
    const char *rep = json_string_value(json_object_get(p, "replacement"));
    if (rep && strcmp(rep, "\xe2\x96\x81") != 0) return util_err(err, errlen, "pre_tokenizer.replacement: only \"\xe2\x96\x81\""), TOK_ERR_FORMAT;
    if (json_is_true(json_object_get(p, "split")))
        return util_err(err, errlen, "pre_tokenizer.split: true not supported"), TOK_ERR_FORMAT;
    const char *scheme = json_string_value(json_object_get(p, "prepend_scheme"));
    c->space = 1;
    if (scheme) {
        if (!strcmp(scheme, "always")) c->prefix = 1;
        else if (!strcmp(scheme, "first")) c->prefix = c->first_only = 1;
        else if (strcmp(scheme, "never") != 0)
            return util_err(err, errlen, "pre_tokenizer.prepend_scheme: \"%s\" not supported", scheme), TOK_ERR_FORMAT;
    } else if (!json_is_false(json_object_get(p, "add_prefix_space"))) {
        c->prefix = 1; /* older files: add_prefix_space, default true */
    }
    return 0;
}

static int32_t find_added(json_t *added, const char *const *names) {
    for (int k = 0; names[k]; k++) {
        size_t i;
        json_t *e;
        json_array_foreach(added, i, e) {
            const char *c = json_string_value(json_object_get(e, "content"));
            if (c && !strcmp(c, names[k])) return (int32_t)json_integer_value(json_object_get(e, "id"));
        }
    }
    return -1;
}

int tok__load_hfjson(const char *data, size_t len, tok **out, char *err, size_t errlen) {
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(data, len, 0, &je);
    tok *t = NULL;
    util_buf raw;
    util_buf_init(&raw);
    int rc = TOK_ERR_FORMAT;
    if (!root) return util_err(err, errlen, "JSON error at line %d column %d: %s", je.line, je.column, je.text), TOK_ERR_FORMAT;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) { util_err(err, errlen, "model: missing or not an object"); goto fail; }
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (mtype && strcmp(mtype, "BPE") != 0) { util_err(err, errlen, "model.type: \"%s\" not supported (BPE only)", mtype); goto fail; }
    int spm = json_is_true(json_object_get(model, "byte_fallback"));
    spm_cfg sc = {0, 0, 0};
    json_t *norm = json_object_get(root, "normalizer");
    if (spm) {
        if (read_spm_normalizer(norm, &sc, err, errlen, "normalizer") || read_spm_pretok(json_object_get(root, "pre_tokenizer"), &sc, err, errlen))
            goto fail;
        if (json_is_true(json_object_get(model, "ignore_merges"))) {
            util_err(err, errlen, "model.ignore_merges: true is not supported with byte_fallback");
            goto fail;
        }
    } else if (norm && !json_is_null(norm)) {
        util_err(err, errlen, "normalizer: only null is supported for byte-level BPE");
        goto fail;
    }
    json_t *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab)) { util_err(err, errlen, "model.vocab: missing or not an object"); goto fail; }
    if (!json_is_array(merges)) { util_err(err, errlen, "model.merges: missing or not an array"); goto fail; }
    if (added && !json_is_array(added)) { util_err(err, errlen, "added_tokens: not an array"); goto fail; }
    /* vocabulary size = 1 + the largest id */
    json_int_t max_id = -1;
    const char *key;
    json_t *val;
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= (1 << 24)) {
            util_err(err, errlen, "model.vocab[\"%.60s\"]: id must be an integer in 0..16777215", key);
            goto fail;
        }
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    size_t i;
    json_t *e;
    json_array_foreach(added, i, e) {
        json_t *id = json_object_get(e, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24) ||
            !json_is_string(json_object_get(e, "content"))) {
            util_err(err, errlen, "added_tokens[%zu]: needs an integer id in 0..16777215 and a string content", i);
            goto fail;
        }
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0) { util_err(err, errlen, "model.vocab: empty"); goto fail; }
    /* ids must be dense: checked before allocating max_id + 1 slots for a possibly tiny file */
    if ((size_t)max_id >= json_object_size(vocab) + json_array_size(added)) {
        util_err(err, errlen, "model.vocab/added_tokens: largest id %lld but only %zu entries (ids must be 0..N-1)",
                 (long long)max_id, json_object_size(vocab) + json_array_size(added));
        goto fail;
    }
    t = tok__new(spm ? TOK_KIND_SPM : TOK_KIND_BYTE_BPE, TOK_FMT_HFJSON, (int)max_id + 1);
    json_object_foreach(vocab, key, val) {
        int32_t id = (int32_t)json_integer_value(val);
        raw.len = 0;
        size_t kl = strlen(key);
        if (spm) {
            if (t->type[id]) { util_err(err, errlen, "model.vocab: id %d used twice", id); goto fail; }
            int bv = tok__byte_token(key, kl);
            if (bv >= 0) {
                char c = (char)bv;
                tok__set(t, id, key, kl, &c, 1, TOK_T_BYTE, 0.0f);
            } else if (sc.space) {
                tok__u2581_to_space(key, kl, &raw);
                tok__set(t, id, key, kl, raw.data, raw.len, TOK_T_NORMAL, 0.0f);
            } else {
                tok__set(t, id, key, kl, NULL, 0, TOK_T_NORMAL, 0.0f);
            }
            continue;
        }
        if (tok__bytelevel_decode(key, kl, &raw) != 0) {
            util_err(err, errlen, "model.vocab[\"%.60s\"]: not a byte-level (GPT-2 alphabet) token", key);
            goto fail;
        }
        if (t->type[id]) { util_err(err, errlen, "model.vocab: id %d used twice", id); goto fail; }
        tok__set(t, id, raw.data ? raw.data : "", raw.len, NULL, 0, TOK_T_NORMAL, 0.0f);
    }
    json_array_foreach(added, i, e) {
        int32_t id = (int32_t)json_integer_value(json_object_get(e, "id"));
        const char *c = json_string_value(json_object_get(e, "content"));
        int special = json_is_true(json_object_get(e, "special"));
        tok__set(t, id, c, strlen(c), NULL, 0, special ? TOK_T_CONTROL : TOK_T_USER, 0.0f);
    }
    if (spm) {
        const char *unk = json_string_value(json_object_get(model, "unk_token"));
        json_t *uid = unk ? json_object_get(vocab, unk) : NULL;
        int32_t u = uid ? (int32_t)json_integer_value(uid) : -1;
        if (u < 0 && unk) {
            const char *one[2] = {unk, NULL};
            u = find_added(added, one);
        }
        if (u >= 0) {
            t->type[u] = TOK_T_UNKNOWN;
            t->unk = u;
        }
        t->space_u2581 = sc.space;
        t->add_space_prefix = sc.prefix;
        t->spm_prefix_first_only = sc.first_only;
        t->llama2c_split = 0;
        t->strip_space_at_start = sc.prefix;
    }
    /* BOS / EOS */
    json_t *pp = json_object_get(root, "post_processor");
    json_t *procs = json_object_get(pp, "processors");
    json_t *tp = NULL;
    if (json_is_array(procs)) {
        json_array_foreach(procs, i, e) {
            const char *ty = json_string_value(json_object_get(e, "type"));
            if (ty && !strcmp(ty, "TemplateProcessing")) tp = e;
        }
    } else if (pp && json_is_string(json_object_get(pp, "type")) &&
               !strcmp(json_string_value(json_object_get(pp, "type")), "TemplateProcessing")) {
        tp = pp;
    }
    const char *bos_name = NULL;
    if (tp) {
        json_t *single = json_object_get(tp, "single");
        json_t *first = json_array_get(single, 0);
        bos_name = json_string_value(json_object_get(json_object_get(first, "SpecialToken"), "id"));
    }
    static const char *const bos_names[] = {"<|begin_of_text|>", "<s>", "<|startoftext|>", NULL};
    static const char *const eos_names[] = {"<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    if (bos_name) {
        const char *one[2] = {bos_name, NULL};
        t->bos = find_added(added, one);
    } else {
        t->bos = find_added(added, bos_names);
    }
    t->eos = find_added(added, eos_names);
    if (t->eos >= 0) t->eos_ids[t->n_eos++] = t->eos;
    static const char *const extra_eos[][2] = {{"<|eot_id|>", NULL}, {"<|eom_id|>", NULL}, {"<|im_end|>", NULL}};
    for (int k = 0; k < 3; k++) {
        int32_t id = find_added(added, extra_eos[k]);
        if (id >= 0 && id != t->eos) t->eos_ids[t->n_eos++] = id;
    }
    if ((rc = tok__finish(t, err, errlen)) != 0) goto fail;
    rc = TOK_ERR_FORMAT;
    /* merges */
    tok__pairs_init(&t->pairs, (uint32_t)json_array_size(merges));
    json_array_foreach(merges, i, e) {
        char what[64];
        snprintf(what, sizeof what, "model.merges[%zu]", i);
        if (json_is_string(e)) {
            if (tok__add_merge_str(t, json_string_value(e), json_string_length(e), (int32_t)i, err, errlen, what)) goto fail;
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            json_t *a = json_array_get(e, 0), *b = json_array_get(e, 1);
            if (tok__add_merge_pair(t, json_string_value(a), json_string_length(a), json_string_value(b),
                                    json_string_length(b), (int32_t)i, err, errlen, what))
                goto fail;
        } else {
            util_err(err, errlen, "%s: expected \"A B\" or [\"A\", \"B\"]", what);
            goto fail;
        }
    }
    if (spm) {
        snprintf(t->desc, sizeof t->desc, "HF tokenizer.json SentencePiece-style BPE (byte fallback), %d ids, %zu merges",
                 t->n_vocab, json_array_size(merges));
    } else {
        t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
        const char *regex = NULL;
        if ((rc = read_pretok(json_object_get(root, "pre_tokenizer"), &regex, err, errlen, "pre_tokenizer")) != 0) goto fail;
        if (regex && (rc = tok__pretok_compile(t, regex, err, errlen)) != 0) goto fail;
        snprintf(t->desc, sizeof t->desc, "HF tokenizer.json byte-level BPE, %d ids, %zu merges%s", t->n_vocab,
                 json_array_size(merges), regex ? "" : ", no pre-tokenizer split");
    }
    json_decref(root);
    util_buf_free(&raw);
    *out = t;
    return 0;
fail:
    json_decref(root);
    util_buf_free(&raw);
    tok_destroy(&t);
    return rc ? rc : TOK_ERR_FORMAT;
}
