/* tools/bench_gpu_main.c — bin/bench_gpu: decode (and optionally prefill) throughput of
 * random-weight models of real shapes on the CUDA backend ("make bench-gpu" runs it through
 * tools/bench/run-gpu.sh).
 *
 * Mode "op-level decode step": the benchmark builds each architecture's decode step directly
 * from the op table, issuing the same per-layer op sequence as workers/model/model.c:
 *   every layer     rmsnorm(in_norm)
 *   attention       matmul q|k|v (one fused [qd + 2 kd, D] weight) -> qkv_rope_write (rotary on
 *                   q and k, q out, k/v into the paged cache) -> attention -> matmul o (+= residual)
 *   Mamba-2         matmul in_proj (one fused [d_in_proj, D] weight: z|x|B|C|dt columns) ->
 *                   conv1d over the x|B|C columns (strided view, one conv state of conv_dim
 *                   channels per layer) -> ssd_scan (x, B, C column blocks of the conv output,
 *                   dt a column block of the in_proj output; in a decode step both are one
 *                   fused op, conv_ssd_decode, unless THINKFAST_CONV_SSD=0) -> gated_rmsnorm (z = in_proj
 *                   columns 0..d_inner) -> matmul out_proj (+= residual)
 *   MLP             rmsnorm(ff_norm) -> matmul gate|up -> swiglu -> matmul down (+= residual)
 *   then the final rmsnorm, the tied LM head (fp32 logits) and GPU sampling.
 * It captures the step in a CUDA graph per batch size and times graph replays with CUDA
 * events. Throughput does not depend on the weight values; the generation length is fixed
 * (EOS is never consulted). Attention cost grows linearly with the context, everything else is
 * constant per step, so the mean step time over a generation of G tokens after a P-token prompt
 * equals the step time at context P + G/2: each (gen, batch) point is timed at that context,
 * with KV pages and state slots allocated for the full P + G tokens of every sequence (so
 * "fits" is real).
 *
 * Prefill (--prefill LIST): for each prompt length, one eager forward (not graph-captured) of
 * --prefill-batch whole prompts through the same op sequence with T = batch * len tokens and
 * cu_seqlens of batch sequences (positions 0..len-1, K/V written through slot_mapping into
 * fresh pages; attention takes its prefill path over the paged cache; the conv and the scan
 * walk each sequence's tokens from cleared state), then the last row of each sequence is
 * gathered for the final norm, LM head and sampling, as model_forward does. Timed with CUDA
 * events (median of 3, after a warm-up); reported as prompt tokens/s and the fraction of the
 * compute roofline.
 *
 * Models (shapes from the issue): teacher = Llama-3.2-1B (vocab 128256, hidden 2048, 16 layers,
 * 32 heads, 8 KV heads, head_dim 64, MLP 8192, tied); student = Llamba-1B shape (Mamba-2 with
 * 32 heads, head_dim 64, d_state 64, expand 1, B/C per head, conv 4); hybrids keep attention in
 * 50% (every other layer) and 25% (every 4th layer) of the layers.
 *
 * Output: a table on stdout and JSON (--out) with, per decode point, step time, generated
 * tokens/s, bytes and FLOPs per step, the roofline time (3.0 TB/s, 800 TFLOP/s), its fraction,
 * and the student/teacher throughput ratios at equal batch and at equal memory (each at its
 * largest batch that fits); per prefill point ("prefill" array), the step time, prompt
 * tokens/s, FLOPs and the compute-roofline fraction.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/util.h"
#include "kernels/ops.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#define ROOF_BW 3.0e12     /* bytes/s, measured device-to-device copy on the H100 here */
#define ROOF_FLOPS 800e12  /* bf16 dense, measured 8192^3 GEMM */
#define PREFILL_MAX_TOKENS (1 << 24) /* batch * len cap for --prefill (int32 token indices) */

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
           "  --prefill LIST   also time one eager prefill forward per prompt length in LIST (e.g.\n"
           "                   256,1024): --prefill-batch whole prompts in one step (default: none)\n"
           "  --prefill-batch N  sequences per prefill step (default 8)\n"
           "  --prefill-only   skip the decode points (with --prefill)\n"
           "  --device N       CUDA device (default 0)\n"
           "(the real engine, with or without graphs: bin/bench_engine_gpu)\n");
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

/* Derived widths of the fused projections (see the header comment). */
typedef struct dims {
    int qd, kd, qkv;            /* Hq*hd, Hkv*hd, qd + 2 kd (q|k|v row) */
    int di, gn, conv_dim, d_in; /* d_inner, G*N, di + 2 gn (x|B|C), 2 di + 2 gn + H (z|x|B|C|dt) */
} dims;

static dims dims_of(const shape *s) {
    dims d;
    d.qd = s->Hq * s->hd;
    d.kd = s->Hkv * s->hd;
    d.qkv = d.qd + 2 * d.kd;
    d.di = s->d_inner;
    d.gn = s->G * s->N;
    d.conv_dim = d.di + 2 * d.gn;
    d.d_in = d.di + d.conv_dim + s->H;
    return d;
}

typedef struct layer_w {
    int attn;
    void *n1, *n2, *wgu, *wdown;  /* norms [D]; gate|up [2F, D]; down [D, F] */
    void *wqkv, *wo;              /* attention: q|k|v [qkv, D]; o [D, qd] */
    void *win, *wout, *gn;        /* mamba: in_proj z|x|B|C|dt [d_in, D]; out_proj [D, di]; gated norm [di] */
    void *cw, *cb;                /* conv1d over x|B|C: weight [conv_dim, K], bias [conv_dim] */
    float *A_log, *Dp, *dtb;      /* [H] fp32 */
} layer_w;

