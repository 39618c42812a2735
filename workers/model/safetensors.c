/* workers/model/safetensors.c — safetensors reader (mmap + validation, single or sharded) and
 * writer. See safetensors.h for the format and the contract.
 *
 * Validation mirrors the reference Rust implementation: the header is a JSON object whose
 * tensors' data_offsets must tile the data area exactly (no holes, no overlaps, nothing after
 * the last tensor), and every shape x dtype size must equal its span. Everything read from the
 * file is untrusted: lengths are bounded and products are overflow-checked before use.
 */
#include "workers/model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

typedef struct st_map {
    char *path;      /* full path (owned) */
    const char *base_name; /* points into path */
    void *base;      /* mmap base (NULL for an empty mapping) */
    size_t size;     /* bytes */
} st_map;

struct st_file {
    st_map *maps;
    int n_maps;
    st_tensor *tensors; /* sorted by name */
    int n_tensors;
};

/* ---------------------------------------------------------------- helpers */

static size_t dtype_size(op_dtype t) { return t == OP_F32 ? 4 : 2; }

const char *st_strerror(int code) {
    switch (code) {
    case ST_OK: return "ok";
    case ST_EIO: return "I/O error";
    case ST_EFORMAT: return "malformed safetensors file";
    case ST_EDTYPE: return "unsupported dtype";
    case ST_ENOTFOUND: return "no checkpoint found";
    default: return "unknown error";
    }
}

int st_dtype_parse(const char *name, op_dtype *out) {
    if (!strcmp(name, "F32")) { *out = OP_F32; return 0; }
    if (!strcmp(name, "BF16")) { *out = OP_BF16; return 0; }
    if (!strcmp(name, "F16")) { *out = OP_F16; return 0; }
    return -1;
}

const char *st_dtype_name(op_dtype t) {
    switch (t) {
    case OP_F32: return "F32";
    case OP_BF16: return "BF16";
    case OP_F16: return "F16";
    }
    return "?";
}

