/* tests/unit/test_proto.c — the wire codec: round trips, every error class, a seeded mutation
 * fuzzer over proto_parse, and the ZeroMQ framing over inproc ROUTER/DEALER sockets.
 * Bodies for the error cases are written byte by byte (independently of proto_writer).
 */
#include "unit.h"

#include "common/util.h"
#include "jobs/proto.h"

#include <stdint.h>
#include <zmq.h>

static proto_writer *sample_msg(void) {
    proto_writer *w = proto_writer_new("result", 5);
    proto_w_key(w, "task"); proto_w_u64(w, 42);
    proto_w_key(w, "attempt"); proto_w_i64(w, -7);
    proto_w_key(w, "final"); proto_w_bool(w, 1);
    proto_w_key(w, "outputs");
    proto_w_array(w, 2);
    for (int i = 0; i < 2; i++) {
        proto_w_map(w, 4);
        proto_w_key(w, "p"); proto_w_u64(w, (uint64_t)i);
        proto_w_key(w, "text"); proto_w_str(w, i ? "two\nlines \"q\"" : "");
        proto_w_key(w, "time_s"); proto_w_f64(w, 0.25 * i);
        proto_w_key(w, "blob"); proto_w_bin(w, "\x00\x01\xff", 3);
    }
    proto_w_key(w, "telemetry"); proto_w_map(w, 1); proto_w_key(w, "none"); proto_w_nil(w);
    return w;
}

TEST(roundtrip) {
    proto_writer *w = sample_msg();
    size_t n;
    const void *d = proto_writer_data(w, &n);
    proto_msg *m = NULL;
    char err[256] = "";
    int rc = proto_parse(d, n, &m, err, sizeof err);
    EXPECT_MSG(rc == PROTO_OK, "%s", err);
    if (rc) { proto_writer_destroy(&w); return; }
    EXPECT_EQ_STR(proto_cmd(m), "result");
    const proto_val *r = proto_root(m);
    uint64_t u; int64_t i; int b; double f;
    EXPECT(proto_get_u64(r, "task", &u) == 0 && u == 42);
    EXPECT(proto_get_i64(r, "attempt", &i) == 0 && i == -7);
    EXPECT(proto_get_u64(r, "attempt", &u) == -1);      /* negative is out of range for u64 */
    EXPECT(proto_get_bool(r, "final", &b) == 0 && b == 1);
    EXPECT(proto_get_str(r, "task", NULL, NULL) == -1);   /* wrong type */
    EXPECT(proto_get(r, "missing") == NULL);
    const proto_val *outs = proto_get_array(r, "outputs");
    EXPECT(outs && outs->v.arr.n == 2);
    if (outs && outs->v.arr.n == 2) {
        const char *s; uint32_t sl;
        EXPECT(proto_get_str(&outs->v.arr.items[1], "text", &s, &sl) == 0);
        EXPECT_EQ_STR(s, "two\nlines \"q\"");
        EXPECT_EQ_INT(sl, 13);
        EXPECT(proto_get_f64(&outs->v.arr.items[1], "time_s", &f) == 0 && f == 0.25);
        EXPECT(proto_get_f64(&outs->v.arr.items[1], "p", &f) == 0 && f == 1.0);  /* int -> float */
        const proto_val *bl = proto_get(&outs->v.arr.items[0], "blob");
        EXPECT(bl && bl->type == PV_BIN && bl->v.bin.len == 3 && bl->v.bin.ptr[2] == 0xff);
    }
    /* re-encode with proto_w_val: the bytes are identical */
    proto_writer *w2 = proto_writer_new(NULL, 0);
    proto_w_val(w2, r);
    size_t n2;
    const void *d2 = proto_writer_data(w2, &n2);
    EXPECT(n2 == n && memcmp(d, d2, n) == 0);
    /* JSON rendering */
    util_buf js; util_buf_init(&js);
    proto_val_to_json(proto_get(r, "outputs"), &js);
    EXPECT_EQ_STR(js.data, "[{\"p\":0,\"text\":\"\",\"time_s\":0,\"blob\":\"0001ff\"},"
                           "{\"p\":1,\"text\":\"two\\nlines \\\"q\\\"\",\"time_s\":0.25,\"blob\":\"0001ff\"}]");
    util_buf_free(&js);
    proto_writer_destroy(&w2);
    proto_msg_destroy(&m);
    EXPECT(m == NULL);
    proto_writer_destroy(&w);
    EXPECT(w == NULL);
}

