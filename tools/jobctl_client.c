/* tools/jobctl_client.c — jobctl's request/reply client, output helpers and the subcommands'
 * argument parser.
 *
 * One DEALER socket per jobctl process. Every request carries a fresh "rid" and replies with
 * any other rid (late answers to a request that timed out) are discarded, so a retried request
 * never reads a stale reply.
 *
 * With CURVE (jobctl_client_set_curve) a socket monitor reports handshake failures: a refusal by
 * the broker's ZAP handler ends the call at once with a message naming our key, instead of a
 * bare timeout.
 */
#include "tools/jobctl.h"
#include "tools/jobctl_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "broker/zap.h"
#include "common/check.h"

static const zkey_client *g_curve;   /* process-wide: set once by main before any client */

void jobctl_client_set_curve(const zkey_client *curve) { g_curve = curve; }

struct jobctl_client {
    void *zctx, *sock;
    void *mon;                       /* PAIR end of the handshake monitor (NULL if unavailable) */
    const zkey_client *curve;
    char endpoint[512];
    int timeout_ms;
    uint64_t next_rid;
};

jobctl_client *jobctl_client_new(const char *endpoint, int timeout_ms) {
    jobctl_client *c = xcalloc(1, sizeof *c);
    c->zctx = zmq_ctx_new();
    CHECK(c->zctx, "zmq_ctx_new failed");
    c->sock = zmq_socket(c->zctx, ZMQ_DEALER);
    CHECK(c->sock, "zmq_socket failed");
    int zero = 0;
    int64_t maxmsg = PROTO_MAX_BODY + 1024;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(c->sock, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->timeout_ms = timeout_ms;
    c->next_rid = ((uint64_t)getpid() << 20) + 1;
    c->curve = g_curve;
    if (c->curve) {
        char err[256];
        if (zkey_apply_client(c->sock, c->curve, err, sizeof err) != 0) {
            fprintf(stderr, "jobctl: %s\n", err);
            zmq_close(c->sock);
            c->sock = NULL;
            return c;
        }
    }
    c->mon = zap_monitor_open(c->zctx, c->sock);
    if (zmq_connect(c->sock, endpoint) != 0) {
        fprintf(stderr, "jobctl: --broker %s: %s\n", endpoint, zmq_strerror(zmq_errno()));
        zmq_close(c->sock);
        c->sock = NULL;
    }
    return c;
}

void jobctl_client_destroy(jobctl_client **cp) {
    if (!cp || !*cp) return;
    if ((*cp)->mon) zmq_close((*cp)->mon);
    if ((*cp)->sock) zmq_close((*cp)->sock);
    zmq_ctx_term((*cp)->zctx);
    free(*cp);
    *cp = NULL;
}

proto_writer *jobctl_req_new(jobctl_client *c, const char *cmd, uint32_t n_fields) {
    proto_writer *w = proto_writer_new(cmd, n_fields + 1);
    proto_w_key(w, "rid");
    proto_w_u64(w, c->next_rid++);
    return w;
}

/* Reads one monitor event; 1 with a refusal message in err when it is a handshake failure. */
static int monitor_refusal(jobctl_client *c, char *err, size_t errlen) {
    uint16_t event;
    uint32_t value;
    if (!zap_monitor_read(c->mon, &event, &value)) return 0;
    char what[160];
    zap_handshake_describe(event, value, what, sizeof what);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        util_err(err, errlen, "the broker at %s refused our CURVE key %s (%s): it is not in the broker's "
                 "--allow-keys file", c->endpoint, c->curve ? c->curve->mine.public_z85 : "(none)", what);
        return 1;
    }
    util_err(err, errlen, "handshake with the broker at %s failed: %s: %s", c->endpoint, what,
             c->curve ? "wrong --curve-server-key, or the broker does not use CURVE"
                      : "the broker requires CURVE: pass --curve-server-key and --curve-keyfile (or $"
                        ZKEY_ENV_SERVER_KEY " and $" ZKEY_ENV_KEYFILE ")");
    return 1;
}

