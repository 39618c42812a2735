/* kernels/cuda/cuda_mma.cuh — the warp-level tensor-core and async-copy primitives the attention
 * kernels share (cuda_attention.cu, cuda_attn_prefill_mma.cu): mma.sync m16n8k16 bf16 with fp32
 * accumulation, ldmatrix (plain and transposed), bf16 packing and 16-byte cp.async with zero fill.
 * Fragment layouts (PTX ISA, "mma.m16n8k16", g = lane / 4, q = lane % 4):
 *   A 16x16 row-major: a[0] = A[g][2q..2q+1], a[1] = A[g+8][2q..], a[2] = A[g][2q+8..], a[3] = A[g+8][2q+8..]
 *   B 16x8 ("col"):    b0 = B[2q..2q+1][g], b1 = B[2q+8..2q+9][g]
 *   C 16x8:            c[0..1] = C[g][2q..2q+1], c[2..3] = C[g+8][2q..2q+1]
 * ldmatrix m8n8: lanes 8i..8i+7 give the row addresses of matrix i; a lane receives row g,
 * columns 2q..2q+1 of each matrix (.trans: rows 2q..2q+1 of column g).
 * sm_80 or newer. CUDA/C++ only; every function is static inline (no globals in a header).
 */
#ifndef THINKFAST_CUDA_MMA_CUH
#define THINKFAST_CUDA_MMA_CUH

#include <cuda_bf16.h>
#include <stdint.h>

/* 16-byte global -> shared copy; src_bytes 0 writes 16 zero bytes (gsrc must still be a valid
 * global address). */
static __device__ __forceinline__ void cp_async16(void *smem_dst, const void *gsrc, int src_bytes) {
    unsigned d = (unsigned)__cvta_generic_to_shared(smem_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(gsrc), "r"(src_bytes));
}
static __device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
static __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

/* c (16x8 fp32) += a (16x16 bf16) * b (16x8 bf16). */
static __device__ __forceinline__ void mma_bf16(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ void ldsm_x2(uint32_t &r0, uint32_t &r1, const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(s));
}
static __device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(s));
}
static __device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, const void *p) {
    unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(s));
}
/* Two floats -> one register of two bf16 (lo in the low half: the lower column index). */
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&h;
}

#endif
