/* kernels/cuda/cuda_ssd_chunked.cu — the SSD scan (fp32 state) for prefill in its chunked
 * "state space duality" form: the quadratic intra-chunk part and the chunk states run as
 * cuBLASLt strided-batched GEMMs on tensor cores (TF32 inputs, fp32 accumulation), glue
 * kernels do the rest. The default prefill scan (THINKFAST_SSD_CHUNKED=0 turns it off; validated
 * on an H100 by tests/gpu/test_cuda_ssd_chunked.c, 1.16-1.36x the recurrent kernel there);
 * cu_ssd_scan (cuda_mamba.cu) calls cu_ssd_chunked for non-decode steps and falls back to the
 * exact recurrence when it returns -1.
 *
 * Math (kernels/cpu/cpu_mamba.c has the reference and the notation): per head h of group g,
 * dt'_t = clamp(softplus(dt_t + dt_bias), dt_min, dt_max), a_t = dt'_t A, A = -exp(A_log);
 * in a chunk of length l <= Q, cum_i = a_0 + .. + a_i, S = state entering the chunk:
 *   y_i = exp(cum_i) C_i S^T + sum_{j<=i} exp(cum_i - cum_j) (C_i . B_j) dt'_j x_j + D x_i
 *   S'  = exp(cum_{l-1}) S + sum_j exp(cum_{l-1} - cum_j) dt'_j x_j B_j^T
 * Every exponent is <= 0 (A < 0, dt' >= 0), so nothing overflows.
 *
 * Plan of one call: cu_seqlens is copied to the host (prefill is never graph-captured; during
 * a capture this path declines) and cut into chunks (sequence, first token, length <= Q),
 * Q = `chunk` when it is a multiple of 32 in [32, 256], else 128. Chunks are processed in
 * waves that fit SSDC_WAVE_BYTES of scratch (or the scratch already there); a sequence may
 * straddle waves: each wave reads the entering state from ssm_state[slot] and writes the
 * state after its last chunk back. Per wave, with hpg = H/G heads per group, R = hpg*P, and
 * the fp32 scratch buffers (row-major, "[a, b, c]" = a-major):
 *   dtp, cum [nc, H, Q]  dt'_i and cum_i (0 / constant on padding rows i >= l); clast [nc, H]
 *   X, XWh, XWl [nc, G, Q, R]  x and w_i x_i (w_i = exp(cum_{l-1} - cum_i) dt'_i, split hi + lo)
 *            of the heads of group g side by side (column hh*P + p for head h = g*hpg + hh);
 *            zero rows i >= l
 *   Bc, Cc   [nc, G, Q, N]  B and C; zero rows i >= l
 *   CB       [nc, G, Q, Q]  C_i . B_j;  Mh, Ml [nc, H, Q, Q] (Mh in place over CB when G == H)
 *   Sh, Sl   [nc, H, P, N]  chunk states (Sh), then the states entering each chunk (hi + lo)
 *   Y        [nc, G, Q, R]  y before the D x term
 * Steps (kernels k_ssdc_*, GEMMs are column-major cuBLASLt calls, see ssdc_gemm):
 *   1 k_ssdc_dt      dtp, cum (warp scan per (chunk, head)), clast
 *   2 k_ssdc_gather  X, XW, Bc, Cc from the strided bf16 rows
 *   3 GEMM CB        per (c, g): CB = Cc Bc^T
 *   4 GEMM state     per (c, g): S[R, N] = XW^T Bc  (the heads of a group stacked; 2 calls)
 *   5 k_ssdc_pass    per (sequence, h, p, n): walks the sequence's chunks, S <- entering
 *                    state, state <- exp(clast) state + S; initial/final in ssm_state[slot]
 *   6 GEMM inter     per (c, g): Y[Q, R] = Cc S^T  (2 calls: Sh, Sl)
 *   7 k_ssdc_mask    per (c, h): M = causal(exp(cum_i - cum_j) CB dt'_j); Y rows *= exp(cum_i)
 *   8 GEMM intra     per (c, h) (2 hpg calls of nc*G batches): Y += Mh X + Ml X
 *   9 k_ssdc_out     y = Y + D x (bf16), valid rows only
 * Precision: B, C, x are bf16 values, exact in TF32, so CB is exact up to fp32 accumulation.
 * The other operands (M, w x, the entering state) are split v = hi + lo, hi = v rounded to
 * TF32, lo = v - hi (exact in fp32), and each such GEMM runs twice (hi, then lo accumulated):
 * the tensor cores may truncate lo to 10 mantissa bits, which leaves ~2^-21 relative, i.e. an
 * fp32-accurate scan. (Plain TF32 measured in a host emulation: 1e-3 absolute state error on
 * elements that are cancellations of O(1) terms; split: ~5e-6, the fp32 noise level.)
 * THINKFAST_SSD_CHUNKED=2 skips the split of M and of the entering state (they only reach y,
 * which is bf16; the state keeps its split): ~27% less scratch traffic, one GEMM less per
 * head group; emulated y error up to ~0.02 (|y| + 0.1) instead of ~0.004.
 * Not done: bf16 operands / fused MMA kernels (less scratch traffic: M is materialised, Q*Q per
 * head and chunk), caching the cuBLASLt heuristics per shape, overlapping the host planning.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

#ifndef SSDC_WAVE_BYTES /* scratch one wave may use (more if already there) */
#define SSDC_WAVE_BYTES ((size_t)128 << 20)
#endif
#define SSDC_MAX_CHUNKS 8192                /* chunks per wave (grid and batch sizes) */
#define SSDC_NT 256

