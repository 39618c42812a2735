/* tests/gpu/test_cuda_ssd_chunked.c — the chunked tensor-core prefill scan of the CUDA backend
 * (kernels/cuda/cuda_ssd_chunked.cu, the default prefill scan; THINKFAST_SSD_CHUNKED=0 turns it off) against the CPU reference
 * backend, and against the backend's own exact recurrence.
 *
 * Three CUDA backends on device 0: G is created with THINKFAST_SSD_CHUNKED=1 (the chunked path
 * for every non-decode scan it supports), Fb with =2 (the same without the hi/lo split of the
 * GEMM operands that only reach y), Rb without it (the recurrent kernel). Inputs are
 * bf16-exact random values given to all backends; x, B, C are column blocks of a wide matrix
 * whose other columns hold large garbage and dt a column block of its own wide matrix (the
 * fused in_proj / conv layouts), slots are scrambled and the initial states non-zero; y is
 * NaN-poisoned before each run so an unwritten row fails.
 *
 * Tolerances. y is bf16: rounding alone is 2^-9 relative (~2e-3); the chunked path's
 * arithmetic is fp32 with TF32 tensor-core GEMMs whose inexact operands (M, w x, the entering
 * state) are split hi + lo, so it is ~fp32 accurate (emulated: |d| ~3e-6 on the state), and
 * the CPU reference is fp32 with a double cumsum. y: 3e-2 abs + 2e-2 rel is ~10x the bf16
 * rounding (half an ulp = 2^-9 |y|) for |y| up to ~20 here.
 * State (fp32, |s| <~ 2): 1e-4 abs + 1e-2 rel; without the hi/lo split (plain TF32, inputs
 * truncated to 10 mantissa bits) the emulated error reached 1e-3 abs on elements whose value
 * is a cancellation of larger terms, which this tolerance rejects on purpose.
 * "Path taken": the chunked and recurrent fp32 states of a 1000-token sequence are never
 * bitwise equal (different summation orders), so bitwise equality means the chunked path
 * silently fell back and the test fails.
 *
 * THINKFAST_SSD_BENCH=1 adds a timing mode: prefill of 8 x 1024 and 64 x 256 tokens at the
 * Llamba-1B mixer shape (32 heads, head_dim 64, d_state 64, B/C per head, chunk 128),
 * chunked (modes 1 and 2) vs recurrent, cudaEvent timing (op_cuda_timer_*), printed per call.
 * Without a CUDA device every test reports "skip".
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "tests/unit/unit.h"

#define GPU_TEST_SEED 0x13198A2E03707344ull
#include "tests/gpu/gpu_testutil.h"

static op_backend *Rb; /* CUDA backend with THINKFAST_SSD_CHUNKED=0: the recurrent kernel */
static op_backend *Fb; /* THINKFAST_SSD_CHUNKED=2: fewer hi/lo splits (y only) */

#define WIDE_GARBAGE 9984.0f /* 1e4 rounded to bf16 */

static void *g_at(void *d, size_t off) { return (char *)d + off * 2; }


/* One scan on Gc (a chunked backend: G or Fb), Rb (recurrent) and the CPU backend; compares y
 * and the state. Buffers come from G (same device); each backend has its own stream. */
