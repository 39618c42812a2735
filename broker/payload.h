/* broker/payload.h — translation between stored state and task contents on the wire: the
 * payload builders for each task kind (broker -> worker) and the validation + idempotent commit
 * of result outputs (worker -> broker). The contract is documented in broker/tasks.h.
 */
#ifndef THINKFAST_BRK_PAYLOAD_H
#define THINKFAST_BRK_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/proto.h"
#include "jobs/spec.h"
#include "store/store.h"

/* Encodes the job's task parameters (model, sampling, prompt, grader, k, seed) as one msgpack
 * map; *out is heap memory owned by the caller. */
void payload_params_encode(const job_spec *spec, uint8_t **out, size_t *len);

/* Writes the `payload` map value for task into w (after the caller wrote the key). Reads the
 * problems / generations / scores it needs from the transaction. 0 or a STORE_ERR_*. */
int payload_write(store_txn *t, const store_job *job, const store_task *task, proto_writer *w);

/* Validates every output of a result message for task (all before committing any), then
 * commits them idempotently. *new_outputs gets how many were not present before.
 * Returns 0, 1 for a malformed output (err names the index and field; nothing committed), or a
 * negative STORE_ERR_*. For aggregate tasks the stats record is written unless a final record
 * exists and this task is not final. */
int payload_commit_outputs(store_txn *t, const store_job *job, const store_task *task,
                           const proto_val *outputs, int64_t now_ms, uint64_t *new_outputs,
                           char *err, size_t errlen);

#endif