/* ---- kernels ---- */
static __device__ __forceinline__ float ssdc_softplus(float v) { return v > 20.f ? v : log1pf(expf(v)); }
/* v rounded to the nearest TF32 value (10-bit mantissa, ties to even; v finite). v - tf32(v) is
 * exact in fp32 and is the "lo" half of the operand split. */
static __device__ __forceinline__ float ssdc_tf32(float v) {
    uint32_t u = __float_as_uint(v);
    u += 0xfffu + ((u >> 13) & 1u);
    return __uint_as_float(u & 0xffffe000u);
}

/* grid (nc, ceil(H/4)), 128 threads: warp w owns head blockIdx.y*4 + w of chunk blockIdx.x. */
__global__ void __launch_bounds__(128) k_ssdc_dt(float *dtp, float *cum, float *clast, const bf16 *dt, int dt_ld,
                                                 const float *A_log, const float *dt_bias, const int *ck_t0,
                                                 const int *ck_len, int H, int Q, float dt_min, float dt_max) {
    const int c = blockIdx.x, lane = threadIdx.x & 31, h = blockIdx.y * 4 + (threadIdx.x >> 5);
    if (h >= H) return; /* warp-uniform */
    const int t0 = ck_t0[c], l = ck_len[c];
    const float A = -expf(A_log[h]), db = dt_bias[h];
    const size_t base = ((size_t)c * H + h) * Q;
    float carry = 0.f;
    for (int i0 = 0; i0 < Q; i0 += 32) { /* Q % 32 == 0 */
        const int i = i0 + lane;
        float d = 0.f; /* padding rows: dt' = 0, so cum stays at cum_{l-1} */
        if (i < l) {
            d = ssdc_softplus(__bfloat162float(dt[(int64_t)(t0 + i) * dt_ld + h]) + db);
            d = fminf(fmaxf(d, dt_min), dt_max);
        }
        float a = d * A;
        for (int o = 1; o < 32; o <<= 1) { /* inclusive warp scan */
            float v = __shfl_up_sync(0xffffffffu, a, o);
            if (lane >= o) a += v;
        }
        const float cs = carry + a;
        dtp[base + i] = d;
        cum[base + i] = cs;
        carry = __shfl_sync(0xffffffffu, cs, 31);
    }
    if (lane == 0) clast[(size_t)c * H + h] = carry;
}

