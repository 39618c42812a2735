/* tests/gpu/test_cuda_ops.c — every CUDA op against the CPU reference backend (op_backend_new
 * "cpu"), on fresh random inputs (never zeros): the inputs are rounded to bf16 once and given to
 * both backends, the CUDA outputs are poisoned (NaN) before each run so an unwritten element
 * fails, and each op has its own tolerance atol + rtol * |ref| (bf16 outputs: ~2^-8 relative).
 * Shapes are deliberately odd: lengths that are not multiples of tiles or chunks, batch 1, GQA
 * ratios 1/2/4/8, partial rotary, head_dim 32/64/128, d_state on both scan paths.
 * Strided inputs (conv1d x_ld, ssd_scan xbc_ld/dt_ld, gated_rmsnorm z_ld) are given to the device
 * as column blocks of a wider matrix whose other columns hold large garbage (WIDE_GARBAGE), so
 * reading a wrong column fails; the reference is the CPU backend on compact copies (and the
 * CPU backend on the same wide matrix must agree with it).
 * Without a CUDA device every device test reports "skip" (the memory-planning test still runs).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "tests/unit/unit.h"

#define GPU_TEST_SEED 0x243F6A8885A308D3ull
#include "tests/gpu/gpu_testutil.h"

/* Device pointer to element `off` of a bf16 buffer (a column block of a wide matrix, or a
 * deliberately misaligned start). */
static void *g_at(void *d, size_t off) { return (char *)d + off * 2; }
static void *c_at(void *d, size_t off) { return (char *)d + off * 4; }

/* Wide host matrices: [rows, ld] filled with WIDE_GARBAGE, with compact blocks placed at column
 * offsets. A kernel that reads a column outside its block picks up the garbage. */
#define WIDE_GARBAGE 9984.0f /* 1e4 rounded to bf16 */
static float *wide_new(size_t rows, int ld) {
    float *w = h_alloc(rows * ld * sizeof(float));
    for (size_t i = 0; i < rows * ld; i++) w[i] = WIDE_GARBAGE;
    return w;
}
static void wide_put(float *w, int ld, int off, const float *a, size_t rows, int cols) {
    for (size_t r = 0; r < rows; r++) memcpy(w + r * ld + off, a + r * cols, (size_t)cols * sizeof(float));
}

/* Compares got vs ref; prints the first mismatches with their index. Returns the count. */
static size_t close_to(const char *what, const float *got, const float *ref, size_t n, double atol, double rtol) {
    size_t bad = count_out_of_tol(what, got, ref, n, atol, rtol, 0);
    EXPECT_MSG(bad == 0, "%s: %zu mismatches", what, bad);
    return bad;
}

/* ---------------------------------------------------------------- tests */

TEST(load_weight_dtypes) {
    NEED_GPU();
    size_t n = 1037;
    float *f = h_alloc(n * 4);
    for (size_t i = 0; i < n; i++) f[i] = urand(-3.f, 3.f); /* not pre-rounded: checks rounding */
    void *d = g_alloc(n * 2);
    G->load_weight(G, d, f, OP_F32, n);
    float *got = g_read_bf16(d, n), *want = h_alloc(n * 4);
    for (size_t i = 0; i < n; i++) want[i] = bf16_round(f[i]);
    close_to("load_weight F32", got, want, n, 0, 0);
    /* BF16 bits pass through; F16 goes through the CPU decoder for the reference. */
    uint16_t *hb = h_alloc(n * 2), *hh = h_alloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        float v = bf16_round(urand(-100.f, 100.f));
        uint32_t u;
        memcpy(&u, &v, 4);
        hb[i] = (uint16_t)(u >> 16);
        hh[i] = (uint16_t)((irand(2) << 15) | ((1 + irand(29)) << 10) | irand(1024)); /* normal halves */
    }
    G->load_weight(G, d, hb, OP_BF16, n);
    got = g_read_bf16(d, n);
    for (size_t i = 0; i < n; i++) want[i] = bf16_to_f(hb[i]);
    close_to("load_weight BF16", got, want, n, 0, 0);
    G->load_weight(G, d, hh, OP_F16, n);
    got = g_read_bf16(d, n);
    float *cref = h_alloc(n * 4);
    C->load_weight(C, cref, hh, OP_F16, n);
    for (size_t i = 0; i < n; i++) want[i] = bf16_round(cref[i]);
    close_to("load_weight F16", got, want, n, 0, 0);
    EXPECT(G->mem_free(G) > (size_t)1 << 20);
    release_all();
}

static void check_embed(int V, int D, int T) {
    float *tab = rvec((size_t)V * D, -1, 1);
    int32_t *ids = h_alloc(T * 4);
    for (int t = 0; t < T; t++) ids[t] = irand(V);
    void *gt = g_bf16(tab, (size_t)V * D), *gi = g_raw(ids, T * 4), *go = g_poison((size_t)T * D * 2);
    void *ct = c_raw(tab, (size_t)V * D * 4), *ci = c_raw(ids, T * 4), *co = c_poison((size_t)T * D * 4);
    G->embed(G, go, gt, gi, T, D);
    C->embed(C, co, ct, ci, T, D);
    close_to("embed", g_read_bf16(go, (size_t)T * D), c_read(co, (size_t)T * D), (size_t)T * D, 0, 0);
}
TEST(embed) {
    NEED_GPU();
    check_embed(1000, 264, 7);
    check_embed(50, 100, 1);
    release_all();
}

static void check_rmsnorm(int T, int D) {
    float *x = rvec((size_t)T * D, -2, 2), *w = rvec(D, 0.5f, 1.5f), *r = rvec((size_t)T * D, -2, 2);
    float eps = 1e-5f;
    size_t n = (size_t)T * D;
    void *gx = g_bf16(x, n), *gw = g_bf16(w, D), *go = g_poison(n * 2);
    void *cx = c_raw(x, n * 4), *cw = c_raw(w, D * 4), *co = c_poison(n * 4);
    G->rmsnorm(G, go, gx, gw, T, D, eps);
    C->rmsnorm(C, co, cx, cw, T, D, eps);
    close_to("rmsnorm", g_read_bf16(go, n), c_read(co, n), n, 1e-2, 1e-2);
    /* in place (out aliases x) */
    G->rmsnorm(G, gx, gx, gw, T, D, eps);
    close_to("rmsnorm in place", g_read_bf16(gx, n), c_read(co, n), n, 1e-2, 1e-2);
    /* fused residual add: checks the updated residual and the normalised output */
    void *gr = g_bf16(r, n), *gx2 = g_bf16(x, n), *go2 = g_poison(n * 2);
    void *cr = c_raw(r, n * 4), *co2 = c_poison(n * 4);
    G->add_rmsnorm(G, gr, gx2, go2, gw, T, D, eps);
    C->add_rmsnorm(C, cr, cx, co2, cw, T, D, eps);
    close_to("add_rmsnorm resid", g_read_bf16(gr, n), c_read(cr, n), n, 1e-2, 1e-2);
    close_to("add_rmsnorm out", g_read_bf16(go2, n), c_read(co2, n), n, 2e-2, 2e-2);
}
TEST(rmsnorm) {
    NEED_GPU();
    check_rmsnorm(5, 2048);
    check_rmsnorm(1, 100);
    check_rmsnorm(3, 8200); /* vector path, several chunks per thread */
    check_rmsnorm(2, 16392); /* beyond the register-resident vector path: scalar two-pass */
    check_rmsnorm(2, 24);
    release_all();
}

