/* kernels/cuda/cuda_attn_prefill_mma.cu — causal GQA prefill attention over the paged KV cache on
 * tensor cores (FlashAttention-2 style), the default prefill path of cu_attention
 * (THINKFAST_ATTN_PREFILL=generic turns it off; cuda_attention.cu keeps the generic kernel as the
 * fallback for shapes this one does not take).
 *
 * Work split: a block (4 warps, 128 threads) per (tile of BQ = 64 / G tokens of one sequence,
 * kv head). Its 64 rows are (token, group head) pairs, row r = token r / G, query head
 * kvh * G + r % G (rows past ntok * G are padding), so a K/V tile staged in shared memory serves
 * every query head of the group. Warp w owns rows 16w .. 16w + 15: its Q fragments stay in
 * registers; per 64-key tile (two-stage cp.async pipeline, zero-filled past the end) it computes
 * S = Q K^T with mma.m16n8k16 (K fragments by ldmatrix), masks, runs the online softmax in fp32
 * registers (log2 domain: scores scaled by scale * log2 e, exp2), and accumulates O += P V with P
 * converted to bf16 straight from the S accumulators into A fragments (V fragments by
 * ldmatrix.trans). Block -> (sequence, tile) comes from cu_seqlens on the device (a warp-wide
 * prefix scan over the sequences' tile counts), so nothing is read back to the host; the grid
 * has ceil(T / BQ) + n_seq blocks (an upper bound on the tiles), the spare ones exit at once.
 * Blocks run last tile first (they attend to the most keys) to shorten the tail.
 *
 * Masking: row r may see key k iff k <= lim_r = min(pos[token], kcap - 1) (kcap = the block
 * table's capacity); padding rows have lim = -1 and see nothing. The block visits keys
 * 0 .. max lim, a warp skips the tiles past its own rows' max lim. Positions need not be
 * consecutive or sorted. A row whose running max is still -inf uses 0 as its exponent base, so
 * fully masked tiles give p = 0 (never inf - inf).
 */
#include <limits.h>
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/cuda_mma.cuh"

#define PF_ROWS 64 /* query rows per block */
#define PF_TK 64   /* keys per tile */
#define PF_NT 128  /* threads per block: 4 warps x 16 rows */

typedef struct pf_args {
    bf16 *out;
    const bf16 *q, *kc, *vc;
    const int32_t *bt, *cu, *pos;
    int max_pages, n_seq, Hq, Hkv, G, BQ, page_size, page_shift;
    int kcap;  /* max_pages * page_size, capped at INT_MAX */
    float sl2; /* scale * log2(e) */
} pf_args;

