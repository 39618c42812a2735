/* workers/model/engine_graph.c — padded, bucketed decode steps with CUDA graphs and GPU sampling
 * (see engine_graph.h).
 */
#include "workers/model/engine_graph.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "common/util.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

typedef struct eg_bucket {
    int rows;
    int state;              /* 0 never run, 1 run eagerly (capture next), 2 captured, 3 eager only */
#ifdef THINKFAST_CUDA
    op_cuda_graph *graph;
#endif
} eg_bucket;

struct eng_graph {
    model *m;
    op_backend *be;
    kv_cache *kv;
    model_step *step;
    const model_step_io *io;
    int max_seqs, max_pages, page_size, V;
    int has_attn, has_mamba;
    int cuda;               /* device sampling (op_cuda_sample_async) */
    int use_graphs;
    kv_seq pad;             /* the padding rows' page and slot */
    int32_t pad_slotmap, pad_slot, pad_page;
    eg_bucket *buckets;
    int n_buckets;
    /* host staging, [max_seqs] (block table [max_seqs, max_pages]) */
    int32_t *h_tokens, *h_pos, *h_slotmap, *h_slots, *h_bt;
    op_sample_params *h_params;
    /* device sampling buffers (cuda) */
    op_sample_params *d_params;
    int32_t *d_ids;
    eng_graph_stats st;
};

/* 1, 2, 4, 8, 16, then steps of ~12.5% rounded up to a multiple of 8, and max_seqs itself:
 * padding wastes at most ~1/8 of a step while the number of graphs stays logarithmic. */
static int make_buckets(int max_seqs, eg_bucket **out) {
    int cap = 64, n = 0;
    eg_bucket *b = xcalloc(cap, sizeof *b);
    int r = 1;
    while (r < max_seqs) {
        if (n + 1 >= cap) { cap *= 2; b = xrealloc(b, sizeof *b * cap); }
        b[n++].rows = r;
        int next = r < 16 ? 2 * r : ((r + r / 8) + 7) / 8 * 8;
        if (next <= r) next = r + 8;
        r = next;
    }
    if (n + 1 >= cap) { cap *= 2; b = xrealloc(b, sizeof *b * cap); }
    memset(&b[n], 0, sizeof b[n]);
    b[n++].rows = max_seqs;
    *out = b;
    return n;
}

