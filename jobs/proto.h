/* jobs/proto.h — the wire protocol: frames, message bodies, and the codec every program uses.
 *
 * Transport: ZeroMQ. The broker binds two ROUTER sockets, one for clients (jobctl, dashboards)
 * and one for workers; peers connect DEALER sockets. Every message is multipart:
 *
 *     frame 0: "TF"  (2 bytes, protocol signature; anything else is rejected)
 *     frame 1: body  (one msgpack map, at most PROTO_MAX_BODY bytes)
 *
 * (the ROUTER side additionally sees the peer identity frame first.) Every body carries
 *   "v"   : protocol version (PROTO_VERSION; a mismatch is answered with an error)
 *   "cmd" : command name (string)
 *   "rid" : optional request id (uint), echoed in the reply so a client can match replies.
 *
 * Client <-> broker (request/reply; every request gets exactly one reply):
 *
 *   client                         broker
 *     | submit {spec: JSON text}     |   -> {ok:true, job:"j-000001"} | {ok:false, error}
 *     | status {job}                 |   -> {ok, job, name, state, tasks:{ready,leased,done,failed},
 *     |                              |       samples_done, samples_total, created_ms, ...,
 *     |                              |       store:"ok"|"full", store_error? (while full)}
 *     | list {}                      |   -> {ok, jobs:[{job,name,state,...}], store, store_error?}
 *     | cancel {job}                 |   -> {ok, job, state:"cancelled"}
 *     | report {job}                 |   -> {ok, job, stats:{...aggregate record...}}
 *     | workers {}                   |   -> {ok, workers:[{id,role,host,pid,credit,leased,last_seen_ms}]}
 *     | watch {job}                  |   -> same as status (jobctl polls it)
 *     |<--------- reply -------------|
 *
 * Worker <-> broker (asynchronous; any message from a worker counts as a heartbeat):
 *
 *   worker                                    broker
 *     | ready {worker, role, credit, host, pid} |  register / re-register, credit = tasks it can take
 *     |<-------- task {task, attempt, job, kind, lease_ms, payload:{...}}
 *     | progress {task, done, total}            |  extends the lease
 *     | result {task, attempt, outputs:[...], telemetry:{...}} | committed idempotently, then
 *     |<-------- ack {task}                     |  the worker may forget the result
 *     | fail {task, attempt, error}             |  counted against max attempts
 *     | heartbeat {worker, credit}              |  every PROTO_HEARTBEAT_MS
 *     |<-------- heartbeat {}                   |  broker liveness for the worker
 *     |<-------- reregister {}                  |  broker does not know this worker (restart):
 *     |                                         |  the worker must reconnect with a fresh socket
 *     |<-------- cancel {task}                  |  job cancelled: drop the task, send nothing
 *     | disconnect {worker}                     |  clean shutdown; its leases are re-queued
 *
 * Task kinds and their payloads / outputs are documented in broker/tasks.h.
 * Errors from the broker: {ok:false, error:"text"} (clients) or cmd "error" {error} (workers).
 * While the store is full (disk or --map-max-mb) intake pauses: submit/cancel get
 * {ok:false, error:"store full: ..."}, results get "error" and are not acked (the task is redone
 * once there is room), read-only commands keep working.
 *
 * The codec: messages are built with proto_writer (a thin layer over msgpack-c's packer) and
 * read with proto_parse(), which validates the whole body BEFORE anything uses it: declared
 * array/map counts are checked against the remaining bytes (msgpack-c would allocate them up
 * front), nesting is capped, strings are bounded and copied NUL-terminated. A parse failure
 * is a return code and a message, never a crash.
 */
#ifndef THINKFAST_PROTO_H
#define THINKFAST_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION 1
#define PROTO_SIGNATURE "TF"
#define PROTO_MAX_BODY (64u << 20)  /* bytes; also the sockets' ZMQ_MAXMSGSIZE */
#define PROTO_MAX_DEPTH 16
#define PROTO_HEARTBEAT_MS 1000
#define PROTO_LEASE_MS 10000        /* default lease; extended by heartbeat/progress */

enum {
    PROTO_OK = 0,
    PROTO_ERR_TRUNCATED = -1,  /* body ends inside a value */
    PROTO_ERR_TYPE = -2,       /* unsupported msgpack type (ext) or wrong type for a field */
    PROTO_ERR_DEPTH = -3,      /* nesting deeper than PROTO_MAX_DEPTH */
    PROTO_ERR_COUNT = -4,      /* declared count larger than the bytes left could hold */
    PROTO_ERR_TOO_BIG = -5,    /* body over PROTO_MAX_BODY */
    PROTO_ERR_TRAILING = -6,   /* bytes after the top-level value */
    PROTO_ERR_NOT_MAP = -7,    /* top-level value is not a map */
    PROTO_ERR_VERSION = -8,    /* "v" missing or not PROTO_VERSION */
    PROTO_ERR_FIELD = -9,      /* required field missing or of the wrong type */
    PROTO_ERR_FRAMES = -10,    /* wrong frame count, bad signature frame, identity too long */
    PROTO_ERR_SOCKET = -11,    /* the socket itself failed (errno from zmq) */
};
#define PROTO_MAX_NODES (1u << 22)  /* values per body (bounds the parse tree's memory) */
const char *proto_strerror(int rc);

