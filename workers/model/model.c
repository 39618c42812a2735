/* workers/model/model.c — weight loading and the forward pass for Llama / Bamba / Mamba2
 * (see model.h). One code path per layer kind, all through the op table.
 */
#include "workers/model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/util.h"
#include "workers/model/safetensors.h"

typedef struct model_layer {
    int is_attn, idx;            /* idx among attention / among Mamba layers */
    void *in_norm, *ff_norm;     /* ff_norm NULL without an MLP */
    void *wqkv, *wo;             /* attention: [qd + 2 kd, D] q|k|v fused at load, [D, qd] */
    void *w_gu, *w_down;         /* MLP: [2F, D] gate|up, [D, F] */
    void *w_in;                  /* Mamba in_proj [d_in_proj, D], rows z | x | B | C | dt (HF order) */
    void *conv_w, *conv_b;       /* conv1d over the x|B|C channels [conv_dim, K], [conv_dim] */
    float *A_log, *Dskip, *dt_bias;               /* fp32 */
    void *gnorm, *out_proj;
    /* optional biases (attention_bias, mlp_bias, mamba proj bias); NULL when absent */
    void *b_qkv, *bo, *b_gu, *b_down, *b_in, *b_out;
} model_layer;

/* Per-step workspace, grown when a step has more tokens / sequences than before. */
typedef struct model_ws {
    int cap_T, cap_seq, cap_bt, cap_rows;
    void *x, *xn, *qkv, *q, *att, *gu, *h;   /* qkv [T, qd + 2 kd]; q [T, qd] (rotated) */
    void *zxbcdt, *xbc, *y, *yn, *last;      /* in_proj output [T, d_in_proj]; conv output [T, conv_dim] */
    float *logits;
    void *ones;          /* [cap_T] of 1.0: bias rows are added as a K = 1 matmul (ones x bias^T) */
    int32_t *d_tokens, *d_pos, *d_cu, *d_slots, *d_bt, *d_slotmap, *d_last;
} model_ws;

struct model {
    model_config c;
    op_backend *be;
    void *embed, *lm_head, *final_norm;
    model_layer *layers;
    float *inv_freq;     /* backend memory, [rot_dim/2] */
    size_t weight_bytes;
    model_ws ws;
    int32_t *h_last;     /* host scratch for last-token indices */
    int cap_h_last;
};

const model_config *model_cfg(const model *m) { return &m->c; }
op_backend *model_backend(const model *m) { return m->be; }
size_t model_weight_bytes(const model *m) { return m->weight_bytes; }

/* ------------------------------------------------------------------ loading */

typedef struct loader {
    model *m;
    st_file *f;
    char *err;
    size_t errlen;
    int failed;
} loader;

