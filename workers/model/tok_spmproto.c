/* workers/model/tok_spmproto.c — loader for SentencePiece `tokenizer.model` (protobuf ModelProto),
 * the file Llama-2 / Mistral / TinyLlama checkpoints ship.
 *
 * Only the BPE model type is accepted, with Llama-2's settings: byte_fallback, identity
 * normalisation (no precompiled_charsmap), escape_whitespaces, remove_extra_whitespaces = false;
 * add_dummy_prefix is honoured. Anything else is refused with an error naming the field. Encoding then equals the GGUF "llama" path (tok_spm.c), which the tests check
 * against the sentencepiece library itself. The protobuf wire format is walked directly (no
 * library): ModelProto { 1: repeated SentencePiece {1: piece, 2: score, 3: type}, 2: TrainerSpec
 * {3: model_type, 35: byte_fallback, 40..42: unk/bos/eos id}, 3: NormalizerSpec {1: name,
 * 2: precompiled_charsmap, 3: add_dummy_prefix, 4: remove_extra_whitespaces, 5:
 * escape_whitespaces} }. Every length is checked against the buffer; unknown fields are skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

typedef struct {
    const unsigned char *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v) {
    uint64_t x = 0;
    for (int s = 0; s < 64; s += 7) {
        if (b->p >= b->end) return -1;
        unsigned c = *b->p++;
        x |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) { *v = x; return 0; }
    }
    return -1;
}

/* Reads one field header and its payload: for wire 0 *v, for 1/5 the raw bytes in *v, for 2 a
 * sub-buffer in *sub. Returns the field number, 0 at the end, -1 on malformed input. */
static int pb_next(pb *b, int *wire, uint64_t *v, pb *sub) {
    if (b->p >= b->end) return 0;
    uint64_t key;
    if (pb_varint(b, &key)) return -1;
    *wire = (int)(key & 7);
    uint64_t num = key >> 3;
    if (num == 0 || num > (1u << 29)) return -1;
    switch (*wire) {
    case 0:
        if (pb_varint(b, v)) return -1;
        break;
    case 1:
        if (b->end - b->p < 8) return -1;
        memcpy(v, b->p, 8);
        b->p += 8;
        break;
    case 5: {
        if (b->end - b->p < 4) return -1;
        uint32_t u = (uint32_t)b->p[0] | (uint32_t)b->p[1] << 8 | (uint32_t)b->p[2] << 16 | (uint32_t)b->p[3] << 24;
        *v = u;
        b->p += 4;
        break;
    }
    case 2: {
        uint64_t n;
        if (pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) return -1;
        sub->p = b->p;
        sub->end = b->p + n;
        b->p += n;
        break;
    }
    default:
        return -1; /* groups (3/4) are not used by sentencepiece */
    }
    return (int)num;
}

/* Detects the ModelProto layout: field 1 (length-delimited) whose payload starts with field 1. */
int tok__is_spmproto(const char *data, size_t len) {
    pb b = {(const unsigned char *)data, (const unsigned char *)data + len}, sub;
    int wire;
    uint64_t v;
    if (len < 4 || pb_next(&b, &wire, &v, &sub) != 1 || wire != 2) return 0;
    return sub.end > sub.p && sub.p[0] == 0x0a;
}

