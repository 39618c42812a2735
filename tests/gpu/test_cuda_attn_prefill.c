/* tests/gpu/test_cuda_attn_prefill.c — the tensor-core prefill attention of the CUDA backend
 * (kernels/cuda/cuda_attn_prefill_mma.cu, THINKFAST_ATTN_PREFILL=mma) against the CPU reference
 * backend, on fresh random bf16-exact inputs in a scrambled paged cache.
 *
 * Two CUDA backends on device 0: G is created with THINKFAST_ATTN_PREFILL=mma, Ob without it
 * (the generic k_attention prefill kernel). Shapes: head_dim 64 and 128; GQA groups 1, 3, 4, 8,
 * 16; tokens per sequence 1, 7, 64, 129, 300 (not multiples of the 64-row tile); sequences that
 * continue over earlier cached context (first position > 0, up to 2000 cached tokens); 1 and 5
 * sequences of different lengths; pages of 16, 32 and 64 tokens; and one batch whose positions
 * are random (not consecutive, not sorted: the kernel masks each row by its own position). The
 * output is NaN-poisoned before each run, so an element the kernel does not write fails.
 * "Path taken": on a supported shape the mma output must differ bitwise from the generic
 * kernel's somewhere (bf16 P against fp32 P: thousands of elements never all agree), so a
 * silent fallback fails; on an unsupported shape (head_dim 32, pages of 8) it must equal it
 * bitwise (the fallback ran).
 *
 * Tolerance: 1e-2 abs + 2e-2 rel. Inputs lie in [-1, 1], so the output is a convex
 * combination of values in [-1, 1]. Its error against the fp32/double CPU reference: P rounded
 * to bf16 for the P V mma (relative error <= 2^-9 per weight, so at most 2^-9 * max|v| ~ 2e-3
 * on the output even when every rounding goes the same way; the normaliser sums the unrounded
 * fp32 P), the bf16 output rounding (<= 2^-9 |out| ~ 2e-3), fp32 accumulation of Q K^T from
 * exact bf16 products and exp2f (~1e-6 relative). Worst case ~4e-3, so the tolerance has a
 * 2.5x margin while an indexing or masking bug (a wrong key, a missed rescale) moves outputs by
 * O(0.1).
 *
 * THINKFAST_ATTN_BENCH=1 adds a timing mode: prefill of 8 x 1024 and 8 x 256 tokens at Hq 32,
 * Hkv 8, head_dim 64, pages of 16, generic kernel vs mma kernel, cudaEvent timing
 * (op_cuda_timer_*), printed per call. Without a CUDA device every test reports "skip".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "tests/unit/unit.h"

#define GPU_TEST_SEED 0x452821E638D01377ull
#include "tests/gpu/gpu_testutil.h"

static op_backend *Ob; /* CUDA backend with THINKFAST_ATTN_PREFILL=generic: the generic prefill kernel */

#define ATOL 1e-2
#define RTOL 2e-2



/* n_seq sequences; sequence s holds ctx[s] tokens in the cache, the last q_len[s] of which are
 * this step's queries (positions ctx - q_len .. ctx - 1), or, with random_pos, positions drawn
 * uniformly from 0 .. ctx - 1. expect_mma: the shape is one the mma kernel takes. */
