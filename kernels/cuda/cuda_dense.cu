/* kernels/cuda/cuda_dense.cu — the element-wise and per-row ops of the CUDA backend: embedding,
 * RMSNorm (plain, fused residual add, gated grouped), SwiGLU, add, the fused q|k|v step (RoPE +
 * paged KV writes), dtype conversion and random fills. bf16 in/out, fp32 arithmetic; rows are
 * reduced in fp32.
 * Memory-bound: 16-byte vector accesses where the row length allows, one pass per op.
 */
#include "kernels/cuda/cuda_internal.cuh"

#define DENSE_THREADS 256

/* Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread gets the sum. */
static __device__ float block_sum(float v) {
    __shared__ float red[32];
    __shared__ float total;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); /* red/total may still be read from a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nw = blockDim.x >> 5;
        float s = lane < nw ? red[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
}

/* 8 bf16 <-> 8 floats through one 16-byte word. */
static __device__ __forceinline__ void unpack8(uint4 u, float *f) {
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}
static __device__ __forceinline__ uint4 pack8(const float *f) {
    uint4 u;
    __nv_bfloat162 *h = (__nv_bfloat162 *)&u;
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2bfloat162_rn(f[2 * i], f[2 * i + 1]);
    return u;
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* ---------------- embed ---------------- */
__global__ void k_embed_vec(uint4 *out, const uint4 *table, const int32_t *ids, size_t n, int D8) {
    cu_pdl_wait();
    cu_pdl_trigger();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / D8, e = i % D8;
        out[i] = table[(int64_t)ids[t] * D8 + e];
    }
}
__global__ void k_embed(bf16 *out, const bf16 *table, const int32_t *ids, size_t n, int D) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / D, e = i % D;
        out[i] = table[(int64_t)ids[t] * D + e];
    }
}
static unsigned grid_for(size_t n);
void cu_embed(op_backend *b, void *out, const void *table, const int32_t *ids, int T, int D) {
    CHECK(T >= 0 && D > 0, "embed: T=%d D=%d", T, D);
    if (T == 0) return;
    cudaStream_t s = cu_of(b)->stream;
    if (D % 8 == 0 && aligned16(out) && aligned16(table)) {
        size_t n = (size_t)T * (D / 8);
        cu_launch(cu_of(b), k_embed_vec, grid_for(n), DENSE_THREADS, 0, (uint4 *)out, (const uint4 *)table, ids, n,
                  D / 8);
    } else {
        size_t n = (size_t)T * D;
        k_embed<<<grid_for(n), DENSE_THREADS, 0, s>>>((bf16 *)out, (const bf16 *)table, ids, n, D);
    }
    CUDA_CHECK_LAUNCH();
}

/* ---------------- rmsnorm / add_rmsnorm ----------------
 * One block per row. Vector path: each thread keeps its 8-element chunks (at most RMS_VEC_MAX,
 * one when the row allows: a decode step's rows are a few KB and their kernels are latency-bound)
 * in registers between the reduction and the write, and loads its weight chunks before the
 * reduction so the write phase waits on nothing; otherwise a scalar two-pass path. `out` may
 * alias `x` (each thread rewrites only what it read). */
#define RMS_VEC_MAX 4
#define RMS_VEC_THREADS 512
/* The write phase of the vector row kernels: chunk i = threadIdx.x + j blockDim.x (< n8) of the
 * output row is v[j] * r * w, w the thread's weight chunks loaded before the reduction. */
