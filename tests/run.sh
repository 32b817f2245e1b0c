#!/bin/sh
# Run every test binary of one build variant: tests/run.sh build/<variant>
# Prints each suite's cmocka output, then "<variant>: N passed, M failed, K skipped"
# (skipped: tests that need the double build, or data or Python packages not installed).
B="$1"
[ -d "$B/tests" ] || { echo "run.sh: no tests built in $B" >&2; exit 2; }
# The command-line tests run $B/normsharp: one older than the sources would test old code.
stale=$(find src include -newer "$B/normsharp" -name '*.[ch]' 2>/dev/null | head -1)
if [ ! -x "$B/normsharp" ] || [ -n "$stale" ]; then
  echo "run.sh: $B/normsharp is missing or older than ${stale:-the sources}; rebuild that variant first (make test builds and runs every variant)." >&2
  exit 2
fi
export NS_BIN="$PWD/$B/normsharp"
export NS_TEST_TMP="$(mktemp -d /tmp/normsharp-test.XXXXXX)"
export NS_SRC="$PWD"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
pass=0; fail=0; skip=0; failed_suites=""
for t in "$B"/tests/test_* "$B"/tests/cli/*; do
  [ -x "$t" ] || continue
  case "$t" in *.d|*.o) continue ;; esac
  name=${t#"$B"/tests/}  # test_core, or cli/sweep for the command line's tests
  out="$NS_TEST_TMP/$(echo "$name" | tr / _).log"
  "$t" > "$out" 2>&1
  rc=$?
  cat "$out"
  p=$(grep -o '\[  PASSED  \] [0-9]* test' "$out" | tail -1 | tr -dc '0-9')
  f=$(grep -o '\[  FAILED  \] [0-9]* test(s), listed' "$out" | tail -1 | tr -dc '0-9')
  s=$(grep -o '\[  SKIPPED \] [0-9]* test' "$out" | tail -1 | tr -dc '0-9')
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${s:-0}))
  if [ $rc -ne 0 ] && [ -z "$f" ]; then fail=$((fail + 1)); fi
  [ $rc -ne 0 ] && failed_suites="$failed_suites $name"
done
echo "$pass $fail $skip" > "$B/tests/result.txt"
echo "$(basename "$B"): $pass passed, $fail failed, $skip skipped"
rm -rf "$NS_TEST_TMP"
[ -z "$failed_suites" ] || { echo "failing suites:$failed_suites"; exit 1; }
