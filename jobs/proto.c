/* jobs/proto.c — the wire codec of jobs/proto.h: a bounded two-pass msgpack reader, a writer
 * over msgpack-c's packer, and the ZeroMQ multipart framing.
 *
 * Parsing never trusts a declared count: pass 1 walks the body checking every length against
 * the bytes left, the nesting depth, the node budget and the key types, and sums the memory the
 * tree needs; pass 2 builds the tree into one arena of exactly that size (strings copied and
 * NUL-terminated). msgpack_unpack is deliberately not used (it allocates declared counts up
 * front and caps nesting by failing with NOMEM).
 */
#include "jobs/proto.h"

#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

const char *proto_strerror(int rc) {
    switch (rc) {
    case PROTO_OK: return "ok";
    case PROTO_ERR_TRUNCATED: return "truncated body";
    case PROTO_ERR_TYPE: return "unsupported or wrong type";
    case PROTO_ERR_DEPTH: return "nesting too deep";
    case PROTO_ERR_COUNT: return "declared count exceeds the body";
    case PROTO_ERR_TOO_BIG: return "body too big";
    case PROTO_ERR_TRAILING: return "trailing bytes after the body";
    case PROTO_ERR_NOT_MAP: return "body is not a map";
    case PROTO_ERR_VERSION: return "protocol version mismatch";
    case PROTO_ERR_FIELD: return "missing or mistyped field";
    case PROTO_ERR_FRAMES: return "bad frames";
    case PROTO_ERR_SOCKET: return "socket error";
    default: return "unknown proto error";
    }
}

/* ======================================================================= reader */

struct proto_msg {
    char *arena;          /* one allocation holding every node, key table and string */
    size_t arena_bytes;
    proto_val *root;
    const char *cmd;
};

typedef struct {
    const uint8_t *p;     /* body */
    size_t len, off;
    int build;            /* 0 = measuring pass, 1 = building pass */
    size_t nodes;         /* pass 1: values seen */
    size_t need;          /* pass 1: arena bytes needed */
    char *arena;          /* pass 2: arena and bump offset */
    size_t aoff;
    char *err;
    size_t errlen;
} rd;

#define ALIGN8(x) (((x) + 7u) & ~(size_t)7u)

static void *arena_take(rd *r, size_t n) {
    void *p = r->arena + r->aoff;
    r->aoff += ALIGN8(n);
    return p;
}

static int need_bytes(rd *r, size_t n, const char *what) {
    if (r->len - r->off < n) {
        util_err(r->err, r->errlen, "body: %s needs %zu bytes, %zu left at offset %zu",
                 what, n, r->len - r->off, r->off);
        return PROTO_ERR_TRUNCATED;
    }
    return 0;
}

static uint64_t be(const uint8_t *p, int n) {
    uint64_t x = 0;
    for (int i = 0; i < n; i++) x = (x << 8) | p[i];
    return x;
}

static int read_val(rd *r, proto_val *out, int depth);

/* Reads a length-prefixed string/bin of len bytes at r->off. */
static int read_bytes(rd *r, proto_val *out, uint32_t n, int is_str) {
    int rc = need_bytes(r, n, is_str ? "string" : "bin");
    if (rc) return rc;
    if (r->build) {
        char *c = arena_take(r, (size_t)n + 1);
        memcpy(c, r->p + r->off, n);
        c[n] = 0;
        if (is_str) { out->type = PV_STR; out->v.str.ptr = c; out->v.str.len = n; }
        else { out->type = PV_BIN; out->v.bin.ptr = (const uint8_t *)c; out->v.bin.len = n; }
    } else {
        r->need += ALIGN8((size_t)n + 1);
    }
    r->off += n;
    return 0;
}

static int read_array(rd *r, proto_val *out, uint32_t n, int depth) {
    if (n > r->len - r->off) {
        util_err(r->err, r->errlen, "body: array count %u exceeds remaining %zu bytes at offset %zu",
                 n, r->len - r->off, r->off);
        return PROTO_ERR_COUNT;
    }
    proto_val *items = NULL;
    if (r->build) {
        items = arena_take(r, sizeof(proto_val) * (size_t)n);
        out->type = PV_ARRAY; out->v.arr.items = items; out->v.arr.n = n;
    } else {
        r->need += ALIGN8(sizeof(proto_val) * (size_t)n);
    }
    proto_val scratch;
    for (uint32_t i = 0; i < n; i++) {
        int rc = read_val(r, r->build ? &items[i] : &scratch, depth + 1);
        if (rc) return rc;
    }
    return 0;
}

