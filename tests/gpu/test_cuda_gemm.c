/* tests/gpu/test_cuda_gemm.c — the skinny decode GEMM (kernels/cuda/cuda_gemm.cu) against the
 * CPU reference backend's matmul (fp32 on the same bf16-rounded inputs): fresh random inputs
 * (never zeros), poisoned outputs (NaN), bf16 outputs (=, +=) and fp32 outputs, every compiled
 * batch width, both m-tiles-per-warp variants, every split-K (cluster size 1..8), odd N (rows
 * past N, the scalar store path), the shapes the launcher must refuse (-1: cuBLASLt runs
 * instead), and a CUDA-graph capture and replay. The kernel is called through the test entry
 * points cuda_gemm.cu exports, so this test does not depend on how mm_run wires it in.
 * CUDA_TEST_ONLY=name runs one test. THINKFAST_GEMM_BENCH=1 adds a timing table (GB/s of W) of
 * the kernel (its own choice, each forced split-K, each variant) against the backend's
 * b->matmul (cuBLASLt: THINKFAST_MM_SKINNY=0 is set) for the decode shapes at T = 1, 16, 64,
 * 128. Without a CUDA device every test reports "skip".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "tests/unit/unit.h"

/* Exported by kernels/cuda/cuda_gemm.cu: 0 launched, -1 not handled (nothing launched). */
int op_cuda_gemm_skinny_test(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N, int acc,
                             int f32out);
/* The same with split-K (1, 2, 4, 8) and/or m-tiles per warp (1, 2) forced; <= 0: the launcher's
 * choice; -1 if that variant cannot run for the shape. */
int op_cuda_gemm_skinny_test_variant(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N,
                                     int acc, int f32out, int split, int mt);
/* The launch it would make: split-K cluster size, co-resident CTAs at that size, m-tiles per
 * warp; -1: refused. */
int op_cuda_gemm_skinny_plan(op_backend *b, int T, int K, int N, int *split, int *slots, int *mt);

#define GPU_TEST_SEED 0x6A09E667F3BCC909ull
#include "tests/gpu/gpu_testutil.h"

/* Compares got vs ref; prints the first mismatches as [token, feature]. Returns the count. */
static size_t close_to(const char *what, const float *got, const float *ref, int T, int N, double atol, double rtol) {
    size_t bad = 0, n = (size_t)T * N;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        if (!(d <= tol)) {
            if (bad < 5)
                printf("  %s: [t=%zu, n=%zu] got %.6g want %.6g (|diff| %.3g > tol %.3g)\n", what, i / (size_t)N,
                       i % (size_t)N, got[i], ref[i], d, tol);
            bad++;
        }
        if (d > worst && d == d) worst = d;
    }
    if (bad) printf("  %s: %zu of %zu elements out of tolerance (max |diff| %.3g)\n", what, bad, n, worst);
    EXPECT_MSG(bad == 0, "%s: %zu mismatches", what, bad);
    return bad;
}

/* One weight matrix [N,K], then for each T: fresh x and y0; y = xW^T (bf16, poisoned), y0 +=
 * xW^T (bf16), fp32 y = xW^T (poisoned) and fp32 y0 += xW^T, each against the CPU backend. */
