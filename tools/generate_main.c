/* tools/generate_main.c — bin/generate: one prompt through the engine, like llama2.c's run.
 *
 *   bin/generate --model DIR [--prompt TEXT | --prompt-ids 1,2,3] [--max-tokens N]
 *                [--temperature T] [--top-p P] [--top-k K] [--min-p M] [--seed S]
 *                [--device cpu|cuda|cuda:N|auto] [--print-ids] [--dump-logits FILE] [--no-bos]
 *
 * Without a prompt the model starts from BOS alone. The generated text goes to stdout (or,
 * with --print-ids, the generated ids space-separated on one line); the resolved configuration
 * and the speed go to stderr. --dump-logits writes FILE as safetensors with one F32 tensor
 * `logits` [prompt_len, vocab]: the logits of every prompt position (then exits unless
 * --max-tokens is given explicitly). Exit status: 0 ok, 2 bad usage, 1 runtime error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "kernels/ops.h"
#include "workers/model/engine.h"
#include "workers/model/model.h"
#include "workers/model/safetensors.h"
#include "workers/model/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: generate --model DIR [options]\n"
            "  --model DIR         HF model directory: config.json, *.safetensors, tokenizer (required)\n"
            "  --prompt TEXT       prompt text (special-token text such as <|eot_id|> is recognised)\n"
            "  --prompt-ids IDS    prompt as comma- or space-separated ids (no tokenizer needed)\n"
            "  --max-tokens N      tokens to generate at most (default 256)\n"
            "  --temperature T     0 = greedy (default 1.0)\n"
            "  --top-p P           nucleus sampling, 1 = off (default 0.9, as llama2.c run)\n"
            "  --top-k K           0 = off (default 0)\n"
            "  --min-p M           0 = off (default 0)\n"
            "  --seed S            sampling seed (default 1234)\n"
            "  --device D          cpu | cuda | cuda:N | auto (default auto: CUDA if present)\n"
            "  --print-ids         print the generated ids space-separated on one line instead of text\n"
            "  --dump-logits FILE  write the logits of every prompt position to FILE (safetensors,\n"
            "                      tensor `logits` [prompt_len, vocab] F32); generation is skipped\n"
            "                      unless --max-tokens is also given\n"
            "  --no-bos            do not prepend BOS to --prompt text\n"
            "  --help              this text\n");
}

/* streams the text as it is generated (text mode) */
static int on_token(void *ud, int request, uint32_t sample, int32_t id, const char *piece, size_t len) {
    if (len) fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

typedef struct gen_out { int32_t *ids; int n; char *text; int tokens; const char *finish; double time_s; } gen_out;
static int on_result(void *ud, const eng_result *r) {
    gen_out *g = ud;
    g->ids = xmalloc(sizeof(int32_t) * (r->n_ids + 1));
    memcpy(g->ids, r->ids, sizeof(int32_t) * r->n_ids);
    g->n = r->n_ids;
    g->text = strndup(r->text, r->text_len);
    g->tokens = r->tokens;
    g->finish = r->finish;
    g->time_s = r->time_s;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = NULL, *prompt_ids = NULL, *device = "auto", *dump = NULL;
    int max_tokens = 256, top_k = 0, print_ids = 0, no_bos = 0, max_tokens_given = 0;
    double temperature = 1.0, top_p = 0.9, min_p = 0.0;
    unsigned long long seed = 1234;
    log_set_name("generate");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV() do { if (!v) { fprintf(stderr, "generate: %s needs a value\n", a); return 2; } i++; } while (0)
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--model")) { NEEDV(); model_dir = v; }
        else if (!strcmp(a, "--prompt")) { NEEDV(); prompt = v; }
        else if (!strcmp(a, "--prompt-ids")) { NEEDV(); prompt_ids = v; }
        else if (!strcmp(a, "--device")) { NEEDV(); device = v; }
        else if (!strcmp(a, "--dump-logits")) { NEEDV(); dump = v; }
        else if (!strcmp(a, "--print-ids")) print_ids = 1;
        else if (!strcmp(a, "--no-bos")) no_bos = 1;
        else if (!strcmp(a, "--max-tokens")) {
            NEEDV(); long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1 << 24) { fprintf(stderr, "generate: --max-tokens: expected an integer >= 0, got \"%s\"\n", v); return 2; }
            max_tokens = (int)x; max_tokens_given = 1;
        } else if (!strcmp(a, "--top-k")) {
            NEEDV(); long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1 << 24) { fprintf(stderr, "generate: --top-k: expected an integer >= 0, got \"%s\"\n", v); return 2; }
            top_k = (int)x;
        } else if (!strcmp(a, "--temperature") || !strcmp(a, "--top-p") || !strcmp(a, "--min-p")) {
            NEEDV(); double x = strtod(v, &end);
            if (*end || !(x >= 0) || x > 1e6) { fprintf(stderr, "generate: %s: expected a number >= 0, got \"%s\"\n", a, v); return 2; }
            if (!strcmp(a, "--temperature")) temperature = x;
            else if (!strcmp(a, "--top-p")) { if (x > 1) { fprintf(stderr, "generate: --top-p must be in [0, 1]\n"); return 2; } top_p = x; }
            else { if (x > 1) { fprintf(stderr, "generate: --min-p must be in [0, 1]\n"); return 2; } min_p = x; }
        } else if (!strcmp(a, "--seed")) {
            NEEDV(); errno = 0; unsigned long long x = strtoull(v, &end, 10);
            if (*end || errno || v[0] == '-') { fprintf(stderr, "generate: --seed: expected an unsigned integer, got \"%s\"\n", v); return 2; }
            seed = x;
        } else { fprintf(stderr, "generate: unknown option \"%s\"\n", a); usage(stderr); return 2; }
