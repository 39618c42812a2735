/* kernels/cuda/cuda_sample.cu — token sampling on the GPU, one block per row of logits, with the
 * exact semantics of the CPU reference (kernels/cpu/cpu_sample.c): greedy when temperature <= 0
 * or top_k == 1 (lowest id on ties); otherwise e_i = exp((l_i - max) / T), then top-k (ties to
 * lower ids), then top-p (the shortest most-probable prefix reaching top_p of the mass, crossing
 * token included, ties to lower ids), then min-p (e_i >= min_p, e_max = 1: transformers' order),
 * and one Philox uniform (kernels/philox.h, keyed by seed/problem/sample/step) drawn over the
 * kept tokens walked in ascending id order.
 *
 * Nothing is sorted: the k-th largest probability and the top-p crossing probability are found
 * by radix selection over the float bit patterns (3 digit passes, histograms of counts or of
 * mass in shared memory, warp-aggregated atomics), and the tokens tied at the cut are resolved
 * by id with a block scan. Every pass recomputes e_i from the logits (no [B, V] scratch).
 * Sums are fp64 like the reference; only the order of additions differs (~1e-16 relative).
 */
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <math.h>

#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/philox.h"

#define SMP_NT 1024
#define SMP_BINS 4096

typedef struct smp_row {
    const float *l;
    int V;
    float mx, inv_t, minp;
    int use_k, use_p;
    unsigned k_bits, p_bits;
    int k_tie_max, p_tie_max;
} smp_row;

struct smp_imax {
    __device__ __forceinline__ int operator()(int a, int b) const { return a > b ? a : b; }
};
typedef cub::BlockScan<double, SMP_NT> ScanD;
typedef cub::BlockScan<int, SMP_NT> ScanI;
typedef cub::BlockReduce<double, SMP_NT> RedD;
typedef cub::BlockReduce<int, SMP_NT> RedI;

struct smp_shared {
    union {
        typename ScanD::TempStorage scand;
        typename ScanI::TempStorage scani;
        typename RedD::TempStorage redd;
        typename RedI::TempStorage redi;
    } cub;
    double hist[SMP_BINS];
    double wv[SMP_NT]; /* per-lane values for warp aggregation */
    float fmax[32];
    int imax[32];
    int sel_bin, found;
    double sel_above;
    int result;
    double total;
};

static __device__ __forceinline__ float smp_e(const smp_row &c, int i) { return expf((c.l[i] - c.mx) * c.inv_t); }

static __device__ __forceinline__ bool smp_member(const smp_row &c, int i, float e) {
    if (!(e > 0.f && e >= c.minp)) return false;
    unsigned b = __float_as_uint(e);
    if (c.use_k && !(b > c.k_bits || (b == c.k_bits && i <= c.k_tie_max))) return false;
    if (c.use_p && !(b > c.p_bits || (b == c.p_bits && i <= c.p_tie_max))) return false;
    return true;
}

/* Count and fp64 mass of the current members (block-wide; every thread gets them). */
static __device__ void smp_count_mass(const smp_row &c, smp_shared &sh, int *n_out, double *mass_out) {
    double m = 0.0;
    int n = 0;
    for (int i = threadIdx.x; i < c.V; i += SMP_NT) {
        float e = smp_e(c, i);
        if (smp_member(c, i, e)) { m += (double)e; n++; }
    }
    double tm = RedD(sh.cub.redd).Sum(m);
    __syncthreads();
    int tn = RedI(sh.cub.redi).Sum(n);
    if (threadIdx.x == 0) { sh.total = tm; sh.result = tn; }
    __syncthreads();
    *mass_out = sh.total;
    *n_out = sh.result;
    __syncthreads();
}

/* Radix selection from the top: the largest bit pattern tau such that the weight (count, or
 * mass when MASS) of members strictly above tau is < W and of members >= tau is >= W.
 * *above gets the weight strictly above tau. */