int eng_graph_new(model *m, kv_cache *kv, int max_seqs, int max_pages, int use_graphs, eng_graph **out, char *err,
                  size_t errlen) {
    *out = NULL;
    const model_config *c = model_cfg(m);
    if (max_seqs < 1 || max_pages < 1)
        return util_err(err, errlen, "engine graph: max_seqs %d and max_pages %d must be positive", max_seqs, max_pages);
    eng_graph *g = xcalloc(1, sizeof *g);
    g->m = m;
    g->be = model_backend(m);
    g->kv = kv;
    g->max_seqs = max_seqs;
    g->max_pages = max_pages;
    g->page_size = kv_page_size(kv);
    g->V = c->vocab_size;
    g->has_attn = c->n_attn_layers > 0;
    g->has_mamba = c->n_layers > c->n_attn_layers;
#ifdef THINKFAST_CUDA
    g->cuda = strncmp(g->be->name, "cuda", 4) == 0;
#endif
    g->use_graphs = use_graphs && g->cuda;
    memset(&g->pad, 0, sizeof g->pad);
    g->pad.slot = -1;
    /* the padding rows' own slot and page */
    if (kv_seq_init(kv, &g->pad) != 0) {
        free(g);
        return util_err(err, errlen, "engine graph: no free state slot for the padding rows");
    }
    g->pad_slot = g->pad.slot >= 0 ? g->pad.slot : 0;
    if (g->has_attn) {
        kv_batch tmp;
        kv_batch_init(&tmp);
        int32_t zero = 0;
        int bad = kv_seq_reserve(kv, &g->pad, 1) != 0 || kv_batch_add(kv, &tmp, &g->pad, &zero, 1) != 0;
        kv_batch_free(&tmp);
        if (bad) {
            kv_seq_release(kv, &g->pad);
            free(g);
            return util_err(err, errlen, "engine graph: no free KV page for the padding rows");
        }
        g->pad_page = g->pad.pages[0];
        g->pad_slotmap = g->pad_page * g->page_size;
    }
    if (model_step_new(m, max_seqs, max_pages, &g->step, err, errlen) != 0) {
        kv_seq_release(kv, &g->pad);
        free(g);
        return -1;
    }
    g->io = model_step_io_of(g->step);
    g->n_buckets = make_buckets(max_seqs, &g->buckets);
    size_t n = (size_t)max_seqs;
    g->h_tokens = xcalloc(n, sizeof(int32_t));
    g->h_pos = xcalloc(n, sizeof(int32_t));
    g->h_slotmap = xcalloc(n, sizeof(int32_t));
    g->h_slots = xcalloc(n, sizeof(int32_t));
    g->h_bt = xcalloc(n * max_pages, sizeof(int32_t));
    g->h_params = xcalloc(n, sizeof(op_sample_params));
    /* cu_seqlens of a decode step is 0, 1, ..., n whatever n: uploaded once */
    int32_t *cu = xmalloc(sizeof(int32_t) * (n + 1));
    for (size_t i = 0; i <= n; i++) cu[i] = (int32_t)i;
    g->be->upload(g->be, g->io->cu_seqlens, cu, sizeof(int32_t) * (n + 1));
    free(cu);
    if (g->cuda) {
        g->d_params = g->be->alloc(g->be, sizeof(op_sample_params) * n);
        g->d_ids = g->be->alloc(g->be, sizeof(int32_t) * n);
        if (!g->d_params || !g->d_ids) {
            eng_graph_destroy(&g);
            return util_err(err, errlen, "engine graph: out of %s memory for the sampling buffers", model_backend(m)->name);
        }
    }
    g->be->sync(g->be);
    *out = g;
    return 0;
}

void eng_graph_destroy(eng_graph **pg) {
    if (!pg || !*pg) return;
    eng_graph *g = *pg;
#ifdef THINKFAST_CUDA
    for (int i = 0; i < g->n_buckets; i++) op_cuda_graph_destroy(&g->buckets[i].graph);
#endif
    free(g->buckets);
    model_step_destroy(&g->step);
    if (g->d_params) g->be->free(g->be, g->d_params);
    if (g->d_ids) g->be->free(g->be, g->d_ids);
    kv_seq_release(g->kv, &g->pad);
    free(g->h_tokens); free(g->h_pos); free(g->h_slotmap); free(g->h_slots); free(g->h_bt); free(g->h_params);
    free(g);
    *pg = NULL;
}

static int bucket_index(const eng_graph *g, int n) {
    int lo = 0, hi = g->n_buckets - 1; /* first bucket with rows >= n */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g->buckets[mid].rows >= n) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int eng_graph_bucket(const eng_graph *g, int n) {
    if (n < 1 || n > g->max_seqs) return -1;
    return g->buckets[bucket_index(g, n)].rows;
}

void eng_graph_get_stats(const eng_graph *g, eng_graph_stats *out) { *out = g->st; }

/* The ops of one step of k rows: forward, then sampling into d_ids on the device (cuda). */
static void run_ops(eng_graph *g, int k) {
    const float *lg = model_step_forward(g->m, g->kv, g->step, k);
#ifdef THINKFAST_CUDA
    if (g->cuda) op_cuda_sample_async(g->be, g->d_ids, lg, k, g->V, g->d_params);
#else
    (void)lg;
#endif
}

