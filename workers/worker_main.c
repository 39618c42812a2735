/* workers/worker_main.c — bin/worker: the worker daemon's command line (loop: wrk_worker.c).
 *
 *   bin/worker --role sample|score|aggregate --connect ENDPOINT [--credit N] [--id NAME]
 *              [--log-level L] [--heartbeat-ms MS] [--curve-server-key FILE --curve-keyfile FILE]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/zkey.h"
#include "jobs/proto.h"
#include "workers/wrk_worker.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void usage(FILE *f) {
    fprintf(f,
            "usage: worker --role ROLE --connect ENDPOINT [options]\n"
            "Runs tasks for a thinkfast broker.\n\n"
            "  --role ROLE        sample | score | aggregate (required)\n"
            "  --connect ENDPOINT the broker's worker endpoint, e.g. tcp://127.0.0.1:5556\n"
            "                     (default: $THINKFAST_WORKERS or tcp://127.0.0.1:5556)\n"
            "  --credit N         tasks held at once, run one at a time (default 1)\n"
            "  --id NAME          worker id (default ROLE-HOST-PID)\n"
            "  --log-level L      debug | info | warn | error (default info, or $THINKFAST_LOG)\n"
            "  --heartbeat-ms MS  heartbeat period (default %d; tests only)\n"
            "  --curve-server-key FILE  the broker's CURVE public key (BASE.pub of its keypair); with\n"
            "                     --curve-keyfile, connect with CURVE (default: $%s, else off)\n"
            "  --curve-keyfile FILE     our own CURVE keypair (BASE.key from `jobctl keygen BASE`; its\n"
            "                     public key must be in the broker's --allow-keys) (default: $%s, else off)\n"
            "  --help             this text\n\n"
            "Environment (tests only): THINKFAST_FAULT_CRASH_PROBLEM=N makes the sample role abort()\n"
            "when it reaches problem N; THINKFAST_FAULT_DELAY_MS=N sleeps N ms before each sample.\n",
            PROTO_HEARTBEAT_MS, ZKEY_ENV_SERVER_KEY, ZKEY_ENV_KEYFILE);
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "worker: %s: expected an integer in %d..%d, got \"%s\"\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    log_set_name("worker");
    const char *role = NULL, *id = NULL, *level = NULL, *curve_server = NULL, *curve_keyfile = NULL;
    const char *endpoint = getenv("THINKFAST_WORKERS");
    if (!endpoint || !*endpoint) endpoint = "tcp://127.0.0.1:5556";
    int credit = 1, hb = PROTO_HEARTBEAT_MS;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
        if (i + 1 >= argc) { fprintf(stderr, "worker: %s: missing value (or unknown flag)\n", a); usage(stderr); return 2; }
        const char *v = argv[++i];
        if (strcmp(a, "--role") == 0) role = v;
        else if (strcmp(a, "--connect") == 0) endpoint = v;
        else if (strcmp(a, "--id") == 0) id = v;
        else if (strcmp(a, "--log-level") == 0) level = v;
        else if (strcmp(a, "--curve-server-key") == 0) curve_server = v;
        else if (strcmp(a, "--curve-keyfile") == 0) curve_keyfile = v;
        else if (strcmp(a, "--credit") == 0) { if (parse_int(a, v, 1, 10000, &credit)) return 2; }
        else if (strcmp(a, "--heartbeat-ms") == 0) { if (parse_int(a, v, 10, 600000, &hb)) return 2; }
        else { fprintf(stderr, "worker: unknown flag %s\n", a); usage(stderr); return 2; }
    }
    if (!role) { fprintf(stderr, "worker: --role is required\n"); usage(stderr); return 2; }
    if (strcmp(role, "sample") && strcmp(role, "score") && strcmp(role, "aggregate")) {
        fprintf(stderr, "worker: --role: unknown role \"%s\" (expected sample|score|aggregate)\n", role);
        return 2;
    }
    if (level) {
        int l = log_level_parse(level);
        if (l < 0) { fprintf(stderr, "worker: --log-level: unknown level \"%s\"\n", level); return 2; }
        log_set_level((log_level)l);
    }
    static zkey_client curve;   /* static: not on the stack for the life of the process */
    int curve_on = 0;
    char kerr[1024];
    if (zkey_client_resolve(curve_server, curve_keyfile, &curve, &curve_on, kerr, sizeof kerr) != 0) {
        fprintf(stderr, "worker: %s\n", kerr);
        return 2;
    }
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    char idbuf[160];
    if (!id) { snprintf(idbuf, sizeof idbuf, "%s-%s-%d", role, host, (int)getpid()); id = idbuf; }
    if (strlen(id) >= 64) { fprintf(stderr, "worker: --id: at most 63 bytes\n"); return 2; }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    LOG_INFO("config: role=%s connect=%s credit=%d id=%s host=%s pid=%d heartbeat_ms=%d security=%s%s%s", role,
             endpoint, credit, id, host, (int)getpid(), hb, curve_on ? "CURVE (our key " : "plaintext",
             curve_on ? curve.mine.public_z85 : "", curve_on ? ")" : "");
    wrk_worker_cfg cfg = {.endpoint = endpoint, .role = role, .id = id, .host = host, .credit = credit, .heartbeat_ms = hb,
                          .curve = curve_on ? &curve : NULL};
    return wrk_worker_run(&cfg, &g_stop);
}
