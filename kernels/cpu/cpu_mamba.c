/* kernels/cpu/cpu_mamba.c — CPU Mamba-2 ops: causal depthwise conv1d with carried state, the
 * SSD scan in both forms (chunked "state space duality" for multi-token sequences, recurrent
 * for single tokens), and the gated RMSNorm (HF MambaRMSNormGated).
 *
 * Scan notation (one head h of group g = h / (H/G)):
 *   dt'_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max),  a_t = dt'_t * A,  A = -exp(A_log)
 *   h_t = exp(a_t) h_{t-1} + dt'_t x_t B_t^T     y_t = h_t C_t + D x_t
 * Chunked: with cum_i = a_1 + .. + a_i inside a chunk and S the state entering it,
 *   y_i = exp(cum_i) S C_i + sum_{j<=i} exp(cum_i - cum_j) (C_i . B_j) dt'_j x_j + D x_i
 *   S'  = exp(cum_l) S + sum_j exp(cum_l - cum_j) dt'_j x_j B_j^T
 * (HF torch_forward's segment_sum matrix is L[i,j] = exp(cum_i - cum_j) for j <= i.)
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/util.h"
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_ops.h"

static inline float silu(float v) { return v / (1.0f + expf(-v)); }

void cpu_conv1d(op_backend *b, void *out, const void *x, int x_ld, const void *w, const void *bias,
                float *conv_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                int T, int C, int K) {
    CHECK(cu_seqlens[n_seq] == T, "cu_seqlens[%d] = %d != T %d", n_seq, cu_seqlens[n_seq], T);
    CHECK(x_ld >= C, "conv1d: x row stride %d < %d channels", x_ld, C);
    const float *X = x, *W = w, *Bs = bias;
    float *O = out;
    int Km = K - 1;
    for (int s = 0; s < n_seq; s++) {
        int t0 = cu_seqlens[s], L = cu_seqlens[s + 1] - t0;
        float *st = conv_state + (size_t)slots[s] * C * Km;
        for (int i = 0; i < L; i++) {
            const float *xr = X + (size_t)(t0 + i) * x_ld;
            float *orow = O + (size_t)(t0 + i) * C;
            for (int c = 0; c < C; c++) {
                float acc = Bs ? Bs[c] : 0.0f;
                const float *wc = W + (size_t)c * K;
                for (int k = 0; k < K; k++) {
                    int j = i + k - Km;
                    float v = j >= 0 ? xr[(ptrdiff_t)(j - i) * x_ld + c] : st[(size_t)c * Km + Km + j];
                    acc += wc[k] * v;
                }
                orow[c] = silu(acc);
            }
        }
        /* state <- last K-1 inputs (old state then this sequence's inputs) */
        for (int c = 0; c < C; c++) {
            float *sc = st + (size_t)c * Km;
            for (int m = 0; m < Km; m++) {
                int j = L - Km + m;
                sc[m] = j >= 0 ? X[(size_t)(t0 + j) * x_ld + c] : sc[Km + j];
            }
        }
    }
}

static inline float scan_dt(float dt, float bias, float dt_min, float dt_max) {
    float v = cpu_softplus(dt + bias);
    if (v < dt_min) v = dt_min;
    if (v > dt_max) v = dt_max;
    return v;
}

void cpu_ssd_scan_recurrent(float *y, const float *x, const float *dt, const float *A_log,
                            const float *Bm, const float *Cm, const float *D,
                            const float *dt_bias, float *state, int L, int H, int P, int G,
                            int N, float dt_min, float dt_max) {
    int hpg = H / G;
    for (int t = 0; t < L; t++) {
        for (int h = 0; h < H; h++) {
            int g = h / hpg;
            float d = scan_dt(dt[(size_t)t * H + h], dt_bias[h], dt_min, dt_max);
            float dA = expf(d * -expf(A_log[h]));
            const float *xv = x + ((size_t)t * H + h) * P;
            const float *bv = Bm + ((size_t)t * G + g) * N, *cv = Cm + ((size_t)t * G + g) * N;
            float *S = state + (size_t)h * P * N;
            float *yv = y + ((size_t)t * H + h) * P;
            for (int p = 0; p < P; p++) {
                float *sp = S + (size_t)p * N;
                float dx = d * xv[p], acc = 0.0f;
                for (int n = 0; n < N; n++) {
                    sp[n] = sp[n] * dA + dx * bv[n];
                    acc += sp[n] * cv[n];
                }
                yv[p] = acc + D[h] * xv[p];
            }
        }
    }
}

