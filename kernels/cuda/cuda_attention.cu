/* kernels/cuda/cuda_attention.cu — causal GQA attention over the paged KV cache.
 *
 * One kernel, two launch shapes (flash-style: online softmax over key tiles, no T×T matrix):
 *   decode  (every sequence has one token): a block per (sequence, kv head, context split); its
 *           rows are the G = Hq/Hkv query heads sharing the kv head, so each K/V row is read
 *           from memory once for the whole group. Long contexts are split (split-K, "flash
 *           decoding") so that small batches still fill the GPU; a combine kernel merges the
 *           splits' (max, sum, unnormalised output). The split count depends only on the
 *           block-table capacity (max_pages * page_size), never on the positions (which live on
 *           the device), so a decode step can be captured in a CUDA graph and replayed while
 *           positions grow; each block sizes its part from the sequence's position.
 *   prefill (otherwise): a block per (tile of BQ tokens of one sequence, kv head); rows are
 *           (token, group head) pairs, masked causally by each token's position.
 * Keys/values are staged through shared memory in tiles of ATT_TK rows (16-byte loads, rows
 * padded by 16 bytes against bank conflicts); scores and the running max/sum are fp32.
 */
#include <math.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/cuda_mma.cuh"

#define ATT_TK 64  /* keys per tile */
#define ATT_NT 128 /* threads per block */

typedef struct att_args {
    bf16 *out;
    const bf16 *q, *kc, *vc;
    const int32_t *bt, *cu, *pos;
    int max_pages, n_seq, T, Hq, Hkv, hd, page_size, G, BQ;
    int hd8_shift, page_shift; /* log2(hd/8), log2(page_size); -1 when not a power of 2 */
    float scale;
    int decode, n_splits;
    float *part_o, *part_ml; /* split partials (n_splits > 1) */
} att_args;

/* Decode split-K: this block's keys [k_begin, k_end) of a context of k_end keys. The n_splits
 * blocks of a (sequence, kv head) share the actual context in tile-aligned parts, so no block
 * idles while another streams a long part (the split count depends only on the block table's
 * capacity, for graph capture; the lengths live on the device). Splits past the context get an
 * empty range (their partials say "no keys"). */
static __device__ __forceinline__ void split_range(const att_args &a, int &k_begin, int &k_end) {
    k_begin = 0;
    if (a.n_splits > 1) {
        const int part = ((k_end + a.n_splits - 1) / a.n_splits + ATT_TK - 1) / ATT_TK * ATT_TK;
        k_begin = blockIdx.z * part;
        k_end = min(k_end, k_begin + part);
    }
}

/* The merged output of (sequence s, query head hq) at dimension d from its splits' partials
 * (natural-log max, sum, unnormalised output). */
static __device__ float combine_splits(const att_args &a, int s, int hq, int d) {
    const int64_t base = ((int64_t)s * a.Hq + hq) * a.n_splits;
    float M = -INFINITY;
    for (int i = 0; i < a.n_splits; i++)
        if (a.part_ml[(base + i) * 2 + 1] > 0.f) M = fmaxf(M, a.part_ml[(base + i) * 2]);
    float num = 0.f, den = 0.f;
    for (int i = 0; i < a.n_splits; i++) {
        const float l = a.part_ml[(base + i) * 2 + 1];
        if (l > 0.f) {
            const float w = __expf(a.part_ml[(base + i) * 2] - M);
            num += w * a.part_o[(base + i) * a.hd + d];
            den += w * l;
        }
    }
    return den > 0.f ? num / den : 0.f;
}

