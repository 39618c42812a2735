/* workers/score/reward.c — outcome and process reward models on the model engine (see reward.h).
 *
 * Flow of a batch: every item is tokenised (prompt + response in one piece, step ends located by
 * the tokens' byte offsets); consecutive items with the same prompt form a group whose longest
 * common token prefix is prefilled once and forked (kv_seq_fork) into each sample; the
 * sequences (or their suffixes) are packed into forwards of at most max_step tokens (several
 * per forward; a longer one runs alone in chunks through the cache). ORM reads the final-normed hidden state of each sequence's last token
 * (model_forward_hidden) and applies score.weight on the host in double; PRM reads the logits
 * rows of the step ends and takes exp(logit[token] - logsumexp(row)), or with a bad token
 * 1 / (1 + exp(logit[bad] - logit[good])).
 */
#include "workers/score/reward.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "kernels/ops.h"
#include "workers/model/kvcache.h"
#include "workers/model/model.h"
#include "workers/model/safetensors.h"
#include "workers/model/tokenizer.h"

#define RM_PAGE 16

struct reward_model {
    reward_kind kind;
    reward_agg agg;
    char *sep;
    int32_t good;          /* PRM token id */
    int32_t bad;           /* PRM prm_bad_token id, -1 = none (full-softmax p(good)) */
    op_backend *be;
    model *m;
    tok *tk;
    float *head;           /* ORM [num_labels, hidden] fp32, host */
    int num_labels, hidden, vocab;
    int max_step;          /* tokens per forward */
    int share_prefix;      /* prefill a group's common prompt once (default 1) */
    int64_t tokens_run;    /* tokens through the model so far */
    kv_cache *kv;
    int kv_pages, kv_slots;
    kv_batch b;
    float *row;            /* host [vocab] */
    float *hid;            /* host [cap_hid * hidden] fp32 */
    void *hid_raw;         /* host, act dtype */
    int cap_hid;
};

/* ------------------------------------------------------------------ small pure helpers */

int reward_parse_kind(const char *name, reward_kind *out) {
    if (!name || !*name || !strcmp(name, "orm")) { *out = REWARD_ORM; return 0; }
    if (!strcmp(name, "prm")) { *out = REWARD_PRM; return 0; }
    return -1;
}

int reward_parse_agg(const char *name, reward_agg *out) {
    if (!name || !*name || !strcmp(name, "last")) { *out = REWARD_AGG_LAST; return 0; }
    if (!strcmp(name, "min")) { *out = REWARD_AGG_MIN; return 0; }
    if (!strcmp(name, "prod")) { *out = REWARD_AGG_PROD; return 0; }
    return -1;
}

double reward_aggregate(reward_agg agg, const double *steps, int n) {
    if (n <= 0 || !steps) return NAN;
    double r;
    switch (agg) {
    case REWARD_AGG_MIN:
        r = steps[0];
        for (int i = 1; i < n; i++) if (steps[i] < r || isnan(steps[i])) r = steps[i];
        return r;
    case REWARD_AGG_PROD:
        r = 1.0;
        for (int i = 0; i < n; i++) r *= steps[i];
        return r;
    default:
        return steps[n - 1];
    }
}

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if (!isspace((unsigned char)s[i])) return 0;
    return 1;
}

int reward_split_steps(const char *response, size_t len, const char *sep, size_t **ends) {
    if (!sep || !*sep) sep = "\n\n";
    size_t sl = strlen(sep), cap = 8;
    int n = 0;
    size_t *e = xmalloc(cap * sizeof *e);
    size_t start = 0, i = 0;
    while (response && i + sl <= len) {
        if (memcmp(response + i, sep, sl) != 0) { i++; continue; }
        if (!all_space(response + start, i - start)) {
            if ((size_t)n == cap) e = xrealloc(e, (cap *= 2) * sizeof *e);
            e[n++] = i + sl;
            start = i + sl;
        }
        i += sl;
    }
    if (n == 0 || (response && !all_space(response + start, len - start))) {
        if ((size_t)n == cap) e = xrealloc(e, (cap *= 2) * sizeof *e);
        e[n++] = len;
    }
    *ends = e;
    return n;
}