/* The chunked scan of one sequence in two parallel phases: (1) G[c][g] = C_i . B_j for every
 * chunk c and group g; (2) per head, the chunk loop (intra-chunk quadratic form, inter-chunk
 * state term, state passing). Heads are independent, so phase 2 splits over the pool with
 * per-thread buffers; every head's arithmetic is the same whichever thread runs it. */
typedef struct ssd_job {
    float *y; const float *x, *A_log, *Bm, *Cm, *D; float *state;
    const float *dtv; float *Gall;
    int L, H, P, G, N, Q, n_chunks;
    char *scratch; size_t per_thread;
} ssd_job;

static size_t ssd_per_thread(int Q, int P) {
    return ((sizeof(float) * ((size_t)Q * Q + 2 * (size_t)Q * P) + sizeof(double) * Q) + 63) & ~(size_t)63;
}

static void ssd_g_task(void *arg, int i, int tid) {
    ssd_job *j = arg;
    int c = i / j->G, g = i % j->G, c0 = c * j->Q, l = j->L - c0 < j->Q ? j->L - c0 : j->Q;
    size_t bs = (size_t)j->G * j->N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, l, j->N, 1.0f, j->Cm + (size_t)c0 * bs + (size_t)g * j->N,
                (int)bs, j->Bm + (size_t)c0 * bs + (size_t)g * j->N, (int)bs, 0.0f,
                j->Gall + ((size_t)c * j->G + g) * j->Q * j->Q, j->Q);
}

static void ssd_head_task(void *arg, int h, int tid) {
    ssd_job *j = arg;
    int H = j->H, P = j->P, N = j->N, Q = j->Q, G = j->G, g = h / (H / G);
    size_t xs = (size_t)H * P, bs = (size_t)G * N;
    double *cum = (double *)(void *)(j->scratch + (size_t)tid * j->per_thread); /* 64-byte aligned */
    float *M = (float *)(void *)(cum + Q);
    float *xw = M + (size_t)Q * Q, *ys = xw + (size_t)Q * P;
    float *S = j->state + (size_t)h * P * N;
    double A = -exp((double)j->A_log[h]);
    for (int c = 0; c < j->n_chunks; c++) {
        int c0 = c * Q, l = j->L - c0 < Q ? j->L - c0 : Q;
        double run = 0.0;
        for (int i = 0; i < l; i++) {
            run += (double)j->dtv[(size_t)(c0 + i) * H + h] * A;
            cum[i] = run;
        }
        /* M[i][j] = exp(cum_i - cum_j) G[i][j] dt'_j for j <= i, else 0 */
        const float *Gg = j->Gall + ((size_t)c * G + g) * Q * Q;
        for (int i = 0; i < l; i++) {
            float *mi = M + (size_t)i * Q;
            for (int k = 0; k <= i; k++)
                mi[k] = (float)exp(cum[i] - cum[k]) * Gg[(size_t)i * Q + k] * j->dtv[(size_t)(c0 + k) * H + h];
            for (int k = i + 1; k < l; k++) mi[k] = 0.0f;
        }
        const float *xh = j->x + (size_t)c0 * xs + (size_t)h * P;
        /* intra-chunk: ys = M X */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l, P, l, 1.0f, M, Q, xh, (int)xs, 0.0f, ys, P);
        /* inter-chunk: ys[i] += exp(cum_i) * (C_i S^T) */
        const float *Cg = j->Cm + (size_t)c0 * bs + (size_t)g * N;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l, P, N, 1.0f, Cg, (int)bs, S, N, 0.0f, xw, P);
        for (int i = 0; i < l; i++) {
            float e = (float)exp(cum[i]);
            const float *xi = xh + (size_t)i * xs;
            float *yo = j->y + (size_t)(c0 + i) * xs + (size_t)h * P;
            for (int p = 0; p < P; p++) yo[p] = ys[(size_t)i * P + p] + e * xw[(size_t)i * P + p] + j->D[h] * xi[p];
        }
        /* state: S = exp(cum_l) S + sum_j exp(cum_l - cum_j) dt'_j x_j B_j^T */
        double last = cum[l - 1];
        for (int k = 0; k < l; k++) {
            float wk = (float)exp(last - cum[k]) * j->dtv[(size_t)(c0 + k) * H + h];
            const float *xk = xh + (size_t)k * xs;
            for (int p = 0; p < P; p++) xw[(size_t)k * P + p] = wk * xk[p];
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, P, N, l, 1.0f, xw, P, j->Bm + (size_t)c0 * bs + (size_t)g * N,
                    (int)bs, (float)exp(last), S, N);
    }
}

