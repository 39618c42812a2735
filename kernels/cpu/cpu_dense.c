/* kernels/cpu/cpu_dense.c — CPU dense ops: embedding gather, RMSNorm (+ fused residual add),
 * matmul through OpenBLAS sgemm (W in HF [N, K] layout, so y = x W^T), SwiGLU, add.
 * Norm statistics accumulate in double: this is the reference the CUDA backend is checked
 * against, so it should be the accurate side.
 *
 * Small-T matmul (decode steps, T <= CPU_SMALL_T rows): a hand-written kernel whose every output
 * y[t][n] is summed in one fixed order (8 lanes over k, then the lanes in order, then the tail)
 * whatever T is. So a sequence's logits do not depend on how many other sequences share its
 * decode step (batch invariance: a sample's tokens are a function of its key only), and the
 * weights are streamed once per step without OpenBLAS's packing copy. Larger T (prefill)
 * goes to OpenBLAS sgemm.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_ops.h"

void cpu_embed(op_backend *b, void *out, const void *table, const int32_t *ids, int T, int D) {
    float *o = out;
    const float *tab = table;
    for (int t = 0; t < T; t++) memcpy(o + (size_t)t * D, tab + (size_t)ids[t] * D, sizeof(float) * D);
}

static void rms_row(float *o, const float *x, const float *w, int D, float eps) {
    double ss = 0.0;
    for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / D + eps));
    for (int i = 0; i < D; i++) o[i] = w[i] * (x[i] * r);
}

void cpu_rmsnorm(op_backend *b, void *out, const void *x, const void *w, int T, int D, float eps) {
    for (int t = 0; t < T; t++)
        rms_row((float *)out + (size_t)t * D, (const float *)x + (size_t)t * D, w, D, eps);
}

void cpu_add_rmsnorm(op_backend *b, void *resid, const void *x, void *out, const void *w, int T,
                     int D, float eps) {
    float *r = resid;
    const float *xx = x;
    for (size_t i = 0; i < (size_t)T * D; i++) r[i] += xx[i];
    cpu_rmsnorm(b, out, resid, w, T, D, eps);
}

typedef float v8f __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias)); /* unaligned load view */
#define ld8(p) (*(const v8u *)(const void *)(p))

/* Horizontal sum in a fixed order, then the k tail: the per-output reduction order. */
#define HSUM8(a) (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])))

/* Blocks of 4 weight rows x 2 token rows share loads; every output keeps one 8-lane accumulator
 * over k, so its value does not depend on the blocking, on T or on n. MADD(a, x, w): a += x * w. */
#define MM_SMALL_BODY(MADD)                                                                             \
    int K8 = K & ~7;                                                                                    \
    int n = 0;                                                                                          \
    for (; n + 4 <= N; n += 4) {                                                                        \
        const float *w0 = w + (size_t)n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;                  \
        const float *wr[4] = {w0, w1, w2, w3};                                                          \
        int t = 0;                                                                                      \
        for (; t + 2 <= T; t += 2) {                                                                    \
            const float *xa = x + (size_t)t * K, *xb = xa + K;                                          \
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};         \
            for (int k = 0; k < K8; k += 8) {                                                           \
                v8f xv = ld8(xa + k), yv = ld8(xb + k), wv;                                             \
                wv = ld8(w0 + k); MADD(a0, xv, wv); MADD(b0, yv, wv);                                   \
                wv = ld8(w1 + k); MADD(a1, xv, wv); MADD(b1, yv, wv);                                   \
                wv = ld8(w2 + k); MADD(a2, xv, wv); MADD(b2, yv, wv);                                   \
                wv = ld8(w3 + k); MADD(a3, xv, wv); MADD(b3, yv, wv);                                   \
            }                                                                                           \
            v8f acc[8] = {a0, a1, a2, a3, b0, b1, b2, b3};                                              \
            for (int q = 0; q < 8; q++) {                                                               \
                const float *xt = q < 4 ? xa : xb, *wq = wr[q & 3];                                     \
                float sum = HSUM8(acc[q]);                                                              \
                for (int k = K8; k < K; k++) sum += xt[k] * wq[k];                                      \
                float *yo = y + (size_t)(t + (q >> 2)) * ldy + n + (q & 3);                               \
                *yo = accumulate ? *yo + sum : sum;                                                     \
            }                                                                                           \
        }                                                                                               \
        for (; t < T; t++) {                                                                            \
            const float *xt = x + (size_t)t * K;                                                        \
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                                 \
            for (int k = 0; k < K8; k += 8) {                                                           \
                v8f xv = ld8(xt + k), wv;                                                               \
                wv = ld8(w0 + k); MADD(a0, xv, wv);                                                     \
                wv = ld8(w1 + k); MADD(a1, xv, wv);                                                     \
                wv = ld8(w2 + k); MADD(a2, xv, wv);                                                     \
                wv = ld8(w3 + k); MADD(a3, xv, wv);                                                     \
            }                                                                                           \
            v8f acc[4] = {a0, a1, a2, a3};                                                              \
            for (int q = 0; q < 4; q++) {                                                               \
                float sum = HSUM8(acc[q]);                                                              \
                for (int k = K8; k < K; k++) sum += xt[k] * wr[q][k];                                   \
                float *yo = y + (size_t)t * ldy + n + q;                                                  \
                *yo = accumulate ? *yo + sum : sum;                                                     \
            }                                                                                           \
        }                                                                                               \
    }                                                                                                   \
    for (; n < N; n++) {                                                                                \
        const float *w0 = w + (size_t)n * K;                                                            \
        for (int t = 0; t < T; t++) {                                                                   \
            const float *xt = x + (size_t)t * K;                                                        \
            v8f a = {0};                                                                                \
            for (int k = 0; k < K8; k += 8) { v8f xv = ld8(xt + k), wv = ld8(w0 + k); MADD(a, xv, wv); } \
            float sum = HSUM8(a);                                                                       \
            for (int k = K8; k < K; k++) sum += xt[k] * w0[k];                                          \
            float *yo = y + (size_t)t * ldy + n;                                                          \
            *yo = accumulate ? *yo + sum : sum;                                                         \
        }                                                                                               \
    }

