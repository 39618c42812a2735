/* tools/bench_engine_gpu_main.c — bin/bench_engine_gpu: decode throughput of the real engine
 * (workers/model/engine.c: continuous batching, paged KV, prompt sharing, CUDA-graph decode
 * steps per batch bucket, GPU sampling) on random-weight models of real shapes.
 *
 * Per architecture (teacher = Llama-3.2-1B shape, student = Llamba-1B shape, hybrid50/25 =
 * attention kept in every 2nd / 4th layer) a random bf16 HF checkpoint is written to --tmp and
 * loaded; then for each batch B of --batch ("max" = the largest the memory plan admits for
 * prompt + gen tokens, eng_plan) the engine runs B/S prompts x S samples (S = --samples, the
 * prompt's KV pages shared by its samples) of exactly --gen tokens (EOS ignored) with the slot
 * count planned from free memory (ENG_SEQS_AUTO capped at B). Reported: decode tokens/s (decode
 * steps only; prefill separately), mean batch, mean step time, graph statistics, and the step's
 * roofline bound at the mean context (weights + KV/state traffic over 3.0 TB/s, matmul FLOPs
 * over 800 TFLOP/s; as in tools/bench_gpu_main.c). --ab adds the plain eager path (no graphs,
 * host sampling) at the same points.
 *
 * Long generations (--window G): running 7000 sequences for 8192 tokens takes too long for a
 * benchmark call, so a window of --gen tokens is timed at the generation's mean context, at the
 * batch that fits the whole prompt + G tokens. Each sequence then has its own prompt of
 * prompt + G/2 - gen/2 tokens (one sample per prompt: in the real run only the first `prompt`
 * tokens are shared, the generated ones are private, so a window with shared long prompts would
 * read most of its context from L2 and flatter attention). A pure Mamba model's step does not
 * depend on the context (fixed-size state), so its window keeps the short prompt (said in the
 * output); its batch is still the one that fits prompt + G.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/ops.h"
#include "workers/model/engine.h"
#include "workers/model/model_random.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#define ROOF_BW 3.0e12
#define ROOF_FLOPS 800e12

static void usage(void) {
    printf("usage: bench_engine_gpu [options]\n"
           "  --arch LIST     teacher,student,hybrid50,hybrid25 (default: all four)\n"
           "  --batch LIST    batch sizes, \"max\" = the largest that fits (default 64,256,max)\n"
           "  --max-arch LIST architectures that run the \"max\" point (default: all of --arch)\n"
           "  --max-cap N     run the \"max\" point at most at this batch (default 8192; the plan is reported)\n"
           "  --prompt N      prompt tokens (default 256)\n"
           "  --gen N         generated tokens per sample (default 1024)\n"
           "  --plan P,G      size \"max\" for prompts of P tokens generating G (default: --prompt, --gen).\n"
           "                  With --prompt P + G/2 - gen/2 this times a window of a longer generation at\n"
           "                  its mean context (attention cost is linear in the context) at the batch\n"
           "                  that fits the whole P + G tokens: e.g. --plan 256,8192 --prompt 4224 --gen 256\n"
           "  --window G      time a --gen window of a G-token generation at its mean context (see the\n"
           "                  file header): the plan is --prompt + G, one sample per prompt\n"
           "  --samples S     samples per prompt (default 8)\n"
           "  --page N        KV page size (default 64)\n"
           "  --layers N      layers (default 16)\n"
           "  --small         tiny shapes (vocab 512, hidden 64) to check the runner on the cpu\n"
           "  --decode MODE   graphs (default: bucketed steps, a CUDA graph per bucket, GPU sampling),\n"
           "                  bucketed (the same steps, never captured) or eager (the plain path)\n"
           "  --ab LIST       batch sizes at which the plain eager path also runs (default: none)\n"
           "  --backend NAME  cuda (default), cuda:N or cpu\n"
           "  --tmp DIR       where the random checkpoints are written (default /tmp)\n"
           "  --keep          reuse checkpoints already in --tmp and keep them afterwards\n"
           "  --write-only    only write the checkpoints of --arch into --tmp (no device needed)\n"
           "  --out FILE      JSON results (written after every point)\n");
}

typedef struct point {
    char arch[16], mode[12];
    int batch, planned_max, is_max, prompts, samples, gen, prompt, max_seqs, graphs;
    double decode_s, prefill_s, tok_s, mean_batch, step_ms, roof_ms, frac;
    int64_t decode_tokens, steps, replays, padded;
} point;

static int is_attn(const char *arch, int l) {
    if (strcmp(arch, "teacher") == 0) return 1;
    if (strcmp(arch, "hybrid50") == 0) return l % 2 == 1;
    if (strcmp(arch, "hybrid25") == 0) return l % 4 == 3;
    return 0;
}

static int parse_batches(const char *s, int *out, int cap) {
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t && n < cap; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "max") == 0) { out[n++] = -1; continue; }
        char *end;
        long v = strtol(t, &end, 10);
        if (*end || v <= 0 || v > 1 << 20) return -1;
        out[n++] = (int)v;
    }
    return n;
}

static void write_json(const char *path, const char *dev, const point *p, int n, int prompt, int gen, int page, int window,
                       int plan_prompt, int plan_gen) {
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "bench_engine_gpu: %s: cannot write\n", path); return; }
    fprintf(f, "{\"benchmark\":\"gpu_engine\",\"mode\":\"engine (eng_run: continuous batching, CUDA graph per batch "
               "bucket, GPU sampling, slots planned from free memory)\",\"device\":\"%s\",\"prompt\":%d,\"gen\":%d,"
               "\"page_size\":%d,\"plan_prompt\":%d,\"plan_gen\":%d,\"window\":%s,\"roofline\":{\"bytes_per_s\":%.3g,"
               "\"flops_per_s\":%.3g},\"points\":[",
            dev, prompt, gen, page, plan_prompt, plan_gen, window ? "true" : "false", ROOF_BW, ROOF_FLOPS);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{\"arch\":\"%s\",\"decode\":\"%s\",\"batch\":%d,\"is_max\":%s,\"planned_max_batch\":%d,"
                   "\"max_seqs\":%d,\"prompts\":%d,\"samples\":%d,\"prompt\":%d,\"gen\":%d,\"decode_tokens_per_s\":%.1f,"
                   "\"mean_batch\":%.2f,\"decode_tokens\":%lld,\"decode_steps\":%lld,\"decode_s\":%.4f,\"step_ms\":%.4f,"
                   "\"prefill_s\":%.4f,\"graphs\":%d,\"graph_replays\":%lld,\"padded_rows\":%lld,\"roofline_ms\":%.4f,"
                   "\"roofline_fraction\":%.4f}",
                i ? "," : "", p[i].arch, p[i].mode, p[i].batch, p[i].is_max ? "true" : "false", p[i].planned_max,
                p[i].max_seqs, p[i].prompts, p[i].samples, p[i].prompt, p[i].gen, p[i].tok_s, p[i].mean_batch,
                (long long)p[i].decode_tokens, (long long)p[i].steps, p[i].decode_s, p[i].step_ms, p[i].prefill_s,
                p[i].graphs, (long long)p[i].replays, (long long)p[i].padded, p[i].roof_ms, p[i].frac);
    fprintf(f, "]}\n");
    fclose(f);
}

static int count_emit(void *ud, const eng_result *r) {
    (void)r;
    (*(int *)ud)++;
    return 0;
}

int main(int argc, char **argv) {
    const char *archs_s = "teacher,student,hybrid50,hybrid25", *max_archs = NULL, *out = NULL, *tmp = "/tmp";
    const char *backend = "cuda", *batch_s = "64,256,max";
    int prompt = 256, gen = 1024, S = 8, page = 64, layers = 16, small = 0, max_cap = 8192;
    int plan_prompt = 0, plan_gen = 0; /* 0: the run's own prompt and gen */
    int window = 0;                    /* --window G */
    int ab[32], n_ab = 0, main_mode = 1;
    int keep = 0, write_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) { usage(); return 0; }
        if (strcmp(a, "--small") == 0) { small = 1; continue; }
        if (strcmp(a, "--keep") == 0) { keep = 1; continue; }
        if (strcmp(a, "--write-only") == 0) { write_only = 1; keep = 1; continue; }
        if (!v) { fprintf(stderr, "bench_engine_gpu: %s needs a value (--help)\n", a); return 2; }
        i++;
        if (strcmp(a, "--arch") == 0) archs_s = v;
        else if (strcmp(a, "--batch") == 0) batch_s = v;
        else if (strcmp(a, "--max-arch") == 0) max_archs = v;
        else if (strcmp(a, "--max-cap") == 0) max_cap = atoi(v);
        else if (strcmp(a, "--prompt") == 0) prompt = atoi(v);
        else if (strcmp(a, "--gen") == 0) gen = atoi(v);
        else if (strcmp(a, "--plan") == 0) {
            if (sscanf(v, "%d,%d", &plan_prompt, &plan_gen) != 2 || plan_prompt <= 0 || plan_gen <= 0) {
                fprintf(stderr, "bench_engine_gpu: --plan: expected P,G (positive), got \"%s\"\n", v);
                return 2;
            }
        }
        else if (strcmp(a, "--window") == 0) window = atoi(v);
        else if (strcmp(a, "--samples") == 0) S = atoi(v);
        else if (strcmp(a, "--page") == 0) page = atoi(v);
        else if (strcmp(a, "--layers") == 0) layers = atoi(v);
        else if (strcmp(a, "--backend") == 0) backend = v;
        else if (strcmp(a, "--tmp") == 0) tmp = v;
        else if (strcmp(a, "--ab") == 0) {
            n_ab = parse_batches(v, ab, 32);
            if (n_ab <= 0) { fprintf(stderr, "bench_engine_gpu: --ab: bad list \"%s\"\n", v); return 2; }
        } else if (strcmp(a, "--decode") == 0) {
            if (strcmp(v, "graphs") == 0) main_mode = 1;
            else if (strcmp(v, "bucketed") == 0) main_mode = ENG_DECODE_BUCKETED;
            else if (strcmp(v, "eager") == 0) main_mode = 0;
            else { fprintf(stderr, "bench_engine_gpu: --decode: expected graphs|bucketed|eager, got \"%s\"\n", v); return 2; }
        }
        else if (strcmp(a, "--out") == 0) out = v;
        else { fprintf(stderr, "bench_engine_gpu: unknown option %s (--help)\n", a); return 2; }
    }
    int batches[32];
    int nb = parse_batches(batch_s, batches, 32);
    if (nb <= 0) { fprintf(stderr, "bench_engine_gpu: --batch: bad list \"%s\"\n", batch_s); return 2; }
    if (prompt <= 0 || gen <= 0 || S <= 0 || page <= 0 || layers <= 0 || layers > 16 || max_cap <= 0) {
        fprintf(stderr, "bench_engine_gpu: --prompt, --gen, --samples, --page, --max-cap must be positive, --layers 1..16\n");
        return 2;
    }
    if (window < 0 || (window && (plan_prompt || window < gen))) {
        fprintf(stderr, "bench_engine_gpu: --window G needs G >= --gen and no --plan\n");
        return 2;
    }
    if (window) plan_prompt = prompt, plan_gen = window, S = 1;
    if (!plan_prompt) plan_prompt = prompt, plan_gen = gen;
    char err[512];
    op_backend *be = write_only ? NULL : op_backend_new(backend, err, sizeof err);
    if (write_only) backend = "none";
    else if (!be) { fprintf(stderr, "bench_engine_gpu: %s\n", err); return 1; }
    char desc[256];
    snprintf(desc, sizeof desc, "%s", be ? be->name : backend);