static void ssd_chunked_run(op_backend *b, float *y, const float *x, const float *dt, const float *A_log,
                            const float *Bm, const float *Cm, const float *D, const float *dt_bias, float *state, int L,
                            int H, int P, int G, int N, int chunk, float dt_min, float dt_max) {
    if (L <= 0) return;
    if (chunk <= 0) chunk = 256;
    int Q = chunk < L ? chunk : L, n_chunks = (L + Q - 1) / Q;
    int nt = b ? cpu_threads(b) : 1; /* scratch for every pool thread: any may run a task */
    float *dtv = xmalloc(sizeof(float) * (size_t)L * H);
    float *Gall = xmalloc(sizeof(float) * (size_t)n_chunks * G * Q * Q);
    size_t per = ssd_per_thread(Q, P);
    char *scr = NULL;
    if (posix_memalign((void **)&scr, 64, per * nt) != 0) abort();
    for (int t = 0; t < L; t++)
        for (int h = 0; h < H; h++)
            dtv[(size_t)t * H + h] = scan_dt(dt[(size_t)t * H + h], dt_bias[h], dt_min, dt_max);
    ssd_job j = {y, x, A_log, Bm, Cm, D, state, dtv, Gall, L, H, P, G, N, Q, n_chunks, scr, per};
    if (nt > 1 && H > 1) {
        cpu_parallel_for(b, n_chunks * G, ssd_g_task, &j);
        cpu_parallel_for(b, H, ssd_head_task, &j);
    } else {
        for (int i = 0; i < n_chunks * G; i++) ssd_g_task(&j, i, 0);
        for (int h = 0; h < H; h++) ssd_head_task(&j, h, 0);
    }
    free(dtv);
    free(Gall);
    free(scr);
}

void cpu_ssd_scan_chunked(float *y, const float *x, const float *dt, const float *A_log,
                          const float *Bm, const float *Cm, const float *D, const float *dt_bias,
                          float *state, int L, int H, int P, int G, int N, int chunk,
                          float dt_min, float dt_max) {
    ssd_chunked_run(NULL, y, x, dt, A_log, Bm, Cm, D, dt_bias, state, L, H, P, G, N, chunk, dt_min, dt_max);
}

/* decode: one task per (sequence, head) of single-token sequences */
typedef struct rec_job {
    float *y; const float *x, *dt, *A_log, *B, *C, *D, *dtb; float *st;
    const int32_t *cu, *slots; int H, P, G, N; float dmin, dmax;
} rec_job;
static void rec_task(void *arg, int i, int tid) {
    rec_job *j = arg;
    int s = i / j->H, h = i % j->H, t = j->cu[s], g = h / (j->H / j->G), P = j->P, N = j->N;
    float d = scan_dt(j->dt[(size_t)t * j->H + h], j->dtb[h], j->dmin, j->dmax);
    float dA = expf(d * -expf(j->A_log[h]));
    const float *xv = j->x + ((size_t)t * j->H + h) * P;
    const float *bv = j->B + ((size_t)t * j->G + g) * N, *cv = j->C + ((size_t)t * j->G + g) * N;
    float *S = j->st + ((size_t)j->slots[s] * j->H + h) * P * N;
    float *yv = j->y + ((size_t)t * j->H + h) * P;
    for (int p = 0; p < P; p++) {
        float *sp = S + (size_t)p * N;
        float dx = d * xv[p], acc = 0.0f;
        for (int n = 0; n < N; n++) {
            sp[n] = sp[n] * dA + dx * bv[n];
            acc += sp[n] * cv[n];
        }
        yv[p] = acc + j->D[h] * xv[p];
    }
}

