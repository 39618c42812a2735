/* tools/jobctl_main.c — bin/jobctl: the command-line interface users script against.
 * Global options, then a subcommand; each subcommand has --help. Implementation modules are
 * listed in tools/jobctl.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tools/gendata.h"
#include "tools/jobctl.h"
#include "tools/jobctl_report.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: jobctl [--broker ENDPOINT] [--timeout-ms MS] [CURVE options] COMMAND [ARGS]\n"
            "Global options:\n"
            "  --broker ENDPOINT  the broker's client endpoint (default $THINKFAST_BROKER or %s)\n"
            "  --timeout-ms MS    wait this long for each reply (default %d)\n"
            "  --curve-server-key FILE  the broker's CURVE public key (its BASE.pub); with --curve-keyfile,\n"
            "                     talk CURVE to the broker (default $%s, else off: plaintext)\n"
            "  --curve-keyfile FILE     our CURVE keypair (BASE.key from `jobctl keygen`; its public key\n"
            "                     must be in the broker's --allow-keys) (default $%s, else off)\n"
            "                     (`local`, `export`, `reaggregate` ignore both: no broker connection)\n"
            "Commands (each has --help):\n"
            "  submit FILE                         validate and submit a job; prints its id\n"
            "  status JOB [--json]                 state and task counts\n"
            "  list [--json]                       every job\n"
            "  cancel JOB                          cancel a job\n"
            "  watch JOB                           follow a job until it ends (exit 0 = done)\n"
            "  report JOB [--json]                 coverage@k, majority@k, ...\n"
            "  workers [--json]                    registered workers\n"
            "  export JOB --db DIR --format jsonl|csv  one line per generation (offline)\n"
            "  reaggregate JOB --db DIR [--k LIST] [--json]  recompute stats offline\n"
            "  compare JOB [JOB ...] --db DIR [--json] [--plot F.svg|F.png] [--k LIST] [--budget-axis]\n"
            "                                      jobs side by side over k and GPU time (offline)\n"
            "  rescore JOB --db DIR [--grader math|gsm8k] [--json] [--dry-run]  regrade stored generations\n"
            "  gen-data synth ...                  write the built-in synth dataset as JSONL\n"
            "  local FILE [--db DIR] [--workers N] run a job on this machine, end to end\n"
            "  keygen BASE [--force]               write a CURVE keypair BASE.key (0600) + BASE.pub\n",
            JOBCTL_DEFAULT_BROKER, JOBCTL_DEFAULT_TIMEOUT_MS, ZKEY_ENV_SERVER_KEY, ZKEY_ENV_KEYFILE);
}

int main(int argc, char **argv) {
    log_set_name("jobctl");
    jobctl_opts o;
    const char *env = getenv("THINKFAST_BROKER");
    o.broker = env && *env ? env : JOBCTL_DEFAULT_BROKER;
    o.timeout_ms = JOBCTL_DEFAULT_TIMEOUT_MS;
    const char *curve_server = NULL, *curve_keyfile = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--curve-server-key") || !strcmp(a, "--curve-keyfile")) {
            if (i + 1 >= argc) { fprintf(stderr, "jobctl: %s needs a value\n", a); return 2; }
            if (!strcmp(a, "--curve-server-key")) curve_server = argv[++i];
            else curve_keyfile = argv[++i];
            continue;
        }
        if (!strcmp(a, "--broker") || !strcmp(a, "--timeout-ms")) {
            if (i + 1 >= argc) { fprintf(stderr, "jobctl: %s needs a value\n", a); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--broker")) o.broker = v;
            else {
                char *end;
                long x = strtol(v, &end, 10);
                if (!*v || *end || x < 1 || x > 86400000) { fprintf(stderr, "jobctl: --timeout-ms: expected 1..86400000, got \"%s\"\n", v); return 2; }
                o.timeout_ms = (int)x;
            }
            continue;
        }
        fprintf(stderr, "jobctl: unknown option %s\n", a);
        usage(stderr);
        return 2;
    }
    if (i >= argc) { usage(stderr); return 2; }
    const char *cmd = argv[i];
    int sargc = argc - i;
    char **sargv = argv + i;
    /* CURVE only for commands that talk to a broker's client endpoint */
    static zkey_client curve;
    if (strcmp(cmd, "local") && strcmp(cmd, "export") && strcmp(cmd, "reaggregate") && strcmp(cmd, "gen-data") &&
        strcmp(cmd, "keygen") && strcmp(cmd, "compare") && strcmp(cmd, "rescore")) {
        int on = 0;
        char kerr[1024];
        if (zkey_client_resolve(curve_server, curve_keyfile, &curve, &on, kerr, sizeof kerr) != 0) {
            fprintf(stderr, "jobctl: %s\n", kerr);
            return 2;
        }
        if (on) jobctl_client_set_curve(&curve);
    }
    static const struct { const char *name; int (*fn)(const jobctl_opts *, int, char **); } cmds[] = {
        {"submit", jobctl_cmd_submit}, {"status", jobctl_cmd_status}, {"list", jobctl_cmd_list},
        {"cancel", jobctl_cmd_cancel}, {"watch", jobctl_cmd_watch}, {"report", jobctl_cmd_report},
        {"workers", jobctl_cmd_workers}, {"export", jobctl_cmd_export}, {"reaggregate", jobctl_cmd_reaggregate},
        {"local", jobctl_cmd_local}, {"keygen", jobctl_cmd_keygen}, {"compare", jobctl_cmd_compare},
        {"rescore", jobctl_cmd_rescore},
    };
    for (size_t k = 0; k < sizeof cmds / sizeof *cmds; k++)
        if (!strcmp(cmd, cmds[k].name)) return cmds[k].fn(&o, sargc, sargv);
    if (!strcmp(cmd, "gen-data")) return gendata_main(sargc, sargv);
    fprintf(stderr, "jobctl: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