static const st_tensor *want(loader *L, const char *name, int ndim, const int64_t *shape) {
    if (L->failed) return NULL;
    const st_tensor *t = st_find(L->f, name);
    if (!t) {
        util_err(L->err, L->errlen, "checkpoint: tensor %s is missing", name);
        L->failed = 1;
        return NULL;
    }
    int ok = 1;
    /* conv1d weights are [C, 1, K] in HF; accept [C, K] as well */
    if (ndim == 2 && t->ndim == 3 && shape[1] > 0 && t->shape[1] == 1 && strstr(name, "conv1d")) {
        ok = t->shape[0] == shape[0] && t->shape[2] == shape[1];
    } else if (ndim == 1 && t->ndim == 0) {
        ok = shape[0] == 1;
    } else {
        ok = t->ndim == ndim;
        for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    }
    if (!ok) {
        char got[128] = "", exp[128] = "";
        size_t g = 0, e = 0;
        for (int i = 0; i < t->ndim; i++) g += snprintf(got + g, sizeof got - g, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        for (int i = 0; i < ndim; i++) e += snprintf(exp + e, sizeof exp - e, "%s%lld", i ? ", " : "", (long long)shape[i]);
        util_err(L->err, L->errlen, "%s: tensor %s: shape [%s], expected [%s]", t->file ? t->file : "checkpoint",
                 name, got, exp);
        L->failed = 1;
        return NULL;
    }
    return t;
}

static void *walloc(loader *L, size_t n_elems) {
    op_backend *be = L->m->be;
    size_t nb = n_elems * be->act_bytes;
    void *p = be->alloc(be, nb ? nb : 4);
    if (!p) {
        util_err(L->err, L->errlen, "out of %s memory loading the weights (%zu bytes more)", be->name, nb);
        L->failed = 1;
        return NULL;
    }
    L->m->weight_bytes += nb;
    return p;
}

/* rows [r0, r0 + nrows) of a 2-D (or conv [C,1,K]) tensor into dst at element offset dst_off */
static void load_rows(loader *L, void *dst, size_t dst_off, const st_tensor *t, int64_t r0, int64_t nrows, int64_t cols) {
    op_backend *be = L->m->be;
    size_t es = op_dtype_size(t->dtype);
    be->load_weight(be, (char *)dst + dst_off * be->act_bytes, (const char *)t->data + (size_t)r0 * cols * es,
                    t->dtype, (size_t)(nrows * cols));
}

static void *load_mat(loader *L, const char *name, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    const st_tensor *t = want(L, name, cols > 0 ? 2 : 1, shape);
    if (!t) return NULL;
    if (cols <= 0) cols = 1;
    void *p = walloc(L, (size_t)(rows * cols));
    if (p) load_rows(L, p, 0, t, 0, rows, cols);
    return p;
}
static void *load_vec(loader *L, const char *name, int64_t n) { return load_mat(L, name, n, 0); }

static float *load_f32(loader *L, const char *name, int64_t n) {
    int64_t shape[1] = {n};
    const st_tensor *t = want(L, name, 1, shape);
    if (!t) return NULL;
    float *h = st_tensor_to_f32(t);
    op_backend *be = L->m->be;
    float *d = be->alloc(be, sizeof(float) * n);
    if (!d) { free(h); util_err(L->err, L->errlen, "out of %s memory", be->name); L->failed = 1; return NULL; }
    be->upload(be, d, h, sizeof(float) * n);
    L->m->weight_bytes += sizeof(float) * n;
    free(h);
    return d;
}

/* q, k, v projections (and their biases) are stored as one [qd + 2 kd, D] matrix: one matmul
 * per step; qkv_rope_write splits the rows. */
static void load_attention(loader *L, model_layer *ly, const char *pre) {
    const model_config *c = &L->m->c;
    char nm[256];
    int64_t D = c->hidden, qd = (int64_t)c->n_heads * c->head_dim, kd = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t sq[2] = {qd, D}, sk[2] = {kd, D};
    const char *part[3] = {"q", "k", "v"};
    int64_t rows[3] = {qd, kd, kd}, off[3] = {0, qd, qd + kd};
    const st_tensor *t[3];
    for (int i = 0; i < 3; i++) {
        snprintf(nm, sizeof nm, "%s.%s_proj.weight", pre, part[i]);
        t[i] = want(L, nm, 2, i ? sk : sq);
    }
    if (L->failed) return;
    ly->wqkv = walloc(L, (size_t)((qd + 2 * kd) * D));
    if (L->failed) return;
    for (int i = 0; i < 3; i++) load_rows(L, ly->wqkv, (size_t)(off[i] * D), t[i], 0, rows[i], D);
    snprintf(nm, sizeof nm, "%s.o_proj.weight", pre); ly->wo = load_mat(L, nm, D, qd);
    if (c->attn_bias) {
        for (int i = 0; i < 3; i++) {
            int64_t sb[1] = {rows[i]};
            snprintf(nm, sizeof nm, "%s.%s_proj.bias", pre, part[i]);
            t[i] = want(L, nm, 1, sb);
        }
        if (L->failed) return;
        ly->b_qkv = walloc(L, (size_t)(qd + 2 * kd));
        if (L->failed) return;
        for (int i = 0; i < 3; i++) load_rows(L, ly->b_qkv, (size_t)off[i], t[i], 0, rows[i], 1);
        snprintf(nm, sizeof nm, "%s.o_proj.bias", pre); ly->bo = load_vec(L, nm, D);
    }
}

static void load_mlp(loader *L, model_layer *ly, const char *pre) {
    const model_config *c = &L->m->c;
    char nm[256];
    int64_t D = c->hidden, F = c->intermediate;
    int64_t s1[2] = {F, D}, s2[2] = {D, F};
    snprintf(nm, sizeof nm, "%s.gate_proj.weight", pre);
    const st_tensor *g = want(L, nm, 2, s1);
    snprintf(nm, sizeof nm, "%s.up_proj.weight", pre);
    const st_tensor *u = want(L, nm, 2, s1);
    snprintf(nm, sizeof nm, "%s.down_proj.weight", pre);
    const st_tensor *d = want(L, nm, 2, s2);
    if (!g || !u || !d) return;
    ly->w_gu = walloc(L, (size_t)(2 * F * D));
    ly->w_down = walloc(L, (size_t)(D * F));
    if (L->failed) return;
    load_rows(L, ly->w_gu, 0, g, 0, F, D);
    load_rows(L, ly->w_gu, (size_t)(F * D), u, 0, F, D);
    load_rows(L, ly->w_down, 0, d, 0, D, F);
    if (c->mlp_bias) {
        int64_t s3[1] = {F}, s4[1] = {D};
        snprintf(nm, sizeof nm, "%s.gate_proj.bias", pre);
        const st_tensor *gb = want(L, nm, 1, s3);
        snprintf(nm, sizeof nm, "%s.up_proj.bias", pre);
        const st_tensor *ub = want(L, nm, 1, s3);
        snprintf(nm, sizeof nm, "%s.down_proj.bias", pre);
        const st_tensor *db = want(L, nm, 1, s4);
        if (L->failed) return;
        ly->b_gu = walloc(L, (size_t)(2 * F));
        ly->b_down = walloc(L, (size_t)D);
        if (L->failed) return;
        load_rows(L, ly->b_gu, 0, gb, 0, F, 1);
        load_rows(L, ly->b_gu, (size_t)F, ub, 0, F, 1);
        load_rows(L, ly->b_down, 0, db, 0, D, 1);
    }
}

/* in_proj stays one matrix (HF stores it fused, rows z | x | B | C | dt): one matmul per step,
 * whose output columns the conv, the scan and the gated norm read as strided blocks. */
static void load_mamba(loader *L, model_layer *ly, const char *pre) {
    const model_config *c = &L->m->c;
    char nm[256];
    int64_t D = c->hidden, di = c->m_d_inner, H = c->m_heads;
    int64_t cd = c->m_conv_dim, K = c->m_d_conv, rows = di + cd + H;
    snprintf(nm, sizeof nm, "%s.in_proj.weight", pre);
    ly->w_in = load_mat(L, nm, rows, D);
    if (c->m_proj_bias) {
        snprintf(nm, sizeof nm, "%s.in_proj.bias", pre); ly->b_in = load_vec(L, nm, rows);
        snprintf(nm, sizeof nm, "%s.out_proj.bias", pre); ly->b_out = load_vec(L, nm, D);
    }
    snprintf(nm, sizeof nm, "%s.conv1d.weight", pre);
    ly->conv_w = load_mat(L, nm, cd, K); /* [C, 1, K] in HF; want() accepts it */
    if (c->m_conv_bias) { snprintf(nm, sizeof nm, "%s.conv1d.bias", pre); ly->conv_b = load_vec(L, nm, cd); }
    snprintf(nm, sizeof nm, "%s.A_log", pre); ly->A_log = load_f32(L, nm, H);
    snprintf(nm, sizeof nm, "%s.D", pre); ly->Dskip = load_f32(L, nm, H);
    snprintf(nm, sizeof nm, "%s.dt_bias", pre); ly->dt_bias = load_f32(L, nm, H);
    snprintf(nm, sizeof nm, "%s.norm.weight", pre); ly->gnorm = load_vec(L, nm, di);
    snprintf(nm, sizeof nm, "%s.out_proj.weight", pre); ly->out_proj = load_mat(L, nm, D, di);
}

static void ws_free(model *m, model_ws *w);

void model_destroy(model **pm) {
    if (!pm || !*pm) return;
    model *m = *pm;
    op_backend *be = m->be;
#define FREE_P(p) do { if (p) be->free(be, (void *)(p)); } while (0)
    if (m->layers) {
        for (int i = 0; i < m->c.n_layers; i++) {
            model_layer *l = &m->layers[i];
            FREE_P(l->in_norm); FREE_P(l->ff_norm); FREE_P(l->wqkv); FREE_P(l->wo); FREE_P(l->w_gu); FREE_P(l->w_down);
            FREE_P(l->w_in); FREE_P(l->conv_w); FREE_P(l->conv_b); FREE_P(l->A_log); FREE_P(l->Dskip);
            FREE_P(l->dt_bias); FREE_P(l->gnorm); FREE_P(l->out_proj);
            FREE_P(l->b_qkv); FREE_P(l->bo); FREE_P(l->b_gu); FREE_P(l->b_down); FREE_P(l->b_in); FREE_P(l->b_out);
        }
        free(m->layers);
    }
    if (m->lm_head != m->embed) FREE_P(m->lm_head);
    FREE_P(m->embed); FREE_P(m->final_norm); FREE_P(m->inv_freq);
#undef FREE_P
    ws_free(m, &m->ws);
    free(m->h_last);
    free(m);
    *pm = NULL;
}

int model_load(const char *dir, op_backend *be, model **out, char *err, size_t errlen) {
    *out = NULL;
    model *m = xcalloc(1, sizeof *m);
    m->be = be;
    if (model_config_load(dir, &m->c, err, errlen) != 0) { free(m); return -1; }
    const model_config *c = &m->c;
    loader L = {m, NULL, err, errlen, 0};
    if (st_open(dir, &L.f, err, errlen) != 0) { free(m); return -1; }
    int D = c->hidden;
    const char *root = c->arch == MODEL_MAMBA2 ? "backbone" : "model";
    char nm[256], pre[200];
    if (c->arch == MODEL_MAMBA2) {
        const char *en = st_find(L.f, "backbone.embeddings.weight") ? "backbone.embeddings.weight" : "backbone.embedding.weight";
        m->embed = load_mat(&L, en, c->vocab_size, D);
        m->final_norm = load_vec(&L, "backbone.norm_f.weight", D);
    } else {
        m->embed = load_mat(&L, "model.embed_tokens.weight", c->vocab_size, D);
        m->final_norm = load_vec(&L, c->arch == MODEL_BAMBA ? "model.final_layernorm.weight" : "model.norm.weight", D);
    }
    if (c->seq_cls) m->lm_head = m->embed; /* classifier checkpoint: no LM head; logits unused */
    else if (c->tie_embeddings && !st_find(L.f, "lm_head.weight")) m->lm_head = m->embed;
    else if (c->tie_embeddings) m->lm_head = m->embed; /* tied: HF ignores a stored copy */
    else m->lm_head = load_mat(&L, "lm_head.weight", c->vocab_size, D);
    m->layers = xcalloc(c->n_layers, sizeof(model_layer));
    int ia = 0, im = 0;
    for (int i = 0; i < c->n_layers && !L.failed; i++) {
        model_layer *ly = &m->layers[i];
        ly->is_attn = c->layer_is_attn[i];
        ly->idx = ly->is_attn ? ia++ : im++;
        snprintf(pre, sizeof pre, "%s.layers.%d", root, i);
        if (c->arch == MODEL_MAMBA2) {
            snprintf(nm, sizeof nm, "%s.norm.weight", pre); ly->in_norm = load_vec(&L, nm, D);
            snprintf(nm, sizeof nm, "%s.mixer", pre); load_mamba(&L, ly, nm);
        } else if (c->arch == MODEL_LLAMA) {
            snprintf(nm, sizeof nm, "%s.input_layernorm.weight", pre); ly->in_norm = load_vec(&L, nm, D);
            snprintf(nm, sizeof nm, "%s.post_attention_layernorm.weight", pre); ly->ff_norm = load_vec(&L, nm, D);
            snprintf(nm, sizeof nm, "%s.self_attn", pre); load_attention(&L, ly, nm);
            snprintf(nm, sizeof nm, "%s.mlp", pre); load_mlp(&L, ly, nm);
        } else { /* bamba */
            snprintf(nm, sizeof nm, "%s.input_layernorm.weight", pre); ly->in_norm = load_vec(&L, nm, D);
            snprintf(nm, sizeof nm, "%s.pre_ff_layernorm.weight", pre); ly->ff_norm = load_vec(&L, nm, D);
            if (ly->is_attn) { snprintf(nm, sizeof nm, "%s.self_attn", pre); load_attention(&L, ly, nm); }
            else { snprintf(nm, sizeof nm, "%s.mamba", pre); load_mamba(&L, ly, nm); }
            snprintf(nm, sizeof nm, "%s.feed_forward", pre); load_mlp(&L, ly, nm);
        }
    }
    if (!L.failed && c->n_attn_layers > 0) {
        int half = c->rot_dim / 2;
        float *h = xmalloc(sizeof(float) * (half ? half : 1));
        model_config_rope_inv_freq(c, h);
        m->inv_freq = be->alloc(be, sizeof(float) * (half ? half : 1));
        if (m->inv_freq) be->upload(be, m->inv_freq, h, sizeof(float) * half);
        free(h);
    }
    st_close(&L.f);
    if (L.failed) { model_destroy(&m); return -1; }
    *out = m;
    return 0;
}

/* ------------------------------------------------------------------ workspace */

static void ws_free(model *m, model_ws *w) {
    op_backend *be = m->be;
    void **bufs[] = {&w->x, &w->xn, &w->qkv, &w->q, &w->att, &w->gu, &w->h, &w->zxbcdt, &w->xbc, &w->y, &w->yn,
                     &w->last, (void **)&w->logits, &w->ones,
                     (void **)&w->d_tokens, (void **)&w->d_pos, (void **)&w->d_cu, (void **)&w->d_slots,
                     (void **)&w->d_bt, (void **)&w->d_slotmap, (void **)&w->d_last};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (*bufs[i]) be->free(be, *bufs[i]);
        *bufs[i] = NULL;
    }
    w->cap_T = w->cap_seq = w->cap_bt = w->cap_rows = 0;
}