static __device__ __forceinline__ void norm_store_rows(const float (*v)[8], const uint4 *wq, float r, uint4 *orow,
                                                       int n8) {
#pragma unroll
    for (int j = 0; j < RMS_VEC_MAX; j++) {
        int i = threadIdx.x + j * blockDim.x;
        if (i < n8) {
            float wv[8], o[8];
            unpack8(wq[j], wv);
#pragma unroll
            for (int e = 0; e < 8; e++) o[e] = v[j][e] * r * wv[e];
            orow[i] = pack8(o);
        }
    }
}
template <int ADD>
__global__ void __launch_bounds__(RMS_VEC_THREADS)
    k_rmsnorm_vec(bf16 *out, bf16 *resid, const bf16 *x, const bf16 *w, int D, float eps) {
    cu_pdl_wait();
    cu_pdl_trigger();
    int64_t row = blockIdx.x;
    int D8 = D / 8;
    float v[RMS_VEC_MAX][8];
    uint4 wq[RMS_VEC_MAX];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < RMS_VEC_MAX; j++) {
        int i = threadIdx.x + j * blockDim.x;
        if (i < D8) {
            wq[j] = ((const uint4 *)w)[i];
            unpack8(((const uint4 *)(x + row * D))[i], v[j]);
            if (ADD) {
                float r[8];
                unpack8(((const uint4 *)(resid + row * D))[i], r);
#pragma unroll
                for (int e = 0; e < 8; e++) v[j][e] += r[e];
                uint4 packed = pack8(v[j]);
                ((uint4 *)(resid + row * D))[i] = packed;
                unpack8(packed, v[j]); /* normalise the stored (rounded) residual */
            }
#pragma unroll
            for (int e = 0; e < 8; e++) ss += v[j][e] * v[j][e];
        }
    }
    float r = rsqrtf(block_sum(ss) / (float)D + eps);
    norm_store_rows(v, wq, r, (uint4 *)(out + row * D), D8);
}
/* Threads for a vector row kernel over n8 16-byte chunks: one chunk per thread up to
 * RMS_VEC_THREADS threads (a multiple of 32), then up to RMS_VEC_MAX per thread; 0 when the
 * row is too long. The cap keeps a block's registers (~80 per thread) within an SM's 64K. */
static int vec_row_threads(int n8) {
    int threads = (n8 + 31) / 32 * 32;
    if (threads <= RMS_VEC_THREADS) return threads;
    return n8 <= RMS_VEC_THREADS * RMS_VEC_MAX ? RMS_VEC_THREADS : 0;
}
template <int ADD>
__global__ void k_rmsnorm(bf16 *out, bf16 *resid, const bf16 *x, const bf16 *w, int D, float eps) {
    int64_t row = blockIdx.x;
    float ss = 0.f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = __bfloat162float(x[row * D + i]);
        if (ADD) {
            bf16 s = __float2bfloat16(v + __bfloat162float(resid[row * D + i]));
            resid[row * D + i] = s;
            v = __bfloat162float(s);
        }
        ss += v * v;
    }
    float r = rsqrtf(block_sum(ss) / (float)D + eps);
    const bf16 *src = ADD ? resid : x;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        out[row * D + i] = __float2bfloat16(__bfloat162float(src[row * D + i]) * r * __bfloat162float(w[i]));
}

template <int ADD>
static void rms_launch(op_backend *b, bf16 *out, bf16 *resid, const bf16 *x, const bf16 *w, int T, int D,
                       float eps) {
    cudaStream_t s = cu_of(b)->stream;
    int D8 = D / 8;
    int vec = D % 8 == 0 && aligned16(out) && aligned16(x) && aligned16(w) && (!ADD || aligned16(resid));
    int vthreads = vec ? vec_row_threads(D8) : 0;
    if (vthreads > 0) {
        cu_launch(cu_of(b), k_rmsnorm_vec<ADD>, T, vthreads, 0, out, resid, x, w, D, eps);
        CUDA_CHECK_LAUNCH();
        return;
    }
    int threads = D >= 1024 ? 256 : 128;
    k_rmsnorm<ADD><<<T, threads, 0, s>>>(out, resid, x, w, D, eps);
    CUDA_CHECK_LAUNCH();
}

void cu_rmsnorm(op_backend *b, void *out, const void *x, const void *w, int T, int D, float eps) {
    CHECK(T >= 0 && D > 0, "rmsnorm: T=%d D=%d", T, D);
    if (T == 0) return;
    rms_launch<0>(b, (bf16 *)out, NULL, (const bf16 *)x, (const bf16 *)w, T, D, eps);
}
void cu_add_rmsnorm(op_backend *b, void *resid, const void *x, void *out, const void *w, int T, int D,
                    float eps) {
    CHECK(T >= 0 && D > 0, "add_rmsnorm: T=%d D=%d", T, D);
    if (T == 0) return;
    rms_launch<1>(b, (bf16 *)out, (bf16 *)resid, (const bf16 *)x, (const bf16 *)w, T, D, eps);
}

