#!/bin/sh
# Run every libFuzzer harness in FZ (or those named), one after another (nice: the machine
# is shared), on the committed seed corpus tests/fuzz/corpus/<harness>/.
#   tests/fuzz/run.sh build/fuzz 12                the short run of `make test` (new inputs dropped)
#   tests/fuzz/run.sh build/fuzz 600 keep          `make fuzz`: new inputs kept in build/fuzz/corpus/
#   tests/fuzz/run.sh build/fuzz runs=1000000 keep [fuzz_json ...]
#                                                  each harness for a number of executions instead
# A harness passes if it ran without a crash, leak, sanitizer report or timeout.
# Prints one line per harness with its executions, rate and covered edges, then
# "fuzz: N passed, M failed", and writes FZ/tests/result.txt for tests/summarize.sh.
FZ="$1"; LIMIT="${2:-12}"; KEEP="$3"
[ $# -gt 3 ] && shift 3 || set --
case "$LIMIT" in
  runs=*) limit_opt="-runs=${LIMIT#runs=}" ;;
  *) limit_opt="-max_total_time=$LIMIT" ;;
esac
mkdir -p "$FZ/tests" "$FZ/logs"
pass=0; fail=0; failed=""
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
bins=""
if [ $# -gt 0 ]; then for h in "$@"; do bins="$bins $FZ/$h"; done; else bins=$(ls "$FZ"/fuzz_*); fi
for bin in $bins; do
  [ -x "$bin" ] || continue
  case "$bin" in *.d|*.o) continue ;; esac
  h=$(basename "$bin")
  seeds="tests/fuzz/corpus/$h"
  work="$FZ/corpus/$h"
  if [ "$KEEP" = keep ]; then mkdir -p "$work"; else work=$(mktemp -d); fi
  log="$FZ/logs/$h.log"
  start=$(date +%s)
  nice -n 19 "$bin" $limit_opt -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
       -print_final_stats=1 -artifact_prefix="$FZ/logs/$h-" "$work" "$seeds" > "$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tr -dc '0-9')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | tr -dc '0-9')
  if [ $rc -eq 0 ]; then
    pass=$((pass + 1))
    echo "fuzz $h: ok, ${runs:-0} executions in $took s ($(( ${runs:-0} / (took > 0 ? took : 1) ))/s), ${cov:-?} edges covered"
  else
    fail=$((fail + 1)); failed="$failed $h"
    echo "fuzz $h: FAILED (status $rc); see $log"; grep -m3 'ERROR\|runtime error\|SUMMARY' "$log"
  fi
  [ "$KEEP" = keep ] || rm -rf "$work"
done
echo "$pass $fail 0" > "$FZ/tests/result.txt"
echo "fuzz: $pass passed, $fail failed"
[ -z "$failed" ] || { echo "failing harnesses:$failed"; exit 1; }
