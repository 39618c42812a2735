/* workers/model/engine.c — continuous-batching generation (see engine.h). */
#include "workers/model/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/log.h"
#include "common/util.h"
#include "workers/model/engine_graph.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

#define ENG_MAX_EOS 16

typedef struct held_prompt {
    int req;
    kv_seq seq;
    float *logits;      /* backend memory [V] */
    int next_sample;
    double prefill_share_s;
    int32_t last_tok;
} held_prompt;

typedef struct run_seq {
    int active;
    int req;
    uint32_t sample;
    kv_seq seq;
    int32_t *ids;       /* [cap_ids], allocated once per run */
    int n_ids, tokens;
    int32_t last;       /* the token to feed next */
    int32_t prev;       /* previous token, for detokenisation */
    util_buf text;
    double time_s;
    const char *finish;
} run_seq;

struct engine {
    model *m;
    op_backend *be;
    const tok *tk;
    eng_config cfg;
    int32_t eos[ENG_MAX_EOS];
    int n_eos;
    kv_cache *kv;
    int kv_pages, kv_max_len;
    kv_batch batch;
    held_prompt *held;    /* [max_prompts] */
    int n_held;
    run_seq *seqs;        /* [max_seqs] */
    op_sample_params *params;
    run_seq **order;      /* [max_seqs] sequences of the current step */
    int32_t *ids_host;
    int cap_ids;
    eng_stats st;
    int prefill_pack;
    eng_token_fn on_token;
    void *on_token_ud;
    int token_abort;
    int seqs_alloc;       /* entries of seqs/params/ids_host/order allocated */
    int auto_seqs;        /* cfg.max_seqs was ENG_SEQS_AUTO: cfg.max_seqs is the planned count */
    int plan_mem_max;     /* auto: sequences the last plan found room for */
    int graphs;           /* -1: default (on for cuda), 0/1: eng_set_graphs */
    eng_graph *gx;        /* the bucketed decode step (graphs on), made for kv */
    int kv_pad;           /* kv has the padding rows' extra page and slot */
    int seqs_cap;         /* ENG_SEQS_AUTO: at most this many slots */
    int ignore_eos;       /* benchmarks: EOS ids are ordinary tokens */
};

void eng_set_token_callback(engine *e, eng_token_fn fn, void *ud) { e->on_token = fn; e->on_token_ud = ud; }

void eng_set_prefill_pack(engine *e, int on) { e->prefill_pack = on ? 1 : 0; }

void eng_get_stats(const engine *e, eng_stats *out) { *out = e->st; }

void eng_set_graphs(engine *e, int mode) {
    int m = mode == ENG_DECODE_BUCKETED ? 2 : mode ? 1 : 0;
    if (m != e->graphs && e->gx) eng_graph_destroy(&e->gx);
    e->graphs = m;
}

void eng_set_seqs_cap(engine *e, int cap) { e->seqs_cap = cap > 0 ? cap : 8192; }

void eng_set_ignore_eos(engine *e, int on) { e->ignore_eos = on ? 1 : 0; }

/* 0 plain eager step, 1 bucketed + graphs, 2 bucketed without capture */
static int graphs_wanted(const engine *e) {
    if (e->graphs >= 0) return e->graphs;
    return strncmp(e->be->name, "cuda", 4) == 0;
}

/* Grows the per-slot arrays to n entries. */
static void seqs_resize(engine *e, int n) {
    if (n <= e->seqs_alloc) return;
    e->seqs = xrealloc(e->seqs, sizeof(run_seq) * n);
    memset(e->seqs + e->seqs_alloc, 0, sizeof(run_seq) * (n - e->seqs_alloc));
    for (int i = e->seqs_alloc; i < n; i++) util_buf_init(&e->seqs[i].text);
    e->params = xrealloc(e->params, sizeof(op_sample_params) * n);
    e->ids_host = xrealloc(e->ids_host, sizeof(int32_t) * n);
    e->order = xrealloc(e->order, sizeof(run_seq *) * n);
    e->seqs_alloc = n;
    e->cap_ids = 0; /* new slots have no id buffer yet: eng_run reallocates them all */
}