/* ------------------------------------------------------------------ loading */

/* Reads score.weight [L, hidden] (and checks config.json's num_labels if present). */
static int load_head(reward_model *rm, const char *dir, char *err, size_t errlen) {
    st_file *f = NULL;
    if (st_open(dir, &f, err, errlen) != 0) return -1;
    const st_tensor *t = st_find(f, "score.weight");
    int rc = -1;
    if (!t) {
        util_err(err, errlen, "%s: tensor score.weight is missing (an ORM needs a LlamaForSequenceClassification-style "
                 "score head; use kind \"prm\" for a causal LM)", dir);
        goto done;
    }
    if (t->ndim != 2 || t->shape[1] != rm->hidden || t->shape[0] < 1 || t->shape[0] > 1024) {
        util_err(err, errlen, "%s: tensor score.weight: shape [%lld%s%lld], expected [num_labels, %d]", dir,
                 (long long)t->shape[0], t->ndim > 1 ? ", " : "", t->ndim > 1 ? (long long)t->shape[1] : 0LL,
                 rm->hidden);
        goto done;
    }
    rm->num_labels = (int)t->shape[0];
    rm->head = st_tensor_to_f32(t);
    for (int64_t i = 0; i < st_numel(t); i++)
        if (!isfinite(rm->head[i])) { util_err(err, errlen, "%s: tensor score.weight: non-finite value at %lld", dir, (long long)i); goto done; }
    rc = 0;
done:
    st_close(&f);
    if (rc == 0) {
        char cp[PATH_MAX + 16];
        snprintf(cp, sizeof cp, "%s/config.json", dir);
        json_t *root = json_load_file(cp, 0, NULL);
        json_t *nl = root ? json_object_get(root, "num_labels") : NULL;
        if (nl && (!json_is_integer(nl) || json_integer_value(nl) != rm->num_labels)) {
            util_err(err, errlen, "%s: num_labels: %lld does not match score.weight's %d rows", cp,
                     json_is_integer(nl) ? (long long)json_integer_value(nl) : -1LL, rm->num_labels);
            rc = -1;
        }
        json_decref(root);
    }
    return rc;
}

/* Resolves the token text name (field names it in errors) to one id of the model's vocabulary. */
static int resolve_token(reward_model *rm, const char *field, const char *name, int32_t *out, char *err,
                         size_t errlen) {
    if (!name || !*name) return util_err(err, errlen, "reward.%s: required for kind \"prm\"", field);
    int32_t id = tok_special_id(rm->tk, name);
    if (id >= 0) { *out = id; return 0; }
    int32_t *ids = NULL;
    int n = 0;
    if (tok_encode(rm->tk, name, strlen(name), 0, 0, &ids, &n) != 0) {
        free(ids);
        return util_err(err, errlen, "reward.%s: \"%s\" could not be tokenised", field, name);
    }
    /* SentencePiece vocabularies prepend a dummy-prefix space: accept "▁x" + nothing else */
    if (n != 1) {
        free(ids);
        return util_err(err, errlen, "reward.%s: \"%s\" is %d tokens for this tokenizer (expected exactly one)",
                        field, name, n);
    }
    *out = ids[0];
    free(ids);
    if (*out < 0 || *out >= rm->vocab)
        return util_err(err, errlen, "reward.%s: \"%s\" has id %d, outside the model vocabulary %d", field, name,
                        *out, rm->vocab);
    return 0;
}

