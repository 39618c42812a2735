/* workers/sample/native.c — the "native" sampling backend: the model engine behind the
 * sample_backend interface. Loads an HF model directory (config.json, safetensors and a
 * tokenizer: tokenizer.json, tokenizer.model or tokenizer.bin) onto "cpu", "cuda[:N]" or "auto"
 * (CUDA when a device is present, else CPU), renders each problem with the job's prompt
 * template (jobs/prompt.h), tokenizes it (BOS added unless the template already starts with
 * it), and generates n samples per problem with continuous batching; every finished sample is
 * emitted with its decoded text, token count, amortised time and finish reason.
 * Environment: THINKFAST_MAX_SEQS overrides the number of decode slots (default 8 on the CPU,
 * 64 on CUDA).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "jobs/prompt.h"
#include "kernels/ops.h"
#include "workers/model/engine.h"
#include "workers/model/model.h"
#include "workers/model/tokenizer.h"
#include "workers/sample/sample_backend.h"

typedef struct native_impl {
    op_backend *be;
    model *m;
    tok *tk;
    engine *e;
} native_impl;

typedef struct emit_ctx {
    sample_emit_fn emit;
    void *ud;
    const int *problem_of_req;
} emit_ctx;

static int native_emit(void *ud, const eng_result *r) {
    emit_ctx *c = ud;
    sample_output o;
    o.problem = c->problem_of_req[r->request];
    o.sample = (int)r->sample;
    o.text = r->text;
    o.tokens = r->tokens;
    o.time_s = r->time_s;
    o.finish = r->finish;
    return c->emit ? c->emit(c->ud, &o) : 0;
}

static int native_run(sample_backend *b, const sample_item *items, int n_items, const sample_params *p,
                      sample_emit_fn emit, void *ud, char *err, size_t errlen) {
    native_impl *im = b->impl;
    if (n_items <= 0) return 0;
    if (p->n <= 0) return util_err(err, errlen, "sampling.n: expected a positive integer, got %d", p->n);
    if (p->n_stop < 0 || p->n_stop > 4) return util_err(err, errlen, "sampling.stop: at most 4 stop strings");
    const char *tmpl = p->template_name && *p->template_name ? p->template_name : "plain";
    eng_request *rq = xcalloc(n_items, sizeof *rq);
    int32_t **ids = xcalloc(n_items, sizeof *ids);
    int *prob = xcalloc(n_items, sizeof *prob);
    int rc = 0;
    int32_t bos = tok_bos(im->tk);
    util_buf text;
    util_buf_init(&text);
    for (int i = 0; i < n_items; i++) {
        job_problem jp;
        memset(&jp, 0, sizeof jp);
        jp.id = (char *)(items[i].id ? items[i].id : "");
        jp.question = (char *)(items[i].question ? items[i].question : "");
        jp.solution = (char *)(items[i].solution ? items[i].solution : "");
        jp.answer = (char *)(items[i].answer ? items[i].answer : "");
        jp.subject = (char *)"";
        text.len = 0;
        if (prompt_render(tmpl, p->system, &jp, &text, err, errlen) != 0) { rc = -1; goto done; }
        int n = 0;
        int32_t *tmp = NULL;
        if (tok_encode(im->tk, text.data ? text.data : "", text.len, 0, 1, &tmp, &n) != 0) {
            rc = util_err(err, errlen, "problem %s: tokenization failed", jp.id);
            goto done;
        }
        if (bos >= 0 && (n == 0 || tmp[0] != bos)) { /* the template did not start with BOS */
            int32_t *w = xmalloc(sizeof(int32_t) * (n + 1));
            w[0] = bos;
            memcpy(w + 1, tmp, sizeof(int32_t) * n);
            free(tmp);
            tmp = w;
            n++;
        }
        if (n == 0) { free(tmp); rc = util_err(err, errlen, "problem %s: empty prompt", jp.id); goto done; }
        ids[i] = tmp;
        prob[i] = items[i].problem;
        eng_request *r = &rq[i];
        r->prompt = tmp;
        r->n_prompt = n;
        r->n_samples = p->n;
        r->problem = (uint32_t)items[i].problem;
        r->temperature = (float)p->temperature;
        r->top_p = (float)p->top_p;
        r->top_k = p->top_k;
        r->min_p = (float)p->min_p;
        r->seed = p->seed;
        r->max_tokens = p->max_tokens > 0 ? p->max_tokens : 512;
        for (int s = 0; s < p->n_stop; s++) r->stop[s] = p->stop[s];
        r->n_stop = p->n_stop;
    }
    emit_ctx ec = {emit, ud, prob};
    rc = eng_run(im->e, rq, n_items, native_emit, &ec, err, errlen);
    if (rc == 0) {
        eng_stats st;
        eng_get_stats(im->e, &st);
        LOG_INFO("native: %d problems x %d samples: prefill %lld tok in %.2fs, decode %lld tok in %.2fs (%.1f tok/s, mean batch %.1f)",
                 n_items, p->n, (long long)st.prefill_tokens, st.prefill_s, (long long)st.decode_tokens, st.decode_s,
                 st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0.0, st.mean_batch);
    }
done:
    util_buf_free(&text);
    for (int i = 0; i < n_items; i++) free(ids[i]);
    free(ids);
    free(rq);
    free(prob);
    return rc;
}

static void native_destroy(sample_backend **pb) {
    if (!pb || !*pb) return;
    native_impl *im = (*pb)->impl;
    if (im) {
        eng_destroy(&im->e);
        tok_destroy(&im->tk);
        model_destroy(&im->m);
        if (im->be) im->be->destroy(&im->be);
        free(im);
    }
    free(*pb);
    *pb = NULL;
}

sample_backend *sample_backend_native_new(const char *model_dir, const char *device, char *err, size_t errlen) {
    if (!model_dir || !*model_dir) { util_err(err, errlen, "model.path: required for the native backend"); return NULL; }
    const char *dev = device && *device ? device : "auto";
    sample_backend *b = xcalloc(1, sizeof *b);
    native_impl *im = xcalloc(1, sizeof *im);
    b->impl = im;
    b->run = native_run;
    b->destroy = native_destroy;
    im->be = op_backend_new(dev, err, errlen);
    if (!im->be) goto fail;
    if (model_load(model_dir, im->be, &im->m, err, errlen) != 0) goto fail;
    if (tok_load(model_dir, &im->tk, err, errlen) != 0) goto fail;
    if (tok_vocab_size(im->tk) > model_cfg(im->m)->vocab_size) {
        util_err(err, errlen, "%s: tokenizer has %d ids but the model vocabulary is %d", model_dir,
                 tok_vocab_size(im->tk), model_cfg(im->m)->vocab_size);
        goto fail;
    }
    eng_config cfg = {strcmp(im->be->name, "cpu") == 0 ? 8 : 64, 256, 16, 2, 0};
    const char *ms = getenv("THINKFAST_MAX_SEQS");
    if (ms && atoi(ms) > 0) cfg.max_seqs = atoi(ms);
    if (eng_new(im->m, im->tk, &cfg, &im->e, err, errlen) != 0) goto fail;
    LOG_INFO("native: loaded %s on %s (%.1f MB of weights, %d decode slots)", model_dir, im->be->name,
             model_weight_bytes(im->m) / 1e6, cfg.max_seqs);
    return b;
fail:
    native_destroy(&b);
    return NULL;
}
