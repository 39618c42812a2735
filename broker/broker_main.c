/* broker/broker_main.c — bin/broker: command line, signals (SIGINT/SIGTERM stop; SIGHUP reloads
 * the --allow-keys file), resolved configuration, then the event loop of broker/loop.c. */
#include "broker/broker.h"

#include "common/log.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t g_stop, g_reload;
static void on_signal(int sig) { (void)sig; g_stop = 1; }
/* async-signal-safe: only sets the flag; the loop does the reload (brk_config.reload) */
static void on_hup(int sig) { (void)sig; g_reload = 1; }

static void usage(FILE *f) {
    brk_config d;
    brk_config_defaults(&d);
    fprintf(f,
            "usage: broker --db DIR --clients ENDPOINT --workers ENDPOINT [options]\n"
            "\n"
            "The thinkfast broker: owns the LMDB store, expands jobs into task DAGs, leases tasks to\n"
            "workers, commits results durably (group commit) and answers clients.\n"
            "\n"
            "  --db DIR              store directory, created if missing (default %s)\n"
            "  --clients ENDPOINT    ROUTER endpoint for jobctl / dashboards (default %s)\n"
            "  --workers ENDPOINT    ROUTER endpoint for workers (default %s)\n"
            "  --lease-ms N          a worker silent for N ms loses its leases (default %u)\n"
            "  --max-attempts N      failed attempts before a task and its job fail, for jobs whose\n"
            "                        spec does not set max_attempts (default %u)\n"
            "  --group-commit-ms N   a batch keeps collecting messages for up to N ms before its one\n"
            "                        commit (default %u: commit what has arrived; what arrives during a\n"
            "                        commit's fsync forms the next batch, so batches grow with load)\n"
            "  --map-mb N            initial LMDB map size in MiB; grows on demand (default %zu)\n"
            "  --map-max-mb N        the map never grows past N MiB (default 0 = unlimited: grow while the\n"
            "                        file system allows). When the store is full (this limit, or a full\n"
            "                        disk) the broker stays up and pauses intake: submit is refused with\n"
            "                        \"store full: ...\", no tasks are leased, results are not acked (their\n"
            "                        tasks are redone later), status/list/report/workers keep working and\n"
            "                        status shows \"store\":\"full\"; a write is retried every %u ms and the\n"
            "                        first that succeeds resumes (or restart with a larger N)\n"
            "  --nosync              fast, not durable: commits are not fsync'd (a crash of the machine\n"
            "                        may lose acknowledged results; a crash of the broker does not)\n"
            "  --log-level L         debug|info|warn|error (default info; env THINKFAST_LOG)\n"
            "  --curve-secret FILE   the broker's CURVE keypair (zcert format, from `jobctl keygen BASE`:\n"
            "                        BASE.key); both endpoints then require CURVE (default: off, plaintext)\n"
            "  --allow-keys FILE     client public keys allowed to connect, one Z85 key per line, '#'\n"
            "                        comments (default: none; required with --curve-secret unless\n"
            "                        --allow-any-key); others are refused by the ZAP handler and logged.\n"
            "                        `kill -HUP <broker>` re-reads FILE without a restart: the new list\n"
            "                        applies to connections made after the reload (connected peers stay);\n"
            "                        a file that fails to parse is logged (FILE:LINE), the old list kept\n"
            "  --allow-any-key       CURVE encryption without client authentication: accept any client\n"
            "                        key (default: off)\n"
            "  --help                this text\n",
            d.db, d.clients_ep, d.workers_ep, d.lease_ms, d.max_attempts, d.group_commit_ms, d.map_bytes >> 20,
            d.full_retry_ms);
}

