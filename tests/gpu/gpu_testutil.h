/* tests/gpu/gpu_testutil.h — what the GPU tests share (include once per test file, after
 * defining GPU_TEST_SEED): the device backend G and the CPU reference C, tracked allocations
 * freed by release_all(), a seeded splitmix64 generator, bf16 rounding, random bf16-exact
 * non-zero host vectors, uploads, NaN-poisoned outputs and read-backs, NEED_GPU() (skips a
 * test visibly without a device), gpu_test_setup(), count_out_of_tol() (tolerance check with
 * the first mismatches printed) and kv_fixture/kv_layout() (a shuffled paged KV layout).
 * Header-only: every function is static inline.
 */
#ifndef THINKFAST_GPU_TESTUTIL_H
#define THINKFAST_GPU_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/ops.h"
#include "tests/unit/unit.h"

#ifndef GPU_TEST_SEED
#error "define GPU_TEST_SEED before including tests/gpu/gpu_testutil.h"
#endif

static op_backend *G, *C; /* device backend, CPU reference */
static uint64_t rng_state = GPU_TEST_SEED;

#define MAX_TRACK 2048
static void *g_track[MAX_TRACK], *c_track[MAX_TRACK], *h_track[MAX_TRACK];
static int n_g, n_c, n_h;

static inline void release_all(void) {
    for (int i = 0; i < n_g; i++) G->free(G, g_track[i]);
    for (int i = 0; i < n_c; i++) C->free(C, c_track[i]);
    for (int i = 0; i < n_h; i++) free(h_track[i]);
    n_g = n_c = n_h = 0;
}
static inline void *h_alloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p || n_h >= MAX_TRACK) abort();
    h_track[n_h++] = p;
    return p;
}
static inline void *g_alloc(size_t bytes) {
    void *d = G->alloc(G, bytes);
    if (!d || n_g >= MAX_TRACK) abort();
    g_track[n_g++] = d;
    return d;
}
static inline void *c_alloc(size_t bytes) {
    void *d = C->alloc(C, bytes);
    if (!d || n_c >= MAX_TRACK) abort();
    c_track[n_c++] = d;
    return d;
}

static inline uint64_t rnd64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline float urand(float lo, float hi) { return lo + (hi - lo) * (float)((rnd64() >> 40) * (1.0 / 16777216.0)); }
static inline int irand(int n) { return (int)(rnd64() % (uint64_t)n); }

static inline float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float bf16_to_f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Random host vector in [lo, hi), every value representable in bf16 and non-zero. */
static inline float *rvec(size_t n, float lo, float hi) {
    float *v = h_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float f = bf16_round(urand(lo, hi));
        v[i] = f != 0.f ? f : hi * 0.5f;
    }
    return v;
}
/* Device copies (16 bytes of slack past the end): bf16 from fp32 host values, raw bytes. */
static inline void *g_bf16(const float *h, size_t n) {
    void *d = g_alloc(n * 2 + 16);
    G->load_weight(G, d, h, OP_F32, n);
    return d;
}
static inline void *g_raw(const void *h, size_t bytes) {
    void *d = g_alloc(bytes + 16);
    G->upload(G, d, h, bytes);
    return d;
}
static inline void *c_raw(const void *h, size_t bytes) {
    void *d = c_alloc(bytes + 16);
    C->upload(C, d, h, bytes);
    return d;
}
/* Buffers filled with 0xff bytes: 0xffff bf16 and 0xffffffff fp32 are NaN, so an element a
 * kernel does not write fails the comparison. */
