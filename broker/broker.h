/* broker/broker.h — the broker daemon: configuration and the event loop entry point.
 *
 * One thread, one zmq_poll loop over two ROUTER sockets (clients, workers). Each iteration is a
 * batch: drain the readable messages (and keep collecting for up to group_commit_ms), apply
 * them all, plus timers (lease expiry) and dispatch (lease ready tasks to workers with free
 * credit), in ONE LMDB write transaction; commit (fsync'd unless nosync); only then send the
 * replies, acks and task messages. A broker killed at any instant therefore never acknowledged
 * anything it had not made durable. Module map:
 *   broker/loop.c      sockets, poll, batching, worker protocol, timers, sending
 *   broker/clients.c   client commands
 *   broker/taskq.c     task state machine and DAG release on the store
 *   broker/payload.c   task payloads and result outputs
 *   broker/registry.c  connected workers (in memory)
 *   broker/zap.c       who may connect: CURVE client-key allow-list + ZAP handler thread
 *   broker/zkey.c      CURVE key files
 */
#ifndef THINKFAST_BROKER_H
#define THINKFAST_BROKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/zap.h"
#include "common/zkey.h"

typedef struct brk_config {
    const char *db;               /* store directory (created if missing) */
    const char *clients_ep;       /* ROUTER endpoint for clients, e.g. tcp://127.0.0.1:5555 */
    const char *workers_ep;       /* ROUTER endpoint for workers, e.g. tcp://127.0.0.1:5556 */
    uint32_t lease_ms;            /* a worker silent this long loses its leases */
    uint32_t max_attempts;        /* default failed attempts before a task is failed */
    uint32_t group_commit_ms;     /* extra time a batch keeps collecting messages */
    uint32_t max_batch;           /* most messages per batch */
    int nosync;                   /* 1 = no fsync per commit ("fast, not durable") */
    size_t map_bytes;             /* initial LMDB map size (grows on demand) */
    /* Security (borrowed; NULL = off). curve set: both endpoints are CURVE servers with this
     * keypair. allow set too: a ZAP handler admits only the listed client keys; allow NULL with
     * curve set accepts any client key (encryption without authentication: --allow-any-key). */
    const zkey_pair *curve;
    const zap_allowlist *allow;
} brk_config;

#define BRK_DEFAULT_GROUP_COMMIT_MS 0
#define BRK_DEFAULT_MAX_BATCH 4096
#define BRK_DEFAULT_MAX_ATTEMPTS 3

void brk_config_defaults(brk_config *c);

/* Runs the broker until *stop becomes nonzero (set it from a signal handler); the current
 * batch is committed and its messages sent before returning. Returns 0 on a clean stop, -1 with
 * err set when the store or sockets could not be opened or the store failed. */
int brk_run(const brk_config *cfg, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