static void check(int n_seq, const int *ctx, const int *q_len, int Hq, int Hkv, int hd, int page_size, int random_pos,
                  int expect_mma) {
    kv_fixture f = {.n_seq = n_seq, .page_size = page_size, .Hkv = Hkv, .hd = hd};
    kv_layout(&f, ctx);
    int T = 0;
    int32_t *cu = h_alloc((size_t)(n_seq + 1) * 4);
    for (int s = 0; s < n_seq; s++) { cu[s] = T; T += q_len[s]; }
    cu[n_seq] = T;
    int32_t *pos = h_alloc((size_t)T * 4);
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < q_len[s]; i++) pos[cu[s] + i] = random_pos ? irand(ctx[s]) : ctx[s] - q_len[s] + i;
    size_t nq = (size_t)T * Hq * hd, nbt = (size_t)n_seq * f.max_pages;
    float *q = rvec(nq, -1, 1), *kc = rvec(f.cache_elems, -1, 1), *vc = rvec(f.cache_elems, -1, 1);
    float scale = 1.0f / sqrtf((float)hd) * 2.0f; /* sharper than usual: exercises the softmax */
    void *gq = g_bf16(q, nq), *gk = g_bf16(kc, f.cache_elems), *gv = g_bf16(vc, f.cache_elems);
    void *gbt = g_raw(f.bt, nbt * 4), *gcu = g_raw(cu, (size_t)(n_seq + 1) * 4), *gp = g_raw(pos, (size_t)T * 4);
    void *go = g_poison(nq * 2), *gold = g_poison(nq * 2);
    void *cq = c_raw(q, nq * 4), *ck = c_raw(kc, f.cache_elems * 4), *cv = c_raw(vc, f.cache_elems * 4);
    void *cbt = c_raw(f.bt, nbt * 4), *ccu = c_raw(cu, (size_t)(n_seq + 1) * 4), *cp = c_raw(pos, (size_t)T * 4);
    void *co = c_poison(nq * 4);
    G->attention(G, go, gq, gk, gv, gbt, f.max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, page_size, scale);
    G->sync(G); /* Ob runs on its own stream */
    Ob->attention(Ob, gold, gq, gk, gv, gbt, f.max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, page_size, scale);
    Ob->sync(Ob);
    C->attention(C, co, cq, ck, cv, cbt, f.max_pages, ccu, cp, n_seq, T, Hq, Hkv, hd, page_size, scale);
    char what[160];
    snprintf(what, sizeof what, "n_seq=%d T=%d Hq=%d Hkv=%d hd=%d page=%d ctx0=%d%s", n_seq, T, Hq, Hkv, hd,
             page_size, ctx[0], random_pos ? " random positions" : "");
    printf("%s\n", what);
    float *got = g_read_bf16(go, nq), *old = g_read_bf16(gold, nq), *ref = c_read(co, nq);
    size_t bad = count_out_of_tol("mma vs cpu", got, ref, nq, ATOL, RTOL, 1);
    EXPECT_MSG(bad == 0, "%s: %zu elements out of tolerance", what, bad);
    (void)count_out_of_tol("generic vs cpu (control)", old, ref, nq, ATOL, RTOL, 1);
    size_t differ = 0;
    for (size_t i = 0; i < nq; i++) differ += memcmp(&got[i], &old[i], sizeof(float)) != 0;
    printf("  mma vs generic: %zu of %zu elements differ bitwise (expected %s)\n", differ, nq,
           expect_mma ? "some: mma path" : "none: fallback");
    if (expect_mma) EXPECT_MSG(differ > 0, "%s: identical to the generic kernel: the mma path did not run", what);
    else EXPECT_MSG(differ == 0, "%s: differs from the generic kernel: the fallback did not run", what);
}

TEST(attn_prefill_mma) {
    NEED_GPU();
    int c1[1] = {300}, q1[1] = {300};
    check(1, c1, q1, 8, 8, 64, 16, 0, 1); /* plain prompt, MHA (G 1), 5 row tiles (last partial) */
    int c2[1] = {129}, q2[1] = {129};
    check(1, c2, q2, 32, 8, 128, 64, 0, 1); /* G 4, hd 128, pages of 64 */
    /* five sequences, lengths 7, 64, 1, 129, 300, some continuing over cached context */
    int c5[5] = {7 + 100, 64, 1 + 50, 129, 300 + 33}, q5[5] = {7, 64, 1, 129, 300};
    check(5, c5, q5, 32, 4, 64, 16, 0, 1);  /* G 8 */
    check(5, c5, q5, 16, 4, 128, 64, 0, 1); /* G 4, hd 128 */
    int c6[5] = {300, 1 + 1000, 7, 64 + 64, 129 + 5}, q6[5] = {300, 1, 7, 64, 129};
    check(5, c6, q6, 8, 8, 128, 16, 0, 1); /* G 1, hd 128, a decode-like sequence over 1000 tokens */
    check(5, c6, q6, 12, 4, 64, 32, 0, 1); /* G 3: 21 tokens per tile, 63 of 64 rows */
    check(5, c6, q6, 32, 2, 64, 64, 0, 1); /* G 16: 4 tokens per tile */
    int c2b[2] = {2000, 70}, q2b[2] = {100, 70};
    check(2, c2b, q2b, 32, 8, 64, 16, 0, 1);  /* long cached context: 32 key tiles */
    check(2, c2b, q2b, 32, 8, 128, 64, 1, 1); /* random (unsorted) positions */
    release_all();
}

TEST(attn_prefill_fallback) {
    NEED_GPU();
    int c3[3] = {40, 300, 5}, q3[3] = {40, 100, 5};
    check(3, c3, q3, 8, 2, 32, 16, 0, 0); /* head_dim 32: not supported -> generic kernel */
    check(3, c3, q3, 8, 2, 64, 8, 0, 0);  /* pages of 8: not supported -> generic kernel */
    release_all();
}

