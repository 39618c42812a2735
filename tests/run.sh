#!/usr/bin/env bash
# tests/run.sh — runs every test and prints one closing line "N passed, N failed, N skipped".
#   C unit tests:      build/tests/test_*        (each ends with "unit: N passed, N failed, N skipped")
#   GPU tests:         build/tests/gpu/test_*    (skip visibly without a CUDA device)
#   integration tests: tests/integration/test_*.py under /usr/bin/python3 -m pytest
# Options (env): TESTS=pattern (substring filter on test file names), SLOW=1 (run tests marked slow).
set -u
cd "$(dirname "$0")/.."
export THINKFAST_DATA="${THINKFAST_DATA:-$(cd .. && pwd)/shared/data}"
pass=0; fail=0; skip=0; failed_names=()
filter="${TESTS:-}"

run_unit() {
  local bin="$1" name out rc line p f s
  name=$(basename "$bin")
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && return
  echo "== $bin"
  out=$(mktemp)
  timeout 900 "$bin" >"$out" 2>&1; rc=$?
  grep -E "^(FAIL|skip) |^  " "$out" | head -60
  line=$(grep -E "^unit: [0-9]+ passed" "$out" | tail -1)
  if [ -z "$line" ]; then
    echo "   $name: crashed or printed no summary (exit $rc); last lines:"; tail -15 "$out" | sed 's/^/   | /'
    fail=$((fail+1)); failed_names+=("$name")
  else
    read -r p f s < <(echo "$line" | sed -E 's/unit: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
    echo "   $line"
    pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+s))
    if [ "$f" -gt 0 ] || [ $rc -ne 0 ]; then failed_names+=("$name"); [ "$f" -eq 0 ] && fail=$((fail+1)); fi
  fi
  rm -f "$out"
}

for b in build/tests/test_*; do [ -x "$b" ] && run_unit "$b"; done
for b in build/tests/gpu/test_*; do [ -x "$b" ] && [[ "$b" != *.o ]] && [[ "$b" != *.d ]] && run_unit "$b"; done

if ls tests/integration/test_*.py >/dev/null 2>&1; then
  echo "== integration (pytest)"
  xml=$(mktemp --suffix=.xml)
  kargs=()
  [ -n "$filter" ] && kargs=(-k "$filter")
  /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider --junitxml="$xml" "${kargs[@]}" tests/integration
  read -r p f s < <(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    suites = [r] if r.tag == "testsuite" else list(r)
    t = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    k = sum(int(s.get("skipped", 0)) for s in suites)
    print(t - f - k, f, k)
except Exception:
    print(0, 1, 0)
PY
)
  pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+s))
  [ "$f" -gt 0 ] && failed_names+=("integration")
  rm -f "$xml"
fi

[ ${#failed_names[@]} -gt 0 ] && echo "failing: ${failed_names[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