static const char *path_base(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int tensor_cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* ---------------------------------------------------------------- conversions */

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; overflow -> inf */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: man * 2^-24 (exact in f32) */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {
        /* result is subnormal (or zero): value / 2^-24, rounded to nearest even */
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to 0 (2^-25 ties to even 0) */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        int shift = (int)(126 - e); /* 113 - e + 13 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a - 0x38000000u; /* rebias exponent 127 -> 15 (in the f32 bit layout) */
    uint32_t q = r >> 13, rem = r & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

void st_to_f32(float *dst, const void *src, op_dtype src_dtype, size_t n) {
    const unsigned char *s = src;
    if (src_dtype == OP_F32) { memcpy(dst, src, n * 4); return; }
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = src_dtype == OP_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
    }
}

int64_t st_numel(const st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

float *st_tensor_to_f32(const st_tensor *t) {
    size_t n = (size_t)st_numel(t);
    float *out = xmalloc(n ? n * sizeof(float) : 1);
    st_to_f32(out, t->data, t->dtype, n);
    return out;
}

/* ---------------------------------------------------------------- reader */

static void map_free(st_map *m) {
    if (m->base) munmap(m->base, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

static int map_file(const char *path, st_map *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return util_err(err, errlen, "%s: %s", path, strerror(errno)), ST_EIO;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno; close(fd);
        return util_err(err, errlen, "%s: stat: %s", path, strerror(e)), ST_EIO;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return util_err(err, errlen, "%s: not a regular file", path), ST_EIO;
    }
    out->size = (size_t)sb.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno; close(fd);
            return util_err(err, errlen, "%s: mmap: %s", path, strerror(e)), ST_EIO;
        }
        out->base = p;
    }
    close(fd);
    out->path = xstrdup(path);
    out->base_name = path_base(out->path);
    return 0;
}

typedef struct span { uint64_t begin, end; int idx; } span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int json_get_u64(json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    if (i < 0) return -1;
    *out = (uint64_t)i;
    return 0;
}

/* Parses and validates one mapped file, appending its tensors to *tv (grown as needed).
 * Names are strdup'd; data points into the map. */
static int parse_file(st_map *m, st_tensor **tv, int *nt, int *cap, char *err, size_t errlen) {
    const char *fn = m->base_name;
    const unsigned char *b = m->base;
    if (m->size < 8)
        return util_err(err, errlen, "%s: file is %zu bytes, too short for a safetensors header", fn, m->size),
               ST_EFORMAT;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > ST_MAX_HEADER_BYTES)
        return util_err(err, errlen, "%s: header length %llu exceeds the limit of %llu bytes (not a safetensors file?)",
                        fn, (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER_BYTES), ST_EFORMAT;
    if (hlen < 2 || hlen > m->size - 8)
        return util_err(err, errlen, "%s: header length %llu does not fit in the file of %zu bytes (truncated?)", fn,
                        (unsigned long long)hlen, m->size), ST_EFORMAT;
    uint64_t data_size = m->size - 8 - hlen;
    const unsigned char *data = b + 8 + hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)b + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return util_err(err, errlen, "%s: header JSON: line %d column %d: %s", fn, jerr.line, jerr.column, jerr.text),
               ST_EFORMAT;
    int rc = ST_EFORMAT;
    span *spans = NULL;
    int first = *nt;
    if (!json_is_object(root)) {
        util_err(err, errlen, "%s: header JSON is not an object", fn);
        goto fail;
    }
    size_t nkeys = json_object_size(root);
    spans = xmalloc((nkeys ? nkeys : 1) * sizeof *spans);
    int ns = 0;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) { util_err(err, errlen, "%s: __metadata__ is not an object", fn); goto fail; }
            continue;
        }
        if (!*key) { util_err(err, errlen, "%s: tensor with an empty name", fn); goto fail; }
        if (!json_is_object(val)) { util_err(err, errlen, "%s: tensor %s: entry is not an object", fn, key); goto fail; }
        json_t *jd = json_object_get(val, "dtype"), *js = json_object_get(val, "shape"),
               *jo = json_object_get(val, "data_offsets");
        if (!json_is_string(jd)) { util_err(err, errlen, "%s: tensor %s: missing or non-string dtype", fn, key); goto fail; }
        op_dtype dt;
        if (st_dtype_parse(json_string_value(jd), &dt) != 0) {
            util_err(err, errlen, "%s: tensor %s: unsupported dtype %s (supported: F32, BF16, F16)", fn, key,
                     json_string_value(jd));
            rc = ST_EDTYPE;
            goto fail;
        }
        if (!json_is_array(js)) { util_err(err, errlen, "%s: tensor %s: missing or non-array shape", fn, key); goto fail; }
        size_t nd = json_array_size(js);
        if (nd > ST_MAX_DIMS) {
            util_err(err, errlen, "%s: tensor %s: %zu dimensions (at most %d supported)", fn, key, nd, ST_MAX_DIMS);
            goto fail;
        }
        if (!json_is_array(jo) || json_array_size(jo) != 2) {
            util_err(err, errlen, "%s: tensor %s: data_offsets must be an array [begin, end]", fn, key);
            goto fail;
        }
        uint64_t beg, end;
        if (json_get_u64(json_array_get(jo, 0), &beg) || json_get_u64(json_array_get(jo, 1), &end)) {
            util_err(err, errlen, "%s: tensor %s: data_offsets must be non-negative integers", fn, key);
            goto fail;
        }
        if (*nt == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *tv = xrealloc(*tv, (size_t)*cap * sizeof **tv);
        }
        st_tensor *t = &(*tv)[*nt];
        memset(t, 0, sizeof *t);
        t->dtype = dt;
        t->ndim = (int)nd;
        uint64_t numel = 1;
        int overflow = 0;
        for (size_t i = 0; i < nd; i++) {
            uint64_t d;
            if (json_get_u64(json_array_get(js, i), &d)) {
                util_err(err, errlen, "%s: tensor %s: shape[%zu] is not a non-negative integer", fn, key, i);
                goto fail;
            }
            t->shape[i] = (int64_t)d;
            if (d != 0 && numel > UINT64_MAX / 16 / d) overflow = 1;
            else numel *= d;
        }
        if (end < beg) {
            util_err(err, errlen, "%s: tensor %s: data_offsets [%llu, %llu] end before begin", fn, key,
                     (unsigned long long)beg, (unsigned long long)end);
            goto fail;
        }
        if (end > data_size) {
            util_err(err, errlen, "%s: tensor %s: data_offsets [%llu, %llu] beyond the data size %llu (file truncated?)",
                     fn, key, (unsigned long long)beg, (unsigned long long)end, (unsigned long long)data_size);
            goto fail;
        }
        if (overflow || numel * dtype_size(dt) != end - beg) {
            char sh[160];
            size_t o = 0;
            sh[0] = 0;
            for (size_t i = 0; i < nd && o < sizeof sh; i++)
                o += (size_t)snprintf(sh + o, sizeof sh - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
            util_err(err, errlen, "%s: tensor %s: shape [%s] x %s (%zu bytes) does not match data_offsets [%llu, %llu] (%llu bytes)",
                     fn, key, sh, st_dtype_name(dt), dtype_size(dt), (unsigned long long)beg,
                     (unsigned long long)end, (unsigned long long)(end - beg));
            goto fail;
        }
        t->name = xstrdup(key);
        t->data = data + beg;
        t->nbytes = (size_t)(end - beg);
        t->file = m->base_name;
        (*nt)++;
        spans[ns].begin = beg;
        spans[ns].end = end;
        spans[ns].idx = *nt - 1;
        ns++;
    }
    /* The spans must tile [0, data_size) exactly. */
    qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
    uint64_t expect = 0;
    for (int i = 0; i < ns; i++) {
        const char *name = (*tv)[spans[i].idx].name;
        if (spans[i].begin < expect) {
            util_err(err, errlen, "%s: tensor %s: data_offsets [%llu, %llu] overlap tensor %s", fn, name,
                     (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end, (*tv)[spans[i - 1].idx].name);
            goto fail;
        }
        if (spans[i].begin > expect) {
            util_err(err, errlen, "%s: tensor %s: data_offsets [%llu, %llu] leave a hole of %llu bytes before it", fn,
                     name, (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                     (unsigned long long)(spans[i].begin - expect));
            goto fail;
        }
        expect = spans[i].end;
    }
    if (expect != data_size) {
        util_err(err, errlen, "%s: the tensors cover %llu bytes but the data area holds %llu bytes", fn,
                 (unsigned long long)expect, (unsigned long long)data_size);
        goto fail;
    }
    free(spans);
    json_decref(root);
    return 0;
fail:
    for (int i = first; i < *nt; i++) free((char *)(*tv)[i].name);
    *nt = first;
    free(spans);
    json_decref(root);
    return rc;
}

void st_close(st_file **pf) {
    if (!pf || !*pf) return;
    st_file *f = *pf;
    for (int i = 0; i < f->n_tensors; i++) free((char *)f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_maps; i++) map_free(&f->maps[i]);
    free(f->maps);
    free(f);
    *pf = NULL;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int finish_sorted(st_file *f, char *err, size_t errlen) {
    qsort(f->tensors, (size_t)f->n_tensors, sizeof *f->tensors, tensor_cmp_name);
    for (int i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, f->tensors[i - 1].name))
            return util_err(err, errlen, "tensor %s appears in both %s and %s", f->tensors[i].name,
                            f->tensors[i - 1].file, f->tensors[i].file), ST_EFORMAT;
    return 0;
}

static int open_single(const char *path, st_file *f, char *err, size_t errlen) {
    int cap = 0;
    f->maps = xcalloc(1, sizeof *f->maps);
    int rc = map_file(path, &f->maps[0], err, errlen);
    if (rc) return rc;
    f->n_maps = 1;
    rc = parse_file(&f->maps[0], &f->tensors, &f->n_tensors, &cap, err, errlen);
    if (rc) return rc;
    return finish_sorted(f, err, errlen);
}

static int open_sharded(const char *index_path, st_file *f, char *err, size_t errlen) {
    const char *ifn = path_base(index_path);
    size_t dlen = (size_t)(ifn - index_path); /* includes the trailing '/' if any */
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (jerr.line < 0 || jerr.position == 0)
            return util_err(err, errlen, "%s: %s", index_path, jerr.text), ST_EIO;
        return util_err(err, errlen, "%s: line %d column %d: %s", ifn, jerr.line, jerr.column, jerr.text), ST_EFORMAT;
    }
    int rc = ST_EFORMAT, cap = 0;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        util_err(err, errlen, "%s: weight_map: missing, empty or not an object", ifn);
        goto fail;
    }
    /* Unique shard names, in first-seen order. */
    const char *key;
    json_t *val;
    size_t nw = json_object_size(wm);
    const char **shards = xcalloc(nw, sizeof *shards);
    int nsh = 0;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val)) {
            util_err(err, errlen, "%s: weight_map.%s: expected a file name string", ifn, key);
            free(shards);
            goto fail;
        }
        const char *s = json_string_value(val);
        if (!*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, "..")) {
            util_err(err, errlen, "%s: weight_map.%s: \"%s\" is not a plain file name", ifn, key, s);
            free(shards);
            goto fail;
        }
        int seen = 0;
        for (int i = 0; i < nsh && !seen; i++) seen = !strcmp(shards[i], s);
        if (!seen) shards[nsh++] = s;
    }
    f->maps = xcalloc((size_t)nsh, sizeof *f->maps);
    for (int i = 0; i < nsh; i++) {
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%.*s%s", (int)dlen, index_path, shards[i]) >= sizeof p) {
            util_err(err, errlen, "%s: shard path too long", ifn);
            rc = ST_EIO;
            free(shards);
            goto fail;
        }
        rc = map_file(p, &f->maps[i], err, errlen);
        if (rc) { free(shards); goto fail; }
        f->n_maps++;
        rc = parse_file(&f->maps[i], &f->tensors, &f->n_tensors, &cap, err, errlen);
        if (rc) { free(shards); goto fail; }
    }
    free(shards);
    rc = finish_sorted(f, err, errlen);
    if (rc) goto fail;
    /* Every weight_map entry must exist in the shard it names. */
    json_object_foreach(wm, key, val) {
        const st_tensor *t = st_find(f, key);
        if (!t) {
            util_err(err, errlen, "%s: weight_map names tensor %s in %s, which does not contain it", ifn, key,
                     json_string_value(val));
            rc = ST_EFORMAT;
            goto fail;
        }
        if (strcmp(t->file, json_string_value(val)) != 0) {
            util_err(err, errlen, "%s: weight_map puts tensor %s in %s, but it is in %s", ifn, key,
                     json_string_value(val), t->file);
            rc = ST_EFORMAT;
            goto fail;
        }
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    return rc;
}