template <int HDM, int ROWS>
__global__ void __launch_bounds__(ATT_NT) k_attention(att_args a) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int LDK = HDM + 8; /* padded row, in bf16 elements */
    bf16 *Ks = (bf16 *)smem;
    bf16 *Vs = Ks + ATT_TK * LDK;
    float *qs = (float *)(Vs + ATT_TK * LDK); /* [ROWS][HDM] */
    float *Ss = qs + ROWS * HDM;              /* [ROWS][ATT_TK] */
    __shared__ float m_s[ROWS], l_s[ROWS], corr_s[ROWS];
    __shared__ int pos_s[ROWS], tok_s[ROWS];
    __shared__ int seq_sh, tile_sh, kend_sh;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int kvh = blockIdx.y, hd = a.hd, G = a.G;

    /* Which sequence and which of its tokens this block handles. */
    if (tid == 0) {
        int s = -1, tile = 0;
        if (a.decode) {
            s = blockIdx.x;
        } else {
            int acc = 0, w = blockIdx.x;
            for (int i = 0; i < a.n_seq; i++) {
                int len = a.cu[i + 1] - a.cu[i];
                int nt = (len + a.BQ - 1) / a.BQ;
                if (w < acc + nt) { s = i; tile = w - acc; break; }
                acc += nt;
            }
        }
        seq_sh = s;
        tile_sh = tile;
    }
    __syncthreads();
    const int s = seq_sh;
    if (s < 0) return; /* past the last tile */
    const int seq_begin = a.cu[s], seq_len = a.cu[s + 1] - seq_begin;
    const int t0 = seq_begin + tile_sh * a.BQ;
    int ntok = seq_len - tile_sh * a.BQ;
    if (ntok > a.BQ) ntok = a.BQ;
    const int nrows = ntok * G;

    if (tid < ROWS) {
        int r = tid;
        if (r < nrows) {
            tok_s[r] = t0 + r / G;
            pos_s[r] = a.pos[t0 + r / G];
        } else {
            tok_s[r] = -1;
            pos_s[r] = -1;
        }
        m_s[r] = -INFINITY;
        l_s[r] = 0.f;
    }
    __syncthreads();
    if (tid == 0) {
        int mx = -1;
        for (int r = 0; r < nrows; r++) mx = max(mx, pos_s[r]);
        kend_sh = mx + 1;
    }
    /* q rows, pre-scaled, as fp32. */
    for (int idx = tid; idx < nrows * hd; idx += ATT_NT) {
        int r = idx / hd, d = idx % hd;
        int hq = kvh * G + r % G;
        qs[r * HDM + d] = __bfloat162float(a.q[((int64_t)tok_s[r] * a.Hq + hq) * hd + d]) * a.scale;
    }
    __syncthreads();
    int k_begin = 0, k_end = kend_sh;
    if (a.decode) split_range(a, k_begin, k_end);

    constexpr int OUTS = ROWS * HDM / ATT_NT;
    float acc[OUTS];
#pragma unroll
    for (int i = 0; i < OUTS; i++) acc[i] = 0.f;

    const int hd8 = hd / 8;
    const int64_t kv_row_stride = (int64_t)a.Hkv * hd;
    for (int kt = k_begin; kt < k_end; kt += ATT_TK) {
        const int nk = min(ATT_TK, k_end - kt);
        /* Stage K and V rows kt .. kt+nk-1 of this kv head. */
        for (int idx = tid; idx < ATT_TK * hd8; idx += ATT_NT) {
            int j = idx / hd8, c = idx % hd8;
            uint4 kv = make_uint4(0, 0, 0, 0), vv = make_uint4(0, 0, 0, 0);
            if (j < nk) {
                int key = kt + j;
                int page = a.bt[(int64_t)s * a.max_pages + key / a.page_size];
                int64_t slot = (int64_t)page * a.page_size + key % a.page_size;
                const uint4 *kp = (const uint4 *)(a.kc + slot * kv_row_stride + (int64_t)kvh * hd);
                const uint4 *vp = (const uint4 *)(a.vc + slot * kv_row_stride + (int64_t)kvh * hd);
                kv = kp[c];
                vv = vp[c];
            }
            *(uint4 *)(Ks + j * LDK + c * 8) = kv;
            *(uint4 *)(Vs + j * LDK + c * 8) = vv;
        }
        __syncthreads();
        /* Scores (masked: key beyond the row's position or the tile). */
        for (int idx = tid; idx < nrows * ATT_TK; idx += ATT_NT) {
            int r = idx / ATT_TK, j = idx % ATT_TK;
            float sc = -INFINITY;
            if (j < nk && kt + j <= pos_s[r]) {
                const float *qr = qs + r * HDM;
                const bf16 *kr = Ks + j * LDK;
                float d0 = 0.f, d1 = 0.f;
                for (int c = 0; c < hd8; c++) {
                    uint4 u = *(const uint4 *)(kr + c * 8);
                    const __nv_bfloat162 *h2 = (const __nv_bfloat162 *)&u;
                    float4 qa = *(const float4 *)(qr + c * 8), qb = *(const float4 *)(qr + c * 8 + 4);
                    float2 k0 = __bfloat1622float2(h2[0]), k1 = __bfloat1622float2(h2[1]);
                    float2 k2 = __bfloat1622float2(h2[2]), k3 = __bfloat1622float2(h2[3]);
                    d0 += qa.x * k0.x + qa.y * k0.y + qa.z * k1.x + qa.w * k1.y;
                    d1 += qb.x * k2.x + qb.y * k2.y + qb.z * k3.x + qb.w * k3.y;
                }
                sc = d0 + d1;
            }
            Ss[r * ATT_TK + j] = sc;
        }
        __syncthreads();
        /* Online softmax: a warp per row. */
        for (int r = warp; r < nrows; r += ATT_NT / 32) {
            float s0 = Ss[r * ATT_TK + lane], s1 = Ss[r * ATT_TK + lane + 32];
            float mx = fmaxf(s0, s1);
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float m_old = m_s[r], m_new = fmaxf(m_old, mx);
            float p0 = 0.f, p1 = 0.f, corr = 1.f;
            if (m_new != -INFINITY) {
                p0 = __expf(s0 - m_new);
                p1 = __expf(s1 - m_new);
                corr = __expf(m_old - m_new);
            }
            Ss[r * ATT_TK + lane] = p0;
            Ss[r * ATT_TK + lane + 32] = p1;
            float sum = p0 + p1;
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp(); /* every lane has read m_s[r] before lane 0 replaces it (compute-sanitizer
                           * racecheck does not count the shuffles as ordering) */
            if (lane == 0) {
                l_s[r] = l_s[r] * corr + sum;
                m_s[r] = m_new;
                corr_s[r] = corr;
            }
        }
        __syncthreads();
        /* acc = acc * corr + P V. */
#pragma unroll
        for (int i = 0; i < OUTS; i++) {
            int o = tid + i * ATT_NT;
            if (o < nrows * hd) {
                int r = o / hd, d = o % hd;
                const float *pr = Ss + r * ATT_TK;
                float v = acc[i] * corr_s[r];
                for (int j = 0; j < nk; j++) v += pr[j] * __bfloat162float(Vs[j * LDK + d]);
                acc[i] = v;
            }
        }
        __syncthreads();
    }

    /* Write: final normalised output, or this split's partials. */
