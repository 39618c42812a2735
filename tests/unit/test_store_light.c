/* tests/unit/test_store_light.c — the light generation reads (store_generation_meta_get,
 * store_generations_meta_each_txn) against the whole-record reads (store_generation_get,
 * store_generations_each_txn): same fields on records written by the store, on hand-made
 * records (no time_s, nil / int / float32 time_s, unusual key orders, duplicate keys, nested
 * extra keys, the text as bin), the same verdict on truncated and mutated records (a clear
 * STORE_ERR_CORRUPT, never a crash), and the aggregate payload's time_s taken from them.
 * Hand-made records are put with LMDB directly (the store's API only writes well-formed ones).
 */
#include "unit.h"

#include "broker/payload.h"
#include "broker/tasks.h"
#include "common/util.h"
#include "jobs/proto.h"
#include "store/store.h"

#include <lmdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void gen_key(uint8_t k[16], uint64_t job, uint32_t p, uint32_t s) {
    for (int i = 0; i < 8; i++) k[i] = (uint8_t)(job >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) k[8 + i] = (uint8_t)(p >> (24 - 8 * i));
    for (int i = 0; i < 4; i++) k[12 + i] = (uint8_t)(s >> (24 - 8 * i));
}

/* Creates the store in dir (so every named database exists), then puts each raw record
 * (bytes[i], len[i]) into database db ("generations", "scores") at (job 1, p 0, s i) with
 * LMDB directly. 0 on success. */