static void check_shape(int K, int N, const int *Ts, int nT) {
    float s = 1.0f / sqrtf((float)K);
    float *w = rvec((size_t)N * K, -1.7f * s, 1.7f * s);
    void *gw = g_bf16(w, (size_t)N * K), *cw = c_raw(w, (size_t)N * K * 4);
    for (int it = 0; it < nT; it++) {
        int T = Ts[it];
        size_t nx = (size_t)T * K, ny = (size_t)T * N;
        float *x = rvec(nx, -1, 1), *y0 = rvec(ny, -1, 1);
        void *gx = g_bf16(x, nx), *cx = c_raw(x, nx * 4);
        void *cy = c_raw(y0, ny * 4), *cy1 = c_raw(y0, ny * 4);
        C->matmul(C, cy, cx, cw, T, K, N, 0);
        C->matmul(C, cy1, cx, cw, T, K, N, 1);
        float *ref = c_read(cy, ny), *ref1 = c_read(cy1, ny);
        char what[128];

        /* bf16 =, += with the launcher's choice, then with each m-tiles-per-warp variant (MT = 2
         * exists up to 64 tokens) forced to every split-K that can run */
        int ran_split = 0;
        for (int mt = 0; mt <= 2; mt++) {
            for (int split = 0; split <= 8; split = split ? split * 2 : 1) {
                if ((mt == 0) != (split == 0)) continue; /* (auto, auto), then forced pairs */
                void *gy = g_poison(ny * 2);
                snprintf(what, sizeof what, "bf16 T=%d K=%d N=%d split=%d mt=%d", T, K, N, split, mt);
                int rc = op_cuda_gemm_skinny_test_variant(G, gy, gx, gw, T, K, N, 0, 0, split, mt);
                int may_refuse = (split > 1 && split > K / 64) || (mt == 2 && T > 64);
                EXPECT_MSG(rc == 0 || may_refuse, "%s: launcher returned %d", what, rc);
                if (rc != 0) continue;
                if (split > 1) ran_split = 1;
                close_to(what, g_read_bf16(gy, ny), ref, T, N, 2e-2, 1e-2);
                void *gy1 = g_bf16(y0, ny);
                snprintf(what, sizeof what, "bf16 += T=%d K=%d N=%d split=%d mt=%d", T, K, N, split, mt);
                rc = op_cuda_gemm_skinny_test_variant(G, gy1, gx, gw, T, K, N, 1, 0, split, mt);
                EXPECT_MSG(rc == 0, "%s: launcher returned %d", what, rc);
                if (rc == 0) close_to(what, g_read_bf16(gy1, ny), ref1, T, N, 2e-2, 1e-2);
            }
        }
        EXPECT_MSG(ran_split || K < 128, "K=%d N=%d: no split-K launch ran", K, N);

        int rc;
        void *gf = g_poison(ny * 4);
        snprintf(what, sizeof what, "f32 T=%d K=%d N=%d", T, K, N);
        rc = op_cuda_gemm_skinny_test(G, gf, gx, gw, T, K, N, 0, 1);
        EXPECT_MSG(rc == 0, "%s: launcher returned %d", what, rc);
        if (rc == 0) close_to(what, g_read_f32(gf, ny), ref, T, N, 2e-3, 2e-3);

        void *gf1 = g_raw(y0, ny * 4);
        snprintf(what, sizeof what, "f32 += T=%d K=%d N=%d", T, K, N);
        rc = op_cuda_gemm_skinny_test(G, gf1, gx, gw, T, K, N, 1, 1);
        EXPECT_MSG(rc == 0, "%s: launcher returned %d", what, rc);
        if (rc == 0) close_to(what, g_read_f32(gf1, ny), ref1, T, N, 2e-3, 2e-3);
        if (unit_cur_failed) break; /* the first failing width says enough */
    }
}

static const int T_ALL[] = {1, 3, 8, 17, 64, 128};
#define N_T_ALL ((int)(sizeof T_ALL / sizeof T_ALL[0]))

TEST(gemm_tiny) { /* K = 64: one k-block, no split-K; N = 64: rows past N in the CTA */
    NEED_GPU();
    check_shape(64, 64, T_ALL, N_T_ALL);
    release_all();
}
TEST(gemm_odd_n) { /* N = 200 is no multiple of the 128-row CTA tile; K = 128: split-K of 2.
                    * N = 77 (odd: the scalar store path), K = 192: uneven split-K slices 1 + 2 */
    NEED_GPU();
    check_shape(128, 200, T_ALL, N_T_ALL);
    release_all();
    check_shape(192, 77, T_ALL, N_T_ALL);
    release_all();
}
TEST(gemm_in_proj) { /* the fused Mamba in_proj, every compiled batch width but one (T 25..32 is
                      * kept unseen for the capture test) */
    NEED_GPU();
    static const int Ts[] = {1, 3, 8, 12, 17, 40, 64, 100, 128};
    check_shape(2048, 4256, Ts, (int)(sizeof Ts / sizeof Ts[0]));
    release_all();
}
TEST(gemm_down) { /* K = 8192, N = 2048: few row tiles, the split-K cluster path */
    NEED_GPU();
    check_shape(8192, 2048, T_ALL, N_T_ALL);
    int split = 0, slots = 0, mt = 0;
    EXPECT_EQ_INT(op_cuda_gemm_skinny_plan(G, 64, 8192, 2048, &split, &slots, &mt), 0);
    printf("  gemm_down T=64: split-K %d, %d CTAs co-resident at that cluster size, %d m-tiles per warp\n", split,
           slots, mt);
    release_all();
}