/* Builds {"v":1,"cmd":"x", ...} by hand and appends tail bytes as the last value of key "z". */
static size_t hand_body(uint8_t *buf, const uint8_t *tail, size_t tl) {
    size_t n = 0;
    buf[n++] = 0x83;
    buf[n++] = 0xa1; buf[n++] = 'v'; buf[n++] = 0x01;
    buf[n++] = 0xa3; memcpy(buf + n, "cmd", 3); n += 3; buf[n++] = 0xa1; buf[n++] = 'x';
    buf[n++] = 0xa1; buf[n++] = 'z';
    memcpy(buf + n, tail, tl);
    return n + tl;
}

static int parse_rc(const void *b, size_t n, char *err, size_t el) {
    proto_msg *m = NULL;
    int rc = proto_parse(b, n, &m, err, el);
    proto_msg_destroy(&m);
    return rc;
}

TEST(errors) {
    uint8_t buf[256];
    char err[256];
    /* huge declared map count in 5 bytes: rejected before allocating anything */
    const uint8_t bigmap[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
    EXPECT_EQ_INT(parse_rc(bigmap, sizeof bigmap, err, sizeof err), PROTO_ERR_COUNT);
    EXPECT_MSG(strstr(err, "map count") != NULL, "%s", err);
    const uint8_t bigarr[] = {0xdd, 0x10, 0, 0, 0, 0xc0};
    size_t n = hand_body(buf, bigarr, sizeof bigarr);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_COUNT);
    /* truncated string */
    const uint8_t trunc[] = {0xd9, 0x20, 'a', 'b'};
    n = hand_body(buf, trunc, sizeof trunc);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_TRUNCATED);
    /* ext type is unsupported */
    const uint8_t ext[] = {0xd4, 0x01, 0x02};
    n = hand_body(buf, ext, sizeof ext);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_TYPE);
    /* 0xc1 never used */
    const uint8_t c1[] = {0xc1};
    n = hand_body(buf, c1, 1);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_TYPE);
    /* nesting deeper than the cap */
    uint8_t deep[64];
    for (int i = 0; i < 40; i++) deep[i] = 0x91;
    deep[40] = 0xc0;
    n = hand_body(buf, deep, 41);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_DEPTH);
    /* nesting exactly at the cap is fine: root map is depth 0, value of z depth 1 */
    for (int i = 0; i < PROTO_MAX_DEPTH - 1; i++) deep[i] = 0x91;
    deep[PROTO_MAX_DEPTH - 1] = 0xc0;
    n = hand_body(buf, deep, PROTO_MAX_DEPTH);
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_OK);
    /* trailing bytes */
    const uint8_t ok1[] = {0xc0};
    n = hand_body(buf, ok1, 1);
    buf[n++] = 0x00;
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_TRAILING);
    /* not a map */
    const uint8_t arr[] = {0x91, 0x01};
    EXPECT_EQ_INT(parse_rc(arr, sizeof arr, err, sizeof err), PROTO_ERR_NOT_MAP);
    /* wrong version, missing version */
    n = hand_body(buf, ok1, 1);
    buf[3] = 0x02;
    EXPECT_EQ_INT(parse_rc(buf, n, err, sizeof err), PROTO_ERR_VERSION);
    const uint8_t nov[] = {0x81, 0xa3, 'c', 'm', 'd', 0xa1, 'x'};
    EXPECT_EQ_INT(parse_rc(nov, sizeof nov, err, sizeof err), PROTO_ERR_VERSION);
    /* cmd not a string */
    const uint8_t badcmd[] = {0x82, 0xa1, 'v', 0x01, 0xa3, 'c', 'm', 'd', 0x05};
    EXPECT_EQ_INT(parse_rc(badcmd, sizeof badcmd, err, sizeof err), PROTO_ERR_FIELD);
    /* non-string map key */
    const uint8_t intkey[] = {0x81, 0x01, 0x02};
    EXPECT_EQ_INT(parse_rc(intkey, sizeof intkey, err, sizeof err), PROTO_ERR_TYPE);
    /* empty body */
    EXPECT_EQ_INT(parse_rc("", 0, err, sizeof err), PROTO_ERR_TRUNCATED);
    /* too big (length check happens before reading) */
    EXPECT_EQ_INT(parse_rc(buf, (size_t)PROTO_MAX_BODY + 1, err, sizeof err), PROTO_ERR_TOO_BIG);
    /* every error code has a name */
    for (int c = PROTO_ERR_SOCKET; c <= 0; c++) EXPECT(strcmp(proto_strerror(c), "unknown proto error") != 0);
}

