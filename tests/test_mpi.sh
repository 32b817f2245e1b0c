#!/bin/sh
# Sweeps over MPI ranks (docs/MPI.md): tests/test_mpi.sh build/<variant>-mpi <plain normsharp>
# Every MPI result is compared with a single-process `--jobs 1` sweep of the plain build:
# the CSVs byte for byte (sweep.csv and flow.csv without their last column, `seconds`,
# the wall time), every run's summary.json without its closing "timing" block.
# Prints one line per test and "<variant>: N passed, M failed"; writes the counts to
# <build>/tests/result.txt for tests/summarize.sh. Without mpirun it says so and passes.
B="$1"
PLAIN="$2"
if [ -z "$B" ] || [ -z "$PLAIN" ]; then
  echo "usage: tests/test_mpi.sh build/<variant>-mpi <plain normsharp binary>" >&2
  exit 2
fi
MPI_BIN="$PWD/$B/normsharp"
case "$PLAIN" in /*) ;; *) PLAIN="$PWD/$PLAIN" ;; esac
mkdir -p "$B/tests"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "test_mpi: skipped (no mpirun; scripts/install-deps --mpi installs OpenMPI)"
  echo "0 0" > "$B/tests/result.txt"
  exit 0
fi
[ -x "$MPI_BIN" ] || { echo "test_mpi: no MPI build at $MPI_BIN (make MPI=1)" >&2; exit 2; }
[ -x "$PLAIN" ] || { echo "test_mpi: no plain build at $PLAIN (make)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
T="$(mktemp -d /tmp/normsharp-mpi-test.XXXXXX)"
MPIRUN="mpirun --oversubscribe -np 3"
pass=0; fail=0

ok() { pass=$((pass + 1)); echo "[       OK ] $1"; }
bad() { fail=$((fail + 1)); echo "[  FAILED  ] $1: $2"; }

# The CSV without its last column (wall seconds).
without_seconds() { sed 's/,[^,]*$//' "$1"; }
# A summary.json without its closing "timing" block.
without_timing() { sed '/"timing"/,$d' "$1"; }

# same_runs REF OUT: every summary.json under REF has its twin under OUT (but for timing).
same_runs() {
  n=0
  for f in $(cd "$1" && find . -name summary.json | sort); do
    without_timing "$1/$f" > "$T/a.json"
    without_timing "$2/$f" > "$T/b.json" 2>/dev/null || return 1
    cmp -s "$T/a.json" "$T/b.json" || { echo "$f differs"; return 1; }
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}

# ---- the DLN lab ------------------------------------------------------------------------
DLN="dln sweep --lr 0.01:1:7"

dln_sweep_on_3_ranks_equals_the_single_process_sweep_byte_for_byte() {
  "$PLAIN" $DLN --jobs 1 --out "$T/dln-ref" > "$T/dln-ref.log" 2>&1 || { bad "$1" "reference sweep failed"; return; }
  $MPIRUN "$MPI_BIN" $DLN --out "$T/dln" > "$T/dln.log" 2>&1 || { bad "$1" "mpirun exited $? (see $T/dln.log)"; return; }
  cmp -s "$T/dln-ref/dln.csv" "$T/dln/dln.csv" || { bad "$1" "dln.csv differs"; return; }
  grep -v '"seconds"' "$T/dln-ref/theory.json" > "$T/a.json"
  grep -v '"seconds"' "$T/dln/theory.json" > "$T/b.json"
  cmp -s "$T/a.json" "$T/b.json" || { bad "$1" "theory.json differs"; return; }
  same_runs "$T/dln-ref" "$T/dln" > /dev/null || { bad "$1" "a run's summary.json differs"; return; }
  [ "$(grep -c 'lowest generalization error' "$T/dln.log")" = 1 ] || { bad "$1" "the verdict is not printed exactly once"; return; }
  ok "$1"
}

rerun_of_a_finished_mpi_sweep_skips_every_run() {
  $MPIRUN "$MPI_BIN" $DLN --out "$T/dln" > "$T/dln2.log" 2>&1 || { bad "$1" "mpirun exited $?"; return; }
  grep -q "7 of 7 runs already finished" "$T/dln2.log" || { bad "$1" "runs were redone"; return; }
  cmp -s "$T/dln-ref/dln.csv" "$T/dln/dln.csv" || { bad "$1" "dln.csv differs"; return; }
  ok "$1"
}

failed_run_on_any_rank_is_reported_once_and_every_rank_exits_1() {
  mkdir -p "$T/dln-fail/runs"
  : > "$T/dln-fail/runs/lr_0.1"  # a file where the run directory should be
  $MPIRUN "$MPI_BIN" dln sweep --lr 0.01,0.1,1 --out "$T/dln-fail" > "$T/dln-fail.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] || { bad "$1" "exit status 0"; return; }
  [ "$(grep -c 'sweep run lr=0.1 failed' "$T/dln-fail.log")" = 1 ] || { bad "$1" "the failure is not reported exactly once"; return; }
  grep -q "1 of 3 sweep runs failed" "$T/dln-fail.log" || { bad "$1" "no closing message"; return; }
  [ "$(wc -l < "$T/dln-fail/dln.csv")" = 3 ] || { bad "$1" "dln.csv lacks the finished runs"; return; }
  ok "$1"
}

ranks_that_lay_out_other_runs_fail_the_sweep_at_once() {
  start=$(date +%s)
  mpirun --oversubscribe -np 1 "$MPI_BIN" dln sweep --lr 0.01:1:3 --out "$T/other" : \
         --oversubscribe -np 2 "$MPI_BIN" dln sweep --lr 0.01:1:4 --out "$T/other" > "$T/other.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  [ $rc -ne 0 ] || { bad "$1" "exit status 0"; return; }
  grep -q "laid out other runs than rank 0" "$T/other.log" || { bad "$1" "no message naming the rank"; return; }
  [ $took -lt 20 ] || { bad "$1" "took $took s (ranks waited for each other)"; return; }
  ok "$1"
}

# ---- networks ---------------------------------------------------------------------------
TINY="--arch fc-tanh-8 --n 64 --n-test 64 --top-k 2 --trace-probes 2"
NET="sweep $TINY --seeds 0,1 --flow --loss-goal 0.3 --lr-around 4 --lr-span 4 --max-steps 200 --log-every 50"
D=fashion-mnist/fc-tanh-8/mse

network_sweep_with_flow_on_3_ranks_equals_the_single_process_sweep() {
  "$PLAIN" $NET --jobs 1 --out "$T/net-ref" > "$T/net-ref.log" 2>&1 || { bad "$1" "reference sweep failed"; return; }
  $MPIRUN "$MPI_BIN" $NET --out "$T/net" > "$T/net.log" 2>&1 || { bad "$1" "mpirun exited $? (see $T/net.log)"; return; }
  for f in flow.csv sweep.csv; do
    without_seconds "$T/net-ref/$D/$f" > "$T/a.csv"
    without_seconds "$T/net/$D/$f" > "$T/b.csv" 2>/dev/null
    cmp -s "$T/a.csv" "$T/b.csv" || { bad "$1" "$f differs"; return; }
  done
  [ "$(wc -l < "$T/net/$D/sweep.csv")" = 9 ] || { bad "$1" "sweep.csv has not 8 runs"; return; }
  same_runs "$T/net-ref" "$T/net" > /dev/null || { bad "$1" "a run's summary.json differs"; return; }
  [ "$(grep -c '^seed 1$' "$T/net.log")" = 1 ] || { bad "$1" "the table is not printed exactly once"; return; }
  ok "$1"
}

# Six runs of about a second each on three ranks: when the first ends, every rank has
# more to do, so the kill lands while rank 1 works and long before the sweep could end.
SLOW="sweep --arch fc-tanh-16 --n 256 --n-test 64 --top-k 2 --trace-probes 2 --lr 0.01:0.1:6 --max-steps 2000 --log-every 200"
DS=fashion-mnist/fc-tanh-16/mse

# The processes whose parent is $1 (from /proc: procps may be missing).
children() {
  for st in /proc/[0-9]*/stat; do
    set -- "$1" $(sed 's/.*) //' "$st" 2>/dev/null)  # after "pid (comm) ": state ppid ...
    [ "$3" = "$1" ] && p=${st#/proc/} && echo "${p%/stat}"
  done
}

