/* tools/bench_engine_main.c — bin/bench_engine: CPU (or CUDA) engine throughput.
 *
 *   bin/bench_engine [--device cpu] [--stories DIR] [--out bench/results/engine_cpu.json]
 *                    [--prompt N] [--gen N] [--batch B] [--quick]
 *
 * Models: stories260K (converted from the llama2.c files in --stories, default
 * ../shared/data/models/stories260K; skipped if absent) and two random-weight models of the
 * same width (~15M parameters, written to a temp dir): a Llama (dim 288, 6 layers, the
 * stories15M shape) and a pure Mamba-2 (dim 288, 12 layers, d_state 64). For each model:
 * prefill tokens/s (one prompt of --prompt tokens), decode tokens/s at batch 1 and at batch B
 * (B samples of one prompt, continuous batching), sampling at temperature 0.8, top-p 0.95.
 * Results go to stdout as a table and to --out as JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "kernels/ops.h"
#include "workers/model/engine.h"
#include "workers/model/llama2c.h"
#include "workers/model/model.h"
#include "workers/model/model_random.h"

typedef struct bench_row {
    char name[64];
    int64_t params;
    double prefill_tps, decode1_tps, decodeB_tps, mean_batch;
    int prompt, gen, batch;
} bench_row;

static int run_case(model *m, int n_prompt, int n_gen, int n_samples, int max_seqs, eng_stats *st, char *err, size_t errlen) {
    engine *e = NULL;
    eng_config cfg = {max_seqs, 512, 16, 1, 0};
    if (eng_new(m, NULL, &cfg, &e, err, errlen)) return -1;
    int V = model_cfg(m)->vocab_size;
    int32_t *p = xmalloc(sizeof(int32_t) * n_prompt);
    uint32_t x = 12345;
    for (int i = 0; i < n_prompt; i++) { x = x * 1664525u + 1013904223u; p[i] = 3 + (int32_t)((x >> 8) % (uint32_t)(V - 3)); }
    eng_request r;
    memset(&r, 0, sizeof r);
    r.prompt = p; r.n_prompt = n_prompt; r.n_samples = n_samples; r.temperature = 0.8f; r.top_p = 0.95f;
    r.seed = 1; r.max_tokens = n_gen;
    int rc = eng_run(e, &r, 1, NULL, NULL, err, errlen);
    eng_get_stats(e, st);
    eng_destroy(&e);
    free(p);
    return rc;
}

static int reps = 3;

static int bench_model(const char *dir, const char *name, int64_t params, const char *device, int n_prompt, int n_gen,
                       int batch, bench_row *row, char *err, size_t errlen) {
    op_backend *be = op_backend_new(device, err, errlen);
    if (!be) return -1;
    model *m = NULL;
    if (model_load(dir, be, &m, err, errlen)) { be->destroy(&be); return -1; }
    memset(row, 0, sizeof *row);
    snprintf(row->name, sizeof row->name, "%s", name);
    row->params = params > 0 ? params : (int64_t)(model_weight_bytes(m) / be->act_bytes);
    row->prompt = n_prompt;
    row->gen = n_gen;
    row->batch = batch;
    eng_stats st;
    int rc = 0;
    /* warm-up, then the best of `reps` runs of each case (machines are noisy) */
    if ((rc = run_case(m, 16, 4, 1, 1, &st, err, errlen))) goto out;
    for (int r = 0; r < reps; r++) {
        if ((rc = run_case(m, n_prompt, 1, 1, 1, &st, err, errlen))) goto out;
        double v = st.prefill_tokens / st.prefill_s;
        if (v > row->prefill_tps) row->prefill_tps = v;
        if ((rc = run_case(m, 16, n_gen, 1, 1, &st, err, errlen))) goto out;
        v = st.decode_tokens / st.decode_s;
        if (v > row->decode1_tps) row->decode1_tps = v;
        if ((rc = run_case(m, 16, n_gen, batch, batch, &st, err, errlen))) goto out;
        v = st.decode_tokens / st.decode_s;
        if (v > row->decodeB_tps) row->decodeB_tps = v;
        row->mean_batch = st.mean_batch;
    }
out:
    model_destroy(&m);
    be->destroy(&be);
    return rc;
}