static int read_map(rd *r, proto_val *out, uint32_t n, int depth) {
    if (n > (r->len - r->off) / 2) {
        util_err(r->err, r->errlen, "body: map count %u exceeds remaining %zu bytes at offset %zu",
                 n, r->len - r->off, r->off);
        return PROTO_ERR_COUNT;
    }
    const char **keys = NULL;
    uint32_t *klens = NULL;
    proto_val *vals = NULL;
    if (r->build) {
        keys = arena_take(r, sizeof(char *) * (size_t)n);
        klens = arena_take(r, sizeof(uint32_t) * (size_t)n);
        vals = arena_take(r, sizeof(proto_val) * (size_t)n);
        out->type = PV_MAP; out->v.map.keys = keys; out->v.map.key_lens = klens;
        out->v.map.vals = vals; out->v.map.n = n;
    } else {
        r->need += ALIGN8(sizeof(char *) * (size_t)n) + ALIGN8(sizeof(uint32_t) * (size_t)n) +
                   ALIGN8(sizeof(proto_val) * (size_t)n);
    }
    proto_val key, scratch;
    for (uint32_t i = 0; i < n; i++) {
        size_t koff = r->off;
        int rc = read_val(r, &key, depth + 1);
        if (rc) return rc;
        if (!r->build) {
            /* pass 1 cannot see the type via `key` reliably for strings (not built): peek */
            uint8_t t = r->p[koff];
            int is_str = (t >= 0xa0 && t <= 0xbf) || t == 0xd9 || t == 0xda || t == 0xdb;
            if (!is_str) {
                util_err(r->err, r->errlen, "body: map key at offset %zu is not a string", koff);
                return PROTO_ERR_TYPE;
            }
        } else {
            keys[i] = key.v.str.ptr;
            klens[i] = key.v.str.len;
        }
        rc = read_val(r, r->build ? &vals[i] : &scratch, depth + 1);
        if (rc) return rc;
    }
    return 0;
}

static int read_val(rd *r, proto_val *out, int depth) {
    if (depth > PROTO_MAX_DEPTH) {
        util_err(r->err, r->errlen, "body: nesting deeper than %d at offset %zu", PROTO_MAX_DEPTH, r->off);
        return PROTO_ERR_DEPTH;
    }
    if (!r->build && ++r->nodes > PROTO_MAX_NODES) {
        util_err(r->err, r->errlen, "body: more than %u values", PROTO_MAX_NODES);
        return PROTO_ERR_COUNT;
    }
    int rc = need_bytes(r, 1, "value");
    if (rc) return rc;
    uint8_t t = r->p[r->off++];
    if (t <= 0x7f) { out->type = PV_UINT; out->v.u = t; return 0; }
    if (t >= 0xe0) { out->type = PV_INT; out->v.i = (int8_t)t; return 0; }
    if (t >= 0x80 && t <= 0x8f) return read_map(r, out, t & 0x0f, depth);
    if (t >= 0x90 && t <= 0x9f) return read_array(r, out, t & 0x0f, depth);
    if (t >= 0xa0 && t <= 0xbf) return read_bytes(r, out, t & 0x1f, 1);
    int n;
    switch (t) {
    case 0xc0: out->type = PV_NIL; return 0;
    case 0xc2: out->type = PV_BOOL; out->v.b = 0; return 0;
    case 0xc3: out->type = PV_BOOL; out->v.b = 1; return 0;
    case 0xc4: case 0xc5: case 0xc6:
    case 0xd9: case 0xda: case 0xdb: {
        n = (t == 0xc4 || t == 0xd9) ? 1 : (t == 0xc5 || t == 0xda) ? 2 : 4;
        if ((rc = need_bytes(r, (size_t)n, "length"))) return rc;
        uint32_t len = (uint32_t)be(r->p + r->off, n);
        r->off += (size_t)n;
        return read_bytes(r, out, len, t >= 0xd9);
    }
    case 0xca: {
        if ((rc = need_bytes(r, 4, "float32"))) return rc;
        uint32_t b = (uint32_t)be(r->p + r->off, 4);
        float f; memcpy(&f, &b, 4);
        r->off += 4; out->type = PV_FLOAT; out->v.f = f; return 0;
    }
    case 0xcb: {
        if ((rc = need_bytes(r, 8, "float64"))) return rc;
        uint64_t b = be(r->p + r->off, 8);
        double f; memcpy(&f, &b, 8);
        r->off += 8; out->type = PV_FLOAT; out->v.f = f; return 0;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        n = 1 << (t - 0xcc);
        if ((rc = need_bytes(r, (size_t)n, "uint"))) return rc;
        out->type = PV_UINT; out->v.u = be(r->p + r->off, n);
        r->off += (size_t)n; return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        n = 1 << (t - 0xd0);
        if ((rc = need_bytes(r, (size_t)n, "int"))) return rc;
        uint64_t u = be(r->p + r->off, n);
        int64_t x;
        if (n == 1) x = (int8_t)u; else if (n == 2) x = (int16_t)u;
        else if (n == 4) x = (int32_t)u; else { memcpy(&x, &u, 8); }
        out->type = PV_INT; out->v.i = x;
        r->off += (size_t)n; return 0;
    }
    case 0xdc: case 0xdd: case 0xde: case 0xdf: {
        n = (t == 0xdc || t == 0xde) ? 2 : 4;
        if ((rc = need_bytes(r, (size_t)n, "count"))) return rc;
        uint32_t cnt = (uint32_t)be(r->p + r->off, n);
        r->off += (size_t)n;
        return t <= 0xdd ? read_array(r, out, cnt, depth) : read_map(r, out, cnt, depth);
    }
    default:
        util_err(r->err, r->errlen, "body: unsupported msgpack type 0x%02x at offset %zu", t, r->off - 1);
        return PROTO_ERR_TYPE;
    }
}