template <int HD>
__global__ void __launch_bounds__(PF_NT) k_attn_prefill_mma(pf_args a) {
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int LDK = HD + 8; /* padded row (bf16): ldmatrix rows land on distinct banks */
    constexpr int KS = HD / 16; /* k-steps of Q K^T, and 16-dim groups of P V */
    constexpr int ND = HD / 8;  /* 8-dim n-tiles of O */
    constexpr int HD8 = HD / 8; /* 16-byte chunks per K/V row */
    bf16 *Ks = (bf16 *)smem;          /* [2][PF_TK][LDK] */
    bf16 *Vs = Ks + 2 * PF_TK * LDK;  /* [2][PF_TK][LDK] */
    __shared__ int seq_sh, tile_sh, kend_sh;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int grp = lane >> 2, qd = lane & 3; /* mma groupID, thread-in-group */
    const int kvh = blockIdx.y, G = a.G;

    /* ---- block -> (sequence, tile): warp 0 scans the sequences 32 at a time ---- */
    if (warp == 0) {
        const int w = (int)(gridDim.x - 1 - blockIdx.x); /* last tiles first */
        int acc = 0, fs = -1, ft = 0;
        for (int base = 0; base < a.n_seq; base += 32) {
            int i = base + lane, nt = 0;
            if (i < a.n_seq) {
                int len = a.cu[i + 1] - a.cu[i];
                nt = len > 0 ? (len + a.BQ - 1) / a.BQ : 0;
            }
            int inc = nt; /* inclusive prefix sum of nt over the lanes */
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                int v = __shfl_up_sync(0xffffffffu, inc, o);
                if (lane >= o) inc += v;
            }
            const int lo = acc + inc - nt, hi = acc + inc; /* sequence i owns tiles [lo, hi) */
            const unsigned hit = __ballot_sync(0xffffffffu, w >= lo && w < hi);
            if (hit) { /* warp-uniform */
                const int src = __ffs(hit) - 1;
                fs = base + src;
                ft = w - __shfl_sync(0xffffffffu, lo, src);
                break;
            }
            acc += __shfl_sync(0xffffffffu, inc, 31);
        }
        if (lane == 0) {
            seq_sh = fs;
            tile_sh = ft;
            kend_sh = 0;
        }
    }
    __syncthreads();
    const int s = seq_sh;
    if (s < 0) return; /* a spare block (block-uniform) */
    const int seq_begin = a.cu[s], seq_len = a.cu[s + 1] - seq_begin;
    const int t0 = seq_begin + tile_sh * a.BQ;
    const int ntok = min(a.BQ, seq_len - tile_sh * a.BQ); /* >= 1 */
    const int nrows = ntok * G;                           /* <= 64 */

    /* ---- this thread's two rows: warp row grp (C regs 0,1) and grp + 8 (C regs 2,3) ---- */
    int lim[2];
    int64_t off[2]; /* element offset of the row in q / out; -1 for padding */
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int r = warp * 16 + grp + 8 * i;
        if (r < nrows) {
            const int tok = t0 + r / G, h = kvh * G + r % G;
            lim[i] = min(a.pos[tok], a.kcap - 1);
            off[i] = ((int64_t)tok * a.Hq + h) * HD;
        } else {
            lim[i] = -1;
            off[i] = -1;
        }
    }
    int wend = max(lim[0], lim[1]) + 1; /* keys this warp needs: 0 .. wend - 1 */
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) wend = max(wend, __shfl_xor_sync(0xffffffffu, wend, o));
    if (lane == 0) atomicMax(&kend_sh, wend);

    /* Q as A fragments (see cuda_mma.cuh): a[0] row grp, dims 2q..; a[1] row grp+8; a[2], a[3]: dims +8 */
    uint32_t qa[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        const int d = kk * 16 + qd * 2;
        qa[kk][0] = off[0] >= 0 ? *(const uint32_t *)(a.q + off[0] + d) : 0u;
        qa[kk][1] = off[1] >= 0 ? *(const uint32_t *)(a.q + off[1] + d) : 0u;
        qa[kk][2] = off[0] >= 0 ? *(const uint32_t *)(a.q + off[0] + d + 8) : 0u;
        qa[kk][3] = off[1] >= 0 ? *(const uint32_t *)(a.q + off[1] + d + 8) : 0u;
    }
    __syncthreads(); /* kend_sh complete */
    const int k_end = kend_sh;

    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.f, 0.f}; /* l_run: this thread's partial sums */
    float o[ND][4];
