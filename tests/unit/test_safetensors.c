/* tests/unit/test_safetensors.c — safetensors reader/writer: round trip, sharded index,
 * corrupted and truncated files (each error must name the file and the tensor), and the
 * bf16/f16 conversions (round to nearest even, specials).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/unit/unit.h"
#include "workers/model/safetensors.h"

static char *tmpdir; /* this run's scratch folder (main) */

static const char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

/* Builds a raw safetensors file from a header string and n data bytes (pattern-filled). */
static void write_raw(const char *path, const char *header, size_t data_bytes) {
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_bytes + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_bytes; i++) buf[8 + hl + i] = (unsigned char)i;
    write_bytes(path, buf, 8 + hl + data_bytes);
    free(buf);
}

TEST(roundtrip) {
    float a[6] = {1, -2, 3.5f, 1e-8f, -0.0f, 65504};
    uint16_t bh[3] = {st_f32_to_bf16(1.5f), st_f32_to_bf16(-3.0f), st_f32_to_bf16(0.1f)};
    uint16_t hh[2] = {st_f32_to_f16(0.5f), st_f32_to_f16(-2.25f)};
    float scalar = 42;
    int64_t sa[2] = {2, 3}, sb[1] = {3}, sh[2] = {1, 2};
    st_writer *w = st_writer_new(tpath("rt.safetensors"));
    EXPECT(st_writer_add(w, "model.a", OP_F32, 2, sa, a) == 0);
    EXPECT(st_writer_add(w, "b16", OP_BF16, 1, sb, bh) == 0);
    EXPECT(st_writer_add(w, "h16", OP_F16, 2, sh, hh) == 0);
    EXPECT(st_writer_add(w, "scalar", OP_F32, 0, NULL, &scalar) == 0);
    EXPECT(st_writer_meta(w, "format", "pt") == 0);
    char err[512] = "";
    EXPECT_EQ_INT(st_writer_finish(&w, err, sizeof err), 0);
    EXPECT(w == NULL);

    /* header length is a multiple of 8 */
    size_t len;
    char *raw = util_read_file(tpath("rt.safetensors"), &len, NULL, 0);
    EXPECT(raw != NULL);
    if (raw) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)raw[i];
        EXPECT_EQ_INT(hl % 8, 0);
        EXPECT_EQ_INT(len, 8 + hl + 24 + 6 + 4 + 4);
        EXPECT(strstr(raw + 8, "\"__metadata__\"") != NULL);
        free(raw);
    }

    st_file *f = NULL;
    EXPECT_EQ_INT(st_open(tpath("rt.safetensors"), &f, err, sizeof err), 0);
    if (!f) { printf("  %s\n", err); return; }
    EXPECT_EQ_INT(st_count(f), 4);
    const st_tensor *t = st_find(f, "model.a");
    EXPECT(t && t->dtype == OP_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->nbytes == 24);
    if (t) {
        float back[6];
        memcpy(back, t->data, sizeof back);
        EXPECT(memcmp(back, a, sizeof a) == 0);
        EXPECT_EQ_INT(((uintptr_t)t->data) % 4, 0);
        EXPECT_EQ_STR(t->file, "rt.safetensors");
    }
    t = st_find(f, "b16");
    EXPECT(t && t->dtype == OP_BF16 && st_numel(t) == 3);
    if (t) {
        float *v = st_tensor_to_f32(t);
        EXPECT(v[0] == 1.5f && v[1] == -3.0f);
        EXPECT_NEAR(v[2], 0.1, 1e-3);
        free(v);
    }
    t = st_find(f, "h16");
    if (t) {
        float v[2];
        st_to_f32(v, t->data, t->dtype, 2);
        EXPECT(v[0] == 0.5f && v[1] == -2.25f);
    }
    t = st_find(f, "scalar");
    EXPECT(t && t->ndim == 0 && st_numel(t) == 1 && t->nbytes == 4);
    EXPECT(st_find(f, "missing") == NULL);
    EXPECT(st_find(f, "__metadata__") == NULL);
    /* st_at iterates in name order */
    for (int i = 1; i < st_count(f); i++) EXPECT(strcmp(st_at(f, i - 1)->name, st_at(f, i)->name) < 0);
    EXPECT(st_at(f, 4) == NULL && st_at(f, -1) == NULL);
    st_close(&f);
    EXPECT(f == NULL);
    st_close(&f); /* tolerates NULL */
}

