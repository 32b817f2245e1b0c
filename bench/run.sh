#!/bin/sh
# The benchmark: normsharp against PyTorch at its best, in one process, interleaved
# (bench/compare.py says how). Prints Markdown; BENCHMARKS.md quotes it.
#   make bench       (or bench/run.sh)
# Environment: REPS (default 7), ARCHS ("fc-tanh-200-200:5000 cnn-relu-32-32:1000"),
# THREADS ("1,2"), OUT (build/bench), MALLOC (both, default or tuned: which glibc malloc
# settings PyTorch is tried with), NS_BENCH_CPU (set: time process CPU time instead of wall
# clock; meaningful with THREADS=1). Needs python3-torch and python3-scipy
# (scripts/install-deps --bench).
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which this machine may set for old OpenBLAS
# builds, are unset for these commands alone (the kernel then in use is printed); tests and
# CI keep them.
set -e
cd "$(dirname "$0")/.."
OUT=${OUT:-build/bench}
REPS=${REPS:-7}
THREADS=${THREADS:-1,2}
ARCHS=${ARCHS:-"fc-tanh-200-200:5000 cnn-relu-32-32:1000"}
MALLOC=${MALLOC:-both}
TUNE=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967295
case $MALLOC in
  both) TUNES="default $TUNE" ;;
  default) TUNES=default ;;
  tuned) TUNES=$TUNE ;;
  *) echo "MALLOC must be both, default or tuned, not '$MALLOC'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
if ! /usr/bin/python3 -c "import torch, functorch" 2>/dev/null; then
  echo "PyTorch missing: run scripts/install-deps --bench" >&2
  exit 1
fi
# normsharp as a shared library (position-independent float build), its sgemm calls timed
CFLAGS="-O2 -g -fPIC" make --no-print-directory -j2 TAG=-pic lib >/dev/null
cc -shared -fPIC -O2 -std=c11 -D_GNU_SOURCE $(pkg-config --cflags openblas) -o "$OUT/libns_bench.so" \
   bench/gemm_clock.c -Wl,--whole-archive build/float-pic/libnormsharp.a -Wl,--no-whole-archive \
   -Wl,--wrap=cblas_sgemm $(pkg-config --libs openblas lapacke zlib) -lglpk -ldsdp -lm -lpthread

# the commit measured, and + if the tree differs from it (not a git clone: "no commit")
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD || rev="$rev+"
else
  rev="no commit"
fi
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $rev, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)${NS_BENCH_CPU:+, CPU time}"
files=""
for spec in $ARCHS; do
  arch=${spec%%:*} n=${spec##*:}
  for tune in $TUNES; do  # the malloc settings, one process each
    [ "$tune" = default ] && tune=""
    f="$OUT/compare-$arch-$n${tune:+-tuned}.json"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ${tune:+GLIBC_TUNABLES=$tune} \
      /usr/bin/python3 bench/compare.py --lib "$OUT/libns_bench.so" --arch "$arch" --n "$n" \
      --reps "$REPS" --threads "$THREADS" --out "$f"
    files="$files $f"
  done
done
/usr/bin/python3 bench/compare.py --summarize $files | tee "$OUT/compare.md"
