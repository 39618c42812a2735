/* tools/bench_grade_main.c — bin/bench_grade: grader throughput and aggregation time.
 *
 *   bin/bench_grade [--math500 FILE] [--gsm8k FILE] [--out bench/results/grade.json] [--seconds S]
 * Measures, on one core: graded answers per second for each grader on MATH500-style responses
 * (the reference solutions of a MATH500 / GSM8K JSONL file when given, else built-in synthetic
 * responses covering the MATH answer forms), and the wall time of aggregate_compute for
 * 500 problems x 1024 samples with k = 1, 2, 4, ..., 1024 (synthetic replay-like scores with
 * rewards and times), on one thread and on all CPUs ($THINKFAST_AGG_THREADS). Writes one JSON
 * object to --out and prints it.
 */
#include "workers/aggregate/aggregate.h"
#include "workers/aggregate/metrics.h"
#include "workers/score/grade.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

typedef struct pair { char *resp, *ref; } pair;

static int load_pairs(const char *path, grader_kind k, pair **out) {
    FILE *f = fopen(path, "r");
    if (!f) { fprintf(stderr, "bench_grade: %s: cannot open\n", path); return -1; }
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    *out = NULL;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        if (!o) continue;
        const char *resp = json_string_value(json_object_get(o, k == GRADER_MATH ? "solution" : "answer"));
        const char *ref = json_string_value(json_object_get(o, "answer"));
        if (resp && ref) {
            *out = xrealloc(*out, sizeof(pair) * (size_t)(n + 1));
            (*out)[n].resp = xstrdup(resp);
            if (k == GRADER_GSM8K) { const char *h = strstr(ref, "#### "); (*out)[n].ref = xstrdup(h ? h + 5 : ref); }
            else (*out)[n].ref = xstrdup(ref);
            n++;
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    return n;
}

/* Synthetic MATH500-style responses: a paragraph of reasoning, then a boxed answer in one of the
 * forms MATH uses; references in a different but equivalent (or wrong) spelling. */
static int synth_pairs(grader_kind k, pair **out) {
    static const char *const forms[][2] = {
        {"\\frac{14}{3}", "\\dfrac{14}{3}"}, {"3\\sqrt{13}", "\\sqrt{117}"}, {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"},
        {"90^\\circ", "90"}, {"\\text{Evelyn}", "Evelyn"}, {"p - q", "-q+p"}, {"(-\\infty, 3] \\cup (5, \\infty)", "(-\\infty,3]\\cup(5,\\infty)"},
        {"x = 5", "5"}, {"1,000", "1000"}, {"0.5", "\\frac12"}, {"2x^2+3x-1", "3x+2x^2-1"}, {"-2, 1, 3", "3,-2,1"},
        {"\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}"}, {"17", "18"}, {"\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{2}}{2}"},
        {"12\\pi", "12\\pi"},
    };
    static const char *const gforms[][2] = {{"18", "18"}, {"$1,250", "1250"}, {"-3", "-3"}, {"0.50", ".5"}, {"42", "24"}};
    int nf = k == GRADER_MATH ? (int)(sizeof forms / sizeof forms[0]) : (int)(sizeof gforms / sizeof gforms[0]);
    int n = 256;
    *out = xmalloc(sizeof(pair) * (size_t)n);
    for (int i = 0; i < n; i++) {
        util_buf b;
        util_buf_init(&b);
        for (int j = 0; j < 6; j++)
            util_buf_printf(&b, "We have that $r = \\sqrt{%d^2 + %d^2} = %d.$ Then $\\frac{%d}{%d} \\cdot x = %d$, so step %d gives %d. ",
                            i % 7, j + 3, i + j, j + 1, i % 5 + 2, i * 3 + j, j, i + 2 * j);
        if (k == GRADER_MATH) util_buf_printf(&b, "Therefore the answer is $\\boxed{%s}$.", forms[i % nf][0]);
        else util_buf_printf(&b, "So she pays %s in total.\n#### %s", gforms[i % nf][0], gforms[i % nf][0]);
        (*out)[i].resp = b.data;
        (*out)[i].ref = xstrdup(k == GRADER_MATH ? forms[i % nf][1] : gforms[i % nf][1]);
    }
    return n;
}

static double bench_grader(grader_kind k, pair *p, int n, double seconds, double *acc) {
    char ex[GRADE_ANSWER_MAX + 1];
    long done = 0, correct = 0;
    int64_t t0 = util_now_ns(), t;
    do {
        for (int i = 0; i < n; i++) correct += grade_answer(k, p[i].resp, p[i].ref, ex, sizeof ex);
        done += n;
        t = util_now_ns();
    } while ((double)(t - t0) / 1e9 < seconds);
    *acc = (double)correct / (double)done;
    return (double)done / ((double)(t - t0) / 1e9);
}

int main(int argc, char **argv) {
    const char *math_path = NULL, *gsm_path = NULL, *out_path = "bench/results/grade.json";
    double seconds = 2.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: bin/bench_grade [--math500 FILE] [--gsm8k FILE] [--out FILE] [--seconds S]\n"
                   "  --math500 FILE  MATH500 JSONL: grade each reference solution against its answer (default: synthetic)\n"
                   "  --gsm8k FILE    GSM8K JSONL: grade each answer text against its #### value (default: synthetic)\n"
                   "  --out FILE      JSON results (default bench/results/grade.json)\n"
                   "  --seconds S     time per grader measurement (default 2)\n");
            return 0;
        } else if (strcmp(argv[i], "--math500") == 0 && i + 1 < argc) math_path = argv[++i];
        else if (strcmp(argv[i], "--gsm8k") == 0 && i + 1 < argc) gsm_path = argv[++i];
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_path = argv[++i];
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else { fprintf(stderr, "bench_grade: unknown argument '%s' (see --help)\n", argv[i]); return 2; }
    }
    if (!(seconds > 0)) { fprintf(stderr, "bench_grade: --seconds must be positive\n"); return 2; }
    util_buf js;
    util_buf_init(&js);
    util_buf_printf(&js, "{\"bench\":\"grade\",\"grader_threads\":1");
    for (int g = 0; g < 2; g++) {
        grader_kind k = g == 0 ? GRADER_MATH : GRADER_GSM8K;
        const char *path = k == GRADER_MATH ? math_path : gsm_path;
        pair *p = NULL;
        int n = path ? load_pairs(path, k, &p) : synth_pairs(k, &p);
        if (n <= 0) { fprintf(stderr, "bench_grade: no pairs for %s\n", grade_kind_name(k)); return 1; }
        size_t bytes = 0;
        for (int i = 0; i < n; i++) bytes += strlen(p[i].resp);
        double acc;
        double rate = bench_grader(k, p, n, seconds, &acc);
        util_buf_printf(&js, ",\"%s\":{\"input\":\"%s\",\"responses\":%d,\"mean_response_bytes\":%.0f,\"answers_per_s\":%.0f,\"fraction_correct\":%.4f}",
                        grade_kind_name(k), path ? "file" : "synthetic", n, (double)bytes / n, rate, acc);
        for (int i = 0; i < n; i++) { free(p[i].resp); free(p[i].ref); }
        free(p);
    }
    /* aggregation: 500 problems x 1024 samples */
    enum { P = 500, N = 1024 };
    static const char *const keys[] = {"right", "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9", "w10", "w11",
                                       "w12", "w13", "w14", "w15", "w16", "w17", "w18", "w19"};
    unsigned char *corr = xmalloc((size_t)P * N);
    const char **canon = xmalloc(sizeof(char *) * (size_t)P * N);
    double *rew = xmalloc(sizeof(double) * (size_t)P * N), *tim = xmalloc(sizeof(double) * (size_t)P * N);
    agg_problem *probs = xcalloc(P, sizeof(agg_problem));
    metrics_rng r;
    metrics_rng_seed(&r, 2024);
    static const char *const subj[] = {"Algebra", "Geometry", "Number Theory", "Precalculus"};
    for (int p = 0; p < P; p++) {
        double pc = metrics_rng_uniform(&r); /* per-problem difficulty */
        for (int s = 0; s < N; s++) {
            size_t i = (size_t)p * N + s;
            int ok = metrics_rng_uniform(&r) < pc;
            corr[i] = (unsigned char)ok;
            /* wrong answers: Zipf-like over 20 spellings, 5% no answer */
            if (ok) canon[i] = keys[0];
            else if (metrics_rng_uniform(&r) < 0.05) canon[i] = "";
            else { int w = 1; while (w < 20 && metrics_rng_uniform(&r) < 0.6) w++; canon[i] = keys[w]; }
            rew[i] = ok ? 0.3 + 0.7 * metrics_rng_uniform(&r) : 0.8 * metrics_rng_uniform(&r);
            tim[i] = 0.5 + metrics_rng_uniform(&r);
        }
        probs[p] = (agg_problem){.p = p, .n = N, .correct = corr + (size_t)p * N, .canonical = canon + (size_t)p * N,
                                 .reward = rew + (size_t)p * N, .time_s = tim + (size_t)p * N, .subject = subj[p % 4], .level = 1 + p % 5};
    }
    int ks[11];
    for (int j = 0; j < 11; j++) ks[j] = 1 << j;
    agg_stats st;
    char err[256];
    const char *te0 = getenv("THINKFAST_AGG_THREADS");
    char *saved = te0 ? xstrdup(te0) : NULL;
    for (int run = 0; run < 4; run++) {
        int with_rew = run & 1, single = run < 2;
        if (!with_rew) for (int p = 0; p < P; p++) probs[p].reward = NULL;
        else for (int p = 0; p < P; p++) probs[p].reward = rew + (size_t)p * N;
        if (single) setenv("THINKFAST_AGG_THREADS", "1", 1);
        else if (saved) setenv("THINKFAST_AGG_THREADS", saved, 1);
        else unsetenv("THINKFAST_AGG_THREADS");
        int64_t t0 = util_now_ns();
        if (aggregate_compute(probs, P, ks, 11, 7, &st, err, sizeof err) != 0) { fprintf(stderr, "bench_grade: %s\n", err); return 1; }
        double secs = (double)(util_now_ns() - t0) / 1e9;
        int mc_cells = 0;
        double se_max = 0; /* the largest standard error of a job-level majority@k (Monte Carlo parts) */
        for (int j = 0; j < 11; j++) { mc_cells += st.majority_mc[j]; if (st.majority_se[j] > se_max) se_max = st.majority_se[j]; }
        const char *te = getenv("THINKFAST_AGG_THREADS");
        long threads = te && *te ? strtol(te, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
        util_buf_printf(&js, ",\"aggregate%s\":{\"threads\":%ld,\"problems\":%d,\"samples_per_problem\":%d,\"k\":\"1..1024 (11 values)\",\"seconds\":%.3f,"
                        "\"majority_exact\":%s,\"majority_mc_cells\":%d,\"cells\":%d,\"majority_se_max\":%.5f,\"wbon_exact\":%s,\"coverage_k1024\":%.4f,\"majority_k1024\":%.4f}",
                        with_rew ? (single ? "_with_rewards_1thread" : "_with_rewards") : (single ? "_1thread" : ""), threads, P, N, secs, st.majority_exact ? "true" : "false",
                        mc_cells, P * 11, se_max,
                        with_rew ? (st.wbon_exact ? "true" : "false") : "null", st.coverage[10], st.majority[10]);
        agg_stats_free(&st);
    }
    free(saved);
    free(corr); free(canon); free(rew); free(tim); free(probs);
    util_buf_printf(&js, "}\n");
    fputs(js.data, stdout);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", out_path);
    char *slash = strrchr(dir, '/');
    if (slash) { *slash = 0; util_mkdirs(dir, 0755); }
    if (util_write_file_atomic(out_path, js.data, js.len, err, sizeof err) != 0) { fprintf(stderr, "bench_grade: %s\n", err); return 1; }
    util_buf_free(&js);
    return 0;
}