TEST(gemm_refuses) {
    NEED_GPU();
    int K = 128, N = 64, T = 4;
    float *x = rvec((size_t)130 * K, -1, 1), *w = rvec((size_t)N * K, -0.1f, 0.1f);
    unsigned char *gx = g_bf16(x, (size_t)130 * K), *gw = g_bf16(w, (size_t)N * K);
    unsigned char *gy = g_poison((size_t)130 * N * 4 + 16);
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, 0, K, N, 0, 0), -1);       /* T = 0 */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, 129, K, N, 0, 0), -1);     /* T > 128 */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, T, 100, N, 0, 0), -1);     /* K % 64 */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, T, 32, N, 0, 0), -1);      /* K < 64 */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, T, K, 0, 0, 0), -1);       /* N = 0 */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx + 2, gw, T, K, N, 0, 0), -1);   /* x misaligned */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw + 8, T, K, N, 0, 0), -1);   /* w misaligned */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy + 2, gx, gw, T, K, N, 0, 0), -1);   /* y misaligned */
    /* a refusal writes nothing: y is still all poison */
    uint16_t *h = h_alloc((size_t)130 * N * 2);
    G->download(G, h, gy, (size_t)130 * N * 2);
    size_t touched = 0;
    for (size_t i = 0; i < (size_t)130 * N; i++) touched += h[i] != 0xffff;
    EXPECT_EQ_INT(touched, 0);
    /* and the smallest accepted shape is accepted */
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, 1, 64, 1, 0, 0), 0);
    G->sync(G);
    release_all();
}

/* Captured into a CUDA graph and replayed: the output must equal the reference after the
 * replay (the eager call before it set the batch width up). A width never seen before is
 * refused inside a capture (its setup is not capturable). */
TEST(gemm_graph) {
    NEED_GPU();
    int T = 20, K = 2048, N = 3072;
    float s = 1.0f / sqrtf((float)K);
    size_t nx = (size_t)T * K, ny = (size_t)T * N;
    float *x = rvec(nx, -1, 1), *w = rvec((size_t)N * K, -s, s);
    void *gx = g_bf16(x, nx), *gw = g_bf16(w, (size_t)N * K), *cx = c_raw(x, nx * 4), *cw = c_raw(w, (size_t)N * K * 4);
    void *cy = c_raw(h_alloc(ny * 4), ny * 4); /* overwritten by the reference */
    C->matmul(C, cy, cx, cw, T, K, N, 0);
    float *ref = c_read(cy, ny);
    void *gy = g_poison(ny * 2);
    EXPECT_EQ_INT(op_cuda_gemm_skinny_test(G, gy, gx, gw, T, K, N, 0, 0), 0); /* eager: sets up T 17..24 */
    unsigned char *poison = h_alloc(ny * 2);
    memset(poison, 0xff, ny * 2);
    G->upload(G, gy, poison, ny * 2);
    char err[256];
    int rc_unseen = 0, rc_seen = -2;
    EXPECT(op_cuda_graph_begin(G, err, sizeof err) == 0);
    rc_seen = op_cuda_gemm_skinny_test(G, gy, gx, gw, T, K, N, 0, 0);
    rc_unseen = op_cuda_gemm_skinny_test(G, gy, gx, gw, 30, K, N, 0, 0); /* T 25..32: never used before */
    op_cuda_graph *g = op_cuda_graph_end(G, err, sizeof err);
    EXPECT_MSG(g != NULL, "graph: %s", err);
    EXPECT_EQ_INT(rc_seen, 0);
    EXPECT_EQ_INT(rc_unseen, -1);
    if (g) {
        op_cuda_graph_launch(G, g);
        close_to("graph replay", g_read_bf16(gy, ny), ref, T, N, 2e-2, 1e-2);
        op_cuda_graph_destroy(&g);
    }
    release_all();
}

/* ---------------------------------------------------------------- benchmark */

