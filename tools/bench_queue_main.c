/* tools/bench_queue_main.c — bin/bench_queue: the work-queue benchmark behind `make bench`.
 *
 * Measures, in one run, on loopback:
 *   1. broker throughput: a synth job of N problems with chunk 1 and n 1 (so every task is tiny)
 *      served by 1, 2, 4, 8 simulated workers per role (threads speaking the wire protocol,
 *      answering instantly, credit C each). Reported: tasks/s dispatched (task messages
 *      received) and tasks/s durably committed (final acks received: the broker acks only after
 *      the fsync'd group commit), over the window first task -> last ack.
 *   2. dispatch latency: one worker per role with credit 1; the time from sending a task's final
 *      result to receiving the next task (commit + lease + send), p50 / p99.
 *   3. result ingest: sample tasks returning large texts; committed MB/s.
 *   4. end to end with the real programs (bin/worker processes, replay backend): samples/s;
 *   5. the same throughput run with the broker's --nosync, labelled not durable, to show what
 *      the fsync costs;
 *   6. baselines in the same run: raw LMDB inserts in fsync'd write transactions (batch sizes
 *      1, 64, 1024) and raw ZeroMQ DEALER/ROUTER round trips (sequential p50/p99 and pipelined
 *      messages/s), so the broker's cost is a ratio.
 * The broker is the real bin/broker (a sibling of this program), started as a child process on
 * a temp store. Output: one JSON object (stdout, or --out FILE).
 */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common/check.h"
#include "common/log.h"
#include "common/util.h"
#include "jobs/proto.h"

/* ---------------------------------------------------------------- helpers */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(int64_t *v, size_t n, double q) {
    if (!n) return NAN;
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return (double)v[i];
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *ftw) {
    (void)sb; (void)f; (void)ftw;
    return remove(p);
}

static char g_bindir[1024];

/* ---------------------------------------------------------------- simulated workers */

typedef struct sim {
    pthread_t th;
    const char *ep;
    char id[64];
    const char *role;
    int credit;
    int text_bytes;
    volatile int *stop;
    _Atomic uint64_t received, acked;
    _Atomic uint64_t bytes_acked;
    _Atomic int64_t first_task_ns, last_ack_ns;
    int64_t *lat; size_t n_lat, cap_lat;   /* result sent -> next task (credit 1 runs) */
    char *text;
} sim;

static void sim_send_ready(sim *s, void *sock) {
    proto_writer *w = proto_writer_new("ready", 5);
    proto_w_key(w, "worker"); proto_w_str(w, s->id);
    proto_w_key(w, "role"); proto_w_str(w, s->role);
    proto_w_key(w, "credit"); proto_w_u64(w, (uint64_t)s->credit);
    proto_w_key(w, "host"); proto_w_str(w, "bench");
    proto_w_key(w, "pid"); proto_w_i64(w, getpid());
    proto_send(sock, NULL, 0, w, 0);
    proto_writer_destroy(&w);
}