int st_open(const char *path, st_file **out, char *err, size_t errlen) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return util_err(err, errlen, "%s: %s", path, strerror(errno)), ST_ENOTFOUND;
    st_file *f = xcalloc(1, sizeof *f);
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (access(p, F_OK) == 0) {
            rc = open_sharded(p, f, err, errlen);
        } else {
            snprintf(p, sizeof p, "%s/model.safetensors", path);
            if (access(p, F_OK) == 0) rc = open_single(p, f, err, errlen);
            else rc = (util_err(err, errlen, "%s: no model.safetensors or model.safetensors.index.json", path), ST_ENOTFOUND);
        }
    } else if (has_suffix(path, ".index.json")) {
        rc = open_sharded(path, f, err, errlen);
    } else {
        rc = open_single(path, f, err, errlen);
    }
    if (rc) { st_close(&f); return rc; }
    *out = f;
    return 0;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->tensors[mid].name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

int st_count(const st_file *f) { return f->n_tensors; }

const st_tensor *st_at(const st_file *f, int i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

/* ---------------------------------------------------------------- writer */

typedef struct wt {
    char *name;
    op_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    void *owned;      /* copied data (NULL when borrowed) */
    const void *data;
    size_t nbytes;
} wt;

struct st_writer {
    char *path;
    wt *t;
    int n, cap;
    json_t *meta;
    char err[512]; /* first add error, reported by finish */
};

st_writer *st_writer_new(const char *path) {
    st_writer *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->meta = json_object();
    return w;
}

static int writer_add(st_writer *w, const char *name, op_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, int copy) {
    if (w->err[0]) return -1;
    if (!name || !*name || !strcmp(name, "__metadata__")) {
        snprintf(w->err, sizeof w->err, "%s: invalid tensor name \"%s\"", w->path, name ? name : "(null)");
        return -1;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (dtype != OP_F32 && dtype != OP_BF16 && dtype != OP_F16)) {
        snprintf(w->err, sizeof w->err, "%s: tensor %s: bad ndim %d or dtype %d", w->path, name, ndim, (int)dtype);
        return -1;
    }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) {
            snprintf(w->err, sizeof w->err, "%s: tensor %s added twice", w->path, name);
            return -1;
        }
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            snprintf(w->err, sizeof w->err, "%s: tensor %s: negative dimension", w->path, name);
            return -1;
        }
        numel *= (size_t)shape[i];
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->t = xrealloc(w->t, (size_t)w->cap * sizeof *w->t);
    }
    wt *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = xstrdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = numel * dtype_size(dtype);
    if (copy && t->nbytes) {
        t->owned = xmalloc(t->nbytes);
        memcpy(t->owned, data, t->nbytes);
        t->data = t->owned;
    } else {
        t->data = data;
    }
    return 0;
}

