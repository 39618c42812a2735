/* tools/tokenize_main.c — bin/tokenize: encode text (or decode ids) with any supported tokenizer.
 *
 *   bin/tokenize --tokenizer PATH (--text TEXT | --text-file F) [--ids | --json] [--bos] [--special]
 *   bin/tokenize --tokenizer PATH --decode 1,2,3 [--json]
 *
 * Default output: one line per token, "id<TAB>piece" with the piece escaped (\n \t \r \\ and
 * \xHH for control bytes and invalid UTF-8). --ids prints the ids space-separated on one line;
 * --json prints {"ids": [...], "pieces": [...]} (pieces as JSON strings; bytes that are not
 * valid UTF-8 as U+FFFD) or, with --decode, {"text": ...}.
 * Exit status 0 on success, 2 on bad usage, 1 on a load/encode error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "workers/model/tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: tokenize --tokenizer PATH (--text TEXT | --text-file F | --decode IDS) [options]\n"
            "  --tokenizer PATH  tokenizer.json, tiktoken tokenizer.model, llama2.c tokenizer.bin, a GGUF\n"
            "                    vocabulary, or a model directory (required)\n"
            "  --text TEXT       text to encode\n"
            "  --text-file F     encode the bytes of file F (any bytes; no newline is stripped)\n"
            "  --decode IDS      decode comma- or space-separated ids and print the text\n"
            "  --ids             print ids space-separated on one line (default: \"id<TAB>piece\" lines)\n"
            "  --json            print {\"ids\": [...], \"pieces\": [...]} (or {\"text\": ...} with --decode)\n"
            "  --bos             prepend the BOS token (default: off)\n"
            "  --special         recognise special-token text such as <|eot_id|> (default: off)\n"
            "  --info            print the tokenizer's description, vocab size, BOS/EOS to stderr\n"
            "  --help            this text\n");
}

/* Length of a valid UTF-8 sequence at s (2..4), or 0. */
static size_t utf8_valid(const unsigned char *s, size_t n) {
    size_t l;
    uint32_t cp;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) { l = 2; cp = s[0] & 0x1F; }
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) { l = 3; cp = s[0] & 0x0F; }
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) { l = 4; cp = s[0] & 0x07; }
    else return 0;
    if (l > n) return 0;
    for (size_t k = 1; k < l; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3F);
    }
    if ((l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return l;
}

static void print_escaped(const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c >= 0x20 && c < 0x7F) putchar(c);
        else if (c >= 0x80) {
            size_t l = utf8_valid(s + i, n - i);
            if (l) {
                fwrite(s + i, 1, l, stdout);
                i += l;
                continue;
            }
            printf("\\x%02X", c);
        } else printf("\\x%02X", c);
        i++;
    }
}

/* NUL-terminated copy with invalid UTF-8 bytes and NULs replaced by U+FFFD (JSON needs text). */
static char *valid_copy(const char *p, size_t n) {
    util_buf b;
    util_buf_init(&b);
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n;) {
        size_t l = s[i] >= 0x80 ? utf8_valid(s + i, n - i) : (s[i] ? 1 : 0);
        if (l) util_buf_append(&b, s + i, l), i += l;
        else util_buf_append(&b, "\xEF\xBF\xBD", 3), i++;
    }
    util_buf_append(&b, "", 0);
    return b.data;
}

int main(int argc, char **argv) {
    const char *path = NULL, *text = NULL, *text_file = NULL, *decode = NULL;
    int want_ids = 0, want_json = 0, bos = 0, special = 0, info = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--tokenizer") && has_val) path = argv[++i];
        else if (!strcmp(a, "--text") && has_val) text = argv[++i];
        else if (!strcmp(a, "--text-file") && has_val) text_file = argv[++i];
        else if (!strcmp(a, "--decode") && has_val) decode = argv[++i];
        else if (!strcmp(a, "--ids")) want_ids = 1;
        else if (!strcmp(a, "--json")) want_json = 1;
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--special")) special = 1;
        else if (!strcmp(a, "--info")) info = 1;
        else {
            fprintf(stderr, "tokenize: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) { fprintf(stderr, "tokenize: --tokenizer PATH is required\n"); usage(stderr); return 2; }
    if (want_ids && want_json) { fprintf(stderr, "tokenize: --ids and --json exclude each other\n"); return 2; }
    if ((text != NULL) + (text_file != NULL) + (decode != NULL) != 1) {
        fprintf(stderr, "tokenize: give exactly one of --text, --text-file, --decode\n");
        usage(stderr);
        return 2;
    }
    char err[1024];
    tok *t = NULL;
    if (tok_load(path, &t, err, sizeof err) != 0) {
        fprintf(stderr, "tokenize: %s\n", err);
        return 1;
    }
    if (info)
        fprintf(stderr, "tokenize: %s; vocab %d, bos %d, eos %d\n", tok_describe(t), tok_vocab_size(t), tok_bos(t),
                tok_eos(t));
    int rc = 0;
    if (decode) {
        int32_t *ids = NULL;
        int n = 0;
        if (tok_ids_parse(decode, &ids, &n) != 0) {
            fprintf(stderr, "tokenize: --decode: expected non-negative integers separated by ',' or ' '\n");
            free(ids);
            tok_destroy(&t);
            return 2;
        }
        util_buf out;
        util_buf_init(&out);
        int drc = tok_decode(t, ids, n, &out);
        if (drc != 0) {
            fprintf(stderr, "tokenize: --decode: %s (vocab size %d)\n", tok_strerror(drc), tok_vocab_size(t));
            rc = 1;
        } else if (want_json) {
            char *v = valid_copy(out.data ? out.data : "", out.len);
            json_t *o = json_pack("{s:s}", "text", v);
            free(v);
            char *js = json_dumps(o, JSON_COMPACT);
            puts(js ? js : "{}");
            free(js);
            json_decref(o);
        } else {
            fwrite(out.data ? out.data : "", 1, out.len, stdout);
            putchar('\n');
        }
        util_buf_free(&out);
        free(ids);
        tok_destroy(&t);
        return rc;
    }
    size_t len = 0;
    char *owned = NULL;
    if (text_file) {
        owned = util_read_file(text_file, &len, err, sizeof err);
        if (!owned) {
            fprintf(stderr, "tokenize: --text-file: %s\n", err);
            tok_destroy(&t);
            return 1;
        }
        text = owned;
    } else {
        len = strlen(text);
    }
    int32_t *ids = NULL;
    int n = 0;
    int erc = tok_encode(t, text, len, bos, special, &ids, &n);
    if (erc != 0) {
        fprintf(stderr, "tokenize: encode: %s\n", tok_strerror(erc));
        rc = 1;
    } else if (want_json) {
        json_t *o = json_object(), *ja = json_array(), *jp = json_array();
        for (int i = 0; i < n; i++) {
            size_t pl;
            const char *p = tok_piece(t, ids[i], &pl);
            char *v = valid_copy(p, pl);
            json_array_append_new(ja, json_integer(ids[i]));
            json_array_append_new(jp, json_string(v));
            free(v);
        }
        json_object_set_new(o, "ids", ja);
        json_object_set_new(o, "pieces", jp);
        char *js = json_dumps(o, JSON_COMPACT);
        puts(js ? js : "{}");
        free(js);
        json_decref(o);
    } else if (want_ids) {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        for (int i = 0; i < n; i++) {
            size_t pl;
            const char *p = tok_piece(t, ids[i], &pl);
            printf("%d\t", ids[i]);
            print_escaped(p, pl);
            putchar('\n');
        }
    }
    free(ids);
    free(owned);
    tok_destroy(&t);
    return rc;
}