static int parse_common(const void *body, size_t len, proto_msg **out, char *err, size_t errlen) {
    *out = NULL;
    if (len > PROTO_MAX_BODY) {
        util_err(err, errlen, "body: %zu bytes exceeds the limit of %u", len, PROTO_MAX_BODY);
        return PROTO_ERR_TOO_BIG;
    }
    if (!body && len) return util_err(err, errlen, "body: NULL"), PROTO_ERR_TRUNCATED;
    rd r = {.p = body, .len = len, .err = err, .errlen = errlen};
    proto_val scratch;
    int rc = read_val(&r, &scratch, 0);
    if (rc) return rc;
    if (r.off != len) {
        util_err(err, errlen, "body: %zu trailing bytes after the value at offset %zu", len - r.off, r.off);
        return PROTO_ERR_TRAILING;
    }
    proto_msg *m = xcalloc(1, sizeof *m);
    size_t need = ALIGN8(sizeof(proto_val)) + r.need;
    m->arena = xmalloc(need);
    m->arena_bytes = need;
    rd b = {.p = body, .len = len, .build = 1, .arena = m->arena, .err = err, .errlen = errlen};
    m->root = arena_take(&b, sizeof(proto_val));
    rc = read_val(&b, m->root, 0);
    if (rc || b.aoff > need) {  /* impossible: pass 1 accepted the same bytes */
        free(m->arena); free(m);
        util_err(err, errlen, "body: internal parse mismatch");
        return rc ? rc : PROTO_ERR_TRUNCATED;
    }
    *out = m;
    return PROTO_OK;
}

int proto_parse_value(const void *body, size_t len, proto_msg **out, char *err, size_t errlen) {
    return parse_common(body, len, out, err, errlen);
}

int proto_parse(const void *body, size_t len, proto_msg **out, char *err, size_t errlen) {
    proto_msg *m = NULL;
    int rc = parse_common(body, len, &m, err, errlen);
    if (rc) return rc;
    if (m->root->type != PV_MAP) {
        proto_msg_destroy(&m);
        util_err(err, errlen, "body: top-level value is not a map");
        return PROTO_ERR_NOT_MAP;
    }
    uint64_t v;
    if (proto_get_u64(m->root, "v", &v) != 0 || v != PROTO_VERSION) {
        int present = proto_get(m->root, "v") != NULL;
        proto_msg_destroy(&m);
        if (present) util_err(err, errlen, "body: field v: protocol version mismatch (want %d)", PROTO_VERSION);
        else util_err(err, errlen, "body: field v (protocol version) missing");
        return PROTO_ERR_VERSION;
    }
    const char *cmd;
    uint32_t cl;
    if (proto_get_str(m->root, "cmd", &cmd, &cl) != 0 || cl == 0) {
        proto_msg_destroy(&m);
        util_err(err, errlen, "body: field cmd: missing or not a non-empty string");
        return PROTO_ERR_FIELD;
    }
    m->cmd = cmd;
    *out = m;
    return PROTO_OK;
}

