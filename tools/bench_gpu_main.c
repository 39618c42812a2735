/* tools/bench_gpu_main.c — bin/bench_gpu: decode throughput of random-weight models of real
 * shapes on the CUDA backend ("make bench-gpu" runs it through tools/bench/run-gpu.sh).
 *
 * Mode "op-level decode step": the benchmark builds each architecture's decode step directly
 * from the op table (the per-layer op sequence a Llama / Mamba-2 / hybrid layer runs), captures
 * it in a CUDA graph per batch size, and times graph replays with CUDA events. Throughput does
 * not depend on the weight values; the generation length is fixed (EOS is never consulted).
 * Attention cost grows linearly with the context, everything else is constant per step, so the
 * mean step time over a generation of G tokens after a P-token prompt equals the step time at
 * context P + G/2: each (gen, batch) point is timed at that context, with KV pages and state
 * slots allocated for the full P + G tokens of every sequence (so "fits" is real).
 *
 * Models (shapes from the issue): teacher = Llama-3.2-1B (vocab 128256, hidden 2048, 16 layers,
 * 32 heads, 8 KV heads, head_dim 64, MLP 8192, tied); student = Llamba-1B shape (Mamba-2 with
 * 32 heads, head_dim 64, d_state 64, expand 1, B/C per head, conv 4); hybrids keep attention in
 * 50% (every other layer) and 25% (every 4th layer) of the layers.
 *
 * Output: a table on stdout and JSON (--out) with, per point, step time, generated tokens/s,
 * bytes and FLOPs per step, the roofline time (3.0 TB/s, 800 TFLOP/s), its fraction, and the
 * student/teacher throughput ratios at equal batch and at equal memory (each at its largest
 * batch that fits).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/ops.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#include "workers/model/engine.h"
#include "workers/model/model_random.h"
#endif

#define ROOF_BW 3.0e12     /* bytes/s, measured device-to-device copy on the H100 here */
#define ROOF_FLOPS 800e12  /* bf16 dense, measured 8192^3 GEMM */

static void usage(void) {
    printf("usage: bench_gpu [options]\n"
           "  --arch LIST      teacher,student,hybrid50,hybrid25 (default: all four)\n"
           "  --gen LIST       generation lengths (default 1024,4096,8192)\n"
           "  --batch LIST     batch sizes (default 1,8,32,64,128,256,512; plus the largest that fits)\n"
           "  --prompt N       prompt tokens (default 256)\n"
           "  --no-max         do not add the largest batch that fits\n"
           "  --max-cap N      cap on the largest batch (default 8192)\n"
           "  --layers N       layers (default 16)\n"
           "  --page N         KV page size in tokens (default 64)\n"
           "  --reserve-gib X  device memory kept free (default 3)\n"
           "  --target-ms X    timed replays per repetition add up to about X ms (default 150)\n"
           "  --sampling MODE  greedy|temp (default temp: temperature 1, no top-k/top-p: the\n"
           "                   random-weight logits are flat, a nucleus would hold most of the vocab)\n"
           "  --out FILE       JSON results (default: none)\n"
           "  --state fp32|bf16  Mamba SSM state dtype (default fp32; bf16 is the measured option)\n"
           "  --device N       CUDA device (default 0)\n"
           "  --engine P,S,G   instead: the real engine (workers/model/engine.c, graphs off) on\n"
           "                   random-weight models written to --tmp: P prompts x S samples, G tokens\n"
           "  --tmp DIR        where --engine writes its models (default /tmp)\n"
           "  --backend NAME   --engine on another backend (e.g. cpu, to check the runner)\n");
}

#ifndef THINKFAST_CUDA
int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--help") == 0) { usage(); return 0; }
    fprintf(stderr, "bench_gpu: this build has no CUDA support (GPU=0)\n");
    return 2;
}
#else

typedef struct shape {
    int V, D, L, F, Hq, Hkv, hd, H, P, N, G, K, d_inner, page;
    float eps;
} shape;

typedef struct layer_w {
    int attn;
    void *n1, *n2, *wgu, *wdown;
    void *wq, *wk, *wv, *wo;                      /* attention */
    void *wz, *wx, *wB, *wC, *wdt, *wout, *gn;     /* mamba projections, gated norm */
    void *cwx, *cwB, *cwC, *cbx, *cbB, *cbC;       /* conv weights and biases */
    float *A_log, *Dp, *dtb;
} layer_w;

typedef struct model {
    const char *arch;
    shape s;
    int n_attn, n_mamba;
    layer_w *lw;
    void *emb, *nf;
    float *inv_freq;
    double matmul_params; /* weights read by matmuls per step (incl. the tied LM head) */
    double weight_bytes;
} model;

typedef struct runbuf {
    int Bmax, max_pages, n_pages;
    void **kc, **vc;                  /* per attention layer */
    void **ssm;                       /* per mamba layer, fp32 or bf16 */
    float **cx, **cB, **cC;           /* per mamba layer */
    void *h, *xn, *q, *k, *v, *ao, *z, *x, *Bm, *Cm, *dt, *xc, *Bc, *Cc, *y, *g, *gu, *act;
    float *logits;
    int32_t *ids, *pos, *slotmap, *bt, *cu, *slots, *out_ids;
    op_sample_params *params;
} runbuf;

static op_backend *B_;
static uint64_t g_seed = 1;
static int g_prof; /* mark op boundaries for the per-op profile (eager runs only) */
static int g_state_bf16; /* --state bf16: SSM state stored in bf16 (op_cuda_ssd_scan_bf16state) */
static size_t st_elem(void) { return g_state_bf16 ? 2 : 4; }

enum { PS_EMBED, PS_NORM, PS_MM_QKV, PS_ROPE_KV, PS_ATTN, PS_MM_O, PS_MM_IN, PS_CONV, PS_SSD, PS_GNORM, PS_MM_OUT,
       PS_MM_GU, PS_SWIGLU, PS_MM_DOWN, PS_LMHEAD, PS_SAMPLE, PS_N };
