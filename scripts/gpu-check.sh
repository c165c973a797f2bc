#!/usr/bin/env bash
# One short, real training on burn-cuda next to the flex CPU backend on the same machine, for
# the samples/s table in models/TRAINING.md. Usage: gpu-check.sh [vigil-train binary] [out dir]
# The binary is built with `--features cuda` (see models/TRAINING.md); this script only finds
# the CUDA libraries the machine has (NVRTC from the toolkit or the nvidia-cuda-nvrtc wheel).
set -uo pipefail
bin=${1:-target/release/vigil-train}
out=${2:-${OUT:-/tmp/gpu-check}}
mkdir -p "$out"
source "$(dirname "$0")/cuda-env.sh"

data=/tmp/vigil-toy-data
"$bin" toy make-data "$data" --train 20000 --val 2000 --test 2000
for backend in cuda flex; do
  rm -rf "/tmp/vigil-run-$backend"
  start=$(date +%s)
  timeout 200 "$bin" toy train --data "$data" --out "/tmp/vigil-run-$backend" \
    --backend "$backend" --epochs 3 --batch-size 256 > "$out/$backend.log" 2>&1
  echo "$backend: exit $? after $(( $(date +%s) - start )) s" | tee -a "$out/gpu.txt"
  tail -n 6 "$out/$backend.log"
  cp "/tmp/vigil-run-$backend/metrics.csv" "$out/$backend-metrics.csv" 2>/dev/null || true
done
