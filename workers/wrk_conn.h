/* workers/wrk_conn.h — the worker's connection to the broker: one DEALER socket, registration,
 * liveness and reconnection.
 *
 * Heartbeats travel on the data socket (DESIGN.md pitfalls). Any message from the broker counts
 * as a sign of life; silence for WRK_DEAD_BEATS heartbeat periods means the broker is dead (or
 * restarted and lost us). Recovery never relies on ZeroMQ's auto-reconnect: the socket is closed
 * (linger 0) and a FRESH one connected, then `ready` is sent again; reconnect attempts back off
 * exponentially from WRK_BACKOFF_MIN_MS to WRK_BACKOFF_MAX_MS and the back-off resets once the
 * broker answers.
 *
 * Security: with cfg.curve set the socket is a CURVE client (common/zkey.h). A socket monitor
 * watches the handshake so that a refusal is logged once per connection with its likely cause
 * (our key not in the broker's allow-list; wrong broker key or CURVE on one side only) instead
 * of appearing only as "broker silent".
 */
#ifndef THINKFAST_WRK_CONN_H
#define THINKFAST_WRK_CONN_H

#include <stdint.h>

#include "common/zkey.h"
#include "jobs/proto.h"

#define WRK_DEAD_BEATS 3
#define WRK_BACKOFF_MIN_MS 100
#define WRK_BACKOFF_MAX_MS 5000
#define WRK_SEND_TIMEOUT_MS 2000   /* a send blocked this long means the broker is not reading */

typedef struct wrk_conn_cfg {
    const char *endpoint;   /* e.g. tcp://127.0.0.1:5556 */
    const char *id;         /* worker id (stable across reconnects) */
    const char *role;       /* "sample" | "score" | "aggregate" */
    int credit;             /* capacity: tasks held at once */
    const char *host;
    int64_t pid;
    int heartbeat_ms;       /* PROTO_HEARTBEAT_MS unless a test overrides it */
    const zkey_client *curve; /* NULL = plaintext; else our keypair + the broker's key (borrowed) */
} wrk_conn_cfg;

typedef struct wrk_conn wrk_conn;

/* Borrows zctx and the cfg strings (they must outlive the connection). Does not connect. */
wrk_conn *wrk_conn_new(void *zctx, const wrk_conn_cfg *cfg);
/* Closes the socket (linger_ms: how long queued messages may still be flushed). *c = NULL. */
void wrk_conn_destroy(wrk_conn **c, int linger_ms);
/* Closes any current socket (linger 0), opens a fresh DEALER, connects and sends `ready`.
 * 0 ok, -1 (logged; retry later), -2 when the endpoint itself is invalid (retrying cannot help).
 * Resets the silence clock. */
int wrk_conn_open(wrk_conn *c);
/* The current socket (NULL when closed). */
void *wrk_conn_socket(const wrk_conn *c);
/* Sends a built message; 0 ok, -1 when the socket could not take it (caller reconnects). */
int wrk_conn_send(wrk_conn *c, const proto_writer *w);
/* Records a message from the broker (life sign; resets the back-off once registered). */
void wrk_conn_heard(wrk_conn *c);
/* 1 when the broker has been silent longer than WRK_DEAD_BEATS heartbeats. */
int wrk_conn_silent(const wrk_conn *c, int64_t now_ms);
/* Sends `heartbeat {worker, credit}` if one is due; 0 ok, -1 send failure. Also logs
 * handshake failures reported by the socket monitor (once per connection). */
int wrk_conn_tick(wrk_conn *c, int64_t now_ms);
/* Milliseconds until the next heartbeat is due (>= 0). */
int wrk_conn_next_beat_ms(const wrk_conn *c, int64_t now_ms);
/* The delay before the next reconnect attempt, then doubles it (capped). */
int wrk_conn_backoff_next(wrk_conn *c);
/* Number of times wrk_conn_open ran (1 after the first connect). */
int wrk_conn_opens(const wrk_conn *c);
/* Handshake failures seen by the monitor since wrk_conn_new (auth = refused by the broker's
 * ZAP handler). Updated by wrk_conn_tick. */
int wrk_conn_auth_failures(const wrk_conn *c);

#endif
