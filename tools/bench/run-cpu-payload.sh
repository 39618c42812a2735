#!/usr/bin/env bash
# tools/bench/run-cpu-payload.sh — `make bench` hook: building an aggregate task's payload from
# the store (bin/bench_payload: 500 problems x 1024 samples, ~1 KB of text per generation)
# -> bench/results/payload.json. BENCH_QUICK=1 for a smoke-sized run.
set -eu
cd "$(dirname "$0")/../.."
args=(--problems 500 --samples 1024 --reps 5)
[ "${BENCH_QUICK:-0}" = 1 ] && args=(--problems 20 --samples 16 --reps 2)
bin/bench_payload "${args[@]}" --out bench/results/payload.json
cat bench/results/payload.json
