#!/bin/sh
# Sum the per-variant results written by tests/run.sh into one closing line.
pass=0; fail=0
for b in "$@"; do
  read p f < "$b/tests/result.txt" || exit 1
  pass=$((pass + p)); fail=$((fail + f))
done
echo "all variants: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