/* ---- parsed values (a validated tree; all memory owned by the proto_msg) ---- */
typedef enum {
    PV_NIL, PV_BOOL, PV_INT, PV_UINT, PV_FLOAT, PV_STR, PV_BIN, PV_ARRAY, PV_MAP
} proto_type;

typedef struct proto_val proto_val;
struct proto_val {
    proto_type type;
    union {
        int b;
        int64_t i;
        uint64_t u;
        double f;
        struct { const char *ptr; uint32_t len; } str;  /* NUL-terminated copy; len excludes NUL */
        struct { const uint8_t *ptr; uint32_t len; } bin;
        struct { proto_val *items; uint32_t n; } arr;
        struct { const char **keys; uint32_t *key_lens; proto_val *vals; uint32_t n; } map;
    } v;
};

typedef struct proto_msg proto_msg;

/* Parses and validates a body. On success *out owns the tree (free with proto_msg_destroy).
 * Returns PROTO_OK or a negative PROTO_ERR_*; err gets e.g. "body: map count 4000000 exceeds
 * remaining 12 bytes at offset 3". Checks the version and that "cmd" is a string. */
int proto_parse(const void *body, size_t len, proto_msg **out, char *err, size_t errlen);
/* Parses any single msgpack value (no "v"/"cmd" requirement, any top-level type) with the same
 * validation; used for stored records such as the stats map (store_stats.msgpack). */
int proto_parse_value(const void *body, size_t len, proto_msg **out, char *err, size_t errlen);
void proto_msg_destroy(proto_msg **m);
/* Bytes of memory the parsed tree holds (for bounding queues of parsed messages). */
size_t proto_msg_bytes(const proto_msg *m);
const proto_val *proto_root(const proto_msg *m);
const char *proto_cmd(const proto_msg *m);      /* never NULL after a successful parse */

/* Lookups on a map value; NULL when absent or when v is not a map. */
const proto_val *proto_get(const proto_val *map, const char *key);
/* Typed getters: return 0 and store the value, or -1 if absent / wrong type / out of range.
 * Integers accept PV_INT and PV_UINT within the target's range; floats accept ints too. */
int proto_get_str(const proto_val *map, const char *key, const char **out, uint32_t *len);
int proto_get_i64(const proto_val *map, const char *key, int64_t *out);
int proto_get_u64(const proto_val *map, const char *key, uint64_t *out);
int proto_get_f64(const proto_val *map, const char *key, double *out);
int proto_get_bool(const proto_val *map, const char *key, int *out);
const proto_val *proto_get_array(const proto_val *map, const char *key);  /* NULL unless array */
const proto_val *proto_get_map(const proto_val *map, const char *key);    /* NULL unless map */

/* ---- building messages ---- */
typedef struct proto_writer proto_writer;  /* growable buffer + msgpack packer */

/* Starts a body: writes the map header for n_fields + 2 and the "v" and "cmd" fields, so the
 * caller then writes exactly n_fields key/value pairs. cmd NULL starts a bare writer (nothing
 * written yet) for encoding arbitrary values, e.g. stored records. */
proto_writer *proto_writer_new(const char *cmd, uint32_t n_fields);
void proto_writer_destroy(proto_writer **w);
void proto_w_key(proto_writer *w, const char *key);
void proto_w_str(proto_writer *w, const char *s);
void proto_w_strn(proto_writer *w, const char *s, size_t n);
void proto_w_bin(proto_writer *w, const void *p, size_t n);
void proto_w_i64(proto_writer *w, int64_t x);
void proto_w_u64(proto_writer *w, uint64_t x);
void proto_w_f64(proto_writer *w, double x);
void proto_w_bool(proto_writer *w, int b);
void proto_w_nil(proto_writer *w);
void proto_w_array(proto_writer *w, uint32_t n);
void proto_w_map(proto_writer *w, uint32_t n);
/* Copies an already-parsed value (e.g. forwarding a payload). */
void proto_w_val(proto_writer *w, const proto_val *v);
/* Appends bytes that already are one complete msgpack value (e.g. a stored stats map). */
void proto_w_raw(proto_writer *w, const void *msgpack, size_t n);
/* The body so far; valid until the next write or destroy. */
const void *proto_writer_data(const proto_writer *w, size_t *len);

/* Appends v as JSON text to out (util_buf from common/util.h; forward-declared here): maps ->
 * objects, bin -> hex string, NaN/Inf -> null, floats with 17 significant digits. */
struct util_buf;
void proto_val_to_json(const proto_val *v, struct util_buf *out);

/* ---- sockets ---- */
/* Sends [identity?][sig][body] on a ZeroMQ socket. identity may be NULL (DEALER side).
 * Returns 0 or -1 (errno from zmq, e.g. EHOSTUNREACH with ZMQ_ROUTER_MANDATORY, EAGAIN). */
int proto_send(void *sock, const void *identity, size_t id_len, const proto_writer *w, int flags);

/* Receives one message. On the ROUTER side (want_identity = 1) the identity is copied into
 * id (cap idcap) and *id_len set. Returns PROTO_OK with *out set; a negative PROTO_ERR_* for
 * a malformed message (already fully drained from the socket; *out NULL; err says why);
 * or 1 when nothing was available (with ZMQ_DONTWAIT) / interrupted. */
int proto_recv(void *sock, int want_identity, void *id, size_t idcap, size_t *id_len,
               proto_msg **out, int flags, char *err, size_t errlen);

#endif