/* ---------------- swiglu / add ---------------- */
static __device__ __forceinline__ float silu(float x) { return x / (1.f + __expf(-x)); }

__global__ void k_swiglu_vec(uint4 *out, const uint4 *gu, int T, int F8) {
    cu_pdl_wait();
    cu_pdl_trigger();
    size_t n = (size_t)T * F8;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / F8, f = i % F8;
        float g[8], u[8], o[8];
        unpack8(gu[t * 2 * F8 + f], g);
        unpack8(gu[t * 2 * F8 + F8 + f], u);
#pragma unroll
        for (int e = 0; e < 8; e++) o[e] = silu(g[e]) * u[e];
        out[i] = pack8(o);
    }
}
__global__ void k_swiglu(bf16 *out, const bf16 *gu, int T, int F) {
    size_t n = (size_t)T * F;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / F, f = i % F;
        float g = __bfloat162float(gu[t * 2 * F + f]), u = __bfloat162float(gu[t * 2 * F + F + f]);
        out[i] = __float2bfloat16(silu(g) * u);
    }
}
static unsigned grid_for(size_t n) {
    size_t g = (n + DENSE_THREADS - 1) / DENSE_THREADS;
    if (g > 65535u * 8) g = 65535u * 8;
    return (unsigned)(g ? g : 1);
}
void cu_swiglu(op_backend *b, void *out, const void *gu, int T, int F) {
    CHECK(T >= 0 && F > 0, "swiglu: T=%d F=%d", T, F);
    if (T == 0) return;
    cudaStream_t s = cu_of(b)->stream;
    if (F % 8 == 0 && aligned16(out) && aligned16(gu))
        cu_launch(cu_of(b), k_swiglu_vec, grid_for((size_t)T * F / 8), DENSE_THREADS, 0, (uint4 *)out, (const uint4 *)gu, T,
                  F / 8);
    else
        k_swiglu<<<grid_for((size_t)T * F), DENSE_THREADS, 0, s>>>((bf16 *)out, (const bf16 *)gu, T, F);
    CUDA_CHECK_LAUNCH();
}

__global__ void k_add_vec(uint4 *y, const uint4 *x, size_t n8) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        float a[8], c[8];
        unpack8(y[i], a);
        unpack8(x[i], c);
#pragma unroll
        for (int e = 0; e < 8; e++) a[e] += c[e];
        y[i] = pack8(a);
    }
}
__global__ void k_add(bf16 *y, const bf16 *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(__bfloat162float(y[i]) + __bfloat162float(x[i]));
}
void cu_add(op_backend *b, void *y, const void *x, size_t n) {
    if (n == 0) return;
    cudaStream_t s = cu_of(b)->stream;
    if (n % 8 == 0 && aligned16(y) && aligned16(x))
        k_add_vec<<<grid_for(n / 8), DENSE_THREADS, 0, s>>>((uint4 *)y, (const uint4 *)x, n / 8);
    else
        k_add<<<grid_for(n), DENSE_THREADS, 0, s>>>((bf16 *)y, (const bf16 *)x, n);
    CUDA_CHECK_LAUNCH();
}

/* ---------------- qkv_rope_write: rotary embedding + paged KV write, fused ----------------
 * One launch over work units. The row of token t is [q heads | k heads | v heads] (Hall =
 * Hq + 2 Hkv heads of hd elements). Each head is split into units of W elements (W = 8: one
 * 16-byte word; W = 1: the scalar fallback):
 *   - rotation units u < half/W: elements [u W, u W + W) and their partners [half + u W, ...):
 *     rotate_half on q and k heads (x1 = e[f], x2 = e[f + half]; out[f] = x1 cos - x2 sin,
 *     out[f + half] = x2 cos + x1 sin, angle = pos[t] * inv_freq[f] in fp32 with the accurate
 *     sincosf: positions reach 1e5 radians), plain copy of both chunks on v heads;
 *   - copy units: the dims rot_dim..hd-1 (partial rotary), W at a time.
 * q heads go to q_out [T, Hq, hd]; k/v heads go to the caches at flat slot slot_mapping[t]
 * ([slot, Hkv, hd]), skipped for padding tokens (slot < 0). Consecutive threads take
 * consecutive units of one head, so a warp reads and writes contiguous bytes. pos and
 * inv_freq are read only by rotation units (never when rot_dim == 0). */
