/* kernels/cuda/cuda_mamba.cu — the Mamba-2 mixer ops of the CUDA backend: causal depthwise
 * conv1d + SiLU with fp32 conv state, and the SSD scan with fp32 SSM state.
 *
 * The scan keeps each sequence's state in registers: a block covers (sequence, head, a block
 * of head_dim rows); each thread owns PER consecutive d_state entries of one row, LPR threads
 * share a row and reduce y_t = h_t C_t with shuffles. For decode (one token per sequence)
 * that is one read and one write of the state, 16-byte wide. For prefill the same kernel walks
 * the sequence's tokens in order (the exact recurrence, parallel over sequences × heads ×
 * row blocks), prefetching the next token's inputs. The chunked SSD form on tensor cores
 * (cuda_ssd_chunked.cu: cuBLASLt batched TF32 GEMMs with hi/lo splits) is tried first for prefill
 * unless THINKFAST_SSD_CHUNKED=0; the recurrent form ignores `chunk` (the result is the same
 * function).
 * Strided inputs: conv1d reads x rows with stride x_ld; the scan reads x, B, C rows with stride
 * xbc_ld (column blocks of the conv output x|B|C) and dt rows with stride dt_ld (a column block
 * of the in_proj output); outputs are contiguous.
 */
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"

static __device__ __forceinline__ float silu_f(float x) { return x / (1.f + __expf(-x)); }

/* ---------------- conv1d ---------------- */
#define CONV_KMAX 8
#define CONV_NT 128
/* A block owns CONV_NT channels of one sequence; a thread owns one channel and walks the
 * sequence's tokens with the window in registers. (Staging the state slice through shared
 * memory for coalesced access measured slower on the H100: 14.2 vs 10.4 ms per decode step at
 * batch 7674 for the student's 48 convolutions; see bench/results/gpu_notes.md.) */
__global__ void __launch_bounds__(CONV_NT) k_conv1d(bf16 *out, const bf16 *x, int x_ld, const bf16 *w,
                                                   const bf16 *bias, float *state, const int32_t *cu,
                                                   const int32_t *slots, int C, int K) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int s = blockIdx.y;
    if (c >= C) return;
    int64_t slot = slots[s];
    float *st = state + (slot * C + c) * (K - 1);
    float win[CONV_KMAX], wk[CONV_KMAX];
#pragma unroll
    for (int k = 0; k < CONV_KMAX; k++) {
        win[k] = (k < K - 1) ? st[k] : 0.f;
        wk[k] = (k < K) ? __bfloat162float(w[(int64_t)c * K + k]) : 0.f;
    }
    float bv = bias ? __bfloat162float(bias[c]) : 0.f;
    int t0 = cu[s], t1 = cu[s + 1];
    for (int t = t0; t < t1; t++) {
        float xt = __bfloat162float(x[(int64_t)t * x_ld + c]);
        float acc = bv;
#pragma unroll
        for (int k = 0; k < CONV_KMAX - 1; k++)
            if (k < K - 1) acc += wk[k] * win[k];
        /* current input times the last tap */
#pragma unroll
        for (int k = 0; k < CONV_KMAX; k++)
            if (k == K - 1) acc += wk[k] * xt;
        out[(int64_t)t * C + c] = __float2bfloat16(silu_f(acc));
#pragma unroll
        for (int k = 0; k < CONV_KMAX - 1; k++) {
            if (k < K - 2) win[k] = win[k + 1];
            else if (k == K - 2) win[k] = xt;
        }
    }
#pragma unroll
    for (int k = 0; k < CONV_KMAX - 1; k++)
        if (k < K - 1) st[k] = win[k];
}

void cu_conv1d(op_backend *b, void *out, const void *x, int x_ld, const void *w, const void *bias,
               float *conv_state, const int32_t *cu_seqlens, const int32_t *slots, int n_seq, int T, int C, int K) {
    CHECK(n_seq >= 0 && T >= 0 && C > 0 && K >= 2 && K <= CONV_KMAX, "conv1d: n_seq=%d T=%d C=%d K=%d (K in 2..%d)",
          n_seq, T, C, K, CONV_KMAX);
    CHECK(x_ld >= C, "conv1d: x row stride %d < %d channels", x_ld, C);
    if (n_seq == 0) return;
    dim3 grid(cu_blocks(C, CONV_NT), n_seq);
    k_conv1d<<<grid, CONV_NT, 0, cu_of(b)->stream>>>((bf16 *)out, (const bf16 *)x, x_ld, (const bf16 *)w,
                                                     (const bf16 *)bias, conv_state, cu_seqlens, slots, C, K);
    CUDA_CHECK_LAUNCH();
}