#pragma unroll
    for (int i = 0; i < OUTS; i++) {
        int o = tid + i * ATT_NT;
        if (o < nrows * hd) {
            int r = o / hd, d = o % hd;
            int hq = kvh * G + r % G;
            if (a.decode && a.n_splits > 1) {
                int64_t pi = ((int64_t)s * a.Hq + hq) * a.n_splits + blockIdx.z;
                a.part_o[pi * hd + d] = acc[i];
                if (d == 0) {
                    a.part_ml[pi * 2] = m_s[r];
                    a.part_ml[pi * 2 + 1] = l_s[r];
                }
            } else {
                float l = l_s[r];
                a.out[((int64_t)tok_s[r] * a.Hq + hq) * hd + d] = __float2bfloat16(l > 0.f ? acc[i] / l : 0.f);
            }
        }
    }
}


/* ---------------- decode kernel (one token per sequence, G <= 8) ----------------
 * Tuned for the memory-bound decode: K/V tiles arrive by cp.async into a two-stage shared
 * buffer (the next tile's copy overlaps this tile's math); QK^T has each thread take one key and
 * half of the query rows, so a K row is read from shared memory once for several heads; P.V
 * splits the tile's keys over the 4 warps (each warp keeps partial outputs for all rows, lane =
 * a pair of dims), so each V element is read once; the warps' partials are summed at the end. */
#define DEC_GMAX 8

template <int HDM, int GM>
__global__ void __launch_bounds__(ATT_NT) k_attn_decode(att_args a) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int LDK = HDM + 8;
    bf16 *Ks = (bf16 *)smem;                      /* [2][ATT_TK][LDK] */
    bf16 *Vs = Ks + 2 * ATT_TK * LDK;             /* [2][ATT_TK][LDK] */
    float *qs = (float *)(Vs + 2 * ATT_TK * LDK); /* [GM][HDM] */
    float *Ps = qs + GM * HDM;                    /* [ATT_TK][GM]: a key's probabilities for all rows together */
    __shared__ float m_s[GM], l_s[GM], corr_s[GM];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int s = blockIdx.x, kvh = blockIdx.y, hd = a.hd, G = a.G;
    const int t = a.cu[s];
    const int pos = a.pos[t];
    int k_begin, k_end = pos + 1;
    split_range(a, k_begin, k_end);
    for (int idx = tid; idx < G * hd; idx += ATT_NT) {
        int r = idx / hd, d = idx % hd;
        qs[r * HDM + d] = __bfloat162float(a.q[((int64_t)t * a.Hq + kvh * G + r) * hd + d]) * a.scale;
    }
    if (tid < GM) { m_s[tid] = -INFINITY; l_s[tid] = 0.f; corr_s[tid] = 1.f; }

    constexpr int NP = HDM / 64; /* dim pairs per lane in P.V */
    float acc[GM][NP][2];
#pragma unroll
    for (int r = 0; r < GM; r++)
