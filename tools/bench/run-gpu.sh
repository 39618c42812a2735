#!/usr/bin/env bash
# tools/bench/run-gpu.sh — the GPU benchmarks (make bench-gpu): bin/bench_gpu over the four
# architectures (teacher, student, hybrid50, hybrid25) x generation lengths 1024/4096/8192 x
# batch 1..512 + the largest batch that fits, plus one eager prefill of 8 prompts of 256 and 1024
# tokens per architecture (the "prefill" array of the same JSON), a short teacher run at the HF baseline's context,
# the engine itself (bin/bench_engine_gpu; gen 4096/8192 as windows at their mean
# context, --window), and the PyTorch/HF generate() baseline (tools/bench/hf_baseline.py, needs torch+transformers).
# Env: BENCH_BIN (default bin/bench_gpu), RESULTS (default bench/results), PYTHON (default python3),
#      QUICK=1 (teacher+student, gen 1024/8192, batch 1,64,256 + max), SKIP_HF=1.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${BENCH_BIN:-bin/bench_gpu}
RES=${RESULTS:-bench/results}
PY=${PYTHON:-python3}
mkdir -p "$RES"
if [ ! -x "$BIN" ]; then echo "run-gpu: $BIN not built (make GPU=1)"; exit 1; fi
if ! "$BIN" --help >/dev/null 2>&1; then echo "run-gpu: $BIN does not run"; exit 1; fi
rc=0
if [ "${QUICK:-0}" = 1 ]; then
  "$BIN" --arch teacher,student --gen 1024,8192 --batch 1,64,256 --prefill 256,1024 --out "$RES/gpu_decode_quick.json" || rc=1
else
  "$BIN" --prefill 256,1024 --out "$RES/gpu_decode.json" || rc=1
fi
"$BIN" --arch teacher --gen 48 --batch 1,64 --no-max --out "$RES/gpu_decode_peer.json" || rc=1
# The real engine (continuous batching, CUDA graphs per batch bucket, GPU sampling).
ENG=${ENGINE_BIN:-bin/bench_engine_gpu}
"$ENG" --arch teacher,hybrid50,hybrid25,student --batch 64,256,max --ab 64 --out "$RES/gpu_engine.json" || rc=1
# Long generations through the engine: a 128-token window at the mean context of gen G, own
# prompts per sequence, at the batch that fits the whole 256 + G tokens (--window), for the
# student/teacher ratio at equal memory.
for G in 4096 8192; do
  "$ENG" --arch teacher,hybrid50,hybrid25,student --batch max --window $G --gen 128 --out "$RES/gpu_engine_gen$G.json" || rc=1
done
if [ "${SKIP_HF:-0}" != 1 ]; then
  PYTHONUNBUFFERED=1 "$PY" tools/bench/hf_baseline.py --batch 1,64 --out "$RES/gpu_hf_baseline.json" || rc=1
fi
exit $rc