static const char *ps_names[PS_N] = {"embed", "rmsnorm", "mm_qkv", "rope_kvwrite", "attention", "mm_o", "mm_in_proj",
                                     "conv1d", "ssd_scan", "gated_norm", "mm_out_proj", "mm_gate_up", "swiglu",
                                     "mm_down", "lm_head", "sample"};
#define PM(slot) do { if (g_prof) op_cuda_prof_mark(B_, (slot)); } while (0)

static void *dalloc(size_t bytes, const char *what) {
    void *p = B_->alloc(B_, bytes);
    if (!p) {
        fprintf(stderr, "bench_gpu: out of device memory allocating %s (%.2f GiB)\n", what, bytes / 1073741824.0);
        exit(1);
    }
    return p;
}
static void *wrand(size_t n, float a, double *bytes_acc) {
    void *p = dalloc(n * 2, "weights");
    op_cuda_fill_uniform(B_, p, OP_BF16, n, g_seed++, -a, a);
    if (bytes_acc) *bytes_acc += (double)n * 2;
    return p;
}
static void *wrange(size_t n, float lo, float hi) {
    void *p = dalloc(n * 2, "weights");
    op_cuda_fill_uniform(B_, p, OP_BF16, n, g_seed++, lo, hi);
    return p;
}
static float *frange(size_t n, float lo, float hi) {
    float *p = dalloc(n * 4, "fp32 params");
    op_cuda_fill_uniform(B_, p, OP_F32, n, g_seed++, lo, hi);
    return p;
}

static int is_attn_layer(const char *arch, int l) {
    if (strcmp(arch, "teacher") == 0) return 1;
    if (strcmp(arch, "student") == 0) return 0;
    if (strcmp(arch, "hybrid50") == 0) return l % 2 == 1;
    if (strcmp(arch, "hybrid25") == 0) return l % 4 == 3;
    return 0;
}

static void model_build(model *m, const char *arch, shape s) {
    memset(m, 0, sizeof *m);
    m->arch = arch;
    m->s = s;
    m->lw = xcalloc((size_t)s.L, sizeof(layer_w));
    double mm = 0;
    m->emb = wrand((size_t)s.V * s.D, 0.05f, NULL);
    mm += (double)s.V * s.D; /* tied LM head */
    m->nf = wrange(s.D, 0.9f, 1.1f);
    int conv_bc = s.G * s.N;
    for (int l = 0; l < s.L; l++) {
        layer_w *w = &m->lw[l];
        w->attn = is_attn_layer(arch, l);
        w->n1 = wrange(s.D, 0.9f, 1.1f);
        w->n2 = wrange(s.D, 0.9f, 1.1f);
        float a = 1.0f / sqrtf((float)s.D);
        if (w->attn) {
            m->n_attn++;
            w->wq = wrand((size_t)s.Hq * s.hd * s.D, a, NULL);
            w->wk = wrand((size_t)s.Hkv * s.hd * s.D, a, NULL);
            w->wv = wrand((size_t)s.Hkv * s.hd * s.D, a, NULL);
            w->wo = wrand((size_t)s.D * s.Hq * s.hd, a, NULL);
            mm += (double)(2 * s.Hq + 2 * s.Hkv) * s.hd * s.D;
        } else {
            m->n_mamba++;
            w->wz = wrand((size_t)s.d_inner * s.D, a, NULL);
            w->wx = wrand((size_t)s.d_inner * s.D, a, NULL);
            w->wB = wrand((size_t)conv_bc * s.D, a, NULL);
            w->wC = wrand((size_t)conv_bc * s.D, a, NULL);
            w->wdt = wrand((size_t)s.H * s.D, a, NULL);
            w->wout = wrand((size_t)s.D * s.d_inner, 1.0f / sqrtf((float)s.d_inner), NULL);
            w->gn = wrange(s.d_inner, 0.9f, 1.1f);
            w->cwx = wrange((size_t)s.d_inner * s.K, -0.4f, 0.4f);
            w->cwB = wrange((size_t)conv_bc * s.K, -0.4f, 0.4f);
            w->cwC = wrange((size_t)conv_bc * s.K, -0.4f, 0.4f);
            w->cbx = wrange(s.d_inner, -0.1f, 0.1f);
            w->cbB = wrange(conv_bc, -0.1f, 0.1f);
            w->cbC = wrange(conv_bc, -0.1f, 0.1f);
            w->A_log = frange(s.H, 0.0f, 1.5f);
            w->Dp = frange(s.H, 0.5f, 1.0f);
            w->dtb = frange(s.H, -3.0f, -1.0f);
            mm += (double)(2 * s.d_inner + 2 * conv_bc + s.H) * s.D + (double)s.D * s.d_inner;
        }
        w->wgu = wrand((size_t)2 * s.F * s.D, a, NULL);
        w->wdown = wrand((size_t)s.D * s.F, 1.0f / sqrtf((float)s.F), NULL);
        mm += 3.0 * s.F * s.D;
    }
    m->matmul_params = mm;
    m->weight_bytes = mm * 2;
    float *inv = xmalloc(sizeof(float) * (size_t)(s.hd / 2));
    for (int i = 0; i < s.hd / 2; i++) inv[i] = powf(500000.f, -2.f * i / s.hd);
    m->inv_freq = dalloc(sizeof(float) * (size_t)(s.hd / 2), "inv_freq");
    B_->upload(B_, m->inv_freq, inv, sizeof(float) * (size_t)(s.hd / 2));
    free(inv);
    B_->sync(B_);
}

static void model_free(model *m) {
    const shape *s = &m->s;
    (void)s;
    for (int l = 0; l < m->s.L; l++) {
        layer_w *w = &m->lw[l];
        void *ps[] = {w->n1, w->n2, w->wgu, w->wdown, w->wq, w->wk, w->wv, w->wo, w->wz, w->wx, w->wB, w->wC,
                      w->wdt, w->wout, w->gn, w->cwx, w->cwB, w->cwC, w->cbx, w->cbB, w->cbC, w->A_log, w->Dp, w->dtb};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            if (ps[i]) B_->free(B_, ps[i]);
    }
    B_->free(B_, m->emb);
    B_->free(B_, m->nf);
    B_->free(B_, m->inv_freq);
    free(m->lw);
    memset(m, 0, sizeof *m);
}