#pragma unroll
        for (int i = 0; i < NP; i++) acc[r][i][0] = acc[r][i][1] = 0.f;

    const int hd8 = hd >> 3;
    const int64_t kv_row_stride = (int64_t)a.Hkv * hd;
    const int64_t head_off = (int64_t)kvh * hd;
    const int32_t *bt = a.bt + (int64_t)s * a.max_pages;
    /* 16-byte chunk idx of the tile -> (key j, chunk c): shifts when hd/8 and the page size are powers of 2 */
    auto load_tile = [&](int stage, int kt) {
        int nk = min(ATT_TK, k_end - kt);
        bf16 *ks = Ks + stage * ATT_TK * LDK, *vs = Vs + stage * ATT_TK * LDK;
        for (int idx = tid; idx < ATT_TK * hd8; idx += ATT_NT) {
            int j, c;
            if (a.hd8_shift >= 0) { j = idx >> a.hd8_shift; c = idx & (hd8 - 1); }
            else { j = idx / hd8; c = idx - j * hd8; }
            const bf16 *kp = a.kc, *vp = a.vc;
            int bytes = 0;
            if (j < nk) {
                int key = kt + j, pg, in;
                if (a.page_shift >= 0) { pg = key >> a.page_shift; in = key & (a.page_size - 1); }
                else { pg = key / a.page_size; in = key - pg * a.page_size; }
                int64_t off = ((int64_t)bt[pg] * a.page_size + in) * kv_row_stride + head_off + c * 8;
                kp = a.kc + off;
                vp = a.vc + off;
                bytes = 16;
            }
            cp_async16(ks + j * LDK + c * 8, kp, bytes);
            cp_async16(vs + j * LDK + c * 8, vp, bytes);
        }
    };
    if (k_begin < k_end) load_tile(0, k_begin);
    cp_async_commit();
    int stage = 0;
    /* QK: thread -> key jq; rows rh, rh + RSTEP, ... (all 128 threads busy when GM >= 2) */
    constexpr int RSTEP = GM >= 2 ? 2 : 1;
    constexpr int RPT = GM / RSTEP;
    const int jq = tid % ATT_TK, rh = (tid / ATT_TK) % RSTEP;
    const bool qk_active = GM >= 2 || tid < ATT_TK;
    for (int kt = k_begin; kt < k_end; kt += ATT_TK) {
        const int nk = min(ATT_TK, k_end - kt);
        if (kt + ATT_TK < k_end) load_tile(stage ^ 1, kt + ATT_TK);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const bf16 *ks = Ks + stage * ATT_TK * LDK, *vs = Vs + stage * ATT_TK * LDK;
        if (qk_active) {
            float d[RPT];
#pragma unroll
            for (int i = 0; i < RPT; i++) d[i] = 0.f;
            const bf16 *kr = ks + jq * LDK;
#pragma unroll 4
            for (int c = 0; c < hd8; c++) {
                uint4 u = *(const uint4 *)(kr + c * 8);
                const __nv_bfloat162 *h2 = (const __nv_bfloat162 *)&u;
                float2 k0 = __bfloat1622float2(h2[0]), k1 = __bfloat1622float2(h2[1]);
                float2 k2 = __bfloat1622float2(h2[2]), k3 = __bfloat1622float2(h2[3]);
#pragma unroll
                for (int i = 0; i < RPT; i++) {
                    const float *qr = qs + (rh + RSTEP * i) * HDM + c * 8;
                    float4 qa = *(const float4 *)qr, qb = *(const float4 *)(qr + 4);
                    d[i] += qa.x * k0.x + qa.y * k0.y + qa.z * k1.x + qa.w * k1.y + qb.x * k2.x + qb.y * k2.y +
                            qb.z * k3.x + qb.w * k3.y;
                }
            }
#pragma unroll
            for (int i = 0; i < RPT; i++) {
                int r = rh + RSTEP * i;
                Ps[jq * GM + r] = r < G ? (jq < nk ? d[i] : -INFINITY) : 0.f; /* padding rows: p = 0 */
            }
        }
        __syncthreads();
        /* online softmax: a warp per row */
        for (int r = warp; r < G; r += ATT_NT / 32) {
            float s0 = Ps[lane * GM + r], s1 = Ps[(lane + 32) * GM + r];
            float mx = fmaxf(s0, s1);
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float m_old = m_s[r], m_new = fmaxf(m_old, mx);
            float p0 = __expf(s0 - m_new), p1 = __expf(s1 - m_new), corr = __expf(m_old - m_new);
            Ps[lane * GM + r] = p0;
            Ps[(lane + 32) * GM + r] = p1;
            float sum = p0 + p1;
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp(); /* every lane has read m_s[r] before lane 0 replaces it (compute-sanitizer
                           * racecheck does not count the shuffles as ordering) */
            if (lane == 0) {
                l_s[r] = l_s[r] * corr + sum;
                m_s[r] = m_new;
                corr_s[r] = corr;
            }
        }
        __syncthreads();
        /* P.V: warp w takes keys [16w, 16w+16) of the tile; rows >= G have p = 0 */
        {
#pragma unroll
            for (int r = 0; r < GM; r++) {
                float cr = corr_s[r];
#pragma unroll
                for (int i = 0; i < NP; i++) { acc[r][i][0] *= cr; acc[r][i][1] *= cr; }
            }
            const int j0 = warp * (ATT_TK / 4), j1 = min(j0 + ATT_TK / 4, nk);
            for (int j = j0; j < j1; j++) {
                float2 v[NP];
#pragma unroll
                for (int i = 0; i < NP; i++) {
                    int d = 2 * lane + 64 * i;
                    v[i] = d < hd ? __bfloat1622float2(*(const __nv_bfloat162 *)(vs + j * LDK + d)) : make_float2(0.f, 0.f);
                }
                float p[GM];
                if (GM >= 4) {
#pragma unroll
                    for (int r4 = 0; r4 < GM; r4 += 4) {
                        float4 q4 = *(const float4 *)(Ps + j * GM + r4);
                        p[r4] = q4.x; p[(r4 + 1) % GM] = q4.y; p[(r4 + 2) % GM] = q4.z; p[(r4 + 3) % GM] = q4.w;
                    }
                } else {
#pragma unroll
                    for (int r = 0; r < GM; r++) p[r] = Ps[j * GM + r];
                }
#pragma unroll
                for (int r = 0; r < GM; r++)
#pragma unroll
                    for (int i = 0; i < NP; i++) { acc[r][i][0] += p[r] * v[i].x; acc[r][i][1] += p[r] * v[i].y; }
            }
        }
        __syncthreads();
        stage ^= 1;
    }
    cp_async_wait<0>();
    __syncthreads();
    /* sum the 4 warps' partial outputs (reusing the K/V buffers) */
    float *red = (float *)smem; /* [4][GM][HDM] */