template <int W>
static __device__ __forceinline__ void chunk_copy(bf16 *dst, const bf16 *src) {
    if constexpr (W == 8) *(uint4 *)dst = *(const uint4 *)src;
    else *dst = *src;
}
template <int W>
static __device__ __forceinline__ void chunk_load(const bf16 *src, float *f) {
    if constexpr (W == 8) unpack8(*(const uint4 *)src, f);
    else f[0] = __bfloat162float(*src);
}
template <int W>
static __device__ __forceinline__ void chunk_store(bf16 *dst, const float *f) {
    if constexpr (W == 8) *(uint4 *)dst = pack8(f);
    else *dst = __float2bfloat16(f[0]);
}

template <int W>
__global__ void k_qkv_rope_write(bf16 *q_out, const bf16 *qkv, const int32_t *pos, const float *inv_freq,
                                 bf16 *kc, bf16 *vc, const int32_t *slot, int T, int Hq, int Hkv, int hd, int half) {
    cu_pdl_wait();
    cu_pdl_trigger();
    const int Hall = Hq + 2 * Hkv;
    const int UR = half / W;                    /* rotation units per head */
    const int U = UR + (hd - 2 * half) / W;     /* + copy units */
    const size_t n = (size_t)T * Hall * U;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const int u = (int)(i % U);
        const size_t th = i / U;
        const int h = (int)(th % Hall);
        const size_t t = th / Hall;
        const bf16 *src = qkv + th * hd; /* th = t * Hall + h */
        bf16 *dst;
        if (h < Hq) {
            dst = q_out + (t * Hq + h) * hd;
        } else {
            const int64_t sl = slot[t];
            if (sl < 0) continue; /* padding token: its k/v are not stored */
            dst = h < Hq + Hkv ? kc + (sl * Hkv + (h - Hq)) * hd : vc + (sl * Hkv + (h - Hq - Hkv)) * hd;
        }
        if (u < UR) {
            const int f0 = u * W;
            if (h < Hq + Hkv) { /* q or k: rotate */
                float x1[W], x2[W], o1[W], o2[W];
                chunk_load<W>(src + f0, x1);
                chunk_load<W>(src + half + f0, x2);
                const float p = (float)pos[t];
#pragma unroll
                for (int e = 0; e < W; e++) {
                    float sn, cs;
                    sincosf(p * inv_freq[f0 + e], &sn, &cs);
                    o1[e] = x1[e] * cs - x2[e] * sn;
                    o2[e] = x2[e] * cs + x1[e] * sn;
                }
                chunk_store<W>(dst + f0, o1);
                chunk_store<W>(dst + half + f0, o2);
            } else { /* v: both chunks as they are */
                chunk_copy<W>(dst + f0, src + f0);
                chunk_copy<W>(dst + half + f0, src + half + f0);
            }
        } else {
            const int off = 2 * half + (u - UR) * W;
            chunk_copy<W>(dst + off, src + off);
        }
    }
}