static int put_raw_records(const char *dir, const char *db, const uint8_t *const *bytes, const size_t *len, int n) {
    store *s = NULL;
    char err[256];
    if (store_open(dir, 0, 0, &s, err, sizeof err) != STORE_OK) { printf("  %s\n", err); return -1; }
    store_close(&s);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc = mdb_env_create(&env);
    if (rc) return -1;
    mdb_env_set_maxdbs(env, 16);
    rc = mdb_env_open(env, dir, MDB_NOTLS, 0644);
    if (!rc) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (!rc) {
        rc = mdb_dbi_open(txn, db, 0, &dbi);
        for (int i = 0; !rc && i < n; i++) {
            uint8_t k[16];
            gen_key(k, 1, 0, (uint32_t)i);
            MDB_val key = {16, k}, val = {len[i], (void *)bytes[i]};
            rc = mdb_put(txn, dbi, &key, &val, 0);
        }
        if (!rc) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    if (rc) printf("  raw put: %s\n", mdb_strerror(rc));
    return rc ? -1 : 0;
}

/* 1 when the light view equals the whole record's fields (time_s bitwise, NaN == NaN). */
static int same_fields(const store_generation *g, const store_generation_meta *m) {
    return g->p == m->p && g->s == m->s && g->text_len == m->text_len && g->tokens == m->tokens &&
           (g->time_s == m->time_s || (isnan(g->time_s) && isnan(m->time_s))) &&
           strcmp(g->finish, m->finish) == 0 && g->task == m->task;
}

typedef struct {
    int full_rc, light_rc;
    store_generation g;
    store_generation_meta m;
    char light_err[512];
} both;

/* Reads generation (1, 0, s) both ways in one read transaction. */
static both read_both(store *st, uint32_t s) {
    both b;
    memset(&b, 0, sizeof b);
    store_txn *t;
    char err[256];
    if (store_txn_begin(st, 0, &t, err, sizeof err)) { b.full_rc = b.light_rc = 99; return b; }
    b.light_rc = store_generation_meta_get(t, 1, 0, s, &b.m);
    snprintf(b.light_err, sizeof b.light_err, "%s", store_last_error(st));
    b.full_rc = store_generation_get(t, 1, 0, s, &b.g);
    b.g.text = NULL;   /* a view that dies with the txn */
    store_txn_abort(&t);
    return b;
}

/* ---- records written by the store ---- */

typedef struct { int n, mismatched; const store_generation *want; int n_want; } walk_cmp;
static int meta_cmp_cb(uint64_t job, const store_generation_meta *m, void *ctx) {
    walk_cmp *c = ctx;
    if (c->n >= c->n_want || !same_fields(&c->want[c->n], m)) c->mismatched++;
    c->n++;
    return 0;
}
static int stop_cb(uint64_t job, const store_generation_meta *m, void *ctx) {
    return ++*(int *)ctx == 2;
}

TEST(store_written_records_match) {
    char *d = unit_tmpdir("store_light");
    store *s = NULL;
    char err[256];
    EXPECT_MSG(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK, "%s", err);
    if (!s) { free(d); return; }
    static const char text_nul[] = "abc\0def";
    char big[5000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
    /* in (p, s) order, as the walks deliver them */
    store_generation gs[] = {
        {.p = 0, .s = 0, .text = "The answer is 4.", .text_len = 16, .tokens = 5, .time_s = 0.125, .task = 3},
        {.p = 0, .s = 1, .text = "", .text_len = 0, .tokens = 0, .time_s = 0, .task = 0},
        {.p = 0, .s = 2, .text = text_nul, .text_len = 7, .tokens = -2, .time_s = NAN, .task = UINT64_MAX},
        {.p = 1, .s = 0, .text = big, .text_len = sizeof big, .tokens = 1250, .time_s = 1e-9, .task = 9},
        {.p = 7, .s = 4000000000u, .text = big, .text_len = 300, .tokens = INT64_MIN, .time_s = -3.5e300, .task = 1},
    };
    const char *fin[] = {"stop", "length", "", "stop", "fifteen-chars!!"};
    int n = (int)(sizeof gs / sizeof gs[0]);
    store_txn *t;
    EXPECT(store_txn_begin(s, 1, &t, err, sizeof err) == STORE_OK);
    for (int i = 0; i < n; i++) {
        snprintf(gs[i].finish, sizeof gs[i].finish, "%s", fin[i]);
        EXPECT_EQ_INT(store_generation_put(t, 1, &gs[i]), 1);
    }
    EXPECT(store_txn_commit(&t, err, sizeof err) == STORE_OK);

    EXPECT(store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK);
    for (int i = 0; i < n; i++) {
        store_generation g;
        store_generation_meta m;
        EXPECT_EQ_INT(store_generation_get(t, 1, gs[i].p, gs[i].s, &g), STORE_OK);
        EXPECT_EQ_INT(store_generation_meta_get(t, 1, gs[i].p, gs[i].s, &m), STORE_OK);
        EXPECT_MSG(same_fields(&g, &m), "record %d", i);
        /* and both equal what was written (so a shared mistake fails too) */
        EXPECT_MSG(same_fields(&gs[i], &m), "record %d vs written", i);
        EXPECT(g.text_len == gs[i].text_len && memcmp(g.text, gs[i].text, g.text_len) == 0 && g.text[g.text_len] == 0);
    }
    store_generation_meta none;
    EXPECT_EQ_INT(store_generation_meta_get(t, 1, 0, 99, &none), STORE_ERR_NOTFOUND);
    EXPECT_EQ_INT(store_generation_meta_get(t, 2, 0, 0, &none), STORE_ERR_NOTFOUND);
    walk_cmp c = {0, 0, gs, n};
    EXPECT_EQ_INT(store_generations_meta_each_txn(t, 1, meta_cmp_cb, &c), STORE_OK);
    EXPECT_EQ_INT(c.n, n);
    EXPECT_EQ_INT(c.mismatched, 0);
    int calls = 0;
    EXPECT_EQ_INT(store_generations_meta_each_txn(t, 1, stop_cb, &calls), STORE_OK);
    EXPECT_EQ_INT(calls, 2);   /* nonzero from the callback stops the walk */
    walk_cmp c2 = {0, 0, gs, 0};
    EXPECT_EQ_INT(store_generations_meta_each_txn(t, 2, meta_cmp_cb, &c2), STORE_OK);
    EXPECT_EQ_INT(c2.n, 0);    /* another job's prefix: nothing */
    store_txn_abort(&t);
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

/* ---- hand-made records ---- */

/* A bare msgpack record builder on proto_writer (plus raw bytes where proto_writer has no
 * call: float32). */
typedef struct { proto_writer *w; } rec;
static void key(rec *r, const char *k) { proto_w_key(r->w, k); }
static uint8_t *rec_bytes(rec *r, size_t *len) {
    const void *d = proto_writer_data(r->w, len);
    uint8_t *b = xmalloc(*len ? *len : 1);
    memcpy(b, d, *len);
    proto_writer_destroy(&r->w);
    return b;
}

enum { N_HAND = 12 };
typedef struct { uint8_t *b[N_HAND]; size_t len[N_HAND]; } hand_set;

static void build_hand(hand_set *h) {
    rec r;
    int i = 0;
    /* 0: an old-layout record (text third), as written before the text moved last */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 7);
    key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 0);
    key(&r, "text"); proto_w_str(r.w, "some reasoning... #### 12");
    key(&r, "tokens"); proto_w_i64(r.w, 11); key(&r, "time_s"); proto_w_f64(r.w, 0.75);
    key(&r, "finish"); proto_w_str(r.w, "stop"); key(&r, "task"); proto_w_u64(r.w, 4);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 1: no time_s, no tokens (older writers): time_s reads 0 */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 4);
    key(&r, "text"); proto_w_str(r.w, "x"); key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 1);
    key(&r, "finish"); proto_w_str(r.w, "length");
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 2: time_s nil (NaN), finish longer than the field (truncated to 15) */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 5);
    key(&r, "time_s"); proto_w_nil(r.w); key(&r, "s"); proto_w_u64(r.w, 2);
    key(&r, "finish"); proto_w_str(r.w, "a-very-long-finish-reason");
    key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "text"); proto_w_str(r.w, "");
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 3: time_s an integer, tokens an unsigned beyond int64 (reads 0), task negative (reads 0) */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 5);
    key(&r, "task"); proto_w_i64(r.w, -4); key(&r, "tokens"); proto_w_u64(r.w, UINT64_MAX);
    key(&r, "time_s"); proto_w_i64(r.w, 3); key(&r, "s"); proto_w_u64(r.w, 3); key(&r, "p"); proto_w_u64(r.w, 0);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 4: duplicate keys: the first occurrence wins (both readers) */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 6);
    key(&r, "time_s"); proto_w_f64(r.w, 2.5); key(&r, "time_s"); proto_w_f64(r.w, 9.5);
    key(&r, "text"); proto_w_str(r.w, "first"); key(&r, "text"); proto_w_str(r.w, "second, longer");
    key(&r, "s"); proto_w_u64(r.w, 4); key(&r, "p"); proto_w_u64(r.w, 0);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 5: unknown extra keys with nested arrays and maps, and keys that are prefixes of known ones */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 8);
    key(&r, "extra"); proto_w_map(r.w, 2);
    key(&r, "a"); proto_w_array(r.w, 3); proto_w_u64(r.w, 1); proto_w_str(r.w, "two"); proto_w_map(r.w, 1);
    key(&r, "time_s"); proto_w_f64(r.w, 99);
    key(&r, "b"); proto_w_bin(r.w, "\x01\x02", 2);
    key(&r, "time"); proto_w_f64(r.w, 42); key(&r, "tim"); proto_w_f64(r.w, 43);
    key(&r, "time_s"); proto_w_f64(r.w, 0.0625); key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 5);
    key(&r, "finish"); proto_w_str(r.w, "stop"); key(&r, "text"); proto_w_str(r.w, "tail");
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 6: the text as bin (not a string: reads as "" / 0), finish an integer (reads "") */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 5);
    key(&r, "text"); proto_w_bin(r.w, "binary", 6); key(&r, "finish"); proto_w_u64(r.w, 1);
    key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 6); key(&r, "time_s"); proto_w_f64(r.w, 1.5);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 7: an empty map: every field at its default */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 0);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 8: float32 time_s (0xca), str8 key and str16 text (written by other msgpack encoders) */
    {
        util_buf b;
        util_buf_init(&b);
        const uint8_t head[] = {0x84, 0xd9, 0x06, 't', 'i', 'm', 'e', '_', 's', 0xca, 0x3f, 0x40, 0x00, 0x00, /* 0.75f */
                                0xa1, 'p', 0x00, 0xa1, 's', 0x08, 0xa4, 't', 'e', 'x', 't', 0xda, 0x01, 0x00};
        util_buf_append(&b, head, sizeof head);
        for (int k = 0; k < 256; k++) util_buf_append(&b, "z", 1);
        h->len[i] = b.len;
        h->b[i] = xmalloc(b.len);
        memcpy(h->b[i], b.data, b.len);
        util_buf_free(&b);
        i++;
    }
    /* 9: a finish with an embedded NUL: both copy up to the NUL */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 3);
    key(&r, "finish"); proto_w_strn(r.w, "st\0op", 5); key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 9);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
    /* 10: map32 header, p as a negative int (reads 0) */
    {
        const uint8_t raw[] = {0xdf, 0x00, 0x00, 0x00, 0x02, 0xa1, 'p', 0xff, 0xa1, 's', 0x0a};
        h->len[i] = sizeof raw;
        h->b[i] = xmalloc(sizeof raw);
        memcpy(h->b[i], raw, sizeof raw);
        i++;
    }
    /* 11: one key repeated 40 times (more than the light reader's key slots): the first wins */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 42);
    for (int k = 0; k < 40; k++) { key(&r, "time_s"); proto_w_f64(r.w, 100.0 + k); }
    key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 11);
    h->b[i] = rec_bytes(&r, &h->len[i]); i++;
}

