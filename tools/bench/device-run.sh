#!/usr/bin/env bash
# tools/bench/device-run.sh — what one call of the lent GPU machine runs. The binaries come
# prebuilt (tools/bench/gpu-build.sh here; the device has none of the project's other
# libraries) and packed in .gpu/pack/bin.tar.xz, carried with the call (carry [".gpu/pack"]);
# this script unpacks them into .gpu/bin. Modes (several may be given; each comment says about
# how long it takes on an H100, keep one call under 10 minutes):
#   tests    (~1 min) the GPU tests: test_cuda_ops (every op against the CPU reference; a failing
#            test is re-run under compute-sanitizer), test_cuda_ssd_chunked (the chunked prefill scan), test_cuda_attn_prefill (the
#            tensor-core prefill attention), test_cuda_golden (HF fixtures through the
#            graph engine), test_engine_graphs.
#   ab       (~3 min) kernel A/Bs: decode with the fused conv + scan on and off, with the matmul
#            candidates timed hot (default), cold and not at all, prefill with the
#            generic attention kernel and with the recurrent scan against the defaults, the timing
#            modes of the chunked-scan and prefill-attention tests.
#   winG     (G = 4096: ~3 min, 8192: ~4 min; mostly the prefill of the long prompts) the engine
#            at gen G: a 128-token window at the mean context, at the batch that fits the whole
#            run (bench_engine_gpu --window G), four architectures.
#   decode   (~2 min) bench_gpu's full decode table (4 archs x gen 1024/4096/8192 x batch 1..512 +
#            max) with one prefill per arch, and the bf16-state option.
#   engine   (~3 min) the engine at gen 1024: batch 64 and 256 for the four archs, the largest
#            batch that fits for the teacher and the student (the hybrids' largest batches are
#            the winG points).
#   abmm     (~2 min) the decode A/B of ab only: matmul candidates timed hot, cold, not at all.
#   quick    (~1 min) bench_gpu at batch 64 and 256, gen 1024 and 8192, four architectures.
#   nopdl    (~1 min) the same with plain launches (THINKFAST_PDL=0), against quick.
#   probe    (~2 min) memory ceilings (PyTorch: device copy, in-place read-modify-write of fp32
#            as the SSM state update does) and Nsight Compute on the decode step's streaming
#            kernels (student and teacher, batch 64, gen 1024): ncu_student.log, ncu_teacher.log.
#   hf       (~2 min) the PyTorch/HF generate() baseline (tools/bench/hf_baseline.py) and this
#            backend at its context (bench_gpu --gen 48).
# Files in $OUT: *.log and the JSON results (gpu_decode*.json, gpu_prefill*.json, gpu_engine*.json,
# gpu_hf_baseline.json).
# Usage: OUT=dir tools/bench/device-run.sh MODE [MODE...]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/thinkfast-gpu-out}
mkdir -p "$OUT"
B=.gpu/bin
if [ -f .gpu/pack/bin.tar.xz ] && [ ! -x $B/bench_gpu -o .gpu/pack/bin.tar.xz -nt $B/bench_gpu ]; then
  tar -C .gpu -xJf .gpu/pack/bin.tar.xz || { echo "device-run: cannot unpack .gpu/pack/bin.tar.xz"; exit 1; }
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib \
         /opt/torch/.venv/lib/python3*/site-packages/nvidia/cublas/lib; do
  [ -d "$d" ] && LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
done
export LD_LIBRARY_PATH
T="$OUT/tests.log"; L="$OUT/bench.log"
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv; ldd $B/bench_gpu | grep -E "cublas|not found"; } >>"$T" 2>&1

