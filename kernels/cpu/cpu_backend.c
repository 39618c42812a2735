/* kernels/cpu/cpu_backend.c — the CPU op table: host memory management, weight conversion to
 * fp32, the scratch buffer and the worker thread pool (THINKFAST_CPU_THREADS; default the online
 * CPUs, at most 8). The ops themselves live in the other cpu_*.c files. Creating a CPU backend
 * sets OpenBLAS to one thread for the process: large matmuls are split over our own pool.
 */
#include "kernels/cpu/cpu_ops.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "common/util.h"
#include "kernels/cpu/cpu_internal.h"

/* Weak: builds that link a plain cblas_sgemm instead of OpenBLAS (tools/bench/gpu-build.sh)
 * have no thread control, and need none. */
#pragma weak openblas_set_num_threads

static void *cpu_alloc(op_backend *b, size_t bytes) {
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}
static void cpu_free(op_backend *b, void *p) { free(p); }
static void cpu_upload(op_backend *b, void *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n);
}
static void cpu_download(op_backend *b, void *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n);
}
static void cpu_copy(op_backend *b, void *dst, const void *src, size_t n) {
    if (n && dst != src) memmove(dst, src, n);
}
static void cpu_memset0(op_backend *b, void *dst, size_t n) {
    if (n) memset(dst, 0, n);
}
static void cpu_sync(op_backend *b) {}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: renormalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void cpu_load_weight(op_backend *b, void *dst, const void *src, op_dtype t, size_t n) {
    float *d = dst;
    const unsigned char *s = src;
    switch (t) {
    case OP_F32: memcpy(d, s, n * 4); break;
    case OP_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); d[i] = bf16_to_f32(h); }
        break;
    case OP_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); d[i] = f16_to_f32(h); }
        break;
    }
}

static size_t cpu_mem_free(op_backend *b) {
    long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return 0;
    return (size_t)pages * (size_t)psz;
}

void *cpu_scratch(op_backend *b, size_t bytes) {
    cpu_impl *im = b->impl;
    if (bytes > im->scratch_bytes) {
        free(im->scratch);
        size_t n = bytes + bytes / 4 + 4096;
        im->scratch = NULL;
        CHECK(posix_memalign(&im->scratch, 64, n) == 0, "cpu scratch: out of memory (%zu bytes)", n);
        im->scratch_bytes = n;
    }
    return im->scratch;
}

/* ---- thread pool: workers sleep on a condition variable between jobs; a job is a task count
 * and a shared atomic index, so the split of work never depends on timing for correctness. */
struct cpu_pool {
    pthread_mutex_t mu;
    pthread_cond_t start, done;
    pthread_t *th;
    int n_workers;
    uint64_t gen;          /* job generation */
    int stop;
    cpu_task_fn fn;
    void *arg;
    int n_tasks;
    atomic_int next;
    int active;            /* workers still in the current job */
};

typedef struct worker_arg { cpu_pool *p; int tid; } worker_arg;

static void run_tasks(cpu_pool *p, int tid) {
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_tasks) break;
        p->fn(p->arg, i, tid);
    }
}

static void *worker_main(void *va) {
    worker_arg *wa = va;
    cpu_pool *p = wa->p;
    int tid = wa->tid;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->start, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static cpu_pool *pool_new(int n_workers) {
    cpu_pool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = xcalloc(n_workers, sizeof(pthread_t));
    for (int i = 0; i < n_workers; i++) {
        worker_arg *wa = xmalloc(sizeof *wa);
        wa->p = p;
        wa->tid = i + 1;
        if (pthread_create(&p->th[i], NULL, worker_main, wa) != 0) { free(wa); break; }
        p->n_workers++;
    }
    return p;
}

static void pool_destroy(cpu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++) pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int cpu_threads(const op_backend *b) { return ((const cpu_impl *)b->impl)->n_threads; }

void cpu_parallel_for(op_backend *b, int n, cpu_task_fn fn, void *arg) {
    cpu_impl *im = b->impl;
    cpu_pool *p = im->pool;
    if (n <= 0) return;
    if (n == 1 || !p || p->n_workers == 0) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n;
    atomic_store(&p->next, 0);
    p->active = p->n_workers;
    p->gen++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void cpu_destroy(op_backend **pb) {
    if (!pb || !*pb) return;
    cpu_impl *im = (*pb)->impl;
    if (im) { pool_destroy(im->pool); free(im->scratch); }
    free(im);
    free(*pb);
    *pb = NULL;
}

op_backend *op_cpu_new(char *err, size_t errlen) {
    op_backend *b = xcalloc(1, sizeof *b);
    b->name = "cpu";
    b->act_dtype = OP_F32;
    b->act_bytes = 4;
    cpu_impl *im = xcalloc(1, sizeof(cpu_impl));
    b->impl = im;
    /* threads: THINKFAST_CPU_THREADS (at most 32), else the online CPUs up to 8 (more threads
     * did not help the small models measured, see bench/results/engine_cpu.json) */
    long nt = sysconf(_SC_NPROCESSORS_ONLN);
    if (nt > 8) nt = 8;
    const char *env = getenv("THINKFAST_CPU_THREADS");
    if (env && atoi(env) > 0) nt = atoi(env);
    if (nt < 1) nt = 1;
    if (nt > 32) nt = 32;
    im->pool = nt > 1 ? pool_new((int)nt - 1) : NULL;
    /* One pool for everything: OpenBLAS runs single-threaded inside our tasks (two pools of
     * spinning threads on the same cores slow each other down badly). Process-wide setting. */
    if (openblas_set_num_threads) openblas_set_num_threads(1);
    im->n_threads = im->pool ? im->pool->n_workers + 1 : 1;
    b->alloc = cpu_alloc;
    b->free = cpu_free;
    b->upload = cpu_upload;
    b->download = cpu_download;
    b->copy = cpu_copy;
    b->memset0 = cpu_memset0;
    b->sync = cpu_sync;
    b->load_weight = cpu_load_weight;
    b->mem_free = cpu_mem_free;
    b->embed = cpu_embed;
    b->rmsnorm = cpu_rmsnorm;
    b->add_rmsnorm = cpu_add_rmsnorm;
    b->matmul = cpu_matmul;
    b->matmul_f32out = cpu_matmul_f32out;
    b->swiglu = cpu_swiglu;
    b->add = cpu_add;
    b->qkv_rope_write = cpu_qkv_rope_write;
    b->attention = cpu_attention;
    b->conv1d = cpu_conv1d;
    b->ssd_scan = cpu_ssd_scan;
    b->gated_rmsnorm = cpu_gated_rmsnorm;
    b->sample = cpu_sample;
    b->destroy = cpu_destroy;
    return b;
}
