/* broker/registry.h — the broker's in-memory table of connected workers: ZeroMQ identity,
 * worker id, role, capacity (credit), leased count and liveness.
 *
 * Liveness lives here, not in the store: a lease is extended by ANY message from its worker, so
 * the expiry of all of a worker's leases is "now - last_seen > lease_ms" — one timestamp per
 * worker instead of one LMDB write per heartbeat. After a restart the table is empty (leases in
 * the store are re-queued by taskq_recover). The table is plain data so the event loop can
 * snapshot it before a batch and restore it if the batch is replayed.
 */
#ifndef THINKFAST_BRK_REGISTRY_H
#define THINKFAST_BRK_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#define BRK_IDENT_MAX 256

typedef struct brk_worker {
    uint8_t ident[BRK_IDENT_MAX];   /* ROUTER identity of its socket */
    size_t ident_len;
    char id[64];                    /* the worker's own id ("host-pid-n") */
    int kind;                       /* role: BRK_KIND_* */
    uint32_t credit;                /* capacity: tasks it may hold at once */
    uint32_t leased;                /* tasks it holds now */
    char host[64];
    int64_t pid;
    int64_t last_seen_ms;           /* monotonic */
    int64_t registered_wall_ms;
    int64_t last_seen_wall_ms;
} brk_worker;

typedef struct brk_registry {
    brk_worker *w;
    int n, cap;
} brk_registry;

void brk_registry_init(brk_registry *r);
void brk_registry_free(brk_registry *r);
/* Lookups: NULL when absent. Pointers are invalidated by add/remove/restore. */
brk_worker *brk_registry_by_ident(brk_registry *r, const void *ident, size_t len);
brk_worker *brk_registry_by_id(brk_registry *r, const char *id);
/* Adds a zeroed entry for ident (the caller fills it). */
brk_worker *brk_registry_add(brk_registry *r, const void *ident, size_t len);
void brk_registry_remove(brk_registry *r, brk_worker *w);
/* Copies r into snap (snap is reallocated as needed) / restores r from snap. */
void brk_registry_copy(brk_registry *dst, const brk_registry *src);

#endif