/* Backend allocation that records a failure in *fail instead of returning NULL to the caller. */
static void *ws_alloc(model *m, size_t bytes, int *fail) {
    void *p = m->be->alloc(m->be, bytes ? bytes : 4);
    if (!p) *fail = 1;
    return p;
}

/* Element widths of the per-token activation buffers, in the order ws_grow allocates them. */
#define WS_N_ACT 11
static void ws_widths(const model_config *c, size_t *widths) {
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t di = (size_t)c->m_d_inner, cd = (size_t)c->m_conv_dim, in_w = di + cd + (size_t)c->m_heads;
    if (!c->n_attn_layers) qd = kd = 0;
    if (c->n_attn_layers == c->n_layers) di = cd = in_w = 0;
    size_t w[WS_N_ACT] = {c->hidden, c->hidden, qd + 2 * kd, qd, qd, 2 * (size_t)c->intermediate,
                          (size_t)c->intermediate, in_w, cd, di, di};
    memcpy(widths, w, sizeof w);
}

/* Grows w so that a step of T tokens, n_seq sequences, a bt-entry block table and `rows` logits
 * rows fits. 0 ok; -1 when the backend is out of memory (w then holds NULLs; ws_free it). */
static int ws_grow(model *m, model_ws *w, int T, int n_seq, int bt, int rows) {
    const model_config *c = &m->c;
    op_backend *be = m->be;
    size_t ab = be->act_bytes;
    int fail = 0;
    if (T > w->cap_T) {
        int nT = T < 16 ? 16 : T;
        void **bufs[WS_N_ACT] = {&w->x, &w->xn, &w->qkv, &w->q, &w->att, &w->gu, &w->h, &w->zxbcdt, &w->xbc, &w->y, &w->yn};
        size_t widths[WS_N_ACT];
        ws_widths(c, widths);
        for (size_t i = 0; i < WS_N_ACT; i++) {
            if (*bufs[i]) be->free(be, *bufs[i]);
            *bufs[i] = ws_alloc(m, widths[i] * nT * ab, &fail);
        }
        int32_t **ib[] = {&w->d_tokens, &w->d_pos, &w->d_slotmap};
        for (int i = 0; i < 3; i++) {
            if (*ib[i]) be->free(be, *ib[i]);
            *ib[i] = ws_alloc(m, sizeof(int32_t) * nT, &fail);
        }
        if (w->ones) be->free(be, w->ones);
        w->ones = ws_alloc(m, ab * nT, &fail);
        if (fail) return -1;
        float *h1 = xmalloc(sizeof(float) * nT);
        for (int i = 0; i < nT; i++) h1[i] = 1.0f;
        be->load_weight(be, w->ones, h1, OP_F32, (size_t)nT);
        free(h1);
        w->cap_T = nT;
    }
    if (n_seq > w->cap_seq) {
        int ns = n_seq < 16 ? 16 : n_seq;
        int32_t **ib[] = {&w->d_cu, &w->d_slots, &w->d_last};
        for (int i = 0; i < 3; i++) {
            if (*ib[i]) be->free(be, *ib[i]);
            *ib[i] = ws_alloc(m, sizeof(int32_t) * (ns + 1), &fail);
        }
        if (w->last) be->free(be, w->last);
        w->last = ws_alloc(m, (size_t)c->hidden * ns * ab, &fail);
        if (fail) return -1;
        w->cap_seq = ns;
    }
    if (bt > w->cap_bt) {
        if (w->d_bt) be->free(be, w->d_bt);
        w->d_bt = ws_alloc(m, sizeof(int32_t) * bt, &fail);
        if (fail) return -1;
        w->cap_bt = bt;
    }
    if (rows > w->cap_rows) {
        if (w->logits) be->free(be, w->logits);
        w->logits = ws_alloc(m, sizeof(float) * (size_t)rows * c->vocab_size, &fail);
        if (fail) return -1;
        w->cap_rows = rows;
    }
    return 0;
}

