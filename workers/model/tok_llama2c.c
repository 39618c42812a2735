/* workers/model/tok_llama2c.c — loader for llama2.c `tokenizer.bin` (e.g. stories260K tok512.bin).
 *
 * Layout (little-endian): int32 max_token_length, then per id: float32 score, int32 len, len raw
 * bytes. The id count is not stored (run.c takes it from the checkpoint): records are read
 * until the file ends, which must be exactly at a record boundary. Conventions of llama2.c's
 * Llama-2 export: 0 <unk>, 1 BOS ("\n<s>\n"), 2 EOS ("\n</s>\n"), "<0xXX>" byte tokens, plain
 * ' ' for spaces. Encoding follows run.c's encode(); decoding its decode() (leading space
 * dropped after BOS, "<0xXX>" printed as the byte).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "workers/model/tok_internal.h"

static int32_t rd_i32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

static float rd_f32(const unsigned char *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* "<0xHH>" exactly -> byte value, else -1. */
static int byte_token(const unsigned char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        int c = s[k], d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int tok__load_llama2c(const char *data, size_t len, tok **out, char *err, size_t errlen) {
    *out = NULL;
    const unsigned char *u = (const unsigned char *)data;
    if (len < 4) return util_err(err, errlen, "file too short for a llama2.c tokenizer (%zu bytes)", len), TOK_ERR_FORMAT;
    int32_t maxlen = rd_i32(u);
    if (maxlen <= 0 || maxlen > 4096)
        return util_err(err, errlen, "not a llama2.c tokenizer: max_token_length %d at offset 0 (want 1..4096)",
                        maxlen), TOK_ERR_FORMAT;
    /* pass 1: walk the records */
    int n = 0;
    size_t off = 4;
    while (off < len) {
        if (len - off < 8)
            return util_err(err, errlen, "record %d at offset %zu: truncated header", n, off), TOK_ERR_FORMAT;
        int32_t l = rd_i32(u + off + 4);
        if (l < 0 || l > maxlen)
            return util_err(err, errlen, "record %d at offset %zu: length %d outside 0..max_token_length %d", n,
                            off, l, maxlen), TOK_ERR_FORMAT;
        if (len - off - 8 < (size_t)l)
            return util_err(err, errlen, "record %d at offset %zu: %d bytes of text but only %zu left", n, off, l,
                            len - off - 8), TOK_ERR_FORMAT;
        off += 8 + (size_t)l;
        n++;
    }
    if (n < 3) return util_err(err, errlen, "only %d tokens (need at least <unk>, BOS, EOS)", n), TOK_ERR_FORMAT;
    tok *t = tok__new(TOK_KIND_SPM, TOK_FMT_LLAMA2C, n);
    off = 4;
    for (int id = 0; id < n; id++) {
        float score = rd_f32(u + off);
        int32_t l = rd_i32(u + off + 4);
        const unsigned char *s = u + off + 8;
        off += 8 + (size_t)l;
        uint8_t type = TOK_T_NORMAL;
        int bv = byte_token(s, (size_t)l);
        if (id == 0) type = TOK_T_UNKNOWN;
        else if (id == 1 || id == 2) type = TOK_T_CONTROL;
        else if (bv >= 0) type = TOK_T_BYTE;
        if (type == TOK_T_BYTE) {
            char c = (char)bv;
            tok__set(t, id, (const char *)s, (size_t)l, &c, 1, type, score);
        } else {
            tok__set(t, id, (const char *)s, (size_t)l, NULL, 0, type, score);
        }
    }
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_space_prefix = 1;
    t->space_u2581 = 0;
    t->llama2c_split = 1;
    t->strip_space_at_start = 0;
    int rc = tok__finish(t, err, errlen);
    if (rc) {
        tok_destroy(&t);
        return rc;
    }
    snprintf(t->desc, sizeof t->desc, "llama2.c SentencePiece-style BPE, %d ids", n);
    *out = t;
    return 0;
}
