/* kernels/cuda/cuda_gemm.cu — tensor-core GEMM for the skinny decode shapes (T <= 128 tokens):
 * y[T,N] (=|+=) x[T,K] W[N,K]^T, bf16 x and W, fp32 accumulation, bf16 or fp32 output. These
 * GEMMs are memory-bound on W; cuBLASLt streams it at only ~1.5-1.9 TB/s of the 3.0 there
 * (K=8192 N=2048 has too few output tiles without split-K). Declared in cuda_gemm.cuh.
 *
 * Design (why no shared-memory staging of W):
 *  - mma.sync m16n8k16 with W as the A operand (16 output features per m-tile) and x as the B
 *    operand (8 tokens per n-tile, T padded to a multiple of 8 with zeros).
 *  - The reduction order over k is free, so both operands use the same permutation of k inside
 *    each 32-wide k group: lane (grp, qd) owns the 8 consecutive k's [32h + 8qd, +8) of its W
 *    rows and of its token rows, i.e. ONE 16-byte global load per row and k32 gives that lane
 *    its A fragment registers for two mma's, and one 16-byte load of x its B fragments:
 *        mma s (s = 0,1) uses  a = {w_r0[2s], w_r1[2s], w_r0[2s+1], w_r1[2s+1]}  (u32 words)
 *                              b = {x_t[2s], x_t[2s+1]}
 *    (logical k {2qd, 2qd+1} <-> physical 8qd+4s+{0,1}; {2qd+8, 2qd+9} <-> 8qd+4s+{2,3}, the
 *    same bijection for A and B). No ldmatrix, no bank conflicts, no block-wide syncs in the
 *    main loop. A warp's W load touches 8 rows x 64 contiguous bytes (full sectors); the two
 *    halves of a 128-byte line are loaded back to back (k64 per step).
 *  - W streams through registers with a prefetch ring of PD k64-steps per lane (loads bypass
 *    L1 and ask L2 for 256-byte prefetches); x is read through L1, shared by the warps of a
 *    CTA, which walk the same k window over different rows (128 rows of W per CTA: 4 warps of
 *    two m-tiles up to 64 tokens, so each x fragment feeds two m-tiles; 8 warps of one above).
 *  - Split-K over a thread-block cluster of S = 1..8 CTAs (grid.y): each CTA stores its fp32
 *    partial tile in its own shared memory, and after a cluster barrier CTA r sums slice r of
 *    the tile over the S CTAs' shared memory (distributed shared memory) and writes y. No
 *    scratch buffer, no atomics, one kernel, deterministic. S comes from a small cost model
 *    (gs_choose_split) over the measured cluster occupancy.
 * Graph-capturable: the per-(device, batch width) setup (max dynamic shared memory, cluster
 * occupancy) runs at first use outside a capture; during a capture an unseen width returns -1.
 * Not done: T > 128 (cuBLASLt), a shared-memory (ldmatrix / wgmma) path for compute-bound T.
 */
#include <cooperative_groups.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_gemm.cuh"
extern "C" {
#include "common/log.h"
}

namespace cg = cooperative_groups;

#define GS_BM 128          /* rows of W (output features) per CTA: 8/MT warps of MT m-tiles */
#define GS_BMP (GS_BM + 4) /* partial-tile row stride (floats): conflict-free fragment stores */
#define GS_MAX_T 128
#define GS_MAX_S 8         /* portable cluster size */
#define GS_MAX_DEV 16

typedef struct gs_args {
    const bf16 *w, *x;
    void *y;
    int T, K, N, acc, f32out, S;
} gs_args;

/* 16 bytes of W: read once, so no L1 allocation; L2 prefetches the rest of the 256-byte span. */
static __device__ __forceinline__ uint4 gs_ld_w(const bf16 *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}