/* Builds the final result for one task with instant, valid outputs. Returns bytes of text. */
static size_t sim_answer(sim *s, void *sock, const proto_val *root) {
    uint64_t task = 0, attempt = 0;
    proto_get_u64(root, "task", &task);
    proto_get_u64(root, "attempt", &attempt);
    const proto_val *pl = proto_get_map(root, "payload");
    const char *kind = "";
    uint32_t kl;
    proto_get_str(root, "kind", &kind, &kl);
    proto_writer *w = proto_writer_new("result", 4);
    proto_w_key(w, "task"); proto_w_u64(w, task);
    proto_w_key(w, "attempt"); proto_w_u64(w, attempt);
    proto_w_key(w, "final"); proto_w_bool(w, 1);
    proto_w_key(w, "outputs");
    size_t bytes = 0;
    if (!strcmp(kind, "sample")) {
        const proto_val *probs = proto_get_array(pl, "problems");
        const proto_val *smp = proto_get_map(pl, "sampling");
        int64_t n = 1;
        proto_get_i64(smp, "n", &n);
        uint32_t np = probs ? probs->v.arr.n : 0;
        proto_w_array(w, (uint32_t)(np * n));
        for (uint32_t i = 0; i < np; i++) {
            int64_t p = 0;
            proto_get_i64(&probs->v.arr.items[i], "p", &p);
            for (int64_t k = 0; k < n; k++) {
                proto_w_map(w, 6);
                proto_w_key(w, "p"); proto_w_i64(w, p);
                proto_w_key(w, "s"); proto_w_i64(w, k);
                proto_w_key(w, "text"); proto_w_strn(w, s->text, (size_t)s->text_bytes);
                proto_w_key(w, "tokens"); proto_w_i64(w, s->text_bytes / 4);
                proto_w_key(w, "time_s"); proto_w_f64(w, 0.0);
                proto_w_key(w, "finish"); proto_w_str(w, "stop");
                bytes += (size_t)s->text_bytes;
            }
        }
    } else if (!strcmp(kind, "score")) {
        const proto_val *items = proto_get_array(pl, "items");
        uint32_t n = items ? items->v.arr.n : 0;
        proto_w_array(w, n);
        for (uint32_t i = 0; i < n; i++) {
            int64_t p = 0, k = 0;
            proto_get_i64(&items->v.arr.items[i], "p", &p);
            proto_get_i64(&items->v.arr.items[i], "s", &k);
            proto_w_map(w, 5);
            proto_w_key(w, "p"); proto_w_i64(w, p);
            proto_w_key(w, "s"); proto_w_i64(w, k);
            proto_w_key(w, "extracted"); proto_w_str(w, "1");
            proto_w_key(w, "canonical"); proto_w_str(w, "1");
            proto_w_key(w, "correct"); proto_w_bool(w, 1);
        }
    } else {
        proto_w_array(w, 1);
        proto_w_map(w, 1);
        proto_w_key(w, "stats");
        proto_w_map(w, 3);
        proto_w_key(w, "k"); proto_w_array(w, 1); proto_w_i64(w, 1);
        proto_w_key(w, "coverage"); proto_w_array(w, 1); proto_w_f64(w, 1.0);
        proto_w_key(w, "majority"); proto_w_array(w, 1); proto_w_f64(w, 1.0);
    }
    proto_send(sock, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    return bytes;
}

static void *sim_main(void *arg) {
    sim *s = arg;
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(sock, s->ep);
    sim_send_ready(s, sock);
    int64_t last_hb = util_now_ms(), last_sent_ns = 0;
    /* bytes of text per task id, to credit ingest on the ack */
    while (!*s->stop) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 50);
        for (;;) {
            proto_msg *m = NULL;
            char err[256];
            int r = proto_recv(sock, 0, NULL, 0, NULL, &m, ZMQ_DONTWAIT, err, sizeof err);
            if (r == 1) break;
            if (r != PROTO_OK) continue;
            const char *cmd = proto_cmd(m);
            int64_t now = util_now_ns();
            if (!strcmp(cmd, "task")) {
                if (!s->received) s->first_task_ns = now;
                s->received++;
                if (last_sent_ns && s->credit == 1) {
                    if (s->n_lat == s->cap_lat) {
                        s->cap_lat = s->cap_lat ? 2 * s->cap_lat : 4096;
                        s->lat = xrealloc(s->lat, s->cap_lat * sizeof *s->lat);
                    }
                    s->lat[s->n_lat++] = now - last_sent_ns;
                }
                size_t b = sim_answer(s, sock, proto_root(m));
                s->bytes_acked += b;   /* sent; the run only counts when the job ends done (all committed) */
                last_sent_ns = util_now_ns();
            } else if (!strcmp(cmd, "ack")) {
                int fin = 0;
                proto_get_bool(proto_root(m), "final", &fin);
                s->acked++;
                s->last_ack_ns = now;
            } else if (!strcmp(cmd, "reregister")) {
                sim_send_ready(s, sock);
            }
            proto_msg_destroy(&m);
        }
        if (util_now_ms() - last_hb >= 500) {
            proto_writer *w = proto_writer_new("heartbeat", 2);
            proto_w_key(w, "worker"); proto_w_str(w, s->id);
            proto_w_key(w, "credit"); proto_w_u64(w, (uint64_t)s->credit);
            proto_send(sock, NULL, 0, w, 0);
            proto_writer_destroy(&w);
            last_hb = util_now_ms();
        }
    }
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return NULL;
}

