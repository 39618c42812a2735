/* kernels/cpu/cpu_attention.c — CPU attention ops: the fused q|k|v step (rotary embedding, HF rotate_half with
 * partial rotary, and the writes into the paged KV cache), and causal GQA attention reading K/V through each
 * sequence's block table. Softmax is max-subtracted, accumulated in double.
 */
#include <math.h>
#include <string.h>

#include "common/check.h"
#include "kernels/cpu/cpu_internal.h"

static void rope_heads(float *x, int H, int hd, int half, const float *cs, const float *sn) {
    for (int h = 0; h < H; h++) {
        float *v = x + (size_t)h * hd;
        for (int i = 0; i < half; i++) {
            float a = v[i], c = v[i + half];
            v[i] = a * cs[i] - c * sn[i];
            v[i + half] = c * cs[i] + a * sn[i];
        }
    }
}

void cpu_qkv_rope_write(op_backend *b, void *q_out, const void *qkv, const int32_t *pos,
                       const float *inv_freq, void *k_cache, void *v_cache,
                       const int32_t *slot_mapping, int T, int Hq, int Hkv, int hd, int rot_dim) {
    CHECK(rot_dim >= 0 && rot_dim % 2 == 0 && rot_dim <= hd, "qkv_rope_write: rot_dim %d, head_dim %d", rot_dim, hd);
    int half = rot_dim / 2;
    size_t qd = (size_t)Hq * hd, kd = (size_t)Hkv * hd, row = qd + 2 * kd;
    float *cs = cpu_scratch(b, sizeof(float) * 2 * (size_t)(half + 1)), *sn = cs + half;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < half; i++) {
            float ang = (float)pos[t] * inv_freq[i]; /* fp32 product, as transformers does */
            cs[i] = (float)cos((double)ang);
            sn[i] = (float)sin((double)ang);
        }
        const float *src = (const float *)qkv + (size_t)t * row;
        float *q = (float *)q_out + (size_t)t * qd;
        memcpy(q, src, sizeof(float) * qd);
        rope_heads(q, Hq, hd, half, cs, sn);
        if (slot_mapping[t] < 0) continue; /* padding token: nothing to store */
        size_t s = (size_t)slot_mapping[t];
        float *k = (float *)k_cache + s * kd;
        memcpy(k, src + qd, sizeof(float) * kd);
        rope_heads(k, Hkv, hd, half, cs, sn);
        memcpy((float *)v_cache + s * kd, src + qd + kd, sizeof(float) * kd);
    }
}

typedef struct att_job {
    float *out;
    const float *q, *K, *V;
    const int32_t *bt, *cu, *pos;
    int max_pages, n_seq, T, Hq, Hkv, hd, ps;
    float scale;
    char *scratch;
    size_t per_thread;
    int32_t *seq_of;   /* [T] sequence of each token */
} att_job;

/* one (token, query head): scores over positions 0..pos[t], softmax, weighted sum of V */
static void att_task(void *arg, int i, int tid) {
    att_job *j = arg;
    int t = i / j->Hq, h = i % j->Hq, s = j->seq_of[t], hd = j->hd, ps = j->ps;
    float *sc = (float *)(void *)(j->scratch + (size_t)tid * j->per_thread);
    int n = j->pos[t] + 1;
    double *acc = (double *)(void *)(sc + (((size_t)n + 7) & ~(size_t)7));
    const int32_t *bt = j->bt + (size_t)s * j->max_pages;
    int kh = h / (j->Hq / j->Hkv);
    size_t kvrow = (size_t)j->Hkv * hd;
    const float *qv = j->q + ((size_t)t * j->Hq + h) * hd;
    float mx = -INFINITY;
    for (int p = 0; p < n; p++) {
        size_t slot = (size_t)bt[p / ps] * ps + (size_t)(p % ps);
        const float *kv = j->K + slot * kvrow + (size_t)kh * hd;
        float d = 0.0f;
        for (int k = 0; k < hd; k++) d += qv[k] * kv[k];
        d *= j->scale;
        sc[p] = d;
        if (d > mx) mx = d;
    }
    double sum = 0.0;
    for (int p = 0; p < n; p++) { float e = expf(sc[p] - mx); sc[p] = e; sum += e; }
    for (int k = 0; k < hd; k++) acc[k] = 0.0;
    for (int p = 0; p < n; p++) {
        size_t slot = (size_t)bt[p / ps] * ps + (size_t)(p % ps);
        const float *vv = j->V + slot * kvrow + (size_t)kh * hd;
        double w = sc[p];
        for (int k = 0; k < hd; k++) acc[k] += w * vv[k];
    }
    float *o = j->out + ((size_t)t * j->Hq + h) * hd;
    for (int k = 0; k < hd; k++) o[k] = (float)(acc[k] / sum);
}

void cpu_attention(op_backend *b, void *out, const void *q, const void *k_cache,
                   const void *v_cache, const int32_t *block_table, int max_pages,
                   const int32_t *cu_seqlens, const int32_t *pos, int n_seq, int T, int Hq,
                   int Hkv, int hd, int page_size, float scale) {
    CHECK(Hq % Hkv == 0, "Hq %d not a multiple of Hkv %d", Hq, Hkv);
    CHECK(cu_seqlens[n_seq] == T, "cu_seqlens[%d] = %d != T %d", n_seq, cu_seqlens[n_seq], T);
    int maxpos = 0;
    double work = 0;
    for (int t = 0; t < T; t++) { if (pos[t] > maxpos) maxpos = pos[t]; work += pos[t] + 1; }
    work *= (double)Hq * hd * 2;
    CHECK((maxpos + page_size) / page_size <= max_pages, "position %d beyond %d pages", maxpos, max_pages);
    int nt = work >= 131072.0 ? cpu_threads(b) : 1;
    size_t per = ((((size_t)maxpos + 8) & ~(size_t)7) * sizeof(float) + sizeof(double) * (size_t)hd + 63) & ~(size_t)63;
    char *scr = cpu_scratch(b, per * nt + sizeof(int32_t) * (size_t)T + 64);
    int32_t *seq_of = (int32_t *)(void *)(scr + per * nt);
    for (int s = 0; s < n_seq; s++)
        for (int t = cu_seqlens[s]; t < cu_seqlens[s + 1]; t++) seq_of[t] = s;
    att_job j = {out, q, k_cache, v_cache, block_table, cu_seqlens, pos, max_pages, n_seq, T, Hq, Hkv, hd,
                 page_size, scale, scr, per, seq_of};
    if (nt > 1) cpu_parallel_for(b, T * Hq, att_task, &j);
    else for (int i = 0; i < T * Hq; i++) att_task(&j, i, 0);
}