/* grid (nc, Q), SSDC_NT threads: row i = blockIdx.y of chunk c = blockIdx.x. */
__global__ void __launch_bounds__(SSDC_NT)
    k_ssdc_gather(float *X, float *XWh, float *XWl, float *Bc, float *Cc, const bf16 *x, const bf16 *B, const bf16 *C,
                  int xbc_ld, const float *dtp, const float *cum, const float *clast, const int *ck_t0,
                  const int *ck_len, int H, int P, int G, int N, int Q) {
    const int c = blockIdx.x, i = blockIdx.y;
    const bool valid = i < ck_len[c];
    const int64_t src = valid ? (int64_t)(ck_t0[c] + i) * xbc_ld : 0;
    const int R = (H / G) * P;
    for (int col = threadIdx.x; col < H * P; col += blockDim.x) {
        const int g = col / R, r = col - g * R, h = col / P;
        const size_t o = (((size_t)c * G + g) * Q + i) * R + r;
        float v = 0.f, w = 0.f;
        if (valid) {
            const size_t ch = (size_t)c * H + h;
            v = __bfloat162float(x[src + col]);
            w = expf(clast[ch] - cum[ch * Q + i]) * dtp[ch * Q + i];
        }
        const float xw = w * v, hi = ssdc_tf32(xw);
        X[o] = v;
        XWh[o] = hi;
        XWl[o] = xw - hi;
    }
    for (int col = threadIdx.x; col < G * N; col += blockDim.x) {
        const int g = col / N, n = col - g * N;
        const size_t o = (((size_t)c * G + g) * Q + i) * N + n;
        Bc[o] = valid ? __bfloat162float(B[src + col]) : 0.f;
        Cc[o] = valid ? __bfloat162float(C[src + col]) : 0.f;
    }
}

/* grid (ceil(H*P*N / SSDC_NT), ns), SSDC_NT threads: element e of sequence k's state. */
__global__ void __launch_bounds__(SSDC_NT) k_ssdc_pass(float *S, float *Sl, float *state, const float *clast,
                                                       const int *sq_c0, const int *sq_seq, const int32_t *slots,
                                                       int H, int PN) {
    const int k = blockIdx.y, e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= H * PN) return;
    const int h = e / PN, c0 = sq_c0[k], c1 = sq_c0[k + 1];
    const size_t HPN = (size_t)H * PN;
    float *st = state + (int64_t)slots[sq_seq[k]] * (int64_t)HPN + e;
    float s = *st;
    for (int c = c0; c < c1; c++) {
        float *sc = S + (size_t)c * HPN + e;
        const float loc = *sc; /* this chunk's own contribution */
        if (Sl) { /* the state entering chunk c, split hi + lo */
            const float hi = ssdc_tf32(s);
            *sc = hi;
            Sl[(size_t)c * HPN + e] = s - hi;
        } else {
            *sc = s;
        }
        s = expf(clast[(size_t)c * H + h]) * s + loc;
    }
    *st = s;
}

