/* tools/convert_main.c — bin/convert: checkpoint conversion and inspection.
 *
 *   bin/convert llama2c CHECKPOINT TOKENIZER OUTDIR   llama2.c v0 checkpoint -> HF Llama dir
 *   bin/convert info PATH [--json]                      config summary + tensor table of a model
 *                                                       dir or a .safetensors file
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "workers/model/config.h"
#include "workers/model/llama2c.h"
#include "workers/model/safetensors.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: bin/convert llama2c CHECKPOINT TOKENIZER OUTDIR\n"
            "       bin/convert info PATH [--json]\n"
            "\n"
            "llama2c   converts a llama2.c legacy (version 0) checkpoint and its tokenizer.bin into a\n"
            "          Hugging Face Llama directory: OUTDIR/config.json, OUTDIR/model.safetensors (F32;\n"
            "          q/k rows permuted from llama2.c's interleaved RoPE to HF rotate_half),\n"
            "          OUTDIR/tokenizer.bin (copied). OUTDIR is created if missing.\n"
            "info      prints the config summary (if PATH is a model dir) and every tensor:\n"
            "          name, dtype, shape, file. --json prints one JSON object instead.\n"
            "  -h, --help   this text\n");
}

static int cmd_info(const char *path, int as_json) {
    char err[1024];
    struct stat sb;
    model_config c;
    int have_cfg = 0;
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", path);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(cpath, &sb) == 0) {
        if (model_config_load(path, &c, err, sizeof err) != 0) {
            fprintf(stderr, "convert: %s\n", err);
            return 1;
        }
        have_cfg = 1;
    }
    st_file *f = NULL;
    if (st_open(path, &f, err, sizeof err) != 0) {
        fprintf(stderr, "convert: %s\n", err);
        return 1;
    }
    char desc[512] = "";
    if (have_cfg) model_config_describe(&c, desc, sizeof desc);
    long long total = 0;
    if (as_json) {
        printf("{\"config\": \"%s\", \"tensors\": [", desc);
    } else if (have_cfg) {
        printf("%s: %s\n", c.arch_name, desc);
    }
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        total += st_numel(t);
        char shape[160];
        size_t o = 0;
        shape[0] = 0;
        for (int d = 0; d < t->ndim && o < sizeof shape; d++)
            o += (size_t)snprintf(shape + o, sizeof shape - o, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        if (as_json)
            printf("%s{\"name\": \"%s\", \"dtype\": \"%s\", \"shape\": [%s], \"file\": \"%s\"}", i ? ", " : "", t->name,
                   st_dtype_name(t->dtype), shape, t->file);
        else
            printf("%-56s %-4s [%s]  %s\n", t->name, st_dtype_name(t->dtype), shape, t->file);
    }
    if (as_json) printf("], \"count\": %d, \"parameters\": %lld}\n", st_count(f), total);
    else printf("%d tensors, %lld parameters\n", st_count(f), total);
    st_close(&f);
    return 0;
}

int main(int argc, char **argv) {
    log_set_name("convert");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) { usage(stdout); return 0; }
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "llama2c")) {
        if (argc != 5) {
            fprintf(stderr, "convert: llama2c needs CHECKPOINT TOKENIZER OUTDIR (got %d arguments)\n", argc - 2);
            usage(stderr);
            return 2;
        }
        char err[1024], summary[256];
        LOG_INFO("converting %s + %s -> %s", argv[2], argv[3], argv[4]);
        if (llama2c_convert(argv[2], argv[3], argv[4], summary, sizeof summary, err, sizeof err) != 0) {
            fprintf(stderr, "convert: %s\n", err);
            return 1;
        }
        /* Reopen what we wrote: the output must load with our own readers. */
        model_config c;
        st_file *f = NULL;
        if (model_config_load(argv[4], &c, err, sizeof err) != 0 || st_open(argv[4], &f, err, sizeof err) != 0) {
            fprintf(stderr, "convert: wrote %s but cannot reload it: %s\n", argv[4], err);
            return 1;
        }
        printf("converted %s (%s): %d tensors -> %s/{config.json, model.safetensors, tokenizer.bin}\n", argv[2],
               summary, st_count(f), argv[4]);
        st_close(&f);
        return 0;
    }
    if (!strcmp(argv[1], "info")) {
        int as_json = 0;
        const char *path = NULL;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--json")) as_json = 1;
            else if (!path) path = argv[i];
            else { fprintf(stderr, "convert: info: unexpected argument %s\n", argv[i]); return 2; }
        }
        if (!path) { fprintf(stderr, "convert: info needs PATH\n"); return 2; }
        return cmd_info(path, as_json);
    }
    fprintf(stderr, "convert: unknown command \"%s\" (llama2c, info)\n", argv[1]);
    usage(stderr);
    return 2;
}