typedef struct bench_model {
    const char *arch;
    shape s;
    int n_attn, n_mamba;
    layer_w *lw;
    void *emb, *nf;
    float *inv_freq;
    double matmul_params; /* weights read by matmuls per step (incl. the tied LM head) */
    double weight_bytes;
} bench_model;

/* Device buffers of one step. Token rows (Tmax) for the activations and the per-token index
 * arrays; sequence rows (Bmax) for the state slots, block tables, last rows, logits, sampling.
 * Decode uses Tmax = Bmax. */
typedef struct runbuf {
    int Bmax, Tmax, max_pages, n_pages;
    void **kc, **vc;                  /* per attention layer [n_pages, page, Hkv, hd] */
    void **ssm;                       /* per mamba layer [Bmax, H, P, N], fp32 or bf16 */
    float **conv;                     /* per mamba layer [Bmax, conv_dim, K-1] */
    void *h, *xn, *qkv, *q, *att, *zxbcdt, *xbc, *y, *g, *gu, *act; /* [Tmax, width] */
    void *last;                       /* [Bmax, D] last row of each sequence (prefill) */
    float *logits;                    /* [Bmax, V] */
    int32_t *ids, *pos, *slotmap;     /* [Tmax] */
    int32_t *bt, *cu, *slots, *last_idx, *out_ids;
    op_sample_params *params;
} runbuf;

static op_backend *B_;
static uint64_t g_seed = 1;
static int g_prof; /* mark op boundaries for the per-op profile (eager runs only) */
static int g_state_bf16; /* --state bf16: SSM state stored in bf16 (op_cuda_conv_ssd_decode_bf16state, op_cuda_ssd_scan_bf16state) */
static size_t st_elem(void) { return g_state_bf16 ? 2 : 4; }

enum { PS_EMBED, PS_NORM, PS_MM_QKV, PS_QKV_ROPE, PS_ATTN, PS_MM_O, PS_MM_IN, PS_CONV, PS_SSD, PS_GNORM, PS_MM_OUT,
       PS_MM_GU, PS_SWIGLU, PS_MM_DOWN, PS_GATHER, PS_LMHEAD, PS_SAMPLE, PS_N };
static const char *ps_names[PS_N] = {"embed", "rmsnorm", "mm_qkv", "qkv_rope_write", "attention", "mm_o",
                                     "mm_in_proj", "conv1d", "ssd_scan", "gated_norm", "mm_out_proj", "mm_gate_up",
                                     "swiglu", "mm_down", "gather_last", "lm_head", "sample"};
#define PM(slot) do { if (g_prof) op_cuda_prof_mark(B_, (slot)); } while (0)

