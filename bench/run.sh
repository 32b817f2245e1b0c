#!/bin/sh
# The reference benchmark, normsharp and PyTorch side by side in one run:
#   fc-tanh-200-200 on the first 5000 Fashion-MNIST images, MSE, float32, 2 threads.
# Usage: make bench      (or bench/run.sh after `make`)
# Needs the PyTorch reference: scripts/install-deps --bench (python3-torch, python3-scipy).
# Prints a Markdown table; BENCHMARKS.md quotes it.
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
OUT=${OUT:-build/bench}
mkdir -p "$OUT"
CFLAGS_BLAS=$(pkg-config --cflags openblas)
LIBS=$(pkg-config --libs openblas lapacke zlib)
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude $CFLAGS_BLAS bench/bench_model.c build/float/libnormsharp.a \
   $LIBS -lglpk -ldsdp -lm -lpthread -o "$OUT/bench_model"

echo "== machine: $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "== normsharp passes on random data (bench/bench_model.c)"
OPENBLAS_NUM_THREADS=$THREADS "$OUT/bench_model" fc-tanh-200-200 5000 20 mse | tee "$OUT/model.txt"

echo "== normsharp sharpness on Fashion-MNIST (normsharp sharpness --tol 1e-4)"
rm -rf "$OUT/w"
./normsharp init --arch fc-tanh-200-200 --seed 0 --out "$OUT/w" > /dev/null
./normsharp sharpness --weights "$OUT/w" --n 5000 --tol 1e-4 --k 1 --trace-probes 0 --threads "$THREADS" \
    --json > "$OUT/sharpness.json"
/usr/bin/python3 - "$OUT/sharpness.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
f = d.get("final", d)
print("normsharp: sharpness %.9g  hvps %s  seconds %s" % (f.get("sharpness"), f.get("eig_iters"), d.get("timing", {}).get("eig_seconds", d.get("timing"))))
PY

echo "== PyTorch on the same weights and data (bench/torch_bench.py)"
if /usr/bin/python3 -c "import torch, scipy" 2>/dev/null; then
  /usr/bin/python3 bench/torch_bench.py --weights "$OUT/w" --threads "$THREADS" --reps 10 | tee "$OUT/torch.json"
else
  echo "PyTorch/SciPy missing: run scripts/install-deps --bench"
fi