static void free_hand(hand_set *h) {
    for (int i = 0; i < N_HAND; i++) free(h->b[i]);
}

TEST(hand_made_records_match) {
    char *d = unit_tmpdir("store_light");
    hand_set h;
    build_hand(&h);
    EXPECT(put_raw_records(d, "generations", (const uint8_t *const *)h.b, h.len, N_HAND) == 0);
    store *s = NULL;
    char err[256];
    EXPECT_MSG(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK, "%s", err);
    if (!s) { free_hand(&h); unit_rmrf(d); free(d); return; }
    both b[N_HAND];
    for (int i = 0; i < N_HAND; i++) {
        b[i] = read_both(s, (uint32_t)i);
        EXPECT_MSG(b[i].full_rc == STORE_OK && b[i].light_rc == STORE_OK, "record %d: full %d light %d (%s)", i,
                   b[i].full_rc, b[i].light_rc, b[i].light_err);
        EXPECT_MSG(same_fields(&b[i].g, &b[i].m), "record %d: time_s %g vs %g, text_len %u vs %u, finish \"%s\" vs \"%s\"",
                   i, b[i].g.time_s, b[i].m.time_s, b[i].g.text_len, b[i].m.text_len, b[i].g.finish, b[i].m.finish);
    }
    /* the values themselves (a mistake shared by both readers fails here) */
    EXPECT(b[0].m.time_s == 0.75 && b[0].m.tokens == 11 && b[0].m.task == 4 && b[0].m.text_len == 25);
    EXPECT_EQ_STR(b[0].m.finish, "stop");
    EXPECT(b[1].m.time_s == 0 && b[1].m.tokens == 0 && b[1].m.s == 1 && b[1].m.text_len == 1);
    EXPECT_EQ_STR(b[1].m.finish, "length");
    EXPECT(isnan(b[2].m.time_s) && b[2].m.s == 2 && b[2].m.text_len == 0);
    EXPECT_EQ_STR(b[2].m.finish, "a-very-long-fin");
    EXPECT(b[3].m.time_s == 3.0 && b[3].m.tokens == 0 && b[3].m.task == 0);
    EXPECT(b[4].m.time_s == 2.5 && b[4].m.text_len == 5);
    EXPECT(b[5].m.time_s == 0.0625 && b[5].m.s == 5 && b[5].m.text_len == 4);
    EXPECT(b[6].m.time_s == 1.5 && b[6].m.text_len == 0);
    EXPECT_EQ_STR(b[6].m.finish, "");
    EXPECT(b[7].m.p == 0 && b[7].m.s == 0 && b[7].m.time_s == 0 && b[7].m.text_len == 0 && b[7].m.finish[0] == 0);
    EXPECT(b[8].m.time_s == 0.75 && b[8].m.s == 8 && b[8].m.text_len == 256);
    EXPECT_EQ_STR(b[9].m.finish, "st");
    EXPECT(b[10].m.p == 0 && b[10].m.s == 10);
    EXPECT(b[11].m.time_s == 100.0 && b[11].m.s == 11);
    store_close(&s);
    free_hand(&h);
    unit_rmrf(d);
    free(d);
}