int reward_load(const reward_spec *spec, reward_model **out, char *err, size_t errlen) {
    *out = NULL;
    if (!spec || !spec->model || !*spec->model) return util_err(err, errlen, "reward.model: required (a model directory)");
    reward_model *rm = xcalloc(1, sizeof *rm);
    kv_batch_init(&rm->b);
    rm->good = rm->bad = -1;
    if (reward_parse_kind(spec->kind, &rm->kind) != 0) {
        util_err(err, errlen, "reward.kind: unknown kind \"%s\" (expected orm|prm)", spec->kind);
        goto fail;
    }
    if (reward_parse_agg(spec->prm_aggregate, &rm->agg) != 0) {
        util_err(err, errlen, "reward.prm_aggregate: unknown rule \"%s\" (expected last|min|prod)", spec->prm_aggregate);
        goto fail;
    }
    rm->sep = xstrdup(spec->prm_separator && *spec->prm_separator ? spec->prm_separator : "\n\n");
    const char *dev = spec->device && *spec->device ? spec->device : "auto";
    rm->be = op_backend_new(dev, err, errlen);
    if (!rm->be) goto fail;
    /* An ORM is a LlamaForSequenceClassification checkpoint: the config loader maps it to Llama
     * without an LM head; load_head reads its score.weight. */
    if (model_load(spec->model, rm->be, &rm->m, err, errlen) != 0) goto fail;
    const model_config *c = model_cfg(rm->m);
    rm->hidden = c->hidden;
    rm->vocab = c->vocab_size;
    if (rm->kind == REWARD_ORM && load_head(rm, spec->model, err, errlen) != 0) goto fail;
    if (tok_load(spec->model, &rm->tk, err, errlen) != 0) goto fail;
    if (tok_vocab_size(rm->tk) > rm->vocab) {
        util_err(err, errlen, "%s: tokenizer has %d ids but the model vocabulary is %d", spec->model,
                 tok_vocab_size(rm->tk), rm->vocab);
        goto fail;
    }
    if (rm->kind == REWARD_PRM && resolve_token(rm, "prm_token", spec->prm_token, &rm->good, err, errlen) != 0)
        goto fail;
    if (rm->kind == REWARD_PRM && spec->prm_bad_token && *spec->prm_bad_token) {
        if (resolve_token(rm, "prm_bad_token", spec->prm_bad_token, &rm->bad, err, errlen) != 0) goto fail;
        if (rm->bad == rm->good) {
            util_err(err, errlen, "reward.prm_bad_token: \"%s\" is the same token (id %d) as prm_token \"%s\"",
                     spec->prm_bad_token, rm->bad, spec->prm_token);
            goto fail;
        }
    }
    rm->max_step = 2048;
    rm->share_prefix = 1;
    if (rm->kind == REWARD_PRM) {
        /* all-token logits [T, V] fp32: keep them near 256 MB */
        long cap = (256L << 20) / ((long)rm->vocab * 4);
        if (cap < 64) cap = 64;
        if (cap < rm->max_step) rm->max_step = (int)cap;
    }
    rm->row = xmalloc(sizeof(float) * (size_t)rm->vocab);
    char desc[256];
    model_config_describe(c, desc, sizeof desc);
    if (rm->kind == REWARD_ORM)
        LOG_INFO("reward: loaded ORM %s on %s (%s; %d label%s)", spec->model, rm->be->name, desc, rm->num_labels,
                 rm->num_labels == 1 ? "" : "s");
    else
        LOG_INFO("reward: loaded PRM %s on %s (%s; token %d, bad token %d, aggregate %s)", spec->model, rm->be->name,
                 desc, rm->good, rm->bad, rm->agg == REWARD_AGG_LAST ? "last" : rm->agg == REWARD_AGG_MIN ? "min" : "prod");
    *out = rm;
    return 0;
fail:
    reward_destroy(&rm);
    return -1;
}

void reward_destroy(reward_model **prm) {
    if (!prm || !*prm) return;
    reward_model *rm = *prm;
    kv_cache_destroy(&rm->kv);
    kv_batch_free(&rm->b);
    model_destroy(&rm->m);
    tok_destroy(&rm->tk);
    if (rm->be) rm->be->destroy(&rm->be);
    free(rm->head);
    free(rm->sep);
    free(rm->row);
    free(rm->hid);
    free(rm->hid_raw);
    free(rm);
    *prm = NULL;
}

reward_kind reward_model_kind(const reward_model *rm) { return rm->kind; }
int reward_num_labels(const reward_model *rm) { return rm->kind == REWARD_ORM ? rm->num_labels : 0; }
int32_t reward_prm_token_id(const reward_model *rm) { return rm->kind == REWARD_PRM ? rm->good : -1; }
int32_t reward_prm_bad_token_id(const reward_model *rm) { return rm->kind == REWARD_PRM ? rm->bad : -1; }
const char *reward_device(const reward_model *rm) { return rm->be->name; }

