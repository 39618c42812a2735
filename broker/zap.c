/* broker/zap.c — the client-key allow-list and the ZAP handler thread (contracts in broker/zap.h). */
#include "broker/zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/log.h"
#include "common/util.h"

/* ---------------------------------------------------------------- allow-list */

struct zap_allowlist {
    uint8_t (*keys)[ZKEY_BYTES];   /* sorted, distinct */
    size_t n;
};

static int key_cmp(const void *a, const void *b) { return memcmp(a, b, ZKEY_BYTES); }

static void trim(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\t')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) (*n)--;
}

/* Decodes s[0..n) as a key; 0 ok, -1 not a key. */
static int decode_key(const char *s, size_t n, uint8_t out[ZKEY_BYTES]) {
    char z[ZKEY_Z85_LEN + 1];
    if (!zkey_is_z85(s, n)) return -1;
    memcpy(z, s, n);
    z[n] = 0;
    int all_hash = 1;
    for (size_t i = 0; i < n; i++) if (s[i] != '#') all_hash = 0;
    if (all_hash) return -1;   /* a "####...####" separator line, not a key */
    return zkey_decode(z, out);
}

static int all_z85(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if (!zkey_is_z85_char(s[i])) return 0;
    return 1;
}

static void why_not_key(const char *s, size_t n, char *buf, size_t cap) {
    if (n != ZKEY_Z85_LEN) { snprintf(buf, cap, "expected a 40-character Z85 public key, got %zu characters", n); return; }
    for (size_t i = 0; i < n; i++)
        if (!zkey_is_z85_char(s[i])) {
            unsigned char ch = (unsigned char)s[i];
            if (ch >= 0x20 && ch < 0x7f) snprintf(buf, cap, "character '%c' at position %zu is not Z85", ch, i + 1);
            else snprintf(buf, cap, "byte 0x%02x at position %zu is not Z85", ch, i + 1);
            return;
        }
    snprintf(buf, cap, "not a valid Z85 key");
}

static void push_key(zap_allowlist *al, size_t *cap, const uint8_t k[ZKEY_BYTES]) {
    if (al->n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        al->keys = xrealloc(al->keys, *cap * sizeof *al->keys);
    }
    memcpy(al->keys[al->n++], k, ZKEY_BYTES);
}

int zap_allowlist_parse(const char *text, size_t len, const char *path, zap_allowlist **out, char *err, size_t errlen) {
    *out = NULL;
    zap_allowlist *al = xcalloc(1, sizeof *al);
    size_t cap = 0, pos = 0;
    int lineno = 0, rc = ZKEY_ERR_PARSE;
    char why[128];
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t raw = nl ? (size_t)(nl - line) : len - pos;
        pos += raw + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, 0, raw)) { util_err(err, errlen, "%s:%d: NUL byte in a text file", path, lineno); goto fail; }
        const char *s = line;
        size_t n = raw;
        trim(&s, &n);
        if (n == 0) continue;
        size_t tok = 0;
        while (tok < n && s[tok] != ' ' && s[tok] != '\t') tok++;
        uint8_t k[ZKEY_BYTES];
        if (decode_key(s, tok, k) == 0) {
            const char *rest = s + tok;
            size_t rn = n - tok;
            trim(&rest, &rn);
            if (rn && rest[0] != '#') {
                util_err(err, errlen, "%s:%d: text after the key must be a '#' comment, got \"%.20s\"", path, lineno, rest);
                goto fail;
            }
            if (al->n >= ZAP_MAX_KEYS) { util_err(err, errlen, "%s:%d: more than %d keys", path, lineno, ZAP_MAX_KEYS); goto fail; }
            push_key(al, &cap, k);
            continue;
        }
        if (s[0] == '#') continue;
        if ((n == 8 && memcmp(s, "metadata", 8) == 0) || (n == 5 && memcmp(s, "curve", 5) == 0)) continue;
        const char *eq = memchr(s, '=', n);
        if (eq) {
            const char *name = s, *val = eq + 1;
            size_t nn = (size_t)(eq - s), vn = n - nn - 1;
            trim(&name, &nn);
            trim(&val, &vn);
            if (vn >= 2 && val[0] == '"' && val[vn - 1] == '"') { val++; vn -= 2; }
            if (nn == 10 && memcmp(name, "secret-key", 10) == 0) {
                util_err(err, errlen, "%s:%d: a secret key does not belong in an allow-list (list the client's .pub key)",
                         path, lineno);
                goto fail;
            }
            if (nn == 10 && memcmp(name, "public-key", 10) == 0) {
                if (decode_key(val, vn, k) != 0) {
                    why_not_key(val, vn, why, sizeof why);
                    util_err(err, errlen, "%s:%d: public-key: %s", path, lineno, why);
                    goto fail;
                }
                if (al->n >= ZAP_MAX_KEYS) { util_err(err, errlen, "%s:%d: more than %d keys", path, lineno, ZAP_MAX_KEYS); goto fail; }
                push_key(al, &cap, k);
                continue;
            }
            if (tok != n || !all_z85(s, n)) {   /* '=' is a Z85 character: a damaged key is reported as one */
                util_err(err, errlen, "%s:%d: unknown field \"%.*s\" (expected a Z85 public key per line)", path, lineno,
                         (int)(nn > 40 ? 40 : nn), name);
                goto fail;
            }
        }
        why_not_key(s, tok, why, sizeof why);
        util_err(err, errlen, "%s:%d: %s", path, lineno, why);
        goto fail;
    }
    if (al->n == 0) {
        util_err(err, errlen, "%s: holds no keys: nobody could connect (list client public keys, one per line)", path);
        rc = ZKEY_ERR_MISSING;
        goto fail;
    }
    qsort(al->keys, al->n, ZKEY_BYTES, key_cmp);
    size_t w = 1;
    for (size_t i = 1; i < al->n; i++)
        if (memcmp(al->keys[i], al->keys[w - 1], ZKEY_BYTES) != 0) memcpy(al->keys[w++], al->keys[i], ZKEY_BYTES);
    al->n = w;
    *out = al;
    return ZKEY_OK;