/* ---- malformed records ---- */

static int starts_with(const char *s, const char *pre) { return strncmp(s, pre, strlen(pre)) == 0; }

TEST(truncated_records_are_corrupt) {
    /* a store-written record, cut at every length */
    store_generation g = {.p = 0, .s = 0, .text = "step one; step two. #### 7", .text_len = 26, .tokens = 8,
                          .time_s = 0.5, .task = 2};
    snprintf(g.finish, sizeof g.finish, "stop");
    char *d0 = unit_tmpdir("store_light");
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d0, 0, 0, &s, err, sizeof err) == STORE_OK);
    if (!s) { unit_rmrf(d0); free(d0); return; }
    store_txn *t;
    store_txn_begin(s, 1, &t, err, sizeof err);
    store_generation_put(t, 1, &g);
    store_txn_commit(&t, err, sizeof err);
    store_close(&s);
    /* read its bytes back with LMDB */
    uint8_t *full = NULL;
    size_t full_len = 0;
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        uint8_t k[16];
        gen_key(k, 1, 0, 0);
        MDB_val key = {16, k}, val;
        mdb_env_create(&env);
        mdb_env_set_maxdbs(env, 16);
        if (mdb_env_open(env, d0, MDB_NOTLS | MDB_RDONLY, 0644) == 0 && mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
            if (mdb_dbi_open(txn, "generations", 0, &dbi) == 0 && mdb_get(txn, dbi, &key, &val) == 0) {
                full_len = val.mv_size;
                full = xmalloc(full_len);
                memcpy(full, val.mv_data, full_len);
            }
            mdb_txn_abort(txn);
        }
        mdb_env_close(env);
    }
    unit_rmrf(d0);
    free(d0);
    EXPECT(full && full_len > 30);
    if (!full) return;
    /* records 0 .. full_len-1: every proper prefix (0 bytes included); the last: the whole */
    int n = (int)full_len + 1;
    uint8_t **bs = xcalloc((size_t)n, sizeof *bs);
    size_t *ls = xcalloc((size_t)n, sizeof *ls);
    for (int i = 0; i < n; i++) { bs[i] = full; ls[i] = i < n - 1 ? (size_t)i : full_len; }
    char *d = unit_tmpdir("store_light");
    EXPECT(put_raw_records(d, "generations", (const uint8_t *const *)bs, ls, n) == 0);
    EXPECT(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK);
    int bad_verdicts = 0, bad_msgs = 0;
    for (int i = 0; s && i < n; i++) {
        both b = read_both(s, (uint32_t)i);
        int want = i < n - 1 ? STORE_ERR_CORRUPT : STORE_OK;
        if (b.light_rc != want || b.full_rc != want) {
            bad_verdicts++;
            printf("  prefix %d: light %d full %d, want %d (%s)\n", i, b.light_rc, b.full_rc, want, b.light_err);
        }
        if (want == STORE_ERR_CORRUPT && (!starts_with(b.light_err, "corrupt record in generations: ") ||
                                          strlen(b.light_err) < 40)) {
            bad_msgs++;
            printf("  prefix %d: unclear error \"%s\"\n", i, b.light_err);
        }
        if (want == STORE_OK) EXPECT(same_fields(&b.g, &b.m) && b.m.time_s == 0.5 && b.m.s == 0 && b.m.text_len == 26);
    }
    EXPECT_EQ_INT(bad_verdicts, 0);
    EXPECT_EQ_INT(bad_msgs, 0);
    /* a walk over a job with a corrupt record stops with STORE_ERR_CORRUPT, no crash */
    if (s) {
        store_txn *rt;
        EXPECT(store_txn_begin(s, 0, &rt, err, sizeof err) == STORE_OK);
        walk_cmp c = {0, 0, NULL, 0};
        EXPECT_EQ_INT(store_generations_meta_each_txn(rt, 1, meta_cmp_cb, &c), STORE_ERR_CORRUPT);
        EXPECT_EQ_INT(c.n, 0);   /* the first record (0 bytes) is already corrupt */
        EXPECT(starts_with(store_last_error(s), "corrupt record in generations: "));
        store_txn_abort(&rt);
    }
    store_close(&s);
    unit_rmrf(d);
    free(d);
    free(bs);
    free(ls);
    free(full);
}

