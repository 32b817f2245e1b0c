#!/bin/sh
# The curvature views beside the plain sharpness, in one process per point (so each ratio
# compares timings taken back to back on the same machine state): `normsharp sharpness
# --adaptive --per-layer --density-probes P --json` reports seconds and HVPs of each.
# Usage: bench/views.sh [ARCH] [N]   (after `make`; default fc-tanh-50-50 on 1000 images)
# Prints a Markdown table; BENCHMARKS.md ("Curvature views") quotes it.
set -e
cd "$(dirname "$0")/.."
ARCH=${1:-fc-tanh-50-50}
N=${2:-1000}
OUT=${OUT:-build/bench-views}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
B=build/float/normsharp
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $ARCH on $N images, $THREADS thread(s)"
rm -rf "$OUT/w" "$OUT/run"
$B init --arch "$ARCH" --seed 0 --out "$OUT/w" > /dev/null
# a trained point (GD at a small rate for a few hundred steps) beside theta_0
$B train --arch "$ARCH" --n "$N" --lr 0.02 --max-steps 300 --log-every 0 --top-k 1 --trace-probes 0 \
    --threads "$THREADS" --save-weights --out "$OUT/run" > /dev/null
for W in "$OUT/w" "$OUT/run/weights"; do
    $B sharpness --weights "$W" --n "$N" --k 1 --tol 1e-4 --trace-probes 10 --threads "$THREADS" \
        --adaptive --per-layer --density-probes 5 --density-steps 80 --density-out "$OUT/density.csv" \
        --json > "$OUT/views.json"
    /usr/bin/python3 - "$OUT/views.json" "$W" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); f = d["final"]; t = d["timing"]
layer_hvps = sum(v["iters"] for v in f["per_layer"].values())
rows = [("sharpness (Lanczos, k = 1, tol 1e-4)", t["eig_seconds"], f["eig_iters"]),
        ("trace (Hutchinson, 10 probes)", t["trace_seconds"], 10),
        ("adaptive sharpness (Lanczos on D H D)", t["adaptive_seconds"], f["adaptive_iters"]),
        ("per-layer top eigenvalue + trace (%d blocks)" % len(f["per_layer"]), t["per_layer_seconds"], None),
        ("density (SLQ, 5 probes x 80 steps)", t["density_seconds"], f["density"]["hvps"])]
print("\n%s\n" % sys.argv[2])
print("| quantity | seconds | HVPs | time / sharpness |")
print("|---|---:|---:|---:|")
for name, s, h in rows:
    print("| %s | %.3f | %s | %.2f |" % (name, s, "%d" % h if h is not None else "%d + traces" % layer_hvps, s / t["eig_seconds"]))
PY
done