fail:
    zap_allowlist_destroy(&al);
    return rc;
}

int zap_allowlist_load(const char *path, zap_allowlist **out, char *err, size_t errlen) {
    *out = NULL;
    size_t len;
    char *text = util_read_file(path, &len, err, errlen);
    if (!text) return ZKEY_ERR_IO;
    int rc = zap_allowlist_parse(text, len, path, out, err, errlen);
    free(text);
    return rc;
}

void zap_allowlist_destroy(zap_allowlist **al) {
    if (!al || !*al) return;
    free((*al)->keys);
    free(*al);
    *al = NULL;
}

size_t zap_allowlist_count(const zap_allowlist *al) { return al ? al->n : 0; }

int zap_allowlist_has(const zap_allowlist *al, const uint8_t key[ZKEY_BYTES]) {
    if (!al || !al->n) return 0;
    return bsearch(key, al->keys, al->n, ZKEY_BYTES, key_cmp) != NULL;
}

/* ---------------------------------------------------------------- decision */

static int frame_is(const zap_request *r, int i, const char *s) {
    size_t n = strlen(s);
    return i < r->n_frames && r->frame_len[i] == n && memcmp(r->frame[i], s, n) == 0;
}

/* Printable copy of a frame (non-printable bytes as '?'). */
static void printable(const zap_request *r, int i, char *dst, size_t cap) {
    dst[0] = 0;
    if (i >= r->n_frames || !cap) return;
    size_t n = r->frame_len[i] < cap - 1 ? r->frame_len[i] : cap - 1;
    const unsigned char *s = r->frame[i];
    for (size_t k = 0; k < n; k++) dst[k] = s[k] >= 0x20 && s[k] < 0x7f ? (char)s[k] : '?';
    dst[n] = 0;
}

void zap_decide(const zap_allowlist *al, const zap_request *req, zap_verdict *v) {
    memset(v, 0, sizeof *v);
    v->status_code = "400";
    printable(req, 2, v->domain, sizeof v->domain);
    printable(req, 3, v->address, sizeof v->address);
    printable(req, 5, v->mechanism, sizeof v->mechanism);
    if (req->n_frames < 6 || !frame_is(req, 0, "1.0")) {
        v->status_code = "500";
        snprintf(v->status_text, sizeof v->status_text, "malformed ZAP request (version or frame count)");
        return;
    }
    if (!frame_is(req, 5, "CURVE")) {
        snprintf(v->status_text, sizeof v->status_text, "CURVE required (client offered mechanism %s)",
                 v->mechanism[0] ? v->mechanism : "?");
        return;
    }
    if (req->n_frames != 7 || req->frame_len[6] != ZKEY_BYTES) {
        snprintf(v->status_text, sizeof v->status_text, "malformed CURVE credentials");
        return;
    }
    const uint8_t *key = req->frame[6];
    if (!zmq_z85_encode(v->client_key, key, ZKEY_BYTES)) v->client_key[0] = 0;
    if (!zap_allowlist_has(al, key)) {
        snprintf(v->status_text, sizeof v->status_text, "client key not in the broker's allow-list");
        return;
    }
    v->allowed = 1;
    v->status_code = "200";
    snprintf(v->status_text, sizeof v->status_text, "OK");
    memcpy(v->user_id, v->client_key, sizeof v->user_id);
}