static void check_matmul(int T, int K, int N, int acc) {
    float s = 1.0f / sqrtf((float)K);
    float *x = rvec((size_t)T * K, -1, 1), *w = rvec((size_t)N * K, -s * 1.7f, s * 1.7f), *y0 = rvec((size_t)T * N, -1, 1);
    size_t ny = (size_t)T * N;
    void *gx = g_bf16(x, (size_t)T * K), *gw = g_bf16(w, (size_t)N * K);
    void *cx = c_raw(x, (size_t)T * K * 4), *cw = c_raw(w, (size_t)N * K * 4);
    void *gy = acc ? g_bf16(y0, ny) : g_poison(ny * 2), *cy = acc ? c_raw(y0, ny * 4) : c_poison(ny * 4);
    G->matmul(G, gy, gx, gw, T, K, N, acc);
    C->matmul(C, cy, cx, cw, T, K, N, acc);
    char what[96];
    snprintf(what, sizeof what, "matmul T=%d K=%d N=%d acc=%d", T, K, N, acc);
    float *ref = c_read(cy, ny);
    close_to(what, g_read_bf16(gy, ny), ref, ny, 2e-2, 1e-2);
    if (!acc) {
        void *gf = g_poison(ny * 4);
        G->matmul_f32out(G, gf, gx, gw, T, K, N);
        snprintf(what, sizeof what, "matmul_f32out T=%d K=%d N=%d", T, K, N);
        close_to(what, g_read_f32(gf, ny), ref, ny, 2e-3, 2e-3);
    }
}
TEST(matmul) {
    NEED_GPU();
    check_matmul(1, 64, 128, 0);
    check_matmul(7, 257, 300, 0);
    check_matmul(7, 257, 300, 1);
    check_matmul(64, 2048, 512, 0);
    check_matmul(33, 512, 1000, 1);
    check_matmul(130, 96, 8, 0);
    release_all();
}

TEST(swiglu_add) {
    NEED_GPU();
    int shapes[3][2] = {{3, 100}, {4, 256}, {1, 8192}};
    for (int k = 0; k < 3; k++) {
        int T = shapes[k][0], F = shapes[k][1];
        size_t n = (size_t)T * F;
        float *gu = rvec(2 * n, -4, 4);
        void *g_gu = g_bf16(gu, 2 * n), *go = g_poison(n * 2);
        void *c_gu = c_raw(gu, 2 * n * 4), *co = c_poison(n * 4);
        G->swiglu(G, go, g_gu, T, F);
        C->swiglu(C, co, c_gu, T, F);
        close_to("swiglu", g_read_bf16(go, n), c_read(co, n), n, 1e-2, 1e-2);
    }
    size_t ns[2] = {1001, 4096};
    for (int k = 0; k < 2; k++) {
        size_t n = ns[k];
        float *y = rvec(n, -2, 2), *x = rvec(n, -2, 2);
        void *gy = g_bf16(y, n), *gx = g_bf16(x, n), *cy = c_raw(y, n * 4), *cx = c_raw(x, n * 4);
        G->add(G, gy, gx, n);
        C->add(C, cy, cx, n);
        close_to("add", g_read_bf16(gy, n), c_read(cy, n), n, 1e-2, 1e-2);
    }
    release_all();
}


/* The fused q|k|v step: tokens of n_seq sequences (len[s] each) written at their page slots;
 * every pad_every-th token is padding (slot -1: q_out written, caches untouched). Untouched
 * cache slots must keep their values (the caches start random), and so must a guard region in
 * front of each cache (where a padding token stored at slot -1 would land). misalign: qkv
 * starts one element past a 16-byte boundary (forces the scalar path). */
static void check_qkv(int n_seq, const int *len, int Hq, int Hkv, int hd, int rot, int page_size, int pad_every,
                      int misalign) {
    kv_fixture f = {.n_seq = n_seq, .page_size = page_size, .Hkv = Hkv, .hd = hd};
    kv_layout(&f, len);
    int T = 0;
    for (int s = 0; s < n_seq; s++) T += len[s];
    int32_t *slot = h_alloc(T * 4), *pos = h_alloc(T * 4);
    int t = 0, n_pad = 0;
    for (int s = 0; s < n_seq; s++)
        for (int j = 0; j < len[s]; j++, t++) {
            slot[t] = f.bt[s * f.max_pages + j / f.page_size] * f.page_size + j % f.page_size;
            pos[t] = irand(9000);
            if (pad_every && t % pad_every == pad_every - 1) { slot[t] = -1; n_pad++; }
        }
    pos[T - 1] = 131071; /* a large angle (1.3e5 rad at inv_freq 1) */
    size_t W = (size_t)(Hq + 2 * Hkv) * hd, nqkv = (size_t)T * W, nq = (size_t)T * Hq * hd, nc = f.cache_elems;
    float *qkv = rvec(nqkv + 1, -1, 1); /* one spare element in front for the misaligned case */
    float *inv = NULL;
    if (rot) {
        inv = h_alloc(rot / 2 * 4);
        for (int i = 0; i < rot / 2; i++) inv[i] = powf(500000.f, -2.f * i / rot);
    }
    size_t guard = ((size_t)Hkv * hd + 7) / 8 * 8, ncg = guard + nc; /* keeps the caches 16-byte aligned */
    float *base = rvec(ncg, -1, 1);
    void *gbuf = g_bf16(qkv, nqkv + 1), *gqkv = g_at(gbuf, misalign ? 1 : 0);
    void *go = g_poison(nq * 2), *gkb = g_bf16(base, ncg), *gvb = g_bf16(base, ncg);
    void *gkc = g_at(gkb, guard), *gvc = g_at(gvb, guard);
    void *gp = g_raw(pos, T * 4), *gs = g_raw(slot, T * 4), *gi = rot ? g_raw(inv, rot / 2 * 4) : NULL;
    void *cqkv = c_raw(qkv + (misalign ? 1 : 0), nqkv * 4), *co = c_poison(nq * 4);
    void *ckb = c_raw(base, ncg * 4), *cvb = c_raw(base, ncg * 4), *ckc = c_at(ckb, guard), *cvc = c_at(cvb, guard);
    void *cp = c_raw(pos, T * 4), *cs = c_raw(slot, T * 4), *ci = rot ? c_raw(inv, rot / 2 * 4) : NULL;
    G->qkv_rope_write(G, go, gqkv, gp, gi, gkc, gvc, gs, T, Hq, Hkv, hd, rot);
    C->qkv_rope_write(C, co, cqkv, cp, ci, ckc, cvc, cs, T, Hq, Hkv, hd, rot);
    /* rotated values: bf16 output of an fp32 rotation; without rotation everything is a copy */
    double atol = rot ? 1.5e-2 : 0, rtol = rot ? 1e-2 : 0;
    char what[192];
    const char *outs[3] = {"q_out", "K cache (+guard)", "V cache (+guard)"};
    for (int o = 0; o < 3; o++) {
        snprintf(what, sizeof what, "qkv_rope_write %s T=%d Hq=%d Hkv=%d hd=%d rot=%d pad=%d%s", outs[o], T, Hq, Hkv,
                 hd, rot, n_pad, misalign ? " misaligned" : "");
        if (o == 0) close_to(what, g_read_bf16(go, nq), c_read(co, nq), nq, atol, rtol);
        if (o == 1) close_to(what, g_read_bf16(gkb, ncg), c_read(ckb, ncg), ncg, atol, rtol);
        if (o == 2) close_to(what, g_read_bf16(gvb, ncg), c_read(cvb, ncg), ncg, 0, 0);
    }
}
TEST(qkv_rope_write) {
    NEED_GPU();
    int l3[3] = {5, 41, 17}; /* T 63 */
    check_qkv(3, l3, 8, 2, 64, 64, 16, 0, 0);   /* GQA 4, full rotary, prefill */
    check_qkv(3, l3, 4, 4, 64, 32, 16, 7, 0);   /* GQA 1, partial rotary (16-byte path), padding */
    check_qkv(3, l3, 8, 1, 64, 0, 16, 5, 0);    /* GQA 8, rot_dim 0: plain copies */
    check_qkv(3, l3, 6, 2, 36, 24, 8, 4, 0);    /* hd 36, partial rot 24: scalar path, GQA 3 */
    check_qkv(3, l3, 6, 2, 36, 0, 8, 0, 0);     /* scalar path without rotation */
    check_qkv(3, l3, 8, 2, 64, 64, 16, 6, 1);   /* misaligned qkv: scalar path on a vector shape */
    check_qkv(3, l3, 8, 2, 64, 40, 16, 0, 0);   /* rot 40: half 20 not a multiple of 8 -> scalar */
    int ld[7] = {1, 1, 1, 1, 1, 1, 1};
    check_qkv(7, ld, 32, 8, 128, 128, 16, 3, 0); /* decode batch 7, hd 128, two padding rows */
    int l1[1] = {1};
    check_qkv(1, l1, 32, 8, 64, 64, 16, 0, 0);   /* batch 1 */
    release_all();
}