static void bench(void) {
    static const struct { int K, N, f32out; const char *name; } shapes[] = {
        {2048, 2048, 0, "o/out_proj"}, {2048, 3072, 0, "qkv"}, {2048, 4256, 0, "mamba in_proj"},
        {2048, 16384, 0, "gate_up"},        {8192, 2048, 0, "down"}, {2048, 128256, 1, "lm_head (f32)"},
    };
    static const int Ts[] = {1, 16, 64, 128};
    const size_t pool_bytes = (size_t)640 << 20; /* rotating weight copies: > 10x the 50 MB L2 */
    void *pool = G->alloc(G, pool_bytes), *gx = G->alloc(G, (size_t)128 * 8192 * 2),
         *gy = G->alloc(G, (size_t)128 * 128256 * 4);
    if (!pool || !gx || !gy) {
        printf("bench: out of device memory\n");
        return;
    }
    op_cuda_fill_uniform(G, pool, OP_BF16, pool_bytes / 2, 7, -0.02f, 0.02f);
    op_cuda_fill_uniform(G, gx, OP_BF16, (size_t)128 * 8192, 11, -1.f, 1.f);
    op_cuda_fill_uniform(G, gy, OP_F32, (size_t)128 * 128256, 13, -1.f, 1.f);
    G->sync(G);
    printf("bench: GB/s of W (bf16), mean of 50 calls over rotating weight copies. plan: the launcher's\n"
           "split-K / CTAs co-resident at that cluster size (grid = ceil(N/128) x split) / m-tiles per warp;\n"
           "S=1..8: GB/s with the split forced (default MT); MT=1, MT=2: GB/s with that variant (own split);\n"
           "speedup: cuBLASLt time / skinny time (the launcher's own choice)\n");
    printf("%-14s %5s %6s %3s %9s | %7s %5s | %5s %5s %5s %5s | %5s %5s | %7s %5s | %s\n", "shape", "K", "N", "T",
           "plan", "skin_us", "GB/s", "S=1", "S=2", "S=4", "S=8", "MT=1", "MT=2", "cub_us", "GB/s", "speedup");
    enum { NV = 8 }; /* 0 launcher, 1..4 split 1/2/4/8, 5 MT=1, 6 MT=2, 7 cuBLASLt */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int K = shapes[si].K, N = shapes[si].N, f32 = shapes[si].f32out;
        size_t wbytes = (size_t)N * K * 2;
        int copies = (int)(pool_bytes / wbytes);
        if (copies > 16) copies = 16;
        if (copies < 1) continue;
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            int T = Ts[ti], iters = 50;
            double ms[NV], gb[NV];
            for (int which = 0; which < NV; which++) {
                int ok = 1, split = which >= 1 && which <= 4 ? 1 << (which - 1) : 0;
                int mt = which == 5 ? 1 : which == 6 ? 2 : 0;
                ms[which] = -1;
                for (int i = 0; i < iters + 3; i++) {
                    if (i == 3) op_cuda_timer_begin(G);
                    const void *w = (const char *)pool + (size_t)(i % copies) * wbytes;
                    if (which < NV - 1) {
                        if (op_cuda_gemm_skinny_test_variant(G, gy, gx, w, T, K, N, 0, f32, split, mt) != 0) {
                            ok = 0;
                            break;
                        }
                    } else if (f32) {
                        G->matmul_f32out(G, (float *)gy, gx, w, T, K, N);
                    } else {
                        G->matmul(G, gy, gx, w, T, K, N, 0);
                    }
                    if (i == 2) G->sync(G); /* warm-up (cuBLASLt plan + autotune) done */
                }
                if (ok) ms[which] = op_cuda_timer_end(G) / iters;
                gb[which] = ms[which] > 0 ? (double)wbytes / (ms[which] * 1e-3) / 1e9 : 0;
            }
            int split = -1, slots = -1, mt = -1;
            (void)op_cuda_gemm_skinny_plan(G, T, K, N, &split, &slots, &mt);
            char plan[40];
            snprintf(plan, sizeof plan, "%d/%d/%d", split, slots, mt);
            printf("%-14s %5d %6d %3d %9s | %7.1f %5.0f | %5.0f %5.0f %5.0f %5.0f | %5.0f %5.0f | %7.1f %5.0f"
                   " | %5.2fx\n",
                   shapes[si].name, K, N, T, plan, ms[0] * 1e3, gb[0], gb[1], gb[2], gb[3], gb[4], gb[5], gb[6],
                   ms[7] * 1e3, gb[7], ms[0] > 0 ? ms[7] / ms[0] : 0.0);
            fflush(stdout);
        }
    }
    G->free(G, pool);
    G->free(G, gx);
    G->free(G, gy);
}

int main(void) {
    const char *be = getenv("THINKFAST_GEMM_BENCH");
    int do_bench = be && strcmp(be, "1") == 0;
    /* the bench compares against cuBLASLt: keep mm_run off the skinny kernel (read at creation) */
    if (do_bench) setenv("THINKFAST_MM_SKINNY", "0", 1);
    unsetenv("THINKFAST_MM_SKINNY_TMAX"); /* the tests need every T up to 128 taken */
    if (gpu_test_setup() != 0) return 1;
    /* CUDA_TEST_ONLY=name runs one test (e.g. under compute-sanitizer). */
    const char *only = getenv("CUDA_TEST_ONLY");
#define RUN_SEL(name) do { if (!only || strcmp(only, #name) == 0) RUN(name); } while (0)
    RUN_SEL(gemm_tiny);
    RUN_SEL(gemm_odd_n);
    RUN_SEL(gemm_in_proj);
    RUN_SEL(gemm_down);
    RUN_SEL(gemm_refuses);
    RUN_SEL(gemm_graph);
    if (G && do_bench) bench();
    if (G) G->destroy(&G);
    if (C) C->destroy(&C);
    return unit_summary();
}
