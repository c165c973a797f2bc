#!/usr/bin/env bash
# Trains the three shipped ISSTAD-edge models (brick, grass, gravel) on burn-cuda: the same
# commands as models/isstad-edge.md gives for the CPU, with --backend cuda. Usage:
#   gpu-isstad.sh [vigil-train binary] [textures folder] [out dir]
# Each category's run comes back as <out>/<category>.tar (weights, configuration, per-epoch
# CSVs, summary); `vigil-train isstad export` and `eval` then run on any machine, since the
# data set is regenerated bit for bit from the same seed.
set -uo pipefail
bin=${1:-target/release/vigil-train}
textures=${2:-models/cache/textures}
out=${3:-${OUT:-/tmp/gpu-isstad}}
mae_epochs=${MAE_EPOCHS:-60}
pixel_epochs=${PIXEL_EPOCHS:-40}
mkdir -p "$out"
source "$(dirname "$0")/cuda-env.sh"
data=/tmp/isstad-data
rm -rf "$data" /tmp/isstad-runs
"$bin" isstad make-data --out "$data" --textures "$textures" | tee -a "$out/gpu.txt"
# The three categories train side by side: each process keeps one CPU core busy preparing
# batches (crops, corruptions) while the GPU is mostly idle, so running them together costs
# little more than the slowest alone.
train_one() {
  local category=$1 run=/tmp/isstad-runs/$1 start
  start=$(date +%s)
  RUST_LOG=info timeout "${CATEGORY_TIMEOUT:-400}" "$bin" isstad train --data "$data/$category" \
    --out "$run" --backend cuda --mae-epochs "$mae_epochs" --pixel-epochs "$pixel_epochs" \
    > "$out/$category.log" 2>&1
  echo "$category: exit $? after $(( $(date +%s) - start )) s" >> "$out/gpu.txt"
  (cd "$run" && tar cf "$out/$category.tar" isstad.bpk config.json summary.json mae.csv pixel.csv 2>/dev/null)
}
for category in brick grass gravel; do
  train_one "$category" &
done
wait
cat "$out/gpu.txt"
for category in brick grass gravel; do tail -n 2 "$out/$category.log"; done