/* The eager path's workspace (m->ws): grown on demand, out of memory is fatal. */
static void ws_reserve(model *m, int T, int n_seq, int bt, int rows) {
    CHECK(ws_grow(m, &m->ws, T, n_seq, bt, rows) == 0, "model workspace: out of %s memory (step of %d tokens, %d sequences)",
          m->be->name, T, n_seq);
    if (n_seq > m->cap_h_last) {
        free(m->h_last);
        m->h_last = xmalloc(sizeof(int32_t) * (n_seq + 1));
        m->cap_h_last = n_seq;
    }
}

/* ------------------------------------------------------------------ forward */

/* y[T, N] += bias[N] on every row, as the K = 1 product ones[T, 1] x bias[N, 1]^T. */
static void add_bias(model *m, model_ws *w, void *y, const void *bias, int T, int N) {
    if (bias) m->be->matmul(m->be, y, w->ones, bias, T, 1, N, 1);
}

static void attn_layer(model *m, model_ws *w, kv_cache *kv, const model_layer *ly, int T, int n_seq, int max_pages) {
    const model_config *c = &m->c;
    op_backend *be = m->be;
    int D = c->hidden, qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim;
    be->matmul(be, w->qkv, w->xn, ly->wqkv, T, D, qd + 2 * kd, 0);
    add_bias(m, w, w->qkv, ly->b_qkv, T, qd + 2 * kd);
    void *kc = kv_k(kv, ly->idx), *vc = kv_v(kv, ly->idx);
    be->qkv_rope_write(be, w->q, w->qkv, w->d_pos, m->inv_freq, kc, vc, w->d_slotmap, T, c->n_heads, c->n_kv_heads,
                       c->head_dim, c->rot_dim);
    be->attention(be, w->att, w->q, kc, vc, w->d_bt, max_pages, w->d_cu, w->d_pos, n_seq, T, c->n_heads,
                  c->n_kv_heads, c->head_dim, kv_page_size(kv), 1.0f / sqrtf((float)c->head_dim));
    be->matmul(be, w->x, w->att, ly->wo, T, qd, D, 1);
    add_bias(m, w, w->x, ly->bo, T, D);
}

