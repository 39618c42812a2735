/* tools/gendata.c — `jobctl gen-data synth ...`: writes the built-in synth dataset as
 * GSM8K-format JSONL ({"question", "answer"} per line, answers ending "#### N"), so the same
 * problems can be used outside thinkfast or fed back in as {"format": "gsm8k"}. jobctl (owned
 * by tools/jobctl_main.c) dispatches here; the generator itself is jobs/synth.c.
 */
#include "tools/gendata.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs/synth.h"

static void usage(FILE *f) {
    synth_params d;
    synth_params_default(&d);
    fprintf(f,
            "usage: jobctl gen-data synth [--n N] [--seed S] [--steps MIN,MAX] [--numbers LO,HI]\n"
            "                             [--out FILE|-]\n"
            "Writes seeded GSM8K-style word problems as JSONL ({\"question\", \"answer\"}; the answer\n"
            "is a step-by-step solution ending \"#### N\"). Same arguments -> byte-identical output.\n"
            "  --n N            number of problems (default %d)\n"
            "  --seed S         generator seed, 0..2^64-1 (default %llu)\n"
            "  --steps MIN,MAX  solution lines per problem, 1..%d (default %d,%d)\n"
            "  --numbers LO,HI  range of the base quantities (default %d,%d)\n"
            "  --out FILE|-     output file (written to FILE.tmp.PID, then renamed); - = stdout (default -)\n"
            "  --help           this text\n",
            d.n, (unsigned long long)d.seed, SYNTH_MAX_STEPS, d.steps_min, d.steps_max, d.num_min,
            d.num_max);
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int parse_pair(const char *s, int lo, int hi, int *a, int *b) {
    char buf[64];
    long long x, y;
    if (strlen(s) >= sizeof buf) return -1;
    strcpy(buf, s);
    char *comma = strchr(buf, ',');
    if (!comma) return -1;
    *comma = 0;
    if (parse_ll(buf, lo, hi, &x) || parse_ll(comma + 1, lo, hi, &y)) return -1;
    *a = (int)x;
    *b = (int)y;
    return 0;
}

int gendata_main(int argc, char **argv) {
    synth_params p;
    synth_params_default(&p);
    const char *out = "-";
    int i = 1;
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "synth") != 0) {
        fprintf(stderr, "jobctl gen-data: expected a generator name (synth)%s%s\n",
                argc >= 2 ? ", got " : "", argc >= 2 ? argv[1] : "");
        usage(stderr);
        return 2;
    }
    for (i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "jobctl gen-data: %s: %s\n", a,
                    strncmp(a, "--", 2) ? "unexpected argument" : "missing value");
            return 2;
        }
        if (!strcmp(a, "--n")) {
            if (parse_ll(v, 0, 10000000, &x)) {
                fprintf(stderr, "jobctl gen-data: --n: expected an integer in [0, 10000000], got \"%s\"\n", v);
                return 2;
            }
            p.n = (int)x;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "jobctl gen-data: --seed: expected a non-negative integer, got \"%s\"\n", v);
                return 2;
            }
            p.seed = s;
        } else if (!strcmp(a, "--steps")) {
            if (parse_pair(v, 1, SYNTH_MAX_STEPS, &p.steps_min, &p.steps_max) ||
                p.steps_min > p.steps_max) {
                fprintf(stderr, "jobctl gen-data: --steps: expected MIN,MAX with 1 <= MIN <= MAX <= %d, got \"%s\"\n",
                        SYNTH_MAX_STEPS, v);
                return 2;
            }
        } else if (!strcmp(a, "--numbers")) {
            if (parse_pair(v, 1, 100000, &p.num_min, &p.num_max) || p.num_min >= p.num_max) {
                fprintf(stderr, "jobctl gen-data: --numbers: expected LO,HI with 1 <= LO < HI <= 100000, got \"%s\"\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--out")) {
            out = v;
        } else {
            fprintf(stderr, "jobctl gen-data: unknown option %s (see --help)\n", a);
            return 2;
        }
        i++;
    }
    char err[512];
    if (synth_params_check(&p, err, sizeof err)) {
        fprintf(stderr, "jobctl gen-data: %s\n", err);
        return 2;
    }
    /* Stream problem by problem (10M problems would not fit in memory at once); a file is
     * written to a temp name, fsync'd and renamed, so readers never see half a dataset. */
    FILE *f = stdout;
    char tmp[4200];
    int direct = 0;
    if (strcmp(out, "-") != 0) {
        if (strlen(out) > 4000) {
            fprintf(stderr, "jobctl gen-data: --out: path too long\n");
            return 2;
        }
        struct stat st;
        if (stat(out, &st) == 0 && !S_ISREG(st.st_mode)) {
            /* a device or pipe (/dev/null, /dev/stdout, a fifo): write to it directly; a
             * temp-and-rename would replace the device node with a plain file */
            f = fopen(out, "wb");
            if (!f) {
                fprintf(stderr, "jobctl gen-data: %s: %s\n", out, strerror(errno));
                return 1;
            }
            direct = 1;
        } else {
            snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
            f = fopen(tmp, "wb");
        }
        if (!f) {
            fprintf(stderr, "jobctl gen-data: %s: %s\n", tmp, strerror(errno));
            return 1;
        }
    }
    int rc = 0;
    util_buf q, sol;
    util_buf_init(&q);
    util_buf_init(&sol);
    for (int k = 0; k < p.n && rc == 0; k++) {
        int64_t ans;
        q.len = sol.len = 0;
        if (synth_problem(&p, k, &q, &sol, &ans, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "jobctl gen-data: %s\n", err);
            rc = 1;
            break;
        }
        job_problem one = {"", q.data, sol.data, "", "", 0};
        job_dataset d1 = {&one, 1};
        if (synth_write_jsonl(&d1, f)) rc = 1;
    }
    util_buf_free(&q);
    util_buf_free(&sol);
    if (f == stdout || direct) { /* no rename: just flush and report */
        int bad = fflush(f) != 0 || ferror(f);
        if (direct && fclose(f) != 0) bad = 1;
        if (bad && rc == 0) rc = 1;
        if (rc) fprintf(stderr, "jobctl gen-data: write error on %s: %s\n",
                        f == stdout ? "stdout" : out, strerror(errno));
        return rc;
    }
    if (rc == 0 && (fflush(f) || ferror(f) || fsync(fileno(f)))) rc = 1;
    if (fclose(f) && rc == 0) rc = 1;
    if (rc == 0 && rename(tmp, out) != 0) rc = 1;
    if (rc) {
        fprintf(stderr, "jobctl gen-data: writing %s: %s\n", out, strerror(errno));
        unlink(tmp);
        return 1;
    }
    fprintf(stderr, "jobctl gen-data: wrote %d problems (seed %llu, steps %d..%d, numbers %d..%d) to %s\n",
            p.n, (unsigned long long)p.seed, p.steps_min, p.steps_max, p.num_min, p.num_max, out);
    return 0;
}
