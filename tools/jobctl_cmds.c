/* tools/jobctl_cmds.c — the online subcommands: submit, status, list, cancel, watch, report,
 * workers. Each talks to the broker's client endpoint through jobctl_client; --json prints the
 * reply map (less the protocol keys) for scripts, otherwise a short human form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jobs/spec.h"
#include "tools/jobctl.h"

/* Parses "SUBCMD [--json] [--help] ARG" shapes: fills *pos with the positional arguments. */
static int parse_simple(int argc, char **argv, const char *usage, int want_pos, const char **pos, int *json) {
    const jobctl_flag flags[] = {{"--json", json, NULL}, {NULL, NULL, NULL}};
    return jobctl_parse_args(argc, argv, usage, json ? flags : NULL, want_pos, "argument", pos);
}

/* One request on a fresh connection: cmd with a "job" field (job != NULL) or none. 0 with
 * *reply set, or 1 after printing "jobctl CMD: why" to stderr. */
static int call_once(const jobctl_opts *o, const char *cmd, const char *job, proto_msg **reply) {
    jobctl_client *c = jobctl_client_new(o->broker, o->timeout_ms);
    char err[1024];
    int rc;
    if (job) {
        rc = jobctl_call_job(c, cmd, job, reply, err, sizeof err);
    } else {
        proto_writer *w = jobctl_req_new(c, cmd, 0);
        rc = jobctl_call(c, &w, reply, err, sizeof err);
    }
    jobctl_client_destroy(&c);
    if (rc != 0) { fprintf(stderr, "jobctl %s: %s\n", cmd, err); return 1; }
    return 0;
}

static void print_json_public(const proto_val *root) {
    util_buf b;
    util_buf_init(&b);
    jobctl_json_map_public(&b, root);
    printf("%s\n", b.data);
    util_buf_free(&b);
}

static void print_json_val(const proto_val *v) {
    util_buf b;
    util_buf_init(&b);
    if (v) proto_val_to_json(v, &b);
    else util_buf_append(&b, "null", 4);
    printf("%s\n", b.data);
    util_buf_free(&b);
}

static const char *str_of(const proto_val *m, const char *key, const char *dflt) {
    const char *s;
    uint32_t n;
    return proto_get_str(m, key, &s, &n) == 0 ? s : dflt;
}

static long long int_of(const proto_val *m, const char *key, long long dflt) {
    int64_t x;
    if (proto_get_i64(m, key, &x) == 0) return x;
    double f;
    if (proto_get_f64(m, key, &f) == 0) return (long long)f;
    return dflt;
}

/* ---- submit ---- */

int jobctl_submit_spec(jobctl_client *c, const char *path, char *job_id, size_t cap, char *err, size_t errlen) {
    job_spec spec;
    if (job_spec_load(path, &spec, err, errlen) != 0) return -1;
    proto_writer *w = jobctl_req_new(c, "submit", 1);
    proto_w_key(w, "spec");
    proto_w_str(w, spec.json);
    job_spec_free(&spec);
    proto_msg *reply;
    if (jobctl_call(c, &w, &reply, err, errlen) != 0) return -1;
    snprintf(job_id, cap, "%s", str_of(proto_root(reply), "job", "?"));
    proto_msg_destroy(&reply);
    return 0;
}