static void *dalloc(size_t bytes, const char *what) {
    void *p = B_->alloc(B_, bytes);
    if (!p) {
        fprintf(stderr, "bench_gpu: out of device memory allocating %s (%.2f GiB)\n", what, bytes / 1073741824.0);
        exit(1);
    }
    return p;
}
static void *wrand(size_t n, float a) {
    void *p = dalloc(n * 2, "weights");
    op_cuda_fill_uniform(B_, p, OP_BF16, n, g_seed++, -a, a);
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
/* p + elems elements of the activation dtype (column offsets into fused rows). */
static void *col(void *p, size_t elems) { return (char *)p + elems * B_->act_bytes; }

static int is_attn_layer(const char *arch, int l) {
    if (strcmp(arch, "teacher") == 0) return 1;
    if (strcmp(arch, "student") == 0) return 0;
    if (strcmp(arch, "hybrid50") == 0) return l % 2 == 1;
    if (strcmp(arch, "hybrid25") == 0) return l % 4 == 3;
    return 0;
}

static void model_build(bench_model *m, const char *arch, shape s) {
    memset(m, 0, sizeof *m);
    m->arch = arch;
    m->s = s;
    m->lw = xcalloc((size_t)s.L, sizeof(layer_w));
    dims d = dims_of(&s);
    double mm = 0;
    m->emb = wrand((size_t)s.V * s.D, 0.05f);
    mm += (double)s.V * s.D; /* tied LM head */
    m->nf = wrange(s.D, 0.9f, 1.1f);
    for (int l = 0; l < s.L; l++) {
        layer_w *w = &m->lw[l];
        w->attn = is_attn_layer(arch, l);
        w->n1 = wrange(s.D, 0.9f, 1.1f);
        w->n2 = wrange(s.D, 0.9f, 1.1f);
        float a = 1.0f / sqrtf((float)s.D);
        if (w->attn) {
            m->n_attn++;
            w->wqkv = wrand((size_t)d.qkv * s.D, a);
            w->wo = wrand((size_t)s.D * d.qd, a);
            mm += (double)d.qkv * s.D + (double)s.D * d.qd;
        } else {
            m->n_mamba++;
            w->win = wrand((size_t)d.d_in * s.D, a);
            w->wout = wrand((size_t)s.D * d.di, 1.0f / sqrtf((float)d.di));
            w->gn = wrange(d.di, 0.9f, 1.1f);
            w->cw = wrange((size_t)d.conv_dim * s.K, -0.4f, 0.4f);
            w->cb = wrange(d.conv_dim, -0.1f, 0.1f);
            w->A_log = frange(s.H, 0.0f, 1.5f);
            w->Dp = frange(s.H, 0.5f, 1.0f);
            w->dtb = frange(s.H, -3.0f, -1.0f);
            mm += (double)d.d_in * s.D + (double)s.D * d.di;
        }
        w->wgu = wrand((size_t)2 * s.F * s.D, a);
        w->wdown = wrand((size_t)s.D * s.F, 1.0f / sqrtf((float)s.F));
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

static void model_free(bench_model *m) {
    for (int l = 0; l < m->s.L; l++) {
        layer_w *w = &m->lw[l];
        void *ps[] = {w->n1, w->n2, w->wgu, w->wdown, w->wqkv, w->wo, w->win, w->wout, w->gn, w->cw, w->cb,
                      w->A_log, w->Dp, w->dtb};
        for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
            if (ps[i]) B_->free(B_, ps[i]);
    }
    B_->free(B_, m->emb);
    B_->free(B_, m->nf);
    B_->free(B_, m->inv_freq);
    free(m->lw);
    memset(m, 0, sizeof *m);
}

/* Activation elements of one token row (every [Tmax, width] buffer of runbuf). */
static size_t act_elems_per_token(const shape *s) {
    dims d = dims_of(s);
    return 2 * (size_t)s->D                        /* h, xn */
           + (size_t)d.qkv + 2 * (size_t)d.qd      /* qkv, q, att */
           + (size_t)d.d_in + (size_t)d.conv_dim   /* zxbcdt, xbc */
           + 2 * (size_t)d.di                      /* y, g */
           + 3 * (size_t)s->F;                     /* gu, act */
}

/* Per-sequence activation bytes of one decode step (all buffers of runbuf sized per sequence,
 * Tmax = Bmax): token-row activations, the last-row buffer, logits, 7 int32 index entries
 * (ids, pos, slot mapping, cu_seqlens, slots, last index, sampled id; rounded up to 64 bytes)
 * and the sampling parameters. The block table row is added by the caller. */
static size_t act_bytes_per_seq(const shape *s) {
    return (act_elems_per_token(s) + (size_t)s->D) * 2 + (size_t)s->V * 4 + 64 + sizeof(op_sample_params);
}

/* Device bytes of per-layer state for one sequence: SSM state + the conv state of conv_dim
 * channels, over all Mamba layers. */
static size_t state_bytes_per_seq(const bench_model *m) {
    const shape *s = &m->s;
    dims d = dims_of(s);
    return (size_t)m->n_mamba *
           ((size_t)s->H * s->P * s->N * st_elem() + (size_t)d.conv_dim * (size_t)(s->K - 1) * sizeof(float));
}

/* Everything runbuf_alloc allocates for (Bmax, Tmax, max_pages), in bytes. */
static double runbuf_bytes(const bench_model *m, int Bmax, int Tmax, int max_pages) {
    const shape *s = &m->s;
    double kv = (double)m->n_attn * 2.0 * Bmax * max_pages * s->page * s->Hkv * s->hd * 2;
    double st = (double)Bmax * state_bytes_per_seq(m);
    double tok = (double)Tmax * (act_elems_per_token(s) * 2.0 + 3 * 4);
    double seq = (double)Bmax * ((double)s->D * 2 + (double)s->V * 4 + 4 * 4 + sizeof(op_sample_params) +
                                 (double)max_pages * 4) + 4;
    return kv + st + tok + seq;
}

static void runbuf_alloc(runbuf *r, const bench_model *m, int Bmax, int Tmax, int max_pages) {
    const shape *s = &m->s;
    dims d = dims_of(s);
    memset(r, 0, sizeof *r);
    r->Bmax = Bmax;
    r->Tmax = Tmax;
    r->max_pages = max_pages;
    r->n_pages = Bmax * max_pages;
    size_t kv_elems = (size_t)r->n_pages * s->page * s->Hkv * s->hd;
    r->kc = xcalloc((size_t)s->L, sizeof(void *));
    r->vc = xcalloc((size_t)s->L, sizeof(void *));
    r->ssm = xcalloc((size_t)s->L, sizeof(void *));
    r->conv = xcalloc((size_t)s->L, sizeof(float *));
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
            r->conv[l] = frange((size_t)Bmax * d.conv_dim * (s->K - 1), -1, 1);
        }
    }
    size_t T = (size_t)Tmax, B = (size_t)Bmax;
    r->h = dalloc(T * s->D * 2, "act");
    r->xn = dalloc(T * s->D * 2, "act");
    r->qkv = dalloc(T * d.qkv * 2, "act");
    r->q = dalloc(T * d.qd * 2, "act");
    r->att = dalloc(T * d.qd * 2, "act");
    r->zxbcdt = dalloc(T * d.d_in * 2, "act");
    r->xbc = dalloc(T * d.conv_dim * 2, "act");
    r->y = dalloc(T * d.di * 2, "act");
    r->g = dalloc(T * d.di * 2, "act");
    r->gu = dalloc(T * 2 * s->F * 2, "act");
    r->act = dalloc(T * s->F * 2, "act");
    r->last = dalloc(B * s->D * 2, "act");
    r->logits = dalloc(B * s->V * 4, "logits");
    r->ids = dalloc(T * 4, "ids");
    r->pos = dalloc(T * 4, "pos");
    r->slotmap = dalloc(T * 4, "slot mapping");
    r->out_ids = dalloc(B * 4, "ids");
    r->last_idx = dalloc(B * 4, "last-row index");
    r->bt = dalloc(B * (size_t)max_pages * 4, "block table");
    r->cu = dalloc((B + 1) * 4, "cu_seqlens");
    r->slots = dalloc(B * 4, "slots");
    r->params = dalloc(B * sizeof(op_sample_params), "sample params");
    B_->sync(B_);
}

static void runbuf_free(runbuf *r, const bench_model *m) {
    for (int l = 0; l < m->s.L; l++) {
        if (r->kc[l]) B_->free(B_, r->kc[l]);
        if (r->vc[l]) B_->free(B_, r->vc[l]);
        if (r->ssm[l]) B_->free(B_, r->ssm[l]);
        if (r->conv[l]) B_->free(B_, r->conv[l]);
    }
    free(r->kc); free(r->vc); free(r->ssm); free(r->conv);
    void *ps[] = {r->h, r->xn, r->qkv, r->q, r->att, r->zxbcdt, r->xbc, r->y, r->g, r->gu, r->act, r->last,
                  r->logits, r->ids, r->pos, r->slotmap, r->out_ids, r->last_idx, r->bt, r->cu, r->slots, r->params};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) B_->free(B_, ps[i]);
    memset(r, 0, sizeof *r);
}