/* ---------------- SSD scan ---------------- */
#define SSD_NT 128

typedef struct ssd_args {
    bf16 *y;
    const bf16 *x, *dt, *B, *C;
    const float *A_log, *D, *dt_bias;
    void *state; /* float or bf16 [n_slots, H, P, N] */
    const int32_t *cu, *slots;
    int xbc_ld, dt_ld; /* row strides (elements) of x, B, C and of dt */
    int H, P, G, N, LPR, RB;
    float dt_min, dt_max;
} ssd_args;

static __device__ __forceinline__ float softplus_f(float v) { return v > 20.f ? v : log1pf(__expf(v)); }

static __device__ __forceinline__ float st_ld(const float *p) { return *p; }
static __device__ __forceinline__ float st_ld(const bf16 *p) { return __bfloat162float(*p); }
static __device__ __forceinline__ void st_st(float *p, float v) { *p = v; }
static __device__ __forceinline__ void st_st(bf16 *p, float v) { *p = __float2bfloat16(v); }

template <int PER, int RPT, typename ST>
__global__ void __launch_bounds__(SSD_NT) k_ssd(ssd_args a) {
    const int tid = threadIdx.x;
    const int LPR = a.LPR;
    const int h = blockIdx.y, s = blockIdx.z;
    const int row = tid / LPR, sub = tid % LPR;
    const int n0 = sub * PER;
    const int g = h / (a.H / a.G);
    const int64_t slot = a.slots[s];
    const bool vec4 = sizeof(ST) == 4 && PER == 4 && (a.N & 3) == 0 && n0 + 4 <= a.N;
    /* this thread's rows: p_k = (blockIdx.x * RPT + k) * RB + row */
    int pc[RPT];
    bool prow[RPT];
    float hs[RPT][PER];
    ST *st[RPT];
#pragma unroll
    for (int k = 0; k < RPT; k++) {
        int p = (blockIdx.x * RPT + k) * a.RB + row;
        prow[k] = p < a.P;
        pc[k] = prow[k] ? p : a.P - 1; /* idle rows read valid memory, never write */
        st[k] = (ST *)a.state + ((slot * a.H + h) * a.P + pc[k]) * a.N;
    }
    /* all state loads first: RPT independent 16-byte loads in flight per thread */
#pragma unroll
    for (int k = 0; k < RPT; k++) {
        if (vec4) {
            float4 v = *(const float4 *)((const float *)st[k] + n0);
            hs[k][0] = v.x; hs[k][1 % PER] = v.y; hs[k][2 % PER] = v.z; hs[k][3 % PER] = v.w;
        } else {
#pragma unroll
            for (int e = 0; e < PER; e++) hs[k][e] = (n0 + e < a.N) ? st_ld(st[k] + n0 + e) : 0.f;
        }
    }
    const float A = -__expf(a.A_log[h]);
    const float Dh = a.D[h], dtb = a.dt_bias[h];
    const int t0 = a.cu[s], t1 = a.cu[s + 1];

    /* Inputs of token t: dt, x[p_k], B[n0..], C[n0..]; prefetched one token ahead. */
    float dtr = 0.f, xv[RPT], Bv[PER], Cv[PER];
#define SSD_LOAD(t)                                                                          \
    do {                                                                                     \
        dtr = __bfloat162float(a.dt[(int64_t)(t) * a.dt_ld + h]);                            \
        _Pragma("unroll") for (int k = 0; k < RPT; k++)                                      \
            xv[k] = __bfloat162float(a.x[(int64_t)(t) * a.xbc_ld + h * a.P + pc[k]]);        \
        const bf16 *bp = a.B + (int64_t)(t) * a.xbc_ld + g * a.N;                            \
        const bf16 *cp = a.C + (int64_t)(t) * a.xbc_ld + g * a.N;                            \
        _Pragma("unroll") for (int e = 0; e < PER; e++) {                                    \
            Bv[e] = (n0 + e < a.N) ? __bfloat162float(bp[n0 + e]) : 0.f;                     \
            Cv[e] = (n0 + e < a.N) ? __bfloat162float(cp[n0 + e]) : 0.f;                     \
        }                                                                                    \
    } while (0)
    if (t0 < t1) SSD_LOAD(t0);
    for (int t = t0; t < t1; t++) {
        float cdt = dtr, cx[RPT], cB[PER], cC[PER];
#pragma unroll
        for (int k = 0; k < RPT; k++) cx[k] = xv[k];
#pragma unroll
        for (int e = 0; e < PER; e++) { cB[e] = Bv[e]; cC[e] = Cv[e]; }
        if (t + 1 < t1) SSD_LOAD(t + 1); /* prefetch */
        float d = softplus_f(cdt + dtb);
        d = fminf(fmaxf(d, a.dt_min), a.dt_max);
        const float dA = __expf(d * A);
#pragma unroll
        for (int k = 0; k < RPT; k++) {
            float dx = d * cx[k], yp = 0.f;
#pragma unroll
            for (int e = 0; e < PER; e++) {
                hs[k][e] = hs[k][e] * dA + dx * cB[e];
                yp += hs[k][e] * cC[e];
            }
            for (int o = LPR / 2; o > 0; o >>= 1) yp += __shfl_xor_sync(0xffffffffu, yp, o, LPR);
            if (sub == 0 && prow[k])
                a.y[((int64_t)t * a.H + h) * a.P + pc[k]] = __float2bfloat16(yp + Dh * cx[k]);
        }
    }
#undef SSD_LOAD
#pragma unroll
    for (int k = 0; k < RPT; k++) {
        if (!prow[k]) continue;
        if (vec4) {
            *(float4 *)((float *)st[k] + n0) = make_float4(hs[k][0], hs[k][1 % PER], hs[k][2 % PER], hs[k][3 % PER]);
        } else {
#pragma unroll
            for (int e = 0; e < PER; e++)
                if (n0 + e < a.N) st_st(st[k] + n0 + e, hs[k][e]);
        }
    }
}