/* Attention: sequences with `ctx[s]` cached tokens of which the last `q_len[s]` are queries. */
static void check_attention(int n_seq, const int *ctx, const int *q_len, int Hq, int Hkv, int hd, int page_size) {
    kv_fixture f = {.n_seq = n_seq, .page_size = page_size, .Hkv = Hkv, .hd = hd};
    kv_layout(&f, ctx);
    int T = 0;
    int32_t *cu = h_alloc((n_seq + 1) * 4);
    for (int s = 0; s < n_seq; s++) { cu[s] = T; T += q_len[s]; }
    cu[n_seq] = T;
    int32_t *pos = h_alloc(T * 4);
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < q_len[s]; i++) pos[cu[s] + i] = ctx[s] - q_len[s] + i;
    size_t nq = (size_t)T * Hq * hd;
    float *q = rvec(nq, -1, 1), *kc = rvec(f.cache_elems, -1, 1), *vc = rvec(f.cache_elems, -1, 1);
    float scale = 1.0f / sqrtf((float)hd) * 2.0f; /* sharper than usual: exercises the softmax */
    size_t nbt = (size_t)n_seq * f.max_pages;
    void *gq = g_bf16(q, nq), *gk = g_bf16(kc, f.cache_elems), *gv = g_bf16(vc, f.cache_elems);
    void *gbt = g_raw(f.bt, nbt * 4), *gcu = g_raw(cu, (n_seq + 1) * 4), *gp = g_raw(pos, T * 4), *go = g_poison(nq * 2);
    void *cq = c_raw(q, nq * 4), *ck = c_raw(kc, f.cache_elems * 4), *cv = c_raw(vc, f.cache_elems * 4);
    void *cbt = c_raw(f.bt, nbt * 4), *ccu = c_raw(cu, (n_seq + 1) * 4), *cp = c_raw(pos, T * 4), *co = c_poison(nq * 4);
    G->attention(G, go, gq, gk, gv, gbt, f.max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, page_size, scale);
    C->attention(C, co, cq, ck, cv, cbt, f.max_pages, ccu, cp, n_seq, T, Hq, Hkv, hd, page_size, scale);
    char what[128];
    snprintf(what, sizeof what, "attention n_seq=%d T=%d Hq=%d Hkv=%d hd=%d ctx0=%d", n_seq, T, Hq, Hkv, hd, ctx[0]);
    close_to(what, g_read_bf16(go, nq), c_read(co, nq), nq, 1e-2, 2e-2);
    if (T == n_seq) {
        /* again: the split-K decode's last split merges through per-(sequence, kv head) counters
         * that each launch must leave at zero, or the next launch would merge too early or never */
        void *go2 = g_poison(nq * 2);
        G->attention(G, go2, gq, gk, gv, gbt, f.max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, page_size, scale);
        snprintf(what, sizeof what, "attention (second launch) n_seq=%d Hq=%d Hkv=%d hd=%d ctx0=%d", n_seq, Hq, Hkv,
                 hd, ctx[0]);
        close_to(what, g_read_bf16(go2, nq), c_read(co, nq), nq, 1e-2, 2e-2);
    }
}
TEST(attention_decode) {
    NEED_GPU();
    int ones[4] = {1, 1, 1, 1};
    int c1[1] = {1};
    check_attention(1, c1, ones, 8, 8, 64, 16);              /* first token, MHA */
    int c3[3] = {37, 1000, 129};
    check_attention(3, c3, ones, 8, 4, 64, 16);               /* GQA 2 */
    int c2[2] = {3000, 65};
    check_attention(2, c2, ones, 32, 8, 64, 16);              /* GQA 4, long: split-K */
    int c4[4] = {200, 7, 513, 64};
    check_attention(4, c4, ones, 16, 2, 128, 32);             /* GQA 8, hd 128 */
    check_attention(2, c2, ones, 4, 4, 32, 64);               /* hd 32, GQA 1 */
    int c5[1] = {4100};
    check_attention(1, c5, ones, 32, 2, 64, 16);              /* GQA 16, batch 1 */
    release_all();
}
TEST(attention_prefill) {
    NEED_GPU();
    int c1[1] = {77}, q1[1] = {77};
    check_attention(1, c1, q1, 8, 2, 64, 16);                 /* plain prompt */
    int c3[3] = {40, 300, 5}, q3[3] = {40, 100, 5};           /* continued prefill + short */
    check_attention(3, c3, q3, 32, 8, 64, 16);
    int c2[2] = {129, 33}, q2[2] = {129, 1};                  /* mixed: one decode token */
    check_attention(2, c2, q2, 16, 2, 128, 32);
    check_attention(2, c2, q2, 4, 4, 32, 16);
    release_all();
}