#define MADD_PLAIN(a, x, w) ((a) += (x) * (w))
#define MADD_FMA(a, x, w) ((a) = __builtin_ia32_vfmaddps256((x), (w), (a)))

/* With FMA where the CPU has it (results then differ from the generic path in the last bits,
 * but every run on one machine takes the same path). */
__attribute__((target("avx2,fma"))) static void mm_small_avx2(float *y, int ldy, const float *x, const float *w, int T,
                                                              int K, int N, int accumulate) {
    MM_SMALL_BODY(MADD_FMA)
}
static void mm_small_generic(float *y, int ldy, const float *x, const float *w, int T, int K, int N, int accumulate) {
    MM_SMALL_BODY(MADD_PLAIN)
}

static int have_avx2_fma(void) {
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    return v;
}

void cpu_matmul_small(float *y, const float *x, const float *w, int T, int K, int N, int accumulate) {
    if (have_avx2_fma()) mm_small_avx2(y, N, x, w, T, K, N, accumulate);
    else mm_small_generic(y, N, x, w, T, K, N, accumulate);
}

/* Column blocks of the output on the thread pool: each task owns y[:, n0:n1). */
typedef struct mm_job { float *y; const float *x, *w; int T, K, N, acc, rows; } mm_job;
static void mm_task(void *arg, int i, int tid) {
    mm_job *j = arg;
    int n0 = i * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    if (have_avx2_fma()) mm_small_avx2(j->y + n0, j->N, j->x, j->w + (size_t)n0 * j->K, j->T, j->K, n1 - n0, j->acc);
    else mm_small_generic(j->y + n0, j->N, j->x, j->w + (size_t)n0 * j->K, j->T, j->K, n1 - n0, j->acc);
}

static void gemm_task(void *arg, int i, int tid) {
    mm_job *j = arg;
    int n0 = i * j->rows, n1 = n0 + j->rows < j->N ? n0 + j->rows : j->N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, n1 - n0, j->K, 1.0f, j->x, j->K,
                j->w + (size_t)n0 * j->K, j->K, j->acc ? 1.0f : 0.0f, j->y + n0, j->N);
}

void cpu_matmul(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N,
                int accumulate) {
    if (T <= 0 || N <= 0) return;
    if (K <= 0) { if (!accumulate) memset(y, 0, sizeof(float) * (size_t)T * N); return; }
    if (T <= CPU_SMALL_T) {
        int nt = cpu_threads(b);
        double work = (double)T * N * K;
        if (nt > 1 && work >= 262144.0 && N >= 32) {
            /* ~4 tasks per thread, row blocks a multiple of 4 (the kernel's block) */
            int rows = (N + 4 * nt - 1) / (4 * nt);
            rows = (rows + 3) & ~3;
            if (rows < 16) rows = 16;
            mm_job j = {y, x, w, T, K, N, accumulate, rows};
            cpu_parallel_for(b, (N + rows - 1) / rows, mm_task, &j);
        } else {
            cpu_matmul_small(y, x, w, T, K, N, accumulate);
        }
        return;
    }
    int nt = cpu_threads(b);
    if (nt > 1 && (double)T * N * K >= 1048576.0 && N >= 64) {
        /* column blocks of y over the pool, one single-threaded sgemm each */
        int cols = (N + 2 * nt - 1) / (2 * nt);
        cols = (cols + 15) & ~15;
        mm_job j = {y, x, w, T, K, N, accumulate, cols};
        cpu_parallel_for(b, (N + cols - 1) / cols, gemm_task, &j);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, w, K,
                accumulate ? 1.0f : 0.0f, y, N);
}

void cpu_matmul_f32out(op_backend *b, float *y, const void *x, const void *w, int T, int K, int N) {
    cpu_matmul(b, y, x, w, T, K, N, 0);
}

void cpu_swiglu(op_backend *b, void *out, const void *gu, int T, int F) {
    float *o = out;
    const float *g = gu;
    for (int t = 0; t < T; t++) {
        const float *gate = g + (size_t)t * 2 * F, *up = gate + F;
        float *ot = o + (size_t)t * F;
        for (int i = 0; i < F; i++) {
            float a = gate[i];
            ot[i] = a / (1.0f + expf(-a)) * up[i];
        }
    }
}

void cpu_add(op_backend *b, void *y, const void *x, size_t n) {
    float *yy = y;
    const float *xx = x;
    for (size_t i = 0; i < n; i++) yy[i] += xx[i];
}
