#!/bin/sh
# ResNet and ViT passes beside PyTorch at its best (BENCHMARKS.md, "ResNets and ViTs"):
# bench/run.sh's interleaved comparison (bench/compare.py) on resnet-relu-16-32-64 and
# vit-P7-D64-L2-H4, the first N Fashion-MNIST images, MSE, float32.
#   bench/run_arch.sh                               N=1000 REPS=7 THREADS=1,2, wall clock
#   NS_BENCH_CPU=1 THREADS=1 bench/run_arch.sh      process CPU time, one thread (as run on a
#                                                   shared machine: BENCHMARKS.md says why)
# Other settings as bench/run.sh (REPS, OUT, MALLOC).
set -e
N=${N:-1000}
ARCHS="resnet-relu-16-32-64:$N vit-P7-D64-L2-H4:$N" exec "$(dirname "$0")/run.sh"