template <bool MASS>
static __device__ void smp_select(const smp_row &c, smp_shared &sh, double W, unsigned *tau, double *above_out) {
    const int shifts[3] = {20, 8, 0}, widths[3] = {12, 12, 8};
    unsigned prefix = 0, pmask = 0;
    double above = 0.0;
    const int lane = threadIdx.x & 31;
    for (int pass = 0; pass < 3; pass++) {
        const int nb = 1 << widths[pass], sh_ = shifts[pass];
        for (int i = threadIdx.x; i < nb; i += SMP_NT) sh.hist[i] = 0.0;
        __syncthreads();
        for (int base = 0; base < c.V; base += SMP_NT) {
            int i = base + threadIdx.x;
            unsigned key = 0xffffffffu;
            double w = 0.0;
            if (i < c.V) {
                float e = smp_e(c, i);
                unsigned b = __float_as_uint(e);
                if (smp_member(c, i, e) && (b & pmask) == prefix) {
                    key = (b >> sh_) & (unsigned)(nb - 1);
                    w = MASS ? (double)e : 1.0;
                }
            }
            unsigned peers = __match_any_sync(0xffffffffu, key);
            sh.wv[threadIdx.x] = w;
            __syncwarp();
            if (key != 0xffffffffu && lane == __ffs(peers) - 1) {
                double s = 0.0;
                unsigned pm = peers;
                while (pm) {
                    int j = __ffs(pm) - 1;
                    pm &= pm - 1;
                    s += sh.wv[(threadIdx.x & ~31) + j];
                }
                atomicAdd(&sh.hist[key], s);
            }
            __syncwarp();
        }
        __syncthreads();
        /* Thread t owns bins nb-1-t*per ... (highest first); exclusive scan over threads. */
        const int per = (nb + SMP_NT - 1) / SMP_NT;
        double mine = 0.0;
        for (int j = 0; j < per; j++) {
            int bin = nb - 1 - (threadIdx.x * per + j);
            if (bin >= 0) mine += sh.hist[bin];
        }
        if (threadIdx.x == 0) sh.found = 0;
        double before;
        ScanD(sh.cub.scand).ExclusiveSum(mine, before);
        __syncthreads();
        double acc = above + before;
        for (int j = 0; j < per; j++) {
            int bin = nb - 1 - (threadIdx.x * per + j);
            if (bin < 0) break;
            double h = sh.hist[bin];
            if (h > 0.0 && acc < W && acc + h >= W) { /* the first crossing only */
                sh.sel_bin = bin;
                sh.sel_above = acc;
                sh.found = 1;
                break;
            }
            acc += h;
        }
        __syncthreads();
        if (!sh.found) { /* W above the total (rounding): take the lowest non-empty bin */
            if (threadIdx.x == 0) {
                double a = above;
                int last = 0;
                double last_above = above;
                for (int bin = nb - 1; bin >= 0; bin--)
                    if (sh.hist[bin] > 0.0) { last = bin; last_above = a; a += sh.hist[bin]; }
                sh.sel_bin = last;
                sh.sel_above = last_above;
            }
            __syncthreads();
        }
        prefix |= (unsigned)sh.sel_bin << sh_;
        pmask |= (unsigned)(nb - 1) << sh_;
        above = sh.sel_above;
        __syncthreads();
    }
    *tau = prefix;
    *above_out = above;
}

/* Id of the nth (1-based) member whose e has bit pattern `bits`, in ascending id order
 * (or the last such member when there are fewer). Thread t scans a contiguous id range. */
static __device__ int smp_nth_tie(const smp_row &c, smp_shared &sh, unsigned bits, int nth) {
    const int chunk = (c.V + SMP_NT - 1) / SMP_NT;
    const int lo = threadIdx.x * chunk, hi = min(c.V, lo + chunk);
    int cnt = 0;
    for (int i = lo; i < hi; i++) {
        float e = smp_e(c, i);
        if (smp_member(c, i, e) && __float_as_uint(e) == bits) cnt++;
    }
    if (threadIdx.x == 0) sh.result = -1;
    int before, total;
    ScanI(sh.cub.scani).ExclusiveSum(cnt, before, total);
    __syncthreads();
    if (nth > total) nth = total;
    if (cnt > 0 && before < nth && before + cnt >= nth) {
        int k = before;
        for (int i = lo; i < hi; i++) {
            float e = smp_e(c, i);
            if (smp_member(c, i, e) && __float_as_uint(e) == bits && ++k == nth) { sh.result = i; break; }
        }
    }
    __syncthreads();
    int r = sh.result;
    __syncthreads();
    return r;
}