void cu_qkv_rope_write(op_backend *b, void *q_out, const void *qkv, const int32_t *pos, const float *inv_freq,
                       void *k_cache, void *v_cache, const int32_t *slot_mapping, int T, int Hq, int Hkv, int hd,
                       int rot_dim) {
    CHECK(T >= 0 && Hq > 0 && Hkv > 0 && hd > 0 && rot_dim >= 0 && rot_dim <= hd && rot_dim % 2 == 0,
          "qkv_rope_write: T=%d Hq=%d Hkv=%d hd=%d rot_dim=%d (rot_dim even, 0..hd)", T, Hq, Hkv, hd, rot_dim);
    CHECK(rot_dim == 0 || inv_freq != NULL, "qkv_rope_write: inv_freq is NULL with rot_dim %d", rot_dim);
    if (T == 0) return;
    cudaStream_t s = cu_of(b)->stream;
    const int half = rot_dim / 2;
    const size_t heads = (size_t)T * (Hq + 2 * Hkv);
    /* 16-byte path: every chunk is 8 whole elements at a 16-byte boundary (row, head and
     * cache offsets are multiples of hd, and half and hd are multiples of 8) */
    if (hd % 8 == 0 && half % 8 == 0 && aligned16(q_out) && aligned16(qkv) && aligned16(k_cache) &&
        aligned16(v_cache)) {
        size_t n = heads * (size_t)(half / 8 + (hd - 2 * half) / 8);
        cu_launch(cu_of(b), k_qkv_rope_write<8>, grid_for(n), DENSE_THREADS, 0, (bf16 *)q_out, (const bf16 *)qkv, pos,
                  inv_freq, (bf16 *)k_cache, (bf16 *)v_cache, slot_mapping, T, Hq, Hkv, hd, half);
    } else {
        size_t n = heads * (size_t)(half + (hd - 2 * half));
        k_qkv_rope_write<1><<<grid_for(n), DENSE_THREADS, 0, s>>>((bf16 *)q_out, (const bf16 *)qkv, pos, inv_freq,
                                                                   (bf16 *)k_cache, (bf16 *)v_cache, slot_mapping, T,
                                                                   Hq, Hkv, hd, half);
    }
    CUDA_CHECK_LAUNCH();
}

/* ---------------- gated rmsnorm ----------------
 * g = y * silu(z); out = g / rms(g over its group) * w. One block per (row, group). y and out
 * rows are contiguous (stride D); z rows have stride z_ld (z may be a column block of the
 * fused in_proj output). The vector kernel keeps each thread's 8-element chunks of g in
 * registers between the reduction and the write (one pass over y and z); the scalar one reads
 * them twice. */