static void check_chunked_on(op_backend *Gc, int n_seq, const int *len, int H, int P, int G_, int N, int chunk,
                             float dt_min, float dt_max, int expect_chunked) {
    int T = 0;
    int32_t *cu = h_alloc((n_seq + 1) * 4), *slots = h_alloc(n_seq * 4);
    int n_slots = n_seq + 3;
    for (int s = 0; s < n_seq; s++) {
        cu[s] = T;
        T += len[s];
        slots[s] = (s % 2) ? s / 2 : n_slots - 1 - s / 2; /* distinct, not in order, not from 0 */
    }
    cu[n_seq] = T;
    int HP = H * P, GN = G_ * N;
    size_t nx = (size_t)T * HP, nbc = (size_t)T * GN, ns = (size_t)n_slots * H * P * N;
    float *x = rvec(nx, -1, 1), *dt = rvec((size_t)T * H, -4, 1), *B = rvec(nbc, -1, 1), *Cm = rvec(nbc, -1, 1);
    float *Alog = rvec(H, -1, 1.5f), *D = rvec(H, -1, 1), *dtb = rvec(H, -1, 1), *st = rvec(ns, -0.5f, 0.5f);
    /* device: x | gap | B | gap | C | pad in one wide matrix; dt at an offset of a wider one */
    int xo = 2, bo = xo + HP + 3, co = bo + GN + 3, xbc_ld = co + GN + 24, dt_off = 5, dt_ld = H + 24;
    float *xbw = h_alloc((size_t)T * xbc_ld * 4), *dtw = h_alloc((size_t)T * dt_ld * 4);
    for (size_t i = 0; i < (size_t)T * xbc_ld; i++) xbw[i] = WIDE_GARBAGE;
    for (size_t i = 0; i < (size_t)T * dt_ld; i++) dtw[i] = WIDE_GARBAGE;
    for (int t = 0; t < T; t++) {
        memcpy(xbw + (size_t)t * xbc_ld + xo, x + (size_t)t * HP, (size_t)HP * 4);
        memcpy(xbw + (size_t)t * xbc_ld + bo, B + (size_t)t * GN, (size_t)GN * 4);
        memcpy(xbw + (size_t)t * xbc_ld + co, Cm + (size_t)t * GN, (size_t)GN * 4);
        memcpy(dtw + (size_t)t * dt_ld + dt_off, dt + (size_t)t * H, (size_t)H * 4);
    }
    void *gxbc = g_bf16(xbw, (size_t)T * xbc_ld), *gdtw = g_bf16(dtw, (size_t)T * dt_ld);
    void *gx = g_at(gxbc, xo), *gB = g_at(gxbc, bo), *gC = g_at(gxbc, co), *gdt = g_at(gdtw, dt_off);
    void *gA = g_raw(Alog, H * 4), *gD = g_raw(D, H * 4), *gdb = g_raw(dtb, H * 4);
    void *gcu = g_raw(cu, (n_seq + 1) * 4), *gsl = g_raw(slots, n_seq * 4);
    void *gst = g_raw(st, ns * 4), *gst_r = g_raw(st, ns * 4), *gy = g_poison(nx * 2), *gy_r = g_poison(nx * 2);
    /* CPU reference: compact x | B | C rows, dt [T, H] */
    int cld = HP + 2 * GN;
    float *xbc = h_alloc((size_t)T * cld * 4);
    for (int t = 0; t < T; t++) {
        memcpy(xbc + (size_t)t * cld, x + (size_t)t * HP, (size_t)HP * 4);
        memcpy(xbc + (size_t)t * cld + HP, B + (size_t)t * GN, (size_t)GN * 4);
        memcpy(xbc + (size_t)t * cld + HP + GN, Cm + (size_t)t * GN, (size_t)GN * 4);
    }
    void *cxbc = c_raw(xbc, (size_t)T * cld * 4), *cdt = c_raw(dt, (size_t)T * H * 4);
    void *cA = c_raw(Alog, H * 4), *cD = c_raw(D, H * 4), *cdb = c_raw(dtb, H * 4), *cst = c_raw(st, ns * 4);
    void *ccu = c_raw(cu, (n_seq + 1) * 4), *csl = c_raw(slots, n_seq * 4), *cy = c_poison(nx * 4);

    G->sync(G); /* uploads went to G's stream; Rb has its own */
    Gc->ssd_scan(Gc, gy, gx, gdt, gA, gB, gC, gD, gdb, gst, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk,
                 dt_min, dt_max);
    Gc->sync(Gc);
    Rb->ssd_scan(Rb, gy_r, gx, gdt, gA, gB, gC, gD, gdb, gst_r, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk,
                 dt_min, dt_max);
    Rb->sync(Rb);
    C->ssd_scan(C, cy, cxbc, cdt, cA, (float *)cxbc + HP, (float *)cxbc + HP + GN, cD, cdb, cst, ccu, csl, n_seq, T,
                cld, H, H, P, G_, N, chunk, dt_min, dt_max);
    printf(" %s n_seq=%d T=%d H=%d P=%d G=%d N=%d chunk=%d dt in [%g, %g]\n", Gc == Fb ? "mode 2" : "mode 1", n_seq, T,
           H, P, G_, N, chunk, dt_min, dt_max);
    float *ref = c_read(cy, nx), *ref_st = c_read(cst, ns);
    float *got = g_read_bf16(gy, nx), *got_st = g_read_f32(gst, ns);
    float *rec = g_read_bf16(gy_r, nx), *rec_st = g_read_f32(gst_r, ns);
    size_t by = count_out_of_tol("chunked y vs cpu", got, ref, nx, 3e-2, 2e-2, 1);
    size_t bs = count_out_of_tol("chunked state vs cpu", got_st, ref_st, ns, 1e-4, 1e-2, 1);
    size_t bry = count_out_of_tol("recurrent y vs cpu", rec, ref, nx, 3e-2, 2e-2, 1);
    EXPECT_MSG(by == 0, "chunked y: %zu mismatches (n_seq %d H %d G %d N %d chunk %d)", by, n_seq, H, G_, N, chunk);
    EXPECT_MSG(bs == 0, "chunked state: %zu mismatches (n_seq %d H %d G %d N %d chunk %d)", bs, n_seq, H, G_, N, chunk);
    EXPECT_MSG(bry == 0, "recurrent y: %zu mismatches", bry);
    if (expect_chunked) { /* the chunked path ran: its fp32 state is not bitwise the recurrence's */
        size_t differ = 0;
        for (size_t i = 0; i < ns; i++) differ += memcmp(&got_st[i], &rec_st[i], 4) != 0;
        EXPECT_MSG(differ > 0, "chunked state is bitwise the recurrent one: did the chunked path run?");
    }
}
static void check_chunked(int n_seq, const int *len, int H, int P, int G_, int N, int chunk, float dt_min,
                          float dt_max, int expect_chunked) {
    check_chunked_on(G, n_seq, len, H, P, G_, N, chunk, dt_min, dt_max, expect_chunked);
}