/* ------------------------------------------------------------------ tokenisation */

int reward_tokenize(const reward_model *rm, const char *prompt, const char *response, int32_t **ids_out, int *n_out,
                    int **pos_out, int *n_steps_out, char *err, size_t errlen) {
    *ids_out = NULL; *pos_out = NULL; *n_out = 0; *n_steps_out = 0;
    if (!prompt) prompt = "";
    if (!response) response = "";
    size_t lp = strlen(prompt), lr = strlen(response), lt = lp + lr;
    char *full = xmalloc(lt + 1);
    memcpy(full, prompt, lp);
    memcpy(full + lp, response, lr);
    full[lt] = 0;
    int32_t *ids = NULL;
    int n = 0;
    if (tok_encode(rm->tk, full, lt, 0, 1, &ids, &n) != 0) {
        free(full);
        free(ids);
        return util_err(err, errlen, "reward: tokenisation failed");
    }
    int32_t bos = tok_bos(rm->tk);
    int added = 0;
    if (bos >= 0 && (n == 0 || ids[0] != bos)) {
        int32_t *w = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        w[0] = bos;
        memcpy(w + 1, ids, sizeof(int32_t) * (size_t)n);
        free(ids);
        ids = w;
        n++;
        added = 1;
    }
    if (n == 0) { free(full); free(ids); return util_err(err, errlen, "reward: empty input (no prompt, no response, no BOS)"); }
    size_t *ends = NULL;
    int ns = rm->kind == REWARD_PRM ? reward_split_steps(response, lr, rm->sep, &ends) : 0;
    int *pos = xmalloc(sizeof(int) * (size_t)(ns > 0 ? ns : 1));
    if (rm->kind == REWARD_ORM) {
        pos[0] = n - 1;
        ns = 1;
    } else {
        /* byte end of every token in the decoded text */
        size_t *tend = xmalloc(sizeof(size_t) * (size_t)n);
        size_t off = 0;
        int aligned = 1;
        for (int i = 0; i < n; i++) {
            size_t pl = 0;
            if (!(added && i == 0)) {
                const char *pc = tok_piece_after(rm->tk, i > 0 ? ids[i - 1] : -1, ids[i], &pl);
                if (!pc) pl = 0;
                else if (off + pl > lt || memcmp(full + off, pc, pl) != 0) aligned = 0;
            }
            off += pl;
            tend[i] = off;
        }
        if (off != lt) aligned = 0;
        for (int s = 0; s < ns; s++) {
            size_t target = lp + ends[s];
            int p = n - 1;
            if (aligned) {
                for (int i = 0; i < n; i++) if (tend[i] >= target && (tend[i] > 0 || target == 0)) { p = i; break; }
                if (target == 0) p = 0;
            } else {
                /* the pieces do not spell the text back (normalising tokenizer): the step ends at the
                 * last token of the prefix tokenised on its own */
                int32_t *pi = NULL;
                int pn = 0;
                if (tok_encode(rm->tk, full, target, 0, 1, &pi, &pn) == 0) {
                    p = pn - 1 + added;
                    if (p < 0) p = 0;
                    if (p > n - 1) p = n - 1;
                }
                free(pi);
            }
            pos[s] = p;
        }
        free(tend);
    }
    free(ends);
    free(full);
    /* context limit: keep the tail */
    int maxp = model_cfg(rm->m)->max_position;
    if (maxp > 0 && n > maxp) {
        int cut = n - maxp;
        memmove(ids, ids + cut, sizeof(int32_t) * (size_t)maxp);
        n = maxp;
        int k = 0;
        for (int s = 0; s < ns; s++) if (pos[s] - cut >= 0) pos[k++] = pos[s] - cut;
        if (k == 0) pos[k++] = n - 1;
        ns = k;
        LOG_WARN("reward: input of %d tokens cut to the model context %d (kept the end)", n + cut, maxp);
    }
    *ids_out = ids; *n_out = n; *pos_out = pos; *n_steps_out = ns;
    return 0;
}

