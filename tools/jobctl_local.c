/* tools/jobctl_local.c — `jobctl local FILE`: the embedded default. Starts bin/broker and N
 * workers of each role (siblings of bin/jobctl, found through /proc/self/exe) as child
 * processes on private ipc:// endpoints in a fresh temp dir, submits the job, watches it, prints
 * the report and shuts everything down (SIGTERM, waitpid; SIGKILL after a grace period). The
 * store lives in the temp dir (removed at the end) unless --db DIR keeps it. Children get
 * PR_SET_PDEATHSIG so that nothing outlives a killed jobctl; their logs go to files in the temp
 * dir and the tails are printed when something fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jobs/spec.h"
#include "tools/jobctl.h"

#define LOCAL_MAX_CHILDREN 200

typedef struct child { pid_t pid; char name[64]; char log[1100]; int status; int reaped; } child;

static volatile int g_local_stop;
static volatile pid_t g_broker_pid;
static volatile int g_broker_died;

static void local_on_signal(int sig) { (void)sig; g_local_stop = 1; }
static void local_on_chld(int sig) {
    (void)sig;
    int saved = errno;
    int st;
    if (g_broker_pid > 0 && waitpid(g_broker_pid, &st, WNOHANG) == g_broker_pid) { g_broker_died = 1; g_local_stop = 2; }
    errno = saved;
}

static pid_t spawn(child *c, const char *dir, const char *prog, char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int fd = open(c->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        signal(SIGINT, SIG_IGN);   /* jobctl itself orders the shutdown */
        execv(prog, argv);
        fprintf(stderr, "exec %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    (void)dir;
    c->pid = pid;
    return pid;
}

static void print_tail(const char *path, int lines) {
    size_t n;
    char *s = util_read_file(path, &n, NULL, 0);
    if (!s) return;
    size_t i = n;
    int seen = 0;
    while (i > 0 && seen <= lines) { i--; if (s[i] == '\n') seen++; }
    fprintf(stderr, "---- %s (last lines) ----\n%s\n", path, s + (i ? i + 1 : 0));
    free(s);
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb; (void)flag; (void)f;
    return remove(path);
}

static int stop_child(child *c, int grace_ms) {
    if (c->reaped || c->pid <= 0) return 0;
    kill(c->pid, SIGTERM);
    int64_t end = util_now_ms() + grace_ms;
    for (;;) {
        pid_t r = waitpid(c->pid, &c->status, WNOHANG);
        if (r == c->pid || (r < 0 && errno == ECHILD)) { c->reaped = 1; return 0; }
        if (util_now_ms() >= end) break;
        usleep(10000);
    }
    fprintf(stderr, "jobctl local: %s (pid %d) did not stop in %d ms: killing it\n", c->name, (int)c->pid, grace_ms);
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &c->status, 0);
    c->reaped = 1;
    return -1;
}

