/* broker/registry.c — the in-memory worker table (broker/registry.h). Linear scans: worker
 * pools are tens to hundreds of entries, and every lookup is one identity compare. */
#include "broker/registry.h"

#include "common/util.h"

#include <stdlib.h>
#include <string.h>

void brk_registry_init(brk_registry *r) { memset(r, 0, sizeof *r); }

void brk_registry_free(brk_registry *r) {
    free(r->w);
    memset(r, 0, sizeof *r);
}

brk_worker *brk_registry_by_ident(brk_registry *r, const void *ident, size_t len) {
    for (int i = 0; i < r->n; i++)
        if (r->w[i].ident_len == len && memcmp(r->w[i].ident, ident, len) == 0) return &r->w[i];
    return NULL;
}

brk_worker *brk_registry_by_id(brk_registry *r, const char *id) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->w[i].id, id) == 0) return &r->w[i];
    return NULL;
}

brk_worker *brk_registry_add(brk_registry *r, const void *ident, size_t len) {
    if (len > BRK_IDENT_MAX) return NULL;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->w = xrealloc(r->w, (size_t)r->cap * sizeof *r->w);
    }
    brk_worker *w = &r->w[r->n++];
    memset(w, 0, sizeof *w);
    memcpy(w->ident, ident, len);
    w->ident_len = len;
    return w;
}

void brk_registry_remove(brk_registry *r, brk_worker *w) {
    int i = (int)(w - r->w);
    if (i < 0 || i >= r->n) return;
    r->w[i] = r->w[r->n - 1];
    r->n--;
}

void brk_registry_copy(brk_registry *dst, const brk_registry *src) {
    if (dst->cap < src->n) {
        dst->cap = src->cap;
        dst->w = xrealloc(dst->w, (size_t)dst->cap * sizeof *dst->w);
    }
    if (src->n) memcpy(dst->w, src->w, (size_t)src->n * sizeof *src->w);
    dst->n = src->n;
}