/* x_ld > C: x is the column block [x_off, x_off + C) of a [T, x_ld] matrix of garbage. */
static void check_conv1d(int n_seq, const int *len, int C_, int K, int with_bias, int x_ld, int x_off) {
    int T = 0;
    int32_t *cu = h_alloc((n_seq + 1) * 4), *slots = h_alloc(n_seq * 4);
    for (int s = 0; s < n_seq; s++) { cu[s] = T; T += len[s]; slots[s] = n_seq - 1 - s + 1; }
    cu[n_seq] = T;
    int n_slots = n_seq + 2;
    size_t nx = (size_t)T * C_, nw = (size_t)T * x_ld, ns = (size_t)n_slots * C_ * (K - 1);
    float *x = rvec(nx, -2, 2), *w = rvec((size_t)C_ * K, -1, 1), *b = rvec(C_, -0.5f, 0.5f), *st = rvec(ns, -2, 2);
    float *xw = wide_new(T, x_ld);
    wide_put(xw, x_ld, x_off, x, T, C_);
    void *gx = g_at(g_bf16(xw, nw), x_off), *gw = g_bf16(w, (size_t)C_ * K), *gb = with_bias ? g_bf16(b, C_) : NULL;
    void *gst = g_raw(st, ns * 4), *gcu = g_raw(cu, (n_seq + 1) * 4), *gsl = g_raw(slots, n_seq * 4), *go = g_poison(nx * 2);
    void *cx = c_raw(x, nx * 4), *cw = c_raw(w, (size_t)C_ * K * 4), *cb = with_bias ? c_raw(b, C_ * 4) : NULL;
    void *cst = c_raw(st, ns * 4), *ccu = c_raw(cu, (n_seq + 1) * 4), *csl = c_raw(slots, n_seq * 4), *co = c_poison(nx * 4);
    G->conv1d(G, go, gx, x_ld, gw, gb, gst, gcu, gsl, n_seq, T, C_, K);
    C->conv1d(C, co, cx, C_, cw, cb, cst, ccu, csl, n_seq, T, C_, K); /* reference: compact x */
    char what[128];
    snprintf(what, sizeof what, "conv1d out T=%d C=%d K=%d x_ld=%d x_off=%d", T, C_, K, x_ld, x_off);
    float *ref = c_read(co, nx), *ref_st = c_read(cst, ns);
    close_to(what, g_read_bf16(go, nx), ref, nx, 1e-2, 1e-2);
    close_to("conv1d state", g_read_f32(gst, ns), ref_st, ns, 1e-6, 1e-6);
    if (x_ld != C_) { /* the CPU backend on the same wide matrix */
        void *cxw = c_raw(xw, nw * 4), *cst2 = c_raw(st, ns * 4), *co2 = c_poison(nx * 4);
        C->conv1d(C, co2, c_at(cxw, x_off), x_ld, cw, cb, cst2, ccu, csl, n_seq, T, C_, K);
        close_to("conv1d cpu wide vs compact", c_read(co2, nx), ref, nx, 1e-5, 1e-5);
        close_to("conv1d cpu wide state", c_read(cst2, ns), ref_st, ns, 0, 0);
    }
}
TEST(conv1d) {
    NEED_GPU();
    int l3[3] = {1, 5, 17};
    check_conv1d(3, l3, 100, 4, 1, 100, 0);
    check_conv1d(3, l3, 100, 4, 1, 124, 0);     /* strided */
    int l1[1] = {2};
    check_conv1d(1, l1, 300, 4, 0, 324, 5);     /* shorter than the window: state shifts; odd column offset */
    int ld[5] = {1, 1, 1, 1, 1};
    check_conv1d(5, ld, 2304, 4, 1, 2304, 0);   /* decode */
    check_conv1d(5, ld, 384, 4, 1, 648, 256);   /* decode, the x|B|C block of a fused in_proj row */
    check_conv1d(3, l3, 64, 2, 1, 88, 24);
    release_all();
}

/* strided: x, B, C are column blocks of a [T, xbc_ld] matrix (x | gap | B | gap | C | pad, gaps
 * and pad of garbage) and dt a column block of a [T, dt_ld] matrix; otherwise compact
 * (x | B | C packed, xbc_ld = HP + 2GN; dt_ld = H). The reference is always the compact layout. */