#undef NEEDV
    }
    if (!model_dir) { fprintf(stderr, "generate: --model DIR is required\n"); usage(stderr); return 2; }
    if (prompt && prompt_ids) { fprintf(stderr, "generate: give --prompt or --prompt-ids, not both\n"); return 2; }

    char err[1024];
    op_backend *be = op_backend_new(device, err, sizeof err);
    if (!be) { fprintf(stderr, "generate: %s\n", err); return 1; }
    model *m = NULL;
    if (model_load(model_dir, be, &m, err, sizeof err)) { fprintf(stderr, "generate: %s\n", err); be->destroy(&be); return 1; }
    const model_config *c = model_cfg(m);
    tok *tk = NULL;
    char tok_err[1024] = "";
    if (tok_load(model_dir, &tk, tok_err, sizeof tok_err) != 0) tk = NULL;
    int rc = 1;
    int32_t *ids = NULL;
    int n = 0;
    engine *e = NULL;
    gen_out g = {0};
    if (prompt_ids) {
        if (tok_ids_parse(prompt_ids, &ids, &n) != 0) { fprintf(stderr, "generate: --prompt-ids: expected comma-separated ids, got \"%s\"\n", prompt_ids); rc = 2; goto out; }
    } else if (prompt) {
        if (!tk) { fprintf(stderr, "generate: --prompt needs a tokenizer in %s: %s\n", model_dir, tok_err); goto out; }
        if (tok_encode(tk, prompt, strlen(prompt), !no_bos && tok_bos(tk) >= 0, 1, &ids, &n) != 0) { fprintf(stderr, "generate: cannot tokenize the prompt\n"); goto out; }
    } else {
        int32_t bos = tk ? tok_bos(tk) : c->bos_id;
        if (bos < 0) bos = c->bos_id;
        if (bos < 0) { fprintf(stderr, "generate: no prompt given and the model has no BOS id\n"); rc = 2; goto out; }
        ids = xmalloc(sizeof(int32_t));
        ids[0] = bos;
        n = 1;
    }
    if (n < 1) { fprintf(stderr, "generate: empty prompt (use --prompt-ids or drop --no-bos)\n"); rc = 2; goto out; }
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size) { fprintf(stderr, "generate: prompt id %d at index %d outside the vocabulary [0, %d)\n", ids[i], i, c->vocab_size); rc = 2; goto out; }
    char desc[256];
    model_config_describe(c, desc, sizeof desc);
    fprintf(stderr, "generate: %s on %s (%s); prompt %d tokens; max_tokens %d temperature %g top_p %g top_k %d min_p %g seed %llu\n",
            model_dir, be->name, desc, n, max_tokens, temperature, top_p, top_k, min_p, seed);
    eng_config ec = {1, 512, 16, 1, 0};
    if (eng_new(m, tk, &ec, &e, err, sizeof err)) { fprintf(stderr, "generate: %s\n", err); goto out; }
    if (dump) {
        size_t V = (size_t)c->vocab_size;
        float *lg = malloc(sizeof(float) * V * n);
        if (!lg) { fprintf(stderr, "generate: out of memory for %d x %zu logits\n", n, V); goto out; }
        if (eng_prompt_logits(e, ids, n, lg, err, sizeof err)) { fprintf(stderr, "generate: %s\n", err); free(lg); goto out; }
        st_writer *w = st_writer_new(dump);
        int64_t shape[2] = {n, (int64_t)V};
        st_writer_add(w, "logits", OP_F32, 2, shape, lg);
        free(lg);
        if (st_writer_finish(&w, err, sizeof err)) { fprintf(stderr, "generate: %s\n", err); goto out; }
        fprintf(stderr, "generate: wrote logits [%d, %zu] to %s\n", n, V, dump);
        if (!max_tokens_given) { rc = 0; goto out; }
    }
    if (max_tokens == 0) { rc = 0; goto out; }
    eng_request r;
    memset(&r, 0, sizeof r);
    r.prompt = ids; r.n_prompt = n; r.n_samples = 1; r.temperature = (float)temperature; r.top_p = (float)top_p;
    r.top_k = top_k; r.min_p = (float)min_p; r.seed = seed; r.max_tokens = max_tokens;
    int stream = !print_ids && tk;
    if (stream) eng_set_token_callback(e, on_token, NULL);
    if (eng_run(e, &r, 1, on_result, &g, err, sizeof err)) { fprintf(stderr, "generate: %s\n", err); goto out; }
    if (!stream) {
        for (int i = 0; i < g.n; i++) printf("%s%d", i ? " " : "", g.ids[i]);
    }
    printf("\n");
    fflush(stdout);
    eng_stats st;
    eng_get_stats(e, &st);
    fprintf(stderr, "generate: %d tokens (%s); prefill %.1f tok/s, decode %.1f tok/s\n", g.tokens, g.finish,
            st.prefill_s > 0 ? st.prefill_tokens / st.prefill_s : 0.0, st.decode_s > 0 ? st.decode_tokens / st.decode_s : 0.0);
    rc = 0;
out:
    free(g.ids);
    free(g.text);
    free(ids);
    eng_destroy(&e);
    tok_destroy(&tk);
    model_destroy(&m);
    be->destroy(&be);
    return rc;
}