template <int PER, typename ST>
static void ssd_launch(cudaStream_t st, ssd_args a, int n_seq, int decode, int rpt) {
    /* decode: 8 row groups per thread (more bytes in flight, fewer blocks; THINKFAST_SSD_RPT=4
     * halves it); prefill: 1 (more blocks to walk the tokens in parallel) */
    if (decode && rpt == 4) {
        dim3 grid(cu_blocks(a.P, a.RB * 4), a.H, n_seq);
        k_ssd<PER, 4, ST><<<grid, SSD_NT, 0, st>>>(a);
    } else if (decode) {
        dim3 grid(cu_blocks(a.P, a.RB * 8), a.H, n_seq);
        k_ssd<PER, 8, ST><<<grid, SSD_NT, 0, st>>>(a);
    } else {
        dim3 grid(cu_blocks(a.P, a.RB), a.H, n_seq);
        k_ssd<PER, 1, ST><<<grid, SSD_NT, 0, st>>>(a);
    }
}

template <typename ST>
static void ssd_run(op_backend *b, void *y, const void *x, const void *dt, const float *A_log, const void *Bm,
                    const void *Cm, const float *D, const float *dt_bias, void *ssm_state, const int32_t *cu_seqlens,
                    const int32_t *slots, int n_seq, int T, int xbc_ld, int dt_ld, int H, int P, int G, int N,
                    float dt_min, float dt_max) {
    CHECK(n_seq >= 0 && T >= 0 && H > 0 && P > 0 && G > 0 && H % G == 0 && N > 0 && N <= 256,
          "ssd_scan: n_seq=%d T=%d H=%d P=%d G=%d N=%d (N <= 256, H %% G == 0)", n_seq, T, H, P, G, N);
    CHECK(xbc_ld >= H * P && xbc_ld >= G * N, "ssd_scan: x/B/C row stride %d < H*P %d or G*N %d", xbc_ld, H * P,
          G * N);
    CHECK(dt_ld >= H, "ssd_scan: dt row stride %d < H %d", dt_ld, H);
    if (n_seq == 0) return;
    ssd_args a;
    a.y = (bf16 *)y;
    a.x = (const bf16 *)x;
    a.dt = (const bf16 *)dt;
    a.B = (const bf16 *)Bm;
    a.C = (const bf16 *)Cm;
    a.A_log = A_log;
    a.D = D;
    a.dt_bias = dt_bias;
    a.state = ssm_state;
    a.cu = cu_seqlens;
    a.slots = slots;
    a.xbc_ld = xbc_ld;
    a.dt_ld = dt_ld;
    a.H = H;
    a.P = P;
    a.G = G;
    a.N = N;
    a.dt_min = dt_min;
    a.dt_max = dt_max;
    int per;
    if (N % 4 == 0 && N / 4 <= 32 && ((N / 4) & (N / 4 - 1)) == 0) {
        per = 4;
        a.LPR = N / 4;
    } else {
        a.LPR = 32;
        per = (N + 31) / 32;
        per = per <= 1 ? 1 : per <= 2 ? 2 : per <= 4 ? 4 : 8;
    }
    a.RB = SSD_NT / a.LPR;
    cudaStream_t st = cu_of(b)->stream;
    int decode = (T == n_seq);
    int rpt = cu_of(b)->ssd_rpt;
    switch (per) {
    case 1: ssd_launch<1, ST>(st, a, n_seq, decode, rpt); break;
    case 2: ssd_launch<2, ST>(st, a, n_seq, decode, rpt); break;
    case 4: ssd_launch<4, ST>(st, a, n_seq, decode, rpt); break;
    default: ssd_launch<8, ST>(st, a, n_seq, decode, rpt); break;
    }
    CUDA_CHECK_LAUNCH();
}