/* ---------------------------------------------------------------- broker runs */

typedef struct run_result {
    int workers, credit;
    uint64_t tasks, dispatched, committed;
    double window_s, dispatched_per_s, committed_per_s;
    double lat_p50_us, lat_p99_us;
    double mb, mb_per_s;
    int ok;
} run_result;

static int client_call(void *sock, const char *cmd, const char *job, const char *spec, proto_msg **reply, int timeout_ms) {
    static uint64_t rid = 1;
    proto_writer *w = proto_writer_new(cmd, 1 + (job != NULL) + (spec != NULL));
    proto_w_key(w, "rid"); proto_w_u64(w, ++rid);
    if (job) { proto_w_key(w, "job"); proto_w_str(w, job); }
    if (spec) { proto_w_key(w, "spec"); proto_w_str(w, spec); }
    proto_send(sock, NULL, 0, w, 0);
    proto_writer_destroy(&w);
    int64_t end = util_now_ms() + timeout_ms;
    while (util_now_ms() < end) {
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 100) <= 0) continue;
        proto_msg *m;
        char err[256];
        if (proto_recv(sock, 0, NULL, 0, NULL, &m, ZMQ_DONTWAIT, err, sizeof err) != PROTO_OK) continue;
        uint64_t got = 0;
        proto_get_u64(proto_root(m), "rid", &got);
        if (got != rid) { proto_msg_destroy(&m); continue; }
        *reply = m;
        return 0;
    }
    return -1;
}

/* One broker lifetime: n_workers sample + n_workers score workers (+1 aggregate), a job of
 * n_problems problems x n samples with `chunk` problems per task. */