static __device__ __forceinline__ void gs_mma(float (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                              uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* One k64 step's W fragments: [0] row r0 k[0,32), [1] row r0 k[32,64), [2]/[3] row r0+8. */
static __device__ __forceinline__ void gs_load_w(uint4 (&b)[4], const bf16 *w0, const bf16 *w1, int koff) {
    b[0] = gs_ld_w(w0 + koff);
    b[1] = gs_ld_w(w0 + koff + 32);
    b[2] = gs_ld_w(w1 + koff);
    b[3] = gs_ld_w(w1 + koff + 32);
}

/* acc[i][j] += W[16 rows of m-tile i, k64 at koff] x[8 tokens of n-tile j, same k]^T for every
 * live n-tile (the x fragments are shared by the MT m-tiles). xq = x + qd*8 (the lane's k
 * offset); token t = 8j + grp, zero when t >= T. */
template <int NT, int MT>
static __device__ __forceinline__ void gs_step(float (&acc)[MT][NT][4], const uint4 (&wv)[MT][4], const bf16 *xq,
                                               int koff, int T, int K, int grp) {
#pragma unroll
    for (int j = 0; j < NT; j++) {
        if (j * 8 < T) { /* warp-uniform: tiles past T are all padding */
            const int t = j * 8 + grp;
            uint4 xa = make_uint4(0u, 0u, 0u, 0u), xb = xa;
            if (t < T) {
                const bf16 *p = xq + (size_t)t * K + koff;
                xa = __ldg((const uint4 *)p);
                xb = __ldg((const uint4 *)(p + 32));
            }
#pragma unroll
            for (int i = 0; i < MT; i++) {
                gs_mma(acc[i][j], wv[i][0].x, wv[i][2].x, wv[i][0].y, wv[i][2].y, xa.x, xa.y);
                gs_mma(acc[i][j], wv[i][0].z, wv[i][2].z, wv[i][0].w, wv[i][2].w, xa.z, xa.w);
                gs_mma(acc[i][j], wv[i][1].x, wv[i][3].x, wv[i][1].y, wv[i][3].y, xb.x, xb.y);
                gs_mma(acc[i][j], wv[i][1].z, wv[i][3].z, wv[i][1].w, wv[i][3].w, xb.z, xb.w);
            }
        }
    }
}

/* y[t, n..n+3] (=|+=) s; features past N are dropped. vec: N % 4 == 0 and y 16-byte aligned,
 * so with n % 4 == 0 the four are in range and one 16-byte (fp32) or 8-byte (bf16) access. */
static __device__ __forceinline__ void gs_store4(const gs_args &a, int t, int n, float4 s, bool vec) {
    const size_t i = (size_t)t * a.N + n;
    float v[4] = {s.x, s.y, s.z, s.w};
    if (vec && a.f32out) {
        float4 *p = (float4 *)((float *)a.y + i);
        if (a.acc) {
            const float4 o = *p;
            v[0] += o.x, v[1] += o.y, v[2] += o.z, v[3] += o.w;
        }
        *p = make_float4(v[0], v[1], v[2], v[3]);
    } else if (vec) {
        uint2 *p = (uint2 *)((bf16 *)a.y + i);
        if (a.acc) {
            union { uint2 u; __nv_bfloat162 h[2]; } o;
            o.u = *p;
            const float2 lo = __bfloat1622float2(o.h[0]), hi = __bfloat1622float2(o.h[1]);
            v[0] += lo.x, v[1] += lo.y, v[2] += hi.x, v[3] += hi.y;
        }
        union { uint2 u; __nv_bfloat162 h[2]; } r;
        r.h[0] = __floats2bfloat162_rn(v[0], v[1]);
        r.h[1] = __floats2bfloat162_rn(v[2], v[3]);
        *p = r.u;
    } else {
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (n + k >= a.N) break;
            if (a.f32out) {
                float *yf = (float *)a.y + i + k;
                *yf = a.acc ? *yf + v[k] : v[k];
            } else {
                bf16 *yb = (bf16 *)a.y + i + k;
                *yb = __float2bfloat16(a.acc ? __bfloat162float(*yb) + v[k] : v[k]);
            }
        }
    }
}

/* Grid (ceil(N/128), S), cluster (1, S, 1), 256/MT threads: 8/MT warps, warp w owning the
 * m-tiles 16 (w MT + i) .. +16 of the CTA's 128 rows (i < MT). MT = 2 halves the x fragment
 * loads (L1 traffic) per byte of W. Occupancy targets (registers): MT = 2: 3 CTAs (12 warps)
 * per SM, <= 168 registers (NT = 8 spills 28 bytes); MT = 1: 2 CTAs up to NT = 12 (NT = 12
 * spills 24 bytes), 1 CTA at NT = 16 (~190 registers).
 * Dynamic shared memory: NT*8*GS_BMP floats. CTA (bx, by) computes rows [128 bx, +128) of W
 * over the k64 blocks [by*nkb/S, (by+1)*nkb/S) for all T tokens (NT*8 >= T). */
template <int NT, int MT, int PD>
__global__ void __launch_bounds__(256 / MT, MT == 2 ? 3 : (NT <= 12 ? 2 : 1)) k_gemm_skinny(gs_args a) {
    constexpr int THREADS = 256 / MT;
    extern __shared__ float gs_red[]; /* [NT*8][GS_BMP]: this CTA's fp32 partial, token-major */
    cg::cluster_group cluster = cg::this_cluster();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, grp = lane >> 2, qd = lane & 3;
    const int T = a.T, K = a.K, N = a.N, S = a.S;
    const int m0 = blockIdx.x * GS_BM;
    const int nkb = K >> 6;
    const int kb0 = (int)((long long)blockIdx.y * nkb / S);
    const int kb1 = (int)((long long)(blockIdx.y + 1) * nkb / S);
    const bf16 *w0[MT], *w1[MT]; /* rows r and r+8 of each m-tile; past N: clamped, results dropped */
#pragma unroll
    for (int i = 0; i < MT; i++) {
        const int r = m0 + (warp * MT + i) * 16 + grp;
        w0[i] = a.w + (size_t)min(r, N - 1) * K + qd * 8;
        w1[i] = a.w + (size_t)min(r + 8, N - 1) * K + qd * 8;
    }
    const bf16 *xq = a.x + qd * 8;

    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

    uint4 wb[PD][MT][4]; /* prefetch ring: step kb lives in wb[(kb - kb0) % PD] */
#pragma unroll
    for (int p = 0; p < PD; p++)
        if (kb0 + p < kb1)
#pragma unroll
            for (int i = 0; i < MT; i++) gs_load_w(wb[p][i], w0[i], w1[i], (kb0 + p) * 64);
    for (int kb = kb0; kb < kb1; kb += PD) {
#pragma unroll
        for (int p = 0; p < PD; p++) {
            const int k = kb + p;
            if (k < kb1) {
                gs_step<NT, MT>(acc, wb[p], xq, k * 64, T, K, grp);
                if (k + PD < kb1)
#pragma unroll
                    for (int i = 0; i < MT; i++) gs_load_w(wb[p][i], w0[i], w1[i], (k + PD) * 64);
            }
        }
    }

    /* Partial tile to shared memory: c0,c1 = (row grp, tokens 2qd, 2qd+1), c2,c3 = row grp+8.
     * Bank of [t][rl] = (8 qd + grp) mod 32 over a warp: conflict-free with the +4 padding. */
#pragma unroll
    for (int i = 0; i < MT; i++) {
        const int rl = (warp * MT + i) * 16 + grp;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            if (j * 8 < T) {
                const int t = j * 8 + 2 * qd;
                gs_red[t * GS_BMP + rl] = acc[i][j][0];
                gs_red[(t + 1) * GS_BMP + rl] = acc[i][j][1];
                gs_red[t * GS_BMP + rl + 8] = acc[i][j][2];
                gs_red[(t + 1) * GS_BMP + rl + 8] = acc[i][j][3];
            }
        }
    }
    cluster.sync(); /* every partial of the cluster is written and visible */

    /* CTA `rank` finishes the groups of 4 features [rank*chunk, (rank+1)*chunk) of the
     * [NT*8][128] tile (token-major, so consecutive threads write consecutive features of y),
     * reading the S partials with all loads in flight at once. Rows t < T of every n-tile with
     * 8j < T were stored above; the rest is skipped. */
    const int rank = (int)cluster.block_rank();
    const int chunk = NT * 8 * (GS_BM / 4) / S; /* S in {1, 2, 4, 8} divides 256 NT */
    const bool vec = (N & 3) == 0 && ((uintptr_t)a.y & 15) == 0;
    for (int e = rank * chunk + (int)threadIdx.x; e < (rank + 1) * chunk; e += THREADS) {
        const int t = e / (GS_BM / 4), c = (e % (GS_BM / 4)) * 4, n = m0 + c;
        if (t >= T || n >= N) continue;
        float4 v[GS_MAX_S];
#pragma unroll
        for (int q = 0; q < GS_MAX_S; q++)
            v[q] = q < S ? *(const float4 *)(cluster.map_shared_rank(gs_red, q) + t * GS_BMP + c)
                         : make_float4(0.f, 0.f, 0.f, 0.f);
        float4 sum = v[0];
#pragma unroll
        for (int q = 1; q < GS_MAX_S; q++) {
            sum.x += v[q].x;
            sum.y += v[q].y;
            sum.z += v[q].z;
            sum.w += v[q].w;
        }
        gs_store4(a, t, n, sum, vec);
    }
    cluster.sync(); /* no CTA leaves while another still reads its shared memory */
}