/* ---------------------------------------------------------------- handler thread */

struct zap_handler {
    void *sock;
    pthread_mutex_t mu;            /* guards al and owned: held while deciding and while swapping */
    const zap_allowlist *al;       /* the list in force */
    zap_allowlist *owned;          /* al when it came from zap_handler_replace (freed by us), else NULL */
    pthread_t th;
    atomic_int stop;
    atomic_uint_fast64_t allowed, refused;
    int64_t window_ms;
    uint32_t logged, suppressed;
};

#define ZAP_POLL_MS 100       /* how soon a stop request is noticed */
#define ZAP_LOG_PER_SEC 20    /* refusals logged per second; the rest are counted */

static void log_refusal(zap_handler *h, const zap_verdict *v) {
    int64_t now = util_now_ms();
    if (now - h->window_ms >= 1000) {
        if (h->suppressed) LOG_WARN("zap: %u more refusal(s) not logged", h->suppressed);
        h->window_ms = now;
        h->logged = 0;
        h->suppressed = 0;
    }
    if (h->logged++ < ZAP_LOG_PER_SEC)
        LOG_WARN("zap: refused %s connection from %s: %s%s%s", v->domain[0] ? v->domain : "(no domain)",
                 v->address[0] ? v->address : "?", v->status_text, v->client_key[0] ? "; key " : "", v->client_key);
    else
        h->suppressed++;
}