#pragma unroll
    for (int i = 0; i < ND; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

    const int64_t kv_row_stride = (int64_t)a.Hkv * HD;
    const int64_t head_off = (int64_t)kvh * HD;
    const int32_t *bt = a.bt + (int64_t)s * a.max_pages;
    /* keys kt .. kt+63 -> stage; rows past k_end are zero-filled (and masked: key > every lim) */
    auto load_tile = [&](int stage, int kt) {
        bf16 *ks = Ks + stage * PF_TK * LDK, *vs = Vs + stage * PF_TK * LDK;
#pragma unroll
        for (int it = 0; it < PF_TK * HD8 / PF_NT; it++) {
            const int idx = tid + it * PF_NT;
            const int j = idx / HD8, c = idx % HD8;
            const int key = kt + j;
            const bf16 *kp = a.kc, *vp = a.vc;
            int bytes = 0;
            if (key < k_end) {
                const int pg = key >> a.page_shift, in = key & (a.page_size - 1);
                const int64_t goff = ((int64_t)bt[pg] * a.page_size + in) * kv_row_stride + head_off + c * 8;
                kp = a.kc + goff;
                vp = a.vc + goff;
                bytes = 16;
            }
            cp_async16(ks + j * LDK + c * 8, kp, bytes);
            cp_async16(vs + j * LDK + c * 8, vp, bytes);
        }
    };

    if (k_end > 0) load_tile(0, 0);
    cp_async_commit();
    int stage = 0;
    for (int kt = 0; kt < k_end; kt += PF_TK) {
        if (kt + PF_TK < k_end) load_tile(stage ^ 1, kt + PF_TK);
        cp_async_commit();
        cp_async_wait<1>(); /* this tile's group has landed (the next may be in flight) */
        __syncthreads();
        if (kt < wend) { /* warp-uniform */
            const bf16 *ks = Ks + stage * PF_TK * LDK, *vs = Vs + stage * PF_TK * LDK;
            /* S [16 rows x 64 keys] = Q K^T: n-tile n = keys kt + 8n .. kt + 8n + 7 */
            float sc[8][4];
#pragma unroll
            for (int n = 0; n < 8; n++) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KS; kk++)
#pragma unroll
                for (int np = 0; np < 4; np++) {
                    /* matrices: 0 keys 16np+0..7 dims 16kk+0..7, 1 same keys dims +8, 2 keys +8, 3 keys +8 dims +8 */
                    uint32_t b0, b1, b2, b3;
                    const bf16 *pk = ks + (np * 16 + ((lane >> 4) & 1) * 8 + (lane & 7)) * LDK + kk * 16 +
                                     ((lane >> 3) & 1) * 8;
                    ldsm_x4(b0, b1, b2, b3, pk);
                    mma_bf16(sc[2 * np], qa[kk], b0, b1);
                    mma_bf16(sc[2 * np + 1], qa[kk], b2, b3);
                }
            /* mask + scale; row maxima over the quad (the 4 lanes sharing a row) */
            float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int key = kt + n * 8 + qd * 2 + e;
                    sc[n][e] = key <= lim[0] ? sc[n][e] * a.sl2 : -INFINITY;
                    sc[n][2 + e] = key <= lim[1] ? sc[n][2 + e] * a.sl2 : -INFINITY;
                    mx0 = fmaxf(mx0, sc[n][e]);
                    mx1 = fmaxf(mx1, sc[n][2 + e]);
                }
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
            mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
            mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
            const float mn0 = fmaxf(m_run[0], mx0), mn1 = fmaxf(m_run[1], mx1);
            const float b0f = mn0 == -INFINITY ? 0.f : mn0, b1f = mn1 == -INFINITY ? 0.f : mn1;
            const float corr0 = exp2f(m_run[0] - b0f), corr1 = exp2f(m_run[1] - b1f); /* 0 while m_run = -inf */
            m_run[0] = mn0;
            m_run[1] = mn1;
            float rs0 = 0.f, rs1 = 0.f;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    sc[n][e] = exp2f(sc[n][e] - b0f); /* masked: exp2(-inf) = 0 */
                    sc[n][2 + e] = exp2f(sc[n][2 + e] - b1f);
                    rs0 += sc[n][e];
                    rs1 += sc[n][2 + e];
                }
            l_run[0] = l_run[0] * corr0 + rs0;
            l_run[1] = l_run[1] * corr1 + rs1;
#pragma unroll
            for (int i = 0; i < ND; i++) {
                o[i][0] *= corr0;
                o[i][1] *= corr0;
                o[i][2] *= corr1;
                o[i][3] *= corr1;
            }
            /* O += P V per 16-key step t: P's A fragment from S n-tiles 2t (keys +0..7) and 2t+1 (+8..15) */