TEST(ssd_chunked) {
    NEED_GPU();
    int l7[7] = {1, 5, 127, 128, 129, 300, 1000};
    check_chunked(7, l7, 8, 64, 1, 64, 64, 0.f, INFINITY, 1);
    check_chunked(7, l7, 8, 64, 8, 64, 128, 0.f, INFINITY, 1);
    check_chunked(7, l7, 8, 64, 1, 128, 256, 1e-3f, 0.1f, 1); /* dt clamped to [1e-3, 0.1] */
    check_chunked(7, l7, 8, 64, 8, 128, 128, 0.05f, 2.f, 1);
    check_chunked(7, l7, 8, 64, 8, 64, 256, 0.f, 0.5f, 1);
    check_chunked(7, l7, 8, 64, 1, 64, 128, 0.f, INFINITY, 1);
    int l3[3] = {1000, 3, 700};
    check_chunked(3, l3, 32, 64, 32, 64, 128, 0.f, INFINITY, 1); /* Llamba: 15 chunks, 11 a wave: straddles */
    int l2[2] = {37, 130};
    check_chunked(2, l2, 4, 16, 2, 16, 8, 0.f, INFINITY, 1);     /* chunk 8 -> the path's own 128 */
    check_chunked(2, l2, 4, 24, 2, 16, 64, 0.f, INFINITY, 1);    /* P 24, N 16: small tiles */
    check_chunked(2, l2, 2, 30, 1, 8, 64, 0.f, INFINITY, 0);     /* P 30: falls back to the recurrence */
    check_chunked(2, l2, 4, 16, 4, 20, 32, 0.f, INFINITY, 0);    /* N 20: falls back */
    int l0[4] = {0, 1, 0, 250};
    check_chunked(4, l0, 4, 32, 1, 24, 32, 0.f, INFINITY, 1);    /* empty sequences keep their state */
    int ld[5] = {1, 1, 1, 1, 1};
    check_chunked(5, ld, 8, 64, 8, 64, 128, 0.f, INFINITY, 0);   /* decode: always the recurrence */
    release_all();
    /* mode 2 (no hi/lo split of M and of the entering state): same tolerances */
    check_chunked_on(Fb, 7, l7, 8, 64, 1, 64, 128, 0.f, INFINITY, 1);
    check_chunked_on(Fb, 7, l7, 8, 64, 8, 128, 64, 1e-3f, 0.1f, 1);
    check_chunked_on(Fb, 3, l3, 32, 64, 32, 64, 128, 0.f, INFINITY, 1);
    release_all();
}

