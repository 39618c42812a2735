/* workers/sample/backend.h — choosing and caching the sampling backend of a job.
 *
 * A sample worker receives many tasks of the same job; loading a model is expensive, so the
 * cache keeps the last backend and returns it again while (backend, path, device, corrupt)
 * stay the same, destroying it and loading the new one when a task asks for something else.
 * Backends: "replay" (workers/sample/replay.c) and "native" (workers/sample/native.c: the
 * Transformer/Mamba engine of workers/model/).
 */
#ifndef THINKFAST_SAMPLE_BACKEND_CACHE_H
#define THINKFAST_SAMPLE_BACKEND_CACHE_H

#include <stddef.h>

#include "workers/sample/sample_backend.h"

typedef struct sample_backend_cache sample_backend_cache;

sample_backend_cache *sample_backend_cache_new(void);
/* Destroys the cached backend and the cache; *c = NULL. */
void sample_backend_cache_destroy(sample_backend_cache **c);

/* Returns the backend for this model spec, borrowed (valid until the next call or destroy).
 * backend: "replay" | "native"; corrupt: replay only; path/device: native only (device NULL or
 * "" = "auto"). NULL with err set ("unknown backend \"x\"", the backend's own load error). */
sample_backend *sample_backend_cache_get(sample_backend_cache *c, const char *backend, double corrupt,
                                         const char *path, const char *device, char *err, size_t errlen);

/* Times a backend was created by this cache (for tests of the caching). */
int sample_backend_cache_loads(const sample_backend_cache *c);

#endif