/* ------------------------------------------------------------------ scoring */

static int ensure_kv(reward_model *rm, int pages, int slots, char *err, size_t errlen) {
    const model_config *c = model_cfg(rm->m);
    if (c->n_attn_layers == 0) pages = 0;
    if (c->n_attn_layers == c->n_layers) slots = 0;
    if (rm->kv && pages <= rm->kv_pages && slots <= rm->kv_slots) return 0;
    kv_cache_destroy(&rm->kv);
    if (pages < rm->kv_pages) pages = rm->kv_pages;
    if (slots < rm->kv_slots) slots = rm->kv_slots;
    if (kv_cache_new(rm->be, c, RM_PAGE, pages, slots, &rm->kv, err, errlen) != 0) { rm->kv_pages = rm->kv_slots = 0; return -1; }
    rm->kv_pages = pages;
    rm->kv_slots = slots;
    return 0;
}

/* The step score from one logits row: softmax(row)[id], or with bad >= 0 the two-token
 * p(id) / (p(id) + p(bad)) = 1 / (1 + exp(row[bad] - row[id])). */
static double prob_of(const float *row, int V, int id, int bad) {
    if (bad >= 0) {
        if (!isfinite(row[id]) || !isfinite(row[bad])) return NAN;
        return 1.0 / (1.0 + exp((double)row[bad] - (double)row[id]));
    }
    double mx = -INFINITY;
    for (int i = 0; i < V; i++) if (row[i] > mx) mx = row[i];
    if (!isfinite(mx)) return NAN;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)row[i] - mx);
    return exp((double)row[id] - mx) / s;
}

static double orm_value(const reward_model *rm, const float *h) {
    int L = rm->num_labels, D = rm->hidden;
    double lg[1024] = {0};
    for (int l = 0; l < L; l++) {
        double s = 0;
        const float *w = rm->head + (size_t)l * D;
        for (int i = 0; i < D; i++) s += (double)w[i] * h[i];
        lg[l] = s;
    }
    if (L == 1) return lg[0];
    double mx = lg[0];
    for (int l = 1; l < L; l++) if (lg[l] > mx) mx = lg[l];
    double z = 0;
    for (int l = 0; l < L; l++) z += exp(lg[l] - mx);
    return exp(lg[L - 1] - mx) / z;
}

/* Downloads rows of hidden states [rows, D] (act dtype) to rm->hid as fp32. */
static void fetch_hidden(reward_model *rm, const void *dev, int rows) {
    size_t D = (size_t)rm->hidden, ab = rm->be->act_bytes;
    if (rows > rm->cap_hid) {
        rm->cap_hid = rows;
        rm->hid = xrealloc(rm->hid, sizeof(float) * D * rows);
        rm->hid_raw = xrealloc(rm->hid_raw, ab * D * rows);
    }
    rm->be->download(rm->be, rm->hid_raw, dev, ab * D * rows);
    st_to_f32(rm->hid, rm->hid_raw, rm->be->act_dtype, D * rows);
}

typedef struct seq_job {
    const int32_t *ids;
    int n;
    const int *pos;
    int n_steps;
    reward_result *out;
    int start;             /* tokens [0, start) are the shared prefix already in the cache */
} seq_job;

/* Runs jobs[0..k) in one forward (suffixes [start, n) together <= max_step tokens) or, for
 * k == 1, in chunks. With prefix (its length = every job's start) each sequence is a fork of it;
 * the cache must already be large enough then (the prefix lives in it). */