/* Zeroes the SSM and conv state of slots 0..n_seq-1 (fresh sequences). */
static void state_clear(runbuf *r, const bench_model *m, int n_seq) {
    const shape *s = &m->s;
    dims d = dims_of(s);
    for (int l = 0; l < s->L; l++) {
        if (m->lw[l].attn) continue;
        B_->memset0(B_, r->ssm[l], (size_t)n_seq * s->H * s->P * s->N * st_elem());
        B_->memset0(B_, r->conv[l], (size_t)n_seq * d.conv_dim * (s->K - 1) * sizeof(float));
    }
}

/* Uploads the inputs of a step of n_seq sequences of len tokens each, the sequence's tokens at
 * positions pos0 .. pos0+len-1 (decode: len 1, pos0 = ctx-1; prefill: pos0 0). Sequence b owns
 * pages b*max_pages .. and state slot b; its last row index goes to last_idx. */
static void step_inputs(runbuf *r, const bench_model *m, int n_seq, int len, int pos0, int greedy) {
    const shape *s = &m->s;
    size_t T = (size_t)n_seq * len;
    CHECK(n_seq >= 1 && n_seq <= r->Bmax && len >= 1 && T <= (size_t)r->Tmax && pos0 >= 0 &&
              (pos0 + len + s->page - 1) / s->page <= r->max_pages,
          "step_inputs: %d x %d tokens at %d do not fit the buffers", n_seq, len, pos0);
    int32_t *ids = xmalloc(sizeof(int32_t) * T), *pos = xmalloc(sizeof(int32_t) * T);
    int32_t *sm = xmalloc(sizeof(int32_t) * T), *cu = xmalloc(sizeof(int32_t) * (size_t)(n_seq + 1));
    int32_t *sl = xmalloc(sizeof(int32_t) * (size_t)n_seq), *last = xmalloc(sizeof(int32_t) * (size_t)n_seq);
    int32_t *bt = xmalloc(sizeof(int32_t) * (size_t)n_seq * r->max_pages);
    op_sample_params *pp = xmalloc(sizeof(op_sample_params) * (size_t)n_seq);
    for (int b = 0; b < n_seq; b++) {
        const int32_t *row = bt + (size_t)b * r->max_pages;
        for (int p = 0; p < r->max_pages; p++) bt[(size_t)b * r->max_pages + p] = b * r->max_pages + p;
        for (int i = 0; i < len; i++) {
            size_t t = (size_t)b * len + i;
            int ps = pos0 + i;
            ids[t] = (int32_t)((t * 7919 + 13) % (size_t)s->V);
            pos[t] = ps;
            sm[t] = row[ps / s->page] * s->page + ps % s->page;
        }
        cu[b] = b * len;
        sl[b] = b;
        last[b] = (b + 1) * len - 1;
        op_sample_params q = {.temperature = greedy ? 0.f : 1.f, .top_p = 1.f, .top_k = 0, .min_p = 0.f,
                              .seed = 42, .problem = (uint32_t)b, .sample = 0, .step = (uint32_t)(pos0 + len)};
        pp[b] = q;
    }
    cu[n_seq] = (int32_t)T;
    B_->upload(B_, r->ids, ids, sizeof(int32_t) * T);
    B_->upload(B_, r->pos, pos, sizeof(int32_t) * T);
    B_->upload(B_, r->slotmap, sm, sizeof(int32_t) * T);
    B_->upload(B_, r->cu, cu, sizeof(int32_t) * (size_t)(n_seq + 1));
    B_->upload(B_, r->slots, sl, sizeof(int32_t) * (size_t)n_seq);
    B_->upload(B_, r->last_idx, last, sizeof(int32_t) * (size_t)n_seq);
    B_->upload(B_, r->bt, bt, sizeof(int32_t) * (size_t)n_seq * r->max_pages);
    B_->upload(B_, r->params, pp, sizeof(op_sample_params) * (size_t)n_seq);
    B_->sync(B_);
    free(ids); free(pos); free(sm); free(cu); free(sl); free(last); free(bt); free(pp);
}

/* One forward step of n_seq sequences and T tokens (T == n_seq: a decode step; otherwise a
 * prefill of whole prompts): the per-layer op sequence of workers/model/model.c, then the final
 * norm + LM head on each sequence's last row and sampling. */