/* grid (nc * H), SSDC_NT threads: M of (chunk, head) and the exp(cum_i) row scale of Y. */
__global__ void __launch_bounds__(SSDC_NT) k_ssdc_mask(float *Mh, float *Ml, const float *CB, float *Y,
                                                       const float *dtp, const float *cum, const int *ck_len, int H,
                                                       int G, int P, int Q) {
    __shared__ float s_cum[256], s_dt[256];
    const int c = blockIdx.x / H, h = blockIdx.x - c * H, hpg = H / G, g = h / hpg, hh = h - g * hpg, R = hpg * P;
    const int l = ck_len[c];
    const size_t ch = (size_t)c * H + h;
    for (int i = threadIdx.x; i < Q; i += blockDim.x) {
        s_cum[i] = cum[ch * Q + i];
        s_dt[i] = dtp[ch * Q + i];
    }
    __syncthreads();
    const float *cb = CB + ((size_t)c * G + g) * Q * Q;
    float *mh = Mh + ch * Q * Q, *ml = Ml ? Ml + ch * Q * Q : NULL; /* mh == cb when G == H: each element
                                                                     * is read, then written, by one thread */
    for (int idx = threadIdx.x; idx < Q * Q; idx += blockDim.x) {
        const int i = idx / Q, j = idx - i * Q;
        float v = 0.f;
        if (j <= i && i < l) v = expf(s_cum[i] - s_cum[j]) * cb[idx] * s_dt[j];
        if (Ml) {
            const float hi = ssdc_tf32(v);
            mh[idx] = hi;
            ml[idx] = v - hi;
        } else {
            mh[idx] = v;
        }
    }
    float *y = Y + ((size_t)c * G + g) * Q * R + (size_t)hh * P;
    for (int idx = threadIdx.x; idx < Q * P; idx += blockDim.x) {
        const int i = idx / P, p = idx - i * P;
        float *yp = y + (size_t)i * R + p;
        *yp = i < l ? *yp * expf(s_cum[i]) : 0.f;
    }
}

/* grid (nc, Q), SSDC_NT threads: y row t0 + i (i < l) = Y + D x, bf16. */
__global__ void __launch_bounds__(SSDC_NT) k_ssdc_out(bf16 *y, const float *Y, const bf16 *x, int xbc_ld,
                                                      const float *D, const int *ck_t0, const int *ck_len, int H,
                                                      int P, int G, int Q) {
    const int c = blockIdx.x, i = blockIdx.y;
    if (i >= ck_len[c]) return;
    const int64_t t = ck_t0[c] + i;
    const int R = (H / G) * P;
    for (int col = threadIdx.x; col < H * P; col += blockDim.x) {
        const int g = col / R, r = col - g * R, h = col / P;
        const float v = Y[(((size_t)c * G + g) * Q + i) * R + r] + D[h] * __bfloat162float(x[t * xbc_ld + col]);
        y[t * (H * P) + col] = __float2bfloat16(v);
    }
}
/* ---- end kernels ---- */

/* Largest power of two <= 256 dividing the byte address and the byte batch stride. */
static int ssdc_align(const void *p, long long stride_elems) {
    uintptr_t u = (uintptr_t)p | (uintptr_t)(stride_elems * 4);
    int a = 256;
    while (a > 4 && (u % (uintptr_t)a)) a >>= 1;
    return a;
}

/* Column-major strided-batched D = op(A) op(B) (+ beta D), fp32 matrices, TF32 tensor cores:
 * op(A) m x k, op(B) k x n, D m x n (ldd); A is stored m x k (ta N) or k x m (ta T), B k x n
 * (tb N) or n x k (tb T); batch i uses A + i sa, B + i sb, D + i sd (elements). */
static void ssdc_gemm(cu_impl *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *A,
                      int lda, long long sa, const float *B, int ldb, long long sb, float beta, float *D, int ldd,
                      long long sd, int batch) {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F_FAST_TF32, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    const int an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, an ? m : k, an ? k : m, lda));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, bn ? k : n, bn ? n : k, ldb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, m, n, ldd));
    int32_t bc = batch;
    int64_t s3[3] = {sa, sb, sd};
    cublasLtMatrixLayout_t lay[3] = {la, lb, ld};
    for (int i = 0; i < 3; i++) {
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(lay[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(lay[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s3[i],
                                                      sizeof s3[i]));
    }
    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = c->lt_ws_bytes;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t al[3] = {(uint32_t)ssdc_align(A, sa), (uint32_t)ssdc_align(B, sb), (uint32_t)ssdc_align(D, sd)};
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], 4));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], 4));
    cublasLtMatmulHeuristicResult_t res;
    int got = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &res, &got));
    CHECK(got > 0, "ssd_scan (chunked): cuBLASLt has no TF32 algorithm for m=%d n=%d k=%d batch %d", m, n, k, batch);
    const float alpha = 1.f;
    CUBLAS_CHECK(cublasLtMatmul(c->lt, op, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &res.algo, c->lt_ws,
                                c->lt_ws_bytes, c->stream));
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(op);
}