/* Per-sequence activation bytes of one decode step (all buffers of runbuf sized per sequence). */
static size_t act_bytes_per_seq(const shape *s) {
    int conv_bc = s->G * s->N;
    size_t e = (size_t)s->D * 2 + (size_t)s->Hq * s->hd + 2 * (size_t)s->Hkv * s->hd + (size_t)s->Hq * s->hd +
               2 * (size_t)s->d_inner + 2 * (size_t)conv_bc + s->H + s->d_inner + 2 * (size_t)conv_bc + s->d_inner * 2 +
               2 * (size_t)s->F + s->F;
    return e * 2 + (size_t)s->V * 4 + 64 + sizeof(op_sample_params);
}

static void runbuf_alloc(runbuf *r, const model *m, int Bmax, int max_pages) {
    const shape *s = &m->s;
    memset(r, 0, sizeof *r);
    r->Bmax = Bmax;
    r->max_pages = max_pages;
    r->n_pages = Bmax * max_pages;
    int conv_bc = s->G * s->N;
    size_t kv_elems = (size_t)r->n_pages * s->page * s->Hkv * s->hd;
    r->kc = xcalloc((size_t)s->L, sizeof(void *));
    r->vc = xcalloc((size_t)s->L, sizeof(void *));
    r->ssm = xcalloc((size_t)s->L, sizeof(void *));
    r->cx = xcalloc((size_t)s->L, sizeof(float *));
    r->cB = xcalloc((size_t)s->L, sizeof(float *));
    r->cC = xcalloc((size_t)s->L, sizeof(float *));
    for (int l = 0; l < s->L; l++) {
        if (m->lw[l].attn) {
            r->kc[l] = dalloc(kv_elems * 2, "KV cache");
            r->vc[l] = dalloc(kv_elems * 2, "KV cache");
            op_cuda_fill_uniform(B_, r->kc[l], OP_BF16, kv_elems, g_seed++, -1, 1);
            op_cuda_fill_uniform(B_, r->vc[l], OP_BF16, kv_elems, g_seed++, -1, 1);
        } else {
            size_t ns = (size_t)Bmax * s->H * s->P * s->N;
            if (g_state_bf16) r->ssm[l] = wrange(ns, -0.5f, 0.5f);
            else r->ssm[l] = frange(ns, -0.5f, 0.5f);
            r->cx[l] = frange((size_t)Bmax * s->d_inner * (s->K - 1), -1, 1);
            r->cB[l] = frange((size_t)Bmax * conv_bc * (s->K - 1), -1, 1);
            r->cC[l] = frange((size_t)Bmax * conv_bc * (s->K - 1), -1, 1);
        }
    }
    size_t B = (size_t)Bmax;
    r->h = dalloc(B * s->D * 2, "act");
    r->xn = dalloc(B * s->D * 2, "act");
    r->q = dalloc(B * s->Hq * s->hd * 2, "act");
    r->k = dalloc(B * s->Hkv * s->hd * 2, "act");
    r->v = dalloc(B * s->Hkv * s->hd * 2, "act");
    r->ao = dalloc(B * s->Hq * s->hd * 2, "act");
    r->z = dalloc(B * s->d_inner * 2, "act");
    r->x = dalloc(B * s->d_inner * 2, "act");
    r->Bm = dalloc(B * conv_bc * 2, "act");
    r->Cm = dalloc(B * conv_bc * 2, "act");
    r->dt = dalloc(B * s->H * 2, "act");
    r->xc = dalloc(B * s->d_inner * 2, "act");
    r->Bc = dalloc(B * conv_bc * 2, "act");
    r->Cc = dalloc(B * conv_bc * 2, "act");
    r->y = dalloc(B * s->d_inner * 2, "act");
    r->g = dalloc(B * s->d_inner * 2, "act");
    r->gu = dalloc(B * 2 * s->F * 2, "act");
    r->act = dalloc(B * s->F * 2, "act");
    r->logits = dalloc(B * s->V * 4, "logits");
    r->ids = dalloc(B * 4, "ids");
    r->out_ids = dalloc(B * 4, "ids");
    r->pos = dalloc(B * 4, "pos");
    r->slotmap = dalloc(B * 4, "slot mapping");
    r->bt = dalloc(B * (size_t)max_pages * 4, "block table");
    r->cu = dalloc((B + 1) * 4, "cu_seqlens");
    r->slots = dalloc(B * 4, "slots");
    r->params = dalloc(B * sizeof(op_sample_params), "sample params");
    B_->sync(B_);
}

static void runbuf_free(runbuf *r, const model *m) {
    for (int l = 0; l < m->s.L; l++) {
        if (r->kc[l]) B_->free(B_, r->kc[l]);
        if (r->vc[l]) B_->free(B_, r->vc[l]);
        if (r->ssm[l]) B_->free(B_, r->ssm[l]);
        if (r->cx[l]) B_->free(B_, r->cx[l]);
        if (r->cB[l]) B_->free(B_, r->cB[l]);
        if (r->cC[l]) B_->free(B_, r->cC[l]);
    }
    free(r->kc); free(r->vc); free(r->ssm); free(r->cx); free(r->cB); free(r->cC);
    void *ps[] = {r->h, r->xn, r->q, r->k, r->v, r->ao, r->z, r->x, r->Bm, r->Cm, r->dt, r->xc, r->Bc, r->Cc, r->y,
                  r->g, r->gu, r->act, r->logits, r->ids, r->out_ids, r->pos, r->slotmap, r->bt, r->cu, r->slots,
                  r->params};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) B_->free(B_, ps[i]);
    memset(r, 0, sizeof *r);
}