/* ---------------- host side ---------------- */

typedef void (*gs_kernel)(gs_args);

/* Batch widths compiled (n-tiles of 8 tokens); a T uses the smallest NT >= ceil(T/8) (the
 * all-padding tiles are skipped at run time, so rounding up costs registers, not work).
 * Two variants per width up to 64 tokens: MT = 2 m-tiles per warp (default: each x fragment
 * serves two m-tiles, half the L1 traffic of x per byte of W) and MT = 1 (more warps, deeper W
 * prefetch); THINKFAST_MM_SKINNY_MT=1 selects the latter (read once), the benchmark compares
 * both. Wider batches have MT = 1 only (their accumulators leave no room). PD = k64 steps of W
 * in flight per lane. */
#define GS_NNT 8
static const int gs_nts[GS_NNT] = {1, 2, 3, 4, 6, 8, 12, 16};

/* Kernel of width index i and MT (1 or 2); NULL when that variant is not compiled. */
static gs_kernel gs_kernel_of(int i, int mt) {
    if (mt == 2) {
        switch (i) {
        case 0: return k_gemm_skinny<1, 2, 3>;
        case 1: return k_gemm_skinny<2, 2, 3>;
        case 2: return k_gemm_skinny<3, 2, 3>;
        case 3: return k_gemm_skinny<4, 2, 2>;
        case 4: return k_gemm_skinny<6, 2, 2>;
        case 5: return k_gemm_skinny<8, 2, 2>;
        default: return NULL;
        }
    }
    switch (i) {
    case 0: return k_gemm_skinny<1, 1, 4>;
    case 1: return k_gemm_skinny<2, 1, 4>;
    case 2: return k_gemm_skinny<3, 1, 4>;
    case 3: return k_gemm_skinny<4, 1, 4>;
    case 4: return k_gemm_skinny<6, 1, 3>;
    case 5: return k_gemm_skinny<8, 1, 3>;
    case 6: return k_gemm_skinny<12, 1, 2>;
    default: return k_gemm_skinny<16, 1, 2>;
    }
}
static size_t gs_smem(int nt) { return (size_t)nt * 8 * GS_BMP * sizeof(float); }

