/* workers/model/safetensors.h — safetensors checkpoints: a validating mmap reader (one file or a
 * sharded directory through model.safetensors.index.json) and a small writer.
 *
 * Format (https://huggingface.co/docs/safetensors): u64 little-endian header length N, then N
 * bytes of JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 * "__metadata__": {...}}, then the data; offsets are relative to the end of the header.
 * The reader accepts F32, BF16 and F16 tensors (anything else is an error naming the tensor),
 * checks that shape x dtype size equals the data_offsets span, that every span lies inside the
 * file and that spans do not overlap. Tensor data is borrowed from the mmap: it stays valid
 * until st_close(). The data area starts 8-byte aligned (the header length is a multiple of 8);
 * a tensor is aligned to its element size only if the writer ordered it so (HF's writer and
 * ours do). Use memcpy or st_to_f32 where alignment matters.
 */
#ifndef THINKFAST_SAFETENSORS_H
#define THINKFAST_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ops.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER_BYTES ((uint64_t)100 * 1024 * 1024) /* bytes; larger headers are refused */

/* Error codes (all negative; 0 is success). */
enum {
    ST_OK = 0,
    ST_EIO = -1,       /* cannot open / stat / mmap / write */
    ST_EFORMAT = -2,   /* malformed or inconsistent file */
    ST_EDTYPE = -3,    /* unsupported dtype */
    ST_ENOTFOUND = -4, /* no checkpoint at the path */
};

typedef struct st_tensor {
    const char *name;         /* owned by the st_file */
    op_dtype dtype;
    int ndim;                 /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    const void *data;         /* borrowed from the mmap; valid until st_close */
    size_t nbytes;
    const char *file;         /* basename of the file it lives in (for messages) */
} st_tensor;

typedef struct st_file st_file;

/* Opens a checkpoint. path may be:
 *   - a .safetensors file;
 *   - a directory holding model.safetensors, or model.safetensors.index.json (sharded: its
 *     "weight_map" names the shard of every tensor; each shard is mmap'd once and validated).
 * Returns 0 and *out, or a negative ST_E* code with a message naming the file (and the tensor)
 * in err: "model.safetensors: tensor model.layers.3.mlp.up_proj.weight: data_offsets
 * [100, 4196] beyond the data size 4000". */
int st_open(const char *path, st_file **out, char *err, size_t errlen);
/* Unmaps everything; sets *f = NULL. Tolerates NULL. */
void st_close(st_file **f);

/* The tensor called name, or NULL. O(log n). */
const st_tensor *st_find(const st_file *f, const char *name);
/* Number of tensors, and the i-th (sorted by name), 0 <= i < st_count. */
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
/* Number of elements of a tensor (product of its shape; 1 for a scalar). */
int64_t st_numel(const st_tensor *t);
/* Human-readable message for an ST_E* code. */
const char *st_strerror(int code);

/* dtype names as safetensors spells them ("F32", "BF16", "F16"); -1 for other names. */
int st_dtype_parse(const char *name, op_dtype *out);
const char *st_dtype_name(op_dtype t);

/* Conversions. bf16/f16 -> f32 are exact; f32 -> bf16/f16 round to nearest even (NaN stays
 * NaN, overflow goes to inf). */
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
/* Converts n elements of dtype src_dtype at src into fp32 at dst (no alignment needed). */
void st_to_f32(float *dst, const void *src, op_dtype src_dtype, size_t n);
/* Copies a tensor into a newly malloc'd fp32 array of st_numel elements (caller frees). */
float *st_tensor_to_f32(const st_tensor *t);

/* --- writer --- */
typedef struct st_writer st_writer;
/* Starts a file at path (written by st_writer_finish). */
st_writer *st_writer_new(const char *path);
/* Adds a tensor; data (numel x dtype size bytes) is copied. Returns 0, or -1 for a duplicate
 * name / bad shape (the error is reported by st_writer_finish). */
int st_writer_add(st_writer *w, const char *name, op_dtype dtype, int ndim, const int64_t *shape,
                  const void *data);
/* Same without copying: data must stay valid until st_writer_finish (for large checkpoints). */
int st_writer_add_ref(st_writer *w, const char *name, op_dtype dtype, int ndim, const int64_t *shape,
                      const void *data);
/* Adds an entry to __metadata__ (string -> string). */
int st_writer_meta(st_writer *w, const char *key, const char *value);
/* Writes the file atomically (temp file + fsync + rename; header padded with spaces to a
 * multiple of 8 bytes; tensors contiguous, F32 first then 16-bit ones, by name within a dtype
 * size, so every tensor is aligned to its element size), frees the writer and sets *w = NULL (also on error).
 * 0 ok, negative ST_E* with err set. */
int st_writer_finish(st_writer **w, char *err, size_t errlen);

#endif