TEST(writer_errors) {
    float a[2] = {1, 2};
    int64_t s[1] = {2};
    char err[512] = "";
    st_writer *w = st_writer_new(tpath("dup.safetensors"));
    EXPECT(st_writer_add(w, "x", OP_F32, 1, s, a) == 0);
    EXPECT(st_writer_add(w, "x", OP_F32, 1, s, a) != 0);
    EXPECT(st_writer_finish(&w, err, sizeof err) != 0);
    EXPECT(strstr(err, "x added twice") != NULL);
    EXPECT(access(tpath("dup.safetensors"), F_OK) != 0);
    w = st_writer_new("/nonexistent-dir/x.safetensors");
    st_writer_add(w, "x", OP_F32, 1, s, a);
    EXPECT(st_writer_finish(&w, err, sizeof err) == ST_EIO);
    EXPECT(strstr(err, "/nonexistent-dir/") != NULL);
}

static void expect_open_error(const char *path, int code, const char *needle1, const char *needle2) {
    st_file *f = NULL;
    char err[512] = "";
    int rc = st_open(path, &f, err, sizeof err);
    EXPECT_MSG(rc == code, "rc %d (want %d) err \"%s\"", rc, code, err);
    EXPECT(f == NULL);
    EXPECT_MSG(strstr(err, needle1) != NULL, "\"%s\" lacks \"%s\"", err, needle1);
    if (needle2) EXPECT_MSG(strstr(err, needle2) != NULL, "\"%s\" lacks \"%s\"", err, needle2);
    st_close(&f);
}

TEST(truncated) {
    /* a valid file, then cut short: the error names the file and the tensor beyond the end */
    float a[64];
    for (int i = 0; i < 64; i++) a[i] = (float)i;
    int64_t s[2] = {8, 8};
    st_writer *w = st_writer_new(tpath("full.safetensors"));
    st_writer_add(w, "model.layers.0.mlp.up_proj.weight", OP_F32, 2, s, a);
    st_writer_add(w, "model.layers.3.mlp.up_proj.weight", OP_F32, 2, s, a);
    char err[256];
    EXPECT_EQ_INT(st_writer_finish(&w, err, sizeof err), 0);
    size_t len;
    char *raw = util_read_file(tpath("full.safetensors"), &len, NULL, 0);
    write_bytes(tpath("trunc.safetensors"), raw, len - 10);
    expect_open_error(tpath("trunc.safetensors"), ST_EFORMAT, "trunc.safetensors: tensor model.layers.3.mlp.up_proj.weight",
                      "beyond the data size");
    /* cut inside the header */
    write_bytes(tpath("trunc2.safetensors"), raw, 40);
    expect_open_error(tpath("trunc2.safetensors"), ST_EFORMAT, "trunc2.safetensors: header length", "truncated");
    write_bytes(tpath("trunc3.safetensors"), raw, 5);
    expect_open_error(tpath("trunc3.safetensors"), ST_EFORMAT, "trunc3.safetensors", "too short");
    write_bytes(tpath("empty.safetensors"), raw, 0);
    expect_open_error(tpath("empty.safetensors"), ST_EFORMAT, "empty.safetensors", "too short");
    free(raw);
}