#pragma unroll
    for (int r = 0; r < GM; r++) {
        if (r < G) {
#pragma unroll
            for (int i = 0; i < NP; i++) {
                int d = 2 * lane + 64 * i;
                if (d < hd) {
                    red[(warp * GM + r) * HDM + d] = acc[r][i][0];
                    red[(warp * GM + r) * HDM + d + 1] = acc[r][i][1];
                }
            }
        }
    }
    __syncthreads();
    for (int o = tid; o < G * hd; o += ATT_NT) {
        int r = o / hd, d = o % hd;
        float v = red[(0 * GM + r) * HDM + d] + red[(1 * GM + r) * HDM + d] + red[(2 * GM + r) * HDM + d] +
                  red[(3 * GM + r) * HDM + d];
        int hq = kvh * G + r;
        if (a.n_splits > 1) {
            int64_t pi = ((int64_t)s * a.Hq + hq) * a.n_splits + blockIdx.z;
            a.part_o[pi * hd + d] = v;
            if (d == 0) {
                a.part_ml[pi * 2] = m_s[r];
                a.part_ml[pi * 2 + 1] = l_s[r];
            }
        } else {
            float l = l_s[r];
            a.out[((int64_t)t * a.Hq + hq) * hd + d] = __float2bfloat16(l > 0.f ? v / l : 0.f);
        }
    }
}

template <int HDM, int GM>
static void dec_launch(cudaStream_t st, const att_args &a, dim3 grid) {
    size_t kv = (size_t)4 * ATT_TK * (HDM + 8) * sizeof(bf16);
    size_t red = (size_t)4 * GM * HDM * sizeof(float);
    size_t smem = (kv > red ? kv : red) + (size_t)GM * HDM * 4 + (size_t)GM * ATT_TK * 4;
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_decode<HDM, GM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    k_attn_decode<HDM, GM><<<grid, ATT_NT, smem, st>>>(a);
    CUDA_CHECK_LAUNCH();
}
template <int HDM>
static void dec_dispatch_g(cudaStream_t st, const att_args &a, dim3 grid) {
    if (a.G <= 1) dec_launch<HDM, 1>(st, a, grid);
    else if (a.G <= 2) dec_launch<HDM, 2>(st, a, grid);
    else if (a.G <= 4) dec_launch<HDM, 4>(st, a, grid);
    else dec_launch<HDM, 8>(st, a, grid);
}


/* ---------------- decode kernel on tensor cores (hd 64 or 128, G <= 8) ----------------
 * mma.sync m16n8k16 (bf16 in, fp32 accumulate): the G query rows (padded to 16) are the A
 * operand, kept in registers for the whole block; each warp owns 16 keys of every 64-key tile
 * and runs its own online softmax over them (no block-wide syncs for the softmax: the warps'
 * (max, sum, output) are merged once at the end, like split-K). K and V fragments come from the
 * shared-memory tiles through ldmatrix (V transposed); P goes from the S accumulators straight
 * into the A operand of P.V. Scores live in the log2 domain (scale * log2 e, exp2).
 * K/V tiles stream through DEC_STAGES shared-memory stages (DEC_STAGES - 1 tiles in flight
 * behind the one in use): 2, measured against 3 on an H100 (gpu_ab.log: within 1%, either sign;
 * three stages cost a resident block per SM in shared memory). */