int eng_new(model *m, const tok *tk, const eng_config *cfg, engine **out, char *err, size_t errlen) {
    *out = NULL;
    engine *e = xcalloc(1, sizeof *e);
    e->m = m;
    e->be = model_backend(m);
    e->tk = tk;
    eng_config d = {8, 256, 16, 2, 0};
    e->seqs_cap = 8192;
    e->graphs = -1;
    if (cfg) {
        if (cfg->max_seqs > 0) d.max_seqs = cfg->max_seqs;
        if (cfg->max_seqs == ENG_SEQS_AUTO) { e->auto_seqs = 1; d.max_seqs = 0; }
        if (cfg->max_step_tokens > 0) d.max_step_tokens = cfg->max_step_tokens;
        if (cfg->page_size > 0) d.page_size = cfg->page_size;
        if (cfg->max_prompts > 0) d.max_prompts = cfg->max_prompts;
        d.kv_bytes = cfg->kv_bytes;
    }
    e->cfg = d;
    const model_config *c = model_cfg(m);
    for (int i = 0; i < c->n_eos && e->n_eos < ENG_MAX_EOS; i++) e->eos[e->n_eos++] = c->eos_ids[i];
    if (tk) {
        int32_t te[8];
        int n = tok_eos_ids(tk, te, 8);
        for (int i = 0; i < n && i < 8; i++) {
            int dup = 0;
            for (int j = 0; j < e->n_eos; j++) dup |= e->eos[j] == te[i];
            if (!dup && e->n_eos < ENG_MAX_EOS && te[i] >= 0 && te[i] < c->vocab_size) e->eos[e->n_eos++] = te[i];
        }
    }
    e->held = xcalloc(d.max_prompts, sizeof(held_prompt));
    for (int i = 0; i < d.max_prompts; i++) {
        e->held[i].logits = e->be->alloc(e->be, sizeof(float) * c->vocab_size);
        if (!e->held[i].logits) { eng_destroy(&e); return util_err(err, errlen, "engine: out of %s memory", model_backend(m)->name); }
    }
    seqs_resize(e, d.max_seqs > 0 ? d.max_seqs : 1);
    kv_batch_init(&e->batch);
    *out = e;
    return 0;
}

void eng_destroy(engine **pe) {
    if (!pe || !*pe) return;
    engine *e = *pe;
    if (e->held) {
        for (int i = 0; i < e->cfg.max_prompts; i++) if (e->held[i].logits) e->be->free(e->be, e->held[i].logits);
        free(e->held);
    }
    eng_graph_destroy(&e->gx);
    if (e->seqs) {
        for (int i = 0; i < e->seqs_alloc; i++) { free(e->seqs[i].ids); util_buf_free(&e->seqs[i].text); }
        free(e->seqs);
    }
    free(e->params);
    free(e->ids_host);
    free(e->order);
    kv_batch_free(&e->batch);
    kv_cache_destroy(&e->kv);
    free(e);
    *pe = NULL;
}

static int is_eos(const engine *e, int32_t t) {
    if (e->ignore_eos) return 0;
    for (int i = 0; i < e->n_eos; i++) if (e->eos[i] == t) return 1;
    return 0;
}

static void drop_cache(engine *e) {
    eng_graph_destroy(&e->gx); /* its graphs point into the cache */
    kv_cache_destroy(&e->kv);
    e->kv_pages = 0;
    e->kv_max_len = 0;
    e->kv_pad = 0;
}

typedef struct seq_plan {
    int max_batch;   /* sequences that fit (capped) */
    int n_pages;     /* KV pages for them (prompt pages shared by a problem's samples) */
    size_t per_seq_bytes, free_bytes, reserve_bytes;
} seq_plan;