static void forward(runbuf *r, const bench_model *m, int n_seq, int T) {
    const shape *s = &m->s;
    op_backend *b = B_;
    dims d = dims_of(s);
    b->embed(b, r->h, m->emb, r->ids, T, s->D);
    PM(PS_EMBED);
    for (int l = 0; l < s->L; l++) {
        const layer_w *w = &m->lw[l];
        b->rmsnorm(b, r->xn, r->h, w->n1, T, s->D, s->eps);
        PM(PS_NORM);
        if (w->attn) {
            b->matmul(b, r->qkv, r->xn, w->wqkv, T, s->D, d.qkv, 0);
            PM(PS_MM_QKV);
            b->qkv_rope_write(b, r->q, r->qkv, r->pos, m->inv_freq, r->kc[l], r->vc[l], r->slotmap, T, s->Hq, s->Hkv,
                              s->hd, s->hd);
            PM(PS_QKV_ROPE);
            b->attention(b, r->att, r->q, r->kc[l], r->vc[l], r->bt, r->max_pages, r->cu, r->pos, n_seq, T, s->Hq,
                         s->Hkv, s->hd, s->page, 1.0f / sqrtf((float)s->hd));
            PM(PS_ATTN);
            b->matmul(b, r->h, r->att, w->wo, T, d.qd, s->D, 1);
            PM(PS_MM_O);
        } else {
            b->matmul(b, r->zxbcdt, r->xn, w->win, T, s->D, d.d_in, 0);
            PM(PS_MM_IN);
            /* x|B|C: in_proj columns di .. di+conv_dim (row stride d_in) */
            void *dt = col(r->zxbcdt, (size_t)(d.di + d.conv_dim));
            /* decode: the fused conv + scan when the backend has it (as model.c; with --state bf16 its
             * bf16-state form); its time is profiled as ssd_scan */
            int fused = 0;
            if (T == n_seq && g_state_bf16 && b->conv_ssd_decode)
                fused = op_cuda_conv_ssd_decode_bf16state(b, r->y, col(r->zxbcdt, (size_t)d.di), d.d_in, w->cw, w->cb,
                                                          r->conv[l], dt, d.d_in, w->A_log, w->Dp, w->dtb, r->ssm[l],
                                                          r->cu, r->slots, n_seq, d.conv_dim, s->K, s->H, s->P, s->G,
                                                          s->N, 0.0f, INFINITY) == 0;
            else if (T == n_seq && b->conv_ssd_decode)
                fused = b->conv_ssd_decode(b, r->y, col(r->zxbcdt, (size_t)d.di), d.d_in, w->cw, w->cb, r->conv[l], dt,
                                           d.d_in, w->A_log, w->Dp, w->dtb, r->ssm[l], r->cu, r->slots, n_seq,
                                           d.conv_dim, s->K, s->H, s->P, s->G, s->N, 0.0f, INFINITY) == 0;
            if (!fused) {
                b->conv1d(b, r->xbc, col(r->zxbcdt, (size_t)d.di), d.d_in, w->cw, w->cb, r->conv[l], r->cu, r->slots,
                          n_seq, T, d.conv_dim, s->K);
                PM(PS_CONV);
                void *xs = r->xbc, *Bs = col(r->xbc, (size_t)d.di), *Cs = col(r->xbc, (size_t)(d.di + d.gn));
                if (g_state_bf16)
                    op_cuda_ssd_scan_bf16state(b, r->y, xs, dt, w->A_log, Bs, Cs, w->Dp, w->dtb, r->ssm[l], r->cu,
                                               r->slots, n_seq, T, d.conv_dim, d.d_in, s->H, s->P, s->G, s->N, 0.0f,
                                               INFINITY);
                else
                    b->ssd_scan(b, r->y, xs, dt, w->A_log, Bs, Cs, w->Dp, w->dtb, r->ssm[l], r->cu, r->slots, n_seq, T,
                                d.conv_dim, d.d_in, s->H, s->P, s->G, s->N, 128, 0.0f, INFINITY);
            }
            PM(PS_SSD);
            /* z: in_proj columns 0 .. di; HF normalises over the whole d_inner (one group) */
            b->gated_rmsnorm(b, r->g, r->y, r->zxbcdt, d.d_in, w->gn, T, d.di, d.di, s->eps);
            PM(PS_GNORM);
            b->matmul(b, r->h, r->g, w->wout, T, d.di, s->D, 1);
            PM(PS_MM_OUT);
        }
        b->rmsnorm(b, r->xn, r->h, w->n2, T, s->D, s->eps);
        PM(PS_NORM);
        b->matmul(b, r->gu, r->xn, w->wgu, T, s->D, 2 * s->F, 0);
        PM(PS_MM_GU);
        b->swiglu(b, r->act, r->gu, T, s->F);
        PM(PS_SWIGLU);
        b->matmul(b, r->h, r->act, w->wdown, T, s->F, s->D, 1);
        PM(PS_MM_DOWN);
    }
    void *fin = r->xn;
    if (T == n_seq) {
        b->rmsnorm(b, r->xn, r->h, m->nf, T, s->D, s->eps);
    } else {
        b->embed(b, r->last, r->h, r->last_idx, n_seq, s->D); /* gather each sequence's last row */
        PM(PS_GATHER);
        b->rmsnorm(b, r->last, r->last, m->nf, n_seq, s->D, s->eps);
        fin = r->last;
    }
    PM(PS_NORM);
    b->matmul_f32out(b, r->logits, fin, m->emb, n_seq, s->D, s->V);
    PM(PS_LMHEAD);
    op_cuda_sample_async(b, r->out_ids, r->logits, n_seq, s->V, r->params);
    PM(PS_SAMPLE);
}

/* Bytes and FLOPs one decode step must move / do (a lower bound: each weight read once, each
 * sequence's KV read at the context, its SSM + conv state read and written once, its logits
 * written and read once; activations, which a fused kernel could keep on chip, and the small
 * parameters (norms, conv weights, A/D/dt_bias) are ignored). FLOPs: 2 per matmul weight per
 * token (the fused q|k|v and in_proj matrices have the same parameter count as the separate
 * ones), QK^T + PV at the context, and ~6 per SSM state element for the recurrent update. */
static void step_cost(const bench_model *m, int B, int ctx, double *bytes, double *flops) {
    const shape *s = &m->s;
    double kv_tok = (double)m->n_attn * 2.0 * s->Hkv * s->hd * 2; /* K+V bytes per token, all layers */
    double state = (double)state_bytes_per_seq(m);
    *bytes = m->weight_bytes + (double)B * ((double)ctx * kv_tok + 2.0 * state + (double)s->V * 4 * 2);
    double attn = (double)m->n_attn * 4.0 * s->Hq * s->hd * ctx; /* QK^T and PV */
    double ssd = (double)m->n_mamba * 6.0 * s->H * s->P * s->N;
    *flops = (double)B * (2.0 * m->matmul_params + attn + ssd);
}