static inline void *g_poison(size_t bytes) {
    unsigned char *h = h_alloc(bytes);
    memset(h, 0xff, bytes);
    return g_raw(h, bytes);
}
static inline void *c_poison(size_t bytes) {
    unsigned char *h = h_alloc(bytes);
    memset(h, 0xff, bytes);
    return c_raw(h, bytes);
}
static inline float *g_read_bf16(const void *d, size_t n) {
    uint16_t *t = h_alloc(n * 2);
    G->download(G, t, d, n * 2);
    float *f = h_alloc(n * 4);
    for (size_t i = 0; i < n; i++) f[i] = bf16_to_f(t[i]);
    return f;
}
static inline float *g_read_f32(const void *d, size_t n) {
    float *f = h_alloc(n * 4);
    G->download(G, f, d, n * 4);
    return f;
}
static inline float *c_read(const void *d, size_t n) {
    float *f = h_alloc(n * 4);
    C->download(C, f, d, n * 4);
    return f;
}

/* Creates G on device 0 (left NULL, with a message, when there is no usable device: the device
 * tests then skip visibly) and the CPU reference C; prints which device runs. Returns 0, or -1
 * when the CPU backend cannot be created (the test cannot run at all). */
static inline int gpu_test_setup(void) {
    char err[256];
    if (op_cuda_device_count() > 0) {
        G = op_cuda_new(0, err, sizeof err);
        if (!G) printf("cuda backend unavailable: %s\n", err);
    } else {
        printf("no CUDA device: the device tests are skipped\n");
    }
    C = op_backend_new("cpu", err, sizeof err);
    if (!C) { printf("cpu backend: %s\n", err); return -1; }
    if (G) {
        char desc[256];
        op_cuda_describe(G, desc, sizeof desc);
        printf("device: %s\n", desc);
    }
    return 0;
}

/* Counts elements of got outside atol + rtol * |ref| (NaN counts as outside); prints the first
 * five with their index, and a summary line (max |diff|, count) when any is outside or when
 * always_summary is set. */
static inline size_t count_out_of_tol(const char *what, const float *got, const float *ref, size_t n, double atol,
                                      double rtol, int always_summary) {
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        double tol = atol + rtol * fabs((double)ref[i]);
        if (!(d <= tol)) {
            if (bad < 5) printf("  %s: [%zu] got %.6g want %.6g (|diff| %.3g > tol %.3g)\n", what, i, got[i], ref[i], d, tol);
            bad++;
        }
        if (d > worst && d == d) worst = d;
    }
    if (bad || always_summary) printf("  %s: max |diff| %.3g, %zu of %zu out of tolerance\n", what, worst, bad, n);
    return bad;
}

/* A paged KV layout for n_seq sequences of ctx[s] tokens: each gets max_pages pages (one spare),
 * drawn from a shuffled pool with three spare pages, so pages are neither contiguous nor in
 * order. Fill n_seq, page_size, Hkv, hd; kv_layout sets the rest (bt [n_seq, max_pages]). */
typedef struct kv_fixture {
    int n_seq, page_size, max_pages, n_pages, Hkv, hd;
    int32_t *bt;
    size_t cache_elems;
} kv_fixture;
static inline void kv_layout(kv_fixture *f, const int *ctx) {
    f->max_pages = 0;
    for (int s = 0; s < f->n_seq; s++) {
        int np = (ctx[s] + f->page_size - 1) / f->page_size;
        if (np > f->max_pages) f->max_pages = np;
    }
    f->max_pages += 1;
    f->n_pages = f->n_seq * f->max_pages + 3;
    int *perm = h_alloc((size_t)f->n_pages * 4);
    for (int i = 0; i < f->n_pages; i++) perm[i] = i;
    for (int i = f->n_pages - 1; i > 0; i--) {
        int j = irand(i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    f->bt = h_alloc((size_t)f->n_seq * f->max_pages * 4);
    int next = 0;
    for (int s = 0; s < f->n_seq; s++)
        for (int p = 0; p < f->max_pages; p++) f->bt[s * f->max_pages + p] = perm[next++];
    f->cache_elems = (size_t)f->n_pages * f->page_size * f->Hkv * f->hd;
}

#define NEED_GPU()                                       \
    do {                                                 \
        if (!G) { unit_skip("no CUDA device"); return; } \
    } while (0)

#endif