static int run_pack(reward_model *rm, seq_job *jobs, int k, const kv_seq *prefix, char *err, size_t errlen) {
    const model_config *c = model_cfg(rm->m);
    if (!prefix) {
        int pages = 0;
        for (int j = 0; j < k; j++) pages += (jobs[j].n + RM_PAGE - 1) / RM_PAGE + 1;
        if (ensure_kv(rm, pages, k, err, errlen) != 0) return -1;
    }
    kv_seq *seqs = xcalloc((size_t)k, sizeof *seqs);
    int rc = 0, inited = 0;
    for (int j = 0; j < k; j++) {
        int ok = prefix ? kv_seq_fork(rm->kv, prefix, &seqs[j], jobs[j].n) == 0
                        : kv_seq_init(rm->kv, &seqs[j]) == 0 && kv_seq_reserve(rm->kv, &seqs[j], jobs[j].n) == 0;
        inited = j + 1;
        if (!ok) { rc = util_err(err, errlen, "reward: kv cache too small for %d sequences", k); goto done; }
        if (rm->kind == REWARD_PRM) {
            jobs[j].out->steps = xcalloc((size_t)jobs[j].n_steps, sizeof(double));
            jobs[j].out->n_steps = jobs[j].n_steps;
            for (int s = 0; s < jobs[j].n_steps; s++) jobs[j].out->steps[s] = NAN;
        }
    }
    int chunk = k == 1 ? rm->max_step : INT_MAX;
    int begin = jobs[0].start, total = jobs[0].n;
    for (int i = begin; i < total || (k > 1 && i == begin); i += chunk) {
        kv_batch_clear(&rm->b);
        int len = k == 1 ? (total - i < chunk ? total - i : chunk) : 0;
        for (int j = 0; j < k; j++) {
            const int32_t *tk = k == 1 ? jobs[0].ids + i : jobs[j].ids + jobs[j].start;
            int nt = k == 1 ? len : jobs[j].n - jobs[j].start;
            if (kv_batch_add(rm->kv, &rm->b, &seqs[j], tk, nt) != 0) { rc = util_err(err, errlen, "reward: out of cache pages"); goto done; }
        }
        kv_batch_finish(&rm->b);
        rm->tokens_run += rm->b.T;
        int last_chunk = k > 1 || i + len >= total;
        if (rm->kind == REWARD_ORM) {
            const void *h = model_forward_hidden(rm->m, rm->kv, &rm->b, 0);
            if (!last_chunk) continue;
            fetch_hidden(rm, h, k);
            for (int j = 0; j < k; j++) jobs[j].out->reward = orm_value(rm, rm->hid + (size_t)j * rm->hidden);
        } else {
            const float *lg = model_forward(rm->m, rm->kv, &rm->b, 1);
            for (int j = 0; j < k; j++) {
                int base = rm->b.cu_seqlens[j], lo = k == 1 ? i : jobs[j].start, hi = k == 1 ? i + len : jobs[j].n;
                for (int s = 0; s < jobs[j].n_steps; s++) {
                    int p = jobs[j].pos[s];
                    if (p < lo || p >= hi) continue;
                    rm->be->download(rm->be, rm->row, lg + (size_t)(base + p - lo) * c->vocab_size,
                                     sizeof(float) * (size_t)c->vocab_size);
                    jobs[j].out->steps[s] = prob_of(rm->row, c->vocab_size, rm->good, rm->bad);
                }
            }
        }
        if (k > 1) break;
    }
    if (rm->kind == REWARD_PRM)
        for (int j = 0; j < k; j++) jobs[j].out->reward = reward_aggregate(rm->agg, jobs[j].out->steps, jobs[j].out->n_steps);
done:
    for (int j = 0; j < inited; j++) kv_seq_release(rm->kv, &seqs[j]);
    free(seqs);
    return rc;
}

/* Packs jobs[0..n) (each job's start already set) into forwards: consecutive jobs whose suffixes
 * together fit max_step tokens (at most 64 sequences). Writes pack boundaries to cut[] (n + 1
 * entries at most) and returns the number of packs. */
static int plan_packs(const reward_model *rm, const seq_job *jobs, int n, int *cut) {
    int np = 0;
    cut[0] = 0;
    for (int i = 0; i < n;) {
        int k = 1, sum = jobs[i].n - jobs[i].start;
        while (i + k < n && sum + jobs[i + k].n - jobs[i + k].start <= rm->max_step && k < 64)
            sum += jobs[i + k].n - jobs[i + k].start, k++;
        i += k;
        cut[++np] = i;
    }
    return np;
}