int jobctl_cmd_local(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    static const char usage[] =
        "usage: jobctl local FILE [--db DIR] [--workers N] [--json] [--keep]\n"
        "Runs one job end to end on this machine: starts bin/broker and N workers of each role\n"
        "(sample, score, aggregate) on private ipc:// endpoints, submits FILE, shows progress,\n"
        "prints the report, and shuts everything down.\n"
        "  --db DIR     keep the store in DIR (default: a temp dir, removed afterwards)\n"
        "  --workers N  workers per role (default 1)\n"
        "  --json       print the report as JSON (stdout) instead of the table\n"
        "  --keep       keep the temp dir (logs, store) and print its path\n";
    const char *file = NULL, *db = NULL, *workers = NULL;
    int n_workers = 1, json = 0, keep = 0;
    const jobctl_flag flags[] = {{"--json", &json, NULL}, {"--keep", &keep, NULL}, {"--db", NULL, &db},
                                 {"--workers", NULL, &workers}, {NULL, NULL, NULL}};
    int prc = jobctl_parse_args(argc, argv, usage, flags, 1, "FILE", &file);
    if (prc) return prc == 1 ? 0 : prc;
    if (workers) {
        char *end;
        long x = strtol(workers, &end, 10);
        if (!*workers || *end || x < 1 || x > 64) { fprintf(stderr, "jobctl local: --workers: expected 1..64, got \"%s\"\n", workers); return 2; }
        n_workers = (int)x;
    }

    char err[2048];
    job_spec spec;
    if (job_spec_load(file, &spec, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    job_spec_free(&spec);

    char bindir[1024], broker_bin[1100], worker_bin[1100];
    if (jobctl_exe_dir(bindir, sizeof bindir) != 0) { fprintf(stderr, "jobctl local: cannot resolve /proc/self/exe\n"); return 1; }
    snprintf(broker_bin, sizeof broker_bin, "%s/broker", bindir);
    snprintf(worker_bin, sizeof worker_bin, "%s/worker", bindir);
    if (access(broker_bin, X_OK) || access(worker_bin, X_OK)) {
        fprintf(stderr, "jobctl local: %s and %s must exist next to jobctl (run make)\n", broker_bin, worker_bin);
        return 1;
    }
    const char *tmpenv = getenv("TMPDIR");
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/thinkfast-local-XXXXXX", tmpenv && *tmpenv ? tmpenv : "/tmp");
    if (!mkdtemp(tmp)) { fprintf(stderr, "jobctl local: mkdtemp %s: %s\n", tmp, strerror(errno)); return 1; }
    char dbdir[1100], cep[1200], wep[1200];
    if (db) snprintf(dbdir, sizeof dbdir, "%s", db);
    else snprintf(dbdir, sizeof dbdir, "%s/db", tmp);
    snprintf(cep, sizeof cep, "ipc://%s/clients.sock", tmp);
    snprintf(wep, sizeof wep, "ipc://%s/workers.sock", tmp);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = local_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = local_on_chld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);

    /* loopback ipc in a private directory, no CURVE: children must not pick up the user's
     * CURVE settings from the environment (they would try CURVE against a plaintext broker) */
    unsetenv(ZKEY_ENV_SERVER_KEY);
    unsetenv(ZKEY_ENV_KEYFILE);
    jobctl_client_set_curve(NULL);
    child *kids = xcalloc(LOCAL_MAX_CHILDREN, sizeof *kids);
    int n_kids = 0, rc = 1;
    child *broker = &kids[n_kids++];
    snprintf(broker->name, sizeof broker->name, "broker");
    snprintf(broker->log, sizeof broker->log, "%s/broker.log", tmp);
    char *bargv[] = {broker_bin, "--db", dbdir, "--clients", cep, "--workers", wep, NULL};
    if (spawn(broker, tmp, broker_bin, bargv) < 0) { fprintf(stderr, "jobctl local: fork: %s\n", strerror(errno)); goto shutdown; }
    g_broker_pid = broker->pid;
    const char *roles[] = {"sample", "score", "aggregate"};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < n_workers && n_kids < LOCAL_MAX_CHILDREN; i++) {
            child *c = &kids[n_kids++];
            snprintf(c->name, sizeof c->name, "local-%s-%d", roles[r], i);
            snprintf(c->log, sizeof c->log, "%s/%s.log", tmp, c->name);
            char *wargv[] = {worker_bin, "--role", (char *)roles[r], "--connect", wep, "--id", c->name, NULL};
            if (spawn(c, tmp, worker_bin, wargv) < 0) { fprintf(stderr, "jobctl local: fork: %s\n", strerror(errno)); goto shutdown; }
        }
    fprintf(stderr, "jobctl local: broker (store %s) and %d worker(s) per role started\n", dbdir, n_workers);

    jobctl_client *c = jobctl_client_new(cep, 1000);
    int64_t deadline = util_now_ms() + 15000;
    for (;;) {
        proto_writer *w = jobctl_req_new(c, "list", 0);
        proto_msg *reply;
        if (jobctl_call(c, &w, &reply, err, sizeof err) == 0) { proto_msg_destroy(&reply); break; }
        if (g_local_stop || util_now_ms() > deadline) {
            fprintf(stderr, "jobctl local: the broker did not come up: %s\n", g_broker_died ? "it exited" : err);
            print_tail(broker->log, 20);
            jobctl_client_destroy(&c);
            goto shutdown;
        }
    }
    jobctl_client_destroy(&c);
    c = jobctl_client_new(cep, 10000);
    char job[64];
    if (jobctl_submit_spec(c, file, job, sizeof job, err, sizeof err) != 0) {
        fprintf(stderr, "jobctl local: submit: %s\n", err);
        jobctl_client_destroy(&c);
        goto shutdown;
    }
    fprintf(stderr, "jobctl local: submitted %s\n", job);
    int wrc = jobctl_watch_job(c, job, 0, &g_local_stop);
    if (wrc == 0) rc = jobctl_report_job(c, job, json);
    else if (g_broker_died) { fprintf(stderr, "jobctl local: the broker exited\n"); print_tail(broker->log, 20); }
    else if (g_local_stop) fprintf(stderr, "jobctl local: interrupted\n");
    jobctl_client_destroy(&c);

shutdown:
    for (int i = n_kids - 1; i >= 1; i--) stop_child(&kids[i], 5000);   /* workers first */
    if (!g_broker_died) stop_child(broker, 15000);
    else broker->reaped = 1;
    for (int i = 1; i < n_kids; i++)
        if (kids[i].reaped && WIFSIGNALED(kids[i].status) && WTERMSIG(kids[i].status) != SIGTERM) {
            fprintf(stderr, "jobctl local: %s died from signal %d\n", kids[i].name, WTERMSIG(kids[i].status));
            print_tail(kids[i].log, 10);
        }
    if (rc != 0 || keep) keep = 1;
    if (keep) fprintf(stderr, "jobctl local: logs%s kept in %s\n", db ? "" : " and store", tmp);
    else nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(kids);
    return rc;
}