/* One timing: n_seq fresh prompts of len tokens (pages of 16, identity block table). */
static void bench_one(int n_seq, int len) {
    const int Hq = 32, Hkv = 8, hd = 64, ps = 16, iters = 20;
    int T = n_seq * len, max_pages = (len + ps - 1) / ps;
    size_t nq = (size_t)T * Hq * hd, nc = (size_t)n_seq * max_pages * ps * Hkv * hd;
    int32_t *bt = h_alloc((size_t)n_seq * max_pages * 4), *cu = h_alloc((size_t)(n_seq + 1) * 4);
    int32_t *pos = h_alloc((size_t)T * 4);
    for (int i = 0; i < n_seq * max_pages; i++) bt[i] = i;
    for (int s = 0; s <= n_seq; s++) cu[s] = s * len;
    for (int t = 0; t < T; t++) pos[t] = t % len;
    void *q = g_alloc(nq * 2), *kc = g_alloc(nc * 2), *vc = g_alloc(nc * 2);
    void *o1 = g_alloc(nq * 2), *o2 = g_alloc(nq * 2);
    op_cuda_fill_uniform(G, q, OP_BF16, nq, 1, -1.f, 1.f);
    op_cuda_fill_uniform(G, kc, OP_BF16, nc, 2, -1.f, 1.f);
    op_cuda_fill_uniform(G, vc, OP_BF16, nc, 3, -1.f, 1.f);
    void *gbt = g_raw(bt, (size_t)n_seq * max_pages * 4), *gcu = g_raw(cu, (size_t)(n_seq + 1) * 4);
    void *gp = g_raw(pos, (size_t)T * 4);
    G->sync(G);
    float scale = 1.0f / sqrtf((float)hd);
    double ms[2];
    op_backend *bs[2] = {Ob, G};
    void *outs[2] = {o1, o2};
    for (int k = 0; k < 2; k++) {
        op_backend *b = bs[k];
        for (int i = 0; i < 2; i++)
            b->attention(b, outs[k], q, kc, vc, gbt, max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, ps, scale);
        op_cuda_timer_begin(b);
        for (int i = 0; i < iters; i++)
            b->attention(b, outs[k], q, kc, vc, gbt, max_pages, gcu, gp, n_seq, T, Hq, Hkv, hd, ps, scale);
        ms[k] = op_cuda_timer_end(b) / iters;
    }
    float *a = g_read_bf16(o1, nq), *b2 = g_read_bf16(o2, nq);
    double worst = 0.0;
    size_t n_nan = 0;
    for (size_t i = 0; i < nq; i++) {
        double d = fabs((double)a[i] - (double)b2[i]);
        if (d != d) n_nan++;
        else if (d > worst) worst = d;
    }
    printf("attention prefill %d x %d tokens (Hq %d, Hkv %d, hd %d): generic %.3f ms, mma %.3f ms (%.2fx), "
           "max |diff| %.3g, %zu NaN\n",
           n_seq, len, Hq, Hkv, hd, ms[0], ms[1], ms[0] / ms[1], worst, n_nan);
    EXPECT_MSG(worst <= 2e-2 && n_nan == 0, "bench outputs disagree: max |diff| %g, %zu NaN", worst, n_nan);
    release_all();
}

TEST(attn_prefill_bench) {
    NEED_GPU();
    const char *e = getenv("THINKFAST_ATTN_BENCH");
    if (!e || strcmp(e, "1") != 0) {
        unit_skip("timing mode: set THINKFAST_ATTN_BENCH=1");
        return;
    }
    bench_one(8, 1024);
    bench_one(8, 256);
}

int main(void) {
    char err[256];
    setenv("THINKFAST_ATTN_PREFILL", "mma", 1); /* read when a backend is created */
    if (gpu_test_setup() != 0) return 1;
    if (G) {
        setenv("THINKFAST_ATTN_PREFILL", "generic", 1);
        Ob = op_cuda_new(0, err, sizeof err);
        if (!Ob) {
            printf("second cuda backend unavailable: %s\n", err);
            G->destroy(&G);
        }
    }
    RUN(attn_prefill_mma);
    RUN(attn_prefill_fallback);
    RUN(attn_prefill_bench);
    if (Ob) Ob->destroy(&Ob);
    if (G) G->destroy(&G);
    if (C) C->destroy(&C);
    return unit_summary();
}