/* Sequences of max_len tokens that fit in the backend's free memory (see eng_plan). */
static int plan_seqs(engine *e, int max_len, int prompt_len, int spp, int cap, seq_plan *out, char *err, size_t errlen) {
    const model_config *c = model_cfg(e->m);
    int ps = e->cfg.page_size, max_pages = (max_len + ps - 1) / ps;
    size_t pb = c->n_attn_layers ? kv_page_bytes(e->be, c, ps) : 0, sb = kv_slot_bytes(c);
    size_t fr = e->be->mem_free(e->be);
    size_t reserve = fr / 8 < ((size_t)2 << 30) ? fr / 8 : ((size_t)2 << 30);
    /* held prompts and the padding rows: a full sequence's pages and a slot each */
    size_t held = (size_t)(e->cfg.max_prompts + 1) * ((size_t)max_pages * pb + sb);
    size_t avail = fr > held ? fr - held : 0;
    size_t act = model_step_row_bytes(e->m, max_pages) + sizeof(op_sample_params) + 2 * sizeof(int32_t);
    memset(out, 0, sizeof *out);
    out->free_bytes = fr;
    out->reserve_bytes = reserve;
#ifdef THINKFAST_CUDA
    op_cuda_plan_req req = {.free_bytes = avail, .reserve_bytes = reserve, .page_bytes = pb, .page_size = ps,
                            .state_bytes = sb, .act_bytes = act, .max_len = max_len, .prompt_len = prompt_len,
                            .samples_per_prompt = spp, .batch_cap = cap};
    op_cuda_plan p;
    if (op_cuda_plan_memory(&req, &p, err, errlen) != 0) return -1;
    out->max_batch = p.max_batch;
    out->n_pages = p.n_pages;
    out->per_seq_bytes = p.per_seq_bytes;
#else
    /* the same arithmetic without prompt sharing (kernels/cuda/cuda_plan.c is a GPU-build file) */
    (void)prompt_len; (void)spp;
    size_t per = (size_t)max_pages * pb + sb + act;
    size_t room = avail > reserve ? avail - reserve : 0;
    size_t n = per ? room / per : 0;
    if (cap > 0 && n > (size_t)cap) n = (size_t)cap;
    if (n < 1)
        return util_err(err, errlen, "out of %s memory: one sequence of %d tokens needs %zu bytes, %zu free after a %zu-byte "
                        "reserve", e->be->name, max_len, per, room, reserve);
    out->max_batch = (int)n;
    out->n_pages = pb ? (int)n * max_pages : 0;
    out->per_seq_bytes = per;
#endif
    return 0;
}

int eng_plan(engine *e, int max_len, int prompt_len, int samples_per_prompt, char *err, size_t errlen) {
    if (max_len < 1 || prompt_len < 1 || prompt_len > max_len || samples_per_prompt < 1)
        return util_err(err, errlen, "eng_plan: inconsistent request (max_len %d, prompt_len %d, samples_per_prompt %d)",
                        max_len, prompt_len, samples_per_prompt);
    drop_cache(e);
    seq_plan p;
    if (plan_seqs(e, max_len, prompt_len, samples_per_prompt, e->seqs_cap, &p, err, errlen)) return -1;
    return p.max_batch;
}

/* (Re)creates the cache so that a sequence of max_len tokens fits, with pages for every slot
 * when memory allows; under ENG_SEQS_AUTO the slot count is planned from free memory (capped at
 * the run's total samples). With graphs on, one more page and slot serve the padding rows. */