int tok__load_spmproto(const char *data, size_t len, tok **out, char *err, size_t errlen) {
    *out = NULL;
    pb b = {(const unsigned char *)data, (const unsigned char *)data + len}, sub;
    int wire, f;
    uint64_t v;
    int n = 0;
    int64_t model_type = 1, unk = 0, bos = 1, eos = 2; /* proto2 defaults */
    int byte_fallback = 0, add_dummy = 1, remove_ws = 1, escape_ws = 1, charsmap = 0;
    char norm_name[64] = "";
    /* pass 1: count pieces, read the specs */
    while ((f = pb_next(&b, &wire, &v, &sub)) > 0) {
        if (f == 1 && wire == 2) n++;
        else if (f == 2 && wire == 2) {
            pb s = sub, x;
            int g, w;
            uint64_t u;
            while ((g = pb_next(&s, &w, &u, &x)) > 0) {
                if (w != 0) continue;
                if (g == 3) model_type = (int64_t)u;
                else if (g == 35) byte_fallback = u != 0;
                else if (g == 40) unk = (int32_t)u;
                else if (g == 41) bos = (int32_t)u;
                else if (g == 42) eos = (int32_t)u;
            }
            if (g < 0) return util_err(err, errlen, "trainer_spec: malformed protobuf"), TOK_ERR_FORMAT;
        } else if (f == 3 && wire == 2) {
            pb s = sub, x;
            int g, w;
            uint64_t u;
            while ((g = pb_next(&s, &w, &u, &x)) > 0) {
                if (g == 1 && w == 2) snprintf(norm_name, sizeof norm_name, "%.*s", (int)(x.end - x.p), (const char *)x.p);
                else if (g == 2 && w == 2) charsmap = x.end > x.p;
                else if (g == 3 && w == 0) add_dummy = u != 0;
                else if (g == 4 && w == 0) remove_ws = u != 0;
                else if (g == 5 && w == 0) escape_ws = u != 0;
            }
            if (g < 0) return util_err(err, errlen, "normalizer_spec: malformed protobuf"), TOK_ERR_FORMAT;
        }
    }
    if (f < 0) return util_err(err, errlen, "malformed protobuf at offset %zu", (size_t)(b.p - (const unsigned char *)data)),
               TOK_ERR_FORMAT;
    if (n == 0 || n > (1 << 24)) return util_err(err, errlen, "%d pieces (want 1..16777216)", n), TOK_ERR_FORMAT;
    if (model_type != 2)
        return util_err(err, errlen, "trainer_spec.model_type %lld not supported (BPE = 2 only; %s)", (long long)model_type,
                        model_type == 1 ? "this is a Unigram model" : "unknown type"), TOK_ERR_FORMAT;
    if (charsmap || (norm_name[0] && strcmp(norm_name, "identity") != 0))
        return util_err(err, errlen, "normalizer_spec \"%s\": only the identity normalizer is supported", norm_name),
               TOK_ERR_FORMAT;
    if (remove_ws) return util_err(err, errlen, "normalizer_spec.remove_extra_whitespaces = true is not supported"), TOK_ERR_FORMAT;
    if (!byte_fallback)
        return util_err(err, errlen, "trainer_spec.byte_fallback = false is not supported (unknown characters would need "
                                     "per-character <unk>)"), TOK_ERR_FORMAT;
    if (!escape_ws) return util_err(err, errlen, "normalizer_spec.escape_whitespaces = false is not supported"), TOK_ERR_FORMAT;

    tok *t = tok__new(TOK_KIND_SPM, TOK_FMT_SPMPROTO, n);
    util_buf disp;
    util_buf_init(&disp);
    b.p = (const unsigned char *)data;
    int id = 0;
    while ((f = pb_next(&b, &wire, &v, &sub)) > 0) {
        if (f != 1 || wire != 2) continue;
        pb s = sub, x;
        int g, w;
        uint64_t u;
        const char *piece = NULL;
        size_t pl = 0;
        float score = 0.0f;
        int64_t type = TOK_T_NORMAL;
        while ((g = pb_next(&s, &w, &u, &x)) > 0) {
            if (g == 1 && w == 2) { piece = (const char *)x.p; pl = (size_t)(x.end - x.p); }
            else if (g == 2 && w == 5) { uint32_t bits = (uint32_t)u; memcpy(&score, &bits, 4); }
            else if (g == 3 && w == 0) type = (int64_t)u;
        }
        if (g < 0 || !piece) {
            util_err(err, errlen, "pieces[%d]: malformed or without a piece string", id);
            goto fail;
        }
        if (type < TOK_T_NORMAL || type > TOK_T_BYTE) {
            util_err(err, errlen, "pieces[%d]: type %lld outside 1..6", id, (long long)type);
            goto fail;
        }
        if (type == TOK_T_BYTE) {
            int bv = tok__byte_token(piece, pl);
            if (bv < 0) {
                util_err(err, errlen, "pieces[%d]: byte piece is not <0xXX>", id);
                goto fail;
            }
            char c = (char)bv;
            tok__set(t, id, piece, pl, &c, 1, TOK_T_BYTE, score);
        } else {
            tok__u2581_to_space(piece, pl, &disp);
            tok__set(t, id, piece, pl, disp.data, disp.len, (uint8_t)type, score);
        }
        id++;
    }
    t->unk = unk >= 0 && unk < n ? (int32_t)unk : -1;
    t->bos = bos >= 0 && bos < n ? (int32_t)bos : -1;
    t->eos = eos >= 0 && eos < n ? (int32_t)eos : -1;
    t->add_space_prefix = add_dummy;
    t->space_u2581 = 1;
    t->llama2c_split = 0;
    t->strip_space_at_start = add_dummy;
    int rc = tok__finish(t, err, errlen);
    if (rc) goto fail_rc;
    snprintf(t->desc, sizeof t->desc, "SentencePiece BPE model (tokenizer.model), %d ids", n);
    util_buf_free(&disp);
    *out = t;
    return 0;
fail:
    rc = TOK_ERR_FORMAT;
fail_rc:
    util_buf_free(&disp);
    tok_destroy(&t);
    return rc;
}