#define DEC_STAGES 2
template <int HD>
__global__ void __launch_bounds__(ATT_NT) k_attn_decode_mma(att_args a) {
    cu_pdl_wait();
    cu_pdl_trigger();
    extern __shared__ __align__(16) unsigned char smem[];
    constexpr int LDK = HD + 8;
    constexpr int KS = HD / 16; /* k-steps of Q.K^T, and 16-dim groups of P.V */
    bf16 *Ks = (bf16 *)smem;               /* [DEC_STAGES][ATT_TK][LDK] */
    bf16 *Vs = Ks + DEC_STAGES * ATT_TK * LDK; /* [DEC_STAGES][ATT_TK][LDK] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int grp = lane >> 2, qd = lane & 3; /* mma groupID, thread-in-group */
    const int s = blockIdx.x, kvh = blockIdx.y, G = a.G;
    const int t = a.cu[s];
    const int pos = a.pos[t];
    int k_begin, k_end = pos + 1;
    split_range(a, k_begin, k_end);
    /* Q as A fragments: row grp (zero for grp >= G), rows grp+8 are padding. */
    uint32_t qa[KS][4];
    {
        const bf16 *qrow = a.q + ((int64_t)t * a.Hq + kvh * G + (grp < G ? grp : 0)) * HD;
#pragma unroll
        for (int kk = 0; kk < KS; kk++) {
            uint32_t lo = *(const uint32_t *)(qrow + kk * 16 + qd * 2);
            uint32_t hi = *(const uint32_t *)(qrow + kk * 16 + 8 + qd * 2);
            qa[kk][0] = grp < G ? lo : 0u;
            qa[kk][1] = 0u;
            qa[kk][2] = grp < G ? hi : 0u;
            qa[kk][3] = 0u;
        }
    }
    const float sl2 = a.scale * 1.4426950408889634f;
    float m_run = -INFINITY, l_run = 0.f; /* row grp; l_run is this thread's partial sum */
    float o[2 * KS][4];
#pragma unroll
    for (int i = 0; i < 2 * KS; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;

    const int64_t kv_row_stride = (int64_t)a.Hkv * HD;
    const int64_t head_off = (int64_t)kvh * HD;
    const int32_t *bt = a.bt + (int64_t)s * a.max_pages;
    constexpr int HD8 = HD / 8;
    auto load_tile = [&](int stage, int kt) {
        int nk = min(ATT_TK, k_end - kt);
        bf16 *ks = Ks + stage * ATT_TK * LDK, *vs = Vs + stage * ATT_TK * LDK;
#pragma unroll
        for (int it = 0; it < ATT_TK * HD8 / ATT_NT; it++) {
            int idx = tid + it * ATT_NT;
            int j = idx / HD8, c = idx % HD8;
            const bf16 *kp = a.kc, *vp = a.vc;
            int bytes = 0;
            if (j < nk) {
                int key = kt + j, pg, in;
                if (a.page_shift >= 0) { pg = key >> a.page_shift; in = key & (a.page_size - 1); }
                else { pg = key / a.page_size; in = key - pg * a.page_size; }
                int64_t off = ((int64_t)bt[pg] * a.page_size + in) * kv_row_stride + head_off + c * 8;
                kp = a.kc + off;
                vp = a.vc + off;
                bytes = 16;
            }
            cp_async16(ks + j * LDK + c * 8, kp, bytes);
            cp_async16(vs + j * LDK + c * 8, vp, bytes);
        }
    };
    /* prologue: the first DEC_STAGES - 1 tiles in flight (one commit group each, empty ones too,
     * so the wait below always counts DEC_STAGES - 1 younger groups) */
#pragma unroll
    for (int i = 0; i < DEC_STAGES - 1; i++) {
        if (k_begin + i * ATT_TK < k_end) load_tile(i, k_begin + i * ATT_TK);
        cp_async_commit();
    }
    int stage = 0;
    const int kw = warp * 16; /* this warp's keys in the tile */
    for (int kt = k_begin; kt < k_end; kt += ATT_TK) {
        const int nk = min(ATT_TK, k_end - kt);
        {
            const int ahead = kt + (DEC_STAGES - 1) * ATT_TK;
            int st2 = stage + DEC_STAGES - 1;
            if (st2 >= DEC_STAGES) st2 -= DEC_STAGES;
            if (ahead < k_end) load_tile(st2, ahead);
        }
        cp_async_commit();
        cp_async_wait<DEC_STAGES - 1>();
        __syncthreads();
        const bf16 *ks = Ks + stage * ATT_TK * LDK, *vs = Vs + stage * ATT_TK * LDK;
        if (kw < nk) {
            /* S[16 rows x 16 keys] = Q K^T: two n-tiles of 8 keys */
            float sc[2][4];
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
                sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
#pragma unroll
                for (int kk = 0; kk < KS; kk++) {
                    uint32_t b0, b1;
                    /* lanes 0-7: keys' dims [16kk, 16kk+8); lanes 8-15: dims [16kk+8, 16kk+16) */
                    const bf16 *pa = ks + (kw + nt * 8 + (lane & 7)) * LDK + kk * 16 + ((lane >> 3) & 1) * 8;
                    ldsm_x2(b0, b1, pa);
                    mma_bf16(sc[nt], qa[kk], b0, b1);
                }
            }
            /* mask, scale, online softmax for row grp over this warp's 16 keys */
            float v[4];
#pragma unroll
            for (int nt = 0; nt < 2; nt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    int j = kw + nt * 8 + qd * 2 + e;
                    v[nt * 2 + e] = j < nk ? sc[nt][e] * sl2 : -INFINITY;
                }
            float mx = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float m_new = fmaxf(m_run, mx);
            float corr = 1.f, pr[4];
            if (m_new == -INFINITY) {
                pr[0] = pr[1] = pr[2] = pr[3] = 0.f;
            } else {
                corr = exp2f(m_run - m_new);
#pragma unroll
                for (int e = 0; e < 4; e++) pr[e] = exp2f(v[e] - m_new);
            }
            m_run = m_new;
            l_run = l_run * corr + (pr[0] + pr[1] + pr[2] + pr[3]);
#pragma unroll
            for (int i = 0; i < 2 * KS; i++) { o[i][0] *= corr; o[i][1] *= corr; }
            /* P as the A operand (16 rows x 16 keys); padding rows are 0 */
            uint32_t pa4[4] = {pack_bf16(pr[0], pr[1]), 0u, pack_bf16(pr[2], pr[3]), 0u};
            /* O += P V: per 16 dims, ldmatrix.trans gives the B fragments of two 8-dim n-tiles */
#pragma unroll
            for (int nd = 0; nd < KS; nd++) {
                uint32_t r0, r1, r2, r3;
                int mi = lane >> 3;
                const bf16 *pv = vs + (kw + (mi & 1) * 8 + (lane & 7)) * LDK + nd * 16 + (mi >> 1) * 8;
                ldsm_x4_t(r0, r1, r2, r3, pv);
                mma_bf16(o[2 * nd], pa4, r0, r1);
                mma_bf16(o[2 * nd + 1], pa4, r2, r3);
            }
        }
        __syncthreads();
        if (++stage == DEC_STAGES) stage = 0;
    }
    cp_async_wait<0>();
    __syncthreads();
    /* merge the 4 warps: (m, l, O) of row grp < G */
    float *rm = (float *)smem;        /* [4][8] */
    float *rl = rm + 32;              /* [4][8] */
    float *ro = rl + 32;              /* [4][8][HD] */
    l_run += __shfl_xor_sync(0xffffffffu, l_run, 1);
    l_run += __shfl_xor_sync(0xffffffffu, l_run, 2);
    if (grp < G) {
        if (qd == 0) { rm[warp * 8 + grp] = m_run; rl[warp * 8 + grp] = l_run; }
#pragma unroll
        for (int i = 0; i < 2 * KS; i++) {
            int d = i * 8 + qd * 2;
            ro[(warp * 8 + grp) * HD + d] = o[i][0];
            ro[(warp * 8 + grp) * HD + d + 1] = o[i][1];
        }
    }
    __syncthreads();
    for (int idx = tid; idx < G * HD; idx += ATT_NT) {
        int r = idx / HD, d = idx % HD;
        float M = fmaxf(fmaxf(rm[r], rm[8 + r]), fmaxf(rm[16 + r], rm[24 + r]));
        float num = 0.f, den = 0.f;
        if (M != -INFINITY) {
#pragma unroll
            for (int w = 0; w < 4; w++) {
                float wt = exp2f(rm[w * 8 + r] - M);
                num += wt * ro[(w * 8 + r) * HD + d];
                den += wt * rl[w * 8 + r];
            }
        }
        int hq = kvh * G + r;
        if (a.n_splits > 1) {
            int64_t pi = ((int64_t)s * a.Hq + hq) * a.n_splits + blockIdx.z;
            a.part_o[pi * HD + d] = num;
            if (d == 0) {
                a.part_ml[pi * 2] = M * 0.6931471805599453f; /* natural-log domain for the combine */
                a.part_ml[pi * 2 + 1] = den;
            }
        } else {
            a.out[((int64_t)t * a.Hq + hq) * HD + d] = __float2bfloat16(den > 0.f ? num / den : 0.f);
        }
    }
}

