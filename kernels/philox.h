/* kernels/philox.h — Philox4x32-10 counter-based random numbers (Salmon et al., "Parallel
 * random numbers: as easy as 1, 2, 3", SC'11; the Random123 reference), header-only so the
 * same code runs on the host (C11) and in CUDA kernels.
 *
 * Why counter-based: the random number a sampled token uses is a pure function of
 * (seed, problem, sample, step). There is no generator state to carry, so a sample's tokens do
 * not depend on batch composition, on which slot it ran in, on chunking or on restarts.
 *
 * Keying: key = (lo32(seed), hi32(seed)); counter = (problem, sample, step, stream). stream is 0
 * for the token draw; other values are free for other uses (e.g. a second draw per step).
 * philox_uniform() maps the first output word to a float in [0, 1) with 24 random bits, so
 * the result is exactly representable and never 1.0.
 */
#ifndef THINKFAST_PHILOX_H
#define THINKFAST_PHILOX_H

#include <stdint.h>

#if defined(__CUDACC__)
#define PHILOX_HD __host__ __device__
#else
#define PHILOX_HD
#endif

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

typedef struct philox4x32 { uint32_t v[4]; } philox4x32;

static inline PHILOX_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

/* The raw block function: 10 rounds of Philox4x32 on counter c with key (k0, k1). */
static inline PHILOX_HD philox4x32 philox4x32_10(philox4x32 c, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
        uint32_t hi0, lo0, hi1, lo1;
        philox_mulhilo(PHILOX_M0, c.v[0], &hi0, &lo0);
        philox_mulhilo(PHILOX_M1, c.v[2], &hi1, &lo1);
        philox4x32 n;
        n.v[0] = hi1 ^ c.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ c.v[3] ^ k1;
        n.v[3] = lo0;
        c = n;
    }
    return c;
}

/* Four random words for (seed, problem, sample, step, stream). */
static inline PHILOX_HD philox4x32 philox_draw(uint64_t seed, uint32_t problem, uint32_t sample,
                                              uint32_t step, uint32_t stream) {
    philox4x32 c;
    c.v[0] = problem;
    c.v[1] = sample;
    c.v[2] = step;
    c.v[3] = stream;
    return philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* Uniform float in [0, 1): the top 24 bits of the first word times 2^-24. */
static inline PHILOX_HD float philox_uniform(uint64_t seed, uint32_t problem, uint32_t sample,
                                            uint32_t step) {
    philox4x32 r = philox_draw(seed, problem, sample, step, 0);
    return (float)(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

#endif