int eng_graph_step(eng_graph *g, const kv_batch *b, const op_sample_params *params, int32_t *ids_host, char *err,
                   size_t errlen) {
    int n = b->n_seq;
    if (n < 1 || n > g->max_seqs || b->T != n)
        return util_err(err, errlen, "engine graph: a step of %d tokens over %d sequences does not fit (%d sequences of one "
                        "token at most)", b->T, n, g->max_seqs);
    if (g->has_attn && b->max_pages > g->max_pages)
        return util_err(err, errlen, "engine graph: a sequence holds %d KV pages, the step was sized for %d",
                        b->max_pages, g->max_pages);
    int bi = bucket_index(g, n);
    eg_bucket *bk = &g->buckets[bi];
    int k = bk->rows, mp = g->max_pages;
    op_backend *be = g->be;
    const model_step_io *io = g->io;
    memcpy(g->h_tokens, b->tokens, sizeof(int32_t) * n);
    memcpy(g->h_pos, b->pos, sizeof(int32_t) * n);
    memcpy(g->h_slotmap, b->slot_mapping, sizeof(int32_t) * n);
    memcpy(g->h_slots, b->slots, sizeof(int32_t) * n);
    memcpy(g->h_params, params, sizeof(op_sample_params) * n);
    for (int i = n; i < k; i++) {
        g->h_tokens[i] = 0;
        g->h_pos[i] = 0;
        g->h_slotmap[i] = g->pad_slotmap;
        g->h_slots[i] = g->pad_slot;
        memset(&g->h_params[i], 0, sizeof g->h_params[i]); /* greedy */
        g->h_params[i].top_p = 1.0f;
    }
    be->upload(be, io->tokens, g->h_tokens, sizeof(int32_t) * k);
    be->upload(be, io->pos, g->h_pos, sizeof(int32_t) * k);
    if (g->has_mamba) be->upload(be, io->slots, g->h_slots, sizeof(int32_t) * k);
    if (g->has_attn) {
        for (int i = 0; i < n; i++) {
            int32_t *row = g->h_bt + (size_t)i * mp;
            memcpy(row, b->block_table + (size_t)i * b->max_pages, sizeof(int32_t) * b->max_pages);
            memset(row + b->max_pages, 0, sizeof(int32_t) * (mp - b->max_pages));
        }
        for (int i = n; i < k; i++) {
            int32_t *row = g->h_bt + (size_t)i * mp;
            memset(row, 0, sizeof(int32_t) * mp);
            row[0] = g->pad_page;
        }
        be->upload(be, io->slot_mapping, g->h_slotmap, sizeof(int32_t) * k);
        be->upload(be, io->block_table, g->h_bt, sizeof(int32_t) * k * mp);
    }
    if (g->cuda) be->upload(be, g->d_params, g->h_params, sizeof(op_sample_params) * k);
    g->st.rows += n;
    g->st.padded_rows += k - n;
#ifdef THINKFAST_CUDA
    if (bk->state == 2) {
        op_cuda_graph_launch(be, bk->graph);
        be->download(be, ids_host, g->d_ids, sizeof(int32_t) * n);
        g->st.replays++;
        return 0;
    }
#endif
    run_ops(g, k);
    g->st.eager_steps++;
    if (g->cuda) be->download(be, ids_host, g->d_ids, sizeof(int32_t) * n);
    else be->sample(be, ids_host, io->logits, n, g->V, params);
#ifdef THINKFAST_CUDA
    if (g->use_graphs && bk->state == 0) {
        /* the eager run above sized every plan and scratch buffer for k rows: capture now */
        char cerr[256];
        bk->state = 3;
        if (op_cuda_graph_begin(be, cerr, sizeof cerr) == 0) {
            run_ops(g, k);
            bk->graph = op_cuda_graph_end(be, cerr, sizeof cerr);
            if (bk->graph) bk->state = 2;
        }
        if (bk->state == 2) g->st.buckets_captured++;
        else {
            g->st.capture_failures++;
            LOG_WARN("engine graph: bucket of %d rows runs eagerly: %s", k, cerr);
        }
    }
#endif
    return 0;
}
