#!/usr/bin/env bash
# tools/bench/run-cpu-grade.sh — `make bench` hook: grader throughput and aggregation time
# (bin/bench_grade) -> bench/results/grade.json. Uses MATH500/GSM8K from ../shared/data when
# present (real responses), synthetic responses otherwise.
set -eu
cd "$(dirname "$0")/../.."
data="${THINKFAST_DATA:-../shared/data}"
args=()
[ -f "$data/math500/test.jsonl" ] && args+=(--math500 "$data/math500/test.jsonl")
[ -f "$data/gsm8k/test.jsonl" ] && args+=(--gsm8k "$data/gsm8k/test.jsonl")
[ "${BENCH_QUICK:-0}" = 1 ] && args+=(--seconds 0.3)
bin/bench_grade "${args[@]}" --out bench/results/grade.json
cat bench/results/grade.json