int jobctl_cmd_submit(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl submit FILE\n"
        "Validates the job file locally (errors name FILE:LINE:COL and the field; nothing is\n"
        "submitted then), submits it, and prints the job id alone on stdout.\n";
    const char *pos[1];
    int rc = parse_simple(argc, argv, usage, 1, pos, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    char err[2048], id[64];
    job_spec spec;
    if (job_spec_load(pos[0], &spec, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 1; }
    job_spec_free(&spec);
    jobctl_client *c = jobctl_client_new(o->broker, o->timeout_ms);
    rc = jobctl_submit_spec(c, pos[0], id, sizeof id, err, sizeof err);
    jobctl_client_destroy(&c);
    if (rc != 0) { fprintf(stderr, "jobctl submit: %s\n", err); return 1; }
    printf("%s\n", id);
    return 0;
}

/* ---- status ---- */

/* A line on stderr while the broker's store is full (status and list replies carry "store"). */
static void warn_store_full(const proto_val *r) {
    if (!strcmp(str_of(r, "store", "ok"), "full"))
        fprintf(stderr, "jobctl: the broker's store is full, intake is paused: %s\n", str_of(r, "store_error", "(no detail)"));
}

static void print_status_human(const proto_val *r) {
    printf("job %s (%s): %s\n", str_of(r, "job", "?"), str_of(r, "name", ""), str_of(r, "state", "?"));
    const proto_val *t = proto_get_map(r, "tasks");
    if (t) {
        printf("  tasks:");
        for (uint32_t i = 0; i < t->v.map.n; i++) printf("%s %s %lld", i ? "," : "", t->v.map.keys[i], int_of(t, t->v.map.keys[i], 0));
        printf("\n");
    }
    long long done = int_of(r, "samples_done", -1), total = int_of(r, "samples_total", -1);
    if (done >= 0 && total > 0) printf("  samples: %lld/%lld (%.1f%%)\n", done, total, 100.0 * (double)done / (double)total);
    long long sd = int_of(r, "scores_done", -1);
    if (sd >= 0 && total > 0) printf("  scores: %lld/%lld\n", sd, total);
    const char *e = str_of(r, "error", "");
    if (*e) printf("  error: %s\n", e);
}

int jobctl_cmd_status(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl status JOB [--json]\n"
        "Prints the job's state (queued|running|done|failed|cancelled) and task counts.\n"
        "  --json   the broker's status record as one JSON object\n";
    const char *pos[1];
    int json = 0;
    int rc = parse_simple(argc, argv, usage, 1, pos, &json);
    if (rc) return rc == 1 ? 0 : rc;
    proto_msg *reply;
    if (call_once(o, "status", pos[0], &reply)) return 1;
    if (json) print_json_public(proto_root(reply));
    else { print_status_human(proto_root(reply)); warn_store_full(proto_root(reply)); }
    proto_msg_destroy(&reply);
    return 0;
}

/* ---- list ---- */

int jobctl_cmd_list(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl list [--json]\n"
        "Lists every job the broker knows (id, name, state, progress).\n"
        "  --json   {\"jobs\":[{...},...]}\n";
    int json = 0;
    int rc = parse_simple(argc, argv, usage, 0, NULL, &json);
    if (rc) return rc == 1 ? 0 : rc;
    proto_msg *reply;
    if (call_once(o, "list", NULL, &reply)) return 1;
    const proto_val *jobs = proto_get_array(proto_root(reply), "jobs");
    if (json) print_json_public(proto_root(reply));
    else {
        printf("%-10s  %-24s  %-9s  %s\n", "JOB", "NAME", "STATE", "SAMPLES");
        for (uint32_t i = 0; jobs && i < jobs->v.arr.n; i++) {
            const proto_val *j = &jobs->v.arr.items[i];
            printf("%-10s  %-24.24s  %-9s  %lld/%lld\n", str_of(j, "job", "?"), str_of(j, "name", ""), str_of(j, "state", "?"),
                   int_of(j, "samples_done", 0), int_of(j, "samples_total", 0));
        }
        warn_store_full(proto_root(reply));
    }
    proto_msg_destroy(&reply);
    return 0;
}

/* ---- cancel ---- */

int jobctl_cmd_cancel(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] = "usage: jobctl cancel JOB\nCancels a job: ready tasks are dropped, running ones are told to stop.\n";
    const char *pos[1];
    int rc = parse_simple(argc, argv, usage, 1, pos, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    proto_msg *reply;
    if (call_once(o, "cancel", pos[0], &reply)) return 1;
    printf("%s %s\n", str_of(proto_root(reply), "job", pos[0]), str_of(proto_root(reply), "state", "cancelled"));
    proto_msg_destroy(&reply);
    return 0;
}

/* ---- watch ---- */

static void fmt_eta(double s, char *buf, size_t cap) {
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "--");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

int jobctl_watch_job(jobctl_client *c, const char *job, int quiet, volatile int *stop) {
    int tty = isatty(STDERR_FILENO);
    int64_t t0 = util_now_ms(), last_line = 0, last_ok = util_now_ms();
    long long first_done = -1;
    int64_t first_ms = 0;
    char last_state[32] = "";
    for (;;) {
        if (stop && *stop) return 1;
        proto_msg *reply;
        char err[1024];
        int rc = jobctl_call_job(c, "watch", job, &reply, err, sizeof err);
        int64_t now = util_now_ms();
        if (rc == -1) { if (tty && !quiet) fprintf(stderr, "\n"); fprintf(stderr, "jobctl watch: %s\n", err); return 1; }
        if (rc == -3) { if (tty && !quiet) fprintf(stderr, "\n"); fprintf(stderr, "jobctl watch: %s\n", err); return 3; }
        if (rc != 0) {
            if (now - last_ok > 30000) { fprintf(stderr, "jobctl watch: %s\n", err); return 3; }
            if (!quiet) fprintf(stderr, "%sjobctl watch: %s; retrying\n", tty ? "\n" : "", err);
            continue;
        }
        last_ok = now;
        const proto_val *r = proto_root(reply);
        const char *state = str_of(r, "state", "?");
        long long done = int_of(r, "samples_done", 0), total = int_of(r, "samples_total", 0);
        long long scored = int_of(r, "scores_done", 0);
        if (first_done < 0 && strcmp(state, "queued") != 0) { first_done = done; first_ms = now; }
        double rate = first_done >= 0 && now > first_ms ? (double)(done - first_done) * 1000.0 / (double)(now - first_ms) : 0;
        double eta = rate > 0 ? (double)(total - done) / rate : NAN;
        char etas[32];
        fmt_eta(eta, etas, sizeof etas);
        int ended = !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled");
        long long started = int_of(r, "started_ms", 0), finished = int_of(r, "finished_ms", 0);
        if (ended && finished > started && started > 0) /* whole-job rate on the broker's clock */
            rate = (double)done * 1000.0 / (double)(finished - started);
        if (!quiet) {
            double frac = total > 0 ? (double)done / (double)total : 0;
            if (tty) {
                char bar[41];
                int filled = (int)(frac * 40 + 0.5);
                for (int i = 0; i < 40; i++) bar[i] = i < filled ? '#' : '.';
                bar[40] = 0;
                fprintf(stderr, "\r%s [%s] %5.1f%% %lld/%lld samples (%lld scored)  %.1f samples/s  ETA %s  %-9s", job, bar,
                        100 * frac, done, total, scored, rate, etas, state);
                if (ended) fprintf(stderr, "\n");
            } else if (ended || now - last_line >= 1000 || strcmp(state, last_state) != 0) {
                fprintf(stderr, "%s %s: %lld/%lld samples (%.1f%%), %lld scored, %.1f samples/s, ETA %s\n", job, state, done,
                        total, 100 * frac, scored, rate, etas);
                last_line = now;
            }
            fflush(stderr);
        }
        snprintf(last_state, sizeof last_state, "%s", state);
        if (ended) {
            int ok = !strcmp(state, "done");
            const char *e = str_of(r, "error", "");
            if (!ok) fprintf(stderr, "job %s %s%s%s\n", job, state, *e ? ": " : "", e);
            else if (!quiet) fprintf(stderr, "job %s done in %.1f s\n", job, (double)(now - t0) / 1000.0);
            proto_msg_destroy(&reply);
            return ok ? 0 : 1;
        }
        proto_msg_destroy(&reply);
        usleep(tty ? 200000 : 250000);
    }
}

int jobctl_cmd_watch(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl watch JOB\n"
        "Follows a job until it ends: a live progress bar with samples/s and ETA on a terminal,\n"
        "one line per second otherwise (stderr). Exit status 0 when the job is done, 1 when it\n"
        "failed or was cancelled, 3 when the broker stopped answering.\n";
    const char *pos[1];
    int rc = parse_simple(argc, argv, usage, 1, pos, NULL);
    if (rc) return rc == 1 ? 0 : rc;
    jobctl_client *c = jobctl_client_new(o->broker, o->timeout_ms);
    rc = jobctl_watch_job(c, pos[0], 0, NULL);
    jobctl_client_destroy(&c);
    return rc;
}

/* ---- report ---- */

int jobctl_report_job(jobctl_client *c, const char *job, int json) {
    proto_msg *reply;
    char err[1024];
    if (jobctl_call_job(c, "report", job, &reply, err, sizeof err) != 0) { fprintf(stderr, "jobctl report: %s\n", err); return 1; }
    const proto_val *r = proto_root(reply);
    const proto_val *stats = proto_get_map(r, "stats");
    if (!stats) {
        fprintf(stderr, "jobctl report: job %s has no stats yet (state %s)\n", str_of(r, "job", job), str_of(r, "state", "?"));
        proto_msg_destroy(&reply);
        return 1;
    }
    if (json) print_json_val(stats);
    else {
        char title[256];
        int fin = 1;
        proto_get_bool(r, "final", &fin);
        snprintf(title, sizeof title, "job %s%s", str_of(r, "job", job), fin ? "" : " (partial)");
        jobctl_print_stats_table(title, stats);
    }
    proto_msg_destroy(&reply);
    return 0;
}

int jobctl_cmd_report(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl report JOB [--json]\n"
        "Prints the job's aggregate stats: coverage@k (pass@k), majority@k, ... per k.\n"
        "  --json   the stats object: {\"k\":[...],\"coverage\":[...],\"majority\":[...],...}\n";
    const char *pos[1];
    int json = 0;
    int rc = parse_simple(argc, argv, usage, 1, pos, &json);
    if (rc) return rc == 1 ? 0 : rc;
    jobctl_client *c = jobctl_client_new(o->broker, o->timeout_ms);
    rc = jobctl_report_job(c, pos[0], json);
    jobctl_client_destroy(&c);
    return rc;
}

/* ---- workers ---- */

int jobctl_cmd_workers(const jobctl_opts *o, int argc, char **argv) {
    static const char usage[] =
        "usage: jobctl workers [--json]\n"
        "Lists the workers registered with the broker (id, role, host, pid, credit, leased).\n";
    int json = 0;
    int rc = parse_simple(argc, argv, usage, 0, NULL, &json);
    if (rc) return rc == 1 ? 0 : rc;
    proto_msg *reply;
    if (call_once(o, "workers", NULL, &reply)) return 1;
    if (json) print_json_public(proto_root(reply));
    else {
        const proto_val *ws = proto_get_array(proto_root(reply), "workers");
        printf("%-32s  %-9s  %-16s  %7s  %6s  %6s\n", "ID", "ROLE", "HOST", "PID", "CREDIT", "LEASED");
        for (uint32_t i = 0; ws && i < ws->v.arr.n; i++) {
            const proto_val *x = &ws->v.arr.items[i];
            printf("%-32.32s  %-9s  %-16.16s  %7lld  %6lld  %6lld\n", str_of(x, "id", "?"), str_of(x, "role", "?"),
                   str_of(x, "host", ""), int_of(x, "pid", 0), int_of(x, "credit", 0), int_of(x, "leased", 0));
        }
    }
    proto_msg_destroy(&reply);
    return 0;
}