static void check_ssd_state(int n_seq, const int *len, int H, int P, int G_, int N, int chunk, int bf16state,
                            int strided) {
    int T = 0;
    int32_t *cu = h_alloc((n_seq + 1) * 4), *slots = h_alloc(n_seq * 4);
    for (int s = 0; s < n_seq; s++) { cu[s] = T; T += len[s]; slots[s] = n_seq - s; } /* distinct, not in order */
    cu[n_seq] = T;
    int n_slots = n_seq + 1;
    int HP = H * P, GN = G_ * N;
    size_t nx = (size_t)T * HP, nbc = (size_t)T * GN, ns = (size_t)n_slots * H * P * N;
    float *x = rvec(nx, -1, 1), *dt = rvec((size_t)T * H, -4, 1), *B = rvec(nbc, -1, 1), *Cm = rvec(nbc, -1, 1);
    float *Alog = rvec(H, -1, 1.5f), *D = rvec(H, -1, 1), *dtb = rvec(H, -1, 1), *st = rvec(ns, -0.5f, 0.5f);
    float dt_min = 0.0f, dt_max = INFINITY;
    /* compact (reference) layout */
    int cld = HP + 2 * GN;
    float *xbc = wide_new(T, cld);
    wide_put(xbc, cld, 0, x, T, HP);
    wide_put(xbc, cld, HP, B, T, GN);
    wide_put(xbc, cld, HP + GN, Cm, T, GN);
    /* device layout */
    int gap = strided ? 3 : 0, xo = strided ? 2 : 0;
    int bo = xo + HP + gap, co_ = bo + GN + gap, xbc_ld = co_ + GN + (strided ? 24 : 0);
    int dt_off = strided ? 5 : 0, dt_ld = strided ? H + 24 : H;
    float *xbw = wide_new(T, xbc_ld), *dtw = wide_new(T, dt_ld);
    wide_put(xbw, xbc_ld, xo, x, T, HP);
    wide_put(xbw, xbc_ld, bo, B, T, GN);
    wide_put(xbw, xbc_ld, co_, Cm, T, GN);
    wide_put(dtw, dt_ld, dt_off, dt, T, H);
    void *gxbc = g_bf16(xbw, (size_t)T * xbc_ld), *gdtw = g_bf16(dtw, (size_t)T * dt_ld);
    void *gx = g_at(gxbc, xo), *gB = g_at(gxbc, bo), *gC = g_at(gxbc, co_), *gdt = g_at(gdtw, dt_off);
    void *gA = g_raw(Alog, H * 4), *gD = g_raw(D, H * 4), *gdb = g_raw(dtb, H * 4);
    void *gst = bf16state ? g_bf16(st, ns) : g_raw(st, ns * 4);
    void *gcu = g_raw(cu, (n_seq + 1) * 4), *gsl = g_raw(slots, n_seq * 4), *gy = g_poison(nx * 2);
    void *cxbc = c_raw(xbc, (size_t)T * cld * 4), *cdt = c_raw(dt, (size_t)T * H * 4);
    void *cx = cxbc, *cB = c_at(cxbc, HP), *cC = c_at(cxbc, HP + GN);
    void *cA = c_raw(Alog, H * 4), *cD = c_raw(D, H * 4), *cdb = c_raw(dtb, H * 4), *cst = c_raw(st, ns * 4);
    void *ccu = c_raw(cu, (n_seq + 1) * 4), *csl = c_raw(slots, n_seq * 4), *cy = c_poison(nx * 4);
    if (bf16state)
        op_cuda_ssd_scan_bf16state(G, gy, gx, gdt, gA, gB, gC, gD, gdb, gst, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_,
                                   N, dt_min, dt_max);
    else
        G->ssd_scan(G, gy, gx, gdt, gA, gB, gC, gD, gdb, gst, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk,
                    dt_min, dt_max);
    C->ssd_scan(C, cy, cx, cdt, cA, cB, cC, cD, cdb, cst, ccu, csl, n_seq, T, cld, H, H, P, G_, N, chunk, dt_min,
                dt_max);
    char what[160];
    snprintf(what, sizeof what, "ssd_scan%s y n_seq=%d T=%d H=%d P=%d G=%d N=%d xbc_ld=%d dt_ld=%d",
             bf16state ? " (bf16 state)" : "", n_seq, T, H, P, G_, N, xbc_ld, dt_ld);
    float *ref = c_read(cy, nx), *ref_st = c_read(cst, ns);
    close_to(what, g_read_bf16(gy, nx), ref, nx, 2e-2, 2e-2);
    snprintf(what, sizeof what, "ssd_scan%s state n_seq=%d T=%d N=%d", bf16state ? " (bf16 state)" : "", n_seq, T, N);
    if (bf16state) close_to(what, g_read_bf16(gst, ns), ref_st, ns, 1e-2, 1e-2);
    else close_to(what, g_read_f32(gst, ns), ref_st, ns, 1e-3, 1e-3);
    if (strided && !bf16state) { /* the CPU backend on the same wide matrices */
        void *cxw = c_raw(xbw, (size_t)T * xbc_ld * 4), *cdw = c_raw(dtw, (size_t)T * dt_ld * 4);
        void *cst2 = c_raw(st, ns * 4), *cy2 = c_poison(nx * 4);
        C->ssd_scan(C, cy2, c_at(cxw, xo), c_at(cdw, dt_off), cA, c_at(cxw, bo), c_at(cxw, co_), cD, cdb, cst2, ccu, csl,
                    n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk, dt_min, dt_max);
        close_to("ssd_scan cpu wide vs compact y", c_read(cy2, nx), ref, nx, 1e-4, 1e-4);
        close_to("ssd_scan cpu wide vs compact state", c_read(cst2, ns), ref_st, ns, 1e-4, 1e-4);
    }
}
static void check_ssd(int n_seq, const int *len, int H, int P, int G_, int N, int chunk, int strided) {
    check_ssd_state(n_seq, len, H, P, G_, N, chunk, 0, strided);
}
TEST(ssd_scan) {
    NEED_GPU();
    int l3[3] = {1, 37, 130};
    check_ssd(3, l3, 4, 16, 2, 16, 32, 0);   /* prefill, chunk does not divide */
    check_ssd(3, l3, 4, 16, 2, 16, 32, 1);   /* the same, strided */
    check_ssd(3, l3, 8, 64, 1, 64, 128, 1);  /* Llamba-like head, N 64 */
    check_ssd(3, l3, 4, 16, 4, 24, 16, 1);   /* generic path (N 24) */
    int ld[6] = {1, 1, 1, 1, 1, 1};
    check_ssd(6, ld, 32, 64, 1, 64, 128, 0); /* decode */
    check_ssd(6, ld, 32, 64, 1, 64, 128, 1); /* decode, strided */
    check_ssd(6, ld, 4, 8, 2, 128, 64, 1);   /* decode, N 128 */
    int l1[1] = {301};
    check_ssd(1, l1, 2, 30, 1, 8, 64, 1);    /* batch 1, odd T, P not a multiple of the row block */
    check_ssd_state(6, ld, 32, 64, 1, 64, 128, 1, 0); /* the bf16-state option: decode */
    check_ssd_state(6, ld, 32, 64, 1, 64, 128, 1, 1); /* strided */
    int l2[2] = {1, 20};
    check_ssd_state(2, l2, 4, 16, 2, 16, 8, 1, 1);    /* and a short prefill */
    release_all();
}

/* z_ld > D: z is the column block [z_off, z_off + D) of a [T, z_ld] matrix of garbage. */
static void check_gated(int T, int D, int gs, int z_ld, int z_off) {
    size_t n = (size_t)T * D, nzw = (size_t)T * z_ld;
    float *y = rvec(n, -2, 2), *z = rvec(n, -3, 3), *w = rvec(D, 0.5f, 1.5f);
    float *zw = wide_new(T, z_ld);
    wide_put(zw, z_ld, z_off, z, T, D);
    void *gy = g_bf16(y, n), *gz = g_at(g_bf16(zw, nzw), z_off), *gw = g_bf16(w, D), *go = g_poison(n * 2);
    void *cy = c_raw(y, n * 4), *cz = c_raw(z, n * 4), *cw = c_raw(w, D * 4), *co = c_poison(n * 4);
    G->gated_rmsnorm(G, go, gy, gz, z_ld, gw, T, D, gs, 1e-6f);
    C->gated_rmsnorm(C, co, cy, cz, D, cw, T, D, gs, 1e-6f); /* reference: compact z */
    char what[128];
    snprintf(what, sizeof what, "gated_rmsnorm T=%d D=%d gs=%d z_ld=%d z_off=%d", T, D, gs, z_ld, z_off);
    float *ref = c_read(co, n);
    close_to(what, g_read_bf16(go, n), ref, n, 1.5e-2, 1.5e-2);
    if (z_ld != D) {
        void *czw = c_raw(zw, nzw * 4), *co2 = c_poison(n * 4);
        C->gated_rmsnorm(C, co2, cy, c_at(czw, z_off), z_ld, cw, T, D, gs, 1e-6f);
        close_to("gated_rmsnorm cpu wide vs compact", c_read(co2, n), ref, n, 1e-5, 1e-5);
    }
}
/* The inputs of one fused decode call: one fused in_proj row per sequence (z | x B C | dt | pad,
 * all random), reversed slots, non-zero conv and SSM states (the SSM state uploaded as fp32 or
 * bf16), poisoned y; host arrays and their device copies. */