static int ensure_cache(engine *e, int max_len, int prompt_len, int spp, int total_samples, char *err, size_t errlen) {
    const model_config *c = model_cfg(e->m);
    int ps = e->cfg.page_size, per_seq = (max_len + ps - 1) / ps + 1;
    int gr = graphs_wanted(e) ? 1 : 0;
    if (e->auto_seqs) {
        int want_seqs = total_samples < e->seqs_cap ? total_samples : e->seqs_cap;
        if (e->kv && e->kv_max_len >= max_len && e->cfg.max_seqs >= (want_seqs < e->plan_mem_max ? want_seqs : e->plan_mem_max) &&
            e->kv_pad)
            return 0;
        drop_cache(e);
        seq_plan mem, p;
        if (plan_seqs(e, max_len, prompt_len, spp, e->seqs_cap, &mem, err, errlen)) return -1;
        if (plan_seqs(e, max_len, prompt_len, spp, want_seqs, &p, err, errlen)) return -1;
        e->plan_mem_max = mem.max_batch;
        int n = p.max_batch;
        int pages = c->n_attn_layers ? p.n_pages + e->cfg.max_prompts * (per_seq - 1) + 1 : 0;
        if (kv_cache_new(e->be, c, ps, pages, n + e->cfg.max_prompts + 1, &e->kv, err, errlen)) return -1;
        seqs_resize(e, n);
        e->cfg.max_seqs = n;
        e->kv_pages = pages;
        e->kv_max_len = max_len;
        e->kv_pad = 1;
        LOG_INFO("engine: memory plan on %s: room for %d sequences of up to %d tokens (planning cap %d; %.1f MiB each; %.2f "
                 "GiB free, %.2f GiB kept in reserve); using %d slots, %d KV pages of %d tokens",
                 e->be->name, mem.max_batch, max_len, e->seqs_cap, mem.per_seq_bytes / 1048576.0, mem.free_bytes / 1073741824.0,
                 mem.reserve_bytes / 1073741824.0, n, pages, ps);
        return 0;
    }
    int want = (e->cfg.max_seqs + e->cfg.max_prompts) * per_seq + (gr ? 1 : 0);
    if (e->kv && e->kv_max_len >= max_len && (e->kv_pages >= want || c->n_attn_layers == 0) && e->kv_pad >= gr) return 0;
    drop_cache(e);
    int pages = 0;
    if (c->n_attn_layers > 0) {
        size_t pb = kv_page_bytes(e->be, c, ps);
        size_t cap = e->cfg.kv_bytes ? e->cfg.kv_bytes : e->be->mem_free(e->be) / 2;
        size_t fit = pb ? cap / pb : (size_t)want;
        pages = (size_t)want < fit ? want : (int)fit;
        if (pages < per_seq * 2 + (gr ? 1 : 0))
            return util_err(err, errlen, "engine: KV cache of %zu bytes cannot hold a prompt and a sample of %d tokens "
                            "(%d pages of %zu bytes needed)", cap, max_len, per_seq * 2 + (gr ? 1 : 0), pb);
        if (pages < want)
            LOG_INFO("engine: KV cache limited to %d of %d pages (%zu bytes each); admission will wait for pages",
                     pages, want, pb);
    }
    if (kv_cache_new(e->be, c, ps, pages, e->cfg.max_seqs + e->cfg.max_prompts + (gr ? 1 : 0), &e->kv, err, errlen))
        return -1;
    e->kv_pages = pages;
    e->kv_max_len = max_len;
    e->kv_pad = gr;
    return 0;
}

static op_sample_params req_params(const eng_request *r, uint32_t sample, uint32_t step) {
    op_sample_params p;
    p.temperature = r->temperature;
    p.top_p = r->top_p > 0 && r->top_p < 1 ? r->top_p : 1.0f;
    p.top_k = r->top_k > 0 ? r->top_k : 0;
    p.min_p = r->min_p > 0 ? r->min_p : 0.0f;
    p.seed = r->seed;
    p.problem = r->problem;
    p.sample = sample;
    p.step = step;
    return p;
}