/* Per device, batch width and MT: 0 not set up yet, 1 usable, -1 unusable (not compiled or
 * setup failed); slots[s] = CTAs co-resident with clusters of 2^s CTAs (0: cannot run).
 * Set up once outside captures; a race between two threads repeats the same idempotent setup. */
typedef struct gs_cfg {
    int state;
    int slots[4];
} gs_cfg;
static gs_cfg gs_cfgs[GS_MAX_DEV][GS_NNT][2];
static int gs_env_mt = -1;   /* THINKFAST_MM_SKINNY_MT: 1 forces MT = 1, else 0 (default MT) */
static int gs_env_tmax = -1; /* THINKFAST_MM_SKINNY_TMAX: largest T taken (1..128, default 128) */

static void gs_launch_cfg(cudaLaunchConfig_t *cfg, cudaLaunchAttribute *at, dim3 grid, int threads, int S,
                          size_t smem, cudaStream_t st) {
    *cfg = cudaLaunchConfig_t{};
    *at = cudaLaunchAttribute{};
    cfg->gridDim = grid;
    cfg->blockDim = dim3((unsigned)threads, 1, 1);
    cfg->dynamicSmemBytes = smem;
    cfg->stream = st;
    at->id = cudaLaunchAttributeClusterDimension;
    at->val.clusterDim.x = 1;
    at->val.clusterDim.y = (unsigned)S;
    at->val.clusterDim.z = 1;
    cfg->attrs = at;
    cfg->numAttrs = 1;
}