/* Inputs of a decode step for B sequences at context ctx (the new token at position ctx-1). */
static void step_inputs(runbuf *r, const model *m, int B, int ctx, int greedy) {
    const shape *s = &m->s;
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)B), *pos = xmalloc(sizeof(int32_t) * (size_t)B);
    int32_t *sm = xmalloc(sizeof(int32_t) * (size_t)B), *cu = xmalloc(sizeof(int32_t) * (size_t)(B + 1));
    int32_t *sl = xmalloc(sizeof(int32_t) * (size_t)B);
    int32_t *bt = xmalloc(sizeof(int32_t) * (size_t)B * r->max_pages);
    op_sample_params *pp = xmalloc(sizeof(op_sample_params) * (size_t)B);
    for (int b = 0; b < B; b++) {
        ids[b] = (int32_t)((b * 7919 + 13) % s->V);
        pos[b] = ctx - 1;
        for (int p = 0; p < r->max_pages; p++) bt[(size_t)b * r->max_pages + p] = b * r->max_pages + p;
        sm[b] = bt[(size_t)b * r->max_pages + pos[b] / s->page] * s->page + pos[b] % s->page;
        cu[b] = b;
        sl[b] = b;
        op_sample_params q = {.temperature = greedy ? 0.f : 1.f, .top_p = 1.f, .top_k = 0, .min_p = 0.f,
                              .seed = 42, .problem = (uint32_t)b, .sample = 0, .step = (uint32_t)ctx};
        pp[b] = q;
    }
    cu[B] = B;
    B_->upload(B_, r->ids, ids, sizeof(int32_t) * (size_t)B);
    B_->upload(B_, r->pos, pos, sizeof(int32_t) * (size_t)B);
    B_->upload(B_, r->slotmap, sm, sizeof(int32_t) * (size_t)B);
    B_->upload(B_, r->cu, cu, sizeof(int32_t) * (size_t)(B + 1));
    B_->upload(B_, r->slots, sl, sizeof(int32_t) * (size_t)B);
    B_->upload(B_, r->bt, bt, sizeof(int32_t) * (size_t)B * r->max_pages);
    B_->upload(B_, r->params, pp, sizeof(op_sample_params) * (size_t)B);
    B_->sync(B_);
    free(ids); free(pos); free(sm); free(cu); free(sl); free(bt); free(pp);
}

/* One decode step for B sequences: the per-layer op sequence of the architecture. */
static void decode_step(runbuf *r, const model *m, int B) {
    const shape *s = &m->s;
    op_backend *b = B_;
    int conv_bc = s->G * s->N;
    b->embed(b, r->h, m->emb, r->ids, B, s->D);
    PM(PS_EMBED);
    for (int l = 0; l < s->L; l++) {
        const layer_w *w = &m->lw[l];
        b->rmsnorm(b, r->xn, r->h, w->n1, B, s->D, s->eps);
        PM(PS_NORM);
        if (w->attn) {
            b->matmul(b, r->q, r->xn, w->wq, B, s->D, s->Hq * s->hd, 0);
            b->matmul(b, r->k, r->xn, w->wk, B, s->D, s->Hkv * s->hd, 0);
            b->matmul(b, r->v, r->xn, w->wv, B, s->D, s->Hkv * s->hd, 0);
            PM(PS_MM_QKV);
            b->rope(b, r->q, r->k, r->pos, m->inv_freq, B, s->Hq, s->Hkv, s->hd, s->hd);
            b->kv_write(b, r->kc[l], r->vc[l], r->k, r->v, r->slotmap, B, s->Hkv, s->hd);
            PM(PS_ROPE_KV);
            b->attention(b, r->ao, r->q, r->kc[l], r->vc[l], r->bt, r->max_pages, r->cu, r->pos, B, B, s->Hq, s->Hkv,
                         s->hd, s->page, 1.0f / sqrtf((float)s->hd));
            PM(PS_ATTN);
            b->matmul(b, r->h, r->ao, w->wo, B, s->Hq * s->hd, s->D, 1);
            PM(PS_MM_O);
        } else {
            b->matmul(b, r->z, r->xn, w->wz, B, s->D, s->d_inner, 0);
            b->matmul(b, r->x, r->xn, w->wx, B, s->D, s->d_inner, 0);
            b->matmul(b, r->Bm, r->xn, w->wB, B, s->D, conv_bc, 0);
            b->matmul(b, r->Cm, r->xn, w->wC, B, s->D, conv_bc, 0);
            b->matmul(b, r->dt, r->xn, w->wdt, B, s->D, s->H, 0);
            PM(PS_MM_IN);
            b->conv1d(b, r->xc, r->x, w->cwx, w->cbx, r->cx[l], r->cu, r->slots, B, B, s->d_inner, s->K);
            b->conv1d(b, r->Bc, r->Bm, w->cwB, w->cbB, r->cB[l], r->cu, r->slots, B, B, conv_bc, s->K);
            b->conv1d(b, r->Cc, r->Cm, w->cwC, w->cbC, r->cC[l], r->cu, r->slots, B, B, conv_bc, s->K);
            PM(PS_CONV);
            if (g_state_bf16)
                op_cuda_ssd_scan_bf16state(b, r->y, r->xc, r->dt, w->A_log, r->Bc, r->Cc, w->Dp, w->dtb, r->ssm[l], r->cu,
                                           r->slots, B, B, s->H, s->P, s->G, s->N, 0.0f, INFINITY);
            else
                b->ssd_scan(b, r->y, r->xc, r->dt, w->A_log, r->Bc, r->Cc, w->Dp, w->dtb, r->ssm[l], r->cu, r->slots, B,
                            B, s->H, s->P, s->G, s->N, 128, 0.0f, INFINITY);
            PM(PS_SSD);
            b->gated_rmsnorm(b, r->g, r->y, r->z, w->gn, B, s->d_inner, s->d_inner, s->eps); /* HF: whole d_inner */
            PM(PS_GNORM);
            b->matmul(b, r->h, r->g, w->wout, B, s->d_inner, s->D, 1);
            PM(PS_MM_OUT);
        }
        b->rmsnorm(b, r->xn, r->h, w->n2, B, s->D, s->eps);
        PM(PS_NORM);
        b->matmul(b, r->gu, r->xn, w->wgu, B, s->D, 2 * s->F, 0);
        PM(PS_MM_GU);
        b->swiglu(b, r->act, r->gu, B, s->F);
        PM(PS_SWIGLU);
        b->matmul(b, r->h, r->act, w->wdown, B, s->F, s->D, 1);
        PM(PS_MM_DOWN);
    }
    b->rmsnorm(b, r->xn, r->h, m->nf, B, s->D, s->eps);
    PM(PS_NORM);
    b->matmul_f32out(b, r->logits, r->xn, m->emb, B, s->D, s->V);
    PM(PS_LMHEAD);
    op_cuda_sample_async(b, r->out_ids, r->logits, B, s->V, r->params);
    PM(PS_SAMPLE);
}