/* Scores a group of jobs that share a prompt: the longest common token prefix (kept short of
 * every sequence's last token and first step) is prefilled once and forked into each sample. */
static int run_group(reward_model *rm, seq_job *jobs, int n, char *err, size_t errlen) {
    int L = 0;
    if (n >= 2 && rm->share_prefix) {
        L = jobs[0].n - 1;
        for (int j = 0; j < n; j++) {
            int l = 0, lim = jobs[j].n - 1 < L ? jobs[j].n - 1 : L;
            while (l < lim && jobs[j].ids[l] == jobs[0].ids[l]) l++;
            L = l;
            for (int s = 0; s < jobs[j].n_steps; s++) if (jobs[j].pos[s] < L) L = jobs[j].pos[s];
        }
        if (L < RM_PAGE) L = 0; /* not worth a fork */
    }
    for (int j = 0; j < n; j++) jobs[j].start = L;
    int *cut = xmalloc(sizeof(int) * (size_t)(n + 1));
    int np = plan_packs(rm, jobs, n, cut), rc = 0;
    if (L == 0) {
        for (int q = 0; q < np && !rc; q++) rc = run_pack(rm, jobs + cut[q], cut[q + 1] - cut[q], NULL, err, errlen);
        free(cut);
        return rc;
    }
    /* one cache for the prefix and the largest pack of forks */
    int need = 0, maxk = 0;
    for (int q = 0; q < np; q++) {
        int pg = 0;
        for (int j = cut[q]; j < cut[q + 1]; j++) pg += (jobs[j].n - L + RM_PAGE - 1) / RM_PAGE + 2;
        if (pg > need) need = pg;
        if (cut[q + 1] - cut[q] > maxk) maxk = cut[q + 1] - cut[q];
    }
    rc = ensure_kv(rm, need + (L + RM_PAGE - 1) / RM_PAGE + 1, maxk + 1, err, errlen);
    kv_seq pre;
    int have_pre = 0;
    if (!rc) {
        if (kv_seq_init(rm->kv, &pre) != 0 || (have_pre = 1, kv_seq_reserve(rm->kv, &pre, L) != 0))
            rc = util_err(err, errlen, "reward: kv cache too small for a %d-token prompt", L);
    }
    for (int i = 0; i < L && !rc; i += rm->max_step) {
        int len = L - i < rm->max_step ? L - i : rm->max_step;
        kv_batch_clear(&rm->b);
        if (kv_batch_add(rm->kv, &rm->b, &pre, jobs[0].ids + i, len) != 0) { rc = util_err(err, errlen, "reward: out of cache pages"); break; }
        kv_batch_finish(&rm->b);
        rm->tokens_run += rm->b.T;
        model_forward_hidden(rm->m, rm->kv, &rm->b, 0);
    }
    for (int q = 0; q < np && !rc; q++) rc = run_pack(rm, jobs + cut[q], cut[q + 1] - cut[q], &pre, err, errlen);
    if (have_pre) kv_seq_release(rm->kv, &pre);
    free(cut);
    return rc;
}

int reward_score_ids(reward_model *rm, const int32_t *ids, int n, const int *step_pos, int n_steps, reward_result *out,
                     char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->reward = NAN;
    if (n <= 0 || !ids) return util_err(err, errlen, "reward: empty token sequence");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= rm->vocab) return util_err(err, errlen, "reward: token id %d at %d outside the vocabulary %d", ids[i], i, rm->vocab);
    int maxp = model_cfg(rm->m)->max_position;
    if (maxp > 0 && n > maxp) return util_err(err, errlen, "reward: %d tokens exceed the model context %d", n, maxp);
    int last = n - 1;
    if (rm->kind == REWARD_PRM) {
        if (n_steps <= 0 || !step_pos) return util_err(err, errlen, "reward: a PRM needs at least one step position");
        for (int s = 0; s < n_steps; s++)
            if (step_pos[s] < 0 || step_pos[s] >= n) return util_err(err, errlen, "reward: step position %d outside [0, %d)", step_pos[s], n);
    }
    seq_job j = {ids, n, rm->kind == REWARD_PRM ? step_pos : &last, rm->kind == REWARD_PRM ? n_steps : 1, out, 0};
    int rc = run_pack(rm, &j, 1, NULL, err, errlen);
    if (rc) reward_result_free(out, 1);
    return rc;
}