__global__ void __launch_bounds__(SMP_NT) k_sample(const float *logits, int V, const op_sample_params *params,
                                                   int32_t *ids) {
    cu_pdl_wait();
    cu_pdl_trigger();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    smp_shared &sh = *(smp_shared *)smem_raw;
    const int row = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const op_sample_params p = params[row];
    smp_row c;
    c.l = logits + (size_t)row * V;
    c.V = V;
    c.use_k = c.use_p = 0;
    c.k_bits = c.p_bits = 0;
    c.k_tie_max = c.p_tie_max = -1;

    /* Max and argmax (lowest id on ties; NaN never wins). */
    float bv = -INFINITY;
    int bi = V;
    for (int i = tid; i < V; i += SMP_NT) {
        float x = c.l[i];
        if (!isnan(x) && (bi == V || x > bv)) { bv = x; bi = i; }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) { sh.fmax[warp] = bv; sh.imax[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        bv = sh.fmax[lane];
        bi = sh.imax[lane];
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        if (lane == 0) { sh.fmax[0] = bv; sh.imax[0] = bi == V ? 0 : bi; }
    }
    __syncthreads();
    c.mx = sh.fmax[0];
    const int amax = sh.imax[0];
    __syncthreads();
    if (!(p.temperature > 0.f) || p.top_k == 1 || !isfinite(c.mx)) {
        if (tid == 0) ids[row] = amax;
        return;
    }
    c.inv_t = 1.0f / p.temperature;
    c.minp = 0.f; /* min-p applies last (transformers' order, as the reference): not to top-k/top-p */

    int n;
    double mass;
    smp_count_mass(c, sh, &n, &mass);
    if (p.top_k > 0 && p.top_k < n) {
        unsigned tau;
        double above;
        smp_select<false>(c, sh, (double)p.top_k, &tau, &above);
        int ties_left = p.top_k - (int)above;
        c.k_bits = tau;
        c.k_tie_max = smp_nth_tie(c, sh, tau, ties_left);
        c.use_k = 1;
        n = p.top_k;
    }
    if (p.top_p > 0.f && p.top_p < 1.f && n > 1) {
        smp_count_mass(c, sh, &n, &mass);
        double need = (double)p.top_p * mass;
        unsigned tau;
        double above;
        smp_select<true>(c, sh, need, &tau, &above);
        double tv = (double)__uint_as_float(tau), cum = above;
        int j = 0;
        while (j == 0 || cum < need) { cum += tv; j++; if (j > V) break; }
        c.p_bits = tau;
        c.p_tie_max = smp_nth_tie(c, sh, tau, j);
        c.use_p = 1;
    }

    /* min-p last: a ratio to the most probable token (e = 1), which top-k and top-p keep. */
    c.minp = p.min_p > 0.f ? p.min_p : 0.f;

    /* Draw: walk the kept tokens in id order; thread t owns a contiguous id range. */
    const float u = philox_uniform(p.seed, p.problem, p.sample, p.step);
    const int chunk = (V + SMP_NT - 1) / SMP_NT;
    const int lo = tid * chunk, hi = min(V, lo + chunk);
    double m = 0.0;
    int last = -1;
    for (int i = lo; i < hi; i++) {
        float e = smp_e(c, i);
        if (smp_member(c, i, e)) { m += (double)e; last = i; }
    }
    double before, total;
    ScanD(sh.cub.scand).ExclusiveSum(m, before, total);
    if (tid == 0) sh.result = -1;
    __syncthreads();
    const double target = (double)u * total;
    if (m > 0.0 && before <= target && target < before + m) {
        double acc = before;
        int r = last;
        for (int i = lo; i < hi; i++) {
            float e = smp_e(c, i);
            if (smp_member(c, i, e)) {
                acc += (double)e;
                if (acc > target) { r = i; break; }
            }
        }
        sh.result = r; /* the ranges are disjoint: exactly one thread gets here */
    }
    __syncthreads();
    if (sh.result < 0) { /* rounding put the target past the end: the last kept token */
        int lm = RedI(sh.cub.redi).Reduce(last, smp_imax());
        if (tid == 0) ids[row] = lm >= 0 ? lm : amax;
        return;
    }
    if (tid == 0) ids[row] = sh.result;
}

void cu_sample_async(op_backend *b, int32_t *ids_dev, const float *logits, int B, int V,
                     const op_sample_params *params_dev) {
    CHECK(B >= 0 && V > 0, "sample: B=%d V=%d", B, V);
    if (B == 0) return;
    size_t smem = sizeof(smp_shared);
    CUDA_CHECK(cudaFuncSetAttribute(k_sample, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    cu_launch(cu_of(b), k_sample, B, SMP_NT, smem, logits, V, params_dev, ids_dev);
    CUDA_CHECK_LAUNCH();
}