static size_t ssdc_up(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

int cu_ssd_chunked(op_backend *b, void *y, const void *x, const void *dt, const float *A_log, const void *Bm,
                   const void *Cm, const float *D, const float *dt_bias, float *ssm_state, const int32_t *cu_seqlens,
                   const int32_t *slots, int n_seq, int T, int xbc_ld, int dt_ld, int H, int P, int G, int N,
                   int chunk, float dt_min, float dt_max) {
    cu_impl *c = cu_of(b);
    if (c->capturing || n_seq <= 0 || T <= 0) return -1;
    if (H <= 0 || P <= 0 || G <= 0 || N <= 0 || N > 256 || H % G != 0 || P % 8 != 0 || N % 8 != 0) return -1;
    if (xbc_ld < H * P || xbc_ld < G * N || dt_ld < H) return -1; /* the recurrent path reports it */
    const int Q = (chunk >= 32 && chunk <= 256 && chunk % 32 == 0) ? chunk : 128;
    const int hpg = H / G, R = hpg * P;
    const int split = c->ssd_chunked != 2; /* 2: M and the entering state in plain TF32 (y only) */

    /* chunk table on the host */
    int32_t *cu = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_seq + 1));
    CHECK(cu != NULL, "out of host memory");
    CUDA_CHECK(cudaMemcpyAsync(cu, cu_seqlens, sizeof(int32_t) * (size_t)(n_seq + 1), cudaMemcpyDeviceToHost,
                               c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CHECK(cu[0] >= 0 && cu[n_seq] == T, "ssd_scan: cu_seqlens[0] = %d, cu_seqlens[%d] = %d (T = %d)", cu[0], n_seq,
          cu[n_seq], T);
    long total = 0;
    for (int s = 0; s < n_seq; s++) {
        CHECK(cu[s + 1] >= cu[s], "ssd_scan: cu_seqlens decreases at %d (%d > %d)", s, cu[s], cu[s + 1]);
        total += (cu[s + 1] - cu[s] + Q - 1) / Q;
    }
    if (total == 0) {
        free(cu);
        return 0;
    }
    /* per-chunk scratch (fp32 elements) and the wave size */
    enum { DTP, CUM, CLAST, XB, XWH, XWL, BB, CC, CB, MH, ML, SH, SL, YB, NBUF };
    const size_t QH = (size_t)Q * H, QG = (size_t)Q * G, QHP = QH * P, QGN = QG * N, HPN = (size_t)H * P * N;
    const size_t per[NBUF] = {QH, QH, (size_t)H, QHP, QHP, QHP, QGN, QGN, QG * Q, G == H ? 0 : QH * Q,
                              split ? QH * Q : 0, HPN, split ? HPN : 0, QHP};
    size_t per_chunk = 0;
    for (int i = 0; i < NBUF; i++) per_chunk += 4 * per[i];
    const size_t budget = c->scratch_bytes > SSDC_WAVE_BYTES ? c->scratch_bytes : SSDC_WAVE_BYTES;
    long ncw = (long)(budget / per_chunk);
    if (ncw < 1) ncw = 1;
    if (ncw > SSDC_MAX_CHUNKS) ncw = SSDC_MAX_CHUNKS;
    if (ncw > 65535 / G) ncw = 65535 / G; /* GEMM batch counts nc * G */
    if (ncw < 1) ncw = 1;
    if (ncw > total) ncw = total;
    const long nw = (total + ncw - 1) / ncw;
    /* tables: ck_t0[total] ck_len[total], then per wave sq_c0[ncw + 1] sq_seq[ncw] */
    const size_t tab_n = 2 * (size_t)total + (size_t)nw * (2 * (size_t)ncw + 1);
    int *tab = (int *)calloc(tab_n, sizeof(int));
    int *ck_seq = (int *)malloc(sizeof(int) * (size_t)total);
    int *wave_ns = (int *)malloc(sizeof(int) * (size_t)nw);
    CHECK(tab && ck_seq && wave_ns, "out of host memory");
    long k = 0;
    for (int s = 0; s < n_seq; s++)
        for (int t = cu[s]; t < cu[s + 1]; t += Q, k++) {
            tab[k] = t;
            tab[total + k] = cu[s + 1] - t < Q ? cu[s + 1] - t : Q;
            ck_seq[k] = s;
        }
    for (long w = 0; w < nw; w++) {
        int *sq_c0 = tab + 2 * total + w * (2 * ncw + 1), *sq_seq = sq_c0 + ncw + 1;
        const long k0 = w * ncw, k1 = k0 + ncw < total ? k0 + ncw : total;
        int ns = 0;
        for (k = k0; k < k1; k++)
            if (k == k0 || ck_seq[k] != ck_seq[k - 1]) {
                sq_c0[ns] = (int)(k - k0);
                sq_seq[ns++] = ck_seq[k];
            }
        sq_c0[ns] = (int)(k1 - k0);
        wave_ns[w] = ns;
    }

    /* scratch: tables, then one wave's buffers (256-byte aligned each) */
    const size_t sz_tab = ssdc_up(tab_n * sizeof(int));
    size_t need = sz_tab;
    for (int i = 0; i < NBUF; i++) need += ssdc_up((size_t)ncw * per[i] * 4);
    char *base = (char *)cu_scratch(c, need);
    int *tab_d = (int *)base;
    float *buf[NBUF];
    size_t off = sz_tab;
    for (int i = 0; i < NBUF; i++) {
        buf[i] = (float *)(base + off);
        off += ssdc_up((size_t)ncw * per[i] * 4);
    }
    float *dtp = buf[DTP], *cum = buf[CUM], *clast = buf[CLAST], *X = buf[XB], *XWh = buf[XWH], *XWl = buf[XWL];
    float *Bc = buf[BB], *Cc = buf[CC], *CBm = buf[CB], *Mh = G == H ? buf[CB] : buf[MH];
    float *Ml = split ? buf[ML] : NULL, *Sh = buf[SH], *Sl = split ? buf[SL] : NULL, *Y = buf[YB];
    CUDA_CHECK(cudaMemcpyAsync(tab_d, tab, tab_n * sizeof(int), cudaMemcpyHostToDevice, c->stream));

    cudaStream_t st = c->stream;
    const bf16 *xb = (const bf16 *)x, *Bb = (const bf16 *)Bm, *Cb = (const bf16 *)Cm;
    for (long w = 0; w < nw; w++) {
        const long k0 = w * ncw;
        const int nc = (int)(k0 + ncw < total ? ncw : total - k0), ns = wave_ns[w];
        const int *ck_t0 = tab_d + k0, *ck_len = tab_d + total + k0;
        const int *sq_c0 = tab_d + 2 * total + w * (2 * ncw + 1), *sq_seq = sq_c0 + ncw + 1;
        k_ssdc_dt<<<dim3(nc, (H + 3) / 4), 128, 0, st>>>(dtp, cum, clast, (const bf16 *)dt, dt_ld, A_log, dt_bias,
                                                          ck_t0, ck_len, H, Q, dt_min, dt_max);
        CUDA_CHECK_LAUNCH();
        k_ssdc_gather<<<dim3(nc, Q), SSDC_NT, 0, st>>>(X, XWh, XWl, Bc, Cc, xb, Bb, Cb, xbc_ld, dtp, cum, clast,
                                                        ck_t0, ck_len, H, P, G, N, Q);
        CUDA_CHECK_LAUNCH();
        const int nb = nc * G;
        /* CB[c,g][i][j] = sum_n C[i][n] B[j][n]: column-major CB^T (Q x Q, ld Q) = Bc^T Cc with
         * Bc, Cc stored N x Q (ld N); batch c*G + g. Exact operands (bf16 values). */
        ssdc_gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, Q, Q, N, Bc, N, (long long)Q * N, Cc, N, (long long)Q * N, 0.f, CBm, Q,
                  (long long)Q * Q, nb);
        /* S[c,g][r][n] = sum_j XW[j][r] B[j][n]: column-major S^T (N x R, ld N) = Bc (N x Q, ld N)
         * times XW^T, XW stored R x Q (ld R); XW = XWh + XWl. */
        ssdc_gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, N, R, Q, Bc, N, (long long)Q * N, XWh, R, (long long)Q * R, 0.f, Sh, N,
                  (long long)R * N, nb);
        ssdc_gemm(c, CUBLAS_OP_N, CUBLAS_OP_T, N, R, Q, Bc, N, (long long)Q * N, XWl, R, (long long)Q * R, 1.f, Sh, N,
                  (long long)R * N, nb);
        k_ssdc_pass<<<dim3((unsigned)cu_blocks(HPN, SSDC_NT), ns), SSDC_NT, 0, st>>>(Sh, Sl, ssm_state, clast, sq_c0,
                                                                                     sq_seq, slots, H, P * N);
        CUDA_CHECK_LAUNCH();
        /* Y[c,g][i][r] = sum_n C[i][n] S_in[r][n]: column-major Y^T (R x Q, ld R) = S^T Cc with S
         * stored N x R (ld N), Cc N x Q (ld N); S_in = Sh + Sl. */
        ssdc_gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, R, Q, N, Sh, N, (long long)R * N, Cc, N, (long long)Q * N, 0.f, Y, R,
                  (long long)Q * R, nb);
        if (split)
            ssdc_gemm(c, CUBLAS_OP_T, CUBLAS_OP_N, R, Q, N, Sl, N, (long long)R * N, Cc, N, (long long)Q * N, 1.f, Y,
                      R, (long long)Q * R, nb);
        k_ssdc_mask<<<nc * H, SSDC_NT, 0, st>>>(Mh, Ml, CBm, Y, dtp, cum, ck_len, H, G, P, Q);
        CUDA_CHECK_LAUNCH();
        /* Y[c,h][i][p] += sum_j M[c,h][i][j] X[c,h][j][p], for head hh of each group: column-major
         * Y^T (P x Q, ld R, at column hh*P) += X^T (P x Q, ld R, at column hh*P) times M^T (Q x Q,
         * ld Q; batch c*G + g is head (c, g*hpg + hh), stride hpg*Q*Q); M = Mh + Ml. */
        for (int hh = 0; hh < hpg; hh++)
            for (int part = 0; part < 1 + split; part++)
                ssdc_gemm(c, CUBLAS_OP_N, CUBLAS_OP_N, P, Q, Q, X + (size_t)hh * P, R, (long long)Q * R,
                          (part ? Ml : Mh) + (size_t)hh * Q * Q, Q, (long long)hpg * Q * Q, 1.f, Y + (size_t)hh * P, R,
                          (long long)Q * R, nb);
        k_ssdc_out<<<dim3(nc, Q), SSDC_NT, 0, st>>>((bf16 *)y, Y, xb, xbc_ld, D, ck_t0, ck_len, H, P, G, Q);
        CUDA_CHECK_LAUNCH();
    }
    free(tab);
    free(ck_seq);
    free(wave_ns);
    free(cu);
    return 0;
}