/* Appends token t to s; sets s->finish when the sample is done. */
static void seq_push(engine *e, run_seq *s, const eng_request *r, int max_tokens, int32_t t) {
    s->tokens++;
    if (is_eos(e, t)) { s->finish = "stop"; return; }
    s->ids[s->n_ids++] = t;
    size_t n = 0;
    const char *piece = e->tk ? tok_piece_after(e->tk, s->prev, t, &n) : NULL;
    if (e->on_token && e->on_token(e->on_token_ud, s->req, s->sample, t, piece ? piece : "", piece ? n : 0))
        e->token_abort = 1;
    if (e->tk) {
        size_t old = s->text.len;
        if (piece && n) util_buf_append(&s->text, piece, n);
        for (int i = 0; i < r->n_stop && !s->finish; i++) {
            size_t sl = strlen(r->stop[i]);
            if (!sl || s->text.len < sl) continue;
            size_t from = old >= sl - 1 ? old - (sl - 1) : 0;
            const char *hit = memmem(s->text.data + from, s->text.len - from, r->stop[i], sl);
            if (hit) {
                s->text.len = (size_t)(hit - s->text.data);
                s->text.data[s->text.len] = 0;
                s->finish = "stop";
            }
        }
    }
    s->prev = t;
    s->last = t;
    if (!s->finish && s->tokens >= max_tokens) s->finish = "length";
}

static int emit_seq(engine *e, run_seq *s, const eng_request *reqs, eng_emit_fn emit, void *ud) {
    const eng_request *r = &reqs[s->req];
    eng_result res;
    res.request = s->req;
    res.problem = r->problem;
    res.sample = s->sample;
    res.ids = s->ids;
    res.n_ids = s->n_ids;
    res.tokens = s->tokens;
    res.text = s->text.data ? s->text.data : "";
    res.text_len = s->text.len;
    res.time_s = s->time_s;
    res.finish = s->finish;
    int rc = emit ? emit(ud, &res) : 0;
    kv_seq_release(e->kv, &s->seq);
    s->active = 0;
    return rc;
}

/* Prefills the next prompts of the queue into held slots, several in one forward when their
 * tokens fit max_step_tokens together (a longer prompt goes alone, in chunks). Each prompt's
 * share of the step time is proportional to its tokens. Returns the number of prompts now
 * held (0: no slot or pages free), -1 on error; advances *r_next past them. */
static int prefill_next(engine *e, const eng_request *reqs, int n_reqs, int *r_next, char *err, size_t errlen) {
    const model_config *c = model_cfg(e->m);
    int k = 0, total = 0, idx = *r_next;
    while (idx < n_reqs && e->n_held + k < e->cfg.max_prompts) {
        const eng_request *r = &reqs[idx];
        if (r->n_samples <= 0) { idx++; continue; }
        if (k > 0 && (!e->prefill_pack || total + r->n_prompt > e->cfg.max_step_tokens)) break;
        held_prompt *h = &e->held[e->n_held + k];
        if (kv_seq_init(e->kv, &h->seq) != 0) break;
        if (kv_seq_reserve(e->kv, &h->seq, r->n_prompt) != 0) { kv_seq_release(e->kv, &h->seq); break; }
        h->req = idx;
        total += r->n_prompt;
        k++;
        idx++;
        if (r->n_prompt >= e->cfg.max_step_tokens) break;
    }
    if (k == 0) return 0;
    int64_t t0 = util_now_ns();
    if (k == 1) { /* possibly long: chunks of max_step_tokens */
        held_prompt *h = &e->held[e->n_held];
        const eng_request *r = &reqs[h->req];
        const float *lg = NULL;
        for (int i = 0; i < r->n_prompt; i += e->cfg.max_step_tokens) {
            int n = r->n_prompt - i < e->cfg.max_step_tokens ? r->n_prompt - i : e->cfg.max_step_tokens;
            kv_batch_clear(&e->batch);
            if (kv_batch_add(e->kv, &e->batch, &h->seq, r->prompt + i, n) != 0) goto oom;
            kv_batch_finish(&e->batch);
            lg = model_forward(e->m, e->kv, &e->batch, 0);
        }
        e->be->copy(e->be, h->logits, lg, sizeof(float) * c->vocab_size);
    } else {
        kv_batch_clear(&e->batch);
        for (int i = 0; i < k; i++) {
            held_prompt *h = &e->held[e->n_held + i];
            const eng_request *r = &reqs[h->req];
            if (kv_batch_add(e->kv, &e->batch, &h->seq, r->prompt, r->n_prompt) != 0) goto oom;
        }
        kv_batch_finish(&e->batch);
        const float *lg = model_forward(e->m, e->kv, &e->batch, 0);
        for (int i = 0; i < k; i++)
            e->be->copy(e->be, e->held[e->n_held + i].logits, lg + (size_t)i * c->vocab_size, sizeof(float) * c->vocab_size);
    }
    e->be->sync(e->be);
    double dt = (double)(util_now_ns() - t0) * 1e-9;
    e->st.prefill_s += dt;
    e->st.prefill_tokens += total;
    for (int i = 0; i < k; i++) {
        held_prompt *h = &e->held[e->n_held + i];
        const eng_request *r = &reqs[h->req];
        h->next_sample = 0;
        h->prefill_share_s = dt * ((double)r->n_prompt / total) / r->n_samples;
        h->last_tok = r->prompt[r->n_prompt - 1];
    }
    e->n_held += k;
    *r_next = idx;
    return k;
oom:
    for (int i = 0; i < k; i++) kv_seq_release(e->kv, &e->held[e->n_held + i].seq);
    return util_err(err, errlen, "engine: out of KV pages during prefill (reservation bug)");
}

