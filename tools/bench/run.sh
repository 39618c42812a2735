#!/usr/bin/env bash
# tools/bench/run.sh — `make bench`: the queue/store benchmark (bin/bench_queue) and any other
# CPU benchmarks present; JSON results under bench/results/.
#   BENCH_QUICK=1   small sizes (smoke test)
set -eu
cd "$(dirname "$0")/../.."
mkdir -p bench/results
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
bin/bench_queue "${args[@]}" --out bench/results/queue.json
cat bench/results/queue.json
# Further CPU benchmarks hook in as tools/bench/run-cpu-*.sh (each skipped when not executable).
for s in tools/bench/run-cpu-*.sh; do
  [ -x "$s" ] && "$s"
done
exit 0