TEST(value_parse_and_ints) {
    /* all integer encodings */
    const uint8_t ints[] = {0x97, 0xcc, 0xff, 0xcd, 0x01, 0x00, 0xd0, 0x80, 0xd1, 0xff, 0x00,
                            0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe0, 0xca, 0x3f, 0xc0, 0x00, 0x00};
    proto_msg *m = NULL;
    char err[128];
    EXPECT_EQ_INT(proto_parse_value(ints, sizeof ints, &m, err, sizeof err), PROTO_OK);
    if (!m) return;
    const proto_val *a = proto_root(m);
    EXPECT(a->type == PV_ARRAY && a->v.arr.n == 7);
    EXPECT(a->v.arr.items[0].type == PV_UINT && a->v.arr.items[0].v.u == 255);
    EXPECT(a->v.arr.items[1].v.u == 256);
    EXPECT(a->v.arr.items[2].type == PV_INT && a->v.arr.items[2].v.i == -128);
    EXPECT(a->v.arr.items[3].v.i == -256);
    EXPECT(a->v.arr.items[4].v.u == UINT64_MAX);
    EXPECT(a->v.arr.items[5].v.i == -32);
    EXPECT(a->v.arr.items[6].type == PV_FLOAT && a->v.arr.items[6].v.f == 1.5);
    proto_msg_destroy(&m);
}

/* xorshift64*: deterministic fuzz input */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Walks a parsed tree touching every value (so ASan sees any bad pointer). */
static size_t touch(const proto_val *v) {
    size_t s = 1;
    switch (v->type) {
    case PV_STR: s += strlen(v->v.str.ptr) <= v->v.str.len; break;
    case PV_BIN: for (uint32_t i = 0; i < v->v.bin.len; i++) s += v->v.bin.ptr[i] & 1; break;
    case PV_ARRAY: for (uint32_t i = 0; i < v->v.arr.n; i++) s += touch(&v->v.arr.items[i]); break;
    case PV_MAP:
        for (uint32_t i = 0; i < v->v.map.n; i++) {
            s += strlen(v->v.map.keys[i]) <= v->v.map.key_lens[i];
            s += touch(&v->v.map.vals[i]);
        }
        break;
    default: break;
    }
    return s;
}

