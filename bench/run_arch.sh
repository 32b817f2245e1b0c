#!/bin/sh
# ResNet and ViT passes, normsharp and PyTorch interleaved in one run (BENCHMARKS.md,
# "ResNets and ViTs"): gradient and HVP of resnet-relu-16-32-64 and vit-P7-D64-L2-H4 on
# 1000 Fashion-MNIST-shaped images, MSE, float32, 2 threads.
# Usage: bench/run_arch.sh after `make` (float build); N=1000 REPS=5 THREADS=2 by default.
# On a machine shared with other jobs: THREADS=1 CPU=1 times process CPU time on both sides
# (two OpenBLAS threads sharing a busy core can be many times slower than one).
set -e
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
CPU=${CPU:-}
N=${N:-1000}
REPS=${REPS:-5}
OUT=${OUT:-build/bench}
mkdir -p "$OUT"
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude $(pkg-config --cflags openblas) bench/bench_model.c \
   bench/gemm_clock.c build/float/libnormsharp.a -Wl,--wrap=cblas_sgemm $(pkg-config --libs openblas lapacke zlib) -lglpk -ldsdp -lm -lpthread \
   -o "$OUT/bench_model"
echo "== machine: $(nproc) cores, $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg)"
for arch in resnet-relu-16-32-64 vit-P7-D64-L2-H4; do
  echo "== $arch: normsharp (bench/bench_model.c, random data of the same shape)"
  env OPENBLAS_NUM_THREADS=$THREADS ${CPU:+NS_BENCH_CPU=1} "$OUT/bench_model" "$arch" "$N" "$REPS" mse
  echo "== $arch: PyTorch, the module of docs/ARCHITECTURES.md (bench/torch_arch.py)"
  /usr/bin/python3 bench/torch_arch.py --bench "$arch" --n "$N" --threads "$THREADS" --reps "$REPS" ${CPU:+--cpu}
done