int eng_run(engine *e, const eng_request *reqs, int n_reqs, eng_emit_fn emit, void *ud, char *err, size_t errlen) {
    const model_config *c = model_cfg(e->m);
    int V = c->vocab_size;
    memset(&e->st, 0, sizeof e->st);
    e->token_abort = 0;
    eng_graph_stats gs0;
    memset(&gs0, 0, sizeof gs0);
    if (n_reqs <= 0) return 0;
    int max_len = 1, max_tok = 1;
    int *mt = xmalloc(sizeof(int) * n_reqs); /* effective max_tokens */
    int rc = 0;
    for (int i = 0; i < n_reqs; i++) {
        const eng_request *r = &reqs[i];
        if (r->n_prompt < 1) { rc = util_err(err, errlen, "request %d (problem %u): empty prompt", i, r->problem); goto done; }
        for (int j = 0; j < r->n_prompt; j++)
            if (r->prompt[j] < 0 || r->prompt[j] >= V) {
                rc = util_err(err, errlen, "request %d (problem %u): prompt token %d = %d outside the vocabulary [0, %d)", i,
                              r->problem, j, r->prompt[j], V);
                goto done;
            }
        if (r->n_stop > 4) { rc = util_err(err, errlen, "request %d: more than 4 stop strings", i); goto done; }
        mt[i] = r->max_tokens > 0 ? r->max_tokens : 1;
        if (c->max_position > 0) {
            if (r->n_prompt >= c->max_position) {
                rc = util_err(err, errlen, "request %d (problem %u): prompt of %d tokens does not fit the model context of %d",
                              i, r->problem, r->n_prompt, c->max_position);
                goto done;
            }
            if (r->n_prompt + mt[i] > c->max_position) mt[i] = c->max_position - r->n_prompt;
        }
        if (r->n_prompt + mt[i] > max_len) max_len = r->n_prompt + mt[i];
        if (mt[i] > max_tok) max_tok = mt[i];
    }
    int min_prompt = reqs[0].n_prompt, min_spp = 0;
    long total_samples = 0;
    for (int i = 0; i < n_reqs; i++) {
        if (reqs[i].n_prompt < min_prompt) min_prompt = reqs[i].n_prompt;
        if (reqs[i].n_samples > 0) {
            total_samples += reqs[i].n_samples;
            if (min_spp == 0 || reqs[i].n_samples < min_spp) min_spp = reqs[i].n_samples;
        }
    }
    if (total_samples > 1 << 30) total_samples = 1 << 30;
    if (ensure_cache(e, max_len, min_prompt, min_spp > 0 ? min_spp : 1, total_samples > 0 ? (int)total_samples : 1, err,
                     errlen)) { rc = -1; goto done; }
    if (graphs_wanted(e) && !e->gx) {
        int ps = e->cfg.page_size;
        if (eng_graph_new(e->m, e->kv, e->cfg.max_seqs, (e->kv_max_len + ps - 1) / ps, graphs_wanted(e) == 1, &e->gx, err,
                          errlen)) {
            rc = -1;
            goto done;
        }
    } else if (!graphs_wanted(e) && e->gx) {
        eng_graph_destroy(&e->gx);
    }
    if (e->gx) eng_graph_get_stats(e->gx, &gs0);
    if (max_tok > e->cap_ids) {
        for (int i = 0; i < e->cfg.max_seqs; i++) e->seqs[i].ids = xrealloc(e->seqs[i].ids, sizeof(int32_t) * max_tok);
        e->cap_ids = max_tok;
    }
    int r_next = 0, n_active = 0;
    e->n_held = 0;
    for (;;) {
        /* fill free slots: samples of held prompts first, then new prompts */
        while (n_active < e->cfg.max_seqs) {
            held_prompt *h = e->n_held ? &e->held[0] : NULL;
            if (h) {
                const eng_request *r = &reqs[h->req];
                int slot = 0;
                while (e->seqs[slot].active) slot++;
                run_seq *s = &e->seqs[slot];
                if (kv_seq_fork(e->kv, &h->seq, &s->seq, r->n_prompt + mt[h->req]) != 0) {
                    if (n_active == 0) { rc = util_err(err, errlen, "engine: KV cache too small for one sample"); goto done; }
                    break; /* wait for pages */
                }
                s->active = 1;
                s->req = h->req;
                s->sample = (uint32_t)h->next_sample++;
                s->n_ids = s->tokens = 0;
                s->text.len = 0;
                if (s->text.data) s->text.data[0] = 0;
                s->time_s = h->prefill_share_s;
                s->finish = NULL;
                s->prev = h->last_tok;
                op_sample_params p = req_params(r, s->sample, 0);
                int32_t t;
                int64_t t0 = util_now_ns();
                e->be->sample(e->be, &t, h->logits, 1, V, &p);
                s->time_s += (double)(util_now_ns() - t0) * 1e-9;
                seq_push(e, s, r, mt[s->req], t);
                n_active++;
                if (e->token_abort) { rc = util_err(err, errlen, "engine: aborted by the caller"); goto done; }
                if (h->next_sample >= r->n_samples) { /* every sample started: drop the prompt */
                    kv_seq_release(e->kv, &h->seq);
                    held_prompt tmp = e->held[0];
                    memmove(&e->held[0], &e->held[1], sizeof(held_prompt) * (e->n_held - 1));
                    e->held[e->n_held - 1] = tmp; /* keep its logits buffer */
                    e->n_held--;
                }
                if (s->finish) {
                    n_active--;
                    if (emit_seq(e, s, reqs, emit, ud)) { rc = util_err(err, errlen, "engine: aborted by the caller"); goto done; }
                }
                continue;
            }
            while (r_next < n_reqs && reqs[r_next].n_samples <= 0) r_next++;
            if (r_next < n_reqs && e->n_held < e->cfg.max_prompts) {
                int pr = prefill_next(e, reqs, n_reqs, &r_next, err, errlen);
                if (pr < 0) { rc = -1; goto done; }
                if (pr == 0) {
                    if (n_active == 0) { rc = util_err(err, errlen, "engine: KV cache too small for a prompt of %d tokens", reqs[r_next].n_prompt); goto done; }
                    break;
                }
                continue;
            }
            break;
        }
        if (n_active == 0) {
            if (e->n_held == 0 && r_next >= n_reqs) break;
            continue;
        }
        /* one decode step over every running sample */
        kv_batch_clear(&e->batch);
        int n = 0;
        run_seq **order = e->order;
        for (int i = 0; i < e->cfg.max_seqs; i++) {
            run_seq *s = &e->seqs[i];
            if (!s->active) continue;
            if (kv_batch_add(e->kv, &e->batch, &s->seq, &s->last, 1) != 0) {
                rc = util_err(err, errlen, "engine: out of KV pages in decode (reservation bug)");
                goto done;
            }
            e->params[n] = req_params(&reqs[s->req], s->sample, (uint32_t)s->tokens);
            order[n++] = s;
        }
        kv_batch_finish(&e->batch);
        int64_t t0 = util_now_ns();
        if (e->gx) {
            if (eng_graph_step(e->gx, &e->batch, e->params, e->ids_host, err, errlen)) { rc = -1; goto done; }
        } else {
            const float *lg = model_forward(e->m, e->kv, &e->batch, 0);
            e->be->sample(e->be, e->ids_host, lg, n, V, e->params);
        }
        double dt = (double)(util_now_ns() - t0) * 1e-9;
        e->st.decode_s += dt;
        e->st.decode_steps++;
        e->st.decode_tokens += n;
        for (int i = 0; i < n; i++) {
            run_seq *s = order[i];
            s->time_s += dt / n;
            seq_push(e, s, &reqs[s->req], mt[s->req], e->ids_host[i]);
            if (e->token_abort) { rc = util_err(err, errlen, "engine: aborted by the caller"); goto done; }
            if (s->finish) {
                n_active--;
                if (emit_seq(e, s, reqs, emit, ud)) { rc = util_err(err, errlen, "engine: aborted by the caller"); goto done; }
            }
        }
    }
done:
    /* release whatever is still held (error paths) */
    if (e->kv) {
        for (int i = 0; i < e->cfg.max_seqs; i++) if (e->seqs[i].active) { kv_seq_release(e->kv, &e->seqs[i].seq); e->seqs[i].active = 0; }
        for (int i = 0; i < e->n_held; i++) kv_seq_release(e->kv, &e->held[i].seq);
    }
    e->n_held = 0;
    e->st.mean_batch = e->st.decode_steps ? (double)e->st.decode_tokens / e->st.decode_steps : 0;
    e->st.max_seqs = e->cfg.max_seqs;
    if (e->gx) {
        eng_graph_stats gs;
        eng_graph_get_stats(e->gx, &gs);
        e->st.graph_buckets = gs.buckets_captured;
        e->st.graph_replays = gs.replays - gs0.replays;
        e->st.padded_rows = gs.padded_rows - gs0.padded_rows;
    }
    free(mt);
    return rc;
}

