/* tools/jobctl_csv.c — `jobctl export JOB --db DIR --format csv`: one RFC 4180 row per stored
 * generation, with its problem's metadata and its score, streamed from one read transaction
 * (a running broker is fine: LMDB readers see a consistent snapshot).
 *
 * RFC 4180: records end with CRLF; a field containing a comma, a double quote, CR or LF is
 * enclosed in double quotes and its quotes are doubled; the first record is the header. Fields
 * that are absent (not yet scored, no reward, unknown time) are empty. Invalid UTF-8 in texts is
 * replaced by U+FFFD so that the file is valid UTF-8 for spreadsheet tools.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tools/jobctl_report.h"

static const char csv_usage[] =
    "usage: jobctl export JOB --db DIR --format csv [--no-text]\n"
    "Writes one CSV row per generation to stdout (RFC 4180: CRLF records, quoted fields):\n"
    "  problem,sample,id,subject,level,answer,correct,extracted,canonical,reward,tokens,time_s,finish,text\n"
    "correct is 1/0, empty while the sample is not scored; reward empty without a reward model.\n"
    "  --db DIR     the broker's store directory (default $THINKFAST_DB); read-only\n"
    "  --format F   csv (jsonl is `jobctl export --format jsonl`)\n"
    "  --no-text    leave the text column out (much smaller files)\n";

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

void jobctl_csv_field(util_buf *b, const char *s, size_t n) {
    int quote = 0;
    for (size_t i = 0; i < n && !quote; i++) quote = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (quote) util_buf_append(b, "\"", 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] == '"') { util_buf_append(b, "\"\"", 2); i++; continue; }
        if (u[i] == 0) { util_buf_append(b, "\xEF\xBF\xBD", 3); i++; continue; }   /* NUL: not text */
        size_t l = utf8_len(u + i, n - i);
        if (l == 0) { util_buf_append(b, "\xEF\xBF\xBD", 3); i++; continue; }
        util_buf_append(b, u + i, l);
        i += l;
    }
    if (quote) util_buf_append(b, "\"", 1);
}

typedef struct csv_problem { char *id, *subject, *answer; int level; } csv_problem;

/* Scores are read in a first pass into compact arrays (a string arena, not one decoded record
 * per sample: store_score_get keeps every record it decodes until the transaction ends, which at
 * 500 problems x 1024 samples costs hundreds of MB). */
typedef struct csv_ctx {
    store_txn *txn;
    FILE *out;
    util_buf row;
    csv_problem *probs;
    uint32_t n_probs, n_samples;
    unsigned char *have, *correct;   /* [p * n_samples + s] */
    size_t *ext_off, *can_off;       /* offsets into arena */
    double *reward;
    util_buf arena;
    int no_text;
    uint64_t rows;
    int io_error;
} csv_ctx;

static int csv_score_cb(uint64_t job, const store_score *sc, void *vctx) {
    csv_ctx *c = vctx;
    (void)job;
    if (sc->p >= c->n_probs || sc->s >= c->n_samples) return 0;
    size_t i = (size_t)sc->p * c->n_samples + sc->s;
    c->have[i] = 1;
    c->correct[i] = sc->correct ? 1 : 0;
    c->reward[i] = sc->reward;
    c->ext_off[i] = c->arena.len;
    util_buf_append(&c->arena, sc->extracted ? sc->extracted : "", (sc->extracted ? strlen(sc->extracted) : 0) + 1);
    c->can_off[i] = c->arena.len;
    util_buf_append(&c->arena, sc->canonical ? sc->canonical : "", (sc->canonical ? strlen(sc->canonical) : 0) + 1);
    return 0;
}

static int csv_problem_cb(const store_problem *p, void *vctx) {
    csv_ctx *c = vctx;
    if (p->p >= c->n_probs) return 0;
    csv_problem *q = &c->probs[p->p];
    free(q->id); free(q->subject); free(q->answer);
    q->id = xstrdup(p->id ? p->id : "");
    q->subject = xstrdup(p->subject ? p->subject : "");
    q->answer = xstrdup(p->answer ? p->answer : "");
    q->level = p->level;
    return 0;
}

static void field_str(util_buf *b, const char *s) { jobctl_csv_field(b, s ? s : "", s ? strlen(s) : 0); }