/* One matmul for z|x|B|C|dt; the conv reads the x|B|C columns of its output (row stride
 * in_w), the scan reads x, B, C as column blocks of the conv output and dt as the last block of
 * the in_proj output, and the gated norm reads z as its first block. */
static void mamba_layer(model *m, model_ws *w, kv_cache *kv, const model_layer *ly, int T, int n_seq) {
    const model_config *c = &m->c;
    op_backend *be = m->be;
    size_t ab = be->act_bytes;
    int D = c->hidden, di = c->m_d_inner, gn = c->m_groups * c->m_d_state, H = c->m_heads, cd = c->m_conv_dim;
    int in_w = di + cd + H;
    char *zx = w->zxbcdt, *xbc = w->xbc;
    be->matmul(be, w->zxbcdt, w->xn, ly->w_in, T, D, in_w, 0);
    add_bias(m, w, w->zxbcdt, ly->b_in, T, in_w);
    float dt_min = (float)c->dt_min, dt_max = (float)c->dt_max;
    /* a decode step: the backend's fused conv + scan when it has one and takes the shape */
    int fused = T == n_seq && be->conv_ssd_decode &&
                be->conv_ssd_decode(be, w->y, zx + (size_t)di * ab, in_w, ly->conv_w, ly->conv_b, kv_conv(kv, ly->idx),
                                    zx + (size_t)(di + cd) * ab, in_w, ly->A_log, ly->Dskip, ly->dt_bias,
                                    kv_ssm(kv, ly->idx), w->d_cu, w->d_slots, n_seq, cd, c->m_d_conv, H, c->m_head_dim,
                                    c->m_groups, c->m_d_state, dt_min, dt_max) == 0;
    if (!fused) {
        be->conv1d(be, w->xbc, zx + (size_t)di * ab, in_w, ly->conv_w, ly->conv_b, kv_conv(kv, ly->idx), w->d_cu,
                   w->d_slots, n_seq, T, cd, c->m_d_conv);
        be->ssd_scan(be, w->y, xbc, zx + (size_t)(di + cd) * ab, ly->A_log, xbc + (size_t)di * ab,
                     xbc + (size_t)(di + gn) * ab, ly->Dskip, ly->dt_bias, kv_ssm(kv, ly->idx), w->d_cu, w->d_slots,
                     n_seq, T, cd, in_w, H, c->m_head_dim, c->m_groups, c->m_d_state,
                     c->m_chunk > 0 ? c->m_chunk : 256, dt_min, dt_max);
    }
    be->gated_rmsnorm(be, w->yn, w->y, zx, in_w, ly->gnorm, T, di, di, c->rms_eps);
    be->matmul(be, w->x, w->yn, ly->out_proj, T, di, D, 1);
    add_bias(m, w, w->x, ly->b_out, T, D);
}

