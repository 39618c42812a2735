/* kernels/backend.c — op backend factory: picks the CPU or the CUDA backend by name, and the
 * small dtype helpers of kernels/ops.h. CUDA is reached only in GPU=1 builds (THINKFAST_CUDA),
 * through the plain-C declarations of kernels/cuda/cuda_backend.h.
 */
#include "kernels/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/cpu/cpu_ops.h"
#ifdef THINKFAST_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

size_t op_dtype_size(op_dtype t) {
    switch (t) {
    case OP_F32: return 4;
    case OP_BF16: return 2;
    case OP_F16: return 2;
    }
    return 0;
}

int op_cuda_available(void) {
#ifdef THINKFAST_CUDA
    return op_cuda_device_count() > 0;
#else
    return 0;
#endif
}

op_backend *op_backend_new(const char *name, char *err, size_t errlen) {
    if (!name || !*name) name = "cpu";
    if (strcmp(name, "cpu") == 0) return op_cpu_new(err, errlen);
    if (strcmp(name, "auto") == 0) {
        if (op_cuda_available()) return op_backend_new("cuda", err, errlen);
        return op_cpu_new(err, errlen);
    }
    if (strncmp(name, "cuda", 4) == 0) {
        int dev = 0;
        if (name[4] == ':') {
            char *end = NULL;
            long v = strtol(name + 5, &end, 10);
            if (end == name + 5 || *end || v < 0 || v > 1024) {
                util_err(err, errlen, "device \"%s\": expected cuda:N with N a device index", name);
                return NULL;
            }
            dev = (int)v;
        } else if (name[4]) {
            util_err(err, errlen, "unknown device \"%s\" (expected cpu|cuda|cuda:N|auto)", name);
            return NULL;
        }
#ifdef THINKFAST_CUDA
        return op_cuda_new(dev, err, errlen);
#else
        (void)dev;
        util_err(err, errlen, "no CUDA device: this build has no CUDA support (built with GPU=0)");
        return NULL;
#endif
    }
    util_err(err, errlen, "unknown device \"%s\" (expected cpu|cuda|cuda:N|auto)", name);
    return NULL;
}
