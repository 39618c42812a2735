/* broker/zap.h — who may connect: the client-key allow-list and the ZAP handler that enforces it.
 *
 * CURVE alone encrypts and authenticates the SERVER; without a ZAP handler libzmq accepts any
 * client key. ZAP (ZeroMQ RFC 27) is how a CURVE server asks "may this key connect?": libzmq
 * sends every handshake's credentials to a REP socket bound at inproc://zeromq.zap.01 in the
 * same context and waits for the answer. This module runs that REP socket in a small thread
 * (so an fsync in the broker's batch loop never stalls handshakes) and answers from an
 * immutable allow-list loaded at start, which zap_handler_replace swaps for a freshly parsed one
 * (the broker's SIGHUP reload) under the handler's mutex.
 *
 *   handshake ─► libzmq ──ZAP request──► [zap thread: REP inproc://zeromq.zap.01]
 *                 (CURVE server)             zap_decide(allow-list, request)
 *                        ◄──"200" / "400"──  (refusals logged, rate-limited)
 *
 * Request frames: "1.0", request_id, domain, address, routing_id, mechanism, credentials...
 * (CURVE: one 32-byte client public key). Reply: "1.0", request_id, status_code, status_text,
 * user_id, metadata. Only mechanism CURVE with a listed key gets "200"; everything else "400".
 *
 * Allow-list file: one Z85 public key (40 characters) per line; blank lines and '#' comment
 * lines are ignored, and text after the key separated by whitespace must be a '#' comment
 * ("KEY  # alice's laptop"). Lines `public-key = "KEY"` and the zcert section names `metadata`
 * and `curve` are accepted too, so a BASE.pub file written by `jobctl keygen` can be appended
 * as is. ('#' is itself a Z85 character: a line whose first word is a valid 40-character key
 * is a key even when it begins with '#'.)
 */
#ifndef THINKFAST_ZAP_H
#define THINKFAST_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/zkey.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_MAX_KEYS 100000

/* ---- allow-list ---- */
typedef struct zap_allowlist zap_allowlist;

/* Parses allow-list text (len bytes, not NUL-terminated; `path` names the file in messages).
 * Returns ZKEY_OK with *out (caller destroys), or ZKEY_ERR_PARSE with err "PATH:LINE: what",
 * ZKEY_ERR_MISSING when the file holds no key at all. Duplicate keys are kept once. */
int zap_allowlist_parse(const char *text, size_t len, const char *path, zap_allowlist **out, char *err, size_t errlen);
/* Reads and parses PATH (ZKEY_ERR_IO when unreadable). */
int zap_allowlist_load(const char *path, zap_allowlist **out, char *err, size_t errlen);
void zap_allowlist_destroy(zap_allowlist **al);
/* Number of distinct keys. */
size_t zap_allowlist_count(const zap_allowlist *al);
/* 1 when the 32-byte key is listed. */
int zap_allowlist_has(const zap_allowlist *al, const uint8_t key[ZKEY_BYTES]);

/* ---- the decision on one request (pure; unit-tested without sockets) ---- */
typedef struct zap_request {
    const void *frame[8];      /* the request's frames, borrowed */
    size_t frame_len[8];
    int n_frames;              /* >= 7 for a well-formed CURVE request (extra frames: bad) */
} zap_request;

typedef struct zap_verdict {
    int allowed;                        /* 1 = "200" */
    const char *status_code;            /* "200" | "400" | "500" */
    char status_text[96];               /* why (sent to the client, logged on refusal) */
    char user_id[ZKEY_Z85_LEN + 1];     /* Z85 of the client key when allowed, else "" */
    char client_key[ZKEY_Z85_LEN + 1];  /* Z85 of the offered key ("" when none) */
    char domain[32], address[64], mechanism[16];   /* printable copies, truncated */
} zap_verdict;

/* Decides one request against the allow-list (al == NULL: refuse every key). Never fails:
 * malformed requests get "500" (zap version/format) or "400". */
void zap_decide(const zap_allowlist *al, const zap_request *req, zap_verdict *v);

/* ---- the handler thread ---- */
typedef struct zap_handler zap_handler;

/* Binds the ZAP endpoint in zctx and starts the thread. Must run BEFORE the CURVE sockets of
 * zctx bind (a CURVE server finding no handler accepts everyone). Borrows `al` (must outlive
 * the handler). 0 ok, -1 with err (e.g. a handler already bound in this context). */
int zap_handler_start(void *zctx, const zap_allowlist *al, zap_handler **out, char *err, size_t errlen);
/* Makes `al` (non-NULL, parsed by the caller) the list every later ZAP request is decided
 * against; callable from any thread while the handler runs. Takes ownership of `al`. The list
 * it replaces is freed here when an earlier zap_handler_replace gave it, and left to its owner
 * when it is the one passed to zap_handler_start. Safe against the handler thread: decisions and
 * the swap hold the same mutex, so the old list is freed only after the request being decided
 * (if any) is done with it. Connections already admitted are not affected (ZAP is consulted at
 * handshakes only). */
void zap_handler_replace(zap_handler *h, zap_allowlist *al);
/* Stops and joins the thread, closes its socket, frees a list given by zap_handler_replace;
 * *h = NULL. Call before zmq_ctx_term. */
void zap_handler_stop(zap_handler **h);
/* Counters since start (thread-safe reads). */
void zap_handler_counts(const zap_handler *h, uint64_t *allowed, uint64_t *refused);

/* ---- handshake monitor (either side of a connection) ----
 * ZAP only sees CURVE handshakes that got as far as a client key; a plaintext peer meeting a
 * CURVE socket (or a wrong server key) fails earlier and is visible only as a socket-monitor
 * event. These helpers watch one socket for handshake failures. */

/* Starts monitoring `sock` (call from the thread that owns it) for the HANDSHAKE_FAILED events
 * and returns the PAIR socket to poll/read (owned by the caller: zmq_close it before or with
 * `sock`), or NULL when monitoring is unavailable (logged at debug; not fatal). */
void *zap_monitor_open(void *zctx, void *sock);
/* Reads one event without blocking: 1 with event and value set, 0 when none is pending. */
int zap_monitor_read(void *pair, uint16_t *event, uint32_t *value);
/* Human text for a handshake-failure event ("protocol error: security mechanism mismatch"). */
const char *zap_handshake_describe(uint16_t event, uint32_t value, char *buf, size_t cap);

#endif