void proto_msg_destroy(proto_msg **m) {
    if (!m || !*m) return;
    free((*m)->arena);
    free(*m);
    *m = NULL;
}

size_t proto_msg_bytes(const proto_msg *m) { return m ? m->arena_bytes + sizeof *m : 0; }

const proto_val *proto_root(const proto_msg *m) { return m ? m->root : NULL; }
const char *proto_cmd(const proto_msg *m) { return m && m->cmd ? m->cmd : ""; }

const proto_val *proto_get(const proto_val *map, const char *key) {
    if (!map || map->type != PV_MAP || !key) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < map->v.map.n; i++)
        if (map->v.map.key_lens[i] == kl && memcmp(map->v.map.keys[i], key, kl) == 0)
            return &map->v.map.vals[i];
    return NULL;
}

int proto_get_str(const proto_val *map, const char *key, const char **out, uint32_t *len) {
    const proto_val *v = proto_get(map, key);
    if (!v || v->type != PV_STR) return -1;
    if (out) *out = v->v.str.ptr;
    if (len) *len = v->v.str.len;
    return 0;
}

int proto_get_i64(const proto_val *map, const char *key, int64_t *out) {
    const proto_val *v = proto_get(map, key);
    if (!v) return -1;
    if (v->type == PV_INT) { *out = v->v.i; return 0; }
    if (v->type == PV_UINT && v->v.u <= (uint64_t)INT64_MAX) { *out = (int64_t)v->v.u; return 0; }
    return -1;
}

int proto_get_u64(const proto_val *map, const char *key, uint64_t *out) {
    const proto_val *v = proto_get(map, key);
    if (!v) return -1;
    if (v->type == PV_UINT) { *out = v->v.u; return 0; }
    if (v->type == PV_INT && v->v.i >= 0) { *out = (uint64_t)v->v.i; return 0; }
    return -1;
}

int proto_get_f64(const proto_val *map, const char *key, double *out) {
    const proto_val *v = proto_get(map, key);
    if (!v) return -1;
    if (v->type == PV_FLOAT) { *out = v->v.f; return 0; }
    if (v->type == PV_INT) { *out = (double)v->v.i; return 0; }
    if (v->type == PV_UINT) { *out = (double)v->v.u; return 0; }
    return -1;
}

int proto_get_bool(const proto_val *map, const char *key, int *out) {
    const proto_val *v = proto_get(map, key);
    if (!v) return -1;
    if (v->type == PV_BOOL) { *out = v->v.b; return 0; }
    if (v->type == PV_UINT && v->v.u <= 1) { *out = (int)v->v.u; return 0; }
    if (v->type == PV_INT && (v->v.i == 0 || v->v.i == 1)) { *out = (int)v->v.i; return 0; }
    return -1;
}

const proto_val *proto_get_array(const proto_val *map, const char *key) {
    const proto_val *v = proto_get(map, key);
    return v && v->type == PV_ARRAY ? v : NULL;
}

const proto_val *proto_get_map(const proto_val *map, const char *key) {
    const proto_val *v = proto_get(map, key);
    return v && v->type == PV_MAP ? v : NULL;
}

/* ======================================================================= writer */

