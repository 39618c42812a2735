/* kernels/cuda/cuda_plan.c — memory planning for the CUDA engine: how many sequences (KV pages
 * and Mamba state slots) fit in free device memory. Pure arithmetic, declared in
 * kernels/cuda/cuda_backend.h; kept next to the backend because only device memory needs it.
 */
#include <stdio.h>

#include "kernels/cuda/cuda_backend.h"

static double gib(size_t b) { return (double)b / (1024.0 * 1024.0 * 1024.0); }

int op_cuda_plan_memory(const op_cuda_plan_req *r, op_cuda_plan *out, char *err, size_t errlen) {
    op_cuda_plan p = {0};
    if (!r || !out) {
        snprintf(err, errlen, "plan_memory: NULL request or result");
        return -1;
    }
    if (r->max_len <= 0 || (r->page_bytes > 0 && r->page_size <= 0) || r->prompt_len < 0 ||
        r->prompt_len > r->max_len || r->samples_per_prompt < 0 || r->batch_cap < 0) {
        snprintf(err, errlen,
                 "plan_memory: inconsistent request (max_len %d, page_size %d, prompt_len %d, samples_per_prompt %d, "
                 "batch_cap %d)",
                 r->max_len, r->page_size, r->prompt_len, r->samples_per_prompt, r->batch_cap);
        return -1;
    }
    int spp = r->samples_per_prompt > 0 ? r->samples_per_prompt : 1;
    double pages_per_seq = 0.0;
    if (r->page_bytes > 0) {
        /* Full prompt pages are shared by the samples of a problem; the partial last prompt page and
         * the generated tokens are each sample's own. */
        int shared_pages = spp > 1 ? r->prompt_len / r->page_size : 0;
        int own_tokens = r->max_len - shared_pages * r->page_size;
        int own_pages = (own_tokens + r->page_size - 1) / r->page_size;
        pages_per_seq = own_pages + (double)shared_pages / spp;
    }
    double per_seq = pages_per_seq * (double)r->page_bytes + (double)r->state_bytes + (double)r->act_bytes;
    size_t avail = r->free_bytes > r->reserve_bytes ? r->free_bytes - r->reserve_bytes : 0;
    if (per_seq <= 0.0) per_seq = 1.0;
    double fit = (double)avail / per_seq;
    long maxb = (long)fit;
    if (r->batch_cap > 0 && maxb > r->batch_cap) maxb = r->batch_cap;
    if (maxb > 1L << 24) maxb = 1L << 24;
    if (maxb < 1) {
        snprintf(err, errlen,
                 "out of device memory: one sequence of %d tokens needs %.2f GiB (KV %.2f, state %.2f, activations "
                 "%.2f), %.2f GiB free after a %.2f GiB reserve",
                 r->max_len, gib((size_t)per_seq), gib((size_t)(pages_per_seq * (double)r->page_bytes)),
                 gib(r->state_bytes), gib(r->act_bytes), gib(avail), gib(r->reserve_bytes));
        return -1;
    }
    p.max_batch = (int)maxb;
    p.pages_per_seq = (int)(pages_per_seq + 0.999999);
    if (r->page_bytes > 0) {
        int shared_pages = spp > 1 ? r->prompt_len / r->page_size : 0;
        int own_tokens = r->max_len - shared_pages * r->page_size;
        int own_pages = (own_tokens + r->page_size - 1) / r->page_size;
        long problems = (maxb + spp - 1) / spp;
        p.n_pages = (int)(maxb * own_pages + problems * shared_pages);
    }
    p.n_state_slots = r->state_bytes > 0 ? p.max_batch : 0;
    p.per_seq_bytes = (size_t)per_seq;
    p.kv_bytes = (size_t)p.n_pages * r->page_bytes;
    p.state_bytes = (size_t)p.n_state_slots * r->state_bytes;
    p.act_bytes = (size_t)p.max_batch * r->act_bytes;
    p.total_bytes = p.kv_bytes + p.state_bytes + p.act_bytes;
    *out = p;
    return 0;
}
