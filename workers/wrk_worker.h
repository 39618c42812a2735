/* workers/wrk_worker.h — the worker daemon's event loop (bin/worker is a CLI around it).
 *
 * One thread owns the socket (wrk_conn) and polls it next to the runner's eventfd
 * (wrk_task.h). It registers, heartbeats, queues leased tasks (up to the credit; run one at a
 * time), streams each task's outputs in `result` messages of at most WRK_RESULT_BYTES
 * (final:false ... final:true, with telemetry), sends `progress` every heartbeat while a task
 * runs, obeys `cancel`, and on `reregister` or broker silence drops its tasks (the broker
 * re-queues them) and reconnects with a fresh socket after a back-off. A stop request
 * (SIGTERM) sends `disconnect` and returns.
 */
#ifndef THINKFAST_WRK_WORKER_H
#define THINKFAST_WRK_WORKER_H

#include <signal.h>

#include "common/zkey.h"

typedef struct wrk_worker_cfg {
    const char *endpoint;   /* broker's worker endpoint */
    const char *role;       /* sample | score | aggregate */
    const char *id;         /* worker id */
    const char *host;
    int credit;             /* tasks held at once (>= 1) */
    int heartbeat_ms;       /* 0 = PROTO_HEARTBEAT_MS */
    const zkey_client *curve; /* NULL = plaintext; else CURVE client keys (borrowed) */
} wrk_worker_cfg;

/* Runs until *stop becomes non-zero. Returns the process exit status (0 clean). */
int wrk_worker_run(const wrk_worker_cfg *cfg, volatile sig_atomic_t *stop);

#endif
