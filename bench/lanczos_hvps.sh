#!/bin/sh
# Lanczos HVP counts (BENCHMARKS.md, "Lanczos HVP counts"): normsharp's sharpness at
# tol 1e-4, cold and warm-started along GD, against SciPy's eigsh on the same Hessian.
#   make && bench/lanczos_hvps.sh        (needs python3-torch and python3-scipy)
# fc-tanh-200-200, the first 5000 Fashion-MNIST images, MSE, theta_0 of seed 0; GD at
# eta = ETA (default 0.05) for STEPS steps (default 200), estimates every EVERY (20).
set -e
cd "$(dirname "$0")/.."
OUT=${OUT:-build/bench-lanczos}
ETA=${ETA:-0.05}; STEPS=${STEPS:-200}; EVERY=${EVERY:-20}
mkdir -p "$OUT"
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags openblas) bench/lanczos_hvps.c \
   build/float/libnormsharp.a $(pkg-config --libs openblas lapacke zlib) -lglpk -ldsdp -lm -lpthread \
   -o "$OUT/lanczos_hvps"
rm -rf "$OUT/w0" "$OUT/wT"
build/float/normsharp init --arch fc-tanh-200-200 --seed 0 --out "$OUT/w0" > /dev/null
echo "== load $(cut -d' ' -f1-3 /proc/loadavg); normsharp (float32 HVPs), k = 1, tol 1e-4"
OPENBLAS_NUM_THREADS=1 "$OUT/lanczos_hvps" "$OUT/w0" 5000 "$ETA" "$STEPS" "$EVERY" 1e-4 "$OUT/wT"
echo "== SciPy eigsh (float64 PyTorch HVPs), k = 1, tol 1e-4"
for w in "$OUT/w0" "$OUT/wT"; do
  /usr/bin/python3 bench/lanczos_eigsh.py --weights "$w" --n 5000 --tol 1e-4
done