void cu_ssd_scan(op_backend *b, void *y, const void *x, const void *dt, const float *A_log, const void *Bm,
                 const void *Cm, const float *D, const float *dt_bias, float *ssm_state,
                 const int32_t *cu_seqlens, const int32_t *slots, int n_seq, int T, int xbc_ld, int dt_ld, int H,
                 int P, int G, int N, int chunk, float dt_min, float dt_max) {
    /* prefill: the chunked tensor-core form when enabled and supported (cuda_ssd_chunked.cu) */
    if (cu_of(b)->ssd_chunked && T != n_seq &&
        cu_ssd_chunked(b, y, x, dt, A_log, Bm, Cm, D, dt_bias, ssm_state, cu_seqlens, slots, n_seq, T, xbc_ld, dt_ld,
                       H, P, G, N, chunk, dt_min, dt_max) == 0)
        return;
    ssd_run<float>(b, y, x, dt, A_log, Bm, Cm, D, dt_bias, ssm_state, cu_seqlens, slots, n_seq, T, xbc_ld, dt_ld, H, P,
                   G, N, dt_min, dt_max);
}

extern "C" void op_cuda_ssd_scan_bf16state(op_backend *b, void *y, const void *x, const void *dt, const float *A_log,
                                           const void *Bm, const void *Cm, const float *D, const float *dt_bias,
                                           void *ssm_state_bf16, const int32_t *cu_seqlens, const int32_t *slots,
                                           int n_seq, int T, int xbc_ld, int dt_ld, int H, int P, int G, int N,
                                           float dt_min, float dt_max) {
    ssd_run<bf16>(b, y, x, dt, A_log, Bm, Cm, D, dt_bias, ssm_state_bf16, cu_seqlens, slots, n_seq, T, xbc_ld, dt_ld,
                  H, P, G, N, dt_min, dt_max);
}

/* ---------------- fused decode: conv1d + SSD scan ---------------- */
/* One block per (head, sequence) of a decode step (one token per sequence), SSD_NT threads,
 * requires G == H (each head owns its B/C group, so no two blocks update the same conv channels)
 * and one block covering the head's P rows (LPR = N/4 threads per row, 8 rows per thread). The
 * block first issues its state loads (the bulk of the bytes), then convolves its P + 2N input
 * channels (x of the head, B and C of its group) into shared memory, rounded to bf16 as the
 * separate conv1d stores them, updates their conv state, and runs the scan step as k_ssd does.
 * Saves the conv1d launch and its output round trip per Mamba layer. */