void reward_set_max_step(reward_model *rm, int n) { rm->max_step = n < 1 ? 1 : n; }
void reward_set_prefix_sharing(reward_model *rm, int on) { rm->share_prefix = on != 0; }
int64_t reward_tokens_run(const reward_model *rm) { return rm->tokens_run; }

void reward_result_free(reward_result *r, int n) {
    if (!r) return;
    for (int i = 0; i < n; i++) { free(r[i].steps); r[i].steps = NULL; r[i].n_steps = 0; }
}

int reward_score_batch(reward_model *rm, const reward_item *items, int n, reward_result *out, char *err, size_t errlen) {
    if (n <= 0) return 0;
    memset(out, 0, sizeof *out * (size_t)n);
    for (int i = 0; i < n; i++) out[i].reward = NAN;
    seq_job *jobs = xcalloc((size_t)n, sizeof *jobs);
    int rc = 0;
    int64_t t0 = util_now_ns(), ntok = 0;
    for (int i = 0; i < n; i++) {
        int32_t *ids;
        int *pos;
        if (reward_tokenize(rm, items[i].prompt, items[i].response, &ids, &jobs[i].n, &pos, &jobs[i].n_steps, err, errlen) != 0) {
            rc = -1;
            goto done;
        }
        jobs[i].ids = ids;
        jobs[i].pos = pos;
        jobs[i].out = &out[i];
        ntok += jobs[i].n;
    }
    /* groups of consecutive items with the same prompt (a problem's samples) share its prefill */
    for (int i = 0; i < n;) {
        int g = 1;
        const char *pi = items[i].prompt ? items[i].prompt : "";
        while (i + g < n && !strcmp(pi, items[i + g].prompt ? items[i + g].prompt : "")) g++;
        if (run_group(rm, jobs + i, g, err, errlen) != 0) { rc = -1; goto done; }
        i += g;
    }
    LOG_DEBUG("reward: %d samples, %lld tokens in %.3fs", n, (long long)ntok, (util_now_ns() - t0) / 1e9);
done:
    for (int i = 0; i < n; i++) { free((void *)jobs[i].ids); free((void *)jobs[i].pos); }
    free(jobs);
    if (rc) reward_result_free(out, n);
    return rc;
}

/* ------------------------------------------------------------------ cache */

struct reward_cache {
    reward_model *rm;
    char *key;       /* the seven spec strings, NUL-separated */
    size_t key_len;
    int loads;
};

reward_cache *reward_cache_new(void) { return xcalloc(1, sizeof(reward_cache)); }

void reward_cache_destroy(reward_cache **c) {
    if (!c || !*c) return;
    reward_destroy(&(*c)->rm);
    free((*c)->key);
    free(*c);
    *c = NULL;
}

reward_model *reward_cache_get(reward_cache *c, const reward_spec *s, char *err, size_t errlen) {
    util_buf k;
    util_buf_init(&k);
    const char *f[7] = {s->model, s->kind, s->device, s->prm_token, s->prm_separator, s->prm_aggregate,
                        s->prm_bad_token};
    for (int i = 0; i < 7; i++) {
        const char *v = f[i] ? f[i] : "";
        util_buf_append(&k, v, strlen(v) + 1);
    }
    if (c->rm && c->key_len == k.len && memcmp(c->key, k.data, k.len) == 0) {
        util_buf_free(&k);
        return c->rm;
    }
    reward_destroy(&c->rm);
    free(c->key);
    c->key = NULL;
    c->key_len = 0;
    if (reward_load(s, &c->rm, err, errlen) != 0) { util_buf_free(&k); return NULL; }
    c->loads++;
    c->key_len = k.len;
    c->key = (char *)k.data; /* ownership moves */
    return c->rm;
}

int reward_cache_loads(const reward_cache *c) { return c->loads; }