static int csv_gen_cb(uint64_t job, const store_generation *g, void *vctx) {
    csv_ctx *c = vctx;
    util_buf *b = &c->row;
    b->len = 0;
    const csv_problem *q = g->p < c->n_probs ? &c->probs[g->p] : NULL;
    (void)job;
    size_t si = (size_t)g->p * c->n_samples + g->s;
    int have = q && g->s < c->n_samples && c->have[si];
    util_buf_printf(b, "%u,%u,", g->p, g->s);
    field_str(b, q ? q->id : NULL);
    util_buf_append(b, ",", 1);
    field_str(b, q ? q->subject : NULL);
    util_buf_append(b, ",", 1);
    if (q && q->level > 0) util_buf_printf(b, "%d", q->level);
    util_buf_append(b, ",", 1);
    field_str(b, q ? q->answer : NULL);
    util_buf_append(b, ",", 1);
    if (have) util_buf_printf(b, "%d", c->correct[si]);
    util_buf_append(b, ",", 1);
    if (have) field_str(b, c->arena.data + c->ext_off[si]);
    util_buf_append(b, ",", 1);
    if (have) field_str(b, c->arena.data + c->can_off[si]);
    util_buf_append(b, ",", 1);
    if (have && isfinite(c->reward[si])) util_buf_printf(b, "%.9g", c->reward[si]);
    util_buf_printf(b, ",%lld,", (long long)g->tokens);
    if (isfinite(g->time_s)) util_buf_printf(b, "%.9g", g->time_s);
    util_buf_append(b, ",", 1);
    field_str(b, g->finish);
    if (!c->no_text) {
        util_buf_append(b, ",", 1);
        jobctl_csv_field(b, g->text ? g->text : "", g->text ? g->text_len : 0);
    }
    util_buf_append(b, "\r\n", 2);
    if (fwrite(b->data, 1, b->len, c->out) != b->len) { c->io_error = 1; return 1; }
    c->rows++;
    return 0;
}

int jobctl_export_csv(const jobctl_opts *o, int argc, char **argv) {
    (void)o;
    const char *db, *job, *format = "csv";
    int no_text = 0;
    const jobctl_flag flags[] = {{"--no-text", &no_text, NULL}, {"--format", NULL, &format}, {NULL, NULL, NULL}};
    int prc = jobctl_parse_job_db(argc, argv, csv_usage, flags, &job, &db);
    if (prc) return prc == 1 ? 0 : prc;
    if (strcmp(format, "csv") != 0) { fprintf(stderr, "jobctl %s: --format: this is the csv exporter, got \"%s\"\n", argv[0], format); return 2; }
    store *st;
    if (jobctl_open_store_ro(db, argv[0], &st)) return 1;
    char err[1024];
    csv_ctx c = {.out = stdout, .no_text = no_text};
    util_buf_init(&c.row);
    util_buf_init(&c.arena);
    store_job j;
    memset(&j, 0, sizeof j);
    int rc = 1;
    if (store_txn_begin(st, 0, &c.txn, err, sizeof err) != 0) { fprintf(stderr, "jobctl %s: %s\n", argv[0], err); goto out; }
    int src = store_job_find_txn(c.txn, job, &j);
    if (src != STORE_OK) {
        fprintf(stderr, "jobctl %s: %s: no job \"%s\" (%s)\n", argv[0], db, job, store_strerror(src));
        goto out;
    }
    if ((uint64_t)j.n_problems * j.n_samples > ((uint64_t)1 << 32)) {
        fprintf(stderr, "jobctl %s: job %s: implausible shape %u problems x %u samples\n", argv[0], job, j.n_problems, j.n_samples);
        goto out;
    }
    c.n_probs = j.n_problems;
    c.n_samples = j.n_samples;
    size_t total = (size_t)c.n_probs * c.n_samples, nt = total ? total : 1;
    c.probs = xcalloc(c.n_probs ? c.n_probs : 1, sizeof *c.probs);
    c.have = xcalloc(nt, 1);
    c.correct = xcalloc(nt, 1);
    c.ext_off = xcalloc(nt, sizeof(size_t));
    c.can_off = xcalloc(nt, sizeof(size_t));
    c.reward = xcalloc(nt, sizeof(double));
    src = store_problems_each_txn(c.txn, j.id, csv_problem_cb, &c);
    if (src == STORE_OK) src = store_scores_each_txn(c.txn, j.id, csv_score_cb, &c);
    if (src == STORE_OK) {
        static const char header[] = "problem,sample,id,subject,level,answer,correct,extracted,canonical,reward,tokens,time_s,finish";
        if (fprintf(stdout, "%s%s\r\n", header, no_text ? "" : ",text") < 0) c.io_error = 1;
        else src = store_generations_each_txn(c.txn, j.id, csv_gen_cb, &c);
    }
    if (src < 0) { fprintf(stderr, "jobctl %s: reading the store: %s (%s)\n", argv[0], store_strerror(src), store_last_error(st)); goto out; }
    if (c.io_error || fflush(stdout) != 0) { fprintf(stderr, "jobctl %s: write error on stdout\n", argv[0]); goto out; }
    rc = 0;
out:
    if (c.txn) store_txn_abort(&c.txn);
    for (uint32_t i = 0; c.probs && i < c.n_probs; i++) { free(c.probs[i].id); free(c.probs[i].subject); free(c.probs[i].answer); }
    free(c.probs);
    free(c.have); free(c.correct); free(c.ext_off); free(c.can_off); free(c.reward);
    util_buf_free(&c.arena);
    util_buf_free(&c.row);
    store_job_free(&j);
    store_close(&st);
    return rc;
}
