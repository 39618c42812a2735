/* workers/sample/backend.c — backend factory + one-entry cache (see backend.h). */
#include "workers/sample/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

struct sample_backend_cache {
    sample_backend *b;
    char backend[16];
    char path[1024];
    char device[32];
    double corrupt;
    int loads;
};

sample_backend_cache *sample_backend_cache_new(void) { return xcalloc(1, sizeof(sample_backend_cache)); }

void sample_backend_cache_destroy(sample_backend_cache **c) {
    if (!c || !*c) return;
    if ((*c)->b) (*c)->b->destroy(&(*c)->b);
    free(*c);
    *c = NULL;
}

int sample_backend_cache_loads(const sample_backend_cache *c) { return c->loads; }

sample_backend *sample_backend_cache_get(sample_backend_cache *c, const char *backend, double corrupt,
                                         const char *path, const char *device, char *err, size_t errlen) {
    if (!backend || !*backend) backend = "replay";
    if (!path) path = "";
    if (!device || !*device) device = "auto";
    int is_replay = strcmp(backend, "replay") == 0, is_native = strcmp(backend, "native") == 0;
    if (!is_replay && !is_native) {
        util_err(err, errlen, "model.backend: unknown backend \"%s\" (expected replay|native)", backend);
        return NULL;
    }
    if (c->b && strcmp(c->backend, backend) == 0 &&
        (is_replay ? c->corrupt == corrupt : strcmp(c->path, path) == 0 && strcmp(c->device, device) == 0))
        return c->b;
    if (c->b) c->b->destroy(&c->b);
    sample_backend *b = is_replay ? sample_backend_replay_new(corrupt, err, errlen) : sample_backend_native_new(path, device, err, errlen);
    if (!b) return NULL;
    c->b = b;
    snprintf(c->backend, sizeof c->backend, "%s", backend);
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->device, sizeof c->device, "%s", device);
    c->corrupt = corrupt;
    c->loads++;
    if (is_native) LOG_INFO("loaded native backend from %s (device %s)", path, device);
    return b;
}