/* The layers of one step over workspace w (inputs already uploaded into w's index arrays). */
static void forward_layers(model *m, model_ws *w, kv_cache *kv, int T, int n_seq, int max_pages) {
    const model_config *c = &m->c;
    op_backend *be = m->be;
    int D = c->hidden;
    be->embed(be, w->x, m->embed, w->d_tokens, T, D);
    for (int i = 0; i < c->n_layers; i++) {
        const model_layer *ly = &m->layers[i];
        be->rmsnorm(be, w->xn, w->x, ly->in_norm, T, D, c->rms_eps);
        if (ly->is_attn) attn_layer(m, w, kv, ly, T, n_seq, max_pages);
        else mamba_layer(m, w, kv, ly, T, n_seq);
        if (ly->ff_norm && c->intermediate > 0) {
            be->rmsnorm(be, w->xn, w->x, ly->ff_norm, T, D, c->rms_eps);
            be->matmul(be, w->gu, w->xn, ly->w_gu, T, D, 2 * c->intermediate, 0);
            add_bias(m, w, w->gu, ly->b_gu, T, 2 * c->intermediate);
            be->swiglu(be, w->h, w->gu, T, c->intermediate);
            be->matmul(be, w->x, w->h, ly->w_down, T, c->intermediate, D, 1);
            add_bias(m, w, w->x, ly->b_down, T, D);
        }
    }
}