TEST(malformed_records_are_corrupt) {
    /* each must be rejected by both readers */
    static const struct { const char *what; const char *bytes; size_t len; } cases[] = {
        {"top-level array", "\x92\x01\x02", 3},
        {"top-level string", "\xa1x", 2},
        {"trailing byte", "\x81\xa1p\x01\x00", 5},
        {"ext type", "\x81\xa1p\xd4\x01\x02", 6},
        {"map count beyond the bytes", "\xdf\x7f\xff\xff\xff\xa1p\x01", 8},
        {"array count beyond the bytes", "\x81\xa1x\xdd\x7f\xff\xff\xff\x01", 9},
        {"string length beyond the bytes", "\x81\xa4text\xdb\x00\x10\x00\x00" "abc", 14},
        {"non-string key", "\x81\x01\x02", 3},
        {"non-string key in a nested map", "\x81\xa1x\x81\x01\x02", 6},
        {"reserved byte 0xc1", "\x81\xa1p\xc1", 4},
        {"nesting 17 deep",
         "\x81\xa1x\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01", 20},
    };
    int n = (int)(sizeof cases / sizeof cases[0]);
    const uint8_t **bs = xcalloc((size_t)n + 1, sizeof *bs);
    size_t *ls = xcalloc((size_t)n + 1, sizeof *ls);
    for (int i = 0; i < n; i++) { bs[i] = (const uint8_t *)cases[i].bytes; ls[i] = cases[i].len; }
    /* and one that is fine: 16 levels deep is the limit, not over it */
    static const char ok16[] = "\x82\xa1x\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x01\xa1s\x0b";
    bs[n] = (const uint8_t *)ok16;
    ls[n] = sizeof ok16 - 1;
    char *d = unit_tmpdir("store_light");
    EXPECT(put_raw_records(d, "generations", bs, ls, n + 1) == 0);
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK);
    for (int i = 0; s && i < n; i++) {
        both b = read_both(s, (uint32_t)i);
        EXPECT_MSG(b.light_rc == STORE_ERR_CORRUPT && b.full_rc == STORE_ERR_CORRUPT, "%s: light %d full %d",
                   cases[i].what, b.light_rc, b.full_rc);
        EXPECT_MSG(starts_with(b.light_err, "corrupt record in generations: "), "%s: \"%s\"", cases[i].what, b.light_err);
    }
    if (s) {
        both b = read_both(s, (uint32_t)n);
        EXPECT_MSG(b.light_rc == STORE_OK && b.full_rc == STORE_OK, "16 deep: light %d full %d (%s)", b.light_rc,
                   b.full_rc, b.light_err);
        EXPECT(b.m.s == 11 && same_fields(&b.g, &b.m));
    }
    store_close(&s);
    unit_rmrf(d);
    free(d);
    free(bs);
    free(ls);
}

/* xorshift64*: a fixed seed, so failures reproduce */
static uint64_t rng_next(uint64_t *x) {
    *x ^= *x >> 12; *x ^= *x << 25; *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1Dull;
}

TEST(mutated_records_same_verdict) {
    /* byte flips, insertions and deletions on the hand-made records: the light reader must
     * accept exactly what the whole reader accepts, with the same fields */
    hand_set h;
    build_hand(&h);
    enum { N_MUT = 3000 };
    uint8_t **bs = xcalloc(N_MUT, sizeof *bs);
    size_t *ls = xcalloc(N_MUT, sizeof *ls);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < N_MUT; i++) {
        int src = (int)(rng_next(&x) % N_HAND);
        size_t len = h.len[src];
        uint8_t *b = xmalloc(len + 4);
        memcpy(b, h.b[src], len);
        int edits = 1 + (int)(rng_next(&x) % 3);
        for (int e = 0; e < edits && len > 0; e++) {
            size_t at = (size_t)(rng_next(&x) % len);
            int kind = (int)(rng_next(&x) % 4);
            if (kind == 0) b[at] = (uint8_t)rng_next(&x);                       /* random byte */
            else if (kind == 1) b[at] ^= (uint8_t)(1u << (rng_next(&x) % 8));   /* bit flip */
            else if (kind == 2) { memmove(b + at, b + at + 1, len - at - 1); len--; }   /* delete */
            else if (len < h.len[src] + 3) { memmove(b + at + 1, b + at, len - at); b[at] = (uint8_t)rng_next(&x); len++; }
        }
        bs[i] = b;
        ls[i] = len;
    }
    char *d = unit_tmpdir("store_light");
    EXPECT(put_raw_records(d, "generations", (const uint8_t *const *)bs, ls, N_MUT) == 0);
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK);
    int accepted = 0, rejected = 0, disagree = 0;
    for (int i = 0; s && i < N_MUT; i++) {
        both b = read_both(s, (uint32_t)i);
        if (b.light_rc != b.full_rc || (b.light_rc == STORE_OK && !same_fields(&b.g, &b.m))) {
            if (disagree++ < 5) printf("  mutation %d: light %d full %d (%s)\n", i, b.light_rc, b.full_rc, b.light_err);
        } else if (b.light_rc == STORE_OK) {
            accepted++;
        } else if (b.light_rc == STORE_ERR_CORRUPT) {
            rejected++;
        }
    }
    EXPECT_EQ_INT(disagree, 0);
    /* the mutations exercise both sides */
    EXPECT_MSG(accepted > 100 && rejected > 100, "accepted %d rejected %d", accepted, rejected);
    store_close(&s);
    unit_rmrf(d);
    free(d);
    for (int i = 0; i < N_MUT; i++) free(bs[i]);
    free(bs);
    free(ls);
    free_hand(&h);
}