typedef struct csd_args {
    bf16 *y;
    const bf16 *x, *cw, *cb, *dt; /* x: raw x|B|C rows (stride x_ld); dt rows (stride dt_ld) */
    float *conv_state;            /* [n_slots, C, K-1] */
    void *state;                  /* [n_slots, H, P, N], float or bf16 (the kernel's ST) */
    const float *A_log, *D, *dt_bias;
    const int32_t *cu, *slots;
    int x_ld, dt_ld, C, K, H, P, N, LPR, RB;
    float dt_min, dt_max;
} csd_args;

/* Four consecutive state entries as floats, and back (16 bytes of fp32 or 8 of bf16). */
static __device__ __forceinline__ float4 st_ld4(const float *p) { return *(const float4 *)p; }
static __device__ __forceinline__ float4 st_ld4(const bf16 *p) {
    const uint2 u = *(const uint2 *)p;
    const float2 a = __bfloat1622float2(*(const __nv_bfloat162 *)&u.x);
    const float2 b = __bfloat1622float2(*(const __nv_bfloat162 *)&u.y);
    return make_float4(a.x, a.y, b.x, b.y);
}
static __device__ __forceinline__ void st_st4(float *p, float4 v) { *(float4 *)p = v; }
static __device__ __forceinline__ void st_st4(bf16 *p, float4 v) {
    __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    uint2 u;
    u.x = *(uint32_t *)&a;
    u.y = *(uint32_t *)&b;
    *(uint2 *)p = u;
}

/* blocks per SM the fused kernel is compiled for: its state loads are the bytes in flight, so
 * registers beyond them cost occupancy (H100: 106 registers gave 4 blocks per SM; 7 blocks at 72
 * registers beat 8 at 64, which spill, by 1.5-7% of the student's step; gpu_ab.log) */
