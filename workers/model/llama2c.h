/* workers/model/llama2c.h — converts a llama2.c checkpoint (legacy export "version 0") and its
 * tokenizer.bin into a Hugging Face Llama directory that the engine (and transformers) load:
 *   OUTDIR/config.json        LlamaForCausalLM, rms_norm_eps 1e-5, rope_theta 10000, bos 1, eos 2
 *   OUTDIR/model.safetensors  F32, HF weight names
 *   OUTDIR/tokenizer.bin      the llama2.c tokenizer, copied byte for byte (validated first)
 *
 * Format (karpathy/llama2.c run.c): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len; vocab_size < 0 means an untied classifier wcls follows), then float32
 * token_embedding [V,D], rms_att [L,D], wq [L,D,D], wk [L,KV,D], wv [L,KV,D], wo [L,D,D],
 * rms_ffn [L,D], w1 [L,F,D], w2 [L,D,F], w3 [L,F,D], rms_final [D], freq_cis_real/imag
 * [seq_len, hd/2] each (unused), wcls [V,D] if untied.
 *
 * RoPE convention: llama2.c rotates adjacent pairs (2i, 2i+1) of each head; HF Llama rotates
 * (i, i + hd/2) ("rotate_half"). The q and k rows of every head are permuted exactly as
 * transformers' convert_llama_weights_to_hf.py `permute` does: new row j*(hd/2) + i = old row
 * 2i + j (even rows first, then odd rows), so both models compute the same attention scores.
 */
#ifndef THINKFAST_LLAMA2C_H
#define THINKFAST_LLAMA2C_H

#include <stddef.h>

typedef struct llama2c_header {
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier; /* 1 if the file's vocab_size was positive (wcls tied to embeddings) */
} llama2c_header;

/* Reads and validates the header of CHECKPOINT against its file size. 0 ok; -1 with
 * "PATH: reason" in err (sizes that do not add up, newer export versions, bad dimensions). */
int llama2c_read_header(const char *checkpoint, llama2c_header *out, char *err, size_t errlen);

/* Row permutation for one projection of n_heads heads of head_dim rows each (cols columns):
 * dst[h, j*(hd/2)+i, :] = src[h, 2i+j, :]. dst and src must not alias. */
void llama2c_permute_rows(float *dst, const float *src, int n_heads, int head_dim, int cols);

/* Validates a llama2.c tokenizer.bin for vocab_size entries (max_token_length, then per entry
 * float score, int32 len, len bytes; nothing after). 0 ok; -1 with "PATH: reason". */
int llama2c_check_tokenizer(const char *path, int vocab_size, char *err, size_t errlen);

/* Full conversion (creates outdir if needed; overwrites the three files). 0 ok; -1 with err set.
 * If summary is non-NULL, a one-line description ("dim=64 layers=5 heads=8/4 vocab=512 tied")
 * is written to it. */
int llama2c_convert(const char *checkpoint, const char *tokenizer, const char *outdir, char *summary,
                    size_t summary_cap, char *err, size_t errlen);

#endif