int main(int argc, char **argv) {
    const char *device = "cpu", *stories = "../shared/data/models/stories260K", *out = "bench/results/engine_cpu.json";
    int n_prompt = 128, n_gen = 64, batch = 16, quick = 0;
    log_set_name("bench_engine");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            printf("usage: bench_engine [--device cpu] [--stories DIR (default %s)] [--out FILE (default %s)]\n"
                   "                    [--prompt N (128)] [--gen N (64)] [--batch B (16)] [--reps R (3, best of)] [--quick]\n"
                   "threads: THINKFAST_CPU_THREADS (default: online CPUs, at most 8)\n", stories, out);
            return 0;
        }
        if (!v && strcmp(a, "--quick")) { fprintf(stderr, "bench_engine: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--device")) device = argv[++i];
        else if (!strcmp(a, "--stories")) stories = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else if (!strcmp(a, "--prompt")) n_prompt = atoi(argv[++i]);
        else if (!strcmp(a, "--gen")) n_gen = atoi(argv[++i]);
        else if (!strcmp(a, "--batch")) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--reps")) reps = atoi(argv[++i]) > 0 ? atoi(argv[i]) : 1;
        else { fprintf(stderr, "bench_engine: unknown option %s\n", a); return 2; }
    }
    if (n_prompt < 1 || n_gen < 1 || batch < 1) { fprintf(stderr, "bench_engine: --prompt/--gen/--batch must be positive\n"); return 2; }
    if (quick) { n_prompt = 32; n_gen = 16; batch = 4; reps = 1; }
    char err[1024];
    char tmp[] = "/tmp/thinkfast_bench_XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    bench_row rows[3];
    int nr = 0;
    char dir[512], ck[1024], tb[1024];
    snprintf(ck, sizeof ck, "%s/stories260K.bin", stories);
    snprintf(tb, sizeof tb, "%s/tok512.bin", stories);
    snprintf(dir, sizeof dir, "%s/stories260K", tmp);
    if (access(ck, R_OK) == 0 && llama2c_convert(ck, tb, dir, NULL, 0, err, sizeof err) == 0) {
        if (bench_model(dir, "stories260K", 0, device, n_prompt, n_gen, batch, &rows[nr], err, sizeof err) == 0) nr++;
        else fprintf(stderr, "bench_engine: stories260K: %s\n", err);
    } else {
        fprintf(stderr, "bench_engine: stories260K skipped (%s)\n", access(ck, R_OK) ? "file not found" : err);
    }
    model_random_spec ls;
    memset(&ls, 0, sizeof ls);
    ls.arch = MODEL_LLAMA; ls.vocab = 32000; ls.hidden = 288; ls.layers = 6; ls.intermediate = 768;
    ls.heads = 6; ls.kv_heads = 6; ls.head_dim = 48; ls.tie = 1; ls.dtype = OP_F32; ls.seed = 15;
    model_random_spec ms = ls;
    ms.arch = MODEL_MAMBA2; ms.layers = 12; ms.m_heads = 9; ms.m_head_dim = 64; ms.m_groups = 1; ms.m_d_state = 64;
    ms.m_d_conv = 4; ms.m_expand = 2; ms.m_chunk = 128;
    model_random_spec *specs[2] = {&ls, &ms};
    const char *names[2] = {"llama-15M-random", "mamba2-15M-random"};
    for (int k = 0; k < 2; k++) {
        snprintf(dir, sizeof dir, "%s/%s", tmp, names[k]);
        if (model_write_random(dir, specs[k], err, sizeof err)) { fprintf(stderr, "bench_engine: %s\n", err); continue; }
        if (bench_model(dir, names[k], model_random_params(specs[k]), device, n_prompt, n_gen, batch, &rows[nr], err, sizeof err) == 0) nr++;
        else fprintf(stderr, "bench_engine: %s: %s\n", names[k], err);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "bench_engine: could not remove %s\n", tmp);

    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    printf("%-20s %10s %14s %14s %16s\n", "model", "params", "prefill tok/s", "decode b1", "decode batched");
    util_buf j;
    util_buf_init(&j);
    const char *thr = getenv("THINKFAST_CPU_THREADS");
    util_buf_printf(&j, "{\"bench\": \"engine\", \"device\": \"%s\", \"cpus\": %ld, \"threads_env\": \"%s\", \"reps\": %d, \"prompt_tokens\": %d, \"gen_tokens\": %d, "
                    "\"batch\": %d, \"sampling\": \"temperature 0.8, top_p 0.95\", \"time\": %lld, \"models\": [",
                    device, ncpu, thr ? thr : "", reps, n_prompt, n_gen, batch, (long long)util_wall_ms());
    for (int i = 0; i < nr; i++) {
        bench_row *r = &rows[i];
        printf("%-20s %10lld %14.1f %14.1f %16.1f (mean batch %.1f)\n", r->name, (long long)r->params, r->prefill_tps,
               r->decode1_tps, r->decodeB_tps, r->mean_batch);
        util_buf_printf(&j, "%s{\"name\": \"%s\", \"params\": %lld, \"prefill_tok_s\": %.1f, \"decode_b1_tok_s\": %.1f, "
                        "\"decode_batched_tok_s\": %.1f, \"mean_batch\": %.2f}", i ? ", " : "", r->name, (long long)r->params,
                        r->prefill_tps, r->decode1_tps, r->decodeB_tps, r->mean_batch);
    }
    util_buf_printf(&j, "]}\n");
    int rc = 0;
    if (out && *out) {
        if (util_write_file_atomic(out, j.data, j.len, err, sizeof err)) { fprintf(stderr, "bench_engine: %s\n", err); rc = 1; }
        else fprintf(stderr, "bench_engine: wrote %s\n", out);
    }
    util_buf_free(&j);
    return nr == 3 || (nr == 2 && access(ck, R_OK) != 0) ? rc : 1;
}