#define CSD_MIN_BLOCKS 7
#define CSD_CH 2 /* conv channels per thread whose loads are all issued up front (K = 4) */
template <int RPT, bool K4, typename ST>
__global__ void __launch_bounds__(SSD_NT, CSD_MIN_BLOCKS) k_conv_ssd_decode(csd_args a) {
    cu_pdl_wait();
    cu_pdl_trigger();
    extern __shared__ float csd_sh[]; /* conv outputs: x [P], B [N], C [N] */
    const int tid = threadIdx.x, LPR = a.LPR;
    const int h = blockIdx.x, s = blockIdx.y;
    const int row = tid / LPR, sub = tid % LPR, n0 = sub * 4;
    const int t = a.cu[s];
    if (a.cu[s + 1] - t != 1) return; /* an empty sequence keeps both states (contract: one token each) */
    const int64_t slot = a.slots[s];
    /* this thread's state: rows row + k RB (k < RPT), columns n0..n0+3; one base pointer (the
     * rows are RB N floats apart) keeps the registers for the loads in flight, not addresses */
    ST *stb = (ST *)a.state + ((slot * a.H + h) * a.P + row) * a.N + n0;
    const int rstride = a.RB * a.N;
    float hs[RPT][4];
#pragma unroll
    for (int k = 0; k < RPT; k++) {
        const int p = k * a.RB + row;
        float4 v = p < a.P ? st_ld4(stb + k * rstride) : make_float4(0.f, 0.f, 0.f, 0.f);
        hs[k][0] = v.x; hs[k][1] = v.y; hs[k][2] = v.z; hs[k][3] = v.w;
    }
    /* the head's scalars, loaded before the conv so that no load waits after the barrier */
    const float dt_raw = __bfloat162float(a.dt[(int64_t)t * a.dt_ld + h]), A_log = a.A_log[h], Dh = a.D[h],
                dt_b = a.dt_bias[h];
    /* the conv of this block's channels: j < P: x channel h P + j; then B and C of group h.
     * With K = 4 (the usual d_conv) every input of a thread's first CSD_CH channels is loaded
     * before any is used, so the block waits one memory latency for the conv, not one per
     * channel round (the conv-state stores could alias later loads: the compiler would not
     * hoist them itself); further channels and other K take the plain loop. */
    const int nch = a.P + 2 * a.N, di = a.H * a.P, gn = a.H * a.N;
    auto chan = [&](int j) {
        return j < a.P ? h * a.P + j : j < a.P + a.N ? di + h * a.N + (j - a.P) : di + gn + h * a.N + (j - a.P - a.N);
    };
    int j_rest = tid;
    if (K4) {
        float xt[CSD_CH], bias[CSD_CH], cs0[CSD_CH][3];
        uint2 wq[CSD_CH];
#pragma unroll
        for (int i = 0; i < CSD_CH; i++) {
            const int j = tid + i * SSD_NT;
            if (j < nch) {
                const int ch = chan(j);
                const float *cs = a.conv_state + (slot * a.C + ch) * 3;
                xt[i] = __bfloat162float(a.x[(int64_t)t * a.x_ld + ch]);
                bias[i] = a.cb ? __bfloat162float(a.cb[ch]) : 0.f;
                wq[i] = *(const uint2 *)(a.cw + (int64_t)ch * 4);
                cs0[i][0] = cs[0]; cs0[i][1] = cs[1]; cs0[i][2] = cs[2];
            }
        }
#pragma unroll
        for (int i = 0; i < CSD_CH; i++) {
            const int j = tid + i * SSD_NT;
            if (j < nch) {
                const int ch = chan(j);
                float *cs = a.conv_state + (slot * a.C + ch) * 3;
                const __nv_bfloat162 *w2 = (const __nv_bfloat162 *)&wq[i];
                const float2 w01 = __bfloat1622float2(w2[0]), w23 = __bfloat1622float2(w2[1]);
                const float acc = bias[i] + w01.x * cs0[i][0] + w01.y * cs0[i][1] + w23.x * cs0[i][2] + w23.y * xt[i];
                cs[0] = cs0[i][1]; cs[1] = cs0[i][2]; cs[2] = xt[i];
                csd_sh[j] = __bfloat162float(__float2bfloat16(silu_f(acc)));
            }
        }
        j_rest = tid + CSD_CH * SSD_NT;
    }
    for (int j = j_rest; j < nch; j += SSD_NT) {
        const int ch = chan(j);
        float *cs = a.conv_state + (slot * a.C + ch) * (a.K - 1);
        const bf16 *w = a.cw + (int64_t)ch * a.K;
        const float xt = __bfloat162float(a.x[(int64_t)t * a.x_ld + ch]);
        float win[CONV_KMAX];
        float acc = a.cb ? __bfloat162float(a.cb[ch]) : 0.f;
#pragma unroll
        for (int k = 0; k < CONV_KMAX - 1; k++) {
            win[k] = k < a.K - 1 ? cs[k] : 0.f;
            if (k < a.K - 1) acc += __bfloat162float(w[k]) * win[k];
        }
        acc += __bfloat162float(w[a.K - 1]) * xt;
#pragma unroll
        for (int k = 0; k < CONV_KMAX - 1; k++) {
            if (k < a.K - 2) cs[k] = win[k + 1];
            else if (k == a.K - 2) cs[k] = xt;
        }
        csd_sh[j] = __bfloat162float(__float2bfloat16(silu_f(acc)));
    }
    __syncthreads();
    const float *xs = csd_sh, *Bs = csd_sh + a.P, *Cs = Bs + a.N;
    float d = softplus_f(dt_raw + dt_b);
    d = fminf(fmaxf(d, a.dt_min), a.dt_max);
    const float dA = __expf(d * -__expf(A_log));
    float cB[4], cC[4];
#pragma unroll
    for (int e = 0; e < 4; e++) { cB[e] = Bs[n0 + e]; cC[e] = Cs[n0 + e]; }
#pragma unroll
    for (int k = 0; k < RPT; k++) {
        const int p = k * a.RB + row;
        const float cx = p < a.P ? xs[p] : 0.f, dx = d * cx;
        float yp = 0.f;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            hs[k][e] = hs[k][e] * dA + dx * cB[e];
            yp += hs[k][e] * cC[e];
        }
        for (int o = LPR / 2; o > 0; o >>= 1) yp += __shfl_xor_sync(0xffffffffu, yp, o, LPR);
        if (p < a.P) {
            if (sub == 0) a.y[((int64_t)t * a.H + h) * a.P + p] = __float2bfloat16(yp + Dh * cx);
            st_st4(stb + k * rstride, make_float4(hs[k][0], hs[k][1], hs[k][2], hs[k][3]));
        }
    }
}