struct proto_writer {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

proto_writer *proto_writer_new(const char *cmd, uint32_t n_fields) {
    proto_writer *w = xcalloc(1, sizeof *w);
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    if (cmd) {
        msgpack_pack_map(&w->pk, n_fields + 2);
        proto_w_key(w, "v");
        msgpack_pack_uint32(&w->pk, PROTO_VERSION);
        proto_w_key(w, "cmd");
        proto_w_str(w, cmd);
    }
    return w;
}

void proto_writer_destroy(proto_writer **w) {
    if (!w || !*w) return;
    msgpack_sbuffer_destroy(&(*w)->sb);
    free(*w);
    *w = NULL;
}

void proto_w_key(proto_writer *w, const char *key) { proto_w_str(w, key); }
void proto_w_str(proto_writer *w, const char *s) { proto_w_strn(w, s ? s : "", s ? strlen(s) : 0); }
void proto_w_strn(proto_writer *w, const char *s, size_t n) {
    msgpack_pack_str(&w->pk, n);
    msgpack_pack_str_body(&w->pk, s, n);
}
void proto_w_bin(proto_writer *w, const void *p, size_t n) {
    msgpack_pack_bin(&w->pk, n);
    msgpack_pack_bin_body(&w->pk, p, n);
}
void proto_w_i64(proto_writer *w, int64_t x) { msgpack_pack_int64(&w->pk, x); }
void proto_w_u64(proto_writer *w, uint64_t x) { msgpack_pack_uint64(&w->pk, x); }
void proto_w_f64(proto_writer *w, double x) { msgpack_pack_double(&w->pk, x); }
void proto_w_bool(proto_writer *w, int b) {
    if (b) msgpack_pack_true(&w->pk); else msgpack_pack_false(&w->pk);
}
void proto_w_nil(proto_writer *w) { msgpack_pack_nil(&w->pk); }
void proto_w_array(proto_writer *w, uint32_t n) { msgpack_pack_array(&w->pk, n); }
void proto_w_map(proto_writer *w, uint32_t n) { msgpack_pack_map(&w->pk, n); }
void proto_w_raw(proto_writer *w, const void *msgpack, size_t n) {
    msgpack_sbuffer_write(&w->sb, msgpack, n);
}

void proto_w_val(proto_writer *w, const proto_val *v) {
    switch (v->type) {
    case PV_NIL: proto_w_nil(w); break;
    case PV_BOOL: proto_w_bool(w, v->v.b); break;
    case PV_INT: proto_w_i64(w, v->v.i); break;
    case PV_UINT: proto_w_u64(w, v->v.u); break;
    case PV_FLOAT: proto_w_f64(w, v->v.f); break;
    case PV_STR: proto_w_strn(w, v->v.str.ptr, v->v.str.len); break;
    case PV_BIN: proto_w_bin(w, v->v.bin.ptr, v->v.bin.len); break;
    case PV_ARRAY:
        proto_w_array(w, v->v.arr.n);
        for (uint32_t i = 0; i < v->v.arr.n; i++) proto_w_val(w, &v->v.arr.items[i]);
        break;
    case PV_MAP:
        proto_w_map(w, v->v.map.n);
        for (uint32_t i = 0; i < v->v.map.n; i++) {
            proto_w_strn(w, v->v.map.keys[i], v->v.map.key_lens[i]);
            proto_w_val(w, &v->v.map.vals[i]);
        }
        break;
    }
}

const void *proto_writer_data(const proto_writer *w, size_t *len) {
    if (len) *len = w->sb.size;
    return w->sb.data;
}

/* ======================================================================= JSON */

void proto_val_to_json(const proto_val *v, util_buf *out) {
    switch (v->type) {
    case PV_NIL: util_buf_append(out, "null", 4); break;
    case PV_BOOL: util_buf_printf(out, "%s", v->v.b ? "true" : "false"); break;
    case PV_INT: util_buf_printf(out, "%lld", (long long)v->v.i); break;
    case PV_UINT: util_buf_printf(out, "%llu", (unsigned long long)v->v.u); break;
    case PV_FLOAT:
        if (isfinite(v->v.f)) util_buf_printf(out, "%.17g", v->v.f);
        else util_buf_append(out, "null", 4);
        break;
    case PV_STR: util_buf_json_str(out, v->v.str.ptr, v->v.str.len); break;
    case PV_BIN:
        util_buf_append(out, "\"", 1);
        for (uint32_t i = 0; i < v->v.bin.len; i++) util_buf_printf(out, "%02x", v->v.bin.ptr[i]);
        util_buf_append(out, "\"", 1);
        break;
    case PV_ARRAY:
        util_buf_append(out, "[", 1);
        for (uint32_t i = 0; i < v->v.arr.n; i++) {
            if (i) util_buf_append(out, ",", 1);
            proto_val_to_json(&v->v.arr.items[i], out);
        }
        util_buf_append(out, "]", 1);
        break;
    case PV_MAP:
        util_buf_append(out, "{", 1);
        for (uint32_t i = 0; i < v->v.map.n; i++) {
            if (i) util_buf_append(out, ",", 1);
            util_buf_json_str(out, v->v.map.keys[i], v->v.map.key_lens[i]);
            util_buf_append(out, ":", 1);
            proto_val_to_json(&v->v.map.vals[i], out);
        }
        util_buf_append(out, "}", 1);
        break;
    }
}

/* ======================================================================= sockets */

int proto_send(void *sock, const void *identity, size_t id_len, const proto_writer *w, int flags) {
    size_t blen;
    const void *body = proto_writer_data(w, &blen);
    if (identity && zmq_send(sock, identity, id_len, flags | ZMQ_SNDMORE) < 0) return -1;
    /* Once the first frame is queued the rest of a multipart message cannot fail on HWM. */
    if (zmq_send(sock, PROTO_SIGNATURE, 2, flags | ZMQ_SNDMORE) < 0) return -1;
    if (zmq_send(sock, body, blen, flags) < 0) return -1;
    return 0;
}

/* Receives and discards the remaining frames of a multipart message. */
static void drain(void *sock) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) { zmq_msg_close(&m); break; }
        zmq_msg_close(&m);
        sz = sizeof more;
    }
}