/* Bytes and FLOPs one decode step must move / do (each input read once, each output written
 * once; small activations ignored). */
static void step_cost(const model *m, int B, int ctx, double *bytes, double *flops) {
    const shape *s = &m->s;
    double kv_tok = (double)m->n_attn * 2.0 * s->Hkv * s->hd * 2; /* K+V bytes per token, all layers */
    double state = (double)m->n_mamba * ((double)s->H * s->P * s->N * st_elem() + (double)(s->d_inner + 2 * s->G * s->N) * (s->K - 1) * 4);
    *bytes = m->weight_bytes + (double)B * ((double)ctx * kv_tok + 2.0 * state + (double)s->V * 4 * 2);
    double attn = (double)m->n_attn * 4.0 * s->Hq * s->hd * ctx; /* QK^T and PV */
    double ssd = (double)m->n_mamba * 6.0 * s->H * s->P * s->N;
    *flops = (double)B * (2.0 * m->matmul_params + attn + ssd);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct point {
    char arch[16];
    int gen, prompt, ctx, batch, max_batch, is_max;
    double step_ms, eager_ms, tok_s, bytes, flops, roof_ms, frac;
    double prof[PS_N]; /* ms per op kind, one eager step */
} point;

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

/* The real engine on the GPU: writes a random-weight HF model of the arch's shape (bf16),
 * loads it onto the backend and runs eng_run over P prompts x S samples of G tokens. */
typedef struct eng_point {
    char arch[16];
    int prompts, samples, gen;
    double prefill_s, decode_s, decode_tok_s, mean_batch, load_s;
    int64_t decode_tokens;
} eng_point;

static int count_emit(void *ud, const eng_result *r) {
    (*(int *)ud)++;
    return 0;
}

static int run_engine(const char *arch, int P, int S, int G, int prompt, int layers, const char *tmp, eng_point *out,
                      char *err, size_t errlen) {
    model_random_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.vocab = 128256; sp.hidden = 2048; sp.layers = layers; sp.intermediate = 8192;
    sp.heads = 32; sp.kv_heads = 8; sp.head_dim = 64; sp.tie = 1;
    sp.m_heads = 32; sp.m_head_dim = 64; sp.m_groups = 32; sp.m_d_state = 64; sp.m_d_conv = 4; sp.m_expand = 1;
    sp.m_chunk = 128; sp.dtype = OP_BF16; sp.seed = 7;
    if (strcmp(arch, "teacher") == 0) sp.arch = MODEL_LLAMA;
    else {
        sp.arch = MODEL_BAMBA;
        for (int l = 0; l < layers && l < 16; l++)
            if (is_attn_layer(arch, l)) sp.attn_layers[sp.n_attn_layers++] = l;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/thinkfast_bench_%s", tmp, arch);
    int64_t t0 = util_now_ns();
    if (model_write_random(dir, &sp, err, errlen)) return -1;
    model *m = NULL;
    if (model_load(dir, B_, &m, err, errlen)) return -1;
    double load_s = (util_now_ns() - t0) / 1e9;
    engine *e = NULL;
    eng_config ec = {P * S, 256, 16, P, 0};
    if (eng_new(m, NULL, &ec, &e, err, errlen)) { model_destroy(&m); return -1; }
    eng_set_graphs(e, 0);   /* this mode measures the eager path; bin/bench_engine_gpu the graphs */
    int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)P * prompt);
    eng_request *rq = xcalloc((size_t)P, sizeof *rq);
    for (int p = 0; p < P; p++) {
        for (int i = 0; i < prompt; i++) ids[(size_t)p * prompt + i] = 3 + (int32_t)((p * 7919u + i * 104729u) % 128000u);
        ids[(size_t)p * prompt] = 1;
        rq[p].prompt = ids + (size_t)p * prompt;
        rq[p].n_prompt = prompt;
        rq[p].n_samples = S;
        rq[p].problem = (uint32_t)p;
        rq[p].temperature = 1.0f;
        rq[p].top_p = 1.0f;
        rq[p].seed = 11;
        rq[p].max_tokens = G;
    }
    int n_done = 0;
    int rc = eng_run(e, rq, P, count_emit, &n_done, err, errlen);
    eng_stats st;
    eng_get_stats(e, &st);
    eng_destroy(&e);
    model_destroy(&m);
    free(ids);
    free(rq);
    if (rc) return -1;
    snprintf(out->arch, sizeof out->arch, "%s", arch);
    out->prompts = P; out->samples = S; out->gen = G;
    out->prefill_s = st.prefill_s; out->decode_s = st.decode_s;
    out->decode_tokens = st.decode_tokens;
    out->decode_tok_s = st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0;
    out->mean_batch = st.mean_batch;
    out->load_s = load_s;
    return 0;
}