int eng_prompt_logits(engine *e, const int32_t *ids, int n, float *out_host, char *err, size_t errlen) {
    const model_config *c = model_cfg(e->m);
    if (n < 1) return util_err(err, errlen, "empty prompt");
    for (int j = 0; j < n; j++)
        if (ids[j] < 0 || ids[j] >= c->vocab_size)
            return util_err(err, errlen, "prompt token %d = %d outside the vocabulary [0, %d)", j, ids[j], c->vocab_size);
    kv_cache *kv = NULL;
    int ps = e->cfg.page_size;
    if (kv_cache_new(e->be, c, ps, (n + ps - 1) / ps + 1, 1, &kv, err, errlen)) return -1;
    kv_seq s;
    kv_seq_init(kv, &s);
    kv_seq_reserve(kv, &s, n);
    kv_batch b;
    kv_batch_init(&b);
    for (int i = 0; i < n; i += e->cfg.max_step_tokens) {
        int k = n - i < e->cfg.max_step_tokens ? n - i : e->cfg.max_step_tokens;
        kv_batch_clear(&b);
        kv_batch_add(kv, &b, &s, ids + i, k);
        kv_batch_finish(&b);
        const float *lg = model_forward(e->m, kv, &b, 1);
        e->be->download(e->be, out_host + (size_t)i * c->vocab_size, lg, sizeof(float) * (size_t)k * c->vocab_size);
    }
    kv_batch_free(&b);
    kv_seq_release(kv, &s);
    kv_cache_destroy(&kv);
    return 0;
}
