/* tools/jobctl.h — internals shared by the jobctl modules (bin/jobctl: tools/jobctl_main.c).
 *
 *   jobctl_client.c   request/reply client for the broker's client endpoint (DEALER, rid matching,
 *                     timeouts), JSON printing helpers, the subcommands' argument parser
 *   jobctl_cmds.c     submit, status, list, cancel, watch, report, workers (online)
 *   jobctl_offline.c  export, reaggregate (read-only store, no broker)
 *   jobctl_local.c    local: broker + workers as child processes, run one job, report, shut down
 *   jobctl_keygen.c   keygen: a CURVE keypair (BASE.key, BASE.pub) for the broker or a client
 */
#ifndef THINKFAST_JOBCTL_H
#define THINKFAST_JOBCTL_H

#include <stddef.h>
#include <stdint.h>

#include "common/zkey.h"
#include "common/util.h"
#include "jobs/proto.h"

#define JOBCTL_DEFAULT_BROKER "tcp://127.0.0.1:5555"
#define JOBCTL_DEFAULT_TIMEOUT_MS 5000

typedef struct jobctl_opts {
    const char *broker;     /* client endpoint */
    int timeout_ms;         /* per request */
} jobctl_opts;

/* ---- client ---- */
typedef struct jobctl_client jobctl_client;

/* Process-wide CURVE setting for every client created afterwards (borrowed; NULL = plaintext,
 * the default). bin/jobctl sets it once from --curve-server-key/--curve-keyfile (or the env). */
void jobctl_client_set_curve(const zkey_client *curve);
jobctl_client *jobctl_client_new(const char *endpoint, int timeout_ms);
void jobctl_client_destroy(jobctl_client **c);
/* Starts a request body: "v", "cmd", "rid" are written; the caller writes n_fields pairs. */
proto_writer *jobctl_req_new(jobctl_client *c, const char *cmd, uint32_t n_fields);
/* Sends *req (consumed) and waits for the reply with the same rid. Returns 0 with *reply set
 * when the broker answered ok:true; -1 with err "broker: TEXT" for ok:false (reply NULL); -2
 * with err when nothing came back within the timeout or the socket failed; -3 with err when the
 * broker refused the connection (CURVE key not allowed, or a CURVE/plaintext mismatch: seen by
 * the socket's handshake monitor; returned at once, without waiting for the timeout). */
int jobctl_call(jobctl_client *c, proto_writer **req, proto_msg **reply, char *err, size_t errlen);
/* Convenience: a request with one string field (e.g. status {job}). */
int jobctl_call_job(jobctl_client *c, const char *cmd, const char *job, proto_msg **reply, char *err, size_t errlen);

/* ---- output helpers ---- */
/* JSON string literal of s[0..n) (invalid UTF-8 bytes become U+FFFD). */
void jobctl_json_str(util_buf *out, const char *s, size_t n);
/* JSON of a map, leaving out the protocol keys v, cmd, rid, ok. */
void jobctl_json_map_public(util_buf *out, const proto_val *map);
/* Prints the human table of a stats map (k, coverage, majority, ...) to stdout. */
void jobctl_print_stats_table(const char *title, const proto_val *stats);
/* Directory of the running executable (from /proc/self/exe) into buf; 0 or -1. */
int jobctl_exe_dir(char *buf, size_t cap);

/* ---- arguments ---- */
/* One flag of a subcommand's table (ended by {NULL}): a switch when on != NULL (*on = 1),
 * else it takes the next argument (*value = it). */
typedef struct jobctl_flag {
    const char *name;       /* "--json" */
    int *on;
    const char **value;
} jobctl_flag;
/* Parses argv[1..argc) of subcommand argv[0]: --help/-h, the flags in the table (NULL = none)
 * and exactly n_pos positional arguments into pos (pos_name names them in "missing ..."). Returns
 * 0; 1 after printing usage to stdout (--help: the caller exits 0); 2 after printing
 * "jobctl CMD: why" (and the usage) to stderr. */
int jobctl_parse_args(int argc, char **argv, const char *usage, const jobctl_flag *flags, int n_pos,
                      const char *pos_name, const char **pos);

/* ---- subcommands (argv[0] is the subcommand name; return the exit status) ---- */
int jobctl_cmd_submit(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_status(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_list(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_cancel(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_watch(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_report(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_workers(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_export(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_reaggregate(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_local(const jobctl_opts *o, int argc, char **argv);
int jobctl_cmd_keygen(const jobctl_opts *o, int argc, char **argv);

/* Shared pieces used by `local`. */
int jobctl_submit_spec(jobctl_client *c, const char *path, char *job_id, size_t cap, char *err, size_t errlen);
/* Watches until the job ends; prints progress (bar on a TTY, lines otherwise) to stderr when
 * quiet == 0. Returns 0 done, 1 failed/cancelled, 3 broker unreachable. *stop (optional) aborts. */
int jobctl_watch_job(jobctl_client *c, const char *job, int quiet, volatile int *stop);
/* Fetches and prints the report (JSON when json != 0). 0 ok, 1 error. */
int jobctl_report_job(jobctl_client *c, const char *job, int json);

#endif