static run_result broker_run(int n_workers, int credit, int n_problems, int n, int chunk, int text_bytes, int nosync) {
    run_result rr = {.workers = n_workers, .credit = credit};
    char tmp[] = "/tmp/thinkfast-bench-XXXXXX";
    if (!mkdtemp(tmp)) return rr;
    char db[256], cep[64], wep[64], broker[1100];
    snprintf(db, sizeof db, "%s/db", tmp);
    snprintf(cep, sizeof cep, "tcp://127.0.0.1:%d", free_port());
    snprintf(wep, sizeof wep, "tcp://127.0.0.1:%d", free_port());
    snprintf(broker, sizeof broker, "%s/broker", g_bindir);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {broker, "--db", db, "--clients", cep, "--workers", wep, "--log-level", "warn",
                        nosync ? "--nosync" : NULL, NULL};
        execv(broker, argv);
        _exit(127);
    }
    void *ctx = zmq_ctx_new();
    void *cs = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(cs, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(cs, cep);
    proto_msg *reply = NULL;
    if (client_call(cs, "list", NULL, NULL, &reply, 10000) != 0) { fprintf(stderr, "bench: broker did not start\n"); goto out; }
    proto_msg_destroy(&reply);

    volatile int stop = 0;
    int n_sims = 2 * n_workers + 1;
    sim *sims = xcalloc((size_t)n_sims, sizeof *sims);
    char *text = xmalloc((size_t)text_bytes + 1);
    for (int i = 0; i < text_bytes; i++) text[i] = (char)('a' + i % 26);
    text[text_bytes] = 0;
    for (int i = 0; i < n_sims; i++) {
        sim *s = &sims[i];
        s->ep = wep;
        s->role = i < n_workers ? "sample" : i < 2 * n_workers ? "score" : "aggregate";
        snprintf(s->id, sizeof s->id, "bench-%s-%d", s->role, i);
        s->credit = i == n_sims - 1 ? 1 : credit;
        s->text_bytes = text_bytes;
        s->text = text;
        s->stop = &stop;
        pthread_create(&s->th, NULL, sim_main, s);
    }
    usleep(200000);
    char spec[512];
    snprintf(spec, sizeof spec,
             "{\"kind\":\"sample\",\"name\":\"bench\",\"model\":{\"backend\":\"replay\"},"
             "\"dataset\":{\"format\":\"synth\",\"n\":%d,\"seed\":1},\"sampling\":{\"n\":%d,\"seed\":1},"
             "\"aggregate\":{\"k\":[1]},\"chunk\":%d}", n_problems, n, chunk);
    if (client_call(cs, "submit", NULL, spec, &reply, 60000) != 0) { fprintf(stderr, "bench: submit failed\n"); stop = 1; goto join; }
    const char *jid_s;
    uint32_t jl;
    char jid[32] = "";
    if (proto_get_str(proto_root(reply), "job", &jid_s, &jl) == 0) snprintf(jid, sizeof jid, "%s", jid_s);
    else {
        util_buf b; util_buf_init(&b); proto_val_to_json(proto_root(reply), &b);
        fprintf(stderr, "bench: submit: %s\n", b.data); util_buf_free(&b);
    }
    proto_msg_destroy(&reply);
    int64_t deadline = util_now_ms() + 300000;
    while (*jid && util_now_ms() < deadline) {
        usleep(20000);
        if (client_call(cs, "status", jid, NULL, &reply, 10000) != 0) continue;
        const char *state;
        uint32_t sl;
        int fin = proto_get_str(proto_root(reply), "state", &state, &sl) == 0 &&
                  (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled"));
        if (fin) {
            rr.ok = !strcmp(state, "done");
            const proto_val *t = proto_get_map(proto_root(reply), "tasks");
            uint64_t d = 0;
            proto_get_u64(t, "done", &d);
            rr.tasks = d;
            proto_msg_destroy(&reply);
            break;
        }
        proto_msg_destroy(&reply);
    }
    usleep(100000);  /* let the last acks arrive */
    stop = 1;
join:
    for (int i = 0; i < n_sims; i++) pthread_join(sims[i].th, NULL);
    int64_t t0 = INT64_MAX, t1 = 0;
    int64_t *lat = NULL;
    size_t n_lat = 0;
    uint64_t bytes = 0;
    for (int i = 0; i < n_sims; i++) {
        sim *s = &sims[i];
        rr.dispatched += s->received;
        rr.committed += s->acked;
        bytes += s->bytes_acked;
        if (s->received && s->first_task_ns < t0) t0 = s->first_task_ns;
        if (s->last_ack_ns > t1) t1 = s->last_ack_ns;
        if (s->n_lat) {
            lat = xrealloc(lat, (n_lat + s->n_lat) * sizeof *lat);
            memcpy(lat + n_lat, s->lat, s->n_lat * sizeof *lat);
            n_lat += s->n_lat;
        }
        free(s->lat);
    }
    if (t1 > t0) {
        rr.window_s = (double)(t1 - t0) * 1e-9;
        rr.dispatched_per_s = (double)rr.dispatched / rr.window_s;
        rr.committed_per_s = (double)rr.committed / rr.window_s;
        rr.mb = (double)bytes / 1e6;
        rr.mb_per_s = rr.mb / rr.window_s;
    }
    rr.lat_p50_us = pct(lat, n_lat, 0.50) / 1e3;
    rr.lat_p99_us = pct(lat, n_lat, 0.99) / 1e3;
    free(lat);
    free(sims);
    free(text);
out:
    zmq_close(cs);
    zmq_ctx_term(ctx);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return rr;
}

/* End to end with the real programs: broker + n real bin/worker processes per role (replay
 * backend, credit 4), a synth job of n_problems x n samples, chunk 8. Returns samples/s over the
 * job's started -> finished window (broker wall clock). */
static double e2e_run(int n_workers, int n_problems, int n, double *job_s) {
    *job_s = NAN;
    char tmp[] = "/tmp/thinkfast-bench-XXXXXX";
    if (!mkdtemp(tmp)) return NAN;
    char db[256], cep[300], wep[300], broker[1100], worker[1100];
    snprintf(db, sizeof db, "%s/db", tmp);
    snprintf(cep, sizeof cep, "ipc://%s/c.sock", tmp);
    snprintf(wep, sizeof wep, "ipc://%s/w.sock", tmp);
    snprintf(broker, sizeof broker, "%s/broker", g_bindir);
    snprintf(worker, sizeof worker, "%s/worker", g_bindir);
    pid_t pids[64];
    int n_pids = 0;
    pid_t bp = fork();
    if (bp == 0) {
        char *argv[] = {broker, "--db", db, "--clients", cep, "--workers", wep, "--log-level", "warn", NULL};
        execv(broker, argv);
        _exit(127);
    }
    const char *roles[] = {"sample", "score", "aggregate"};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < n_workers && n_pids < 64; i++) {
            pid_t wp = fork();
            if (wp == 0) {
                char *argv[] = {worker, "--role", (char *)roles[r], "--connect", wep, "--credit", "4", "--log-level", "warn", NULL};
                execv(worker, argv);
                _exit(127);
            }
            pids[n_pids++] = wp;
        }
    void *ctx = zmq_ctx_new();
    void *cs = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(cs, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(cs, cep);
    double rate = NAN;
    proto_msg *reply = NULL;
    if (client_call(cs, "list", NULL, NULL, &reply, 10000) == 0) {
        proto_msg_destroy(&reply);
        char spec[512];
        snprintf(spec, sizeof spec,
                 "{\"kind\":\"sample\",\"name\":\"e2e\",\"model\":{\"backend\":\"replay\",\"corrupt\":0.3},"
                 "\"dataset\":{\"format\":\"synth\",\"n\":%d,\"seed\":1},\"sampling\":{\"n\":%d,\"seed\":1},\"chunk\":8}",
                 n_problems, n);
        char jid[32] = "";
        const char *js;
        uint32_t jl;
        if (client_call(cs, "submit", NULL, spec, &reply, 60000) == 0) {
            if (proto_get_str(proto_root(reply), "job", &js, &jl) == 0) snprintf(jid, sizeof jid, "%s", js);
            proto_msg_destroy(&reply);
        }
        int64_t deadline = util_now_ms() + 300000;
        while (*jid && util_now_ms() < deadline) {
            usleep(50000);
            if (client_call(cs, "status", jid, NULL, &reply, 10000) != 0) continue;
            const char *state;
            uint32_t sl;
            int64_t st0 = 0, st1 = 0, done = 0;
            proto_get_str(proto_root(reply), "state", &state, &sl);
            int fin = !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled");
            if (fin && !strcmp(state, "done")) {
                proto_get_i64(proto_root(reply), "started_ms", &st0);
                proto_get_i64(proto_root(reply), "finished_ms", &st1);
                proto_get_i64(proto_root(reply), "samples_done", &done);
                if (st1 > st0) { *job_s = (double)(st1 - st0) / 1000.0; rate = (double)done / *job_s; }
            }
            proto_msg_destroy(&reply);
            if (fin) break;
        }
    }
    zmq_close(cs);
    zmq_ctx_term(ctx);
    int st;
    for (int i = 0; i < n_pids; i++) { kill(pids[i], SIGTERM); waitpid(pids[i], &st, 0); }
    kill(bp, SIGTERM);
    waitpid(bp, &st, 0);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return rate;
}

/* ---------------------------------------------------------------- baselines */

/* Inserts `total` 128-byte records keyed by big-endian u64, `batch` per fsync'd write txn. */
static double lmdb_baseline(int batch, int total, double *commits_per_s) {
    char tmp[] = "/tmp/thinkfast-lmdb-XXXXXX";
    if (!mkdtemp(tmp)) return NAN;
    MDB_env *env;
    MDB_CHECK(mdb_env_create(&env));
    MDB_CHECK(mdb_env_set_mapsize(env, (size_t)1 << 30));
    MDB_CHECK(mdb_env_open(env, tmp, 0, 0644));
    MDB_dbi dbi;
    MDB_txn *txn;
    MDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    MDB_CHECK(mdb_dbi_open(txn, NULL, 0, &dbi));
    MDB_CHECK(mdb_txn_commit(txn));
    char val[128];
    memset(val, 'x', sizeof val);
    int64_t t0 = util_now_ns();
    int commits = 0;
    for (int i = 0; i < total;) {
        MDB_CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        for (int j = 0; j < batch && i < total; j++, i++) {
            uint8_t kb[8];
            for (int b = 0; b < 8; b++) kb[b] = (uint8_t)((uint64_t)i >> (56 - 8 * b));
            MDB_val k = {8, kb}, v = {sizeof val, val};
            MDB_CHECK(mdb_put(txn, dbi, &k, &v, 0));
        }
        MDB_CHECK(mdb_txn_commit(txn));   /* fsync'd (no MDB_NOSYNC) */
        commits++;
    }
    double s = (double)(util_now_ns() - t0) * 1e-9;
    mdb_env_close(env);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    *commits_per_s = commits / s;
    return total / s;
}

typedef struct echo_arg { void *ctx; char ep[64]; volatile int stop; } echo_arg;

static void *echo_main(void *arg) {
    echo_arg *e = arg;
    void *r = zmq_socket(e->ctx, ZMQ_ROUTER);
    int zero = 0, to = 100;
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_RCVTIMEO, &to, sizeof to);
    zmq_bind(r, e->ep);
    while (!e->stop) {
        zmq_msg_t parts[4];
        int n = 0, more = 1;
        while (more && n < 4) {
            zmq_msg_init(&parts[n]);
            if (zmq_msg_recv(&parts[n], r, 0) < 0) { zmq_msg_close(&parts[n]); break; }
            more = zmq_msg_more(&parts[n]);
            n++;
        }
        for (int i = 0; i < n; i++) zmq_msg_send(&parts[i], r, i + 1 < n ? ZMQ_SNDMORE : 0);
    }
    zmq_close(r);
    return NULL;
}

