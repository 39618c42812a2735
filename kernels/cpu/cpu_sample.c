/* kernels/cpu/cpu_sample.c — CPU token sampling: greedy (argmax, lowest id on ties) or
 * temperature sampling restricted by top-k, top-p (nucleus) and min-p, drawing one Philox
 * uniform keyed by (seed, problem, sample, step) per row.
 *
 * Filter semantics follow transformers' logits warpers applied in the order temperature,
 * top-k, top-p, min-p: top-k keeps the k most probable (ties: lower id first); top-p keeps
 * the shortest most-probable prefix whose mass reaches top_p (the crossing token included)
 * of the top-k-renormalised distribution; min-p keeps p >= min_p * p_max. The draw walks the
 * kept tokens in ascending id order: u * (kept mass) picks the first token whose running mass
 * exceeds it. Nothing is sorted unless top-k or top-p needs it, and then only the tokens that
 * can matter (candidates above a probability threshold).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/philox.h"

size_t cpu_sample_work_bytes(int V) { return (size_t)V * (2 * sizeof(float) + sizeof(int32_t) + sizeof(float) + sizeof(int32_t)) + 64; }

static int32_t argmax(const float *x, int V) {
    int32_t best = 0;
    float bv = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > bv || (isnan(bv) && !isnan(x[i]))) { bv = x[i]; best = i; }
    return best;
}

/* (prob, id) pairs sorted by prob desc, id asc. */
typedef struct pid { float p; int32_t id; } pid;
static int cmp_pid(const void *a, const void *b) {
    const pid *x = a, *y = b;
    if (x->p > y->p) return -1;
    if (x->p < y->p) return 1;
    return (x->id > y->id) - (x->id < y->id);
}
static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* k-th largest (1-based) of v[0..n) by quickselect; scrambles v. */
static float kth_largest(float *v, int n, int k) {
    int lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float piv = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] > piv) i++;
            while (v[j] < piv) j--;
            if (i <= j) { float t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return v[want];
    }
    return v[want];
}

int32_t cpu_sample_row(const float *logits, int V, const op_sample_params *p, void *work) {
    if (!(p->temperature > 0.0f) || p->top_k == 1) return argmax(logits, V);
    float *e = work;                          /* unnormalised probs, max = 1 */
    float *tmp = e + V;
    int32_t *cand = (int32_t *)(tmp + V);     /* candidate ids */
    pid *pairs = (pid *)(void *)(cand + V);   /* top-p sort space: V (prob, id) pairs */
    float inv_t = 1.0f / p->temperature, mx = -INFINITY;
    for (int i = 0; i < V; i++) if (logits[i] > mx) mx = logits[i];
    if (!isfinite(mx)) return argmax(logits, V);
    for (int i = 0; i < V; i++) e[i] = expf((logits[i] - mx) * inv_t);
    int n = 0;
    for (int i = 0; i < V; i++) if (e[i] > 0.0f) cand[n++] = i;
    int sorted_by_prob = 0;
    if (p->top_k > 0 && p->top_k < n) {
        int k = p->top_k;
        for (int i = 0; i < n; i++) tmp[i] = e[cand[i]];
        float vk = kth_largest(tmp, n, k);
        int m = 0, above = 0;
        for (int i = 0; i < n; i++) if (e[cand[i]] > vk) above++;
        int ties_left = k - above;
        for (int i = 0; i < n; i++) { /* cand is in id order: ties go to lower ids */
            float v = e[cand[i]];
            if (v > vk) cand[m++] = cand[i];
            else if (v == vk && ties_left > 0) { cand[m++] = cand[i]; ties_left--; }
        }
        n = m;
    }
    if (p->top_p > 0.0f && p->top_p < 1.0f && n > 1) {
        double total = 0.0;
        for (int i = 0; i < n; i++) total += e[cand[i]];
        double need = (double)p->top_p * total;
        /* only tokens above a threshold can be in the nucleus if their mass already reaches it */
        float thr = 1e-3f;
        int m;
        for (;;) {
            double mass = 0.0;
            m = 0;
            for (int i = 0; i < n; i++) if (e[cand[i]] >= thr) { mass += e[cand[i]]; m++; }
            if (mass >= need || thr == 0.0f) break;
            thr = thr > 1e-30f ? thr * 1e-3f : 0.0f;
        }
        pid *pr = pairs;
        int q = 0;
        for (int i = 0; i < n; i++) if (e[cand[i]] >= thr) { pr[q].p = e[cand[i]]; pr[q].id = cand[i]; q++; }
        qsort(pr, (size_t)m, sizeof(pid), cmp_pid);
        double cum = 0.0;
        int keep = 0;
        while (keep < m && (keep == 0 || cum < need)) { cum += pr[keep].p; keep++; }
        for (int i = 0; i < keep; i++) cand[i] = pr[i].id;
        n = keep;
        sorted_by_prob = 1;
    }
    /* min-p last (transformers' order): a ratio to the most probable token (e = 1), which
     * top-k and top-p always keep */
    if (p->min_p > 0.0f) {
        int m = 0;
        for (int i = 0; i < n; i++) if (e[cand[i]] >= p->min_p) cand[m++] = cand[i];
        n = m;
    }
    if (sorted_by_prob) qsort(cand, (size_t)n, sizeof(int32_t), cmp_i32);
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += e[cand[i]];
    float u = philox_uniform(p->seed, p->problem, p->sample, p->step);
    double target = (double)u * mass, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += e[cand[i]];
        if (acc > target) return cand[i];
    }
    return cand[n - 1];
}

typedef struct sample_job { int32_t *ids; const float *logits; int V; const op_sample_params *p; char *work; size_t wb; } sample_job;
static void sample_task(void *arg, int r, int tid) {
    sample_job *j = arg;
    j->ids[r] = cpu_sample_row(j->logits + (size_t)r * j->V, j->V, &j->p[r], j->work + (size_t)tid * j->wb);
}

void cpu_sample(op_backend *b, int32_t *ids_host, const float *logits, int B, int V,
                const op_sample_params *params) {
    size_t wb = (cpu_sample_work_bytes(V) + 63) & ~(size_t)63;
    int nt = B > 1 && (double)B * V >= 65536.0 ? cpu_threads(b) : 1;
    sample_job j = {ids_host, logits, V, params, cpu_scratch(b, wb * nt), wb};
    if (nt > 1) cpu_parallel_for(b, B, sample_task, &j);
    else for (int r = 0; r < B; r++) sample_task(&j, r, 0);
}