void cpu_ssd_scan(op_backend *b, void *y, const void *x, const void *dt, const float *A_log,
                  const void *Bm, const void *Cm, const float *D, const float *dt_bias,
                  float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq,
                  int T, int xbc_ld, int dt_ld, int H, int P, int G, int N, int chunk, float dt_min,
                  float dt_max) {
    CHECK(cu_seqlens[n_seq] == T, "cu_seqlens[%d] = %d != T %d", n_seq, cu_seqlens[n_seq], T);
    CHECK(G > 0 && H % G == 0, "heads %d not a multiple of groups %d", H, G);
    size_t xs = (size_t)H * P, bs = (size_t)G * N;
    CHECK((size_t)xbc_ld >= xs && (size_t)xbc_ld >= bs && dt_ld >= H, "ssd_scan: row strides x/B/C %d, dt %d too small",
          xbc_ld, dt_ld);
    /* The reference works on dense rows: strided inputs are packed first. */
    float *packed = NULL;
    if ((size_t)xbc_ld != xs || (size_t)xbc_ld != bs || dt_ld != H) {
        packed = xmalloc(sizeof(float) * (size_t)T * (xs + 2 * bs + (size_t)H));
        float *px = packed, *pb = px + (size_t)T * xs, *pc = pb + (size_t)T * bs, *pd = pc + (size_t)T * bs;
        for (int t = 0; t < T; t++) {
            memcpy(px + (size_t)t * xs, (const float *)x + (size_t)t * xbc_ld, sizeof(float) * xs);
            memcpy(pb + (size_t)t * bs, (const float *)Bm + (size_t)t * xbc_ld, sizeof(float) * bs);
            memcpy(pc + (size_t)t * bs, (const float *)Cm + (size_t)t * xbc_ld, sizeof(float) * bs);
            memcpy(pd + (size_t)t * H, (const float *)dt + (size_t)t * dt_ld, sizeof(float) * H);
        }
        x = px, Bm = pb, Cm = pc, dt = pd;
    }
    if (T == n_seq && (double)T * H * P * N >= 65536.0 && cpu_threads(b) > 1) { /* all single tokens */
        rec_job j = {y, x, dt, A_log, Bm, Cm, D, dt_bias, ssm_state, cu_seqlens, slots, H, P, G, N, dt_min, dt_max};
        cpu_parallel_for(b, n_seq * H, rec_task, &j);
        free(packed);
        return;
    }
    for (int s = 0; s < n_seq; s++) {
        int t0 = cu_seqlens[s], L = cu_seqlens[s + 1] - t0;
        float *st = ssm_state + (size_t)slots[s] * H * P * N;
        const float *xx = (const float *)x + (size_t)t0 * xs, *dd = (const float *)dt + (size_t)t0 * H;
        const float *bb = (const float *)Bm + (size_t)t0 * bs, *cc = (const float *)Cm + (size_t)t0 * bs;
        float *yy = (float *)y + (size_t)t0 * xs;
        if (L == 1)
            cpu_ssd_scan_recurrent(yy, xx, dd, A_log, bb, cc, D, dt_bias, st, L, H, P, G, N,
                                   dt_min, dt_max);
        else
            ssd_chunked_run(b, yy, xx, dd, A_log, bb, cc, D, dt_bias, st, L, H, P, G, N, chunk, dt_min, dt_max);
    }
    free(packed);
}

void cpu_gated_rmsnorm(op_backend *b, void *out, const void *y, const void *z, int z_ld, const void *w,
                       int T, int D, int group_size, float eps) {
    CHECK(group_size > 0 && D % group_size == 0, "group_size %d does not divide %d", group_size, D);
    CHECK(z_ld >= D, "gated_rmsnorm: z row stride %d < %d", z_ld, D);
    const float *Y = y, *Z = z, *W = w;
    float *O = out;
    for (int t = 0; t < T; t++) {
        const float *yr = Y + (size_t)t * D, *zr = Z + (size_t)t * z_ld;
        float *orow = O + (size_t)t * D;
        for (int i = 0; i < D; i++) orow[i] = yr[i] * silu(zr[i]);
        for (int g0 = 0; g0 < D; g0 += group_size) {
            double ss = 0.0;
            for (int i = g0; i < g0 + group_size; i++) ss += (double)orow[i] * orow[i];
            float r = (float)(1.0 / sqrt(ss / group_size + eps));
            for (int i = g0; i < g0 + group_size; i++) orow[i] = W[i] * (orow[i] * r);
        }
    }
}