const float *model_forward(model *m, kv_cache *kv, const kv_batch *b, int all_logits) {
    const model_config *c = &m->c;
    op_backend *be = m->be;
    model_ws *w = &m->ws;
    int T = b->T, D = c->hidden, n_seq = b->n_seq;
    CHECK(T > 0 && n_seq > 0, "empty step");
    ws_reserve(m, T, n_seq, n_seq * b->max_pages, all_logits ? T : n_seq);
    be->upload(be, w->d_tokens, b->tokens, sizeof(int32_t) * T);
    be->upload(be, w->d_pos, b->pos, sizeof(int32_t) * T);
    be->upload(be, w->d_slotmap, b->slot_mapping, sizeof(int32_t) * T);
    be->upload(be, w->d_cu, b->cu_seqlens, sizeof(int32_t) * (n_seq + 1));
    be->upload(be, w->d_slots, b->slots, sizeof(int32_t) * n_seq);
    if (c->n_attn_layers) be->upload(be, w->d_bt, b->block_table, sizeof(int32_t) * n_seq * b->max_pages);
    for (int t = 0; t < T; t++) CHECK(b->tokens[t] >= 0 && b->tokens[t] < c->vocab_size, "token id %d out of range", b->tokens[t]);
    forward_layers(m, w, kv, T, n_seq, b->max_pages);
    if (all_logits) {
        be->rmsnorm(be, w->xn, w->x, m->final_norm, T, D, c->rms_eps);
        be->matmul_f32out(be, w->logits, w->xn, m->lm_head, T, D, c->vocab_size);
    } else {
        for (int s = 0; s < n_seq; s++) m->h_last[s] = b->cu_seqlens[s + 1] - 1;
        be->upload(be, w->d_last, m->h_last, sizeof(int32_t) * n_seq);
        be->embed(be, w->last, w->x, w->d_last, n_seq, D); /* gather the last row of each sequence */
        be->rmsnorm(be, w->last, w->last, m->final_norm, n_seq, D, c->rms_eps);
        be->matmul_f32out(be, w->logits, w->last, m->lm_head, n_seq, D, c->vocab_size);
    }
    return w->logits;
}