/* FLOPs of a prefill of n_seq prompts of len tokens: 2 per layer matmul weight per token, the
 * LM head on the last row of each sequence only, causal attention (QK^T and PV over positions
 * 0..i for token i: 4 Hq hd (i+1)) and the recurrent scan's ~6 per state element per token. */
static double prefill_flops(const bench_model *m, int n_seq, int len) {
    const shape *s = &m->s;
    double T = (double)n_seq * len;
    double head = (double)s->V * s->D;
    double layers = 2.0 * (m->matmul_params - head) * T;
    double lm = 2.0 * head * n_seq;
    double attn = (double)m->n_attn * n_seq * 4.0 * s->Hq * s->hd * ((double)len * (len + 1) / 2.0);
    double ssd = (double)m->n_mamba * 6.0 * s->H * s->P * s->N * T;
    return layers + lm + attn + ssd;
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

typedef struct ppoint {
    char arch[16];
    int len, batch, tokens;
    double step_ms, tok_s, flops, roof_ms, frac;
    double prof[PS_N]; /* ms per op kind, one profiled prefill */
} ppoint;

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


/* Times one eager prefill of n_seq prompts of len tokens each from fresh state (see the header
 * comment) into p. Returns 0, or 1 (a line printed) when its buffers do not fit in the device
 * memory left after reserve_bytes. */
static int run_prefill(const bench_model *m, int n_seq, int len, double reserve_bytes, int greedy, ppoint *p) {
    const shape *s = &m->s;
    int T = n_seq * len; /* n_seq * len <= PREFILL_MAX_TOKENS, checked by main */
    int max_pages = (len + s->page - 1) / s->page;
    double need = runbuf_bytes(m, n_seq, T, max_pages), avail = (double)B_->mem_free(B_) - reserve_bytes;
    if (need > avail) {
        printf("  %-9s %6d %6d: needs %.2f GiB of buffers, %.2f GiB free after the reserve: skipped\n", m->arch, len,
               n_seq, need / 1073741824.0, avail / 1073741824.0);
        return 1;
    }
    runbuf r;
    runbuf_alloc(&r, m, n_seq, T, max_pages);
    step_inputs(&r, m, n_seq, len, 0, greedy);
    state_clear(&r, m, n_seq); /* warm-up: cuBLAS heuristics, kernel attributes */
    forward(&r, m, n_seq, T);
    B_->sync(B_);
    double t[3];
    for (int k = 0; k < 3; k++) {
        state_clear(&r, m, n_seq);
        B_->sync(B_);
        op_cuda_timer_begin(B_);
        forward(&r, m, n_seq, T);
        t[k] = op_cuda_timer_end(B_);
    }
    qsort(t, 3, sizeof t[0], cmp_d);
    memset(p, 0, sizeof *p);
    state_clear(&r, m, n_seq);
    B_->sync(B_);
    g_prof = 1;
    op_cuda_prof_begin(B_);
    forward(&r, m, n_seq, T);
    op_cuda_prof_end(B_, p->prof, PS_N);
    g_prof = 0;
    runbuf_free(&r, m);
    snprintf(p->arch, sizeof p->arch, "%s", m->arch);
    p->len = len;
    p->batch = n_seq;
    p->tokens = T;
    p->step_ms = t[1];
    p->tok_s = T / (t[1] / 1000.0);
    p->flops = prefill_flops(m, n_seq, len);
    p->roof_ms = 1000.0 * p->flops / ROOF_FLOPS;
    p->frac = p->roof_ms / p->step_ms;
    return 0;
}

/* Prints the ops above 0.5% of a profile's total. */
static void print_profile(const char *what, const double *prof) {
    double tot = 0;
    for (int k = 0; k < PS_N; k++) tot += prof[k];
    printf("            profile (%s, %.3f ms):", what, tot);
    for (int k = 0; k < PS_N; k++)
        if (prof[k] > 0.005 * tot) printf(" %s %.0f%%", ps_names[k], 100 * prof[k] / tot);
    printf("\n");
}

/* Writes "profile_ms":{...} (the ops with time) of a profile. */
static void json_profile(FILE *f, const double *prof) {
    fprintf(f, "\"profile_ms\":{");
    for (int k = 0, first = 1; k < PS_N; k++)
        if (prof[k] > 0) { fprintf(f, "%s\"%s\":%.4f", first ? "" : ",", ps_names[k], prof[k]); first = 0; }
    fprintf(f, "}");
}

int main(int argc, char **argv) {
    const char *archs_s = "teacher,student,hybrid50,hybrid25", *out_path = NULL;
    int gens[16] = {1024, 4096, 8192}, n_gens = 3;
    int batches[32] = {1, 8, 32, 64, 128, 256, 512}, n_batches = 7;
    int prompt = 256, add_max = 1, max_cap = 8192, layers = 16, page = 64, device = 0, greedy = 0;
    double reserve_gib = 3.0, target_ms = 150.0;
    int pre_lens[16], n_pre = 0, pre_batch = 8, pre_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) { usage(); return 0; }
        else if (strcmp(a, "--no-max") == 0) add_max = 0;
        else if (strcmp(a, "--prefill-only") == 0) pre_only = 1;
        else if (!v) { fprintf(stderr, "bench_gpu: %s needs a value (--help)\n", a); return 2; }
        else if (strcmp(a, "--arch") == 0) { archs_s = v; i++; }
        else if (strcmp(a, "--gen") == 0) { n_gens = parse_list(v, gens, 16); i++; if (n_gens <= 0) { fprintf(stderr, "bench_gpu: --gen: bad list \"%s\"\n", v); return 2; } }
        else if (strcmp(a, "--batch") == 0) { n_batches = parse_list(v, batches, 32); i++; if (n_batches <= 0) { fprintf(stderr, "bench_gpu: --batch: bad list \"%s\"\n", v); return 2; } }
        else if (strcmp(a, "--prompt") == 0) { prompt = atoi(v); i++; }
        else if (strcmp(a, "--prefill") == 0) { n_pre = parse_list(v, pre_lens, 16); i++; if (n_pre <= 0) { fprintf(stderr, "bench_gpu: --prefill: bad list \"%s\"\n", v); return 2; } }
        else if (strcmp(a, "--prefill-batch") == 0) { pre_batch = atoi(v); i++; }
        else if (strcmp(a, "--max-cap") == 0) { max_cap = atoi(v); i++; }
        else if (strcmp(a, "--layers") == 0) { layers = atoi(v); i++; }
        else if (strcmp(a, "--page") == 0) { page = atoi(v); i++; }
        else if (strcmp(a, "--reserve-gib") == 0) { reserve_gib = atof(v); i++; }
        else if (strcmp(a, "--target-ms") == 0) { target_ms = atof(v); i++; }
        else if (strcmp(a, "--out") == 0) { out_path = v; i++; }
        else if (strcmp(a, "--device") == 0) { device = atoi(v); i++; }
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
    if (prompt <= 0 || layers <= 0 || page <= 0 || max_cap <= 0 || pre_batch <= 0) {
        fprintf(stderr, "bench_gpu: --prompt, --layers, --page, --max-cap and --prefill-batch must be positive\n");
        return 2;
    }
    if (pre_only && n_pre == 0) { fprintf(stderr, "bench_gpu: --prefill-only needs --prefill LIST\n"); return 2; }
    for (int i = 0; i < n_pre; i++)
        if ((long long)pre_batch * pre_lens[i] > PREFILL_MAX_TOKENS) {
            fprintf(stderr, "bench_gpu: --prefill %d x --prefill-batch %d: more than %d tokens in one step\n",
                    pre_lens[i], pre_batch, PREFILL_MAX_TOKENS);
            return 2;
        }
    char err[512];
    B_ = op_cuda_new(device, err, sizeof err);
    if (!B_) { fprintf(stderr, "bench_gpu: %s\n", err); return 1; }
    char desc[256];
    op_cuda_describe(B_, desc, sizeof desc);
    printf("bench_gpu: %s; prompt %d, page %d, sampling %s, SSM state %s, mode op-level decode step (CUDA graph per "
           "batch)%s\n", desc, prompt, page, greedy ? "greedy" : "temperature 1", g_state_bf16 ? "bf16" : "fp32",
           n_pre ? (pre_only ? ", prefill only" : " + eager prefill") : "");
    fflush(stdout);

    shape s = {.V = 128256, .D = 2048, .L = layers, .F = 8192, .Hq = 32, .Hkv = 8, .hd = 64, .H = 32, .P = 64,
               .N = 64, .G = 32, .K = 4, .d_inner = 2048, .page = page, .eps = 1e-5f};
    int n_arch_max = 1;
    for (const char *c = archs_s; *c; c++) n_arch_max += *c == ',';
    int cap_pts = n_arch_max * n_gens * 40, cap_ppts = n_arch_max * (n_pre > 0 ? n_pre : 1);
    point *pts = xcalloc((size_t)cap_pts, sizeof(point));
    ppoint *ppts = xcalloc((size_t)cap_ppts, sizeof(ppoint));
    int n_pts = 0, n_ppts = 0;
    char archs[128];
    snprintf(archs, sizeof archs, "%s", archs_s);
    for (char *save = NULL, *arch = strtok_r(archs, ",", &save); arch; arch = strtok_r(NULL, ",", &save)) {
        if (strcmp(arch, "teacher") && strcmp(arch, "student") && strcmp(arch, "hybrid50") && strcmp(arch, "hybrid25")) {
            fprintf(stderr, "bench_gpu: unknown arch \"%s\"\n", arch);
            return 2;
        }
        bench_model m;
        model_build(&m, arch, s);
        printf("\n%s: %d attention + %d mamba layers, %.3f B matmul params (%.2f GiB bf16)\n", arch, m.n_attn,
               m.n_mamba, m.matmul_params / 1e9, m.weight_bytes / 1073741824.0);
        for (int gi = 0; gi < n_gens && !pre_only; gi++) {
            int gen = gens[gi], max_len = prompt + gen, ctx = prompt + gen / 2;
            int max_pages = (max_len + page - 1) / page;
            op_cuda_plan_req req = {.free_bytes = B_->mem_free(B_), .reserve_bytes = (size_t)(reserve_gib * 1073741824.0),
                                    .page_bytes = (size_t)page * s.Hkv * s.hd * 2 * 2 * m.n_attn, .page_size = page,
                                    .state_bytes = state_bytes_per_seq(&m),
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
            runbuf_alloc(&r, &m, Balloc, Balloc, max_pages);
            printf("  gen %d (ctx %d, KV+state for %d tokens): largest batch that fits %d (%.1f MiB/seq)\n", gen, ctx,
                   max_len, Bmax, plan.per_seq_bytes / 1048576.0);
            printf("  %-9s %6s %9s %9s %11s %9s %9s %7s\n", "arch", "batch", "step_ms", "eager_ms", "tok/s", "GB/step",
                   "roof_ms", "roof%");
            fflush(stdout);
            for (int bi = 0; bi < nl; bi++) {
                int B = list[bi];
                step_inputs(&r, &m, B, 1, ctx - 1, greedy);
                /* eager: warm-up (plans, scratch), then one timed step */
                forward(&r, &m, B, B);
                B_->sync(B_);
                op_cuda_timer_begin(B_);
                forward(&r, &m, B, B);
                double eager = op_cuda_timer_end(B_);
                if (op_cuda_graph_begin(B_, err, sizeof err) != 0) { fprintf(stderr, "bench_gpu: %s\n", err); return 1; }
                forward(&r, &m, B, B);
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
                if (n_pts >= cap_pts) break; /* cannot happen: at most 40 batches per (arch, gen) */
                point *p = &pts[n_pts++];
                memset(p->prof, 0, sizeof p->prof);
                g_prof = 1;
                op_cuda_prof_begin(B_);
                forward(&r, &m, B, B);
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
                print_profile("eager", p->prof);
                fflush(stdout);
            }
            runbuf_free(&r, &m);
        }
        if (n_pre > 0) {
            printf("  prefill (one eager forward of %d whole prompts, from fresh state)\n", pre_batch);
            printf("  %-9s %6s %6s %8s %9s %11s %9s %9s %7s\n", "arch", "len", "batch", "tokens", "step_ms", "tok/s",
                   "TFLOP", "roof_ms", "roof%");
            fflush(stdout);
            for (int li = 0; li < n_pre && n_ppts < cap_ppts; li++) {
                ppoint *p = &ppts[n_ppts];
                if (run_prefill(&m, pre_batch, pre_lens[li], reserve_gib * 1073741824.0, greedy, p) != 0) continue;
                n_ppts++;
                printf("  %-9s %6d %6d %8d %9.3f %11.0f %9.2f %9.3f %6.1f%%\n", arch, p->len, p->batch, p->tokens,
                       p->step_ms, p->tok_s, p->flops / 1e12, p->roof_ms, 100 * p->frac);
                print_profile("prefill", p->prof);
                fflush(stdout);
            }
        }
        model_free(&m);
    }

    /* Student/teacher ratios per generation length: equal batch, and equal memory (largest batch each). */
    if (!pre_only) printf("\nstudent/teacher throughput ratios\n");
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
        fprintf(f, "\"note\":\"each architecture's decode step built directly from the CUDA op table (not the engine) "
                   "with the op sequence of workers/model/model.c: per layer rmsnorm; attention: one matmul for q|k|v, "
                   "qkv_rope_write (rotary + paged KV write), attention, o matmul (+residual); Mamba-2: one in_proj matmul "
                   "(z|x|B|C|dt), one conv1d over the x|B|C columns (one conv state of d_inner+2GN channels per layer), "
                   "ssd_scan, gated rmsnorm, out_proj matmul (+residual); MLP: rmsnorm, gate|up matmul, swiglu, down "
                   "matmul (+residual); final rmsnorm, tied LM head, GPU sampling. Captured in a CUDA graph per batch, "
                   "timed with CUDA events (median of 3 repetitions); step time at context prompt+gen/2 equals the mean "
                   "over the generation (attention is linear in the context); KV pages and state allocated for "
                   "prompt+gen tokens; sampling %s included in the step; bytes_per_step is a lower bound (weights once, "
                   "KV at the context, state read+write, logits write+read; activations ignored)\",",
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
                    "\"flops_per_step\":%.4g,\"roofline_ms\":%.4f,\"roofline_fraction\":%.4f,",
                    i ? "," : "", p->arch, p->gen, p->prompt, p->ctx, p->batch, p->max_batch, p->is_max ? "true" : "false",
                    p->step_ms, p->eager_ms, p->tok_s, p->bytes, p->flops, p->roof_ms, p->frac);
            json_profile(f, p->prof);
            fprintf(f, "}");
        }
        fprintf(f, "],\"ratios\":[%s]", ratios.data ? ratios.data : "");
        fprintf(f, ",\"prefill_batch\":%d,\"prefill_note\":\"one eager forward (no CUDA graph) of prefill_batch whole "
                   "prompts of len tokens in one step (T = batch*len, cu_seqlens of batch sequences, positions 0..len-1, "
                   "K/V written into fresh pages, attention over the paged cache, conv and scan from cleared state), the "
                   "same op sequence as decode, then each sequence's last row gathered for the final norm, LM head and "
                   "sampling; CUDA events, median of 3 after a warm-up; flops = 2 x layer matmul params x tokens + 2 x "
                   "LM head params x batch + causal attention (4 Hq hd per query-key pair) + 6 H P N per Mamba token; "
                   "roofline = flops at %.3g FLOP/s\",\"prefill\":[",
                pre_batch, ROOF_FLOPS);
        for (int i = 0; i < n_ppts; i++) {
            const ppoint *p = &ppts[i];
            fprintf(f,
                    "%s{\"arch\":\"%s\",\"len\":%d,\"batch\":%d,\"tokens\":%d,\"step_ms\":%.4f,"
                    "\"tokens_per_s\":%.1f,\"flops\":%.4g,\"roofline_ms\":%.4f,\"roofline_fraction\":%.4f,",
                    i ? "," : "", p->arch, p->len, p->batch, p->tokens, p->step_ms, p->tok_s, p->flops, p->roof_ms,
                    p->frac);
            json_profile(f, p->prof);
            fprintf(f, "}");
        }
        fprintf(f, "]}\n");
        fclose(f);
        printf("wrote %s\n", out_path);
    }
    util_buf_free(&ratios);
    free(pts);
    free(ppts);
    B_->destroy(&B_);
    return 0;
}
#endif
