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
    size_t map_max_bytes;         /* map growth limit; 0 = unlimited (grow while the disk allows) */
    uint32_t full_retry_ms;       /* store-full state: how often a write is retried */
    /* Security (borrowed; NULL = off). curve set: both endpoints are CURVE servers with this
     * keypair. allow set too: a ZAP handler admits only the listed client keys; allow NULL with
     * curve set accepts any client key (encryption without authentication: --allow-any-key). */
    const zkey_pair *curve;
    const zap_allowlist *allow;
    /* Allow-list reload (optional; NULL = none). When *reload becomes nonzero (a SIGHUP handler
     * sets it) the loop clears it within one poll interval and re-reads allow_path (the
     * --allow-keys file): a good file replaces the list for later handshakes ("allow-list
     * reloaded: N keys from FILE"), a bad one is logged (FILE:LINE: why) and the old list stays.
     * Without an allow-list (plaintext, --allow-any-key) it logs that there is nothing to reload. */
    volatile sig_atomic_t *reload;
    const char *allow_path;
} brk_config;

#define BRK_DEFAULT_GROUP_COMMIT_MS 0
#define BRK_DEFAULT_MAX_BATCH 4096
#define BRK_DEFAULT_MAX_ATTEMPTS 3
#define BRK_DEFAULT_FULL_RETRY_MS 2000

void brk_config_defaults(brk_config *c);

/* Store full (DESIGN.md: "a full disk is an error, not corruption"). When a batch cannot commit
 * because the map reached map_max_bytes or the file system refused to extend data.mdb, the
 * batch is aborted whole (nothing partial, nothing sent) and the broker enters the store-full
 * state, logging one error that says what is full, the map size, the limit and the fixes:
 *   - submit and cancel are answered {ok:false, error:"store full: ..."}; no task is leased;
 *   - a worker `result` is answered `error {task, error:"store full: ..."}` and NOT acked; the
 *     task is re-queued (without counting an attempt, the holder told `cancel`) by the first
 *     write that succeeds, so outputs lost with the refused message are redone; `fail`,
 *     re-registrations and disconnects are likewise applied then (lease expiry waits too);
 *   - status, watch, list, report and workers keep working from read transactions; status and
 *     list carry "store": "ok" | "full" (and "store_error" with the reason while full).
 * Every full_retry_ms (and at once when mdb_reader_check freed stale reader slots) the broker
 * checks for some headroom (store_room_check: a 32nd of the map, 64 KiB..16 MiB) and then tries
 * a normal batch; the first one that commits ends the state. A store that refills within 10 s
 * of leaving the state backs its retries off (x2 per episode, up to x32), and the error is
 * logged at most every 30 s, so a store stuck at its limit neither churns work nor floods the
 * log. A restart with a larger --map-max-mb resumes from the store like any restart; a restart
 * on a store still full comes up in the full state with its recovery deferred. Other store
 * failures still stop the broker (nothing unacknowledged is lost: the batch was not committed,
 * nothing was sent). */

/* Runs the broker until *stop becomes nonzero (set it from a signal handler); the current
 * batch is committed and its messages sent before returning. Returns 0 on a clean stop, -1 with
 * err set when the store or sockets could not be opened or the store failed. */
int brk_run(const brk_config *cfg, volatile sig_atomic_t *stop, char *err, size_t errlen);

#endif