/* Timing: chunked vs recurrent at the Llamba-1B mixer shape. */
static void bench_one(int n_seq, int len) {
    const int H = 32, P = 64, G_ = 32, N = 64, chunk = 128, T = n_seq * len;
    const int xbc_ld = H * P + 2 * G_ * N, dt_ld = 2 * H * P + 2 * G_ * N + H; /* fused in_proj row */
    int32_t *cu = h_alloc((n_seq + 1) * 4), *slots = h_alloc(n_seq * 4);
    for (int s = 0; s <= n_seq; s++) cu[s] = s * len;
    for (int s = 0; s < n_seq; s++) slots[s] = s;
    size_t ns = (size_t)n_seq * H * P * N;
    void *gxbc = g_alloc((size_t)T * xbc_ld * 2), *gdt = g_alloc((size_t)T * dt_ld * 2);
    void *gy = g_alloc((size_t)T * H * P * 2);
    void *gst = g_alloc(ns * 4);
    op_cuda_fill_uniform(G, gxbc, OP_BF16, (size_t)T * xbc_ld, 1, -1.f, 1.f);
    op_cuda_fill_uniform(G, gdt, OP_BF16, (size_t)T * dt_ld, 2, -4.f, 1.f);
    op_cuda_fill_uniform(G, gst, OP_F32, ns, 3, -0.5f, 0.5f);
    float *Alog = rvec(H, -1, 1.5f), *D = rvec(H, -1, 1), *dtb = rvec(H, -1, 1);
    void *gA = g_raw(Alog, H * 4), *gD = g_raw(D, H * 4), *gdb = g_raw(dtb, H * 4);
    void *gcu = g_raw(cu, (n_seq + 1) * 4), *gsl = g_raw(slots, n_seq * 4);
    G->sync(G);
    void *gx = gxbc, *gB = g_at(gxbc, (size_t)H * P), *gC = g_at(gxbc, (size_t)H * P + G_ * N);
    op_backend *bk[3] = {G, Fb, Rb};
    const char *name[3] = {"chunked", "chunked mode 2", "recurrent"};
    double ms[3];
    for (int k = 0; k < 3; k++) {
        op_backend *b = bk[k];
        for (int w = 0; w < 2; w++) /* warm-up (scratch growth, cuBLASLt heuristics) */
            b->ssd_scan(b, gy, gx, gdt, gA, gB, gC, gD, gdb, gst, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk,
                        0.f, INFINITY);
        b->sync(b);
        const int iters = 10;
        op_cuda_timer_begin(b);
        for (int i = 0; i < iters; i++)
            b->ssd_scan(b, gy, gx, gdt, gA, gB, gC, gD, gdb, gst, gcu, gsl, n_seq, T, xbc_ld, dt_ld, H, P, G_, N, chunk,
                        0.f, INFINITY);
        ms[k] = op_cuda_timer_end(b) / iters;
    }
    printf("bench ssd_scan prefill %d x %d tokens (H %d P %d G %d N %d chunk %d): %s %.3f ms, %s %.3f ms, %s %.3f ms "
           "(recurrent / chunked x%.2f, / mode 2 x%.2f)\n",
           n_seq, len, H, P, G_, N, chunk, name[0], ms[0], name[1], ms[1], name[2], ms[2], ms[2] / ms[0],
           ms[2] / ms[1]);
    EXPECT(ms[0] > 0 && ms[1] > 0 && ms[2] > 0);
}

TEST(ssd_chunked_bench) {
    NEED_GPU();
    const char *e = getenv("THINKFAST_SSD_BENCH");
    if (!e || strcmp(e, "1") != 0) {
        unit_skip("timing mode: set THINKFAST_SSD_BENCH=1");
        return;
    }
    bench_one(8, 1024);
    bench_one(64, 256);
    release_all();
}

int main(void) {
    char err[256];
    setenv("THINKFAST_SSD_CHUNKED", "1", 1); /* read when a backend is created */
    if (gpu_test_setup() != 0) return 1;
    if (G) {
        setenv("THINKFAST_SSD_CHUNKED", "2", 1);
        Fb = op_cuda_new(0, err, sizeof err);
        setenv("THINKFAST_SSD_CHUNKED", "0", 1);
        Rb = Fb ? op_cuda_new(0, err, sizeof err) : NULL;
        if (!Rb || !Fb) {
            printf("second cuda backend unavailable: %s\n", err);
            if (Rb) Rb->destroy(&Rb);
            if (Fb) Fb->destroy(&Fb);
            G->destroy(&G);
        }
    }
    RUN(ssd_chunked);
    RUN(ssd_chunked_bench);
    if (Rb) Rb->destroy(&Rb);
    if (Fb) Fb->destroy(&Fb);
    if (G) G->destroy(&G);
    if (C) C->destroy(&C);
    return unit_summary();
}