# run_test NAME TIMEOUT: runs .gpu/bin/NAME, appends its output to tests.log, prints the summary
# lines; failing tests (lines "FAIL name") are re-run one by one under compute-sanitizer.
run_test() {
  local name=$1 limit=$2 t0 rc
  [ -x "$B/$name" ] || { echo "$name: not built"; return 1; }
  t0=$(date +%s)
  timeout "$limit" "$B/$name" >"$OUT/$name.tmp" 2>&1; rc=$?
  echo "$name rc=$rc ($(( $(date +%s) - t0 )) s)" >>"$OUT/$name.tmp"
  cat "$OUT/$name.tmp" >>"$T"
  grep -E "^(FAIL|skip) |^unit:|near-tie|rc=| [1-9][0-9]* of [0-9]+ out of tolerance|mismatch" "$OUT/$name.tmp" | head -30
  if grep -q "^FAIL " "$OUT/$name.tmp" && command -v compute-sanitizer >/dev/null; then
    for t in $(grep -E "^FAIL " "$OUT/$name.tmp" | awk '{print $2}' | sort -u | head -3); do
      CUDA_TEST_ONLY=$t timeout 90 compute-sanitizer --tool memcheck --print-limit 5 "$B/$name" >"$OUT/san.tmp" 2>&1
      { echo "== compute-sanitizer $name $t"; cat "$OUT/san.tmp"; } >>"$T"
      grep -E "Invalid|ERROR SUMMARY|at 0x|by thread" "$OUT/san.tmp" | head -12
    done
  fi
  rm -f "$OUT/$name.tmp" "$OUT/san.tmp"
  return $rc
}
ROWS="^ +(teacher|student|hybrid50|hybrid25) "
# the engine benchmarks' random checkpoints, written once per machine (the four in parallel)
TMPM=/tmp/tf_models
write_models() {
  mkdir -p $TMPM
  for a in teacher hybrid50 hybrid25 student; do
    [ -d $TMPM/thinkfast_bench_engine_$a ] || $B/bench_engine_gpu --write-only --arch $a --tmp $TMPM >>"$OUT/write.log" 2>&1 &
  done
  wait
}