static int has_more(void *sock) {
    int more = 0;
    size_t sz = sizeof more;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
    return more;
}

/* Receives the next frame of a message already started into f (initialised here); on failure
 * f is closed, err says why and -1 is returned. */
static int recv_next(void *sock, zmq_msg_t *f, char *err, size_t errlen) {
    zmq_msg_init(f);
    if (zmq_msg_recv(f, sock, 0) < 0) {
        zmq_msg_close(f);
        util_err(err, errlen, "recv: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int proto_recv(void *sock, int want_identity, void *id, size_t idcap, size_t *id_len,
               proto_msg **out, int flags, char *err, size_t errlen) {
    *out = NULL;
    if (id_len) *id_len = 0;
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, sock, flags) < 0) {
        int e = zmq_errno();
        zmq_msg_close(&f);
        if (e == EAGAIN || e == EINTR) return 1;
        util_err(err, errlen, "recv: %s", zmq_strerror(e));
        errno = e;
        return PROTO_ERR_SOCKET;
    }
    int rc = PROTO_OK;
    if (want_identity) {
        size_t n = zmq_msg_size(&f);
        if (n > idcap) {
            util_err(err, errlen, "frames: identity of %zu bytes exceeds %zu", n, idcap);
            rc = PROTO_ERR_FRAMES;
        } else {
            memcpy(id, zmq_msg_data(&f), n);
            if (id_len) *id_len = n;
        }
        int more = has_more(sock);
        zmq_msg_close(&f);
        if (rc) { drain(sock); return rc; }
        if (!more) {
            util_err(err, errlen, "frames: identity only, no signature frame");
            return PROTO_ERR_FRAMES;
        }
        if (recv_next(sock, &f, err, errlen)) return PROTO_ERR_SOCKET;
    }
    /* f = signature frame */
    if (zmq_msg_size(&f) != 2 || memcmp(zmq_msg_data(&f), PROTO_SIGNATURE, 2) != 0) {
        size_t n = zmq_msg_size(&f);
        zmq_msg_close(&f);
        drain(sock);
        util_err(err, errlen, "frames: signature frame of %zu bytes is not \"%s\"", n, PROTO_SIGNATURE);
        return PROTO_ERR_FRAMES;
    }
    int more = has_more(sock);
    zmq_msg_close(&f);
    if (!more) {
        util_err(err, errlen, "frames: no body frame after the signature");
        return PROTO_ERR_FRAMES;
    }
    if (recv_next(sock, &f, err, errlen)) return PROTO_ERR_SOCKET;
    if (has_more(sock)) {
        zmq_msg_close(&f);
        drain(sock);
        util_err(err, errlen, "frames: more than one body frame");
        return PROTO_ERR_FRAMES;
    }
    rc = proto_parse(zmq_msg_data(&f), zmq_msg_size(&f), out, err, errlen);
    zmq_msg_close(&f);
    return rc;
}