#pragma unroll
            for (int t = 0; t < PF_TK / 16; t++) {
                uint32_t pa[4] = {pack_bf16(sc[2 * t][0], sc[2 * t][1]), pack_bf16(sc[2 * t][2], sc[2 * t][3]),
                                  pack_bf16(sc[2 * t + 1][0], sc[2 * t + 1][1]),
                                  pack_bf16(sc[2 * t + 1][2], sc[2 * t + 1][3])};
#pragma unroll
                for (int nd = 0; nd < KS; nd++) {
                    /* .trans matrices: 0 keys 16t+0..7 dims 16nd+0..7, 1 keys +8, 2 dims +8, 3 keys +8 dims +8 */
                    uint32_t r0, r1, r2, r3;
                    const int mi = lane >> 3;
                    const bf16 *pv = vs + (t * 16 + (mi & 1) * 8 + (lane & 7)) * LDK + nd * 16 + (mi >> 1) * 8;
                    ldsm_x4_t(r0, r1, r2, r3, pv);
                    mma_bf16(o[2 * nd], pa, r0, r1);
                    mma_bf16(o[2 * nd + 1], pa, r2, r3);
                }
            }
        }
        __syncthreads(); /* everyone is done with this stage before it is refilled */
        stage ^= 1;
    }
    cp_async_wait<0>();

    /* ---- normalise and write: o[i] holds dims 8i + 2q, 8i + 2q + 1 of rows grp (0,1) and grp+8 (2,3) ---- */
#pragma unroll
    for (int i = 0; i < 2; i++) {
        l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 1);
        l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 2);
    }
    const float inv0 = l_run[0] > 0.f ? 1.f / l_run[0] : 0.f, inv1 = l_run[1] > 0.f ? 1.f / l_run[1] : 0.f;
#pragma unroll
    for (int i = 0; i < ND; i++) {
        const int d = i * 8 + qd * 2;
        if (off[0] >= 0) *(uint32_t *)(a.out + off[0] + d) = pack_bf16(o[i][0] * inv0, o[i][1] * inv0);
        if (off[1] >= 0) *(uint32_t *)(a.out + off[1] + d) = pack_bf16(o[i][2] * inv1, o[i][3] * inv1);
    }
}

template <int HD>
static void pf_launch(cudaStream_t st, const pf_args &a, dim3 grid) {
    const size_t smem = (size_t)4 * PF_TK * (HD + 8) * sizeof(bf16); /* K and V, two stages */
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_prefill_mma<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    k_attn_prefill_mma<HD><<<grid, PF_NT, smem, st>>>(a);
    CUDA_CHECK_LAUNCH();
}

int cu_attn_prefill_mma(cu_impl *c, void *out, const void *q, const void *k_cache, const void *v_cache,
                        const int32_t *block_table, int max_pages, const int32_t *cu_seqlens, const int32_t *pos,
                        int n_seq, int T, int Hq, int Hkv, int hd, int page_size, float scale) {
    if (hd != 64 && hd != 128) return -1;
    if (n_seq <= 0 || T <= 0 || Hkv <= 0 || Hq <= 0 || Hq % Hkv != 0 || max_pages <= 0) return -1;
    const int G = Hq / Hkv;
    if (G > PF_ROWS || Hkv > 65535) return -1;
    int page_shift = -1;
    for (int k = 4; k <= 8; k++)
        if (page_size == (1 << k)) page_shift = k;
    if (page_shift < 0) return -1; /* 16 .. 256, a power of two */
    if (((uintptr_t)q & 3) || ((uintptr_t)out & 3) || ((uintptr_t)k_cache & 15) || ((uintptr_t)v_cache & 15))
        return -1;
    const int BQ = PF_ROWS / G;
    const long blocks = ((long)T + BQ - 1) / BQ + n_seq;
    if (blocks > INT_MAX) return -1;
    pf_args a;
    a.out = (bf16 *)out;
    a.q = (const bf16 *)q;
    a.kc = (const bf16 *)k_cache;
    a.vc = (const bf16 *)v_cache;
    a.bt = block_table;
    a.cu = cu_seqlens;
    a.pos = pos;
    a.max_pages = max_pages;
    a.n_seq = n_seq;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.G = G;
    a.BQ = BQ;
    a.page_size = page_size;
    a.page_shift = page_shift;
    const long cap = (long)max_pages * page_size;
    a.kcap = cap > INT_MAX ? INT_MAX : (int)cap;
    a.sl2 = scale * 1.4426950408889634f;
    dim3 grid((unsigned)blocks, (unsigned)Hkv, 1);
    if (hd == 64) pf_launch<64>(c->stream, a, grid);
    else pf_launch<128>(c->stream, a, grid);
    return 0;
}