typedef struct csd_case {
    int T, HP, GN, Cd, in_w;
    size_t ncs, nss, ny;
    int32_t *cu, *slots;
    float *row, *w, *cb, *cst, *sst, *Alog, *D, *dtb;
    void *grow, *gw, *gcb, *gA, *gD, *gdb, *gcu, *gsl, *gcst, *gsst, *gy;
} csd_case;
static csd_case csd_new(int n_seq, int H, int P, int G_, int N, int K, int state_bf16) {
    csd_case c;
    c.T = n_seq;
    c.HP = H * P;
    c.GN = G_ * N;
    c.Cd = c.HP + 2 * c.GN;
    c.in_w = c.HP + c.Cd + H + 8;
    c.cu = h_alloc((n_seq + 1) * 4);
    c.slots = h_alloc(n_seq * 4);
    for (int s = 0; s <= n_seq; s++) c.cu[s] = s;
    for (int s = 0; s < n_seq; s++) c.slots[s] = n_seq - s; /* distinct, reversed */
    const int n_slots = n_seq + 1;
    c.ncs = (size_t)n_slots * c.Cd * (K - 1);
    c.nss = (size_t)n_slots * H * P * N;
    c.ny = (size_t)c.T * c.HP;
    c.row = rvec((size_t)c.T * c.in_w, -2, 2);
    c.w = rvec((size_t)c.Cd * K, -1, 1);
    c.cb = rvec(c.Cd, -0.5f, 0.5f);
    c.cst = rvec(c.ncs, -2, 2);
    c.sst = rvec(c.nss, -0.5f, 0.5f);
    c.Alog = rvec(H, -1, 1.5f);
    c.D = rvec(H, -1, 1);
    c.dtb = rvec(H, -1, 1);
    c.grow = g_bf16(c.row, (size_t)c.T * c.in_w);
    c.gw = g_bf16(c.w, (size_t)c.Cd * K);
    c.gcb = g_bf16(c.cb, c.Cd);
    c.gA = g_raw(c.Alog, H * 4);
    c.gD = g_raw(c.D, H * 4);
    c.gdb = g_raw(c.dtb, H * 4);
    c.gcu = g_raw(c.cu, (n_seq + 1) * 4);
    c.gsl = g_raw(c.slots, n_seq * 4);
    c.gcst = g_raw(c.cst, c.ncs * 4);
    c.gsst = state_bf16 ? g_bf16(c.sst, c.nss) : g_raw(c.sst, c.nss * 4);
    c.gy = g_poison(c.ny * 2);
    return c;
}

/* The fused decode conv1d + scan (op conv_ssd_decode) on one fused in_proj row per sequence
 * (z | x B C | dt | pad, all random), scrambled slots, non-zero conv and SSM states, poisoned y:
 * against the CPU conv1d then ssd_scan, the CPU conv output rounded to bf16 in between as the
 * device stores it (unrounded, the SSM state differs by up to ~1e-2 relative: dt' x B with x, B
 * off by bf16 rounding); and against the separate CUDA
 * ops on copies of the states (same arithmetic: states within 1e-5, y within an ulp of bf16).
 * Shapes it does not take return -1 and leave y poisoned. */
static void check_conv_ssd(int n_seq, int H, int P, int G_, int N, int K, int takes) {
    csd_case c = csd_new(n_seq, H, P, G_, N, K, 0);
    const int T = c.T, HP = c.HP, GN = c.GN, Cd = c.Cd, in_w = c.in_w;
    const size_t ncs = c.ncs, nss = c.nss, ny = c.ny;
    int32_t *cu = c.cu, *slots = c.slots;
    float *row = c.row, *w = c.w, *cb = c.cb, *cst = c.cst, *sst = c.sst, *Alog = c.Alog, *D = c.D, *dtb = c.dtb;
    void *grow = c.grow, *gw = c.gw, *gcb = c.gcb, *gA = c.gA, *gD = c.gD, *gdb = c.gdb, *gcu = c.gcu, *gsl = c.gsl;
    void *gcst = c.gcst, *gsst = c.gsst, *gy = c.gy;
    char what[160];
    snprintf(what, sizeof what, "conv_ssd_decode n_seq=%d H=%d P=%d G=%d N=%d K=%d", n_seq, H, P, G_, N, K);
    EXPECT_MSG(G->conv_ssd_decode != NULL, "the CUDA backend has no conv_ssd_decode (THINKFAST_CONV_SSD=0?)");
    if (!G->conv_ssd_decode) return;
    int rc = G->conv_ssd_decode(G, gy, g_at(grow, HP), in_w, gw, gcb, gcst, g_at(grow, HP + Cd), in_w, gA, gD, gdb,
                                gsst, gcu, gsl, n_seq, Cd, K, H, P, G_, N, 0.0f, INFINITY);
    if (!takes) { /* declined: nothing written */
        EXPECT_MSG(rc == -1, "%s: expected -1 (a shape it does not take), got %d", what, rc);
        float *y = g_read_bf16(gy, ny);
        size_t written = 0;
        for (size_t i = 0; i < ny; i++) written += !isnan(y[i]);
        EXPECT_MSG(written == 0, "%s: declined but wrote %zu elements of y", what, written);
        return;
    }
    EXPECT_MSG(rc == 0, "%s: returned %d", what, rc);
    /* CPU reference: conv1d into a compact x|B|C buffer, then the scan over its column blocks */
    void *crow = c_raw(row, (size_t)T * in_w * 4), *cw = c_raw(w, (size_t)Cd * K * 4), *ccb = c_raw(cb, Cd * 4);
    void *cA = c_raw(Alog, H * 4), *cD = c_raw(D, H * 4), *cdb = c_raw(dtb, H * 4);
    void *ccu = c_raw(cu, (n_seq + 1) * 4), *csl = c_raw(slots, n_seq * 4);
    void *ccst = c_raw(cst, ncs * 4), *csst = c_raw(sst, nss * 4), *cxbc = c_poison((size_t)T * Cd * 4);
    void *cy = c_poison(ny * 4);
    C->conv1d(C, cxbc, c_at(crow, HP), in_w, cw, ccb, ccst, ccu, csl, n_seq, T, Cd, K);
    float *conv_out = c_read(cxbc, (size_t)T * Cd);
    for (size_t i = 0; i < (size_t)T * Cd; i++) conv_out[i] = bf16_round(conv_out[i]);
    C->upload(C, cxbc, conv_out, (size_t)T * Cd * 4);
    C->ssd_scan(C, cy, cxbc, c_at(crow, HP + Cd), cA, c_at(cxbc, HP), c_at(cxbc, HP + GN), cD, cdb, csst, ccu, csl,
                n_seq, T, Cd, in_w, H, P, G_, N, 128, 0.0f, INFINITY);
    float *y = g_read_bf16(gy, ny), *gconv = g_read_f32(gcst, ncs), *gssm = g_read_f32(gsst, nss);
    close_to(what, y, c_read(cy, ny), ny, 2e-2, 2e-2);
    close_to("conv_ssd_decode conv state vs cpu", gconv, c_read(ccst, ncs), ncs, 1e-6, 1e-6);
    /* 1e-2 relative: the device's __expf in SiLU may round a conv output to the neighbouring bf16
     * value (a few per call), which moves the states it feeds by ~4e-3 relative; a wrong channel
     * or tap is off by O(1) */
    close_to("conv_ssd_decode ssm state vs cpu", gssm, c_read(csst, nss), nss, 1e-3, 1e-2);
    /* the separate CUDA ops on fresh copies of the initial states */
    void *gcst2 = g_raw(cst, ncs * 4), *gsst2 = g_raw(sst, nss * 4), *gxbc = g_poison((size_t)T * Cd * 2);
    void *gy2 = g_poison(ny * 2);
    G->conv1d(G, gxbc, g_at(grow, HP), in_w, gw, gcb, gcst2, gcu, gsl, n_seq, T, Cd, K);
    G->ssd_scan(G, gy2, gxbc, g_at(grow, HP + Cd), gA, g_at(gxbc, HP), g_at(gxbc, HP + GN), gD, gdb, gsst2, gcu, gsl,
                n_seq, T, Cd, in_w, H, P, G_, N, 128, 0.0f, INFINITY);
    close_to("conv_ssd_decode y vs separate cuda ops", y, g_read_bf16(gy2, ny), ny, 1e-3, 8e-3);
    close_to("conv_ssd_decode conv state vs separate", gconv, g_read_f32(gcst2, ncs), ncs, 0, 0);
    close_to("conv_ssd_decode ssm state vs separate", gssm, g_read_f32(gsst2, nss), nss, 1e-5, 1e-5);
}
/* The bf16-state option of the fused kernel (op_cuda_conv_ssd_decode_bf16state) against the
 * separate CUDA conv1d + op_cuda_ssd_scan_bf16state on copies of the same states: the same
 * arithmetic with the state rounded to bf16 once, so y within fp32 reassociation, the conv state
 * exactly and the bf16 state within one bf16 step (8e-3 relative). */