static int parse_u32(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi || s[0] == '-') {
        fprintf(stderr, "broker: %s: expected an integer in [%u, %u], got \"%s\"\n", flag, lo, hi, s ? s : "");
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv) {
    log_set_name("broker");
    brk_config cfg;
    brk_config_defaults(&cfg);
    const char *level = NULL, *curve_secret = NULL, *allow_keys = NULL;
    int allow_any = 0, map_mb_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t x;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); return 0; }
        else if (strcmp(a, "--nosync") == 0) cfg.nosync = 1;
        else if (strcmp(a, "--allow-any-key") == 0) allow_any = 1;
        else if (!v) { fprintf(stderr, "broker: %s needs a value (see --help)\n", a); return 2; }
        else if (strcmp(a, "--db") == 0) { cfg.db = v; i++; }
        else if (strcmp(a, "--clients") == 0) { cfg.clients_ep = v; i++; }
        else if (strcmp(a, "--workers") == 0) { cfg.workers_ep = v; i++; }
        else if (strcmp(a, "--lease-ms") == 0) { if (parse_u32(a, v, 10, 86400000, &cfg.lease_ms)) return 2; i++; }
        else if (strcmp(a, "--max-attempts") == 0) { if (parse_u32(a, v, 1, 1000, &cfg.max_attempts)) return 2; i++; }
        else if (strcmp(a, "--group-commit-ms") == 0) { if (parse_u32(a, v, 0, 1000, &cfg.group_commit_ms)) return 2; i++; }
        else if (strcmp(a, "--map-mb") == 0) { if (parse_u32(a, v, 1, 1u << 24, &x)) return 2; cfg.map_bytes = (size_t)x << 20; map_mb_set = 1; i++; }
        else if (strcmp(a, "--map-max-mb") == 0) { if (parse_u32(a, v, 0, 1u << 24, &x)) return 2; cfg.map_max_bytes = (size_t)x << 20; i++; }
        else if (strcmp(a, "--log-level") == 0) { level = v; i++; }
        else if (strcmp(a, "--curve-secret") == 0) { curve_secret = v; i++; }
        else if (strcmp(a, "--allow-keys") == 0) { allow_keys = v; i++; }
        else { fprintf(stderr, "broker: unknown argument \"%s\" (see --help)\n", a); return 2; }
    }
    if (level) {
        int l = log_level_parse(level);
        if (l < 0) { fprintf(stderr, "broker: --log-level: expected debug|info|warn|error|off, got \"%s\"\n", level); return 2; }
        log_set_level((log_level)l);
    }
    if (strcmp(cfg.clients_ep, cfg.workers_ep) == 0) {
        fprintf(stderr, "broker: --clients and --workers must be different endpoints (both %s)\n", cfg.clients_ep);
        return 2;
    }
    if (cfg.map_max_bytes && cfg.map_bytes > cfg.map_max_bytes) {
        if (map_mb_set) {
            fprintf(stderr, "broker: --map-mb %zu is larger than --map-max-mb %zu\n", cfg.map_bytes >> 20,
                    cfg.map_max_bytes >> 20);
            return 2;
        }
        cfg.map_bytes = cfg.map_max_bytes;   /* the default initial map, capped by the limit */
    }
    zkey_pair curve;
    zap_allowlist *allow = NULL;
    if (!curve_secret && (allow_keys || allow_any)) {
        fprintf(stderr, "broker: %s needs --curve-secret FILE (client keys mean nothing without CURVE)\n",
                allow_keys ? "--allow-keys" : "--allow-any-key");
        return 2;
    }
    if (curve_secret) {
        char kerr[512];
        if (allow_keys && allow_any) {
            fprintf(stderr, "broker: --allow-keys and --allow-any-key contradict each other: pick one\n");
            return 2;
        }
        if (!allow_keys && !allow_any) {
            fprintf(stderr, "broker: --curve-secret without --allow-keys FILE would accept ANY client key (CURVE without\n"
                            "a ZAP allow-list authenticates nobody). Pass --allow-keys FILE, or --allow-any-key to\n"
                            "accept that explicitly.\n");
            return 2;
        }
        if (!zkey_curve_available()) {
            fprintf(stderr, "broker: --curve-secret: this libzmq was built without CURVE (zmq_has(\"curve\") == 0)\n");
            return 2;
        }
        if (zkey_load(curve_secret, 1, &curve, kerr, sizeof kerr) != ZKEY_OK) {
            fprintf(stderr, "broker: --curve-secret: %s\n", kerr);
            return 2;
        }
        if (allow_keys && zap_allowlist_load(allow_keys, &allow, kerr, sizeof kerr) != ZKEY_OK) {
            fprintf(stderr, "broker: --allow-keys: %s\n", kerr);
            return 2;
        }
        cfg.curve = &curve;
        cfg.allow = allow;
        cfg.allow_path = allow_keys;
        if (allow)
            LOG_INFO("security: CURVE on both endpoints, server key %s, %zu allowed client key(s) from %s",
                     curve.public_z85, zap_allowlist_count(allow), allow_keys);
        else
            LOG_WARN("security: CURVE on both endpoints, server key %s; --allow-any-key: ANY client key is accepted",
                     curve.public_z85);
    } else {
        LOG_INFO("security: plaintext, no authentication (see --curve-secret)");
    }
    char map_max[32];
    if (cfg.map_max_bytes) snprintf(map_max, sizeof map_max, "%zu", cfg.map_max_bytes >> 20);
    else snprintf(map_max, sizeof map_max, "0 (unlimited)");
    LOG_INFO("config db=%s clients=%s workers=%s lease_ms=%u max_attempts=%u group_commit_ms=%u "
             "map_mb=%zu map_max_mb=%s sync=%s max_batch=%u full_retry_ms=%u",
             cfg.db, cfg.clients_ep, cfg.workers_ep, cfg.lease_ms, cfg.max_attempts, cfg.group_commit_ms,
             cfg.map_bytes >> 20, map_max, cfg.nosync ? "nosync (fast, not durable)" : "fsync", cfg.max_batch,
             cfg.full_retry_ms);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGHUP reloads the allow-list (and no longer ends the broker); SA_RESTART so that the
     * store's I/O is not interrupted by it (zmq_poll still wakes with EINTR) */
    sa.sa_handler = on_hup;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    cfg.reload = &g_reload;
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (ulimit -f) must read as a full disk (EFBIG: store-full state), not kill us */
    signal(SIGXFSZ, SIG_IGN);
    char err[1024] = "";
    int rc = brk_run(&cfg, &g_stop, err, sizeof err);
    zap_allowlist_destroy(&allow);
    memset(&curve, 0, sizeof curve);   /* the secret key */
    if (rc != 0) {
        LOG_ERROR("%s", err[0] ? err : "broker failed");
        return 1;
    }
    LOG_INFO("stopped cleanly");
    return 0;
}
