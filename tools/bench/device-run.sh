#!/usr/bin/env bash
# tools/bench/device-run.sh — what one call of the GPU machine runs (the binaries come prebuilt
# in .gpu/bin from tools/bench/gpu-build.sh): the op tests (re-run under compute-sanitizer when
# one fails), the golden-fixture tests on the GPU, the decode benchmark and the HF baseline.
# Logs and JSON go to $OUT. Usage: tools/bench/device-run.sh quick|full|tests
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/thinkfast-gpu-out}
mkdir -p "$OUT"
MODE=${1:-quick}
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib \
         /opt/torch/.venv/lib/python3*/site-packages/nvidia/cublas/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv; ldd .gpu/bin/bench_gpu | grep -E "cublas|not found"; } 2>&1 | tee "$OUT/env.log"
t0=$(date +%s)
timeout 150 .gpu/bin/test_cuda_ops >"$OUT/test_cuda_ops.log" 2>&1
rc=$?; echo "test_cuda_ops rc=$rc ($(( $(date +%s) - t0 )) s)" | tee -a "$OUT/test_cuda_ops.log"
grep -E "^(FAIL|skip) |^unit:|^device|^  " "$OUT/test_cuda_ops.log" | head -40
if [ $rc -ne 0 ] && command -v compute-sanitizer >/dev/null; then
  for t in $(grep -E "^FAIL " "$OUT/test_cuda_ops.log" | awk '{print $2}' | head -3); do
    CUDA_TEST_ONLY=$t timeout 60 compute-sanitizer --tool memcheck --print-limit 5 .gpu/bin/test_cuda_ops >>"$OUT/sanitizer.log" 2>&1
  done
  grep -E "Invalid|ERROR SUMMARY|at 0x|by thread" "$OUT/sanitizer.log" | head -20
fi
timeout 60 .gpu/bin/test_cuda_golden >"$OUT/test_cuda_golden.log" 2>&1
echo "test_cuda_golden rc=$?" | tee -a "$OUT/test_cuda_golden.log"
grep -E "^(FAIL|skip|ok) |^unit:|^  " "$OUT/test_cuda_golden.log" | head -30
[ "$MODE" = tests ] && exit 0
t0=$(date +%s)
if [ "$MODE" = full ]; then
  timeout 330 .gpu/bin/bench_gpu --out "$OUT/gpu_decode.json" >"$OUT/bench.log" 2>&1
else
  timeout 150 .gpu/bin/bench_gpu --arch teacher,student --gen 1024,8192 --batch 1,64,256 --out "$OUT/gpu_decode_quick.json" >"$OUT/bench.log" 2>&1
fi
echo "bench rc=$? ($(( $(date +%s) - t0 )) s)" | tee -a "$OUT/bench.log"
timeout 40 .gpu/bin/bench_gpu --arch teacher --gen 80 --batch 1,64 --no-max --out "$OUT/gpu_decode_peer.json" >>"$OUT/bench.log" 2>&1
grep -vE "^\s*$" "$OUT/bench.log" | tail -70
if [ "${SKIP_HF:-0}" != 1 ]; then
  PYTHONUNBUFFERED=1 timeout 120 python3 tools/bench/hf_baseline.py --batch 1,64 --out "$OUT/gpu_hf_baseline.json" >"$OUT/hf.log" 2>&1
  echo "hf rc=$?" >>"$OUT/hf.log"; tail -6 "$OUT/hf.log"
fi