static void check_conv_ssd_bf16(int n_seq, int H, int P, int N, int K) {
    csd_case c = csd_new(n_seq, H, P, H, N, K, 1);
    const int T = c.T, HP = c.HP, GN = c.GN, Cd = c.Cd, in_w = c.in_w;
    const size_t ncs = c.ncs, nss = c.nss, ny = c.ny;
    void *grow = c.grow, *gw = c.gw, *gcb = c.gcb, *gA = c.gA, *gD = c.gD, *gdb = c.gdb, *gcu = c.gcu, *gsl = c.gsl;
    void *gcst = c.gcst, *gsst = c.gsst, *gy = c.gy;
    char what[160];
    snprintf(what, sizeof what, "conv_ssd_decode bf16 state n_seq=%d H=%d P=%d N=%d K=%d", n_seq, H, P, N, K);
    int rc = op_cuda_conv_ssd_decode_bf16state(G, gy, g_at(grow, HP), in_w, gw, gcb, gcst, g_at(grow, HP + Cd), in_w,
                                               gA, gD, gdb, gsst, gcu, gsl, n_seq, Cd, K, H, P, H, N, 0.0f, INFINITY);
    EXPECT_MSG(rc == 0, "%s: returned %d", what, rc);
    if (rc != 0) return;
    void *gcst2 = g_raw(c.cst, ncs * 4), *gsst2 = g_bf16(c.sst, nss), *gxbc = g_poison((size_t)T * Cd * 2);
    void *gy2 = g_poison(ny * 2);
    G->conv1d(G, gxbc, g_at(grow, HP), in_w, gw, gcb, gcst2, gcu, gsl, n_seq, T, Cd, K);
    op_cuda_ssd_scan_bf16state(G, gy2, gxbc, g_at(grow, HP + Cd), gA, g_at(gxbc, HP),
                               g_at(gxbc, HP + GN), gD, gdb, gsst2, gcu, gsl, n_seq, T, Cd, in_w, H, P, H, N, 0.0f,
                               INFINITY);
    close_to(what, g_read_bf16(gy, ny), g_read_bf16(gy2, ny), ny, 1e-3, 8e-3);
    close_to("conv_ssd_decode bf16: conv state vs separate", g_read_f32(gcst, ncs), g_read_f32(gcst2, ncs), ncs, 0, 0);
    close_to("conv_ssd_decode bf16: ssm state vs separate", g_read_bf16(gsst, nss), g_read_bf16(gsst2, nss), nss, 1e-5,
             8e-3);
}
TEST(conv_ssd_decode) {
    NEED_GPU();
    check_conv_ssd(5, 32, 64, 32, 64, 4, 1);  /* Llamba-1B mixer: 32 heads, head_dim 64, d_state 64 */
    check_conv_ssd(1, 4, 16, 4, 16, 4, 1);    /* batch 1, small head: 4 rows per thread */
    check_conv_ssd(37, 8, 32, 8, 128, 3, 1);  /* N 128 (32 threads a row), odd batch, K 3: plain conv loop */
    check_conv_ssd(3, 8, 32, 8, 128, 4, 1);   /* K 4, 288 channels: 256 prefetched, then the plain loop */
    check_conv_ssd(3, 8, 64, 2, 64, 4, 0);    /* grouped B/C: declined */
    check_conv_ssd(2, 4, 200, 4, 64, 4, 0);   /* P 200 > the 64 rows a block covers: declined */
    check_conv_ssd_bf16(5, 32, 64, 64, 4);     /* the bf16-state option, Llamba-1B mixer */
    check_conv_ssd_bf16(37, 8, 32, 128, 3);   /* N 128, K 3 */
    release_all();
}

TEST(gated_rmsnorm) {
    NEED_GPU();
    check_gated(4, 256, 64, 256, 0);
    check_gated(4, 256, 64, 280, 0);      /* strided */
    check_gated(3, 100, 100, 124, 7);     /* odd column offset */
    check_gated(2, 2048, 2048, 2048, 0);
    check_gated(5, 2048, 2048, 4376, 0);  /* z as the first block of a fused in_proj row */
    check_gated(2, 8192, 8192, 8192, 0);  /* vector path, two chunks per thread */
    check_gated(2, 4096, 1024, 4100, 0);  /* z_ld not a multiple of 8: scalar path */
    release_all();
}