int jobctl_call(jobctl_client *c, proto_writer **req, proto_msg **reply, char *err, size_t errlen) {
    *reply = NULL;
    uint64_t rid = c->next_rid - 1;
    if (!c->sock) { proto_writer_destroy(req); return util_err(err, errlen, "no socket for %s", c->endpoint), -2; }
    int rc = proto_send(c->sock, NULL, 0, *req, 0);   /* SNDTIMEO bounds the wait */
    proto_writer_destroy(req);
    if (rc != 0) return util_err(err, errlen, "send to %s: %s", c->endpoint, zmq_strerror(zmq_errno())), -2;
    int64_t deadline = util_now_ms() + c->timeout_ms;
    for (;;) {
        int64_t left = deadline - util_now_ms();
        if (left <= 0) break;
        zmq_pollitem_t it[2] = {{.socket = c->sock, .events = ZMQ_POLLIN}, {.socket = c->mon, .events = ZMQ_POLLIN}};
        int n = zmq_poll(it, c->mon ? 2 : 1, (long)left);
        if (n < 0) { if (zmq_errno() == EINTR) continue; break; }
        if (n == 0) continue;
        if (c->mon && (it[1].revents & ZMQ_POLLIN)) {
            if (monitor_refusal(c, err, errlen)) return -3;
            if (!(it[0].revents & ZMQ_POLLIN)) continue;
        }
        proto_msg *m = NULL;
        char perr[256];
        int r = proto_recv(c->sock, 0, NULL, 0, NULL, &m, ZMQ_DONTWAIT, perr, sizeof perr);
        if (r == 1) continue;
        if (r != PROTO_OK) return util_err(err, errlen, "malformed reply from the broker: %s", perr), -2;
        uint64_t got;
        if (proto_get_u64(proto_root(m), "rid", &got) == 0 && got != rid) { proto_msg_destroy(&m); continue; }
        int ok = 0;
        if (proto_get_bool(proto_root(m), "ok", &ok) != 0 || !ok) {
            const char *e;
            uint32_t el;
            util_err(err, errlen, "broker: %s", proto_get_str(proto_root(m), "error", &e, &el) == 0 ? e : "request failed");
            proto_msg_destroy(&m);
            return -1;
        }
        *reply = m;
        return 0;
    }
    return util_err(err, errlen, "no reply from %s within %d ms (is the broker running? see --broker, --timeout-ms)",
                    c->endpoint, c->timeout_ms), -2;
}

int jobctl_call_job(jobctl_client *c, const char *cmd, const char *job, proto_msg **reply, char *err, size_t errlen) {
    proto_writer *w = jobctl_req_new(c, cmd, 1);
    proto_w_key(w, "job");
    proto_w_str(w, job);
    return jobctl_call(c, &w, reply, err, errlen);
}

/* ---- JSON helpers ---- */

/* Kept for the tools that call it (declared in tools/jobctl.h); the escaping is util_buf_json_str. */
void jobctl_json_str(util_buf *out, const char *str, size_t n) { util_buf_json_str(out, str, n); }

void jobctl_json_map_public(util_buf *out, const proto_val *map) {
    util_buf_append(out, "{", 1);
    int first = 1;
    for (uint32_t i = 0; map && map->type == PV_MAP && i < map->v.map.n; i++) {
        const char *k = map->v.map.keys[i];
        if (!strcmp(k, "v") || !strcmp(k, "cmd") || !strcmp(k, "rid") || !strcmp(k, "ok")) continue;
        if (!first) util_buf_append(out, ",", 1);
        first = 0;
        util_buf_json_str(out, k, map->v.map.key_lens[i]);
        util_buf_append(out, ":", 1);
        proto_val_to_json(&map->v.map.vals[i], out);
    }
    util_buf_append(out, "}", 1);
}