static void gs_setup(cu_impl *c, int i, int mt, gs_cfg *g) {
    gs_kernel k = gs_kernel_of(i, mt);
    size_t smem = gs_smem(gs_nts[i]);
    const int threads = 256 / mt;
    g->state = -1;
    if (!k) return;
    if (cudaFuncSetAttribute((const void *)k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    for (int s = 0; s < 4; s++) {
        cudaLaunchConfig_t cfg;
        cudaLaunchAttribute at;
        gs_launch_cfg(&cfg, &at, dim3(1, 1u << s, 1), threads, 1 << s, smem, c->stream);
        int ncl = 0;
        if (cudaOccupancyMaxActiveClusters(&ncl, (const void *)k, &cfg) != cudaSuccess) {
            (void)cudaGetLastError();
            ncl = 0;
        }
        g->slots[s] = ncl << s;
    }
    int per_sm = 0; /* a 1-CTA cluster is a plain CTA: the classic occupancy query backs it up */
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, (const void *)k, threads, smem) != cudaSuccess) {
        (void)cudaGetLastError();
        per_sm = 0;
    }
    if (g->slots[0] < per_sm * c->n_sm) g->slots[0] = per_sm * c->n_sm;
    if (g->slots[0] > 0) g->state = 1;
}

/* Split-K from a small cost model (microseconds; the constants are rough, the choice only
 * needs their ratios): W streams at 3.0 TB/s in all, one SM pulls at most 1.5x its fair share,
 * an SM runs its CTAs one after another in bandwidth terms (ceil(CTAs / SMs) rounds of
 * 1/S of a 128-row block), and each wave of co-resident clusters costs ~1 us of ramp, barrier
 * and reduction. Ties go to the smaller S. Examples on 132 SMs, two CTAs per SM: N=2048 ->
 * S=8 (128 CTAs), N=4256 -> S=8 (272 CTAs), N=16384 -> S=1, N=128256 -> S=1. */
static int gs_choose_split(const cu_impl *c, const gs_cfg *g, int K, int N) {
    const int mb = (N + GS_BM - 1) / GS_BM, nkb = K / 64, n_sm = c->n_sm > 0 ? c->n_sm : 1;
    const double bw = 3.0e6, persm = 1.5 * bw / n_sm; /* bytes per microsecond */
    const double block = (double)GS_BM * K * 2;       /* bytes of W per 128-row block */
    double best = 1e300;
    int S = 1;
    for (int s = 0; s < 4; s++) {
        const int cand = 1 << s;
        if (cand > nkb || g->slots[s] <= 0) continue;
        const long long ctas = (long long)mb * cand;
        const double rounds = (double)((ctas + n_sm - 1) / n_sm);
        const double waves = (double)((ctas + g->slots[s] - 1) / g->slots[s]);
        double t_mem = mb * block / bw, t_sm = rounds * block / cand / persm;
        double cost = (t_mem > t_sm ? t_mem : t_sm) + waves;
        if (cost < best * 0.999) {
            best = cost;
            S = cand;
        }
    }
    return S;
}

/* The launch for a shape: width index, MT and split-K (force_split / force_mt > 0: that one,
 * if it can run). -1 when the shape is not handled, the variant is not compiled, or its setup
 * cannot run now (inside a capture) or failed. */
typedef struct gs_launch {
    int wi, mt, S, slots;
    gs_cfg *cfg;
} gs_launch;
static int gs_plan(cu_impl *c, int T, int K, int N, int force_split, int force_mt, gs_launch *L) {
    if (gs_env_mt < 0) { /* the A/B switches, read once */
        const char *e = getenv("THINKFAST_MM_SKINNY_MT");
        gs_env_mt = e && strcmp(e, "1") == 0 ? 1 : 0;
        e = getenv("THINKFAST_MM_SKINNY_TMAX");
        int v = e ? atoi(e) : GS_MAX_T;
        gs_env_tmax = v >= 1 && v <= GS_MAX_T ? v : GS_MAX_T;
    }
    if (T < 1 || T > gs_env_tmax || K < 64 || K % 64 != 0 || N < 1) return -1;
    if (c->device < 0 || c->device >= GS_MAX_DEV) return -1;
    int i = 0;
    while (gs_nts[i] * 8 < T) i++; /* T <= 128 = gs_nts[GS_NNT-1] * 8 ends it */
    int mt = force_mt > 0 ? force_mt : gs_env_mt == 1 ? 1 : (gs_kernel_of(i, 2) ? 2 : 1);
    if (mt != 1 && mt != 2) return -1;
    gs_cfg *g = &gs_cfgs[c->device][i][mt - 1];
    if (g->state == 0) {
        if (c->capturing) return -1;
        gs_setup(c, i, mt, g);
    }
    if (g->state != 1) return -1;
    int S = gs_choose_split(c, g, K, N), s = 0;
    if (force_split > 0) {
        while (s < 3 && (1 << s) < force_split) s++;
        if ((1 << s) != force_split || force_split > K / 64 || g->slots[s] <= 0) return -1;
        S = force_split;
    }
    s = 0;
    while ((1 << s) < S) s++;
    L->wi = i;
    L->mt = mt;
    L->S = S;
    L->slots = g->slots[s];
    L->cfg = g;
    return 0;
}

