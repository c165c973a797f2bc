#!/usr/bin/env bash
# Reproduce the int8-on-tract study in one command (see models/README.md).
#   scripts/int8/run_study.sh [extra study.py args, e.g. --rounds 5]
# Builds tools/int8-probe into its own target dir (never the main one), then builds, quantizes,
# times and checks every graph. Needs python3 with onnx, onnxruntime, numpy.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR_INT8:-/work/target-int8}"
out="${INT8_STUDY_OUT:-/tmp/int8-study}"
mkdir -p "$out"
lscpu | grep -E 'Model name' | sed 's/  */ /g'
lscpu | grep -oE 'avx512f|avx512_vnni|avx_vnni|amx_int8|amx_bf16|amx_tile' | sort -u | tr '\n' ' '; echo
CARGO_TARGET_DIR="$target" cargo build --release --quiet --manifest-path "$repo/tools/int8-probe/Cargo.toml"
python3 "$here/study.py" --probe "$target/release/int8-probe" --out "$out" "$@" 2> >(grep -v -E '^WARNING:root' >&2) | tee "$out/table.md"