/* ---- scores: the light view, and the generation's time_s they carry ---- */

/* the whole read still has the PRM steps of score (5, 1) */
static int full_steps_ok(store_txn *t) {
    store_score sc;
    return store_score_get(t, 1, 5, 1, &sc) == STORE_OK && sc.n_steps == 2 && sc.steps[0] == 0.5 && isnan(sc.steps[1]);
}

static int same_score(const store_score *a, const store_score_meta *m) {
    return a->p == m->p && a->s == m->s && strlen(a->canonical) == m->canonical_len &&
           memcmp(a->canonical, m->canonical, m->canonical_len) == 0 && a->correct == m->correct &&
           (a->reward == m->reward || (isnan(a->reward) && isnan(m->reward)));
}

TEST(scores_carry_time) {
    char *d = unit_tmpdir("store_light");
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK);
    if (!s) { unit_rmrf(d); free(d); return; }
    store_txn *t;
    EXPECT(store_txn_begin(s, 1, &t, err, sizeof err) == STORE_OK);
    const double times[3] = {0.375, NAN, 0};
    for (uint32_t i = 0; i < 3; i++) {   /* generations for s 0..2; none for s 3 */
        store_generation g = {.p = 5, .s = i, .text = "t", .text_len = 1, .time_s = times[i]};
        EXPECT_EQ_INT(store_generation_put(t, 1, &g), 1);
    }
    double steps[2] = {0.5, NAN};
    store_score sc[4] = {
        {.p = 5, .s = 0, .extracted = "42", .canonical = "42", .correct = 1, .reward = 0.9},
        {.p = 5, .s = 1, .extracted = "x", .canonical = "", .correct = 0, .reward = NAN, .steps = steps, .n_steps = 2},
        {.p = 5, .s = 2, .extracted = "", .canonical = "\\frac{1}{2}", .correct = 1, .reward = -1},
        {.p = 5, .s = 3, .extracted = "7", .canonical = "7", .correct = 0, .reward = NAN},
    };
    for (int i = 0; i < 4; i++) EXPECT_EQ_INT(store_score_put(t, 1, &sc[i]), 1);
    EXPECT(store_txn_commit(&t, err, sizeof err) == STORE_OK);
    EXPECT(store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK);
    for (uint32_t i = 0; i < 4; i++) {
        store_score full;
        store_score_meta m;
        EXPECT_EQ_INT(store_score_get(t, 1, 5, i, &full), STORE_OK);
        EXPECT_EQ_INT(store_score_meta_get(t, 1, 5, i, &m), STORE_OK);
        EXPECT_MSG(same_score(&full, &m), "score %u", i);
        EXPECT_MSG(same_score(&sc[i], &m), "score %u vs written", i);
        if (i < 3) {
            EXPECT_MSG(m.has_time_s == 1 && (m.time_s == times[i] || (isnan(times[i]) && isnan(m.time_s))),
                       "score %u: has %d time %g", i, m.has_time_s, m.time_s);
        } else {
            EXPECT_MSG(m.has_time_s == 0 && isnan(m.time_s), "score %u (no generation): has %d", i, m.has_time_s);
        }
    }
    EXPECT_EQ_INT(full_steps_ok(t), 1);
    store_txn_abort(&t);
    /* a rescore (replace) keeps the time: it is the generation's, read again */
    EXPECT(store_txn_begin(s, 1, &t, err, sizeof err) == STORE_OK);
    store_score re = {.p = 5, .s = 0, .extracted = "41", .canonical = "41", .correct = 0, .reward = NAN};
    EXPECT_EQ_INT(store_score_replace(t, 1, &re), STORE_OK);
    store_score_meta m0;
    EXPECT_EQ_INT(store_score_meta_get(t, 1, 5, 0, &m0), STORE_OK);
    EXPECT(m0.has_time_s == 1 && m0.time_s == 0.375 && m0.correct == 0 && m0.canonical_len == 2);
    EXPECT_EQ_INT(store_score_meta_get(t, 1, 5, 9, &m0), STORE_ERR_NOTFOUND);
    store_txn_abort(&t);
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