int main(int argc, char **argv) {
    const char *archs_s = "teacher,student,hybrid50,hybrid25", *out_path = NULL;
    int gens[16] = {1024, 4096, 8192}, n_gens = 3;
    int batches[32] = {1, 8, 32, 64, 128, 256, 512}, n_batches = 7;
    int prompt = 256, add_max = 1, max_cap = 8192, layers = 16, page = 64, device = 0, greedy = 0;
    double reserve_gib = 3.0, target_ms = 150.0;
    int eng_p = 0, eng_s = 0, eng_g = 0;
    const char *tmp = "/tmp";
    const char *backend_name = NULL; /* --backend NAME (engine mode only; e.g. cpu to check the runner) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (strcmp(a, "--no-max") == 0) add_max = 0;
        else if (!v) { fprintf(stderr, "bench_gpu: %s needs a value (--help)\n", a); return 2; }
        else if (strcmp(a, "--arch") == 0) { archs_s = v; i++; }
        else if (strcmp(a, "--gen") == 0) { n_gens = parse_list(v, gens, 16); i++; if (n_gens <= 0) { fprintf(stderr, "bench_gpu: --gen: bad list \"%s\"\n", v); return 2; } }
        else if (strcmp(a, "--batch") == 0) { n_batches = parse_list(v, batches, 32); i++; if (n_batches <= 0) { fprintf(stderr, "bench_gpu: --batch: bad list \"%s\"\n", v); return 2; } }
        else if (strcmp(a, "--prompt") == 0) { prompt = atoi(v); i++; }
        else if (strcmp(a, "--max-cap") == 0) { max_cap = atoi(v); i++; }
        else if (strcmp(a, "--layers") == 0) { layers = atoi(v); i++; }
        else if (strcmp(a, "--page") == 0) { page = atoi(v); i++; }
        else if (strcmp(a, "--reserve-gib") == 0) { reserve_gib = atof(v); i++; }
        else if (strcmp(a, "--target-ms") == 0) { target_ms = atof(v); i++; }
        else if (strcmp(a, "--out") == 0) { out_path = v; i++; }
        else if (strcmp(a, "--device") == 0) { device = atoi(v); i++; }
        else if (strcmp(a, "--tmp") == 0) { tmp = v; i++; }
        else if (strcmp(a, "--backend") == 0) { backend_name = v; i++; }
        else if (strcmp(a, "--engine") == 0) {
            if (sscanf(v, "%d,%d,%d", &eng_p, &eng_s, &eng_g) != 3 || eng_p <= 0 || eng_s <= 0 || eng_g <= 0) {
                fprintf(stderr, "bench_gpu: --engine: expected P,S,G (positive), got \"%s\"\n", v);
                return 2;
            }
            i++;
        }
        else if (strcmp(a, "--state") == 0) {
            if (strcmp(v, "bf16") == 0) g_state_bf16 = 1;
            else if (strcmp(v, "fp32") == 0) g_state_bf16 = 0;
            else { fprintf(stderr, "bench_gpu: --state: expected fp32|bf16, got \"%s\"\n", v); return 2; }
            i++;
        }
        else if (strcmp(a, "--sampling") == 0) {
            if (strcmp(v, "greedy") == 0) greedy = 1;
            else if (strcmp(v, "temp") == 0) greedy = 0;
            else { fprintf(stderr, "bench_gpu: --sampling: expected greedy|temp, got \"%s\"\n", v); return 2; }
            i++;
        } else { fprintf(stderr, "bench_gpu: unknown option %s (--help)\n", a); return 2; }
    }
    if (prompt <= 0 || layers <= 0 || page <= 0 || max_cap <= 0) {
        fprintf(stderr, "bench_gpu: --prompt, --layers, --page and --max-cap must be positive\n");
        return 2;
    }
    char err[512];
    if (backend_name && eng_p <= 0) { fprintf(stderr, "bench_gpu: --backend is for --engine runs only\n"); return 2; }
    B_ = backend_name ? op_backend_new(backend_name, err, sizeof err) : op_cuda_new(device, err, sizeof err);
    if (!B_) { fprintf(stderr, "bench_gpu: %s\n", err); return 1; }
    char desc[256];
    if (backend_name) snprintf(desc, sizeof desc, "%s", B_->name);
    else op_cuda_describe(B_, desc, sizeof desc);
    printf("bench_gpu: %s; prompt %d, page %d, sampling %s, SSM state %s, mode op-level decode step (CUDA graph per "
           "batch)\n", desc, prompt, page, greedy ? "greedy" : "temperature 1", g_state_bf16 ? "bf16" : "fp32");
    fflush(stdout);

    if (eng_p > 0) { /* the real engine instead of the op-level step */
        char archs2[128];
        snprintf(archs2, sizeof archs2, "%s", archs_s);
        FILE *f = out_path ? fopen(out_path, "w") : NULL;
        if (f) fprintf(f, "{\"benchmark\":\"gpu_engine\",\"mode\":\"engine (eng_run, eager ops, CUDA graphs off)\",\"device\":\"%s\",\"prompt\":%d,\"points\":[", desc, prompt);
        int first = 1;
        for (char *save = NULL, *arch = strtok_r(archs2, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
            eng_point ep;
            if (run_engine(arch, eng_p, eng_s, eng_g, prompt, layers, tmp, &ep, err, sizeof err)) {
                fprintf(stderr, "bench_gpu: engine %s: %s\n", arch, err);
                return 1;
            }
            printf("  engine %-9s %d prompts x %d samples x %d tokens: decode %.0f tok/s (mean batch %.1f, %lld tokens in "
                   "%.2f s), prefill %.2f s, model write+load %.1f s\n",
                   arch, ep.prompts, ep.samples, ep.gen, ep.decode_tok_s, ep.mean_batch, (long long)ep.decode_tokens,
                   ep.decode_s, ep.prefill_s, ep.load_s);
            fflush(stdout);
            if (f)
                fprintf(f, "%s{\"arch\":\"%s\",\"prompts\":%d,\"samples\":%d,\"gen\":%d,\"decode_tokens_per_s\":%.1f,"
                           "\"mean_batch\":%.2f,\"decode_tokens\":%lld,\"decode_s\":%.4f,\"prefill_s\":%.4f}",
                        first ? "" : ",", ep.arch, ep.prompts, ep.samples, ep.gen, ep.decode_tok_s, ep.mean_batch,
                        (long long)ep.decode_tokens, ep.decode_s, ep.prefill_s);
            first = 0;
        }
        if (f) { fprintf(f, "]}\n"); fclose(f); printf("wrote %s\n", out_path); }
        B_->destroy(&B_);
        return 0;
    }

    shape s = {.V = 128256, .D = 2048, .L = layers, .F = 8192, .Hq = 32, .Hkv = 8, .hd = 64, .H = 32, .P = 64,
               .N = 64, .G = 32, .K = 4, .d_inner = 2048, .page = page, .eps = 1e-5f};
    point *pts = xcalloc(4096, sizeof(point));
    int n_pts = 0;
    char archs[128];
    snprintf(archs, sizeof archs, "%s", archs_s);
    for (char *save = NULL, *arch = strtok_r(archs, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        if (strcmp(arch, "teacher") && strcmp(arch, "student") && strcmp(arch, "hybrid50") && strcmp(arch, "hybrid25")) {
            fprintf(stderr, "bench_gpu: unknown arch \"%s\"\n", arch);
            return 2;
        }
        model m;
        model_build(&m, arch, s);
        printf("\n%s: %d attention + %d mamba layers, %.3f B matmul params (%.2f GiB bf16)\n", arch, m.n_attn,
               m.n_mamba, m.matmul_params / 1e9, m.weight_bytes / 1073741824.0);
        for (int gi = 0; gi < n_gens; gi++) {
            int gen = gens[gi], max_len = prompt + gen, ctx = prompt + gen / 2;
            int max_pages = (max_len + page - 1) / page;
            op_cuda_plan_req req = {.free_bytes = B_->mem_free(B_), .reserve_bytes = (size_t)(reserve_gib * 1073741824.0),
                                    .page_bytes = (size_t)page * s.Hkv * s.hd * 2 * 2 * m.n_attn, .page_size = page,
                                    .state_bytes = (size_t)m.n_mamba * ((size_t)s.H * s.P * s.N * st_elem() + (size_t)(s.d_inner + 2 * s.G * s.N) * (s.K - 1) * 4),
                                    .act_bytes = act_bytes_per_seq(&s) + (size_t)max_pages * 4, .max_len = max_len,
                                    .prompt_len = prompt, .samples_per_prompt = 1, .batch_cap = max_cap};
            op_cuda_plan plan;
            if (op_cuda_plan_memory(&req, &plan, err, sizeof err) != 0) {
                printf("  gen %d: %s\n", gen, err);
                continue;
            }
            int Bmax = plan.max_batch;
            int list[40], nl = 0;
            for (int i = 0; i < n_batches; i++)
                if (batches[i] <= Bmax) list[nl++] = batches[i];
            if (add_max && (nl == 0 || list[nl - 1] != Bmax)) list[nl++] = Bmax;
            int Balloc = 0;
            for (int i = 0; i < nl; i++) if (list[i] > Balloc) Balloc = list[i];
            runbuf r;
            runbuf_alloc(&r, &m, Balloc, max_pages);
            printf("  gen %d (ctx %d, KV+state for %d tokens): largest batch that fits %d (%.1f MiB/seq)\n", gen, ctx,
                   max_len, Bmax, plan.per_seq_bytes / 1048576.0);
            printf("  %-9s %6s %9s %9s %11s %9s %9s %7s\n", "arch", "batch", "step_ms", "eager_ms", "tok/s", "GB/step",
                   "roof_ms", "roof%");
            fflush(stdout);
            for (int bi = 0; bi < nl; bi++) {
                int B = list[bi];
                step_inputs(&r, &m, B, ctx, greedy);
                /* eager: warm-up (plans, scratch), then one timed step */
                decode_step(&r, &m, B);
                B_->sync(B_);
                op_cuda_timer_begin(B_);
                decode_step(&r, &m, B);
                double eager = op_cuda_timer_end(B_);
                if (op_cuda_graph_begin(B_, err, sizeof err) != 0) { fprintf(stderr, "bench_gpu: %s\n", err); return 1; }
                decode_step(&r, &m, B);
                op_cuda_graph *g = op_cuda_graph_end(B_, err, sizeof err);
                if (!g) { fprintf(stderr, "bench_gpu: %s\n", err); return 1; }
                (void)op_cuda_graph_time_ms(B_, g, 2); /* warm-up */
                double one = op_cuda_graph_time_ms(B_, g, 1);
                int iters = (int)(target_ms / (one > 0.01 ? one : 0.01));
                if (iters < 3) iters = 3;
                if (iters > 200) iters = 200;
                double t[3];
                for (int k = 0; k < 3; k++) t[k] = op_cuda_graph_time_ms(B_, g, iters) / iters;
                qsort(t, 3, sizeof t[0], cmp_d);
                op_cuda_graph_destroy(&g);
                point *p = &pts[n_pts++];
                memset(p->prof, 0, sizeof p->prof);
                g_prof = 1;
                op_cuda_prof_begin(B_);
                decode_step(&r, &m, B);
                op_cuda_prof_end(B_, p->prof, PS_N);
                g_prof = 0;
                snprintf(p->arch, sizeof p->arch, "%s", arch);
                p->gen = gen;
                p->prompt = prompt;
                p->ctx = ctx;
                p->batch = B;
                p->max_batch = Bmax;
                p->is_max = (B == Bmax);
                p->step_ms = t[1];
                p->eager_ms = eager;
                p->tok_s = B / (t[1] / 1000.0);
                step_cost(&m, B, ctx, &p->bytes, &p->flops);
                double tb = p->bytes / ROOF_BW, tf = p->flops / ROOF_FLOPS;
                p->roof_ms = 1000.0 * (tb > tf ? tb : tf);
                p->frac = p->roof_ms / p->step_ms;
                printf("  %-9s %6d %9.3f %9.3f %11.0f %9.2f %9.3f %6.1f%%%s\n", arch, B, p->step_ms, eager, p->tok_s,
                       p->bytes / 1e9, p->roof_ms, 100 * p->frac, p->is_max ? "  (max)" : "");
                double tot = 0;
                for (int k = 0; k < PS_N; k++) tot += p->prof[k];
                printf("            profile (eager, %.3f ms):", tot);
                for (int k = 0; k < PS_N; k++)
                    if (p->prof[k] > 0.005 * tot) printf(" %s %.0f%%", ps_names[k], 100 * p->prof[k] / tot);
                printf("\n");
                fflush(stdout);
            }
            runbuf_free(&r, &m);
        }
        model_free(&m);
    }

    /* Student/teacher ratios per generation length: equal batch, and equal memory (largest batch each). */
    printf("\nstudent/teacher throughput ratios\n");
    util_buf ratios;
    util_buf_init(&ratios);
    const char *studs[3] = {"student", "hybrid50", "hybrid25"};
    int first_ratio = 1;
    for (int gi = 0; gi < n_gens; gi++) {
        for (int si = 0; si < 3; si++) {
            const point *tmax = NULL, *smax = NULL;
            for (int i = 0; i < n_pts; i++) {
                if (pts[i].gen != gens[gi] || !pts[i].is_max) continue;
                if (strcmp(pts[i].arch, "teacher") == 0) tmax = &pts[i];
                if (strcmp(pts[i].arch, studs[si]) == 0) smax = &pts[i];
            }
            /* equal batch: the largest batch both ran */
            const point *te = NULL, *se = NULL;
            for (int i = 0; i < n_pts; i++) {
                if (pts[i].gen != gens[gi] || strcmp(pts[i].arch, studs[si])) continue;
                for (int j = 0; j < n_pts; j++)
                    if (pts[j].gen == gens[gi] && strcmp(pts[j].arch, "teacher") == 0 && pts[j].batch == pts[i].batch &&
                        (!se || pts[i].batch > se->batch)) { se = &pts[i]; te = &pts[j]; }
            }
            if (!tmax || !smax) continue;
            double r_mem = smax->tok_s / tmax->tok_s, r_eq = (se && te) ? se->tok_s / te->tok_s : 0.0;
            printf("  gen %5d %-9s equal memory (B %d vs %d): %.2fx   equal batch (B %d): %.2fx\n", gens[gi], studs[si],
                   smax->batch, tmax->batch, r_mem, se ? se->batch : 0, r_eq);
            util_buf_printf(&ratios,
                            "%s{\"gen\":%d,\"student\":\"%s\",\"equal_memory\":{\"student_batch\":%d,\"teacher_batch\":%d,"
                            "\"ratio\":%.4f},\"equal_batch\":{\"batch\":%d,\"ratio\":%.4f}}",
                            first_ratio ? "" : ",", gens[gi], studs[si], smax->batch, tmax->batch, r_mem, se ? se->batch : 0,
                            r_eq);
            first_ratio = 0;
        }
    }
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (!f) { fprintf(stderr, "bench_gpu: %s: cannot write\n", out_path); return 1; }
        fprintf(f, "{\"benchmark\":\"gpu_decode\",\"mode\":\"op-level decode step\",\"device\":\"%s\",", desc);
        fprintf(f, "\"note\":\"each architecture's decode step built directly from the CUDA op table (not the engine), "
                   "captured in a CUDA graph per batch, timed with CUDA events (median of 3 repetitions); step time at "
                   "context prompt+gen/2 equals the mean over the generation (attention is linear in the context); KV pages "
                   "and state allocated for prompt+gen tokens; sampling %s included in the step\",",
                greedy ? "greedy" : "temperature-1 (no top-k/top-p)");
        fprintf(f, "\"roofline\":{\"bytes_per_s\":%.3g,\"flops_per_s\":%.3g},\"prompt\":%d,\"page_size\":%d,", ROOF_BW,
                ROOF_FLOPS, prompt, page);
        fprintf(f, "\"ssm_state_dtype\":\"%s\",\"sampling\":\"%s\",", g_state_bf16 ? "bf16" : "fp32",
                greedy ? "greedy" : "temperature 1");
        fprintf(f, "\"shapes\":{\"vocab\":%d,\"hidden\":%d,\"layers\":%d,\"mlp\":%d,\"heads\":%d,\"kv_heads\":%d,"
                   "\"head_dim\":%d,\"mamba_heads\":%d,\"mamba_head_dim\":%d,\"d_state\":%d,\"mamba_groups\":%d,\"conv\":%d},",
                s.V, s.D, s.L, s.F, s.Hq, s.Hkv, s.hd, s.H, s.P, s.N, s.G, s.K);
        fprintf(f, "\"points\":[");
        for (int i = 0; i < n_pts; i++) {
            const point *p = &pts[i];
            fprintf(f,
                    "%s{\"arch\":\"%s\",\"gen\":%d,\"prompt\":%d,\"ctx\":%d,\"batch\":%d,\"max_batch\":%d,\"is_max\":%s,"
                    "\"step_ms\":%.4f,\"eager_step_ms\":%.4f,\"tokens_per_s\":%.1f,\"bytes_per_step\":%.4g,"
                    "\"flops_per_step\":%.4g,\"roofline_ms\":%.4f,\"roofline_fraction\":%.4f,\"profile_ms\":{",
                    i ? "," : "", p->arch, p->gen, p->prompt, p->ctx, p->batch, p->max_batch, p->is_max ? "true" : "false",
                    p->step_ms, p->eager_ms, p->tok_s, p->bytes, p->flops, p->roof_ms, p->frac);
            for (int k = 0, first = 1; k < PS_N; k++)
                if (p->prof[k] > 0) { fprintf(f, "%s\"%s\":%.4f", first ? "" : ",", ps_names[k], p->prof[k]); first = 0; }
            fprintf(f, "}}");
        }
        fprintf(f, "],\"ratios\":[%s]}\n", ratios.data ? ratios.data : "");
        fclose(f);
        printf("wrote %s\n", out_path);
    }
    util_buf_free(&ratios);
    free(pts);
    B_->destroy(&B_);
    return 0;
}
#endif