template <typename ST>
static int conv_ssd_run(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w, const void *conv_b,
                        float *conv_state, const void *dt, int dt_ld, const float *A_log, const float *D,
                        const float *dt_bias, void *ssm_state, const int32_t *cu_seqlens, const int32_t *slots,
                        int n_seq, int C, int K, int H, int P, int G, int N, float dt_min, float dt_max) {
    CHECK(n_seq >= 0 && H > 0 && P > 0 && G > 0 && N > 0 && K >= 2 && K <= CONV_KMAX && C == H * P + 2 * G * N,
          "conv_ssd_decode: n_seq=%d C=%d K=%d H=%d P=%d G=%d N=%d (C = H P + 2 G N, K in 2..%d)", n_seq, C, K, H, P,
          G, N, CONV_KMAX);
    CHECK(x_ld >= C && dt_ld >= H, "conv_ssd_decode: row strides x %d (< %d) or dt %d (< %d)", x_ld, C, dt_ld, H);
    /* shapes taken: one group per head; N a multiple of 4 with N/4 a power of two <= 32 threads
     * per row; the block's 8 rows per thread cover the head */
    const int lpr = N / 4, rb = lpr > 0 ? SSD_NT / lpr : 0;
    if (G != H || N % 4 != 0 || lpr > 32 || (lpr & (lpr - 1)) != 0 || rb * 8 < P || n_seq > 65535) return -1;
    if (n_seq == 0) return 0;
    csd_args a;
    a.y = (bf16 *)y;
    a.x = (const bf16 *)x;
    a.cw = (const bf16 *)conv_w;
    a.cb = (const bf16 *)conv_b;
    a.dt = (const bf16 *)dt;
    a.conv_state = conv_state;
    a.state = ssm_state;
    a.A_log = A_log;
    a.D = D;
    a.dt_bias = dt_bias;
    a.cu = cu_seqlens;
    a.slots = slots;
    a.x_ld = x_ld;
    a.dt_ld = dt_ld;
    a.C = C;
    a.K = K;
    a.H = H;
    a.P = P;
    a.N = N;
    a.LPR = lpr;
    a.RB = rb;
    a.dt_min = dt_min;
    a.dt_max = dt_max;
    dim3 grid(H, n_seq);
    size_t smem = (size_t)(P + 2 * N) * sizeof(float);
    /* K = 4 with 8-byte aligned weight rows: the prefetched conv */
    const bool k4 = K == 4 && ((uintptr_t)conv_w & 7) == 0;
    const cu_impl *c = cu_of(b);
    if (rb * 4 >= P) {
        if (k4) cu_launch(c, k_conv_ssd_decode<4, true, ST>, grid, SSD_NT, smem, a);
        else cu_launch(c, k_conv_ssd_decode<4, false, ST>, grid, SSD_NT, smem, a);
    } else {
        if (k4) cu_launch(c, k_conv_ssd_decode<8, true, ST>, grid, SSD_NT, smem, a);
        else cu_launch(c, k_conv_ssd_decode<8, false, ST>, grid, SSD_NT, smem, a);
    }
    CUDA_CHECK_LAUNCH();
    return 0;
}

int cu_conv_ssd_decode(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w, const void *conv_b,
                       float *conv_state, const void *dt, int dt_ld, const float *A_log, const float *D,
                       const float *dt_bias, float *ssm_state, const int32_t *cu_seqlens, const int32_t *slots,
                       int n_seq, int C, int K, int H, int P, int G, int N, float dt_min, float dt_max) {
    return conv_ssd_run<float>(b, y, x, x_ld, conv_w, conv_b, conv_state, dt, dt_ld, A_log, D, dt_bias, ssm_state,
                               cu_seqlens, slots, n_seq, C, K, H, P, G, N, dt_min, dt_max);
}

extern "C" int op_cuda_conv_ssd_decode_bf16state(op_backend *b, void *y, const void *x, int x_ld, const void *conv_w,
                                                 const void *conv_b, float *conv_state, const void *dt, int dt_ld,
                                                 const float *A_log, const float *D, const float *dt_bias,
                                                 void *ssm_state_bf16, const int32_t *cu_seqlens,
                                                 const int32_t *slots, int n_seq, int C, int K, int H, int P, int G,
                                                 int N, float dt_min, float dt_max) {
    return conv_ssd_run<bf16>(b, y, x, x_ld, conv_w, conv_b, conv_state, dt, dt_ld, A_log, D, dt_bias,
                              ssm_state_bf16, cu_seqlens, slots, n_seq, C, K, H, P, G, N, dt_min, dt_max);
}
