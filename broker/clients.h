/* broker/clients.h — the client command set (submit, status, list, cancel, report, workers,
 * watch; see jobs/proto.h), executed inside the current batch.
 *
 * Replies: cmd = the request's cmd, fields {ok: bool, rid (echoed when the request had one),
 * ...}; failures are {ok:false, error:"text"}. A message that could not be parsed at all is
 * answered with cmd "error" {ok:false, error}.
 *
 * submit {spec: JSON text, filename?: str}: the text is validated with job_spec_parse (errors
 * come back as "FILE:LINE:COL: field: message", FILE = filename or "spec"), the dataset is
 * loaded by the broker (workers get problem text in task payloads), and the job stored.
 * Relative dataset paths resolve against the broker's working directory: clients should send
 * the canonical JSON of a spec loaded with job_spec_load (absolute paths). max_attempts: the
 * spec's value when the submitted text names "max_attempts", else the broker's --max-attempts.
 */
#ifndef THINKFAST_BRK_CLIENTS_H
#define THINKFAST_BRK_CLIENTS_H

#include <stdint.h>

#include "broker/registry.h"
#include "broker/taskq.h"
#include "jobs/proto.h"

typedef struct brk_client_env {
    uint32_t default_max_attempts;
    const brk_registry *workers;
    /* NULL while the store is writable; in the store-full state the reason ("store full: ..."):
     * submit and cancel are refused with it, status/watch/list report "store":"full" and it as
     * "store_error"; the batch then runs in a read transaction. */
    const char *store_full;
} brk_client_env;

/* Executes one client request in batch b; returns the reply (never NULL; caller destroys).
 * *fatal is set to a STORE_ERR_* when the store failed (the batch must be aborted/replayed),
 * else 0. */
proto_writer *brk_client_handle(brk_batch *b, const brk_client_env *env, const proto_msg *m, int *fatal);

/* {ok:false, error} reply with the given cmd ("error" for unparseable requests). */
proto_writer *brk_client_error(const char *cmd, const proto_msg *m, const char *error);

#endif