static int num_at(const proto_val *arr, uint32_t i, double *out) {
    if (!arr || arr->type != PV_ARRAY || i >= arr->v.arr.n) return -1;
    const proto_val *v = &arr->v.arr.items[i];
    if (v->type == PV_FLOAT) *out = v->v.f;
    else if (v->type == PV_INT) *out = (double)v->v.i;
    else if (v->type == PV_UINT) *out = (double)v->v.u;
    else return -1;
    return 0;
}

void jobctl_print_stats_table(const char *title, const proto_val *stats) {
    int64_t problems = 0, samples = 0, correct = 0;
    proto_get_i64(stats, "problems", &problems);
    proto_get_i64(stats, "samples", &samples);
    proto_get_i64(stats, "correct", &correct);
    printf("%s: %lld problems, %lld samples, %lld correct (%.1f%%)\n", title, (long long)problems, (long long)samples,
           (long long)correct, samples ? 100.0 * (double)correct / (double)samples : 0.0);
    const proto_val *k = proto_get_array(stats, "k");
    const char *cols[] = {"coverage", "majority", "bon", "wbon"};
    const proto_val *arrs[4], *cis[4];
    int n_cols = 0;
    for (int i = 0; i < 4; i++) {
        if ((arrs[n_cols] = proto_get_array(stats, cols[i])) == NULL) continue;
        char ck[32];
        snprintf(ck, sizeof ck, "%s_ci", cols[i]);
        cis[n_cols] = proto_get_array(stats, ck);
        cols[n_cols++] = cols[i];
    }
    printf("%6s", "k");
    for (int j = 0; j < n_cols; j++) {
        printf("  %10s", cols[j]);
        if (cis[j]) printf("   %-16s", "95% interval");
    }
    printf("\n");
    for (uint32_t i = 0; k && i < k->v.arr.n; i++) {
        double kv = 0;
        num_at(k, i, &kv);
        printf("%6.0f", kv);
        for (int j = 0; j < n_cols; j++) {
            double x, lo, hi;
            if (num_at(arrs[j], i, &x) == 0 && isfinite(x)) printf("  %10.4f", x);
            else printf("  %10s", "-");
            if (!cis[j]) continue;
            const proto_val *pair = i < cis[j]->v.arr.n ? &cis[j]->v.arr.items[i] : NULL;
            if (pair && num_at(pair, 0, &lo) == 0 && num_at(pair, 1, &hi) == 0 && isfinite(lo) && isfinite(hi))
                printf("   [%.4f, %.4f]", lo, hi);
            else printf("   %-16s", "-");
        }
        printf("\n");
    }
    int exact = 1;
    if (proto_get_bool(stats, "majority_exact", &exact) == 0 && !exact) printf("(majority: seeded estimate)\n");
    fflush(stdout);
    jobctl_print_breakdown_map(stdout, stats);   /* by subject / level, when the stats have them */
}

int jobctl_exe_dir(char *buf, size_t cap) {
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return -1;
    *slash = 0;
    return 0;
}

/* ---- arguments ---- */

int jobctl_parse_args(int argc, char **argv, const char *usage, const jobctl_flag *flags, int n_pos,
                      const char *pos_name, const char **pos) {
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { printf("%s", usage); return 1; }
        const jobctl_flag *f = flags;
        while (f && f->name && strcmp(f->name, a) != 0) f++;
        if (f && f->name) {
            if (f->on) {
                *f->on = 1;
                continue;
            }
            if (i + 1 >= argc) { fprintf(stderr, "jobctl %s: %s needs a value\n", argv[0], a); return 2; }
            *f->value = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) { fprintf(stderr, "jobctl %s: unknown flag %s\n%s", argv[0], a, usage); return 2; }
        if (n >= n_pos) { fprintf(stderr, "jobctl %s: unexpected argument %s\n%s", argv[0], a, usage); return 2; }
        pos[n++] = a;
    }
    if (n < n_pos) { fprintf(stderr, "jobctl %s: missing %s\n%s", argv[0], pos_name, usage); return 2; }
    return 0;
}
