#!/usr/bin/env python3
"""tools/bench/hf_baseline.py — the peer for bench_gpu: PyTorch + HF transformers generate() on a
random-weight Llama-3.2-1B-shaped teacher (bf16, static KV cache when this transformers has it),
greedy, EOS ignored (min_new_tokens = max_new_tokens). Decode time per step is isolated as
(t(n2) - t(n1)) / (n2 - n1) over two generate() calls with the same prompt, so prefill and
setup cancel. Writes JSON (--out) and prints a table. Runs on the GPU machine only.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", default="1,64")
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--n1", type=int, default=8)
    ap.add_argument("--n2", type=int, default=40)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=128256, hidden_size=2048, intermediate_size=8192,
                      num_hidden_layers=a.layers, num_attention_heads=32, num_key_value_heads=8,
                      head_dim=64, max_position_embeddings=131072, rope_theta=500000.0,
                      tie_word_embeddings=True, rms_norm_eps=1e-5, bos_token_id=128000,
                      eos_token_id=128001, pad_token_id=0)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    model.eval()
    dev = torch.cuda.get_device_name(0)
    rows = []
    for B, cache0 in [(int(x), c) for x in a.batch.split(",") for c in ("static", "dynamic")]:
        ids = torch.randint(0, 128000, (B, a.prompt), device="cuda")
        mask = torch.ones_like(ids)
        cache = cache0 if cache0 == "static" else None

        def run(n):
            nonlocal cache
            torch.cuda.synchronize()
            t = time.perf_counter()
            kw = dict(attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)
            if cache == "static":
                # transformers 5 compiles the forward for a static cache on its own; the compile
                # (minutes) is not what we measure: eager forward over a preallocated cache.
                kw["disable_compile"] = True
            with torch.no_grad():
                try:
                    out = model.generate(ids, cache_implementation=cache, **kw) if cache else model.generate(ids, **kw)
                except Exception as e:  # no static cache (or no disable_compile) here: dynamic cache
                    print(f"static cache unavailable ({type(e).__name__}: {e}); using the default cache", file=sys.stderr)
                    cache = None
                    kw.pop("disable_compile", None)
                    out = model.generate(ids, **kw)
            torch.cuda.synchronize()
            assert out.shape[1] == a.prompt + n, out.shape
            return time.perf_counter() - t

        run(a.n1)  # warm-up
        t1 = run(a.n1)
        t2 = run(a.n2)
        step = (t2 - t1) / (a.n2 - a.n1)
        r = {"arch": "teacher", "batch": B, "prompt": a.prompt, "ctx_mid": a.prompt + (a.n1 + a.n2) // 2,
             "step_ms": step * 1e3, "tokens_per_s": B / step, "cache": cache or "dynamic",
             "t_n1_s": t1, "t_n2_s": t2, "n1": a.n1, "n2": a.n2, "compile": False}
        rows.append(r)
        print(f"hf generate B={B:4d} ctx~{r['ctx_mid']}: {r['step_ms']:.2f} ms/step, {r['tokens_per_s']:.0f} tok/s ({r['cache']} cache)", flush=True)
    res = {"benchmark": "hf_generate_baseline", "device": dev, "torch": torch.__version__,
           "transformers": transformers.__version__, "sampling": "greedy", "points": rows}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
        print("wrote", a.out)


if __name__ == "__main__":
    main()
