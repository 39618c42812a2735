#!/usr/bin/env bash
# tools/bench/run-cpu-engine.sh — `make bench` hook: CPU engine throughput (bin/bench_engine)
# -> bench/results/engine_cpu.json. BENCH_QUICK=1 for a smoke-sized run.
set -eu
cd "$(dirname "$0")/../.."
args=()
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--quick)
bin/bench_engine --device cpu "${args[@]}" --out bench/results/engine_cpu.json
cat bench/results/engine_cpu.json