TEST(corrupted_header) {
    write_raw(tpath("badjson.safetensors"), "{\"a\": {\"dtype\": \"F32\", ", 0);
    expect_open_error(tpath("badjson.safetensors"), ST_EFORMAT, "badjson.safetensors: header JSON", NULL);
    write_raw(tpath("arr.safetensors"), "[1, 2]  ", 0);
    expect_open_error(tpath("arr.safetensors"), ST_EFORMAT, "arr.safetensors", "not an object");
    /* absurd header length */
    unsigned char big[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    write_bytes(tpath("huge.safetensors"), big, sizeof big);
    expect_open_error(tpath("huge.safetensors"), ST_EFORMAT, "huge.safetensors: header length", "limit");
    write_raw(tpath("dtype.safetensors"), "{\"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8);
    expect_open_error(tpath("dtype.safetensors"), ST_EDTYPE, "dtype.safetensors: tensor ids", "unsupported dtype I64");
    write_raw(tpath("noshape.safetensors"), "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4);
    expect_open_error(tpath("noshape.safetensors"), ST_EFORMAT, "tensor w", "shape");
    write_raw(tpath("negshape.safetensors"), "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_error(tpath("negshape.safetensors"), ST_EFORMAT, "tensor w", "shape[0]");
    write_raw(tpath("offs.safetensors"), "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4]}}", 4);
    expect_open_error(tpath("offs.safetensors"), ST_EFORMAT, "tensor w", "data_offsets");
    write_raw(tpath("rev.safetensors"), "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 0]}}", 4);
    expect_open_error(tpath("rev.safetensors"), ST_EFORMAT, "tensor w", "end before begin");
    write_raw(tpath("dims.safetensors"),
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_error(tpath("dims.safetensors"), ST_EFORMAT, "tensor w", "9 dimensions");
    write_raw(tpath("dupkey.safetensors"),
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4);
    expect_open_error(tpath("dupkey.safetensors"), ST_EFORMAT, "dupkey.safetensors", "duplicate");
    /* huge shape: the product must not overflow into a match */
    write_raw(tpath("ovf.safetensors"),
              "{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4], \"data_offsets\": [0, 0]}}", 0);
    expect_open_error(tpath("ovf.safetensors"), ST_EFORMAT, "tensor w", "does not match");
}

TEST(shape_offset_mismatch) {
    write_raw(tpath("mis.safetensors"),
              "{\"model.norm.weight\": {\"dtype\": \"BF16\", \"shape\": [3, 4], \"data_offsets\": [0, 48]}}", 48);
    expect_open_error(tpath("mis.safetensors"), ST_EFORMAT, "mis.safetensors: tensor model.norm.weight",
                      "shape [3, 4] x BF16");
    write_raw(tpath("ovl.safetensors"),
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12);
    expect_open_error(tpath("ovl.safetensors"), ST_EFORMAT, "tensor b", "overlap tensor a");
    write_raw(tpath("hole.safetensors"),
              "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
              " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12);
    expect_open_error(tpath("hole.safetensors"), ST_EFORMAT, "tensor b", "hole");
    write_raw(tpath("tail.safetensors"), "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 9);
    expect_open_error(tpath("tail.safetensors"), ST_EFORMAT, "tail.safetensors", "cover 4 bytes");
    /* a valid hand-written file with a __metadata__ entry and padding spaces opens */
    write_raw(tpath("ok.safetensors"),
              "{\"__metadata__\": {\"format\": \"pt\"}, \"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}   ", 4);
    st_file *f = NULL;
    char err[256] = "";
    EXPECT_EQ_INT(st_open(tpath("ok.safetensors"), &f, err, sizeof err), 0);
    if (f) EXPECT_EQ_INT(st_count(f), 1);
    st_close(&f);
}

TEST(sharded) {
    char d[512];
    snprintf(d, sizeof d, "%s/sharded", tmpdir);
    mkdir(d, 0755);
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    int64_t s4[1] = {4}, s2[1] = {2};
    char err[512] = "";
    char p[600];
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", d);
    st_writer *w = st_writer_new(p);
    st_writer_add(w, "model.embed_tokens.weight", OP_F32, 1, s4, a);
    EXPECT_EQ_INT(st_writer_finish(&w, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", d);
    w = st_writer_new(p);
    st_writer_add(w, "lm_head.weight", OP_F32, 1, s2, b);
    EXPECT_EQ_INT(st_writer_finish(&w, err, sizeof err), 0);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
    const char *idx = "{\"metadata\": {\"total_size\": 24}, \"weight_map\": {"
                      "\"model.embed_tokens.weight\": \"model-00001-of-00002.safetensors\","
                      "\"lm_head.weight\": \"model-00002-of-00002.safetensors\"}}";
    write_bytes(p, idx, strlen(idx));
    st_file *f = NULL;
    EXPECT_EQ_INT(st_open(d, &f, err, sizeof err), 0);
    if (f) {
        EXPECT_EQ_INT(st_count(f), 2);
        const st_tensor *t = st_find(f, "lm_head.weight");
        EXPECT(t && ((const float *)t->data)[1] == 6.0f);
        EXPECT(t && !strcmp(t->file, "model-00002-of-00002.safetensors"));
        t = st_find(f, "model.embed_tokens.weight");
        EXPECT(t && ((const float *)t->data)[3] == 4.0f);
    } else {
        printf("  %s\n", err);
    }
    st_close(&f);
    /* the index itself can be opened by path */
    EXPECT_EQ_INT(st_open(p, &f, err, sizeof err), 0);
    st_close(&f);

    /* index naming a tensor its shard lacks */
    idx = "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}";
    write_bytes(p, idx, strlen(idx));
    expect_open_error(d, ST_EFORMAT, "model.safetensors.index.json", "model.norm.weight");
    /* missing shard */
    idx = "{\"weight_map\": {\"x\": \"model-00003-of-00003.safetensors\"}}";
    write_bytes(p, idx, strlen(idx));
    expect_open_error(d, ST_EIO, "model-00003-of-00003.safetensors", NULL);
    /* path traversal is refused */
    idx = "{\"weight_map\": {\"x\": \"../rt.safetensors\"}}";
    write_bytes(p, idx, strlen(idx));
    expect_open_error(d, ST_EFORMAT, "weight_map.x", "not a plain file name");
    idx = "{\"weight_map\": [1]}";
    write_bytes(p, idx, strlen(idx));
    expect_open_error(d, ST_EFORMAT, "weight_map", NULL);
    /* no checkpoint at all */
    char e2[512];
    snprintf(e2, sizeof e2, "%s/emptydir", tmpdir);
    mkdir(e2, 0755);
    expect_open_error(e2, ST_ENOTFOUND, "emptydir", "no model.safetensors");
    expect_open_error(tpath("does-not-exist"), ST_ENOTFOUND, "does-not-exist", NULL);
}

TEST(bf16_conversion) {
    /* exact values survive */
    EXPECT_EQ_INT(st_f32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ_INT(st_f32_to_bf16(-2.0f), 0xc000);
    EXPECT(st_bf16_to_f32(0x3f80) == 1.0f);
    /* round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1.0) */
    EXPECT_EQ_INT(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa 1) and 1+2^-6 -> even (0x3f82) */
    EXPECT_EQ_INT(st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    /* just above halfway rounds up */
    EXPECT_EQ_INT(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    /* overflow to inf, inf stays inf, NaN stays NaN */
    EXPECT_EQ_INT(st_f32_to_bf16(3.4e38f), 0x7f80);
    EXPECT_EQ_INT(st_f32_to_bf16(INFINITY), 0x7f80);
    EXPECT_EQ_INT(st_f32_to_bf16(-INFINITY), 0xff80);
    EXPECT(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
    /* every bf16 survives bf16 -> f32 -> bf16 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (st_f32_to_bf16(f) != h) bad++;
    }
    EXPECT_EQ_INT(bad, 0);
}

TEST(f16_conversion) {
    EXPECT_EQ_INT(st_f32_to_f16(1.0f), 0x3c00);
    EXPECT_EQ_INT(st_f32_to_f16(-2.0f), 0xc000);
    EXPECT_EQ_INT(st_f32_to_f16(65504.0f), 0x7bff);
    EXPECT_EQ_INT(st_f32_to_f16(65520.0f), 0x7c00); /* halfway to the next (2^16) rounds to even = inf */
    EXPECT_EQ_INT(st_f32_to_f16(65519.0f), 0x7bff);
    EXPECT_EQ_INT(st_f32_to_f16(0x1p-24f), 0x0001);  /* smallest subnormal */
    EXPECT_EQ_INT(st_f32_to_f16(0x1p-25f), 0x0000);  /* halfway to 0 -> even (0) */
    EXPECT_EQ_INT(st_f32_to_f16(0x1.8p-24f), 0x0002); /* 1.5 ulp -> even (2) */
    EXPECT_EQ_INT(st_f32_to_f16(0x1p-14f), 0x0400);  /* smallest normal */
    EXPECT_EQ_INT(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie -> even */
    EXPECT_EQ_INT(st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    EXPECT(st_f16_to_f32(0x0001) == 0x1p-24f);
    EXPECT(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));
    EXPECT(isinf(st_f16_to_f32(0x7c00)));
    EXPECT(isnan(st_f16_to_f32(0x7e00)));
    EXPECT(isnan(st_f16_to_f32(st_f32_to_f16(NAN))));
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (st_f32_to_f16(f) != h) bad++;
    }
    EXPECT_EQ_INT(bad, 0);
    /* random values: the result is the nearest f16 (compare against a brute-force neighbour check) */
    uint32_t s = 12345;
    int wrong = 0;
    for (int i = 0; i < 20000; i++) {
        s = s * 1664525u + 1013904223u;
        float f = ldexpf((float)(s >> 8) / (float)(1 << 24), (int)(s % 40) - 26);
        uint16_t h = st_f32_to_f16(f);
        double v = st_f16_to_f32(h), up = st_f16_to_f32((uint16_t)(h + 1)), dn = h ? st_f16_to_f32((uint16_t)(h - 1)) : -1;
        if (fabs(v - f) > fabs(up - f) || (h && fabs(v - f) > fabs(dn - f))) wrong++;
    }
    EXPECT_EQ_INT(wrong, 0);
}

int main(void) {
    tmpdir = unit_tmpdir("safetensors");
    RUN(roundtrip);
    RUN(writer_errors);
    RUN(truncated);
    RUN(corrupted_header);
    RUN(shape_offset_mismatch);
    RUN(sharded);
    RUN(bf16_conversion);
    RUN(f16_conversion);
    unit_rmrf(tmpdir);
    free(tmpdir);
    return unit_summary();
}