#ifdef THINKFAST_CUDA
    if (be && strncmp(be->name, "cuda", 4) == 0) op_cuda_describe(be, desc, sizeof desc);
#endif
    printf("bench_engine_gpu: backend %s; prompt %d, gen %d, %d samples per prompt, page %d, %d layers%s; "
           "batches planned for %d + %d tokens\n", desc, prompt, gen, S, page, layers, small ? " (small shapes)" : "",
           plan_prompt, plan_gen);
    fflush(stdout);
    point *pts = xcalloc(256, sizeof(point));
    int np = 0, failures = 0;
    char archs[128];
    snprintf(archs, sizeof archs, "%s", archs_s);
    for (char *save = NULL, *arch = strtok_r(archs, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        if (strcmp(arch, "teacher") && strcmp(arch, "student") && strcmp(arch, "hybrid50") && strcmp(arch, "hybrid25")) {
            fprintf(stderr, "bench_engine_gpu: unknown arch \"%s\"\n", arch);
            return 2;
        }
        model_random_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.vocab = small ? 512 : 128256; sp.hidden = small ? 64 : 2048; sp.layers = layers;
        sp.intermediate = small ? 128 : 8192; sp.heads = small ? 4 : 32; sp.kv_heads = small ? 2 : 8;
        sp.head_dim = small ? 16 : 64; sp.tie = 1;
        sp.m_heads = small ? 4 : 32; sp.m_head_dim = small ? 16 : 64; sp.m_groups = sp.m_heads;
        sp.m_d_state = small ? 16 : 64; sp.m_d_conv = 4; sp.m_expand = 1; sp.m_chunk = 128;
        sp.dtype = OP_BF16; sp.seed = 7;
        sp.max_position = 131072; /* Llama-3.2-1B's context */
        if (strcmp(arch, "teacher") == 0) sp.arch = MODEL_LLAMA;
        else {
            sp.arch = MODEL_BAMBA;
            for (int l = 0; l < layers; l++) if (is_attn(arch, l)) sp.attn_layers[sp.n_attn_layers++] = l;
        }
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/thinkfast_bench_engine_%s%s", tmp, arch, small ? "_small" : "");
        int64_t t0 = util_now_ns();
        model *m = NULL;
        char cfg_path[1100];
        snprintf(cfg_path, sizeof cfg_path, "%s/model.safetensors", dir);
        FILE *have = keep ? fopen(cfg_path, "rb") : NULL;
        if (have) fclose(have);
        if (!have && model_write_random(dir, &sp, err, sizeof err)) {
            fprintf(stderr, "bench_engine_gpu: %s: %s\n", arch, err);
            return 1;
        }
        if (write_only) { printf("%s: wrote %s (%.1f s)\n", arch, dir, (util_now_ns() - t0) / 1e9); fflush(stdout); continue; }
        if (model_load(dir, be, &m, err, sizeof err)) {
            fprintf(stderr, "bench_engine_gpu: %s: %s\n", arch, err);
            return 1;
        }
        const model_config *c = model_cfg(m);
        printf("\n%s: %d attention + %d mamba layers, %.2f GiB of weights (write + load %.1f s)\n", arch,
               c->n_attn_layers, c->n_layers - c->n_attn_layers, model_weight_bytes(m) / 1073741824.0,
               (util_now_ns() - t0) / 1e9);
        printf("  %-8s %-6s %6s %6s %6s %10s %8s %9s %8s %8s %7s %6s %8s\n", "arch", "decode", "batch", "slots", "plan",
               "tok/s", "step_ms", "mean_B", "prefill", "roof_ms", "roof%", "graphs", "padded");
        fflush(stdout);
        int run_max = !max_archs || strstr(max_archs, arch) != NULL;
        /* the run's prompt: a window's mean context, except for a pure Mamba model (file header) */
        int rp = prompt;
        if (window && c->n_attn_layers > 0) rp = prompt + window / 2 - gen / 2;
        if (window)
            printf("  window: %d tokens at mean context %d of a %d + %d generation, own prompts of %d tokens%s\n", gen,
                   rp + gen / 2, prompt, window, rp,
                   c->n_attn_layers ? "" : " (pure Mamba: the step does not depend on the context)");
        for (int bi = 0; bi < nb; bi++) {
            int B = batches[bi];
            if (B < 0 && !run_max) continue;
            engine *e = NULL;
            eng_config ec = {ENG_SEQS_AUTO, 256, page, 4, 0};
            if (eng_new(m, NULL, &ec, &e, err, sizeof err)) { fprintf(stderr, "bench_engine_gpu: %s\n", err); return 1; }
            eng_set_ignore_eos(e, 1);
            eng_set_seqs_cap(e, 1 << 20);
            int planned = eng_plan(e, plan_prompt + plan_gen, plan_prompt, S, err, sizeof err);
            if (planned >= 0 && (plan_prompt != rp || plan_gen != gen)) { /* the run itself must fit too */
                int own = eng_plan(e, rp + gen, rp, S, err, sizeof err);
                if (own >= 0 && own < planned) planned = own;
            }
            if (planned < 0) { printf("  %s: %s\n", arch, err); eng_destroy(&e); continue; }
            int want = B < 0 ? (planned < max_cap ? planned : max_cap) : B;
            if (want > planned) { printf("  %-8s batch %d does not fit (plan: %d)\n", arch, B, planned); eng_destroy(&e); continue; }
            int s = want < S ? want : S, P = want / s;
            want = P * s;
            eng_set_seqs_cap(e, want);
            int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)P * rp);
            eng_request *rq = xcalloc((size_t)P, sizeof *rq);
            for (int p = 0; p < P; p++) {
                for (int i = 0; i < rp; i++)
                    ids[(size_t)p * rp + i] = 3 + (int32_t)((p * 7919u + i * 104729u) % (unsigned)(c->vocab_size - 3));
                rq[p].prompt = ids + (size_t)p * rp;
                rq[p].n_prompt = rp;
                rq[p].n_samples = s;
                rq[p].problem = (uint32_t)p;
                rq[p].temperature = 1.0f;
                rq[p].top_p = 1.0f;
                rq[p].seed = 11;
                rq[p].max_tokens = gen;
            }
            int with_ab = 0;
            for (int i = 0; i < n_ab; i++) with_ab |= ab[i] == B;
            for (int pass = 0; pass < (with_ab && main_mode ? 2 : 1); pass++) {
                int mode = pass ? 0 : main_mode;
                eng_set_graphs(e, mode);
                int done = 0;
                if (eng_run(e, rq, P, count_emit, &done, err, sizeof err)) {
                    printf("  %-8s batch %d: %s\n", arch, want, err);
                    fflush(stdout);
                    failures++;
                    continue;
                }
                eng_stats st;
                eng_get_stats(e, &st);
                point *p = &pts[np++];
                snprintf(p->arch, sizeof p->arch, "%s", arch);
                snprintf(p->mode, sizeof p->mode, "%s", !mode ? "eager" : st.graph_buckets ? "graphs" : "bucketed");
                p->batch = want; p->planned_max = planned; p->is_max = B < 0; p->prompts = P; p->samples = s;
                p->gen = gen; p->prompt = rp; p->max_seqs = st.max_seqs; p->graphs = st.graph_buckets;
                p->decode_s = st.decode_s; p->prefill_s = st.prefill_s; p->decode_tokens = st.decode_tokens;
                p->steps = st.decode_steps; p->replays = st.graph_replays; p->padded = st.padded_rows;
                p->mean_batch = st.mean_batch;
                p->tok_s = st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0;
                p->step_ms = st.decode_steps ? 1000.0 * st.decode_s / st.decode_steps : 0;
                /* roofline of the mean step (context prompt + gen/2, batch = mean batch) */
                double ctx = rp + gen / 2.0, Bm = st.mean_batch;
                double kv_tok = 2.0 * c->n_attn_layers * c->n_kv_heads * c->head_dim * be->act_bytes;
                double state = (double)(c->n_layers - c->n_attn_layers) *
                               ((double)c->m_heads * c->m_head_dim * c->m_d_state * 4 + (double)c->m_conv_dim * (c->m_d_conv - 1) * 4);
                double wb = (double)model_weight_bytes(m);
                double bytes = wb + Bm * (ctx * kv_tok + 2 * state + (double)c->vocab_size * 8);
                double flops = Bm * (2.0 * wb / be->act_bytes + 4.0 * c->n_attn_layers * c->n_heads * c->head_dim * ctx);
                double tb = bytes / ROOF_BW, tf = flops / ROOF_FLOPS;
                p->roof_ms = 1000.0 * (tb > tf ? tb : tf);
                p->frac = p->step_ms > 0 ? p->roof_ms / p->step_ms : 0;
                printf("  %-8s %-6s %6d %6d %6d %10.0f %8.3f %9.1f %7.2fs %8.3f %6.1f%% %6d %8lld%s\n", arch, p->mode, want,
                       p->max_seqs, planned, p->tok_s, p->step_ms, p->mean_batch, p->prefill_s, p->roof_ms, 100 * p->frac,
                       p->graphs, (long long)p->padded, p->is_max ? "  (max)" : "");
                fflush(stdout);
                write_json(out, desc, pts, np, prompt, gen, page, window, plan_prompt, plan_gen);
            }
            free(ids);
            free(rq);
            eng_destroy(&e);
        }
        model_destroy(&m);
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (!keep && system(cmd) != 0) fprintf(stderr, "bench_engine_gpu: could not remove %s\n", dir);
    }
    if (write_only) return 0;
    /* student/teacher ratios: at equal batch and at each one's largest batch (equal memory) */
    printf("\nstudent/teacher decode throughput ratios (graphs)\n");
    const char *studs[3] = {"student", "hybrid50", "hybrid25"};
    for (int si = 0; si < 3; si++) {
        for (int i = 0; i < np; i++) {
            if (strcmp(pts[i].arch, studs[si]) || strcmp(pts[i].mode, "eager") == 0) continue;
            for (int j = 0; j < np; j++) {
                if (strcmp(pts[j].arch, "teacher") || strcmp(pts[j].mode, "eager") == 0) continue;
                if (pts[i].is_max && pts[j].is_max)
                    printf("  %-9s equal memory (B %d vs %d): %.2fx\n", studs[si], pts[i].batch, pts[j].batch,
                           pts[i].tok_s / pts[j].tok_s);
                else if (!pts[i].is_max && !pts[j].is_max && pts[i].batch == pts[j].batch)
                    printf("  %-9s equal batch %d: %.2fx\n", studs[si], pts[i].batch, pts[i].tok_s / pts[j].tok_s);
            }
        }
    }
    if (out) printf("wrote %s\n", out);
    free(pts);
    if (be) be->destroy(&be);
    return failures ? 1 : 0;
}
