#!/bin/sh
# Sum the per-variant results written by tests/run.sh into one closing line.
pass=0; fail=0; skip=0
for b in "$@"; do
  read p f s < "$b/tests/result.txt" || exit 1
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + ${s:-0}))
done
echo "all variants: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