for MODE in "$@"; do
  echo "== $MODE ($(date -u +%T))"
  case $MODE in
  tests)
    run_test test_cuda_ops 180
    run_test test_cuda_ssd_chunked 120
    run_test test_cuda_attn_prefill 120
    run_test test_cuda_golden 90
    run_test test_engine_graphs 120
    ;;
  ab)
    { echo "== decode: fused conv + scan (default)"
      timeout 60 $B/bench_gpu --arch student,hybrid25,teacher --gen 1024 --batch 1,64,256 --no-max
      echo "== decode: separate conv1d and scan (THINKFAST_CONV_SSD=0)"
      THINKFAST_CONV_SSD=0 timeout 60 $B/bench_gpu --arch student,hybrid25 --gen 1024 --batch 1,64,256 --no-max
      echo "== decode: matmul candidates timed with W evicted from L2 (THINKFAST_MM_AUTOTUNE=cold; default: hot)"
      THINKFAST_MM_AUTOTUNE=cold timeout 60 $B/bench_gpu --arch student,teacher --gen 1024 --batch 1,64,256 --no-max
      echo "== decode: cuBLASLt's first heuristic choice (THINKFAST_MM_AUTOTUNE=0)"
      THINKFAST_MM_AUTOTUNE=0 timeout 60 $B/bench_gpu --arch student,teacher --gen 1024 --batch 1,64,256 --no-max
    } >"$OUT/ab.log" 2>&1
    grep -E "^== |$ROWS" "$OUT/ab.log"
    THINKFAST_SSD_BENCH=1 timeout 90 $B/test_cuda_ssd_chunked 2>&1 | grep -E "^bench" | tee -a "$OUT/ab.log"
    THINKFAST_ATTN_BENCH=1 timeout 90 $B/test_cuda_attn_prefill 2>&1 | grep -E "^attention prefill" | tee -a "$OUT/ab.log"
    THINKFAST_ATTN_PREFILL=generic timeout 120 $B/bench_gpu --prefill 256,1024 --prefill-only --arch teacher,hybrid50 \
      --out "$OUT/gpu_prefill_attn_generic.json" >"$OUT/prefill_generic.log" 2>&1
    grep -E "$ROWS|rc=" "$OUT/prefill_generic.log"
    timeout 120 $B/bench_gpu --prefill 256,1024 --prefill-only --out "$OUT/gpu_prefill.json" >"$OUT/prefill.log" 2>&1
    echo "prefill rc=$?" >>"$OUT/prefill.log"; grep -E "$ROWS|rc=" "$OUT/prefill.log"
    THINKFAST_SSD_CHUNKED=0 timeout 120 $B/bench_gpu --prefill 256,1024 --prefill-only --arch student \
      --out "$OUT/gpu_prefill_recurrent.json" >"$OUT/prefill_recurrent.log" 2>&1
    grep -E "$ROWS|rc=" "$OUT/prefill_recurrent.log"
    ;;
  quick|nopdl)
    Q="$OUT/$MODE.log"
    if [ $MODE = nopdl ]; then export THINKFAST_PDL=0; fi
    timeout 120 $B/bench_gpu --gen 1024,8192 --batch 64,256 --no-max >"$Q" 2>&1
    echo "$MODE rc=$?" >>"$Q"; unset THINKFAST_PDL; grep -E "$ROWS|^  gen|rc=" "$Q"
    ;;
  abmm)
    for mm in hot cold 0; do
      echo "== decode: THINKFAST_MM_AUTOTUNE=$mm"
      THINKFAST_MM_AUTOTUNE=$mm timeout 60 $B/bench_gpu --arch student,teacher,hybrid25 --gen 1024 --batch 64,256 --no-max
    done >"$OUT/abmm.log" 2>&1
    grep -E "^== |$ROWS" "$OUT/abmm.log"
    ;;
  probe)
    PY=/opt/torch/.venv/bin/python; [ -x $PY ] || PY=python3
    timeout 60 $PY tools/bench/mem_probe.py 2>&1 | tee "$OUT/mem_probe.log"
    if command -v ncu >/dev/null; then
      for a in student teacher; do
        THINKFAST_MM_AUTOTUNE=0 timeout 120 ncu --clock-control none -k "regex:conv_ssd|attn_decode|combine|rmsnorm|swiglu|gemm|sm90|splitK|reduce" \
          --launch-skip 40 --launch-count 14 --section SpeedOfLight --section Occupancy --section LaunchStats \
          --section MemoryWorkloadAnalysis --section WarpStateStats \
          $B/bench_gpu --arch $a --gen 1024 --batch 64 --no-max --target-ms 5 >"$OUT/ncu_$a.log" 2>&1
        echo "ncu $a rc=$?" | tee -a "$OUT/ncu_$a.log"
        grep -E "^  [a-zA-Z_].*\(|DRAM Throughput|Memory Throughput|Duration|Achieved Occupancy|Registers Per|Waves Per SM" "$OUT/ncu_$a.log" | head -120
      done
    else echo "probe: no ncu on this machine"; fi
    ;;
  win4096|win8192)
    G=${MODE#win}
    write_models
    E="$OUT/engine_gen$G.log"
    timeout 330 $B/bench_engine_gpu --keep --tmp $TMPM --arch teacher,hybrid50,hybrid25,student --batch max \
      --window $G --gen 128 --out "$OUT/gpu_engine_gen$G.json" >>"$E" 2>&1
    echo "engine gen $G window rc=$?" >>"$E"
    grep -E "^  (teacher|student|hybrid)|window|equal|rc=" "$E"
    ;;
  decode)
    t0=$(date +%s)
    timeout 330 $B/bench_gpu --prefill 256,1024 --out "$OUT/gpu_decode.json" >>"$L" 2>&1
    echo "bench rc=$? ($(( $(date +%s) - t0 )) s)" >>"$L"
    grep -E "$ROWS|^  gen|ratio|rc=|equal" "$L" | tail -120
    timeout 60 $B/bench_gpu --arch student,hybrid25 --state bf16 --gen 8192 --batch 64,256,512 \
      --out "$OUT/gpu_decode_bf16state.json" >>"$L" 2>&1
    echo "bench bf16 state rc=$?" >>"$L"; grep -A12 "SSM state bf16" "$L" | grep -E "$ROWS"
    ;;
  engine)
    write_models
    E="$OUT/engine.log"
    timeout 330 $B/bench_engine_gpu --keep --tmp $TMPM --arch teacher,hybrid50,hybrid25,student --batch 64,256,max \
      --max-arch teacher,student --out "$OUT/gpu_engine.json" >>"$E" 2>&1
    echo "engine gen 1024 rc=$?" >>"$E"
    grep -E "^  (teacher|student|hybrid)|equal|rc=" "$E"
    ;;
  hf)
    PY=/opt/torch/.venv/bin/python; [ -x $PY ] || PY=python3
    PYTHONUNBUFFERED=1 timeout 240 $PY tools/bench/hf_baseline.py --batch 1,64 --out "$OUT/gpu_hf_baseline.json" >"$OUT/hf.log" 2>&1
    echo "hf rc=$?" >>"$OUT/hf.log"; tail -8 "$OUT/hf.log"
    timeout 60 $B/bench_gpu --arch teacher,student --gen 48 --batch 1,64 --no-max --out "$OUT/gpu_decode_peer.json" 2>&1 | grep -E "$ROWS"
    ;;
  *) echo "device-run: unknown mode $MODE (tests|ab|abmm|quick|nopdl|probe|win4096|win8192|decode|engine|hf)"; exit 2 ;;
  esac
done
exit 0