static void check_sample(int B, int V, float spread) {
    size_t n = (size_t)B * V;
    float *lg = h_alloc(n * 4);
    for (size_t i = 0; i < n; i++) {
        /* a peaked, realistic-ish distribution: a few strong tokens over a noisy floor */
        float u = urand(0, 1);
        lg[i] = spread * (urand(-1, 1) + (u > 0.995f ? urand(2, 6) : 0.f));
    }
    for (int r = 0; r < B; r++) /* exact ties at the top in some rows */
        if (r % 5 == 4) lg[(size_t)r * V + 17] = lg[(size_t)r * V + 3] = 40.f;
    op_sample_params *p = h_alloc(B * sizeof *p);
    for (int r = 0; r < B; r++) {
        op_sample_params q = {.temperature = 0.6f + 0.1f * (r % 7), .top_p = 1.f, .top_k = 0, .min_p = 0.f,
                              .seed = 1234 + (uint64_t)r * 7919, .problem = (uint32_t)r, .sample = (uint32_t)(r * 3),
                              .step = (uint32_t)(r * 11)};
        switch (r % 8) {
        case 0: q.temperature = 0.f; break;                /* greedy */
        case 1: break;                                      /* temperature only */
        case 2: q.top_k = 1 + r % 40; break;
        case 3: q.top_p = 0.9f; break;
        case 4: q.min_p = 0.05f; break;
        case 5: q.top_k = 50; q.top_p = 0.95f; break;
        case 6: q.top_p = 0.5f; q.min_p = 0.01f; q.top_k = 200; break;
        case 7: q.top_k = 1; break;                         /* greedy through top_k */
        }
        p[r] = q;
    }
    void *gl = g_raw(lg, n * 4), *cl = c_raw(lg, n * 4);
    int32_t *gi = h_alloc(B * 4), *ci = h_alloc(B * 4);
    for (int r = 0; r < B; r++) gi[r] = -7;
    G->sample(G, gi, gl, B, V, p);
    C->sample(C, ci, cl, B, V, p);
    int bad = 0;
    for (int r = 0; r < B; r++)
        if (gi[r] != ci[r]) {
            if (bad < 5)
                printf("  sample V=%d row %d (T %.2f k %d p %.2f min_p %.2f): cuda %d cpu %d\n", V, r, p[r].temperature,
                       p[r].top_k, p[r].top_p, p[r].min_p, gi[r], ci[r]);
            bad++;
        }
    EXPECT_MSG(bad == 0, "sample V=%d: %d of %d rows differ", V, bad, B);
}
TEST(sample) {
    NEED_GPU();
    check_sample(64, 5003, 2.f);
    check_sample(16, 128256, 3.f);
    check_sample(8, 37, 1.f);
    release_all();
}

/* A captured rmsnorm -> matmul -> swiglu chain, replayed on new input contents, must equal the
 * eager run on those contents. */
TEST(graph_replay) {
    NEED_GPU();
    int T = 4, D = 256, F = 128;
    float *x1 = rvec((size_t)T * D, -1, 1), *x2 = rvec((size_t)T * D, -1, 1);
    float *w = rvec(D, 0.5f, 1.5f), *wm = rvec((size_t)2 * F * D, -0.1f, 0.1f);
    void *gx = g_bf16(x1, (size_t)T * D), *gw = g_bf16(w, D), *gm = g_bf16(wm, (size_t)2 * F * D);
    void *gn = g_poison((size_t)T * D * 2), *ggu = g_poison((size_t)T * 2 * F * 2), *go = g_poison((size_t)T * F * 2);
    /* eager on x2 */
    void *gx2 = g_bf16(x2, (size_t)T * D);
    G->rmsnorm(G, gn, gx2, gw, T, D, 1e-5f);
    G->matmul(G, ggu, gn, gm, T, D, 2 * F, 0);
    G->swiglu(G, go, ggu, T, F);
    float *want = g_read_bf16(go, (size_t)T * F);
    char err[256];
    int rc = op_cuda_graph_begin(G, err, sizeof err);
    EXPECT_MSG(rc == 0, "%s", err);
    if (rc) return;
    G->rmsnorm(G, gn, gx, gw, T, D, 1e-5f);
    G->matmul(G, ggu, gn, gm, T, D, 2 * F, 0);
    G->swiglu(G, go, ggu, T, F);
    op_cuda_graph *g = op_cuda_graph_end(G, err, sizeof err);
    EXPECT_MSG(g != NULL, "%s", err);
    if (!g) return;
    G->copy(G, gx, gx2, (size_t)T * D * 2);
    op_cuda_graph_launch(G, g);
    G->sync(G);
    close_to("graph replay", g_read_bf16(go, (size_t)T * F), want, (size_t)T * F, 0, 0);
    double ms = op_cuda_graph_time_ms(G, g, 10);
    EXPECT(ms > 0.0);
    op_cuda_graph_destroy(&g);
    EXPECT(g == NULL);
    release_all();
}

/* Pure arithmetic: runs with or without a device. */
TEST(plan_memory) {
    op_cuda_plan_req r = {.free_bytes = (size_t)10 << 30, .reserve_bytes = (size_t)1 << 30, .page_bytes = 1 << 20,
                          .page_size = 16, .state_bytes = 0, .act_bytes = 0, .max_len = 160, .prompt_len = 32,
                          .samples_per_prompt = 1, .batch_cap = 0};
    op_cuda_plan p;
    char err[256];
    EXPECT_EQ_INT(op_cuda_plan_memory(&r, &p, err, sizeof err), 0);
    EXPECT_EQ_INT(p.pages_per_seq, 10);               /* 160 tokens / 16 */
    EXPECT_EQ_INT(p.max_batch, 9 * 1024 / 10);        /* 9 GiB / 10 MiB */
    EXPECT(p.total_bytes <= (size_t)9 << 30);
    r.samples_per_prompt = 4;                         /* 2 shared prompt pages: 8 + 2/4 per sequence */
    EXPECT_EQ_INT(op_cuda_plan_memory(&r, &p, err, sizeof err), 0);
    EXPECT_EQ_INT(p.max_batch, (int)((9.0 * 1024) / 8.5));
    EXPECT(p.n_pages <= p.max_batch * 8 + (p.max_batch + 3) / 4 * 2);
    r.batch_cap = 100;
    EXPECT_EQ_INT(op_cuda_plan_memory(&r, &p, err, sizeof err), 0);
    EXPECT_EQ_INT(p.max_batch, 100);
    r.state_bytes = (size_t)20 << 30; /* one sequence does not fit */
    EXPECT_EQ_INT(op_cuda_plan_memory(&r, &p, err, sizeof err), -1);
    EXPECT(strstr(err, "out of device memory") != NULL);
    r.state_bytes = 0;
    r.prompt_len = 500; /* inconsistent */
    EXPECT_EQ_INT(op_cuda_plan_memory(&r, &p, err, sizeof err), -1);
}

int main(void) {
    if (gpu_test_setup() != 0) return 1;
    /* CUDA_TEST_ONLY=name runs one test (e.g. under compute-sanitizer). */
    const char *only = getenv("CUDA_TEST_ONLY");
#define RUN_SEL(name) do { if (!only || strcmp(only, #name) == 0) RUN(name); } while (0)
    RUN_SEL(load_weight_dtypes);
    RUN_SEL(embed);
    RUN_SEL(rmsnorm);
    RUN_SEL(matmul);
    RUN_SEL(swiglu_add);
    RUN_SEL(qkv_rope_write);
    RUN_SEL(attention_decode);
    RUN_SEL(attention_prefill);
    RUN_SEL(conv1d);
    RUN_SEL(ssd_scan);
    RUN_SEL(conv_ssd_decode);
    RUN_SEL(gated_rmsnorm);
    RUN_SEL(sample);
    RUN_SEL(graph_replay);
    RUN_SEL(plan_memory);
    if (G) G->destroy(&G);
    if (C) C->destroy(&C);
    return unit_summary();
}