int st_writer_add(st_writer *w, const char *name, op_dtype dtype, int ndim, const int64_t *shape,
                  const void *data) {
    return writer_add(w, name, dtype, ndim, shape, data, 1);
}

int st_writer_add_ref(st_writer *w, const char *name, op_dtype dtype, int ndim, const int64_t *shape,
                      const void *data) {
    return writer_add(w, name, dtype, ndim, shape, data, 0);
}

int st_writer_meta(st_writer *w, const char *key, const char *value) {
    return json_object_set_new(w->meta, key, json_string(value)) == 0 ? 0 : -1;
}

/* Larger elements first keeps every tensor aligned to its element size without holes
 * (the format forbids gaps between tensors); then by name, as the Rust writer does. */
static int wt_cmp(const void *a, const void *b) {
    const wt *x = a, *y = b;
    size_t sx = dtype_size(x->dtype), sy = dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

static void writer_free(st_writer *w) {
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    free(w->t);
    json_decref(w->meta);
    free(w->path);
    free(w);
}

static int write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n ? 0 : -1; }

int st_writer_finish(st_writer **pw, char *err, size_t errlen) {
    st_writer *w = *pw;
    *pw = NULL;
    if (!w) return util_err(err, errlen, "st_writer_finish: no writer"), ST_EIO;
    int rc = ST_EFORMAT;
    char *hdr = NULL;
    FILE *fp = NULL;
    char tmp[4200];
    tmp[0] = 0;
    if (w->err[0]) { util_err(err, errlen, "%s", w->err); goto done; }
    qsort(w->t, (size_t)w->n, sizeof *w->t, wt_cmp);
    json_t *root = json_object();
    if (json_object_size(w->meta)) json_object_set(root, "__metadata__", w->meta);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        wt *t = &w->t[i];
        json_t *sh = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(sh, json_integer((json_int_t)t->shape[d]));
        json_t *e = json_object();
        json_object_set_new(e, "dtype", json_string(st_dtype_name(t->dtype)));
        json_object_set_new(e, "shape", sh);
        json_t *o = json_array();
        json_array_append_new(o, json_integer((json_int_t)off));
        json_array_append_new(o, json_integer((json_int_t)(off + t->nbytes)));
        json_object_set_new(e, "data_offsets", o);
        json_object_set_new(root, t->name, e);
        off += t->nbytes;
    }
    hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!hdr) { util_err(err, errlen, "%s: cannot encode the header", w->path); goto done; }
    size_t hl = strlen(hdr);
    size_t padded = (hl + 7) & ~(size_t)7;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", w->path, (int)getpid());
    rc = ST_EIO;
    fp = fopen(tmp, "wb");
    if (!fp) { util_err(err, errlen, "%s: %s", tmp, strerror(errno)); tmp[0] = 0; goto done; }
    static const char spaces[8] = "        ";
    if (write_all(fp, len8, 8) || write_all(fp, hdr, hl) || write_all(fp, spaces, padded - hl)) goto werr;
    for (int i = 0; i < w->n; i++)
        if (write_all(fp, w->t[i].data, w->t[i].nbytes)) goto werr;
    if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) goto werr;
    if (fclose(fp) != 0) { fp = NULL; goto werr; }
    fp = NULL;
    if (rename(tmp, w->path) != 0) { util_err(err, errlen, "%s: rename: %s", w->path, strerror(errno)); goto done; }
    tmp[0] = 0;
    rc = 0;
    goto done;
werr:
    util_err(err, errlen, "%s: write: %s", tmp, strerror(errno));
done:
    if (fp) fclose(fp);
    if (tmp[0]) unlink(tmp);
    free(hdr);
    writer_free(w);
    return rc;
}