/* Receives one request (all of its frames), answers it. */
static void serve_one(zap_handler *h) {
    zmq_msg_t parts[8];
    zap_request req;
    memset(&req, 0, sizeof req);
    int n = 0, more = 1, extra = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, h->sock, 0) < 0) {
            zmq_msg_close(&m);
            if (zmq_errno() == EINTR && n > 0) continue;
            for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
            if (n == 0) return;   /* nothing read: the REP socket still expects a receive */
            /* a broken multipart read: fall through and answer what we have */
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 8) parts[n++] = m;
        else { extra++; zmq_msg_close(&m); }
    }
    req.n_frames = n + extra;
    for (int i = 0; i < n; i++) { req.frame[i] = zmq_msg_data(&parts[i]); req.frame_len[i] = zmq_msg_size(&parts[i]); }
    zap_verdict v;
    pthread_mutex_lock(&h->mu);   /* a reload cannot free the list while we read it */
    zap_decide(h->al, &req, &v);
    pthread_mutex_unlock(&h->mu);
    const void *rid = n > 1 ? req.frame[1] : "";
    size_t rid_len = n > 1 ? req.frame_len[1] : 0;
    zmq_send(h->sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(h->sock, rid, rid_len, ZMQ_SNDMORE);
    zmq_send(h->sock, v.status_code, 3, ZMQ_SNDMORE);
    zmq_send(h->sock, v.status_text, strlen(v.status_text), ZMQ_SNDMORE);
    zmq_send(h->sock, v.user_id, strlen(v.user_id), ZMQ_SNDMORE);
    zmq_send(h->sock, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    if (v.allowed) {
        atomic_fetch_add(&h->allowed, 1);
        LOG_DEBUG("zap: allowed %s connection from %s, key %s", v.domain, v.address, v.client_key);
    } else {
        atomic_fetch_add(&h->refused, 1);
        log_refusal(h, &v);
    }
}

/* Fail-closed: if this loop ever ends early (an unexpected poll error), the REP socket stays
 * bound until zap_handler_stop, so libzmq still finds a handler, its requests go unanswered and
 * handshakes stall instead of being admitted. (ZMQ_ZAP_ENFORCE_DOMAIN, which would refuse when
 * no handler is bound, is a DRAFT option absent from Debian's stable libzmq 4.3.4.) */
static void *zap_thread(void *arg) {
    zap_handler *h = arg;
    zmq_pollitem_t it = {.socket = h->sock, .events = ZMQ_POLLIN};
    while (!atomic_load(&h->stop)) {
        int n = zmq_poll(&it, 1, ZAP_POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR) continue;
            if (zmq_errno() == ETERM) break;
            LOG_ERROR("zap: poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (n > 0) serve_one(h);
    }
    return NULL;
}

int zap_handler_start(void *zctx, const zap_allowlist *al, zap_handler **out, char *err, size_t errlen) {
    *out = NULL;
    zap_handler *h = xcalloc(1, sizeof *h);
    h->al = al;
    pthread_mutex_init(&h->mu, NULL);
    atomic_init(&h->stop, 0);
    atomic_init(&h->allowed, 0);
    atomic_init(&h->refused, 0);
    h->sock = zmq_socket(zctx, ZMQ_REP);
    if (!h->sock) {
        util_err(err, errlen, "zap: zmq_socket: %s", zmq_strerror(zmq_errno()));
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -1;
    }
    int zero = 0;
    zmq_setsockopt(h->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(h->sock, ZAP_ENDPOINT) != 0) {
        util_err(err, errlen, "zap: bind %s: %s", ZAP_ENDPOINT, zmq_strerror(zmq_errno()));
        zmq_close(h->sock);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -1;
    }
    /* the socket is handed to the thread: pthread_create is the memory barrier ZeroMQ asks for */
    int prc = pthread_create(&h->th, NULL, zap_thread, h);
    if (prc != 0) {
        util_err(err, errlen, "zap: pthread_create: %s", strerror(prc));
        zmq_close(h->sock);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

void zap_handler_stop(zap_handler **hp) {
    if (!hp || !*hp) return;
    zap_handler *h = *hp;
    atomic_store(&h->stop, 1);
    pthread_join(h->th, NULL);
    zmq_close(h->sock);
    zap_allowlist_destroy(&h->owned);
    pthread_mutex_destroy(&h->mu);
    free(h);
    *hp = NULL;
}

void zap_handler_replace(zap_handler *h, zap_allowlist *al) {
    pthread_mutex_lock(&h->mu);
    zap_allowlist *old = h->owned;
    h->al = al;
    h->owned = al;
    pthread_mutex_unlock(&h->mu);
    /* no decision can hold `old` now: every read of h->al happens under h->mu */
    zap_allowlist_destroy(&old);
}

void zap_handler_counts(const zap_handler *h, uint64_t *allowed, uint64_t *refused) {
    zap_handler *m = (zap_handler *)h;   /* atomic loads on const objects are not portable C11 */
    if (allowed) *allowed = h ? (uint64_t)atomic_load(&m->allowed) : 0;
    if (refused) *refused = h ? (uint64_t)atomic_load(&m->refused) : 0;
}

/* ---------------------------------------------------------------- handshake monitor */

void *zap_monitor_open(void *zctx, void *sock) {
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://thinkfast-monitor-%p", sock);
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
        LOG_DEBUG("zap: socket monitor unavailable: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    void *pair = zmq_socket(zctx, ZMQ_PAIR);
    if (!pair) return NULL;
    int zero = 0;
    zmq_setsockopt(pair, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(pair, ep) != 0) {
        LOG_DEBUG("zap: connect %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(pair);
        return NULL;
    }
    return pair;
}

int zap_monitor_read(void *pair, uint16_t *event, uint32_t *value) {
    if (!pair) return 0;
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, pair, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&ev); return 0; }
    *event = 0;
    *value = 0;
    if (zmq_msg_size(&ev) >= 6) {   /* 4.x event frame: u16 event, u32 value (native order) */
        memcpy(event, zmq_msg_data(&ev), 2);
        memcpy(value, (const char *)zmq_msg_data(&ev) + 2, 4);
    }
    int more = zmq_msg_more(&ev);
    zmq_msg_close(&ev);
    while (more) {   /* the endpoint frame */
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, pair, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&part); break; }
        more = zmq_msg_more(&part);
        zmq_msg_close(&part);
    }
    return 1;
}

const char *zap_handshake_describe(uint16_t event, uint32_t value, char *buf, size_t cap) {
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        snprintf(buf, cap, "refused by the ZAP handler (status %u)", value);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        const char *what = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? "security mechanism mismatch (CURVE on one side only)"
                           : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC ? "cryptographic error (wrong server key?)"
                           : value == ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE ? "key exchange failed"
                           : (value & 0xF0000000u) == 0x20000000u ? "bad ZAP reply" : "ZMTP error";
        snprintf(buf, cap, "protocol error: %s (0x%08x)", what, value);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        snprintf(buf, cap, "connection dropped during the handshake (%s)", value ? strerror((int)value) : "no detail");
    } else {
        snprintf(buf, cap, "socket event 0x%x (value %u)", event, value);
    }
    return buf;
}