TEST(old_and_odd_score_records) {
    rec r;
    uint8_t *b[4];
    size_t len[4];
    /* 0: as written before scores carried time_s (text order of that version), with steps */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 7);
    key(&r, "p"); proto_w_u64(r.w, 0); key(&r, "s"); proto_w_u64(r.w, 0);
    key(&r, "extracted"); proto_w_str(r.w, "12"); key(&r, "canonical"); proto_w_str(r.w, "12");
    key(&r, "correct"); proto_w_i64(r.w, 1); key(&r, "reward"); proto_w_nil(r.w);
    key(&r, "steps"); proto_w_array(r.w, 2); proto_w_f64(r.w, 0.25); proto_w_nil(r.w);
    b[0] = rec_bytes(&r, &len[0]);
    /* 1: time_s not a number (ignored: has_time_s 0), canonical with an embedded NUL */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 5);
    key(&r, "time_s"); proto_w_str(r.w, "soon"); key(&r, "canonical"); proto_w_strn(r.w, "a\0b", 3);
    key(&r, "s"); proto_w_u64(r.w, 1); key(&r, "correct"); proto_w_u64(r.w, 1); key(&r, "reward"); proto_w_f64(r.w, 0.5);
    b[1] = rec_bytes(&r, &len[1]);
    /* 2: time_s nil (a nil generation time), reward an integer */
    r.w = proto_writer_new(NULL, 0);
    proto_w_map(r.w, 4);
    key(&r, "s"); proto_w_u64(r.w, 2); key(&r, "time_s"); proto_w_nil(r.w); key(&r, "reward"); proto_w_i64(r.w, -2);
    key(&r, "canonical"); proto_w_str(r.w, "x");
    b[2] = rec_bytes(&r, &len[2]);
    /* 3: record 0 cut short */
    b[3] = xmalloc(len[0]);
    memcpy(b[3], b[0], len[0]);
    len[3] = len[0] - 3;
    char *d = unit_tmpdir("store_light");
    EXPECT(put_raw_records(d, "scores", (const uint8_t *const *)b, len, 4) == 0);
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK);
    store_txn *t = NULL;
    if (s) EXPECT(store_txn_begin(s, 0, &t, err, sizeof err) == STORE_OK);
    if (t) {
        store_score full;
        store_score_meta m[3];
        for (uint32_t i = 0; i < 3; i++) {
            EXPECT_EQ_INT(store_score_get(t, 1, 0, i, &full), STORE_OK);
            EXPECT_EQ_INT(store_score_meta_get(t, 1, 0, i, &m[i]), STORE_OK);
            EXPECT_MSG(full.p == m[i].p && full.s == m[i].s && full.correct == m[i].correct &&
                       strncmp(full.canonical, m[i].canonical, m[i].canonical_len) == 0 &&
                       (full.reward == m[i].reward || (isnan(full.reward) && isnan(m[i].reward))), "score %u", i);
        }
        EXPECT(m[0].has_time_s == 0 && isnan(m[0].time_s) && isnan(m[0].reward) && m[0].correct == 1 && m[0].canonical_len == 2);
        EXPECT(m[1].has_time_s == 0 && m[1].correct == 1 && m[1].reward == 0.5 && m[1].canonical_len == 3);
        EXPECT(m[2].has_time_s == 1 && isnan(m[2].time_s) && m[2].reward == -2 && m[2].correct == 0);
        EXPECT_EQ_INT(store_score_get(t, 1, 0, 3, &full), STORE_ERR_CORRUPT);
        EXPECT_EQ_INT(store_score_meta_get(t, 1, 0, 3, &m[0]), STORE_ERR_CORRUPT);
        EXPECT(starts_with(store_last_error(s), "corrupt record in scores: "));
        store_txn_abort(&t);
    }
    store_close(&s);
    unit_rmrf(d);
    free(d);
    for (int i = 0; i < 4; i++) free(b[i]);
}

/* ---- the aggregate payload's time_s ---- */

static double want_time(uint64_t job, uint32_t p, uint32_t s) { return 0.25 * (double)(p * 4 + s + 1) + (double)job; }

/* job: 3 problems x 4 samples; every generation but (1, 2) unless all_gens; scores for
 * problems 0 and 1 only;
 * scores_first: the scores are written before the generations (so they carry no time_s, as
 * scores of older stores). */
typedef struct { uint64_t job; int scores_first, all_gens; } agg_fill;

static int put_agg_scores(store_txn *t, uint64_t job) {
    for (uint32_t p = 0; p < 2; p++)
        for (uint32_t s = 0; s < 4; s++) {
            store_score sc = {.p = p, .s = s, .extracted = "1", .canonical = "1", .correct = s % 2, .reward = NAN};
            if (store_score_put(t, job, &sc) < 0) return -1;
        }
    return 0;
}
static int fill_agg_job(store_txn *t, void *ctx) {
    const agg_fill *f = ctx;
    store_job j = {0};
    j.id = f->job;
    snprintf(j.name, sizeof j.name, "light-%llu", (unsigned long long)f->job);
    snprintf(j.state, sizeof j.state, "running");
    j.n_problems = 3;
    j.n_samples = 4;
    j.spec_json = "{}";
    int rc = store_job_put(t, &j);
    if (!rc && f->scores_first) rc = put_agg_scores(t, f->job);
    for (uint32_t p = 0; !rc && p < 3; p++) {
        store_problem pr = {.p = p, .id = "x", .question = "q", .solution = "", .answer = "1", .subject = "", .level = 0};
        rc = store_problem_put(t, f->job, &pr);
        for (uint32_t s = 0; !rc && s < 4; s++) {
            if (p == 1 && s == 2 && !f->all_gens) continue;   /* a missing generation: its time reads NaN */
            char text[64];
            snprintf(text, sizeof text, "p%u s%u #### 1", p, s);
            store_generation g = {.p = p, .s = s, .text = text, .text_len = (uint32_t)strlen(text), .tokens = 4,
                                  .time_s = want_time(f->job, p, s)};
            if (store_generation_put(t, f->job, &g) < 0) return -1;
        }
    }
    if (!rc && !f->scores_first) rc = put_agg_scores(t, f->job);
    return rc;
}

/* Builds job's aggregate payload and checks its time_s arrays (NaN for (1, 2) when gap);
 * returns payload_write's code. */