/* Sequential round trips (latency) and a pipelined window (throughput), 64-byte bodies. */
static void zmq_baseline(int n, double *p50_us, double *p99_us, double *msgs_per_s) {
    echo_arg e = {.ctx = zmq_ctx_new()};
    snprintf(e.ep, sizeof e.ep, "tcp://127.0.0.1:%d", free_port());
    pthread_t th;
    pthread_create(&th, NULL, echo_main, &e);
    void *d = zmq_socket(e.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(d, e.ep);
    char body[64] = "x", buf[128];
    usleep(100000);
    int64_t *lat = xmalloc((size_t)n * sizeof *lat);
    for (int i = 0; i < n; i++) {
        int64_t t = util_now_ns();
        zmq_send(d, "TF", 2, ZMQ_SNDMORE);
        zmq_send(d, body, sizeof body, 0);
        zmq_recv(d, buf, sizeof buf, 0);
        zmq_recv(d, buf, sizeof buf, 0);
        lat[i] = util_now_ns() - t;
    }
    *p50_us = pct(lat, (size_t)n, 0.5) / 1e3;
    *p99_us = pct(lat, (size_t)n, 0.99) / 1e3;
    free(lat);
    const int window = 256;
    int64_t t0 = util_now_ns();
    int sent = 0, got = 0, total = n * 5;
    while (got < total) {
        while (sent < total && sent - got < window) {
            zmq_send(d, "TF", 2, ZMQ_SNDMORE);
            zmq_send(d, body, sizeof body, 0);
            sent++;
        }
        zmq_recv(d, buf, sizeof buf, 0);
        zmq_recv(d, buf, sizeof buf, 0);
        got++;
    }
    *msgs_per_s = total / ((double)(util_now_ns() - t0) * 1e-9);
    e.stop = 1;
    zmq_close(d);
    pthread_join(th, NULL);
    zmq_ctx_term(e.ctx);
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_queue [--quick] [--tasks N] [--credit C] [--out FILE] [--nosync]\n"
            "Benchmarks the broker (bin/broker, started as a child) against raw LMDB and ZeroMQ\n"
            "baselines on loopback; prints one JSON object.\n"
            "  --tasks N    problems of the throughput job (chunk 1, n 1: 2N+ tasks; default 20000)\n"
            "  --credit C   credit of each simulated worker in throughput runs (default 256: each durable group commit\n"
            "               takes ~2-5 ms, so a worker needs that many tasks in flight to stay busy)\n"
            "  --quick      small sizes (smoke test)\n"
            "  --nosync     run the broker with --nosync (NOT the durable figure; for comparison)\n"
            "  --out FILE   write the JSON there instead of stdout\n");
}