# The pid of rank R among the children of mpirun (OpenMPI tells each its rank).
rank_pid() {
  for c in $(children "$1"); do
    [ -r "/proc/$c/environ" ] || continue
    if tr '\0' '\n' < "/proc/$c/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$c"; return; fi
  done
}

killed_rank_fails_the_job_with_a_clear_message_and_a_rerun_completes_it() {
  "$PLAIN" $SLOW --jobs 1 --out "$T/slow-ref" > "$T/slow-ref.log" 2>&1 || { bad "$1" "reference sweep failed"; return; }
  $MPIRUN "$MPI_BIN" $SLOW --out "$T/slow" > "$T/slow.log" 2>&1 &
  job=$!
  k=0
  until ls "$T/slow/$DS"/seed_0/*/summary.json > /dev/null 2>&1; do
    k=$((k + 1))
    [ $k -lt 1200 ] || { kill "$job"; bad "$1" "no run finished within 60 s"; return; }
    sleep 0.05
  done
  victim=$(rank_pid "$job" 1)
  [ -n "$victim" ] || { wait "$job"; bad "$1" "rank 1 had already ended; the runs are too short for this machine"; return; }
  ranks=$(children "$job")
  kill -9 "$victim"
  wait "$job"
  rc=$?
  [ $rc -ne 0 ] || { bad "$1" "the killed job exited 0"; return; }
  grep -q "rerun the same command" "$T/slow.log" || grep -q "exited on signal 9" "$T/slow.log" ||
    { bad "$1" "no message about the dead rank (see $T/slow.log)"; return; }
  for p in $ranks; do  # mpirun may exit a moment before its ranks are gone
    k=0
    while kill -0 "$p" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null)" != Z ]; do
      k=$((k + 1))
      [ $k -lt 100 ] || { bad "$1" "rank process $p outlived the job by 10 s"; return; }
      sleep 0.1
    done
  done
  [ ! -e "$T/slow/$DS/sweep.csv" ] || { bad "$1" "a CSV was written by the killed job"; return; }
  $MPIRUN "$MPI_BIN" $SLOW --out "$T/slow" > "$T/slow2.log" 2>&1 || { bad "$1" "the rerun exited $?"; return; }
  grep -q "runs already finished" "$T/slow2.log" || { bad "$1" "the rerun redid the finished runs"; return; }
  without_seconds "$T/slow-ref/$DS/sweep.csv" > "$T/a.csv"
  without_seconds "$T/slow/$DS/sweep.csv" > "$T/b.csv"
  cmp -s "$T/a.csv" "$T/b.csv" || { bad "$1" "sweep.csv differs from the single-process sweep"; return; }
  same_runs "$T/slow-ref" "$T/slow" > /dev/null || { bad "$1" "a run's summary.json differs"; return; }
  ok "$1"
}

sweep_into_a_locked_directory_fails_on_every_rank_at_once() {
  mkdir -p "$T/locked/$D"
  flock "$T/locked/$D/.sweep.lock" sleep 30 &
  holder=$!
  sleep 0.3
  start=$(date +%s)
  $MPIRUN "$MPI_BIN" sweep $TINY --lr 0.1 --max-steps 10 --out "$T/locked" > "$T/locked.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
  [ $rc -ne 0 ] || { bad "$1" "exit status 0"; return; }
  [ "$(grep -c 'another sweep is writing' "$T/locked.log")" = 1 ] || { bad "$1" "the lock is not reported exactly once"; return; }
  [ $took -lt 20 ] || { bad "$1" "took $took s (ranks waited for each other)"; return; }
  ok "$1"
}

for t in dln_sweep_on_3_ranks_equals_the_single_process_sweep_byte_for_byte \
         rerun_of_a_finished_mpi_sweep_skips_every_run \
         failed_run_on_any_rank_is_reported_once_and_every_rank_exits_1 \
         ranks_that_lay_out_other_runs_fail_the_sweep_at_once \
         network_sweep_with_flow_on_3_ranks_equals_the_single_process_sweep \
         killed_rank_fails_the_job_with_a_clear_message_and_a_rerun_completes_it \
         sweep_into_a_locked_directory_fails_on_every_rank_at_once; do
  "$t" "$t"
done

echo "$pass $fail" > "$B/tests/result.txt"
echo "$(basename "$B"): $pass passed, $fail failed"
if [ $fail -ne 0 ]; then
  echo "test_mpi: files kept in $T"
  exit 1
fi
rm -rf "$T"