static int check_payload_times(store *s, uint64_t job_id, int gap) {
    store_txn *t;
    store_job job;
    char err[256];
    if (store_txn_begin(s, 0, &t, err, sizeof err)) return -100;
    if (store_job_get(t, job_id, &job)) { store_txn_abort(&t); return -101; }
    store_task task = {.id = 50, .job = job_id, .kind = BRK_KIND_AGGREGATE, .final = 0};
    proto_writer *w = proto_writer_new(NULL, 0);
    int rc = payload_write(t, &job, &task, w);
    size_t n;
    const void *data = proto_writer_data(w, &n);
    proto_msg *m = NULL;
    if (rc == STORE_OK) EXPECT_EQ_INT(proto_parse_value(data, n, &m, err, sizeof err), PROTO_OK);
    const proto_val *probs = m ? proto_get_array(proto_root(m), "problems") : NULL;
    if (rc == STORE_OK) EXPECT_MSG(probs && probs->v.arr.n == 2, "job %llu", (unsigned long long)job_id);  /* scored problems */
    for (uint32_t i = 0; probs && i < probs->v.arr.n; i++) {
        const proto_val *pv = &probs->v.arr.items[i];
        uint64_t p = 99;
        proto_get_u64(pv, "p", &p);
        EXPECT_EQ_INT(p, i);
        const proto_val *ts = proto_get_array(pv, "time_s");
        const proto_val *co = proto_get_array(pv, "correct");
        EXPECT(ts && ts->v.arr.n == 4 && co && co->v.arr.n == 4);
        for (uint32_t si = 0; ts && si < ts->v.arr.n && si < 4; si++) {
            double got = ts->v.arr.items[si].type == PV_FLOAT ? ts->v.arr.items[si].v.f : -1;
            if (p == 1 && si == 2 && gap) EXPECT_MSG(isnan(got), "job %llu p1 s2: no generation gives %g, want NaN", (unsigned long long)job_id, got);
            else EXPECT_MSG(got == want_time(job_id, (uint32_t)p, si), "job %llu p%u s%u: %g, want %g", (unsigned long long)job_id,
                            (unsigned)p, si, got, want_time(job_id, (uint32_t)p, si));
            if (co && si < co->v.arr.n) EXPECT_EQ_INT(co->v.arr.items[si].v.u, si % 2);
        }
    }
    proto_msg_destroy(&m);
    proto_writer_destroy(&w);
    store_job_free(&job);
    store_txn_abort(&t);
    return rc;
}

TEST(aggregate_payload_times) {
    char *d = unit_tmpdir("store_light");
    store *s = NULL;
    char err[256];
    EXPECT(store_open(d, 0, 0, &s, err, sizeof err) == STORE_OK);
    if (!s) { unit_rmrf(d); free(d); return; }
    agg_fill f1 = {1, 0, 0}, f2 = {2, 1, 0}, f3 = {3, 0, 1};
    EXPECT_EQ_INT(store_write(s, fill_agg_job, &f1, err, sizeof err), STORE_OK);
    EXPECT_EQ_INT(store_write(s, fill_agg_job, &f2, err, sizeof err), STORE_OK);
    EXPECT_EQ_INT(store_write(s, fill_agg_job, &f3, err, sizeof err), STORE_OK);
    /* job 1: one score without a generation (so without time_s): the generations fill in */
    EXPECT_EQ_INT(check_payload_times(s, 1, 1), STORE_OK);
    /* job 2: scores from before their generations (an older store's): all times from the generations */
    EXPECT_EQ_INT(check_payload_times(s, 2, 1), STORE_OK);
    /* job 3: complete, every score carries its time */
    EXPECT_EQ_INT(check_payload_times(s, 3, 0), STORE_OK);
    store_close(&s);
    /* spoil generation (3, 0, 0) and (2, 0, 0): job 3's scores carry every time, so its payload
     * never reads the generations; job 2 needs them and reports the corrupt record */
    {
        MDB_env *env;
        MDB_txn *txn;
        MDB_dbi dbi;
        int rc = mdb_env_create(&env);
        mdb_env_set_maxdbs(env, 16);
        if (!rc) rc = mdb_env_open(env, d, MDB_NOTLS, 0644);
        if (!rc) rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (!rc) rc = mdb_dbi_open(txn, "generations", 0, &dbi);
        for (uint64_t job = 2; !rc && job <= 3; job++) {
            uint8_t k[16];
            gen_key(k, job, 0, 0);
            MDB_val key = {16, k}, val = {3, "\x92\x01\x02"};
            rc = mdb_put(txn, dbi, &key, &val, 0);
        }
        if (!rc) rc = mdb_txn_commit(txn);
        mdb_env_close(env);
        EXPECT_EQ_INT(rc, 0);
    }
    EXPECT(store_open(d, 1, 0, &s, err, sizeof err) == STORE_OK);
    if (s) {
        EXPECT_EQ_INT(check_payload_times(s, 3, 0), STORE_OK);
        EXPECT_EQ_INT(check_payload_times(s, 2, 1), STORE_ERR_CORRUPT);
        EXPECT(starts_with(store_last_error(s), "corrupt record in generations: "));
    }
    store_close(&s);
    unit_rmrf(d);
    free(d);
}

int main(void) {
    RUN(store_written_records_match);
    RUN(hand_made_records_match);
    RUN(truncated_records_are_corrupt);
    RUN(malformed_records_are_corrupt);
    RUN(mutated_records_same_verdict);
    RUN(scores_carry_time);
    RUN(old_and_odd_score_records);
    RUN(aggregate_payload_times);
    return unit_summary();
}