__global__ void k_gated_rmsnorm(bf16 *out, const bf16 *y, const bf16 *z, const bf16 *w, int D, int z_ld, int gs,
                                float eps) {
    int64_t row = blockIdx.x;
    int64_t grp = blockIdx.y;
    int64_t base = row * D + grp * gs;
    int64_t zbase = row * z_ld + grp * gs;
    float ss = 0.f;
    for (int i = threadIdx.x; i < gs; i += blockDim.x) {
        float g = __bfloat162float(y[base + i]) * silu(__bfloat162float(z[zbase + i]));
        ss += g * g;
    }
    float r = rsqrtf(block_sum(ss) / (float)gs + eps);
    const bf16 *wg = w + grp * gs;
    for (int i = threadIdx.x; i < gs; i += blockDim.x) {
        float g = __bfloat162float(y[base + i]) * silu(__bfloat162float(z[zbase + i]));
        out[base + i] = __float2bfloat16(g * r * __bfloat162float(wg[i]));
    }
}
__global__ void __launch_bounds__(RMS_VEC_THREADS)
    k_gated_rmsnorm_vec(bf16 *out, const bf16 *y, const bf16 *z, const bf16 *w, int D, int z_ld, int gs, float eps) {
    cu_pdl_wait();
    cu_pdl_trigger();
    int64_t row = blockIdx.x;
    int64_t grp = blockIdx.y;
    const int gs8 = gs / 8;
    const uint4 *yr = (const uint4 *)(y + row * D + grp * gs), *zr = (const uint4 *)(z + row * z_ld + grp * gs);
    const uint4 *wr = (const uint4 *)(w + grp * gs);
    float g[RMS_VEC_MAX][8];
    uint4 wq[RMS_VEC_MAX];
    float ss = 0.f;
#pragma unroll
    for (int j = 0; j < RMS_VEC_MAX; j++) {
        int i = threadIdx.x + j * blockDim.x;
        if (i < gs8) {
            float zv[8];
            wq[j] = wr[i];
            unpack8(yr[i], g[j]);
            unpack8(zr[i], zv);
#pragma unroll
            for (int e = 0; e < 8; e++) {
                g[j][e] *= silu(zv[e]);
                ss += g[j][e] * g[j][e];
            }
        }
    }
    float r = rsqrtf(block_sum(ss) / (float)gs + eps);
    norm_store_rows(g, wq, r, (uint4 *)(out + row * D + grp * gs), gs8);
}
void cu_gated_rmsnorm(op_backend *b, void *out, const void *y, const void *z, int z_ld, const void *w, int T, int D,
                      int group_size, float eps) {
    CHECK(T >= 0 && D > 0 && group_size > 0 && D % group_size == 0, "gated_rmsnorm: T=%d D=%d group_size=%d", T,
          D, group_size);
    CHECK(z_ld >= D, "gated_rmsnorm: z row stride %d < D %d", z_ld, D);
    if (T == 0) return;
    CHECK(D / group_size <= 65535, "gated_rmsnorm: %d groups", D / group_size);
    dim3 grid(T, D / group_size);
    int vec = group_size % 8 == 0 && z_ld % 8 == 0 && aligned16(out) && aligned16(y) && aligned16(z) && aligned16(w);
    int vthreads = vec ? vec_row_threads(group_size / 8) : 0;
    if (vthreads > 0) {
        cu_launch(cu_of(b), k_gated_rmsnorm_vec, grid, vthreads, 0, (bf16 *)out, (const bf16 *)y, (const bf16 *)z,
                  (const bf16 *)w, D, z_ld, group_size, eps);
        CUDA_CHECK_LAUNCH();
        return;
    }
    int threads = group_size >= 1024 ? 256 : 128;
    k_gated_rmsnorm<<<grid, threads, 0, cu_of(b)->stream>>>((bf16 *)out, (const bf16 *)y, (const bf16 *)z,
                                                            (const bf16 *)w, D, z_ld, group_size, eps);
    CUDA_CHECK_LAUNCH();
}

/* ---------------- conversions and random fills ---------------- */
__global__ void k_f32_to_bf16(bf16 *dst, const float *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(src[i]);
}
__global__ void k_f16_to_bf16(bf16 *dst, const __half *src, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(__half2float(src[i]));
}
void cu_convert_to_bf16(cudaStream_t s, bf16 *dst, const void *src, op_dtype src_dtype, size_t n) {
    if (n == 0) return;
    if (src_dtype == OP_F32)
        k_f32_to_bf16<<<grid_for(n), DENSE_THREADS, 0, s>>>(dst, (const float *)src, n);
    else if (src_dtype == OP_F16)
        k_f16_to_bf16<<<grid_for(n), DENSE_THREADS, 0, s>>>(dst, (const __half *)src, n);
    else
        CUDA_CHECK(cudaMemcpyAsync(dst, src, n * 2, cudaMemcpyDeviceToDevice, s));
    CUDA_CHECK_LAUNCH();
}

/* splitmix64 of (seed, index): independent uniform draws without state. */
static __device__ __forceinline__ float hash_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}
__global__ void k_fill_bf16(bf16 *dst, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(lo + (hi - lo) * hash_uniform(seed, i));
}
__global__ void k_fill_f32(float *dst, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = lo + (hi - lo) * hash_uniform(seed, i);
}
void cu_fill_random_bf16(cudaStream_t s, bf16 *dst, size_t n, uint64_t seed, float lo, float hi) {
    if (n == 0) return;
    k_fill_bf16<<<grid_for(n), DENSE_THREADS, 0, s>>>(dst, n, seed, lo, hi);
    CUDA_CHECK_LAUNCH();
}
void cu_fill_random_f32(cudaStream_t s, float *dst, size_t n, uint64_t seed, float lo, float hi) {
    if (n == 0) return;
    k_fill_f32<<<grid_for(n), DENSE_THREADS, 0, s>>>(dst, n, seed, lo, hi);
    CUDA_CHECK_LAUNCH();
}