static int gs_run(cu_impl *c, void *y, const void *x, const void *w, int T, int K, int N, int acc, int f32out,
                  int force_split, int force_mt) {
    if (((uintptr_t)x & 15) || ((uintptr_t)w & 15) || ((uintptr_t)y & 3)) return -1;
    gs_launch L;
    if (gs_plan(c, T, K, N, force_split, force_mt, &L) != 0) return -1;
    gs_args a;
    a.w = (const bf16 *)w;
    a.x = (const bf16 *)x;
    a.y = y;
    a.T = T;
    a.K = K;
    a.N = N;
    a.acc = acc ? 1 : 0;
    a.f32out = f32out ? 1 : 0;
    a.S = L.S;
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute at;
    const int mb = (N + GS_BM - 1) / GS_BM;
    gs_launch_cfg(&cfg, &at, dim3((unsigned)mb, (unsigned)L.S, 1), 256 / L.mt, L.S, gs_smem(gs_nts[L.wi]),
                  c->stream);
    cudaError_t e = cudaLaunchKernelEx(&cfg, gs_kernel_of(L.wi, L.mt), a);
    if (e != cudaSuccess && !c->capturing) {
        /* A launch-configuration error (not sticky): retire this variant, cuBLASLt takes over. */
        (void)cudaGetLastError();
        L.cfg->state = -1;
        LOG_WARN("%s: skinny matmul T=%d K=%d N=%d (%d-token tiles, split-K %d, %d m-tiles per warp) cannot "
                 "launch: %s; using cuBLASLt for this batch width",
                 c->name, T, K, N, gs_nts[L.wi] * 8, L.S, L.mt, cudaGetErrorString(e));
        return -1;
    }
    CUDA_CHECK(e); /* inside a capture the capture is lost anyway: fail loudly */
    CUDA_CHECK_LAUNCH();
    return 0;
}

int cu_gemm_skinny(cu_impl *c, void *y, const void *x, const void *w, int T, int K, int N, int acc, int f32out) {
    return gs_run(c, y, x, w, T, K, N, acc, f32out, 0, 0);
}

/* Test and benchmark entry points (tests/gpu/test_cuda_gemm.c declares them): the launcher on
 * backend b; the same with the split-K (1, 2, 4 or 8) and/or MT (1 or 2) forced (<= 0: the
 * launcher's own choice; -1 if the forced variant cannot run for the shape); and the launch it
 * would make for a shape (split-K, CTAs co-resident at that cluster size, MT), -1 if it would
 * refuse the shape. */
extern "C" int op_cuda_gemm_skinny_test(op_backend *b, void *y, const void *x, const void *w, int T, int K, int N,
                                        int acc, int f32out) {
    return gs_run(cu_of(b), y, x, w, T, K, N, acc, f32out, 0, 0);
}
extern "C" int op_cuda_gemm_skinny_test_variant(op_backend *b, void *y, const void *x, const void *w, int T, int K,
                                                int N, int acc, int f32out, int split, int mt) {
    return gs_run(cu_of(b), y, x, w, T, K, N, acc, f32out, split, mt);
}
extern "C" int op_cuda_gemm_skinny_plan(op_backend *b, int T, int K, int N, int *split, int *slots, int *mt) {
    gs_launch L;
    if (gs_plan(cu_of(b), T, K, N, 0, 0, &L) != 0) return -1;
    *split = L.S;
    *slots = L.slots;
    *mt = L.mt;
    return 0;
}