/* ------------------------------------------------------------------ fixed decode steps */

struct model_step {
    model *m;
    model_ws ws;
    model_step_io io;
};

size_t model_step_row_bytes(const model *m, int max_pages) {
    size_t widths[WS_N_ACT], act = 0;
    ws_widths(&m->c, widths);
    for (int i = 0; i < WS_N_ACT; i++) act += widths[i];
    act += 1 + (size_t)m->c.hidden; /* ones, last */
    return act * m->be->act_bytes + sizeof(float) * (size_t)m->c.vocab_size +
           sizeof(int32_t) * (6 + (size_t)(max_pages > 0 ? max_pages : 1));
}

int model_step_new(model *m, int max_seqs, int max_pages, model_step **out, char *err, size_t errlen) {
    *out = NULL;
    if (max_seqs < 1 || max_pages < 1)
        return util_err(err, errlen, "model_step: max_seqs %d and max_pages %d must be positive", max_seqs, max_pages);
    model_step *s = xcalloc(1, sizeof *s);
    s->m = m;
    if (ws_grow(m, &s->ws, max_seqs, max_seqs, max_seqs * max_pages, max_seqs) != 0) {
        ws_free(m, &s->ws);
        free(s);
        return util_err(err, errlen, "model_step: out of %s memory for a %d-sequence decode workspace (%zu bytes)",
                        m->be->name, max_seqs, model_step_row_bytes(m, max_pages) * (size_t)max_seqs);
    }
    model_step_io *io = &s->io;
    io->tokens = s->ws.d_tokens;
    io->pos = s->ws.d_pos;
    io->slot_mapping = s->ws.d_slotmap;
    io->slots = s->ws.d_slots;
    io->cu_seqlens = s->ws.d_cu;
    io->block_table = s->ws.d_bt;
    io->logits = s->ws.logits;
    io->max_seqs = max_seqs;
    io->max_pages = max_pages;
    *out = s;
    return 0;
}

void model_step_destroy(model_step **ps) {
    if (!ps || !*ps) return;
    ws_free((*ps)->m, &(*ps)->ws);
    free(*ps);
    *ps = NULL;
}

const model_step_io *model_step_io_of(const model_step *s) { return &s->io; }

const float *model_step_forward(model *m, kv_cache *kv, model_step *s, int n) {
    const model_config *c = &m->c;
    CHECK(s->m == m && n >= 1 && n <= s->io.max_seqs, "model_step_forward: %d rows for a %d-row step", n, s->io.max_seqs);
    model_ws *w = &s->ws;
    forward_layers(m, w, kv, n, n, s->io.max_pages);
    /* one token per sequence: the last rows are the rows themselves */
    m->be->rmsnorm(m->be, w->xn, w->x, m->final_norm, n, c->hidden, c->rms_eps);
    m->be->matmul_f32out(m->be, w->logits, w->xn, m->lm_head, n, c->hidden, c->vocab_size);
    return w->logits;
}

/* The normed rows model_forward leaves in its workspace: xn (every token) or last (last token of
 * each sequence). Keep in step with model_forward's tail. */
const void *model_forward_hidden(model *m, kv_cache *kv, const kv_batch *b, int all_tokens) {
    model_forward(m, kv, b, all_tokens);
    return all_tokens ? m->ws.xn : m->ws.last;
}