TEST(fuzz_mutations) {
    proto_writer *w = sample_msg();
    size_t base_n;
    const uint8_t *base = proto_writer_data(w, &base_n);
    uint8_t *buf = xmalloc(base_n + 64);
    int n_ok = 0, n_err = 0, n_bad_rc = 0;
    const int iters = 20000;
    for (int it = 0; it < iters; it++) {
        size_t n;
        int mode = (int)(rnd() % 4);
        if (mode == 0) {                     /* pure random bytes, random length */
            n = rnd() % 48;
            for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rnd();
        } else {
            memcpy(buf, base, base_n);
            n = base_n;
            int muts = 1 + (int)(rnd() % 4);
            for (int k = 0; k < muts; k++) {
                size_t pos = rnd() % n;
                switch (rnd() % 4) {
                case 0: buf[pos] ^= (uint8_t)(1u << (rnd() % 8)); break;           /* bit flip */
                case 1: buf[pos] = (uint8_t)rnd(); break;                           /* byte */
                case 2: n = pos + 1; break;                                         /* truncate */
                case 3: {                                                           /* count-ish */
                    static const uint8_t hdr[] = {0xdc, 0xdd, 0xde, 0xdf, 0xdb, 0xc6, 0x9f, 0x8f};
                    buf[pos] = hdr[rnd() % sizeof hdr];
                    break;
                }
                }
            }
        }
        proto_msg *m = NULL;
        char err[256] = "";
        int rc = proto_parse(buf, n, &m, err, sizeof err);
        if (rc == PROTO_OK) {
            n_ok++;
            EXPECT(m != NULL && proto_cmd(m)[0] != 0);
            if (m) touch(proto_root(m));
        } else {
            n_err++;
            if (m != NULL || rc < PROTO_ERR_SOCKET || err[0] == 0) n_bad_rc++;
        }
        proto_msg_destroy(&m);
    }
    EXPECT_EQ_INT(n_bad_rc, 0);
    EXPECT(n_ok + n_err == iters);
    EXPECT(n_err > iters / 4);   /* the fuzzer really produces malformed input */
    printf("  fuzz: %d parsed, %d rejected\n", n_ok, n_err);
    free(buf);
    proto_writer_destroy(&w);
}

TEST(sockets) {
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 2000;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    EXPECT(zmq_bind(router, "inproc://t") == 0);
    EXPECT(zmq_connect(dealer, "inproc://t") == 0);
    char err[256];
    uint8_t id[256];
    size_t idl = 0;
    proto_msg *m = NULL;

    /* good message */
    proto_writer *w = proto_writer_new("ready", 1);
    proto_w_key(w, "credit"); proto_w_u64(w, 3);
    EXPECT(proto_send(dealer, NULL, 0, w, 0) == 0);
    int rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_MSG(rc == PROTO_OK, "%s", err);
    EXPECT(idl > 0);
    if (m) EXPECT_EQ_STR(proto_cmd(m), "ready");
    proto_msg_destroy(&m);
    /* reply routed back by identity */
    EXPECT(proto_send(router, id, idl, w, 0) == 0);
    rc = proto_recv(dealer, 0, NULL, 0, NULL, &m, 0, err, sizeof err);
    EXPECT(rc == PROTO_OK);
    proto_msg_destroy(&m);
    proto_writer_destroy(&w);

    /* bad signature, then a valid message: the bad one is drained completely */
    zmq_send(dealer, "XX", 2, ZMQ_SNDMORE);
    zmq_send(dealer, "\x80", 1, 0);
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_EQ_INT(rc, PROTO_ERR_FRAMES);
    EXPECT(m == NULL);
    /* one frame only */
    zmq_send(dealer, "TF", 2, 0);
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_EQ_INT(rc, PROTO_ERR_FRAMES);
    /* too many frames */
    zmq_send(dealer, "TF", 2, ZMQ_SNDMORE);
    zmq_send(dealer, "\x80", 1, ZMQ_SNDMORE);
    zmq_send(dealer, "\x80", 1, 0);
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_EQ_INT(rc, PROTO_ERR_FRAMES);
    /* garbage body */
    zmq_send(dealer, "TF", 2, ZMQ_SNDMORE);
    zmq_send(dealer, "\xdf\xff\xff\xff\xff", 5, 0);
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_EQ_INT(rc, PROTO_ERR_COUNT);
    /* and the socket still works */
    w = proto_writer_new("heartbeat", 0);
    proto_send(dealer, NULL, 0, w, 0);
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, 0, err, sizeof err);
    EXPECT_EQ_INT(rc, PROTO_OK);
    proto_msg_destroy(&m);
    /* nothing pending -> 1 */
    rc = proto_recv(router, 1, id, sizeof id, &idl, &m, ZMQ_DONTWAIT, err, sizeof err);
    EXPECT_EQ_INT(rc, 1);
    proto_writer_destroy(&w);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

int main(void) {
    RUN(roundtrip);
    RUN(errors);
    RUN(value_parse_and_ints);
    RUN(fuzz_mutations);
    RUN(sockets);
    return unit_summary();
}