template <int HD>
static void dec_mma_launch(const cu_impl *c, const att_args &a, dim3 grid) {
    size_t kv = (size_t)2 * DEC_STAGES * ATT_TK * (HD + 8) * sizeof(bf16);
    size_t red = (size_t)(64 + 4 * 8 * HD) * sizeof(float);
    size_t smem = kv > red ? kv : red;
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(k_attn_decode_mma<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)smem));
    cu_launch(c, k_attn_decode_mma<HD>, grid, ATT_NT, smem, a);
    CUDA_CHECK_LAUNCH();
}

/* Merges the splits of each (sequence, head): a block per pair, a thread per dimension. */
__global__ void k_attention_combine(att_args a) {
    cu_pdl_wait();
    cu_pdl_trigger();
    int s = blockIdx.x / a.Hq, hq = blockIdx.x % a.Hq;
    int t = a.cu[s];
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x)
        a.out[((int64_t)t * a.Hq + hq) * a.hd + d] = __float2bfloat16(combine_splits(a, s, hq, d));
}

template <int HDM, int ROWS>
static void att_launch(cudaStream_t st, const att_args &a, dim3 grid) {
    size_t smem = (size_t)2 * ATT_TK * (HDM + 8) * sizeof(bf16) + (size_t)ROWS * HDM * 4 + (size_t)ROWS * ATT_TK * 4;
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(k_attention<HDM, ROWS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    k_attention<HDM, ROWS><<<grid, ATT_NT, smem, st>>>(a);
    CUDA_CHECK_LAUNCH();
}

template <int ROWS>
static void att_dispatch_hd(cudaStream_t st, const att_args &a, dim3 grid) {
    if (a.hd <= 64) att_launch<64, ROWS>(st, a, grid);
    else if (a.hd <= 128) att_launch<128, ROWS>(st, a, grid);
    else att_launch<256, ROWS>(st, a, grid);
}

void cu_attention(op_backend *b, void *out, const void *q, const void *k_cache, const void *v_cache,
                  const int32_t *block_table, int max_pages, const int32_t *cu_seqlens, const int32_t *pos,
                  int n_seq, int T, int Hq, int Hkv, int hd, int page_size, float scale) {
    CHECK(n_seq >= 0 && T >= n_seq && Hq > 0 && Hkv > 0 && Hq % Hkv == 0 && hd > 0 && page_size > 0 &&
              max_pages > 0,
          "attention: n_seq=%d T=%d Hq=%d Hkv=%d hd=%d page_size=%d max_pages=%d", n_seq, T, Hq, Hkv, hd,
          page_size, max_pages);
    CHECK(hd % 8 == 0 && hd <= 256, "attention: head_dim %d must be a multiple of 8 and at most 256", hd);
    CHECK(Hq / Hkv <= 32, "attention: GQA group %d > 32 query heads per kv head is not supported", Hq / Hkv);
    if (T == 0 || n_seq == 0) return;
    cu_impl *c = cu_of(b);
    att_args a;
    memset(&a, 0, sizeof a);
    a.out = (bf16 *)out;
    a.q = (const bf16 *)q;
    a.kc = (const bf16 *)k_cache;
    a.vc = (const bf16 *)v_cache;
    a.bt = block_table;
    a.cu = cu_seqlens;
    a.pos = pos;
    a.max_pages = max_pages;
    a.n_seq = n_seq;
    a.T = T;
    a.Hq = Hq;
    a.Hkv = Hkv;
    a.hd = hd;
    a.page_size = page_size;
    a.hd8_shift = a.page_shift = -1;
    for (int k = 0; k < 31; k++) {
        if ((hd / 8) == (1 << k)) a.hd8_shift = k;
        if (page_size == (1 << k)) a.page_shift = k;
    }
    a.G = Hq / Hkv;
    a.scale = scale;
    a.decode = (T == n_seq);
    if (a.decode) {
        a.BQ = 1;
        long cap = (long)max_pages * page_size;
        long base = (long)n_seq * Hkv;
        /* about 4 blocks per SM, at most one per key tile: more splits only add block overheads and
         * combine work (H100, splits sized from the context: 4 per SM beat 8 and 16 at every batch
         * from 1 to 256 and context 768 to 4352, up to +4.4 points of roofline; gpu_ab.log) */
        long want = (4L * c->n_sm + base - 1) / base;
        long max_splits = (cap + ATT_TK - 1) / ATT_TK;
        if (want > max_splits) want = max_splits;
        if (want < 1) want = 1;
        a.n_splits = (int)want;
        if (a.n_splits > 1) {
            size_t np = (size_t)n_seq * Hq * a.n_splits;
            float *scr = (float *)cu_scratch(c, np * (hd + 2) * sizeof(float));
            a.part_o = scr;
            a.part_ml = scr + np * hd;
        }
        dim3 grid(n_seq, Hkv, a.n_splits);
        if (a.G <= 8 && (hd == 64 || hd == 128) && c->attn_mode == 0) {
            if (hd == 64) dec_mma_launch<64>(c, a, grid);
            else dec_mma_launch<128>(c, a, grid);
        } else if (a.G <= DEC_GMAX && c->attn_mode <= 1) {
            if (hd <= 64) dec_dispatch_g<64>(c->stream, a, grid);
            else if (hd <= 128) dec_dispatch_g<128>(c->stream, a, grid);
            else dec_dispatch_g<256>(c->stream, a, grid);
        } else {
            att_dispatch_hd<32>(c->stream, a, grid);
        }
        if (a.n_splits > 1) {
            cu_launch(c, k_attention_combine, n_seq * Hq, hd < 32 ? 32 : hd, 0, a);
            CUDA_CHECK_LAUNCH();
        }
    } else {
        /* tensor-core flash kernel (cuda_attn_prefill_mma.cu) when enabled and the shape is supported */
        if (c->attn_prefill_mma && cu_attn_prefill_mma(c, out, q, k_cache, v_cache, block_table, max_pages,
                                                       cu_seqlens, pos, n_seq, T, Hq, Hkv, hd, page_size,
                                                       scale) == 0)
            return;
        a.BQ = 32 / a.G;
        a.n_splits = 1;
        unsigned work = (unsigned)((T + a.BQ - 1) / a.BQ + n_seq);
        dim3 grid(work, Hkv, 1);
        att_dispatch_hd<32>(c->stream, a, grid);
    }
}