int main(int argc, char **argv) {
    log_set_name("bench_queue");
    int n_tasks = 20000, credit = 256, quick = 0, nosync = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--nosync")) nosync = 1;
        else if (!strcmp(argv[i], "--tasks") && i + 1 < argc) n_tasks = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--credit") && i + 1 < argc) credit = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else { usage(stderr); return 2; }
    }
    if (quick) n_tasks = 2000;
    if (n_tasks < 10 || credit < 1) { usage(stderr); return 2; }
    ssize_t l = readlink("/proc/self/exe", g_bindir, sizeof g_bindir - 1);
    if (l <= 0) return 1;
    g_bindir[l] = 0;
    *strrchr(g_bindir, '/') = 0;
    signal(SIGPIPE, SIG_IGN);

    util_buf j;
    util_buf_init(&j);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    util_buf_printf(&j, "{\"bench\":\"queue\",\"host\":\"%s\",\"cpus\":%ld,\"durable\":%s,\"tasks_job_problems\":%d,"
                        "\"credit\":%d,\n",
                    host, sysconf(_SC_NPROCESSORS_ONLN), nosync ? "false" : "true", n_tasks, credit);

    fprintf(stderr, "bench: LMDB baseline...\n");
    double c1, c64, c1024;
    double r1 = lmdb_baseline(1, quick ? 200 : 1000, &c1);
    double r64 = lmdb_baseline(64, quick ? 6400 : 64000, &c64);
    double r1024 = lmdb_baseline(1024, quick ? 20480 : 204800, &c1024);
    util_buf_printf(&j, " \"lmdb_baseline\":{\"record_bytes\":128,\"fsync_per_txn\":true,"
                        "\"batch1_records_per_s\":%.0f,\"batch64_records_per_s\":%.0f,\"batch1024_records_per_s\":%.0f,"
                        "\"commits_per_s\":%.0f},\n", r1, r64, r1024, c1);
    fprintf(stderr, "bench: ZeroMQ baseline...\n");
    double zp50, zp99, zrate;
    zmq_baseline(quick ? 2000 : 20000, &zp50, &zp99, &zrate);
    util_buf_printf(&j, " \"zmq_baseline\":{\"transport\":\"tcp loopback\",\"rtt_p50_us\":%.1f,\"rtt_p99_us\":%.1f,"
                        "\"pipelined_msgs_per_s\":%.0f},\n", zp50, zp99, zrate);

    util_buf_printf(&j, " \"throughput\":[");
    int ws[] = {1, 2, 4, 8};
    double best = 0;
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "bench: broker throughput, %d worker(s) per role, credit %d...\n", ws[i], credit);
        run_result r = broker_run(ws[i], credit, n_tasks, 1, 1, 16, nosync);
        if (r.committed_per_s > best) best = r.committed_per_s;
        util_buf_printf(&j, "%s\n  {\"workers_per_role\":%d,\"credit\":%d,\"ok\":%s,\"tasks\":%llu,\"dispatched\":%llu,"
                            "\"committed\":%llu,\"window_s\":%.3f,\"dispatched_per_s\":%.0f,\"committed_per_s\":%.0f}",
                        i ? "," : "", r.workers, r.credit, r.ok ? "true" : "false", (unsigned long long)r.tasks,
                        (unsigned long long)r.dispatched, (unsigned long long)r.committed, r.window_s,
                        r.dispatched_per_s, r.committed_per_s);
        fprintf(stderr, "   %.0f tasks/s committed (%llu tasks in %.2f s)\n", r.committed_per_s,
                (unsigned long long)r.committed, r.window_s);
    }
    util_buf_printf(&j, "],\n");
    if (!nosync) {
        fprintf(stderr, "bench: broker throughput with --nosync (not durable; comparison only)...\n");
        run_result nr = broker_run(4, credit, n_tasks, 1, 1, 16, 1);
        util_buf_printf(&j, " \"throughput_nosync_not_durable\":{\"workers_per_role\":4,\"ok\":%s,\"committed_per_s\":%.0f},\n",
                        nr.ok ? "true" : "false", nr.committed_per_s);
        fprintf(stderr, "   %.0f tasks/s\n", nr.committed_per_s);
    }
    fprintf(stderr, "bench: dispatch latency (credit 1)...\n");
    run_result lr = broker_run(1, 1, quick ? 300 : 2000, 1, 1, 16, nosync);
    util_buf_printf(&j, " \"dispatch_latency\":{\"credit\":1,\"ok\":%s,\"samples\":%llu,\"p50_us\":%.0f,\"p99_us\":%.0f,"
                        "\"tasks_per_s\":%.0f},\n", lr.ok ? "true" : "false", (unsigned long long)lr.dispatched,
                    lr.lat_p50_us, lr.lat_p99_us, lr.committed_per_s);
    fprintf(stderr, "   p50 %.0f us, p99 %.0f us\n", lr.lat_p50_us, lr.lat_p99_us);
    fprintf(stderr, "bench: result ingest...\n");
    run_result ir = broker_run(2, 4, quick ? 64 : 1024, 16, 8, 4096, nosync);
    util_buf_printf(&j, " \"ingest\":{\"ok\":%s,\"text_bytes_per_output\":4096,\"outputs_per_result\":128,\"mb\":%.1f,"
                        "\"window_s\":%.3f,\"mb_per_s\":%.1f},\n", ir.ok ? "true" : "false", ir.mb, ir.window_s, ir.mb_per_s);
    fprintf(stderr, "   %.1f MB/s\n", ir.mb_per_s);
    fprintf(stderr, "bench: end to end with real workers (replay)...\n");
    int e2e_p = quick ? 200 : 2000, e2e_n = 16;
    double e2e_s1, e2e_s2;
    double e2e1 = e2e_run(1, e2e_p, e2e_n, &e2e_s1);
    double e2e2 = e2e_run(2, e2e_p, e2e_n, &e2e_s2);
    util_buf_printf(&j, " \"e2e_replay\":{\"problems\":%d,\"n\":%d,\"chunk\":8,\"worker_credit\":4,"
                        "\"workers1_samples_per_s\":%.0f,\"workers1_job_s\":%.2f,\"workers2_samples_per_s\":%.0f,"
                        "\"workers2_job_s\":%.2f},\n", e2e_p, e2e_n, e2e1, e2e_s1, e2e2, e2e_s2);
    fprintf(stderr, "   %.0f samples/s (1 worker/role), %.0f samples/s (2 workers/role)\n", e2e1, e2e2);
    util_buf_printf(&j, " \"ratios\":{\"best_committed_tasks_per_s\":%.0f,\"vs_lmdb_batch1024_records\":%.3f,"
                        "\"vs_zmq_pipelined_msgs\":%.3f,\"latency_p50_vs_zmq_rtt_p50\":%.1f},\n",
                    best, best / r1024, best / zrate, lr.lat_p50_us / zp50);
    util_buf_printf(&j, " \"goal_tasks_per_s\":20000,\"goal_met\":%s}\n", best >= 20000 ? "true" : "false");
    if (out) {
        char err[256];
        if (util_write_file_atomic(out, j.data, j.len, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
        fprintf(stderr, "bench: wrote %s\n", out);
    } else fputs(j.data, stdout);
    util_buf_free(&j);
    return 0;
}
